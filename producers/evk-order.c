/* evk-order: place, publish, generate orders and show their status.
 * See docs/CLI.md, "evk-order". */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"
#include "rules.h"

void order_usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out,
            "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] [-q|-v] COMMAND ...\n"
            "       " PROG " -h|--help | -V|--version   (also after a COMMAND)\n"
            "  place --customer C --item SKU:QTY:PRICE_CENTS [--item ...] [--currency EUR]\n"
            "  publish [--strict] FILE|-      OrderPlaced JSON lines\n"
            "  generate --count N [--rate R] [--skus SKU-1,SKU-2] [--customers N] [--seed S]\n"
            "  status [--json] ORDER_ID\n");
}

/* The same help whatever the command: it names every command's options. */
int order_common_opt(order_opts_t *o, int c, char *arg) {
    int shared = evk_cli_opt(o, c, arg, PROG, order_usage);
    if (shared != EVK_CLI_TAKEN && shared != EVK_CLI_NOT_MINE) exit(shared);
    return shared == EVK_CLI_TAKEN;
}

int order_env_open(const order_opts_t *o, order_env_t *env) {
    char errstr[1024];
    *env = (order_env_t){0};
    if (evk_cli_opts_config(o, &env->cfg, errstr, sizeof errstr) ||
        evk_log_setup(env->cfg, errstr, sizeof errstr) ||
        evk_cli_catalog(env->cfg, &env->cat, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        order_env_close(env);
        return EVK_EXIT_CONFIG;
    }
    if (!(env->placed = evk_catalog_find(env->cat, "OrderPlaced"))) {
        fprintf(stderr, PROG ": the catalog has no OrderPlaced\n");
        order_env_close(env);
        return EVK_EXIT_CONFIG;
    }
    return EVK_EXIT_OK;
}

void order_env_close(order_env_t *env) {
    evk_catalog_destroy(env->cat);
    evk_config_destroy(env->cfg);
    *env = (order_env_t){0};
}

int64_t order_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

evk_event_t *order_new(const order_env_t *env, const char *customer, const char *currency) {
    char uuid[37], id[40];
    evk_event_t *ev = evk_event_new(env->placed);
    evk_uuid4(uuid);
    snprintf(id, sizeof id, "o-%s", uuid);
    if (ev &&
        (evk_event_set_string(ev, "order_id", id) ||
         evk_event_set_string(ev, "customer_id", customer) ||
         evk_event_set_string(ev, "currency", currency) ||
         evk_event_set_long(ev, "created_at", order_now_ms()) || evk_event_set_key(ev, id))) {
        evk_event_destroy(ev);
        return NULL;
    }
    return ev;
}

evk_err_t order_add_line(evk_event_t *order, const char *sku, int64_t quantity,
                         int64_t unit_price_cents) {
    size_t i;
    char path[48];
    evk_err_t err = evk_event_append(order, "items", &i);
    if (err) return err;
    snprintf(path, sizeof path, "items[%zu].sku", i);
    if ((err = evk_event_set_string(order, path, sku))) return err;
    snprintf(path, sizeof path, "items[%zu].quantity", i);
    if ((err = evk_event_set_long(order, path, quantity))) return err;
    snprintf(path, sizeof path, "items[%zu].unit_price_cents", i);
    return evk_event_set_long(order, path, unit_price_cents);
}

/* ---- place ---- */

static int parse_count(const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* "SKU:QTY:PRICE_CENTS"; the SKU itself may contain ':'. */
static int add_item_arg(evk_event_t *order, char *arg) {
    char *price = strrchr(arg, ':'), *qty = price;
    int64_t q, p;
    while (qty && qty > arg && *--qty != ':')
        ;
    if (!qty || qty == arg)
        return order_usage_error("--item %s: expected SKU:QTY:PRICE_CENTS", arg);
    *qty++ = '\0';
    *price++ = '\0';
    char why[128];
    if (rule_id(arg, strlen(arg), why, sizeof why))
        return order_usage_error("--item: the SKU %s", why);
    if (parse_count(qty, 1, INT32_MAX, &q))
        return order_usage_error("--item %s: quantity \"%s\" is not a positive integer", arg,
                                 qty);
    if (parse_count(price, 0, INT64_MAX, &p))
        return order_usage_error("--item %s: price \"%s\" is not a whole number of cents", arg,
                                 price);
    return order_add_line(order, arg, q, p) ? EVK_EXIT_CONFIG : EVK_EXIT_OK;
}

typedef struct {
    const char *customer, *currency;
    char **items;
    size_t nitems;
} place_args_t;

/* The rules publish applies to the same fields (rules.h). */
static int check_place(const place_args_t *a) {
    char why[128];
    if (rule_id(a->customer, strlen(a->customer), why, sizeof why))
        return order_usage_error("--customer: %s", why);
    if (rule_currency(a->currency, strlen(a->currency), why, sizeof why))
        return order_usage_error("--currency %s: %s", a->currency, why);
    return EVK_EXIT_OK;
}

static int parse_place(int argc, char **argv, order_opts_t *o, place_args_t *a) {
    static const struct option longopts[] = {{"customer", required_argument, NULL, 'c'},
                                             {"item", required_argument, NULL, 'i'},
                                             {"currency", required_argument, NULL, 'C'},
                                             ORDER_COMMON_LONGOPTS};
    int c;
    while ((c = getopt_long(argc, argv, ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (c == 'c')
            a->customer = optarg;
        else if (c == 'i')
            a->items[a->nitems++] = optarg;
        else if (c == 'C')
            a->currency = optarg;
        else if (!order_common_opt(o, c, optarg))
            return EVK_EXIT_USAGE;
    }
    if (optind < argc)
        return order_usage_error("place: unexpected argument \"%s\"", argv[optind]);
    if (!a->customer || !a->nitems)
        return order_usage_error("place: --customer and at least one --item are required");
    return check_place(a);
}

int order_cmd_place(int argc, char **argv, order_opts_t *o) {
    place_args_t a = {.currency = "EUR", .items = calloc((size_t)argc, sizeof(char *))};
    order_env_t env;
    order_sender_t s;
    int rc = a.items ? parse_place(argc, argv, o, &a) : EVK_EXIT_CONFIG;
    if (!rc && !(rc = order_env_open(o, &env))) {
        evk_event_t *order = order_new(&env, a.customer, a.currency);
        for (size_t i = 0; order && !rc && i < a.nitems; i++)
            rc = add_item_arg(order, a.items[i]);
        if (!order || rc) {
            evk_event_destroy(order);
            rc = rc ? rc : EVK_EXIT_CONFIG;
        } else if (!(rc = order_sender_open(&s, &env, 1))) {
            int failed = order_send(&s, order);
            rc = order_sender_close(&s);
            if (failed) rc = EVK_EXIT_DELIVERY;
        }
        order_env_close(&env);
    }
    free(a.items);
    return rc;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **, order_opts_t *);
    } commands[] = {{"place", order_cmd_place},
                    {"publish", order_cmd_publish},
                    {"generate", order_cmd_generate},
                    {"status", order_cmd_status}};
    order_opts_t o;
    int c, rc = EVK_EXIT_USAGE;
    if (evk_cli_opts_init(&o, argc)) return EVK_EXIT_CONFIG;
    static const struct option longopts[] = {ORDER_COMMON_LONGOPTS};
    /* '+': stop at the command, whose own options follow it. */
    while ((c = getopt_long(argc, argv, "+" ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (!order_common_opt(&o, c, optarg)) {
            order_usage(stderr, PROG);
            evk_cli_opts_clear(&o);
            return EVK_EXIT_USAGE;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    size_t i = 0;
    while (cmd && i < sizeof commands / sizeof commands[0] && strcmp(commands[i].name, cmd))
        i++;
    if (!cmd)
        order_usage_error("a command is required");
    else if (i == sizeof commands / sizeof commands[0])
        order_usage_error("unknown command \"%s\"", cmd);
    else {
        char **sub = argv + optind;
        optind = 0; /* GNU getopt: start over on the command's arguments */
        rc = commands[i].run(argc - (int)(sub - argv), sub, &o);
    }
    evk_cli_opts_clear(&o);
    return rc;
}
