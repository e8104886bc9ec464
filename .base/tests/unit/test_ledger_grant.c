/*
 * test_ledger_grant.c — grant rules (docs/ledger-rules.md, grant create /
 * close, expire, "Balances" and "Fitting"): a grant is a capped child
 * account whose hold sits on the parent's path, whose spend counts on every
 * ancestor, and whose unspent part returns when it closes or expires.
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
#define GRANT_TTL_MS FX_HOUR_MS

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

struct grant {
    uint64_t id;
    char name[PROTO_NAME_MAX + 1];
};

/* acme (1000 USD) and its manager agent acme/mgr (100 USD). */
static void manager(struct fx *f)
{
    fx_create(f, "acme", 1000 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/mgr", 100 * USD, PROTO_PERIOD_NONE, 0);
}

static struct grant grant_ok(struct fx *f, const char *parent, int64_t amount)
{
    struct grant g;
    struct proto_cmd c = fx_grant_create(parent, amount, GRANT_TTL_MS);
    if (fx_apply(f, &c) != PROTO_OK)
        fail_msg("grant %s: %s (%s)", parent, proto_status_name(f->res.status),
                 f->res.message);
    g.id = f->res.id;
    strcpy(g.name, f->res.name);
    return g;
}

static struct ledger_grant_view grant_view(struct fx *f, uint64_t id)
{
    struct ledger_grant_view v;
    struct ledger_error err = {0};
    memset(&v, 0, sizeof v);
    if (ledger_grant_get(f->l, id, &v, &err) != 0)
        fail_msg("grant %llu: %s", (unsigned long long)id, err.message);
    return v;
}

static int reserve(struct fx *f, const char *account, int64_t amount)
{
    struct proto_cmd c = fx_reserve(account, amount, 10 * FX_DAY_MS);
    return fx_apply(f, &c);
}

static void assert_refused(struct fx *f, struct proto_cmd c, int status)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), status);
    fx_assert_hash(f, before);
}

/* ---- create ---- */

static void test_grant_create_makes_capped_child_account(void **state)
{
    struct fx *f = *state;
    char want[PROTO_NAME_MAX + 1];
    manager(f);
    struct proto_cmd c = fx_grant_create("acme/mgr", 30 * USD, GRANT_TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.id != 0);
    snprintf(want, sizeof want, "acme/mgr/grant-%llu", (unsigned long long)f->res.id);
    assert_string_equal(f->res.name, want);
    assert_int_equal(f->res.amount_micros, 30 * USD);
    assert_int_equal(f->res.expires_at_ms, FX_MON + GRANT_TTL_MS);
    /* remaining is the room inside the new grant. */
    assert_int_equal(f->res.remaining_micros, 30 * USD);

    struct ledger_account_view v = fx_view(f, want);
    assert_true(v.is_grant);
    assert_int_equal(v.cap_micros, 30 * USD);
    assert_int_equal(v.period, PROTO_PERIOD_NONE);
    assert_int_equal(v.status, LEDGER_STATUS_ACTIVE);
    assert_int_equal(v.available_micros, 30 * USD);

    struct ledger_grant_view g = grant_view(f, f->res.id);
    assert_string_equal(g.account, want);
    assert_string_equal(g.workflow, "wf");
    assert_int_equal(g.amount_micros, 30 * USD);
    assert_int_equal(g.expires_at_ms, FX_MON + GRANT_TTL_MS);
    assert_true(g.is_open);
    assert_int_equal(g.spent_micros, 0);
    fx_assert_verified(f);
}

static void test_grant_create_holds_amount_on_parent_path(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct proto_cmd c = fx_grant_create("acme/mgr", 30 * USD, GRANT_TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    struct ledger_account_view mgr = fx_view(f, "acme/mgr");
    assert_int_equal(mgr.reserved_micros, 30 * USD);
    assert_int_equal(mgr.spent_micros, 0);
    assert_int_equal(mgr.available_micros, 70 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 30 * USD);
    assert_int_equal(fx_view(f, "acme").available_micros, 970 * USD);
    fx_assert_verified(f);
}

static void test_grant_that_does_not_fit_is_refused(void **state)
{
    struct fx *f = *state;
    manager(f);
    fx_reserve_ok(f, "acme/mgr", 80 * USD);
    assert_refused(f, fx_grant_create("acme/mgr", 30 * USD, GRANT_TTL_MS),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme/mgr");
    assert_int_equal(f->res.remaining_micros, 20 * USD);
    fx_assert_verified(f);
}

static void test_grant_refused_when_ancestor_cap_exhausted(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 50 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/mgr", 100 * USD, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_grant_create("acme/mgr", 60 * USD, GRANT_TTL_MS),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme");
    assert_int_equal(f->res.remaining_micros, 50 * USD);
}

static void test_grant_refused_when_parent_frozen(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/mgr");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    assert_refused(f, fx_grant_create("acme/mgr", 10 * USD, GRANT_TTL_MS), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme/mgr");
}

static void test_grant_refuses_unknown_parent(void **state)
{
    struct fx *f = *state;
    manager(f);
    assert_refused(f, fx_grant_create("acme/ghost", 10 * USD, GRANT_TTL_MS),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/ghost");
}

static void test_grant_refuses_bad_amount(void **state)
{
    struct fx *f = *state;
    manager(f);
    assert_refused(f, fx_grant_create("acme/mgr", 0, GRANT_TTL_MS), PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
    assert_refused(f, fx_grant_create("acme/mgr", -1, GRANT_TTL_MS), PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
    assert_refused(f, fx_grant_create("acme/mgr", PROTO_AMOUNT_MAX + 1, GRANT_TTL_MS),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
}

static void test_grant_refuses_bad_ttl(void **state)
{
    struct fx *f = *state;
    manager(f);
    assert_refused(f, fx_grant_create("acme/mgr", 10 * USD, 0), PROTO_ERR_INVALID);
    fx_assert_message_has(f, "ttl");
    assert_refused(f, fx_grant_create("acme/mgr", 10 * USD, PROTO_TTL_MAX_MS + 1),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "ttl");
}

static void test_grant_refused_under_eight_level_parent(void **state)
{
    struct fx *f = *state;
    const char *path[] = {"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "a/b/c/d/e/f",
                          "a/b/c/d/e/f/g", "a/b/c/d/e/f/g/h"};
    for (int i = 0; i < 8; i++)
        fx_create(f, path[i], PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_grant_create(path[7], 10 * USD, GRANT_TTL_MS), PROTO_ERR_INVALID);
    grant_ok(f, path[6], 10 * USD);
}

/* ---- spending inside a grant ---- */

static void test_grant_is_capped_at_its_amount(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, g.name, 20 * USD), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 10 * USD);

    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(reserve(f, g.name, 15 * USD), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, g.name);
    assert_int_equal(f->res.remaining_micros, 10 * USD);
    fx_assert_hash(f, before);
    fx_assert_verified(f);
}

static void test_grant_hold_absorbs_reservations_inside_it(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, g.name, 20 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, g.name).reserved_micros, 20 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 30 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 30 * USD);
    fx_assert_verified(f);
}

static void test_reserve_in_grant_fits_when_parent_is_full(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, "acme/mgr", 70 * USD), PROTO_OK);
    assert_int_equal(f->res.remaining_micros, 0);

    assert_int_equal(reserve(f, g.name, 20 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 100 * USD);
    assert_int_equal(reserve(f, "acme/mgr", 1), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme/mgr");
    fx_assert_verified(f);
}

static void test_grant_spend_counts_on_ancestors(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    fx_spend(f, g.name, 20 * USD);

    struct ledger_account_view gv = fx_view(f, g.name);
    assert_int_equal(gv.spent_micros, 20 * USD);
    assert_int_equal(gv.reserved_micros, 0);
    assert_int_equal(gv.available_micros, 10 * USD);
    struct ledger_account_view mgr = fx_view(f, "acme/mgr");
    assert_int_equal(mgr.spent_micros, 20 * USD);
    assert_int_equal(mgr.reserved_micros, 10 * USD);
    assert_int_equal(mgr.available_micros, 70 * USD);
    struct ledger_account_view acme = fx_view(f, "acme");
    assert_int_equal(acme.spent_micros, 20 * USD);
    assert_int_equal(acme.reserved_micros, 10 * USD);
    assert_int_equal(grant_view(f, g.id).spent_micros, 20 * USD);
    fx_assert_verified(f);
}

/* ---- close ---- */

static void test_grant_close_returns_unspent(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    fx_spend(f, g.name, 12 * USD);

    struct proto_cmd c = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, g.id);
    assert_int_equal(f->res.amount_micros, 12 * USD);
    assert_int_equal(f->res.returned_micros, 18 * USD);

    struct ledger_grant_view gv = grant_view(f, g.id);
    assert_false(gv.is_open);
    assert_int_equal(gv.spent_micros, 12 * USD);
    assert_int_equal(gv.returned_micros, 18 * USD);
    assert_int_equal(fx_view(f, g.name).status, LEDGER_STATUS_CLOSED);

    struct ledger_account_view mgr = fx_view(f, "acme/mgr");
    assert_int_equal(mgr.spent_micros, 12 * USD);
    assert_int_equal(mgr.reserved_micros, 0);
    assert_int_equal(mgr.available_micros, 88 * USD);
    fx_assert_verified(f);
}

static void test_grant_close_twice_returns_first_answer(void **state)
{
    struct fx *f = *state;
    uint8_t before[32];
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    fx_spend(f, g.name, 12 * USD);
    struct proto_cmd c = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.id, g.id);
    assert_int_equal(f->res.amount_micros, 12 * USD);
    assert_int_equal(f->res.returned_micros, 18 * USD);
    fx_assert_hash(f, before);
}

static void test_grant_close_unknown_not_found(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_refused(f, fx_grant_close(g.id + 1000), PROTO_ERR_NOT_FOUND);
}

static void test_grant_close_keeps_open_reservations_held(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    fx_spend(f, g.name, 5 * USD);
    assert_int_equal(reserve(f, g.name, 10 * USD), PROTO_OK);

    struct proto_cmd c = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 5 * USD);
    assert_int_equal(f->res.returned_micros, 15 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").spent_micros, 5 * USD);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
    fx_assert_verified(f);
}

static void test_open_reservation_in_closed_grant_still_commits(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, g.name, 10 * USD), PROTO_OK);
    uint64_t rid = f->res.id;
    struct proto_cmd close = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &close), PROTO_OK);
    assert_int_equal(f->res.returned_micros, 20 * USD);

    struct proto_cmd c = fx_commit(rid, 8 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_true(f->res.transfer_id != 0);
    assert_int_equal(f->res.overrun_micros, 0);
    assert_int_equal(fx_view(f, g.name).spent_micros, 8 * USD);
    struct ledger_account_view mgr = fx_view(f, "acme/mgr");
    assert_int_equal(mgr.spent_micros, 8 * USD);
    assert_int_equal(mgr.reserved_micros, 0);
    assert_int_equal(grant_view(f, g.id).returned_micros, 20 * USD);
    fx_assert_verified(f);
}

static void test_reserve_in_closed_grant_refused_as_grant_expired(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    struct proto_cmd close = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &close), PROTO_OK);

    assert_refused(f, fx_reserve(g.name, 1 * USD, FX_HOUR_MS), PROTO_ERR_GRANT_EXPIRED);
    assert_string_equal(f->res.name, g.name);
}

/* ---- deadline and expire ---- */

static void test_grant_refuses_reserve_at_deadline_before_expire_runs(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);

    f->now_ms = FX_MON + GRANT_TTL_MS;
    assert_int_equal(reserve(f, g.name, 1 * USD), PROTO_ERR_GRANT_EXPIRED);
    assert_string_equal(f->res.name, g.name);
    assert_true(grant_view(f, g.id).is_open);
}

static void test_grant_refuses_reserve_after_deadline_before_expire_runs(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);

    f->now_ms = FX_MON + GRANT_TTL_MS + 60 * 1000;
    assert_int_equal(reserve(f, g.name, 1 * USD), PROTO_ERR_GRANT_EXPIRED);
    assert_string_equal(f->res.name, g.name);
}

static void test_grant_accepts_reserve_just_before_deadline(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    f->now_ms = FX_MON + GRANT_TTL_MS - 1;
    assert_int_equal(reserve(f, g.name, 1 * USD), PROTO_OK);
    fx_assert_verified(f);
}

static void test_expire_closes_grant_at_deadline_and_returns_unspent(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    fx_spend(f, g.name, 12 * USD);

    fx_tick(f, FX_MON + GRANT_TTL_MS);
    assert_int_equal(f->res.id, 1);

    struct ledger_grant_view gv = grant_view(f, g.id);
    assert_false(gv.is_open);
    assert_int_equal(gv.spent_micros, 12 * USD);
    assert_int_equal(gv.returned_micros, 18 * USD);
    assert_int_equal(fx_view(f, g.name).status, LEDGER_STATUS_CLOSED);
    struct ledger_account_view mgr = fx_view(f, "acme/mgr");
    assert_int_equal(mgr.reserved_micros, 0);
    assert_int_equal(mgr.spent_micros, 12 * USD);
    fx_assert_verified(f);

    assert_refused(f, fx_reserve(g.name, 1 * USD, FX_HOUR_MS), PROTO_ERR_GRANT_EXPIRED);
    assert_string_equal(f->res.name, g.name);
}

static void test_expire_leaves_grant_before_deadline_open(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);

    fx_tick(f, FX_MON + GRANT_TTL_MS - 1);
    assert_int_equal(f->res.id, 0);
    assert_true(grant_view(f, g.id).is_open);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 30 * USD);
    fx_assert_verified(f);
}

/* ---- nesting ---- */

static void test_nested_grant_holds_inside_outer_grant(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant outer = grant_ok(f, "acme/mgr", 30 * USD);
    struct grant inner = grant_ok(f, outer.name, 10 * USD);
    assert_true(strncmp(inner.name, outer.name, strlen(outer.name)) == 0);
    assert_true(fx_view(f, inner.name).is_grant);

    assert_int_equal(fx_view(f, outer.name).reserved_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 30 * USD);

    assert_int_equal(reserve(f, inner.name, 10 * USD), PROTO_OK);
    assert_int_equal(reserve(f, inner.name, 1), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, inner.name);

    assert_int_equal(reserve(f, outer.name, 20 * USD), PROTO_OK);
    assert_int_equal(reserve(f, outer.name, 1), PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, outer.name);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 30 * USD);
    fx_assert_verified(f);
}

static void test_nested_grant_spend_counts_on_every_ancestor(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant outer = grant_ok(f, "acme/mgr", 30 * USD);
    struct grant inner = grant_ok(f, outer.name, 10 * USD);
    fx_spend(f, inner.name, 10 * USD);

    assert_int_equal(fx_view(f, inner.name).spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, outer.name).spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 20 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").available_micros, 70 * USD);
    fx_assert_verified(f);
}

static void test_nested_grant_larger_than_outer_is_refused(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant outer = grant_ok(f, "acme/mgr", 30 * USD);
    assert_refused(f, fx_grant_create(outer.name, 31 * USD, GRANT_TTL_MS),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, outer.name);
    assert_int_equal(f->res.remaining_micros, 30 * USD);
}

static void test_grant_close_after_overrun_returns_nothing(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, g.name, 30 * USD), PROTO_OK);
    struct proto_cmd c = fx_commit(f->res.id, 40 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.overrun_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").spent_micros, 40 * USD);
    assert_int_equal(fx_view(f, "acme/mgr").reserved_micros, 0);

    struct proto_cmd close = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &close), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 40 * USD);
    assert_int_equal(f->res.returned_micros, 0);
    fx_assert_verified(f);
}

static void test_grant_refused_under_closed_parent(void **state)
{
    struct fx *f = *state;
    manager(f);
    fx_create(f, "acme/old", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/old");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    assert_refused(f, fx_grant_create("acme/old", 1 * USD, GRANT_TTL_MS), PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme/old");
}

static void test_nested_grant_refused_under_expired_grant(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant outer = grant_ok(f, "acme/mgr", 30 * USD);
    f->now_ms = FX_MON + GRANT_TTL_MS;
    struct proto_cmd c = fx_grant_create(outer.name, 5 * USD, GRANT_TTL_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_GRANT_EXPIRED);
    assert_string_equal(f->res.name, outer.name);
}

static void test_reserve_in_grant_refused_when_parent_frozen(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/mgr");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    assert_refused(f, fx_reserve(g.name, 1 * USD, FX_HOUR_MS), PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme/mgr");
}

static void test_parent_closes_once_its_grant_is_closed(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/mgr");
    assert_refused(f, cl, PROTO_ERR_CONFLICT);

    struct proto_cmd close = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &close), PROTO_OK);
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/mgr").status, LEDGER_STATUS_CLOSED);
    fx_assert_verified(f);
}

static void test_parent_close_refused_while_closed_grant_has_open_hold(void **state)
{
    struct fx *f = *state;
    manager(f);
    struct grant g = grant_ok(f, "acme/mgr", 30 * USD);
    assert_int_equal(reserve(f, g.name, 10 * USD), PROTO_OK);
    struct proto_cmd close = fx_grant_close(g.id);
    assert_int_equal(fx_apply(f, &close), PROTO_OK);

    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/mgr"),
                   PROTO_ERR_CONFLICT);
    assert_int_equal(fx_view(f, "acme/mgr").status, LEDGER_STATUS_ACTIVE);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_grant_create_makes_capped_child_account),
        T(test_grant_create_holds_amount_on_parent_path),
        T(test_grant_that_does_not_fit_is_refused),
        T(test_grant_refused_when_ancestor_cap_exhausted),
        T(test_grant_refused_when_parent_frozen),
        T(test_grant_refuses_unknown_parent),
        T(test_grant_refuses_bad_amount),
        T(test_grant_refuses_bad_ttl),
        T(test_grant_refused_under_eight_level_parent),
        T(test_grant_is_capped_at_its_amount),
        T(test_grant_hold_absorbs_reservations_inside_it),
        T(test_reserve_in_grant_fits_when_parent_is_full),
        T(test_grant_spend_counts_on_ancestors),
        T(test_grant_close_returns_unspent),
        T(test_grant_close_twice_returns_first_answer),
        T(test_grant_close_unknown_not_found),
        T(test_grant_close_keeps_open_reservations_held),
        T(test_open_reservation_in_closed_grant_still_commits),
        T(test_reserve_in_closed_grant_refused_as_grant_expired),
        T(test_grant_refuses_reserve_at_deadline_before_expire_runs),
        T(test_grant_refuses_reserve_after_deadline_before_expire_runs),
        T(test_grant_accepts_reserve_just_before_deadline),
        T(test_expire_closes_grant_at_deadline_and_returns_unspent),
        T(test_expire_leaves_grant_before_deadline_open),
        T(test_nested_grant_holds_inside_outer_grant),
        T(test_nested_grant_spend_counts_on_every_ancestor),
        T(test_nested_grant_larger_than_outer_is_refused),
        T(test_grant_close_after_overrun_returns_nothing),
        T(test_grant_refused_under_closed_parent),
        T(test_nested_grant_refused_under_expired_grant),
        T(test_reserve_in_grant_refused_when_parent_frozen),
        T(test_parent_closes_once_its_grant_is_closed),
        T(test_parent_close_refused_while_closed_grant_has_open_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
