/* A service whose catalog uses a Schema Registry (tests/support/registry_server.py)
 * that answers some schema ids badly or not at all, over the dev broker:
 * a broken answer dead-letters the input after a bounded number of tries;
 * an unreachable registry makes the service wait, with /healthz at 503 and
 * the waits counted in /metrics, until the registry answers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "evkit/registry.h"
#include "internal.h"
#include "registry_support.h"
#include "svc_support.h"

#define NAME "regsvc"

/* One service runs through both tests, which see each other's dead
 * letters: starting a service on the dev broker takes seconds. */
typedef struct {
    svc_env_t *env;
    server_t registry;
    int port; /* the service's /healthz and /metrics */
    evk_service_t *svc;
    svc_runner_t runner;
} fixture_t;

/* ---- HTTP ---- */

typedef struct {
    char text[8192];
    size_t len;
} body_t;

static size_t collect(char *data, size_t size, size_t n, void *opaque) {
    body_t *b = opaque;
    size_t room = sizeof b->text - 1 - b->len, take = size * n < room ? size * n : room;
    memcpy(b->text + b->len, data, take);
    b->len += take;
    b->text[b->len] = '\0';
    return size * n;
}

/* GET @p path of the service: the status (0: nothing listens yet). */
static long get(const fixture_t *f, const char *path, body_t *body) {
    char url[128];
    long status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    *body = (body_t){.len = 0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void nap(void) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Poll /healthz until it answers @p status with @p text. */
static void wait_health(const fixture_t *f, long status, const char *text) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    body_t body;
    long got;
    while ((got = get(f, "/healthz", &body)) != status || strcmp(body.text, text)) {
        if (evk__now_ms() > deadline)
            fail_msg("/healthz: %ld \"%s\", want %ld \"%s\"", got, body.text, status, text);
        nap();
    }
}

/* Value of the sample @p series in /metrics, or -1 if absent. */
static double sample(const fixture_t *f, const char *series) {
    body_t body;
    size_t n = strlen(series);
    assert_int_equal(get(f, "/metrics", &body), 200);
    for (const char *line = body.text; line && *line; line = strchr(line, '\n'), line += !!line)
        if (!strncmp(line, series, n) && line[n] == ' ') return strtod(line + n + 1, NULL);
    return -1;
}

/* ---- the service ---- */

static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    (void)ctx, (void)in, (void)opaque;
    return EVK_OK;
}

static evk_service_t *new_service(fixture_t *f) {
    char errstr[512], port[16];
    evk_service_t *svc;
    snprintf(port, sizeof port, "%d", f->port);
    svc_env_set(f->env, NAME ".metrics_port", port);
    /* Waits back off from 20 to 100 ms: several within a test. */
    svc_env_set(f->env, NAME ".retry_backoff_ms", "20");
    svc_env_set(f->env, NAME ".retry_backoff_max_ms", "100");
    if (evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof errstr) ||
        evk_service_on(svc, "OrderPlaced", on_placed, NULL, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    return svc;
}

/* A frame carrying schema id @p id, which the catalog does not know. */
static void send_frame(fixture_t *f, int id) {
    unsigned char frame[] = {0,
                             (unsigned char)(id >> 24),
                             (unsigned char)(id >> 16),
                             (unsigned char)(id >> 8),
                             (unsigned char)id,
                             0};
    char key[16];
    snprintf(key, sizeof key, "k-%d", id);
    svc_send_raw(f->env, "orders", key, frame, sizeof frame, 0);
    svc_flush(f->env);
}

/* In @p dlq, the dead letter of the frame with schema id @p id: its error
 * name and reason, malloc()ed. */
static void dead_letter_of(const svc_msgs_t *dlq, int id, char **error, char **reason) {
    char key[16];
    snprintf(key, sizeof key, "k-%d", id);
    *error = *reason = NULL;
    for (size_t i = 0; i < dlq->n && !*error; i++) {
        char *k = svc_key(dlq->m[i]);
        if (!strcmp(k, key)) {
            *error = rt_header(dlq->m[i], "evk_dlq_error");
            *reason = rt_header(dlq->m[i], "evk_dlq_reason");
        }
        free(k);
    }
    if (!*error) fail_msg("no dead letter for schema id %d", id);
}

/* Dead letters committed so far. */
static size_t dead_letters(fixture_t *f) {
    svc_msgs_t dlq = svc_read_all(f->env, "orders.dlq");
    size_t n = dlq.n;
    svc_msgs_free(&dlq);
    return n;
}

static int setup(void **state) {
    char errstr[512];
    const char *const answers[] = {"--answer",      "9001=notjson",     "--answer",
                                   "9002=noschema", "--answer",         "9003=badschema",
                                   "--answer",      "9004=unavailable", NULL};
    fixture_t *f = calloc(1, sizeof *f);
    evk_registry_t *reg = NULL;
    f->env = svc_env_new(SVC_PARTITIONS);
    f->port = rt_free_port();
    server_start_with(&f->registry, "http", answers);
    svc_env_set(f->env, "schema_registry.url", f->registry.url);
    if (evk_registry_new(f->env->cfg, &reg, errstr, sizeof errstr) ||
        evk_catalog_use_registry(f->env->cat, reg, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    f->svc = new_service(f);
    svc_start(&f->runner, f->svc);
    wait_health(f, 200, "ok\n");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    assert_int_equal(svc_stop(&f->runner), EVK_OK);
    evk_service_destroy(f->svc);
    svc_env_destroy(f->env);
    server_stop(&f->registry);
    free(f);
    return 0;
}

/* ---- tests ---- */

/* A broken answer is tried three times, then the input is dead-lettered
 * with the reason; the service stays healthy and goes on. */
static void test_broken_answer_dead_letters(void **state) {
    fixture_t *f = *state;
    static const struct {
        int id;
        const char *why;
    } cases[] = {
        {9001, "answer is not JSON (asked 3 times)"},
        {9002, "answer has no \"schema\" (asked 3 times)"},
        {9003, "the schema does not parse: "},
    };
    for (size_t i = 0; i < 3; i++)
        send_frame(f, cases[i].id);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 3, SVC_WAIT_MS), 3);
    svc_msgs_t dlq = svc_read_all(f->env, "orders.dlq");
    for (size_t i = 0; i < 3; i++) {
        char *error, *reason, path[64];
        dead_letter_of(&dlq, cases[i].id, &error, &reason);
        assert_string_equal(error, "EVK_ERR_DECODE");
        if (!strstr(reason, cases[i].why)) fail_msg("%d: reason \"%s\"", cases[i].id, reason);
        snprintf(path, sizeof path, "GET /schemas/ids/%d", cases[i].id);
        assert_int_equal(count(&f->registry, path), 3);
        free(error);
        free(reason);
    }
    svc_msgs_free(&dlq);
    wait_health(f, 200, "ok\n");
    assert_true(sample(f, "evk_registry_waits_total{service=\"" NAME "\"}") == 0);
}

/* An unreachable registry (HTTP 503) is waited for: /healthz says 503 and
 * the waits are counted until the registry answers (here: the id is not
 * known), and then the service is healthy again. */
static void test_unreachable_registry_waits(void **state) {
    fixture_t *f = *state;
    size_t before = dead_letters(f);
    send_frame(f, 9004);
    wait_health(f, 503, "waiting for the schema registry\n");
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    while (sample(f, "evk_registry_waits_total{service=\"" NAME "\"}") < 2) {
        if (evk__now_ms() > deadline) fail_msg("evk_registry_waits_total stays below 2");
        nap();
    }
    assert_int_equal(dead_letters(f), before);

    server_answer(&f->registry, 9004, "missing");
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", before + 1, SVC_WAIT_MS), before + 1);
    char *error, *reason;
    svc_msgs_t dlq = svc_read_all(f->env, "orders.dlq");
    dead_letter_of(&dlq, 9004, &error, &reason);
    assert_string_equal(error, "EVK_ERR_UNKNOWN_SCHEMA_ID");
    free(error);
    free(reason);
    svc_msgs_free(&dlq);
    wait_health(f, 200, "ok\n");
}

int main(void) {
    unsetenv("EVK_SCHEMA_REGISTRY_URL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_answer_dead_letters),
        cmocka_unit_test(test_unreachable_registry_waits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
