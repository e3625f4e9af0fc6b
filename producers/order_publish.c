/* evk-order publish: OrderPlaced JSON lines, one order per line. A line may
 * leave out order_id and created_at; they are filled in. Invalid lines are
 * reported as "line N: <field path>: <reason>"; valid ones are sent unless
 * --strict, which sends nothing when any line is invalid. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "order.h"

typedef struct {
    const order_env_t *env;
    evk_json_reader_t *reader;
    order_sender_t sender;
    int strict;
    order_msg_t *held; /* --strict: valid orders waiting for the end of input */
    size_t nheld, cap;
    size_t invalid;
    int send_failed;
} publish_t;

/* The line as JSON with order_id and created_at filled in when absent;
 * malloc()ed, or NULL with errstr set. */
static char *complete_line(const char *line, size_t len, char *errstr, size_t errstr_size) {
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);
    if (!obj) {
        snprintf(errstr, errstr_size, "column %d: %s", jerr.column, jerr.text);
        return NULL;
    }
    if (json_is_object(obj) && !json_object_get(obj, "order_id")) {
        char uuid[37], id[40];
        evk_uuid4(uuid);
        snprintf(id, sizeof id, "o-%s", uuid);
        json_object_set_new(obj, "order_id", json_string(id));
    }
    if (json_is_object(obj) && !json_object_get(obj, "created_at"))
        json_object_set_new(obj, "created_at", json_integer(order_now_ms()));
    char *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!out) snprintf(errstr, errstr_size, "out of memory");
    return out;
}

static int hold(publish_t *p, const order_msg_t *m) {
    if (p->nheld == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        order_msg_t *grown = realloc(p->held, cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, PROG ": out of memory holding orders for --strict\n");
            order_msg_free((order_msg_t *)m);
            return -1;
        }
        p->held = grown;
        p->cap = cap;
    }
    p->held[p->nheld++] = *m;
    return 0;
}

static int is_blank(const char *s) {
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* order_id and created_at for a line that leaves them out. */
static evk_err_t line_defaults(publish_t *p, char *errstr, size_t errstr_size) {
    char uuid[37], id[48], now[24];
    evk_uuid4(uuid);
    snprintf(id, sizeof id, "\"o-%s\"", uuid);
    snprintf(now, sizeof now, "%lld", (long long)order_now_ms());
    evk_err_t err = evk_json_reader_set_default(p->reader, "order_id", id, errstr, errstr_size);
    return err ? err
               : evk_json_reader_set_default(p->reader, "created_at", now, errstr, errstr_size);
}

static int has_escaped_nul(const char *s, size_t len) {
    const char *end = s + len;
    for (const char *p = s; (p = memchr(p, '\\', (size_t)(end - p))) && end - p >= 6; p++)
        if (!memcmp(p, "\\u0000", 6)) return 1;
    return 0;
}

/* The fast path: the line straight to a frame (docs/PERFORMANCE.md). Any
 * failure leaves the line to dom_msg(), whose verdict and words are the
 * ones publish has always had. */
static int fast_msg(publish_t *p, const char *line, size_t len, order_msg_t *m) {
    char errstr[512];
    *m = (order_msg_t){0};
    /* complete_line() reads without JSON_ALLOW_NUL, the reader with it. */
    if (has_escaped_nul(line, len)) return -1;
    if (line_defaults(p, errstr, sizeof errstr) ||
        evk_json_reader_frame(p->reader, line, len, &m->frame, &m->len, &m->order_id, errstr,
                              sizeof errstr))
        return -1;
    if (m->order_id && !evk_frame_headers(p->env->placed, PROG, m->order_id, NULL, &m->headers))
        return 0;
    order_msg_free(m);
    return -1;
}

static int msg_from_event(evk_event_t *order, order_msg_t *m) {
    const char *id = NULL;
    *m = (order_msg_t){0};
    /* The order id correlates every event the order causes downstream. */
    if (evk_event_get_string(order, "order_id", &id) || !(m->order_id = strdup(id)) ||
        evk_event_set_correlation_id(order, id) || evk_event_set_source(order, PROG) ||
        evk_event_encode(order, &m->frame, &m->len) || evk_event_headers(order, &m->headers)) {
        order_msg_free(m);
        return -1;
    }
    return 0;
}

/* The reference path: 0 with *m, 1 when the line is invalid (reported
 * here), -1 when out of memory. */
static int dom_msg(publish_t *p, size_t lineno, const char *line, size_t len, order_msg_t *m) {
    char errstr[1024];
    evk_event_t *order = NULL;
    char *json = complete_line(line, len, errstr, sizeof errstr);
    if (json &&
        evk_event_from_json(p->env->placed, json, strlen(json), &order, errstr, sizeof errstr))
        order = NULL;
    if (!order) /* "line 2: items[0].quantity: ...", "line 5, column 18: ..." */
        fprintf(stderr, "line %zu%s%s\n", lineno, json ? ": " : ", ", errstr);
    free(json);
    if (!order) return 1;
    int rc = msg_from_event(order, m);
    evk_event_destroy(order);
    if (rc) fprintf(stderr, PROG ": out of memory\n");
    return rc;
}

/* 0 to go on, -1 to stop reading (out of memory, or a send failed). */
static int process_line(publish_t *p, size_t lineno, const char *line, size_t len) {
    order_msg_t m;
    if (is_blank(line)) return 0;
    if (fast_msg(p, line, len, &m)) {
        int rc = dom_msg(p, lineno, line, len, &m);
        p->invalid += rc > 0;
        if (rc) return rc > 0 ? 0 : -1;
    }
    if (p->strict) return hold(p, &m);
    p->send_failed |= order_send_frame(&p->sender, p->env, &m) != 0;
    return p->send_failed ? -1 : 0;
}

static int read_lines(publish_t *p, FILE *in) {
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) != -1)
        rc = process_line(p, ++lineno, line, (size_t)n);
    free(line);
    if (!rc && ferror(in)) {
        fprintf(stderr, PROG ": reading line %zu: %s\n", lineno + 1, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* --strict: all or nothing. */
static void release_held(publish_t *p, int send) {
    for (size_t i = 0; i < p->nheld; i++) {
        if (send && !p->send_failed)
            p->send_failed |= order_send_frame(&p->sender, p->env, &p->held[i]) != 0;
        else
            order_msg_free(&p->held[i]);
    }
    free(p->held);
}

static int publish(publish_t *p, FILE *in) {
    int read_failed = read_lines(p, in);
    if (p->strict) release_held(p, !p->invalid && !read_failed);
    int rc = order_sender_close(&p->sender);
    fprintf(stderr, PROG ": %llu sent, %zu invalid%s\n", (unsigned long long)p->sender.sent,
            p->invalid, p->strict && p->invalid ? " (--strict: nothing sent)" : "");
    if (rc || p->send_failed) return EVK_EXIT_DELIVERY;
    return p->invalid || read_failed ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

int order_cmd_publish(int argc, char **argv, order_opts_t *o) {
    static const struct option longopts[] = {{"strict", no_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    publish_t p = {0};
    order_env_t env;
    int c, rc;
    while ((c = getopt_long(argc, argv, ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (c == 's')
            p.strict = 1;
        else if (!order_common_opt(o, c, optarg))
            return EVK_EXIT_USAGE;
    }
    if (argc - optind != 1) return order_usage_error("publish: expected one input, FILE or -");
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!in) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EVK_EXIT_INPUT;
    }
    if (!(rc = order_env_open(o, &env))) {
        if (evk_json_reader_new(env.placed, &p.reader)) {
            fprintf(stderr, PROG ": out of memory\n");
            rc = EVK_EXIT_CONFIG;
        } else if (!(rc = order_sender_open(&p.sender, &env, 1))) {
            p.env = &env;
            rc = publish(&p, in);
        }
        evk_json_reader_destroy(p.reader);
    }
    order_env_close(&env);
    if (in != stdin) fclose(in);
    return rc;
}
