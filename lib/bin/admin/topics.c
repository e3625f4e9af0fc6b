/* evk-admin topics: the topics the catalog implies, and the cluster checked
 * against them or given the missing ones. The plan is made without a
 * broker: every catalog topic with the same partition count (a store's
 * changelog is co-partitioned with its service's input, service.h), its
 * changelogs compacted (catalog changelog = true), and a .dlq topic for
 * each, where a service sends what it cannot handle. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define DLQ_SUFFIX ".dlq"

typedef struct {
    char *name;
    int partitions;
    int replication; /* -1: the broker's default.replication.factor */
    int compact;
} planned_t;

typedef struct {
    planned_t *v;
    size_t n;
} plan_t;

typedef struct {
    long long partitions, replication, dlq_partitions;
    int dry_run;
} plan_opts_t;

static void plan_free(plan_t *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].name);
    free(p->v);
}

static planned_t *plan_find(const plan_t *p, const char *name) {
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].name, name)) return &p->v[i];
    return NULL;
}

static planned_t *plan_add(plan_t *p, const char *name, const char *suffix, int partitions,
                           int replication) {
    planned_t *grown = realloc(p->v, (p->n + 1) * sizeof *grown);
    if (!grown) return NULL;
    p->v = grown;
    char *copy = malloc(strlen(name) + strlen(suffix) + 1);
    if (!copy) return NULL;
    strcat(strcpy(copy, name), suffix);
    p->v[p->n] = (planned_t){copy, partitions, replication, 0};
    return &p->v[p->n++];
}

/* Each catalog topic in catalog order, followed by its .dlq; compacted if
 * any type it carries is a changelog. */
static int plan_make(const evk_catalog_t *cat, const plan_opts_t *o, plan_t *p) {
    for (size_t i = 0; i < evk_catalog_count(cat); i++) {
        const evk_schema_t *s = evk_catalog_at(cat, i);
        const char *topic = evk_schema_topic(s);
        planned_t *t = plan_find(p, topic);
        if (!t) {
            size_t at = p->n;
            if (!plan_add(p, topic, "", (int)o->partitions, (int)o->replication) ||
                !plan_add(p, topic, DLQ_SUFFIX, (int)o->dlq_partitions, (int)o->replication)) {
                fprintf(stderr, PROG ": out of memory\n");
                return -1;
            }
            t = &p->v[at]; /* the second add may have moved it */
        }
        if (evk_schema_changelog(s)) t->compact = 1;
    }
    return 0;
}

static void print_planned(const char *what, const planned_t *t) {
    printf("%s%s partitions=%d replication=", what, t->name, t->partitions);
    if (t->replication < 0)
        printf("default");
    else
        printf("%d", t->replication);
    printf("%s\n", t->compact ? " cleanup.policy=compact" : "");
}

/* ---- the cluster against the plan ---- */

static int unsupported(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
           err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION;
}

/* How an existing topic differs from @p t, in @p why; 0 when it does not. */
static int topic_differs(const planned_t *t, const struct rd_kafka_metadata_topic *mt,
                         char *why, size_t size) {
    if (mt->partition_cnt != t->partitions) {
        snprintf(why, size, "%d partitions, planned %d", mt->partition_cnt, t->partitions);
        return 1;
    }
    if (t->replication >= 0 && mt->partition_cnt &&
        mt->partitions[0].replica_cnt != t->replication) {
        snprintf(why, size, "replication %d, planned %d", mt->partitions[0].replica_cnt,
                 t->replication);
        return 1;
    }
    return 0;
}

static const char *config_value(const rd_kafka_ConfigResource_t *res, const char *name) {
    size_t n;
    const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(res, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rd_kafka_ConfigEntry_name(entries[i]), name))
            return rd_kafka_ConfigEntry_value(entries[i]);
    return NULL;
}

/* Admin requests go to the controller. A cluster that names none of its
 * brokers (evk-dev-broker names broker 0 of 1..3) has no Admin API, and
 * librdkafka would wait the whole timeout for the controller. */
static int has_controller(rd_kafka_t *rk, const struct rd_kafka_metadata *md) {
    int32_t id = rd_kafka_controllerid(rk, 1000);
    for (int i = 0; id >= 0 && i < md->broker_cnt; i++)
        if (md->brokers[i].id == id) return 1;
    return 0;
}

/* Run an Admin API request (API @p what) made by @p call on a queue of its
 * own and return its result event; NULL after printing "@p failed: why".
 * @p md: the cluster's metadata, for its brokers. */
static rd_kafka_event_t *
admin_request(rd_kafka_t *rk, const struct rd_kafka_metadata *md, rd_kafka_admin_op_t op,
              const char *what, const char *failed,
              void (*call)(rd_kafka_t *, rd_kafka_AdminOptions_t *, rd_kafka_queue_t *, void *),
              void *arg) {
    char errstr[512];
    if (!has_controller(rk, md)) {
        fprintf(stderr,
                PROG ": %s: the cluster names no controller among its brokers, so it has no "
                     "%s API (evk-dev-broker, librdkafka's mock cluster, has none)\n",
                failed, what);
        return NULL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(opts, ADMIN_TIMEOUT_MS, errstr, sizeof errstr);
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(opts, ADMIN_TIMEOUT_MS, errstr,
                                                    sizeof errstr);
    call(rk, opts, q, arg);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 5000);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_resp_err_t err = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (!err) return ev;
    if (unsupported(err))
        fprintf(stderr, PROG ": %s: the broker has no %s API\n", failed, what);
    else
        fprintf(stderr, PROG ": %s: %s: %s\n", failed, what,
                ev ? rd_kafka_event_error_string(ev) : rd_kafka_err2str(err));
    if (ev) rd_kafka_event_destroy(ev);
    return NULL;
}

typedef struct {
    rd_kafka_ConfigResource_t **res;
    size_t n;
} describe_t;

static void call_describe(rd_kafka_t *rk, rd_kafka_AdminOptions_t *opts, rd_kafka_queue_t *q,
                          void *arg) {
    describe_t *d = arg;
    rd_kafka_DescribeConfigs(rk, d->res, d->n, opts, q);
}

/* cleanup.policy of the compacted topics that exist; -1 when the broker
 * cannot say (which is printed), else the number that differ. */
static int check_compaction(rd_kafka_t *rk, const plan_t *p,
                            const struct rd_kafka_metadata *md) {
    describe_t d = {calloc(p->n ? p->n : 1, sizeof *d.res), 0};
    for (size_t i = 0; d.res && i < p->n; i++)
        if (p->v[i].compact && admin_find_topic(md, p->v[i].name))
            d.res[d.n++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, p->v[i].name);
    int differ = d.res ? 0 : -1;
    rd_kafka_event_t *ev =
        d.n ? admin_request(rk, md, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, "DescribeConfigs",
                            "cleanup.policy not checked", call_describe, &d)
            : NULL;
    if (d.n && !ev) differ = -1;
    size_t n = 0;
    const rd_kafka_ConfigResource_t **res =
        ev ? rd_kafka_DescribeConfigs_result_resources(
                 rd_kafka_event_DescribeConfigs_result(ev), &n)
           : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_ConfigResource_name(res[i]);
        const char *policy = config_value(res[i], "cleanup.policy");
        if (rd_kafka_ConfigResource_error(res[i]) || !policy || !strstr(policy, "compact")) {
            printf("differs %s: cleanup.policy=%s, planned compact\n", name,
                   policy ? policy : "unknown");
            differ++;
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < d.n; i++)
        rd_kafka_ConfigResource_destroy(d.res[i]);
    free(d.res);
    return differ;
}

/* A line per planned topic, "missing" ones with @p missing_as (NULL: not
 * printed) and "ok" ones if @p print_ok; counts the missing and differing. */
static void check_topics(const plan_t *p, const struct rd_kafka_metadata *md,
                         const char *missing_as, int print_ok, size_t *missing,
                         size_t *differ) {
    char why[128];
    for (size_t i = 0; i < p->n; i++) {
        const struct rd_kafka_metadata_topic *mt = admin_find_topic(md, p->v[i].name);
        if (!mt) {
            (*missing)++;
            if (missing_as) print_planned(missing_as, &p->v[i]);
        } else if (topic_differs(&p->v[i], mt, why, sizeof why)) {
            (*differ)++;
            printf("differs %s: %s\n", p->v[i].name, why);
        } else if (print_ok) {
            print_planned("ok      ", &p->v[i]);
        }
    }
}

static int check_exit(size_t missing, size_t differ) {
    return missing ? EVK_EXIT_NOT_FOUND : differ ? EVK_EXIT_INPUT : EVK_EXIT_OK;
}

static int topics_check(admin_t *a, const plan_t *p) {
    const struct rd_kafka_metadata *md = admin_metadata(a);
    if (!md) return EVK_EXIT_DELIVERY;
    size_t missing = 0, differ = 0;
    check_topics(p, md, "missing ", 1, &missing, &differ);
    int compaction = check_compaction(a->rk, p, md);
    rd_kafka_metadata_destroy(md);
    differ += compaction > 0 ? (size_t)compaction : 0;
    return check_exit(missing, differ);
}

typedef struct {
    rd_kafka_NewTopic_t **topics;
    size_t n;
} create_t;

static void call_create(rd_kafka_t *rk, rd_kafka_AdminOptions_t *opts, rd_kafka_queue_t *q,
                        void *arg) {
    create_t *c = arg;
    rd_kafka_CreateTopics(rk, c->topics, c->n, opts, q);
}

/* Create the topics of @p p that @p md lacks; returns how many failed. */
static size_t create_missing(rd_kafka_t *rk, const plan_t *p,
                             const struct rd_kafka_metadata *md) {
    char errstr[512];
    create_t c = {calloc(p->n ? p->n : 1, sizeof *c.topics), 0};
    size_t failed = c.topics ? 0 : 1;
    for (size_t i = 0; c.topics && i < p->n; i++) {
        const planned_t *t = &p->v[i];
        if (admin_find_topic(md, t->name)) continue;
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(t->name, t->partitions, t->replication,
                                                        errstr, sizeof errstr);
        if (nt && t->compact && rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact")) {
            rd_kafka_NewTopic_destroy(nt);
            nt = NULL;
            snprintf(errstr, sizeof errstr, "out of memory");
        }
        if (nt) {
            c.topics[c.n++] = nt;
        } else {
            printf("failed  %s: %s\n", t->name, errstr);
            failed++;
        }
    }
    rd_kafka_event_t *ev =
        c.n ? admin_request(rk, md, RD_KAFKA_ADMIN_OP_CREATETOPICS, "CreateTopics",
                            "topics not created", call_create, &c)
            : NULL;
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        ev ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
           : NULL;
    if (c.n && !ev) failed += c.n;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_topic_result_name(res[i]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
        if (!err || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            print_planned("created ", plan_find(p, name));
        } else {
            printf("failed  %s: %s\n", name, rd_kafka_topic_result_error_string(res[i]));
            failed++;
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < c.n; i++)
        rd_kafka_NewTopic_destroy(c.topics[i]);
    free(c.topics);
    return failed;
}

/* Existing topics are left as they are (only reported if they differ). */
static int topics_create(admin_t *a, const plan_t *p, int dry_run) {
    const struct rd_kafka_metadata *md = admin_metadata(a);
    if (!md) return EVK_EXIT_DELIVERY;
    size_t missing = 0, differ = 0, failed = 0;
    check_topics(p, md, dry_run ? "would create " : NULL, 0, &missing, &differ);
    if (!dry_run && missing) failed = create_missing(a->rk, p, md);
    rd_kafka_metadata_destroy(md);
    if (failed) return EVK_EXIT_DELIVERY;
    return check_exit(0, differ);
}

/* ---- the command ---- */

static int parse_plan_opts(int argc, char **argv, admin_t *a, plan_opts_t *o) {
    static const struct option longopts[] = {{"partitions", required_argument, NULL, 'p'},
                                             {"replication", required_argument, NULL, 'r'},
                                             {"dlq-partitions", required_argument, NULL, 'd'},
                                             {"dry-run", no_argument, NULL, 'n'},
                                             EVK_CLI_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    int c, shared;
    o->dlq_partitions = -1;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING, longopts, NULL)) != -1) {
        long long *target = c == 'p'   ? &o->partitions
                            : c == 'r' ? &o->replication
                            : c == 'd' ? &o->dlq_partitions
                                       : NULL;
        if (c == 'n') {
            o->dry_run = 1;
        } else if (target) {
            if (evk_cli_number(optarg, 1, 100000, target))
                return admin_usage_error("topics: --%s: expected a positive number, got \"%s\"",
                                         c == 'p'   ? "partitions"
                                         : c == 'r' ? "replication"
                                                    : "dlq-partitions",
                                         optarg);
        } else if ((shared = admin_shared_opt(a, c, optarg, "topics")) != EVK_CLI_TAKEN) {
            return shared;
        }
    }
    if (o->dlq_partitions < 0) o->dlq_partitions = o->partitions;
    return EVK_EXIT_OK;
}

int admin_cmd_topics(int argc, char **argv, admin_t *a) {
    plan_opts_t o = {.partitions = 4, .replication = -1};
    const char *what = argc > 1 ? argv[1] : NULL;
    if (!what || (strcmp(what, "plan") && strcmp(what, "check") && strcmp(what, "create")))
        return admin_usage_error("topics: expected plan, check or create");
    int rc = parse_plan_opts(argc - 1, argv + 1, a, &o);
    if (!rc && optind + 1 < argc)
        rc = admin_usage_error("topics %s: unexpected argument \"%s\"", what, argv[optind + 1]);
    if (!rc && o.dry_run && strcmp(what, "create"))
        rc = admin_usage_error("topics %s: --dry-run is for create", what);
    int plan_only = !strcmp(what, "plan");
    if (!rc) rc = admin_open(a, !plan_only);
    plan_t p = {0};
    if (!rc && plan_make(a->cat, &o, &p)) rc = EVK_EXIT_CONFIG;
    if (!rc && plan_only)
        for (size_t i = 0; i < p.n; i++)
            print_planned("", &p.v[i]);
    else if (!rc && !strcmp(what, "check"))
        rc = topics_check(a, &p);
    else if (!rc)
        rc = topics_create(a, &p, o.dry_run);
    plan_free(&p);
    return rc;
}
