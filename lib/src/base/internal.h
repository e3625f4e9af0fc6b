/* The base layer's private helpers (errstr formatting, strings, time,
 * secrets, config internals, logging), for every layer. Not installed. */
#ifndef EVK_INTERNAL_H
#define EVK_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "evkit/config.h"
#include "evkit/error.h"
#include "evkit/log.h"

/* Format into a caller's errstr buffer; tolerates errstr == NULL. Returns err
 * so that failure paths read `return evk__fail(EVK_ERR_X, errstr, size, ...)`. */
evk_err_t evk__fail(evk_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The codecs' error at a field: "<prefix><path>: <message>", or
 * "<prefix><message>" at the top (an empty @p path). */
evk_err_t evk__fail_at(evk_err_t err, char *errstr, size_t errstr_size, const char *prefix,
                       const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* strdup that accepts NULL. */
char *evk__strdup0(const char *s);

/* Monotonic clock in milliseconds, for timeouts and backoff. */
int64_t evk__now_ms(void);

/* mkdir -p @p path (written to and restored), the directories it makes
 * private to the user; -1 with errno on failure. */
int evk__make_dirs(char *path);

/* Whether @p s ends with @p suffix. */
int evk__ends_with(const char *s, const char *suffix);

/* Whether a setting or log field called @p name holds a secret, whose value
 * is shown as <redacted>: a last name part (after the last '.') password,
 * passwd, secret, token, authorization or credentials; a name ending in
 * _password, _secret, _token, -token, .key, key.pem or
 * basic.auth.user.info; any sasl.* property. */
int evk__secret_name(const char *name);

/* Length of the "user:password@" at the start of @p authority (what follows
 * a URL's "://"), 0 if there is none. It ends at the last '@' before
 * whitespace, a quote or an angle bracket: a password may hold '/', '@',
 * '?' or '#' unescaped, and hiding a path's '@' with it is the safe mistake. */
size_t evk__url_userinfo_len(const char *authority);

/* Overwrite a secret, so that a core dump or a reused heap block does not
 * hand it on; evk__free_secret() then frees it too. NULL is allowed. */
void evk__wipe(char *s);
void evk__free_secret(char *s);

/* ---- configuration (config.c) ---- */

/* The content of the file at @p path, less trailing newlines: a secret kept
 * out of the config file and the command line. *out is malloc()ed (free it
 * with evk__free_secret()). EVK_ERR_CONFIG "<path>: <reason>". */
evk_err_t evk__secret_file_read(const char *path, char **out, char *errstr, size_t errstr_size);

/* "<file>:<line>" of the setting at @p path when it came from a file, else
 * NULL. Owned by @p cfg. */
const char *evk__config_source(const evk_config_t *cfg, const char *path);

/* Check the keys of @p group that @p cfg holds against @p ntables tables
 * (each ended by a NULL name): a listed key's value must read as its type;
 * with @p strict, a key a file set that no table lists is an error too
 * ("<file>:<line>: <group>.<key>: unknown setting"). Values set through the
 * API or the environment are type-checked only: their names are fixed by
 * code. */
evk_err_t evk__config_check_group(const evk_config_t *cfg, const char *group,
                                  const evk_setting_t *const *tables, size_t ntables,
                                  int strict, char *errstr, size_t errstr_size);

/* Level named @p name (debug, info, warn, error; any case); -1 if none is. */
int evk__log_level_from_name(const char *name, evk_log_level_t *out);

/* librdkafka's log callback for every client evkit makes: its lines in
 * evkit's log format, component "librdkafka". */
void evk__rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
