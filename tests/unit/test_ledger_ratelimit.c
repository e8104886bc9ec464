/*
 * test_ledger_ratelimit.c — rate limits (ledger/ratelimit.c,
 * docs/ledger-rules.md "Rate limits"): sliding windows of entry time, the
 * exact boundary, the Retry-After the ledger computes, account subtrees and
 * metadata scopes, tokens replaced at commit, state hash and snapshot.
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
#define T0 FX_MON
#define SEC 1000LL
#define MIN (60 * SEC)

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = T0;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/eng", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/eng/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "other", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

static struct proto_cmd limit_cmd(const char *account, const char *key, const char *value,
                                  int64_t rpm, int64_t tpm, int64_t tph, int64_t tpd)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_RATE_LIMIT_SET;
    c.role = PROTO_ROLE_ADMIN;
    c.u.rate_limit_set.account = fx_s(account);
    c.u.rate_limit_set.meta_key = fx_s(key);
    c.u.rate_limit_set.meta_value = fx_s(value);
    c.u.rate_limit_set.rpm = rpm;
    c.u.rate_limit_set.tpm = tpm;
    c.u.rate_limit_set.tph = tph;
    c.u.rate_limit_set.tpd = tpd;
    return c;
}

static void limit(struct fx *f, const char *account, const char *key, const char *value,
                  int64_t rpm, int64_t tpm, int64_t tph, int64_t tpd)
{
    struct proto_cmd c = limit_cmd(account, key, value, rpm, tpm, tph, tpd);
    fx_expect_ok(f, &c);
}

/* A reservation of `tokens` at f->now_ms; returns its status. */
static int reserve_at(struct fx *f, int64_t at, const char *account, int64_t tokens,
                      const char *key, const char *value)
{
    struct proto_cmd c = fx_reserve(account, USD, FX_HOUR_MS);
    c.u.reserve.tokens = tokens;
    if (key)
        fx_meta_add(&c, key, value);
    f->now_ms = at;
    return fx_apply(f, &c);
}

static void reserve_ok_at(struct fx *f, int64_t at, const char *account, int64_t tokens)
{
    if (reserve_at(f, at, account, tokens, NULL, NULL) != PROTO_OK)
        fail_msg("reserve at +%lld ms: %s (%s)", (long long)(at - T0),
                 proto_status_name(f->res.status), f->res.message);
}

/* Refused as rate_limited, naming `scope`, with retry_after_ms `retry`,
 * and nothing changed. */
static void expect_limited_at(struct fx *f, int64_t at, const char *account, int64_t tokens,
                              const char *key, const char *value, const char *scope,
                              int64_t retry)
{
    struct proto_cmd c = fx_reserve(account, USD, FX_HOUR_MS);
    c.u.reserve.tokens = tokens;
    if (key)
        fx_meta_add(&c, key, value);
    f->now_ms = at;
    fx_expect_refused(f, &c, PROTO_ERR_RATE_LIMITED, scope);
    assert_string_equal(f->res.name, scope);
    assert_int_equal(f->res.retry_after_ms, retry);
}

static void test_requests_per_minute_slide_with_an_exact_boundary(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 2, 0, 0, 0);
    reserve_ok_at(f, T0, "acme", 0);
    reserve_ok_at(f, T0 + 10 * SEC, "acme", 0);
    /* Full: the first leaves at T0 + 60 s. */
    expect_limited_at(f, T0 + 20 * SEC, "acme", 0, NULL, NULL, "acme", 40 * SEC);
    expect_limited_at(f, T0 + MIN - 1, "acme", 0, NULL, NULL, "acme", 1);
    /* At exactly ts + 60 s the first no longer counts. */
    reserve_ok_at(f, T0 + MIN, "acme", 0);
    /* Now T0+10s and T0+60s are in: the next room is at T0 + 70 s. */
    expect_limited_at(f, T0 + MIN + 1, "acme", 0, NULL, NULL, "acme", 10 * SEC - 1);
    fx_assert_verified(f);
}

static void test_an_account_limit_counts_its_whole_subtree(void **state)
{
    struct fx *f = *state;
    limit(f, "acme/eng", "", "", 1, 0, 0, 0);
    reserve_ok_at(f, T0, "acme/eng/bot", 0);
    expect_limited_at(f, T0 + SEC, "acme/eng/bot", 0, NULL, NULL, "acme/eng", 59 * SEC);
    expect_limited_at(f, T0 + SEC, "acme/eng", 0, NULL, NULL, "acme/eng", 59 * SEC);
    /* Outside the subtree: not limited. */
    reserve_ok_at(f, T0 + SEC, "acme", 0);
    reserve_ok_at(f, T0 + SEC, "other", 0);
}

static void test_a_metadata_scope_counts_only_its_value(void **state)
{
    struct fx *f = *state;
    limit(f, "", "project_id", "p1", 1, 0, 0, 0);
    assert_int_equal(reserve_at(f, T0, "acme/eng/bot", 0, "project_id", "p1"), PROTO_OK);
    expect_limited_at(f, T0 + 5 * SEC, "other", 0, "project_id", "p1", "project_id=p1",
                      55 * SEC);
    assert_int_equal(reserve_at(f, T0 + 5 * SEC, "acme", 0, "project_id", "p2"), PROTO_OK);
    assert_int_equal(reserve_at(f, T0 + 5 * SEC, "acme", 0, "workflow", "p1"), PROTO_OK);
    reserve_ok_at(f, T0 + 5 * SEC, "acme", 0);
}

static void test_a_call_that_fits_requests_but_not_tokens_is_refused(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 100, 1000, 0, 0);
    reserve_ok_at(f, T0, "acme", 600);
    expect_limited_at(f, T0 + SEC, "acme", 500, NULL, NULL, "acme", 59 * SEC);
    reserve_ok_at(f, T0 + SEC, "acme", 400); /* exactly the limit */
    assert_string_equal(f->res.message, "");
}

static void test_retry_after_waits_for_enough_tokens_to_leave(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 0, 1000, 0, 0);
    reserve_ok_at(f, T0, "acme", 400);
    reserve_ok_at(f, T0 + 10 * SEC, "acme", 300);
    /* 700 in; 500 more needs the 400 to leave (T0 + 60 s). */
    expect_limited_at(f, T0 + 20 * SEC, "acme", 500, NULL, NULL, "acme", 40 * SEC);
    /* 800 more needs both to leave (T0 + 70 s). */
    expect_limited_at(f, T0 + 20 * SEC, "acme", 800, NULL, NULL, "acme", 50 * SEC);
    reserve_ok_at(f, T0 + 70 * SEC, "acme", 800);
}

static void test_the_longest_wait_over_scopes_and_windows_wins(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 1, 0, 0, 0);
    limit(f, "", "project_id", "p1", 0, 0, 1000, 0);
    assert_int_equal(reserve_at(f, T0, "acme", 900, "project_id", "p1"), PROTO_OK);
    /* rpm of acme frees at +60 s, tph of p1 at +1 h: the hour wins. */
    expect_limited_at(f, T0 + SEC, "acme", 200, "project_id", "p1", "project_id=p1",
                      FX_HOUR_MS - SEC);
}

static void test_commit_replaces_reserved_tokens_and_release_zeroes_them(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 0, 1000, 0, 0);
    reserve_ok_at(f, T0, "acme", 900);
    uint64_t first = f->res.id;
    expect_limited_at(f, T0 + SEC, "acme", 200, NULL, NULL, "acme", 59 * SEC);
    /* The call used 150 tokens: 850 of room now. */
    struct proto_cmd c = fx_commit(first, USD / 2);
    c.u.commit.tokens = 150;
    f->now_ms = T0 + 2 * SEC;
    fx_expect_ok(f, &c);
    reserve_ok_at(f, T0 + 3 * SEC, "acme", 850);
    uint64_t second = f->res.id;
    expect_limited_at(f, T0 + 4 * SEC, "acme", 1, NULL, NULL, "acme", 56 * SEC);
    /* Released: nothing was generated. */
    c = fx_release(second);
    fx_expect_ok(f, &c);
    reserve_ok_at(f, T0 + 5 * SEC, "acme", 850);
    uint64_t third = f->res.id;
    /* A commit without tokens (unknown) keeps the worst case. */
    c = fx_commit(third, USD);
    f->now_ms = T0 + 6 * SEC;
    fx_expect_ok(f, &c);
    /* 150 (T0) + 0 (released) + 850 in: room when the first 150 leave. */
    expect_limited_at(f, T0 + 7 * SEC, "acme", 1, NULL, NULL, "acme", 53 * SEC);
}

static void test_reservations_without_tokens_count_only_as_requests(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 3, 10, 0, 0);
    reserve_ok_at(f, T0, "acme", 10);
    reserve_ok_at(f, T0 + SEC, "acme", 0);
    reserve_ok_at(f, T0 + 2 * SEC, "acme", 0);
    expect_limited_at(f, T0 + 3 * SEC, "acme", 0, NULL, NULL, "acme", 57 * SEC);
}

static void test_tokens_beyond_a_limit_are_invalid_not_limited(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 0, 1000, 0, 0);
    struct proto_cmd c = fx_reserve("acme/eng", USD, FX_HOUR_MS);
    c.u.reserve.tokens = 1001;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tokens per minute of acme");
    c.u.reserve.tokens = -1;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tokens");
}

static void test_hour_and_day_windows(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 0, 0, 1000, 1500);
    reserve_ok_at(f, T0, "acme", 1000);
    expect_limited_at(f, T0 + 30 * MIN, "acme", 1, NULL, NULL, "acme", 30 * MIN);
    reserve_ok_at(f, T0 + FX_HOUR_MS, "acme", 500);
    /* The day now holds 1500. */
    expect_limited_at(f, T0 + 2 * FX_HOUR_MS, "acme", 1, NULL, NULL, "acme",
                      FX_DAY_MS - 2 * FX_HOUR_MS);
    reserve_ok_at(f, T0 + FX_DAY_MS, "acme", 1000);
}

static int count_cb(void *arg, const struct ledger_rate_limit_view *v)
{
    struct ledger_rate_limit_view *out = arg;
    *out = *v;
    return 0;
}

static void test_clearing_lifts_the_limit_and_list_shows_usage(void **state)
{
    struct fx *f = *state;
    struct ledger_error err;
    limit(f, "acme", "", "", 1, 100, 0, 0);
    reserve_ok_at(f, T0, "acme/eng", 40);
    struct ledger_rate_limit_view v;
    memset(&v, 0, sizeof v);
    assert_int_equal(ledger_rate_limit_list(f->l, count_cb, &v, &err), 0);
    assert_string_equal(v.account, "acme");
    assert_int_equal(v.rpm, 1);
    assert_int_equal(v.tpm, 100);
    assert_int_equal(v.requests_minute, 1);
    assert_int_equal(v.tokens_minute, 40);
    assert_int_equal(v.tokens_day, 40);
    limit(f, "acme", "", "", 0, 0, 0, 0);
    reserve_ok_at(f, T0 + SEC, "acme", 0);
    reserve_ok_at(f, T0 + SEC, "acme", 0);
    memset(&v, 0, sizeof v);
    assert_int_equal(ledger_rate_limit_list(f->l, count_cb, &v, &err), 0);
    assert_string_equal(v.account, ""); /* nothing listed */
    /* Set again: counts from now on only. */
    limit(f, "acme", "", "", 1, 0, 0, 0);
    reserve_ok_at(f, T0 + 2 * SEC, "acme", 0);
    expect_limited_at(f, T0 + 3 * SEC, "acme", 0, NULL, NULL, "acme", 59 * SEC);
}

static void test_events_older_than_a_day_are_pruned(void **state)
{
    struct fx *f = *state;
    struct ledger_error err;
    limit(f, "acme", "", "", 0, 0, 0, 1000);
    reserve_ok_at(f, T0, "acme", 1000);
    fx_tick(f, T0 + FX_DAY_MS);
    struct ledger_rate_limit_view v;
    memset(&v, 0, sizeof v);
    assert_int_equal(ledger_rate_limit_list(f->l, count_cb, &v, &err), 0);
    assert_int_equal(v.tokens_day, 0);
    reserve_ok_at(f, T0 + FX_DAY_MS, "acme", 1000);
}

static void test_rate_limit_set_is_admin_only_and_validated(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = limit_cmd("acme", "", "", 1, 0, 0, 0);
    c.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, "admin");
    c = limit_cmd("", "", "", 1, 0, 0, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "scope");
    c = limit_cmd("acme", "project_id", "x", 1, 0, 0, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "scope");
    c = limit_cmd("acme", "", "x", 1, 0, 0, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "meta_value");
    c = limit_cmd("nobody", "", "", 1, 0, 0, 0);
    fx_expect_refused(f, &c, PROTO_ERR_NOT_FOUND, "account");
    c = limit_cmd("acme", "", "", 1, -1, 0, 0);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tpm");
}

static void test_limits_are_state_hashed_and_survive_a_snapshot(void **state)
{
    struct fx *f = *state;
    struct ledger_error err;
    uint8_t before[32], after[32];
    fx_state_hash(f, before);
    limit(f, "acme", "", "", 1, 0, 0, 0);
    fx_state_hash(f, after);
    assert_false(fx_hash_equal(before, after));
    reserve_ok_at(f, T0, "acme", 0);
    fx_state_hash(f, before);
    void *img = NULL;
    size_t len = 0;
    assert_int_equal(ledger_snapshot(f->l, NULL, &img, &len, &err), 0);
    struct fx g;
    memset(&g, 0, sizeof g);
    fx_open(&g);
    assert_int_equal(ledger_restore(g.l, img, len, &err), 0);
    free(img);
    fx_state_hash(&g, after);
    assert_true(fx_hash_equal(before, after));
    expect_limited_at(&g, T0 + SEC, "acme", 0, NULL, NULL, "acme", 59 * SEC);
    fx_close(&g);
}

/* A repeated keyed reserve answers from the idempotency store: it is not a
 * second request. */
static void test_a_repeated_keyed_reserve_counts_once(void **state)
{
    struct fx *f = *state;
    limit(f, "acme", "", "", 1, 0, 0, 0);
    struct proto_cmd c = fx_keyed(fx_reserve("acme", USD, FX_HOUR_MS), "k1");
    fx_expect_ok(f, &c);
    uint64_t id = f->res.id;
    f->now_ms = T0 + SEC;
    fx_expect_ok(f, &c);
    assert_int_equal(f->res.id, id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_per_minute_slide_with_an_exact_boundary,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_account_limit_counts_its_whole_subtree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_metadata_scope_counts_only_its_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_call_that_fits_requests_but_not_tokens_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_waits_for_enough_tokens_to_leave, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_longest_wait_over_scopes_and_windows_wins,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_commit_replaces_reserved_tokens_and_release_zeroes_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reservations_without_tokens_count_only_as_requests,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_beyond_a_limit_are_invalid_not_limited,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hour_and_day_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clearing_lifts_the_limit_and_list_shows_usage,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_older_than_a_day_are_pruned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_set_is_admin_only_and_validated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits_are_state_hashed_and_survive_a_snapshot,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_repeated_keyed_reserve_counts_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
