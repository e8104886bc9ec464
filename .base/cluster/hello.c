/*
 * hello.c — hello's params, read without a server (see hello.h).
 */
#include <string.h>

#include "cluster/hello.h"
#include "proto/rpc.h"

const char *hello_role_name(int role)
{
    switch (role) {
    case CONN_ROLE_ADMIN:
        return "admin";
    case CONN_ROLE_GATEWAY:
        return "gateway";
    case CONN_ROLE_READER:
        return "reader";
    default:
        return "";
    }
}

int hello_role_parse(struct proto_str s)
{
    if (proto_str_eq(s, "admin"))
        return CONN_ROLE_ADMIN;
    if (proto_str_eq(s, "gateway"))
        return CONN_ROLE_GATEWAY;
    if (proto_str_eq(s, "reader"))
        return CONN_ROLE_READER;
    return CONN_ROLE_NONE;
}

int hello_parse(struct mp_reader *r, uint32_t count, struct hello_params *out)
{
    memset(out, 0, sizeof *out);
    const char *role_ptr = NULL;
    uint32_t role_len = 0;
    if (count != 3 || mp_uint_read(r, &out->version) != MP_OK ||
        mp_str_read(r, &role_ptr, &role_len) != MP_OK)
        return HELLO_BAD_REQUEST;
    if (out->version != RPC_VERSION)
        return HELLO_BAD_VERSION;
    out->role = hello_role_parse((struct proto_str){role_ptr, role_len});
    if (out->role == CONN_ROLE_NONE)
        return HELLO_UNKNOWN_ROLE;
    const uint8_t *proof = NULL;
    uint32_t proof_len = 0;
    if (mp_bin_read(r, &proof, &proof_len) == MP_OK && proof_len == RPC_PROOF_BYTES) {
        out->has_proof = true;
        out->proof = proof;
    }
    return HELLO_OK;
}
