/*
 * test_ledger_state.c — the ledger as a replicated state machine
 * (ledger.h, docs/ledger-rules.md "Time" and "Integrity"): equal state hashes
 * after equal entries, snapshot and restore, refusal of bad snapshots,
 * verify on a busy ledger, the journal by month, a clock that never goes
 * backwards, and batches whose refused commands do not stop the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "tests/unit/ledger_fixture.h"

#define USD FX_USD
#define MINUTE_MS (60LL * 1000)
/* 2026-12-01 00:00:00 UTC. */
#define DEC1_MS (FX_MON + 15 * FX_DAY_MS)
#define SCRIPT_CMDS_MAX 4

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

static void create_tree(struct fx *f)
{
    fx_create(f, "acme", 5000 * USD, PROTO_PERIOD_MONTH, 0);
    fx_create(f, "acme/eng", 400 * USD, PROTO_PERIOD_DAY, 60);
    fx_create(f, "acme/eng/bot", 150 * USD, PROTO_PERIOD_WEEK, -300);
    fx_create(f, "acme/ops", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "beta", 300 * USD, PROTO_PERIOD_NONE, 0);
}

/* ---- a deterministic workload ----
 * One step is one entry of a few commands chosen by a small LCG from the
 * script's own record of ids, so two ledgers in the same state given copies
 * of the same script apply the same entries. */

struct script {
    uint64_t rng;
    uint64_t res_ids[512];
    int res_count;
    uint64_t grant_ids[128];
    int grant_count;
};

static uint32_t script_rand(struct script *s, uint32_t n)
{
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(s->rng >> 33) % n;
}

static const char *const script_accounts[] = {"acme", "acme/eng", "acme/eng/bot",
                                              "acme/ops", "beta"};

static struct proto_cmd script_cmd(struct script *s)
{
    const char *a = script_accounts[script_rand(s, 5)];
    int64_t amount = (int64_t)(1 + script_rand(s, 40)) * USD;
    switch (script_rand(s, 9)) {
    case 0:
    case 1:
    case 2: {
        struct proto_cmd c = fx_reserve(a, amount, (int64_t)(1 + script_rand(s, 180)) * MINUTE_MS);
        c.u.reserve.on_expire = script_rand(s, 2);
        return c;
    }
    case 3:
        if (s->res_count > 0)
            return fx_commit(s->res_ids[script_rand(s, (uint32_t)s->res_count)],
                             (int64_t)script_rand(s, 50) * USD);
        return fx_expire();
    case 4:
        if (s->res_count > 0)
            return fx_release(s->res_ids[script_rand(s, (uint32_t)s->res_count)]);
        return fx_expire();
    case 5:
        return fx_transfer(a, script_rand(s, 2) ? "acme/ops" : "vendor/openai", amount,
                           PROTO_KIND_CHARGEBACK);
    case 6:
        return fx_transfer(a, "vendor/openai", amount, PROTO_KIND_ADJUSTMENT);
    case 7:
        if (s->grant_count > 0 && script_rand(s, 2))
            return fx_grant_close(s->grant_ids[script_rand(s, (uint32_t)s->grant_count)]);
        return fx_grant_create(a, amount, (int64_t)(1 + script_rand(s, 120)) * MINUTE_MS);
    default:
        return fx_expire();
    }
}

/* Apply one step; the results land in `out` (room for SCRIPT_CMDS_MAX);
 * returns how many. */
static uint32_t script_step(struct fx *f, struct script *s, struct proto_result *out)
{
    struct proto_cmd cmds[SCRIPT_CMDS_MAX];
    uint32_t n = 1 + script_rand(s, SCRIPT_CMDS_MAX);
    for (uint32_t i = 0; i < n; i++)
        cmds[i] = script_cmd(s);
    f->now_ms += (int64_t)script_rand(s, 120) * MINUTE_MS;
    memset(out, 0, n * sizeof *out);
    fx_apply_batch(f, cmds, n, out);
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].status != PROTO_OK)
            continue;
        if (cmds[i].type == PROTO_CMD_RESERVE && s->res_count < 512)
            s->res_ids[s->res_count++] = out[i].id;
        if (cmds[i].type == PROTO_CMD_GRANT_CREATE && s->grant_count < 128)
            s->grant_ids[s->grant_count++] = out[i].id;
    }
    return n;
}

static void script_run(struct fx *f, struct script *s, int steps)
{
    struct proto_result res[SCRIPT_CMDS_MAX];
    for (int i = 0; i < steps; i++)
        script_step(f, s, res);
}

static void assert_same_hash(struct fx *a, struct fx *b)
{
    uint8_t ha[32], hb[32];
    fx_state_hash(a, ha);
    fx_state_hash(b, hb);
    assert_memory_equal(ha, hb, 32);
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

static void snapshot(struct fx *f, void **data, size_t *len)
{
    struct ledger_error err = {0};
    if (ledger_snapshot(f->l, NULL, data, len, &err) != 0)
        fail_msg("snapshot: %s", err.message);
}

static void restore(struct fx *f, const void *data, size_t len)
{
    struct ledger_error err = {0};
    if (ledger_restore(f->l, data, len, &err) != 0)
        fail_msg("restore: %s", err.message);
}

/* ---- state hash ---- */

static void test_state_hash_is_equal_after_the_same_entries(void **state)
{
    struct fx *a = *state, b;
    fx_open(&b);
    b.now_ms = a->now_ms;
    create_tree(a);
    create_tree(&b);
    struct script sa = {.rng = 7}, sb = {.rng = 7};
    script_run(a, &sa, 200);
    script_run(&b, &sb, 200);
    assert_same_hash(a, &b);
    fx_close(&b);
}

static void test_state_hash_differs_after_one_more_entry(void **state)
{
    struct fx *a = *state, b;
    fx_open(&b);
    b.now_ms = a->now_ms;
    create_tree(a);
    create_tree(&b);
    struct script sa = {.rng = 7}, sb = {.rng = 7};
    script_run(a, &sa, 100);
    script_run(&b, &sb, 100);
    uint8_t ha[32], hb[32];
    struct proto_cmd more = fx_transfer("acme/ops", "vendor/openai", 1, PROTO_KIND_ADJUSTMENT);
    fx_expect_ok(a, &more);
    fx_state_hash(a, ha);
    fx_state_hash(&b, hb);
    assert_memory_not_equal(ha, hb, 32);
    fx_close(&b);
}

static void test_state_hash_differs_when_one_amount_differs(void **state)
{
    struct fx *a = *state, b;
    fx_open(&b);
    b.now_ms = a->now_ms;
    create_tree(a);
    create_tree(&b);
    fx_spend(a, "acme/ops", 10 * USD);
    fx_spend(&b, "acme/ops", 10 * USD + 1);
    uint8_t ha[32], hb[32];
    fx_state_hash(a, ha);
    fx_state_hash(&b, hb);
    assert_memory_not_equal(ha, hb, 32);
    fx_close(&b);
}

static void test_state_hash_differs_when_only_configuration_differs(void **state)
{
    struct fx *a = *state, b;
    fx_open(&b);
    b.now_ms = a->now_ms;
    struct proto_cmd pa = fx_price_set("gpt-4o", 1, 2, 3, 4);
    struct proto_cmd pb = fx_price_set("gpt-4o", 1, 2, 3, 5);
    fx_expect_ok(a, &pa);
    fx_expect_ok(&b, &pb);
    uint8_t ha[32], hb[32];
    fx_state_hash(a, ha);
    fx_state_hash(&b, hb);
    assert_memory_not_equal(ha, hb, 32);
    fx_close(&b);
}

static void test_state_hash_is_stable_between_calls(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct script s = {.rng = 3};
    script_run(f, &s, 50);
    uint8_t h1[32], h2[32];
    fx_state_hash(f, h1);
    fx_state_hash(f, h2);
    assert_memory_equal(h1, h2, 32);
}

/* ---- snapshot and restore ---- */

static void test_snapshot_restored_into_a_fresh_ledger_gives_the_same_state_hash(void **state)
{
    struct fx *a = *state, b;
    create_tree(a);
    struct script s = {.rng = 11};
    script_run(a, &s, 150);
    void *data;
    size_t len;
    snapshot(a, &data, &len);
    fx_open(&b);
    restore(&b, data, len);
    free(data);
    assert_same_hash(a, &b);
    fx_close(&b);
}

static void test_snapshot_restored_gives_the_same_answers_afterwards(void **state)
{
    struct fx *a = *state, b;
    create_tree(a);
    struct script sa = {.rng = 13};
    script_run(a, &sa, 150);
    void *data;
    size_t len;
    snapshot(a, &data, &len);
    fx_open(&b);
    b.now_ms = a->now_ms;
    restore(&b, data, len);
    free(data);

    struct script sb = sa;
    for (int i = 0; i < 150; i++) {
        struct proto_result ra[SCRIPT_CMDS_MAX], rb[SCRIPT_CMDS_MAX];
        uint32_t na = script_step(a, &sa, ra);
        uint32_t nb = script_step(&b, &sb, rb);
        assert_int_equal(na, nb);
        for (uint32_t j = 0; j < na; j++)
            assert_result_equal(&ra[j], &rb[j]);
    }
    assert_same_hash(a, &b);
    for (size_t i = 0; i < sizeof script_accounts / sizeof script_accounts[0]; i++) {
        struct ledger_account_view va = fx_view(a, script_accounts[i]);
        struct ledger_account_view vb = fx_view(&b, script_accounts[i]);
        assert_int_equal(va.spent_micros, vb.spent_micros);
        assert_int_equal(va.reserved_micros, vb.reserved_micros);
        assert_int_equal(va.available_micros, vb.available_micros);
    }
    fx_close(&b);
}

static void test_snapshot_restore_keeps_now_and_entries_applied(void **state)
{
    struct fx *a = *state, b;
    create_tree(a);
    struct script s = {.rng = 17};
    script_run(a, &s, 40);
    void *data;
    size_t len;
    snapshot(a, &data, &len);
    fx_open(&b);
    restore(&b, data, len);
    free(data);
    assert_int_equal(ledger_now_ms(b.l), ledger_now_ms(a->l));
    assert_int_equal(ledger_entries_applied(b.l), ledger_entries_applied(a->l));
    fx_close(&b);
}

static void test_snapshot_restored_ledger_verifies_clean(void **state)
{
    struct fx *a = *state, b;
    create_tree(a);
    struct script s = {.rng = 19};
    script_run(a, &s, 150);
    void *data;
    size_t len;
    snapshot(a, &data, &len);
    fx_open(&b);
    restore(&b, data, len);
    free(data);
    fx_assert_verified(&b);
    fx_close(&b);
}

static void test_restore_replaces_the_whole_state_of_a_used_ledger(void **state)
{
    struct fx *a = *state, b;
    create_tree(a);
    void *data;
    size_t len;
    snapshot(a, &data, &len);
    fx_open(&b);
    b.now_ms = FX_MON;
    fx_create(&b, "other", 5 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(&b, "other", 1 * USD);
    restore(&b, data, len);
    free(data);
    struct ledger_account_view v;
    struct ledger_error err = {0};
    assert_int_equal(ledger_account_get(b.l, "other", &v, &err), LEDGER_ENOTFOUND);
    assert_same_hash(a, &b);
    fx_close(&b);
}

static void test_restore_of_garbage_fails_corrupt_and_changes_nothing(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    fx_spend(f, "acme/eng/bot", 3 * USD);
    uint8_t before[32];
    fx_state_hash(f, before);
    uint64_t applied = ledger_entries_applied(f->l);

    unsigned char junk[4096];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        junk[i] = (unsigned char)x;
    }
    memcpy(junk, "not a purser snapshot", 21);
    struct ledger_error err = {0};
    assert_int_equal(ledger_restore(f->l, junk, sizeof junk, &err), LEDGER_ECORRUPT);
    fx_assert_hash(f, before);
    assert_int_equal(ledger_entries_applied(f->l), applied);
    assert_int_equal(fx_view(f, "acme/eng/bot").spent_micros, 3 * USD);
}

static void test_restore_of_empty_bytes_fails_corrupt(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    uint8_t before[32];
    fx_state_hash(f, before);
    struct ledger_error err = {0};
    static const char nothing[1] = {0};
    assert_int_equal(ledger_restore(f->l, nothing, 0, &err), LEDGER_ECORRUPT);
    fx_assert_hash(f, before);
}

static void test_restore_of_a_truncated_snapshot_fails_corrupt(void **state)
{
    struct fx *f = *state, g;
    create_tree(f);
    struct script s = {.rng = 23};
    script_run(f, &s, 50);
    void *data;
    size_t len;
    snapshot(f, &data, &len);
    fx_open(&g);
    g.now_ms = FX_MON;
    fx_create(&g, "keep", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    uint8_t before[32];
    fx_state_hash(&g, before);
    struct ledger_error err = {0};
    assert_int_equal(ledger_restore(g.l, data, len / 2, &err), LEDGER_ECORRUPT);
    free(data);
    fx_assert_hash(&g, before);
    fx_view(&g, "keep");
    fx_close(&g);
}

/* A SQLite image with the ledger's table names but not its schema is not a
 * ledger: refused before it replaces anything. */
static void test_restore_of_a_sqlite_database_without_the_ledger_schema_fails_corrupt(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    uint8_t before[32];
    fx_state_hash(f, before);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE meta(x); CREATE TABLE account(x);"
                                  " CREATE TABLE journal(x); CREATE TABLE reservation(x);"
                                  " CREATE TABLE grants(x); CREATE TABLE idem(x);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_int64 n = 0;
    unsigned char *img = sqlite3_serialize(db, "main", &n, 0);
    assert_non_null(img);
    struct ledger_error err = {0};
    int rc = ledger_restore(f->l, img, (size_t)n, &err);
    sqlite3_free(img);
    sqlite3_close(db);
    if (rc != LEDGER_ECORRUPT)
        fail_msg("restore returned %d (%s), expected LEDGER_ECORRUPT", rc, err.message);
    fx_assert_hash(f, before);
    fx_spend(f, "acme/eng/bot", 1 * USD);
}

/* Every page after the first scrambled: the tables are there, their
 * contents are not. */
static void test_restore_of_a_snapshot_with_scrambled_pages_fails_corrupt(void **state)
{
    struct fx *f = *state, g;
    create_tree(f);
    struct script s = {.rng = 37};
    script_run(f, &s, 100);
    void *data;
    size_t len;
    snapshot(f, &data, &len);
    assert_true(len > 8192);
    unsigned char *bytes = data;
    for (size_t i = 4096 + 8; i < len; i += 7)
        bytes[i] ^= 0x5a;

    fx_open(&g);
    g.now_ms = FX_MON;
    create_tree(&g);
    uint8_t before[32];
    fx_state_hash(&g, before);
    struct ledger_error err = {0};
    int rc = ledger_restore(g.l, data, len, &err);
    free(data);
    if (rc != LEDGER_ECORRUPT)
        fail_msg("restore returned %d (%s), expected LEDGER_ECORRUPT", rc, err.message);
    fx_assert_hash(&g, before);
    fx_spend(&g, "acme/eng/bot", 1 * USD);
    fx_close(&g);
}

static void test_ledger_stays_usable_after_a_failed_restore(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    static const char junk[] = "SQLite format 3\0 but not really a ledger at all";
    struct ledger_error err = {0};
    assert_int_equal(ledger_restore(f->l, junk, sizeof junk, &err), LEDGER_ECORRUPT);
    fx_spend(f, "acme/eng/bot", 2 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 2 * USD);
    fx_assert_verified(f);
}

/* ---- verify ---- */

static void test_verify_finds_nothing_on_a_fresh_ledger(void **state)
{
    struct fx *f = *state;
    fx_assert_verified(f);
}

static void test_verify_finds_nothing_on_a_busy_ledger(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct script s = {.rng = 29};
    for (int i = 0; i < 10; i++) {
        script_run(f, &s, 100);
        fx_assert_verified(f);
    }
}

static void test_verify_finds_nothing_across_period_boundaries(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct script s = {.rng = 31};
    for (int i = 0; i < 8; i++) {
        script_run(f, &s, 40);
        f->now_ms += 4 * FX_DAY_MS + 7 * FX_HOUR_MS;
        fx_tick(f, f->now_ms);
        fx_assert_verified(f);
    }
}

/* ---- journal by month ---- */

static void test_journal_month_lists_that_months_postings_in_order(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct proto_cmd t1 = fx_transfer("acme/eng", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
    struct proto_cmd t2 = fx_transfer("beta", "acme/ops", 2 * USD, PROTO_KIND_CHARGEBACK);
    struct proto_cmd t3 = fx_transfer("acme/ops", "vendor/openai", 3 * USD, PROTO_KIND_ADJUSTMENT);
    fx_expect_ok(f, &t1);
    f->now_ms += MINUTE_MS;
    fx_expect_ok(f, &t2);
    f->now_ms += MINUTE_MS;
    fx_expect_ok(f, &t3);

    struct ledger_posting_view p[4];
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 3);
    assert_true(p[0].id < p[1].id && p[1].id < p[2].id);
    assert_true(p[0].ts_ms <= p[1].ts_ms && p[1].ts_ms <= p[2].ts_ms);
    assert_int_equal(p[0].amount_micros, 1 * USD);
    assert_int_equal(p[1].amount_micros, 2 * USD);
    assert_int_equal(p[2].amount_micros, 3 * USD);
    assert_string_equal(p[2].debit, "acme/ops");
    assert_string_equal(p[2].credit, "vendor/openai");
    assert_int_equal(p[2].kind, PROTO_KIND_ADJUSTMENT);
    assert_int_equal(p[0].ts_ms, FX_MON);
}

static void test_journal_month_leaves_out_the_neighbouring_months(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct proto_cmd t = fx_transfer("acme/eng", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
    f->now_ms = DEC1_MS - 1;
    fx_expect_ok(f, &t);
    f->now_ms = DEC1_MS;
    fx_expect_ok(f, &t);
    fx_expect_ok(f, &t);

    struct ledger_posting_view p[4];
    assert_int_equal(fx_journal(f, 2026, 11, p, 4), 1);
    assert_int_equal(p[0].ts_ms, DEC1_MS - 1);
    assert_int_equal(fx_journal(f, 2026, 12, p, 4), 2);
    assert_int_equal(p[0].ts_ms, DEC1_MS);
    assert_int_equal(fx_journal(f, 2026, 10, NULL, 0), 0);
    assert_int_equal(fx_journal(f, 2027, 1, NULL, 0), 0);
}

static void test_journal_month_december_ends_at_the_new_year(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    const int64_t jan1_ms = DEC1_MS + 31 * FX_DAY_MS; /* 2027-01-01 00:00 UTC */
    struct proto_cmd t = fx_transfer("acme/eng", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
    f->now_ms = jan1_ms - 1;
    fx_expect_ok(f, &t);
    f->now_ms = jan1_ms;
    fx_expect_ok(f, &t);

    struct ledger_posting_view p[2];
    assert_int_equal(fx_journal(f, 2026, 12, p, 2), 1);
    assert_int_equal(p[0].ts_ms, jan1_ms - 1);
    assert_int_equal(fx_journal(f, 2027, 1, p, 2), 1);
    assert_int_equal(p[0].ts_ms, jan1_ms);
}

static void test_journal_month_of_an_empty_month_calls_nothing(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    assert_int_equal(fx_journal(f, 2026, 11, NULL, 0), 0);
}

static void test_journal_month_records_a_commit_with_its_reservation_and_overrun(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    uint64_t id = fx_reserve_ok(f, "acme/eng/bot", 5 * USD);
    struct proto_cmd c = fx_commit(id, 7 * USD);
    fx_expect_ok(f, &c);
    uint64_t transfer_id = f->res.transfer_id;

    struct ledger_posting_view p[2];
    assert_int_equal(fx_journal(f, 2026, 11, p, 2), 1);
    assert_int_equal(p[0].id, transfer_id);
    assert_int_equal(p[0].kind, PROTO_KIND_SPEND);
    assert_string_equal(p[0].debit, "acme/eng/bot");
    assert_string_equal(p[0].credit, "vendor/openai");
    assert_int_equal(p[0].amount_micros, 7 * USD);
    assert_int_equal(p[0].reservation_id, id);
    assert_int_equal(p[0].overrun_micros, 2 * USD);
}

static int stop_after_first_cb(void *arg, const struct ledger_posting_view *p)
{
    (void)p;
    (*(int *)arg)++;
    return 1;
}

static void test_journal_month_stops_when_the_callback_says_so(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct proto_cmd t = fx_transfer("acme/eng", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
    fx_expect_ok(f, &t);
    fx_expect_ok(f, &t);
    fx_expect_ok(f, &t);
    int calls = 0;
    struct ledger_error err = {0};
    ledger_journal_month(f->l, 2026, 11, stop_after_first_cb, &calls, &err);
    assert_int_equal(calls, 1);
}

/* ---- time ---- */

static void test_now_follows_the_entry_timestamp(void **state)
{
    struct fx *f = *state;
    fx_tick(f, FX_MON + 5000);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + 5000);
    fx_tick(f, FX_MON + 9000);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + 9000);
}

static void test_now_never_goes_backwards(void **state)
{
    struct fx *f = *state;
    fx_tick(f, FX_MON + 10000);
    fx_tick(f, FX_MON + 4000);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + 10000);
    fx_tick(f, FX_MON);
    assert_int_equal(ledger_now_ms(f->l), FX_MON + 10000);
}

static void test_entry_with_an_earlier_timestamp_is_applied_at_the_later_now(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    fx_tick(f, FX_MON + 10000);
    f->now_ms = FX_MON + 1000;
    struct proto_cmd r = fx_reserve("acme/ops", 1 * USD, MINUTE_MS);
    fx_expect_ok(f, &r);
    assert_int_equal(f->res.expires_at_ms, FX_MON + 10000 + MINUTE_MS);
}

static void test_entries_applied_counts_every_entry(void **state)
{
    struct fx *f = *state;
    uint64_t start = ledger_entries_applied(f->l);
    create_tree(f); /* 5 entries */
    struct proto_cmd bad = fx_reserve("nobody", 1, MINUTE_MS);
    fx_apply(f, &bad); /* refused, but applied */
    struct proto_cmd batch[3] = {fx_expire(), fx_expire(), fx_expire()};
    struct proto_result res[3];
    fx_apply_batch(f, batch, 3, res);
    assert_int_equal(ledger_entries_applied(f->l), start + 7);
}

/* ---- batches ---- */

static void test_batch_with_refused_commands_applies_the_others(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct proto_cmd batch[6] = {
        fx_reserve("acme/eng/bot", 10 * USD, MINUTE_MS),
        fx_reserve("acme/ghost", 1 * USD, MINUTE_MS),
        fx_reserve("beta", 301 * USD, MINUTE_MS),
        fx_transfer("beta", "acme/ops", 4 * USD, PROTO_KIND_CHARGEBACK),
        fx_commit(987654321, 1 * USD),
        fx_reserve("beta", 20 * USD, MINUTE_MS),
    };
    struct proto_result res[6];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 6, res);
    assert_int_equal(res[0].status, PROTO_OK);
    assert_int_equal(res[1].status, PROTO_ERR_NOT_FOUND);
    assert_int_equal(res[2].status, PROTO_ERR_BUDGET_EXCEEDED);
    assert_int_equal(res[3].status, PROTO_OK);
    assert_int_equal(res[4].status, PROTO_ERR_NOT_FOUND);
    assert_int_equal(res[5].status, PROTO_OK);
    assert_int_equal(fx_view(f, "acme/eng/bot").reserved_micros, 10 * USD);
    assert_int_equal(fx_view(f, "beta").spent_micros, 4 * USD);
    assert_int_equal(fx_view(f, "beta").reserved_micros, 20 * USD);
    fx_assert_verified(f);
}

static void test_batch_commands_see_the_effects_of_earlier_ones(void **state)
{
    struct fx *f = *state;
    create_tree(f);
    struct proto_cmd batch[3] = {
        fx_reserve("beta", 200 * USD, MINUTE_MS),
        fx_reserve("beta", 200 * USD, MINUTE_MS),
        fx_reserve("beta", 100 * USD, MINUTE_MS),
    };
    struct proto_result res[3];
    memset(res, 0, sizeof res);
    fx_apply_batch(f, batch, 3, res);
    assert_int_equal(res[0].status, PROTO_OK);
    assert_int_equal(res[1].status, PROTO_ERR_BUDGET_EXCEEDED);
    assert_int_equal(res[1].remaining_micros, 100 * USD);
    assert_int_equal(res[2].status, PROTO_OK);
    assert_int_equal(res[2].remaining_micros, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_state_hash_is_equal_after_the_same_entries),
        T(test_state_hash_differs_after_one_more_entry),
        T(test_state_hash_differs_when_one_amount_differs),
        T(test_state_hash_differs_when_only_configuration_differs),
        T(test_state_hash_is_stable_between_calls),
        T(test_snapshot_restored_into_a_fresh_ledger_gives_the_same_state_hash),
        T(test_snapshot_restored_gives_the_same_answers_afterwards),
        T(test_snapshot_restore_keeps_now_and_entries_applied),
        T(test_snapshot_restored_ledger_verifies_clean),
        T(test_restore_replaces_the_whole_state_of_a_used_ledger),
        T(test_restore_of_garbage_fails_corrupt_and_changes_nothing),
        T(test_restore_of_empty_bytes_fails_corrupt),
        T(test_restore_of_a_truncated_snapshot_fails_corrupt),
        T(test_restore_of_a_sqlite_database_without_the_ledger_schema_fails_corrupt),
        T(test_restore_of_a_snapshot_with_scrambled_pages_fails_corrupt),
        T(test_ledger_stays_usable_after_a_failed_restore),
        T(test_verify_finds_nothing_on_a_fresh_ledger),
        T(test_verify_finds_nothing_on_a_busy_ledger),
        T(test_verify_finds_nothing_across_period_boundaries),
        T(test_journal_month_lists_that_months_postings_in_order),
        T(test_journal_month_leaves_out_the_neighbouring_months),
        T(test_journal_month_december_ends_at_the_new_year),
        T(test_journal_month_of_an_empty_month_calls_nothing),
        T(test_journal_month_records_a_commit_with_its_reservation_and_overrun),
        T(test_journal_month_stops_when_the_callback_says_so),
        T(test_now_follows_the_entry_timestamp),
        T(test_now_never_goes_backwards),
        T(test_entry_with_an_earlier_timestamp_is_applied_at_the_later_now),
        T(test_entries_applied_counts_every_entry),
        T(test_batch_with_refused_commands_applies_the_others),
        T(test_batch_commands_see_the_effects_of_earlier_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
