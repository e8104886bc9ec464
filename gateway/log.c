/*
 * log.c — the gateway's JSON log lines on stderr, buffered per loop turn.
 *
 * One line per call was one write(2) per call on unbuffered stderr, with
 * printf's float formatting: a visible share of the gateway's CPU.  Lines
 * are now appended to a buffer that a uv_check handle writes out at the end
 * of every loop turn that produced any (and at once past GW_LOG_FLUSH_BYTES),
 * plus a flush at exit.  So a crash loses at most the lines of the turn in
 * progress, and the lines stay in the order they were produced.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gateway.h"

#define GW_LOG_FLUSH_BYTES (64u << 10)
#define GW_LOG_LINE_MAX 2048 /* a formatted line (gw_log_printf) */

static struct {
    struct proto_buf buf;
    uv_check_t check;
    bool is_started; /* the check handle exists */
} gw_log;

void gw_log_flush(void)
{
    size_t off = 0;
    while (off < gw_log.buf.len) {
        ssize_t n = write(STDERR_FILENO, gw_log.buf.data + off, gw_log.buf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* stderr is gone: the lines are dropped, never the calls */
        off += (size_t)n;
    }
    gw_log.buf.len = 0;
    if (gw_log.is_started)
        uv_check_stop(&gw_log.check);
}

static void gw_log_check_cb(uv_check_t *h)
{
    (void)h;
    gw_log_flush();
}

void gw_log_init(uv_loop_t *loop)
{
    proto_buf_init(&gw_log.buf);
    uv_check_init(loop, &gw_log.check);
    uv_unref((uv_handle_t *)&gw_log.check);
    gw_log.is_started = true;
    atexit(gw_log_flush);
}

/* The line is complete in the buffer: write it out at the end of the turn. */
static void gw_log_line_done(void)
{
    if (!gw_log.is_started || gw_log.buf.len >= GW_LOG_FLUSH_BYTES)
        gw_log_flush();
    else
        uv_check_start(&gw_log.check, gw_log_check_cb);
}

void gw_log_printf(const char *fmt, ...)
{
    char line[GW_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n'; /* cut, still one line */
    }
    proto_buf_append(&gw_log.buf, line, (size_t)n);
    gw_log_line_done();
}

/* ---- the per-call line, without printf ---- */

static void gw_log_raw(const char *s, size_t n)
{
    proto_buf_append(&gw_log.buf, s, n);
}

#define GW_LOG_LIT(s) gw_log_raw(s, sizeof(s) - 1)

/* A JSON string's contents: quotes, backslashes and control bytes escaped. */
static void gw_log_str(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        gw_log_raw(run, (size_t)(s - run));
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        if (ch == '"' || ch == '\\') {
            esc[1] = (char)ch;
            gw_log_raw(esc, 2);
        } else {
            gw_log_raw(esc, 6);
        }
        run = s + 1;
    }
    gw_log_raw(run, (size_t)(s - run));
}

static void gw_log_u64(uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    gw_log_raw(d + i, sizeof d - i);
}

static void gw_log_int(int v)
{
    if (v < 0) {
        GW_LOG_LIT("-");
        gw_log_u64((uint64_t)0 - (uint64_t)(int64_t)v);
    } else {
        gw_log_u64((uint64_t)v);
    }
}

/* Milliseconds with three decimals, as "%.3f" printed them. */
static void gw_log_ms(double ms)
{
    if (!(ms >= 0) || ms > 1e12) {
        char t[64];
        int n = snprintf(t, sizeof t, "%.3f", ms);
        gw_log_raw(t, n > 0 ? (size_t)n : 0);
        return;
    }
    uint64_t us = (uint64_t)(ms * 1000.0 + 0.5);
    char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10), 0};
    gw_log_u64(us / 1000);
    GW_LOG_LIT(".");
    gw_log_raw(frac, 3);
}

void gw_log_call(const struct gw_call *c, double total_ms)
{
    GW_LOG_LIT("{\"request_id\":\"");
    gw_log_str(c->request_id);
    GW_LOG_LIT("\",\"endpoint\":\"");
    gw_log_str(c->endpoint ? c->endpoint : "");
    GW_LOG_LIT("\",\"status\":");
    gw_log_int(c->status);
    GW_LOG_LIT(",\"account\":\"");
    gw_log_str(c->account);
    GW_LOG_LIT("\",\"key_id\":\"");
    gw_log_str(c->key_id);
    GW_LOG_LIT("\",\"refusal\":\"");
    gw_log_str(c->refusal);
    GW_LOG_LIT("\",\"total_ms\":");
    gw_log_ms(total_ms);
    GW_LOG_LIT(",\"reserve_ms\":");
    gw_log_ms(c->reserve_ms);
    GW_LOG_LIT(",\"upstream_ms\":");
    gw_log_ms(c->upstream_ms);
    GW_LOG_LIT(",\"settle_ms\":");
    gw_log_ms(c->settle_ms);
    GW_LOG_LIT("}\n");
    gw_log_line_done();
}
