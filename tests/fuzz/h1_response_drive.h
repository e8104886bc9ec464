/*
 * h1_response_drive.h — feeds a response stream to gateway/h1_response.c in
 * pieces, as upstream_h1.c does from its read buffer, and records what the
 * parser reported; the oracle of the unit tests (test_h1_response.c) and of
 * the fuzz target (fuzz_h1_response.c).
 *
 * A piece generator chooses how many new bytes each round brings (0: a
 * round with no new bytes, as when a paused caller resumes); after each
 * piece the parser is called until it asks for more.  The drive checks the
 * promises of h1_response.h as it goes and names the first one broken in
 * `violation`: consumed bytes within what was handed over, body pieces and
 * header strings inside the consumed bytes (names the stream's bytes
 * lower-cased, values as they were), one head before any body, DONE
 * or ERROR at most once and nothing after it, never more body than was fed
 * nor than Content-Length, and (with is_exact_windows) unconsumed bytes
 * left untouched.  With is_exact_windows each call also gets a fresh copy of
 * exactly the bytes it may read, so AddressSanitizer catches a read past
 * them.
 */
#ifndef PURSER_TEST_H1_RESPONSE_DRIVE_H
#define PURSER_TEST_H1_RESPONSE_DRIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/h1_response.h"

#define H1_DRIVE_HEADERS_TEXT_MAX (24u << 10)
#define H1_DRIVE_BODY_KEPT_MAX (16u << 10)

struct h1_drive_result {
    int status;
    size_t header_count;
    bool is_keep_alive;
    enum gw_h1_response_framing framing;
    uint64_t content_length;
    char headers[H1_DRIVE_HEADERS_TEXT_MAX]; /* "name: value\n" per header (a name has no colon) */
    size_t headers_len;
    char body[H1_DRIVE_BODY_KEPT_MAX];      /* the body's first bytes */
    uint64_t body_len;                      /* all of it */
    uint64_t body_hash;                     /* FNV-1a of all of it */
    size_t body_pieces;
    int head_count, done_count, error_count;
    enum gw_h1_response_event end;          /* DONE, ERROR, or MORE: unfinished */
    const char *error;
    size_t consumed;                        /* of the stream, when it ended */
    const char *violation;                  /* a broken promise, or NULL */
};

/* How many new bytes the next piece brings, at most `left`. */
typedef size_t (*h1_drive_piece_fn)(void *arg, size_t left);

static inline size_t h1_drive_whole(void *arg, size_t left)
{
    (void)arg;
    return left;
}

static inline size_t h1_drive_byte(void *arg, size_t left)
{
    (void)arg;
    return left > 0 ? 1 : 0;
}

/* Pieces of 0 .. max_piece bytes from a linear congruential generator. */
struct h1_drive_random {
    uint32_t seed;
    size_t max_piece;
};

static inline size_t h1_drive_random(void *arg, size_t left)
{
    struct h1_drive_random *g = arg;
    g->seed = g->seed * 1103515245u + 12345u;
    size_t n = (g->seed >> 16) % (g->max_piece + 1);
    return n < left ? n : left;
}

static inline bool h1_drive_within(const char *p, size_t len, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && len <= (size_t)(hi - p);
}

static inline void h1_drive_text(struct h1_drive_result *out, const char *s)
{
    size_t n = strlen(s);
    if (n > H1_DRIVE_HEADERS_TEXT_MAX - out->headers_len)
        n = H1_DRIVE_HEADERS_TEXT_MAX - out->headers_len;
    memcpy(out->headers + out->headers_len, s, n);
    out->headers_len += n;
}

/* Is the string at p the original bytes at orig, lower-cased when a name? */
static inline bool h1_drive_is_original(const char *p, const char *orig, bool is_name)
{
    for (; *p; p++, orig++) {
        char want = *orig;
        if (is_name && want >= 'A' && want <= 'Z')
            want = (char)(want - 'A' + 'a');
        if (*p != want)
            return false;
    }
    return true;
}

/* Records the head; the strings must lie in [lo, hi), end there, and be
 * the stream's bytes (orig: the stream at lo) edited only as promised. */
static inline const char *h1_drive_head(struct h1_drive_result *out,
                                        const struct gw_h1_response *r, const char *lo,
                                        const char *hi, const char *orig)
{
    if (out->head_count++ > 0)
        return "a second head";
    if (out->body_pieces > 0)
        return "a head after the body";
    if (r->header_count > GW_H1_RESPONSE_HEADERS_MAX)
        return "more headers than GW_H1_RESPONSE_HEADERS_MAX";
    out->status = r->status;
    out->header_count = r->header_count;
    out->is_keep_alive = r->is_keep_alive;
    out->framing = r->framing;
    out->content_length = r->content_length;
    if (r->status < 100 || r->status > 999)
        return "a status outside 100..999";
    if (r->framing == GW_H1_RESPONSE_FRAMING_EOF && r->is_keep_alive)
        return "a body until EOF on a kept-alive connection";
    for (size_t i = 0; i < r->header_count; i++) {
        const char *strs[2] = {r->names[i], r->values[i]};
        for (int j = 0; j < 2; j++) {
            if (strs[j] < lo || strs[j] >= hi || memchr(strs[j], '\0', (size_t)(hi - strs[j])) == NULL)
                return "a header string outside the head";
            if (!h1_drive_is_original(strs[j], orig + (strs[j] - lo), j == 0))
                return "a header string is not the stream's bytes";
            h1_drive_text(out, strs[j]);
            h1_drive_text(out, j == 0 ? ": " : "\n");
        }
    }
    return NULL;
}

static inline const char *h1_drive_body(struct h1_drive_result *out,
                                        const struct gw_h1_response *r, const char *lo,
                                        const char *hi, uint64_t fed)
{
    if (out->head_count == 0)
        return "a body before the head";
    if (r->body_len == 0 || !h1_drive_within(r->body, r->body_len, lo, hi))
        return "a body piece outside the consumed bytes";
    for (size_t i = 0; i < r->body_len; i++) {
        if (out->body_len + i < H1_DRIVE_BODY_KEPT_MAX)
            out->body[out->body_len + i] = r->body[i];
        out->body_hash = (out->body_hash ^ (uint8_t)r->body[i]) * 1099511628211u;
    }
    out->body_len += r->body_len;
    out->body_pieces++;
    if (out->body_len > fed)
        return "more body than bytes fed";
    if (out->framing == GW_H1_RESPONSE_FRAMING_NONE)
        return "a body for a bodiless response";
    if (out->framing == GW_H1_RESPONSE_FRAMING_LENGTH && out->body_len > out->content_length)
        return "more body than Content-Length";
    return NULL;
}

static inline const char *h1_drive_end(struct h1_drive_result *out,
                                       const struct gw_h1_response *r,
                                       enum gw_h1_response_event ev, size_t consumed)
{
    if (out->done_count + out->error_count > 0)
        return "a second DONE or ERROR";
    out->end = ev;
    out->consumed = consumed;
    if (ev == GW_H1_RESPONSE_ERROR) {
        out->error_count++;
        out->error = r->error;
        return r->error == NULL ? "ERROR without a message" : NULL;
    }
    out->done_count++;
    if (out->head_count == 0)
        return "DONE without a head";
    if (out->framing == GW_H1_RESPONSE_FRAMING_LENGTH && out->body_len != out->content_length)
        return "DONE with a body other than Content-Length";
    return NULL;
}

/* One parser call on stream[*pos, fed) (buf holds the stream as fed and
 * parsed in place); records the event.  Returns it, or -1 after a
 * violation. */
static inline int h1_drive_call(struct gw_h1_response *r, struct h1_drive_result *out,
                                const char *stream, char *buf, size_t *pos, size_t fed,
                                bool is_exact_windows)
{
    size_t len = fed - *pos;
    char *window = buf + *pos;
    if (is_exact_windows) {
        window = malloc(len);
        if (window == NULL && len > 0)
            abort();
        if (len > 0)
            memcpy(window, buf + *pos, len);
    }
    size_t used = (size_t)-1;
    enum gw_h1_response_event ev = gw_h1_response_parse(r, window, len, &used);
    bool is_ended = out->done_count + out->error_count > 0;
    const char *v = NULL;
    if (used > len)
        v = "consumed more than it was given";
    else if (is_ended && (ev != GW_H1_RESPONSE_MORE || used != 0))
        v = "not inert after DONE or ERROR";
    else if (ev == GW_H1_RESPONSE_HEAD)
        v = h1_drive_head(out, r, window, window + used, stream + *pos);
    else if (ev == GW_H1_RESPONSE_BODY)
        v = h1_drive_body(out, r, window, window + used, fed);
    else if (ev == GW_H1_RESPONSE_DONE || ev == GW_H1_RESPONSE_ERROR)
        v = h1_drive_end(out, r, ev, *pos + used);
    /* A head found malformed may be left half-edited: it is never read
     * again.  Only with exact windows: byte by byte, this is quadratic. */
    if (v == NULL && is_exact_windows && out->error_count == 0 && used <= len &&
        memcmp(window + used, stream + *pos + used, len - used) != 0)
        v = "unconsumed bytes changed";
    if (is_exact_windows) {
        if (v == NULL && used <= len)
            memcpy(buf + *pos, window, used); /* keep the in-place edits */
        free(window);
    }
    if (v != NULL) {
        out->violation = v;
        return -1;
    }
    *pos += used;
    return (int)ev;
}

/* Feeds stream[0, len) in the generator's pieces, then (with is_eof) ends
 * the connection.  Fills *out; out->violation says what broke, if any. */
static inline void h1_drive(const char *stream, size_t len, bool is_head_request, bool is_eof,
                            h1_drive_piece_fn next_piece, void *piece_arg, bool is_exact_windows,
                            struct h1_drive_result *out)
{
    memset(out, 0, sizeof(*out));
    out->end = GW_H1_RESPONSE_MORE;
    out->body_hash = 14695981039346656037u;
    char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        abort();
    struct gw_h1_response r;
    gw_h1_response_init(&r, is_head_request);
    size_t pos = 0, fed = 0;
    bool was_empty = false;
    while (fed < len || !was_empty) {
        size_t n = next_piece(piece_arg, len - fed);
        if (n == 0 && was_empty && fed < len)
            n = 1; /* two empty rounds in a row would make no progress */
        was_empty = n == 0;
        memcpy(buf + fed, stream + fed, n);
        fed += n;
        int ev;
        while ((ev = h1_drive_call(&r, out, stream, buf, &pos, fed, is_exact_windows)) !=
               GW_H1_RESPONSE_MORE)
            if (ev < 0)
                goto done;
    }
    if (is_eof) {
        bool is_ended = out->done_count + out->error_count > 0;
        enum gw_h1_response_event ev = gw_h1_response_finish(&r);
        if (is_ended && ev != GW_H1_RESPONSE_MORE)
            out->violation = "finish not inert after DONE or ERROR";
        else if (!is_ended && ev == GW_H1_RESPONSE_MORE)
            out->violation = "finish left the response unfinished";
        else if (!is_ended)
            out->violation = h1_drive_end(out, &r, ev, pos);
    }
done:
    if (out->done_count + out->error_count == 0)
        out->consumed = pos;
    free(buf);
}

/* Do two drives of one stream agree on everything the parser reported? */
static inline bool h1_drive_same(const struct h1_drive_result *a, const struct h1_drive_result *b)
{
    size_t kept = a->body_len < H1_DRIVE_BODY_KEPT_MAX ? (size_t)a->body_len : H1_DRIVE_BODY_KEPT_MAX;
    return a->status == b->status && a->header_count == b->header_count &&
           a->is_keep_alive == b->is_keep_alive && a->framing == b->framing &&
           a->content_length == b->content_length && a->headers_len == b->headers_len &&
           memcmp(a->headers, b->headers, a->headers_len) == 0 && a->body_len == b->body_len &&
           a->body_hash == b->body_hash && memcmp(a->body, b->body, kept) == 0 &&
           a->head_count == b->head_count && a->done_count == b->done_count &&
           a->error_count == b->error_count && a->end == b->end &&
           (a->error == b->error || (a->error && b->error && strcmp(a->error, b->error) == 0)) &&
           a->consumed == b->consumed;
}

#endif
