#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "internal.h"

evk_err_t evk_fail(evk_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

char *evk_strdup0(const char *s) {
    return s ? strdup(s) : NULL;
}

int64_t evk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evk_make_dirs(char *path) {
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash) *slash = '\0';
        int rc = mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
        if (slash) *slash = '/';
        if (rc || !slash) return rc;
    }
}

size_t evk_url_userinfo_len(const char *authority) {
    size_t len = 0, end = strcspn(authority, " \t\r\n\"'<>");
    for (size_t i = 0; i < end; i++)
        if (authority[i] == '@') len = i + 1;
    return len;
}

/* Called through a volatile pointer, so that the compiler cannot drop the
 * writes as dead stores before free(). */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

void evk_wipe(char *s) {
    if (s) wipe(s, 0, strlen(s));
}

void evk_free_secret(char *s) {
    evk_wipe(s);
    free(s);
}
