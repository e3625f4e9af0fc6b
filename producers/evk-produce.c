/* evk-produce: publish events of one type from JSON lines. See docs/CLI.md. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
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
    const char *key;
    int to_partition;
    int32_t partition;
    char **headers; /* -H "name=value", argv's strings */
    size_t nheaders;
} options_t;

/* Headers evkit sets from the event itself: a -H of one would contradict
 * the record (a ce_type that is not its type), so it is refused. */
static const char *const OWN_HEADERS[] = {"ce_specversion", "ce_id",   "ce_type",
                                          "ce_source",      "ce_time", "content-type"};

static void usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out, "Usage: " PROG " [-b brokers] [-X prop=val]... [-F config] [-q|-v] -t TYPE "
                 "[-k KEY] [-p PARTITION] [-H name=value]... [--strict] [FILE|-]\n"
                 "       " PROG " -h|--help | -V|--version\n"
                 "Validate JSON lines (one record per line) against TYPE's schema and\n"
                 "publish them to its topic, keyed by the catalog key field.\n"
                 "  -k KEY          the key field's value where a line leaves it out;\n"
                 "                  a line with another value is invalid\n"
                 "  -p PARTITION    send to this partition, not to the key's\n"
                 "  -H name=value   add a header (correlation_id, causation_id: replace)\n"
                 "  --strict        send nothing unless every line is valid\n");
}

static int usage_fail(const char *what, const char *arg, const char *reason) {
    fprintf(stderr, PROG ": %s %s: %s\n", what, arg, reason);
    return EVK_EXIT_USAGE;
}

static int parse_partition(options_t *o, const char *arg) {
    long long v;
    if (evk_cli_number(arg, 0, INT32_MAX, &v))
        return usage_fail("-p", arg, "not a partition number (0, 1, ...)");
    o->to_partition = 1;
    o->partition = (int32_t)v;
    return EVK_EXIT_OK;
}

static int parse_header(options_t *o, char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return usage_fail("-H", arg, "expected name=value");
    if (eq - arg > 255) return usage_fail("-H", arg, "name longer than 255 bytes");
    for (size_t i = 0; i < sizeof OWN_HEADERS / sizeof OWN_HEADERS[0]; i++) {
        if (strlen(OWN_HEADERS[i]) == (size_t)(eq - arg) &&
            !strncmp(arg, OWN_HEADERS[i], (size_t)(eq - arg)))
            return usage_fail("-H", arg, "evkit sets this header from the event");
    }
    char **grown = realloc(o->headers, (o->nheaders + 1) * sizeof *grown);
    if (!grown) return usage_fail("-H", arg, "out of memory");
    o->headers = grown;
    o->headers[o->nheaders++] = arg;
    return EVK_EXIT_OK;
}

static int parse_key(options_t *o, const char *arg) {
    char reason[256];
    if (evk_key_check(arg, strlen(arg), reason, sizeof reason))
        return usage_fail("-k", arg, reason);
    o->key = arg;
    return EVK_EXIT_OK;
}

static int parse_options(int argc, char **argv, options_t *o) {
    static const struct option longopts[] = {
        {"strict", no_argument, NULL, 's'}, EVK_CLI_LONGOPTS, {NULL, 0, NULL, 0}};
    int c, rc = EVK_EXIT_OK;
    while ((c = getopt_long(argc, argv, EVK_CLI_OPTSTRING "t:k:p:H:", longopts, NULL)) != -1) {
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
        case 'k':
            rc = parse_key(o, optarg);
            break;
        case 'p':
            rc = parse_partition(o, optarg);
            break;
        case 'H':
            rc = parse_header(o, optarg);
            break;
        default:
            usage(stderr, PROG);
            return EVK_EXIT_USAGE;
        }
        if (rc) return rc;
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
    lines_opts_t lo = {.prog = PROG,
                       .schema = evk_catalog_find(cat, o->type),
                       .strict = o->strict,
                       .key = o->key,
                       .to_partition = o->to_partition,
                       .partition = o->partition,
                       .headers = o->headers,
                       .nheaders = o->nheaders,
                       .quiet = o->cli.verbosity < 0};
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
    free(o.headers);
    return rc;
}
