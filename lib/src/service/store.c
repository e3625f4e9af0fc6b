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
 * In memory only (no state.dir), the map holds every key of the held
 * partitions, and a partition's state outlives its revocation until the
 * next assignment: if that gives the partition back (the usual case in a
 * rebalance), only the changelog written since is read, from the offset
 * where the held state ends.
 *
 * With a state.dir, the committed state lives on disk (store_disk.c) and
 * the map is a cache in front of it: the keys read or written since the
 * last commit, trimmed after a commit once it holds more than
 * state.cache_entries. A restore reads the changelog from the checkpoint
 * on disk, whoever held the partition in between. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "service_int.h"

#define STORE_MIN_BUCKETS 64
/* The held state of a partition ends past the changelog's end. */
#define STORE_TRUNCATED EVK_ERR_RETRY
#define STORE_CACHE_DEFAULT 1000
/* Restored records per disk transaction (each ends with the checkpoints). */
#define STORE_RESTORE_CHUNK 20000
#define STORE_CLUSTER_ID_TIMEOUT_MS 10000

typedef struct store_entry {
    struct store_entry *next;
    evk_event_t *value; /* NULL: deleted by the open transaction */
    int32_t partition;  /* of the changelog */
    uint64_t flushed;   /* the flush that last wrote it to disk, 0: none (stores_flush) */
    char key[];
} store_entry_t;

struct evk_store_s {
    evk_service_t *svc;
    const evk_schema_t *schema;
    store_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t entries;  /* in the map, deleted ones included */
    size_t live;     /* entries with a value */
    /* Per changelog partition, the offset where the held state ends (the
     * next record to read), or -1 when none of it is held. */
    int64_t *end;
    int32_t nend;
    unsigned table; /* on disk */
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

evk_store_t *svc_store_new(evk_service_t *svc, const evk_schema_t *schema) {
    evk_store_t *st = calloc(1, sizeof(*st));
    if (!st) return NULL;
    st->svc = svc;
    st->schema = schema;
    st->nbuckets = STORE_MIN_BUCKETS;
    st->buckets = calloc(st->nbuckets, sizeof(*st->buckets));
    if (!st->buckets) {
        free(st);
        return NULL;
    }
    return st;
}

static void store_unlink(evk_store_t *st, store_entry_t **link) {
    store_entry_t *e = *link;
    *link = e->next;
    st->entries--;
    st->live -= e->value != NULL;
    evk_event_destroy(e->value);
    free(e);
}

static int part_listed(const int32_t *parts, size_t nparts, int32_t partition) {
    for (size_t i = 0; i < nparts; i++)
        if (parts[i] == partition) return 1;
    return 0;
}

/* Drop every partition but @p parts from memory. */
static void store_keep(evk_store_t *st, const int32_t *parts, size_t nparts) {
    for (size_t i = 0; i < st->nbuckets; i++) {
        store_entry_t **link = &st->buckets[i];
        while (*link) {
            if (part_listed(parts, nparts, (*link)->partition))
                link = &(*link)->next;
            else
                store_unlink(st, link);
        }
    }
    for (int32_t p = 0; p < st->nend; p++)
        if (!part_listed(parts, nparts, p)) st->end[p] = -1;
}

/* Empty the map; the held partitions stay held (their state is on disk). */
static void store_uncache(evk_store_t *st) {
    for (size_t i = 0; i < st->nbuckets; i++)
        while (st->buckets[i])
            store_unlink(st, &st->buckets[i]);
}

void svc_store_destroy(evk_store_t *st) {
    if (!st) return;
    store_keep(st, NULL, 0);
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

static int store_holds(const evk_store_t *st, int32_t partition) {
    return partition >= 0 && partition < st->nend && st->end[partition] >= 0;
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
    if (st->entries + 1 > st->nbuckets / 4 * 3 && store_grow(st)) return EVK_ERR_NOMEM;
    size_t klen = strlen(key);
    store_entry_t *e = malloc(sizeof(*e) + klen + 1);
    if (!e) return EVK_ERR_NOMEM;
    memcpy(e->key, key, klen + 1);
    e->value = value;
    e->partition = partition;
    e->flushed = 0;
    store_entry_t **head = &st->buckets[hash(key) & (st->nbuckets - 1)];
    e->next = *head;
    *head = e;
    st->entries++;
    st->live += value != NULL;
    return EVK_OK;
}

evk_err_t svc_store_set(evk_store_t *st, const char *key, int32_t partition, evk_event_t *value,
                        evk_event_t **prev, int *had_entry) {
    store_entry_t *e = *store_link(st, key);
    *prev = e ? e->value : NULL;
    *had_entry = e != NULL;
    if (!e) return store_insert(st, key, partition, value);
    st->live += (value != NULL) - (e->value != NULL);
    e->value = value;
    return EVK_OK;
}

void svc_store_unset(evk_store_t *st, const char *key, evk_event_t *prev, int had_entry) {
    store_entry_t **link = store_link(st, key);
    if (!*link) return;
    if (!had_entry) {
        store_unlink(st, link);
        return;
    }
    store_entry_t *e = *link;
    st->live += (prev != NULL) - (e->value != NULL);
    evk_event_destroy(e->value);
    e->value = prev;
}

/* ---- the disk behind the map ---- */

static svc_disk_t *store_disk(const evk_store_t *st) {
    return st->svc->disk;
}

/* A handler cannot be told that a read failed (evk_store_get() has no
 * error), and taking the key for absent would decide on state that is not
 * there: the batch must not commit. The service stops as after a failed
 * rebalance callback, its open transaction aborted; a restart restores from
 * the changelog what the disk cannot give. */
static void store_read_failed(const evk_store_t *st, const char *key, const char *why) {
    evk_service_t *svc = st->svc;
    evk_log(EVK_LOG_ERROR, svc->name, "state cannot be read from disk", "store",
            evk_schema_type(st->schema), "key", key, "error", why, NULL);
    if (svc->cb_err) return;
    svc->cb_err =
        evk__fail(EVK_ERR_IO, svc->cb_errstr, sizeof(svc->cb_errstr),
                  "state of %s cannot be read from disk: %s", evk_schema_type(st->schema), why);
}

/* A frame from disk, @p key's value, as an event; NULL if it no longer
 * decodes (its schema left the catalog, say): a failed read. */
static evk_event_t *store_decode(const evk_store_t *st, const char *key, const void *frame,
                                 size_t len) {
    char why[512];
    evk_event_t *ev = NULL;
    if (evk_event_decode(st->svc->cat, frame, len, key, strlen(key), NULL, &ev, why,
                         sizeof(why)))
        store_read_failed(st, key, why);
    return ev;
}

/* @p key's committed value from disk, cached in the map; NULL when absent
 * or of a partition this instance does not hold. */
static evk_event_t *store_load(evk_store_t *st, const char *key) {
    void *frame = NULL;
    size_t len = 0;
    int32_t p = -1;
    int found = svc_disk_get(store_disk(st), st->table, key, &p, &frame, &len);
    if (found < 0) store_read_failed(st, key, "LMDB read failed");
    if (found != 1) return NULL;
    evk_event_t *ev = store_holds(st, p) ? store_decode(st, key, frame, len) : NULL;
    free(frame);
    if (ev && store_insert(st, key, p, ev)) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* What the map says of @p key (NULL for a key deleted in the open
 * transaction), or else the disk. */
static const evk_event_t *store_lookup(const evk_store_t *st, const char *key) {
    const store_entry_t *e = *store_link(st, key);
    if (e) return e->value;
    /* Loading only fills the cache: the store's contents do not change. */
    return store_disk(st) ? store_load((evk_store_t *)st, key) : NULL;
}

/* The checkpoints of every held partition, then the disk transaction's
 * commit. */
static evk_err_t stores_sync(evk_service_t *svc) {
    evk_err_t rc = EVK_OK;
    for (size_t i = 0; i < svc->nstores && !rc; i++) {
        evk_store_t *st = svc->stores[i];
        for (int32_t p = 0; p < st->nend && !rc; p++)
            if (st->end[p] >= 0)
                rc = svc_disk_set_checkpoint(svc->disk, evk_schema_type(st->schema), p,
                                             st->end[p]);
    }
    if (rc) {
        svc_disk_abort(svc->disk);
        return rc;
    }
    return svc_disk_commit(svc->disk);
}

/* The keys the committed transaction wrote, as they now are, to disk; each
 * once, however many writes of it the undo log holds (a hot SKU's record is
 * written by most inputs of a batch). */
static evk_err_t stores_flush(evk_service_t *svc) {
    evk_err_t rc = svc_disk_begin(svc->disk);
    uint64_t flush = ++svc->disk_flushes;
    for (size_t i = 0; i < svc->nundo && !rc; i++) {
        const svc_undo_t *u = &svc->undo[i];
        store_entry_t *e = *store_link(u->store, u->key);
        void *frame = NULL;
        size_t len = 0;
        if (!e || e->flushed == flush) continue;
        e->flushed = flush;
        if (!e->value) {
            rc = svc_disk_del(svc->disk, u->store->table, u->key);
            continue;
        }
        rc = evk_event_encode(e->value, &frame, &len);
        if (!rc)
            rc = svc_disk_put(svc->disk, u->store->table, u->key, e->partition, frame, len);
        free(frame);
    }
    if (rc) {
        svc_disk_abort(svc->disk);
        return rc;
    }
    return stores_sync(svc);
}

/* A disk that cannot take the committed state stops the service: its
 * checkpoints are behind but valid, so a restart (once the disk is fixed)
 * catches up from the changelog. Carrying on in memory would need a third
 * mode half on disk and half not. */
evk_err_t svc_stores_committed(evk_service_t *svc, char *errstr, size_t errstr_size) {
    evk_err_t rc = EVK_OK;
    if (svc->disk && svc->nundo && (rc = stores_flush(svc)))
        return evk__fail(rc, errstr, errstr_size,
                         "the committed state cannot be written to disk (state.dir); a "
                         "restart catches up from the changelog");
    for (size_t i = 0; i < svc->nundo; i++) {
        store_entry_t **link = store_link(svc->undo[i].store, svc->undo[i].key);
        if (*link && !(*link)->value) store_unlink(svc->undo[i].store, link);
    }
    /* Reads fill the cache too, in batches that write nothing. */
    for (size_t i = 0; i < svc->nstores && svc->disk; i++)
        if (svc->stores[i]->entries > svc->cache_entries) store_uncache(svc->stores[i]);
    return EVK_OK;
}

/* The state directory of this instance: state.dir/<group>/<instance>. */
evk_err_t svc_stores_open(evk_service_t *svc, char *errstr, size_t errstr_size) {
    int64_t cache = STORE_CACHE_DEFAULT;
    const char *dir = evk_config_get_string(svc->cfg, "state.dir", NULL);
    evk_err_t rc =
        evk_config_get_int(svc->cfg, "state.cache_entries", cache, &cache, errstr, errstr_size);
    if (!rc && cache < 0)
        rc = evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                       "state.cache_entries: must be at least 0, got %lld", (long long)cache);
    int standby = 1;
    if (!rc)
        rc = evk_config_get_bool(svc->cfg, "state.standby", 1, &standby, errstr, errstr_size);
    if (rc || !dir || !*dir || !svc->nstores || svc->disk) return rc;
    svc->cache_entries = (size_t)cache;
    svc->standby_on = standby;
    if (svc->nstores >= SVC_DISK_MAX_TABLES)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: %zu stores, at most %d can be kept on disk", svc->name,
                         svc->nstores, SVC_DISK_MAX_TABLES - 1);
    size_t n = strlen(dir) + strlen(svc->group_id) + strlen(svc->instance_id) + 3;
    char *path = malloc(n);
    if (!path) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    snprintf(path, n, "%s/%s/%s", dir, svc->group_id, svc->instance_id);
    rc = svc_disk_open(path, &svc->disk, errstr, errstr_size);
    for (size_t i = 0; i < svc->nstores && !rc; i++)
        if (svc_disk_table(svc->disk, evk_schema_type(svc->stores[i]->schema),
                           &svc->stores[i]->table))
            rc = evk__fail(EVK_ERR_IO, errstr, errstr_size, "state %s: cannot open table %s",
                           path, evk_schema_type(svc->stores[i]->schema));
    if (!rc) {
        char entries[24];
        snprintf(entries, sizeof(entries), "%lld", (long long)cache);
        evk_log(EVK_LOG_INFO, svc->name, "state on disk", "dir", path, "cache_entries", entries,
                "standby", standby ? "true" : "false", NULL);
    }
    free(path);
    return rc;
}

/* ---- public API ---- */

const evk_event_t *evk_store_get(const evk_store_t *st, const char *key) {
    if (!st || !key) return NULL;
    return store_lookup(st, key);
}

typedef struct {
    const evk_store_t *st;
    int (*cb)(const char *key, const evk_event_t *value, void *opaque);
    void *opaque;
    size_t count;
    int stopped;
} store_walk_t;

/* A key on disk that the map does not shadow, of a held partition. */
static int disk_key_visible(const store_walk_t *w, const char *key, int32_t partition) {
    return store_holds(w->st, partition) && !*store_link(w->st, key);
}

static int walk_disk_key(const char *key, size_t key_len, int32_t partition, const void *frame,
                         size_t len, void *opaque) {
    store_walk_t *w = opaque;
    char *k = strndup(key, key_len);
    if (!k) return 1;
    if (disk_key_visible(w, k, partition)) {
        w->count++;
        if (w->cb) {
            evk_event_t *ev = store_decode(w->st, k, frame, len);
            w->stopped = ev && w->cb(k, ev, w->opaque);
            evk_event_destroy(ev);
        }
    }
    free(k);
    return w->stopped;
}

/* The map's values, then the keys on disk it does not hold. */
static size_t store_walk(store_walk_t *w) {
    const evk_store_t *st = w->st;
    for (size_t i = 0; i < st->nbuckets && !w->stopped; i++)
        for (const store_entry_t *e = st->buckets[i]; e && !w->stopped; e = e->next)
            if (e->value) {
                w->count++;
                w->stopped = w->cb && w->cb(e->key, e->value, w->opaque);
            }
    if (store_disk(st) && !w->stopped)
        svc_disk_scan(store_disk(st), st->table, walk_disk_key, w);
    return w->count;
}

size_t evk_store_count(const evk_store_t *st) {
    if (!st) return 0;
    if (!store_disk(st)) return st->live;
    store_walk_t w = {.st = st};
    return store_walk(&w);
}

void evk_store_foreach(const evk_store_t *st,
                       int (*cb)(const char *key, const evk_event_t *value, void *opaque),
                       void *opaque) {
    if (!st || !cb) return;
    store_walk_t w = {.st = st, .cb = cb, .opaque = opaque};
    store_walk(&w);
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
    size_t len = strlen(key);
    if (len > EVK_STORE_KEY_MAX) {
        char bytes[24];
        snprintf(bytes, sizeof(bytes), "%zu", len);
        evk_log(EVK_LOG_ERROR, ctx->svc->name,
                "store write refused: the key is longer than EVK_STORE_KEY_MAX (511) bytes",
                "store", evk_schema_type(st->schema), "key_bytes", bytes, NULL);
        return EVK_ERR_INVALID_ARG;
    }
    if (input && key_of_input(key, input)) return EVK_OK;
    evk_log(EVK_LOG_ERROR, ctx->svc->name,
            "store write refused: a store key must be the input's key, or it and "
            "EVK_STORE_KEY_SEP and more (state is partitioned like the input; re-key through a "
            "repartition topic, docs/SCALING.md)",
            "store", evk_schema_type(st->schema), "key", key, "input_key",
            input ? input : "(none: not handling an input)", NULL);
    return EVK_ERR_INVALID_ARG;
}

/* Set @p key to @p value (NULL: delete) in the open transaction, the
 * changelog record (@p value's, or a tombstone) staged first: if the write
 * cannot be recorded completely, nothing of it remains. */
static evk_err_t store_write(evk_ctx_t *ctx, evk_store_t *st, const char *key,
                             evk_event_t *value) {
    evk_service_t *svc = ctx->svc;
    size_t staged = svc->nstaged;
    char *copy = strdup(key);
    evk_event_t *prev = NULL;
    int had_entry = 0;
    evk_err_t rc = !copy   ? EVK_ERR_NOMEM
                   : value ? svc_stage(svc, value, ctx->partition, 0)
                           : svc_stage_tombstone(svc, st->schema, key, ctx->partition);
    if (!rc) rc = svc_undo_reserve(svc);
    if (!rc) rc = svc_store_set(st, copy, ctx->partition, value, &prev, &had_entry);
    if (rc) {
        svc_unstage_from(svc, staged);
        free(copy);
        return rc;
    }
    svc_undo_push(svc, st, copy, prev, had_entry);
    return EVK_OK;
}

static evk_err_t store_put(evk_ctx_t *ctx, evk_store_t *st, evk_event_t *value) {
    if (!ctx || !st || !value || evk_event_schema(value) != st->schema || !evk_event_key(value))
        return EVK_ERR_INVALID_ARG;
    evk_err_t rc = store_key_check(ctx, st, evk_event_key(value));
    return rc ? rc : store_write(ctx, st, evk_event_key(value), value);
}

evk_err_t evk_store_put(evk_ctx_t *ctx, evk_store_t *st, evk_event_t *value) {
    evk_err_t rc = store_put(ctx, st, value);
    if (rc) evk_event_destroy(value);
    return rc;
}

/* The key keeps an entry without a value until the transaction commits, so
 * that a revert puts the value back without allocating and a disk's older
 * value stays hidden. */
evk_err_t evk_store_delete(evk_ctx_t *ctx, evk_store_t *st, const char *key) {
    if (!ctx || !st || !key) return EVK_ERR_INVALID_ARG;
    evk_err_t rc = store_key_check(ctx, st, key);
    if (rc || !store_lookup(st, key)) return rc;
    return store_write(ctx, st, key, NULL);
}

/* ---- restore ----
 *
 * One consumer reads the assigned partitions of every changelog of the
 * service at once, so that the topics' fetches overlap. A record is
 * decoded once and goes to the store of its type; a tombstone to every
 * store of its topic. Each store skips what it holds already. With a
 * state directory the records go to disk as the changelog has them, in
 * chunks that each end with the checkpoints they reach. */

static int store_reads(const evk_store_t *st, const rd_kafka_message_t *m) {
    return !strcmp(evk_schema_topic(st->schema), rd_kafka_topic_name(m->rkt));
}

/* @p m's key set to @p ev (NULL: deleted) in @p st, if @p st does not hold
 * it already. */
static evk_err_t restore_put(evk_store_t *st, const rd_kafka_message_t *m, const char *key,
                             evk_event_t *ev) {
    svc_disk_t *disk = store_disk(st);
    evk_err_t rc = EVK_OK;
    if (m->offset >= st->end[m->partition] && disk)
        rc = ev ? svc_disk_put(disk, st->table, key, m->partition, m->payload, m->len)
                : svc_disk_del(disk, st->table, key);
    if (m->offset < st->end[m->partition] || disk) {
        evk_event_destroy(ev);
        return rc;
    }
    store_entry_t **link = store_link(st, key);
    if (*link && ev) {
        st->live += !(*link)->value;
        evk_event_destroy((*link)->value);
        (*link)->value = ev;
    } else if (*link) {
        store_unlink(st, link);
    } else if (ev && (rc = store_insert(st, key, m->partition, ev))) {
        evk_event_destroy(ev);
    }
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
    } while (err && evk__now_ms() < deadline && !svc_stopping(svc));
    rd_kafka_topic_destroy(rkt);
    if (err)
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "%s: metadata: %s", topic,
                         rd_kafka_err2str(err));
    return EVK_OK;
}

/* Where to read partition @p p of @p topic from: the first offset that a
 * store of it does not hold, in memory or on disk (the start for a store
 * that holds nothing of it, which from now on holds it empty). */
static evk_err_t restore_from(evk_service_t *svc, const char *topic, int32_t p, int64_t *from) {
    *from = INT64_MAX;
    for (size_t i = 0; i < svc->nstores; i++) {
        evk_store_t *st = svc->stores[i];
        if (strcmp(evk_schema_topic(st->schema), topic)) continue;
        if (store_track(st, p)) return EVK_ERR_NOMEM;
        if (st->end[p] < 0 && svc->disk)
            st->end[p] = svc_disk_checkpoint(svc->disk, evk_schema_type(st->schema), p);
        int64_t at = st->end[p] >= 0 ? st->end[p] : RD_KAFKA_OFFSET_BEGINNING;
        if (st->end[p] < 0) st->end[p] = 0;
        if (at < *from) *from = at;
    }
    return EVK_OK;
}

/* Store @p i's changelog, or NULL when an earlier store shares it: a topic
 * two stores share is read once. */
static const char *changelog_once(const evk_service_t *svc, size_t i) {
    const char *topic = evk_schema_topic(svc->stores[i]->schema);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(evk_schema_topic(svc->stores[j]->schema), topic)) return NULL;
    return topic;
}

/* The partitions @p parts of every changelog that has them, each from where
 * its stores' held state ends. */
static evk_err_t restore_list(evk_service_t *svc, rd_kafka_t *rk, const int32_t *parts,
                              size_t nparts, int64_t deadline,
                              rd_kafka_topic_partition_list_t *list, char *errstr,
                              size_t errstr_size) {
    for (size_t i = 0; i < svc->nstores; i++) {
        const char *topic = changelog_once(svc, i);
        int partitions = 0;
        if (!topic) continue;
        evk_err_t rc =
            svc_topic_partitions(svc, rk, topic, deadline, &partitions, errstr, errstr_size);
        for (size_t k = 0; k < nparts && !rc; k++) {
            int64_t from;
            if (restore_from(svc, topic, parts[k], &from))
                return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore: out of memory");
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
        if (store_reads(st, m) && p >= 0 && p < st->nend && st->end[p] >= 0 &&
            next > st->end[p])
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
        return evk__fail(STORE_TRUNCATED, errstr, errstr_size,
                         "restore %s [%d]: the held state ends past what the changelog has: %s",
                         topic, (int)m->partition, rd_kafka_message_errstr(m));
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        return evk__fail(EVK_ERR_FATAL, errstr, errstr_size, "restore %s: %s", topic,
                         rd_kafka_message_errstr(m));
    if (m->err) return EVK_OK; /* transient: librdkafka retries */
    uint64_t n = atomic_fetch_add(&svc->stats.restored, 1) + 1;
    evk_err_t rc = restore_apply(svc, m);
    stores_reach(svc, m, m->offset + 1);
    if (!rc && svc->disk && n % STORE_RESTORE_CHUNK == 0) {
        rc = stores_sync(svc);
        if (!rc) rc = svc_disk_begin(svc->disk);
    }
    if (rc == EVK_ERR_IO)
        return evk__fail(rc, errstr, errstr_size, "restore %s: cannot write the state to disk",
                         topic);
    if (rc)
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore %s: out of memory",
                         topic);
    return EVK_OK;
}

/* Read every listed partition up to its end (the last stable offset, since
 * the consumer reads committed records only). A stop request ends it early. */
static evk_err_t restore_read(evk_service_t *svc, rd_kafka_t *rk,
                              const rd_kafka_topic_partition_list_t *list, int64_t deadline,
                              char *errstr, size_t errstr_size) {
    char *at_end = calloc((size_t)list->cnt, 1);
    if (!at_end) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "restore: out of memory");
    int left = list->cnt;
    evk_err_t rc = EVK_OK;
    while (left > 0 && !rc && !svc_stopping(svc)) {
        if (evk__now_ms() > deadline) {
            rc = evk__fail(EVK_ERR_TIMEOUT, errstr, errstr_size,
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
 * assign() wants a group.id; nothing is ever committed under it. The
 * standby replicas' (@p standby) tails the changelogs for as long as the
 * service runs: it waits for records as a fetch normally does, and keeps
 * little of them queued, since they are taken only between batches. */
static rd_kafka_t *restore_consumer(const evk_service_t *svc, int standby, char *errstr,
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
                              standby ? "500" : "10",
                              "queued.max.messages.kbytes",
                              standby ? "4096" : "65536",
                              NULL};
    rd_kafka_conf_t *conf = svc_kafka_conf(svc, kv, errstr, errstr_size);
    if (!conf) return NULL;
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "restore consumer: %s", why);
    }
    return rk;
}

/* The cluster's id, asked for: rd_kafka_clusterid() only waits for
 * metadata that something else requests, and on a new handle nothing did
 * for about a second, which every first assignment of an instance waited. */
static char *cluster_id(rd_kafka_t *rk) {
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, STORE_CLUSTER_ID_TIMEOUT_MS)) return NULL;
    rd_kafka_metadata_destroy(md);
    return rd_kafka_clusterid(rk, 0);
}

/* The state on disk is of the cluster @p rk talks to, or it goes: its
 * checkpoints would be offsets of another cluster's changelogs. Asked once
 * a run; a cluster that does not tell its id in time is asked next time. */
static evk_err_t stores_claim_disk(evk_service_t *svc, rd_kafka_t *rk) {
    unsigned tables[SVC_DISK_MAX_TABLES];
    int cleared = 0;
    if (!svc->disk || svc->disk_claimed) return EVK_OK;
    char *id = cluster_id(rk);
    if (!id) return EVK_OK;
    for (size_t i = 0; i < svc->nstores; i++)
        tables[i] = svc->stores[i]->table;
    evk_err_t rc = svc_disk_claim(svc->disk, id, tables, svc->nstores, &cleared);
    if (!rc && cleared)
        evk_log(EVK_LOG_WARN, svc->name, "state on disk was of another cluster: cleared",
                "cluster", id, NULL);
    svc->disk_claimed = !rc;
    rd_kafka_mem_free(rk, id);
    return rc;
}

/* The restore consumer is made once and kept, unassigned, between restores:
 * a new one cost up to a second of connecting per assignment. Idle between
 * them, it also answers the metadata questions of an assignment at once;
 * a consumer that tails partitions holds such a request behind its
 * long-poll fetch (a broker answers a connection's requests in order). */
static rd_kafka_t *stores_restore_rk(evk_service_t *svc, char *errstr, size_t errstr_size) {
    if (!svc->restore_rk) svc->restore_rk = restore_consumer(svc, 0, errstr, errstr_size);
    return svc->restore_rk;
}

/* Bring the stores' partitions @p parts up to the end of their changelogs. */
static evk_err_t stores_catch_up(evk_service_t *svc, const int32_t *parts, size_t nparts,
                                 char *errstr, size_t errstr_size) {
    rd_kafka_t *rk = stores_restore_rk(svc, errstr, errstr_size);
    if (!rk) return EVK_ERR_KAFKA;
    if (stores_claim_disk(svc, rk))
        return evk__fail(EVK_ERR_IO, errstr, errstr_size,
                         "restore: cannot clear the state on disk");
    int64_t deadline = evk__now_ms() + svc->restore_timeout_ms;
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new((int)(nparts * svc->nstores));
    evk_err_t rc = restore_list(svc, rk, parts, nparts, deadline, list, errstr, errstr_size);
    if (!rc && svc->disk && svc_disk_begin(svc->disk))
        rc = evk__fail(EVK_ERR_IO, errstr, errstr_size,
                       "restore: cannot write the state to disk");
    if (!rc && list->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
        rc = err ? evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "restore: assign: %s",
                             rd_kafka_err2str(err))
                 : restore_read(svc, rk, list, deadline, errstr, errstr_size);
    }
    /* What was read is on disk with its checkpoints, even when the read
     * stopped early: the next restore goes on from there. */
    if (svc->disk && stores_sync(svc) && !rc)
        rc = evk__fail(EVK_ERR_IO, errstr, errstr_size,
                       "restore: cannot write the state to disk");
    rd_kafka_topic_partition_list_destroy(list);
    /* After a failed read the consumer may keep a partition's error (an
     * offset out of range): the next restore gets a new one. */
    if (rc) {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        svc->restore_rk = NULL;
    } else {
        rd_kafka_assign(rk, NULL);
    }
    return rc;
}

/* ---- standby replicas ----
 * With the state on disk, an instance also keeps the partitions of its
 * changelogs that it does not hold (state.standby, on by default): a
 * consumer of its own tails them between batches into the same tables,
 * with their checkpoints, so that a partition which moves here restores
 * from a recent checkpoint rather than from wherever this instance last
 * held it, or from the start. This is Kafka Streams' standby replicas with
 * every partition not held as the standby set. It costs disk space and the
 * writes of every other instance's state, not memory: the records go to
 * disk, never to the map. */

typedef struct {
    const char *topic; /* a store's schema's, which outlives the standby */
    int32_t partition;
    int64_t next; /* the offset to read next, -1: not known yet */
    int dirty;    /* next moved since the last checkpoint */
} standby_part_t;

struct svc_standby_s {
    rd_kafka_t *rk;
    standby_part_t *v;
    size_t n;
    int64_t polled_ms;
};

/* Standby records are taken at most this often, and at most this many at a
 * time, so that the input never waits long behind them. */
#define STANDBY_EVERY_MS 200
#define STANDBY_MAX_RECORDS 5000

/* Neither consumer joined a group: there is nothing to close, and with the
 * brokers gone a close would only wait. */
void svc_stores_close(evk_service_t *svc) {
    svc_standby_t *sb = svc->standby;
    if (svc->restore_rk)
        rd_kafka_destroy_flags(svc->restore_rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    svc->restore_rk = NULL;
    if (!sb) return;
    if (sb->rk) rd_kafka_destroy_flags(sb->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(sb->v);
    free(sb);
    svc->standby = NULL;
}

static int standby_held(const evk_service_t *svc, const char *topic, int32_t p) {
    for (size_t i = 0; i < svc->nstores; i++)
        if (!strcmp(evk_schema_topic(svc->stores[i]->schema), topic) &&
            store_holds(svc->stores[i], p))
            return 1;
    return 0;
}

/* Every partition of every changelog that no store holds, each from its
 * checkpoint. */
static evk_err_t standby_list(evk_service_t *svc, rd_kafka_t *rk,
                              rd_kafka_topic_partition_list_t *list) {
    char errstr[256];
    int64_t deadline = evk__now_ms() + svc->restore_timeout_ms;
    for (size_t i = 0; i < svc->nstores; i++) {
        const char *topic = changelog_once(svc, i);
        int partitions = 0;
        if (!topic) continue;
        if (svc_topic_partitions(svc, rk, topic, deadline, &partitions, errstr, sizeof errstr))
            return EVK_ERR_KAFKA;
        for (int32_t p = 0; p < partitions; p++) {
            if (standby_held(svc, topic, p)) continue;
            int64_t from = INT64_MAX;
            for (size_t k = 0; k < svc->nstores; k++) {
                evk_store_t *o = svc->stores[k];
                if (strcmp(evk_schema_topic(o->schema), topic)) continue;
                if (store_track(o, p)) return EVK_ERR_NOMEM;
                int64_t at = svc_disk_checkpoint(svc->disk, evk_schema_type(o->schema), p);
                at = at >= 0 ? at : RD_KAFKA_OFFSET_BEGINNING;
                if (at < from) from = at;
            }
            rd_kafka_topic_partition_list_add(list, topic, p)->offset = from;
        }
    }
    return EVK_OK;
}

static evk_err_t standby_start(evk_service_t *svc) {
    if (!svc->standby && !(svc->standby = calloc(1, sizeof *svc->standby)))
        return EVK_ERR_NOMEM;
    if (svc->standby->rk) return EVK_OK;
    char errstr[512];
    svc->standby->rk = restore_consumer(svc, 1, errstr, sizeof errstr);
    return svc->standby->rk ? EVK_OK : EVK_ERR_KAFKA;
}

/* The topic name a store holds for @p topic (the list's copy goes with it). */
static const char *standby_topic(const evk_service_t *svc, const char *topic) {
    for (size_t k = 0; k < svc->nstores; k++)
        if (!strcmp(evk_schema_topic(svc->stores[k]->schema), topic))
            return evk_schema_topic(svc->stores[k]->schema);
    return NULL;
}

/* After an assignment: the standby set becomes every partition not held. A
 * failure leaves the instance without standby replicas until the next
 * assignment (its restores read more), which is said, not fatal. The
 * metadata it needs is asked through the idle restore consumer. */
static void standby_assign(evk_service_t *svc) {
    if (!svc->disk || !svc->standby_on) return;
    char errstr[256];
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    standby_part_t *v = NULL;
    rd_kafka_t *rk = NULL;
    evk_err_t rc = list ? standby_start(svc) : EVK_ERR_NOMEM;
    if (!rc && !(rk = stores_restore_rk(svc, errstr, sizeof errstr))) rc = EVK_ERR_KAFKA;
    if (!rc && stores_claim_disk(svc, rk)) rc = EVK_ERR_IO;
    if (!rc && svc->disk_claimed) rc = standby_list(svc, rk, list);
    if (!rc && list->cnt && !(v = calloc((size_t)list->cnt, sizeof *v))) rc = EVK_ERR_NOMEM;
    if (!rc && rd_kafka_assign(svc->standby->rk, list)) rc = EVK_ERR_KAFKA;
    for (int i = 0; !rc && i < list->cnt; i++)
        v[i] = (standby_part_t){standby_topic(svc, list->elems[i].topic),
                                list->elems[i].partition, -1, 0};
    if (rc) {
        evk_log(EVK_LOG_WARN, svc->name, "no standby replicas until the next assignment",
                "reason", evk_err2str(rc), NULL);
        free(v);
        v = NULL;
        if (svc->standby && svc->standby->rk) rd_kafka_assign(svc->standby->rk, NULL);
    }
    if (svc->standby) {
        free(svc->standby->v);
        svc->standby->v = v;
        svc->standby->n = v ? (size_t)list->cnt : 0;
    }
    if (list) rd_kafka_topic_partition_list_destroy(list);
}

static standby_part_t *standby_part(svc_standby_t *sb, const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < sb->n; i++)
        if (sb->v[i].partition == m->partition && !strcmp(sb->v[i].topic, topic))
            return &sb->v[i];
    return NULL;
}

/* One record (or the end of a partition) into the open disk transaction. */
static evk_err_t standby_take(evk_service_t *svc, const rd_kafka_message_t *m) {
    if (!m->rkt) return EVK_OK; /* a client-wide error: librdkafka recovers */
    standby_part_t *sp = standby_part(svc->standby, m);
    /* A partition held since it was fetched is the held state's to write. */
    if (!sp || standby_held(svc, sp->topic, sp->partition)) return EVK_OK;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        sp->dirty |= sp->next != m->offset;
        sp->next = m->offset;
        return EVK_OK;
    }
    if (m->err) return EVK_OK; /* transient; a truncated changelog is the restore's to find */
    atomic_fetch_add(&svc->stats.standby, 1);
    evk_err_t rc = restore_apply(svc, m);
    sp->next = m->offset + 1;
    sp->dirty = 1;
    return rc;
}

static evk_err_t standby_checkpoints(evk_service_t *svc) {
    svc_standby_t *sb = svc->standby;
    evk_err_t rc = EVK_OK;
    for (size_t i = 0; i < sb->n && !rc; i++) {
        standby_part_t *sp = &sb->v[i];
        for (size_t k = 0; k < svc->nstores && sp->dirty && !rc; k++)
            if (!strcmp(evk_schema_topic(svc->stores[k]->schema), sp->topic))
                rc = svc_disk_set_checkpoint(svc->disk, evk_schema_type(svc->stores[k]->schema),
                                             sp->partition, sp->next);
        sp->dirty = 0;
    }
    return rc;
}

evk_err_t svc_stores_standby(evk_service_t *svc, char *errstr, size_t errstr_size) {
    svc_standby_t *sb = svc->standby;
    int64_t now = evk__now_ms();
    if (!sb || !sb->n || now - sb->polled_ms < STANDBY_EVERY_MS) return EVK_OK;
    sb->polled_ms = now;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(sb->rk, 0);
    if (!m) return EVK_OK;
    evk_err_t rc = svc_disk_begin(svc->disk);
    for (size_t n = 0; m;
         m = ++n < STANDBY_MAX_RECORDS && !rc ? rd_kafka_consumer_poll(sb->rk, 0) : NULL) {
        if (!rc) rc = standby_take(svc, m);
        rd_kafka_message_destroy(m);
    }
    if (!rc) rc = standby_checkpoints(svc);
    if (rc)
        svc_disk_abort(svc->disk);
    else
        rc = svc_disk_commit(svc->disk);
    if (rc == EVK_ERR_NOMEM)
        return evk__fail(rc, errstr, errstr_size, "standby replicas: out of memory");
    return rc ? evk__fail(EVK_ERR_IO, errstr, errstr_size,
                          "standby replicas: cannot write the state to disk (state.dir)")
              : EVK_OK;
}

void svc_stores_drop(evk_service_t *svc) {
    for (size_t i = 0; i < svc->nstores; i++)
        store_keep(svc->stores[i], NULL, 0);
}

/* The state of @p parts on disk no longer matches the changelog: it goes,
 * checkpoints included. */
static evk_err_t stores_wipe(evk_service_t *svc, const int32_t *parts, size_t nparts) {
    evk_err_t rc = svc_disk_begin(svc->disk);
    for (size_t i = 0; i < svc->nstores && !rc; i++)
        rc = svc_disk_wipe(svc->disk, svc->stores[i]->table,
                           evk_schema_type(svc->stores[i]->schema), parts, nparts);
    if (rc) {
        svc_disk_abort(svc->disk);
        return rc;
    }
    return svc_disk_commit(svc->disk);
}

/* In memory: partitions held from before are caught up, the others read
 * whole, and every other partition is dropped. On disk: every partition is
 * read from its checkpoint, and memory starts empty. A failed or
 * interrupted restore holds nothing, so that no partial state is used. A
 * held state that the changelog no longer covers (truncated) is dropped
 * and read whole again. */
evk_err_t svc_stores_restore(evk_service_t *svc, const int32_t *parts, size_t nparts,
                             char *errstr, size_t errstr_size) {
    if (!svc->nstores) return EVK_OK;
    for (size_t i = 0; i < svc->nstores; i++)
        store_keep(svc->stores[i], parts, svc->disk ? 0 : nparts);
    evk_err_t rc = nparts ? stores_catch_up(svc, parts, nparts, errstr, errstr_size) : EVK_OK;
    if (rc == STORE_TRUNCATED) {
        evk_log(EVK_LOG_WARN, svc->name, "restoring from the start", "reason", errstr, NULL);
        svc_stores_drop(svc);
        rc = svc->disk && stores_wipe(svc, parts, nparts)
                 ? evk__fail(EVK_ERR_IO, errstr, errstr_size, "cannot clear the state on disk")
                 : stores_catch_up(svc, parts, nparts, errstr, errstr_size);
    }
    if (rc || svc_stopping(svc)) svc_stores_drop(svc);
    if (!rc && !svc_stopping(svc)) standby_assign(svc);
    return rc == STORE_TRUNCATED ? EVK_ERR_KAFKA : rc;
}
