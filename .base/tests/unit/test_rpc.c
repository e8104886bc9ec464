/*
 * test_rpc.c — the RPC framing layer as a specification: the framer cuts a
 * byte stream into the frames that were sent however the stream is split,
 * refuses oversized lengths, and compacts its buffer; the message decoder
 * accepts exactly the shapes of docs/rpc.md and fails cleanly on every
 * truncation, wrong type and count bomb; the hello proof is HMAC-SHA256;
 * auth files and addresses parse as rpc.h says.
 *
 * Broken messages are written by hand with msgpack-c's packer, so the tests
 * do not rely on our own builders to make the inputs the decoder must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/rpc.h"

/* ---- helpers ---- */

static int wire_write_cb(void *data, const char *bytes, size_t len)
{
    return proto_buf_append(data, bytes, len) == 0 ? 0 : -1;
}

/* A hand-packed message (no frame prefix). */
struct wire {
    struct proto_buf b;
    msgpack_packer pk;
};

static void wire_init(struct wire *w)
{
    proto_buf_init(&w->b);
    msgpack_packer_init(&w->pk, &w->b, wire_write_cb);
}

static void wire_str(struct wire *w, const char *s)
{
    assert_int_equal(rpc_pack_str(&w->pk, s), 0);
}

static void wire_raw(struct wire *w, const void *p, size_t n)
{
    assert_int_equal(proto_buf_append(&w->b, p, n), 0);
}

/* Build the frames of one request, one ok response, one error response and
 * one notification into `out`; their bodies' offsets and lengths too. */
struct sample_frames {
    struct proto_buf out;
    size_t body_at[4];
    size_t body_len[4];
};

static void sample_frames_build(struct sample_frames *s)
{
    msgpack_packer pk;
    size_t start;
    static const uint8_t detail[] = {0x92, 0x02, 0xae, '1', '2', '7', '.', '0', '.', '0',
                                     '.', '1', ':', '7', '0', '0', '2'};
    proto_buf_init(&s->out);

    assert_int_equal(rpc_request_begin(&s->out, &pk, &start, 7, "apply", 1), 0);
    assert_int_equal(rpc_pack_bin(&pk, "\x93\x01\x02\x03", 4), 0);
    assert_int_equal(rpc_frame_end(&s->out, start), 0);
    s->body_at[0] = start + 4;

    assert_int_equal(rpc_response_ok_begin(&s->out, &pk, &start, 8), 0);
    assert_int_equal(msgpack_pack_map(&pk, 1), 0);
    assert_int_equal(rpc_pack_str(&pk, "leader_id"), 0);
    assert_int_equal(msgpack_pack_uint64(&pk, 3), 0);
    assert_int_equal(rpc_frame_end(&s->out, start), 0);
    s->body_at[1] = start + 4;

    start = s->out.len;
    assert_int_equal(rpc_response_error(&s->out, 9, RPC_E_NOT_LEADER, "not the leader",
                                        detail, sizeof detail), 0);
    s->body_at[2] = start + 4;

    assert_int_equal(rpc_notify_begin(&s->out, &pk, &start, "challenge", 3), 0);
    assert_int_equal(msgpack_pack_uint32(&pk, RPC_VERSION), 0);
    uint8_t nonce[RPC_NONCE_BYTES];
    memset(nonce, 0xab, sizeof nonce);
    assert_int_equal(rpc_pack_bin(&pk, nonce, sizeof nonce), 0);
    assert_int_equal(msgpack_pack_uint64(&pk, 1), 0);
    assert_int_equal(rpc_frame_end(&s->out, start), 0);
    s->body_at[3] = start + 4;

    for (int i = 0; i < 4; i++) {
        size_t end = i < 3 ? s->body_at[i + 1] - 4 : s->out.len;
        s->body_len[i] = end - s->body_at[i];
    }
}

/* Drain every complete frame, checking each against the samples. */
static void framer_drain_expect(struct rpc_framer *f, const struct sample_frames *s,
                                int *seen)
{
    const uint8_t *frame;
    size_t len;
    int rc;
    while ((rc = rpc_framer_next(f, &frame, &len)) == 1) {
        assert_true(*seen < 4);
        assert_int_equal(len, s->body_len[*seen]);
        assert_memory_equal(frame, s->out.data + s->body_at[*seen], len);
        (*seen)++;
    }
    assert_int_equal(rc, 0);
}

/* ---- framer ---- */

static void test_framer_returns_frames_split_at_every_byte_boundary(void **state)
{
    (void)state;
    struct sample_frames s;
    sample_frames_build(&s);
    for (size_t cut = 0; cut <= s.out.len; cut++) {
        struct rpc_framer f;
        int seen = 0;
        rpc_framer_init(&f, RPC_FRAME_MAX);
        assert_int_equal(rpc_framer_feed(&f, s.out.data, cut), 0);
        framer_drain_expect(&f, &s, &seen);
        assert_int_equal(rpc_framer_feed(&f, s.out.data + cut, s.out.len - cut), 0);
        framer_drain_expect(&f, &s, &seen);
        assert_int_equal(seen, 4);
        rpc_framer_free(&f);
    }
    proto_buf_free(&s.out);
}

static void test_framer_returns_frames_fed_byte_by_byte(void **state)
{
    (void)state;
    struct sample_frames s;
    struct rpc_framer f;
    int seen = 0;
    sample_frames_build(&s);
    rpc_framer_init(&f, RPC_FRAME_MAX);
    for (size_t i = 0; i < s.out.len; i++) {
        assert_int_equal(rpc_framer_feed(&f, s.out.data + i, 1), 0);
        framer_drain_expect(&f, &s, &seen);
    }
    assert_int_equal(seen, 4);
    rpc_framer_free(&f);
    proto_buf_free(&s.out);
}

static void test_framer_returns_many_frames_from_one_feed(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    struct proto_buf b;
    struct rpc_framer f;
    const uint8_t *frame;
    size_t len;
    proto_buf_init(&b);
    for (uint32_t i = 0; i < COUNT; i++) {
        msgpack_packer pk;
        size_t start;
        assert_int_equal(rpc_request_begin(&b, &pk, &start, i, "read", 1), 0);
        assert_int_equal(msgpack_pack_uint32(&pk, i), 0);
        assert_int_equal(rpc_frame_end(&b, start), 0);
    }
    rpc_framer_init(&f, RPC_FRAME_MAX);
    assert_int_equal(rpc_framer_feed(&f, b.data, b.len), 0);
    for (uint32_t i = 0; i < COUNT; i++) {
        struct rpc_msg m;
        assert_int_equal(rpc_framer_next(&f, &frame, &len), 1);
        assert_int_equal(rpc_msg_decode(frame, len, &m, NULL), 0);
        assert_int_equal(m.type, RPC_REQUEST);
        assert_int_equal(m.id, i);
    }
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 0);
    rpc_framer_free(&f);
    proto_buf_free(&b);
}

static void test_framer_refuses_a_length_above_its_cap(void **state)
{
    (void)state;
    struct rpc_framer f;
    const uint8_t *frame;
    size_t len;
    static const uint8_t at_cap[4] = {0, 0, 0, 100};
    static const uint8_t above_cap[4] = {0, 0, 0, 101};
    static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};

    rpc_framer_init(&f, 100);
    assert_int_equal(rpc_framer_feed(&f, at_cap, 4), 0);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 0);
    rpc_framer_free(&f);

    rpc_framer_init(&f, 100);
    assert_int_equal(rpc_framer_feed(&f, above_cap, 4), RPC_EFRAME);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), RPC_EFRAME);
    rpc_framer_free(&f);

    /* The prefix arriving in pieces is refused once it is whole. */
    rpc_framer_init(&f, RPC_FRAME_MAX);
    assert_int_equal(rpc_framer_feed(&f, huge, 3), 0);
    assert_int_equal(rpc_framer_feed(&f, huge + 3, 1), RPC_EFRAME);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), RPC_EFRAME);
    rpc_framer_free(&f);
}

static void test_framer_refuses_an_oversized_frame_after_good_ones(void **state)
{
    (void)state;
    struct rpc_framer f;
    const uint8_t *frame;
    size_t len;
    static const uint8_t bytes[] = {0, 0, 0, 1, 0xc0, 0, 0, 1, 0};
    rpc_framer_init(&f, 200);
    assert_int_equal(rpc_framer_feed(&f, bytes, sizeof bytes), 0);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 1);
    assert_int_equal(len, 1);
    assert_int_equal(frame[0], 0xc0);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), RPC_EFRAME);
    rpc_framer_free(&f);
}

static void test_framer_compacts_consumed_frames_at_the_next_feed(void **state)
{
    (void)state;
    struct rpc_framer f;
    const uint8_t *frame;
    size_t len;
    static const uint8_t first[] = {0, 0, 0, 2, 0x91, 0x01, 0, 0, 0, 3, 0x92};
    static const uint8_t rest[] = {0x01, 0x02};
    rpc_framer_init(&f, 64);
    assert_int_equal(rpc_framer_feed(&f, first, sizeof first), 0);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 1);
    assert_int_equal(len, 2);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 0);
    assert_int_equal(f.start, 6);
    assert_int_equal(rpc_framer_feed(&f, rest, sizeof rest), 0);
    /* The consumed frame is gone; the partial one moved to the front. */
    assert_int_equal(f.start, 0);
    assert_int_equal(f.len, 7);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(frame, "\x92\x01\x02", 3);
    assert_ptr_equal(frame, f.buf + 4);
    rpc_framer_free(&f);
}

static void test_framer_releases_a_large_buffer_once_drained(void **state)
{
    (void)state;
    struct rpc_framer f;
    const uint8_t *frame;
    size_t len;
    size_t body = 3u << 20;
    uint8_t *bytes = calloc(1, body + 4);
    assert_non_null(bytes);
    bytes[1] = (uint8_t)(body >> 16);
    rpc_framer_init(&f, RPC_FRAME_MAX);
    assert_int_equal(rpc_framer_feed(&f, bytes, body + 4), 0);
    assert_int_equal(rpc_framer_next(&f, &frame, &len), 1);
    assert_int_equal(len, body);
    assert_true(f.cap >= body);
    assert_int_equal(rpc_framer_feed(&f, bytes, 1), 0);
    assert_true(f.cap < body);
    assert_int_equal(f.len, 1);
    rpc_framer_free(&f);
    free(bytes);
}

/* ---- message decoding ---- */

static void test_msg_decode_reads_every_part_of_the_four_samples(void **state)
{
    (void)state;
    struct sample_frames s;
    struct rpc_msg m;
    struct proto_error err;
    sample_frames_build(&s);
    const uint8_t *body = (const uint8_t *)s.out.data;

    assert_int_equal(rpc_msg_decode(body + s.body_at[0], s.body_len[0], &m, &err), 0);
    assert_int_equal(m.type, RPC_REQUEST);
    assert_int_equal(m.id, 7);
    assert_true(proto_str_eq(m.method, "apply"));
    assert_int_equal(m.params_len, 7);
    assert_memory_equal(m.params, "\x91\xc4\x04\x93\x01\x02\x03", 7);

    assert_int_equal(rpc_msg_decode(body + s.body_at[1], s.body_len[1], &m, &err), 0);
    assert_int_equal(m.type, RPC_RESPONSE);
    assert_int_equal(m.id, 8);
    assert_false(m.is_error);
    assert_int_equal(m.result[0], 0x81);
    assert_int_equal(m.result_len, 1 + 10 + 1);

    assert_int_equal(rpc_msg_decode(body + s.body_at[2], s.body_len[2], &m, &err), 0);
    assert_int_equal(m.type, RPC_RESPONSE);
    assert_int_equal(m.id, 9);
    assert_true(m.is_error);
    assert_true(proto_str_eq(m.err_code, RPC_E_NOT_LEADER));
    assert_true(proto_str_eq(m.err_message, "not the leader"));
    assert_int_equal(m.err_detail_len, 17);
    assert_int_equal(m.err_detail[0], 0x92);
    assert_int_equal(m.result_len, 1);
    assert_int_equal(m.result[0], 0xc0);

    assert_int_equal(rpc_msg_decode(body + s.body_at[3], s.body_len[3], &m, &err), 0);
    assert_int_equal(m.type, RPC_NOTIFY);
    assert_true(proto_str_eq(m.method, "challenge"));
    assert_int_equal(m.params[0], 0x93);
    proto_buf_free(&s.out);
}

static void test_msg_decode_gives_a_nil_detail_when_none_is_sent(void **state)
{
    (void)state;
    struct proto_buf b;
    struct rpc_msg m;
    proto_buf_init(&b);
    assert_int_equal(rpc_response_error(&b, 1, RPC_E_UNAVAILABLE, "no quorum", NULL, 0), 0);
    assert_int_equal(rpc_msg_decode((const uint8_t *)b.data + 4, b.len - 4, &m, NULL), 0);
    assert_true(m.is_error);
    assert_int_equal(m.err_detail_len, 1);
    assert_int_equal(m.err_detail[0], 0xc0);
    proto_buf_free(&b);
}

static void test_msg_decode_fails_cleanly_on_every_truncation(void **state)
{
    (void)state;
    struct sample_frames s;
    sample_frames_build(&s);
    for (int i = 0; i < 4; i++) {
        const uint8_t *body = (const uint8_t *)s.out.data + s.body_at[i];
        for (size_t n = 0; n < s.body_len[i]; n++) {
            struct rpc_msg m;
            struct proto_error err;
            /* A copy of exactly n bytes, so ASan sees any read past it. */
            uint8_t *copy = malloc(n ? n : 1);
            assert_non_null(copy);
            memcpy(copy, body, n);
            assert_int_equal(rpc_msg_decode(copy, n, &m, &err), PROTO_EMALFORMED);
            assert_int_equal(err.code, PROTO_EMALFORMED);
            assert_true(err.message[0] != '\0');
            free(copy);
        }
    }
    proto_buf_free(&s.out);
}

static void test_msg_decode_refuses_trailing_bytes(void **state)
{
    (void)state;
    struct sample_frames s;
    struct rpc_msg m;
    struct proto_error err;
    sample_frames_build(&s);
    struct proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(proto_buf_append(&b, s.out.data + s.body_at[0], s.body_len[0]), 0);
    assert_int_equal(proto_buf_append(&b, "\xc0", 1), 0);
    assert_int_equal(rpc_msg_decode((const uint8_t *)b.data, b.len, &m, &err), PROTO_EMALFORMED);
    assert_non_null(strstr(err.message, "trailing"));
    proto_buf_free(&b);
    proto_buf_free(&s.out);
}

/* A malformed message and a word its error must contain. */
struct bad_case {
    const char *name;
    const char *bytes;
    size_t len;
    const char *expect;
};

#define BAD(n, b, e) {n, b, sizeof b - 1, e}

static const struct bad_case bad_cases[] = {
    BAD("not an array", "\x81\x00\x00", "envelope"),
    BAD("empty array", "\x90", "type"),
    BAD("type not an int", "\x94\xa1x\x01\xa1m\x90", "type"),
    BAD("unknown type", "\x94\x03\x01\xa1m\x90", "unknown type"),
    BAD("request of 3 items", "\x93\x00\x01\xa1m", "expected 4"),
    BAD("notify of 4 items", "\x94\x02\xa1m\x90\xc0", "expected 3"),
    BAD("negative msgid", "\x94\x00\xff\xa1m\x90", "msgid"),
    BAD("msgid above uint32", "\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa1m\x90", "msgid"),
    BAD("method an int", "\x94\x00\x01\x05\x90", "method"),
    BAD("method a bin", "\x94\x00\x01\xc4\x01m\x90", "method"),
    BAD("method of 33 bytes",
        "\x94\x00\x01\xd9\x21" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\x90", "method"),
    BAD("params a map", "\x94\x00\x01\xa1m\x80", "params"),
    BAD("params nil", "\x94\x00\x01\xa1m\xc0", "params"),
    BAD("params count bomb", "\x94\x00\x01\xa1m\xdd\xff\xff\xff\xff", "cannot fit"),
    BAD("envelope count bomb", "\xdd\xff\xff\xff\xff\x00", "cannot fit"),
    BAD("params nested too deep",
        "\x94\x00\x01\xa1m"
        "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
        "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0",
        "params"),
    BAD("error a string", "\x94\x01\x01\xa1x\xc0", "error"),
    BAD("error of 2 items", "\x94\x01\x01\x92\xa1x\xa1y\xc0", "expected 3"),
    BAD("error code an int", "\x94\x01\x01\x93\x01\xa1y\xc0\xc0", "error code"),
    BAD("error message nil", "\x94\x01\x01\x93\xa1x\xc0\xc0\xc0", "error message"),
    BAD("error count bomb", "\x94\x01\x01\xdd\xff\xff\xff\xff\xc0", "cannot fit"),
    BAD("result with an error", "\x94\x01\x01\x93\xa1x\xa1y\xc0\x01", "result"),
    BAD("result a count bomb", "\x94\x01\x01\xc0\xdd\xff\xff\xff\xff", "result"),
    BAD("result an invalid byte", "\x94\x01\x01\xc0\xc1", "result"),
    BAD("notify params a string", "\x93\x02\xa1m\xa1x", "params"),
};

static void test_msg_decode_refuses_wrong_shapes_and_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        struct rpc_msg m;
        struct proto_error err;
        uint8_t *copy = malloc(b->len);
        assert_non_null(copy);
        memcpy(copy, b->bytes, b->len);
        int rc = rpc_msg_decode(copy, b->len, &m, &err);
        if (rc != PROTO_EMALFORMED || strstr(err.message, b->expect) == NULL)
            fail_msg("%s: rc %d, message \"%s\", expected \"%s\"", b->name, rc, err.message,
                     b->expect);
        free(copy);
    }
}

static void test_msg_decode_accepts_a_method_at_its_limit(void **state)
{
    (void)state;
    struct wire w;
    struct rpc_msg m;
    char method[RPC_METHOD_MAX + 1];
    memset(method, 'm', RPC_METHOD_MAX);
    method[RPC_METHOD_MAX] = '\0';
    wire_init(&w);
    assert_int_equal(msgpack_pack_array(&w.pk, 3), 0);
    assert_int_equal(msgpack_pack_uint8(&w.pk, RPC_NOTIFY), 0);
    wire_str(&w, method);
    wire_raw(&w, "\x90", 1);
    assert_int_equal(rpc_msg_decode((const uint8_t *)w.b.data, w.b.len, &m, NULL), 0);
    assert_int_equal(m.method.len, RPC_METHOD_MAX);
    proto_buf_free(&w.b);
}

static void test_msg_decode_accepts_every_integer_width_for_msgid(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "\x94\x01\x05\xc0\xc0",
        "\x94\x01\xcc\x05\xc0\xc0",
        "\x94\x01\xcd\x00\x05\xc0\xc0",
        "\x94\x01\xce\x00\x00\x00\x05\xc0\xc0",
        "\x94\x01\xd0\x05\xc0\xc0",
    };
    static const size_t lens[] = {5, 6, 7, 9, 6};
    for (size_t i = 0; i < 5; i++) {
        struct rpc_msg m;
        assert_int_equal(rpc_msg_decode((const uint8_t *)forms[i], lens[i], &m, NULL), 0);
        assert_int_equal(m.id, 5);
    }
}

static void test_frame_end_refuses_a_body_above_the_frame_cap(void **state)
{
    (void)state;
    struct proto_buf b;
    msgpack_packer pk;
    size_t start;
    proto_buf_init(&b);
    assert_int_equal(proto_buf_append(&b, "keep", 4), 0);
    assert_int_equal(rpc_frame_begin(&b, &pk, &start), 0);
    assert_int_equal(start, 4);
    assert_int_equal(msgpack_pack_bin(&pk, RPC_FRAME_MAX), 0);
    char *big = calloc(1, RPC_FRAME_MAX);
    assert_non_null(big);
    assert_int_equal(msgpack_pack_bin_body(&pk, big, RPC_FRAME_MAX), 0);
    assert_int_equal(rpc_frame_end(&b, start), RPC_EFRAME);
    assert_int_equal(b.len, 4);
    free(big);
    proto_buf_free(&b);
}

static void test_frame_abort_drops_a_partial_frame(void **state)
{
    (void)state;
    struct proto_buf b;
    msgpack_packer pk;
    size_t start;
    proto_buf_init(&b);
    assert_int_equal(rpc_request_begin(&b, &pk, &start, 1, "status", 0), 0);
    assert_true(b.len > 4);
    rpc_frame_abort(&b, start);
    assert_int_equal(b.len, 0);
    proto_buf_free(&b);
}

/* ---- proof ---- */

static void nonce_sample(uint8_t nonce[RPC_NONCE_BYTES])
{
    for (int i = 0; i < RPC_NONCE_BYTES; i++)
        nonce[i] = (uint8_t)i;
}

static void test_proof_matches_an_independent_hmac_sha256(void **state)
{
    (void)state;
    /* python3: hmac.new(b"s3cret", bytes(range(32)) + b"gateway", sha256) */
    static const uint8_t want[RPC_PROOF_BYTES] = {
        0xf8, 0xf7, 0x21, 0x24, 0x68, 0xe7, 0x76, 0xd3, 0x8e, 0x7f, 0xac,
        0x1c, 0x0e, 0x00, 0x12, 0xe9, 0x3d, 0xfc, 0xa6, 0x56, 0x42, 0x71,
        0xae, 0x31, 0x09, 0xe1, 0x2d, 0x91, 0xe8, 0x81, 0xd0, 0xa3,
    };
    uint8_t nonce[RPC_NONCE_BYTES], proof[RPC_PROOF_BYTES];
    nonce_sample(nonce);
    rpc_proof("s3cret", nonce, "gateway", proof);
    assert_memory_equal(proof, want, RPC_PROOF_BYTES);
}

static void test_proof_matches_openssl_one_shot_hmac(void **state)
{
    (void)state;
    uint8_t nonce[RPC_NONCE_BYTES], proof[RPC_PROOF_BYTES], data[RPC_NONCE_BYTES + 5];
    uint8_t want[EVP_MAX_MD_SIZE];
    unsigned want_len = 0;
    memset(nonce, 0x5a, sizeof nonce);
    memcpy(data, nonce, RPC_NONCE_BYTES);
    memcpy(data + RPC_NONCE_BYTES, "admin", 5);
    const char *secret = "a much longer secret that is more than sixty-four bytes long, "
                         "so HMAC hashes the key first";
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), data, sizeof data, want,
                         &want_len));
    assert_int_equal(want_len, RPC_PROOF_BYTES);
    rpc_proof(secret, nonce, "admin", proof);
    assert_memory_equal(proof, want, RPC_PROOF_BYTES);
}

static void test_proof_depends_on_secret_nonce_and_role(void **state)
{
    (void)state;
    uint8_t nonce[RPC_NONCE_BYTES], a[RPC_PROOF_BYTES], b[RPC_PROOF_BYTES];
    nonce_sample(nonce);
    rpc_proof("s", nonce, "admin", a);
    rpc_proof("s", nonce, "reader", b);
    assert_false(rpc_proof_equal(a, b));
    rpc_proof("t", nonce, "admin", b);
    assert_false(rpc_proof_equal(a, b));
    nonce[31] ^= 1;
    rpc_proof("s", nonce, "admin", b);
    assert_false(rpc_proof_equal(a, b));
    nonce[31] ^= 1;
    rpc_proof("s", nonce, "admin", b);
    assert_true(rpc_proof_equal(a, b));
    b[RPC_PROOF_BYTES - 1] ^= 0x80;
    assert_false(rpc_proof_equal(a, b));
}

/* ---- auth files ---- */

/* Write `text` to a fresh temporary file; its path goes to `path`. */
static void auth_file_write(char path[64], const char *text)
{
    strcpy(path, "/tmp/purser-test-auth-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Load `text` as an auth file; returns rc, message in msg. */
static int auth_load_text(const char *text, struct rpc_auth *a, char *msg, size_t cap,
                          char path[64])
{
    auth_file_write(path, text);
    int rc = rpc_auth_load(path, a, msg, cap);
    unlink(path);
    return rc;
}

static void test_auth_load_reads_roles_comments_and_blank_lines(void **state)
{
    (void)state;
    struct rpc_auth a;
    char msg[256], path[64];
    const char *text = "# purser secrets\n"
                       "\n"
                       "admin   adm1n-secret\n"
                       "  gateway\tgw#secret   # a trailing comment\r\n"
                       "   \t\n"
                       "reader rd";
    assert_int_equal(auth_load_text(text, &a, msg, sizeof msg, path), 0);
    assert_string_equal(a.admin, "adm1n-secret");
    assert_string_equal(a.gateway, "gw#secret");
    assert_string_equal(a.reader, "rd");
    assert_string_equal(rpc_auth_secret(&a, "gateway"), "gw#secret");
    assert_string_equal(rpc_auth_secret(&a, "root"), "");
    assert_string_equal(rpc_auth_strongest(&a), "admin");
}

static void test_auth_strongest_falls_back_to_weaker_roles(void **state)
{
    (void)state;
    struct rpc_auth a;
    char msg[256], path[64];
    assert_int_equal(auth_load_text("reader r\n", &a, msg, sizeof msg, path), 0);
    assert_string_equal(rpc_auth_strongest(&a), "reader");
    assert_string_equal(rpc_auth_secret(&a, "admin"), "");
    assert_int_equal(auth_load_text("gateway g\nreader r\n", &a, msg, sizeof msg, path), 0);
    assert_string_equal(rpc_auth_strongest(&a), "gateway");
    assert_int_equal(auth_load_text("# nothing\n", &a, msg, sizeof msg, path), 0);
    assert_null(rpc_auth_strongest(&a));
}

/* The error names path:line and contains `expect`. */
static void auth_expect_error(const char *text, unsigned line, const char *expect)
{
    struct rpc_auth a;
    char msg[256], path[64], where[96];
    int rc = auth_load_text(text, &a, msg, sizeof msg, path);
    snprintf(where, sizeof where, "%s:%u:", path, line);
    if (rc != -1 || strstr(msg, where) == NULL || strstr(msg, expect) == NULL)
        fail_msg("rc %d, message \"%s\", expected \"%s\" and \"%s\"", rc, msg, where, expect);
    assert_string_equal(a.admin, "");
}

static void test_auth_load_refuses_an_unknown_role(void **state)
{
    (void)state;
    auth_expect_error("admin a\nroot r00t\n", 2, "unknown role \"root\"");
}

static void test_auth_load_refuses_a_role_without_secret(void **state)
{
    (void)state;
    auth_expect_error("# c\nadmin a\ngateway   # no secret\n", 3, "no secret");
}

static void test_auth_load_refuses_a_repeated_role(void **state)
{
    (void)state;
    auth_expect_error("admin a\nadmin b\n", 2, "twice");
}

static void test_auth_load_refuses_text_after_the_secret(void **state)
{
    (void)state;
    auth_expect_error("admin a b\n", 1, "after the secret");
}

static void test_auth_load_refuses_a_secret_over_its_limit(void **state)
{
    (void)state;
    char text[RPC_SECRET_MAX + 32];
    snprintf(text, sizeof text, "admin %0*d\n", RPC_SECRET_MAX + 1, 0);
    auth_expect_error(text, 1, "longer than");
    snprintf(text, sizeof text, "admin %0*d\n", RPC_SECRET_MAX, 0);
    struct rpc_auth a;
    char msg[256], path[64];
    assert_int_equal(auth_load_text(text, &a, msg, sizeof msg, path), 0);
    assert_int_equal(strlen(a.admin), RPC_SECRET_MAX);
}

static void test_auth_load_names_a_missing_file(void **state)
{
    (void)state;
    struct rpc_auth a;
    char msg[256];
    assert_int_equal(rpc_auth_load("/nonexistent/purser.auth", &a, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "/nonexistent/purser.auth"));
}

/* ---- addresses ---- */

static void test_addr_parse_accepts_numeric_ipv4_with_a_port(void **state)
{
    (void)state;
    char host[16];
    int port = 0;
    assert_int_equal(rpc_addr_parse("127.0.0.1:7001", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7001);
    assert_int_equal(rpc_addr_parse("255.255.255.255:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "255.255.255.255");
    assert_int_equal(port, 65535);
    assert_int_equal(rpc_addr_parse("0.0.0.0:1", host, sizeof host, &port), 0);
    assert_int_equal(port, 1);
}

static void test_addr_parse_refuses_everything_else(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999",
        "127.0.0.1:123456", "localhost:7001", "256.0.0.1:1", "1.2.3:4", "1.2.3.4.5:6",
        "01.2.3.4:5", "1.2.3.4:05", "1.2.3.4:+5", "1.2.3.4:-5", " 1.2.3.4:5", "1.2.3.4:5 ",
        "1.2.3.4:5x", "[::1]:7001", "1..3.4:5", "1.2.3.4::5", "1111.2.3.4:5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[16];
        int port;
        if (rpc_addr_parse(bad[i], host, sizeof host, &port) != -1)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
}

static void test_addr_parse_refuses_a_host_buffer_too_small(void **state)
{
    (void)state;
    char host[9];
    int port;
    assert_int_equal(rpc_addr_parse("10.0.0.10:1", host, sizeof host, &port), -1);
    assert_int_equal(rpc_addr_parse("10.0.0.1:1", host, sizeof host, &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framer_returns_frames_split_at_every_byte_boundary),
        cmocka_unit_test(test_framer_returns_frames_fed_byte_by_byte),
        cmocka_unit_test(test_framer_returns_many_frames_from_one_feed),
        cmocka_unit_test(test_framer_refuses_a_length_above_its_cap),
        cmocka_unit_test(test_framer_refuses_an_oversized_frame_after_good_ones),
        cmocka_unit_test(test_framer_compacts_consumed_frames_at_the_next_feed),
        cmocka_unit_test(test_framer_releases_a_large_buffer_once_drained),
        cmocka_unit_test(test_msg_decode_reads_every_part_of_the_four_samples),
        cmocka_unit_test(test_msg_decode_gives_a_nil_detail_when_none_is_sent),
        cmocka_unit_test(test_msg_decode_fails_cleanly_on_every_truncation),
        cmocka_unit_test(test_msg_decode_refuses_trailing_bytes),
        cmocka_unit_test(test_msg_decode_refuses_wrong_shapes_and_types),
        cmocka_unit_test(test_msg_decode_accepts_a_method_at_its_limit),
        cmocka_unit_test(test_msg_decode_accepts_every_integer_width_for_msgid),
        cmocka_unit_test(test_frame_end_refuses_a_body_above_the_frame_cap),
        cmocka_unit_test(test_frame_abort_drops_a_partial_frame),
        cmocka_unit_test(test_proof_matches_an_independent_hmac_sha256),
        cmocka_unit_test(test_proof_matches_openssl_one_shot_hmac),
        cmocka_unit_test(test_proof_depends_on_secret_nonce_and_role),
        cmocka_unit_test(test_auth_load_reads_roles_comments_and_blank_lines),
        cmocka_unit_test(test_auth_strongest_falls_back_to_weaker_roles),
        cmocka_unit_test(test_auth_load_refuses_an_unknown_role),
        cmocka_unit_test(test_auth_load_refuses_a_role_without_secret),
        cmocka_unit_test(test_auth_load_refuses_a_repeated_role),
        cmocka_unit_test(test_auth_load_refuses_text_after_the_secret),
        cmocka_unit_test(test_auth_load_refuses_a_secret_over_its_limit),
        cmocka_unit_test(test_auth_load_names_a_missing_file),
        cmocka_unit_test(test_addr_parse_accepts_numeric_ipv4_with_a_port),
        cmocka_unit_test(test_addr_parse_refuses_everything_else),
        cmocka_unit_test(test_addr_parse_refuses_a_host_buffer_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
