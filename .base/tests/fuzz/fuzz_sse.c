/*
 * fuzz_sse.c — libFuzzer target for usage metering, which reads bytes a
 * provider (or anything between us and it) sends.
 *
 * The input is fed to the SSE parser of both providers in pieces whose
 * sizes come from a generator seeded by the input's first byte, and whole to
 * gw_usage_from_json.  The oracles are sse.h's promises: counts are never
 * negative nor above the sanity bound, buffers stay under GW_SSE_LINE_MAX,
 * the split does not change the result, and a body without usage leaves
 * has_usage false with zero counts.  Any violation aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_COUNT_MAX 1000000000000LL

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "oracle violated: %s\n", what);
    abort();
}

static void usage_check(const struct gw_usage *u)
{
    const int64_t counts[] = {u->input_tokens, u->cached_tokens, u->cache_write_tokens,
                              u->output_tokens};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (counts[i] < 0 || counts[i] > FUZZ_COUNT_MAX)
            fuzz_fail("a usage count is out of range");
}

static bool usage_equal(const struct gw_usage *a, const struct gw_usage *b)
{
    return a->has_usage == b->has_usage && a->input_tokens == b->input_tokens &&
           a->cached_tokens == b->cached_tokens && a->cache_write_tokens == b->cache_write_tokens &&
           a->output_tokens == b->output_tokens;
}

static struct gw_usage feed(enum gw_provider provider, const char *s, size_t n, uint32_t seed,
                            bool *is_done)
{
    struct gw_sse p;
    gw_sse_init(&p, provider);
    size_t at = 0;
    while (at < n) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > n - at)
            piece = n - at;
        if (gw_sse_feed(&p, s + at, piece) != 0)
            fuzz_fail("gw_sse_feed failed without running out of memory");
        if (p.line_cap > GW_SSE_LINE_MAX || p.data_cap > GW_SSE_LINE_MAX)
            fuzz_fail("a buffer grew past GW_SSE_LINE_MAX");
        usage_check(&p.usage);
        at += piece;
    }
    struct gw_usage u = p.usage;
    *is_done = p.is_done;
    gw_sse_free(&p);
    return u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint32_t seed = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

    for (int provider = GW_PROVIDER_OPENAI; provider <= GW_PROVIDER_ANTHROPIC; provider++) {
        bool is_done_split;
        struct gw_usage split = feed((enum gw_provider)provider, s, n, seed, &is_done_split);
        /* One piece versus many: the same events, the same result. */
        struct gw_sse p;
        gw_sse_init(&p, (enum gw_provider)provider);
        if (gw_sse_feed(&p, s, n) != 0)
            fuzz_fail("gw_sse_feed failed without running out of memory");
        if (!usage_equal(&p.usage, &split) || p.is_done != is_done_split)
            fuzz_fail("the split changed the result");
        gw_sse_free(&p);

        struct gw_usage body;
        int rc = gw_usage_from_json((enum gw_provider)provider, s, n, &body);
        usage_check(&body);
        if ((rc == 0) != body.has_usage)
            fuzz_fail("gw_usage_from_json's result and has_usage disagree");
        if (rc != 0 && (body.input_tokens || body.cached_tokens || body.cache_write_tokens ||
                        body.output_tokens))
            fuzz_fail("a refused body left counts behind");
    }
    return 0;
}
