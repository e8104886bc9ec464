/*
 * watch_store.c — the SQLite side of alerting (circuit breakers, spend
 * thresholds, the event outbox) and the one hook every posting goes through.
 *
 * All alerting state lives in SQLite tables, so the snapshot (the database
 * image) carries it and the state hash (hash.c) covers it; an entry that
 * fails rolls it back with everything else.  Nothing here is held in C.
 *
 *   breaker        per account: the configuration and its counters (velocity
 *                  sub-buckets and bedtime nights as little-endian int64 blobs)
 *   freeze_reason  why an account is frozen (velocity, bedtime, admin text)
 *   alert_config   per account thresholds ("" = none; no row = the default)
 *   alert_fired    per account: the period they last fired in, and a bit per
 *                  threshold already fired in it
 *   outbox         events waiting to be delivered (acknowledged ones deleted)
 *   meta           next_event_id, events_dropped (counters, hashed with meta)
 */
#include <stdarg.h>
#include <stdlib.h>

#include "ledger/internal.h"

static const char *const watch_schema =
    "CREATE TABLE IF NOT EXISTS breaker(account INTEGER PRIMARY KEY,"
    " velocity_max INTEGER NOT NULL, window_ms INTEGER NOT NULL,"
    " bed_start INTEGER NOT NULL, bed_end INTEGER NOT NULL, factor_pct INTEGER NOT NULL,"
    " floor INTEGER NOT NULL, buckets BLOB, nights BLOB);"
    "CREATE TABLE IF NOT EXISTS freeze_reason(account INTEGER PRIMARY KEY,"
    " reason TEXT NOT NULL, ts INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS alert_config(account INTEGER PRIMARY KEY,"
    " thresholds TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS alert_fired(account INTEGER PRIMARY KEY,"
    " period_start INTEGER NOT NULL, mask INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
    " type TEXT NOT NULL, account TEXT NOT NULL, detail TEXT NOT NULL);";

static const char *const watch_sql[WS_COUNT] = {
    [WS_BREAKER_GET] = "SELECT velocity_max, window_ms, bed_start, bed_end, factor_pct, floor,"
                       " buckets, nights FROM breaker WHERE account = ?1",
    [WS_BREAKER_PUT] = "INSERT OR REPLACE INTO breaker(account, velocity_max, window_ms,"
                       " bed_start, bed_end, factor_pct, floor, buckets, nights)"
                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [WS_BREAKER_DEL] = "DELETE FROM breaker WHERE account = ?1",
    [WS_BREAKER_STATE] = "UPDATE breaker SET buckets = ?2, nights = ?3 WHERE account = ?1",
    [WS_REASON_GET] = "SELECT reason FROM freeze_reason WHERE account = ?1",
    [WS_REASON_PUT] = "INSERT OR REPLACE INTO freeze_reason(account, reason, ts)"
                      " VALUES(?1, ?2, ?3)",
    [WS_REASON_DEL] = "DELETE FROM freeze_reason WHERE account = ?1",
    [WS_ALERT_GET] = "SELECT thresholds FROM alert_config WHERE account = ?1",
    [WS_ALERT_PUT] = "INSERT OR REPLACE INTO alert_config(account, thresholds) VALUES(?1, ?2)",
    [WS_FIRED_GET] = "SELECT period_start, mask FROM alert_fired WHERE account = ?1",
    [WS_FIRED_PUT] = "INSERT OR REPLACE INTO alert_fired(account, period_start, mask)"
                     " VALUES(?1, ?2, ?3)",
    [WS_OUTBOX_INSERT] = "INSERT INTO outbox(id, ts, type, account, detail)"
                         " VALUES(?1, ?2, ?3, ?4, ?5)",
    [WS_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
    [WS_OUTBOX_DROP_OLDEST] = "DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox)",
    [WS_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
    [WS_OUTBOX_MAX_ID] = "SELECT coalesce(max(id), 0) FROM outbox",
    [WS_META_GET] = "SELECT v FROM meta WHERE k = ?1",
};

int watch_prepare(struct ledger *l, struct ledger_error *err)
{
    if (sqlite3_exec(l->db, watch_schema, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "alerting schema");
    for (int i = 0; i < WS_COUNT; i++) {
        assert(watch_sql[i] != NULL);
        if (sqlite3_prepare_v3(l->db, watch_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &l->watch_st[i], NULL) != SQLITE_OK)
            return store_sql_error(l, err, "prepare alerting");
    }
    return 0;
}

void watch_finalize(struct ledger *l)
{
    for (int i = 0; i < WS_COUNT; i++) {
        sqlite3_finalize(l->watch_st[i]);
        l->watch_st[i] = NULL;
    }
}

sqlite3_stmt *watch_stmt(const struct ledger *l, enum watch_stmt id)
{
    sqlite3_stmt *s = l->watch_st[id];
    assert(s != NULL);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

int64_t watch_meta_get(const struct ledger *l, const char *k, int64_t dflt)
{
    sqlite3_stmt *s = watch_stmt(l, WS_META_GET);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : dflt;
    sqlite3_reset(s);
    return v;
}

int watch_cache_load(struct ledger *l, struct ledger_error *err)
{
    static const char *const q[] = {"SELECT account FROM breaker",
                                     "SELECT account FROM alert_config"};
    static const unsigned bit[] = {WATCH_BREAKER, WATCH_ALERTS};
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(l->db, q[k], -1, &s, NULL) != SQLITE_OK)
            return store_sql_error(l, err, "load alerting");
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(s, 0);
            if (id >= 1 && (uint64_t)id <= l->acct_count)
                l->accts[id - 1].watch |= (uint8_t)bit[k];
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            return store_sql_error(l, err, "load alerting");
    }
    return 0;
}

/* Call row(arg, account index or -1, column 1) for every row of `q`. */
static int watch_rows(struct ledger *l, const char *q, void (*row)(void *, int32_t, int64_t),
                      void *arg, struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "verify alerting");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        int32_t i = id >= 1 && (uint64_t)id <= l->acct_count ? (int32_t)(id - 1) : -1;
        row(arg, i, sqlite3_column_count(s) > 1 ? sqlite3_column_int64(s, 1) : 0);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : store_sql_error(l, err, "verify alerting");
}

struct watch_check {
    struct ledger *l;
    ledger_violation_cb cb;
    void *arg;
    int *count;
    uint8_t *seen; /* WATCH_* bits found in the tables, per account */
    unsigned bit;
};

__attribute__((format(printf, 2, 3)))
static void watch_report(struct watch_check *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (*w->count)++;
    if (w->cb)
        w->cb(w->arg, msg);
}

static void watch_check_reason(void *arg, int32_t i, int64_t unused)
{
    struct watch_check *w = arg;
    (void)unused;
    if (i < 0)
        watch_report(w, "alerting: a freeze reason for an account that does not exist");
    else if (w->l->accts[i].status != LEDGER_STATUS_FROZEN)
        watch_report(w, "alerting: account \"%s\" has a freeze reason but is not frozen",
                     w->l->accts[i].name);
}

static void watch_check_flag(void *arg, int32_t i, int64_t unused)
{
    struct watch_check *w = arg;
    (void)unused;
    if (i < 0)
        watch_report(w, "alerting: a breaker or thresholds for an account that does not exist");
    else
        w->seen[i] |= (uint8_t)w->bit;
}

int watch_verify(struct ledger *l, ledger_violation_cb cb, void *arg, int *count,
                 struct ledger_error *err)
{
    struct watch_check w = {l, cb, arg, count, calloc(l->acct_count + 1, 1), 0};
    if (!w.seen) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return LEDGER_ENOMEM;
    }
    int rc = watch_rows(l, "SELECT account FROM freeze_reason", watch_check_reason, &w, err);
    w.bit = WATCH_BREAKER;
    if (rc == 0)
        rc = watch_rows(l, "SELECT account FROM breaker", watch_check_flag, &w, err);
    w.bit = WATCH_ALERTS;
    if (rc == 0)
        rc = watch_rows(l, "SELECT account FROM alert_config", watch_check_flag, &w, err);
    for (uint32_t i = 0; rc == 0 && i < l->acct_count; i++)
        if (w.seen[i] != l->accts[i].watch)
            watch_report(&w, "alerting: account \"%s\" has flags %u, its rows say %u",
                         l->accts[i].name, l->accts[i].watch, w.seen[i]);
    free(w.seen);
    if (rc)
        return rc;
    struct ledger_outbox_stats st;
    ledger_outbox_stats(l, &st, err);
    sqlite3_stmt *s = watch_stmt(l, WS_OUTBOX_MAX_ID);
    int64_t max_id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (st.pending_count > LEDGER_OUTBOX_MAX)
        watch_report(&w, "alerting: %llu events pending, more than %d",
                     (unsigned long long)st.pending_count, LEDGER_OUTBOX_MAX);
    if ((uint64_t)max_id >= st.next_event_id)
        watch_report(&w, "alerting: event %lld is not below next_event_id %llu",
                     (long long)max_id, (unsigned long long)st.next_event_id);
    return 0;
}

void watch_flag_set(struct ledger *l, int32_t i, unsigned bit, bool is_on)
{
    struct acct *a = &l->accts[i];
    if (((a->watch & bit) != 0) == is_on)
        return;
    tree_touch(l, i);
    a->watch = (uint8_t)(is_on ? a->watch | bit : a->watch & ~bit);
}

int watch_on_posting(struct ledger *l, int kind, int32_t debit, int32_t credit,
                     int64_t amount_micros, struct ledger_error *err)
{
    /* Admin adjustments correct the books: they count against thresholds
     * (they are in spent) but are not an agent spending fast. */
    bool is_breaker_spend = kind != PROTO_KIND_ADJUSTMENT;
    /* The accounts whose spent this raises: debit and its ancestors up to
     * the first one that contains the credit side (outflow of the subtree). */
    for (int32_t i = debit; i >= 0; i = l->accts[i].parent) {
        if (tree_is_ancestor_or_self(l, i, credit))
            break;
        int rc = threshold_on_spend(l, i, amount_micros, err);
        if (rc == 0 && is_breaker_spend && (l->accts[i].watch & WATCH_BREAKER))
            rc = breaker_on_spend(l, i, amount_micros, err);
        if (rc)
            return rc;
    }
    return 0;
}
