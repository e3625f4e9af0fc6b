/*
 * Pure decision functions of the reference flow (docs/FLOW.md): no Kafka, no
 * I/O, so tests/unit/test_flow_rules.c can pin every rule down.
 *
 * Every id a service derives (authorization id, tracking number, carrier,
 * notification id) is a function of an input id, so reprocessing an event
 * after a crash produces the same output, byte for byte.
 */
#ifndef FLOW_RULES_H
#define FLOW_RULES_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a: tiny, stable across platforms and releases. */
uint64_t flow_fnv1a64(const char *s);

/* "<prefix><16 hex digits of FNV-1a(s)>", e.g. flow_hash_id("auth-", oid). */
void flow_hash_id(const char *prefix, const char *s, char *buf, size_t size);

/* Tracking number: carrier initial letters + 12 digits derived from the order. */
void flow_tracking_number(const char *carrier, const char *order_id, char *buf, size_t size);

/* Index in [0, n) chosen by the order id (n > 0). */
size_t flow_pick(const char *order_id, size_t n);

/* ---- inventory ---- */

typedef struct {
    const char *sku; /* borrowed from the event */
    int64_t quantity;
    int64_t unit_price_cents;
} flow_line_t;

/* An order as placed, for flow_check_order(). */
typedef struct {
    const char *order_id, *customer_id, *currency;
    const flow_line_t *lines;
    size_t n;
} flow_order_t;

/* The domain rules an order must meet wherever it came from, shared by the
 * services and the producers: ids (order, customer, SKUs) follow the key
 * rule (evk_key_check: not empty, no control characters), the currency is
 * ISO 4217-shaped, there is at least one line, each with quantity >= 1 and
 * unit price >= 0, and the total fits in 64 bits. 1 with *total set; else 0
 * with @reason naming the field (e.g. "items[1].quantity: must be at least
 * 1, got -1"). Checked before lines are merged, so that a negative line
 * cannot offset another. */
int flow_check_order(const flow_order_t *o, int64_t *total, char *reason, size_t reason_size);

/* A currency code: three upper-case letters (ISO 4217's shape). 1 if the
 * @len bytes at @c are one; else 0 with @why set, without a field name. */
int flow_currency_ok(const char *c, size_t len, char *why, size_t why_size);

/* Merge lines that name the same SKU (an order may list one twice), keeping
 * the first occurrence's position. Returns the new count. */
size_t flow_merge_lines(flow_line_t *lines, size_t n);

/* The SKU owner's decision on one line: 1 if @quantity of @sku can be held
 * from @available units (-1: the SKU is unknown); else 0 with @reason set. */
int flow_can_hold(const char *sku, int64_t available, int64_t quantity, char *reason,
                  size_t reason_size);

/* ---- payment ---- */

typedef struct {
    int64_t credit_limit_cents;
    const char *const *blocked; /* customer ids */
    size_t nblocked;
} flow_payment_rules_t;

/* 1 = authorize; 0 = decline with @reason set. */
int flow_payment_decide(const flow_payment_rules_t *r, const char *customer_id,
                        int64_t amount_cents, char *reason, size_t reason_size);

/* ---- order status ---- */

/* Declared in lifecycle order; the values are not the Avro enum's. */
typedef enum {
    FLOW_NONE,
    FLOW_PLACED,
    FLOW_RESERVED,
    FLOW_PAID,
    FLOW_SHIPPED,
    FLOW_REJECTED,
    FLOW_CANCELLED
} flow_status_t;

const char *flow_status_name(flow_status_t s);
flow_status_t flow_status_parse(const char *name); /* FLOW_NONE if unknown */

/* Status an event type (short name) moves an order to; FLOW_NONE for types
 * that only append history (ShipmentScheduled, StockReleased). */
flow_status_t flow_status_of_event(const char *type);

/* Fold @next into @cur without ever regressing: REJECTED and CANCELLED are
 * final, otherwise the later lifecycle stage wins, whatever order the events
 * of different topics arrive in. */
flow_status_t flow_status_fold(flow_status_t cur, flow_status_t next);

int flow_status_is_final(flow_status_t s);

/* "12345" cents -> "123.45"; negative amounts keep their sign. */
void flow_format_cents(int64_t cents, char *buf, size_t size);

#endif
