/*
 * fuzz_proto_result.c — libFuzzer target for the result decoder (results
 * come back from the idempotency store and over RPC), plus the money text
 * parser, which reads the same kind of untrusted bytes.
 *
 * Oracles: a result that decodes re-encodes, decodes again to equal fields
 * and re-encodes to the same bytes; an amount that parses formats and parses
 * back to the same micros.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/money.h"
#include "proto/proto.h"
#include "tests/fuzz/proto_equal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "oracle violated: %s (%s)\n", what, detail);
    abort();
}

static void result_round_trip(const struct proto_result *first)
{
    struct proto_buf b1, b2;
    struct proto_result second;
    struct proto_error err;
    proto_buf_init(&b1);
    proto_buf_init(&b2);
    if (proto_result_encode(&b1, first) != 0)
        fuzz_fail("result encode", "out of memory");
    if (proto_result_decode(b1.data, b1.len, &second, &err) != 0)
        fuzz_fail("re-encoded result does not decode", err.message);
    if (!proto_result_same(first, &second))
        fuzz_fail("result changed in the round trip", first->name);
    if (proto_result_encode(&b2, &second) != 0)
        fuzz_fail("result encode", "out of memory");
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
        fuzz_fail("re-encoding changed the bytes", "result");
    proto_buf_free(&b1);
    proto_buf_free(&b2);
}

static void money_round_trip(const uint8_t *data, size_t size)
{
    char text[64], printed[MONEY_FORMAT_CAP];
    int64_t micros, back;
    if (size >= sizeof text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    if (money_parse_usd(text, &micros) != 0)
        return;
    if (money_format(micros, printed, sizeof printed) < 0)
        fuzz_fail("money_format", text);
    if (money_parse_usd(printed, &back) != 0 || back != micros)
        fuzz_fail("money format/parse round trip", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_result res;
    struct proto_error err;
    int rc = proto_result_decode(data, size, &res, &err);
    if (rc == 0)
        result_round_trip(&res);
    else if (rc != err.code || err.message[0] == '\0')
        fuzz_fail("error without a code or a message", err.message);
    money_round_trip(data, size);
    return 0;
}
