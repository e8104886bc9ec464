/*
 * upstream.h — HTTP(S) calls to model providers, driven by the gateway's
 * libuv loop: plain http:// on a native HTTP/1.1 client (upstream_h1.c),
 * https:// with libcurl's multi interface (upstream_curl.c); see
 * upstream_impl.h.  Connections are reused across calls.
 * Responses are delivered as they arrive (status and headers once, then body
 * chunks), so streaming passes through event by event; the caller can pause
 * delivery (backpressure) and cancel.
 */
#ifndef PURSER_GW_UPSTREAM_H
#define PURSER_GW_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define GW_UPSTREAM_HEADERS_MAX 16

struct gw_upstream;      /* one per gateway (owns the curl multi handle) */
struct gw_upstream_call; /* one request in flight */

struct gw_upstream_callbacks {
    /* Status line and headers are complete (called once, before any body;
     * not at all when the call fails first).  Names are lower-cased, values
     * trimmed; at most GW_UPSTREAM_RESPONSE_HEADERS_MAX of them (extras and
     * 1xx interim responses are dropped).  Hop-by-hop headers are included
     * as received although the body is already de-chunked: do not copy
     * transfer-encoding, connection or content-length to the client blindly.
     * Header names/values are NUL-terminated, valid during the call. */
    void (*on_head)(void *arg, int status, const char *const *names,
                    const char *const *values, size_t count);
    /* A piece of the body, in order. */
    void (*on_body)(void *arg, const char *data, size_t len);
    /* The call ended: error 0 after a complete response; otherwise a negative
     * code (GW_UPSTREAM_ETIMEOUT, GW_UPSTREAM_ECONNECT, GW_UPSTREAM_EFAILED,
     * GW_UPSTREAM_ECANCELED) and a message.  Called exactly once, never from
     * inside gw_upstream_call_start; the call is freed after it returns. */
    void (*on_done)(void *arg, int error, const char *message);
};

#define GW_UPSTREAM_ETIMEOUT (-1)
#define GW_UPSTREAM_ECONNECT (-2)
#define GW_UPSTREAM_EFAILED (-3)
#define GW_UPSTREAM_ECANCELED (-4)
#define GW_UPSTREAM_EINVAL (-5) /* gw_upstream_call_start: bad request fields */

#define GW_UPSTREAM_RESPONSE_HEADERS_MAX 64
#define GW_UPSTREAM_RESPONSE_HEADER_BYTES_MAX (16u << 10)

struct gw_upstream_request {
    const char *url;          /* full URL, http:// or https:// */
    const char *method;       /* "POST" */
    const char *const *header_lines; /* "Name: value" lines, NUL-terminated */
    size_t header_count;      /* <= GW_UPSTREAM_HEADERS_MAX */
    const char *body;         /* copied by gw_upstream_call_start */
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t total_timeout_ms; /* whole call, streaming included */
};

enum gw_upstream_client {
    GW_UPSTREAM_CLIENT_NATIVE = 0, /* http:// native, https:// libcurl */
    GW_UPSTREAM_CLIENT_CURL = 1,   /* everything through libcurl */
};

int gw_upstream_init(struct gw_upstream **out, uv_loop_t *loop, enum gw_upstream_client client);
/* Cancels every call (each gets on_done ECANCELED), then frees once the
 * loop has run the handles' close callbacks.  Not from inside on_head or
 * on_body. */
void gw_upstream_close(struct gw_upstream *u);

/* Start a call.  Returns 0 and sets *call, or a negative code (no on_done
 * then).  *call is valid until its on_done returns; pause, resume and cancel
 * after that are use-after-free, from inside on_done they are no-ops. */
int gw_upstream_call_start(struct gw_upstream *u, const struct gw_upstream_request *req,
                           const struct gw_upstream_callbacks *cb, void *arg,
                           struct gw_upstream_call **call);
/* Stop delivering body chunks until resumed (the client is slow).  Safe
 * from inside on_body; resume takes effect from the loop (on_body is never
 * called from inside gw_upstream_call_resume). */
void gw_upstream_call_pause(struct gw_upstream_call *call);
void gw_upstream_call_resume(struct gw_upstream_call *call);
/* Cancel: on_done(ECANCELED) follows (not from inside this function). */
void gw_upstream_call_cancel(struct gw_upstream_call *call);

#endif
