/*
 * test_ledger_copy.c — copies for long reads (ledger/copy.c): a copy taken
 * in small steps while entries keep applying equals the ledger when done;
 * a restore or close of the source aborts a copy in progress.
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
    for (int i = 0; i < 2000; i++) /* a few hundred pages */
        fx_spend(f, "acme", USD + i);
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

struct sums {
    uint64_t rows;
    int64_t amount;
};

static int sum_row(void *arg, const struct ledger_report_row *r)
{
    struct sums *s = arg;
    if (!r->is_total) {
        s->rows++;
        s->amount += r->amount_micros;
    }
    return 0;
}

static struct sums transfers(struct ledger *l)
{
    struct sums s = {0, 0};
    struct ledger_error err = {0};
    if (ledger_report(l, LEDGER_REPORT_TRANSFERS, 2026, 11, NULL, 0, sum_row, &s, &err) != 0)
        fail_msg("report: %s", err.message);
    return s;
}

static void test_a_copy_taken_in_steps_sees_writes_made_meanwhile(void **state)
{
    struct fx *f = *state;
    struct ledger_error err = {0};
    struct ledger_copy *c = NULL;
    assert_int_equal(ledger_copy_begin(f->l, &c, &err), 0);
    int steps = 0, rc;
    while ((rc = ledger_copy_step(c, 8, &err)) == 0) {
        if (++steps % 4 == 0)
            fx_spend(f, "acme", 7); /* the source keeps changing */
    }
    assert_int_equal(rc, 1);
    assert_true(steps > 4);
    struct ledger *copy = NULL;
    assert_int_equal(ledger_copy_finish(c, &copy, &err), 0);
    struct sums a = transfers(f->l), b = transfers(copy);
    assert_int_equal(a.rows, b.rows);
    assert_int_equal(a.amount, b.amount);
    assert_true(a.rows > 2000);
    /* Afterwards the two are independent. */
    fx_spend(f, "acme", 5);
    assert_int_equal(transfers(copy).rows, b.rows);
    assert_int_equal(ledger_now_ms(copy), ledger_now_ms(f->l));
    ledger_close(copy);
}

static void test_a_restore_of_the_source_aborts_the_copy(void **state)
{
    struct fx *f = *state;
    struct ledger_error err = {0};
    void *img = NULL;
    size_t len = 0;
    assert_int_equal(ledger_snapshot(f->l, NULL, &img, &len, &err), 0);
    struct ledger_copy *c = NULL;
    assert_int_equal(ledger_copy_begin(f->l, &c, &err), 0);
    assert_int_equal(ledger_copy_step(c, 1, &err), 0);
    assert_int_equal(ledger_restore(f->l, img, len, &err), 0);
    free(img);
    assert_true(ledger_copy_step(c, 8, &err) < 0);
    assert_non_null(strstr(err.message, "restored"));
    ledger_copy_free(c);
    fx_spend(f, "acme", 1); /* the restored ledger works */
}

static void test_an_unfinished_copy_can_be_dropped(void **state)
{
    struct fx *f = *state;
    struct ledger_error err = {0};
    struct ledger_copy *c = NULL;
    struct ledger *none = NULL;
    assert_int_equal(ledger_copy_begin(f->l, &c, &err), 0);
    assert_int_equal(ledger_copy_step(c, 1, &err), 0);
    assert_int_equal(ledger_copy_finish(c, &none, &err), LEDGER_EINVAL);
    ledger_copy_free(c);
    fx_spend(f, "acme", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_copy_taken_in_steps_sees_writes_made_meanwhile,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_restore_of_the_source_aborts_the_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_unfinished_copy_can_be_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
