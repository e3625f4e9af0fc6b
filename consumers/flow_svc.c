/* The main() shared by the reference flow's services (flow_svc.h). */
#include "flow_svc.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const flow_service_t *def;
    void *state;
} ready_ctx_t;

/* The one line scripts/start-services waits for: logged after the service's
 * own ready callback (e.g. seeding) succeeded. */
static evk_err_t on_ready(evk_ctx_t *ctx, void *opaque) {
    const ready_ctx_t *r = opaque;
    evk_err_t err = r->def->ready ? r->def->ready(ctx, r->state) : EVK_OK;
    if (!err) evk_log(EVK_LOG_INFO, r->def->name, "ready", NULL);
    return err;
}

static void usage(FILE *out, const char *name) {
    fprintf(out,
            "Usage: %s [-F config] [-b brokers] [-X prop=val]... [-q|-v]... [-h|--help] "
            "[-V|--version]\n",
            name);
}

/* 0 to run; else the exit code (help or version shown, or a usage error). */
static int parse_args(const char *name, int argc, char **argv, evk_cli_opts_t *o) {
    static const struct option longopts[] = {EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    int c;
    if (evk_cli_opts_init(o, argc)) return EVK_EXIT_CONFIG;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        int shared = evk_cli_opt(o, c, optarg, name, usage);
        if (shared == EVK_CLI_TAKEN) continue;
        if (shared != EVK_CLI_NOT_MINE) exit(shared);
        usage(stderr, name);
        return EVK_EXIT_USAGE;
    }
    if (optind == argc) return EVK_EXIT_OK;
    usage(stderr, name);
    return EVK_EXIT_USAGE;
}

static int fail(const char *name, int rc, const char *errstr) {
    evk_log(EVK_LOG_ERROR, name, "cannot start", "error", errstr, NULL);
    return rc;
}

static int subscribe(const flow_service_t *def, evk_service_t *svc, void *state) {
    char errstr[512];
    for (const flow_route_t *r = def->routes; r->type; r++)
        if (evk_service_on(svc, r->type, r->handler, state, errstr, sizeof errstr))
            return fail(def->name, EVK_EXIT_CONFIG, errstr);
    return EVK_EXIT_OK;
}

static void log_stats(const char *name, const evk_service_t *svc) {
    evk_service_stats_t s;
    char c[24], p[24], d[24], r[24];
    evk_service_stats(svc, &s);
    snprintf(c, sizeof c, "%llu", (unsigned long long)s.consumed);
    snprintf(p, sizeof p, "%llu", (unsigned long long)s.produced);
    snprintf(d, sizeof d, "%llu", (unsigned long long)s.dead_letters);
    snprintf(r, sizeof r, "%llu", (unsigned long long)s.retries);
    evk_log(EVK_LOG_INFO, name, "stopped", "consumed", c, "produced", p, "dead_letters", d,
            "retries", r, NULL);
}

static int run(const flow_service_t *def, void *state, const evk_config_t *cfg,
               const evk_catalog_t *cat) {
    char errstr[512];
    evk_service_t *svc;
    if (evk_service_new(def->name, cfg, cat, &svc, errstr, sizeof errstr))
        return fail(def->name, EVK_EXIT_CONFIG, errstr);
    ready_ctx_t ready = {def, state};
    evk_service_on_ready(svc, on_ready, &ready);
    int rc = evk_service_settings(svc, def->settings, errstr, sizeof errstr) ||
                     (def->setup && def->setup(svc, cfg, state, errstr, sizeof errstr))
                 ? fail(def->name, EVK_EXIT_CONFIG, errstr)
                 : subscribe(def, svc, state);
    if (!rc && evk_service_run(svc, errstr, sizeof errstr)) {
        evk_log(EVK_LOG_ERROR, def->name, "stopped on error", "error", errstr, NULL);
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc) log_stats(def->name, svc);
    evk_service_destroy(svc);
    return rc;
}

int flow_service_main(const flow_service_t *def, void *state, int argc, char **argv) {
    char errstr[512];
    evk_cli_opts_t a = {0};
    /* A write to a closed pipe or socket must fail with EPIPE, not kill the
     * service mid-transaction: its logs once whoever read stderr has gone,
     * libcurl's TLS writes (CURLOPT_NOSIGNAL leaves them unprotected). The
     * disposition is process-wide, so the program sets it, not the library. */
    signal(SIGPIPE, SIG_IGN);
    evk_config_t *cfg = NULL;
    evk_catalog_t *cat = NULL;
    int rc = parse_args(def->name, argc, argv, &a);
    if (!rc && evk_cli_opts_config(&a, &cfg, errstr, sizeof errstr))
        rc = fail(def->name, EVK_EXIT_CONFIG, errstr);
    if (!rc && (evk_log_setup(cfg, errstr, sizeof errstr) ||
                evk_cli_catalog(cfg, &cat, errstr, sizeof errstr)))
        rc = fail(def->name, EVK_EXIT_CONFIG, errstr);
    if (!rc) rc = run(def, state, cfg, cat);
    if (def->cleanup) def->cleanup(state);
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
    evk_cli_opts_clear(&a);
    return rc;
}

const char *flow_str(const evk_event_t *ev, const char *path) {
    const char *s = NULL;
    return evk_event_get_string(ev, path, &s) == EVK_OK && s ? s : "";
}

int64_t flow_long(const evk_event_t *ev, const char *path) {
    int64_t v = 0;
    return evk_event_get_long(ev, path, &v) == EVK_OK ? v : 0;
}

evk_event_t *flow_derived_event(evk_ctx_t *ctx, const char *type, const char *base,
                                const char *label) {
    evk_event_t *ev = evk_ctx_new_event(ctx, type);
    if (ev && base && evk_event_derive_id(ev, base, label)) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

evk_err_t flow_emit(evk_ctx_t *ctx, evk_event_t *ev, evk_err_t err) {
    if (err) {
        evk_event_destroy(ev);
        return err;
    }
    return evk_ctx_emit(ctx, ev);
}

evk_err_t flow_set_strs(evk_event_t *ev, ...) {
    va_list ap;
    const char *path;
    evk_err_t err = EVK_OK;
    va_start(ap, ev);
    while (!err && (path = va_arg(ap, const char *)))
        err = evk_event_set_string(ev, path, va_arg(ap, const char *));
    va_end(ap);
    return err;
}

evk_err_t flow_append_stock_line(evk_event_t *ev, const char *sku, int64_t quantity) {
    size_t idx;
    char path[48];
    evk_err_t err = evk_event_append(ev, "items", &idx);
    if (err) return err;
    snprintf(path, sizeof path, "items[%zu].sku", idx);
    err = evk_event_set_string(ev, path, sku);
    snprintf(path, sizeof path, "items[%zu].quantity", idx);
    return err ? err : evk_event_set_long(ev, path, quantity);
}

evk_err_t flow_copy_stock_lines(const evk_event_t *src, evk_event_t *dst) {
    size_t n = 0;
    char sku_path[48], qty_path[48];
    evk_err_t err = evk_event_array_size(src, "items", &n);
    for (size_t i = 0; i < n && !err; i++) {
        snprintf(sku_path, sizeof sku_path, "items[%zu].sku", i);
        snprintf(qty_path, sizeof qty_path, "items[%zu].quantity", i);
        err = flow_append_stock_line(dst, flow_str(src, sku_path), flow_long(src, qty_path));
    }
    return err;
}
