/*
 * test_ledger_reserve.c — reservation rules (docs/ledger-rules.md, "Fitting",
 * reserve / commit / release / expire): hierarchical caps on a deep tree,
 * frozen and closed paths, the two-phase life of a hold, expiry, payees, and
 * bad input that must change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/ledger_fixture.h"

#define USD FX_USD
#define TTL_MS (60LL * 1000)

/* An eight-level path; tests cap one or more levels of it. */
#define DEPTH 8
static const char *const deep[DEPTH] = {
    "t",
    "t/l1",
    "t/l1/l2",
    "t/l1/l2/l3",
    "t/l1/l2/l3/l4",
    "t/l1/l2/l3/l4/l5",
    "t/l1/l2/l3/l4/l5/l6",
    "t/l1/l2/l3/l4/l5/l6/l7",
};
#define LEAF (deep[DEPTH - 1])

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

/* Build the deep path with `caps[i]` at level i. */
static void build_deep(struct fx *f, const int64_t caps[DEPTH])
{
    for (int i = 0; i < DEPTH; i++)
        fx_create(f, deep[i], caps[i], PROTO_PERIOD_NONE, 0);
}

static void build_deep_capped_at(struct fx *f, int level, int64_t cap_micros)
{
    int64_t caps[DEPTH];
    for (int i = 0; i < DEPTH; i++)
        caps[i] = i == level ? cap_micros : PROTO_CAP_NONE;
    build_deep(f, caps);
}

/* With a cap of 100 USD only at `level`, a leaf reservation is bounded by
 * that level: 60 fits, 50 more is refused naming it with 40 left, 40 fits. */
static void check_cap_at_level(struct fx *f, int level)
{
    uint8_t before[32];
    build_deep_capped_at(f, level, 100 * USD);

    struct proto_cmd r60 = fx_reserve(LEAF, 60 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &r60), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 40 * USD);

    fx_state_hash(f, before);
    struct proto_cmd r50 = fx_reserve(LEAF, 50 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &r50), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, deep[level]);
    assert_int_equal(f->res.remaining_micros, 40 * USD);
    fx_assert_hash(f, before);

    struct proto_cmd r40 = fx_reserve(LEAF, 40 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &r40), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 0);
    assert_int_equal(fx_view(f, deep[level]).reserved_micros, 100 * USD);
    fx_assert_verified(f);
}

static void test_reserve_refuses_when_root_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 0);
}

static void test_reserve_refuses_when_level1_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 1);
}

static void test_reserve_refuses_when_level2_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 2);
}

static void test_reserve_refuses_when_level3_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 3);
}

static void test_reserve_refuses_when_level4_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 4);
}

static void test_reserve_refuses_when_level5_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 5);
}

static void test_reserve_refuses_when_level6_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 6);
}

static void test_reserve_refuses_when_own_cap_exhausted(void **state)
{
    check_cap_at_level(*state, 7);
}

static void test_reserve_names_deepest_limiting_account(void **state)
{
    struct fx *f = *state;
    const int64_t caps[DEPTH] = {-1, 30 * USD, -1, -1, -1, 50 * USD, -1, -1};
    build_deep(f, caps);

    struct proto_cmd c = fx_reserve(LEAF, 60 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, deep[5]);
    assert_int_equal(f->res.remaining_micros, 50 * USD);
}

static void test_reserve_names_ancestor_when_leaf_has_room(void **state)
{
    struct fx *f = *state;
    const int64_t caps[DEPTH] = {-1, -1, 30 * USD, -1, -1, -1, -1, 100 * USD};
    build_deep(f, caps);

    struct proto_cmd c = fx_reserve(LEAF, 50 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, deep[2]);
    assert_int_equal(f->res.remaining_micros, 30 * USD);
}

static void test_reserve_reports_tightest_room_on_path(void **state)
{
    struct fx *f = *state;
    const int64_t caps[DEPTH] = {-1, 100 * USD, -1, -1, -1, -1, 500 * USD, -1};
    build_deep(f, caps);

    struct proto_cmd c = fx_reserve(LEAF, 10 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 90 * USD);
    assert_int_equal(fx_view(f, LEAF).available_micros, 90 * USD);
    assert_int_equal(fx_view(f, deep[6]).available_micros, 90 * USD);
    fx_assert_verified(f);
}

static void test_reserve_holds_on_every_ancestor(void **state)
{
    struct fx *f = *state;
    build_deep_capped_at(f, 0, 1000 * USD);

    fx_reserve_ok(f, LEAF, 30 * USD);
    for (int i = 0; i < DEPTH; i++) {
        struct ledger_account_view v = fx_view(f, deep[i]);
        assert_int_equal(v.reserved_micros, 30 * USD);
        assert_int_equal(v.spent_micros, 0);
        assert_int_equal(v.available_micros, 970 * USD);
    }
    fx_assert_verified(f);
}

static void test_reserve_result_reports_amount_deadline_and_remaining(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);

    struct proto_cmd c = fx_reserve("acme", 30 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.id != 0);
    assert_int_equal(f->res.amount_micros, 30 * USD);
    assert_int_equal(f->res.expires_at_ms, FX_MON + TTL_MS);
    assert_int_equal(f->res.remaining_micros, 70 * USD);

    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, f->res.id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);
    assert_string_equal(rv.account, "acme");
    assert_string_equal(rv.payee, "vendor/openai");
    assert_int_equal(rv.amount_micros, 30 * USD);
    assert_int_equal(rv.expires_at_ms, FX_MON + TTL_MS);
    fx_assert_verified(f);
}

static void test_reserve_on_uncapped_path_reports_unlimited(void **state)
{
    struct fx *f = *state;
    build_deep_capped_at(f, -1, 0);

    struct proto_cmd c = fx_reserve(LEAF, PROTO_AMOUNT_MAX, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.remaining_micros == PROTO_UNLIMITED);
    assert_true(fx_view(f, deep[0]).available_micros == PROTO_UNLIMITED);
    assert_true(fx_view(f, LEAF).available_micros == PROTO_UNLIMITED);
    assert_int_equal(fx_view(f, deep[0]).reserved_micros, PROTO_AMOUNT_MAX);
    fx_assert_verified(f);
}

static void test_reserve_refuses_when_ancestor_frozen(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    build_deep_capped_at(f, -1, 0);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, deep[3]);
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_reserve(LEAF, 1 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, deep[3]);
    fx_assert_hash(f, before);
    fx_assert_verified(f);
}

static void test_reserve_refuses_when_account_frozen(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/bot");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);

    struct proto_cmd c = fx_reserve("acme/bot", 1 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme/bot");
    fx_assert_verified(f);
}

static void test_reserve_fits_again_after_unfreeze(void **state)
{
    struct fx *f = *state;
    build_deep_capped_at(f, -1, 0);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, deep[1]);
    struct proto_cmd un = fx_account_status(PROTO_CMD_ACCOUNT_UNFREEZE, deep[1]);
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    assert_int_equal(fx_apply(f, &un), PROTO_OK);

    struct proto_cmd c = fx_reserve(LEAF, 1 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    fx_assert_verified(f);
}

static void test_reserve_refuses_on_closed_account(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/old", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/old");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_reserve("acme/old", 1 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme/old");
    fx_assert_hash(f, before);
    fx_assert_verified(f);
}

static void test_reserve_refuses_closed_payee(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/svc", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/svc");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_reserve("acme/a", 1 * USD, TTL_MS);
    c.u.reserve.payee = fx_s("acme/svc");
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme/svc");
    fx_assert_hash(f, before);
}

/* ---- commit ---- */

/* acme capped at 100 USD with one open 40 USD hold; returns its id. */
static uint64_t acme_with_hold(struct fx *f)
{
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_reserve("acme", 40 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    return f->res.id;
}

static void test_commit_less_than_held_posts_actual_and_frees_hold(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    uint64_t id = acme_with_hold(f);

    struct proto_cmd c = fx_commit(id, 25 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, id);
    assert_true(f->res.transfer_id != 0);
    assert_int_equal(f->res.amount_micros, 25 * USD);
    assert_int_equal(f->res.overrun_micros, 0);
    assert_int_equal(f->res.remaining_micros, 75 * USD);
    uint64_t tid = f->res.transfer_id;

    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 25 * USD);
    assert_int_equal(v.reserved_micros, 0);
    assert_int_equal(v.available_micros, 75 * USD);

    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].id, tid);
    assert_int_equal(p[0].kind, PROTO_KIND_SPEND);
    assert_string_equal(p[0].debit, "acme");
    assert_string_equal(p[0].credit, "vendor/openai");
    assert_int_equal(p[0].amount_micros, 25 * USD);
    assert_int_equal(p[0].reservation_id, id);
    assert_int_equal(p[0].overrun_micros, 0);
    assert_int_equal(p[0].ts_ms, FX_MON);

    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_COMMITTED);
    assert_int_equal(rv.actual_micros, 25 * USD);
    assert_int_equal(rv.transfer_id, tid);
    fx_assert_verified(f);
}

static void test_commit_equal_to_held_has_no_overrun(void **state)
{
    struct fx *f = *state;
    uint64_t id = acme_with_hold(f);

    struct proto_cmd c = fx_commit(id, 40 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 40 * USD);
    assert_int_equal(f->res.overrun_micros, 0);
    assert_int_equal(f->res.remaining_micros, 60 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 40 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_commit_more_than_held_records_overrun(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    uint64_t id = acme_with_hold(f);

    struct proto_cmd c = fx_commit(id, 55 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 55 * USD);
    assert_int_equal(f->res.overrun_micros, 15 * USD);
    assert_int_equal(f->res.remaining_micros, 45 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 55 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);

    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].amount_micros, 55 * USD);
    assert_int_equal(p[0].overrun_micros, 15 * USD);
    fx_assert_verified(f);
}

static void test_commit_beyond_cap_is_posted_as_overrun(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    uint64_t id = fx_reserve_ok(f, "acme", 90 * USD);

    struct proto_cmd c = fx_commit(id, 130 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.overrun_micros, 40 * USD);
    assert_int_equal(f->res.remaining_micros, 0);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 130 * USD);
    assert_int_equal(v.available_micros, 0);
    /* Recorded overruns are allowed past the cap. */
    fx_assert_verified(f);

    struct proto_cmd more = fx_reserve("acme", 1, TTL_MS);
    assert_int_equal(fx_apply(f, &more), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme");
    assert_int_equal(f->res.remaining_micros, 0);
}

static void test_commit_is_posted_on_frozen_account(void **state)
{
    struct fx *f = *state;
    uint64_t id = acme_with_hold(f);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);

    struct proto_cmd c = fx_commit(id, 30 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.transfer_id != 0);
    assert_int_equal(fx_view(f, "acme").spent_micros, 30 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_commit_twice_same_actual_returns_first_answer(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);
    struct proto_cmd c = fx_commit(id, 25 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct proto_result first = f->res;

    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, first.id);
    assert_int_equal(f->res.transfer_id, first.transfer_id);
    assert_int_equal(f->res.amount_micros, first.amount_micros);
    assert_int_equal(f->res.overrun_micros, first.overrun_micros);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").spent_micros, 25 * USD);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
    fx_assert_verified(f);
}

static void test_commit_twice_different_actual_conflicts(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);
    struct proto_cmd c = fx_commit(id, 25 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd again = fx_commit(id, 26 * USD);
    assert_int_equal(fx_apply(f, &again), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").spent_micros, 25 * USD);
    fx_assert_verified(f);
}

static void test_commit_after_release_conflicts(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);
    struct proto_cmd rel = fx_release(id);
    assert_int_equal(fx_apply(f, &rel), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_commit(id, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
    fx_assert_verified(f);
}

static void test_commit_zero_actual_posts_nothing(void **state)
{
    struct fx *f = *state;
    uint64_t id = acme_with_hold(f);

    struct proto_cmd c = fx_commit(id, 0);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.transfer_id, 0);
    assert_int_equal(f->res.amount_micros, 0);
    assert_int_equal(f->res.overrun_micros, 0);
    assert_int_equal(f->res.remaining_micros, 100 * USD);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 0);
    assert_int_equal(v.reserved_micros, 0);

    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_COMMITTED);
    assert_int_equal(rv.transfer_id, 0);
    fx_assert_verified(f);
}

static void test_commit_unknown_reservation_not_found(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_commit(id + 1000, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_NOT_FOUND);
    fx_assert_hash(f, before);
}

static void test_commit_refuses_negative_actual(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_commit(id, -1);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_INVALID);
    fx_assert_message_has(f, "actual");
    fx_assert_hash(f, before);
}

static void test_commit_refuses_actual_above_max(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_commit(id, PROTO_AMOUNT_MAX + 1);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_INVALID);
    fx_assert_message_has(f, "actual");
    fx_assert_hash(f, before);
}

static void test_commit_posts_reservation_metadata_when_commit_has_none(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[2];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 10 * USD, TTL_MS);
    fx_meta_add(&r, "task", "t-reserve");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);

    struct proto_cmd c = fx_commit(f->res.id, 5 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 2), 1);
    assert_non_null(strstr(p[0].metadata_json, "\"task\""));
    assert_non_null(strstr(p[0].metadata_json, "\"t-reserve\""));
    fx_assert_verified(f);
}

static void test_commit_metadata_replaces_reservation_metadata(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[2];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 10 * USD, TTL_MS);
    fx_meta_add(&r, "task", "t-reserve");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);

    struct proto_cmd c = fx_commit(f->res.id, 5 * USD);
    fx_meta_add(&c, "task", "t-commit");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 2), 1);
    assert_non_null(strstr(p[0].metadata_json, "\"t-commit\""));
    assert_null(strstr(p[0].metadata_json, "t-reserve"));
    fx_assert_verified(f);
}

/* ---- release ---- */

static void test_release_frees_hold_and_returns_amount(void **state)
{
    struct fx *f = *state;
    uint64_t id = acme_with_hold(f);

    struct proto_cmd c = fx_release(id);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, id);
    assert_int_equal(f->res.returned_micros, 40 * USD);
    assert_int_equal(f->res.remaining_micros, 100 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
    fx_assert_verified(f);
}

static void test_release_twice_returns_first_answer(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);
    struct proto_cmd c = fx_release(id);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct proto_result first = f->res;

    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, first.id);
    assert_int_equal(f->res.returned_micros, first.returned_micros);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_release_after_commit_conflicts(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);
    struct proto_cmd c = fx_commit(id, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    fx_state_hash(f, before);
    struct proto_cmd rel = fx_release(id);
    assert_int_equal(fx_apply(f, &rel), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    fx_assert_verified(f);
}

static void test_release_unknown_reservation_not_found(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    uint64_t id = acme_with_hold(f);

    fx_state_hash(f, before);
    struct proto_cmd rel = fx_release(id + 1000);
    assert_int_equal(fx_apply(f, &rel), PROTO_ERR_NOT_FOUND);
    fx_assert_hash(f, before);
}

/* ---- expire ---- */

static void test_expire_frees_only_holds_past_deadline(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd a = fx_reserve("acme", 10 * USD, 1000);
    struct proto_cmd b = fx_reserve("acme", 20 * USD, 5000);
    assert_int_equal(fx_apply(f, &a), PROTO_OK);
    uint64_t ida = f->res.id;
    assert_int_equal(fx_apply(f, &b), PROTO_OK);
    uint64_t idb = f->res.id;

    fx_tick(f, FX_MON + 2000);
    assert_int_equal(f->res.amount_micros, 1);

    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, ida, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_EXPIRED);
    assert_int_equal(ledger_reservation_get(f->l, idb, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 20 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    fx_assert_verified(f);
}

static void test_expire_frees_hold_whose_deadline_is_exactly_now(void **state)
{
    struct fx *f = *state;
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 10 * USD, 1000);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;

    fx_tick(f, FX_MON + 999);
    assert_int_equal(f->res.amount_micros, 0);
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);

    fx_tick(f, FX_MON + 1000);
    assert_int_equal(f->res.amount_micros, 1);
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_EXPIRED);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_expire_charge_posts_whole_hold(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    r.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;

    fx_tick(f, FX_MON + 1000);
    assert_int_equal(f->res.amount_micros, 1);
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_CHARGED);

    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 40 * USD);
    assert_int_equal(v.reserved_micros, 0);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].kind, PROTO_KIND_SPEND);
    assert_string_equal(p[0].debit, "acme");
    assert_string_equal(p[0].credit, "vendor/openai");
    assert_int_equal(p[0].amount_micros, 40 * USD);
    assert_int_equal(p[0].reservation_id, id);
    assert_int_equal(p[0].ts_ms, FX_MON + 1000);
    fx_assert_verified(f);
}

static void test_commit_after_charge_conflicts(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    r.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);

    fx_state_hash(f, before);
    struct proto_cmd c = fx_commit(id, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").spent_micros, 40 * USD);
    fx_assert_verified(f);
}

static void test_release_after_charge_conflicts(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    r.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);

    fx_state_hash(f, before);
    struct proto_cmd rel = fx_release(id);
    assert_int_equal(fx_apply(f, &rel), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
}

static void test_late_commit_after_expire_is_all_overrun(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);

    f->now_ms = FX_MON + 2000;
    struct proto_cmd c = fx_commit(id, 25 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.transfer_id != 0);
    assert_int_equal(f->res.amount_micros, 25 * USD);
    assert_int_equal(f->res.overrun_micros, 25 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 25 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].overrun_micros, 25 * USD);
    assert_int_equal(p[0].amount_micros, 25 * USD);
    fx_assert_verified(f);
}

static void test_release_after_expire_is_ok_and_changes_nothing(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);

    fx_state_hash(f, before);
    struct proto_cmd rel = fx_release(id);
    assert_int_equal(fx_apply(f, &rel), PROTO_OK);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
}

/* ---- payees ---- */

static void test_reserve_creates_vendor_payee_and_commit_credits_it(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    struct ledger_error err = {0};
    struct ledger_account_view v;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(ledger_account_get(f->l, "vendor/anthropic", &v, &err),
                     LEDGER_ENOTFOUND);

    struct proto_cmd r = fx_reserve("acme", 10 * USD, TTL_MS);
    r.u.reserve.payee = fx_s("vendor/anthropic");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    v = fx_view(f, "vendor/anthropic");
    assert_true(v.cap_micros == PROTO_CAP_NONE);
    assert_int_equal(v.period, PROTO_PERIOD_NONE);
    assert_int_equal(v.status, LEDGER_STATUS_ACTIVE);
    fx_view(f, "vendor");

    struct proto_cmd c = fx_commit(f->res.id, 7 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_string_equal(p[0].debit, "acme");
    assert_string_equal(p[0].credit, "vendor/anthropic");
    assert_int_equal(p[0].amount_micros, 7 * USD);
    assert_int_equal(fx_view(f, "vendor/anthropic").spent_micros, 0);
    fx_assert_verified(f);
}

static void test_reserve_empty_payee_pays_vendor_unknown(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);

    struct proto_cmd r = fx_reserve("acme", 10 * USD, TTL_MS);
    r.u.reserve.payee = fx_s("");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    assert_int_equal(ledger_reservation_get(f->l, id, &rv, &err), 0);
    assert_string_equal(rv.payee, "vendor/unknown");

    struct proto_cmd c = fx_commit(id, 3 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_string_equal(p[0].credit, "vendor/unknown");
    fx_assert_verified(f);
}

static void test_commit_to_sibling_payee_is_not_spend_of_common_ancestor(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);

    struct proto_cmd r = fx_reserve("acme/a", 10 * USD, TTL_MS);
    r.u.reserve.payee = fx_s("acme/b");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    struct proto_cmd c = fx_commit(f->res.id, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    assert_int_equal(fx_view(f, "acme/a").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/b").spent_micros, 0);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    assert_int_equal(fx_view(f, "acme").available_micros, 100 * USD);
    fx_assert_verified(f);
}

/* ---- bad input changes nothing ---- */

/* acme capped at 100 USD with one committed spend (so vendor/openai exists). */
static void acme_with_history(struct fx *f)
{
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 1 * USD);
}

static void assert_reserve_refused(struct fx *f, struct proto_cmd c, int status,
                                   const char *needle)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), status);
    fx_assert_message_has(f, needle);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
    fx_assert_verified(f);
}

static void test_reserve_refuses_zero_amount(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    assert_reserve_refused(f, fx_reserve("acme", 0, TTL_MS), PROTO_ERR_INVALID, "amount");
}

static void test_reserve_refuses_negative_amount(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    assert_reserve_refused(f, fx_reserve("acme", -5 * USD, TTL_MS), PROTO_ERR_INVALID,
                           "amount");
}

static void test_reserve_refuses_amount_above_max(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 1 * USD);
    assert_reserve_refused(f, fx_reserve("acme", PROTO_AMOUNT_MAX + 1, TTL_MS),
                           PROTO_ERR_INVALID, "amount");
}

static void test_reserve_accepts_amount_max_on_uncapped_account(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_reserve("acme", PROTO_AMOUNT_MAX, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_view(f, "acme").reserved_micros, PROTO_AMOUNT_MAX);
    fx_assert_verified(f);
}

static void test_reserve_refuses_zero_ttl(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    assert_reserve_refused(f, fx_reserve("acme", 1 * USD, 0), PROTO_ERR_INVALID, "ttl");
}

static void test_reserve_refuses_ttl_above_366_days(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    assert_reserve_refused(f, fx_reserve("acme", 1 * USD, PROTO_TTL_MAX_MS + 1),
                           PROTO_ERR_INVALID, "ttl");
}

static void test_reserve_refuses_unknown_on_expire(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    struct proto_cmd c = fx_reserve("acme", 1 * USD, TTL_MS);
    c.u.reserve.on_expire = 2;
    assert_reserve_refused(f, c, PROTO_ERR_INVALID, "on_expire");
}

static void test_reserve_refuses_unknown_account(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    assert_reserve_refused(f, fx_reserve("acme/nope", 1 * USD, TTL_MS),
                           PROTO_ERR_NOT_FOUND, "acme/nope");
}

static void test_reserve_refuses_unknown_payee(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    struct proto_cmd c = fx_reserve("acme", 1 * USD, TTL_MS);
    c.u.reserve.payee = fx_s("acme/ghost");
    assert_reserve_refused(f, c, PROTO_ERR_NOT_FOUND, "acme/ghost");
}

static void test_reserve_refuses_payee_equal_to_account(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    struct proto_cmd c = fx_reserve("acme", 1 * USD, TTL_MS);
    c.u.reserve.payee = fx_s("acme");
    assert_reserve_refused(f, c, PROTO_ERR_INVALID, "payee");
}

static void test_refused_reserve_does_not_create_vendor_payee(void **state)
{
    struct fx *f = *state;
    struct ledger_account_view v;
    struct ledger_error err = {0};
    acme_with_history(f);
    struct proto_cmd c = fx_reserve("acme", 0, TTL_MS);
    c.u.reserve.payee = fx_s("vendor/newco");
    assert_reserve_refused(f, c, PROTO_ERR_INVALID, "amount");
    assert_int_equal(ledger_account_get(f->l, "vendor/newco", &v, &err), LEDGER_ENOTFOUND);
}

static void test_reserve_refused_over_cap_changes_nothing(void **state)
{
    struct fx *f = *state;
    acme_with_history(f);
    struct proto_cmd c = fx_reserve("acme", 100 * USD, TTL_MS);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme");
    assert_int_equal(f->res.remaining_micros, 99 * USD);
    fx_assert_hash(f, before);
}

/* ---- more path rules ---- */

static void test_reserve_refuses_when_sibling_used_shared_cap(void **state)
{
    struct fx *f = *state;
    fx_create(f, "swarm", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "swarm/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "swarm/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "swarm/a", 50 * USD);
    fx_reserve_ok(f, "swarm/a", 20 * USD);

    uint8_t before[32];
    fx_state_hash(f, before);
    struct proto_cmd c = fx_reserve("swarm/b", 40 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "swarm");
    assert_int_equal(f->res.remaining_micros, 30 * USD);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "swarm/b").available_micros, 30 * USD);
}

static void test_reserve_ignores_frozen_descendant(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/bot");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);

    struct proto_cmd c = fx_reserve("acme", 10 * USD, TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 90 * USD);
    fx_assert_verified(f);
}

static void test_reserve_accepts_ttl_bounds(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd shortest = fx_reserve("acme", 1, 1);
    assert_int_equal(fx_apply(f, &shortest), PROTO_OK);
    assert_int_equal(f->res.expires_at_ms, FX_MON + 1);
    struct proto_cmd longest = fx_reserve("acme", 1, PROTO_TTL_MAX_MS);
    assert_int_equal(fx_apply(f, &longest), PROTO_OK);
    assert_int_equal(f->res.expires_at_ms, FX_MON + PROTO_TTL_MAX_MS);
    fx_assert_verified(f);
}

static void test_commit_is_posted_when_payee_closed_meanwhile(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/svc", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme/a", 10 * USD, TTL_MS);
    r.u.reserve.payee = fx_s("acme/svc");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/svc");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);

    struct proto_cmd c = fx_commit(id, 6 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_string_equal(p[0].credit, "acme/svc");
    assert_int_equal(p[0].amount_micros, 6 * USD);
    fx_assert_verified(f);
}

static void test_late_commit_of_zero_after_expire_posts_nothing(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);

    struct proto_cmd c = fx_commit(id, 0);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.transfer_id, 0);
    assert_int_equal(f->res.overrun_micros, 0);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    fx_assert_verified(f);
}

static void test_expire_forgets_closed_reservations_after_a_day(void **state)
{
    struct fx *f = *state;
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    uint64_t done = fx_reserve_ok(f, "acme", 10 * USD);
    struct proto_cmd c = fx_commit(done, 10 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct proto_cmd r = fx_reserve("acme", 5 * USD, 3 * FX_DAY_MS);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t open = f->res.id;

    fx_tick(f, FX_MON + 2 * FX_DAY_MS);
    assert_int_equal(ledger_reservation_get(f->l, done, &rv, &err), LEDGER_ENOTFOUND);
    assert_int_equal(ledger_reservation_get(f->l, open, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);
    assert_int_equal(fx_view(f, "acme").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 5 * USD);
    fx_assert_verified(f);
}

static void test_late_commit_twice_returns_first_answer(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("acme", 40 * USD, 1000);
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    uint64_t id = f->res.id;
    fx_tick(f, FX_MON + 1000);
    struct proto_cmd c = fx_commit(id, 25 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct proto_result first = f->res;
    assert_int_equal(first.overrun_micros, 25 * USD);

    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.transfer_id, first.transfer_id);
    assert_int_equal(f->res.amount_micros, first.amount_micros);
    assert_int_equal(f->res.overrun_micros, first.overrun_micros);
    fx_assert_hash(f, before);
}

static void test_reserve_accepts_frozen_payee(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/svc", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/svc");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);

    struct proto_cmd r = fx_reserve("acme/a", 1 * USD, TTL_MS);
    r.u.reserve.payee = fx_s("acme/svc");
    assert_int_equal(fx_apply(f, &r), PROTO_OK);
    fx_assert_verified(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_reserve_refuses_when_root_cap_exhausted),
        T(test_reserve_refuses_when_level1_cap_exhausted),
        T(test_reserve_refuses_when_level2_cap_exhausted),
        T(test_reserve_refuses_when_level3_cap_exhausted),
        T(test_reserve_refuses_when_level4_cap_exhausted),
        T(test_reserve_refuses_when_level5_cap_exhausted),
        T(test_reserve_refuses_when_level6_cap_exhausted),
        T(test_reserve_refuses_when_own_cap_exhausted),
        T(test_reserve_names_deepest_limiting_account),
        T(test_reserve_names_ancestor_when_leaf_has_room),
        T(test_reserve_reports_tightest_room_on_path),
        T(test_reserve_holds_on_every_ancestor),
        T(test_reserve_result_reports_amount_deadline_and_remaining),
        T(test_reserve_on_uncapped_path_reports_unlimited),
        T(test_reserve_refuses_when_ancestor_frozen),
        T(test_reserve_refuses_when_account_frozen),
        T(test_reserve_fits_again_after_unfreeze),
        T(test_reserve_refuses_on_closed_account),
        T(test_reserve_refuses_closed_payee),
        T(test_commit_less_than_held_posts_actual_and_frees_hold),
        T(test_commit_equal_to_held_has_no_overrun),
        T(test_commit_more_than_held_records_overrun),
        T(test_commit_beyond_cap_is_posted_as_overrun),
        T(test_commit_is_posted_on_frozen_account),
        T(test_commit_twice_same_actual_returns_first_answer),
        T(test_commit_twice_different_actual_conflicts),
        T(test_commit_after_release_conflicts),
        T(test_commit_zero_actual_posts_nothing),
        T(test_commit_unknown_reservation_not_found),
        T(test_commit_refuses_negative_actual),
        T(test_commit_refuses_actual_above_max),
        T(test_commit_posts_reservation_metadata_when_commit_has_none),
        T(test_commit_metadata_replaces_reservation_metadata),
        T(test_release_frees_hold_and_returns_amount),
        T(test_release_twice_returns_first_answer),
        T(test_release_after_commit_conflicts),
        T(test_release_unknown_reservation_not_found),
        T(test_expire_frees_only_holds_past_deadline),
        T(test_expire_frees_hold_whose_deadline_is_exactly_now),
        T(test_expire_charge_posts_whole_hold),
        T(test_commit_after_charge_conflicts),
        T(test_release_after_charge_conflicts),
        T(test_late_commit_after_expire_is_all_overrun),
        T(test_release_after_expire_is_ok_and_changes_nothing),
        T(test_reserve_creates_vendor_payee_and_commit_credits_it),
        T(test_reserve_empty_payee_pays_vendor_unknown),
        T(test_commit_to_sibling_payee_is_not_spend_of_common_ancestor),
        T(test_reserve_refuses_zero_amount),
        T(test_reserve_refuses_negative_amount),
        T(test_reserve_refuses_amount_above_max),
        T(test_reserve_accepts_amount_max_on_uncapped_account),
        T(test_reserve_refuses_zero_ttl),
        T(test_reserve_refuses_ttl_above_366_days),
        T(test_reserve_refuses_unknown_on_expire),
        T(test_reserve_refuses_unknown_account),
        T(test_reserve_refuses_unknown_payee),
        T(test_reserve_refuses_payee_equal_to_account),
        T(test_refused_reserve_does_not_create_vendor_payee),
        T(test_reserve_refused_over_cap_changes_nothing),
        T(test_reserve_refuses_when_sibling_used_shared_cap),
        T(test_reserve_ignores_frozen_descendant),
        T(test_reserve_accepts_ttl_bounds),
        T(test_commit_is_posted_when_payee_closed_meanwhile),
        T(test_late_commit_of_zero_after_expire_posts_nothing),
        T(test_expire_forgets_closed_reservations_after_a_day),
        T(test_late_commit_twice_returns_first_answer),
        T(test_reserve_accepts_frozen_payee),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
