/*
 * payment-service: StockReserved -> PaymentAuthorized | PaymentDeclined.
 *
 * The rules are deterministic (docs/FLOW.md, "Payment rules"): a blocked
 * customer or a total above the credit limit is declined, anything else is
 * authorized with an id derived from the order id, so a replay after a crash
 * authorizes with the same id.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "payment-service"

typedef struct {
    flow_payment_rules_t rules;
    const char **blocked;
} payment_t;

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    payment_t *p = state;
    (void)svc;
    evk_err_t err = evk_config_get_int(cfg, NAME ".credit_limit_cents", 100000,
                                       &p->rules.credit_limit_cents, errstr, errstr_size);
    if (!err)
        err = evk_config_get_list(cfg, NAME ".blocked_customers", &p->blocked,
                                  &p->rules.nblocked, errstr, errstr_size);
    p->rules.blocked = p->blocked;
    return err;
}

static void cleanup(void *state) {
    free(((payment_t *)state)->blocked);
}

/* Authorized: the authorization id; declined: the reason and the reserved
 * lines, which inventory-service gives back. */
static evk_err_t fill(evk_event_t *out, const evk_event_t *in, int64_t amount, int ok,
                      const char *reason) {
    const char *order_id = flow_str(in, "order_id");
    evk_err_t err =
        flow_set_strs(out, "order_id", order_id, "customer_id", flow_str(in, "customer_id"),
                      "currency", flow_str(in, "currency"), NULL);
    if (!err) err = evk_event_set_long(out, "amount_cents", amount);
    if (err) return err;
    if (!ok) {
        err = flow_set_strs(out, "reason", reason, NULL);
        return err ? err : flow_copy_stock_lines(in, out);
    }
    char auth[32];
    flow_hash_id("auth-", order_id, auth, sizeof auth);
    return flow_set_strs(out, "authorization_id", auth, NULL);
}

static evk_err_t on_reserved(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    const payment_t *p = opaque;
    int64_t amount = flow_long(in, "total_cents");
    char reason[256] = "", amount_s[24];
    int ok = flow_payment_decide(&p->rules, flow_str(in, "customer_id"), amount, reason,
                                 sizeof reason);
    evk_event_t *out = evk_ctx_new_event(ctx, ok ? "PaymentAuthorized" : "PaymentDeclined");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err = fill(out, in, amount, ok, reason);
    snprintf(amount_s, sizeof amount_s, "%" PRId64, amount);
    if (!err && ok)
        evk_log(EVK_LOG_INFO, NAME, "authorized", "order_id", flow_str(in, "order_id"),
                "amount_cents", amount_s, NULL);
    else if (!err)
        evk_log(EVK_LOG_INFO, NAME, "declined", "order_id", flow_str(in, "order_id"),
                "amount_cents", amount_s, "reason", reason, NULL);
    return flow_emit(ctx, out, err);
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {{"StockReserved", on_reserved}, {NULL, NULL}};
    static const evk_setting_t settings[] = {{"credit_limit_cents", EVK_SETTING_INT},
                                             {"blocked_customers", EVK_SETTING_LIST},
                                             {NULL, 0}};
    static const flow_service_t def = {.name = NAME,
                                       .routes = routes,
                                       .settings = settings,
                                       .setup = setup,
                                       .cleanup = cleanup};
    payment_t state = {0};
    return flow_service_main(&def, &state, argc, argv);
}
