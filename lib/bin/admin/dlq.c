/* evk-admin dlq replay: dead letters back to the topic they came from.
 * A service's dead letter keeps the input's key, value and headers and adds
 * evk_dlq_* headers (service.h); the replay sends key, value and the
 * original headers, ce_id included, to evk_dlq_topic, so a service that
 * recognises the ids it applied passes over one it had applied after all. Nothing records what
 * was replayed: a second replay of the same letters sends them again, hence the filters and
 * --dry-run. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define DLQ_HEADER_PREFIX "evk_dlq_"

typedef struct {
    const char *topic;
    const char *error;  /* --error: evk_dlq_error equals it */
    const char *reason; /* --reason: evk_dlq_reason contains it */
    const char *type;   /* --type, as the catalog's full name */
    int64_t from, to;   /* --offsets, inclusive; to -1: no end */
    int dry_run;
} replay_opts_t;

typedef struct {
    const replay_opts_t *o;
    rd_kafka_t *consumer, *producer;
    long long sent, matched, filtered, unusable, failed;
} replay_t;

/* Header @p name of @p h as a string in @p buf, or NULL. */
static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t size) {
    const void *v;
    size_t n;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || !v) return NULL;
    snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

static int matches(const replay_opts_t *o, const rd_kafka_message_t *m, rd_kafka_headers_t *h) {
    char buf[1024];
    const char *v;
    if (m->offset < o->from || (o->to >= 0 && m->offset > o->to)) return 0;
    if (o->error && (!(v = header(h, "evk_dlq_error", buf, sizeof buf)) || strcmp(v, o->error)))
        return 0;
    if (o->reason &&
        (!(v = header(h, "evk_dlq_reason", buf, sizeof buf)) || !strstr(v, o->reason)))
        return 0;
    if (o->type && (!(v = header(h, "ce_type", buf, sizeof buf)) || strcmp(v, o->type)))
        return 0;
    return 1;
}

/* The original headers: all but evkit's evk_dlq_* ones. */
static rd_kafka_headers_t *original_headers(rd_kafka_headers_t *h) {
    const char *name;
    const void *v;
    size_t n;
    rd_kafka_headers_t *out = rd_kafka_headers_new(8);
    for (size_t i = 0; h && !rd_kafka_header_get_all(h, i, &name, &v, &n); i++)
        if (strncmp(name, DLQ_HEADER_PREFIX, strlen(DLQ_HEADER_PREFIX)))
            rd_kafka_header_add(out, name, -1, v, v ? (ssize_t)n : 0);
    return out;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    replay_t *r = opaque;
    (void)rk;
    if (!m->err) {
        r->sent++;
        return;
    }
    fprintf(stderr, PROG ": not delivered to %s: %s\n", rd_kafka_topic_name(m->rkt),
            rd_kafka_err2str(m->err));
    r->failed++;
}

static void replay_one(replay_t *r, const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL;
    char topic[512], error[128];
    rd_kafka_message_headers(m, &h);
    if (!matches(r->o, m, h)) {
        r->filtered++;
        return;
    }
    const char *dest = header(h, "evk_dlq_topic", topic, sizeof topic);
    const char *err = header(h, "evk_dlq_error", error, sizeof error);
    if (!dest) {
        fprintf(stderr, PROG ": %s [%d] %" PRId64 ": no evk_dlq_topic header, not replayed\n",
                r->o->topic, (int)m->partition, m->offset);
        r->unusable++;
        return;
    }
    printf("%s %s [%d] %" PRId64 " -> %s: key %.*s, %s\n",
           r->o->dry_run ? "would replay" : "replay", r->o->topic, (int)m->partition, m->offset,
           dest, m->key ? (int)m->key_len : 4, m->key ? (const char *)m->key : "null",
           err ? err : "no evk_dlq_error");
    r->matched++;
    if (r->o->dry_run) return;
    rd_kafka_headers_t *orig = original_headers(h);
    rd_kafka_resp_err_t perr;
    while ((perr = rd_kafka_producev(
                r->producer, RD_KAFKA_V_TOPIC(dest), RD_KAFKA_V_KEY(m->key, m->key_len),
                RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(orig), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(r->producer, 100);
    if (perr) {
        rd_kafka_headers_destroy(orig);
        fprintf(stderr, PROG ": not sent to %s: %s\n", dest, rd_kafka_err2str(perr));
        r->failed++;
    }
    rd_kafka_poll(r->producer, 0);
}

/* Every partition of the DLQ from its start, *n of them; exit code. */
static int assign_dlq(admin_t *a, replay_t *r, int *n) {
    const struct rd_kafka_metadata *md = admin_metadata(a);
    if (!md) return EVK_EXIT_DELIVERY;
    const struct rd_kafka_metadata_topic *t = admin_find_topic(md, r->o->topic);
    int rc = EVK_EXIT_OK;
    *n = 0;
    if (!t) {
        fprintf(stderr, PROG ": topic \"%s\" does not exist\n", r->o->topic);
        rc = EVK_EXIT_NOT_FOUND;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; !rc && i < t->partition_cnt; i++, (*n)++)
        rd_kafka_topic_partition_list_add(list, r->o->topic, t->partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err =
        rc ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_assign(r->consumer, list);
    if (err) {
        fprintf(stderr, PROG ": assign %s: %s\n", r->o->topic, rd_kafka_err2str(err));
        rc = EVK_EXIT_DELIVERY;
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Read to the end of every partition; exit code. */
static int read_dlq(replay_t *r, int partitions) {
    int at_end = 0;
    while (at_end < partitions) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, ADMIN_TIMEOUT_MS);
        if (!m) {
            fprintf(stderr, PROG ": %s: no answer for %d s\n", r->o->topic,
                    ADMIN_TIMEOUT_MS / 1000);
            return EVK_EXIT_DELIVERY;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_end++;
        } else if (m->err) {
            fprintf(stderr, PROG ": %s: %s\n", r->o->topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return EVK_EXIT_DELIVERY;
        } else {
            replay_one(r, m);
        }
        rd_kafka_message_destroy(m);
    }
    return EVK_EXIT_OK;
}

static int replay(admin_t *a, const replay_opts_t *o) {
    replay_t r = {.o = o};
    const char *cprops[] = {
        "group.id", PROG "-dlq",       "enable.auto.commit", "false", "enable.partition.eof",
        "true",     "isolation.level", "read_committed",     NULL};
    const char *pprops[] = {"enable.idempotence", "true", "acks", "all", NULL};
    r.consumer = admin_client(a, RD_KAFKA_CONSUMER, cprops, NULL, NULL);
    r.producer =
        o->dry_run ? NULL : admin_client(a, RD_KAFKA_PRODUCER, pprops, on_delivery, &r);
    int partitions;
    int rc = r.consumer && (o->dry_run || r.producer) ? assign_dlq(a, &r, &partitions)
                                                      : EVK_EXIT_CONFIG;
    if (!rc) rc = read_dlq(&r, partitions);
    if (r.producer) rd_kafka_flush(r.producer, -1);
    if (a->cli.verbosity >= 0) { /* -q: the summary left out */
        fprintf(stderr, PROG ": %lld %s, %lld filtered out", o->dry_run ? r.matched : r.sent,
                o->dry_run ? "to replay (--dry-run: nothing sent)" : "replayed", r.filtered);
        if (r.unusable) fprintf(stderr, ", %lld without evk_dlq_topic", r.unusable);
        if (r.failed) fprintf(stderr, ", %lld failed", r.failed);
        fputc('\n', stderr);
    }
    if (r.consumer) {
        rd_kafka_consumer_close(r.consumer);
        rd_kafka_destroy(r.consumer);
    }
    if (r.producer) rd_kafka_destroy(r.producer);
    if (rc) return rc;
    return r.failed ? EVK_EXIT_DELIVERY : r.unusable ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

static int parse_offsets(const char *s, replay_opts_t *o) {
    char *end;
    long long from = strtoll(s, &end, 10), to = from;
    if (end == s || from < 0) return -1;
    if (*end == '-') {
        const char *rest = end + 1;
        to = *rest ? strtoll(rest, &end, 10) : -1;
        if (*rest && (end == rest || to < from)) return -1;
        if (!*rest) end = (char *)rest;
    }
    if (*end) return -1;
    o->from = from;
    o->to = to;
    return 0;
}

static int parse_replay(int argc, char **argv, admin_t *a, replay_opts_t *o) {
    static const struct option longopts[] = {{"error", required_argument, NULL, 'e'},
                                             {"reason", required_argument, NULL, 'r'},
                                             {"type", required_argument, NULL, 't'},
                                             {"offsets", required_argument, NULL, 'o'},
                                             {"dry-run", no_argument, NULL, 'n'},
                                             EVK_CLI_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    int c, shared;
    o->to = -1;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        if (c == 'e')
            o->error = optarg;
        else if (c == 'r')
            o->reason = optarg;
        else if (c == 't')
            o->type = optarg;
        else if (c == 'n')
            o->dry_run = 1;
        else if (c == 'o' && parse_offsets(optarg, o))
            return admin_usage_error("dlq replay: --offsets: expected FROM-TO, FROM- or N, got "
                                     "\"%s\"",
                                     optarg);
        else if (c != 'o' &&
                 (shared = admin_shared_opt(a, c, optarg, "dlq replay")) != EVK_CLI_TAKEN)
            return shared;
    }
    if (argc - optind != 1) return admin_usage_error("dlq replay: expected one TOPIC.dlq");
    o->topic = argv[optind];
    return EVK_EXIT_OK;
}

int admin_cmd_dlq(int argc, char **argv, admin_t *a) {
    replay_opts_t o = {0};
    if (argc < 2 || strcmp(argv[1], "replay")) return admin_usage_error("dlq: expected replay");
    int rc = parse_replay(argc - 1, argv + 1, a, &o);
    if (!rc) rc = admin_open(a, 1);
    if (!rc && o.type) {
        const evk_schema_t *s = evk_catalog_find(a->cat, o.type);
        if (!s)
            return admin_usage_error("dlq replay: --type: unknown event type \"%s\"", o.type);
        o.type = evk_schema_type(s);
    }
    return rc ? rc : replay(a, &o);
}
