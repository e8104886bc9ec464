/*
 * snapshot.c — the whole ledger as one buffer, for raft snapshots and
 * backups.  The database lives in SQLite's memdb VFS, so serializing is one
 * contiguous copy of its pages; restoring deserializes a private copy and
 * rebuilds the C cache from it.  A buffer that is not a ledger is refused
 * and leaves the ledger as it was.
 */
#include <stdlib.h>

#include "ledger/internal.h"

/* Every page readable and every index consistent (PRAGMA quick_check). */
static int snapshot_integrity(sqlite3 *db, struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = LEDGER_ECORRUPT;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (r && strcmp(r, "ok") == 0)
            rc = 0;
        else
            snprintf(err->message, sizeof err->message, "snapshot fails its integrity check: %s",
                     r ? r : "?");
    } else {
        snprintf(err->message, sizeof err->message, "snapshot fails its integrity check: %s",
                 sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    return rc;
}

int ledger_snapshot(struct ledger *l, void *(*alloc)(size_t), void **data, size_t *len,
                    struct ledger_error *err)
{
    int rc = store_sync(l, err);
    if (rc)
        return rc;
    sqlite3_int64 n = 0;
    unsigned char *img = sqlite3_serialize(l->db, "main", &n, SQLITE_SERIALIZE_NOCOPY);
    bool is_copy = false;
    if (!img) {
        img = sqlite3_serialize(l->db, "main", &n, 0);
        is_copy = true;
    }
    if (!img)
        return store_sql_error(l, err, "serialize");
    void *buf = (alloc ? alloc : malloc)((size_t)n);
    if (!buf) {
        if (is_copy)
            sqlite3_free(img);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "no memory for a %lld-byte snapshot",
                 (long long)n);
        return LEDGER_ENOMEM;
    }
    memcpy(buf, img, (size_t)n);
    if (is_copy)
        sqlite3_free(img);
    *data = buf;
    *len = (size_t)n;
    return 0;
}

/* Is this image a ledger?  Open it on the side and look for its tables. */
static int snapshot_check(const void *data, size_t len, struct ledger_error *err)
{
    static const char magic[] = "SQLite format 3";
    if (len < 512 || memcmp(data, magic, sizeof magic) != 0) {
        err->code = LEDGER_ECORRUPT;
        snprintf(err->message, sizeof err->message, "snapshot of %zu bytes is not a ledger image",
                 len);
        return LEDGER_ECORRUPT;
    }
    /* Look at it in place, read-only: no copy of a large image. */
    sqlite3 *db = NULL;
    int rc = LEDGER_ECORRUPT;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_deserialize(db, "main", (unsigned char *)data, (sqlite3_int64)len,
                            (sqlite3_int64)len, SQLITE_DESERIALIZE_READONLY) == SQLITE_OK) {
        sqlite3_stmt *s = NULL;
        const char *q = "SELECT count(*) FROM sqlite_master WHERE name IN"
                        " ('meta','account','journal','reservation','grants','idem')";
        if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 6)
            rc = 0;
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    if (rc) {
        err->code = LEDGER_ECORRUPT;
        snprintf(err->message, sizeof err->message, "snapshot is not a valid ledger database");
    }
    return rc;
}

int ledger_restore(struct ledger *l, const void *data, size_t len, struct ledger_error *err)
{
    int rc = snapshot_check(data, len, err);
    if (rc)
        return rc;
    /* Build a whole new ledger from the image; only when every check passed
     * does it replace this one, so a bad image changes nothing. */
    struct ledger *fresh = NULL;
    rc = ledger_open(&fresh, NULL, err);
    if (rc)
        return rc;
    unsigned char *copy = sqlite3_malloc64(len);
    if (!copy) {
        ledger_close(fresh);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "no memory to restore %zu bytes", len);
        return LEDGER_ENOMEM;
    }
    memcpy(copy, data, len);
    store_finalize(fresh);
    rc = sqlite3_deserialize(fresh->db, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                             SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
    if (rc != SQLITE_OK) {
        rc = store_sql_error(fresh, err, "deserialize");
        ledger_close(fresh);
        return rc;
    }
    store_lift_size_limit(fresh);
    const char *pragmas = "PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY;"
                          " PRAGMA temp_store=MEMORY; PRAGMA secure_delete=OFF;";
    if (sqlite3_exec(fresh->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        snapshot_integrity(fresh->db, err) != 0 || store_prepare(fresh, err) != 0 ||
        store_cache_load(fresh, err) != 0) {
        ledger_close(fresh);
        err->code = LEDGER_ECORRUPT;
        return LEDGER_ECORRUPT;
    }
    struct ledger old = *l;
    *l = *fresh;
    *fresh = old;
    ledger_close(fresh);
    return 0;
}
