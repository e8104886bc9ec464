/*
 * parse.h — the gateway's pure parsers: everything it reads from a caller's
 * request before any ledger or provider is involved, kept apart from h2o
 * and libuv so that unit tests and libFuzzer targets can drive it directly.
 *
 *   X-Budget-Metadata  a JSON object of strings, bounded like ledger maps
 *   X-Budget-Hint      a non-negative USD amount ("0.25")
 *   proxy bodies       a JSON object with "model", "stream", "max_tokens"
 *   budget API         the path after /v1/budget/ and the JSON body fields
 *
 * Messages written into `msg` are the exact texts the gateway answers with
 * (400 invalid_request).
 */
#ifndef PURSER_GW_PARSE_H
#define PURSER_GW_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* X-Budget-Metadata: {"k": "v", ...}, at most PROTO_MAP_MAX keys of 1 to
 * PROTO_MAP_KEY_MAX bytes, values up to PROTO_MAP_VALUE_MAX bytes, no
 * duplicate keys.  On success *buf is a malloc'ed copy of the keys and
 * values (the caller frees it), out->kv are views into it and out->count is
 * set; out->raw is not touched.  On failure nothing is allocated, `out` is
 * untouched and msg says why.  Returns 0 or -1.  The last text accepted is
 * remembered (agents repeat it on every call): the same text again is
 * answered from that memory, in a new buffer, without parsing. */
int gw_parse_metadata(const char *text, struct proto_map *out, char **buf, char *msg, size_t cap);

/* X-Budget-Hint: a USD amount from 0 to PROTO_AMOUNT_MAX micros (money.h's
 * grammar).  Returns 0 with *micros set, or -1. */
int gw_parse_hint(const char *text, int64_t *micros);

/* A proxied call's body, as far as the gateway reads it. */
struct gw_proxy_request {
    json_t *body;             /* the parsed object (owned by the caller on success) */
    const char *model;        /* inside body or model_buf: 1..PROTO_TEXT_MAX bytes */
    bool is_stream;           /* "stream": true */
    bool has_max_tokens;      /* "max_completion_tokens", else "max_tokens", present */
    bool is_max_tokens_bad;   /* ... but not an integer in 0..GW_PARSE_MAX_TOKENS */
    int64_t max_tokens;       /* when present and valid */
    char model_buf[PROTO_TEXT_MAX + 1]; /* the model when body is NULL */
};

#define GW_PARSE_MAX_TOKENS 100000000

/* Parse a proxy body.  Returns -1 (msg set, nothing owned) when the body is
 * not a JSON object or "model" is not a non-empty string of at most
 * PROTO_TEXT_MAX bytes; else 0, and the caller owns out->body (json_decref).
 * A bad max_tokens is reported in out->is_max_tokens_bad, not as a failure:
 * the gateway checks the model's route first. */
int gw_parse_proxy_body(const char *body, size_t len, struct gw_proxy_request *out, char *msg,
                        size_t cap);
/* The same without building the document when it can: out->body is NULL
 * then (out->model in out->model_buf), unless the text needed a full
 * parser (escaped names or model).  Same answers, same messages.  For
 * callers that need only the fields (the proxy loads the document itself
 * when it must rewrite it). */
int gw_parse_proxy_fields(const char *body, size_t len, struct gw_proxy_request *out, char *msg,
                          size_t cap);
/* The answer for out->is_max_tokens_bad. */
#define GW_PARSE_MAX_TOKENS_MESSAGE "max_tokens must be a non-negative integer"

/* ---- the budget API ---- */

enum gw_budget_op {
    GW_B_RESERVE,
    GW_B_COMMIT,
    GW_B_RELEASE,
    GW_B_ACCOUNT,
    GW_B_GRANT,
    GW_B_GRANT_CLOSE,
    GW_B_TRANSFER,
    GW_B_ESTIMATE,
};

/* One budget API call, as parsed from its path and body. */
struct gw_budget {
    enum gw_budget_op op;
    json_t *body;            /* NULL when the call has none */
    uint64_t id;             /* reservation / grant id from the path */
    char path_arg[PROTO_NAME_MAX + 1];
    int64_t amount;
    int64_t ttl_ms;
    char name2[PROTO_NAME_MAX + 1]; /* payee / credit / parent */
    char workflow[PROTO_TEXT_MAX + 1];
    char model[PROTO_TEXT_MAX + 1]; /* estimate: "" = any */
    struct proto_map body_meta; /* views into body */
};

/* The longest path gw_parse_budget_path accepts, NUL excluded. */
#define GW_PARSE_BUDGET_PATH_MAX 511

/* Route "/v1/budget/<rest>" (len bytes, not NUL-terminated; a NUL inside
 * ends the comparison) into b->op, b->id and b->path_arg.  POST:
 * reservations, grants, transfers, reservations/<id>/commit|release,
 * grants/<id>/close, estimate; GET: accounts/<name>.  Returns 0 or -1 (no such
 * endpoint). */
int gw_parse_budget_path(const char *path, size_t len, bool is_post, struct gw_budget *b);

/* Parse the body of the call routed into b->op (a POST's body only; an
 * empty one is no body): the amount (actual_micros for commit), ttl_ms,
 * payee, credit and kind, workflow and metadata; for estimate: workflow
 * (required), model, prompt_bytes and max_tokens (integers >= 0).  On success b->body holds
 * the document (the caller json_decrefs it); on failure it is NULL and msg
 * says why.  Returns 0 or -1. */
int gw_parse_budget_body(struct gw_budget *b, bool is_post, const char *body, size_t len,
                         char *msg, size_t cap);

/* A string field of a budget body into out (cap bytes, NUL included):
 * 0 copied, 1 absent (or no body), -1 not a string or too long (msg set). */
int gw_parse_body_str(json_t *body, const char *k, char *out, size_t cap, char *msg,
                      size_t msg_cap);

#endif
