/* The dev broker serves real Kafka clients over TCP, and an event produced
 * by evk_producer comes back intact through a plain librdkafka consumer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "runtime_support.h"

/* Kafka protocol ApiKey of ProduceRequest (librdkafka keeps its name private). */
#define API_PRODUCE 0

static void test_new_rejects_no_brokers(void **state) {
    (void)state;
    char errstr[256] = "";
    evk_devbroker_t *db = NULL;
    assert_int_equal(evk_devbroker_new(0, &db, errstr, sizeof(errstr)), EVK_ERR_INVALID_ARG);
    assert_null(db);
    assert_string_equal(errstr, "dev broker: need at least 1 broker, got 0");
}

static void test_bootstraps_list_every_broker(void **state) {
    (void)state;
    evk_devbroker_t *db;
    assert_int_equal(evk_devbroker_new(3, &db, NULL, 0), EVK_OK);
    const char *bs = evk_devbroker_bootstraps(db);
    int n = 0;
    for (const char *p = bs; (p = strstr(p, "127.0.0.1:")); p++)
        n++;
    assert_int_equal(n, 3);
    assert_non_null(evk_devbroker_mock(db));
    evk_devbroker_destroy(db);
    evk_devbroker_destroy(NULL);
}

static int metadata_partitions(rt_env_t *env, const char *topic) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", evk_devbroker_bootstraps(env->db), errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 5000), 0);
    assert_int_equal(md->topics[0].err, 0);
    int cnt = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return cnt;
}

static void test_create_topic(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    char errstr[256] = "";
    assert_int_equal(evk_devbroker_create_topic(env->db, "seven", 7, 1, errstr, sizeof(errstr)),
                     EVK_OK);
    assert_int_equal(metadata_partitions(env, "seven"), 7);
    assert_int_equal(evk_devbroker_create_topic(env->db, "zero", 0, 1, errstr, sizeof(errstr)),
                     EVK_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "\"zero\""));
    rt_env_destroy(env);
}

static void assert_header(const rd_kafka_message_t *m, const char *name, const char *want) {
    char *got = rt_header(m, name);
    if (!got) fail_msg("header %s missing", name);
    assert_string_equal(got, want);
    free(got);
}

static void assert_order_body(evk_event_t *ev) {
    const char *s;
    int64_t v;
    size_t n;
    assert_int_equal(evk_event_get_string(ev, "order_id", &s), EVK_OK);
    assert_string_equal(s, "o-1");
    assert_int_equal(evk_event_get_string(ev, "customer_id", &s), EVK_OK);
    assert_string_equal(s, "c-42");
    assert_int_equal(evk_event_array_size(ev, "items", &n), EVK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(evk_event_get_long(ev, "items[0].quantity", &v), EVK_OK);
    assert_int_equal(v, 2);
    assert_int_equal(evk_event_get_long(ev, "items[1].unit_price_cents", &v), EVK_OK);
    assert_int_equal(v, 999);
    assert_int_equal(evk_event_get_long(ev, "created_at", &v), EVK_OK);
    assert_int_equal(v, 1700000000000LL);
}

typedef struct {
    rt_env_t *env;
    const char *id;
} roundtrip_t;

static void check_roundtrip(const rd_kafka_message_t *m, void *opaque) {
    roundtrip_t *rt = opaque;
    assert_true(m->len > EVK_FRAME_HEADER_SIZE);
    assert_memory_equal(m->payload, "\0\0\0\0\1", 5);
    assert_int_equal(m->key_len, 3);
    assert_memory_equal(m->key, "o-1", 3);
    assert_header(m, "ce_specversion", "1.0");
    assert_header(m, "ce_id", rt->id);
    assert_header(m, "ce_type", "shop.orders.OrderPlaced");
    assert_header(m, "ce_source", "test");
    assert_header(m, "content-type", "application/avro");
    assert_header(m, "correlation_id", "corr-1");
    char *time = rt_header(m, "ce_time");
    assert_non_null(time);
    free(time);

    evk_event_t *back;
    char errstr[512];
    if (evk_event_from_message(rt->env->cat, m, &back, errstr, sizeof(errstr)))
        fail_msg("decode: %s", errstr);
    assert_order_body(back);
    assert_string_equal(evk_event_id(back), rt->id);
    assert_string_equal(evk_event_key(back), "o-1");
    assert_string_equal(evk_event_source(back), "test");
    assert_string_equal(evk_event_correlation_id(back), "corr-1");
    evk_event_destroy(back);
}

static void test_roundtrip_over_tcp(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(3);
    evk_producer_t *p = rt_producer(env);
    evk_event_t *ev = rt_order(env, "o-1");
    assert_int_equal(evk_event_set_correlation_id(ev, "corr-1"), EVK_OK);
    char id[64];
    snprintf(id, sizeof(id), "%s", evk_event_id(ev));
    char errstr[512];
    assert_int_equal(evk_producer_send(p, ev, NULL, errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(evk_producer_delivered(p), 1);
    assert_int_equal(evk_producer_failed(p), 0);
    roundtrip_t rt = {env, id};
    assert_int_equal(rt_consume(env, "orders", 1, 10000, check_roundtrip, &rt), 1);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

/* A non-retriable broker error must reach the caller, never vanish. */
static void test_delivery_failure_reaches_flush(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    rd_kafka_mock_push_request_errors(evk_devbroker_mock(env->db), API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    char errstr[512] = "";
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-2"), NULL, errstr, sizeof(errstr)),
                     EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, errstr, sizeof(errstr)), EVK_ERR_DELIVERY);
    assert_non_null(strstr(errstr, "1 message(s) not delivered: orders ["));
    assert_non_null(
        strstr(errstr, rd_kafka_err2str(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)));
    assert_int_equal(evk_producer_failed(p), 1);
    assert_int_equal(evk_producer_delivered(p), 0);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

/* The control channel's commands act on the mock cluster; a bad one says
 * what is wrong and changes nothing. */
static void test_command(void **state) {
    (void)state;
    char errstr[256] = "";
    evk_devbroker_t *db;
    assert_int_equal(evk_devbroker_new(3, &db, NULL, 0), EVK_OK);
    const char *good[] = {"down 2",
                          "up 2",
                          "err Produce 3 NOT_LEADER_FOR_PARTITION",
                          "err endtxn 1 COORDINATOR_NOT_AVAILABLE",
                          "clear Produce",
                          "rtt 1 50",
                          "",
                          "  # a comment"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(evk_devbroker_command(db, good[i], errstr, sizeof errstr), EVK_OK);
    const char *bad[] = {"down",
                         "down x",
                         "up 2 3",
                         "err Bogus 1 NOT_LEADER_FOR_PARTITION",
                         "err Produce 0 NOT_LEADER_FOR_PARTITION",
                         "err Produce 1 NO_SUCH_ERROR",
                         "reboot"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(evk_devbroker_command(db, bad[i], errstr, sizeof errstr),
                         EVK_ERR_INVALID_ARG);
        assert_non_null(strstr(errstr, "bad command"));
    }
    assert_int_equal(evk_devbroker_command(db, "down 9", errstr, sizeof errstr),
                     EVK_ERR_INVALID_ARG);
    assert_string_equal(errstr, "dev broker: \"down 9\": Broker: Broker not available");
    evk_devbroker_destroy(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_no_brokers),
        cmocka_unit_test(test_bootstraps_list_every_broker),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_create_topic),
        cmocka_unit_test(test_roundtrip_over_tcp),
        cmocka_unit_test(test_delivery_failure_reaches_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
