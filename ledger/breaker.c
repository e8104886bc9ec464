/*
 * breaker.c — per-account circuit breakers: velocity and bedtime.
 *
 * Velocity: at most velocity_max micros of spend per window W.  The window
 * slides in LEDGER_VELOCITY_BUCKETS fixed sub-buckets of width
 * ceil(W / buckets), bucket b holding the spend with floor(ts / width) = b.
 * The counted spend is the sum of the current bucket and the 59 before it:
 * everything in the last W - width is always counted, nothing older than W
 * ever is.
 *
 * Bedtime: quiet hours [start, end) in the account's local time (its
 * tz_offset_min; may wrap midnight).  The spend inside tonight's quiet hours
 * may not exceed max(factor% x baseline, floor), where baseline is the
 * average spend of the LEDGER_BEDTIME_NIGHTS previous quiet-hour windows
 * (nights without spend count as 0).  A limit of 0 (no history, no floor)
 * cannot trip.
 *
 * Spend counted: every posting that raises the account's spent (commits,
 * expire charges, chargebacks out of its subtree), not admin adjustments.
 * The posting that breaches a limit has already happened (a commit's cost is
 * spent), so it is counted, and the breaker freezes the account (reason
 * velocity or bedtime, a `breaker` event) for the calls after it.  Unfreeze
 * clears the velocity window and tonight's count, or the next cent would trip
 * the breaker again.
 */
#include "ledger/internal.h"

#define MS_PER_DAY 86400000LL
#define MINUTES_PER_DAY 1440

struct breaker {
    int64_t velocity_max_micros, window_ms;
    int64_t bed_start_min, bed_end_min, factor_pct, floor_micros;
    int64_t bucket[LEDGER_VELOCITY_BUCKETS][2]; /* bucket index, micros */
    int64_t night[LEDGER_BEDTIME_NIGHTS + 1][2]; /* night index, micros */
};

/* An empty slot: its index matches no bucket or night. */
#define SLOT_EMPTY INT64_MIN

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Slots are stored as little-endian int64 pairs. */
static void slots_decode(int64_t (*slot)[2], size_t n, const void *blob, size_t len)
{
    const uint8_t *p = blob;
    for (size_t k = 0; k < n; k++) {
        slot[k][0] = SLOT_EMPTY;
        slot[k][1] = 0;
        if (len < (k + 1) * 16)
            continue;
        for (int f = 0; f < 2; f++) {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--)
                v = (v << 8) | p[k * 16 + (size_t)f * 8 + (size_t)b];
            slot[k][f] = (int64_t)v;
        }
    }
}

static void slots_encode(int64_t (*slot)[2], size_t n, uint8_t *out)
{
    for (size_t k = 0; k < n; k++)
        for (int f = 0; f < 2; f++) {
            uint64_t v = (uint64_t)slot[k][f];
            for (int b = 0; b < 8; b++)
                out[k * 16 + (size_t)f * 8 + (size_t)b] = (uint8_t)(v >> (8 * b));
        }
}

static void breaker_clear_slots(int64_t (*slot)[2], size_t n)
{
    for (size_t k = 0; k < n; k++) {
        slot[k][0] = SLOT_EMPTY;
        slot[k][1] = 0;
    }
}

/* Load account i's breaker; *found false when it has none. */
static void breaker_load(const struct ledger *l, int32_t i, struct breaker *b, bool *found)
{
    sqlite3_stmt *s = watch_stmt(l, WS_BREAKER_GET);
    sqlite3_bind_int64(s, 1, i + 1);
    memset(b, 0, sizeof *b);
    *found = sqlite3_step(s) == SQLITE_ROW;
    if (*found) {
        b->velocity_max_micros = sqlite3_column_int64(s, 0);
        b->window_ms = sqlite3_column_int64(s, 1);
        b->bed_start_min = sqlite3_column_int64(s, 2);
        b->bed_end_min = sqlite3_column_int64(s, 3);
        b->factor_pct = sqlite3_column_int64(s, 4);
        b->floor_micros = sqlite3_column_int64(s, 5);
        slots_decode(b->bucket, LEDGER_VELOCITY_BUCKETS, sqlite3_column_blob(s, 6),
                     (size_t)sqlite3_column_bytes(s, 6));
        slots_decode(b->night, LEDGER_BEDTIME_NIGHTS + 1, sqlite3_column_blob(s, 7),
                     (size_t)sqlite3_column_bytes(s, 7));
    }
    sqlite3_reset(s);
}

/* Write the breaker: the whole row (is_config) or only its counters. */
static int breaker_save(struct ledger *l, int32_t i, struct breaker *b, bool is_config,
                        struct ledger_error *err)
{
    uint8_t buckets[LEDGER_VELOCITY_BUCKETS * 16], nights[(LEDGER_BEDTIME_NIGHTS + 1) * 16];
    slots_encode(b->bucket, LEDGER_VELOCITY_BUCKETS, buckets);
    slots_encode(b->night, LEDGER_BEDTIME_NIGHTS + 1, nights);
    sqlite3_stmt *s = watch_stmt(l, is_config ? WS_BREAKER_PUT : WS_BREAKER_STATE);
    sqlite3_bind_int64(s, 1, i + 1);
    int col = 2;
    if (is_config) {
        int64_t cfg[] = {b->velocity_max_micros, b->window_ms, b->bed_start_min,
                         b->bed_end_min, b->factor_pct, b->floor_micros};
        for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++)
            sqlite3_bind_int64(s, col++, cfg[k]);
    }
    sqlite3_bind_blob(s, col++, buckets, sizeof buckets, SQLITE_STATIC);
    sqlite3_bind_blob(s, col, nights, sizeof nights, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "breaker state");
    return 0;
}

/* ---- velocity ---- */

static int64_t velocity_bucket_now(const struct breaker *b, int64_t now_ms)
{
    int64_t width = (b->window_ms + LEDGER_VELOCITY_BUCKETS - 1) / LEDGER_VELOCITY_BUCKETS;
    return floor_div(now_ms, width);
}

static int64_t velocity_sum(const struct breaker *b, int64_t cur)
{
    int64_t sum = 0;
    for (int k = 0; k < LEDGER_VELOCITY_BUCKETS; k++)
        if (b->bucket[k][0] != SLOT_EMPTY && b->bucket[k][0] <= cur &&
            b->bucket[k][0] > cur - LEDGER_VELOCITY_BUCKETS)
            sum = add_sat(sum, b->bucket[k][1]);
    return sum;
}

/* Count `amount` now; returns the window's spend including it. */
static int64_t velocity_add(struct breaker *b, int64_t now_ms, int64_t amount)
{
    int64_t cur = velocity_bucket_now(b, now_ms);
    int64_t *slot = b->bucket[floor_mod(cur, LEDGER_VELOCITY_BUCKETS)];
    if (slot[0] != cur) {
        slot[0] = cur;
        slot[1] = 0;
    }
    slot[1] = add_sat(slot[1], amount);
    return velocity_sum(b, cur);
}

/* ---- bedtime ---- */

/* Is now inside quiet hours?  *night: which quiet window (counted from the
 * epoch in local days, the day the window starts). */
static bool bedtime_quiet(const struct breaker *b, int tz_offset_min, int64_t now_ms,
                          int64_t *night)
{
    int64_t dur_min = floor_mod(b->bed_end_min - b->bed_start_min, MINUTES_PER_DAY);
    int64_t shifted = now_ms + (int64_t)tz_offset_min * 60000 - b->bed_start_min * 60000;
    *night = floor_div(shifted, MS_PER_DAY);
    return floor_mod(shifted, MS_PER_DAY) < dur_min * 60000;
}

static int64_t *bedtime_slot(struct breaker *b, int64_t night)
{
    return b->night[floor_mod(night, LEDGER_BEDTIME_NIGHTS + 1)];
}

static int64_t bedtime_spent(const struct breaker *b, int64_t night)
{
    const int64_t *slot = b->night[floor_mod(night, LEDGER_BEDTIME_NIGHTS + 1)];
    return slot[0] == night ? slot[1] : 0;
}

/* Average spend of the previous nights' quiet hours. */
static int64_t bedtime_baseline(const struct breaker *b, int64_t night)
{
    int64_t sum = 0;
    for (int64_t k = 1; k <= LEDGER_BEDTIME_NIGHTS; k++)
        sum = add_sat(sum, bedtime_spent(b, night - k));
    return sum / LEDGER_BEDTIME_NIGHTS;
}

static int64_t bedtime_limit(const struct breaker *b, int64_t baseline)
{
    __int128 lim = (__int128)baseline * b->factor_pct / 100;
    if (lim > INT64_MAX)
        lim = INT64_MAX;
    return (int64_t)lim > b->floor_micros ? (int64_t)lim : b->floor_micros;
}

/* ---- tripping ---- */

static int breaker_reason_put(struct ledger *l, int32_t i, struct proto_str reason,
                              struct ledger_error *err)
{
    sqlite3_stmt *s = watch_stmt(l, WS_REASON_PUT);
    sqlite3_bind_int64(s, 1, i + 1);
    sqlite3_bind_text(s, 2, reason.ptr, (int)reason.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, l->now_ms);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "freeze reason");
    return 0;
}

static int breaker_trip(struct ledger *l, int32_t i, const char *reason, int64_t spent,
                        int64_t limit, int64_t span_ms, struct ledger_error *err)
{
    struct acct *a = &l->accts[i];
    if (a->status != LEDGER_STATUS_ACTIVE)
        return 0; /* already stopped: one event per trip */
    tree_touch(l, i);
    a->status = LEDGER_STATUS_FROZEN;
    int rc = breaker_reason_put(l, i, proto_str_c(reason), err);
    if (rc)
        return rc;
    char detail[LEDGER_EVENT_DETAIL_MAX];
    snprintf(detail, sizeof detail,
             "{\"reason\":\"%s\",\"spent_micros\":%lld,\"limit_micros\":%lld,"
             "\"window_ms\":%lld,\"status\":\"frozen\"}",
             reason, (long long)spent, (long long)limit, (long long)span_ms);
    return outbox_add(l, "breaker", i, detail, err);
}

int breaker_on_spend(struct ledger *l, int32_t i, int64_t amount_micros,
                     struct ledger_error *err)
{
    struct breaker b;
    bool found;
    breaker_load(l, i, &b, &found);
    if (!found)
        return 0;
    int rc = 0;
    if (b.velocity_max_micros > 0) {
        int64_t sum = velocity_add(&b, l->now_ms, amount_micros);
        if (sum > b.velocity_max_micros)
            rc = breaker_trip(l, i, "velocity", sum, b.velocity_max_micros, b.window_ms, err);
    }
    int64_t night;
    if (rc == 0 && b.factor_pct > 0 &&
        bedtime_quiet(&b, l->accts[i].tz_offset_min, l->now_ms, &night)) {
        int64_t *slot = bedtime_slot(&b, night);
        if (slot[0] != night) {
            slot[0] = night;
            slot[1] = 0;
        }
        slot[1] = add_sat(slot[1], amount_micros);
        int64_t limit = bedtime_limit(&b, bedtime_baseline(&b, night));
        if (limit > 0 && slot[1] > limit)
            rc = breaker_trip(l, i, "bedtime", slot[1], limit,
                              floor_mod(b.bed_end_min - b.bed_start_min, MINUTES_PER_DAY) *
                                  60000,
                              err);
    }
    return rc ? rc : breaker_save(l, i, &b, false, err);
}

/* ---- freeze / unfreeze ---- */

int breaker_on_freeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                      struct ledger_error *err)
{
    if (res->status != PROTO_OK)
        return 0;
    struct proto_str reason = c->u.status.reason;
    if (reason.len == 0)
        reason = proto_str_c("admin");
    return breaker_reason_put(l, (int32_t)res->id - 1, reason, err);
}

int breaker_on_unfreeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                        struct ledger_error *err)
{
    (void)c;
    if (res->status != PROTO_OK)
        return 0;
    int32_t i = (int32_t)res->id - 1;
    sqlite3_stmt *s = watch_stmt(l, WS_REASON_DEL);
    sqlite3_bind_int64(s, 1, i + 1);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "freeze reason");
    struct breaker b;
    bool found;
    breaker_load(l, i, &b, &found);
    if (!found)
        return 0;
    /* A fresh start: what tripped it would trip it again at once. */
    breaker_clear_slots(b.bucket, LEDGER_VELOCITY_BUCKETS);
    int64_t night;
    if (b.factor_pct > 0 && bedtime_quiet(&b, l->accts[i].tz_offset_min, l->now_ms, &night))
        bedtime_slot(&b, night)[1] = 0;
    return breaker_save(l, i, &b, false, err);
}

void breaker_reason(const struct ledger *l, int32_t i, char *out, size_t cap)
{
    sqlite3_stmt *s = watch_stmt(l, WS_REASON_GET);
    sqlite3_bind_int64(s, 1, i + 1);
    out[0] = '\0';
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
}

int breaker_refuse_frozen(const struct ledger *l, int32_t i, struct proto_result *res)
{
    char reason[PROTO_TEXT_MAX + 1];
    breaker_reason(l, i, reason, sizeof reason);
    if (reason[0] == '\0')
        return ledger_refuse(res, PROTO_ERR_FROZEN, "account \"%s\" is frozen",
                             l->accts[i].name);
    return ledger_refuse(res, PROTO_ERR_FROZEN, "account \"%s\" is frozen (reason: %.64s)",
                         l->accts[i].name, reason);
}

/* ---- breaker set ---- */

static int breaker_check(const struct proto_breaker_set_args *a, struct proto_result *res)
{
    if (a->velocity_max_micros != 0 || a->velocity_window_ms != 0) {
        if (!ledger_amount_valid(a->velocity_max_micros, false))
            return ledger_refuse(res, PROTO_ERR_INVALID,
                                 "velocity_max_micros: %lld is outside 1..%lld",
                                 (long long)a->velocity_max_micros,
                                 (long long)PROTO_AMOUNT_MAX);
        if (a->velocity_window_ms < LEDGER_VELOCITY_WINDOW_MIN_MS ||
            a->velocity_window_ms > LEDGER_VELOCITY_WINDOW_MAX_MS)
            return ledger_refuse(res, PROTO_ERR_INVALID,
                                 "velocity_window_ms: %lld is outside %lld..%lld",
                                 (long long)a->velocity_window_ms,
                                 LEDGER_VELOCITY_WINDOW_MIN_MS, LEDGER_VELOCITY_WINDOW_MAX_MS);
    }
    if (a->bedtime_factor_pct == 0 && a->bedtime_start_min == 0 && a->bedtime_end_min == 0 &&
        a->bedtime_floor_micros == 0)
        return PROTO_OK;
    if (a->bedtime_factor_pct < 100 || a->bedtime_factor_pct > LEDGER_BEDTIME_FACTOR_MAX_PCT)
        return ledger_refuse(res, PROTO_ERR_INVALID, "bedtime_factor_pct: %lld is outside"
                             " 100..%d", (long long)a->bedtime_factor_pct,
                             LEDGER_BEDTIME_FACTOR_MAX_PCT);
    if (a->bedtime_start_min < 0 || a->bedtime_start_min >= MINUTES_PER_DAY ||
        a->bedtime_end_min < 0 || a->bedtime_end_min >= MINUTES_PER_DAY ||
        a->bedtime_start_min == a->bedtime_end_min)
        return ledger_refuse(res, PROTO_ERR_INVALID, "bedtime: %lld-%lld is not two different"
                             " minutes of the day (0..1439)", (long long)a->bedtime_start_min,
                             (long long)a->bedtime_end_min);
    if (!ledger_amount_valid(a->bedtime_floor_micros, true))
        return ledger_refuse(res, PROTO_ERR_INVALID, "bedtime_floor_micros: %lld is outside"
                             " 0..%lld", (long long)a->bedtime_floor_micros,
                             (long long)PROTO_AMOUNT_MAX);
    return PROTO_OK;
}

int breaker_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                    struct ledger_error *err)
{
    const struct proto_breaker_set_args *a = &c->u.breaker_set;
    int32_t i = account_find(l, a->account, "account", res);
    if (i < 0 || breaker_check(a, res) != PROTO_OK)
        return 0;
    if (l->accts[i].is_grant)
        return ledger_refuse(res, PROTO_ERR_INVALID, "account \"%s\" is a grant: its amount"
                             " bounds it", l->accts[i].name), 0;
    res->id = (uint64_t)i + 1;
    struct breaker b;
    bool found;
    breaker_load(l, i, &b, &found);
    if (a->velocity_max_micros == 0 && a->bedtime_factor_pct == 0) {
        sqlite3_stmt *s = watch_stmt(l, WS_BREAKER_DEL);
        sqlite3_bind_int64(s, 1, i + 1);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        watch_flag_set(l, i, WATCH_BREAKER, false);
        return rc == SQLITE_DONE ? 0 : store_sql_error(l, err, "breaker clear");
    }
    watch_flag_set(l, i, WATCH_BREAKER, true);
    if (!found) {
        breaker_clear_slots(b.bucket, LEDGER_VELOCITY_BUCKETS);
        breaker_clear_slots(b.night, LEDGER_BEDTIME_NIGHTS + 1);
    }
    /* Counters stay when their rule's shape does: a new limit alone does
     * not forget what was spent. */
    if (b.window_ms != a->velocity_window_ms)
        breaker_clear_slots(b.bucket, LEDGER_VELOCITY_BUCKETS);
    if (b.bed_start_min != a->bedtime_start_min || b.bed_end_min != a->bedtime_end_min)
        breaker_clear_slots(b.night, LEDGER_BEDTIME_NIGHTS + 1);
    b.velocity_max_micros = a->velocity_max_micros;
    b.window_ms = a->velocity_window_ms;
    b.bed_start_min = a->bedtime_start_min;
    b.bed_end_min = a->bedtime_end_min;
    b.factor_pct = a->bedtime_factor_pct;
    b.floor_micros = a->bedtime_floor_micros;
    return breaker_save(l, i, &b, true, err);
}

/* ---- query ---- */

int ledger_breaker_get(struct ledger *l, const char *account, struct ledger_breaker_view *out,
                       struct ledger_error *err)
{
    int32_t i = tree_find(l, account, (uint32_t)strlen(account));
    memset(out, 0, sizeof *out);
    if (i < 0) {
        err->code = LEDGER_ENOTFOUND;
        snprintf(err->message, sizeof err->message, "account \"%.200s\" does not exist",
                 account);
        return LEDGER_ENOTFOUND;
    }
    const struct acct *a = &l->accts[i];
    snprintf(out->account, sizeof out->account, "%s", a->name);
    out->status = a->status;
    breaker_reason(l, i, out->frozen_reason, sizeof out->frozen_reason);
    threshold_describe(l, i, out->thresholds, sizeof out->thresholds,
                       &out->is_default_thresholds);
    struct breaker b;
    breaker_load(l, i, &b, &out->is_set);
    if (!out->is_set)
        return 0;
    out->velocity_max_micros = b.velocity_max_micros;
    out->velocity_window_ms = b.window_ms;
    if (b.velocity_max_micros > 0)
        out->velocity_spent_micros = velocity_sum(&b, velocity_bucket_now(&b, l->now_ms));
    out->bedtime_start_min = b.bed_start_min;
    out->bedtime_end_min = b.bed_end_min;
    out->bedtime_factor_pct = b.factor_pct;
    out->bedtime_floor_micros = b.floor_micros;
    if (b.factor_pct > 0) {
        int64_t night;
        out->is_quiet_now = bedtime_quiet(&b, a->tz_offset_min, l->now_ms, &night);
        if (!out->is_quiet_now)
            night++; /* the next quiet hours */
        out->bedtime_spent_micros = out->is_quiet_now ? bedtime_spent(&b, night) : 0;
        out->bedtime_baseline_micros = bedtime_baseline(&b, night);
        out->bedtime_limit_micros = bedtime_limit(&b, out->bedtime_baseline_micros);
    }
    return 0;
}
