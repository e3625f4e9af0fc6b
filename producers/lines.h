/* Publishing JSON lines, one record per line: the input loop evk-produce
 * and evk-order publish share, so that both read, check, send, report and
 * count alike (docs/CLI.md, "evk-produce"). */
#ifndef EVK_LINES_H
#define EVK_LINES_H

#include <stdio.h>

#include "evkit/evkit.h"

/* A rule a record must pass beyond its schema: 0, or -1 with errstr
 * "<field path>: <reason>". @p record is the record as it will be sent. */
typedef int(lines_rule_t)(const avro_value_t *record, char *errstr, size_t errstr_size);

/* Gives absent fields their values for the next line (through
 * evk_json_reader_set_default()): 0, or -1 with errstr. */
typedef int(lines_defaults_t)(evk_json_reader_t *r, char *errstr, size_t errstr_size);

typedef struct {
    const char *prog;           /* names the program in messages and is the ce_source */
    const evk_schema_t *schema; /* every line is a record of this type */
    lines_rule_t *rule;         /* NULL: the schema alone */
    lines_defaults_t *defaults; /* NULL: absent fields take their schema defaults */
    int strict;                 /* send nothing unless every line is valid */
    int print_keys;             /* print each delivered message's key on stdout */
    int correlate;              /* correlation_id header = the key */
    const char *key;            /* -k: the key field's value where a line leaves it out;
                                   a line with another is invalid. NULL: none */
    int to_partition;           /* -p: send to partition, not to the key's */
    int32_t partition;
    char *const *headers; /* -H "name=value": added, or replacing evkit's of that name */
    size_t nheaders;
    int quiet; /* -q: no progress, no summary line (reports of lines stay) */
} lines_opts_t;

/* Publish every line of @p in with a producer of @p cfg, reporting invalid
 * and undeliverable lines on stderr by line number, then the summary line.
 * @p cfg and @p cat must outlive the call. Returns the exit code:
 * EVK_EXIT_OK, _CONFIG, _INPUT or _DELIVERY (docs/CLI.md). */
int lines_publish(const lines_opts_t *o, const evk_config_t *cfg, const evk_catalog_t *cat,
                  FILE *in);

#endif
