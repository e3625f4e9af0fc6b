/* Helpers for the service tests: a dev broker with config and catalog, a
 * plain producer for inputs (events and raw bytes), read_committed readers,
 * and a service running in a thread. Every helper asserts with cmocka. */
#ifndef SVC_SUPPORT_H
#define SVC_SUPPORT_H

#include <pthread.h>
#include <stddef.h>
#include "evkit/evkit.h"
#include "runtime_support.h" /* rt_header(), rt_free_port() */

#define SVC_PARTITIONS 4
#define SVC_WAIT_MS 30000

typedef struct {
    evk_devbroker_t *db;
    evk_config_t *cfg;
    evk_catalog_t *cat;
    rd_kafka_t *producer;
    int out_partitions;
} svc_env_t;

/* Topics orders and orders.dlq with 4 partitions, inventory and
 * inventory.levels with @p out_partitions. */
svc_env_t *svc_env_new(int out_partitions);
void svc_env_destroy(svc_env_t *env);
void svc_env_set(svc_env_t *env, const char *path, const char *value);

/* An OrderPlaced for @p order_id by @p customer with one line per
 * "sku:quantity" argument (NULL-terminated). */
evk_event_t *svc_order(svc_env_t *env, const char *order_id, const char *customer, ...)
    __attribute__((sentinel));
/* Produce @p ev (consumed) to @p partition (-1: by key); returns its ce_id
 * (malloc()ed). */
char *svc_send(svc_env_t *env, evk_event_t *ev, int partition);
/* The same to @p topic, whichever its type's is. */
char *svc_send_to(svc_env_t *env, const char *topic, evk_event_t *ev, int partition);
/* Produce raw bytes with key @p key and header x-test=@p key. */
void svc_send_raw(svc_env_t *env, const char *topic, const char *key, const void *value,
                  size_t len, int partition);
void svc_flush(svc_env_t *env);

/* Messages of a topic, read with isolation.level=read_committed. */
typedef struct {
    rd_kafka_message_t **m;
    size_t n;
    rd_kafka_t *rk; /* kept open: librdkafka destroys a client only after its messages */
} svc_msgs_t;

/* Read @p topic from the start until @p want messages arrived or
 * @p timeout_ms passed; returns how many were read. */
size_t svc_wait_for(svc_env_t *env, const char *topic, size_t want, int timeout_ms);
/* Everything committed in @p topic (up to the end of every partition). */
svc_msgs_t svc_read_all(svc_env_t *env, const char *topic);
void svc_msgs_free(svc_msgs_t *msgs);
/* Key of @p m as a malloc()ed string. */
char *svc_key(const rd_kafka_message_t *m);

/* 1 if group @p group has committed, for every partition of @p topic, the
 * partition's end offset. */
int svc_committed_at_end(svc_env_t *env, const char *group, const char *topic);

/* A service running evk_service_run() in a thread. */
typedef struct {
    evk_service_t *svc;
    pthread_t thread;
    evk_err_t rc;
    char errstr[512];
    int done; /* set once the run returned */
    pthread_mutex_t lock;
} svc_runner_t;

void svc_start(svc_runner_t *r, evk_service_t *svc);
/* Stop and join; returns the run's result (errstr in r->errstr). */
evk_err_t svc_stop(svc_runner_t *r);
/* Join a run that ends by itself; fails the test after @p timeout_ms. */
evk_err_t svc_join(svc_runner_t *r, int timeout_ms);

#endif
