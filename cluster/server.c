/*
 * server.c — the RPC listener (docs/rpc.md): accepts connections, splits
 * them into frames, runs the challenge/hello handshake, checks roles, and
 * dispatches requests to the method table.  Answers are queued per
 * connection and written once at the end of the loop turn (a uv_check
 * handle), together with the group commit of the writes that arrived.
 *
 * Bad input never takes the node down: an oversized or undecodable frame
 * closes that one connection; a malformed request gets BAD_REQUEST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster/server.h"

static void conn_free(struct conn *c)
{
    ptls_free(c->tls);
    rpc_framer_free(&c->framer);
    proto_buf_free(&c->out);
    free(c);
}

void conn_hold(struct conn *c)
{
    c->refs++;
    c->inflight++;
}

bool conn_is_open(const struct conn *c)
{
    return c && !c->is_closing;
}

static void conn_closed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    assert(c->refs > 0);
    if (--c->refs == 0)
        conn_free(c);
}

void conn_done(struct conn *c)
{
    if (!c)
        return;
    assert(c->refs > 1 || c->is_closing);
    assert(c->inflight > 0);
    c->inflight--;
    if (--c->refs == 0)
        conn_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    struct server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Drop it from the flush list too. */
    if (c->is_queued) {
        struct conn **pp = &s->queued;
        while (*pp && *pp != c)
            pp = &(*pp)->next_queued;
        if (*pp)
            *pp = c->next_queued;
        c->is_queued = false;
    }
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void conn_queue(struct conn *c)
{
    if (c->is_queued || c->is_closing)
        return;
    c->is_queued = true;
    c->next_queued = c->srv->queued;
    c->srv->queued = c;
}

msgpack_packer *conn_reply_begin(struct conn *c, uint32_t id, size_t *start,
                                 msgpack_packer *pk)
{
    if (!conn_is_open(c))
        return NULL;
    if (rpc_response_ok_begin(&c->out, pk, start, id) != 0)
        return NULL;
    c->reply_id = id;
    return pk;
}

void conn_reply_end(struct conn *c, size_t start)
{
    if (rpc_frame_end(&c->out, start) != 0) {
        /* The answer outgrew a frame: say so instead. */
        c->out.len = start;
        rpc_response_error(&c->out, c->reply_id, RPC_E_INTERNAL, "answer larger than a frame",
                           NULL, 0);
    }
    conn_queue(c);
}

void conn_reply_error(struct conn *c, uint32_t id, const char *code, const char *message)
{
    if (!conn_is_open(c))
        return;
    rpc_response_error(&c->out, id, code, message, NULL, 0);
    conn_queue(c);
}

void conn_reply_not_leader(struct conn *c, uint32_t id)
{
    if (!conn_is_open(c))
        return;
    raft_id leader = 0;
    char rpc[NODE_ADDR_MAX] = "";
    node_leader(c->srv->node, &leader, rpc, sizeof rpc);
    /* The detail [leader_id, leader_rpc], packed by hand. */
    uint8_t tmp[96];
    size_t n = 0;
    if (leader != 0 && rpc[0]) {
        size_t len = strlen(rpc);
        tmp[n++] = 0x92;              /* array of 2 */
        tmp[n++] = 0xcf;              /* uint64 */
        for (int i = 7; i >= 0; i--)
            tmp[n++] = (uint8_t)(leader >> (8 * i));
        tmp[n++] = (uint8_t)(0xa0 | len); /* fixstr: addresses are < 32 bytes */
        memcpy(tmp + n, rpc, len);
        n += len;
    } else {
        tmp[n++] = 0xc0;              /* nil: no leader known */
    }
    rpc_response_error(&c->out, id, RPC_E_NOT_LEADER,
                       leader ? "this node is not the leader" : "no leader is known", tmp, n);
    conn_queue(c);
}

static void server_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

/* ---- TLS hooks (proto/tls.h does the work) ---- */

static void conn_tls_log(const struct conn *c, const char *msg)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char ip[64] = "?";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0 &&
        sa.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&sa, ip, sizeof ip);
    fprintf(stderr, "purserd: rpc connection from %s dropped: %s\n", ip, msg);
}

/* Replace the plaintext in c->out with the bytes for the socket. */
static int conn_tls_seal(struct conn *c)
{
    char msg[PTLS_MESSAGE_MAX];
    if (ptls_seal(c->tls, &c->out, msg, sizeof msg) == 0)
        return 0;
    c->out.len = 0;
    conn_tls_log(c, msg);
    return -1;
}

/* Bytes read: *data and *len become the plaintext they complete. */
static int conn_tls_recv(struct conn *c, const char **data, size_t *len)
{
    char msg[PTLS_MESSAGE_MAX];
    struct proto_buf *plain = &c->srv->tls_plain;
    plain->len = 0;
    if (ptls_recv(c->tls, *data, *len, plain, msg, sizeof msg) != 0) {
        conn_tls_log(c, msg);
        /* Best effort: the alert that tells the peer why, before hanging up. */
        c->out.len = 0;
        if (ptls_seal(c->tls, &c->out, msg, sizeof msg) == 0 && c->out.len > 0) {
            uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        c->out.len = 0;
        return -1;
    }
    if (ptls_has_output(c->tls))
        conn_queue(c); /* a handshake answer, or the challenge held until now */
    *data = plain->data;
    *len = plain->len;
    return 0;
}

/* Write everything queued on every connection: one write each. */
static void server_flush_writes(struct server *s)
{
    struct conn *c = s->queued;
    s->queued = NULL;
    while (c) {
        struct conn *next = c->next_queued;
        c->is_queued = false;
        c->next_queued = NULL;
        if (!c->is_closing && c->tls && conn_tls_seal(c) != 0)
            conn_close(c);
        if (!c->is_closing && c->out.len > 0) {
            uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
            int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (n < 0 && n != UV_EAGAIN) {
                c->out.len = 0;
                conn_close(c);
            } else {
                size_t done = n > 0 ? (size_t)n : 0;
                if (done < c->out.len) {
                    /* The rest goes through uv_write, which owns the bytes. */
                    uv_write_t *req = malloc(sizeof *req);
                    char *rest = malloc(c->out.len - done);
                    if (!req || !rest) {
                        free(req);
                        free(rest);
                        conn_close(c);
                    } else {
                        memcpy(rest, c->out.data + done, c->out.len - done);
                        req->data = rest;
                        b = uv_buf_init(rest, (unsigned)(c->out.len - done));
                        if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, server_write_cb) != 0) {
                            free(rest);
                            free(req);
                            conn_close(c);
                        }
                    }
                }
                c->out.len = 0;
            }
        }
        c = next;
    }
}

static void server_check_cb(uv_check_t *h)
{
    struct server *s = h->data;
    methods_flush(s->node);
    batch_flush(s->node);
    server_flush_writes(s);
}

/* ---- handshake ---- */

static void server_send_challenge(struct conn *c)
{
    if (getrandom(c->nonce, sizeof c->nonce, 0) != (ssize_t)sizeof c->nonce) {
        conn_close(c);
        return;
    }
    msgpack_packer pk;
    size_t start;
    if (rpc_notify_begin(&c->out, &pk, &start, "challenge", 3) != 0) {
        conn_close(c);
        return;
    }
    msgpack_pack_uint32(&pk, RPC_VERSION);
    rpc_pack_bin(&pk, c->nonce, sizeof c->nonce);
    msgpack_pack_uint64(&pk, c->srv->node->opt.id);
    rpc_frame_end(&c->out, start);
    conn_queue(c);
}

static void server_hello(struct conn *c, uint32_t id, struct mp_reader *r, uint32_t count)
{
    struct node *n = c->srv->node;
    struct hello_params h;
    switch (hello_parse(r, count, &h)) {
    case HELLO_OK:
        break;
    case HELLO_BAD_VERSION:
        conn_reply_error(c, id, RPC_E_BAD_VERSION, "protocol version 1 expected");
        return;
    case HELLO_UNKNOWN_ROLE:
        conn_reply_error(c, id, RPC_E_UNAUTHORIZED, "unknown role");
        return;
    default:
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "hello takes [version, role, proof]");
        return;
    }
    int role = h.role;
    if (!n->opt.is_no_auth) {
        const char *role_c = hello_role_name(role);
        const char *secret = rpc_auth_secret(&n->opt.auth, role_c);
        uint8_t want[RPC_PROOF_BYTES];
        if (!h.has_proof || !secret[0]) {
            conn_reply_error(c, id, RPC_E_UNAUTHORIZED, "a proof for this role is required");
            return;
        }
        rpc_proof(secret, c->nonce, role_c, want);
        if (!rpc_proof_equal(want, h.proof)) {
            conn_reply_error(c, id, RPC_E_UNAUTHORIZED, "wrong proof");
            return;
        }
    }
    c->role = role;
    raft_id leader = 0;
    char rpc[NODE_ADDR_MAX] = "";
    node_leader(n, &leader, rpc, sizeof rpc);
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(c, id, &start, &pk))
        return;
    msgpack_pack_map(&pk, 3);
    rpc_pack_str(&pk, "node_id");
    msgpack_pack_uint64(&pk, n->opt.id);
    rpc_pack_str(&pk, "leader_id");
    msgpack_pack_uint64(&pk, leader);
    rpc_pack_str(&pk, "leader_rpc");
    rpc_pack_str(&pk, rpc);
    conn_reply_end(c, start);
}

/* ---- requests ---- */

static void server_request(struct conn *c, const struct rpc_msg *m)
{
    struct mp_reader r;
    uint32_t count = 0;
    mp_reader_init(&r, m->params, m->params_len);
    if (mp_array_read(&r, &count) != MP_OK) {
        conn_reply_error(c, m->id, RPC_E_BAD_REQUEST, "params must be an array");
        return;
    }
    if (proto_str_eq(m->method, "hello")) {
        server_hello(c, m->id, &r, count);
        return;
    }
    if (c->role == CONN_ROLE_NONE) {
        conn_reply_error(c, m->id, RPC_E_UNAUTHORIZED, "hello first");
        return;
    }
    const struct method_def *def = methods_find(m->method);
    if (!def) {
        conn_reply_error(c, m->id, RPC_E_BAD_REQUEST, "unknown method");
        return;
    }
    if (c->role < def->role_min) {
        conn_reply_error(c, m->id, RPC_E_FORBIDDEN, "this role may not call this method");
        return;
    }
    if (c->inflight >= RPC_INFLIGHT_MAX) {
        conn_reply_error(c, m->id, RPC_E_TOO_MANY, "too many calls in flight");
        return;
    }
    if (c->srv->is_stopping) {
        conn_reply_error(c, m->id, RPC_E_UNAVAILABLE, "the node is shutting down");
        return;
    }
    def->fn(c->srv->node, c, m->id, &r, count);
}

static void server_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[64 * 1024];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void server_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    const char *data = buf->base;
    size_t data_len = (size_t)nread;
    if (c->tls && conn_tls_recv(c, &data, &data_len) != 0) {
        conn_close(c);
        return;
    }
    if (data_len == 0)
        return;
    if (rpc_framer_feed(&c->framer, data, data_len) != 0) {
        conn_close(c);
        return;
    }
    const uint8_t *frame;
    size_t len;
    int rc;
    c->refs++; /* stay alive while dispatching */
    while (!c->is_closing && (rc = rpc_framer_next(&c->framer, &frame, &len)) == 1) {
        struct rpc_msg m;
        struct proto_error perr;
        if (rpc_msg_decode(frame, len, &m, &perr) != 0 || m.type != RPC_REQUEST) {
            /* Not even a request we can answer: drop the connection. */
            conn_close(c);
            break;
        }
        bool was_authed = c->role != CONN_ROLE_NONE;
        server_request(c, &m);
        if (!was_authed && c->role == CONN_ROLE_NONE) {
            /* A failed hello: send the refusal, then hang up. */
            server_flush_writes(c->srv);
            conn_close(c);
        }
    }
    if (!c->is_closing && rc < 0)
        conn_close(c);
    if (--c->refs == 0)
        conn_free(c);
}

static void server_accept_cb(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    c->refs = 1;
    rpc_framer_init(&c->framer, RPC_FRAME_MAX);
    proto_buf_init(&c->out);
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->is_closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    char msg[PTLS_MESSAGE_MAX];
    if (s->tls_ctx && !(c->tls = ptls_new(s->tls_ctx, NULL, msg, sizeof msg))) {
        c->is_closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->conn_count++;
    uv_read_start((uv_stream_t *)&c->tcp, server_alloc_cb, server_read_cb);
    server_send_challenge(c);
}

int server_start(struct node *n, char *msg, size_t cap)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    s->node = n;
    n->server = s;
    proto_buf_init(&s->tls_plain);
    if (n->opt.tls_cert && ptls_server_ctx_new(n->opt.tls_cert, n->opt.tls_key, n->opt.tls_ca,
                                               n->opt.is_tls_client_cert_required, &s->tls_ctx,
                                               msg, cap) != 0)
        return -1;
    char host[NODE_ADDR_MAX];
    int port = 0;
    if (rpc_addr_parse(n->opt.rpc_addr, host, sizeof host, &port) != 0) {
        snprintf(msg, cap, "--rpc %s: expected a numeric a.b.c.d:port", n->opt.rpc_addr);
        return -1;
    }
    struct sockaddr_in sa;
    uv_ip4_addr(host, port, &sa);
    uv_tcp_init(n->loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, server_accept_cb);
    if (rc != 0) {
        snprintf(msg, cap, "--rpc %s: %s", n->opt.rpc_addr, uv_strerror(rc));
        return -1;
    }
    uv_check_init(n->loop, &s->check);
    s->check.data = s;
    uv_check_start(&s->check, server_check_cb);
    return 0;
}

void server_stop(struct server *s)
{
    if (!s || s->is_stopping)
        return;
    s->is_stopping = true;
    methods_fail_all(s->node, RPC_E_UNAVAILABLE, "the node is shutting down");
    batch_fail_all(s->node, RPC_E_UNAVAILABLE, "the node is shutting down");
    server_flush_writes(s);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_check_stop(&s->check);
    uv_close((uv_handle_t *)&s->check, NULL);
    while (s->conns)
        conn_close(s->conns);
    ptls_ctx_free(s->tls_ctx); /* open sessions hold their own reference */
    s->tls_ctx = NULL;
}
