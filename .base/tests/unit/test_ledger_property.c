/*
 * test_ledger_property.c — the property test: a long random sequence of
 * operations (reserve, commit with less / equal / more / nothing, release,
 * expire with time jumps across day, week and month boundaries, chargebacks,
 * admin adjustments, grants, freeze / unfreeze, cap updates, period close,
 * keyed repeats and key conflicts) over a random tree of accounts with mixed
 * caps, periods and UTC offsets, batched 1–50 commands per entry.
 *
 * A small reference model, written straight from docs/ledger-rules.md with
 * arrays and linear scans, predicts every result and, after every entry,
 * every live account's spent, reserved and available.  `spent` is recomputed
 * by brute force from the list of postings after every entry; `reserved`
 * from the list of open reservations after every command.  ledger_verify runs
 * every 1000 operations and at the end, and the model checks invariant 2
 * (no capped account over its cap except by recorded overruns and
 * adjustments) after every entry.  A replica ledger applies the same entries
 * and must answer the same and hash the same; every 10 000 operations the
 * primary is replaced by a restore of its own snapshot.
 *
 * PURSER_SEED picks the seed (default below), PURSER_PROPERTY_OPS the number
 * of operations (default 100 000).  A mismatch prints the seed, the
 * operation number and the operation, and fails.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/ledger_fixture.h"

#define USD FX_USD
#define SECOND_MS 1000LL
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS (60 * MINUTE_MS)
#define DAY_MS (24 * HOUR_MS)

#define DEFAULT_SEED 20261116ULL
#define DEFAULT_OPS 100000
#define BATCH_MAX 50
#define VERIFY_EVERY_OPS 1000
/* The primary ledger is replaced by a restore of its snapshot this often. */
#define RESTORE_EVERY_OPS 10000
#define ACCOUNTS_MAX 8192
#define OPEN_RES_SOFT_MAX 300
/* Reservations and keys younger than this are safe from expire's 24 h
 * pruning, whichever age (creation or close) it goes by. */
#define SAFE_AGE_MS (23 * HOUR_MS)
#define UNKNOWN_ID_BASE 900000000ULL

/* ---------------------------------------------------------------- rng -- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint64_t rnd(uint64_t n)
{
    return n == 0 ? 0 : rng_next() % n;
}

/* Uniform in [lo, hi]. */
static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)rnd((uint64_t)(hi - lo) + 1);
}

/* -------------------------------------------------------------- model -- */

struct m_account {
    char name[PROTO_NAME_MAX + 1];
    int parent; /* -1 for a root */
    int depth;  /* segments */
    int64_t cap_micros;
    int period;
    int tz_offset_min;
    int status; /* LEDGER_STATUS_* */
    bool is_tree;   /* created by the test's tree (not vendor, not grant) */
    bool is_vendor;
    bool is_grant;
    uint64_t grant_id;
    int64_t grant_deadline_ms;
    bool grant_open;
    bool grant_closed_by_command; /* first close was grant_close */
    int64_t grant_returned_micros;
    int grant_pending; /* batch index of the create while its id is unknown, else -1 */
    /* derived */
    int64_t period_start_ms, period_end_ms;
    int64_t spent_micros, reserved_micros, excused_micros;
    int touched_entry;
};

enum { R_OPEN, R_COMMITTED, R_RELEASED, R_EXPIRED, R_CHARGED };

struct m_res {
    uint64_t id;     /* 0 while pending */
    int pending;     /* batch index of the reserve while pending, else -1 */
    int account, payee;
    int64_t amount_micros;
    int64_t created_ms, deadline_ms;
    int on_expire;
    int state;
    int64_t actual_micros;
    /* the first commit's answer, for repeats */
    uint64_t commit_transfer_id;
    int64_t commit_overrun_micros;
    int commit_pending; /* batch index while pending, else -1 */
    int open_slot;      /* index in open[], -1 when closed */
    int touched_batch;  /* entry in which an old reservation was referenced */
};

struct m_posting {
    int64_t ts_ms;
    int debit, credit;
    int stop; /* first ancestor-or-self of debit that contains credit, or -1 */
    int64_t amount_micros;
    int64_t overrun_micros;
    int kind;
};

struct m_key {
    struct proto_cmd cmd;
    int64_t created_ms;
    struct proto_result res;
    int pending; /* batch index while pending, else -1 */
};

struct model {
    int64_t now_ms;
    int entry_no;
    struct m_account acct[ACCOUNTS_MAX];
    int acct_count;
    int tree_idx[128];
    int tree_count;
    int vendor_openai, vendor_anthropic;

    struct m_res *res;
    int res_count, res_cap;
    int *open; /* indices of open reservations */
    int open_count, open_cap;
    int recent_lo; /* first reservation created after now - SAFE_AGE_MS */

    struct m_posting *post;
    int post_count, post_cap;

    struct m_key *keys;
    int key_count, key_cap;
    char (*key_str)[24];
    int key_lo;

    int grant_idx[ACCOUNTS_MAX];
    int grant_count;

    int pending_commit[BATCH_MAX]; /* reservations first committed in this entry */
    int pending_commit_count;

    /* what the run covered, printed at the end */
    struct {
        long late_commits, overruns, zero_commits, charged, expired, nested_grants;
        long key_repeats, key_repeats_in_batch, key_conflicts, period_rolls;
    } seen;
};

static struct model M;

static void *grow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int ncap = *cap ? *cap * 2 : 1024;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(p, (size_t)ncap * elem);
    assert_non_null(q);
    *cap = ncap;
    return q;
}

/* ---- calendar (UTC offsets in minutes; days since 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void period_window(int period, int tz_min, int64_t now, int64_t *start, int64_t *end)
{
    int64_t off = (int64_t)tz_min * MINUTE_MS;
    int64_t day = floor_div(now + off, DAY_MS);
    switch (period) {
    case PROTO_PERIOD_DAY:
        *start = day * DAY_MS - off;
        *end = *start + DAY_MS;
        return;
    case PROTO_PERIOD_WEEK: {
        int64_t dow = ((day + 3) % 7 + 7) % 7; /* 1970-01-01 was a Thursday */
        *start = (day - dow) * DAY_MS - off;
        *end = *start + 7 * DAY_MS;
        return;
    }
    case PROTO_PERIOD_MONTH: {
        int64_t y;
        int m;
        civil_from_days(day, &y, &m);
        *start = days_from_civil(y, m, 1) * DAY_MS - off;
        *end = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY_MS - off;
        return;
    }
    default:
        *start = INT64_MIN;
        *end = INT64_MAX;
    }
}

/* ---- the tree ---- */

static bool m_contains(int anc, int x)
{
    for (; x >= 0; x = M.acct[x].parent)
        if (x == anc)
            return true;
    return false;
}

static int m_stop_of(int debit, int credit)
{
    for (int x = debit; x >= 0; x = M.acct[x].parent)
        if (m_contains(x, credit))
            return x;
    return -1;
}

static int m_add_account(const char *name, int parent, int64_t cap, int period, int tz)
{
    assert_true(M.acct_count < ACCOUNTS_MAX);
    int i = M.acct_count++;
    struct m_account *a = &M.acct[i];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->parent = parent;
    a->depth = parent < 0 ? 1 : M.acct[parent].depth + 1;
    a->cap_micros = cap;
    a->period = period;
    a->tz_offset_min = tz;
    a->status = LEDGER_STATUS_ACTIVE;
    a->grant_pending = -1;
    a->touched_entry = -1;
    period_window(period, tz, M.now_ms, &a->period_start_ms, &a->period_end_ms);
    return i;
}

/* ---- derived balances ---- */

/* reserved: open reservations in the subtree, with each open grant's hold
 * max(amount - spent, reserved) in place of its reserved. */
static void m_recompute_reserved(void)
{
    for (int i = 0; i < M.acct_count; i++)
        M.acct[i].reserved_micros = 0;
    for (int k = 0; k < M.open_count; k++) {
        const struct m_res *r = &M.res[M.open[k]];
        M.acct[r->account].reserved_micros += r->amount_micros;
    }
    for (int i = M.acct_count - 1; i >= 0; i--) {
        const struct m_account *a = &M.acct[i];
        if (a->parent < 0)
            continue;
        int64_t contrib = a->reserved_micros;
        if (a->is_grant && a->grant_open && a->cap_micros - a->spent_micros > contrib)
            contrib = a->cap_micros - a->spent_micros;
        M.acct[a->parent].reserved_micros += contrib;
    }
}

static void m_count_posting(const struct m_posting *p, int sign, bool touch)
{
    for (int x = p->debit; x != p->stop; x = M.acct[x].parent) {
        struct m_account *a = &M.acct[x];
        if (p->ts_ms < a->period_start_ms)
            continue;
        a->spent_micros += sign * p->amount_micros;
        a->excused_micros += sign * (p->overrun_micros +
                                     (p->kind == PROTO_KIND_ADJUSTMENT ? p->amount_micros : 0));
        if (touch)
            a->touched_entry = M.entry_no;
    }
}

/* spent by brute force: every posting in each account's current period whose
 * debit is in the subtree and whose credit is not. */
static void m_recompute_spent(void)
{
    for (int i = 0; i < M.acct_count; i++) {
        struct m_account *a = &M.acct[i];
        int64_t old_start = a->period_start_ms;
        period_window(a->period, a->tz_offset_min, M.now_ms, &a->period_start_ms,
                      &a->period_end_ms);
        M.seen.period_rolls += a->period_start_ms != old_start;
        a->spent_micros = 0;
        a->excused_micros = 0;
    }
    for (int k = 0; k < M.post_count; k++)
        m_count_posting(&M.post[k], 1, false);
}

static int64_t m_room(int x)
{
    const struct m_account *a = &M.acct[x];
    int64_t room = a->cap_micros - a->spent_micros - a->reserved_micros;
    return room < 0 ? 0 : room;
}

static int64_t m_available(int x)
{
    int64_t best = PROTO_UNLIMITED;
    for (; x >= 0; x = M.acct[x].parent)
        if (M.acct[x].cap_micros != PROTO_CAP_NONE && m_room(x) < best)
            best = m_room(x);
    return best;
}

static void m_touch_path(int x)
{
    for (; x >= 0; x = M.acct[x].parent)
        M.acct[x].touched_entry = M.entry_no;
}

static int m_post(int debit, int credit, int64_t amount, int64_t overrun, int kind)
{
    M.post = grow(M.post, &M.post_cap, M.post_count + 1, sizeof *M.post);
    struct m_posting *p = &M.post[M.post_count++];
    p->ts_ms = M.now_ms;
    p->debit = debit;
    p->credit = credit;
    p->stop = m_stop_of(debit, credit);
    p->amount_micros = amount;
    p->overrun_micros = overrun;
    p->kind = kind;
    m_count_posting(p, 1, true);
    m_touch_path(debit);
    m_touch_path(credit);
    return M.post_count - 1;
}

static void m_unpost(void)
{
    m_count_posting(&M.post[--M.post_count], -1, true);
}

static void m_open_add(int r)
{
    M.open = grow(M.open, &M.open_cap, M.open_count + 1, sizeof *M.open);
    M.res[r].open_slot = M.open_count;
    M.open[M.open_count++] = r;
}

static void m_open_remove(int r)
{
    int slot = M.res[r].open_slot;
    int last = M.open[--M.open_count];
    M.open[slot] = last;
    M.res[last].open_slot = slot;
    M.res[r].open_slot = -1;
}

/* ---- fitting (docs/ledger-rules.md, "Fitting") ---- */

/* The first thing on the path from `x` to the root that refuses any new hold
 * or outflow, or PROTO_OK. */
static int m_path_status(int x, int *who)
{
    for (; x >= 0; x = M.acct[x].parent) {
        const struct m_account *a = &M.acct[x];
        *who = x;
        if (a->is_grant && (!a->grant_open || M.now_ms >= a->grant_deadline_ms))
            return PROTO_ERR_GRANT_EXPIRED;
        if (a->status == LEDGER_STATUS_FROZEN)
            return PROTO_ERR_FROZEN;
        if (a->status == LEDGER_STATUS_CLOSED)
            return PROTO_ERR_CLOSED;
    }
    return PROTO_OK;
}

struct fit_before {
    int path[16];
    int64_t used[16]; /* spent + reserved before the change */
    int len;
};

static void m_fit_begin(int x, struct fit_before *b)
{
    b->len = 0;
    for (; x >= 0; x = M.acct[x].parent) {
        assert_true(b->len < 16);
        b->path[b->len] = x;
        b->used[b->len] = M.acct[x].spent_micros + M.acct[x].reserved_micros;
        b->len++;
    }
}

/* After the change was made tentatively: the deepest capped account on the
 * path whose spent + reserved grew past its cap, or -1; `room` its room
 * before the change. */
static int m_fit_check(const struct fit_before *b, int64_t *room)
{
    m_recompute_reserved();
    for (int k = 0; k < b->len; k++) {
        const struct m_account *a = &M.acct[b->path[k]];
        if (a->cap_micros == PROTO_CAP_NONE)
            continue;
        int64_t used = a->spent_micros + a->reserved_micros;
        /* An account whose use does not grow (delta 0: a grant's hold or
         * an internal credit absorbs it) is not a limit, even when an
         * overrun already put it past its cap. */
        if (used > b->used[k] && used > a->cap_micros) {
            int64_t r = a->cap_micros - b->used[k];
            *room = r < 0 ? 0 : r;
            return b->path[k];
        }
    }
    return -1;
}

/* ---- expectations ---- */

enum {
    X_AMOUNT = 1 << 0,
    X_REMAINING = 1 << 1,
    X_EXPIRES = 1 << 2,
    X_OVERRUN = 1 << 3,
    X_RETURNED = 1 << 4,
    X_NAME = 1 << 5,
    X_ID = 1 << 6,
    X_TRANSFER_NONZERO = 1 << 7, /* transfer_id != 0 */
    X_TRANSFER_ZERO = 1 << 8,
    X_ID_IS_TRANSFER = 1 << 9,  /* id == transfer_id != 0 */
    X_ID_NONZERO = 1 << 10,
};

enum { REF_NONE, REF_KEY, REF_COMMIT };

struct expect {
    int status;
    unsigned check;
    int64_t amount, remaining, expires_at, overrun, returned;
    uint64_t id;
    char name[PROTO_NAME_MAX + 1];
    int ref;     /* REF_KEY: equal to the key's stored result;
                    REF_COMMIT: id/amount/overrun/transfer of the first commit */
    int ref_idx; /* key or reservation index */
    /* what to record after apply */
    int new_res, new_grant, new_key;
};

static void x_refuse(struct expect *x, int status, int who)
{
    x->status = status;
    if (who >= 0 && status != PROTO_ERR_NOT_FOUND) {
        x->check |= X_NAME;
        snprintf(x->name, sizeof x->name, "%s", M.acct[who].name);
    }
}

/* ---- operations: each builds a command and predicts its result ---- */

static int pick_tree(void)
{
    return M.tree_idx[rnd((uint64_t)M.tree_count)];
}

/* A grant account whose name is known (created in an earlier entry). */
static int pick_grant(bool open_only)
{
    int cand[128], n = 0;
    for (int k = M.grant_count - 1; k >= 0 && k >= M.grant_count - 128; k--) {
        int g = M.grant_idx[k];
        if (M.acct[g].grant_pending < 0 && (!open_only || M.acct[g].grant_open))
            cand[n++] = g;
    }
    return n == 0 ? -1 : cand[rnd((uint64_t)n)];
}

static int64_t pick_amount(void)
{
    uint64_t r = rnd(100);
    if (r < 60)
        return rnd_range(10000, 5 * USD);
    if (r < 90)
        return rnd_range(5 * USD, 50 * USD);
    return rnd_range(50 * USD, 500 * USD);
}

static void op_reserve(struct proto_cmd *c, struct expect *x, int batch_idx)
{
    int a;
    uint64_t r = rnd(100);
    if (r < 2) {
        *c = fx_reserve("t0/ghost", 1 * USD, MINUTE_MS);
        x->status = PROTO_ERR_NOT_FOUND;
        return;
    }
    a = r < 80 ? pick_tree() : pick_grant(r < 96);
    if (a < 0)
        a = pick_tree();
    int64_t amount = pick_amount();
    int64_t ttl = rnd(10) < 8 ? rnd_range(1 * SECOND_MS, 2 * HOUR_MS)
                              : rnd_range(2 * HOUR_MS, 2 * DAY_MS);
    *c = fx_reserve(M.acct[a].name, amount, ttl);
    int payee = rnd(4) ? M.vendor_openai : M.vendor_anthropic;
    if (rnd(10) == 0) {
        int p = pick_tree();
        if (p != a)
            payee = p;
    }
    c->u.reserve.payee = fx_s(M.acct[payee].name);
    c->u.reserve.on_expire = (int64_t)rnd(2);
    if (rnd(10) == 0)
        c->role = PROTO_ROLE_ADMIN;

    int who;
    int st = m_path_status(a, &who);
    if (st != PROTO_OK) {
        x_refuse(x, st, who);
        return;
    }
    struct fit_before b;
    m_fit_begin(a, &b);
    M.res = grow(M.res, &M.res_cap, M.res_count + 1, sizeof *M.res);
    int ri = M.res_count++;
    struct m_res *res = &M.res[ri];
    memset(res, 0, sizeof *res);
    res->pending = batch_idx;
    res->account = a;
    res->payee = payee;
    res->amount_micros = amount;
    res->created_ms = M.now_ms;
    res->deadline_ms = M.now_ms + ttl;
    res->on_expire = (int)c->u.reserve.on_expire;
    res->state = R_OPEN;
    res->commit_pending = -1;
    res->touched_batch = -1;
    m_open_add(ri);
    int64_t room;
    int lim = m_fit_check(&b, &room);
    if (lim >= 0) {
        m_open_remove(ri);
        M.res_count--;
        m_recompute_reserved();
        x_refuse(x, PROTO_ERR_BUDGET_EXCEEDED, lim);
        x->check |= X_REMAINING;
        x->remaining = room;
        return;
    }
    m_touch_path(a);
    x->status = PROTO_OK;
    x->check |= X_AMOUNT | X_EXPIRES | X_REMAINING | X_ID_NONZERO;
    x->amount = amount;
    x->expires_at = M.now_ms + ttl;
    x->remaining = m_available(a);
    x->new_res = ri + 1;
}

/* A reservation that may be referenced now without meeting expire's
 * pruning: open and not yet due, or young; -1 when none. */
static int pick_res(void)
{
    for (int tries = 0; tries < 16; tries++) {
        int r;
        if (rnd(10) < 7 && M.open_count > 0)
            r = M.open[rnd((uint64_t)M.open_count)];
        else if (M.recent_lo < M.res_count)
            r = M.recent_lo + (int)rnd((uint64_t)(M.res_count - M.recent_lo));
        else
            continue;
        const struct m_res *res = &M.res[r];
        if (res->pending >= 0)
            continue;
        bool young = res->created_ms > M.now_ms - SAFE_AGE_MS;
        bool open_not_due = res->state == R_OPEN && res->deadline_ms > M.now_ms;
        if (young || (open_not_due && res->touched_batch != M.entry_no))
            return r;
    }
    return -1;
}

static void note_res_use(int r)
{
    if (M.res[r].created_ms <= M.now_ms - SAFE_AGE_MS)
        M.res[r].touched_batch = M.entry_no; /* once per entry (see pick_res) */
}

static int64_t pick_actual(int64_t amount)
{
    uint64_t r = rnd(100);
    if (r < 40)
        return rnd_range(0, amount - 1);
    if (r < 70)
        return amount;
    if (r < 90)
        return amount + rnd_range(1, amount / 2 + 1);
    return 0;
}

static void op_commit(struct proto_cmd *c, struct expect *x, int batch_idx)
{
    int r = pick_res();
    if (r < 0 || rnd(50) == 0) {
        *c = fx_commit(UNKNOWN_ID_BASE + rnd(1000), 1 * USD);
        x->status = PROTO_ERR_NOT_FOUND;
        return;
    }
    struct m_res *res = &M.res[r];
    note_res_use(r);
    int64_t actual = res->state == R_COMMITTED && rnd(2) ? res->actual_micros
                                                         : pick_actual(res->amount_micros);
    *c = fx_commit(res->id, actual);
    if (rnd(10) == 0)
        c->role = PROTO_ROLE_ADMIN;
    switch (res->state) {
    case R_OPEN:
    case R_EXPIRED: {
        int64_t overrun = res->state == R_EXPIRED ? actual
                          : actual > res->amount_micros ? actual - res->amount_micros : 0;
        if (res->state == R_OPEN)
            m_open_remove(r);
        else
            M.seen.late_commits++;
        M.seen.overruns += overrun > 0;
        M.seen.zero_commits += actual == 0;
        res->state = R_COMMITTED;
        res->actual_micros = actual;
        res->commit_overrun_micros = overrun;
        res->commit_pending = batch_idx;
        M.pending_commit[M.pending_commit_count++] = r;
        if (actual > 0)
            m_post(res->account, res->payee, actual, overrun, PROTO_KIND_SPEND);
        m_recompute_reserved();
        m_touch_path(res->account);
        x->status = PROTO_OK;
        x->check |= X_ID | X_AMOUNT | X_OVERRUN | X_REMAINING |
                    (actual > 0 ? X_TRANSFER_NONZERO : X_TRANSFER_ZERO);
        x->id = res->id;
        x->amount = actual;
        x->overrun = overrun;
        x->remaining = m_available(res->account);
        return;
    }
    case R_COMMITTED:
        if (actual != res->actual_micros) {
            x->status = PROTO_ERR_CONFLICT;
            return;
        }
        x->status = PROTO_OK;
        x->check |= X_ID | X_AMOUNT | X_OVERRUN;
        x->id = res->id;
        x->amount = actual;
        x->overrun = res->commit_overrun_micros;
        x->ref = REF_COMMIT;
        x->ref_idx = r;
        return;
    default: /* released by the client, or charged by expire */
        x->status = PROTO_ERR_CONFLICT;
        return;
    }
}

static void op_release(struct proto_cmd *c, struct expect *x)
{
    int r = pick_res();
    if (r < 0 || rnd(50) == 0) {
        *c = fx_release(UNKNOWN_ID_BASE + rnd(1000));
        x->status = PROTO_ERR_NOT_FOUND;
        return;
    }
    struct m_res *res = &M.res[r];
    note_res_use(r);
    *c = fx_release(res->id);
    switch (res->state) {
    case R_OPEN:
        m_open_remove(r);
        res->state = R_RELEASED;
        m_recompute_reserved();
        m_touch_path(res->account);
        x->status = PROTO_OK;
        x->check |= X_ID | X_RETURNED | X_REMAINING;
        x->id = res->id;
        x->returned = res->amount_micros;
        x->remaining = m_available(res->account);
        return;
    case R_RELEASED:
    case R_EXPIRED:
        x->status = PROTO_OK;
        x->check |= X_ID;
        x->id = res->id;
        return;
    default:
        x->status = PROTO_ERR_CONFLICT;
        return;
    }
}

static void m_grant_close(int g, bool by_command)
{
    struct m_account *a = &M.acct[g];
    int64_t left = a->cap_micros - a->spent_micros - a->reserved_micros;
    a->grant_returned_micros = left < 0 ? 0 : left;
    a->grant_open = false;
    a->grant_closed_by_command = by_command;
    a->status = LEDGER_STATUS_CLOSED;
    m_touch_path(g);
}

static void op_expire(struct proto_cmd *c, struct expect *x)
{
    *c = fx_expire();
    c->role = rnd(4) ? PROTO_ROLE_AGENT : PROTO_ROLE_ADMIN;
    int64_t expired = 0, closed = 0;
    for (int k = 0; k < M.open_count;) {
        int r = M.open[k];
        struct m_res *res = &M.res[r];
        if (res->deadline_ms > M.now_ms) {
            k++;
            continue;
        }
        m_open_remove(r); /* moves another reservation into slot k */
        expired++;
        m_touch_path(res->account);
        if (res->on_expire == PROTO_ON_EXPIRE_CHARGE) {
            res->state = R_CHARGED;
            M.seen.charged++;
            m_post(res->account, res->payee, res->amount_micros, 0, PROTO_KIND_SPEND);
        } else {
            res->state = R_EXPIRED;
            M.seen.expired++;
        }
    }
    m_recompute_reserved();
    for (int k = 0; k < M.grant_count; k++) {
        int g = M.grant_idx[k];
        if (M.acct[g].grant_open && M.acct[g].grant_deadline_ms <= M.now_ms) {
            m_grant_close(g, false);
            closed++;
        }
    }
    m_recompute_reserved();
    x->status = PROTO_OK;
    x->check |= X_AMOUNT | X_ID;
    x->amount = expired;
    x->id = (uint64_t)closed;
}

static void op_chargeback(struct proto_cmd *c, struct expect *x)
{
    int d = rnd(5) ? pick_tree() : pick_grant(rnd(4) != 0);
    if (d < 0)
        d = pick_tree();
    int cr = rnd(3) ? pick_tree() : M.vendor_openai;
    if (cr == d)
        cr = M.vendor_anthropic;
    int64_t amount = pick_amount();
    *c = fx_transfer(M.acct[d].name, M.acct[cr].name, amount, PROTO_KIND_CHARGEBACK);
    int who;
    int st = m_path_status(d, &who);
    if (st != PROTO_OK) {
        x_refuse(x, st, who);
        return;
    }
    struct fit_before b;
    m_fit_begin(d, &b);
    m_post(d, cr, amount, 0, PROTO_KIND_CHARGEBACK);
    int64_t room;
    int lim = m_fit_check(&b, &room);
    if (lim >= 0) {
        m_unpost();
        m_recompute_reserved();
        x_refuse(x, PROTO_ERR_BUDGET_EXCEEDED, lim);
        x->check |= X_REMAINING;
        x->remaining = room;
        return;
    }
    x->status = PROTO_OK;
    x->check |= X_AMOUNT | X_ID_IS_TRANSFER;
    x->amount = amount;
}

static void op_adjustment(struct proto_cmd *c, struct expect *x)
{
    int d, cr;
    uint64_t r = rnd(10);
    if (r < 6) {
        d = rnd(6) ? pick_tree() : pick_grant(false);
        if (d < 0)
            d = pick_tree();
        cr = rnd(2) ? M.vendor_openai : pick_tree();
    } else {
        d = M.vendor_anthropic;
        cr = pick_tree();
    }
    if (cr == d)
        cr = M.vendor_anthropic;
    int64_t amount = pick_amount();
    *c = fx_transfer(M.acct[d].name, M.acct[cr].name, amount, PROTO_KIND_ADJUSTMENT);
    if (rnd(20) == 0) {
        c->role = PROTO_ROLE_AGENT;
        x->status = PROTO_ERR_FORBIDDEN;
        return;
    }
    m_post(d, cr, amount, 0, PROTO_KIND_ADJUSTMENT);
    m_recompute_reserved();
    x->status = PROTO_OK;
    x->check |= X_AMOUNT | X_ID_IS_TRANSFER;
    x->amount = amount;
}

static void op_grant_create(struct proto_cmd *c, struct expect *x, int batch_idx)
{
    int p = rnd(10) < 7 ? pick_tree() : pick_grant(true);
    if (p < 0)
        p = pick_tree();
    int64_t amount = rnd_range(1 * USD, 100 * USD);
    int64_t ttl = rnd_range(1 * MINUTE_MS, 6 * HOUR_MS);
    *c = fx_grant_create(M.acct[p].name, amount, ttl);
    if (M.acct[p].depth >= PROTO_NAME_DEPTH_MAX) {
        x->status = PROTO_ERR_INVALID;
        return;
    }
    int who;
    int st = m_path_status(p, &who);
    if (st != PROTO_OK) {
        x_refuse(x, st, who);
        return;
    }
    struct fit_before b;
    m_fit_begin(p, &b);
    int g = m_add_account("", p, amount, PROTO_PERIOD_NONE, 0);
    M.acct[g].is_grant = true;
    M.acct[g].grant_open = true;
    M.acct[g].grant_deadline_ms = M.now_ms + ttl;
    M.acct[g].grant_pending = batch_idx;
    int64_t room;
    int lim = m_fit_check(&b, &room);
    if (lim >= 0) {
        M.acct_count--;
        m_recompute_reserved();
        x_refuse(x, PROTO_ERR_BUDGET_EXCEEDED, lim);
        x->check |= X_REMAINING;
        x->remaining = room;
        return;
    }
    M.grant_idx[M.grant_count++] = g;
    M.seen.nested_grants += M.acct[p].is_grant;
    m_touch_path(g);
    x->status = PROTO_OK;
    x->check |= X_AMOUNT | X_EXPIRES | X_ID_NONZERO;
    x->amount = amount;
    x->expires_at = M.now_ms + ttl;
    x->new_grant = g + 1;
}

static void op_grant_close(struct proto_cmd *c, struct expect *x)
{
    int g = pick_grant(rnd(3) != 0);
    if (g < 0)
        g = pick_grant(false);
    if (g < 0 || rnd(30) == 0) {
        *c = fx_grant_close(UNKNOWN_ID_BASE + rnd(1000));
        x->status = PROTO_ERR_NOT_FOUND;
        return;
    }
    struct m_account *a = &M.acct[g];
    *c = fx_grant_close(a->grant_id);
    x->status = PROTO_OK;
    x->check |= X_ID;
    x->id = a->grant_id;
    if (a->grant_open) {
        m_grant_close(g, true);
        m_recompute_reserved();
        x->check |= X_RETURNED | X_AMOUNT;
        x->returned = a->grant_returned_micros;
        x->amount = a->spent_micros;
    } else if (a->grant_closed_by_command) {
        x->check |= X_RETURNED;
        x->returned = a->grant_returned_micros;
    }
}

/* A new cap (only the cap: see docs/ledger-rules.md, account update); one
 * below the current spent + reserved is a conflict. */
static void op_update_cap(struct proto_cmd *c, struct expect *x)
{
    int a = pick_tree();
    struct m_account *acc = &M.acct[a];
    int64_t used = acc->spent_micros + acc->reserved_micros;
    int64_t cap = PROTO_CAP_NONE;
    uint64_t r = rnd(10);
    if (acc->cap_micros == PROTO_CAP_NONE && rnd(5) != 0)
        r = 9; /* mostly keep uncapped accounts uncapped */
    if (r < 7)
        cap = used + rnd_range(100 * USD, 5000 * USD);
    else if (r < 9)
        cap = rnd_range(0, used + 1);
    *c = fx_account_update(acc->name, cap, PROTO_UNSET, PROTO_UNSET);
    if (cap != PROTO_CAP_NONE && cap < used) {
        x->status = PROTO_ERR_CONFLICT;
        return;
    }
    acc->cap_micros = cap;
    acc->touched_entry = M.entry_no;
    x->status = PROTO_OK;
}

static void op_freeze(struct proto_cmd *c, struct expect *x)
{
    int a = pick_tree();
    /* Mostly unfreeze (repeating is OK), so that few accounts are frozen. */
    bool freeze = rnd(25) == 0;
    *c = fx_account_status(freeze ? PROTO_CMD_ACCOUNT_FREEZE : PROTO_CMD_ACCOUNT_UNFREEZE,
                           M.acct[a].name);
    if (rnd(20) == 0) {
        c->role = PROTO_ROLE_AGENT;
        x->status = PROTO_ERR_FORBIDDEN;
        return;
    }
    M.acct[a].status = freeze ? LEDGER_STATUS_FROZEN : LEDGER_STATUS_ACTIVE;
    M.acct[a].touched_entry = M.entry_no;
    x->status = PROTO_OK;
}

/* "YYYY-MM" for 2025..2034: commands keep pointers to them. */
#define MONTH_YEAR0 2025
static char month_str[10 * 12][24];

static void op_period_close(struct proto_cmd *c, struct expect *x)
{
    int64_t y;
    int m;
    civil_from_days(floor_div(M.now_ms, DAY_MS), &y, &m);
    bool current = rnd(3) == 0;
    if (!current) {
        if (--m == 0) {
            m = 12;
            y--;
        }
    }
    int slot = (int)(y - MONTH_YEAR0) * 12 + (m - 1);
    assert_true(slot >= 0 && slot < 10 * 12);
    snprintf(month_str[slot], sizeof month_str[slot], "%04d-%02d", (int)y, m);
    *c = fx_period_close(month_str[slot]);
    x->status = current ? PROTO_ERR_CONFLICT : PROTO_OK;
}

/* ---- idempotency keys ---- */

static bool same_str(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* The fields the test sets, per type (metadata and tags stay empty). */
static bool same_request(const struct proto_cmd *a, const struct proto_cmd *b)
{
    if (a->type != b->type || a->role != b->role)
        return false;
    switch (a->type) {
    case PROTO_CMD_RESERVE:
        return same_str(a->u.reserve.account, b->u.reserve.account) &&
               same_str(a->u.reserve.payee, b->u.reserve.payee) &&
               a->u.reserve.amount_micros == b->u.reserve.amount_micros &&
               a->u.reserve.ttl_ms == b->u.reserve.ttl_ms &&
               a->u.reserve.on_expire == b->u.reserve.on_expire;
    case PROTO_CMD_COMMIT:
        return a->u.commit.reservation_id == b->u.commit.reservation_id &&
               a->u.commit.actual_micros == b->u.commit.actual_micros;
    case PROTO_CMD_RELEASE:
        return a->u.release.reservation_id == b->u.release.reservation_id;
    case PROTO_CMD_TRANSFER:
        return same_str(a->u.transfer.debit, b->u.transfer.debit) &&
               same_str(a->u.transfer.credit, b->u.transfer.credit) &&
               a->u.transfer.amount_micros == b->u.transfer.amount_micros &&
               a->u.transfer.kind == b->u.transfer.kind;
    case PROTO_CMD_GRANT_CREATE:
        return same_str(a->u.grant_create.parent, b->u.grant_create.parent) &&
               same_str(a->u.grant_create.workflow, b->u.grant_create.workflow) &&
               a->u.grant_create.amount_micros == b->u.grant_create.amount_micros &&
               a->u.grant_create.ttl_ms == b->u.grant_create.ttl_ms;
    case PROTO_CMD_GRANT_CLOSE:
        return a->u.grant_close.grant_id == b->u.grant_close.grant_id;
    case PROTO_CMD_ACCOUNT_FREEZE:
    case PROTO_CMD_ACCOUNT_UNFREEZE:
        return same_str(a->u.status.name, b->u.status.name) &&
               same_str(a->u.status.reason, b->u.status.reason);
    case PROTO_CMD_PERIOD_CLOSE:
        return same_str(a->u.period_close.month, b->u.period_close.month);
    case PROTO_CMD_ACCOUNT_UPDATE:
        return same_str(a->u.account.name, b->u.account.name) &&
               a->u.account.cap_micros == b->u.account.cap_micros &&
               a->u.account.period == b->u.account.period &&
               a->u.account.tz_offset_min == b->u.account.tz_offset_min &&
               a->u.account.has_tags == b->u.account.has_tags;
    default:
        return true;
    }
}

static void advance_key_lo(void)
{
    while (M.key_lo < M.key_count && M.keys[M.key_lo].created_ms <= M.now_ms - SAFE_AGE_MS)
        M.key_lo++;
}

static void advance_recent_lo(void)
{
    while (M.recent_lo < M.res_count && M.res[M.recent_lo].created_ms <= M.now_ms - SAFE_AGE_MS)
        M.recent_lo++;
}

/* A repeat of a young key: the same request (its stored answer) or, with
 * `differ`, another request under the same key (a conflict). */
static bool op_key_repeat(struct proto_cmd *c, struct expect *x, bool differ)
{
    if (M.key_lo >= M.key_count)
        return false;
    int k = M.key_lo + (int)rnd((uint64_t)(M.key_count - M.key_lo));
    *c = M.keys[k].cmd;
    if (!differ) {
        M.seen.key_repeats++;
        M.seen.key_repeats_in_batch += M.keys[k].pending >= 0;
        x->status = -1; /* taken from the stored answer */
        x->ref = REF_KEY;
        x->ref_idx = k;
        return true;
    }
    switch (c->type) {
    case PROTO_CMD_RESERVE: c->u.reserve.amount_micros += 1; break;
    case PROTO_CMD_COMMIT: c->u.commit.actual_micros += 1; break;
    case PROTO_CMD_TRANSFER: c->u.transfer.amount_micros += 1; break;
    case PROTO_CMD_GRANT_CREATE: c->u.grant_create.ttl_ms += 1; break;
    default: c->role = c->role == PROTO_ROLE_ADMIN ? PROTO_ROLE_AGENT : PROTO_ROLE_ADMIN;
    }
    assert_false(same_request(c, &M.keys[k].cmd));
    M.seen.key_conflicts++;
    x->status = PROTO_ERR_CONFLICT;
    return true;
}

/* Build one fresh command and predict it. */
static void op_fresh(struct proto_cmd *c, struct expect *x, int batch_idx)
{
    uint64_t r = rnd(1000);
    bool crowded = M.open_count > OPEN_RES_SOFT_MAX;
    if (r < 330 && !crowded)
        op_reserve(c, x, batch_idx);
    else if (r < 560)
        op_commit(c, x, batch_idx);
    else if (r < 660)
        op_release(c, x);
    else if (r < 720)
        op_expire(c, x);
    else if (r < 800)
        op_chargeback(c, x);
    else if (r < 840)
        op_adjustment(c, x);
    else if (r < 870 && M.grant_count < ACCOUNTS_MAX - 200 &&
             M.acct_count < ACCOUNTS_MAX - 100)
        op_grant_create(c, x, batch_idx);
    else if (r < 930)
        op_grant_close(c, x);
    else if (r < 967)
        op_freeze(c, x);
    else if (r < 975)
        op_update_cap(c, x);
    else if (r < 980)
        op_period_close(c, x);
    else
        op_expire(c, x);
}

static void op_any(struct proto_cmd *c, struct expect *x, int batch_idx)
{
    memset(c, 0, sizeof *c);
    memset(x, 0, sizeof *x);
    x->status = -1;
    uint64_t r = rnd(100);
    if (r < 6 && op_key_repeat(c, x, false))
        return;
    if (r >= 6 && r < 8 && op_key_repeat(c, x, true))
        return;
    op_fresh(c, x, batch_idx);
    if (rnd(100) < 30) {
        int k = M.key_count;
        M.keys = grow(M.keys, &M.key_cap, k + 1, sizeof *M.keys);
        c->key.ptr = M.key_str[k];
        c->key.len = (uint32_t)strlen(M.key_str[k]);
        M.keys[k].cmd = *c;
        M.keys[k].created_ms = M.now_ms;
        M.keys[k].pending = batch_idx;
        M.key_count++;
        x->new_key = k + 1;
    }
}

/* ---- describing and checking ---- */

static struct {
    uint64_t seed;
    long op_no;
    int entry_no;
} where;

static void describe(const struct proto_cmd *c, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s role=%s key=\"%.*s\" ", proto_cmd_type_name(c->type),
                     c->role == PROTO_ROLE_ADMIN ? "admin" : "agent", (int)c->key.len,
                     c->key.ptr ? c->key.ptr : "");
    if (n < 0 || (size_t)n >= cap)
        return;
    out += n;
    cap -= (size_t)n;
    switch (c->type) {
    case PROTO_CMD_RESERVE:
        snprintf(out, cap, "account=%.*s payee=%.*s amount=%" PRId64 " ttl=%" PRId64
                 " on_expire=%" PRId64, (int)c->u.reserve.account.len, c->u.reserve.account.ptr,
                 (int)c->u.reserve.payee.len, c->u.reserve.payee.ptr,
                 c->u.reserve.amount_micros, c->u.reserve.ttl_ms, c->u.reserve.on_expire);
        break;
    case PROTO_CMD_COMMIT:
        snprintf(out, cap, "id=%" PRIu64 " actual=%" PRId64, c->u.commit.reservation_id,
                 c->u.commit.actual_micros);
        break;
    case PROTO_CMD_RELEASE:
        snprintf(out, cap, "id=%" PRIu64, c->u.release.reservation_id);
        break;
    case PROTO_CMD_TRANSFER:
        snprintf(out, cap, "%s %.*s -> %.*s amount=%" PRId64,
                 proto_kind_name((int)c->u.transfer.kind), (int)c->u.transfer.debit.len,
                 c->u.transfer.debit.ptr, (int)c->u.transfer.credit.len,
                 c->u.transfer.credit.ptr, c->u.transfer.amount_micros);
        break;
    case PROTO_CMD_GRANT_CREATE:
        snprintf(out, cap, "parent=%.*s amount=%" PRId64 " ttl=%" PRId64,
                 (int)c->u.grant_create.parent.len, c->u.grant_create.parent.ptr,
                 c->u.grant_create.amount_micros, c->u.grant_create.ttl_ms);
        break;
    case PROTO_CMD_GRANT_CLOSE:
        snprintf(out, cap, "id=%" PRIu64, c->u.grant_close.grant_id);
        break;
    case PROTO_CMD_ACCOUNT_FREEZE:
    case PROTO_CMD_ACCOUNT_UNFREEZE:
        snprintf(out, cap, "name=%.*s", (int)c->u.status.name.len, c->u.status.name.ptr);
        break;
    case PROTO_CMD_PERIOD_CLOSE:
        snprintf(out, cap, "month=%.*s", (int)c->u.period_close.month.len,
                 c->u.period_close.month.ptr);
        break;
    case PROTO_CMD_ACCOUNT_UPDATE:
        snprintf(out, cap, "name=%.*s cap=%" PRId64, (int)c->u.account.name.len,
                 c->u.account.name.ptr, c->u.account.cap_micros);
        break;
    default:
        break;
    }
}

static void describe_result(const struct proto_result *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s id=%" PRIu64 " amount=%" PRId64 " remaining=%" PRId64
             " expires_at=%" PRId64 " transfer=%" PRIu64 " overrun=%" PRId64
             " returned=%" PRId64 " name=\"%s\" message=\"%s\"",
             proto_status_name(r->status), r->id, r->amount_micros, r->remaining_micros,
             r->expires_at_ms, r->transfer_id, r->overrun_micros, r->returned_micros,
             r->name, r->message);
}

static struct ledger *the_ledger;

/* The account a command acts on, for the dump on a mismatch. */
static struct proto_str subject_of(const struct proto_cmd *c)
{
    static char name[PROTO_NAME_MAX + 1];
    switch (c->type) {
    case PROTO_CMD_RESERVE: return c->u.reserve.account;
    case PROTO_CMD_TRANSFER: return c->u.transfer.debit;
    case PROTO_CMD_GRANT_CREATE: return c->u.grant_create.parent;
    case PROTO_CMD_COMMIT:
    case PROTO_CMD_RELEASE:
        for (int r = 0; r < M.res_count; r++) {
            uint64_t id = c->type == PROTO_CMD_COMMIT ? c->u.commit.reservation_id
                                                      : c->u.release.reservation_id;
            if (M.res[r].id == id) {
                snprintf(name, sizeof name, "%s", M.acct[M.res[r].account].name);
                return fx_s(name);
            }
        }
        return fx_s("");
    default: return fx_s("");
    }
}

/* Print the model's and the ledger's view of every account on the path of
 * the command's subject (the ledger's is after the whole entry). */
static void dump_path(const struct proto_cmd *c)
{
    struct proto_str s = subject_of(c);
    int x = -1;
    for (int i = 0; i < M.acct_count; i++)
        if (s.len && strlen(M.acct[i].name) == s.len && memcmp(M.acct[i].name, s.ptr, s.len) == 0)
            x = i;
    for (; x >= 0; x = M.acct[x].parent) {
        const struct m_account *a = &M.acct[x];
        struct ledger_account_view v;
        struct ledger_error err = {0};
        memset(&v, 0, sizeof v);
        ledger_account_get(the_ledger, a->name, &v, &err);
        print_error("  %-40s cap %" PRId64 " status %d grant %d/%d deadline %" PRId64
                    "\n    model  spent %" PRId64 " reserved %" PRId64 " excused %" PRId64
                    "\n    ledger spent %" PRId64 " reserved %" PRId64 " available %" PRId64 "\n",
                    a->name, a->cap_micros, a->status, a->is_grant, a->grant_open,
                    a->grant_deadline_ms, a->spent_micros, a->reserved_micros,
                    a->excused_micros, v.spent_micros, v.reserved_micros, v.available_micros);
    }
}

static void mismatch(const struct proto_cmd *c, const struct proto_result *got,
                     const char *what, int64_t want, int64_t have)
{
    char op[512], res[768];
    describe(c, op, sizeof op);
    describe_result(got, res, sizeof res);
    dump_path(c);
    fail_msg("PURSER_SEED=%" PRIu64 " op %ld (entry %d, now %" PRId64 "): %s\n"
             "  %s: expected %" PRId64 ", got %" PRId64 "\n  result: %s",
             where.seed, where.op_no, where.entry_no, M.now_ms, op, what, want, have, res);
}

static void check_eq(const struct proto_cmd *c, const struct proto_result *got,
                     const char *what, int64_t want, int64_t have)
{
    if (want != have)
        mismatch(c, got, what, want, have);
}

static const struct proto_result *batch_results;

/* How often each command type met each status: printed at the end so a
 * reader sees what the run covered. */
static long stats[PROTO_CMD_TYPE_COUNT][PROTO_STATUS_COUNT];

static void print_stats(void)
{
    for (int t = 1; t < PROTO_CMD_TYPE_COUNT; t++) {
        char line[512];
        int n = 0;
        for (int st = 0; st < PROTO_STATUS_COUNT; st++)
            if (stats[t][st] && n < (int)sizeof line - 40)
                n += snprintf(line + n, sizeof line - (size_t)n, " %s=%ld",
                              proto_status_name(st), stats[t][st]);
        if (n > 0)
            print_message("  %-16s%s\n", proto_cmd_type_name(t), line);
    }
}

static void check_full(const struct proto_cmd *c, const struct proto_result *got,
                       const struct proto_result *want)
{
    check_eq(c, got, "repeat status", want->status, got->status);
    check_eq(c, got, "repeat id", (int64_t)want->id, (int64_t)got->id);
    check_eq(c, got, "repeat amount", want->amount_micros, got->amount_micros);
    check_eq(c, got, "repeat remaining", want->remaining_micros, got->remaining_micros);
    check_eq(c, got, "repeat expires_at", want->expires_at_ms, got->expires_at_ms);
    check_eq(c, got, "repeat transfer_id", (int64_t)want->transfer_id, (int64_t)got->transfer_id);
    check_eq(c, got, "repeat overrun", want->overrun_micros, got->overrun_micros);
    check_eq(c, got, "repeat returned", want->returned_micros, got->returned_micros);
    if (strcmp(want->name, got->name) != 0 || strcmp(want->message, got->message) != 0)
        mismatch(c, got, "repeat name/message differ (first shown as 0)", 0, 1);
}

static void check_result(const struct proto_cmd *c, const struct expect *x,
                         const struct proto_result *got)
{
    if (x->ref == REF_KEY) {
        const struct m_key *k = &M.keys[x->ref_idx];
        check_full(c, got, k->pending >= 0 ? &batch_results[k->pending] : &k->res);
        return;
    }
    if (got->status != x->status) {
        char op[512], res[768];
        describe(c, op, sizeof op);
        describe_result(got, res, sizeof res);
        dump_path(c);
        fail_msg("PURSER_SEED=%" PRIu64 " op %ld (entry %d, now %" PRId64 "): %s\n"
                 "  status: expected %s, got %s\n  result: %s",
                 where.seed, where.op_no, where.entry_no, M.now_ms, op,
                 proto_status_name(x->status), proto_status_name(got->status), res);
    }
    if (x->check & X_AMOUNT)
        check_eq(c, got, "amount_micros", x->amount, got->amount_micros);
    if (x->check & X_REMAINING)
        check_eq(c, got, "remaining_micros", x->remaining, got->remaining_micros);
    if (x->check & X_EXPIRES)
        check_eq(c, got, "expires_at_ms", x->expires_at, got->expires_at_ms);
    if (x->check & X_OVERRUN)
        check_eq(c, got, "overrun_micros", x->overrun, got->overrun_micros);
    if (x->check & X_RETURNED)
        check_eq(c, got, "returned_micros", x->returned, got->returned_micros);
    if (x->check & X_ID)
        check_eq(c, got, "id", (int64_t)x->id, (int64_t)got->id);
    if (x->check & X_ID_NONZERO)
        check_eq(c, got, "id != 0", 1, got->id != 0);
    if (x->check & X_TRANSFER_NONZERO)
        check_eq(c, got, "transfer_id != 0", 1, got->transfer_id != 0);
    if (x->check & X_TRANSFER_ZERO)
        check_eq(c, got, "transfer_id", 0, (int64_t)got->transfer_id);
    if (x->check & X_ID_IS_TRANSFER) {
        check_eq(c, got, "transfer id != 0", 1, got->id != 0);
        check_eq(c, got, "transfer_id == id", (int64_t)got->id, (int64_t)got->transfer_id);
    }
    if ((x->check & X_NAME) && strcmp(x->name, got->name) != 0) {
        char op[512], res[768];
        describe(c, op, sizeof op);
        describe_result(got, res, sizeof res);
        dump_path(c);
        fail_msg("PURSER_SEED=%" PRIu64 " op %ld (entry %d): %s\n  name: expected \"%s\", "
                 "got \"%s\"\n  result: %s", where.seed, where.op_no, where.entry_no, op,
                 x->name, got->name, res);
    }
    if (x->ref == REF_COMMIT) {
        const struct m_res *res = &M.res[x->ref_idx];
        uint64_t tid = res->commit_pending >= 0 ? batch_results[res->commit_pending].transfer_id
                                                : res->commit_transfer_id;
        check_eq(c, got, "repeated commit transfer_id", (int64_t)tid, (int64_t)got->transfer_id);
    }
}

/* Record what only the ledger knows (ids) once the entry is applied. */
static void record_after(const struct expect *x, const struct proto_result *got)
{
    if (x->new_res) {
        struct m_res *r = &M.res[x->new_res - 1];
        r->id = got->id;
        r->pending = -1;
    }
    if (x->new_grant) {
        struct m_account *a = &M.acct[x->new_grant - 1];
        char want[PROTO_NAME_MAX + 32]; /* room for the suffix: the compiler checks */
        snprintf(want, sizeof want, "%s/grant-%" PRIu64, M.acct[a->parent].name, got->id);
        if (strcmp(want, got->name) != 0)
            fail_msg("PURSER_SEED=%" PRIu64 " op %ld: grant name \"%s\", expected \"%s\"",
                     where.seed, where.op_no, got->name, want);
        snprintf(a->name, sizeof a->name, "%.*s", (int)(sizeof a->name - 1), want);
        a->grant_id = got->id;
        a->grant_pending = -1;
    }
}

static void settle_pending(const struct proto_result *results)
{
    for (int k = M.key_count - 1; k >= 0 && M.keys[k].pending >= 0; k--) {
        M.keys[k].res = results[M.keys[k].pending];
        M.keys[k].pending = -1;
    }
    for (int k = 0; k < M.pending_commit_count; k++) {
        struct m_res *r = &M.res[M.pending_commit[k]];
        r->commit_transfer_id = results[r->commit_pending].transfer_id;
        r->commit_pending = -1;
    }
    M.pending_commit_count = 0;
}

static void compare_account(struct ledger *l, int i)
{
    const struct m_account *a = &M.acct[i];
    struct ledger_account_view v;
    struct ledger_error err = {0};
    memset(&v, 0, sizeof v);
    if (ledger_account_get(l, a->name, &v, &err) != 0)
        fail_msg("PURSER_SEED=%" PRIu64 " after op %ld: account %s: %s", where.seed,
                 where.op_no, a->name, err.message);
    struct {
        const char *what;
        int64_t want, have;
    } f[] = {
        {"spent_micros", a->spent_micros, v.spent_micros},
        {"reserved_micros", a->reserved_micros, v.reserved_micros},
        {"available_micros", m_available(i), v.available_micros},
        {"cap_micros", a->cap_micros, v.cap_micros},
        {"status", a->status, v.status},
        {"is_grant", a->is_grant, v.is_grant},
        {"period", a->period, v.period},
        {"period_end_ms", a->period_end_ms, v.period_end_ms},
        {"period_start_ms", a->period == PROTO_PERIOD_NONE ? 0 : a->period_start_ms,
         a->period == PROTO_PERIOD_NONE ? 0 : v.period_start_ms},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        if (f[k].want != f[k].have)
            fail_msg("PURSER_SEED=%" PRIu64 " after op %ld (entry %d, now %" PRId64 "): "
                     "account %s %s: model %" PRId64 ", ledger %" PRId64,
                     where.seed, where.op_no, where.entry_no, M.now_ms, a->name,
                     f[k].what, f[k].want, f[k].have);
    }
}

static void compare_accounts(struct ledger *l, bool all)
{
    for (int i = 0; i < M.acct_count; i++) {
        const struct m_account *a = &M.acct[i];
        bool live = !a->is_grant || a->grant_open || a->reserved_micros > 0 ||
                    a->touched_entry == M.entry_no;
        if (all || live)
            compare_account(l, i);
    }
}

/* Invariant 2, in the model: spent + reserved <= cap, apart from the
 * overruns and adjustments counted in the account's current period. */
static void check_model_invariant(void)
{
    for (int i = 0; i < M.acct_count; i++) {
        const struct m_account *a = &M.acct[i];
        if (a->cap_micros == PROTO_CAP_NONE)
            continue;
        if (a->spent_micros + a->reserved_micros > a->cap_micros + a->excused_micros)
            fail_msg("PURSER_SEED=%" PRIu64 " after op %ld: model invariant: %s spent %" PRId64
                     " + reserved %" PRId64 " > cap %" PRId64 " + excused %" PRId64,
                     where.seed, where.op_no, a->name, a->spent_micros,
                     a->reserved_micros, a->cap_micros, a->excused_micros);
    }
}

/* The incremental spent used for predictions inside an entry must equal the
 * brute-force one (a check on the model itself). */
static void check_model_spent(void)
{
    static int64_t inc[ACCOUNTS_MAX];
    for (int i = 0; i < M.acct_count; i++)
        inc[i] = M.acct[i].spent_micros;
    m_recompute_spent();
    m_recompute_reserved();
    for (int i = 0; i < M.acct_count; i++)
        if (inc[i] != M.acct[i].spent_micros)
            fail_msg("model self-check: %s incremental spent %" PRId64 " != %" PRId64,
                     M.acct[i].name, inc[i], M.acct[i].spent_micros);
}

static void on_violation(void *arg, const char *message)
{
    (*(int *)arg)++;
    print_error("violation: %s\n", message);
}

static void verify(struct ledger *l)
{
    int seen = 0;
    struct ledger_error err = {0};
    int n = ledger_verify(l, on_violation, &seen, &err);
    if (n != 0)
        fail_msg("PURSER_SEED=%" PRIu64 " after op %ld: verify: %d violation(s) %s",
                 where.seed, where.op_no, n, err.message);
}

/* ---- setup: a random tree ---- */

static int random_tz(void)
{
    uint64_t r = rnd(10);
    if (r < 4)
        return 0;
    if (r < 7)
        return (int)rnd_range(-14, 14) * 60;
    if (r < 9)
        return (int)rnd_range(-56, 56) * 15;
    return (int)rnd_range(-PROTO_TZ_MAX_MIN, PROTO_TZ_MAX_MIN);
}

static void build_tree(struct fx *f, struct fx *replica)
{
    int total = (int)rnd_range(30, 60);
    for (int i = 0; i < total; i++) {
        char name[PROTO_NAME_MAX + 32];
        int parent = -1;
        if (i < 3) {
            snprintf(name, sizeof name, "t%d", i);
        } else {
            do
                parent = M.tree_idx[rnd((uint64_t)M.tree_count)];
            while (M.acct[parent].depth >= 5);
            snprintf(name, sizeof name, "%s/a%d", M.acct[parent].name, i);
        }
        bool capped = rnd(10) < (i < 3 ? 5 : 6);
        int period = (int)rnd(4);
        int64_t cap = PROTO_CAP_NONE;
        if (capped) {
            cap = i < 3 ? rnd_range(2000 * USD, 20000 * USD) : rnd_range(50 * USD, 3000 * USD);
            if (period == PROTO_PERIOD_NONE)
                cap *= 4;
        }
        int tz = period == PROTO_PERIOD_NONE ? 0 : random_tz();
        int idx = m_add_account(name, parent, cap, period, tz);
        M.acct[idx].is_tree = true;
        M.tree_idx[M.tree_count++] = idx;
        struct proto_cmd c = fx_account_create(M.acct[idx].name, cap, period, tz);
        fx_expect_ok(f, &c);
        fx_expect_ok(replica, &c);
    }
    const char *vendors[3] = {"vendor", "vendor/openai", "vendor/anthropic"};
    int vendor_root = -1;
    for (int i = 0; i < 3; i++) {
        int idx = m_add_account(vendors[i], vendor_root, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
        M.acct[idx].is_vendor = true;
        if (i == 0)
            vendor_root = idx;
        struct proto_cmd c = fx_account_create(vendors[i], PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
        fx_expect_ok(f, &c);
        fx_expect_ok(replica, &c);
    }
    M.vendor_openai = vendor_root + 1;
    M.vendor_anthropic = vendor_root + 2;
}

/* ---- the run ---- */

static int64_t next_timestamp(void)
{
    uint64_t r = rnd(100);
    if (r < 65)
        return M.now_ms + rnd_range(0, 90 * SECOND_MS);
    if (r < 88)
        return M.now_ms + rnd_range(0, 2 * HOUR_MS);
    if (r < 92) {
        /* right before or after the next period boundary of any account
         * (mostly), or of one account (a day, week or month away) */
        int64_t next = INT64_MAX;
        bool nearest = rnd(4) != 0;
        for (int k = 0; k < M.tree_count; k++) {
            const struct m_account *a = &M.acct[nearest ? M.tree_idx[k] : pick_tree()];
            if (a->period != PROTO_PERIOD_NONE && a->period_end_ms < next)
                next = a->period_end_ms;
            if (!nearest && next != INT64_MAX)
                break;
        }
        if (next == INT64_MAX)
            next = M.now_ms + DAY_MS;
        return next + rnd_range(-2 * SECOND_MS, 2 * SECOND_MS);
    }
    if (r < 93)
        return M.now_ms + rnd_range(DAY_MS, 3 * DAY_MS);
    if (r < 98)
        return M.now_ms - rnd_range(0, MINUTE_MS); /* late stamp: now stays */
    return M.now_ms;
}

static void assert_same_state(struct fx *a, struct fx *b, const char *what)
{
    uint8_t ha[32], hb[32];
    fx_state_hash(a, ha);
    fx_state_hash(b, hb);
    if (!fx_hash_equal(ha, hb))
        fail_msg("PURSER_SEED=%" PRIu64 " after op %ld (entry %d): state hash differs: %s",
                 where.seed, where.op_no, where.entry_no, what);
}

/* Replace the primary by a fresh ledger restored from its snapshot. */
static void swap_in_restored(struct fx *f)
{
    struct fx g;
    void *data = NULL;
    size_t len = 0;
    struct ledger_error err = {0};
    if (ledger_snapshot(f->l, NULL, &data, &len, &err) != 0)
        fail_msg("snapshot: %s", err.message);
    fx_open(&g);
    if (ledger_restore(g.l, data, len, &err) != 0)
        fail_msg("restore: %s", err.message);
    free(data);
    assert_same_state(f, &g, "restored snapshot vs its source");
    assert_int_equal(ledger_now_ms(g.l), ledger_now_ms(f->l));
    fx_close(f);
    f->l = g.l;
    the_ledger = f->l;
}

static void free_model(void)
{
    free(M.res);
    free(M.open);
    free(M.post);
    free(M.keys);
    free(M.key_str);
}

static void run(uint64_t seed, long ops)
{
    struct fx f, replica;
    memset(&M, 0, sizeof M);
    memset(stats, 0, sizeof stats);
    rng_state = seed;
    where.seed = seed;
    fx_open(&f);
    fx_open(&replica);
    f.now_ms = FX_MON;
    replica.now_ms = FX_MON;
    M.now_ms = FX_MON;
    M.key_str = calloc((size_t)ops + 64, sizeof *M.key_str);
    assert_non_null(M.key_str);
    for (long k = 0; k < ops + 64; k++)
        snprintf(M.key_str[k], sizeof M.key_str[k], "k%ld", k);
    the_ledger = f.l;
    build_tree(&f, &replica);
    m_recompute_spent();
    m_recompute_reserved();
    compare_accounts(f.l, true);

    struct proto_cmd cmds[BATCH_MAX];
    struct expect xs[BATCH_MAX];
    struct proto_result results[BATCH_MAX], replica_results[BATCH_MAX];
    long done = 0, next_verify = VERIFY_EVERY_OPS, next_restore = RESTORE_EVERY_OPS;
    while (done < ops) {
        int n = (int)rnd_range(1, BATCH_MAX);
        if (n > ops - done)
            n = (int)(ops - done);
        int64_t ts = next_timestamp();
        if (ts > M.now_ms)
            M.now_ms = ts;
        M.entry_no++;
        where.entry_no = M.entry_no;
        m_recompute_spent();
        m_recompute_reserved();
        advance_key_lo();
        advance_recent_lo();
        for (int j = 0; j < n; j++)
            op_any(&cmds[j], &xs[j], j);

        struct proto_entry e = {.timestamp_ms = ts, .cmd_count = (uint32_t)n, .cmds = cmds};
        struct ledger_error err = {0};
        memset(results, 0, sizeof results);
        int rc = ledger_apply(f.l, &e, results, &err);
        if (rc != 0)
            fail_msg("PURSER_SEED=%" PRIu64 " entry %d: ledger_apply hard error %d: %s",
                     seed, M.entry_no, rc, err.message);
        memset(replica_results, 0, sizeof replica_results);
        if (ledger_apply(replica.l, &e, replica_results, &err) != 0)
            fail_msg("replica: ledger_apply hard error: %s", err.message);
        if (ledger_now_ms(f.l) != M.now_ms)
            fail_msg("PURSER_SEED=%" PRIu64 " entry %d: ledger now %" PRId64 ", model %" PRId64,
                     seed, M.entry_no, ledger_now_ms(f.l), M.now_ms);
        batch_results = results;
        for (int j = 0; j < n; j++) {
            where.op_no = done + j + 1;
            check_result(&cmds[j], &xs[j], &results[j]);
            check_full(&cmds[j], &replica_results[j], &results[j]);
            if (results[j].status >= 0 && results[j].status < PROTO_STATUS_COUNT)
                stats[cmds[j].type][results[j].status]++;
            record_after(&xs[j], &results[j]);
        }
        settle_pending(results);
        done += n;
        where.op_no = done;

        check_model_spent();
        check_model_invariant();
        bool checkpoint = done >= next_verify || done == ops;
        compare_accounts(f.l, checkpoint);
        if (checkpoint) {
            verify(f.l);
            assert_same_state(&f, &replica, "replica that applied the same entries");
            next_verify += VERIFY_EVERY_OPS;
        }
        if (done >= next_restore) {
            swap_in_restored(&f);
            next_restore += RESTORE_EVERY_OPS;
        }
    }
    print_message("property: %ld ops in %d entries, %d accounts, %d postings, "
                  "%d reservations, %d keys, now %" PRId64 "\n", done, M.entry_no,
                  M.acct_count, M.post_count, M.res_count, M.key_count, M.now_ms);
    print_stats();
    fx_close(&replica);
    print_message("  late commits %ld, overruns %ld, zero commits %ld, expired %ld, charged %ld,"
                  " nested grants %ld\n  key repeats %ld (%ld in the same entry), key conflicts"
                  " %ld, period rolls %ld\n", M.seen.late_commits, M.seen.overruns,
                  M.seen.zero_commits, M.seen.expired, M.seen.charged, M.seen.nested_grants,
                  M.seen.key_repeats, M.seen.key_repeats_in_batch, M.seen.key_conflicts,
                  M.seen.period_rolls);
    fx_close(&f);
    free_model();
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    return strtoull(s, NULL, 0);
}

static void test_random_operations_match_the_reference_model(void **state)
{
    (void)state;
    uint64_t seed = env_u64("PURSER_SEED", DEFAULT_SEED);
    long ops = (long)env_u64("PURSER_PROPERTY_OPS", DEFAULT_OPS);
    print_message("property: PURSER_SEED=%" PRIu64 " PURSER_PROPERTY_OPS=%ld\n", seed, ops);
    run(seed, ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations_match_the_reference_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
