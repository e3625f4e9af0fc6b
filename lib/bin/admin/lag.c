/* evk-admin lag: a consumer group's committed offsets against the ends of
 * its partitions (kafka-consumer-groups.sh --describe). The committed
 * offsets are read with OffsetFetch from a client that never joins the
 * group, so asking does not disturb it. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

/* Every partition of @p names (or, with none, of the catalog's topics that
 * exist) into a list; exit code. */
static int partitions_of(const admin_t *a, const struct rd_kafka_metadata *md, char **names,
                         int nnames, rd_kafka_topic_partition_list_t *list) {
    size_t n = nnames ? (size_t)nnames : evk_catalog_count(a->cat);
    for (size_t i = 0; i < n; i++) {
        const char *name = nnames ? names[i] : evk_schema_topic(evk_catalog_at(a->cat, i));
        const struct rd_kafka_metadata_topic *t = admin_find_topic(md, name);
        if (!t) {
            if (!nnames) continue;
            fprintf(stderr, PROG ": topic \"%s\" does not exist\n", name);
            return EVK_EXIT_NOT_FOUND;
        }
        for (int p = 0; p < t->partition_cnt; p++)
            if (!rd_kafka_topic_partition_list_find(list, name, t->partitions[p].id))
                rd_kafka_topic_partition_list_add(list, name, t->partitions[p].id);
    }
    return EVK_EXIT_OK;
}

/* Whether the group committed an offset on any partition of @p topic. */
static int topic_committed(const rd_kafka_topic_partition_list_t *list, const char *topic) {
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].offset >= 0 && !strcmp(list->elems[i].topic, topic)) return 1;
    return 0;
}

/* The table (without topics named: only those the group committed on);
 * the total lag over the partitions with a committed offset. */
static int print_lag(rd_kafka_t *rk, const char *group, rd_kafka_topic_partition_list_t *list,
                     int named) {
    int64_t total = 0;
    int committed = 0;
    printf("%-32s %9s %12s %12s %10s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        if (!named && !topic_committed(list, tp->topic)) continue;
        int64_t low, high;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, tp->topic, tp->partition, &low, &high, ADMIN_TIMEOUT_MS);
        if (err) {
            fprintf(stderr, PROG ": %s [%d]: %s\n", tp->topic, (int)tp->partition,
                    rd_kafka_err2str(err));
            return EVK_EXIT_DELIVERY;
        }
        if (tp->offset < 0) {
            printf("%-32s %9d %12s %12" PRId64 " %10s\n", tp->topic, (int)tp->partition, "-",
                   high, "-");
            continue;
        }
        int64_t behind = high > tp->offset ? high - tp->offset : 0;
        committed++;
        total += behind;
        printf("%-32s %9d %12" PRId64 " %12" PRId64 " %10" PRId64 "\n", tp->topic,
               (int)tp->partition, tp->offset, high, behind);
    }
    if (!committed) {
        fprintf(stderr, PROG ": group \"%s\" has no committed offset on these topics\n", group);
        return EVK_EXIT_NOT_FOUND;
    }
    printf("total lag %" PRId64 " over %d partitions with a committed offset\n", total,
           committed);
    return EVK_EXIT_OK;
}

static int lag(admin_t *a, const char *group, char **names, int nnames) {
    const char *props[] = {"group.id", group, "enable.auto.commit", "false", NULL};
    rd_kafka_t *rk = admin_client(a, RD_KAFKA_CONSUMER, props, NULL, NULL);
    if (!rk) return EVK_EXIT_CONFIG;
    const struct rd_kafka_metadata *md = admin_metadata(a);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(64);
    int rc = md ? partitions_of(a, md, names, nnames, list) : EVK_EXIT_DELIVERY;
    rd_kafka_resp_err_t err =
        rc ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_committed(rk, list, ADMIN_TIMEOUT_MS);
    if (err) {
        fprintf(stderr, PROG ": committed offsets of \"%s\": %s\n", group,
                rd_kafka_err2str(err));
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc) rc = print_lag(rk, group, list, nnames > 0);
    rd_kafka_topic_partition_list_destroy(list);
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

int admin_cmd_lag(int argc, char **argv, admin_t *a) {
    static const struct option longopts[] = {EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    int c, rc = EVK_EXIT_OK;
    while (!rc && (c = getopt_long(argc, argv, EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        int shared = admin_shared_opt(a, c, optarg, "lag");
        if (shared != EVK_CLI_TAKEN) rc = shared;
    }
    if (!rc && optind >= argc) rc = admin_usage_error("lag: expected a GROUP");
    if (!rc) rc = admin_open(a, 1);
    if (!rc) rc = lag(a, argv[optind], argv + optind + 1, argc - optind - 1);
    return rc;
}
