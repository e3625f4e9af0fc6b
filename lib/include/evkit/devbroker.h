/**
 * @file devbroker.h
 * @brief evkit's dev broker: librdkafka's mock cluster on loopback.
 *
 * A real Kafka-protocol broker in memory, for development and tests: any
 * Kafka client (kcat, confluent-kafka) can talk to it. It keeps a window of
 * recent messages per partition and nothing on disk. Production uses an
 * external cluster.
 */
#ifndef EVKIT_DEVBROKER_H
#define EVKIT_DEVBROKER_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_devbroker_s evk_devbroker_t;

/**
 * @brief Start a cluster of @p brokers brokers on 127.0.0.1 (random ports).
 * Its threads serve clients until evk_devbroker_destroy().
 */
EVK_EXPORT evk_err_t evk_devbroker_new(int brokers, evk_devbroker_t **out, char *errstr,
                                       size_t errstr_size);

/** @brief "127.0.0.1:p1,127.0.0.1:p2,..." Owned by @p db. */
EVK_EXPORT const char *evk_devbroker_bootstraps(const evk_devbroker_t *db);

/**
 * @brief Create @p topic with @p partitions partitions (topics are otherwise
 *        auto-created with 4).
 */
EVK_EXPORT evk_err_t evk_devbroker_create_topic(evk_devbroker_t *db, const char *topic,
                                                int partitions, int replication, char *errstr,
                                                size_t errstr_size);

/**
 * @brief The mock cluster, for fault injection (rd_kafka_mock_*). Unlike
 *        evk_devbroker_command(), a request made directly may wait up to a
 *        second for librdkafka 2.0.2's mock thread (see devbroker.c).
 */
EVK_EXPORT rd_kafka_mock_cluster_t *evk_devbroker_mock(evk_devbroker_t *db);

/**
 * @brief Inject a fault, given as one line of text (evk-dev-broker's control
 *        channel, so that a test in another process can break the broker):
 *
 *     down BROKER                  broker BROKER (1..N) stops serving: its
 *                                  connections close, new ones are refused
 *     up BROKER                    it serves again
 *     err API COUNT ERROR          the next COUNT requests of API (to any
 *                                  broker) fail with ERROR
 *     clear API                    forget API's pending errors
 *     rtt BROKER MS                delay broker BROKER's responses by MS ms
 *
 * API is a Kafka request name (Produce, Fetch, OffsetCommit, EndTxn, ...),
 * ERROR a librdkafka error name without its RD_KAFKA_RESP_ERR_ prefix
 * (NOT_LEADER_FOR_PARTITION). Blank lines and lines starting with # do
 * nothing. Errors: EVK_ERR_INVALID_ARG with errstr naming the problem.
 */
EVK_EXPORT evk_err_t evk_devbroker_command(evk_devbroker_t *db, const char *line, char *errstr,
                                           size_t errstr_size);

/** @brief Stop the cluster; connected clients see their brokers go down. NULL ok. */
EVK_EXPORT void evk_devbroker_destroy(evk_devbroker_t *db);

#ifdef __cplusplus
}
#endif
#endif
