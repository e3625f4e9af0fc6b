/* A service's GET /healthz and GET /metrics, served by libmicrohttpd on its
 * own thread while evk_service_run() runs (see metrics.h). */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>

#include "evkit/log.h"
#include "internal.h"
#include "metrics.h"
#include "service_int.h"

/* Often enough for lag to be current, rarely enough to cost nothing. */
#define MET_STATS_INTERVAL_MS "5000"
#define MET_TEXT "text/plain; charset=utf-8"
#define MET_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
/* Defaults of the connection limits (see svc_metrics_settings). */
#define MET_MAX_CONNS 64
#define MET_MAX_CONNS_PER_IP 8
#define MET_TIMEOUT_S 10
/* libmicrohttpd's warnings: at most one line per window (see mhd_log). */
#define MET_LOG_WINDOW_MS 10000

/* ---- settings (the keys of the metrics group: own_groups in config.c) ---- */

/* The service's own setting if it has one, else the shared one. */
static const char *met_path(const evk_service_t *svc, const char *own, const char *shared,
                            char *buf, size_t size) {
    snprintf(buf, size, "%s.%s", svc->name, own);
    return evk_config_get_string(svc->cfg, buf, NULL) ? buf : shared;
}

/* Copies of a service on one host share its config: copy k serves on the
 * configured port + k * metrics_port_stride, so that the second copy does not
 * die on the first one's port. */
static evk_err_t metrics_port_for_slot(const evk_service_t *svc, svc_metrics_t *m,
                                       const char *port_path, char *errstr,
                                       size_t errstr_size) {
    char path[512];
    int64_t stride = 0;
    snprintf(path, sizeof(path), "%s.metrics_port_stride", svc->name);
    evk_err_t rc = evk_config_get_int(svc->cfg, path, 100, &stride, errstr, errstr_size);
    if (rc || !m->port || !svc->slot) return rc;
    if (stride < 1 || m->port + stride * svc->slot > 65535)
        return evk__fail(
            EVK_ERR_CONFIG, errstr, errstr_size,
            "%s: instance %s (slot %d) would serve on port %lld + %d * %lld, outside "
            "1-65535; set %s or %s",
            port_path, svc->instance_id, svc->slot, (long long)m->port, svc->slot,
            (long long)stride, path, port_path);
    m->port += stride * svc->slot;
    return EVK_OK;
}

/* The integer setting metrics_@p name / metrics.@p name, in [min, max];
 * @p max_is names the upper bound for the message. */
static evk_err_t met_int(const evk_service_t *svc, const char *name, int64_t def, int64_t min,
                         int64_t max, const char *max_is, int64_t *out, char *errstr,
                         size_t errstr_size) {
    char own[128], shared[128], buf[512];
    snprintf(own, sizeof(own), "metrics_%s", name);
    snprintf(shared, sizeof(shared), "metrics.%s", name);
    const char *path = met_path(svc, own, shared, buf, sizeof(buf));
    evk_err_t rc = evk_config_get_int(svc->cfg, path, def, out, errstr, errstr_size);
    if (!rc && (*out < min || *out > max))
        rc = evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                       "%s: expected %lld to %lld (%s), got %lld", path, (long long)min,
                       (long long)max, max_is, (long long)*out);
    return rc;
}

/* Every connection costs a descriptor, and the service's Kafka connections
 * need theirs: the endpoint may use at most half of the process's. */
static int64_t met_fd_share(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur / 2 > INT32_MAX)
        return INT32_MAX;
    return (int64_t)(rl.rlim_cur / 2);
}

/* The endpoint holds at most max_connections connections, at most
 * max_connections_per_ip of them from one address, and closes one that is
 * idle for timeout_s: see README, "Health and metrics". */
static evk_err_t met_limits(evk_service_t *svc, char *errstr, size_t errstr_size) {
    svc_metrics_t *m = svc->metrics;
    evk_err_t rc = met_int(svc, "max_connections", MET_MAX_CONNS, 1, met_fd_share(),
                           "half the descriptor limit", &m->max_conns, errstr, errstr_size);
    int64_t per_ip = m->max_conns < MET_MAX_CONNS_PER_IP ? m->max_conns : MET_MAX_CONNS_PER_IP;
    if (!rc)
        rc = met_int(svc, "max_connections_per_ip", per_ip, 1, m->max_conns, "max_connections",
                     &m->max_conns_per_ip, errstr, errstr_size);
    if (!rc)
        rc = met_int(svc, "timeout_s", MET_TIMEOUT_S, 1, 86400, "a day", &m->timeout_s, errstr,
                     errstr_size);
    return rc;
}

evk_err_t svc_metrics_settings(evk_service_t *svc, char *errstr, size_t errstr_size) {
    char buf[512];
    svc_metrics_t *m = svc->metrics;
    const char *path = met_path(svc, "metrics_port", "metrics.port", buf, sizeof(buf));
    evk_err_t rc = evk_config_get_int(svc->cfg, path, 0, &m->port, errstr, errstr_size);
    if (!rc && (m->port < 0 || m->port > 65535))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: expected a port (1-65535, 0 for none), got %lld", path,
                         (long long)m->port);
    if (!rc) rc = metrics_port_for_slot(svc, m, path, errstr, errstr_size);
    path = met_path(svc, "metrics_bind", "metrics.bind", buf, sizeof(buf));
    if (!rc && !(m->bind = strdup(evk_config_get_string(svc->cfg, path, "127.0.0.1"))))
        rc = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    /* Without an endpoint its limits mean nothing, the descriptor one included. */
    return rc || !m->port ? rc : met_limits(svc, errstr, errstr_size);
}

void svc_metrics_client_conf(const evk_service_t *svc, rd_kafka_conf_t *conf) {
    char why[256];
    if (!svc->metrics->port) return;
    rd_kafka_conf_set_stats_cb(conf, svc_metrics_kafka_stats);
    /* librdkafka emits no statistics by default; a configured interval is
     * the user's choice and kept. */
    if (!evk_config_kafka_get(svc->cfg, "statistics.interval.ms"))
        rd_kafka_conf_set(conf, "statistics.interval.ms", MET_STATS_INTERVAL_MS, why,
                          sizeof(why));
}

/* ---- responses ---- */

/* @p body (malloc()ed) is consumed; NULL (out of memory) answers 500. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body,
                             const char *content_type) {
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result ok =
        MHD_queue_response(c, body ? status : MHD_HTTP_INTERNAL_SERVER_ERROR, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *body) {
    return reply(c, status, strdup(body), MET_TEXT);
}

static int client_failed(rd_kafka_t *rk, char *why, size_t size) {
    return rk && rd_kafka_fatal_error(rk, why, size) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* The clients are read only while ready: they exist then, and the daemon is
 * stopped before they are destroyed. */
static enum MHD_Result health(struct MHD_Connection *c, const evk_service_t *svc) {
    char why[512], body[600];
    if (!atomic_load(&svc->metrics->ready))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
    if (atomic_load(&svc->metrics->registry_waiting))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "waiting for the schema registry\n");
    if (client_failed(svc->producer, why, sizeof(why)) ||
        client_failed(svc->consumer, why, sizeof(why))) {
        snprintf(body, sizeof(body), "fatal: %s\n", why);
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    if (svc_metrics_dead_letters_blocked(svc->metrics, why, sizeof(why))) {
        snprintf(body, sizeof(body), "dead letters failing: %s\n", why);
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    return text(c, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result request(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls) {
    (void)version, (void)upload, (void)upload_size, (void)req_cls;
    const evk_service_t *svc = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    if (!strcmp(url, "/healthz")) return health(c, svc);
    if (!strcmp(url, "/metrics"))
        return reply(c, MHD_HTTP_OK, svc_metrics_render(svc), MET_PROMETHEUS);
    return text(c, MHD_HTTP_NOT_FOUND, "not found: try /healthz or /metrics\n");
}

/* One line for the warnings left out: how many, and the last of them. */
static void met_flush_warnings(const evk_service_t *svc) {
    svc_metrics_t *m = svc->metrics;
    char n[24];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)m->log_suppressed);
    if (m->log_suppressed)
        evk_log(EVK_LOG_WARN, svc->name, "metrics endpoint", "suppressed", n, "last",
                m->log_last, NULL);
    m->log_suppressed = 0;
}

/* libmicrohttpd warns once per connection it rejects or loses, so a crowd
 * of clients would flood the log: the first warning of a window is logged,
 * the rest only counted, and reported when the next window opens or the
 * endpoint stops. */
static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap) {
    const evk_service_t *svc = cls;
    svc_metrics_t *m = svc->metrics;
    char msg[sizeof(m->log_last)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    int64_t now = evk__now_ms();
    if (m->log_window_ms && now - m->log_window_ms < MET_LOG_WINDOW_MS) {
        memcpy(m->log_last, msg, sizeof(msg));
        m->log_suppressed++;
        return;
    }
    met_flush_warnings(svc);
    evk_log(EVK_LOG_WARN, svc->name, "metrics endpoint", "error", msg, NULL);
    m->log_window_ms = now;
}

/* ---- start and stop ---- */

/* The socket is bound here rather than by libmicrohttpd so that a port in
 * use is reported with its reason. */
static evk_err_t met_listen(const svc_metrics_t *m, int *out, char *errstr,
                            size_t errstr_size) {
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    char port[8];
    snprintf(port, sizeof(port), "%d", (int)m->port);
    int gai = getaddrinfo(m->bind, port, &hints, &ai);
    if (gai)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "metrics_bind \"%s\": %s",
                         m->bind, gai_strerror(gai));
    int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && !setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
             !bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, SOMAXCONN);
    int err = errno;
    freeaddrinfo(ai);
    if (!ok) {
        if (fd >= 0) close(fd);
        return evk__fail(EVK_ERR_IO, errstr, errstr_size,
                         "metrics: cannot listen on %s port %s: %s", m->bind, port,
                         strerror(err));
    }
    *out = fd;
    return EVK_OK;
}

/* One thread serves every connection without blocking on any: a slow
 * client costs a slot, never the thread's attention, so a fresh request is
 * answered as soon as it is accepted. epoll where the library has it. */
static unsigned met_threading(void) {
    return MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES
               ? MHD_USE_EPOLL_INTERNAL_THREAD
               : MHD_USE_POLL_INTERNAL_THREAD;
}

evk_err_t svc_metrics_start(evk_service_t *svc, char *errstr, size_t errstr_size) {
    svc_metrics_t *m = svc->metrics;
    int fd = -1;
    if (!m->port) return EVK_OK;
    evk_err_t rc = met_listen(m, &fd, errstr, errstr_size);
    if (rc) return rc;
    m->daemon =
        MHD_start_daemon(met_threading() | MHD_USE_ERROR_LOG, 0, NULL, NULL, request, svc,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, svc, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)m->max_conns,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)m->max_conns_per_ip,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)m->timeout_s, MHD_OPTION_END);
    if (!m->daemon) {
        close(fd);
        return evk__fail(EVK_ERR_IO, errstr, errstr_size,
                         "metrics: cannot start the HTTP server on %s port %lld", m->bind,
                         (long long)m->port);
    }
    char port[8];
    snprintf(port, sizeof(port), "%d", (int)m->port);
    evk_log(EVK_LOG_INFO, svc->name, "serving /healthz and /metrics", "bind", m->bind, "port",
            port, NULL);
    return EVK_OK;
}

void svc_metrics_stop(evk_service_t *svc) {
    svc_metrics_t *m = svc->metrics;
    atomic_store(&m->ready, 0);
    atomic_store(&m->registry_waiting, 0);
    if (m->daemon) MHD_stop_daemon(m->daemon); /* joins its thread, closes the socket */
    m->daemon = NULL;
    met_flush_warnings(svc);
    m->log_window_ms = 0;
}
