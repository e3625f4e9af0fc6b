/* evk-admin: topics from the catalog, metadata, consumer lag and dead-letter
 * replay, on librdkafka's Admin and consumer APIs. See docs/CLI.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

static void usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out,
            "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] [-q|-v] COMMAND [ARGS]\n"
            "       " PROG " -h|--help | -V|--version\n"
            "Commands:\n"
            "  topics plan|check|create [--partitions N] [--replication R]\n"
            "                           [--dlq-partitions N] [--dry-run]\n"
            "      the catalog's topics, their .dlq topics and configs (changelogs\n"
            "      compacted): print the plan (no broker needed), check the cluster\n"
            "      against it, or create what is missing\n"
            "  metadata [TOPIC...]      brokers, topics and partitions, like kcat -L\n"
            "  lag GROUP [TOPIC...]     the group's committed offsets against the ends\n"
            "  dlq replay TOPIC.dlq [--error NAME] [--reason TEXT] [--type TYPE]\n"
            "                       [--offsets FROM-TO] [--dry-run]\n"
            "      send dead letters back to the topic they came from, without\n"
            "      their evk_dlq_* headers\n");
}

int admin_shared_opt(admin_t *a, int c, char *arg, const char *cmd) {
    int shared = evk_cli_opt(&a->cli, c, arg, PROG, usage);
    if (shared == EVK_CLI_TAKEN) return EVK_CLI_TAKEN;
    if (shared == EVK_CLI_NOT_MINE) return admin_usage_error("%s: bad option", cmd);
    return ADMIN_DONE;
}

rd_kafka_t *admin_client(const admin_t *a, rd_kafka_type_t type, const char *const *props,
                         admin_dr_cb_t *dr, void *opaque) {
    char errstr[512];
    rd_kafka_conf_t *conf = evk_config_kafka_conf(a->cfg, errstr, sizeof errstr);
    rd_kafka_t *rk = NULL;
    for (size_t i = 0; conf && props && props[i]; i += 2) {
        if (rd_kafka_conf_set(conf, props[i], props[i + 1], errstr, sizeof errstr)) {
            rd_kafka_conf_destroy(conf);
            conf = NULL;
        }
    }
    if (conf && dr) {
        rd_kafka_conf_set_dr_msg_cb(conf, dr);
        rd_kafka_conf_set_opaque(conf, opaque);
    }
    if (conf && !(rk = rd_kafka_new(type, conf, errstr, sizeof errstr)))
        rd_kafka_conf_destroy(conf);
    if (!rk) fprintf(stderr, PROG ": %s\n", errstr);
    return rk;
}

const struct rd_kafka_metadata *admin_metadata(const admin_t *a) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(a->rk, 1, NULL, &md, ADMIN_TIMEOUT_MS);
    if (!err) return md;
    fprintf(stderr, PROG ": metadata: %s\n", rd_kafka_err2str(err));
    return NULL;
}

const struct rd_kafka_metadata_topic *admin_find_topic(const struct rd_kafka_metadata *md,
                                                       const char *name) {
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, name))
            return md->topics[i].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                       ? NULL
                       : &md->topics[i];
    return NULL;
}

int admin_open(admin_t *a, int connect) {
    char errstr[1024];
    evk_err_t err = connect
                        ? evk_cli_opts_config(&a->cli, &a->cfg, errstr, sizeof errstr)
                        : evk_config_open(a->cli.config_file, &a->cfg, errstr, sizeof errstr);
    if (!err) err = evk_cli_catalog(a->cfg, &a->cat, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EVK_EXIT_CONFIG;
    }
    if (!connect) return EVK_EXIT_OK;
    if (!(a->rk = admin_client(a, RD_KAFKA_PRODUCER, NULL, NULL, NULL))) return EVK_EXIT_CONFIG;
    /* Fail fast, as kcat -L does, rather than per request. */
    if (!evk_cli_connect(a->rk, ADMIN_TIMEOUT_MS, errstr, sizeof errstr)) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": %s\n", errstr);
    return EVK_EXIT_DELIVERY;
}

void admin_close(admin_t *a) {
    if (a->rk) rd_kafka_destroy(a->rk);
    evk_catalog_destroy(a->cat);
    evk_config_destroy(a->cfg);
    evk_cli_opts_clear(&a->cli);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **, admin_t *);
    } commands[] = {{"topics", admin_cmd_topics},
                    {"metadata", admin_cmd_metadata},
                    {"lag", admin_cmd_lag},
                    {"dlq", admin_cmd_dlq}};
    static const struct option longopts[] = {EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    admin_t a = {0};
    int c;
    if (evk_cli_opts_init(&a.cli, argc)) return EVK_EXIT_CONFIG;
    /* '+': stop at the command, whose own options follow it. */
    while ((c = getopt_long(argc, argv, "+" EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        int shared = evk_cli_opt(&a.cli, c, optarg, PROG, usage);
        if (shared == EVK_CLI_TAKEN) continue;
        evk_cli_opts_clear(&a.cli);
        if (shared != EVK_CLI_NOT_MINE) return shared;
        usage(stderr, PROG);
        return EVK_EXIT_USAGE;
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    size_t i = 0, n = sizeof commands / sizeof commands[0];
    while (cmd && i < n && strcmp(commands[i].name, cmd))
        i++;
    int rc;
    if (!cmd) {
        rc = admin_usage_error("a command is required");
    } else if (i == n) {
        rc = admin_usage_error("unknown command \"%s\"", cmd);
    } else {
        char **sub = argv + optind;
        optind = 0; /* GNU getopt: start over on the command's arguments */
        rc = commands[i].run(argc - (int)(sub - argv), sub, &a);
        if (rc == ADMIN_DONE) rc = EVK_EXIT_OK;
    }
    admin_close(&a);
    return rc;
}
