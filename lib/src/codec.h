/* Private interface between event.c (event object, paths, wire format) and
 * json.c (JSON codec, schema defaults). Not installed. */
#ifndef EVK_CODEC_H
#define EVK_CODEC_H

#include <stddef.h>
#include <avro.h>
#include <jansson.h>
#include "evkit/event.h"

/* An event whose record is allocated but not initialised: its unions have no
 * branch yet, so every field must be filled before it can be encoded. That
 * saves the decoder and the JSON reader from applying defaults they are
 * about to overwrite. With fresh_meta the event gets a new id and time. */
evk_event_t *evk__event_alloc(const evk_schema_t *s, int fresh_meta);

/* Set @p v to its schema default, or its zero value with unions on their
 * first branch, recursively. @p doc is the .avsc document holding the
 * defaults. Fails only when out of memory. */
evk_err_t evk__value_init(const json_t *doc, avro_value_t *v);

/* Fill @p v from @p in, validating against the value's schema; missing
 * fields take their default from @p doc. errstr names the path. */
evk_err_t evk__json_fill(const json_t *doc, const json_t *in, avro_value_t *v, char *errstr,
                         size_t errstr_size);

/* Default of field @p i of record @p s, read from the .avsc document @p doc
 * (avro-c does not expose defaults); NULL when the field has none. */
const json_t *evk__field_default(const json_t *doc, avro_schema_t s, size_t i);

/* Fill @p v from @p def, a field's schema default: unions take their first
 * branch (Avro spec), otherwise as evk__json_fill(). */
evk_err_t evk__json_fill_default(const json_t *doc, const json_t *def, avro_value_t *v,
                                 char *errstr, size_t errstr_size);

/* evk_event_from_json(), where each top-level field names[i] absent from
 * the input takes the JSON value values[i] first (json_stream.c's reader
 * defaults, so that its DOM path sees what its fast path saw). */
evk_err_t evk__event_from_json_with(const evk_schema_t *s, const char *json, size_t len,
                                    const char *const *names, const char *const *values,
                                    size_t n, evk_event_t **out, char *errstr,
                                    size_t errstr_size);

/* The fast path of evk_json_reader_frame() alone: EVK_OK with the Avro body
 * (owned by @p r, valid until its next use) when it takes @p json,
 * EVK_ERR_VALIDATION when it leaves @p json to the DOM path, EVK_ERR_NOMEM.
 * Tests use it to check that it never takes what the DOM path rejects. */
evk_err_t evk__json_reader_fast(evk_json_reader_t *r, const char *json, size_t len,
                                const unsigned char **body, size_t *body_len);

/* Whether JSON number @p d rounds to a finite float; if so, that float goes
 * to @p out. */
int evk__float_from_double(double d, float *out);

/* Length of the well-formed UTF-8 sequence at @p s (at most @p n bytes), or
 * 0 if the bytes there are not one. */
size_t evk__utf8_seq(const unsigned char *s, size_t n);

/* Whether all @p n bytes at @p s are well-formed UTF-8. */
int evk__utf8_valid(const char *s, size_t n);

#endif
