#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libconfig.h>

#include "evkit/schema.h"
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
    avro_schema_t avro;
    char *json;
    avro_value_iface_t *iface;
    json_t *doc;
};

struct evk_catalog_s {
    evk_schema_t *v;
    size_t n;
};

/* State of one catalog load, so that every error can name its place. */
struct evk_cload {
    const char *dir;
    char *cat_path;
    int idx; /* entry being loaded */
    char *errstr;
    size_t errstr_size;
};

static const char *const evk_entry_fields[] = {"type", "topic", "schema", "id", "key"};

/* "<catalog>:<line>: <reason>" for the setting @p s. */
static evk_err_t __attribute__((format(printf, 4, 5)))
cload_fail(const struct evk_cload *cl, const config_setting_t *s, evk_err_t err,
           const char *fmt, ...) {
    char reason[EVK_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return evk_fail(err, cl->errstr, cl->errstr_size, "%s:%u: %s", cl->cat_path,
                    config_setting_source_line(s), reason);
}

static evk_err_t nomem(const struct evk_cload *cl) {
    return evk_fail(EVK_ERR_NOMEM, cl->errstr, cl->errstr_size, "out of memory");
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

static evk_err_t get_id(const struct evk_cload *cl, const config_setting_t *entry,
                        int32_t *out) {
    const config_setting_t *s = config_setting_get_member(entry, "id");
    if (!s) return cload_fail(cl, entry, EVK_ERR_CONFIG, "events[%d].id: missing", cl->idx);
    int type = config_setting_type(s);
    long long id = type == CONFIG_TYPE_INT     ? config_setting_get_int(s)
                   : type == CONFIG_TYPE_INT64 ? config_setting_get_int64(s)
                                               : 0;
    /* Confluent schema ids are positive 32-bit integers. */
    if (id <= 0 || id > INT32_MAX)
        return cload_fail(cl, s, EVK_ERR_CONFIG, "events[%d].id: expected a positive integer",
                          cl->idx);
    *out = (int32_t)id;
    return EVK_OK;
}

/* Type, short name and id must each name one entry, or lookups would be
 * ambiguous. */
static evk_err_t check_unique(const struct evk_cload *cl, const evk_catalog_t *cat,
                              const config_setting_t *entry) {
    const evk_schema_t *e = &cat->v[cl->idx];
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
        return evk_fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size,
                        "%s: expected a record schema", file);
    char *full = schema_full_name(e->avro);
    if (!full) return nomem(cl);
    evk_err_t err = EVK_OK;
    if (strcmp(full, e->type))
        err =
            evk_fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size,
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
        return evk_fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s: %s", file,
                        avro_strerror());
    e->doc = json_loadb(text, len, 0, &jerr);
    if (!e->doc)
        return evk_fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s:%d: %s", file,
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
        return evk_fail(EVK_ERR_SCHEMA, cl->errstr, cl->errstr_size, "%s: %s", file,
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

/* Entries. */

static evk_err_t load_entry(const struct evk_cload *cl, evk_catalog_t *cat,
                            const config_setting_t *entry) {
    evk_schema_t *e = &cat->v[cl->idx];
    evk_err_t err;
    if (!config_setting_is_group(entry))
        return cload_fail(cl, entry, EVK_ERR_CONFIG, "events[%d]: expected a group", cl->idx);
    if ((err = check_fields(cl, entry)) || (err = get_text(cl, entry, "type", 1, &e->type)) ||
        (err = get_text(cl, entry, "topic", 1, &e->topic)) ||
        (err = get_id(cl, entry, &e->id)) || (err = get_text(cl, entry, "key", 0, &e->key)))
        return err;
    const char *dot = strrchr(e->type, '.');
    e->name = dot ? dot + 1 : e->type;
    if ((err = check_unique(cl, cat, entry))) return err;
    return load_schema(cl, e, entry);
}

static evk_err_t load_events(struct evk_cload *cl, evk_catalog_t *cat,
                             const config_setting_t *root) {
    const config_setting_t *events = config_setting_get_member(root, "events");
    if (!events)
        return evk_fail(EVK_ERR_CONFIG, cl->errstr, cl->errstr_size, "%s: events: missing",
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
        err = evk_fail(EVK_ERR_CONFIG, cl->errstr, cl->errstr_size, "%s:%d: %s", cl->cat_path,
                       config_error_line(&lc), config_error_text(&lc));
    else
        err = load_events(cl, cat, config_root_setting(&lc));
    config_destroy(&lc);
    return err;
}

evk_err_t evk_catalog_load(const char *dir, evk_catalog_t **out, char *errstr,
                           size_t errstr_size) {
    if (!dir || !out)
        return evk_fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "NULL argument");
    *out = NULL;
    struct evk_cload cl = {.dir = dir, .errstr = errstr, .errstr_size = errstr_size};
    evk_catalog_t *cat = calloc(1, sizeof(*cat));
    if (!cat || !(cl.cat_path = path_in(dir, "catalog.cfg"))) {
        free(cat);
        return nomem(&cl);
    }
    /* libconfig reports a missing file as "file I/O error"; errno is better. */
    FILE *fp = fopen(cl.cat_path, "r");
    evk_err_t err =
        fp ? EVK_OK
           : evk_fail(EVK_ERR_IO, errstr, errstr_size, "%s: %s", cl.cat_path, strerror(errno));
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

void evk_catalog_destroy(evk_catalog_t *cat) {
    if (!cat) return;
    for (size_t i = 0; i < cat->n; i++)
        schema_clear(&cat->v[i]);
    free(cat->v);
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

int32_t evk_schema_id(const evk_schema_t *s) {
    return s->id;
}

avro_schema_t evk_schema_avro(const evk_schema_t *s) {
    return s->avro;
}

const char *evk_schema_json(const evk_schema_t *s) {
    return s->json;
}

avro_value_iface_t *evk_schema_iface(const evk_schema_t *s) {
    return s->iface;
}

const json_t *evk_schema_doc(const evk_schema_t *s) {
    return s->doc;
}
