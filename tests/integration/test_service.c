/* evk_service over the dev broker: consume-transform-produce in
 * transactions, restarts, dead letters, retries, stores, injected faults. */
#define _XOPEN_SOURCE 700 /* nftw() */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <ftw.h>
#include <lmdb.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"
#include "svc_support.h"

/* Kafka protocol ApiKeys (librdkafka keeps its constants private). */
#define API_PRODUCE 0
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_END_TXN 26
#define API_TXN_OFFSET_COMMIT 28

#define NAME "inv"

/* What the handlers of one test share with it. */
typedef struct {
    svc_env_t *env;
    atomic_int calls;
    int retry_first;            /* RETRY this many times per key before OK */
    const char *always_retry;   /* key that always asks for a retry */
    const char *fail_after_put; /* customer whose order fails after its puts */
    evk_store_t *levels;
    evk_service_t *svc_kept; /* a stopped service whose stores a test reads */
    atomic_int ready;        /* the ready callback ran */
    struct {
        char key[32];
        int calls;
    } per_key[64];
    int nkeys;
} fixture_t;

static int key_calls(fixture_t *f, const char *key) {
    for (int i = 0; i < f->nkeys; i++)
        if (!strcmp(f->per_key[i].key, key)) return ++f->per_key[i].calls;
    snprintf(f->per_key[f->nkeys].key, sizeof(f->per_key[0].key), "%s", key);
    f->per_key[f->nkeys].calls = 1;
    return f->nkeys++, 1;
}

static evk_err_t emit_reserved(evk_ctx_t *ctx, const evk_event_t *in) {
    const char *order, *customer;
    evk_event_t *out = evk_ctx_new_event(ctx, "StockReserved");
    assert_non_null(out);
    assert_int_equal(evk_event_get_string(in, "order_id", &order), EVK_OK);
    assert_int_equal(evk_event_get_string(in, "customer_id", &customer), EVK_OK);
    assert_int_equal(evk_event_set_string(out, "order_id", order), EVK_OK);
    assert_int_equal(evk_event_set_string(out, "customer_id", customer), EVK_OK);
    assert_int_equal(evk_event_set_string(out, "currency", "EUR"), EVK_OK);
    return evk_ctx_emit(ctx, out);
}

static evk_err_t on_placed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    fixture_t *f = opaque;
    atomic_fetch_add(&f->calls, 1);
    int n = key_calls(f, evk_event_key(in));
    if (f->always_retry && !strcmp(evk_event_key(in), f->always_retry)) return EVK_ERR_RETRY;
    if (n <= f->retry_first) return EVK_ERR_RETRY;
    return emit_reserved(ctx, in);
}

static evk_service_t *new_service(fixture_t *f, evk_handler_t *handler) {
    char errstr[512];
    evk_service_t *svc;
    if (evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)) ||
        evk_service_on(svc, "OrderPlaced", handler, f, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    return svc;
}

static void send_orders(fixture_t *f, const char *prefix, int n, char **ids) {
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "%s-%d", prefix, i);
        char *id =
            svc_send(f->env, svc_order(f->env, key, "c-1", "A:1", NULL), i % SVC_PARTITIONS);
        if (ids)
            ids[i] = id;
        else
            free(id);
    }
    svc_flush(f->env);
}

/* Outputs keyed by order id: each key exactly once, @p n in all. */
static void assert_once_each(svc_env_t *env, const char *topic, size_t n) {
    svc_msgs_t out = svc_read_all(env, topic);
    assert_int_equal(out.n, n);
    for (size_t i = 0; i < out.n; i++)
        for (size_t j = i + 1; j < out.n; j++) {
            char *a = svc_key(out.m[i]), *b = svc_key(out.m[j]);
            if (!strcmp(a, b)) fail_msg("%s: key %s twice", topic, a);
            free(a);
            free(b);
        }
    svc_msgs_free(&out);
}

static int setup_with(void **state, int out_partitions) {
    fixture_t *f = calloc(1, sizeof(*f));
    f->env = svc_env_new(out_partitions);
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_with(state, SVC_PARTITIONS);
}

/* One output partition: see test_fault_produce. */
static int setup_one_output(void **state) {
    return setup_with(state, 1);
}

static int teardown(void **state) {
    fixture_t *f = *state;
    svc_env_destroy(f->env);
    free(f);
    return 0;
}

/* (1) OrderPlaced -> StockReserved: outputs committed, headers chained,
 * input offsets committed to the end. */
static void test_transform(void **state) {
    fixture_t *f = *state;
    evk_service_t *svc = new_service(f, on_placed);
    svc_runner_t r;
    svc_start(&r, svc);
    char *ids[20];
    send_orders(f, "o", 20, ids);
    assert_int_equal(svc_wait_for(f->env, "inventory", 20, SVC_WAIT_MS), 20);
    assert_int_equal(svc_stop(&r), EVK_OK);

    svc_msgs_t out = svc_read_all(f->env, "inventory");
    assert_int_equal(out.n, 20);
    for (size_t i = 0; i < out.n; i++) {
        char errstr[512];
        evk_event_t *ev;
        if (evk_event_from_message(f->env->cat, out.m[i], &ev, errstr, sizeof(errstr)))
            fail_msg("%s", errstr);
        int k = atoi(evk_event_key(ev) + 2);
        assert_string_equal(evk_event_type(ev), "shop.inventory.StockReserved");
        assert_string_equal(evk_event_causation_id(ev), ids[k]);
        assert_string_equal(evk_event_correlation_id(ev), ids[k]);
        assert_string_equal(evk_event_source(ev), NAME);
        evk_event_destroy(ev);
    }
    svc_msgs_free(&out);
    for (int i = 0; i < 20; i++)
        free(ids[i]);
    assert_true(svc_committed_at_end(f->env, NAME, "orders"));

    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    assert_int_equal(st.consumed, 20);
    assert_int_equal(st.produced, 20);
    assert_int_equal(st.dead_letters, 0);
    assert_int_equal(st.aborts, 0);
    assert_true(st.commits >= 1);
    evk_service_destroy(svc);
}

/* (2) A restarted service resumes after what it committed. New input goes to
 * every partition, so a replay of old input would come before it. */
static void test_restart(void **state) {
    fixture_t *f = *state;
    evk_service_t *svc = new_service(f, on_placed);
    svc_runner_t r;
    svc_start(&r, svc);
    send_orders(f, "a", 8, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", 8, SVC_WAIT_MS), 8);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
    assert_int_equal(atomic_load(&f->calls), 8);

    atomic_store(&f->calls, 0);
    svc = new_service(f, on_placed);
    svc_start(&r, svc);
    send_orders(f, "b", SVC_PARTITIONS, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", 8 + SVC_PARTITIONS, SVC_WAIT_MS),
                     8 + SVC_PARTITIONS);
    assert_int_equal(svc_stop(&r), EVK_OK);
    assert_int_equal(atomic_load(&f->calls), SVC_PARTITIONS);
    evk_service_destroy(svc);
    assert_once_each(f->env, "inventory", 8 + SVC_PARTITIONS);
    assert_true(svc_committed_at_end(f->env, NAME, "orders"));
}

typedef struct {
    const char *key;
    const char *value;
    size_t len;
    const char *error;
} poison_t;

static void assert_dead_letter(const rd_kafka_message_t *d, const poison_t *p,
                               const svc_msgs_t *in) {
    char *h;
    assert_non_null(h = rt_header(d, "evk_dlq_error"));
    assert_string_equal(h, p->error);
    free(h);
    assert_non_null(h = rt_header(d, "evk_dlq_reason"));
    assert_true(strlen(h) > 0);
    free(h);
    assert_non_null(h = rt_header(d, "x-test")); /* original headers kept */
    assert_string_equal(h, p->key);
    free(h);
    const char *want[][2] = {
        {"evk_dlq_topic", "orders"}, {"evk_dlq_service", NAME}, {"evk_dlq_attempts", "0"}};
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(h = rt_header(d, want[i][0]));
        assert_string_equal(h, want[i][1]);
        free(h);
    }
    assert_int_equal(d->len, p->len);
    assert_memory_equal(d->payload, p->value, p->len);
    for (size_t i = 0; i < in->n; i++) {
        char *k = svc_key(in->m[i]);
        int same = !strcmp(k, p->key);
        free(k);
        if (!same) continue;
        char where[32];
        snprintf(where, sizeof(where), "%d", (int)in->m[i]->partition);
        assert_string_equal(h = rt_header(d, "evk_dlq_partition"), where);
        free(h);
        snprintf(where, sizeof(where), "%lld", (long long)in->m[i]->offset);
        assert_string_equal(h = rt_header(d, "evk_dlq_offset"), where);
        free(h);
        return;
    }
    fail_msg("input %s not found", p->key);
}

/* (3) Undecodable input goes to orders.dlq with its reasons; the service
 * keeps going. */
static void test_poison(void **state) {
    fixture_t *f = *state;
    static const poison_t poison[] = {
        {"p-raw", "hello world", 11, "EVK_ERR_BAD_MAGIC"},
        {"p-magic", "\x01\x00\x00\x00\x01\x02", 6, "EVK_ERR_BAD_MAGIC"},
        {"p-id", "\x00\x00\x00\x00\x63\x02", 6, "EVK_ERR_UNKNOWN_SCHEMA_ID"},
        {"p-short", "\x00\x00", 2, "EVK_ERR_TRUNCATED"},
        {"p-body", "\x00\x00\x00\x00\x01\x08o", 7, "EVK_ERR_TRUNCATED"},
    };
    const size_t n = sizeof(poison) / sizeof(poison[0]);
    evk_service_t *svc = new_service(f, on_placed);
    svc_runner_t r;
    svc_start(&r, svc);
    for (size_t i = 0; i < n; i++)
        svc_send_raw(f->env, "orders", poison[i].key, poison[i].value, poison[i].len, 0);
    free(svc_send(f->env, svc_order(f->env, "good", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", n, SVC_WAIT_MS), n);
    assert_int_equal(svc_wait_for(f->env, "inventory", 1, SVC_WAIT_MS), 1);
    assert_int_equal(svc_stop(&r), EVK_OK);

    svc_msgs_t in = svc_read_all(f->env, "orders");
    svc_msgs_t dlq = svc_read_all(f->env, "orders.dlq");
    assert_int_equal(dlq.n, n);
    for (size_t i = 0; i < dlq.n; i++) {
        char *k = svc_key(dlq.m[i]);
        size_t j = 0;
        while (j < n && strcmp(poison[j].key, k))
            j++;
        if (j == n) fail_msg("unexpected dead letter %s", k);
        assert_dead_letter(dlq.m[i], &poison[j], &in);
        free(k);
    }
    svc_msgs_free(&in);
    svc_msgs_free(&dlq);
    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    assert_int_equal(st.dead_letters, n);
    assert_int_equal(st.produced, 1);
    assert_true(svc_committed_at_end(f->env, NAME, "orders"));
    evk_service_destroy(svc);
}

/* (4) RETRY twice then OK: one output. Always RETRY: dead-lettered after
 * retry_max attempts. */
static void test_retry(void **state) {
    fixture_t *f = *state;
    svc_env_set(f->env, NAME ".retry_max", "4");
    svc_env_set(f->env, NAME ".retry_backoff_ms", "10");
    svc_env_set(f->env, NAME ".retry_backoff_max_ms", "40");
    f->retry_first = 2;
    f->always_retry = "r-bad";
    evk_service_t *svc = new_service(f, on_placed);
    svc_runner_t r;
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, "r-ok", "c-1", "A:1", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "r-bad", "c-1", "A:1", NULL), 1));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 1, SVC_WAIT_MS), 1);
    assert_int_equal(svc_wait_for(f->env, "inventory", 1, SVC_WAIT_MS), 1);
    assert_int_equal(svc_stop(&r), EVK_OK);

    assert_once_each(f->env, "inventory", 1);
    svc_msgs_t dlq = svc_read_all(f->env, "orders.dlq");
    assert_int_equal(dlq.n, 1);
    char *h = rt_header(dlq.m[0], "evk_dlq_attempts");
    assert_string_equal(h, "4");
    free(h);
    assert_string_equal(h = rt_header(dlq.m[0], "evk_dlq_error"), "EVK_ERR_RETRY");
    free(h);
    assert_string_equal(h = svc_key(dlq.m[0]), "r-bad");
    free(h);
    svc_msgs_free(&dlq);

    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    assert_int_equal(st.retries, 2 + 3);
    assert_int_equal(st.produced, 1);
    assert_int_equal(st.dead_letters, 1);
    assert_int_equal(atomic_load(&f->calls), 3 + 4);
    evk_service_destroy(svc);
}

/* ---- stores ---- */

static int64_t level_of(const evk_store_t *st, const char *sku) {
    const evk_event_t *v = evk_store_get(st, sku);
    int64_t n = -1;
    if (v) assert_int_equal(evk_event_get_long(v, "available", &n), EVK_OK);
    return n;
}

static evk_err_t put_level(evk_ctx_t *ctx, evk_store_t *st, const char *sku, int64_t n) {
    evk_event_t *v = evk_ctx_new_event(ctx, "StockLevel");
    assert_non_null(v);
    assert_int_equal(evk_event_set_string(v, "sku", sku), EVK_OK);
    assert_int_equal(evk_event_set_long(v, "available", n), EVK_OK);
    assert_int_equal(evk_event_set_key(v, sku), EVK_OK);
    return evk_store_put(ctx, st, v);
}

static evk_err_t mark_ready(evk_ctx_t *ctx, void *opaque) {
    (void)ctx;
    atomic_store(&((fixture_t *)opaque)->ready, 1);
    return EVK_OK;
}

/* Records the order's units under its own key (state is partitioned like
 * the input, so a store key is the input's key); fails after the put for
 * the fixture's failing customer. */
static evk_err_t on_placed_store(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    fixture_t *f = opaque;
    atomic_fetch_add(&f->calls, 1);
    size_t n;
    int64_t units = 0;
    assert_int_equal(evk_event_array_size(in, "items", &n), EVK_OK);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        int64_t qty;
        snprintf(path, sizeof(path), "items[%zu].quantity", i);
        assert_int_equal(evk_event_get_long(in, path, &qty), EVK_OK);
        units += qty;
    }
    evk_err_t rc = put_level(ctx, f->levels, evk_event_key(in), units);
    if (rc) return rc;
    const char *customer;
    assert_int_equal(evk_event_get_string(in, "customer_id", &customer), EVK_OK);
    if (f->fail_after_put && !strcmp(customer, f->fail_after_put)) return EVK_ERR_VALIDATION;
    return emit_reserved(ctx, in);
}

static evk_service_t *new_store_service(fixture_t *f) {
    char errstr[512];
    evk_service_t *svc = new_service(f, on_placed_store);
    if (evk_service_add_store(svc, "StockLevel", &f->levels, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    evk_service_on_ready(svc, mark_ready, f);
    return svc;
}

/* The store loads its partitions once they are assigned. */
static void wait_store(fixture_t *f, size_t n) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    while (evk_store_count(f->levels) != n) {
        if (evk__now_ms() > deadline)
            fail_msg("store holds %zu keys, expected %zu", evk_store_count(f->levels), n);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A key may only be written while handling an input with that key. */
static evk_err_t on_placed_foreign_key(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    (void)in;
    return put_level(ctx, ((fixture_t *)opaque)->levels, "SKU-1", 1);
}

/* (5) Puts survive a restart through the changelog; a handler that puts and
 * then fails leaves the store as it was; a put under another key than the
 * input's is refused (the input is dead-lettered). */
static void test_store(void **state) {
    fixture_t *f = *state;
    f->fail_after_put = "c-fail";
    evk_service_t *svc = new_store_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, "s-1", "c-1", "A:1", "B:2", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "s-2", "c-fail", "A:50", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "s-3", "c-1", "A:3", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "inventory", 2, SVC_WAIT_MS), 2);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 1, SVC_WAIT_MS), 1);
    /* Read while it runs: a stopped service has given its partitions up. */
    wait_store(f, 2);
    assert_int_equal(level_of(f->levels, "s-1"), 3);
    assert_int_equal(level_of(f->levels, "s-2"), -1);
    assert_int_equal(level_of(f->levels, "s-3"), 3);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);

    /* A new instance restores its partitions and goes on from there. */
    svc = new_store_service(f);
    svc_start(&r, svc);
    wait_store(f, 2);
    free(svc_send(f->env, svc_order(f->env, "s-4", "c-1", "A:6", NULL), 1));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "inventory", 3, SVC_WAIT_MS), 3);
    wait_store(f, 3);
    assert_int_equal(level_of(f->levels, "s-1"), 3);
    assert_int_equal(level_of(f->levels, "s-4"), 6);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
    assert_int_equal(atomic_load(&f->calls), 4);

    svc = new_service(f, on_placed_foreign_key);
    char errstr[512];
    if (evk_service_add_store(svc, "StockLevel", &f->levels, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, "s-5", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 2, SVC_WAIT_MS), 2);
    assert_int_equal(level_of(f->levels, "SKU-1"), -1);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
}

/* An order's first input writes its level and a second entry of it (the
 * order's key, EVK_STORE_KEY_SEP, "line"); the next deletes both, then fails
 * for the fixture's failing customer. Customer c-foreign deletes a key that
 * merely starts like the input's. */
static evk_err_t on_toggle(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    fixture_t *f = opaque;
    const char *key = evk_event_key(in), *customer;
    char sub[64], other[64];
    snprintf(sub, sizeof(sub), "%s" EVK_STORE_KEY_SEP "line", key);
    snprintf(other, sizeof(other), "%s0", key);
    assert_int_equal(evk_event_get_string(in, "customer_id", &customer), EVK_OK);
    if (!strcmp(customer, "c-foreign")) return evk_store_delete(ctx, f->levels, other);
    if (!evk_store_get(f->levels, key)) {
        evk_err_t rc = put_level(ctx, f->levels, key, 1);
        return rc ? rc : put_level(ctx, f->levels, sub, 2);
    }
    evk_err_t rc = evk_store_delete(ctx, f->levels, key);
    if (!rc) rc = evk_store_delete(ctx, f->levels, sub);
    if (!rc && f->fail_after_put && !strcmp(customer, f->fail_after_put))
        rc = EVK_ERR_VALIDATION;
    return rc;
}

static evk_service_t *new_toggle_service(fixture_t *f) {
    char errstr[512];
    evk_service_t *svc = new_service(f, on_toggle);
    if (evk_service_add_store(svc, "StockLevel", &f->levels, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    return svc;
}

/* (5b) Entries under the input's key and EVK_STORE_KEY_SEP; deletes are
 * reverted with a failed handler, survive a restart as tombstones, and are
 * refused for a key that only starts like the input's. */
static void test_store_delete(void **state) {
    fixture_t *f = *state;
    f->fail_after_put = "c-fail";
    evk_service_t *svc = new_toggle_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, "t-1", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    wait_store(f, 2);
    free(svc_send(f->env, svc_order(f->env, "t-1", "c-fail", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 1, SVC_WAIT_MS), 1);
    assert_int_equal(level_of(f->levels, "t-1"), 1);
    assert_int_equal(level_of(f->levels, "t-1" EVK_STORE_KEY_SEP "line"), 2);
    free(svc_send(f->env, svc_order(f->env, "t-1", "c-1", "A:1", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "t-2", "c-foreign", "A:1", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "t-3", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 2, SVC_WAIT_MS), 2);
    wait_store(f, 2);
    assert_int_equal(level_of(f->levels, "t-1"), -1);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);

    svc = new_toggle_service(f);
    svc_start(&r, svc);
    wait_store(f, 2);
    assert_int_equal(level_of(f->levels, "t-1"), -1);
    assert_int_equal(level_of(f->levels, "t-1" EVK_STORE_KEY_SEP "line"), -1);
    assert_int_equal(level_of(f->levels, "t-3"), 1);
    assert_int_equal(level_of(f->levels, "t-3" EVK_STORE_KEY_SEP "line"), 2);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
}

/* (5b') A store key over EVK_STORE_KEY_MAX bytes is refused alike with and
 * without state on disk: the input is dead-lettered, nothing is stored. */
static void test_store_long_key(void **state) {
    fixture_t *f = *state;
    char key[EVK_STORE_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    evk_service_t *svc = new_toggle_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, key, "c-1", "A:1", NULL), 0));
    free(svc_send(f->env, svc_order(f->env, "short", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "orders.dlq", 1, SVC_WAIT_MS), 1);
    assert_int_equal(svc_wait_for(f->env, "inventory.levels", 2, SVC_WAIT_MS), 2);
    assert_int_equal(svc_stop(&r), EVK_OK);
    assert_int_equal(level_of(f->levels, key), -1);
    assert_int_equal(level_of(f->levels, "short"), 1);
    evk_service_destroy(svc);
}

/* Waits until the two stores hold @p a and @p b keys: the group settled. */
static void wait_split(evk_store_t *const *sa, evk_store_t *const *sb, size_t a, size_t b) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    while (evk_store_count(*sa) != a || evk_store_count(*sb) != b) {
        if (evk__now_ms() > deadline)
            fail_msg("stores hold %zu and %zu keys, expected %zu and %zu", evk_store_count(*sa),
                     evk_store_count(*sb), a, b);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static evk_service_stats_t stats_of(const evk_service_t *svc) {
    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    return st;
}

/* Store service a alone takes the w orders (two per partition) and
 * restores nothing; then b joins and the partitions split between them. */
static void start_then_split(fixture_t *f, fixture_t *g, evk_service_t **a, svc_runner_t *ra,
                             evk_service_t **b, svc_runner_t *rb) {
    *a = new_store_service(f);
    svc_start(ra, *a);
    send_orders(f, "w", 2 * SVC_PARTITIONS, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", 2 * SVC_PARTITIONS, SVC_WAIT_MS),
                     2 * SVC_PARTITIONS);
    wait_store(f, 2 * SVC_PARTITIONS);
    assert_int_equal(stats_of(*a).restored, 0);
    *b = new_store_service(g);
    svc_start(rb, *b);
    wait_split(&f->levels, &g->levels, SVC_PARTITIONS, SVC_PARTITIONS);
}

/* (5c) A second instance joins, writes, and leaves. The first keeps the
 * state of the partitions the rebalance gives back to it (it reads nothing
 * of them again) and reads whole only those the second one had. */
static void test_store_rebalance(void **state) {
    fixture_t *f = *state, g = {.env = f->env};
    evk_service_t *a, *b;
    svc_runner_t ra, rb;
    start_then_split(f, &g, &a, &ra, &b, &rb);
    assert_int_equal(stats_of(a).restored, 0);
    int kept[SVC_PARTITIONS];
    for (int p = 0; p < SVC_PARTITIONS; p++) {
        char key[32];
        snprintf(key, sizeof(key), "w-%d", p);
        kept[p] = evk_store_get(f->levels, key) != NULL;
    }

    send_orders(f, "x", 2 * SVC_PARTITIONS, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", 4 * SVC_PARTITIONS, SVC_WAIT_MS),
                     4 * SVC_PARTITIONS);
    wait_split(&f->levels, &g.levels, 2 * SVC_PARTITIONS, 2 * SVC_PARTITIONS);
    assert_int_equal(svc_stop(&rb), EVK_OK);
    evk_service_destroy(b);

    wait_store(f, 4 * SVC_PARTITIONS);
    for (int i = 0; i < 2 * SVC_PARTITIONS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "x-%d", i);
        assert_int_equal(level_of(f->levels, key), 1);
    }
    svc_msgs_t log = svc_read_all(f->env, "inventory.levels");
    uint64_t others = 0;
    for (size_t i = 0; i < log.n; i++)
        others += !kept[log.m[i]->partition];
    svc_msgs_free(&log);
    assert_int_equal(stats_of(a).restored, others);
    assert_int_equal(svc_stop(&ra), EVK_OK);
    evk_service_destroy(a);
}

/* ---- state on disk ---- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* The store test's handlers with the state on disk and nothing cached
 * between batches, so that every read after a commit comes from disk. */
static void use_disk(fixture_t *f, const char *dir) {
    svc_env_set(f->env, "state.dir", dir);
    svc_env_set(f->env, "state.cache_entries", "0");
}

/* A fresh state directory in @p dir (a mkdtemp() template), used by the
 * services made from now on. */
static void use_new_disk(fixture_t *f, char *dir) {
    assert_non_null(mkdtemp(dir));
    use_disk(f, dir);
}

/* The toggle service over @p orders until @p outputs changelog records are
 * there (every batch committed), then stopped; *restored_out gets what it
 * restored. Reads follow the stop, as the stores are the service thread's. */
static void run_toggles(fixture_t *f, const char *const *orders, size_t norders, int outputs,
                        uint64_t *restored_out) {
    evk_service_t *svc = new_toggle_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    for (size_t i = 0; i < norders; i++)
        free(svc_send(f->env, svc_order(f->env, orders[i], "c-1", "A:1", NULL), (int)i % 2));
    svc_flush(f->env);
    assert_int_equal(svc_wait_for(f->env, "inventory.levels", outputs, SVC_WAIT_MS), outputs);
    assert_int_equal(svc_stop(&r), EVK_OK);
    *restored_out = stats_of(svc).restored;
    f->svc_kept = svc;
}

/* (5d) With state.dir the committed state lives on disk beside its
 * checkpoints: a restart reads nothing of the changelog again, reads after
 * the cache let go come from disk, deletes hold there too; a state dir
 * that is ahead of its changelog (a new cluster) is cleared. */
static void test_store_disk(void **state) {
    fixture_t *f = *state;
    char dir[] = "/tmp/evk-state-XXXXXX";
    use_new_disk(f, dir);
    uint64_t n;
    const char *first[] = {"d-1", "d-2", "d-3", "d-2"}; /* d-2 comes and goes */
    run_toggles(f, first, 4, 2 * 3 + 2, &n);
    assert_int_equal(n, 0);
    assert_int_equal(evk_store_count(f->levels), 4);
    assert_int_equal(level_of(f->levels, "d-1"), 1);
    assert_int_equal(level_of(f->levels, "d-1" EVK_STORE_KEY_SEP "line"), 2);
    assert_int_equal(level_of(f->levels, "d-2"), -1);
    evk_service_destroy(f->svc_kept);

    /* Restarted: the checkpoints cover the changelog, nothing is read. */
    const char *second[] = {"d-1", "d-4"};
    run_toggles(f, second, 2, 8 + 2 + 2, &n);
    assert_int_equal(n, 0);
    assert_int_equal(level_of(f->levels, "d-1"), -1);
    assert_int_equal(level_of(f->levels, "d-3"), 1);
    assert_int_equal(level_of(f->levels, "d-4" EVK_STORE_KEY_SEP "line"), 2);
    assert_int_equal(evk_store_count(f->levels), 4);
    evk_service_destroy(f->svc_kept);

    /* A new, empty cluster: the disk's checkpoints are past its changelog. */
    svc_env_destroy(f->env);
    f->env = svc_env_new(SVC_PARTITIONS);
    use_disk(f, dir);
    const char *third[] = {"d-5"};
    run_toggles(f, third, 1, 2, &n);
    assert_int_equal(level_of(f->levels, "d-3"), -1);
    assert_int_equal(level_of(f->levels, "d-5"), 1);
    assert_int_equal(evk_store_count(f->levels), 2);
    evk_service_destroy(f->svc_kept);
    assert_int_equal(nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* The one instance directory under @p dir/inv (the instance id is the
 * host's name and a slot). */
static void instance_dir(const char *dir, char *out, size_t size) {
    char group[256];
    snprintf(group, sizeof(group), "%s/" NAME, dir);
    DIR *d = opendir(group);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && e->d_name[0] == '.')
        ;
    assert_non_null(e);
    snprintf(out, size, "%s/%s", group, e->d_name);
    closedir(d);
}

/* Replace @p key's frame on disk with one of an unknown schema id, keeping
 * the partition it is stored with. */
static void damage_on_disk(const char *dir, const char *table, const char *key) {
    char path[512];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {strlen(key), (void *)key}, v;
    instance_dir(dir, path, sizeof(path));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    char bad[4 + 5] = {0, 0, 0, 0, 0, 0, 0, 0, 99}; /* magic 0, schema id 99 */
    memcpy(bad, v.mv_data, 4);
    MDB_val nv = {sizeof(bad), bad};
    assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* (5d') Standby replicas: with the state on disk, an instance keeps on disk
 * what the other instance writes to the partitions it does not hold. When
 * the other leaves, it restores nothing of the partitions it takes over;
 * without standby replicas it would read all that the other wrote since
 * the split, from its own older checkpoint. */
static void test_store_standby(void **state) {
    fixture_t *f = *state, g = {.env = f->env};
    char dir[] = "/tmp/evk-state-XXXXXX";
    use_new_disk(f, dir);
    evk_service_t *a, *b;
    svc_runner_t ra, rb;
    start_then_split(f, &g, &a, &ra, &b, &rb);

    send_orders(f, "x", 2 * SVC_PARTITIONS, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", 4 * SVC_PARTITIONS, SVC_WAIT_MS),
                     4 * SVC_PARTITIONS);
    wait_split(&f->levels, &g.levels, 2 * SVC_PARTITIONS, 2 * SVC_PARTITIONS);
    /* b wrote the x orders of its half of the partitions: SVC_PARTITIONS
     * records, which a's standby replicas take (the stores are the service
     * threads': b's is read once b has stopped). */
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    while (stats_of(a).standby < SVC_PARTITIONS) {
        if (evk__now_ms() > deadline)
            fail_msg("a's standby replicas took %llu records, b wrote %d",
                     (unsigned long long)stats_of(a).standby, SVC_PARTITIONS);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t before = stats_of(a).restored;
    assert_int_equal(svc_stop(&rb), EVK_OK);
    int by_b = 0;
    for (int i = 0; i < 2 * SVC_PARTITIONS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "x-%d", i);
        by_b += level_of(g.levels, key) == 1;
    }
    assert_int_equal(by_b, SVC_PARTITIONS);
    evk_service_destroy(b);

    wait_store(f, 4 * SVC_PARTITIONS);
    assert_int_equal(stats_of(a).restored, before);
    for (int i = 0; i < 2 * SVC_PARTITIONS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "x-%d", i);
        assert_int_equal(level_of(f->levels, key), 1);
    }
    assert_int_equal(svc_stop(&ra), EVK_OK);
    evk_service_destroy(a);
    assert_int_equal(nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* (5e) A value the disk cannot give back (here: it no longer decodes)
 * stops the service with EVK_ERR_IO rather than let the handler take the
 * key for absent: the batch does not commit. */
static void test_store_disk_unreadable(void **state) {
    fixture_t *f = *state;
    char dir[] = "/tmp/evk-state-XXXXXX";
    use_new_disk(f, dir);
    uint64_t n;
    const char *first[] = {"u-1"};
    run_toggles(f, first, 1, 2, &n);
    evk_service_destroy(f->svc_kept);
    damage_on_disk(dir, evk_schema_type(evk_catalog_find(f->env->cat, "StockLevel")), "u-1");

    evk_service_t *svc = new_toggle_service(f);
    svc_runner_t r;
    svc_start(&r, svc);
    free(svc_send(f->env, svc_order(f->env, "u-1", "c-1", "A:1", NULL), 0));
    svc_flush(f->env);
    assert_int_equal(svc_join(&r, SVC_WAIT_MS), EVK_ERR_IO);
    assert_non_null(strstr(r.errstr, "cannot be read from disk"));
    assert_false(svc_committed_at_end(f->env, NAME, "orders"));
    evk_service_destroy(svc);
    assert_int_equal(nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---- injected faults ---- */

static void wait_ready(fixture_t *f) {
    int64_t deadline = evk__now_ms() + SVC_WAIT_MS;
    while (!atomic_load(&f->ready)) {
        if (evk__now_ms() > deadline) fail_msg("service not ready");
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The inputs get one leader, everything the service writes another, so
 * that the second broker's injected Produce errors hit the service only.
 * Called before any client looked up the topics' leaders. */
static void separate_leaders(svc_env_t *env) {
    const struct {
        const char *topic;
        int partitions;
        int32_t broker;
    } leaders[] = {{"orders", SVC_PARTITIONS, 1},
                   {"orders.dlq", SVC_PARTITIONS, 2},
                   {"inventory", env->out_partitions, 2},
                   {"inventory.levels", env->out_partitions, 2}};
    rd_kafka_mock_cluster_t *mc = evk_devbroker_mock(env->db);
    for (size_t i = 0; i < sizeof(leaders) / sizeof(leaders[0]); i++)
        for (int p = 0; p < leaders[i].partitions; p++)
            assert_int_equal(
                rd_kafka_mock_partition_set_leader(mc, leaders[i].topic, p, leaders[i].broker),
                0);
}

/* Runs a service over N orders while @p inject fails some requests; every
 * order must take effect exactly once: in the outputs, the offsets and, with
 * @p store, the store and its changelog. */
static void fault_run(fixture_t *f, void (*inject)(rd_kafka_mock_cluster_t *mc), int store,
                      int expect_abort) {
    enum { N = 12 };
    separate_leaders(f->env);
    evk_service_t *svc = store ? new_store_service(f) : new_service(f, on_placed);
    svc_runner_t r;
    svc_start(&r, svc);
    /* Once ready, the only transactions are the batches'. */
    if (store) wait_ready(f);
    inject(evk_devbroker_mock(f->env->db));
    send_orders(f, "f", N, NULL);
    assert_int_equal(svc_wait_for(f->env, "inventory", N, SVC_WAIT_MS), N);
    if (store) wait_store(f, N);
    assert_int_equal(svc_stop(&r), EVK_OK);

    assert_once_each(f->env, "inventory", N);
    assert_true(svc_committed_at_end(f->env, NAME, "orders"));
    evk_service_stats_t st;
    evk_service_stats(svc, &st);
    assert_int_equal(st.produced, N);
    if (expect_abort) assert_true(st.aborts >= 1);
    evk_service_destroy(svc);
    if (!store) return;

    atomic_store(&f->ready, 0);
    svc = new_store_service(f); /* the changelog agrees with memory */
    svc_start(&r, svc);
    wait_store(f, N);
    assert_int_equal(svc_stop(&r), EVK_OK);
    evk_service_destroy(svc);
}

static void fail_produce(rd_kafka_mock_cluster_t *mc) {
    assert_int_equal(
        rd_kafka_mock_broker_push_request_error_rtts(
            mc, 2, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0),
        0);
}

static void fail_end_txn(rd_kafka_mock_cluster_t *mc) {
    rd_kafka_mock_push_request_errors(mc, API_END_TXN, 2, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
}

static void fail_offset_commit(rd_kafka_mock_cluster_t *mc) {
    rd_kafka_mock_push_request_errors(mc, API_TXN_OFFSET_COMMIT, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
}

static void fail_add_partitions(rd_kafka_mock_cluster_t *mc) {
    rd_kafka_mock_push_request_errors(mc, API_ADD_PARTITIONS_TO_TXN, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
}

/* A permanent Produce error fails the delivery: the transaction must abort
 * and the batch be replayed. librdkafka's mock cluster writes no
 * transaction markers, so records of an aborted transaction that reached it
 * would stay visible to read_committed readers (a real cluster hides them).
 * With all outputs in one partition, the failed request is the
 * transaction's first and the rest fail on their sequence numbers: nothing
 * of it is written. */
static void test_fault_produce(void **state) {
    fault_run(*state, fail_produce, 0, 1);
}

/* The coordinator moves during EndTxn: librdkafka retries the commit. */
static void test_fault_end_txn(void **state) {
    fault_run(*state, fail_end_txn, 1, 0);
}

static void test_fault_offset_commit(void **state) {
    fault_run(*state, fail_offset_commit, 1, 0);
}

/* A partition cannot join the transaction: abortable, before any record of
 * it is sent; the store's writes are reverted. */
static void test_fault_add_partitions(void **state) {
    fault_run(*state, fail_add_partitions, 1, 1);
}

/* (6) The retry budget: retry_max handler calls plus the backoffs between
 * them must stay under half of max.poll.interval.ms, at creation for the
 * backoffs alone and through evk_service_check_handler_time() for a
 * handler with a known bound. */
static void test_handler_time(void **state) {
    fixture_t *f = *state;
    char errstr[512];
    evk_service_t *svc;
    if (evk_config_set_kafka(f->env->cfg, "max.poll.interval.ms", "10000", errstr,
                             sizeof(errstr)))
        fail_msg("%s", errstr);
    svc_env_set(f->env, NAME ".retry_max", "10");
    assert_int_equal(
        evk_service_new(NAME, f->env->cfg, f->env->cat, &svc, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr,
                        NAME ": retry_max and retry_backoff_max_ms allow backing off "
                             "more than half of max.poll.interval.ms (10000 ms) for one "
                             "event");

    /* 3 calls and backoffs of 100 + 200 ms: 3 * 1566 + 300 = 4998 fits in
     * 5000, 3 * 1567 + 300 = 5001 does not. */
    svc_env_set(f->env, NAME ".retry_max", "3");
    svc = new_service(f, on_placed);
    assert_int_equal(
        evk_service_check_handler_time(svc, "x.timeout_ms", 1566, errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(
        evk_service_check_handler_time(svc, "x.timeout_ms", 1567, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, NAME ".retry_max (3) tries of up to x.timeout_ms (1567 ms) "
                                     "each, with the backoffs between them, can hold one event "
                                     "longer than half of max.poll.interval.ms (10000 ms): the "
                                     "group would evict the service in the middle of it; lower "
                                     "them or raise kafka.max.poll.interval.ms");
    assert_int_equal(
        evk_service_check_handler_time(svc, "x.timeout_ms", -1, errstr, sizeof(errstr)),
        EVK_ERR_INVALID_ARG);
    assert_int_equal(evk_service_check_handler_time(NULL, "x", 1, errstr, sizeof(errstr)),
                     EVK_ERR_INVALID_ARG);
    evk_service_destroy(svc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transform, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_long_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_rebalance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_standby, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_disk_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_produce, setup_one_output, teardown),
        cmocka_unit_test_setup_teardown(test_fault_end_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_offset_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_add_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_time, setup, teardown),
    };
    /* SVC_TEST=name runs the tests matching that pattern only. */
    if (getenv("SVC_TEST")) cmocka_set_test_filter(getenv("SVC_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
