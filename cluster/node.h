/*
 * node.h — one purserd node: a raft member whose state machine is the ledger,
 * and the RPC server in front of it.  Everything runs on one libuv loop.
 *
 *   purserd.c  flags, signals, start and stop
 *   node.c     raft setup, membership, leader clock, expire timer, shutdown
 *   nodelay.c  raft transport wrapper: TCP_NODELAY, "RAFT/RPC" addresses
 *   fsm.c      the raft FSM over the ledger (apply, snapshot, restore)
 *   server.c   RPC listener, connections, framing, handshake, dispatch
 *   batch.c    group commit: calls of one loop turn -> one raft entry
 *   methods.c  read, status, hash, membership and backup methods
 */
#ifndef PURSER_NODE_H
#define PURSER_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "ledger/ledger.h"
#include "proto/rpc.h"

#define NODE_ADDR_MAX 64              /* "a.b.c.d:port" */
#define NODE_CHECKPOINTS_MAX 16       /* state hashes remembered */
#define NODE_EXPIRE_INTERVAL_MS 1000  /* leader proposes expire(now) */
#define NODE_ENTRIES_IN_FLIGHT_MAX 2  /* measured: fewer, larger entries win */
#define NODE_BATCH_BYTES_MAX (4u << 20)
#define NODE_QUEUE_MAX 65536          /* calls waiting for an entry */

/* Raft entries: an 8-byte header (type byte, 3 zero bytes, payload length
 * as little-endian u32), the payload, zero padding to a multiple of 8 bytes:
 * raft_uv's segment writer silently mis-lays entries whose length is not a
 * multiple of 8, and its loader then discards them as corrupt. */
#define NODE_ENTRY_HEADER_BYTES 8
#define NODE_ENTRY_LEDGER 0x01          /* payload: a proto entry (proto.h) */
#define NODE_ENTRY_CHECKPOINT 0x81      /* record the state hash here */
#define NODE_ENTRY_RESTORE 0x82         /* replace the ledger with an image */
#define NODE_ENTRY_NOOP 0x83            /* the `noop` baseline: nothing applied */
#define NODE_NOOP_BYTES 64              /* payload per noop call, like a command */
#define NODE_DISK_FREE_MIN (8LL << 20)  /* below this free in --data: fail-stop */
#define NODE_DISK_CHECK_MS 100

struct node_options {
    raft_id id;
    char raft_addr[NODE_ADDR_MAX];
    char raft_bind[NODE_ADDR_MAX]; /* --raft-bind: listen here, "" = raft_addr */
    char rpc_addr[NODE_ADDR_MAX];
    char data_dir[512];
    char bootstrap[2048];  /* "ID@RAFT/RPC,..." or "" */
    char join[NODE_ADDR_MAX]; /* rpc address of a member, or "" */
    bool is_no_auth;
    struct rpc_auth auth;
    /* --tls-cert/--tls-key (NULL: plain TCP on --rpc), --tls-ca (verify
     * client certificates; also the CA --join verifies the member with),
     * --tls-require-client-cert. */
    const char *tls_cert, *tls_key, *tls_ca;
    bool is_tls_client_cert_required;
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
};

struct node_checkpoint {
    raft_index index;
    uint8_t hash[32];
};

struct server;
struct batch;
struct webhook;
struct pc_client;
struct ptls_ctx;

struct node {
    uv_loop_t *loop;
    struct node_options opt;
    struct ledger *ledger;

    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tcp;      /* the real TCP transport */
    struct raft_uv_transport transport; /* our wrapper around it */
    struct raft_fsm fsm;

    struct server *server;
    struct batch *batch;
    struct webhook *webhook; /* --webhook-url: outbox delivery (webhook.c), or NULL */

    uv_timer_t expire_timer;
    uv_timer_t disk_timer;
    uv_timer_t stop_timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct raft_transfer transfer_req;
    bool is_stopping;
    bool is_raft_closed;

    int64_t last_stamp_ms; /* the leader's entry timestamps never go back */

    /* Results of the entry being applied (read by batch.c's apply cb, which
     * raft calls right after fsm apply on the same loop turn). */
    struct proto_cmd *apply_cmds;
    struct proto_result *apply_results;
    uint32_t apply_count;

    /* `snapshot` RPC: the threshold stays at 1 until raft has taken one
     * (fsm.c), then the caller is answered when it is written. */
    struct conn *snapshot_conn;
    uint32_t snapshot_id;
    bool is_snapshot_requested;

    struct node_checkpoint checkpoints[NODE_CHECKPOINTS_MAX];
    uint32_t checkpoint_next;

    /* --join: the client that asks a member to add us. */
    struct pc_client *join_client;
    struct ptls_ctx *join_tls;         /* its TLS context when --tls-cert */
    uv_timer_t join_timer;
    bool is_joined;
};

/* node.c */
int node_start(struct node *n, uv_loop_t *loop, const struct node_options *o, char *msg,
               size_t cap);
void node_stop(struct node *n); /* transfer leadership, close, leave the loop */
bool node_is_leader(struct node *n);
/* The leader's id and rpc address ("" when unknown). */
void node_leader(struct node *n, raft_id *id, char *rpc, size_t cap);
/* Split "RAFT/RPC" into its parts (rpc "" when absent). */
void node_addr_split(const char *addr, char *raft_part, size_t raft_cap, char *rpc_part,
                     size_t rpc_cap);
/* A timestamp for a new entry: wall clock, never behind the last one. */
int64_t node_stamp(struct node *n);
void node_checkpoint_record(struct node *n, raft_index index);

/* fsm.c */
int fsm_init(struct node *n);
/* The snapshot threshold for this node's phase after a snapshot at `at`. */
void fsm_snapshot_rephase(struct node *n, raft_index at);
/* A zeroed entry buffer (raft_malloc) with its header written; the payload
 * starts at buf + NODE_ENTRY_HEADER_BYTES.  NULL when out of memory. */
void *node_entry_alloc(int type, size_t payload_len, size_t *total_len);
/* Parse an entry's header: 0 with type/payload/len, or -1 when malformed. */
int node_entry_parse(const void *buf, size_t len, int *type, const uint8_t **payload,
                     size_t *payload_len);

/* nodelay.c */
/* bind: where to listen for peers instead of the advertised address, or
 * NULL / "" to listen on the advertised one. */
int nodelay_transport_init(struct raft_uv_transport *outer, struct raft_uv_transport *inner,
                           const char *bind);

/* server.c */
int server_start(struct node *n, char *msg, size_t cap);
void server_stop(struct server *s);

#endif
