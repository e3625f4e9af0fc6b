/* The schema layer's private interface: catalog internals, schema
 * evolution, the registry and CloudEvents headers for the codec, and what
 * event.c (event object, paths, wire format) and json.c (JSON codec, schema
 * defaults) share. Not installed. */
#ifndef EVK_CODEC_H
#define EVK_CODEC_H

#include <stddef.h>
#include <avro.h>
#include <jansson.h>
#include "evkit/event.h"
#include "evkit/schema.h"
#include "internal.h"

/* Catalog internals the codec needs (implemented in catalog.c). */

/* avro-c generic value class for the entry's schema; created once at load so
 * that events do not pay for it. Owned by the catalog. */
avro_value_iface_t *evk__schema_iface(const evk_schema_t *s);

/* The parsed .avsc document, for field defaults (avro-c does not expose
 * them). Owned by the catalog. */
const json_t *evk__schema_doc(const evk_schema_t *s);

/* ---- schema evolution (evolve.c) ----
 * A writer is a schema id whose schema differs from the catalog entry that
 * reads it: an older version of the type (catalog "writers") or one met in
 * a schema registry. */
typedef struct evk__writer_s evk__writer_t;

/* Check that @p schema can be read as @p reader under Avro's resolution
 * rules and build the writer; errstr names the first incompatible field.
 * Takes its own reference to @p schema. */
evk_err_t evk__writer_new(const evk_schema_t *reader, int32_t id, avro_schema_t schema,
                          evk__writer_t **out, char *errstr, size_t errstr_size);
void evk__writer_destroy(evk__writer_t *w);
int32_t evk__writer_id(const evk__writer_t *w);
const evk_schema_t *evk__writer_reader(const evk__writer_t *w);
avro_schema_t evk__writer_schema(const evk__writer_t *w);

/* Read the Avro @p body written with @p w into @p out, a fresh (not yet
 * initialised) value of the reader's schema. The body must have passed the
 * frame scan against evk__writer_schema(). */
evk_err_t evk__writer_read(const evk__writer_t *w, const void *body, size_t len,
                           avro_value_t *out, char *errstr, size_t errstr_size);

/* How to read schema id @p id: *reader is the catalog entry, *writer NULL
 * when the frame was written with that very schema, else the writer to
 * resolve it with (from the catalog, or fetched from the registry and
 * cached). EVK_ERR_UNKNOWN_SCHEMA_ID when neither knows the id. */
evk_err_t evk__catalog_writer(const evk_catalog_t *cat, int32_t id, const evk_schema_t **reader,
                              const evk__writer_t **writer, char *errstr, size_t errstr_size);

/* Whether the registry may register schemas (schema_registry.auto.register). */
struct evk_registry_s;
int evk__registry_auto_register(const struct evk_registry_s *reg);

/* The CloudEvents binary-mode headers of docs/WIRE.md, in their order; NULL
 * values are left out. NULL when out of memory. */
rd_kafka_headers_t *evk__ce_headers(const evk_schema_t *s, const char *id, const char *source,
                                    const char *time, const char *correlation_id,
                                    const char *causation_id);

/* ---- event and JSON codec (event.c, json.c, json_stream.c) ---- */

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
