/*
 * rpc.h — purser's msgpack-RPC framing (docs/rpc.md is the protocol).
 *
 * A frame is a 4-byte big-endian length and one msgpack value.  This module
 * turns a byte stream into frames (with a size cap), decodes a frame into a
 * message whose parts are views into the frame, builds frames, and computes
 * the hello proof.  It does no I/O: the server (cluster/) and the client
 * (proto/client.c) own their sockets.
 */
#ifndef PURSER_RPC_H
#define PURSER_RPC_H

#include <msgpack.h>

#include "proto/proto.h"

#define RPC_VERSION 1
#define RPC_FRAME_MAX (24u << 20)   /* bytes in one frame */
#define RPC_INFLIGHT_MAX 1024       /* unanswered requests per connection */
#define RPC_METHOD_MAX 32           /* bytes in a method name */
#define RPC_NONCE_BYTES 32
#define RPC_PROOF_BYTES 32
#define RPC_CHUNK_MAX (4u << 20)    /* backup / restore chunk */
#define RPC_RESTORE_MAX (64u << 20) /* online restore image */

enum rpc_type {
    RPC_REQUEST = 0,
    RPC_RESPONSE = 1,
    RPC_NOTIFY = 2,
};

/* Error codes on the wire (docs/rpc.md). */
#define RPC_E_NOT_LEADER "NOT_LEADER"
#define RPC_E_UNAVAILABLE "UNAVAILABLE"
#define RPC_E_BAD_REQUEST "BAD_REQUEST"
#define RPC_E_BAD_VERSION "BAD_VERSION"
#define RPC_E_UNAUTHORIZED "UNAUTHORIZED"
#define RPC_E_FORBIDDEN "FORBIDDEN"
#define RPC_E_TOO_MANY "TOO_MANY"
#define RPC_E_NOT_FOUND "NOT_FOUND"
#define RPC_E_INTERNAL "INTERNAL"

/* A decoded message: every pointer is a view into the frame. */
struct rpc_msg {
    int type;                /* enum rpc_type */
    uint32_t id;             /* request / response */
    struct proto_str method; /* request / notify */
    const uint8_t *params;   /* request / notify: the params array, raw msgpack */
    size_t params_len;
    bool is_error;           /* response */
    struct proto_str err_code;
    struct proto_str err_message;
    const uint8_t *err_detail; /* raw msgpack (nil when none) */
    size_t err_detail_len;
    const uint8_t *result;   /* response: raw msgpack value */
    size_t result_len;
};

/* Splits a byte stream into frames.  Owns a growable buffer. */
struct rpc_framer {
    uint8_t *buf;
    size_t len;   /* bytes held */
    size_t cap;
    size_t start; /* first byte not yet returned as a frame */
    size_t max;   /* largest frame accepted */
};

#define RPC_EFRAME (-1) /* a frame announced more than `max` bytes */
#define RPC_ENOMEM (-2)

void rpc_framer_init(struct rpc_framer *f, size_t max);
void rpc_framer_free(struct rpc_framer *f);
/* Append received bytes.  Returns 0, RPC_EFRAME or RPC_ENOMEM. */
int rpc_framer_feed(struct rpc_framer *f, const void *data, size_t len);
/* The next complete frame's body: 1 and (*frame, *len), valid until the next
 * feed; 0 when no complete frame is buffered; RPC_EFRAME when oversized. */
int rpc_framer_next(struct rpc_framer *f, const uint8_t **frame, size_t *len);

/* Decode one frame body.  Returns 0 or PROTO_EMALFORMED with err filled. */
int rpc_msg_decode(const uint8_t *body, size_t len, struct rpc_msg *m, struct proto_error *err);

/* Building frames: rpc_frame_begin reserves the length prefix and binds `pk`
 * to `out`; pack one message with pk; rpc_frame_end patches the length.
 * Returns 0 or RPC_ENOMEM / RPC_EFRAME (body larger than RPC_FRAME_MAX). */
int rpc_frame_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start);
int rpc_frame_end(struct proto_buf *out, size_t start);
/* Drop a frame begun at `start` (after a failed pack: the helpers below
 * report RPC_ENOMEM and leave a partial value otherwise). */
void rpc_frame_abort(struct proto_buf *out, size_t start);

/* Whole-message helpers (each appends one complete frame). */
int rpc_request_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start, uint32_t id,
                      const char *method, uint32_t param_count);
int rpc_response_ok_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start,
                          uint32_t id); /* then pack exactly one result value, then end */
int rpc_response_error(struct proto_buf *out, uint32_t id, const char *code,
                       const char *message, const void *detail, size_t detail_len);
int rpc_notify_begin(struct proto_buf *out, msgpack_packer *pk, size_t *start,
                     const char *method, uint32_t param_count);

/* Pack helpers. */
int rpc_pack_str(msgpack_packer *pk, const char *s);
int rpc_pack_bin(msgpack_packer *pk, const void *p, size_t n);

/* HMAC-SHA256(secret, nonce || role) into out. */
void rpc_proof(const char *secret, const uint8_t nonce[RPC_NONCE_BYTES], const char *role,
               uint8_t out[RPC_PROOF_BYTES]);
/* Constant-time comparison of two proofs. */
bool rpc_proof_equal(const uint8_t a[RPC_PROOF_BYTES], const uint8_t b[RPC_PROOF_BYTES]);

/* Auth files: lines "ROLE SECRET" (roles admin, gateway, reader; '#' starts
 * a comment).  Secrets at most 256 bytes. */
#define RPC_SECRET_MAX 256
struct rpc_auth {
    char admin[RPC_SECRET_MAX + 1];
    char gateway[RPC_SECRET_MAX + 1];
    char reader[RPC_SECRET_MAX + 1];
};
/* Returns 0, or -1 with msg naming the file and line. */
int rpc_auth_load(const char *path, struct rpc_auth *out, char *msg, size_t cap);
/* The secret of a role ("" when the file has none). */
const char *rpc_auth_secret(const struct rpc_auth *a, const char *role);
/* The strongest role the file holds (admin > gateway > reader), or NULL. */
const char *rpc_auth_strongest(const struct rpc_auth *a);

/* Parse "a.b.c.d:port" (numeric IPv4, as raft's TCP transport requires).
 * Returns 0 or -1. */
int rpc_addr_parse(const char *s, char *host, size_t host_cap, int *port);

#endif
