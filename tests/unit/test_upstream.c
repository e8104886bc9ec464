/*
 * test_upstream.c — upstream calls as a specification, against a tiny
 * HTTP/1.1 server that runs in a thread of this test on 127.0.0.1 (plain
 * blocking sockets, one connection at a time, keep-alive): status, headers
 * and body arrive in order, a chunked stream arrives in several pieces,
 * sequential calls reuse one TCP connection, errors map to their codes,
 * cancel and close report ECANCELED exactly once and never from inside the
 * call that caused them, and a paused call delivers nothing until resumed.
 *
 * The server's behaviour is chosen by the request path (see server_respond).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/upstream.h"

#define SERVER_BUF_MAX (8u << 20)
#define BIG_BODY_BYTES (4u << 20) /* more than a loopback socket takes at once */
#define STREAM_CHUNK_COUNT 5
#define STREAM_CHUNK_GAP_US 30000
#define SLOW_CHUNK_COUNT 20
#define TEST_WAIT_MS 5000

static const char json_body[] = "{\"id\":\"chatcmpl-1\",\"usage\":{\"prompt_tokens\":3}}";
static const char error_body[] = "{\"error\":{\"type\":\"server_error\",\"message\":\"boom\"}}";

/* ---- the server ---- */

struct server {
    int listen_fd;
    int port;
    pthread_t thread;
    atomic_int accept_count;
    atomic_int request_count;
    atomic_bool is_stopping;
    pthread_mutex_t mutex;
    char last_head[8192]; /* the last request's head, under mutex */
};

static bool server_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool server_sendf(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return server_send(fd, buf, (size_t)n);
}

/* Reads more bytes into buf; false on EOF, error or stop. */
static bool server_read_more(struct server *s, int fd, char *buf, size_t *len)
{
    while (!atomic_load(&s->is_stopping)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        if (*len == SERVER_BUF_MAX)
            return false;
        ssize_t r = recv(fd, buf + *len, SERVER_BUF_MAX - *len, 0);
        if (r <= 0)
            return false;
        *len += (size_t)r;
        return true;
    }
    return false;
}

static bool server_stream(int fd, const char *prefix, int count)
{
    if (!server_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"))
        return false;
    for (int i = 0; i < count; i++) {
        char chunk[64];
        int n = snprintf(chunk, sizeof(chunk), "%s %d\n\n", prefix, i);
        if (!server_sendf(fd, "%x\r\n%s\r\n", n, chunk))
            return false;
        usleep(STREAM_CHUNK_GAP_US);
    }
    return server_sendf(fd, "0\r\n\r\n");
}

/* Answers one request; false when the connection is to be closed. */
static bool server_respond(struct server *s, int fd, const char *path, const char *body,
                           size_t body_len, char *buf, size_t *len)
{
    if (strcmp(path, "/json") == 0)
        return server_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "X-Request-Id:   req-1  \r\nContent-Length: %zu\r\n\r\n%s",
                            strlen(json_body), json_body);
    if (strcmp(path, "/echo") == 0) {
        return server_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_len) &&
               server_send(fd, body, body_len);
    }
    if (strcmp(path, "/error") == 0)
        return server_sendf(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: "
                                "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                            strlen(error_body), error_body);
    if (strcmp(path, "/continue") == 0)
        return server_sendf(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                                "Content-Length: 2\r\n\r\nok");
    if (strcmp(path, "/stream") == 0)
        return server_stream(fd, "data: chunk", STREAM_CHUNK_COUNT);
    if (strcmp(path, "/close") == 0) /* says so, then closes */
        return !server_sendf(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n"
                                 "\r\nok") && false;
    if (strcmp(path, "/drop") == 0) /* keep-alive by the headers, then closes anyway */
        return !server_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") && false;
    if (strcmp(path, "/eof") == 0) /* no length: the body ends with the connection */
        return !server_sendf(fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                                 "until the end") && false;
    if (strcmp(path, "/trailers") == 0)
        return server_sendf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "5;note=\"x\"\r\nhello\r\n6\r\n world\r\n0\r\n"
                                "X-Checksum: abc\r\n\r\n");
    if (strcmp(path, "/truncated") == 0)
        return !server_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort") && false;
    if (strcmp(path, "/malformed") == 0)
        return !server_sendf(fd, "HTTZ/9 abc\r\nfoo\r\n\r\n") && false;
    if (strcmp(path, "/big-head") == 0) {
        if (!server_sendf(fd, "HTTP/1.1 200 OK\r\n"))
            return false;
        char line[1024];
        memset(line, 'a', sizeof line);
        memcpy(line, "X-Pad: ", 7);
        memcpy(line + sizeof line - 2, "\r\n", 2);
        for (int i = 0; i < 64; i++)
            if (!server_send(fd, line, sizeof line))
                return false;
        return server_sendf(fd, "Content-Length: 2\r\n\r\nok");
    }
    if (strcmp(path, "/slow") == 0)
        return server_stream(fd, "data: slow", SLOW_CHUNK_COUNT);
    /* "/hang": never answer; hold the connection until the client goes. */
    *len = 0;
    while (server_read_more(s, fd, buf, len))
        *len = 0;
    return false;
}

/* Serves requests on one connection until it closes. */
static void server_connection(struct server *s, int fd)
{
    char *buf = malloc(SERVER_BUF_MAX);
    assert_non_null(buf);
    size_t len = 0;

    for (;;) {
        char *end;
        while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL)
            if (!server_read_more(s, fd, buf, &len))
                goto out;
        size_t head_len = (size_t)(end - buf) + 4;
        size_t body_len = 0;
        const char *cl = memmem(buf, head_len, "Content-Length:", 15);
        if (cl)
            body_len = strtoul(cl + 15, NULL, 10);
        while (len < head_len + body_len)
            if (!server_read_more(s, fd, buf, &len))
                goto out;

        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        pthread_mutex_lock(&s->mutex);
        size_t keep = head_len < sizeof(s->last_head) ? head_len : sizeof(s->last_head) - 1;
        memcpy(s->last_head, buf, keep);
        s->last_head[keep] = '\0';
        pthread_mutex_unlock(&s->mutex);
        atomic_fetch_add(&s->request_count, 1);

        char *body = malloc(body_len + 1);
        assert_non_null(body);
        memcpy(body, buf + head_len, body_len);
        len -= head_len + body_len;
        memmove(buf, buf + head_len + body_len, len);
        bool is_open = server_respond(s, fd, path, body, body_len, buf, &len);
        free(body);
        if (!is_open)
            break;
    }
out:
    free(buf);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&s->is_stopping)) {
        struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s->accept_count, 1);
        server_connection(s, fd);
        close(fd);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1 with an ephemeral port. */
static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = listen_any(&s->port);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    pthread_mutex_init(&s->mutex, NULL);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->is_stopping, true);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    pthread_mutex_destroy(&s->mutex);
}

/* ---- the client side ---- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard; /* bounds every wait */
    struct gw_upstream *upstream;
    struct server server;
};

/* What one call saw. */
struct result {
    struct fixture *f;
    struct gw_upstream_call *call;
    int head_count;
    int status;
    char content_type[128];
    char request_id[128];
    bool has_uppercase_name;
    int body_calls;
    char body[8192];
    size_t body_len;
    bool is_big;          /* count and checksum the body instead of keeping it */
    size_t big_len;
    uint64_t big_sum;
    const char *then_path; /* on_done starts this call (into `then`) */
    struct result *then;
    int done_count;
    int error;
    char message[512];
    bool is_inside_api; /* set around start and cancel: on_done must not run then */
    bool cancels_in_head;
    bool cancels_in_body;
    bool pauses_in_body;
    bool is_paused;
    int body_calls_while_paused;
    uint64_t first_body_ms;
    uint64_t second_body_ms;
    uv_timer_t resume_timer;
};

static void on_head(void *arg, int status, const char *const *names, const char *const *values,
                    size_t count)
{
    struct result *r = arg;
    r->head_count++;
    r->status = status;
    for (size_t i = 0; i < count; i++) {
        for (const char *c = names[i]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                r->has_uppercase_name = true;
        if (strcmp(names[i], "content-type") == 0)
            snprintf(r->content_type, sizeof(r->content_type), "%s", values[i]);
        if (strcmp(names[i], "x-request-id") == 0)
            snprintf(r->request_id, sizeof(r->request_id), "%s", values[i]);
    }
    if (r->cancels_in_head) {
        r->is_inside_api = true;
        gw_upstream_call_cancel(r->call);
        gw_upstream_call_cancel(r->call); /* twice is once */
        r->is_inside_api = false;
    }
}

static void on_resume_timer(uv_timer_t *t)
{
    struct result *r = t->data;
    r->is_paused = false;
    gw_upstream_call_resume(r->call);
}

static void on_body(void *arg, const char *data, size_t len)
{
    struct result *r = arg;
    assert_int_equal(r->head_count, 1);
    if (r->is_paused)
        r->body_calls_while_paused++;
    r->body_calls++;
    if (r->body_calls == 1)
        r->first_body_ms = uv_now(&r->f->loop);
    if (r->body_calls == 2)
        r->second_body_ms = uv_now(&r->f->loop);
    if (r->is_big) {
        for (size_t i = 0; i < len; i++)
            r->big_sum = r->big_sum * 31 + (unsigned char)data[i];
        r->big_len += len;
        return;
    }
    assert_true(r->body_len + len <= sizeof(r->body));
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    if (r->cancels_in_body && r->body_calls == 1) {
        r->is_inside_api = true;
        gw_upstream_call_cancel(r->call);
        r->is_inside_api = false;
    }
    if (r->pauses_in_body && r->body_calls == 1) {
        gw_upstream_call_pause(r->call);
        r->is_paused = true;
        uv_timer_init(&r->f->loop, &r->resume_timer);
        r->resume_timer.data = r;
        uv_timer_start(&r->resume_timer, on_resume_timer, 200, 0);
    }
}

static void call_start(struct fixture *f, struct result *r, const char *path,
                       uint32_t total_timeout_ms);

static void on_done(void *arg, int error, const char *message)
{
    struct result *r = arg;
    assert_false(r->is_inside_api);
    r->done_count++;
    r->error = error;
    snprintf(r->message, sizeof(r->message), "%s", message);
    if (r->then_path)
        call_start(r->f, r->then, r->then_path, 5000);
}

static const struct gw_upstream_callbacks callbacks = {on_head, on_body, on_done};

static void url_make(char *out, size_t n, int port, const char *path)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", port, path);
}

static void call_start(struct fixture *f, struct result *r, const char *path,
                       uint32_t total_timeout_ms)
{
    char url[128];
    static const char *const lines[] = {"Content-Type: application/json", "X-Test: yes"};
    const char *body = "{\"model\":\"gpt-4o\"}";
    url_make(url, sizeof(url), f->server.port, path);
    struct gw_upstream_request req = {
        .url = url,
        .method = "POST",
        .header_lines = lines,
        .header_count = 2,
        .body = body,
        .body_len = strlen(body),
        .connect_timeout_ms = 2000,
        .total_timeout_ms = total_timeout_ms,
    };
    r->f = f;
    r->is_inside_api = true;
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, r, &r->call), 0);
    r->is_inside_api = false;
    assert_non_null(r->call);
}

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until *count reaches want, or fails after TEST_WAIT_MS. */
static void run_until(struct fixture *f, const int *count, int want)
{
    bool is_expired = false;
    f->guard.data = &is_expired;
    uv_timer_start(&f->guard, on_guard, TEST_WAIT_MS, 0);
    while (*count < want && !is_expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    assert_int_equal(*count, want);
}

/* Runs the loop for ms milliseconds (to see that nothing more happens). */
static void run_for(struct fixture *f, uint64_t ms)
{
    bool is_expired = false;
    f->guard.data = &is_expired;
    uv_timer_start(&f->guard, on_guard, ms, 0);
    while (!is_expired)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Every test runs twice: on the native HTTP/1.1 client, then on libcurl. */
static enum gw_upstream_client client_under_test;

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    assert_int_equal(gw_upstream_init(&f->upstream, &f->loop, client_under_test), 0);
    server_start(&f->server);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->upstream)
        gw_upstream_close(f->upstream);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle was closed */
    server_stop(&f->server);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_json_response_arrives_with_status_headers_and_body(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/json", 5000);
    assert_int_equal(r.done_count, 0);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.head_count, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.request_id, "req-1"); /* trimmed */
    assert_false(r.has_uppercase_name);
    assert_int_equal(r.body_len, strlen(json_body));
    assert_memory_equal(r.body, json_body, r.body_len);
}

static void test_request_body_and_headers_reach_the_server(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/echo", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "{\"model\":\"gpt-4o\"}");
    pthread_mutex_lock(&f->server.mutex);
    assert_non_null(strstr(f->server.last_head, "POST /echo HTTP/1.1\r\n"));
    assert_non_null(strstr(f->server.last_head, "\r\nX-Test: yes\r\n"));
    assert_non_null(strstr(f->server.last_head, "\r\nContent-Type: application/json\r\n"));
    assert_null(strstr(f->server.last_head, "Expect:"));
    assert_null(strstr(f->server.last_head, "Accept-Encoding"));
    pthread_mutex_unlock(&f->server.mutex);
}

static void test_body_is_copied_by_start(void **state)
{
    struct fixture *f = *state;
    struct result r = {.f = f};
    char url[128];
    url_make(url, sizeof(url), f->server.port, "/echo");
    char *body = strdup("{\"copied\":true}");
    struct gw_upstream_request req = {.url = url, .method = "POST", .body = body,
                                      .body_len = strlen(body)};
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &r.call), 0);
    memset(body, 'z', strlen(body));
    free(body);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "{\"copied\":true}");
}

static void test_chunked_stream_arrives_in_several_pieces(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/stream", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/event-stream");
    assert_true(r.body_calls >= 2);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "data: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\n"
                                "data: chunk 3\n\ndata: chunk 4\n\n");
}

static void test_sequential_calls_reuse_one_connection(void **state)
{
    struct fixture *f = *state;
    struct result first = {0};
    struct result second = {0};
    call_start(f, &first, "/json", 5000);
    run_until(f, &first.done_count, 1);
    call_start(f, &second, "/stream", 5000);
    run_until(f, &second.done_count, 1);
    struct result third = {0};
    call_start(f, &third, "/error", 5000);
    run_until(f, &third.done_count, 1);
    assert_int_equal(first.error, 0);
    assert_int_equal(second.error, 0);
    assert_int_equal(third.error, 0);
    assert_int_equal(atomic_load(&f->server.request_count), 3);
    assert_int_equal(atomic_load(&f->server.accept_count), 1);
}

static void test_error_status_is_passed_through_with_its_body(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/error", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.body_len, strlen(error_body));
    assert_memory_equal(r.body, error_body, r.body_len);
}

static void test_interim_100_response_is_not_the_head(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/continue", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.head_count, 1);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 2);
}

static void test_total_timeout_reports_etimeout(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/hang", 200);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_ETIMEOUT);
    assert_int_equal(r.head_count, 0);
    assert_non_null(strstr(r.message, "/hang"));
}

static void test_refused_connection_reports_econnect(void **state)
{
    struct fixture *f = *state;
    int port;
    int fd = listen_any(&port); /* bound, never listening: connect is refused */
    char url[128];
    url_make(url, sizeof(url), port, "/v1/chat/completions?key=secret");
    struct result r = {.f = f};
    struct gw_upstream_request req = {.url = url, .method = "POST", .body = "{}", .body_len = 2,
                                      .connect_timeout_ms = 2000, .total_timeout_ms = 5000};
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &r.call), 0);
    run_until(f, &r.done_count, 1);
    close(fd);
    assert_int_equal(r.error, GW_UPSTREAM_ECONNECT);
    assert_int_equal(r.head_count, 0);
    assert_non_null(strstr(r.message, "/v1/chat/completions"));
    assert_null(strstr(r.message, "secret")); /* the query is not quoted */
}

static void test_cancel_inside_on_body_reports_canceled_once(void **state)
{
    struct fixture *f = *state;
    struct result r = {.cancels_in_body = true};
    call_start(f, &r, "/slow", 5000);
    run_until(f, &r.done_count, 1);
    run_for(f, 150);
    assert_int_equal(r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_ECANCELED);
    assert_int_equal(r.body_calls, 1);
}

static void test_cancel_inside_on_head_delivers_no_body(void **state)
{
    struct fixture *f = *state;
    struct result r = {.cancels_in_head = true};
    call_start(f, &r, "/slow", 5000);
    run_until(f, &r.done_count, 1);
    run_for(f, 100);
    assert_int_equal(r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_ECANCELED);
    assert_int_equal(r.head_count, 1);
    assert_int_equal(r.body_calls, 0);
}

static void test_cancel_right_after_start_reports_from_the_loop(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/json", 5000);
    r.is_inside_api = true;
    gw_upstream_call_cancel(r.call);
    r.is_inside_api = false;
    assert_int_equal(r.done_count, 0);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_ECANCELED);
    assert_int_equal(r.head_count, 0);
}

static void test_cancel_after_connect_frees_the_call(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/hang", 5000);
    run_for(f, 50);
    assert_int_equal(r.done_count, 0);
    gw_upstream_call_cancel(r.call);
    assert_int_equal(r.done_count, 0);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_ECANCELED);
}

static void test_pause_holds_the_body_until_resume(void **state)
{
    struct fixture *f = *state;
    struct result r = {.pauses_in_body = true};
    call_start(f, &r, "/stream", 5000);
    run_until(f, &r.done_count, 1);
    uv_close((uv_handle_t *)&r.resume_timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the timer lives on this stack frame */
    assert_int_equal(r.error, 0);
    assert_int_equal(r.body_calls_while_paused, 0);
    assert_true(r.body_calls >= 2);
    assert_true(r.second_body_ms - r.first_body_ms >= 190);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "data: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\n"
                                "data: chunk 3\n\ndata: chunk 4\n\n");
}

static void test_close_cancels_calls_in_flight(void **state)
{
    struct fixture *f = *state;
    struct result hanging = {0};
    struct result queued = {0};
    call_start(f, &hanging, "/hang", 5000);
    run_for(f, 50);
    call_start(f, &queued, "/json", 5000);
    gw_upstream_close(f->upstream);
    f->upstream = NULL;
    assert_int_equal(hanging.done_count, 1);
    assert_int_equal(hanging.error, GW_UPSTREAM_ECANCELED);
    assert_int_equal(queued.done_count, 1);
    assert_int_equal(queued.error, GW_UPSTREAM_ECANCELED);
}


static void test_connection_close_is_honoured(void **state)
{
    struct fixture *f = *state;
    struct result first = {0}, second = {0};
    call_start(f, &first, "/close", 5000);
    run_until(f, &first.done_count, 1);
    call_start(f, &second, "/json", 5000);
    run_until(f, &second.done_count, 1);
    assert_int_equal(first.error, 0);
    assert_int_equal(first.body_len, 2);
    assert_int_equal(second.error, 0);
    assert_int_equal(second.status, 200);
    assert_int_equal(atomic_load(&f->server.accept_count), 2);
}

/* The server drops a kept-alive connection just as the next call (started
 * from on_done, before the close can be seen) is written on it: the call
 * still succeeds, on a fresh connection. */
static void test_call_survives_the_server_dropping_an_idle_connection(void **state)
{
    struct fixture *f = *state;
    struct result first = {0}, second = {0};
    first.then_path = "/json";
    first.then = &second;
    call_start(f, &first, "/drop", 5000);
    run_until(f, &second.done_count, 1);
    assert_int_equal(first.error, 0);
    if (second.error != 0)
        fprintf(stderr, "second call: %s\n", second.message);
    assert_int_equal(second.error, 0);
    assert_int_equal(second.status, 200);
    assert_int_equal(second.body_len, strlen(json_body));
    assert_int_equal(atomic_load(&f->server.accept_count), 2);
}

static void test_body_without_length_ends_with_the_connection(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/eof", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "until the end");
}

static void test_chunk_extensions_and_trailers_are_not_body(void **state)
{
    struct fixture *f = *state;
    struct result r = {0}, next = {0};
    call_start(f, &r, "/trailers", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "hello world");
    call_start(f, &next, "/json", 5000); /* the framing ended where it should */
    run_until(f, &next.done_count, 1);
    assert_int_equal(next.error, 0);
    assert_int_equal(atomic_load(&f->server.accept_count), 1);
}

static void test_truncated_body_fails(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/truncated", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_EFAILED);
    assert_non_null(strstr(r.message, "/truncated"));
}

static void test_malformed_response_fails(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/malformed", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_EFAILED);
    assert_int_equal(r.body_len, 0);
}

static void test_large_bodies_pass_both_ways(void **state)
{
    struct fixture *f = *state;
    struct result r = {.f = f, .is_big = true};
    char url[128];
    url_make(url, sizeof(url), f->server.port, "/echo");
    char *body = malloc(BIG_BODY_BYTES);
    assert_non_null(body);
    uint64_t sum = 0;
    for (size_t i = 0; i < BIG_BODY_BYTES; i++) {
        body[i] = (char)('a' + (i * 7) % 26);
        sum = sum * 31 + (unsigned char)body[i];
    }
    struct gw_upstream_request req = {.url = url, .method = "POST", .body = body,
                                      .body_len = BIG_BODY_BYTES, .total_timeout_ms = 10000};
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &r.call), 0);
    free(body);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.big_len, BIG_BODY_BYTES);
    assert_true(r.big_sum == sum);
    assert_true(r.body_calls > 1);
}

/* Native client only: a head must fit its 32 KiB read buffer (libcurl takes
 * larger heads and drops the headers past the limits instead). */
static void test_oversized_head_fails(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    call_start(f, &r, "/big-head", 5000);
    run_until(f, &r.done_count, 1);
    assert_int_equal(r.error, GW_UPSTREAM_EFAILED);
    assert_non_null(strstr(r.message, "too large"));
    assert_int_equal(r.head_count, 0);
}

static void test_invalid_requests_are_refused(void **state)
{
    struct fixture *f = *state;
    struct result r = {.f = f};
    struct gw_upstream_call *call = (struct gw_upstream_call *)&r;
    static const char *const injected[] = {"X-A: 1\r\nX-B: 2"};
    struct gw_upstream_request req = {.url = "http://127.0.0.1:1/x", .header_lines = injected,
                                      .header_count = 1};
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &call),
                     GW_UPSTREAM_EINVAL);
    assert_null(call);
    req.header_count = GW_UPSTREAM_HEADERS_MAX + 1;
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &call),
                     GW_UPSTREAM_EINVAL);
    req.header_count = 0;
    req.url = "file:///etc/passwd";
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &call),
                     GW_UPSTREAM_EINVAL);
    req.url = "http://127.0.0.1:1/x";
    req.method = "POST /y HTTP/1.1\r\n";
    assert_int_equal(gw_upstream_call_start(f->upstream, &req, &callbacks, &r, &call),
                     GW_UPSTREAM_EINVAL);
    run_for(f, 20);
    assert_int_equal(r.done_count, 0);
}

int main(void)
{
    setenv("no_proxy", "*", 1); /* the test server is local whatever the environment says */
    setenv("NO_PROXY", "*", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_response_arrives_with_status_headers_and_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_body_and_headers_reach_the_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_is_copied_by_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_stream_arrives_in_several_pieces, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sequential_calls_reuse_one_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_status_is_passed_through_with_its_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interim_100_response_is_not_the_head, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout_reports_etimeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_connection_reports_econnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_inside_on_body_reports_canceled_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_inside_on_head_delivers_no_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_right_after_start_reports_from_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_connect_frees_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_the_body_until_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_survives_the_server_dropping_an_idle_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_without_length_ends_with_the_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chunk_extensions_and_trailers_are_not_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_body_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_response_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_bodies_pass_both_ways, setup, teardown),
    };
    const struct CMUnitTest native_tests[] = {
        cmocka_unit_test_setup_teardown(test_oversized_head_fails, setup, teardown),
    };
    client_under_test = GW_UPSTREAM_CLIENT_NATIVE;
    int failed = cmocka_run_group_tests_name("upstream_native_http1", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("upstream_native_http1_only", native_tests, NULL, NULL);
    client_under_test = GW_UPSTREAM_CLIENT_CURL;
    failed += cmocka_run_group_tests_name("upstream_libcurl", tests, NULL, NULL);
    return failed;
}
