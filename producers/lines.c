/* JSON lines to Kafka (lines.h). Each message carries its line number to
 * its delivery report: librdkafka reports a failure long after later lines
 * were queued, and the report must still name the line. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lines.h"

/* A message's opaque: what its delivery report needs. The report frees it. */
typedef struct {
    size_t line;
    char *key; /* NULL when the type has no key field */
} tag_t;

/* A line encoded and ready to send. */
typedef struct {
    tag_t *tag;
    void *frame;
    size_t len;
    rd_kafka_headers_t *headers;
} msg_t;

typedef struct {
    const lines_opts_t *o;
    evk_producer_t *producer;
    evk_json_reader_t *reader;
    /* o->rule sees each record as it will be sent: its frame read back into
     * one value kept for every line, not an event per line. */
    avro_value_iface_t *iface;
    avro_value_t record;
    avro_reader_t body;
    msg_t *held; /* --strict: valid lines waiting for the end of the input */
    size_t nheld, cap;
    size_t invalid;
    uint64_t delivered, failed;
    int fatal_said; /* producer_failed() has printed why */
    /* Progress on a terminal: one line rewritten in place (\r). */
    int progress;
    double started, shown;
    size_t lines; /* read so far */
} run_t;

/* A report on stderr, in place of the progress line if one is shown (it is
 * drawn again at its next turn). */
static void __attribute__((format(printf, 2, 3))) say(run_t *r, const char *fmt, ...) {
    va_list ap;
    if (r->shown > 0) fputs("\r\033[K", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void tag_free(tag_t *t) {
    if (!t) return;
    free(t->key);
    free(t);
}

static void msg_free(msg_t *m) {
    tag_free(m->tag);
    free(m->frame);
    if (m->headers) rd_kafka_headers_destroy(m->headers);
}

static void on_delivery(evk_err_t err, const char *errstr, const char *topic, int32_t partition,
                        int64_t offset, void *msg_opaque, void *opaque) {
    run_t *r = opaque;
    tag_t *tag = msg_opaque;
    (void)partition, (void)offset;
    if (err) {
        say(r, "line %zu: not delivered to %s: %s\n", tag->line, topic, errstr);
        r->failed++;
    } else {
        r->delivered++;
        if (r->o->print_keys && tag->key) printf("%s\n", tag->key);
    }
    tag_free(tag);
}

/* The JSON parser sees one line at a time, so its "line 1, column C" is
 * rewritten to the line's place in the input. */
static void report_invalid(run_t *r, size_t lineno, const char *reason) {
    static const char parser_line[] = "line 1, ";
    if (!strncmp(reason, parser_line, sizeof(parser_line) - 1))
        say(r, "line %zu, %s\n", lineno, reason + sizeof(parser_line) - 1);
    else
        say(r, "line %zu: %s\n", lineno, reason);
    r->invalid++;
}

static int rule_open(run_t *r) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(evk_schema_avro(r->o->schema));
    if (!iface || avro_generic_value_new(iface, &r->record)) {
        if (iface) avro_value_iface_decref(iface);
        return -1;
    }
    r->iface = iface;
    return (r->body = avro_reader_memory("", 0)) ? 0 : -1;
}

static void rule_close(run_t *r) {
    if (r->body) avro_reader_free(r->body);
    if (!r->iface) return;
    avro_value_decref(&r->record);
    avro_value_iface_decref(r->iface);
}

static int check_rule(run_t *r, const msg_t *m, char *errstr, size_t errstr_size) {
    avro_reader_memory_set_source(r->body, (const char *)m->frame + EVK_FRAME_HEADER_SIZE,
                                  (int64_t)(m->len - EVK_FRAME_HEADER_SIZE));
    if (avro_value_read(r->body, &r->record)) {
        snprintf(errstr, errstr_size, "cannot read the record back: %s", avro_strerror());
        return -1;
    }
    return r->o->rule(&r->record, errstr, errstr_size);
}

/* -H name=value: replaces a header evkit sets under that name (the
 * command line refuses the CloudEvents ones), else is added. */
static evk_err_t add_headers(const lines_opts_t *o, rd_kafka_headers_t *h) {
    for (size_t i = 0; i < o->nheaders; i++) {
        const char *eq = strchr(o->headers[i], '=');
        size_t name_len = (size_t)(eq - o->headers[i]);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)name_len, o->headers[i]);
        rd_kafka_header_remove(h, name);
        if (rd_kafka_header_add(h, name, -1, eq + 1, -1)) return EVK_ERR_NOMEM;
    }
    return EVK_OK;
}

/* A line to a message: 0, or -1 with errstr "<field path>: <reason>". */
static int encode_line(run_t *r, size_t lineno, const char *line, size_t len, msg_t *m,
                       char *errstr, size_t errstr_size) {
    const lines_opts_t *o = r->o;
    char *key = NULL;
    *m = (msg_t){0};
    if ((o->defaults && o->defaults(r->reader, errstr, errstr_size)) ||
        evk_json_reader_frame(r->reader, line, len, &m->frame, &m->len, &key, errstr,
                              errstr_size))
        return -1;
    if (o->key && key && strcmp(key, o->key)) {
        snprintf(errstr, errstr_size, "%s: \"%s\" is not the key given with -k (\"%s\")",
                 evk_schema_key_field(o->schema), key, o->key);
        free(key);
        msg_free(m);
        return -1;
    }
    if (!(m->tag = malloc(sizeof *m->tag))) {
        free(key);
        msg_free(m);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    *m->tag = (tag_t){lineno, key};
    if (o->rule && check_rule(r, m, errstr, errstr_size)) {
        msg_free(m);
        return -1;
    }
    evk_err_t err =
        evk_frame_headers(o->schema, o->prog, o->correlate ? key : NULL, NULL, &m->headers);
    if (!err) err = add_headers(o, m->headers);
    if (!err) return 0;
    snprintf(errstr, errstr_size, "cannot encode: %s", evk_err2str(err));
    msg_free(m);
    return -1;
}

/* Whether the producer has failed for good (a fatal error of idempotence,
 * say), said once: every later send would fail too, and the messages it
 * held are reported as purged, which alone would not say why. */
static int producer_failed(run_t *r) {
    char reason[512];
    if (!rd_kafka_fatal_error(evk_producer_rk(r->producer), reason, sizeof reason)) return 0;
    if (!r->fatal_said) say(r, "%s: the producer failed: %s\n", r->o->prog, reason);
    r->fatal_said = 1;
    return 1;
}

/* @p m passes on. A line that cannot be sent is reported and counted, and
 * the rest is still sent (docs/CLI.md); -1 only when the producer failed. */
static int send_msg(run_t *r, msg_t *m) {
    char errstr[512];
    tag_t *tag = m->tag;
    const char *key = tag->key;
    int32_t partition = r->o->to_partition ? r->o->partition : RD_KAFKA_PARTITION_UA;
    if (!evk_producer_send_frame(r->producer, r->o->schema, partition, key,
                                 key ? strlen(key) : 0, m->frame, m->len, m->headers, tag,
                                 errstr, sizeof errstr)) {
        evk_producer_poll(r->producer, 0); /* report deliveries as they come */
        return 0;
    }
    say(r, "line %zu: not delivered: %s\n", tag->line, errstr);
    r->failed++;
    if (!producer_failed(r)) {
        tag_free(tag);
        return 0;
    }
    say(r, "%s: stopped at line %zu: the rest of the input is not sent\n", r->o->prog,
        tag->line);
    tag_free(tag);
    return -1;
}

static int hold(run_t *r, msg_t *m) {
    if (r->nheld == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        msg_t *grown = realloc(r->held, cap * sizeof *grown);
        if (!grown) {
            say(r, "%s: out of memory holding line %zu for --strict\n", r->o->prog,
                m->tag->line);
            msg_free(m);
            return -1;
        }
        r->held = grown;
        r->cap = cap;
    }
    r->held[r->nheld++] = *m;
    return 0;
}

/* Explicit characters, not strchr(" \t\r\n", c): that matches the NUL
 * terminator too, and a line of NUL bytes would pass for blank. */
static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* 0 to read on, -1 to stop. */
static int process_line(run_t *r, size_t lineno, const char *line, size_t len) {
    char errstr[1024];
    msg_t m;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (is_blank(line, len)) return 0;
    const char *nul = memchr(line, '\0', len);
    if (nul) {
        say(r, "line %zu, column %zu: NUL byte, not JSON text\n", lineno,
            (size_t)(nul - line) + 1);
        r->invalid++;
        return 0;
    }
    if (encode_line(r, lineno, line, len, &m, errstr, sizeof errstr)) {
        report_invalid(r, lineno, errstr);
        return 0;
    }
    return r->o->strict ? hold(r, &m) : send_msg(r, &m);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* At most ten times a second, and at the end (@p final) once more. */
static void show_progress(run_t *r, int final) {
    if (!r->progress) return; /* before the clock: this runs once per line */
    double now = now_s();
    if (!final && now - r->shown < 0.1) return;
    r->shown = now;
    double rate = now > r->started ? (double)r->lines / (now - r->started) : 0;
    fprintf(stderr, "\r%zu lines read, %llu delivered, %zu invalid, %.0f lines/s%s", r->lines,
            (unsigned long long)r->delivered, r->invalid, rate, final ? "\n" : "");
}

/* 0 at the end of the input, -1 when reading stopped before it. */
static int read_input(run_t *r, FILE *in) {
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) != -1) {
        rc = process_line(r, ++lineno, line, (size_t)n);
        r->lines = lineno;
        show_progress(r, 0);
    }
    free(line);
    if (!rc && ferror(in)) {
        say(r, "%s: reading line %zu: %s\n", r->o->prog, lineno + 1, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* --strict: all or nothing. */
static void release_held(run_t *r, int send) {
    for (size_t i = 0; i < r->nheld; i++) {
        if (send)
            send = !send_msg(r, &r->held[i]);
        else
            msg_free(&r->held[i]);
    }
    free(r->held);
}

static int finish(run_t *r, int stopped) {
    const lines_opts_t *o = r->o;
    char errstr[1024];
    evk_err_t err = evk_producer_flush(r->producer, -1, errstr, sizeof errstr);
    show_progress(r, 1);
    /* Failed deliveries were reported line by line. */
    if (err && err != EVK_ERR_DELIVERY) fprintf(stderr, "%s: %s\n", o->prog, errstr);
    producer_failed(r);
    fflush(stdout);
    int rc = r->failed || (err && err != EVK_ERR_DELIVERY) ? EVK_EXIT_DELIVERY
             : r->invalid || stopped                       ? EVK_EXIT_INPUT
                                                           : EVK_EXIT_OK;
    if (o->quiet) return rc;
    fprintf(stderr, "%s: %llu sent, %zu invalid", o->prog, (unsigned long long)r->delivered,
            r->invalid);
    if (r->failed) fprintf(stderr, ", %llu failed", (unsigned long long)r->failed);
    if (o->strict && (r->invalid || stopped)) fputs(" (--strict: nothing sent)", stderr);
    fputc('\n', stderr);
    return rc;
}

/* -k: the key field takes the key where a line leaves it out. The key has
 * passed evk_key_check(), so quoting " and \\ makes it a JSON string. */
static int key_default(run_t *r, char *errstr, size_t errstr_size) {
    const char *k = r->o->key;
    char *json = malloc(2 * strlen(k) + 3), *w = json;
    if (!json) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    *w++ = '"';
    for (; *k; k++) {
        if (*k == '"' || *k == '\\') *w++ = '\\';
        *w++ = *k;
    }
    *w++ = '"';
    *w = '\0';
    evk_err_t err = evk_json_reader_set_default(r->reader, evk_schema_key_field(r->o->schema),
                                                json, errstr, errstr_size);
    free(json);
    return err ? -1 : 0;
}

int lines_publish(const lines_opts_t *o, const evk_config_t *cfg, const evk_catalog_t *cat,
                  FILE *in) {
    run_t r = {.o = o};
    char errstr[512];
    int rc = EVK_EXIT_CONFIG;
    if (evk_json_reader_new(o->schema, &r.reader) || (o->rule && rule_open(&r)))
        fprintf(stderr, "%s: out of memory\n", o->prog);
    else if (o->key && key_default(&r, errstr, sizeof errstr))
        fprintf(stderr, "%s: -k: %s\n", o->prog, errstr);
    else if (evk_producer_new(cfg, cat, o->prog, &r.producer, errstr, sizeof errstr))
        fprintf(stderr, "%s: %s\n", o->prog, errstr);
    else if (evk_producer_connect(r.producer, EVK_CLI_CONNECT_TIMEOUT_MS, errstr,
                                  sizeof errstr)) {
        fprintf(stderr, "%s: %s\n", o->prog, errstr);
        rc = EVK_EXIT_DELIVERY;
    } else {
        evk_producer_set_delivery_cb(r.producer, on_delivery, &r);
        r.progress = !o->quiet && isatty(STDERR_FILENO);
        r.started = now_s();
        int stopped = read_input(&r, in);
        if (o->strict) release_held(&r, !r.invalid && !stopped);
        rc = finish(&r, stopped);
    }
    evk_producer_destroy(r.producer);
    rule_close(&r);
    evk_json_reader_destroy(r.reader);
    return rc;
}
