/*
 * reserve.c — two-phase spending: reserve, commit, release, expire.
 *
 * A reservation holds an amount on its account's path until a deadline
 * (TigerBeetle's pending transfers).  Commit posts the actual cost — less,
 * equal, or more than held (an overrun, recorded on the posting) — and frees
 * the hold; release frees it; expire frees (or, when asked at reserve time,
 * charges) every hold past its deadline, so a crashed gateway leaks nothing.
 *
 * Closed reservations stay queryable (a repeated commit answers like the
 * first) for LEDGER_IDEM_WINDOW_MS, then expire prunes them.
 */
#include "ledger/internal.h"

struct reservation {
    uint64_t id;
    int32_t account;
    int32_t payee;
    int64_t amount_micros;
    int64_t deadline_ms;
    int on_expire;
    int status;
    int64_t actual_micros;
    uint64_t transfer_id;
    int64_t overrun_micros;
    const void *meta; /* valid until the statement is reset */
    size_t meta_len;
};

/* Load a reservation; leaves ST_RES_GET stepped (meta points into it).
 * Returns 0 (found 1/0) or a hard error. */
static int reservation_load(struct ledger *l, uint64_t id, struct reservation *r, int *found,
                            struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, ST_RES_GET);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_sql_error(l, err, "load reservation");
    r->id = id;
    r->account = (int32_t)sqlite3_column_int64(s, 0) - 1;
    r->payee = (int32_t)sqlite3_column_int64(s, 1) - 1;
    r->amount_micros = sqlite3_column_int64(s, 2);
    r->deadline_ms = sqlite3_column_int64(s, 3);
    r->on_expire = sqlite3_column_int(s, 4);
    r->status = sqlite3_column_int(s, 5);
    r->actual_micros = sqlite3_column_int64(s, 6);
    r->transfer_id = (uint64_t)sqlite3_column_int64(s, 7);
    r->meta = sqlite3_column_blob(s, 8);
    r->meta_len = (size_t)sqlite3_column_bytes(s, 8);
    r->overrun_micros = sqlite3_column_int64(s, 9);
    assert(r->account >= 0 && (uint32_t)r->account < l->acct_count);
    return 0;
}

static int reservation_set_closed(struct ledger *l, uint64_t id, int status, int64_t actual,
                                  uint64_t transfer_id, int64_t overrun,
                                  struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, ST_RES_CLOSE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int(s, 2, status);
    sqlite3_bind_int64(s, 3, actual);
    sqlite3_bind_int64(s, 4, (int64_t)transfer_id);
    sqlite3_bind_int64(s, 5, l->now_ms);
    sqlite3_bind_int64(s, 6, overrun);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "close reservation");
    return 0;
}

int reserve_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                struct ledger_error *err)
{
    const struct proto_reserve_args *r = &c->u.reserve;
    if (!ledger_amount_valid(r->amount_micros, false))
        return ledger_refuse(res, PROTO_ERR_INVALID, "amount_micros: %lld is outside 1..%lld",
                             (long long)r->amount_micros, (long long)PROTO_AMOUNT_MAX), 0;
    if (r->ttl_ms < 1 || r->ttl_ms > PROTO_TTL_MAX_MS)
        return ledger_refuse(res, PROTO_ERR_INVALID, "ttl_ms: %lld is outside 1..%lld",
                             (long long)r->ttl_ms, (long long)PROTO_TTL_MAX_MS), 0;
    if (r->on_expire != PROTO_ON_EXPIRE_RELEASE && r->on_expire != PROTO_ON_EXPIRE_CHARGE)
        return ledger_refuse(res, PROTO_ERR_INVALID, "on_expire: %lld is not release (0) or"
                             " charge (1)", (long long)r->on_expire), 0;
    int32_t acct = account_find(l, r->account, "account", res);
    if (acct < 0)
        return 0;
    struct proto_str payee_name = tree_payee_default(r->payee);
    int32_t payee = tree_payee_check(l, payee_name, "payee", false, res);
    if (payee == -1)
        return 0;
    if (payee == acct)
        return ledger_refuse(res, PROTO_ERR_INVALID, "payee: the same account as account"), 0;
    const void *meta = NULL;
    size_t meta_len = 0;
    if (ledger_map_blob(l, &r->metadata, "metadata", &meta, &meta_len, res) != PROTO_OK)
        return 0;
    if (tree_fit(l, acct, -1, 0, r->amount_micros, TREE_CHECK_STATUS | TREE_CHECK_CAPS, res) !=
        PROTO_OK)
        return 0;
    int hook = limits_reserve_check(l, c, acct, res, err); /* HOOK: rate limits, approval */
    if (hook != 0 || res->status != PROTO_OK)
        return hook;
    payee = account_payee_resolve(l, payee, payee_name, err);
    if (payee < 0)
        return err->code ? err->code : LEDGER_ESQL;

    uint64_t id = l->next_reservation_id++;
    int64_t deadline = l->now_ms + r->ttl_ms;
    sqlite3_stmt *s = store_stmt(l, ST_RES_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, acct + 1);
    sqlite3_bind_int64(s, 3, payee + 1);
    sqlite3_bind_int64(s, 4, r->amount_micros);
    sqlite3_bind_int64(s, 5, deadline);
    sqlite3_bind_int(s, 6, (int)r->on_expire);
    sqlite3_bind_int64(s, 7, l->now_ms);
    store_bind_blob(s, 8, meta, meta_len);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "insert reservation");
    hook = ratelimit_record(l, id, acct, &r->metadata, r->tokens, err); /* HOOK: ratelimit.c */
    if (hook != 0)
        return hook;
    tree_apply(l, acct, -1, 0, r->amount_micros);
    res->id = id;
    res->amount_micros = r->amount_micros;
    res->expires_at_ms = deadline;
    res->remaining_micros = tree_available(l, acct, l->now_ms);
    return 0;
}

/* The answer a commit gives, first time or repeated. */
static void commit_answer(const struct ledger *l, const struct reservation *r,
                          struct proto_result *res)
{
    res->id = r->id;
    res->transfer_id = r->transfer_id;
    res->amount_micros = r->actual_micros;
    res->overrun_micros = r->overrun_micros;
    res->remaining_micros = tree_available(l, r->account, l->now_ms);
}

/* Post `actual` for r and free `held` on its path; status becomes `to`. */
static int reservation_settle(struct ledger *l, struct reservation *r, int64_t actual,
                              int64_t held, int64_t overrun, int to, const void *meta,
                              size_t meta_len, struct ledger_error *err)
{
    uint64_t transfer_id = 0;
    if (actual > 0) {
        int rc = journal_post(l, PROTO_KIND_SPEND, r->account, r->payee, actual, r->id, overrun,
                              meta, meta_len, &transfer_id, err);
        if (rc)
            return rc;
    }
    tree_apply(l, r->account, r->payee, actual, -held);
    r->status = to;
    r->actual_micros = actual;
    r->transfer_id = transfer_id;
    r->overrun_micros = overrun;
    return reservation_set_closed(l, r->id, to, actual, transfer_id, overrun, err);
}

int commit_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
               struct ledger_error *err)
{
    const struct proto_commit_args *a = &c->u.commit;
    if (!ledger_amount_valid(a->actual_micros, true))
        return ledger_refuse(res, PROTO_ERR_INVALID, "actual_micros: %lld is outside 0..%lld",
                             (long long)a->actual_micros, (long long)PROTO_AMOUNT_MAX), 0;
    const void *meta = NULL;
    size_t meta_len = 0;
    if (ledger_map_blob(l, &a->metadata, "metadata", &meta, &meta_len, res) != PROTO_OK)
        return 0;
    struct reservation r;
    int found = 0;
    int rc = reservation_load(l, a->reservation_id, &r, &found, err);
    if (rc)
        return rc;
    res->id = a->reservation_id;
    if (!found)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "reservation %llu does not exist",
                             (unsigned long long)a->reservation_id), 0;
    switch (r.status) {
    case LEDGER_RES_COMMITTED:
        if (r.actual_micros != a->actual_micros)
            return ledger_refuse(res, PROTO_ERR_CONFLICT,
                                 "reservation %llu was already committed with %lld micros",
                                 (unsigned long long)r.id, (long long)r.actual_micros), 0;
        commit_answer(l, &r, res);
        return 0;
    case LEDGER_RES_RELEASED:
        return ledger_refuse(res, PROTO_ERR_CONFLICT, "reservation %llu was released",
                             (unsigned long long)r.id), 0;
    case LEDGER_RES_CHARGED:
        return ledger_refuse(res, PROTO_ERR_CONFLICT,
                             "reservation %llu expired and was charged in full",
                             (unsigned long long)r.id), 0;
    default:
        break;
    }
    if (journal_check_open(l, res) != PROTO_OK)
        return 0;
    /* Open: the hold is still on the path.  Expired: it was freed. */
    int64_t held = r.status == LEDGER_RES_OPEN ? r.amount_micros : 0;
    int64_t overrun = a->actual_micros > held ? a->actual_micros - held : 0;
    if (tree_fit(l, r.account, r.payee, a->actual_micros, -held, 0, res) != PROTO_OK)
        return 0;
    if (meta_len == 0) {
        /* The reservation's metadata; copy it out of the statement first. */
        l->scratch.len = 0;
        if (r.meta_len && proto_buf_append(&l->scratch, r.meta, r.meta_len) != 0) {
            err->code = LEDGER_ENOMEM;
            snprintf(err->message, sizeof err->message, "out of memory");
            return LEDGER_ENOMEM;
        }
        meta = l->scratch.data;
        meta_len = r.meta_len;
    }
    rc = reservation_settle(l, &r, a->actual_micros, held, overrun, LEDGER_RES_COMMITTED, meta,
                            meta_len, err);
    if (rc == 0) /* HOOK: ratelimit.c (tokens 0 = unknown: keep the reserved figure) */
        rc = ratelimit_settle(l, r.id, a->tokens > 0 ? a->tokens : -1, err);
    if (rc)
        return rc;
    res->transfer_id = r.transfer_id;
    res->amount_micros = a->actual_micros;
    res->overrun_micros = overrun;
    res->remaining_micros = tree_available(l, r.account, l->now_ms);
    return 0;
}

int release_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                struct ledger_error *err)
{
    struct reservation r;
    int found = 0;
    uint64_t id = c->u.release.reservation_id;
    int rc = reservation_load(l, id, &r, &found, err);
    if (rc)
        return rc;
    res->id = id;
    if (!found)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "reservation %llu does not exist",
                             (unsigned long long)id), 0;
    if (r.status == LEDGER_RES_COMMITTED || r.status == LEDGER_RES_CHARGED)
        return ledger_refuse(res, PROTO_ERR_CONFLICT, "reservation %llu was already %s",
                             (unsigned long long)id,
                             r.status == LEDGER_RES_COMMITTED ? "committed"
                                                              : "charged in full by expiry"), 0;
    if (r.status == LEDGER_RES_OPEN) {
        tree_apply(l, r.account, -1, 0, -r.amount_micros);
        rc = reservation_set_closed(l, id, LEDGER_RES_RELEASED, 0, 0, 0, err);
        if (rc == 0)
            rc = ratelimit_settle(l, id, 0, err); /* HOOK: ratelimit.c (nothing generated) */
        if (rc)
            return rc;
    }
    res->returned_micros = r.amount_micros;
    res->remaining_micros = tree_available(l, r.account, l->now_ms);
    return 0;
}

/* Release or charge every open reservation due at now. */
static int reservation_expire_due(struct ledger *l, uint32_t max, uint32_t *count,
                                  struct ledger_error *err)
{
    /* Collect ids first: settling writes to the table being read. */
    uint64_t ids[256];
    *count = 0;
    while (*count < max) {
        uint32_t n = 0;
        sqlite3_stmt *s = store_stmt(l, ST_RES_DUE);
        sqlite3_bind_int64(s, 1, l->now_ms);
        sqlite3_bind_int64(s, 2, 256);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            ids[n++] = (uint64_t)sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return store_sql_error(l, err, "due reservations");
        if (n == 0)
            break;
        for (uint32_t k = 0; k < n && *count < max; k++, (*count)++) {
            struct reservation r;
            int found = 0;
            rc = reservation_load(l, ids[k], &r, &found, err);
            if (rc)
                return rc;
            assert(found && r.status == LEDGER_RES_OPEN);
            if (r.on_expire == PROTO_ON_EXPIRE_CHARGE) {
                l->scratch.len = 0;
                if (r.meta_len && proto_buf_append(&l->scratch, r.meta, r.meta_len) != 0)
                    return LEDGER_ENOMEM;
                rc = reservation_settle(l, &r, r.amount_micros, r.amount_micros, 0,
                                        LEDGER_RES_CHARGED, l->scratch.data, r.meta_len, err);
            } else {
                tree_apply(l, r.account, -1, 0, -r.amount_micros);
                rc = reservation_set_closed(l, r.id, LEDGER_RES_EXPIRED, 0, 0, 0, err);
            }
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* The first reservation id created at or after ts (ids grow with time);
 * binary search over ids, skipping pruned ones with the >= lookup. */
static int reservation_first_after(struct ledger *l, int64_t ts, uint64_t *out,
                                   struct ledger_error *err)
{
    uint64_t lo = 1, hi = l->next_reservation_id;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        sqlite3_stmt *s = store_stmt(l, ST_RES_CREATED);
        sqlite3_bind_int64(s, 1, (int64_t)mid);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return store_sql_error(l, err, "reservation time search");
        bool is_young = rc == SQLITE_DONE || sqlite3_column_int64(s, 0) >= ts;
        sqlite3_reset(s);
        if (is_young)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
    return 0;
}

int expire_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
               struct ledger_error *err)
{
    (void)c;
    uint32_t expired = 0, closed = 0;
    int rc = reservation_expire_due(l, LEDGER_EXPIRE_MAX, &expired, err);
    if (rc == 0)
        rc = grant_expire_due(l, LEDGER_EXPIRE_MAX, &closed, err);
    if (rc)
        return rc;
    int64_t before = l->now_ms - LEDGER_IDEM_WINDOW_MS;
    rc = idem_prune(l, before, err);
    if (rc == 0)
        rc = ratelimit_prune(l, err); /* HOOK: ratelimit.c */
    if (rc)
        return rc;
    uint64_t cutoff = 0;
    rc = reservation_first_after(l, before, &cutoff, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = store_stmt(l, ST_RES_PRUNE);
    sqlite3_bind_int64(s, 1, (int64_t)cutoff);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "prune reservations");
    res->amount_micros = expired;
    res->id = closed;
    return 0;
}
