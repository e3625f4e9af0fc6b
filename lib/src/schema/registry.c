/* Confluent Schema Registry client over libcurl (REST API v1). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <avro.h>
#include <curl/curl.h>
#include <jansson.h>

#include "evkit/registry.h"
#include "codec.h"
#include "internal.h"

#define REG_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"
/* Far above any real schema; a bound so a confused server cannot exhaust memory. */
#define REG_BODY_MAX (16u << 20)
/* How much of an error body is quoted in a message. */
#define REG_QUOTE_MAX 200

/* An answer that breaks the API (a 2xx that is not JSON, lacks "id" or
 * "schema", or holds a schema that does not parse; a status the API does
 * not use) means the registry, or a proxy before it, is broken rather than
 * away. The request is made REG_TRIES times, pausing REG_PAUSE_MS times the
 * try between, in case the fault passes; then it fails with EVK_ERR_DECODE,
 * which a service dead-letters instead of waiting as it does for
 * EVK_ERR_IO. */
#define REG_TRIES 3
#define REG_PAUSE_MS 100

enum { STRATEGY_TOPIC, STRATEGY_RECORD, STRATEGY_TOPIC_RECORD };

typedef struct {
    char *subject;
    char *schema;
    int32_t id;
} reg_id_t;

typedef struct {
    int32_t id;
    char *json;
} reg_schema_t;

struct evk_registry_s {
    pthread_mutex_t lock; /* the curl handle and the caches */
    CURL *curl;
    /* Base URL without user:password@, which goes to userpwd: curl gets
     * credentials apart from the URL, so a password may hold '/' or '@'
     * and no message (curl's included) can quote it. */
    char *url;
    char *userpwd, *ca, *cert, *key, *key_password;
    long timeout_ms;
    int strategy, auto_register;
    reg_id_t *ids;
    size_t nids;
    reg_schema_t *schemas;
    size_t nschemas;
};

typedef struct {
    char *buf;
    size_t len;
} body_t;

/* ---- settings ---- */

/* The keys of the schema_registry group: own_groups in config.c. */
/* The key @p name is set under: the registry's dotted name, or, since a file
 * can only spell it with '_' (libconfig names have no dots), that spelling. */
static const char *setting_key(const evk_config_t *cfg, const char *name, char *buf,
                               size_t size) {
    const size_t prefix = strlen("schema_registry.");
    int n = snprintf(buf, size, "schema_registry.%s", name);
    if (n < 0 || (size_t)n >= size) return buf; /* cut short: names nothing, found nothing */
    if (evk_config_get_string(cfg, buf, NULL)) return buf;
    for (char *p = buf + prefix; *p; p++)
        if (*p == '.') *p = '_';
    return buf;
}

static const char *setting(const evk_config_t *cfg, const char *name) {
    char key[128];
    const char *v = evk_config_get_string(cfg, setting_key(cfg, name, key, sizeof key), NULL);
    return v && *v ? v : NULL;
}

int evk_registry_configured(const evk_config_t *cfg) {
    return setting(cfg, "url") != NULL;
}

/* Secret @p name: its value, else the content of the file that
 * "<name>.file" names (basic_auth_user_info_file in a file), which keeps it
 * out of the config. *slot is a malloc()ed copy, or NULL when neither is set. */
static evk_err_t secret_setting(char **slot, const evk_config_t *cfg, const char *name,
                                char *errstr, size_t errstr_size) {
    char file[128], key[160], why[512];
    const char *v = setting(cfg, name), *path, *src;
    if (v) return (*slot = strdup(v)) ? EVK_OK : EVK_ERR_NOMEM;
    snprintf(file, sizeof file, "%s.file", name);
    if (!(path = setting(cfg, file))) return EVK_OK;
    evk_err_t err = evk__secret_file_read(path, slot, why, sizeof why);
    if (err && (src = evk__config_source(cfg, setting_key(cfg, file, key, sizeof key))))
        return evk__fail(err, errstr, errstr_size, "%s: %s: %s", src, key, why);
    return err ? evk__fail(err, errstr, errstr_size, "%s: %s", key, why) : EVK_OK;
}

/* reg->url is @p url without its user:password@ part; *userinfo that part,
 * percent-decoded as curl would (malloc()ed), or NULL. */
static evk_err_t split_url(evk_registry_t *reg, const char *url, char **userinfo) {
    const char *scheme = strstr(url, "://");
    const char *authority = scheme ? scheme + 3 : url;
    size_t n = evk__url_userinfo_len(authority), head = (size_t)(authority - url);
    size_t size = strlen(url) - n + 1;
    *userinfo = NULL;
    if (!(reg->url = malloc(size))) return EVK_ERR_NOMEM;
    snprintf(reg->url, size, "%.*s%s", (int)head, url, authority + n);
    for (size_t len = strlen(reg->url); len && reg->url[len - 1] == '/';)
        reg->url[--len] = '\0';
    char *decoded = n ? curl_easy_unescape(reg->curl, authority, (int)n - 1, NULL) : NULL;
    if (decoded) {
        *userinfo = strdup(decoded);
        evk__wipe(decoded);
        curl_free(decoded);
    }
    return n && !*userinfo ? EVK_ERR_NOMEM : EVK_OK;
}

static evk_err_t read_strategy(evk_registry_t *reg, const evk_config_t *cfg, char *errstr,
                               size_t errstr_size) {
    static const char *const names[] = {"topic", "record", "topic_record"};
    const char *v = setting(cfg, "subject.name.strategy");
    for (int i = 0; v && i < 3; i++)
        if (!strcmp(v, names[i])) reg->strategy = i;
    if (v && strcmp(v, names[reg->strategy]))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "schema_registry.subject.name.strategy: \"%s\" is not topic, record "
                         "or topic_record",
                         v);
    return EVK_OK;
}

static evk_err_t read_numbers(evk_registry_t *reg, const evk_config_t *cfg, char *errstr,
                              size_t errstr_size) {
    char tkey[128], akey[128];
    int64_t timeout;
    evk_err_t err = evk_config_get_int(cfg, setting_key(cfg, "timeout.ms", tkey, sizeof tkey),
                                       10000, &timeout, errstr, errstr_size);
    if (!err)
        err = evk_config_get_bool(cfg, setting_key(cfg, "auto.register", akey, sizeof akey), 1,
                                  &reg->auto_register, errstr, errstr_size);
    if (!err && (timeout <= 0 || timeout > INT32_MAX))
        err = evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "%s: expected a positive number",
                        tkey);
    reg->timeout_ms = (long)timeout;
    return err;
}

static int copy_setting(char **slot, const evk_config_t *cfg, const char *name) {
    const char *v = setting(cfg, name);
    *slot = v ? strdup(v) : NULL;
    return v && !*slot;
}

/* Credentials: basic.auth.user.info (or its file), else the URL's. */
static evk_err_t read_credentials(evk_registry_t *reg, const evk_config_t *cfg, char *errstr,
                                  size_t errstr_size) {
    char *from_url = NULL;
    evk_err_t err = split_url(reg, setting(cfg, "url"), &from_url);
    if (!err)
        err = secret_setting(&reg->userpwd, cfg, "basic.auth.user.info", errstr, errstr_size);
    if (!err && !reg->userpwd) {
        reg->userpwd = from_url;
        from_url = NULL;
    }
    if (!err)
        err = secret_setting(&reg->key_password, cfg, "ssl.key.password", errstr, errstr_size);
    evk__free_secret(from_url);
    return err == EVK_ERR_NOMEM ? evk__fail(err, errstr, errstr_size, "out of memory") : err;
}

static evk_err_t read_settings(evk_registry_t *reg, const evk_config_t *cfg, char *errstr,
                               size_t errstr_size) {
    if (!setting(cfg, "url"))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "schema_registry.url: not set");
    evk_err_t err = read_credentials(reg, cfg, errstr, errstr_size);
    if (!err && (copy_setting(&reg->ca, cfg, "ssl.ca.location") ||
                 copy_setting(&reg->cert, cfg, "ssl.certificate.location") ||
                 copy_setting(&reg->key, cfg, "ssl.key.location")))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!err) err = read_strategy(reg, cfg, errstr, errstr_size);
    return err ? err : read_numbers(reg, cfg, errstr, errstr_size);
}

evk_err_t evk_registry_new(const evk_config_t *cfg, evk_registry_t **out, char *errstr,
                           size_t errstr_size) {
    if (!cfg || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    *out = NULL;
    evk_registry_t *reg = calloc(1, sizeof *reg);
    if (!reg) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    pthread_mutex_init(&reg->lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    evk_err_t err = (reg->curl = curl_easy_init())
                        ? read_settings(reg, cfg, errstr, errstr_size)
                        : evk__fail(EVK_ERR_NOMEM, errstr, errstr_size,
                                    "schema registry: curl_easy_init failed");
    if (err) {
        evk_registry_destroy(reg);
        return err;
    }
    *out = reg;
    return EVK_OK;
}

void evk_registry_destroy(evk_registry_t *reg) {
    if (!reg) return;
    if (reg->curl) curl_easy_cleanup(reg->curl);
    curl_global_cleanup();
    for (size_t i = 0; i < reg->nids; i++) {
        free(reg->ids[i].subject);
        free(reg->ids[i].schema);
    }
    for (size_t i = 0; i < reg->nschemas; i++)
        free(reg->schemas[i].json);
    free(reg->ids);
    free(reg->schemas);
    free(reg->url);
    evk__free_secret(reg->userpwd);
    free(reg->ca);
    free(reg->cert);
    free(reg->key);
    evk__free_secret(reg->key_password);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque) {
    body_t *b = opaque;
    size_t n = size * nmemb;
    if (b->len + n > REG_BODY_MAX) return 0; /* curl then fails with a write error */
    char *grown = realloc(b->buf, b->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, data, n);
    b->len += n;
    grown[b->len] = '\0';
    b->buf = grown;
    return n;
}

static void set_tls(const evk_registry_t *reg) {
    CURL *c = reg->curl;
    if (reg->ca) curl_easy_setopt(c, CURLOPT_CAINFO, reg->ca);
    if (reg->cert) curl_easy_setopt(c, CURLOPT_SSLCERT, reg->cert);
    if (reg->key) curl_easy_setopt(c, CURLOPT_SSLKEY, reg->key);
    if (reg->key_password) curl_easy_setopt(c, CURLOPT_KEYPASSWD, reg->key_password);
}

/* curl_easy_reset() keeps the connection cache, so requests reuse one
 * keep-alive connection while no option leaks from one request to the next. */
static void set_request(evk_registry_t *reg, const char *url, const char *post, body_t *body,
                        struct curl_slist *headers, char *curl_err) {
    CURL *c = reg->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    if (reg->userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, reg->userpwd);
    }
    set_tls(reg);
}

/* The first @p max bytes of @p s as they may reach a terminal: control
 * characters (C0, DEL and, UTF-8 encoded, C1) become \xNN or \u00NN, so
 * that a broken or hostile registry cannot move the cursor, recolour or
 * clear the screen of whoever reads the error. */
static void printable(char *out, size_t size, const char *s, size_t max) {
    size_t o = 0;
    for (size_t i = 0; s[i] && i < max && o + 7 < size; i++) {
        unsigned char c = (unsigned char)s[i], next = (unsigned char)s[i + 1];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
        } else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", next);
            i++;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* What a status means to a caller: 5xx, 408 and 429 say the registry is
 * away or busy (wait); a status the API does not use is a broken answer. */
static evk_err_t status_err(long status) {
    switch (status) {
    case 401:
    case 403:
        return EVK_ERR_CONFIG;
    case 404:
        return EVK_ERR_NOT_FOUND;
    case 409:
    case 422:
        return EVK_ERR_SCHEMA;
    case 408:
    case 429:
        return EVK_ERR_IO;
    default:
        return status >= 500 ? EVK_ERR_IO : EVK_ERR_DECODE;
    }
}

/* The registry's {"error_code": N, "message": "..."}, else the raw body. */
static evk_err_t http_status_fail(const evk_registry_t *reg, long status, const body_t *body,
                                  char *errstr, size_t errstr_size) {
    char quoted[REG_QUOTE_MAX * 6 + 8];
    json_t *doc = body->buf ? json_loadb(body->buf, body->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    evk_err_t err = status_err(status);
    printable(quoted, sizeof quoted,
              msg         ? msg
              : body->buf ? body->buf
                          : "(no body)",
              REG_QUOTE_MAX);
    evk__fail(err, errstr, errstr_size, "schema registry %s: HTTP %ld: %s%s", reg->url, status,
              quoted,
              err == EVK_ERR_CONFIG ? " (check schema_registry.basic.auth.user.info)" : "");
    json_decref(doc);
    return err;
}

/* One request; *reply is the parsed 2xx answer. Caller holds the lock. */
static evk_err_t http(evk_registry_t *reg, const char *path, const char *post, json_t **reply,
                      char *errstr, size_t errstr_size) {
    char curl_err[CURL_ERROR_SIZE] = "", *url = NULL;
    body_t body = {0};
    long status = 0;
    struct curl_slist *h =
        curl_slist_append(NULL, "Accept: " REG_CONTENT_TYPE ", application/json");
    struct curl_slist *headers =
        h ? curl_slist_append(h, "Content-Type: " REG_CONTENT_TYPE) : NULL;
    size_t n = strlen(reg->url) + strlen(path) + 1;
    if (!headers || !(url = malloc(n))) {
        curl_slist_free_all(headers ? headers : h);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    snprintf(url, n, "%s%s", reg->url, path);
    set_request(reg, url, post, &body, headers, curl_err);
    CURLcode rc = curl_easy_perform(reg->curl);
    curl_easy_getinfo(reg->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    free(url);
    evk_err_t err = EVK_OK;
    if (rc)
        err = evk__fail(EVK_ERR_IO, errstr, errstr_size, "schema registry %s: %s", reg->url,
                        *curl_err ? curl_err : curl_easy_strerror(rc));
    else if (status < 200 || status > 299)
        err = http_status_fail(reg, status, &body, errstr, errstr_size);
    else if (!(*reply = body.buf ? json_loadb(body.buf, body.len, 0, NULL) : NULL))
        err = evk__fail(EVK_ERR_DECODE, errstr, errstr_size,
                        "schema registry %s%s: answer is not JSON", reg->url, path);
    free(body.buf);
    return err;
}

/* Whether to ask again after @p err, @p tries requests made (see
 * REG_TRIES); the pause is taken here. */
static int ask_again(evk_err_t err, unsigned tries) {
    if (err != EVK_ERR_DECODE || tries >= REG_TRIES) return 0;
    struct timespec pause = {0, (long)REG_PAUSE_MS * (long)tries * 1000000L};
    nanosleep(&pause, NULL);
    return 1;
}

/* @p err, with how many tries a broken answer got added to errstr. */
static evk_err_t asked(evk_err_t err, unsigned tries, char *errstr, size_t errstr_size) {
    if (err != EVK_ERR_DECODE || !errstr || !errstr_size) return err;
    size_t n = strlen(errstr); /* the last try's reason, which evk__fail() wrote */
    if (n + 1 < errstr_size) snprintf(errstr + n, errstr_size - n, " (asked %u times)", tries);
    return err;
}

/* ---- ids by subject and schema ---- */

static const reg_id_t *find_id(const evk_registry_t *reg, const char *subject,
                               const char *schema) {
    for (size_t i = 0; i < reg->nids; i++)
        if (!strcmp(reg->ids[i].subject, subject) && !strcmp(reg->ids[i].schema, schema))
            return &reg->ids[i];
    return NULL;
}

static evk_err_t remember_id(evk_registry_t *reg, const char *subject, const char *schema,
                             int32_t id) {
    reg_id_t *grown = realloc(reg->ids, (reg->nids + 1) * sizeof *grown);
    if (!grown) return EVK_ERR_NOMEM;
    reg->ids = grown;
    reg_id_t *e = &reg->ids[reg->nids];
    e->subject = strdup(subject);
    e->schema = strdup(schema);
    e->id = id;
    if (!e->subject || !e->schema) {
        free(e->subject);
        free(e->schema);
        return EVK_ERR_NOMEM;
    }
    reg->nids++;
    return EVK_OK;
}

/* Confluent ids are positive 32-bit integers; anything else is a broken answer. */
static evk_err_t reply_id(const evk_registry_t *reg, const json_t *reply, const char *what,
                          int32_t *id, char *errstr, size_t errstr_size) {
    json_int_t v = json_integer_value(json_object_get(reply, "id"));
    if (!json_is_integer(json_object_get(reply, "id")) || v <= 0 || v > INT32_MAX)
        return evk__fail(EVK_ERR_DECODE, errstr, errstr_size,
                         "schema registry %s: %s: answer has no valid \"id\"", reg->url, what);
    *id = (int32_t)v;
    return EVK_OK;
}

static evk_err_t subject_request_once(evk_registry_t *reg, const char *subject,
                                      const char *schema, int registering, int32_t *id,
                                      char *errstr, size_t errstr_size) {
    json_t *req = json_pack("{s:s}", "schema", schema), *reply = NULL;
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    char *escaped = curl_easy_escape(reg->curl, subject, 0);
    size_t n = (escaped ? strlen(escaped) : 0) + 32;
    char *path = malloc(n);
    evk_err_t err = EVK_OK;
    if (!post || !escaped || !path) {
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    } else {
        snprintf(path, n, "/subjects/%s%s", escaped, registering ? "/versions" : "");
        err = http(reg, path, post, &reply, errstr, errstr_size);
    }
    if (!err) err = reply_id(reg, reply, subject, id, errstr, errstr_size);
    if (!err && remember_id(reg, subject, schema, *id))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    json_decref(req);
    json_decref(reply);
    free(post);
    curl_free(escaped);
    free(path);
    return err;
}

static evk_err_t subject_request(evk_registry_t *reg, const char *subject, const char *schema,
                                 int registering, int32_t *id, char *errstr,
                                 size_t errstr_size) {
    evk_err_t err;
    unsigned tries = 0;
    do
        err = subject_request_once(reg, subject, schema, registering, id, errstr, errstr_size);
    while (ask_again(err, ++tries));
    return asked(err, tries, errstr, errstr_size);
}

static evk_err_t subject_id(evk_registry_t *reg, const char *subject, const char *schema,
                            int registering, int32_t *id, char *errstr, size_t errstr_size) {
    if (!reg || !subject || !schema || !id)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    pthread_mutex_lock(&reg->lock);
    const reg_id_t *hit = find_id(reg, subject, schema);
    evk_err_t err = EVK_OK;
    if (hit)
        *id = hit->id;
    else
        err = subject_request(reg, subject, schema, registering, id, errstr, errstr_size);
    pthread_mutex_unlock(&reg->lock);
    return err;
}

evk_err_t evk_registry_register(evk_registry_t *reg, const char *subject,
                                const char *schema_json, int32_t *id, char *errstr,
                                size_t errstr_size) {
    return subject_id(reg, subject, schema_json, 1, id, errstr, errstr_size);
}

evk_err_t evk_registry_lookup(evk_registry_t *reg, const char *subject, const char *schema_json,
                              int32_t *id, char *errstr, size_t errstr_size) {
    return subject_id(reg, subject, schema_json, 0, id, errstr, errstr_size);
}

/* ---- schemas by id ---- */

static const char *find_schema(const evk_registry_t *reg, int32_t id) {
    for (size_t i = 0; i < reg->nschemas; i++)
        if (reg->schemas[i].id == id) return reg->schemas[i].json;
    return NULL;
}

/* Whether @p text is an Avro schema; errstr says why not. */
static evk_err_t check_avro(const evk_registry_t *reg, int32_t id, const char *text,
                            char *errstr, size_t errstr_size) {
    avro_schema_t schema;
    char why[REG_QUOTE_MAX * 6 + 8];
    if (!avro_schema_from_json_length(text, strlen(text), &schema)) {
        avro_schema_decref(schema);
        return EVK_OK;
    }
    printable(why, sizeof why, avro_strerror(), REG_QUOTE_MAX);
    return evk__fail(EVK_ERR_DECODE, errstr, errstr_size,
                     "schema registry %s: schema id %d: the schema does not parse: %s",
                     reg->url, (int)id, why);
}

/* The answer is {"schema": "...", "schemaType": "AVRO"}; schemaType is
 * absent for Avro, the registry's original format. */
static evk_err_t keep_schema(evk_registry_t *reg, int32_t id, const json_t *reply,
                             const char **json, char *errstr, size_t errstr_size) {
    const char *text = json_string_value(json_object_get(reply, "schema"));
    const char *type = json_string_value(json_object_get(reply, "schemaType"));
    char shown[32 * 6 + 8];
    if (!text)
        return evk__fail(EVK_ERR_DECODE, errstr, errstr_size,
                         "schema registry %s: schema id %d: answer has no \"schema\"", reg->url,
                         (int)id);
    if (type && strcmp(type, "AVRO")) {
        printable(shown, sizeof shown, type, 32);
        return evk__fail(EVK_ERR_UNKNOWN_SCHEMA_ID, errstr, errstr_size,
                         "schema id %d is a %s schema, not Avro", (int)id, shown);
    }
    evk_err_t err = check_avro(reg, id, text, errstr, errstr_size);
    if (err) return err;
    reg_schema_t *grown = realloc(reg->schemas, (reg->nschemas + 1) * sizeof *grown);
    char *copy = strdup(text);
    if (grown) reg->schemas = grown;
    if (!grown || !copy) {
        free(copy);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    reg->schemas[reg->nschemas++] = (reg_schema_t){.id = id, .json = copy};
    *json = copy;
    return EVK_OK;
}

static evk_err_t fetch_schema_once(evk_registry_t *reg, int32_t id, const char **json,
                                   char *errstr, size_t errstr_size) {
    char path[64];
    json_t *reply = NULL;
    snprintf(path, sizeof path, "/schemas/ids/%d", (int)id);
    evk_err_t err = http(reg, path, NULL, &reply, errstr, errstr_size);
    if (err == EVK_ERR_NOT_FOUND)
        err = evk__fail(EVK_ERR_UNKNOWN_SCHEMA_ID, errstr, errstr_size,
                        "schema id %d is not in the catalog nor in schema registry %s", (int)id,
                        reg->url);
    if (!err) err = keep_schema(reg, id, reply, json, errstr, errstr_size);
    json_decref(reply);
    return err;
}

static evk_err_t fetch_schema(evk_registry_t *reg, int32_t id, const char **json, char *errstr,
                              size_t errstr_size) {
    evk_err_t err;
    unsigned tries = 0;
    do
        err = fetch_schema_once(reg, id, json, errstr, errstr_size);
    while (ask_again(err, ++tries));
    return asked(err, tries, errstr, errstr_size);
}

evk_err_t evk_registry_schema(evk_registry_t *reg, int32_t id, const char **json, char *errstr,
                              size_t errstr_size) {
    if (!reg || !json)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    pthread_mutex_lock(&reg->lock);
    evk_err_t err = EVK_OK;
    if (!(*json = find_schema(reg, id))) err = fetch_schema(reg, id, json, errstr, errstr_size);
    pthread_mutex_unlock(&reg->lock);
    return err;
}

/* ---- subjects ---- */

evk_err_t evk_registry_subject(const evk_registry_t *reg, const evk_schema_t *s, char *buf,
                               size_t size) {
    if (!reg || !s || !buf) return EVK_ERR_INVALID_ARG;
    int n;
    switch (reg->strategy) {
    case STRATEGY_RECORD:
        n = snprintf(buf, size, "%s", evk_schema_type(s));
        break;
    case STRATEGY_TOPIC_RECORD:
        n = snprintf(buf, size, "%s-%s", evk_schema_topic(s), evk_schema_type(s));
        break;
    default:
        n = snprintf(buf, size, "%s-value", evk_schema_topic(s));
    }
    return n < 0 || (size_t)n >= size ? EVK_ERR_INVALID_ARG : EVK_OK;
}

int evk__registry_auto_register(const evk_registry_t *reg) {
    return reg->auto_register;
}
