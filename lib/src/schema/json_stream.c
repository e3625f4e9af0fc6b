/* JSON -> Avro without a DOM: a pull parser walks the input and the schema
 * together and writes the Avro binary body as it goes. This is the hot path
 * of evk-produce and evk-order publish (docs/PERFORMANCE.md).
 *
 * The fast path only ever answers "valid, and here are the bytes". Anything
 * it does not accept, invalid or merely unusual (a \u0000, a duplicate key,
 * a key evk_key_check() refuses, nesting deeper than it tracks), makes it
 * give up, and the input goes through evk_event_from_json()'s DOM path
 * instead, which then decides and words the error. So errors read exactly
 * as they always have, and the fast path must never accept what the DOM path
 * rejects (tests/unit/test_json_stream.c holds the two paths against each other). */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"

/* Deep enough for any sensible record; deeper input takes the DOM path. */
#define STREAM_MAX_DEPTH 64
/* Maps larger than this take the DOM path: the duplicate-key check is
 * quadratic. */
#define STREAM_MAX_MAP 256
#define NO_SLOT SIZE_MAX

typedef struct node_s node_t;

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

typedef struct {
    const char *name;
    size_t name_len;
    node_t *type;
    buf_t def;      /* the default, Avro-encoded; def.p NULL when none */
    char *def_json; /* set by evk_json_reader_set_default(), for the DOM path */
} field_t;

/* The schema, compiled once per reader: what the parser needs at hand. */
struct node_s {
    avro_type_t type;
    avro_schema_t schema;
    field_t *fields; /* record */
    size_t nfields;
    node_t *items;     /* array items, map values */
    node_t **branches; /* union */
    size_t nbranches;
    const char **symbols; /* enum */
    size_t nsymbols;
    size_t fixed_size;
    node_t *next; /* every node of a reader, for freeing */
};

typedef struct {
    size_t off, len;
} slot_t;

struct evk_json_reader_s {
    const evk_schema_t *schema;
    node_t *root, *nodes;
    int key_index; /* top-level string field holding the key; -1: none */
    buf_t out, tmp, str, key;
    int has_key;
    slot_t *slots; /* the fields of the records being parsed, innermost last */
    size_t nslots, slots_cap;
};

typedef enum { K_NULL, K_BOOL, K_INT, K_REAL, K_STRING, K_ARRAY, K_OBJECT } kind_t;

typedef struct {
    kind_t kind;
    int64_t i;
    double d;
    const char *s;
    size_t n;
} tok_t;

typedef struct {
    evk_json_reader_t *r;
    const char *p, *end;
    int depth;
    int capture; /* the next scalar is the key field's value */
    int oom;
} ctx_t;

/* ---- buffers ---- */

static int buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(ctx_t *c, buf_t *b, const void *data, size_t n) {
    if (buf_reserve(b, n)) {
        c->oom = 1;
        return -1;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static size_t varint(unsigned char *out, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        out[n++] = (unsigned char)(u | 0x80);
        u >>= 7;
    }
    out[n++] = (unsigned char)u;
    return n;
}

static int put_long(ctx_t *c, int64_t v) {
    unsigned char b[10];
    return put(c, &c->r->out, b, varint(b, v));
}

/* An Avro count written in front of the @p from.. end of the output, once
 * the number of items is known. */
static int insert_count(ctx_t *c, size_t from, int64_t count) {
    unsigned char b[10];
    size_t n = varint(b, count);
    buf_t *o = &c->r->out;
    if (put(c, o, b, n)) return -1;
    memmove(o->p + from + n, o->p + from, o->len - n - from);
    memcpy(o->p + from, b, n);
    return 0;
}

static int put_counted(ctx_t *c, const char *s, size_t n) {
    return put_long(c, (int64_t)n) || put(c, &c->r->out, s, n);
}

/* ---- lexing: exactly jansson's grammar, or give up ---- */

static void ws(ctx_t *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int expect(ctx_t *c, char ch) {
    ws(c);
    if (c->p >= c->end || *c->p != ch) return -1;
    c->p++;
    return 0;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    unsigned v = 0;
    if (end - p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                     : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                     : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                            : 16u;
        if (d > 15) return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t utf8_encode(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* \uXXXX, with a surrogate pair as one code point. U+0000 is left to the
 * DOM path, whose JSON_ALLOW_NUL callers may or may not want it. */
static int lex_unicode(ctx_t *c, char *out, size_t *n) {
    unsigned cp, lo;
    if (hex4(c->p, c->end, &cp) || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return -1;
    c->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
            hex4(c->p + 2, c->end, &lo) || lo < 0xdc00 || lo > 0xdfff)
            return -1;
        c->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    *n = utf8_encode(cp, out);
    return 0;
}

static int lex_escape(ctx_t *c) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char out[4];
    size_t n = 1;
    if (++c->p >= c->end) return -1;
    const char *e = *c->p ? strchr(from, *c->p) : NULL;
    if (e) {
        out[0] = to[e - from];
        c->p++;
    } else if (*c->p == 'u') {
        c->p++;
        if (lex_unicode(c, out, &n)) return -1;
    } else {
        return -1;
    }
    return put(c, &c->r->str, out, n);
}

/* Up to the closing quote or a backslash; control characters and bytes
 * that are not UTF-8 are jansson's errors, so they end the fast path. */
static int scan_plain(ctx_t *c) {
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"' || ch == '\\') return 0;
        if (ch < 0x20) return -1;
        if (ch < 0x80) {
            c->p++;
            continue;
        }
        size_t k = evk__utf8_seq((const unsigned char *)c->p, (size_t)(c->end - c->p));
        if (!k) return -1;
        c->p += k;
    }
    return -1;
}

/* A string without escapes points into the input; one with escapes is
 * decoded into the reader's scratch buffer. */
static int lex_string(ctx_t *c, tok_t *t) {
    const char *start = ++c->p;
    if (scan_plain(c)) return -1;
    if (*c->p == '"') {
        t->s = start;
        t->n = (size_t)(c->p++ - start);
        t->kind = K_STRING;
        return 0;
    }
    buf_t *str = &c->r->str;
    str->len = 0;
    if (put(c, str, start, (size_t)(c->p - start))) return -1;
    while (*c->p == '\\') {
        if (lex_escape(c)) return -1;
        start = c->p;
        if (scan_plain(c) || put(c, str, start, (size_t)(c->p - start))) return -1;
    }
    c->p++;
    t->s = (const char *)str->p;
    t->n = str->len;
    t->kind = K_STRING;
    return 0;
}

static const char *digits(const char *p, const char *end) {
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* jansson's number grammar; an integer beyond int64 or a real that
 * overflows is its error, so those end the fast path too. */
static int lex_real(ctx_t *c, const char *start, tok_t *t) {
    char text[64];
    size_t n = (size_t)(c->p - start);
    if (n >= sizeof text) return -1;
    memcpy(text, start, n);
    text[n] = 0;
    errno = 0;
    t->d = strtod(text, NULL);
    t->kind = K_REAL;
    return errno ? -1 : 0;
}

static int lex_integer(const char *p, const char *end, tok_t *t) {
    int neg = *p == '-';
    uint64_t u = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += neg; p < end; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (u > (limit - d) / 10) return -1;
        u = u * 10 + d;
    }
    t->i = neg ? (int64_t)(0 - u) : (int64_t)u;
    t->kind = K_INT;
    return 0;
}

static int lex_number(ctx_t *c, tok_t *t) {
    const char *start = c->p, *end = c->end;
    if (*c->p == '-') c->p++;
    if (c->p < end && *c->p == '0')
        c->p++;
    else if (c->p < end && *c->p >= '1' && *c->p <= '9')
        c->p = digits(c->p, end);
    else
        return -1;
    const char *int_end = c->p;
    if (c->p < end && *c->p == '.') {
        const char *d = ++c->p;
        if ((c->p = digits(d, end)) == d) return -1;
    }
    if (c->p < end && (*c->p == 'e' || *c->p == 'E')) {
        if (++c->p < end && (*c->p == '+' || *c->p == '-')) c->p++;
        const char *d = c->p;
        if ((c->p = digits(d, end)) == d) return -1;
    }
    return c->p == int_end ? lex_integer(start, int_end, t) : lex_real(c, start, t);
}

static int lex_word(ctx_t *c, const char *word, kind_t kind, int64_t value, tok_t *t) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n)) return -1;
    c->p += n;
    t->kind = kind;
    t->i = value;
    return 0;
}

static int lex_scalar(ctx_t *c, tok_t *t) {
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '"':
        return lex_string(c, t);
    case 't':
        return lex_word(c, "true", K_BOOL, 1, t);
    case 'f':
        return lex_word(c, "false", K_BOOL, 0, t);
    case 'n':
        return lex_word(c, "null", K_NULL, 0, t);
    default:
        return lex_number(c, t);
    }
}

/* ---- validating and writing against the compiled schema ---- */

static int symbol_index(const node_t *n, const char *s, size_t len) {
    for (size_t i = 0; i < n->nsymbols; i++)
        if (strlen(n->symbols[i]) == len && !memcmp(n->symbols[i], s, len)) return (int)i;
    return -1;
}

/* json.c's fits(): whether a value of kind @p t can be a @p n, and with
 * @p exact whether it also fits its range or symbol set. */
static int fits(const node_t *n, const tok_t *t, int exact) {
    switch (n->type) {
    case AVRO_NULL:
        return t->kind == K_NULL;
    case AVRO_BOOLEAN:
        return t->kind == K_BOOL;
    case AVRO_INT32:
        return t->kind == K_INT && (!exact || (t->i >= INT32_MIN && t->i <= INT32_MAX));
    case AVRO_INT64:
        return t->kind == K_INT;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return t->kind == K_INT || t->kind == K_REAL;
    case AVRO_ENUM:
        return t->kind == K_STRING && (!exact || symbol_index(n, t->s, t->n) >= 0);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
        return t->kind == K_STRING;
    case AVRO_ARRAY:
        return t->kind == K_ARRAY;
    default:
        return t->kind == K_OBJECT;
    }
}

/* The union branch the DOM path would pick; its index is written. */
static int pick_branch(ctx_t *c, const node_t **n, const tok_t *t) {
    for (int exact = 1; exact >= 0; exact--) {
        for (size_t i = 0; i < (*n)->nbranches; i++) {
            if (!fits((*n)->branches[i], t, exact)) continue;
            *n = (*n)->branches[i];
            return put_long(c, (int64_t)i);
        }
    }
    return -1;
}

/* A key evk_key_check() refuses is the DOM path's to report. */
static int capture_key(ctx_t *c, const char *s, size_t n) {
    if (evk_key_check(s, n, NULL, 0)) return -1;
    c->r->key.len = 0;
    c->r->has_key = 1;
    return put(c, &c->r->key, s, n) || put(c, &c->r->key, "", 1);
}

static int put_real(ctx_t *c, const node_t *n, const tok_t *t) {
    double d = t->kind == K_INT ? (double)t->i : t->d;
    unsigned char b[8];
    uint64_t bits;
    size_t size = 8;
    if (n->type == AVRO_FLOAT) {
        float f;
        if (!evk__float_from_double(d, &f)) return -1;
        uint32_t fb;
        memcpy(&fb, &f, 4);
        bits = fb;
        size = 4;
    } else {
        memcpy(&bits, &d, 8);
    }
    for (size_t i = 0; i < size; i++)
        b[i] = (unsigned char)(bits >> (8 * i));
    return put(c, &c->r->out, b, size);
}

/* Avro's JSON form of bytes: code points U+0000..U+00FF are the bytes. */
static int put_latin1(ctx_t *c, const node_t *n, const tok_t *t) {
    buf_t *tmp = &c->r->tmp;
    const unsigned char *s = (const unsigned char *)t->s;
    tmp->len = 0;
    if (buf_reserve(tmp, t->n + 1)) {
        c->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        unsigned char b = s[i];
        if (b >= 0x80) {
            if ((b != 0xc2 && b != 0xc3) || i + 1 >= t->n) return -1;
            b = (unsigned char)((b & 3) << 6 | (s[++i] & 0x3f));
        }
        tmp->p[tmp->len++] = b;
    }
    if (n->type == AVRO_FIXED)
        return tmp->len == n->fixed_size ? put(c, &c->r->out, tmp->p, tmp->len) : -1;
    return put_counted(c, (const char *)tmp->p, tmp->len);
}

static int put_scalar(ctx_t *c, const node_t *n, const tok_t *t, int cap) {
    unsigned char b;
    int sym;
    switch (n->type) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        b = (unsigned char)t->i;
        return put(c, &c->r->out, &b, 1);
    case AVRO_INT32:
    case AVRO_INT64:
        return put_long(c, t->i);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return put_real(c, n, t);
    case AVRO_STRING:
        return put_counted(c, t->s, t->n) || (cap && capture_key(c, t->s, t->n));
    case AVRO_ENUM:
        sym = symbol_index(n, t->s, t->n);
        return put_long(c, sym);
    default:
        return put_latin1(c, n, t);
    }
}

static int emit_scalar(ctx_t *c, const node_t *n, const tok_t *t) {
    int cap = c->capture;
    c->capture = 0;
    if (n->type == AVRO_UNION && pick_branch(c, &n, t)) return -1;
    /* exact: an int in range, a known symbol; else the DOM path's error */
    if (!fits(n, t, 1)) return -1;
    return put_scalar(c, n, t, cap);
}

static int parse_value(ctx_t *c, const node_t *n);

static int find_field(const node_t *n, const tok_t *t, size_t hint) {
    if (hint < n->nfields && n->fields[hint].name_len == t->n &&
        !memcmp(n->fields[hint].name, t->s, t->n))
        return (int)hint;
    for (size_t i = 0; i < n->nfields; i++)
        if (n->fields[i].name_len == t->n && !memcmp(n->fields[i].name, t->s, t->n))
            return (int)i;
    return -1;
}

static int push_slots(ctx_t *c, size_t n, size_t *first) {
    evk_json_reader_t *r = c->r;
    if (r->nslots + n > r->slots_cap) {
        size_t cap = r->slots_cap ? r->slots_cap * 2 : 64;
        while (cap < r->nslots + n)
            cap *= 2;
        slot_t *grown = realloc(r->slots, cap * sizeof *grown);
        if (!grown) {
            c->oom = 1;
            return -1;
        }
        r->slots = grown;
        r->slots_cap = cap;
    }
    *first = r->nslots;
    for (size_t i = 0; i < n; i++)
        r->slots[r->nslots++] = (slot_t){NO_SLOT, 0};
    return 0;
}

/* One "name": value member; *next is the field expected after it. */
static int record_member(ctx_t *c, const node_t *n, size_t first, size_t *next, int *ordered) {
    tok_t key;
    ws(c);
    if (c->p >= c->end || *c->p != '"' || lex_string(c, &key)) return -1;
    int i = find_field(n, &key, *next);
    if (i < 0 || c->r->slots[first + (size_t)i].off != NO_SLOT || expect(c, ':')) return -1;
    size_t off = c->r->out.len;
    c->capture = c->depth == 1 && i == c->r->key_index;
    if (parse_value(c, n->fields[i].type)) return -1;
    c->r->slots[first + (size_t)i] = (slot_t){off, c->r->out.len - off};
    *ordered &= (size_t)i == *next;
    *next = (size_t)i + 1;
    return 0;
}

/* The key, when the key field (a string: catalog.c) took its default. */
static int key_from_default(ctx_t *c, const unsigned char *p, const unsigned char *end);

/* Fields arrive in any order, Avro wants schema order: unless they came in
 * that order and complete, the record's bytes are put back together, with
 * the defaults of absent fields. */
static int record_finish(ctx_t *c, const node_t *n, size_t base, size_t first, int ordered) {
    evk_json_reader_t *r = c->r;
    for (size_t i = 0; i < n->nfields; i++) {
        if (r->slots[first + i].off != NO_SLOT) continue;
        if (!n->fields[i].def.p) return -1; /* missing: the DOM path says so */
        ordered = 0;
        if (c->depth == 1 && (int)i == r->key_index &&
            key_from_default(c, n->fields[i].def.p, n->fields[i].def.p + n->fields[i].def.len))
            return -1;
    }
    if (ordered) return 0;
    r->tmp.len = 0;
    if (put(c, &r->tmp, r->out.p + base, r->out.len - base)) return -1;
    r->out.len = base;
    for (size_t i = 0; i < n->nfields; i++) {
        slot_t s = r->slots[first + i];
        const buf_t *def = &n->fields[i].def;
        if (s.off == NO_SLOT ? put(c, &r->out, def->p, def->len)
                             : put(c, &r->out, r->tmp.p + (s.off - base), s.len))
            return -1;
    }
    return 0;
}

/* Whether the list at the cursor is empty ('[' or '{' already read). */
static int list_empty(ctx_t *c, char close) {
    ws(c);
    if (c->p >= c->end || *c->p != close) return 0;
    c->p++;
    return 1;
}

/* After an item: 1 when another follows, 0 at the end of the list. */
static int list_next(ctx_t *c, char close) {
    ws(c);
    if (c->p < c->end && (*c->p == ',' || *c->p == close)) return *c->p++ == ',';
    return -1;
}

/* A failure leaves the slots to the next run(), which starts afresh. */
static int parse_record(ctx_t *c, const node_t *n) {
    size_t base = c->r->out.len, first, next = 0;
    int ordered = 1, more = 0;
    c->p++;
    if (push_slots(c, n->nfields, &first)) return -1;
    if (!list_empty(c, '}')) {
        do {
            if (record_member(c, n, first, &next, &ordered)) return -1;
        } while ((more = list_next(c, '}')) == 1);
    }
    if (more < 0 || record_finish(c, n, base, first, ordered)) return -1;
    c->r->nslots = first;
    return 0;
}

static int parse_array(ctx_t *c, const node_t *n) {
    size_t start = c->r->out.len;
    int64_t count = 0;
    int more;
    c->p++;
    if (list_empty(c, ']')) return put_long(c, 0);
    do {
        if (parse_value(c, n->items)) return -1;
        count++;
    } while ((more = list_next(c, ']')) == 1);
    if (more < 0) return -1;
    return insert_count(c, start, count) || put_long(c, 0);
}

/* A duplicate key is jansson's error (JSON_REJECT_DUPLICATES). */
static int map_key(ctx_t *c, slot_t *keys, size_t count) {
    tok_t key;
    ws(c);
    if (count == STREAM_MAX_MAP || c->p >= c->end || *c->p != '"' || lex_string(c, &key))
        return -1;
    const unsigned char *out = c->r->out.p;
    for (size_t i = 0; i < count; i++)
        if (keys[i].len == key.n && !memcmp(out + keys[i].off, key.s, key.n)) return -1;
    if (put_long(c, (int64_t)key.n)) return -1;
    keys[count] = (slot_t){c->r->out.len, key.n};
    return put(c, &c->r->out, key.s, key.n) || expect(c, ':');
}

static int parse_map(ctx_t *c, const node_t *n) {
    size_t start = c->r->out.len, count = 0;
    c->p++;
    if (list_empty(c, '}')) return put_long(c, 0);
    slot_t *keys = malloc(STREAM_MAX_MAP * sizeof *keys);
    if (!keys) {
        c->oom = 1;
        return -1;
    }
    int more = -1;
    while (!map_key(c, keys, count) && !parse_value(c, n->items)) {
        count++;
        if ((more = list_next(c, '}')) != 1) break;
        more = -1;
    }
    free(keys);
    if (more) return -1;
    return insert_count(c, start, (int64_t)count) || put_long(c, 0);
}

static int parse_container(ctx_t *c, const node_t *n) {
    tok_t t = {.kind = *c->p == '{' ? K_OBJECT : K_ARRAY};
    c->capture = 0;
    if (n->type == AVRO_UNION && pick_branch(c, &n, &t)) return -1;
    if (t.kind == K_ARRAY) return n->type == AVRO_ARRAY ? parse_array(c, n) : -1;
    if (n->type == AVRO_RECORD) return parse_record(c, n);
    return n->type == AVRO_MAP ? parse_map(c, n) : -1;
}

static int parse_value(ctx_t *c, const node_t *n) {
    tok_t t;
    if (c->depth >= STREAM_MAX_DEPTH) return -1;
    c->depth++;
    ws(c);
    int rc = c->p < c->end && (*c->p == '{' || *c->p == '[')
                 ? parse_container(c, n)
                 : lex_scalar(c, &t) || emit_scalar(c, n, &t);
    c->depth--;
    return rc;
}

/* ---- the key from an Avro-encoded default ---- */

static int read_varint(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t u = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return -1;
}

static int key_from_default(ctx_t *c, const unsigned char *p, const unsigned char *end) {
    int64_t n;
    if (read_varint(&p, end, &n) || n < 0 || n > end - p) return -1;
    return capture_key(c, (const char *)p, (size_t)n);
}

/* ---- compiling the schema ---- */

static avro_schema_t deref(avro_schema_t s) {
    while (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static node_t *compile(evk_json_reader_t *r, avro_schema_t s);

/* A field's schema default, encoded the way the DOM path would fill it.
 * One that does not fit its field leaves the field without: the DOM path
 * then reports it. */
static evk_err_t encode_value(avro_value_t *v, buf_t *out) {
    size_t size;
    if (avro_value_sizeof(v, &size)) return EVK_ERR_VALIDATION;
    out->p = malloc(size ? size : 1); /* non-NULL: "has a default" */
    if (!out->p) return EVK_ERR_NOMEM;
    avro_writer_t w = avro_writer_memory((char *)out->p, (int64_t)size);
    int rc = w ? avro_value_write(w, v) : ENOMEM;
    if (w) avro_writer_free(w);
    if (rc) {
        free(out->p);
        out->p = NULL;
        return EVK_ERR_NOMEM;
    }
    out->len = out->cap = size;
    return EVK_OK;
}

static evk_err_t compile_default(const json_t *doc, node_t *n, size_t i, avro_value_t *rec) {
    const json_t *def = evk__field_default(doc, n->schema, i);
    avro_value_t child;
    if (!def) return EVK_OK;
    if (avro_value_get_by_index(rec, i, &child, NULL)) return EVK_ERR_NOMEM;
    evk_err_t err = evk__json_fill_default(doc, def, &child, NULL, 0);
    if (!err) err = encode_value(&child, &n->fields[i].def);
    return err == EVK_ERR_NOMEM ? err : EVK_OK;
}

/* avro-c builds a class only for a schema that defines every type it names;
 * a record naming a type defined further out goes without fast defaults. */
static evk_err_t compile_defaults(evk_json_reader_t *r, node_t *n) {
    const json_t *doc = evk__schema_doc(r->schema);
    avro_value_iface_t *iface = avro_generic_class_from_schema(n->schema);
    avro_value_t rec;
    if (!iface) return EVK_OK;
    if (avro_generic_value_new(iface, &rec)) {
        avro_value_iface_decref(iface);
        return EVK_ERR_NOMEM;
    }
    evk_err_t err = EVK_OK;
    for (size_t i = 0; i < n->nfields && !err; i++)
        err = compile_default(doc, n, i, &rec);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    return err;
}

static evk_err_t compile_record(evk_json_reader_t *r, node_t *n) {
    n->nfields = avro_schema_record_size(n->schema);
    n->fields = calloc(n->nfields ? n->nfields : 1, sizeof *n->fields);
    if (!n->fields) return EVK_ERR_NOMEM;
    for (size_t i = 0; i < n->nfields; i++) {
        field_t *f = &n->fields[i];
        f->name = avro_schema_record_field_name(n->schema, (int)i);
        f->name_len = strlen(f->name);
        f->type = compile(r, avro_schema_record_field_get_by_index(n->schema, (int)i));
        if (!f->type) return EVK_ERR_NOMEM;
    }
    return compile_defaults(r, n);
}

static evk_err_t compile_children(evk_json_reader_t *r, node_t *n) {
    size_t i;
    switch (n->type) {
    case AVRO_RECORD:
        return compile_record(r, n);
    case AVRO_ARRAY:
        n->items = compile(r, avro_schema_array_items(n->schema));
        return n->items ? EVK_OK : EVK_ERR_NOMEM;
    case AVRO_MAP:
        n->items = compile(r, avro_schema_map_values(n->schema));
        return n->items ? EVK_OK : EVK_ERR_NOMEM;
    case AVRO_UNION:
        n->nbranches = avro_schema_union_size(n->schema);
        n->branches = calloc(n->nbranches ? n->nbranches : 1, sizeof *n->branches);
        for (i = 0; n->branches && i < n->nbranches; i++)
            if (!(n->branches[i] = compile(r, avro_schema_union_branch(n->schema, (int)i))))
                return EVK_ERR_NOMEM;
        return n->branches ? EVK_OK : EVK_ERR_NOMEM;
    case AVRO_ENUM:
        n->nsymbols = (size_t)avro_schema_enum_number_of_symbols(n->schema);
        n->symbols = calloc(n->nsymbols ? n->nsymbols : 1, sizeof *n->symbols);
        for (i = 0; n->symbols && i < n->nsymbols; i++)
            n->symbols[i] = avro_schema_enum_get(n->schema, (int)i);
        return n->symbols ? EVK_OK : EVK_ERR_NOMEM;
    case AVRO_FIXED:
        n->fixed_size = (size_t)avro_schema_fixed_size(n->schema);
        return EVK_OK;
    default:
        return EVK_OK;
    }
}

/* One node per schema object, so a recursive schema compiles to a cycle. */
static node_t *compile(evk_json_reader_t *r, avro_schema_t s) {
    s = deref(s);
    for (node_t *n = r->nodes; n; n = n->next)
        if (n->schema == s) return n;
    node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->schema = s;
    n->type = avro_typeof(s);
    n->next = r->nodes;
    r->nodes = n;
    return compile_children(r, n) ? NULL : n;
}

static void free_nodes(node_t *n) {
    while (n) {
        node_t *next = n->next;
        for (size_t i = 0; i < n->nfields; i++) {
            free(n->fields[i].def.p);
            free(n->fields[i].def_json);
        }
        free(n->fields);
        free(n->branches);
        free(n->symbols);
        free(n);
        n = next;
    }
}

/* ---- the reader ---- */

static int top_field(const node_t *root, const char *name) {
    for (size_t i = 0; i < root->nfields; i++)
        if (!strcmp(root->fields[i].name, name)) return (int)i;
    return -1;
}

evk_err_t evk_json_reader_new(const evk_schema_t *s, evk_json_reader_t **out) {
    if (!out) return EVK_ERR_INVALID_ARG;
    *out = NULL;
    if (!s) return EVK_ERR_INVALID_ARG;
    evk_json_reader_t *r = calloc(1, sizeof *r);
    if (!r) return EVK_ERR_NOMEM;
    r->schema = s;
    r->root = compile(r, evk_schema_avro(s));
    if (!r->root || r->root->type != AVRO_RECORD) {
        evk_json_reader_destroy(r);
        return r->root ? EVK_ERR_INVALID_ARG : EVK_ERR_NOMEM;
    }
    const char *key = evk_schema_key_field(s);
    r->key_index = key ? top_field(r->root, key) : -1;
    *out = r;
    return EVK_OK;
}

void evk_json_reader_destroy(evk_json_reader_t *r) {
    if (!r) return;
    free_nodes(r->nodes);
    free(r->out.p);
    free(r->tmp.p);
    free(r->str.p);
    free(r->key.p);
    free(r->slots);
    free(r);
}

static int run(evk_json_reader_t *r, const node_t *n, const char *json, size_t len, int *oom) {
    ctx_t c = {.r = r, .p = json, .end = json + len};
    r->nslots = 0;
    r->has_key = 0;
    int rc = parse_value(&c, n);
    ws(&c);
    *oom = c.oom;
    return rc || c.p != c.end ? -1 : 0;
}

evk_err_t evk_json_reader_set_default(evk_json_reader_t *r, const char *field, const char *json,
                                      char *errstr, size_t errstr_size) {
    if (!r || !field || !json)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size,
                         "reader, field or json is NULL");
    int i = top_field(r->root, field);
    if (i < 0)
        return evk__fail(EVK_ERR_NOT_FOUND, errstr, errstr_size, "%s: no such field", field);
    field_t *f = &r->root->fields[i];
    int oom;
    r->out.len = 0;
    if (run(r, f->type, json, strlen(json), &oom))
        return oom ? evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory")
                   : evk__fail(EVK_ERR_VALIDATION, errstr, errstr_size,
                               "%s: default %s does not fit the field", field, json);
    char *copy = strdup(json);
    buf_t def = {0};
    if (!copy || buf_reserve(&def, r->out.len + 1)) {
        free(copy);
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    memcpy(def.p, r->out.p, def.len = r->out.len);
    free(f->def.p);
    free(f->def_json);
    f->def = def;
    f->def_json = copy;
    return EVK_OK;
}

/* The DOM path, with the reader's defaults: the reference for what is
 * valid and for every error message. */
static evk_err_t dom_frame(evk_json_reader_t *r, const char *json, size_t len, void **frame,
                           size_t *frame_len, char **key, char *errstr, size_t errstr_size) {
    const char *names[64], *values[64];
    size_t n = 0;
    for (size_t i = 0; i < r->root->nfields && n < 64; i++) {
        if (!r->root->fields[i].def_json) continue;
        names[n] = r->root->fields[i].name;
        values[n++] = r->root->fields[i].def_json;
    }
    evk_event_t *ev;
    evk_err_t err = evk__event_from_json_with(r->schema, json, len, names, values, n, &ev,
                                              errstr, errstr_size);
    if (err) return err;
    err = evk_event_encode(ev, frame, frame_len);
    if (!err && evk_event_key(ev) && !(*key = strdup(evk_event_key(ev)))) {
        free(*frame);
        err = EVK_ERR_NOMEM;
    }
    evk_event_destroy(ev);
    return err ? evk__fail(err, errstr, errstr_size, "cannot encode: %s", evk_err2str(err))
               : EVK_OK;
}

static evk_err_t fast_frame(evk_json_reader_t *r, void **frame, size_t *frame_len, char **key) {
    unsigned char *f = malloc(r->out.len);
    if (!f) return EVK_ERR_NOMEM;
    uint32_t id = (uint32_t)evk_schema_id(r->schema);
    memcpy(f, r->out.p, r->out.len);
    f[0] = 0;
    for (int i = 0; i < 4; i++)
        f[1 + i] = (unsigned char)(id >> (24 - 8 * i));
    if (r->has_key && !(*key = strdup((const char *)r->key.p))) {
        free(f);
        return EVK_ERR_NOMEM;
    }
    *frame = f;
    *frame_len = r->out.len;
    return EVK_OK;
}

evk_err_t evk__json_reader_fast(evk_json_reader_t *r, const char *json, size_t len,
                                const unsigned char **body, size_t *body_len) {
    int oom = 0;
    r->out.len = EVK_FRAME_HEADER_SIZE; /* the header is written last */
    if (buf_reserve(&r->out, 64)) return EVK_ERR_NOMEM;
    if (run(r, r->root, json ? json : "", len, &oom))
        return oom ? EVK_ERR_NOMEM : EVK_ERR_VALIDATION;
    *body = r->out.p + EVK_FRAME_HEADER_SIZE;
    *body_len = r->out.len - EVK_FRAME_HEADER_SIZE;
    return EVK_OK;
}

evk_err_t evk_json_reader_frame(evk_json_reader_t *r, const char *json, size_t len,
                                void **frame, size_t *frame_len, char **key, char *errstr,
                                size_t errstr_size) {
    if (!r || !frame || !frame_len || !key || (!json && len))
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "invalid argument");
    *frame = NULL;
    *key = NULL;
    *frame_len = 0;
    const unsigned char *body;
    size_t body_len;
    evk_err_t err = evk__json_reader_fast(r, json, len, &body, &body_len);
    if (err == EVK_ERR_VALIDATION)
        return dom_frame(r, json, len, frame, frame_len, key, errstr, errstr_size);
    if (!err) err = fast_frame(r, frame, frame_len, key);
    return err ? evk__fail(err, errstr, errstr_size, "out of memory") : EVK_OK;
}
