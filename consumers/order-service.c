/*
 * order-service: folds every event of an order into its OrderStatus (store
 * changelogged to orders.status, read by `evk-order status`) and announces
 * the outcome: OrderConfirmed on payment, OrderCancelled on rejection or a
 * declined payment.
 *
 * Each topic is consumed independently, so an order's events can arrive in
 * any order (a ShipmentDispatched before its PaymentAuthorized). The fold
 * therefore never regresses a status (flow_status_fold), any event may create
 * the record, and the outcome is announced when the deciding event arrives,
 * whatever the status already is.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "order-service"

typedef struct {
    evk_store_t *orders;
} orders_t;

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    (void)cfg;
    return evk_service_add_store(svc, "OrderStatus", &((orders_t *)state)->orders, errstr,
                                 errstr_size);
}

static int is_failure(flow_status_t s) {
    return s == FLOW_REJECTED || s == FLOW_CANCELLED;
}

/* Does a history entry of @st have @field equal to @value? */
static int history_has(const evk_event_t *st, const char *field, const char *value) {
    size_t n = 0;
    char path[64];
    evk_event_array_size(st, "history", &n);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "history[%zu].%s", i, field);
        if (strcmp(flow_str(st, path), value) == 0) return 1;
    }
    return 0;
}

static const char *const history_fields[] = {"type", "source", "time", "event_id"};

static evk_err_t append_history(evk_event_t *st, const char *const entry[4]) {
    size_t i;
    char path[64];
    evk_err_t err = evk_event_append(st, "history", &i);
    for (int f = 0; f < 4 && !err; f++) {
        snprintf(path, sizeof path, "history[%zu].%s", i, history_fields[f]);
        err = evk_event_set_string(st, path, entry[f] ? entry[f] : "");
    }
    return err;
}

static evk_err_t copy_history(const evk_event_t *from, evk_event_t *to) {
    size_t n = 0;
    char path[64];
    evk_err_t err = EVK_OK;
    evk_event_array_size(from, "history", &n);
    for (size_t i = 0; i < n && !err; i++) {
        const char *entry[4];
        for (int f = 0; f < 4; f++) {
            snprintf(path, sizeof path, "history[%zu].%s", i, history_fields[f]);
            entry[f] = flow_str(from, path);
        }
        err = append_history(to, entry);
    }
    return err;
}

/* The order total an event carries: computed from OrderPlaced's lines, read
 * from the others; 0 if the event does not say. */
static int64_t total_of(const evk_event_t *in) {
    size_t n = 0;
    char q[48], p[48];
    int64_t total = flow_long(in, "total_cents");
    if (!total) total = flow_long(in, "amount_cents");
    if (total || evk_event_array_size(in, "items", &n)) return total;
    uint64_t sum = 0; /* wraps on absurd input rather than overflow */
    for (size_t i = 0; i < n; i++) {
        snprintf(q, sizeof q, "items[%zu].quantity", i);
        snprintf(p, sizeof p, "items[%zu].unit_price_cents", i);
        sum += (uint64_t)flow_long(in, q) * (uint64_t)flow_long(in, p);
    }
    return (int64_t)sum;
}

/* The new record: @old (may be NULL) with @in folded in. */
static evk_err_t fold(evk_event_t *st, const evk_event_t *old, const evk_event_t *in,
                      const char *type, flow_status_t next) {
    const char *customer = flow_str(in, "customer_id"), *reason = NULL;
    int64_t total = total_of(in);
    if (!*customer && old) customer = flow_str(old, "customer_id");
    if (!total && old) total = flow_long(old, "total_cents");
    if (is_failure(flow_status_of_event(type)))
        reason = flow_str(in, "reason");
    else if (old)
        evk_event_get_string(old, "reason", &reason);
    evk_err_t err = flow_set_strs(st, "order_id", flow_str(in, "order_id"), "customer_id",
                                  customer, "status", flow_status_name(next), NULL);
    if (!err) err = evk_event_set_long(st, "total_cents", total);
    if (!err && reason) err = evk_event_set_string(st, "reason", reason);
    if (!err && old) err = copy_history(old, st);
    const char *entry[4] = {type, evk_event_source(in), evk_event_time(in), evk_event_id(in)};
    return err ? err : append_history(st, entry);
}

/* An outcome's id derives from the event that decided it, whichever call
 * (first delivery or a redelivery) makes it. */
static evk_event_t *outcome_event(evk_ctx_t *ctx, const char *type, const evk_event_t *in) {
    return flow_derived_event(ctx, type, evk_event_id(in), "outcome");
}

static evk_err_t emit_confirmed(evk_ctx_t *ctx, const evk_event_t *in) {
    evk_event_t *out = outcome_event(ctx, "OrderConfirmed", in);
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err =
        flow_set_strs(out, "order_id", flow_str(in, "order_id"), "customer_id",
                      flow_str(in, "customer_id"), "currency", flow_str(in, "currency"), NULL);
    if (!err) err = evk_event_set_long(out, "total_cents", flow_long(in, "amount_cents"));
    return flow_emit(ctx, out, err);
}

static evk_err_t emit_cancelled(evk_ctx_t *ctx, const evk_event_t *in, const evk_event_t *st) {
    evk_event_t *out = outcome_event(ctx, "OrderCancelled", in);
    if (!out) return EVK_ERR_NOMEM;
    return flow_emit(ctx, out,
                     flow_set_strs(out, "order_id", flow_str(st, "order_id"), "customer_id",
                                   flow_str(st, "customer_id"), "status",
                                   flow_str(st, "status"), "reason", flow_str(st, "reason"),
                                   NULL));
}

/* Announce the outcome once: confirmation on the (first) PaymentAuthorized,
 * cancellation on the failure that ended the order. */
static evk_err_t announce(evk_ctx_t *ctx, const evk_event_t *in, const evk_event_t *st,
                          const char *type, int first_of_type, flow_status_t prev,
                          flow_status_t next) {
    if (!strcmp(type, "PaymentAuthorized") && first_of_type && !is_failure(next))
        return emit_confirmed(ctx, in);
    if (is_failure(next) && next != prev) return emit_cancelled(ctx, in, st);
    return EVK_OK;
}

/* The event id of the first history entry whose type announces like
 * @p type does (the payment, or a failure), or "". */
static const char *first_deciding(const evk_event_t *st, const char *type) {
    int failure = is_failure(flow_status_of_event(type));
    size_t n = 0;
    char path[64];
    evk_event_array_size(st, "history", &n);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "history[%zu].type", i);
        const char *t = flow_str(st, path);
        if (failure ? is_failure(flow_status_of_event(t)) : !strcmp(t, type)) {
            snprintf(path, sizeof path, "history[%zu].event_id", i);
            return flow_str(st, path);
        }
    }
    return "";
}

/* A redelivered event was folded in already; what it announced then is
 * announced again, with the same id, in case that write was lost (a broker
 * without full transactions can keep part of a transaction). */
static evk_err_t reannounce(evk_ctx_t *ctx, const evk_event_t *in, const evk_event_t *st,
                            const char *type) {
    flow_status_t cur = flow_status_parse(flow_str(st, "status"));
    int deciding = !strcmp(first_deciding(st, type), evk_event_id(in));
    if (!strcmp(type, "PaymentAuthorized") && deciding && !is_failure(cur))
        return emit_confirmed(ctx, in);
    if (is_failure(flow_status_of_event(type)) && deciding && is_failure(cur))
        return emit_cancelled(ctx, in, st);
    return EVK_OK;
}

static evk_err_t on_event(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    orders_t *o = opaque;
    const char *order_id = flow_str(in, "order_id");
    const char *type = evk_schema_name(evk_event_schema(in));
    const evk_event_t *old = evk_store_get(o->orders, order_id);
    if (old && evk_event_id(in) && history_has(old, "event_id", evk_event_id(in)))
        return reannounce(ctx, in, old, type);
    int first_of_type = !old || !history_has(old, "type", type);
    flow_status_t prev = old ? flow_status_parse(flow_str(old, "status")) : FLOW_NONE;
    flow_status_t next = flow_status_fold(prev, flow_status_of_event(type));
    if (next == FLOW_NONE) /* created by a history-only event: it was placed, at least */
        next = FLOW_PLACED;
    evk_event_t *st = evk_ctx_new_event(ctx, "OrderStatus");
    if (!st) return EVK_ERR_NOMEM;
    evk_err_t err = fold(st, old, in, type, next);
    if (!err) err = announce(ctx, in, st, type, first_of_type, prev, next);
    if (err) {
        evk_event_destroy(st);
        return err;
    }
    if (next != prev)
        evk_log(EVK_LOG_INFO, NAME, "status", "order_id", order_id, "status",
                flow_status_name(next), "event", type, NULL);
    return evk_store_put(ctx, o->orders, st);
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {{"OrderPlaced", on_event},
                                          {"StockReserved", on_event},
                                          {"StockRejected", on_event},
                                          {"StockReleased", on_event},
                                          {"PaymentAuthorized", on_event},
                                          {"PaymentDeclined", on_event},
                                          {"ShipmentScheduled", on_event},
                                          {"ShipmentDispatched", on_event},
                                          {NULL, NULL}};
    static const flow_service_t def = {.name = NAME, .routes = routes, .setup = setup};
    orders_t state = {0};
    return flow_service_main(&def, &state, argc, argv);
}
