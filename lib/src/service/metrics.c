/* A service's counters and their Prometheus text (see metrics.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "metrics.h"
#include "service_int.h"

/* Handler latency bucket bounds: most handlers take microseconds, one that
 * calls out (a webhook) seconds. */
static const int64_t bucket_ns[MET_BUCKETS] = {
    500000,    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};

static const char *const client_names[MET_CLIENTS] = {"producer", "consumer"};

static const struct {
    const char *name, *type, *help;
} kafka_families[MET_K_N] = {
    [MET_K_TXMSGS] = {"evk_kafka_messages_sent_total", "counter",
                      "Messages sent to the brokers (librdkafka txmsgs)."},
    [MET_K_RXMSGS] = {"evk_kafka_messages_received_total", "counter",
                      "Messages received from the brokers (librdkafka rxmsgs)."},
    [MET_K_REPLYQ] = {"evk_kafka_replyq", "gauge",
                      "Ops waiting for the application to serve them (librdkafka replyq)."},
    [MET_K_MSGCNT] = {"evk_kafka_msg_cnt", "gauge",
                      "Messages in the producer queues (librdkafka msg_cnt)."},
    [MET_K_RTT] = {"evk_kafka_broker_rtt_avg_seconds", "gauge",
                   "Average request round trip time per broker (librdkafka rtt.avg)."},
    [MET_K_LAG] = {"evk_consumer_lag", "gauge",
                   "Messages between the consumed position and the end of each assigned "
                   "partition (librdkafka consumer_lag)."},
};

/* ---- text buffer ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} met_buf_t;

static void buf_printf(met_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_printf(met_buf_t *b, const char *fmt, ...) {
    while (!b->oom) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (n >= 0 && cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = n >= 0 ? realloc(b->p, cap) : NULL;
        if (!p) b->oom = 1;
        if (p) b->p = p, b->cap = cap;
    }
}

/* The text, which passes to the caller; NULL when out of memory. */
static char *buf_take(met_buf_t *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p ? b->p : strdup("");
}

static char *label_escape(const char *s) {
    met_buf_t b = {0};
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(&b, "\\%c", *s);
        else if (*s == '\n')
            buf_printf(&b, "\\n");
        else
            buf_printf(&b, "%c", *s);
    }
    return buf_take(&b);
}

/* ---- counters ---- */

static int type_known(const svc_metrics_t *m, const char *type) {
    for (size_t i = 0; i < m->ntypes; i++)
        if (!strcmp(m->types[i].type, type)) return 1;
    return 0;
}

/* A catalog may hold several versions of a type: one series per name. */
static int types_init(svc_metrics_t *m, const evk_catalog_t *cat) {
    size_t n = evk_catalog_count(cat);
    m->types = calloc(n + 1, sizeof(*m->types));
    if (!m->types) return -1;
    for (size_t i = 0; i < n; i++) {
        const char *type = evk_schema_type(evk_catalog_at(cat, i));
        if (!type_known(m, type)) m->types[m->ntypes++].type = type;
    }
    m->types[m->ntypes++].type = "unknown";
    return 0;
}

svc_metrics_t *svc_metrics_new(const char *name, const evk_catalog_t *cat) {
    svc_metrics_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->label = label_escape(name);
    if (!m->label || types_init(m, cat)) {
        svc_metrics_destroy(m);
        return NULL;
    }
    return m;
}

void svc_metrics_destroy(svc_metrics_t *m) {
    if (!m) return;
    for (int c = 0; c < MET_CLIENTS; c++)
        for (int f = 0; f < MET_K_N; f++)
            free(m->kafka[c][f]);
    pthread_mutex_destroy(&m->lock);
    free(m->types);
    free(m->label);
    free(m->bind);
    free(m);
}

static met_type_t *type_of(svc_metrics_t *m, const char *type) {
    for (size_t i = 0; type && i + 1 < m->ntypes; i++)
        if (!strcmp(m->types[i].type, type)) return &m->types[i];
    return &m->types[m->ntypes - 1];
}

void svc_metrics_consumed(svc_metrics_t *m, const char *type, int failed) {
    met_type_t *t = type_of(m, type);
    t->pending[MET_CONSUMED]++;
    t->pending[MET_FAILED] += failed != 0;
}

void svc_metrics_produced(svc_metrics_t *m, const char *type) {
    type_of(m, type)->pending[MET_PRODUCED]++;
}

int svc_metrics_skipped(svc_metrics_t *m, const char *type, int misrouted) {
    met_type_t *t = type_of(m, type);
    unsigned bit = misrouted ? 2u : 1u;
    t->pending[MET_SKIPPED]++;
    if (t->skips_noted & bit) return 0;
    t->skips_noted |= bit;
    return 1;
}

void svc_metrics_offset_commit_failed(svc_metrics_t *m) {
    atomic_fetch_add(&m->offset_commit_failures, 1);
}

void svc_metrics_commit(svc_metrics_t *m) {
    for (size_t i = 0; i < m->ntypes; i++)
        for (int k = 0; k < MET_COUNTS; k++)
            atomic_fetch_add(&m->types[i].total[k], m->types[i].pending[k]);
    svc_metrics_discard(m);
}

void svc_metrics_discard(svc_metrics_t *m) {
    for (size_t i = 0; i < m->ntypes; i++)
        memset(m->types[i].pending, 0, sizeof(m->types[i].pending));
}

void svc_metrics_registry_wait(svc_metrics_t *m, int waiting) {
    atomic_store(&m->registry_waiting, waiting);
    if (waiting) atomic_fetch_add(&m->registry_waits, 1);
}

void svc_metrics_dead_letter_failed(svc_metrics_t *m, const char *why, int blocked) {
    atomic_fetch_add(&m->dead_letter_failures, 1);
    pthread_mutex_lock(&m->lock);
    snprintf(m->dead_letter_why, sizeof(m->dead_letter_why), "%s", why);
    pthread_mutex_unlock(&m->lock);
    if (blocked) atomic_store(&m->dead_letters_blocked, 1);
}

void svc_metrics_dead_letters_ok(svc_metrics_t *m) {
    atomic_store(&m->dead_letters_blocked, 0);
}

int svc_metrics_dead_letters_blocked(svc_metrics_t *m, char *why, size_t size) {
    if (!atomic_load(&m->dead_letters_blocked)) return 0;
    pthread_mutex_lock(&m->lock);
    snprintf(why, size, "%s", m->dead_letter_why);
    pthread_mutex_unlock(&m->lock);
    return 1;
}

void svc_metrics_handler_time(svc_metrics_t *m, int64_t ns) {
    size_t b = 0;
    while (b < MET_BUCKETS && ns > bucket_ns[b])
        b++;
    atomic_fetch_add(&m->buckets[b], 1);
    atomic_fetch_add(&m->latency_sum_ns, (uint_fast64_t)(ns > 0 ? ns : 0));
    atomic_fetch_add(&m->latency_count, 1);
}

int64_t svc_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- librdkafka statistics ---- */

static void kafka_scalar(met_buf_t *b, const svc_metrics_t *m, int client, int fam,
                         const json_t *doc, const char *key) {
    buf_printf(b, "%s{service=\"%s\",client=\"%s\"} %lld\n", kafka_families[fam].name, m->label,
               client_names[client], (long long)json_integer_value(json_object_get(doc, key)));
}

/* Brokers not yet known by id (bootstrap) and the coordinators, which
 * stand for a broker listed anyway, are left out. */
static int real_broker(const json_t *br) {
    const char *source = json_string_value(json_object_get(br, "source"));
    return json_integer_value(json_object_get(br, "nodeid")) >= 0 &&
           !(source && !strcmp(source, "logical"));
}

static void kafka_rtt(met_buf_t *b, const svc_metrics_t *m, int client, const json_t *brokers) {
    const char *name;
    const json_t *br;
    json_object_foreach((json_t *)brokers, name, br) {
        if (!real_broker(br)) continue;
        json_int_t us = json_integer_value(json_object_get(json_object_get(br, "rtt"), "avg"));
        buf_printf(b, "%s{service=\"%s\",client=\"%s\",broker=\"%s\"} %.6f\n",
                   kafka_families[MET_K_RTT].name, m->label, client_names[client], name,
                   (double)us / 1e6);
    }
}

/* Partition -1 is librdkafka's internal UA partition; a lag of -1 means
 * not known (e.g. not assigned to this member). */
static void kafka_lag(met_buf_t *b, const svc_metrics_t *m, const json_t *topics) {
    const char *topic, *pname;
    const json_t *t, *p;
    json_object_foreach((json_t *)topics, topic, t) {
        json_object_foreach(json_object_get(t, "partitions"), pname, p) {
            json_int_t part = json_integer_value(json_object_get(p, "partition"));
            json_int_t lag = json_integer_value(json_object_get(p, "consumer_lag"));
            if (part < 0 || lag < 0) continue;
            buf_printf(b, "%s{service=\"%s\",topic=\"%s\",partition=\"%lld\"} %lld\n",
                       kafka_families[MET_K_LAG].name, m->label, topic, (long long)part,
                       (long long)lag);
        }
    }
}

static void kafka_store(svc_metrics_t *m, int client, const json_t *doc) {
    met_buf_t b[MET_K_N] = {{0}};
    kafka_scalar(&b[MET_K_TXMSGS], m, client, MET_K_TXMSGS, doc, "txmsgs");
    kafka_scalar(&b[MET_K_RXMSGS], m, client, MET_K_RXMSGS, doc, "rxmsgs");
    kafka_scalar(&b[MET_K_REPLYQ], m, client, MET_K_REPLYQ, doc, "replyq");
    kafka_scalar(&b[MET_K_MSGCNT], m, client, MET_K_MSGCNT, doc, "msg_cnt");
    kafka_rtt(&b[MET_K_RTT], m, client, json_object_get(doc, "brokers"));
    if (client == MET_CONSUMER) kafka_lag(&b[MET_K_LAG], m, json_object_get(doc, "topics"));
    pthread_mutex_lock(&m->lock);
    for (int f = 0; f < MET_K_N; f++) {
        free(m->kafka[client][f]);
        m->kafka[client][f] = buf_take(&b[f]);
    }
    pthread_mutex_unlock(&m->lock);
}

int svc_metrics_kafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    const evk_service_t *svc = opaque;
    json_t *doc = json_loadb(json, len, 0, NULL);
    if (doc) {
        kafka_store(svc->metrics,
                    rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? MET_PRODUCER : MET_CONSUMER, doc);
        json_decref(doc);
    }
    return 0; /* librdkafka frees json */
}

/* ---- rendering ---- */

static void family(met_buf_t *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(met_buf_t *b, const svc_metrics_t *m, const char *name, const char *help,
                    uint64_t v) {
    family(b, name, "counter", help);
    buf_printf(b, "%s{service=\"%s\"} %llu\n", name, m->label, (unsigned long long)v);
}

static int handles(const evk_service_t *svc, const char *type) {
    for (size_t i = 0; i < svc->nroutes; i++)
        if (!strcmp(evk_schema_type(svc->routes[i].schema), type)) return 1;
    return 0;
}

/* Series of the types the service handles always, of the others once they
 * moved: a service that only emits does not list every type it could. */
static void per_type(met_buf_t *b, const evk_service_t *svc, const char *name, const char *help,
                     int count, int inputs) {
    const svc_metrics_t *m = svc->metrics;
    family(b, name, "counter", help);
    for (size_t i = 0; i < m->ntypes; i++) {
        const met_type_t *t = &m->types[i];
        uint64_t v = atomic_load(&t->total[count]);
        if (v || (inputs && handles(svc, t->type)))
            buf_printf(b, "%s{service=\"%s\",type=\"%s\"} %llu\n", name, m->label, t->type,
                       (unsigned long long)v);
    }
}

static void histogram(met_buf_t *b, const svc_metrics_t *m) {
    const char *name = "evk_handler_duration_seconds";
    family(b, name, "histogram", "Time of one handler call.");
    uint64_t cum = 0;
    for (int i = 0; i < MET_BUCKETS; i++) {
        cum += atomic_load(&m->buckets[i]);
        buf_printf(b, "%s_bucket{service=\"%s\",le=\"%g\"} %llu\n", name, m->label,
                   (double)bucket_ns[i] / 1e9, (unsigned long long)cum);
    }
    cum += atomic_load(&m->buckets[MET_BUCKETS]);
    buf_printf(b, "%s_bucket{service=\"%s\",le=\"+Inf\"} %llu\n", name, m->label,
               (unsigned long long)cum);
    buf_printf(b, "%s_sum{service=\"%s\"} %.9f\n", name, m->label,
               (double)atomic_load(&m->latency_sum_ns) / 1e9);
    buf_printf(b, "%s_count{service=\"%s\"} %llu\n", name, m->label,
               (unsigned long long)atomic_load(&m->latency_count));
}

static void kafka(met_buf_t *b, svc_metrics_t *m) {
    pthread_mutex_lock(&m->lock);
    for (int f = 0; f < MET_K_N; f++) {
        family(b, kafka_families[f].name, kafka_families[f].type, kafka_families[f].help);
        for (int c = 0; c < MET_CLIENTS; c++)
            if (m->kafka[c][f]) buf_printf(b, "%s", m->kafka[c][f]);
    }
    pthread_mutex_unlock(&m->lock);
}

static void totals(met_buf_t *b, const evk_service_t *svc) {
    const svc_metrics_t *m = svc->metrics;
    family(b, "evk_service_ready", "gauge",
           "1 once the stores are restored and the consumer subscribed.");
    buf_printf(b, "evk_service_ready{service=\"%s\"} %d\n", m->label, atomic_load(&m->ready));
    counter(b, m, "evk_dead_letters_total", "Inputs sent to a dead-letter topic.",
            atomic_load(&svc->stats.dead_letters));
    counter(b, m, "evk_retries_total", "Handler calls that asked for a retry.",
            atomic_load(&svc->stats.retries));
    counter(b, m, "evk_registry_waits_total",
            "Waits for an unreachable schema registry before decoding an input.",
            atomic_load(&m->registry_waits));
    counter(b, m, "evk_transactions_committed_total", "Committed transactions.",
            atomic_load(&svc->stats.commits));
    counter(b, m, "evk_transactions_aborted_total", "Aborted transactions (batch replayed).",
            atomic_load(&svc->stats.aborts));
    counter(b, m, "evk_store_records_restored_total",
            "Changelog records read to restore stores (a partition given back after a "
            "rebalance reads only what was written since).",
            atomic_load(&svc->stats.restored));
    counter(b, m, "evk_store_standby_records_total",
            "Changelog records written to disk for partitions this instance does not hold "
            "(standby replicas: a partition that moves here restores from there).",
            atomic_load(&svc->stats.standby));
    counter(b, m, "evk_offset_commit_failures_total",
            "Consumer offset commits mirroring a transaction's that failed (dev broker; "
            "a restart may replay the batch).",
            atomic_load(&m->offset_commit_failures));
    counter(b, m, "evk_dead_letter_failures_total",
            "Batches aborted (and replayed) because a dead letter could not be written.",
            atomic_load(&m->dead_letter_failures));
    family(
        b, "evk_dead_letters_blocked", "gauge",
        "1 while dead letters keep failing (retry_max batches in a row): their inputs wait.");
    buf_printf(b, "evk_dead_letters_blocked{service=\"%s\"} %d\n", m->label,
               atomic_load(&m->dead_letters_blocked));
}

char *svc_metrics_render(const evk_service_t *svc) {
    met_buf_t b = {0};
    totals(&b, svc);
    per_type(&b, svc, "evk_events_consumed_total", "Committed inputs, by event type.",
             MET_CONSUMED, 1);
    per_type(&b, svc, "evk_events_produced_total", "Committed outputs, by event type.",
             MET_PRODUCED, 0);
    per_type(&b, svc, "evk_events_failed_total",
             "Committed inputs that were dead-lettered, by event type.", MET_FAILED, 1);
    per_type(&b, svc, "evk_events_skipped_total",
             "Committed inputs of a type no handler here takes, by event type.", MET_SKIPPED,
             0);
    histogram(&b, svc->metrics);
    kafka(&b, svc->metrics);
    return buf_take(&b);
}
