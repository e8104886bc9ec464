/*
 * test_ledger_idem.c — idempotency keys (docs/ledger-rules.md, "Idempotency"):
 * a repeated key answers the first result, refusals included, and changes
 * nothing; the same key with another request is a conflict that changes
 * nothing; repeats inside one batch; keys forgotten by expire after 24 h of
 * entry time, after which the key applies anew.
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
#define MINUTE_MS (60LL * 1000)

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/ops", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

static void assert_result_equal(const struct proto_result *a, const struct proto_result *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->amount_micros, b->amount_micros);
    assert_int_equal(a->remaining_micros, b->remaining_micros);
    assert_int_equal(a->expires_at_ms, b->expires_at_ms);
    assert_int_equal(a->transfer_id, b->transfer_id);
    assert_int_equal(a->overrun_micros, b->overrun_micros);
    assert_int_equal(a->returned_micros, b->returned_micros);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->message, b->message);
}

/* Apply `cmd` and fail unless the answer equals `first` and the state hash
 * did not move. */
static void assert_repeat_answers(struct fx *f, const struct proto_cmd *cmd,
                                  const struct proto_result *first)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    fx_apply(f, cmd);
    assert_result_equal(&f->res, first);
    fx_assert_hash(f, before);
}

static int count_accounts_cb(void *arg, const struct ledger_account_view *a)
{
    (void)a;
    (*(int *)arg)++;
    return 0;
}

static int count_accounts(struct fx *f, const char *prefix)
{
    int n = 0;
    struct ledger_error err = {0};
    assert_int_equal(ledger_account_list(f->l, prefix, count_accounts_cb, &n, &err), 0);
    return n;
}

/* ---- repeats answer the first result ---- */

static void test_repeated_reserve_returns_the_first_result(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    fx_apply(f, &c);
    assert_result_equal(&f->res, &first);
}

static void test_repeated_reserve_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
}

static void test_repeated_reserve_later_returns_the_original_deadline(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    f->now_ms += 30 * 1000;
    fx_apply(f, &c);
    assert_result_equal(&f->res, &first);
    assert_int_equal(f->res.expires_at_ms, FX_MON + MINUTE_MS);
}

static void test_repeated_refused_reserve_returns_the_refusal_after_budget_was_raised(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 150 * USD, MINUTE_MS), "k1");
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    struct proto_result first = f->res;
    assert_string_equal(first.name, "acme");

    struct proto_cmd raise = fx_account_update("acme", 1000 * USD, PROTO_UNSET, PROTO_UNSET);
    fx_expect_ok(f, &raise);
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
}

static void test_repeated_refusal_for_a_frozen_account_survives_unfreeze(void **state)
{
    struct fx *f = *state;
    struct proto_cmd freeze = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/bot");
    struct proto_cmd unfreeze = fx_account_status(PROTO_CMD_ACCOUNT_UNFREEZE, "acme/bot");
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &freeze);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_FROZEN);
    struct proto_result first = f->res;
    fx_expect_ok(f, &unfreeze);
    assert_repeat_answers(f, &c, &first);
}

static void test_repeated_invalid_command_returns_the_same_refusal(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 0, MINUTE_MS), "k1");
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_INVALID);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
}

static void test_repeated_commit_returns_the_first_result(void **state)
{
    struct fx *f = *state;
    uint64_t id = fx_reserve_ok(f, "acme/bot", 10 * USD);
    struct proto_cmd c = fx_keyed(fx_commit(id, 7 * USD), "c1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
}

static void test_repeated_chargeback_posts_once(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_transfer("acme/bot", "acme/ops", 5 * USD,
                                              PROTO_KIND_CHARGEBACK), "t1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
    assert_int_equal(fx_view(f, "acme/bot").spent_micros, 5 * USD);
}

static void test_unkeyed_chargeback_repeated_posts_twice(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_transfer("acme/bot", "acme/ops", 5 * USD, PROTO_KIND_CHARGEBACK);
    fx_expect_ok(f, &c);
    uint64_t first_id = f->res.id;
    fx_expect_ok(f, &c);
    assert_int_not_equal(f->res.id, first_id);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 2);
}

static void test_unkeyed_reserve_repeated_holds_twice(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_reserve("acme/bot", 10 * USD, MINUTE_MS);
    fx_expect_ok(f, &c);
    uint64_t first_id = f->res.id;
    fx_expect_ok(f, &c);
    assert_int_not_equal(f->res.id, first_id);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 20 * USD);
}

static void test_repeated_grant_create_creates_one_grant(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_grant_create("acme/bot", 20 * USD, MINUTE_MS), "g1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(count_accounts(f, "acme/bot"), 2);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 20 * USD);
}

static void test_repeated_account_create_answers_ok_not_exists(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_account_create("acme/new", PROTO_CAP_NONE,
                                                    PROTO_PERIOD_NONE, 0), "a1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    assert_repeat_answers(f, &c, &first);
    assert_int_equal(f->res.status, PROTO_OK);
}

static void test_repeated_expire_returns_the_first_count_and_expires_nothing_new(void **state)
{
    struct fx *f = *state;
    struct proto_cmd r = fx_reserve("acme/bot", 10 * USD, MINUTE_MS);
    struct proto_cmd e = fx_keyed(fx_expire(), "e1");
    fx_expect_ok(f, &r);
    f->now_ms += 2 * MINUTE_MS;
    fx_expect_ok(f, &e);
    assert_int_equal(f->res.amount_micros, 1);
    struct proto_result first = f->res;

    fx_expect_ok(f, &r);
    f->now_ms += 2 * MINUTE_MS;
    fx_apply(f, &e);
    assert_result_equal(&f->res, &first);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
}

/* ---- same key, another request ---- */

static void test_same_key_with_another_amount_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_reserve("acme/bot", 11 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c1);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
}

static void test_same_key_with_another_account_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_reserve("acme/ops", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c1);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme/ops").reserved_micros, 0);
}

static void test_same_key_with_another_command_type_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_transfer("acme/bot", "acme/ops", 10 * USD,
                                               PROTO_KIND_CHARGEBACK), "k1");
    fx_expect_ok(f, &c1);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
}

static void test_same_key_with_another_role_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_admin(c1);
    fx_expect_ok(f, &c1);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
}

static void test_same_key_with_other_metadata_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = c1;
    fx_meta_add(&c1, "task_id", "t-1");
    fx_meta_add(&c2, "task_id", "t-2");
    fx_expect_ok(f, &c1);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
}

/* Apply `first` under key "k1", then each variant under the same key: every
 * one must be a conflict that changes nothing. */
static void assert_variants_conflict(struct fx *f, const struct proto_cmd *first,
                                     const struct proto_cmd *variants, int n)
{
    struct proto_cmd c = fx_keyed(*first, "k1");
    fx_apply(f, &c);
    for (int i = 0; i < n; i++) {
        struct proto_cmd v = fx_keyed(variants[i], "k1");
        uint8_t before[32];
        fx_state_hash(f, before);
        if (fx_apply(f, &v) != PROTO_ERR_CONFLICT)
            fail_msg("variant %d: expected conflict, got %s", i,
                     proto_status_name(f->res.status));
        fx_assert_hash(f, before);
    }
}

static void test_same_key_with_any_reserve_field_changed_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd base = fx_reserve("acme/bot", 10 * USD, MINUTE_MS);
    struct proto_cmd v[6];
    for (int i = 0; i < 6; i++)
        v[i] = base;
    v[0].u.reserve.account = fx_s("acme/ops");
    v[1].u.reserve.payee = fx_s("vendor/anthropic");
    v[2].u.reserve.amount_micros += 1;
    v[3].u.reserve.ttl_ms += 1;
    v[4].u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    fx_meta_add(&v[5], "task_id", "t-1");
    assert_variants_conflict(f, &base, v, 6);
}

static void test_same_key_with_any_commit_field_changed_is_a_conflict(void **state)
{
    struct fx *f = *state;
    uint64_t id1 = fx_reserve_ok(f, "acme/bot", 10 * USD);
    uint64_t id2 = fx_reserve_ok(f, "acme/bot", 10 * USD);
    struct proto_cmd base = fx_commit(id1, 5 * USD);
    struct proto_cmd v[3] = {fx_commit(id2, 5 * USD), fx_commit(id1, 6 * USD), base};
    fx_meta_add(&v[2], "task_id", "t-1");
    assert_variants_conflict(f, &base, v, 3);
}

static void test_same_key_with_any_transfer_field_changed_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd base = fx_transfer("acme/bot", "acme/ops", 5 * USD, PROTO_KIND_CHARGEBACK);
    struct proto_cmd v[5] = {
        fx_transfer("acme/ops", "acme/bot", 5 * USD, PROTO_KIND_CHARGEBACK),
        fx_transfer("acme/bot", "vendor/openai", 5 * USD, PROTO_KIND_CHARGEBACK),
        fx_transfer("acme/bot", "acme/ops", 6 * USD, PROTO_KIND_CHARGEBACK),
        fx_transfer("acme/bot", "acme/ops", 5 * USD, PROTO_KIND_ADJUSTMENT),
        base};
    v[3].role = PROTO_ROLE_AGENT;
    fx_meta_add(&v[4], "task_id", "t-1");
    assert_variants_conflict(f, &base, v, 5);
}

static void test_same_key_with_any_grant_field_changed_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd base = fx_grant_create("acme/bot", 5 * USD, MINUTE_MS);
    struct proto_cmd v[5] = {base, base, base, base, base};
    v[0].u.grant_create.parent = fx_s("acme/ops");
    v[1].u.grant_create.workflow = fx_s("other");
    v[2].u.grant_create.amount_micros += 1;
    v[3].u.grant_create.ttl_ms += 1;
    fx_meta_add(&v[4], "task_id", "t-1");
    assert_variants_conflict(f, &base, v, 5);
}

static void test_same_key_with_any_account_field_changed_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd base = fx_account_create("acme/new", 10 * USD, PROTO_PERIOD_DAY, 60);
    struct proto_cmd v[5] = {base, base, base, base, base};
    v[0].u.account.name = fx_s("acme/other");
    v[1].u.account.cap_micros += 1;
    v[2].u.account.period = PROTO_PERIOD_WEEK;
    v[3].u.account.tz_offset_min = 120;
    fx_meta_add(&v[4], "team", "x");
    assert_variants_conflict(f, &base, v, 5);
}

static void test_same_key_after_a_refusal_with_another_request_is_a_conflict(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 150 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_reserve("acme/bot", 50 * USD, MINUTE_MS), "k1");
    assert_int_equal(fx_apply(f, &c1), PROTO_ERR_BUDGET_EXCEEDED);
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
}

static void test_conflict_keeps_the_first_result_for_the_key(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_reserve("acme/bot", 11 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c1);
    struct proto_result first = f->res;
    assert_int_equal(fx_apply(f, &c2), PROTO_ERR_CONFLICT);
    assert_repeat_answers(f, &c1, &first);
}

static void test_distinct_keys_apply_independently(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k2");
    fx_expect_ok(f, &c1);
    uint64_t first_id = f->res.id;
    fx_expect_ok(f, &c2);
    assert_int_not_equal(f->res.id, first_id);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 20 * USD);
}

/* ---- repeats within one batch ---- */

static void test_repeat_within_one_batch_returns_the_first_result(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd batch[3] = {c, c, c};
    struct proto_result res[3];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 3, res);
    assert_int_equal(res[0].status, PROTO_OK);
    assert_result_equal(&res[1], &res[0]);
    assert_result_equal(&res[2], &res[0]);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
}

static void test_conflict_within_one_batch_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct proto_cmd batch[2] = {
        fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1"),
        fx_keyed(fx_reserve("acme/bot", 20 * USD, MINUTE_MS), "k1")};
    struct proto_result res[2];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 2, res);
    assert_int_equal(res[0].status, PROTO_OK);
    assert_int_equal(res[1].status, PROTO_ERR_CONFLICT);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
}

static void test_refusal_repeated_within_one_batch_after_budget_raised_stays_a_refusal(void **state)
{
    struct fx *f = *state;
    struct proto_cmd batch[3] = {
        fx_keyed(fx_reserve("acme/bot", 150 * USD, MINUTE_MS), "k1"),
        fx_account_update("acme", 1000 * USD, PROTO_UNSET, PROTO_UNSET),
        fx_keyed(fx_reserve("acme/bot", 150 * USD, MINUTE_MS), "k1")};
    struct proto_result res[3];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 3, res);
    assert_int_equal(res[0].status, PROTO_ERR_BUDGET_EXCEEDED);
    assert_int_equal(res[1].status, PROTO_OK);
    assert_result_equal(&res[2], &res[0]);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
}

static void test_repeat_in_a_later_batch_of_a_batched_key_returns_the_first_result(void **state)
{
    struct fx *f = *state;
    struct proto_cmd batch[2] = {
        fx_reserve("acme/ops", 1 * USD, MINUTE_MS),
        fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1")};
    struct proto_result res[2];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 2, res);
    assert_int_equal(res[1].status, PROTO_OK);
    assert_repeat_answers(f, &batch[1], &res[1]);
}

/* ---- the 24 h window ---- */

static void test_key_survives_expire_within_24h(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    fx_tick(f, FX_MON + 23 * FX_HOUR_MS);
    fx_apply(f, &c);
    assert_result_equal(&f->res, &first);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 0);
}

static void test_key_pruned_by_expire_after_24h_applies_anew(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    uint64_t first_id = f->res.id;
    fx_tick(f, FX_MON + 25 * FX_HOUR_MS);
    fx_expect_ok(f, &c);
    assert_int_not_equal(f->res.id, first_id);
    assert_int_equal(f->res.expires_at_ms, FX_MON + 25 * FX_HOUR_MS + MINUTE_MS);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 10 * USD);
}

/* "older than 24 h": a key exactly 24 h old is still remembered. */
static void test_key_exactly_24h_old_survives_expire(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;
    fx_tick(f, FX_MON + LEDGER_IDEM_WINDOW_MS);
    fx_apply(f, &c);
    assert_result_equal(&f->res, &first);
}

static void test_key_24h_and_1ms_old_is_pruned_by_expire(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    uint64_t first_id = f->res.id;
    fx_tick(f, FX_MON + LEDGER_IDEM_WINDOW_MS + 1);
    fx_expect_ok(f, &c);
    assert_int_not_equal(f->res.id, first_id);
}

static void test_pruned_key_accepts_another_request(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    struct proto_cmd c2 = fx_keyed(fx_transfer("acme/bot", "acme/ops", 3 * USD,
                                               PROTO_KIND_CHARGEBACK), "k1");
    fx_expect_ok(f, &c1);
    fx_tick(f, FX_MON + 25 * FX_HOUR_MS);
    fx_expect_ok(f, &c2);
    assert_int_equal(fx_view(f, "acme/bot").spent_micros, 3 * USD);
}

static void test_pruned_refusal_is_decided_anew(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 150 * USD, MINUTE_MS), "k1");
    struct proto_cmd raise = fx_account_update("acme", 1000 * USD, PROTO_UNSET, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &c), PROTO_ERR_BUDGET_EXCEEDED);
    fx_expect_ok(f, &raise);
    fx_tick(f, FX_MON + 25 * FX_HOUR_MS);
    fx_expect_ok(f, &c);
    assert_int_equal(fx_view(f, "acme").reserved_micros, 150 * USD);
}

static void test_key_survives_snapshot_and_restore(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 10 * USD, MINUTE_MS), "k1");
    fx_expect_ok(f, &c);
    struct proto_result first = f->res;

    void *data = NULL;
    size_t len = 0;
    struct ledger_error err = {0};
    assert_int_equal(ledger_snapshot(f->l, NULL, &data, &len, &err), 0);
    struct fx g;
    fx_open(&g);
    g.now_ms = f->now_ms;
    assert_int_equal(ledger_restore(g.l, data, len, &err), 0);
    free(data);

    fx_apply(&g, &c);
    assert_result_equal(&g.res, &first);
    assert_int_equal(fx_view(&g, "acme").reserved_micros, 10 * USD);
    fx_close(&g);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_repeated_reserve_returns_the_first_result),
        T(test_repeated_reserve_changes_nothing),
        T(test_repeated_reserve_later_returns_the_original_deadline),
        T(test_repeated_refused_reserve_returns_the_refusal_after_budget_was_raised),
        T(test_repeated_refusal_for_a_frozen_account_survives_unfreeze),
        T(test_repeated_invalid_command_returns_the_same_refusal),
        T(test_repeated_commit_returns_the_first_result),
        T(test_repeated_chargeback_posts_once),
        T(test_unkeyed_chargeback_repeated_posts_twice),
        T(test_unkeyed_reserve_repeated_holds_twice),
        T(test_repeated_grant_create_creates_one_grant),
        T(test_repeated_account_create_answers_ok_not_exists),
        T(test_repeated_expire_returns_the_first_count_and_expires_nothing_new),
        T(test_same_key_with_another_amount_is_a_conflict),
        T(test_same_key_with_another_account_is_a_conflict),
        T(test_same_key_with_another_command_type_is_a_conflict),
        T(test_same_key_with_another_role_is_a_conflict),
        T(test_same_key_with_other_metadata_is_a_conflict),
        T(test_same_key_with_any_reserve_field_changed_is_a_conflict),
        T(test_same_key_with_any_commit_field_changed_is_a_conflict),
        T(test_same_key_with_any_transfer_field_changed_is_a_conflict),
        T(test_same_key_with_any_grant_field_changed_is_a_conflict),
        T(test_same_key_with_any_account_field_changed_is_a_conflict),
        T(test_same_key_after_a_refusal_with_another_request_is_a_conflict),
        T(test_conflict_keeps_the_first_result_for_the_key),
        T(test_distinct_keys_apply_independently),
        T(test_repeat_within_one_batch_returns_the_first_result),
        T(test_conflict_within_one_batch_changes_nothing),
        T(test_refusal_repeated_within_one_batch_after_budget_raised_stays_a_refusal),
        T(test_repeat_in_a_later_batch_of_a_batched_key_returns_the_first_result),
        T(test_key_survives_expire_within_24h),
        T(test_key_pruned_by_expire_after_24h_applies_anew),
        T(test_key_exactly_24h_old_survives_expire),
        T(test_key_24h_and_1ms_old_is_pruned_by_expire),
        T(test_pruned_key_accepts_another_request),
        T(test_pruned_refusal_is_decided_anew),
        T(test_key_survives_snapshot_and_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
