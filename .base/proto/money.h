/*
 * money.h — exact conversion between decimal US dollars as text and int64
 * micro-dollars (1 USD = 1 000 000 micros), the unit of every amount in
 * purser.  Integer arithmetic only: no float ever touches money.
 */
#ifndef PURSER_MONEY_H
#define PURSER_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MICROS_PER_USD 1000000LL
#define MONEY_DECIMALS_MAX 6
/* Longest money_format output, NUL included: "-9223372036854.775808". */
#define MONEY_FORMAT_CAP 24

/* Parse "12", "12.5", "0.000001", "-3.25", "+1" into micros.  The grammar is
 * [+-]digits[.digits] with 1 to 6 digits after the point: no spaces, no
 * exponent, no ".5" or "5.".  A sign is accepted (the caller decides whether
 * a negative amount is allowed).  Returns 0, or -1 for an empty string,
 * junk, more than 6 decimals, or a value outside int64 micros. */
int money_parse_usd(const char *s, int64_t *out_micros);

/* Write `micros` as dollars with exactly 6 decimals ("12.500000",
 * "-0.000001"; INT64_MIN included) into buf (NUL-terminated).  Returns the
 * length without the NUL, or -1 when it does not fit in `cap` bytes. */
int money_format(int64_t micros, char *buf, size_t cap);

#endif
