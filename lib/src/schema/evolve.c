/* Schema evolution: reading a frame written with another version of a type
 * (the writer schema) into the catalog's version (the reader schema), by the
 * Avro specification's resolution rules.
 *
 * avro-c's resolved writers would do the conversion, but they refuse any
 * reader field the writer lacks, default or not (avro-c 1.11: "Reader field
 * x doesn't appear in writer"), which is the most common evolution of all.
 * So the frame is read with the writer's own schema and copied into a reader
 * value that starts out holding the reader's defaults. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"

/* Recursive schemas are checked this deep; the copy re-checks what it meets. */
#define EVOLVE_MAX_DEPTH 32

struct evk__writer_s {
    int32_t id;
    const evk_schema_t *reader;
    avro_schema_t schema;
    avro_value_iface_t *iface;
};

typedef struct {
    const json_t *doc; /* the reader's .avsc, for defaults */
    int depth;
    char path[256];
    size_t plen;
    char *errstr;
    size_t errstr_size;
} walk_t;

static avro_schema_t deref(avro_schema_t s) {
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static size_t path_push(walk_t *w, const char *name) {
    size_t saved = w->plen;
    int n =
        snprintf(w->path + w->plen, sizeof w->path - w->plen, "%s%s", w->plen ? "." : "", name);
    if (n > 0) w->plen += (size_t)n < sizeof w->path - w->plen ? (size_t)n : 0;
    return saved;
}

static void path_pop(walk_t *w, size_t saved) {
    w->plen = saved;
    w->path[saved] = '\0';
}

static evk_err_t __attribute__((format(printf, 2, 3)))
walk_fail(walk_t *w, const char *fmt, ...) {
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return evk__fail(EVK_ERR_SCHEMA, w->errstr, w->errstr_size, "%s: %s",
                     w->plen ? w->path : "(record)", reason);
}

/* ---- compatibility of two schemas ---- */

/* Avro's promotions: the reader may widen what the writer wrote. */
static int promotable(avro_type_t w, avro_type_t r) {
    switch (w) {
    case AVRO_INT32:
        return r == AVRO_INT32 || r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_INT64:
        return r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_FLOAT:
        return r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_STRING:
    case AVRO_BYTES:
        return r == AVRO_STRING || r == AVRO_BYTES;
    default:
        return w == r;
    }
}

/* The spec's "match", which picks a reader union branch: same kind (or a
 * promotion) and, for named types, the same unqualified name. */
static int matches(avro_schema_t w, avro_schema_t r) {
    w = deref(w);
    r = deref(r);
    if (!promotable(avro_typeof(w), avro_typeof(r))) return 0;
    return !is_avro_named_type(w) || !strcmp(avro_schema_name(w), avro_schema_name(r));
}

static int union_branch_for(avro_schema_t w, avro_schema_t r) {
    size_t n = avro_schema_union_size(r);
    for (size_t i = 0; i < n; i++)
        if (matches(w, avro_schema_union_branch(r, (int)i))) return (int)i;
    return -1;
}

static evk_err_t check(walk_t *w, avro_schema_t ws, avro_schema_t rs);

static evk_err_t check_record(walk_t *w, avro_schema_t ws, avro_schema_t rs) {
    size_t n = avro_schema_record_size(rs);
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(rs, (int)i);
        int wi = avro_schema_record_field_get_index(ws, name);
        size_t saved = path_push(w, name);
        evk_err_t err = EVK_OK;
        if (wi < 0 && !evk__field_default(w->doc, rs, i))
            err = walk_fail(w, "not in the writer's schema and has no default");
        else if (wi >= 0)
            err = check(w, avro_schema_record_field_get_by_index(ws, wi),
                        avro_schema_record_field_get_by_index(rs, (int)i));
        if (err) return err;
        path_pop(w, saved);
    }
    return EVK_OK;
}

static evk_err_t check_enum(walk_t *w, avro_schema_t ws, avro_schema_t rs) {
    int n = avro_schema_enum_number_of_symbols(ws);
    for (int i = 0; i < n; i++) {
        const char *sym = avro_schema_enum_get(ws, i);
        if (avro_schema_enum_get_by_name(rs, sym) < 0)
            return walk_fail(w, "writer's symbol %s is not in the reader's enum %s", sym,
                             avro_schema_name(rs));
    }
    return EVK_OK;
}

static evk_err_t check_same_kind(walk_t *w, avro_schema_t ws, avro_schema_t rs) {
    switch (avro_typeof(rs)) {
    case AVRO_RECORD:
        return check_record(w, ws, rs);
    case AVRO_ENUM:
        return check_enum(w, ws, rs);
    case AVRO_FIXED:
        return avro_schema_fixed_size(ws) == avro_schema_fixed_size(rs)
                   ? EVK_OK
                   : walk_fail(w, "fixed %s changed size", avro_schema_name(rs));
    case AVRO_ARRAY:
        return check(w, avro_schema_array_items(ws), avro_schema_array_items(rs));
    case AVRO_MAP:
        return check(w, avro_schema_map_values(ws), avro_schema_map_values(rs));
    default:
        return EVK_OK;
    }
}

/* Strict where the spec decides per value: a writer union is compatible only
 * if every branch is, as Confluent's compatibility check has it, so that a
 * frame cannot fail halfway through a topic. */
static evk_err_t check_typed(walk_t *w, avro_schema_t ws, avro_schema_t rs) {
    if (is_avro_union(ws)) {
        size_t n = avro_schema_union_size(ws);
        evk_err_t err = EVK_OK;
        for (size_t i = 0; i < n && !err; i++)
            err = check(w, avro_schema_union_branch(ws, (int)i), rs);
        return err;
    }
    if (is_avro_union(rs)) {
        int b = union_branch_for(ws, rs);
        return b < 0 ? walk_fail(w, "writer's type %s is in none of the reader's union",
                                 avro_schema_type_name(ws))
                     : check(w, ws, avro_schema_union_branch(rs, b));
    }
    if (!matches(ws, rs))
        return walk_fail(w, "writer's type %s cannot be read as %s", avro_schema_type_name(ws),
                         avro_schema_type_name(rs));
    return check_same_kind(w, ws, rs);
}

static evk_err_t check(walk_t *w, avro_schema_t ws, avro_schema_t rs) {
    if (w->depth >= EVOLVE_MAX_DEPTH) return EVK_OK;
    w->depth++;
    evk_err_t err = check_typed(w, deref(ws), deref(rs));
    w->depth--;
    return err;
}

/* ---- writers ---- */

evk_err_t evk__writer_new(const evk_schema_t *reader, int32_t id, avro_schema_t schema,
                          evk__writer_t **out, char *errstr, size_t errstr_size) {
    char reason[512];
    walk_t w = {.doc = evk__schema_doc(reader), .errstr = reason, .errstr_size = sizeof reason};
    *out = NULL;
    if (check(&w, schema, evk_schema_avro(reader)))
        return evk__fail(EVK_ERR_SCHEMA, errstr, errstr_size,
                         "%s: schema id %d cannot be read as the catalog's version: %s",
                         evk_schema_name(reader), (int)id, reason);
    evk__writer_t *wr = calloc(1, sizeof *wr);
    if (!wr) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    *wr = (evk__writer_t){.id = id, .reader = reader, .schema = avro_schema_incref(schema)};
    if (!(wr->iface = avro_generic_class_from_schema(schema))) {
        evk__writer_destroy(wr);
        return evk__fail(EVK_ERR_SCHEMA, errstr, errstr_size, "%s: schema id %d: %s",
                         evk_schema_name(reader), (int)id, avro_strerror());
    }
    *out = wr;
    return EVK_OK;
}

void evk__writer_destroy(evk__writer_t *w) {
    if (!w) return;
    if (w->iface) avro_value_iface_decref(w->iface);
    avro_schema_decref(w->schema);
    free(w);
}

int32_t evk__writer_id(const evk__writer_t *w) {
    return w->id;
}

const evk_schema_t *evk__writer_reader(const evk__writer_t *w) {
    return w->reader;
}

avro_schema_t evk__writer_schema(const evk__writer_t *w) {
    return w->schema;
}

/* ---- copying a writer value into a reader value ---- */

static evk_err_t copy(walk_t *w, avro_value_t *wv, avro_value_t *rv);

static evk_err_t nomem(walk_t *w) {
    return evk__fail(EVK_ERR_NOMEM, w->errstr, w->errstr_size, "out of memory");
}

/* A fresh reader slot takes its defaults first, for the fields the writer
 * does not have. */
static evk_err_t copy_fresh(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    evk_err_t err = evk__value_init(w->doc, rv);
    return err ? nomem(w) : copy(w, wv, rv);
}

static evk_err_t copy_record(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    avro_schema_t ws = avro_value_get_schema(wv), rs = avro_value_get_schema(rv);
    size_t n = avro_schema_record_size(rs);
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(rs, (int)i);
        avro_value_t wc, rc;
        int wi = avro_schema_record_field_get_index(ws, name);
        if (wi < 0) continue; /* keeps the default it was initialised with */
        if (avro_value_get_by_index(wv, (size_t)wi, &wc, NULL) ||
            avro_value_get_by_index(rv, i, &rc, NULL))
            return nomem(w);
        size_t saved = path_push(w, name);
        evk_err_t err = copy(w, &wc, &rc);
        if (err) return err;
        path_pop(w, saved);
    }
    return EVK_OK;
}

static evk_err_t copy_array(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    size_t n;
    if (avro_value_get_size(wv, &n)) return nomem(w);
    for (size_t i = 0; i < n; i++) {
        avro_value_t wc, rc;
        if (avro_value_get_by_index(wv, i, &wc, NULL) || avro_value_append(rv, &rc, NULL))
            return nomem(w);
        evk_err_t err = copy_fresh(w, &wc, &rc);
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t copy_map(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    size_t n;
    if (avro_value_get_size(wv, &n)) return nomem(w);
    for (size_t i = 0; i < n; i++) {
        avro_value_t wc, rc;
        const char *key;
        if (avro_value_get_by_index(wv, i, &wc, &key) ||
            avro_value_add(rv, key, &rc, NULL, NULL))
            return nomem(w);
        evk_err_t err = copy_fresh(w, &wc, &rc);
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t copy_enum(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    int sym;
    if (avro_value_get_enum(wv, &sym)) return nomem(w);
    const char *name = avro_schema_enum_get(avro_value_get_schema(wv), sym);
    int r = avro_schema_enum_get_by_name(avro_value_get_schema(rv), name);
    if (r < 0) return walk_fail(w, "symbol %s is not in the reader's enum", name);
    return avro_value_set_enum(rv, r) ? nomem(w) : EVK_OK;
}

static evk_err_t copy_into_union(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    avro_value_t rc;
    int b = union_branch_for(avro_value_get_schema(wv), avro_value_get_schema(rv));
    if (b < 0)
        return walk_fail(w, "writer's type %s is in none of the reader's union",
                         avro_schema_type_name(avro_value_get_schema(wv)));
    if (avro_value_set_branch(rv, b, &rc)) return nomem(w);
    return copy_fresh(w, wv, &rc);
}

static evk_err_t copy_number(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    int32_t i32 = 0;
    int64_t i64 = 0;
    float f = 0;
    double d = 0;
    int rc;
    switch (avro_value_get_type(wv)) {
    case AVRO_INT32:
        rc = avro_value_get_int(wv, &i32);
        i64 = i32, d = i32;
        break;
    case AVRO_INT64:
        rc = avro_value_get_long(wv, &i64);
        d = (double)i64;
        break;
    case AVRO_FLOAT:
        rc = avro_value_get_float(wv, &f);
        d = f;
        break;
    default:
        rc = avro_value_get_double(wv, &d);
    }
    switch (avro_value_get_type(rv)) {
    case AVRO_INT32: /* only ever from an int */
        rc = rc || avro_value_set_int(rv, i32);
        break;
    case AVRO_INT64:
        rc = rc || avro_value_set_long(rv, i64);
        break;
    case AVRO_FLOAT:
        rc = rc || avro_value_set_float(rv, (float)d);
        break;
    default:
        rc = rc || avro_value_set_double(rv, d);
    }
    return rc ? nomem(w) : EVK_OK;
}

/* string <-> bytes: the same bytes either way. avro-c counts a string's NUL
 * in its size, and bytes have none, so a string is copied out to add it. */
static evk_err_t copy_text(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    const void *buf;
    size_t size;
    int wstr = avro_value_get_type(wv) == AVRO_STRING;
    int rc = wstr ? avro_value_get_string(wv, (const char **)&buf, &size)
                  : avro_value_get_bytes(wv, &buf, &size);
    if (rc) return nomem(w);
    if (wstr && size) size--;
    if (avro_value_get_type(rv) == AVRO_BYTES)
        return avro_value_set_bytes(rv, (void *)buf, size) ? nomem(w) : EVK_OK;
    char *text = malloc(size + 1);
    if (!text) return nomem(w);
    memcpy(text, buf, size);
    text[size] = '\0';
    rc = avro_value_set_string_len(rv, text, size + 1);
    free(text);
    return rc ? nomem(w) : EVK_OK;
}

static evk_err_t copy_plain(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    switch (avro_value_get_type(rv)) {
    case AVRO_RECORD:
        return copy_record(w, wv, rv);
    case AVRO_ARRAY:
        return copy_array(w, wv, rv);
    case AVRO_MAP:
        return copy_map(w, wv, rv);
    case AVRO_ENUM:
        return copy_enum(w, wv, rv);
    case AVRO_STRING:
    case AVRO_BYTES:
        return copy_text(w, wv, rv);
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return copy_number(w, wv, rv);
    default: /* null, boolean, fixed: same kind on both sides */
        return avro_value_copy_fast(rv, wv) ? nomem(w) : EVK_OK;
    }
}

static evk_err_t copy(walk_t *w, avro_value_t *wv, avro_value_t *rv) {
    avro_value_t branch;
    if (avro_value_get_type(wv) == AVRO_UNION) {
        if (avro_value_get_current_branch(wv, &branch)) return nomem(w);
        return copy(w, &branch, rv);
    }
    if (avro_value_get_type(rv) == AVRO_UNION) return copy_into_union(w, wv, rv);
    if (!matches(avro_value_get_schema(wv), avro_value_get_schema(rv)))
        return walk_fail(w, "writer's type %s cannot be read as %s",
                         avro_schema_type_name(avro_value_get_schema(wv)),
                         avro_schema_type_name(avro_value_get_schema(rv)));
    return copy_plain(w, wv, rv);
}

static evk_err_t read_writer_value(const evk__writer_t *wr, const void *body, size_t len,
                                   avro_value_t *wv, char *errstr, size_t errstr_size) {
    avro_reader_t r = avro_reader_memory(body, (int64_t)len);
    if (!r) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    int rc = avro_value_read(r, wv);
    avro_reader_free(r);
    if (rc)
        return evk__fail(EVK_ERR_DECODE, errstr, errstr_size, "%s body (schema id %d): %s",
                         evk_schema_name(wr->reader), (int)wr->id, avro_strerror());
    return EVK_OK;
}

evk_err_t evk__writer_read(const evk__writer_t *wr, const void *body, size_t len,
                           avro_value_t *out, char *errstr, size_t errstr_size) {
    char reason[512];
    walk_t w = {
        .doc = evk__schema_doc(wr->reader), .errstr = reason, .errstr_size = sizeof reason};
    avro_value_t wv;
    if (avro_generic_value_new(wr->iface, &wv))
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    evk_err_t err = read_writer_value(wr, body, len, &wv, errstr, errstr_size);
    if (!err && (err = copy_fresh(&w, &wv, out))) {
        /* The check at evk__writer_new() leaves only values to fail here. */
        err = err == EVK_ERR_NOMEM ? err : EVK_ERR_DECODE;
        evk__fail(err, errstr, errstr_size, "%s (schema id %d): %s",
                  evk_schema_name(wr->reader), (int)wr->id, reason);
    }
    avro_value_decref(&wv);
    return err;
}
