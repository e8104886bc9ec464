/*
 * proxy.c — the governed provider proxy: OpenAI's /v1/chat/completions,
 * /v1/completions, /v1/embeddings and Anthropic's /v1/messages.
 *
 *   parse -> authenticate (auth.c) -> price -> reserve the worst case (one
 *   consensus round) -> forward (upstream.c) -> meter the usage the provider
 *   reports -> commit the actual cost (or release) -> answer.
 *
 * The worst case is a true upper bound: every prompt byte may be a token,
 * priced at the dearest input rate (plain, cached or cache-write), plus
 * max_tokens (or the model's configured limit, or GW_DEFAULT_MAX_OUTPUT) at
 * the output rate.  A model without a price is refused, never priced at 0.
 *
 * Settling (decided): the hot path has one consensus round, the reserve.
 * When the provider is done the cost is known exactly (X-Budget-Cost) and the
 * client is answered at once; the commit (or release) follows in the
 * background, retried with the same idempotency key until the ledger
 * acknowledges it.  Reservations are made with on_expire=charge: if the
 * gateway dies before settling, expiry charges the whole hold — never frees
 * it for nothing.  A client that leaves mid-stream: the provider call is cancelled
 * and the usage seen so far is charged; when none was seen (OpenAI sends it
 * last) the whole reservation is charged.  Provider 4xx answers are passed
 * through unchanged and the hold released (the provider did no billable
 * work); 5xx and transport failures release and answer 502/504.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "proto/fmt.h"
#include "gateway/parse.h"

#define GW_STREAM_PAUSE_BYTES (1u << 20)

struct gw_proxy {
    enum gw_provider provider; /* of the endpoint */
    const char *endpoint;      /* "/chat/completions", ... */
    json_t *body;
    bool is_stream;
    bool is_embeddings;
    int64_t max_output_tokens;
    char model[PROTO_TEXT_MAX + 1];
    const struct gw_model_conf *route;
    const struct gw_upstream_conf *up;
    struct gw_price price;
    int64_t reserved_micros;
    int64_t remaining_micros;    /* room the reserve left (PROTO_UNLIMITED: none) */
    int64_t cost_micros;         /* what the commit posts */
    int64_t tokens;              /* the call's actual tokens, for rate limits (0: unknown) */
    bool is_release;             /* settling by release instead */
    char hint_usd[32];           /* X-Budget-Hint, normalized, kept as metadata */
    int settle_tries;
    uint64_t reservation_id;
    uint64_t t0_ns;
    /* upstream */
    struct gw_upstream_call *call;
    int up_status;
    char content_type[128];
    struct proto_buf body_buf;   /* buffered answer (not streaming) */
    struct gw_sse sse;
    /* streaming out */
    h2o_generator_t gen;
    bool is_streaming_out;
    bool is_sending;             /* an h2o_send awaits proceed */
    bool is_stopped;             /* h2o stopped the generator (client gone) */
    bool is_final_queued;        /* the last bytes wait for proceed */
    bool is_paused;
    struct proto_buf pending;    /* bytes not yet handed to h2o */
    struct proto_buf sending;    /* bytes h2o is sending */
    bool is_upstream_done;
    int upstream_error;
    char upstream_message[256];
    char *forward_body;
    char header_lines[1][96];     /* anthropic-version */
    const char *header_ptrs[GW_UPSTREAM_HEADERS_MAX];
};

static struct gw_proxy *P(struct gw_call *c)
{
    return c->ctx;
}

static void gw_proxy_free(struct gw_call *c)
{
    struct gw_proxy *p = c->ctx;
    if (!p)
        return;
    json_decref(p->body);
    proto_buf_free(&p->body_buf);
    proto_buf_free(&p->pending);
    proto_buf_free(&p->sending);
    gw_sse_free(&p->sse);
    free(p->forward_body);
    free(p);
    c->ctx = NULL;
}

/* ceil(tokens * price_per_million / 1e6), exact; -1 on overflow. */
static int64_t gw_cost(int64_t tokens, int64_t micros_per_mtok)
{
    if (tokens <= 0 || micros_per_mtok <= 0)
        return 0;
    __int128 n = (__int128)tokens * micros_per_mtok;
    __int128 q = (n + 999999) / 1000000;
    return q > PROTO_AMOUNT_MAX ? -1 : (int64_t)q;
}

static int64_t gw_usage_cost(const struct gw_price *p, const struct gw_usage *u)
{
    int64_t parts[4] = {gw_cost(u->input_tokens, p->input_micros),
                        gw_cost(u->cached_tokens, p->cached_micros),
                        gw_cost(u->cache_write_tokens, p->cache_write_micros),
                        gw_cost(u->output_tokens, p->output_micros)};
    int64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        if (parts[i] < 0 || __builtin_add_overflow(sum, parts[i], &sum))
            return -1;
    }
    return sum;
}

/* ---- settle ---- */

static void gw_proxy_send_final(struct gw_call *c);

/* Settling (decided, see the top comment): the client is answered as soon
 * as the provider is done and the cost is known; the commit or release then
 * runs in the background, retried with its key until the ledger
 * acknowledges it (GW_SETTLE_TRIES attempts of the client's deadline each).
 * A gateway that dies first leaves the hold to expire charged in full. */
#define GW_SETTLE_TRIES 12

static void gw_proxy_settle_write(struct gw_call *c);

static void gw_proxy_settled(struct gw_call *c, int status, const struct proto_result *r,
                             const char *message)
{
    struct gw_proxy *p = c->ctx;
    c->settle_ms = (double)(gw_now_ns() - p->t0_ns) / 1e6;
    if (status == PC_OK && (r->status == PROTO_OK || p->is_release)) {
        gw_metrics_money(c->gw, 0, p->reserved_micros, p->is_release ? 0 : p->cost_micros);
        return;
    }
    if (status != PC_OK && ++p->settle_tries < GW_SETTLE_TRIES) {
        gw_proxy_settle_write(c); /* same key: idempotent */
        return;
    }
    gw_log_printf("{\"request_id\":\"%s\",\"warning\":\"%s of reservation %llu not"
                  " acknowledged (%s): it expires charged in full\"}\n",
                  c->request_id, p->is_release ? "release" : "commit",
                  (unsigned long long)p->reservation_id,
                  status == PC_OK ? r->message : (message ? message : "unavailable"));
}

static void gw_proxy_settle_write(struct gw_call *c)
{
    struct gw_proxy *p = c->ctx;
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    char key[PROTO_KEY_MAX + 1];
    if (p->is_release) {
        cmd.type = PROTO_CMD_RELEASE;
        cmd.u.release.reservation_id = p->reservation_id;
        memcpy(key, "gw-release-", 11);
        fmt_u64(key + 11, p->reservation_id);
    } else {
        cmd.type = PROTO_CMD_COMMIT;
        cmd.u.commit.reservation_id = p->reservation_id;
        cmd.u.commit.actual_micros = p->cost_micros;
        cmd.u.commit.tokens = p->tokens; /* rate limits: the actual tokens */
        memcpy(key, "gw-commit-", 10);
        fmt_u64(key + 10, p->reservation_id);
    }
    cmd.key = proto_str_c(key);
    gw_ledger_apply(c, &cmd, gw_proxy_settled);
}

/* Held settles.  With one connection, the commit of call N leaves right
 * after the answer and the reserve of call N+1 a few tens of microseconds
 * later, so they land in two raft entries and the reserve waits behind the
 * commit's disk write on every node.  Holding the first attempt of a settle
 * until the next reserve goes out (or GW_SETTLE_HOLD_MS, whichever is first)
 * puts both in one frame batch, hence one entry: one consensus round per
 * call instead of two in a row.  Under load reserves flow all the time and
 * the hold is a loop turn.  Retries are sent at once. */
#define GW_SETTLE_HOLD_MS 1

void gw_proxy_settle_flush(struct gw *g)
{
    struct gw_call *c = g->settle_queue;
    g->settle_queue = NULL;
    uv_timer_stop(&g->settle_timer);
    while (c) {
        struct gw_call *next = c->settle_next;
        c->settle_next = NULL;
        gw_proxy_settle_write(c);
        gw_call_release(c); /* the queue's hold */
        c = next;
    }
}

static void gw_proxy_settle_timer_cb(uv_timer_t *t)
{
    gw_proxy_settle_flush(t->data);
}

void gw_proxy_settle_init(struct gw *g)
{
    uv_timer_init(g->loop, &g->settle_timer);
    g->settle_timer.data = g;
}

/* Queue the first settle attempt (order kept: the queue is short). */
static void gw_proxy_settle_hold(struct gw_call *c)
{
    struct gw *g = c->gw;
    gw_call_hold(c);
    struct gw_call **at = &g->settle_queue;
    while (*at)
        at = &(*at)->settle_next;
    *at = c;
    if (!uv_is_active((uv_handle_t *)&g->settle_timer))
        uv_timer_start(&g->settle_timer, gw_proxy_settle_timer_cb, GW_SETTLE_HOLD_MS, 0);
}

static void gw_proxy_headers_budget(struct gw_call *c, int64_t cost)
{
    struct gw_proxy *p = c->ctx;
    char v[32];
    gw_usd(cost, v, sizeof v);
    gw_add_header(c, "x-budget-cost", v);
    /* Room after this call: what the reserve left, plus what the call did
     * not use of its hold (exact unless others spent meanwhile). */
    if (p->remaining_micros != PROTO_UNLIMITED) {
        int64_t left = p->remaining_micros + (p->reserved_micros - cost);
        gw_usd(left > 0 ? left : 0, v, sizeof v);
        gw_add_header(c, "x-budget-remaining", v);
    }
    fmt_u64(v, p->reservation_id);
    gw_add_header(c, "x-budget-reservation", v);
}

/* Answer the client now, settle the money in the background. */
static void gw_proxy_commit(struct gw_call *c, int64_t cost)
{
    struct gw_proxy *p = c->ctx;
    p->cost_micros = cost;
    p->is_release = false;
    p->t0_ns = gw_now_ns();
    if (p->is_streaming_out) {
        gw_proxy_send_final(c);
    } else if (c->req) {
        gw_proxy_headers_budget(c, cost);
        gw_reply_raw(c, p->up_status, p->content_type[0] ? p->content_type : "application/json",
                     p->body_buf.data ? p->body_buf.data : "", p->body_buf.len);
    }
    gw_proxy_settle_hold(c);
}

static void gw_proxy_release(struct gw_call *c)
{
    struct gw_proxy *p = c->ctx;
    p->is_release = true;
    p->t0_ns = gw_now_ns();
    gw_proxy_settle_hold(c);
    if (p->is_streaming_out) {
        gw_proxy_send_final(c);
        return;
    }
    if (!c->req)
        return;
    if (p->up_status >= 400 && p->up_status < 500) {
        /* The provider refused the call: its answer, unchanged. */
        gw_proxy_headers_budget(c, 0);
        gw_reply_raw(c, p->up_status, p->content_type[0] ? p->content_type : "application/json",
                     p->body_buf.data ? p->body_buf.data : "", p->body_buf.len);
        return;
    }
    char msg[320];
    snprintf(msg, sizeof msg, "the provider failed: %s; the reservation was released",
             p->upstream_message[0] ? p->upstream_message : "server error");
    json_t *extra = json_pack("{s:i}", "upstream_status", p->up_status);
    gw_reply_error(c, p->upstream_error == GW_UPSTREAM_ETIMEOUT ? 504 : 502, "upstream_error",
                   msg, extra);
}

/* ---- streaming out (h2o generator) ---- */

static void gw_proxy_flush(struct gw_call *c, h2o_send_state_t state)
{
    struct gw_proxy *p = c->ctx;
    if (!c->req || p->is_stopped || p->is_sending)
        return;
    /* Swap pending into sending: h2o keeps the bytes until proceed. */
    struct proto_buf t = p->sending;
    p->sending = p->pending;
    p->pending = t;
    p->pending.len = 0;
    h2o_iovec_t buf = h2o_iovec_init(p->sending.data ? p->sending.data : "", p->sending.len);
    p->is_sending = state == H2O_SEND_STATE_IN_PROGRESS;
    h2o_send(c->req, &buf, 1, state);
    if (p->is_paused && p->call && p->pending.len < GW_STREAM_PAUSE_BYTES / 2) {
        p->is_paused = false;
        gw_upstream_call_resume(p->call);
    }
}

static void gw_proxy_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct gw_proxy *p = H2O_STRUCT_FROM_MEMBER(struct gw_proxy, gen, gen);
    (void)req;
    p->is_sending = false;
    struct gw_call *c = *(struct gw_call **)(p + 1);
    if (p->is_final_queued)
        gw_proxy_flush(c, H2O_SEND_STATE_FINAL);
    else if (p->pending.len > 0)
        gw_proxy_flush(c, H2O_SEND_STATE_IN_PROGRESS);
}

static void gw_proxy_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    struct gw_proxy *p = H2O_STRUCT_FROM_MEMBER(struct gw_proxy, gen, gen);
    (void)req;
    p->is_stopped = true;
    /* The client left mid-stream: stop the provider; on_done settles. */
    if (p->call && !p->is_upstream_done)
        gw_upstream_call_cancel(p->call);
}

static void gw_proxy_send_final(struct gw_call *c)
{
    struct gw_proxy *p = c->ctx;
    p->is_final_queued = true;
    if (!p->is_sending)
        gw_proxy_flush(c, H2O_SEND_STATE_FINAL);
}

/* ---- upstream callbacks ---- */

static void gw_proxy_on_head(void *arg, int status, const char *const *names,
                             const char *const *values, size_t count)
{
    struct gw_call *c = arg;
    struct gw_proxy *p = c->ctx;
    p->up_status = status;
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(names[i], "content-type") == 0)
            fmt_copy(p->content_type, sizeof p->content_type, values[i]);
    if (!p->is_stream || status != 200 || !c->req)
        return;
    /* Stream through: the headers now, the events as they come. */
    h2o_req_t *req = c->req;
    req->res.status = 200;
    req->res.reason = "OK";
    gw_add_header(c, "content-type", p->content_type[0] ? p->content_type : "text/event-stream");
    char v[32];
    fmt_u64(v, p->reservation_id);
    gw_add_header(c, "x-budget-reservation", v);
    gw_usd(p->reserved_micros, v, sizeof v);
    gw_add_header(c, "x-budget-reserved", v);
    gw_add_timing_headers(c);
    p->gen.proceed = gw_proxy_proceed;
    p->gen.stop = gw_proxy_stop;
    p->is_streaming_out = true;
    c->status = 200;
    h2o_start_response(req, &p->gen);
}

static void gw_proxy_on_body(void *arg, const char *data, size_t len)
{
    struct gw_call *c = arg;
    struct gw_proxy *p = c->ctx;
    if (p->is_stream && p->up_status == 200) {
        gw_sse_feed(&p->sse, data, len);
        if (!p->is_streaming_out || p->is_stopped)
            return;
        proto_buf_append(&p->pending, data, len);
        gw_proxy_flush(c, H2O_SEND_STATE_IN_PROGRESS);
        if (p->pending.len >= GW_STREAM_PAUSE_BYTES && !p->is_paused && p->call) {
            p->is_paused = true;
            gw_upstream_call_pause(p->call);
        }
        return;
    }
    if (p->body_buf.len + len > GW_UPSTREAM_BODY_MAX)
        return; /* cut: metered from what arrived, answered as a failure below */
    proto_buf_append(&p->body_buf, data, len);
}

static void gw_proxy_on_done(void *arg, int error, const char *message)
{
    struct gw_call *c = arg;
    struct gw_proxy *p = c->ctx;
    p->call = NULL;
    p->is_upstream_done = true;
    p->upstream_error = error;
    fmt_copy(p->upstream_message, sizeof p->upstream_message, message ? message : "");
    c->upstream_ms = (double)(gw_now_ns() - p->t0_ns) / 1e6;
    if (p->is_streaming_out) {
        /* Metered from the events seen; unknown usage: the whole hold. */
        int64_t cost = p->sse.usage.has_usage ? gw_usage_cost(&p->price, &p->sse.usage) : -1;
        p->tokens = gw_usage_tokens(&p->sse.usage);
        if (cost < 0 || cost > PROTO_AMOUNT_MAX)
            cost = p->reserved_micros;
        gw_proxy_commit(c, cost);
    } else if (error != 0 || p->up_status >= 500 || p->up_status == 0) {
        if (!p->upstream_message[0])
            snprintf(p->upstream_message, sizeof p->upstream_message, "status %d", p->up_status);
        if (error == GW_UPSTREAM_ECANCELED && p->up_status == 200)
            gw_proxy_commit(c, p->reserved_micros);
        else
            gw_proxy_release(c);
    } else if (p->up_status >= 400) {
        gw_proxy_release(c);
    } else {
        struct gw_usage u;
        memset(&u, 0, sizeof u);
        int64_t cost = -1;
        if (gw_usage_from_json(p->provider, p->body_buf.data, p->body_buf.len, &u) == 0) {
            cost = gw_usage_cost(&p->price, &u);
            p->tokens = gw_usage_tokens(&u);
        }
        if (cost < 0)
            cost = p->reserved_micros; /* usage unknown: the whole hold */
        gw_proxy_commit(c, cost);
    }
    gw_call_release(c);
}

/* ---- forward ---- */

/* Request headers never passed to the provider: credentials (the caller's
 * purser key above all), the gateway's own, hop-by-hop ones, and those the
 * gateway sets or must control (content type, encodings it has to read in
 * clear, the billing entity of the provider key). */
static bool gw_proxy_header_is_kept(const h2o_iovec_t *name)
{
    static const char *const drop[] = {
        "authorization", "proxy-authorization", "x-api-key", "cookie", "idempotency-key",
        "host", "content-length", "content-type", "connection", "keep-alive",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect",
        "accept-encoding", "anthropic-version", "openai-organization", "openai-project"};
    if (name->len >= 9 && strncasecmp(name->base, "x-budget-", 9) == 0)
        return false;
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (name->len == strlen(drop[i]) && strncasecmp(name->base, drop[i], name->len) == 0)
            return false;
    return true;
}

/* The caller's other headers ("OpenAI-Beta", "anthropic-beta", a test
 * double's controls, ...) go through unchanged, as many as fit. */
static size_t gw_proxy_pass_headers(struct gw_call *c, size_t n)
{
    struct gw_proxy *p = c->ctx;
    h2o_req_t *req = c->req;
    for (size_t i = 0; req && i < req->headers.size && n < GW_UPSTREAM_HEADERS_MAX; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->value.len == 0 || h->name->len + h->value.len > 4096 ||
            !gw_proxy_header_is_kept(h->name))
            continue;
        size_t len = h->name->len + 2 + h->value.len;
        char *line = h2o_mem_alloc_pool(&req->pool, len + 1);
        memcpy(line, h->name->base, h->name->len);
        memcpy(line + h->name->len, ": ", 2);
        memcpy(line + h->name->len + 2, h->value.base, h->value.len);
        line[len] = '\0';
        p->header_ptrs[n++] = line;
    }
    return n;
}

/* The provider credential line of each upstream, built on first use (the
 * config does not change while the gateway runs): no formatting per call. */
static const char *gw_proxy_credential_line(const struct gw *g, const struct gw_upstream_conf *up)
{
    static struct {
        const struct gw_upstream_conf *up;
        char line[600];
    } lines[GW_UPSTREAMS_MAX];
    size_t i = (size_t)(up - g->config.upstreams);
    if (lines[i].up != up) {
        if (up->provider == GW_PROVIDER_ANTHROPIC)
            snprintf(lines[i].line, sizeof lines[i].line, "x-api-key: %s", up->api_key);
        else
            snprintf(lines[i].line, sizeof lines[i].line, "Authorization: Bearer %s",
                     up->api_key);
        lines[i].up = up;
    }
    return lines[i].line;
}

static void gw_proxy_forward(struct gw_call *c)
{
    struct gw_proxy *p = c->ctx;
    const struct gw_upstream_conf *up = p->up;
    char url[sizeof up->base_url + 64];
    size_t base_len = strlen(up->base_url), endpoint_len = strlen(p->endpoint);
    if (endpoint_len >= sizeof url - base_len)
        endpoint_len = sizeof url - base_len - 1;
    memcpy(url, up->base_url, base_len);
    memcpy(url + base_len, p->endpoint, endpoint_len);
    url[base_len + endpoint_len] = '\0';
    size_t n = 0;
    p->header_ptrs[n++] = "Content-Type: application/json";
    p->header_ptrs[n++] = gw_proxy_credential_line(c->gw, up);
    if (up->provider == GW_PROVIDER_ANTHROPIC) {
        const char *ver = c->req ? gw_header(c->req, "anthropic-version") : NULL;
        snprintf(p->header_lines[0], sizeof p->header_lines[0], "anthropic-version: %.64s",
                 ver ? ver : "2023-06-01");
        p->header_ptrs[n++] = p->header_lines[0];
    }
    n = gw_proxy_pass_headers(c, n);
    /* OpenAI streams report usage only when asked: ask. */
    const char *body = NULL;
    size_t body_len = 0;
    if (p->is_stream && up->provider == GW_PROVIDER_OPENAI) {
        if (!p->body && c->req) /* valid JSON: parsed when the call was taken */
            p->body = json_loadb(c->req->entity.base, c->req->entity.len, 0, NULL);
        json_t *so = json_object_get(p->body, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(p->body, "stream_options", so);
        }
        json_object_set_new(so, "include_usage", json_true());
        p->forward_body = json_dumps(p->body, JSON_COMPACT);
        body = p->forward_body;
        body_len = body ? strlen(body) : 0;
    } else if (c->req) {
        body = c->req->entity.base;
        body_len = c->req->entity.len;
    }
    struct gw_upstream_request ur = {
        .url = url, .method = "POST", .header_lines = p->header_ptrs, .header_count = n,
        .body = body, .body_len = body_len,
        .connect_timeout_ms = 5000, .total_timeout_ms = c->gw->config.upstream_timeout_ms};
    static const struct gw_upstream_callbacks cbs = {gw_proxy_on_head, gw_proxy_on_body,
                                                     gw_proxy_on_done};
    p->t0_ns = gw_now_ns();
    gw_call_hold(c);
    if (!body || gw_upstream_call_start(c->gw->upstream, &ur, &cbs, c, &p->call) != 0) {
        gw_call_release(c);
        p->up_status = 0;
        p->upstream_error = GW_UPSTREAM_EFAILED;
        snprintf(p->upstream_message, sizeof p->upstream_message, "could not start the call");
        gw_proxy_release(c);
    }
}

/* ---- reserve ---- */

static void gw_proxy_reserved(struct gw_call *c, int status, const struct proto_result *r,
                              const char *message)
{
    struct gw_proxy *p = c->ctx;
    c->reserve_ms = (double)(gw_now_ns() - p->t0_ns) / 1e6;
    if (status != PC_OK) {
        gw_reply_unavailable(c, message);
        return;
    }
    if (r->status != PROTO_OK) {
        gw_reply_refusal(c, r, p->reserved_micros);
        return;
    }
    p->reservation_id = r->id;
    p->remaining_micros = r->remaining_micros;
    gw_metrics_money(c->gw, p->reserved_micros, 0, 0);
    if (!c->req) {
        /* The client left before we forwarded: nothing was bought. */
        gw_proxy_release(c);
        return;
    }
    gw_proxy_forward(c);
}

static void gw_proxy_priced(struct gw_call *c, int status, const struct gw_price *price)
{
    struct gw_proxy *p = c->ctx;
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    if (status != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "model \"%s\" has no price: it is refused rather than priced"
                 " at zero", p->model);
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return;
    }
    p->price = *price;
    /* The worst case: every prompt byte a token at the dearest input rate,
     * plus the output bound at the output rate. */
    int64_t in_rate = price->input_micros;
    if (price->cached_micros > in_rate)
        in_rate = price->cached_micros;
    if (price->cache_write_micros > in_rate)
        in_rate = price->cache_write_micros;
    int64_t prompt = c->req ? (int64_t)c->req->entity.len : 0;
    int64_t a = gw_cost(prompt, in_rate);
    int64_t b = p->is_embeddings ? 0 : gw_cost(p->max_output_tokens, price->output_micros);
    int64_t total;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &total) || total > PROTO_AMOUNT_MAX) {
        gw_reply_error(c, 400, "invalid_request", "the worst-case cost of this call overflows",
                       NULL);
        return;
    }
    if (total < 1)
        total = 1;
    p->reserved_micros = total;
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_RESERVE;
    cmd.u.reserve.account = proto_str_c(c->account);
    cmd.u.reserve.payee = proto_str_c(c->payee);
    cmd.u.reserve.amount_micros = total;
    cmd.u.reserve.ttl_ms = GW_RESERVE_TTL_MS;
    cmd.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
    cmd.u.reserve.metadata = c->metadata;
    /* Rate limits: the worst-case tokens (prompt bytes bound the prompt). */
    cmd.u.reserve.tokens = prompt + (p->is_embeddings ? 0 : p->max_output_tokens);
    struct proto_map *m = &cmd.u.reserve.metadata;
    bool has_model = false;
    for (uint32_t i = 0; i < m->count; i++)
        if (proto_str_eq(m->kv[i].key, "model"))
            has_model = true;
    m->raw = (struct proto_str){NULL, 0};
    if (!has_model && m->count < PROTO_MAP_MAX) {
        m->kv[m->count].key = proto_str_c("model");
        m->kv[m->count].value = proto_str_c(p->model);
        m->count++;
    }
    if (p->hint_usd[0] && m->count < PROTO_MAP_MAX) {
        /* The caller's own estimate: recorded for estimates and reports;
         * the hold stays the true upper bound. */
        m->kv[m->count].key = proto_str_c("hint_usd");
        m->kv[m->count].value = proto_str_c(p->hint_usd);
        m->count++;
    }
    char key[PROTO_KEY_MAX + 1];
    if (c->idem_key[0]) {
        size_t n = fmt_copy(key, 111, c->idem_key); /* as "%.110s:reserve" */
        memcpy(key + n, ":reserve", sizeof ":reserve");
        cmd.key = proto_str_c(key);
    }
    p->t0_ns = gw_now_ns();
    gw_proxy_settle_flush(c->gw); /* held settles share this reserve's entry */
    gw_ledger_apply(c, &cmd, gw_proxy_reserved);
}

static void gw_proxy_authed(struct gw_call *c)
{
    gw_ledger_price(c, P(c)->model, gw_proxy_priced);
}

int gw_proxy_handle(struct gw_call *c, h2o_req_t *req, const char *endpoint,
                    enum gw_provider provider)
{
    struct gw *g = c->gw;
    struct gw_proxy_request pr;
    char msg[400];
    /* The document itself is built only when the call is forwarded with a
     * rewritten body (see gw_proxy_forward). */
    if (gw_parse_proxy_fields(req->entity.base, req->entity.len, &pr, msg, sizeof msg) != 0) {
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return 0;
    }
    json_t *body = pr.body;
    const struct gw_model_conf *route = gw_config_model(&g->config, pr.model);
    if (!route) {
        snprintf(msg, sizeof msg, "model \"%s\" is not routed by this gateway", pr.model);
        json_decref(body);
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return 0;
    }
    const struct gw_upstream_conf *up = &g->config.upstreams[route->upstream];
    if (up->provider != provider) {
        json_decref(body);
        gw_reply_error(c, 400, "invalid_request",
                       "this model's provider does not serve this endpoint", NULL);
        return 0;
    }
    struct gw_proxy *p = calloc(1, sizeof *p + sizeof(struct gw_call *));
    if (!p) {
        json_decref(body);
        gw_reply_error(c, 500, "internal", "out of memory", NULL);
        return 0;
    }
    *(struct gw_call **)(p + 1) = c;
    p->provider = provider;
    p->endpoint = endpoint;
    p->body = body;
    p->route = route;
    p->up = up;
    memcpy(p->model, pr.model, strlen(pr.model) + 1); /* 1..PROTO_TEXT_MAX bytes, checked */
    p->is_embeddings = strcmp(endpoint, "/embeddings") == 0;
    p->is_stream = pr.is_stream;
    gw_sse_init(&p->sse, provider);
    proto_buf_init(&p->body_buf);
    proto_buf_init(&p->pending);
    proto_buf_init(&p->sending);
    c->ctx = p;
    c->ctx_free = gw_proxy_free;
    /* The output bound: the call's own limit, else the model's. */
    if (pr.is_max_tokens_bad) {
        gw_reply_error(c, 400, "invalid_request", GW_PARSE_MAX_TOKENS_MESSAGE, NULL);
        return 0;
    }
    p->max_output_tokens = pr.has_max_tokens ? pr.max_tokens
                              : (route->max_output_tokens > 0 ? route->max_output_tokens
                                                              : GW_DEFAULT_MAX_OUTPUT);
    if (route->max_output_tokens > 0 && p->max_output_tokens > route->max_output_tokens)
        p->max_output_tokens = route->max_output_tokens;
    const char *hint = gw_header(req, "x-budget-hint");
    if (hint) {
        int64_t micros = 0;
        if (gw_parse_hint(hint, &micros) != 0) {
            gw_reply_error(c, 400, "invalid_request",
                           "X-Budget-Hint must be a non-negative USD amount like 0.25", NULL);
            return 0;
        }
        money_format(micros, p->hint_usd, sizeof p->hint_usd);
    }
    gw_auth_start(c, provider == GW_PROVIDER_ANTHROPIC ? "vendor/anthropic" : "vendor/openai",
                  gw_proxy_authed);
    return 0;
}
