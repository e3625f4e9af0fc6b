/* Private interface of a service's health and metrics: counters kept by the
 * service loop (metrics.c) and the HTTP endpoint serving them
 * (metrics_http.c). Not installed.
 *
 * Threads: the service loop writes the counters; librdkafka's statistics
 * callback runs on the loop's thread too (it is served by poll); the HTTP
 * daemon's thread only reads. Counters are atomics, the librdkafka figures
 * are swapped under a mutex. */
#ifndef EVK_METRICS_H
#define EVK_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "evkit/service.h"

/* Upper bounds in seconds of the handler latency histogram's buckets
 * (+Inf is implied). */
#define MET_BUCKETS 14

/* Series read off librdkafka's statistics JSON, rendered per client. */
enum { MET_K_TXMSGS, MET_K_RXMSGS, MET_K_REPLYQ, MET_K_MSGCNT, MET_K_RTT, MET_K_LAG, MET_K_N };
enum { MET_PRODUCER, MET_CONSUMER, MET_CLIENTS };

enum { MET_CONSUMED, MET_PRODUCED, MET_FAILED, MET_SKIPPED, MET_COUNTS };

typedef struct {
    const char *type; /* owned by the catalog; "unknown" for undecodable input */
    atomic_uint_fast64_t total[MET_COUNTS];
    /* The open transaction's counts: loop thread only, made final by a
     * commit and dropped by an abort, so that replays do not count twice. */
    uint64_t pending[MET_COUNTS];
    unsigned skips_noted; /* loop thread only: bit 0 on its topic, bit 1 elsewhere */
} met_type_t;

typedef struct svc_metrics_s {
    char *label; /* the service's name, escaped for a label value */
    met_type_t *types;
    size_t ntypes; /* the catalog's types, then "unknown" */

    atomic_uint_fast64_t buckets[MET_BUCKETS + 1], latency_count, latency_sum_ns;

    pthread_mutex_t lock; /* guards kafka and dead_letter_why */
    char *kafka[MET_CLIENTS][MET_K_N];

    /* Set once the stores are restored and the consumer subscribed, cleared
     * before the clients are destroyed: health reads the clients only then. */
    atomic_int ready;
    /* Set while the input being decoded waits for an unreachable schema
     * registry (health says 503 meanwhile); waits counts each wait. */
    atomic_int registry_waiting;
    atomic_uint_fast64_t registry_waits;

    atomic_uint_fast64_t offset_commit_failures;

    /* Batches aborted because a dead letter could not be written; set while
     * they keep failing (health 503), with the last reason (under lock). */
    atomic_uint_fast64_t dead_letter_failures;
    atomic_int dead_letters_blocked;
    char dead_letter_why[256];

    int64_t port; /* 0: no endpoint */
    char *bind;
    int64_t max_conns, max_conns_per_ip, timeout_s;
    struct MHD_Daemon *daemon;
    /* libmicrohttpd's warnings, rate-limited (metrics_http.c): touched by
     * its one thread, or by the service's before it starts and after it
     * has stopped, never by two at once. */
    int64_t log_window_ms;   /* when the last line was written; 0: none yet */
    uint64_t log_suppressed; /* warnings left out since */
    char log_last[256];      /* the last of those */
} svc_metrics_t;

/* ---- metrics.c ---- */
svc_metrics_t *svc_metrics_new(const char *name, const evk_catalog_t *cat);
void svc_metrics_destroy(svc_metrics_t *m);
/* One input of type @p type (NULL: undecodable) taken, dead-lettered if
 * @p failed, in the open transaction. */
void svc_metrics_consumed(svc_metrics_t *m, const char *type, int failed);
/* One output of type @p type produced in the open transaction. */
void svc_metrics_produced(svc_metrics_t *m, const char *type);
/* One input of type @p type skipped (no handler) in the open transaction,
 * on another topic than its own if @p misrouted; 1 the first time for that
 * type and @p misrouted, so that the caller can say so once. */
int svc_metrics_skipped(svc_metrics_t *m, const char *type, int misrouted);
/* An offset commit failed (not one of a transaction). */
void svc_metrics_offset_commit_failed(svc_metrics_t *m);
void svc_metrics_commit(svc_metrics_t *m);
void svc_metrics_discard(svc_metrics_t *m);
/* The input being decoded waits for the schema registry (@p waiting 1, each
 * call one more wait) or no longer does (0). */
void svc_metrics_registry_wait(svc_metrics_t *m, int waiting);
/* A batch aborted because a dead letter could not be written (@p why);
 * @p blocked: they keep failing, raise the alarm. */
void svc_metrics_dead_letter_failed(svc_metrics_t *m, const char *why, int blocked);
/* Dead letters are written again: the alarm is over. */
void svc_metrics_dead_letters_ok(svc_metrics_t *m);
/* Whether the alarm is up; its reason into @p why. Any thread. */
int svc_metrics_dead_letters_blocked(svc_metrics_t *m, char *why, size_t size);
/* One handler call that took @p ns nanoseconds. */
void svc_metrics_handler_time(svc_metrics_t *m, int64_t ns);
/* librdkafka's statistics callback; the client's opaque is the service. */
int svc_metrics_kafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);
/* Everything in the Prometheus text format; malloc()ed, NULL when out of
 * memory. */
char *svc_metrics_render(const evk_service_t *svc);
/* Monotonic clock in nanoseconds, for handler latency. */
int64_t svc_clock_ns(void);

/* ---- metrics_http.c ---- */
/* Read <name>.metrics_port / metrics_bind and the connection limits (else
 * metrics.port, metrics.bind, ...). */
evk_err_t svc_metrics_settings(evk_service_t *svc, char *errstr, size_t errstr_size);
/* Statistics on for a service client (producer or consumer) when the
 * endpoint is configured. */
void svc_metrics_client_conf(const evk_service_t *svc, rd_kafka_conf_t *conf);
/* Listen, if a port is set. EVK_ERR_IO when the address cannot be bound. */
evk_err_t svc_metrics_start(evk_service_t *svc, char *errstr, size_t errstr_size);
void svc_metrics_stop(evk_service_t *svc);

#endif
