/* A service's /healthz and /metrics over the dev broker, its per-event log
 * lines, secrets kept out of logs and metrics, and the failures a service
 * survives but must show: dead letters that cannot be written, refused
 * offset commits, events no handler takes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"
#include "svc_support.h"

#define NAME "met"
#define SECRET "S3cr3t-hunter2"
#define PLACED "shop.orders.OrderPlaced"
#define RESERVED "shop.inventory.StockReserved"

typedef struct {
    svc_env_t *env;
    atomic_int release; /* lets the ready callback return */
    int port;
} fixture_t;

/* ---- HTTP ---- */

static int loopback_socket(struct sockaddr_in *addr, int port) {
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    return fd;
}

/* A socket listening on an ephemeral loopback port, and that port. */
static int listen_ephemeral(int *port) {
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int fd = loopback_socket(&addr, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* A port nothing listens on right now, for the service to bind. */
static int free_port(void) {
    int port;
    close(listen_ephemeral(&port));
    return port;
}

static char *read_all(int fd) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 1024) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    return buf;
}

/* GET @p path over HTTP/1.0: the status, or -1 if nothing listens; the
 * body in *body (malloc()ed) when @p body is not NULL. */
static int http_get(int port, const char *path, char **body) {
    struct sockaddr_in addr;
    int fd = loopback_socket(&addr, port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char *resp = read_all(fd);
    close(fd);
    int status = -1;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    const char *start = strstr(resp, "\r\n\r\n");
    assert_non_null(start);
    if (body) *body = strdup(start + 4);
    free(resp);
    return status;
}

static void nap(void) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Status of @p path once it differs from @p from (-1: nothing listens),
 * with its body in *body (NULL if nothing listens). */
static int http_wait_change(int port, const char *path, int from, char **body) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    for (;;) {
        *body = NULL;
        int status = http_get(port, path, body);
        if (status != from || evk__now_ms() > deadline) return status;
        free(*body);
        nap();
    }
}

/* ---- Prometheus text ---- */

/* Value of the sample @p series ("name{labels}"), or -1 if absent. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line)
        if (!strncmp(line, series, n) && line[n] == ' ') return strtod(line + n + 1, NULL);
    return -1;
}

/* Scrape /metrics until @p series is @p want (or more, with @p at_least);
 * its last value. */
static double wait_sample(int port, const char *series, double want, int at_least) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    double v;
    for (;;) {
        char *body = NULL;
        assert_int_equal(http_get(port, "/metrics", &body), 200);
        v = sample(body, series);
        free(body);
        if (v == want || (at_least && v > want) || evk__now_ms() > deadline) break;
        nap();
    }
    if (v != want && !(at_least && v > want)) print_error("%s: %g, want %g\n", series, v, want);
    return v;
}

/* ---- the service ---- */

static evk_err_t on_ready(evk_ctx_t *ctx, void *opaque) {
    fixture_t *f = opaque;
    (void)ctx;
    while (!atomic_load(&f->release))
        nap();
    return EVK_OK;
}

/* OrderPlaced -> StockReserved; order "bad" fails for good. */
static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    (void)opaque;
    const char *order;
    assert_int_equal(evk_event_get_string(in, "order_id", &order), EVK_OK);
    if (!strcmp(order, "bad")) return EVK_ERR_VALIDATION;
    evk_event_t *out = evk_ctx_new_event(ctx, "StockReserved");
    assert_non_null(out);
    assert_int_equal(evk_event_set_string(out, "order_id", order), EVK_OK);
    assert_int_equal(evk_event_set_string(out, "customer_id", "c-1"), EVK_OK);
    assert_int_equal(evk_event_set_string(out, "currency", "EUR"), EVK_OK);
    return evk_ctx_emit(ctx, out);
}

static evk_service_t *new_service(fixture_t *f) {
    char errstr[512], port[16];
    evk_service_t *svc;
    snprintf(port, sizeof(port), "%d", f->port);
    svc_env_set(f->env, NAME ".metrics_port", port);
    if (evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)) ||
        evk_service_on(svc, "OrderPlaced", on_placed, f, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    evk_service_on_ready(svc, on_ready, f);
    return svc;
}

static void send_orders(fixture_t *f, int n) {
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "o-%d", i);
        free(svc_send(f->env, svc_order(f->env, key, "c-1", "A:1", NULL), i % SVC_PARTITIONS));
    }
    free(svc_send(f->env, svc_order(f->env, "bad", "c-1", "A:1", NULL), 0));
    svc_send_raw(f->env, "orders", "poison", "not avro", 8, 1);
    svc_flush(f->env);
}

static int setup(void **state) {
    char errstr[512];
    fixture_t *f = calloc(1, sizeof(*f));
    f->env = svc_env_new(SVC_PARTITIONS);
    f->port = free_port();
    /* Statistics (lag, librdkafka figures) soon enough for a test. */
    if (evk_config_set_kafka(f->env->cfg, "statistics.interval.ms", "100", errstr,
                             sizeof(errstr)))
        fail_msg("%s", errstr);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    svc_env_destroy(f->env);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void assert_health(fixture_t *f) {
    char *body;
    /* Not ready while the ready callback holds the start up. */
    assert_int_equal(http_wait_change(f->port, "/healthz", -1, &body), 503);
    assert_string_equal(body, "starting\n");
    free(body);
    atomic_store(&f->release, 1);
    assert_int_equal(http_wait_change(f->port, "/healthz", 503, &body), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    assert_int_equal(http_get(f->port, "/nope", NULL), 404);
}

static void assert_counters(fixture_t *f) {
    const char *want[][2] = {
        {"evk_events_consumed_total{service=\"" NAME "\",type=\"" PLACED "\"}", "6"},
        {"evk_events_consumed_total{service=\"" NAME "\",type=\"unknown\"}", "1"},
        {"evk_events_produced_total{service=\"" NAME "\",type=\"" RESERVED "\"}", "5"},
        {"evk_events_failed_total{service=\"" NAME "\",type=\"" PLACED "\"}", "1"},
        {"evk_events_failed_total{service=\"" NAME "\",type=\"unknown\"}", "1"},
        {"evk_dead_letters_total{service=\"" NAME "\"}", "2"},
        {"evk_handler_duration_seconds_count{service=\"" NAME "\"}", "6"},
        {"evk_handler_duration_seconds_bucket{service=\"" NAME "\",le=\"+Inf\"}", "6"},
        {"evk_retries_total{service=\"" NAME "\"}", "0"},
        {"evk_service_ready{service=\"" NAME "\"}", "1"},
        /* Every input consumed: no partition behind. */
        {"evk_consumer_lag{service=\"" NAME "\",topic=\"orders\",partition=\"0\"}", "0"},
        {"evk_consumer_lag{service=\"" NAME "\",topic=\"orders\",partition=\"1\"}", "0"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_true(wait_sample(f->port, want[i][0], atof(want[i][1]), 0) == atof(want[i][1]));
}

/* librdkafka's figures lag by up to a statistics interval. */
static void assert_kafka_figures(fixture_t *f) {
    char *body;
    assert_true(wait_sample(f->port, "evk_transactions_committed_total{service=\"" NAME "\"}",
                            1, 1) >= 1);
    assert_true(wait_sample(f->port,
                            "evk_kafka_messages_sent_total{service=\"" NAME
                            "\",client=\"producer\"}",
                            7, 1) >= 7);
    assert_true(wait_sample(f->port,
                            "evk_kafka_messages_received_total{service=\"" NAME
                            "\",client=\"consumer\"}",
                            7, 1) >= 7);
    assert_int_equal(http_get(f->port, "/metrics", &body), 200);
    assert_non_null(strstr(body, "\n# TYPE evk_handler_duration_seconds histogram\n"));
    assert_non_null(strstr(body, "\nevk_kafka_broker_rtt_avg_seconds{service=\"" NAME
                                 "\",client=\"producer\",broker=\""));
    assert_null(strstr(body, "broker=\"TxnCoordinator\"")); /* stands for a listed one */
    free(body);
}

/* (1) 503 until ready, then 200; counters by type, dead letters, latency,
 * lag and librdkafka figures move with the events; the endpoint goes away
 * with the run. */
static void test_endpoint(void **state) {
    fixture_t *f = *state;
    evk_service_t *svc = new_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    assert_health(f);
    send_orders(f, 5);
    assert_int_equal(svc_wait_for(f->env, "inventory", 5, SVC_WAIT_MS), 5);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 2, SVC_WAIT_MS), 2);
    assert_counters(f);
    assert_kafka_figures(f);
    assert_int_equal(svc_stop(&r), EVK_OK);
    assert_int_equal(http_get(f->port, "/healthz", NULL), -1);
    evk_service_destroy(svc);
}

/* stderr into a file from capture_begin() until capture_end(), which
 * returns what was written (malloc()ed). */
typedef struct {
    char path[32];
    int fd, saved;
} capture_t;

static void capture_begin(capture_t *c) {
    snprintf(c->path, sizeof(c->path), "/tmp/evk-met-XXXXXX");
    c->fd = mkstemp(c->path);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->fd >= 0);
    dup2(c->fd, STDERR_FILENO);
}

static char *capture_end(capture_t *c) {
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0); /* fd shares stderr's offset */
    char *out = read_all(c->fd);
    close(c->fd);
    unlink(c->path);
    return out;
}

/* Runs the service of test_endpoint with stderr captured; returns it with
 * the bodies of /metrics and /healthz appended. */
static char *run_captured(fixture_t *f) {
    char *metrics, *health;
    capture_t cap;
    capture_begin(&cap);
    atomic_store(&f->release, 1);
    evk_service_t *svc = new_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    send_orders(f, 2);
    assert_int_equal(svc_wait_for(f->env, "inventory", 2, SVC_WAIT_MS), 2);
    assert_int_equal(http_get(f->port, "/healthz", &health), 200);
    assert_int_equal(http_get(f->port, "/metrics", &metrics), 200);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
    evk_log(EVK_LOG_INFO, "test", "webhook failed", "url",
            "https://evkit:" SECRET "@hooks.example.com/x", "basic.auth.user.info",
            "evkit:" SECRET, NULL);
    char *out = capture_end(&cap);
    size_t n = strlen(out) + strlen(metrics) + strlen(health) + 1;
    out = realloc(out, n);
    strcat(strcat(out, metrics), health);
    free(metrics);
    free(health);
    return out;
}

/* (2) With sasl.password set and every log at debug (evkit's and
 * librdkafka's), the secret shows nowhere; each input has its line. */
static void test_no_secrets(void **state) {
    fixture_t *f = *state;
    char errstr[512];
    if (evk_config_set_kafka(f->env->cfg, "sasl.username", "evkit", errstr, sizeof(errstr)) ||
        evk_config_set_kafka(f->env->cfg, "sasl.password", SECRET, errstr, sizeof(errstr)) ||
        evk_config_set_kafka(f->env->cfg, "debug", "generic,broker,conf,security,eos", errstr,
                             sizeof(errstr)))
        fail_msg("%s", errstr);
    svc_env_set(f->env, "log.level", "debug");
    unsetenv("EVK_LOG_LEVEL");
    unsetenv("EVK_LOG_FORMAT");
    assert_int_equal(evk_log_setup(f->env->cfg, errstr, sizeof(errstr)), EVK_OK);
    char *out = run_captured(f);
    evk_config_set(f->env->cfg, "log.level", "info");
    assert_int_equal(evk_log_setup(f->env->cfg, errstr, sizeof(errstr)), EVK_OK);
    const char *hit = strstr(out, SECRET);
    if (hit) fail_msg("secret in output: ...%.200s", hit - out > 100 ? hit - 100 : out);
    /* librdkafka did dump its config, with the secret redacted. */
    assert_non_null(strstr(out, "sasl.password = [redacted]"));
    assert_non_null(strstr(out, " msg=event type=" PLACED " key=o-1 topic=orders partition=1 "
                                "offset="));
    assert_non_null(strstr(out, " outcome=ok attempts=1 handler_ms="));
    assert_non_null(
        strstr(out, "level=warn component=" NAME " msg=event type=" PLACED " key=bad "));
    assert_non_null(strstr(out, " outcome=dead_letter attempts=1 handler_ms="));
    assert_non_null(strstr(out, "url=https://<redacted>@hooks.example.com/x "));
    free(out);
}

/* (3) Settings: the environment wins over the file's per-service port; a
 * bad port or connection limit is a config error; a port in use fails the
 * run. */
static void test_settings(void **state) {
    fixture_t *f = *state;
    char errstr[512];
    evk_service_t *svc;
    evk_config_t *cfg = evk_config_new();
    assert_int_equal(evk_config_set(cfg, "a.metrics_port", "9101"), EVK_OK);
    setenv("EVK_METRICS_PORT", "9200", 1);
    setenv("EVK_METRICS_BIND", "0.0.0.0", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    unsetenv("EVK_METRICS_PORT");
    unsetenv("EVK_METRICS_BIND");
    assert_string_equal(evk_config_get_string(cfg, "a.metrics_port", NULL), "9200");
    assert_string_equal(evk_config_get_string(cfg, "metrics.port", NULL), "9200");
    assert_string_equal(evk_config_get_string(cfg, "metrics.bind", NULL), "0.0.0.0");
    evk_config_destroy(cfg);

    svc_env_set(f->env, NAME ".metrics_port", "70000");
    assert_int_equal(
        evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr,
                        NAME ".metrics_port: expected a port (1-65535, 0 for none), got 70000");

    int busy = listen_ephemeral(&f->port);
    svc = new_service(f);
    assert_int_equal(evk_service_run(svc, errstr, sizeof(errstr)), EVK_ERR_IO);
    assert_non_null(strstr(errstr, "cannot listen on 127.0.0.1 port"));
    assert_non_null(strstr(errstr, "in use"));
    evk_service_destroy(svc);
    close(busy);

    /* Connection limits: one address gets at most the total, the total at
     * most half the process's descriptors. */
    svc_env_set(f->env, "metrics.max_connections_per_ip", "65");
    assert_int_equal(
        evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, "metrics.max_connections_per_ip: expected 1 to 64 "
                                "(max_connections), got 65");
    svc_env_set(f->env, NAME ".metrics_max_connections", "100000000");
    assert_int_equal(
        evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_non_null(strstr(errstr, NAME ".metrics_max_connections: expected 1 to "));
    assert_non_null(strstr(errstr, " (half the descriptor limit), got 100000000"));
}

/* ---- failures that do not stop a service ---- */

/* The service started with stderr captured, ready and healthy. */
static evk_service_t *start_captured(fixture_t *f, svc_runner_t *r, capture_t *cap) {
    atomic_store(&f->release, 1);
    capture_begin(cap);
    evk_service_t *svc = new_service(f);
    svc_start(r, svc);
    char *body;
    int status = http_wait_change(f->port, "/healthz", -1, &body);
    free(body);
    if (status == 503) { /* starting */
        status = http_wait_change(f->port, "/healthz", 503, &body);
        free(body);
    }
    assert_int_equal(status, 200);
    return svc;
}

/* Stop, and what the service logged. */
static char *stop_captured(svc_runner_t *r, capture_t *cap) {
    assert_int_equal(svc_stop(r), EVK_OK);
    evk_service_destroy(r->svc);
    return capture_end(cap);
}

static void assert_logged(const char *log, const char *line) {
    if (!strstr(log, line)) fail_msg("not logged: %s", line);
}

/* Partition leaders: inputs on broker 1, dead letters on broker 2, outputs
 * on broker 3, so that broker 2's injected Produce errors hit dead letters
 * only. Called before any client looked up the topics' leaders. */
static void dead_letters_apart(svc_env_t *env) {
    const char *topics[] = {"orders", "orders.dlq", "inventory", "inventory.levels"};
    rd_kafka_mock_cluster_t *mc = evk_devbroker_mock(env->db);
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < SVC_PARTITIONS; p++)
            assert_int_equal(rd_kafka_mock_partition_set_leader(mc, topics[t], p,
                                                                t == 0   ? 1
                                                                : t == 1 ? 2
                                                                         : 3),
                             0);
}

/* (4) A dead letter the cluster refuses (6 times) fails its batch, which
 * is replayed with backoff; after retry_max such batches the service alarms
 * (error log, /healthz 503, evk_dead_letters_blocked 1) and keeps trying;
 * once the dead letter is written the alarm is over. */
static void test_dead_letter_alarm(void **state) {
    fixture_t *f = *state;
    enum { REFUSALS = 6 };
    svc_env_set(f->env, NAME ".retry_max", "3");
    svc_env_set(f->env, NAME ".retry_backoff_ms", "50");
    svc_env_set(f->env, NAME ".retry_backoff_max_ms", "200");
    dead_letters_apart(f->env);
    capture_t cap;
    svc_runner_t r;
    start_captured(f, &r, &cap);
    rd_kafka_mock_cluster_t *mc = evk_devbroker_mock(f->env->db);
    for (int i = 0; i < REFUSALS; i++)
        assert_int_equal(
            rd_kafka_mock_broker_push_request_error_rtts(
                mc, 2, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0),
            0);
    svc_send_raw(f->env, "orders", "poison", "not avro", 8, 0);
    svc_flush(f->env);

    char *body;
    assert_int_equal(http_wait_change(f->port, "/healthz", 200, &body), 503);
    assert_non_null(strstr(body, "dead letters failing: orders.dlq: "));
    free(body);
    assert_true(wait_sample(f->port, "evk_dead_letters_blocked{service=\"" NAME "\"}", 1, 0) ==
                1);
    assert_true(wait_sample(f->port, "evk_dead_letter_failures_total{service=\"" NAME "\"}", 3,
                            1) >= 3);
    assert_int_equal(http_wait_change(f->port, "/healthz", 503, &body), 200);
    free(body);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 1, SVC_WAIT_MS), 1);
    assert_true(wait_sample(f->port, "evk_dead_letters_blocked{service=\"" NAME "\"}", 0, 0) ==
                0);
    /* A refusal fails the next tries at once too, until librdkafka drops
     * the topic's error: at least one failed batch per refusal. */
    assert_true(wait_sample(f->port, "evk_dead_letter_failures_total{service=\"" NAME "\"}",
                            REFUSALS, 1) >= REFUSALS);
    assert_true(wait_sample(f->port, "evk_dead_letters_total{service=\"" NAME "\"}", 1, 0) ==
                1);
    char *log = stop_captured(&r, &cap);
    assert_logged(log, "level=warn component=" NAME " msg=\"dead letter not written, batch "
                       "replayed\" error=\"orders.dlq: Broker: Topic authorization failed\" "
                       "attempts=1");
    assert_logged(log, "level=error component=" NAME " msg=\"dead letters keep failing, their "
                       "inputs wait\" error=\"orders.dlq: Broker: Topic authorization failed\" "
                       "attempts=3");
    assert_logged(log, "level=info component=" NAME " msg=\"dead letters written again\"");
    free(log);
}

/* (5) A consumer offset commit mirroring a transaction's (the dev broker's
 * way) that is refused, as during a rebalance, is logged at warn and
 * counted; the service goes on. */
static void test_offset_commit_refused(void **state) {
    fixture_t *f = *state;
    capture_t cap;
    svc_runner_t r;
    start_captured(f, &r, &cap);
    rd_kafka_mock_push_request_errors(evk_devbroker_mock(f->env->db), 8 /* OffsetCommit */, 1,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    free(svc_send(f->env, svc_order(f->env, "o-1", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_true(wait_sample(f->port, "evk_offset_commit_failures_total{service=\"" NAME "\"}",
                            1, 1) >= 1);
    assert_int_equal(svc_wait_for(f->env, "inventory", 1, SVC_WAIT_MS), 1);
    char *log = stop_captured(&r, &cap);
    assert_logged(log,
                  "level=warn component=" NAME " msg=\"offset commit failed, a restart may "
                  "replay the batch\" error=\"Broker: Group rebalance in progress\"");
    free(log);
}

static evk_event_t *new_event(svc_env_t *env, const char *type, const char *order) {
    evk_event_t *ev = evk_event_new(evk_catalog_find(env->cat, type));
    assert_non_null(ev);
    assert_int_equal(evk_event_set_key(ev, order), EVK_OK);
    assert_int_equal(evk_event_set_string(ev, "order_id", order), EVK_OK);
    assert_int_equal(evk_event_set_string(ev, "customer_id", "c-1"), EVK_OK);
    assert_int_equal(evk_event_set_string(ev, "currency", "EUR"), EVK_OK);
    if (!strcmp(type, "OrderConfirmed"))
        assert_int_equal(evk_event_set_long(ev, "total_cents", 100), EVK_OK);
    return ev;
}

/* (6) Events no handler here takes: OrderConfirmed on its own topic (types
 * share topics: said once at info), StockReserved on `orders` (not its
 * topic: said once at warn); both counted by type. */
static void test_skipped(void **state) {
    fixture_t *f = *state;
    capture_t cap;
    svc_runner_t r;
    start_captured(f, &r, &cap);
    free(svc_send_to(f->env, "orders", new_event(f->env, "OrderConfirmed", "o-1"), -1));
    free(svc_send_to(f->env, "orders", new_event(f->env, "OrderConfirmed", "o-2"), -1));
    free(svc_send_to(f->env, "orders", new_event(f->env, "StockReserved", "o-3"), -1));
    free(svc_send(f->env, svc_order(f->env, "o-4", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    const char *confirmed =
        "evk_events_skipped_total{service=\"" NAME "\",type=\"shop.orders.OrderConfirmed\"}";
    const char *misrouted =
        "evk_events_skipped_total{service=\"" NAME "\",type=\"" RESERVED "\"}";
    assert_true(wait_sample(f->port, confirmed, 2, 0) == 2);
    assert_true(wait_sample(f->port, misrouted, 1, 0) == 1);
    assert_int_equal(svc_wait_for(f->env, "inventory", 1, SVC_WAIT_MS), 1);
    char *log = stop_captured(&r, &cap);
    const char *info = "level=info component=" NAME " msg=\"skipping events no handler here "
                       "takes\" type=shop.orders.OrderConfirmed topic=orders\n";
    assert_logged(log, info);
    assert_null(strstr(strstr(log, info) + 1, info)); /* once */
    assert_logged(log, "level=warn component=" NAME " msg=\"skipping events of a type that "
                       "belongs on another topic\" type=" RESERVED " topic=orders "
                       "belongs_on=inventory\n");
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_alarm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_commit_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped, setup, teardown),
    };
    /* SVC_TEST=name runs the tests matching that pattern only. */
    if (getenv("SVC_TEST")) cmocka_set_test_filter(getenv("SVC_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
