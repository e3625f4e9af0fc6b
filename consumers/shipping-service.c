/*
 * shipping-service: PaymentAuthorized -> ShipmentScheduled -> ShipmentDispatched.
 *
 * Scheduling picks the carrier and the tracking number from the order id, so
 * reprocessing yields the same parcel. Dispatch is a separate step fed by the
 * service's own ShipmentScheduled events, as a warehouse hand-off would be.
 */
#include <stdlib.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "shipping-service"

typedef struct {
    const char **configured;     /* shipping-service.carriers */
    const char *const *carriers; /* configured, or the defaults when none are */
    size_t ncarriers;
} shipping_t;

static const char *const default_carriers[] = {"DHL", "UPS", "DPD"};

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    shipping_t *s = state;
    (void)svc;
    evk_err_t err = evk_config_get_list(cfg, NAME ".carriers", &s->configured, &s->ncarriers,
                                        errstr, errstr_size);
    if (err) return err;
    s->carriers = s->configured;
    if (s->ncarriers == 0) {
        s->carriers = default_carriers;
        s->ncarriers = sizeof default_carriers / sizeof *default_carriers;
    }
    return EVK_OK;
}

static void cleanup(void *state) {
    free(((shipping_t *)state)->configured);
}

/* Emit @type for the order of @in with the given carrier and tracking number;
 * @verb names the decision in the log. */
static evk_err_t emit_shipment(evk_ctx_t *ctx, const evk_event_t *in, const char *type,
                               const char *verb, const char *carrier, const char *tracking) {
    evk_event_t *out = evk_ctx_new_event(ctx, type);
    if (!out) return EVK_ERR_NOMEM;
    const char *order_id = flow_str(in, "order_id");
    evk_err_t err =
        flow_set_strs(out, "order_id", order_id, "customer_id", flow_str(in, "customer_id"),
                      "carrier", carrier, "tracking_number", tracking, NULL);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, verb, "order_id", order_id, "carrier", carrier,
                "tracking_number", tracking, NULL);
    return flow_emit(ctx, out, err);
}

static evk_err_t on_authorized(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    const shipping_t *s = opaque;
    const char *order_id = flow_str(in, "order_id");
    const char *carrier = s->carriers[flow_pick(order_id, s->ncarriers)];
    char tracking[32];
    flow_tracking_number(carrier, order_id, tracking, sizeof tracking);
    return emit_shipment(ctx, in, "ShipmentScheduled", "scheduled", carrier, tracking);
}

static evk_err_t on_scheduled(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    (void)opaque;
    return emit_shipment(ctx, in, "ShipmentDispatched", "dispatched", flow_str(in, "carrier"),
                         flow_str(in, "tracking_number"));
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {{"PaymentAuthorized", on_authorized},
                                          {"ShipmentScheduled", on_scheduled},
                                          {NULL, NULL}};
    static const evk_setting_t settings[] = {{"carriers", EVK_SETTING_LIST}, {NULL, 0}};
    static const flow_service_t def = {.name = NAME,
                                       .routes = routes,
                                       .settings = settings,
                                       .setup = setup,
                                       .cleanup = cleanup};
    shipping_t state = {0};
    return flow_service_main(&def, &state, argc, argv);
}
