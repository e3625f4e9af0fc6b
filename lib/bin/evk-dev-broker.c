/* evk-dev-broker: run evkit's in-memory dev broker until SIGINT/SIGTERM.
 * See docs/CLI.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evkit/cli.h"
#include "evkit/devbroker.h"

#define PROG "evk-dev-broker"

typedef struct {
    int brokers;
    const char *bootstrap_file;
    char **topics; /* "NAME:PARTITIONS" as given */
    size_t ntopics;
} options_t;

static void usage(FILE *out) {
    fprintf(out, "Usage: " PROG " [--brokers N] [--bootstrap-file PATH] "
                 "[--topic NAME:PARTITIONS]...\n"
                 "Run the in-memory Kafka dev broker on 127.0.0.1 until SIGINT/SIGTERM.\n"
                 "Prints the bootstrap servers on stdout; with --bootstrap-file also\n"
                 "writes them to PATH (atomically, so scripts can wait for the file).\n");
}

static int parse_int(const char *s, int min, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options_t *o) {
    static const struct option longopts[] = {{"brokers", required_argument, NULL, 'n'},
                                             {"bootstrap-file", required_argument, NULL, 'f'},
                                             {"topic", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_int(optarg, 1, &o->brokers)) {
                fprintf(stderr, PROG ": --brokers: expected a positive integer, got \"%s\"\n",
                        optarg);
                return EVK_EXIT_USAGE;
            }
            break;
        case 'f':
            o->bootstrap_file = optarg;
            break;
        case 't':
            o->topics[o->ntopics++] = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(EVK_EXIT_OK);
        default:
            usage(stderr);
            return EVK_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EVK_EXIT_USAGE;
    }
    return EVK_EXIT_OK;
}

static int create_topic(evk_devbroker_t *db, const char *spec) {
    const char *colon = strrchr(spec, ':');
    int partitions;
    if (!colon || colon == spec || parse_int(colon + 1, 1, &partitions)) {
        fprintf(stderr, PROG ": --topic: expected NAME:PARTITIONS, got \"%s\"\n", spec);
        return EVK_EXIT_USAGE;
    }
    char name[512];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - spec), spec);
    char errstr[512];
    if (evk_devbroker_create_topic(db, name, partitions, 1, errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EVK_EXIT_CONFIG;
    }
    return EVK_EXIT_OK;
}

/* Write to a temporary file and rename it, so that a script polling for PATH
 * never reads a half-written line. */
static int write_bootstrap_file(const char *path, const char *bootstraps) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        fprintf(stderr, PROG ": %s: path too long\n", path);
        return EVK_EXIT_CONFIG;
    }
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) || rename(tmp, path)) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EVK_EXIT_CONFIG;
    }
    return EVK_EXIT_OK;
}

static int serve(const options_t *o, const sigset_t *stop_signals) {
    char errstr[512];
    evk_devbroker_t *db;
    if (evk_devbroker_new(o->brokers, &db, errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EVK_EXIT_CONFIG;
    }
    int rc = EVK_EXIT_OK;
    for (size_t i = 0; i < o->ntopics && !rc; i++)
        rc = create_topic(db, o->topics[i]);
    const char *bootstraps = evk_devbroker_bootstraps(db);
    if (!rc && o->bootstrap_file) rc = write_bootstrap_file(o->bootstrap_file, bootstraps);
    if (!rc) {
        printf("%s\n", bootstraps);
        fflush(stdout);
        int sig;
        sigwait(stop_signals, &sig);
    }
    evk_devbroker_destroy(db);
    return rc;
}

int main(int argc, char **argv) {
    options_t o = {.brokers = 3, .topics = calloc((size_t)argc, sizeof(char *))};
    if (!o.topics) return EVK_EXIT_CONFIG;
    int rc = parse_options(argc, argv, &o);
    if (!rc) {
        /* Blocked before any broker thread starts, so that every thread
         * inherits the mask and only sigwait() sees the signals. */
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
        rc = serve(&o, &stop_signals);
    }
    free(o.topics);
    return rc;
}
