/* evk_producer_t: an idempotent producer of evkit events and frames. */
#include <stdlib.h>
#include <string.h>

#include "evkit/cli.h"
#include "evkit/producer.h"
#include "internal.h"

/* Topic handles by name. The catalog has a handful of topics, so a short
 * array beats a hash table, and the last hit is checked first because
 * producers usually write runs of one type. */
typedef struct {
    char *name;
    rd_kafka_topic_t *rkt;
} topic_entry_t;

struct evk_producer_s {
    rd_kafka_t *rk;
    const evk_catalog_t *cat;
    char *source;
    evk_delivery_cb_t *cb;
    void *cb_opaque;
    topic_entry_t *topics;
    size_t ntopics;
    size_t last_topic;
    uint64_t delivered;
    uint64_t failed;
    /* Failures since the last flush; the first reason is what flush reports. */
    uint64_t failed_since_flush;
    char first_failure[512];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    evk_producer_t *p = opaque;
    const char *topic = rd_kafka_topic_name(m->rkt);
    const char *reason = NULL;
    if (m->err) {
        reason = rd_kafka_err2str(m->err);
        p->failed++;
        if (p->failed_since_flush++ == 0)
            snprintf(p->first_failure, sizeof(p->first_failure), "%s [%d]: %s", topic,
                     (int)m->partition, reason);
    } else {
        p->delivered++;
    }
    if (p->cb)
        p->cb(m->err ? EVK_ERR_DELIVERY : EVK_OK, reason, topic, m->partition, m->offset,
              m->_private, p->cb_opaque);
}

/* evkit's guarantee does not depend on what the config says. */
static rd_kafka_conf_t *producer_conf(const evk_config_t *cfg, char *errstr,
                                      size_t errstr_size) {
    rd_kafka_conf_t *conf = evk_config_kafka_conf(cfg, errstr, errstr_size);
    if (!conf) return NULL;
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "acks", "all", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    return conf;
}

evk_err_t evk_producer_new(const evk_config_t *cfg, const evk_catalog_t *cat,
                           const char *source, evk_producer_t **out, char *errstr,
                           size_t errstr_size) {
    if (!cfg || !cat || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "producer: config, catalog and out are required");
    evk_producer_t *p = calloc(1, sizeof(*p));
    if (!p || (source && !(p->source = strdup(source)))) {
        free(p);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "producer: out of memory");
    }
    p->cat = cat;
    char rderr[512];
    rd_kafka_conf_t *conf = producer_conf(cfg, rderr, sizeof(rderr));
    if (conf) {
        rd_kafka_conf_set_opaque(conf, p);
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
        if (!p->rk) rd_kafka_conf_destroy(conf);
    }
    if (!p->rk) {
        evk_producer_destroy(p);
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "producer: %s", rderr);
    }
    *out = p;
    return EVK_OK;
}

evk_err_t evk_producer_connect(evk_producer_t *p, int timeout_ms, char *errstr,
                               size_t errstr_size) {
    return evk_cli_connect(p->rk, timeout_ms, errstr, errstr_size);
}

void evk_producer_set_delivery_cb(evk_producer_t *p, evk_delivery_cb_t *cb, void *opaque) {
    p->cb = cb;
    p->cb_opaque = opaque;
}

static rd_kafka_topic_t *topic_handle(evk_producer_t *p, const char *name) {
    if (p->ntopics && !strcmp(p->topics[p->last_topic].name, name))
        return p->topics[p->last_topic].rkt;
    for (size_t i = 0; i < p->ntopics; i++) {
        if (!strcmp(p->topics[i].name, name)) {
            p->last_topic = i;
            return p->topics[i].rkt;
        }
    }
    topic_entry_t *grown = realloc(p->topics, (p->ntopics + 1) * sizeof(*grown));
    if (!grown) return NULL;
    p->topics = grown;
    topic_entry_t *e = &p->topics[p->ntopics];
    e->name = strdup(name);
    e->rkt = e->name ? rd_kafka_topic_new(p->rk, name, NULL) : NULL;
    if (!e->rkt) {
        free(e->name);
        return NULL;
    }
    p->last_topic = p->ntopics++;
    return e->rkt;
}

/* Queue full means the broker is slower than the caller: serve delivery
 * reports until there is room, never drop. */
static rd_kafka_resp_err_t produce(evk_producer_t *p, rd_kafka_topic_t *rkt, int32_t partition,
                                   const void *key, size_t key_len, void *frame, size_t len,
                                   rd_kafka_headers_t *headers, void *msg_opaque) {
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_VALUE(frame, len),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return err;
        rd_kafka_poll(p->rk, 100);
    }
}

evk_err_t evk_producer_send_frame(evk_producer_t *p, const evk_schema_t *s, int32_t partition,
                                  const void *key, size_t key_len, void *frame, size_t len,
                                  rd_kafka_headers_t *headers, void *msg_opaque, char *errstr,
                                  size_t errstr_size) {
    rd_kafka_topic_t *rkt = topic_handle(p, evk_schema_topic(s));
    rd_kafka_resp_err_t err =
        rkt ? produce(p, rkt, partition, key, key_len, frame, len, headers, msg_opaque)
            : RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (!err) return EVK_OK;
    /* librdkafka takes ownership only on success. */
    free(frame);
    if (headers) rd_kafka_headers_destroy(headers);
    return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "produce to %s: %s",
                     evk_schema_topic(s),
                     rkt ? rd_kafka_err2str(err) : "cannot create topic handle");
}

evk_err_t evk_producer_send(evk_producer_t *p, evk_event_t *ev, void *msg_opaque, char *errstr,
                            size_t errstr_size) {
    if (!p || !ev) {
        evk_event_destroy(ev);
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "producer: producer and event are required");
    }
    void *frame = NULL;
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    evk_err_t err = EVK_OK;
    if (!evk_event_source(ev) && p->source) err = evk_event_set_source(ev, p->source);
    if (!err) err = evk_event_encode(ev, &frame, &len);
    if (!err) err = evk_event_headers(ev, &headers);
    if (err) {
        evk__fail(err, errstr, errstr_size, "%s: cannot encode: %s", evk_event_type(ev),
                  evk_err2str(err));
        free(frame);
        evk_event_destroy(ev);
        return err;
    }
    const char *key = evk_event_key(ev);
    err = evk_producer_send_frame(p, evk_event_schema(ev), RD_KAFKA_PARTITION_UA, key,
                                  key ? strlen(key) : 0, frame, len, headers, msg_opaque,
                                  errstr, errstr_size);
    evk_event_destroy(ev);
    return err;
}

int evk_producer_poll(evk_producer_t *p, int timeout_ms) {
    return rd_kafka_poll(p->rk, timeout_ms);
}

/* librdkafka's own purge on a fatal error (an idempotent producer's, say)
 * does not wait for the brokers' threads, so messages they hold are never
 * failed before message.timeout.ms (5 minutes by default) and a flush
 * would wait that long for messages that can no longer be sent. So the
 * flush runs in slices, and once the producer has failed it purges what is
 * still queued, waiting for every thread; what is in flight gets its
 * answer. */
#define PRODUCER_FLUSH_SLICE_MS 100

static rd_kafka_resp_err_t producer_flush(evk_producer_t *p, int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? -1 : evk__now_ms() + timeout_ms;
    int purged = 0;
    for (;;) {
        int64_t left = deadline < 0 ? PRODUCER_FLUSH_SLICE_MS : deadline - evk__now_ms();
        int slice = left < PRODUCER_FLUSH_SLICE_MS ? (int)(left > 0 ? left : 0)
                                                   : PRODUCER_FLUSH_SLICE_MS;
        rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, slice);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || (deadline >= 0 && evk__now_ms() >= deadline))
            return err;
        if (!purged && rd_kafka_fatal_error(p->rk, NULL, 0)) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE);
            purged = 1;
        }
    }
}

evk_err_t evk_producer_flush(evk_producer_t *p, int timeout_ms, char *errstr,
                             size_t errstr_size) {
    rd_kafka_resp_err_t err = producer_flush(p, timeout_ms);
    if (p->failed_since_flush) {
        evk__fail(EVK_ERR_DELIVERY, errstr, errstr_size, "%llu message(s) not delivered: %s",
                  (unsigned long long)p->failed_since_flush, p->first_failure);
        p->failed_since_flush = 0;
        return EVK_ERR_DELIVERY;
    }
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return evk__fail(EVK_ERR_TIMEOUT, errstr, errstr_size,
                         "flush: %d message(s) still in flight after %d ms",
                         rd_kafka_outq_len(p->rk), timeout_ms);
    return EVK_OK;
}

uint64_t evk_producer_delivered(const evk_producer_t *p) {
    return p->delivered;
}

uint64_t evk_producer_failed(const evk_producer_t *p) {
    return p->failed;
}

rd_kafka_t *evk_producer_rk(evk_producer_t *p) {
    return p->rk;
}

void evk_producer_destroy(evk_producer_t *p) {
    if (!p) return;
    for (size_t i = 0; i < p->ntopics; i++) {
        rd_kafka_topic_destroy(p->topics[i].rkt);
        free(p->topics[i].name);
    }
    free(p->topics);
    if (p->rk) rd_kafka_destroy(p->rk);
    free(p->source);
    free(p);
}
