/*
 * thresholds.c — spend alerts at percentages of an account's cap.
 *
 * Every capped account that is not a grant has thresholds (default
 * LEDGER_THRESHOLDS_DEFAULT, or its own from alert_set, or none).  When a
 * posting takes the account's spent in its current period to or past t% of
 * its cap (spent * 100 >= t * cap), a `threshold` event is added — once per
 * threshold per period: alert_fired remembers the period and a bit per
 * threshold.  The fast path needs no SQL: only when the whole percentage of
 * spent over cap grows does anything get looked up.
 */
#include <stdlib.h>

#include "ledger/internal.h"

/* floor(spent * 100 / cap), clamped; a cap of 0 is past every threshold
 * as soon as anything is spent. */
static int64_t threshold_level(int64_t spent, int64_t cap)
{
    if (cap == 0)
        return spent > 0 ? LEDGER_THRESHOLD_MAX_PCT + 1 : 0;
    __int128 pct = (__int128)spent * 100 / cap;
    return pct > LEDGER_THRESHOLD_MAX_PCT ? LEDGER_THRESHOLD_MAX_PCT + 1 : (int64_t)pct;
}

/* Parse "50,80,100" into ascending percents; "" and "none" are no
 * thresholds.  Returns the count, or -1 with msg set. */
static int threshold_parse(struct proto_str s, int64_t *pct, char *msg, size_t cap)
{
    char buf[PROTO_TEXT_MAX + 1];
    ledger_str_copy(buf, sizeof buf, s);
    if (buf[0] == '\0' || strcmp(buf, "none") == 0)
        return 0;
    int n = 0;
    for (const char *p = buf;;) {
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end != ',' && *end != '\0') || v < 1 ||
            v > LEDGER_THRESHOLD_MAX_PCT) {
            snprintf(msg, cap, "thresholds: \"%.64s\" is not a list of percents 1..%d", buf,
                     LEDGER_THRESHOLD_MAX_PCT);
            return -1;
        }
        if (n == LEDGER_THRESHOLDS_MAX) {
            snprintf(msg, cap, "thresholds: more than %d", LEDGER_THRESHOLDS_MAX);
            return -1;
        }
        if (n > 0 && v <= pct[n - 1]) {
            snprintf(msg, cap, "thresholds: \"%.64s\" is not strictly ascending", buf);
            return -1;
        }
        pct[n++] = v;
        if (*end == '\0')
            return n;
        p = end + 1;
    }
}

/* The thresholds of account i (its own or the default). */
static int threshold_get(const struct ledger *l, int32_t i, int64_t *pct)
{
    sqlite3_stmt *s = watch_stmt(l, WS_ALERT_GET);
    sqlite3_bind_int64(s, 1, i + 1);
    char buf[PROTO_TEXT_MAX + 1] = LEDGER_THRESHOLDS_DEFAULT;
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    char msg[PROTO_MESSAGE_MAX + 1];
    int n = threshold_parse(proto_str_c(buf), pct, msg, sizeof msg);
    assert(n >= 0); /* stored only after parsing */
    return n;
}

int threshold_on_spend(struct ledger *l, int32_t i, int64_t amount_micros,
                       struct ledger_error *err)
{
    const struct acct *a = &l->accts[i];
    if (a->cap_micros < 0 || a->is_grant)
        return 0;
    int64_t before = tree_spent_at(a, l->now_ms), after;
    if (__builtin_add_overflow(before, amount_micros, &after))
        after = INT64_MAX;
    /* The common case, decided with one multiplication: below the lowest
     * threshold there can be (the default's, or 1% for an account's own). */
    int64_t lowest = (a->watch & WATCH_ALERTS) ? 1 : LEDGER_THRESHOLD_DEFAULT_MIN_PCT;
    if ((__int128)after * 100 < (__int128)lowest * a->cap_micros)
        return 0;
    if (threshold_level(after, a->cap_micros) <= threshold_level(before, a->cap_micros))
        return 0;
    int64_t pct[LEDGER_THRESHOLDS_MAX];
    int n = threshold_get(l, i, pct);
    if (n == 0)
        return 0;
    int64_t start = a->period_start_ms, end = a->period_end_ms;
    if (l->now_ms >= end)
        period_window(a->period, a->tz_offset_min, l->now_ms, &start, &end);
    sqlite3_stmt *s = watch_stmt(l, WS_FIRED_GET);
    sqlite3_bind_int64(s, 1, i + 1);
    int64_t mask = 0;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) == start)
        mask = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    int64_t fired = mask;
    for (int k = 0; k < n; k++) {
        if ((fired & (1LL << k)) || (__int128)after * 100 < (__int128)pct[k] * a->cap_micros)
            continue;
        fired |= 1LL << k;
        char detail[LEDGER_EVENT_DETAIL_MAX];
        snprintf(detail, sizeof detail,
                 "{\"threshold_pct\":%lld,\"spent_micros\":%lld,\"cap_micros\":%lld,"
                 "\"period_start_ms\":%lld,\"period_end_ms\":%lld}",
                 (long long)pct[k], (long long)after, (long long)a->cap_micros,
                 (long long)start, (long long)end);
        int rc = outbox_add(l, "threshold", i, detail, err);
        if (rc)
            return rc;
    }
    if (fired == mask)
        return 0;
    s = watch_stmt(l, WS_FIRED_PUT);
    sqlite3_bind_int64(s, 1, i + 1);
    sqlite3_bind_int64(s, 2, start);
    sqlite3_bind_int64(s, 3, fired);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "thresholds fired");
    return 0;
}

int alert_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                  struct ledger_error *err)
{
    const struct proto_alert_set_args *a = &c->u.alert_set;
    int32_t i = account_find(l, a->account, "account", res);
    if (i < 0)
        return 0;
    int64_t pct[LEDGER_THRESHOLDS_MAX];
    char msg[PROTO_MESSAGE_MAX + 1];
    int n = threshold_parse(a->thresholds, pct, msg, sizeof msg);
    if (n < 0)
        return ledger_refuse(res, PROTO_ERR_INVALID, "%s", msg), 0;
    /* Stored canonical; "" (the request) means the default, stored "none"
     * means none. */
    char text[PROTO_TEXT_MAX + 1];
    size_t len = 0;
    text[0] = '\0';
    if (a->thresholds.len == 0)
        snprintf(text, sizeof text, "%s", LEDGER_THRESHOLDS_DEFAULT);
    else if (n == 0)
        snprintf(text, sizeof text, "none");
    for (int k = 0; k < n; k++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%lld", k ? "," : "",
                                (long long)pct[k]);
    sqlite3_stmt *s = watch_stmt(l, WS_ALERT_PUT);
    sqlite3_bind_int64(s, 1, i + 1);
    sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "alert set");
    watch_flag_set(l, i, WATCH_ALERTS, true);
    /* New thresholds start unfired: positions no longer mean the same ones. */
    s = watch_stmt(l, WS_FIRED_PUT);
    sqlite3_bind_int64(s, 1, i + 1);
    sqlite3_bind_int64(s, 2, INT64_MIN);
    sqlite3_bind_int64(s, 3, 0);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "alert set");
    res->id = (uint64_t)i + 1;
    return 0;
}

void threshold_describe(const struct ledger *l, int32_t i, char *out, size_t cap,
                        bool *is_default)
{
    sqlite3_stmt *s = watch_stmt(l, WS_ALERT_GET);
    sqlite3_bind_int64(s, 1, i + 1);
    *is_default = true;
    snprintf(out, cap, "%s", LEDGER_THRESHOLDS_DEFAULT);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *is_default = false;
        const char *t = (const char *)sqlite3_column_text(s, 0);
        snprintf(out, cap, "%s", strcmp(t, "none") == 0 ? "" : t);
    }
    sqlite3_reset(s);
}
