/* evk-produce: publish events of one type from JSON lines. See docs/CLI.md. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evkit/evkit.h"
#include "lines.h"
#include "rules.h"

#define PROG "evk-produce"

typedef struct {
    evk_cli_opts_t cli;
    const char *type;
    int strict;
    const char *input;
} options_t;

static void usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out, "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] -t TYPE "
                 "[--strict] [FILE|-]\n"
                 "       " PROG " -h|--help | -V|--version\n"
                 "Validate JSON lines (one record per line) against TYPE's schema and\n"
                 "publish them to its topic, keyed by the catalog key field.\n"
                 "  --strict  send nothing unless every line is valid\n");
}

static int parse_options(int argc, char **argv, options_t *o) {
    static const struct option longopts[] = {{"strict", no_argument, NULL, 's'},
                                             EVK_CLI_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING "t:", longopts, NULL)) != -1) {
        int shared = evk_cli_opt(&o->cli, c, optarg, PROG, usage);
        if (shared == EVK_CLI_TAKEN) continue;
        if (shared != EVK_CLI_NOT_MINE) exit(shared);
        switch (c) {
        case 't':
            o->type = optarg;
            break;
        case 's':
            o->strict = 1;
            break;
        default:
            usage(stderr, PROG);
            return EVK_EXIT_USAGE;
        }
    }
    if (!o->type || argc - optind > 1) {
        fprintf(stderr, PROG ": %s\n",
                o->type ? "at most one input file" : "-t TYPE is required");
        usage(stderr, PROG);
        return EVK_EXIT_USAGE;
    }
    o->input = optind < argc ? argv[optind] : "-";
    return EVK_EXIT_OK;
}

static int open_input(const char *path, FILE **in) {
    *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (*in) return EVK_EXIT_OK;
    fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
    return EVK_EXIT_INPUT;
}

static int run(const options_t *o, const evk_config_t *cfg, const evk_catalog_t *cat) {
    lines_opts_t lo = {
        .prog = PROG, .schema = evk_catalog_find(cat, o->type), .strict = o->strict};
    if (!lo.schema) {
        fprintf(stderr, PROG ": unknown event type \"%s\"\n", o->type);
        return EVK_EXIT_USAGE;
    }
    lo.rule = rules_for(lo.schema);
    FILE *in;
    int rc = open_input(o->input, &in);
    if (rc) return rc;
    rc = lines_publish(&lo, cfg, cat, in);
    if (in != stdin) fclose(in);
    return rc;
}

int main(int argc, char **argv) {
    options_t o = {0};
    if (evk_cli_opts_init(&o.cli, argc)) return EVK_EXIT_CONFIG;
    int rc = parse_options(argc, argv, &o);
    evk_config_t *cfg = NULL;
    evk_catalog_t *cat = NULL;
    char errstr[1024];
    if (!rc && (evk_cli_opts_config(&o.cli, &cfg, errstr, sizeof(errstr)) ||
                evk_cli_catalog(cfg, &cat, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_CONFIG;
    }
    if (!rc) rc = run(&o, cfg, cat);
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
    evk_cli_opts_clear(&o.cli);
    return rc;
}
