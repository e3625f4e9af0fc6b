/* dladdr() (where libevkit itself was loaded from) is a GNU extension. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include <libconfig.h>

#include "evkit/config.h"
#include "internal.h"

#define EVK_REASON_MAX 512
#define EVK_REDACTED "<redacted>"
#define EVK_FILE_SUFFIX ".file"
/* Far above any password or key; a bound against naming the wrong file. */
#define EVK_SECRET_FILE_MAX (64u << 10)

/* What a setting was in its file, for the type checks; values set through
 * the API or the environment are text. */
typedef enum {
    CFG_TEXT,
    CFG_STRING,
    CFG_INT,
    CFG_FLOAT,
    CFG_BOOL,
    CFG_LIST,
    CFG_GROUP
} cfg_kind_t;

/* A configuration holds a few dozen entries and is read at startup only, so
 * insertion-ordered arrays with a linear lookup are plenty. Order matters for
 * the kafka list: librdkafka sees the properties in the order they were set.
 * A list or a group has an entry of its own (no value), before those of its
 * members ("a.b[0]", "a.b.c"), so that checks see it with its line. */
struct evk_kv {
    char *key;
    char *val; /* NULL for a list or a group */
    cfg_kind_t kind;
    char *src; /* "<file>:<line>" of a setting from a file, else NULL */
};

struct evk_kvs {
    struct evk_kv *v;
    size_t n, cap;
};

struct evk_config_s {
    struct evk_kvs kafka;    /* librdkafka property (dotted name) -> value */
    struct evk_kvs settings; /* dotted path of everything outside kafka -> value */
};

/* Everything a file needs while it is loaded; the file's values go to a
 * staging config first so that a failed load leaves the target unchanged. */
struct evk_load {
    const char *path;
    evk_config_t stage;
    char *errstr;
    size_t errstr_size;
};

static struct evk_kv *kvs_find(const struct evk_kvs *kvs, const char *key) {
    for (size_t i = 0; i < kvs->n; i++)
        if (!strcmp(kvs->v[i].key, key)) return &kvs->v[i];
    return NULL;
}

static evk_err_t kv_set(struct evk_kv *kv, const char *val, cfg_kind_t kind, const char *src) {
    char *v = val ? strdup(val) : NULL, *where = src ? strdup(src) : NULL;
    if ((val && !v) || (src && !where)) {
        free(v);
        free(where);
        return EVK_ERR_NOMEM;
    }
    evk__free_secret(kv->val);
    free(kv->src);
    *kv = (struct evk_kv){.key = kv->key, .val = v, .kind = kind, .src = where};
    return EVK_OK;
}

/* A value set by code or the environment: text, from no file. */
static evk_err_t kvs_replace(struct evk_kv *kv, const char *val) {
    return kv_set(kv, val, CFG_TEXT, NULL);
}

static evk_err_t kvs_grow(struct evk_kvs *kvs) {
    size_t cap = kvs->cap ? kvs->cap * 2 : 16;
    struct evk_kv *v = realloc(kvs->v, cap * sizeof(*v));
    if (!v) return EVK_ERR_NOMEM;
    kvs->v = v;
    kvs->cap = cap;
    return EVK_OK;
}

static evk_err_t kvs_put_from(struct evk_kvs *kvs, const char *key, const char *val,
                              cfg_kind_t kind, const char *src) {
    struct evk_kv *kv = kvs_find(kvs, key);
    if (kv) return kv_set(kv, val, kind, src);
    if (kvs->n == kvs->cap && kvs_grow(kvs) != EVK_OK) return EVK_ERR_NOMEM;
    kv = &kvs->v[kvs->n];
    *kv = (struct evk_kv){.key = strdup(key)};
    if (!kv->key || kv_set(kv, val, kind, src)) {
        free(kv->key);
        return EVK_ERR_NOMEM;
    }
    kvs->n++;
    return EVK_OK;
}

static evk_err_t kvs_put(struct evk_kvs *kvs, const char *key, const char *val) {
    return kvs_put_from(kvs, key, val, CFG_TEXT, NULL);
}

static evk_err_t kvs_merge(struct evk_kvs *dst, const struct evk_kvs *src) {
    for (size_t i = 0; i < src->n; i++) {
        const struct evk_kv *kv = &src->v[i];
        if (kvs_put_from(dst, kv->key, kv->val, kv->kind, kv->src)) return EVK_ERR_NOMEM;
    }
    return EVK_OK;
}

static void kvs_clear(struct evk_kvs *kvs) {
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        evk__free_secret(kvs->v[i].val);
        free(kvs->v[i].src);
    }
    free(kvs->v);
    memset(kvs, 0, sizeof(*kvs));
}

/* Value of @p name as it may be shown to a user. */
static const char *shown(const char *name, const char *value) {
    return evk__secret_name(name) ? EVK_REDACTED : value;
}

/* librdkafka quotes some values in its messages ('Invalid value "x" for ...'),
 * so a secret's value is cut out of them wherever it appears. */
static void redact(char *msg, size_t size, const char *value) {
    char out[EVK_REASON_MAX] = "";
    size_t vlen = strlen(value), used = 0;
    const char *p = msg, *hit;
    if (!vlen) return;
    while ((hit = strstr(p, value)) && used < sizeof(out)) {
        used +=
            snprintf(out + used, sizeof(out) - used, "%.*s%s", (int)(hit - p), p, EVK_REDACTED);
        p = hit + vlen;
    }
    if (used < sizeof(out)) snprintf(out + used, sizeof(out) - used, "%s", p);
    snprintf(msg, size, "%s", out);
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static int kafka_value_is(const rd_kafka_conf_t *conf, const char *name, const char *want) {
    char val[64];
    size_t size = sizeof(val);
    return rd_kafka_conf_get(conf, name, val, &size) == RD_KAFKA_CONF_OK && !strcmp(val, want);
}

/* evkit's delivery guarantee rests on the idempotent producer, which needs
 * acks=all; reading the values back from librdkafka catches every spelling
 * ("all", "-1", "t", "1", the request.required.acks alias). */
static evk_err_t kafka_policy(const rd_kafka_conf_t *conf, const char *name, char *reason,
                              size_t size) {
    if ((!strcmp(name, "acks") || !strcmp(name, "request.required.acks")) &&
        !kafka_value_is(conf, "acks", "-1"))
        return evk__fail(EVK_ERR_CONFIG, reason, size,
                         "kafka.%s: evkit requires acks=all (idempotent producer)", name);
    if (!strcmp(name, "enable.idempotence") && !kafka_value_is(conf, name, "true"))
        return evk__fail(
            EVK_ERR_CONFIG, reason, size,
            "kafka.%s: evkit requires enable.idempotence=true (idempotent producer)", name);
    return EVK_OK;
}

/* rd_kafka_conf_set() with its message turned into "kafka.<name>: ...". */
static evk_err_t kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                           char *reason, size_t size) {
    char msg[EVK_REASON_MAX];
    if (rd_kafka_conf_set(conf, name, value, msg, sizeof(msg)) == RD_KAFKA_CONF_OK)
        return EVK_OK;
    chomp(msg);
    if (evk__secret_name(name)) redact(msg, sizeof(msg), value);
    return evk__fail(EVK_ERR_CONFIG, reason, size, "kafka.%s: %s", name, msg);
}

/* Each property is tried on a scratch conf of its own, so that a typo or a
 * bad value fails where it is written rather than at rd_kafka_new(). */
static evk_err_t kafka_check(const char *name, const char *value, char *reason, size_t size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    evk_err_t err = kafka_set(conf, name, value, reason, size);
    if (!err) err = kafka_policy(conf, name, reason, size);
    rd_kafka_conf_destroy(conf);
    return err;
}

evk_config_t *evk_config_new(void) {
    evk_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return NULL;
    /* murmur2 is Java's partitioner: a key lands in the same partition
     * whichever client wrote it, which co-partitioned topics rely on. */
    if (kvs_put(&cfg->kafka, "enable.idempotence", "true") != EVK_OK ||
        kvs_put(&cfg->kafka, "acks", "all") != EVK_OK ||
        kvs_put(&cfg->kafka, "partitioner", "murmur2_random") != EVK_OK) {
        evk_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

void evk_config_destroy(evk_config_t *cfg) {
    if (!cfg) return;
    kvs_clear(&cfg->kafka);
    kvs_clear(&cfg->settings);
    free(cfg);
}

/* Whether librdkafka has a property called @p name. */
static int kafka_knows(const char *name) {
    char val[8];
    size_t size = sizeof(val);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int known = rd_kafka_conf_get(conf, name, val, &size) != RD_KAFKA_CONF_UNKNOWN;
    rd_kafka_conf_destroy(conf);
    return known;
}

/* "<property>.file", a name librdkafka does not have, names a file holding
 * the value of <property>: a secret then stays out of the config file, the
 * environment and the command line (ps). */
static int names_a_file(const char *name) {
    return evk__ends_with(name, EVK_FILE_SUFFIX) && !kafka_knows(name);
}

static evk_err_t kafka_put_checked(struct evk_kvs *kvs, const char *name, const char *value,
                                   char *reason, size_t size) {
    evk_err_t err = kafka_check(name, value, reason, size);
    if (!err && kvs_put(kvs, name, value) != EVK_OK)
        err = evk__fail(EVK_ERR_NOMEM, reason, size, "out of memory");
    return err;
}

/* Check and store librdkafka property @p name, reading its value from the
 * file @p value names for "<property>.file". */
static evk_err_t kafka_put(struct evk_kvs *kvs, const char *name, const char *value,
                           char *reason, size_t size) {
    if (!names_a_file(name)) return kafka_put_checked(kvs, name, value, reason, size);
    char why[EVK_REASON_MAX], *secret = NULL;
    char *property = strndup(name, strlen(name) - strlen(EVK_FILE_SUFFIX));
    evk_err_t err = property ? evk__secret_file_read(value, &secret, why, sizeof(why))
                             : evk__fail(EVK_ERR_NOMEM, why, sizeof(why), "out of memory");
    if (err)
        evk__fail(err, reason, size, "kafka.%s: %s", name, why);
    else
        err = kafka_put_checked(kvs, property, secret, reason, size);
    free(property);
    evk__free_secret(secret);
    return err;
}

evk_err_t evk_config_set_kafka(evk_config_t *cfg, const char *name, const char *value,
                               char *errstr, size_t errstr_size) {
    if (!cfg || !name || !value)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    return kafka_put(&cfg->kafka, name, value, errstr, errstr_size);
}

evk_err_t evk_config_set_kafka_kv(evk_config_t *cfg, const char *kv, char *errstr,
                                  size_t errstr_size) {
    if (!cfg || !kv)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    const char *eq = strchr(kv, '=');
    /* Without '=' the argument may be a value given alone (-X hunter2). */
    if (!eq && kafka_knows(kv))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "%s: expected name=value", kv);
    if (!eq)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "expected name=value, got an argument without '=' (not shown: it "
                         "may be a secret)");
    char *name = strndup(kv, (size_t)(eq - kv));
    if (!name) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    evk_err_t err = evk_config_set_kafka(cfg, name, eq + 1, errstr, errstr_size);
    free(name);
    return err;
}

const char *evk_config_kafka_get(const evk_config_t *cfg, const char *name) {
    const struct evk_kv *kv = cfg && name ? kvs_find(&cfg->kafka, name) : NULL;
    return kv ? kv->val : NULL;
}

rd_kafka_conf_t *evk_config_kafka_conf(const evk_config_t *cfg, char *errstr,
                                       size_t errstr_size) {
    if (!cfg) {
        evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, evk__rdkafka_log);
    /* librdkafka doubles the wait between connection attempts up to 10 s:
     * a broker back after a 3 s outage was then reached 9-10 s later, with
     * a transaction's commit waiting on it. Java clients stop at 1 s. The
     * default is left alone when the initial backoff is set (it must not
     * exceed the maximum). */
    char unused[64];
    if (!kvs_find(&cfg->kafka, "reconnect.backoff.ms"))
        rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "1000", unused, sizeof(unused));
    for (size_t i = 0; i < cfg->kafka.n; i++) {
        const struct evk_kv *kv = &cfg->kafka.v[i];
        if (kafka_set(conf, kv->key, kv->val, errstr, errstr_size)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

/* Settings under "kafka." are librdkafka properties: they must go through
 * evk_config_set_kafka() to be checked, never be stored unchecked here. */
evk_err_t evk_config_set(evk_config_t *cfg, const char *path, const char *value) {
    if (!cfg || !path || !*path || !value || !strncmp(path, "kafka.", 6))
        return EVK_ERR_INVALID_ARG;
    return kvs_put(&cfg->settings, path, value);
}

const char *evk_config_get_string(const evk_config_t *cfg, const char *path, const char *def) {
    const struct evk_kv *kv = cfg && path ? kvs_find(&cfg->settings, path) : NULL;
    return kv && kv->val ? kv->val : def;
}

const char *evk__config_source(const evk_config_t *cfg, const char *path) {
    const struct evk_kv *kv = cfg && path ? kvs_find(&cfg->settings, path) : NULL;
    return kv ? kv->src : NULL;
}

static int parse_int(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            return 0;
        }
    }
    return -1;
}

/* ---- types ---- */

static int is_text(const struct evk_kv *kv) {
    return kv->kind == CFG_TEXT || kv->kind == CFG_STRING;
}

/* "[<file>:<line>: ]<key>: expected <what>, got <the value>". */
static evk_err_t type_fail(const struct evk_kv *kv, const char *what, char *errstr,
                           size_t size) {
    const char *got = kv->kind == CFG_LIST    ? "a list"
                      : kv->kind == CFG_GROUP ? "a group"
                                              : NULL;
    const char *quote = is_text(kv) ? "\"" : "";
    return evk__fail(EVK_ERR_CONFIG, errstr, size, "%s%s%s: expected %s, got %s%s%s",
                     kv->src ? kv->src : "", kv->src ? ": " : "", kv->key, what, quote,
                     got ? got : shown(kv->key, kv->val), quote);
}

/* Numbers and booleans are read from text too: env and -X give nothing
 * else, and a file may quote them. */
static evk_err_t read_int(const struct evk_kv *kv, int64_t *out, char *errstr, size_t size) {
    int64_t v;
    if ((kv->kind == CFG_INT || is_text(kv)) && !parse_int(kv->val, &v)) {
        *out = v;
        return EVK_OK;
    }
    return type_fail(kv, "integer", errstr, size);
}

static evk_err_t read_bool(const struct evk_kv *kv, int *out, char *errstr, size_t size) {
    int v;
    if ((kv->kind == CFG_BOOL || is_text(kv)) && !parse_bool(kv->val, &v)) {
        *out = v;
        return EVK_OK;
    }
    return type_fail(kv, "boolean", errstr, size);
}

/* The strings "<path>[0]", "<path>[1]", ... into a new NULL-terminated
 * array (*out, malloc()ed); each must be a string. */
static evk_err_t read_list(const struct evk_kvs *kvs, const char *path, const char ***out,
                           size_t *n, char *errstr, size_t size) {
    size_t count = 0, key_size = strlen(path) + 24;
    char *key = malloc(key_size);
    for (; key; count++) {
        snprintf(key, key_size, "%s[%zu]", path, count);
        if (!kvs_find(kvs, key)) break;
    }
    const char **list = key ? calloc(count + 1, sizeof(*list)) : NULL;
    evk_err_t err = list ? EVK_OK : evk__fail(EVK_ERR_NOMEM, errstr, size, "out of memory");
    for (size_t i = 0; i < count && !err; i++) {
        snprintf(key, key_size, "%s[%zu]", path, i);
        const struct evk_kv *item = kvs_find(kvs, key);
        if (!is_text(item)) err = type_fail(item, "string", errstr, size);
        list[i] = item->val;
    }
    free(key);
    if (err) {
        free(list);
        return err;
    }
    *out = list;
    if (n) *n = count;
    return EVK_OK;
}

static evk_err_t check_type(const struct evk_kvs *kvs, const struct evk_kv *kv,
                            evk_setting_type_t type, char *errstr, size_t size) {
    int64_t n;
    int b;
    const char **list;
    evk_err_t err = EVK_OK;
    switch (type) {
    case EVK_SETTING_STRING:
        return is_text(kv) ? EVK_OK : type_fail(kv, "string", errstr, size);
    case EVK_SETTING_INT:
        return read_int(kv, &n, errstr, size);
    case EVK_SETTING_BOOL:
        return read_bool(kv, &b, errstr, size);
    case EVK_SETTING_LIST:
        if (kv->kind != CFG_LIST) return type_fail(kv, "list of strings", errstr, size);
        if (!(err = read_list(kvs, kv->key, &list, NULL, errstr, size))) free(list);
        return err;
    }
    return evk__fail(EVK_ERR_INVALID_ARG, errstr, size, "%s: unknown setting type %d", kv->key,
                     (int)type);
}

evk_err_t evk_config_get_int(const evk_config_t *cfg, const char *path, int64_t def,
                             int64_t *out, char *errstr, size_t errstr_size) {
    if (!out) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    const struct evk_kv *kv = cfg && path ? kvs_find(&cfg->settings, path) : NULL;
    *out = def;
    return kv ? read_int(kv, out, errstr, errstr_size) : EVK_OK;
}

evk_err_t evk_config_get_bool(const evk_config_t *cfg, const char *path, int def, int *out,
                              char *errstr, size_t errstr_size) {
    if (!out) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    const struct evk_kv *kv = cfg && path ? kvs_find(&cfg->settings, path) : NULL;
    *out = def;
    return kv ? read_bool(kv, out, errstr, errstr_size) : EVK_OK;
}

/* A list set through the API has only its items ("a.b[0]"), no entry of
 * its own. */
evk_err_t evk_config_get_list(const evk_config_t *cfg, const char *path, const char ***out,
                              size_t *n, char *errstr, size_t errstr_size) {
    if (!cfg || !path || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    const struct evk_kv *kv = kvs_find(&cfg->settings, path);
    *out = NULL;
    if (kv && kv->kind != CFG_LIST)
        return type_fail(kv, "list of strings", errstr, errstr_size);
    return read_list(&cfg->settings, path, out, n, errstr, errstr_size);
}

/* ---- known keys ---- */

/* Whether @p a is one typo away from @p b: a letter changed, added or
 * dropped, or two neighbours swapped. */
static int one_typo(const char *a, const char *b) {
    size_t i = 0, la = strlen(a), lb = strlen(b);
    while (a[i] && a[i] == b[i])
        i++;
    if (la == lb + 1) return !strcmp(a + i + 1, b + i);
    if (lb == la + 1) return !strcmp(a + i, b + i + 1);
    if (la != lb || !a[i]) return 0;
    return !strcmp(a + i + 1, b + i + 1) ||
           (a[i + 1] == b[i] && a[i] == b[i + 1] && !strcmp(a + i + 2, b + i + 2));
}

static const evk_setting_t *setting_find(const evk_setting_t *const *tables, size_t ntables,
                                         const char *name, int typo) {
    for (size_t t = 0; t < ntables; t++)
        for (const evk_setting_t *s = tables[t]; s && s->name; s++)
            if (typo ? one_typo(name, s->name) : !strcmp(name, s->name)) return s;
    return NULL;
}

/* The known name @p name is probably a typo of, or NULL. */
static const char *guess(const evk_setting_t *const *tables, size_t ntables, const char *name) {
    const evk_setting_t *s = setting_find(tables, ntables, name, 1);
    return s ? s->name : NULL;
}

/* "<file>:<line>: <key>: unknown <what>[; did you mean "<guess>"?]". */
static evk_err_t unknown_fail(const struct evk_kv *kv, const char *what, const char *guess,
                              char *errstr, size_t size) {
    return evk__fail(EVK_ERR_CONFIG, errstr, size, "%s: %s: unknown %s%s%s%s", kv->src, kv->key,
                     what, guess ? "; did you mean \"" : "", guess ? guess : "",
                     guess ? "\"?" : "");
}

evk_err_t evk__config_check_group(const evk_config_t *cfg, const char *group,
                                  const evk_setting_t *const *tables, size_t ntables,
                                  int strict, char *errstr, size_t errstr_size) {
    if (!cfg || !group)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    size_t len = strlen(group);
    for (size_t i = 0; i < cfg->settings.n; i++) {
        const struct evk_kv *kv = &cfg->settings.v[i];
        if (strncmp(kv->key, group, len) || kv->key[len] != '.') continue;
        /* The group's own members only: a list's items and the members of
         * a group within are checked with it. */
        const char *name = kv->key + len + 1;
        if (name[strcspn(name, ".[")]) continue;
        const evk_setting_t *s = setting_find(tables, ntables, name, 0);
        evk_err_t err = EVK_OK;
        if (s)
            err = check_type(&cfg->settings, kv, s->type, errstr, errstr_size);
        else if (strict && kv->src)
            err =
                unknown_fail(kv, "setting", guess(tables, ntables, name), errstr, errstr_size);
        if (err) return err;
    }
    return EVK_OK;
}

/* ---- where the schemas are when nobody said ---- */

static char found_schemas[4096];
static pthread_once_t found_once = PTHREAD_ONCE_INIT;

static int has_catalog(const char *dir) {
    char path[4300];
    int n = snprintf(path, sizeof path, "%s/catalog.cfg", dir);
    return n > 0 && (size_t)n < sizeof path && access(path, R_OK) == 0;
}

static int found(const char *dir) {
    if (!has_catalog(dir)) return 0;
    snprintf(found_schemas, sizeof found_schemas, "%s", dir);
    return 1;
}

/* Take @p rel relative to the directory of @p file when it holds a catalog. */
static int found_beside(const char *file, const char *rel) {
    char cand[4300];
    const char *slash = strrchr(file, '/');
    if (!slash) return 0;
    snprintf(cand, sizeof cand, "%.*s/%s", (int)(slash - file), file, rel);
    return has_catalog(cand) && realpath(cand, found_schemas);
}

/* A program in evkit's build tree takes the source tree's schemas. Any
 * other takes those of its own prefix (bin/../share/evkit/schemas), then
 * those of the prefix libevkit was loaded from (a program of the user's
 * own against an evkit installed under any prefix, moved or not), then
 * those of the prefix evkit was built for. */
static void find_schemas(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    if (!strncmp(exe, EVK_BUILD_DIR "/", strlen(EVK_BUILD_DIR "/")) &&
        found(EVK_SOURCE_SCHEMAS))
        return;
    if (found_beside(exe, "../share/evkit/schemas")) return;
    Dl_info lib;
    if (dladdr((void *)evk_config_schemas_dir, &lib) && lib.dli_fname &&
        found_beside(lib.dli_fname, EVK_LIB_TO_DATA "/schemas"))
        return;
    if (!found(EVK_DATADIR "/schemas"))
        snprintf(found_schemas, sizeof found_schemas, "%s", EVK_DATADIR "/schemas");
}

const char *evk_config_schemas_dir(const evk_config_t *cfg) {
    const char *dir = evk_config_get_string(cfg, "schemas.dir", NULL);
    if (dir) return dir;
    pthread_once(&found_once, find_schemas);
    return found_schemas;
}

/* Loading a file. */

/* Prefix @p reason with the setting's place in the file. */
static evk_err_t load_fail(struct evk_load *ld, const config_setting_t *s, evk_err_t err,
                           const char *reason) {
    const char *file = config_setting_source_file(s);
    return evk__fail(err, ld->errstr, ld->errstr_size, "%s:%u: %s", file ? file : ld->path,
                     config_setting_source_line(s), reason);
}

/* Scalars of every kind become text: librdkafka takes text, and the typed
 * getters parse it again, so "retries = 5" and "retries = \"5\"" are one.
 * Their kind is kept beside, for the checks. */
static const char *scalar_text(const config_setting_t *s, char *buf, size_t size) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        return config_setting_get_string(s);
    case CONFIG_TYPE_INT:
        snprintf(buf, size, "%d", config_setting_get_int(s));
        return buf;
    case CONFIG_TYPE_INT64:
        snprintf(buf, size, "%lld", config_setting_get_int64(s));
        return buf;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, size, "%.15g", config_setting_get_float(s));
        return buf;
    case CONFIG_TYPE_BOOL:
        return config_setting_get_bool(s) ? "true" : "false";
    default:
        return "";
    }
}

static cfg_kind_t kind_of(const config_setting_t *s) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        return CFG_STRING;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return CFG_INT;
    case CONFIG_TYPE_FLOAT:
        return CFG_FLOAT;
    case CONFIG_TYPE_BOOL:
        return CFG_BOOL;
    case CONFIG_TYPE_GROUP:
        return CFG_GROUP;
    default:
        return CFG_LIST; /* a list or an array */
    }
}

static const char *aggregate_kind(const config_setting_t *s) {
    if (config_setting_is_group(s)) return "group";
    return config_setting_is_list(s) ? "list" : "array";
}

static evk_err_t load_kafka_property(struct evk_load *ld, const config_setting_t *s) {
    char reason[EVK_REASON_MAX], buf[64];
    char *name = strdup(config_setting_name(s));
    evk_err_t err = EVK_OK;
    if (!name) return evk__fail(EVK_ERR_NOMEM, ld->errstr, ld->errstr_size, "out of memory");
    for (char *p = name; *p; p++)
        if (*p == '_') *p = '.';
    if (config_setting_is_aggregate(s)) {
        snprintf(reason, sizeof(reason), "kafka.%s: expected a value, not a %s", name,
                 aggregate_kind(s));
        err = load_fail(ld, s, EVK_ERR_CONFIG, reason);
    } else {
        err = kafka_put(&ld->stage.kafka, name, scalar_text(s, buf, sizeof(buf)), reason,
                        sizeof(reason));
        if (err) err = load_fail(ld, s, err, reason);
    }
    free(name);
    return err;
}

static evk_err_t load_kafka(struct evk_load *ld, const config_setting_t *group) {
    if (!config_setting_is_group(group))
        return load_fail(ld, group, EVK_ERR_CONFIG, "kafka: expected a group");
    for (int i = 0; i < config_setting_length(group); i++) {
        evk_err_t err = load_kafka_property(ld, config_setting_get_elem(group, i));
        if (err) return err;
    }
    return EVK_OK;
}

/* Path of child @p s of @p parent: "a.b" in groups, "a[2]" in lists and arrays. */
static char *child_path(const char *parent, const config_setting_t *s) {
    const char *name = config_setting_name(s);
    int n = name ? snprintf(NULL, 0, "%s.%s", parent, name)
                 : snprintf(NULL, 0, "%s[%d]", parent, config_setting_index(s));
    char *path = malloc((size_t)n + 1);
    if (!path) return NULL;
    if (name)
        snprintf(path, (size_t)n + 1, "%s.%s", parent, name);
    else
        snprintf(path, (size_t)n + 1, "%s[%d]", parent, config_setting_index(s));
    return path;
}

static evk_err_t load_setting(struct evk_load *ld, const config_setting_t *s, const char *path);

static evk_err_t load_children(struct evk_load *ld, const config_setting_t *s,
                               const char *path) {
    for (int i = 0; i < config_setting_length(s); i++) {
        char *child = child_path(path, config_setting_get_elem(s, i));
        if (!child)
            return evk__fail(EVK_ERR_NOMEM, ld->errstr, ld->errstr_size, "out of memory");
        evk_err_t err = load_setting(ld, config_setting_get_elem(s, i), child);
        free(child);
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t load_setting(struct evk_load *ld, const config_setting_t *s,
                              const char *path) {
    char buf[64], src[EVK_REASON_MAX];
    const char *file = config_setting_source_file(s);
    int aggregate = config_setting_is_aggregate(s);
    snprintf(src, sizeof(src), "%s:%u", file ? file : ld->path, config_setting_source_line(s));
    if (kvs_put_from(&ld->stage.settings, path,
                     aggregate ? NULL : scalar_text(s, buf, sizeof(buf)), kind_of(s),
                     src) != EVK_OK)
        return evk__fail(EVK_ERR_NOMEM, ld->errstr, ld->errstr_size, "out of memory");
    return aggregate ? load_children(ld, s, path) : EVK_OK;
}

static evk_err_t load_root(struct evk_load *ld, const config_setting_t *root) {
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, i);
        const char *name = config_setting_name(s);
        evk_err_t err = !strcmp(name, "kafka") ? load_kafka(ld, s) : load_setting(ld, s, name);
        if (err) return err;
    }
    return EVK_OK;
}

/* The keys of evkit's own groups, checked when a file is loaded. They are
 * kept here, in the base layer, rather than beside the code that reads each
 * group (named in each table's comment), which sits in the layers above. */
static const evk_setting_t schemas_settings[] = {{"dir", EVK_SETTING_STRING}, {NULL, 0}};
/* log.c */
static const evk_setting_t log_settings[] = {
    {"level", EVK_SETTING_STRING}, {"format", EVK_SETTING_STRING}, {NULL, 0}};
/* registry.c */
static const evk_setting_t registry_settings[] = {
    {"url", EVK_SETTING_STRING},
    {"basic_auth_user_info", EVK_SETTING_STRING},
    {"basic_auth_user_info_file", EVK_SETTING_STRING},
    {"ssl_ca_location", EVK_SETTING_STRING},
    {"ssl_certificate_location", EVK_SETTING_STRING},
    {"ssl_key_location", EVK_SETTING_STRING},
    {"ssl_key_password", EVK_SETTING_STRING},
    {"ssl_key_password_file", EVK_SETTING_STRING},
    {"subject_name_strategy", EVK_SETTING_STRING},
    {"auto_register", EVK_SETTING_BOOL},
    {"timeout_ms", EVK_SETTING_INT},
    {NULL, 0},
};
/* metrics_http.c */
static const evk_setting_t metrics_settings[] = {{"port", EVK_SETTING_INT},
                                                 {"bind", EVK_SETTING_STRING},
                                                 {"max_connections", EVK_SETTING_INT},
                                                 {"max_connections_per_ip", EVK_SETTING_INT},
                                                 {"timeout_s", EVK_SETTING_INT},
                                                 {NULL, 0}};
/* store_disk.c */
static const evk_setting_t state_settings[] = {
    {"dir", EVK_SETTING_STRING},
    {"cache_entries", EVK_SETTING_INT},
    {"standby", EVK_SETTING_BOOL},
    {NULL, 0},
};

/* evkit's own top-level groups. librdkafka checks kafka's keys as they are
 * read; the others are checked here. */
static const struct {
    const char *name;
    const evk_setting_t *settings;
} own_groups[] = {
    {"kafka", NULL},
    {"schemas", schemas_settings},
    {"schema_registry", registry_settings},
    {"log", log_settings},
    {"metrics", metrics_settings},
    {"state", state_settings},
};

/* Names this short are too near plausible service names ("blog" for
 * "log") to be taken for typos. */
#define EVK_TYPO_MIN_LEN 5

/* A top-level entry of a file: one of evkit's groups, checked here, or a
 * service's group, checked by that service (evk_service_settings()). A
 * group one typo away from one of evkit's is taken for the typo, or
 * "schema_regsitry" would silently mean no registry. */
static evk_err_t check_top(const evk_config_t *stage, const struct evk_kv *kv, char *errstr,
                           size_t size) {
    for (size_t i = 0; i < sizeof(own_groups) / sizeof(own_groups[0]); i++) {
        if (strcmp(kv->key, own_groups[i].name)) continue;
        if (kv->kind != CFG_GROUP)
            return evk__fail(EVK_ERR_CONFIG, errstr, size, "%s: %s: expected a group", kv->src,
                             kv->key);
        return evk__config_check_group(stage, kv->key, &own_groups[i].settings, 1, 1, errstr,
                                       size);
    }
    if (kv->kind != CFG_GROUP)
        return evk__fail(EVK_ERR_CONFIG, errstr, size,
                         "%s: %s: unknown setting: the top level holds groups only (kafka, "
                         "schemas, schema_registry, log, metrics, state and one per service)",
                         kv->src, kv->key);
    for (size_t i = 0; i < sizeof(own_groups) / sizeof(own_groups[0]); i++)
        if (strlen(own_groups[i].name) >= EVK_TYPO_MIN_LEN &&
            one_typo(kv->key, own_groups[i].name))
            return unknown_fail(kv, "group", own_groups[i].name, errstr, size);
    return EVK_OK;
}

static evk_err_t check_file(const struct evk_load *ld) {
    for (size_t i = 0; i < ld->stage.settings.n; i++) {
        const struct evk_kv *kv = &ld->stage.settings.v[i];
        if (kv->key[strcspn(kv->key, ".[")]) continue; /* not top-level */
        evk_err_t err = check_top(&ld->stage, kv, ld->errstr, ld->errstr_size);
        if (err) return err;
    }
    return EVK_OK;
}

/* libconfig says "file I/O error" for a missing file; the caller wants errno. */
static evk_err_t check_readable(const char *path, char *errstr, size_t errstr_size) {
    FILE *fp = fopen(path, "r");
    if (!fp) return evk__fail(EVK_ERR_IO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    fclose(fp);
    return EVK_OK;
}

static evk_err_t parse_file(struct evk_load *ld) {
    config_t lc;
    evk_err_t err;
    config_init(&lc);
    if (!config_read_file(&lc, ld->path)) {
        const char *file = config_error_file(&lc);
        err = config_error_type(&lc) == CONFIG_ERR_FILE_IO ? EVK_ERR_IO : EVK_ERR_CONFIG;
        evk__fail(err, ld->errstr, ld->errstr_size, "%s:%d: %s", file ? file : ld->path,
                  config_error_line(&lc), config_error_text(&lc));
    } else {
        err = load_root(ld, config_root_setting(&lc));
    }
    config_destroy(&lc);
    return err;
}

evk_err_t evk_config_load(evk_config_t *cfg, const char *path, char *errstr,
                          size_t errstr_size) {
    if (!cfg || !path)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    evk_err_t err = check_readable(path, errstr, errstr_size);
    if (err) return err;
    struct evk_load ld = {.path = path, .errstr = errstr, .errstr_size = errstr_size};
    err = parse_file(&ld);
    if (!err) err = check_file(&ld);
    if (!err && (kvs_merge(&cfg->kafka, &ld.stage.kafka) ||
                 kvs_merge(&cfg->settings, &ld.stage.settings)))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    kvs_clear(&ld.stage.kafka);
    kvs_clear(&ld.stage.settings);
    return err;
}

evk_err_t evk__secret_file_read(const char *path, char **out, char *errstr,
                                size_t errstr_size) {
    FILE *fp = fopen(path, "r");
    if (!fp)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "%s: %s", path, strerror(errno));
    char *buf = malloc(EVK_SECRET_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, EVK_SECRET_FILE_MAX + 1, fp) : 0;
    int failed = ferror(fp);
    fclose(fp);
    if (!buf) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    buf[n > EVK_SECRET_FILE_MAX ? EVK_SECRET_FILE_MAX : n] = '\0';
    if (failed || n > EVK_SECRET_FILE_MAX) {
        evk__free_secret(buf);
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "%s: %s", path,
                         failed ? "read error" : "larger than 64 KiB");
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    *out = buf;
    return EVK_OK;
}

/* Environment. */

#define EVK_ENV_KAFKA "EVK_KAFKA_"

/* EVK_KAFKA_SASL_PASSWORD=x -> sasl.password = x. */
static evk_err_t apply_env_kafka(evk_config_t *cfg, const char *entry, char *errstr,
                                 size_t errstr_size) {
    char reason[EVK_REASON_MAX];
    const char *eq = strchr(entry, '=');
    size_t var_len = (size_t)(eq - entry), prefix_len = strlen(EVK_ENV_KAFKA);
    char *name = strndup(entry + prefix_len, var_len - prefix_len);
    if (!name) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    for (char *p = name; *p; p++)
        *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
    evk_err_t err = evk_config_set_kafka(cfg, name, eq + 1, reason, sizeof(reason));
    if (err) evk__fail(err, errstr, errstr_size, "%.*s: %s", (int)var_len, entry, reason);
    free(name);
    return err;
}

/* An empty shortcut variable counts as unset, so that a launcher can pass
 * EVK_BOOTSTRAP_SERVERS= through to mean "use the dev broker". */
static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The metrics endpoint's variables set metrics.<name> and win over every
 * service's own <service>.metrics_<name> from the file: a container is
 * told where to listen by its environment, whatever config it mounts. */
static evk_err_t apply_env_metrics(evk_config_t *cfg, const char *var, const char *name) {
    char shared[64], own[64];
    const char *v = env_nonempty(var);
    if (!v) return EVK_OK;
    snprintf(shared, sizeof(shared), "metrics.%s", name);
    snprintf(own, sizeof(own), ".metrics_%s", name);
    for (size_t i = 0; i < cfg->settings.n; i++)
        if (evk__ends_with(cfg->settings.v[i].key, own) && kvs_replace(&cfg->settings.v[i], v))
            return EVK_ERR_NOMEM;
    return kvs_put(&cfg->settings, shared, v);
}

evk_err_t evk_config_apply_env(evk_config_t *cfg, char *errstr, size_t errstr_size) {
    char reason[EVK_REASON_MAX];
    const char *v;
    evk_err_t err;
    if (!cfg) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, EVK_ENV_KAFKA, strlen(EVK_ENV_KAFKA)) || !strchr(*e, '=')) continue;
        if ((err = apply_env_kafka(cfg, *e, errstr, errstr_size))) return err;
    }
    /* The named shortcuts come last so that they win over EVK_KAFKA_*. */
    if ((v = env_nonempty("EVK_BOOTSTRAP_SERVERS")) &&
        (err = evk_config_set_kafka(cfg, "bootstrap.servers", v, reason, sizeof(reason))))
        return evk__fail(err, errstr, errstr_size, "EVK_BOOTSTRAP_SERVERS: %s", reason);
    if (((v = env_nonempty("EVK_SCHEMAS_DIR")) && evk_config_set(cfg, "schemas.dir", v)) ||
        ((v = env_nonempty("EVK_STATE_DIR")) && evk_config_set(cfg, "state.dir", v)) ||
        ((v = env_nonempty("EVK_SCHEMA_REGISTRY_URL")) &&
         evk_config_set(cfg, "schema_registry.url", v)) ||
        ((v = env_nonempty("EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO")) &&
         evk_config_set(cfg, "schema_registry.basic.auth.user.info", v)) ||
        apply_env_metrics(cfg, "EVK_METRICS_PORT", "port") ||
        apply_env_metrics(cfg, "EVK_METRICS_BIND", "bind"))
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return EVK_OK;
}

evk_err_t evk_config_open(const char *path, evk_config_t **out, char *errstr,
                          size_t errstr_size) {
    if (!out) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    *out = NULL;
    evk_config_t *cfg = evk_config_new();
    if (!cfg) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!path) path = env_nonempty("EVK_CONFIG");
    evk_err_t err = path ? evk_config_load(cfg, path, errstr, errstr_size) : EVK_OK;
    if (!err) err = evk_config_apply_env(cfg, errstr, errstr_size);
    if (err) {
        evk_config_destroy(cfg);
        return err;
    }
    *out = cfg;
    return EVK_OK;
}
