/*
 * gateway.h — purser-gateway's shared internals.
 *
 *   main.c     flags, the loop, signals
 *   config.c   routing config (models -> upstreams) from a JSON file
 *   http.c     h2o on libuv: listener, dispatch, answers, errors, logging
 *   ledger.c   the gateway's view of the cluster: reads (keys, prices,
 *              policy, grants) with short caches, and reserve/commit/release
 *   auth.c     bearer keys, the account to charge, the metadata contract
 *   budget.c   the budget API (/v1/budget/...)
 *   proxy.c    the provider proxy (/v1/chat/completions, /v1/messages, ...)
 *   metrics.c  Prometheus counters and latency histograms
 *   log.c      JSON log lines on stderr, written once per loop turn
 *   upstream.c libcurl multi on the loop;  sse.c usage metering
 *
 * One loop, one thread.  A request's state lives in a struct gw_call that
 * outlives the h2o request when needed (the client may go away while the
 * ledger or the provider is still answering): h2o tells us through a
 * dispose hook, and we then drop the answer but still settle the money.
 */
#ifndef PURSER_GATEWAY_H
#define PURSER_GATEWAY_H

#include <h2o.h>
#include <jansson.h>

#include "gateway/sse.h"
#include "proto/mp.h"
#include "proto/money.h"
#include "gateway/upstream.h"
#include "proto/client.h"

#define GW_BODY_MAX (8u << 20)           /* request bodies */
#define GW_UPSTREAM_BODY_MAX (32u << 20) /* buffered provider answers */
#define GW_CACHE_TTL_MS 5000             /* keys, prices, policy */
#define GW_MODELS_MAX 256
#define GW_UPSTREAMS_MAX 32
#define GW_RESERVE_TTL_MS (15 * 60 * 1000)
#define GW_DEFAULT_MAX_OUTPUT 4096       /* output bound when neither the call nor the config says */

struct gw_upstream_conf {
    char name[64];
    char base_url[512];
    enum gw_provider provider;
    char api_key_env[128];
    char api_key[512]; /* read from the environment at start; never logged */
};

struct gw_model_conf {
    char name[256];
    int upstream; /* index into upstreams */
    int64_t max_output_tokens;
};

struct gw_config {
    struct gw_upstream_conf upstreams[GW_UPSTREAMS_MAX];
    uint32_t upstream_count;
    struct gw_model_conf models[GW_MODELS_MAX];
    uint32_t model_count;
    uint32_t upstream_timeout_ms;
};

struct gw_metrics;

struct gw {
    uv_loop_t *loop;
    struct gw_config config;
    struct pc_client *client;
    struct gw_upstream *upstream;
    struct gw_metrics *metrics;

    h2o_globalconf_t h2o_config;
    h2o_context_t h2o_ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uint64_t request_seq;
    bool is_ready;      /* a quorum answered recently */
    uv_timer_t ready_timer;
    /* proxy.c: settles held back to share the next reserve's raft entry */
    struct gw_call *settle_queue;
    uv_timer_t settle_timer;
};

/* A call in progress (one HTTP request). */
struct gw_call {
    struct gw *gw;
    h2o_req_t *req;        /* NULL once the client is gone */
    int refs;              /* the request + each pending async step */
    uint64_t start_ns;
    double reserve_ms, upstream_ms, settle_ms;
    char request_id[32];
    int status;            /* HTTP status answered */
    const char *endpoint;  /* for metrics / logs */
    char refusal[32];      /* error type, for metrics */
    /* identity */
    char key_id[PROTO_TEXT_MAX + 1];
    char key_account[PROTO_NAME_MAX + 1];
    int key_role;
    char account[PROTO_NAME_MAX + 1];
    char payee[PROTO_NAME_MAX + 1];
    char idem_key[PROTO_KEY_MAX + 1];
    struct proto_map metadata;  /* views into metadata_buf */
    char *metadata_buf;
    void *wait;            /* ledger.c: the lookup in progress */
    void *auth;            /* auth.c: authentication in progress */
    /* what the call does next (proxy.c / budget.c) */
    void *ctx;
    void (*ctx_free)(struct gw_call *c);
    struct gw_call *settle_next; /* proxy.c: link in gw.settle_queue */
};

/* ---- config.c ---- */
int gw_config_load(const char *path, struct gw_config *out, char *msg, size_t cap);
const struct gw_model_conf *gw_config_model(const struct gw_config *c, const char *model);

/* ---- http.c ---- */
/* Listen; with tls_cert/tls_key (PEM files) terminate TLS, offering HTTP/2
 * and HTTP/1.1 by ALPN.  Without them: plain HTTP/1.1 (and h2c prior
 * knowledge), for loopback. */
int gw_http_start(struct gw *g, const char *listen, const char *tls_cert, const char *tls_key,
                  char *msg, size_t cap);
void gw_http_stop(struct gw *g);
struct gw_call *gw_call_new(struct gw *g, h2o_req_t *req, const char *endpoint);
void gw_call_hold(struct gw_call *c);
void gw_call_release(struct gw_call *c);
bool gw_call_has_client(const struct gw_call *c);
/* A request header's value (NUL-terminated copy into the request pool), or NULL. */
const char *gw_header(h2o_req_t *req, const char *name);
/* Add an answer header (copied). */
void gw_add_header(struct gw_call *c, const char *name, const char *value);
/* Answer with a JSON document (takes the reference). */
void gw_reply_json(struct gw_call *c, int status, json_t *doc);
/* An OpenAI-shaped error: {"error": {"type", "code", "message", ...extra}}. */
void gw_reply_error(struct gw_call *c, int status, const char *type, const char *message,
                    json_t *extra);
/* Answer with raw bytes and a content type (copied). */
void gw_reply_raw(struct gw_call *c, int status, const char *content_type, const char *body,
                  size_t len);
/* The Server-Timing and request id headers. */
void gw_add_timing_headers(struct gw_call *c);
uint64_t gw_now_ns(void);
/* USD text of micros ("4.900000"). */
void gw_usd(int64_t micros, char *out, size_t cap);

/* ---- ledger.c ---- */
struct gw_key {
    char id[PROTO_TEXT_MAX + 1];
    char account[PROTO_NAME_MAX + 1];
    int role; /* PROTO_ROLE_* */
    bool is_revoked;
};
struct gw_price {
    int64_t input_micros, output_micros, cached_micros, cache_write_micros;
};
/* Lookups answer through a callback: status 0 found, 1 not found, 2 the
 * ledger is unreachable (503). */
typedef void (*gw_key_cb)(struct gw_call *c, int status, const struct gw_key *k);
void gw_ledger_key(struct gw_call *c, const uint8_t hash[32], gw_key_cb cb);
typedef void (*gw_price_cb)(struct gw_call *c, int status, const struct gw_price *p);
void gw_ledger_price(struct gw_call *c, const char *model, gw_price_cb cb);
typedef void (*gw_policy_cb)(struct gw_call *c, int status, const char *const *required,
                             uint32_t count);
void gw_ledger_policy(struct gw_call *c, gw_policy_cb cb);
/* A read answered with a msgpack map (raw) or an error. */
typedef void (*gw_read_cb)(struct gw_call *c, int status, const uint8_t *map, size_t len);
void gw_ledger_read(struct gw_call *c, const char *query, const char *str_arg, uint64_t id_arg,
                    bool has_id, gw_read_cb cb);
/* The same with any number of string args ([query, "linear", args...]). */
void gw_ledger_read_strs(struct gw_call *c, const char *query, const char *const *args,
                         uint32_t count, gw_read_cb cb);
/* Apply a command; cb gets PC_* status and the result. */
typedef void (*gw_apply_cb)(struct gw_call *c, int status, const struct proto_result *r,
                            const char *message);
void gw_ledger_apply(struct gw_call *c, const struct proto_cmd *cmd, gw_apply_cb cb);
/* Find a key in a msgpack map: 0 and a reader positioned at its value. */
int gw_map_find(const uint8_t *map, size_t len, const char *key, struct mp_reader *at);
/* Copy a msgpack map (answer) into a jansson object; NULL on bad input. */
json_t *gw_map_to_json(const uint8_t *map, size_t len);

/* ---- auth.c ---- */
/* Authenticate (Authorization), pick the account (X-Budget-Account /
 * X-Budget-Grant, within the key's subtree), the payee and the metadata
 * (X-Budget-Metadata, the policy's required keys), then call `next`.  On any
 * failure it answers the client itself. */
typedef void (*gw_auth_next)(struct gw_call *c);
void gw_auth_start(struct gw_call *c, const char *default_payee, gw_auth_next next);
/* Is `account` the key's account or inside its subtree? */
bool gw_auth_in_subtree(const char *root, const char *account);
/* Map a ledger refusal to an HTTP answer. */
void gw_reply_refusal(struct gw_call *c, const struct proto_result *r, int64_t requested_micros);
void gw_reply_unavailable(struct gw_call *c, const char *message);

/* ---- budget.c / proxy.c ---- */
int gw_budget_handle(struct gw_call *c, h2o_req_t *req);
int gw_proxy_handle(struct gw_call *c, h2o_req_t *req, const char *endpoint,
                    enum gw_provider provider);
/* Settles held back (see proxy.c): init the timer; send them all now. */
void gw_proxy_settle_init(struct gw *g);
void gw_proxy_settle_flush(struct gw *g);

/* ---- log.c ---- */
/* Lines are buffered and written at the end of the loop turn (and at exit,
 * by atexit); before gw_log_init they are written at once. */
void gw_log_init(uv_loop_t *loop);
void gw_log_flush(void);
/* The call's line: request id, endpoint, status, account, key id, refusal
 * and the phase times (never a key or a secret). */
void gw_log_call(const struct gw_call *c, double total_ms);
/* Any other line (fmt ends with "\n"). */
void gw_log_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- metrics.c ---- */
int gw_metrics_init(struct gw *g);
void gw_metrics_request(struct gw *g, const char *endpoint, int status, const char *refusal,
                        double total_ms, double reserve_ms, double upstream_ms,
                        double settle_ms);
void gw_metrics_ledger_rtt(struct gw *g, double ms);
/* Money through this gateway: holds taken and released, cost charged. */
void gw_metrics_money(struct gw *g, int64_t reserved_micros, int64_t released_micros,
                      int64_t spent_micros);
/* The Prometheus text (malloc'd). */
char *gw_metrics_render(struct gw *g, size_t *len);

#endif
