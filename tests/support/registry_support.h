/* tests/support/registry_server.py, a stand-in Schema Registry on 127.0.0.1, as a
 * child process of a test. Every helper asserts with cmocka. */
#ifndef REGISTRY_SUPPORT_H
#define REGISTRY_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

/* Its ids start here. */
#define REGISTRY_FIRST_ID 1000

typedef struct {
    pid_t pid;
    char url[64];
} server_t;

/* Start it with @p extra arguments (NULL-terminated, may be NULL); @p scheme
 * is "http" or "https" (--tls in @p extra). */
void server_start_with(server_t *s, const char *scheme, const char *const *extra);
/* Plain HTTP, requiring @p auth ("user:password") unless it is NULL. */
void server_start(server_t *s, const char *auth);
void server_stop(server_t *s);

/* Its record of what it served (GET /__requests); json_decref() it. */
json_t *served(const server_t *s);
/* Requests served so far whose "METHOD /path" starts with @p prefix. */
size_t count(const server_t *s, const char *prefix);
/* GET /schemas/ids/@p id answers as @p kind from now on (NULL: normally). */
void server_answer(const server_t *s, int id, const char *kind);

#endif
