/* What every program shares: its kcat-style options, its config and
 * catalog, the connection check, and the version. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

#include "evkit/cli.h"
#include "evkit/log.h"
#include "evkit/registry.h"
#include "evkit/version.h"
#include "internal.h"

const char *evk_version(void) {
    return EVK_VERSION_STR;
}

void evk_cli_version(const char *prog) {
    printf("%s evkit %s (librdkafka %s)\n", prog, evk_version(), rd_kafka_version_str());
}

evk_err_t evk_cli_opts_init(evk_cli_opts_t *o, int argc) {
    *o = (evk_cli_opts_t){.props = calloc(argc > 0 ? (size_t)argc : 1, sizeof(char *))};
    return o->props ? EVK_OK : EVK_ERR_NOMEM;
}

void evk_cli_opts_clear(evk_cli_opts_t *o) {
    free(o->props);
    *o = (evk_cli_opts_t){0};
}

int evk_cli_opt(evk_cli_opts_t *o, int c, char *arg, const char *prog,
                void (*usage)(FILE *out, const char *prog)) {
    switch (c) {
    case 'b':
        o->brokers = arg;
        return EVK_CLI_TAKEN;
    case 'X': /* props has room for every argument: none is lost */
        o->props[o->nprops++] = arg;
        return EVK_CLI_TAKEN;
    case 'F':
        o->config_file = arg;
        return EVK_CLI_TAKEN;
    case 'q':
        o->verbosity--;
        return EVK_CLI_TAKEN;
    case 'v':
        o->verbosity++;
        return EVK_CLI_TAKEN;
    case 'h':
        usage(stdout, prog);
        return EVK_EXIT_OK;
    case 'V':
        evk_cli_version(prog);
        return EVK_EXIT_OK;
    default:
        return EVK_CLI_NOT_MINE;
    }
}

evk_err_t evk_cli_opts_config(const evk_cli_opts_t *o, evk_config_t **out, char *errstr,
                              size_t errstr_size) {
    evk_err_t err = evk_cli_config(o->config_file, o->brokers, o->props, o->nprops, out, errstr,
                                   errstr_size);
    if (err) return err;
    evk_log_verbosity(o->verbosity);
    err = evk_log_setup(*out, errstr, errstr_size);
    if (!err) return EVK_OK;
    evk_config_destroy(*out);
    *out = NULL;
    return err;
}

int evk_cli_number(const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || end == s || *end || *out < min || *out > max ? -1 : 0;
}

int evk_cli_usage_error(const char *prog, void (*usage)(FILE *out, const char *prog),
                        const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (usage)
        usage(stderr, prog);
    else
        fprintf(stderr, "(%s --help shows the usage)\n", prog);
    return EVK_EXIT_USAGE;
}

evk_err_t evk_cli_connect(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t errstr_size) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (!err) {
        rd_kafka_metadata_destroy(md);
        return EVK_OK;
    }
    char servers[512] = "?";
    size_t size = sizeof(servers);
    rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", servers, &size);
    return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size,
                     "no broker reachable at %s after %d s: %s", servers, timeout_ms / 1000,
                     rd_kafka_err2str(err));
}

static evk_err_t apply_options(evk_config_t *cfg, const char *brokers, char *const *props,
                               size_t nprops, char *errstr, size_t errstr_size) {
    evk_err_t err = EVK_OK;
    if (brokers)
        err = evk_config_set_kafka(cfg, "bootstrap.servers", brokers, errstr, errstr_size);
    for (size_t i = 0; i < nprops && !err; i++)
        err = evk_config_set_kafka_kv(cfg, props[i], errstr, errstr_size);
    return err;
}

evk_err_t evk_cli_config(const char *config_file, const char *brokers, char *const *props,
                         size_t nprops, evk_config_t **out, char *errstr, size_t errstr_size) {
    evk_config_t *cfg;
    evk_err_t err = evk_config_open(config_file, &cfg, errstr, errstr_size);
    if (err) return err;
    err = apply_options(cfg, brokers, props, nprops, errstr, errstr_size);
    const char *servers = evk_config_kafka_get(cfg, "bootstrap.servers");
    if (!err && (!servers || !*servers))
        err = evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                        "no bootstrap servers: use -b, EVK_BOOTSTRAP_SERVERS or "
                        "kafka.bootstrap_servers in the config file "
                        "(evk-dev-broker starts a local one)");
    if (err) {
        evk_config_destroy(cfg);
        return err;
    }
    *out = cfg;
    return EVK_OK;
}

static evk_err_t attach_registry(const evk_config_t *cfg, evk_catalog_t *cat, char *errstr,
                                 size_t errstr_size) {
    evk_registry_t *reg;
    evk_err_t err = evk_registry_new(cfg, &reg, errstr, errstr_size);
    return err ? err : evk_catalog_use_registry(cat, reg, errstr, errstr_size);
}

evk_err_t evk_cli_catalog(const evk_config_t *cfg, evk_catalog_t **out, char *errstr,
                          size_t errstr_size) {
    const char *dir = evk_config_schemas_dir(cfg);
    char reason[512];
    evk_err_t err = evk_catalog_load(dir, out, reason, sizeof(reason));
    if (err == EVK_ERR_IO)
        return evk__fail(err, errstr, errstr_size,
                         "%s: %s (point EVK_SCHEMAS_DIR or schemas.dir in the -F file at the "
                         "directory holding catalog.cfg)",
                         dir, reason);
    if (err) return evk__fail(err, errstr, errstr_size, "%s: %s", dir, reason);
    if (!evk_registry_configured(cfg)) return EVK_OK;
    err = attach_registry(cfg, *out, errstr, errstr_size);
    if (err) {
        evk_catalog_destroy(*out);
        *out = NULL;
    }
    return err;
}
