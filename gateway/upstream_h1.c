/*
 * upstream_h1.c — the native HTTP/1.1 client for plain http:// upstreams
 * (self-hosted model servers, sidecars, the benchmark's mock).
 *
 * Why not libcurl here too: at 64 connections libcurl was a third of the
 * gateway's CPU per call — requests built with printf, status lines parsed
 * with sscanf, a poll() for liveness before each reuse and another after each
 * send.  This client does one write and one read per call on a kept-alive
 * connection.  https:// stays on libcurl (upstream_curl.c).
 *
 * Model.  An origin (host, port) keeps a LIFO of idle connections and a FIFO
 * of calls waiting while H1_ORIGIN_CONNECTIONS_MAX are busy.  A call takes an
 * idle connection or opens one, writes its request (uv_try_write; the rest,
 * if any, with uv_write), and parses the response as it is read with
 * h1_response.c: status line and headers (in place in the connection's read
 * buffer), then a body framed by Content-Length, chunked, or the end of the
 * connection.  Body bytes go to on_body straight from the read buffer.  Idle
 * connections keep reading, so one the server closes leaves the pool at once; a request written on a
 * reused connection that dies before any response byte is retried once on a
 * fresh connection (the server may have closed it at the same moment).
 *
 * Callbacks.  on_done runs from read, write, connect, resolve, timer and
 * check callbacks, never from inside gw_h1_call_start (an error found there
 * is queued) or gw_h1_call_cancel.  Cancel and resume only queue the call on
 * the pending list, which a uv_check serves at the end of the loop turn (a
 * uv_idle keeps the loop from blocking meanwhile).  Pausing stops reading;
 * bytes already read stay in the buffer until resume.
 *
 * Memory.  A call struct (with its timer) comes from a pool; its request
 * bytes are one malloc; a connection is one malloc with its read buffer.
 * Timers: each call has one, armed for its connect deadline while it has no
 * open connection, then for its total deadline.
 */
#include "gateway/upstream_impl.h"
#include "gateway/h1_response.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Connections to one origin; more calls wait for one. */
#define H1_ORIGIN_CONNECTIONS_MAX 256
/* Idle connections kept per origin (the warmest are reused first). */
#define H1_ORIGIN_IDLE_MAX 128
/* Origins: routes come from the config, so a handful. */
#define H1_ORIGINS_MAX 64
#define H1_HOST_MAX 255
/* The response head must fit in the read buffer. */
#define H1_READ_BUFFER_BYTES GW_H1_RESPONSE_HEAD_BYTES_MAX
/* Idle call structs (each with an initialized timer) kept for reuse. */
#define H1_CALL_POOL_MAX 256

_Static_assert(GW_H1_RESPONSE_HEADERS_MAX == GW_UPSTREAM_RESPONSE_HEADERS_MAX &&
                   GW_H1_RESPONSE_HEADER_BYTES_MAX == GW_UPSTREAM_RESPONSE_HEADER_BYTES_MAX,
               "on_head's limits are the parser's");

struct h1_call;

struct h1_origin {
    struct gw_h1 *h;
    char host[H1_HOST_MAX + 1];      /* without an IPv6 literal's brackets */
    char authority[H1_HOST_MAX + 9]; /* the Host header: as in the URL */
    uint16_t port;
    struct h1_conn *idle;            /* LIFO (idle_next/idle_prev) */
    size_t idle_count;
    size_t conn_count;               /* open or opening */
    struct h1_call *wait_head, *wait_tail;
    struct h1_origin *next;
};

struct h1_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_write_t write_req;
    struct gw_h1 *h;
    struct h1_origin *o;             /* not to be used once closing: it may be gone */
    struct h1_call *call;            /* NULL while idle */
    struct h1_conn *idle_next, *idle_prev;
    char *orphan_buf;                /* a finished call's request still being written */
    bool is_resolving, is_connecting, is_open, is_closing, is_writing, is_reading;
    bool is_reused;                  /* served a call before this one */
    /* The response being read. */
    bool has_response_bytes;
    struct gw_h1_response response;
    size_t rpos, rlen;               /* unparsed bytes: rbuf[rpos, rlen) */
    char rbuf[H1_READ_BUFFER_BYTES];
};

struct h1_call {
    struct gw_upstream_call base;    /* first: the handle the caller holds */
    struct gw_h1 *h;
    struct h1_origin *o;
    struct h1_conn *conn;
    struct gw_upstream_callbacks cb;
    void *arg;
    uv_timer_t timer;
    char *req;                       /* the request bytes */
    size_t req_len;
    uint64_t start_ms;
    uint32_t connect_timeout_ms, total_timeout_ms;
    bool is_head_request;
    bool is_paused, is_canceled, is_finished, is_retried, is_resume_due;
    int error;                       /* found inside start: reported from the loop */
    char url_quote[GW_UPSTREAM_URL_QUOTE_MAX + 1];
    char message[GW_UPSTREAM_MESSAGE_MAX];
    struct h1_call *prev, *next;                 /* h->calls */
    struct h1_call *pending_prev, *pending_next; /* h->pending */
    bool is_pending;
    struct h1_call *wait_next;                   /* o->wait */
    bool is_waiting;
};

struct gw_h1 {
    uv_loop_t *loop;
    uv_check_t check;
    uv_idle_t idle;
    struct h1_origin *origins;
    size_t origin_count;
    struct h1_call *calls;
    struct h1_call *pending_head, *pending_tail;
    struct h1_call *pool[H1_CALL_POOL_MAX];
    size_t pool_count;
    int in_start;        /* > 0 inside gw_h1_call_start: errors are queued */
    int handles_open;    /* h is freed when the last closes */
    bool is_closing;
};

static void conn_parse(struct h1_conn *k);
static void call_dispatch(struct h1_call *c);
static void on_check(uv_check_t *check);
static void on_idle(uv_idle_t *idle);

/* ---- handles and freeing ---- */

static void h1_maybe_free(struct gw_h1 *h)
{
    if (h->is_closing && h->handles_open == 0)
        free(h);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct gw_h1 *h = handle->data;
    h->handles_open--;
    h1_maybe_free(h);
}

static void on_call_timer_closed(uv_handle_t *handle)
{
    struct h1_call *c = handle->data;
    struct gw_h1 *h = c->h;
    free(c);
    h->handles_open--;
    h1_maybe_free(h);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct h1_conn *k = handle->data;
    struct gw_h1 *h = k->h;
    free(k->orphan_buf);
    free(k);
    h->handles_open--;
    h1_maybe_free(h);
}

/* ---- the pending list (cancel, resume, errors found inside start) ---- */

static void pending_add(struct gw_h1 *h, struct h1_call *c)
{
    if (c->is_pending)
        return;
    c->is_pending = true;
    c->pending_next = NULL;
    c->pending_prev = h->pending_tail;
    if (h->pending_tail)
        h->pending_tail->pending_next = c;
    else
        h->pending_head = c;
    h->pending_tail = c;
    if (!uv_is_active((uv_handle_t *)&h->check)) {
        uv_check_start(&h->check, on_check);
        uv_idle_start(&h->idle, on_idle);
    }
}

static void pending_remove(struct gw_h1 *h, struct h1_call *c)
{
    if (!c->is_pending)
        return;
    if (c->pending_prev)
        c->pending_prev->pending_next = c->pending_next;
    else
        h->pending_head = c->pending_next;
    if (c->pending_next)
        c->pending_next->pending_prev = c->pending_prev;
    else
        h->pending_tail = c->pending_prev;
    c->is_pending = false;
    if (h->pending_head == NULL) {
        uv_check_stop(&h->check);
        uv_idle_stop(&h->idle);
    }
}

/* ---- origins ---- */

static void wait_push(struct h1_origin *o, struct h1_call *c)
{
    c->wait_next = NULL;
    c->is_waiting = true;
    if (o->wait_tail)
        o->wait_tail->wait_next = c;
    else
        o->wait_head = c;
    o->wait_tail = c;
}

static struct h1_call *wait_pop(struct h1_origin *o)
{
    struct h1_call *c = o->wait_head;
    if (c == NULL)
        return NULL;
    o->wait_head = c->wait_next;
    if (o->wait_head == NULL)
        o->wait_tail = NULL;
    c->is_waiting = false;
    return c;
}

static void wait_remove(struct h1_origin *o, struct h1_call *c)
{
    struct h1_call **pp = &o->wait_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (*pp == NULL)
        return;
    *pp = c->wait_next;
    if (o->wait_tail == c)
        o->wait_tail = prev;
    c->is_waiting = false;
}

static void idle_push(struct h1_origin *o, struct h1_conn *k)
{
    k->idle_prev = NULL;
    k->idle_next = o->idle;
    if (o->idle)
        o->idle->idle_prev = k;
    o->idle = k;
    o->idle_count++;
}

static void idle_remove(struct h1_origin *o, struct h1_conn *k)
{
    if (k->idle_prev)
        k->idle_prev->idle_next = k->idle_next;
    else
        o->idle = k->idle_next;
    if (k->idle_next)
        k->idle_next->idle_prev = k->idle_prev;
    k->idle_next = k->idle_prev = NULL;
    o->idle_count--;
}

/* Splits "http://host[:port][/path]"; *path points into url (NULL: "/").
 * Returns false for what this client does not take (userinfo, bad port). */
static bool url_split(const char *url, char *host, char *authority, uint16_t *port,
                      const char **path)
{
    const char *a = url + 7; /* after "http://" */
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || alen > H1_HOST_MAX || memchr(a, '@', alen))
        return false;
    memcpy(authority, a, alen);
    authority[alen] = '\0';
    const char *host_start = a, *host_end, *colon;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (rb == NULL)
            return false;
        host_start = a + 1;
        host_end = rb;
        colon = rb + 1 < a + alen ? rb + 1 : NULL;
        if (colon && *colon != ':')
            return false;
    } else {
        colon = memchr(a, ':', alen);
        host_end = colon ? colon : a + alen;
    }
    size_t hlen = (size_t)(host_end - host_start);
    if (hlen == 0)
        return false;
    memcpy(host, host_start, hlen);
    host[hlen] = '\0';
    unsigned long p = 80;
    if (colon) {
        const char *d = colon + 1, *end = a + alen;
        if (d == end)
            return false;
        p = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            p = p * 10 + (unsigned long)(*d - '0');
            if (p > 65535)
                return false;
        }
        if (p == 0)
            return false;
    }
    *port = (uint16_t)p;
    const char *rest = a + alen;
    *path = (*rest == '/' || *rest == '?') ? rest : NULL;
    return true;
}

static struct h1_origin *origin_get(struct gw_h1 *h, const char *host, const char *authority,
                                    uint16_t port)
{
    for (struct h1_origin *o = h->origins; o; o = o->next)
        if (o->port == port && strcmp(o->host, host) == 0 && strcmp(o->authority, authority) == 0)
            return o;
    if (h->origin_count == H1_ORIGINS_MAX)
        return NULL;
    struct h1_origin *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->h = h;
    snprintf(o->host, sizeof o->host, "%s", host);
    snprintf(o->authority, sizeof o->authority, "%s", authority);
    o->port = port;
    o->next = h->origins;
    h->origins = o;
    h->origin_count++;
    return o;
}

/* ---- calls ---- */

static uint64_t call_elapsed_ms(const struct h1_call *c)
{
    return uv_now(c->h->loop) - c->start_ms;
}

static void on_call_timer(uv_timer_t *timer);

/* Arms the timer for the next deadline: connect (until the connection is
 * open) or total.  0 means no limit. */
static void call_arm_timer(struct h1_call *c)
{
    uint64_t deadline = 0;
    if (c->total_timeout_ms > 0)
        deadline = c->total_timeout_ms;
    bool is_connecting = c->conn == NULL || !c->conn->is_open;
    if (is_connecting && c->connect_timeout_ms > 0 &&
        (deadline == 0 || c->connect_timeout_ms < deadline))
        deadline = c->connect_timeout_ms;
    if (deadline == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t elapsed = call_elapsed_ms(c);
    uv_timer_start(&c->timer, on_call_timer, deadline > elapsed ? deadline - elapsed : 0, 0);
}

static void call_unlink(struct gw_h1 *h, struct h1_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_recycle(struct gw_h1 *h, struct h1_call *c)
{
    if (!h->is_closing && h->pool_count < H1_CALL_POOL_MAX) {
        h->pool[h->pool_count++] = c;
        return;
    }
    uv_close((uv_handle_t *)&c->timer, on_call_timer_closed);
}

/* Reports and recycles the call; it must have no connection. */
static void call_finish(struct h1_call *c, int error, const char *message)
{
    struct gw_h1 *h = c->h;
    assert(!c->is_finished);
    assert(c->conn == NULL);
    pending_remove(h, c);
    if (c->is_waiting)
        wait_remove(c->o, c);
    call_unlink(h, c);
    uv_timer_stop(&c->timer);
    free(c->req);
    c->req = NULL;
    c->is_finished = true;
    c->cb.on_done(c->arg, error, message);
    call_recycle(h, c);
}

/* A failure: reported now, or from the loop when found inside start. */
static void call_fail(struct h1_call *c, int error, const char *what)
{
    snprintf(c->message, sizeof c->message, "upstream %s: %s", c->url_quote, what);
    if (c->h->in_start > 0) {
        c->error = error;
        pending_add(c->h, c);
        return;
    }
    call_finish(c, error, c->message);
}

/* ---- connections ---- */

/* Takes the connection out of service; it is freed once its handle closes. */
static void conn_close(struct h1_conn *k)
{
    struct h1_origin *o = k->o;
    if (k->is_closing)
        return;
    assert(k->call == NULL);
    k->is_closing = true;
    if (k->idle_prev || o->idle == k)
        idle_remove(o, k);
    o->conn_count--;
    if (!k->is_resolving)
        uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    /* A call waiting for a connection gets a new one. */
    if (!o->h->is_closing && o->wait_head && o->conn_count < H1_ORIGIN_CONNECTIONS_MAX)
        call_dispatch(wait_pop(o));
}

/* Separates a call from its connection, which is closed unless `keep`. */
static void conn_detach(struct h1_conn *k, bool keep)
{
    struct h1_call *c = k->call;
    assert(c != NULL && c->conn == k);
    if (k->is_writing) { /* the write still needs the bytes */
        k->orphan_buf = c->req;
        c->req = NULL;
        keep = false;
    }
    k->call = NULL;
    c->conn = NULL;
    if (!keep)
        conn_close(k);
}

/* The connection failed under its call: retried once on a fresh
 * connection when nothing of the response came on a reused one. */
static void conn_fail(struct h1_conn *k, int error, const char *what)
{
    struct h1_call *c = k->call;
    bool is_retry = k->is_reused && !k->has_response_bytes && !c->is_retried && c->req != NULL &&
                    !k->is_writing;
    conn_detach(k, false);
    if (is_retry) {
        c->is_retried = true;
        call_dispatch(c);
        return;
    }
    call_fail(c, error, what);
}

static void conn_fail_uv(struct h1_conn *k, int error, const char *doing, int uv_rc)
{
    char what[160];
    snprintf(what, sizeof what, "%s: %s", doing, uv_strerror(uv_rc));
    conn_fail(k, error, what);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct h1_conn *k = handle->data;
    (void)suggested;
    if (k->rpos == k->rlen) {
        k->rpos = k->rlen = 0;
    } else if (k->rpos > 0 && k->rlen == sizeof k->rbuf) {
        /* The parser's state is relative to rbuf + rpos: moving is safe. */
        memmove(k->rbuf, k->rbuf + k->rpos, k->rlen - k->rpos);
        k->rlen -= k->rpos;
        k->rpos = 0;
    }
    *buf = uv_buf_init(k->rbuf + k->rlen, (unsigned)(sizeof k->rbuf - k->rlen));
}

static void conn_read_start(struct h1_conn *k);

/* The response is complete: the call is reported, the connection kept for
 * the next call when the response allows it. */
static void conn_complete(struct h1_conn *k)
{
    struct h1_call *c = k->call;
    /* Not while the request is still being written: the server answered
     * early, and the rest of the request would be read as the next one. */
    bool keep = k->response.is_keep_alive && k->rpos == k->rlen && !k->is_writing;
    conn_detach(k, keep);
    if (keep) {
        struct h1_origin *o = k->o;
        k->is_reused = true;
        struct h1_call *next = o->h->is_closing ? NULL : wait_pop(o);
        if (next) {
            k->call = next;
            next->conn = k;
            call_dispatch(next);
        } else if (o->idle_count < H1_ORIGIN_IDLE_MAX) {
            idle_push(o, k);
            conn_read_start(k); /* a close by the server shows at once */
        } else {
            conn_close(k);
        }
    }
    call_finish(c, 0, "");
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct h1_conn *k = stream->data;
    (void)buf;
    if (nread == 0 || k->is_closing)
        return;
    if (k->call == NULL) { /* idle: the server closed it, or said something unasked */
        conn_close(k);
        return;
    }
    if (k->call->is_canceled)
        return; /* on_done(ECANCELED) is queued: an EOF now must not end it otherwise */
    if (nread < 0) {
        if (nread == UV_EOF) {
            /* Not ended: a DONE or ERROR took the call off the connection. */
            enum gw_h1_response_event ev = gw_h1_response_finish(&k->response);
            assert(ev == GW_H1_RESPONSE_DONE || ev == GW_H1_RESPONSE_ERROR);
            k->response.is_keep_alive = false;
            if (ev == GW_H1_RESPONSE_DONE)
                conn_complete(k);
            else
                conn_fail(k, GW_UPSTREAM_EFAILED, k->response.error);
        } else if (nread == UV_ENOBUFS) {
            conn_fail(k, GW_UPSTREAM_EFAILED, "response head too large");
        } else {
            conn_fail_uv(k, GW_UPSTREAM_EFAILED, "read", (int)nread);
        }
        return;
    }
    k->rlen += (size_t)nread;
    k->has_response_bytes = true;
    conn_parse(k);
}

static void conn_read_start(struct h1_conn *k)
{
    if (k->is_reading)
        return;
    int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    if (rc != 0) {
        if (k->call)
            conn_fail_uv(k, GW_UPSTREAM_EFAILED, "read", rc);
        else
            conn_close(k);
        return;
    }
    k->is_reading = true;
}

static void conn_read_stop(struct h1_conn *k)
{
    if (!k->is_reading)
        return;
    uv_read_stop((uv_stream_t *)&k->tcp);
    k->is_reading = false;
}

static void on_write(uv_write_t *req, int status)
{
    struct h1_conn *k = req->data;
    k->is_writing = false;
    free(k->orphan_buf);
    k->orphan_buf = NULL;
    if (status < 0 && !k->is_closing && k->call)
        conn_fail_uv(k, GW_UPSTREAM_EFAILED, "write", status);
}

/* Sends the call's request on its open connection. */
static void conn_send(struct h1_conn *k)
{
    struct h1_call *c = k->call;
    k->has_response_bytes = false;
    gw_h1_response_init(&k->response, c->is_head_request);
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->req_len);
    int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_fail_uv(k, GW_UPSTREAM_EFAILED, "write", n);
        return;
    }
    if ((size_t)n < c->req_len) {
        b = uv_buf_init(c->req + n, (unsigned)(c->req_len - (size_t)n));
        k->write_req.data = k;
        int rc = uv_write(&k->write_req, (uv_stream_t *)&k->tcp, &b, 1, on_write);
        if (rc != 0) {
            conn_fail_uv(k, GW_UPSTREAM_EFAILED, "write", rc);
            return;
        }
        k->is_writing = true;
    }
    conn_read_start(k);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct h1_conn *k = req->data;
    k->is_connecting = false;
    if (k->is_closing)
        return;
    assert(k->call != NULL);
    if (status < 0) {
        conn_fail_uv(k, GW_UPSTREAM_ECONNECT, "connect", status);
        return;
    }
    k->is_open = true;
    uv_tcp_nodelay(&k->tcp, 1);
    uv_tcp_keepalive(&k->tcp, 1, 60);
    call_arm_timer(k->call); /* from the connect deadline to the total one */
    conn_send(k);
}

static void conn_connect(struct h1_conn *k, const struct sockaddr *addr)
{
    k->connect_req.data = k;
    int rc = uv_tcp_connect(&k->connect_req, &k->tcp, addr, on_connect);
    if (rc != 0) {
        conn_fail_uv(k, GW_UPSTREAM_ECONNECT, "connect", rc);
        return;
    }
    k->is_connecting = true;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct h1_conn *k = req->data;
    k->is_resolving = false;
    if (k->is_closing) {
        uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        conn_fail_uv(k, GW_UPSTREAM_ECONNECT, "resolve", status < 0 ? status : UV_EAI_NONAME);
        return;
    }
    conn_connect(k, res->ai_addr);
    uv_freeaddrinfo(res);
}

/* Opens a connection for call c (which it then carries). */
static void conn_open(struct h1_origin *o, struct h1_call *c)
{
    struct gw_h1 *h = o->h;
    struct h1_conn *k = malloc(sizeof(*k));
    if (k == NULL) {
        call_fail(c, GW_UPSTREAM_EFAILED, "out of memory");
        return;
    }
    memset(k, 0, offsetof(struct h1_conn, rbuf));
    k->h = h;
    k->o = o;
    uv_tcp_init(h->loop, &k->tcp);
    k->tcp.data = k;
    h->handles_open++;
    o->conn_count++;
    k->call = c;
    c->conn = k;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(o->port);
        conn_connect(k, (struct sockaddr *)&ss);
        return;
    }
    if (inet_pton(AF_INET6, o->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(o->port);
        conn_connect(k, (struct sockaddr *)&ss);
        return;
    }
    /* A name: resolved on the thread pool, never on the loop. */
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)o->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    k->resolve_req.data = k;
    int rc = uv_getaddrinfo(h->loop, &k->resolve_req, on_resolved, o->host, port, &hints);
    if (rc != 0) {
        conn_fail_uv(k, GW_UPSTREAM_ECONNECT, "resolve", rc);
        return;
    }
    k->is_resolving = true;
}

/* Gives the call a connection: an idle one, a new one, or a place in the
 * origin's queue. */
static void call_dispatch(struct h1_call *c)
{
    struct h1_origin *o = c->o;
    if (c->conn) { /* handed over by a finished call */
        call_arm_timer(c);
        conn_send(c->conn);
        return;
    }
    if (o->idle) {
        struct h1_conn *k = o->idle;
        idle_remove(o, k);
        k->call = c;
        c->conn = k;
        call_arm_timer(c);
        conn_send(k);
        return;
    }
    if (o->conn_count < H1_ORIGIN_CONNECTIONS_MAX) {
        conn_open(o, c);
        if (c->conn) /* the open may have failed */
            call_arm_timer(c);
        return;
    }
    wait_push(o, c);
    call_arm_timer(c);
}

static void on_call_timer(uv_timer_t *timer)
{
    struct h1_call *c = timer->data;
    bool is_connect = c->conn == NULL || !c->conn->is_open;
    if (is_connect && c->connect_timeout_ms > 0 &&
        (c->total_timeout_ms == 0 || c->connect_timeout_ms < c->total_timeout_ms)) {
        if (c->conn)
            conn_detach(c->conn, false);
        char what[96];
        snprintf(what, sizeof what, "no connection after %u ms", (unsigned)c->connect_timeout_ms);
        call_fail(c, GW_UPSTREAM_ETIMEOUT, what);
        return;
    }
    if (c->conn)
        conn_detach(c->conn, false);
    char what[96];
    snprintf(what, sizeof what, "timed out after %u ms", (unsigned)c->total_timeout_ms);
    call_fail(c, GW_UPSTREAM_ETIMEOUT, what);
}

/* ---- the response ---- */

/* Parses what is buffered, delivering to the call, until more bytes are
 * needed, the call is paused (a complete response still finishes), or it
 * ended. */
static void conn_parse(struct h1_conn *k)
{
    struct gw_h1_response *r = &k->response;
    while (k->call && !k->call->is_canceled) {
        struct h1_call *c = k->call;
        if (c->is_paused && !gw_h1_response_is_complete(r)) {
            if (k->rpos < k->rlen)
                conn_read_stop(k);
            return;
        }
        size_t used = 0;
        enum gw_h1_response_event ev =
            gw_h1_response_parse(r, k->rbuf + k->rpos, k->rlen - k->rpos, &used);
        k->rpos += used;
        switch (ev) {
        case GW_H1_RESPONSE_MORE:
            /* The parser's limits keep a full buffer from waiting for more. */
            assert(k->rpos > 0 || k->rlen < sizeof k->rbuf);
            return;
        case GW_H1_RESPONSE_HEAD:
            c->cb.on_head(c->arg, r->status, r->names, r->values, r->header_count);
            break;
        case GW_H1_RESPONSE_BODY:
            c->cb.on_body(c->arg, r->body, r->body_len);
            break;
        case GW_H1_RESPONSE_DONE:
            conn_complete(k);
            return;
        case GW_H1_RESPONSE_ERROR:
            conn_fail(k, GW_UPSTREAM_EFAILED, r->error);
            return;
        }
    }
}

/* ---- the loop's pending work ---- */

static void call_cancel_now(struct h1_call *c)
{
    if (c->conn)
        conn_detach(c->conn, false);
    snprintf(c->message, sizeof c->message, "upstream %s: call canceled", c->url_quote);
    call_finish(c, GW_UPSTREAM_ECANCELED, c->message);
}

static void pending_run(struct gw_h1 *h)
{
    struct h1_call *c;
    while ((c = h->pending_head) != NULL) {
        pending_remove(h, c);
        if (c->is_canceled) {
            call_cancel_now(c);
        } else if (c->error != 0) {
            int error = c->error;
            c->error = 0;
            if (c->conn)
                conn_detach(c->conn, false);
            call_finish(c, error, c->message);
        } else if (c->is_resume_due) {
            c->is_resume_due = false;
            struct h1_conn *k = c->conn;
            if (k == NULL || c->is_paused)
                continue;
            conn_parse(k);
            if (k->call == c && !c->is_paused && !c->is_canceled)
                conn_read_start(k);
        }
    }
}

static void on_check(uv_check_t *check)
{
    pending_run(check->data);
}

static void on_idle(uv_idle_t *idle)
{
    (void)idle; /* only keeps the loop from blocking while work is pending */
}

/* ---- the request ---- */

static bool header_is_ours(const char *line)
{
    static const char *const names[] = {"content-length:", "transfer-encoding:", "connection:",
                                        "host:"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* "Name:" with nothing after it asks for the header not to be sent (as
 * with libcurl). */
static bool header_is_empty(const char *line)
{
    const char *v = strchr(line, ':') + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0';
}

static int request_build(struct h1_call *c, const struct gw_upstream_request *req,
                         const char *path)
{
    const char *method = req->method ? req->method : "POST";
    bool has_body = strcmp(method, "GET") != 0 || req->body_len > 0;
    size_t path_len = path ? strcspn(path, "#") : 0;
    size_t cap = strlen(method) + path_len + 64 + strlen(c->o->authority) + req->body_len;
    for (size_t i = 0; i < req->header_count; i++)
        cap += strlen(req->header_lines[i]) + 2;
    char *b = malloc(cap);
    if (b == NULL)
        return -1;
    size_t n = 0;
#define PUT(s, len)                                                                                \
    do {                                                                                           \
        memcpy(b + n, (s), (len));                                                                 \
        n += (len);                                                                                \
    } while (0)
    PUT(method, strlen(method));
    PUT(" ", 1);
    if (path_len == 0 || path[0] == '?')
        PUT("/", 1);
    PUT(path, path_len);
    PUT(" HTTP/1.1\r\nHost: ", 17);
    PUT(c->o->authority, strlen(c->o->authority));
    PUT("\r\n", 2);
    for (size_t i = 0; i < req->header_count; i++) {
        const char *line = req->header_lines[i];
        if (header_is_ours(line) || header_is_empty(line))
            continue;
        PUT(line, strlen(line));
        PUT("\r\n", 2);
    }
    if (has_body)
        n += (size_t)snprintf(b + n, cap - n, "Content-Length: %zu\r\n", req->body_len);
    PUT("\r\n", 2);
    if (req->body_len)
        PUT(req->body, req->body_len);
#undef PUT
    assert(n <= cap);
    c->req = b;
    c->req_len = n;
    c->is_head_request = strcmp(method, "HEAD") == 0;
    return 0;
}

/* ---- public ---- */

int gw_h1_init(struct gw_h1 **out, uv_loop_t *loop)
{
    *out = NULL;
    struct gw_h1 *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return GW_UPSTREAM_EFAILED;
    h->loop = loop;
    uv_check_init(loop, &h->check);
    h->check.data = h;
    uv_idle_init(loop, &h->idle);
    h->idle.data = h;
    h->handles_open = 2;
    *out = h;
    return 0;
}

void gw_h1_close(struct gw_h1 *h)
{
    assert(!h->is_closing);
    h->is_closing = true; /* calls started from on_done are refused */
    while (h->calls != NULL)
        call_cancel_now(h->calls);
    while (h->pool_count > 0) {
        struct h1_call *c = h->pool[--h->pool_count];
        uv_close((uv_handle_t *)&c->timer, on_call_timer_closed);
    }
    for (struct h1_origin *o = h->origins, *next; o; o = next) {
        next = o->next;
        while (o->idle)
            conn_close(o->idle);
        free(o);
    }
    h->origins = NULL;
    uv_check_stop(&h->check);
    uv_idle_stop(&h->idle);
    uv_close((uv_handle_t *)&h->check, on_handle_closed);
    uv_close((uv_handle_t *)&h->idle, on_handle_closed);
}

static struct h1_call *call_take(struct gw_h1 *h)
{
    struct h1_call *c;
    if (h->pool_count > 0) {
        c = h->pool[--h->pool_count];
        /* The timer stays initialized (and linked in the loop at this
         * address): keep its bytes, clear the rest. */
        uv_timer_t timer = c->timer;
        memset(c, 0, sizeof(*c));
        c->timer = timer;
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    uv_timer_init(h->loop, &c->timer);
    h->handles_open++;
    return c;
}

int gw_h1_call_start(struct gw_h1 *h, const struct gw_upstream_request *req,
                     const struct gw_upstream_callbacks *cb, void *arg,
                     struct gw_upstream_call **call)
{
    *call = NULL;
    if (h->is_closing)
        return GW_UPSTREAM_ECANCELED;
    char host[H1_HOST_MAX + 1], authority[H1_HOST_MAX + 9];
    uint16_t port = 0;
    const char *path = NULL;
    if (!url_split(req->url, host, authority, &port, &path))
        return GW_UPSTREAM_EINVAL;
    struct h1_origin *o = origin_get(h, host, authority, port);
    if (o == NULL)
        return GW_UPSTREAM_EFAILED;
    struct h1_call *c = call_take(h);
    if (c == NULL)
        return GW_UPSTREAM_EFAILED;
    c->base.backend = GW_UPSTREAM_BACKEND_H1;
    c->h = h;
    c->o = o;
    c->cb = *cb;
    c->arg = arg;
    c->timer.data = c;
    c->start_ms = uv_now(h->loop);
    c->connect_timeout_ms = req->connect_timeout_ms;
    c->total_timeout_ms = req->total_timeout_ms;
    gw_upstream_url_quote(c->url_quote, req->url);
    if (request_build(c, req, path) != 0) {
        call_recycle(h, c);
        return GW_UPSTREAM_EFAILED;
    }
    c->next = h->calls;
    if (h->calls)
        h->calls->prev = c;
    h->calls = c;
    h->in_start++;
    call_dispatch(c);
    h->in_start--;
    *call = &c->base;
    return 0;
}

static struct h1_call *call_of(struct gw_upstream_call *base)
{
    assert(base->backend == GW_UPSTREAM_BACKEND_H1);
    return (struct h1_call *)base;
}

void gw_h1_call_pause(struct gw_upstream_call *base)
{
    struct h1_call *c = call_of(base);
    if (c->is_finished || c->is_canceled)
        return;
    c->is_paused = true;
}

void gw_h1_call_resume(struct gw_upstream_call *base)
{
    struct h1_call *c = call_of(base);
    if (c->is_finished || c->is_canceled || !c->is_paused)
        return;
    c->is_paused = false;
    c->is_resume_due = true;
    pending_add(c->h, c);
}

void gw_h1_call_cancel(struct gw_upstream_call *base)
{
    struct h1_call *c = call_of(base);
    if (c->is_finished || c->is_canceled)
        return;
    c->is_canceled = true;
    pending_add(c->h, c);
}
