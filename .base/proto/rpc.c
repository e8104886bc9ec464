/*
 * rpc.c — msgpack-RPC framing, message decoding and building, the hello
 * proof, auth files and addresses (rpc.h is the interface, docs/rpc.md the
 * protocol).
 *
 * The framer keeps one growable buffer: bytes are appended at `len`, frames
 * are handed out from `start` as views into the buffer, and the consumed
 * prefix is dropped (the rest moved to the front) at the next feed, which is
 * why a frame stays valid only until then.  Announced lengths are checked
 * against the cap before any byte of the body is buffered for it, so a
 * hostile 4-byte prefix costs nothing.
 *
 * Decoding goes through mp.c (zero-copy, strict, allocation-free): the shape
 * of the envelope is checked exactly, and mp_value_skip finds the extent of
 * the opaque parts (params, result, error detail), which the caller decodes
 * later with its own schema.
 */
#include "proto/rpc.h"
#include "proto/mp.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>

/* Deepest nesting accepted inside params, results and error details. */
#define RPC_DEPTH_MAX 32
/* Bytes in an error code on the wire ("UNAVAILABLE"). */
#define RPC_CODE_MAX 32
/* Once a framer's buffer has grown past this, it is released when empty. */
#define RPC_FRAMER_KEEP_MAX (1u << 20)
/* Bytes in one line of an auth file. */
#define RPC_AUTH_LINE_MAX 1024


/* ---- framer ---- */

static uint32_t be32_load(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void rpc_framer_init(struct rpc_framer *f, size_t max)
{
    assert(max <= UINT32_MAX);
    f->buf = NULL;
    f->len = 0;
    f->cap = 0;
    f->start = 0;
    f->max = max;
}

void rpc_framer_free(struct rpc_framer *f)
{
    free(f->buf);
    rpc_framer_init(f, f->max);
}

/* Drop the bytes already handed out as frames. */
static void framer_compact(struct rpc_framer *f)
{
    assert(f->start <= f->len);
    if (f->start == 0)
        return;
    memmove(f->buf, f->buf + f->start, f->len - f->start);
    f->len -= f->start;
    f->start = 0;
    if (f->len == 0 && f->cap > RPC_FRAMER_KEEP_MAX) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
}

/* Is the frame at `start` announcing more than `max` bytes? */
static bool framer_head_is_oversized(const struct rpc_framer *f)
{
    return f->len - f->start >= 4 && be32_load(f->buf + f->start) > f->max;
}

int rpc_framer_feed(struct rpc_framer *f, const void *data, size_t len)
{
    framer_compact(f);
    if (framer_head_is_oversized(f))
        return RPC_EFRAME;
    if (len == 0)
        return 0;
    if (len > SIZE_MAX / 2 - f->len)
        return RPC_ENOMEM;
    size_t need = f->len + len;
    if (need > f->cap) {
        size_t cap = f->cap < 4096 ? 4096 : f->cap;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(f->buf, cap);
        if (p == NULL)
            return RPC_ENOMEM;
        f->buf = p;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, len);
    f->len = need;
    return framer_head_is_oversized(f) ? RPC_EFRAME : 0;
}

int rpc_framer_next(struct rpc_framer *f, const uint8_t **frame, size_t *len)
{
    assert(f->start <= f->len);
    size_t held = f->len - f->start;
    if (held < 4)
        return 0;
    uint32_t n = be32_load(f->buf + f->start);
    if (n > f->max)
        return RPC_EFRAME;
    if (held - 4 < n)
        return 0;
    *frame = f->buf + f->start + 4;
    *len = n;
    f->start += 4 + (size_t)n;
    assert(f->start <= f->len);
    return 1;
}

/* ---- message decoding ---- */

__attribute__((format(printf, 2, 3)))
static int msg_fail(struct proto_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = PROTO_EMALFORMED;
    return PROTO_EMALFORMED;
}

/* An mp.c failure while reading `what` (expected to be `expected`). */
static int msg_mp_fail(struct proto_error *err, struct mp_reader *r, int rc, const char *what,
                       const char *expected)
{
    if (rc == MP_ETYPE)
        return msg_fail(err, "message: %s: expected %s, got %s", what, expected,
                        mp_type_name(r));
    if (rc == MP_ETRUNC)
        return msg_fail(err, "message: %s: truncated %s", what, expected);
    return msg_fail(err, "message: %s: %s", what, mp_strerror(rc));
}

static int msg_uint32(struct mp_reader *r, struct proto_error *err, const char *what,
                      uint32_t *out)
{
    uint64_t v;
    int rc = mp_uint_read(r, &v);
    if (rc != MP_OK)
        return msg_mp_fail(err, r, rc, what, "an unsigned integer");
    if (v > UINT32_MAX)
        return msg_fail(err, "message: %s: %" PRIu64 " exceeds %" PRIu32, what, v,
                        UINT32_MAX);
    *out = (uint32_t)v;
    return 0;
}

static int msg_str(struct mp_reader *r, struct proto_error *err, const char *what,
                   uint32_t len_max, struct proto_str *out)
{
    int rc = mp_str_read(r, &out->ptr, &out->len);
    if (rc != MP_OK)
        return msg_mp_fail(err, r, rc, what, "a string");
    if (out->len > len_max)
        return msg_fail(err, "message: %s: string of %" PRIu32 " bytes exceeds %" PRIu32,
                        what, out->len, len_max);
    return 0;
}

/* Skip one value of any type, reporting where it lies. */
static int msg_value(struct mp_reader *r, struct proto_error *err, const char *what,
                     const uint8_t **ptr, size_t *len)
{
    const uint8_t *at = r->pos;
    int rc = mp_value_skip(r, RPC_DEPTH_MAX);
    if (rc != MP_OK)
        return msg_mp_fail(err, r, rc, what, "a value");
    *ptr = at;
    *len = (size_t)(r->pos - at);
    return 0;
}

/* An array value (params), kept raw. */
static int msg_array_value(struct mp_reader *r, struct proto_error *err, const char *what,
                           const uint8_t **ptr, size_t *len)
{
    struct mp_reader peek = *r;
    uint32_t count;
    int rc = mp_array_read(&peek, &count);
    if (rc == MP_ECOUNT)
        return msg_fail(err, "message: %s: array of %" PRIu32 " items cannot fit in the "
                        "%zu bytes left", what, count, mp_reader_left(r));
    if (rc != MP_OK)
        return msg_mp_fail(err, r, rc, what, "an array");
    return msg_value(r, err, what, ptr, len);
}

/* The error part of a response: nil, or [code, message, detail]. */
static int msg_error(struct mp_reader *r, struct proto_error *err, struct rpc_msg *m)
{
    if (mp_nil_peek(r)) {
        int rc = mp_nil_read(r);
        assert(rc == MP_OK);
        (void)rc;
        return 0;
    }
    uint32_t count;
    int rc = mp_array_read(r, &count);
    if (rc == MP_ECOUNT)
        return msg_fail(err, "message: error: array of %" PRIu32 " items cannot fit in "
                        "the %zu bytes left", count, mp_reader_left(r));
    if (rc != MP_OK)
        return msg_mp_fail(err, r, rc, "error", "nil or an array");
    if (count != 3)
        return msg_fail(err, "message: error: array of %" PRIu32 " items, expected 3 "
                        "(code, message, detail)", count);
    m->is_error = true;
    rc = msg_str(r, err, "error code", RPC_CODE_MAX, &m->err_code);
    if (rc == 0)
        rc = msg_str(r, err, "error message", UINT32_MAX, &m->err_message);
    if (rc == 0)
        rc = msg_value(r, err, "error detail", &m->err_detail, &m->err_detail_len);
    return rc;
}

static int msg_decode_request(struct mp_reader *r, struct proto_error *err, struct rpc_msg *m)
{
    int rc = msg_uint32(r, err, "msgid", &m->id);
    if (rc == 0)
        rc = msg_str(r, err, "method", RPC_METHOD_MAX, &m->method);
    if (rc == 0)
        rc = msg_array_value(r, err, "params", &m->params, &m->params_len);
    return rc;
}

static int msg_decode_response(struct mp_reader *r, struct proto_error *err, struct rpc_msg *m)
{
    int rc = msg_uint32(r, err, "msgid", &m->id);
    if (rc == 0)
        rc = msg_error(r, err, m);
    if (rc != 0)
        return rc;
    if (m->is_error && !mp_nil_peek(r))
        return msg_fail(err, "message: result: expected nil with an error, got %s",
                        mp_type_name(r));
    return msg_value(r, err, "result", &m->result, &m->result_len);
}

static int msg_decode_notify(struct mp_reader *r, struct proto_error *err, struct rpc_msg *m)
{
    int rc = msg_str(r, err, "method", RPC_METHOD_MAX, &m->method);
    if (rc == 0)
        rc = msg_array_value(r, err, "params", &m->params, &m->params_len);
    return rc;
}

int rpc_msg_decode(const uint8_t *body, size_t len, struct rpc_msg *m, struct proto_error *err)
{
    struct proto_error scratch;
    struct mp_reader r;
    uint32_t count;
    uint64_t type;
    if (err == NULL)
        err = &scratch;
    memset(m, 0, sizeof *m);
    err->code = 0;
    err->message[0] = '\0';
    mp_reader_init(&r, body, len);

    int rc = mp_array_read(&r, &count);
    if (rc == MP_ECOUNT)
        return msg_fail(err, "message: array of %" PRIu32 " items cannot fit in the %zu "
                        "bytes left", count, mp_reader_left(&r));
    if (rc != MP_OK)
        return msg_mp_fail(err, &r, rc, "envelope", "an array");
    rc = mp_uint_read(&r, &type);
    if (rc != MP_OK)
        return msg_mp_fail(err, &r, rc, "type", "an unsigned integer");
    uint32_t want = type == RPC_NOTIFY ? 3 : 4;
    if (type > RPC_NOTIFY)
        return msg_fail(err, "message: unknown type %" PRIu64 " (0 request, 1 response, "
                        "2 notification)", type);
    if (count != want)
        return msg_fail(err, "message: type %" PRIu64 " has %" PRIu32 " items, expected %"
                        PRIu32, type, count, want);
    m->type = (int)type;
    if (type == RPC_REQUEST)
        rc = msg_decode_request(&r, err, m);
    else if (type == RPC_RESPONSE)
        rc = msg_decode_response(&r, err, m);
    else
        rc = msg_decode_notify(&r, err, m);
    if (rc != 0)
        return rc;
    if (mp_reader_left(&r) != 0)
        return msg_fail(err, "message: %zu trailing bytes", mp_reader_left(&r));
    return 0;
}

/* ---- building frames ---- */

static int buf_write_cb(void *data, const char *bytes, size_t len)
{
    return proto_buf_append(data, bytes, len) == 0 ? 0 : -1;
}

int rpc_frame_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start)
{
    static const uint8_t zero[4];
    *start = out->len;
    msgpack_packer_init(pk, out, buf_write_cb);
    return proto_buf_append(out, zero, sizeof zero) == 0 ? 0 : RPC_ENOMEM;
}

int rpc_frame_end(struct proto_buf *out, size_t start)
{
    assert(start + 4 <= out->len);
    size_t body = out->len - start - 4;
    if (body > RPC_FRAME_MAX) {
        out->len = start;
        return RPC_EFRAME;
    }
    be32_store((uint8_t *)out->data + start, (uint32_t)body);
    return 0;
}

void rpc_frame_abort(struct proto_buf *out, size_t start)
{
    assert(start <= out->len);
    out->len = start;
}

int rpc_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT32_MAX)
        return RPC_EFRAME;
    if (msgpack_pack_str(pk, n) != 0 || msgpack_pack_str_body(pk, s, n) != 0)
        return RPC_ENOMEM;
    return 0;
}

int rpc_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return RPC_EFRAME;
    if (msgpack_pack_bin(pk, n) != 0 || msgpack_pack_bin_body(pk, p, n) != 0)
        return RPC_ENOMEM;
    return 0;
}

/* A helper's packing failed: take the partial frame back out. */
static int frame_fail(struct proto_buf *out, size_t start)
{
    rpc_frame_abort(out, start);
    return RPC_ENOMEM;
}

int rpc_request_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start, uint32_t id,
                      const char *method, uint32_t param_count)
{
    assert(strlen(method) <= RPC_METHOD_MAX);
    int rc = rpc_frame_begin(out, pk, start);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(pk, 4) != 0 || msgpack_pack_uint8(pk, RPC_REQUEST) != 0 ||
        msgpack_pack_uint32(pk, id) != 0 || rpc_pack_str(pk, method) != 0 ||
        msgpack_pack_array(pk, param_count) != 0)
        return frame_fail(out, *start);
    return 0;
}

int rpc_response_ok_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start, uint32_t id)
{
    int rc = rpc_frame_begin(out, pk, start);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(pk, 4) != 0 || msgpack_pack_uint8(pk, RPC_RESPONSE) != 0 ||
        msgpack_pack_uint32(pk, id) != 0 || msgpack_pack_nil(pk) != 0)
        return frame_fail(out, *start);
    return 0;
}

int rpc_response_error(struct proto_buf *out, uint32_t id, const char *code,
                       const char *message, const void *detail, size_t detail_len)
{
    static const uint8_t nil = 0xc0;
    msgpack_packer pk;
    size_t start;
    assert(strlen(code) <= RPC_CODE_MAX);
    if (detail == NULL || detail_len == 0) {
        detail = &nil;
        detail_len = 1;
    }
    int rc = rpc_frame_begin(out, &pk, &start);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_uint8(&pk, RPC_RESPONSE) != 0 ||
        msgpack_pack_uint32(&pk, id) != 0 || msgpack_pack_array(&pk, 3) != 0 ||
        rpc_pack_str(&pk, code) != 0 || rpc_pack_str(&pk, message) != 0 ||
        proto_buf_append(out, detail, detail_len) != 0 || msgpack_pack_nil(&pk) != 0)
        return frame_fail(out, start);
    return rpc_frame_end(out, start);
}

int rpc_notify_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start,
                     const char *method, uint32_t param_count)
{
    assert(strlen(method) <= RPC_METHOD_MAX);
    int rc = rpc_frame_begin(out, pk, start);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(pk, 3) != 0 || msgpack_pack_uint8(pk, RPC_NOTIFY) != 0 ||
        rpc_pack_str(pk, method) != 0 || msgpack_pack_array(pk, param_count) != 0)
        return frame_fail(out, *start);
    return 0;
}

/* ---- the hello proof ---- */

static int proof_compute(const char *secret, const uint8_t nonce[RPC_NONCE_BYTES],
                         const char *role, uint8_t out[RPC_PROOF_BYTES])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t out_len = 0;
    int ok = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx != NULL)
        ok = EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
             EVP_MAC_update(ctx, nonce, RPC_NONCE_BYTES) &&
             EVP_MAC_update(ctx, (const unsigned char *)role, strlen(role)) &&
             EVP_MAC_final(ctx, out, &out_len, RPC_PROOF_BYTES) && out_len == RPC_PROOF_BYTES;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

void rpc_proof(const char *secret, const uint8_t nonce[RPC_NONCE_BYTES], const char *role,
               uint8_t out[RPC_PROOF_BYTES])
{
    if (proof_compute(secret, nonce, role, out) == 0)
        return;
    /* OpenSSL failed (out of memory): make the proof unguessable rather
     * than a constant, so that the two sides failing alike never match. */
    if (getrandom(out, RPC_PROOF_BYTES, 0) != RPC_PROOF_BYTES)
        abort();
}

bool rpc_proof_equal(const uint8_t a[RPC_PROOF_BYTES], const uint8_t b[RPC_PROOF_BYTES])
{
    return CRYPTO_memcmp(a, b, RPC_PROOF_BYTES) == 0;
}

/* ---- auth files ---- */

static const char *const auth_roles[] = {"admin", "gateway", "reader"};
#define AUTH_ROLE_COUNT (sizeof auth_roles / sizeof auth_roles[0])

static char *auth_slot(struct rpc_auth *a, size_t role)
{
    char *slots[AUTH_ROLE_COUNT] = {a->admin, a->gateway, a->reader};
    return slots[role];
}

static const char *auth_slot_const(const struct rpc_auth *a, size_t role)
{
    const char *slots[AUTH_ROLE_COUNT] = {a->admin, a->gateway, a->reader};
    return slots[role];
}

static int auth_role_find(const char *role)
{
    for (size_t i = 0; i < AUTH_ROLE_COUNT; i++) {
        if (strcmp(role, auth_roles[i]) == 0)
            return (int)i;
    }
    return -1;
}

static bool auth_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The next whitespace-separated token of *p, NUL-terminated in place; NULL
 * at the end of the line or at a '#' that starts a comment. */
static char *auth_token_next(char **p)
{
    char *s = *p;
    while (auth_is_space(*s))
        s++;
    if (*s == '\0' || *s == '#') {
        *p = s;
        return NULL;
    }
    char *tok = s;
    while (*s != '\0' && !auth_is_space(*s))
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *p = s;
    return tok;
}

__attribute__((format(printf, 3, 4)))
static int auth_fail(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cap > 0)
        vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* One line: empty, a comment, or "ROLE SECRET". */
static int auth_line_parse(char *line, struct rpc_auth *out, bool seen[AUTH_ROLE_COUNT],
                           const char *path, unsigned lineno, char *msg, size_t cap)
{
    char *p = line;
    char *role = auth_token_next(&p);
    if (role == NULL)
        return 0;
    int r = auth_role_find(role);
    if (r < 0)
        return auth_fail(msg, cap, "%s:%u: unknown role \"%.32s\" (expected admin, "
                         "gateway or reader)", path, lineno, role);
    char *secret = auth_token_next(&p);
    if (secret == NULL)
        return auth_fail(msg, cap, "%s:%u: role %s has no secret", path, lineno, role);
    if (strlen(secret) > RPC_SECRET_MAX)
        return auth_fail(msg, cap, "%s:%u: secret of %s is longer than %d bytes", path,
                         lineno, role, RPC_SECRET_MAX);
    if (auth_token_next(&p) != NULL)
        return auth_fail(msg, cap, "%s:%u: unexpected text after the secret of %s",
                         path, lineno, role);
    if (seen[r])
        return auth_fail(msg, cap, "%s:%u: role %s is given twice", path, lineno, role);
    seen[r] = true;
    strcpy(auth_slot(out, (size_t)r), secret);
    return 0;
}

int rpc_auth_load(const char *path, struct rpc_auth *out, char *msg, size_t cap)
{
    bool seen[AUTH_ROLE_COUNT] = {false};
    unsigned lineno = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    int rc = 0;
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return auth_fail(msg, cap, "%s: %s", path, strerror(errno));
    while (rc == 0 && (n = getline(&line, &line_cap, fp)) >= 0) {
        lineno++;
        if (n > RPC_AUTH_LINE_MAX + 1)
            rc = auth_fail(msg, cap, "%s:%u: line longer than %d bytes", path, lineno,
                           RPC_AUTH_LINE_MAX);
        else if (memchr(line, '\0', (size_t)n) != NULL)
            rc = auth_fail(msg, cap, "%s:%u: NUL byte in the line", path, lineno);
        else
            rc = auth_line_parse(line, out, seen, path, lineno, msg, cap);
    }
    if (rc == 0 && ferror(fp))
        rc = auth_fail(msg, cap, "%s: read error", path);
    free(line);
    fclose(fp);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

const char *rpc_auth_secret(const struct rpc_auth *a, const char *role)
{
    int r = auth_role_find(role);
    if (r < 0)
        return "";
    return auth_slot_const(a, (size_t)r);
}

const char *rpc_auth_strongest(const struct rpc_auth *a)
{
    for (size_t i = 0; i < AUTH_ROLE_COUNT; i++) {
        if (auth_slot_const(a, i)[0] != '\0')
            return auth_roles[i];
    }
    return NULL;
}

/* ---- addresses ---- */

/* 1..max_digits decimal digits at *p, no leading zero; advances *p. */
static int addr_number(const char **p, int max_digits, long *out)
{
    const char *s = *p;
    int n = 0;
    long v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == max_digits)
            return -1;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0'))
        return -1;
    *p = s + n;
    *out = v;
    return 0;
}

int rpc_addr_parse(const char *s, char *host, size_t host_cap, int *port)
{
    const char *p = s;
    long v;
    for (int i = 0; i < 4; i++) {
        if (addr_number(&p, 3, &v) != 0 || v > 255)
            return -1;
        if (*p != (i < 3 ? '.' : ':'))
            return -1;
        p++;
    }
    size_t host_len = (size_t)(p - 1 - s);
    if (addr_number(&p, 5, &v) != 0 || v < 1 || v > 65535 || *p != '\0')
        return -1;
    if (host_len + 1 > host_cap)
        return -1;
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    *port = (int)v;
    return 0;
}
