/*
 * test_ledger_transfer.c — transfer rules (docs/ledger-rules.md, transfer and
 * "Balances"): east-west chargebacks that respect the debtor's caps but not
 * the common ancestor's, admin adjustments that may overdraw, and the
 * double-entry journal that always balances.
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

/* acme (1000 USD) with two departments a and b (100 USD each). */
static void departments(struct fx *f)
{
    fx_create(f, "acme", 1000 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/b", 100 * USD, PROTO_PERIOD_NONE, 0);
}

static int chargeback(struct fx *f, const char *debit, const char *credit, int64_t amount)
{
    struct proto_cmd c = fx_transfer(debit, credit, amount, PROTO_KIND_CHARGEBACK);
    return fx_apply(f, &c);
}

static void assert_refused(struct fx *f, struct proto_cmd c, int status)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), status);
    fx_assert_hash(f, before);
}

/* ---- chargeback ---- */

static void test_chargeback_posts_one_journal_entry(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    departments(f);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 30 * USD), PROTO_OK);
    assert_true(f->res.id != 0);
    assert_int_equal(f->res.transfer_id, f->res.id);
    assert_int_equal(f->res.amount_micros, 30 * USD);
    uint64_t id = f->res.id;

    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].id, id);
    assert_int_equal(p[0].kind, PROTO_KIND_CHARGEBACK);
    assert_string_equal(p[0].debit, "acme/a");
    assert_string_equal(p[0].credit, "acme/b");
    assert_int_equal(p[0].amount_micros, 30 * USD);
    assert_int_equal(p[0].ts_ms, FX_MON);
    assert_int_equal(p[0].reservation_id, 0);
    fx_assert_verified(f);
}

static void test_chargeback_is_spend_of_debtor(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 30 * USD), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme/a");
    assert_int_equal(v.spent_micros, 30 * USD);
    assert_int_equal(v.available_micros, 70 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_leaves_common_ancestor_spent_unchanged(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 30 * USD), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 0);
    assert_int_equal(v.available_micros, 1000 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_leaves_creditor_spent_unchanged(void **state)
{
    struct fx *f = *state;
    departments(f);
    fx_spend(f, "acme/b", 10 * USD);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 30 * USD), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme/b");
    assert_int_equal(v.spent_micros, 10 * USD);
    assert_int_equal(v.available_micros, 90 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_refused_when_debtor_cap_exhausted(void **state)
{
    struct fx *f = *state;
    departments(f);
    fx_spend(f, "acme/a", 80 * USD);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 30 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme/a");
    assert_int_equal(f->res.remaining_micros, 20 * USD);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 80 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_counts_debtor_holds(void **state)
{
    struct fx *f = *state;
    departments(f);
    fx_reserve_ok(f, "acme/a", 90 * USD);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 11 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme/a");
    assert_int_equal(f->res.remaining_micros, 10 * USD);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 10 * USD), PROTO_OK);
    fx_assert_verified(f);
}

static void test_chargeback_ignores_cap_of_common_ancestor(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 50 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 80 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 80 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_respects_debtor_ancestor_below_common_ancestor(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/x", 10 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/x/y", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_transfer("acme/x/y", "acme/b", 11 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_string_equal(f->res.name, "acme/x");
    assert_int_equal(f->res.remaining_micros, 10 * USD);

    assert_int_equal(chargeback(f, "acme/x/y", "acme/b", 10 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/x").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/x/y").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    fx_assert_verified(f);
}

static void test_chargeback_to_vendor_is_spend_of_whole_path(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_int_equal(chargeback(f, "acme/a", "vendor/newco", 30 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "vendor/newco").spent_micros, 0);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 30 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 30 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_refused_when_debtor_frozen(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/a");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_FROZEN);
    assert_string_equal(f->res.name, "acme/a");
}

static void test_chargeback_refused_when_creditor_closed(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/b");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme/b");
}

static void test_chargeback_refuses_unknown_debit(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_refused(f, fx_transfer("acme/ghost", "acme/b", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/ghost");
}

static void test_chargeback_refuses_unknown_credit(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_refused(f, fx_transfer("acme/a", "acme/ghost", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/ghost");
}

static void test_transfer_refuses_debit_equal_to_credit(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_refused(f, fx_transfer("acme/a", "acme/a", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_INVALID);
    assert_refused(f, fx_transfer("acme/a", "acme/a", 1 * USD, PROTO_KIND_ADJUSTMENT),
                   PROTO_ERR_INVALID);
}

static void test_transfer_refuses_amount_out_of_range(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 0, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
    assert_refused(f, fx_transfer("acme/a", "acme/b", -1, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
    assert_refused(f, fx_transfer("acme/a", "acme/b", PROTO_AMOUNT_MAX + 1,
                                  PROTO_KIND_ADJUSTMENT),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "amount");
}

static void test_transfer_refuses_spend_and_grant_kinds(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd c = fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_SPEND);
    c.role = PROTO_ROLE_ADMIN;
    assert_refused(f, c, PROTO_ERR_INVALID);
    fx_assert_message_has(f, "kind");
    c.u.transfer.kind = PROTO_KIND_GRANT;
    assert_refused(f, c, PROTO_ERR_INVALID);
    fx_assert_message_has(f, "kind");
}

static void test_refused_transfer_does_not_create_vendor(void **state)
{
    struct fx *f = *state;
    struct ledger_account_view v;
    struct ledger_error err = {0};
    departments(f);
    fx_spend(f, "acme/a", 100 * USD);
    assert_refused(f, fx_transfer("acme/a", "vendor/newco", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_BUDGET_EXCEEDED);
    assert_int_equal(ledger_account_get(f->l, "vendor/newco", &v, &err), LEDGER_ENOTFOUND);
}

/* ---- adjustment ---- */

static void test_adjustment_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd c = fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_ADJUSTMENT);
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
}

static void test_adjustment_is_listed_with_kind_adjustment(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[4];
    departments(f);
    struct proto_cmd c = fx_transfer("acme/a", "vendor/refunds", 5 * USD,
                                     PROTO_KIND_ADJUSTMENT);
    fx_meta_add(&c, "reason", "invoice-17");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    uint64_t id = f->res.id;

    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].id, id);
    assert_int_equal(p[0].kind, PROTO_KIND_ADJUSTMENT);
    assert_string_equal(p[0].debit, "acme/a");
    assert_string_equal(p[0].credit, "vendor/refunds");
    assert_int_equal(p[0].amount_micros, 5 * USD);
    assert_non_null(strstr(p[0].metadata_json, "invoice-17"));
    fx_assert_verified(f);
}

static void test_adjustment_may_overdraw_cap(void **state)
{
    struct fx *f = *state;
    departments(f);
    fx_spend(f, "acme/a", 60 * USD);
    struct proto_cmd c = fx_transfer("acme/a", "vendor/x", 150 * USD, PROTO_KIND_ADJUSTMENT);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme/a");
    assert_int_equal(v.spent_micros, 210 * USD);
    assert_int_equal(v.available_micros, 0);
    /* Recorded adjustments are allowed past the cap. */
    fx_assert_verified(f);
}

static void test_adjustment_ignores_frozen_status(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/a");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    struct proto_cmd c = fx_transfer("acme/a", "acme/b", 5 * USD, PROTO_KIND_ADJUSTMENT);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 5 * USD);
    fx_assert_verified(f);
}

static void test_adjustment_refuses_unknown_account(void **state)
{
    struct fx *f = *state;
    departments(f);
    assert_refused(f, fx_transfer("acme/ghost", "acme/b", 1 * USD, PROTO_KIND_ADJUSTMENT),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/ghost");
}

/* ---- the journal balances ---- */

static void test_journal_debits_equal_credits_after_mixed_transfers(void **state)
{
    struct fx *f = *state;
    static struct ledger_posting_view p[16];
    departments(f);
    fx_spend(f, "acme/a", 7 * USD);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 3 * USD), PROTO_OK);
    assert_int_equal(chargeback(f, "acme/b", "acme/a", 2 * USD), PROTO_OK);
    struct proto_cmd adj = fx_transfer("vendor/openai", "acme/a", 4 * USD,
                                       PROTO_KIND_ADJUSTMENT);
    assert_int_equal(fx_apply(f, &adj), PROTO_OK);

    int n = fx_journal(f, 2026, 11, p, 16);
    assert_int_equal(n, 4);
    int64_t net_a = 0, net_b = 0, net_vendor = 0, total = 0;
    for (int i = 0; i < n; i++) {
        assert_true(p[i].amount_micros > 0);
        assert_string_not_equal(p[i].debit, p[i].credit);
        total += p[i].amount_micros;
        net_a += (strcmp(p[i].credit, "acme/a") == 0) * p[i].amount_micros -
                 (strcmp(p[i].debit, "acme/a") == 0) * p[i].amount_micros;
        net_b += (strcmp(p[i].credit, "acme/b") == 0) * p[i].amount_micros -
                 (strcmp(p[i].debit, "acme/b") == 0) * p[i].amount_micros;
        net_vendor += (strcmp(p[i].credit, "vendor/openai") == 0) * p[i].amount_micros -
                      (strcmp(p[i].debit, "vendor/openai") == 0) * p[i].amount_micros;
    }
    assert_int_equal(total, 16 * USD);
    assert_int_equal(net_a, -4 * USD);
    assert_int_equal(net_b, 1 * USD);
    assert_int_equal(net_vendor, 3 * USD);
    assert_int_equal(net_a + net_b + net_vendor, 0);
    /* Gross outflow: credits never reduce spent. */
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 10 * USD);
    assert_int_equal(fx_view(f, "acme/b").spent_micros, 2 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 7 * USD);
    fx_assert_verified(f);
}

static void test_chargeback_to_own_ancestor_counts_only_below_it(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 10 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(chargeback(f, "acme/a", "acme", 50 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 50 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 0);
    fx_assert_verified(f);
}

static void test_chargeback_refused_when_debtor_closed(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/a");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    assert_refused(f, fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_CHARGEBACK),
                   PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme/a");
}

static void test_adjustment_ignores_closed_status(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme/b");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    struct proto_cmd c = fx_transfer("acme/a", "acme/b", 5 * USD, PROTO_KIND_ADJUSTMENT);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
    fx_assert_verified(f);
}

static void test_chargeback_accepts_frozen_creditor(void **state)
{
    struct fx *f = *state;
    departments(f);
    struct proto_cmd fr = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/b");
    assert_int_equal(fx_apply(f, &fr), PROTO_OK);
    assert_int_equal(chargeback(f, "acme/a", "acme/b", 5 * USD), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/a").spent_micros, 5 * USD);
    fx_assert_verified(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_chargeback_posts_one_journal_entry),
        T(test_chargeback_is_spend_of_debtor),
        T(test_chargeback_leaves_common_ancestor_spent_unchanged),
        T(test_chargeback_leaves_creditor_spent_unchanged),
        T(test_chargeback_refused_when_debtor_cap_exhausted),
        T(test_chargeback_counts_debtor_holds),
        T(test_chargeback_ignores_cap_of_common_ancestor),
        T(test_chargeback_respects_debtor_ancestor_below_common_ancestor),
        T(test_chargeback_to_vendor_is_spend_of_whole_path),
        T(test_chargeback_refused_when_debtor_frozen),
        T(test_chargeback_refused_when_creditor_closed),
        T(test_chargeback_refuses_unknown_debit),
        T(test_chargeback_refuses_unknown_credit),
        T(test_transfer_refuses_debit_equal_to_credit),
        T(test_transfer_refuses_amount_out_of_range),
        T(test_transfer_refuses_spend_and_grant_kinds),
        T(test_refused_transfer_does_not_create_vendor),
        T(test_adjustment_by_agent_is_forbidden),
        T(test_adjustment_is_listed_with_kind_adjustment),
        T(test_adjustment_may_overdraw_cap),
        T(test_adjustment_ignores_frozen_status),
        T(test_adjustment_refuses_unknown_account),
        T(test_journal_debits_equal_credits_after_mixed_transfers),
        T(test_chargeback_to_own_ancestor_counts_only_below_it),
        T(test_chargeback_refused_when_debtor_closed),
        T(test_adjustment_ignores_closed_status),
        T(test_chargeback_accepts_frozen_creditor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
