/**
 * @file config.h
 * @brief evkit configuration: a libconfig file, environment and CLI overrides.
 *
 * A configuration is built in layers, later ones winning:
 *   1. built-in defaults (acks=all, enable.idempotence=true,
 *      partitioner=murmur2_random: Java's, so keys land alike from any client);
 *   2. the file given to evk_config_load() (libconfig syntax, see
 *      config/evkit.cfg for a commented example);
 *   3. the environment, applied by evk_config_apply_env();
 *   4. explicit calls to evk_config_set_kafka() / evk_config_set() (CLI -X).
 *
 * File layout:
 * @code
 * kafka = {                       # librdkafka properties, passed through
 *   bootstrap_servers = "k1:9092,k2:9092";   # '_' stands for '.', because
 *   security_protocol = "SASL_SSL";          # libconfig names cannot hold dots
 *   sasl_password = "...";
 * };
 * schemas = { dir = "schemas"; };             # catalog directory
 * inventory = { seed_file = "config/stock.cfg"; };   # one group per service
 * @endcode
 *
 * Environment: EVK_BOOTSTRAP_SERVERS sets bootstrap.servers, EVK_SCHEMAS_DIR
 * sets schemas.dir, EVK_SCHEMA_REGISTRY_URL and
 * EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO set schema_registry.url and
 * schema_registry.basic.auth.user.info, and any EVK_KAFKA_<NAME> sets the
 * librdkafka property <name> lowercased with '_' turned into '.'
 * (EVK_KAFKA_SASL_PASSWORD -> sasl.password). EVK_METRICS_PORT and
 * EVK_METRICS_BIND set metrics.port and metrics.bind and replace every
 * <service>.metrics_port / <service>.metrics_bind already loaded (see
 * service.h).
 *
 * Secrets from files: a librdkafka property "<name>.file" (in a file
 * `<name>_file`, in the environment EVK_KAFKA_<NAME>_FILE) names a file
 * whose content, less a trailing newline, is the value of <name>:
 * `sasl_password_file = "/run/secrets/kafka";`. So do
 * schema_registry.basic_auth_user_info_file and ssl_key_password_file
 * (registry.h). Unlike `-X name=value`, neither a file nor the environment
 * shows in `ps`.
 *
 * Checks: a file's top level holds groups only. evkit's own groups (kafka,
 * schemas, schema_registry, log, metrics) take only their own keys, with
 * values of the right type; any other key fails the load with its file and
 * line, as does a group named one typo away from one of them
 * (schema_regsitry, kakfa, metric). Every other group belongs to a service
 * and is checked by it (evk_service_settings()). Numbers and booleans may be
 * quoted ("5", "true"); a string may not be a bare number.
 */
#ifndef EVKIT_CONFIG_H
#define EVKIT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_config_s evk_config_t;

/** The type a setting's value must have. */
typedef enum {
    EVK_SETTING_STRING, /**< a string: "text" */
    EVK_SETTING_INT,    /**< an integer: 5 or "5" */
    EVK_SETTING_BOOL,   /**< a boolean: true or "true" (evk_config_get_bool()'s spellings) */
    EVK_SETTING_LIST    /**< a list of strings: ["a", "b"] or ("a", "b") */
} evk_setting_type_t;

/**
 * One key of a config group and its type. Tables of them end with an entry
 * whose name is NULL, e.g. `{{"seed_file", EVK_SETTING_STRING}, {NULL, 0}}`.
 */
typedef struct evk_setting_s {
    const char *name; /**< the key as a file spells it: "seed_file" */
    evk_setting_type_t type;
} evk_setting_t;

/** @brief New configuration holding only the built-in defaults. */
EVK_EXPORT evk_config_t *evk_config_new(void);

/** @brief Free @p cfg. NULL is allowed. */
EVK_EXPORT void evk_config_destroy(evk_config_t *cfg);

/**
 * @brief What every evkit program does at start: new config, load @p path
 *        (NULL: $EVK_CONFIG if set, else no file), then evk_config_apply_env().
 * @returns EVK_OK and *out, or the error of the failing step with errstr set.
 */
EVK_EXPORT evk_err_t evk_config_open(const char *path, evk_config_t **out, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Merge the libconfig file at @p path into @p cfg.
 *
 * @returns EVK_OK; EVK_ERR_IO if the file cannot be opened; EVK_ERR_CONFIG for
 *          a syntax error, a value of the wrong kind or an unknown key (see
 *          "Checks" in the file comment). errstr then reads
 *          "<path>:<line>: <reason>", e.g. "evkit.cfg:7: schemas.dri: unknown
 *          setting; did you mean \"dir\"?". A failed load changes nothing.
 */
EVK_EXPORT evk_err_t evk_config_load(evk_config_t *cfg, const char *path, char *errstr,
                                     size_t errstr_size);

/** @brief Apply EVK_* environment overrides (see file comment). */
EVK_EXPORT evk_err_t evk_config_apply_env(evk_config_t *cfg, char *errstr, size_t errstr_size);

/**
 * @brief Set librdkafka property @p name (dotted form) to @p value.
 * The value is checked against librdkafka at once, so a typo fails here.
 * "<property>.file" sets <property> to the content of the file @p value
 * names (see the file comment).
 * @returns EVK_OK or EVK_ERR_CONFIG ("kafka.<name>: <librdkafka's reason>",
 *          "kafka.<name>.file: <path>: No such file or directory").
 */
EVK_EXPORT evk_err_t evk_config_set_kafka(evk_config_t *cfg, const char *name,
                                          const char *value, char *errstr, size_t errstr_size);

/**
 * @brief Parse "name=value" (kcat's -X) and call evk_config_set_kafka().
 * @returns EVK_ERR_CONFIG if there is no '='; errstr then shows the argument
 *          only if it is a property name, since it may be a misplaced value.
 */
EVK_EXPORT evk_err_t evk_config_set_kafka_kv(evk_config_t *cfg, const char *kv, char *errstr,
                                             size_t errstr_size);

/** @brief Current value of librdkafka property @p name, or NULL. Owned by @p cfg. */
EVK_EXPORT const char *evk_config_kafka_get(const evk_config_t *cfg, const char *name);

/**
 * @brief A new rd_kafka_conf_t holding every kafka property of @p cfg, with
 *        a log callback that writes librdkafka's lines in evkit's log format
 *        (component "librdkafka"; replace it with rd_kafka_conf_set_log_cb()).
 * One default differs from librdkafka's: reconnect.backoff.max.ms is 1000
 * (as in Java clients; librdkafka's 10000 leaves a broker that is back
 * unused for up to 10 s) unless @p cfg sets it or reconnect.backoff.ms.
 * Ownership passes to the caller (usually on to rd_kafka_new()).
 * @returns NULL with errstr set if librdkafka refuses a property.
 */
EVK_EXPORT rd_kafka_conf_t *evk_config_kafka_conf(const evk_config_t *cfg, char *errstr,
                                                  size_t errstr_size);

/**
 * @brief Set a non-Kafka setting, @p path dotted ("inventory.seed_file").
 * Used for CLI overrides and tests.
 */
EVK_EXPORT evk_err_t evk_config_set(evk_config_t *cfg, const char *path, const char *value);

/**
 * @brief String setting at dotted @p path, or @p def when absent.
 * Numbers and booleans in the file are returned in their text form.
 * The result is owned by @p cfg and valid until it changes.
 */
EVK_EXPORT const char *evk_config_get_string(const evk_config_t *cfg, const char *path,
                                             const char *def);

/**
 * @brief Integer setting at @p path, or @p def when absent.
 * @returns EVK_ERR_CONFIG ("<path>: expected integer, got \"abc\"") when
 *          present but not an integer; errstr starts with "<file>:<line>: "
 *          when the value came from a file.
 */
EVK_EXPORT evk_err_t evk_config_get_int(const evk_config_t *cfg, const char *path, int64_t def,
                                        int64_t *out, char *errstr, size_t errstr_size);

/** @brief Boolean setting (true/false/1/0/yes/no) at @p path, like evk_config_get_int(). */
EVK_EXPORT evk_err_t evk_config_get_bool(const evk_config_t *cfg, const char *path, int def,
                                         int *out, char *errstr, size_t errstr_size);

/**
 * @brief List-of-strings setting at @p path (`path = ["a", "b"];`).
 * @param out receives a NULL-terminated array, malloc()ed: the caller frees
 *            the array with free(); the strings are owned by @p cfg and valid
 *            until it changes. An absent setting gives an empty array.
 * @param n receives the number of strings; may be NULL.
 * @returns EVK_OK; EVK_ERR_CONFIG when the setting is not a list of strings,
 *          e.g. "<file>:<line>: payment-service.blocked_customers: expected
 *          list of strings, got \"c-1\"" (*out is then NULL); EVK_ERR_NOMEM.
 */
EVK_EXPORT evk_err_t evk_config_get_list(const evk_config_t *cfg, const char *path,
                                         const char ***out, size_t *n, char *errstr,
                                         size_t errstr_size);

/**
 * @brief Directory of the schema catalog: schemas.dir (or EVK_SCHEMAS_DIR);
 *        else, for a program in evkit's build tree, the source tree's;
 *        else the first that has a catalog.cfg of the program's own prefix
 *        (<bin>/../share/evkit/schemas) and the prefix evkit was built for.
 */
EVK_EXPORT const char *evk_config_schemas_dir(const evk_config_t *cfg);

#ifdef __cplusplus
}
#endif
#endif
