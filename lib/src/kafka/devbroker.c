/* evk_devbroker_t: librdkafka's mock cluster as evkit's dev broker, with
 * topics and fault injection. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "evkit/devbroker.h"
#include "internal.h"

struct evk_devbroker_s {
    rd_kafka_t *rk; /* hosts the mock cluster; never connects anywhere itself */
    rd_kafka_mock_cluster_t *mcluster;
};

/* The hosting handle has no bootstrap.servers by design, so librdkafka's
 * warning about it is noise; anything else keeps librdkafka's default
 * behaviour. */
static rd_kafka_t *host_handle_new(char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, evk__rdkafka_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

evk_err_t evk_devbroker_new(int brokers, evk_devbroker_t **out, char *errstr,
                            size_t errstr_size) {
    if (!out || brokers < 1)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "dev broker: need at least 1 broker, got %d", brokers);
    evk_devbroker_t *db = calloc(1, sizeof(*db));
    if (!db) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "dev broker: out of memory");
    char rderr[512];
    db->rk = host_handle_new(rderr, sizeof(rderr));
    if (!db->rk) {
        free(db);
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: %s", rderr);
    }
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, brokers);
    if (!db->mcluster) {
        evk_devbroker_destroy(db);
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size,
                         "dev broker: cannot start a mock cluster of %d brokers", brokers);
    }
    *out = db;
    return EVK_OK;
}

const char *evk_devbroker_bootstraps(const evk_devbroker_t *db) {
    return rd_kafka_mock_cluster_bootstraps(db->mcluster);
}

evk_err_t evk_devbroker_create_topic(evk_devbroker_t *db, const char *topic, int partitions,
                                     int replication, char *errstr, size_t errstr_size) {
    if (!db || !topic || !*topic || partitions < 1 || replication < 1)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "dev broker: topic \"%s\": need a name, partitions >= 1 and "
                         "replication >= 1",
                         topic ? topic : "(null)");
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(db->mcluster, topic, partitions, replication);
    if (err)
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: topic \"%s\": %s",
                         topic, rd_kafka_err2str(err));
    return EVK_OK;
}

rd_kafka_mock_cluster_t *evk_devbroker_mock(evk_devbroker_t *db) {
    return db->mcluster;
}

/* librdkafka keeps its ApiKey names private; these are the requests a
 * client of the flow sends (Kafka protocol numbering). */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

static int parse_api(const char *name, int16_t *key) {
    for (size_t i = 0; i < sizeof api_keys / sizeof api_keys[0]; i++)
        if (!strcasecmp(name, api_keys[i].name)) {
            *key = api_keys[i].key;
            return 0;
        }
    return -1;
}

static int parse_error(const char *name, rd_kafka_resp_err_t *err) {
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && !strcasecmp(name, descs[i].name)) {
            *err = descs[i].code;
            return 0;
        }
    return -1;
}

static int parse_num(const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

#define CMD_MAX_WORDS 5

evk_err_t evk_devbroker_command(evk_devbroker_t *db, const char *line, char *errstr,
                                size_t errstr_size) {
    char buf[256], *w[CMD_MAX_WORDS + 1] = {0}, *save;
    int n = 0;
    if (!db || !line)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "dev broker: no command");
    if (snprintf(buf, sizeof buf, "%s", line) >= (int)sizeof buf)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "dev broker: command too long");
    for (char *t = strtok_r(buf, " \t\r\n", &save); t && n <= CMD_MAX_WORDS;
         t = strtok_r(NULL, " \t\r\n", &save))
        w[n++] = t;
    if (!n || w[0][0] == '#') return EVK_OK;
    long broker, count, ms;
    int16_t api;
    rd_kafka_resp_err_t err;
    if (!strcmp(w[0], "down") && n == 2 && !parse_num(w[1], 1, INT32_MAX, &broker))
        err = rd_kafka_mock_broker_set_down(db->mcluster, (int32_t)broker);
    else if (!strcmp(w[0], "up") && n == 2 && !parse_num(w[1], 1, INT32_MAX, &broker))
        err = rd_kafka_mock_broker_set_up(db->mcluster, (int32_t)broker);
    else if (!strcmp(w[0], "rtt") && n == 3 && !parse_num(w[1], 1, INT32_MAX, &broker) &&
             !parse_num(w[2], 0, INT_MAX, &ms))
        err = rd_kafka_mock_broker_set_rtt(db->mcluster, (int32_t)broker, (int)ms);
    else if (!strcmp(w[0], "clear") && n == 2 && !parse_api(w[1], &api)) {
        rd_kafka_mock_clear_request_errors(db->mcluster, api);
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else if (!strcmp(w[0], "err") && n == 4 && !parse_api(w[1], &api) &&
               !parse_num(w[2], 1, 1000, &count) && !parse_error(w[3], &err)) {
        rd_kafka_resp_err_t errs[1000];
        for (long i = 0; i < count; i++)
            errs[i] = err;
        rd_kafka_mock_push_request_errors_array(db->mcluster, api, (size_t)count, errs);
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "dev broker: bad command \"%s\" (expected: down BROKER, up BROKER, "
                         "err API COUNT ERROR, clear API, rtt BROKER MS)",
                         line);
    if (err)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "dev broker: \"%s\": %s",
                         line, rd_kafka_err2str(err));
    return EVK_OK;
}

void evk_devbroker_destroy(evk_devbroker_t *db) {
    if (!db) return;
    if (db->mcluster) rd_kafka_mock_cluster_destroy(db->mcluster);
    rd_kafka_destroy(db->rk);
    free(db);
}
