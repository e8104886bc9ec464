/*
 * test_ledger_account.c — account rules (docs/ledger-rules.md, "Names",
 * "Roles", account create / update / freeze / unfreeze / close): name
 * validation, ranges, tags, updates that must not break caps, status changes
 * and who may make them.
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
#define NOV_1 (FX_MON - 15 * FX_DAY_MS) /* 2026-11-01 00:00 UTC */
#define DEC_1 (FX_MON + 15 * FX_DAY_MS) /* 2026-12-01 00:00 UTC */

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

static bool account_exists(struct fx *f, const char *name)
{
    struct ledger_account_view v;
    struct ledger_error err = {0};
    return ledger_account_get(f->l, name, &v, &err) == 0;
}

/* Apply `c`, expect `status`, and expect the state not to change. */
static void assert_refused(struct fx *f, struct proto_cmd c, int status)
{
    uint8_t before[32];
    fx_state_hash(f, before);
    assert_int_equal(fx_apply(f, &c), status);
    fx_assert_hash(f, before);
}

/* Create refused as invalid; the message names the field (`needle`). */
static void assert_create_invalid(struct fx *f, const char *name, int64_t cap,
                                  int period, int tz, const char *needle)
{
    assert_refused(f, fx_account_create(name, cap, period, tz), PROTO_ERR_INVALID);
    if (needle != NULL)
        fx_assert_message_has(f, needle);
    if (name[0] != '\0')
        assert_false(account_exists(f, name));
}

static void create_path(struct fx *f, int depth, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < depth; i++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%ss%d", i ? "/" : "", i);
        fx_create(f, out, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    }
}

/* ---- create ---- */

static void test_create_top_level_account_shows_its_settings(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", 100 * USD, PROTO_PERIOD_MONTH, 0);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    uint64_t id = f->res.id;
    assert_true(id != 0);

    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.id, id);
    assert_string_equal(v.name, "acme");
    assert_int_equal(v.cap_micros, 100 * USD);
    assert_int_equal(v.period, PROTO_PERIOD_MONTH);
    assert_int_equal(v.tz_offset_min, 0);
    assert_int_equal(v.status, LEDGER_STATUS_ACTIVE);
    assert_false(v.is_grant);
    assert_int_equal(v.period_start_ms, NOV_1);
    assert_int_equal(v.period_end_ms, DEC_1);
    assert_int_equal(v.spent_micros, 0);
    assert_int_equal(v.reserved_micros, 0);
    assert_int_equal(v.available_micros, 100 * USD);
    fx_assert_verified(f);
}

static void test_create_child_under_existing_parent(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_account_create("acme/eng", 5 * USD, PROTO_PERIOD_DAY, 0);
    assert_int_equal(fx_apply(f, &c), PROTO_OK);
    assert_int_equal(fx_view(f, "acme/eng").cap_micros, 5 * USD);
    fx_assert_verified(f);
}

static void test_create_refuses_missing_parent(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_create("acme/eng/bot", -1, 0, 0), PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/eng");
    assert_false(account_exists(f, "acme/eng/bot"));
}

static void test_create_refuses_existing_name(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_create("acme", 5 * USD, PROTO_PERIOD_DAY, 0),
                   PROTO_ERR_EXISTS);
    fx_assert_message_has(f, "acme");
    assert_int_equal(fx_view(f, "acme").cap_micros, 100 * USD);
}

static void test_create_refuses_under_closed_parent(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd cl = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme");
    assert_int_equal(fx_apply(f, &cl), PROTO_OK);
    assert_refused(f, fx_account_create("acme/eng", -1, 0, 0), PROTO_ERR_CLOSED);
    assert_string_equal(f->res.name, "acme");
    assert_false(account_exists(f, "acme/eng"));
}

static void test_create_refuses_empty_name(void **state)
{
    struct fx *f = *state;
    assert_create_invalid(f, "", -1, 0, 0, "name");
}

static void test_create_refuses_empty_segment(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_create_invalid(f, "acme//x", -1, 0, 0, "name");
    assert_create_invalid(f, "/acme", -1, 0, 0, "name");
    assert_create_invalid(f, "acme/", -1, 0, 0, "name");
}

static void test_create_accepts_eight_segments(void **state)
{
    struct fx *f = *state;
    char name[PROTO_NAME_MAX + 1];
    create_path(f, 8, name, sizeof name);
    assert_string_equal(fx_view(f, name).name, "s0/s1/s2/s3/s4/s5/s6/s7");
    fx_assert_verified(f);
}

static void test_create_refuses_nine_segments(void **state)
{
    struct fx *f = *state;
    char name[PROTO_NAME_MAX + 1];
    create_path(f, 8, name, sizeof name);
    strcat(name, "/s8");
    assert_create_invalid(f, name, -1, 0, 0, "name");
}

static void test_create_accepts_64_byte_segment(void **state)
{
    struct fx *f = *state;
    char name[80];
    memset(name, 'x', 64);
    name[64] = '\0';
    fx_create(f, name, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(strlen(fx_view(f, name).name), 64);
}

static void test_create_refuses_65_byte_segment(void **state)
{
    struct fx *f = *state;
    char name[80];
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    strcpy(name, "acme/");
    memset(name + 5, 'x', 65);
    name[70] = '\0';
    assert_create_invalid(f, name, -1, 0, 0, "name");
}

/* Three 64-byte segments (194 bytes with slashes) as a parent chain. */
static void create_long_chain(struct fx *f, char *name)
{
    name[0] = '\0';
    for (int i = 0; i < 3; i++) {
        char seg[65];
        memset(seg, 'a' + i, 64);
        seg[64] = '\0';
        if (i)
            strcat(name, "/");
        strcat(name, seg);
        fx_create(f, name, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    }
    assert_int_equal(strlen(name), 194);
}

static void test_create_accepts_255_byte_name(void **state)
{
    struct fx *f = *state;
    char name[400];
    create_long_chain(f, name);
    strcat(name, "/");
    memset(name + 195, 'z', 60);
    name[255] = '\0';
    fx_create(f, name, PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_string_equal(fx_view(f, name).name, name);
}

static void test_create_refuses_256_byte_name(void **state)
{
    struct fx *f = *state;
    char name[400];
    create_long_chain(f, name);
    strcat(name, "/");
    memset(name + 195, 'z', 61);
    name[256] = '\0';
    assert_create_invalid(f, name, -1, 0, 0, "name");
}

static void test_create_refuses_bad_characters(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    const char *bad[] = {"acme/a b", "acme/a$", "acme/a+b", "acme/caf\xc3\xa9",
                         "acme/a\\b", "acme/a:b", "acme/a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_create_invalid(f, bad[i], -1, 0, 0, "name");
}

static void test_create_refuses_dot_segments(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_create_invalid(f, "acme/.", -1, 0, 0, "name");
    assert_create_invalid(f, "acme/..", -1, 0, 0, "name");
    assert_create_invalid(f, ".", -1, 0, 0, "name");
}

static void test_create_accepts_dots_dashes_underscores_and_digits(void **state)
{
    struct fx *f = *state;
    fx_create(f, "Acme-2.0", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "Acme-2.0/v1.2", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "Acme-2.0/...", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "Acme-2.0/cost_center_7", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_assert_verified(f);
}

static void test_create_refuses_grant_prefix(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_create_invalid(f, "acme/grant-1", -1, 0, 0, "grant-");
    assert_create_invalid(f, "grant-x", -1, 0, 0, "grant-");
}

static void test_create_accepts_grant_without_dash_prefix(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/grants", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/my-grant-1", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
}

static void test_create_refuses_cap_below_minus_one(void **state)
{
    struct fx *f = *state;
    assert_create_invalid(f, "acme", -2, 0, 0, "cap");
}

static void test_create_refuses_cap_above_max(void **state)
{
    struct fx *f = *state;
    assert_create_invalid(f, "acme", PROTO_AMOUNT_MAX + 1, 0, 0, "cap");
}

static void test_create_accepts_cap_bounds(void **state)
{
    struct fx *f = *state;
    fx_create(f, "zero", 0, PROTO_PERIOD_NONE, 0);
    fx_create(f, "max", PROTO_AMOUNT_MAX, PROTO_PERIOD_NONE, 0);
    assert_int_equal(fx_view(f, "zero").available_micros, 0);
    assert_int_equal(fx_view(f, "max").available_micros, PROTO_AMOUNT_MAX);
}

static void test_create_cap_none_is_uncapped(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_true(v.cap_micros == PROTO_CAP_NONE);
    assert_true(v.available_micros == PROTO_UNLIMITED);
    assert_true(v.period_end_ms == INT64_MAX);
}

static void test_create_refuses_period_out_of_range(void **state)
{
    struct fx *f = *state;
    assert_create_invalid(f, "acme", -1, 4, 0, "period");
    assert_create_invalid(f, "acme", -1, -1, 0, "period");
}

static void test_create_accepts_every_period(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"p0", "p1", "p2", "p3"};
    for (int p = 0; p < 4; p++) {
        fx_create(f, names[p], 10 * USD, p, 0);
        assert_int_equal(fx_view(f, names[p]).period, p);
    }
}

static void test_create_refuses_tz_out_of_range(void **state)
{
    struct fx *f = *state;
    assert_create_invalid(f, "east", -1, PROTO_PERIOD_DAY, 841, "tz");
    assert_create_invalid(f, "west", -1, PROTO_PERIOD_DAY, -841, "tz");
}

static void test_create_accepts_tz_bounds(void **state)
{
    struct fx *f = *state;
    fx_create(f, "east", -1, PROTO_PERIOD_DAY, 840);
    fx_create(f, "west", -1, PROTO_PERIOD_DAY, -840);
    assert_int_equal(fx_view(f, "east").tz_offset_min, 840);
    assert_int_equal(fx_view(f, "west").tz_offset_min, -840);
}

static void test_create_stores_tags_in_tags_json(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", -1, 0, 0);
    fx_meta_add(&c, "team", "ml");
    fx_meta_add(&c, "cost_center", "cc-42");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    struct ledger_account_view v = fx_view(f, "acme");
    assert_non_null(strstr(v.tags_json, "\"team\""));
    assert_non_null(strstr(v.tags_json, "\"ml\""));
    assert_non_null(strstr(v.tags_json, "\"cost_center\""));
    assert_non_null(strstr(v.tags_json, "\"cc-42\""));
    assert_int_equal(v.tags_json[0], '{');
}

static void test_create_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", -1, 0, 0);
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_false(account_exists(f, "acme"));
}

/* ---- update ---- */

static void test_update_leaves_unset_fields_unchanged(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", 100 * USD, PROTO_PERIOD_MONTH, 60);
    fx_meta_add(&c, "team", "ml");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    struct proto_cmd u = fx_account_update("acme", 50 * USD, PROTO_UNSET, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.cap_micros, 50 * USD);
    assert_int_equal(v.period, PROTO_PERIOD_MONTH);
    assert_int_equal(v.tz_offset_min, 60);
    assert_non_null(strstr(v.tags_json, "\"ml\""));

    u = fx_account_update("acme", PROTO_UNSET, PROTO_PERIOD_DAY, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    v = fx_view(f, "acme");
    assert_int_equal(v.cap_micros, 50 * USD);
    assert_int_equal(v.period, PROTO_PERIOD_DAY);
    assert_int_equal(v.tz_offset_min, 60);
    fx_assert_verified(f);
}

static void test_update_replaces_tags_when_given(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", -1, 0, 0);
    fx_meta_add(&c, "team", "ml");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    struct proto_cmd u = fx_account_update("acme", PROTO_UNSET, PROTO_UNSET, PROTO_UNSET);
    fx_meta_add(&u, "owner", "finance");
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_non_null(strstr(v.tags_json, "\"owner\""));
    assert_non_null(strstr(v.tags_json, "\"finance\""));
    assert_null(strstr(v.tags_json, "team"));
}

static void test_update_with_empty_tags_clears_them(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_account_create("acme", -1, 0, 0);
    fx_meta_add(&c, "team", "ml");
    assert_int_equal(fx_apply(f, &c), PROTO_OK);

    struct proto_cmd u = fx_account_update("acme", PROTO_UNSET, PROTO_UNSET, PROTO_UNSET);
    u.u.account.has_tags = true;
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    assert_null(strstr(fx_view(f, "acme").tags_json, "team"));
}

static void test_update_refuses_unknown_account(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_update("acme/nope", 5 * USD, PROTO_UNSET, PROTO_UNSET),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/nope");
}

static void test_update_refuses_cap_below_spent_plus_reserved(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 30 * USD);
    fx_reserve_ok(f, "acme", 20 * USD);

    assert_refused(f, fx_account_update("acme", 49 * USD, PROTO_UNSET, PROTO_UNSET),
                   PROTO_ERR_CONFLICT);
    fx_assert_message_has(f, "cap");
    assert_int_equal(fx_view(f, "acme").cap_micros, 100 * USD);
    fx_assert_verified(f);
}

static void test_update_refuses_cap_below_descendant_usage(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme/bot", 30 * USD);

    assert_refused(f, fx_account_update("acme", 29 * USD, PROTO_UNSET, PROTO_UNSET),
                   PROTO_ERR_CONFLICT);
    assert_int_equal(fx_view(f, "acme").cap_micros, 100 * USD);
}

static void test_update_accepts_cap_equal_to_usage(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 30 * USD);
    fx_reserve_ok(f, "acme", 20 * USD);

    struct proto_cmd u = fx_account_update("acme", 50 * USD, PROTO_UNSET, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.cap_micros, 50 * USD);
    assert_int_equal(v.available_micros, 0);
    fx_assert_verified(f);
}

static void test_update_cap_none_makes_account_uncapped(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 30 * USD);
    struct proto_cmd u = fx_account_update("acme", PROTO_CAP_NONE, PROTO_UNSET, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    assert_true(fx_view(f, "acme").available_micros == PROTO_UNLIMITED);
    fx_assert_verified(f);
}

static void test_update_refuses_out_of_range_fields(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_update("acme", -2, PROTO_UNSET, PROTO_UNSET),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "cap");
    assert_refused(f, fx_account_update("acme", PROTO_UNSET, 4, PROTO_UNSET),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "period");
    assert_refused(f, fx_account_update("acme", PROTO_UNSET, PROTO_UNSET, 841),
                   PROTO_ERR_INVALID);
    fx_assert_message_has(f, "tz");
}

static void test_update_period_change_recomputes_spent_from_journal(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    f->now_ms = FX_MON + 1 * FX_HOUR_MS;                /* Monday */
    fx_spend(f, "acme", 10 * USD);
    f->now_ms = FX_MON + FX_DAY_MS + 1 * FX_HOUR_MS;    /* Tuesday */
    fx_spend(f, "acme", 5 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 15 * USD);

    struct proto_cmd u = fx_account_update("acme", PROTO_UNSET, PROTO_PERIOD_DAY, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 5 * USD);
    assert_int_equal(v.period_start_ms, FX_MON + FX_DAY_MS);
    assert_int_equal(v.period_end_ms, FX_MON + 2 * FX_DAY_MS);
    fx_assert_verified(f);

    u = fx_account_update("acme", PROTO_UNSET, PROTO_PERIOD_WEEK, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    v = fx_view(f, "acme");
    assert_int_equal(v.spent_micros, 15 * USD);
    assert_int_equal(v.period_start_ms, FX_MON);
    assert_int_equal(v.period_end_ms, FX_MON + 7 * FX_DAY_MS);
    fx_assert_verified(f);
}

/* Postings reach SQLite at the end of their entry (journal_rows.c): a
 * recompute later in the same entry must still count them. */
static void test_update_period_change_in_the_spending_entry_counts_its_postings(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    f->now_ms = FX_MON + 1 * FX_HOUR_MS;
    fx_spend(f, "acme", 10 * USD);
    f->now_ms = FX_MON + FX_DAY_MS + 1 * FX_HOUR_MS; /* Tuesday */
    uint64_t a = fx_reserve_ok(f, "acme", 5 * USD);
    uint64_t b = fx_reserve_ok(f, "acme", 3 * USD);
    struct proto_cmd cmds[3] = {
        fx_commit(a, 4 * USD),
        fx_commit(b, 2 * USD),
        fx_account_update("acme", PROTO_UNSET, PROTO_PERIOD_DAY, PROTO_UNSET),
    };
    struct proto_result res[3];
    fx_apply_batch(f, cmds, 3, res);
    for (int i = 0; i < 3; i++)
        if (res[i].status != PROTO_OK)
            fail_msg("command %d: %s", i, res[i].message);
    /* Tuesday's 4 + 2, not Monday's 10. */
    assert_int_equal(fx_view(f, "acme").spent_micros, 6 * USD);
    fx_assert_verified(f);
}

static void test_update_tz_change_recomputes_spent_from_journal(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_DAY, 0);
    f->now_ms = FX_MON + FX_DAY_MS + 23 * FX_HOUR_MS;   /* Tue 23:00 UTC */
    fx_spend(f, "acme", 7 * USD);
    f->now_ms = FX_MON + 2 * FX_DAY_MS + 1 * FX_HOUR_MS; /* Wed 01:00 UTC */
    fx_spend(f, "acme", 3 * USD);
    assert_int_equal(fx_view(f, "acme").spent_micros, 3 * USD);

    /* At UTC-2 it is still Tuesday: the day began Tue 02:00 UTC. */
    struct proto_cmd u = fx_account_update("acme", PROTO_UNSET, PROTO_UNSET, -120);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.tz_offset_min, -120);
    assert_int_equal(v.spent_micros, 10 * USD);
    assert_int_equal(v.period_start_ms, FX_MON + FX_DAY_MS + 2 * FX_HOUR_MS);
    fx_assert_verified(f);
}

static void test_update_refuses_grant_account(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd g = fx_grant_create("acme", 10 * USD, FX_HOUR_MS);
    assert_int_equal(fx_apply(f, &g), PROTO_OK);
    char grant[PROTO_NAME_MAX + 1];
    strcpy(grant, f->res.name);

    assert_refused(f, fx_account_update(grant, 20 * USD, PROTO_UNSET, PROTO_UNSET),
                   PROTO_ERR_INVALID);
    assert_int_equal(fx_view(f, grant).cap_micros, 10 * USD);
}

static void test_update_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    struct proto_cmd u = fx_account_update("acme", 5 * USD, PROTO_UNSET, PROTO_UNSET);
    u.role = PROTO_ROLE_AGENT;
    assert_refused(f, u, PROTO_ERR_FORBIDDEN);
    assert_int_equal(fx_view(f, "acme").cap_micros, 100 * USD);
}

/* ---- freeze / unfreeze ---- */

static int status_of(struct fx *f, const char *name)
{
    return fx_view(f, name).status;
}

static int apply_status(struct fx *f, int type, const char *name)
{
    struct proto_cmd c = fx_account_status(type, name);
    return fx_apply(f, &c);
}

static void test_freeze_sets_status_frozen(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_FROZEN);
    fx_assert_verified(f);
}

static void test_freeze_twice_is_ok(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_FROZEN);
}

static void test_unfreeze_restores_active(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_UNFREEZE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_UNFREEZE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
    fx_assert_verified(f);
}

static void test_freeze_unknown_account_not_found(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme/x"),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "acme/x");
}

static void test_freeze_closed_account_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_ERR_CLOSED);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
}

static void test_unfreeze_closed_account_refused(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_UNFREEZE, "acme"),
                   PROTO_ERR_CLOSED);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
}

static void test_freeze_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_account_status(PROTO_CMD_ACCOUNT_FREEZE, "acme");
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
}

static void test_unfreeze_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    struct proto_cmd c = fx_account_status(PROTO_CMD_ACCOUNT_UNFREEZE, "acme");
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_FROZEN);
}

/* ---- close ---- */

static void test_close_sets_status_closed(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
    fx_assert_verified(f);
}

static void test_close_twice_is_ok(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
}

static void test_close_refused_with_open_hold(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_reserve_ok(f, "acme", 10 * USD);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_ERR_CONFLICT);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
    fx_assert_verified(f);
}

static void test_close_ok_once_hold_committed(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme", 10 * USD);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
    assert_int_equal(fx_view(f, "acme").spent_micros, 10 * USD);
    fx_assert_verified(f);
}

static void test_close_refused_with_open_child(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/eng", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_ERR_CONFLICT);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
}

static void test_close_refused_with_frozen_child(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/eng", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme/eng"), PROTO_OK);
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_ERR_CONFLICT);
}

static void test_close_ok_when_children_closed(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/eng", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme/eng"), PROTO_OK);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
    fx_assert_verified(f);
}

static void test_close_frozen_account_ok(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_FREEZE, "acme"), PROTO_OK);
    assert_int_equal(apply_status(f, PROTO_CMD_ACCOUNT_CLOSE, "acme"), PROTO_OK);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_CLOSED);
}

static void test_close_unknown_account_not_found(void **state)
{
    struct fx *f = *state;
    assert_refused(f, fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "ghost"),
                   PROTO_ERR_NOT_FOUND);
    fx_assert_message_has(f, "ghost");
}

static void test_close_by_agent_is_forbidden(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    struct proto_cmd c = fx_account_status(PROTO_CMD_ACCOUNT_CLOSE, "acme");
    c.role = PROTO_ROLE_AGENT;
    assert_refused(f, c, PROTO_ERR_FORBIDDEN);
    assert_int_equal(status_of(f, "acme"), LEDGER_STATUS_ACTIVE);
}

static void test_update_cap_ignores_spend_of_previous_period(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", 100 * USD, PROTO_PERIOD_DAY, 0);
    fx_spend(f, "acme", 80 * USD);
    f->now_ms = FX_MON + FX_DAY_MS + FX_HOUR_MS;
    struct proto_cmd u = fx_account_update("acme", 50 * USD, PROTO_UNSET, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    struct ledger_account_view v = fx_view(f, "acme");
    assert_int_equal(v.cap_micros, 50 * USD);
    assert_int_equal(v.spent_micros, 0);
    assert_int_equal(v.available_micros, 50 * USD);
    fx_assert_verified(f);
}

static void test_update_period_recomputes_spend_of_whole_subtree(void **state)
{
    struct fx *f = *state;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/a", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/b", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_spend(f, "acme/a", 10 * USD);                       /* Monday */
    f->now_ms = FX_MON + FX_DAY_MS + FX_HOUR_MS;           /* Tuesday */
    fx_spend(f, "acme/a", 4 * USD);
    fx_spend(f, "acme/b", 2 * USD);
    struct proto_cmd cb = fx_transfer("acme/a", "acme/b", 1 * USD, PROTO_KIND_CHARGEBACK);
    assert_int_equal(fx_apply(f, &cb), PROTO_OK);

    struct proto_cmd u = fx_account_update("acme", PROTO_UNSET, PROTO_PERIOD_DAY, PROTO_UNSET);
    assert_int_equal(fx_apply(f, &u), PROTO_OK);
    /* Tuesday's outflow of the subtree; the internal chargeback is not spend. */
    assert_int_equal(fx_view(f, "acme").spent_micros, 6 * USD);
    fx_assert_verified(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_top_level_account_shows_its_settings),
        T(test_create_child_under_existing_parent),
        T(test_create_refuses_missing_parent),
        T(test_create_refuses_existing_name),
        T(test_create_refuses_under_closed_parent),
        T(test_create_refuses_empty_name),
        T(test_create_refuses_empty_segment),
        T(test_create_accepts_eight_segments),
        T(test_create_refuses_nine_segments),
        T(test_create_accepts_64_byte_segment),
        T(test_create_refuses_65_byte_segment),
        T(test_create_accepts_255_byte_name),
        T(test_create_refuses_256_byte_name),
        T(test_create_refuses_bad_characters),
        T(test_create_refuses_dot_segments),
        T(test_create_accepts_dots_dashes_underscores_and_digits),
        T(test_create_refuses_grant_prefix),
        T(test_create_accepts_grant_without_dash_prefix),
        T(test_create_refuses_cap_below_minus_one),
        T(test_create_refuses_cap_above_max),
        T(test_create_accepts_cap_bounds),
        T(test_create_cap_none_is_uncapped),
        T(test_create_refuses_period_out_of_range),
        T(test_create_accepts_every_period),
        T(test_create_refuses_tz_out_of_range),
        T(test_create_accepts_tz_bounds),
        T(test_create_stores_tags_in_tags_json),
        T(test_create_by_agent_is_forbidden),
        T(test_update_leaves_unset_fields_unchanged),
        T(test_update_replaces_tags_when_given),
        T(test_update_with_empty_tags_clears_them),
        T(test_update_refuses_unknown_account),
        T(test_update_refuses_cap_below_spent_plus_reserved),
        T(test_update_refuses_cap_below_descendant_usage),
        T(test_update_accepts_cap_equal_to_usage),
        T(test_update_cap_none_makes_account_uncapped),
        T(test_update_refuses_out_of_range_fields),
        T(test_update_period_change_recomputes_spent_from_journal),
        T(test_update_period_change_in_the_spending_entry_counts_its_postings),
        T(test_update_tz_change_recomputes_spent_from_journal),
        T(test_update_refuses_grant_account),
        T(test_update_by_agent_is_forbidden),
        T(test_freeze_sets_status_frozen),
        T(test_freeze_twice_is_ok),
        T(test_unfreeze_restores_active),
        T(test_freeze_unknown_account_not_found),
        T(test_freeze_closed_account_refused),
        T(test_unfreeze_closed_account_refused),
        T(test_freeze_by_agent_is_forbidden),
        T(test_unfreeze_by_agent_is_forbidden),
        T(test_close_sets_status_closed),
        T(test_close_twice_is_ok),
        T(test_close_refused_with_open_hold),
        T(test_close_ok_once_hold_committed),
        T(test_close_refused_with_open_child),
        T(test_close_refused_with_frozen_child),
        T(test_close_ok_when_children_closed),
        T(test_close_frozen_account_ok),
        T(test_close_unknown_account_not_found),
        T(test_close_by_agent_is_forbidden),
        T(test_update_cap_ignores_spend_of_previous_period),
        T(test_update_period_recomputes_spend_of_whole_subtree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
