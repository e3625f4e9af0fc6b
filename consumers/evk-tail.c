/* evk-tail: print the events of Kafka topics as JSON lines, like kcat -C -J
 * with the Avro value decoded. See docs/CLI.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evkit/evkit.h"

#define PROG "evk-tail"
#define METADATA_TIMEOUT_MS 10000

typedef struct {
    evk_cli_opts_t cli;
    const char *group;
    const char *offset; /* as given to -o, NULL when absent */
    int64_t start;      /* -o as a librdkafka offset, for assign() */
    int64_t start_ms;   /* -o s@TIMESTAMP, -1 when absent */
    long long count;    /* -c, 0 = unlimited */
    int exit_eof;
    int32_t partition; /* -p, -1 = every partition */
    const char *key;   /* -k: only messages with this key */
    const char *type;  /* -t: only events of this type */
    int raw;           /* --raw: the value's bytes, not decoded */
    char **topics;
    int ntopics;
} options_t;

/* Each line is built in one reused buffer and written with a single fwrite:
 * at tens of thousands of messages a second, per-field stdio calls show. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int oom; /* sticky: later writes are dropped, the line is reported instead */
} line_t;

/* One assigned partition and whether it has reached its end (for -e). */
typedef struct {
    char *topic;
    int32_t partition;
    int eof;
} part_t;

typedef struct {
    rd_kafka_t *rk;
    const evk_catalog_t *cat;
    const evk_schema_t *type; /* -t, resolved */
    const char *key;          /* -k */
    int raw;                  /* --raw */
    part_t *parts;
    int nparts;
    long long printed;
    long long undecodable;
    int failed; /* a fatal error stopped the run */
    line_t line;
} tail_t;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out,
            "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] [-q|-v] [-G group]\n"
            "       [-o beginning|end|<offset>|-<n>|s@<ms>] [-p partition] [-k key]\n"
            "       [-t type] [--raw] [-c count] [-e] TOPIC...\n"
            "       " PROG " -h|--help | -V|--version\n"
            "Print each message as a JSON line with its Avro value decoded.\n"
            "  -G group      consume as a member of a balanced consumer group\n"
            "  -o            where to start (default beginning; -<n>: n before the\n"
            "                end; s@<ms>: the first message at or after that time)\n"
            "  -p partition  only this partition of each topic\n"
            "  -k key        only messages with this key\n"
            "  -t type       only events of this type (full or short name)\n"
            "  --raw         the value as base64, not decoded\n"
            "  -c count      exit after printing count messages\n"
            "  -e            exit when every partition has reached its end\n");
}

/* ---- options ---- */

static int parse_offset(options_t *o) {
    if (!strcmp(o->offset, "beginning")) {
        o->start = RD_KAFKA_OFFSET_BEGINNING;
        return 0;
    }
    if (!strcmp(o->offset, "end")) {
        o->start = RD_KAFKA_OFFSET_END;
        return 0;
    }
    if (o->group) return -1; /* a group resumes from its committed offsets */
    int at_time = !strncmp(o->offset, "s@", 2);
    const char *num = o->offset + (at_time ? 2 : 0);
    char *end;
    errno = 0;
    long long v = strtoll(num, &end, 10);
    if (errno || end == num || *end || (at_time && v < 0)) return -1;
    if (at_time)
        o->start_ms = v;
    else
        o->start = v < 0 ? RD_KAFKA_OFFSET_TAIL(-v) : v;
    return 0;
}

static int parse_options(int argc, char **argv, options_t *o) {
    static const struct option longopts[] = {
        {"raw", no_argument, NULL, 'r'}, EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    long long partition;
    int c;
    o->partition = -1;
    o->start_ms = -1;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING "G:o:c:ep:k:t:", longopts, NULL)) !=
           -1) {
        int shared = evk_cli_opt(&o->cli, c, optarg, PROG, usage);
        if (shared == EVK_CLI_TAKEN) continue;
        if (shared != EVK_CLI_NOT_MINE) exit(shared);
        switch (c) {
        case 'G':
            o->group = optarg;
            break;
        case 'o':
            o->offset = optarg;
            break;
        case 'e':
            o->exit_eof = 1;
            break;
        case 'c':
            if (evk_cli_number(optarg, 1, LLONG_MAX, &o->count))
                return evk_cli_usage_error(PROG, usage,
                                           "-c: expected a positive count, got \"%s\"", optarg);
            break;
        case 'p':
            if (evk_cli_number(optarg, 0, INT32_MAX, &partition))
                return evk_cli_usage_error(
                    PROG, usage, "-p: expected a partition number, got \"%s\"", optarg);
            o->partition = (int32_t)partition;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 'r':
            o->raw = 1;
            break;
        default:
            usage(stderr, PROG);
            return EVK_EXIT_USAGE;
        }
    }
    if (optind == argc)
        return evk_cli_usage_error(PROG, usage, "%s", "at least one TOPIC is required");
    o->topics = argv + optind;
    o->ntopics = argc - optind;
    o->start = RD_KAFKA_OFFSET_BEGINNING;
    if (o->offset && parse_offset(o))
        return evk_cli_usage_error(PROG, usage,
                                   o->group
                                       ? "-o with -G: expected beginning or end, got \"%s\""
                                       : "-o: expected beginning, end, an offset or s@<ms>, "
                                         "got \"%s\"",
                                   o->offset);
    if (o->group && o->partition >= 0)
        return evk_cli_usage_error(PROG, usage, "%s",
                                   "-p: not with -G (the group assigns the partitions)");
    if (o->raw && o->type)
        return evk_cli_usage_error(PROG, usage, "%s",
                                   "-t: not with --raw (the type is known by decoding)");
    return EVK_EXIT_OK;
}

/* ---- configuration ---- */

/* evk-tail's defaults yield to the user's config; -o and -G do not. */
static evk_err_t set_default(evk_config_t *cfg, const char *name, const char *value,
                             char *errstr, size_t errstr_size) {
    if (evk_config_kafka_get(cfg, name)) return EVK_OK;
    return evk_config_set_kafka(cfg, name, value, errstr, errstr_size);
}

static evk_err_t consumer_settings(const options_t *o, evk_config_t *cfg, char *errstr,
                                   size_t errstr_size) {
    evk_err_t err = set_default(cfg, "isolation.level", "read_committed", errstr, errstr_size);
    if (!err && o->exit_eof)
        err = evk_config_set_kafka(cfg, "enable.partition.eof", "true", errstr, errstr_size);
    if (!err && o->group)
        err = evk_config_set_kafka(cfg, "group.id", o->group, errstr, errstr_size);
    /* librdkafka wants a group.id even for assign(); nothing is committed. */
    if (!err && !o->group) err = set_default(cfg, "group.id", PROG, errstr, errstr_size);
    if (!err && !o->group)
        err = evk_config_set_kafka(cfg, "enable.auto.commit", "false", errstr, errstr_size);
    if (!err && o->group) {
        const char *reset = o->start == RD_KAFKA_OFFSET_END ? "latest" : "earliest";
        err = o->offset
                  ? evk_config_set_kafka(cfg, "auto.offset.reset", reset, errstr, errstr_size)
                  : set_default(cfg, "auto.offset.reset", reset, errstr, errstr_size);
    }
    return err;
}

/* ---- JSON output ---- */

static void put(line_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap && !b->oom) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (grown)
            b->p = grown, b->cap = cap;
        else
            b->oom = 1;
    }
    if (b->oom) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_str(line_t *b, const char *s) {
    put(b, s, strlen(s));
}

static void put_i64(line_t *b, int64_t v) {
    char digits[24], *d = digits + sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--d = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--d = '-';
    put(b, d, (size_t)(digits + sizeof(digits) - d));
}

/* Length of the valid UTF-8 sequence at s, or 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}

static void put_escape(line_t *b, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        put_str(b, "\\\"");
        break;
    case '\\':
        put_str(b, "\\\\");
        break;
    case '\n':
        put_str(b, "\\n");
        break;
    case '\r':
        put_str(b, "\\r");
        break;
    case '\t':
        put_str(b, "\\t");
        break;
    default:
        if (c < 0x20) {
            char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, u, sizeof(u));
        } else {
            /* Bytes that are not UTF-8 cannot be carried by JSON text. */
            put_str(b, "\\ufffd");
        }
    }
}

/* Keys and headers are arbitrary bytes; the output must stay valid JSON. */
static void put_string(line_t *b, const void *data, size_t n) {
    const unsigned char *p = data, *end = p + n, *run = p;
    put(b, "\"", 1);
    while (p < end) {
        size_t len = *p >= 0x20 && *p != '"' && *p != '\\' ? utf8_len(p, (size_t)(end - p)) : 0;
        if (len) {
            p += len;
            continue;
        }
        put(b, run, (size_t)(p - run));
        put_escape(b, *p);
        run = ++p;
    }
    put(b, run, (size_t)(p - run));
    put(b, "\"", 1);
}

static void put_cstring(line_t *b, const char *s) {
    put_string(b, s, strlen(s));
}

static void put_headers(line_t *b, const rd_kafka_message_t *m) {
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *value;
    size_t size;
    put_str(b, ",\"headers\":{");
    if (!rd_kafka_message_headers(m, &hdrs)) {
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &size); i++) {
            if (i) put(b, ",", 1);
            put_cstring(b, name);
            put(b, ":", 1);
            if (value)
                put_string(b, value, size);
            else
                put_str(b, "null");
        }
    }
    put(b, "}", 1);
}

static void put_envelope(line_t *b, const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    put_str(b, "{\"topic\":");
    put_cstring(b, rd_kafka_topic_name(m->rkt));
    put_str(b, ",\"partition\":");
    put_i64(b, m->partition);
    put_str(b, ",\"offset\":");
    put_i64(b, m->offset);
    put_str(b, ",\"ts\":");
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        put_str(b, "null");
    else
        put_i64(b, ts);
    put_str(b, ",\"key\":");
    if (m->key)
        put_string(b, m->key, m->key_len);
    else
        put_str(b, "null");
    put_headers(b, m);
}

static void put_base64(line_t *b, const unsigned char *p, size_t n) {
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char quad[4] = {digits[v >> 18], digits[v >> 12 & 63],
                        i + 1 < n ? digits[v >> 6 & 63] : '=',
                        i + 2 < n ? digits[v & 63] : '='};
        put(b, quad, sizeof quad);
    }
    put(b, "\"", 1);
}

/* The value part of the line, from @p ev (the decoded value), or the
 * decoder's @p err and @p why. A tombstone (which deletes a key and has no
 * value to decode) prints null, --raw the bytes. Returns -1 when the
 * message could not be decoded, which is printed with the reason. */
static int put_value(line_t *b, const tail_t *t, const rd_kafka_message_t *m,
                     const evk_event_t *ev, evk_err_t err, const char *why) {
    if (!m->payload) {
        put_str(b, ",\"value\":null");
        return 0;
    }
    if (t->raw) {
        put_str(b, ",\"value_base64\":");
        put_base64(b, m->payload, m->len);
        return 0;
    }
    char json_why[512];
    char *json = NULL;
    size_t len = 0;
    if (!err && (err = evk_event_to_json(ev, &json, &len))) {
        snprintf(json_why, sizeof(json_why), "%s: cannot write JSON: %s", evk_event_type(ev),
                 evk_err2str(err));
        why = json_why;
    }
    if (err) {
        put_str(b, ",\"error\":");
        put_cstring(b, why);
    } else {
        put_str(b, ",\"type\":");
        put_cstring(b, evk_event_type(ev));
        put_str(b, ",\"schema_id\":");
        put_i64(b, evk_schema_id(evk_event_schema(ev)));
        put_str(b, ",\"value\":");
        put(b, json, len);
    }
    free(json);
    return err ? -1 : 0;
}

static int key_matches(const char *key, const rd_kafka_message_t *m) {
    return m->key && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len);
}

/* The filters come first, so that a message left out costs no line. A
 * message that cannot be decoded is printed with the reason whatever -t
 * says: it may be of that type. */
static void print_message(tail_t *t, const rd_kafka_message_t *m) {
    if (t->key && !key_matches(t->key, m)) return;
    evk_event_t *ev = NULL;
    char why[512] = "";
    evk_err_t err = m->payload && !t->raw
                        ? evk_event_from_message(t->cat, m, &ev, why, sizeof(why))
                        : EVK_OK;
    if (!err && ev && t->type && strcmp(evk_event_type(ev), evk_schema_type(t->type))) {
        evk_event_destroy(ev);
        return;
    }
    t->line.len = 0;
    put_envelope(&t->line, m);
    t->undecodable += put_value(&t->line, t, m, ev, err, why) ? 1 : 0;
    evk_event_destroy(ev);
    put(&t->line, "}\n", 2);
    if (t->line.oom) {
        fprintf(stderr,
                PROG ": out of memory printing %s [%" PRId32 "] at offset %" PRId64 "\n",
                rd_kafka_topic_name(m->rkt), m->partition, m->offset);
        t->failed = 1;
        return;
    }
    fwrite(t->line.p, 1, t->line.len, stdout);
    t->printed++;
}

/* ---- partitions and end-of-partition tracking ---- */

static void parts_clear(tail_t *t) {
    for (int i = 0; i < t->nparts; i++)
        free(t->parts[i].topic);
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
}

static part_t *parts_find(part_t *parts, int n, const char *topic, int32_t partition) {
    for (int i = 0; i < n; i++)
        if (parts[i].partition == partition && !strcmp(parts[i].topic, topic)) return &parts[i];
    return NULL;
}

/* Track @p list as the assignment, keeping what is known of partitions that
 * stay assigned (a cooperative rebalance keeps most of them). */
static int parts_set(tail_t *t, const rd_kafka_topic_partition_list_t *list) {
    part_t *parts = calloc((size_t)list->cnt + 1, sizeof(*parts));
    if (!parts) return -1;
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        part_t *old = parts_find(t->parts, t->nparts, tp->topic, tp->partition);
        parts[i] = (part_t){strdup(tp->topic), tp->partition, old && old->eof};
        if (!parts[i].topic) {
            while (i--)
                free(parts[i].topic);
            free(parts);
            return -1;
        }
    }
    parts_clear(t);
    t->parts = parts;
    t->nparts = list->cnt;
    return 0;
}

static int all_at_eof(const tail_t *t) {
    for (int i = 0; i < t->nparts; i++)
        if (!t->parts[i].eof) return 0;
    return t->nparts > 0;
}

static void track_assignment(tail_t *t) {
    rd_kafka_topic_partition_list_t *list = NULL;
    if (!rd_kafka_assignment(t->rk, &list) && parts_set(t, list))
        fprintf(stderr, PROG ": out of memory tracking the assignment\n");
    if (list) rd_kafka_topic_partition_list_destroy(list);
}

static int rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, char *reason, size_t size) {
    int assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE")) {
        rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, assign ? parts : NULL);
        snprintf(reason, size, "%s", rd_kafka_err2str(aerr));
        return aerr ? -1 : 0;
    }
    rd_kafka_error_t *error = assign ? rd_kafka_incremental_assign(rk, parts)
                                     : rd_kafka_incremental_unassign(rk, parts);
    if (!error) return 0;
    snprintf(reason, size, "%s", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return -1;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    char reason[512];
    if (rebalance(rk, err, parts, reason, sizeof(reason)))
        fprintf(stderr, PROG ": rebalance: %s\n", reason);
    track_assignment(opaque);
}

/* Without a group: every partition of the topic (or -p's), from -o. */
static int assign_topic(tail_t *t, const options_t *o, const char *topic,
                        rd_kafka_topic_partition_list_t *list) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rkt ? rd_kafka_metadata(t->rk, 0, rkt, &md, METADATA_TIMEOUT_MS)
                                  : rd_kafka_last_error();
    if (!err && md->topic_cnt == 1) err = md->topics[0].err;
    int n = err ? 0 : md->topics[0].partition_cnt, added = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        if (o->partition >= 0 && id != o->partition) continue;
        /* offsets_for_times() takes the timestamp in the offset field. */
        rd_kafka_topic_partition_list_add(list, topic, id)->offset =
            o->start_ms >= 0 ? o->start_ms : o->start;
        added++;
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    if (err) {
        fprintf(stderr, PROG ": topic \"%s\": %s\n", topic, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? EVK_EXIT_NOT_FOUND
                                                              : EVK_EXIT_DELIVERY;
    }
    if (added) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": topic \"%s\" has no partition %" PRId32 " (it has %d)\n", topic,
            o->partition, n);
    return EVK_EXIT_NOT_FOUND;
}

/* -o s@<ms>: each partition's first offset at or after that time (its end
 * when there is none). */
static rd_kafka_resp_err_t offsets_for_time(tail_t *t, rd_kafka_topic_partition_list_t *list) {
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(t->rk, list, METADATA_TIMEOUT_MS);
    for (int i = 0; !err && i < list->cnt; i++) {
        if (list->elems[i].err) err = list->elems[i].err;
        if (list->elems[i].offset < 0) list->elems[i].offset = RD_KAFKA_OFFSET_END;
    }
    return err;
}

static int assign_all(tail_t *t, const options_t *o) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    int rc = EVK_EXIT_OK;
    for (int i = 0; i < o->ntopics && !rc; i++)
        rc = assign_topic(t, o, o->topics[i], list);
    rd_kafka_resp_err_t err;
    if (!rc && o->start_ms >= 0 && (err = offsets_for_time(t, list))) {
        fprintf(stderr, PROG ": -o %s: %s\n", o->offset, rd_kafka_err2str(err));
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc && (err = rd_kafka_assign(t->rk, list))) {
        fprintf(stderr, PROG ": assign: %s\n", rd_kafka_err2str(err));
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc && parts_set(t, list)) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = EVK_EXIT_DELIVERY;
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

static int subscribe(tail_t *t, const options_t *o) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(o->ntopics);
    for (int i = 0; i < o->ntopics; i++)
        rd_kafka_topic_partition_list_add(list, o->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(t->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (!err) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": subscribe: %s\n", rd_kafka_err2str(err));
    return EVK_EXIT_DELIVERY;
}

/* ---- the consume loop ---- */

static void handle_error(tail_t *t, const rd_kafka_message_t *m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        part_t *p = parts_find(t->parts, t->nparts, rd_kafka_topic_name(m->rkt), m->partition);
        if (p) p->eof = 1;
        return;
    }
    if (m->rkt)
        fprintf(stderr, PROG ": %s [%" PRId32 "]: %s\n", rd_kafka_topic_name(m->rkt),
                m->partition, rd_kafka_message_errstr(m));
    else
        fprintf(stderr, PROG ": %s\n", rd_kafka_message_errstr(m));
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) t->failed = 1;
}

static int done(const tail_t *t, const options_t *o) {
    return stop_requested || t->failed || (o->count && t->printed >= o->count) ||
           (o->exit_eof && all_at_eof(t));
}

/* Output is block-buffered for throughput and flushed whenever the
 * consumer runs dry, so that a live tail still shows events at once. */
static rd_kafka_message_t *next_message(tail_t *t) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(t->rk, 0);
    if (m) return m;
    fflush(stdout);
    return rd_kafka_consumer_poll(t->rk, 200);
}

static void consume(tail_t *t, const options_t *o) {
    while (!done(t, o)) {
        rd_kafka_message_t *m = next_message(t);
        if (!m) continue;
        if (m->err) {
            handle_error(t, m);
        } else {
            print_message(t, m);
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
}

/* ---- setup ---- */

static rd_kafka_t *consumer_new(const options_t *o, const evk_config_t *cfg, tail_t *t) {
    char errstr[512];
    rd_kafka_conf_t *conf = evk_config_kafka_conf(cfg, errstr, sizeof(errstr));
    rd_kafka_t *rk = NULL;
    if (conf) {
        if (o->group) rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, t);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!rk) rd_kafka_conf_destroy(conf);
    }
    if (!rk)
        fprintf(stderr, PROG ": %s\n", errstr);
    else
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int tail(const options_t *o, const evk_config_t *cfg, const evk_catalog_t *cat) {
    tail_t t = {.cat = cat, .key = o->key, .raw = o->raw};
    if (o->type && !(t.type = evk_catalog_find(cat, o->type))) {
        fprintf(stderr, PROG ": -t: unknown event type \"%s\"\n", o->type);
        return EVK_EXIT_USAGE;
    }
    t.rk = consumer_new(o, cfg, &t);
    if (!t.rk) return EVK_EXIT_CONFIG;
    char errstr[512];
    int rc = EVK_EXIT_OK;
    if (evk_cli_connect(t.rk, EVK_CLI_CONNECT_TIMEOUT_MS, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_DELIVERY;
    }
    if (!rc) rc = o->group ? subscribe(&t, o) : assign_all(&t, o);
    if (!rc) consume(&t, o);
    rd_kafka_consumer_close(t.rk);
    rd_kafka_destroy(t.rk);
    parts_clear(&t);
    free(t.line.p);
    if (rc) return rc;
    if (t.failed) return EVK_EXIT_DELIVERY;
    if (t.undecodable)
        fprintf(stderr, PROG ": %lld message(s) could not be decoded\n", t.undecodable);
    return t.undecodable ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

static void install_signals(void) {
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv) {
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    options_t o = {0};
    if (evk_cli_opts_init(&o.cli, argc)) return EVK_EXIT_CONFIG;
    int rc = parse_options(argc, argv, &o);
    evk_config_t *cfg = NULL;
    evk_catalog_t *cat = NULL;
    char errstr[1024];
    if (!rc && (evk_cli_opts_config(&o.cli, &cfg, errstr, sizeof(errstr)) ||
                consumer_settings(&o, cfg, errstr, sizeof(errstr)) ||
                evk_cli_catalog(cfg, &cat, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_CONFIG;
    }
    if (!rc) {
        install_signals();
        rc = tail(&o, cfg, cat);
    }
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
    evk_cli_opts_clear(&o.cli);
    return rc;
}
