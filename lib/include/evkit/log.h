/**
 * @file log.h
 * @brief Structured logs on stderr: one line per record, logfmt or JSON.
 *
 * Programs call evk_log_setup() once (evk_cli_opts_config() does it for
 * them); the library and handlers then log through evk_log(). Level and
 * format come from the config (log.level = "debug"|"info"|"warn"|"error",
 * log.format = "logfmt"|"json") and the environment (EVK_LOG_LEVEL,
 * EVK_LOG_FORMAT), the environment winning; the command line's -v/-q
 * (evk_log_verbosity()) then move the level. Values of keys that name a
 * secret (the same rule as the config's: password, secret, token, ...,
 * sasl.*) are written as "<redacted>", and so is the user:password part of
 * any URL in a value (HTTP basic auth).
 */
#ifndef EVKIT_LOG_H
#define EVKIT_LOG_H

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EVK_LOG_DEBUG, EVK_LOG_INFO, EVK_LOG_WARN, EVK_LOG_ERROR } evk_log_level_t;

/**
 * @brief Read log.level/log.format from @p cfg (may be NULL) and the
 *        environment. Without it: info, logfmt.
 * @returns EVK_ERR_CONFIG for an unknown level or format.
 */
EVK_EXPORT evk_err_t evk_log_setup(const evk_config_t *cfg, char *errstr, size_t errstr_size);

/**
 * @brief Move the level @p steps toward debug (negative: toward error) from
 *        the one evk_log_setup() reads, now and at every later
 *        evk_log_setup(): -v is 1, -vv 2, -q -1. The level stays within
 *        debug..error.
 */
EVK_EXPORT void evk_log_verbosity(int steps);

/** @brief Would a record at @p level be written? Lets callers skip building it. */
EVK_EXPORT int evk_log_enabled(evk_log_level_t level);

/**
 * @brief Write one record: time, level, @p component, @p msg, then the
 *        key/value string pairs that follow, terminated by NULL:
 *        evk_log(EVK_LOG_INFO, "inventory-service", "reserved",
 *                "order_id", id, "items", "3", NULL);
 *        A NULL value is written as an empty string. Thread-safe: a
 *        record is written with one write(2).
 */
EVK_EXPORT void evk_log(evk_log_level_t level, const char *component, const char *msg, ...)
    __attribute__((sentinel));

#ifdef __cplusplus
}
#endif
#endif
