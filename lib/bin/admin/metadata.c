/* evk-admin metadata: the cluster as kcat -L shows it. */
#include <getopt.h>
#include <string.h>

#include "admin.h"

static void print_list(const char *what, const int32_t *ids, int n) {
    printf(", %s: ", what);
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", (int)ids[i]);
}

static void print_topic(const struct rd_kafka_metadata_topic *t) {
    printf("  topic \"%s\" with %d partitions:", t->topic, t->partition_cnt);
    if (t->err) printf(" %s", rd_kafka_err2str(t->err));
    printf("\n");
    for (int i = 0; i < t->partition_cnt; i++) {
        const struct rd_kafka_metadata_partition *p = &t->partitions[i];
        printf("    partition %d, leader %d", (int)p->id, (int)p->leader);
        print_list("replicas", p->replicas, p->replica_cnt);
        print_list("isrs", p->isrs, p->isr_cnt);
        if (p->err) printf(": %s", rd_kafka_err2str(p->err));
        printf("\n");
    }
}

/* Topics named on the command line must exist: a typo is not "no topics". */
static int print_metadata(rd_kafka_t *rk, const struct rd_kafka_metadata *md, char **names,
                          int nnames) {
    char *cluster = rd_kafka_clusterid(rk, ADMIN_TIMEOUT_MS);
    printf("Metadata for %s (from broker %d: %s), cluster id %s:\n",
           nnames ? "the named topics" : "all topics", (int)md->orig_broker_id,
           md->orig_broker_name, cluster ? cluster : "unknown");
    rd_kafka_mem_free(rk, cluster);
    printf(" %d brokers:\n", md->broker_cnt);
    for (int i = 0; i < md->broker_cnt; i++)
        printf("  broker %d at %s:%d\n", (int)md->brokers[i].id, md->brokers[i].host,
               md->brokers[i].port);
    int rc = EVK_EXIT_OK;
    printf(" %d topics:\n", nnames ? nnames : md->topic_cnt);
    for (int i = 0; i < (nnames ? nnames : md->topic_cnt); i++) {
        const struct rd_kafka_metadata_topic *t =
            nnames ? admin_find_topic(md, names[i]) : &md->topics[i];
        if (t) {
            print_topic(t);
            continue;
        }
        printf("  topic \"%s\": does not exist\n", names[i]);
        rc = EVK_EXIT_NOT_FOUND;
    }
    return rc;
}

int admin_cmd_metadata(int argc, char **argv, admin_t *a) {
    static const struct option longopts[] = {EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    int c, rc = EVK_EXIT_OK;
    while (!rc && (c = getopt_long(argc, argv, EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        int shared = admin_shared_opt(a, c, optarg, "metadata");
        if (shared != EVK_CLI_TAKEN) rc = shared;
    }
    if (!rc) rc = admin_open(a, 1);
    const struct rd_kafka_metadata *md = rc ? NULL : admin_metadata(a);
    if (!rc && !md) rc = EVK_EXIT_DELIVERY;
    if (md) {
        rc = print_metadata(a->rk, md, argv + optind, argc - optind);
        rd_kafka_metadata_destroy(md);
    }
    return rc;
}
