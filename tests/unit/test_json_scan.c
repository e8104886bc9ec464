/*
 * test_json_scan.c — gw_json_member against jansson, its reference: every
 * text either both accept as an object (and then the member found is the
 * value jansson keeps) or both refuse.  Hand-picked edge cases (numbers,
 * escapes, surrogates, UTF-8, depth, duplicates), then deterministic
 * mutations of provider answers.
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

/* Deterministic mutations of provider answers: flip, drop, insert or
 * duplicate bytes, and compare the verdicts. */
static void test_mutations_agree(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"Hello \\u00e9 \\uD83D\\uDE00\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":25,\"completion_tokens\":16,"
        "\"total_tokens\":41,\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
        "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":"
        "[0.1,-0.25,3e-3,1.5E2,0,-0]}],\"model\":\"e\",\"usage\":{\"prompt_tokens\":5,"
        "\"total_tokens\":5}}",
        "{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"caf\xc3\xa9\"}],\"usage\":{\"input_tokens\":10,\"output_tokens\":3,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}",
    };
    static const char alphabet[] = "{}[]\",:\\u0123456789.eE+-tfnrl \x80\xc3\xa9\xed\xf4";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[1024];
    int found = 0, invalid = 0;
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[round % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + round % 3;
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t pos = (size_t)(x % (n + 1));
            char ch = alphabet[(x >> 32) % (sizeof alphabet - 1)];
            switch ((x >> 48) % 3) {
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
                if (n + 1 < sizeof buf) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = ch;
                    n++;
                }
            }
        }
        int rc = check_against_jansson(buf, n);
        found += rc == GW_JSON_FOUND;
        invalid += rc == GW_JSON_INVALID;
    }
    /* Both outcomes were exercised, not only one of them. */
    assert_true(found > 1000);
    assert_true(invalid > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_absent_invalid),
        cmocka_unit_test(test_edge_cases_agree),
        cmocka_unit_test(test_depth_agrees),
        cmocka_unit_test(test_mutations_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
