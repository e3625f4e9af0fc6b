/* evk-order publish: OrderPlaced JSON lines, one order per line, read and
 * sent as evk-produce does (lines.h). A line may leave out order_id and
 * created_at; each line gets its own. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "lines.h"
#include "order.h"
#include "rules.h"

/* A fresh order id and the current time for a line that leaves them out. */
static int line_defaults(evk_json_reader_t *r, char *errstr, size_t errstr_size) {
    char uuid[37], id[48], now[24];
    evk_uuid4(uuid);
    snprintf(id, sizeof id, "\"o-%s\"", uuid);
    snprintf(now, sizeof now, "%lld", (long long)order_now_ms());
    return evk_json_reader_set_default(r, "order_id", id, errstr, errstr_size) ||
                   evk_json_reader_set_default(r, "created_at", now, errstr, errstr_size)
               ? -1
               : 0;
}

int order_cmd_publish(int argc, char **argv, order_opts_t *o) {
    static const struct option longopts[] = {{"strict", no_argument, NULL, 's'},
                                             ORDER_COMMON_LONGOPTS};
    /* The order id is the key: printed once delivered, and the correlation
     * id of every event the order causes downstream. */
    lines_opts_t lo = {
        .prog = PROG, .defaults = line_defaults, .print_keys = 1, .correlate = 1};
    order_env_t env;
    int c, rc;
    while ((c = getopt_long(argc, argv, ORDER_COMMON_OPTS, longopts, NULL)) != -1) {
        if (c == 's')
            lo.strict = 1;
        else if (!order_common_opt(o, c, optarg))
            return EVK_EXIT_USAGE;
    }
    if (argc - optind != 1) return order_usage_error("publish: expected one input, FILE or -");
    lo.quiet = o->verbosity < 0;
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!in) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EVK_EXIT_INPUT;
    }
    if (!(rc = order_env_open(o, &env))) {
        lo.schema = env.placed;
        lo.rule = rules_for(env.placed);
        rc = lines_publish(&lo, env.cfg, env.cat, in);
        order_env_close(&env);
    }
    if (in != stdin) fclose(in);
    return rc;
}
