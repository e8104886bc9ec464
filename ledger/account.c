/*
 * account.c — account create, update, freeze, unfreeze, close, and the
 * vendor accounts created on first use.
 *
 * Accounts are never deleted (the journal refers to them by id); closing is
 * final.  Ids are dense (index + 1), which is what lets the C cache be an
 * array.
 */
#include "ledger/internal.h"

static int32_t account_insert(struct ledger *l, const struct acct *a, const void *tags,
                              size_t tags_len, struct ledger_error *err)
{
    int32_t i = tree_add(l, a);
    if (i < 0) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory adding an account");
        return -1;
    }
    const struct acct *n = &l->accts[i];
    sqlite3_stmt *s = store_stmt(l, ST_ACCT_INSERT);
    sqlite3_bind_int64(s, 1, i + 1);
    sqlite3_bind_text(s, 2, n->name, (int)n->name_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, n->parent + 1);
    sqlite3_bind_int64(s, 4, n->cap_micros);
    sqlite3_bind_int(s, 5, n->period);
    sqlite3_bind_int(s, 6, n->tz_offset_min);
    sqlite3_bind_int(s, 7, n->status);
    sqlite3_bind_int(s, 8, n->is_grant);
    sqlite3_bind_int64(s, 9, (int64_t)n->grant_id);
    sqlite3_bind_int(s, 10, n->grant_open);
    sqlite3_bind_int64(s, 11, n->deadline_ms);
    sqlite3_bind_int64(s, 12, n->period_start_ms);
    sqlite3_bind_int64(s, 13, n->period_end_ms);
    sqlite3_bind_int64(s, 14, n->spent_micros);
    sqlite3_bind_int64(s, 15, n->reserved_micros);
    sqlite3_bind_int64(s, 16, n->created_ms);
    store_bind_blob(s, 17, tags, tags_len);
    if (sqlite3_step(s) != SQLITE_DONE) {
        store_sql_error(l, err, "insert account");
        return -1;
    }
    return i;
}

/* Fill a new account's fields; the window starts at now. */
static void account_init(const struct ledger *l, struct acct *a, struct proto_str name,
                         int32_t parent, int64_t cap, int period, int tz)
{
    memset(a, 0, sizeof *a);
    a->name = (char *)name.ptr;
    a->name_len = name.len;
    a->parent = parent;
    a->depth = parent >= 0 ? (uint8_t)(l->accts[parent].depth + 1) : 0;
    a->cap_micros = cap;
    a->period = (uint8_t)period;
    a->tz_offset_min = tz;
    a->created_ms = l->now_ms;
    period_window(period, tz, l->now_ms, &a->period_start_ms, &a->period_end_ms);
}

int32_t account_create_grant(struct ledger *l, struct proto_str name, int32_t parent,
                             int64_t amount, int64_t deadline, uint64_t grant_id,
                             struct ledger_error *err)
{
    struct acct a;
    account_init(l, &a, name, parent, amount, PROTO_PERIOD_NONE, 0);
    a.is_grant = true;
    a.grant_open = true;
    a.grant_id = grant_id;
    a.deadline_ms = deadline;
    return account_insert(l, &a, NULL, 0, err);
}

int32_t account_vendor_create(struct ledger *l, struct proto_str name,
                              struct ledger_error *err)
{
    assert(tree_is_vendor_name(name));
    int32_t parent = tree_find(l, "vendor", 6);
    if (parent < 0) {
        struct acct v;
        account_init(l, &v, (struct proto_str){"vendor", 6}, -1, PROTO_CAP_NONE,
                     PROTO_PERIOD_NONE, 0);
        parent = account_insert(l, &v, NULL, 0, err);
        if (parent < 0)
            return -1;
    }
    struct acct a;
    account_init(l, &a, name, parent, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    return account_insert(l, &a, NULL, 0, err);
}

int32_t account_payee_resolve(struct ledger *l, int32_t checked, struct proto_str name,
                              struct ledger_error *err)
{
    if (checked >= 0)
        return checked;
    assert(checked == -2);
    return account_vendor_create(l, name, err);
}

static int account_check_fields(const struct proto_account_args *a, bool is_update,
                                struct proto_result *res)
{
    if (!(is_update && a->cap_micros == PROTO_UNSET) && a->cap_micros != PROTO_CAP_NONE &&
        !ledger_amount_valid(a->cap_micros, true))
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "cap_micros: %lld is not -1 (none) or 0..%lld",
                             (long long)a->cap_micros, (long long)PROTO_AMOUNT_MAX);
    if (!(is_update && a->period == PROTO_UNSET) &&
        (a->period < PROTO_PERIOD_NONE || a->period > PROTO_PERIOD_MONTH))
        return ledger_refuse(res, PROTO_ERR_INVALID, "period: %lld is not none/day/week/month",
                             (long long)a->period);
    if (!(is_update && a->tz_offset_min == PROTO_UNSET) &&
        (a->tz_offset_min < -PROTO_TZ_MAX_MIN || a->tz_offset_min > PROTO_TZ_MAX_MIN))
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "tz_offset_min: %lld is outside -840..840",
                             (long long)a->tz_offset_min);
    return PROTO_OK;
}

/* Find an account named in a command or refuse (NOT_FOUND names it). */
static int32_t account_lookup(const struct ledger *l, struct proto_str name, const char *field,
                              struct proto_result *res)
{
    int32_t i = tree_find_str(l, name);
    if (i < 0) {
        char msg[PROTO_MESSAGE_MAX + 1];
        if (!tree_name_valid(name, msg, sizeof msg))
            ledger_refuse(res, PROTO_ERR_INVALID, "%s: %s", field, msg);
        else
            ledger_refuse(res, PROTO_ERR_NOT_FOUND, "%s: account \"%.*s\" does not exist",
                          field, (int)name.len, name.ptr);
    }
    return i;
}

int32_t account_find(const struct ledger *l, struct proto_str name, const char *field,
                     struct proto_result *res)
{
    return account_lookup(l, name, field, res);
}

int account_create(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    const struct proto_account_args *a = &c->u.account;
    char msg[PROTO_MESSAGE_MAX + 1];
    if (!tree_name_valid(a->name, msg, sizeof msg))
        return ledger_refuse(res, PROTO_ERR_INVALID, "name: %s", msg), 0;
    if (account_check_fields(a, false, res) != PROTO_OK)
        return 0;
    /* The last segment may not use the prefix reserved for grants. */
    const char *slash = memrchr(a->name.ptr, '/', a->name.len);
    const char *last = slash ? slash + 1 : a->name.ptr;
    size_t last_len = (size_t)(a->name.ptr + a->name.len - last);
    if (last_len >= 6 && memcmp(last, "grant-", 6) == 0)
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "name: segments starting with \"grant-\" are reserved for grants"), 0;
    const void *tags = NULL;
    size_t tags_len = 0;
    if (ledger_map_blob(l, &a->tags, "tags", &tags, &tags_len, res) != PROTO_OK)
        return 0;
    if (tree_find_str(l, a->name) >= 0)
        return ledger_refuse(res, PROTO_ERR_EXISTS, "account \"%.*s\" already exists",
                             (int)a->name.len, a->name.ptr), 0;
    int32_t parent = -1;
    if (slash) {
        struct proto_str p = {a->name.ptr, (uint32_t)(slash - a->name.ptr)};
        parent = tree_find_str(l, p);
        if (parent < 0)
            return ledger_refuse(res, PROTO_ERR_NOT_FOUND,
                                 "parent account \"%.*s\" does not exist", (int)p.len, p.ptr), 0;
        if (l->accts[parent].status == LEDGER_STATUS_CLOSED) {
            ledger_set_name(res, &l->accts[parent]);
            return ledger_refuse(res, PROTO_ERR_CLOSED, "parent account \"%s\" is closed",
                                 l->accts[parent].name), 0;
        }
    }
    struct acct n;
    account_init(l, &n, a->name, parent, a->cap_micros, (int)a->period, (int)a->tz_offset_min);
    int32_t i = account_insert(l, &n, tags, tags_len, err);
    if (i < 0)
        return err->code ? err->code : LEDGER_ESQL;
    res->id = (uint64_t)i + 1;
    res->remaining_micros = tree_available(l, i, l->now_ms);
    return 0;
}

static bool account_has_open_child(const struct ledger *l, int32_t i)
{
    /* Children have larger ids than their parent. */
    for (uint32_t k = (uint32_t)i + 1; k < l->acct_count; k++)
        if (l->accts[k].parent == i && l->accts[k].status != LEDGER_STATUS_CLOSED)
            return true;
    return false;
}

int account_recompute_spent(struct ledger *l, int32_t i, int64_t *spent,
                            struct ledger_error *err)
{
    const struct acct *a = &l->accts[i];
    uint64_t first = 0;
    int rc = journal_first_at(l, a->period_start_ms, &first, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, "SELECT debit, credit, amount FROM journal WHERE id >= ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "recompute spent");
    sqlite3_bind_int64(s, 1, (int64_t)first);
    int64_t sum = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int32_t debit = (int32_t)sqlite3_column_int64(s, 0) - 1;
        int32_t credit = (int32_t)sqlite3_column_int64(s, 1) - 1;
        if (tree_is_ancestor_or_self(l, i, debit) && !tree_is_ancestor_or_self(l, i, credit))
            sum += sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "recompute spent");
    *spent = sum;
    return 0;
}

int account_update(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    const struct proto_account_args *a = &c->u.account;
    int32_t i = account_lookup(l, a->name, "name", res);
    if (i < 0)
        return 0;
    struct acct *acc = &l->accts[i];
    res->id = (uint64_t)i + 1;
    if (acc->is_grant)
        return ledger_refuse(res, PROTO_ERR_INVALID, "account \"%s\" is a grant: its cap is"
                             " its amount", acc->name), 0;
    if (acc->status == LEDGER_STATUS_CLOSED)
        return ledger_refuse(res, PROTO_ERR_CLOSED, "account \"%s\" is closed", acc->name), 0;
    if (account_check_fields(a, true, res) != PROTO_OK)
        return 0;
    const void *tags = NULL;
    size_t tags_len = 0;
    if (a->has_tags && ledger_map_blob(l, &a->tags, "tags", &tags, &tags_len, res) != PROTO_OK)
        return 0;

    int period = a->period == PROTO_UNSET ? acc->period : (int)a->period;
    int tz = a->tz_offset_min == PROTO_UNSET ? acc->tz_offset_min : (int)a->tz_offset_min;
    int64_t cap = a->cap_micros == PROTO_UNSET ? acc->cap_micros : a->cap_micros;
    int64_t start = acc->period_start_ms, end = acc->period_end_ms;
    int64_t spent = tree_spent_at(acc, l->now_ms);
    bool window_changed = period != acc->period || tz != acc->tz_offset_min;
    if (window_changed || l->now_ms >= end)
        period_window(period, tz, l->now_ms, &start, &end);
    if (window_changed) {
        int64_t saved_start = acc->period_start_ms;
        acc->period_start_ms = start;
        int rc = account_recompute_spent(l, i, &spent, err);
        acc->period_start_ms = saved_start;
        if (rc)
            return rc;
    }
    bool cap_changed = a->cap_micros != PROTO_UNSET && a->cap_micros != acc->cap_micros;
    int64_t used = spent + acc->reserved_micros;
    if ((cap_changed || window_changed) && cap >= 0 && cap < used) {
        /* Lowering below what is already used would leave the account over
         * its cap at once: freeze it instead. */
        ledger_set_name(res, acc);
        return ledger_refuse(res, PROTO_ERR_CONFLICT,
                             "cap_micros: %lld is below the %lld micros already spent or"
                             " reserved in \"%s\" (freeze the account instead)",
                             (long long)cap, (long long)used, acc->name), 0;
    }
    tree_touch(l, i);
    acc->cap_micros = cap;
    acc->period = (uint8_t)period;
    acc->tz_offset_min = tz;
    acc->period_start_ms = start;
    acc->period_end_ms = end;
    acc->spent_micros = spent;
    if (a->has_tags) {
        sqlite3_stmt *s = store_stmt(l, ST_ACCT_SET_TAGS);
        sqlite3_bind_int64(s, 1, i + 1);
        store_bind_blob(s, 2, tags, tags_len);
        if (sqlite3_step(s) != SQLITE_DONE)
            return store_sql_error(l, err, "update tags");
    }
    res->remaining_micros = tree_available(l, i, l->now_ms);
    return 0;
}

/* freeze / unfreeze share this: move active <-> frozen; closed refuses. */
static int account_set_status(struct ledger *l, const struct proto_cmd *c, int to,
                              struct proto_result *res)
{
    int32_t i = account_lookup(l, c->u.status.name, "name", res);
    if (i < 0)
        return 0;
    struct acct *a = &l->accts[i];
    res->id = (uint64_t)i + 1;
    if (c->u.status.reason.len > PROTO_TEXT_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "reason: %u bytes exceed %d",
                             c->u.status.reason.len, PROTO_TEXT_MAX), 0;
    if (a->status == LEDGER_STATUS_CLOSED) {
        ledger_set_name(res, a);
        return ledger_refuse(res, PROTO_ERR_CLOSED, "account \"%s\" is closed", a->name), 0;
    }
    if (a->status != to) {
        tree_touch(l, i);
        a->status = (uint8_t)to;
    }
    return 0;
}

int account_freeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    account_set_status(l, c, LEDGER_STATUS_FROZEN, res);
    return breaker_on_freeze(l, c, res, err); /* remembers the reason (breaker.c) */
}

int account_unfreeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                     struct ledger_error *err)
{
    account_set_status(l, c, LEDGER_STATUS_ACTIVE, res);
    return breaker_on_unfreeze(l, c, res, err); /* restarts its windows (breaker.c) */
}

int account_close(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                  struct ledger_error *err)
{
    (void)err;
    int32_t i = account_lookup(l, c->u.status.name, "name", res);
    if (i < 0)
        return 0;
    struct acct *a = &l->accts[i];
    res->id = (uint64_t)i + 1;
    if (a->status == LEDGER_STATUS_CLOSED)
        return 0;
    if (a->is_grant)
        return ledger_refuse(res, PROTO_ERR_INVALID, "account \"%s\" is a grant: use grant"
                             " close", a->name), 0;
    if (a->reserved_micros > 0)
        return ledger_refuse(res, PROTO_ERR_CONFLICT,
                             "account \"%s\" still holds %lld micros in open reservations or"
                             " grants", a->name, (long long)a->reserved_micros), 0;
    if (account_has_open_child(l, i))
        return ledger_refuse(res, PROTO_ERR_CONFLICT,
                             "account \"%s\" has children that are not closed", a->name), 0;
    tree_touch(l, i);
    a->status = LEDGER_STATUS_CLOSED;
    return 0;
}
