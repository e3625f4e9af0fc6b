/*
 * inventory-service: OrderPlaced -> StockReserved | StockRejected;
 * PaymentDeclined -> StockReleased (the saga's compensation).
 *
 * Stock levels live in a store of StockLevel events keyed by SKU
 * (changelog: inventory.levels). Reservations are all or nothing, and the
 * service handles one event at a time against the store, so two orders racing
 * for the last unit cannot both win. This makes the stock one consistency
 * domain: run one instance (docs/FLOW.md, "inventory-service").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <libconfig.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "inventory-service"

typedef struct {
    evk_store_t *levels;
    const char *seed_file;
} inventory_t;

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    inventory_t *inv = state;
    inv->seed_file = evk_config_get_string(cfg, NAME ".seed_file", NULL);
    return evk_service_add_store(svc, "StockLevel", &inv->levels, errstr, errstr_size);
}

static int64_t stock_of(const char *sku, void *opaque) {
    const evk_event_t *level = evk_store_get(((const inventory_t *)opaque)->levels, sku);
    return level ? flow_long(level, "available") : -1;
}

static evk_err_t put_level(evk_ctx_t *ctx, inventory_t *inv, const char *sku,
                           int64_t available) {
    evk_event_t *level = evk_ctx_new_event(ctx, "StockLevel");
    if (!level) return EVK_ERR_NOMEM;
    /* New events inherit the input's key (an order id); a level is keyed by SKU. */
    evk_err_t err = flow_set_strs(level, "sku", sku, NULL);
    if (!err) err = evk_event_set_long(level, "available", available);
    if (!err) err = evk_event_set_key(level, sku);
    if (err) {
        evk_event_destroy(level);
        return err;
    }
    return evk_store_put(ctx, inv->levels, level);
}

/* libconfig: stock = ( { sku = "SKU-1"; available = 100; }, ... ); */
static evk_err_t seed_from(evk_ctx_t *ctx, inventory_t *inv, const config_t *lc) {
    const config_setting_t *stock = config_lookup(lc, "stock");
    int n = stock ? config_setting_length(stock) : 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(stock, i);
        const char *sku;
        long long available;
        if (!config_setting_lookup_string(e, "sku", &sku) ||
            !config_setting_lookup_int64(e, "available", &available)) {
            char line[16];
            snprintf(line, sizeof line, "%u", config_setting_source_line(e));
            evk_log(EVK_LOG_ERROR, NAME, "bad seed entry: needs sku and available", "file",
                    inv->seed_file, "line", line, NULL);
            return EVK_ERR_CONFIG;
        }
        evk_err_t err = put_level(ctx, inv, sku, available);
        if (err) return err;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    evk_log(EVK_LOG_INFO, NAME, "seeded stock", "file", inv->seed_file, "skus", count, NULL);
    return EVK_OK;
}

/* Seed only an empty store: after the first run the levels come back from
 * the changelog, and seeding again would undo every reservation. */
static evk_err_t on_ready(evk_ctx_t *ctx, void *opaque) {
    inventory_t *inv = opaque;
    if (evk_store_count(inv->levels) > 0 || !inv->seed_file) return EVK_OK;
    config_t lc;
    config_init(&lc);
    evk_err_t err = EVK_ERR_CONFIG;
    if (config_read_file(&lc, inv->seed_file))
        err = seed_from(ctx, inv, &lc);
    else
        evk_log(EVK_LOG_ERROR, NAME, "cannot read seed file", "file", inv->seed_file, "error",
                config_error_text(&lc), NULL);
    config_destroy(&lc);
    return err;
}

static evk_err_t emit_reserved(evk_ctx_t *ctx, inventory_t *inv, const evk_event_t *in,
                               const flow_line_t *lines, size_t n, int64_t total) {
    evk_event_t *out = evk_ctx_new_event(ctx, "StockReserved");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err =
        flow_set_strs(out, "order_id", flow_str(in, "order_id"), "customer_id",
                      flow_str(in, "customer_id"), "currency", flow_str(in, "currency"), NULL);
    if (!err) err = evk_event_set_long(out, "total_cents", total);
    for (size_t i = 0; i < n && !err; i++) {
        err =
            put_level(ctx, inv, lines[i].sku, stock_of(lines[i].sku, inv) - lines[i].quantity);
        if (!err) err = flow_append_stock_line(out, lines[i].sku, lines[i].quantity);
    }
    char total_s[24];
    snprintf(total_s, sizeof total_s, "%" PRId64, total);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "reserved", "order_id", flow_str(in, "order_id"),
                "total_cents", total_s, NULL);
    return flow_emit(ctx, out, err);
}

static evk_err_t emit_rejected(evk_ctx_t *ctx, const evk_event_t *in, const char *sku,
                               const char *reason) {
    evk_event_t *out = evk_ctx_new_event(ctx, "StockRejected");
    if (!out) return EVK_ERR_NOMEM;
    evk_err_t err = flow_set_strs(out, "order_id", flow_str(in, "order_id"), "customer_id",
                                  flow_str(in, "customer_id"), "reason", reason, NULL);
    if (!err && sku) err = evk_event_set_string(out, "sku", sku);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "rejected", "order_id", flow_str(in, "order_id"), "reason",
                reason, NULL);
    return flow_emit(ctx, out, err);
}

/* Reads the order's lines into @lines; returns 0 if the total overflows. */
static int read_lines(const evk_event_t *in, flow_line_t *lines, size_t n, int64_t *total) {
    char path[48];
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "items[%zu].sku", i);
        lines[i].sku = flow_str(in, path);
        snprintf(path, sizeof path, "items[%zu].quantity", i);
        lines[i].quantity = flow_long(in, path);
        snprintf(path, sizeof path, "items[%zu].unit_price_cents", i);
        int64_t amount;
        if (__builtin_mul_overflow(lines[i].quantity, flow_long(in, path), &amount) ||
            __builtin_add_overflow(*total, amount, total))
            return 0;
    }
    return 1;
}

static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    inventory_t *inv = opaque;
    size_t n = 0;
    evk_err_t err = evk_event_array_size(in, "items", &n);
    flow_line_t *lines = calloc(n ? n : 1, sizeof *lines);
    if (err || !lines) {
        free(lines);
        return err ? err : EVK_ERR_NOMEM;
    }
    int64_t total;
    const flow_line_t *bad = NULL;
    char reason[256];
    if (!read_lines(in, lines, n, &total)) {
        err = emit_rejected(ctx, in, NULL, "order total out of range");
    } else {
        n = flow_merge_lines(lines, n);
        err = flow_can_reserve(lines, n, stock_of, inv, &bad, reason, sizeof reason)
                  ? emit_reserved(ctx, inv, in, lines, n, total)
                  : emit_rejected(ctx, in, bad ? bad->sku : NULL, reason);
    }
    free(lines);
    return err;
}

static evk_err_t on_declined(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    inventory_t *inv = opaque;
    size_t n = 0;
    char path[48], reason[300];
    evk_err_t err = evk_event_array_size(in, "items", &n);
    for (size_t i = 0; i < n && !err; i++) {
        snprintf(path, sizeof path, "items[%zu].sku", i);
        const char *sku = flow_str(in, path);
        snprintf(path, sizeof path, "items[%zu].quantity", i);
        int64_t have = stock_of(sku, inv);
        err = put_level(ctx, inv, sku, (have < 0 ? 0 : have) + flow_long(in, path));
    }
    evk_event_t *out = err ? NULL : evk_ctx_new_event(ctx, "StockReleased");
    if (!out) return err ? err : EVK_ERR_NOMEM;
    snprintf(reason, sizeof reason, "payment declined: %s", flow_str(in, "reason"));
    err = flow_set_strs(out, "order_id", flow_str(in, "order_id"), "reason", reason, NULL);
    if (!err) err = flow_copy_stock_lines(in, out);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "released", "order_id", flow_str(in, "order_id"), NULL);
    return flow_emit(ctx, out, err);
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {
        {"OrderPlaced", on_placed}, {"PaymentDeclined", on_declined}, {NULL, NULL}};
    static const evk_setting_t settings[] = {{"seed_file", EVK_SETTING_STRING}, {NULL, 0}};
    static const flow_service_t def = {.name = NAME,
                                       .routes = routes,
                                       .settings = settings,
                                       .setup = setup,
                                       .ready = on_ready};
    inventory_t state = {0};
    return flow_service_main(&def, &state, argc, argv);
}
