/**
 * @file service.h
 * @brief The service loop: consume, decode, dispatch to handlers, produce,
 *        commit, with idempotent effects in Kafka transactions.
 *
 * A service subscribes to the topics of the event types it handles. Each
 * batch of input runs in one Kafka transaction: the handlers' output events,
 * their state-store writes (changelog records) and any dead letters are
 * produced in the transaction together with the input offsets
 * (send_offsets_to_transaction), then the transaction commits. Consumers read
 * with isolation.level=read_committed. So on a cluster with full transactions
 * a crash at any point either commits all of a batch's effects or none, and
 * the batch is processed again (elsewhere: "Effects on redelivery" below).
 *
 * A batch commits when the input queue is momentarily empty, after
 * `batch_max` messages, or after `commit_interval_ms`, whichever comes first:
 * at low rates every event commits at once (low latency), under load batches
 * grow (high throughput).
 *
 * Handler results:
 *   EVK_OK         outputs are kept;
 *   EVK_ERR_RETRY  outputs are dropped, the event is retried with exponential
 *                  backoff (retry_backoff_ms, doubling, up to retry_max tries),
 *                  then dead-lettered;
 *   other          outputs are dropped, the event is dead-lettered at once.
 * Undecodable input (not a Confluent frame, unknown schema id, bad Avro, a
 * schema registry answer that is broken even when asked again) is
 * dead-lettered at once. A schema registry that cannot be reached (no
 * connection, a timeout, HTTP 5xx) says nothing about the input, so the
 * service waits for it instead, logging "decode waits" with backoff up to
 * retry_backoff_max_ms; meanwhile /healthz says 503 and
 * evk_registry_waits_total counts the waits.
 * Dead letters go to "<topic>.dlq" with the original key, value and headers
 * plus evk_dlq_reason, evk_dlq_error, evk_dlq_topic, evk_dlq_partition,
 * evk_dlq_offset, evk_dlq_service, evk_dlq_attempts.
 *
 * A dead letter can always be written. The service producer's
 * message.max.bytes is set, not assumed: kafka.message.max.bytes, else
 * 1000000 (librdkafka's default, below a default broker's and topic's
 * max.message.bytes of 1048588, so what the producer sends the cluster
 * takes). The input plus the evk_dlq_* headers can exceed it (a ~1 MiB
 * message was accepted by the broker): the dead letter is then cut to
 * dead_letter_max_bytes (default and maximum message.max.bytes, for a DLQ
 * topic with a lower max.message.bytes): its value first, to the prefix
 * that fits (evk_dlq_truncated: the original size); if key and headers
 * leave no room, the original headers are left out
 * (evk_dlq_headers_dropped: their count), and last the key is cut
 * (evk_dlq_key_truncated). The whole input stays at evk_dlq_topic /
 * partition / offset. A dead letter the cluster refuses anyway (e.g. not
 * authorized) aborts its batch, which is replayed with the retry backoff;
 * after retry_max such batches in a row the service alarms (an error log,
 * /healthz 503, evk_dead_letters_blocked 1) and keeps trying, the inputs
 * behind it waiting, until one is written (an info log clears the alarm).
 * It never stops the service.
 *
 * Settings, from the config group named after the service (defaults):
 *   group_id ("<name>"), instance_id (see "Instances"), static_membership
 *   (false), metrics_port_stride (100), batch_max (5000),
 *   commit_interval_ms (100), retry_max (5), retry_backoff_ms (100),
 *   retry_backoff_max_ms (5000), event_log_level ("debug"),
 *   shutdown_timeout_ms (10000, at least 1000), dead_letter_max_bytes
 *   (kafka.message.max.bytes, else 1000000; at least 4096),
 *   metrics_port (metrics.port, else 0: none), metrics_bind (metrics.bind,
 *   else "127.0.0.1"); EVK_METRICS_PORT / EVK_METRICS_BIND override both;
 *   metrics_max_connections (metrics.max_connections, else 64; at most half
 *   the descriptor limit), metrics_max_connections_per_ip
 *   (metrics.max_connections_per_ip, else 8 or the former if lower),
 *   metrics_timeout_s (metrics.timeout_s, else 10).
 * The group may hold these and the keys the service declares with
 * evk_service_settings(), each with a value of its type; any other key is
 * an error at start naming its file and line.
 *
 * Outages and stopping: every blocking librdkafka call has a timeout. While
 * the cluster is out of reach the transaction calls (init, commit, abort,
 * send offsets) are resumed every second for as long as it takes: an outage
 * never ends a run. A stop (evk_service_stop(), SIGINT, SIGTERM) gives the
 * run shutdown_timeout_ms from the request (10 s: Docker's grace period) to
 * commit the open batch, leave the group and flush. With the cluster gone,
 * the commit is given up at 3/4 of that time and closing the clients at
 * 9/10: the open transaction is abandoned, to be aborted by the broker (or
 * fenced by the next instance), which then redoes the batch, so nothing is
 * lost; evk_service_run() returns EVK_ERR_TIMEOUT saying so (the reference
 * services log it at error and exit 4). A stop while the cluster cannot be
 * reached at start-up returns EVK_OK at once: nothing was consumed.
 *
 * Logs: one line per input ("event": type, key, topic, partition, offset,
 * outcome, attempts, handler_ms, reason) at event_log_level, dead letters at
 * warn at least. It is written when the input is handled, so the inputs of
 * an aborted batch are logged again when it is replayed.
 *
 * Skipped input: a valid event of a type no handler here takes is skipped
 * (outcome "skipped"). Types share topics (order-service reads its own
 * OrderConfirmed on `orders`), so that is normal on the type's own topic:
 * it is counted by type (evk_events_skipped_total) and said once per type
 * at info, not per event (its event line is at event_log_level). A type
 * read on another topic than its catalog's was sent astray by its writer:
 * counted too, and said once per type at warn. Errors the service goes on
 * from are logged at warn and counted: e.g. on a cluster that does not
 * apply a transaction's offsets (the dev broker) the service commits them
 * again with its consumer, without waiting for the answer (an absent group
 * coordinator must not hold the loop), and such a commit refused (during a
 * rebalance) only means that a restart may replay a batch
 * (evk_offset_commit_failures_total).
 *
 * Health and metrics: with a metrics_port, evk_service_run() serves over
 * HTTP on metrics_bind:metrics_port, from its own thread, for as long as it
 * runs (a port that cannot be bound fails the run with EVK_ERR_IO):
 *   GET /healthz  200 "ok" once the stores are restored and the consumer
 *                 subscribed, neither client has a fatal error and dead
 *                 letters are not failing (see above), else 503 ("waiting
 *                 for the schema registry" while it waits for one);
 *   GET /metrics  Prometheus text: committed inputs, outputs, dead letters
 *                 and skipped inputs by event type, retries, registry waits,
 *                 commits, aborts, dead letters that failed and whether they
 *                 are blocked, refused offset commits, a handler latency
 *                 histogram, consumer lag per partition and a few
 *                 librdkafka statistics (statistics.interval.ms defaults to
 *                 5000 then).
 * One thread serves every connection without blocking on any. It holds at
 * most metrics_max_connections, at most metrics_max_connections_per_ip from
 * one address (more are closed at once), and closes a connection idle for
 * metrics_timeout_s: a crowd of slow clients on one address cannot shut out
 * a probe from another, nor take the descriptors Kafka needs. Its warnings
 * take at most one line per 10 s, plus one counting those left out
 * ("suppressed").
 *
 * Instances: any number of copies of a service may run, on one host or many,
 * with the same command line; the consumer group splits the input's
 * partitions between them (range assignment, so that partition p of every
 * input topic goes to one member). Each copy has an identity, instance_id:
 * <service>.instance_id or EVK_INSTANCE_ID if set, else "<host>-<k>" with k
 * the lowest slot free on this host. A slot or an explicit id is held with an
 * flock() on a file in EVK_LOCK_DIR (default /tmp/evkit-<uid>) for the
 * process's life, so a restarted copy gets its identity back and a second
 * live process cannot claim it (evk_service_new() fails, EVK_ERR_CONFIG).
 * The transactional.id is "<group_id>-<instance_id>": a restarted instance
 * fences its predecessor and aborts whatever it left open. With
 * static_membership the instance_id is also the group.instance.id (a real
 * cluster then keeps a restarted member's partitions without a rebalance,
 * but a stopped one's wait for session.timeout.ms: librdkafka does not leave
 * the group for a static member). Copy k serves its metrics on metrics_port
 * + k * metrics_port_stride. Unless the kafka group sets them,
 * session.timeout.ms is 6000 and heartbeat.interval.ms 1000, so that a killed
 * copy's partitions move within seconds.
 *
 * Stores are partitioned like the input: what a handler writes while
 * handling input partition p goes to partition p of the store's changelog,
 * and on assignment an instance restores only its partitions (revocation
 * drops them). So every input topic and every changelog must have the same
 * partition count (checked on assignment: EVK_ERR_CONFIG), and a store key
 * must be the key of the input being handled, or that key followed by
 * EVK_STORE_KEY_SEP and more (evk_store_put() refuses any other: state keyed
 * otherwise goes through a topic keyed by it, see inventory-service).
 * Producers of the inputs must partition keys alike: evkit uses murmur2
 * (Java's default; partitioner=murmur2_random).
 *
 * Where store state lives: without state.dir (EVK_STATE_DIR) in memory, all
 * keys of the assigned partitions, restored from the changelog on each
 * assignment (a partition given back reads only what was written since).
 * With state.dir, on disk (LMDB, in state.dir/<group_id>/<instance id>):
 * what each committed transaction wrote goes there after the commit,
 * with the changelog offset it reaches per partition (a checkpoint), and
 * memory keeps only the keys of the open batch plus up to
 * state.cache_entries per store (default 1000). A restore, at start or on
 * an assignment, reads each changelog partition from its checkpoint, so a
 * restarted instance, killed or not, reads only what others wrote since.
 * With state.standby (true by default) an instance also keeps on disk the
 * changelog partitions it does not hold (standby replicas), tailing them
 * between batches, so that a partition which moves to it restores from a
 * recent checkpoint. The changelog stays the source of truth: a checkpoint past what the
 * changelog holds (topic recreated) or state of another cluster (cluster
 * id) clears the state on disk and restores from the changelog. If the
 * disk refuses a write (full, say), evk_service_run() returns EVK_ERR_IO:
 * the Kafka transaction has committed, and a restart catches up from the
 * checkpoint.
 *
 * Effects on redelivery: the n-th event a handler call makes (including
 * store values) gets an id derived from the input's id and n, so a replayed
 * input makes the same events with the same ids. On a cluster with full
 * transactions, a read_committed reader sees each committed output once. A
 * broker without them (the dev broker shows records of aborted transactions
 * and ignores transactional offsets) can deliver an input again: readers
 * that keep state must recognise the ids they applied (order-service keeps
 * them in the order's history; inventory-service's records carry them), and
 * outputs then repeat with the same id, which readers count as a
 * redelivery. Effects outside Kafka are at least once, with a stable id.
 */
#ifndef EVKIT_SERVICE_H
#define EVKIT_SERVICE_H

#include <stddef.h>
#include "config.h"
#include "error.h"
#include "event.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_service_s evk_service_t;
/** Per-event context handed to handlers; valid only during the call. */
typedef struct evk_ctx_s evk_ctx_t;
/** Key -> latest event map, changelogged to its type's (compacted) topic. */
typedef struct evk_store_s evk_store_t;

/** @brief Handles one event. @p ev is owned by the service. */
typedef evk_err_t(evk_handler_t)(evk_ctx_t *ctx, const evk_event_t *ev, void *opaque);

/**
 * @brief Called once the service is connected, before it joins its group,
 *        inside a transaction: it may emit events (they have no cause). The
 *        stores hold no partitions yet, so it cannot write them. Non-OK
 *        aborts the run.
 */
typedef evk_err_t(evk_ready_cb_t)(evk_ctx_t *ctx, void *opaque);

/**
 * @brief New service called @p name (also its ce_source and config group).
 *        @p cfg and @p cat must outlive it.
 */
EVK_EXPORT evk_err_t evk_service_new(const char *name, const evk_config_t *cfg,
                                     const evk_catalog_t *cat, evk_service_t **out,
                                     char *errstr, size_t errstr_size);

/**
 * @brief Route events of @p type (full or short name) to @p handler and
 *        subscribe to its topic. Other types on the same topic are skipped
 *        (counted and said once per type, see above).
 */
EVK_EXPORT evk_err_t evk_service_on(evk_service_t *svc, const char *type,
                                    evk_handler_t *handler, void *opaque, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Add a state store whose values are events of @p type; they are
 *        changelogged to that type's topic (keyed by the event key, in the
 *        input's partition) and the assigned partitions are restored from
 *        it on each assignment.
 */
EVK_EXPORT evk_err_t evk_service_add_store(evk_service_t *svc, const char *type,
                                           evk_store_t **out, char *errstr, size_t errstr_size);

/**
 * @brief Declare the keys the service's own code reads from its config
 *        group, beyond the service loop's (file comment), and check the
 *        group at once: every key in it must be known, every value of its
 *        type. Call it after evk_service_new(), before reading the settings.
 * @param settings a table ended by an entry whose name is NULL, e.g.
 *        `{{"credit_limit_cents", EVK_SETTING_INT},
 *          {"blocked_customers", EVK_SETTING_LIST}, {NULL, 0}}`; NULL for
 *        none. Not copied: it must outlive @p svc (a static table). A second
 *        call replaces the first one's table.
 * @returns EVK_OK; EVK_ERR_CONFIG, e.g. "<file>:<line>: payment-service.
 *          blocked_customers: expected list of strings, got \"c-1\"" or
 *          "<file>:<line>: payment-service.credit_limt_cents: unknown
 *          setting; did you mean \"credit_limit_cents\"?".
 * evk_service_run() checks the group again as it starts, so a service that
 * reads no keys of its own need not call this.
 */
EVK_EXPORT evk_err_t evk_service_settings(evk_service_t *svc, const evk_setting_t *settings,
                                          char *errstr, size_t errstr_size);

/** @brief Set the callback run after restore, before the first event. */
EVK_EXPORT void evk_service_on_ready(evk_service_t *svc, evk_ready_cb_t *cb, void *opaque);

/**
 * @brief Check at start that a handler which may take up to
 *        @p handler_max_ms per call (an HTTP timeout, a lock wait) cannot
 *        get the service evicted from its consumer group.
 *
 * The consumer does not poll while one event is handled and retried, so
 * its worst case — retry_max calls of @p handler_max_ms plus the backoffs
 * between them — must stay under half of max.poll.interval.ms, the margin
 * evk_service_new() already demands of the backoffs alone. Past it the
 * group evicts the service mid-event and replays the event elsewhere.
 *
 * @param setting the setting that bounds the handler's time, e.g.
 *        "notification-service.webhook_timeout_ms", for the message.
 * @returns EVK_OK; EVK_ERR_CONFIG with errstr naming the settings;
 *          EVK_ERR_INVALID_ARG for a NULL @p svc or @p setting or a
 *          negative @p handler_max_ms.
 */
EVK_EXPORT evk_err_t evk_service_check_handler_time(const evk_service_t *svc,
                                                    const char *setting, int64_t handler_max_ms,
                                                    char *errstr, size_t errstr_size);

/**
 * @brief Run until evk_service_stop() or SIGINT/SIGTERM (handlers are
 *        installed for the duration of the call). On stop the current batch
 *        is finished and committed, the consumer closed, the producer
 *        flushed, all within shutdown_timeout_ms of the stop request.
 * @returns EVK_OK after a clean stop; EVK_ERR_CONFIG (the config group
 *          holds an unknown key or a value of the wrong type, see
 *          evk_service_settings(), before anything connects);
 *          EVK_ERR_TIMEOUT when the stop could not commit the open batch in
 *          time (cluster out of reach: the batch is abandoned and redone by
 *          the next instance; a consumer that could not close in time is
 *          not destroyed either, since librdkafka would wait for it: its
 *          threads end with the process, which should exit); EVK_ERR_FATAL (e.g. fenced by a
 * newer instance) or EVK_ERR_KAFKA; errstr set on error.
 */
EVK_EXPORT evk_err_t evk_service_run(evk_service_t *svc, char *errstr, size_t errstr_size);

/**
 * @brief Ask evk_service_run() to return; its shutdown_timeout_ms starts
 *        with the first call. Async-signal-safe; any thread.
 */
EVK_EXPORT void evk_service_stop(evk_service_t *svc);

/** @brief Free @p svc (not while running). NULL is allowed. */
EVK_EXPORT void evk_service_destroy(evk_service_t *svc);

/** @brief The service's name. */
EVK_EXPORT const char *evk_service_name(const evk_service_t *svc);

/** @brief Counters since start, for logs and metrics. */
typedef struct evk_service_stats_s {
    uint64_t consumed;     /**< input events handled (any outcome) */
    uint64_t produced;     /**< output events emitted and committed */
    uint64_t dead_letters; /**< events sent to a DLQ */
    uint64_t retries;      /**< handler retries */
    uint64_t commits;      /**< committed transactions */
    uint64_t aborts;       /**< aborted transactions */
    uint64_t restored;     /**< changelog records read to restore stores */
    uint64_t standby;      /**< changelog records kept for partitions not held
                                (state.standby, with state.dir) */
} evk_service_stats_t;
EVK_EXPORT void evk_service_stats(const evk_service_t *svc, evk_service_stats_t *out);

/* ---- Handler context ---- */

/**
 * @brief New event of @p type caused by the current input (same key and
 *        correlation id; causation id = input's id; id derived from the
 *        input's id and how many events this call made before, so that a
 *        replay makes the same ids). In the ready callback it has no cause
 *        and a random id. NULL if @p type is not in the catalog.
 */
EVK_EXPORT evk_event_t *evk_ctx_new_event(evk_ctx_t *ctx, const char *type);

/** @brief Emit @p ev in the current transaction. @p ev is always consumed. */
EVK_EXPORT evk_err_t evk_ctx_emit(evk_ctx_t *ctx, evk_event_t *ev);

/** @brief The service's config and catalog (e.g. for handler settings). */
EVK_EXPORT const evk_config_t *evk_ctx_config(const evk_ctx_t *ctx);
EVK_EXPORT const evk_catalog_t *evk_ctx_catalog(const evk_ctx_t *ctx);

/* ---- State stores ---- */

/**
 * Joins the input's key and more into a store key that belongs to the input
 * ("SKU-1" EVK_STORE_KEY_SEP "o-17": one of many entries of SKU-1). It is
 * U+001F, which evk_key_check() refuses in keys, so no other input key can
 * form the same store key. An input key that contains it has no such keys.
 */
#define EVK_STORE_KEY_SEP "\x1f"

/**
 * The longest store key, in bytes: LMDB's largest key (the state on disk),
 * enforced with the state in memory too so that a service behaves alike
 * either way. evk_store_put() and evk_store_delete() refuse a longer one
 * (EVK_ERR_INVALID_ARG, logged): the input is dead-lettered.
 */
#define EVK_STORE_KEY_MAX 511

/**
 * @brief Latest value for @p key (including writes earlier in this batch),
 *        or NULL; NULL too for a key of a partition this instance does not
 *        hold. Owned by the store: valid until the handler returns or the
 *        key is put or deleted, whichever comes first. Call it from
 *        handlers and the ready callback only (the service's thread); with
 *        state on disk a read may load the key into memory.
 *
 *        A value read back from disk carries its data and key, not the
 *        CloudEvents attributes it was put with (id, time, source...). One
 *        the disk cannot give back (a read error, a frame that no longer
 *        decodes) reads as NULL, and the batch is then never committed:
 *        evk_service_run() returns EVK_ERR_IO.
 */
EVK_EXPORT const evk_event_t *evk_store_get(const evk_store_t *st, const char *key);

/**
 * @brief Set the value of key evk_event_key(@p value) in the current
 *        transaction. Reverted if the handler fails or the transaction
 *        aborts. @p value is always consumed.
 * @returns EVK_ERR_INVALID_ARG (and an error log line) when the key is not
 *          the key of the input being handled (or it, EVK_STORE_KEY_SEP and
 *          more), is longer than EVK_STORE_KEY_MAX, or outside a handler.
 */
EVK_EXPORT evk_err_t evk_store_put(evk_ctx_t *ctx, evk_store_t *st, evk_event_t *value);

/**
 * @brief Remove @p key in the current transaction: the changelog gets a
 *        tombstone (a record with the key and no value), so that restores
 *        and compaction forget it too. Reverted like evk_store_put().
 * @returns EVK_OK, also when the key is absent (nothing is written);
 *          EVK_ERR_INVALID_ARG as evk_store_put(); EVK_ERR_NOMEM.
 */
EVK_EXPORT evk_err_t evk_store_delete(evk_ctx_t *ctx, evk_store_t *st, const char *key);

/** @brief Number of keys of the held partitions (with state on disk, a
 *         scan of it: O(keys)). Service thread only, as evk_store_get(). */
EVK_EXPORT size_t evk_store_count(const evk_store_t *st);

/** @brief Call @p cb for every key of the held partitions in unspecified
 *         order; stops when @p cb returns non-zero. @p value is valid during
 *         the call only. Service thread only, as evk_store_get(). */
EVK_EXPORT void evk_store_foreach(const evk_store_t *st,
                                  int (*cb)(const char *key, const evk_event_t *value,
                                            void *opaque),
                                  void *opaque);

#ifdef __cplusplus
}
#endif
#endif
