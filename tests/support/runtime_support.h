/* Shared by the runtime tests: a dev broker with config and catalog, and a
 * plain librdkafka consumer to read back what evkit wrote. */
#ifndef EVK_RUNTIME_SUPPORT_H
#define EVK_RUNTIME_SUPPORT_H

#include <stddef.h>
#include "evkit/evkit.h"

typedef struct {
    evk_devbroker_t *db;
    evk_config_t *cfg; /* bootstrap.servers = the dev broker */
    evk_catalog_t *cat;
} rt_env_t;

/* cmocka-asserting setup; @p brokers brokers. */
rt_env_t *rt_env_new(int brokers);
void rt_env_destroy(rt_env_t *env);

/* A producer with source "test"; asserts on failure. */
evk_producer_t *rt_producer(rt_env_t *env);

/* An OrderPlaced event for @p order_id with two lines. */
evk_event_t *rt_order(rt_env_t *env, const char *order_id);

/* Called for each message read; @p m is valid during the call only, since
 * a consumer cannot be destroyed while its messages live. */
typedef void(rt_msg_fn)(const rd_kafka_message_t *m, void *opaque);

/* Read up to @p n messages of @p topic from the beginning of every
 * partition, waiting at most @p timeout_ms. Returns how many were read. */
size_t rt_consume(rt_env_t *env, const char *topic, size_t n, int timeout_ms, rt_msg_fn *fn,
                  void *opaque);

/* A loopback port nothing listens on right now, for a server to bind. */
int rt_free_port(void);

/* Value of the last header @p name as a NUL-terminated copy, or NULL. */
char *rt_header(const rd_kafka_message_t *m, const char *name);

#endif
