/*
 * test_gw_parse.c — the gateway's request parsers (gateway/parse.h) as a
 * specification: what X-Budget-Metadata, X-Budget-Hint, proxy bodies and the
 * budget API's paths and bodies accept, and the exact messages of refusals
 * (the gateway answers them verbatim as 400 invalid_request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/parse.h"

static char msg[256];

/* ---- X-Budget-Metadata ---- */

static void test_metadata_object_of_strings(void **state)
{
    (void)state;
    struct proto_map m;
    memset(&m, 0, sizeof m);
    char *buf = NULL;
    assert_int_equal(gw_parse_metadata("{\"team\":\"search\",\"run\":\"r-7\",\"empty\":\"\"}", &m,
                                       &buf, msg, sizeof msg),
                     0);
    assert_non_null(buf);
    assert_int_equal(m.count, 3);
    assert_true(proto_str_eq(m.kv[0].key, "team"));
    assert_true(proto_str_eq(m.kv[0].value, "search"));
    assert_true(proto_str_eq(m.kv[1].key, "run"));
    assert_true(proto_str_eq(m.kv[1].value, "r-7"));
    assert_true(proto_str_eq(m.kv[2].key, "empty"));
    assert_int_equal(m.kv[2].value.len, 0);
    free(buf);
}

/* The last accepted text is remembered: the same text again gives the same
 * map in a buffer of its own, and other texts are parsed anew. */
static void test_metadata_repeated_text(void **state)
{
    (void)state;
    static const char *const texts[] = {"{\"team\":\"a\",\"run\":\"r-1\"}",
                                        "{\"team\":\"b\"}", "{\"team\":\"a\",\"run\":\"r-1\"}",
                                        "{\"team\":\"a\",\"run\":\"r-1\"}", "{\"team\":5}",
                                        "{\"team\":\"a\",\"run\":\"r-1\"}"};
    static const int counts[] = {2, 1, 2, 2, -1, 2};
    char *prev = NULL;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct proto_map m;
        memset(&m, 0, sizeof m);
        char *buf = NULL;
        int rc = gw_parse_metadata(texts[i], &m, &buf, msg, sizeof msg);
        if (counts[i] < 0) {
            assert_int_equal(rc, -1);
            assert_string_equal(msg, "X-Budget-Metadata: the value of \"team\" is not a string");
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(m.count, counts[i]);
        assert_true(proto_str_eq(m.kv[0].key, "team"));
        assert_true(proto_str_eq(m.kv[0].value, counts[i] == 1 ? "b" : "a"));
        if (counts[i] == 2) {
            assert_true(proto_str_eq(m.kv[1].key, "run"));
            assert_true(proto_str_eq(m.kv[1].value, "r-1"));
        }
        assert_true(m.kv[0].key.ptr >= buf && m.kv[0].key.ptr < buf + 16);
        if (prev)
            memset(prev, 'x', 4); /* an earlier result's buffer is the caller's alone */
        free(prev);
        prev = buf;
    }
    free(prev);
}

static void test_metadata_empty_object(void **state)
{
    (void)state;
    struct proto_map m;
    memset(&m, 0, sizeof m);
    m.count = 5;
    char *buf = NULL;
    assert_int_equal(gw_parse_metadata("{}", &m, &buf, msg, sizeof msg), 0);
    assert_int_equal(m.count, 0);
    free(buf);
}

static void test_metadata_not_an_object(void **state)
{
    (void)state;
    const char *bad[] = {"", "[]", "\"x\"", "12", "{", "{\"a\":\"b\"} trailing", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_map m;
        memset(&m, 0, sizeof m);
        char *buf = NULL;
        assert_int_equal(gw_parse_metadata(bad[i], &m, &buf, msg, sizeof msg), -1);
        assert_null(buf);
        assert_string_equal(msg, "X-Budget-Metadata must be a JSON object of strings");
    }
}

static void test_metadata_17_keys_refused_naming_the_limit(void **state)
{
    (void)state;
    char text[512] = "{";
    for (int i = 0; i < PROTO_MAP_MAX + 1; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"k%d\":\"v\"",
                 i ? "," : "", i);
    strcat(text, "}");
    struct proto_map m;
    memset(&m, 0, sizeof m);
    char *buf = NULL;
    assert_int_equal(gw_parse_metadata(text, &m, &buf, msg, sizeof msg), -1);
    assert_null(buf);
    assert_int_equal(m.count, 0);
    assert_string_equal(msg, "X-Budget-Metadata has more than 16 keys");

    /* 16 is the limit itself. */
    char *last = strrchr(text, ',');
    strcpy(last, "}");
    assert_int_equal(gw_parse_metadata(text, &m, &buf, msg, sizeof msg), 0);
    assert_int_equal(m.count, PROTO_MAP_MAX);
    free(buf);
}

static void test_metadata_non_string_values_refused(void **state)
{
    (void)state;
    const char *bad[] = {"{\"n\":1}", "{\"n\":null}", "{\"n\":true}", "{\"n\":[\"x\"]}",
                         "{\"n\":{\"x\":\"y\"}}", "{\"n\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_map m;
        memset(&m, 0, sizeof m);
        char *buf = NULL;
        assert_int_equal(gw_parse_metadata(bad[i], &m, &buf, msg, sizeof msg), -1);
        assert_null(buf);
        assert_string_equal(msg, "X-Budget-Metadata: the value of \"n\" is not a string");
    }
}

static void test_metadata_key_and_value_bounds(void **state)
{
    (void)state;
    char key[PROTO_MAP_KEY_MAX + 2], value[PROTO_MAP_VALUE_MAX + 2], text[1024];
    struct proto_map m;
    char *buf = NULL;
    memset(key, 'k', sizeof key);
    memset(value, 'v', sizeof value);

    /* Longest key and value: accepted. */
    snprintf(text, sizeof text, "{\"%.*s\":\"%.*s\"}", PROTO_MAP_KEY_MAX, key,
             PROTO_MAP_VALUE_MAX, value);
    memset(&m, 0, sizeof m);
    assert_int_equal(gw_parse_metadata(text, &m, &buf, msg, sizeof msg), 0);
    assert_int_equal(m.kv[0].key.len, PROTO_MAP_KEY_MAX);
    assert_int_equal(m.kv[0].value.len, PROTO_MAP_VALUE_MAX);
    free(buf);
    buf = NULL;

    /* One byte more of either, or an empty key: refused. */
    snprintf(text, sizeof text, "{\"%.*s\":\"v\"}", PROTO_MAP_KEY_MAX + 1, key);
    assert_int_equal(gw_parse_metadata(text, &m, &buf, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "or its value is too long (keys 1..64 bytes, values up to 256)"));
    snprintf(text, sizeof text, "{\"k\":\"%.*s\"}", PROTO_MAP_VALUE_MAX + 1, value);
    assert_int_equal(gw_parse_metadata(text, &m, &buf, msg, sizeof msg), -1);
    assert_string_equal(msg, "X-Budget-Metadata: key \"k\" or its value is too long"
                             " (keys 1..64 bytes, values up to 256)");
    assert_int_equal(gw_parse_metadata("{\"\":\"v\"}", &m, &buf, msg, sizeof msg), -1);
    assert_null(buf);
}

static void test_metadata_duplicate_keys_refused(void **state)
{
    (void)state;
    struct proto_map m;
    memset(&m, 0, sizeof m);
    char *buf = NULL;
    assert_int_equal(gw_parse_metadata("{\"a\":\"1\",\"a\":\"2\"}", &m, &buf, msg, sizeof msg),
                     -1);
    assert_null(buf);
    assert_string_equal(msg, "X-Budget-Metadata must be a JSON object of strings");
}

/* ---- X-Budget-Hint ---- */

static void test_hint_amounts(void **state)
{
    (void)state;
    int64_t m = -5;
    assert_int_equal(gw_parse_hint("0.25", &m), 0);
    assert_int_equal(m, 250000);
    assert_int_equal(gw_parse_hint("0", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(gw_parse_hint("12", &m), 0);
    assert_int_equal(m, 12000000);
    assert_int_equal(gw_parse_hint("0.000001", &m), 0);
    assert_int_equal(m, 1);
    assert_int_equal(gw_parse_hint("1000000000", &m), 0); /* PROTO_AMOUNT_MAX */
    assert_int_equal(m, PROTO_AMOUNT_MAX);
}

static void test_hint_refusals(void **state)
{
    (void)state;
    const char *bad[] = {"-1", "-0.000001", "", "abc", ".5", "5.", "0.1234567", "1e3",
                         " 1", "1000000000.000001", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m = 77;
        assert_int_equal(gw_parse_hint(bad[i], &m), -1);
        assert_int_equal(m, 77);
    }
}

/* ---- proxy bodies ---- */

static void test_proxy_body_fields(void **state)
{
    (void)state;
    struct gw_proxy_request r;
    const char *b = "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":100,"
                    "\"messages\":[]}";
    assert_int_equal(gw_parse_proxy_body(b, strlen(b), &r, msg, sizeof msg), 0);
    assert_non_null(r.body);
    assert_string_equal(r.model, "gpt-4o");
    assert_true(r.is_stream);
    assert_true(r.has_max_tokens);
    assert_false(r.is_max_tokens_bad);
    assert_int_equal(r.max_tokens, 100);
    json_decref(r.body);
}

static void test_proxy_body_max_completion_tokens_wins(void **state)
{
    (void)state;
    struct gw_proxy_request r;
    const char *b = "{\"model\":\"m\",\"max_completion_tokens\":7,\"max_tokens\":\"junk\"}";
    assert_int_equal(gw_parse_proxy_body(b, strlen(b), &r, msg, sizeof msg), 0);
    assert_true(r.has_max_tokens);
    assert_false(r.is_max_tokens_bad);
    assert_int_equal(r.max_tokens, 7);
    assert_false(r.is_stream);
    json_decref(r.body);

    b = "{\"model\":\"m\",\"stream\":\"true\"}";
    assert_int_equal(gw_parse_proxy_body(b, strlen(b), &r, msg, sizeof msg), 0);
    assert_false(r.is_stream); /* only JSON true streams */
    assert_false(r.has_max_tokens);
    json_decref(r.body);
}

static void test_proxy_body_bad_max_tokens_is_flagged(void **state)
{
    (void)state;
    const char *bad[] = {"-1", "1.5", "\"10\"", "null", "100000001", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char b[128];
        snprintf(b, sizeof b, "{\"model\":\"m\",\"max_tokens\":%s}", bad[i]);
        struct gw_proxy_request r;
        assert_int_equal(gw_parse_proxy_body(b, strlen(b), &r, msg, sizeof msg), 0);
        assert_true(r.has_max_tokens);
        assert_true(r.is_max_tokens_bad);
        json_decref(r.body);
    }
    struct gw_proxy_request r;
    const char *b = "{\"model\":\"m\",\"max_tokens\":100000000}";
    assert_int_equal(gw_parse_proxy_body(b, strlen(b), &r, msg, sizeof msg), 0);
    assert_false(r.is_max_tokens_bad);
    assert_int_equal(r.max_tokens, 100000000);
    json_decref(r.body);
}

static void test_proxy_body_refusals(void **state)
{
    (void)state;
    struct gw_proxy_request r;
    const char *not_object[] = {"", "[]", "{", "\"model\"", "{\"model\":\"m\"} x"};
    for (size_t i = 0; i < sizeof not_object / sizeof not_object[0]; i++) {
        assert_int_equal(gw_parse_proxy_body(not_object[i], strlen(not_object[i]), &r, msg,
                                             sizeof msg),
                         -1);
        assert_null(r.body);
        assert_string_equal(msg, "the body must be a JSON object");
    }
    char long_model[PROTO_TEXT_MAX + 32];
    snprintf(long_model, sizeof long_model, "{\"model\":\"%0*d\"}", PROTO_TEXT_MAX + 1, 0);
    const char *bad_model[] = {"{}", "{\"model\":\"\"}", "{\"model\":5}", "{\"model\":null}",
                               long_model};
    for (size_t i = 0; i < sizeof bad_model / sizeof bad_model[0]; i++) {
        assert_int_equal(gw_parse_proxy_body(bad_model[i], strlen(bad_model[i]), &r, msg,
                                             sizeof msg),
                         -1);
        assert_null(r.body);
        assert_string_equal(msg, "\"model\" must be a non-empty string");
    }
    /* The body is not NUL-terminated text: len bounds it. */
    const char *b = "{\"model\":\"m\"}garbage";
    assert_int_equal(gw_parse_proxy_body(b, 13, &r, msg, sizeof msg), 0);
    json_decref(r.body);
}

/* ---- budget paths ---- */

static int route(const char *path, bool is_post, struct gw_budget *b)
{
    memset(b, 0, sizeof *b);
    return gw_parse_budget_path(path, strlen(path), is_post, b);
}

/* gw_parse_proxy_fields (the fields, read in place) answers as
 * gw_parse_proxy_body (the whole document) does: hand-picked bodies, then
 * deterministic mutations of a chat body. */
static void check_fields_as_body(const char *b, size_t n)
{
    struct gw_proxy_request full, fields;
    char msg_full[256] = "", msg_fields[256] = "";
    int rc_full = gw_parse_proxy_body(b, n, &full, msg_full, sizeof msg_full);
    int rc_fields = gw_parse_proxy_fields(b, n, &fields, msg_fields, sizeof msg_fields);
    if (rc_full != rc_fields || strcmp(msg_full, msg_fields) != 0)
        fail_msg("answers differ (%d %s / %d %s): %.*s", rc_full, msg_full, rc_fields, msg_fields,
                 (int)n, b);
    if (rc_full == 0) {
        assert_string_equal(full.model, fields.model);
        assert_int_equal(full.is_stream, fields.is_stream);
        assert_int_equal(full.has_max_tokens, fields.has_max_tokens);
        assert_int_equal(full.is_max_tokens_bad, fields.is_max_tokens_bad);
        assert_int_equal(full.max_tokens, fields.max_tokens);
    }
    json_decref(full.body);
    json_decref(fields.body);
}

static void test_proxy_fields_answer_as_the_body(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":100,\"messages\":[]}",
        "{\"model\":\"m\",\"max_completion_tokens\":7,\"max_tokens\":\"junk\"}",
        "{\"model\":\"m\",\"max_completion_tokens\":null,\"max_tokens\":5}",
        "{\"model\":\"m\",\"stream\":\"true\"}", "{\"model\":\"m\",\"stream\":false}",
        "{\"model\":\"m\",\"max_tokens\":-0}", "{\"model\":\"m\",\"max_tokens\":1e2}",
        "{\"model\":\"m\",\"max_tokens\":100000001}", "{\"model\":\"m\",\"max_tokens\":9e999}",
        "{\"model\":\"m\",\"max_tokens\":99999999999999999999}",
        "{\"model\":\"gpt\\u002d4o\"}", "{\"mod\\u0065l\":\"m\"}", "{\"model\":\"caf\xc3\xa9\"}",
        "{\"model\":\"caf\xc3\"}", "{\"model\":\"\"}", "{\"model\":5}", "{\"model\":null}",
        "{\"model\":\"a\",\"model\":\"b\"}", "{\"model\":\"a\",\"model\":7}", "{}", "[]", "",
        "{\"model\":\"m\"} x", "{\"model\":\"m\"", " {\"model\" : \"m\" } ",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        check_fields_as_body(bodies[i], strlen(bodies[i]));
    char long_model[PROTO_TEXT_MAX + 32];
    for (int extra = 0; extra <= 1; extra++) {
        snprintf(long_model, sizeof long_model, "{\"model\":\"%0*d\"}", PROTO_TEXT_MAX + extra, 0);
        check_fields_as_body(long_model, strlen(long_model));
    }
    static const char seed[] = "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"max_tokens\":16,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"Say \\\"hi\\\"\"}]}";
    static const char alphabet[] = "{}[]\",:\\u0123456789.eE-truefalsenul \xc3\xa9";
    uint64_t x = 0x853c49e6748fea9bull;
    char buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int e = 0; e <= round % 3; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t pos = (size_t)(x % (n + 1));
            char ch = alphabet[(x >> 32) % (sizeof alphabet - 1)];
            if ((x >> 48) % 3 == 0 && pos < n) {
                buf[pos] = ch;
            } else if ((x >> 48) % 3 == 1 && pos < n) {
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
            } else if (n + 1 < sizeof buf) {
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = ch;
                n++;
            }
        }
        check_fields_as_body(buf, n);
    }
}

static void test_budget_paths(void **state)
{
    (void)state;
    struct gw_budget b;
    assert_int_equal(route("/v1/budget/reservations", true, &b), 0);
    assert_int_equal(b.op, GW_B_RESERVE);
    assert_int_equal(route("/v1/budget/grants", true, &b), 0);
    assert_int_equal(b.op, GW_B_GRANT);
    assert_int_equal(route("/v1/budget/transfers", true, &b), 0);
    assert_int_equal(b.op, GW_B_TRANSFER);
    assert_int_equal(route("/v1/budget/reservations/42/commit", true, &b), 0);
    assert_int_equal(b.op, GW_B_COMMIT);
    assert_int_equal(b.id, 42);
    assert_int_equal(route("/v1/budget/reservations/7/release", true, &b), 0);
    assert_int_equal(b.op, GW_B_RELEASE);
    assert_int_equal(b.id, 7);
    assert_int_equal(route("/v1/budget/grants/9/close", true, &b), 0);
    assert_int_equal(b.op, GW_B_GRANT_CLOSE);
    assert_int_equal(b.id, 9);
    assert_int_equal(route("/v1/budget/accounts/org/team", false, &b), 0);
    assert_int_equal(b.op, GW_B_ACCOUNT);
    assert_string_equal(b.path_arg, "org/team");
}

static void test_budget_path_refusals(void **state)
{
    (void)state;
    struct gw_budget b;
    const char *post_bad[] = {"/v1/budget/", "/v1/budget/reservation",
                              "/v1/budget/reservations/x/commit",
                              "/v1/budget/reservations/1/expire", "/v1/budget/grants/1/open",
                              "/v1/budget/accounts/org", "/v1/budget", "/v1/other/reservations",
                              ""};
    for (size_t i = 0; i < sizeof post_bad / sizeof post_bad[0]; i++)
        assert_int_equal(route(post_bad[i], true, &b), -1);
    /* Methods matter: GET for writes, POST for account reads. */
    assert_int_equal(route("/v1/budget/reservations", false, &b), -1);
    assert_int_equal(route("/v1/budget/accounts/", false, &b), -1);
    /* Account names up to PROTO_NAME_MAX bytes; paths up to 511. */
    char path[600] = "/v1/budget/accounts/";
    memset(path + strlen(path), 'a', PROTO_NAME_MAX);
    assert_int_equal(route(path, false, &b), 0);
    assert_int_equal(strlen(b.path_arg), PROTO_NAME_MAX);
    strcat(path, "a");
    assert_int_equal(route(path, false, &b), -1);
    char huge[600] = "/v1/budget/reservations";
    memset(huge + strlen(huge), '/', 600 - strlen(huge) - 1);
    huge[599] = '\0';
    assert_int_equal(route(huge, true, &b), -1);
    /* A NUL inside ends the comparison, like the C string it becomes. */
    assert_int_equal(gw_parse_budget_path("/v1/budget/grants\0junk", 22, true, &b), 0);
    assert_int_equal(b.op, GW_B_GRANT);
}

/* ---- budget bodies ---- */

static int body(enum gw_budget_op op, const char *text, struct gw_budget *b)
{
    memset(b, 0, sizeof *b);
    b->op = op;
    return gw_parse_budget_body(b, true, text, strlen(text), msg, sizeof msg);
}

static void test_budget_reserve_body(void **state)
{
    (void)state;
    struct gw_budget b;
    assert_int_equal(body(GW_B_RESERVE,
                          "{\"amount_micros\":5000,\"ttl_ms\":1000,\"payee\":\"vendor/x\","
                          "\"metadata\":{\"run\":\"7\"}}",
                          &b),
                     0);
    assert_int_equal(b.amount, 5000);
    assert_int_equal(b.ttl_ms, 1000);
    assert_string_equal(b.name2, "vendor/x");
    assert_int_equal(b.body_meta.count, 1);
    assert_true(proto_str_eq(b.body_meta.kv[0].key, "run"));
    assert_true(proto_str_eq(b.body_meta.kv[0].value, "7"));
    json_decref(b.body);

    /* Defaults: a minute for reservations, an hour for grants. */
    assert_int_equal(body(GW_B_RESERVE, "{\"amount_micros\":1}", &b), 0);
    assert_int_equal(b.ttl_ms, 60000);
    json_decref(b.body);
    assert_int_equal(body(GW_B_GRANT, "{\"amount_micros\":1,\"workflow\":\"wf\"}", &b), 0);
    assert_int_equal(b.ttl_ms, 3600000);
    assert_string_equal(b.workflow, "wf");
    json_decref(b.body);
}

static void test_budget_amount_refusals(void **state)
{
    (void)state;
    struct gw_budget b;
    assert_int_equal(body(GW_B_RESERVE, "{}", &b), -1);
    assert_string_equal(msg, "amount_micros is required");
    assert_null(b.body);
    assert_int_equal(body(GW_B_RESERVE, "{\"amount_micros\":\"5\"}", &b), -1);
    assert_string_equal(msg, "amount_micros must be an integer");
    assert_int_equal(body(GW_B_COMMIT, "{\"amount_micros\":5}", &b), -1);
    assert_string_equal(msg, "actual_micros is required");
    assert_int_equal(body(GW_B_COMMIT, "{\"actual_micros\":5}", &b), 0);
    assert_int_equal(b.amount, 5);
    json_decref(b.body);
    assert_int_equal(body(GW_B_RESERVE, "{\"amount_micros\":1,\"ttl_ms\":1.5}", &b), -1);
    assert_string_equal(msg, "ttl_ms must be an integer");
    assert_int_equal(body(GW_B_RESERVE, "{\"amount_micros\":1,\"payee\":7}", &b), -1);
    assert_string_equal(msg, "payee must be a string of at most 255 bytes");
    assert_int_equal(body(GW_B_RESERVE, "[1]", &b), -1);
    assert_string_equal(msg, "the body must be a JSON object");
    assert_int_equal(body(GW_B_RESERVE, "{\"amount_micros\":1,\"amount_micros\":2}", &b), -1);
    assert_string_equal(msg, "the body must be a JSON object");
}

static void test_budget_no_body(void **state)
{
    (void)state;
    struct gw_budget b;
    memset(&b, 0, sizeof b);
    b.op = GW_B_RELEASE;
    assert_int_equal(gw_parse_budget_body(&b, true, NULL, 0, msg, sizeof msg), 0);
    assert_null(b.body);
    memset(&b, 0, sizeof b);
    b.op = GW_B_RESERVE;
    assert_int_equal(gw_parse_budget_body(&b, true, NULL, 0, msg, sizeof msg), -1);
    assert_string_equal(msg, "amount_micros is required");
    /* A GET's body is never read. */
    memset(&b, 0, sizeof b);
    b.op = GW_B_ACCOUNT;
    assert_int_equal(gw_parse_budget_body(&b, false, "junk", 4, msg, sizeof msg), 0);
    assert_null(b.body);
}

static void test_budget_transfer_body(void **state)
{
    (void)state;
    struct gw_budget b;
    assert_int_equal(body(GW_B_TRANSFER, "{\"amount_micros\":3,\"credit\":\"org/b\"}", &b), 0);
    assert_string_equal(b.name2, "org/b");
    json_decref(b.body);
    assert_int_equal(body(GW_B_TRANSFER,
                          "{\"amount_micros\":3,\"credit\":\"org/b\",\"kind\":\"chargeback\"}",
                          &b),
                     0);
    json_decref(b.body);
    assert_int_equal(body(GW_B_TRANSFER, "{\"amount_micros\":3}", &b), -1);
    assert_string_equal(msg, "credit is required");
    assert_int_equal(body(GW_B_TRANSFER, "{\"amount_micros\":3,\"credit\":1}", &b), -1);
    assert_string_equal(msg, "credit must be a string of at most 255 bytes");
    assert_int_equal(body(GW_B_TRANSFER,
                          "{\"amount_micros\":3,\"credit\":\"org/b\",\"kind\":\"refund\"}", &b),
                     -1);
    assert_string_equal(msg, "kind must be \"chargeback\"");
    assert_int_equal(body(GW_B_TRANSFER, "{\"amount_micros\":3,\"credit\":\"org/b\",\"kind\":1}",
                          &b),
                     -1);
    assert_string_equal(msg, "kind must be \"chargeback\"");
}

static void test_budget_metadata_refusals(void **state)
{
    (void)state;
    struct gw_budget b;
    assert_int_equal(body(GW_B_COMMIT, "{\"actual_micros\":1,\"metadata\":[]}", &b), -1);
    assert_string_equal(msg, "metadata must be an object of at most 16 strings");
    assert_int_equal(body(GW_B_COMMIT, "{\"actual_micros\":1,\"metadata\":{\"a\":1}}", &b), -1);
    assert_string_equal(msg, "metadata: \"a\" must map to a string (keys 1..64, values up to"
                             " 256 bytes)");
    char text[512] = "{\"actual_micros\":1,\"metadata\":{";
    for (int i = 0; i < PROTO_MAP_MAX + 1; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"k%d\":\"v\"",
                 i ? "," : "", i);
    strcat(text, "}}");
    assert_int_equal(body(GW_B_COMMIT, text, &b), -1);
    assert_string_equal(msg, "metadata must be an object of at most 16 strings");
    assert_null(b.body);
}

static void test_body_str_helper(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s}", "account", "org/a");
    char out[8];
    assert_int_equal(gw_parse_body_str(doc, "account", out, sizeof out, msg, sizeof msg), 0);
    assert_string_equal(out, "org/a");
    assert_int_equal(gw_parse_body_str(doc, "parent", out, sizeof out, msg, sizeof msg), 1);
    assert_int_equal(gw_parse_body_str(NULL, "account", out, sizeof out, msg, sizeof msg), 1);
    char tiny[5];
    assert_int_equal(gw_parse_body_str(doc, "account", tiny, sizeof tiny, msg, sizeof msg), -1);
    assert_string_equal(msg, "account must be a string of at most 4 bytes");
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_object_of_strings),
        cmocka_unit_test(test_metadata_repeated_text),
        cmocka_unit_test(test_metadata_empty_object),
        cmocka_unit_test(test_metadata_not_an_object),
        cmocka_unit_test(test_metadata_17_keys_refused_naming_the_limit),
        cmocka_unit_test(test_metadata_non_string_values_refused),
        cmocka_unit_test(test_metadata_key_and_value_bounds),
        cmocka_unit_test(test_metadata_duplicate_keys_refused),
        cmocka_unit_test(test_hint_amounts),
        cmocka_unit_test(test_hint_refusals),
        cmocka_unit_test(test_proxy_body_fields),
        cmocka_unit_test(test_proxy_body_max_completion_tokens_wins),
        cmocka_unit_test(test_proxy_body_bad_max_tokens_is_flagged),
        cmocka_unit_test(test_proxy_body_refusals),
        cmocka_unit_test(test_proxy_fields_answer_as_the_body),
        cmocka_unit_test(test_budget_paths),
        cmocka_unit_test(test_budget_path_refusals),
        cmocka_unit_test(test_budget_reserve_body),
        cmocka_unit_test(test_budget_amount_refusals),
        cmocka_unit_test(test_budget_no_body),
        cmocka_unit_test(test_budget_transfer_body),
        cmocka_unit_test(test_budget_metadata_refusals),
        cmocka_unit_test(test_body_str_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
