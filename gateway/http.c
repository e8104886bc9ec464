/*
 * http.c — the gateway's HTTP side on h2o (HTTP/1.1 keep-alive and HTTP/2)
 * over the shared libuv loop: the listener, routing, answers, and the call
 * object that survives a client that went away.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "gateway/gateway.h"

uint64_t gw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void gw_usd(int64_t micros, char *out, size_t cap)
{
    if (money_format(micros, out, cap) < 0)
        snprintf(out, cap, "0.000000");
}

/* ---- calls ---- */

struct gw_req_link {
    struct gw_call *call;
};

static void gw_call_free(struct gw_call *c)
{
    double total = (double)(gw_now_ns() - c->start_ns) / 1e6;
    gw_metrics_request(c->gw, c->endpoint, c->status, c->refusal[0] ? c->refusal : NULL, total,
                       c->reserve_ms, c->upstream_ms, c->settle_ms);
    gw_log_call(c, total); /* never a key or a secret */
    if (c->ctx_free)
        c->ctx_free(c);
    free(c->metadata_buf);
    free(c->auth);
    free(c->wait);
    free(c);
}

void gw_call_hold(struct gw_call *c)
{
    c->refs++;
}

void gw_call_release(struct gw_call *c)
{
    assert(c->refs > 0);
    if (--c->refs == 0)
        gw_call_free(c);
}

bool gw_call_has_client(const struct gw_call *c)
{
    return c->req != NULL;
}

/* h2o frees the request (client gone, or the answer was sent). */
static void gw_req_disposed(void *p)
{
    struct gw_req_link *link = p;
    struct gw_call *c = link->call;
    c->req = NULL;
    gw_call_release(c);
}

/* "req-%llx-%llu" of the start time and the sequence number, without
 * printf (every request has one). */
static void gw_request_id(char out[32], uint64_t t, uint64_t seq)
{
    static const char hex[] = "0123456789abcdef";
    char d[20];
    size_t i = sizeof d, n = 4;
    memcpy(out, "req-", 4);
    do {
        d[--i] = hex[t & 15];
        t >>= 4;
    } while (t);
    memcpy(out + n, d + i, sizeof d - i);
    n += sizeof d - i;
    out[n++] = '-';
    i = sizeof d;
    do {
        d[--i] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    size_t len = sizeof d - i < 31 - n ? sizeof d - i : 31 - n; /* cut as snprintf did */
    memcpy(out + n, d + i, len);
    out[n + len] = '\0';
}

struct gw_call *gw_call_new(struct gw *g, h2o_req_t *req, const char *endpoint)
{
    struct gw_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->gw = g;
    c->req = req;
    c->refs = 1; /* released when h2o disposes of the request */
    c->start_ns = gw_now_ns();
    c->endpoint = endpoint;
    gw_request_id(c->request_id, c->start_ns & 0xffffffffffull, ++g->request_seq);
    struct gw_req_link *link = h2o_mem_alloc_shared(&req->pool, sizeof *link, gw_req_disposed);
    link->call = c;
    return c;
}

const char *gw_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    char *s = h2o_mem_alloc_pool(&req->pool, v.len + 1);
    memcpy(s, v.base, v.len);
    s[v.len] = '\0';
    return s;
}

void gw_add_header(struct gw_call *c, const char *name, const char *value)
{
    if (!c->req)
        return;
    h2o_req_t *req = c->req;
    size_t nl = strlen(name), vl = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->pool, nl + 1);
    char *v = h2o_mem_alloc_pool(&req->pool, vl + 1);
    memcpy(n, name, nl + 1);
    memcpy(v, value, vl + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nl, 0, NULL, v, vl);
}

/* Appends ms as "%.2f" would print it (no printf: this is on every
 * answer); returns the new end. */
static char *gw_put_ms2(char *p, double ms)
{
    if (!(ms >= 0) || ms > 1e12)
        return p + sprintf(p, "%.2f", ms > 1e12 ? 1e12 : 0.0);
    uint64_t cs = (uint64_t)(ms * 100.0 + 0.5);
    char d[24];
    size_t i = sizeof d;
    uint64_t whole = cs / 100;
    do {
        d[--i] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    memcpy(p, d + i, sizeof d - i);
    p += sizeof d - i;
    *p++ = '.';
    *p++ = (char)('0' + cs / 10 % 10);
    *p++ = (char)('0' + cs % 10);
    return p;
}

void gw_add_timing_headers(struct gw_call *c)
{
    char t[160];
    char *p = t;
    static const char *const names[3] = {"reserve;dur=", ", upstream;dur=", ", settle;dur="};
    const double ms[3] = {c->reserve_ms, c->upstream_ms, c->settle_ms};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(names[i]);
        memcpy(p, names[i], n);
        p = gw_put_ms2(p + n, ms[i]);
    }
    *p = '\0';
    gw_add_header(c, "server-timing", t);
    gw_add_header(c, "x-request-id", c->request_id);
}

void gw_reply_raw(struct gw_call *c, int status, const char *content_type, const char *body,
                  size_t len)
{
    c->status = status;
    if (!c->req)
        return;
    h2o_req_t *req = c->req;
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "";
    gw_add_header(c, "content-type", content_type);
    gw_add_timing_headers(c);
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    memcpy(copy, body, len);
    /* A known length: h2o 2.2's chunked encoder closes the connection after
     * any non-200 answer of unknown length (every refusal, every 201). */
    req->res.content_length = len;
    h2o_send_inline(req, copy, len);
}

void gw_reply_json(struct gw_call *c, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) {
        gw_reply_raw(c, 500, "application/json", "{}", 2);
        return;
    }
    gw_reply_raw(c, status, "application/json", text, strlen(text));
    free(text);
}

void gw_reply_error(struct gw_call *c, int status, const char *type, const char *message,
                    json_t *extra)
{
    json_t *err = extra ? extra : json_object();
    json_object_set_new(err, "type", json_string(type));
    json_object_set_new(err, "code", json_string(type));
    json_object_set_new(err, "message", json_string(message));
    snprintf(c->refusal, sizeof c->refusal, "%s", type);
    gw_reply_json(c, status, json_pack("{s:o}", "error", err));
}

/* ---- routing ---- */

static bool gw_path_is(h2o_req_t *req, const char *path)
{
    size_t n = strlen(path);
    h2o_iovec_t p = req->path_normalized;
    return p.len == n && memcmp(p.base, path, n) == 0;
}

static int gw_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = *(struct gw **)(self + 1);
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (is_get && gw_path_is(req, "/healthz")) {
        struct gw_call *c = gw_call_new(g, req, "healthz");
        if (!c)
            return -1;
        gw_reply_raw(c, 200, "text/plain", "ok\n", 3);
        return 0;
    }
    if (is_get && gw_path_is(req, "/readyz")) {
        struct gw_call *c = gw_call_new(g, req, "readyz");
        if (!c)
            return -1;
        if (g->is_ready)
            gw_reply_raw(c, 200, "text/plain", "ready\n", 6);
        else
            gw_reply_error(c, 503, "ledger_unavailable", "no quorum answered recently", NULL);
        return 0;
    }
    if (is_get && gw_path_is(req, "/metrics")) {
        struct gw_call *c = gw_call_new(g, req, "metrics");
        if (!c)
            return -1;
        size_t len = 0;
        char *text = gw_metrics_render(g, &len);
        gw_reply_raw(c, 200, "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
        free(text);
        return 0;
    }
    static const struct {
        const char *path;
        const char *endpoint;
        enum gw_provider provider;
    } proxies[] = {
        {"/v1/chat/completions", "chat_completions", GW_PROVIDER_OPENAI},
        {"/v1/completions", "completions", GW_PROVIDER_OPENAI},
        {"/v1/embeddings", "embeddings", GW_PROVIDER_OPENAI},
        {"/v1/messages", "messages", GW_PROVIDER_ANTHROPIC},
    };
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) {
        if (!gw_path_is(req, proxies[i].path))
            continue;
        struct gw_call *c = gw_call_new(g, req, proxies[i].endpoint);
        if (!c)
            return -1;
        if (!is_post) {
            gw_reply_error(c, 405, "invalid_request", "use POST", NULL);
            return 0;
        }
        return gw_proxy_handle(c, req, proxies[i].path + 3, proxies[i].provider);
    }
    if (req->path_normalized.len >= 11 && memcmp(req->path_normalized.base, "/v1/budget/", 11) == 0) {
        struct gw_call *c = gw_call_new(g, req, "budget");
        if (!c)
            return -1;
        return gw_budget_handle(c, req);
    }
    struct gw_call *c = gw_call_new(g, req, "unknown");
    if (!c)
        return -1;
    gw_reply_error(c, 404, "not_found", "no such endpoint", NULL);
    return 0;
}

static void gw_on_accept(uv_stream_t *listener, int status)
{
    struct gw *g = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof *conn);
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&g->accept_ctx, sock);
}

static SSL_CTX *gw_tls_context(const char *cert, const char *key, char *msg, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(msg, cap, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(msg, cap, "--tls-cert %s: cannot load the certificate chain", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(msg, cap, "--tls-key %s: cannot load a key that matches the certificate", key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

int gw_http_start(struct gw *g, const char *listen, const char *tls_cert, const char *tls_key,
                  char *msg, size_t cap)
{
    char host[64];
    int port = 0;
    if (rpc_addr_parse(listen, host, sizeof host, &port) != 0) {
        snprintf(msg, cap, "--listen %s: expected a numeric a.b.c.d:port", listen);
        return -1;
    }
    h2o_config_init(&g->h2o_config);
    g->h2o_config.max_request_entity_size = GW_BODY_MAX;
    h2o_hostconf_t *host_conf =
        h2o_config_register_host(&g->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path_conf = h2o_config_register_path(host_conf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path_conf, sizeof *handler + sizeof(struct gw *));
    handler->on_req = gw_on_req;
    *(struct gw **)(handler + 1) = g;
    h2o_context_init(&g->h2o_ctx, g->loop, &g->h2o_config);
    g->accept_ctx.ctx = &g->h2o_ctx;
    g->accept_ctx.hosts = g->h2o_config.hosts;
    if (tls_cert || tls_key) {
        if (!tls_cert || !tls_key) {
            snprintf(msg, cap, "--tls-cert and --tls-key go together");
            return -1;
        }
        g->accept_ctx.ssl_ctx = gw_tls_context(tls_cert, tls_key, msg, cap);
        if (!g->accept_ctx.ssl_ctx)
            return -1;
    }

    struct sockaddr_in sa;
    uv_ip4_addr(host, port, &sa);
    uv_tcp_init(g->loop, &g->listener);
    g->listener.data = g;
    int rc = uv_tcp_bind(&g->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&g->listener, 1024, gw_on_accept);
    if (rc != 0) {
        snprintf(msg, cap, "--listen %s: %s", listen, uv_strerror(rc));
        return -1;
    }
    return 0;
}

void gw_http_stop(struct gw *g)
{
    uv_close((uv_handle_t *)&g->listener, NULL);
}
