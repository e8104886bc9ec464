/*
 * client.c — the purser client on libuv (client.h is the contract,
 * docs/rpc.md the protocol).
 *
 * Nodes.  One TCP connection per known node, opened at once and reopened
 * with a growing backoff whenever it drops.  A node walks DOWN → CONNECTING
 * → CHALLENGE (waiting for the server's challenge) → HELLO (hello sent) →
 * READY; only READY nodes carry calls.  One per-node timer is the reconnect
 * backoff while DOWN and the handshake timeout otherwise.  Hello answers and
 * NOT_LEADER details tell which node leads; an address never seen before is
 * added as a node (up to PC_NODES_MAX).
 *
 * Calls.  Each pending call sits in a slot (its msgid is slot | generation,
 * so a late answer to an earlier attempt is recognised and dropped) and on
 * up to three lists:
 *   - c->calls, in creation order, which is deadline order because every
 *     call gets the same deadline_ms;
 *   - c->attempts while in flight, in send order, which is attempt-timeout
 *     order for the same reason;
 *   - one of: c->backoff (a retry waiting for its backoff to pass); the
 *     queue of its target (c->queue_leader, c->queue_any or a node's queue:
 *     waiting for a usable node with room below RPC_INFLIGHT_MAX); or the
 *     in-flight list of the node it was sent to (failed over when the
 *     connection drops).
 * Queues are FIFO and are drained from the head until a call cannot go, so
 * a kick costs O(calls sent + 1) however many wait.  One repeating timer
 * (PC_TICK_MS, running only while calls are pending) pops expired heads
 * off the first two lists, moves the retries whose backoff has passed to
 * their queues and kicks the queues; so a tick costs O(expired + backing
 * off), never a scan of everything in flight.
 *
 * Writes.  Frames are appended to a node's `out` buffer; an idle handle
 * flushes every dirty node once per loop turn, so the calls queued during
 * one turn leave in a single write.  While a write is in flight its buffer
 * (`writing`) belongs to libuv; frames queued meanwhile wait in `out`.
 *
 * Re-entrancy.  User callbacks may call pc_call or pc_client_close.  Memory
 * is freed only in libuv close callbacks, so after every user callback the
 * code checks c->is_closing (and the node's state) and unwinds.
 */
#include "proto/client.h"
#include "proto/fmt.h"
#include "proto/mp.h"
#include "proto/tls.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/random.h>

#define PC_ADDR_MAX 24              /* "255.255.255.255:65535" and a NUL */
#define PC_ROLE_MAX 16
#define PC_MESSAGE_MAX 160          /* failure texts handed to callbacks */
#define PC_CODE_MAX 32              /* a remote error code */
#define PC_TICK_MS 5                /* timer resolution for timeouts */
#define PC_RETRY_MIN_MS 2           /* first retry backoff, doubled per attempt */
#define PC_RETRY_MAX_MS 100
#define PC_RECONNECT_MIN_MS 10      /* first reconnect backoff, doubled per failure */
#define PC_RECONNECT_MAX_MS 1000
#define PC_READ_BYTES (64u << 10)   /* one read from a socket */
#define PC_WRITE_KEEP_MAX (1u << 20) /* larger write buffers are released after use */
#define PC_ATTEMPT_TIMEOUT_MS_DEFAULT 2000
#define PC_DEADLINE_MS_DEFAULT 10000
#define PC_KEY_RANDOM_BYTES 16      /* random idempotency keys: "pc-" + 32 hex */
#define PC_KEY_PREFIX "pc-"

#define PC_SLOT_BITS 16
#define PC_SLOT_MASK ((1u << PC_SLOT_BITS) - 1)
#define PC_GEN_MAX 0x7fffu
#define PC_HELLO_ID_BIT 0x80000000u /* hello ids: this bit | node index */

_Static_assert(PC_PENDING_MAX == 1u << PC_SLOT_BITS, "a slot index fits in a msgid");

/* ---- intrusive lists ---- */

struct pc_link {
    struct pc_link *prev, *next;
};

static void link_init(struct pc_link *l)
{
    l->prev = l->next = l;
}

static bool link_is_empty(const struct pc_link *l)
{
    return l->next == l;
}

static void link_remove(struct pc_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

static void link_push_back(struct pc_link *head, struct pc_link *l)
{
    assert(link_is_empty(l));
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

#define link_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- state ---- */

enum node_state {
    NODE_DOWN,       /* no socket; the timer reconnects */
    NODE_CONNECTING, /* TCP connect under way */
    NODE_CHALLENGE,  /* connected, waiting for the server's challenge */
    NODE_HELLO,      /* hello sent, waiting for its answer */
    NODE_READY,      /* carries calls */
    NODE_CLOSING,    /* uv_close under way */
};

struct pc_node {
    struct pc_client *c;
    uint32_t index;
    char addr[PC_ADDR_MAX];
    struct sockaddr_in sa;
    enum node_state state;
    uint64_t node_id;           /* from the challenge; 0 until then */
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t timer;           /* reconnect backoff / handshake timeout */
    struct rpc_framer framer;
    struct proto_buf out;       /* frames queued, not yet written */
    struct proto_buf writing;   /* owned by libuv while is_writing */
    bool is_writing;
    uint32_t reconnect_ms;
    struct pc_link inflight;    /* calls sent here, unanswered */
    struct pc_link queue;       /* calls for this very node, waiting for it */
    uint32_t inflight_count;    /* at most RPC_INFLIGHT_MAX, the server's cap */
    char last_error[PC_MESSAGE_MAX];
    struct ptls *tls;           /* the session while connected over TLS */
};

enum call_state {
    CALL_WAITING,  /* on c->backoff or its target's queue */
    CALL_INFLIGHT, /* on a node's inflight list and c->attempts */
};

struct pc_call {
    struct pc_client *c;
    struct pc_link all_link;     /* c->calls */
    struct pc_link state_link;   /* c->backoff, a queue, or node->inflight */
    struct pc_link attempt_link; /* c->attempts while in flight */
    enum call_state state;
    uint32_t slot;
    uint32_t msgid;              /* of the current attempt */
    int target;
    int node;                    /* in flight on, or -1 */
    bool is_retryable;
    uint32_t attempt_count;
    uint64_t deadline_ms;        /* loop time */
    uint64_t due_ms;             /* in flight: attempt timeout; backoff: resend after */
    int last_status;             /* reported if the deadline passes while waiting */
    char last_error[PC_MESSAGE_MAX];
    pc_reply_cb cb;
    pc_apply_cb apply_cb;
    void *arg;
    char method[RPC_METHOD_MAX + 1];
    size_t params_len;
    uint8_t params[];
};

struct pc_client {
    uv_loop_t *loop;
    char role[PC_ROLE_MAX];
    char secret[RPC_SECRET_MAX + 1];
    uint32_t attempt_timeout_ms;
    uint32_t deadline_ms;
    struct pc_node nodes[PC_NODES_MAX];
    uint32_t node_count;
    int leader;                  /* node index, or -1 */
    uint32_t rr_next;            /* round-robin cursor */
    uv_timer_t tick;
    bool is_ticking;
    uv_idle_t flush_idle;
    uint32_t dirty_mask;         /* nodes with frames to flush */
    bool is_closing;
    uint32_t handle_count;       /* open libuv handles; freed at 0 when closing */
    struct pc_call **slots;      /* PC_PENDING_MAX */
    uint32_t slot_next;
    uint32_t pending_count;
    uint32_t gen;
    struct pc_link calls;
    struct pc_link attempts;
    struct pc_link backoff;      /* retries waiting for their backoff */
    struct pc_link queue_leader; /* calls for the leader waiting for it */
    struct pc_link queue_any;    /* calls for any node waiting for one */
    struct proto_buf scratch;    /* apply params */
    struct ptls_ctx *tls_ctx;    /* NULL: plain TCP */
    struct proto_buf tls_plain;  /* one read's plaintext */
    uint8_t read_buf[PC_READ_BYTES];
};

_Static_assert(PC_NODES_MAX <= 32, "dirty_mask has a bit per node");

static void node_connect(struct pc_node *n);
static void node_fail(struct pc_node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void node_flush(struct pc_node *n);
static void client_kick(struct pc_client *c);

/* ---- small helpers ---- */

static uint64_t client_now_ms(const struct pc_client *c)
{
    return uv_now(c->loop);
}

static void str_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0)
        return;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static const char *const pc_roles[] = {"admin", "gateway", "reader"};

static bool role_is_known(const char *role)
{
    for (size_t i = 0; i < sizeof pc_roles / sizeof pc_roles[0]; i++) {
        if (strcmp(role, pc_roles[i]) == 0)
            return true;
    }
    return false;
}

static uint32_t retry_backoff_ms(const struct pc_call *call)
{
    uint32_t shift = call->attempt_count < 6 ? call->attempt_count : 6;
    uint32_t ms = PC_RETRY_MIN_MS << shift;
    return ms < PC_RETRY_MAX_MS ? ms : PC_RETRY_MAX_MS;
}

static void client_handle_closed(struct pc_client *c);
static void flush_idle_cb(uv_idle_t *h);

/* ---- completing calls ---- */

static void call_unlink(struct pc_call *call)
{
    if (call->node >= 0) {
        struct pc_node *n = &call->c->nodes[call->node];
        assert(n->inflight_count > 0);
        n->inflight_count--;
    }
    link_remove(&call->state_link);
    link_remove(&call->attempt_link);
    call->node = -1;
}

/* Apply calls: the result is a bin holding proto_result_encode bytes. */
static void apply_reply_deliver(struct pc_call *call, const struct pc_reply *r)
{
    char text[PC_CODE_MAX + 2 + PC_MESSAGE_MAX];
    if (r->status == PC_EREMOTE) {
        snprintf(text, sizeof text, "%s: %s", r->code, r->message);
        call->apply_cb(call->arg, r->status, NULL, text);
        return;
    }
    if (r->status != PC_OK) {
        call->apply_cb(call->arg, r->status, NULL, r->message);
        return;
    }
    struct proto_result res;
    struct proto_error err;
    struct mp_reader rd;
    const uint8_t *bin;
    uint32_t bin_len;
    mp_reader_init(&rd, r->result, r->result_len);
    if (mp_bin_read(&rd, &bin, &bin_len) != MP_OK || mp_reader_left(&rd) != 0) {
        call->apply_cb(call->arg, PC_EREMOTE, NULL, "malformed apply answer: expected a bin");
        return;
    }
    if (proto_result_decode(bin, bin_len, &res, &err) != 0) {
        snprintf(text, sizeof text, "malformed apply answer: %s", err.message);
        call->apply_cb(call->arg, PC_EREMOTE, NULL, text);
        return;
    }
    call->apply_cb(call->arg, PC_OK, &res, NULL);
}

/* Finish a call: off every list, out of its slot, callback, free.  The
 * strings and the result need only live until this returns. */
static void call_complete(struct pc_call *call, int status, const char *code,
                          const char *message, const uint8_t *result, size_t result_len,
                          int node)
{
    struct pc_client *c = call->c;
    call_unlink(call);
    link_remove(&call->all_link);
    assert(c->slots[call->slot] == call);
    c->slots[call->slot] = NULL;
    assert(c->pending_count > 0);
    c->pending_count--;
    struct pc_reply r = {
        .status = status,
        .code = code,
        .message = message,
        .result = result,
        .result_len = result_len,
        .node = node,
    };
    if (call->apply_cb != NULL)
        apply_reply_deliver(call, &r);
    else
        call->cb(call->arg, &r);
    free(call);
}

/* Fail with the call's own last_status / last_error. */
static void call_fail_last(struct pc_call *call)
{
    call_complete(call, call->last_status, NULL, call->last_error, NULL, 0, -1);
}

__attribute__((format(printf, 3, 4)))
static void call_note(struct pc_call *call, int status, const char *fmt, ...)
{
    va_list ap;
    call->last_status = status;
    va_start(ap, fmt);
    vsnprintf(call->last_error, sizeof call->last_error, fmt, ap);
    va_end(ap);
}

/* ---- sending calls ---- */

static void tick_ensure(struct pc_client *c);

static void node_mark_dirty(struct pc_node *n)
{
    struct pc_client *c = n->c;
    c->dirty_mask |= 1u << n->index;
    if (!uv_is_active((uv_handle_t *)&c->flush_idle))
        uv_idle_start(&c->flush_idle, flush_idle_cb);
}

/* READY, and below the server's per-connection in-flight cap. */
static bool node_has_room(const struct pc_client *c, int i)
{
    return i >= 0 && (uint32_t)i < c->node_count && c->nodes[i].state == NODE_READY &&
           c->nodes[i].inflight_count < RPC_INFLIGHT_MAX;
}

/* A node with room, in round-robin order, or -1. */
static int node_pick_any(struct pc_client *c)
{
    for (uint32_t i = 0; i < c->node_count; i++) {
        uint32_t k = (c->rr_next + i) % c->node_count;
        if (node_has_room(c, (int)k)) {
            c->rr_next = k + 1;
            return (int)k;
        }
    }
    return -1;
}

static int call_pick_node(struct pc_client *c, const struct pc_call *call)
{
    if (call->target >= 0)
        return node_has_room(c, call->target) ? call->target : -1;
    if (call->target == PC_TARGET_LEADER && c->leader >= 0)
        return node_has_room(c, c->leader) ? c->leader : -1;
    return node_pick_any(c);
}

static uint32_t msgid_next(struct pc_client *c, uint32_t slot)
{
    c->gen = c->gen >= PC_GEN_MAX ? 1 : c->gen + 1;
    return c->gen << PC_SLOT_BITS | slot;
}

static int call_frame_append(struct proto_buf *out, const struct pc_call *call)
{
    msgpack_packer pk;
    size_t start;
    int rc = rpc_frame_begin(out, &pk, &start);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_uint8(&pk, RPC_REQUEST) != 0 ||
        msgpack_pack_uint32(&pk, call->msgid) != 0 || rpc_pack_str(&pk, call->method) != 0 ||
        proto_buf_append(out, call->params, call->params_len) != 0) {
        rpc_frame_abort(out, start);
        return RPC_ENOMEM;
    }
    return rpc_frame_end(out, start);
}

/* Send the call to a usable node now.  False (and nothing changed) when no
 * node fits or the frame could not be queued: the caller keeps it waiting.
 * Never calls back. */
static bool call_dispatch(struct pc_call *call)
{
    struct pc_client *c = call->c;
    int i = call_pick_node(c, call);
    if (i < 0)
        return false;
    struct pc_node *n = &c->nodes[i];
    uint32_t old_msgid = call->msgid;
    call->msgid = msgid_next(c, call->slot);
    if (call_frame_append(&n->out, call) != 0) {
        call->msgid = old_msgid;
        return false;
    }
    node_mark_dirty(n);
    call_unlink(call);
    call->state = CALL_INFLIGHT;
    call->node = i;
    n->inflight_count++;
    call->attempt_count++;
    call->due_ms = client_now_ms(c) + c->attempt_timeout_ms;
    link_push_back(&n->inflight, &call->state_link);
    link_push_back(&c->attempts, &call->attempt_link);
    return true;
}

static struct pc_link *call_queue(struct pc_call *call)
{
    struct pc_client *c = call->c;
    if (call->target == PC_TARGET_LEADER)
        return &c->queue_leader;
    if (call->target == PC_TARGET_ANY)
        return &c->queue_any;
    assert(call->target >= 0 && (uint32_t)call->target < c->node_count);
    return &c->nodes[call->target].queue;
}

/* Park a call: on its target's queue (delay 0), or until `delay_ms` has
 * passed. */
static void call_wait(struct pc_call *call, uint32_t delay_ms)
{
    struct pc_client *c = call->c;
    call_unlink(call);
    call->state = CALL_WAITING;
    call->due_ms = client_now_ms(c) + delay_ms;
    link_push_back(delay_ms == 0 ? call_queue(call) : &c->backoff, &call->state_link);
    tick_ensure(c);
}

/* An attempt ended without an answer that settles the call. */
static void call_retry_or_fail(struct pc_call *call)
{
    if (call->is_retryable)
        call_wait(call, retry_backoff_ms(call));
    else
        call_fail_last(call);
}

/* Send from the head of a queue until a call cannot go. */
static void queue_kick(struct pc_link *q)
{
    while (!link_is_empty(q)) {
        struct pc_call *call = link_entry(q->next, struct pc_call, state_link);
        if (!call_dispatch(call))
            return;
    }
}

static void client_kick(struct pc_client *c)
{
    queue_kick(&c->queue_leader);
    queue_kick(&c->queue_any);
    for (uint32_t i = 0; i < c->node_count; i++)
        queue_kick(&c->nodes[i].queue);
}

/* Retries whose backoff has passed join the tail of their queue. */
static void backoff_expire(struct pc_client *c, uint64_t now)
{
    struct pc_link *l = c->backoff.next;
    while (l != &c->backoff) {
        struct pc_link *next = l->next;
        struct pc_call *call = link_entry(l, struct pc_call, state_link);
        if (call->due_ms <= now) {
            link_remove(l);
            link_push_back(call_queue(call), l);
        }
        l = next;
    }
}

/* ---- the tick ---- */

/* A call never sent: say why, from the first node that failed. */
static void call_note_why_unreachable(struct pc_call *call)
{
    struct pc_client *c = call->c;
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (c->nodes[i].last_error[0] != '\0') {
            call_note(call, PC_EUNAVAILABLE, "no %s reachable before the deadline (%s)",
                      call->target == PC_TARGET_LEADER ? "leader" : "node",
                      c->nodes[i].last_error);
            return;
        }
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct pc_client *c = t->data;
    uint64_t now = client_now_ms(c);
    while (!link_is_empty(&c->calls) && !c->is_closing) {
        struct pc_call *call = link_entry(c->calls.next, struct pc_call, all_link);
        if (call->deadline_ms > now)
            break;
        if (call->state == CALL_INFLIGHT)
            call_note(call, PC_ETIMEOUT, "no answer from %s within the deadline (%u ms)",
                      c->nodes[call->node].addr, c->deadline_ms);
        else if (call->attempt_count == 0)
            call_note_why_unreachable(call);
        call_fail_last(call);
    }
    while (!link_is_empty(&c->attempts) && !c->is_closing) {
        struct pc_call *call = link_entry(c->attempts.next, struct pc_call, attempt_link);
        if (call->due_ms > now)
            break;
        call_note(call, PC_ETIMEOUT, "no answer from %s within %u ms",
                  c->nodes[call->node].addr, c->attempt_timeout_ms);
        call_retry_or_fail(call);
    }
    if (c->is_closing)
        return;
    backoff_expire(c, now);
    client_kick(c);
    if (c->pending_count == 0) {
        uv_timer_stop(&c->tick);
        c->is_ticking = false;
    }
}

static void tick_ensure(struct pc_client *c)
{
    if (c->is_ticking || c->is_closing)
        return;
    uv_timer_start(&c->tick, tick_cb, PC_TICK_MS, PC_TICK_MS);
    c->is_ticking = true;
}

/* ---- leaders and nodes ---- */

static int node_find_addr(const struct pc_client *c, const char *addr)
{
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (strcmp(c->nodes[i].addr, addr) == 0)
            return (int)i;
    }
    return -1;
}

static int node_find_id(const struct pc_client *c, uint64_t id)
{
    for (uint32_t i = 0; id != 0 && i < c->node_count; i++) {
        if (c->nodes[i].node_id == id)
            return (int)i;
    }
    return -1;
}

/* Add a node (not connected yet).  -1 when the address is bad or the
 * table is full. */
static int node_add(struct pc_client *c, const char *addr)
{
    char host[PC_ADDR_MAX];
    int port;
    if (c->node_count == PC_NODES_MAX || rpc_addr_parse(addr, host, sizeof host, &port) != 0)
        return -1;
    struct pc_node *n = &c->nodes[c->node_count];
    memset(n, 0, sizeof *n);
    if (uv_ip4_addr(host, port, &n->sa) != 0)
        return -1;
    n->c = c;
    n->index = c->node_count;
    str_copy(n->addr, sizeof n->addr, addr, strlen(addr));
    n->state = NODE_DOWN;
    n->reconnect_ms = PC_RECONNECT_MIN_MS;
    link_init(&n->inflight);
    link_init(&n->queue);
    rpc_framer_init(&n->framer, RPC_FRAME_MAX);
    proto_buf_init(&n->out);
    proto_buf_init(&n->writing);
    uv_timer_init(c->loop, &n->timer);
    c->handle_count++;
    n->timer.data = n;
    n->tcp.data = n;
    n->connect_req.data = n;
    n->write_req.data = n;
    c->node_count++;
    return (int)n->index;
}

/* The leader is node `id` at `addr` (either may be unknown: 0 / "").
 * Returns its index, adding and connecting a new node if need be; -1 when
 * it cannot be reached through the node table. */
static int leader_learn(struct pc_client *c, uint64_t id, const char *addr)
{
    int i = node_find_id(c, id);
    if (i < 0 && addr[0] != '\0') {
        i = node_find_addr(c, addr);
        if (i < 0) {
            i = node_add(c, addr);
            if (i >= 0)
                node_connect(&c->nodes[i]);
        }
    }
    c->leader = i;
    return i;
}

/* ---- node I/O ---- */

static void node_timer_cb(uv_timer_t *t)
{
    struct pc_node *n = t->data;
    if (n->c->is_closing)
        return;
    if (n->state == NODE_DOWN)
        node_connect(n);
    else if (n->state == NODE_CHALLENGE && n->c->tls_ctx == NULL)
        node_fail(n, "no challenge within %u ms (if the node speaks TLS, give a CA "
                  "to verify it with)", n->c->attempt_timeout_ms);
    else if (n->state != NODE_READY && n->state != NODE_CLOSING)
        node_fail(n, "handshake not done within %u ms", n->c->attempt_timeout_ms);
}

static void node_close_cb(uv_handle_t *h)
{
    struct pc_node *n = h->data;
    struct pc_client *c = n->c;
    ptls_free(n->tls);
    n->tls = NULL;
    rpc_framer_free(&n->framer);
    proto_buf_free(&n->out);
    proto_buf_free(&n->writing);
    n->is_writing = false;
    n->state = NODE_DOWN;
    if (c->is_closing) {
        client_handle_closed(c);
        return;
    }
    c->handle_count--;
    uv_timer_start(&n->timer, node_timer_cb, n->reconnect_ms, 0);
    n->reconnect_ms = n->reconnect_ms * 2 > PC_RECONNECT_MAX_MS ? PC_RECONNECT_MAX_MS
                                                                 : n->reconnect_ms * 2;
}

/* Drop the connection and fail its in-flight calls over. */
static void node_fail(struct pc_node *n, const char *fmt, ...)
{
    struct pc_client *c = n->c;
    assert(n->state != NODE_DOWN && n->state != NODE_CLOSING);
    int len = snprintf(n->last_error, sizeof n->last_error, "%s: ", n->addr);
    va_list ap;
    va_start(ap, fmt);
    if (len > 0 && (size_t)len < sizeof n->last_error)
        vsnprintf(n->last_error + len, sizeof n->last_error - (size_t)len, fmt, ap);
    va_end(ap);
    n->state = NODE_CLOSING;
    uv_timer_stop(&n->timer);
    uv_close((uv_handle_t *)&n->tcp, node_close_cb);
    c->dirty_mask &= ~(1u << n->index);
    if (c->leader == (int)n->index)
        c->leader = -1;
    while (!link_is_empty(&n->inflight) && !c->is_closing) {
        struct pc_call *call = link_entry(n->inflight.next, struct pc_call, state_link);
        call_note(call, PC_EUNAVAILABLE, "%s", n->last_error);
        call_retry_or_fail(call);
    }
}

static void node_write_cb(uv_write_t *req, int status)
{
    struct pc_node *n = req->data;
    n->is_writing = false;
    n->writing.len = 0;
    if (n->writing.cap > PC_WRITE_KEEP_MAX)
        proto_buf_free(&n->writing);
    if (n->state == NODE_CLOSING || n->c->is_closing)
        return;
    if (status < 0) {
        node_fail(n, "write: %s", uv_strerror(status));
        return;
    }
    node_flush(n);
}

/* ---- TLS hooks (proto/tls.h does the work) ---- */

/* Replace the plaintext in n->out with the bytes for the socket. */
static int node_tls_seal(struct pc_node *n)
{
    char msg[PTLS_MESSAGE_MAX];
    if (ptls_seal(n->tls, &n->out, msg, sizeof msg) == 0)
        return 0;
    n->out.len = 0;
    node_fail(n, "%s", msg);
    return -1;
}

/* Bytes read: *data and *len become the plaintext they complete. */
static int node_tls_recv(struct pc_node *n, const uint8_t **data, size_t *len)
{
    char msg[PTLS_MESSAGE_MAX];
    struct proto_buf *plain = &n->c->tls_plain;
    plain->len = 0;
    if (ptls_recv(n->tls, *data, *len, plain, msg, sizeof msg) != 0) {
        node_fail(n, "%s", msg);
        return -1;
    }
    if (ptls_has_output(n->tls))
        node_mark_dirty(n);
    *data = (const uint8_t *)plain->data;
    *len = plain->len;
    return 0;
}

/* Connected: start the session (the ClientHello leaves with the next flush). */
static int node_tls_start(struct pc_node *n)
{
    char msg[PTLS_MESSAGE_MAX] = "bad address";
    char host[PC_ADDR_MAX];
    int port;
    if (rpc_addr_parse(n->addr, host, sizeof host, &port) != 0 ||
        (n->tls = ptls_new(n->c->tls_ctx, host, msg, sizeof msg)) == NULL) {
        node_fail(n, "%s", msg);
        return -1;
    }
    node_mark_dirty(n);
    return 0;
}

static void node_flush(struct pc_node *n)
{
    bool is_open = n->state == NODE_CHALLENGE || n->state == NODE_HELLO ||
                   n->state == NODE_READY;
    if (!is_open || n->is_writing)
        return;
    if (n->tls && node_tls_seal(n) != 0)
        return;
    if (n->out.len == 0)
        return;
    struct proto_buf t = n->writing;
    n->writing = n->out;
    n->out = t;
    assert(n->writing.len <= UINT32_MAX);
    uv_buf_t b = uv_buf_init(n->writing.data, (unsigned)n->writing.len);
    int rc = uv_write(&n->write_req, (uv_stream_t *)&n->tcp, &b, 1, node_write_cb);
    if (rc != 0) {
        n->writing.len = 0;
        node_fail(n, "write: %s", uv_strerror(rc));
        return;
    }
    n->is_writing = true;
}

static void flush_idle_cb(uv_idle_t *h)
{
    struct pc_client *c = h->data;
    uint32_t mask = c->dirty_mask;
    c->dirty_mask = 0;
    uv_idle_stop(h);
    for (uint32_t i = 0; i < c->node_count && !c->is_closing; i++) {
        if (mask & (1u << i))
            node_flush(&c->nodes[i]);
    }
}

static void read_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pc_node *n = h->data;
    (void)suggested;
    /* One buffer serves every node: libuv consumes it in the read callback
     * that follows at once, and the framer copies what it needs. */
    *buf = uv_buf_init((char *)n->c->read_buf, PC_READ_BYTES);
}

/* [version, nonce, node_id] → send hello. */
static void node_on_challenge(struct pc_node *n, const struct rpc_msg *m)
{
    struct pc_client *c = n->c;
    struct mp_reader r;
    uint32_t count;
    uint64_t version, node_id;
    const uint8_t *nonce;
    uint32_t nonce_len;
    mp_reader_init(&r, m->params, m->params_len);
    if (!proto_str_eq(m->method, "challenge") || mp_array_read(&r, &count) != MP_OK ||
        count != 3 || mp_uint_read(&r, &version) != MP_OK ||
        mp_bin_read(&r, &nonce, &nonce_len) != MP_OK || nonce_len != RPC_NONCE_BYTES ||
        mp_uint_read(&r, &node_id) != MP_OK) {
        node_fail(n, "expected a challenge [version, nonce, node_id]");
        return;
    }
    if (version != RPC_VERSION) {
        node_fail(n, "server speaks protocol version %llu, this client %d",
                  (unsigned long long)version, RPC_VERSION);
        return;
    }
    n->node_id = node_id;

    msgpack_packer pk;
    size_t start;
    uint8_t proof[RPC_PROOF_BYTES];
    int rc = rpc_request_begin(&n->out, &pk, &start, PC_HELLO_ID_BIT | n->index, "hello", 3);
    if (rc == 0) {
        if (msgpack_pack_uint32(&pk, RPC_VERSION) != 0 || rpc_pack_str(&pk, c->role) != 0)
            rc = RPC_ENOMEM;
        else if (c->secret[0] == '\0')
            rc = msgpack_pack_nil(&pk) != 0 ? RPC_ENOMEM : 0;
        else {
            rpc_proof(c->secret, nonce, c->role, proof);
            rc = rpc_pack_bin(&pk, proof, sizeof proof);
        }
        if (rc != 0)
            rpc_frame_abort(&n->out, start);
        else
            rc = rpc_frame_end(&n->out, start);
    }
    if (rc != 0) {
        node_fail(n, "out of memory for the hello");
        return;
    }
    n->state = NODE_HELLO;
    node_mark_dirty(n);
}

/* {node_id, leader_id, leader_rpc}; other keys are skipped. */
static int hello_answer_parse(const uint8_t *p, size_t len, uint64_t *leader_id,
                              char *leader_rpc, size_t cap)
{
    struct mp_reader r;
    uint32_t count;
    *leader_id = 0;
    leader_rpc[0] = '\0';
    mp_reader_init(&r, p, len);
    if (mp_map_read(&r, &count) != MP_OK)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct proto_str key;
        if (mp_str_read(&r, &key.ptr, &key.len) != MP_OK)
            return -1;
        int rc;
        if (proto_str_eq(key, "leader_id")) {
            rc = mp_nil_peek(&r) ? mp_nil_read(&r) : mp_uint_read(&r, leader_id);
        } else if (proto_str_eq(key, "leader_rpc")) {
            struct proto_str s = {NULL, 0};
            rc = mp_nil_peek(&r) ? mp_nil_read(&r) : mp_str_read(&r, &s.ptr, &s.len);
            if (rc == MP_OK && s.len >= cap)
                return -1;
            if (rc == MP_OK)
                str_copy(leader_rpc, cap, s.ptr ? s.ptr : "", s.len);
        } else {
            rc = mp_value_skip(&r, 8);
        }
        if (rc != MP_OK)
            return -1;
    }
    return mp_reader_left(&r) == 0 ? 0 : -1;
}

static void node_on_hello_answer(struct pc_node *n, const struct rpc_msg *m)
{
    struct pc_client *c = n->c;
    uint64_t leader_id;
    char leader_rpc[PC_ADDR_MAX];
    if (m->type != RPC_RESPONSE || m->id != (PC_HELLO_ID_BIT | n->index)) {
        node_fail(n, "expected the answer to hello");
        return;
    }
    if (m->is_error) {
        node_fail(n, "hello refused: %.*s: %.*s", (int)m->err_code.len, m->err_code.ptr,
                  (int)(m->err_message.len > 96 ? 96 : m->err_message.len),
                  m->err_message.ptr);
        return;
    }
    if (hello_answer_parse(m->result, m->result_len, &leader_id, leader_rpc,
                           sizeof leader_rpc) != 0) {
        node_fail(n, "malformed hello answer (expected {node_id, leader_id, leader_rpc})");
        return;
    }
    n->state = NODE_READY;
    n->reconnect_ms = PC_RECONNECT_MIN_MS;
    n->last_error[0] = '\0';
    uv_timer_stop(&n->timer);
    if (leader_id != 0 && leader_id == n->node_id)
        c->leader = (int)n->index;
    else if (leader_id != 0 || leader_rpc[0] != '\0')
        leader_learn(c, leader_id, leader_rpc);
    else if (c->leader == (int)n->index)
        c->leader = -1;
    client_kick(c);
}

/* NOT_LEADER detail: [leader_id, leader_rpc] or nil. */
static int not_leader_follow(struct pc_client *c, const struct rpc_msg *m)
{
    struct mp_reader r;
    uint32_t count;
    uint64_t id = 0;
    struct proto_str addr = {NULL, 0};
    char buf[PC_ADDR_MAX];
    mp_reader_init(&r, m->err_detail, m->err_detail_len);
    if (mp_array_read(&r, &count) != MP_OK || count != 2 || mp_uint_read(&r, &id) != MP_OK)
        return c->leader = -1;
    if (!mp_nil_peek(&r) && (mp_str_read(&r, &addr.ptr, &addr.len) != MP_OK ||
                             addr.len >= sizeof buf))
        return c->leader = -1;
    str_copy(buf, sizeof buf, addr.ptr ? addr.ptr : "", addr.len);
    return leader_learn(c, id, buf);
}

static void call_on_response(struct pc_node *n, struct pc_call *call, const struct rpc_msg *m)
{
    struct pc_client *c = n->c;
    char code[PC_CODE_MAX + 1], message[PC_MESSAGE_MAX];
    call_unlink(call);
    if (!m->is_error) {
        call_complete(call, PC_OK, NULL, NULL, m->result, m->result_len, (int)n->index);
        return;
    }
    str_copy(code, sizeof code, m->err_code.ptr, m->err_code.len);
    str_copy(message, sizeof message, m->err_message.ptr, m->err_message.len);
    /* NOT_LEADER and TOO_MANY are refusals: nothing was done, so any call
     * may go again; UNAVAILABLE may hide an outcome, so only retryable ones. */
    if (strcmp(code, RPC_E_NOT_LEADER) == 0 && call->target == PC_TARGET_LEADER) {
        call_note(call, PC_EUNAVAILABLE, "%s: %s: %s", n->addr, code, message);
        int next = not_leader_follow(c, m);
        if (next >= 0 && next != (int)n->index && call_dispatch(call))
            return;
        call_wait(call, next >= 0 && next != (int)n->index ? 0 : retry_backoff_ms(call));
        return;
    }
    bool is_unavailable = strcmp(code, RPC_E_UNAVAILABLE) == 0;
    if ((is_unavailable && call->is_retryable) || strcmp(code, RPC_E_TOO_MANY) == 0) {
        call_note(call, PC_EUNAVAILABLE, "%s: %s: %s", n->addr, code, message);
        if (is_unavailable && c->leader == (int)n->index)
            c->leader = -1;
        call_wait(call, retry_backoff_ms(call));
        return;
    }
    call_complete(call, PC_EREMOTE, code, message, NULL, 0, (int)n->index);
}

static void node_on_ready_message(struct pc_node *n, const struct rpc_msg *m)
{
    struct pc_client *c = n->c;
    if (m->type != RPC_RESPONSE || (m->id & PC_HELLO_ID_BIT) != 0)
        return; /* notifications are for later protocol versions */
    struct pc_call *call = c->slots[m->id & PC_SLOT_MASK];
    if (call == NULL || call->msgid != m->id || call->node != (int)n->index ||
        call->state != CALL_INFLIGHT)
        return; /* the answer to an attempt given up on */
    bool was_full = n->inflight_count == RPC_INFLIGHT_MAX;
    call_on_response(n, call, m);
    /* Calls held back by the cap go now rather than at the next tick. */
    if (was_full && !c->is_closing && n->state == NODE_READY)
        client_kick(c);
}

static void node_on_message(struct pc_node *n, const struct rpc_msg *m)
{
    switch (n->state) {
    case NODE_CHALLENGE:
        if (m->type != RPC_NOTIFY) {
            node_fail(n, "expected a challenge first");
            return;
        }
        node_on_challenge(n, m);
        return;
    case NODE_HELLO:
        node_on_hello_answer(n, m);
        return;
    case NODE_READY:
        node_on_ready_message(n, m);
        return;
    default:
        assert(!"message on a node that is not connected");
    }
}

static void node_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pc_node *n = s->data;
    struct pc_client *c = n->c;
    (void)buf;
    if (nread == 0 || n->state == NODE_CLOSING || c->is_closing)
        return;
    if (nread < 0) {
        node_fail(n, "%s", nread == UV_EOF ? "connection closed by the server"
                                           : uv_strerror((int)nread));
        return;
    }
    const uint8_t *data = c->read_buf;
    size_t data_len = (size_t)nread;
    if (n->tls && node_tls_recv(n, &data, &data_len) != 0)
        return;
    int rc = rpc_framer_feed(&n->framer, data, data_len);
    while (rc == 0) {
        const uint8_t *frame;
        size_t len;
        struct rpc_msg m;
        struct proto_error err;
        rc = rpc_framer_next(&n->framer, &frame, &len);
        if (rc <= 0)
            break;
        if (rpc_msg_decode(frame, len, &m, &err) != 0) {
            node_fail(n, "bad message from the server: %s", err.message);
            return;
        }
        node_on_message(n, &m);
        if (n->state == NODE_CLOSING || n->state == NODE_DOWN || c->is_closing)
            return;
        rc = 0;
    }
    if (rc == RPC_EFRAME)
        node_fail(n, "frame larger than %u bytes", RPC_FRAME_MAX);
    else if (rc == RPC_ENOMEM)
        node_fail(n, "out of memory for a frame");
}

static void node_connect_cb(uv_connect_t *req, int status)
{
    struct pc_node *n = req->data;
    if (status == UV_ECANCELED || n->c->is_closing || n->state != NODE_CONNECTING)
        return;
    if (status < 0) {
        node_fail(n, "connect: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&n->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&n->tcp, read_alloc_cb, node_read_cb);
    if (rc != 0) {
        node_fail(n, "read: %s", uv_strerror(rc));
        return;
    }
    n->state = NODE_CHALLENGE;
    if (n->c->tls_ctx)
        node_tls_start(n);
}

static void node_connect(struct pc_node *n)
{
    struct pc_client *c = n->c;
    assert(n->state == NODE_DOWN);
    int rc = uv_tcp_init(c->loop, &n->tcp);
    if (rc != 0) {
        snprintf(n->last_error, sizeof n->last_error, "%s: %s", n->addr, uv_strerror(rc));
        uv_timer_start(&n->timer, node_timer_cb, n->reconnect_ms, 0);
        return;
    }
    c->handle_count++;
    n->tcp.data = n;
    n->node_id = 0;
    rpc_framer_init(&n->framer, RPC_FRAME_MAX);
    n->state = NODE_CONNECTING;
    uv_timer_start(&n->timer, node_timer_cb, c->attempt_timeout_ms, 0);
    rc = uv_tcp_connect(&n->connect_req, &n->tcp, (const struct sockaddr *)&n->sa,
                        node_connect_cb);
    if (rc != 0)
        node_fail(n, "connect: %s", uv_strerror(rc));
}

/* ---- opening and closing ---- */

static void client_free(struct pc_client *c)
{
    assert(c->handle_count == 0 && c->pending_count == 0);
    proto_buf_free(&c->scratch);
    proto_buf_free(&c->tls_plain);
    free(c->slots);
    free(c);
}


static void client_handle_closed(struct pc_client *c)
{
    assert(c->handle_count > 0);
    c->handle_count--;
    if (c->is_closing && c->handle_count == 0)
        client_free(c);
}

static void node_timer_close_cb(uv_handle_t *h)
{
    struct pc_node *n = h->data;
    client_handle_closed(n->c);
}

static void client_handle_close_cb(uv_handle_t *h)
{
    client_handle_closed(h->data);
}

static int open_fail(struct proto_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int open_fail(struct proto_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return PC_EINVAL;
}

static int options_check(const struct pc_options *o, struct proto_error *err)
{
    char host[PC_ADDR_MAX];
    int port;
    if (o->addr_count == 0 || o->addr_count > PC_NODES_MAX)
        return open_fail(err, PROTO_ELIMIT, "client: %u addresses, expected 1 to %d",
                         o->addr_count, PC_NODES_MAX);
    for (uint32_t i = 0; i < o->addr_count; i++) {
        if (o->addrs[i] == NULL || rpc_addr_parse(o->addrs[i], host, sizeof host, &port) != 0)
            return open_fail(err, PROTO_EMALFORMED, "client: address \"%.40s\" is not "
                             "a.b.c.d:port", o->addrs[i] ? o->addrs[i] : "(null)");
    }
    if (o->role == NULL || !role_is_known(o->role))
        return open_fail(err, PROTO_EMALFORMED, "client: role \"%.20s\" is not admin, "
                         "gateway or reader", o->role ? o->role : "(null)");
    if (o->secret != NULL && strlen(o->secret) > RPC_SECRET_MAX)
        return open_fail(err, PROTO_ELIMIT, "client: secret longer than %d bytes",
                         RPC_SECRET_MAX);
    return 0;
}

int pc_client_open(uv_loop_t *loop, const struct pc_options *o, struct pc_client **out,
                   struct proto_error *err)
{
    *out = NULL;
    int rc = options_check(o, err);
    if (rc != 0)
        return rc;
    struct pc_client *c = calloc(1, sizeof *c);
    struct pc_call **slots = calloc(PC_PENDING_MAX, sizeof *slots);
    if (c == NULL || slots == NULL) {
        free(c);
        free(slots);
        return open_fail(err, PROTO_ENOMEM, "client: out of memory");
    }
    c->loop = loop;
    c->slots = slots;
    str_copy(c->role, sizeof c->role, o->role, strlen(o->role));
    if (o->secret != NULL)
        str_copy(c->secret, sizeof c->secret, o->secret, strlen(o->secret));
    c->attempt_timeout_ms = o->attempt_timeout_ms ? o->attempt_timeout_ms
                                                  : PC_ATTEMPT_TIMEOUT_MS_DEFAULT;
    c->deadline_ms = o->deadline_ms ? o->deadline_ms : PC_DEADLINE_MS_DEFAULT;
    c->leader = -1;
    c->tls_ctx = o->tls;
    proto_buf_init(&c->tls_plain);
    link_init(&c->calls);
    link_init(&c->attempts);
    link_init(&c->backoff);
    link_init(&c->queue_leader);
    link_init(&c->queue_any);
    proto_buf_init(&c->scratch);
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_idle_init(loop, &c->flush_idle);
    c->flush_idle.data = c;
    c->handle_count = 2;
    for (uint32_t i = 0; i < o->addr_count; i++) {
        /* A repeated address would be one node twice: keep the first. */
        if (node_find_addr(c, o->addrs[i]) < 0) {
            int k = node_add(c, o->addrs[i]);
            assert(k >= 0);
            (void)k;
        }
    }
    for (uint32_t i = 0; i < c->node_count; i++)
        node_connect(&c->nodes[i]);
    *out = c;
    return 0;
}

void pc_client_close(struct pc_client *c)
{
    if (c == NULL || c->is_closing)
        return;
    c->is_closing = true;
    while (!link_is_empty(&c->calls)) {
        struct pc_call *call = link_entry(c->calls.next, struct pc_call, all_link);
        call_complete(call, PC_ECLOSED, NULL, "client closed", NULL, 0, -1);
    }
    for (uint32_t i = 0; i < c->node_count; i++) {
        struct pc_node *n = &c->nodes[i];
        if (n->state != NODE_DOWN && n->state != NODE_CLOSING) {
            n->state = NODE_CLOSING;
            uv_close((uv_handle_t *)&n->tcp, node_close_cb);
        }
        uv_close((uv_handle_t *)&n->timer, node_timer_close_cb);
    }
    uv_close((uv_handle_t *)&c->tick, client_handle_close_cb);
    uv_close((uv_handle_t *)&c->flush_idle, client_handle_close_cb);
}

/* ---- calls ---- */

static bool params_is_array(const void *params, size_t len)
{
    struct mp_reader r;
    struct mp_reader peek;
    uint32_t count;
    mp_reader_init(&r, params, len);
    peek = r;
    return mp_array_read(&peek, &count) == MP_OK && mp_value_skip(&r, MP_DEPTH_MAX) == MP_OK &&
           mp_reader_left(&r) == 0;
}

static int slot_take(struct pc_client *c, uint32_t *slot)
{
    if (c->pending_count >= PC_PENDING_MAX)
        return -1;
    for (;;) {
        uint32_t s = c->slot_next;
        c->slot_next = (s + 1) & PC_SLOT_MASK;
        if (c->slots[s] == NULL) {
            *slot = s;
            return 0;
        }
    }
}

static int call_start(struct pc_client *c, int target, const char *method, const void *params,
                      size_t params_len, bool is_retryable, pc_reply_cb cb, pc_apply_cb apply_cb,
                      void *arg)
{
    /* Room for the envelope around the params: array, type, msgid, method. */
    const size_t envelope_max = 1 + 1 + 5 + 2 + RPC_METHOD_MAX;
    uint32_t slot;
    if (c->is_closing || method == NULL || (cb == NULL && apply_cb == NULL))
        return PC_EINVAL;
    size_t method_len = strlen(method);
    if (method_len == 0 || method_len > RPC_METHOD_MAX)
        return PC_EINVAL;
    if (target != PC_TARGET_LEADER && target != PC_TARGET_ANY &&
        (target < 0 || (uint32_t)target >= c->node_count))
        return PC_EINVAL;
    if (params_len > RPC_FRAME_MAX - envelope_max || !params_is_array(params, params_len))
        return PC_EINVAL;
    if (slot_take(c, &slot) != 0)
        return PC_EINVAL;
    struct pc_call *call = malloc(sizeof *call + params_len);
    if (call == NULL)
        return PC_EINVAL;
    memset(call, 0, sizeof *call);
    call->c = c;
    link_init(&call->all_link);
    link_init(&call->state_link);
    link_init(&call->attempt_link);
    call->slot = slot;
    call->target = target;
    call->node = -1;
    call->is_retryable = is_retryable;
    call->deadline_ms = client_now_ms(c) + c->deadline_ms;
    call->cb = cb;
    call->apply_cb = apply_cb;
    call->arg = arg;
    call->last_status = PC_EUNAVAILABLE; /* until an attempt says more; no printf per call */
    fmt_copy(call->last_error, sizeof call->last_error,
             target == PC_TARGET_LEADER ? "no leader reachable before the deadline"
                                        : "no node reachable before the deadline");
    memcpy(call->method, method, method_len + 1);
    call->params_len = params_len;
    memcpy(call->params, params, params_len);
    if (!link_is_empty(&c->calls)) {
        const struct pc_call *last = link_entry(c->calls.prev, struct pc_call, all_link);
        assert(last->deadline_ms <= call->deadline_ms);
        (void)last;
    }
    link_push_back(&c->calls, &call->all_link);
    c->slots[slot] = call;
    c->pending_count++;
    /* Behind others waiting for the same target, or straight out. */
    if (!link_is_empty(call_queue(call)) || !call_dispatch(call))
        call_wait(call, 0);
    tick_ensure(c);
    return 0;
}

int pc_call(struct pc_client *c, int target, const char *method, const void *params,
            size_t params_len, bool is_retryable, pc_reply_cb cb, void *arg)
{
    if (cb == NULL)
        return PC_EINVAL;
    return call_start(c, target, method, params, params_len, is_retryable, cb, NULL, arg);
}

/* "pc-" and 32 hex digits: 8 bytes from getrandom() drawn once per process,
 * then a 64-bit counter.  Unique per process by the counter, across
 * processes by the random half; a getrandom() per call cost ~15% of a
 * load generator's CPU.  Keys are not secrets. */
static uint8_t apply_key_seed[PC_KEY_RANDOM_BYTES / 2];
static bool apply_key_seeded;

static void apply_key_seed_draw(void)
{
    apply_key_seeded = getrandom(apply_key_seed, sizeof apply_key_seed, 0) ==
                       (ssize_t)sizeof apply_key_seed;
}

static int apply_key_make(char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static uint64_t counter;
    size_t prefix = sizeof PC_KEY_PREFIX - 1;
    assert(cap >= prefix + 2 * PC_KEY_RANDOM_BYTES + 1);
    (void)cap;
    pthread_once(&once, apply_key_seed_draw);
    if (!apply_key_seeded)
        return -1;
    uint64_t n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    uint8_t bytes[PC_KEY_RANDOM_BYTES];
    memcpy(bytes, apply_key_seed, sizeof apply_key_seed);
    for (size_t i = 0; i < 8; i++)
        bytes[sizeof apply_key_seed + i] = (uint8_t)(n >> (56 - 8 * i));
    memcpy(out, PC_KEY_PREFIX, prefix);
    for (size_t i = 0; i < sizeof bytes; i++) {
        out[prefix + 2 * i] = hex[bytes[i] >> 4];
        out[prefix + 2 * i + 1] = hex[bytes[i] & 15];
    }
    out[prefix + 2 * PC_KEY_RANDOM_BYTES] = '\0';
    return 0;
}

int pc_apply(struct pc_client *c, const struct proto_cmd *cmd, pc_apply_cb cb, void *arg)
{
    /* params = [bin(cmd)]: the command is encoded after room for the largest
     * header (fixarray + bin32), then the real header is written just
     * before it. */
    enum { HEAD_MAX = 1 + 5 };
    char key[sizeof PC_KEY_PREFIX + 2 * PC_KEY_RANDOM_BYTES];
    struct proto_cmd copy;
    uint8_t head[HEAD_MAX];
    size_t head_len;
    if (c->is_closing || cb == NULL || !proto_cmd_type_is_known(cmd->type) ||
        cmd->key.len > PROTO_KEY_MAX)
        return PC_EINVAL;
    copy = *cmd;
    if (copy.key.len == 0) {
        if (apply_key_make(key, sizeof key) != 0)
            return PC_EINVAL;
        copy.key = proto_str_c(key);
    }
    struct proto_buf *b = &c->scratch;
    b->len = 0;
    if (proto_buf_append(b, head, HEAD_MAX) != 0 || proto_cmd_encode(b, &copy) != 0)
        return PC_EINVAL;
    size_t n = b->len - HEAD_MAX;
    if (n > UINT32_MAX)
        return PC_EINVAL;
    head[0] = 0x91;
    if (n <= UINT8_MAX) {
        head[1] = 0xc4;
        head[2] = (uint8_t)n;
        head_len = 3;
    } else if (n <= UINT16_MAX) {
        head[1] = 0xc5;
        head[2] = (uint8_t)(n >> 8);
        head[3] = (uint8_t)n;
        head_len = 4;
    } else {
        head[1] = 0xc6;
        for (int i = 0; i < 4; i++)
            head[2 + i] = (uint8_t)(n >> (24 - 8 * i));
        head_len = 6;
    }
    uint8_t *params = (uint8_t *)b->data + HEAD_MAX - head_len;
    memcpy(params, head, head_len);
    return call_start(c, PC_TARGET_LEADER, "apply", params, head_len + n, true, NULL, cb, arg);
}

uint32_t pc_node_count(const struct pc_client *c)
{
    return c->node_count;
}

const char *pc_node_addr(const struct pc_client *c, uint32_t i)
{
    return i < c->node_count ? c->nodes[i].addr : NULL;
}

int pc_leader(const struct pc_client *c)
{
    return c->leader;
}

/* ---- the synchronous wrapper ---- */

struct pc_sync {
    uv_loop_t loop;
    struct pc_client *c;
};

/* Where one synchronous call puts its outcome. */
struct sync_wait {
    bool is_done;
    int status;
    struct proto_buf *result;
    char *code;
    size_t code_cap;
    char *message;
    size_t message_cap;
    struct proto_result *res;
};

int pc_sync_open(const struct pc_options *o, struct pc_sync **out, struct proto_error *err)
{
    *out = NULL;
    struct pc_sync *s = calloc(1, sizeof *s);
    if (s == NULL)
        return open_fail(err, PROTO_ENOMEM, "client: out of memory");
    int rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        free(s);
        return open_fail(err, PROTO_ENOMEM, "client: loop: %s", uv_strerror(rc));
    }
    rc = pc_client_open(&s->loop, o, &s->c, err);
    if (rc != 0) {
        uv_loop_close(&s->loop);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void pc_sync_close(struct pc_sync *s)
{
    if (s == NULL)
        return;
    pc_client_close(s->c);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&s->loop);
    assert(rc == 0);
    (void)rc;
    free(s);
}

struct pc_client *pc_sync_client(struct pc_sync *s)
{
    return s->c;
}

static void sync_text_set(char *dst, size_t cap, const char *src)
{
    if (dst != NULL && cap > 0)
        str_copy(dst, cap, src != NULL ? src : "", src != NULL ? strlen(src) : 0);
}

static void sync_call_cb(void *arg, const struct pc_reply *r)
{
    struct sync_wait *w = arg;
    w->is_done = true;
    w->status = r->status;
    sync_text_set(w->code, w->code_cap, r->code);
    sync_text_set(w->message, w->message_cap, r->message);
    if (r->status == PC_OK && w->result != NULL &&
        proto_buf_append(w->result, r->result, r->result_len) != 0) {
        w->status = PC_EINVAL;
        sync_text_set(w->message, w->message_cap, "out of memory for the result");
    }
}

static void sync_apply_cb(void *arg, int status, const struct proto_result *res,
                          const char *message)
{
    struct sync_wait *w = arg;
    w->is_done = true;
    w->status = status;
    sync_text_set(w->message, w->message_cap, message);
    if (status == PC_OK)
        *w->res = *res;
}

/* Run the private loop until the call is done. */
static int sync_wait_run(struct pc_sync *s, struct sync_wait *w)
{
    while (!w->is_done)
        uv_run(&s->loop, UV_RUN_ONCE);
    return w->status;
}

int pc_sync_call(struct pc_sync *s, int target, const char *method, const void *params,
                 size_t params_len, bool is_retryable, struct proto_buf *result, char *code,
                 size_t code_cap, char *message, size_t message_cap)
{
    struct sync_wait w = {false, PC_EINVAL, result, code, code_cap, message, message_cap, NULL};
    sync_text_set(code, code_cap, "");
    sync_text_set(message, message_cap, "");
    if (result != NULL)
        result->len = 0;
    /* The loop's clock stood still since the last call: deadlines count
     * from now. */
    uv_update_time(&s->loop);
    int rc = pc_call(s->c, target, method, params, params_len, is_retryable, sync_call_cb, &w);
    if (rc != 0) {
        sync_text_set(message, message_cap, "invalid call (method, params or target)");
        return rc;
    }
    return sync_wait_run(s, &w);
}

int pc_sync_apply(struct pc_sync *s, const struct proto_cmd *cmd, struct proto_result *res,
                  char *message, size_t message_cap)
{
    struct sync_wait w = {false, PC_EINVAL, NULL, NULL, 0, message, message_cap, res};
    sync_text_set(message, message_cap, "");
    memset(res, 0, sizeof *res);
    uv_update_time(&s->loop);
    int rc = pc_apply(s->c, cmd, sync_apply_cb, &w);
    if (rc != 0) {
        sync_text_set(message, message_cap, "invalid command");
        return rc;
    }
    return sync_wait_run(s, &w);
}
