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
    const char *brokers;
    const char *config_file;
    char **props;
    size_t nprops;
    const char *type;
    int strict;
    const char *input;
} options_t;

static void usage(FILE *out) {
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
    while ((c = getopt_long(argc, argv, "b:X:F:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 'X':
            o->props[o->nprops++] = optarg;
            break;
        case 'F':
            o->config_file = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 's':
            o->strict = 1;
            break;
        case 'h':
            usage(stdout);
            exit(EVK_EXIT_OK);
        case 'V':
            evk_cli_version(PROG);
            exit(EVK_EXIT_OK);
        default:
            usage(stderr);
            return EVK_EXIT_USAGE;
        }
    }
    if (!o->type || argc - optind > 1) {
        fprintf(stderr, PROG ": %s\n",
                o->type ? "at most one input file" : "-t TYPE is required");
        usage(stderr);
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
    options_t o = {.props = calloc((size_t)argc, sizeof(char *))};
    if (!o.props) return EVK_EXIT_CONFIG;
    int rc = parse_options(argc, argv, &o);
    evk_config_t *cfg = NULL;
    evk_catalog_t *cat = NULL;
    char errstr[1024];
    if (!rc && (evk_cli_config(o.config_file, o.brokers, o.props, o.nprops, &cfg, errstr,
                               sizeof(errstr)) ||
                evk_cli_catalog(cfg, &cat, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EVK_EXIT_CONFIG;
    }
    if (!rc) rc = run(&o, cfg, cat);
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
    free(o.props);
    return rc;
}
