/*
 * snapshot.c — the whole ledger as one buffer, for raft snapshots and
 * backups, and back.
 *
 * Image layout (little-endian):
 *   "PURSNAP\x01"            8 bytes: magic and format version
 *   u64 sqlite_len           the SQLite database image (memdb pages)
 *   sqlite_len bytes
 *   u64 idem_count           the idempotency keys, in time order, each:
 *     u32 key_len, u32 result_len, i64 ts_ms, u64 fingerprint, key, result
 *
 * The database lives in SQLite's memdb VFS, so its part is one contiguous
 * copy.  Restoring builds a complete new ledger from the image and swaps it
 * in only when every check passed (header, schema, PRAGMA quick_check, the
 * account cache, every key record), so a bad image changes nothing.
 */
#include <stdlib.h>

#include "ledger/internal.h"

static const uint8_t snapshot_magic[8] = {'P', 'U', 'R', 'S', 'N', 'A', 'P', 1};
#define SNAPSHOT_KEY_HEAD 24 /* u32 + u32 + i64 + u64 */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

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

struct snapshot_keys {
    uint8_t *pos;
    size_t bytes;
};

static void snapshot_key_size(void *arg, const void *key, uint32_t key_len, int64_t ts_ms,
                              uint64_t fp, const void *result, uint32_t result_len)
{
    struct snapshot_keys *k = arg;
    (void)key;
    (void)ts_ms;
    (void)fp;
    (void)result;
    k->bytes += SNAPSHOT_KEY_HEAD + key_len + result_len;
}

static void snapshot_key_write(void *arg, const void *key, uint32_t key_len, int64_t ts_ms,
                               uint64_t fp, const void *result, uint32_t result_len)
{
    struct snapshot_keys *k = arg;
    put_u32(k->pos, key_len);
    put_u32(k->pos + 4, result_len);
    put_u64(k->pos + 8, (uint64_t)ts_ms);
    put_u64(k->pos + 16, fp);
    memcpy(k->pos + SNAPSHOT_KEY_HEAD, key, key_len);
    memcpy(k->pos + SNAPSHOT_KEY_HEAD + key_len, result, result_len);
    k->pos += SNAPSHOT_KEY_HEAD + key_len + result_len;
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
    struct snapshot_keys keys = {0};
    idem_each(l, snapshot_key_size, &keys);
    size_t total = 8 + 8 + (size_t)n + 8 + keys.bytes;
    uint8_t *buf = (alloc ? alloc : malloc)(total);
    if (!buf) {
        if (is_copy)
            sqlite3_free(img);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "no memory for a %zu-byte snapshot", total);
        return LEDGER_ENOMEM;
    }
    memcpy(buf, snapshot_magic, 8);
    put_u64(buf + 8, (uint64_t)n);
    memcpy(buf + 16, img, (size_t)n);
    if (is_copy)
        sqlite3_free(img);
    put_u64(buf + 16 + n, idem_count(l));
    keys.pos = buf + 24 + n;
    idem_each(l, snapshot_key_write, &keys);
    assert(keys.pos == buf + total);
    *data = buf;
    *len = total;
    return 0;
}

static int snapshot_corrupt(struct ledger_error *err, const char *what)
{
    err->code = LEDGER_ECORRUPT;
    snprintf(err->message, sizeof err->message, "not a ledger snapshot: %s", what);
    return LEDGER_ECORRUPT;
}

/* Is the database part a ledger?  Look at it in place, read-only. */
static int snapshot_check_db(const uint8_t *db_img, size_t len, struct ledger_error *err)
{
    static const char magic[] = "SQLite format 3";
    if (len < 512 || memcmp(db_img, magic, sizeof magic) != 0)
        return snapshot_corrupt(err, "no database image");
    sqlite3 *db = NULL;
    int rc = LEDGER_ECORRUPT;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_deserialize(db, "main", (unsigned char *)db_img, (sqlite3_int64)len,
                            (sqlite3_int64)len, SQLITE_DESERIALIZE_READONLY) == SQLITE_OK) {
        sqlite3_stmt *s = NULL;
        const char *q = "SELECT count(*) FROM sqlite_master WHERE name IN"
                        " ('meta','account','journal','reservation','grants')";
        if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 5)
            rc = 0;
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return rc ? snapshot_corrupt(err, "the database has no ledger tables") : 0;
}

/* Load the key records into `l`; every one checked against the bounds. */
static int snapshot_load_keys(struct ledger *l, const uint8_t *p, size_t len,
                              struct ledger_error *err)
{
    if (len < 8)
        return snapshot_corrupt(err, "truncated before the keys");
    uint64_t count = get_u64(p);
    p += 8;
    len -= 8;
    if (count > len / SNAPSHOT_KEY_HEAD)
        return snapshot_corrupt(err, "more keys announced than bytes left");
    int64_t prev_ts = INT64_MIN;
    for (uint64_t i = 0; i < count; i++) {
        if (len < SNAPSHOT_KEY_HEAD)
            return snapshot_corrupt(err, "truncated key record");
        uint32_t key_len = get_u32(p), result_len = get_u32(p + 4);
        int64_t ts = (int64_t)get_u64(p + 8);
        uint64_t fp = get_u64(p + 16);
        size_t need = (size_t)SNAPSHOT_KEY_HEAD + key_len + result_len;
        if (need > len || ts < prev_ts)
            return snapshot_corrupt(err, "bad key record");
        struct proto_result probe;
        if (proto_result_decode(p + SNAPSHOT_KEY_HEAD + key_len, result_len, &probe, NULL) != 0 ||
            idem_load(l, p + SNAPSHOT_KEY_HEAD, key_len, ts, fp, p + SNAPSHOT_KEY_HEAD + key_len,
                      result_len) != 0)
            return snapshot_corrupt(err, "bad key record");
        prev_ts = ts;
        p += need;
        len -= need;
    }
    if (len != 0)
        return snapshot_corrupt(err, "trailing bytes");
    return 0;
}

int ledger_restore(struct ledger *l, const void *data, size_t len, struct ledger_error *err)
{
    const uint8_t *p = data;
    if (len < 16 || memcmp(p, snapshot_magic, 8) != 0)
        return snapshot_corrupt(err, "bad header");
    uint64_t db_len = get_u64(p + 8);
    if (db_len > len - 16)
        return snapshot_corrupt(err, "database image runs past the end");
    int rc = snapshot_check_db(p + 16, (size_t)db_len, err);
    if (rc)
        return rc;
    /* Build a whole new ledger from the image; only when every check passed
     * does it replace this one, so a bad image changes nothing. */
    struct ledger *fresh = NULL;
    rc = ledger_open(&fresh, NULL, err);
    if (rc)
        return rc;
    unsigned char *copy = sqlite3_malloc64(db_len);
    if (!copy) {
        ledger_close(fresh);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "no memory to restore %zu bytes", len);
        return LEDGER_ENOMEM;
    }
    memcpy(copy, p + 16, (size_t)db_len);
    store_finalize(fresh);
    rc = sqlite3_deserialize(fresh->db, "main", copy, (sqlite3_int64)db_len,
                             (sqlite3_int64)db_len,
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
        xstore_open(fresh, err) != 0 || /* tables an older image may lack */
        store_cache_load(fresh, err) != 0 ||
        snapshot_load_keys(fresh, p + 16 + db_len, len - 16 - (size_t)db_len, err) != 0) {
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
