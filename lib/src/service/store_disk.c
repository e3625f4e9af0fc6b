/* The on-disk side of the state stores: an LMDB environment per service
 * instance (state.dir/<group>/<instance>), one table per store and one of
 * checkpoints.
 *
 * The changelog stays the source of truth. The disk holds, per store, the
 * committed state of the changelog partitions this instance has held, and
 * per store and partition the changelog offset that state reaches (its
 * checkpoint), written in the same LMDB transaction as the state. A
 * restore then reads only the changelog past the checkpoint. Nothing
 * uncommitted is ever written here (the service writes after its Kafka
 * transaction commits), so unlike a state directory that takes writes as
 * they happen, this one stays valid after a kill -9: at worst its
 * checkpoint is behind. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "service_int.h"

#define DISK_MAP_BYTES (16ULL << 30) /* address space only: the file grows as needed */
#define DISK_CHECKPOINTS "evkit.checkpoints"
#define DISK_CLUSTER_KEY "evkit.cluster" /* in the checkpoints' table */

/* The keys of the state group: own_groups in config.c. */

struct svc_disk_s {
    MDB_env *env;
    MDB_txn *write; /* the open write transaction, or NULL */
    MDB_txn *read;  /* reset between reads, renewed for the next */
    MDB_dbi checkpoints;
    char path[];
};

static evk_err_t disk_fail(int rc, const char *what, const char *path, char *errstr,
                           size_t errstr_size) {
    return evk__fail(rc == ENOMEM ? EVK_ERR_NOMEM : EVK_ERR_IO, errstr, errstr_size,
                     "state %s %s: %s (state.dir, EVK_STATE_DIR)", path, what,
                     mdb_strerror(rc));
}

evk_err_t svc_disk_open(const char *dir, svc_disk_t **out, char *errstr, size_t errstr_size) {
    size_t n = strlen(dir) + 1;
    svc_disk_t *d = calloc(1, sizeof(*d) + n);
    if (!d) return evk__fail(EVK_ERR_NOMEM, errstr, errstr_size, "out of memory");
    memcpy(d->path, dir, n);
    int rc = evk__make_dirs(d->path) ? errno : 0;
    if (!rc) rc = mdb_env_create(&d->env);
    if (!rc) rc = mdb_env_set_maxdbs(d->env, SVC_DISK_MAX_TABLES);
    if (!rc) rc = mdb_env_set_mapsize(d->env, (size_t)DISK_MAP_BYTES);
    /* NOMETASYNC: an OS crash may lose the last transaction, never the
     * file's integrity; the changelog has what was lost. NOTLS: the
     * service thread is the only user, read and write handles alike. */
    if (!rc) rc = mdb_env_open(d->env, d->path, MDB_NOMETASYNC | MDB_NOTLS, 0600);
    if (!rc) rc = svc_disk_begin(d) ? EIO : 0;
    if (!rc) rc = mdb_dbi_open(d->write, DISK_CHECKPOINTS, MDB_CREATE, &d->checkpoints);
    if (!rc) rc = svc_disk_commit(d) ? EIO : 0;
    if (rc) {
        evk_err_t err = disk_fail(rc, "cannot be opened", dir, errstr, errstr_size);
        svc_disk_close(d);
        return err;
    }
    *out = d;
    return EVK_OK;
}

void svc_disk_close(svc_disk_t *d) {
    if (!d) return;
    if (d->write) mdb_txn_abort(d->write);
    if (d->read) mdb_txn_abort(d->read);
    if (d->env) mdb_env_close(d->env);
    free(d);
}

evk_err_t svc_disk_table(svc_disk_t *d, const char *name, unsigned *out) {
    MDB_dbi dbi;
    if (svc_disk_begin(d)) return EVK_ERR_IO;
    if (mdb_dbi_open(d->write, name, MDB_CREATE, &dbi)) {
        svc_disk_abort(d);
        return EVK_ERR_IO;
    }
    *out = dbi;
    return svc_disk_commit(d);
}

evk_err_t svc_disk_begin(svc_disk_t *d) {
    if (d->write) return EVK_OK;
    return mdb_txn_begin(d->env, NULL, 0, &d->write) ? EVK_ERR_IO : EVK_OK;
}

evk_err_t svc_disk_commit(svc_disk_t *d) {
    if (!d->write) return EVK_OK;
    int rc = mdb_txn_commit(d->write);
    d->write = NULL;
    if (rc)
        evk_log(EVK_LOG_ERROR, "evkit", "state write failed", "dir", d->path, "error",
                mdb_strerror(rc), NULL);
    return rc ? EVK_ERR_IO : EVK_OK;
}

void svc_disk_abort(svc_disk_t *d) {
    if (d->write) mdb_txn_abort(d->write);
    d->write = NULL;
}

/* A value on disk: the changelog partition it belongs to, then the record
 * as the changelog has it (a Confluent frame). */
evk_err_t svc_disk_put(svc_disk_t *d, unsigned table, const char *key, int32_t partition,
                       const void *frame, size_t len) {
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof(partition) + len, NULL};
    int rc = d->write ? mdb_put(d->write, table, &k, &v, MDB_RESERVE) : EINVAL;
    if (rc) return EVK_ERR_IO;
    memcpy(v.mv_data, &partition, sizeof(partition));
    memcpy((char *)v.mv_data + sizeof(partition), frame, len);
    return EVK_OK;
}

evk_err_t svc_disk_del(svc_disk_t *d, unsigned table, const char *key) {
    MDB_val k = {strlen(key), (void *)key};
    int rc = d->write ? mdb_del(d->write, table, &k, NULL) : EINVAL;
    return rc && rc != MDB_NOTFOUND ? EVK_ERR_IO : EVK_OK;
}

/* The transaction to read in: the open write transaction (which sees its
 * own writes), else the read handle, renewed; NULL on error. */
static MDB_txn *disk_reading(svc_disk_t *d) {
    if (d->write) return d->write;
    int rc =
        d->read ? mdb_txn_renew(d->read) : mdb_txn_begin(d->env, NULL, MDB_RDONLY, &d->read);
    return rc ? NULL : d->read;
}

/* A read handle holds a snapshot, which keeps LMDB from reusing pages
 * written since: let it go after each read. */
static void disk_read_done(svc_disk_t *d, MDB_txn *txn) {
    if (txn == d->read) mdb_txn_reset(d->read);
}

int svc_disk_get(svc_disk_t *d, unsigned table, const char *key, int32_t *partition,
                 void **frame, size_t *len) {
    MDB_val k = {strlen(key), (void *)key}, v;
    MDB_txn *txn = disk_reading(d);
    if (!txn) return -1;
    int rc = mdb_get(txn, table, &k, &v);
    if (rc || v.mv_size < sizeof(*partition)) {
        disk_read_done(d, txn);
        return rc == MDB_NOTFOUND ? 0 : -1;
    }
    memcpy(partition, v.mv_data, sizeof(*partition));
    *len = v.mv_size - sizeof(*partition);
    *frame = malloc(*len ? *len : 1);
    if (*frame) memcpy(*frame, (char *)v.mv_data + sizeof(*partition), *len);
    disk_read_done(d, txn);
    return *frame ? 1 : -1;
}

static void checkpoint_key(char *buf, size_t size, const char *table, int32_t partition) {
    snprintf(buf, size, "%s" EVK_STORE_KEY_SEP "%d", table, (int)partition);
}

int64_t svc_disk_checkpoint(svc_disk_t *d, const char *table, int32_t partition) {
    char key[300];
    checkpoint_key(key, sizeof(key), table, partition);
    MDB_val k = {strlen(key), key}, v;
    int64_t at = -1;
    MDB_txn *txn = disk_reading(d);
    if (!txn) return -1;
    if (!mdb_get(txn, d->checkpoints, &k, &v) && v.mv_size == sizeof(at))
        memcpy(&at, v.mv_data, sizeof(at));
    disk_read_done(d, txn);
    return at;
}

evk_err_t svc_disk_set_checkpoint(svc_disk_t *d, const char *table, int32_t partition,
                                  int64_t offset) {
    char key[300];
    checkpoint_key(key, sizeof(key), table, partition);
    MDB_val k = {strlen(key), key}, v = {sizeof(offset), &offset};
    int rc = !d->write    ? EINVAL
             : offset < 0 ? mdb_del(d->write, d->checkpoints, &k, NULL)
                          : mdb_put(d->write, d->checkpoints, &k, &v, 0);
    return rc && rc != MDB_NOTFOUND ? EVK_ERR_IO : EVK_OK;
}

evk_err_t svc_disk_wipe(svc_disk_t *d, unsigned table, const char *name, const int32_t *parts,
                        size_t nparts) {
    MDB_cursor *c;
    MDB_val k, v;
    int rc = d->write ? mdb_cursor_open(d->write, table, &c) : EINVAL;
    if (rc) return EVK_ERR_IO;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int32_t p;
        if (v.mv_size < sizeof(p)) continue;
        memcpy(&p, v.mv_data, sizeof(p));
        for (size_t i = 0; i < nparts; i++)
            if (parts[i] == p && mdb_cursor_del(c, 0)) rc = EIO;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) return EVK_ERR_IO;
    for (size_t i = 0; i < nparts; i++)
        if (svc_disk_set_checkpoint(d, name, parts[i], -1)) return EVK_ERR_IO;
    return EVK_OK;
}

/* Offsets of another cluster mean nothing in this one: its state goes. */
static int disk_clear(svc_disk_t *d, const unsigned *tables, size_t ntables) {
    int rc = mdb_drop(d->write, d->checkpoints, 0);
    for (size_t i = 0; i < ntables && !rc; i++)
        rc = mdb_drop(d->write, tables[i], 0);
    return rc;
}

evk_err_t svc_disk_claim(svc_disk_t *d, const char *cluster, const unsigned *tables,
                         size_t ntables, int *cleared) {
    MDB_val k = {strlen(DISK_CLUSTER_KEY), DISK_CLUSTER_KEY}, v;
    *cleared = 0;
    if (svc_disk_begin(d)) return EVK_ERR_IO;
    int rc = mdb_get(d->write, d->checkpoints, &k, &v);
    int same = !rc && v.mv_size == strlen(cluster) && !memcmp(v.mv_data, cluster, v.mv_size);
    if (same) {
        svc_disk_abort(d);
        return EVK_OK;
    }
    *cleared = rc != MDB_NOTFOUND;
    rc = *cleared ? disk_clear(d, tables, ntables) : 0;
    v = (MDB_val){strlen(cluster), (void *)cluster};
    if (!rc) rc = mdb_put(d->write, d->checkpoints, &k, &v, 0);
    if (rc) {
        svc_disk_abort(d);
        return EVK_ERR_IO;
    }
    return svc_disk_commit(d);
}

void svc_disk_scan(svc_disk_t *d, unsigned table,
                   int (*cb)(const char *key, size_t key_len, int32_t partition,
                             const void *frame, size_t len, void *opaque),
                   void *opaque) {
    MDB_cursor *c;
    MDB_val k, v;
    MDB_txn *txn = disk_reading(d);
    if (!txn) return;
    if (!mdb_cursor_open(txn, table, &c)) {
        int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        for (; !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            int32_t p;
            if (v.mv_size < sizeof(p)) continue;
            memcpy(&p, v.mv_data, sizeof(p));
            if (cb(k.mv_data, k.mv_size, p, (char *)v.mv_data + sizeof(p),
                   v.mv_size - sizeof(p), opaque))
                break;
        }
        mdb_cursor_close(c);
    }
    disk_read_done(d, txn);
}
