/* The event object: an avro-c generic record of a catalog type plus its
 * CloudEvents metadata; field access by path; the Confluent wire format and
 * the CloudEvents Kafka headers. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "codec.h"
#include "internal.h"

enum { M_ID, M_SOURCE, M_TIME, M_KEY, M_CORRELATION, M_CAUSATION, M__CNT };

struct evk_event_s {
    const evk_schema_t *schema;
    avro_value_t value;
    char *meta[M__CNT];
    char *topic;
    int32_t partition;
    int64_t offset;
};

/* ---- uuid and time ---- */

/* splitmix64: only reached if getrandom() is unavailable, so that ids stay
 * distinct (if guessable) rather than the library failing or exiting. */
static void weak_random(unsigned char *b, size_t n) {
    static _Thread_local uint64_t state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    state += (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)b;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        b[i] = (unsigned char)(z ^ (z >> 31));
    }
}

static void fill_random(unsigned char *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (errno != EINTR) {
            weak_random(b + got, n - got);
            return;
        }
    }
}

/* getrandom() and snprintf() per id were most of evk-produce's time
 * (docs/PERFORMANCE.md): ids come from a per-thread pool filled 16 at a
 * time. A forked child must not reuse its parent's pool, so fork empties it. */
static atomic_uint fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) {
    fork_generation++;
}

static void register_atfork(void) {
    pthread_atfork(NULL, NULL, on_fork_child);
}

static void random16(unsigned char out[16]) {
    static _Thread_local unsigned char pool[256];
    static _Thread_local size_t left;
    static _Thread_local unsigned generation;
    pthread_once(&atfork_once, register_atfork);
    if (generation != fork_generation) {
        generation = fork_generation;
        left = 0;
    }
    if (left < 16) {
        fill_random(pool, sizeof pool);
        left = sizeof pool;
    }
    memcpy(out, pool + sizeof pool - left, 16);
    left -= 16;
}

/* @p b as a UUID of @p version (RFC 9562 variant), hex by table. */
static void uuid_format(unsigned char b[16], unsigned version, char buf[37]) {
    static const char hex[] = "0123456789abcdef";
    b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
    b[8] = (b[8] & 0x3f) | 0x80;
    char *p = buf;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = 0;
}

void evk_uuid4(char buf[37]) {
    unsigned char b[16];
    random16(b);
    uuid_format(b, 4, buf);
}

/* FNV-1a over base, a NUL and label, from @p seed, then a splitmix64
 * finaliser so that every input bit reaches every output bit. */
static uint64_t derive_half(uint64_t seed, const char *base, const char *label) {
    uint64_t h = seed;
    for (const char *s = base;; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        if (!*s) break;
    }
    for (const char *s = label; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

evk_err_t evk_event_derive_id(evk_event_t *ev, const char *base, const char *label) {
    if (!ev || !base || !label) return EVK_ERR_INVALID_ARG;
    uint64_t halves[2] = {derive_half(1469598103934665603ULL, base, label),
                          derive_half(0x9e3779b97f4a7c15ULL, base, label)};
    unsigned char b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (unsigned char)(halves[i / 8] >> (8 * (i % 8)));
    char id[37];
    uuid_format(b, 8, id); /* version 8: custom */
    return evk_event_set_id(ev, id);
}

/* The date and time up to the second change once a second: formatted then,
 * and only the milliseconds on every call. */
void evk_now_rfc3339(char buf[32]) {
    static _Thread_local time_t cached = (time_t)-1;
    static _Thread_local char prefix[24];
    static _Thread_local size_t n;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        cached = ts.tv_sec;
    }
    int ms = (int)(ts.tv_nsec / 1000000);
    char *p = buf + n;
    memcpy(buf, prefix, n);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = 0;
}

/* ---- the object ---- */

evk_event_t *evk__event_alloc(const evk_schema_t *s, int fresh_meta) {
    if (!s) return NULL;
    evk_event_t *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->schema = s;
    ev->partition = -1;
    ev->offset = -1;
    if (avro_generic_value_new(evk__schema_iface(s), &ev->value)) {
        free(ev);
        return NULL;
    }
    if (fresh_meta) {
        char id[37], now[32];
        evk_uuid4(id);
        evk_now_rfc3339(now);
        if (evk_event_set_id(ev, id) || evk_event_set_time(ev, now)) {
            evk_event_destroy(ev);
            return NULL;
        }
    }
    return ev;
}

evk_event_t *evk_event_new(const evk_schema_t *s) {
    evk_event_t *ev = evk__event_alloc(s, 1);
    if (ev && evk__value_init(evk__schema_doc(s), &ev->value) != EVK_OK) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

evk_event_t *evk_event_new_caused_by(const evk_schema_t *s, const evk_event_t *cause) {
    evk_event_t *ev = evk_event_new(s);
    if (!ev || !cause) return ev;
    const char *corr =
        cause->meta[M_CORRELATION] ? cause->meta[M_CORRELATION] : cause->meta[M_ID];
    if (evk_event_set_key(ev, cause->meta[M_KEY]) || evk_event_set_correlation_id(ev, corr) ||
        evk_event_set_causation_id(ev, cause->meta[M_ID])) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

void evk_event_destroy(evk_event_t *ev) {
    if (!ev) return;
    avro_value_decref(&ev->value);
    for (int i = 0; i < M__CNT; i++)
        free(ev->meta[i]);
    free(ev->topic);
    free(ev);
}

const evk_schema_t *evk_event_schema(const evk_event_t *ev) {
    return ev->schema;
}

const char *evk_event_type(const evk_event_t *ev) {
    return evk_schema_type(ev->schema);
}

avro_value_t *evk_event_value(evk_event_t *ev) {
    return &ev->value;
}

/* ---- metadata ---- */

static evk_err_t replace(char **slot, const char *value, size_t len) {
    char *copy = NULL;
    if (value) {
        copy = malloc(len + 1);
        if (!copy) return EVK_ERR_NOMEM;
        memcpy(copy, value, len);
        copy[len] = 0;
    }
    free(*slot);
    *slot = copy;
    return EVK_OK;
}

static evk_err_t set_meta(evk_event_t *ev, int which, const char *value) {
    return replace(&ev->meta[which], value, value ? strlen(value) : 0);
}

const char *evk_event_id(const evk_event_t *ev) {
    return ev->meta[M_ID];
}
const char *evk_event_source(const evk_event_t *ev) {
    return ev->meta[M_SOURCE];
}
const char *evk_event_time(const evk_event_t *ev) {
    return ev->meta[M_TIME];
}
const char *evk_event_key(const evk_event_t *ev) {
    return ev->meta[M_KEY];
}
const char *evk_event_correlation_id(const evk_event_t *ev) {
    return ev->meta[M_CORRELATION];
}
const char *evk_event_causation_id(const evk_event_t *ev) {
    return ev->meta[M_CAUSATION];
}

evk_err_t evk_event_set_id(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_ID, value);
}
evk_err_t evk_event_set_source(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_SOURCE, value);
}
evk_err_t evk_event_set_time(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_TIME, value);
}
evk_err_t evk_event_set_key(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_KEY, value);
}
evk_err_t evk_event_set_correlation_id(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_CORRELATION, value);
}
evk_err_t evk_event_set_causation_id(evk_event_t *ev, const char *value) {
    return set_meta(ev, M_CAUSATION, value);
}

void evk_event_origin(const evk_event_t *ev, const char **topic, int32_t *partition,
                      int64_t *offset) {
    if (topic) *topic = ev->topic;
    if (partition) *partition = ev->partition;
    if (offset) *offset = ev->offset;
}

evk_err_t evk_event_set_origin(evk_event_t *ev, const char *topic, int32_t partition,
                               int64_t offset) {
    if (replace(&ev->topic, topic, topic ? strlen(topic) : 0)) return EVK_ERR_NOMEM;
    ev->partition = partition;
    ev->offset = offset;
    return EVK_OK;
}

/* ---- field paths ---- */

/* What the caller wants at the end of a path; decides which branch of a
 * union a write selects. */
typedef enum { W_STRING, W_LONG, W_DOUBLE, W_BOOL, W_ARRAY, W_CONTAINER } want_t;

static avro_schema_t deref(avro_schema_t s) {
    while (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static int accepts(avro_schema_t s, want_t want) {
    switch (avro_typeof(deref(s))) {
    case AVRO_STRING:
    case AVRO_ENUM:
        return want == W_STRING;
    case AVRO_INT32:
    case AVRO_INT64:
        return want == W_LONG;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return want == W_DOUBLE;
    case AVRO_BOOLEAN:
        return want == W_BOOL;
    case AVRO_ARRAY:
        return want == W_ARRAY || want == W_CONTAINER;
    case AVRO_RECORD:
    case AVRO_MAP:
        return want == W_CONTAINER;
    default:
        return 0;
    }
}

/* Reading through a union: its current branch, unless that is null. */
static evk_err_t union_read(avro_value_t *v) {
    int d = -1;
    avro_value_t branch;
    if (avro_value_get_discriminant(v, &d) || d < 0) return EVK_ERR_NOT_FOUND;
    if (avro_value_get_current_branch(v, &branch)) return EVK_ERR_NOT_FOUND;
    if (avro_value_get_type(&branch) == AVRO_NULL) return EVK_ERR_NOT_FOUND;
    *v = branch;
    return EVK_OK;
}

/* Writing through a union: keep the current branch if it fits, else switch
 * to the first that does and give it its zero value (a record branch has
 * unions of its own that need a branch before the event can be encoded). */
static evk_err_t union_write(const evk_event_t *ev, avro_value_t *v, want_t want) {
    avro_schema_t us = avro_value_get_schema(v);
    int d = -1;
    avro_value_get_discriminant(v, &d);
    avro_value_t branch;
    if (d >= 0 && accepts(avro_schema_union_branch(us, d), want)) {
        if (avro_value_get_current_branch(v, &branch)) return EVK_ERR_NOMEM;
        *v = branch;
        return EVK_OK;
    }
    size_t n = avro_schema_union_size(us);
    for (size_t i = 0; i < n; i++) {
        if (!accepts(avro_schema_union_branch(us, (int)i), want)) continue;
        if (avro_value_set_branch(v, (int)i, &branch)) return EVK_ERR_NOMEM;
        *v = branch;
        return evk__value_init(evk__schema_doc(ev->schema), v);
    }
    return EVK_ERR_VALIDATION;
}

static evk_err_t unwrap(const evk_event_t *ev, avro_value_t *v, int write, want_t want) {
    if (avro_value_get_type(v) != AVRO_UNION) return EVK_OK;
    return write ? union_write(ev, v, want) : union_read(v);
}

/* Child @p name of a record, or entry @p name of a map (created on write). */
static evk_err_t child_by_name(const evk_event_t *ev, avro_value_t *v, const char *name,
                               int write) {
    avro_value_t child;
    avro_type_t t = avro_value_get_type(v);
    if (t == AVRO_RECORD || (t == AVRO_MAP && !write)) {
        if (avro_value_get_by_name(v, name, &child, NULL)) return EVK_ERR_NOT_FOUND;
        *v = child;
        return EVK_OK;
    }
    if (t != AVRO_MAP) return EVK_ERR_NOT_FOUND;
    int is_new = 0;
    if (avro_value_add(v, name, &child, NULL, &is_new)) return EVK_ERR_NOMEM;
    *v = child;
    return is_new ? evk__value_init(evk__schema_doc(ev->schema), v) : EVK_OK;
}

static evk_err_t child_by_index(avro_value_t *v, size_t index) {
    size_t size = 0;
    avro_value_t child;
    if (avro_value_get_type(v) != AVRO_ARRAY) return EVK_ERR_NOT_FOUND;
    if (avro_value_get_size(v, &size) || index >= size) return EVK_ERR_NOT_FOUND;
    if (avro_value_get_by_index(v, index, &child, NULL)) return EVK_ERR_NOT_FOUND;
    *v = child;
    return EVK_OK;
}

/* Parses "[<digits>]" at *p. */
static int parse_index(const char **p, size_t *out) {
    const char *s = *p + 1;
    size_t i = 0;
    if (*s < '0' || *s > '9') return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (i > (SIZE_MAX - 9) / 10) return 0;
        i = i * 10 + (size_t)(*s - '0');
    }
    if (*s != ']') return 0;
    *p = s + 1;
    *out = i;
    return 1;
}

/* One "name[i][j]" segment of a path, then the '.' that ends it. */
static evk_err_t step(const evk_event_t *ev, avro_value_t *v, const char **p, int write) {
    char name[256];
    size_t n = strcspn(*p, ".[");
    if (n == 0 || n >= sizeof name) return EVK_ERR_NOT_FOUND;
    memcpy(name, *p, n);
    name[n] = 0;
    *p += n;
    evk_err_t err = unwrap(ev, v, write, W_CONTAINER);
    if (!err) err = child_by_name(ev, v, name, write);
    while (!err && **p == '[') {
        size_t index;
        if (!parse_index(p, &index)) return EVK_ERR_NOT_FOUND;
        err = unwrap(ev, v, write, W_ARRAY);
        if (!err) err = child_by_index(v, index);
    }
    if (err) return err;
    if (**p == '.') {
        (*p)++;
        if (**p == 0) return EVK_ERR_NOT_FOUND;
    } else if (**p != 0) {
        return EVK_ERR_NOT_FOUND;
    }
    return EVK_OK;
}

/* Finds the value at @p path. With @p write, unions on the way are switched
 * to a branch that can hold what follows (ending in a @p want); a write that
 * then fails further on leaves them switched, at their zero value. */
static evk_err_t resolve(const evk_event_t *ev, const char *path, int write, want_t want,
                         avro_value_t *out) {
    if (!ev || !path) return EVK_ERR_INVALID_ARG;
    avro_value_t v = ev->value;
    const char *p = path;
    if (*p == 0) return EVK_ERR_NOT_FOUND;
    while (*p) {
        evk_err_t err = step(ev, &v, &p, write);
        if (err) return err;
    }
    evk_err_t err = unwrap(ev, &v, write, want);
    if (!err) *out = v;
    return err;
}

evk_err_t evk_event_get_string(const evk_event_t *ev, const char *path, const char **out) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 0, W_STRING, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_ENUM) {
        int sym = 0;
        avro_value_get_enum(&v, &sym);
        *out = avro_schema_enum_get(avro_value_get_schema(&v), sym);
        return *out ? EVK_OK : EVK_ERR_VALIDATION;
    }
    size_t size;
    if (avro_value_get_type(&v) != AVRO_STRING || avro_value_get_string(&v, out, &size))
        return EVK_ERR_VALIDATION;
    if (!*out) *out = "";
    return EVK_OK;
}

evk_err_t evk_event_get_long(const evk_event_t *ev, const char *path, int64_t *out) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 0, W_LONG, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_INT32) {
        int32_t i;
        if (avro_value_get_int(&v, &i)) return EVK_ERR_VALIDATION;
        *out = i;
        return EVK_OK;
    }
    if (avro_value_get_type(&v) != AVRO_INT64) return EVK_ERR_VALIDATION;
    return avro_value_get_long(&v, out) ? EVK_ERR_VALIDATION : EVK_OK;
}

evk_err_t evk_event_get_double(const evk_event_t *ev, const char *path, double *out) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 0, W_DOUBLE, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_FLOAT) {
        float f;
        if (avro_value_get_float(&v, &f)) return EVK_ERR_VALIDATION;
        *out = f;
        return EVK_OK;
    }
    if (avro_value_get_type(&v) != AVRO_DOUBLE) return EVK_ERR_VALIDATION;
    return avro_value_get_double(&v, out) ? EVK_ERR_VALIDATION : EVK_OK;
}

evk_err_t evk_event_get_bool(const evk_event_t *ev, const char *path, int *out) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 0, W_BOOL, &v);
    if (err) return err;
    if (avro_value_get_type(&v) != AVRO_BOOLEAN) return EVK_ERR_VALIDATION;
    return avro_value_get_boolean(&v, out) ? EVK_ERR_VALIDATION : EVK_OK;
}

evk_err_t evk_event_array_size(const evk_event_t *ev, const char *path, size_t *out) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 0, W_ARRAY, &v);
    if (err) return err;
    avro_type_t t = avro_value_get_type(&v);
    if (t != AVRO_ARRAY && t != AVRO_MAP) return EVK_ERR_VALIDATION;
    return avro_value_get_size(&v, out) ? EVK_ERR_VALIDATION : EVK_OK;
}

evk_err_t evk_event_set_string(evk_event_t *ev, const char *path, const char *value) {
    avro_value_t v;
    if (!value) return EVK_ERR_INVALID_ARG;
    evk_err_t err = resolve(ev, path, 1, W_STRING, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_ENUM) {
        int sym = avro_schema_enum_get_by_name(avro_value_get_schema(&v), value);
        if (sym < 0) return EVK_ERR_VALIDATION;
        return avro_value_set_enum(&v, sym) ? EVK_ERR_NOMEM : EVK_OK;
    }
    /* Strings are UTF-8 on the wire; keeping them so here means every
     * encoded event is readable by other Avro clients and as JSON. */
    if (avro_value_get_type(&v) != AVRO_STRING || !evk__utf8_valid(value, strlen(value)))
        return EVK_ERR_VALIDATION;
    return avro_value_set_string(&v, value) ? EVK_ERR_NOMEM : EVK_OK;
}

evk_err_t evk_event_set_long(evk_event_t *ev, const char *path, int64_t value) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 1, W_LONG, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_INT32) {
        if (value < INT32_MIN || value > INT32_MAX) return EVK_ERR_VALIDATION;
        return avro_value_set_int(&v, (int32_t)value) ? EVK_ERR_NOMEM : EVK_OK;
    }
    if (avro_value_get_type(&v) != AVRO_INT64) return EVK_ERR_VALIDATION;
    return avro_value_set_long(&v, value) ? EVK_ERR_NOMEM : EVK_OK;
}

evk_err_t evk_event_set_double(evk_event_t *ev, const char *path, double value) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 1, W_DOUBLE, &v);
    if (err) return err;
    if (avro_value_get_type(&v) == AVRO_FLOAT) {
        float f;
        if (!evk__float_from_double(value, &f)) return EVK_ERR_VALIDATION;
        return avro_value_set_float(&v, f) ? EVK_ERR_NOMEM : EVK_OK;
    }
    if (avro_value_get_type(&v) != AVRO_DOUBLE) return EVK_ERR_VALIDATION;
    return avro_value_set_double(&v, value) ? EVK_ERR_NOMEM : EVK_OK;
}

evk_err_t evk_event_set_bool(evk_event_t *ev, const char *path, int value) {
    avro_value_t v;
    evk_err_t err = resolve(ev, path, 1, W_BOOL, &v);
    if (err) return err;
    if (avro_value_get_type(&v) != AVRO_BOOLEAN) return EVK_ERR_VALIDATION;
    return avro_value_set_boolean(&v, value != 0) ? EVK_ERR_NOMEM : EVK_OK;
}

evk_err_t evk_event_append(evk_event_t *ev, const char *path, size_t *index) {
    avro_value_t v, child;
    size_t at;
    evk_err_t err = resolve(ev, path, 1, W_ARRAY, &v);
    if (err) return err;
    if (avro_value_get_type(&v) != AVRO_ARRAY) return EVK_ERR_VALIDATION;
    if (avro_value_append(&v, &child, &at)) return EVK_ERR_NOMEM;
    err = evk__value_init(evk__schema_doc(ev->schema), &child);
    if (!err && index) *index = at;
    return err;
}

/* ---- Confluent frame ---- */

evk_err_t evk_event_encode(const evk_event_t *ev, void **out, size_t *len) {
    if (!ev || !out || !len) return EVK_ERR_INVALID_ARG;
    avro_value_t v = ev->value;
    size_t body;
    /* Fails only for a union left without a branch through direct avro-c
     * access: the record does not match its schema. */
    if (avro_value_sizeof(&v, &body)) return EVK_ERR_VALIDATION;
    unsigned char *buf = malloc(EVK_FRAME_HEADER_SIZE + body);
    if (!buf) return EVK_ERR_NOMEM;
    uint32_t id = (uint32_t)evk_schema_id(ev->schema);
    buf[0] = 0;
    buf[1] = (unsigned char)(id >> 24);
    buf[2] = (unsigned char)(id >> 16);
    buf[3] = (unsigned char)(id >> 8);
    buf[4] = (unsigned char)id;
    avro_writer_t w = avro_writer_memory((char *)buf + EVK_FRAME_HEADER_SIZE, (int64_t)body);
    int rc = w ? avro_value_write(w, &v) : ENOMEM;
    if (w) avro_writer_free(w);
    if (rc) {
        free(buf);
        return rc == ENOMEM ? EVK_ERR_NOMEM : EVK_ERR_VALIDATION;
    }
    *out = buf;
    *len = EVK_FRAME_HEADER_SIZE + body;
    return EVK_OK;
}

/* ---- body validation ----
 * avro-c trusts the lengths it reads: a garbage string length or array count
 * makes it allocate that much, and it decodes ints past 5 bytes without
 * complaint. So the body is first walked once against the writer schema,
 * checking every length against the bytes that remain; only a body that
 * passes is handed to avro_value_read(). */

#define SCAN_MAX_DEPTH 64

typedef struct {
    const unsigned char *start, *p, *end;
    const char *type;
    char path[256];
    size_t plen;
    int depth;
    uint64_t items; /* array and map entries so far, against zero-byte items */
    char *errstr;
    size_t errstr_size;
} scan_t;

static evk_err_t scan_fail(scan_t *sc, evk_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static evk_err_t scan_fail(scan_t *sc, evk_err_t err, const char *fmt, ...) {
    char prefix[160];
    va_list ap;
    snprintf(prefix, sizeof prefix, "%s body: ", sc->type);
    va_start(ap, fmt);
    err = evk__fail_at(err, sc->errstr, sc->errstr_size, prefix, sc->path, fmt, ap);
    va_end(ap);
    return err;
}

static size_t scan_off(const scan_t *sc, const unsigned char *at) {
    return (size_t)(at - sc->start);
}

static size_t scan_left(const scan_t *sc) {
    return (size_t)(sc->end - sc->p);
}

static evk_err_t scan_past_end(scan_t *sc, const char *what, const unsigned char *at) {
    return scan_fail(sc, EVK_ERR_TRUNCATED,
                     "%s at offset %zu runs past the end of the %zu-byte body", what,
                     scan_off(sc, at), scan_off(sc, sc->end));
}

static size_t path_push(scan_t *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(scan_t *sc, const char *fmt, ...) {
    size_t saved = sc->plen;
    if (sc->plen < sizeof sc->path) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sc->path + sc->plen, sizeof sc->path - sc->plen, fmt, ap);
        va_end(ap);
        sc->plen = n < 0 ? sc->plen : sc->plen + (size_t)n;
        if (sc->plen >= sizeof sc->path) sc->plen = sizeof sc->path - 1;
    }
    return saved;
}

static void path_pop(scan_t *sc, size_t saved) {
    sc->plen = saved;
    sc->path[saved] = 0;
}

/* Zig-zag varint of at most @p max_bytes (5 for int, 10 for long). */
static evk_err_t scan_varint(scan_t *sc, const char *what, int max_bytes, int64_t *out) {
    const unsigned char *at = sc->p;
    uint64_t u = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (sc->p >= sc->end) return scan_past_end(sc, what, at);
        unsigned char b = *sc->p++;
        if (i == 9 && b > 1) break; /* bits beyond 64 */
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return EVK_OK;
        }
    }
    return scan_fail(sc, EVK_ERR_DECODE, "malformed %s at offset %zu", what, scan_off(sc, at));
}

/* A length prefix followed by that many bytes, which are skipped. */
static evk_err_t scan_counted(scan_t *sc, const char *what, const unsigned char **data,
                              size_t *len) {
    int64_t n;
    const unsigned char *at = sc->p;
    char desc[64];
    snprintf(desc, sizeof desc, "%s length", what);
    evk_err_t err = scan_varint(sc, desc, 10, &n);
    if (err) return err;
    if (n < 0)
        return scan_fail(sc, EVK_ERR_DECODE, "negative %s length %" PRId64 " at offset %zu",
                         what, n, scan_off(sc, at));
    if ((uint64_t)n > scan_left(sc)) {
        snprintf(desc, sizeof desc, "%s of %" PRId64 " bytes", what, n);
        return scan_past_end(sc, desc, sc->p);
    }
    *data = sc->p;
    *len = (size_t)n;
    sc->p += n;
    return EVK_OK;
}

static evk_err_t scan_string(scan_t *sc) {
    const unsigned char *s;
    size_t n;
    evk_err_t err = scan_counted(sc, "string", &s, &n);
    if (!err && !evk__utf8_valid((const char *)s, n))
        err = scan_fail(sc, EVK_ERR_DECODE, "string at offset %zu is not valid UTF-8",
                        scan_off(sc, s));
    return err;
}

static evk_err_t scan_fixed(scan_t *sc, const char *what, size_t n) {
    if (n > scan_left(sc)) return scan_past_end(sc, what, sc->p);
    sc->p += n;
    return EVK_OK;
}

static evk_err_t scan_int(scan_t *sc, avro_type_t t) {
    int64_t v = 0;
    const unsigned char *at = sc->p;
    evk_err_t err =
        scan_varint(sc, t == AVRO_INT32 ? "int" : "long", t == AVRO_INT32 ? 5 : 10, &v);
    if (!err && t == AVRO_INT32 && (v < INT32_MIN || v > INT32_MAX))
        err = scan_fail(sc, EVK_ERR_DECODE, "int %" PRId64 " at offset %zu out of range", v,
                        scan_off(sc, at));
    return err;
}

static evk_err_t scan_boolean(scan_t *sc) {
    if (sc->p >= sc->end) return scan_past_end(sc, "boolean", sc->p);
    if (*sc->p > 1)
        return scan_fail(sc, EVK_ERR_DECODE, "boolean byte 0x%02x at offset %zu", *sc->p,
                         scan_off(sc, sc->p));
    sc->p++;
    return EVK_OK;
}

/* An enum symbol or union branch index: 0 <= index < @p count. */
static evk_err_t scan_index(scan_t *sc, const char *what, size_t count, int64_t *out) {
    const unsigned char *at = sc->p;
    evk_err_t err = scan_varint(sc, what, 10, out);
    if (!err && (*out < 0 || (uint64_t)*out >= count))
        err = scan_fail(sc, EVK_ERR_DECODE, "%s %" PRId64 " at offset %zu out of range (%zu)",
                        what, *out, scan_off(sc, at), count);
    return err;
}

static evk_err_t scan_value(scan_t *sc, avro_schema_t s);

static evk_err_t scan_record(scan_t *sc, avro_schema_t s) {
    size_t n = avro_schema_record_size(s);
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(s, (int)i);
        size_t saved = path_push(sc, sc->plen ? ".%s" : "%s", name);
        evk_err_t err = scan_value(sc, avro_schema_record_field_get_by_index(s, (int)i));
        path_pop(sc, saved);
        if (err) return err;
    }
    return EVK_OK;
}

static evk_err_t scan_entry(scan_t *sc, avro_schema_t s, uint64_t index) {
    size_t saved;
    evk_err_t err;
    if (avro_typeof(s) == AVRO_MAP) {
        const unsigned char *key;
        size_t klen;
        err = scan_counted(sc, "map key", &key, &klen);
        if (err) return err;
        /* A key is an Avro string, held by avro-c as a C string: invalid
         * UTF-8 or a NUL would not survive the round trip. */
        if (!evk__utf8_valid((const char *)key, klen) || memchr(key, 0, klen))
            return scan_fail(sc, EVK_ERR_DECODE,
                             "map key at offset %zu is not valid UTF-8 without NUL",
                             scan_off(sc, key));
        saved = path_push(sc, "[\"%.*s\"]", (int)(klen < 64 ? klen : 64), (const char *)key);
        err = scan_value(sc, avro_schema_map_values(s));
    } else {
        saved = path_push(sc, "[%" PRIu64 "]", index);
        err = scan_value(sc, avro_schema_array_items(s));
    }
    path_pop(sc, saved);
    return err;
}

/* One block of an array or map; *count is 0 after the last one. A negative
 * count is followed by the block's size in bytes, which must match. */
static evk_err_t scan_block(scan_t *sc, avro_schema_t s, uint64_t *index, int64_t *count) {
    const char *what = avro_typeof(s) == AVRO_MAP ? "map block" : "array block";
    const unsigned char *at = sc->p;
    int64_t size = -1;
    evk_err_t err = scan_varint(sc, what, 10, count);
    if (err || *count == 0) return err;
    if (*count == INT64_MIN)
        return scan_fail(sc, EVK_ERR_DECODE, "malformed %s count at offset %zu", what,
                         scan_off(sc, at));
    if (*count < 0) {
        *count = -*count;
        err = scan_varint(sc, "block size", 10, &size);
        if (err) return err;
    }
    /* Every entry takes at least a byte, except entries of zero-byte types,
     * which the running total bounds instead; either way a garbage count
     * fails here rather than in the allocator. */
    sc->items += (uint64_t)*count;
    if ((uint64_t)*count > scan_left(sc) || sc->items > scan_off(sc, sc->end)) {
        char desc[64];
        snprintf(desc, sizeof desc, "%s of %" PRId64 " entries", what, *count);
        return scan_past_end(sc, desc, at);
    }
    const unsigned char *first = sc->p;
    for (int64_t i = 0; i < *count && !err; i++)
        err = scan_entry(sc, s, (*index)++);
    if (!err && size >= 0 && (size_t)(sc->p - first) != (uint64_t)size)
        err =
            scan_fail(sc, EVK_ERR_DECODE, "%s at offset %zu says %" PRId64 " bytes, holds %zu",
                      what, scan_off(sc, at), size, (size_t)(sc->p - first));
    return err;
}

static evk_err_t scan_blocks(scan_t *sc, avro_schema_t s) {
    uint64_t index = 0;
    int64_t count;
    evk_err_t err;
    do {
        err = scan_block(sc, s, &index, &count);
    } while (!err && count != 0);
    return err;
}

static evk_err_t scan_union(scan_t *sc, avro_schema_t s) {
    int64_t branch;
    evk_err_t err = scan_index(sc, "union branch", avro_schema_union_size(s), &branch);
    return err ? err : scan_value(sc, avro_schema_union_branch(s, (int)branch));
}

static evk_err_t scan_typed(scan_t *sc, avro_schema_t s) {
    int64_t sym;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return EVK_OK;
    case AVRO_BOOLEAN:
        return scan_boolean(sc);
    case AVRO_INT32:
    case AVRO_INT64:
        return scan_int(sc, avro_typeof(s));
    case AVRO_FLOAT:
        return scan_fixed(sc, "float", 4);
    case AVRO_DOUBLE:
        return scan_fixed(sc, "double", 8);
    case AVRO_STRING:
        return scan_string(sc);
    case AVRO_BYTES: {
        const unsigned char *b;
        size_t n;
        return scan_counted(sc, "bytes", &b, &n);
    }
    case AVRO_FIXED:
        return scan_fixed(sc, "fixed", (size_t)avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return scan_index(sc, "enum symbol", (size_t)avro_schema_enum_number_of_symbols(s),
                          &sym);
    case AVRO_UNION:
        return scan_union(sc, s);
    case AVRO_RECORD:
        return scan_record(sc, s);
    case AVRO_ARRAY:
    case AVRO_MAP:
        return scan_blocks(sc, s);
    default:
        return scan_fail(sc, EVK_ERR_DECODE, "unsupported schema type");
    }
}

static evk_err_t scan_value(scan_t *sc, avro_schema_t s) {
    /* Recursive schemas would otherwise let a crafted body nest as deep as
     * it is long, and overflow the stack. */
    if (sc->depth >= SCAN_MAX_DEPTH)
        return scan_fail(sc, EVK_ERR_DECODE, "nested deeper than %d levels", SCAN_MAX_DEPTH);
    sc->depth++;
    evk_err_t err = scan_typed(sc, deref(s));
    sc->depth--;
    return err;
}

/* @p writer is the schema the body was written with: @p s's own, or another
 * version of it. */
static evk_err_t scan_body(const evk_schema_t *s, avro_schema_t writer,
                           const unsigned char *body, size_t len, char *errstr,
                           size_t errstr_size) {
    scan_t sc = {.start = body,
                 .p = body,
                 .end = body + len,
                 .type = evk_schema_name(s),
                 .errstr = errstr,
                 .errstr_size = errstr_size};
    evk_err_t err = scan_value(&sc, writer);
    if (err) return err;
    size_t extra = scan_left(&sc);
    if (extra)
        return evk__fail(EVK_ERR_DECODE, errstr, errstr_size, "%s body: %zu trailing byte%s",
                         sc.type, extra, extra == 1 ? "" : "s");
    return EVK_OK;
}

/* ---- decode ---- */

static evk_err_t read_body(evk_event_t *ev, const unsigned char *body, size_t len, char *errstr,
                           size_t errstr_size) {
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)len);
    if (!r) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    int rc = avro_value_read(r, &ev->value);
    avro_reader_free(r);
    if (rc == ENOMEM) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (rc)
        return evk__fail(EVK_ERR_DECODE, errstr, errstr_size, "%s body: %s",
                         evk_schema_name(ev->schema), avro_strerror());
    return EVK_OK;
}

static const char *const header_names[M__CNT] = {
    [M_ID] = "ce_id",
    [M_SOURCE] = "ce_source",
    [M_TIME] = "ce_time",
    [M_KEY] = NULL, /* the message key, not a header */
    [M_CORRELATION] = "correlation_id",
    [M_CAUSATION] = "causation_id",
};

static evk_err_t read_headers(evk_event_t *ev, const rd_kafka_headers_t *headers) {
    for (int i = 0; i < M__CNT; i++) {
        const void *val;
        size_t size;
        if (!header_names[i] ||
            rd_kafka_header_get_last(headers, header_names[i], &val, &size) || !val)
            continue;
        if (replace(&ev->meta[i], val, size)) return EVK_ERR_NOMEM;
    }
    return EVK_OK;
}

/* Checks the 5-byte header and finds the reader's catalog entry and, when
 * the frame was written with another version of it, the writer. */
static evk_err_t read_frame_header(const evk_catalog_t *cat, const unsigned char *b, size_t len,
                                   const evk_schema_t **s, const evk__writer_t **w,
                                   char *errstr, size_t errstr_size) {
    if (len < EVK_FRAME_HEADER_SIZE)
        return evk__fail(EVK_ERR_TRUNCATED, errstr, errstr_size,
                         "frame is %zu byte%s, shorter than the %d-byte header", len,
                         len == 1 ? "" : "s", EVK_FRAME_HEADER_SIZE);
    if (b[0] != 0)
        return evk__fail(EVK_ERR_BAD_MAGIC, errstr, errstr_size,
                         "magic byte is 0x%02x, expected 0x00", b[0]);
    int32_t id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
                           (uint32_t)b[4]);
    return evk__catalog_writer(cat, id, s, w, errstr, errstr_size);
}

static evk_err_t read_resolved(const evk__writer_t *w, evk_event_t *ev,
                               const unsigned char *body, size_t len, char *errstr,
                               size_t errstr_size) {
    return w ? evk__writer_read(w, body, len, &ev->value, errstr, errstr_size)
             : read_body(ev, body, len, errstr, errstr_size);
}

evk_err_t evk_event_decode(const evk_catalog_t *cat, const void *value, size_t len,
                           const void *key, size_t key_len, const rd_kafka_headers_t *headers,
                           evk_event_t **out, char *errstr, size_t errstr_size) {
    const unsigned char *b = value;
    const evk_schema_t *s;
    const evk__writer_t *w;
    if (!out) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "out is NULL");
    *out = NULL;
    if (!cat || (!value && len))
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "catalog or value is NULL");
    evk_err_t err = read_frame_header(cat, b, len, &s, &w, errstr, errstr_size);
    if (err) return err;
    b += EVK_FRAME_HEADER_SIZE;
    len -= EVK_FRAME_HEADER_SIZE;
    err = scan_body(s, w ? evk__writer_schema(w) : evk_schema_avro(s), b, len, errstr,
                    errstr_size);
    if (err) return err;
    evk_event_t *ev = evk__event_alloc(s, 0);
    if (!ev) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    err = read_resolved(w, ev, b, len, errstr, errstr_size);
    if (!err && headers && read_headers(ev, headers))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!err && key && replace(&ev->meta[M_KEY], key, key_len))
        err = evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (err) {
        evk_event_destroy(ev);
        return err;
    }
    *out = ev;
    return EVK_OK;
}

evk_err_t evk_event_from_message(const evk_catalog_t *cat, const rd_kafka_message_t *msg,
                                 evk_event_t **out, char *errstr, size_t errstr_size) {
    if (!out || !msg)
        return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "message or out is NULL");
    *out = NULL;
    if (msg->err)
        return evk__fail(EVK_ERR_KAFKA, errstr, errstr_size, "%s",
                         rd_kafka_message_errstr(msg));
    rd_kafka_headers_t *headers = NULL;
    if (rd_kafka_message_headers(msg, &headers)) headers = NULL;
    evk_err_t err = evk_event_decode(cat, msg->payload, msg->len, msg->key, msg->key_len,
                                     headers, out, errstr, errstr_size);
    if (err) return err;
    const char *topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : NULL;
    if (evk_event_set_origin(*out, topic, msg->partition, msg->offset)) {
        evk_event_destroy(*out);
        *out = NULL;
        return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    return EVK_OK;
}

/* ---- CloudEvents headers ---- */

evk_err_t evk_event_headers(const evk_event_t *ev, rd_kafka_headers_t **out) {
    if (!ev || !out) return EVK_ERR_INVALID_ARG;
    *out = evk__ce_headers(ev->schema, ev->meta[M_ID], ev->meta[M_SOURCE], ev->meta[M_TIME],
                           ev->meta[M_CORRELATION], ev->meta[M_CAUSATION]);
    return *out ? EVK_OK : EVK_ERR_NOMEM;
}
