/*
 * test_ledger_estimate.c — shadow FinOps estimates and approvals
 * (ledger/estimate.c, docs/ledger-rules.md "Estimates and approval"):
 * percentiles of a known sample, the bounded ring, the model fallback, and
 * every approval decision (threshold, room, admin-created grants).
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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", 1000 * USD, PROTO_PERIOD_NONE, 0);
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

static struct proto_cmd grant_cmd(const char *workflow, const char *model, int64_t amount)
{
    struct proto_cmd c = fx_grant_create("acme/bot", amount, FX_HOUR_MS);
    c.u.grant_create.workflow = fx_s(workflow);
    if (model)
        fx_meta_add(&c, "model", model);
    return c;
}

/* A task: an agent grant of `workflow` (and model) that spends `cost`,
 * then is closed. */
static void task(struct fx *f, const char *workflow, const char *model, int64_t cost)
{
    struct proto_cmd c = grant_cmd(workflow, model, cost + USD);
    fx_expect_ok(f, &c);
    uint64_t grant = f->res.id;
    char account[PROTO_NAME_MAX + 1];
    strcpy(account, f->res.name);
    if (cost > 0)
        fx_spend(f, account, cost);
    c = fx_grant_close(grant);
    fx_expect_ok(f, &c);
}

static struct ledger_estimate_view estimate(struct fx *f, const char *workflow,
                                            const char *model)
{
    struct ledger_estimate_view e;
    struct ledger_error err = {0};
    if (ledger_estimate_get(f->l, workflow, model, &e, &err) != 0)
        fail_msg("estimate %s: %s", workflow, err.message);
    return e;
}

static void approval(struct fx *f, int64_t above)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_APPROVAL_SET;
    c.role = PROTO_ROLE_ADMIN;
    c.u.approval_set.above_micros = above;
    fx_expect_ok(f, &c);
}

/* Ten tasks costing 1..10 USD (in a shuffled order). */
static void ten_tasks(struct fx *f)
{
    static const int order[10] = {7, 2, 10, 1, 5, 9, 3, 8, 6, 4};
    for (int i = 0; i < 10; i++)
        task(f, "triage", "gpt-4o", order[i] * USD);
}

static void test_percentiles_of_a_known_sample(void **state)
{
    struct fx *f = *state;
    ten_tasks(f);
    struct ledger_estimate_view e = estimate(f, "triage", "gpt-4o");
    assert_int_equal(e.samples, 10);
    assert_int_equal(e.seen, 10);
    assert_string_equal(e.model, "gpt-4o");
    assert_int_equal(e.p50_micros, 5 * USD); /* rank ceil(0.5 * 10) = 5 */
    assert_int_equal(e.p90_micros, 9 * USD); /* rank ceil(0.9 * 10) = 9 */
    /* Any model: the same tasks. */
    e = estimate(f, "triage", NULL);
    assert_int_equal(e.samples, 10);
    assert_string_equal(e.model, "");
    assert_int_equal(e.p90_micros, 9 * USD);
    /* A model never seen falls back to any model. */
    e = estimate(f, "triage", "claude");
    assert_string_equal(e.model, "");
    assert_int_equal(e.samples, 10);
    /* Another model of the same workflow is kept apart. */
    task(f, "triage", "claude", 100 * USD);
    e = estimate(f, "triage", "claude");
    assert_string_equal(e.model, "claude");
    assert_int_equal(e.samples, 1);
    assert_int_equal(e.p50_micros, 100 * USD);
    assert_int_equal(e.p90_micros, 100 * USD);
    e = estimate(f, "triage", NULL);
    assert_int_equal(e.samples, 11);
    assert_int_equal(e.p50_micros, 6 * USD);  /* rank 6 of 11 */
    assert_int_equal(e.p90_micros, 10 * USD); /* rank ceil(9.9) = 10 */
}

static void test_unknown_workflow_has_no_samples_and_bad_input_is_refused(void **state)
{
    struct fx *f = *state;
    struct ledger_estimate_view e = estimate(f, "never", NULL);
    assert_int_equal(e.samples, 0);
    assert_int_equal(e.p90_micros, 0);
    struct ledger_error err = {0};
    assert_int_equal(ledger_estimate_get(f->l, "", NULL, &e, &err), LEDGER_EINVAL);
}

static void test_only_grants_with_a_workflow_that_spent_teach(void **state)
{
    struct fx *f = *state;
    task(f, "idle", NULL, 0); /* spent nothing */
    task(f, "", NULL, 3 * USD); /* no workflow */
    assert_int_equal(estimate(f, "idle", NULL).samples, 0);
    /* An expired grant teaches like a closed one. */
    struct proto_cmd c = grant_cmd("nightly", NULL, 10 * USD);
    fx_expect_ok(f, &c);
    char account[PROTO_NAME_MAX + 1];
    strcpy(account, f->res.name);
    fx_spend(f, account, 4 * USD);
    fx_tick(f, f->now_ms + FX_HOUR_MS);
    struct ledger_estimate_view e = estimate(f, "nightly", NULL);
    assert_int_equal(e.samples, 1);
    assert_int_equal(e.p50_micros, 4 * USD);
}

static void test_the_sample_keeps_the_last_256(void **state)
{
    struct fx *f = *state;
    for (int i = 1; i <= 300; i++)
        task(f, "bulk", NULL, i * 1000);
    struct ledger_estimate_view e = estimate(f, "bulk", NULL);
    assert_int_equal(e.samples, LEDGER_ESTIMATE_SAMPLE);
    assert_int_equal(e.seen, 300);
    /* costs 45..300 (thousands): rank 128 and rank ceil(230.4) = 231 */
    assert_int_equal(e.p50_micros, (45 + 127) * 1000);
    assert_int_equal(e.p90_micros, (45 + 230) * 1000);
}

static void test_estimates_are_state_hashed(void **state)
{
    struct fx *f = *state;
    uint8_t a[32], b[32];
    struct proto_cmd c = grant_cmd("triage", NULL, 10 * USD);
    fx_expect_ok(f, &c);
    uint64_t grant = f->res.id;
    char account[PROTO_NAME_MAX + 1];
    strcpy(account, f->res.name);
    fx_spend(f, account, USD);
    fx_state_hash(f, a);
    c = fx_grant_close(grant);
    fx_expect_ok(f, &c);
    fx_state_hash(f, b);
    assert_false(fx_hash_equal(a, b));
    fx_assert_verified(f);
}

static void test_approval_refuses_agent_grants_above_the_threshold(void **state)
{
    struct fx *f = *state;
    ten_tasks(f); /* p90 9 USD */
    approval(f, 8 * USD);
    struct proto_cmd c = grant_cmd("triage", "gpt-4o", 20 * USD);
    fx_expect_refused(f, &c, PROTO_ERR_APPROVAL_REQUIRED, "p90 estimate 9.000000 USD");
    assert_int_equal(f->res.amount_micros, 9 * USD);
    /* An admin creates it: the approval. */
    c = fx_admin(grant_cmd("triage", "gpt-4o", 20 * USD));
    fx_expect_ok(f, &c);
    /* Threshold at the p90 exactly: allowed. */
    approval(f, 9 * USD);
    c = grant_cmd("triage", "gpt-4o", 20 * USD);
    fx_expect_ok(f, &c);
    /* Unknown workflow, or none: nothing to judge. */
    approval(f, 0);
    c = grant_cmd("fresh", NULL, 20 * USD);
    fx_expect_ok(f, &c);
    /* Cleared. */
    approval(f, PROTO_CAP_NONE);
    c = grant_cmd("triage", NULL, 20 * USD);
    fx_expect_ok(f, &c);
}

static void test_approval_refuses_when_the_p90_exceeds_the_room_left(void **state)
{
    struct fx *f = *state;
    ten_tasks(f);
    approval(f, 50 * USD);
    /* acme/bot has 1000 USD: leave 8 USD of room. */
    struct proto_cmd c = fx_reserve("acme/bot", 1000 * USD - 55 * USD - 8 * USD, FX_HOUR_MS);
    fx_expect_ok(f, &c);
    c = grant_cmd("triage", NULL, 5 * USD);
    fx_expect_refused(f, &c, PROTO_ERR_APPROVAL_REQUIRED, "left to acme/bot");
    assert_string_equal(f->res.name, "acme/bot");
}

static void test_approval_of_calls_carrying_a_workflow(void **state)
{
    struct fx *f = *state;
    ten_tasks(f);
    approval(f, 8 * USD);
    struct proto_cmd c = fx_reserve("acme/bot", USD, FX_HOUR_MS);
    fx_meta_add(&c, "workflow", "triage");
    fx_meta_add(&c, "model", "gpt-4o");
    fx_expect_refused(f, &c, PROTO_ERR_APPROVAL_REQUIRED, "triage");
    /* Without the workflow metadata: not judged. */
    c = fx_reserve("acme/bot", USD, FX_HOUR_MS);
    fx_expect_ok(f, &c);
    /* Charging an admin-created grant: approved. */
    c = fx_admin(grant_cmd("triage", "gpt-4o", 20 * USD));
    fx_expect_ok(f, &c);
    char admin_grant[PROTO_NAME_MAX + 1];
    strcpy(admin_grant, f->res.name);
    c = fx_reserve(admin_grant, USD, FX_HOUR_MS);
    fx_meta_add(&c, "workflow", "triage");
    fx_expect_ok(f, &c);
    /* Charging an agent-created grant (of another workflow): judged. */
    c = grant_cmd("other", NULL, 20 * USD);
    fx_expect_ok(f, &c);
    char agent_grant[PROTO_NAME_MAX + 1];
    strcpy(agent_grant, f->res.name);
    c = fx_reserve(agent_grant, USD, FX_HOUR_MS);
    fx_meta_add(&c, "workflow", "triage");
    fx_expect_refused(f, &c, PROTO_ERR_APPROVAL_REQUIRED, "triage");
    /* Admin calls are never judged. */
    c = fx_admin(fx_reserve("acme/bot", USD, FX_HOUR_MS));
    fx_meta_add(&c, "workflow", "triage");
    fx_expect_ok(f, &c);
}

static void test_approval_set_is_admin_only_and_validated(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_APPROVAL_SET;
    c.role = PROTO_ROLE_AGENT;
    c.u.approval_set.above_micros = USD;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, "admin");
    c.role = PROTO_ROLE_ADMIN;
    c.u.approval_set.above_micros = -2;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "above_micros");
    int64_t above = 0;
    struct ledger_error err = {0};
    assert_int_equal(ledger_approval_get(f->l, &above, &err), 0);
    assert_int_equal(above, PROTO_CAP_NONE);
    approval(f, 3 * USD);
    assert_int_equal(ledger_approval_get(f->l, &above, &err), 0);
    assert_int_equal(above, 3 * USD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_percentiles_of_a_known_sample, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unknown_workflow_has_no_samples_and_bad_input_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_grants_with_a_workflow_that_spent_teach,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_sample_keeps_the_last_256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_estimates_are_state_hashed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_refuses_agent_grants_above_the_threshold,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_refuses_when_the_p90_exceeds_the_room_left,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_of_calls_carrying_a_workflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_approval_set_is_admin_only_and_validated, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
