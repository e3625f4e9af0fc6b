/* evk_producer: backpressure instead of loss, delivery reports, flush
 * results, topic routing and CloudEvents source defaulting. */
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

typedef struct {
    int ok;
    int failed;
    int opaque_sum;
    char topics[8][32];
} reports_t;

static void on_report(evk_err_t err, const char *errstr, const char *topic, int32_t partition,
                      int64_t offset, void *msg_opaque, void *opaque) {
    reports_t *r = opaque;
    if (err) {
        assert_int_equal(err, EVK_ERR_DELIVERY);
        assert_non_null(errstr);
        r->failed++;
        return;
    }
    assert_true(partition >= 0);
    assert_true(offset >= 0);
    if (r->ok < 8) snprintf(r->topics[r->ok], sizeof(r->topics[0]), "%s", topic);
    r->ok++;
    r->opaque_sum += (int)(intptr_t)msg_opaque;
}

static void test_delivery_cb_and_routing(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    reports_t r = {0};
    evk_producer_set_delivery_cb(p, on_report, &r);
    const evk_schema_t *declined = evk_catalog_find(env->cat, "PaymentDeclined");
    for (int i = 1; i <= 4; i++) {
        evk_event_t *ev = i % 2 ? rt_order(env, "o-1") : evk_event_new(declined);
        assert_int_equal(evk_producer_send(p, ev, (void *)(intptr_t)i, NULL, 0), EVK_OK);
        /* one at a time, so that reports come in send order */
        assert_int_equal(evk_producer_flush(p, 10000, NULL, 0), EVK_OK);
    }
    assert_int_equal(r.ok, 4);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.opaque_sum, 1 + 2 + 3 + 4);
    assert_string_equal(r.topics[0], "orders");
    assert_string_equal(r.topics[1], "payments");
    assert_string_equal(r.topics[2], "orders");
    assert_string_equal(r.topics[3], "payments");
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

/* A queue of 10 messages must slow the caller down, not lose events. */
static void test_queue_full_is_backpressure(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    assert_int_equal(
        evk_config_set_kafka(env->cfg, "queue.buffering.max.messages", "10", NULL, 0), EVK_OK);
    evk_producer_t *p = rt_producer(env);
    const int n = 2000;
    for (int i = 0; i < n; i++)
        assert_int_equal(evk_producer_send(p, rt_order(env, "o-bp"), NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 30000, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_delivered(p), n);
    assert_int_equal(evk_producer_failed(p), 0);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

static void check_source(const rd_kafka_message_t *m, void *opaque) {
    (void)opaque;
    char *source = rt_header(m, "ce_source");
    int own = m->key_len == 5 && !memcmp(m->key, "o-own", 5);
    assert_string_equal(source, own ? "elsewhere" : "test");
    free(source);
}

static void test_source_defaults_to_producer(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    evk_event_t *own = rt_order(env, "o-own");
    assert_int_equal(evk_event_set_source(own, "elsewhere"), EVK_OK);
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-default"), NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_send(p, own, NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, NULL, 0), EVK_OK);
    assert_int_equal(rt_consume(env, "orders", 2, 10000, check_source, NULL), 2);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

static const unsigned char frame_bytes[] = {0, 0, 0, 0, 12, 0xde, 0xad};

static void check_frame(const rd_kafka_message_t *m, void *opaque) {
    (void)opaque;
    assert_int_equal(m->len, sizeof(frame_bytes));
    assert_memory_equal(m->payload, frame_bytes, sizeof(frame_bytes));
    assert_memory_equal(m->key, "sku-9", 5);
    char *h = rt_header(m, "x-test");
    assert_string_equal(h, "yes");
    free(h);
}

static void test_send_frame_passes_bytes_through(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    void *frame = malloc(sizeof(frame_bytes));
    memcpy(frame, frame_bytes, sizeof(frame_bytes));
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "x-test", -1, "yes", -1);
    const evk_schema_t *level = evk_catalog_find(env->cat, "StockLevel");
    assert_int_equal(evk_producer_send_frame(p, level, RD_KAFKA_PARTITION_UA, "sku-9", 5, frame,
                                             sizeof(frame_bytes), hdrs, NULL, NULL, 0),
                     EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, NULL, 0), EVK_OK);
    assert_int_equal(rt_consume(env, "inventory.levels", 1, 10000, check_frame, NULL), 1);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

/* The failure is reported by the flush that follows it, and only that one. */
static void test_failure_reported_once(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    reports_t r = {0};
    evk_producer_set_delivery_cb(p, on_report, &r);
    /* An error of one message, unlike an authorization error, which also
     * makes librdkafka refuse later sends to the topic. */
    rd_kafka_mock_push_request_errors(evk_devbroker_mock(env->db), API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    char errstr[512] = "";
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-f"), NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, errstr, sizeof(errstr)), EVK_ERR_DELIVERY);
    assert_int_equal(r.failed, 1);
    assert_int_equal(evk_producer_flush(p, 10000, errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-g"), NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(r.ok, 1);
    assert_int_equal(evk_producer_failed(p), 1);
    assert_int_equal(evk_producer_delivered(p), 1);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

/* With the broker down nothing is lost: flush times out, then succeeds. */
static void test_flush_timeout_then_recovery(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = rt_producer(env);
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-warm"), NULL, NULL, 0), EVK_OK);
    assert_int_equal(evk_producer_flush(p, 10000, NULL, 0), EVK_OK);
    rd_kafka_mock_broker_set_down(evk_devbroker_mock(env->db), 1);
    assert_int_equal(evk_producer_send(p, rt_order(env, "o-late"), NULL, NULL, 0), EVK_OK);
    char errstr[512] = "";
    assert_int_equal(evk_producer_flush(p, 500, errstr, sizeof(errstr)), EVK_ERR_TIMEOUT);
    assert_non_null(strstr(errstr, "still in flight after 500 ms"));
    rd_kafka_mock_broker_set_up(evk_devbroker_mock(env->db), 1);
    assert_int_equal(evk_producer_flush(p, 30000, errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(evk_producer_delivered(p), 2);
    evk_producer_destroy(p);
    rt_env_destroy(env);
}

static void test_invalid_arguments(void **state) {
    (void)state;
    rt_env_t *env = rt_env_new(1);
    evk_producer_t *p = NULL;
    char errstr[256] = "";
    assert_int_equal(evk_producer_new(NULL, env->cat, "x", &p, errstr, sizeof(errstr)),
                     EVK_ERR_INVALID_ARG);
    assert_null(p);
    p = rt_producer(env);
    assert_int_equal(evk_producer_send(p, NULL, NULL, errstr, sizeof(errstr)),
                     EVK_ERR_INVALID_ARG);
    evk_producer_destroy(p);
    evk_producer_destroy(NULL);
    rt_env_destroy(env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivery_cb_and_routing),
        cmocka_unit_test(test_queue_full_is_backpressure),
        cmocka_unit_test(test_source_defaults_to_producer),
        cmocka_unit_test(test_send_frame_passes_bytes_through),
        cmocka_unit_test(test_failure_reported_once),
        cmocka_unit_test(test_flush_timeout_then_recovery),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
