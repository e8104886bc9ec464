/*
 * h1_response.c — how fast gateway/h1_response.c parses what upstreams
 * send: a non-streamed chat completion (a provider-like head of 12 headers
 * and a 600-byte JSON body, framed by Content-Length) and a streamed one
 * (chunked server-sent events, 64 chunks).  Each round copies the response
 * into a read buffer first, as the socket read does, and parses it as
 * upstream_h1.c does; the copy is timed on its own and reported apart.
 *
 * usage: build/tests/bench/h1_response [rounds [json|sse]]
 * (default 1000000 rounds of json, an eighth of that of sse)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/h1_response.h"

#define BENCH_STREAM_CHUNKS 64

static char response_json[4096], response_sse[16384];
static size_t response_json_len, response_sse_len;
static char buf[GW_H1_RESPONSE_HEAD_BYTES_MAX];
static volatile size_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t head_put(char *s, size_t cap, const char *framing)
{
    return (size_t)snprintf(s, cap,
                            "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 12:00:00 GMT\r\n"
                            "Content-Type: application/json\r\n%s"
                            "Connection: keep-alive\r\naccess-control-expose-headers: X-Request-ID\r\n"
                            "openai-organization: org-abc\r\nopenai-processing-ms: 312\r\n"
                            "openai-version: 2020-10-01\r\nx-ratelimit-limit-requests: 10000\r\n"
                            "x-ratelimit-remaining-requests: 9999\r\nx-request-id: req_0123456789abcdef\r\n"
                            "cf-cache-status: DYNAMIC\r\nServer: cloudflare\r\n\r\n",
                            framing);
}

static void responses_build(void)
{
    char body[600];
    memset(body, 'x', sizeof body);
    memcpy(body, "{\"id\":\"chatcmpl-1\",\"content\":\"", 30);
    memcpy(body + sizeof body - 2, "\"}", 2);
    char framing[64];
    snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", sizeof body);
    response_json_len = head_put(response_json, sizeof response_json, framing);
    memcpy(response_json + response_json_len, body, sizeof body);
    response_json_len += sizeof body;

    size_t n = head_put(response_sse, sizeof response_sse, "Transfer-Encoding: chunked\r\n");
    for (int i = 0; i < BENCH_STREAM_CHUNKS; i++) {
        char event[160];
        int e = snprintf(event, sizeof event,
                         "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":"
                         "\"token %d\"}}]}\n\n", i);
        n += (size_t)snprintf(response_sse + n, sizeof response_sse - n, "%x\r\n%s\r\n", e, event);
    }
    n += (size_t)snprintf(response_sse + n, sizeof response_sse - n, "0\r\n\r\n");
    response_sse_len = n;
}

/* Parses buf[0, len) to the end; returns the body bytes. */
static size_t parse(size_t len)
{
    struct gw_h1_response r;
    gw_h1_response_init(&r, false);
    size_t pos = 0, body = 0;
    for (;;) {
        size_t used = 0;
        enum gw_h1_response_event ev = gw_h1_response_parse(&r, buf + pos, len - pos, &used);
        pos += used;
        if (ev == GW_H1_RESPONSE_BODY)
            body += r.body_len;
        else if (ev == GW_H1_RESPONSE_HEAD)
            body += r.header_count;
        else if (ev != GW_H1_RESPONSE_DONE)
            abort(); /* the samples are complete and valid */
        if (ev == GW_H1_RESPONSE_DONE)
            return body;
    }
}

static void bench(const char *name, const char *response, size_t len, long rounds)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < rounds; i++) {
        memcpy(buf, response, len);
        sink += (size_t)buf[i % (long)len];
    }
    uint64_t t1 = now_ns();
    for (long i = 0; i < rounds; i++) {
        memcpy(buf, response, len);
        sink += parse(len);
    }
    uint64_t t2 = now_ns();
    double copy_ns = (double)(t1 - t0) / (double)rounds;
    double parse_ns = (double)(t2 - t1) / (double)rounds - copy_ns;
    printf("%-10s %6zu bytes  parse %8.1f ns/response  %7.0f MB/s  (copy alone %.1f ns)\n", name,
           len, parse_ns, (double)len / parse_ns * 1e3, copy_ns);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    if (rounds <= 0)
        rounds = 1;
    const char *only = argc > 2 ? argv[2] : "";
    responses_build();
    if (strcmp(only, "sse") != 0)
        bench("json", response_json, response_json_len, rounds);
    if (strcmp(only, "json") != 0)
        bench("sse", response_sse, response_sse_len, *only ? rounds : rounds / 8 + 1);
    return 0;
}
