/* Private interface between service.c (loop, dispatch), service_txn.c
 * (transactions, staging, undo) and store.c (state stores). Not installed. */
#ifndef EVK_SERVICE_INT_H
#define EVK_SERVICE_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "evkit/log.h"
#include "evkit/service.h"

typedef struct {
    const evk_schema_t *schema;
    evk_handler_t *handler;
    void *opaque;
} svc_route_t;

/* An encoded record a handler asked for. Staged rather than produced at
 * once, because a record already in the transaction cannot be taken back
 * when the handler then fails. */
typedef struct {
    const char *topic; /* owned by the catalog */
    const char *type;  /* owned by the catalog */
    char *key;
    void *value;
    size_t len;
    rd_kafka_headers_t *headers;
    int32_t partition; /* RD_KAFKA_PARTITION_UA: by key; else explicit */
    int is_output;     /* an emitted event (counted), not a changelog record */
} svc_staged_t;

/* The value a store key had before a put or delete of the open
 * transaction. */
typedef struct {
    evk_store_t *store;
    char *key;
    evk_event_t *prev; /* NULL: absent, or deleted earlier in the transaction */
    int had_entry;     /* the key had an entry in memory (prev may still be NULL) */
} svc_undo_t;

typedef struct svc_disk_s svc_disk_t;
typedef struct svc_standby_s svc_standby_t;

/* An input whose outputs could not be produced even though its handler
 * succeeded: after the batch is aborted and replayed, it is dead-lettered
 * instead of handled, so that one message cannot stall the service. */
typedef struct {
    char *topic;
    int32_t partition;
    int64_t offset;
    evk_err_t err;
    char *reason;
    int attempts;
} svc_poison_t;

/* What became of the input being handled, for its log line and metrics. */
typedef struct {
    const char *type;    /* NULL until decoded; owned by the catalog */
    const char *outcome; /* "ok", "skipped" (no handler) or "dead_letter" */
    char reason[256];    /* why it was dead-lettered */
    unsigned attempts;   /* handler calls */
    int64_t handler_ns;  /* their total time */
} svc_input_t;

struct evk_ctx_s {
    evk_service_t *svc;
    const evk_event_t *cause; /* NULL in the ready callback */
    int32_t partition;        /* the input's partition: its stores' changelog partition */
    unsigned emitted;         /* events made so far by this call: the next id's position */
};

struct evk_service_s {
    char *name;
    char *group_id;
    char *txn_id;
    char *instance_id; /* see instance.c */
    int slot;          /* its slot on this host; 0 for an explicit id */
    int lock_fd;       /* holds the instance's lock; -1 when none */
    int static_membership;
    const evk_config_t *cfg;
    const evk_catalog_t *cat;
    int64_t batch_max, commit_interval_ms;
    int64_t retry_max, retry_backoff_ms, retry_backoff_max_ms;
    int64_t restore_timeout_ms;
    int64_t shutdown_timeout_ms;
    int64_t message_max_bytes;     /* the producer's message.max.bytes */
    int64_t dead_letter_max_bytes; /* what a dead letter is cut to fit */
    evk_log_level_t event_log_level;
    const evk_setting_t *own_settings; /* evk_service_settings(); NULL: none */

    svc_route_t *routes;
    size_t nroutes;
    evk_store_t **stores;
    size_t nstores;
    evk_ready_cb_t *ready_cb;
    void *ready_opaque;

    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    /* Partition numbers of the current assignment: the stores hold these. */
    int32_t *held;
    size_t nheld;
    int64_t unassigned_since; /* for "waiting for partitions" reports; 0 when assigned */
    int64_t waiting_logged;
    /* Lock-free, hence async-signal-safe, and race-free across threads. */
    atomic_int stop;
    atomic_int_fast64_t stop_ms; /* when evk_service_stop() was first called */

    /* The open transaction. next/first hold, per input partition of the
     * batch, the offset to commit and the offset to rewind to. */
    int txn_open;
    rd_kafka_topic_partition_list_t *next, *first;
    int64_t batch_start_ms;
    uint64_t batch_inputs, batch_outputs, batch_dead;
    unsigned aborts_in_row; /* paces replays of a batch that keeps failing */
    /* A dead letter of the open batch could not be written (why: the
     * last such error); batches so aborted in a row, for the alarm. */
    int batch_dlq_failed;
    char dlq_why[256];
    unsigned dlq_failures_in_row;
    /* Whether the cluster applies transactional offsets (see
     * service_txn.c); probed once per run. */
    enum { SVC_OFFSETS_UNKNOWN, SVC_OFFSETS_TXN, SVC_OFFSETS_MIRROR } offsets_mode;

    svc_staged_t *staged;
    size_t nstaged, staged_cap;
    svc_undo_t *undo;
    size_t nundo, undo_cap;
    /* The stores' state on disk (store_disk.c), or NULL: in memory only. */
    svc_disk_t *disk;
    int disk_claimed;      /* its cluster checked (store.c) */
    uint64_t disk_flushes; /* commits written to disk (store.c) */
    size_t cache_entries;  /* per store, what stays in memory after a commit */
    /* The standby replicas of the partitions not held (store.c), or NULL. */
    svc_standby_t *standby;
    rd_kafka_t *restore_rk; /* kept between restores (store.c), or NULL */
    int standby_on;         /* state.standby */
    svc_poison_t *poison;
    size_t npoison, poison_cap;

    /* Failure raised where it cannot be returned (the rebalance callback, a
     * store read): the loop stops on it, and no batch commits meanwhile. */
    evk_err_t cb_err;
    char cb_errstr[512];

    svc_input_t input;

    struct {
        atomic_uint_fast64_t consumed, produced, dead_letters, retries, commits, aborts,
            restored, standby;
    } stats;
    struct svc_metrics_s *metrics; /* per-type counters, latency, the HTTP endpoint */
};

/* How long one blocking librdkafka call may wait before it is called again:
 * an outage is waited out in such slices, each ending with a look at the
 * stop request. */
#define SVC_CALL_SLICE_MS 1000

/* Internal result of the produce/commit helpers: the batch was aborted and
 * the consumer rewound, so the caller replays it rather than fails. */
#define SVC_REPLAY EVK_ERR_RETRY

/* ---- service.c ---- */
int svc_stopping(const evk_service_t *svc);
/* When a stop must be complete: shutdown_timeout_ms after it was asked
 * for; INT64_MAX while not stopping. */
int64_t svc_stop_deadline(const evk_service_t *svc);
/* The timeout for one blocking librdkafka call that is retried until it
 * succeeds: @p slice_ms, so that a stop request is noticed, and while
 * stopping no later than @p reserve_ms before the stop deadline (0 once
 * that point has passed). */
int svc_call_timeout(const evk_service_t *svc, int slice_ms, int64_t reserve_ms);
/* Backoff before try @p attempt + 1: retry_backoff_ms doubling, capped. */
int64_t svc_backoff_ms(const evk_service_t *svc, unsigned attempt);
/* Sleep up to @p ms in short slices serving the producer; 0 if a stop
 * request cut it short. */
int svc_wait(evk_service_t *svc, int64_t ms);
/* A client config: the service's kafka properties, then the name/value
 * pairs of @p kv (NULL-terminated), then evkit's log callback. */
rd_kafka_conf_t *svc_kafka_conf(const evk_service_t *svc, const char *const *kv, char *errstr,
                                size_t errstr_size);

/* ---- instance.c ---- */
/* Set instance_id, slot and lock_fd (see instance.c). */
evk_err_t svc_instance_claim(evk_service_t *svc, char *errstr, size_t errstr_size);
void svc_instance_release(evk_service_t *svc);

/* Partition count of @p topic; 0 if it does not exist yet. Retries
 * transient metadata errors until @p deadline (evk__now_ms() scale) or a stop
 * request. */
evk_err_t svc_topic_partitions(const evk_service_t *svc, rd_kafka_t *rk, const char *topic,
                               int64_t deadline, int *out, char *errstr, size_t errstr_size);

/* ---- service_txn.c ---- */
/* @p arr resized to hold at least @p need elements of @p elem bytes, or
 * NULL when out of memory; *cap is updated on success only. */
void *svc_grow(void *arr, size_t *cap, size_t need, size_t elem);
evk_err_t svc_txn_begin(evk_service_t *svc, char *errstr, size_t errstr_size);
/* Encode @p ev (not consumed) into the staging area, for @p partition
 * (RD_KAFKA_PARTITION_UA: the partitioner picks by key). */
evk_err_t svc_stage(evk_service_t *svc, evk_event_t *ev, int32_t partition, int is_output);
/* Stage a tombstone of @p key for @p schema's topic, @p partition. */
evk_err_t svc_stage_tombstone(evk_service_t *svc, const evk_schema_t *schema, const char *key,
                              int32_t partition);
void svc_unstage_from(evk_service_t *svc, size_t from);
/* Produce the staged records. EVK_OK; SVC_REPLAY; EVK_ERR_FATAL or
 * EVK_ERR_KAFKA with errstr. @p cause is the input (NULL for the ready
 * callback). */
evk_err_t svc_flush_staged(evk_service_t *svc, const rd_kafka_message_t *cause, char *errstr,
                           size_t errstr_size);
/* Produce the dead letter of @p msg, cut to dead_letter_max_bytes if need
 * be, and advance past it; returns like svc_flush_staged(). A dead letter
 * that cannot be written aborts and replays the batch (SVC_REPLAY). */
evk_err_t svc_dead_letter(evk_service_t *svc, const rd_kafka_message_t *msg, evk_err_t err,
                          const char *reason, int attempts, char *errstr, size_t errstr_size);
void svc_advance(evk_service_t *svc, const rd_kafka_message_t *msg);
/* The producer's delivery report callback (the opaque is the service):
 * notes dead letters the cluster refused. */
void svc_delivered(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);
/* The consumer's offset commit callback (the opaque is the service): logs
 * and counts a failed commit of the offsets that mirror a transaction's. */
void svc_offsets_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets, void *opaque);
const svc_poison_t *svc_poison_find(const evk_service_t *svc, const rd_kafka_message_t *msg);
void svc_poison_clear(evk_service_t *svc);
/* Commit the open transaction (EVK_OK without one). When librdkafka says it
 * must be aborted instead, it is, and the result is SVC_REPLAY. With
 * @p replay the consumer is then rewound to the batch's first offsets and
 * the next try is paced; without, the partitions are about to be given up.
 * Errors: EVK_ERR_FATAL, EVK_ERR_KAFKA. */
evk_err_t svc_txn_commit(evk_service_t *svc, int replay, char *errstr, size_t errstr_size);
/* Abort the open transaction and revert its in-memory effects; SVC_REPLAY
 * on success, @p replay as above. */
evk_err_t svc_txn_abort(evk_service_t *svc, int replay, char *errstr, size_t errstr_size);
/* Forget the open transaction without talking to Kafka (after a fatal
 * error): in-memory state is reverted like on abort. */
void svc_txn_forget(evk_service_t *svc);
/* Make room for one undo entry, so that the push after a store change
 * cannot fail. */
evk_err_t svc_undo_reserve(evk_service_t *svc);
/* Record @p prev as @p key's value before the last put or delete; @p key
 * is a malloc()ed copy that passes to the log. */
void svc_undo_push(evk_service_t *svc, evk_store_t *st, char *key, evk_event_t *prev,
                   int had_entry);
void svc_undo_revert(evk_service_t *svc, size_t mark);
/* Free everything the transaction state holds (service destruction). */
void svc_txn_state_free(evk_service_t *svc);

/* ---- service_settings.c ---- */
/* Check the service's config group: the loop's keys and own_settings, each
 * with its type; any other key from a file is an error. */
evk_err_t svc_settings_check(const evk_service_t *svc, char *errstr, size_t errstr_size);

/* ---- store.c ---- */
evk_store_t *svc_store_new(evk_service_t *svc, const evk_schema_t *schema);
void svc_store_destroy(evk_store_t *st);
const evk_schema_t *svc_store_schema(const evk_store_t *st);
/* Set @p key to @p value (NULL: deleted, an entry kept until the commit so
 * that the disk's older value stays hidden); *prev gets the old value,
 * whose ownership passes to the caller, and *had_entry whether the key had
 * an entry. */
evk_err_t svc_store_set(evk_store_t *st, const char *key, int32_t partition, evk_event_t *value,
                        evk_event_t **prev, int *had_entry);
/* Undo a svc_store_set() of the open transaction (newest first); cannot fail. */
void svc_store_unset(evk_store_t *st, const char *key, evk_event_t *prev, int had_entry);
/* Make every store of @p svc hold exactly partitions @p parts of its
 * changelog, up to its end (everything committed, last value wins): those
 * held already are caught up, the others read whole or from their
 * checkpoint on disk, the rest dropped. */
evk_err_t svc_stores_restore(evk_service_t *svc, const int32_t *parts, size_t nparts,
                             char *errstr, size_t errstr_size);
/* Forget every key held in memory and where the held state ends: nothing
 * is held (what is on disk stays, with its checkpoint). */
void svc_stores_drop(evk_service_t *svc);
/* A record of the service's own was delivered: if it went to a store's
 * changelog, that store's held state of its partition ends after it, so
 * that a catch-up after the next rebalance starts there. */
void svc_stores_written(evk_service_t *svc, const rd_kafka_message_t *msg);
/* The open transaction committed: what it wrote goes to disk with the
 * checkpoints, deletions leave memory, and memory past cache_entries is
 * let go. Called before the undo log is forgotten. EVK_ERR_IO: the disk
 * refused it (the service must stop). */
evk_err_t svc_stores_committed(evk_service_t *svc, char *errstr, size_t errstr_size);

/* Open the state directory, when state.dir is set and the service has
 * stores (at start, after the stores were added). */
evk_err_t svc_stores_open(evk_service_t *svc, char *errstr, size_t errstr_size);
/* Between batches: bring the standby replicas on disk up to date with what
 * their changelogs have, a bounded amount per call. EVK_ERR_IO when the disk
 * refuses the writes. */
evk_err_t svc_stores_standby(evk_service_t *svc, char *errstr, size_t errstr_size);
/* The restore and standby consumers go (the service's end). */
void svc_stores_close(evk_service_t *svc);

/* ---- store_disk.c ---- */
#define SVC_DISK_MAX_TABLES 64
evk_err_t svc_disk_open(const char *dir, svc_disk_t **out, char *errstr, size_t errstr_size);
void svc_disk_close(svc_disk_t *d);
/* The table named @p name (one per store), created if new. */
evk_err_t svc_disk_table(svc_disk_t *d, const char *name, unsigned *out);
/* One write transaction at a time; puts, deletes, checkpoints and wipes
 * need it open. */
evk_err_t svc_disk_begin(svc_disk_t *d);
evk_err_t svc_disk_commit(svc_disk_t *d);
void svc_disk_abort(svc_disk_t *d);
evk_err_t svc_disk_put(svc_disk_t *d, unsigned table, const char *key, int32_t partition,
                       const void *frame, size_t len);
evk_err_t svc_disk_del(svc_disk_t *d, unsigned table, const char *key);
/* 1 and *frame (malloc()ed) when @p key is there, 0 when not, -1 on error. */
int svc_disk_get(svc_disk_t *d, unsigned table, const char *key, int32_t *partition,
                 void **frame, size_t *len);
/* The changelog offset that the state of @p partition on disk reaches, or
 * -1 when none is there; -1 as offset removes it. */
int64_t svc_disk_checkpoint(svc_disk_t *d, const char *table, int32_t partition);
evk_err_t svc_disk_set_checkpoint(svc_disk_t *d, const char *table, int32_t partition,
                                  int64_t offset);
/* Remove every key of partitions @p parts and their checkpoints. */
evk_err_t svc_disk_wipe(svc_disk_t *d, unsigned table, const char *name, const int32_t *parts,
                        size_t nparts);
/* The state on disk belongs to cluster @p cluster (its id): state from
 * another cluster, whose offsets mean nothing here, is removed from every
 * table of @p tables first (*cleared tells). */
evk_err_t svc_disk_claim(svc_disk_t *d, const char *cluster, const unsigned *tables,
                         size_t ntables, int *cleared);
/* Call @p cb for every key of @p table until it returns non-zero. */
void svc_disk_scan(svc_disk_t *d, unsigned table,
                   int (*cb)(const char *key, size_t key_len, int32_t partition,
                             const void *frame, size_t len, void *opaque),
                   void *opaque);

#endif
