/*
 * sse.h — usage metering from provider responses.
 *
 * Streaming responses are server-sent events; the parser is fed the body in
 * arbitrary pieces (as the upstream delivers them) and keeps the latest
 * usage it has seen:
 *   - OpenAI: the chunk with a non-null "usage" object (sent last when
 *     stream_options.include_usage is true): prompt_tokens,
 *     completion_tokens, prompt_tokens_details.cached_tokens;
 *   - Anthropic: message_start carries message.usage (input_tokens,
 *     cache_creation_input_tokens, cache_read_input_tokens, output_tokens);
 *     message_delta carries cumulative usage (keep the latest, never sum).
 * Non-streaming bodies are one JSON document: gw_usage_from_json reads the
 * same fields from it.  Token counts are int64, never floats.
 *
 * The parser bounds what it buffers (a line longer than GW_SSE_LINE_MAX is
 * skipped, not buffered) and never fails the stream: usage it cannot read is
 * simply not seen (has_usage stays false).
 */
#ifndef PURSER_GW_SSE_H
#define PURSER_GW_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SSE_LINE_MAX (256u << 10)

enum gw_provider {
    GW_PROVIDER_OPENAI = 0,
    GW_PROVIDER_ANTHROPIC = 1,
};

struct gw_usage {
    bool has_usage;
    int64_t input_tokens;        /* uncached prompt tokens */
    int64_t cached_tokens;       /* cache reads (OpenAI cached_tokens, Anthropic cache_read) */
    int64_t cache_write_tokens;  /* Anthropic cache_creation_input_tokens */
    int64_t output_tokens;
};

struct gw_sse {
    enum gw_provider provider;
    struct gw_usage usage;
    char *line;       /* partial line being assembled */
    size_t line_len;
    size_t line_cap;
    bool is_skipping; /* inside an over-long line */
    bool is_done;     /* saw [DONE] (OpenAI) or message_stop (Anthropic) */
    char *data;       /* the event's data lines, joined with '\n' */
    size_t data_len;  /* <= GW_SSE_LINE_MAX; a longer event is skipped */
    size_t data_cap;
    bool is_event_skipping; /* the event lost a line: do not read it */
    bool is_after_cr;       /* the last byte fed was CR: an LF next ends nothing */
};

void gw_sse_init(struct gw_sse *p, enum gw_provider provider);
void gw_sse_free(struct gw_sse *p);
/* Feed body bytes; returns 0, or -1 when out of memory. */
int gw_sse_feed(struct gw_sse *p, const char *data, size_t len);

/* Usage from a complete (non-streaming) JSON body.  OpenAI: usage.prompt_tokens
 * (cached_tokens from prompt_tokens_details are subtracted into cached_tokens),
 * usage.completion_tokens; embeddings have prompt_tokens only.  Anthropic:
 * usage.input_tokens, cache_*_input_tokens, output_tokens.  Returns 0 with
 * usage->has_usage set when found, -1 when the body has no readable usage. */
int gw_usage_from_json(enum gw_provider provider, const char *body, size_t len,
                       struct gw_usage *usage);

/* Every token the call used (prompt, cache reads and writes, output), for
 * the ledger's token rate limits; 0 when unknown or beyond int64. */
int64_t gw_usage_tokens(const struct gw_usage *u);

#endif
