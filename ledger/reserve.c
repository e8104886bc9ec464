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
 * first) for LEDGER_IDEM_WINDOW_MS, then expire prunes them.  They are kept
 * in C (resv.c); this file decides, resv.c stores.
 */
#include "ledger/internal.h"

static int reserve_nomem(struct ledger_error *err)
{
    err->code = LEDGER_ENOMEM;
    snprintf(err->message, sizeof err->message, "out of memory in the reservation store");
    return LEDGER_ENOMEM;
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

    int64_t deadline = l->now_ms + r->ttl_ms;
    struct resv *held = resv_create(l, acct, payee, r->amount_micros, deadline,
                                    (int)r->on_expire, meta, meta_len);
    if (!held)
        return reserve_nomem(err);
    hook = ratelimit_record(l, held->id, acct, &r->metadata, r->tokens, err); /* HOOK: ratelimit.c */
    if (hook != 0)
        return hook;
    tree_apply(l, acct, -1, 0, r->amount_micros);
    res->id = held->id;
    res->amount_micros = r->amount_micros;
    res->expires_at_ms = deadline;
    res->remaining_micros = tree_available(l, acct, l->now_ms);
    return 0;
}

/* The answer a commit gives, first time or repeated. */
static void commit_answer(const struct ledger *l, const struct resv *r,
                          struct proto_result *res)
{
    res->id = r->id;
    res->transfer_id = r->transfer_id;
    res->amount_micros = r->actual_micros;
    res->overrun_micros = r->overrun_micros;
    res->remaining_micros = tree_available(l, r->account, l->now_ms);
}

/* Post `actual` for r and free `held` on its path; status becomes `to`. */
static int reservation_settle(struct ledger *l, struct resv *r, int64_t actual, int64_t held,
                              int64_t overrun, int to, const void *meta, size_t meta_len,
                              struct ledger_error *err)
{
    uint64_t transfer_id = 0;
    if (actual > 0) {
        int rc = journal_post(l, PROTO_KIND_SPEND, r->account, r->payee, actual, r->id, overrun,
                              meta, meta_len, &transfer_id, err);
        if (rc)
            return rc;
    }
    if (resv_close(l, r, to, actual, transfer_id, overrun) != 0)
        return reserve_nomem(err);
    tree_apply(l, r->account, r->payee, actual, -held);
    return 0;
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
    struct resv *r = resv_find(l, a->reservation_id);
    res->id = a->reservation_id;
    if (!r)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "reservation %llu does not exist",
                             (unsigned long long)a->reservation_id), 0;
    switch (r->status) {
    case LEDGER_RES_COMMITTED:
        if (r->actual_micros != a->actual_micros)
            return ledger_refuse(res, PROTO_ERR_CONFLICT,
                                 "reservation %llu was already committed with %lld micros",
                                 (unsigned long long)r->id, (long long)r->actual_micros), 0;
        commit_answer(l, r, res);
        return 0;
    case LEDGER_RES_RELEASED:
        return ledger_refuse(res, PROTO_ERR_CONFLICT, "reservation %llu was released",
                             (unsigned long long)r->id), 0;
    case LEDGER_RES_CHARGED:
        return ledger_refuse(res, PROTO_ERR_CONFLICT,
                             "reservation %llu expired and was charged in full",
                             (unsigned long long)r->id), 0;
    default:
        break;
    }
    if (journal_check_open(l, res) != PROTO_OK)
        return 0;
    /* Open: the hold is still on the path.  Expired: it was freed. */
    int64_t held = r->status == LEDGER_RES_OPEN ? r->amount_micros : 0;
    int64_t overrun = a->actual_micros > held ? a->actual_micros - held : 0;
    if (tree_fit(l, r->account, r->payee, a->actual_micros, -held, 0, res) != PROTO_OK)
        return 0;
    if (meta_len == 0) {
        /* The reservation's metadata (it lives as long as r). */
        meta = r->meta;
        meta_len = r->meta_len;
    }
    int rc = reservation_settle(l, r, a->actual_micros, held, overrun, LEDGER_RES_COMMITTED,
                                meta, meta_len, err);
    if (rc == 0) /* HOOK: ratelimit.c (tokens 0 = unknown: keep the reserved figure) */
        rc = ratelimit_settle(l, r->id, a->tokens > 0 ? a->tokens : -1, err);
    if (rc)
        return rc;
    res->transfer_id = r->transfer_id;
    res->amount_micros = a->actual_micros;
    res->overrun_micros = overrun;
    res->remaining_micros = tree_available(l, r->account, l->now_ms);
    return 0;
}

int release_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                struct ledger_error *err)
{
    uint64_t id = c->u.release.reservation_id;
    struct resv *r = resv_find(l, id);
    res->id = id;
    if (!r)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "reservation %llu does not exist",
                             (unsigned long long)id), 0;
    if (r->status == LEDGER_RES_COMMITTED || r->status == LEDGER_RES_CHARGED)
        return ledger_refuse(res, PROTO_ERR_CONFLICT, "reservation %llu was already %s",
                             (unsigned long long)id,
                             r->status == LEDGER_RES_COMMITTED ? "committed"
                                                               : "charged in full by expiry"), 0;
    if (r->status == LEDGER_RES_OPEN) {
        if (resv_close(l, r, LEDGER_RES_RELEASED, 0, 0, 0) != 0)
            return reserve_nomem(err);
        tree_apply(l, r->account, -1, 0, -r->amount_micros);
        int rc = ratelimit_settle(l, id, 0, err); /* HOOK: ratelimit.c (nothing generated) */
        if (rc)
            return rc;
    }
    res->returned_micros = r->amount_micros;
    res->remaining_micros = tree_available(l, r->account, l->now_ms);
    return 0;
}

/* Release or charge every open reservation due at now, in (deadline, id)
 * order, at most max. */
static int reservation_expire_due(struct ledger *l, uint32_t max, uint32_t *count,
                                  struct ledger_error *err)
{
    *count = 0;
    struct resv *r;
    while (*count < max && (r = resv_due_first(l)) != NULL) {
        int rc;
        if (r->on_expire == PROTO_ON_EXPIRE_CHARGE) {
            rc = reservation_settle(l, r, r->amount_micros, r->amount_micros, 0,
                                    LEDGER_RES_CHARGED, r->meta, r->meta_len, err);
        } else if (resv_close(l, r, LEDGER_RES_EXPIRED, 0, 0, 0) != 0) {
            rc = reserve_nomem(err);
        } else {
            tree_apply(l, r->account, -1, 0, -r->amount_micros);
            rc = 0;
        }
        if (rc)
            return rc;
        (*count)++;
    }
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
    if (resv_prune(l, before) != 0)
        return reserve_nomem(err);
    res->amount_micros = expired;
    res->id = closed;
    return 0;
}
