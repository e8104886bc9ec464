/*
 * server.h — what server.c shares with batch.c and methods.c: connections
 * and how to answer on them.
 *
 * A call keeps its connection alive (conn_hold) until it is answered
 * (conn_done), so a client that disconnects while its write is in raft does
 * not leave a dangling pointer: the answer is dropped instead.
 */
#ifndef PURSER_SERVER_H
#define PURSER_SERVER_H

#include "cluster/hello.h" /* enum conn_role */
#include "cluster/node.h"
#include "proto/mp.h"
#include "proto/tls.h"

struct conn {
    uv_tcp_t tcp;
    struct server *srv;
    struct rpc_framer framer;
    struct proto_buf out;      /* frames to write at the end of this loop turn */
    bool is_queued;            /* on the server's flush list */
    struct conn *next_queued;
    struct conn *prev, *next;  /* all connections */
    uint8_t nonce[RPC_NONCE_BYTES];
    int role;                  /* enum conn_role; NONE until hello */
    uint32_t inflight;         /* calls not yet answered */
    uint32_t refs;             /* 1 for the open socket + 1 per held call */
    uint32_t reply_id;         /* msgid of the answer being packed */
    bool is_closing;
    struct ptls *tls;          /* NULL: plain TCP */
};

struct server {
    struct node *node;
    uv_tcp_t listener;
    uv_check_t check;          /* end of loop turn: flush batches and writes */
    struct conn *conns;
    struct conn *queued;       /* connections with output */
    uint64_t conn_count;
    bool is_stopping;
    struct ptls_ctx *tls_ctx;  /* --tls-cert: every connection speaks TLS */
    struct proto_buf tls_plain; /* one read's plaintext */
};

/* A call in progress: where its answer goes. */
struct call {
    struct conn *conn;
    uint32_t id;
};

void conn_hold(struct conn *c);
/* The call is answered (or dropped): release what conn_hold took. */
void conn_done(struct conn *c);
bool conn_is_open(const struct conn *c);

/* Answer with a result: returns a packer positioned for exactly one value
 * (pack it, then call conn_reply_end).  NULL when the connection is gone. */
msgpack_packer *conn_reply_begin(struct conn *c, uint32_t id, size_t *start,
                                 msgpack_packer *pk);
void conn_reply_end(struct conn *c, size_t start);
void conn_reply_error(struct conn *c, uint32_t id, const char *code, const char *message);
/* NOT_LEADER with the leader's id and rpc address as detail. */
void conn_reply_not_leader(struct conn *c, uint32_t id);

/* methods.c: the handlers.  `params` is positioned after the params array
 * header, which had `count` elements.  A handler answers (now or later) and
 * returns; for a later answer it holds the connection. */
typedef void (*method_fn)(struct node *n, struct conn *c, uint32_t id, struct mp_reader *params,
                          uint32_t count);
struct method_def {
    const char *name;
    method_fn fn;
    int role_min;            /* enum conn_role */
};
const struct method_def *methods_find(struct proto_str name);
/* Pack one key and its value into an answer map (methods.c). */
void pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void pack_kv_bool(msgpack_packer *pk, const char *k, bool v);
/* End-of-turn work owned by methods.c (grouped barriers for reads). */
void methods_flush(struct node *n);
void methods_fail_all(struct node *n, const char *code, const char *message);
/* reports.c: the `report` read, after its query and consistency; it answers
 * later, from a copy of the ledger read on a worker thread. */
void reports_read(struct node *n, struct conn *c, uint32_t id, struct mp_reader *params,
                  uint32_t count, bool is_linear);

/* batch.c */
int batch_init(struct node *n);
/* Queue one command for the next entry; answers on (c, id) after apply.
 * c may be NULL (the leader's own expire). */
void batch_submit(struct node *n, struct conn *c, uint32_t id, const struct proto_cmd *cmd);
/* Propose what is queued (called at the end of each loop turn). */
void batch_flush(struct node *n);
/* Fail every queued call (leadership lost, shutdown). */
void batch_fail_all(struct node *n, const char *code, const char *message);
/* Queue a `noop` call: batched like apply, applied as nothing. */
void batch_submit_noop(struct node *n, struct conn *c, uint32_t id);
/* Propose a raft entry of another type (checkpoint, restore): the callback
 * answers with {index} or an error.  Takes ownership of `buf` (raft_malloc). */
int batch_propose_raw(struct node *n, struct conn *c, uint32_t id, void *buf, size_t len);

#endif
