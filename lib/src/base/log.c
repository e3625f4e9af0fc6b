/* Structured log lines (logfmt or JSON) on stderr, levels, and
 * librdkafka's log lines in the same format. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "evkit/log.h"
#include "internal.h"

/* Records are assembled in one buffer and written with a single write(2) so
 * that lines from several threads (or processes sharing a log file) never
 * interleave. Longer records are cut, never split. */
#define LOG_LINE_MAX 4096

typedef enum { FMT_LOGFMT, FMT_JSON } log_format_t;

/* The level evk_log_setup() read, and the command line's move from it. */
static evk_log_level_t base_level = EVK_LOG_INFO;
static int verbosity;
static evk_log_level_t min_level = EVK_LOG_INFO;
static log_format_t format = FMT_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
    if (n > sizeof l->buf - 1 - l->len) n = sizeof l->buf - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s) {
    put(l, s, strlen(s));
}

static int needs_logfmt_quotes(const char *s) {
    if (!*s) return 1;
    for (; *s; s++)
        if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\') return 1;
    return 0;
}

/* Escapes the characters both logfmt's quoted form and JSON strings forbid. */
static void put_escaped_n(line_t *l, const char *s, size_t n) {
    char esc[8];
    for (const char *end = s + n; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* Like put_escaped_n(), but the user:password@ of a URL (HTTP basic auth)
 * is replaced wherever one appears, e.g. in a library's error message. */
static void put_escaped(line_t *l, const char *s) {
    const char *scheme;
    while ((scheme = strstr(s, "://"))) {
        const char *authority = scheme + 3;
        size_t n = evk__url_userinfo_len(authority);
        put_escaped_n(l, s, (size_t)(authority - s));
        s = authority + n;
        if (n) puts_(l, "<redacted>@");
    }
    put_escaped_n(l, s, strlen(s));
}

static void put_value(line_t *l, const char *v) {
    if (format == FMT_LOGFMT && !needs_logfmt_quotes(v)) {
        put_escaped(l, v); /* nothing to escape, but a URL to redact */
        return;
    }
    put(l, "\"", 1);
    put_escaped(l, v);
    put(l, "\"", 1);
}

static void put_field(line_t *l, const char *k, const char *v) {
    if (format == FMT_JSON) {
        put(l, l->len > 1 ? ",\"" : "\"", l->len > 1 ? 2 : 1);
        put_escaped(l, k);
        put(l, "\":", 2);
    } else {
        if (l->len) put(l, " ", 1);
        puts_(l, k);
        put(l, "=", 1);
    }
    put_value(l, v ? v : "");
}

static void timestamp(char out[32]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

int evk_log_enabled(evk_log_level_t level) {
    return level >= min_level;
}

void evk_log(evk_log_level_t level, const char *component, const char *msg, ...) {
    if (!evk_log_enabled(level)) return;
    line_t l = {.len = 0};
    char ts[32];
    timestamp(ts);
    if (format == FMT_JSON) put(&l, "{", 1);
    put_field(&l, "time", ts);
    put_field(&l, "level", level_names[level]);
    put_field(&l, "component", component);
    put_field(&l, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        put_field(&l, k, evk__secret_name(k) ? "<redacted>" : v);
    }
    va_end(ap);
    if (format == FMT_JSON) put(&l, "}", 1);
    l.buf[l.len++] = '\n';
    /* A short write of a log line is not worth failing the caller for. */
    ssize_t ignored = write(STDERR_FILENO, l.buf, l.len);
    (void)ignored;
}

int evk__log_level_from_name(const char *name, evk_log_level_t *out) {
    for (int i = EVK_LOG_DEBUG; i <= EVK_LOG_ERROR; i++) {
        if (!strcasecmp(name, level_names[i])) {
            *out = (evk_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

static void apply_level(void) {
    int l = (int)base_level - verbosity;
    min_level = (evk_log_level_t)(l < EVK_LOG_DEBUG   ? EVK_LOG_DEBUG
                                  : l > EVK_LOG_ERROR ? EVK_LOG_ERROR
                                                      : l);
}

void evk_log_verbosity(int steps) {
    verbosity = steps;
    apply_level();
}

static evk_err_t parse_level(const char *s, const char *from, char *errstr, size_t n) {
    if (!evk__log_level_from_name(s, &base_level)) return EVK_OK;
    return evk__fail(EVK_ERR_CONFIG, errstr, n,
                     "%s: unknown log level \"%s\" (debug, info, warn, error)", from, s);
}

static evk_err_t parse_format(const char *s, const char *from, char *errstr, size_t n) {
    if (!strcasecmp(s, "logfmt"))
        format = FMT_LOGFMT;
    else if (!strcasecmp(s, "json"))
        format = FMT_JSON;
    else
        return evk__fail(EVK_ERR_CONFIG, errstr, n,
                         "%s: unknown log format \"%s\" (logfmt, json)", from, s);
    return EVK_OK;
}

evk_err_t evk_log_setup(const evk_config_t *cfg, char *errstr, size_t errstr_size) {
    const char *level = getenv("EVK_LOG_LEVEL");
    const char *fmt = getenv("EVK_LOG_FORMAT");
    const char *level_from = "EVK_LOG_LEVEL", *fmt_from = "EVK_LOG_FORMAT";
    if (!level && cfg) {
        level = evk_config_get_string(cfg, "log.level", NULL);
        level_from = "log.level";
    }
    if (!fmt && cfg) {
        fmt = evk_config_get_string(cfg, "log.format", NULL);
        fmt_from = "log.format";
    }
    evk_err_t err = EVK_OK;
    if (level) err = parse_level(level, level_from, errstr, errstr_size);
    if (!err && fmt) err = parse_format(fmt, fmt_from, errstr, errstr_size);
    apply_level();
    return err;
}

/* librdkafka's levels are syslog's (0 emergency ... 7 debug). Each client
 * is built from one property list for every role, so CONFWARN's notes that
 * a property belongs to the other role, and the dev broker's host handle's
 * note that it has no bootstrap.servers, are expected noise. */
void evk__rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (!strcmp(fac, "CONFWARN") && (strstr(buf, "property and will be ignored by this") ||
                                     strstr(buf, "bootstrap.servers")))
        return;
    /* Level 7 comes only with librdkafka's `debug` property set: whoever
     * set it wants to read it, so it is not hidden behind evkit's level. */
    evk_log_level_t l = level <= 3 ? EVK_LOG_ERROR : level == 4 ? EVK_LOG_WARN : EVK_LOG_INFO;
    evk_log(l, "librdkafka", buf, "client", rd_kafka_name(rk), "facility", fac, NULL);
}
