/*
 * The main() shared by the reference flow's services, so that each service
 * file holds only its settings, subscriptions and handlers.
 *
 *   <name> [-F config] [-b brokers] [-X prop=val]...
 *
 * Builds the config (evk_cli_opts_config), loads the catalog, sets up logging,
 * creates the service, checks its config group against the service's
 * settings (an unknown key or a value of the wrong type exits 2), subscribes
 * every route, runs until SIGINT/SIGTERM and
 * exits with the cli.h exit codes. It logs "ready" once the library has
 * restored the stores and the service is about to take its first event:
 * scripts/start-services waits for that line. SIGPIPE is ignored for the
 * whole process, so that writing to a reader that has gone (a closed stderr,
 * a webhook's socket) fails instead of killing the service.
 */
#ifndef FLOW_SVC_H
#define FLOW_SVC_H

#include <evkit/evkit.h>

typedef struct {
    const char *type; /* short event type name */
    evk_handler_t *handler;
} flow_route_t;

typedef struct {
    const char *name;
    const flow_route_t *routes; /* terminated by {NULL, NULL} */
    /* Keys of the service's config group beyond the service loop's,
     * terminated by {NULL, 0}; may be NULL (evk_service_settings()). */
    const evk_setting_t *settings;
    /* Read the service's settings, add its stores; may be NULL. */
    evk_err_t (*setup)(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size);
    evk_ready_cb_t *ready;        /* may be NULL */
    void (*cleanup)(void *state); /* may be NULL */
} flow_service_t;

/* Runs the service; @state is every callback's opaque. Returns the exit code. */
int flow_service_main(const flow_service_t *def, void *state, int argc, char **argv);

/* Handlers' shorthand: the string field @path of @ev, "" when unset. */
const char *flow_str(const evk_event_t *ev, const char *path);
/* The long/int field @path of @ev, 0 when unset. */
int64_t flow_long(const evk_event_t *ev, const char *path);

/* A new event of @type whose id derives from @base and @label (kept as
 * evk_ctx_new_event() made it when @base is NULL), so that whichever input
 * causes it again makes it byte for byte the same. NULL when out of memory
 * or @type is not in the catalog. */
evk_event_t *flow_derived_event(evk_ctx_t *ctx, const char *type, const char *base,
                                const char *label);

/* Emit @ev when @err is EVK_OK, else destroy it: the tail of every handler
 * that builds an event field by field. Returns the error, or emit's. */
evk_err_t flow_emit(evk_ctx_t *ctx, evk_event_t *ev, evk_err_t err);

/* Set string fields: flow_set_strs(ev, "order_id", id, "reason", r, NULL). */
evk_err_t flow_set_strs(evk_event_t *ev, ...) __attribute__((sentinel));

/* Append {sku, quantity} to the StockLine array "items" of @ev. */
evk_err_t flow_append_stock_line(evk_event_t *ev, const char *sku, int64_t quantity);

/* Copy the StockLine array "items" ({sku, quantity}) from @src to @dst. */
evk_err_t flow_copy_stock_lines(const evk_event_t *src, evk_event_t *dst);

#endif
