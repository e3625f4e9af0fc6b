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

void svc_store_written(evk_store_t *st, int32_t partition, int64_t offset) {
    if (partition >= 0 && partition < st->nend && st->end[partition] >= 0 &&
        offset + 1 > st->end[partition])
        st->end[partition] = offset + 1;
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

/* ---- restore ---- */

static evk_err_t restore_apply(evk_store_t *st, const evk_catalog_t *cat,
                               const rd_kafka_message_t *m) {
    evk_event_t *ev = NULL, *prev = NULL;
    if (!m->payload) { /* tombstone: the key was deleted */
        char *key = m->key ? strndup(m->key, m->key_len) : NULL;
        if (m->key && !key) return EVK_ERR_NOMEM;
        evk_err_t rc = key ? svc_store_swap(st, key, m->partition, NULL, &prev) : EVK_OK;
        evk_event_destroy(prev);
        free(key);
        return rc;
    }
    /* Records of other types share the topic, and an undecodable record is
     * not this store's to judge: both are skipped. */
    if (evk_event_from_message(cat, m, &ev, NULL, 0)) return EVK_OK;
    if (evk_event_schema(ev) != st->schema || !evk_event_key(ev)) {
        evk_event_destroy(ev);
        return EVK_OK;
    }
    evk_err_t rc = svc_store_swap(st, evk_event_key(ev), m->partition, ev, &prev);
    evk_event_destroy(rc ? ev : prev);
    return rc;
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

/* The partitions of @p parts that the changelog has, each to read from where
 * its held state ends, or from the start. A partition the changelog does
 * not have yet is held empty. */
static rd_kafka_topic_partition_list_t *restore_list(evk_store_t *st, int partitions,
                                                     const int32_t *parts, size_t nparts) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)nparts);
    for (size_t i = 0; i < nparts; i++) {
        if (store_track(st, parts[i])) {
            rd_kafka_topic_partition_list_destroy(list);
            return NULL;
        }
        int64_t from = st->end[parts[i]] >= 0 ? st->end[parts[i]] : RD_KAFKA_OFFSET_BEGINNING;
        if (st->end[parts[i]] < 0) st->end[parts[i]] = 0;
        if (parts[i] < partitions)
            rd_kafka_topic_partition_list_add(list, evk_schema_topic(st->schema), parts[i])
                ->offset = from;
    }
    return list;
}

static int list_index(const rd_kafka_topic_partition_list_t *list, int32_t partition) {
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == partition) return i;
    return -1;
}

/* One message of the restore consumer: a record applied, or the end of a
 * partition reached (its offset is the next one to read). */
static evk_err_t restore_message(evk_service_t *svc, evk_store_t *st, const rd_kafka_message_t *m,
                                 char *errstr, size_t errstr_size) {
    const char *topic = evk_schema_topic(st->schema);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->offset > st->end[m->partition]) st->end[m->partition] = m->offset;
        return EVK_OK;
    }
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
        return evk_fail(STORE_TRUNCATED, errstr, errstr_size,
                        "restore %s [%d]: the held state ends at offset %lld, which the "
                        "changelog no longer has: %s",
                        topic, (int)m->partition, (long long)st->end[m->partition],
                        rd_kafka_message_errstr(m));
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        return evk_fail(EVK_ERR_FATAL, errstr, errstr_size, "restore %s: %s", topic,
                        rd_kafka_message_errstr(m));
    if (m->err) return EVK_OK; /* transient: librdkafka retries */
    atomic_fetch_add(&svc->stats.restored, 1);
    st->end[m->partition] = m->offset + 1;
    if (restore_apply(st, svc->cat, m))
        return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore %s: out of memory", topic);
    return EVK_OK;
}

/* Read every listed partition up to its end (the last stable offset, since
 * the consumer reads committed records only). A stop request ends it early. */
static evk_err_t restore_read(evk_service_t *svc, evk_store_t *st, rd_kafka_t *rk,
                              const rd_kafka_topic_partition_list_t *list, int64_t deadline,
                              char *errstr, size_t errstr_size) {
    const char *topic = list->elems[0].topic;
    char *at_end = calloc((size_t)list->cnt, 1);
    if (!at_end) return evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore: out of memory");
    int left = list->cnt;
    evk_err_t rc = EVK_OK;
    while (left > 0 && !rc && !svc_stopping(svc)) {
        if (evk_now_ms() > deadline) {
            rc = evk_fail(EVK_ERR_TIMEOUT, errstr, errstr_size,
                          "restore %s: %d of %d partitions not read to the end after %lld ms",
                          topic, left, list->cnt, (long long)svc->restore_timeout_ms);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int i = list_index(list, m->partition);
        if (i >= 0) rc = restore_message(svc, st, m, errstr, errstr_size);
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

/* Bring the partitions @p parts of @p st up to the end of its changelog. */
static evk_err_t store_catch_up(evk_service_t *svc, evk_store_t *st, const int32_t *parts,
                                size_t nparts, char *errstr, size_t errstr_size) {
    const char *topic = evk_schema_topic(st->schema);
    rd_kafka_t *rk = restore_consumer(svc, errstr, errstr_size);
    evk_err_t rc = rk ? EVK_OK : EVK_ERR_KAFKA;
    int64_t deadline = evk_now_ms() + svc->restore_timeout_ms;
    int partitions = 0;
    rd_kafka_topic_partition_list_t *list = NULL;
    if (!rc)
        rc = svc_topic_partitions(svc, rk, topic, deadline, &partitions, errstr, errstr_size);
    if (!rc && !(list = restore_list(st, partitions, parts, nparts)))
        rc = evk_fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore %s: out of memory", topic);
    if (list && list->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
        rc = err ? evk_fail(EVK_ERR_KAFKA, errstr, errstr_size, "restore %s: assign: %s", topic,
                            rd_kafka_err2str(err))
                 : restore_read(svc, st, rk, list, deadline, errstr, errstr_size);
    }
    if (list) rd_kafka_topic_partition_list_destroy(list);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

/* Partitions held from before are caught up, the others read whole; every
 * other partition is dropped. A failed or interrupted restore drops them
 * all, so that no partial state stays. A held state that the changelog no
 * longer covers (truncated) is dropped and read whole again. */
evk_err_t svc_store_restore(evk_service_t *svc, evk_store_t *st, const int32_t *parts,
                            size_t nparts, char *errstr, size_t errstr_size) {
    svc_store_keep(st, parts, nparts);
    evk_err_t rc = store_catch_up(svc, st, parts, nparts, errstr, errstr_size);
    if (rc == STORE_TRUNCATED) {
        evk_log(EVK_LOG_WARN, svc->name, "restoring from the start", "reason", errstr, NULL);
        svc_store_drop(st);
        rc = store_catch_up(svc, st, parts, nparts, errstr, errstr_size);
    }
    if (rc || svc_stopping(svc)) svc_store_drop(st);
    return rc == STORE_TRUNCATED ? EVK_ERR_KAFKA : rc;
}
