/* The schema catalog: catalog.cfg and its Avro schemas loaded into entries
 * (type, topic, id, key field, changelog), and the writer schemas met. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <libconfig.h>

#include "evkit/registry.h"
#include "evkit/schema.h"
#include "codec.h"
#include "internal.h"

#define EVK_REASON_MAX 512
/* Generous bound for one schema's JSON text; the catalog's are a few KB. */
#define EVK_SCHEMA_JSON_MAX (16u << 20)

struct evk_schema_s {
    char *type;       /* full name: "shop.orders.OrderPlaced" */
    const char *name; /* short name, points into type */
    char *topic;
    char *key; /* NULL when the catalog names no key field */
    int32_t id;
    int changelog; /* a state store's record: its topic is compacted */
    avro_schema_t avro;
    char *json;
    avro_value_iface_t *iface;
    json_t *doc;
};

struct evk_catalog_s {
    evk_schema_t *v;
    size_t n;
    /* Writers are the one part that changes after loading (ids met in the
     * registry are added as they are met), hence the lock. */
    pthread_mutex_t lock;
    evk__writer_t **writers;
    size_t nwriters;
    evk_registry_t *reg;
};

/* State of one catalog load, so that every error can name its place. */
struct evk_cload {
    const char *dir;
    char *cat_path;
    int idx; /* entry being loaded */
    char *errstr;
    size_t errstr_size;
};

static const char *const evk_entry_fields[] = {"type", "topic",   "schema",   "id",
                                               "key",  "writers", "changelog"};

/* "<catalog>:<line>: <reason>" for the setting @p s. */
static evk_err_t __attribute__((format(printf, 4, 5)))
cload_fail(const struct evk_cload *cl, const config_setting_t *s, evk_err_t err,
           const char *fmt, ...) {
    char reason[EVK_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return evk__fail(err, cl->errstr, cl->errstr_size, "%s:%u: %s", cl->cat_path,
                     config_setting_source_line(s), reason);
}

static evk_err_t nomem(const struct evk_cload *cl) {
    return evk__fail(EVK_ERR_NOMEM, cl->errstr, cl->errstr_size, "out of memory");
}

/* Schema paths are relative to the catalog's directory unless absolute. */
static char *path_in(const char *dir, const char *file) {
    if (file[0] == '/') return strdup(file);
    size_t dlen = strlen(dir), n = dlen + strlen(file) + 2;
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s%s%s", dir, sep, file);
    return path;
}

/* Whole file into a NUL-terminated buffer; returns 0 or an errno value. */
static int read_all(const char *path, char **out, size_t *len) {
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    int err = 0;
    if (!fp) return errno;
    do {
        if (cap - n < 4096) {
            char *grown = realloc(buf, cap = cap * 2 + 4096);
            if (!grown) {
                err = ENOMEM;
                break;
            }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
    } while (got > 0);
    if (!err && ferror(fp)) err = EIO;
    fclose(fp);
    if (err) {
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Field checks. */

static evk_err_t check_fields(const struct evk_cload *cl, const config_setting_t *entry) {
    for (int i = 0; i < config_setting_length(entry); i++) {
        const config_setting_t *f = config_setting_get_elem(entry, i);
        const char *name = config_setting_name(f);
        size_t k = 0, n = sizeof(evk_entry_fields) / sizeof(evk_entry_fields[0]);
        while (k < n && strcmp(name, evk_entry_fields[k]))
            k++;
        if (k == n)
            return cload_fail(cl, f, EVK_ERR_CONFIG, "events[%d].%s: unknown field", cl->idx,
                              name);
    }
    return EVK_OK;
}

/* String field @p field of @p entry into *out (NULL when optional and absent). */
static evk_err_t get_text(const struct evk_cload *cl, const config_setting_t *entry,
                          const char *field, int required, char **out) {
    const config_setting_t *s = config_setting_get_member(entry, field);
    if (!s)
        return required ? cload_fail(cl, entry, EVK_ERR_CONFIG, "events[%d].%s: missing",
                                     cl->idx, field)
                        : EVK_OK;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cload_fail(cl, s, EVK_ERR_CONFIG, "events[%d].%s: expected a string", cl->idx,
                          field);
    const char *v = config_setting_get_string(s);
    if (!*v) return cload_fail(cl, s, EVK_ERR_CONFIG, "events[%d].%s: empty", cl->idx, field);
    *out = strdup(v);
    return *out ? EVK_OK : nomem(cl);
}

/* @p at names the group in messages: "events[3]", "events[3].writers[0]". */
static evk_err_t get_id(const struct evk_cload *cl, const config_setting_t *entry,
                        const char *at, int32_t *out) {
    const config_setting_t *s = config_setting_get_member(entry, "id");
    if (!s) return cload_fail(cl, entry, EVK_ERR_CONFIG, "%s.id: missing", at);
    int type = config_setting_type(s);
    long long id = type == CONFIG_TYPE_INT     ? config_setting_get_int(s)
                   : type == CONFIG_TYPE_INT64 ? config_setting_get_int64(s)
                                               : 0;
    /* Confluent schema ids are positive 32-bit integers. */
    if (id <= 0 || id > INT32_MAX)
        return cload_fail(cl, s, EVK_ERR_CONFIG, "%s.id: expected a positive integer", at);
    *out = (int32_t)id;
    return EVK_OK;
}

static evk_err_t get_changelog(const struct evk_cload *cl, const config_setting_t *entry,
                               int *out) {
    const config_setting_t *s = config_setting_get_member(entry, "changelog");
    if (!s) return EVK_OK;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return cload_fail(cl, s, EVK_ERR_CONFIG, "events[%d].changelog: expected true or false",
                          cl->idx);
    *out = config_setting_get_bool(s);
    return EVK_OK;
}

/* Type, short name and id must each name one entry, or lookups would be
 * ambiguous. */
static evk_err_t writer_id_taken(const struct evk_cload *cl, const evk_catalog_t *cat,
                                 const config_setting_t *s, int32_t id);

static evk_err_t check_unique(const struct evk_cload *cl, const evk_catalog_t *cat,
                              const config_setting_t *entry) {
    const evk_schema_t *e = &cat->v[cl->idx];
    evk_err_t err = writer_id_taken(cl, cat, config_setting_get_member(entry, "id"), e->id);
    if (err) return err;
    for (int j = 0; j < cl->idx; j++) {
        const evk_schema_t *o = &cat->v[j];
        if (o->id == e->id)
            return cload_fail(cl, config_setting_get_member(entry, "id"), EVK_ERR_CONFIG,
                              "events[%d].id: duplicate id %d (also events[%d])", cl->idx,
                              (int)e->id, j);
        if (!strcmp(o->type, e->type))
            return cload_fail(cl, config_setting_get_member(entry, "type"), EVK_ERR_CONFIG,
                              "events[%d].type: duplicate type %s (also events[%d])", cl->idx,
                              e->type, j);
        if (!strcmp(o->name, e->name))
            return cload_fail(cl, config_setting_get_member(entry, "type"), EVK_ERR_CONFIG,
                              "events[%d].type: duplicate short name %s (also events[%d])",
                              cl->idx, e->name, j);
    }
    return EVK_OK;
}

/* Schema checks. */

static char *schema_full_name(avro_schema_t schema) {
    const char *ns = avro_schema_namespace(schema), *name = avro_schema_name(schema);
    size_t n = (ns ? strlen(ns) + 1 : 0) + strlen(name) + 1;
    char *full = malloc(n);
    if (full) snprintf(full, n, "%s%s%s", ns ? ns : "", ns ? "." : "", name);
    return full;
}

static evk_err_t check_record(const struct evk_cload *cl, const evk_schema_t *e,
                              const char *file) {
    if (!is_avro_record(e->avro))
        return evk__fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size,
                         "%s: expected a record schema", file);
    char *full = schema_full_name(e->avro);
    if (!full) return nomem(cl);
    evk_err_t err = EVK_OK;
    if (strcmp(full, e->type))
        err =
            evk__fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size,
                      "%s: record name %s does not match catalog type %s", file, full, e->type);
    free(full);
    return err;
}

/* The key becomes the Kafka message key, which evkit writes as a string. */
static evk_err_t check_key(const struct evk_cload *cl, const evk_schema_t *e,
                           const config_setting_t *entry) {
    if (!e->key) return EVK_OK;
    const config_setting_t *s = config_setting_get_member(entry, "key");
    /* avro_schema_record_field_get() reads garbage for a missing name, so
     * the index lookup comes first. */
    int index = avro_schema_record_field_get_index(e->avro, e->key);
    if (index < 0)
        return cload_fail(cl, s, EVK_ERR_SCHEMA, "events[%d].key: %s has no field \"%s\"",
                          cl->idx, e->type, e->key);
    avro_schema_t field = avro_schema_record_field_get_by_index(e->avro, index);
    if (!is_avro_string(field))
        return cload_fail(cl, s, EVK_ERR_SCHEMA,
                          "events[%d].key: field \"%s\" of %s is not a string", cl->idx, e->key,
                          e->type);
    return EVK_OK;
}

/* avro-c's own JSON rendering, grown until it fits: it is what a registry is
 * given and what peers compare. */
static char *schema_json(avro_schema_t schema) {
    for (size_t size = 4096; size <= EVK_SCHEMA_JSON_MAX; size *= 2) {
        char *buf = malloc(size);
        if (!buf) return NULL;
        avro_writer_t w = avro_writer_memory(buf, (int64_t)size - 1);
        int rc = avro_schema_to_json(schema, w);
        int64_t used = avro_writer_tell(w);
        avro_writer_free(w);
        if (!rc) {
            buf[used] = '\0';
            return buf;
        }
        free(buf);
    }
    return NULL;
}

static evk_err_t parse_schema(const struct evk_cload *cl, evk_schema_t *e, const char *file,
                              const char *text, size_t len) {
    json_error_t jerr;
    if (avro_schema_from_json_length(text, len, &e->avro))
        return evk__fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s: %s", file,
                         avro_strerror());
    e->doc = json_loadb(text, len, 0, &jerr);
    if (!e->doc)
        return evk__fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s:%d: %s", file,
                         jerr.line, jerr.text);
    return EVK_OK;
}

static evk_err_t load_schema_file(const struct evk_cload *cl, evk_schema_t *e,
                                  const config_setting_t *entry, const char *file) {
    char *text = NULL;
    size_t len = 0;
    int rc = read_all(file, &text, &len);
    if (rc)
        return cload_fail(cl, config_setting_get_member(entry, "schema"), EVK_ERR_IO,
                          "events[%d].schema: %s: %s", cl->idx, file, strerror(rc));
    evk_err_t err = parse_schema(cl, e, file, text, len);
    free(text);
    if (!err) err = check_record(cl, e, file);
    if (!err) err = check_key(cl, e, entry);
    if (err) return err;
    if (!(e->json = schema_json(e->avro))) return nomem(cl);
    if (!(e->iface = avro_generic_class_from_schema(e->avro)))
        return evk__fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s: %s", file,
                         avro_strerror());
    return EVK_OK;
}

static evk_err_t load_schema(const struct evk_cload *cl, evk_schema_t *e,
                             const config_setting_t *entry) {
    char *schema = NULL;
    evk_err_t err = get_text(cl, entry, "schema", 1, &schema);
    if (err) return err;
    char *file = path_in(cl->dir, schema);
    free(schema);
    if (!file) return nomem(cl);
    err = load_schema_file(cl, e, entry, file);
    free(file);
    return err;
}

/* Older versions of a type: "writers = ({ id = 14; schema = "v1/X.avsc"; })"
 * in its entry. Frames written with them are read through resolution. */

static evk_err_t writer_id_taken(const struct evk_cload *cl, const evk_catalog_t *cat,
                                 const config_setting_t *s, int32_t id) {
    for (size_t i = 0; i < cat->nwriters; i++)
        if (evk__writer_id(cat->writers[i]) == id)
            return cload_fail(cl, s, EVK_ERR_CONFIG, "duplicate id %d (also a writer of %s)",
                              (int)id, evk_schema_name(evk__writer_reader(cat->writers[i])));
    return EVK_OK;
}

static evk_err_t add_writer(evk_catalog_t *cat, evk__writer_t *w) {
    evk__writer_t **grown = realloc(cat->writers, (cat->nwriters + 1) * sizeof *grown);
    if (!grown) {
        evk__writer_destroy(w);
        return EVK_ERR_NOMEM;
    }
    cat->writers = grown;
    cat->writers[cat->nwriters++] = w;
    return EVK_OK;
}

/* A writer of type T must be a record named T: resolution matches by name. */
static evk_err_t parse_writer(const struct evk_cload *cl, const evk_schema_t *e,
                              const config_setting_t *s, const char *file, int32_t id,
                              evk__writer_t **out) {
    char *text = NULL, *full = NULL, reason[EVK_REASON_MAX];
    size_t len = 0;
    avro_schema_t schema = NULL;
    int rc = read_all(file, &text, &len);
    evk_err_t err = EVK_OK;
    if (rc)
        err = cload_fail(cl, s, EVK_ERR_IO, "%s: %s", file, strerror(rc));
    else if (avro_schema_from_json_length(text, len, &schema))
        err = cload_fail(cl, s, EVK_ERR_SCHEMA, "%s: %s", file, avro_strerror());
    else if (!is_avro_record(schema) || !(full = schema_full_name(schema)) ||
             strcmp(full, e->type))
        err =
            cload_fail(cl, s, EVK_ERR_SCHEMA, "%s: expected a record named %s", file, e->type);
    else if (evk__writer_new(e, id, schema, out, reason, sizeof reason))
        err = cload_fail(cl, s, EVK_ERR_SCHEMA, "%s: %s", file, reason);
    free(text);
    free(full);
    if (schema) avro_schema_decref(schema);
    return err;
}

static evk_err_t load_writer(const struct evk_cload *cl, evk_catalog_t *cat,
                             const config_setting_t *ws, int j) {
    const evk_schema_t *e = &cat->v[cl->idx];
    const char *schema = NULL;
    char at[64];
    int32_t id = 0;
    snprintf(at, sizeof at, "events[%d].writers[%d]", cl->idx, j);
    if (!config_setting_is_group(ws))
        return cload_fail(cl, ws, EVK_ERR_CONFIG, "%s: expected a group", at);
    evk_err_t err = get_id(cl, ws, at, &id);
    if (!err && evk_catalog_by_id(cat, id))
        err = cload_fail(cl, ws, EVK_ERR_CONFIG, "%s.id: duplicate id %d (also %s)", at,
                         (int)id, evk_schema_name(evk_catalog_by_id(cat, id)));
    if (!err) err = writer_id_taken(cl, cat, ws, id);
    if (!err && !config_setting_lookup_string(ws, "schema", &schema))
        err = cload_fail(cl, ws, EVK_ERR_CONFIG, "%s.schema: missing", at);
    char *file = err ? NULL : path_in(cl->dir, schema);
    evk__writer_t *w = NULL;
    if (!err && !file) err = nomem(cl);
    if (!err) err = parse_writer(cl, e, ws, file, id, &w);
    free(file);
    if (!err && add_writer(cat, w)) err = nomem(cl);
    return err;
}

static evk_err_t load_writers(const struct evk_cload *cl, evk_catalog_t *cat,
                              const config_setting_t *entry) {
    const config_setting_t *list = config_setting_get_member(entry, "writers");
    if (!list) return EVK_OK;
    if (!config_setting_is_list(list))
        return cload_fail(cl, list, EVK_ERR_CONFIG, "events[%d].writers: expected a list",
                          cl->idx);
    for (int j = 0; j < config_setting_length(list); j++) {
        evk_err_t err = load_writer(cl, cat, config_setting_get_elem(list, j), j);
        if (err) return err;
    }
    return EVK_OK;
}

/* Entries. */

static evk_err_t load_entry(const struct evk_cload *cl, evk_catalog_t *cat,
                            const config_setting_t *entry) {
    evk_schema_t *e = &cat->v[cl->idx];
    evk_err_t err;
    char at[32];
    snprintf(at, sizeof at, "events[%d]", cl->idx);
    if (!config_setting_is_group(entry))
        return cload_fail(cl, entry, EVK_ERR_CONFIG, "events[%d]: expected a group", cl->idx);
    if ((err = check_fields(cl, entry)) || (err = get_text(cl, entry, "type", 1, &e->type)) ||
        (err = get_text(cl, entry, "topic", 1, &e->topic)) ||
        (err = get_id(cl, entry, at, &e->id)) ||
        (err = get_text(cl, entry, "key", 0, &e->key)) ||
        (err = get_changelog(cl, entry, &e->changelog)))
        return err;
    const char *dot = strrchr(e->type, '.');
    e->name = dot ? dot + 1 : e->type;
    if ((err = check_unique(cl, cat, entry)) || (err = load_schema(cl, e, entry))) return err;
    return load_writers(cl, cat, entry);
}

static evk_err_t load_events(struct evk_cload *cl, evk_catalog_t *cat,
                             const config_setting_t *root) {
    const config_setting_t *events = config_setting_get_member(root, "events");
    if (!events)
        return evk__fail(EVK_ERR_CONFIG, cl->errstr, cl->errstr_size, "%s: events: missing",
                         cl->cat_path);
    if (!config_setting_is_list(events) && !config_setting_is_array(events))
        return cload_fail(cl, events, EVK_ERR_CONFIG, "events: expected a list");
    size_t n = (size_t)config_setting_length(events);
    if (n && !(cat->v = calloc(n, sizeof(*cat->v)))) return nomem(cl);
    cat->n = n;
    for (cl->idx = 0; cl->idx < (int)cat->n; cl->idx++) {
        evk_err_t err = load_entry(cl, cat, config_setting_get_elem(events, cl->idx));
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t parse_catalog(struct evk_cload *cl, evk_catalog_t *cat) {
    config_t lc;
    evk_err_t err;
    config_init(&lc);
    if (!config_read_file(&lc, cl->cat_path))
        err = evk__fail(EVK_ERR_CONFIG, cl->errstr, cl->errstr_size, "%s:%d: %s", cl->cat_path,
                        config_error_line(&lc), config_error_text(&lc));
    else
        err = load_events(cl, cat, config_root_setting(&lc));
    config_destroy(&lc);
    return err;
}

evk_err_t evk_catalog_load(const char *dir, evk_catalog_t **out, char *errstr,
                           size_t errstr_size) {
    if (!dir || !out)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    *out = NULL;
    struct evk_cload cl = {.dir = dir, .errstr = errstr, .errstr_size = errstr_size};
    evk_catalog_t *cat = calloc(1, sizeof(*cat));
    if (cat) pthread_mutex_init(&cat->lock, NULL);
    if (!cat || !(cl.cat_path = path_in(dir, "catalog.cfg"))) {
        evk_catalog_destroy(cat);
        return nomem(&cl);
    }
    /* libconfig reports a missing file as "file I/O error"; errno is better. */
    FILE *fp = fopen(cl.cat_path, "r");
    evk_err_t err =
        fp ? EVK_OK
           : evk__fail(EVK_ERR_IO, errstr, errstr_size, "%s: %s", cl.cat_path, strerror(errno));
    if (fp) fclose(fp);
    if (!err) err = parse_catalog(&cl, cat);
    free(cl.cat_path);
    if (err) {
        evk_catalog_destroy(cat);
        return err;
    }
    *out = cat;
    return EVK_OK;
}

static void schema_clear(evk_schema_t *e) {
    free(e->type);
    free(e->topic);
    free(e->key);
    free(e->json);
    if (e->iface) avro_value_iface_decref(e->iface);
    if (e->avro) avro_schema_decref(e->avro);
    json_decref(e->doc);
}

static void drop_writers(evk_catalog_t *cat) {
    for (size_t i = 0; i < cat->nwriters; i++)
        evk__writer_destroy(cat->writers[i]);
    free(cat->writers);
    cat->writers = NULL;
    cat->nwriters = 0;
}

void evk_catalog_destroy(evk_catalog_t *cat) {
    if (!cat) return;
    drop_writers(cat);
    evk_registry_destroy(cat->reg);
    for (size_t i = 0; i < cat->n; i++)
        schema_clear(&cat->v[i]);
    free(cat->v);
    pthread_mutex_destroy(&cat->lock);
    free(cat);
}

size_t evk_catalog_count(const evk_catalog_t *cat) {
    return cat ? cat->n : 0;
}

const evk_schema_t *evk_catalog_at(const evk_catalog_t *cat, size_t i) {
    return cat && i < cat->n ? &cat->v[i] : NULL;
}

/* A dotted name is a full type, anything else a short name. */
const evk_schema_t *evk_catalog_find(const evk_catalog_t *cat, const char *type) {
    if (!cat || !type) return NULL;
    int full = strchr(type, '.') != NULL;
    for (size_t i = 0; i < cat->n; i++)
        if (!strcmp(full ? cat->v[i].type : cat->v[i].name, type)) return &cat->v[i];
    return NULL;
}

const evk_schema_t *evk_catalog_by_id(const evk_catalog_t *cat, int32_t id) {
    for (size_t i = 0; cat && i < cat->n; i++)
        if (cat->v[i].id == id) return &cat->v[i];
    return NULL;
}

const char *evk_schema_type(const evk_schema_t *s) {
    return s->type;
}

const char *evk_schema_name(const evk_schema_t *s) {
    return s->name;
}

const char *evk_schema_topic(const evk_schema_t *s) {
    return s->topic;
}

const char *evk_schema_key_field(const evk_schema_t *s) {
    return s->key;
}

int evk_schema_changelog(const evk_schema_t *s) {
    return s->changelog;
}

int32_t evk_schema_id(const evk_schema_t *s) {
    return s->id;
}

avro_schema_t evk_schema_avro(const evk_schema_t *s) {
    return s->avro;
}

const char *evk_schema_json(const evk_schema_t *s) {
    return s->json;
}

avro_value_iface_t *evk__schema_iface(const evk_schema_t *s) {
    return s->iface;
}

const json_t *evk__schema_doc(const evk_schema_t *s) {
    return s->doc;
}

/* ---- writers by id, and the registry ---- */

static const evk__writer_t *find_writer(const evk_catalog_t *cat, int32_t id) {
    for (size_t i = 0; i < cat->nwriters; i++)
        if (evk__writer_id(cat->writers[i]) == id) return cat->writers[i];
    return NULL;
}

/* The registry's schema for @p id, matched to the catalog entry of the same
 * type name, which is the version this program reads. */
static evk_err_t fetch_writer(evk_catalog_t *cat, int32_t id, const evk__writer_t **out,
                              char *errstr, size_t errstr_size) {
    const char *json;
    avro_schema_t schema = NULL;
    evk__writer_t *w = NULL;
    evk_err_t err = evk_registry_schema(cat->reg, id, &json, errstr, errstr_size);
    if (err) return err;
    if (avro_schema_from_json_length(json, strlen(json), &schema))
        return evk__fail(EVK_ERR_UNKNOWN_SCHEMA_ID, errstr, errstr_size,
                         "schema id %d from the registry does not parse: %s", (int)id,
                         avro_strerror());
    char *full = is_avro_record(schema) ? schema_full_name(schema) : NULL;
    const evk_schema_t *reader = full ? evk_catalog_find(cat, full) : NULL;
    if (!reader)
        err = evk__fail(EVK_ERR_UNKNOWN_SCHEMA_ID, errstr, errstr_size,
                        "schema id %d is %s, which is not in the catalog", (int)id,
                        full ? full : "not a record");
    if (!err) err = evk__writer_new(reader, id, schema, &w, errstr, errstr_size);
    if (!err && add_writer(cat, w))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!err) *out = w;
    free(full);
    avro_schema_decref(schema);
    return err;
}

evk_err_t evk__catalog_writer(const evk_catalog_t *cat, int32_t id, const evk_schema_t **reader,
                              const evk__writer_t **writer, char *errstr, size_t errstr_size) {
    *writer = NULL;
    if ((*reader = evk_catalog_by_id(cat, id))) return EVK_OK;
    /* The catalog was allocated mutable; only its writer list changes here. */
    evk_catalog_t *mut = (evk_catalog_t *)cat;
    evk_err_t err = EVK_OK;
    pthread_mutex_lock(&mut->lock);
    *writer = find_writer(cat, id);
    if (!*writer && cat->reg) err = fetch_writer(mut, id, writer, errstr, errstr_size);
    pthread_mutex_unlock(&mut->lock);
    if (!err && !*writer)
        err = evk__fail(EVK_ERR_UNKNOWN_SCHEMA_ID, errstr, errstr_size,
                        "schema id %d is not in the catalog", (int)id);
    if (!err) *reader = evk__writer_reader(*writer);
    return err;
}

static evk_err_t registry_id(evk_catalog_t *cat, evk_schema_t *e, char *errstr,
                             size_t errstr_size) {
    char subject[512], reason[EVK_REASON_MAX];
    if (evk_registry_subject(cat->reg, e, subject, sizeof subject))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size, "%s: subject name too long",
                         e->name);
    evk_err_t err =
        evk__registry_auto_register(cat->reg)
            ? evk_registry_register(cat->reg, subject, e->json, &e->id, reason, sizeof reason)
            : evk_registry_lookup(cat->reg, subject, e->json, &e->id, reason, sizeof reason);
    return err ? evk__fail(err, errstr, errstr_size, "%s (%s): %s", e->name, subject, reason)
               : EVK_OK;
}

/* A registry gives each schema an id of its own (one schema text keeps its
 * id across subjects). One that gives two schemas the same id would have
 * readers decode one type's frames as the other's: it is refused. */
static evk_err_t check_unique_ids(const evk_catalog_t *cat, char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < cat->n; i++)
        for (size_t j = i + 1; j < cat->n; j++)
            if (cat->v[i].id == cat->v[j].id && strcmp(cat->v[i].json, cat->v[j].json))
                return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                                 "the schema registry gave %s and %s the same id %d: ids must "
                                 "be unique per schema (is schema_registry.url a Confluent "
                                 "Schema Registry?)",
                                 cat->v[i].type, cat->v[j].type, (int)cat->v[i].id);
    return EVK_OK;
}

evk_err_t evk_catalog_use_registry(evk_catalog_t *cat, evk_registry_t *reg, char *errstr,
                                   size_t errstr_size) {
    if (!cat || !reg) {
        evk_registry_destroy(reg);
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    }
    pthread_mutex_lock(&cat->lock);
    drop_writers(cat);
    evk_registry_destroy(cat->reg);
    cat->reg = reg;
    evk_err_t err = EVK_OK;
    for (size_t i = 0; i < cat->n && !err; i++)
        err = registry_id(cat, &cat->v[i], errstr, errstr_size);
    if (!err) err = check_unique_ids(cat, errstr, errstr_size);
    pthread_mutex_unlock(&cat->lock);
    return err;
}
