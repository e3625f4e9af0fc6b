/* evk-dev-broker: run evkit's in-memory dev broker until SIGINT/SIGTERM.
 * See docs/CLI.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evkit/cli.h"
#include "evkit/devbroker.h"

#define PROG "evk-dev-broker"

typedef struct {
    int brokers;
    const char *bootstrap_file;
    const char *control; /* FIFO of fault-injection commands */
    char **topics;       /* "NAME:PARTITIONS" as given */
    size_t ntopics;
} options_t;

static void usage(FILE *out, const char *prog) {
    (void)prog;
    fprintf(out, "Usage: " PROG " [--brokers N] [--bootstrap-file PATH] "
                 "[--topic NAME:PARTITIONS]... [--control FIFO]\n"
                 "       " PROG " -h|--help | -V|--version\n"
                 "Run the in-memory Kafka dev broker on 127.0.0.1 until SIGINT/SIGTERM.\n"
                 "Prints the bootstrap servers on stdout; with --bootstrap-file also\n"
                 "writes them to PATH (atomically, so scripts can wait for the file).\n"
                 "With --control, reads fault-injection commands, one a line, from FIFO\n"
                 "(created if missing): down BROKER, up BROKER, err API COUNT ERROR,\n"
                 "clear API, rtt BROKER MS; each is acknowledged on stdout as\n"
                 "\"control: ok: LINE\" or \"control: error: REASON\".\n");
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
                                             {"control", required_argument, NULL, 'c'},
                                             EVK_CLI_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    /* -h and -V only (no -X, so no evk_cli_opts_init()): the broker is the
     * cluster, it talks to none. */
    evk_cli_opts_t none = {0};
    int c;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        int shared = evk_cli_opt(&none, c, optarg, PROG, usage);
        if (shared != EVK_CLI_NOT_MINE) exit(shared);
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
        case 'c':
            o->control = optarg;
            break;
        default:
            usage(stderr, PROG);
            return EVK_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr, PROG);
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

/* The control channel: a thread reading the FIFO, so that commands are
 * applied while the main thread waits for a stop signal. The lock keeps a
 * command from running into evk_devbroker_destroy(). */
typedef struct {
    evk_devbroker_t *db;
    FILE *in;
    pthread_mutex_t lock;
    int stopped;
} control_t;

static void *control_loop(void *arg) {
    control_t *c = arg;
    char line[512];
    while (fgets(line, sizeof line, c->in)) {
        line[strcspn(line, "\r\n")] = 0;
        char errstr[512];
        pthread_mutex_lock(&c->lock);
        int stopped = c->stopped;
        evk_err_t err =
            stopped ? EVK_OK : evk_devbroker_command(c->db, line, errstr, sizeof errstr);
        pthread_mutex_unlock(&c->lock);
        if (stopped) break;
        if (err)
            printf("control: error: %s\n", errstr);
        else if (line[0] && line[0] != '#')
            printf("control: ok: %s\n", line);
        fflush(stdout);
    }
    return NULL;
}

/* Opened read-write, so that the FIFO never reports end of file when a
 * writer closes it: each test step may open, write a line and close. */
static int control_start(control_t *c, const char *path, pthread_t *thread) {
    struct stat st;
    if (mkfifo(path, 0600) && (errno != EEXIST || stat(path, &st) || !S_ISFIFO(st.st_mode))) {
        fprintf(stderr, PROG ": --control %s: %s\n", path,
                errno == EEXIST ? "exists and is not a FIFO" : strerror(errno));
        return EVK_EXIT_CONFIG;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    c->in = fd < 0 ? NULL : fdopen(fd, "r");
    if (!c->in || pthread_create(thread, NULL, control_loop, c)) {
        fprintf(stderr, PROG ": --control %s: %s\n", path, strerror(errno));
        if (c->in)
            fclose(c->in);
        else if (fd >= 0)
            close(fd);
        c->in = NULL;
        return EVK_EXIT_CONFIG;
    }
    pthread_detach(*thread);
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
    control_t control = {.db = db, .lock = PTHREAD_MUTEX_INITIALIZER};
    pthread_t thread;
    if (!rc && o->control) rc = control_start(&control, o->control, &thread);
    const char *bootstraps = evk_devbroker_bootstraps(db);
    if (!rc && o->bootstrap_file) rc = write_bootstrap_file(o->bootstrap_file, bootstraps);
    if (!rc) {
        printf("%s\n", bootstraps);
        fflush(stdout);
        int sig;
        sigwait(stop_signals, &sig);
    }
    /* The detached reader may be blocked in fgets(): it is not joined, only
     * kept away from the broker being destroyed. */
    pthread_mutex_lock(&control.lock);
    control.stopped = 1;
    evk_devbroker_destroy(db);
    pthread_mutex_unlock(&control.lock);
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
