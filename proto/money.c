/*
 * money.c — decimal USD text <-> int64 micros (see money.h).
 *
 * Parsing accumulates the magnitude as one uint64 of micros, checking for
 * overflow at every digit against the magnitude the sign allows (2^63 for a
 * negative number, so INT64_MIN micros parses), then applies the sign.
 * Formatting splits the magnitude (as uint64, so INT64_MIN has one) into
 * whole dollars and six digits of micros.
 */
#include "proto/money.h"
#include "proto/fmt.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

static bool money_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* v = v * 10 + digit, unless that would exceed `limit`. */
static int money_digit_push(uint64_t *v, unsigned digit, uint64_t limit)
{
    assert(digit <= 9);
    if (*v > (limit - digit) / 10)
        return -1;
    *v = *v * 10 + digit;
    return 0;
}

/* Consume a run of digits from *s into *v; returns how many, or -1 on
 * overflow. */
static int money_digits_read(const char **s, uint64_t *v, uint64_t limit, int max_count)
{
    int n = 0;
    while (money_is_digit(**s)) {
        if (n == max_count || money_digit_push(v, (unsigned)(**s - '0'), limit) != 0)
            return -1;
        (*s)++;
        n++;
    }
    return n;
}

int money_parse_usd(const char *s, int64_t *out_micros)
{
    bool is_negative = false;
    uint64_t v = 0;
    if (s == NULL)
        return -1;
    if (*s == '-' || *s == '+')
        is_negative = *s++ == '-';
    uint64_t limit = is_negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int whole = money_digits_read(&s, &v, limit, -1);
    if (whole <= 0)
        return -1;
    int decimals = 0;
    if (*s == '.') {
        s++;
        decimals = money_digits_read(&s, &v, limit, MONEY_DECIMALS_MAX);
        if (decimals <= 0)
            return -1;
    }
    if (*s != '\0')
        return -1;
    for (; decimals < MONEY_DECIMALS_MAX; decimals++) {
        if (money_digit_push(&v, 0, limit) != 0)
            return -1;
    }
    if (is_negative)
        *out_micros = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out_micros = (int64_t)v;
    return 0;
}

int money_format(int64_t micros, char *buf, size_t cap)
{
    uint64_t magnitude = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    uint64_t whole = magnitude / MONEY_MICROS_PER_USD;
    uint64_t fraction = magnitude % MONEY_MICROS_PER_USD;
    if (buf == NULL || cap == 0)
        return -1;
    /* "-" whole "." six digits, without printf (a hot path of the gateway). */
    char t[1 + FMT_U64_MAX + 7];
    size_t n = 0;
    if (micros < 0)
        t[n++] = '-';
    n += fmt_u64(t + n, whole);
    t[n++] = '.';
    for (int i = 5; i >= 0; i--, fraction /= 10)
        t[n + (size_t)i] = (char)('0' + fraction % 10);
    n += 6;
    if (n >= cap) {
        buf[0] = '\0';
        return -1;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    return (int)n;
}
