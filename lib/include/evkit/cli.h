/**
 * @file cli.h
 * @brief What evkit's command-line programs share: kcat-style options and
 *        documented exit codes (docs/CLI.md).
 */
#ifndef EVKIT_CLI_H
#define EVKIT_CLI_H

#include <stddef.h>
#include <stdio.h>
#include "config.h"
#include "error.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How long a program waits for the cluster to answer before it gives up. */
#define EVK_CLI_CONNECT_TIMEOUT_MS 10000

/** Exit codes of every evkit program. */
enum {
    EVK_EXIT_OK = 0,       /**< success */
    EVK_EXIT_USAGE = 1,    /**< bad command line */
    EVK_EXIT_CONFIG = 2,   /**< bad config, catalog or unreachable setup */
    EVK_EXIT_INPUT = 3,    /**< some input was invalid (the program's docs say what was sent) */
    EVK_EXIT_DELIVERY = 4, /**< a message could not be delivered / Kafka failed */
    EVK_EXIT_NOT_FOUND = 5, /**< the thing asked for does not exist (e.g. evk-order status) */
    EVK_EXIT_PENDING = 6    /**< it exists but is not processed yet (evk-order status of an
                                 order that order-service has not recorded) */
};

/**
 * The long options every program takes besides its own, for its getopt_long()
 * table (needs <getopt.h>): --help as -h, --version as -V.
 */
/* One line, or clang-format would split the two entries' braces apart: */
/* clang-format off */
#define EVK_CLI_LONGOPTS {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}
/* clang-format on */

/**
 * @brief Print "@p prog evkit VERSION (librdkafka VERSION)" on stdout, for
 *        -V/--version.
 */
EVK_EXPORT void evk_cli_version(const char *prog);

/**
 * The kcat-style options every program that talks to a cluster takes:
 * -b brokers, -X prop=val (repeatable), -F config file, -q quieter and -v
 * more verbose (repeatable); with -h/--help and -V/--version
 * (EVK_CLI_LONGOPTS) handled alike everywhere.
 */
typedef struct {
    const char *brokers;     /**< -b, or NULL */
    const char *config_file; /**< -F, or NULL */
    char **props;            /**< -X values (argv's strings), nprops of them */
    size_t nprops;
    int verbosity; /**< +1 per -v, -1 per -q: moves the log level (evk_log_verbosity());
                        below 0 a program also leaves out its own progress and
                        summary lines */
} evk_cli_opts_t;

/** The getopt letters of evk_cli_opts_t, for a program's optstring. */
#define EVK_CLI_OPTSTRING "b:X:F:hVqv"

/** evk_cli_opt(): the option was one of evk_cli_opts_t's, taken. */
#define EVK_CLI_TAKEN (-1)
/** evk_cli_opt(): the option is the program's own. */
#define EVK_CLI_NOT_MINE (-2)

/**
 * @brief Ready @p o for a command line of @p argc arguments (room for as
 *        many -X). Release with evk_cli_opts_clear().
 * @returns EVK_OK or EVK_ERR_NOMEM.
 */
EVK_EXPORT evk_err_t evk_cli_opts_init(evk_cli_opts_t *o, int argc);
EVK_EXPORT void evk_cli_opts_clear(evk_cli_opts_t *o);

/**
 * @brief Take getopt's option @p c (with @p arg) if it is a shared one:
 *        -b, -X and -F are stored in @p o (EVK_CLI_TAKEN); -h prints
 *        @p usage on stdout and -V "PROG evkit VERSION ..." (each returns
 *        EVK_EXIT_OK, for the program to exit with); anything else is
 *        EVK_CLI_NOT_MINE. The library never exits: the program does.
 *        -X needs @p o readied by evk_cli_opts_init().
 */
EVK_EXPORT int evk_cli_opt(evk_cli_opts_t *o, int c, char *arg, const char *prog,
                           void (*usage)(FILE *out, const char *prog));

/**
 * @brief An option's whole decimal number within [@p min, @p max] into
 *        *@p out. @returns 0; -1 for no number, text after it, or a number
 *        out of range (*@p out is then undefined).
 */
EVK_EXPORT int evk_cli_number(const char *s, long long min, long long max, long long *out);

/**
 * @brief For a bad command line: print "@p prog: MESSAGE" (@p fmt and its
 *        arguments, as printf) on stderr, then @p usage, or when @p usage is
 *        NULL "(@p prog --help shows the usage)".
 * @returns EVK_EXIT_USAGE, for the program to exit with.
 */
EVK_EXPORT int evk_cli_usage_error(const char *prog, void (*usage)(FILE *out, const char *prog),
                                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * @brief Wait up to @p timeout_ms for a broker of @p rk's cluster to answer
 *        (a metadata request), so that a program fails fast, with one line,
 *        instead of waiting for librdkafka's own timeouts (minutes) when
 *        nothing is reachable. evk_producer_connect() is this for a producer.
 * @returns EVK_OK; EVK_ERR_KAFKA with errstr "no broker reachable at
 *          <bootstrap.servers> after <n> s: <reason>".
 */
EVK_EXPORT evk_err_t evk_cli_connect(rd_kafka_t *rk, int timeout_ms, char *errstr,
                                     size_t errstr_size);

/**
 * @brief evk_cli_config() of @p o's options, then the log set up from it
 *        (evk_log_setup()) with -q/-v applied (evk_log_verbosity()).
 */
EVK_EXPORT evk_err_t evk_cli_opts_config(const evk_cli_opts_t *o, evk_config_t **out,
                                         char *errstr, size_t errstr_size);

/**
 * @brief Build a program's configuration from kcat-style options:
 *        @p config_file (-F, may be NULL: $EVK_CONFIG), environment,
 *        @p brokers (-b, may be NULL), then each "prop=value" of @p props (-X).
 *        Fails with EVK_ERR_CONFIG "no bootstrap servers: use -b, ..." when
 *        none is configured anywhere, since every program needs a cluster.
 */
EVK_EXPORT evk_err_t evk_cli_config(const char *config_file, const char *brokers,
                                    char *const *props, size_t nprops, evk_config_t **out,
                                    char *errstr, size_t errstr_size);

/**
 * @brief Load the schema catalog named by @p cfg (schemas.dir), with the
 *        error prefixed by the directory; with schema_registry.url set, take
 *        its ids from the registry (evk_catalog_use_registry()).
 */
EVK_EXPORT evk_err_t evk_cli_catalog(const evk_config_t *cfg, evk_catalog_t **out, char *errstr,
                                     size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
