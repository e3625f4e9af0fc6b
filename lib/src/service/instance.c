/* Instance identity: which copy of a service this process is. Distinct among
 * the copies on one host and stable across their restarts, without editing
 * the config, because the transactional.id (and group.instance.id) must be
 * both: two live copies with one id fence each other, and a restarted copy
 * with a new id would leave its predecessor's transaction open until the
 * broker times it out.
 *
 * An explicit id (<service>.instance_id, EVK_INSTANCE_ID) wins. Otherwise a
 * copy takes the lowest free slot k and is "<host>-<k>". A slot, like an
 * explicit id, is an flock()ed file in the lock directory: the kernel drops
 * the lock when the process dies, however it dies, so a restarted copy takes
 * its slot back while a second live copy is told the id is taken. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "internal.h"
#include "service_int.h"

#define SVC_MAX_SLOTS 256

/* EVK_LOCK_DIR, else a per-user directory under /tmp. */
static evk_err_t lock_dir(char *out, size_t size, char *errstr, size_t errstr_size) {
    const char *env = getenv("EVK_LOCK_DIR");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else
        snprintf(out, size, "/tmp/evkit-%lu", (unsigned long)getuid());
    if (evk__make_dirs(out))
        return evk__fail(EVK_ERR_IO, errstr, errstr_size,
                         "instance lock directory %s: %s (set EVK_LOCK_DIR)", out,
                         strerror(errno));
    return EVK_OK;
}

/* The pid a lock file names, for the error message; 0 when unreadable. */
static long holder_pid(const char *path) {
    char buf[32] = "";
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (!fgets(buf, sizeof(buf), f)) buf[0] = '\0';
    fclose(f);
    return strtol(buf, NULL, 10);
}

/* Take the lock of @p instance; the descriptor, -1 if another process holds
 * it, -2 on another error (errno set). */
static int try_lock(const char *dir, const char *group, const char *instance, char *path,
                    size_t size) {
    snprintf(path, size, "%s/%s.%s.lock", dir, group, instance);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -2;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return busy ? -1 : -2;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    /* Best effort: only a competitor's error message reads it. */
    if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0) errno = 0;
    return fd;
}

static evk_err_t claim_explicit(evk_service_t *svc, const char *dir, const char *instance,
                                char *errstr, size_t errstr_size) {
    char path[4096];
    int fd = try_lock(dir, svc->group_id, instance, path, sizeof(path));
    if (fd == -1)
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: instance_id \"%s\" of group %s is in use by another process on "
                         "this host (pid %ld, lock %s); give each copy its own instance_id or "
                         "leave it unset",
                         svc->name, instance, svc->group_id, holder_pid(path), path);
    if (fd < 0)
        return evk__fail(EVK_ERR_IO, errstr, errstr_size, "%s: %s: %s", svc->name, path,
                         strerror(errno));
    svc->lock_fd = fd;
    svc->slot = 0;
    svc->instance_id = strdup(instance);
    return svc->instance_id ? EVK_OK
                            : evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
}

static evk_err_t claim_slot(evk_service_t *svc, const char *dir, const char *host, char *errstr,
                            size_t errstr_size) {
    char path[4096], instance[512];
    for (int k = 0; k < SVC_MAX_SLOTS; k++) {
        snprintf(instance, sizeof(instance), "%s-%d", host, k);
        int fd = try_lock(dir, svc->group_id, instance, path, sizeof(path));
        if (fd == -1) continue;
        if (fd < 0)
            return evk__fail(EVK_ERR_IO, errstr, errstr_size, "%s: %s: %s", svc->name, path,
                             strerror(errno));
        svc->lock_fd = fd;
        svc->slot = k;
        svc->instance_id = strdup(instance);
        return svc->instance_id
                   ? EVK_OK
                   : evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                     "%s: all %d instance slots of group %s on this host are taken", svc->name,
                     SVC_MAX_SLOTS, svc->group_id);
}

evk_err_t svc_instance_claim(evk_service_t *svc, char *errstr, size_t errstr_size) {
    char path[512], dir[4096], host[256] = "evkit";
    if (gethostname(host, sizeof(host)) != 0) strcpy(host, "evkit");
    host[sizeof(host) - 1] = '\0';
    snprintf(path, sizeof(path), "%s.instance_id", svc->name);
    const char *env = getenv("EVK_INSTANCE_ID");
    const char *instance = env && *env ? env : evk_config_get_string(svc->cfg, path, NULL);
    if (instance && (!*instance || strpbrk(instance, "/ \t\n")))
        return evk__fail(EVK_ERR_CONFIG, errstr, errstr_size,
                         "%s: instance_id \"%s\" must be non-empty, without '/' or spaces",
                         path, instance);
    evk_err_t rc = lock_dir(dir, sizeof(dir), errstr, errstr_size);
    if (rc) return rc;
    return instance ? claim_explicit(svc, dir, instance, errstr, errstr_size)
                    : claim_slot(svc, dir, host, errstr, errstr_size);
}

void svc_instance_release(evk_service_t *svc) {
    if (svc->lock_fd >= 0) close(svc->lock_fd); /* drops the flock */
    svc->lock_fd = -1;
    free(svc->instance_id);
    svc->instance_id = NULL;
}
