/*
 * sse.c — reads token usage out of provider responses.
 *
 * A streaming body is cut into lines (LF, CRLF or a lone CR end a line, as
 * the SSE spec says), lines into fields, and a blank line dispatches the
 * event whose `data:` lines were joined with '\n'.  Only events that can
 * carry usage are parsed as JSON (jansson); every other event costs a
 * memmem.  Buffers are bounded by GW_SSE_LINE_MAX: an over-long line is
 * skipped without being buffered, and the event it belonged to is dropped
 * whole, since a partial data field is no longer the provider's JSON.
 *
 * Counts are never trusted: a count must be a JSON integer in
 * [0, GW_USAGE_COUNT_MAX].  A usage object holding a count that is present
 * but not sane is ignored as a whole, so that a broken provider answer
 * leaves has_usage false (the gateway then keeps the reservation's upper
 * bound) rather than pricing the call from a half-read object.
 *
 * Anthropic streams: message_start fills the fields (input and cache counts,
 * an early output count) but does not set has_usage; only a message_delta
 * with an output_tokens count does, because a stream cut after
 * message_start has not told us its output.
 */
#include "gateway/sse.h"
#include "gateway/json_scan.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Larger counts are a broken or hostile upstream, not a real call. */
#define GW_USAGE_COUNT_MAX 1000000000000LL

/* First allocation of the line and data buffers; they double from here. */
#define GW_SSE_BUF_MIN 256u

/* ---- bounded buffers ---- */

/* Appends n bytes to *buf; 0, 1 when the result would exceed max (nothing
 * appended), -1 when out of memory. */
static int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n, size_t max)
{
    if (n > max - *len)
        return 1;
    if (*len + n > *cap) {
        size_t cap_next = *cap ? *cap : GW_SSE_BUF_MIN;
        while (cap_next < *len + n)
            cap_next *= 2;
        if (cap_next > max)
            cap_next = max;
        char *next = realloc(*buf, cap_next);
        if (next == NULL)
            return -1;
        *buf = next;
        *cap = cap_next;
    }
    if (n > 0)
        memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

/* ---- reading counts ---- */

/* A usage object as a jansson value, or as the text of a valid JSON value
 * without escapes (a provider's whole answer: read where it lies, see
 * gw_usage_from_json). */
struct usage_src {
    const json_t *json;
    const char *text; /* NULL: absent */
    size_t len;
    bool is_text;
};

static struct usage_src src_json(const json_t *v)
{
    return (struct usage_src){.json = v};
}

static bool src_is_object(const struct usage_src *o)
{
    return o->is_text ? o->text != NULL && o->text[0] == '{' : json_is_object(o->json);
}

/* o[keys[i]] into out[i] for each key, absent when o is no object or lacks
 * the key: one pass over a text object, however many keys. */
#define SRC_KEYS_MAX 4
static void src_members(const struct usage_src *o, const char *const *keys, size_t count,
                        struct usage_src *out)
{
    assert(count <= SRC_KEYS_MAX);
    for (size_t i = 0; i < count; i++)
        out[i] = o->is_text ? (struct usage_src){.is_text = true}
                            : src_json(json_object_get(o->json, keys[i]));
    if (!o->is_text || !src_is_object(o))
        return;
    struct gw_json_span spans[SRC_KEYS_MAX];
    if (gw_json_members(o->text, o->len, keys, count, spans) != 0)
        return; /* invalid, or escaped names: absent, as one lookup would say */
    for (size_t i = 0; i < count; i++) {
        out[i].text = spans[i].at;
        out[i].len = spans[i].len;
    }
}

/* 1 and *out set when v is a sane count; 0 when it is absent or null; -1
 * when it is present but negative, fractional, too large or not a number. */
static int count_value(const struct usage_src *v, int64_t *out)
{
    json_int_t n;
    if (!v->is_text) {
        if (v->json == NULL || json_is_null(v->json))
            return 0;
        if (!json_is_integer(v->json))
            return -1;
        n = json_integer_value(v->json);
    } else {
        if (v->text == NULL || (v->len == 4 && memcmp(v->text, "null", 4) == 0))
            return 0;
        if (gw_json_integer(v->text, v->len, &n) != 0)
            return -1;
    }
    if (n < 0 || n > GW_USAGE_COUNT_MAX)
        return -1;
    *out = (int64_t)n;
    return 1;
}

/* OpenAI's usage object is complete each time it is sent: it replaces what we
 * had.  prompt_tokens includes the cached tokens. */
static bool usage_read_openai(const struct usage_src *obj, struct gw_usage *usage)
{
    int64_t prompt = 0;
    int64_t completion = 0;
    int64_t cached = 0;

    if (!src_is_object(obj))
        return false;
    static const char *const keys[] = {"prompt_tokens", "completion_tokens",
                                       "prompt_tokens_details"};
    struct usage_src v[3];
    src_members(obj, keys, 3, v);
    if (count_value(&v[0], &prompt) != 1)
        return false;
    if (count_value(&v[1], &completion) < 0) /* absent: embeddings */
        return false;
    static const char *const detail_keys[] = {"cached_tokens"};
    struct usage_src cached_v;
    src_members(&v[2], detail_keys, 1, &cached_v);
    if (count_value(&cached_v, &cached) < 0)
        return false;
    if (cached > prompt)
        cached = prompt;
    usage->has_usage = true;
    usage->input_tokens = prompt - cached;
    usage->cached_tokens = cached;
    usage->cache_write_tokens = 0;
    usage->output_tokens = completion;
    return true;
}

static const struct {
    const char *key;
    size_t offset;
} anthropic_fields[] = {
    {"input_tokens", offsetof(struct gw_usage, input_tokens)},
    {"cache_read_input_tokens", offsetof(struct gw_usage, cached_tokens)},
    {"cache_creation_input_tokens", offsetof(struct gw_usage, cache_write_tokens)},
    {"output_tokens", offsetof(struct gw_usage, output_tokens)},
};

#define ANTHROPIC_INPUT 0
#define ANTHROPIC_OUTPUT 3

/* Anthropic's usage objects may be partial (message_delta often carries only
 * output_tokens): the fields present replace ours, the others stay.  The
 * object is refused when a field is insane or a needed one is absent.
 * has_usage is left to the caller. */
static bool usage_read_anthropic(const struct usage_src *obj, struct gw_usage *usage,
                                 bool need_input, bool need_output)
{
    struct gw_usage next = *usage;
    bool is_present[sizeof(anthropic_fields) / sizeof(anthropic_fields[0])];

    if (!src_is_object(obj))
        return false;
    enum { FIELDS = sizeof(anthropic_fields) / sizeof(anthropic_fields[0]) };
    const char *keys[FIELDS];
    struct usage_src v[FIELDS];
    for (size_t i = 0; i < FIELDS; i++)
        keys[i] = anthropic_fields[i].key;
    src_members(obj, keys, FIELDS, v);
    for (size_t i = 0; i < FIELDS; i++) {
        int64_t *field = (int64_t *)((char *)&next + anthropic_fields[i].offset);
        int rc = count_value(&v[i], field);
        if (rc < 0)
            return false;
        is_present[i] = rc == 1;
    }
    if (need_input && !is_present[ANTHROPIC_INPUT])
        return false;
    if (need_output && !is_present[ANTHROPIC_OUTPUT])
        return false;
    *usage = next;
    return true;
}

/* ---- events ---- */

static void event_read_openai(struct gw_sse *p, const json_t *root)
{
    struct usage_src u = src_json(json_object_get(root, "usage"));
    (void)usage_read_openai(&u, &p->usage);
}

static void event_read_anthropic(struct gw_sse *p, const json_t *root)
{
    const char *type = json_string_value(json_object_get(root, "type"));
    if (type == NULL)
        return;
    if (strcmp(type, "message_start") == 0) {
        json_t *message = json_object_get(root, "message");
        struct usage_src u = src_json(json_object_get(message, "usage"));
        (void)usage_read_anthropic(&u, &p->usage, true, false);
    } else if (strcmp(type, "message_delta") == 0) {
        struct usage_src u = src_json(json_object_get(root, "usage"));
        if (usage_read_anthropic(&u, &p->usage, false, true))
            p->usage.has_usage = true;
    } else if (strcmp(type, "message_stop") == 0) {
        p->is_done = true;
    }
}

static bool contains(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

/* One complete event's data (lines joined, no trailing '\n'). */
static void event_dispatch(struct gw_sse *p, const char *data, size_t len)
{
    if (p->provider == GW_PROVIDER_OPENAI) {
        if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
            p->is_done = true;
            return;
        }
        if (!contains(data, len, "usage"))
            return;
    } else if (!contains(data, len, "usage") && !contains(data, len, "message_stop")) {
        return;
    }

    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    if (p->provider == GW_PROVIDER_OPENAI)
        event_read_openai(p, root);
    else
        event_read_anthropic(p, root);
    json_decref(root);
}

static void event_end(struct gw_sse *p)
{
    if (!p->is_event_skipping && p->data_len > 0)
        event_dispatch(p, p->data, p->data_len - 1); /* drop the last '\n' */
    p->data_len = 0;
    p->is_event_skipping = false;
}

/* One complete line, without its terminator.  Returns -1 when out of memory. */
static int line_process(struct gw_sse *p, const char *s, size_t n)
{
    if (n == 0) {
        event_end(p);
        return 0;
    }
    if (s[0] == ':') /* comment */
        return 0;

    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    if (name_len != 4 || memcmp(s, "data", 4) != 0) /* event:, id:, retry: */
        return 0;
    if (p->is_event_skipping)
        return 0;

    const char *value = colon ? colon + 1 : s + n;
    size_t value_len = (size_t)(s + n - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    int rc = buf_append(&p->data, &p->data_len, &p->data_cap, value, value_len, GW_SSE_LINE_MAX);
    if (rc == 0)
        rc = buf_append(&p->data, &p->data_len, &p->data_cap, "\n", 1, GW_SSE_LINE_MAX);
    if (rc != 0) {
        p->is_event_skipping = true;
        p->data_len = 0;
    }
    return rc < 0 ? -1 : 0;
}

/* ---- public ---- */

void gw_sse_init(struct gw_sse *p, enum gw_provider provider)
{
    memset(p, 0, sizeof(*p));
    p->provider = provider;
}

void gw_sse_free(struct gw_sse *p)
{
    free(p->line);
    free(p->data);
    p->line = NULL;
    p->data = NULL;
    p->line_len = p->line_cap = 0;
    p->data_len = p->data_cap = 0;
}

static const char *eol_find(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r')
            return s + i;
    return NULL;
}

int gw_sse_feed(struct gw_sse *p, const char *data, size_t len)
{
    int result = 0;
    size_t i = 0;

    while (i < len) {
        if (p->is_after_cr) {
            p->is_after_cr = false;
            if (data[i] == '\n') { /* the LF of a CRLF */
                i++;
                continue;
            }
        }
        const char *piece = data + i;
        const char *eol = eol_find(piece, len - i);
        size_t piece_len = eol ? (size_t)(eol - piece) : len - i;

        if (eol != NULL && p->line_len == 0 && !p->is_skipping) {
            /* The whole line is in this piece: no copy. */
            if (piece_len <= GW_SSE_LINE_MAX) {
                if (line_process(p, piece, piece_len) < 0)
                    result = -1;
            } else {
                p->is_event_skipping = true;
                p->data_len = 0;
            }
        } else if (!p->is_skipping) {
            int rc = buf_append(&p->line, &p->line_len, &p->line_cap, piece, piece_len,
                                GW_SSE_LINE_MAX);
            if (rc != 0) {
                if (rc < 0)
                    result = -1;
                p->is_skipping = true;
                p->line_len = 0;
            } else if (eol != NULL) {
                size_t line_len = p->line_len;
                p->line_len = 0; /* line_process does not touch p->line */
                if (line_process(p, p->line, line_len) < 0)
                    result = -1;
            }
        }
        if (eol != NULL) {
            if (p->is_skipping) {
                p->is_skipping = false;
                p->is_event_skipping = true;
                p->data_len = 0;
            }
            p->is_after_cr = *eol == '\r';
            i += piece_len + 1;
        } else {
            i = len;
        }
    }
    return result;
}

int gw_usage_from_json(enum gw_provider provider, const char *body, size_t len,
                       struct gw_usage *usage)
{
    memset(usage, 0, sizeof(*usage));
    /* Only "usage" is read, where it lies in the text once the scan has
     * validated the whole answer (no document is built); with jansson only
     * when a member name or the usage object uses escapes. */
    struct usage_src src = {.is_text = true};
    json_t *root = NULL;
    switch (gw_json_member(body, len, "usage", &src.text, &src.len)) {
    case GW_JSON_FOUND:
        if (memchr(src.text, '\\', src.len) != NULL) {
            root = json_loadb(src.text, src.len, JSON_DECODE_ANY, NULL);
            src = src_json(root);
        }
        break;
    case GW_JSON_ABSENT:
        src.text = NULL;
        break;
    case GW_JSON_ESCAPED:
        root = json_loadb(body, len, 0, NULL);
        if (!json_is_object(root)) {
            json_decref(root);
            return -1;
        }
        src = src_json(json_object_get(root, "usage"));
        break;
    default:
        return -1;
    }
    if (provider == GW_PROVIDER_OPENAI) {
        (void)usage_read_openai(&src, usage);
    } else if (usage_read_anthropic(&src, usage, true, true)) {
        usage->has_usage = true;
    }
    json_decref(root);
    if (!usage->has_usage) {
        memset(usage, 0, sizeof(*usage));
        return -1;
    }
    return 0;
}

int64_t gw_usage_tokens(const struct gw_usage *u)
{
    int64_t parts[] = {u->input_tokens, u->cached_tokens, u->cache_write_tokens,
                       u->output_tokens};
    int64_t sum = 0;
    if (!u->has_usage)
        return 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i] < 0 || __builtin_add_overflow(sum, parts[i], &sum))
            return 0;
    return sum;
}
