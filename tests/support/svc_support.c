/* The service tests' fixtures: inputs, read_committed readers, a service
 * in a thread (svc_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "internal.h"
#include "svc_support.h"

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        fail_msg("%s: %s", name, errstr);
}

static rd_kafka_t *client(svc_env_t *env, rd_kafka_type_t type, const char *group) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", evk_devbroker_bootstraps(env->db));
    if (type == RD_KAFKA_PRODUCER) {
        conf_set(conf, "enable.idempotence", "true");
        conf_set(conf, "linger.ms", "1");
    } else {
        /* librdkafka wants a group for assign() too; nothing is committed. */
        conf_set(conf, "group.id", group);
        conf_set(conf, "enable.auto.commit", "false");
        conf_set(conf, "isolation.level", "read_committed");
        conf_set(conf, "enable.partition.eof", "true");
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) fail_msg("client: %s", errstr);
    if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
    return rk;
}

svc_env_t *svc_env_new(int out_partitions) {
    char errstr[512];
    svc_env_t *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    env->out_partitions = out_partitions;
    if (evk_devbroker_new(3, &env->db, errstr, sizeof(errstr))) fail_msg("%s", errstr);
    const struct {
        const char *name;
        int partitions;
    } topics[] = {{"orders", SVC_PARTITIONS},
                  {"orders.dlq", SVC_PARTITIONS},
                  {"inventory", out_partitions},
                  {"inventory.levels", out_partitions}};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        if (evk_devbroker_create_topic(env->db, topics[i].name, topics[i].partitions, 1, errstr,
                                       sizeof(errstr)))
            fail_msg("%s", errstr);
    env->cfg = evk_config_new();
    assert_non_null(env->cfg);
    /* The mock cluster holds a rejoin after a member left for the session
     * timeout less a second: keep restarts quick. */
    if (evk_config_set_kafka(env->cfg, "session.timeout.ms", "3000", errstr, sizeof(errstr)) ||
        evk_config_set_kafka(env->cfg, "heartbeat.interval.ms", "500", errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    /* EVK_KAFKA_DEBUG=cgrp,eos etc. helps when a test hangs. */
    if (evk_config_apply_env(env->cfg, errstr, sizeof(errstr))) fail_msg("%s", errstr);
    if (evk_config_set_kafka(env->cfg, "bootstrap.servers", evk_devbroker_bootstraps(env->db),
                             errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    const char *dir = getenv("EVK_SCHEMAS_DIR");
    assert_non_null(dir);
    if (evk_catalog_load(dir, &env->cat, errstr, sizeof(errstr))) fail_msg("%s", errstr);
    env->producer = client(env, RD_KAFKA_PRODUCER, NULL);
    return env;
}

void svc_env_destroy(svc_env_t *env) {
    rd_kafka_flush(env->producer, 10000);
    rd_kafka_destroy(env->producer);
    evk_catalog_destroy(env->cat);
    evk_config_destroy(env->cfg);
    evk_devbroker_destroy(env->db);
    free(env);
}

void svc_env_set(svc_env_t *env, const char *path, const char *value) {
    assert_int_equal(evk_config_set(env->cfg, path, value), EVK_OK);
}

evk_event_t *svc_order(svc_env_t *env, const char *order_id, const char *customer, ...) {
    evk_event_t *ev = evk_event_new(evk_catalog_find(env->cat, "OrderPlaced"));
    assert_non_null(ev);
    assert_int_equal(evk_event_set_string(ev, "order_id", order_id), EVK_OK);
    assert_int_equal(evk_event_set_string(ev, "customer_id", customer), EVK_OK);
    assert_int_equal(evk_event_set_key(ev, order_id), EVK_OK);
    va_list ap;
    va_start(ap, customer);
    for (const char *line; (line = va_arg(ap, const char *));) {
        char path[64], sku[32];
        int qty;
        size_t i;
        assert_int_equal(sscanf(line, "%31[^:]:%d", sku, &qty), 2);
        assert_int_equal(evk_event_append(ev, "items", &i), EVK_OK);
        snprintf(path, sizeof(path), "items[%zu].sku", i);
        assert_int_equal(evk_event_set_string(ev, path, sku), EVK_OK);
        snprintf(path, sizeof(path), "items[%zu].quantity", i);
        assert_int_equal(evk_event_set_long(ev, path, qty), EVK_OK);
        snprintf(path, sizeof(path), "items[%zu].unit_price_cents", i);
        assert_int_equal(evk_event_set_long(ev, path, 100), EVK_OK);
    }
    va_end(ap);
    return ev;
}

static void produce(svc_env_t *env, const char *topic, const char *key, void *value, size_t len,
                    rd_kafka_headers_t *hdrs, int partition) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        env->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_END);
    if (err) fail_msg("produce to %s: %s", topic, rd_kafka_err2str(err));
}

char *svc_send(svc_env_t *env, evk_event_t *ev, int partition) {
    return svc_send_to(env, evk_schema_topic(evk_event_schema(ev)), ev, partition);
}

char *svc_send_to(svc_env_t *env, const char *topic, evk_event_t *ev, int partition) {
    void *value;
    size_t len;
    rd_kafka_headers_t *hdrs;
    assert_int_equal(evk_event_set_source(ev, "test"), EVK_OK);
    assert_int_equal(evk_event_encode(ev, &value, &len), EVK_OK);
    assert_int_equal(evk_event_headers(ev, &hdrs), EVK_OK);
    produce(env, topic, evk_event_key(ev), value, len, hdrs, partition);
    free(value);
    char *id = strdup(evk_event_id(ev));
    evk_event_destroy(ev);
    return id;
}

void svc_send_raw(svc_env_t *env, const char *topic, const char *key, const void *value,
                  size_t len, int partition) {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "x-test", -1, key, -1);
    produce(env, topic, key, (void *)value, len, hdrs, partition);
}

void svc_flush(svc_env_t *env) {
    assert_int_equal(rd_kafka_flush(env->producer, 10000), 0);
}

static int partition_count(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), 0);
    assert_int_equal(md->topics[0].err, 0);
    int n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static int assign_all(rd_kafka_t *rk, const char *topic) {
    int n = partition_count(rk, topic);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, list), 0);
    rd_kafka_topic_partition_list_destroy(list);
    return n;
}

/* Reads @p topic until @p want messages (or, with want 0, until the end of
 * every partition) or the deadline. Keeps the messages if @p keep. */
static size_t read_topic(svc_env_t *env, const char *topic, size_t want, int timeout_ms,
                         svc_msgs_t *keep) {
    rd_kafka_t *rk = client(env, RD_KAFKA_CONSUMER, "svc-test-reader");
    int partitions = assign_all(rk, topic);
    int64_t deadline = evk__now_ms() + timeout_ms;
    size_t got = 0;
    int at_end = 0;
    while ((want ? got < want : at_end < partitions) && evk__now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) at_end++;
        if (m->err || !keep) {
            got += !m->err;
            rd_kafka_message_destroy(m);
            continue;
        }
        keep->m = realloc(keep->m, (keep->n + 1) * sizeof(*keep->m));
        keep->m[keep->n++] = m;
        got++;
    }
    if (!want && at_end < partitions) fail_msg("%s: end not reached", topic);
    if (keep) {
        keep->rk = rk;
    } else {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return got;
}

size_t svc_wait_for(svc_env_t *env, const char *topic, size_t want, int timeout_ms) {
    return read_topic(env, topic, want, timeout_ms, NULL);
}

svc_msgs_t svc_read_all(svc_env_t *env, const char *topic) {
    svc_msgs_t msgs = {NULL, 0, NULL};
    read_topic(env, topic, 0, SVC_WAIT_MS, &msgs);
    return msgs;
}

void svc_msgs_free(svc_msgs_t *msgs) {
    for (size_t i = 0; i < msgs->n; i++)
        rd_kafka_message_destroy(msgs->m[i]);
    free(msgs->m);
    rd_kafka_consumer_close(msgs->rk);
    rd_kafka_destroy(msgs->rk);
    memset(msgs, 0, sizeof(*msgs));
}

char *svc_key(const rd_kafka_message_t *m) {
    return strndup(m->key ? m->key : "", m->key_len);
}

int svc_committed_at_end(svc_env_t *env, const char *group, const char *topic) {
    rd_kafka_t *rk = client(env, RD_KAFKA_CONSUMER, group);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(SVC_PARTITIONS);
    for (int p = 0; p < SVC_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(list, topic, p);
    assert_int_equal(rd_kafka_committed(rk, list, 10000), 0);
    int ok = 1;
    for (int p = 0; p < SVC_PARTITIONS; p++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        int64_t c = list->elems[p].offset;
        /* A partition nobody wrote to has nothing to commit. */
        if (c != hi && !(hi == 0 && c == RD_KAFKA_OFFSET_INVALID)) {
            print_error("%s [%d]: committed %lld, end %lld\n", topic, p, (long long)c,
                        (long long)hi);
            ok = 0;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return ok;
}

static void *runner_main(void *arg) {
    svc_runner_t *r = arg;
    evk_err_t rc = evk_service_run(r->svc, r->errstr, sizeof(r->errstr));
    pthread_mutex_lock(&r->lock);
    r->rc = rc;
    r->done = 1;
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void svc_start(svc_runner_t *r, evk_service_t *svc) {
    memset(r, 0, sizeof(*r));
    r->svc = svc;
    pthread_mutex_init(&r->lock, NULL);
    assert_int_equal(pthread_create(&r->thread, NULL, runner_main, r), 0);
}

evk_err_t svc_join(svc_runner_t *r, int timeout_ms) {
    int64_t deadline = evk__now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int done = r->done;
        pthread_mutex_unlock(&r->lock);
        if (done) break;
        if (evk__now_ms() > deadline) fail_msg("service did not return");
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    return r->rc;
}

evk_err_t svc_stop(svc_runner_t *r) {
    evk_service_stop(r->svc);
    evk_err_t rc = svc_join(r, SVC_WAIT_MS);
    if (rc) print_error("service returned %s: %s\n", evk_err_name(rc), r->errstr);
    return rc;
}
