/* The fuzz targets' catalogs, their initialisation and the round-trip
 * checks (fuzz_support.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_support.h"

evk_catalog_t *fuzz_catalogs[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dirs[2] = {EVK_FUZZ_SCHEMAS_DIR, EVK_FUZZ_RICH_DIR};
    char errstr[512];
    for (int i = 0; i < 2; i++)
        FUZZ_ASSERT(evk_catalog_load(dirs[i], &fuzz_catalogs[i], errstr, sizeof errstr) ==
                        EVK_OK,
                    "%s: %s", dirs[i], errstr);
    return 0;
}

static const evk_catalog_t *catalog_of(const evk_schema_t *s) {
    for (int i = 0; i < 2; i++)
        if (evk_catalog_by_id(fuzz_catalogs[i], evk_schema_id(s)) == s) return fuzz_catalogs[i];
    FUZZ_ASSERT(0, "schema %s is in neither catalog", evk_schema_name(s));
    return NULL;
}

static void dump(const char *what, const void *p, size_t n) {
    fprintf(stderr, "%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", ((const unsigned char *)p)[i]);
    fputc('\n', stderr);
}

/* Whether the key field holds what evk_key_check() refuses: the decoder
 * takes any string a foreign producer wrote, the JSON reader does not. */
static int key_refused(evk_event_t *ev) {
    const char *field = evk_schema_key_field(evk_event_schema(ev));
    avro_value_t v;
    const char *s = NULL;
    size_t size = 0;
    if (!field || avro_value_get_by_name(evk_event_value(ev), field, &v, NULL) ||
        avro_value_get_type(&v) != AVRO_STRING || avro_value_get_string(&v, &s, &size))
        return 0;
    return evk_key_check(s, size ? size - 1 : 0, NULL, 0) != EVK_OK;
}

/* JSON has no NaN or infinity (evk_event_to_json() writes them as null). */
static int has_nonfinite(const avro_value_t *v) {
    float f;
    double d;
    size_t n;
    avro_value_t child;
    switch (avro_value_get_type(v)) {
    case AVRO_FLOAT:
        return !avro_value_get_float(v, &f) && !isfinite(f);
    case AVRO_DOUBLE:
        return !avro_value_get_double(v, &d) && !isfinite(d);
    case AVRO_UNION:
        return !avro_value_get_current_branch(v, &child) && has_nonfinite(&child);
    case AVRO_RECORD:
    case AVRO_ARRAY:
    case AVRO_MAP:
        if (avro_value_get_size(v, &n)) return 0;
        for (size_t i = 0; i < n; i++)
            if (!avro_value_get_by_index(v, i, &child, NULL) && has_nonfinite(&child)) return 1;
        return 0;
    default:
        return 0;
    }
}

void fuzz_check_roundtrip(evk_event_t *ev) {
    const evk_schema_t *s = evk_event_schema(ev);
    const evk_catalog_t *cat = catalog_of(s);
    char errstr[512];
    void *frame;
    size_t len;
    FUZZ_ASSERT(evk_event_encode(ev, &frame, &len) == EVK_OK, "a valid %s does not encode",
                evk_schema_name(s));

    evk_event_t *again;
    evk_err_t err =
        evk_event_decode(cat, frame, len, NULL, 0, NULL, &again, errstr, sizeof errstr);
    if (err) dump("frame", frame, len);
    FUZZ_ASSERT(err == EVK_OK, "own frame does not decode: %s", errstr);
    void *frame2;
    size_t len2;
    FUZZ_ASSERT(evk_event_encode(again, &frame2, &len2) == EVK_OK,
                "decoded frame does not encode");
    if (len2 != len || memcmp(frame, frame2, len)) {
        dump("frame", frame, len);
        dump("re-encoded", frame2, len2);
        FUZZ_ASSERT(0, "decode/encode is not stable");
    }
    free(frame2);
    evk_event_destroy(again);

    char *json;
    size_t jlen;
    FUZZ_ASSERT(evk_event_to_json(ev, &json, &jlen) == EVK_OK, "a valid %s has no JSON",
                evk_schema_name(s));
    evk_event_t *from_json;
    if (has_nonfinite(evk_event_value(ev)) || key_refused(ev)) {
        /* A non-finite number is written as null, which reads back as an
         * error or as a union's null branch; a key field producers refuse
         * (empty, control characters) is still read from the wire. Lossy
         * by design, so the JSON need only be well formed. */
        json_error_t je;
        json_t *doc = json_loadb(json, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        FUZZ_ASSERT(doc, "own JSON is malformed: %s: %.*s", je.text, (int)jlen, json);
        json_decref(doc);
    } else {
        err = evk_event_from_json(s, json, jlen, &from_json, errstr, sizeof errstr);
        FUZZ_ASSERT(err == EVK_OK, "own JSON does not read back: %s: %.*s", errstr, (int)jlen,
                    json);
        FUZZ_ASSERT(evk_event_encode(from_json, &frame2, &len2) == EVK_OK,
                    "event read from JSON does not encode");
        if (len2 != len || memcmp(frame, frame2, len)) {
            fprintf(stderr, "json: %.*s\n", (int)jlen, json);
            dump("frame", frame, len);
            dump("from its JSON", frame2, len2);
            FUZZ_ASSERT(0, "JSON round trip changed the record");
        }
        free(frame2);
        evk_event_destroy(from_json);
    }
    free(json);
    free(frame);
}
