/*
 * fuzz_rpc_frame.c — libFuzzer target for the RPC framer and the message
 * decoder, the first code to touch bytes from the network.
 *
 * The input's first byte seeds the sizes of the pieces the rest is fed in
 * (so a stream is split in many ways), every complete frame is decoded as a
 * message, and the oracles check what rpc.h promises: a frame never exceeds
 * the cap, the framer hands out exactly the bytes that were fed after their
 * prefixes, the views of a decoded message lie inside its frame, and a
 * failure always carries a code and a message.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that the fuzzer reaches the cap, large enough for real frames. */
#define FUZZ_FRAME_MAX 4096

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "oracle violated: %s\n", what);
    abort();
}

static void view_check(const uint8_t *frame, size_t len, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (p == NULL || p < frame || p + n > frame + len)
        fuzz_fail("a view lies outside its frame");
}

static void msg_check(const uint8_t *frame, size_t len)
{
    struct rpc_msg m;
    struct proto_error err;
    int rc = rpc_msg_decode(frame, len, &m, &err);
    if (rc != 0) {
        if (rc != PROTO_EMALFORMED || err.code != rc || err.message[0] == '\0')
            fuzz_fail("a failure without its code or message");
        return;
    }
    if (m.type < RPC_REQUEST || m.type > RPC_NOTIFY)
        fuzz_fail("unknown type decoded");
    if (m.method.len > RPC_METHOD_MAX)
        fuzz_fail("method above its limit");
    view_check(frame, len, (const uint8_t *)m.method.ptr, m.method.len);
    view_check(frame, len, m.params, m.params_len);
    view_check(frame, len, m.result, m.result_len);
    view_check(frame, len, m.err_detail, m.err_detail_len);
    view_check(frame, len, (const uint8_t *)m.err_code.ptr, m.err_code.len);
    view_check(frame, len, (const uint8_t *)m.err_message.ptr, m.err_message.len);
    if (m.type != RPC_RESPONSE) {
        bool is_array = m.params_len > 0 && ((m.params[0] & 0xf0) == 0x90 ||
                                             m.params[0] == 0xdc || m.params[0] == 0xdd);
        if (!is_array)
            fuzz_fail("params that are not an array");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_framer f;
    if (size == 0)
        return 0;
    uint32_t seed = data[0] * 2654435761u + 1;
    data++;
    size--;
    rpc_framer_init(&f, FUZZ_FRAME_MAX);
    /* Where the next frame should start in the input, to check the framer
     * hands out exactly the bytes after each prefix. */
    size_t expect_at = 0;
    size_t fed = 0;
    while (fed < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > size - fed)
            piece = size - fed;
        int rc = rpc_framer_feed(&f, data + fed, piece);
        fed += piece;
        if (rc == RPC_EFRAME)
            break;
        if (rc != 0)
            fuzz_fail("feed failed without an oversized frame");
        const uint8_t *frame;
        size_t len;
        while ((rc = rpc_framer_next(&f, &frame, &len)) == 1) {
            if (len > FUZZ_FRAME_MAX)
                fuzz_fail("frame above the cap");
            if (expect_at + 4 + len > fed || memcmp(frame, data + expect_at + 4, len) != 0)
                fuzz_fail("frame bytes differ from the stream");
            expect_at += 4 + len;
            msg_check(frame, len);
        }
        if (rc == RPC_EFRAME)
            break;
        if (rc != 0)
            fuzz_fail("next returned an unknown code");
    }
    rpc_framer_free(&f);
    return 0;
}
