/* The reference flow's pure decision rules (flow_rules.h). */
#include "flow_rules.h"

#include <evkit/evkit.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

uint64_t flow_fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void flow_hash_id(const char *prefix, const char *s, char *buf, size_t size) {
    snprintf(buf, size, "%s%016" PRIx64, prefix, flow_fnv1a64(s));
}

void flow_tracking_number(const char *carrier, const char *order_id, char *buf, size_t size) {
    char initials[3] = {0};
    size_t n = 0;
    for (const char *c = carrier; *c && n < 2; c++)
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z'))
            initials[n++] = (char)(*c & ~0x20); /* upper case */
    /* Hash a tagged string so the number is not the authorization id's digits. */
    char tagged[512];
    snprintf(tagged, sizeof tagged, "track:%s", order_id);
    snprintf(buf, size, "%s%012" PRIu64, n ? initials : "X",
             flow_fnv1a64(tagged) % UINT64_C(1000000000000));
}

size_t flow_pick(const char *order_id, size_t n) {
    return (size_t)(flow_fnv1a64(order_id) % n);
}

size_t flow_merge_lines(flow_line_t *lines, size_t n) {
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < out && strcmp(lines[j].sku, lines[i].sku) != 0)
            j++;
        if (j < out)
            lines[j].quantity += lines[i].quantity;
        else
            lines[out++] = lines[i];
    }
    return out;
}

int flow_can_hold(const char *sku, int64_t available, int64_t quantity, char *reason,
                  size_t reason_size) {
    if (available < 0)
        snprintf(reason, reason_size, "unknown sku %s", sku);
    else if (available < quantity)
        snprintf(reason, reason_size,
                 "insufficient stock for %s: requested %" PRId64 ", available %" PRId64, sku,
                 quantity, available);
    else
        return 1;
    return 0;
}

int flow_currency_ok(const char *c, size_t len, char *why, size_t why_size) {
    int ok = len == 3;
    for (size_t i = 0; ok && i < len; i++)
        ok = c[i] >= 'A' && c[i] <= 'Z';
    if (!ok)
        snprintf(why, why_size, "must be an ISO 4217 code: three upper-case letters, e.g. EUR");
    return ok;
}

/* @s under the key rule; else 0 with @reason "<field>: <why>". */
static int id_ok(const char *field, const char *s, char *reason, size_t reason_size) {
    char why[128];
    if (!evk_key_check(s ? s : "", s ? strlen(s) : 0, why, sizeof why)) return 1;
    snprintf(reason, reason_size, "%s: %s", field, why);
    return 0;
}

static int line_ok(const flow_line_t *l, size_t i, int64_t *total, char *reason,
                   size_t reason_size) {
    char field[48];
    int64_t amount;
    snprintf(field, sizeof field, "items[%zu].sku", i);
    if (!id_ok(field, l->sku, reason, reason_size)) return 0;
    if (l->quantity < 1)
        snprintf(reason, reason_size, "items[%zu].quantity: must be at least 1, got %" PRId64,
                 i, l->quantity);
    else if (l->unit_price_cents < 0)
        snprintf(reason, reason_size,
                 "items[%zu].unit_price_cents: must not be negative, got %" PRId64, i,
                 l->unit_price_cents);
    else if (__builtin_mul_overflow(l->quantity, l->unit_price_cents, &amount) ||
             __builtin_add_overflow(*total, amount, total))
        snprintf(reason, reason_size, "items[%zu]: order total out of range", i);
    else
        return 1;
    return 0;
}

int flow_check_order(const flow_order_t *o, int64_t *total, char *reason, size_t reason_size) {
    char why[128];
    *total = 0;
    if (!id_ok("order_id", o->order_id, reason, reason_size) ||
        !id_ok("customer_id", o->customer_id, reason, reason_size))
        return 0;
    if (!flow_currency_ok(o->currency ? o->currency : "", o->currency ? strlen(o->currency) : 0,
                          why, sizeof why)) {
        snprintf(reason, reason_size, "currency: %s", why);
        return 0;
    }
    if (o->n == 0) {
        snprintf(reason, reason_size, "items: order has no items");
        return 0;
    }
    for (size_t i = 0; i < o->n; i++)
        if (!line_ok(&o->lines[i], i, total, reason, reason_size)) return 0;
    return 1;
}

int flow_payment_decide(const flow_payment_rules_t *r, const char *customer_id,
                        int64_t amount_cents, char *reason, size_t reason_size) {
    for (size_t i = 0; i < r->nblocked; i++) {
        if (strcmp(r->blocked[i], customer_id) == 0) {
            snprintf(reason, reason_size, "customer %s is blocked", customer_id);
            return 0;
        }
    }
    if (amount_cents > r->credit_limit_cents) {
        snprintf(reason, reason_size, "amount %" PRId64 " exceeds credit limit %" PRId64,
                 amount_cents, r->credit_limit_cents);
        return 0;
    }
    return 1;
}

static const char *const status_names[] = {"",        "PLACED",   "RESERVED", "PAID",
                                           "SHIPPED", "REJECTED", "CANCELLED"};

const char *flow_status_name(flow_status_t s) {
    return status_names[s];
}

flow_status_t flow_status_parse(const char *name) {
    for (size_t i = FLOW_PLACED; i <= FLOW_CANCELLED; i++)
        if (strcmp(status_names[i], name) == 0) return (flow_status_t)i;
    return FLOW_NONE;
}

flow_status_t flow_status_of_event(const char *type) {
    static const struct {
        const char *type;
        flow_status_t status;
    } map[] = {{"OrderPlaced", FLOW_PLACED},        {"StockReserved", FLOW_RESERVED},
               {"StockRejected", FLOW_REJECTED},    {"PaymentAuthorized", FLOW_PAID},
               {"PaymentDeclined", FLOW_CANCELLED}, {"ShipmentDispatched", FLOW_SHIPPED}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].type, type) == 0) return map[i].status;
    return FLOW_NONE;
}

int flow_status_is_final(flow_status_t s) {
    return s == FLOW_SHIPPED || s == FLOW_REJECTED || s == FLOW_CANCELLED;
}

flow_status_t flow_status_fold(flow_status_t cur, flow_status_t next) {
    if (flow_status_is_final(cur) || next == FLOW_NONE) return cur;
    /* A failure ends the order wherever it is; success stages only advance. */
    if (next == FLOW_REJECTED || next == FLOW_CANCELLED) return next;
    return next > cur ? next : cur;
}

void flow_format_cents(int64_t cents, char *buf, size_t size) {
    uint64_t abs = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", abs / 100, abs % 100);
}
