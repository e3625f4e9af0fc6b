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
evk_event_t *evk_event_alloc(const evk_schema_t *s, int fresh_meta);

/* Set @p v to its schema default, or its zero value with unions on their
 * first branch, recursively. @p doc is the .avsc document holding the
 * defaults. Fails only when out of memory. */
evk_err_t evk_value_init(const json_t *doc, avro_value_t *v);

/* Fill @p v from @p in, validating against the value's schema; missing
 * fields take their default from @p doc. errstr names the path. */
evk_err_t evk_json_fill(const json_t *doc, const json_t *in, avro_value_t *v, char *errstr,
                        size_t errstr_size);

/* Length of the well-formed UTF-8 sequence at @p s (at most @p n bytes), or
 * 0 if the bytes there are not one. */
size_t evk_utf8_seq(const unsigned char *s, size_t n);

/* Whether all @p n bytes at @p s are well-formed UTF-8. */
int evk_utf8_valid(const char *s, size_t n);

#endif
