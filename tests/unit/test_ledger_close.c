/*
 * test_ledger_close.c — month-end close semantics (docs/ledger-rules.md
 * "Month-end close"): holds open across the boundary settle into the open
 * month with their own time; corrections are adjustments in the open month
 * that name what they correct; a closed month's reports never change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/proto.h"
#include "tests/unit/ledger_fixture.h"

#define USD FX_USD
/* 2026-11-01 00:00 UTC (FX_MON is 2026-11-16). */
#define NOV1 (FX_MON - 15 * FX_DAY_MS)
#define MIN_MS (60LL * 1000)

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = NOV1 - FX_HOUR_MS; /* 2026-10-31 23:00 */
    fx_create(f, "acme", 1000 * USD, PROTO_PERIOD_MONTH, 0);
    fx_create(f, "acme/eng", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

struct dump {
    char *buf;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void dump_add(struct dump *d, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof line);
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->len + (size_t)n + 1) * 2;
        d->buf = realloc(d->buf, d->cap);
        assert_non_null(d->buf);
    }
    memcpy(d->buf + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
}

/* Every field of every row. */
static int dump_row(void *arg, const struct ledger_report_row *r)
{
    struct dump *d = arg;
    dump_add(d, "%d|%d|%s|%s|%s|%s|", r->view, r->is_total, r->debit ? r->debit : "",
             r->credit ? r->credit : "", r->debit_cost_center ? r->debit_cost_center : "",
             r->credit_cost_center ? r->credit_cost_center : "");
    for (uint32_t i = 0; i < r->group_count; i++)
        dump_add(d, "%s,", r->group[i]);
    dump_add(d, "|%llu|%lld|%lld|%lld|%lld|%lld|%llu|%lld|%d|%llu|",
             (unsigned long long)r->posting_count, (long long)r->amount_micros,
             (long long)r->overrun_micros, (long long)r->debit_micros,
             (long long)r->credit_micros, (long long)r->net_micros, (unsigned long long)r->id,
             (long long)r->ts_ms, r->kind, (unsigned long long)r->reservation_id);
    for (uint32_t i = 0; i < r->metadata_len; i++)
        dump_add(d, "%02x", r->metadata[i]);
    dump_add(d, "\n");
    return 0;
}

/* All four reports of a month, as one text. */
static char *reports(struct fx *f, int year, int month)
{
    struct dump d = {0};
    static const char *const keys[] = {"project_id"};
    struct ledger_error err = {0};
    for (int kind = LEDGER_REPORT_CHARGEBACK; kind <= LEDGER_REPORT_TRANSFERS; kind++) {
        dump_add(&d, "== %s\n", ledger_report_kind_name(kind));
        uint32_t n = kind == LEDGER_REPORT_SPEND ? 1 : 0;
        if (ledger_report(f->l, kind, year, month, keys, n, dump_row, &d, &err) != 0)
            fail_msg("report %d: %s", kind, err.message);
    }
    return d.buf;
}

static struct proto_cmd adjustment(const char *corrects, int64_t amount)
{
    struct proto_cmd c = fx_admin(fx_transfer("acme/ops", "acme/eng", amount,
                                              PROTO_KIND_ADJUSTMENT));
    if (corrects)
        fx_meta_add(&c, "corrects", corrects);
    return c;
}

static void close_october(struct fx *f)
{
    struct proto_cmd c = fx_period_close("2026-10");
    fx_expect_ok(f, &c);
}

static void test_holds_open_across_the_close_settle_into_the_open_month(void **state)
{
    struct fx *f = *state;
    fx_spend(f, "acme/eng", 2 * USD); /* October */
    uint64_t open = fx_reserve_ok(f, "acme/eng", 5 * USD);
    struct proto_cmd c = fx_reserve("acme/eng", 3 * USD, 2 * FX_HOUR_MS);
    c.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    fx_expect_ok(f, &c);
    uint64_t charged = f->res.id;

    f->now_ms = NOV1 + MIN_MS;
    close_october(f);
    char *october = reports(f, 2026, 10);
    assert_int_equal(fx_journal(f, 2026, 10, NULL, 0), 1);

    /* A commit after the close posts with its own time: November. */
    f->now_ms = NOV1 + 2 * MIN_MS;
    c = fx_commit(open, 4 * USD);
    fx_expect_ok(f, &c);
    /* An expiry charge after the close: November too. */
    fx_tick(f, NOV1 + FX_HOUR_MS + MIN_MS);
    struct ledger_posting_view nov[4];
    assert_int_equal(fx_journal(f, 2026, 11, nov, 4), 2);
    assert_int_equal(nov[0].reservation_id, open);
    assert_int_equal(nov[0].amount_micros, 4 * USD);
    assert_true(nov[0].ts_ms >= NOV1);
    assert_int_equal(nov[1].reservation_id, charged);
    assert_int_equal(nov[1].amount_micros, 3 * USD);

    char *after = reports(f, 2026, 10);
    assert_string_equal(after, october);
    assert_int_equal(fx_journal(f, 2026, 10, NULL, 0), 1);
    /* The monthly cap of acme counts November's spend only. */
    assert_int_equal(fx_view(f, "acme").spent_micros, 7 * USD);
    fx_assert_verified(f);
    free(october);
    free(after);
}

static void test_a_correction_is_an_adjustment_in_the_open_month(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_transfer("acme/eng", "acme/ops", 10 * USD, PROTO_KIND_CHARGEBACK);
    fx_expect_ok(f, &c);
    uint64_t wrong = f->res.id;
    f->now_ms = NOV1 + MIN_MS;
    close_october(f);
    char *october = reports(f, 2026, 10);
    char *november = reports(f, 2026, 11);

    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)wrong);
    c = adjustment(id, 4 * USD); /* the chargeback should have been 6 USD */
    fx_expect_ok(f, &c);
    uint64_t fix = f->res.id;

    char *october_after = reports(f, 2026, 10);
    assert_string_equal(october_after, october); /* byte for byte */
    char *november_after = reports(f, 2026, 11);
    assert_string_not_equal(november_after, november);
    struct ledger_posting_view p[2];
    assert_int_equal(fx_journal(f, 2026, 11, p, 2), 1);
    assert_int_equal(p[0].id, fix);
    assert_int_equal(p[0].kind, PROTO_KIND_ADJUSTMENT);
    char want[64];
    snprintf(want, sizeof want, "{\"corrects\":\"%s\"}", id);
    assert_string_equal(p[0].metadata_json, want);
    /* The transfers report of November lists it with the reference. */
    assert_non_null(strstr(november_after, "|4|0|")); /* kind adjustment, no reservation */
    free(october);
    free(november);
    free(october_after);
    free(november_after);
}

static void test_corrects_must_name_an_earlier_transfer(void **state)
{
    struct fx *f = *state;
    fx_spend(f, "acme/eng", USD); /* transfer 1 */
    struct proto_cmd c = adjustment("2", USD);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "corrects");
    c = adjustment("abc", USD);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "corrects");
    c = adjustment("01", USD);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "corrects");
    c = adjustment("", USD);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "corrects");
    c = adjustment("1", USD);
    fx_expect_ok(f, &c);
    c = adjustment(NULL, USD); /* a reference is optional */
    fx_expect_ok(f, &c);
}

static void test_nothing_posts_into_a_closed_month(void **state)
{
    struct fx *f = *state;
    f->now_ms = NOV1;
    struct proto_cmd c = fx_period_close("2026-11");
    fx_expect_refused(f, &c, PROTO_ERR_CONFLICT, "not over");
    close_october(f);
    /* Entry time never goes back: a late entry stamped in October is
     * applied at the ledger's time, in November. */
    f->now_ms = NOV1 - FX_HOUR_MS;
    fx_spend(f, "acme/eng", USD);
    assert_int_equal(fx_journal(f, 2026, 10, NULL, 0), 0);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_holds_open_across_the_close_settle_into_the_open_month, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_correction_is_an_adjustment_in_the_open_month,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrects_must_name_an_earlier_transfer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nothing_posts_into_a_closed_month, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
