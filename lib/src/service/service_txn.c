/* The service's transaction: staged outputs, dead letters, input offsets,
 * the store undo log, and librdkafka's transactional error model
 * (retriable -> call again, abortable -> abort and replay, fatal -> stop). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "metrics.h"
#include "service_int.h"

/* How long rewinding waits for the fetcher to drop prefetched messages. */
#define SVC_SEEK_TIMEOUT_MS 10000

void *svc_grow(void *arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return arr;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(arr, n * elem);
    if (p) *cap = n;
    return p;
}

/* ---- errors ---- */

static evk_err_t txn_error(rd_kafka_error_t *e, const char *what, char *errstr,
                           size_t errstr_size) {
    evk_err_t rc = rd_kafka_error_is_fatal(e) ? EVK_ERR_FATAL : EVK_ERR_KAFKA;
    evk__fail(rc, errstr, errstr_size, "%s: %s", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return rc;
}

/* A retriable error that txn_retry() gave back: the stop deadline passed
 * with the cluster out of reach. The open transaction is abandoned, which
 * loses nothing: the broker aborts it (or the next instance fences it) and
 * the batch is redone. */
static evk_err_t txn_abandoned(evk_service_t *svc, rd_kafka_error_t *e, const char *what,
                               char *errstr, size_t errstr_size) {
    evk__fail(EVK_ERR_TIMEOUT, errstr, errstr_size,
              "stop: the open batch of %llu input(s) was not %s within shutdown_timeout_ms "
              "(%lld ms), abandoned: the next instance redoes it (%s)",
              (unsigned long long)svc->batch_inputs, what, (long long)svc->shutdown_timeout_ms,
              rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return EVK_ERR_TIMEOUT;
}

typedef rd_kafka_error_t *(txn_op_t)(evk_service_t *svc, const void *arg, int timeout_ms);

/* What a stop leaves, of its budget, for closing the clients once the
 * transaction calls gave up. */
static int64_t close_reserve(const evk_service_t *svc) {
    return svc->shutdown_timeout_ms / 4;
}

/* Retriable errors (timeouts, a coordinator that moved or is out of reach)
 * are retried, slice by slice, for as long as it takes: an outage must not
 * stop the service. Only a stop request ends that, at the point of its
 * deadline that leaves close_reserve() for closing the clients; the
 * transaction left open is then aborted by the broker, or fenced by the
 * next instance, and its batch redone. Commit and abort resume what the
 * timed-out call left in progress. */
static rd_kafka_error_t *txn_retry(evk_service_t *svc, txn_op_t *op, const void *arg) {
    for (;;) {
        int64_t reserve = close_reserve(svc);
        rd_kafka_error_t *e = op(svc, arg, svc_call_timeout(svc, SVC_CALL_SLICE_MS, reserve));
        if (!e || !rd_kafka_error_is_retriable(e)) return e;
        if (!svc_call_timeout(svc, SVC_CALL_SLICE_MS, reserve)) return e;
        rd_kafka_error_destroy(e);
        /* Most retriable errors are timeouts that already waited; the rest
         * must not spin. */
        rd_kafka_poll(svc->producer, svc_call_timeout(svc, 100, reserve));
    }
}

static rd_kafka_error_t *op_send_offsets(evk_service_t *svc, const void *cgmd, int timeout_ms) {
    return rd_kafka_send_offsets_to_transaction(svc->producer, svc->next, cgmd, timeout_ms);
}

static rd_kafka_error_t *op_commit(evk_service_t *svc, const void *arg, int timeout_ms) {
    (void)arg;
    return rd_kafka_commit_transaction(svc->producer, timeout_ms);
}

static rd_kafka_error_t *op_abort(evk_service_t *svc, const void *arg, int timeout_ms) {
    (void)arg;
    return rd_kafka_abort_transaction(svc->producer, timeout_ms);
}

/* ---- batch state ---- */

static void partitions_reset(rd_kafka_topic_partition_list_t **list) {
    rd_kafka_topic_partition_list_destroy(*list);
    *list = rd_kafka_topic_partition_list_new(8);
}

static void batch_reset(evk_service_t *svc) {
    svc->txn_open = 0;
    partitions_reset(&svc->next);
    partitions_reset(&svc->first);
    svc->batch_inputs = svc->batch_outputs = svc->batch_dead = 0;
    svc->batch_dlq_failed = 0;
}

evk_err_t svc_txn_begin(evk_service_t *svc, char *errstr, size_t errstr_size) {
    if (svc->txn_open) return EVK_OK;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(svc->producer);
    if (e) return txn_error(e, "begin_transaction", errstr, errstr_size);
    svc->txn_open = 1;
    svc->batch_start_ms = evk__now_ms();
    return EVK_OK;
}

/* The batch's rewind point for @p msg's partition, if the batch has none
 * yet: an input whose outputs failed is not advanced past, and without this
 * the abort would not rewind to it when it is its partition's first. */
static void hold(evk_service_t *svc, const rd_kafka_message_t *msg) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    if (!rd_kafka_topic_partition_list_find(svc->first, topic, msg->partition))
        rd_kafka_topic_partition_list_add(svc->first, topic, msg->partition)->offset =
            msg->offset;
}

void svc_advance(evk_service_t *svc, const rd_kafka_message_t *msg) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(svc->next, topic, msg->partition);
    if (!p) {
        rd_kafka_topic_partition_list_add(svc->first, topic, msg->partition)->offset =
            msg->offset;
        p = rd_kafka_topic_partition_list_add(svc->next, topic, msg->partition);
    }
    p->offset = msg->offset + 1;
    svc->batch_inputs++;
}

/* ---- undo log ---- */

evk_err_t svc_undo_reserve(evk_service_t *svc) {
    svc_undo_t *u = svc_grow(svc->undo, &svc->undo_cap, svc->nundo + 1, sizeof(*u));
    if (!u) return EVK_ERR_NOMEM;
    svc->undo = u;
    return EVK_OK;
}

void svc_undo_push(evk_service_t *svc, evk_store_t *st, char *key, evk_event_t *prev,
                   int had_entry) {
    svc->undo[svc->nundo++] = (svc_undo_t){st, key, prev, had_entry};
}

/* Newest first, so that each key gets back the value it had before. */
void svc_undo_revert(evk_service_t *svc, size_t mark) {
    while (svc->nundo > mark) {
        svc_undo_t *u = &svc->undo[--svc->nundo];
        svc_store_unset(u->store, u->key, u->prev, u->had_entry);
        free(u->key);
    }
}

static void undo_forget(evk_service_t *svc) {
    for (size_t i = 0; i < svc->nundo; i++) {
        evk_event_destroy(svc->undo[i].prev);
        free(svc->undo[i].key);
    }
    svc->nundo = 0;
}

/* ---- staging ---- */

evk_err_t svc_stage(evk_service_t *svc, evk_event_t *ev, int32_t partition, int is_output) {
    if (!evk_event_source(ev) && evk_event_set_source(ev, svc->name)) return EVK_ERR_NOMEM;
    svc_staged_t *arr = svc_grow(svc->staged, &svc->staged_cap, svc->nstaged + 1, sizeof(*arr));
    if (!arr) return EVK_ERR_NOMEM;
    svc->staged = arr;
    svc_staged_t s = {.topic = evk_schema_topic(evk_event_schema(ev)),
                      .type = evk_schema_type(evk_event_schema(ev)),
                      .key = evk__strdup0(evk_event_key(ev)),
                      .partition = partition,
                      .is_output = is_output};
    evk_err_t rc = evk_event_key(ev) && !s.key ? EVK_ERR_NOMEM : EVK_OK;
    if (!rc) rc = evk_event_encode(ev, &s.value, &s.len);
    if (!rc) rc = evk_event_headers(ev, &s.headers);
    if (rc) {
        free(s.key);
        free(s.value);
        return rc;
    }
    svc->staged[svc->nstaged++] = s;
    return EVK_OK;
}

evk_err_t svc_stage_tombstone(evk_service_t *svc, const evk_schema_t *schema, const char *key,
                              int32_t partition) {
    svc_staged_t *arr = svc_grow(svc->staged, &svc->staged_cap, svc->nstaged + 1, sizeof(*arr));
    if (!arr) return EVK_ERR_NOMEM;
    svc->staged = arr;
    svc_staged_t s = {.topic = evk_schema_topic(schema),
                      .type = evk_schema_type(schema),
                      .key = strdup(key),
                      .partition = partition};
    if (!s.key) return EVK_ERR_NOMEM;
    svc->staged[svc->nstaged++] = s;
    return EVK_OK;
}

void svc_unstage_from(evk_service_t *svc, size_t from) {
    while (svc->nstaged > from) {
        svc_staged_t *s = &svc->staged[--svc->nstaged];
        free(s->key);
        free(s->value);
        if (s->headers) rd_kafka_headers_destroy(s->headers);
    }
}

/* ---- poison inputs ---- */

static int poison_is(const svc_poison_t *p, const char *topic, int32_t partition) {
    return p->partition == partition && !strcmp(p->topic, topic);
}

const svc_poison_t *svc_poison_find(const evk_service_t *svc, const rd_kafka_message_t *msg) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    for (size_t i = 0; i < svc->npoison; i++)
        if (svc->poison[i].offset == msg->offset &&
            poison_is(&svc->poison[i], topic, msg->partition))
            return &svc->poison[i];
    return NULL;
}

static evk_err_t poison_add(evk_service_t *svc, const rd_kafka_message_t *msg,
                            const char *reason) {
    svc_poison_t *arr = svc_grow(svc->poison, &svc->poison_cap, svc->npoison + 1, sizeof(*arr));
    if (!arr) return EVK_ERR_NOMEM;
    svc->poison = arr;
    svc_poison_t p = {.topic = strdup(rd_kafka_topic_name(msg->rkt)),
                      .partition = msg->partition,
                      .offset = msg->offset,
                      .err = EVK_ERR_DELIVERY,
                      .reason = strdup(reason),
                      .attempts = 1};
    if (!p.topic || !p.reason) {
        free(p.topic);
        free(p.reason);
        return EVK_ERR_NOMEM;
    }
    svc->poison[svc->npoison++] = p;
    return EVK_OK;
}

static void poison_remove(evk_service_t *svc, size_t i) {
    free(svc->poison[i].topic);
    free(svc->poison[i].reason);
    svc->poison[i] = svc->poison[--svc->npoison];
}

void svc_poison_clear(evk_service_t *svc) {
    while (svc->npoison)
        poison_remove(svc, 0);
}

/* Entries behind the committed offsets have been dead-lettered for good. */
static void poison_prune(evk_service_t *svc) {
    for (size_t i = svc->npoison; i-- > 0;) {
        const svc_poison_t *p = &svc->poison[i];
        const rd_kafka_topic_partition_t *c =
            rd_kafka_topic_partition_list_find(svc->next, p->topic, p->partition);
        if (c && p->offset < c->offset) poison_remove(svc, i);
    }
}

/* ---- producing ---- */

/* @p value (malloc()ed) and @p headers are always consumed. */
static rd_kafka_resp_err_t produce(evk_service_t *svc, const char *topic, int32_t partition,
                                   const void *key, size_t key_len, void *value, size_t len,
                                   rd_kafka_headers_t *headers) {
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(
                svc->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(headers),
                RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        if (!svc_wait(svc, 100)) break; /* a stop does not wait for room (outage) */
    if (err) {
        free(value);
        if (headers) rd_kafka_headers_destroy(headers);
    }
    return err;
}

/* A produce call failed at once. A fatal error stops the service. A record
 * too large for the cluster is a property of the input that caused it: the
 * input is marked poison and the batch replayed, so that it is
 * dead-lettered on the second pass (a record of the ready callback too
 * large leaves nothing to do but stop). Anything else (the transaction failed already,
 * the topic is unknown or refused for now) aborts and replays the batch,
 * paced, until the cluster lets it through. */
static evk_err_t produce_failed(evk_service_t *svc, rd_kafka_resp_err_t err,
                                const rd_kafka_message_t *cause, const char *topic,
                                char *errstr, size_t errstr_size) {
    char why[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(svc->producer, why, sizeof(why));
        return evk__fail(EVK_ERR_FATAL, errstr, errstr_size, "produce to %s: %s", topic, why);
    }
    snprintf(why, sizeof(why), "produce to %s: %s", topic, rd_kafka_err2str(err));
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        if (!cause) return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "%s", why);
        if (poison_add(svc, cause, why))
            return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "%s: out of memory", why);
    }
    return svc_txn_abort(svc, 1, errstr, errstr_size);
}

evk_err_t svc_flush_staged(evk_service_t *svc, const rd_kafka_message_t *cause, char *errstr,
                           size_t errstr_size) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *failed = NULL;
    for (size_t i = 0; i < svc->nstaged && !err; i++) {
        svc_staged_t *s = &svc->staged[i];
        err = produce(svc, s->topic, s->partition, s->key, s->key ? strlen(s->key) : 0,
                      s->value, s->len, s->headers);
        s->value = NULL;
        s->headers = NULL;
        if (err) {
            failed = s->topic;
        } else if (s->is_output) {
            svc->batch_outputs++;
            svc_metrics_produced(svc->metrics, s->type);
        }
    }
    svc_unstage_from(svc, 0);
    if (!err) return EVK_OK;
    if (cause) hold(svc, cause);
    return produce_failed(svc, err, cause, failed, errstr, errstr_size);
}

/* ---- dead letters ---- */

/* librdkafka counts a record against message.max.bytes as key + value +
 * headers (name and value, each with a length varint) + at most 36 bytes of
 * framing; these estimates are a little larger. */
#define SVC_RECORD_OVERHEAD 64
#define SVC_HEADER_OVERHEAD 10

static size_t record_size(const rd_kafka_headers_t *h, size_t key_len, size_t len) {
    size_t n = SVC_RECORD_OVERHEAD + key_len + len;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &value, &size); i++)
        n += SVC_HEADER_OVERHEAD + strlen(name) + size;
    return n;
}

static void add_size(rd_kafka_headers_t *h, const char *name, size_t n) {
    char v[24];
    snprintf(v, sizeof(v), "%zu", n);
    rd_kafka_header_add(h, name, -1, v, -1);
}

/* The input's headers (none if @p bare) and the evk_dlq_* ones. */
static rd_kafka_headers_t *dead_letter_headers(const evk_service_t *svc,
                                               const rd_kafka_message_t *msg, evk_err_t err,
                                               const char *reason, int attempts, int bare) {
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *h = bare || rd_kafka_message_headers(msg, &orig)
                                ? rd_kafka_headers_new(10)
                                : rd_kafka_headers_copy(orig);
    char partition[16], offset[32], tries[16];
    snprintf(partition, sizeof(partition), "%d", (int)msg->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)msg->offset);
    snprintf(tries, sizeof(tries), "%d", attempts);
    const char *add[][2] = {{"evk_dlq_reason", reason},
                            {"evk_dlq_error", evk_err_name(err)},
                            {"evk_dlq_topic", rd_kafka_topic_name(msg->rkt)},
                            {"evk_dlq_partition", partition},
                            {"evk_dlq_offset", offset},
                            {"evk_dlq_service", svc->name},
                            {"evk_dlq_attempts", tries}};
    for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++)
        rd_kafka_header_add(h, add[i][0], -1, add[i][1], -1);
    return h;
}

typedef struct {
    rd_kafka_headers_t *headers;
    size_t key_len, len; /* of the input's key and value, the first bytes */
} svc_dlq_record_t;

/* What a header noting a size adds to a record, at most. */
static size_t note_size(const char *name) {
    return SVC_HEADER_OVERHEAD + strlen(name) + 20;
}

/* The dead letter of @p msg within dead_letter_max_bytes: all of it when
 * that fits (the input plus the evk_dlq_* headers can exceed what the
 * broker took). Else the value is cut to what fits; if key and headers
 * leave it no room, the input's headers are left out first and then the
 * key is cut. Each cut is noted with the original size (evk_dlq_truncated,
 * evk_dlq_headers_dropped: their count, evk_dlq_key_truncated); the whole
 * input stays where evk_dlq_topic/partition/offset say. */
static svc_dlq_record_t dead_letter_fit(const evk_service_t *svc, const rd_kafka_message_t *msg,
                                        evk_err_t err, const char *reason, int attempts) {
    size_t limit = (size_t)svc->dead_letter_max_bytes, len = msg->len;
    size_t key_len = msg->key ? msg->key_len : 0, cut = note_size("evk_dlq_truncated");
    rd_kafka_headers_t *orig, *h = dead_letter_headers(svc, msg, err, reason, attempts, 0);
    if (record_size(h, key_len, len) > limit && record_size(h, key_len, cut) > limit &&
        !rd_kafka_message_headers(msg, &orig)) {
        rd_kafka_headers_destroy(h);
        h = dead_letter_headers(svc, msg, err, reason, attempts, 1);
        add_size(h, "evk_dlq_headers_dropped", rd_kafka_header_cnt(orig));
    }
    if (record_size(h, key_len, len) > limit && record_size(h, key_len, cut) > limit) {
        add_size(h, "evk_dlq_key_truncated", key_len);
        size_t rest = record_size(h, 0, cut);
        key_len = rest < limit ? limit - rest : 0;
    }
    if (record_size(h, key_len, len) > limit) {
        add_size(h, "evk_dlq_truncated", len);
        size_t used = record_size(h, key_len, 0);
        len = used < limit ? limit - used : 0;
    }
    return (svc_dlq_record_t){h, key_len, len};
}

/* A dead letter of the open batch was refused: the batch is aborted, and
 * svc_txn_abort() counts it. */
static void dead_letter_failed(evk_service_t *svc, const char *topic, rd_kafka_resp_err_t err) {
    svc->batch_dlq_failed = 1;
    snprintf(svc->dlq_why, sizeof(svc->dlq_why), "%.128s: %s", topic, rd_kafka_err2str(err));
}

/* Served on the loop's thread (poll, flush, commit and abort serve it). A
 * record that failed makes librdkafka's transaction abortable, so only the
 * reason is kept here; records purged by an abort did not fail themselves. */
void svc_delivered(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    const char *topic = rd_kafka_topic_name(msg->rkt);
    size_t n = strlen(topic);
    if (!msg->err) svc_stores_written(opaque, msg);
    if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
        msg->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT && n > 4 &&
        !strcmp(topic + n - 4, ".dlq"))
        dead_letter_failed(opaque, topic, msg->err);
}

/* A batch aborted because a dead letter of it could not be written is
 * replayed, paced like any abort, so the dead letter is tried again. After
 * retry_max such batches in a row the service alarms (an error log,
 * /healthz 503, evk_dead_letters_blocked) and keeps trying: the inputs
 * behind it wait, the service does not stop. */
static void dead_letters_failed(evk_service_t *svc) {
    unsigned n = ++svc->dlq_failures_in_row;
    char tries[16];
    snprintf(tries, sizeof(tries), "%u", n);
    svc_metrics_dead_letter_failed(svc->metrics, svc->dlq_why, n >= (unsigned)svc->retry_max);
    if (n == (unsigned)svc->retry_max)
        evk_log(EVK_LOG_ERROR, svc->name, "dead letters keep failing, their inputs wait",
                "error", svc->dlq_why, "attempts", tries, NULL);
    else
        evk_log(EVK_LOG_WARN, svc->name, "dead letter not written, batch replayed", "error",
                svc->dlq_why, "attempts", tries, NULL);
}

/* A batch with dead letters committed: any alarm is over. */
static void dead_letters_written(evk_service_t *svc) {
    if (!svc->batch_dead || !svc->dlq_failures_in_row) return;
    svc->dlq_failures_in_row = 0;
    svc_metrics_dead_letters_ok(svc->metrics);
    evk_log(EVK_LOG_INFO, svc->name, "dead letters written again", NULL);
}

evk_err_t svc_dead_letter(evk_service_t *svc, const rd_kafka_message_t *msg, evk_err_t err,
                          const char *reason, int attempts, char *errstr, size_t errstr_size) {
    char topic[512];
    snprintf(topic, sizeof(topic), "%s.dlq", rd_kafka_topic_name(msg->rkt));
    svc_dlq_record_t d = dead_letter_fit(svc, msg, err, reason, attempts);
    void *value = d.len ? malloc(d.len) : NULL;
    if (d.len && !value) {
        rd_kafka_headers_destroy(d.headers);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "dead letter: out of memory");
    }
    if (value) memcpy(value, msg->payload, d.len);
    rd_kafka_resp_err_t perr = produce(svc, topic, RD_KAFKA_PARTITION_UA, msg->key, d.key_len,
                                       value, d.len, d.headers);
    if (perr) {
        hold(svc, msg);
        if (perr == RD_KAFKA_RESP_ERR__FATAL)
            return produce_failed(svc, perr, NULL, topic, errstr, errstr_size);
        dead_letter_failed(svc, topic, perr);
        return svc_txn_abort(svc, 1, errstr, errstr_size);
    }
    svc->batch_dead++;
    svc->input.outcome = "dead_letter";
    if (d.len < msg->len)
        snprintf(svc->input.reason, sizeof(svc->input.reason),
                 "%s (dead letter cut to %zu of %zu bytes)", reason, d.len, msg->len);
    else
        snprintf(svc->input.reason, sizeof(svc->input.reason), "%s", reason);
    svc_advance(svc, msg);
    return EVK_OK;
}

/* ---- commit / abort ---- */

/* librdkafka's mock cluster (the dev broker) accepts
 * send_offsets_to_transaction but never applies the offsets. So after the
 * first commit of a run the committed offsets are read back; where they did
 * not move, every commit is mirrored by a consumer commit of the same
 * offsets. That is exactly once except for a crash before the consumer
 * commit is done, which on such a cluster replays the batches it covers.
 * A real cluster keeps the transactional path alone. */
static int txn_offsets_applied(evk_service_t *svc) {
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(svc->next);
    int applied = !rd_kafka_committed(
        svc->consumer, c, svc_call_timeout(svc, SVC_SEEK_TIMEOUT_MS, close_reserve(svc)));
    for (int i = 0; i < c->cnt && applied; i++)
        applied = c->elems[i].offset == svc->next->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(c);
    return applied;
}

/* A failed mirror commit (the dev broker refuses them during rebalances)
 * only means that a restart may replay the batch: logged and counted. */
static void mirror_failed(evk_service_t *svc, rd_kafka_resp_err_t err) {
    svc_metrics_offset_commit_failed(svc->metrics);
    evk_log(EVK_LOG_WARN, svc->name, "offset commit failed, a restart may replay the batch",
            "error", rd_kafka_err2str(err), NULL);
}

/* The consumer's offset_commit_cb: the outcome of a mirror commit, served
 * by the loop's consumer poll. */
void svc_offsets_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    for (int i = 0; offsets && !err && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) mirror_failed(opaque, err);
}

/* The mirror commit is asynchronous: while the group coordinator is out of
 * reach it waits in librdkafka, not in the loop, and the next commit, which
 * covers this one's offsets, is queued behind it. A graceful close waits
 * for the commits under way (librdkafka's consumer close does). */
static void mirror_offsets(evk_service_t *svc) {
    if (!svc->next->cnt) return;
    if (svc->offsets_mode == SVC_OFFSETS_UNKNOWN)
        svc->offsets_mode = txn_offsets_applied(svc) ? SVC_OFFSETS_TXN : SVC_OFFSETS_MIRROR;
    if (svc->offsets_mode != SVC_OFFSETS_MIRROR) return;
    rd_kafka_resp_err_t err = rd_kafka_commit(svc->consumer, svc->next, 1);
    if (err) mirror_failed(svc, err);
}

static evk_err_t committed(evk_service_t *svc, char *errstr, size_t errstr_size) {
    mirror_offsets(svc);
    dead_letters_written(svc);
    atomic_fetch_add(&svc->stats.commits, 1);
    atomic_fetch_add(&svc->stats.consumed, svc->batch_inputs);
    atomic_fetch_add(&svc->stats.produced, svc->batch_outputs);
    atomic_fetch_add(&svc->stats.dead_letters, svc->batch_dead);
    svc_metrics_commit(svc->metrics);
    evk_err_t rc = svc_stores_committed(svc, errstr, errstr_size);
    undo_forget(svc);
    poison_prune(svc);
    svc->aborts_in_row = 0;
    batch_reset(svc);
    return rc;
}

static rd_kafka_error_t *send_offsets(evk_service_t *svc) {
    if (!svc->next->cnt) return NULL;
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(svc->consumer);
    rd_kafka_error_t *e = txn_retry(svc, op_send_offsets, cgmd);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    return e;
}

evk_err_t svc_txn_commit(evk_service_t *svc, int replay, char *errstr, size_t errstr_size) {
    if (!svc->txn_open) return EVK_OK;
    /* A failure raised where it could not be returned (a store that could
     * not be read, say) leaves the batch's effects in doubt: never commit. */
    if (svc->cb_err)
        return errstr == svc->cb_errstr
                   ? svc->cb_err
                   : evk__fail(svc->cb_err, errstr, errstr_size, "%s", svc->cb_errstr);
    const char *what = "send_offsets_to_transaction";
    rd_kafka_error_t *e = send_offsets(svc);
    if (!e) {
        what = "commit_transaction";
        e = txn_retry(svc, op_commit, NULL);
    }
    if (!e) return committed(svc, errstr, errstr_size);
    if (rd_kafka_error_is_retriable(e))
        return txn_abandoned(svc, e, "committed", errstr, errstr_size);
    /* Besides abortable errors this covers the unexpected non-fatal ones
     * (e.g. __STATE): aborting is always safe, the batch is replayed. */
    if (rd_kafka_error_is_fatal(e)) return txn_error(e, what, errstr, errstr_size);
    rd_kafka_error_destroy(e);
    return svc_txn_abort(svc, replay, errstr, errstr_size);
}

/* Send the consumer back to where the batch began, so that it is replayed;
 * the seek also drops whatever was prefetched past that point. */
static evk_err_t rewind_batch(evk_service_t *svc, char *errstr, size_t errstr_size) {
    if (!svc->first->cnt) return EVK_OK;
    rd_kafka_topic_partition_list_t *to = rd_kafka_topic_partition_list_copy(svc->first);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(svc->consumer, to, SVC_SEEK_TIMEOUT_MS);
    evk_err_t rc = EVK_OK;
    if (e) {
        rc = txn_error(e, "rewind after abort", errstr, errstr_size);
    } else {
        /* A partition that did not rewind would skip the batch: stop rather
         * than lose it (a restart resumes from the committed offsets). */
        for (int i = 0; i < to->cnt && !rc; i++)
            if (to->elems[i].err)
                rc = evk__fail(EVK_ERR_KAFKA, errstr, errstr_size,
                               "rewind %s [%d] to %lld after abort: %s", to->elems[i].topic,
                               (int)to->elems[i].partition, (long long)to->elems[i].offset,
                               rd_kafka_err2str(to->elems[i].err));
    }
    rd_kafka_topic_partition_list_destroy(to);
    return rc;
}

evk_err_t svc_txn_abort(evk_service_t *svc, int replay, char *errstr, size_t errstr_size) {
    if (!svc->txn_open) return SVC_REPLAY;
    rd_kafka_error_t *e = txn_retry(svc, op_abort, NULL);
    if (e && rd_kafka_error_is_retriable(e))
        return txn_abandoned(svc, e, "aborted", errstr, errstr_size);
    if (e) return txn_error(e, "abort_transaction", errstr, errstr_size);
    atomic_fetch_add(&svc->stats.aborts, 1);
    if (svc->batch_dlq_failed) dead_letters_failed(svc);
    evk_err_t rc = replay ? rewind_batch(svc, errstr, errstr_size) : EVK_OK;
    svc_txn_forget(svc);
    if (rc) return rc;
    /* A batch that keeps failing (e.g. the cluster refuses a topic) is
     * replayed at a pace, not in a tight loop. */
    if (replay) svc_wait(svc, svc_backoff_ms(svc, ++svc->aborts_in_row));
    return SVC_REPLAY;
}

void svc_txn_forget(evk_service_t *svc) {
    svc_metrics_discard(svc->metrics);
    svc_undo_revert(svc, 0);
    svc_unstage_from(svc, 0);
    batch_reset(svc);
}

void svc_txn_state_free(evk_service_t *svc) {
    undo_forget(svc);
    svc_unstage_from(svc, 0);
    svc_poison_clear(svc);
    free(svc->undo);
    free(svc->staged);
    free(svc->poison);
    rd_kafka_topic_partition_list_destroy(svc->next);
    rd_kafka_topic_partition_list_destroy(svc->first);
}
