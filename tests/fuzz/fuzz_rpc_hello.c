/*
 * fuzz_rpc_hello.c — libFuzzer target for the params a purserd reads from a
 * connection: hello [version, role, proof] (the first request, before any
 * proof), apply [command as bin] and read [query, consistency, args...],
 * and the challenge [version, nonce, node_id] a client reads back.
 *
 * The input is decoded as an RPC message (rpc_msg_decode); a request is
 * dispatched on its method like server_request does, and anything else is
 * taken as a bare params array and fed to every walker.
 *
 *   hello      cluster/hello.c's hello_parse itself (what server_hello runs)
 *   apply      the shape check of methods.c's method_apply, then the real
 *              proto_cmd_decode; a decoded command must re-encode
 *   read       a mirror of methods.c's method_read / read_answer /
 *              read_report walk (those interleave ledger calls, so they are
 *              mirrored here, not called): the header method_read rebuilds
 *              must announce the count it read
 *   challenge  a mirror of proto/client.c's node_on_challenge check
 *
 * Oracles: views lie inside the input, statuses and roles are in range and
 * agree with each other, failures carry messages.  Any violation aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/hello.h"
#include "proto/mp.h"
#include "proto/proto.h"
#include "proto/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* methods.c's bound on report group keys (ledger.h's LEDGER_REPORT_GROUP_MAX). */
#define FUZZ_REPORT_GROUP_MAX 8

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "oracle violated: %s\n", what);
    abort();
}

static void view_check(const uint8_t *lo, const uint8_t *hi, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (n && (!b || b < lo || b + n > hi))
        fuzz_fail("a view lies outside the params");
}

static void fuzz_hello(const uint8_t *params, size_t len)
{
    struct mp_reader r;
    uint32_t count = 0;
    mp_reader_init(&r, params, len);
    if (mp_array_read(&r, &count) != MP_OK)
        return; /* server_request: "params must be an array" */
    struct hello_params h;
    int st = hello_parse(&r, count, &h);
    if (st < HELLO_OK || st > HELLO_UNKNOWN_ROLE)
        fuzz_fail("hello_parse returned an unknown status");
    if (st != HELLO_OK) {
        if (h.role != CONN_ROLE_NONE || h.has_proof)
            fuzz_fail("a refused hello carries a role or a proof");
        if (st != HELLO_BAD_REQUEST && count != 3)
            fuzz_fail("a hello of the wrong arity got past BAD_REQUEST");
        return;
    }
    if (count != 3 || h.version != RPC_VERSION)
        fuzz_fail("an accepted hello of the wrong arity or version");
    if (h.role < CONN_ROLE_READER || h.role > CONN_ROLE_ADMIN)
        fuzz_fail("an accepted hello without a known role");
    const char *name = hello_role_name(h.role);
    if (!name[0] || hello_role_parse(proto_str_c(name)) != h.role)
        fuzz_fail("role names do not round-trip");
    if (h.has_proof)
        view_check(params, params + len, h.proof, RPC_PROOF_BYTES);
    else if (h.proof)
        fuzz_fail("a proof pointer without has_proof");
}

static void fuzz_apply(const uint8_t *params, size_t len)
{
    struct mp_reader r;
    uint32_t count = 0;
    const uint8_t *p = NULL;
    uint32_t plen = 0;
    mp_reader_init(&r, params, len);
    if (mp_array_read(&r, &count) != MP_OK || count != 1 || mp_bin_read(&r, &p, &plen) != MP_OK)
        return; /* "apply takes [command as bin]" */
    view_check(params, params + len, p, plen);
    struct proto_cmd cmd;
    struct proto_error err;
    if (proto_cmd_decode(p, plen, &cmd, &err) != 0) {
        if (err.message[0] == '\0')
            fuzz_fail("a refused command without a message");
        return;
    }
    struct proto_buf out;
    proto_buf_init(&out);
    struct proto_cmd again;
    if (proto_cmd_encode(&out, &cmd) != 0 || proto_cmd_decode(out.data, out.len, &again, &err))
        fuzz_fail("a decoded command does not re-encode and decode");
    if (again.type != cmd.type)
        fuzz_fail("a re-encoded command changed type");
    proto_buf_free(&out);
}

/* read_report's walk: [kind, year, month, [keys], offset?] after the query
 * and consistency. */
static void fuzz_read_report(struct mp_reader *r, uint32_t count)
{
    char name[32];
    const char *s = NULL;
    uint32_t sl = 0, kc = 0;
    int64_t y = 0, m = 0;
    uint64_t offset = 0;
    char keys[FUZZ_REPORT_GROUP_MAX][PROTO_MAP_KEY_MAX + 1];
    bool is_bad = (count != 6 && count != 7) || mp_str_read(r, &s, &sl) != MP_OK ||
                  sl >= sizeof name || mp_int_read(r, &y) != MP_OK ||
                  mp_int_read(r, &m) != MP_OK || mp_array_read(r, &kc) != MP_OK ||
                  kc > FUZZ_REPORT_GROUP_MAX;
    if (!is_bad) {
        memcpy(name, s, sl);
        name[sl] = '\0';
    }
    for (uint32_t i = 0; !is_bad && i < kc; i++) {
        const char *k = NULL;
        uint32_t kl = 0;
        is_bad = mp_str_read(r, &k, &kl) != MP_OK || kl > PROTO_MAP_KEY_MAX;
        if (!is_bad) {
            memcpy(keys[i], k, kl);
            keys[i][kl] = '\0';
        }
    }
    if (!is_bad && count == 7)
        is_bad = mp_uint_read(r, &offset) != MP_OK;
    (void)is_bad;
}

/* read_answer's walk over the params method_read rebuilt. */
static void fuzz_read_answer(const uint8_t *params, size_t len)
{
    struct mp_reader r;
    uint32_t count = 0;
    const char *q = NULL, *cons = NULL;
    uint32_t ql = 0, cl = 0;
    mp_reader_init(&r, params, len);
    if (mp_array_read(&r, &count) != MP_OK || count < 2 || mp_str_read(&r, &q, &ql) != MP_OK ||
        mp_str_read(&r, &cons, &cl) != MP_OK)
        return;
    struct proto_str query = {q, ql};
    char arg[PROTO_NAME_MAX + 1];
    const char *s = NULL;
    const uint8_t *h = NULL;
    uint32_t sl = 0, hl = 0;
    uint64_t u = 0;
    int64_t y = 0, m = 0;
    if (proto_str_eq(query, "account") || proto_str_eq(query, "accounts") ||
        proto_str_eq(query, "price") || proto_str_eq(query, "breaker")) {
        if (count != 3 || mp_str_read(&r, &s, &sl) != MP_OK || sl > PROTO_NAME_MAX)
            return;
        memcpy(arg, s, sl);
        arg[sl] = '\0';
    } else if (proto_str_eq(query, "estimate")) {
        /* [workflow, model], copied into PROTO_TEXT_MAX / PROTO_MAP_VALUE_MAX buffers */
        char workflow[PROTO_TEXT_MAX + 1], model[PROTO_MAP_VALUE_MAX + 1];
        const char *mv = NULL;
        uint32_t ml = 0;
        if (count != 4 || mp_str_read(&r, &s, &sl) != MP_OK || sl > PROTO_TEXT_MAX ||
            mp_str_read(&r, &mv, &ml) != MP_OK || ml > PROTO_MAP_VALUE_MAX)
            return;
        view_check(params, params + len, (const uint8_t *)s, sl);
        view_check(params, params + len, (const uint8_t *)mv, ml);
        memcpy(workflow, s, sl);
        workflow[sl] = '\0';
        memcpy(model, mv, ml);
        model[ml] = '\0';
    } else if (proto_str_eq(query, "reservation") || proto_str_eq(query, "grant")) {
        if (count != 3 || mp_uint_read(&r, &u) != MP_OK)
            return;
    } else if (proto_str_eq(query, "key_by_hash")) {
        if (count != 3 || mp_bin_read(&r, &h, &hl) != MP_OK || hl != PROTO_HASH_BYTES)
            return;
        view_check(params, params + len, h, hl);
    } else if (proto_str_eq(query, "journal")) {
        if (count != 4 || mp_int_read(&r, &y) != MP_OK || mp_int_read(&r, &m) != MP_OK)
            return;
    } else if (proto_str_eq(query, "report")) {
        fuzz_read_report(&r, count);
    }
}

static void fuzz_read(const uint8_t *params, size_t len)
{
    struct mp_reader r;
    uint32_t count = 0;
    mp_reader_init(&r, params, len);
    if (mp_array_read(&r, &count) != MP_OK)
        return;
    /* method_read: peek query and consistency, then rebuild the params. */
    struct mp_reader peek = r;
    const char *q = NULL, *cons = NULL;
    uint32_t ql = 0, cl = 0;
    if (mp_str_read(&peek, &q, &ql) != MP_OK || mp_str_read(&peek, &cons, &cl) != MP_OK)
        return;
    struct proto_str consistency = {cons, cl};
    if (!proto_str_eq(consistency, "stale") && !proto_str_eq(consistency, "linear"))
        return;
    size_t body = (size_t)(r.end - r.pos);
    uint8_t head[MP_ARRAY_HEAD_MAX];
    size_t hl = mp_array_head(head, count);
    uint8_t *rebuilt = malloc(hl + body);
    if (!rebuilt)
        return;
    memcpy(rebuilt, head, hl);
    memcpy(rebuilt + hl, r.pos, body);
    struct mp_reader check;
    uint32_t count2 = 0;
    mp_reader_init(&check, rebuilt, hl + body);
    if (mp_array_read(&check, &count2) != MP_OK || count2 != count)
        fuzz_fail("the rebuilt read params announce another count");
    fuzz_read_answer(rebuilt, hl + body);
    free(rebuilt);
}

static void fuzz_challenge(const uint8_t *params, size_t len)
{
    struct mp_reader r;
    uint32_t count;
    uint64_t version, node_id;
    const uint8_t *nonce;
    uint32_t nonce_len;
    mp_reader_init(&r, params, len);
    if (mp_array_read(&r, &count) != MP_OK || count != 3 ||
        mp_uint_read(&r, &version) != MP_OK || mp_bin_read(&r, &nonce, &nonce_len) != MP_OK ||
        nonce_len != RPC_NONCE_BYTES || mp_uint_read(&r, &node_id) != MP_OK)
        return;
    view_check(params, params + len, nonce, nonce_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_msg m;
    struct proto_error err;
    if (rpc_msg_decode(data, size, &m, &err) == 0 &&
        (m.type == RPC_REQUEST || m.type == RPC_NOTIFY)) {
        view_check(data, data + size, m.params, m.params_len);
        if (proto_str_eq(m.method, "hello"))
            fuzz_hello(m.params, m.params_len);
        else if (proto_str_eq(m.method, "apply"))
            fuzz_apply(m.params, m.params_len);
        else if (proto_str_eq(m.method, "read"))
            fuzz_read(m.params, m.params_len);
        else if (proto_str_eq(m.method, "challenge"))
            fuzz_challenge(m.params, m.params_len);
        return 0;
    }
    fuzz_hello(data, size);
    fuzz_apply(data, size);
    fuzz_read(data, size);
    fuzz_challenge(data, size);
    return 0;
}
