/*
 * json_scan.c — a validating JSON scan that builds nothing (json_scan.h).
 * Recursive descent over the bytes; what it accepts is what jansson's
 * json_loadb accepts, so a caller falls back to no different answer.
 */
#include "gateway/json_scan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GW_JSON_DEPTH_MAX 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define GW_JSON_NUMBER_MAX 128 /* a number converted on the stack; longer: malloc */

struct scan {
    const unsigned char *p, *end;
};

static void ws_skip(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* One UTF-8 sequence of a string's raw bytes (first byte >= 0x80). */
static bool utf8_skip(struct scan *s)
{
    unsigned c = *s->p;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return false; /* a continuation byte first, an overlong lead, or past U+10FFFF */
    }
    if ((size_t)(s->end - s->p) < n)
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned b = s->p[i];
        if ((b & 0xc0) != 0x80)
            return false;
        cp = cp << 6 | (b & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return false;
    s->p += n;
    return true;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = (int)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (int)(c - 'A' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Printable ASCII other than '"' and '\\': taken as they are. */
static bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* A string, the opening quote at s->p.  *has_escape: it used a backslash. */
static bool string_skip(struct scan *s, bool *has_escape)
{
    *has_escape = false;
    s->p++;
    while (s->p < s->end) {
        while (s->p < s->end && is_plain(*s->p)) /* the common bytes, tightly */
            s->p++;
        if (s->p >= s->end)
            break;
        unsigned c = *s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            if (!utf8_skip(s))
                return false;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        *has_escape = true;
        if (s->end - s->p < 2)
            return false;
        c = s->p[1];
        if (strchr("\"\\/bfnrt", (int)c) != NULL && c != 0) {
            s->p += 2;
            continue;
        }
        if (c != 'u' || s->end - s->p < 6)
            return false;
        int v = hex4(s->p + 2);
        if (v <= 0 || (v >= 0xdc00 && v <= 0xdfff))
            return false; /* \u0000, or a low surrogate alone */
        s->p += 6;
        if (v >= 0xd800 && v <= 0xdbff) {
            if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
                return false;
            int lo = hex4(s->p + 2);
            if (lo < 0xdc00 || lo > 0xdfff)
                return false;
            s->p += 6;
        }
    }
    return false;
}

static bool digits_skip(struct scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start;
}

/* A number: the grammar, then the range jansson enforces (an integer fits
 * in long long, a real does not overflow). */
static bool number_skip(struct scan *s)
{
    const unsigned char *start = s->p;
    bool is_real = false;
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0') {
        s->p++;
        if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            return false;
    } else if (!digits_skip(s)) {
        return false;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        is_real = true;
        if (!digits_skip(s))
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        is_real = true;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!digits_skip(s))
            return false;
    }
    size_t n = (size_t)(s->p - start);
    size_t int_digits = n - (*start == '-');
    if (!is_real && int_digits < 19)
        return true; /* fits in long long without asking */
    char stack[GW_JSON_NUMBER_MAX];
    char *t = n < sizeof stack ? stack : malloc(n + 1);
    if (t == NULL)
        return false;
    memcpy(t, start, n);
    t[n] = '\0';
    bool is_ok;
    errno = 0;
    if (is_real) {
        double d = strtod(t, NULL);
        is_ok = !(errno == ERANGE && (d > 1.0 || d < -1.0)); /* overflow; underflow is fine */
    } else {
        (void)strtoll(t, NULL, 10);
        is_ok = errno != ERANGE;
    }
    if (t != stack)
        free(t);
    return is_ok;
}

static bool literal_skip(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

static bool value_skip(struct scan *s, int level);

/* The top-level members looked for, and where their values were found. */
struct wanted {
    const char *const *keys;
    size_t count;
    struct gw_json_span *spans;
    bool is_escaped; /* a member name used escapes */
};

/* An object or array at nesting `level` (the top is 1), the bracket at s->p.
 * With `w` (top level only), records the last member of each wanted name. */
static bool container_skip(struct scan *s, int level, struct wanted *w)
{
    bool is_object = *s->p == '{';
    unsigned char close = is_object ? '}' : ']';
    s->p++;
    ws_skip(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        struct gw_json_span *match = NULL;
        if (is_object) {
            const unsigned char *name = s->p + 1;
            bool has_escape;
            if (s->p >= s->end || *s->p != '"' || !string_skip(s, &has_escape))
                return false;
            if (w) {
                size_t nl = (size_t)(s->p - 1 - name);
                w->is_escaped |= has_escape;
                for (size_t k = 0; k < w->count && match == NULL; k++)
                    if (strlen(w->keys[k]) == nl && memcmp(name, w->keys[k], nl) == 0)
                        match = &w->spans[k];
            }
            ws_skip(s);
            if (s->p >= s->end || *s->p != ':')
                return false;
            s->p++;
            ws_skip(s);
        }
        const unsigned char *v = s->p;
        if (!value_skip(s, level + 1))
            return false;
        if (match) {
            match->at = (const char *)v;
            match->len = (size_t)(s->p - v);
        }
        /* jansson's quirk, kept: the byte after a number or a literal is
         * pushed back, and a NUL pushed back is lost — skipped. */
        if (s->p < s->end && *s->p == '\0' && *v != '"' && *v != '{' && *v != '[')
            s->p++;
        ws_skip(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == close) {
            s->p++;
            return true;
        }
        if (*s->p != ',')
            return false;
        s->p++;
        ws_skip(s);
    }
}

static bool value_skip(struct scan *s, int level)
{
    bool has_escape;
    if (s->p >= s->end || level > GW_JSON_DEPTH_MAX)
        return false;
    switch (*s->p) {
    case '{':
    case '[':
        return container_skip(s, level, NULL);
    case '"':
        return string_skip(s, &has_escape);
    case 't':
        return literal_skip(s, "true");
    case 'f':
        return literal_skip(s, "false");
    case 'n':
        return literal_skip(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return number_skip(s);
        return false;
    }
}

int gw_json_members(const char *text, size_t len, const char *const *keys, size_t count,
                    struct gw_json_span *spans)
{
    struct scan s = {(const unsigned char *)text, (const unsigned char *)text + len};
    struct wanted w = {keys, count, spans, false};
    for (size_t k = 0; k < count; k++)
        spans[k] = (struct gw_json_span){NULL, 0};
    ws_skip(&s);
    if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
        return GW_JSON_INVALID;
    bool is_object = *s.p == '{';
    if (!container_skip(&s, 1, is_object ? &w : NULL))
        return GW_JSON_INVALID;
    ws_skip(&s);
    if (s.p != s.end || !is_object)
        return GW_JSON_INVALID;
    return w.is_escaped ? GW_JSON_ESCAPED : 0;
}

int gw_json_member(const char *text, size_t len, const char *key, const char **value,
                   size_t *value_len)
{
    struct gw_json_span span;
    int rc = gw_json_members(text, len, &key, 1, &span);
    if (rc != 0)
        return rc;
    if (span.at == NULL)
        return GW_JSON_ABSENT;
    *value = span.at;
    *value_len = span.len;
    return GW_JSON_FOUND;
}

int gw_json_integer(const char *value, size_t len, long long *out)
{
    char t[24]; /* an integer the scan accepted fits in long long: 20 bytes at most */
    if (len == 0 || len >= sizeof t || (value[0] != '-' && (value[0] < '0' || value[0] > '9')))
        return -1;
    for (size_t i = 0; i < len; i++)
        if (value[i] == '.' || value[i] == 'e' || value[i] == 'E')
            return -1; /* a real: not json_is_integer */
    memcpy(t, value, len);
    t[len] = '\0';
    errno = 0;
    char *end = NULL;
    long long n = strtoll(t, &end, 10);
    if (errno == ERANGE || end != t + len)
        return -1;
    *out = n;
    return 0;
}
