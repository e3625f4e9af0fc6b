/**
 * @file registry.h
 * @brief Confluent Schema Registry client, and a catalog that takes its
 *        schema ids from a registry.
 *
 * Without a registry, the ids in the Confluent frame come from
 * schemas/catalog.cfg. With `schema_registry.url` configured, every catalog
 * entry is registered (or, with auto.register off, looked up) under its
 * subject and the registry's id is what producers write; a consumer that
 * meets an id it does not know fetches that schema from the registry and
 * reads the frame through Avro schema resolution into its own (reader)
 * version of the type.
 *
 * Settings (group `schema_registry`; in a file '_' stands for '.', as in the
 * kafka group, so `basic_auth_user_info` is `basic.auth.user.info`):
 *   url                     base URL, e.g. "https://registry:8081" (required);
 *                           a user:password@ in it is used when
 *                           basic.auth.user.info is not set
 *   basic.auth.user.info    "user:password" for HTTP basic auth
 *   basic.auth.user.info.file, ssl.key.password.file
 *                           a file holding the value (less a trailing
 *                           newline), used when the value is not set
 *   ssl.ca.location         CA bundle that verifies the registry's certificate
 *   ssl.certificate.location, ssl.key.location, ssl.key.password
 *                           client certificate for mutual TLS
 *   subject.name.strategy   "topic" (<topic>-value, default), "record"
 *                           (<full type name>) or "topic_record"
 *                           (<topic>-<full type name>)
 *   auto.register           true (default): register schemas; false: only
 *                           look them up, failing if one is not registered
 *   timeout.ms              per request, default 10000
 * EVK_SCHEMA_REGISTRY_URL and EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO in the
 * environment set url and basic.auth.user.info.
 *
 * Credentials are never written into an error message: curl gets them
 * apart from the URL, which is shown without its user:password@ part (the
 * password may hold '/' or '@'). What the registry says in an error is
 * quoted with control characters escaped (\x1b), so that it cannot drive
 * the terminal it is printed on.
 *
 * A registry is thread-safe: requests are serialised on one connection and
 * every answer is cached for the registry's lifetime (ids are immutable).
 */
#ifndef EVKIT_REGISTRY_H
#define EVKIT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "error.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_registry_s evk_registry_t;

/**
 * @brief New client for the registry configured in @p cfg. No request is made.
 * @returns EVK_OK and *out; EVK_ERR_CONFIG ("schema_registry.url: not set",
 *          "schema_registry.timeout.ms: expected integer, ...",
 *          "schema_registry.basic_auth_user_info_file: <path>: No such file or
 *          directory").
 *          @p cfg is not referenced after the call.
 */
EVK_EXPORT evk_err_t evk_registry_new(const evk_config_t *cfg, evk_registry_t **out,
                                      char *errstr, size_t errstr_size);

/** @brief Free @p reg and its caches. NULL is allowed. */
EVK_EXPORT void evk_registry_destroy(evk_registry_t *reg);

/** @brief Whether @p cfg configures a registry (schema_registry.url is set). */
EVK_EXPORT int evk_registry_configured(const evk_config_t *cfg);

/**
 * @brief Register @p schema_json under @p subject
 *        (POST /subjects/<subject>/versions) and return its id. Registering a
 *        schema the subject already holds returns the existing id, so this is
 *        also how a producer finds its id. Answers are cached per subject and
 *        schema.
 * @returns EVK_OK; EVK_ERR_IO (registry unreachable, a timeout, HTTP 5xx,
 *          408 or 429: worth waiting for); EVK_ERR_CONFIG (HTTP 401/403:
 *          credentials refused); EVK_ERR_SCHEMA (HTTP 409 incompatible with
 *          the subject, 422 invalid); EVK_ERR_DECODE (the answer breaks the
 *          API: a 2xx that is not JSON or has no valid "id", another status;
 *          asked 3 times, 100 and 200 ms apart, before giving up), errstr
 *          quoting the registry's message.
 */
EVK_EXPORT evk_err_t evk_registry_register(evk_registry_t *reg, const char *subject,
                                           const char *schema_json, int32_t *id, char *errstr,
                                           size_t errstr_size);

/**
 * @brief Id of @p schema_json under @p subject without registering it
 *        (POST /subjects/<subject>). Cached like evk_registry_register().
 * @returns as evk_registry_register(), and EVK_ERR_NOT_FOUND (HTTP 404) when
 *          the subject or the schema is not registered.
 */
EVK_EXPORT evk_err_t evk_registry_lookup(evk_registry_t *reg, const char *subject,
                                         const char *schema_json, int32_t *id, char *errstr,
                                         size_t errstr_size);

/**
 * @brief Schema text of @p id (GET /schemas/ids/<id>), cached.
 * @param json receives the schema's JSON text, owned by @p reg and valid
 *             until evk_registry_destroy().
 * @returns EVK_OK; EVK_ERR_UNKNOWN_SCHEMA_ID (HTTP 404, or the schema is not
 *          Avro); EVK_ERR_DECODE (an answer without "schema", or whose schema
 *          does not parse, even when asked again); the other errors of
 *          evk_registry_register().
 */
EVK_EXPORT evk_err_t evk_registry_schema(evk_registry_t *reg, int32_t id, const char **json,
                                         char *errstr, size_t errstr_size);

/**
 * @brief Subject of @p s under the configured strategy, e.g. "orders-value".
 *        Written into @p buf; @returns EVK_ERR_INVALID_ARG if it does not fit.
 */
EVK_EXPORT evk_err_t evk_registry_subject(const evk_registry_t *reg, const evk_schema_t *s,
                                          char *buf, size_t size);

/**
 * @brief Make @p cat use @p reg: every entry's id becomes the registry's id
 *        for it (registered or looked up under its subject), and frames with
 *        other ids are decoded by fetching the writer's schema from @p reg.
 *        The catalog's own `writers` (older versions) are dropped: with a
 *        registry, ids mean the registry's ids only.
 *
 * Ownership of @p reg passes to @p cat, even on failure. On failure the
 * catalog holds a mix of ids and should be destroyed.
 * @returns EVK_OK or the failing request's error, errstr naming the type and
 *          subject ("OrderPlaced (orders-value): ..."); EVK_ERR_CONFIG when
 *          the registry gave two different schemas the same id ("the schema
 *          registry gave shop.orders.OrderPlaced and ... the same id 1: ids
 *          must be unique per schema ...").
 */
EVK_EXPORT evk_err_t evk_catalog_use_registry(evk_catalog_t *cat, evk_registry_t *reg,
                                              char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
