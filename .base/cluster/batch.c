/*
 * batch.c — group commit.  Every `apply` that arrives during one loop turn
 * is re-encoded (with the role the connection proved) into the open batch;
 * at the end of the turn the batch becomes one raft entry, stamped with the
 * leader's clock.  When raft has committed and applied it, the results the
 * FSM produced fan out to the callers.
 *
 * Bounds: a batch holds at most PROTO_BATCH_MAX commands and
 * NODE_BATCH_BYTES_MAX bytes; at most NODE_ENTRIES_IN_FLIGHT_MAX entries are
 * proposed and not yet applied (PITFALLS.md: flooding raft starves the
 * heartbeats).  While the pipe is full, calls keep gathering in the open
 * batch; when that is full too, callers get TOO_MANY and retry.
 *
 * An entry whose outcome is unknown (leadership lost after proposing) is
 * answered UNAVAILABLE: it may still commit under the next leader, and the
 * caller's retry with the same idempotency key gets the first answer.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/server.h"

struct batch_entry {
    struct raft_apply req;
    struct node *node;
    uint32_t count;
    struct call calls[]; /* count of them */
};

struct batch {
    struct call *noops;      /* PROTO_BATCH_MAX calls of `noop` */
    uint32_t noop_count;
    struct proto_buf cmds;   /* encoded commands of the open batch */
    struct call *calls;      /* PROTO_BATCH_MAX */
    uint32_t count;
    uint32_t in_flight;
    struct proto_buf scratch;
};

int batch_init(struct node *n)
{
    struct batch *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->calls = calloc(PROTO_BATCH_MAX, sizeof *b->calls);
    b->noops = calloc(PROTO_BATCH_MAX, sizeof *b->noops);
    if (!b->calls || !b->noops) {
        free(b->calls);
        free(b->noops);
        free(b);
        return -1;
    }
    proto_buf_init(&b->cmds);
    proto_buf_init(&b->scratch);
    n->batch = b;
    return 0;
}

static void batch_reply_result(struct batch *b, const struct call *call,
                               const struct proto_result *res)
{
    if (!conn_is_open(call->conn))
        return;
    b->scratch.len = 0;
    if (proto_result_encode(&b->scratch, res) != 0) {
        conn_reply_error(call->conn, call->id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(call->conn, call->id, &start, &pk))
        return;
    rpc_pack_bin(&pk, b->scratch.data, b->scratch.len);
    conn_reply_end(call->conn, start);
}

static void batch_fail_calls(struct node *n, struct call *calls, uint32_t count, const char *code,
                             const char *message)
{
    for (uint32_t i = 0; i < count; i++) {
        if (!calls[i].conn)
            continue;
        if (strcmp(code, RPC_E_NOT_LEADER) == 0)
            conn_reply_not_leader(calls[i].conn, calls[i].id);
        else
            conn_reply_error(calls[i].conn, calls[i].id, code, message);
        conn_done(calls[i].conn);
    }
    (void)n;
}

static void batch_apply_cb(struct raft_apply *req, int status, void *result)
{
    struct batch_entry *e = req->data;
    struct node *n = e->node;
    struct batch *b = n->batch;
    assert(b->in_flight > 0);
    b->in_flight--;
    if (status != 0) {
        const char *why = status == RAFT_LEADERSHIPLOST
                              ? "leadership lost before the outcome was known: retry with the"
                                " same key"
                              : raft_strerror(status);
        batch_fail_calls(n, e->calls, e->count, RPC_E_UNAVAILABLE, why);
        free(e);
        return;
    }
    /* fsm.c left this entry's results in the node (same loop turn). */
    assert(result == n);
    (void)result;
    for (uint32_t i = 0; i < e->count; i++) {
        if (!e->calls[i].conn)
            continue;
        if (i < n->apply_count)
            batch_reply_result(b, &e->calls[i], &n->apply_results[i]);
        else
            conn_reply_error(e->calls[i].conn, e->calls[i].id, RPC_E_INTERNAL,
                             "the entry was not applied");
        conn_done(e->calls[i].conn);
    }
    free(e);
}

/* Entry bytes: the proto entry (version, [timestamp, [cmd...]]) around the
 * encoded commands, inside a node entry. */
static void *batch_entry_bytes(struct batch *b, int64_t ts, size_t *len)
{
    uint8_t head[16];
    size_t h = 0;
    head[h++] = PROTO_VERSION;
    head[h++] = 0x92; /* [timestamp, commands] */
    head[h++] = 0xd3; /* int64 */
    for (int i = 7; i >= 0; i--)
        head[h++] = (uint8_t)((uint64_t)ts >> (8 * i));
    head[h++] = 0xdc; /* array 16: PROTO_BATCH_MAX < 65536 */
    head[h++] = (uint8_t)(b->count >> 8);
    head[h++] = (uint8_t)b->count;
    uint8_t *buf = node_entry_alloc(NODE_ENTRY_LEDGER, h + b->cmds.len, len);
    if (!buf)
        return NULL;
    memcpy(buf + NODE_ENTRY_HEADER_BYTES, head, h);
    memcpy(buf + NODE_ENTRY_HEADER_BYTES + h, b->cmds.data, b->cmds.len);
    return buf;
}

static void batch_noop_cb(struct raft_apply *req, int status, void *result)
{
    struct batch_entry *e = req->data;
    struct batch *b = e->node->batch;
    (void)result;
    b->in_flight--;
    for (uint32_t i = 0; i < e->count; i++) {
        struct call *call = &e->calls[i];
        if (status != 0) {
            conn_reply_error(call->conn, call->id, RPC_E_UNAVAILABLE, raft_strerror(status));
        } else {
            msgpack_packer pk;
            size_t start;
            if (conn_reply_begin(call->conn, call->id, &start, &pk)) {
                msgpack_pack_nil(&pk);
                conn_reply_end(call->conn, start);
            }
        }
        conn_done(call->conn);
    }
    free(e);
}

/* The noop baseline: one entry of NODE_NOOP_BYTES per call, applied as
 * nothing, through the same raft path as a ledger batch. */
static void batch_flush_noops(struct node *n)
{
    struct batch *b = n->batch;
    if (b->noop_count == 0 || b->in_flight >= NODE_ENTRIES_IN_FLIGHT_MAX)
        return;
    if (!node_is_leader(n)) {
        batch_fail_calls(n, b->noops, b->noop_count, RPC_E_NOT_LEADER, "");
        b->noop_count = 0;
        return;
    }
    size_t len = 0;
    struct batch_entry *e = malloc(sizeof *e + b->noop_count * sizeof e->calls[0]);
    uint8_t *buf = e ? node_entry_alloc(NODE_ENTRY_NOOP, (size_t)b->noop_count * NODE_NOOP_BYTES,
                                        &len)
                     : NULL;
    if (!buf) {
        free(e);
        batch_fail_calls(n, b->noops, b->noop_count, RPC_E_INTERNAL, "out of memory");
        b->noop_count = 0;
        return;
    }
    e->node = n;
    e->count = b->noop_count;
    memcpy(e->calls, b->noops, b->noop_count * sizeof e->calls[0]);
    e->req.data = e;
    b->noop_count = 0;
    struct raft_buffer rb = {buf, len};
    int rv = raft_apply(&n->raft, &e->req, &rb, 1, batch_noop_cb);
    if (rv != 0) {
        raft_free(buf);
        batch_fail_calls(n, e->calls, e->count, RPC_E_UNAVAILABLE, raft_strerror(rv));
        free(e);
        return;
    }
    b->in_flight++;
}

void batch_submit_noop(struct node *n, struct conn *c, uint32_t id)
{
    struct batch *b = n->batch;
    if (b->noop_count >= PROTO_BATCH_MAX) {
        conn_reply_error(c, id, RPC_E_TOO_MANY, "the leader's queue is full");
        conn_done(c);
        return;
    }
    b->noops[b->noop_count].conn = c;
    b->noops[b->noop_count].id = id;
    b->noop_count++;
}

void batch_flush(struct node *n)
{
    struct batch *b = n->batch;
    batch_flush_noops(n);
    if (b->count == 0)
        return;
    if (!node_is_leader(n)) {
        batch_fail_calls(n, b->calls, b->count, RPC_E_NOT_LEADER, "");
        b->count = 0;
        b->cmds.len = 0;
        return;
    }
    if (b->in_flight >= NODE_ENTRIES_IN_FLIGHT_MAX)
        return; /* the open batch keeps growing; the next turn tries again */
    struct batch_entry *e = malloc(sizeof *e + b->count * sizeof e->calls[0]);
    size_t len = 0;
    void *buf = e ? batch_entry_bytes(b, node_stamp(n), &len) : NULL;
    if (!buf) {
        free(e);
        batch_fail_calls(n, b->calls, b->count, RPC_E_INTERNAL, "out of memory");
        b->count = 0;
        b->cmds.len = 0;
        return;
    }
    e->node = n;
    e->count = b->count;
    memcpy(e->calls, b->calls, b->count * sizeof e->calls[0]);
    e->req.data = e;
    struct raft_buffer rb = {buf, len};
    int rv = raft_apply(&n->raft, &e->req, &rb, 1, batch_apply_cb);
    b->count = 0;
    b->cmds.len = 0;
    if (rv != 0) {
        raft_free(buf);
        batch_fail_calls(n, e->calls, e->count,
                         rv == RAFT_NOTLEADER ? RPC_E_NOT_LEADER : RPC_E_UNAVAILABLE,
                         raft_strerror(rv));
        free(e);
        return;
    }
    b->in_flight++;
}

void batch_submit(struct node *n, struct conn *c, uint32_t id, const struct proto_cmd *cmd)
{
    struct batch *b = n->batch;
    if (b->count >= PROTO_BATCH_MAX || b->cmds.len >= NODE_BATCH_BYTES_MAX) {
        batch_flush(n);
        if (b->count >= PROTO_BATCH_MAX || b->cmds.len >= NODE_BATCH_BYTES_MAX) {
            if (c) {
                conn_reply_error(c, id, RPC_E_TOO_MANY, "the leader's queue is full");
                conn_done(c);
            }
            return;
        }
    }
    size_t before = b->cmds.len;
    if (proto_cmd_encode(&b->cmds, cmd) != 0) {
        b->cmds.len = before;
        if (c) {
            conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
            conn_done(c);
        }
        return;
    }
    b->calls[b->count].conn = c;
    b->calls[b->count].id = id;
    b->count++;
}

void batch_fail_all(struct node *n, const char *code, const char *message)
{
    struct batch *b = n->batch;
    if (!b)
        return;
    batch_fail_calls(n, b->calls, b->count, code, message);
    b->count = 0;
    b->cmds.len = 0;
    batch_fail_calls(n, b->noops, b->noop_count, code, message);
    b->noop_count = 0;
}

/* ---- raw entries (checkpoint, restore) ---- */

struct raw_entry {
    struct raft_apply req;
    struct call call;
};

static void batch_raw_cb(struct raft_apply *req, int status, void *result)
{
    struct raw_entry *e = req->data;
    (void)result;
    struct conn *c = e->call.conn;
    if (status != 0) {
        conn_reply_error(c, e->call.id, RPC_E_UNAVAILABLE, raft_strerror(status));
    } else {
        msgpack_packer pk;
        size_t start;
        if (conn_reply_begin(c, e->call.id, &start, &pk)) {
            msgpack_pack_map(&pk, 1);
            rpc_pack_str(&pk, "index");
            msgpack_pack_uint64(&pk, req->index);
            conn_reply_end(c, start);
        }
    }
    conn_done(c);
    free(e);
}

int batch_propose_raw(struct node *n, struct conn *c, uint32_t id, void *buf, size_t len)
{
    struct raw_entry *e = calloc(1, sizeof *e);
    if (!e) {
        raft_free(buf);
        return RAFT_NOMEM;
    }
    e->call.conn = c;
    e->call.id = id;
    e->req.data = e;
    struct raft_buffer rb = {buf, len};
    int rv = raft_apply(&n->raft, &e->req, &rb, 1, batch_raw_cb);
    if (rv != 0) {
        raft_free(buf);
        free(e);
        return rv;
    }
    conn_hold(c);
    return 0;
}
