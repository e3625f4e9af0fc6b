/* evk-produce: publish events of one type from JSON lines. See docs/CLI.md. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evkit/evkit.h"

#define PROG "evk-produce"
#define SOURCE "evk-produce"

typedef struct {
    const char *brokers;
    const char *config_file;
    char **props;
    size_t nprops;
    const char *type;
    int strict;
    const char *input;
} options_t;

/* One validated line, encoded and ready for evk_producer_send_frame(). */
typedef struct {
    void *frame;
    size_t len;
    char *key;
    rd_kafka_headers_t *headers;
} message_t;

/* Messages held back by --strict until the whole input is known valid. */
typedef struct {
    message_t *items;
    size_t count;
    size_t cap;
} batch_t;

typedef struct {
    const evk_schema_t *schema;
    evk_json_reader_t *reader;
    evk_producer_t *producer;
    int strict;
    batch_t held;
    size_t invalid;
    int delivery_failed;
} run_t;

static void usage(FILE *out) {
    fprintf(out, "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] -t TYPE "
                 "[--strict] [FILE|-]\n"
                 "Validate JSON lines (one record per line) against TYPE's schema and\n"
                 "publish them to its topic, keyed by the catalog key field.\n"
                 "  --strict  send nothing unless every line is valid\n");
}

static int parse_options(int argc, char **argv, options_t *o) {
    static const struct option longopts[] = {{"strict", no_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:X:F:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 'X':
            o->props[o->nprops++] = optarg;
            break;
        case 'F':
            o->config_file = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 's':
            o->strict = 1;
            break;
        case 'h':
            usage(stdout);
            exit(EVK_EXIT_OK);
        default:
            usage(stderr);
            return EVK_EXIT_USAGE;
        }
    }
    if (!o->type || argc - optind > 1) {
        fprintf(stderr, PROG ": %s\n",
                o->type ? "at most one input file" : "-t TYPE is required");
        usage(stderr);
        return EVK_EXIT_USAGE;
    }
    o->input = optind < argc ? argv[optind] : "-";
    return EVK_EXIT_OK;
}

static void message_free(message_t *m) {
    free(m->frame);
    free(m->key);
    if (m->headers) rd_kafka_headers_destroy(m->headers);
}

/* Turn a line into a ready message; on failure errstr holds "<path>: <reason>".
 * The line goes straight to a frame: no event, no JSON DOM (docs/PERFORMANCE.md). */
static evk_err_t encode_line(run_t *r, const char *line, size_t len, message_t *m, char *errstr,
                             size_t errstr_size) {
    *m = (message_t){0};
    evk_err_t err = evk_json_reader_frame(r->reader, line, len, &m->frame, &m->len, &m->key,
                                          errstr, errstr_size);
    if (err) return err;
    err = evk_frame_headers(r->schema, SOURCE, NULL, NULL, &m->headers);
    if (err) {
        message_free(m);
        snprintf(errstr, errstr_size, "cannot encode: %s", evk_err2str(err));
    }
    return err;
}

/* Ownership of the message passes to the producer whatever the outcome. */
static int send_message(run_t *r, message_t *m) {
    char errstr[512];
    evk_err_t err =
        evk_producer_send_frame(r->producer, r->schema, m->key, m->key ? strlen(m->key) : 0,
                                m->frame, m->len, m->headers, NULL, errstr, sizeof(errstr));
    free(m->key);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        r->delivery_failed = 1;
    }
    return err ? -1 : 0;
}

static int hold_message(batch_t *b, const message_t *m) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        message_t *grown = realloc(b->items, cap * sizeof(*grown));
        if (!grown) return -1;
        b->items = grown;
        b->cap = cap;
    }
    b->items[b->count++] = *m;
    return 0;
}

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", s[i])) return 0;
    return 1;
}

/* The JSON parser sees one line at a time, so its "line 1, column C" is
 * rewritten to the line's place in the input. */
static void report_invalid(size_t lineno, const char *reason) {
    static const char parser_line[] = "line 1, ";
    if (!strncmp(reason, parser_line, sizeof(parser_line) - 1))
        fprintf(stderr, "line %zu, %s\n", lineno, reason + sizeof(parser_line) - 1);
    else
        fprintf(stderr, "line %zu: %s\n", lineno, reason);
}

static int process_line(run_t *r, size_t lineno, char *line, size_t len) {
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (is_blank(line, len)) return 0;
    message_t m;
    char errstr[1024];
    if (encode_line(r, line, len, &m, errstr, sizeof(errstr))) {
        report_invalid(lineno, errstr);
        r->invalid++;
        return 0;
    }
    if (!r->strict) return send_message(r, &m);
    if (hold_message(&r->held, &m)) {
        message_free(&m);
        fprintf(stderr, PROG ": out of memory holding line %zu for --strict\n", lineno);
        return -1;
    }
    return 0;
}

static int read_input(run_t *r, FILE *in) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) != -1)
        rc = process_line(r, ++lineno, line, (size_t)n);
    free(line);
    if (!rc && ferror(in)) {
        fprintf(stderr, PROG ": reading line %zu: %s\n", lineno + 1, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* --strict: all or nothing. Sending stops at the first failure too, since
 * the input is then only partly published anyway. */
static void release_held(run_t *r, int send) {
    for (size_t i = 0; i < r->held.count; i++) {
        if (send)
            send = !send_message(r, &r->held.items[i]);
        else
            message_free(&r->held.items[i]);
    }
    free(r->held.items);
}

/* Long enough for librdkafka to deliver or fail every queued message. */
static int flush_timeout_ms(evk_producer_t *p) {
    char buf[32];
    size_t size = sizeof(buf);
    if (rd_kafka_conf_get(rd_kafka_conf(evk_producer_rk(p)), "message.timeout.ms", buf,
                          &size) != RD_KAFKA_CONF_OK)
        return 300000 + 10000;
    return atoi(buf) + 10000;
}

static int finish(run_t *r) {
    char errstr[1024];
    evk_err_t err =
        evk_producer_flush(r->producer, flush_timeout_ms(r->producer), errstr, sizeof(errstr));
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        r->delivery_failed = 1;
    }
    uint64_t failed = evk_producer_failed(r->producer);
    fprintf(stderr, PROG ": %llu sent, %zu invalid",
            (unsigned long long)evk_producer_delivered(r->producer), r->invalid);
    if (failed) fprintf(stderr, ", %llu failed", (unsigned long long)failed);
    fputc('\n', stderr);
    if (r->delivery_failed) return EVK_EXIT_DELIVERY;
    return r->invalid ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

/* Input that could not be read to the end counts as invalid input. */
static int produce(run_t *r, FILE *in) {
    int read_failed = read_input(r, in);
    if (r->strict) release_held(r, !r->invalid && !read_failed);
    int rc = finish(r);
    return rc ? rc : read_failed ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

static int open_input(const char *path, FILE **in) {
    *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (*in) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
    return EVK_EXIT_INPUT;
}

static int run(const options_t *o, const evk_config_t *cfg, const evk_catalog_t *cat) {
    run_t r = {.strict = o->strict, .schema = evk_catalog_find(cat, o->type)};
    if (!r.schema) {
        fprintf(stderr, PROG ": unknown event type \"%s\"\n", o->type);
        return EVK_EXIT_USAGE;
    }
    FILE *in;
    int rc = open_input(o->input, &in);
    if (rc) return rc;
    char errstr[512];
    if (evk_json_reader_new(r.schema, &r.reader)) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = EVK_EXIT_CONFIG;
    } else if (evk_producer_new(cfg, cat, SOURCE, &r.producer, errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_CONFIG;
    } else {
        rc = produce(&r, in);
        evk_producer_destroy(r.producer);
    }
    evk_json_reader_destroy(r.reader);
    if (in != stdin) fclose(in);
    return rc;
}

int main(int argc, char **argv) {
    options_t o = {.props = calloc((size_t)argc, sizeof(char *))};
    if (!o.props) return EVK_EXIT_CONFIG;
    int rc = parse_options(argc, argv, &o);
    evk_config_t *cfg = NULL;
    evk_catalog_t *cat = NULL;
    char errstr[1024];
    if (!rc && (evk_cli_config(o.config_file, o.brokers, o.props, o.nprops, &cfg, errstr,
                               sizeof(errstr)) ||
                evk_cli_catalog(cfg, &cat, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_CONFIG;
    }
    if (!rc) rc = run(&o, cfg, cat);
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
    free(o.props);
    return rc;
}
