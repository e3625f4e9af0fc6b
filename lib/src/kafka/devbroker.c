/* evk_devbroker_t: librdkafka's mock cluster as evkit's dev broker, with
 * topics and fault injection. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "evkit/devbroker.h"
#include "internal.h"

/* How long a request to the mock thread may wait before the waker pokes it. */
#define WAKE_MS 5

struct evk_devbroker_s {
    rd_kafka_t *rk; /* hosts the mock cluster; never connects anywhere itself */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstraps; /* a copy, which outlives mcluster while it is destroyed */
    /* The waker (see waker_loop()). */
    pthread_t waker;
    int waker_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending; /* requests to the mock thread under way */
    int stopping;
};

/* librdkafka 2.0.2's mock thread serves its request queue and only then
 * drains its wake-up pipe: a request queued in between (typically the next
 * one of a series, such as the topics created at start-up) is served at the
 * thread's next poll timeout, up to a second later: evk-dev-broker took
 * up to 6 s to create the flow's 22 topics. A connection to one of its
 * listeners ends that poll too: while a request has waited WAKE_MS, the
 * waker opens and closes one. */
static void poke(evk_devbroker_t *db) {
    char list[1024];
    snprintf(list, sizeof list, "%s", db->bootstraps);
    char *save;
    for (char *hp = strtok_r(list, ",", &save); hp; hp = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(hp, ':');
        struct sockaddr_in sin = {.sin_family = AF_INET};
        if (!colon) continue;
        *colon = 0;
        sin.sin_port = htons((uint16_t)atoi(colon + 1));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return;
        /* A broker set down refuses: the next one is tried. */
        int ok = inet_pton(AF_INET, hp, &sin.sin_addr) == 1 &&
                 !connect(fd, (struct sockaddr *)&sin, sizeof sin);
        close(fd);
        if (ok) return;
    }
}

static void *waker_loop(void *arg) {
    evk_devbroker_t *db = arg;
    pthread_mutex_lock(&db->lock);
    while (!db->stopping) {
        if (!db->pending) {
            pthread_cond_wait(&db->cond, &db->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WAKE_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&db->cond, &db->lock, &until) == ETIMEDOUT && db->pending &&
            !db->stopping) {
            pthread_mutex_unlock(&db->lock);
            poke(db);
            pthread_mutex_lock(&db->lock);
        }
    }
    pthread_mutex_unlock(&db->lock);
    return NULL;
}

/* Around every request to the mock thread. */
static void request_begin(evk_devbroker_t *db) {
    pthread_mutex_lock(&db->lock);
    db->pending++;
    pthread_cond_signal(&db->cond);
    pthread_mutex_unlock(&db->lock);
}

static void request_end(evk_devbroker_t *db) {
    pthread_mutex_lock(&db->lock);
    db->pending--;
    pthread_mutex_unlock(&db->lock);
}

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
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->cond, NULL);
    char rderr[512];
    db->rk = host_handle_new(rderr, sizeof(rderr));
    if (!db->rk) {
        evk_devbroker_destroy(db);
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: %s", rderr);
    }
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, brokers);
    if (!db->mcluster) {
        evk_devbroker_destroy(db);
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size,
                         "dev broker: cannot start a mock cluster of %d brokers", brokers);
    }
    db->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(db->mcluster));
    if (!db->bootstraps) {
        evk_devbroker_destroy(db);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "dev broker: out of memory");
    }
    int rc = pthread_create(&db->waker, NULL, waker_loop, db);
    if (rc) {
        evk_devbroker_destroy(db);
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "dev broker: no thread: %s",
                         strerror(rc));
    }
    db->waker_started = 1;
    *out = db;
    return EVK_OK;
}

const char *evk_devbroker_bootstraps(const evk_devbroker_t *db) {
    return db->bootstraps;
}

evk_err_t evk_devbroker_create_topic(evk_devbroker_t *db, const char *topic, int partitions,
                                     int replication, char *errstr, size_t errstr_size) {
    if (!db || !topic || !*topic || partitions < 1 || replication < 1)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "dev broker: topic \"%s\": need a name, partitions >= 1 and "
                         "replication >= 1",
                         topic ? topic : "(null)");
    request_begin(db);
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(db->mcluster, topic, partitions, replication);
    request_end(db);
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
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int known = 1;
    request_begin(db);
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
        known = 0;
    request_end(db);
    if (!known)
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
    if (db->mcluster) {
        request_begin(db);
        rd_kafka_mock_cluster_destroy(db->mcluster);
        request_end(db);
    }
    if (db->waker_started) {
        pthread_mutex_lock(&db->lock);
        db->stopping = 1;
        pthread_cond_signal(&db->cond);
        pthread_mutex_unlock(&db->lock);
        pthread_join(db->waker, NULL);
    }
    if (db->rk) rd_kafka_destroy(db->rk);
    pthread_cond_destroy(&db->cond);
    pthread_mutex_destroy(&db->lock);
    free(db->bootstraps);
    free(db);
}
