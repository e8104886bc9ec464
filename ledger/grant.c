/*
 * grant.c — per-task micro-budgets.
 *
 * A grant is a child account `parent/grant-<id>` capped at its amount, with a
 * deadline.  While open it holds max(amount - spent, reserved) on the
 * parent's path (tree_contrib), so the parent cannot spend what it granted;
 * closing it (or expiry) drops the hold to what is still reserved inside,
 * which returns the unspent rest.  Grants move no money themselves: only
 * what the grant spends is posted.
 */
#include "ledger/internal.h"

int grant_create_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                     struct ledger_error *err)
{
    const struct proto_grant_create_args *g = &c->u.grant_create;
    if (!ledger_amount_valid(g->amount_micros, false))
        return ledger_refuse(res, PROTO_ERR_INVALID, "amount_micros: %lld is outside 1..%lld",
                             (long long)g->amount_micros, (long long)PROTO_AMOUNT_MAX), 0;
    if (g->ttl_ms < 1 || g->ttl_ms > PROTO_TTL_MAX_MS)
        return ledger_refuse(res, PROTO_ERR_INVALID, "ttl_ms: %lld is outside 1..%lld",
                             (long long)g->ttl_ms, (long long)PROTO_TTL_MAX_MS), 0;
    if (g->workflow.len > PROTO_TEXT_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "workflow: %u bytes exceed %d",
                             g->workflow.len, PROTO_TEXT_MAX), 0;
    int32_t parent = account_find(l, g->parent, "parent", res);
    if (parent < 0)
        return 0;
    const void *meta = NULL;
    size_t meta_len = 0;
    if (ledger_map_blob(l, &g->metadata, "metadata", &meta, &meta_len, res) != PROTO_OK)
        return 0;
    uint64_t id = l->next_grant_id;
    char name[PROTO_NAME_MAX + 64];
    int n = snprintf(name, sizeof name, "%s/grant-%llu", l->accts[parent].name,
                     (unsigned long long)id);
    struct proto_str sname = {name, (uint32_t)n};
    char msg[PROTO_MESSAGE_MAX + 1];
    if (!tree_name_valid(sname, msg, sizeof msg))
        return ledger_refuse(res, PROTO_ERR_INVALID, "parent: a grant under it: %s", msg), 0;
    if (tree_fit(l, parent, -1, 0, g->amount_micros, TREE_CHECK_STATUS | TREE_CHECK_CAPS, res) !=
        PROTO_OK)
        return 0;
    int hook = approval_check_grant(l, c, parent, res, err); /* HOOK: estimate.c */
    if (hook != 0 || res->status != PROTO_OK)
        return hook;
    int64_t deadline = l->now_ms + g->ttl_ms;
    int32_t i = account_create_grant(l, sname, parent, g->amount_micros, deadline, id, err);
    if (i < 0)
        return err->code ? err->code : LEDGER_ESQL;
    sqlite3_stmt *s = store_stmt(l, ST_GRANT_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, i + 1);
    sqlite3_bind_int64(s, 3, g->amount_micros);
    sqlite3_bind_int64(s, 4, deadline);
    sqlite3_bind_text(s, 5, g->workflow.len ? g->workflow.ptr : "", (int)g->workflow.len,
                      SQLITE_STATIC);
    store_bind_blob(s, 6, meta, meta_len);
    sqlite3_bind_int64(s, 7, l->now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "insert grant");
    hook = approval_grant_created(l, c, id, err); /* HOOK: estimate.c */
    if (hook != 0)
        return hook;
    l->next_grant_id = id + 1;
    /* The new grant's hold is its whole amount, held from the parent up. */
    tree_apply(l, parent, -1, 0, g->amount_micros);
    res->id = id;
    ledger_set_name(res, &l->accts[i]);
    res->amount_micros = g->amount_micros;
    res->expires_at_ms = deadline;
    res->remaining_micros = tree_available(l, i, l->now_ms);
    return 0;
}

struct grant_row {
    int32_t account;
    int64_t amount_micros;
    bool is_open;
    int64_t spent_micros;
    int64_t returned_micros;
};

static int grant_load(struct ledger *l, uint64_t id, struct grant_row *g, int *found,
                      struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, ST_GRANT_GET);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_sql_error(l, err, "load grant");
    g->account = (int32_t)sqlite3_column_int64(s, 0) - 1;
    g->amount_micros = sqlite3_column_int64(s, 1);
    g->is_open = sqlite3_column_int(s, 3) != 0;
    g->spent_micros = sqlite3_column_int64(s, 4);
    g->returned_micros = sqlite3_column_int64(s, 5);
    sqlite3_reset(s);
    return 0;
}

/* Close an open grant: its hold drops to what is reserved inside. */
static int grant_close_one(struct ledger *l, uint64_t id, struct grant_row *g,
                           struct ledger_error *err)
{
    struct acct *a = &l->accts[g->account];
    assert(a->is_grant && a->grant_open);
    int64_t hold = tree_contrib(a, a->spent_micros, a->reserved_micros);
    int64_t returned = hold - a->reserved_micros;
    assert(returned >= 0);
    tree_touch(l, g->account);
    a->grant_open = false;
    a->status = LEDGER_STATUS_CLOSED;
    if (returned > 0 && a->parent >= 0)
        tree_apply(l, a->parent, -1, 0, -returned);
    g->is_open = false;
    g->spent_micros = a->spent_micros;
    g->returned_micros = returned;
    sqlite3_stmt *s = store_stmt(l, ST_GRANT_CLOSE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, g->spent_micros);
    sqlite3_bind_int64(s, 3, returned);
    sqlite3_bind_int64(s, 4, l->now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "close grant");
    return estimate_grant_closed(l, id, g->spent_micros, err); /* HOOK: estimate.c */
}

int grant_close_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                    struct ledger_error *err)
{
    uint64_t id = c->u.grant_close.grant_id;
    struct grant_row g;
    int found = 0;
    int rc = grant_load(l, id, &g, &found, err);
    if (rc)
        return rc;
    res->id = id;
    if (!found)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "grant %llu does not exist",
                             (unsigned long long)id), 0;
    if (g.is_open) {
        rc = grant_close_one(l, id, &g, err);
        if (rc)
            return rc;
    }
    ledger_set_name(res, &l->accts[g.account]);
    res->amount_micros = g.spent_micros;
    res->returned_micros = g.returned_micros;
    return 0;
}

int grant_expire_due(struct ledger *l, uint32_t max, uint32_t *closed, struct ledger_error *err)
{
    uint64_t ids[256];
    *closed = 0;
    while (*closed < max) {
        uint32_t n = 0;
        sqlite3_stmt *s = store_stmt(l, ST_GRANT_DUE);
        sqlite3_bind_int64(s, 1, l->now_ms);
        sqlite3_bind_int64(s, 2, 256);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            ids[n++] = (uint64_t)sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return store_sql_error(l, err, "due grants");
        if (n == 0)
            break;
        for (uint32_t k = 0; k < n && *closed < max; k++, (*closed)++) {
            struct grant_row g;
            int found = 0;
            rc = grant_load(l, ids[k], &g, &found, err);
            if (rc == 0)
                rc = grant_close_one(l, ids[k], &g, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}
