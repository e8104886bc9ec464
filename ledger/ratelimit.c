/*
 * ratelimit.c — requests and tokens per sliding window, decided by the ledger.
 *
 * A *scope* is an account (counting its whole subtree) or one metadata
 * (key, value) pair, e.g. project_id=X.  A scope has up to four limits:
 * requests per minute (rpm) and tokens per minute, hour and day (tpm, tph,
 * tpd); 0 is no limit.
 *
 * The model (decided):
 *   - Each reservation is an *event* in every limited scope it falls in: the
 *     scopes of its account and each ancestor, and of each (key, value) of
 *     its metadata.  The event is stamped with the entry time of the reserve
 *     and carries tokens: the worst case the gateway computed (prompt bound +
 *     max_tokens), or 0 for a reservation without tokens (the budget API),
 *     which then counts only as a request.
 *   - A commit carrying tokens replaces the event's tokens with the actual
 *     count (a commit with 0 = unknown keeps the worst case); a release sets
 *     them to 0 (nothing was generated) but the request still counts; expiry
 *     leaves them as reserved.
 *   - An event counts in a window of length W at time now while
 *     now - W < ts, i.e. it stops counting at exactly ts + W.
 *   - A reservation fits a scope when, for every limit, what is in the window
 *     plus what it adds (1 request; its tokens, when it has any) is at most
 *     the limit.  Requests and tokens are checked separately: a call that
 *     fits requests/min but not tokens is refused.  A call whose tokens
 *     alone exceed a limit could never fit: `invalid`, not rate_limited.
 *   - Refused: rate_limited, name = the scope, retry_after_ms = the time until
 *     every refusing window has room, assuming nothing new arrives: events
 *     leave in time order, so for each refusing window it is ts + W - now of
 *     the event whose leaving makes room; the answer is the largest.
 *   - A limit set now counts only reservations made from now on; clearing a
 *     scope (all four 0) forgets its events.
 * Everything uses entry time, so every replica and every gateway agrees.
 *
 * Cost: a check is, per limited scope, one indexed range sum per window
 * (the rows of the last minute/hour/day of that scope).  Scopes with no
 * limit cost one index lookup; with no limit anywhere, nothing.
 */
#include "ledger/internal.h"

#define RL_WINDOWS 4
#define RL_LONGEST_MS (24LL * 3600 * 1000)
/* Scopes of one reservation: its path and its metadata. */
#define RL_SCOPES_MAX (PROTO_NAME_DEPTH_MAX + PROTO_MAP_MAX)

static const struct {
    const char *what;
    int64_t window_ms;
    bool is_tokens;
} rl_windows[RL_WINDOWS] = {
    {"requests per minute", 60LL * 1000, false},
    {"tokens per minute", 60LL * 1000, true},
    {"tokens per hour", 3600LL * 1000, true},
    {"tokens per day", RL_LONGEST_MS, true},
};

struct rl_scope {
    int64_t id;
    int64_t limit[RL_WINDOWS];
    char label[PROTO_NAME_MAX + 1]; /* "acme/eng" or "project_id=X" */
};

static int rl_find(struct ledger *l, struct proto_str account, struct proto_str key,
                   struct proto_str value, struct rl_scope *out, bool *is_found,
                   struct ledger_error *err)
{
    *is_found = false;
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_FIND, err);
    if (!s)
        return err->code;
    sqlite3_bind_text(s, 1, account.len ? account.ptr : "", (int)account.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key.len ? key.ptr : "", (int)key.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, value.len ? value.ptr : "", (int)value.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        bool is_limited = false;
        for (int w = 0; w < RL_WINDOWS; w++) {
            out->limit[w] = sqlite3_column_int64(s, 1 + w);
            is_limited |= out->limit[w] > 0;
        }
        *is_found = is_limited;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "rate limit lookup");
    return 0;
}

/* The limited scopes a reservation at account i with metadata m falls in. */
static int rl_scopes(struct ledger *l, int32_t i, const struct proto_map *m,
                     struct rl_scope *out, uint32_t *count, struct ledger_error *err)
{
    static const struct proto_str none = {"", 0};
    *count = 0;
    for (int32_t j = i; j >= 0; j = l->accts[j].parent) {
        const struct acct *a = &l->accts[j];
        struct proto_str name = {a->name, a->name_len};
        bool is_found = false;
        int rc = rl_find(l, name, none, none, &out[*count], &is_found, err);
        if (rc)
            return rc;
        if (is_found) {
            ledger_str_copy(out[*count].label, sizeof out[*count].label, name);
            (*count)++;
        }
    }
    for (uint32_t k = 0; k < m->count && *count < RL_SCOPES_MAX; k++) {
        const struct proto_kv *kv = &m->kv[k];
        if (kv->key.len == 0)
            continue; /* the empty key is the account scopes' marker */
        bool is_found = false;
        int rc = rl_find(l, none, kv->key, kv->value, &out[*count], &is_found, err);
        if (rc)
            return rc;
        if (is_found) {
            snprintf(out[*count].label, sizeof out[*count].label, "%.*s=%.*s",
                     (int)kv->key.len, kv->key.ptr, (int)kv->value.len, kv->value.ptr);
            (*count)++;
        }
    }
    return 0;
}

/* Requests and tokens of a scope's events with ts > since. */
static int rl_window_sum(struct ledger *l, int64_t scope, int64_t since, int64_t *requests,
                         int64_t *tokens, struct ledger_error *err)
{
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_WINDOW_SUM, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, scope);
    sqlite3_bind_int64(s, 2, since);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *requests = sqlite3_column_int64(s, 0);
        *tokens = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return store_sql_error(l, err, "rate window sum");
    return 0;
}

/* When will window w of a scope have room for `need`, its events leaving in
 * time order?  `used` is what is in it now (used + need > limit). */
static int rl_room_at(struct ledger *l, int64_t scope, int w, int64_t limit, int64_t used,
                      int64_t need, int64_t *at, struct ledger_error *err)
{
    int64_t window = rl_windows[w].window_ms;
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_WINDOW_EVENTS, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, scope);
    sqlite3_bind_int64(s, 2, l->now_ms - window);
    int rc;
    *at = l->now_ms + window; /* unreachable when need <= limit: the last event frees all */
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t ts = sqlite3_column_int64(s, 0);
        used -= rl_windows[w].is_tokens ? sqlite3_column_int64(s, 1) : 1;
        if (used + need <= limit) {
            *at = ts + window;
            break;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "rate window events");
    return 0;
}

int ratelimit_check(struct ledger *l, int32_t i, const struct proto_map *m, int64_t tokens,
                    struct proto_result *res, struct ledger_error *err)
{
    if (tokens < 0 || tokens > PROTO_AMOUNT_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "tokens: %lld is outside 0..%lld",
                             (long long)tokens, (long long)PROTO_AMOUNT_MAX), 0;
    if (!l->has_rate_limits)
        return 0;
    struct rl_scope scopes[RL_SCOPES_MAX];
    uint32_t n = 0;
    int rc = rl_scopes(l, i, m, scopes, &n, err);
    if (rc)
        return rc;
    int64_t retry_at = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct rl_scope *sc = &scopes[k];
        for (int w = 0; w < RL_WINDOWS; w++) {
            int64_t limit = sc->limit[w];
            int64_t need = rl_windows[w].is_tokens ? tokens : 1;
            if (limit <= 0 || need == 0)
                continue;
            if (need > limit)
                return ledger_refuse(res, PROTO_ERR_INVALID,
                                     "tokens: this call may use %lld tokens, more than the %lld"
                                     " %s of %s", (long long)need, (long long)limit,
                                     rl_windows[w].what, sc->label), 0;
            int64_t requests = 0, sum = 0;
            rc = rl_window_sum(l, sc->id, l->now_ms - rl_windows[w].window_ms, &requests, &sum,
                               err);
            if (rc)
                return rc;
            int64_t used = rl_windows[w].is_tokens ? sum : requests;
            if (used <= limit - need)
                continue;
            int64_t at = 0;
            rc = rl_room_at(l, sc->id, w, limit, used, need, &at, err);
            if (rc)
                return rc;
            if (at > retry_at) {
                retry_at = at;
                ledger_refuse(res, PROTO_ERR_RATE_LIMITED,
                              "rate limit of %s: %lld %s used, %lld allowed, this call needs %lld",
                              sc->label, (long long)used, rl_windows[w].what, (long long)limit,
                              (long long)need);
                snprintf(res->name, sizeof res->name, "%s", sc->label);
            }
        }
    }
    if (retry_at > 0)
        res->retry_after_ms = retry_at - l->now_ms;
    return 0;
}

int ratelimit_record(struct ledger *l, uint64_t id, int32_t i, const struct proto_map *m,
                     int64_t tokens, struct ledger_error *err)
{
    if (!l->has_rate_limits)
        return 0;
    struct rl_scope scopes[RL_SCOPES_MAX];
    uint32_t n = 0;
    int rc = rl_scopes(l, i, m, scopes, &n, err);
    for (uint32_t k = 0; rc == 0 && k < n; k++) {
        sqlite3_stmt *s = xstore_stmt(l, XS_RL_EVENT_INSERT, err);
        if (!s)
            return err->code;
        sqlite3_bind_int64(s, 1, scopes[k].id);
        sqlite3_bind_int64(s, 2, l->now_ms);
        sqlite3_bind_int64(s, 3, (int64_t)id);
        sqlite3_bind_int64(s, 4, tokens);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = store_sql_error(l, err, "rate event");
    }
    return rc;
}

int ratelimit_settle(struct ledger *l, uint64_t id, int64_t tokens, struct ledger_error *err)
{
    if (!l->has_rate_limits || tokens < 0)
        return 0;
    if (tokens > PROTO_AMOUNT_MAX)
        tokens = PROTO_AMOUNT_MAX; /* a commit is never refused for its token count */
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_SETTLE, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, tokens);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "rate event settle");
    return 0;
}

int ratelimit_prune(struct ledger *l, struct ledger_error *err)
{
    if (!l->has_rate_limits)
        return 0;
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_PRUNE, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, l->now_ms - RL_LONGEST_MS);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "rate event prune");
    return 0;
}

int rate_limit_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                       struct ledger_error *err)
{
    const struct proto_rate_limit_set_args *a = &c->u.rate_limit_set;
    if ((a->account.len > 0) == (a->meta_key.len > 0))
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "scope: give either an account or a metadata key"), 0;
    if (a->account.len > 0 && a->meta_value.len > 0)
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "meta_value: only with a metadata key"), 0;
    if (a->meta_key.len > PROTO_MAP_KEY_MAX || a->meta_value.len > PROTO_MAP_VALUE_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "meta_key/meta_value: longer than %d/%d"
                             " bytes", PROTO_MAP_KEY_MAX, PROTO_MAP_VALUE_MAX), 0;
    if (a->account.len > 0 && account_find(l, a->account, "account", res) < 0)
        return 0;
    const int64_t v[RL_WINDOWS] = {a->rpm, a->tpm, a->tph, a->tpd};
    static const char *const names[RL_WINDOWS] = {"rpm", "tpm", "tph", "tpd"};
    bool is_clear = true;
    for (int w = 0; w < RL_WINDOWS; w++) {
        if (!ledger_amount_valid(v[w], true))
            return ledger_refuse(res, PROTO_ERR_INVALID, "%s: %lld is outside 0..%lld",
                                 names[w], (long long)v[w], (long long)PROTO_AMOUNT_MAX), 0;
        is_clear &= v[w] == 0;
    }
    sqlite3_stmt *s = xstore_stmt(l, XS_RL_UPSERT, err);
    if (!s)
        return err->code;
    sqlite3_bind_text(s, 1, a->account.len ? a->account.ptr : "", (int)a->account.len,
                      SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->meta_key.len ? a->meta_key.ptr : "", (int)a->meta_key.len,
                      SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->meta_value.len ? a->meta_value.ptr : "",
                      (int)a->meta_value.len, SQLITE_STATIC);
    for (int w = 0; w < RL_WINDOWS; w++)
        sqlite3_bind_int64(s, 4 + w, v[w]);
    int rc = sqlite3_step(s);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "set rate limit");
    l->has_rate_limits = true;
    res->id = (uint64_t)id;
    if (!is_clear)
        return 0;
    s = xstore_stmt(l, XS_RL_CLEAR_EVENTS, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "clear rate limit");
    return 0;
}

/* ---- query ---- */

int ledger_rate_limit_list(struct ledger *l, ledger_rate_limit_cb cb, void *arg,
                           struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT id, account, meta_key, meta_value, rpm, tpm, tph, tpd FROM rate_limit"
                    " WHERE rpm > 0 OR tpm > 0 OR tph > 0 OR tpd > 0"
                    " ORDER BY account, meta_key, meta_value";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "list rate limits");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct ledger_rate_limit_view v;
        memset(&v, 0, sizeof v);
        int64_t id = sqlite3_column_int64(s, 0);
        snprintf(v.account, sizeof v.account, "%s", (const char *)sqlite3_column_text(s, 1));
        snprintf(v.meta_key, sizeof v.meta_key, "%s", (const char *)sqlite3_column_text(s, 2));
        snprintf(v.meta_value, sizeof v.meta_value, "%s",
                 (const char *)sqlite3_column_text(s, 3));
        v.rpm = sqlite3_column_int64(s, 4);
        v.tpm = sqlite3_column_int64(s, 5);
        v.tph = sqlite3_column_int64(s, 6);
        v.tpd = sqlite3_column_int64(s, 7);
        int64_t ignored = 0;
        int e = rl_window_sum(l, id, l->now_ms - rl_windows[0].window_ms, &v.requests_minute,
                              &v.tokens_minute, err);
        if (e == 0)
            e = rl_window_sum(l, id, l->now_ms - rl_windows[2].window_ms, &ignored,
                              &v.tokens_hour, err);
        if (e == 0)
            e = rl_window_sum(l, id, l->now_ms - rl_windows[3].window_ms, &ignored,
                              &v.tokens_day, err);
        if (e != 0) {
            sqlite3_finalize(s);
            return e;
        }
        if (cb(arg, &v) != 0)
            break;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "list rate limits");
    return 0;
}
