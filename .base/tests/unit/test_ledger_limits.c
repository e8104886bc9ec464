/*
 * test_ledger_limits.c — every limit of docs/ledger-rules.md and proto.h,
 * checked where a command enters the ledger: names, maps, amounts, ttl, tz,
 * period, keys, batch size, and overflow of the sums.  A refusal is
 * `invalid`, its message names the bad field, and it changes nothing (state
 * hash before == after).
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
#define MINUTE_MS (60LL * 1000)
#define TTL_MS MINUTE_MS

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

/* `n` copies of `c`, in one of a few static slots. */
static const char *repeat_char(int slot, char c, size_t n)
{
    static char buf[4][1024];
    assert_true(slot < 4 && n < sizeof buf[0]);
    memset(buf[slot], c, n);
    buf[slot][n] = '\0';
    return buf[slot];
}

/* Create the `depth` accounts of a path whose segments are `seglen` copies
 * of 'a'..'h', and write the last path into `out`. */
static void create_path(struct fx *f, int depth, size_t seglen, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < depth; i++) {
        size_t len = strlen(out);
        if (i > 0)
            out[len++] = '/';
        assert_true(len + seglen < cap);
        memset(out + len, 'a' + i, seglen);
        out[len + seglen] = '\0';
        fx_create(f, out, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    }
}

static struct proto_cmd create_cmd(const char *name)
{
    return fx_account_create(name, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
}

/* A map with `n` entries "k00".."kNN" (n may exceed PROTO_MAP_MAX: the
 * count says n, only the first PROTO_MAP_MAX entries exist). */
static void fill_map(struct proto_map *m, uint32_t n)
{
    static char keys[PROTO_MAP_MAX][8];
    memset(m, 0, sizeof *m);
    for (uint32_t i = 0; i < PROTO_MAP_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02u", i);
        m->kv[i].key = fx_s(keys[i]);
        m->kv[i].value = fx_s("v");
    }
    m->count = n;
}

/* ---- account names ---- */

static void test_account_name_of_255_bytes_is_accepted(void **state)
{
    struct fx *f = *state;
    char name[300];
    create_path(f, 3, 63, name, sizeof name);
    strcat(name, "/");
    strcat(name, repeat_char(0, 'z', 63));
    assert_int_equal(strlen(name), PROTO_NAME_MAX);
    struct proto_cmd c = create_cmd(name);
    fx_expect_ok(f, &c);
    fx_view(f, name);
}

static void test_account_name_longer_than_255_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    char name[300];
    create_path(f, 3, 63, name, sizeof name);
    strcat(name, "/");
    strcat(name, repeat_char(0, 'z', 64));
    assert_int_equal(strlen(name), PROTO_NAME_MAX + 1);
    struct proto_cmd c = create_cmd(name);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
}

static void test_account_name_of_8_segments_is_accepted(void **state)
{
    struct fx *f = *state;
    char name[300];
    create_path(f, PROTO_NAME_DEPTH_MAX, 2, name, sizeof name);
    fx_view(f, name);
}

static void test_account_name_of_9_segments_is_refused(void **state)
{
    struct fx *f = *state;
    char name[300];
    create_path(f, PROTO_NAME_DEPTH_MAX, 2, name, sizeof name);
    strcat(name, "/ii");
    struct proto_cmd c = create_cmd(name);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
}

static void test_account_segment_of_64_bytes_is_accepted(void **state)
{
    struct fx *f = *state;
    char name[1100];
    snprintf(name, sizeof name, "acme/%s", repeat_char(0, 's', PROTO_SEGMENT_MAX));
    struct proto_cmd c = create_cmd(name);
    fx_expect_ok(f, &c);
}

static void test_account_segment_longer_than_64_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    char name[1100];
    snprintf(name, sizeof name, "acme/%s", repeat_char(0, 's', PROTO_SEGMENT_MAX + 1));
    struct proto_cmd c = create_cmd(name);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
}

static void test_account_name_with_an_empty_segment_is_refused(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"", "/acme", "acme/", "acme//bot", "/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = create_cmd(bad[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
    }
}

static void test_account_segment_of_dot_or_dot_dot_is_refused(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {".", "..", "acme/.", "acme/..", "acme/../acme"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = create_cmd(bad[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
    }
}

static void test_account_segment_with_a_character_outside_the_set_is_refused(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"acme/a b", "acme/a*b", "acme/\xc3\xa9t\xc3\xa9", "acme/a\tb",
                         "acme/a:b", "acme/a\\b", "acme/a%b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = create_cmd(bad[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
    }
}

static void test_account_segment_with_every_allowed_character_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/AZaz09._-");
    fx_expect_ok(f, &c);
    struct proto_cmd d = create_cmd("acme/...");
    fx_expect_ok(f, &d);
}

static void test_account_name_with_a_nul_byte_is_refused(void **state)
{
    struct fx *f = *state;
    static const char raw[] = "acme/a\0b";
    struct proto_cmd c = create_cmd("acme/a");
    c.u.account.name.ptr = raw;
    c.u.account.name.len = 8;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
}

static void test_account_segment_starting_with_grant_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/grant-7");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "name");
}

/* ---- tags and metadata ---- */

static void test_account_with_16_tags_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/tagged");
    fill_map(&c.u.account.tags, PROTO_MAP_MAX);
    fx_expect_ok(f, &c);
}

static void test_account_with_more_than_16_tags_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/tagged");
    fill_map(&c.u.account.tags, PROTO_MAP_MAX + 1);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tag");
}

static void test_account_tag_key_of_64_bytes_and_value_of_256_bytes_are_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/tagged");
    fx_meta_add(&c, repeat_char(0, 'k', PROTO_MAP_KEY_MAX),
                repeat_char(1, 'v', PROTO_MAP_VALUE_MAX));
    fx_expect_ok(f, &c);
}

static void test_account_tag_key_longer_than_64_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/tagged");
    fx_meta_add(&c, repeat_char(0, 'k', PROTO_MAP_KEY_MAX + 1), "v");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tag");
}

static void test_account_tag_value_longer_than_256_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = create_cmd("acme/tagged");
    fx_meta_add(&c, "team", repeat_char(0, 'v', PROTO_MAP_VALUE_MAX + 1));
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tag");
}

static void test_account_update_with_more_than_16_tags_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_update("acme/bot", PROTO_UNSET, PROTO_UNSET, PROTO_UNSET);
    c.u.account.has_tags = true;
    fill_map(&c.u.account.tags, PROTO_MAP_MAX + 1);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tag");
}

/* Commands that carry metadata, each with a valid rest. */
static int metadata_cmds(struct fx *f, struct proto_cmd out[4])
{
    uint64_t id = fx_reserve_ok(f, "acme/bot", 1 * USD);
    out[0] = fx_reserve("acme/bot", 1 * USD, TTL_MS);
    out[1] = fx_commit(id, 1 * USD);
    out[2] = fx_transfer("acme/bot", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
    out[3] = fx_grant_create("acme/bot", 1 * USD, TTL_MS);
    return 4;
}

static struct proto_map *metadata_of(struct proto_cmd *c)
{
    switch (c->type) {
    case PROTO_CMD_RESERVE: return &c->u.reserve.metadata;
    case PROTO_CMD_COMMIT: return &c->u.commit.metadata;
    case PROTO_CMD_TRANSFER: return &c->u.transfer.metadata;
    default: return &c->u.grant_create.metadata;
    }
}

static void test_metadata_with_more_than_16_entries_is_refused_on_every_command(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c[4];
    int n = metadata_cmds(f, c);
    for (int i = 0; i < n; i++) {
        fill_map(metadata_of(&c[i]), PROTO_MAP_MAX + 1);
        fx_expect_refused(f, &c[i], PROTO_ERR_INVALID, "metadata");
    }
}

static void test_metadata_key_longer_than_64_bytes_is_refused_on_every_command(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c[4];
    int n = metadata_cmds(f, c);
    for (int i = 0; i < n; i++) {
        fx_meta_add(&c[i], repeat_char(0, 'k', PROTO_MAP_KEY_MAX + 1), "v");
        fx_expect_refused(f, &c[i], PROTO_ERR_INVALID, "metadata");
    }
}

static void test_metadata_value_longer_than_256_bytes_is_refused_on_every_command(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c[4];
    int n = metadata_cmds(f, c);
    for (int i = 0; i < n; i++) {
        fx_meta_add(&c[i], "task_id", repeat_char(0, 'v', PROTO_MAP_VALUE_MAX + 1));
        fx_expect_refused(f, &c[i], PROTO_ERR_INVALID, "metadata");
    }
}

static void test_metadata_of_16_entries_at_the_size_limits_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_reserve("acme/bot", 1 * USD, TTL_MS);
    fill_map(&c.u.reserve.metadata, PROTO_MAP_MAX - 1);
    fx_meta_add(&c, repeat_char(0, 'k', PROTO_MAP_KEY_MAX), repeat_char(1, 'v', PROTO_MAP_VALUE_MAX));
    fx_expect_ok(f, &c);
}

/* ---- amounts ---- */

static const int64_t bad_amounts[] = {0, -1, PROTO_AMOUNT_MAX + 1, INT64_MAX, INT64_MIN};
#define BAD_AMOUNT_COUNT (sizeof bad_amounts / sizeof bad_amounts[0])

static void test_reserve_amount_outside_1_to_1e15_is_refused(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < BAD_AMOUNT_COUNT; i++) {
        struct proto_cmd c = fx_reserve("acme/bot", bad_amounts[i], TTL_MS);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "amount");
    }
}

static void test_reserve_amount_of_1_and_of_1e15_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_reserve("acme/bot", 1, TTL_MS);
    struct proto_cmd c2 = fx_reserve("acme/bot", PROTO_AMOUNT_MAX, TTL_MS);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    assert_int_equal(fx_view(f, "acme").reserved_micros, PROTO_AMOUNT_MAX + 1);
}

static void test_commit_actual_outside_0_to_1e15_is_refused(void **state)
{
    struct fx *f = *state;
    uint64_t id = fx_reserve_ok(f, "acme/bot", 1 * USD);
    const int64_t bad[] = {-1, PROTO_AMOUNT_MAX + 1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_commit(id, bad[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "actual");
    }
    struct ledger_reservation_view v;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, id, &v, &err), 0);
    assert_int_equal(v.status, LEDGER_RES_OPEN);
}

static void test_commit_actual_of_1e15_is_accepted_as_an_overrun(void **state)
{
    struct fx *f = *state;
    uint64_t id = fx_reserve_ok(f, "acme/bot", 1 * USD);
    struct proto_cmd c = fx_commit(id, PROTO_AMOUNT_MAX);
    fx_expect_ok(f, &c);
    assert_int_equal(f->res.overrun_micros, PROTO_AMOUNT_MAX - 1 * USD);
}

static void test_transfer_amount_outside_1_to_1e15_is_refused(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < BAD_AMOUNT_COUNT; i++) {
        struct proto_cmd c = fx_transfer("acme/bot", "acme/ops", bad_amounts[i],
                                         PROTO_KIND_CHARGEBACK);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "amount");
        struct proto_cmd d = fx_transfer("acme/bot", "vendor/openai", bad_amounts[i],
                                         PROTO_KIND_ADJUSTMENT);
        fx_expect_refused(f, &d, PROTO_ERR_INVALID, "amount");
    }
}

static void test_grant_amount_outside_1_to_1e15_is_refused(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < BAD_AMOUNT_COUNT; i++) {
        struct proto_cmd c = fx_grant_create("acme/bot", bad_amounts[i], TTL_MS);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "amount");
    }
}

static void test_account_cap_outside_none_or_0_to_1e15_is_refused(void **state)
{
    struct fx *f = *state;
    const int64_t bad[] = {-2, PROTO_AMOUNT_MAX + 1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_account_create("acme/new", bad[i], PROTO_PERIOD_NONE, 0);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "cap");
    }
}

static void test_account_cap_of_0_and_of_1e15_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_account_create("acme/zero", 0, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c2 = fx_account_create("acme/max", PROTO_AMOUNT_MAX, PROTO_PERIOD_NONE, 0);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    assert_int_equal(fx_view(f, "acme/max").cap_micros, PROTO_AMOUNT_MAX);
    assert_int_equal(fx_view(f, "acme/zero").available_micros, 0);
}

static void test_account_update_cap_outside_the_range_is_refused(void **state)
{
    struct fx *f = *state;
    const int64_t bad[] = {-2, PROTO_AMOUNT_MAX + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_account_update("acme/bot", bad[i], PROTO_UNSET, PROTO_UNSET);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "cap");
    }
}

/* ---- ttl, tz, period, on_expire ---- */

static const int64_t bad_ttls[] = {0, -1, PROTO_TTL_MAX_MS + 1, INT64_MAX, INT64_MIN};
#define BAD_TTL_COUNT (sizeof bad_ttls / sizeof bad_ttls[0])

static void test_reserve_ttl_outside_1ms_to_366_days_is_refused(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < BAD_TTL_COUNT; i++) {
        struct proto_cmd c = fx_reserve("acme/bot", 1 * USD, bad_ttls[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "ttl");
    }
}

static void test_reserve_ttl_of_1ms_and_of_366_days_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_reserve("acme/bot", 1 * USD, 1);
    struct proto_cmd c2 = fx_reserve("acme/bot", 1 * USD, PROTO_TTL_MAX_MS);
    fx_expect_ok(f, &c1);
    assert_int_equal(f->res.expires_at_ms, FX_MON + 1);
    fx_expect_ok(f, &c2);
    assert_int_equal(f->res.expires_at_ms, FX_MON + PROTO_TTL_MAX_MS);
}

static void test_grant_ttl_outside_1ms_to_366_days_is_refused(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < BAD_TTL_COUNT; i++) {
        struct proto_cmd c = fx_grant_create("acme/bot", 1 * USD, bad_ttls[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "ttl");
    }
}

static void test_account_tz_outside_minus_840_to_840_is_refused(void **state)
{
    struct fx *f = *state;
    const int64_t bad[] = {-841, 841, INT64_MAX, 100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_account_create("acme/new", PROTO_CAP_NONE, PROTO_PERIOD_DAY, 0);
        c.u.account.tz_offset_min = bad[i];
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "tz");
        struct proto_cmd u = fx_account_update("acme/bot", PROTO_UNSET, PROTO_UNSET, bad[i]);
        fx_expect_refused(f, &u, PROTO_ERR_INVALID, "tz");
    }
}

static void test_account_tz_of_minus_840_and_840_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_account_create("acme/west", PROTO_CAP_NONE, PROTO_PERIOD_DAY, -840);
    struct proto_cmd c2 = fx_account_create("acme/east", PROTO_CAP_NONE, PROTO_PERIOD_DAY, 840);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    assert_int_equal(fx_view(f, "acme/east").tz_offset_min, 840);
}

static void test_account_period_outside_0_to_3_is_refused(void **state)
{
    struct fx *f = *state;
    const int64_t bad[] = {-1, 4, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_account_create("acme/new", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
        c.u.account.period = bad[i];
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "period");
        struct proto_cmd u = fx_account_update("acme/bot", PROTO_UNSET, bad[i], PROTO_UNSET);
        fx_expect_refused(f, &u, PROTO_ERR_INVALID, "period");
    }
}

static void test_reserve_on_expire_other_than_0_or_1_is_refused(void **state)
{
    struct fx *f = *state;
    const int64_t bad[] = {-1, 2, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_reserve("acme/bot", 1 * USD, TTL_MS);
        c.u.reserve.on_expire = bad[i];
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "on_expire");
    }
}

/* ---- other fields ---- */

static void test_transfer_kind_other_than_chargeback_or_adjustment_is_refused(void **state)
{
    struct fx *f = *state;
    const int bad[] = {PROTO_KIND_SPEND, PROTO_KIND_GRANT, 0, 99};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_transfer("acme/bot", "acme/ops", 1 * USD, PROTO_KIND_CHARGEBACK);
        c.u.transfer.kind = bad[i];
        c.role = PROTO_ROLE_ADMIN;
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "kind");
    }
}

static void test_transfer_to_the_same_account_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_transfer("acme/bot", "acme/bot", 1 * USD, PROTO_KIND_CHARGEBACK);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_reserve_paying_the_account_itself_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_reserve("acme/bot", 1 * USD, TTL_MS);
    c.u.reserve.payee = fx_s("acme/bot");
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "payee");
}

static void test_grant_workflow_longer_than_256_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_grant_create("acme/bot", 1 * USD, TTL_MS);
    c.u.grant_create.workflow = fx_s(repeat_char(0, 'w', PROTO_TEXT_MAX + 1));
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "workflow");
}

static void test_grant_under_a_parent_of_depth_8_is_refused(void **state)
{
    struct fx *f = *state;
    char name[300];
    create_path(f, PROTO_NAME_DEPTH_MAX, 2, name, sizeof name);
    struct proto_cmd c = fx_grant_create(name, 1 * USD, TTL_MS);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_freeze_reason_longer_than_256_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/bot");
    c.u.status.reason = fx_s(repeat_char(0, 'r', PROTO_TEXT_MAX + 1));
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "reason");
}

static void test_period_close_of_a_malformed_month_is_refused(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"", "2026-13", "2026-00", "2026-1", "26-01", "2026/01",
                         "2026-01-01", "abcd-ef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_cmd c = fx_period_close(bad[i]);
        fx_expect_refused(f, &c, PROTO_ERR_INVALID, "month");
    }
}

/* ---- idempotency key ---- */

static void test_key_of_128_bytes_is_accepted(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 1 * USD, TTL_MS),
                                  repeat_char(0, 'k', PROTO_KEY_MAX));
    fx_expect_ok(f, &c);
}

static void test_key_longer_than_128_bytes_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_keyed(fx_reserve("acme/bot", 1 * USD, TTL_MS),
                                  repeat_char(0, 'k', PROTO_KEY_MAX + 1));
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "key");
    assert_int_equal(fx_view(f, "acme/bot").reserved_micros, 0);
}

/* ---- batch size ---- */

static void test_batch_of_4096_commands_is_applied(void **state)
{
    struct fx *f = *state;
    struct proto_cmd *cmds = calloc(PROTO_BATCH_MAX, sizeof *cmds);
    struct proto_result *res = calloc(PROTO_BATCH_MAX, sizeof *res);
    assert_non_null(cmds);
    assert_non_null(res);
    for (int i = 0; i < PROTO_BATCH_MAX; i++)
        cmds[i] = fx_reserve("acme/bot", 1, TTL_MS);
    fx_apply_batch(f, cmds, PROTO_BATCH_MAX, res);
    assert_int_equal(res[PROTO_BATCH_MAX - 1].status, PROTO_OK);
    assert_int_equal(fx_view(f, "acme/bot").reserved_micros, PROTO_BATCH_MAX);
    free(cmds);
    free(res);
}

static void test_batch_of_more_than_4096_commands_is_rejected_whole(void **state)
{
    struct fx *f = *state;
    uint32_t n = PROTO_BATCH_MAX + 1;
    struct proto_cmd *cmds = calloc(n, sizeof *cmds);
    struct proto_result *res = calloc(n, sizeof *res);
    assert_non_null(cmds);
    assert_non_null(res);
    for (uint32_t i = 0; i < n; i++)
        cmds[i] = fx_reserve("acme/bot", 1, TTL_MS);
    uint8_t before[32];
    fx_state_hash(f, before);
    uint64_t applied = ledger_entries_applied(f->l);
    int64_t now = ledger_now_ms(f->l);

    struct proto_entry e = {.timestamp_ms = f->now_ms + 1000, .cmd_count = n, .cmds = cmds};
    struct ledger_error err = {0};
    assert_int_equal(ledger_apply(f->l, &e, res, &err), LEDGER_EINVAL);
    fx_assert_hash(f, before);
    assert_int_equal(ledger_entries_applied(f->l), applied);
    assert_int_equal(ledger_now_ms(f->l), now);
    assert_int_equal(fx_view(f, "acme/bot").reserved_micros, 0);
    free(cmds);
    free(res);
}

/* ---- overflow ---- */

/* Apply `n` copies of `c` in batches of at most PROTO_BATCH_MAX; fail unless
 * all are OK. */
static void apply_copies(struct fx *f, struct proto_cmd c, int n)
{
    struct proto_cmd *cmds = calloc(PROTO_BATCH_MAX, sizeof *cmds);
    struct proto_result *res = calloc(PROTO_BATCH_MAX, sizeof *res);
    assert_non_null(cmds);
    assert_non_null(res);
    for (int i = 0; i < PROTO_BATCH_MAX; i++)
        cmds[i] = c;
    while (n > 0) {
        uint32_t k = n < PROTO_BATCH_MAX ? (uint32_t)n : PROTO_BATCH_MAX;
        fx_apply_batch(f, cmds, k, res);
        for (uint32_t i = 0; i < k; i++)
            if (res[i].status != PROTO_OK)
                fail_msg("copy %u: %s (%s)", i, proto_status_name(res[i].status),
                         res[i].message);
        n -= (int)k;
    }
    free(cmds);
    free(res);
}

/* 9223 * 1e15 fits in int64; 9224 * 1e15 does not. */
#define FILL_COUNT ((int)(INT64_MAX / PROTO_AMOUNT_MAX))

static void test_adjustment_pushing_spent_past_int64_max_is_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd adj = fx_transfer("big", "vendor/x", PROTO_AMOUNT_MAX, PROTO_KIND_ADJUSTMENT);
    apply_copies(f, adj, FILL_COUNT);
    assert_int_equal(fx_view(f, "big").spent_micros, FILL_COUNT * PROTO_AMOUNT_MAX);
    fx_expect_refused(f, &adj, PROTO_ERR_INVALID, NULL);
    assert_int_equal(fx_view(f, "big").spent_micros, FILL_COUNT * PROTO_AMOUNT_MAX);
}

static void test_adjustment_pushing_an_ancestors_spent_past_int64_max_is_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "big/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "big/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd from_a = fx_transfer("big/a", "vendor/x", PROTO_AMOUNT_MAX,
                                          PROTO_KIND_ADJUSTMENT);
    struct proto_cmd from_b = fx_transfer("big/b", "vendor/x", PROTO_AMOUNT_MAX,
                                          PROTO_KIND_ADJUSTMENT);
    apply_copies(f, from_a, FILL_COUNT / 2);
    apply_copies(f, from_b, FILL_COUNT - FILL_COUNT / 2);
    /* big/b alone is far from the limit; big and vendor/x are at it. */
    fx_expect_refused(f, &from_b, PROTO_ERR_INVALID, NULL);
}

static void test_reserve_pushing_reserved_past_int64_max_is_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd r = fx_reserve("big", PROTO_AMOUNT_MAX, FX_HOUR_MS);
    apply_copies(f, r, FILL_COUNT);
    fx_expect_refused(f, &r, PROTO_ERR_INVALID, NULL);
    assert_int_equal(fx_view(f, "big").reserved_micros, FILL_COUNT * PROTO_AMOUNT_MAX);
}

static void test_commit_pushing_spent_past_int64_max_is_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd adj = fx_transfer("big", "vendor/x", PROTO_AMOUNT_MAX, PROTO_KIND_ADJUSTMENT);
    apply_copies(f, adj, FILL_COUNT);
    uint64_t id = fx_reserve_ok(f, "big", 1);
    struct proto_cmd c = fx_commit(id, PROTO_AMOUNT_MAX);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
    struct ledger_reservation_view v;
    struct ledger_error err = {0};
    assert_int_equal(ledger_reservation_get(f->l, id, &v, &err), 0);
    assert_int_equal(v.status, LEDGER_RES_OPEN);
}

static void test_reserve_on_a_capped_account_spent_near_int64_max_is_refused_not_wrapped(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_AMOUNT_MAX, PROTO_PERIOD_NONE, 0);
    struct proto_cmd adj = fx_transfer("big", "vendor/x", PROTO_AMOUNT_MAX, PROTO_KIND_ADJUSTMENT);
    apply_copies(f, adj, FILL_COUNT);
    uint8_t before[32];
    fx_state_hash(f, before);
    struct proto_cmd r = fx_reserve("big", PROTO_AMOUNT_MAX, TTL_MS);
    int status = fx_apply(f, &r);
    assert_true(status == PROTO_ERR_INVALID || status == PROTO_ERR_BUDGET_EXCEEDED);
    fx_assert_hash(f, before);
    assert_int_equal(fx_view(f, "big").available_micros, 0);
}

static void test_verify_is_clean_with_sums_near_int64_max(void **state)
{
    struct fx *f = *state;
    fx_create(f, "big", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd adj = fx_transfer("big", "vendor/x", PROTO_AMOUNT_MAX, PROTO_KIND_ADJUSTMENT);
    apply_copies(f, adj, FILL_COUNT);
    fx_assert_verified(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_account_name_of_255_bytes_is_accepted),
        T(test_account_name_longer_than_255_bytes_is_refused),
        T(test_account_name_of_8_segments_is_accepted),
        T(test_account_name_of_9_segments_is_refused),
        T(test_account_segment_of_64_bytes_is_accepted),
        T(test_account_segment_longer_than_64_bytes_is_refused),
        T(test_account_name_with_an_empty_segment_is_refused),
        T(test_account_segment_of_dot_or_dot_dot_is_refused),
        T(test_account_segment_with_a_character_outside_the_set_is_refused),
        T(test_account_segment_with_every_allowed_character_is_accepted),
        T(test_account_name_with_a_nul_byte_is_refused),
        T(test_account_segment_starting_with_grant_is_refused),
        T(test_account_with_16_tags_is_accepted),
        T(test_account_with_more_than_16_tags_is_refused),
        T(test_account_tag_key_of_64_bytes_and_value_of_256_bytes_are_accepted),
        T(test_account_tag_key_longer_than_64_bytes_is_refused),
        T(test_account_tag_value_longer_than_256_bytes_is_refused),
        T(test_account_update_with_more_than_16_tags_is_refused),
        T(test_metadata_with_more_than_16_entries_is_refused_on_every_command),
        T(test_metadata_key_longer_than_64_bytes_is_refused_on_every_command),
        T(test_metadata_value_longer_than_256_bytes_is_refused_on_every_command),
        T(test_metadata_of_16_entries_at_the_size_limits_is_accepted),
        T(test_reserve_amount_outside_1_to_1e15_is_refused),
        T(test_reserve_amount_of_1_and_of_1e15_is_accepted),
        T(test_commit_actual_outside_0_to_1e15_is_refused),
        T(test_commit_actual_of_1e15_is_accepted_as_an_overrun),
        T(test_transfer_amount_outside_1_to_1e15_is_refused),
        T(test_grant_amount_outside_1_to_1e15_is_refused),
        T(test_account_cap_outside_none_or_0_to_1e15_is_refused),
        T(test_account_cap_of_0_and_of_1e15_is_accepted),
        T(test_account_update_cap_outside_the_range_is_refused),
        T(test_reserve_ttl_outside_1ms_to_366_days_is_refused),
        T(test_reserve_ttl_of_1ms_and_of_366_days_is_accepted),
        T(test_grant_ttl_outside_1ms_to_366_days_is_refused),
        T(test_account_tz_outside_minus_840_to_840_is_refused),
        T(test_account_tz_of_minus_840_and_840_is_accepted),
        T(test_account_period_outside_0_to_3_is_refused),
        T(test_reserve_on_expire_other_than_0_or_1_is_refused),
        T(test_transfer_kind_other_than_chargeback_or_adjustment_is_refused),
        T(test_transfer_to_the_same_account_is_refused),
        T(test_reserve_paying_the_account_itself_is_refused),
        T(test_grant_workflow_longer_than_256_bytes_is_refused),
        T(test_grant_under_a_parent_of_depth_8_is_refused),
        T(test_freeze_reason_longer_than_256_bytes_is_refused),
        T(test_period_close_of_a_malformed_month_is_refused),
        T(test_key_of_128_bytes_is_accepted),
        T(test_key_longer_than_128_bytes_is_refused),
        T(test_batch_of_4096_commands_is_applied),
        T(test_batch_of_more_than_4096_commands_is_rejected_whole),
        T(test_adjustment_pushing_spent_past_int64_max_is_refused),
        T(test_adjustment_pushing_an_ancestors_spent_past_int64_max_is_refused),
        T(test_reserve_pushing_reserved_past_int64_max_is_refused),
        T(test_commit_pushing_spent_past_int64_max_is_refused),
        T(test_reserve_on_a_capped_account_spent_near_int64_max_is_refused_not_wrapped),
        T(test_verify_is_clean_with_sums_near_int64_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
