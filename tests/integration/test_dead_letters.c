/* Dead letters that would not fit as they are, over the dev broker: with
 * <service>.dead_letter_max_bytes = 4096 the value is cut first, then the
 * input's headers are left out, then the key is cut, each noted in an
 * evk_dlq_* header; the record always fits and the service keeps going.
 * (tests/integration/test_big_messages.py does the same at 1 MB and 10 MB through the
 * reference services.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "svc_support.h"

#define NAME "dlq"
#define LIMIT 4096

typedef struct {
    const char *key;     /* key prefix (the key is this, padded to key_len) */
    size_t key_len, len; /* of the input's key and value */
    size_t big_header;   /* bytes of an extra header x-big, 0: none */
    const char *want[4]; /* headers the dead letter must carry, "name=value" */
    const char *gone[3]; /* headers it must not carry */
} case_t;

static const case_t cases[] = {
    {.key = "fits",
     .key_len = 4,
     .len = 2000,
     .want = {"x-test=fits"},
     .gone = {"evk_dlq_truncated", "evk_dlq_headers_dropped"}},
    {.key = "cut",
     .key_len = 3,
     .len = 10000,
     .want = {"x-test=cut", "evk_dlq_truncated=10000"},
     .gone = {"evk_dlq_headers_dropped"}},
    {.key = "headers",
     .key_len = 7,
     .len = 100,
     .big_header = 5000,
     .want = {"evk_dlq_headers_dropped=2"},
     .gone = {"x-test", "x-big", "evk_dlq_truncated"}},
    {.key = "key",
     .key_len = 6000,
     .len = 100,
     .want = {"evk_dlq_headers_dropped=1", "evk_dlq_key_truncated=6000",
              "evk_dlq_truncated=100"},
     .gone = {"x-test"}},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    (void)ctx, (void)in, (void)opaque;
    return EVK_OK;
}

/* A value whose every byte says where it is, so that a prefix can be told. */
static char *pattern(size_t len, char first) {
    char *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + i % 26);
    p[0] = first;
    p[len] = '\0';
    return p;
}

static void send_case(svc_env_t *env, const case_t *c) {
    char *key = pattern(c->key_len, c->key[0]);
    memcpy(key, c->key, strlen(c->key) < c->key_len ? strlen(c->key) : c->key_len);
    char *value = pattern(c->len, '\x01'); /* not a Confluent frame */
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "x-test", -1, c->key, -1);
    if (c->big_header) {
        char *big = pattern(c->big_header, 'B');
        rd_kafka_header_add(h, "x-big", -1, big, -1);
        free(big);
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        env->producer, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_KEY(key, c->key_len),
        RD_KAFKA_V_VALUE(value, c->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err) fail_msg("produce %s: %s", c->key, rd_kafka_err2str(err));
    free(key);
    free(value);
}

static const case_t *case_of(const rd_kafka_message_t *m) {
    for (size_t i = 0; i < NCASES; i++)
        if (m->key_len >= 3 && !strncmp(m->key, cases[i].key, 3)) return &cases[i];
    fail_msg("unexpected dead letter");
    return NULL;
}

static size_t record_bytes(const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h;
    size_t n = m->key_len + m->len;
    const char *name;
    const void *value;
    size_t size;
    if (!rd_kafka_message_headers(m, &h))
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &value, &size); i++)
            n += strlen(name) + size;
    return n;
}

static void assert_case(const rd_kafka_message_t *m, const case_t *c) {
    assert_true(record_bytes(m) <= LIMIT);
    for (size_t i = 0; i < 4 && c->want[i]; i++) {
        const char *eq = strchr(c->want[i], '=');
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - c->want[i]), c->want[i]);
        char *v = rt_header(m, name);
        if (!v || strcmp(v, eq + 1))
            fail_msg("%s: %s is %s", c->key, c->want[i], v ? v : "absent");
        free(v);
    }
    for (size_t i = 0; i < 3 && c->gone[i]; i++) {
        char *v = rt_header(m, c->gone[i]);
        if (v) fail_msg("%s: %s present", c->key, c->gone[i]);
    }
    char *h = rt_header(m, "evk_dlq_error");
    assert_string_equal(h, "EVK_ERR_BAD_MAGIC");
    free(h);
    /* Whatever is left of key and value is their beginning. */
    char *key = pattern(c->key_len, c->key[0]), *value = pattern(c->len, '\x01');
    memcpy(key, c->key, strlen(c->key) < c->key_len ? strlen(c->key) : c->key_len);
    assert_true(m->key_len <= c->key_len && !memcmp(m->key, key, m->key_len));
    assert_true(m->len <= c->len && !memcmp(m->payload, value, m->len));
    char *cut = rt_header(m, "evk_dlq_truncated");
    assert_int_equal(m->len == c->len, cut == NULL);
    free(cut);
    free(key);
    free(value);
}

static void test_cut_to_fit(void **state) {
    svc_env_t *env = *state;
    char errstr[512], limit[16];
    snprintf(limit, sizeof(limit), "%d", LIMIT);
    svc_env_set(env, NAME ".dead_letter_max_bytes", limit);
    evk_service_t *svc;
    if (evk_service_new(NAME, env->cfg, env->cat, &svc, errstr, sizeof(errstr)) ||
        evk_service_on(svc, "OrderPlaced", on_placed, NULL, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    svc_runner_t r;
    svc_start(&r, svc);
    for (size_t i = 0; i < NCASES; i++)
        send_case(env, &cases[i]);
    free(svc_send(env, svc_order(env, "after", "c-1", "A:1", NULL), -1));
    svc_flush(env);
    assert_int_equal(svc_wait_for(env, "orders.dlq", NCASES, SVC_WAIT_MS), NCASES);
    assert_int_equal(svc_stop(&r), EVK_OK);
    assert_true(svc_committed_at_end(env, NAME, "orders"));
    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    assert_int_equal(st.dead_letters, NCASES);
    assert_int_equal(st.consumed, NCASES + 1);
    evk_service_destroy(svc);

    svc_msgs_t dlq = svc_read_all(env, "orders.dlq");
    assert_int_equal(dlq.n, NCASES);
    for (size_t i = 0; i < dlq.n; i++)
        assert_case(dlq.m[i], case_of(dlq.m[i]));
    svc_msgs_free(&dlq);
}

/* dead_letter_max_bytes cannot exceed what the producer may send. */
static void test_limit_setting(void **state) {
    svc_env_t *env = *state;
    char errstr[512];
    evk_service_t *svc;
    svc_env_set(env, NAME ".dead_letter_max_bytes", "2000000");
    assert_int_equal(evk_service_new(NAME, env->cfg, env->cat, &svc, errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_string_equal(errstr, NAME ".dead_letter_max_bytes: must not exceed "
                                     "kafka.message.max.bytes (1000000)");
    svc_env_set(env, NAME ".dead_letter_max_bytes", "100");
    assert_int_equal(evk_service_new(NAME, env->cfg, env->cat, &svc, errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_non_null(strstr(errstr, "must be at least 4096"));
}

static int setup(void **state) {
    *state = svc_env_new(SVC_PARTITIONS);
    return 0;
}

static int teardown(void **state) {
    svc_env_destroy(*state);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_to_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_setting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
