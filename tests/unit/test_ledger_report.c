/*
 * test_ledger_report.c — month-end reports (ledger.h "reports", ledger/report.c):
 * exact sums per kind, the chargeback matrix by account and by cost_center,
 * spend grouped by metadata keys, a trial balance that nets to zero, the
 * month's UTC bounds, deterministic order, paging by offset, and refusals.
 */
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
#define NOV_2025 1761955200000LL /* 2025-11-01T00:00:00.000Z */
#define DEC_2025 1764547200000LL /* 2025-12-01T00:00:00.000Z */
#define ROWS_MAX 64

/* A copy of one report row (the ledger's strings die with the callback). */
struct row {
    int view;
    bool is_total;
    char debit[PROTO_NAME_MAX + 1];
    char credit[PROTO_NAME_MAX + 1];
    char debit_cc[PROTO_MAP_VALUE_MAX + 1];
    char credit_cc[PROTO_MAP_VALUE_MAX + 1];
    uint32_t group_count;
    char group[LEDGER_REPORT_GROUP_MAX][PROTO_MAP_VALUE_MAX + 1];
    uint64_t count;
    int64_t amount, overrun, debits, credits, net;
    uint64_t id;
    int64_t ts_ms;
    int kind;
    uint32_t meta_len;
};

struct rows {
    int n;
    int stop_after; /* 0: never */
    struct row r[ROWS_MAX];
};

static int rows_cb(void *arg, const struct ledger_report_row *p)
{
    struct rows *rs = arg;
    assert_true(rs->n < ROWS_MAX);
    struct row *r = &rs->r[rs->n++];
    memset(r, 0, sizeof *r);
    r->view = p->view;
    r->is_total = p->is_total;
    snprintf(r->debit, sizeof r->debit, "%s", p->debit);
    snprintf(r->credit, sizeof r->credit, "%s", p->credit);
    snprintf(r->debit_cc, sizeof r->debit_cc, "%s", p->debit_cost_center);
    snprintf(r->credit_cc, sizeof r->credit_cc, "%s", p->credit_cost_center);
    r->group_count = p->group_count;
    for (uint32_t j = 0; j < p->group_count; j++)
        snprintf(r->group[j], sizeof r->group[j], "%s", p->group[j]);
    r->count = p->posting_count;
    r->amount = p->amount_micros;
    r->overrun = p->overrun_micros;
    r->debits = p->debit_micros;
    r->credits = p->credit_micros;
    r->net = p->net_micros;
    r->id = p->id;
    r->ts_ms = p->ts_ms;
    r->kind = p->kind;
    r->meta_len = p->metadata_len;
    return rs->stop_after > 0 && rs->n >= rs->stop_after;
}

static struct rows *report(struct fx *f, int kind, int year, int month, const char *const *keys,
                           uint32_t kc)
{
    static struct rows rs;
    memset(&rs, 0, sizeof rs);
    struct ledger_error err = {0};
    int rc = ledger_report(f->l, kind, year, month, keys, kc, rows_cb, &rs, &err);
    if (rc != 0)
        fail_msg("report %d %04d-%02d: %s", kind, year, month, err.message);
    return &rs;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = NOV_2025 + FX_DAY_MS;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_close(f);
    free(f);
    return 0;
}

static void create_tagged(struct fx *f, const char *name, const char *cost_center)
{
    struct proto_cmd c = fx_account_create(name, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    if (cost_center)
        fx_meta_add(&c, "cost_center", cost_center);
    fx_meta_add(&c, "owner", "finance, \"ops\"");
    fx_expect_ok(f, &c);
}

static void chargeback(struct fx *f, const char *debit, const char *credit, int64_t amount)
{
    struct proto_cmd c = fx_transfer(debit, credit, amount, PROTO_KIND_CHARGEBACK);
    fx_meta_add(&c, "ticket_id", "T-1");
    fx_expect_ok(f, &c);
}

/* Reserve and commit `amount` on account, with up to two metadata pairs. */
static void spend(struct fx *f, const char *account, int64_t amount, const char *k1,
                  const char *v1, const char *k2, const char *v2)
{
    uint64_t id = fx_reserve_ok(f, account, amount);
    struct proto_cmd c = fx_commit(id, amount);
    if (k1)
        fx_meta_add(&c, k1, v1);
    if (k2)
        fx_meta_add(&c, k2, v2);
    fx_expect_ok(f, &c);
}

/* corp, corp/a (CC-1), corp/b (CC-2), corp/c (CC-1), corp/d (no cost_center). */
static void org(struct fx *f)
{
    create_tagged(f, "corp", NULL);
    create_tagged(f, "corp/a", "CC-1");
    create_tagged(f, "corp/b", "CC-2");
    create_tagged(f, "corp/c", "CC-1");
    create_tagged(f, "corp/d", NULL);
}

static void assert_pair(const struct row *r, const char *debit, const char *credit,
                        uint64_t count, int64_t amount)
{
    assert_false(r->is_total);
    assert_string_equal(r->debit, debit);
    assert_string_equal(r->credit, credit);
    assert_int_equal(r->count, count);
    assert_int_equal(r->amount, amount);
}

static void test_report_chargeback_sums_account_pairs(void **state)
{
    struct fx *f = *state;
    org(f);
    chargeback(f, "corp/a", "corp/b", 1500000);
    chargeback(f, "corp/c", "corp/b", 2 * USD);
    chargeback(f, "corp/a", "corp/b", 1500000);
    chargeback(f, "corp/d", "corp/a", 1);
    chargeback(f, "corp/a", "corp/d", 250000);
    spend(f, "corp/a", 7 * USD, NULL, NULL, NULL, NULL); /* not a chargeback */
    struct rows *rs = report(f, LEDGER_REPORT_CHARGEBACK, 2025, 11, NULL, 0);
    assert_int_equal(rs->n, 9);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rs->r[i].view, LEDGER_REPORT_VIEW_ACCOUNT);
    assert_pair(&rs->r[0], "corp/a", "corp/b", 2, 3 * USD);
    assert_string_equal(rs->r[0].debit_cc, "CC-1");
    assert_string_equal(rs->r[0].credit_cc, "CC-2");
    assert_pair(&rs->r[1], "corp/a", "corp/d", 1, 250000);
    assert_string_equal(rs->r[1].credit_cc, "");
    assert_pair(&rs->r[2], "corp/c", "corp/b", 1, 2 * USD);
    assert_pair(&rs->r[3], "corp/d", "corp/a", 1, 1);
    assert_true(rs->r[4].is_total);
    assert_int_equal(rs->r[4].count, 5);
    assert_int_equal(rs->r[4].amount, 5250001);
}

static void test_report_chargeback_by_cost_center(void **state)
{
    struct fx *f = *state;
    org(f);
    chargeback(f, "corp/a", "corp/b", 3 * USD);
    chargeback(f, "corp/c", "corp/b", 2 * USD);
    chargeback(f, "corp/d", "corp/a", 1);
    chargeback(f, "corp/a", "corp/d", 250000);
    chargeback(f, "corp/a", "corp/c", 10); /* CC-1 to CC-1: still a row */
    struct rows *rs = report(f, LEDGER_REPORT_CHARGEBACK, 2025, 11, NULL, 0);
    int cc = 0;
    while (rs->r[cc].view == LEDGER_REPORT_VIEW_ACCOUNT)
        cc++;
    assert_int_equal(rs->n - cc, 5);
    const struct row *r = &rs->r[cc];
    /* Sorted by debtor cost center, then creditor; "" (no tag) first. */
    assert_string_equal(r[0].debit_cc, "");
    assert_string_equal(r[0].credit_cc, "CC-1");
    assert_int_equal(r[0].amount, 1);
    assert_string_equal(r[1].debit_cc, "CC-1");
    assert_string_equal(r[1].credit_cc, "");
    assert_int_equal(r[1].amount, 250000);
    assert_string_equal(r[2].debit_cc, "CC-1");
    assert_string_equal(r[2].credit_cc, "CC-1");
    assert_int_equal(r[2].amount, 10);
    assert_string_equal(r[3].debit_cc, "CC-1");
    assert_string_equal(r[3].credit_cc, "CC-2");
    assert_int_equal(r[3].count, 2);
    assert_int_equal(r[3].amount, 5 * USD);
    assert_string_equal(r[3].debit, ""); /* no account names in this view */
    assert_true(r[4].is_total);
    assert_int_equal(r[4].view, LEDGER_REPORT_VIEW_COST_CENTER);
    assert_int_equal(r[4].amount, 5250011);
    assert_int_equal(r[4].amount, rs->r[cc - 1].amount); /* both views sum alike */
}

static void test_report_spend_groups_by_several_keys(void **state)
{
    struct fx *f = *state;
    org(f);
    spend(f, "corp/a", 100, "team", "red", "model", "gpt-4o");
    spend(f, "corp/a", 200, "model", "gpt-4o", "team", "red"); /* key order is irrelevant */
    spend(f, "corp/a", 300, "team", "red", "model", "o3");
    spend(f, "corp/b", 400, "team", "blue", NULL, NULL); /* no model: "" */
    spend(f, "corp/a", 500, NULL, NULL, NULL, NULL);     /* neither */
    chargeback(f, "corp/a", "corp/b", 999);               /* not spend */
    static const char *const keys[] = {"team", "model"};
    struct rows *rs = report(f, LEDGER_REPORT_SPEND, 2025, 11, keys, 2);
    assert_int_equal(rs->n, 5);
    const struct row *r = rs->r;
    assert_int_equal(r[0].group_count, 2);
    assert_string_equal(r[0].group[0], "");
    assert_string_equal(r[0].group[1], "");
    assert_pair(&r[0], "corp/a", "vendor/openai", 1, 500);
    assert_string_equal(r[1].group[0], "blue");
    assert_string_equal(r[1].group[1], "");
    assert_pair(&r[1], "corp/b", "vendor/openai", 1, 400);
    assert_string_equal(r[2].group[0], "red");
    assert_string_equal(r[2].group[1], "gpt-4o");
    assert_pair(&r[2], "corp/a", "vendor/openai", 2, 300);
    assert_string_equal(r[3].group[1], "o3");
    assert_int_equal(r[3].amount, 300);
    assert_true(r[4].is_total);
    assert_int_equal(r[4].count, 5);
    assert_int_equal(r[4].amount, 1500);
    assert_int_equal(r[4].group_count, 2);
}

static void test_report_spend_without_keys_groups_by_account_and_payee(void **state)
{
    struct fx *f = *state;
    org(f);
    spend(f, "corp/b", 7, "team", "x", NULL, NULL);
    spend(f, "corp/a", 5, "team", "y", NULL, NULL);
    spend(f, "corp/a", 6, NULL, NULL, NULL, NULL);
    struct rows *rs = report(f, LEDGER_REPORT_SPEND, 2025, 11, NULL, 0);
    assert_int_equal(rs->n, 3);
    assert_pair(&rs->r[0], "corp/a", "vendor/openai", 2, 11);
    assert_pair(&rs->r[1], "corp/b", "vendor/openai", 1, 7);
    assert_int_equal(rs->r[2].amount, 18);
}

static void test_report_spend_sums_overruns(void **state)
{
    struct fx *f = *state;
    org(f);
    uint64_t id = fx_reserve_ok(f, "corp/a", 100);
    struct proto_cmd c = fx_commit(id, 130);
    fx_expect_ok(f, &c);
    struct rows *rs = report(f, LEDGER_REPORT_SPEND, 2025, 11, NULL, 0);
    assert_int_equal(rs->r[0].amount, 130);
    assert_int_equal(rs->r[0].overrun, 30);
    assert_int_equal(rs->r[1].overrun, 30);
}

static void test_report_trial_balance_nets_to_zero(void **state)
{
    struct fx *f = *state;
    org(f);
    chargeback(f, "corp/a", "corp/b", 3 * USD);
    chargeback(f, "corp/b", "corp/c", 1 * USD);
    spend(f, "corp/c", 250000, NULL, NULL, NULL, NULL);
    struct proto_cmd adj = fx_admin(fx_transfer("corp/d", "corp/a", 42, PROTO_KIND_ADJUSTMENT));
    fx_expect_ok(f, &adj);
    struct rows *rs = report(f, LEDGER_REPORT_TRIAL_BALANCE, 2025, 11, NULL, 0);
    assert_int_equal(rs->n, 6); /* a, b, c, d, vendor/openai, total */
    static const char *const names[] = {"corp/a", "corp/b", "corp/c", "corp/d",
                                        "vendor/openai"};
    static const int64_t debits[] = {3 * USD, 1 * USD, 250000, 42, 0};
    static const int64_t credits[] = {42, 3 * USD, 1 * USD, 0, 250000};
    int64_t net = 0;
    for (int i = 0; i < 5; i++) {
        assert_string_equal(rs->r[i].debit, names[i]);
        assert_int_equal(rs->r[i].debits, debits[i]);
        assert_int_equal(rs->r[i].credits, credits[i]);
        assert_int_equal(rs->r[i].net, credits[i] - debits[i]);
        net += rs->r[i].net;
    }
    assert_int_equal(net, 0);
    const struct row *t = &rs->r[5];
    assert_true(t->is_total);
    assert_int_equal(t->debits, 4 * USD + 250042);
    assert_int_equal(t->credits, t->debits);
    assert_int_equal(t->net, 0);
}

static void test_report_transfers_lists_raw_rows(void **state)
{
    struct fx *f = *state;
    org(f);
    chargeback(f, "corp/a", "corp/b", 10);
    f->now_ms += 1000;
    spend(f, "corp/c", 20, "model", "gpt-4o", NULL, NULL);
    struct rows *rs = report(f, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0);
    assert_int_equal(rs->n, 3);
    assert_int_equal(rs->r[0].kind, PROTO_KIND_CHARGEBACK);
    assert_string_equal(rs->r[0].debit, "corp/a");
    assert_int_equal(rs->r[0].amount, 10);
    assert_int_equal(rs->r[0].ts_ms, NOV_2025 + FX_DAY_MS);
    assert_true(rs->r[0].meta_len > 0);
    assert_int_equal(rs->r[1].kind, PROTO_KIND_SPEND);
    assert_string_equal(rs->r[1].credit, "vendor/openai");
    assert_true(rs->r[1].id > rs->r[0].id);
    assert_true(rs->r[1].meta_len > 0);
    assert_true(rs->r[2].is_total);
    assert_int_equal(rs->r[2].count, 2);
    assert_int_equal(rs->r[2].amount, 30);
}

static void test_report_month_is_utc_first_day_to_next_first_day(void **state)
{
    struct fx *f = *state;
    f->now_ms = NOV_2025 - 86400000LL;
    org(f);
    f->now_ms = NOV_2025 - 1; /* 2025-10-31T23:59:59.999Z */
    chargeback(f, "corp/a", "corp/b", 1);
    f->now_ms = NOV_2025; /* 2025-11-01T00:00:00.000Z */
    chargeback(f, "corp/a", "corp/b", 10);
    f->now_ms = DEC_2025 - 1; /* 2025-11-30T23:59:59.999Z */
    chargeback(f, "corp/a", "corp/b", 100);
    f->now_ms = DEC_2025; /* 2025-12-01T00:00:00.000Z */
    chargeback(f, "corp/a", "corp/b", 1000);
    struct rows *rs = report(f, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0);
    assert_int_equal(rs->n, 3);
    assert_int_equal(rs->r[0].ts_ms, NOV_2025);
    assert_int_equal(rs->r[1].ts_ms, DEC_2025 - 1);
    assert_int_equal(rs->r[2].amount, 110);
    rs = report(f, LEDGER_REPORT_CHARGEBACK, 2025, 10, NULL, 0);
    assert_int_equal(rs->r[0].amount, 1);
    rs = report(f, LEDGER_REPORT_TRIAL_BALANCE, 2025, 12, NULL, 0);
    assert_int_equal(rs->r[rs->n - 1].debits, 1000);
    rs = report(f, LEDGER_REPORT_SPEND, 2026, 1, NULL, 0); /* nothing yet: a zero total */
    assert_int_equal(rs->n, 1);
    assert_true(rs->r[0].is_total);
    assert_int_equal(rs->r[0].amount, 0);
}

static void test_report_rows_sort_by_keys_then_account_names(void **state)
{
    struct fx *f = *state;
    /* Created out of name order, so ids and names disagree. */
    create_tagged(f, "zeta", NULL);
    create_tagged(f, "alpha", NULL);
    create_tagged(f, "Beta", NULL);
    spend(f, "zeta", 1, "team", "abc", NULL, NULL);
    spend(f, "alpha", 2, "team", "ab", NULL, NULL);
    spend(f, "Beta", 3, "team", "abc", NULL, NULL);
    spend(f, "alpha", 4, "team", "B", NULL, NULL);
    spend(f, "zeta", 5, "team", "abc", NULL, NULL);
    spend(f, "alpha", 6, "team", "abc", NULL, NULL);
    static const char *const keys[] = {"team"};
    struct rows *rs = report(f, LEDGER_REPORT_SPEND, 2025, 11, keys, 1);
    assert_int_equal(rs->n, 6);
    /* Byte order: "B" < "ab" < "abc"; then account names, "Beta" < "alpha". */
    static const char *const team[] = {"B", "ab", "abc", "abc", "abc"};
    static const char *const acct[] = {"alpha", "alpha", "Beta", "alpha", "zeta"};
    static const int64_t amount[] = {4, 2, 3, 6, 6};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(rs->r[i].group[0], team[i]);
        assert_string_equal(rs->r[i].debit, acct[i]);
        assert_int_equal(rs->r[i].amount, amount[i]);
    }
    rs = report(f, LEDGER_REPORT_TRIAL_BALANCE, 2025, 11, NULL, 0);
    assert_string_equal(rs->r[0].debit, "Beta");
    assert_string_equal(rs->r[1].debit, "alpha");
    assert_string_equal(rs->r[2].debit, "vendor/openai");
    assert_string_equal(rs->r[3].debit, "zeta");
}

static void test_report_is_the_same_every_run(void **state)
{
    struct fx *f = *state;
    org(f);
    for (int i = 0; i < 20; i++) {
        chargeback(f, i % 2 ? "corp/a" : "corp/c", i % 3 ? "corp/b" : "corp/d", 100 + i);
        spend(f, i % 2 ? "corp/b" : "corp/d", 7 + i, "team", i % 3 ? "t1" : "t0", NULL, NULL);
    }
    static const char *const keys[] = {"team"};
    for (int kind = LEDGER_REPORT_CHARGEBACK; kind <= LEDGER_REPORT_TRANSFERS; kind++) {
        struct rows *a = malloc(sizeof *a);
        assert_non_null(a);
        *a = *report(f, kind, 2025, 11, keys, kind == LEDGER_REPORT_SPEND ? 1 : 0);
        struct rows *b = report(f, kind, 2025, 11, keys, kind == LEDGER_REPORT_SPEND ? 1 : 0);
        assert_int_equal(a->n, b->n);
        assert_memory_equal(a->r, b->r, sizeof a->r[0] * (size_t)a->n);
        free(a);
    }
}

static void test_report_offset_skips_rows_and_keeps_totals(void **state)
{
    struct fx *f = *state;
    org(f);
    for (int i = 1; i <= 5; i++)
        chargeback(f, "corp/a", "corp/b", i);
    struct rows rs = {0};
    struct ledger_error err = {0};
    assert_int_equal(ledger_report_from(f->l, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0, 3,
                                        rows_cb, &rs, &err), 0);
    assert_int_equal(rs.n, 3);
    assert_int_equal(rs.r[0].amount, 4);
    assert_int_equal(rs.r[1].amount, 5);
    assert_true(rs.r[2].is_total);
    assert_int_equal(rs.r[2].amount, 15); /* the skipped rows count too */
    assert_int_equal(rs.r[2].count, 5);
    memset(&rs, 0, sizeof rs);
    assert_int_equal(ledger_report_from(f->l, LEDGER_REPORT_CHARGEBACK, 2025, 11, NULL, 0, 1,
                                        rows_cb, &rs, &err), 0);
    assert_int_equal(rs.n, 3); /* account total, cost_center row, cost_center total */
    assert_true(rs.r[0].is_total);
    assert_int_equal(rs.r[1].view, LEDGER_REPORT_VIEW_COST_CENTER);
    memset(&rs, 0, sizeof rs);
    assert_int_equal(ledger_report_from(f->l, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0, 99,
                                        rows_cb, &rs, &err), 0);
    assert_int_equal(rs.n, 0);
}

static void test_report_callback_stops_early(void **state)
{
    struct fx *f = *state;
    org(f);
    for (int i = 1; i <= 5; i++)
        chargeback(f, "corp/a", "corp/b", i);
    struct rows rs = {.stop_after = 2};
    struct ledger_error err = {0};
    assert_int_equal(ledger_report(f->l, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0, rows_cb,
                                   &rs, &err), 0);
    assert_int_equal(rs.n, 2);
}

static void expect_einval(struct fx *f, int kind, int year, int month, const char *const *keys,
                          uint32_t kc, const char *needle)
{
    struct rows rs = {0};
    struct ledger_error err = {0};
    assert_int_equal(ledger_report(f->l, kind, year, month, keys, kc, rows_cb, &rs, &err),
                     LEDGER_EINVAL);
    assert_int_equal(err.code, LEDGER_EINVAL);
    if (!strstr(err.message, needle))
        fail_msg("\"%s\" does not name \"%s\"", err.message, needle);
    assert_int_equal(rs.n, 0);
}

static void test_report_refuses_bad_arguments(void **state)
{
    struct fx *f = *state;
    static const char *const one[] = {"team"};
    static const char *const twice[] = {"team", "team"};
    static const char *const empty[] = {""};
    static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    expect_einval(f, 0, 2025, 11, NULL, 0, "kind");
    expect_einval(f, 9, 2025, 11, NULL, 0, "kind");
    expect_einval(f, LEDGER_REPORT_SPEND, 2025, 13, NULL, 0, "2025-13");
    expect_einval(f, LEDGER_REPORT_SPEND, 1969, 12, NULL, 0, "1969-12");
    expect_einval(f, LEDGER_REPORT_CHARGEBACK, 2025, 11, one, 1, "group_by");
    expect_einval(f, LEDGER_REPORT_SPEND, 2025, 11, twice, 2, "twice");
    expect_einval(f, LEDGER_REPORT_SPEND, 2025, 11, empty, 1, "empty");
    expect_einval(f, LEDGER_REPORT_SPEND, 2025, 11, nine, 9, "more than 8");
    assert_int_equal(ledger_report_kind_parse("trial-balance"), LEDGER_REPORT_TRIAL_BALANCE);
    assert_int_equal(ledger_report_kind_parse("trial_balance"), -1);
    assert_string_equal(ledger_report_kind_name(LEDGER_REPORT_TRANSFERS), "transfers");
    assert_null(ledger_report_kind_name(0));
}

static void test_report_sum_overflow_is_an_error(void **state)
{
    struct fx *f = *state;
    org(f);
    /* Adjustments skip the fit checks: 9300 of 1e15 micros pass INT64_MAX
     * in total, split over two pairs so no account's own balance does. */
    static struct proto_cmd cmds[4096];
    static struct proto_result res[4096];
    int left = 9300;
    while (left > 0) {
        uint32_t n = left > 4096 ? 4096 : (uint32_t)left;
        for (uint32_t i = 0; i < n; i++)
            cmds[i] = fx_admin(fx_transfer((left - (int)i) % 2 ? "corp/a" : "corp/c",
                                           (left - (int)i) % 2 ? "corp/b" : "corp/d",
                                           PROTO_AMOUNT_MAX, PROTO_KIND_ADJUSTMENT));
        fx_apply_batch(f, cmds, n, res);
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(res[i].status, PROTO_OK);
        left -= (int)n;
    }
    struct rows rs = {.stop_after = 1};
    struct ledger_error err = {0};
    assert_int_equal(ledger_report(f->l, LEDGER_REPORT_TRIAL_BALANCE, 2025, 11, NULL, 0,
                                   rows_cb, &rs, &err), LEDGER_EOVERFLOW);
    assert_non_null(strstr(err.message, "int64"));
    assert_int_equal(rs.n, 0);
    memset(&rs, 0, sizeof rs);
    assert_int_equal(ledger_report_from(f->l, LEDGER_REPORT_TRANSFERS, 2025, 11, NULL, 0, 9300,
                                        rows_cb, &rs, &err), LEDGER_EOVERFLOW);
}

/* A metadata map as a remote client may encode it: longer string forms
 * than needed, and a value that is not a string.  Stored as is (raw). */
static void test_report_reads_every_string_form_of_metadata(void **state)
{
    struct fx *f = *state;
    org(f);
    static const uint8_t raw[] = {
        0xde, 0x00, 0x04,                         /* map16, 4 entries */
        0xa4, 't', 'e', 'a', 'm',                 /* "team": str16 "blue" */
        0xda, 0x00, 0x04, 'b', 'l', 'u', 'e',
        0xd9, 0x05, 'm', 'o', 'd', 'e', 'l',      /* str8 "model": str32 "o3" */
        0xdb, 0x00, 0x00, 0x00, 0x02, 'o', '3',
        0xa1, 'n', 0x2a,                          /* "n": 42, not a string */
        0xa4, 'u', 's', 'e', 'r', 0xa0,           /* "user": "" */
    };
    uint64_t id = fx_reserve_ok(f, "corp/a", 10);
    struct proto_cmd c = fx_commit(id, 10);
    fx_meta_add(&c, "team", "blue");
    c.u.commit.metadata.raw = (struct proto_str){(const char *)raw, sizeof raw};
    fx_expect_ok(f, &c);
    static const char *const keys[] = {"model", "n", "team", "user"};
    struct rows *rs = report(f, LEDGER_REPORT_SPEND, 2025, 11, keys, 4);
    assert_int_equal(rs->n, 2);
    assert_string_equal(rs->r[0].group[0], "o3");
    assert_string_equal(rs->r[0].group[1], "");
    assert_string_equal(rs->r[0].group[2], "blue");
    assert_string_equal(rs->r[0].group[3], "");
    assert_int_equal(rs->r[0].amount, 10);
}

/* ---- recorded output digests ----
 *
 * A generated month with many metadata keys (some missing, empty, shared
 * prefixes, high bytes, one key that is nearly unique per posting) and
 * accounts created out of name order.  Every report's rows are folded into
 * an FNV-1a digest and compared with the digest the first implementation
 * of ledger/report.c produced: a faster report must give the same bytes. */

static uint64_t digest_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t digest_str(uint64_t h, const char *s)
{
    return digest_bytes(h, s, strlen(s) + 1); /* the NUL separates fields */
}

static uint64_t digest_int(uint64_t h, int64_t v)
{
    return digest_bytes(h, &v, sizeof v);
}

static int digest_cb(void *arg, const struct ledger_report_row *p)
{
    uint64_t *h = arg;
    *h = digest_int(*h, p->view);
    *h = digest_int(*h, p->is_total);
    *h = digest_str(*h, p->debit);
    *h = digest_str(*h, p->credit);
    *h = digest_str(*h, p->debit_cost_center);
    *h = digest_str(*h, p->credit_cost_center);
    *h = digest_int(*h, p->group_count);
    for (uint32_t j = 0; j < p->group_count; j++)
        *h = digest_str(*h, p->group[j]);
    *h = digest_int(*h, (int64_t)p->posting_count);
    *h = digest_int(*h, p->amount_micros);
    *h = digest_int(*h, p->overrun_micros);
    *h = digest_int(*h, p->debit_micros);
    *h = digest_int(*h, p->credit_micros);
    *h = digest_int(*h, p->net_micros);
    *h = digest_int(*h, (int64_t)p->id);
    *h = digest_int(*h, p->ts_ms);
    *h = digest_int(*h, p->kind);
    *h = digest_int(*h, (int64_t)p->reservation_id);
    *h = digest_int(*h, p->metadata_len);
    if (p->metadata_len)
        *h = digest_bytes(*h, p->metadata, p->metadata_len);
    return 0;
}

static uint64_t digest_rng = 88172645463325252ULL;

static uint32_t digest_pick(uint32_t n)
{
    digest_rng ^= digest_rng << 13;
    digest_rng ^= digest_rng >> 7;
    digest_rng ^= digest_rng << 17;
    return (uint32_t)(digest_rng % n);
}

#define DIGEST_ACCOUNTS 12
#define DIGEST_POSTINGS 3000

/* Add up to nine metadata pairs, in a shuffled order, some left out. */
static void digest_meta(struct proto_cmd *c, int seq)
{
    static const char *const teams[] = {"research", "Research", "res", "", "support",
                                        "\xc3\xa9quipe", "research-2", "researcher"};
    static const char *const models[] = {"gpt-4o", "gpt-4o-mini", "gpt-4", "o3", "claude",
                                         "claude-sonnet-4", "claude-haiku-4"};
    static const char *const projects[] = {"proj-0001", "proj-0010", "proj-0100", "proj-1",
                                           "proj-01", "proj-001", "P", "proj-0001x",
                                           "proj-0002", "proj-9999"};
    static const char *const regions[] = {"eu", "us", "ap", "eu-west-1", "us-east-1"};
    static const char *const tiers[] = {"0", "1", "10", "2", "\x7f", "\xff"};
    static char tickets[DIGEST_POSTINGS][16], notes[DIGEST_POSTINGS][48];
    snprintf(tickets[seq], sizeof tickets[seq], "T-%d", (seq * 7919) % 1200);
    snprintf(notes[seq], sizeof notes[seq], "a shared long prefix of notes %d", seq % 97);
    const char *k[9] = {"team", "model", "project_id", "region", "tier", "ticket_id", "note",
                        "workflow", "user"};
    const char *v[9] = {teams[digest_pick(8)], models[digest_pick(7)], projects[digest_pick(10)],
                        regions[digest_pick(5)], tiers[digest_pick(6)], tickets[seq],
                        notes[seq], digest_pick(2) ? "wf-a" : "wf-b",
                        digest_pick(3) ? "alice" : "bob"};
    uint32_t first = digest_pick(9); /* a rotation: key order varies between maps */
    for (uint32_t i = 0; i < 9; i++) {
        uint32_t j = (first + i) % 9;
        if (digest_pick(6) != 0) /* each key missing one time in six */
            fx_meta_add(c, k[j], v[j]);
    }
}

static void digest_month(struct fx *f)
{
    static const char *const names[DIGEST_ACCOUNTS] = {
        "zeta", "corp", "corp/b", "corp/a", "Beta", "alpha", "corp/a/x", "corp/c",
        "corp/ab", "corp/a-b", "omega", "corp/d"};
    static const char *const centers[] = {"CC-2", "CC-1", "CC-10", NULL, "", "CC-1a"};
    for (int i = 0; i < DIGEST_ACCOUNTS; i++)
        create_tagged(f, names[i], centers[i % 6]);
    f->now_ms = NOV_2025 - FX_DAY_MS; /* a few postings in October */
    for (int seq = 0; seq < DIGEST_POSTINGS; seq++) {
        if (seq == 40)
            f->now_ms = NOV_2025;
        if (seq == DIGEST_POSTINGS - 40)
            f->now_ms = DEC_2025;
        f->now_ms += 1000;
        const char *a = names[digest_pick(DIGEST_ACCOUNTS)];
        const char *b = names[digest_pick(DIGEST_ACCOUNTS)];
        int64_t amount = 1 + digest_pick(50000);
        if (seq % 3 == 0 && a != b) {
            struct proto_cmd c = fx_transfer(a, b, amount, PROTO_KIND_CHARGEBACK);
            digest_meta(&c, seq);
            fx_expect_ok(f, &c);
            continue;
        }
        uint64_t id = fx_reserve_ok(f, a, 60000);
        struct proto_cmd c = fx_commit(id, amount);
        digest_meta(&c, seq);
        fx_expect_ok(f, &c);
    }
}

static uint64_t digest_report(struct fx *f, int kind, const char *const *keys, uint32_t kc)
{
    uint64_t h = 1469598103934665603ULL;
    struct ledger_error err = {0};
    if (ledger_report(f->l, kind, 2025, 11, keys, kc, digest_cb, &h, &err) != 0)
        fail_msg("report %d: %s", kind, err.message);
    return h;
}

static void test_report_output_equals_recorded_digests(void **state)
{
    struct fx *f = *state;
    digest_month(f);
    static const char *const all[] = {"team", "model", "project_id", "region", "tier",
                                      "ticket_id", "note", "workflow"};
    static const char *const reversed[] = {"workflow", "tier", "region", "project_id", "model",
                                           "team"};
    static const char *const ticket[] = {"ticket_id"};
    static const char *const absent[] = {"absent", "team"};
    struct {
        int kind;
        const char *const *keys;
        uint32_t kc;
        uint64_t digest;
    } cases[] = {
        {LEDGER_REPORT_CHARGEBACK, NULL, 0, 0x2e30eef57ede8acfULL},
        {LEDGER_REPORT_SPEND, NULL, 0, 0x016ac0d683e195e1ULL},
        {LEDGER_REPORT_SPEND, all, 8, 0x50ceee8a3d65a9f4ULL},
        {LEDGER_REPORT_SPEND, reversed, 6, 0x0ce3511a407610bcULL},
        {LEDGER_REPORT_SPEND, ticket, 1, 0xe02765e04a6e0336ULL},
        {LEDGER_REPORT_SPEND, absent, 2, 0x201e211badd964c7ULL},
        {LEDGER_REPORT_TRIAL_BALANCE, NULL, 0, 0x6cd2773705c0b379ULL},
        {LEDGER_REPORT_TRANSFERS, NULL, 0, 0x7d28dfef9a23a281ULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t h = digest_report(f, cases[i].kind, cases[i].keys, cases[i].kc);
        if (h != cases[i].digest)
            fail_msg("case %zu (kind %d, %u keys): digest 0x%016llxULL, recorded 0x%016llxULL",
                     i, cases[i].kind, cases[i].kc, (unsigned long long)h,
                     (unsigned long long)cases[i].digest);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_chargeback_sums_account_pairs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_chargeback_by_cost_center, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_spend_groups_by_several_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_report_spend_without_keys_groups_by_account_and_payee, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_spend_sums_overruns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_trial_balance_nets_to_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_transfers_lists_raw_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_month_is_utc_first_day_to_next_first_day,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_rows_sort_by_keys_then_account_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_is_the_same_every_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_offset_skips_rows_and_keeps_totals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_callback_stops_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_refuses_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_sum_overflow_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_reads_every_string_form_of_metadata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_output_equals_recorded_digests, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
