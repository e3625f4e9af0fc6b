/* The service loop: consume, decode, dispatch, produce and commit in one
 * Kafka transaction per batch (see service.h). Transactions, staging and
 * dead letters live in service_txn.c, stores in store.c. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "metrics.h"
#include "service_int.h"

#define SVC_POLL_MS 100 /* how long the idle loop waits: bounds stop latency */
#define SVC_FLUSH_TIMEOUT_MS 10000
#define SVC_MAX_POLL_DEFAULT_MS 300000   /* librdkafka's max.poll.interval.ms */
#define SVC_TXN_TIMEOUT_DEFAULT_MS 60000 /* librdkafka's transaction.timeout.ms */
#define SVC_WAIT_REPORT_MS 10000         /* how often a member without partitions says so */
#define SVC_METADATA_TIMEOUT_MS 30000   /* for the partition counts of the co-partition check */
#define SVC_MESSAGE_MAX_DEFAULT 1000000 /* librdkafka's message.max.bytes */
#define SVC_DEAD_LETTER_MIN_BYTES 4096  /* room for the evk_dlq_* headers */

/* ---- signals ---- */

/* Handlers are process-wide while services are objects: the first running
 * service installs them, the last one puts back what was there before. */
static volatile sig_atomic_t svc_signalled;
/* When the first signal came: the shutdown's time budget starts then.
 * Lock-free, and evk__now_ms() is clock_gettime(), so both are
 * async-signal-safe. */
static atomic_int_fast64_t svc_signal_ms;
static pthread_mutex_t svc_sig_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned svc_sig_users;
static struct sigaction svc_old_int, svc_old_term;

/* Sets *at to now unless it is set already. */
static void stop_clock(atomic_int_fast64_t *at) {
    int_fast64_t unset = 0;
    atomic_compare_exchange_strong(at, &unset, evk__now_ms());
}

static void svc_on_signal(int sig) {
    (void)sig;
    stop_clock(&svc_signal_ms);
    svc_signalled = 1;
}

static void signals_install(void) {
    pthread_mutex_lock(&svc_sig_lock);
    if (svc_sig_users++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = svc_on_signal;
        sigemptyset(&sa.sa_mask);
        svc_signalled = 0;
        atomic_store(&svc_signal_ms, 0);
        sigaction(SIGINT, &sa, &svc_old_int);
        sigaction(SIGTERM, &sa, &svc_old_term);
    }
    pthread_mutex_unlock(&svc_sig_lock);
}

static void signals_restore(void) {
    pthread_mutex_lock(&svc_sig_lock);
    if (--svc_sig_users == 0) {
        sigaction(SIGINT, &svc_old_int, NULL);
        sigaction(SIGTERM, &svc_old_term, NULL);
    }
    pthread_mutex_unlock(&svc_sig_lock);
}

int svc_stopping(const evk_service_t *svc) {
    return atomic_load(&svc->stop) || svc_signalled;
}

void evk_service_stop(evk_service_t *svc) {
    if (!svc) return;
    stop_clock(&svc->stop_ms);
    atomic_store(&svc->stop, 1);
}

int64_t svc_stop_deadline(const evk_service_t *svc) {
    if (!svc_stopping(svc)) return INT64_MAX;
    int64_t at = atomic_load(&svc->stop_ms);
    int64_t sig = svc_signalled ? atomic_load(&svc_signal_ms) : 0;
    if (!at || (sig && sig < at)) at = sig;
    /* Not set yet only in the instant between the two stores of a stop. */
    return (at ? at : evk__now_ms()) + svc->shutdown_timeout_ms;
}

int svc_call_timeout(const evk_service_t *svc, int slice_ms, int64_t reserve_ms) {
    int64_t left = svc_stop_deadline(svc) - reserve_ms - evk__now_ms();
    return left <= 0 ? 0 : left < slice_ms ? (int)left : slice_ms;
}

int svc_wait(evk_service_t *svc, int64_t ms) {
    int64_t until = evk__now_ms() + ms;
    for (int64_t left = ms; left > 0; left = until - evk__now_ms()) {
        if (svc_stopping(svc)) return 0;
        rd_kafka_poll(svc->producer, (int)(left < SVC_POLL_MS ? left : SVC_POLL_MS));
    }
    return !svc_stopping(svc);
}

int64_t svc_backoff_ms(const evk_service_t *svc, unsigned attempt) {
    int64_t d = svc->retry_backoff_ms;
    for (unsigned i = 1; i < attempt && d < svc->retry_backoff_max_ms; i++)
        d *= 2;
    return d < svc->retry_backoff_max_ms ? d : svc->retry_backoff_max_ms;
}

/* ---- librdkafka clients ---- */

rd_kafka_conf_t *svc_kafka_conf(const evk_service_t *svc, const char *const *kv, char *errstr,
                                size_t errstr_size) {
    rd_kafka_conf_t *conf = evk_config_kafka_conf(svc->cfg, errstr, errstr_size);
    if (!conf) return NULL;
    char why[512];
    for (; *kv; kv += 2) {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "kafka.%s: %s", kv[0], why);
            return NULL;
        }
    }
    return conf;
}

static rd_kafka_t *svc_client(evk_service_t *svc, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                              char *errstr, size_t errstr_size) {
    if (!conf) return NULL;
    char why[512];
    rd_kafka_conf_set_opaque(conf, svc);
    svc_metrics_client_conf(svc, conf);
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "%s: %s",
                  type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
    }
    return rk;
}

/* A member id starts with the client.id on a real cluster, and the range
 * assignor orders members by it: named after the instance, each copy keeps
 * its range (and its stores warm) when another joins or leaves. */
static void svc_client_id(const evk_service_t *svc, const char **kv, size_t *n) {
    if (evk_config_kafka_get(svc->cfg, "client.id")) return;
    kv[(*n)++] = "client.id";
    kv[(*n)++] = svc->txn_id;
}

/* Nothing a transaction writes is readable before its commit, which sends
 * whatever is queued at once: lingering until then costs no latency, and
 * makes a record batch per partition per commit instead of one per 5 ms
 * (librdkafka's default). Fewer, larger batches are cheaper to fetch, and
 * much cheaper to restore from on the dev broker, which returns one batch
 * per partition per fetch. */
static void svc_linger(const evk_service_t *svc, char *buf, size_t size, const char **kv,
                       size_t *n) {
    if (evk_config_kafka_get(svc->cfg, "linger.ms") ||
        evk_config_kafka_get(svc->cfg, "queue.buffering.max.ms") || svc->commit_interval_ms < 5)
        return;
    snprintf(buf, size, "%lld", (long long)svc->commit_interval_ms);
    kv[(*n)++] = "linger.ms";
    kv[(*n)++] = buf;
}

/* init_transactions also fences a predecessor with the same
 * transactional.id and aborts whatever it left open. It is resumed slice
 * by slice for as long as the cluster is out of reach; stopping meanwhile
 * is a clean stop (nothing was consumed). */
static evk_err_t svc_open_producer(evk_service_t *svc, char *errstr, size_t errstr_size) {
    char max_bytes[24], linger[24];
    snprintf(max_bytes, sizeof(max_bytes), "%lld", (long long)svc->message_max_bytes);
    const char *kv[16] = {
        "transactional.id",  svc->txn_id, "enable.idempotence", "true", "acks", "all",
        "message.max.bytes", max_bytes};
    size_t n = 8;
    svc_client_id(svc, kv, &n);
    svc_linger(svc, linger, sizeof(linger), kv, &n);
    kv[n] = NULL;
    rd_kafka_conf_t *conf = svc_kafka_conf(svc, kv, errstr, errstr_size);
    if (conf) rd_kafka_conf_set_dr_msg_cb(conf, svc_delivered);
    svc->producer = svc_client(svc, RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!svc->producer) return EVK_ERR_KAFKA;
    while (!svc_stopping(svc)) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(svc->producer, SVC_CALL_SLICE_MS);
        if (!e) return EVK_OK;
        evk_err_t rc = EVK_OK;
        if (!rd_kafka_error_is_retriable(e))
            rc = evk__fail(rd_kafka_error_is_fatal(e) ? EVK_ERR_FATAL : EVK_ERR_KAFKA, errstr,
                           errstr_size, "init_transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (rc) return rc;
    }
    return EVK_OK;
}

static void svc_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts, void *opaque);

/* Group settings evkit picks unless the kafka group sets them: a killed
 * member's partitions move after session.timeout.ms, which librdkafka
 * defaults to 45 s (see docs/SCALING.md for the trade-off). */
static const char *const svc_group_defaults[] = {"session.timeout.ms", "6000",
                                                 "heartbeat.interval.ms", "1000", NULL};

static evk_err_t svc_open_consumer(evk_service_t *svc, char *errstr, size_t errstr_size) {
    const char *kv[32];
    size_t n = 0;
    for (const char *const *d = svc_group_defaults; *d; d += 2) {
        if (evk_config_kafka_get(svc->cfg, d[0])) continue;
        kv[n++] = d[0];
        kv[n++] = d[1];
    }
    svc_client_id(svc, kv, &n);
    /* Range assigns partition p of every input topic to one member: the
     * co-partitioning that partitioned stores rely on. */
    const char *const fixed[] = {"group.id",
                                 svc->group_id,
                                 "isolation.level",
                                 "read_committed",
                                 "enable.auto.commit",
                                 "false",
                                 "enable.auto.offset.store",
                                 "false",
                                 "auto.offset.reset",
                                 "earliest",
                                 "partition.assignment.strategy",
                                 "range",
                                 NULL};
    for (const char *const *f = fixed; *f; f++)
        kv[n++] = *f;
    if (svc->static_membership) {
        kv[n++] = "group.instance.id";
        kv[n++] = svc->instance_id;
    }
    kv[n] = NULL;
    rd_kafka_conf_t *conf = svc_kafka_conf(svc, kv, errstr, errstr_size);
    if (conf) {
        rd_kafka_conf_set_rebalance_cb(conf, svc_rebalance);
        rd_kafka_conf_set_offset_commit_cb(conf, svc_offsets_committed);
    }
    svc->consumer = svc_client(svc, RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!svc->consumer) return EVK_ERR_KAFKA;
    rd_kafka_poll_set_consumer(svc->consumer);
    return EVK_OK;
}

static evk_err_t svc_subscribe(evk_service_t *svc, char *errstr, size_t errstr_size) {
    if (!svc->nroutes) return EVK_OK;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < svc->nroutes; i++) {
        const char *t = evk_schema_topic(svc->routes[i].schema);
        if (!rd_kafka_topic_partition_list_find(topics, t, RD_KAFKA_PARTITION_UA))
            rd_kafka_topic_partition_list_add(topics, t, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(svc->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err)
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(err));
    return EVK_OK;
}

/* ---- stores and rebalancing ---- */

static void svc_cb_fail(evk_service_t *svc, evk_err_t rc) {
    if (rc && rc != SVC_REPLAY && !svc->cb_err) svc->cb_err = rc;
}

/* "orders[0,1] payments[0,1]" for the logs. */
static void svc_parts_text(const rd_kafka_topic_partition_list_t *parts, char *buf,
                           size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && len < size; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int same = i > 0 && !strcmp(parts->elems[i - 1].topic, p->topic);
        int n = same ? snprintf(buf + len, size - len, ",%d", (int)p->partition)
                     : snprintf(buf + len, size - len, "%s%s[%d", i ? "] " : "", p->topic,
                                (int)p->partition);
        len += n > 0 ? (size_t)n : 0;
    }
    if (parts->cnt && len < size) snprintf(buf + len, size - len, "]");
}

/* The distinct partition numbers of @p parts. */
static evk_err_t svc_hold(evk_service_t *svc, const rd_kafka_topic_partition_list_t *parts) {
    int32_t *held = parts->cnt ? malloc((size_t)parts->cnt * sizeof(*held)) : NULL;
    if (parts->cnt && !held) return EVK_ERR_NOMEM;
    size_t n = 0;
    for (int i = 0; i < parts->cnt; i++) {
        size_t k = 0;
        while (k < n && held[k] != parts->elems[i].partition)
            k++;
        if (k == n) held[n++] = parts->elems[i].partition;
    }
    free(svc->held);
    svc->held = held;
    svc->nheld = n;
    return EVK_OK;
}

/* Partition p of a store's changelog holds the state of input partition p,
 * so every input topic and every changelog must have as many partitions.
 * Anything else would mix up state silently: refuse it. A changelog not
 * created yet is created by the first write with the cluster's default. */
static evk_err_t svc_check_copartitioned(evk_service_t *svc, char *errstr, size_t errstr_size) {
    const char *first = NULL;
    int want = 0;
    int64_t deadline = evk__now_ms() + SVC_METADATA_TIMEOUT_MS;
    for (size_t i = 0; i < svc->nroutes + svc->nstores; i++) {
        const evk_schema_t *s = i < svc->nroutes
                                    ? svc->routes[i].schema
                                    : svc_store_schema(svc->stores[i - svc->nroutes]);
        int n = 0;
        evk_err_t rc = svc_topic_partitions(svc, svc->consumer, evk_schema_topic(s), deadline,
                                            &n, errstr, errstr_size);
        if (rc) return rc;
        if (!n) continue;
        if (!first) {
            first = evk_schema_topic(s);
            want = n;
        } else if (n != want) {
            return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                             "%s: topic %s has %d partitions but %s has %d: a service with "
                             "stores needs the same count on every input topic and changelog "
                             "(docs/SCALING.md)",
                             svc->name, evk_schema_topic(s), n, first, want);
        }
    }
    return EVK_OK;
}

static evk_err_t svc_restore_held(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = svc->nstores ? svc_check_copartitioned(svc, errstr, errstr_size) : EVK_OK;
    return rc ? rc : svc_stores_restore(svc, svc->held, svc->nheld, errstr, errstr_size);
}

/* The stores keep the state of given-up partitions until the next
 * assignment, which may give them back (store.c), unless the last
 * transaction did not settle: then what they hold is not known. */
static void svc_give_up_held(evk_service_t *svc) {
    if (svc->cb_err) svc_stores_drop(svc);
    svc->nheld = 0;
}

/* Close the open transaction before the assignment changes: its offsets may
 * belong to partitions that are leaving. Partitions already lost to another
 * member cannot commit, so their batch is aborted for the new owner to redo. */
static void svc_settle(evk_service_t *svc, int lost) {
    if (svc->cb_err || !svc->txn_open) return;
    evk_err_t rc = lost ? svc_txn_abort(svc, 0, svc->cb_errstr, sizeof(svc->cb_errstr))
                        : svc_txn_commit(svc, 0, svc->cb_errstr, sizeof(svc->cb_errstr));
    svc_cb_fail(svc, rc);
}

/* The stores load the assigned partitions before the first input of them is
 * handled: until now their previous owner may have written them. */
static void svc_assign(evk_service_t *svc, rd_kafka_t *rk,
                       rd_kafka_topic_partition_list_t *parts, int coop) {
    char text[1024], ms[24], records[24];
    int64_t start = evk__now_ms();
    uint64_t restored = atomic_load(&svc->stats.restored);
    svc_settle(svc, 0);
    svc_give_up_held(svc);
    if (!svc->cb_err && svc_hold(svc, parts)) svc_cb_fail(svc, EVK_ERR_NOMEM);
    if (!svc->cb_err)
        svc_cb_fail(svc, svc_restore_held(svc, svc->cb_errstr, sizeof(svc->cb_errstr)));
    rd_kafka_error_t *e = coop ? rd_kafka_incremental_assign(rk, parts) : NULL;
    rd_kafka_resp_err_t err = coop ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_assign(rk, parts);
    if ((e || err) && !svc->cb_err) {
        svc->cb_err = EVK_ERR_KAFKA;
        snprintf(svc->cb_errstr, sizeof(svc->cb_errstr), "assign: %s",
                 e ? rd_kafka_error_string(e) : rd_kafka_err2str(err));
    }
    if (e) rd_kafka_error_destroy(e);
    svc_parts_text(parts, text, sizeof(text));
    snprintf(ms, sizeof(ms), "%lld", (long long)(evk__now_ms() - start));
    snprintf(records, sizeof(records), "%llu",
             (unsigned long long)(atomic_load(&svc->stats.restored) - restored));
    evk_log(EVK_LOG_INFO, svc->name, "partitions assigned", "instance", svc->instance_id,
            "partitions", parts->cnt ? text : "(none)", "restore_ms", ms, "restored_records",
            records, NULL);
    svc->unassigned_since = parts->cnt ? 0 : evk__now_ms();
}

static void svc_revoke(evk_service_t *svc, rd_kafka_t *rk,
                       rd_kafka_topic_partition_list_t *parts, int coop) {
    char text[1024];
    int lost = rd_kafka_assignment_lost(rk);
    svc_settle(svc, lost);
    svc_poison_clear(svc);
    svc_give_up_held(svc);
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) rd_kafka_error_destroy(e); /* leaving anyway */
    } else {
        rd_kafka_assign(rk, NULL);
    }
    svc_parts_text(parts, text, sizeof(text));
    evk_log(EVK_LOG_INFO, svc->name, lost ? "partitions lost" : "partitions revoked",
            "instance", svc->instance_id, "partitions", parts->cnt ? text : "(none)", NULL);
    svc->unassigned_since = evk__now_ms();
}

static void svc_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts, void *opaque) {
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        svc_assign(opaque, rk, parts, coop);
    else
        svc_revoke(opaque, rk, parts, coop);
}

/* A member without partitions says so now and then: the group may be
 * waiting for a departed member's session to time out. */
static void svc_report_waiting(evk_service_t *svc) {
    int64_t now = evk__now_ms();
    if (!svc->unassigned_since || now - svc->unassigned_since < SVC_WAIT_REPORT_MS ||
        now - svc->waiting_logged < SVC_WAIT_REPORT_MS)
        return;
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)((now - svc->unassigned_since) / 1000));
    evk_log(EVK_LOG_INFO, svc->name, "waiting for partitions", "instance", svc->instance_id,
            "group", svc->group_id, "seconds", s, NULL);
    svc->waiting_logged = now;
}

/* ---- handling one input ---- */

static const svc_route_t *svc_route(const evk_service_t *svc, const evk_schema_t *s) {
    for (size_t i = 0; i < svc->nroutes; i++)
        if (svc->routes[i].schema == s) return &svc->routes[i];
    return NULL;
}

static evk_err_t svc_give_up(evk_service_t *svc, const rd_kafka_message_t *m,
                             const evk_event_t *ev, evk_err_t hrc, unsigned attempts,
                             char *errstr, size_t errstr_size) {
    char why[512];
    const char *type = evk_schema_name(evk_event_schema(ev));
    if (hrc == EVK_ERR_RETRY)
        snprintf(why, sizeof(why), "%s handler asked for a retry on all %u attempts", type,
                 attempts);
    else
        snprintf(why, sizeof(why), "%s handler failed: %s", type, evk_err2str(hrc));
    return svc_dead_letter(svc, m, hrc, why, (int)attempts, errstr, errstr_size);
}

/* The handler, timed for the latency histogram and the input's log line. */
static evk_err_t svc_call(evk_service_t *svc, const svc_route_t *r, evk_ctx_t *ctx,
                          const evk_event_t *ev) {
    int64_t start = svc_clock_ns();
    evk_err_t hrc = r->handler(ctx, ev, r->opaque);
    int64_t ns = svc_clock_ns() - start;
    svc_metrics_handler_time(svc->metrics, ns);
    svc->input.handler_ns += ns;
    svc->input.attempts++;
    return hrc;
}

/* Retries wait here, blocking the consumer: retry_max and the backoff
 * settings are checked at creation to keep that well inside
 * max.poll.interval.ms. A stop request during the wait leaves the input
 * unhandled and uncommitted, for the next run. */
static evk_err_t svc_dispatch(evk_service_t *svc, const svc_route_t *r,
                              const rd_kafka_message_t *m, const evk_event_t *ev, char *errstr,
                              size_t errstr_size) {
    for (unsigned attempt = 1;; attempt++) {
        evk_ctx_t ctx = {svc, ev, m->partition, 0};
        size_t mark = svc->nundo;
        evk_err_t hrc = svc_call(svc, r, &ctx, ev);
        if (hrc == EVK_OK) {
            evk_err_t rc = svc_flush_staged(svc, m, errstr, errstr_size);
            if (!rc) svc_advance(svc, m);
            return rc;
        }
        svc_undo_revert(svc, mark);
        svc_unstage_from(svc, 0);
        if (hrc != EVK_ERR_RETRY || attempt >= (unsigned)svc->retry_max)
            return svc_give_up(svc, m, ev, hrc, attempt, errstr, errstr_size);
        atomic_fetch_add(&svc->stats.retries, 1);
        if (!svc_wait(svc, svc_backoff_ms(svc, attempt))) return EVK_OK;
    }
}

/* Types share topics (order-service reads its own OrderConfirmed on
 * `orders`), so an event no handler here takes is normal on its catalog
 * topic: counted by type and said once, at info. On another topic its
 * writer sent it astray: said once per type at warn. Every one has its
 * per-event line at event_log_level. */
static void svc_skipped(evk_service_t *svc, const rd_kafka_message_t *m,
                        const evk_schema_t *s) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    int misrouted = strcmp(topic, evk_schema_topic(s)) != 0;
    if (!svc_metrics_skipped(svc->metrics, evk_schema_type(s), misrouted)) return;
    if (misrouted)
        evk_log(EVK_LOG_WARN, svc->name,
                "skipping events of a type that belongs on another topic", "type",
                evk_schema_type(s), "topic", topic, "belongs_on", evk_schema_topic(s), NULL);
    else
        evk_log(EVK_LOG_INFO, svc->name, "skipping events no handler here takes", "type",
                evk_schema_type(s), "topic", topic, NULL);
}

static evk_err_t svc_handle_input(evk_service_t *svc, const rd_kafka_message_t *m, char *errstr,
                                  size_t errstr_size) {
    const svc_poison_t *p = svc_poison_find(svc, m);
    if (p) return svc_dead_letter(svc, m, p->err, p->reason, p->attempts, errstr, errstr_size);
    char why[512];
    evk_event_t *ev = NULL;
    evk_err_t derr;
    /* A schema registry out of reach (EVK_ERR_IO) says nothing about the
     * message: wait for it rather than dead-letter good data. A stop during
     * the wait leaves the input for the next run. */
    for (unsigned attempt = 1;
         (derr = evk_event_from_message(svc->cat, m, &ev, why, sizeof(why))) == EVK_ERR_IO;
         attempt++) {
        evk_log(EVK_LOG_WARN, svc->name, "decode waits", "reason", why, NULL);
        svc_metrics_registry_wait(svc->metrics, 1);
        if (!svc_wait(svc, svc_backoff_ms(svc, attempt))) return EVK_OK;
    }
    svc_metrics_registry_wait(svc->metrics, 0);
    if (derr) return svc_dead_letter(svc, m, derr, why, 0, errstr, errstr_size);
    svc->input.type = evk_schema_type(evk_event_schema(ev));
    const svc_route_t *r = svc_route(svc, evk_event_schema(ev));
    evk_err_t rc = EVK_OK;
    if (r) {
        rc = svc_dispatch(svc, r, m, ev, errstr, errstr_size);
    } else {
        svc->input.outcome = "skipped"; /* a type nobody here handles */
        svc_skipped(svc, m, evk_event_schema(ev));
        svc_advance(svc, m);
    }
    evk_event_destroy(ev);
    return rc;
}

static void svc_log_input(const evk_service_t *svc, const rd_kafka_message_t *m,
                          evk_log_level_t level) {
    const svc_input_t *in = &svc->input;
    char key[128], partition[16], offset[32], attempts[16], ms[32];
    int key_len = (int)(m->key_len < sizeof(key) ? m->key_len : sizeof(key) - 1);
    snprintf(key, sizeof(key), "%.*s", m->key ? key_len : 0,
             m->key ? (const char *)m->key : "");
    snprintf(partition, sizeof(partition), "%d", (int)m->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)m->offset);
    snprintf(attempts, sizeof(attempts), "%u", in->attempts);
    snprintf(ms, sizeof(ms), "%.3f", (double)in->handler_ns / 1e6);
    /* Without a reason its key is the list's terminator. */
    evk_log(level, svc->name, "event", "type", in->type ? in->type : "unknown", "key", key,
            "topic", rd_kafka_topic_name(m->rkt), "partition", partition, "offset", offset,
            "outcome", in->outcome, "attempts", attempts, "handler_ms", ms,
            in->reason[0] ? "reason" : NULL, in->reason, NULL);
}

/* Logged when handled, not when committed: the inputs of a batch that is
 * aborted and replayed are logged again (but counted once). */
static void svc_input_done(evk_service_t *svc, const rd_kafka_message_t *m) {
    int dead = !strcmp(svc->input.outcome, "dead_letter");
    evk_log_level_t level = svc->event_log_level;
    if (dead && level < EVK_LOG_WARN) level = EVK_LOG_WARN;
    svc_metrics_consumed(svc->metrics, svc->input.type, dead);
    if (evk_log_enabled(level)) svc_log_input(svc, m, level);
}

static evk_err_t svc_handle(evk_service_t *svc, const rd_kafka_message_t *m, char *errstr,
                            size_t errstr_size) {
    evk_err_t rc = svc_txn_begin(svc, errstr, errstr_size);
    if (rc) return rc;
    svc->input = (svc_input_t){.outcome = "ok"};
    uint64_t taken = svc->batch_inputs;
    rc = svc_handle_input(svc, m, errstr, errstr_size);
    /* Not taken: a stop cut its retries short, or its batch is replayed. */
    if (!rc && svc->batch_inputs > taken) svc_input_done(svc, m);
    return rc;
}

static int svc_batch_full(const evk_service_t *svc) {
    return svc->batch_inputs >= (uint64_t)svc->batch_max ||
           evk__now_ms() - svc->batch_start_ms >= svc->commit_interval_ms;
}

static evk_err_t svc_take(evk_service_t *svc, const rd_kafka_message_t *m, char *errstr,
                          size_t errstr_size) {
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(svc->consumer, why, sizeof(why));
        return evk__fail(EVK_ERR_FATAL, errstr, errstr_size, "consumer: %s", why);
    }
    /* Other consumer errors are reports librdkafka recovers from itself. */
    if (m->err || svc_stopping(svc)) return EVK_OK;
    evk_err_t rc = svc_handle(svc, m, errstr, errstr_size);
    if (!rc && svc->txn_open && svc_batch_full(svc))
        rc = svc_txn_commit(svc, 1, errstr, errstr_size);
    return rc == SVC_REPLAY ? EVK_OK : rc;
}

static evk_err_t svc_loop(evk_service_t *svc, char *errstr, size_t errstr_size) {
    while (!svc_stopping(svc)) {
        /* With a batch open, an empty queue means "commit now". */
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(svc->consumer, svc->txn_open ? 0 : SVC_POLL_MS);
        /* Serves the producer's statistics callback, which nothing else
         * does while input flows (and whose reports would pile up). */
        rd_kafka_poll(svc->producer, 0);
        svc_report_waiting(svc);
        evk_err_t rc = EVK_OK;
        if (svc->cb_err)
            rc = evk__fail(svc->cb_err, errstr, errstr_size, "%s", svc->cb_errstr);
        else if (m)
            rc = svc_take(svc, m, errstr, errstr_size);
        else
            rc = svc_txn_commit(svc, 1, errstr, errstr_size);
        if (m) rd_kafka_message_destroy(m);
        if (!rc && !svc->txn_open) rc = svc_stores_standby(svc, errstr, errstr_size);
        if (rc && rc != SVC_REPLAY) return rc;
    }
    return EVK_OK;
}

/* ---- the ready callback ---- */

static evk_err_t svc_ready_once(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = svc_txn_begin(svc, errstr, errstr_size);
    if (rc) return rc;
    evk_ctx_t ctx = {svc, NULL, RD_KAFKA_PARTITION_UA, 0};
    evk_err_t cbrc = svc->ready_cb(&ctx, svc->ready_opaque);
    if (cbrc) {
        rc = svc_txn_abort(svc, 0, errstr, errstr_size);
        if (rc != SVC_REPLAY) return rc;
        return evk__fail(cbrc, errstr, errstr_size, "ready callback failed: %s",
                         evk_err2str(cbrc));
    }
    rc = svc_flush_staged(svc, NULL, errstr, errstr_size);
    return rc ? rc : svc_txn_commit(svc, 1, errstr, errstr_size);
}

static evk_err_t svc_ready(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = SVC_REPLAY;
    while (svc->ready_cb && rc == SVC_REPLAY && !svc_stopping(svc))
        rc = svc_ready_once(svc, errstr, errstr_size);
    return rc == SVC_REPLAY ? EVK_OK : rc;
}

/* ---- run ---- */

static evk_err_t svc_start(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = svc_stores_open(svc, errstr, errstr_size);
    if (!rc) rc = svc_open_producer(svc, errstr, errstr_size);
    if (!rc) rc = svc_open_consumer(svc, errstr, errstr_size);
    if (!rc) rc = svc_ready(svc, errstr, errstr_size);
    if (!rc) rc = svc_subscribe(svc, errstr, errstr_size);
    if (!rc)
        evk_log(EVK_LOG_INFO, svc->name, "joining group", "group", svc->group_id, "instance",
                svc->instance_id, "transactional_id", svc->txn_id, NULL);
    svc->unassigned_since = evk__now_ms();
    return rc;
}

/* What a stop leaves, of its budget, for destroying the clients and
 * exiting once closing them gave up. */
static int64_t svc_exit_reserve(const evk_service_t *svc) {
    return svc->shutdown_timeout_ms / 10;
}

/* An event of the consumer's background close: the revocation goes to the
 * rebalance callback; messages fetched before the close are dropped. */
static void svc_close_event(evk_service_t *svc, rd_kafka_event_t *ev) {
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
        svc_rebalance(svc->consumer, rd_kafka_event_error(ev),
                      rd_kafka_event_topic_partition_list(ev), svc);
    else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR)
        evk_log(EVK_LOG_WARN, svc->name, "closing the consumer", "error",
                rd_kafka_event_error_string(ev), NULL);
    rd_kafka_event_destroy(ev);
}

/* rd_kafka_consumer_close() waits for the group coordinator for as long as
 * session.timeout.ms when it is out of reach: the close runs in the
 * background instead, its events served here until it is done or the stop
 * deadline. */
static void svc_close_consumer(evk_service_t *svc) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(svc->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(svc->consumer, q);
    int ms;
    while (!e && !rd_kafka_consumer_closed(svc->consumer) &&
           (ms = svc_call_timeout(svc, SVC_POLL_MS, svc_exit_reserve(svc))) > 0) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ms);
        if (ev) svc_close_event(svc, ev);
    }
    int closed = !e && rd_kafka_consumer_closed(svc->consumer);
    /* Left to the group to time the member out. */
    if (!closed)
        evk_log(EVK_LOG_WARN, svc->name, "consumer not closed, the group times it out", "error",
                e ? rd_kafka_error_string(e) : "stop deadline", NULL);
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_queue_destroy(q);
    /* rd_kafka_destroy() has no timeout and, with the brokers out of reach,
     * waits for a close still under way: past the deadline the handle is
     * left to the process's exit (its threads end with it). */
    if (closed) rd_kafka_destroy_flags(svc->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* On a stop the batch is committed before the consumer leaves the group;
 * after an error its effects are only reverted in memory: the uncommitted
 * transaction is aborted by the broker or the next instance. Either way the
 * clients are closed within the stop's budget (shutdown_timeout_ms). */
static evk_err_t svc_finish(evk_service_t *svc, evk_err_t rc, char *errstr,
                            size_t errstr_size) {
    evk_service_stop(svc); /* starts the budget's clock after an error too */
    if (!rc) rc = svc_txn_commit(svc, 0, errstr, errstr_size);
    if (rc == SVC_REPLAY) rc = EVK_OK; /* aborted: offsets not committed, redone next run */
    if (svc->txn_open) svc_txn_forget(svc);
    if (svc->consumer) svc_close_consumer(svc);
    if (svc->producer) {
        if (!rc && rd_kafka_flush(svc->producer, svc_call_timeout(svc, SVC_FLUSH_TIMEOUT_MS,
                                                                  svc_exit_reserve(svc))))
            rc = evk__fail(EVK_ERR_TIMEOUT, errstr, errstr_size, "producer flush timed out");
        rd_kafka_destroy(svc->producer);
    }
    svc->consumer = svc->producer = NULL;
    svc->cb_err = EVK_OK;
    svc->offsets_mode = SVC_OFFSETS_UNKNOWN;
    svc_poison_clear(svc);
    return rc;
}

evk_err_t evk_service_run(evk_service_t *svc, char *errstr, size_t errstr_size) {
    if (!svc || svc->consumer || svc->producer)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "service: NULL or already running");
    signals_install();
    evk_err_t rc = svc_settings_check(svc, errstr, errstr_size);
    if (!rc) rc = svc_metrics_start(svc, errstr, errstr_size);
    if (!rc) rc = svc_start(svc, errstr, errstr_size);
    if (!rc) atomic_store(&svc->metrics->ready, 1);
    if (!rc) rc = svc_loop(svc, errstr, errstr_size);
    svc_metrics_stop(svc); /* before svc_finish() destroys the clients health reads */
    rc = svc_finish(svc, rc, errstr, errstr_size);
    signals_restore();
    /* Cleared only now, so that a stop requested before the run began is
     * not lost. */
    atomic_store(&svc->stop, 0);
    atomic_store(&svc->stop_ms, 0);
    return rc;
}

/* ---- creation and settings ---- */

static evk_err_t svc_setting(evk_service_t *svc, const char *key, int64_t def, int64_t min,
                             int64_t *out, char *errstr, size_t errstr_size) {
    char path[512];
    snprintf(path, sizeof(path), "%s.%s", svc->name, key);
    evk_err_t rc = evk_config_get_int(svc->cfg, path, def, out, errstr, errstr_size);
    if (!rc && *out < min)
        rc = evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                       "%s: must be at least %lld, got %lld", path, (long long)min,
                       (long long)*out);
    return rc;
}

static int64_t kafka_ms(const evk_service_t *svc, const char *name, int64_t def) {
    const char *v = evk_config_kafka_get(svc->cfg, name);
    return v ? strtoll(v, NULL, 10) : def;
}

/* A retrying handler keeps the consumer from polling, so the worst case of
 * one input must stay well inside max.poll.interval.ms, or the group would
 * evict the service in the middle of it and hand the input to another
 * member, which would meet the same fate. */
static int64_t svc_retry_budget_ms(const evk_service_t *svc) {
    return kafka_ms(svc, "max.poll.interval.ms", SVC_MAX_POLL_DEFAULT_MS) / 2;
}

/* How long one input can hold the consumer: retry_max handler calls of up
 * to @p handler_ms each and the backoffs between them. Counting stops once
 * past @p limit, so that a huge retry_max costs nothing. */
static int64_t svc_worst_case_ms(const evk_service_t *svc, int64_t handler_ms, int64_t limit) {
    if (!handler_ms && !svc->retry_backoff_ms) return 0;
    int64_t total = 0;
    for (int64_t a = 1; a <= svc->retry_max && total <= limit; a++)
        total += handler_ms + (a < svc->retry_max ? svc_backoff_ms(svc, (unsigned)a) : 0);
    return total;
}

static evk_err_t svc_check_retry_budget(const evk_service_t *svc, char *errstr,
                                        size_t errstr_size) {
    int64_t budget = svc_retry_budget_ms(svc);
    if (svc_worst_case_ms(svc, 0, budget) > budget)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: retry_max and retry_backoff_max_ms allow backing off more than "
                         "half of max.poll.interval.ms (%lld ms) for one event",
                         svc->name, (long long)budget * 2);
    return EVK_OK;
}

evk_err_t evk_service_check_handler_time(const evk_service_t *svc, const char *setting,
                                         int64_t handler_max_ms, char *errstr,
                                         size_t errstr_size) {
    if (!svc || !setting || handler_max_ms < 0)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "service: a setting name and a handler time of at least 0 are "
                         "required");
    int64_t budget = svc_retry_budget_ms(svc);
    if (svc_worst_case_ms(svc, handler_max_ms, budget) <= budget) return EVK_OK;
    return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                     "%s.retry_max (%lld) tries of up to %s (%lld ms) each, with the "
                     "backoffs between them, can hold one event longer than half of "
                     "max.poll.interval.ms (%lld ms): the group would evict the service in "
                     "the middle of it; lower them or raise kafka.max.poll.interval.ms",
                     svc->name, (long long)svc->retry_max, setting, (long long)handler_max_ms,
                     (long long)budget * 2);
}

/* message.max.bytes is set rather than assumed: librdkafka's default,
 * below a default broker's and topic's max.message.bytes (1048588), so that
 * what the producer takes the cluster takes too; kafka.message.max.bytes
 * changes it. Dead letters are cut to fit it, or the smaller
 * dead_letter_max_bytes of a DLQ topic with a lower limit. */
static evk_err_t svc_record_limits(evk_service_t *svc, char *errstr, size_t errstr_size) {
    svc->message_max_bytes = kafka_ms(svc, "message.max.bytes", SVC_MESSAGE_MAX_DEFAULT);
    evk_err_t rc = svc_setting(svc, "dead_letter_max_bytes", svc->message_max_bytes,
                               SVC_DEAD_LETTER_MIN_BYTES, &svc->dead_letter_max_bytes, errstr,
                               errstr_size);
    if (!rc && svc->dead_letter_max_bytes > svc->message_max_bytes)
        rc = evk__fail(
            EVK_ERR_CONFIG, errstr, errstr_size,
            "%s.dead_letter_max_bytes: must not exceed kafka.message.max.bytes (%lld)",
            svc->name, (long long)svc->message_max_bytes);
    return rc;
}

static evk_err_t svc_event_log_level(evk_service_t *svc, char *errstr, size_t errstr_size) {
    char path[512];
    snprintf(path, sizeof(path), "%s.event_log_level", svc->name);
    const char *v = evk_config_get_string(svc->cfg, path, "debug");
    if (evk__log_level_from_name(v, &svc->event_log_level))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: unknown log level \"%s\" (debug, info, warn, error)", path, v);
    return EVK_OK;
}

/* batch_max bounds what one commit carries: with 1000, inventory-service
 * (three topics in, every order line crossing two of them) saturated at
 * ~4,000 orders/s on the dev broker, with 5000 at 5,600-6,200, and more
 * gained nothing (docs/PERFORMANCE.md). Under load a batch still closes
 * after commit_interval_ms. */
static evk_err_t svc_settings(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = svc_setting(svc, "batch_max", 5000, 1, &svc->batch_max, errstr, errstr_size);
    if (!rc)
        rc = svc_setting(svc, "commit_interval_ms", 100, 0, &svc->commit_interval_ms, errstr,
                         errstr_size);
    if (!rc) rc = svc_setting(svc, "retry_max", 5, 1, &svc->retry_max, errstr, errstr_size);
    if (!rc)
        rc = svc_setting(svc, "retry_backoff_ms", 100, 0, &svc->retry_backoff_ms, errstr,
                         errstr_size);
    if (!rc)
        rc = svc_setting(svc, "retry_backoff_max_ms", 5000, svc->retry_backoff_ms,
                         &svc->retry_backoff_max_ms, errstr, errstr_size);
    if (!rc) rc = svc_check_retry_budget(svc, errstr, errstr_size);
    if (!rc)
        rc = svc_setting(svc, "shutdown_timeout_ms", 10000, 1000, &svc->shutdown_timeout_ms,
                         errstr, errstr_size);
    if (!rc) rc = svc_event_log_level(svc, errstr, errstr_size);
    if (!rc) rc = svc_record_limits(svc, errstr, errstr_size);
    if (!rc) rc = svc_metrics_settings(svc, errstr, errstr_size);
    /* Restore reads up to the last stable offset, which an open transaction
     * of a crashed writer holds back until the broker times it out. */
    svc->restore_timeout_ms =
        2 * kafka_ms(svc, "transaction.timeout.ms", SVC_TXN_TIMEOUT_DEFAULT_MS);
    return rc;
}

static evk_err_t svc_ids(evk_service_t *svc, char *errstr, size_t errstr_size) {
    char path[512];
    snprintf(path, sizeof(path), "%s.group_id", svc->name);
    svc->group_id = evk__strdup0(evk_config_get_string(svc->cfg, path, svc->name));
    if (!svc->group_id) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    snprintf(path, sizeof(path), "%s.static_membership", svc->name);
    evk_err_t rc =
        evk_config_get_bool(svc->cfg, path, 0, &svc->static_membership, errstr, errstr_size);
    if (!rc) rc = svc_instance_claim(svc, errstr, errstr_size);
    if (rc) return rc;
    size_t n = strlen(svc->group_id) + strlen(svc->instance_id) + 2;
    if (!(svc->txn_id = malloc(n)))
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    snprintf(svc->txn_id, n, "%s-%s", svc->group_id, svc->instance_id);
    return EVK_OK;
}

evk_err_t evk_service_new(const char *name, const evk_config_t *cfg, const evk_catalog_t *cat,
                          evk_service_t **out, char *errstr, size_t errstr_size) {
    if (!name || !*name || !cfg || !cat || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "service: name, config, catalog and out are required");
    evk_service_t *svc = calloc(1, sizeof(*svc));
    if (!svc) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    svc->cfg = cfg;
    svc->cat = cat;
    svc->lock_fd = -1;
    svc->name = strdup(name);
    svc->next = rd_kafka_topic_partition_list_new(8);
    svc->first = rd_kafka_topic_partition_list_new(8);
    svc->metrics = svc_metrics_new(name, cat);
    evk_err_t rc = svc->name && svc->metrics
                       ? svc_ids(svc, errstr, errstr_size)
                       : evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!rc) rc = svc_settings(svc, errstr, errstr_size);
    if (rc) {
        evk_service_destroy(svc);
        return rc;
    }
    *out = svc;
    return EVK_OK;
}

evk_err_t evk_service_on(evk_service_t *svc, const char *type, evk_handler_t *handler,
                         void *opaque, char *errstr, size_t errstr_size) {
    if (!svc || !type || !handler)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "service: type and handler are required");
    const evk_schema_t *s = evk_catalog_find(svc->cat, type);
    if (!s)
        return evk__fail(EVK_ERR_UNKNOWN_TYPE, errstr, errstr_size,
                         "%s: event type \"%s\" is not in the catalog", svc->name, type);
    if (svc_route(svc, s))
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "%s: %s already has a handler", svc->name, evk_schema_type(s));
    svc_route_t *r = realloc(svc->routes, (svc->nroutes + 1) * sizeof(*r));
    if (!r) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    svc->routes = r;
    svc->routes[svc->nroutes++] = (svc_route_t){s, handler, opaque};
    return EVK_OK;
}

evk_err_t evk_service_add_store(evk_service_t *svc, const char *type, evk_store_t **out,
                                char *errstr, size_t errstr_size) {
    if (!svc || !type || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "service: type and out are required");
    const evk_schema_t *s = evk_catalog_find(svc->cat, type);
    if (!s)
        return evk__fail(EVK_ERR_UNKNOWN_TYPE, errstr, errstr_size,
                         "%s: event type \"%s\" is not in the catalog", svc->name, type);
    for (size_t i = 0; i < svc->nstores; i++)
        if (svc_store_schema(svc->stores[i]) == s)
            return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                             "%s: a store of %s exists already", svc->name, evk_schema_type(s));
    /* Only a compacted changelog stays bounded; the catalog is what tells
     * evk-admin to create it so. */
    if (!evk_schema_changelog(s))
        evk_log(EVK_LOG_WARN, svc->name, "store type not marked changelog", "type",
                evk_schema_type(s), "fix", "changelog = true in its catalog entry", NULL);
    evk_store_t **arr = realloc(svc->stores, (svc->nstores + 1) * sizeof(*arr));
    if (!arr) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    svc->stores = arr;
    if (!(arr[svc->nstores] = svc_store_new(svc, s)))
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    *out = arr[svc->nstores++];
    return EVK_OK;
}

void evk_service_on_ready(evk_service_t *svc, evk_ready_cb_t *cb, void *opaque) {
    if (!svc) return;
    svc->ready_cb = cb;
    svc->ready_opaque = opaque;
}

void evk_service_destroy(evk_service_t *svc) {
    if (!svc) return;
    svc_txn_state_free(svc); /* before the stores: undo entries point into them */
    svc_stores_close(svc);
    for (size_t i = 0; i < svc->nstores; i++)
        svc_store_destroy(svc->stores[i]);
    svc_disk_close(svc->disk);
    free(svc->stores);
    free(svc->routes);
    free(svc->name);
    free(svc->group_id);
    free(svc->txn_id);
    free(svc->held);
    svc_instance_release(svc);
    svc_metrics_destroy(svc->metrics);
    free(svc);
}

const char *evk_service_name(const evk_service_t *svc) {
    return svc ? svc->name : NULL;
}

void evk_service_stats(const evk_service_t *svc, evk_service_stats_t *out) {
    if (!svc || !out) return;
    out->consumed = atomic_load(&svc->stats.consumed);
    out->produced = atomic_load(&svc->stats.produced);
    out->dead_letters = atomic_load(&svc->stats.dead_letters);
    out->retries = atomic_load(&svc->stats.retries);
    out->commits = atomic_load(&svc->stats.commits);
    out->aborts = atomic_load(&svc->stats.aborts);
    out->restored = atomic_load(&svc->stats.restored);
    out->standby = atomic_load(&svc->stats.standby);
}

/* ---- handler context ---- */

evk_event_t *evk_ctx_new_event(evk_ctx_t *ctx, const char *type) {
    const evk_schema_t *s = ctx && type ? evk_catalog_find(ctx->svc->cat, type) : NULL;
    if (!s) return NULL;
    evk_event_t *ev = ctx->cause ? evk_event_new_caused_by(s, ctx->cause) : evk_event_new(s);
    char label[16];
    snprintf(label, sizeof(label), "#%u", ctx->emitted++);
    /* The n-th event of a handler call takes an id derived from its cause
     * and n: a replay of the input makes the same events, ids included. */
    const char *cause_id = ctx->cause ? evk_event_id(ctx->cause) : NULL;
    if (ev && ((cause_id && evk_event_derive_id(ev, cause_id, label)) ||
               evk_event_set_source(ev, ctx->svc->name))) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

evk_err_t evk_ctx_emit(evk_ctx_t *ctx, evk_event_t *ev) {
    evk_err_t rc =
        ctx && ev ? svc_stage(ctx->svc, ev, RD_KAFKA_PARTITION_UA, 1) : EVK_ERR_INVALID_ARG;
    evk_event_destroy(ev);
    return rc;
}

const evk_config_t *evk_ctx_config(const evk_ctx_t *ctx) {
    return ctx ? ctx->svc->cfg : NULL;
}

const evk_catalog_t *evk_ctx_catalog(const evk_ctx_t *ctx) {
    return ctx ? ctx->svc->cat : NULL;
}
