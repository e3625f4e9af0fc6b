/* evk-order status: an order's OrderStatus, read from order-service's
 * changelog (the OrderStatus topic, orders.status). Only the partition the
 * order id hashes to is read, hashed with the partitioner the services
 * produce with, from its start to its end. read_committed, so an aborted
 * transaction's status never shows. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"

/* Reading a partition to its end takes well under a second on a healthy
 * cluster; past this the cluster is unreachable, not slow. */
#define STATUS_TIMEOUT_MS 30000

typedef int32_t(partitioner_fn)(const rd_kafka_topic_t *, const void *, size_t, int32_t, void *,
                                void *);

/* The keyed partitioners a producer may be configured with (librdkafka's
 * "partitioner" property; consistent_random is its default). */
static partitioner_fn *partitioner_named(const char *name) {
    static const struct {
        const char *name;
        partitioner_fn *fn;
    } table[] = {{"consistent_random", rd_kafka_msg_partitioner_consistent_random},
                 {"consistent", rd_kafka_msg_partitioner_consistent},
                 {"murmur2", rd_kafka_msg_partitioner_murmur2},
                 {"murmur2_random", rd_kafka_msg_partitioner_murmur2_random},
                 {"fnv1a", rd_kafka_msg_partitioner_fnv1a},
                 {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name ? name : "consistent_random")) return table[i].fn;
    return NULL;
}

static rd_kafka_t *status_consumer(const evk_config_t *cfg, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = evk_config_kafka_conf(cfg, errstr, errstr_size);
    if (!conf) return NULL;
    rd_kafka_t *rk = NULL;
    /* librdkafka's consumer API wants a group even for a manual assignment;
     * with auto commit off this one never joins or commits anything. */
    if (rd_kafka_conf_set(conf, "group.id", PROG "-status", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* Partition of @order_id in @rkt; -1 when the topic does not exist (yet). */
static int32_t partition_of(rd_kafka_t *rk, rd_kafka_topic_t *rkt, partitioner_fn *part,
                            const char *order_id, rd_kafka_resp_err_t *err) {
    const struct rd_kafka_metadata *md;
    int32_t p = -1;
    if ((*err = rd_kafka_metadata(rk, 0, rkt, &md, STATUS_TIMEOUT_MS))) return -1;
    if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
        p = part(rkt, order_id, strlen(order_id), md->topics[0].partition_cnt, NULL, NULL);
    rd_kafka_metadata_destroy(md);
    return p;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What one lookup looks for: the last @type event keyed @order_id. */
typedef struct {
    rd_kafka_t *rk;
    const evk_catalog_t *cat;
    partitioner_fn *part;
    const char *order_id;
} lookup_t;

/* Keep the last @p want of the order in the message stream (a tombstone
 * deletes it; events of other types on the topic are passed over). */
static void consider(const lookup_t *l, const evk_schema_t *want, const rd_kafka_message_t *m,
                     evk_event_t **found) {
    char errstr[512];
    evk_event_t *ev = NULL;
    if (m->key_len != strlen(l->order_id) || memcmp(m->key, l->order_id, m->key_len)) return;
    if (m->payload && evk_event_from_message(l->cat, m, &ev, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": skipping undecodable %s at offset %lld: %s\n",
                evk_schema_name(want), (long long)m->offset, errstr);
        return;
    }
    if (ev && strcmp(evk_event_type(ev), evk_schema_type(want))) {
        evk_event_destroy(ev);
        return;
    }
    evk_event_destroy(*found);
    *found = ev;
}

/* The order's partition of @topic in *p; -1 when the topic does not exist (yet). */
static int order_partition(const lookup_t *l, const char *topic, int32_t *p) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(l->rk, topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    *p = rkt ? partition_of(l->rk, rkt, l->part, l->order_id, &err) : -1;
    if (rkt) rd_kafka_topic_destroy(rkt);
    if (!err && rkt) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": %s: %s\n", topic,
            rkt ? rd_kafka_err2str(err) : "cannot create topic handle");
    return EVK_EXIT_DELIVERY;
}

/* Read the order's partition of @want's topic from the start to its end;
 * *found stays NULL when the topic does not exist (yet). */
static int read_partition(const lookup_t *l, const evk_schema_t *want, evk_event_t **found) {
    rd_kafka_t *rk = l->rk;
    const char *topic = evk_schema_topic(want);
    int32_t p;
    int rc = order_partition(l, topic, &p);
    if (rc || p < 0) return rc;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int64_t deadline = now_ms() + STATUS_TIMEOUT_MS;
    int done = 0;
    while (!err && !done && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            done = 1;
        else if (m->err)
            err = m->err;
        else
            consider(l, want, m, found);
        rd_kafka_message_destroy(m);
    }
    if (err || !done) {
        fprintf(stderr, PROG ": reading %s [%d]: %s\n", topic, (int)p,
                err ? rd_kafka_err2str(err) : "timed out");
        return EVK_EXIT_DELIVERY;
    }
    return EVK_EXIT_OK;
}

typedef struct {
    const char *v[4]; /* time, type, source, event_id */
} history_row_t;

static int by_time(const void *a, const void *b) {
    return strcmp(((const history_row_t *)a)->v[0], ((const history_row_t *)b)->v[0]);
}

/* The history in event time order: order-service records events as they
 * arrive, which across topics need not be the order they happened in. */
static void print_history(const evk_event_t *st) {
    static const char *const fields[] = {"time", "type", "source", "event_id"};
    size_t n = 0;
    char path[48];
    evk_event_array_size(st, "history", &n);
    history_row_t *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) return;
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < 4; f++) {
            rows[i].v[f] = "";
            snprintf(path, sizeof path, "history[%zu].%s", i, fields[f]);
            evk_event_get_string(st, path, &rows[i].v[f]);
        }
    }
    qsort(rows, n, sizeof *rows, by_time); /* RFC 3339 UTC sorts as text */
    printf("\n%-26s %-20s %-20s %s\n", "TIME", "EVENT", "SOURCE", "EVENT ID");
    for (size_t i = 0; i < n; i++)
        printf("%-26s %-20s %-20s %s\n", rows[i].v[0], rows[i].v[1], rows[i].v[2],
               rows[i].v[3]);
    free(rows);
}

static void print_text(const evk_event_t *st) {
    const char *order_id = "", *customer = "", *status = "", *reason = NULL;
    int64_t cents = 0;
    evk_event_get_string(st, "order_id", &order_id);
    evk_event_get_string(st, "customer_id", &customer);
    evk_event_get_string(st, "status", &status);
    evk_event_get_long(st, "total_cents", &cents);
    printf("order     %s\ncustomer  %s\nstatus    %s\ntotal     %s%lld.%02lld\n", order_id,
           customer, status, cents < 0 ? "-" : "", llabs(cents) / 100, llabs(cents) % 100);
    if (evk_event_get_string(st, "reason", &reason) == EVK_OK) printf("reason    %s\n", reason);
    print_history(st);
}

static int print_status(const evk_event_t *st, int json) {
    char *text = NULL;
    size_t len;
    if (!json) {
        print_text(st);
        return EVK_EXIT_OK;
    }
    if (evk_event_to_json(st, &text, &len)) return EVK_EXIT_CONFIG;
    printf("%s\n", text);
    free(text);
    return EVK_EXIT_OK;
}

/* No status: an order that was placed is "not seen yet" (order-service
 * has not recorded it: it is behind, or not running), any other unknown. */
static int not_found(const lookup_t *l, const evk_schema_t *placed_type) {
    evk_event_t *placed = NULL;
    int rc = read_partition(l, placed_type, &placed);
    if (rc) return rc;
    if (!placed) {
        fprintf(stderr, PROG ": order %s not found\n", l->order_id);
        return EVK_EXIT_NOT_FOUND;
    }
    fprintf(stderr,
            PROG ": order %s was placed at %s but order-service has not recorded it yet\n",
            l->order_id, evk_event_time(placed) ? evk_event_time(placed) : "an unknown time");
    evk_event_destroy(placed);
    return EVK_EXIT_PENDING;
}

static int lookup(const order_env_t *env, const char *order_id, int json) {
    char errstr[512];
    const evk_schema_t *s = evk_catalog_find(env->cat, "OrderStatus");
    const evk_schema_t *placed = evk_catalog_find(env->cat, "OrderPlaced");
    lookup_t l = {.cat = env->cat,
                  .part = partitioner_named(evk_config_kafka_get(env->cfg, "partitioner")),
                  .order_id = order_id};
    if (!s || !placed || !l.part) {
        fprintf(stderr, PROG ": %s\n",
                l.part ? "the catalog has no OrderStatus or OrderPlaced"
                       : "unsupported partitioner for a keyed lookup");
        return EVK_EXIT_CONFIG;
    }
    if (!(l.rk = status_consumer(env->cfg, errstr, sizeof errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EVK_EXIT_CONFIG;
    }
    evk_event_t *found = NULL;
    int rc = EVK_EXIT_OK;
    if (evk_cli_connect(l.rk, EVK_CLI_CONNECT_TIMEOUT_MS, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc) rc = read_partition(&l, s, &found);
    if (!rc) rc = found ? print_status(found, json) : not_found(&l, placed);
    evk_event_destroy(found);
    rd_kafka_consumer_close(l.rk);
    rd_kafka_destroy(l.rk);
    return rc;
}

int order_cmd_status(int argc, char **argv, order_opts_t *o) {
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             ORDER_COMMON_LONGOPTS};
    order_env_t env;
    int c, json = 0, rc;
    while ((c = getopt_long(argc, argv, ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (!order_common_opt(o, c, optarg))
            return EVK_EXIT_USAGE;
    }
    if (argc - optind != 1) return order_usage_error("status: expected one ORDER_ID");
    if (!(rc = order_env_open(o, &env))) {
        rc = lookup(&env, argv[optind], json);
        order_env_close(&env);
    }
    return rc;
}
