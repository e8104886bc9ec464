/*
 * store.c — the ledger's SQLite side: schema, cached statements, loading the
 * C account cache, and writing dirty accounts and counters back at the end
 * of each entry.
 *
 * The database is the FSM's materialized state, not its durability (the raft
 * log is): pragmas trade durability for speed (PITFALLS.md), while
 * journal_mode=MEMORY keeps ROLLBACK working for entries that fail.
 *
 * Ids are counters kept in `meta` (not SQLite rowids) so that pruning old
 * rows can never make an id come back.
 */
#include <stdlib.h>

#include "ledger/internal.h"

static const char *const store_schema =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " parent INTEGER NOT NULL, cap INTEGER NOT NULL, period INTEGER NOT NULL,"
    " tz INTEGER NOT NULL, status INTEGER NOT NULL, is_grant INTEGER NOT NULL,"
    " grant_id INTEGER NOT NULL, grant_open INTEGER NOT NULL, deadline INTEGER NOT NULL,"
    " period_start INTEGER NOT NULL, period_end INTEGER NOT NULL,"
    " spent INTEGER NOT NULL, reserved INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " tags BLOB);"
    "CREATE TABLE IF NOT EXISTS grants(id INTEGER PRIMARY KEY, account INTEGER NOT NULL,"
    " amount INTEGER NOT NULL, deadline INTEGER NOT NULL, workflow TEXT NOT NULL,"
    " metadata BLOB, is_open INTEGER NOT NULL, spent INTEGER NOT NULL,"
    " returned INTEGER NOT NULL, created_ms INTEGER NOT NULL, closed_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS grants_due ON grants(deadline, id) WHERE is_open = 1;"
    "CREATE TABLE IF NOT EXISTS reservation(id INTEGER PRIMARY KEY, account INTEGER NOT NULL,"
    " payee INTEGER NOT NULL, amount INTEGER NOT NULL, deadline INTEGER NOT NULL,"
    " on_expire INTEGER NOT NULL, status INTEGER NOT NULL, actual INTEGER NOT NULL,"
    " transfer_id INTEGER NOT NULL, overrun INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " closed_ms INTEGER NOT NULL, metadata BLOB);"
    "CREATE INDEX IF NOT EXISTS reservation_due ON reservation(deadline, id) WHERE status = 0;"
    "CREATE TABLE IF NOT EXISTS journal(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, debit INTEGER NOT NULL, credit INTEGER NOT NULL,"
    " amount INTEGER NOT NULL, reservation INTEGER NOT NULL, overrun INTEGER NOT NULL,"
    " metadata BLOB);"

    "CREATE TABLE IF NOT EXISTS period(month TEXT PRIMARY KEY, closed_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS price(model TEXT PRIMARY KEY, input INTEGER NOT NULL,"
    " output INTEGER NOT NULL, cached INTEGER NOT NULL, cache_write INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS api_key(id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " account INTEGER NOT NULL, role INTEGER NOT NULL, revoked INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS policy_required(pos INTEGER PRIMARY KEY, key BLOB NOT NULL);"
    /* Counters exist from the start, so the first entry changes only data. */
    "INSERT OR IGNORE INTO meta(k, v) VALUES ('now_ms', 0), ('entries_applied', 0),"
    " ('next_reservation_id', 1), ('next_transfer_id', 1), ('next_grant_id', 1),"
    " ('journal_chain', 0);";

static const char *const store_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_META_SET] = "INSERT INTO meta(k, v) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = ?2",
    [ST_ACCT_INSERT] = "INSERT INTO account(id, name, parent, cap, period, tz, status, is_grant,"
                       " grant_id, grant_open, deadline, period_start, period_end, spent,"
                       " reserved, created_ms, tags)"
                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    [ST_ACCT_UPDATE] = "UPDATE account SET cap = ?2, period = ?3, tz = ?4, status = ?5,"
                       " grant_open = ?6, period_start = ?7, period_end = ?8, spent = ?9,"
                       " reserved = ?10 WHERE id = ?1",
    [ST_ACCT_SET_TAGS] = "UPDATE account SET tags = ?2 WHERE id = ?1",
    /* Reservations live in C (resv.c); images from before that still carry
     * rows, which loading moves into C. */
    [ST_RES_LOAD] = "SELECT id, account, payee, amount, deadline, on_expire, status, actual,"
                    " transfer_id, overrun, created_ms, closed_ms, metadata FROM reservation"
                    " ORDER BY id",
    [ST_RES_CLEAR] = "DELETE FROM reservation",
    [ST_JOURNAL_INSERT] = "INSERT INTO journal(id, ts, kind, debit, credit, amount, reservation,"
                          " overrun, metadata) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_JOURNAL_TS] = "SELECT ts FROM journal WHERE id = ?1",

    [ST_GRANT_INSERT] = "INSERT INTO grants(id, account, amount, deadline, workflow, metadata,"
                        " is_open, spent, returned, created_ms, closed_ms)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, 0, 0, ?7, 0)",
    [ST_GRANT_GET] = "SELECT account, amount, deadline, is_open, spent, returned FROM grants"
                     " WHERE id = ?1",
    [ST_GRANT_CLOSE] = "UPDATE grants SET is_open = 0, spent = ?2, returned = ?3, closed_ms = ?4"
                       " WHERE id = ?1",
    [ST_GRANT_DUE] = "SELECT id FROM grants WHERE is_open = 1 AND deadline <= ?1"
                     " ORDER BY deadline, id LIMIT ?2",
    [ST_PERIOD_INSERT] = "INSERT OR IGNORE INTO period(month, closed_ms) VALUES(?1, ?2)",
    [ST_PRICE_UPSERT] = "INSERT INTO price(model, input, output, cached, cache_write)"
                        " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(model) DO UPDATE SET"
                        " input = ?2, output = ?3, cached = ?4, cache_write = ?5",
    [ST_KEY_INSERT] = "INSERT INTO api_key(id, hash, account, role, revoked, created_ms)"
                      " VALUES(?1, ?2, ?3, ?4, 0, ?5)",
    [ST_KEY_BY_ID] = "SELECT revoked FROM api_key WHERE id = ?1",
    [ST_KEY_BY_HASH] = "SELECT id, account, role, revoked FROM api_key WHERE hash = ?1",
    [ST_KEY_REVOKE] = "UPDATE api_key SET revoked = 1 WHERE id = ?1",
    [ST_POLICY_CLEAR] = "DELETE FROM policy_required",
    [ST_POLICY_ADD] = "INSERT INTO policy_required(pos, key) VALUES(?1, ?2)",
};

int store_sql_error(struct ledger *l, struct ledger_error *err, const char *what)
{
    int code = l->db ? sqlite3_extended_errcode(l->db) : SQLITE_ERROR;
    if (err) {
        err->code = code == SQLITE_NOMEM ? LEDGER_ENOMEM : LEDGER_ESQL;
        snprintf(err->message, sizeof err->message, "%s: %s", what,
                 l->db ? sqlite3_errmsg(l->db) : "no database");
    }
    return code == SQLITE_NOMEM ? LEDGER_ENOMEM : LEDGER_ESQL;
}

sqlite3_stmt *store_stmt(struct ledger *l, enum ledger_stmt id)
{
    sqlite3_stmt *s = l->st[id];
    assert(s != NULL);
    sqlite3_reset(s); /* every use binds every parameter */
    return s;
}

void store_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n)
{
    if (n == 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
}

int store_exec(struct ledger *l, enum ledger_stmt id, struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, store_sql[id]);
    return 0;
}

int store_prepare(struct ledger *l, struct ledger_error *err)
{
    int watch_rc = watch_prepare(l, err); /* alerting tables and statements (watch_store.c) */
    if (watch_rc)
        return watch_rc;
    for (int i = 0; i < ST_COUNT; i++) {
        assert(store_sql[i] != NULL);
        if (sqlite3_prepare_v3(l->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &l->st[i], NULL) != SQLITE_OK)
            return store_sql_error(l, err, "prepare");
    }
    return 0;
}

void store_finalize(struct ledger *l)
{
    watch_finalize(l); /* alerting statements (watch_store.c) */
    xstore_finalize(l); /* limits_store.c */
    journal_rows_finalize(l); /* multi-row journal inserts */
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(l->st[i]);
        l->st[i] = NULL;
    }
}

void store_lift_size_limit(struct ledger *l)
{
    /* memdb stops growing at 1 GiB by default; a ledger may be larger. */
    sqlite3_int64 limit = (sqlite3_int64)LEDGER_MEMDB_MAX_BYTES;
    sqlite3_file_control(l->db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit);
}

int store_open(struct ledger *l, const char *path, struct ledger_error *err)
{
    /* memdb: one contiguous image, so a snapshot is a single copy. */
    const char *uri = path ? path : "file:purser-ledger?vfs=memdb";
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI |
                SQLITE_OPEN_NOMUTEX | (path ? 0 : SQLITE_OPEN_PRIVATECACHE);
    if (!path) {
        /* A private memdb name per handle: memdb names are process-global. */
        static unsigned long seq;
        char name[64];
        snprintf(name, sizeof name, "file:purser-ledger-%p-%lu?vfs=memdb", (void *)l,
                 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
        if (sqlite3_open_v2(name, &l->db, flags, NULL) != SQLITE_OK)
            return store_sql_error(l, err, "open");
    } else if (sqlite3_open_v2(uri, &l->db, flags, NULL) != SQLITE_OK) {
        return store_sql_error(l, err, "open");
    }
    if (!path)
        store_lift_size_limit(l);
    const char *pragmas = "PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY;"
                          " PRAGMA temp_store=MEMORY; PRAGMA secure_delete=OFF;"
                          " PRAGMA cache_size=-262144; PRAGMA foreign_keys=OFF;";
    if (sqlite3_exec(l->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "pragmas");
    if (sqlite3_exec(l->db, store_schema, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "schema");
    if (xstore_open(l, err) != 0) /* rate limits, estimates: limits_store.c */
        return err->code;
    return store_prepare(l, err);
}

void store_close(struct ledger *l)
{
    copy_abort_all(l); /* copy.c: no backup outlives its source */
    store_finalize(l);
    if (l->db)
        sqlite3_close(l->db);
    l->db = NULL;
}

static int64_t store_meta_get(struct ledger *l, const char *k, int64_t dflt)
{
    sqlite3_stmt *s = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(l->db, "SELECT v FROM meta WHERE k = ?1", -1, &s, NULL) != SQLITE_OK)
        return dflt;
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Move the rows of an image written before reservations lived in C. */
static int store_reservations_load(struct ledger *l, struct ledger_error *err)
{
    resv_reset(l);
    sqlite3_stmt *s = store_stmt(l, ST_RES_LOAD);
    int rc;
    uint64_t n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct resv f = {
            .id = (uint64_t)sqlite3_column_int64(s, 0),
            .account = (int32_t)sqlite3_column_int64(s, 1) - 1,
            .payee = (int32_t)sqlite3_column_int64(s, 2) - 1,
            .amount_micros = sqlite3_column_int64(s, 3),
            .deadline_ms = sqlite3_column_int64(s, 4),
            .on_expire = (uint8_t)sqlite3_column_int(s, 5),
            .status = (uint8_t)sqlite3_column_int(s, 6),
            .actual_micros = sqlite3_column_int64(s, 7),
            .transfer_id = (uint64_t)sqlite3_column_int64(s, 8),
            .overrun_micros = sqlite3_column_int64(s, 9),
            .created_ms = sqlite3_column_int64(s, 10),
            .closed_ms = sqlite3_column_int64(s, 11)};
        const void *meta = sqlite3_column_blob(s, 12);
        size_t meta_len = (size_t)sqlite3_column_bytes(s, 12);
        if (resv_load(l, &f, meta, meta_len) != 0) {
            sqlite3_reset(s);
            err->code = LEDGER_ECORRUPT;
            snprintf(err->message, sizeof err->message, "reservation %llu: bad row or no memory",
                     (unsigned long long)f.id);
            return LEDGER_ECORRUPT;
        }
        n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "load reservations");
    return n ? store_exec(l, ST_RES_CLEAR, err) : 0;
}

int store_cache_load(struct ledger *l, struct ledger_error *err)
{
    tree_reset(l);
    l->now_ms = store_meta_get(l, "now_ms", 0);
    l->entries_applied = (uint64_t)store_meta_get(l, "entries_applied", 0);
    l->next_reservation_id = (uint64_t)store_meta_get(l, "next_reservation_id", 1);
    l->next_transfer_id = (uint64_t)store_meta_get(l, "next_transfer_id", 1);
    l->next_grant_id = (uint64_t)store_meta_get(l, "next_grant_id", 1);
    l->journal_chain = (uint64_t)store_meta_get(l, "journal_chain", 0);

    sqlite3_stmt *s = NULL;
    const char *q = "SELECT id, name, parent, cap, period, tz, status, is_grant, grant_id,"
                    " grant_open, deadline, period_start, period_end, spent, reserved,"
                    " created_ms FROM account ORDER BY id";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "load accounts");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct acct a;
        memset(&a, 0, sizeof a);
        int64_t id = sqlite3_column_int64(s, 0);
        if (id != (int64_t)l->acct_count + 1) {
            sqlite3_finalize(s);
            err->code = LEDGER_ECORRUPT;
            snprintf(err->message, sizeof err->message, "account ids are not dense at %lld",
                     (long long)id);
            return LEDGER_ECORRUPT;
        }
        a.name = (char *)sqlite3_column_text(s, 1);
        a.name_len = (uint32_t)sqlite3_column_bytes(s, 1);
        a.parent = (int32_t)sqlite3_column_int64(s, 2) - 1;
        a.cap_micros = sqlite3_column_int64(s, 3);
        a.period = (uint8_t)sqlite3_column_int(s, 4);
        a.tz_offset_min = sqlite3_column_int(s, 5);
        a.status = (uint8_t)sqlite3_column_int(s, 6);
        a.is_grant = sqlite3_column_int(s, 7) != 0;
        a.grant_id = (uint64_t)sqlite3_column_int64(s, 8);
        a.grant_open = sqlite3_column_int(s, 9) != 0;
        a.deadline_ms = sqlite3_column_int64(s, 10);
        a.period_start_ms = sqlite3_column_int64(s, 11);
        a.period_end_ms = sqlite3_column_int64(s, 12);
        a.spent_micros = sqlite3_column_int64(s, 13);
        a.reserved_micros = sqlite3_column_int64(s, 14);
        a.created_ms = sqlite3_column_int64(s, 15);
        a.depth = a.parent >= 0 ? (uint8_t)(l->accts[a.parent].depth + 1) : 0;
        if (a.parent >= (int32_t)l->acct_count || tree_add(l, &a) < 0) {
            sqlite3_finalize(s);
            err->code = LEDGER_ECORRUPT;
            snprintf(err->message, sizeof err->message, "account %lld: bad parent or no memory",
                     (long long)id);
            return LEDGER_ECORRUPT;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "load accounts");

    l->closed_month_count = 0;
    if (sqlite3_prepare_v2(l->db, "SELECT month FROM period ORDER BY month DESC LIMIT 64",
                           -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "load periods");
    while (sqlite3_step(s) == SQLITE_ROW) {
        struct proto_str m = {(const char *)sqlite3_column_text(s, 0),
                              (uint32_t)sqlite3_column_bytes(s, 0)};
        int32_t idx = period_month_parse(m);
        if (idx >= 0)
            l->closed_months[l->closed_month_count++] = idx;
    }
    sqlite3_finalize(s);
    rc = store_reservations_load(l, err);
    if (rc)
        return rc;
    return watch_cache_load(l, err); /* alerting flags of the accounts (watch_store.c) */
}

static int store_meta_set(struct ledger *l, const char *k, int64_t v,
                          struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, ST_META_SET);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "meta");
    return 0;
}

/* Write every dirty account and the counters; called once per entry. */
int store_flush(struct ledger *l, struct ledger_error *err)
{
    for (uint32_t k = 0; k < l->dirty_count; k++) {
        int32_t i = l->dirty[k];
        struct acct *a = &l->accts[i];
        if (!a->dirty)
            continue; /* listed twice */
        assert(a->reserved_micros >= 0);
        sqlite3_stmt *s = store_stmt(l, ST_ACCT_UPDATE);
        sqlite3_bind_int64(s, 1, i + 1);
        sqlite3_bind_int64(s, 2, a->cap_micros);
        sqlite3_bind_int(s, 3, a->period);
        sqlite3_bind_int(s, 4, a->tz_offset_min);
        sqlite3_bind_int(s, 5, a->status);
        sqlite3_bind_int(s, 6, a->grant_open);
        sqlite3_bind_int64(s, 7, a->period_start_ms);
        sqlite3_bind_int64(s, 8, a->period_end_ms);
        sqlite3_bind_int64(s, 9, a->spent_micros);
        sqlite3_bind_int64(s, 10, a->reserved_micros);
        if (sqlite3_step(s) != SQLITE_DONE)
            return store_sql_error(l, err, "flush account");
        a->dirty = false;
    }
    l->dirty_count = 0;
    static const char *const keys[] = {"now_ms", "entries_applied", "next_reservation_id",
                                       "next_transfer_id", "next_grant_id", "journal_chain"};
    int64_t vals[] = {l->now_ms, (int64_t)l->entries_applied, (int64_t)l->next_reservation_id,
                      (int64_t)l->next_transfer_id, (int64_t)l->next_grant_id,
                      (int64_t)l->journal_chain};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        int rc = store_meta_set(l, keys[k], vals[k], err);
        if (rc)
            return rc;
    }
    l->is_meta_dirty = false;
    return 0;
}

int store_sync(struct ledger *l, struct ledger_error *err)
{
    if (l->dirty_count == 0 && !l->is_meta_dirty)
        return 0;
    int rc = store_exec(l, ST_BEGIN, err);
    if (rc)
        return rc;
    rc = store_flush(l, err);
    if (rc == 0)
        rc = store_exec(l, ST_COMMIT, err);
    if (rc) {
        struct ledger_error ignored;
        store_exec(l, ST_ROLLBACK, &ignored);
    }
    return rc;
}
