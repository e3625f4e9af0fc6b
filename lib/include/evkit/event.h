/**
 * @file event.h
 * @brief Events: an Avro record of a catalog type plus CloudEvents metadata,
 *        with the JSON and Kafka wire codecs.
 *
 * Wire contract (docs/WIRE.md): the Kafka value is the Confluent frame
 * (magic byte 0, 4-byte big-endian schema id, Avro binary body); headers are
 * the CloudEvents Kafka binding in binary mode (ce_specversion, ce_id, ce_type,
 * ce_source, ce_time, content-type) plus correlation_id and causation_id; the
 * key is the aggregate id, taken from the catalog's key field.
 *
 * Field paths name a value inside the record: "order_id", "items[0].sku",
 * "shipping.address.city". Optional fields (unions with null) read as
 * EVK_ERR_NOT_FOUND when null and are switched to their non-null branch when
 * set. Enum fields read and write as their symbol strings.
 *
 * An event is not thread-safe; distinct events may be used from distinct
 * threads.
 */
#ifndef EVKIT_EVENT_H
#define EVKIT_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <avro.h>
#include <librdkafka/rdkafka.h>
#include "error.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_event_s evk_event_t;

/** Confluent wire-format header size: magic byte + schema id. */
#define EVK_FRAME_HEADER_SIZE 5

/**
 * @brief New event of schema @p s with every field at its zero value (or its
 *        schema default), a fresh UUIDv4 id and ce_time = now.
 * @returns NULL only when out of memory.
 */
EVK_EXPORT evk_event_t *evk_event_new(const evk_schema_t *s);

/**
 * @brief New event of schema @p s caused by @p cause: same key and
 *        correlation_id (the cause's id if it has none), causation_id = the
 *        cause's id.
 */
EVK_EXPORT evk_event_t *evk_event_new_caused_by(const evk_schema_t *s,
                                                const evk_event_t *cause);

/** @brief Free @p ev. NULL is allowed. */
EVK_EXPORT void evk_event_destroy(evk_event_t *ev);

/** @brief Catalog entry of @p ev (its type, topic and schema id). */
EVK_EXPORT const evk_schema_t *evk_event_schema(const evk_event_t *ev);
/** @brief Full CloudEvents type, e.g. "shop.orders.OrderPlaced". */
EVK_EXPORT const char *evk_event_type(const evk_event_t *ev);

/* CloudEvents metadata. Strings are owned by the event; NULL when unset. */
EVK_EXPORT const char *evk_event_id(const evk_event_t *ev);
EVK_EXPORT const char *evk_event_source(const evk_event_t *ev);
EVK_EXPORT const char *evk_event_time(const evk_event_t *ev);
EVK_EXPORT const char *evk_event_key(const evk_event_t *ev);
EVK_EXPORT const char *evk_event_correlation_id(const evk_event_t *ev);
EVK_EXPORT const char *evk_event_causation_id(const evk_event_t *ev);

/** Setters copy @p value; NULL clears. EVK_ERR_NOMEM is the only failure. */
EVK_EXPORT evk_err_t evk_event_set_id(evk_event_t *ev, const char *value);
EVK_EXPORT evk_err_t evk_event_set_source(evk_event_t *ev, const char *value);
EVK_EXPORT evk_err_t evk_event_set_time(evk_event_t *ev, const char *value);
EVK_EXPORT evk_err_t evk_event_set_key(evk_event_t *ev, const char *value);
EVK_EXPORT evk_err_t evk_event_set_correlation_id(evk_event_t *ev, const char *value);
EVK_EXPORT evk_err_t evk_event_set_causation_id(evk_event_t *ev, const char *value);

/**
 * @brief Set @p ev's id to a UUID derived from @p base (an event id) and
 *        @p label: the same pair always gives the same id, different pairs
 *        different ids (a 128-bit hash; version 8, RFC 9562). Handlers use it
 *        so that a replayed input produces its outputs with the same ids,
 *        for readers to recognise as redeliveries.
 * @returns EVK_OK, EVK_ERR_INVALID_ARG (a NULL argument), EVK_ERR_NOMEM.
 */
EVK_EXPORT evk_err_t evk_event_derive_id(evk_event_t *ev, const char *base, const char *label);

/**
 * @brief Check that @p len bytes at @p key can be an event key, or any id
 *        that becomes one: keys are text (evk_event_set_key() takes a C
 *        string), so a U+0000 would cut a key short and let two aggregates
 *        share it, and an empty key names nothing. Other control characters
 *        garble logs and tools, so they are refused too.
 * @returns EVK_OK; EVK_ERR_VALIDATION with errstr "must not be empty" or
 *          "must not contain control characters (found U+0000)" (any of
 *          U+0000-U+001F, U+007F-U+009F), for the caller to prefix with the
 *          field or option it checked; EVK_ERR_INVALID_ARG when @p key is NULL
 *          and @p len is not 0.
 */
EVK_EXPORT evk_err_t evk_key_check(const char *key, size_t len, char *errstr,
                                   size_t errstr_size);

/**
 * @brief Where a consumed event came from; topic NULL and offset -1 for an
 *        event built locally. Set by the decoder's caller via
 *        evk_event_set_origin().
 */
EVK_EXPORT void evk_event_origin(const evk_event_t *ev, const char **topic, int32_t *partition,
                                 int64_t *offset);
EVK_EXPORT evk_err_t evk_event_set_origin(evk_event_t *ev, const char *topic, int32_t partition,
                                          int64_t offset);

/** @brief The record itself, for direct avro-c access. Owned by @p ev. */
EVK_EXPORT avro_value_t *evk_event_value(evk_event_t *ev);

/* ---- Field access by path. All return EVK_OK, EVK_ERR_NOT_FOUND (no such
 * field, index out of range, null optional) or EVK_ERR_VALIDATION (the field
 * has another type). Returned strings are owned by the event. ---- */
EVK_EXPORT evk_err_t evk_event_get_string(const evk_event_t *ev, const char *path,
                                          const char **out);
EVK_EXPORT evk_err_t evk_event_get_long(const evk_event_t *ev, const char *path,
                                        int64_t *out); /* int or long */
EVK_EXPORT evk_err_t evk_event_get_double(const evk_event_t *ev, const char *path,
                                          double *out); /* float or double */
EVK_EXPORT evk_err_t evk_event_get_bool(const evk_event_t *ev, const char *path, int *out);
EVK_EXPORT evk_err_t evk_event_array_size(const evk_event_t *ev, const char *path, size_t *out);

EVK_EXPORT evk_err_t evk_event_set_string(evk_event_t *ev, const char *path, const char *value);
/** Range-checked for int fields ("quantity: 3000000000 out of range for int"). */
EVK_EXPORT evk_err_t evk_event_set_long(evk_event_t *ev, const char *path, int64_t value);
/** Range-checked for float fields: EVK_ERR_VALIDATION when @p value does not
 *  round to a finite float (NaN and infinities included). */
EVK_EXPORT evk_err_t evk_event_set_double(evk_event_t *ev, const char *path, double value);
EVK_EXPORT evk_err_t evk_event_set_bool(evk_event_t *ev, const char *path, int value);
/** @brief Append a zero element to the array at @p path; *index gets its position. */
EVK_EXPORT evk_err_t evk_event_append(evk_event_t *ev, const char *path, size_t *index);

/* ---- JSON ---- */

/**
 * @brief Build an event of schema @p s from the JSON object @p json (the
 *        record's fields, not an envelope), validating as it goes.
 *
 * Errors name the field path and the reason, e.g.
 *   EVK_ERR_VALIDATION "items[0].quantity: expected int, got string"
 *   EVK_ERR_VALIDATION "customer_id: missing required field"
 *   EVK_ERR_VALIDATION "coupon: unknown field"
 *   EVK_ERR_JSON       "line 1, column 18: '}' expected near end of file" (jansson's text)
 *   EVK_ERR_VALIDATION "order_id: key must not be empty" (evk_key_check())
 * Fields with a schema default may be omitted. If the schema names a key
 * field, the event's key is set from it, and it must pass evk_key_check().
 */
EVK_EXPORT evk_err_t evk_event_from_json(const evk_schema_t *s, const char *json, size_t len,
                                         evk_event_t **out, char *errstr, size_t errstr_size);

/**
 * @brief The record as compact JSON (unions written as their plain value,
 *        not Avro's {"type": value} form). *out is malloc()ed; free() it.
 */
EVK_EXPORT evk_err_t evk_event_to_json(const evk_event_t *ev, char **out, size_t *len);

/* ---- JSON straight to the wire ---- */

/**
 * @brief A reader of JSON records of one type into Confluent frames, without
 *        building an event: the fast path of evk-produce and evk-order.
 *
 * It validates while it transcodes, walking the schema as it reads the
 * JSON, and writes the Avro body directly. What it accepts, and every error
 * message, are exactly evk_event_from_json()'s: input it cannot take on its
 * fast path (invalid, or unusual, such as a \u0000 or a duplicate key) is
 * handed to evk_event_from_json(), which decides. Not thread-safe: one reader
 * per thread. @p s must outlive the reader.
 *
 * @returns EVK_OK and *out; EVK_ERR_NOMEM; EVK_ERR_INVALID_ARG.
 */
typedef struct evk_json_reader_s evk_json_reader_t;
EVK_EXPORT evk_err_t evk_json_reader_new(const evk_schema_t *s, evk_json_reader_t **out);

/** @brief Free @p r. NULL is allowed. */
EVK_EXPORT void evk_json_reader_destroy(evk_json_reader_t *r);

/**
 * @brief Give top-level @p field the value @p json (JSON text, copied) when
 *        an input leaves it out, in place of its schema default (or of
 *        "missing required field"). Applies to every later frame until set
 *        again. Errors: EVK_ERR_NOT_FOUND (no such field), EVK_ERR_VALIDATION
 *        (the value does not fit the field), EVK_ERR_NOMEM.
 */
EVK_EXPORT evk_err_t evk_json_reader_set_default(evk_json_reader_t *r, const char *field,
                                                 const char *json, char *errstr,
                                                 size_t errstr_size);

/**
 * @brief The JSON record @p json (@p len bytes) as a Confluent frame.
 *
 * On success *frame (malloc()ed, ready for evk_producer_send_frame() or
 * RD_KAFKA_MSG_F_FREE) and *key (malloc()ed text of the catalog key field,
 * or NULL when there is none) pass to the caller. Errors are those of
 * evk_event_from_json(), with the same messages.
 */
EVK_EXPORT evk_err_t evk_json_reader_frame(evk_json_reader_t *r, const char *json, size_t len,
                                           void **frame, size_t *frame_len, char **key,
                                           char *errstr, size_t errstr_size);

/**
 * @brief CloudEvents headers for a frame of type @p s made without an event
 *        (evk_json_reader_frame()): what evk_event_headers() writes, with a
 *        fresh ce_id and ce_time = now. @p source, @p correlation_id and
 *        @p causation_id may be NULL (header left out). Ownership of *out
 *        passes to the caller (or on to evk_producer_send_frame()).
 */
EVK_EXPORT evk_err_t evk_frame_headers(const evk_schema_t *s, const char *source,
                                       const char *correlation_id, const char *causation_id,
                                       rd_kafka_headers_t **out);

/* ---- Kafka wire format ---- */

/**
 * @brief Encode @p ev as a Confluent frame. *out is malloc()ed (ready for
 *        RD_KAFKA_MSG_F_FREE).
 */
EVK_EXPORT evk_err_t evk_event_encode(const evk_event_t *ev, void **out, size_t *len);

/**
 * @brief CloudEvents binary-mode headers for @p ev. Ownership of *out passes
 *        to the caller (or on to rd_kafka_producev(RD_KAFKA_V_HEADERS)).
 */
EVK_EXPORT evk_err_t evk_event_headers(const evk_event_t *ev, rd_kafka_headers_t **out);

/**
 * @brief Decode a Kafka message value (+ optional key and headers).
 *
 * The schema id selects the catalog entry, or another version of its type
 * (catalog writers, or fetched from the schema registry the catalog uses),
 * which is then read into the entry's version by schema resolution. ce_*
 * headers, when present, fill the metadata. Errors:
 *   EVK_ERR_TRUNCATED         "frame is 3 bytes, shorter than the 5-byte header"
 *   EVK_ERR_BAD_MAGIC         "magic byte is 0x7b, expected 0x00"
 *   EVK_ERR_UNKNOWN_SCHEMA_ID "schema id 99 is not in the catalog"
 *   EVK_ERR_SCHEMA            "OrderPlaced: schema id 7 cannot be read as the catalog's
 *                              version: customer_id: writer's type long cannot be read as
 * string" EVK_ERR_IO                the registry could not be asked (see registry.h)
 *   EVK_ERR_TRUNCATED/DECODE  "OrderPlaced body: <reason>" (incl. trailing bytes)
 */
EVK_EXPORT evk_err_t evk_event_decode(const evk_catalog_t *cat, const void *value, size_t len,
                                      const void *key, size_t key_len,
                                      const rd_kafka_headers_t *headers, evk_event_t **out,
                                      char *errstr, size_t errstr_size);

/** @brief Decode a consumed message: evk_event_decode() plus its origin. */
EVK_EXPORT evk_err_t evk_event_from_message(const evk_catalog_t *cat,
                                            const rd_kafka_message_t *msg, evk_event_t **out,
                                            char *errstr, size_t errstr_size);

/** @brief A fresh random UUIDv4 in canonical text form; @p buf >= 37 bytes. */
EVK_EXPORT void evk_uuid4(char buf[37]);

/** @brief Current UTC time as RFC 3339 with milliseconds; @p buf >= 32 bytes. */
EVK_EXPORT void evk_now_rfc3339(char buf[32]);

#ifdef __cplusplus
}
#endif
#endif
