/**
 * @file error.h
 * @brief Error codes shared by every evkit call.
 *
 * Calls that can fail return an ::evk_err_t. Where the code alone cannot say
 * what went wrong (which field, which line, which broker), the call also takes
 * a caller-owned `errstr` buffer and writes a NUL-terminated, human-readable
 * reason into it. The library never prints and never exits.
 */
#ifndef EVKIT_ERROR_H
#define EVKIT_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EVK_OK = 0,
    EVK_ERR_INVALID_ARG,       /**< caller passed a NULL or out-of-range argument */
    EVK_ERR_NOMEM,             /**< allocation failed */
    EVK_ERR_IO,                /**< file could not be read or written */
    EVK_ERR_CONFIG,            /**< configuration file or property is invalid */
    EVK_ERR_SCHEMA,            /**< schema file or catalog entry is invalid */
    EVK_ERR_UNKNOWN_TYPE,      /**< event type is not in the catalog */
    EVK_ERR_JSON,              /**< input is not well-formed JSON */
    EVK_ERR_VALIDATION,        /**< JSON does not match the event's schema */
    EVK_ERR_NOT_FOUND,         /**< field path does not exist in the event */
    EVK_ERR_TRUNCATED,         /**< frame or Avro body ends early */
    EVK_ERR_BAD_MAGIC,         /**< first byte is not the Confluent magic byte 0 */
    EVK_ERR_UNKNOWN_SCHEMA_ID, /**< schema id is neither in the catalog nor the registry */
    EVK_ERR_DECODE,            /**< Avro body does not decode with the writer schema, or a
                                    schema registry's answer does not decode */
    EVK_ERR_KAFKA,             /**< librdkafka reported an error (see errstr) */
    EVK_ERR_DELIVERY,          /**< a message could not be delivered */
    EVK_ERR_TIMEOUT,           /**< operation did not finish in the given time */
    EVK_ERR_RETRY,             /**< transient failure: a handler asks to be retried */
    EVK_ERR_FATAL,             /**< unrecoverable: the service must stop (e.g. fenced) */
    EVK_ERR__CNT               /**< number of codes, not an error */
} evk_err_t;

/**
 * @brief Short, static description of @p err ("unknown schema id").
 *        Never NULL; unknown codes give "unknown error".
 */
EVK_EXPORT const char *evk_err2str(evk_err_t err);

/** @brief Stable symbolic name of @p err ("EVK_ERR_BAD_MAGIC"). */
EVK_EXPORT const char *evk_err_name(evk_err_t err);

#ifdef __cplusplus
}
#endif
#endif
