/*
 * notification-service: OrderConfirmed, OrderCancelled, ShipmentDispatched ->
 * one notification each, then a NotificationSent audit event.
 *
 * A notification is a JSON line appended to the outbox file and, when
 * notification-service.webhook_url is set, an HTTP POST. Neither can join
 * the Kafka transaction, so they are at-least-once: a crash between the side
 * effect and the commit repeats it. Each notification therefore carries an id
 * derived from the causing event's id (the Idempotency-Key header), letting
 * the receiver drop the repeat. A failed POST returns EVK_ERR_RETRY: the
 * service retries with backoff, then dead-letters the event.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <jansson.h>

#include "flow_rules.h"
#include "flow_svc.h"

#define NAME "notification-service"
/* Bytes of a failed answer's body shown in its log line. */
#define SNIPPET_MAX 200

typedef struct {
    const char *outbox;
    int fd;
    int sync; /* fdatasync each line: survive power loss, not only a crash */
    const char *webhook_url;
    int64_t timeout_ms;
    CURL *curl;
} notifier_t;

typedef struct {
    char id[32];
    const char *template;
    char message[512];
} notification_t;

/* mkdir -p of @path's directory, so that a fresh checkout's run/ appears. */
static int make_parents(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(dir, 0755) && errno != EEXIST) return -1;
        *slash = '/';
    }
    return 0;
}

/* A POST blocks the consumer for up to the timeout on each of retry_max
 * tries: a hanging receiver must not get the service evicted from its group
 * (and the event replayed by the next member, forever). 0 would be no
 * timeout at all to libcurl. */
static evk_err_t check_timeout(evk_service_t *svc, const notifier_t *n, char *errstr,
                               size_t errstr_size) {
    if (!n->webhook_url || !*n->webhook_url) return EVK_OK;
    if (n->timeout_ms < 1) {
        snprintf(errstr, errstr_size, "%s.webhook_timeout_ms: must be at least 1, got %lld",
                 NAME, (long long)n->timeout_ms);
        return EVK_ERR_CONFIG;
    }
    return evk_service_check_handler_time(svc, NAME ".webhook_timeout_ms", n->timeout_ms,
                                          errstr, errstr_size);
}

static evk_err_t setup(evk_service_t *svc, const evk_config_t *cfg, void *state, char *errstr,
                       size_t errstr_size) {
    notifier_t *n = state;
    /* EVK_NOTIFICATION_OUTBOX wins, as the environment does over the file
     * elsewhere: scripts/start-services --dir moves the outbox with it. */
    const char *env = getenv("EVK_NOTIFICATION_OUTBOX");
    n->outbox =
        env && *env ? env : evk_config_get_string(cfg, NAME ".outbox", "run/outbox.jsonl");
    n->webhook_url = evk_config_get_string(cfg, NAME ".webhook_url", NULL);
    evk_err_t err = evk_config_get_int(cfg, NAME ".webhook_timeout_ms", 5000, &n->timeout_ms,
                                       errstr, errstr_size);
    if (!err) err = check_timeout(svc, n, errstr, errstr_size);
    if (!err)
        err = evk_config_get_bool(cfg, NAME ".outbox_fsync", 0, &n->sync, errstr, errstr_size);
    if (err) return err;
    if (make_parents(n->outbox) ||
        (n->fd = open(n->outbox, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(errstr, errstr_size, "%s.outbox: %s: %s", NAME, n->outbox, strerror(errno));
        return EVK_ERR_IO;
    }
    if (n->webhook_url && *n->webhook_url) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (!(n->curl = curl_easy_init())) {
            snprintf(errstr, errstr_size, "%s: cannot initialise libcurl", NAME);
            return EVK_ERR_CONFIG;
        }
    }
    return EVK_OK;
}

static void cleanup(void *state) {
    notifier_t *n = state;
    if (n->fd >= 0) close(n->fd);
    if (n->curl) {
        curl_easy_cleanup(n->curl);
        curl_global_cleanup();
    }
}

/* The start of a response body. libcurl's default would write the body to
 * stdout: unbounded, and whatever the receiver sends, escapes included. */
typedef struct {
    char head[SNIPPET_MAX];
    size_t len;
} answer_t;

/* Keeps the first SNIPPET_MAX bytes and reads past the rest, so that a long
 * answer still completes (CURLOPT_TIMEOUT_MS bounds how long it may take). */
static size_t keep_head(char *data, size_t size, size_t nmemb, void *opaque) {
    answer_t *a = opaque;
    size_t n = size * nmemb, room = sizeof a->head - a->len, take = n < room ? n : room;
    memcpy(a->head + a->len, data, take);
    a->len += take;
    return n;
}

/* @p a's bytes as log-safe text: printable ASCII as is, anything else
 * (line breaks, terminal escapes, bytes that are not ASCII) as \xNN, so
 * that a receiver can neither forge a log line nor drive a terminal. */
static void escape_snippet(const answer_t *a, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < a->len && o + 5 <= size; i++) {
        unsigned char c = (unsigned char)a->head[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static void log_failure(const notification_t *nt, CURLcode rc, long status, const char *error,
                        const answer_t *a) {
    char status_s[24], body[SNIPPET_MAX * 4 + 1];
    snprintf(status_s, sizeof status_s, "%ld", status);
    escape_snippet(a, body, sizeof body);
    evk_log(EVK_LOG_WARN, NAME, "webhook failed", "notification_id", nt->id, "http_status",
            status_s, "error", rc == CURLE_OK ? "" : error, "body", body, NULL);
}

/* POST @body; 0 on a 2xx answer. */
static int post(notifier_t *n, const notification_t *nt, const char *body) {
    char key[64], error[CURL_ERROR_SIZE] = "";
    long status = 0;
    answer_t answer = {.len = 0};
    snprintf(key, sizeof key, "Idempotency-Key: %s", nt->id);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, key);
    curl_easy_setopt(n->curl, CURLOPT_URL, n->webhook_url);
    curl_easy_setopt(n->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(n->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(n->curl, CURLOPT_TIMEOUT_MS, (long)n->timeout_ms);
    /* No SIGALRM for timeouts: librdkafka's threads share the process. */
    curl_easy_setopt(n->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(n->curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(n->curl, CURLOPT_WRITEFUNCTION, keep_head);
    curl_easy_setopt(n->curl, CURLOPT_WRITEDATA, &answer);
    CURLcode rc = curl_easy_perform(n->curl);
    curl_easy_getinfo(n->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK && status >= 200 && status < 300) return 0;
    log_failure(nt, rc, status, error, &answer);
    return -1;
}

static int append_line(notifier_t *n, const char *body) {
    size_t len = strlen(body);
    char *line = malloc(len + 2);
    if (!line) return -1;
    memcpy(line, body, len);
    memcpy(line + len, "\n", 2);
    /* One write(2) on an O_APPEND descriptor: lines never interleave. */
    int ok =
        write(n->fd, line, len + 1) == (ssize_t)(len + 1) && (!n->sync || !fdatasync(n->fd));
    free(line);
    if (!ok)
        evk_log(EVK_LOG_WARN, NAME, "outbox write failed", "file", n->outbox, "error",
                strerror(errno), NULL);
    return ok ? 0 : -1;
}

/* The side effects: webhook first, so a failed POST leaves no outbox line. */
static evk_err_t deliver(notifier_t *n, const notification_t *nt, const evk_event_t *in,
                         const char *channel) {
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "notification_id", nt->id,
                  "order_id", flow_str(in, "order_id"), "customer_id",
                  flow_str(in, "customer_id"), "template", nt->template, "channel", channel,
                  "message", nt->message, "event_id", evk_event_id(in) ? evk_event_id(in) : "",
                  "event_type", evk_schema_name(evk_event_schema(in)));
    char *body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!body) return EVK_ERR_NOMEM;
    int failed = (n->curl && post(n, nt, body)) || append_line(n, body);
    free(body);
    return failed ? EVK_ERR_RETRY : EVK_OK;
}

static evk_err_t notify(evk_ctx_t *ctx, notifier_t *n, const evk_event_t *in,
                        const notification_t *nt) {
    const char *channel = n->curl ? "webhook" : "file";
    evk_err_t err = deliver(n, nt, in, channel);
    evk_event_t *out = err ? NULL : evk_ctx_new_event(ctx, "NotificationSent");
    if (!out) return err ? err : EVK_ERR_NOMEM;
    err = flow_set_strs(out, "notification_id", nt->id, "order_id", flow_str(in, "order_id"),
                        "customer_id", flow_str(in, "customer_id"), "template", nt->template,
                        "channel", channel, "message", nt->message, NULL);
    if (!err)
        evk_log(EVK_LOG_INFO, NAME, "notified", "order_id", flow_str(in, "order_id"),
                "template", nt->template, "channel", channel, "notification_id", nt->id, NULL);
    return flow_emit(ctx, out, err);
}

/* The id is a function of the causing event, so every repeat shares it; an
 * event without a ce_id is named by its position in the log instead. */
static void init_notification(notification_t *nt, const evk_event_t *in, const char *template) {
    const char *topic = NULL;
    int32_t partition = -1;
    int64_t offset = -1;
    char cause[256];
    evk_event_origin(in, &topic, &partition, &offset);
    if (evk_event_id(in))
        snprintf(cause, sizeof cause, "%s", evk_event_id(in));
    else
        snprintf(cause, sizeof cause, "%s/%d/%lld", topic ? topic : "", (int)partition,
                 (long long)offset);
    flow_hash_id("n-", cause, nt->id, sizeof nt->id);
    nt->template = template;
}

static evk_err_t on_confirmed(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    notification_t nt;
    char total[32];
    init_notification(&nt, in, "order_confirmed");
    flow_format_cents(flow_long(in, "total_cents"), total, sizeof total);
    snprintf(nt.message, sizeof nt.message, "Your order %s is confirmed: %s %s.",
             flow_str(in, "order_id"), total, flow_str(in, "currency"));
    return notify(ctx, opaque, in, &nt);
}

static evk_err_t on_cancelled(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    notification_t nt;
    init_notification(&nt, in, "order_cancelled");
    snprintf(nt.message, sizeof nt.message, "Your order %s was %s: %s.",
             flow_str(in, "order_id"),
             strcmp(flow_str(in, "status"), "REJECTED") ? "cancelled" : "rejected",
             flow_str(in, "reason"));
    return notify(ctx, opaque, in, &nt);
}

static evk_err_t on_dispatched(evk_ctx_t *ctx, const evk_event_t *in, void *opaque) {
    notification_t nt;
    init_notification(&nt, in, "shipment_dispatched");
    snprintf(nt.message, sizeof nt.message,
             "Your order %s has shipped with %s, tracking number %s.", flow_str(in, "order_id"),
             flow_str(in, "carrier"), flow_str(in, "tracking_number"));
    return notify(ctx, opaque, in, &nt);
}

int main(int argc, char **argv) {
    static const flow_route_t routes[] = {{"OrderConfirmed", on_confirmed},
                                          {"OrderCancelled", on_cancelled},
                                          {"ShipmentDispatched", on_dispatched},
                                          {NULL, NULL}};
    static const evk_setting_t settings[] = {{"outbox", EVK_SETTING_STRING},
                                             {"outbox_fsync", EVK_SETTING_BOOL},
                                             {"webhook_url", EVK_SETTING_STRING},
                                             {"webhook_timeout_ms", EVK_SETTING_INT},
                                             {NULL, 0}};
    static const flow_service_t def = {.name = NAME,
                                       .routes = routes,
                                       .settings = settings,
                                       .setup = setup,
                                       .cleanup = cleanup};
    notifier_t state = {.fd = -1};
    return flow_service_main(&def, &state, argc, argv);
}
