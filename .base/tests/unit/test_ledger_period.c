/*
 * test_ledger_period.c — period rules (docs/ledger-rules.md, "Time",
 * "Balances", period close): caps reset at day / ISO week / month boundaries
 * at each account's fixed UTC offset, holds are not period-bound, closed
 * months are listed, and the ledger's clock never goes backwards.
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
#define MIN_MS (60LL * 1000)
#define OFF_IST 330   /* +05:30 */
#define OFF_PST (-480) /* -08:00 */

/* UTC midnights (ms). FX_MON is Monday 2026-11-16. */
#define NOV_1_2026 (FX_MON - 15 * FX_DAY_MS)
#define DEC_1_2026 (FX_MON + 15 * FX_DAY_MS)
#define DEC_28_2026 (FX_MON + 42 * FX_DAY_MS) /* a Monday */
#define JAN_1_2027 1798761600000LL
#define FEB_1_2027 1801440000000LL
#define MAR_1_2027 1803859200000LL
#define FEB_1_2028 1832976000000LL
#define FEB_29_2028 1835395200000LL
#define MAR_1_2028 1835481600000LL

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
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

static void spend_at(struct fx *f, int64_t t_ms, const char *account, int64_t amount)
{
    f->now_ms = t_ms;
    fx_spend(f, account, amount);
}

/* Spent of `account` once the ledger's clock is at `t_ms`. */
static int64_t spent_at(struct fx *f, int64_t t_ms, const char *account)
{
    fx_tick(f, t_ms);
    return fx_view(f, account).spent_micros;
}

/* An account with a 100 USD cap per `period` at `tz`; 10 USD spent 1 ms
 * before `boundary_ms` counts, and from the boundary on the window is new. */
static void check_rollover(struct fx *f, int period, int tz, int64_t boundary_ms,
                           int64_t next_boundary_ms)
{
    f->now_ms = boundary_ms - 3 * FX_DAY_MS;
    fx_create(f, "acme", 100 * USD, period, tz);

    spend_at(f, boundary_ms - 1, "acme", 10 * USD);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 10 * USD);
    assert_int_equal(v.period_end_ms, boundary_ms);
    assert_int_equal(v.available_micros, 90 * USD);

    assert_int_equal(spent_at(f, boundary_ms, "acme"), 0);
    v = fx_view(f, "acme");
    assert_int_equal(v.period_start_ms, boundary_ms);
    assert_int_equal(v.period_end_ms, next_boundary_ms);
    assert_int_equal(v.available_micros, 100 * USD);

    spend_at(f, boundary_ms, "acme", 5 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 5 * USD);
    struct proto_cmd c = fx_reserve("acme", 95 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    fx_assert_verified(f);
}

/* ---- day ---- */

static void test_day_rolls_over_at_utc_midnight(void **state)
{
    check_rollover(*state, PROTO_PERIOD_DAY, 0, FX_MON + FX_DAY_MS,
                   FX_MON + 2 * FX_DAY_MS);
}

static void test_day_rolls_over_at_local_midnight_east_of_utc(void **state)
{
    /* Tue 00:00 at +05:30 is Mon 18:30 UTC. */
    int64_t b = FX_MON + 18 * FX_HOUR_MS + 30 * MIN_MS;
    check_rollover(*state, PROTO_PERIOD_DAY, OFF_IST, b, b + FX_DAY_MS);
}

static void test_day_rolls_over_at_local_midnight_west_of_utc(void **state)
{
    /* Tue 00:00 at -08:00 is Tue 08:00 UTC. */
    int64_t b = FX_MON + FX_DAY_MS + 8 * FX_HOUR_MS;
    check_rollover(*state, PROTO_PERIOD_DAY, OFF_PST, b, b + FX_DAY_MS);
}

static void test_day_rolls_over_at_plus_14_hours(void **state)
{
    /* Tue 00:00 at +14:00 is Mon 10:00 UTC. */
    int64_t b = FX_MON + 10 * FX_HOUR_MS;
    check_rollover(*state, PROTO_PERIOD_DAY, 840, b, b + FX_DAY_MS);
}

/* ---- ISO week ---- */

static void test_week_rolls_over_at_utc_monday(void **state)
{
    check_rollover(*state, PROTO_PERIOD_WEEK, 0, FX_MON + 7 * FX_DAY_MS,
                   FX_MON + 14 * FX_DAY_MS);
}

static void test_week_rolls_over_at_local_monday_east_of_utc(void **state)
{
    /* Mon 00:00 at +05:30 is Sun 18:30 UTC. */
    int64_t b = FX_MON + 7 * FX_DAY_MS - 5 * FX_HOUR_MS - 30 * MIN_MS;
    check_rollover(*state, PROTO_PERIOD_WEEK, OFF_IST, b, b + 7 * FX_DAY_MS);
}

static void test_week_rolls_over_at_local_monday_west_of_utc(void **state)
{
    /* Mon 00:00 at -08:00 is Mon 08:00 UTC. */
    int64_t b = FX_MON + 7 * FX_DAY_MS + 8 * FX_HOUR_MS;
    check_rollover(*state, PROTO_PERIOD_WEEK, OFF_PST, b, b + 7 * FX_DAY_MS);
}

static void test_week_starts_monday_so_sunday_spend_is_kept(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_WEEK, 0);
    spend_at(f, FX_MON + FX_HOUR_MS, "acme", 10 * USD);

    /* Sunday 23:00 is still the week that began Monday. */
    assert_int_equal(spent_at(f, FX_MON + 6 * FX_DAY_MS + 23 * FX_HOUR_MS, "acme"),
                     10 * USD);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.period_start_ms, FX_MON);
    assert_int_equal(v.period_end_ms, FX_MON + 7 * FX_DAY_MS);
    fx_assert_verified(f);
}

static void test_week_spanning_new_year_is_one_window(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_WEEK, 0);
    spend_at(f, DEC_28_2026 + 2 * FX_DAY_MS, "acme", 10 * USD); /* Wed Dec 30 */

    assert_int_equal(spent_at(f, JAN_1_2027 + 2 * FX_DAY_MS + 23 * FX_HOUR_MS, "acme"),
                     10 * USD); /* Sun Jan 3 2027 */
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.period_start_ms, DEC_28_2026);
    assert_int_equal(v.period_end_ms, DEC_28_2026 + 7 * FX_DAY_MS);
    fx_assert_verified(f);
}

/* ---- month ---- */

static void test_month_rolls_over_at_utc_first(void **state)
{
    check_rollover(*state, PROTO_PERIOD_MONTH, 0, DEC_1_2026, JAN_1_2027);
}

static void test_month_rolls_over_at_local_first_east_of_utc(void **state)
{
    int64_t shift = 5 * FX_HOUR_MS + 30 * MIN_MS;
    check_rollover(*state, PROTO_PERIOD_MONTH, OFF_IST, DEC_1_2026 - shift,
                   JAN_1_2027 - shift);
}

static void test_month_rolls_over_at_local_first_west_of_utc(void **state)
{
    int64_t shift = 8 * FX_HOUR_MS;
    check_rollover(*state, PROTO_PERIOD_MONTH, OFF_PST, DEC_1_2026 + shift,
                   JAN_1_2027 + shift);
}

static void test_month_window_of_november_is_thirty_days(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_MONTH, 0);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.period_start_ms, NOV_1_2026);
    assert_int_equal(v.period_end_ms, NOV_1_2026 + 30 * FX_DAY_MS);
}

static void test_month_december_31st_still_counts(void **state)
{
    check_rollover(*state, PROTO_PERIOD_MONTH, 0, JAN_1_2027, FEB_1_2027);
}

static void test_month_february_in_common_year_ends_after_28th(void **state)
{
    struct fx *f = *state;
    f->now_ms = FEB_1_2027;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_MONTH, 0);
    spend_at(f, FEB_1_2027 + 27 * FX_DAY_MS + 12 * FX_HOUR_MS, "acme", 10 * USD);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.period_start_ms, FEB_1_2027);
    assert_int_equal(v.period_end_ms, MAR_1_2027);
    assert_int_equal(MAR_1_2027 - FEB_1_2027, 28 * FX_DAY_MS);

    assert_int_equal(spent_at(f, MAR_1_2027 - 1, "acme"), 10 * USD);
    assert_int_equal(spent_at(f, MAR_1_2027, "acme"), 0);
    fx_assert_verified(f);
}

static void test_month_february_in_leap_year_2028_includes_29th(void **state)
{
    struct fx *f = *state;
    f->now_ms = FEB_1_2028;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_MONTH, 0);
    spend_at(f, FEB_29_2028 - 12 * FX_HOUR_MS, "acme", 10 * USD); /* Feb 28 noon */
    spend_at(f, MAR_1_2028 - 1, "acme", 5 * USD);                  /* Feb 29 23:59:59.999 */
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 15 * USD);
    assert_int_equal(v.period_start_ms, FEB_1_2028);
    assert_int_equal(v.period_end_ms, MAR_1_2028);
    assert_int_equal(MAR_1_2028 - FEB_1_2028, 29 * FX_DAY_MS);

    assert_int_equal(spent_at(f, MAR_1_2028, "acme"), 0);
    fx_assert_verified(f);
}

static void test_day_window_on_leap_day_2028(void **state)
{
    check_rollover(*state, PROTO_PERIOD_DAY, 0, FEB_29_2028, MAR_1_2028);
}

/* ---- mixed periods and holds ---- */

static void test_month_parent_and_day_child_count_their_own_windows(void **state)
{
    struct fx *f = *state;
    fx_create(f, "p", 100 * USD, PROTO_PERIOD_MONTH, 0);
    fx_create(f, "p/c", 20 * USD, PROTO_PERIOD_DAY, 0);
    spend_at(f, FX_MON + FX_HOUR_MS, "p/c", 15 * USD);

    assert_int_equal(spent_at(f, FX_MON + FX_DAY_MS + FX_HOUR_MS, "p/c"), 0);
    assert_int_equal(fx_view(f, "p").spent_micros, 15 * USD);

    spend_at(f, FX_MON + FX_DAY_MS + FX_HOUR_MS, "p/c", 15 * USD);
    assert_int_equal(fx_view(f, "p/c").spent_micros, 15 * USD);
    assert_int_equal(fx_view(f, "p").spent_micros, 30 * USD);
    assert_int_equal(fx_view(f, "p").available_micros, 70 * USD);
    assert_int_equal(fx_view(f, "p/c").available_micros, 5 * USD);

    struct proto_cmd c = fx_reserve("p/c", 6 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "p/c");
    assert_int_equal(f->res.remaining_micros, 5 * USD);
    fx_assert_verified(f);
}

static void test_month_parent_limits_fresh_day_child(void **state)
{
    struct fx *f = *state;
    fx_create(f, "p", 30 * USD, PROTO_PERIOD_MONTH, 0);
    fx_create(f, "p/c", 20 * USD, PROTO_PERIOD_DAY, 0);
    spend_at(f, FX_MON + FX_HOUR_MS, "p/c", 20 * USD);

    f->now_ms = FX_MON + FX_DAY_MS + FX_HOUR_MS;
    struct proto_cmd c = fx_reserve("p/c", 15 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "p");
    assert_int_equal(f->res.remaining_micros, 10 * USD);
    assert_int_equal(fx_view(f, "p/c").available_micros, 10 * USD);
    fx_assert_verified(f);
}

static void test_hold_is_not_reset_at_period_boundary(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_DAY, 0);
    f->now_ms = FX_MON + 23 * FX_HOUR_MS;
    struct proto_cmd r = fx_reserve("acme", 60 * USD, 10 * FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);

    fx_tick(f, FX_MON + FX_DAY_MS + 30 * MIN_MS);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 0);
    assert_int_equal(v.reserved_micros, 60 * USD);
    assert_int_equal(v.available_micros, 40 * USD);

    struct proto_cmd c = fx_reserve("acme", 50 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme");
    assert_int_equal(f->res.remaining_micros, 40 * USD);
    fx_assert_verified(f);
}

static void test_commit_after_boundary_counts_in_new_window(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_DAY, 0);
    f->now_ms = FX_MON + 23 * FX_HOUR_MS;
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 10 * FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);

    f->now_ms = FX_MON + FX_DAY_MS + FX_HOUR_MS;
    struct proto_cmd c = fx_commit(f->res.id, 30 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 30 * USD);
    assert_int_equal(v.reserved_micros, 0);
    fx_assert_verified(f);
}

/* ---- period close ---- */

static int close_month(struct fx *f, const char *month)
{
    struct proto_cmd c = fx_period_close(month);
    return fx_apply(f, &c);
}

struct month_list {
    int count;
    char month[8][16];
    int64_t closed_at_ms[8];
};

static int month_list_cb(void *arg, const char *month, int64_t closed_at_ms)
{
    struct month_list *m = arg;
    if (m->count < 8) {
        snprintf(m->month[m->count], sizeof m->month[0], "%s", month);
        m->closed_at_ms[m->count] = closed_at_ms;
    }
    m->count++;
    return 0;
}

static struct month_list closed_months(struct fx *f)
{
    struct month_list m;
    struct ledger_error err = {0};
    memset(&m, 0, sizeof m);
    assert_int_equal(ledger_period_list(f->l, month_list_cb, &m, &err), 0);
    return m;
}

static void assert_refused(struct fx *f, struct proto_cmd c, int status)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), status);
    fx_assert_hash(f, before);
}

static void test_period_close_refused_before_month_end(void **state)
{
    struct fx *f = *state;
    fx_tick(f, FX_MON);
    assert_refused(f, fx_period_close("2026-11"), PROTO_ERR_CONFLICT);
    fx_tick(f, DEC_1_2026 - 1);
    assert_refused(f, fx_period_close("2026-11"), PROTO_ERR_CONFLICT);
    assert_int_equal(closed_months(f).count, 0);
}

static void test_period_close_ok_from_first_of_next_month(void **state)
{
    struct fx *f = *state;
    fx_tick(f, DEC_1_2026);
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);
    struct month_list m = closed_months(f);
    assert_int_equal(m.count, 1);
    assert_string_equal(m.month[0], "2026-11");
    assert_int_equal(m.closed_at_ms[0], DEC_1_2026);
    fx_assert_verified(f);
}

static void test_period_close_repeat_is_ok(void **state)
{
    struct fx *f = *state;
    fx_tick(f, DEC_1_2026 + FX_HOUR_MS);
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);
    f->now_ms = DEC_1_2026 + 2 * FX_HOUR_MS;
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);
    struct month_list m = closed_months(f);
    assert_int_equal(m.count, 1);
    assert_int_equal(m.closed_at_ms[0], DEC_1_2026 + FX_HOUR_MS);
}

static void test_period_close_lists_months_ascending(void **state)
{
    struct fx *f = *state;
    fx_tick(f, JAN_1_2027 + FX_HOUR_MS);
    assert_int_equal(close_month(f, "2026-12"), PROTO_OK);
    assert_int_equal(close_month(f, "2026-10"), PROTO_OK);
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);
    struct month_list m = closed_months(f);
    assert_int_equal(m.count, 3);
    assert_string_equal(m.month[0], "2026-10");
    assert_string_equal(m.month[1], "2026-11");
    assert_string_equal(m.month[2], "2026-12");
}

static void test_period_close_refuses_current_and_future_months(void **state)
{
    struct fx *f = *state;
    fx_tick(f, DEC_1_2026);
    assert_refused(f, fx_period_close("2026-12"), PROTO_ERR_CONFLICT);
    assert_refused(f, fx_period_close("2027-01"), PROTO_ERR_CONFLICT);
}

static void test_period_close_refuses_malformed_month(void **state)
{
    struct fx *f = *state;
    fx_tick(f, JAN_1_2027);
    const char *bad[] = {"", "2026-13", "2026-00", "2026-1", "26-11", "2026/11",
                         "2026-11-01", "abcd-ef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_refused(f, fx_period_close(bad[i]), PROTO_ERR_INVALID);
        fx_assert_message_has(f, "month");
    }
    assert_int_equal(closed_months(f).count, 0);
}

static void test_period_close_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    fx_tick(f, DEC_1_2026);
    struct proto_cmd c = fx_period_close("2026-11");
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_int_equal(closed_months(f).count, 0);
}

static void test_period_close_keeps_next_month_open(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_MONTH, 0);
    spend_at(f, DEC_1_2026 - FX_HOUR_MS, "acme", 10 * USD);
    fx_tick(f, DEC_1_2026);
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);

    spend_at(f, DEC_1_2026 + FX_HOUR_MS, "acme", 3 * USD);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
    assert_int_equal(fx_journal(f, 2026, 12, NULL, 0), 1);
    fx_assert_verified(f);
}

/* ---- time never goes backwards ---- */

static void test_older_entry_is_applied_at_ledger_now(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_tick(f, FX_MON + 10 * FX_HOUR_MS);

    f->now_ms = FX_MON + FX_HOUR_MS;
    struct proto_cmd r = fx_reserve("acme", 10 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    assert_int_equal(f->res.expires_at_ms, FX_MON + 11 * FX_HOUR_MS);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + 10 * FX_HOUR_MS);

    struct proto_cmd c = fx_commit(f->res.id, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].ts_ms, FX_MON + 10 * FX_HOUR_MS);
    fx_assert_verified(f);
}

static void test_older_entry_spends_in_current_window(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_DAY, 0);
    spend_at(f, FX_MON + FX_DAY_MS + FX_HOUR_MS, "acme", 5 * USD); /* Tue 01:00 */
    spend_at(f, FX_MON + 23 * FX_HOUR_MS, "acme", 7 * USD);        /* stamped Mon */

    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 12 * USD);
    assert_int_equal(v.period_start_ms, FX_MON + FX_DAY_MS);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + FX_DAY_MS + FX_HOUR_MS);
    fx_assert_verified(f);
}

static void test_older_entry_does_not_post_into_closed_month(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_tick(f, DEC_1_2026 + FX_HOUR_MS);
    assert_int_equal(close_month(f, "2026-11"), PROTO_OK);

    spend_at(f, DEC_1_2026 - FX_HOUR_MS, "acme", 4 * USD); /* stamped Nov 30 */
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
    assert_int_equal(fx_journal(f, 2026, 12, NULL, 0), 1);
    fx_assert_verified(f);
}

static void test_expire_uses_ledger_now_not_older_entry_time(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 10 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    f->now_ms = FX_MON + 2 * FX_HOUR_MS;
    fx_create(f, "acme/later", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);

    /* Stamped before the hold's deadline, but the ledger's now is past it. */
    fx_tick(f, FX_MON + 30 * MIN_MS);
    assert_int_equal(f->res.amount_micros, 1);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_week_rolls_over_at_local_monday_minus_14_hours(void **state)
{
    /* Mon 00:00 at -14:00 is Mon 14:00 UTC. */
    int64_t b = FX_MON + 7 * FX_DAY_MS + 14 * FX_HOUR_MS;
    check_rollover(*state, PROTO_PERIOD_WEEK, -840, b, b + 7 * FX_DAY_MS);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_day_rolls_over_at_utc_midnight),
        T(test_day_rolls_over_at_local_midnight_east_of_utc),
        T(test_day_rolls_over_at_local_midnight_west_of_utc),
        T(test_day_rolls_over_at_plus_14_hours),
        T(test_week_rolls_over_at_utc_monday),
        T(test_week_rolls_over_at_local_monday_east_of_utc),
        T(test_week_rolls_over_at_local_monday_west_of_utc),
        T(test_week_starts_monday_so_sunday_spend_is_kept),
        T(test_week_spanning_new_year_is_one_window),
        T(test_month_rolls_over_at_utc_first),
        T(test_month_rolls_over_at_local_first_east_of_utc),
        T(test_month_rolls_over_at_local_first_west_of_utc),
        T(test_month_window_of_november_is_thirty_days),
        T(test_month_december_31st_still_counts),
        T(test_month_february_in_common_year_ends_after_28th),
        T(test_month_february_in_leap_year_2028_includes_29th),
        T(test_day_window_on_leap_day_2028),
        T(test_month_parent_and_day_child_count_their_own_windows),
        T(test_month_parent_limits_fresh_day_child),
        T(test_hold_is_not_reset_at_period_boundary),
        T(test_commit_after_boundary_counts_in_new_window),
        T(test_period_close_refused_before_month_end),
        T(test_period_close_ok_from_first_of_next_month),
        T(test_period_close_repeat_is_ok),
        T(test_period_close_lists_months_ascending),
        T(test_period_close_refuses_current_and_future_months),
        T(test_period_close_refuses_malformed_month),
        T(test_period_close_by_agent_is_forbidden),
        T(test_period_close_keeps_next_month_open),
        T(test_older_entry_is_applied_at_ledger_now),
        T(test_older_entry_spends_in_current_window),
        T(test_older_entry_does_not_post_into_closed_month),
        T(test_expire_uses_ledger_now_not_older_entry_time),
        T(test_week_rolls_over_at_local_monday_minus_14_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
