/*
 * mp.c — the strict msgpack reader of mp.h.
 *
 * Every read goes through head_parse(), which decodes the tag byte and the
 * length or integer bytes after it into a struct mp_head without moving the
 * cursor; the public functions then check the kind and that the payload fits
 * in the bytes left, and only then advance.  That is how a failed read leaves
 * the cursor untouched.
 */
#include "proto/mp.h"

#include <assert.h>
#include <string.h>

enum mp_kind {
    MP_KIND_NIL,
    MP_KIND_BOOL,
    MP_KIND_UINT,    /* non-negative integer, value in head.value */
    MP_KIND_NEGINT,  /* negative integer, value in head.value as int64 bits */
    MP_KIND_FLOAT,
    MP_KIND_STR,
    MP_KIND_BIN,
    MP_KIND_ARRAY,
    MP_KIND_MAP,
    MP_KIND_EXT,
    MP_KIND_INVALID, /* 0xc1, never used by msgpack */
};

/* One decoded tag: what it is, how many bytes the tag and its length/int
 * fields take, and how many payload bytes follow (strings, bins, floats,
 * extensions).  For containers `value` is the element count. */
struct mp_head {
    enum mp_kind kind;
    uint32_t head_len;
    uint64_t value;
    uint64_t payload_len;
};

static uint64_t be_load(const uint8_t *p, uint32_t n)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Sign-extend an n-byte big-endian two's complement integer. */
static uint64_t be_load_signed(const uint8_t *p, uint32_t n)
{
    uint64_t v = be_load(p, n);
    uint32_t bits = n * 8;
    if (bits < 64 && (v >> (bits - 1)) & 1)
        v |= ~UINT64_C(0) << bits;
    return v;
}

/* A signed encoding whose value happens to be >= 0 is a plain UINT. */
static enum mp_kind signed_kind(uint64_t bits)
{
    return (int64_t)bits < 0 ? MP_KIND_NEGINT : MP_KIND_UINT;
}

/* Fill h for a tag followed by an n-byte big-endian length or value. */
static int head_sized(struct mp_head *h, const struct mp_reader *r,
                      enum mp_kind kind, uint32_t n)
{
    if (mp_reader_left(r) < 1 + (size_t)n)
        return MP_ETRUNC;
    h->kind = kind;
    h->head_len = 1 + n;
    h->value = be_load(r->pos + 1, n);
    if (kind == MP_KIND_STR || kind == MP_KIND_BIN)
        h->payload_len = h->value;
    return MP_OK;
}

static int head_fixed_payload(struct mp_head *h, enum mp_kind kind,
                              uint32_t head_len, uint64_t payload_len)
{
    h->kind = kind;
    h->head_len = head_len;
    h->payload_len = payload_len;
    return MP_OK;
}

/* Integer tags 0xcc..0xd3: n bytes of value after the tag. */
static int head_int(struct mp_head *h, const struct mp_reader *r, uint8_t tag)
{
    static const uint8_t width[8] = {1, 2, 4, 8, 1, 2, 4, 8};
    uint32_t n = width[tag - 0xcc];
    if (mp_reader_left(r) < 1 + (size_t)n)
        return MP_ETRUNC;
    h->head_len = 1 + n;
    if (tag <= 0xcf) {
        h->kind = MP_KIND_UINT;
        h->value = be_load(r->pos + 1, n);
    } else {
        h->value = be_load_signed(r->pos + 1, n);
        h->kind = signed_kind(h->value);
    }
    return MP_OK;
}

/* ext8/16/32: a length, then one type byte, then the data. */
static int head_ext(struct mp_head *h, const struct mp_reader *r, uint32_t n)
{
    int rc = head_sized(h, r, MP_KIND_EXT, n);
    if (rc != MP_OK)
        return rc;
    h->payload_len = h->value + 1;
    return MP_OK;
}

static int head_parse(const struct mp_reader *r, struct mp_head *h)
{
    memset(h, 0, sizeof *h);
    if (r->pos >= r->end)
        return MP_ETRUNC;
    uint8_t tag = r->pos[0];
    h->head_len = 1;
    if (tag <= 0x7f) {
        h->kind = MP_KIND_UINT;
        h->value = tag;
        return MP_OK;
    }
    if (tag >= 0xe0) {
        h->kind = MP_KIND_NEGINT;
        h->value = (uint64_t)(int64_t)(int8_t)tag;
        return MP_OK;
    }
    if (tag <= 0x8f) {
        h->kind = MP_KIND_MAP;
        h->value = tag & 0x0f;
        return MP_OK;
    }
    if (tag <= 0x9f) {
        h->kind = MP_KIND_ARRAY;
        h->value = tag & 0x0f;
        return MP_OK;
    }
    if (tag <= 0xbf)
        return head_fixed_payload(h, MP_KIND_STR, 1, tag & 0x1f);
    if (tag >= 0xcc && tag <= 0xd3)
        return head_int(h, r, tag);
    switch (tag) {
    case 0xc0: h->kind = MP_KIND_NIL; return MP_OK;
    case 0xc1: h->kind = MP_KIND_INVALID; return MP_OK;
    case 0xc2: h->kind = MP_KIND_BOOL; h->value = 0; return MP_OK;
    case 0xc3: h->kind = MP_KIND_BOOL; h->value = 1; return MP_OK;
    case 0xc4: return head_sized(h, r, MP_KIND_BIN, 1);
    case 0xc5: return head_sized(h, r, MP_KIND_BIN, 2);
    case 0xc6: return head_sized(h, r, MP_KIND_BIN, 4);
    case 0xc7: return head_ext(h, r, 1);
    case 0xc8: return head_ext(h, r, 2);
    case 0xc9: return head_ext(h, r, 4);
    case 0xca: return head_fixed_payload(h, MP_KIND_FLOAT, 1, 4);
    case 0xcb: return head_fixed_payload(h, MP_KIND_FLOAT, 1, 8);
    case 0xd4: return head_fixed_payload(h, MP_KIND_EXT, 1, 1 + 1);
    case 0xd5: return head_fixed_payload(h, MP_KIND_EXT, 1, 1 + 2);
    case 0xd6: return head_fixed_payload(h, MP_KIND_EXT, 1, 1 + 4);
    case 0xd7: return head_fixed_payload(h, MP_KIND_EXT, 1, 1 + 8);
    case 0xd8: return head_fixed_payload(h, MP_KIND_EXT, 1, 1 + 16);
    case 0xd9: return head_sized(h, r, MP_KIND_STR, 1);
    case 0xda: return head_sized(h, r, MP_KIND_STR, 2);
    case 0xdb: return head_sized(h, r, MP_KIND_STR, 4);
    case 0xdc: return head_sized(h, r, MP_KIND_ARRAY, 2);
    case 0xdd: return head_sized(h, r, MP_KIND_ARRAY, 4);
    case 0xde: return head_sized(h, r, MP_KIND_MAP, 2);
    default: assert(tag == 0xdf); return head_sized(h, r, MP_KIND_MAP, 4);
    }
}

/* Parse the next head and require `kind`; check the payload fits. */
static int head_expect(const struct mp_reader *r, struct mp_head *h, enum mp_kind kind)
{
    int rc = head_parse(r, h);
    if (rc != MP_OK)
        return rc;
    if (h->kind != kind)
        return MP_ETYPE;
    if (h->payload_len > mp_reader_left(r) - h->head_len)
        return MP_ETRUNC;
    return MP_OK;
}

static void head_consume(struct mp_reader *r, const struct mp_head *h)
{
    assert(h->head_len + h->payload_len <= mp_reader_left(r));
    r->pos += h->head_len + h->payload_len;
}

void mp_reader_init(struct mp_reader *r, const void *data, size_t len)
{
    assert(data != NULL || len == 0);
    r->pos = data;
    r->end = data != NULL ? r->pos + len : r->pos;
}

size_t mp_reader_left(const struct mp_reader *r)
{
    assert(r->pos <= r->end);
    return (size_t)(r->end - r->pos);
}

int mp_nil_read(struct mp_reader *r)
{
    struct mp_head h;
    int rc = head_expect(r, &h, MP_KIND_NIL);
    if (rc == MP_OK)
        head_consume(r, &h);
    return rc;
}

bool mp_nil_peek(const struct mp_reader *r)
{
    return r->pos < r->end && r->pos[0] == 0xc0;
}

int mp_bool_read(struct mp_reader *r, bool *out)
{
    struct mp_head h;
    int rc = head_expect(r, &h, MP_KIND_BOOL);
    if (rc != MP_OK)
        return rc;
    *out = h.value != 0;
    head_consume(r, &h);
    return MP_OK;
}

/* Either integer kind; sets *is_negative. */
static int int_head(const struct mp_reader *r, struct mp_head *h, bool *is_negative)
{
    int rc = head_parse(r, h);
    if (rc != MP_OK)
        return rc;
    if (h->kind != MP_KIND_UINT && h->kind != MP_KIND_NEGINT)
        return MP_ETYPE;
    *is_negative = h->kind == MP_KIND_NEGINT;
    return MP_OK;
}

/* The fast paths below take the one-byte forms (fixint, fixstr, fixarray)
 * that most values of an entry have, with the same checks as head_parse's
 * general path; everything else goes through it. */

int mp_int_read(struct mp_reader *r, int64_t *out)
{
    if (r->pos < r->end && (r->pos[0] <= 0x7f || r->pos[0] >= 0xe0)) {
        *out = (int8_t)r->pos[0]; /* fixints: 0..127 and -32..-1 */
        r->pos++;
        return MP_OK;
    }
    struct mp_head h;
    bool is_negative;
    int rc = int_head(r, &h, &is_negative);
    if (rc != MP_OK)
        return rc;
    if (!is_negative && h.value > (uint64_t)INT64_MAX)
        return MP_ERANGE;
    *out = (int64_t)h.value;
    head_consume(r, &h);
    return MP_OK;
}

int mp_uint_read(struct mp_reader *r, uint64_t *out)
{
    if (r->pos < r->end && r->pos[0] <= 0x7f) {
        *out = r->pos[0];
        r->pos++;
        return MP_OK;
    }
    struct mp_head h;
    bool is_negative;
    int rc = int_head(r, &h, &is_negative);
    if (rc != MP_OK)
        return rc;
    if (is_negative)
        return MP_ERANGE;
    *out = h.value;
    head_consume(r, &h);
    return MP_OK;
}

int mp_str_read(struct mp_reader *r, const char **ptr, uint32_t *len)
{
    if (r->pos < r->end && (r->pos[0] & 0xe0) == 0xa0) {
        uint32_t n = r->pos[0] & 0x1f;
        if (n > (size_t)(r->end - r->pos) - 1)
            return MP_ETRUNC;
        *ptr = (const char *)r->pos + 1;
        *len = n;
        r->pos += 1 + n;
        return MP_OK;
    }
    struct mp_head h;
    int rc = head_expect(r, &h, MP_KIND_STR);
    if (rc != MP_OK)
        return rc;
    *ptr = (const char *)r->pos + h.head_len;
    *len = (uint32_t)h.payload_len;
    head_consume(r, &h);
    return MP_OK;
}

int mp_bin_read(struct mp_reader *r, const uint8_t **ptr, uint32_t *len)
{
    struct mp_head h;
    int rc = head_expect(r, &h, MP_KIND_BIN);
    if (rc != MP_OK)
        return rc;
    *ptr = r->pos + h.head_len;
    *len = (uint32_t)h.payload_len;
    head_consume(r, &h);
    return MP_OK;
}

/* A container header whose elements (`per_item` values each) must each
 * still find at least one byte. */
static int container_read(struct mp_reader *r, enum mp_kind kind,
                          uint64_t per_item, uint32_t *count)
{
    struct mp_head h;
    int rc = head_expect(r, &h, kind);
    if (rc != MP_OK)
        return rc;
    *count = (uint32_t)h.value;
    if (h.value * per_item > mp_reader_left(r) - h.head_len)
        return MP_ECOUNT;
    head_consume(r, &h);
    return MP_OK;
}

int mp_array_read(struct mp_reader *r, uint32_t *count)
{
    if (r->pos < r->end && (r->pos[0] & 0xf0) == 0x90) {
        *count = r->pos[0] & 0x0f;
        if (*count > (size_t)(r->end - r->pos) - 1)
            return MP_ECOUNT;
        r->pos++;
        return MP_OK;
    }
    return container_read(r, MP_KIND_ARRAY, 1, count);
}

int mp_map_read(struct mp_reader *r, uint32_t *count)
{
    return container_read(r, MP_KIND_MAP, 2, count);
}

/* Consume one value's head (and payload); a container's element count
 * (values, so two per map pair) goes to *children.  A container at
 * `depth` (0 for the outermost value) is refused when depth >= depth_max. */
static int value_head_skip(struct mp_reader *r, uint32_t depth, uint32_t depth_max,
                           uint64_t *children)
{
    struct mp_head h;
    int rc = head_parse(r, &h);
    if (rc != MP_OK)
        return rc;
    if (h.kind == MP_KIND_INVALID)
        return MP_ETYPE;
    if (h.payload_len > mp_reader_left(r) - h.head_len)
        return MP_ETRUNC;
    *children = 0;
    bool is_container = h.kind == MP_KIND_ARRAY || h.kind == MP_KIND_MAP;
    if (is_container && depth >= depth_max)
        return MP_EDEPTH;
    if (h.kind == MP_KIND_ARRAY)
        *children = h.value;
    else if (h.kind == MP_KIND_MAP)
        *children = h.value * 2;
    if (*children > mp_reader_left(r) - h.head_len)
        return MP_ECOUNT;
    head_consume(r, &h);
    return MP_OK;
}

int mp_value_skip(struct mp_reader *r, uint32_t depth_max)
{
    /* pending[d] = values still to skip at nesting level d; level 0 is the
     * value itself.  Counts are bounded by the bytes left, so they fit. */
    uint64_t pending[MP_DEPTH_MAX + 1];
    uint32_t depth = 0;
    struct mp_reader start = *r;
    if (depth_max > MP_DEPTH_MAX)
        depth_max = MP_DEPTH_MAX;
    pending[0] = 1;
    for (;;) {
        while (pending[depth] == 0) {
            if (depth == 0)
                return MP_OK;
            depth--;
        }
        pending[depth]--;
        uint64_t children;
        int rc = value_head_skip(r, depth, depth_max, &children);
        if (rc != MP_OK) {
            *r = start;
            return rc;
        }
        if (children > 0)
            pending[++depth] = children;
    }
}

const char *mp_type_name(const struct mp_reader *r)
{
    static const char *const names[] = {
        [MP_KIND_NIL] = "nil",         [MP_KIND_BOOL] = "boolean",
        [MP_KIND_UINT] = "integer",    [MP_KIND_NEGINT] = "integer",
        [MP_KIND_FLOAT] = "float",     [MP_KIND_STR] = "string",
        [MP_KIND_BIN] = "binary",      [MP_KIND_ARRAY] = "array",
        [MP_KIND_MAP] = "map",         [MP_KIND_EXT] = "extension",
        [MP_KIND_INVALID] = "invalid byte 0xc1",
    };
    struct mp_head h;
    if (r->pos >= r->end)
        return "end of input";
    if (head_parse(r, &h) != MP_OK)
        return "truncated value";
    return names[h.kind];
}

const char *mp_strerror(int rc)
{
    switch (rc) {
    case MP_OK: return "ok";
    case MP_ETRUNC: return "truncated";
    case MP_ETYPE: return "wrong type";
    case MP_ERANGE: return "integer out of range";
    case MP_ECOUNT: return "count larger than the bytes left";
    case MP_EDEPTH: return "nested too deeply";
    default: return "unknown error";
    }
}

size_t mp_array_head(uint8_t out[MP_ARRAY_HEAD_MAX], uint32_t count)
{
    if (count < 16) {
        out[0] = (uint8_t)(0x90 | count);
        return 1;
    }
    if (count <= 0xffff) {
        out[0] = 0xdc;
        out[1] = (uint8_t)(count >> 8);
        out[2] = (uint8_t)count;
        return 3;
    }
    out[0] = 0xdd;
    out[1] = (uint8_t)(count >> 24);
    out[2] = (uint8_t)(count >> 16);
    out[3] = (uint8_t)(count >> 8);
    out[4] = (uint8_t)count;
    return 5;
}
