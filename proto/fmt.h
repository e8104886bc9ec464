/*
 * fmt.h — the few formatting steps on hot paths, without printf: a bounded
 * string copy and decimal integers.  snprintf costs ~0.3 µs a call in
 * parsing its format; the gateway did several per governed call.
 */
#ifndef PURSER_PROTO_FMT_H
#define PURSER_PROTO_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Longest decimal uint64 plus its NUL. */
#define FMT_U64_MAX 21

/* As snprintf(dst, cap, "%s", src): at most cap - 1 bytes, always
 * NUL-terminated (cap > 0).  Returns the bytes copied. */
static inline size_t fmt_copy(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; n + 1 < cap && src[n] != '\0'; n++)
        dst[n] = src[n];
    dst[n] = '\0';
    return n;
}

/* v in decimal into dst (FMT_U64_MAX bytes), NUL-terminated.  Returns the
 * length. */
static inline size_t fmt_u64(char *dst, uint64_t v)
{
    char t[FMT_U64_MAX];
    size_t i = sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = sizeof t - i;
    memcpy(dst, t + i, n);
    dst[n] = '\0';
    return n;
}

#endif
