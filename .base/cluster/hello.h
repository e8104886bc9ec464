/*
 * hello.h — the server side of the RPC handshake (docs/rpc.md), as a pure
 * parser: hello's params [version, role, proof] are the first thing a
 * connection sends, before it has proven anything, so they are read here
 * apart from the server (and fuzzed without one: tests/fuzz/fuzz_rpc_hello.c).
 */
#ifndef PURSER_HELLO_H
#define PURSER_HELLO_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/mp.h"
#include "proto/proto.h"

enum conn_role {
    CONN_ROLE_NONE = 0,
    CONN_ROLE_READER = 1,
    CONN_ROLE_GATEWAY = 2,
    CONN_ROLE_ADMIN = 3,
};

/* Outcomes of hello_parse, in the order the server checks them. */
enum hello_status {
    HELLO_OK = 0,
    HELLO_BAD_REQUEST,  /* not [uint version, str role, ...] of 3: BAD_REQUEST */
    HELLO_BAD_VERSION,  /* version != RPC_VERSION: BAD_VERSION */
    HELLO_UNKNOWN_ROLE, /* role not admin / gateway / reader: UNAUTHORIZED */
};

struct hello_params {
    uint64_t version;
    int role;             /* enum conn_role; NONE unless HELLO_OK */
    bool has_proof;       /* the third element is a bin of RPC_PROOF_BYTES */
    const uint8_t *proof; /* into the params when has_proof */
};

/* The role's name ("admin", "gateway", "reader"), or "" for NONE. */
const char *hello_role_name(int role);
/* "admin" / "gateway" / "reader" to enum conn_role; NONE for anything else. */
int hello_role_parse(struct proto_str s);

/* Read hello's params: `r` is positioned after the params array header,
 * which had `count` elements.  Fills `out` as far as it got and returns an
 * enum hello_status.  Whether a proof is required (and right) is the
 * caller's business: has_proof only says one of the right shape is there. */
int hello_parse(struct mp_reader *r, uint32_t count, struct hello_params *out);

#endif
