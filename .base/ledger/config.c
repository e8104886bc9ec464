/*
 * config.c — replicated configuration and the month close: prices per model,
 * API keys (only their SHA-256 is stored), the metadata policy, and closed
 * accounting months.  Gateways read these through the cluster; keeping them
 * in the ledger makes every gateway and replica agree on them.
 */
#include "ledger/internal.h"

int period_close_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                     struct ledger_error *err)
{
    struct proto_str m = c->u.period_close.month;
    int32_t idx = period_month_parse(m);
    if (idx < 0)
        return ledger_refuse(res, PROTO_ERR_INVALID, "month: \"%.*s\" is not YYYY-MM",
                             (int)(m.len > 16 ? 16 : m.len), m.ptr), 0;
    /* Only a month that is over: postings are stamped with now, so nothing
     * can land in it afterwards. */
    if (l->now_ms < period_month_start_ms(idx + 1))
        return ledger_refuse(res, PROTO_ERR_CONFLICT, "month: %.*s is not over yet",
                             (int)m.len, m.ptr), 0;
    if (period_month_is_closed(l, idx))
        return 0;
    sqlite3_stmt *s = store_stmt(l, ST_PERIOD_INSERT);
    sqlite3_bind_text(s, 1, m.ptr, (int)m.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, l->now_ms);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "close period");
    /* Keep the most recent months in memory (older ones cannot matter: time
     * only moves forward). */
    uint32_t cap = sizeof l->closed_months / sizeof l->closed_months[0];
    if (l->closed_month_count == cap) {
        uint32_t oldest = 0;
        for (uint32_t i = 1; i < cap; i++)
            if (l->closed_months[i] < l->closed_months[oldest])
                oldest = i;
        if (l->closed_months[oldest] > idx)
            return 0;
        l->closed_months[oldest] = idx;
    } else {
        l->closed_months[l->closed_month_count++] = idx;
    }
    return 0;
}

static int config_text_check(struct proto_str s, const char *field, struct proto_result *res)
{
    if (s.len == 0 || s.len > PROTO_TEXT_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "%s: %u bytes (1 to %d allowed)", field,
                             s.len, PROTO_TEXT_MAX);
    return PROTO_OK;
}

int price_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                  struct ledger_error *err)
{
    const struct proto_price_set_args *p = &c->u.price_set;
    if (config_text_check(p->model, "model", res) != PROTO_OK)
        return 0;
    const struct {
        const char *field;
        int64_t v;
    } prices[] = {{"input_micros", p->input_micros},
                  {"output_micros", p->output_micros},
                  {"cached_micros", p->cached_micros},
                  {"cache_write_micros", p->cache_write_micros}};
    for (size_t i = 0; i < sizeof prices / sizeof prices[0]; i++)
        if (!ledger_amount_valid(prices[i].v, true))
            return ledger_refuse(res, PROTO_ERR_INVALID, "%s: %lld is outside 0..%lld",
                                 prices[i].field, (long long)prices[i].v,
                                 (long long)PROTO_AMOUNT_MAX), 0;
    sqlite3_stmt *s = store_stmt(l, ST_PRICE_UPSERT);
    sqlite3_bind_text(s, 1, p->model.ptr, (int)p->model.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, p->input_micros);
    sqlite3_bind_int64(s, 3, p->output_micros);
    sqlite3_bind_int64(s, 4, p->cached_micros);
    sqlite3_bind_int64(s, 5, p->cache_write_micros);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "set price");
    return 0;
}

int key_create_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    const struct proto_key_create_args *k = &c->u.key_create;
    if (config_text_check(k->key_id, "key_id", res) != PROTO_OK)
        return 0;
    if (k->hash.len != PROTO_HASH_BYTES)
        return ledger_refuse(res, PROTO_ERR_INVALID, "hash: %u bytes, a SHA-256 has %d",
                             k->hash.len, PROTO_HASH_BYTES), 0;
    if (k->key_role != PROTO_ROLE_AGENT && k->key_role != PROTO_ROLE_ADMIN)
        return ledger_refuse(res, PROTO_ERR_INVALID, "key_role: %lld is not agent (0) or"
                             " admin (1)", (long long)k->key_role), 0;
    int32_t acct = account_find(l, k->account, "account", res);
    if (acct < 0)
        return 0;
    sqlite3_stmt *s = store_stmt(l, ST_KEY_BY_ID);
    sqlite3_bind_text(s, 1, k->key_id.ptr, (int)k->key_id.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return ledger_refuse(res, PROTO_ERR_EXISTS, "key_id: \"%.*s\" already exists",
                             (int)k->key_id.len, k->key_id.ptr), 0;
    s = store_stmt(l, ST_KEY_BY_HASH);
    sqlite3_bind_blob(s, 1, k->hash.ptr, PROTO_HASH_BYTES, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return ledger_refuse(res, PROTO_ERR_EXISTS, "hash: a key with this hash exists"), 0;
    s = store_stmt(l, ST_KEY_INSERT);
    sqlite3_bind_text(s, 1, k->key_id.ptr, (int)k->key_id.len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, k->hash.ptr, PROTO_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, acct + 1);
    sqlite3_bind_int(s, 4, (int)k->key_role);
    sqlite3_bind_int64(s, 5, l->now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "create key");
    res->id = (uint64_t)acct + 1;
    return 0;
}

int key_revoke_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    struct proto_str id = c->u.key_revoke.key_id;
    if (config_text_check(id, "key_id", res) != PROTO_OK)
        return 0;
    sqlite3_stmt *s = store_stmt(l, ST_KEY_BY_ID);
    sqlite3_bind_text(s, 1, id.ptr, (int)id.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return ledger_refuse(res, PROTO_ERR_NOT_FOUND, "key_id: \"%.*s\" does not exist",
                             (int)id.len, id.ptr), 0;
    s = store_stmt(l, ST_KEY_REVOKE);
    sqlite3_bind_text(s, 1, id.ptr, (int)id.len, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "revoke key");
    return 0;
}

int policy_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                   struct ledger_error *err)
{
    const struct proto_list *req = &c->u.policy_set.required_metadata;
    if (req->count > PROTO_LIST_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "required_metadata: %u keys exceed %d",
                             req->count, PROTO_LIST_MAX), 0;
    for (uint32_t i = 0; i < req->count; i++) {
        struct proto_str k = req->item[i];
        if (k.len == 0 || k.len > PROTO_MAP_KEY_MAX)
            return ledger_refuse(res, PROTO_ERR_INVALID,
                                 "required_metadata: key of %u bytes (1 to %d allowed)", k.len,
                                 PROTO_MAP_KEY_MAX), 0;
        for (uint32_t j = 0; j < i; j++)
            if (req->item[j].len == k.len && memcmp(req->item[j].ptr, k.ptr, k.len) == 0)
                return ledger_refuse(res, PROTO_ERR_INVALID,
                                     "required_metadata: duplicate key \"%.*s\"", (int)k.len,
                                     k.ptr), 0;
    }
    int rc = store_exec(l, ST_POLICY_CLEAR, err);
    for (uint32_t i = 0; rc == 0 && i < req->count; i++) {
        sqlite3_stmt *s = store_stmt(l, ST_POLICY_ADD);
        sqlite3_bind_int64(s, 1, i);
        sqlite3_bind_blob(s, 2, req->item[i].ptr, (int)req->item[i].len, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = store_sql_error(l, err, "set policy");
    }
    return rc;
}
