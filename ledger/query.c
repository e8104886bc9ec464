/*
 * query.c — read-only views of the ledger for the cluster, the gateway and
 * the CLI.  Balances come from the C cache (exact and current); everything
 * else from SQLite.  "Now" is the ledger's time, so two replicas at the same
 * applied index answer the same.
 */
#include <stdlib.h>

#include "ledger/internal.h"

static int query_not_found(struct ledger_error *err, const char *fmt, const char *what)
{
    err->code = LEDGER_ENOTFOUND;
    snprintf(err->message, sizeof err->message, fmt, what);
    return LEDGER_ENOTFOUND;
}

static void query_json(const void *blob, int n, char *out, size_t cap)
{
    if (!blob || n <= 0 || proto_map_json(blob, (size_t)n, out, cap) < 0)
        snprintf(out, cap, "{}");
}

static void query_raw(const void *blob, int n, struct ledger_map_raw *out)
{
    out->len = 0;
    if (blob && n > 0 && (size_t)n <= sizeof out->data) {
        memcpy(out->data, blob, (size_t)n);
        out->len = (uint32_t)n;
    }
}

static int query_account_fill(struct ledger *l, int32_t i, struct ledger_account_view *v,
                              struct ledger_error *err)
{
    const struct acct *a = &l->accts[i];
    memset(v, 0, sizeof *v);
    v->id = (uint64_t)i + 1;
    memcpy(v->name, a->name, a->name_len);
    v->cap_micros = a->cap_micros;
    v->period = a->period;
    v->tz_offset_min = a->tz_offset_min;
    v->status = a->status;
    v->is_grant = a->is_grant;
    v->period_start_ms = a->period_start_ms;
    v->period_end_ms = a->period_end_ms;
    if (l->now_ms >= a->period_end_ms)
        period_window(a->period, a->tz_offset_min, l->now_ms, &v->period_start_ms,
                      &v->period_end_ms);
    v->spent_micros = tree_spent_at(a, l->now_ms);
    v->reserved_micros = a->reserved_micros;
    v->available_micros = tree_available(l, i, l->now_ms);
    if (a->status == LEDGER_STATUS_FROZEN)
        breaker_reason(l, i, v->frozen_reason, sizeof v->frozen_reason); /* breaker.c */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, "SELECT tags FROM account WHERE id = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return store_sql_error(l, err, "account tags");
    sqlite3_bind_int64(s, 1, i + 1);
    if (sqlite3_step(s) == SQLITE_ROW)
    {
        query_json(sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0), v->tags_json,
                   sizeof v->tags_json);
        query_raw(sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0), &v->tags);
    }
    else
        snprintf(v->tags_json, sizeof v->tags_json, "{}");
    sqlite3_finalize(s);
    return 0;
}

int ledger_account_get(struct ledger *l, const char *name, struct ledger_account_view *out,
                       struct ledger_error *err)
{
    int32_t i = tree_find(l, name, (uint32_t)strlen(name));
    if (i < 0)
        return query_not_found(err, "account \"%s\" does not exist", name);
    return query_account_fill(l, i, out, err);
}

int ledger_account_list(struct ledger *l, const char *prefix, ledger_account_cb cb, void *arg,
                        struct ledger_error *err)
{
    const char *all = "SELECT id FROM account ORDER BY name";
    const char *some = "SELECT id FROM account WHERE name = ?1 OR"
                       " (name >= ?1 || '/' AND name < ?1 || '0') ORDER BY name";
    bool is_all = !prefix || !*prefix;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, is_all ? all : some, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "list accounts");
    if (!is_all)
        sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
    struct ledger_account_view *v = malloc(sizeof *v);
    int rc = v ? 0 : LEDGER_ENOMEM;
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
        int32_t i = (int32_t)sqlite3_column_int64(s, 0) - 1;
        rc = query_account_fill(l, i, v, err);
        if (rc == 0 && cb(arg, v) != 0)
            break;
    }
    free(v);
    sqlite3_finalize(s);
    return rc;
}

static void query_acct_name(const struct ledger *l, int64_t id, char *out, size_t cap)
{
    if (id >= 1 && (uint64_t)id <= l->acct_count)
        snprintf(out, cap, "%s", l->accts[id - 1].name);
    else
        out[0] = '\0';
}

int ledger_reservation_get(struct ledger *l, uint64_t id, struct ledger_reservation_view *out,
                           struct ledger_error *err)
{
    const struct resv *r = resv_find(l, id);
    if (!r) {
        char what[32];
        snprintf(what, sizeof what, "%llu", (unsigned long long)id);
        return query_not_found(err, "reservation %s does not exist", what);
    }
    memset(out, 0, sizeof *out);
    out->id = id;
    query_acct_name(l, r->account + 1, out->account, sizeof out->account);
    query_acct_name(l, r->payee + 1, out->payee, sizeof out->payee);
    out->amount_micros = r->amount_micros;
    out->created_ms = r->created_ms;
    out->expires_at_ms = r->deadline_ms;
    out->on_expire = r->on_expire;
    out->status = r->status;
    out->actual_micros = r->actual_micros;
    out->transfer_id = r->transfer_id;
    query_json(r->meta, (int)r->meta_len, out->metadata_json, sizeof out->metadata_json);
    query_raw(r->meta, (int)r->meta_len, &out->metadata);
    return 0;
}

int ledger_grant_get(struct ledger *l, uint64_t id, struct ledger_grant_view *out,
                     struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT account, workflow, amount, deadline, is_open, spent, returned"
                    " FROM grants WHERE id = ?1";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "grant");
    sqlite3_bind_int64(s, 1, (int64_t)id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        char what[32];
        snprintf(what, sizeof what, "%llu", (unsigned long long)id);
        return query_not_found(err, "grant %s does not exist", what);
    }
    memset(out, 0, sizeof *out);
    out->id = id;
    int64_t acct = sqlite3_column_int64(s, 0);
    query_acct_name(l, acct, out->account, sizeof out->account);
    snprintf(out->workflow, sizeof out->workflow, "%s", (const char *)sqlite3_column_text(s, 1));
    out->amount_micros = sqlite3_column_int64(s, 2);
    out->expires_at_ms = sqlite3_column_int64(s, 3);
    out->is_open = sqlite3_column_int(s, 4) != 0;
    out->spent_micros = out->is_open ? l->accts[acct - 1].spent_micros
                                     : sqlite3_column_int64(s, 5);
    out->returned_micros = sqlite3_column_int64(s, 6);
    sqlite3_finalize(s);
    return 0;
}

int ledger_key_get_by_hash(struct ledger *l, const uint8_t hash[PROTO_HASH_BYTES],
                           struct ledger_key_view *out, struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, "SELECT id, account, role, revoked FROM api_key WHERE hash = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "key");
    sqlite3_bind_blob(s, 1, hash, PROTO_HASH_BYTES, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return query_not_found(err, "%s", "no key has this hash");
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(s, 0));
    query_acct_name(l, sqlite3_column_int64(s, 1), out->account, sizeof out->account);
    out->role = sqlite3_column_int(s, 2);
    out->is_revoked = sqlite3_column_int(s, 3) != 0;
    sqlite3_finalize(s);
    return 0;
}

static void query_price_fill(sqlite3_stmt *s, struct ledger_price_view *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->model, sizeof p->model, "%s", (const char *)sqlite3_column_text(s, 0));
    p->input_micros = sqlite3_column_int64(s, 1);
    p->output_micros = sqlite3_column_int64(s, 2);
    p->cached_micros = sqlite3_column_int64(s, 3);
    p->cache_write_micros = sqlite3_column_int64(s, 4);
}

int ledger_price_get(struct ledger *l, const char *model, struct ledger_price_view *out,
                     struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT model, input, output, cached, cache_write FROM price WHERE model = ?1";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "price");
    sqlite3_bind_text(s, 1, model, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return query_not_found(err, "model \"%s\" has no price", model);
    }
    query_price_fill(s, out);
    sqlite3_finalize(s);
    return 0;
}

int ledger_price_list(struct ledger *l, ledger_price_cb cb, void *arg, struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT model, input, output, cached, cache_write FROM price ORDER BY model";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "prices");
    struct ledger_price_view p;
    while (sqlite3_step(s) == SQLITE_ROW) {
        query_price_fill(s, &p);
        if (cb(arg, &p) != 0)
            break;
    }
    sqlite3_finalize(s);
    return 0;
}

int ledger_policy_get(struct ledger *l, struct ledger_policy_view *out,
                      struct ledger_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, "SELECT key FROM policy_required ORDER BY pos", -1, &s,
                           NULL) != SQLITE_OK)
        return store_sql_error(l, err, "policy");
    while (out->required_count < PROTO_LIST_MAX && sqlite3_step(s) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s, 0);
        if (n > PROTO_MAP_KEY_MAX)
            n = PROTO_MAP_KEY_MAX;
        memcpy(out->required[out->required_count], sqlite3_column_blob(s, 0), (size_t)n);
        out->required[out->required_count][n] = '\0';
        out->required_count++;
    }
    sqlite3_finalize(s);
    return 0;
}

int ledger_journal_month(struct ledger *l, int year, int month, ledger_posting_cb cb, void *arg,
                         struct ledger_error *err)
{
    if (month < 1 || month > 12 || year < 1970 || year > 9999) {
        err->code = LEDGER_EINVAL;
        snprintf(err->message, sizeof err->message, "month %04d-%02d is not valid", year, month);
        return LEDGER_EINVAL;
    }
    int32_t idx = year * 12 + (month - 1);
    uint64_t first = 0, end = 0;
    int rc = journal_first_at(l, period_month_start_ms(idx), &first, err);
    if (rc == 0)
        rc = journal_first_at(l, period_month_start_ms(idx + 1), &end, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT id, ts, kind, debit, credit, amount, reservation, overrun, metadata"
                    " FROM journal WHERE id >= ?1 AND id < ?2 ORDER BY id";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "journal");
    sqlite3_bind_int64(s, 1, (int64_t)first);
    sqlite3_bind_int64(s, 2, (int64_t)end);
    struct ledger_posting_view *p = malloc(sizeof *p);
    rc = p ? 0 : LEDGER_ENOMEM;
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
        memset(p, 0, sizeof *p);
        p->id = (uint64_t)sqlite3_column_int64(s, 0);
        p->ts_ms = sqlite3_column_int64(s, 1);
        p->kind = sqlite3_column_int(s, 2);
        query_acct_name(l, sqlite3_column_int64(s, 3), p->debit, sizeof p->debit);
        query_acct_name(l, sqlite3_column_int64(s, 4), p->credit, sizeof p->credit);
        p->amount_micros = sqlite3_column_int64(s, 5);
        p->reservation_id = (uint64_t)sqlite3_column_int64(s, 6);
        p->overrun_micros = sqlite3_column_int64(s, 7);
        query_json(sqlite3_column_blob(s, 8), sqlite3_column_bytes(s, 8), p->metadata_json,
                   sizeof p->metadata_json);
        query_raw(sqlite3_column_blob(s, 8), sqlite3_column_bytes(s, 8), &p->metadata);
        if (cb(arg, p) != 0)
            break;
    }
    free(p);
    sqlite3_finalize(s);
    return rc;
}

int ledger_period_list(struct ledger *l, ledger_period_cb cb, void *arg,
                       struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db, "SELECT month, closed_ms FROM period ORDER BY month", -1, &s,
                           NULL) != SQLITE_OK)
        return store_sql_error(l, err, "periods");
    while (sqlite3_step(s) == SQLITE_ROW)
        if (cb(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1)) != 0)
            break;
    sqlite3_finalize(s);
    return 0;
}
