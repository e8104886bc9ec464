/*
 * limits_store.c — the SQLite side of rate limits (ratelimit.c) and of
 * estimates and approvals (estimate.c): their tables, their statements
 * (prepared on first use, finalized with the others), the two hints that
 * let the hot path skip them when nothing is configured, and reserve.c's
 * check hook.
 *
 * The tables are ordinary ledger state: they are in the SQLite image (so in
 * every snapshot) and in the state hash (hash.c).  The approval threshold is
 * the `meta` row 'approval_above_micros' (absent: no approval rule).
 */
#include "ledger/internal.h"

static const char *const xstore_schema =
    /* One row per scope ever limited (rows are zeroed, never deleted, so an
     * id never names two scopes).  account "" = a metadata scope. */
    "CREATE TABLE IF NOT EXISTS rate_limit(id INTEGER PRIMARY KEY, account TEXT NOT NULL,"
    " meta_key TEXT NOT NULL, meta_value TEXT NOT NULL, rpm INTEGER NOT NULL,"
    " tpm INTEGER NOT NULL, tph INTEGER NOT NULL, tpd INTEGER NOT NULL,"
    " UNIQUE(account, meta_key, meta_value));"
    /* One row per (limited scope, reservation) of the last day. */
    "CREATE TABLE IF NOT EXISTS rate_event(scope INTEGER NOT NULL, ts INTEGER NOT NULL,"
    " reservation INTEGER NOT NULL, tokens INTEGER NOT NULL,"
    " PRIMARY KEY(scope, ts, reservation)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS rate_event_res ON rate_event(reservation);"
    "CREATE INDEX IF NOT EXISTS rate_event_ts ON rate_event(ts);"
    /* Closed-grant costs per (workflow, model): a ring of slots. */
    "CREATE TABLE IF NOT EXISTS estimate_stat(workflow TEXT NOT NULL, model TEXT NOT NULL,"
    " seen INTEGER NOT NULL, PRIMARY KEY(workflow, model)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS estimate_sample(workflow TEXT NOT NULL, model TEXT NOT NULL,"
    " slot INTEGER NOT NULL, cost INTEGER NOT NULL,"
    " PRIMARY KEY(workflow, model, slot)) WITHOUT ROWID;"
    /* Grants an admin created: each is the approval of its work. */
    "CREATE TABLE IF NOT EXISTS grant_approved(grant_id INTEGER PRIMARY KEY);";

static const char *const xstore_sql[XS_COUNT] = {
    [XS_RL_FIND] = "SELECT id, rpm, tpm, tph, tpd FROM rate_limit"
                   " WHERE account = ?1 AND meta_key = ?2 AND meta_value = ?3",
    [XS_RL_UPSERT] = "INSERT INTO rate_limit(account, meta_key, meta_value, rpm, tpm, tph, tpd)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                     " ON CONFLICT(account, meta_key, meta_value) DO UPDATE SET"
                     " rpm = ?4, tpm = ?5, tph = ?6, tpd = ?7 RETURNING id",
    [XS_RL_CLEAR_EVENTS] = "DELETE FROM rate_event WHERE scope = ?1",
    [XS_RL_EVENT_INSERT] = "INSERT INTO rate_event(scope, ts, reservation, tokens)"
                           " VALUES(?1, ?2, ?3, ?4)",
    [XS_RL_WINDOW_SUM] = "SELECT count(*), coalesce(sum(tokens), 0) FROM rate_event"
                         " WHERE scope = ?1 AND ts > ?2",
    [XS_RL_WINDOW_EVENTS] = "SELECT ts, tokens FROM rate_event WHERE scope = ?1 AND ts > ?2"
                            " ORDER BY ts, reservation",
    [XS_RL_SETTLE] = "UPDATE rate_event SET tokens = ?2 WHERE reservation = ?1",
    [XS_RL_PRUNE] = "DELETE FROM rate_event WHERE ts <= ?1",
    [XS_EST_STAT_GET] = "SELECT seen FROM estimate_stat WHERE workflow = ?1 AND model = ?2",
    [XS_EST_STAT_SET] = "INSERT INTO estimate_stat(workflow, model, seen) VALUES(?1, ?2, ?3)"
                        " ON CONFLICT(workflow, model) DO UPDATE SET seen = ?3",
    [XS_EST_SAMPLE_SET] = "INSERT INTO estimate_sample(workflow, model, slot, cost)"
                          " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(workflow, model, slot)"
                          " DO UPDATE SET cost = ?4",
    [XS_EST_SAMPLES] = "SELECT cost FROM estimate_sample WHERE workflow = ?1 AND model = ?2"
                       " ORDER BY cost",
    [XS_EST_GRANT] = "SELECT workflow, metadata FROM grants WHERE id = ?1",
    [XS_APPROVAL_GET] = "SELECT v FROM meta WHERE k = 'approval_above_micros'",
    [XS_APPROVAL_SET] = "INSERT INTO meta(k, v) VALUES('approval_above_micros', ?1)"
                        " ON CONFLICT(k) DO UPDATE SET v = ?1",
    [XS_APPROVAL_CLEAR] = "DELETE FROM meta WHERE k = 'approval_above_micros'",
    [XS_GRANT_APPROVED_ADD] = "INSERT OR IGNORE INTO grant_approved(grant_id) VALUES(?1)",
    [XS_GRANT_APPROVED_GET] = "SELECT 1 FROM grant_approved WHERE grant_id = ?1",
};

static bool xstore_exists(struct ledger *l, const char *sql)
{
    sqlite3_stmt *s = NULL;
    bool is_found = false;
    if (sqlite3_prepare_v2(l->db, sql, -1, &s, NULL) == SQLITE_OK)
        is_found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return is_found;
}

int xstore_open(struct ledger *l, struct ledger_error *err)
{
    if (sqlite3_exec(l->db, xstore_schema, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "schema of rate limits and estimates");
    l->has_rate_limits = xstore_exists(l, "SELECT 1 FROM rate_limit LIMIT 1");
    l->has_approval =
        xstore_exists(l, "SELECT 1 FROM meta WHERE k = 'approval_above_micros'");
    return 0;
}

void xstore_finalize(struct ledger *l)
{
    for (int i = 0; i < XS_COUNT; i++) {
        sqlite3_finalize(l->xst[i]);
        l->xst[i] = NULL;
    }
}

sqlite3_stmt *xstore_stmt(struct ledger *l, enum ledger_xstmt id, struct ledger_error *err)
{
    if (l->xst[id] == NULL) {
        assert(xstore_sql[id] != NULL);
        if (sqlite3_prepare_v3(l->db, xstore_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &l->xst[id], NULL) != SQLITE_OK) {
            store_sql_error(l, err, "prepare");
            return NULL;
        }
    }
    sqlite3_reset(l->xst[id]);
    sqlite3_clear_bindings(l->xst[id]);
    return l->xst[id];
}

int limits_reserve_check(struct ledger *l, const struct proto_cmd *c, int32_t i,
                         struct proto_result *res, struct ledger_error *err)
{
    const struct proto_reserve_args *r = &c->u.reserve;
    int rc = ratelimit_check(l, i, &r->metadata, r->tokens, res, err);
    if (rc == 0 && res->status == PROTO_OK)
        rc = approval_check_reserve(l, c, i, res, err);
    return rc;
}
