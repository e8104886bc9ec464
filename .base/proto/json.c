/*
 * json.c — a stored string map (tags, metadata: msgpack, as the decoder's
 * map.raw) as a compact JSON object, for the admin API and reports.
 *
 * Escaping: '"' and '\\' get a backslash; bytes below 0x20 and 0x7f become
 * \u00XX.  Well-formed UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF) is copied as is.  Every byte that is not part of well-formed
 * UTF-8 is written as \u00XX of that byte, i.e. read as Latin-1: the output
 * is always valid JSON and valid UTF-8, and no byte is silently dropped (a
 * reader cannot tell an escaped invalid byte 0xe9 from a real U+00E9; we
 * accept that, since the decoder does not require UTF-8 in strings).
 */
#include "proto/proto.h"
#include "proto/mp.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

/* Output cursor; `failed` once anything did not fit (cap keeps a NUL). */
struct json_out {
    char *buf;
    size_t cap;
    size_t len;
    bool failed;
};

static void json_put(struct json_out *o, const char *s, size_t n)
{
    if (o->failed || n >= o->cap - o->len) {
        o->failed = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void json_put_byte_escaped(struct json_out *o, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
    json_put(o, e, sizeof e);
}

/* Length of the well-formed UTF-8 sequence at p (n bytes available) that
 * starts with a non-ASCII byte, or 0 when it is not well formed. */
static size_t utf8_sequence_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return len;
}

static void json_put_string(struct json_out *o, const char *s, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    json_put(o, "\"", 1);
    for (size_t i = 0; i < len && !o->failed;) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            json_put(o, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            json_put_byte_escaped(o, c);
            i++;
        } else if (c < 0x80) {
            json_put(o, s + i, 1);
            i++;
        } else {
            size_t n = utf8_sequence_len(p + i, len - i);
            if (n == 0) {
                json_put_byte_escaped(o, c);
                n = 1;
            } else {
                json_put(o, s + i, n);
            }
            i += n;
        }
    }
    json_put(o, "\"", 1);
}

/* The map's entries; false when the input is not a string -> string map. */
static bool json_map_write(struct mp_reader *r, struct json_out *o)
{
    uint32_t count;
    if (mp_map_read(r, &count) != MP_OK)
        return false;
    json_put(o, "{", 1);
    for (uint32_t i = 0; i < count && !o->failed; i++) {
        const char *k, *v;
        uint32_t klen, vlen;
        if (mp_str_read(r, &k, &klen) != MP_OK || mp_str_read(r, &v, &vlen) != MP_OK)
            return false;
        if (i > 0)
            json_put(o, ",", 1);
        json_put_string(o, k, klen);
        json_put(o, ":", 1);
        json_put_string(o, v, vlen);
    }
    json_put(o, "}", 1);
    return mp_reader_left(r) == 0;
}

int proto_map_json(const void *raw, size_t raw_len, char *out, size_t cap)
{
    struct json_out o = {out, cap, 0, false};
    struct mp_reader r;
    if (out == NULL || cap == 0)
        return -1;
    out[0] = '\0';
    if (raw_len == 0) {
        json_put(&o, "{}", 2);
    } else {
        assert(raw != NULL);
        mp_reader_init(&r, raw, raw_len);
        if (!json_map_write(&r, &o))
            return -1;
    }
    if (o.failed || o.len > INT32_MAX) {
        out[0] = '\0';
        return -1;
    }
    out[o.len] = '\0';
    return (int)o.len;
}
