/* State stores: a key -> event hash map per store, written through the
 * service's transaction (changelog record + undo entry) and restored from
 * the changelog topic with a read_committed consumer.
 *
 * A store is partitioned like the service's input: the state written while
 * handling input partition p goes to changelog partition p, so an instance
 * restores and holds only the partitions it is assigned. Hence a key may be
 * written only while handling an input with that same key; state keyed by
 * anything else goes through a repartition topic keyed by it.
 *
 * A partition's state outlives its revocation until the next assignment:
 * if that gives the partition back (the usual case in a rebalance), only
 * the changelog written since is read, from the offset where the held
 * state ends (the local state and checkpoint of Kafka Streams, in memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "service_int.h"

#define STORE_MIN_BUCKETS 64
/* The held state of a partition ends past the changelog's end. */
#define STORE_TRUNCATED EVK_ERR_RETRY

typedef struct store_entry {
    struct store_entry *next;
    evk_event_t *value;
    int32_t partition; /* of the changelog */
    char key[];
} store_entry_t;

struct evk_store_s {
    const evk_schema_t *schema;
    store_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    /* Per changelog partition, the offset where the held state ends (the
     * next record to read), or -1 when none of it is held. */
    int64_t *end;
    int32_t nend;
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The link that points at @p key's entry, or the NULL link ending its chain. */
static store_entry_t **store_link(const evk_store_t *st, const char *key) {
    store_entry_t **link = &st->buckets[hash(key) & (st->nbuckets - 1)];
    while (*link && strcmp((*link)->key, key))
        link = &(*link)->next;
    return link;
}

evk_store_t *svc_store_new(const evk_schema_t *schema) {
    evk_store_t *st = calloc(1, sizeof(*st));
    if (!st) return NULL;
    st->schema = schema;
    st->nbuckets = STORE_MIN_BUCKETS;
    st->buckets = calloc(st->nbuckets, sizeof(*st->buckets));
    if (!st->buckets) {
        free(st);
        return NULL;
    }
    return st;
}

static int part_listed(const int32_t *parts, size_t nparts, int32_t partition) {
    for (size_t i = 0; i < nparts; i++)
        if (parts[i] == partition) return 1;
    return 0;
}

void svc_store_keep(evk_store_t *st, const int32_t *parts, size_t nparts) {
    for (size_t i = 0; i < st->nbuckets; i++) {
        store_entry_t **link = &st->buckets[i];
        while (*link) {
            store_entry_t *e = *link;
            if (part_listed(parts, nparts, e->partition)) {
                link = &e->next;
                continue;
            }
            *link = e->next;
            evk_event_destroy(e->value);
            free(e);
            st->count--;
        }
    }
    for (int32_t p = 0; p < st->nend; p++)
        if (!part_listed(parts, nparts, p)) st->end[p] = -1;
}

void svc_store_drop(evk_store_t *st) {
    svc_store_keep(st, NULL, 0);
}

void svc_store_destroy(evk_store_t *st) {
    if (!st) return;
    svc_store_drop(st);
    free(st->end);
    free(st->buckets);
    free(st);
}

/* Make room to track changelog partition @p partition. */
static evk_err_t store_track(evk_store_t *st, int32_t partition) {
    if (partition < st->nend) return EVK_OK;
    int64_t *end = realloc(st->end, ((size_t)partition + 1) * sizeof(*end));
    if (!end) return EVK_ERR_NOMEM;
    for (int32_t p = st->nend; p <= partition; p++)
        end[p] = -1;
    st->end = end;
    st->nend = partition + 1;
    return EVK_OK;
}

const evk_schema_t *svc_store_schema(const evk_store_t *st) {
    return st->schema;
}

static evk_err_t store_grow(evk_store_t *st) {
    size_t n = st->nbuckets * 2;
    store_entry_t **b = calloc(n, sizeof(*b));
    if (!b) return EVK_ERR_NOMEM;
    for (size_t i = 0; i < st->nbuckets; i++) {
        while (st->buckets[i]) {
            store_entry_t *e = st->buckets[i];
            st->buckets[i] = e->next;
            e->next = b[hash(e->key) & (n - 1)];
            b[hash(e->key) & (n - 1)] = e;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
    return EVK_OK;
}

static evk_err_t store_insert(evk_store_t *st, const char *key, int32_t partition,
                              evk_event_t *value) {
    if (st->count + 1 > st->nbuckets / 4 * 3 && store_grow(st)) return EVK_ERR_NOMEM;
    size_t klen = strlen(key);
    store_entry_t *e = malloc(sizeof(*e) + klen + 1);
    if (!e) return EVK_ERR_NOMEM;
    memcpy(e->key, key, klen + 1);
    e->value = value;
    e->partition = partition;
    store_entry_t **head = &st->buckets[hash(key) & (st->nbuckets - 1)];
    e->next = *head;
    *head = e;
    st->count++;
    return EVK_OK;
}

evk_err_t svc_store_swap(evk_store_t *st, const char *key, int32_t partition,
                         evk_event_t *value, evk_event_t **prev) {
    store_entry_t **link = store_link(st, key);
    store_entry_t *e = *link;
    *prev = e ? e->value : NULL;
    if (e && value) {
        e->value = value;
    } else if (e) {
        *link = e->next;
        free(e);
        st->count--;
    } else if (value) {
        return store_insert(st, key, partition, value);
    }
    return EVK_OK;
}

/* ---- public API ---- */

const evk_event_t *evk_store_get(const evk_store_t *st, const char *key) {
    if (!st || !key) return NULL;
    const store_entry_t *e = *store_link(st, key);
    return e ? e->value : NULL;
}

size_t evk_store_count(const evk_store_t *st) {
    return st ? st->count : 0;
}

void evk_store_foreach(const evk_store_t *st,
                       int (*cb)(const char *key, const evk_event_t *value, void *opaque),
                       void *opaque) {
    if (!st || !cb) return;
    for (size_t i = 0; i < st->nbuckets; i++)
        for (const store_entry_t *e = st->buckets[i]; e; e = e->next)
            if (cb(e->key, e->value, opaque)) return;
}

/* @p key is the input key @p input, or it, the separator and more. */
static int key_of_input(const char *key, const char *input) {
    size_t n = strlen(input);
    if (strncmp(key, input, n)) return 0;
    return !key[n] || (key[n] == EVK_STORE_KEY_SEP[0] && !strchr(input, EVK_STORE_KEY_SEP[0]));
}

/* Only the owner of the input's partition may write its state: a write
 * keyed otherwise would land in a partition another instance owns. */
static evk_err_t store_key_check(const evk_ctx_t *ctx, const evk_store_t *st, const char *key) {
    const char *input = ctx->cause ? evk_event_key(ctx->cause) : NULL;
    if (input && key_of_input(key, input)) return EVK_OK;
    evk_log(EVK_LOG_ERROR, ctx->svc->name,
            "store write refused: a store key must be the input's key, or it and "
            "EVK_STORE_KEY_SEP and more (state is partitioned like the input; re-key through a "
            "repartition topic, docs/SCALING.md)",
            "store", evk_schema_type(st->schema), "key", key, "input_key",
            input ? input : "(none: not handling an input)", NULL);
    return EVK_ERR_INVALID_ARG;
}

/* The changelog record is staged first: if the put cannot be recorded
 * completely, nothing of it remains. */
static evk_err_t store_put(evk_ctx_t *ctx, evk_store_t *st, evk_event_t *value) {
    if (!ctx || !st || !value || evk_event_schema(value) != st->schema || !evk_event_key(value))
        return EVK_ERR_INVALID_ARG;
    evk_err_t rc = store_key_check(ctx, st, evk_event_key(value));
    if (rc) return rc;
    evk_service_t *svc = ctx->svc;
    size_t staged = svc->nstaged;
    char *key = strdup(evk_event_key(value));
    evk_event_t *prev = NULL;
    rc = key ? svc_stage(svc, value, ctx->partition, 0) : EVK_ERR_NOMEM;
    if (!rc) rc = svc_undo_reserve(svc);
    if (!rc) rc = svc_store_swap(st, key, ctx->partition, value, &prev);
    if (rc) {
        svc_unstage_from(svc, staged);
        free(key);
        return rc;
    }
    svc_undo_push(svc, st, key, ctx->partition, prev, NULL);
    return EVK_OK;
}

evk_err_t evk_store_put(evk_ctx_t *ctx, evk_store_t *st, evk_event_t *value) {
    evk_err_t rc = store_put(ctx, st, value);
    if (rc) evk_event_destroy(value);
    return rc;
}

/* The entry leaves the map but is kept by the undo entry, so that a revert
 * puts it back without allocating. */
evk_err_t evk_store_delete(evk_ctx_t *ctx, evk_store_t *st, const char *key) {
    if (!ctx || !st || !key) return EVK_ERR_INVALID_ARG;
    evk_err_t rc = store_key_check(ctx, st, key);
    if (rc) return rc;
    store_entry_t **link = store_link(st, key);
    if (!*link) return EVK_OK;
    evk_service_t *svc = ctx->svc;
    size_t staged = svc->nstaged;
    char *copy = strdup(key);
    rc = copy ? svc_stage_tombstone(svc, st->schema, key, ctx->partition) : EVK_ERR_NOMEM;
    if (!rc) rc = svc_undo_reserve(svc);
    if (rc) {
        svc_unstage_from(svc, staged);
        free(copy);
        return rc;
    }
    store_entry_t *e = *link;
    *link = e->next;
    st->count--;
    svc_undo_push(svc, st, copy, ctx->partition, NULL, e);
    return EVK_OK;
}

void svc_store_relink(evk_store_t *st, void *entry) {
    store_entry_t *e = entry, **head = &st->buckets[hash(e->key) & (st->nbuckets - 1)];
    e->next = *head;
    *head = e;
    st->count++;
}

void svc_store_entry_free(void *entry) {
    store_entry_t *e = entry;
    evk_event_destroy(e->value);
    free(e);
}

/* ---- restore ----
 *
 * One consumer reads the assigned partitions of every changelog of the
 * service at once, so that the topics' fetches overlap. A record is
 * decoded once and goes to the store of its type; a tombstone to every
 * store of its topic. Each store skips what it holds already. */

static int store_reads(const evk_store_t *st, const rd_kafka_message_t *m) {
    return !strcmp(evk_schema_topic(st->schema), rd_kafka_topic_name(m->rkt));
}

/* @p m's key set to @p ev in @p st, if @p st does not hold it already. */
static evk_err_t restore_put(evk_store_t *st, const rd_kafka_message_t *m, const char *key,
                             evk_event_t *ev) {
    if (m->offset < st->end[m->partition]) {
        evk_event_destroy(ev);
        return EVK_OK;
    }
    evk_event_t *prev = NULL;
    evk_err_t rc = svc_store_swap(st, key, m->partition, ev, &prev);
    evk_event_destroy(rc ? ev : prev);
    return rc;
}

/* Records of types no store keeps and undecodable records are not the
 * stores' to judge: they are skipped. */
static evk_err_t restore_apply(evk_service_t *svc, const rd_kafka_message_t *m) {
    evk_err_t rc = EVK_OK;
    if (!m->payload) { /* tombstone: the key was deleted */
        char *key = m->key ? strndup(m->key, m->key_len) : NULL;
        if (m->key && !key) return EVK_ERR_NOMEM;
        for (size_t i = 0; i < svc->nstores && key && !rc; i++)
            if (store_reads(svc->stores[i], m)) rc = restore_put(svc->stores[i], m, key, NULL);
        free(key);
        return rc;
    }
    evk_event_t *ev = NULL;
    if (evk_event_from_message(svc->cat, m, &ev, NULL, 0)) return EVK_OK;
    for (size_t i = 0; i < svc->nstores; i++) {
        evk_store_t *st = svc->stores[i];
        if (store_reads(st, m) && evk_event_schema(ev) == st->schema && evk_event_key(ev))
            return restore_put(st, m, evk_event_key(ev), ev);
    }
    evk_event_destroy(ev);
    return EVK_OK;
}

evk_err_t svc_topic_partitions(const evk_service_t *svc, rd_kafka_t *rk, const char *topic,
                               int64_t deadline, int *out, char *errstr, size_t errstr_size) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    do {
        const struct rd_kafka_metadata *md = NULL;
        err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err) {
            err = md->topics[0].err;
            *out = err ? 0 : md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    } while (err && evk_now_ms() < deadline && !svc_stopping(svc));
    rd_kafka_topic_destroy(rkt);
    if (err)
        return evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "%s: metadata: %s", topic,
                        rd_kafka_err2str(err));
    return EVK_OK;
}

/* Where to read partition @p p of @p topic from: the first offset that a
 * store of it does not hold (the start for a store that holds nothing of
 * it, which from now on holds it empty). */
static evk_err_t restore_from(evk_service_t *svc, const char *topic, int32_t p, int64_t *from) {
    *from = INT64_MAX;
    for (size_t i = 0; i < svc->nstores; i++) {
        evk_store_t *st = svc->stores[i];
        if (strcmp(evk_schema_topic(st->schema), topic)) continue;
        if (store_track(st, p)) return EVK_ERR_NOMEM;
        int64_t at = st->end[p] >= 0 ? st->end[p] : RD_KAFKA_OFFSET_BEGINNING;
        if (st->end[p] < 0) st->end[p] = 0;
        if (at < *from) *from = at;
    }
    return EVK_OK;
}

/* The partitions @p parts of every changelog that has them, each from where
 * its stores' held state ends. */
static evk_err_t restore_list(evk_service_t *svc, rd_kafka_t *rk, const int32_t *parts,
                              size_t nparts, int64_t deadline,
                              rd_kafka_topic_partition_list_t *list, char *errstr,
                              size_t errstr_size) {
    for (size_t i = 0; i < svc->nstores; i++) {
        const char *topic = evk_schema_topic(svc->stores[i]->schema);
        int partitions = 0, seen = 0;
        for (size_t j = 0; j < i; j++) /* a topic two stores share is listed once */
            seen |= !strcmp(evk_schema_topic(svc->stores[j]->schema), topic);
        if (seen) continue;
        evk_err_t rc =
            svc_topic_partitions(svc, rk, topic, deadline, &partitions, errstr, errstr_size);
        for (size_t k = 0; k < nparts && !rc; k++) {
            int64_t from;
            if (restore_from(svc, topic, parts[k], &from))
                return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore: out of memory");
            if (parts[k] < partitions)
                rd_kafka_topic_partition_list_add(list, topic, parts[k])->offset = from;
        }
        if (rc) return rc;
    }
    return EVK_OK;
}

static int list_index(const rd_kafka_topic_partition_list_t *list,
                      const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == m->partition && !strcmp(list->elems[i].topic, topic))
            return i;
    return -1;
}

/* The held state of @p m's partition, in every store of its topic that
 * holds it, now ends at @p next at least: a record read or written, or the
 * end of the partition reached. */
static void stores_reach(evk_service_t *svc, const rd_kafka_message_t *m, int64_t next) {
    int32_t p = m->partition;
    for (size_t i = 0; i < svc->nstores; i++) {
        evk_store_t *st = svc->stores[i];
        if (store_reads(st, m) && p >= 0 && p < st->nend && st->end[p] >= 0 && next > st->end[p])
            st->end[p] = next;
    }
}

void svc_stores_written(evk_service_t *svc, const rd_kafka_message_t *msg) {
    stores_reach(svc, msg, msg->offset + 1);
}

static evk_err_t restore_message(evk_service_t *svc, const rd_kafka_message_t *m, char *errstr,
                                 size_t errstr_size) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        stores_reach(svc, m, m->offset); /* the offset to read next */
        return EVK_OK;
    }
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
        return evk_fail(STORE_TRUNCATED, errstr, errstr_size,
                        "restore %s [%d]: the held state ends past what the changelog has: %s",
                        topic, (int)m->partition, rd_kafka_message_errstr(m));
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        return evk_fail(EVK_ERR_FATAL, errstr, errstr_size, "restore %s: %s", topic,
                        rd_kafka_message_errstr(m));
    if (m->err) return EVK_OK; /* transient: librdkafka retries */
    atomic_fetch_add(&svc->stats.restored, 1);
    evk_err_t rc = restore_apply(svc, m);
    stores_reach(svc, m, m->offset + 1);
    if (rc) return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore %s: out of memory", topic);
    return EVK_OK;
}

/* Read every listed partition up to its end (the last stable offset, since
 * the consumer reads committed records only). A stop request ends it early. */
static evk_err_t restore_read(evk_service_t *svc, rd_kafka_t *rk,
                              const rd_kafka_topic_partition_list_t *list, int64_t deadline,
                              char *errstr, size_t errstr_size) {
    char *at_end = calloc((size_t)list->cnt, 1);
    if (!at_end) return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore: out of memory");
    int left = list->cnt;
    evk_err_t rc = EVK_OK;
    while (left > 0 && !rc && !svc_stopping(svc)) {
        if (evk_now_ms() > deadline) {
            rc = evk_fail(EVK_ERR_TIMEOUT, errstr, errstr_size,
                          "restore: %d of %d changelog partitions not read to the end after "
                          "%lld ms",
                          left, list->cnt, (long long)svc->restore_timeout_ms);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int i = list_index(list, m);
        if (i >= 0) rc = restore_message(svc, m, errstr, errstr_size);
        if (i >= 0 && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && !at_end[i]++) left--;
        rd_kafka_message_destroy(m);
    }
    free(at_end);
    return rc;
}

/* The restore consumer joins no group (it assigns), but librdkafka's
 * assign() wants a group.id; nothing is ever committed under it. */
static rd_kafka_t *restore_consumer(const evk_service_t *svc, char *errstr,
                                    size_t errstr_size) {
    char group[512];
    snprintf(group, sizeof(group), "%s.restore", svc->group_id);
    const char *const kv[] = {"group.id",
                              group,
                              "isolation.level",
                              "read_committed",
                              "enable.partition.eof",
                              "true",
                              "enable.auto.commit",
                              "false",
                              "enable.auto.offset.store",
                              "false",
                              "auto.offset.reset",
                              "error",
                              "fetch.wait.max.ms",
                              "10",
                              NULL};
    rd_kafka_conf_t *conf = svc_kafka_conf(svc, kv, errstr, errstr_size);
    if (!conf) return NULL;
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "restore consumer: %s", why);
    }
    return rk;
}

/* Bring the stores' partitions @p parts up to the end of their changelogs. */
static evk_err_t stores_catch_up(evk_service_t *svc, const int32_t *parts, size_t nparts,
                                 char *errstr, size_t errstr_size) {
    rd_kafka_t *rk = restore_consumer(svc, errstr, errstr_size);
    if (!rk) return EVK_ERR_KAFKA;
    int64_t deadline = evk_now_ms() + svc->restore_timeout_ms;
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new((int)(nparts * svc->nstores));
    evk_err_t rc = restore_list(svc, rk, parts, nparts, deadline, list, errstr, errstr_size);
    if (!rc && list->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
        rc = err ? evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "restore: assign: %s",
                            rd_kafka_err2str(err))
                 : restore_read(svc, rk, list, deadline, errstr, errstr_size);
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

void svc_stores_drop(evk_service_t *svc) {
    for (size_t i = 0; i < svc->nstores; i++)
        svc_store_drop(svc->stores[i]);
}

/* Partitions held from before are caught up, the others read whole; every
 * other partition is dropped. A failed or interrupted restore drops them
 * all, so that no partial state stays. A held state that the changelog no
 * longer covers (truncated) is dropped and read whole again. */
evk_err_t svc_stores_restore(evk_service_t *svc, const int32_t *parts, size_t nparts,
                             char *errstr, size_t errstr_size) {
    if (!svc->nstores) return EVK_OK;
    for (size_t i = 0; i < svc->nstores; i++)
        svc_store_keep(svc->stores[i], parts, nparts);
    evk_err_t rc = nparts ? stores_catch_up(svc, parts, nparts, errstr, errstr_size) : EVK_OK;
    if (rc == STORE_TRUNCATED) {
        evk_log(EVK_LOG_WARN, svc->name, "restoring from the start", "reason", errstr, NULL);
        svc_stores_drop(svc);
        rc = stores_catch_up(svc, parts, nparts, errstr, errstr_size);
    }
    if (rc || svc_stopping(svc)) svc_stores_drop(svc);
    return rc == STORE_TRUNCATED ? EVK_ERR_KAFKA : rc;
}
