/* Small helpers of the base layer: errstr formatting, strings, time,
 * directories, secret names and their wiping. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "internal.h"

evk_err_t evk__fail(evk_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

evk_err_t evk__fail_at(evk_err_t err, char *errstr, size_t errstr_size, const char *prefix,
                       const char *path, const char *fmt, va_list ap) {
    char msg[384];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return evk__fail(err, errstr, errstr_size, "%s%s%s%s", prefix, path, *path ? ": " : "",
                     msg);
}

char *evk__strdup0(const char *s) {
    return s ? strdup(s) : NULL;
}

int64_t evk__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evk__make_dirs(char *path) {
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash) *slash = '\0';
        int rc = mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
        if (slash) *slash = '/';
        if (rc || !slash) return rc;
    }
}

int evk__ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Whole words only: "author" or "authorization_id" are no secrets, while a
 * substring match took them for one and hid their values. */
int evk__secret_name(const char *name) {
    static const char *const leaves[] = {"password", "passwd",        "secret",
                                         "token",    "authorization", "credentials"};
    static const char *const suffixes[] = {
        "_password", "_secret", "_token", "-token", ".key", "key.pem", "basic.auth.user.info"};
    const char *dot = strrchr(name, '.');
    const char *leaf = dot ? dot + 1 : name;
    if (!strncmp(name, "sasl.", 5)) return 1; /* passwords, JAAS and OAuth configs */
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++)
        if (!strcmp(leaf, leaves[i])) return 1;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (evk__ends_with(name, suffixes[i])) return 1;
    return 0;
}

size_t evk__url_userinfo_len(const char *authority) {
    size_t len = 0, end = strcspn(authority, " \t\r\n\"'<>");
    for (size_t i = 0; i < end; i++)
        if (authority[i] == '@') len = i + 1;
    return len;
}

/* Called through a volatile pointer, so that the compiler cannot drop the
 * writes as dead stores before free(). */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

void evk__wipe(char *s) {
    if (s) wipe(s, 0, strlen(s));
}

void evk__free_secret(char *s) {
    evk__wipe(s);
    free(s);
}
