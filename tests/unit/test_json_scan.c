/*
 * test_json_scan.c — gw_json_member against jansson, its reference: every
 * text either both accept as an object (and then the member found is the
 * value jansson keeps) or both refuse.  Hand-picked edge cases (numbers,
 * escapes, surrogates, UTF-8, depth, duplicates), then deterministic
 * mutations of provider answers.  gw_usage_from_json, which reads "usage"
 * in place through the scan, must read what loading the whole answer with
 * jansson reads (a reference reader below, written from sse.h's rules).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "gateway/json_scan.h"
#include "gateway/sse.h"

/* Checks the scan against jansson on `text`; returns the scan's answer. */
static int check_against_jansson(const char *text, size_t len)
{
    const char *at = NULL;
    size_t at_len = 0;
    int rc = gw_json_member(text, len, "usage", &at, &at_len);
    json_t *root = json_loadb(text, len, 0, NULL);
    bool is_object = json_is_object(root);
    if (rc == GW_JSON_INVALID) {
        if (is_object)
            fail_msg("scan refused what jansson accepts: %.*s", (int)(len > 200 ? 200 : len),
                     text);
    } else {
        if (!is_object)
            fail_msg("scan accepted what jansson refuses (rc %d): %.*s", rc,
                     (int)(len > 200 ? 200 : len), text);
        json_t *want = json_object_get(root, "usage");
        if (rc == GW_JSON_FOUND) {
            json_t *got = json_loadb(at, at_len, JSON_DECODE_ANY, NULL);
            assert_non_null(got);
            assert_non_null(want);
            assert_true(json_equal(got, want));
            json_decref(got);
        } else if (rc == GW_JSON_ABSENT) {
            assert_null(want);
        }
    }
    json_decref(root);
    return rc;
}

static int check_str(const char *text)
{
    return check_against_jansson(text, strlen(text));
}

static void test_found_absent_invalid(void **state)
{
    (void)state;
    assert_int_equal(check_str("{\"usage\":{\"prompt_tokens\":3}}"), GW_JSON_FOUND);
    assert_int_equal(check_str(" {\"a\":[1,2,{\"usage\":1}], \"usage\" : null } \n"),
                     GW_JSON_FOUND);
    assert_int_equal(check_str("{\"usage\":1,\"usage\":{\"x\":2}}"), GW_JSON_FOUND); /* last */
    assert_int_equal(check_str("{\"a\":{\"usage\":1}}"), GW_JSON_ABSENT);
    assert_int_equal(check_str("{}"), GW_JSON_ABSENT);
    assert_int_equal(check_str("[{\"usage\":1}]"), GW_JSON_INVALID);
    assert_int_equal(check_str("\"usage\""), GW_JSON_INVALID);
    assert_int_equal(check_str(""), GW_JSON_INVALID);
    assert_int_equal(check_str("{\"usag\\u0065\":1}"), GW_JSON_ESCAPED);
    assert_int_equal(check_str("{\"usage\":1} x"), GW_JSON_INVALID);
    assert_int_equal(check_against_jansson("{\"usage\":1}\0", 12), GW_JSON_INVALID);
    /* A NUL right after a number or literal is lost in jansson's push-back. */
    assert_int_equal(check_against_jansson("{\"usage\":4e4\0}", 14), GW_JSON_FOUND);
    assert_int_equal(check_against_jansson("{\"a\":[true\0,1]}", 15), GW_JSON_ABSENT);
    assert_int_equal(check_against_jansson("{\"a\":4\0\0}", 9), GW_JSON_INVALID);
    assert_int_equal(check_against_jansson("{\"a\":4 \0}", 9), GW_JSON_INVALID);
    assert_int_equal(check_against_jansson("{\"a\":\"x\"\0}", 10), GW_JSON_INVALID);
}

static void test_edge_cases_agree(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"n\":0}", "{\"n\":-0}", "{\"n\":01}", "{\"n\":-}", "{\"n\":1.}", "{\"n\":.5}",
        "{\"n\":1e5}", "{\"n\":1E+5}", "{\"n\":1e-5}", "{\"n\":1e}", "{\"n\":+1}",
        "{\"n\":9223372036854775807}", "{\"n\":9223372036854775808}",
        "{\"n\":-9223372036854775808}", "{\"n\":-9223372036854775809}",
        "{\"n\":123456789012345678901234567890}", "{\"n\":1e308}", "{\"n\":1e309}",
        "{\"n\":-1e309}", "{\"n\":1e-400}", "{\"n\":0.000000000000000000000000000001}",
        "{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", "{\"s\":\"\\x\"}", "{\"s\":\"\\u00e9\"}",
        "{\"s\":\"\\u0000\"}", "{\"s\":\"\\uD83D\\uDE00\"}", "{\"s\":\"\\uD83D\"}",
        "{\"s\":\"\\uDE00\"}", "{\"s\":\"\\uD83Dx\"}", "{\"s\":\"\\uD83D\\u0041\"}",
        "{\"s\":\"\\u12\"}", "{\"s\":\"\\u12G4\"}", "{\"s\":\"tab\there\"}",
        "{\"s\":\"\xc3\xa9\"}", "{\"s\":\"\xc3\"}", "{\"s\":\"\xc0\xaf\"}",
        "{\"s\":\"\xe0\x80\xaf\"}", "{\"s\":\"\xed\xa0\x80\"}", "{\"s\":\"\xf4\x90\x80\x80\"}",
        "{\"s\":\"\xf0\x9f\x98\x80\"}", "{\"s\":\"\x80\"}", "{\"s\":\"\xff\"}",
        "{\"a\":true,\"b\":false,\"c\":null}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}",
        "{\"a\":[]}", "{\"a\":[,]}", "{\"a\":[1,]}", "{\"a\":{,}}", "{\"a\":1,}", "{,}",
        "{\"a\" 1}", "{\"a\":}", "{1:2}", "{\"a\":1 \"b\":2}", "{\"a\":[1 2]}", "{\"a\":\"x}",
        "{\"a\":1", "{\"a\":[1", "{\"a\":{}", "\t{\r\n}\t", "{\"\":1}", "{\"a\":\"\\u0041\"}",
        "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4}},\"choices\":[{\"message\":"
        "{\"content\":\"hi\\n\"},\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        check_str(texts[i]);
}

/* jansson allows 2048 nested values, scalars included. */
static void test_depth_agrees(void **state)
{
    (void)state;
    static const int depths[] = {2046, 2047, 2048, 2049};
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        for (int with_scalar = 0; with_scalar < 2; with_scalar++) {
            int d = depths[k];
            size_t cap = (size_t)d * 2 + 16;
            char *t = malloc(cap);
            size_t n = 0;
            t[n++] = '{';
            memcpy(t + n, "\"a\":", 4);
            n += 4;
            for (int i = 0; i < d - 2; i++)
                t[n++] = '[';
            if (with_scalar)
                t[n++] = '1';
            for (int i = 0; i < d - 2; i++)
                t[n++] = ']';
            t[n++] = '}';
            check_against_jansson(t, n);
            free(t);
        }
    }
}

/* One deterministic mutation round of `seed` into buf (flip, drop or
 * insert bytes of `alphabet`); returns the new length. */
static size_t mutate(const char *seed, char *buf, size_t cap, int round, uint64_t *x,
                     const char *alphabet, size_t alphabet_len)
{
    size_t n = strlen(seed);
    memcpy(buf, seed, n);
    int edits = 1 + round % 3;
    for (int e = 0; e < edits; e++) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        size_t pos = (size_t)(*x % (n + 1));
        char ch = alphabet[(*x >> 32) % alphabet_len];
        switch ((*x >> 48) % 3) {
        case 0:
            if (pos < n)
                buf[pos] = ch;
            break;
        case 1:
            if (pos < n) {
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
            }
            break;
        default:
            if (n + 1 < cap) {
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = ch;
                n++;
            }
        }
    }
    return n;
}

static const char *const answers[] = {
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hello \\u00e9 \\uD83D\\uDE00\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":25,\"completion_tokens\":16,"
    "\"total_tokens\":41,\"prompt_tokens_details\":{\"cached_tokens\":7}}}",
    "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":"
    "[0.1,-0.25,3e-3,1.5E2,0,-0]}],\"model\":\"e\",\"usage\":{\"prompt_tokens\":5,"
    "\"total_tokens\":5}}",
    "{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":"
    "\"caf\xc3\xa9\"}],\"usage\":{\"input_tokens\":10,\"output_tokens\":3,"
    "\"cache_creation_input_tokens\":2,\"cache_read_input_tokens\":1}}",
};

/* Deterministic mutations of provider answers: flip, drop, insert or
 * duplicate bytes, and compare the verdicts. */
static void test_mutations_agree(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\u0123456789.eE+-tfnrl \x80\xc3\xa9\xed\xf4";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[1024];
    int found = 0, invalid = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = mutate(answers[round % 3], buf, sizeof buf, round, &x, alphabet,
                          sizeof alphabet - 1);
        int rc = check_against_jansson(buf, n);
        found += rc == GW_JSON_FOUND;
        invalid += rc == GW_JSON_INVALID;
    }
    /* Both outcomes were exercised, not only one of them. */
    assert_true(found > 1000);
    assert_true(invalid > 1000);
}

/* ---- gw_usage_from_json against a whole-document reading ---- */

static int ref_count(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 1000000000000LL) /* sse.c's GW_USAGE_COUNT_MAX */
        return -1;
    *out = json_integer_value(v);
    return 1;
}

/* sse.h's rules for a whole answer, read with jansson. */
static int ref_usage(enum gw_provider provider, const char *body, size_t len, struct gw_usage *u)
{
    memset(u, 0, sizeof *u);
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *obj = json_object_get(root, "usage");
    bool ok = json_is_object(obj);
    if (ok && provider == GW_PROVIDER_OPENAI) {
        int64_t prompt = 0, completion = 0, cached = 0;
        ok = ref_count(obj, "prompt_tokens", &prompt) == 1 &&
             ref_count(obj, "completion_tokens", &completion) >= 0 &&
             ref_count(json_object_get(obj, "prompt_tokens_details"), "cached_tokens",
                       &cached) >= 0;
        if (cached > prompt)
            cached = prompt;
        *u = (struct gw_usage){true, prompt - cached, cached, 0, completion};
    } else if (ok) {
        int64_t in = 0, rd = 0, wr = 0, out = 0;
        ok = ref_count(obj, "input_tokens", &in) == 1 &&
             ref_count(obj, "cache_read_input_tokens", &rd) >= 0 &&
             ref_count(obj, "cache_creation_input_tokens", &wr) >= 0 &&
             ref_count(obj, "output_tokens", &out) == 1;
        *u = (struct gw_usage){true, in, rd, wr, out};
    }
    json_decref(root);
    if (!ok)
        memset(u, 0, sizeof *u);
    return ok ? 0 : -1;
}

static void check_usage(enum gw_provider provider, const char *body, size_t n)
{
    struct gw_usage got, want;
    int rc = gw_usage_from_json(provider, body, n, &got);
    int want_rc = ref_usage(provider, body, n, &want);
    if (rc != want_rc || memcmp(&got, &want, sizeof got) != 0)
        fail_msg("usage differs (rc %d, want %d): %.*s", rc, want_rc, (int)n, body);
}

static void test_usage_edge_cases_read_as_the_whole_document(void **state)
{
    (void)state;
    static const char *const openai[] = {
        "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":null}}",
        "{\"usage\":{\"prompt_tokens\":null,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":3.0,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":3e0,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":-3,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":-0,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":1000000000001,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":1000000000000,\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":\"3\",\"completion_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":true}}",
        "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":null}}",
        "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":[1]}}",
        "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":9}}}",
        "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":-1}}}",
        "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens\":6}}",
        "{\"usage\":{\"prompt_tokens\":5},\"usage\":null}",
        "{\"usage\":{\"prompt_tokens\":5,\"x\":\"a\\\"b\"}}",
        "{\"usage\":{\"prompt_\\u0074okens\":5}}",
        "{\"usag\\u0065\":{\"prompt_tokens\":5}}",
        "{\"usage\":[]}", "{\"usage\":null}", "{\"usage\":7}", "{}", "[]", "",
    };
    static const char *const anthropic[] = {
        "{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}",
        "{\"usage\":{\"input_tokens\":3,\"output_tokens\":null}}",
        ("{\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"cache_read_input_tokens\":null,"
         "\"cache_creation_input_tokens\":2}}"), /* one string: parenthesized for clang */
        "{\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"cache_read_input_tokens\":1.5}}",
        "{\"usage\":{\"input_tokens\":3}}",
    };
    for (size_t i = 0; i < sizeof openai / sizeof openai[0]; i++)
        check_usage(GW_PROVIDER_OPENAI, openai[i], strlen(openai[i]));
    for (size_t i = 0; i < sizeof anthropic / sizeof anthropic[0]; i++)
        check_usage(GW_PROVIDER_ANTHROPIC, anthropic[i], strlen(anthropic[i]));
}

static void test_usage_reads_as_the_whole_document(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\0123456789.eE-nul \xc3";
    uint64_t x = 0x243f6a8885a308d3ull;
    char buf[1024];
    int read = 0, unread = 0;
    for (int round = 0; round < 30000; round++) {
        int k = round % 3;
        enum gw_provider provider = k == 2 ? GW_PROVIDER_ANTHROPIC : GW_PROVIDER_OPENAI;
        size_t n = mutate(answers[k], buf, sizeof buf, round, &x, alphabet, sizeof alphabet - 1);
        check_usage(provider, buf, n);
        struct gw_usage got;
        int rc = gw_usage_from_json(provider, buf, n, &got);
        read += rc == 0;
        unread += rc != 0;
    }
    assert_true(read > 1000);
    assert_true(unread > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_absent_invalid),
        cmocka_unit_test(test_edge_cases_agree),
        cmocka_unit_test(test_depth_agrees),
        cmocka_unit_test(test_mutations_agree),
        cmocka_unit_test(test_usage_edge_cases_read_as_the_whole_document),
        cmocka_unit_test(test_usage_reads_as_the_whole_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
