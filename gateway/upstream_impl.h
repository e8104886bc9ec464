/*
 * upstream_impl.h — the two backends behind gateway/upstream.h.
 *
 *   upstream_h1.c    plain http:// on our own HTTP/1.1 client over libuv
 *                    (keep-alive pool per origin): the fast path, for
 *                    self-hosted model servers, sidecars and the benchmark;
 *   upstream_curl.c  everything else (https://) over libcurl's multi
 *                    interface on the same loop, and plain http:// too when
 *                    the gateway runs with --upstream-client curl.
 *
 * upstream.c validates a request once and picks the backend; a call handle
 * starts with struct gw_upstream_call, which says whose it is.
 */
#ifndef PURSER_GW_UPSTREAM_IMPL_H
#define PURSER_GW_UPSTREAM_IMPL_H

#include "gateway/upstream.h"

enum gw_upstream_backend { GW_UPSTREAM_BACKEND_CURL = 1, GW_UPSTREAM_BACKEND_H1 = 2 };

/* The first member of each backend's call. */
struct gw_upstream_call {
    enum gw_upstream_backend backend;
};

/* "upstream <url up to its query>": what messages quote (never a key). */
#define GW_UPSTREAM_URL_QUOTE_MAX 200
#define GW_UPSTREAM_MESSAGE_MAX 512
void gw_upstream_url_quote(char *out, const char *url); /* out: QUOTE_MAX + 1 bytes */

struct gw_curl;
int gw_curl_init(struct gw_curl **out, uv_loop_t *loop);
void gw_curl_close(struct gw_curl *u);
int gw_curl_call_start(struct gw_curl *u, const struct gw_upstream_request *req,
                       const struct gw_upstream_callbacks *cb, void *arg,
                       struct gw_upstream_call **call);
void gw_curl_call_pause(struct gw_upstream_call *call);
void gw_curl_call_resume(struct gw_upstream_call *call);
void gw_curl_call_cancel(struct gw_upstream_call *call);

struct gw_h1;
int gw_h1_init(struct gw_h1 **out, uv_loop_t *loop);
void gw_h1_close(struct gw_h1 *h);
int gw_h1_call_start(struct gw_h1 *h, const struct gw_upstream_request *req,
                     const struct gw_upstream_callbacks *cb, void *arg,
                     struct gw_upstream_call **call);
void gw_h1_call_pause(struct gw_upstream_call *call);
void gw_h1_call_resume(struct gw_upstream_call *call);
void gw_h1_call_cancel(struct gw_upstream_call *call);

#endif
