/* evk-order's parts: shared options and environment, the order sender, and
 * one file per command (docs/CLI.md, "evk-order"). */
#ifndef EVK_ORDER_H
#define EVK_ORDER_H

#include <stdint.h>
#include <stdio.h>

#include "evkit/evkit.h"

#define PROG "evk-order"

/* kcat-style options (lib/include/evkit/cli.h), accepted before or after
 * the command. */
typedef evk_cli_opts_t order_opts_t;

/* getopt letters every command accepts, and their handler: 1 if @c was one
 * (-h and -V exit, with evk-order's help or version). */
#define ORDER_COMMON_OPTS EVK_CLI_OPTSTRING
/* The long options every command's table ends with. */
/* clang-format off */
#define ORDER_COMMON_LONGOPTS EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}
/* clang-format on */
int order_common_opt(order_opts_t *o, int c, char *arg);

typedef struct {
    evk_config_t *cfg;
    evk_catalog_t *cat;
    const evk_schema_t *placed; /* OrderPlaced */
} order_env_t;

/* Config, logging and catalog from @o; returns an exit code (message printed). */
int order_env_open(const order_opts_t *o, order_env_t *env);
void order_env_close(order_env_t *env);

/* A new OrderPlaced with a fresh "o-<uuid>" id, created_at = now. */
evk_event_t *order_new(const order_env_t *env, const char *customer, const char *currency);
evk_err_t order_add_line(evk_event_t *order, const char *sku, int64_t quantity,
                         int64_t unit_price_cents);
int64_t order_now_ms(void);

/* ---- sending (order_send.c) ---- */

typedef struct {
    evk_producer_t *producer;
    int print_ids; /* print each delivered order's id on stdout */
    uint64_t sent, delivered;
} order_sender_t;

int order_sender_open(order_sender_t *s, const order_env_t *env, int print_ids);
/* Queue @order (consumed), keyed and correlated by its order id. 0 or -1. */
int order_send(order_sender_t *s, evk_event_t *order);

/* Flush and close; EVK_EXIT_OK or EVK_EXIT_DELIVERY. */
int order_sender_close(order_sender_t *s);

/* ---- commands: each parses its arguments (argv[0] is the command) ---- */
int order_cmd_place(int argc, char **argv, order_opts_t *o);
int order_cmd_publish(int argc, char **argv, order_opts_t *o);
int order_cmd_generate(int argc, char **argv, order_opts_t *o);
int order_cmd_status(int argc, char **argv, order_opts_t *o);

/* Print "evk-order: <msg>" and the usage hint; returns EVK_EXIT_USAGE. */
/* evk-order's usage on @p out; order_usage_error() prints it after the error. */
void order_usage(FILE *out, const char *prog);
#define order_usage_error(...) evk_cli_usage_error(PROG, order_usage, __VA_ARGS__)

#endif
