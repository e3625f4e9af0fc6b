/* JSON <-> Avro: validating JSON into an event (with schema defaults), and
 * writing an event as compact JSON. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"

/* ---- UTF-8 ---- */

size_t evk__utf8_seq(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

int evk__utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = evk__utf8_seq(p, (size_t)(end - p));
        if (!k) return 0;
        p += k;
    }
    return 1;
}

/* ---- schema defaults from the .avsc document ----
 * avro-c parses defaults but does not expose them, so they are read from the
 * schema's JSON text, finding a record's definition by its full name. */

static avro_schema_t deref(avro_schema_t s) {
    while (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static const json_t *find_record(const json_t *node, const char *ns, const char *fullname);

static const char *str_or_empty(const json_t *j) {
    const char *s = json_string_value(j);
    return s ? s : "";
}

/* Full name of the named type @p obj, defined inside namespace @p ns, and
 * the namespace it passes on to what it encloses (its full name's prefix). */
static void type_name(const json_t *obj, const char *ns, char *full, size_t size, char *space) {
    const char *name = str_or_empty(json_object_get(obj, "name"));
    const char *attr = json_string_value(json_object_get(obj, "namespace"));
    const char *in = attr ? attr : ns;
    if (!strchr(name, '.') && in && *in)
        snprintf(full, size, "%s.%s", in, name);
    else
        snprintf(full, size, "%s", name);
    snprintf(space, size, "%s", full);
    char *dot = strrchr(space, '.');
    *(dot ? dot : space) = 0;
}

static const json_t *find_in_fields(const json_t *fields, const char *ns,
                                    const char *fullname) {
    size_t i;
    const json_t *f;
    json_array_foreach(fields, i, f) {
        const json_t *hit = find_record(json_object_get(f, "type"), ns, fullname);
        if (hit) return hit;
    }
    return NULL;
}

static const json_t *find_in_object(const json_t *node, const char *ns, const char *fullname) {
    const json_t *type = json_object_get(node, "type");
    const char *t = json_string_value(type);
    if (!t) return find_record(type, ns, fullname);
    if (!strcmp(t, "array")) return find_record(json_object_get(node, "items"), ns, fullname);
    if (!strcmp(t, "map")) return find_record(json_object_get(node, "values"), ns, fullname);
    if (strcmp(t, "record") && strcmp(t, "error")) return NULL;
    char name[512], space[512];
    type_name(node, ns, name, sizeof name, space);
    if (!strcmp(name, fullname)) return node;
    return find_in_fields(json_object_get(node, "fields"), space, fullname);
}

static const json_t *find_record(const json_t *node, const char *ns, const char *fullname) {
    if (json_is_object(node)) return find_in_object(node, ns, fullname);
    if (json_is_array(node)) {
        size_t i;
        const json_t *b;
        json_array_foreach(node, i, b) {
            const json_t *hit = find_record(b, ns, fullname);
            if (hit) return hit;
        }
    }
    return NULL;
}

/* The "fields" array of record schema @p s in @p doc, or NULL. */
static const json_t *record_fields(const json_t *doc, avro_schema_t s) {
    char fullname[512];
    const char *space = avro_schema_namespace(s);
    if (space && *space)
        snprintf(fullname, sizeof fullname, "%s.%s", space, avro_schema_name(s));
    else
        snprintf(fullname, sizeof fullname, "%s", avro_schema_name(s));
    return json_object_get(find_record(doc, NULL, fullname), "fields");
}

/* Default of field @p i of record @p s, whose definition's "fields" are
 * @p fields; NULL when it has none. */
static const json_t *field_default(const json_t *fields, avro_schema_t s, size_t i) {
    const char *name = avro_schema_record_field_name(s, (int)i);
    const json_t *f = json_array_get(fields, i);
    if (!f || strcmp(str_or_empty(json_object_get(f, "name")), name)) {
        size_t j;
        const json_t *g;
        f = NULL;
        json_array_foreach(fields, j, g) {
            if (!strcmp(str_or_empty(json_object_get(g, "name")), name)) f = g;
        }
    }
    return json_object_get(f, "default");
}

const json_t *evk__field_default(const json_t *doc, avro_schema_t s, size_t i) {
    return field_default(record_fields(doc, s), s, i);
}

/* ---- JSON -> Avro ---- */

typedef struct {
    const json_t *doc;
    int in_default; /* a default: unions take their first branch (Avro spec) */
    char path[256];
    size_t plen;
    char *errstr;
    size_t errstr_size;
} fill_t;

static evk_err_t fill_value(fill_t *fc, const json_t *in, avro_value_t *v);

static evk_err_t fill_fail(fill_t *fc, evk_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static evk_err_t fill_fail(fill_t *fc, evk_err_t err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err = evk__fail_at(err, fc->errstr, fc->errstr_size, "", fc->path, fmt, ap);
    va_end(ap);
    return err;
}

static evk_err_t nomem(fill_t *fc) {
    return evk__fail(EVK_ERR_NOMEM, fc->errstr, fc->errstr_size, "out of memory");
}

static size_t push(fill_t *fc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t push(fill_t *fc, const char *fmt, ...) {
    size_t saved = fc->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(fc->path + fc->plen, sizeof fc->path - fc->plen, fmt, ap);
    va_end(ap);
    if (n > 0) fc->plen += (size_t)n;
    if (fc->plen >= sizeof fc->path) fc->plen = sizeof fc->path - 1;
    return saved;
}

static size_t push_field(fill_t *fc, const char *name) {
    return fc->plen ? push(fc, ".%s", name) : push(fc, "%s", name);
}

static void pop(fill_t *fc, size_t saved) {
    fc->plen = saved;
    fc->path[saved] = 0;
}

static const char *json_kind(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* The name a JSON user knows an Avro type by. */
static const char *avro_kind(avro_schema_t s) {
    switch (avro_typeof(deref(s))) {
    case AVRO_NULL:
        return "null";
    case AVRO_BOOLEAN:
        return "boolean";
    case AVRO_INT32:
        return "int";
    case AVRO_INT64:
        return "long";
    case AVRO_FLOAT:
        return "float";
    case AVRO_DOUBLE:
        return "double";
    case AVRO_STRING:
    case AVRO_ENUM:
        return "string";
    case AVRO_BYTES:
    case AVRO_FIXED:
        return "bytes";
    case AVRO_ARRAY:
        return "array";
    default:
        return "object";
    }
}

static evk_err_t mismatch(fill_t *fc, const json_t *in, avro_value_t *v) {
    return fill_fail(fc, EVK_ERR_VALIDATION, "expected %s, got %s",
                     avro_kind(avro_value_get_schema(v)), json_kind(in));
}

static evk_err_t fill_int(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_integer(in)) return mismatch(fc, in, v);
    json_int_t i = json_integer_value(in);
    if (i < INT32_MIN || i > INT32_MAX)
        return fill_fail(fc, EVK_ERR_VALIDATION,
                         "%" JSON_INTEGER_FORMAT " out of range for int", i);
    return avro_value_set_int(v, (int32_t)i) ? nomem(fc) : EVK_OK;
}

/* The shortest text of FLT_MAX, "3.4028235e+38", reads back as a double a
 * little above FLT_MAX that still rounds to it, so the test is whether the
 * double rounds to a finite float, not whether it is at most FLT_MAX. The
 * first one that rounds to infinity is FLT_MAX plus half its last place,
 * 2^103 (a tie goes to the even neighbour, which is infinity). The cast is
 * done on a clamped value: converting one beyond the range is undefined. */
int evk__float_from_double(double d, float *out) {
    static const double limit = (double)FLT_MAX + 0x1p103;
    if (!(fabs(d) < limit)) return 0;
    *out = (float)(fabs(d) > FLT_MAX ? copysign(FLT_MAX, d) : d);
    return 1;
}

static evk_err_t fill_real(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_number(in)) return mismatch(fc, in, v);
    double d = json_number_value(in);
    if (avro_value_get_type(v) == AVRO_DOUBLE)
        return avro_value_set_double(v, d) ? nomem(fc) : EVK_OK;
    float f;
    if (!evk__float_from_double(d, &f))
        return fill_fail(fc, EVK_ERR_VALIDATION, "%g out of range for float", d);
    return avro_value_set_float(v, f) ? nomem(fc) : EVK_OK;
}

static evk_err_t fill_enum(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_string(in)) return mismatch(fc, in, v);
    avro_schema_t s = avro_value_get_schema(v);
    int sym = avro_schema_enum_get_by_name(s, json_string_value(in));
    if (sym >= 0) return avro_value_set_enum(v, sym) ? nomem(fc) : EVK_OK;
    char list[256] = "";
    size_t used = 0;
    int n = avro_schema_enum_number_of_symbols(s);
    for (int i = 0; i < n && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                         avro_schema_enum_get(s, i));
        used += w > 0 ? (size_t)w : 0;
    }
    return fill_fail(fc, EVK_ERR_VALIDATION, "\"%s\" is not one of %s", json_string_value(in),
                     list);
}

/* Avro's JSON form of bytes: a string whose code points U+0000..U+00FF are
 * the byte values. */
static evk_err_t latin1_decode(fill_t *fc, const json_t *in, unsigned char **out, size_t *len) {
    const unsigned char *s = (const unsigned char *)json_string_value(in);
    size_t n = json_string_length(in), k = 0;
    unsigned char *buf = malloc(n + 1);
    if (!buf) return nomem(fc);
    for (size_t i = 0; i < n; k++) {
        if (s[i] < 0x80) {
            buf[k] = s[i++];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n) {
            buf[k] = (unsigned char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i += 2;
        } else {
            free(buf);
            return fill_fail(fc, EVK_ERR_VALIDATION, "character above U+00FF in bytes");
        }
    }
    *out = buf;
    *len = k;
    return EVK_OK;
}

static evk_err_t fill_bytes(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_string(in)) return mismatch(fc, in, v);
    unsigned char *buf = NULL;
    size_t len = 0;
    evk_err_t err = latin1_decode(fc, in, &buf, &len);
    if (err) return err;
    int rc;
    if (avro_value_get_type(v) == AVRO_BYTES) {
        rc = avro_value_set_bytes(v, buf, len);
    } else {
        int64_t want = avro_schema_fixed_size(avro_value_get_schema(v));
        if ((int64_t)len != want) {
            free(buf);
            return fill_fail(fc, EVK_ERR_VALIDATION, "expected %" PRId64 " bytes, got %zu",
                             want, len);
        }
        rc = avro_value_set_fixed(v, buf, len);
    }
    free(buf);
    return rc ? nomem(fc) : EVK_OK;
}

static evk_err_t fill_array(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_array(in)) return mismatch(fc, in, v);
    if (avro_value_reset(v)) return nomem(fc);
    size_t i;
    const json_t *item;
    json_array_foreach(in, i, item) {
        avro_value_t child;
        if (avro_value_append(v, &child, NULL)) return nomem(fc);
        size_t saved = push(fc, "[%zu]", i);
        evk_err_t err = fill_value(fc, item, &child);
        pop(fc, saved);
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t fill_map(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_object(in)) return mismatch(fc, in, v);
    if (avro_value_reset(v)) return nomem(fc);
    const char *key;
    const json_t *item;
    json_object_foreach((json_t *)in, key, item) {
        avro_value_t child;
        if (avro_value_add(v, key, &child, NULL, NULL)) return nomem(fc);
        size_t saved = push_field(fc, key);
        evk_err_t err = fill_value(fc, item, &child);
        pop(fc, saved);
        if (err) return err;
    }
    return EVK_OK;
}

/* A field absent from the input: its default, else an error. */
static evk_err_t fill_missing(fill_t *fc, avro_schema_t s, size_t i, avro_value_t *child) {
    const json_t *def = field_default(record_fields(fc->doc, s), s, i);
    if (!def) return fill_fail(fc, EVK_ERR_VALIDATION, "missing required field");
    int was = fc->in_default;
    fc->in_default = 1;
    evk_err_t err = fill_value(fc, def, child);
    fc->in_default = was;
    return err;
}

static evk_err_t unknown_field(fill_t *fc, const json_t *in, avro_schema_t s) {
    const char *key;
    const json_t *item;
    json_object_foreach((json_t *)in, key, item) {
        if (avro_schema_record_field_get_index(s, key) < 0) {
            push_field(fc, key);
            return fill_fail(fc, EVK_ERR_VALIDATION, "unknown field");
        }
    }
    return EVK_OK;
}

static evk_err_t fill_record(fill_t *fc, const json_t *in, avro_value_t *v) {
    if (!json_is_object(in)) return mismatch(fc, in, v);
    avro_schema_t s = avro_value_get_schema(v);
    size_t n = avro_schema_record_size(s), present = 0;
    for (size_t i = 0; i < n; i++) {
        avro_value_t child;
        const char *name;
        if (avro_value_get_by_index(v, i, &child, &name)) return nomem(fc);
        const json_t *item = json_object_get(in, name);
        size_t saved = push_field(fc, name);
        evk_err_t err = item ? fill_value(fc, item, &child) : fill_missing(fc, s, i, &child);
        pop(fc, saved);
        if (err) return err;
        present += item != NULL;
    }
    return present < json_object_size(in) ? unknown_field(fc, in, s) : EVK_OK;
}

/* Whether @p in can be a value of @p s; with @p exact, also that its value
 * fits (int range, enum symbol), so that a union picks the branch that
 * takes it rather than the first of the right JSON kind. */
static int fits(const json_t *in, avro_schema_t s, int exact) {
    s = deref(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_is_null(in);
    case AVRO_BOOLEAN:
        return json_is_boolean(in);
    case AVRO_INT32:
        return json_is_integer(in) && (!exact || (json_integer_value(in) >= INT32_MIN &&
                                                  json_integer_value(in) <= INT32_MAX));
    case AVRO_INT64:
        return json_is_integer(in);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return json_is_number(in);
    case AVRO_ENUM:
        return json_is_string(in) &&
               (!exact || avro_schema_enum_get_by_name(s, json_string_value(in)) >= 0);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
        return json_is_string(in);
    case AVRO_ARRAY:
        return json_is_array(in);
    default:
        return json_is_object(in);
    }
}

static int pick_branch(const json_t *in, avro_schema_t us, int exact) {
    size_t n = avro_schema_union_size(us);
    for (size_t i = 0; i < n; i++)
        if (fits(in, avro_schema_union_branch(us, (int)i), exact)) return (int)i;
    return -1;
}

static evk_err_t union_mismatch(fill_t *fc, const json_t *in, avro_schema_t us) {
    char kinds[128] = "";
    size_t n = avro_schema_union_size(us), used = 0;
    for (size_t i = 0; i < n && used < sizeof kinds; i++) {
        const char *k = avro_kind(avro_schema_union_branch(us, (int)i));
        if (strstr(kinds, k)) continue;
        int w = snprintf(kinds + used, sizeof kinds - used, "%s%s", used ? " or " : "", k);
        used += w > 0 ? (size_t)w : 0;
    }
    return fill_fail(fc, EVK_ERR_VALIDATION, "expected %s, got %s", kinds, json_kind(in));
}

/* Unions take plain JSON values: null selects the null branch, anything
 * else the first branch it fits; if it only fits one loosely, that branch
 * reports the precise error (an int out of range, an unknown symbol). */
static evk_err_t fill_union(fill_t *fc, const json_t *in, avro_value_t *v) {
    avro_schema_t us = avro_value_get_schema(v);
    int b = fc->in_default ? 0 : pick_branch(in, us, 1);
    if (b < 0) b = pick_branch(in, us, 0);
    if (b < 0) return union_mismatch(fc, in, us);
    avro_value_t branch;
    if (avro_value_set_branch(v, b, &branch)) return nomem(fc);
    return fill_value(fc, in, &branch);
}

static evk_err_t fill_value(fill_t *fc, const json_t *in, avro_value_t *v) {
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return json_is_null(in) ? EVK_OK : mismatch(fc, in, v);
    case AVRO_BOOLEAN:
        if (!json_is_boolean(in)) return mismatch(fc, in, v);
        return avro_value_set_boolean(v, json_is_true(in)) ? nomem(fc) : EVK_OK;
    case AVRO_INT32:
        return fill_int(fc, in, v);
    case AVRO_INT64:
        if (!json_is_integer(in)) return mismatch(fc, in, v);
        return avro_value_set_long(v, json_integer_value(in)) ? nomem(fc) : EVK_OK;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return fill_real(fc, in, v);
    case AVRO_STRING:
        if (!json_is_string(in)) return mismatch(fc, in, v);
        return avro_value_set_string_len(v, json_string_value(in), json_string_length(in) + 1)
                   ? nomem(fc)
                   : EVK_OK;
    case AVRO_BYTES:
    case AVRO_FIXED:
        return fill_bytes(fc, in, v);
    case AVRO_ENUM:
        return fill_enum(fc, in, v);
    case AVRO_ARRAY:
        return fill_array(fc, in, v);
    case AVRO_MAP:
        return fill_map(fc, in, v);
    case AVRO_RECORD:
        return fill_record(fc, in, v);
    case AVRO_UNION:
        return fill_union(fc, in, v);
    default:
        return fill_fail(fc, EVK_ERR_VALIDATION, "unsupported schema type");
    }
}

evk_err_t evk__json_fill(const json_t *doc, const json_t *in, avro_value_t *v, char *errstr,
                         size_t errstr_size) {
    fill_t fc = {.doc = doc, .errstr = errstr, .errstr_size = errstr_size};
    return fill_value(&fc, in, v);
}

evk_err_t evk__json_fill_default(const json_t *doc, const json_t *def, avro_value_t *v,
                                 char *errstr, size_t errstr_size) {
    fill_t fc = {.doc = doc, .in_default = 1, .errstr = errstr, .errstr_size = errstr_size};
    return fill_value(&fc, def, v);
}

/* ---- defaults and zero values ---- */

static evk_err_t init_value(const json_t *doc, avro_value_t *v);

static evk_err_t init_field(const json_t *doc, const json_t *fields, avro_schema_t s, size_t i,
                            avro_value_t *child) {
    const json_t *def = field_default(fields, s, i);
    if (def) {
        fill_t fc = {.doc = doc, .in_default = 1};
        evk_err_t err = fill_value(&fc, def, child);
        /* A default that does not match its field is a schema bug; the zero
         * value keeps the event encodable. */
        if (err != EVK_ERR_VALIDATION) return err;
    }
    return init_value(doc, child);
}

static evk_err_t init_value(const json_t *doc, avro_value_t *v) {
    avro_value_t child;
    switch (avro_value_get_type(v)) {
    case AVRO_RECORD: {
        avro_schema_t s = avro_value_get_schema(v);
        const json_t *fields = record_fields(doc, s);
        size_t n = avro_schema_record_size(s);
        for (size_t i = 0; i < n; i++) {
            if (avro_value_get_by_index(v, i, &child, NULL)) return EVK_ERR_NOMEM;
            evk_err_t err = init_field(doc, fields, s, i, &child);
            if (err) return err;
        }
        return EVK_OK;
    }
    case AVRO_UNION:
        if (avro_value_set_branch(v, 0, &child)) return EVK_ERR_NOMEM;
        return init_value(doc, &child);
    default:
        return avro_value_reset(v) ? EVK_ERR_NOMEM : EVK_OK;
    }
}

evk_err_t evk__value_init(const json_t *doc, avro_value_t *v) {
    return init_value(doc, v);
}

/* ---- keys ---- */

/* The control character (Unicode Cc: U+0000-U+001F, U+007F-U+009F) that
 * starts at s[i], or -1. Only U+0080-U+009F take two bytes (0xc2 0x80-0x9f). */
static long control_at(const unsigned char *s, size_t n, size_t i) {
    if (s[i] < 0x20 || s[i] == 0x7f) return s[i];
    if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) return s[i + 1];
    return -1;
}

evk_err_t evk_key_check(const char *key, size_t len, char *errstr, size_t errstr_size) {
    if (!key && len) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "key is NULL");
    if (!len) return evk__fail(EVK_ERR_VALIDATION, errstr, errstr_size, "must not be empty");
    for (size_t i = 0; i < len; i++) {
        long cp = control_at((const unsigned char *)key, len, i);
        if (cp >= 0)
            return evk__fail(EVK_ERR_VALIDATION, errstr, errstr_size,
                             "must not contain control characters (found U+%04lX)", cp);
    }
    return EVK_OK;
}

/* ---- the event from JSON ---- */

/* The catalog's key field (a top-level string: catalog.c) becomes the key,
 * which is text from here on: a U+0000 in it would cut it short, so that two
 * aggregates shared a key. Hence evk_key_check(), on the field's full length. */
static evk_err_t key_from_field(evk_event_t *ev, char *errstr, size_t errstr_size) {
    const char *field = evk_schema_key_field(evk_event_schema(ev));
    const char *s = NULL;
    size_t size = 0;
    avro_value_t v;
    if (!field) return EVK_OK;
    if (avro_value_get_by_name(evk_event_value(ev), field, &v, NULL) ||
        avro_value_get_string(&v, &s, &size))
        return evk__fail(EVK_ERR_VALIDATION, errstr, errstr_size, "%s: key is not a string",
                         field);
    char why[128];
    if (evk_key_check(s, size ? size - 1 : 0, why, sizeof why)) /* size counts the NUL */
        return evk__fail(EVK_ERR_VALIDATION, errstr, errstr_size, "%s: key %s", field, why);
    return evk_event_set_key(ev, s)
               ? evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory")
               : EVK_OK;
}

/* Values for absent top-level fields, as a caller's defaults would give. */
static evk_err_t add_absent(json_t *root, const char *const *names, const char *const *values,
                            size_t n) {
    for (size_t i = 0; i < n && json_is_object(root); i++) {
        if (json_object_get(root, names[i])) continue;
        json_t *v = json_loads(values[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!v || json_object_set_new(root, names[i], v)) return EVK_ERR_NOMEM;
    }
    return EVK_OK;
}

evk_err_t evk__event_from_json_with(const evk_schema_t *s, const char *json, size_t len,
                                    const char *const *names, const char *const *values,
                                    size_t n, evk_event_t **out, char *errstr,
                                    size_t errstr_size) {
    if (!out) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "out is NULL");
    *out = NULL;
    if (!s || (!json && len))
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "schema or json is NULL");
    json_error_t je;
    /* Avro strings may hold U+0000, so JSON may too: both codecs then
     * carry any valid record without loss. */
    json_t *root = json_loadb(json ? json : "", len,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return evk__fail(EVK_ERR_JSON, errstr, errstr_size, "line %d, column %d: %s", je.line,
                         je.column, je.text);
    evk_event_t *ev = add_absent(root, names, values, n) ? NULL : evk__event_alloc(s, 1);
    evk_err_t err =
        ev ? evk__json_fill(evk__schema_doc(s), root, evk_event_value(ev), errstr, errstr_size)
           : evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    json_decref(root);
    if (!err) err = key_from_field(ev, errstr, errstr_size);
    if (err) {
        evk_event_destroy(ev);
        return err;
    }
    *out = ev;
    return EVK_OK;
}

evk_err_t evk_event_from_json(const evk_schema_t *s, const char *json, size_t len,
                              evk_event_t **out, char *errstr, size_t errstr_size) {
    return evk__event_from_json_with(s, json, len, NULL, NULL, 0, out, errstr, errstr_size);
}

/* ---- Avro -> JSON ----
 * A string builder rather than a jansson DOM: this is evk-tail's hot path,
 * and building then dumping a tree would allocate per field. */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sb_t;

static int sb_reserve(sb_t *sb, size_t extra) {
    if (sb->failed) return 0;
    if (sb->len + extra + 1 <= sb->cap) return 1;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *p = realloc(sb->buf, cap);
    if (!p) {
        sb->failed = 1;
        return 0;
    }
    sb->buf = p;
    sb->cap = cap;
    return 1;
}

static void sb_put(sb_t *sb, const char *s, size_t n) {
    if (!sb_reserve(sb, n)) return;
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
}

static void sb_puts(sb_t *sb, const char *s) {
    sb_put(sb, s, strlen(s));
}

static void sb_putc(sb_t *sb, char c) {
    sb_put(sb, &c, 1);
}

static void put_escape(sb_t *sb, unsigned char c) {
    char esc[8];
    switch (c) {
    case '"':
        sb_puts(sb, "\\\"");
        return;
    case '\\':
        sb_puts(sb, "\\\\");
        return;
    case '\n':
        sb_puts(sb, "\\n");
        return;
    case '\r':
        sb_puts(sb, "\\r");
        return;
    case '\t':
        sb_puts(sb, "\\t");
        return;
    default:
        snprintf(esc, sizeof esc, "\\u%04x", c);
        sb_puts(sb, esc);
    }
}

static int needs_escape(unsigned char c) {
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/* A JSON string of UTF-8 text; a byte that is not part of a well-formed
 * sequence (only reachable through direct avro-c access) becomes U+FFFD so
 * that the output is always valid JSON. */
static void put_string(sb_t *sb, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    sb_putc(sb, '"');
    while (s < end) {
        const unsigned char *run = s;
        while (s < end && !needs_escape(*s))
            s++;
        sb_put(sb, (const char *)run, (size_t)(s - run));
        if (s == end) break;
        if (*s < 0x80) {
            put_escape(sb, *s++);
            continue;
        }
        size_t k = evk__utf8_seq(s, (size_t)(end - s));
        if (k) {
            sb_put(sb, (const char *)s, k);
            s += k;
        } else {
            sb_puts(sb, "\\ufffd");
            s++;
        }
    }
    sb_putc(sb, '"');
}

/* Bytes in Avro's JSON form: each byte as the code point of its value. */
static void put_latin1(sb_t *sb, const unsigned char *b, size_t n) {
    sb_putc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= 0x80) {
            char two[2] = {(char)(0xc0 | (b[i] >> 6)), (char)(0x80 | (b[i] & 0x3f))};
            sb_put(sb, two, 2);
        } else if (needs_escape(b[i])) {
            put_escape(sb, b[i]);
        } else {
            sb_putc(sb, (char)b[i]);
        }
    }
    sb_putc(sb, '"');
}

/* Shortest text that reads back as the same value; JSON has no NaN or
 * infinity, so those are written as null. */
static void put_real(sb_t *sb, double d, int is_float) {
    char buf[40];
    if (!isfinite(d)) {
        sb_puts(sb, "null");
        return;
    }
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)d : back == d) break;
    }
    sb_puts(sb, buf);
    if (!strpbrk(buf, ".eE")) sb_puts(sb, ".0"); /* stays a real for JSON readers */
}

static void put_int(sb_t *sb, int64_t i) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, i);
    sb_put(sb, buf, (size_t)n);
}

static int put_value(sb_t *sb, const avro_value_t *v);

static int put_children(sb_t *sb, const avro_value_t *v, int object) {
    size_t n = 0;
    if (avro_value_get_size(v, &n)) return -1;
    sb_putc(sb, object ? '{' : '[');
    for (size_t i = 0; i < n; i++) {
        avro_value_t child;
        const char *name = NULL;
        if (avro_value_get_by_index(v, i, &child, &name)) return -1;
        if (i) sb_putc(sb, ',');
        if (object) {
            put_string(sb, name, strlen(name));
            sb_putc(sb, ':');
        }
        if (put_value(sb, &child)) return -1;
    }
    sb_putc(sb, object ? '}' : ']');
    return 0;
}

static int put_scalar(sb_t *sb, const avro_value_t *v) {
    const void *buf = NULL;
    size_t size = 0;
    switch (avro_value_get_type(v)) {
    case AVRO_STRING:
        if (avro_value_get_string(v, (const char **)&buf, &size)) return -1;
        put_string(sb, buf ? buf : "", size ? size - 1 : 0); /* size counts the NUL */
        return 0;
    case AVRO_BYTES:
        if (avro_value_get_bytes(v, &buf, &size)) return -1;
        put_latin1(sb, buf, size);
        return 0;
    case AVRO_FIXED:
        if (avro_value_get_fixed(v, &buf, &size)) return -1;
        put_latin1(sb, buf, size);
        return 0;
    case AVRO_ENUM: {
        int sym;
        if (avro_value_get_enum(v, &sym)) return -1;
        const char *name = avro_schema_enum_get(avro_value_get_schema(v), sym);
        if (!name) return -1;
        put_string(sb, name, strlen(name));
        return 0;
    }
    default:
        return -1;
    }
}

static int put_number(sb_t *sb, const avro_value_t *v) {
    int32_t i;
    int64_t l;
    float f;
    double d;
    switch (avro_value_get_type(v)) {
    case AVRO_INT32:
        if (avro_value_get_int(v, &i)) return -1;
        put_int(sb, i);
        return 0;
    case AVRO_INT64:
        if (avro_value_get_long(v, &l)) return -1;
        put_int(sb, l);
        return 0;
    case AVRO_FLOAT:
        if (avro_value_get_float(v, &f)) return -1;
        put_real(sb, f, 1);
        return 0;
    case AVRO_DOUBLE:
        if (avro_value_get_double(v, &d)) return -1;
        put_real(sb, d, 0);
        return 0;
    default:
        return put_scalar(sb, v);
    }
}

static int put_value(sb_t *sb, const avro_value_t *v) {
    int b, d = -1;
    avro_value_t branch;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        sb_puts(sb, "null");
        return 0;
    case AVRO_BOOLEAN:
        if (avro_value_get_boolean(v, &b)) return -1;
        sb_puts(sb, b ? "true" : "false");
        return 0;
    case AVRO_RECORD:
    case AVRO_MAP:
        return put_children(sb, v, 1);
    case AVRO_ARRAY:
        return put_children(sb, v, 0);
    case AVRO_UNION:
        if (avro_value_get_discriminant(v, &d) || d < 0) return -1;
        if (avro_value_get_current_branch(v, &branch)) return -1;
        return put_value(sb, &branch);
    default:
        return put_number(sb, v);
    }
}

evk_err_t evk_event_to_json(const evk_event_t *ev, char **out, size_t *len) {
    if (!ev || !out) return EVK_ERR_INVALID_ARG;
    sb_t sb = {0};
    avro_value_t v = *evk_event_value((evk_event_t *)ev);
    int rc = put_value(&sb, &v);
    if (rc || sb.failed) {
        free(sb.buf);
        return sb.failed ? EVK_ERR_NOMEM : EVK_ERR_VALIDATION;
    }
    sb.buf[sb.len] = 0;
    *out = sb.buf;
    if (len) *len = sb.len;
    return EVK_OK;
}
