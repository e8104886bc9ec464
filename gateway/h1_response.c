/*
 * h1_response.c — the HTTP/1.1 response parser behind upstream_h1.c (see
 * h1_response.h for the calling convention).
 *
 * A state machine over the caller's bytes: the head is searched for its
 * blank line (resuming where the last search stopped, so a head that comes
 * byte by byte costs one pass), then parsed in place; the body is sliced,
 * never copied.  Every limit is checked against a fixed count of bytes from
 * where a head or line starts, never against how much the caller happened
 * to have read, so the same stream gives the same result however it is
 * split.
 */
#include "gateway/h1_response.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

enum h1_state {
    H1_STATE_HEAD,
    H1_STATE_LENGTH,     /* Content-Length body: `remaining` bytes to come */
    H1_STATE_EOF,        /* body until the connection ends */
    H1_STATE_CHUNK_SIZE, /* a chunk's size line */
    H1_STATE_CHUNK_DATA, /* `remaining` bytes of the chunk to come */
    H1_STATE_CHUNK_END,  /* the line ending after a chunk's data */
    H1_STATE_TRAILERS,   /* trailer lines up to the blank one */
    H1_STATE_COMPLETE,   /* DONE is due */
    H1_STATE_ENDED,      /* DONE or ERROR was returned */
};

/* What a step returns when it moved on without an event for the caller. */
#define H1_STEP_ON (-1)

static const char msg_head_too_large[] = "response head too large";
static const char msg_head_malformed[] = "malformed response head";
static const char msg_chunked_malformed[] = "malformed chunked body";
static const char msg_trailers_too_large[] = "trailers too large";
static const char msg_truncated[] = "connection closed before the response was complete";

void gw_h1_response_init(struct gw_h1_response *r, bool is_head_request)
{
    r->status = 0;
    r->header_count = 0;
    r->is_keep_alive = false;
    r->framing = GW_H1_RESPONSE_FRAMING_NONE;
    r->content_length = 0;
    r->body = NULL;
    r->body_len = 0;
    r->error = NULL;
    r->is_head_request = is_head_request;
    r->state = H1_STATE_HEAD;
    r->remaining = 0;
    r->trailer_bytes = 0;
    r->head_scan = 0;
}

static int fail(struct gw_h1_response *r, const char *error)
{
    r->error = error;
    r->state = H1_STATE_ENDED;
    return GW_H1_RESPONSE_ERROR;
}

static char lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* Lower-cases ASCII letters in [p, end), eight bytes at a time: names are
 * most of a head's bytes.  A byte is upper-case when its low seven bits
 * reach 'A' but not past 'Z' and its top bit is clear; those get 0x20. */
static void lower_span(char *p, char *end)
{
    const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
    for (; end - p >= 8; p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t low7 = w & ~high;
        uint64_t is_upper = (low7 + ones * (0x80 - 'A')) ^ (low7 + ones * (0x80 - 'Z' - 1));
        is_upper &= ~w & high;
        if (is_upper != 0) {
            w |= is_upper >> 2;
            memcpy(p, &w, 8);
        }
    }
    for (; p < end; p++)
        *p = lower(*p);
}

/* Does the comma-separated list `v` hold `token` (case-insensitive)? */
static bool list_has(const char *v, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p + strcspn(p, ",");
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, token, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* Finds the end of the head starting at `start` (after its blank line,
 * "\n\n" or "\n\r\n") within its first HEAD_BYTES_MAX bytes; NULL while
 * not there. */
static char *head_end(struct gw_h1_response *r, char *start, size_t avail)
{
    size_t limit = avail < GW_H1_RESPONSE_HEAD_BYTES_MAX ? avail : GW_H1_RESPONSE_HEAD_BYTES_MAX;
    char *end = start + limit;
    char *p = start + (r->head_scan < limit ? r->head_scan : limit);
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (nl > start && nl[-1] == '\n')
            return nl + 1;
        if (nl > start + 1 && nl[-1] == '\r' && nl[-2] == '\n')
            return nl + 1;
        p = nl + 1;
    }
    /* Every LF before `limit` was looked at (a blank line's first bytes
     * are behind its last LF, so a blank line straddling calls is found). */
    r->head_scan = limit;
    return NULL;
}

/* Reads "HTTP/1.x NNN[ reason]" (the line up to eol); sets status and
 * *is_http10.  Returns 0, or -1 when malformed. */
static int status_line_parse(struct gw_h1_response *r, const char *line, const char *eol,
                             bool *is_http10)
{
    if (eol - line < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ')
        return -1;
    *is_http10 = line[7] == '0';
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return -1;
        s = s * 10 + (line[i] - '0');
    }
    if (s < 100 || (eol - line > 12 && line[12] != ' ' && line[12] != '\r'))
        return -1;
    r->status = s;
    return 0;
}

/* A Content-Length value: digits only, within uint64.  Returns 0 or -1. */
static int length_parse(const char *v, uint64_t *out)
{
    uint64_t len = 0;
    if (*v == '\0')
        return -1;
    for (const char *d = v; *d; d++) {
        if (*d < '0' || *d > '9' || len > (UINT64_MAX - 9) / 10)
            return -1;
        len = len * 10 + (uint64_t)(*d - '0');
    }
    *out = len;
    return 0;
}

/* strcmp(line, name) == 0 for the name in line[0, len] (NUL-terminated at
 * len, perhaps earlier): most names are none of the few we read, and their
 * length tells at once. */
static bool name_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len >= n && line[n] == '\0' && memcmp(line, name, n) == 0;
}

/* Parses the head in [start, end) in place (names lower-cased, values
 * trimmed, both NUL-terminated); sets status, headers, keep-alive and
 * framing.  Returns 0, or -1 when malformed. */
static int head_parse(struct gw_h1_response *r, char *start, char *end)
{
    char *line = start, *eol = memchr(line, '\n', (size_t)(end - line));
    bool is_http10 = false;
    if (eol == NULL || status_line_parse(r, line, eol, &is_http10) != 0)
        return -1;

    bool has_length = false, is_chunked = false, has_close = false, has_keep_alive = false;
    uint64_t length = 0;
    size_t n = 0, bytes = 0;
    for (line = eol + 1; line < end; line = eol + 1) {
        eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            return -1;
        char *le = eol;
        if (le > line && le[-1] == '\r')
            le--;
        if (le == line)
            break; /* the blank line */
        char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
            continue; /* not a header, or an obsolete folded continuation */
        char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        lower_span(line, colon);
        *colon = '\0';
        *ve = '\0';
        size_t name_len = (size_t)(colon - line), value_len = (size_t)(ve - v);
        if (name_is(line, name_len, "content-length")) {
            uint64_t len = 0;
            if (length_parse(v, &len) != 0)
                return -1;
            if (has_length && len != length)
                return -1; /* two lengths: which body is it? */
            has_length = true;
            length = len;
        } else if (name_is(line, name_len, "transfer-encoding")) {
            is_chunked = list_has(v, "chunked");
            if (!is_chunked && value_len > 0 && !list_has(v, "identity"))
                return -1; /* a coding we cannot frame */
        } else if (name_is(line, name_len, "connection")) {
            has_close |= list_has(v, "close");
            has_keep_alive |= list_has(v, "keep-alive");
        }
        bytes += name_len + value_len + 2;
        if (n < GW_H1_RESPONSE_HEADERS_MAX && bytes <= GW_H1_RESPONSE_HEADER_BYTES_MAX) {
            r->names[n] = line;
            r->values[n] = v;
            n++;
        }
    }
    r->header_count = n;
    r->is_keep_alive = is_http10 ? has_keep_alive && !has_close : !has_close;
    r->content_length = 0;
    bool is_bodiless = r->status < 200 || r->status == 204 || r->status == 304 ||
                       r->is_head_request;
    if (is_bodiless) {
        r->framing = GW_H1_RESPONSE_FRAMING_NONE;
    } else if (is_chunked) {
        r->framing = GW_H1_RESPONSE_FRAMING_CHUNKED;
    } else if (has_length) {
        r->framing = GW_H1_RESPONSE_FRAMING_LENGTH;
        r->content_length = length;
    } else {
        r->framing = GW_H1_RESPONSE_FRAMING_EOF;
        r->is_keep_alive = false;
    }
    return 0;
}

/* The state that follows a final head. */
static int state_after_head(const struct gw_h1_response *r)
{
    switch (r->framing) {
    case GW_H1_RESPONSE_FRAMING_LENGTH:
        return r->content_length > 0 ? H1_STATE_LENGTH : H1_STATE_COMPLETE;
    case GW_H1_RESPONSE_FRAMING_CHUNKED:
        return H1_STATE_CHUNK_SIZE;
    case GW_H1_RESPONSE_FRAMING_EOF:
        return H1_STATE_EOF;
    case GW_H1_RESPONSE_FRAMING_NONE:
        break;
    }
    return H1_STATE_COMPLETE;
}

static int step_head(struct gw_h1_response *r, char *data, size_t len, size_t *pos)
{
    char *start = data + *pos;
    size_t avail = len - *pos;
    char *end = head_end(r, start, avail);
    if (end == NULL)
        return avail >= GW_H1_RESPONSE_HEAD_BYTES_MAX ? fail(r, msg_head_too_large)
                                                     : GW_H1_RESPONSE_MORE;
    if (head_parse(r, start, end) != 0)
        return fail(r, msg_head_malformed);
    *pos = (size_t)(end - data);
    r->head_scan = 0;
    if (r->status < 200 && r->status != 101)
        return H1_STEP_ON; /* interim: the real head follows */
    r->state = state_after_head(r);
    r->remaining = r->content_length;
    return GW_H1_RESPONSE_HEAD;
}

/* Hands up to `max` (> 0) of the bytes at *pos to the caller. */
static int deliver(struct gw_h1_response *r, char *data, size_t len, size_t *pos, uint64_t max)
{
    size_t n = len - *pos;
    if (n == 0)
        return GW_H1_RESPONSE_MORE;
    if (n > max)
        n = (size_t)max;
    r->body = data + *pos;
    r->body_len = n;
    *pos += n;
    return GW_H1_RESPONSE_BODY;
}

/* Delivers bytes of a Content-Length body or of a chunk; when the last has
 * gone, moves to `next`. */
static int step_counted(struct gw_h1_response *r, char *data, size_t len, size_t *pos, int next)
{
    assert(r->remaining > 0);
    int ev = deliver(r, data, len, pos, r->remaining);
    if (ev == GW_H1_RESPONSE_BODY) {
        r->remaining -= r->body_len;
        if (r->remaining == 0)
            r->state = next;
    }
    return ev;
}

/* The next line of the chunked framing at *pos: returns 1 and sets *line
 * and *line_len (without CR LF), 0 while incomplete, -1 when longer than
 * CHUNK_LINE_MAX. */
static int chunk_line(char *data, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    const char *p = data + *pos;
    size_t avail = len - *pos;
    size_t scan = avail <= GW_H1_RESPONSE_CHUNK_LINE_MAX ? avail : GW_H1_RESPONSE_CHUNK_LINE_MAX + 1;
    const char *nl = memchr(p, '\n', scan);
    if (nl == NULL)
        return avail > GW_H1_RESPONSE_CHUNK_LINE_MAX ? -1 : 0;
    *pos += (size_t)(nl + 1 - p);
    size_t n = (size_t)(nl - p);
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *line = p;
    *line_len = n;
    return 1;
}

static int hex_digit(char ch)
{
    ch = lower(ch);
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* "<hex size>[;extensions]" (or whitespace before them). */
static int step_chunk_size(struct gw_h1_response *r, const char *line, size_t len)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < len; i++) {
        int d = hex_digit(line[i]);
        if (d < 0)
            break;
        if (size > (UINT64_MAX >> 4))
            return fail(r, msg_chunked_malformed);
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
        return fail(r, msg_chunked_malformed);
    r->remaining = size;
    r->state = size == 0 ? H1_STATE_TRAILERS : H1_STATE_CHUNK_DATA;
    return H1_STEP_ON;
}

static int step_trailer(struct gw_h1_response *r, size_t len)
{
    r->trailer_bytes += len + 2;
    if (r->trailer_bytes > GW_H1_RESPONSE_TRAILER_BYTES_MAX)
        return fail(r, msg_trailers_too_large);
    if (len > 0)
        return H1_STEP_ON;
    r->state = H1_STATE_ENDED;
    return GW_H1_RESPONSE_DONE;
}

/* One step of the chunked framing that reads a line. */
static int step_chunk_line(struct gw_h1_response *r, char *data, size_t len, size_t *pos)
{
    const char *line = NULL;
    size_t line_len = 0;
    int rc = chunk_line(data, len, pos, &line, &line_len);
    if (rc < 0)
        return fail(r, msg_chunked_malformed);
    if (rc == 0)
        return GW_H1_RESPONSE_MORE;
    switch (r->state) {
    case H1_STATE_CHUNK_SIZE:
        return step_chunk_size(r, line, line_len);
    case H1_STATE_CHUNK_END:
        if (line_len != 0)
            return fail(r, msg_chunked_malformed);
        r->state = H1_STATE_CHUNK_SIZE;
        return H1_STEP_ON;
    default:
        assert(r->state == H1_STATE_TRAILERS);
        return step_trailer(r, line_len);
    }
}

static int step(struct gw_h1_response *r, char *data, size_t len, size_t *pos)
{
    switch (r->state) {
    case H1_STATE_HEAD:
        return step_head(r, data, len, pos);
    case H1_STATE_LENGTH:
        return step_counted(r, data, len, pos, H1_STATE_COMPLETE);
    case H1_STATE_EOF:
        return deliver(r, data, len, pos, UINT64_MAX);
    case H1_STATE_CHUNK_DATA:
        return step_counted(r, data, len, pos, H1_STATE_CHUNK_END);
    case H1_STATE_CHUNK_SIZE:
    case H1_STATE_CHUNK_END:
    case H1_STATE_TRAILERS:
        return step_chunk_line(r, data, len, pos);
    case H1_STATE_COMPLETE:
        r->state = H1_STATE_ENDED;
        return GW_H1_RESPONSE_DONE;
    default:
        return GW_H1_RESPONSE_MORE;
    }
}

enum gw_h1_response_event gw_h1_response_parse(struct gw_h1_response *r, char *data, size_t len,
                                               size_t *consumed)
{
    size_t pos = 0;
    int ev;
    do
        ev = step(r, data, len, &pos);
    while (ev == H1_STEP_ON);
    assert(pos <= len);
    *consumed = pos;
    return (enum gw_h1_response_event)ev;
}

enum gw_h1_response_event gw_h1_response_finish(struct gw_h1_response *r)
{
    switch (r->state) {
    case H1_STATE_ENDED:
        return GW_H1_RESPONSE_MORE;
    case H1_STATE_EOF:
    case H1_STATE_COMPLETE:
        r->state = H1_STATE_ENDED;
        return GW_H1_RESPONSE_DONE;
    default:
        return (enum gw_h1_response_event)fail(r, msg_truncated);
    }
}

bool gw_h1_response_is_complete(const struct gw_h1_response *r)
{
    return r->state == H1_STATE_COMPLETE;
}
