/*
 * mock_upstream.c — a fast stand-in for the external model providers
 * (OpenAI and Anthropic), used by the gateway tests and the gateway
 * benchmark.  One process, one thread: h2o's HTTP/1.1 server on a libuv
 * loop, keep-alive, answers built with snprintf-style appends (a plain JSON
 * answer costs microseconds, so the mock is never the benchmark's
 * bottleneck).
 *
 * usage: mock_upstream --listen 127.0.0.1:PORT     (PORT 0 picks a free one)
 * Prints "mock_upstream listening on 127.0.0.1:PORT" once it accepts.
 * Loopback addresses only.
 *
 * Endpoints (POST, JSON body):
 *   /v1/chat/completions, /v1/completions   OpenAI shapes, "usage" with
 *       prompt_tokens, completion_tokens, total_tokens,
 *       prompt_tokens_details.cached_tokens
 *   /v1/embeddings    OpenAI shape; usage has prompt_tokens and total_tokens
 *       only (as the real API); one 8-float vector per input
 *   /v1/messages      Anthropic shape: id, type "message", content
 *       [{type:"text", text}], usage {input_tokens, output_tokens,
 *       cache_creation_input_tokens, cache_read_input_tokens}
 *   GET  /mock/requests  JSON array of the last MOCK_REQUESTS_MAX requests
 *       received, oldest first: {seq, method, path, headers: {lower-case
 *       name: value, repeated names joined with ", "}, body: string}
 *       (authorization included; /mock/ calls themselves are not recorded)
 *   POST /mock/reset     forget the recorded requests
 *
 * Token counts are deterministic:
 *   prompt = request body bytes / 4, at least 1 (OpenAI prompt_tokens,
 *            Anthropic input_tokens, which excludes the cache fields as in
 *            the real API: the cache fields are added on top)
 *   output = min(max_tokens (or max_completion_tokens; 16 if absent), 16)
 *
 * Streaming ("stream": true; not for embeddings) answers text/event-stream:
 *   OpenAI: `data: {chunk}\n\n` — a role chunk (chat only), one chunk per
 *     content piece, a finish chunk (finish_reason "stop"), then — only when
 *     stream_options.include_usage is true — a chunk with "usage" and empty
 *     "choices" (the other chunks then carry "usage": null), then
 *     `data: [DONE]\n\n`.
 *   Anthropic: `event: X\ndata: {...}\n\n` for message_start (usage: input
 *     and cache fields, output_tokens 1), content_block_start,
 *     content_block_delta per piece, content_block_stop, message_delta
 *     (cumulative usage: output_tokens), message_stop.
 *   Each event is one write; the next is produced when h2o asks for more.
 *
 * Test controls (request headers, all optional; a malformed value is
 * answered 400 naming the header):
 *   X-Mock-Status: N           answer status N with a provider-shaped JSON
 *                              error body (OpenAI or Anthropic by path)
 *   X-Mock-Delay-Ms: N         answer (or start the stream) after N ms, on a
 *                              uv timer (the loop keeps serving others)
 *   X-Mock-Output-Tokens: N    output token count instead of the rule above
 *   X-Mock-Cached-Tokens: N    OpenAI prompt_tokens_details.cached_tokens /
 *                              Anthropic cache_read_input_tokens
 *   X-Mock-Cache-Write-Tokens: N   Anthropic cache_creation_input_tokens
 *   X-Mock-Chunks: N           stream N content pieces (default 4)
 *   X-Mock-Chunk-Delay-Ms: N   wait N ms before each content piece
 *   X-Mock-Stream-Cut: 1       stream the opening events and the first
 *                              content piece, then close the connection
 *                              (no usage, no end event, no terminating
 *                              chunk): an interrupted provider stream
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#define MOCK_REQUESTS_MAX 1000          /* requests kept for GET /mock/requests */
#define MOCK_BODY_MAX (16u << 20)       /* request body cap (h2o answers 413 above) */
#define MOCK_DELAY_MS_MAX 600000        /* X-Mock-Delay-Ms, X-Mock-Chunk-Delay-Ms */
#define MOCK_CHUNKS_MAX 100000          /* X-Mock-Chunks */
#define MOCK_TOKENS_MAX 100000000       /* X-Mock-*-Tokens */
#define MOCK_DEFAULT_CHUNKS 4
#define MOCK_OUTPUT_TOKENS_MAX 16       /* output = min(max_tokens, this) */
#define MOCK_TEXT_WORDS_MAX 256         /* words in a non-streamed answer */
#define MOCK_EMBEDDING_INPUTS_MAX 2048
#define MOCK_EMBEDDING_DIMS 8
#define MOCK_BACKLOG 1024

/* ---- a growable byte buffer (one scratch instance; single thread) ---- */

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
};

static void sbuf_reserve(struct sbuf *s, size_t more)
{
    if (s->len + more <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + more)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (p == NULL) {
        fprintf(stderr, "mock_upstream: out of memory\n");
        abort();
    }
    s->p = p;
    s->cap = cap;
}

static void sbuf_add(struct sbuf *s, const char *data, size_t len)
{
    sbuf_reserve(s, len);
    memcpy(s->p + s->len, data, len);
    s->len += len;
}

#define sbuf_lit(s, lit) sbuf_add((s), (lit), sizeof(lit) - 1)

static void sbuf_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_printf(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->p ? s->p + s->len : NULL, s->cap - s->len, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    if ((size_t)n >= s->cap - s->len) {
        sbuf_reserve(s, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
    }
    s->len += (size_t)n;
}

/* Appends a JSON string literal (quotes included). */
static void sbuf_json_str(struct sbuf *s, const char *str, size_t len)
{
    sbuf_reserve(s, len * 6 + 2);
    char *o = s->p + s->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)str[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    s->len = (size_t)(o - s->p);
}

static struct sbuf g_scratch;

/* ---- the request log (GET /mock/requests) ---- */

/* One received request, all strings in one malloc'ed block. */
struct mock_record {
    uint64_t seq;
    size_t header_count;
    h2o_iovec_t method, path, body;
    h2o_iovec_t *names, *values; /* header_count each, inside the block */
};

static struct mock_record *g_records[MOCK_REQUESTS_MAX]; /* ring */
static size_t g_record_next;   /* slot the next record goes to */
static size_t g_record_count;  /* <= MOCK_REQUESTS_MAX */
static uint64_t g_record_seq;

static char *copy_into(char **cursor, h2o_iovec_t v, h2o_iovec_t *out)
{
    if (v.len)
        memcpy(*cursor, v.base, v.len);
    out->base = *cursor;
    out->len = v.len;
    *cursor += v.len;
    return out->base;
}

static void mock_record_add(h2o_req_t *req)
{
    size_t n = req->headers.size;
    size_t bytes = sizeof(struct mock_record) + 2 * n * sizeof(h2o_iovec_t) + req->method.len +
                   req->path.len + req->entity.len;
    for (size_t i = 0; i < n; i++)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    struct mock_record *r = malloc(bytes);
    if (r == NULL)
        return; /* the log is best effort; the answer still goes out */
    r->seq = ++g_record_seq;
    r->header_count = n;
    r->names = (h2o_iovec_t *)(r + 1);
    r->values = r->names + n;
    char *cursor = (char *)(r->values + n);
    copy_into(&cursor, req->method, &r->method);
    copy_into(&cursor, req->path, &r->path);
    copy_into(&cursor, req->entity.base ? req->entity : h2o_iovec_init("", 0), &r->body);
    for (size_t i = 0; i < n; i++) {
        copy_into(&cursor, *req->headers.entries[i].name, &r->names[i]);
        copy_into(&cursor, req->headers.entries[i].value, &r->values[i]);
    }
    assert((size_t)(cursor - (char *)r) == bytes);

    free(g_records[g_record_next]);
    g_records[g_record_next] = r;
    g_record_next = (g_record_next + 1) % MOCK_REQUESTS_MAX;
    if (g_record_count < MOCK_REQUESTS_MAX)
        g_record_count++;
}

static void mock_record_reset(void)
{
    for (size_t i = 0; i < MOCK_REQUESTS_MAX; i++) {
        free(g_records[i]);
        g_records[i] = NULL;
    }
    g_record_next = 0;
    g_record_count = 0;
}

static json_t *iov_json(h2o_iovec_t v)
{
    json_t *s = json_stringn(v.base, v.len);
    return s ? s : json_null(); /* not UTF-8 */
}

static json_t *mock_record_json(const struct mock_record *r)
{
    json_t *headers = json_object();
    for (size_t i = 0; i < r->header_count; i++) {
        char name[256];
        size_t nlen = r->names[i].len < sizeof(name) - 1 ? r->names[i].len : sizeof(name) - 1;
        memcpy(name, r->names[i].base, nlen);
        name[nlen] = '\0';
        json_t *prev = json_object_get(headers, name);
        if (prev != NULL && json_is_string(prev)) {
            struct sbuf joined = {0};
            sbuf_add(&joined, json_string_value(prev), json_string_length(prev));
            sbuf_lit(&joined, ", ");
            sbuf_add(&joined, r->values[i].base, r->values[i].len);
            json_object_set_new(headers, name, json_stringn(joined.p, joined.len));
            free(joined.p);
        } else {
            json_object_set_new(headers, name, iov_json(r->values[i]));
        }
    }
    return json_pack("{s:I, s:o, s:o, s:o, s:o}", "seq", (json_int_t)r->seq, "method",
                     iov_json(r->method), "path", iov_json(r->path), "headers", headers, "body",
                     iov_json(r->body));
}

/* ---- answers ---- */

enum mock_api { API_CHAT, API_COMPLETIONS, API_EMBEDDINGS, API_MESSAGES };

static bool api_is_anthropic(enum mock_api api)
{
    return api == API_MESSAGES;
}

static const char *status_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } table[] = {{200, "OK"},           {400, "Bad Request"},     {401, "Unauthorized"},
                 {403, "Forbidden"},    {404, "Not Found"},       {405, "Method Not Allowed"},
                 {408, "Request Timeout"}, {413, "Payload Too Large"}, {429, "Too Many Requests"},
                 {500, "Internal Server Error"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
                 {504, "Gateway Timeout"}, {529, "Overloaded"}};
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].status == status)
            return table[i].reason;
    return "Mock Status";
}

/* Sends `body` (copied) as the whole answer. */
static void send_body(h2o_req_t *req, int status, const char *content_type, const char *body,
                      size_t len)
{
    req->res.status = status;
    req->res.reason = status_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_send_inline(req, body, len);
}

static void send_json(h2o_req_t *req, int status, const struct sbuf *s)
{
    send_body(req, status, "application/json", s->p, s->len);
}

/* A provider-shaped error answer. */
static void send_error(h2o_req_t *req, enum mock_api api, int status, const char *message)
{
    struct sbuf *s = &g_scratch;
    s->len = 0;
    if (api_is_anthropic(api)) {
        sbuf_printf(s, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
                    status == 429 ? "rate_limit_error" : status >= 500 ? "api_error"
                                                                        : "invalid_request_error");
    } else {
        sbuf_printf(s, "{\"error\":{\"type\":\"%s\",\"code\":null,\"message\":",
                    status >= 500 ? "server_error" : "invalid_request_error");
    }
    sbuf_json_str(s, message, strlen(message));
    sbuf_lit(s, "}}");
    send_json(req, status, s);
}

/* ---- one provider call ---- */

enum mock_event {
    EV_ROLE,           /* OpenAI chat: delta {role, content ""} */
    EV_MESSAGE_START,  /* Anthropic */
    EV_BLOCK_START,    /* Anthropic */
    EV_CONTENT,        /* repeated chunk_count times */
    EV_BLOCK_STOP,     /* Anthropic */
    EV_FINISH,         /* OpenAI finish chunk / Anthropic message_delta */
    EV_USAGE,          /* OpenAI, only with include_usage */
    EV_END,            /* OpenAI [DONE] / Anthropic message_stop */
    EV_NONE
};

static const enum mock_event k_chat_events[] = {EV_ROLE, EV_CONTENT, EV_FINISH, EV_USAGE, EV_END,
                                                EV_NONE};
static const enum mock_event k_text_events[] = {EV_CONTENT, EV_FINISH, EV_USAGE, EV_END, EV_NONE};
static const enum mock_event k_messages_events[] = {EV_MESSAGE_START, EV_BLOCK_START, EV_CONTENT,
                                                    EV_BLOCK_STOP,    EV_FINISH,      EV_END,
                                                    EV_NONE};

struct mock_timer;

/* Lives in the request's pool; disposed with the request. */
struct mock_call {
    h2o_generator_t gen; /* for streamed answers */
    h2o_req_t *req;
    enum mock_api api;
    bool is_stream;
    bool include_usage;
    bool is_stopped;      /* the client went away mid-stream */
    int64_t status;       /* X-Mock-Status, 0 = normal answer */
    int64_t delay_ms;     /* X-Mock-Delay-Ms */
    int64_t stream_cut;   /* X-Mock-Stream-Cut, 0 or 1 */
    uint64_t id;
    time_t created;
    h2o_iovec_t model;    /* JSON-escaped, quotes included, in the pool */
    int64_t prompt_tokens;
    int64_t output_tokens;
    int64_t cached_tokens;
    int64_t cache_write_tokens;
    int64_t chunk_count;
    int64_t chunk_delay_ms;
    int64_t embedding_inputs;
    const enum mock_event *events; /* stream plan */
    size_t event_pos;
    int64_t chunks_sent;
    struct mock_timer *timer; /* NULL until a delay is needed */
};

struct mock_timer {
    uv_timer_t uv;
    struct mock_call *call; /* NULL once the request is gone */
};

static uint64_t g_call_id;
static uv_loop_t *g_loop;

static void mock_timer_free_cb(uv_handle_t *h)
{
    free(h->data);
}

static void mock_call_dispose(void *p)
{
    struct mock_call *c = p;
    if (c->timer != NULL) {
        uv_timer_stop(&c->timer->uv);
        c->timer->call = NULL;
        uv_close((uv_handle_t *)&c->timer->uv, mock_timer_free_cb);
        c->timer = NULL;
    }
}

static void mock_timer_cb(uv_timer_t *t);

static int mock_call_after(struct mock_call *c, int64_t delay_ms)
{
    if (c->timer == NULL) {
        struct mock_timer *t = malloc(sizeof(*t));
        if (t == NULL)
            return -1;
        uv_timer_init(g_loop, &t->uv);
        t->uv.data = t;
        t->call = c;
        c->timer = t;
    }
    uv_timer_start(&c->timer->uv, mock_timer_cb, (uint64_t)delay_ms, 0);
    return 0;
}

static void add_openai_usage(struct sbuf *s, const struct mock_call *c)
{
    if (c->api == API_EMBEDDINGS) {
        sbuf_printf(s, "\"usage\":{\"prompt_tokens\":%" PRId64 ",\"total_tokens\":%" PRId64 "}",
                    c->prompt_tokens, c->prompt_tokens);
        return;
    }
    sbuf_printf(s,
                "\"usage\":{\"prompt_tokens\":%" PRId64 ",\"completion_tokens\":%" PRId64
                ",\"total_tokens\":%" PRId64 ",\"prompt_tokens_details\":{\"cached_tokens\":%" PRId64
                "}}",
                c->prompt_tokens, c->output_tokens, c->prompt_tokens + c->output_tokens,
                c->cached_tokens);
}

static void add_answer_text(struct sbuf *s, const struct mock_call *c)
{
    int64_t words = c->output_tokens < MOCK_TEXT_WORDS_MAX ? c->output_tokens : MOCK_TEXT_WORDS_MAX;
    sbuf_lit(s, "\"");
    for (int64_t i = 0; i < words; i++)
        sbuf_add(s, "mock ", i + 1 < words ? 5 : 4);
    sbuf_lit(s, "\"");
}

static void build_full_answer(struct sbuf *s, const struct mock_call *c)
{
    const char *model = c->model.base;
    int mlen = (int)c->model.len;
    switch (c->api) {
    case API_CHAT:
        sbuf_printf(s,
                    "{\"id\":\"chatcmpl-mock-%" PRIu64 "\",\"object\":\"chat.completion\",\"created\":%lld,"
                    "\"model\":%.*s,\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                    "\"content\":",
                    c->id, (long long)c->created, mlen, model);
        add_answer_text(s, c);
        sbuf_lit(s, "},\"logprobs\":null,\"finish_reason\":\"stop\"}],");
        add_openai_usage(s, c);
        sbuf_lit(s, "}");
        return;
    case API_COMPLETIONS:
        sbuf_printf(s,
                    "{\"id\":\"cmpl-mock-%" PRIu64 "\",\"object\":\"text_completion\",\"created\":%lld,"
                    "\"model\":%.*s,\"choices\":[{\"index\":0,\"text\":",
                    c->id, (long long)c->created, mlen, model);
        add_answer_text(s, c);
        sbuf_lit(s, ",\"logprobs\":null,\"finish_reason\":\"stop\"}],");
        add_openai_usage(s, c);
        sbuf_lit(s, "}");
        return;
    case API_EMBEDDINGS:
        sbuf_lit(s, "{\"object\":\"list\",\"data\":[");
        for (int64_t i = 0; i < c->embedding_inputs; i++) {
            sbuf_printf(s, "%s{\"object\":\"embedding\",\"index\":%" PRId64 ",\"embedding\":[",
                        i ? "," : "", i);
            for (int d = 0; d < MOCK_EMBEDDING_DIMS; d++)
                sbuf_printf(s, "%s0.%03d", d ? "," : "", (int)((i * 131 + d * 17) % 1000));
            sbuf_lit(s, "]}");
        }
        sbuf_printf(s, "],\"model\":%.*s,", mlen, model);
        add_openai_usage(s, c);
        sbuf_lit(s, "}");
        return;
    case API_MESSAGES:
        sbuf_printf(s,
                    "{\"id\":\"msg_mock_%" PRIu64 "\",\"type\":\"message\",\"role\":\"assistant\","
                    "\"model\":%.*s,\"content\":[{\"type\":\"text\",\"text\":",
                    c->id, mlen, model);
        add_answer_text(s, c);
        sbuf_printf(s,
                    "}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{"
                    "\"input_tokens\":%" PRId64 ",\"output_tokens\":%" PRId64
                    ",\"cache_creation_input_tokens\":%" PRId64 ",\"cache_read_input_tokens\":%" PRId64
                    "}}",
                    c->prompt_tokens, c->output_tokens, c->cache_write_tokens, c->cached_tokens);
        return;
    }
}

/* Opening of an OpenAI stream chunk, up to and including `"choices":`. */
static void add_openai_chunk_head(struct sbuf *s, const struct mock_call *c)
{
    bool chat = c->api == API_CHAT;
    sbuf_printf(s,
                "data: {\"id\":\"%s-mock-%" PRIu64 "\",\"object\":\"%s\",\"created\":%lld,"
                "\"model\":%.*s,",
                chat ? "chatcmpl" : "cmpl", c->id, chat ? "chat.completion.chunk" : "text_completion",
                (long long)c->created, (int)c->model.len, c->model.base);
    if (c->include_usage)
        sbuf_lit(s, "\"usage\":null,");
    sbuf_lit(s, "\"choices\":");
}

/* Appends one SSE event of kind `ev`. */
static void build_event(struct sbuf *s, const struct mock_call *c, enum mock_event ev)
{
    bool chat = c->api == API_CHAT;
    switch (ev) {
    case EV_ROLE:
        add_openai_chunk_head(s, c);
        sbuf_lit(s, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                    "\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        return;
    case EV_MESSAGE_START:
        sbuf_printf(s,
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
                    "\"id\":\"msg_mock_%" PRIu64 "\",\"type\":\"message\",\"role\":\"assistant\","
                    "\"model\":%.*s,\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                    "\"usage\":{\"input_tokens\":%" PRId64 ",\"cache_creation_input_tokens\":%" PRId64
                    ",\"cache_read_input_tokens\":%" PRId64 ",\"output_tokens\":1}}}\n\n",
                    c->id, (int)c->model.len, c->model.base, c->prompt_tokens,
                    c->cache_write_tokens, c->cached_tokens);
        return;
    case EV_BLOCK_START:
        sbuf_lit(s, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                    "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        return;
    case EV_CONTENT:
        if (api_is_anthropic(c->api)) {
            sbuf_lit(s, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"mock \"}}\n\n");
        } else if (chat) {
            add_openai_chunk_head(s, c);
            sbuf_lit(s, "[{\"index\":0,\"delta\":{\"content\":\"mock \"},\"logprobs\":null,"
                        "\"finish_reason\":null}]}\n\n");
        } else {
            add_openai_chunk_head(s, c);
            sbuf_lit(s, "[{\"index\":0,\"text\":\"mock \",\"logprobs\":null,"
                        "\"finish_reason\":null}]}\n\n");
        }
        return;
    case EV_BLOCK_STOP:
        sbuf_lit(s, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                    "\"index\":0}\n\n");
        return;
    case EV_FINISH:
        if (api_is_anthropic(c->api)) {
            sbuf_printf(s,
                        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
                        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{"
                        "\"output_tokens\":%" PRId64 "}}\n\n",
                        c->output_tokens);
        } else {
            add_openai_chunk_head(s, c);
            sbuf_printf(s, "[{\"index\":0,%s,\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
                        chat ? "\"delta\":{}" : "\"text\":\"\"");
        }
        return;
    case EV_USAGE:
        sbuf_printf(s,
                    "data: {\"id\":\"%s-mock-%" PRIu64 "\",\"object\":\"%s\",\"created\":%lld,"
                    "\"model\":%.*s,\"choices\":[],",
                    chat ? "chatcmpl" : "cmpl", c->id,
                    chat ? "chat.completion.chunk" : "text_completion", (long long)c->created,
                    (int)c->model.len, c->model.base);
        add_openai_usage(s, c);
        sbuf_lit(s, "}\n\n");
        return;
    case EV_END:
        if (api_is_anthropic(c->api))
            sbuf_lit(s, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        else
            sbuf_lit(s, "data: [DONE]\n\n");
        return;
    case EV_NONE:
        break;
    }
    assert(!"unreachable event kind");
}

/* The stream's next event kind, skipping what this call does not send. */
static enum mock_event stream_next_kind(struct mock_call *c)
{
    for (;;) {
        enum mock_event ev = c->events[c->event_pos];
        if (ev == EV_CONTENT && c->chunks_sent >= c->chunk_count) {
            c->event_pos++;
            continue;
        }
        if (ev == EV_USAGE && !c->include_usage) {
            c->event_pos++;
            continue;
        }
        return ev;
    }
}

static bool stream_past_content(const struct mock_call *c, enum mock_event ev)
{
    if (ev == EV_CONTENT)
        return c->chunks_sent >= 1;
    for (size_t i = 0; i < c->event_pos; i++)
        if (c->events[i] == EV_CONTENT)
            return true;
    return false;
}

/* Sends the stream's next event (or cuts the connection). */
static void stream_emit(struct mock_call *c)
{
    h2o_req_t *req = c->req;
    enum mock_event ev = stream_next_kind(c);
    assert(ev != EV_NONE);
    if (c->stream_cut && stream_past_content(c, ev)) {
        /* No terminating chunk: the client sees a truncated transfer. */
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    struct sbuf *s = &g_scratch;
    s->len = 0;
    build_event(s, c, ev);
    if (ev == EV_CONTENT)
        c->chunks_sent++;
    else
        c->event_pos++;
    h2o_iovec_t buf = h2o_strdup(&req->pool, s->p, s->len);
    h2o_send(req, &buf, 1, ev == EV_END ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    struct mock_call *c = H2O_STRUCT_FROM_MEMBER(struct mock_call, gen, gen);
    if (c->is_stopped)
        return;
    if (c->chunk_delay_ms > 0 && stream_next_kind(c) == EV_CONTENT &&
        !(c->stream_cut && stream_past_content(c, EV_CONTENT))) {
        if (mock_call_after(c, c->chunk_delay_ms) == 0)
            return;
    }
    stream_emit(c);
}

static void stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    struct mock_call *c = H2O_STRUCT_FROM_MEMBER(struct mock_call, gen, gen);
    c->is_stopped = true;
    if (c->timer != NULL)
        uv_timer_stop(&c->timer->uv);
}

static void stream_start(struct mock_call *c)
{
    h2o_req_t *req = c->req;
    c->events = c->api == API_CHAT ? k_chat_events
              : c->api == API_MESSAGES ? k_messages_events
                                       : k_text_events;
    c->gen.proceed = stream_proceed;
    c->gen.stop = stream_stop;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    h2o_start_response(req, &c->gen);
    stream_proceed(&c->gen, req);
}

/* Answers the call now (after any X-Mock-Delay-Ms). */
static void mock_call_respond(struct mock_call *c)
{
    if (c->status != 0 && c->status != 200) {
        char msg[64];
        snprintf(msg, sizeof(msg), "mock status %" PRId64 " (X-Mock-Status)", c->status);
        send_error(c->req, c->api, (int)c->status, msg);
        return;
    }
    if (c->is_stream) {
        stream_start(c);
        return;
    }
    struct sbuf *s = &g_scratch;
    s->len = 0;
    build_full_answer(s, c);
    send_json(c->req, 200, s);
}

static void mock_timer_cb(uv_timer_t *t)
{
    struct mock_call *c = ((struct mock_timer *)t->data)->call;
    if (c == NULL || c->is_stopped)
        return;
    if (c->gen.proceed != NULL)
        stream_emit(c); /* a chunk delay inside a stream */
    else
        mock_call_respond(c);
}

/* Reads integer header `name` into *out (left alone when absent).
 * Returns -1 when present but not an integer in [0, max]. */
static int header_int(h2o_req_t *req, const char *name, int64_t max, int64_t *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    char tmp[24];
    if (v.len == 0 || v.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v.base, v.len);
    tmp[v.len] = '\0';
    char *end;
    errno = 0;
    long long n = strtoll(tmp, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0 || n > max)
        return -1;
    *out = n;
    return 0;
}

/* Fills the call's plan from the body.  Returns 0, or -1 with *why set. */
static int mock_call_parse_body(struct mock_call *c, h2o_req_t *req, const char **why)
{
    json_error_t err;
    json_t *root = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &err);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        *why = "the body is not a JSON object";
        return -1;
    }
    json_t *model = json_object_get(root, "model");
    struct sbuf *s = &g_scratch;
    s->len = 0;
    if (json_is_string(model))
        sbuf_json_str(s, json_string_value(model), json_string_length(model));
    else
        sbuf_lit(s, "\"mock-model\"");
    c->model = h2o_strdup(&req->pool, s->p, s->len);

    c->is_stream = json_is_true(json_object_get(root, "stream")) && c->api != API_EMBEDDINGS;
    json_t *opts = json_object_get(root, "stream_options");
    c->include_usage = json_is_true(json_object_get(opts, "include_usage"));

    json_t *max = json_object_get(root, "max_tokens");
    if (!json_is_integer(max))
        max = json_object_get(root, "max_completion_tokens");
    json_int_t max_tokens = json_is_integer(max) ? json_integer_value(max) : MOCK_OUTPUT_TOKENS_MAX;
    if (max_tokens < 0)
        max_tokens = 0;
    c->output_tokens = max_tokens < MOCK_OUTPUT_TOKENS_MAX ? max_tokens : MOCK_OUTPUT_TOKENS_MAX;

    json_t *input = json_object_get(root, "input");
    c->embedding_inputs = 1;
    if (json_is_array(input) && json_array_size(input) > 0 &&
        !json_is_integer(json_array_get(input, 0))) /* a list of texts or of token lists */
        c->embedding_inputs = (int64_t)json_array_size(input);
    if (c->embedding_inputs > MOCK_EMBEDDING_INPUTS_MAX)
        c->embedding_inputs = MOCK_EMBEDDING_INPUTS_MAX;
    json_decref(root);
    return 0;
}

static const struct {
    const char *name;
    int64_t max;
    size_t offset;
} k_int_headers[] = {
    {"x-mock-status", 599, offsetof(struct mock_call, status)},
    {"x-mock-delay-ms", MOCK_DELAY_MS_MAX, offsetof(struct mock_call, delay_ms)},
    {"x-mock-output-tokens", MOCK_TOKENS_MAX, offsetof(struct mock_call, output_tokens)},
    {"x-mock-cached-tokens", MOCK_TOKENS_MAX, offsetof(struct mock_call, cached_tokens)},
    {"x-mock-cache-write-tokens", MOCK_TOKENS_MAX, offsetof(struct mock_call, cache_write_tokens)},
    {"x-mock-chunks", MOCK_CHUNKS_MAX, offsetof(struct mock_call, chunk_count)},
    {"x-mock-chunk-delay-ms", MOCK_DELAY_MS_MAX, offsetof(struct mock_call, chunk_delay_ms)},
    {"x-mock-stream-cut", 1, offsetof(struct mock_call, stream_cut)},
};

static int on_provider_call(h2o_req_t *req, enum mock_api api)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        send_error(req, api, 405, "use POST");
        return 0;
    }
    struct mock_call *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), mock_call_dispose);
    memset(c, 0, sizeof(*c));
    c->req = req;
    c->api = api;
    c->id = ++g_call_id;
    c->created = time(NULL);
    c->chunk_count = MOCK_DEFAULT_CHUNKS;

    const char *why = NULL;
    if (mock_call_parse_body(c, req, &why) != 0) {
        send_error(req, api, 400, why);
        return 0;
    }
    int64_t prompt = (int64_t)req->entity.len / 4;
    c->prompt_tokens = prompt > 0 ? prompt : 1;

    for (size_t i = 0; i < sizeof(k_int_headers) / sizeof(k_int_headers[0]); i++) {
        int64_t *field = (int64_t *)((char *)c + k_int_headers[i].offset);
        if (header_int(req, k_int_headers[i].name, k_int_headers[i].max, field) != 0) {
            char msg[96];
            snprintf(msg, sizeof(msg), "mock: header %s must be an integer in 0..%" PRId64,
                     k_int_headers[i].name, k_int_headers[i].max);
            send_error(req, api, 400, msg);
            return 0;
        }
    }
    if (c->status != 0 && c->status < 100) {
        send_error(req, api, 400, "mock: header x-mock-status must be 100..599");
        return 0;
    }
    if (c->delay_ms > 0 && mock_call_after(c, c->delay_ms) == 0)
        return 0;
    mock_call_respond(c);
    return 0;
}

static int on_mock_requests(h2o_req_t *req)
{
    json_t *list = json_array();
    size_t first = (g_record_next + MOCK_REQUESTS_MAX - g_record_count) % MOCK_REQUESTS_MAX;
    for (size_t i = 0; i < g_record_count; i++)
        json_array_append_new(list, mock_record_json(g_records[(first + i) % MOCK_REQUESTS_MAX]));
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (text == NULL) {
        send_error(req, API_CHAT, 500, "mock: cannot encode the request log");
        return 0;
    }
    send_body(req, 200, "application/json", text, strlen(text));
    free(text);
    return 0;
}

static int on_mock_reset(h2o_req_t *req)
{
    mock_record_reset();
    send_body(req, 200, "application/json", "{}", 2);
    return 0;
}

static const struct {
    const char *path;
    enum mock_api api;
} k_routes[] = {
    {"/v1/chat/completions", API_CHAT},
    {"/v1/completions", API_COMPLETIONS},
    {"/v1/embeddings", API_EMBEDDINGS},
    {"/v1/messages", API_MESSAGES},
};

static int mock_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/mock/requests")))
        return on_mock_requests(req);
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/mock/reset")))
        return on_mock_reset(req);
    mock_record_add(req);
    for (size_t i = 0; i < sizeof(k_routes) / sizeof(k_routes[0]); i++)
        if (h2o_memis(path.base, path.len, k_routes[i].path, strlen(k_routes[i].path)))
            return on_provider_call(req, k_routes[i].api);
    send_error(req, API_CHAT, 404, "mock: no such endpoint");
    return 0;
}

/* ---- server ---- */

static h2o_globalconf_t g_config;
static h2o_context_t g_ctx;
static h2o_accept_ctx_t g_accept_ctx;

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&g_accept_ctx, sock);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mock_upstream --listen 127.0.0.1:PORT\n"
               "A mock OpenAI/Anthropic provider for tests; see the top of mock_upstream.c.\n");
}

/* Parses "a.b.c.d:port" (loopback only).  Returns 0 or -1. */
static int parse_listen(const char *arg, struct sockaddr_in *addr)
{
    const char *colon = strrchr(arg, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - arg) >= sizeof(host))
        return -1;
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
        return -1;
    if (strncmp(host, "127.", 4) != 0)
        return -1;
    return uv_ip4_addr(host, (int)port, addr) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *listen_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_arg = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    struct sockaddr_in addr;
    if (listen_arg == NULL || parse_listen(listen_arg, &addr) != 0) {
        fprintf(stderr, "mock_upstream: --listen needs a loopback a.b.c.d:PORT (got %s)\n",
                listen_arg ? listen_arg : "nothing");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&g_config);
    g_config.max_request_entity_size = MOCK_BODY_MAX;
    h2o_hostconf_t *host = h2o_config_register_host(&g_config, h2o_iovec_init(H2O_STRLIT("default")),
                                                    65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = mock_on_req;

    g_loop = uv_default_loop();
    h2o_context_init(&g_ctx, g_loop, &g_config);
    g_accept_ctx.ctx = &g_ctx;
    g_accept_ctx.hosts = g_config.hosts;

    uv_tcp_t listener;
    uv_tcp_init(g_loop, &listener);
    int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&listener, MOCK_BACKLOG, on_accept);
    if (rc != 0) {
        fprintf(stderr, "mock_upstream: cannot listen on %s: %s\n", listen_arg, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
    char ip[32];
    uv_ip4_name(&bound, ip, sizeof(ip));
    printf("mock_upstream listening on %s:%d\n", ip, ntohs(bound.sin_port));
    fflush(stdout);
    return uv_run(g_loop, UV_RUN_DEFAULT);
}
