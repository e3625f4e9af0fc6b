/* evk-admin's commands and what they share: the command line, the config
 * and catalog, and one librdkafka client per need (docs/CLI.md, "evk-admin"). */
#ifndef EVK_ADMIN_H
#define EVK_ADMIN_H

#include <stdio.h>

#include "evkit/evkit.h"

#define PROG "evk-admin"
/* How long a request to the cluster may take before the command gives up. */
#define ADMIN_TIMEOUT_MS 10000

typedef struct {
    evk_cli_opts_t cli;
    evk_config_t *cfg;  /* set by admin_open() */
    evk_catalog_t *cat; /* set by admin_open() */
    rd_kafka_t *rk;     /* a producer handle for metadata and the Admin API */
} admin_t;

/* Load the config and catalog; with @p connect also a client, and fail
 * (exit 4) when no broker answers. Returns an exit code. */
int admin_open(admin_t *a, int connect);
void admin_close(admin_t *a);

/* Delivery reports of a producer made by admin_client(). */
typedef void(admin_dr_cb_t)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* A librdkafka handle of @p type from the config, with @p props
 * ("name", "value", ..., NULL) on top and @p dr (may be NULL) given
 * @p opaque; NULL after printing why. */
rd_kafka_t *admin_client(const admin_t *a, rd_kafka_type_t type, const char *const *props,
                         admin_dr_cb_t *dr, void *opaque);

/* The whole cluster's metadata; NULL after printing why. */
const struct rd_kafka_metadata *admin_metadata(const admin_t *a);

/* The topic named @p name in @p md, or NULL when the cluster has none
 * (absent, or listed as an unknown topic). */
const struct rd_kafka_metadata_topic *admin_find_topic(const struct rd_kafka_metadata *md,
                                                       const char *name);

/* A command's -h/-V was answered: stop, exit 0. */
#define ADMIN_DONE (-3)

/* Print "evk-admin: <fmt...>" and where the usage is on stderr; EVK_EXIT_USAGE. */
#define admin_usage_error(...) evk_cli_usage_error(PROG, NULL, __VA_ARGS__)

/* A shared option (-b/-X/-F/-h/-V) met among command @p cmd's options:
 * EVK_CLI_TAKEN, ADMIN_DONE (-h/-V answered) or EVK_EXIT_USAGE. */
int admin_shared_opt(admin_t *a, int c, char *arg, const char *cmd);

int admin_cmd_topics(int argc, char **argv, admin_t *a);
int admin_cmd_metadata(int argc, char **argv, admin_t *a);
int admin_cmd_lag(int argc, char **argv, admin_t *a);
int admin_cmd_dlq(int argc, char **argv, admin_t *a);

#endif
