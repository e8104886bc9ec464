/*
 * test_ledger_config.c — the ledger's configuration tables
 * (docs/ledger-rules.md, price set / key create / key revoke / policy set):
 * prices per model, API keys stored by hash, and the metadata policy.  Each
 * is admin only, validated field by field, and a refusal changes nothing.
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

static const uint8_t hash_a[PROTO_HASH_BYTES] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
    0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20};
static const uint8_t hash_b[PROTO_HASH_BYTES] = {
    0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
    0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fx_open(f);
    f->now_ms = FX_MON;
    fx_create(f, "acme", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
    fx_create(f, "acme/bot", PROTO_CAP_NONE, PROTO_PERIOD_NONE, 0);
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

/* A string of `n` copies of `c` in a static buffer (one per slot). */
static const char *repeat_char(int slot, char c, size_t n)
{
    static char buf[4][600];
    assert_true(slot < 4 && n < sizeof buf[0]);
    memset(buf[slot], c, n);
    buf[slot][n] = '\0';
    return buf[slot];
}

static struct ledger_price_view price_get(struct fx *f, const char *model)
{
    struct ledger_price_view p;
    struct ledger_error err = {0};
    memset(&p, 0, sizeof p);
    if (ledger_price_get(f->l, model, &p, &err) != 0)
        fail_msg("price %s: %s", model, err.message);
    return p;
}

struct price_acc {
    int count;
    struct ledger_price_view p[8];
};

static int price_cb(void *arg, const struct ledger_price_view *p)
{
    struct price_acc *acc = arg;
    if (acc->count < 8)
        acc->p[acc->count] = *p;
    acc->count++;
    return 0;
}

static struct ledger_key_view key_get(struct fx *f, const uint8_t hash[PROTO_HASH_BYTES])
{
    struct ledger_key_view k;
    struct ledger_error err = {0};
    memset(&k, 0, sizeof k);
    if (ledger_key_get_by_hash(f->l, hash, &k, &err) != 0)
        fail_msg("key by hash: %s", err.message);
    return k;
}

static struct ledger_policy_view policy_get(struct fx *f)
{
    struct ledger_policy_view p;
    struct ledger_error err = {0};
    memset(&p, 0, sizeof p);
    if (ledger_policy_get(f->l, &p, &err) != 0)
        fail_msg("policy: %s", err.message);
    return p;
}

/* ---- prices ---- */

static void test_price_set_then_get_returns_the_four_prices(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_price_set("gpt-4o", 2500000, 10000000, 1250000, 3000000);
    fx_expect_ok(f, &c);
    struct ledger_price_view p = price_get(f, "gpt-4o");
    assert_string_equal(p.model, "gpt-4o");
    assert_int_equal(p.input_micros, 2500000);
    assert_int_equal(p.output_micros, 10000000);
    assert_int_equal(p.cached_micros, 1250000);
    assert_int_equal(p.cache_write_micros, 3000000);
}

static void test_price_set_replaces_the_prices_of_a_model(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_price_set("gpt-4o", 1, 2, 3, 4);
    struct proto_cmd c2 = fx_price_set("gpt-4o", 5, 6, 7, 8);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    struct ledger_price_view p = price_get(f, "gpt-4o");
    assert_int_equal(p.input_micros, 5);
    assert_int_equal(p.output_micros, 6);
    assert_int_equal(p.cached_micros, 7);
    assert_int_equal(p.cache_write_micros, 8);
}

static void test_price_replace_keeps_one_row_per_model(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_price_set("gpt-4o", 1, 2, 3, 4);
    struct proto_cmd c2 = fx_price_set("gpt-4o", 5, 6, 7, 8);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    struct price_acc acc = {0};
    struct ledger_error err = {0};
    assert_int_equal(ledger_price_list(f->l, price_cb, &acc, &err), 0);
    assert_int_equal(acc.count, 1);
}

static void test_price_list_returns_every_model(void **state)
{
    struct fx *f = *state;
    const char *models[3] = {"claude-sonnet", "gpt-4o", "gpt-4o-mini"};
    for (int i = 0; i < 3; i++) {
        struct proto_cmd c = fx_price_set(models[i], i + 1, 10 * (i + 1), 0, 0);
        fx_expect_ok(f, &c);
    }
    struct price_acc acc = {0};
    struct ledger_error err = {0};
    assert_int_equal(ledger_price_list(f->l, price_cb, &acc, &err), 0);
    assert_int_equal(acc.count, 3);
    for (int i = 0; i < 3; i++) {
        bool found = false;
        for (int j = 0; j < acc.count; j++) {
            if (strcmp(acc.p[j].model, models[i]) == 0) {
                found = true;
                assert_int_equal(acc.p[j].input_micros, i + 1);
                assert_int_equal(acc.p[j].output_micros, 10 * (i + 1));
            }
        }
        if (!found)
            fail_msg("model %s missing from price list", models[i]);
    }
}

static void test_price_list_on_empty_table_calls_nothing(void **state)
{
    struct fx *f = *state;
    struct price_acc acc = {0};
    struct ledger_error err = {0};
    assert_int_equal(ledger_price_list(f->l, price_cb, &acc, &err), 0);
    assert_int_equal(acc.count, 0);
}

static void test_price_get_of_unknown_model_is_not_found(void **state)
{
    struct fx *f = *state;
    struct ledger_price_view p;
    struct ledger_error err = {0};
    assert_int_equal(ledger_price_get(f->l, "nope", &p, &err), LEDGER_ENOTFOUND);
}

static void test_price_set_accepts_zero_and_the_maximum_price(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_price_set("m", 0, PROTO_AMOUNT_MAX, 0, PROTO_AMOUNT_MAX);
    fx_expect_ok(f, &c);
    struct ledger_price_view p = price_get(f, "m");
    assert_int_equal(p.input_micros, 0);
    assert_int_equal(p.output_micros, PROTO_AMOUNT_MAX);
    assert_int_equal(p.cache_write_micros, PROTO_AMOUNT_MAX);
}

static void test_price_set_refuses_each_negative_price(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c[4] = {
        fx_price_set("m", -1, 0, 0, 0), fx_price_set("m", 0, -1, 0, 0),
        fx_price_set("m", 0, 0, -1, 0), fx_price_set("m", 0, 0, 0, -1)};
    for (int i = 0; i < 4; i++)
        fx_expect_refused(f, &c[i], PROTO_ERR_INVALID, NULL);
}

static void test_price_set_refuses_a_price_above_1e15(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c[4] = {
        fx_price_set("m", PROTO_AMOUNT_MAX + 1, 0, 0, 0),
        fx_price_set("m", 0, PROTO_AMOUNT_MAX + 1, 0, 0),
        fx_price_set("m", 0, 0, PROTO_AMOUNT_MAX + 1, 0),
        fx_price_set("m", 0, 0, 0, INT64_MAX)};
    for (int i = 0; i < 4; i++)
        fx_expect_refused(f, &c[i], PROTO_ERR_INVALID, NULL);
}

static void test_price_set_refuses_an_empty_model(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_price_set("", 1, 1, 1, 1);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "model");
}

static void test_price_set_refuses_a_model_longer_than_256_bytes(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_price_set(repeat_char(0, 'm', PROTO_TEXT_MAX + 1), 1, 1, 1, 1);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "model");
}

static void test_price_set_accepts_a_model_of_256_bytes(void **state)
{
    struct fx *f = *state;
    const char *model = repeat_char(0, 'm', PROTO_TEXT_MAX);
    struct proto_cmd c = fx_price_set(model, 1, 2, 3, 4);
    fx_expect_ok(f, &c);
    assert_string_equal(price_get(f, model).model, model);
}

static void test_price_set_is_admin_only(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_price_set("gpt-4o", 1, 2, 3, 4);
    c.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, NULL);
    struct ledger_price_view p;
    struct ledger_error err = {0};
    assert_int_equal(ledger_price_get(f->l, "gpt-4o", &p, &err), LEDGER_ENOTFOUND);
}

/* ---- keys ---- */

static void test_key_create_then_get_by_hash_returns_it(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_ok(f, &c);
    struct ledger_key_view k = key_get(f, hash_a);
    assert_string_equal(k.id, "key-1");
    assert_string_equal(k.account, "acme/bot");
    assert_int_equal(k.role, PROTO_ROLE_AGENT);
    assert_false(k.is_revoked);
}

static void test_key_create_stores_the_admin_role(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("ops", hash_b, "acme", PROTO_ROLE_ADMIN);
    fx_expect_ok(f, &c);
    assert_int_equal(key_get(f, hash_b).role, PROTO_ROLE_ADMIN);
}

static void test_key_get_of_unknown_hash_is_not_found(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_ok(f, &c);
    struct ledger_key_view k;
    struct ledger_error err = {0};
    assert_int_equal(ledger_key_get_by_hash(f->l, hash_b, &k, &err), LEDGER_ENOTFOUND);
}

static void test_key_create_refuses_a_taken_id(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd c2 = fx_key_create("key-1", hash_b, "acme", PROTO_ROLE_ADMIN);
    fx_expect_ok(f, &c1);
    fx_expect_refused(f, &c2, PROTO_ERR_EXISTS, NULL);
    struct ledger_key_view k;
    struct ledger_error err = {0};
    assert_int_equal(ledger_key_get_by_hash(f->l, hash_b, &k, &err), LEDGER_ENOTFOUND);
}

static void test_key_create_refuses_a_taken_hash(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd c2 = fx_key_create("key-2", hash_a, "acme", PROTO_ROLE_ADMIN);
    fx_expect_ok(f, &c1);
    fx_expect_refused(f, &c2, PROTO_ERR_EXISTS, NULL);
    assert_string_equal(key_get(f, hash_a).id, "key-1");
}

static void test_key_create_refuses_an_unknown_account(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/ghost", PROTO_ROLE_AGENT);
    fx_expect_refused(f, &c, PROTO_ERR_NOT_FOUND, NULL);
}

static void test_key_create_refuses_a_role_other_than_agent_or_admin(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", 2);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "role");
    c.u.key_create.key_role = -1;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "role");
}

static void test_key_create_refuses_a_hash_that_is_not_32_bytes(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    c.u.key_create.hash.len = 31;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "hash");
    c.u.key_create.hash.len = 0;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "hash");
}

static void test_key_create_refuses_an_empty_id(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_key_create_refuses_an_id_longer_than_256_bytes(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create(repeat_char(0, 'k', PROTO_TEXT_MAX + 1), hash_a,
                                       "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_key_create_accepts_an_id_of_256_bytes(void **state)
{
    struct fx *f = *state;
    const char *id = repeat_char(0, 'k', PROTO_TEXT_MAX);
    struct proto_cmd c = fx_key_create(id, hash_a, "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_ok(f, &c);
    assert_string_equal(key_get(f, hash_a).id, id);
}

static void test_key_create_is_admin_only(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    c.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, NULL);
}

static void test_key_revoke_marks_the_key_revoked(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd r = fx_key_revoke("key-1");
    fx_expect_ok(f, &c);
    fx_expect_ok(f, &r);
    struct ledger_key_view k = key_get(f, hash_a);
    assert_true(k.is_revoked);
    assert_string_equal(k.id, "key-1");
}

static void test_key_revoke_leaves_other_keys_alone(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c1 = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd c2 = fx_key_create("key-2", hash_b, "acme", PROTO_ROLE_ADMIN);
    struct proto_cmd r = fx_key_revoke("key-1");
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    fx_expect_ok(f, &r);
    assert_false(key_get(f, hash_b).is_revoked);
}

static void test_key_revoke_repeated_is_ok(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd r = fx_key_revoke("key-1");
    fx_expect_ok(f, &c);
    fx_expect_ok(f, &r);
    fx_expect_ok(f, &r);
    assert_true(key_get(f, hash_a).is_revoked);
}

static void test_key_revoke_of_unknown_id_is_not_found(void **state)
{
    struct fx *f = *state;
    struct proto_cmd r = fx_key_revoke("ghost");
    fx_expect_refused(f, &r, PROTO_ERR_NOT_FOUND, NULL);
}

static void test_key_revoke_is_admin_only(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd r = fx_key_revoke("key-1");
    r.role = PROTO_ROLE_AGENT;
    fx_expect_ok(f, &c);
    fx_expect_refused(f, &r, PROTO_ERR_FORBIDDEN, NULL);
    assert_false(key_get(f, hash_a).is_revoked);
}

static void test_key_create_after_revoke_still_refuses_the_id(void **state)
{
    struct fx *f = *state;
    struct proto_cmd c = fx_key_create("key-1", hash_a, "acme/bot", PROTO_ROLE_AGENT);
    struct proto_cmd r = fx_key_revoke("key-1");
    struct proto_cmd again = fx_key_create("key-1", hash_b, "acme/bot", PROTO_ROLE_AGENT);
    fx_expect_ok(f, &c);
    fx_expect_ok(f, &r);
    fx_expect_refused(f, &again, PROTO_ERR_EXISTS, NULL);
}

/* ---- policy ---- */

static void test_policy_get_is_empty_on_a_new_ledger(void **state)
{
    struct fx *f = *state;
    assert_int_equal(policy_get(f).required_count, 0);
}

static void test_policy_set_then_get_returns_the_keys(void **state)
{
    struct fx *f = *state;
    const char *keys[2] = {"task_id", "team"};
    struct proto_cmd c = fx_policy_set(2, keys);
    fx_expect_ok(f, &c);
    struct ledger_policy_view p = policy_get(f);
    assert_int_equal(p.required_count, 2);
    assert_string_equal(p.required[0], "task_id");
    assert_string_equal(p.required[1], "team");
}

static void test_policy_set_replaces_the_previous_policy(void **state)
{
    struct fx *f = *state;
    const char *first[2] = {"task_id", "team"};
    const char *second[1] = {"cost_center"};
    struct proto_cmd c1 = fx_policy_set(2, first);
    struct proto_cmd c2 = fx_policy_set(1, second);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    struct ledger_policy_view p = policy_get(f);
    assert_int_equal(p.required_count, 1);
    assert_string_equal(p.required[0], "cost_center");
}

static void test_policy_set_with_no_keys_clears_the_policy(void **state)
{
    struct fx *f = *state;
    const char *keys[1] = {"task_id"};
    struct proto_cmd c1 = fx_policy_set(1, keys);
    struct proto_cmd c2 = fx_policy_set(0, NULL);
    fx_expect_ok(f, &c1);
    fx_expect_ok(f, &c2);
    assert_int_equal(policy_get(f).required_count, 0);
}

static void test_policy_set_accepts_16_keys(void **state)
{
    struct fx *f = *state;
    static char names[PROTO_LIST_MAX][8];
    const char *keys[PROTO_LIST_MAX];
    for (int i = 0; i < PROTO_LIST_MAX; i++) {
        snprintf(names[i], sizeof names[i], "k%02d", i);
        keys[i] = names[i];
    }
    struct proto_cmd c = fx_policy_set(PROTO_LIST_MAX, keys);
    fx_expect_ok(f, &c);
    struct ledger_policy_view p = policy_get(f);
    assert_int_equal(p.required_count, PROTO_LIST_MAX);
    for (int i = 0; i < PROTO_LIST_MAX; i++)
        assert_string_equal(p.required[i], names[i]);
}

static void test_policy_set_refuses_more_than_16_keys(void **state)
{
    struct fx *f = *state;
    static char names[PROTO_LIST_MAX][8];
    const char *keys[PROTO_LIST_MAX];
    for (int i = 0; i < PROTO_LIST_MAX; i++) {
        snprintf(names[i], sizeof names[i], "k%02d", i);
        keys[i] = names[i];
    }
    struct proto_cmd c = fx_policy_set(PROTO_LIST_MAX, keys);
    c.u.policy_set.required_metadata.count = PROTO_LIST_MAX + 1;
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_policy_set_refuses_a_duplicate_key(void **state)
{
    struct fx *f = *state;
    const char *keys[3] = {"task_id", "team", "task_id"};
    struct proto_cmd c = fx_policy_set(3, keys);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, "task_id");
}

static void test_policy_set_refuses_an_empty_key(void **state)
{
    struct fx *f = *state;
    const char *keys[2] = {"team", ""};
    struct proto_cmd c = fx_policy_set(2, keys);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_policy_set_refuses_a_key_longer_than_64_bytes(void **state)
{
    struct fx *f = *state;
    const char *keys[1] = {repeat_char(0, 'k', PROTO_MAP_KEY_MAX + 1)};
    struct proto_cmd c = fx_policy_set(1, keys);
    fx_expect_refused(f, &c, PROTO_ERR_INVALID, NULL);
}

static void test_policy_set_accepts_a_key_of_64_bytes(void **state)
{
    struct fx *f = *state;
    const char *keys[1] = {repeat_char(0, 'k', PROTO_MAP_KEY_MAX)};
    struct proto_cmd c = fx_policy_set(1, keys);
    fx_expect_ok(f, &c);
    assert_string_equal(policy_get(f).required[0], keys[0]);
}

static void test_policy_set_is_admin_only(void **state)
{
    struct fx *f = *state;
    const char *keys[1] = {"task_id"};
    struct proto_cmd c = fx_policy_set(1, keys);
    c.role = PROTO_ROLE_AGENT;
    fx_expect_refused(f, &c, PROTO_ERR_FORBIDDEN, NULL);
    assert_int_equal(policy_get(f).required_count, 0);
}

static void test_refused_policy_set_keeps_the_previous_policy(void **state)
{
    struct fx *f = *state;
    const char *good[1] = {"team"};
    const char *dups[2] = {"x", "x"};
    struct proto_cmd c1 = fx_policy_set(1, good);
    struct proto_cmd c2 = fx_policy_set(2, dups);
    fx_expect_ok(f, &c1);
    fx_expect_refused(f, &c2, PROTO_ERR_INVALID, NULL);
    struct ledger_policy_view p = policy_get(f);
    assert_int_equal(p.required_count, 1);
    assert_string_equal(p.required[0], "team");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_price_set_then_get_returns_the_four_prices),
        T(test_price_set_replaces_the_prices_of_a_model),
        T(test_price_replace_keeps_one_row_per_model),
        T(test_price_list_returns_every_model),
        T(test_price_list_on_empty_table_calls_nothing),
        T(test_price_get_of_unknown_model_is_not_found),
        T(test_price_set_accepts_zero_and_the_maximum_price),
        T(test_price_set_refuses_each_negative_price),
        T(test_price_set_refuses_a_price_above_1e15),
        T(test_price_set_refuses_an_empty_model),
        T(test_price_set_refuses_a_model_longer_than_256_bytes),
        T(test_price_set_accepts_a_model_of_256_bytes),
        T(test_price_set_is_admin_only),
        T(test_key_create_then_get_by_hash_returns_it),
        T(test_key_create_stores_the_admin_role),
        T(test_key_get_of_unknown_hash_is_not_found),
        T(test_key_create_refuses_a_taken_id),
        T(test_key_create_refuses_a_taken_hash),
        T(test_key_create_refuses_an_unknown_account),
        T(test_key_create_refuses_a_role_other_than_agent_or_admin),
        T(test_key_create_refuses_a_hash_that_is_not_32_bytes),
        T(test_key_create_refuses_an_empty_id),
        T(test_key_create_refuses_an_id_longer_than_256_bytes),
        T(test_key_create_accepts_an_id_of_256_bytes),
        T(test_key_create_is_admin_only),
        T(test_key_revoke_marks_the_key_revoked),
        T(test_key_revoke_leaves_other_keys_alone),
        T(test_key_revoke_repeated_is_ok),
        T(test_key_revoke_of_unknown_id_is_not_found),
        T(test_key_revoke_is_admin_only),
        T(test_key_create_after_revoke_still_refuses_the_id),
        T(test_policy_get_is_empty_on_a_new_ledger),
        T(test_policy_set_then_get_returns_the_keys),
        T(test_policy_set_replaces_the_previous_policy),
        T(test_policy_set_with_no_keys_clears_the_policy),
        T(test_policy_set_accepts_16_keys),
        T(test_policy_set_refuses_more_than_16_keys),
        T(test_policy_set_refuses_a_duplicate_key),
        T(test_policy_set_refuses_an_empty_key),
        T(test_policy_set_refuses_a_key_longer_than_64_bytes),
        T(test_policy_set_accepts_a_key_of_64_bytes),
        T(test_policy_set_is_admin_only),
        T(test_refused_policy_set_keeps_the_previous_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
