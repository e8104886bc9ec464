/*
 * h1_response.h — an incremental HTTP/1.1 response parser, pure (no I/O, no
 * allocation): what upstream_h1.c reads from a model provider, which is
 * untrusted input.
 *
 * The caller owns the bytes.  It keeps the bytes the parser has not consumed
 * and hands them back, followed by any new ones, on the next call:
 *
 *     for (;;) {
 *         size_t used;
 *         enum gw_h1_response_event ev =
 *             gw_h1_response_parse(&r, buf + pos, len - pos, &used);
 *         pos += used;
 *         if (ev == GW_H1_RESPONSE_MORE)
 *             break;                       // read more, then call again
 *         ...                              // HEAD, BODY, DONE or ERROR
 *     }
 *
 * Each call returns at most one event.  The head (status line and headers)
 * is parsed in place: names are lower-cased and values trimmed in the
 * caller's bytes, which get NUL terminators.  Body pieces point into the
 * bytes given.  1xx interim heads (but 101) are skipped.  The body is framed
 * by Content-Length, chunked (extensions and trailers skipped) or the end of
 * the connection, which the caller reports with gw_h1_response_finish.
 *
 * The caller may stop calling between events (to pause delivery) and resume
 * later from where it stopped; nothing is lost or repeated.
 */
#ifndef PURSER_GW_H1_RESPONSE_H
#define PURSER_GW_H1_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef GW_H1_RESPONSE_TINY_LIMITS
/* A head (status line, headers, blank line) must end within this many
 * bytes: upstream_h1.c's read buffer is this size. */
#define GW_H1_RESPONSE_HEAD_BYTES_MAX (32u << 10)
/* Headers reported; extras (by count or by their name + value bytes) are
 * dropped, not an error.  Equal to upstream.h's RESPONSE_HEADERS limits. */
#define GW_H1_RESPONSE_HEADERS_MAX 64
#define GW_H1_RESPONSE_HEADER_BYTES_MAX (16u << 10)
/* A line of the chunked framing (size, extensions), before its LF. */
#define GW_H1_RESPONSE_CHUNK_LINE_MAX 1024
/* All trailer lines together, 2 bytes per line ending counted. */
#define GW_H1_RESPONSE_TRAILER_BYTES_MAX (16u << 10)
#else
/* The fuzz target's own copy of the parser: the same code with limits its
 * short inputs reach. */
#define GW_H1_RESPONSE_HEAD_BYTES_MAX 300u
#define GW_H1_RESPONSE_HEADERS_MAX 4
#define GW_H1_RESPONSE_HEADER_BYTES_MAX 100u
#define GW_H1_RESPONSE_CHUNK_LINE_MAX 20
#define GW_H1_RESPONSE_TRAILER_BYTES_MAX 60u
#endif

enum gw_h1_response_event {
    GW_H1_RESPONSE_MORE,  /* needs more bytes (or finish); also once ended */
    GW_H1_RESPONSE_HEAD,  /* status, names, values, header_count, is_keep_alive set */
    GW_H1_RESPONSE_BODY,  /* body, body_len set (body_len > 0) */
    GW_H1_RESPONSE_DONE,  /* the response is complete */
    GW_H1_RESPONSE_ERROR, /* error set */
};

enum gw_h1_response_framing {
    GW_H1_RESPONSE_FRAMING_NONE,    /* no body: 1xx, 204, 304, a HEAD request */
    GW_H1_RESPONSE_FRAMING_LENGTH,  /* Content-Length */
    GW_H1_RESPONSE_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
    GW_H1_RESPONSE_FRAMING_EOF,     /* until the connection ends */
};

struct gw_h1_response {
    /* Out, from the HEAD event on. */
    int status;
    const char *names[GW_H1_RESPONSE_HEADERS_MAX];  /* lower-cased, in the caller's bytes */
    const char *values[GW_H1_RESPONSE_HEADERS_MAX]; /* trimmed, in the caller's bytes */
    size_t header_count;
    /* The connection may carry another response after this one: HTTP/1.1
     * without "Connection: close", HTTP/1.0 only with "keep-alive"; never
     * for a body that ends with the connection. */
    bool is_keep_alive;
    enum gw_h1_response_framing framing;
    uint64_t content_length;  /* FRAMING_LENGTH */
    /* Out, with BODY: a piece of the body, into the bytes of that call. */
    const char *body;
    size_t body_len;
    /* Out, with ERROR: what was wrong (a static string). */
    const char *error;

    /* Private. */
    bool is_head_request;
    int state;
    uint64_t remaining;        /* LENGTH body or current chunk: bytes to come */
    size_t trailer_bytes;
    size_t head_scan;          /* where the search for the head's end resumes */
};

/* Prepares r for one response; is_head_request: to a HEAD request (no body
 * whatever the head says). */
void gw_h1_response_init(struct gw_h1_response *r, bool is_head_request);

/* Parses data[0, len) — the bytes left unconsumed by the previous call
 * (pos advanced by its *consumed), then new ones — up to the next event.
 * Sets *consumed: the caller must not hand those bytes back.  Names, values
 * and body point into data: valid while the caller keeps those bytes.
 * After DONE or ERROR the parser is inert (MORE, nothing consumed) until
 * gw_h1_response_init; bytes left after DONE belong to no response. */
enum gw_h1_response_event gw_h1_response_parse(struct gw_h1_response *r, char *data, size_t len,
                                               size_t *consumed);

/* The connection ended (after every byte was parsed): DONE for a body
 * framed by the end of the connection, ERROR when the response was cut
 * short, MORE when it had already ended. */
enum gw_h1_response_event gw_h1_response_finish(struct gw_h1_response *r);

/* Is the response complete, with its DONE still to be returned by the next
 * gw_h1_response_parse (which then needs no bytes)?  Lets the caller finish
 * a response while it holds back body delivery. */
bool gw_h1_response_is_complete(const struct gw_h1_response *r);

#endif
