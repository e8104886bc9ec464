/*
 * upstream_curl.c — provider calls over libcurl's multi interface on the
 * gateway's libuv loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll_t per socket, its context kept with curl_multi_assign; for a
 * connection socket, which we open and close for curl, the uv_poll lives as
 * long as the connection, across the calls that reuse it) and when to
 * wake it (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we hand readiness back
 * with curl_multi_socket_action and collect finished transfers with
 * curl_multi_info_read.  The multi handle keeps the connection cache, so
 * HTTP/1.1 connections to a provider are reused across calls.
 *
 * libcurl forbids adding or removing easy handles from inside its callbacks,
 * and the header promises that on_done never runs inside
 * gw_curl_call_start or gw_curl_call_cancel.  So start, cancel and
 * resume only set flags and queue the call on the `pending` list, which the
 * loop serves (add the handle, remove it and report ECANCELED, unpause)
 * from a uv_check handle — right after the I/O callbacks of the same loop
 * turn, so the calls started in one turn leave together at its end — and
 * from a uv_idle handle, which keeps the loop from blocking while the list
 * is not empty (a call queued from the check itself waits one turn).  Both
 * are active only while the list is not empty.  Handles just added are
 * driven at once (curl_multi_socket_action with CURL_SOCKET_TIMEOUT, what
 * curl's 0 ms timer would do a loop turn later): under load every loop turn
 * deferred is a turn's worth of other calls' work added to this one's
 * latency.  A call canceled while curl is delivering to it makes its
 * callback return an error, so curl stops at once and nothing more is
 * delivered.
 *
 * Pausing is a flag: the next write callback answers CURL_WRITEFUNC_PAUSE,
 * curl keeps that chunk and stops reading the socket until the idle handle
 * calls curl_easy_pause(CURLPAUSE_CONT), which redelivers it.
 *
 * Memory: one malloc per call (plus curl's), a header buffer that lives
 * from the first response header to on_head, one malloc per socket.  Easy
 * handles are kept for reuse (curl_easy_reset) up to
 * GW_UPSTREAM_EASY_POOL_MAX: a fresh one costs several allocations; header
 * buffers too (a 16 KiB malloc per call also made glibc consolidate its
 * fast bins every time).
 */
#include "gateway/upstream_impl.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

/* Concurrent connections to one provider host; more calls wait in curl. */
#define GW_UPSTREAM_HOST_CONNECTIONS_MAX 256L
/* Idle connections kept for reuse across all hosts. */
#define GW_UPSTREAM_CACHED_CONNECTIONS_MAX 256L
/* Idle easy handles and response header buffers kept for the next calls. */
#define GW_UPSTREAM_EASY_POOL_MAX 64
#define GW_UPSTREAM_HEAD_POOL_MAX 16

struct upstream_sock {
    uv_poll_t poll;
    struct gw_curl *u;
    curl_socket_t fd;
    int events;     /* UV_READABLE | UV_WRITABLE being watched; 0: stopped */
    bool is_conn;   /* a connection socket we opened for curl: lives until curl closes it */
    bool is_curl;   /* curl asked to watch it (between its first event and CURL_POLL_REMOVE) */
    struct upstream_sock *prev, *next; /* u->socks */
};

struct gw_curl {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    uv_check_t check; /* runs the pending list at the end of a loop turn */
    uv_idle_t idle;   /* ... and keeps the loop from blocking meanwhile */
    CURL *easy_pool[GW_UPSTREAM_EASY_POOL_MAX];
    size_t easy_pool_count;
    char *head_pool[GW_UPSTREAM_HEAD_POOL_MAX]; /* GW_UPSTREAM_RESPONSE_HEADER_BYTES_MAX each */
    size_t head_pool_count;
    struct gw_curl_call *calls; /* every call not yet finished */
    struct gw_curl_call *pending_head, *pending_tail;
    size_t pending_count;
    struct upstream_sock *socks;
    struct upstream_sock **conn_by_fd; /* is_conn sockets by descriptor */
    size_t conn_by_fd_cap;
    int curl_depth;    /* > 0 while inside libcurl (its callbacks may run) */
    int handles_open;  /* uv handles not yet closed: u is freed at 0 */
    bool is_closing;
};

struct gw_curl_call {
    struct gw_upstream_call base; /* first: the handle the caller holds */
    struct gw_curl *u;
    CURL *easy;
    struct curl_slist *header_list;
    struct gw_upstream_callbacks cb;
    void *arg;
    struct gw_curl_call *prev, *next;                 /* u->calls */
    struct gw_curl_call *pending_prev, *pending_next; /* u->pending */
    bool is_pending;
    bool is_added;      /* in the multi handle */
    bool is_canceled;
    bool is_finished;   /* on_done is running: the call is about to be freed */
    bool is_paused;     /* the caller asked */
    bool is_curl_paused; /* the write callback answered CURL_WRITEFUNC_PAUSE */
    bool is_head_done;
    int status;
    /* Response headers, collected until the blank line. */
    char *head_buf;
    size_t head_used;
    size_t header_count;
    const char *names[GW_UPSTREAM_RESPONSE_HEADERS_MAX];
    const char *values[GW_UPSTREAM_RESPONSE_HEADERS_MAX];
    char url_quote[GW_UPSTREAM_URL_QUOTE_MAX + 1];
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- global init ---- */

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists ---- */

static void pending_remove(struct gw_curl *u, struct gw_curl_call *c)
{
    if (!c->is_pending)
        return;
    if (c->pending_prev)
        c->pending_prev->pending_next = c->pending_next;
    else
        u->pending_head = c->pending_next;
    if (c->pending_next)
        c->pending_next->pending_prev = c->pending_prev;
    else
        u->pending_tail = c->pending_prev;
    c->pending_prev = c->pending_next = NULL;
    c->is_pending = false;
    u->pending_count--;
}

static void on_idle(uv_idle_t *idle);
static void on_check(uv_check_t *check);

static void pending_add(struct gw_curl *u, struct gw_curl_call *c)
{
    if (c->is_pending)
        return;
    c->pending_prev = u->pending_tail;
    c->pending_next = NULL;
    if (u->pending_tail)
        u->pending_tail->pending_next = c;
    else
        u->pending_head = c;
    u->pending_tail = c;
    c->is_pending = true;
    u->pending_count++;
    uv_check_start(&u->check, on_check);
    uv_idle_start(&u->idle, on_idle);
}

static void calls_remove(struct gw_curl *u, struct gw_curl_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        u->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* ---- pooled header buffers ---- */

static char *head_buf_take(struct gw_curl *u)
{
    if (u->head_pool_count > 0)
        return u->head_pool[--u->head_pool_count];
    return malloc(GW_UPSTREAM_RESPONSE_HEADER_BYTES_MAX);
}

static void head_buf_give(struct gw_curl *u, char *buf)
{
    if (buf != NULL && !u->is_closing && u->head_pool_count < GW_UPSTREAM_HEAD_POOL_MAX)
        u->head_pool[u->head_pool_count++] = buf;
    else
        free(buf);
}

/* ---- handles ---- */

static void upstream_maybe_free(struct gw_curl *u)
{
    if (u->is_closing && u->handles_open == 0) {
        free(u->conn_by_fd);
        free(u);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gw_curl *u = h->data;
    u->handles_open--;
    upstream_maybe_free(u);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct upstream_sock *sk = h->data;
    struct gw_curl *u = sk->u;
    free(sk);
    u->handles_open--;
    upstream_maybe_free(u);
}

static void sock_close(struct gw_curl *u, struct upstream_sock *sk)
{
    if (sk->is_conn && (size_t)sk->fd < u->conn_by_fd_cap && u->conn_by_fd[sk->fd] == sk)
        u->conn_by_fd[sk->fd] = NULL;
    if (sk->prev)
        sk->prev->next = sk->next;
    else
        u->socks = sk->next;
    if (sk->next)
        sk->next->prev = sk->prev;
    uv_poll_stop(&sk->poll);
    uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

/* ---- finishing a call ---- */

static void call_free(struct gw_curl_call *c)
{
    struct gw_curl *u = c->u;
    if (c->easy && !u->is_closing && u->easy_pool_count < GW_UPSTREAM_EASY_POOL_MAX) {
        curl_easy_reset(c->easy);
        u->easy_pool[u->easy_pool_count++] = c->easy;
    } else if (c->easy) {
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->header_list);
    head_buf_give(u, c->head_buf);
    free(c);
}

/* Takes the call out of curl and the lists, reports, frees.  Never called
 * while inside libcurl. */
static void call_finish(struct gw_curl_call *c, int error, const char *message)
{
    struct gw_curl *u = c->u;
    assert(u->curl_depth == 0);
    assert(!c->is_finished);

    pending_remove(u, c);
    calls_remove(u, c);
    if (c->is_added) {
        curl_multi_remove_handle(u->multi, c->easy);
        c->is_added = false;
    }
    c->is_finished = true;
    c->cb.on_done(c->arg, error, message);
    call_free(c);
}

static void call_cancel_finish(struct gw_curl_call *c)
{
    char message[GW_UPSTREAM_MESSAGE_MAX];
    snprintf(message, sizeof(message), "upstream %s: call canceled", c->url_quote);
    call_finish(c, GW_UPSTREAM_ECANCELED, message);
}

static int error_from_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return GW_UPSTREAM_ETIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return GW_UPSTREAM_ECONNECT;
    default:
        return GW_UPSTREAM_EFAILED;
    }
}

static void call_complete(struct gw_curl_call *c, CURLcode rc)
{
    char message[GW_UPSTREAM_MESSAGE_MAX];

    if (rc == CURLE_OK && c->is_head_done) {
        call_finish(c, 0, "");
        return;
    }
    if (rc == CURLE_OK) {
        snprintf(message, sizeof(message), "upstream %s: no response head", c->url_quote);
        call_finish(c, GW_UPSTREAM_EFAILED, message);
        return;
    }
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    snprintf(message, sizeof(message), "upstream %s: %s", c->url_quote, detail);
    call_finish(c, error_from_curl(rc), message);
}

/* Reports every transfer curl has finished. */
static void upstream_check_done(struct gw_curl *u)
{
    CURLMsg *msg;
    int left;

    while (!u->is_closing && (msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct gw_curl_call *c = (struct gw_curl_call *)(void *)priv;
        assert(c != NULL && c->is_added);
        if (c->is_canceled)
            continue; /* the pending list reports it */
        call_complete(c, rc);
    }
}

/* ---- driving curl from the loop ---- */

static void upstream_socket_action(struct gw_curl *u, curl_socket_t fd, int flags)
{
    int running = 0;
    u->curl_depth++;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    u->curl_depth--;
    upstream_check_done(u);
}

/* Watch `events` (0: stop).  libuv's uv_poll_start and uv_poll_stop each
 * cost epoll_ctl calls, so nothing is done when the set is unchanged. */
static void sock_watch(struct upstream_sock *sk, int events);

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct upstream_sock *sk = poll->data;
    int flags = 0;

    if (!sk->is_curl) {
        /* An idle connection spoke or closed: curl sees that when it next
         * picks the connection; until then stop watching it. */
        sock_watch(sk, 0);
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR (say, a reset) as an error status.  Let curl
         * do the I/O and meet the real error: a reused connection that was
         * reset before any response byte is then retried on a fresh one,
         * where CURL_CSELECT_ERR would fail the call. */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    upstream_socket_action(sk->u, sk->fd, flags);
}

static void sock_watch(struct upstream_sock *sk, int events)
{
    if (events == sk->events)
        return;
    sk->events = events;
    if (events == 0)
        uv_poll_stop(&sk->poll);
    else
        uv_poll_start(&sk->poll, events, on_poll);
}

static void on_timer(uv_timer_t *timer)
{
    upstream_socket_action(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

static struct upstream_sock *sock_new(struct gw_curl *u, curl_socket_t fd)
{
    struct upstream_sock *sk = calloc(1, sizeof(*sk));
    if (sk == NULL)
        return NULL;
    if (uv_poll_init_socket(u->loop, &sk->poll, fd) != 0) {
        free(sk);
        return NULL;
    }
    sk->poll.data = sk;
    sk->u = u;
    sk->fd = fd;
    sk->next = u->socks;
    if (u->socks)
        u->socks->prev = sk;
    u->socks = sk;
    u->handles_open++;
    return sk;
}

static struct upstream_sock *conn_find(struct gw_curl *u, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < u->conn_by_fd_cap ? u->conn_by_fd[fd] : NULL;
}

/* Connection sockets are opened here so that their uv_poll lives as long as
 * the connection: curl says CURL_POLL_REMOVE whenever a connection goes
 * back to its cache and wants it again for the next call on it; keeping the
 * handle (and its epoll registration) saves several epoll_ctl calls and a
 * handle per call.  curl closes them through on_curl_close_socket. */
static curl_socket_t on_curl_open_socket(void *userp, curlsocktype purpose,
                                         struct curl_sockaddr *addr)
{
    struct gw_curl *u = userp;
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
    if (fd < 0 || purpose != CURLSOCKTYPE_IPCXN)
        return fd;
    if ((size_t)fd >= u->conn_by_fd_cap) {
        size_t cap = (size_t)fd * 2 + 16;
        struct upstream_sock **by_fd = realloc(u->conn_by_fd, cap * sizeof(*by_fd));
        if (by_fd == NULL)
            return fd; /* watched per call like any other socket */
        memset(by_fd + u->conn_by_fd_cap, 0, (cap - u->conn_by_fd_cap) * sizeof(*by_fd));
        u->conn_by_fd = by_fd;
        u->conn_by_fd_cap = cap;
    }
    struct upstream_sock *sk = sock_new(u, fd);
    if (sk != NULL) {
        sk->is_conn = true;
        u->conn_by_fd[fd] = sk;
    }
    return fd;
}

static int on_curl_close_socket(void *userp, curl_socket_t fd)
{
    struct gw_curl *u = userp;
    struct upstream_sock *sk = conn_find(u, fd);
    if (sk != NULL)
        sock_close(u, sk); /* before the descriptor goes: libuv's rule */
    return close(fd);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct gw_curl *u = userp;
    struct upstream_sock *sk = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (sk == NULL)
            return 0;
        sk->is_curl = false;
        if (!sk->is_conn)
            sock_close(u, sk);
        /* A cached connection stays watched as it was: a call that reuses
         * it usually wants the same events, so nothing changes then. */
        return 0;
    }
    if (sk == NULL) {
        sk = conn_find(u, fd);
        if (sk == NULL)
            sk = sock_new(u, fd);
        if (sk == NULL)
            return -1;
        curl_multi_assign(u->multi, fd, sk);
    }
    sk->is_curl = true;
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    sock_watch(sk, events);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct gw_curl *u = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* Does the curl work that start, cancel and resume queued.  Only the calls
 * queued before this round are served, so a callback that keeps queueing
 * cannot hold the loop. */
static void pending_run(struct gw_curl *u)
{
    size_t round = u->pending_count;
    bool is_added = false;

    while (round-- > 0 && u->pending_head != NULL && !u->is_closing) {
        struct gw_curl_call *c = u->pending_head;
        pending_remove(u, c);
        if (c->is_canceled) {
            call_cancel_finish(c);
        } else if (!c->is_added) {
            CURLMcode mrc = curl_multi_add_handle(u->multi, c->easy);
            if (mrc != CURLM_OK) {
                char message[GW_UPSTREAM_MESSAGE_MAX];
                snprintf(message, sizeof(message), "upstream %s: %s", c->url_quote,
                         curl_multi_strerror(mrc));
                call_finish(c, GW_UPSTREAM_EFAILED, message);
            } else {
                c->is_added = true;
                is_added = true;
            }
        } else if (c->is_curl_paused && !c->is_paused) {
            /* Redelivers the kept chunk from here; may pause again. */
            c->is_curl_paused = false;
            u->curl_depth++;
            curl_easy_pause(c->easy, CURLPAUSE_CONT);
            u->curl_depth--;
        }
    }
    if (u->is_closing)
        return;
    if (u->pending_head == NULL) {
        uv_check_stop(&u->check);
        uv_idle_stop(&u->idle);
    }
    if (is_added)
        upstream_socket_action(u, CURL_SOCKET_TIMEOUT, 0); /* checks done calls too */
    else
        upstream_check_done(u);
}

static void on_check(uv_check_t *check)
{
    pending_run(check->data);
}

static void on_idle(uv_idle_t *idle)
{
    pending_run(idle->data);
}

/* ---- curl's callbacks for one call ---- */

static void head_reset(struct gw_curl_call *c)
{
    c->head_used = 0;
    c->header_count = 0;
}

/* Keeps "name: value" (lower-cased name, trimmed value) if it fits. */
static void head_add(struct gw_curl_call *c, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
        return; /* not a header, or an obsolete folded continuation */
    if (c->header_count == GW_UPSTREAM_RESPONSE_HEADERS_MAX)
        return;
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    const char *end = line + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t value_len = (size_t)(end - value);
    if (name_len + value_len + 2 > GW_UPSTREAM_RESPONSE_HEADER_BYTES_MAX - c->head_used)
        return;
    if (c->head_buf == NULL) {
        c->head_buf = head_buf_take(c->u);
        if (c->head_buf == NULL)
            return;
    }
    char *name = c->head_buf + c->head_used;
    for (size_t i = 0; i < name_len; i++) {
        char ch = line[i];
        name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    name[name_len] = '\0';
    char *val = name + name_len + 1;
    memcpy(val, value, value_len);
    val[value_len] = '\0';
    c->head_used += name_len + value_len + 2;
    c->names[c->header_count] = name;
    c->values[c->header_count] = val;
    c->header_count++;
}

static void head_deliver(struct gw_curl_call *c)
{
    c->is_head_done = true;
    c->cb.on_head(c->arg, c->status, c->names, c->values, c->header_count);
    head_buf_give(c->u, c->head_buf);
    c->head_buf = NULL;
    head_reset(c);
}

static size_t on_curl_header(char *data, size_t size, size_t nitems, void *userp)
{
    struct gw_curl_call *c = userp;
    size_t len = size * nitems;
    size_t line_len = len;

    if (c->is_canceled)
        return 0; /* any other count than len makes curl stop */
    if (c->is_head_done)
        return len; /* trailers */
    while (line_len > 0 && (data[line_len - 1] == '\n' || data[line_len - 1] == '\r'))
        line_len--;

    if (line_len == 0) {
        if (c->status >= 100 && c->status < 200) { /* interim: the real head follows */
            c->status = 0;
            head_reset(c);
            return len;
        }
        head_deliver(c);
        return c->is_canceled ? 0 : len;
    }
    if (line_len > 5 && memcmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', line_len);
        int status = 0;
        for (const char *d = sp ? sp + 1 : data + line_len;
             d < data + line_len && *d >= '0' && *d <= '9' && status < 1000; d++)
            status = status * 10 + (*d - '0');
        c->status = status;
        head_reset(c);
        return len;
    }
    head_add(c, data, line_len);
    return len;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct gw_curl_call *c = userp;
    size_t len = size * nmemb;

    if (c->is_canceled)
        return len == 0 ? 1 : 0;
    if (!c->is_head_done) {
        head_deliver(c);
        if (c->is_canceled)
            return len == 0 ? 1 : 0;
    }
    if (c->is_paused) {
        c->is_curl_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    c->cb.on_body(c->arg, data, len);
    if (c->is_canceled)
        return len == 0 ? 1 : 0;
    return len;
}

/* ---- starting a call ---- */

static bool headers_have(const struct gw_upstream_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->header_count; i++)
        if (strncasecmp(req->header_lines[i], name, n) == 0 && req->header_lines[i][n] == ':')
            return true;
    return false;
}

static CURLcode call_configure(struct gw_curl_call *c, const struct gw_upstream_request *req)
{
    CURL *e = c->easy;
    CURLcode rc = CURLE_OK;

    for (size_t i = 0; i < req->header_count; i++) {
        struct curl_slist *next = curl_slist_append(c->header_list, req->header_lines[i]);
        if (next == NULL)
            return CURLE_OUT_OF_MEMORY;
        c->header_list = next;
    }
    /* No "Expect: 100-continue" round trip on large prompts. */
    if (!headers_have(req, "Expect")) {
        struct curl_slist *next = curl_slist_append(c->header_list, "Expect:");
        if (next == NULL)
            return CURLE_OUT_OF_MEMORY;
        c->header_list = next;
    }

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_PRIVATE, (void *)c);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_HTTPHEADER, c->header_list);
    SET(CURLOPT_HEADERFUNCTION, on_curl_header);
    SET(CURLOPT_HEADERDATA, (void *)c);
    SET(CURLOPT_WRITEFUNCTION, on_curl_write);
    SET(CURLOPT_WRITEDATA, (void *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_curl_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)c->u);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_curl_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)c->u);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_HTTP_CONTENT_DECODING, 0L); /* bytes pass through as sent */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (req->connect_timeout_ms > 0)
        SET(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    if (req->total_timeout_ms > 0)
        SET(CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);

    const char *method = req->method ? req->method : "POST";
    if (strcmp(method, "GET") == 0 && req->body_len == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body_len ? req->body : "");
    }
#undef SET
    return rc;
}

/* ---- public ---- */

int gw_curl_init(struct gw_curl **out, uv_loop_t *loop)
{
    *out = NULL;
    uv_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return GW_UPSTREAM_EFAILED;

    struct gw_curl *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return GW_UPSTREAM_EFAILED;
    u->loop = loop;
    u->multi = curl_multi_init();
    if (u->multi == NULL) {
        free(u);
        return GW_UPSTREAM_EFAILED;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, (void *)u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, (void *)u);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, GW_UPSTREAM_HOST_CONNECTIONS_MAX);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, GW_UPSTREAM_CACHED_CONNECTIONS_MAX);

    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    uv_check_init(loop, &u->check);
    u->check.data = u;
    uv_idle_init(loop, &u->idle);
    u->idle.data = u;
    u->handles_open = 3;
    *out = u;
    return 0;
}

void gw_curl_close(struct gw_curl *u)
{
    assert(u->curl_depth == 0); /* not from inside on_head or on_body */
    assert(!u->is_closing);

    u->is_closing = true; /* calls started from on_done are refused */
    while (u->calls != NULL)
        call_cancel_finish(u->calls);
    uv_check_stop(&u->check);
    uv_idle_stop(&u->idle);
    while (u->easy_pool_count > 0)
        curl_easy_cleanup(u->easy_pool[--u->easy_pool_count]);
    while (u->head_pool_count > 0)
        free(u->head_pool[--u->head_pool_count]);
    curl_multi_cleanup(u->multi); /* closes cached connections: their socks go */
    u->multi = NULL;
    while (u->socks != NULL)
        sock_close(u, u->socks);
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
    uv_close((uv_handle_t *)&u->check, on_handle_closed);
    uv_close((uv_handle_t *)&u->idle, on_handle_closed);
}

int gw_curl_call_start(struct gw_curl *u, const struct gw_upstream_request *req,
                       const struct gw_upstream_callbacks *cb, void *arg,
                       struct gw_upstream_call **call)
{
    *call = NULL;
    if (u->is_closing)
        return GW_UPSTREAM_ECANCELED;

    struct gw_curl_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GW_UPSTREAM_EFAILED;
    c->base.backend = GW_UPSTREAM_BACKEND_CURL;
    c->u = u;
    c->cb = *cb;
    c->arg = arg;
    gw_upstream_url_quote(c->url_quote, req->url);
    c->easy = u->easy_pool_count > 0 ? u->easy_pool[--u->easy_pool_count] : curl_easy_init();
    if (c->easy == NULL || call_configure(c, req) != CURLE_OK) {
        call_free(c);
        return GW_UPSTREAM_EFAILED;
    }

    c->next = u->calls;
    if (u->calls)
        u->calls->prev = c;
    u->calls = c;
    pending_add(u, c); /* added to the multi handle from the loop */
    *call = &c->base;
    return 0;
}

static struct gw_curl_call *call_of(struct gw_upstream_call *base)
{
    assert(base->backend == GW_UPSTREAM_BACKEND_CURL);
    return (struct gw_curl_call *)base;
}

void gw_curl_call_pause(struct gw_upstream_call *base)
{
    struct gw_curl_call *call = call_of(base);
    if (call->is_finished || call->is_canceled)
        return;
    call->is_paused = true;
}

void gw_curl_call_resume(struct gw_upstream_call *base)
{
    struct gw_curl_call *call = call_of(base);
    if (call->is_finished || call->is_canceled)
        return;
    call->is_paused = false;
    if (call->is_curl_paused)
        pending_add(call->u, call);
}

void gw_curl_call_cancel(struct gw_upstream_call *base)
{
    struct gw_curl_call *call = call_of(base);
    if (call->is_finished || call->is_canceled)
        return;
    call->is_canceled = true;
    pending_add(call->u, call);
}
