/*
 * snapshot.c — the whole ledger as one buffer, for raft snapshots and
 * backups, and back.
 *
 * Image layout (little-endian):
 *   "PURSNAP\x02"            8 bytes: magic and format version
 *   u64 sqlite_len           the SQLite database image (memdb pages)
 *   sqlite_len bytes
 *   u64 idem_count           the idempotency keys, in time order, each:
 *     u32 key_len, u32 result_len, i64 ts_ms, u64 fingerprint, key, result
 *   u64 resv_count           the reservations (resv.c), in id order, each:
 *     u64 id, i64 amount, deadline, created, closed, actual, overrun,
 *     u64 transfer_id, u32 account index, u32 payee index, u32 meta_len,
 *     u8 on_expire, u8 status, metadata
 *
 * Version 1 images have no reservation section: their reservations are rows
 * of the database, which loading moves into C (store.c).
 *
 * The database lives in SQLite's memdb VFS, so its part is one contiguous
 * copy.  Restoring builds a complete new ledger from the image and swaps it
 * in only when every check passed (header, schema, PRAGMA quick_check, the
 * account cache, every key record), so a bad image changes nothing.
 */
#include <stdlib.h>

#include "ledger/internal.h"

static const uint8_t snapshot_magic[8] = {'P', 'U', 'R', 'S', 'N', 'A', 'P', 2};
#define SNAPSHOT_VERSION_OLD 1 /* reservations inside the database */
#define SNAPSHOT_KEY_HEAD 24   /* u32 + u32 + i64 + u64 */
#define SNAPSHOT_RESV_HEAD 78  /* 8 x 64-bit, 3 x u32, 2 x u8 */

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

static void snapshot_resv_size(void *arg, const struct resv *r)
{
    struct snapshot_keys *k = arg;
    k->bytes += SNAPSHOT_RESV_HEAD + r->meta_len;
}

static void snapshot_resv_write(void *arg, const struct resv *r)
{
    struct snapshot_keys *k = arg;
    uint64_t w[] = {r->id, (uint64_t)r->amount_micros, (uint64_t)r->deadline_ms,
                    (uint64_t)r->created_ms, (uint64_t)r->closed_ms,
                    (uint64_t)r->actual_micros, (uint64_t)r->overrun_micros, r->transfer_id};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        put_u64(k->pos + 8 * i, w[i]);
    put_u32(k->pos + 64, (uint32_t)r->account);
    put_u32(k->pos + 68, (uint32_t)r->payee);
    put_u32(k->pos + 72, r->meta_len);
    k->pos[76] = r->on_expire;
    k->pos[77] = r->status;
    if (r->meta_len)
        memcpy(k->pos + SNAPSHOT_RESV_HEAD, r->meta, r->meta_len);
    k->pos += SNAPSHOT_RESV_HEAD + r->meta_len;
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
    resv_each(l, snapshot_resv_size, &keys);
    size_t total = 8 + 8 + (size_t)n + 8 + keys.bytes + 8;
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
    put_u64(keys.pos, resv_count(l));
    keys.pos += 8;
    resv_each(l, snapshot_resv_write, &keys);
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

/* Load the key records into `l`; every one checked against the bounds.
 * *used: the bytes they took. */
static int snapshot_load_keys(struct ledger *l, const uint8_t *p, size_t len, size_t *used,
                              struct ledger_error *err)
{
    size_t start_len = len;
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
    *used = start_len - len;
    return 0;
}

/* Load the reservation records (version 2); the store checks each one. */
static int snapshot_load_resv(struct ledger *l, const uint8_t *p, size_t len,
                              struct ledger_error *err)
{
    if (len < 8)
        return snapshot_corrupt(err, "truncated before the reservations");
    uint64_t count = get_u64(p);
    p += 8;
    len -= 8;
    if (count > len / SNAPSHOT_RESV_HEAD)
        return snapshot_corrupt(err, "more reservations announced than bytes left");
    for (uint64_t i = 0; i < count; i++) {
        if (len < SNAPSHOT_RESV_HEAD)
            return snapshot_corrupt(err, "truncated reservation record");
        struct resv f = {.id = get_u64(p),
                         .amount_micros = (int64_t)get_u64(p + 8),
                         .deadline_ms = (int64_t)get_u64(p + 16),
                         .created_ms = (int64_t)get_u64(p + 24),
                         .closed_ms = (int64_t)get_u64(p + 32),
                         .actual_micros = (int64_t)get_u64(p + 40),
                         .overrun_micros = (int64_t)get_u64(p + 48),
                         .transfer_id = get_u64(p + 56),
                         .account = (int32_t)get_u32(p + 64),
                         .payee = (int32_t)get_u32(p + 68),
                         .on_expire = p[76],
                         .status = p[77]};
        uint32_t meta_len = get_u32(p + 72);
        size_t need = (size_t)SNAPSHOT_RESV_HEAD + meta_len;
        if (need > len || resv_load(l, &f, p + SNAPSHOT_RESV_HEAD, meta_len) != 0)
            return snapshot_corrupt(err, "bad reservation record");
        p += need;
        len -= need;
    }
    if (len != 0)
        return snapshot_corrupt(err, "trailing bytes");
    return 0;
}

/* Everything after the database: keys, then (version 2) reservations. */
static int snapshot_load_tail(struct ledger *l, const uint8_t *p, size_t len, bool has_resv,
                              struct ledger_error *err)
{
    size_t used = 0;
    int rc = snapshot_load_keys(l, p, len, &used, err);
    if (rc)
        return rc;
    if (has_resv)
        return snapshot_load_resv(l, p + used, len - used, err);
    return used == len ? 0 : snapshot_corrupt(err, "trailing bytes");
}

int ledger_restore(struct ledger *l, const void *data, size_t len, struct ledger_error *err)
{
    const uint8_t *p = data;
    if (len < 16 || memcmp(p, snapshot_magic, 7) != 0 ||
        (p[7] != snapshot_magic[7] && p[7] != SNAPSHOT_VERSION_OLD))
        return snapshot_corrupt(err, "bad header");
    bool has_resv = p[7] != SNAPSHOT_VERSION_OLD;
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
        snapshot_load_tail(fresh, p + 16 + db_len, len - 16 - (size_t)db_len, has_resv,
                           err) != 0) {
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
