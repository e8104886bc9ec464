/*
 * fuzz_h1_response.c — libFuzzer target for the HTTP/1.1 response parser
 * (gateway/h1_response.c), which reads what model providers send on plain
 * http:// upstreams.
 *
 * Input: a flags byte (bit 0: the request was HEAD; bit 1: the connection
 * ends after the stream), two bytes seeding the random split, a byte that
 * bounds its pieces, then the response stream.  The stream is driven three
 * ways with tests/fuzz/h1_response_drive.h: whole, byte by byte, and in
 * random pieces (some empty, as when a paused caller resumes), the whole
 * and random drives handing each call a fresh copy of exactly the bytes it
 * may read so AddressSanitizer sees any read past them.  The oracles are
 * the drive's checks (body within what was fed and within Content-Length,
 * exactly Content-Length at DONE, one head, DONE or ERROR at most once and
 * nothing after, unconsumed bytes untouched), the three drives agreeing,
 * and the framing matching what the head says.  Any violation aborts.
 *
 * The parser is built into this target with GW_H1_RESPONSE_TINY_LIMITS
 * (see tests/fuzz/meson.build), so every limit is within reach of inputs of
 * a few hundred bytes; the code is the gateway's.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/h1_response.h"
#include "tests/fuzz/h1_response_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PREFIX_BYTES 4

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "oracle violated: %s\n", what);
    abort();
}

static void drive_check(const struct h1_drive_result *d, const char *how)
{
    if (d->violation != NULL) {
        fprintf(stderr, "%s: ", how);
        fuzz_fail(d->violation);
    }
}

/* The head says how the body is framed: a bodiless status or request has
 * none, and a Content-Length that was kept is the one framing the body. */
static void framing_check(const struct h1_drive_result *d, bool is_head_request)
{
    if (d->head_count == 0)
        return;
    bool is_bodiless = d->status < 200 || d->status == 204 || d->status == 304 || is_head_request;
    if (is_bodiless != (d->framing == GW_H1_RESPONSE_FRAMING_NONE))
        fuzz_fail("framing NONE disagrees with the status and method");
    if (d->framing != GW_H1_RESPONSE_FRAMING_LENGTH)
        return;
    const char *p = d->headers, *end = d->headers + d->headers_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        static const char name[] = "content-length: ";
        if ((size_t)(eol - p) > sizeof name - 1 && memcmp(p, name, sizeof name - 1) == 0 &&
            strtoull(p + sizeof name - 1, NULL, 10) != d->content_length)
            fuzz_fail("content_length is not the Content-Length header's");
        p = eol + 1;
    }
}

/* Three drives' results: static, they are big. */
static struct h1_drive_result whole, byte, pieces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PREFIX_BYTES)
        return 0;
    bool is_head_request = (data[0] & 1) != 0;
    bool is_eof = (data[0] & 2) != 0;
    struct h1_drive_random g = {.seed = (uint32_t)data[1] << 8 | data[2],
                                .max_piece = data[3]};
    const char *s = (const char *)data + FUZZ_PREFIX_BYTES;
    size_t n = size - FUZZ_PREFIX_BYTES;

    h1_drive(s, n, is_head_request, is_eof, h1_drive_whole, NULL, true, &whole);
    drive_check(&whole, "whole");
    framing_check(&whole, is_head_request);
    h1_drive(s, n, is_head_request, is_eof, h1_drive_byte, NULL, false, &byte);
    drive_check(&byte, "byte by byte");
    if (!h1_drive_same(&whole, &byte))
        fuzz_fail("byte by byte differs from whole");
    h1_drive(s, n, is_head_request, is_eof, h1_drive_random, &g, true, &pieces);
    drive_check(&pieces, "random pieces");
    if (!h1_drive_same(&whole, &pieces))
        fuzz_fail("random pieces differ from whole");
    return 0;
}
