/**
 * @file producer.h
 * @brief Idempotent producer of evkit events.
 *
 * Always enable.idempotence=true and acks=all: a message is either written
 * once, in order, to all in-sync replicas, or its delivery fails and the
 * caller is told. The topic comes from the event's catalog entry.
 */
#ifndef EVKIT_PRODUCER_H
#define EVKIT_PRODUCER_H

#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "config.h"
#include "event.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_producer_s evk_producer_t;

/**
 * @brief Called from evk_producer_poll()/evk_producer_flush() once per message.
 * @param err EVK_OK when written, else EVK_ERR_DELIVERY with @p errstr saying why.
 * @param msg_opaque the value given to the send call.
 */
typedef void(evk_delivery_cb_t)(evk_err_t err, const char *errstr, const char *topic,
                                int32_t partition, int64_t offset, void *msg_opaque,
                                void *opaque);

/**
 * @brief New producer. @p source is the CloudEvents source written on events
 *        that have none (e.g. "evk-order"). @p cfg and @p cat must outlive it.
 */
EVK_EXPORT evk_err_t evk_producer_new(const evk_config_t *cfg, const evk_catalog_t *cat,
                                      const char *source, evk_producer_t **out, char *errstr,
                                      size_t errstr_size);

/** @brief Set the delivery callback (may be NULL). Call before sending. */
EVK_EXPORT void evk_producer_set_delivery_cb(evk_producer_t *p, evk_delivery_cb_t *cb,
                                             void *opaque);

/**
 * @brief Queue @p ev for delivery. @p ev is always consumed (destroyed), even
 *        on error. When librdkafka's queue is full the call serves delivery
 *        reports and waits for room rather than failing.
 */
EVK_EXPORT evk_err_t evk_producer_send(evk_producer_t *p, evk_event_t *ev, void *msg_opaque,
                                       char *errstr, size_t errstr_size);

/**
 * @brief Queue an already-encoded Confluent frame of type @p s (the fast path
 *        of evk-produce) to @p partition of the type's topic, or where the
 *        partitioner puts @p key when @p partition is RD_KAFKA_PARTITION_UA.
 *        @p frame (malloc()ed) and @p headers are consumed. A partition the
 *        topic does not have fails the message's delivery ("Local: Unknown
 *        partition").
 */
EVK_EXPORT evk_err_t evk_producer_send_frame(evk_producer_t *p, const evk_schema_t *s,
                                             int32_t partition, const void *key, size_t key_len,
                                             void *frame, size_t len,
                                             rd_kafka_headers_t *headers, void *msg_opaque,
                                             char *errstr, size_t errstr_size);

/**
 * @brief Wait up to @p timeout_ms for a broker of the cluster to answer (a
 *        metadata request), so that a program fails fast instead of queueing
 *        messages for message.timeout.ms when nothing is reachable.
 * @returns EVK_OK; EVK_ERR_KAFKA with errstr "no broker reachable at
 *          <bootstrap.servers> after <n> s: <reason>".
 */
EVK_EXPORT evk_err_t evk_producer_connect(evk_producer_t *p, int timeout_ms, char *errstr,
                                          size_t errstr_size);

/** @brief Serve delivery reports for up to @p timeout_ms. @returns events served. */
EVK_EXPORT int evk_producer_poll(evk_producer_t *p, int timeout_ms);

/**
 * @brief Wait until every queued message is delivered or failed, at most
 *        @p timeout_ms; -1 waits for all of them, which message.timeout.ms
 *        bounds (unless it is 0, infinite).
 * @returns EVK_OK; EVK_ERR_TIMEOUT; EVK_ERR_DELIVERY if any message failed
 *          since the previous flush (errstr holds the first reason).
 */
EVK_EXPORT evk_err_t evk_producer_flush(evk_producer_t *p, int timeout_ms, char *errstr,
                                        size_t errstr_size);

/** @brief Messages delivered / failed since creation. */
EVK_EXPORT uint64_t evk_producer_delivered(const evk_producer_t *p);
EVK_EXPORT uint64_t evk_producer_failed(const evk_producer_t *p);

/** @brief The underlying librdkafka handle (owned by @p p). */
EVK_EXPORT rd_kafka_t *evk_producer_rk(evk_producer_t *p);

/** @brief Destroy without flushing; call evk_producer_flush() first. NULL ok. */
EVK_EXPORT void evk_producer_destroy(evk_producer_t *p);

#ifdef __cplusplus
}
#endif
#endif
