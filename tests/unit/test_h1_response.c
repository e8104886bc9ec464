/*
 * test_h1_response.c — the HTTP/1.1 response parser (gateway/h1_response.c)
 * as a specification: every framing (Content-Length, chunked with
 * extensions and trailers, until EOF, none), 1xx interim heads, keep-alive
 * rules, each limit and each error, pausing between body pieces, and the
 * same result however the stream is split (whole, byte by byte, at every
 * boundary, in random pieces).
 *
 * Most tests go through parse_all_ways, which drives the stream with
 * tests/fuzz/h1_response_drive.h (the fuzz target's oracle) whole, byte by
 * byte and in random pieces, fails on any broken promise or disagreement,
 * and returns the whole-stream result.
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

#include "gateway/h1_response.h"
#include "tests/fuzz/h1_response_drive.h"

#define RANDOM_SPLIT_SEEDS 8

/* Big: static, not on the stack. */
static struct h1_drive_result whole, other;

static void drive_check(const struct h1_drive_result *d, const char *how)
{
    if (d->violation != NULL)
        fail_msg("%s: %s", how, d->violation);
}

static const struct h1_drive_result *parse_ways(const char *s, size_t len, bool is_head_request,
                                                bool is_eof)
{
    h1_drive(s, len, is_head_request, is_eof, h1_drive_whole, NULL, true, &whole);
    drive_check(&whole, "whole");
    h1_drive(s, len, is_head_request, is_eof, h1_drive_byte, NULL, false, &other);
    drive_check(&other, "byte by byte");
    assert_true(h1_drive_same(&whole, &other));
    for (uint32_t seed = 1; seed <= RANDOM_SPLIT_SEEDS; seed++) {
        struct h1_drive_random g = {.seed = seed, .max_piece = 1 + seed * 7};
        h1_drive(s, len, is_head_request, is_eof, h1_drive_random, &g, true, &other);
        drive_check(&other, "random pieces");
        assert_true(h1_drive_same(&whole, &other));
    }
    return &whole;
}

static const struct h1_drive_result *parse_all_ways(const char *s)
{
    return parse_ways(s, strlen(s), false, true);
}

static void assert_body(const struct h1_drive_result *d, const char *body)
{
    assert_int_equal(d->body_len, strlen(body));
    assert_memory_equal(d->body, body, strlen(body));
}

static void assert_error(const struct h1_drive_result *d, const char *error)
{
    assert_int_equal(d->end, GW_H1_RESPONSE_ERROR);
    assert_string_equal(d->error, error);
}

/* ---- framing ---- */

static void test_content_length_body_is_delivered_exactly(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->status, 200);
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_LENGTH);
    assert_int_equal(d->content_length, 5);
    assert_body(d, "hello");
}

static void test_content_length_zero_completes_with_the_head(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->body_len, 0);
}

static void test_bytes_after_the_body_are_not_consumed(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "ok");
    assert_int_equal(d->consumed, strlen(s) - strlen("HTTP/1.1 200 OK\r\n"));
}

static void test_chunked_body_is_dechunked(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_CHUNKED);
    assert_body(d, "hello 0123456789");
    assert_true(d->is_keep_alive);
}

static void test_chunk_sizes_are_hex_in_either_case(void **state)
{
    (void)state;
    char s[256];
    snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "a\r\n%s\r\nA\r\n%s\r\n0\r\n\r\n", "0123456789", "abcdefghij");
    const struct h1_drive_result *d = parse_all_ways(s);
    assert_body(d, "0123456789abcdefghij");
}

static void test_chunk_extensions_are_skipped(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;name=value;x=\"a;b\"\r\nhello\r\n6 ; ext\r\n world\r\n"
                       "0;last=1\r\n\r\n");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "hello world");
}

static void test_trailers_are_not_body(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\nnext";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "hi");
    assert_int_equal(d->consumed, strlen(s) - 4);
}

static void test_lf_only_line_endings_are_read(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nX-A: b\n\n"
                       "3\nabc\n0\n\n");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->header_count, 2);
    assert_body(d, "abc");
}

static void test_chunked_wins_over_content_length(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                       "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_CHUNKED);
    assert_body(d, "ok");
}

static void test_body_without_length_ends_with_the_connection(void **state)
{
    (void)state;
    const struct h1_drive_result *d = parse_all_ways("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_EOF);
    assert_body(d, "until the end");
}

static void test_body_without_length_waits_for_the_end(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\n\r\nmore to come";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_MORE);
    assert_body(d, "more to come");
}

static void test_identity_transfer_encoding_frames_by_length(void **state)
{
    (void)state;
    const struct h1_drive_result *d = parse_all_ways(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_LENGTH);
    assert_body(d, "ok");
}

static void test_204_and_304_have_no_body(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        const struct h1_drive_result *d = parse_ways(heads[i], strlen(heads[i]), false, false);
        assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
        assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_NONE);
        assert_true(d->is_keep_alive);
    }
}

static void test_head_request_has_no_body_whatever_the_head_says(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), true, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_NONE);
    assert_int_equal(d->body_len, 0);
}

static void test_interim_heads_are_skipped(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(d->head_count, 1);
    assert_int_equal(d->status, 201);
    assert_string_equal(d->headers, "content-length: 2\n");
    assert_body(d, "ok");
}

static void test_101_is_a_final_head_without_body(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->status, 101);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_int_equal(d->body_len, 0);
}

/* ---- the head ---- */

static void test_names_are_lowercased_and_values_trimmed(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Type:application/json\r\n"
                       "X-Request-Id: \t req-1 \t\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(d->header_count, 4);
    assert_string_equal(d->headers, "content-type: application/json\nx-request-id: req-1\n"
                                    "x-empty: \ncontent-length: 0\n");
}

static void test_lines_without_a_name_are_skipped(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nno colon\r\n: no name\r\n"
                       "Content-Length: 0\r\n\r\n");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_string_equal(d->headers, "x-a: 1\ncontent-length: 0\n");
}

static void test_status_line_without_reason_is_read(void **state)
{
    (void)state;
    const struct h1_drive_result *d = parse_all_ways("HTTP/1.0 404\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(d->status, 404);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
}

static void test_headers_beyond_the_count_limit_are_dropped(void **state)
{
    (void)state;
    static char s[8192];
    size_t n = (size_t)snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < GW_H1_RESPONSE_HEADERS_MAX + 10; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "X-%d: v\r\n", i);
    snprintf(s + n, sizeof s - n, "Content-Length: 1\r\n\r\nx");
    const struct h1_drive_result *d = parse_all_ways(s);
    assert_int_equal(d->header_count, GW_H1_RESPONSE_HEADERS_MAX);
    assert_int_equal(d->framing, GW_H1_RESPONSE_FRAMING_LENGTH); /* dropped, still read */
    assert_body(d, "x");
}

static void test_headers_beyond_the_byte_limit_are_dropped(void **state)
{
    (void)state;
    static char s[24 << 10];
    char value[6000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nX-1: %s\r\nX-2: %s\r\nX-3: %s\r\nX-4: 4\r\n\r\n",
             value, value, value);
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, true);
    assert_int_equal(d->header_count, 2); /* X-3 crosses 16 KiB; nothing after it is kept */
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
}

static void test_head_of_exactly_the_limit_is_read(void **state)
{
    (void)state;
    static char s[GW_H1_RESPONSE_HEAD_BYTES_MAX + 16];
    size_t pad = GW_H1_RESPONSE_HEAD_BYTES_MAX - strlen("HTTP/1.1 200 OK\r\nX: \r\n\r\n");
    size_t n = (size_t)snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nX: ");
    memset(s + n, 'p', pad);
    n += pad;
    n += (size_t)snprintf(s + n, sizeof s - n, "\r\n\r\nbody");
    assert_int_equal(n, GW_H1_RESPONSE_HEAD_BYTES_MAX + 4);
    const struct h1_drive_result *d = parse_ways(s, n, false, true);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "body");
}

static void test_head_over_the_limit_fails(void **state)
{
    (void)state;
    static char s[GW_H1_RESPONSE_HEAD_BYTES_MAX + 16];
    size_t pad = GW_H1_RESPONSE_HEAD_BYTES_MAX + 1 - strlen("HTTP/1.1 200 OK\r\nX: \r\n\r\n");
    size_t n = (size_t)snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nX: ");
    memset(s + n, 'p', pad);
    n += pad;
    n += (size_t)snprintf(s + n, sizeof s - n, "\r\n\r\n");
    const struct h1_drive_result *d = parse_ways(s, n, false, true);
    assert_error(d, "response head too large");
    assert_int_equal(d->head_count, 0);
}

static void test_malformed_status_lines_fail(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",  "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 2000\r\n\r\n",   "HTTP/1.1  200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",  "\r\nHTTP/1.1 200 OK\r\n\r\n", "garbage\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        const struct h1_drive_result *d = parse_all_ways(heads[i]);
        assert_error(d, "malformed response head");
    }
}

static void test_conflicting_content_lengths_fail(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc");
    assert_error(d, "malformed response head");
}

static void test_repeated_equal_content_lengths_are_read(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab");
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "ab");
}

static void test_bad_content_lengths_fail(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        assert_error(parse_all_ways(heads[i]), "malformed response head");
}

static void test_unknown_transfer_encoding_fails(void **state)
{
    (void)state;
    assert_error(parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"),
                 "malformed response head");
}

static void test_truncated_heads_and_bodies_fail_at_the_end(void **state)
{
    (void)state;
    static const char *const streams[] = {
        "",
        "HTTP/1.1 200 OK\r\nContent-Le",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
    };
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        assert_error(parse_all_ways(streams[i]),
                     "connection closed before the response was complete");
}

/* ---- the chunked framing's errors and limits ---- */

static void test_malformed_chunk_sizes_fail(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "\r\n",        "x\r\n",    ";ext\r\n",  "5x\r\nhello\r\n",
        "5\r\r\nhello\r\n", "-1\r\n", "10000000000000000\r\n",
    };
    char s[256];
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                 bodies[i]);
        assert_error(parse_all_ways(s), "malformed chunked body");
    }
}

static void test_chunk_data_must_end_with_its_line_ending(void **state)
{
    (void)state;
    assert_error(parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "2\r\nabc\r\n0\r\n\r\n"),
                 "malformed chunked body");
}

static void test_largest_chunk_size_is_read(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "ffffffffffffffff\r\nsome";
    const struct h1_drive_result *d = parse_ways(s, strlen(s), false, false);
    assert_int_equal(d->end, GW_H1_RESPONSE_MORE);
    assert_body(d, "some");
}

/* A chunk line of `ext_len` bytes of extension after "1;", then data. */
static size_t chunk_line_stream(char *s, size_t cap, size_t line_len)
{
    size_t n = (size_t)snprintf(s, cap, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    memset(s + n, 'e', line_len - 3); /* "1;" + extension + CR */
    n += line_len - 3;
    n += (size_t)snprintf(s + n, cap - n, "\r\nx\r\n0\r\n\r\n");
    return n;
}

static void test_chunk_line_at_the_limit_is_read(void **state)
{
    (void)state;
    static char s[4096];
    size_t n = chunk_line_stream(s, sizeof s, GW_H1_RESPONSE_CHUNK_LINE_MAX);
    const struct h1_drive_result *d = parse_ways(s, n, false, true);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "x");
}

static void test_chunk_line_over_the_limit_fails_however_split(void **state)
{
    (void)state;
    static char s[4096];
    size_t n = chunk_line_stream(s, sizeof s, GW_H1_RESPONSE_CHUNK_LINE_MAX + 1);
    assert_error(parse_ways(s, n, false, true), "malformed chunked body");
}

static size_t trailer_stream(char *s, size_t cap, size_t trailer_bytes)
{
    size_t n = (size_t)snprintf(s, cap, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "1\r\nx\r\n0\r\n");
    /* Lines of 100 bytes (98 + CR LF), then the rest, then the blank line's 2. */
    size_t left = trailer_bytes - 2;
    while (left > 0) {
        size_t line = left >= 100 ? 100 : left;
        assert_true(line >= 2);
        memset(s + n, 't', line - 2);
        memcpy(s + n + line - 2, "\r\n", 2);
        n += line;
        left -= line;
    }
    memcpy(s + n, "\r\n", 2);
    return n + 2;
}

static void test_trailers_at_the_limit_are_read(void **state)
{
    (void)state;
    static char s[32 << 10];
    size_t n = trailer_stream(s, sizeof s, GW_H1_RESPONSE_TRAILER_BYTES_MAX);
    const struct h1_drive_result *d = parse_ways(s, n, false, true);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    assert_body(d, "x");
}

static void test_trailers_over_the_limit_fail(void **state)
{
    (void)state;
    static char s[32 << 10];
    size_t n = trailer_stream(s, sizeof s, GW_H1_RESPONSE_TRAILER_BYTES_MAX + 2);
    assert_error(parse_ways(s, n, false, true), "trailers too large");
}

/* ---- keep-alive ---- */

static bool keep_alive_of(const char *head)
{
    char s[256];
    snprintf(s, sizeof s, "%sContent-Length: 0\r\n\r\n", head);
    const struct h1_drive_result *d = parse_all_ways(s);
    assert_int_equal(d->end, GW_H1_RESPONSE_DONE);
    return d->is_keep_alive;
}

static void test_http11_keeps_alive_unless_closed(void **state)
{
    (void)state;
    assert_true(keep_alive_of("HTTP/1.1 200 OK\r\n"));
    assert_true(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: close\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close\r\n"));
}

static void test_http10_keeps_alive_only_when_asked(void **state)
{
    (void)state;
    assert_false(keep_alive_of("HTTP/1.0 200 OK\r\n"));
    assert_true(keep_alive_of("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"));
    assert_false(keep_alive_of("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n"));
    assert_false(keep_alive_of("HTTP/1.0 200 OK\r\nConnection: keep-alive-ish\r\n"));
}

static void test_body_until_eof_never_keeps_alive(void **state)
{
    (void)state;
    const struct h1_drive_result *d =
        parse_all_ways("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nx");
    assert_false(d->is_keep_alive);
}

/* ---- pausing and the calling convention ---- */

static enum gw_h1_response_event parse_at(struct gw_h1_response *r, char *buf, size_t *pos,
                                          size_t len)
{
    size_t used = 0;
    enum gw_h1_response_event ev = gw_h1_response_parse(r, buf + *pos, len - *pos, &used);
    *pos += used;
    return ev;
}

static void test_pausing_between_pieces_resumes_where_it_stopped(void **state)
{
    (void)state;
    char buf[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    size_t len = strlen(buf), pos = 0;
    struct gw_h1_response r;
    gw_h1_response_init(&r, false);
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_HEAD);
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_BODY);
    assert_memory_equal(r.body, "abc", 3);
    /* Paused here: nothing is called; the rest waits in the buffer. */
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_BODY);
    assert_memory_equal(r.body, "def", 3);
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_DONE);
    assert_int_equal(pos, len);
}

static void test_a_complete_length_body_is_done_without_more_bytes(void **state)
{
    (void)state;
    char buf[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t len = strlen(buf), pos = 0;
    struct gw_h1_response r;
    gw_h1_response_init(&r, false);
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_HEAD);
    assert_false(gw_h1_response_is_complete(&r));
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_BODY);
    assert_true(gw_h1_response_is_complete(&r));
    size_t used = 1;
    assert_int_equal(gw_h1_response_parse(&r, buf + pos, 0, &used), GW_H1_RESPONSE_DONE);
    assert_int_equal(used, 0);
    assert_false(gw_h1_response_is_complete(&r));
}

static void test_body_pieces_point_into_the_callers_bytes(void **state)
{
    (void)state;
    char buf[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
    size_t len = strlen(buf), pos = 0;
    struct gw_h1_response r;
    gw_h1_response_init(&r, false);
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_HEAD);
    assert_ptr_equal(r.names[0], buf + strlen("HTTP/1.1 200 OK\r\n"));
    assert_int_equal(parse_at(&r, buf, &pos, len), GW_H1_RESPONSE_BODY);
    assert_ptr_equal(r.body, buf + len - 4);
    assert_int_equal(r.body_len, 4);
}

static void test_the_parser_is_inert_after_done_and_error(void **state)
{
    (void)state;
    char done[] = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    char bad[] = "HTTP/9 200\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    char *bufs[] = {done, bad};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(bufs[i]), pos = 0;
        struct gw_h1_response r;
        gw_h1_response_init(&r, false);
        enum gw_h1_response_event ev;
        while ((ev = parse_at(&r, bufs[i], &pos, len)) == GW_H1_RESPONSE_HEAD)
            ;
        assert_int_equal(ev, i == 0 ? GW_H1_RESPONSE_DONE : GW_H1_RESPONSE_ERROR);
        size_t at = pos;
        assert_int_equal(parse_at(&r, bufs[i], &pos, len), GW_H1_RESPONSE_MORE);
        assert_int_equal(pos, at);
        assert_int_equal(gw_h1_response_finish(&r), GW_H1_RESPONSE_MORE);
    }
}

/* Two pieces cut at every byte boundary of a response with every part: a
 * 100 Continue, headers, chunks with extensions, trailers. */
static size_t first_piece;

static size_t cut_at(void *arg, size_t left)
{
    size_t *round = arg;
    if ((*round)++ == 0)
        return first_piece < left ? first_piece : left;
    return left;
}

static void test_a_cut_at_every_byte_gives_the_same_result(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                            "Transfer-Encoding: chunked\r\nX-Id:  a  \r\n\r\n"
                            "7;e=1\r\ndata: 1\r\n0a\r\ndata: 22\n\n\r\n0\r\nT: x\r\n\r\n";
    size_t len = strlen(s);
    h1_drive(s, len, false, true, h1_drive_whole, NULL, true, &whole);
    drive_check(&whole, "whole");
    assert_int_equal(whole.end, GW_H1_RESPONSE_DONE);
    assert_body(&whole, "data: 1data: 22\n\n");
    for (first_piece = 0; first_piece <= len; first_piece++) {
        size_t round = 0;
        h1_drive(s, len, false, true, cut_at, &round, true, &other);
        drive_check(&other, "cut");
        assert_true(h1_drive_same(&whole, &other));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_body_is_delivered_exactly),
        cmocka_unit_test(test_content_length_zero_completes_with_the_head),
        cmocka_unit_test(test_bytes_after_the_body_are_not_consumed),
        cmocka_unit_test(test_chunked_body_is_dechunked),
        cmocka_unit_test(test_chunk_sizes_are_hex_in_either_case),
        cmocka_unit_test(test_chunk_extensions_are_skipped),
        cmocka_unit_test(test_trailers_are_not_body),
        cmocka_unit_test(test_lf_only_line_endings_are_read),
        cmocka_unit_test(test_chunked_wins_over_content_length),
        cmocka_unit_test(test_body_without_length_ends_with_the_connection),
        cmocka_unit_test(test_body_without_length_waits_for_the_end),
        cmocka_unit_test(test_identity_transfer_encoding_frames_by_length),
        cmocka_unit_test(test_204_and_304_have_no_body),
        cmocka_unit_test(test_head_request_has_no_body_whatever_the_head_says),
        cmocka_unit_test(test_interim_heads_are_skipped),
        cmocka_unit_test(test_101_is_a_final_head_without_body),
        cmocka_unit_test(test_names_are_lowercased_and_values_trimmed),
        cmocka_unit_test(test_lines_without_a_name_are_skipped),
        cmocka_unit_test(test_status_line_without_reason_is_read),
        cmocka_unit_test(test_headers_beyond_the_count_limit_are_dropped),
        cmocka_unit_test(test_headers_beyond_the_byte_limit_are_dropped),
        cmocka_unit_test(test_head_of_exactly_the_limit_is_read),
        cmocka_unit_test(test_head_over_the_limit_fails),
        cmocka_unit_test(test_malformed_status_lines_fail),
        cmocka_unit_test(test_conflicting_content_lengths_fail),
        cmocka_unit_test(test_repeated_equal_content_lengths_are_read),
        cmocka_unit_test(test_bad_content_lengths_fail),
        cmocka_unit_test(test_unknown_transfer_encoding_fails),
        cmocka_unit_test(test_truncated_heads_and_bodies_fail_at_the_end),
        cmocka_unit_test(test_malformed_chunk_sizes_fail),
        cmocka_unit_test(test_chunk_data_must_end_with_its_line_ending),
        cmocka_unit_test(test_largest_chunk_size_is_read),
        cmocka_unit_test(test_chunk_line_at_the_limit_is_read),
        cmocka_unit_test(test_chunk_line_over_the_limit_fails_however_split),
        cmocka_unit_test(test_trailers_at_the_limit_are_read),
        cmocka_unit_test(test_trailers_over_the_limit_fail),
        cmocka_unit_test(test_http11_keeps_alive_unless_closed),
        cmocka_unit_test(test_http10_keeps_alive_only_when_asked),
        cmocka_unit_test(test_body_until_eof_never_keeps_alive),
        cmocka_unit_test(test_pausing_between_pieces_resumes_where_it_stopped),
        cmocka_unit_test(test_a_complete_length_body_is_done_without_more_bytes),
        cmocka_unit_test(test_body_pieces_point_into_the_callers_bytes),
        cmocka_unit_test(test_the_parser_is_inert_after_done_and_error),
        cmocka_unit_test(test_a_cut_at_every_byte_gives_the_same_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
