/*
 * test_ledger_resv.c — the reservation store held in C (ledger/resv.c): a
 * hard error in the middle of an entry puts every reservation back, pruning
 * keeps long-held open reservations and forgets them once closed, expire
 * goes in (deadline, id) order, and snapshots carry reservations whole.
 *
 * The hard error is injected with a temporary SQLite trigger on the journal
 * (the test reaches into the ledger's database through internal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ledger/internal.h"
#include "tests/unit/ledger_fixture.h"

#define USD FX_USD
#define POISON_MICROS 777 /* a posting of this amount fails (trigger) */

static int setup(void **state)
{
    struct fx *f = calloc(2, sizeof *f);
    fx_open(&f[0]);
    fx_open(&f[1]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_close(&f[0]);
    fx_close(&f[1]);
    free(f);
    return 0;
}

static void hash_of(struct fx *f, uint8_t out[32])
{
    struct ledger_error err = {0};
    assert_int_equal(ledger_state_hash(f->l, out, &err), 0);
}

static void assert_same_state(struct fx *a, struct fx *b)
{
    uint8_t ha[32], hb[32];
    hash_of(a, ha);
    hash_of(b, hb);
    assert_memory_equal(ha, hb, 32);
    fx_assert_verified(a);
    fx_assert_verified(b);
}

static void poison_journal(struct fx *f)
{
    const char *sql = "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.journal"
                      " WHEN NEW.amount = 777 BEGIN SELECT RAISE(ABORT, 'injected'); END;";
    assert_int_equal(sqlite3_exec(f->l->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Apply the same commands (one entry) to both ledgers. */
static void both(struct fx *f, const struct proto_cmd *cmds, uint32_t n,
                 struct proto_result *res)
{
    struct proto_result other[8];
    assert_true(n <= 8);
    fx_apply_batch(&f[0], cmds, n, res);
    fx_apply_batch(&f[1], cmds, n, other);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(res[i].status, other[i].status);
}

static void both_at(struct fx *f, int64_t now_ms)
{
    f[0].now_ms = now_ms;
    f[1].now_ms = now_ms;
}

static void test_hard_error_puts_every_reservation_back(void **state)
{
    struct fx *f = *state;
    struct proto_result res[8];
    struct proto_cmd setup_cmds[] = {fx_account_create("acme", 1000 * USD, PROTO_PERIOD_NONE, 0)};
    both(f, setup_cmds, 1, res);
    struct proto_cmd held = fx_reserve("acme", 5 * USD, 40 * FX_DAY_MS); /* outlives prunes */
    fx_meta_add(&held, "run", "long");
    struct proto_cmd early[] = {fx_keyed(held, "k-long"),
                                fx_keyed(fx_reserve("acme", 2 * USD, 60000), "k-done"),
                                fx_reserve("acme", 3 * USD, 60000)};
    both(f, early, 3, res);
    uint64_t long_id = res[0].id, done_id = res[1].id, due_id = res[2].id;
    struct proto_cmd settle[] = {fx_commit(done_id, 1 * USD)};
    both(f, settle, 1, res);
    /* A day later the committed one is pruned; the long one is kept (pinned). */
    both_at(f, FX_T0 + 2 * FX_DAY_MS);
    struct proto_cmd prune[] = {fx_expire(), fx_keyed(fx_reserve("acme", 4 * USD, 60000), "k-recent")};
    both(f, prune, 2, res);
    uint64_t recent_id = res[1].id;
    assert_int_equal(res[0].amount_micros, 1); /* due_id expired */

    /* One entry that touches everything, then fails at its last posting. */
    poison_journal(&f[0]);
    f[0].now_ms = FX_T0 + 4 * FX_DAY_MS;
    struct proto_cmd doomed[] = {
        fx_keyed(fx_reserve("acme", 6 * USD, 60000), "k-doomed"), /* created, keyed */
        fx_commit(long_id, 2 * USD),             /* pinned one closed */
        fx_release(recent_id),                   /* released */
        fx_expire(), /* prunes both, due_id and the keys of T0 and T0+2d */
        fx_commit(recent_id + 1, POISON_MICROS), /* hard error */
    };
    struct proto_entry e = {.timestamp_ms = f[0].now_ms, .cmd_count = 5, .cmds = doomed};
    struct ledger_error err = {0};
    assert_int_equal(ledger_apply(f[0].l, &e, res, &err), LEDGER_ESQL);
    assert_int_equal(sqlite3_exec(f[0].l->db, "DROP TRIGGER temp.poison", NULL, NULL, NULL),
                     SQLITE_OK);

    assert_same_state(&f[0], &f[1]);
    struct ledger_reservation_view rv;
    assert_int_equal(ledger_reservation_get(f[0].l, long_id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);
    assert_string_equal(rv.metadata_json, "{\"run\":\"long\"}");
    assert_int_equal(ledger_reservation_get(f[0].l, recent_id, &rv, &err), 0);
    assert_int_equal(rv.status, LEDGER_RES_OPEN);
    assert_int_equal(ledger_reservation_get(f[0].l, recent_id + 1, &rv, &err), LEDGER_ENOTFOUND);

    /* Both go on alike: the same ids, prunes and expiries. */
    both_at(f, FX_T0 + 4 * FX_DAY_MS);
    /* The keys survived the undone prune: a repeat answers as before. */
    struct proto_cmd again[] = {fx_keyed(fx_reserve("acme", 4 * USD, 60000), "k-recent")};
    both(f, again, 1, res);
    assert_int_equal(res[0].id, recent_id);
    struct proto_cmd after[] = {fx_keyed(fx_reserve("acme", 6 * USD, 60000), "k-doomed"),
                                fx_commit(long_id, 2 * USD), fx_release(recent_id), fx_expire()};
    both(f, after, 4, res);
    assert_int_equal(res[0].id, recent_id + 1);
    both_at(f, FX_T0 + 6 * FX_DAY_MS);
    struct proto_cmd later[] = {fx_expire()};
    both(f, later, 1, res);
    assert_int_equal(res[0].amount_micros, 1); /* recent_id + 1 */
    assert_same_state(&f[0], &f[1]);
    assert_int_equal(ledger_reservation_get(f[0].l, long_id, &rv, &err), LEDGER_ENOTFOUND);
    assert_int_equal(ledger_reservation_get(f[0].l, due_id, &rv, &err), LEDGER_ENOTFOUND);
    assert_int_equal(fx_view(&f[0], "acme").reserved_micros, 0);
}

static void test_pruning_keeps_a_long_hold_and_forgets_it_once_closed(void **state)
{
    struct fx *f = *state;
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_reserve("acme", 5 * USD, 30 * FX_DAY_MS);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    uint64_t held = f->res.id;
    c = fx_reserve("acme", 1 * USD, 60000);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    uint64_t quick = f->res.id;
    for (int day = 2; day <= 5; day++) {
        f->now_ms = FX_T0 + day * FX_DAY_MS;
        c = fx_expire();
        assert_int_equal(fx_apply(f, &c), PROTO_OK);
    }
    assert_int_equal(ledger_reservation_get(f->l, quick, &rv, &err), LEDGER_ENOTFOUND);
    assert_int_equal(ledger_reservation_get(f->l, held, &rv, &err), 0);
    c = fx_commit(held, 4 * USD);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    /* Repeated commits answer like the first until the next prune. */
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 4 * USD);
    c = fx_expire();
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(ledger_reservation_get(f->l, held, &rv, &err), LEDGER_ENOTFOUND);
    fx_assert_verified(f);
}

static void test_expire_goes_in_deadline_then_id_order(void **state)
{
    struct fx *f = *state;
    struct ledger_reservation_view rv;
    struct ledger_error err = {0};
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    int64_t ttl[] = {30000, 10000, 20000, 10000};
    uint64_t id[4];
    for (int i = 0; i < 4; i++) {
        struct proto_cmd c = fx_reserve("acme", (i + 1) * USD, ttl[i]);
        c.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
        assert_int_equal(fx_apply(f, &c), PROTO_OK);
        id[i] = f->res.id;
    }
    f->now_ms += 60000;
    struct proto_cmd c = fx_expire();
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(f->res.amount_micros, 4);
    /* Charges are posted in expiry order: deadlines, ties by id. */
    int order[] = {1, 3, 2, 0};
    uint64_t prev = 0;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(ledger_reservation_get(f->l, id[order[k]], &rv, &err), 0);
        assert_int_equal(rv.status, LEDGER_RES_CHARGED);
        assert_true(rv.transfer_id > prev);
        prev = rv.transfer_id;
    }
    fx_assert_verified(f);
}

static void test_snapshot_carries_open_and_closed_reservations(void **state)
{
    struct fx *f = *state;
    struct ledger_error err = {0};
    struct proto_result res[8];
    struct proto_cmd setup_cmds[] = {fx_account_create("acme", 1000 * USD, PROTO_PERIOD_NONE, 0)};
    both(f, setup_cmds, 1, res);
    struct proto_cmd r = fx_reserve("acme", 5 * USD, 60000);
    fx_meta_add(&r, "team", "search");
    struct proto_cmd cmds[] = {r, fx_reserve("acme", 2 * USD, 60000)};
    both(f, cmds, 2, res);
    uint64_t open_id = res[0].id, done_id = res[1].id;
    struct proto_cmd settle[] = {fx_commit(done_id, 1 * USD)};
    both(f, settle, 1, res);

    void *img = NULL;
    size_t len = 0;
    assert_int_equal(ledger_snapshot(f[0].l, NULL, &img, &len, &err), 0);
    fx_close(&f[1]);
    fx_open(&f[1]);
    assert_int_equal(ledger_restore(f[1].l, img, len, &err), 0);
    free(img);
    assert_same_state(&f[0], &f[1]);

    struct ledger_reservation_view rv;
    assert_int_equal(ledger_reservation_get(f[1].l, open_id, &rv, &err), 0);
    assert_string_equal(rv.metadata_json, "{\"team\":\"search\"}");
    /* The restored one expires, commits and answers like the original. */
    both_at(f, FX_T0 + 30000);
    struct proto_cmd next[] = {fx_commit(done_id, 1 * USD), fx_commit(open_id, 3 * USD),
                               fx_reserve("acme", 1 * USD, 1000)};
    both(f, next, 3, res);
    both_at(f, FX_T0 + 40000);
    struct proto_cmd exp[] = {fx_expire()};
    both(f, exp, 1, res);
    assert_int_equal(res[0].amount_micros, 1);
    assert_same_state(&f[0], &f[1]);
}

static void test_snapshot_with_a_bad_reservation_record_is_corrupt(void **state)
{
    struct fx *f = *state;
    struct ledger_error err = {0};
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_reserve("acme", 5 * USD, 60000);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    uint8_t before[32];
    hash_of(&f[1], before);
    void *img = NULL;
    size_t len = 0;
    assert_int_equal(ledger_snapshot(f[0].l, NULL, &img, &len, &err), 0);
    /* The last record is the reservation: its status byte is the last. */
    uint8_t *p = img;
    p[len - 1] = 9;
    assert_int_equal(ledger_restore(f[1].l, img, len, &err), LEDGER_ECORRUPT);
    p[len - 1] = LEDGER_RES_OPEN;
    p[len - 1 - 1] = 7; /* on_expire */
    assert_int_equal(ledger_restore(f[1].l, img, len, &err), LEDGER_ECORRUPT);
    p[len - 1 - 1] = PROTO_ON_EXPIRE_RELEASE;
    assert_int_equal(ledger_restore(f[1].l, img, len - 1, &err), LEDGER_ECORRUPT);
    free(img);
    uint8_t after[32];
    hash_of(&f[1], after);
    assert_memory_equal(before, after, 32);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_hard_error_puts_every_reservation_back),
        T(test_pruning_keeps_a_long_hold_and_forgets_it_once_closed),
        T(test_expire_goes_in_deadline_then_id_order),
        T(test_snapshot_carries_open_and_closed_reservations),
        T(test_snapshot_with_a_bad_reservation_record_is_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
