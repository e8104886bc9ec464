/*
 * verify.c — recompute everything the ledger caches and check DESIGN.md's
 * invariants.  Slow on purpose (one pass over the whole journal): it is the
 * independent second opinion behind `purserctl cluster verify` and the tests.
 *
 *   1. conservation: every posting moves a positive amount between two
 *      different existing accounts, and the per-account nets sum to zero;
 *   2. no overspend: spent + reserved <= cap for every capped account, less
 *      the overruns and adjustments recorded in its current window;
 *   3. roll-ups: each account's cached spent and reserved equal the sums
 *      recomputed from the journal, the open reservations and the grants;
 * plus the journal's chain hash and dense ids, the reservation store's shape
 * (ids in order, every open one waiting to expire), and the alerting state's
 * own invariants (watch_verify).
 */
#include <stdarg.h>
#include <stdlib.h>

#include "ledger/internal.h"

struct verify {
    struct ledger *l;
    ledger_violation_cb cb;
    void *arg;
    int count;
    int64_t *spent;    /* recomputed outflow in the current window */
    int64_t *excess;   /* overruns + adjustments in the window */
    int64_t *reserved; /* recomputed holds */
    __int128 *net;     /* credits - debits, all time */
    int64_t *start, *end; /* effective current windows */
    uint64_t last_reservation; /* id order of the reservation store */
    uint64_t open_reservations;
};

__attribute__((format(printf, 2, 3)))
static void verify_report(struct verify *v, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->count++;
    if (v->cb)
        v->cb(v->arg, msg);
}

static int verify_journal(struct verify *v, struct ledger_error *err)
{
    struct ledger *l = v->l;
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT id, ts, kind, debit, credit, amount, reservation, overrun, metadata"
                    " FROM journal ORDER BY id";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "verify journal");
    uint64_t chain = 0, expect_id = 1;
    int64_t prev_ts = INT64_MIN;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);
        int64_t ts = sqlite3_column_int64(s, 1);
        int kind = sqlite3_column_int(s, 2);
        int64_t debit = sqlite3_column_int64(s, 3), credit = sqlite3_column_int64(s, 4);
        int64_t amount = sqlite3_column_int64(s, 5), overrun = sqlite3_column_int64(s, 7);
        uint64_t res_id = (uint64_t)sqlite3_column_int64(s, 6);
        const void *meta = sqlite3_column_blob(s, 8);
        size_t meta_len = (size_t)sqlite3_column_bytes(s, 8);
        chain = journal_chain_step(chain, id, ts, kind, debit, credit, amount, res_id, overrun,
                                   meta, meta_len);
        if (id != expect_id)
            verify_report(v, "journal: posting %llu follows %llu (ids must be dense)",
                          (unsigned long long)id, (unsigned long long)(expect_id - 1));
        expect_id = id + 1;
        if (ts < prev_ts)
            verify_report(v, "journal: posting %llu goes back in time", (unsigned long long)id);
        prev_ts = ts;
        if (amount <= 0 || debit == credit || debit < 1 || credit < 1 ||
            (uint64_t)debit > l->acct_count || (uint64_t)credit > l->acct_count) {
            verify_report(v, "conservation: posting %llu is malformed (amount %lld, debit %lld,"
                          " credit %lld)", (unsigned long long)id, (long long)amount,
                          (long long)debit, (long long)credit);
            continue;
        }
        v->net[debit - 1] -= amount;
        v->net[credit - 1] += amount;
        int64_t extra = overrun + (kind == PROTO_KIND_ADJUSTMENT ? amount : 0);
        for (int32_t a = (int32_t)debit - 1; a >= 0; a = l->accts[a].parent) {
            if (tree_is_ancestor_or_self(l, a, (int32_t)credit - 1))
                break;
            if (ts >= v->start[a] && ts < v->end[a]) {
                v->spent[a] += amount;
                v->excess[a] += extra;
            }
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "verify journal");
    if (expect_id != l->next_transfer_id)
        verify_report(v, "journal: %llu postings but the next id is %llu",
                      (unsigned long long)(expect_id - 1),
                      (unsigned long long)l->next_transfer_id);
    if (chain != l->journal_chain)
        verify_report(v, "journal: chain hash %016llx differs from the stored %016llx",
                      (unsigned long long)chain, (unsigned long long)l->journal_chain);
    return 0;
}

/* Sums each open hold on its account, and checks the store's own shape. */
static void verify_reservation(void *arg, const struct resv *r)
{
    struct verify *v = arg;
    struct ledger *l = v->l;
    if (r->id <= v->last_reservation || r->id >= l->next_reservation_id)
        verify_report(v, "reservation %llu: id out of order or not yet issued",
                      (unsigned long long)r->id);
    v->last_reservation = r->id;
    if (r->account < 0 || (uint32_t)r->account >= l->acct_count) {
        verify_report(v, "reservation on unknown account %lld", (long long)r->account + 1);
        return;
    }
    if (r->status == LEDGER_RES_OPEN) {
        v->open_reservations++;
        v->reserved[r->account] += r->amount_micros;
    }
}

static int verify_reserved(struct verify *v, struct ledger_error *err)
{
    (void)err;
    struct ledger *l = v->l;
    resv_each(l, verify_reservation, v);
    if (v->open_reservations != l->resv.heap_count)
        verify_report(v, "reservations: %llu open but %u waiting to expire",
                      (unsigned long long)v->open_reservations, l->resv.heap_count);
    /* Children have larger ids than parents: fold each into its parent. */
    for (int32_t i = (int32_t)l->acct_count - 1; i >= 0; i--) {
        const struct acct *a = &l->accts[i];
        if (a->parent >= 0)
            v->reserved[a->parent] += tree_contrib(a, v->spent[i], v->reserved[i]);
    }
    return 0;
}

static void verify_accounts(struct verify *v)
{
    struct ledger *l = v->l;
    __int128 total = 0;
    for (uint32_t i = 0; i < l->acct_count; i++) {
        const struct acct *a = &l->accts[i];
        total += v->net[i];
        int64_t spent = tree_spent_at(a, l->now_ms);
        if (spent != v->spent[i])
            verify_report(v, "roll-up: account \"%s\" spent %lld but its journal sums to %lld",
                          a->name, (long long)spent, (long long)v->spent[i]);
        if (a->reserved_micros != v->reserved[i])
            verify_report(v, "roll-up: account \"%s\" reserved %lld but its holds sum to %lld",
                          a->name, (long long)a->reserved_micros, (long long)v->reserved[i]);
        if (a->cap_micros >= 0 && v->spent[i] + v->reserved[i] - v->excess[i] > a->cap_micros)
            verify_report(v, "overspend: account \"%s\" has spent %lld + reserved %lld over its"
                          " cap %lld beyond the %lld of recorded overruns and adjustments",
                          a->name, (long long)v->spent[i], (long long)v->reserved[i],
                          (long long)a->cap_micros, (long long)v->excess[i]);
    }
    if (total != 0)
        verify_report(v, "conservation: account nets sum to %lld, not 0", (long long)total);
}

int ledger_verify(struct ledger *l, ledger_violation_cb cb, void *arg, struct ledger_error *err)
{
    struct ledger_error dummy;
    if (!err)
        err = &dummy;
    struct verify v = {.l = l, .cb = cb, .arg = arg};
    size_t n = l->acct_count ? l->acct_count : 1;
    v.spent = calloc(n, sizeof *v.spent);
    v.excess = calloc(n, sizeof *v.excess);
    v.reserved = calloc(n, sizeof *v.reserved);
    v.net = calloc(n, sizeof *v.net);
    v.start = calloc(n, sizeof *v.start);
    v.end = calloc(n, sizeof *v.end);
    int rc = 0;
    if (!v.spent || !v.excess || !v.reserved || !v.net || !v.start || !v.end) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        rc = -LEDGER_ENOMEM;
    } else {
        for (uint32_t i = 0; i < l->acct_count; i++) {
            const struct acct *a = &l->accts[i];
            v.start[i] = a->period_start_ms;
            v.end[i] = a->period_end_ms;
            if (l->now_ms >= a->period_end_ms)
                period_window(a->period, a->tz_offset_min, l->now_ms, &v.start[i], &v.end[i]);
        }
        rc = verify_journal(&v, err);
        if (rc == 0)
            rc = verify_reserved(&v, err);
        if (rc == 0)
            verify_accounts(&v);
        if (rc == 0)
            rc = watch_verify(l, cb, arg, &v.count, err); /* alerting (watch_store.c) */
        rc = rc ? -rc : v.count;
    }
    free(v.spent);
    free(v.excess);
    free(v.reserved);
    free(v.net);
    free(v.start);
    free(v.end);
    return rc;
}
