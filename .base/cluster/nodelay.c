/*
 * nodelay.c — a raft transport that wraps raft_uv_tcp for two reasons
 * (PITFALLS.md):
 *   - raft_uv_tcp never sets TCP_NODELAY, and small raft messages then wait
 *     ~40 ms for Nagle; we set it on every stream, accepted or connected;
 *   - purser keeps each member's RPC address next to its raft address in the
 *     configuration ("RAFT/RPC"), but raft_uv_tcp parses numeric "ip:port"
 *     only, so the "/RPC" part is cut before the address reaches it.
 * With --raft-bind the inner transport listens on the bind address
 * (raft_uv_tcp_set_bind_address) but still names itself by the advertised
 * one in the handshake each connection starts with.  Both matter: peers send
 * requests to the address in the configuration, and their *answers* to the
 * address the handshake named; had the bind address been passed to init
 * instead, answers would go around whatever sits on --raft (the fault
 * suite's proxy).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"

struct nodelay {
    struct raft_uv_transport *inner;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    struct raft_uv_transport *outer;
    char address[NODE_ADDR_MAX]; /* raft_uv_tcp keeps the pointer it is given */
    char bind[NODE_ADDR_MAX];    /* --raft-bind, or "" */
};

struct nodelay_connect {
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *user_req;
    raft_uv_connect_cb user_cb;
    char address[NODE_ADDR_MAX];
};

static void nodelay_strip(const char *addr, char *out, size_t cap)
{
    const char *slash = strchr(addr, '/');
    size_t n = slash ? (size_t)(slash - addr) : strlen(addr);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, addr, n);
    out[n] = '\0';
}

static void nodelay_set(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int nodelay_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct nodelay *d = t->impl;
    nodelay_strip(address, d->address, sizeof d->address);
    int rv = d->inner->init(d->inner, id, d->address);
    if (rv == 0 && d->bind[0]) {
        rv = raft_uv_tcp_set_bind_address(d->inner, d->bind); /* it copies */
        if (rv != 0)
            snprintf(t->errmsg, sizeof t->errmsg, "--raft-bind %s: %s", d->bind,
                     raft_strerror(rv));
        return rv;
    }
    if (rv != 0)
        memcpy(t->errmsg, d->inner->errmsg, sizeof t->errmsg);
    return rv;
}

static void nodelay_accept_cb(struct raft_uv_transport *inner, raft_id id, const char *address,
                              struct uv_stream_s *stream)
{
    struct nodelay *d = inner->data;
    nodelay_set(stream);
    d->accept_cb(d->outer, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct nodelay *d = t->impl;
    d->accept_cb = cb;
    int rv = d->inner->listen(d->inner, nodelay_accept_cb);
    if (rv != 0)
        memcpy(t->errmsg, d->inner->errmsg, sizeof t->errmsg);
    return rv;
}

static void nodelay_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream,
                               int status)
{
    struct nodelay_connect *c = req->data;
    if (status == 0)
        nodelay_set(stream);
    struct raft_uv_connect *user_req = c->user_req;
    raft_uv_connect_cb cb = c->user_cb;
    free(c);
    cb(user_req, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                           const char *address, raft_uv_connect_cb cb)
{
    struct nodelay *d = t->impl;
    struct nodelay_connect *c = calloc(1, sizeof *c);
    if (!c)
        return RAFT_NOMEM;
    c->user_req = req;
    c->user_cb = cb;
    c->inner_req.data = c;
    nodelay_strip(address, c->address, sizeof c->address);
    int rv = d->inner->connect(d->inner, &c->inner_req, id, c->address, nodelay_connect_cb);
    if (rv != 0) {
        memcpy(t->errmsg, d->inner->errmsg, sizeof t->errmsg);
        free(c);
    }
    return rv;
}

static void nodelay_close_cb(struct raft_uv_transport *inner)
{
    struct nodelay *d = inner->data;
    if (d->close_cb)
        d->close_cb(d->outer);
}

static void nodelay_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct nodelay *d = t->impl;
    d->close_cb = cb;
    d->inner->close(d->inner, nodelay_close_cb);
}

int nodelay_transport_init(struct raft_uv_transport *outer, struct raft_uv_transport *inner,
                           const char *bind)
{
    if (bind && strlen(bind) >= NODE_ADDR_MAX)
        return RAFT_INVALID;
    struct nodelay *d = calloc(1, sizeof *d);
    if (!d)
        return RAFT_NOMEM;
    d->inner = inner;
    d->outer = outer;
    if (bind)
        snprintf(d->bind, sizeof d->bind, "%s", bind);
    inner->data = d;
    memset(outer, 0, sizeof *outer);
    outer->impl = d;
    outer->init = nodelay_init;
    outer->listen = nodelay_listen;
    outer->connect = nodelay_connect;
    outer->close = nodelay_close;
    return 0;
}
