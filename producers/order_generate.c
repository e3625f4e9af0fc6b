/* evk-order generate: random valid orders at a steady rate, for demos and
 * load. The same --seed gives the same orders (ids aside, which are always
 * fresh so that two runs never collide). */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "order.h"
#include "rules.h"

typedef struct {
    int64_t count, customers;
    double rate; /* orders per second; 0 = as fast as possible */
    uint64_t seed;
    char *skus[256];
    size_t nskus;
    int quiet; /* -q: no progress, no summary */
} gen_args_t;

static uint64_t next_random(uint64_t *state) { /* splitmix64 */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A SKU's price is fixed (5.00 to 200.00), like a catalog's. */
static int64_t price_of(const char *sku) {
    uint64_t h = 1469598103934665603ULL;
    for (; *sku; sku++)
        h = (h ^ (unsigned char)*sku) * 1099511628211ULL;
    return 500 + (int64_t)(h % 19501);
}

static evk_event_t *random_order(const order_env_t *env, const gen_args_t *a, uint64_t *rng) {
    char customer[32];
    snprintf(customer, sizeof customer, "c-%llu",
             (unsigned long long)(1 + next_random(rng) % (uint64_t)a->customers));
    evk_event_t *order = order_new(env, customer, "EUR");
    int lines = 1 + (int)(next_random(rng) % 3);
    for (int i = 0; order && i < lines; i++) {
        const char *sku = a->skus[next_random(rng) % a->nskus];
        if (order_add_line(order, sku, 1 + (int64_t)(next_random(rng) % 3), price_of(sku))) {
            evk_event_destroy(order);
            order = NULL;
        }
    }
    return order;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const order_sender_t *s, const gen_args_t *a, double elapsed, int tty,
                   int final) {
    uint64_t delivered = s->delivered;
    double rate = elapsed > 0 ? (double)s->sent / elapsed : 0;
    if (tty) {
        int filled = (int)(30 * s->sent / (uint64_t)a->count);
        fprintf(stderr, "\r[%.*s%*s] %llu/%lld sent, %llu delivered, %.0f/s%s", filled,
                "##############################", 30 - filled, "", (unsigned long long)s->sent,
                (long long)a->count, (unsigned long long)delivered, rate, final ? "\n" : "");
    } else if (final) {
        fprintf(stderr, PROG ": generated %llu orders in %.2f s (%.0f/s), %llu delivered\n",
                (unsigned long long)s->sent, elapsed, rate, (unsigned long long)delivered);
    }
}

/* Wait until @due (seconds), serving delivery reports meanwhile. */
static void wait_until(order_sender_t *s, double due) {
    double now;
    while ((now = now_s()) < due) {
        int ms = (int)((due - now) * 1000) + 1;
        evk_producer_poll(s->producer, ms < 100 ? ms : 100);
    }
}

static int generate(const order_env_t *env, const gen_args_t *a) {
    order_sender_t s;
    int rc = order_sender_open(&s, env, 0);
    if (rc) return rc;
    uint64_t rng = a->seed;
    int tty = !a->quiet && isatty(STDERR_FILENO);
    double start = now_s(), last_report = 0;
    for (int64_t i = 0; !rc && i < a->count; i++) {
        /* Pace against the start time, not the previous order, so that the
         * rate holds on average even when one send is slow. */
        if (a->rate > 0) wait_until(&s, start + (double)i / a->rate);
        evk_producer_poll(s.producer, 0);
        evk_event_t *order = random_order(env, a, &rng);
        if (!order || order_send(&s, order)) rc = EVK_EXIT_DELIVERY;
        double now = now_s();
        if (tty && now - last_report >= 0.1) {
            report(&s, a, now - start, tty, 0);
            last_report = now;
        }
    }
    int closed = order_sender_close(&s);
    if (!a->quiet) report(&s, a, now_s() - start, tty, 1);
    return rc ? rc : closed;
}

static int split_skus(gen_args_t *a, char *list) {
    char why[128];
    a->nskus = 0;
    for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->nskus == sizeof a->skus / sizeof a->skus[0])
            return order_usage_error("generate: at most 256 SKUs");
        if (rule_id(tok, strlen(tok), why, sizeof why))
            return order_usage_error("generate: --skus: SKU %zu %s", a->nskus + 1, why);
        a->skus[a->nskus++] = tok;
    }
    return a->nskus ? EVK_EXIT_OK : order_usage_error("generate: --skus names no SKU");
}

static int int_arg(const char *opt, const char *s, long long min, int64_t *out) {
    long long v;
    if (evk_cli_number(s, min, LLONG_MAX, &v))
        return order_usage_error("generate: %s: expected an integer >= %lld, got \"%s\"", opt,
                                 min, s);
    *out = v;
    return EVK_EXIT_OK;
}

static int rate_arg(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    if (end == s || *end || !(*out >= 0 && *out < 1e9))
        return order_usage_error(
            "generate: --rate: expected orders per second >= 0, got \"%s\"", s);
    return EVK_EXIT_OK;
}

static int parse_generate(int argc, char **argv, order_opts_t *o, gen_args_t *a) {
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'}, {"rate", required_argument, NULL, 'r'},
        {"skus", required_argument, NULL, 'k'},  {"customers", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 's'},  ORDER_COMMON_LONGOPTS};
    static char default_skus[] = "SKU-1,SKU-2,SKU-3,SKU-4,SKU-5";
    int64_t seed = (int64_t)time(NULL) ^ getpid();
    int c, rc = split_skus(a, default_skus);
    a->count = -1;
    a->customers = 100;
    while (!rc && (c = getopt_long(argc, argv, ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (c == 'n')
            rc = int_arg("--count", optarg, 1, &a->count);
        else if (c == 'r')
            rc = rate_arg(optarg, &a->rate);
        else if (c == 'k')
            rc = split_skus(a, optarg);
        else if (c == 'c')
            rc = int_arg("--customers", optarg, 1, &a->customers);
        else if (c == 's')
            rc = int_arg("--seed", optarg, 0, &seed);
        else if (!order_common_opt(o, c, optarg))
            rc = EVK_EXIT_USAGE;
    }
    if (!rc && optind < argc)
        return order_usage_error("generate: unexpected argument \"%s\"", argv[optind]);
    if (!rc && a->count < 0) return order_usage_error("generate: --count N is required");
    a->seed = (uint64_t)seed;
    return rc;
}

int order_cmd_generate(int argc, char **argv, order_opts_t *o) {
    gen_args_t a = {0};
    order_env_t env;
    int rc = parse_generate(argc, argv, o, &a);
    a.quiet = o->verbosity < 0;
    if (!rc && !(rc = order_env_open(o, &env))) {
        rc = generate(&env, &a);
        order_env_close(&env);
    }
    return rc;
}
