/*
 * test_ledger_alerts.c — circuit breakers (velocity, bedtime), spend
 * thresholds and the event outbox (docs/ledger-rules.md, "Alerting").
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

#define MIN_MS (60LL * 1000)

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

static struct proto_cmd breaker_cmd(const char *account, int64_t max_micros, int64_t window_ms)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_BREAKER_SET;
    c.role = PROTO_ROLE_ADMIN;
    c.u.breaker_set.account = fx_s(account);
    c.u.breaker_set.velocity_max_micros = max_micros;
    c.u.breaker_set.velocity_window_ms = window_ms;
    return c;
}

static struct proto_cmd bedtime_cmd(const char *account, int start_min, int end_min,
                                    int64_t factor_pct, int64_t floor_micros)
{
    struct proto_cmd c = breaker_cmd(account, 0, 0);
    c.u.breaker_set.bedtime_start_min = start_min;
    c.u.breaker_set.bedtime_end_min = end_min;
    c.u.breaker_set.bedtime_factor_pct = factor_pct;
    c.u.breaker_set.bedtime_floor_micros = floor_micros;
    return c;
}

static struct proto_cmd alert_cmd(const char *account, const char *thresholds)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_ALERT_SET;
    c.role = PROTO_ROLE_ADMIN;
    c.u.alert_set.account = fx_s(account);
    c.u.alert_set.thresholds = fx_s(thresholds);
    return c;
}

static struct proto_cmd ack_cmd(uint64_t id)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_EVENT_ACK;
    c.role = PROTO_ROLE_ADMIN;
    c.u.event_ack.event_id = id;
    return c;
}

#define EVENTS_MAX 64
struct events {
    int count;
    struct ledger_event_view e[EVENTS_MAX];
};

static int events_cb(void *arg, const struct ledger_event_view *e)
{
    struct events *acc = arg;
    if (acc->count < EVENTS_MAX)
        acc->e[acc->count] = *e;
    acc->count++;
    return 0;
}

static struct events *events_get(struct fx *f)
{
    static struct events acc;
    struct ledger_error err = {0};
    memset(&acc, 0, sizeof acc);
    if (ledger_event_list(f->l, 0, 100000, events_cb, &acc, &err) != 0)
        fail_msg("events: %s", err.message);
    return &acc;
}

static bool detail_has(const struct ledger_event_view *e, const char *needle)
{
    return strstr(e->detail_json, needle) != NULL;
}

/* ---- velocity ---- */

static void test_velocity_allows_spend_up_to_the_limit_and_trips_past_it(void **state)
{
    struct fx *f = *state;
    struct proto_cmd b = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    fx_spend(f, "acme/bot", 6 * FX_USD);
    fx_spend(f, "acme/bot", 4 * FX_USD); /* exactly the limit: allowed */
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    assert_int_equal(events_get(f)->count, 0);
    fx_spend(f, "acme/bot", 1); /* one micro past it: this spend stands, then frozen */
    struct ledger_account_view v = fx_view(f, "acme/bot");
    assert_int_equal(v.status, LEDGER_STATUS_FROZEN);
    assert_string_equal(v.frozen_reason, "velocity");
    assert_int_equal(v.spent_micros, 10 * FX_USD + 1);
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 1);
    assert_string_equal(ev->e[0].type, "breaker");
    assert_string_equal(ev->e[0].account, "acme/bot");
    assert_true(detail_has(&ev->e[0], "\"reason\":\"velocity\""));
    assert_true(detail_has(&ev->e[0], "\"spent_micros\":10000001"));
    struct proto_cmd r = fx_reserve("acme/bot", 1, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme/bot");
    fx_assert_message_has(f, "reason: velocity");
    fx_assert_verified(f);
}

static void test_velocity_counts_a_subtree_and_freezes_the_account_with_the_breaker(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/other", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd b = breaker_cmd("acme", 5 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    fx_spend(f, "acme/bot", 3 * FX_USD);
    fx_spend(f, "acme/other", 3 * FX_USD);
    assert_int_equal(fx_view(f, "acme").status, LEDGER_STATUS_FROZEN);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    struct proto_cmd r = fx_reserve("acme/bot", 1, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme");
}

static void test_velocity_window_forgets_spend_older_than_the_window(void **state)
{
    struct fx *f = *state;
    /* 1 h in 60 buckets of 1 min: spend at bucket b leaves the window at b + 60. */
    struct proto_cmd b = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    fx_spend(f, "acme/bot", 8 * FX_USD);
    f->now_ms = FX_MON + 60 * MIN_MS;
    fx_spend(f, "acme/bot", 8 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    struct ledger_breaker_view bv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_breaker_get(f->l, "acme/bot", &bv, &err), 0);
    assert_int_equal(bv.velocity_spent_micros, 8 * FX_USD);
}

static void test_velocity_window_still_counts_spend_within_the_last_buckets(void **state)
{
    struct fx *f = *state;
    struct proto_cmd b = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    fx_spend(f, "acme/bot", 8 * FX_USD);
    f->now_ms = FX_MON + 59 * MIN_MS + 59 * 1000; /* bucket 59: still inside */
    fx_spend(f, "acme/bot", 3 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_FROZEN);
}

static void test_unfreeze_restarts_the_velocity_window(void **state)
{
    struct fx *f = *state;
    struct proto_cmd b = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    fx_spend(f, "acme/bot", 11 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_FROZEN);
    struct proto_cmd u = fx_account_status(PROTO_CMD_ACCOUNT_UNFREEZE, "acme/bot");
    fx_expect_ok(f, &u);
    struct ledger_account_view v = fx_view(f, "acme/bot");
    assert_int_equal(v.status, LEDGER_STATUS_ACTIVE);
    assert_string_equal(v.frozen_reason, "");
    fx_spend(f, "acme/bot", 9 * FX_USD); /* would trip without the restart */
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    fx_assert_verified(f);
}

static void test_admin_adjustments_do_not_count_as_velocity(void **state)
{
    struct fx *f = *state;
    struct proto_cmd b = breaker_cmd("acme/bot", 1 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &b);
    struct proto_cmd t = fx_admin(fx_transfer("acme/bot", "vendor/x", 5 * FX_USD,
                                              PROTO_KIND_ADJUSTMENT));
    fx_expect_ok(f, &t);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    struct proto_cmd cb = fx_transfer("acme/bot", "acme", 2 * FX_USD, PROTO_KIND_CHARGEBACK);
    fx_expect_ok(f, &cb); /* a chargeback out of the subtree is spend */
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_FROZEN);
}

static void test_an_admin_freeze_keeps_its_reason_and_the_refusal_names_it(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/bot");
    c.u.status.reason = fx_s("manual review");
    fx_expect_ok(f, &c);
    assert_string_equal(fx_view(f, "acme/bot").frozen_reason, "manual review");
    struct proto_cmd r = fx_reserve("acme/bot", 1, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_ERR_FROZEN);
    fx_assert_message_has(f, "reason: manual review");
}

static void test_breaker_set_refuses_bad_values_and_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = breaker_cmd("acme/bot", 10 * FX_USD, 999);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "velocity_window_ms");
    c = breaker_cmd("acme/bot", -1, FX_HOUR_MS);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "velocity_max_micros");
    c = bedtime_cmd("acme/bot", 600, 600, 300, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "bedtime");
    c = bedtime_cmd("acme/bot", 1320, 360, 50, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "bedtime_factor_pct");
    c = bedtime_cmd("acme/bot", 1320, 1440, 300, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "bedtime");
    c = breaker_cmd("acme/nobody", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_refused(f, &c, PROTO_ERR_NOT_FOUND, "acme/nobody");
    c = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    c.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, NULL);
}

static void test_breaker_set_with_zeros_removes_the_breaker(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = breaker_cmd("acme/bot", 1 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &c);
    c = breaker_cmd("acme/bot", 0, 0);
    fx_expect_ok(f, &c);
    struct ledger_breaker_view bv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_breaker_get(f->l, "acme/bot", &bv, &err), 0);
    assert_false(bv.is_set);
    fx_spend(f, "acme/bot", 5 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    fx_assert_verified(f);
}

/* ---- bedtime ---- */

/* FX_MON is 00:00 UTC on a Monday; quiet hours 22:00-06:00 UTC. */
#define NIGHT(n) (FX_MON + (n) * FX_DAY_MS + 23 * FX_HOUR_MS) /* 23:00 of day n */

static void test_bedtime_without_history_trips_above_the_floor_only(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = bedtime_cmd("acme/bot", 22 * 60, 6 * 60, 300, 1 * FX_USD);
    fx_expect_ok(f, &c);
    f->now_ms = FX_MON + 12 * FX_HOUR_MS; /* noon: not quiet, not counted */
    fx_spend(f, "acme/bot", 50 * FX_USD);
    f->now_ms = NIGHT(0);
    fx_spend(f, "acme/bot", 1); /* the first cent does not trip */
    fx_spend(f, "acme/bot", FX_USD - 1); /* exactly the floor */
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    f->now_ms = NIGHT(0) + 6 * FX_HOUR_MS; /* 05:00 next day: the same night */
    fx_spend(f, "acme/bot", 1);
    struct ledger_account_view v = fx_view(f, "acme/bot");
    assert_int_equal(v.status, LEDGER_STATUS_FROZEN);
    assert_string_equal(v.frozen_reason, "bedtime");
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 1);
    assert_true(detail_has(&ev->e[0], "\"reason\":\"bedtime\""));
    assert_true(detail_has(&ev->e[0], "\"limit_micros\":1000000"));
}

static void test_bedtime_without_history_or_floor_does_not_trip(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = bedtime_cmd("acme/bot", 22 * 60, 6 * 60, 300, 0);
    fx_expect_ok(f, &c);
    f->now_ms = NIGHT(0);
    fx_spend(f, "acme/bot", 100 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
}

static void test_bedtime_limit_is_factor_times_the_seven_night_average(void **state)
{
    struct fx *f = *state;
    /* A high floor while the history builds up, then a low one: changing
     * the factor or floor keeps the nights counted. */
    struct proto_cmd c = bedtime_cmd("acme/bot", 22 * 60, 6 * 60, 300, 50 * FX_USD);
    fx_expect_ok(f, &c);
    /* Nights 0..6 spend 2 USD each, except night 3 spends 9 USD: average 3 USD. */
    for (int n = 0; n < 7; n++) {
        f->now_ms = NIGHT(n);
        fx_spend(f, "acme/bot", (n == 3 ? 9 : 2) * FX_USD);
    }
    c = bedtime_cmd("acme/bot", 22 * 60, 6 * 60, 300, 1 * FX_USD);
    fx_expect_ok(f, &c);
    /* Night 7: limit 3 x 3 USD = 9 USD. */
    struct ledger_breaker_view bv;
    struct ledger_error err = {0};
    fx_tick(f, NIGHT(7));
    assert_int_equal(ledger_breaker_get(f->l, "acme/bot", &bv, &err), 0);
    assert_true(bv.is_quiet_now);
    assert_int_equal(bv.bedtime_baseline_micros, 3 * FX_USD);
    assert_int_equal(bv.bedtime_limit_micros, 9 * FX_USD);
    fx_spend(f, "acme/bot", 9 * FX_USD);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
    fx_spend(f, "acme/bot", 1);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_FROZEN);
}

static void test_bedtime_uses_the_account_time_zone(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/tokyo", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 9 * 60);
    struct proto_cmd c = bedtime_cmd("acme/tokyo", 22 * 60, 6 * 60, 300, 1 * FX_USD);
    fx_expect_ok(f, &c);
    c = bedtime_cmd("acme/bot", 22 * 60, 6 * 60, 300, 1 * FX_USD);
    fx_expect_ok(f, &c);
    f->now_ms = FX_MON + 10 * FX_HOUR_MS; /* 19:00 in Tokyo: not quiet */
    fx_spend(f, "acme/tokyo", 5 * FX_USD);
    assert_int_equal(fx_view(f, "acme/tokyo").status, LEDGER_STATUS_ACTIVE);
    f->now_ms = FX_MON + 14 * FX_HOUR_MS; /* 23:00 in Tokyo, 14:00 UTC */
    fx_spend(f, "acme/tokyo", 2 * FX_USD);
    fx_spend(f, "acme/bot", 2 * FX_USD);
    assert_int_equal(fx_view(f, "acme/tokyo").status, LEDGER_STATUS_FROZEN);
    assert_int_equal(fx_view(f, "acme/bot").status, LEDGER_STATUS_ACTIVE);
}

/* ---- thresholds ---- */

static void test_thresholds_fire_once_per_period_and_again_next_period(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
    fx_spend(f, "acme/capped", 49 * FX_USD);
    assert_int_equal(events_get(f)->count, 0);
    fx_spend(f, "acme/capped", 1 * FX_USD); /* exactly 50% */
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 1);
    assert_string_equal(ev->e[0].type, "threshold");
    assert_true(detail_has(&ev->e[0], "\"threshold_pct\":50"));
    fx_spend(f, "acme/capped", 40 * FX_USD); /* 90% */
    fx_spend(f, "acme/capped", 5 * FX_USD);  /* 95%: nothing new */
    assert_int_equal(events_get(f)->count, 2);
    fx_spend(f, "acme/capped", 5 * FX_USD);  /* 100% */
    ev = events_get(f);
    assert_int_equal(ev->count, 3);
    assert_true(detail_has(&ev->e[1], "\"threshold_pct\":80"));
    assert_true(detail_has(&ev->e[2], "\"threshold_pct\":100"));
    /* December: a new period, the thresholds fire again. */
    f->now_ms = FX_MON + 20 * FX_DAY_MS;
    fx_spend(f, "acme/capped", 60 * FX_USD);
    ev = events_get(f);
    assert_int_equal(ev->count, 4);
    assert_true(detail_has(&ev->e[3], "\"threshold_pct\":50"));
    assert_true(ev->e[3].ts_ms == f->now_ms);
}

static void test_one_spend_past_several_thresholds_fires_each(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 10 * FX_USD, PROTO_PERIOD_MONTH, 0);
    fx_spend(f, "acme/capped", 10 * FX_USD);
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 3);
    assert_true(ev->e[0].id < ev->e[1].id && ev->e[1].id < ev->e[2].id);
}

static void test_alert_set_replaces_thresholds_and_none_turns_them_off(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
    fx_create(f, "acme/quiet", 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
    struct proto_cmd c = alert_cmd("acme/capped", "25,75");
    fx_expect_ok(f, &c);
    c = alert_cmd("acme/quiet", "none");
    fx_expect_ok(f, &c);
    fx_spend(f, "acme/capped", 30 * FX_USD);
    fx_spend(f, "acme/quiet", 100 * FX_USD);
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 1);
    assert_true(detail_has(&ev->e[0], "\"threshold_pct\":25"));
    c = alert_cmd("acme/capped", "80,50");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "ascending");
    c = alert_cmd("acme/capped", "0");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "thresholds");
    c = alert_cmd("acme/capped", "1,2,3,4,5,6,7,8,9");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "thresholds");
    c = alert_cmd("acme/capped", "50x");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "thresholds");
    fx_assert_verified(f);
}

static void test_uncapped_accounts_and_grants_raise_no_thresholds(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
    struct proto_cmd g = fx_grant_create("acme/capped", 2 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &g);
    char grant[PROTO_NAME_MAX + 1];
    snprintf(grant, sizeof grant, "%s", f->res.name);
    fx_spend(f, grant, 2 * FX_USD); /* 100% of the grant, 2% of acme/capped */
    fx_spend(f, "acme/bot", 100 * FX_USD);
    assert_int_equal(events_get(f)->count, 0);
}

/* ---- the outbox ---- */

/* Open g as a ledger restored from a snapshot of f, at f's time. */
static void restore_copy(struct fx *f, struct fx *g)
{
    void *data = NULL;
    size_t len = 0;
    struct ledger_error err = {0};
    assert_int_equal(ledger_snapshot(f->l, NULL, &data, &len, &err), 0);
    fx_open(g);
    assert_int_equal(ledger_restore(g->l, data, len, &err), 0);
    free(data);
    g->now_ms = f->now_ms;
}

static void test_events_are_in_the_state_hash_and_survive_a_snapshot(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 10 * FX_USD, PROTO_PERIOD_MONTH, 0);
    uint8_t before[32], after[32];
    fx_state_hash(f, before);
    fx_spend(f, "acme/capped", 5 * FX_USD);
    fx_state_hash(f, after);
    assert_false(fx_hash_equal(before, after));
    struct fx g = {0};
    restore_copy(f, &g);
    uint8_t restored[32];
    fx_state_hash(&g, restored);
    assert_true(fx_hash_equal(after, restored));
    struct events *ev = events_get(&g);
    assert_int_equal(ev->count, 1);
    assert_string_equal(ev->e[0].account, "acme/capped");
    /* The next event continues the id sequence. */
    fx_spend(&g, "acme/capped", 3 * FX_USD);
    ev = events_get(&g);
    assert_int_equal(ev->count, 2);
    assert_int_equal(ev->e[1].id, ev->e[0].id + 1);
    fx_assert_verified(&g);
    fx_close(&g);
}

static void test_a_restored_ledger_keeps_its_breakers_and_thresholds(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
    struct proto_cmd c = breaker_cmd("acme/bot", 10 * FX_USD, FX_HOUR_MS);
    fx_expect_ok(f, &c);
    c = alert_cmd("acme/capped", "5");
    fx_expect_ok(f, &c);
    fx_spend(f, "acme/bot", 9 * FX_USD);
    struct fx g = {0};
    restore_copy(f, &g);
    fx_assert_verified(&g);
    fx_spend(&g, "acme/bot", 2 * FX_USD); /* 11 USD in the window: trips */
    fx_spend(&g, "acme/capped", 5 * FX_USD);
    assert_int_equal(fx_view(&g, "acme/bot").status, LEDGER_STATUS_FROZEN);
    struct events *ev = events_get(&g);
    assert_int_equal(ev->count, 2);
    assert_true(detail_has(&ev->e[1], "\"threshold_pct\":5,"));
    fx_close(&g);
}

static void test_event_ack_is_idempotent_and_admin_only(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme/capped", 10 * FX_USD, PROTO_PERIOD_MONTH, 0);
    fx_spend(f, "acme/capped", 10 * FX_USD);
    struct events *ev = events_get(f);
    assert_int_equal(ev->count, 3);
    uint64_t first = ev->e[0].id;
    struct proto_cmd a = ack_cmd(first);
    a.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &a, PROTO_ERR_FORBIDDEN, NULL);
    a.role = PROTO_ROLE_ADMIN;
    fx_expect_ok(f, &a);
    assert_int_equal(f->res.amount_micros, 1);
    uint8_t h[32];
    fx_state_hash(f, h);
    fx_expect_ok(f, &a);
    assert_int_equal(f->res.amount_micros, 0);
    fx_assert_hash(f, h);
    ev = events_get(f);
    assert_int_equal(ev->count, 2);
    assert_true(ev->e[0].id != first);
    a = ack_cmd(0);
    fx_expect_refused(f, &a, PROTO_ERR_INVALID, "event_id");
}

static void test_a_full_outbox_drops_the_oldest_and_counts_them(void **state)
{
    struct fx *f = *state;
    /* Eight thresholds per account, all crossed by one spend: 8 events each. */
    int accounts = LEDGER_OUTBOX_MAX / 8 + 3;
    for (int k = 0; k < accounts; k++) {
        char name[32];
        snprintf(name, sizeof name, "acme/a%d", k);
        fx_create(f, name, 100 * FX_USD, PROTO_PERIOD_MONTH, 0);
        struct proto_cmd c = alert_cmd(name, "1,2,3,4,5,6,7,8");
        fx_expect_ok(f, &c);
        struct proto_cmd t = fx_transfer(name, "vendor/x", 10 * FX_USD, PROTO_KIND_CHARGEBACK);
        fx_expect_ok(f, &t);
    }
    struct ledger_outbox_stats st;
    struct ledger_error err = {0};
    assert_int_equal(ledger_outbox_stats(f->l, &st, &err), 0);
    uint64_t produced = (uint64_t)accounts * 8;
    assert_int_equal(st.pending_count, LEDGER_OUTBOX_MAX);
    assert_int_equal(st.dropped_count, produced - LEDGER_OUTBOX_MAX);
    assert_int_equal(st.next_event_id, produced + 1);
    struct events *ev = events_get(f);
    assert_int_equal(ev->e[0].id, produced - LEDGER_OUTBOX_MAX + 1);
    /* Spend still works with a full outbox. */
    fx_spend(f, "acme/bot", 1);
    fx_assert_verified(f);
}

static void test_unknown_command_types_after_the_last_are_refused_by_the_decoder(void **state)
{
    (void)state;
    struct proto_cmd c = ack_cmd(7);
    struct proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    struct proto_cmd out;
    struct proto_error perr;
    assert_int_equal(proto_cmd_decode(b.data, b.len, &out, &perr), 0);
    assert_int_equal(out.type, PROTO_CMD_EVENT_ACK);
    assert_int_equal((unsigned char)b.data[1], PROTO_CMD_EVENT_ACK); /* [type, ...] */
    for (unsigned t = PROTO_CMD_TYPE_COUNT; t < 128; t++) {
        b.data[1] = (char)t;
        assert_int_not_equal(proto_cmd_decode(b.data, b.len, &out, &perr), 0);
    }
    proto_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_velocity_allows_spend_up_to_the_limit_and_trips_past_it),
        T(test_velocity_counts_a_subtree_and_freezes_the_account_with_the_breaker),
        T(test_velocity_window_forgets_spend_older_than_the_window),
        T(test_velocity_window_still_counts_spend_within_the_last_buckets),
        T(test_unfreeze_restarts_the_velocity_window),
        T(test_admin_adjustments_do_not_count_as_velocity),
        T(test_an_admin_freeze_keeps_its_reason_and_the_refusal_names_it),
        T(test_breaker_set_refuses_bad_values_and_changes_nothing),
        T(test_breaker_set_with_zeros_removes_the_breaker),
        T(test_bedtime_without_history_trips_above_the_floor_only),
        T(test_bedtime_without_history_or_floor_does_not_trip),
        T(test_bedtime_limit_is_factor_times_the_seven_night_average),
        T(test_bedtime_uses_the_account_time_zone),
        T(test_thresholds_fire_once_per_period_and_again_next_period),
        T(test_one_spend_past_several_thresholds_fires_each),
        T(test_alert_set_replaces_thresholds_and_none_turns_them_off),
        T(test_uncapped_accounts_and_grants_raise_no_thresholds),
        T(test_events_are_in_the_state_hash_and_survive_a_snapshot),
        T(test_a_restored_ledger_keeps_its_breakers_and_thresholds),
        T(test_event_ack_is_idempotent_and_admin_only),
        T(test_a_full_outbox_drops_the_oldest_and_counts_them),
        T(test_unknown_command_types_after_the_last_are_refused_by_the_decoder),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
