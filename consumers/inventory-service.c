/*
 * inventory-service: OrderPlaced -> StockReserved | StockRejected;
 * PaymentAuthorized -> the units sold; PaymentDeclined -> StockReleased
 * (the saga's compensation).
 *
 * Stock is keyed by SKU, orders by order id, so the service is two halves
 * joined by internal topics (docs/FLOW.md, "inventory-service"):
 *   order side (partitioned like `orders`): checks the order, keeps its
 *     OrderReservation and asks for its lines one at a time, in SKU order,
 *     with RESERVE commands on inventory.lines (keyed by SKU); gathers the
 *     answers from inventory.line-results and decides all or nothing
 *     (CANCELs the holds of a rejected order); once the payment is decided
 *     CONFIRMs the holds (sold) or CANCELs them (given back).
 *   SKU side (partitioned like inventory.lines): one owner per SKU decides
 *     its requests in arrival order, so two orders racing for the last unit
 *     cannot both win, whatever the number of instances. A request that
 *     only units held for undecided orders stand in the way of waits for
 *     them instead of being refused. Holds and waiting requests are
 *     entries of their own (SkuHold, under the SKU's key), so that a
 *     command costs the same however many orders hold or wait.
 * Every step is idempotent: an order's record knows the events it applied,
 * a SKU's record knows the offset of the last command applied to it, a
 * CONFIRM or CANCEL without a hold changes nothing, and a replay re-sends
 * identical events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libconfig.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "inventory-service"

typedef struct {
    evk_store_t *stock;        /* SkuStock by SKU */
    evk_store_t *holds;        /* SkuHold entries under a SKU's key (the SKU side) */
    evk_store_t *reservations; /* OrderReservation by order id */
    const char *seed_file;
    config_t seed; /* stock = ( { sku = "SKU-1"; available = 100; }, ... ); */
    int have_seed;
} inventory_t;

/* ---- settings and the seed ---- */

static evk_err_t load_seed(inventory_t *inv, char *errstr, size_t errstr_size) {
    config_init(&inv->seed);
    inv->have_seed = 1;
    if (!config_read_file(&inv->seed, inv->seed_file)) {
        snprintf(errstr, errstr_size, "%s.seed_file: %s:%d: %s", NAME, inv->seed_file,
                 config_error_line(&inv->seed), config_error_text(&inv->seed));
        return EVK_ERR_CONFIG;
    }
    const config_setting_t *stock = config_lookup(&inv->seed, "stock");
    for (int i = 0; stock && i < config_setting_length(stock); i++) {
        const config_setting_t *e = config_setting_get_elem(stock, i);
        const char *sku;
        long long available;
        if (!config_setting_lookup_string(e, "sku", &sku) ||
            !config_setting_lookup_int64(e, "available", &available) || available < 0) {
            snprintf(errstr, errstr_size, "%s:%u: a stock entry needs sku and available (>= 0)",
                     inv->seed_file, config_setting_source_line(e));
            return EVK_ERR_CONFIG;
        }
    }
    return EVK_OK;
}

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    inventory_t *inv = state;
    inv->seed_file = evk_config_get_string(cfg, NAME ".seed_file", NULL);
    evk_err_t err = inv->seed_file ? load_seed(inv, errstr, errstr_size) : EVK_OK;
    if (!err) err = evk_service_add_store(svc, "SkuStock", &inv->stock, errstr, errstr_size);
    if (!err) err = evk_service_add_store(svc, "SkuHold", &inv->holds, errstr, errstr_size);
    if (!err)
        err = evk_service_add_store(svc, "OrderReservation", &inv->reservations, errstr,
                                    errstr_size);
    return err;
}

static void cleanup(void *state) {
    inventory_t *inv = state;
    if (inv->have_seed) config_destroy(&inv->seed);
}

/* A SKU's units before its first order: its seed entry; -1 if it has none. */
static int64_t seed_units(const inventory_t *inv, const char *sku) {
    const config_setting_t *stock = inv->have_seed ? config_lookup(&inv->seed, "stock") : NULL;
    for (int i = 0; stock && i < config_setting_length(stock); i++) {
        const config_setting_t *e = config_setting_get_elem(stock, i);
        const char *s;
        long long n;
        if (config_setting_lookup_string(e, "sku", &s) && !strcmp(s, sku) &&
            config_setting_lookup_int64(e, "available", &n))
            return n;
    }
    return -1;
}

/* ---- shared helpers ---- */

/* Field @p f of element @p i of array @p array ("lines", "items"). */
static int64_t elem_long(const evk_event_t *ev, const char *array, size_t i, const char *f) {
    char path[64];
    snprintf(path, sizeof path, "%s[%zu].%s", array, i, f);
    return flow_long(ev, path);
}

static const char *elem_str(const evk_event_t *ev, const char *array, size_t i, const char *f) {
    char path[64];
    snprintf(path, sizeof path, "%s[%zu].%s", array, i, f);
    return flow_str(ev, path);
}

static size_t count_of(const evk_event_t *ev, const char *array) {
    size_t n = 0;
    return evk_event_array_size(ev, array, &n) == EVK_OK ? n : 0;
}

/* The input's event id; for a producer that sends none, its position, which
 * a redelivery keeps too. */
static const char *cause_id(const evk_event_t *in, char *buf, size_t size) {
    const char *topic;
    int32_t partition;
    int64_t offset;
    if (evk_event_id(in)) return evk_event_id(in);
    evk_event_origin(in, &topic, &partition, &offset);
    snprintf(buf, size, "%s/%d/%lld", topic ? topic : "", (int)partition, (long long)offset);
    return buf;
}

/* ---- the order side: OrderReservation records ---- */

typedef enum { R_PENDING, R_RESERVED, R_REJECTED, R_SOLD, R_RETURNED } resv_status_t;
static const char *const resv_status[] = {"PENDING", "RESERVED", "REJECTED", "SOLD",
                                          "RETURNED"};

static resv_status_t status_of(const evk_event_t *res) {
    const char *s = flow_str(res, "status");
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, resv_status[i])) return (resv_status_t)i;
    return R_PENDING;
}

/* The command's id is derived from @p base (the event that made the order
 * send it) and the action and SKU, so a re-sent command has the same id. */
static evk_err_t send_command(evk_ctx_t *ctx, const char *base, const char *action,
                              const char *order_id, const char *sku, int64_t quantity) {
    char label[300];
    snprintf(label, sizeof label, "%s:%s", action, sku);
    evk_event_t *cmd = flow_derived_event(ctx, "StockLineCommand", base, label);
    if (!cmd) return EVK_ERR_NOMEM;
    evk_err_t err =
        flow_set_strs(cmd, "order_id", order_id, "sku", sku, "action", action, NULL);
    if (!err) err = evk_event_set_long(cmd, "quantity", quantity);
    if (!err) err = evk_event_set_key(cmd, sku);
    return flow_emit(ctx, cmd, err);
}

/* One command per line of @res in state @only (NULL: every line). */
static evk_err_t send_commands(evk_ctx_t *ctx, const evk_event_t *res, const char *base,
                               const char *action, const char *only) {
    evk_err_t err = EVK_OK;
    for (size_t i = 0, n = count_of(res, "lines"); i < n && !err; i++) {
        if (only && strcmp(elem_str(res, "lines", i, "state"), only)) continue;
        err = send_command(ctx, base, action, flow_str(res, "order_id"),
                           elem_str(res, "lines", i, "sku"),
                           elem_long(res, "lines", i, "quantity"));
    }
    return err;
}

/* The index of the order's first line still PENDING, or -1. */
static long pending_line(const evk_event_t *res) {
    for (size_t i = 0, n = count_of(res, "lines"); i < n; i++)
        if (!strcmp(elem_str(res, "lines", i, "state"), "PENDING")) return (long)i;
    return -1;
}

/* The index of the order's last line still PENDING, or -1. */
static long last_pending_line(const evk_event_t *res) {
    for (size_t i = count_of(res, "lines"); i-- > 0;)
        if (!strcmp(elem_str(res, "lines", i, "state"), "PENDING")) return (long)i;
    return -1;
}

/* The RESERVE of the order's first line still PENDING: lines are taken one
 * at a time in SKU order, so that holds are always taken in one global
 * order and a request that waits for held units never waits on itself. */
static evk_err_t send_next_reserve(evk_ctx_t *ctx, const evk_event_t *res) {
    long i = pending_line(res);
    if (i < 0) return EVK_OK;
    return send_command(ctx, flow_str(res, "placed_id"), "RESERVE", flow_str(res, "order_id"),
                        elem_str(res, "lines", (size_t)i, "sku"),
                        elem_long(res, "lines", (size_t)i, "quantity"));
}

static evk_err_t copy_lines(const evk_event_t *from, evk_event_t *to, const char *array) {
    evk_err_t err = EVK_OK;
    for (size_t i = 0, n = count_of(from, array); i < n && !err; i++)
        err = flow_append_stock_line(to, elem_str(from, "lines", i, "sku"),
                                     elem_long(from, "lines", i, "quantity"));
    return err;
}

static evk_err_t emit_rejected(evk_ctx_t *ctx, const evk_event_t *res, const char *sku) {
    evk_event_t *out =
        flow_derived_event(ctx, "StockRejected", flow_str(res, "placed_id"), "decision");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err =
        flow_set_strs(out, "order_id", flow_str(res, "order_id"), "customer_id",
                      flow_str(res, "customer_id"), "reason", flow_str(res, "reason"), NULL);
    if (!err && sku) err = evk_event_set_string(out, "sku", sku);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "rejected", "order_id", flow_str(res, "order_id"), "reason",
                flow_str(res, "reason"), NULL);
    return flow_emit(ctx, out, err);
}

static evk_err_t emit_reserved(evk_ctx_t *ctx, const evk_event_t *res) {
    evk_event_t *out =
        flow_derived_event(ctx, "StockReserved", flow_str(res, "placed_id"), "decision");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err = flow_set_strs(out, "order_id", flow_str(res, "order_id"), "customer_id",
                                  flow_str(res, "customer_id"), "currency",
                                  flow_str(res, "currency"), NULL);
    if (!err) err = evk_event_set_long(out, "total_cents", flow_long(res, "total_cents"));
    if (!err) err = copy_lines(res, out, "lines");
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "reserved", "order_id", flow_str(res, "order_id"), NULL);
    return flow_emit(ctx, out, err);
}

/* The first rejected line, or NULL. */
static const char *rejected_sku(const evk_event_t *res) {
    for (size_t i = 0, n = count_of(res, "lines"); i < n; i++)
        if (!strcmp(elem_str(res, "lines", i, "state"), "REJECTED"))
            return elem_str(res, "lines", i, "sku");
    return NULL;
}

/* What a decided order sends: the outcome, and for a rejection the holds
 * given back (a reserved order's holds wait for its payment). */
static evk_err_t send_decision(evk_ctx_t *ctx, const evk_event_t *res) {
    if (status_of(res) != R_REJECTED) return emit_reserved(ctx, res);
    evk_err_t err = emit_rejected(ctx, res, rejected_sku(res));
    return err ? err
               : send_commands(ctx, res, flow_str(res, "placed_id"), "CANCEL", "RESERVED");
}

/* Copy of @old with the given changes; NULL strings keep @old's value. */
typedef struct {
    const char *status, *reason;
    const char *line_sku, *line_state, *line_reason; /* one line's answer */
    const char *payment_id;
} resv_change_t;

static evk_err_t copy_resv_lines(const evk_event_t *old, evk_event_t *res,
                                 const resv_change_t *c) {
    evk_err_t err = EVK_OK;
    char path[64];
    for (size_t i = 0, n = count_of(old, "lines"); i < n && !err; i++) {
        size_t k;
        const char *sku = elem_str(old, "lines", i, "sku");
        int mine = c->line_sku && !strcmp(sku, c->line_sku);
        err = evk_event_append(res, "lines", &k);
        snprintf(path, sizeof path, "lines[%zu].sku", k);
        if (!err) err = evk_event_set_string(res, path, sku);
        snprintf(path, sizeof path, "lines[%zu].quantity", k);
        if (!err) err = evk_event_set_long(res, path, elem_long(old, "lines", i, "quantity"));
        snprintf(path, sizeof path, "lines[%zu].state", k);
        if (!err)
            err = evk_event_set_string(
                res, path, mine ? c->line_state : elem_str(old, "lines", i, "state"));
        snprintf(path, sizeof path, "lines[%zu].reason", k);
        if (!err)
            err = evk_event_set_string(
                res, path, mine ? c->line_reason : elem_str(old, "lines", i, "reason"));
    }
    return err;
}

static evk_err_t put_changed(evk_ctx_t *ctx, inventory_t *inv, const evk_event_t *old,
                             const resv_change_t *c, evk_event_t **out) {
    evk_event_t *res = evk_ctx_new_event(ctx, "OrderReservation");
    if (!res) return EVK_ERR_NOMEM;
    evk_err_t err = flow_set_strs(
        res, "order_id", flow_str(old, "order_id"), "placed_id", flow_str(old, "placed_id"),
        "customer_id", flow_str(old, "customer_id"), "currency", flow_str(old, "currency"),
        "status", c->status ? c->status : flow_str(old, "status"), "reason",
        c->reason ? c->reason : flow_str(old, "reason"), "payment_id",
        c->payment_id ? c->payment_id : flow_str(old, "payment_id"), NULL);
    if (!err) err = evk_event_set_long(res, "total_cents", flow_long(old, "total_cents"));
    if (!err) err = copy_resv_lines(old, res, c);
    if (err) {
        evk_event_destroy(res);
        return err;
    }
    *out = res;
    return evk_store_put(ctx, inv->reservations, res);
}

/* ---- OrderPlaced ---- */

static evk_err_t read_order(const evk_event_t *in, flow_line_t **lines, flow_order_t *o) {
    size_t n = count_of(in, "items");
    *lines = calloc(n ? n : 1, sizeof **lines);
    if (!*lines) return EVK_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        (*lines)[i].sku = elem_str(in, "items", i, "sku");
        (*lines)[i].quantity = elem_long(in, "items", i, "quantity");
        (*lines)[i].unit_price_cents = elem_long(in, "items", i, "unit_price_cents");
    }
    *o = (flow_order_t){flow_str(in, "order_id"), flow_str(in, "customer_id"),
                        flow_str(in, "currency"), *lines, n};
    return EVK_OK;
}

static int by_sku(const void *a, const void *b) {
    return strcmp(((const flow_line_t *)a)->sku, ((const flow_line_t *)b)->sku);
}

static evk_err_t new_reservation(evk_ctx_t *ctx, const evk_event_t *in, const flow_order_t *o,
                                 int64_t total, const char *reason, evk_event_t **out) {
    evk_event_t *res = evk_ctx_new_event(ctx, "OrderReservation");
    if (!res) return EVK_ERR_NOMEM;
    char id[300];
    evk_err_t err =
        flow_set_strs(res, "order_id", o->order_id, "placed_id", cause_id(in, id, sizeof id),
                      "customer_id", o->customer_id, "currency", o->currency, "status",
                      reason ? "REJECTED" : "PENDING", "reason", reason ? reason : "", NULL);
    if (!err) err = evk_event_set_long(res, "total_cents", total);
    char path[64];
    for (size_t i = 0; i < o->n && !reason && !err; i++) {
        size_t k;
        err = evk_event_append(res, "lines", &k);
        snprintf(path, sizeof path, "lines[%zu].sku", k);
        if (!err) err = evk_event_set_string(res, path, o->lines[i].sku);
        snprintf(path, sizeof path, "lines[%zu].quantity", k);
        if (!err) err = evk_event_set_long(res, path, o->lines[i].quantity);
    }
    if (err) {
        evk_event_destroy(res);
        return err;
    }
    *out = res;
    return EVK_OK;
}

/* A broken order is a business rejection, decided here without the SKUs. */
static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    inventory_t *inv = opaque;
    char id[300];
    const evk_event_t *old = evk_store_get(inv->reservations, flow_str(in, "order_id"));
    if (old && strcmp(flow_str(old, "placed_id"), cause_id(in, id, sizeof id))) {
        evk_log(EVK_LOG_WARN, NAME, "order id placed twice: the second order is ignored",
                "order_id", flow_str(in, "order_id"), "event_id", evk_event_id(in), NULL);
        return EVK_OK;
    }
    if (old) /* a redelivery: send again what it sent */
        return status_of(old) == R_PENDING ? send_next_reserve(ctx, old)
               : count_of(old, "lines")    ? EVK_OK
                                           : emit_rejected(ctx, old, NULL);
    flow_line_t *lines;
    flow_order_t o;
    int64_t total = 0;
    char reason[256];
    evk_err_t err = read_order(in, &lines, &o);
    if (err) return err;
    int valid = flow_check_order(&o, &total, reason, sizeof reason);
    if (valid) o.n = flow_merge_lines(lines, o.n);
    qsort(lines, o.n, sizeof *lines, by_sku);
    evk_event_t *res = NULL;
    err = new_reservation(ctx, in, &o, total, valid ? NULL : reason, &res);
    free(lines);
    if (err) return err;
    /* put consumes res; it stays readable as the store's value. */
    err = evk_store_put(ctx, inv->reservations, res);
    if (!err) err = valid ? send_next_reserve(ctx, res) : emit_rejected(ctx, res, NULL);
    return err;
}

/* ---- StockLineResult: the SKU owners' answers ---- */

/* The state of @p sku's line, or NULL when the order has none. */
static const char *line_state(const evk_event_t *res, const char *sku) {
    for (size_t i = 0, n = count_of(res, "lines"); i < n; i++)
        if (!strcmp(elem_str(res, "lines", i, "sku"), sku))
            return elem_str(res, "lines", i, "state");
    return NULL;
}

/* Whether the answer for @p sku (@p reserved or not) is the one that decided
 * the order @p res: the refusal of the line it was rejected for, or, while
 * the payment is open, the grant of its last line (lines are asked for in
 * order). */
static int decided_by(const evk_event_t *res, const char *sku, int reserved) {
    size_t n = res ? count_of(res, "lines") : 0;
    const char *state = n ? line_state(res, sku) : NULL;
    if (!state) return 0;
    if (!reserved) return status_of(res) == R_REJECTED && !strcmp(state, "REJECTED");
    return status_of(res) == R_RESERVED && !strcmp(elem_str(res, "lines", n - 1, "sku"), sku);
}

/* An answer that arrives when the order has moved on. A redelivery of the
 * one that decided it sends the decision again, the same events with the
 * same ids: on a broker without full transactions a crash can leave the
 * order's record written and its decision unsent. Another grant is a
 * redelivery too, or (on a broker that shows aborted records) one that the
 * SKU's owner made again after its CONFIRM or CANCEL went by: what the
 * order's state says about those units is sent again, so that none stays
 * held: kept while the payment is open, sold once paid, given back
 * otherwise. Another refusal holds nothing. */
static evk_err_t late_answer(evk_ctx_t *ctx, const evk_event_t *in, const evk_event_t *res,
                             const char *state) {
    int reserved = 0;
    evk_event_get_bool(in, "reserved", &reserved);
    resv_status_t st = res ? status_of(res) : R_REJECTED;
    if (st == R_PENDING) return send_next_reserve(ctx, res);
    if (decided_by(res, flow_str(in, "sku"), reserved)) return send_decision(ctx, res);
    if (!reserved || (st == R_RESERVED && state && !strcmp(state, "RESERVED"))) return EVK_OK;
    const char *action =
        st == R_SOLD && state && !strcmp(state, "RESERVED") ? "CONFIRM" : "CANCEL";
    char id[300];
    if (strcmp(action, "CONFIRM"))
        evk_log(EVK_LOG_INFO, NAME,
                "units granted to an order that is not waiting for them: "
                "given back",
                "order_id", flow_str(in, "order_id"), "sku", flow_str(in, "sku"), NULL);
    return send_command(ctx, cause_id(in, id, sizeof id), action, flow_str(in, "order_id"),
                        flow_str(in, "sku"), 0);
}

static evk_err_t on_result(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    inventory_t *inv = opaque;
    const evk_event_t *old = evk_store_get(inv->reservations, flow_str(in, "order_id"));
    const char *state = old ? line_state(old, flow_str(in, "sku")) : NULL;
    if (!state || strcmp(state, "PENDING") || status_of(old) != R_PENDING)
        return late_answer(ctx, in, state ? old : NULL, state);
    int reserved = 0;
    evk_event_get_bool(in, "reserved", &reserved);
    resv_change_t c = {.line_sku = flow_str(in, "sku"),
                       .line_state = reserved ? "RESERVED" : "REJECTED",
                       .line_reason = flow_str(in, "reason")};
    if (!reserved) { /* all or nothing: one refused line decides the order */
        c.status = "REJECTED";
        c.reason = c.line_reason;
    } else if (pending_line(old) == last_pending_line(old)) { /* this was the last one */
        c.status = "RESERVED";
    }
    evk_event_t *res = NULL;
    evk_err_t err = put_changed(ctx, inv, old, &c, &res);
    if (err) return err;
    return c.status ? send_decision(ctx, res) : send_next_reserve(ctx, res);
}

/* ---- the payment's outcome: the holds sold or given back ---- */

static evk_err_t emit_released(evk_ctx_t *ctx, const evk_event_t *res, const char *why) {
    evk_event_t *out =
        flow_derived_event(ctx, "StockReleased", flow_str(res, "payment_id"), "released");
    if (!out) return EVK_ERR_NOMEM;
    char reason[300];
    snprintf(reason, sizeof reason, "payment declined: %s", why);
    evk_err_t err =
        flow_set_strs(out, "order_id", flow_str(res, "order_id"), "reason", reason, NULL);
    if (!err) err = copy_lines(res, out, "lines");
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "released", "order_id", flow_str(res, "order_id"), NULL);
    return flow_emit(ctx, out, err);
}

/* What the payment's outcome sends: a CONFIRM per line once paid; a CANCEL
 * per line and StockReleased once declined. */
static evk_err_t send_settlement(evk_ctx_t *ctx, const evk_event_t *res, const char *why) {
    int paid = status_of(res) == R_SOLD;
    evk_err_t err =
        send_commands(ctx, res, flow_str(res, "payment_id"), paid ? "CONFIRM" : "CANCEL", NULL);
    return err || paid ? err : emit_released(ctx, res, why);
}

/* PaymentAuthorized -> SOLD, PaymentDeclined -> RETURNED. A redelivery of
 * the outcome applied sends the same again. */
static evk_err_t on_payment(evk_ctx_t *ctx, const evk_event_t *in, inventory_t *inv,
                            resv_status_t outcome) {
    char buf[300];
    const char *id = cause_id(in, buf, sizeof buf), *why = flow_str(in, "reason");
    const evk_event_t *old = evk_store_get(inv->reservations, flow_str(in, "order_id"));
    resv_status_t st = old ? status_of(old) : R_PENDING;
    if (old && (st == R_SOLD || st == R_RETURNED))
        return strcmp(flow_str(old, "payment_id"), id) ? EVK_OK
                                                       : send_settlement(ctx, old, why);
    if (!old || st != R_RESERVED) {
        evk_log(EVK_LOG_WARN, NAME, "payment outcome for an order with no reservation here",
                "order_id", flow_str(in, "order_id"), NULL);
        return EVK_OK;
    }
    resv_change_t c = {.status = resv_status[outcome], .payment_id = id};
    evk_event_t *res = NULL;
    evk_err_t err = put_changed(ctx, inv, old, &c, &res);
    return err ? err : send_settlement(ctx, res, why);
}

static evk_err_t on_authorized(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    return on_payment(ctx, in, opaque, R_SOLD);
}

static evk_err_t on_declined(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    return on_payment(ctx, in, opaque, R_RETURNED);
}

/* ---- the SKU side ---- */

/* A SKU's record as plain data; strings are borrowed from the events. Its
 * holds and waiting requests are SkuHold entries under the SKU's key
 * (entry_key), so that a command costs the same however many orders hold
 * or wait for the SKU: per order "<sku> SEP <order>" (HELD or WAITING),
 * and per turn in the waiting line "<sku> SEP SEP <seq>" (QUEUED; an order
 * id has no control characters, so the two kinds cannot meet).
 *
 * A command's writes reach the SKU's changelog partition in the order they
 * are made: its entries, then the SKU's record, then the tombstones of the
 * entries it deleted (GONE until then). A broker that shows what an
 * aborted or unfinished transaction wrote (the dev broker does) may leave a
 * restore with any prefix of them. So each entry names the command that
 * wrote it (at) and keeps what it was before; until the SKU's record says
 * that command was applied, the earlier value counts, and the command,
 * redelivered, runs again on the state it first ran on. */
typedef struct {
    char *key;
    int gone; /* deleted: its tombstone follows the SKU's record */
} written_t;

typedef struct {
    const char *sku;
    int64_t available, held_units, applied_offset;
    int64_t wait_head, wait_next; /* the waiting line's turns: [head, next) */
    int64_t base_offset;          /* applied_offset as the record has it */
    int64_t offset;               /* the command in hand */
    written_t *written;           /* the entries it wrote */
    size_t nwritten;
} sku_t;

/* @p s from the SKU's record, or from its seed entry before its first
 * order, for the command at @p offset. Unknown: available -1. */
static void sku_read(const inventory_t *inv, const char *sku, int64_t offset, sku_t *s) {
    const evk_event_t *rec = evk_store_get(inv->stock, sku);
    *s = (sku_t){.sku = sku,
                 .available = rec ? flow_long(rec, "available") : seed_units(inv, sku),
                 .held_units = rec ? flow_long(rec, "held_units") : 0,
                 .applied_offset = rec ? flow_long(rec, "applied_offset") : -1,
                 .wait_head = rec ? flow_long(rec, "wait_head") : 0,
                 .wait_next = rec ? flow_long(rec, "wait_next") : 0,
                 .offset = offset};
    s->base_offset = s->applied_offset;
}

static void sku_done(sku_t *s) {
    for (size_t i = 0; i < s->nwritten; i++)
        free(s->written[i].key);
    free(s->written);
}

static written_t *sku_wrote(const sku_t *s, const char *key) {
    for (size_t i = 0; i < s->nwritten; i++)
        if (!strcmp(s->written[i].key, key)) return &s->written[i];
    return NULL;
}

/* Remember that the command wrote @p key (GONE if @p gone). */
static evk_err_t sku_note(sku_t *s, const char *key, int gone) {
    written_t *w = sku_wrote(s, key);
    if (!w) {
        char *copy = strdup(key);
        written_t *grown = copy ? realloc(s->written, (s->nwritten + 1) * sizeof *grown) : NULL;
        if (!grown) {
            free(copy);
            return EVK_ERR_NOMEM;
        }
        s->written = grown;
        w = &s->written[s->nwritten++];
        *w = (written_t){copy, 0};
    }
    w->gone = gone;
    return EVK_OK;
}

static evk_err_t sku_write(evk_ctx_t *ctx, inventory_t *inv, const sku_t *s) {
    evk_event_t *ev = evk_ctx_new_event(ctx, "SkuStock");
    if (!ev) return EVK_ERR_NOMEM;
    evk_err_t err = evk_event_set_string(ev, "sku", s->sku);
    if (!err) err = evk_event_set_long(ev, "available", s->available);
    if (!err) err = evk_event_set_long(ev, "held_units", s->held_units);
    if (!err) err = evk_event_set_long(ev, "applied_offset", s->applied_offset);
    if (!err) err = evk_event_set_long(ev, "wait_head", s->wait_head);
    if (!err) err = evk_event_set_long(ev, "wait_next", s->wait_next);
    if (err) {
        evk_event_destroy(ev);
        return err;
    }
    return evk_store_put(ctx, inv->stock, ev);
}

/* The SKU's record, then the tombstones of the entries the command
 * deleted: the record first, so that no restore misses an entry the
 * command's earlier value still counts. */
static evk_err_t sku_commit(evk_ctx_t *ctx, inventory_t *inv, const sku_t *s) {
    evk_err_t err = sku_write(ctx, inv, s);
    for (size_t i = 0; i < s->nwritten && !err; i++)
        if (s->written[i].gone) err = evk_store_delete(ctx, inv->holds, s->written[i].key);
    return err;
}

/* ---- SkuHold entries ---- */

typedef struct {
    const char *order_id, *state, *command_id;
    int64_t quantity, seq;
} entry_t;

/* "<sku> SEP <order>", or with @p order_id NULL the turn @p seq's key;
 * malloc()ed, NULL when out of memory. */
static char *entry_key(const char *sku, const char *order_id, int64_t seq) {
    char turn[32];
    snprintf(turn, sizeof turn, EVK_STORE_KEY_SEP "%020lld", (long long)seq);
    const char *sub = order_id ? order_id : turn;
    size_t n = strlen(sku) + strlen(EVK_STORE_KEY_SEP) + strlen(sub) + 1;
    char *key = malloc(n);
    if (key) snprintf(key, n, "%s" EVK_STORE_KEY_SEP "%s", sku, sub);
    return key;
}

/* Stored entry @p e's value, or with @p before its value from before the
 * command that wrote it. */
static entry_t entry_fields(const evk_event_t *e, int before) {
    if (before)
        return (entry_t){flow_str(e, "before_order_id"), flow_str(e, "before_state"),
                         flow_str(e, "before_command_id"), flow_long(e, "before_quantity"),
                         flow_long(e, "before_seq")};
    return (entry_t){flow_str(e, "order_id"), flow_str(e, "state"), flow_str(e, "command_id"),
                     flow_long(e, "quantity"), flow_long(e, "seq")};
}

/* No entry (all NULL/0) for GONE and for "nothing before". */
static entry_t entry_live(entry_t v) {
    return !*v.state || !strcmp(v.state, "GONE") ? (entry_t){0} : v;
}

/* What stored entry @p e counts as for the command in hand: its value, or
 * the one before it was written by a command the SKU's record does not
 * have yet (and which is not the command in hand, running now). */
static entry_t entry_value(const sku_t *s, const char *key, const evk_event_t *e) {
    if (!e) return (entry_t){0};
    return entry_live(
        entry_fields(e, flow_long(e, "at") > s->base_offset && !sku_wrote(s, key)));
}

/* What the entry was before the command in hand: the value it counts as,
 * or, once the command has written it, the earlier value kept with it. */
static entry_t entry_before(const sku_t *s, const char *key, const evk_event_t *e) {
    if (!e || !sku_wrote(s, key)) return entry_value(s, key, e);
    return entry_live(entry_fields(e, 1));
}

/* *out from the entry, or all NULL/0 when there is none. */
static evk_err_t entry_get(const inventory_t *inv, const sku_t *s, const char *order_id,
                           int64_t seq, entry_t *out) {
    char *key = entry_key(s->sku, order_id, seq);
    if (!key) return EVK_ERR_NOMEM;
    *out = entry_value(s, key, evk_store_get(inv->holds, key));
    free(key);
    return EVK_OK;
}

static evk_err_t entry_fill(evk_event_t *h, const char *sku, const entry_t *v,
                            const entry_t *was, int64_t at) {
    evk_err_t err = flow_set_strs(
        h, "sku", sku, "order_id", v->order_id ? v->order_id : "", "state", v->state,
        "command_id", v->command_id ? v->command_id : "", "before_state",
        was->state ? was->state : "", "before_order_id", was->order_id ? was->order_id : "",
        "before_command_id", was->command_id ? was->command_id : "", NULL);
    if (!err) err = evk_event_set_long(h, "quantity", v->quantity);
    if (!err) err = evk_event_set_long(h, "seq", v->seq);
    if (!err) err = evk_event_set_long(h, "at", at);
    if (!err) err = evk_event_set_long(h, "before_quantity", was->quantity);
    if (!err) err = evk_event_set_long(h, "before_seq", was->seq);
    return err;
}

/* Write entry @p v (by its order, or by its turn if @p by_turn), keeping
 * what it was before the command in hand. */
static evk_err_t entry_put(evk_ctx_t *ctx, inventory_t *inv, sku_t *s, int by_turn,
                           const entry_t *v) {
    char *key = entry_key(s->sku, by_turn ? NULL : v->order_id, v->seq);
    evk_event_t *h = key ? evk_ctx_new_event(ctx, "SkuHold") : NULL;
    evk_err_t err = h ? EVK_OK : EVK_ERR_NOMEM;
    if (!err) {
        entry_t was = entry_before(s, key, evk_store_get(inv->holds, key));
        err = entry_fill(h, s->sku, v, &was, s->offset);
    }
    if (!err) err = evk_event_set_key(h, key);
    if (!err) err = sku_note(s, key, !strcmp(v->state, "GONE"));
    free(key);
    if (err) {
        evk_event_destroy(h);
        return err;
    }
    return evk_store_put(ctx, inv->holds, h);
}

/* Delete the order's entry, or with @p order_id NULL the turn @p seq. */
static evk_err_t entry_delete(evk_ctx_t *ctx, inventory_t *inv, sku_t *s, const char *order_id,
                              int64_t seq) {
    entry_t cur;
    evk_err_t err = entry_get(inv, s, order_id, seq, &cur);
    if (err || !cur.state) return err;
    entry_t gone = {order_id, "GONE", "", 0, seq};
    return entry_put(ctx, inv, s, !order_id, &gone);
}

/* The answer to the RESERVE @p command_id, keyed by its order (so it reaches
 * the order's partition of inventory.line-results). */
static evk_err_t answer(evk_ctx_t *ctx, const char *command_id, const char *order_id,
                        const char *sku, int reserved, const char *reason) {
    evk_event_t *out = flow_derived_event(ctx, "StockLineResult", command_id, "answer");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err =
        flow_set_strs(out, "order_id", order_id, "sku", sku, "reason", reason, NULL);
    if (!err) err = evk_event_set_bool(out, "reserved", reserved);
    if (!err) err = evk_event_set_key(out, order_id);
    return flow_emit(ctx, out, err);
}

/* Grant @p w's units: they become the order's hold. */
static evk_err_t grant(evk_ctx_t *ctx, inventory_t *inv, sku_t *s, const entry_t *w) {
    s->available -= w->quantity;
    s->held_units += w->quantity;
    entry_t held = {w->order_id, "HELD", "", w->quantity, -1};
    evk_err_t err = entry_put(ctx, inv, s, 0, &held);
    return err ? err : answer(ctx, w->command_id, w->order_id, s->sku, 1, "");
}

/* The turn at the head of the waiting line, and whether its order still
 * waits with it (a CANCEL may have withdrawn it). */
static evk_err_t head_turn(const inventory_t *inv, const sku_t *s, entry_t *turn, int *live) {
    entry_t mine;
    evk_err_t err = entry_get(inv, s, NULL, s->wait_head, turn);
    if (!err && turn->order_id) err = entry_get(inv, s, turn->order_id, 0, &mine);
    *live = !err && turn->order_id && mine.state && !strcmp(mine.state, "WAITING") &&
            mine.seq == s->wait_head;
    return err;
}

/* Serve the waiting line in arrival order: grant while units are free,
 * refuse a request that even the held units could not serve, and stop at
 * one that they could (its turn comes when a hold is confirmed or given
 * back). */
static evk_err_t drain(evk_ctx_t *ctx, inventory_t *inv, sku_t *s) {
    evk_err_t err = EVK_OK;
    char reason[256];
    while (s->wait_head < s->wait_next && !err) {
        entry_t turn;
        int live;
        err = head_turn(inv, s, &turn, &live);
        if (!err && live && s->available < turn.quantity &&
            s->available + s->held_units >= turn.quantity)
            break;
        if (!err && live && s->available >= turn.quantity) {
            err = grant(ctx, inv, s, &turn);
        } else if (!err && live) {
            flow_can_hold(s->sku, s->available + s->held_units, turn.quantity, reason,
                          sizeof reason);
            err = entry_delete(ctx, inv, s, turn.order_id, 0);
            if (!err) err = answer(ctx, turn.command_id, turn.order_id, s->sku, 0, reason);
        }
        if (!err && turn.order_id) err = entry_delete(ctx, inv, s, NULL, s->wait_head);
        s->wait_head++;
    }
    return err;
}

/* Join the waiting line: an entry for the order and one for its turn. */
static evk_err_t enqueue(evk_ctx_t *ctx, inventory_t *inv, sku_t *s, const char *order_id,
                         int64_t quantity, const char *command_id) {
    entry_t w = {order_id, "WAITING", command_id, quantity, s->wait_next};
    evk_err_t err = entry_put(ctx, inv, s, 0, &w);
    w.state = "QUEUED";
    if (!err) err = entry_put(ctx, inv, s, 1, &w);
    s->wait_next++;
    return err;
}

/* RESERVE. A request that only held units stand in the way of waits for
 * them: orders take their lines in SKU order (the order side), so a hold
 * never waits, directly or not, for its own order, and every wait ends. */
static evk_err_t reserve(evk_ctx_t *ctx, inventory_t *inv, const evk_event_t *cmd, sku_t *s,
                         int64_t offset) {
    const char *order_id = flow_str(cmd, "order_id"), *id = evk_event_id(cmd);
    int64_t quantity = flow_long(cmd, "quantity");
    char reason[256];
    entry_t mine;
    evk_err_t err = entry_get(inv, s, order_id, 0, &mine);
    if (err) return err;
    if (mine.state && !strcmp(mine.state, "HELD"))
        return answer(ctx, id, order_id, s->sku, 1, "");
    if (mine.state) return EVK_OK;     /* waiting: answered in its turn */
    if (offset <= s->applied_offset) { /* a replay of a request refused before */
        snprintf(reason, sizeof reason, "insufficient stock for %s", s->sku);
        return answer(ctx, id, order_id, s->sku, 0, reason);
    }
    if (!flow_can_hold(s->sku, s->available < 0 ? -1 : s->available + s->held_units, quantity,
                       reason, sizeof reason)) {
        flow_can_hold(s->sku, s->available, quantity, reason, sizeof reason);
        s->applied_offset = offset; /* a refusal is a decision, for replays to find */
        err = s->available < 0 ? EVK_OK : sku_commit(ctx, inv, s);
        return err ? err : answer(ctx, id, order_id, s->sku, 0, reason);
    }
    s->applied_offset = offset;
    entry_t w = {order_id, "WAITING", id, quantity, -1};
    if (s->wait_head == s->wait_next && s->available >= quantity) /* nobody before it */
        err = grant(ctx, inv, s, &w);
    else if (!(err = enqueue(ctx, inv, s, order_id, quantity, id)))
        err = drain(ctx, inv, s);
    return err ? err : sku_commit(ctx, inv, s);
}

/* CONFIRM sells a hold's units, CANCEL gives them back (or withdraws a
 * waiting request). Without a hold or request of the order both change
 * nothing, so a repeated one is harmless. */
static evk_err_t release(evk_ctx_t *ctx, inventory_t *inv, const evk_event_t *cmd, sku_t *s,
                         const char *action) {
    const char *order_id = flow_str(cmd, "order_id");
    entry_t mine;
    evk_err_t err = entry_get(inv, s, order_id, 0, &mine);
    if (err) return err;
    if (mine.state && !strcmp(mine.state, "HELD")) {
        if (!strcmp(action, "CANCEL")) s->available += mine.quantity;
        s->held_units -= mine.quantity;
        err = entry_delete(ctx, inv, s, order_id, 0);
    } else if (mine.state && !strcmp(action, "CANCEL")) { /* its turn is skipped */
        err = entry_delete(ctx, inv, s, order_id, 0);
    } else {
        return EVK_OK;
    }
    if (!err) err = drain(ctx, inv, s);
    return err ? err : sku_commit(ctx, inv, s);
}

static evk_err_t on_command(evk_ctx_t *ctx, const evk_event_t *cmd, void *opaque) {
    inventory_t *inv = opaque;
    const char *action = flow_str(cmd, "action");
    int64_t offset;
    evk_event_origin(cmd, NULL, NULL, &offset);
    sku_t s;
    evk_err_t err = EVK_OK;
    sku_read(inv, flow_str(cmd, "sku"), offset, &s);
    if (!strcmp(action, "RESERVE")) {
        err = reserve(ctx, inv, cmd, &s, offset);
    } else if (s.available >= 0 && offset > s.applied_offset) {
        s.applied_offset = offset;
        err = release(ctx, inv, cmd, &s, action);
    }
    sku_done(&s);
    return err;
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {
        {"OrderPlaced", on_placed},       {"PaymentAuthorized", on_authorized},
        {"PaymentDeclined", on_declined}, {"StockLineCommand", on_command},
        {"StockLineResult", on_result},   {NULL, NULL}};
    static const evk_setting_t settings[] = {{"seed_file", EVK_SETTING_STRING}, {NULL, 0}};
    static const flow_service_t def = {.name = NAME,
                                       .routes = routes,
                                       .settings = settings,
                                       .setup = setup,
                                       .cleanup = cleanup};
    inventory_t state = {0};
    return flow_service_main(&def, &state, argc, argv);
}
