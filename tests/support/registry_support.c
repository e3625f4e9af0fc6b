/* tests/support/registry_server.py as a test's child process (registry_support.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "registry_support.h"

void server_start_with(server_t *s, const char *scheme, const char *const *extra) {
    char script[512], port[16] = "", first[16];
    const char *argv[16] = {"python3", script, "--first-id", first};
    size_t n = 4;
    int fds[2];
    for (; extra && *extra && n < 15; extra++)
        argv[n++] = *extra;
    snprintf(first, sizeof first, "%d", REGISTRY_FIRST_ID);
    snprintf(script, sizeof script, "%s/tests/support/registry_server.py",
             getenv("EVK_SOURCE_DIR"));
    assert_int_equal(pipe(fds), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        /* A test that fails skips server_stop(): the server must not
         * outlive it, holding ctest's output open. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        execv("/usr/bin/python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    if (!fgets(port, sizeof port, out)) fail_msg("registry_server.py did not start");
    fclose(out);
    port[strcspn(port, "\n")] = '\0';
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%s", scheme, port);
}

void server_start(server_t *s, const char *auth) {
    const char *const extra[] = {"--auth", auth, NULL};
    server_start_with(s, "http", auth ? extra : NULL);
}

void server_stop(server_t *s) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

static size_t collect(char *data, size_t size, size_t n, void *opaque) {
    json_t **doc = opaque;
    *doc = json_loadb(data, size * n, 0, NULL);
    return size * n;
}

/* @p path of the server, POSTing @p post when not NULL; its JSON answer. */
static json_t *ask(const server_t *s, const char *path, const char *post) {
    char url[128];
    json_t *doc = NULL;
    snprintf(url, sizeof url, "%s%s", s->url, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &doc);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_non_null(doc);
    return doc;
}

json_t *served(const server_t *s) {
    return ask(s, "/__requests", NULL);
}

size_t count(const server_t *s, const char *prefix) {
    json_t *doc = served(s), *r;
    size_t i, n = 0;
    json_array_foreach(json_object_get(doc, "requests"), i, r) {
        if (!strncmp(json_string_value(r), prefix, strlen(prefix))) n++;
    }
    json_decref(doc);
    return n;
}

void server_answer(const server_t *s, int id, const char *kind) {
    json_t *change = json_pack("{s:i,s:s?}", "id", id, "kind", kind);
    char *post = json_dumps(change, JSON_COMPACT);
    json_decref(ask(s, "/__answer", post));
    free(post);
    json_decref(change);
}
