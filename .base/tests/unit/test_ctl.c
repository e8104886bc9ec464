/*
 * test_ctl.c — purserctl's pieces that need no cluster: the command line
 * (options anywhere, values, refusals), money, durations, UTC offsets, tags,
 * lists and ids as the ledger takes them; the msgpack -> JSON walker that
 * --json output goes through; field lookup in answers; tables; and the
 * mapping of outcomes to exit codes.
 *
 * Inputs for the walker are built with msgpack-c's packer so the tests do
 * not trust purser's own encoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "cluster/ctl.h"
#include "proto/client.h"

#define ERR_CAP 256

/* ---- helpers ---- */

static int wire_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len) == 0 ? 0 : -1;
}

static void wire_init(struct proto_buf *b, msgpack_packer *pk)
{
    proto_buf_init(b);
    msgpack_packer_init(pk, b, wire_write);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* The JSON text of a msgpack value, or NULL when the walker refused it.
 * The caller frees. */
static char *json_of(const struct proto_buf *wire)
{
    struct proto_buf out;
    struct ctl_json j;
    proto_buf_init(&out);
    ctl_json_init(&j, &out);
    if (ctl_json_mp(&j, (const uint8_t *)wire->data, wire->len) != 0 || j.failed) {
        proto_buf_free(&out);
        return NULL;
    }
    proto_buf_append(&out, "", 1);
    return out.data;
}

static void assert_json(const struct proto_buf *wire, const char *want)
{
    char *got = json_of(wire);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* Parse a command line given as words (argv[0] added). */
static int parse(struct ctl_args *a, char *err, int n, ...)
{
    char *argv[16] = {"purserctl"};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    return ctl_args_parse(n + 1, argv, a, err, ERR_CAP);
}

/* ---- the command line ---- */

static void test_args_take_global_flags_anywhere(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 5, "account", "--json", "show", "acme", "--stale"), 0);
    assert_int_equal(a.positional_count, 3);
    assert_string_equal(a.positional[0], "account");
    assert_string_equal(a.positional[1], "show");
    assert_string_equal(a.positional[2], "acme");
    assert_non_null(a.value[CTL_OPT_JSON]);
    assert_non_null(a.value[CTL_OPT_STALE]);
    assert_null(a.value[CTL_OPT_CLUSTER]);
}

static void test_args_take_values_with_space_or_equals(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 4, "--cluster", "127.0.0.1:1", "--ttl=30m", "reserve"), 0);
    assert_string_equal(a.value[CTL_OPT_CLUSTER], "127.0.0.1:1");
    assert_string_equal(a.value[CTL_OPT_TTL], "30m");
    assert_int_equal(a.positional_count, 1);
}

static void test_args_collect_repeated_tags_in_order(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 4, "--tag", "a=1", "--tag", "b=2"), 0);
    assert_int_equal(a.tag_count, 2);
    assert_string_equal(a.tags[0], "a=1");
    assert_string_equal(a.tags[1], "b=2");
}

static void test_args_leave_negative_numbers_positional(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 3, "reserve", "acme", "-5"), 0);
    assert_int_equal(a.positional_count, 3);
    assert_string_equal(a.positional[2], "-5");
}

static void test_args_double_dash_ends_options(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 3, "account", "--", "--json"), 0);
    assert_int_equal(a.positional_count, 2);
    assert_null(a.value[CTL_OPT_JSON]);
}

static void test_args_refuse_unknown_option(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 2, "account", "--frobnicate"), -1);
    assert_non_null(strstr(err, "--frobnicate"));
}

static void test_args_refuse_missing_value(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 2, "reserve", "--ttl"), -1);
    assert_non_null(strstr(err, "--ttl needs a value"));
}

static void test_args_refuse_value_on_a_flag(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 1, "--json=yes"), -1);
    assert_non_null(strstr(err, "--json"));
}

static void test_args_refuse_an_option_given_twice(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 4, "--cap", "1", "--cap", "2"), -1);
    assert_non_null(strstr(err, "--cap given twice"));
}

static void test_args_check_refuses_options_of_other_commands(void **state)
{
    (void)state;
    struct ctl_args a;
    char err[ERR_CAP];
    assert_int_equal(parse(&a, err, 4, "account", "show", "--ttl", "5s"), 0);
    assert_int_equal(ctl_args_check(&a, CTL_OPTS_GLOBAL, err, sizeof err), -1);
    assert_non_null(strstr(err, "--ttl"));
    assert_int_equal(ctl_args_check(&a, CTL_OPTS_GLOBAL | CTL_OPT_BIT(CTL_OPT_TTL), err,
                                     sizeof err),
                     0);
}

/* ---- values ---- */

static void test_money_parses_exact_decimals(void **state)
{
    (void)state;
    int64_t v;
    char err[ERR_CAP];
    assert_int_equal(ctl_money_parse("12.5", "amount", true, &v, err, sizeof err), 0);
    assert_true(v == 12500000);
    assert_int_equal(ctl_money_parse("0.000001", "amount", true, &v, err, sizeof err), 0);
    assert_true(v == 1);
    assert_int_equal(ctl_money_parse("0", "amount", false, &v, err, sizeof err), 0);
    assert_true(v == 0);
}

static void test_money_refuses_too_many_decimals_and_negatives(void **state)
{
    (void)state;
    int64_t v = 7;
    char err[ERR_CAP];
    assert_int_equal(ctl_money_parse("1.2345678", "amount", true, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "1.2345678"));
    assert_int_equal(ctl_money_parse("-5", "amount", true, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "negative"));
    assert_int_equal(ctl_money_parse("abc", "amount", true, &v, err, sizeof err), -1);
    assert_int_equal(ctl_money_parse("1e3", "amount", true, &v, err, sizeof err), -1);
    assert_int_equal(ctl_money_parse("", "amount", true, &v, err, sizeof err), -1);
    assert_true(v == 7);
}

static void test_money_positive_refuses_zero(void **state)
{
    (void)state;
    int64_t v;
    char err[ERR_CAP];
    assert_int_equal(ctl_money_parse("0.000000", "amount", true, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 0"));
}

static void test_money_refuses_above_the_ledger_limit(void **state)
{
    (void)state;
    int64_t v;
    char err[ERR_CAP];
    assert_int_equal(ctl_money_parse("1000000000", "amount", true, &v, err, sizeof err), 0);
    assert_true(v == PROTO_AMOUNT_MAX);
    assert_int_equal(ctl_money_parse("1000000000.000001", "amount", true, &v, err, sizeof err),
                     -1);
}

static void test_cap_accepts_none_and_unlimited(void **state)
{
    (void)state;
    int64_t v = 0;
    char err[ERR_CAP];
    assert_int_equal(ctl_cap_parse("none", &v, err, sizeof err), 0);
    assert_true(v == PROTO_CAP_NONE);
    v = 0;
    assert_int_equal(ctl_cap_parse("unlimited", &v, err, sizeof err), 0);
    assert_true(v == PROTO_CAP_NONE);
    assert_int_equal(ctl_cap_parse("100", &v, err, sizeof err), 0);
    assert_true(v == 100000000);
    assert_int_equal(ctl_cap_parse("-1", &v, err, sizeof err), -1);
}

static int64_t duration_ok(const char *s)
{
    int64_t ms = -1;
    char err[ERR_CAP];
    if (ctl_duration_parse(s, "--ttl", &ms, err, sizeof err) != 0)
        fail_msg("\"%s\" refused: %s", s, err);
    return ms;
}

static void test_duration_units(void **state)
{
    (void)state;
    assert_true(duration_ok("500ms") == 500);
    assert_true(duration_ok("60s") == 60000);
    assert_true(duration_ok("30m") == 1800000);
    assert_true(duration_ok("2h") == 7200000);
    assert_true(duration_ok("1d") == 86400000);
}

static void test_duration_sums_parts(void **state)
{
    (void)state;
    assert_true(duration_ok("1h30m") == 5400000);
    assert_true(duration_ok("1m500ms") == 60500);
}

static void test_duration_refuses_junk(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "30", "m", "5x", "-5s", "1.5h", "0s", "5 s",
                                      "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        char err[ERR_CAP] = "";
        if (ctl_duration_parse(bad[i], "--ttl", &ms, err, sizeof err) != -1)
            fail_msg("\"%s\" parsed as %lld", bad[i], (long long)ms);
        assert_true(ms == 42);
        assert_non_null(strstr(err, "--ttl"));
    }
}

static int64_t tz_ok(const char *s)
{
    int64_t m = 9999;
    char err[ERR_CAP];
    if (ctl_tz_parse(s, &m, err, sizeof err) != 0)
        fail_msg("\"%s\" refused: %s", s, err);
    return m;
}

static void test_tz_offsets(void **state)
{
    (void)state;
    assert_true(tz_ok("+05:30") == 330);
    assert_true(tz_ok("-08:00") == -480);
    assert_true(tz_ok("+00:00") == 0);
    assert_true(tz_ok("+14:00") == 840);
    assert_true(tz_ok("-14:00") == -840);
    assert_true(tz_ok("+02") == 120);
    assert_true(tz_ok("Z") == 0);
    assert_true(tz_ok("UTC") == 0);
}

static void test_tz_refuses_bad_offsets(void **state)
{
    (void)state;
    static const char *const bad[] = {"05:30", "+5:30", "+05:3", "+05:60", "+14:01",
                                      "-15:00", "+05:30x", "", "+0530"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m = 7;
        char err[ERR_CAP];
        if (ctl_tz_parse(bad[i], &m, err, sizeof err) != -1)
            fail_msg("\"%s\" parsed as %lld", bad[i], (long long)m);
        assert_true(m == 7);
    }
}

static void test_tags_become_a_map_of_views(void **state)
{
    (void)state;
    struct proto_map m;
    char err[ERR_CAP];
    memset(&m, 0, sizeof m);
    assert_int_equal(ctl_tag_parse("team=ml", &m, err, sizeof err), 0);
    assert_int_equal(ctl_tag_parse("note=a=b", &m, err, sizeof err), 0);
    assert_int_equal(ctl_tag_parse("empty=", &m, err, sizeof err), 0);
    assert_int_equal(m.count, 3);
    assert_true(proto_str_eq(m.kv[0].key, "team"));
    assert_true(proto_str_eq(m.kv[0].value, "ml"));
    assert_true(proto_str_eq(m.kv[1].key, "note"));
    assert_true(proto_str_eq(m.kv[1].value, "a=b"));
    assert_true(proto_str_eq(m.kv[2].value, ""));
}

static void test_tags_refuse_bad_pairs(void **state)
{
    (void)state;
    struct proto_map m;
    char err[ERR_CAP];
    char long_key[PROTO_MAP_KEY_MAX + 8];
    memset(&m, 0, sizeof m);
    assert_int_equal(ctl_tag_parse("novalue", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "key=value"));
    assert_int_equal(ctl_tag_parse("=v", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty key"));
    memset(long_key, 'k', PROTO_MAP_KEY_MAX + 1);
    memcpy(long_key + PROTO_MAP_KEY_MAX + 1, "=v", 3);
    assert_int_equal(ctl_tag_parse(long_key, &m, err, sizeof err), -1);
    assert_int_equal(ctl_tag_parse("a=1", &m, err, sizeof err), 0);
    assert_int_equal(ctl_tag_parse("a=2", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(m.count, 1);
}

static void test_tags_refuse_more_than_the_map_limit(void **state)
{
    (void)state;
    struct proto_map m;
    char err[ERR_CAP];
    char tags[PROTO_MAP_MAX + 1][16];
    memset(&m, 0, sizeof m);
    for (int i = 0; i < PROTO_MAP_MAX; i++) {
        snprintf(tags[i], sizeof tags[i], "k%d=v", i);
        assert_int_equal(ctl_tag_parse(tags[i], &m, err, sizeof err), 0);
    }
    snprintf(tags[PROTO_MAP_MAX], sizeof tags[0], "last=v");
    assert_int_equal(ctl_tag_parse(tags[PROTO_MAP_MAX], &m, err, sizeof err), -1);
}

static void test_list_splits_on_commas(void **state)
{
    (void)state;
    struct proto_list l;
    char err[ERR_CAP];
    assert_int_equal(ctl_list_parse("team,project_id,ticket_id", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 3);
    assert_true(proto_str_eq(l.item[0], "team"));
    assert_true(proto_str_eq(l.item[2], "ticket_id"));
    assert_int_equal(ctl_list_parse("", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(ctl_list_parse("a,,b", &l, err, sizeof err), -1);
    assert_int_equal(ctl_list_parse("a,", &l, err, sizeof err), -1);
}

static void test_ids_and_months(void **state)
{
    (void)state;
    uint64_t id = 0;
    char err[ERR_CAP];
    assert_int_equal(ctl_id_parse("42", "reservation id", &id, err, sizeof err), 0);
    assert_true(id == 42);
    assert_int_equal(ctl_id_parse("0", "reservation id", &id, err, sizeof err), -1);
    assert_int_equal(ctl_id_parse("4x", "reservation id", &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "reservation id"));
    assert_int_equal(ctl_id_parse("99999999999999999999999", "id", &id, err, sizeof err), -1);
    assert_int_equal(ctl_month_parse("2024-05", err, sizeof err), 0);
    assert_int_equal(ctl_month_parse("2024-13", err, sizeof err), -1);
    assert_int_equal(ctl_month_parse("2024-5", err, sizeof err), -1);
    assert_int_equal(ctl_month_parse("24-05-01", err, sizeof err), -1);
}

static void test_period_names(void **state)
{
    (void)state;
    int64_t p = -1;
    char err[ERR_CAP];
    assert_int_equal(ctl_period_parse("month", &p, err, sizeof err), 0);
    assert_true(p == PROTO_PERIOD_MONTH);
    assert_int_equal(ctl_period_parse("week", &p, err, sizeof err), 0);
    assert_true(p == PROTO_PERIOD_WEEK);
    assert_int_equal(ctl_period_parse("fortnight", &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "fortnight"));
}

/* ---- output ---- */

static void test_money_and_limits_as_text(void **state)
{
    (void)state;
    char buf[CTL_MONEY_CAP];
    assert_string_equal(ctl_money_text(12500000, buf), "12.500000");
    assert_string_equal(ctl_money_text(0, buf), "0.000000");
    assert_string_equal(ctl_limit_text(-1, buf), "unlimited");
    assert_string_equal(ctl_limit_text(PROTO_UNLIMITED, buf), "unlimited");
    assert_string_equal(ctl_limit_text(1, buf), "0.000001");
}

static void test_time_as_utc_text(void **state)
{
    (void)state;
    char buf[CTL_TIME_CAP];
    assert_string_equal(ctl_time_text(0, buf), "1970-01-01T00:00:00.000Z");
    assert_string_equal(ctl_time_text(1714564800123LL, buf), "2024-05-01T12:00:00.123Z");
}

static void test_json_writer_places_commas(void **state)
{
    (void)state;
    struct proto_buf out;
    struct ctl_json j;
    proto_buf_init(&out);
    ctl_json_init(&j, &out);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "a");
    ctl_json_int(&j, -3);
    ctl_json_key(&j, "b");
    ctl_json_array_begin(&j);
    ctl_json_uint(&j, 1);
    ctl_json_null(&j);
    ctl_json_bool(&j, true);
    ctl_json_array_end(&j);
    ctl_json_key(&j, "c");
    ctl_json_limit(&j, PROTO_UNLIMITED);
    ctl_json_key(&j, "d");
    ctl_json_cstr(&j, "q\"\\\n\x01");
    ctl_json_object_end(&j);
    proto_buf_append(&out, "", 1);
    assert_false(j.failed);
    assert_string_equal(out.data, "{\"a\":-3,\"b\":[1,null,true],\"c\":null,"
                                  "\"d\":\"q\\\"\\\\\\u000a\\u0001\"}");
    proto_buf_free(&out);
}

static void test_walker_renders_an_account_answer(void **state)
{
    (void)state;
    struct proto_buf w;
    msgpack_packer pk;
    wire_init(&w, &pk);
    msgpack_pack_map(&pk, 6);
    pack_str(&pk, "name");
    pack_str(&pk, "acme/eng");
    pack_str(&pk, "cap_micros");
    msgpack_pack_int64(&pk, -1);
    pack_str(&pk, "spent_micros");
    msgpack_pack_int64(&pk, 1500000);
    pack_str(&pk, "available_micros");
    msgpack_pack_int64(&pk, -1);
    pack_str(&pk, "is_grant");
    msgpack_pack_false(&pk);
    pack_str(&pk, "tags");
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "team");
    pack_str(&pk, "ml");
    assert_json(&w, "{\"name\":\"acme/eng\",\"cap_micros\":null,\"spent_micros\":1500000,"
                    "\"available_micros\":null,\"is_grant\":false,\"tags\":{\"team\":\"ml\"}}");
    proto_buf_free(&w);
}

static void test_walker_keeps_negative_numbers_outside_limit_fields(void **state)
{
    (void)state;
    struct proto_buf w;
    msgpack_packer pk;
    wire_init(&w, &pk);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "period_end_ms");
    msgpack_pack_int64(&pk, -1);
    pack_str(&pk, "remaining_micros");
    msgpack_pack_int64(&pk, INT64_MAX);
    assert_json(&w, "{\"period_end_ms\":-1,\"remaining_micros\":null}");
    proto_buf_free(&w);
}

static void test_walker_renders_arrays_bins_and_big_uints(void **state)
{
    (void)state;
    struct proto_buf w;
    msgpack_packer pk;
    static const char bin[] = {0x00, 0x7f, (char)0xab};
    wire_init(&w, &pk);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_bin(&pk, sizeof bin);
    msgpack_pack_bin_body(&pk, bin, sizeof bin);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_double(&pk, 0.5);
    assert_json(&w, "[18446744073709551615,\"007fab\",null,[],0.5]");
    proto_buf_free(&w);
}

static void test_walker_refuses_malformed_values(void **state)
{
    (void)state;
    struct proto_buf w;
    msgpack_packer pk;
    /* a map with an integer key */
    wire_init(&w, &pk);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 2);
    assert_null(json_of(&w));
    proto_buf_free(&w);
    /* truncated: an array announcing more than is there */
    static const uint8_t truncated[] = {0x93, 0x01};
    struct proto_buf t = {(char *)truncated, sizeof truncated, sizeof truncated};
    assert_null(json_of(&t));
    /* trailing bytes */
    static const uint8_t trailing[] = {0x01, 0x02};
    struct proto_buf tr = {(char *)trailing, sizeof trailing, sizeof trailing};
    assert_null(json_of(&tr));
}

static void test_walker_refuses_nesting_beyond_the_limit(void **state)
{
    (void)state;
    uint8_t deep[CTL_JSON_DEPTH_MAX + 3];
    memset(deep, 0x91, sizeof deep - 1); /* [[[...1]]] */
    deep[sizeof deep - 1] = 0x01;
    struct proto_buf w = {(char *)deep, sizeof deep, sizeof deep};
    assert_null(json_of(&w));
}

static void test_fields_are_found_in_answers(void **state)
{
    (void)state;
    struct proto_buf w;
    msgpack_packer pk;
    int64_t i;
    uint64_t u;
    bool b;
    char s[8];
    wire_init(&w, &pk);
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "n");
    msgpack_pack_int64(&pk, -5);
    pack_str(&pk, "s");
    pack_str(&pk, "hello world");
    pack_str(&pk, "b");
    msgpack_pack_true(&pk);
    pack_str(&pk, "list");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 8);
    const uint8_t *m = (const uint8_t *)w.data;
    assert_int_equal(ctl_mp_int(m, w.len, "n", &i), 0);
    assert_true(i == -5);
    assert_int_equal(ctl_mp_uint(m, w.len, "n", &u), -1); /* negative */
    assert_int_equal(ctl_mp_str(m, w.len, "s", s, sizeof s), 0);
    assert_string_equal(s, "hello w"); /* truncated to the buffer */
    assert_int_equal(ctl_mp_bool(m, w.len, "b", &b), 0);
    assert_true(b);
    assert_int_equal(ctl_mp_int(m, w.len, "missing", &i), -1);
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    uint64_t ids[2] = {0, 0};
    int n = 0;
    assert_int_equal(ctl_mp_array(m, w.len, "list", &it), 0);
    while (ctl_mp_next(&it, &e, &elen))
        assert_int_equal(ctl_mp_uint(e, elen, "id", &ids[n++]), 0);
    assert_int_equal(n, 2);
    assert_true(ids[0] == 7 && ids[1] == 8);
    assert_int_equal(ctl_mp_array(m, w.len, "s", &it), -1);
    proto_buf_free(&w);
}

static void test_table_pads_columns(void **state)
{
    (void)state;
    static const char *const headers[] = {"NAME", "CAP"};
    static const char *const row1[] = {"acme/eng", "unlimited"};
    static const char *const row2[] = {"a", NULL};
    struct ctl_table t;
    char out[256] = "";
    FILE *f = fmemopen(out, sizeof out, "w");
    assert_non_null(f);
    ctl_table_init(&t, 2, headers);
    ctl_table_row(&t, row1);
    ctl_table_row(&t, row2);
    assert_int_equal(ctl_table_print(&t, f), CTL_EXIT_OK);
    fclose(f);
    assert_string_equal(out, "NAME      CAP\n"
                             "acme/eng  unlimited\n"
                             "a         -\n");
}

/* ---- exit codes ---- */

static void test_exit_codes_for_call_outcomes(void **state)
{
    (void)state;
    assert_int_equal(ctl_exit_for_call(PC_OK, NULL), CTL_EXIT_OK);
    assert_int_equal(ctl_exit_for_call(PC_ETIMEOUT, NULL), CTL_EXIT_UNREACHABLE);
    assert_int_equal(ctl_exit_for_call(PC_EUNAVAILABLE, NULL), CTL_EXIT_UNREACHABLE);
    assert_int_equal(ctl_exit_for_call(PC_ECLOSED, NULL), CTL_EXIT_UNREACHABLE);
    assert_int_equal(ctl_exit_for_call(PC_EINVAL, NULL), CTL_EXIT_USAGE);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_NOT_FOUND), CTL_EXIT_REFUSED);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_FORBIDDEN), CTL_EXIT_REFUSED);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_UNAUTHORIZED), CTL_EXIT_REFUSED);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_BAD_REQUEST), CTL_EXIT_USAGE);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_NOT_LEADER), CTL_EXIT_UNREACHABLE);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_UNAVAILABLE), CTL_EXIT_UNREACHABLE);
    assert_int_equal(ctl_exit_for_call(PC_EREMOTE, RPC_E_TOO_MANY), CTL_EXIT_UNREACHABLE);
}

static void test_exit_codes_for_ledger_results(void **state)
{
    (void)state;
    assert_int_equal(ctl_exit_for_status(PROTO_OK), CTL_EXIT_OK);
    for (int s = PROTO_ERR_INVALID; s < PROTO_STATUS_COUNT; s++)
        assert_int_equal(ctl_exit_for_status(s), CTL_EXIT_REFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_take_global_flags_anywhere),
        cmocka_unit_test(test_args_take_values_with_space_or_equals),
        cmocka_unit_test(test_args_collect_repeated_tags_in_order),
        cmocka_unit_test(test_args_leave_negative_numbers_positional),
        cmocka_unit_test(test_args_double_dash_ends_options),
        cmocka_unit_test(test_args_refuse_unknown_option),
        cmocka_unit_test(test_args_refuse_missing_value),
        cmocka_unit_test(test_args_refuse_value_on_a_flag),
        cmocka_unit_test(test_args_refuse_an_option_given_twice),
        cmocka_unit_test(test_args_check_refuses_options_of_other_commands),
        cmocka_unit_test(test_money_parses_exact_decimals),
        cmocka_unit_test(test_money_refuses_too_many_decimals_and_negatives),
        cmocka_unit_test(test_money_positive_refuses_zero),
        cmocka_unit_test(test_money_refuses_above_the_ledger_limit),
        cmocka_unit_test(test_cap_accepts_none_and_unlimited),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_sums_parts),
        cmocka_unit_test(test_duration_refuses_junk),
        cmocka_unit_test(test_tz_offsets),
        cmocka_unit_test(test_tz_refuses_bad_offsets),
        cmocka_unit_test(test_tags_become_a_map_of_views),
        cmocka_unit_test(test_tags_refuse_bad_pairs),
        cmocka_unit_test(test_tags_refuse_more_than_the_map_limit),
        cmocka_unit_test(test_list_splits_on_commas),
        cmocka_unit_test(test_ids_and_months),
        cmocka_unit_test(test_period_names),
        cmocka_unit_test(test_money_and_limits_as_text),
        cmocka_unit_test(test_time_as_utc_text),
        cmocka_unit_test(test_json_writer_places_commas),
        cmocka_unit_test(test_walker_renders_an_account_answer),
        cmocka_unit_test(test_walker_keeps_negative_numbers_outside_limit_fields),
        cmocka_unit_test(test_walker_renders_arrays_bins_and_big_uints),
        cmocka_unit_test(test_walker_refuses_malformed_values),
        cmocka_unit_test(test_walker_refuses_nesting_beyond_the_limit),
        cmocka_unit_test(test_fields_are_found_in_answers),
        cmocka_unit_test(test_table_pads_columns),
        cmocka_unit_test(test_exit_codes_for_call_outcomes),
        cmocka_unit_test(test_exit_codes_for_ledger_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
