/*
 * test_sse.c — usage metering as a specification: the SSE parser finds the
 * provider's usage however the body is split, keeps Anthropic's latest
 * cumulative usage instead of summing, subtracts OpenAI's cached tokens from
 * the prompt, says "no usage" for an interrupted stream, and ignores lines,
 * JSON and counts it cannot trust; gw_usage_from_json reads the same fields
 * from whole bodies of every proxied endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/sse.h"

/* ---- sample bodies ---- */

static const char openai_stream[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],"
    "\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,"
    "\"total_tokens\":127,\"prompt_tokens_details\":{\"cached_tokens\":100}}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":"
    "{\"input_tokens\":25,\"cache_creation_input_tokens\":300,"
    "\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
    "{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hi\"}}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},"
    "\"usage\":{\"output_tokens\":5}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":42}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

/* ---- helpers ---- */

static struct gw_usage feed_whole(enum gw_provider provider, const char *s, size_t n,
                                  bool *is_done)
{
    struct gw_sse p;
    gw_sse_init(&p, provider);
    assert_int_equal(gw_sse_feed(&p, s, n), 0);
    struct gw_usage u = p.usage;
    if (is_done)
        *is_done = p.is_done;
    gw_sse_free(&p);
    return u;
}

static struct gw_usage feed_str(enum gw_provider provider, const char *s)
{
    return feed_whole(provider, s, strlen(s), NULL);
}

static void usage_expect(const struct gw_usage *u, int64_t input, int64_t cached,
                         int64_t cache_write, int64_t output)
{
    assert_true(u->has_usage);
    assert_int_equal(u->input_tokens, input);
    assert_int_equal(u->cached_tokens, cached);
    assert_int_equal(u->cache_write_tokens, cache_write);
    assert_int_equal(u->output_tokens, output);
}

/* Feeds s in two pieces split at every byte, then byte by byte. */
static void expect_at_every_split(enum gw_provider provider, const char *s, int64_t input,
                                  int64_t cached, int64_t cache_write, int64_t output)
{
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        struct gw_sse p;
        gw_sse_init(&p, provider);
        assert_int_equal(gw_sse_feed(&p, s, cut), 0);
        assert_int_equal(gw_sse_feed(&p, s + cut, n - cut), 0);
        usage_expect(&p.usage, input, cached, cache_write, output);
        assert_true(p.is_done);
        gw_sse_free(&p);
    }
    struct gw_sse p;
    gw_sse_init(&p, provider);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(gw_sse_feed(&p, s + i, 1), 0);
    usage_expect(&p.usage, input, cached, cache_write, output);
    gw_sse_free(&p);
}

/* Replaces every "\n" of s with "\r\n". */
static char *crlf(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    assert_non_null(out);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            out[j++] = '\r';
        out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

/* ---- OpenAI streams ---- */

static void test_openai_stream_usage_in_last_chunk_found_at_every_split(void **state)
{
    (void)state;
    expect_at_every_split(GW_PROVIDER_OPENAI, openai_stream, 20, 100, 0, 7);
}

static void test_openai_interrupted_stream_has_no_usage(void **state)
{
    (void)state;
    const char *last = strstr(openai_stream, "data: {\"id\":\"chatcmpl-1\",\"object\":"
                                             "\"chat.completion.chunk\",\"model\":\"gpt-4o\","
                                             "\"choices\":[],");
    assert_non_null(last);
    bool is_done = true;
    struct gw_usage u = feed_whole(GW_PROVIDER_OPENAI, openai_stream,
                                   (size_t)(last - openai_stream), &is_done);
    assert_false(u.has_usage);
    assert_false(is_done);
}

static void test_openai_usage_without_trailing_blank_line_is_not_dispatched(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n");
    assert_false(u.has_usage);
}

static void test_openai_cached_tokens_are_taken_out_of_prompt_tokens(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1000,"
                                 "\"completion_tokens\":50,\"prompt_tokens_details\":"
                                 "{\"cached_tokens\":768,\"audio_tokens\":0}}}\n\n");
    usage_expect(&u, 232, 768, 0, 50);
}

static void test_openai_cached_above_prompt_never_makes_input_negative(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,"
                                 "\"prompt_tokens_details\":{\"cached_tokens\":64}}}\n\n");
    usage_expect(&u, 0, 10, 0, 1);
}

static void test_openai_latest_usage_replaces_earlier(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,"
                                 "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
                                 "data: {\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":9}}\n\n");
    usage_expect(&u, 10, 0, 0, 9);
}

/* ---- Anthropic streams ---- */

static void test_anthropic_latest_message_delta_wins_at_every_split(void **state)
{
    (void)state;
    expect_at_every_split(GW_PROVIDER_ANTHROPIC, anthropic_stream, 25, 2000, 300, 42);
}

static void test_anthropic_message_start_alone_is_not_usage(void **state)
{
    (void)state;
    const char *delta = strstr(anthropic_stream, "event: message_delta");
    assert_non_null(delta);
    struct gw_sse p;
    gw_sse_init(&p, GW_PROVIDER_ANTHROPIC);
    assert_int_equal(gw_sse_feed(&p, anthropic_stream, (size_t)(delta - anthropic_stream)), 0);
    assert_false(p.usage.has_usage);
    assert_false(p.is_done);
    /* The counts message_start gave are kept for the delta to complete. */
    assert_int_equal(p.usage.input_tokens, 25);
    assert_int_equal(p.usage.cached_tokens, 2000);
    assert_int_equal(p.usage.cache_write_tokens, 300);
    gw_sse_free(&p);
}

static void test_anthropic_delta_with_input_fields_replaces_them(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(
        GW_PROVIDER_ANTHROPIC,
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":12,"
        "\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":30}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":31}}\n\n");
    usage_expect(&u, 12, 3, 7, 31);
}

static void test_anthropic_deltas_are_not_summed(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(
        GW_PROVIDER_ANTHROPIC,
        "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,"
        "\"output_tokens\":1}}}\n\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":100}}\n\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":100}}\n\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":120}}\n\n");
    usage_expect(&u, 5, 0, 0, 120);
}

/* ---- framing ---- */

static void test_crlf_line_endings_read_like_lf(void **state)
{
    (void)state;
    char *o = crlf(openai_stream);
    char *a = crlf(anthropic_stream);
    expect_at_every_split(GW_PROVIDER_OPENAI, o, 20, 100, 0, 7);
    expect_at_every_split(GW_PROVIDER_ANTHROPIC, a, 25, 2000, 300, 42);
    free(o);
    free(a);
}

static void test_lone_cr_ends_a_line(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\r\r");
    usage_expect(&u, 3, 0, 0, 4);
}

static void test_multiline_data_is_joined_with_newlines(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":\n"
                                 "data: {\"prompt_tokens\":8,\n"
                                 "data:\"completion_tokens\":9}}\n"
                                 "\n");
    usage_expect(&u, 8, 0, 0, 9);
}

static void test_comments_event_and_id_lines_are_ignored(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 ": keep-alive\n"
                                 "\n"
                                 "event: chunk\n"
                                 "id: 7\n"
                                 "retry: 1000\n"
                                 ": comment inside an event\n"
                                 "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n"
                                 "\n");
    usage_expect(&u, 1, 0, 0, 2);
}

static void test_overlong_line_is_skipped_not_buffered(void **state)
{
    (void)state;
    size_t big = GW_SSE_LINE_MAX + 1000;
    char *filler = malloc(big);
    assert_non_null(filler);
    memset(filler, 'x', big);

    struct gw_sse p;
    gw_sse_init(&p, GW_PROVIDER_OPENAI);
    /* An over-long data line (fed in pieces) that would itself carry usage. */
    const char *head = "data: {\"usage\":{\"prompt_tokens\":999,\"completion_tokens\":999},\"p\":\"";
    assert_int_equal(gw_sse_feed(&p, head, strlen(head)), 0);
    for (size_t off = 0; off < big; off += 4096)
        assert_int_equal(gw_sse_feed(&p, filler + off, big - off < 4096 ? big - off : 4096), 0);
    assert_int_equal(gw_sse_feed(&p, "\"}\n\n", 4), 0);
    assert_false(p.usage.has_usage);
    assert_true(p.line_cap <= GW_SSE_LINE_MAX);
    /* The same in a single piece. */
    assert_int_equal(gw_sse_feed(&p, "data: ", 6), 0);
    assert_int_equal(gw_sse_feed(&p, filler, big), 0);
    assert_int_equal(gw_sse_feed(&p, "\n\n", 2), 0);
    /* The parser carries on with the next event. */
    const char *usage = "data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n";
    assert_int_equal(gw_sse_feed(&p, usage, strlen(usage)), 0);
    usage_expect(&p.usage, 4, 0, 0, 5);
    assert_true(p.line_cap <= GW_SSE_LINE_MAX);
    assert_true(p.data_cap <= GW_SSE_LINE_MAX);
    gw_sse_free(&p);
    free(filler);
}

static void test_overlong_event_of_many_lines_is_skipped(void **state)
{
    (void)state;
    struct gw_sse p;
    gw_sse_init(&p, GW_PROVIDER_OPENAI);
    char line[1024 + 8];
    memcpy(line, "data: ", 6);
    memset(line + 6, 'y', 1024);
    line[1030] = '\n';
    for (size_t i = 0; i < (GW_SSE_LINE_MAX / 1024) + 4; i++)
        assert_int_equal(gw_sse_feed(&p, line, 1031), 0);
    const char *usage = "data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n";
    assert_int_equal(gw_sse_feed(&p, usage, strlen(usage)), 0);
    assert_false(p.usage.has_usage); /* it belonged to the over-long event */
    assert_int_equal(gw_sse_feed(&p, usage, strlen(usage)), 0);
    usage_expect(&p.usage, 4, 0, 0, 5);
    assert_true(p.data_cap <= GW_SSE_LINE_MAX);
    gw_sse_free(&p);
}

static void test_garbage_json_is_ignored(void **state)
{
    (void)state;
    struct gw_usage u = feed_str(GW_PROVIDER_OPENAI,
                                 "data: {\"usage\":{\"prompt_tokens\":3,\n\n"
                                 "data: usage\n\n"
                                 "data: [\"usage\"]\n\n"
                                 "data: {\"usage\":[1,2]}\n\n"
                                 "data: {\"usage\":\"many\"}\n\n"
                                 "data: {\"usage\":{\"prompt_tokens\":\"3\"}}\n\n"
                                 "data: {\"usage\":{\"prompt_tokens\":99999999999999999999}}\n\n");
    assert_false(u.has_usage);
    u = feed_str(GW_PROVIDER_ANTHROPIC,
                 "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}\n\n"
                 "data: {\"type\":7,\"usage\":{\"output_tokens\":5}}\n\n"
                 "data: {\"type\":\"message_delta\",\"usage\":{}}\n\n"
                 "data: {\"type\":\"message_delta\",\"usage\":null}\n\n");
    assert_false(u.has_usage);
}

static void test_negative_float_and_absurd_counts_are_ignored(void **state)
{
    (void)state;
    static const char *const openai_bad[] = {
        "data: {\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":3}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":5.5,\"completion_tokens\":3}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3.0}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":-1}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1e3}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":1000000000001,\"completion_tokens\":3}}\n\n",
        ("data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,"
         "\"prompt_tokens_details\":{\"cached_tokens\":-2}}}\n\n"),
    };
    for (size_t i = 0; i < sizeof(openai_bad) / sizeof(openai_bad[0]); i++) {
        struct gw_usage u = feed_str(GW_PROVIDER_OPENAI, openai_bad[i]);
        assert_false(u.has_usage);
    }
    static const char *const anthropic_bad[] = {
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-5}}\n\n",
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5.25}}\n\n",
        ("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5,"
         "\"cache_read_input_tokens\":-1}}\n\n"),
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2000000000000}}\n\n",
    };
    for (size_t i = 0; i < sizeof(anthropic_bad) / sizeof(anthropic_bad[0]); i++) {
        struct gw_usage u = feed_str(GW_PROVIDER_ANTHROPIC, anthropic_bad[i]);
        assert_false(u.has_usage);
    }
    /* A bad delta after a good one leaves the good one standing. */
    struct gw_usage u = feed_str(
        GW_PROVIDER_ANTHROPIC,
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n"
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-7}}\n\n");
    usage_expect(&u, 0, 0, 0, 5);
    /* The largest sane count is accepted. */
    u = feed_str(GW_PROVIDER_OPENAI,
                 "data: {\"usage\":{\"prompt_tokens\":1000000000000,\"completion_tokens\":0}}\n\n");
    usage_expect(&u, 1000000000000LL, 0, 0, 0);
}

/* ---- whole bodies ---- */

static void test_json_chat_completion_body(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1500,\"completion_tokens\":12,"
        "\"total_tokens\":1512,\"prompt_tokens_details\":{\"cached_tokens\":1024,"
        "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";
    struct gw_usage u;
    assert_int_equal(gw_usage_from_json(GW_PROVIDER_OPENAI, body, strlen(body), &u), 0);
    usage_expect(&u, 476, 1024, 0, 12);
}

static void test_json_completion_body(void **state)
{
    (void)state;
    const char *body = "{\"id\":\"cmpl-3\",\"object\":\"text_completion\",\"choices\":[{\"text\":"
                       "\"x\",\"index\":0}],\"usage\":{\"prompt_tokens\":5,"
                       "\"completion_tokens\":16,\"total_tokens\":21}}";
    struct gw_usage u;
    assert_int_equal(gw_usage_from_json(GW_PROVIDER_OPENAI, body, strlen(body), &u), 0);
    usage_expect(&u, 5, 0, 0, 16);
}

static void test_json_embeddings_body_has_prompt_tokens_only(void **state)
{
    (void)state;
    const char *body = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                       "\"embedding\":[0.0023,-0.0093]}],\"model\":\"text-embedding-3-small\","
                       "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
    struct gw_usage u;
    assert_int_equal(gw_usage_from_json(GW_PROVIDER_OPENAI, body, strlen(body), &u), 0);
    usage_expect(&u, 8, 0, 0, 0);
}

static void test_json_anthropic_message_body(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
        "\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],"
        "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":2095,"
        "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":50,"
        "\"output_tokens\":503}}";
    struct gw_usage u;
    assert_int_equal(gw_usage_from_json(GW_PROVIDER_ANTHROPIC, body, strlen(body), &u), 0);
    usage_expect(&u, 2095, 50, 100, 503);
}

static void test_json_body_without_usage_is_refused(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"id\":\"x\"}",
        "{\"usage\":null}",
        "not json",
        "[1,2]",
        "",
        "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":2}}",
        "{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":2}}",
        "{\"error\":{\"type\":\"server_error\",\"message\":\"boom\"}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct gw_usage u;
        assert_int_equal(gw_usage_from_json(GW_PROVIDER_OPENAI, bodies[i], strlen(bodies[i]), &u),
                         -1);
        assert_false(u.has_usage);
        assert_int_equal(gw_usage_from_json(GW_PROVIDER_ANTHROPIC, bodies[i], strlen(bodies[i]),
                                            &u),
                         -1);
        assert_false(u.has_usage);
    }
}

static void test_json_anthropic_negative_or_float_counts_are_refused(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"usage\":{\"input_tokens\":-1,\"output_tokens\":2}}",
        "{\"usage\":{\"input_tokens\":1,\"output_tokens\":2.5}}",
        "{\"usage\":{\"input_tokens\":1,\"output_tokens\":2,\"cache_read_input_tokens\":-3}}",
        "{\"usage\":{\"input_tokens\":1}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct gw_usage u;
        assert_int_equal(
            gw_usage_from_json(GW_PROVIDER_ANTHROPIC, bodies[i], strlen(bodies[i]), &u), -1);
        assert_false(u.has_usage);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream_usage_in_last_chunk_found_at_every_split),
        cmocka_unit_test(test_openai_interrupted_stream_has_no_usage),
        cmocka_unit_test(test_openai_usage_without_trailing_blank_line_is_not_dispatched),
        cmocka_unit_test(test_openai_cached_tokens_are_taken_out_of_prompt_tokens),
        cmocka_unit_test(test_openai_cached_above_prompt_never_makes_input_negative),
        cmocka_unit_test(test_openai_latest_usage_replaces_earlier),
        cmocka_unit_test(test_anthropic_latest_message_delta_wins_at_every_split),
        cmocka_unit_test(test_anthropic_message_start_alone_is_not_usage),
        cmocka_unit_test(test_anthropic_delta_with_input_fields_replaces_them),
        cmocka_unit_test(test_anthropic_deltas_are_not_summed),
        cmocka_unit_test(test_crlf_line_endings_read_like_lf),
        cmocka_unit_test(test_lone_cr_ends_a_line),
        cmocka_unit_test(test_multiline_data_is_joined_with_newlines),
        cmocka_unit_test(test_comments_event_and_id_lines_are_ignored),
        cmocka_unit_test(test_overlong_line_is_skipped_not_buffered),
        cmocka_unit_test(test_overlong_event_of_many_lines_is_skipped),
        cmocka_unit_test(test_garbage_json_is_ignored),
        cmocka_unit_test(test_negative_float_and_absurd_counts_are_ignored),
        cmocka_unit_test(test_json_chat_completion_body),
        cmocka_unit_test(test_json_completion_body),
        cmocka_unit_test(test_json_embeddings_body_has_prompt_tokens_only),
        cmocka_unit_test(test_json_anthropic_message_body),
        cmocka_unit_test(test_json_body_without_usage_is_refused),
        cmocka_unit_test(test_json_anthropic_negative_or_float_counts_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
