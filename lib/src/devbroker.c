#include <stdlib.h>
#include <string.h>

#include "evkit/devbroker.h"
#include "internal.h"

struct evk_devbroker_s {
    rd_kafka_t *rk; /* hosts the mock cluster; never connects anywhere itself */
    rd_kafka_mock_cluster_t *mcluster;
};

/* The hosting handle has no bootstrap.servers by design, so librdkafka's
 * warning about it is noise; anything else keeps librdkafka's default
 * behaviour. */
static void devbroker_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers")) return;
    rd_kafka_log_print(rk, level, fac, buf);
}

static rd_kafka_t *host_handle_new(char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, devbroker_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

evk_err_t evk_devbroker_new(int brokers, evk_devbroker_t **out, char *errstr,
                            size_t errstr_size) {
    if (!out || brokers < 1)
        return evk_fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                        "dev broker: need at least 1 broker, got %d", brokers);
    evk_devbroker_t *db = calloc(1, sizeof(*db));
    if (!db) return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "dev broker: out of memory");
    char rderr[512];
    db->rk = host_handle_new(rderr, sizeof(rderr));
    if (!db->rk) {
        free(db);
        return evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: %s", rderr);
    }
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, brokers);
    if (!db->mcluster) {
        evk_devbroker_destroy(db);
        return evk_fail(EVK_ERR_KAFKA, errstr, errstr_size,
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
        return evk_fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                        "dev broker: topic \"%s\": need a name, partitions >= 1 and "
                        "replication >= 1",
                        topic ? topic : "(null)");
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(db->mcluster, topic, partitions, replication);
    if (err)
        return evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: topic \"%s\": %s",
                        topic, rd_kafka_err2str(err));
    return EVK_OK;
}

rd_kafka_mock_cluster_t *evk_devbroker_mock(evk_devbroker_t *db) {
    return db->mcluster;
}

void evk_devbroker_destroy(evk_devbroker_t *db) {
    if (!db) return;
    if (db->mcluster) rd_kafka_mock_cluster_destroy(db->mcluster);
    rd_kafka_destroy(db->rk);
    free(db);
}
