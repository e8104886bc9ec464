/*
 * mp.h — a strict, zero-copy msgpack reader: a cursor over a const buffer.
 *
 * Why not msgpack-c's unpacker: it allocates for every element an array or
 * map header announces before any element arrives (a 5-byte header can
 * reserve hundreds of MB), and its objects die at the next call.  This reader
 * allocates nothing, never reads past the end, and rejects any array or map
 * whose announced count could not fit in the bytes left (every element needs
 * at least one byte), so a hostile header costs nothing.
 *
 * Each read either consumes one complete value (or one container header) and
 * returns MP_OK, or returns an MP_E* code and leaves the cursor where it was,
 * so a caller can try another read at the same place (nil, then an integer).
 * Strings and bins point into the buffer, which must outlive their use.
 *
 * Integers of every msgpack width are accepted, signed or unsigned encoding,
 * and range-checked against the destination type.  Floats and extensions are
 * never numbers here: reading them as anything but a skipped value is
 * MP_ETYPE.
 */
#ifndef PURSER_MP_H
#define PURSER_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes (negative; MP_OK is 0). */
#define MP_OK 0
#define MP_ETRUNC (-1) /* the value runs past the end of the buffer */
#define MP_ETYPE (-2)  /* the next value is not of the requested type */
#define MP_ERANGE (-3) /* an integer that does not fit the destination */
#define MP_ECOUNT (-4) /* array/map count larger than the bytes left */
#define MP_EDEPTH (-5) /* nesting deeper than the caller's limit */

/* Deepest nesting mp_value_skip can follow, whatever the caller asks. */
#define MP_DEPTH_MAX 64

struct mp_reader {
    const uint8_t *pos; /* next byte to read */
    const uint8_t *end; /* one past the last byte */
};

/* Start reading `len` bytes at `data` (data may be NULL when len is 0). */
void mp_reader_init(struct mp_reader *r, const void *data, size_t len);
/* Bytes not yet consumed. */
size_t mp_reader_left(const struct mp_reader *r);

int mp_nil_read(struct mp_reader *r);
/* True when the next value is nil (nothing is consumed). */
bool mp_nil_peek(const struct mp_reader *r);
int mp_bool_read(struct mp_reader *r, bool *out);
/* Any msgpack integer that fits int64 (else MP_ERANGE). */
int mp_int_read(struct mp_reader *r, int64_t *out);
/* Any msgpack integer that is >= 0 (else MP_ERANGE). */
int mp_uint_read(struct mp_reader *r, uint64_t *out);
/* str8/16/32 and fixstr; `*ptr` points into the buffer. */
int mp_str_read(struct mp_reader *r, const char **ptr, uint32_t *len);
/* bin8/16/32; `*ptr` points into the buffer. */
int mp_bin_read(struct mp_reader *r, const uint8_t **ptr, uint32_t *len);
/* A container header.  `*count` is the number of elements (for a map, of
 * key/value pairs).  On MP_ECOUNT `*count` still holds the announced count,
 * for error messages. */
int mp_array_read(struct mp_reader *r, uint32_t *count);
int mp_map_read(struct mp_reader *r, uint32_t *count);

/* Write an array header announcing `count` elements (fixarray, array16 or
 * array32: never a smaller form that would wrap the count) into `out`;
 * returns its length, 1 to MP_ARRAY_HEAD_MAX bytes. */
#define MP_ARRAY_HEAD_MAX 5
size_t mp_array_head(uint8_t out[MP_ARRAY_HEAD_MAX], uint32_t count);

/* Skip one whole value, containers included, without recursion.  Containers
 * nested deeper than `depth_max` (capped at MP_DEPTH_MAX) give MP_EDEPTH; a
 * scalar has depth 0, [] and [1] depth 1, [[1]] depth 2. */
int mp_value_skip(struct mp_reader *r, uint32_t depth_max);

/* What the next value is, for error messages: "nil", "boolean", "integer",
 * "float", "string", "binary", "array", "map", "extension", "invalid byte
 * 0xc1", or "end of input". */
const char *mp_type_name(const struct mp_reader *r);
/* A short description of an MP_E* code. */
const char *mp_strerror(int rc);

#endif
