/*
 * upstream.c — one front for the two upstream backends (upstream_impl.h):
 * checks a request once, then hands plain http:// to the native HTTP/1.1
 * client and everything else to libcurl.
 */
#include "gateway/upstream_impl.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GW_UPSTREAM_METHOD_MAX 16

struct gw_upstream {
    struct gw_curl *curl;
    struct gw_h1 *h1; /* NULL: http:// goes through curl too */
};

void gw_upstream_url_quote(char *out, const char *url)
{
    size_t n = strcspn(url, "?#");
    if (n > GW_UPSTREAM_URL_QUOTE_MAX)
        n = GW_UPSTREAM_URL_QUOTE_MAX;
    memcpy(out, url, n);
    out[n] = '\0';
}

static bool line_is_clean(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static bool method_is_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > GW_UPSTREAM_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

/* "Name: value": a token before the colon. */
static bool header_line_is_valid(const char *line)
{
    if (!line_is_clean(line))
        return false;
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return false;
    for (const char *p = line; p < colon; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;\\\"/[]?={}", *p))
            return false;
    return true;
}

static bool request_is_valid(const struct gw_upstream_request *req,
                             const struct gw_upstream_callbacks *cb)
{
    if (req == NULL || cb == NULL || !cb->on_head || !cb->on_body || !cb->on_done)
        return false;
    if (req->url == NULL || !line_is_clean(req->url))
        return false;
    if (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0)
        return false;
    if (req->method && !method_is_valid(req->method))
        return false;
    if (req->header_count > GW_UPSTREAM_HEADERS_MAX ||
        (req->header_count > 0 && req->header_lines == NULL))
        return false;
    for (size_t i = 0; i < req->header_count; i++)
        if (req->header_lines[i] == NULL || !header_line_is_valid(req->header_lines[i]))
            return false;
    if (req->body == NULL && req->body_len > 0)
        return false;
    return true;
}

int gw_upstream_init(struct gw_upstream **out, uv_loop_t *loop, enum gw_upstream_client client)
{
    *out = NULL;
    struct gw_upstream *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return GW_UPSTREAM_EFAILED;
    int rc = gw_curl_init(&u->curl, loop);
    if (rc == 0 && client == GW_UPSTREAM_CLIENT_NATIVE)
        rc = gw_h1_init(&u->h1, loop);
    if (rc != 0) {
        if (u->curl)
            gw_curl_close(u->curl);
        free(u);
        return rc;
    }
    *out = u;
    return 0;
}

void gw_upstream_close(struct gw_upstream *u)
{
    if (u->h1)
        gw_h1_close(u->h1);
    gw_curl_close(u->curl);
    free(u); /* the backends free themselves once their handles are closed */
}

int gw_upstream_call_start(struct gw_upstream *u, const struct gw_upstream_request *req,
                           const struct gw_upstream_callbacks *cb, void *arg,
                           struct gw_upstream_call **call)
{
    *call = NULL;
    if (!request_is_valid(req, cb))
        return GW_UPSTREAM_EINVAL;
    if (u->h1 && strncmp(req->url, "http://", 7) == 0)
        return gw_h1_call_start(u->h1, req, cb, arg, call);
    return gw_curl_call_start(u->curl, req, cb, arg, call);
}

void gw_upstream_call_pause(struct gw_upstream_call *call)
{
    if (call->backend == GW_UPSTREAM_BACKEND_H1)
        gw_h1_call_pause(call);
    else
        gw_curl_call_pause(call);
}

void gw_upstream_call_resume(struct gw_upstream_call *call)
{
    if (call->backend == GW_UPSTREAM_BACKEND_H1)
        gw_h1_call_resume(call);
    else
        gw_curl_call_resume(call);
}

void gw_upstream_call_cancel(struct gw_upstream_call *call)
{
    if (call->backend == GW_UPSTREAM_BACKEND_H1)
        gw_h1_call_cancel(call);
    else
        gw_curl_call_cancel(call);
}
