/*
 * test_client.c — the libuv client (proto/client.h) against tiny fake
 * servers on 127.0.0.1, run on the test's own loop: the handshake
 * (challenge → hello with proof), answers matched out of order, NOT_LEADER
 * redirects to a node the client did not know, retries that carry the same
 * idempotency key, connection loss, deadlines, the in-flight cap, closing
 * from a callback, and the synchronous wrapper (fake server on a thread).
 *
 * The fakes speak just enough of docs/rpc.md to drive the client; the real
 * server is exercised by the integration tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "proto/client.h"
#include "proto/mp.h"
#include "proto/rpc.h"

/* ---- fake server ---- */

enum fake_mode {
    FAKE_ECHO,             /* answer ok with the params as the result */
    FAKE_HOLD_FIRST,       /* hold the first request, answer it after the second */
    FAKE_NOT_LEADER,       /* NOT_LEADER [redirect_id, redirect_addr] */
    FAKE_APPLY,            /* apply: record its key, answer a result; else echo */
    FAKE_APPLY_DROP_FIRST, /* as FAKE_APPLY, but never answer the first */
    FAKE_SILENT,           /* record, never answer */
    FAKE_CLOSE_FIRST,      /* drop the connection at the first request, then echo */
    FAKE_FORBIDDEN,        /* answer FORBIDDEN */
    FAKE_UNAVAILABLE_FIRST, /* UNAVAILABLE once, then echo */
};

#define FAKE_KEYS_MAX 16
#define FAKE_CONNS_MAX 8

struct fake_conn;

struct fake_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool is_listening;
    char addr[32];
    uint64_t node_id;
    const char *secret;      /* NULL: accept a nil proof */
    uint64_t hello_leader_id;
    char hello_leader_rpc[32];
    enum fake_mode mode;
    uint64_t redirect_id;
    char redirect_addr[32];
    /* what it saw */
    int hello_ok_count;
    int hello_refused_count;
    char hello_role[16];
    int request_count;
    int answered_count;
    int read_count;
    int max_unanswered;
    char keys[FAKE_KEYS_MAX][PROTO_KEY_MAX + 1];
    int key_count;
    struct fake_conn *conns[FAKE_CONNS_MAX];
};

struct fake_conn {
    struct fake_server *s;
    uv_tcp_t tcp;
    struct rpc_framer framer;
    uint8_t nonce[RPC_NONCE_BYTES];
    bool is_authed;
    bool is_closing;
    bool has_held;
    uint32_t held_id;
    struct proto_buf held_result;
};

struct fake_write {
    uv_write_t req;
    size_t len;
    char data[];
};

static void fake_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void fake_send(struct fake_conn *fc, const struct proto_buf *b)
{
    if (fc->is_closing || b->len == 0)
        return;
    struct fake_write *w = malloc(sizeof *w + b->len);
    assert_non_null(w);
    memcpy(w->data, b->data, b->len);
    w->len = b->len;
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&fc->tcp, &buf, 1, fake_write_cb), 0);
}

static void fake_answer_raw(struct fake_conn *fc, uint32_t id, const void *result, size_t len)
{
    struct proto_buf b;
    msgpack_packer pk;
    size_t start;
    proto_buf_init(&b);
    assert_int_equal(rpc_response_ok_begin(&b, &pk, &start, id), 0);
    assert_int_equal(proto_buf_append(&b, result, len), 0);
    assert_int_equal(rpc_frame_end(&b, start), 0);
    fake_send(fc, &b);
    proto_buf_free(&b);
    fc->s->answered_count++;
}

static void fake_answer_error(struct fake_conn *fc, uint32_t id, const char *code,
                              const char *message, const void *detail, size_t detail_len)
{
    struct proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(rpc_response_error(&b, id, code, message, detail, detail_len), 0);
    fake_send(fc, &b);
    proto_buf_free(&b);
    fc->s->answered_count++;
}

static void fake_conn_close_cb(uv_handle_t *h)
{
    struct fake_conn *fc = h->data;
    rpc_framer_free(&fc->framer);
    proto_buf_free(&fc->held_result);
    free(fc);
}

static void fake_conn_close(struct fake_conn *fc)
{
    if (fc->is_closing)
        return;
    fc->is_closing = true;
    for (int i = 0; i < FAKE_CONNS_MAX; i++) {
        if (fc->s->conns[i] == fc)
            fc->s->conns[i] = NULL;
    }
    uv_close((uv_handle_t *)&fc->tcp, fake_conn_close_cb);
}

static void fake_on_hello(struct fake_conn *fc, const struct rpc_msg *m)
{
    struct fake_server *s = fc->s;
    struct mp_reader r;
    uint32_t count;
    uint64_t version;
    struct proto_str role;
    const uint8_t *proof = NULL;
    uint32_t proof_len = 0;
    mp_reader_init(&r, m->params, m->params_len);
    assert_int_equal(mp_array_read(&r, &count), MP_OK);
    assert_int_equal(count, 3);
    assert_int_equal(mp_uint_read(&r, &version), MP_OK);
    assert_int_equal(version, RPC_VERSION);
    assert_int_equal(mp_str_read(&r, &role.ptr, &role.len), MP_OK);
    assert_true(role.len < sizeof s->hello_role);
    memcpy(s->hello_role, role.ptr, role.len);
    s->hello_role[role.len] = '\0';
    if (mp_nil_peek(&r))
        assert_int_equal(mp_nil_read(&r), MP_OK);
    else
        assert_int_equal(mp_bin_read(&r, &proof, &proof_len), MP_OK);

    bool is_ok = true;
    if (s->secret != NULL) {
        uint8_t want[RPC_PROOF_BYTES];
        rpc_proof(s->secret, fc->nonce, s->hello_role, want);
        is_ok = proof != NULL && proof_len == RPC_PROOF_BYTES && rpc_proof_equal(proof, want);
    }
    if (!is_ok) {
        s->hello_refused_count++;
        fake_answer_error(fc, m->id, RPC_E_UNAUTHORIZED, "bad proof", NULL, 0);
        return;
    }
    s->hello_ok_count++;
    fc->is_authed = true;

    struct proto_buf b;
    msgpack_packer pk;
    size_t start;
    proto_buf_init(&b);
    assert_int_equal(rpc_response_ok_begin(&b, &pk, &start, m->id), 0);
    assert_int_equal(msgpack_pack_map(&pk, 3), 0);
    assert_int_equal(rpc_pack_str(&pk, "node_id"), 0);
    assert_int_equal(msgpack_pack_uint64(&pk, s->node_id), 0);
    assert_int_equal(rpc_pack_str(&pk, "leader_id"), 0);
    assert_int_equal(msgpack_pack_uint64(&pk, s->hello_leader_id), 0);
    assert_int_equal(rpc_pack_str(&pk, "leader_rpc"), 0);
    assert_int_equal(rpc_pack_str(&pk, s->hello_leader_rpc), 0);
    assert_int_equal(rpc_frame_end(&b, start), 0);
    fake_send(fc, &b);
    proto_buf_free(&b);
}

/* The key of an apply's command, recorded; false when it is no apply. */
static bool fake_apply_record(struct fake_conn *fc, const struct rpc_msg *m)
{
    struct fake_server *s = fc->s;
    struct mp_reader r;
    uint32_t count, len;
    const uint8_t *bin;
    struct proto_cmd cmd;
    if (!proto_str_eq(m->method, "apply"))
        return false;
    mp_reader_init(&r, m->params, m->params_len);
    assert_int_equal(mp_array_read(&r, &count), MP_OK);
    assert_int_equal(count, 1);
    assert_int_equal(mp_bin_read(&r, &bin, &len), MP_OK);
    assert_int_equal(proto_cmd_decode(bin, len, &cmd, NULL), 0);
    assert_true(s->key_count < FAKE_KEYS_MAX);
    memcpy(s->keys[s->key_count], cmd.key.ptr, cmd.key.len);
    s->keys[s->key_count][cmd.key.len] = '\0';
    s->key_count++;
    return true;
}

static void fake_answer_apply(struct fake_conn *fc, uint32_t id)
{
    struct proto_result res;
    struct proto_buf enc, bin;
    memset(&res, 0, sizeof res);
    res.status = PROTO_OK;
    res.id = 42;
    res.amount_micros = 1500000;
    res.remaining_micros = PROTO_UNLIMITED;
    proto_buf_init(&enc);
    proto_buf_init(&bin);
    assert_int_equal(proto_result_encode(&enc, &res), 0);
    assert_int_equal(proto_buf_append(&bin, "\xc6", 1), 0);
    uint8_t len[4] = {(uint8_t)(enc.len >> 24), (uint8_t)(enc.len >> 16),
                      (uint8_t)(enc.len >> 8), (uint8_t)enc.len};
    assert_int_equal(proto_buf_append(&bin, len, 4), 0);
    assert_int_equal(proto_buf_append(&bin, enc.data, enc.len), 0);
    fake_answer_raw(fc, id, bin.data, bin.len);
    proto_buf_free(&enc);
    proto_buf_free(&bin);
}

static void fake_on_request(struct fake_conn *fc, const struct rpc_msg *m)
{
    struct fake_server *s = fc->s;
    s->request_count++;
    int unanswered = s->request_count - s->answered_count;
    if (unanswered > s->max_unanswered)
        s->max_unanswered = unanswered;
    switch (s->mode) {
    case FAKE_ECHO:
        fake_answer_raw(fc, m->id, m->params, m->params_len);
        return;
    case FAKE_HOLD_FIRST:
        if (!fc->has_held) {
            fc->has_held = true;
            fc->held_id = m->id;
            proto_buf_init(&fc->held_result);
            assert_int_equal(proto_buf_append(&fc->held_result, m->params, m->params_len), 0);
            return;
        }
        fake_answer_raw(fc, m->id, m->params, m->params_len);
        fake_answer_raw(fc, fc->held_id, fc->held_result.data, fc->held_result.len);
        return;
    case FAKE_NOT_LEADER: {
        struct proto_buf d;
        proto_buf_init(&d);
        uint8_t head[2] = {0x92, (uint8_t)s->redirect_id};
        assert_true(s->redirect_id < 128);
        assert_int_equal(proto_buf_append(&d, head, 2), 0);
        uint8_t slen = (uint8_t)strlen(s->redirect_addr);
        uint8_t str_head = (uint8_t)(0xa0 | slen);
        assert_true(slen < 32);
        assert_int_equal(proto_buf_append(&d, &str_head, 1), 0);
        assert_int_equal(proto_buf_append(&d, s->redirect_addr, slen), 0);
        fake_answer_error(fc, m->id, RPC_E_NOT_LEADER, "not the leader", d.data, d.len);
        proto_buf_free(&d);
        return;
    }
    case FAKE_APPLY:
        if (fake_apply_record(fc, m))
            fake_answer_apply(fc, m->id);
        else
            fake_answer_raw(fc, m->id, m->params, m->params_len);
        return;
    case FAKE_APPLY_DROP_FIRST:
        assert_true(fake_apply_record(fc, m));
        if (s->key_count > 1)
            fake_answer_apply(fc, m->id);
        return;
    case FAKE_SILENT:
        fake_apply_record(fc, m);
        return;
    case FAKE_CLOSE_FIRST:
        if (s->request_count == 1) {
            fake_conn_close(fc);
            return;
        }
        fake_answer_raw(fc, m->id, m->params, m->params_len);
        return;
    case FAKE_FORBIDDEN:
        fake_answer_error(fc, m->id, RPC_E_FORBIDDEN, "gateway may not call checkpoint",
                          NULL, 0);
        return;
    case FAKE_UNAVAILABLE_FIRST:
        if (s->request_count == 1) {
            fake_answer_error(fc, m->id, RPC_E_UNAVAILABLE, "no quorum", NULL, 0);
            return;
        }
        fake_answer_raw(fc, m->id, m->params, m->params_len);
        return;
    }
}

static void fake_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void fake_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *fc = stream->data;
    if (nread < 0) {
        fake_conn_close(fc);
    } else if (nread > 0 && !fc->is_closing) {
        fc->s->read_count++;
        assert_int_equal(rpc_framer_feed(&fc->framer, buf->base, (size_t)nread), 0);
        const uint8_t *frame;
        size_t len;
        while (!fc->is_closing && rpc_framer_next(&fc->framer, &frame, &len) == 1) {
            struct rpc_msg m;
            assert_int_equal(rpc_msg_decode(frame, len, &m, NULL), 0);
            assert_int_equal(m.type, RPC_REQUEST);
            if (proto_str_eq(m.method, "hello"))
                fake_on_hello(fc, &m);
            else if (fc->is_authed)
                fake_on_request(fc, &m);
            else
                fake_answer_error(fc, m.id, RPC_E_UNAUTHORIZED, "hello first", NULL, 0);
        }
    }
    free(buf->base);
}

static void fake_connection_cb(uv_stream_t *server, int status)
{
    struct fake_server *s = server->data;
    assert_int_equal(status, 0);
    struct fake_conn *fc = calloc(1, sizeof *fc);
    assert_non_null(fc);
    fc->s = s;
    rpc_framer_init(&fc->framer, RPC_FRAME_MAX);
    proto_buf_init(&fc->held_result);
    assert_int_equal(uv_tcp_init(s->loop, &fc->tcp), 0);
    fc->tcp.data = fc;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&fc->tcp), 0);
    for (int i = 0; i < FAKE_CONNS_MAX; i++) {
        if (s->conns[i] == NULL) {
            s->conns[i] = fc;
            break;
        }
    }
    for (int i = 0; i < RPC_NONCE_BYTES; i++)
        fc->nonce[i] = (uint8_t)(rand() & 0xff);

    struct proto_buf b;
    msgpack_packer pk;
    size_t start;
    proto_buf_init(&b);
    assert_int_equal(rpc_notify_begin(&b, &pk, &start, "challenge", 3), 0);
    assert_int_equal(msgpack_pack_uint32(&pk, RPC_VERSION), 0);
    assert_int_equal(rpc_pack_bin(&pk, fc->nonce, RPC_NONCE_BYTES), 0);
    assert_int_equal(msgpack_pack_uint64(&pk, s->node_id), 0);
    assert_int_equal(rpc_frame_end(&b, start), 0);
    fake_send(fc, &b);
    proto_buf_free(&b);
    assert_int_equal(uv_read_start((uv_stream_t *)&fc->tcp, fake_alloc_cb, fake_read_cb), 0);
}

static void fake_start(struct fake_server *s, uv_loop_t *loop, uint64_t node_id,
                       enum fake_mode mode)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int bound_len = sizeof bound;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->node_id = node_id;
    s->mode = mode;
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 16, fake_connection_cb), 0);
    assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &bound_len), 0);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&bound)->sin_port));
    s->is_listening = true;
}

static void fake_stop(struct fake_server *s)
{
    if (!s->is_listening)
        return;
    s->is_listening = false;
    uv_close((uv_handle_t *)&s->listener, NULL);
    for (int i = 0; i < FAKE_CONNS_MAX; i++) {
        if (s->conns[i] != NULL)
            fake_conn_close(s->conns[i]);
    }
}

/* ---- test context ---- */

struct reply_rec {
    bool is_done;
    int status;
    char code[40];
    char message[200];
    uint8_t result[64];
    size_t result_len;
    int node;
    int order;
    uint64_t done_ms;
};

struct apply_rec {
    bool is_done;
    int status;
    struct proto_result res;
    char message[200];
};

struct ctx {
    uv_loop_t loop;
    uv_timer_t guard;
    struct fake_server a, b;
    struct pc_client *c;
    int done_count;
    int closed_from_cb;
};

static struct ctx *ctx_of(void **state)
{
    return *state;
}

static void guard_cb(uv_timer_t *t)
{
    (void)t; /* only keeps the loop from blocking */
}

static int ctx_setup(void **state)
{
    struct ctx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->loop.data = x;
    assert_int_equal(uv_timer_init(&x->loop, &x->guard), 0);
    assert_int_equal(uv_timer_start(&x->guard, guard_cb, 5, 5), 0);
    *state = x;
    return 0;
}

static int ctx_teardown(void **state)
{
    struct ctx *x = *state;
    pc_client_close(x->c);
    fake_stop(&x->a);
    fake_stop(&x->b);
    uv_close((uv_handle_t *)&x->guard, NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    free(x);
    return 0;
}

static void client_open(struct ctx *x, const char *addr, const char *role, const char *secret,
                        uint32_t attempt_ms, uint32_t deadline_ms)
{
    const char *addrs[1] = {addr};
    struct pc_options o = {
        .addrs = addrs,
        .addr_count = 1,
        .role = role,
        .secret = secret,
        .attempt_timeout_ms = attempt_ms,
        .deadline_ms = deadline_ms,
    };
    struct proto_error err;
    assert_int_equal(pc_client_open(&x->loop, &o, &x->c, &err), 0);
}

/* Run the loop until `*count` reaches `want`; fail after `max_ms`. */
static void run_until(struct ctx *x, const int *count, int want, uint64_t max_ms)
{
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + max_ms;
    while (*count < want) {
        if (uv_now(&x->loop) > end)
            fail_msg("timed out waiting: %d of %d", *count, want);
        uv_run(&x->loop, UV_RUN_ONCE);
    }
}

/* Run the loop for `ms` whatever happens. */
static void run_for(struct ctx *x, uint64_t ms)
{
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + ms;
    while (uv_now(&x->loop) < end)
        uv_run(&x->loop, UV_RUN_ONCE);
}

static void reply_cb(void *arg, const struct pc_reply *r)
{
    struct reply_rec *rec = arg;
    assert_false(rec->is_done);
    rec->is_done = true;
    rec->status = r->status;
    rec->node = r->node;
    if (r->code != NULL)
        snprintf(rec->code, sizeof rec->code, "%s", r->code);
    if (r->message != NULL)
        snprintf(rec->message, sizeof rec->message, "%s", r->message);
    if (r->status == PC_OK) {
        assert_true(r->result_len <= sizeof rec->result);
        memcpy(rec->result, r->result, r->result_len);
        rec->result_len = r->result_len;
    }
}

/* Each test passes a ctx-wide counter through a tiny wrapper. */
struct counted {
    struct reply_rec rec;
    struct ctx *x;
};

static void counted_cb(void *arg, const struct pc_reply *r)
{
    struct counted *c = arg;
    reply_cb(&c->rec, r);
    c->rec.order = c->x->done_count++;
    c->rec.done_ms = uv_now(&c->x->loop);
}

static void apply_cb(void *arg, int status, const struct proto_result *res, const char *message)
{
    struct apply_rec *rec = arg;
    rec->is_done = true;
    rec->status = status;
    if (res != NULL)
        rec->res = *res;
    if (message != NULL)
        snprintf(rec->message, sizeof rec->message, "%s", message);
}

static void counted_start(struct ctx *x, struct counted *c, int target, const void *params,
                          size_t len, bool is_retryable)
{
    memset(c, 0, sizeof *c);
    c->x = x;
    assert_int_equal(pc_call(x->c, target, "echo", params, len, is_retryable, counted_cb, c), 0);
}

static struct proto_cmd reserve_cmd(const char *key)
{
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_RESERVE;
    cmd.key = proto_str_c(key);
    cmd.u.reserve.account = proto_str_c("acme/search");
    cmd.u.reserve.amount_micros = 1500000;
    cmd.u.reserve.ttl_ms = 60000;
    return cmd;
}

/* Count done apply records through the ctx counter. */
struct counted_apply {
    struct apply_rec rec;
    struct ctx *x;
};

static void counted_apply_cb(void *arg, int status, const struct proto_result *res,
                             const char *message)
{
    struct counted_apply *c = arg;
    apply_cb(&c->rec, status, res, message);
    c->x->done_count++;
}

/* ---- tests ---- */

static void test_client_handshakes_then_matches_answers_out_of_order(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted first, second;
    fake_start(&x->a, &x->loop, 1, FAKE_HOLD_FIRST);
    x->a.secret = "s3cret";
    client_open(x, x->a.addr, "gateway", "s3cret", 2000, 5000);
    counted_start(x, &first, PC_TARGET_ANY, "\x91\x01", 2, false);
    counted_start(x, &second, PC_TARGET_ANY, "\x91\x02", 2, false);
    run_until(x, &x->done_count, 2, 3000);

    assert_int_equal(x->a.hello_ok_count, 1);
    assert_string_equal(x->a.hello_role, "gateway");
    assert_int_equal(second.rec.status, PC_OK);
    assert_int_equal(second.rec.order, 0);
    assert_int_equal(second.rec.result_len, 2);
    assert_memory_equal(second.rec.result, "\x91\x02", 2);
    assert_int_equal(first.rec.status, PC_OK);
    assert_int_equal(first.rec.order, 1);
    assert_memory_equal(first.rec.result, "\x91\x01", 2);
    assert_int_equal(first.rec.node, 0);
}

static void test_client_follows_not_leader_to_an_unknown_node(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted_apply ap = {.x = x};
    fake_start(&x->a, &x->loop, 1, FAKE_NOT_LEADER);
    fake_start(&x->b, &x->loop, 2, FAKE_APPLY);
    x->a.redirect_id = 2;
    snprintf(x->a.redirect_addr, sizeof x->a.redirect_addr, "%s", x->b.addr);
    x->b.hello_leader_id = 2;
    snprintf(x->b.hello_leader_rpc, sizeof x->b.hello_leader_rpc, "%s", x->b.addr);
    client_open(x, x->a.addr, "admin", NULL, 2000, 5000);
    assert_int_equal(pc_node_count(x->c), 1);

    struct proto_cmd cmd = reserve_cmd("");
    assert_int_equal(pc_apply(x->c, &cmd, counted_apply_cb, &ap), 0);
    run_until(x, &x->done_count, 1, 3000);

    assert_int_equal(ap.rec.status, PC_OK);
    assert_int_equal(ap.rec.res.status, PROTO_OK);
    assert_int_equal(ap.rec.res.id, 42);
    assert_int_equal(ap.rec.res.amount_micros, 1500000);
    assert_int_equal(pc_node_count(x->c), 2);
    assert_string_equal(pc_node_addr(x->c, 1), x->b.addr);
    assert_null(pc_node_addr(x->c, 2));
    assert_int_equal(pc_leader(x->c), 1);
    assert_int_equal(x->a.request_count, 1);
    assert_int_equal(x->b.request_count, 1);
    assert_int_equal(x->b.key_count, 1);
}

static void test_client_retries_a_timed_out_apply_with_the_same_key(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted_apply ap = {.x = x};
    fake_start(&x->a, &x->loop, 1, FAKE_APPLY_DROP_FIRST);
    client_open(x, x->a.addr, "gateway", NULL, 100, 5000);
    struct proto_cmd cmd = reserve_cmd("");
    assert_int_equal(pc_apply(x->c, &cmd, counted_apply_cb, &ap), 0);
    run_until(x, &x->done_count, 1, 3000);

    assert_int_equal(ap.rec.status, PC_OK);
    assert_int_equal(ap.rec.res.id, 42);
    assert_int_equal(x->a.key_count, 2);
    assert_string_equal(x->a.keys[0], x->a.keys[1]);
    assert_int_equal(strncmp(x->a.keys[0], "pc-", 3), 0);
    assert_int_equal(strlen(x->a.keys[0]), 3 + 32);
}

static void test_client_keeps_the_callers_apply_key(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted_apply ap = {.x = x}, ap2 = {.x = x};
    fake_start(&x->a, &x->loop, 1, FAKE_APPLY);
    client_open(x, x->a.addr, "gateway", NULL, 1000, 5000);
    struct proto_cmd cmd = reserve_cmd("order-17/reserve");
    struct proto_cmd blank = reserve_cmd("");
    assert_int_equal(pc_apply(x->c, &cmd, counted_apply_cb, &ap), 0);
    assert_int_equal(pc_apply(x->c, &blank, counted_apply_cb, &ap2), 0);
    run_until(x, &x->done_count, 2, 3000);
    assert_int_equal(x->a.key_count, 2);
    assert_string_equal(x->a.keys[0], "order-17/reserve");
    /* Two generated keys differ. */
    assert_int_equal(strncmp(x->a.keys[1], "pc-", 3), 0);
}

static void test_client_fails_with_timeout_once_the_deadline_passes(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    fake_start(&x->a, &x->loop, 1, FAKE_SILENT);
    client_open(x, x->a.addr, "reader", NULL, 1000, 200);
    uv_update_time(&x->loop);
    uint64_t start = uv_now(&x->loop);
    counted_start(x, &c, PC_TARGET_LEADER, "\x90", 1, true);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_ETIMEOUT);
    assert_true(c.rec.done_ms - start >= 195);
    assert_true(c.rec.done_ms - start < 900);
    assert_int_equal(x->a.request_count, 1);
    assert_true(c.rec.message[0] != '\0');
}

static void test_client_fails_a_non_retryable_call_at_its_attempt_timeout(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    fake_start(&x->a, &x->loop, 1, FAKE_SILENT);
    client_open(x, x->a.addr, "reader", NULL, 100, 5000);
    counted_start(x, &c, 0, "\x90", 1, false);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_ETIMEOUT);
    run_for(x, 150);
    assert_int_equal(x->a.request_count, 1);
}

static void test_client_resends_a_retryable_call_after_connection_loss(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    fake_start(&x->a, &x->loop, 1, FAKE_CLOSE_FIRST);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    counted_start(x, &c, PC_TARGET_LEADER, "\x91\x07", 2, true);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_OK);
    assert_memory_equal(c.rec.result, "\x91\x07", 2);
    assert_int_equal(x->a.request_count, 2);
    assert_int_equal(x->a.hello_ok_count, 2);
}

static void test_client_fails_a_non_retryable_call_on_connection_loss(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    fake_start(&x->a, &x->loop, 1, FAKE_CLOSE_FIRST);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    counted_start(x, &c, PC_TARGET_ANY, "\x90", 1, false);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_EUNAVAILABLE);
    assert_non_null(strstr(c.rec.message, x->a.addr));
}

static void test_client_retries_unavailable_only_when_retryable(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c, d;
    fake_start(&x->a, &x->loop, 1, FAKE_UNAVAILABLE_FIRST);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    counted_start(x, &c, PC_TARGET_LEADER, "\x91\x03", 2, true);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_OK);
    assert_int_equal(x->a.request_count, 2);

    x->a.request_count = 0;
    x->a.answered_count = 0;
    counted_start(x, &d, PC_TARGET_LEADER, "\x90", 1, false);
    run_until(x, &x->done_count, 2, 3000);
    assert_int_equal(d.rec.status, PC_EREMOTE);
    assert_string_equal(d.rec.code, RPC_E_UNAVAILABLE);
    assert_string_equal(d.rec.message, "no quorum");
}

static void test_client_reports_a_remote_error_with_code_and_message(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    struct counted_apply ap = {.x = x};
    fake_start(&x->a, &x->loop, 1, FAKE_FORBIDDEN);
    client_open(x, x->a.addr, "gateway", NULL, 1000, 5000);
    counted_start(x, &c, PC_TARGET_LEADER, "\x90", 1, true);
    struct proto_cmd cmd = reserve_cmd("");
    assert_int_equal(pc_apply(x->c, &cmd, counted_apply_cb, &ap), 0);
    run_until(x, &x->done_count, 2, 3000);
    assert_int_equal(c.rec.status, PC_EREMOTE);
    assert_string_equal(c.rec.code, RPC_E_FORBIDDEN);
    assert_string_equal(c.rec.message, "gateway may not call checkpoint");
    assert_int_equal(c.rec.node, 0);
    assert_int_equal(ap.rec.status, PC_EREMOTE);
    assert_string_equal(ap.rec.message, "FORBIDDEN: gateway may not call checkpoint");
}

static void test_client_reports_a_refused_hello_when_the_deadline_passes(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    fake_start(&x->a, &x->loop, 1, FAKE_ECHO);
    x->a.secret = "right";
    client_open(x, x->a.addr, "admin", "wrong", 1000, 300);
    counted_start(x, &c, PC_TARGET_LEADER, "\x90", 1, true);
    run_until(x, &x->done_count, 1, 3000);
    assert_int_equal(c.rec.status, PC_EUNAVAILABLE);
    assert_true(x->a.hello_refused_count >= 1);
    assert_int_equal(x->a.request_count, 0);
    assert_non_null(strstr(c.rec.message, "UNAUTHORIZED"));
}

static void test_client_keeps_at_most_the_servers_inflight_cap(void **state)
{
    enum { CALLS = RPC_INFLIGHT_MAX + 300 };
    struct ctx *x = ctx_of(state);
    struct counted *calls = calloc(CALLS, sizeof *calls);
    assert_non_null(calls);
    fake_start(&x->a, &x->loop, 1, FAKE_SILENT);
    client_open(x, x->a.addr, "reader", NULL, 400, 5000);
    for (int i = 0; i < CALLS; i++)
        counted_start(x, &calls[i], PC_TARGET_ANY, "\x90", 1, false);
    run_for(x, 150);
    assert_int_equal(x->a.request_count, RPC_INFLIGHT_MAX);
    run_until(x, &x->done_count, CALLS, 4000);
    assert_int_equal(x->a.request_count, CALLS);
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(calls[i].rec.status, PC_ETIMEOUT);
    free(calls);
}

static void test_client_pipelines_thousands_of_calls(void **state)
{
    enum { CALLS = 20000 };
    struct ctx *x = ctx_of(state);
    struct counted *calls = calloc(CALLS, sizeof *calls);
    assert_non_null(calls);
    fake_start(&x->a, &x->loop, 1, FAKE_ECHO);
    client_open(x, x->a.addr, "reader", NULL, 2000, 10000);
    for (int i = 0; i < CALLS; i++) {
        uint8_t p[4] = {0x91, 0xcd, (uint8_t)(i >> 8), (uint8_t)i}; /* [uint16 i] */
        counted_start(x, &calls[i], PC_TARGET_LEADER, p, sizeof p, true);
    }
    run_until(x, &x->done_count, CALLS, 20000);
    for (int i = 0; i < CALLS; i++) {
        uint8_t p[4] = {0x91, 0xcd, (uint8_t)(i >> 8), (uint8_t)i};
        assert_int_equal(calls[i].rec.status, PC_OK);
        assert_memory_equal(calls[i].rec.result, p, 4);
    }
    assert_true(x->a.max_unanswered <= RPC_INFLIGHT_MAX);
    /* Calls queued in one loop turn leave in one write. */
    assert_true(x->a.read_count < CALLS / 20);
    free(calls);
}

static void close_in_cb(void *arg, const struct pc_reply *r)
{
    struct counted *c = arg;
    struct counted late;
    counted_cb(arg, r);
    pc_client_close(c->x->c);
    c->x->closed_from_cb++;
    memset(&late, 0, sizeof late);
    late.x = c->x;
    assert_int_equal(pc_call(c->x->c, PC_TARGET_ANY, "echo", "\x90", 1, false, counted_cb,
                             &late), PC_EINVAL);
    pc_client_close(c->x->c); /* twice is harmless */
    c->x->c = NULL;           /* freed once the loop has closed its handles */
}

static void test_client_close_from_a_callback_fails_the_other_calls(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted first, second;
    fake_start(&x->a, &x->loop, 1, FAKE_HOLD_FIRST);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    counted_start(x, &first, PC_TARGET_ANY, "\x91\x01", 2, false);
    memset(&second, 0, sizeof second);
    second.x = x;
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "echo", "\x91\x02", 2, false, close_in_cb,
                             &second), 0);
    run_until(x, &x->done_count, 2, 3000);
    /* The fake answers the second first; its callback closes the client
     * before the first's answer is read. */
    assert_int_equal(x->closed_from_cb, 1);
    assert_int_equal(second.rec.status, PC_OK);
    assert_int_equal(second.rec.order, 0);
    assert_int_equal(first.rec.status, PC_ECLOSED);
    assert_int_equal(first.rec.order, 1);
}

static void test_client_close_fails_pending_calls_with_closed(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted a, b;
    fake_start(&x->a, &x->loop, 1, FAKE_SILENT);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    counted_start(x, &a, PC_TARGET_ANY, "\x90", 1, false);
    run_until(x, &x->a.request_count, 1, 3000);
    counted_start(x, &b, PC_TARGET_LEADER, "\x90", 1, true);
    pc_client_close(x->c);
    x->c = NULL;
    assert_int_equal(x->done_count, 2);
    assert_int_equal(a.rec.status, PC_ECLOSED);
    assert_int_equal(b.rec.status, PC_ECLOSED);
}

static void test_client_refuses_bad_arguments(void **state)
{
    struct ctx *x = ctx_of(state);
    struct counted c;
    struct proto_error err;
    const char *bad_addrs[1] = {"localhost:7001"};
    struct pc_options o = {.addrs = bad_addrs, .addr_count = 1, .role = "reader"};
    struct pc_client *bad = NULL;
    assert_int_equal(pc_client_open(&x->loop, &o, &bad, &err), PC_EINVAL);
    assert_non_null(strstr(err.message, "localhost:7001"));
    const char *good_addrs[1] = {"127.0.0.1:1"};
    o.addrs = good_addrs;
    o.role = "root";
    assert_int_equal(pc_client_open(&x->loop, &o, &bad, &err), PC_EINVAL);
    o.addr_count = 0;
    o.role = "reader";
    assert_int_equal(pc_client_open(&x->loop, &o, &bad, &err), PC_EINVAL);

    fake_start(&x->a, &x->loop, 1, FAKE_ECHO);
    client_open(x, x->a.addr, "reader", NULL, 1000, 5000);
    memset(&c, 0, sizeof c);
    c.x = x;
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "echo", "\x80", 1, false, counted_cb, &c),
                     PC_EINVAL); /* params not an array */
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "echo", "\x91", 1, false, counted_cb, &c),
                     PC_EINVAL); /* truncated */
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "echo", "\x90\x90", 2, false, counted_cb, &c),
                     PC_EINVAL); /* trailing bytes */
    assert_int_equal(pc_call(x->c, 1, "echo", "\x90", 1, false, counted_cb, &c), PC_EINVAL);
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "", "\x90", 1, false, counted_cb, &c),
                     PC_EINVAL);
    assert_int_equal(pc_call(x->c, PC_TARGET_ANY, "a-method-name-longer-than-32-bytes",
                             "\x90", 1, false, counted_cb, &c), PC_EINVAL);
    struct proto_cmd cmd = reserve_cmd("");
    cmd.type = 0;
    assert_int_equal(pc_apply(x->c, &cmd, apply_cb, NULL), PC_EINVAL);
    assert_int_equal(x->done_count, 0);
}

/* ---- the synchronous wrapper, against a fake on its own thread ---- */

struct thread_server {
    uv_loop_t loop;
    uv_async_t stop;
    struct fake_server s;
    uv_thread_t thread;
    uv_sem_t ready;
};

static void thread_stop_cb(uv_async_t *a)
{
    struct thread_server *t = a->data;
    fake_stop(&t->s);
    uv_close((uv_handle_t *)&t->stop, NULL);
}

static void thread_server_main(void *arg)
{
    struct thread_server *t = arg;
    uv_sem_post(&t->ready);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void test_sync_apply_and_call_block_until_answered(void **state)
{
    (void)state;
    struct thread_server t;
    struct pc_sync *sync = NULL;
    struct proto_error err;
    struct proto_result res;
    struct proto_buf result;
    char message[200], code[40];
    assert_int_equal(uv_loop_init(&t.loop), 0);
    fake_start(&t.s, &t.loop, 1, FAKE_APPLY);
    assert_int_equal(uv_async_init(&t.loop, &t.stop, thread_stop_cb), 0);
    t.stop.data = &t;
    assert_int_equal(uv_sem_init(&t.ready, 0), 0);
    assert_int_equal(uv_thread_create(&t.thread, thread_server_main, &t), 0);
    uv_sem_wait(&t.ready);

    const char *addrs[1] = {t.s.addr};
    struct pc_options o = {.addrs = addrs, .addr_count = 1, .role = "admin",
                           .attempt_timeout_ms = 1000, .deadline_ms = 5000};
    assert_int_equal(pc_sync_open(&o, &sync, &err), 0);
    struct proto_cmd cmd = reserve_cmd("");
    assert_int_equal(pc_sync_apply(sync, &cmd, &res, message, sizeof message), PC_OK);
    assert_int_equal(res.status, PROTO_OK);
    assert_int_equal(res.id, 42);

    proto_buf_init(&result); /* FAKE_APPLY echoes other methods */
    int rc = pc_sync_call(sync, PC_TARGET_ANY, "echo", "\x91\x05", 2, true, &result, code,
                          sizeof code, message, sizeof message);
    assert_int_equal(rc, PC_OK);
    assert_int_equal(result.len, 2);
    assert_memory_equal(result.data, "\x91\x05", 2);
    assert_non_null(pc_sync_client(sync));
    proto_buf_free(&result);
    pc_sync_close(sync);

    uv_async_send(&t.stop);
    uv_thread_join(&t.thread);
    assert_int_equal(uv_loop_close(&t.loop), 0);
    uv_sem_destroy(&t.ready);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)
        T(test_client_handshakes_then_matches_answers_out_of_order),
        T(test_client_follows_not_leader_to_an_unknown_node),
        T(test_client_retries_a_timed_out_apply_with_the_same_key),
        T(test_client_keeps_the_callers_apply_key),
        T(test_client_fails_with_timeout_once_the_deadline_passes),
        T(test_client_fails_a_non_retryable_call_at_its_attempt_timeout),
        T(test_client_resends_a_retryable_call_after_connection_loss),
        T(test_client_fails_a_non_retryable_call_on_connection_loss),
        T(test_client_retries_unavailable_only_when_retryable),
        T(test_client_reports_a_remote_error_with_code_and_message),
        T(test_client_reports_a_refused_hello_when_the_deadline_passes),
        T(test_client_keeps_at_most_the_servers_inflight_cap),
        T(test_client_pipelines_thousands_of_calls),
        T(test_client_close_from_a_callback_fails_the_other_calls),
        T(test_client_close_fails_pending_calls_with_closed),
        T(test_client_refuses_bad_arguments),
#undef T
        cmocka_unit_test(test_sync_apply_and_call_block_until_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
