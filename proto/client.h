/*
 * client.h — the purser client on libuv, used by purser-gateway, purserctl
 * and the benchmarks.
 *
 * It keeps one connection per known node (handshake and auth included),
 * learns the leader from hello answers and NOT_LEADER hints, pipelines calls,
 * and retries calls that are safe to retry until a deadline: reads, and
 * `apply` of a command with an idempotency key (pc_apply gives every command
 * one when the caller did not), so an unknown outcome — a timeout, a lost
 * leader — is retried without double-applying.  All callbacks run on the
 * loop thread.  Not thread-safe: one client per loop.
 */
#ifndef PURSER_CLIENT_H
#define PURSER_CLIENT_H

#include <uv.h>

#include "proto/proto.h"
#include "proto/rpc.h"

struct ptls_ctx;

#define PC_NODES_MAX 16
#define PC_PENDING_MAX 65536 /* calls queued or in flight per client */

struct pc_options {
    const char *const *addrs; /* "127.0.0.1:7001", ... (rpc addresses) */
    uint32_t addr_count;
    const char *role;         /* "admin" | "gateway" | "reader" */
    const char *secret;       /* NULL or "": no proof (server --no-auth) */
    uint32_t attempt_timeout_ms; /* one try; default 2000 */
    uint32_t deadline_ms;     /* a whole call with its retries; default 10000 */
    struct ptls_ctx *tls;     /* NULL: plain TCP; else speak TLS with this client
                               * context (proto/tls.h), borrowed: it must
                               * outlive the client */
};

/* Outcome of a call. */
#define PC_OK 0          /* a response arrived (result set) */
#define PC_EREMOTE 1     /* the server answered an error (code, message) */
#define PC_ETIMEOUT 2    /* no answer before the deadline */
#define PC_EUNAVAILABLE 3 /* no node reachable / no leader before the deadline */
#define PC_ECLOSED 4     /* the client was closed */
#define PC_EINVAL 5      /* bad arguments (too big, too many pending) */

struct pc_reply {
    int status;
    const char *code;      /* PC_EREMOTE: error code, NUL-terminated */
    const char *message;   /* PC_EREMOTE / failures: text */
    const uint8_t *result; /* PC_OK: msgpack value, valid during the callback */
    size_t result_len;
    int node;              /* index of the node that answered, or -1 */
};
typedef void (*pc_reply_cb)(void *arg, const struct pc_reply *reply);

#define PC_TARGET_LEADER (-1) /* follow the leader */
#define PC_TARGET_ANY (-2)    /* any connected node */

struct pc_client;

int pc_client_open(uv_loop_t *loop, const struct pc_options *o, struct pc_client **out,
                   struct proto_error *err);
/* Fails every pending call with PC_ECLOSED, closes the handles; the memory
 * is freed once libuv has closed them (run the loop). */
void pc_client_close(struct pc_client *c);

/* Send `method` with `params` (a complete msgpack array).  target: a node
 * index (0..count-1), PC_TARGET_LEADER or PC_TARGET_ANY.  When `is_retryable`
 * the call is retried on NOT_LEADER / UNAVAILABLE / timeouts until the
 * deadline.  Returns 0 (cb will be called exactly once) or PC_EINVAL. */
int pc_call(struct pc_client *c, int target, const char *method, const void *params,
            size_t params_len, bool is_retryable, pc_reply_cb cb, void *arg);

/* Apply one command through the leader.  A command without a key gets a
 * random one, so retries are safe.  cb: status as in pc_reply; on PC_OK
 * `res` is the ledger's result (a refusal is still PC_OK). */
typedef void (*pc_apply_cb)(void *arg, int status, const struct proto_result *res,
                            const char *message);
int pc_apply(struct pc_client *c, const struct proto_cmd *cmd, pc_apply_cb cb, void *arg);

/* Known nodes (grows when NOT_LEADER names an unknown address). */
uint32_t pc_node_count(const struct pc_client *c);
const char *pc_node_addr(const struct pc_client *c, uint32_t i);
/* Index of the believed leader, or -1. */
int pc_leader(const struct pc_client *c);

/* ---- synchronous wrapper (its own loop), for CLIs and tools ---- */
struct pc_sync;
int pc_sync_open(const struct pc_options *o, struct pc_sync **out, struct proto_error *err);
void pc_sync_close(struct pc_sync *s);
/* Blocks until the call completes.  On PC_OK the result value is copied into
 * `result` (caller's buffer, reset first).  code/message filled on errors. */
int pc_sync_call(struct pc_sync *s, int target, const char *method, const void *params,
                 size_t params_len, bool is_retryable, struct proto_buf *result, char *code,
                 size_t code_cap, char *message, size_t message_cap);
int pc_sync_apply(struct pc_sync *s, const struct proto_cmd *cmd, struct proto_result *res,
                  char *message, size_t message_cap);
struct pc_client *pc_sync_client(struct pc_sync *s);

#endif
