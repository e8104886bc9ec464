/*
 * codec.c — msgpack encoding and strict decoding of entries, commands and
 * results (the wire format is described at the top of proto.h).
 *
 * The schema is data: cmd_schemas[] lists, for every command type, the
 * fields that follow [type, role, key] in wire order, each with its kind,
 * where it lives in struct proto_cmd, its name (used in error messages) and
 * its size limits.  result_fields[] does the same for struct proto_result.
 * One generic field encoder and one generic field decoder walk those tables,
 * so adding a field is one line and the encoder and decoder cannot disagree.
 *
 * Encoding writes msgpack straight into a struct proto_buf (byte for byte
 * what msgpack-c's packer writes).
 * Decoding goes through mp.c (zero-copy, bounds-checked, no allocation): the
 * decoder checks shapes, types and sizes; what values mean (amount ranges,
 * path syntax, known periods) is the ledger's business.
 */
#include "proto/proto.h"
#include "proto/mp.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- the schema ---- */

enum field_kind {
    FIELD_STR,     /* struct proto_str: str of len_min..len_max bytes */
    FIELD_BIN,     /* struct proto_str: bin of exactly len_max bytes */
    FIELD_INT,     /* int64_t */
    FIELD_OPT_INT, /* int64_t: nil on the wire <-> PROTO_UNSET */
    FIELD_UINT,    /* uint64_t */
    FIELD_MAP,     /* struct proto_map: string -> string */
    FIELD_OPT_MAP, /* struct proto_map + bool at flag_offset: nil <-> false */
    FIELD_LIST,    /* struct proto_list: strings of at most len_max bytes */
    FIELD_CHARS,   /* char[len_max + 1]: a str without NUL bytes, copied */
    FIELD_ENUM32,  /* int32_t in [0, len_max) */
    FIELD_TRAIL_INT, /* int64_t, trailing optional: absent <-> 0.  Only at the
                        end of a schema; the encoder omits a run of them that
                        are all 0, so older encodings stay valid. */
};

/* len_min/len_max: byte limits of a string or bin; for a list, the byte
 * limit of each item; for FIELD_CHARS the array holds len_max + 1 bytes;
 * for FIELD_ENUM32, the number of values. */
struct field {
    const char *name;     /* NULL ends a schema shorter than CMD_FIELDS_MAX */
    enum field_kind kind;
    uint16_t offset;      /* into struct proto_cmd (or proto_result) */
    uint16_t flag_offset; /* FIELD_OPT_MAP: its bool */
    uint32_t len_min;
    uint32_t len_max;
};

#define CMD_FIELDS_MAX 8
/* type, role, key */
#define CMD_HEADER_COUNT 3

struct cmd_schema {
    struct field fields[CMD_FIELDS_MAX];
    bool is_fieldless; /* a row with no fields (a missing row is an unknown type) */
};

_Static_assert(sizeof(struct proto_cmd) <= UINT16_MAX, "offsets fit uint16_t");
_Static_assert(sizeof(struct proto_result) <= UINT16_MAX, "offsets fit uint16_t");

#define CMD_AT(m) ((uint16_t)offsetof(struct proto_cmd, u.m))
#define F_STR(m, n, max) {n, FIELD_STR, CMD_AT(m), 0, 0, max}
#define F_STR_EXACT(m, n, len) {n, FIELD_STR, CMD_AT(m), 0, len, len}
#define F_BIN(m, n, len) {n, FIELD_BIN, CMD_AT(m), 0, len, len}
#define F_INT(m, n) {n, FIELD_INT, CMD_AT(m), 0, 0, 0}
#define F_OPT_INT(m, n) {n, FIELD_OPT_INT, CMD_AT(m), 0, 0, 0}
#define F_UINT(m, n) {n, FIELD_UINT, CMD_AT(m), 0, 0, 0}
#define F_MAP(m, n) {n, FIELD_MAP, CMD_AT(m), 0, 0, 0}
#define F_OPT_MAP(m, flag, n) {n, FIELD_OPT_MAP, CMD_AT(m), CMD_AT(flag), 0, 0}
#define F_LIST(m, n, item_max) {n, FIELD_LIST, CMD_AT(m), 0, 0, item_max}
#define F_TRAIL_INT(m, n) {n, FIELD_TRAIL_INT, CMD_AT(m), 0, 0, 0}

#define SCHEMA_ACCOUNT_STATUS                                                  \
    {{F_STR(status.name, "name", PROTO_NAME_MAX),                              \
      F_STR(status.reason, "reason", PROTO_TEXT_MAX)}}

static const struct cmd_schema cmd_schemas[PROTO_CMD_TYPE_COUNT] = {
    [PROTO_CMD_ACCOUNT_CREATE] = {{
        F_STR(account.name, "name", PROTO_NAME_MAX),
        F_INT(account.cap_micros, "cap_micros"),
        F_INT(account.period, "period"),
        F_INT(account.tz_offset_min, "tz_offset_min"),
        F_OPT_MAP(account.tags, account.has_tags, "tags"),
    }},
    [PROTO_CMD_ACCOUNT_UPDATE] = {{
        F_STR(account.name, "name", PROTO_NAME_MAX),
        F_OPT_INT(account.cap_micros, "cap_micros"),
        F_OPT_INT(account.period, "period"),
        F_OPT_INT(account.tz_offset_min, "tz_offset_min"),
        F_OPT_MAP(account.tags, account.has_tags, "tags"),
    }},
    [PROTO_CMD_ACCOUNT_FREEZE] = SCHEMA_ACCOUNT_STATUS,
    [PROTO_CMD_ACCOUNT_UNFREEZE] = SCHEMA_ACCOUNT_STATUS,
    [PROTO_CMD_ACCOUNT_CLOSE] = SCHEMA_ACCOUNT_STATUS,
    [PROTO_CMD_RESERVE] = {{
        F_STR(reserve.account, "account", PROTO_NAME_MAX),
        F_STR(reserve.payee, "payee", PROTO_NAME_MAX),
        F_INT(reserve.amount_micros, "amount_micros"),
        F_INT(reserve.ttl_ms, "ttl_ms"),
        F_INT(reserve.on_expire, "on_expire"),
        F_MAP(reserve.metadata, "metadata"),
        F_TRAIL_INT(reserve.tokens, "tokens"),
    }},
    [PROTO_CMD_COMMIT] = {{
        F_UINT(commit.reservation_id, "reservation_id"),
        F_INT(commit.actual_micros, "actual_micros"),
        F_MAP(commit.metadata, "metadata"),
        F_TRAIL_INT(commit.tokens, "tokens"),
    }},
    [PROTO_CMD_RELEASE] = {{
        F_UINT(release.reservation_id, "reservation_id"),
    }},
    [PROTO_CMD_EXPIRE] = {{{0}}, .is_fieldless = true},
    [PROTO_CMD_TRANSFER] = {{
        F_STR(transfer.debit, "debit", PROTO_NAME_MAX),
        F_STR(transfer.credit, "credit", PROTO_NAME_MAX),
        F_INT(transfer.amount_micros, "amount_micros"),
        F_INT(transfer.kind, "kind"),
        F_MAP(transfer.metadata, "metadata"),
    }},
    [PROTO_CMD_GRANT_CREATE] = {{
        F_STR(grant_create.parent, "parent", PROTO_NAME_MAX),
        F_STR(grant_create.workflow, "workflow", PROTO_TEXT_MAX),
        F_INT(grant_create.amount_micros, "amount_micros"),
        F_INT(grant_create.ttl_ms, "ttl_ms"),
        F_MAP(grant_create.metadata, "metadata"),
    }},
    [PROTO_CMD_GRANT_CLOSE] = {{
        F_UINT(grant_close.grant_id, "grant_id"),
    }},
    [PROTO_CMD_PERIOD_CLOSE] = {{
        F_STR_EXACT(period_close.month, "month", 7), /* "YYYY-MM" */
    }},
    [PROTO_CMD_PRICE_SET] = {{
        F_STR(price_set.model, "model", PROTO_TEXT_MAX),
        F_INT(price_set.input_micros, "input_micros"),
        F_INT(price_set.output_micros, "output_micros"),
        F_INT(price_set.cached_micros, "cached_micros"),
        F_INT(price_set.cache_write_micros, "cache_write_micros"),
    }},
    [PROTO_CMD_KEY_CREATE] = {{
        F_STR(key_create.key_id, "key_id", PROTO_TEXT_MAX),
        F_BIN(key_create.hash, "hash", PROTO_HASH_BYTES),
        F_STR(key_create.account, "account", PROTO_NAME_MAX),
        F_INT(key_create.key_role, "key_role"),
    }},
    [PROTO_CMD_KEY_REVOKE] = {{
        F_STR(key_revoke.key_id, "key_id", PROTO_TEXT_MAX),
    }},
    [PROTO_CMD_POLICY_SET] = {{
        F_LIST(policy_set.required_metadata, "required_metadata", PROTO_MAP_KEY_MAX),
    }},
    [PROTO_CMD_BREAKER_SET] = {{
        F_STR(breaker_set.account, "account", PROTO_NAME_MAX),
        F_INT(breaker_set.velocity_max_micros, "velocity_max_micros"),
        F_INT(breaker_set.velocity_window_ms, "velocity_window_ms"),
        F_INT(breaker_set.bedtime_start_min, "bedtime_start_min"),
        F_INT(breaker_set.bedtime_end_min, "bedtime_end_min"),
        F_INT(breaker_set.bedtime_factor_pct, "bedtime_factor_pct"),
        F_INT(breaker_set.bedtime_floor_micros, "bedtime_floor_micros"),
    }},
    [PROTO_CMD_ALERT_SET] = {{
        F_STR(alert_set.account, "account", PROTO_NAME_MAX),
        F_STR(alert_set.thresholds, "thresholds", PROTO_TEXT_MAX),
    }},
    [PROTO_CMD_EVENT_ACK] = {{
        F_UINT(event_ack.event_id, "event_id"),
    }},
    [PROTO_CMD_RATE_LIMIT_SET] = {{
        F_STR(rate_limit_set.account, "account", PROTO_NAME_MAX),
        F_STR(rate_limit_set.meta_key, "meta_key", PROTO_MAP_KEY_MAX),
        F_STR(rate_limit_set.meta_value, "meta_value", PROTO_MAP_VALUE_MAX),
        F_INT(rate_limit_set.rpm, "rpm"),
        F_INT(rate_limit_set.tpm, "tpm"),
        F_INT(rate_limit_set.tph, "tph"),
        F_INT(rate_limit_set.tpd, "tpd"),
    }},
    [PROTO_CMD_APPROVAL_SET] = {{
        F_INT(approval_set.above_micros, "above_micros"),
    }},
};

#define RES_AT(m) ((uint16_t)offsetof(struct proto_result, m))

static const struct field result_fields[] = {
    {"status", FIELD_ENUM32, RES_AT(status), 0, 0, PROTO_STATUS_COUNT},
    {"id", FIELD_UINT, RES_AT(id), 0, 0, 0},
    {"amount_micros", FIELD_INT, RES_AT(amount_micros), 0, 0, 0},
    {"remaining_micros", FIELD_INT, RES_AT(remaining_micros), 0, 0, 0},
    {"expires_at_ms", FIELD_INT, RES_AT(expires_at_ms), 0, 0, 0},
    {"transfer_id", FIELD_UINT, RES_AT(transfer_id), 0, 0, 0},
    {"overrun_micros", FIELD_INT, RES_AT(overrun_micros), 0, 0, 0},
    {"returned_micros", FIELD_INT, RES_AT(returned_micros), 0, 0, 0},
    {"name", FIELD_CHARS, RES_AT(name), 0, 0, PROTO_NAME_MAX},
    {"message", FIELD_CHARS, RES_AT(message), 0, 0, PROTO_MESSAGE_MAX},
    {"retry_after_ms", FIELD_TRAIL_INT, RES_AT(retry_after_ms), 0, 0, 0},
};

#define RESULT_FIELD_COUNT ((uint32_t)(sizeof result_fields / sizeof result_fields[0]))
_Static_assert(sizeof result_fields / sizeof result_fields[0] < 16, "a fixarray header");

static bool cmd_type_is_known(uint64_t type)
{
    /* Types are assigned explicit values: a gap in the table is unknown. */
    return type >= PROTO_CMD_ACCOUNT_CREATE && type < PROTO_CMD_TYPE_COUNT &&
           (cmd_schemas[type].fields[0].name != NULL || cmd_schemas[type].is_fieldless);
}

bool proto_cmd_type_is_known(int type)
{
    return type >= 0 && cmd_type_is_known((uint64_t)type);
}

static uint32_t fields_count(const struct field *f, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && f[n].name != NULL)
        n++;
    return n;
}

static uint32_t schema_field_count(const struct cmd_schema *s)
{
    return fields_count(s->fields, CMD_FIELDS_MAX);
}

/* Fields before the trailing optional ones: what every encoding has. */
static uint32_t fields_required(const struct field *f, uint32_t n)
{
    while (n > 0 && f[n - 1].kind == FIELD_TRAIL_INT)
        n--;
    return n;
}

/* How many fields an encoding of `base` writes: trailing optional fields
 * that are 0 at the end are left out. */
static uint32_t fields_to_write(const struct field *f, uint32_t n, const char *base)
{
    uint32_t req = fields_required(f, n);
    while (n > req && *(const int64_t *)(base + f[n - 1].offset) == 0)
        n--;
    return n;
}

/* ---- buffers ---- */

void proto_buf_init(struct proto_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_free(struct proto_buf *b)
{
    free(b->data);
    proto_buf_init(b);
}

int proto_buf_append(struct proto_buf *b, const void *data, size_t len)
{
    assert(b->len <= b->cap);
    if (len == 0)
        return 0;
    if (len > SIZE_MAX - b->len)
        return PROTO_ENOMEM;
    size_t need = b->len + len;
    if (need > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return PROTO_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len = need;
    return 0;
}

/* ---- encoding ---- */

/*
 * A direct msgpack writer into a proto_buf.  It emits exactly the bytes
 * msgpack-c's packer emits (smallest form for every integer and header,
 * str8 for 32..255-byte strings; test_proto compares the two), because
 * fingerprints and the state hash cover encoded commands and results.  It
 * replaced the packer's write callback per token, which was most of the
 * encoding time.  Every writer returns non-zero when the buffer cannot grow.
 */

/* Room for n more bytes; the pointer to write them at, or NULL. */
static inline uint8_t *wr_room(struct proto_buf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t len = b->len;
        if (n > SIZE_MAX - len)
            return NULL;
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap < len + n)
            cap = cap > SIZE_MAX / 2 ? len + n : cap * 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return NULL;
        b->data = p;
        b->cap = cap;
    }
    return (uint8_t *)b->data + b->len;
}

static inline void wr_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* The put_* writers store at p, into room reserved beforehand (at most
 * PUT_INT_MAX bytes for a number), and return where the next value goes. */
#define PUT_INT_MAX 9

static inline uint8_t *put_tagged(uint8_t *p, uint8_t tag, uint64_t v, int bytes)
{
    p[0] = tag;
    wr_be(p + 1, v, bytes);
    return p + 1 + bytes;
}

static inline uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p = (uint8_t)v;
        return p + 1;
    }
    if (v < (1u << 8))
        return put_tagged(p, 0xcc, v, 1);
    if (v < (1u << 16))
        return put_tagged(p, 0xcd, v, 2);
    if (v < (1ull << 32))
        return put_tagged(p, 0xce, v, 4);
    return put_tagged(p, 0xcf, v, 8);
}

static inline uint8_t *put_int(uint8_t *p, int64_t v)
{
    if (v >= -32 && v < 128) {
        *p = (uint8_t)v; /* positive or negative fixint */
        return p + 1;
    }
    if (v >= 128)
        return put_uint(p, (uint64_t)v);
    if (v >= -(1 << 7))
        return put_tagged(p, 0xd0, (uint64_t)v & 0xff, 1);
    if (v >= -(1 << 15))
        return put_tagged(p, 0xd1, (uint64_t)v & 0xffff, 2);
    if (v >= -(1ll << 31))
        return put_tagged(p, 0xd2, (uint64_t)v & 0xffffffffu, 4);
    return put_tagged(p, 0xd3, (uint64_t)v, 8);
}

/* A str header (fixstr, str8, str16, str32) and the bytes. */
static inline uint8_t *put_str(uint8_t *p, const void *data, uint32_t len)
{
    if (len < 32)
        *p++ = (uint8_t)(0xa0 | len);
    else if (len < (1u << 8))
        p = put_tagged(p, 0xd9, len, 1);
    else if (len < (1u << 16))
        p = put_tagged(p, 0xda, len, 2);
    else
        p = put_tagged(p, 0xdb, len, 4);
    if (len > 0)
        memcpy(p, data, len);
    return p + len;
}

/* A value of at most `max` bytes put by `put`, with its room checked. */
#define WR_PUT(b, max, put)                                                    \
    do {                                                                       \
        uint8_t *p_ = wr_room((b), (max));                                     \
        if (p_ == NULL)                                                        \
            return -1;                                                         \
        (b)->len = (size_t)((put) - (uint8_t *)(b)->data);                     \
        return 0;                                                              \
    } while (0)

/* A type byte followed by `bytes` big-endian bytes of v. */
static inline int wr_tagged(struct proto_buf *b, uint8_t tag, uint64_t v, int bytes)
{
    WR_PUT(b, 1 + (size_t)bytes, put_tagged(p_, tag, v, bytes));
}

static inline int wr_byte(struct proto_buf *b, uint8_t v)
{
    uint8_t *p = wr_room(b, 1);
    if (p == NULL)
        return -1;
    *p = v;
    b->len++;
    return 0;
}

static int wr_nil(struct proto_buf *b)
{
    return wr_byte(b, 0xc0);
}

static int wr_uint(struct proto_buf *b, uint64_t v)
{
    WR_PUT(b, PUT_INT_MAX, put_uint(p_, v));
}

static int wr_int(struct proto_buf *b, int64_t v)
{
    WR_PUT(b, PUT_INT_MAX, put_int(p_, v));
}

/* An array (0x90/0xdc/0xdd) or map (0x80/0xde/0xdf) header. */
static int wr_container(struct proto_buf *b, uint32_t n, uint8_t fix, uint8_t tag16)
{
    if (n < 16)
        return wr_byte(b, (uint8_t)(fix | n));
    if (n < (1u << 16))
        return wr_tagged(b, tag16, n, 2);
    return wr_tagged(b, (uint8_t)(tag16 + 1), n, 4);
}

static int wr_array(struct proto_buf *b, uint32_t n)
{
    return wr_container(b, n, 0x90, 0xdc);
}

static int wr_raw(struct proto_buf *b, const void *data, uint32_t len)
{
    if (len == 0)
        return 0;
    uint8_t *p = wr_room(b, len);
    if (p == NULL)
        return -1;
    memcpy(p, data, len);
    b->len += len;
    return 0;
}

static int pack_str(struct proto_buf *b, struct proto_str s)
{
    assert(s.ptr != NULL || s.len == 0);
    WR_PUT(b, 5 + (size_t)s.len, put_str(p_, s.ptr, s.len));
}

static int pack_bin(struct proto_buf *b, struct proto_str s)
{
    assert(s.ptr != NULL || s.len == 0);
    int rc;
    if (s.len < (1u << 8))
        rc = wr_tagged(b, 0xc4, s.len, 1);
    else if (s.len < (1u << 16))
        rc = wr_tagged(b, 0xc5, s.len, 2);
    else
        rc = wr_tagged(b, 0xc6, s.len, 4);
    return rc != 0 ? rc : wr_raw(b, s.ptr, s.len);
}

static int pack_map(struct proto_buf *b, const struct proto_map *m)
{
    assert(m->count <= PROTO_MAP_MAX);
    if (wr_container(b, m->count, 0x80, 0xde) != 0)
        return -1;
    for (uint32_t i = 0; i < m->count; i++) {
        if (pack_str(b, m->kv[i].key) != 0 || pack_str(b, m->kv[i].value) != 0)
            return -1;
    }
    return 0;
}

static int pack_list(struct proto_buf *b, const struct proto_list *l)
{
    assert(l->count <= PROTO_LIST_MAX);
    if (wr_array(b, l->count) != 0)
        return -1;
    for (uint32_t i = 0; i < l->count; i++) {
        if (pack_str(b, l->item[i]) != 0)
            return -1;
    }
    return 0;
}

static int pack_chars(struct proto_buf *b, const char *c, uint32_t max)
{
    struct proto_str s = {c, (uint32_t)strnlen(c, max)};
    return pack_str(b, s);
}

/* Pack one field of the struct at `base`; non-zero when the buffer failed. */
static int field_encode(struct proto_buf *b, const struct field *f, const char *base)
{
    const void *at = base + f->offset;
    switch (f->kind) {
    case FIELD_STR: return pack_str(b, *(const struct proto_str *)at);
    case FIELD_BIN: return pack_bin(b, *(const struct proto_str *)at);
    case FIELD_INT: return wr_int(b, *(const int64_t *)at);
    case FIELD_OPT_INT: {
        int64_t v = *(const int64_t *)at;
        return v == PROTO_UNSET ? wr_nil(b) : wr_int(b, v);
    }
    case FIELD_UINT: return wr_uint(b, *(const uint64_t *)at);
    case FIELD_MAP: return pack_map(b, at);
    case FIELD_OPT_MAP:
        if (!*(const bool *)(base + f->flag_offset))
            return wr_nil(b);
        return pack_map(b, at);
    case FIELD_LIST: return pack_list(b, at);
    case FIELD_CHARS: return pack_chars(b, at, f->len_max);
    case FIELD_ENUM32: return wr_int(b, *(const int32_t *)at);
    case FIELD_TRAIL_INT: return wr_int(b, *(const int64_t *)at);
    }
    assert(!"unknown field kind");
    return -1;
}

static int cmd_pack(struct proto_buf *b, const struct proto_cmd *cmd)
{
    assert(cmd_type_is_known(cmd->type));
    const struct cmd_schema *s = &cmd_schemas[cmd->type];
    uint32_t n = fields_to_write(s->fields, schema_field_count(s), (const char *)cmd);
    if (wr_array(b, CMD_HEADER_COUNT + n) != 0 || wr_uint(b, cmd->type) != 0 ||
        wr_uint(b, cmd->role) != 0 || pack_str(b, cmd->key) != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (field_encode(b, &s->fields[i], (const char *)cmd) != 0)
            return -1;
    }
    return 0;
}

static int entry_pack(struct proto_buf *b, const struct proto_entry *entry)
{
    assert(entry->cmd_count == 0 || entry->cmds != NULL);
    if (wr_array(b, 2) != 0 || wr_int(b, entry->timestamp_ms) != 0 ||
        wr_array(b, entry->cmd_count) != 0)
        return -1;
    for (uint32_t i = 0; i < entry->cmd_count; i++) {
        if (cmd_pack(b, &entry->cmds[i]) != 0)
            return -1;
    }
    return 0;
}

/* Most a result's encoding can take: its array header, numbers, and the
 * two strings with str8 headers. */
#define RESULT_BYTES_MAX                                                       \
    (1 + RESULT_FIELD_COUNT * PUT_INT_MAX + 2 * 2 + PROTO_NAME_MAX + PROTO_MESSAGE_MAX)

/* One field of a result (numbers and strings only) into reserved room. */
static uint8_t *result_field_put(uint8_t *p, const struct field *f, const char *base)
{
    const void *at = base + f->offset;
    switch (f->kind) {
    case FIELD_INT:
    case FIELD_TRAIL_INT: return put_int(p, *(const int64_t *)at);
    case FIELD_UINT: return put_uint(p, *(const uint64_t *)at);
    case FIELD_ENUM32: return put_int(p, *(const int32_t *)at);
    case FIELD_CHARS: return put_str(p, at, (uint32_t)strnlen(at, f->len_max));
    default: break;
    }
    assert(!"a result has numbers and strings only");
    return p;
}

/* Every result is encoded for the idempotency store and again for the
 * caller: the room is reserved once, not per field. */
static int result_pack(struct proto_buf *b, const struct proto_result *res)
{
    uint32_t n = fields_to_write(result_fields, RESULT_FIELD_COUNT, (const char *)res);
    uint8_t *p = wr_room(b, RESULT_BYTES_MAX);
    if (p == NULL)
        return -1;
    *p++ = (uint8_t)(0x90 | n); /* n < 16 */
    for (uint32_t i = 0; i < n; i++)
        p = result_field_put(p, &result_fields[i], (const char *)res);
    b->len = (size_t)(p - (uint8_t *)b->data);
    return 0;
}

/* The encoders either append a whole value or leave `out` as it was. */
static int encode_finish(struct proto_buf *out, size_t start_len, int rc)
{
    if (rc == 0)
        return 0;
    out->len = start_len;
    return PROTO_ENOMEM;
}

int proto_entry_encode(struct proto_buf *out, const struct proto_entry *entry)
{
    size_t start_len = out->len;
    int rc = wr_byte(out, PROTO_VERSION);
    if (rc == 0)
        rc = entry_pack(out, entry);
    return encode_finish(out, start_len, rc);
}

int proto_cmd_encode(struct proto_buf *out, const struct proto_cmd *cmd)
{
    size_t start_len = out->len;
    return encode_finish(out, start_len, cmd_pack(out, cmd));
}

int proto_result_encode(struct proto_buf *out, const struct proto_result *res)
{
    size_t start_len = out->len;
    return encode_finish(out, start_len, result_pack(out, res));
}

int proto_map_encode(struct proto_buf *out, const struct proto_map *m)
{
    size_t start_len = out->len;
    return encode_finish(out, start_len, pack_map(out, m));
}

/* ---- decoding ---- */

/* Where the decoder is, for error messages; formatted only on failure. */
struct dec {
    struct mp_reader r;
    struct proto_error *err;
    const char *what;  /* "entry", "command", "result" */
    int64_t cmd_index; /* position in the entry's batch, or -1 */
    uint8_t cmd_type;  /* once known, else 0 */
};

/* The thing an error is about: a field, optionally one part of it ("key 2"
 * of a map, "item 0" of a list).  field NULL: the value being decoded. */
struct subject {
    const char *field;
    const char *part;
    uint32_t index;
};

/* Subjects go by pointer to a literal: built as a value and passed by
 * value, each one stalled the decoder on its store and reload (a subject
 * is read only when a decode fails). */
#define subject_field(field) (&(const struct subject){(field), NULL, 0})
#define subject_part(field, part, index) (&(const struct subject){(field), (part), (index)})

/* Append to a message buffer; output past the end is cut, not overrun. */
__attribute__((format(printf, 3, 0)))
static void msg_vappend(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t len = strnlen(buf, cap);
    if (len + 1 < cap)
        vsnprintf(buf + len, cap - len, fmt, ap);
}

__attribute__((format(printf, 3, 4)))
static void msg_append(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vappend(buf, cap, fmt, ap);
    va_end(ap);
}

/* "command 3 (reserve): field \"metadata\" key 2: " and the like. */
static void dec_prefix_write(const struct dec *d, const struct subject *s, char *buf,
                             size_t cap)
{
    buf[0] = '\0';
    msg_append(buf, cap, "%s", d->what);
    if (d->cmd_index >= 0)
        msg_append(buf, cap, " %" PRId64, d->cmd_index);
    if (d->cmd_type != 0)
        msg_append(buf, cap, " (%s)", proto_cmd_type_name(d->cmd_type));
    if (s->field != NULL)
        msg_append(buf, cap, ": field \"%s\"", s->field);
    if (s->part != NULL)
        msg_append(buf, cap, " %s %" PRIu32, s->part, s->index);
    msg_append(buf, cap, ": ");
}

__attribute__((format(printf, 4, 5)))
static int dec_fail(struct dec *d, int code, const struct subject *s, const char *fmt, ...)
{
    va_list ap;
    dec_prefix_write(d, s, d->err->message, sizeof d->err->message);
    va_start(ap, fmt);
    msg_vappend(d->err->message, sizeof d->err->message, fmt, ap);
    va_end(ap);
    d->err->code = code;
    return code;
}

/* Turn an mp.c error, met while reading an `expected`, into a decode error. */
static int dec_mp_fail(struct dec *d, int rc, const struct subject *s, const char *expected)
{
    switch (rc) {
    case MP_ETRUNC:
        return dec_fail(d, PROTO_EMALFORMED, s, "truncated %s", expected);
    case MP_ETYPE:
        return dec_fail(d, PROTO_EMALFORMED, s, "expected %s, got %s", expected,
                        mp_type_name(&d->r));
    default:
        return dec_fail(d, PROTO_EMALFORMED, s, "%s", mp_strerror(rc));
    }
}

/* A container header; count bombs are malformed, not just big. */
static int dec_container(struct dec *d, const struct subject *s, bool is_map, uint32_t *count)
{
    size_t left = mp_reader_left(&d->r);
    int rc = is_map ? mp_map_read(&d->r, count) : mp_array_read(&d->r, count);
    const char *noun = is_map ? "map" : "array";
    if (rc == MP_ECOUNT)
        return dec_fail(d, PROTO_EMALFORMED, s, "%s of %" PRIu32 " %s cannot fit in the %zu "
                        "bytes left", noun, *count, is_map ? "entries" : "items", left);
    if (rc != MP_OK)
        return dec_mp_fail(d, rc, s, noun);
    return 0;
}

/* An array of exactly `want` items. */
static int dec_array_exact(struct dec *d, const struct subject *s, uint32_t want, const char *items)
{
    uint32_t n;
    int rc = dec_container(d, s, false, &n);
    if (rc != 0)
        return rc;
    if (n != want)
        return dec_fail(d, PROTO_EMALFORMED, s, "array of %" PRIu32 " items, expected %"
                        PRIu32 " (%s)", n, want, items);
    return 0;
}

static int dec_str(struct dec *d, const struct subject *s, uint32_t len_min, uint32_t len_max,
                   struct proto_str *out)
{
    int rc = mp_str_read(&d->r, &out->ptr, &out->len);
    if (rc != MP_OK)
        return dec_mp_fail(d, rc, s, "string");
    if (len_min == len_max && out->len != len_max)
        return dec_fail(d, PROTO_ELIMIT, s, "string of %" PRIu32 " bytes, expected %" PRIu32,
                        out->len, len_max);
    if (out->len > len_max)
        return dec_fail(d, PROTO_ELIMIT, s, "string of %" PRIu32 " bytes exceeds %" PRIu32,
                        out->len, len_max);
    if (out->len < len_min)
        return dec_fail(d, PROTO_ELIMIT, s, "string of %" PRIu32 " bytes, at least %" PRIu32,
                        out->len, len_min);
    return 0;
}

static int dec_bin(struct dec *d, const struct subject *s, uint32_t len, struct proto_str *out)
{
    const uint8_t *p;
    int rc = mp_bin_read(&d->r, &p, &out->len);
    if (rc != MP_OK)
        return dec_mp_fail(d, rc, s, "binary");
    out->ptr = (const char *)p;
    if (out->len != len)
        return dec_fail(d, PROTO_ELIMIT, s, "binary of %" PRIu32 " bytes, expected %" PRIu32,
                        out->len, len);
    return 0;
}

/* `expected` names what the field takes, for the wrong-type message. */
static int dec_int_as(struct dec *d, const struct subject *s, const char *expected, int64_t *out)
{
    int rc = mp_int_read(&d->r, out);
    if (rc == MP_ERANGE)
        return dec_fail(d, PROTO_ELIMIT, s, "integer above %" PRId64, INT64_MAX);
    return rc == MP_OK ? 0 : dec_mp_fail(d, rc, s, expected);
}

static int dec_int(struct dec *d, const struct subject *s, int64_t *out)
{
    return dec_int_as(d, s, "signed 64-bit integer", out);
}

static int dec_opt_int(struct dec *d, const struct subject *s, int64_t *out)
{
    if (mp_nil_read(&d->r) == MP_OK) {
        *out = PROTO_UNSET;
        return 0;
    }
    return dec_int_as(d, s, "signed 64-bit integer or nil", out);
}

static int dec_uint(struct dec *d, const struct subject *s, uint64_t *out)
{
    int rc = mp_uint_read(&d->r, out);
    if (rc == MP_ERANGE)
        return dec_fail(d, PROTO_ELIMIT, s, "negative integer, expected unsigned");
    return rc == MP_OK ? 0 : dec_mp_fail(d, rc, s, "unsigned integer");
}

static bool map_has_key(const struct proto_map *m, uint32_t count, struct proto_str key)
{
    for (uint32_t i = 0; i < count; i++) {
        if (m->kv[i].key.len == key.len && memcmp(m->kv[i].key.ptr, key.ptr, key.len) == 0)
            return true;
    }
    return false;
}

/* `s` as message text: at most cap - 1 bytes, '?' for what is not
 * printable ASCII (keys come from users and end up in logs). */
static const char *str_printable(struct proto_str s, char *buf, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[n] = '\0';
    return buf;
}

static int dec_map(struct dec *d, const char *field, struct proto_map *m)
{
    const uint8_t *start = d->r.pos;
    uint32_t n;
    int rc = dec_container(d, subject_field(field), true, &n);
    if (rc != 0)
        return rc;
    if (n > PROTO_MAP_MAX)
        return dec_fail(d, PROTO_ELIMIT, subject_field(field),
                        "map of %" PRIu32 " entries exceeds %d", n, PROTO_MAP_MAX);
    for (uint32_t i = 0; i < n; i++) {
        struct proto_kv *kv = &m->kv[i];
        rc = dec_str(d, subject_part(field, "key", i), 0, PROTO_MAP_KEY_MAX, &kv->key);
        if (rc == 0)
            rc = dec_str(d, subject_part(field, "value", i), 0, PROTO_MAP_VALUE_MAX, &kv->value);
        if (rc != 0)
            return rc;
        if (map_has_key(m, i, kv->key)) {
            char text[33];
            return dec_fail(d, PROTO_EMALFORMED, subject_part(field, "key", i),
                            "duplicate key \"%s\"", str_printable(kv->key, text, sizeof text));
        }
    }
    m->count = n;
    m->raw.ptr = (const char *)start;
    m->raw.len = (uint32_t)(d->r.pos - start);
    return 0;
}

static int dec_opt_map(struct dec *d, const char *field, struct proto_map *m, bool *is_set)
{
    if (mp_nil_read(&d->r) == MP_OK) {
        *is_set = false;
        return 0;
    }
    *is_set = true;
    return dec_map(d, field, m);
}

static int dec_list(struct dec *d, const char *field, uint32_t item_max, struct proto_list *l)
{
    uint32_t n;
    int rc = dec_container(d, subject_field(field), false, &n);
    if (rc != 0)
        return rc;
    if (n > PROTO_LIST_MAX)
        return dec_fail(d, PROTO_ELIMIT, subject_field(field),
                        "list of %" PRIu32 " items exceeds %d", n, PROTO_LIST_MAX);
    for (uint32_t i = 0; i < n; i++) {
        rc = dec_str(d, subject_part(field, "item", i), 0, item_max, &l->item[i]);
        if (rc != 0)
            return rc;
    }
    l->count = n;
    return 0;
}

/* A string copied into char[max + 1]; NUL bytes could not survive that. */
static int dec_chars(struct dec *d, const struct subject *s, uint32_t max, char *out)
{
    struct proto_str str;
    int rc = dec_str(d, s, 0, max, &str);
    if (rc != 0)
        return rc;
    if (str.len > 0 && memchr(str.ptr, '\0', str.len) != NULL)
        return dec_fail(d, PROTO_EMALFORMED, s, "string contains a NUL byte");
    if (str.len > 0)
        memcpy(out, str.ptr, str.len);
    out[str.len] = '\0';
    return 0;
}

static int dec_enum32(struct dec *d, const struct subject *s, uint32_t count, int32_t *out)
{
    int64_t v;
    int rc = dec_int(d, s, &v);
    if (rc != 0)
        return rc;
    if (v < 0 || v >= (int64_t)count)
        return dec_fail(d, PROTO_ELIMIT, s, "%" PRId64 " is not in 0..%" PRIu32, v, count - 1);
    *out = (int32_t)v;
    return 0;
}

/* Decode one field into the struct at `base`. */
static int field_decode(struct dec *d, const struct field *f, char *base)
{
    void *at = base + f->offset;
    const struct subject *s = subject_field(f->name);
    switch (f->kind) {
    case FIELD_STR: return dec_str(d, s, f->len_min, f->len_max, at);
    case FIELD_BIN: return dec_bin(d, s, f->len_max, at);
    case FIELD_INT: return dec_int(d, s, at);
    case FIELD_OPT_INT: return dec_opt_int(d, s, at);
    case FIELD_UINT: return dec_uint(d, s, at);
    case FIELD_MAP: return dec_map(d, f->name, at);
    case FIELD_OPT_MAP: return dec_opt_map(d, f->name, at, (bool *)(base + f->flag_offset));
    case FIELD_LIST: return dec_list(d, f->name, f->len_max, at);
    case FIELD_CHARS: return dec_chars(d, s, f->len_max, at);
    case FIELD_ENUM32: return dec_enum32(d, s, f->len_max, at);
    case FIELD_TRAIL_INT: return dec_int(d, s, at);
    }
    assert(!"unknown field kind");
    return PROTO_EMALFORMED;
}

/* The array header and the type of a command. */
static int cmd_type_decode(struct dec *d, uint32_t *n, uint64_t *type)
{
    int rc = dec_container(d, subject_field(NULL), false, n);
    if (rc != 0)
        return rc;
    if (*n == 0)
        return dec_fail(d, PROTO_EMALFORMED, subject_field(NULL), "empty array");
    rc = dec_uint(d, subject_field("type"), type);
    if (rc != 0)
        return rc;
    if (!cmd_type_is_known(*type))
        return dec_fail(d, PROTO_EMALFORMED, subject_field("type"),
                        "unknown command type %" PRIu64, *type);
    return 0;
}

/* Zero a command about to be decoded with schema s: all of it but the pairs
 * of s's maps, which the decoder fills up to their count and nothing reads
 * beyond — 512 of a command's 640 bytes, and zeroing them was most of the
 * cost of decoding an entry. */
static void cmd_clear(struct proto_cmd *cmd, const struct cmd_schema *s)
{
    size_t from = 0;
    for (uint32_t i = 0; i < CMD_FIELDS_MAX && s->fields[i].name; i++) {
        const struct field *f = &s->fields[i];
        if (f->kind != FIELD_MAP && f->kind != FIELD_OPT_MAP)
            continue;
        size_t kv = f->offset + offsetof(struct proto_map, kv);
        if (kv < from)
            continue; /* zeroed already */
        memset((char *)cmd + from, 0, kv - from);
        from = kv + sizeof(((struct proto_map *)NULL)->kv);
    }
    memset((char *)cmd + from, 0, sizeof *cmd - from);
}

/* [type, role, key, fields...]; the type fixes how many fields follow. */
static int cmd_decode(struct dec *d, struct proto_cmd *cmd)
{
    uint32_t n;
    uint64_t type, role;
    const uint8_t *start = d->r.pos;
    d->cmd_type = 0;
    int rc = cmd_type_decode(d, &n, &type);
    if (rc != 0) {
        memset(cmd, 0, sizeof *cmd);
        return rc;
    }
    d->cmd_type = (uint8_t)type;
    const struct cmd_schema *s = &cmd_schemas[type];
    cmd_clear(cmd, s);
    uint32_t field_count = schema_field_count(s);
    uint32_t required = fields_required(s->fields, field_count);
    if (n < CMD_HEADER_COUNT + required || n > CMD_HEADER_COUNT + field_count) {
        if (required == field_count)
            return dec_fail(d, PROTO_EMALFORMED, subject_field(NULL),
                            "array of %" PRIu32 " items, expected %" PRIu32
                            " (type, role, key and %" PRIu32 " fields)",
                            n, CMD_HEADER_COUNT + field_count, field_count);
        return dec_fail(d, PROTO_EMALFORMED, subject_field(NULL),
                        "array of %" PRIu32 " items, expected %" PRIu32 " to %" PRIu32
                        " (type, role, key and %" PRIu32 " to %" PRIu32 " fields)",
                        n, CMD_HEADER_COUNT + required, CMD_HEADER_COUNT + field_count,
                        required, field_count);
    }
    field_count = n - CMD_HEADER_COUNT; /* absent trailing fields stay 0 */
    rc = dec_uint(d, subject_field("role"), &role);
    if (rc != 0)
        return rc;
    if (role != PROTO_ROLE_AGENT && role != PROTO_ROLE_ADMIN)
        return dec_fail(d, PROTO_EMALFORMED, subject_field("role"),
                        "unknown role %" PRIu64, role);
    rc = dec_str(d, subject_field("key"), 0, PROTO_KEY_MAX, &cmd->key);
    if (rc != 0)
        return rc;
    cmd->type = (uint8_t)type;
    cmd->role = (uint8_t)role;
    for (uint32_t i = 0; i < field_count; i++) {
        rc = field_decode(d, &s->fields[i], (char *)cmd);
        if (rc != 0)
            return rc;
    }
    if (d->cmd_index >= 0) /* inside an entry */
        cmd->encoded = (struct proto_str){(const char *)start, (uint32_t)(d->r.pos - start)};
    return 0;
}

static int dec_start(struct dec *d, const char *what, const void *data, size_t len,
                     struct proto_error *err)
{
    memset(d, 0, sizeof *d);
    d->err = err;
    d->what = what;
    d->cmd_index = -1;
    err->code = 0;
    err->message[0] = '\0';
    if (len > PROTO_ENTRY_BYTES_MAX)
        return dec_fail(d, PROTO_ELIMIT, subject_field(NULL), "%zu bytes exceed %u",
                        len, PROTO_ENTRY_BYTES_MAX);
    mp_reader_init(&d->r, data, len);
    return 0;
}

static int dec_finish(struct dec *d)
{
    size_t left = mp_reader_left(&d->r);
    d->cmd_index = -1;
    d->cmd_type = 0;
    if (left != 0)
        return dec_fail(d, PROTO_EMALFORMED, subject_field(NULL), "%zu trailing bytes", left);
    return 0;
}

static int entry_commands_decode(struct dec *d, struct proto_cmd *cmds, uint32_t cmds_max,
                                 uint32_t *count)
{
    const struct subject *s = subject_field("commands");
    int rc = dec_container(d, s, false, count);
    if (rc != 0)
        return rc;
    if (*count > PROTO_BATCH_MAX)
        return dec_fail(d, PROTO_ELIMIT, s, "%" PRIu32 " commands exceed %d", *count,
                        PROTO_BATCH_MAX);
    if (*count > cmds_max)
        return dec_fail(d, PROTO_ELIMIT, s, "%" PRIu32 " commands exceed room for %" PRIu32,
                        *count, cmds_max);
    assert(*count == 0 || cmds != NULL);
    d->what = "command";
    for (uint32_t i = 0; i < *count; i++) {
        d->cmd_index = i;
        rc = cmd_decode(d, &cmds[i]);
        if (rc != 0)
            return rc;
    }
    d->what = "entry";
    d->cmd_index = -1;
    d->cmd_type = 0;
    return 0;
}

int proto_entry_decode(const void *data, size_t len, struct proto_entry *out,
                       struct proto_cmd *cmds, uint32_t cmds_max,
                       struct proto_error *err)
{
    struct dec d;
    struct proto_error scratch;
    int64_t timestamp_ms;
    uint32_t count;
    memset(out, 0, sizeof *out);
    int rc = dec_start(&d, "entry", data, len, err != NULL ? err : &scratch);
    if (rc != 0)
        return rc;
    if (len == 0)
        return dec_fail(&d, PROTO_EMALFORMED, subject_field(NULL), "no version byte");
    uint8_t version = ((const uint8_t *)data)[0];
    if (version != PROTO_VERSION)
        return dec_fail(&d, PROTO_EVERSION, subject_field(NULL),
                        "version %u, expected %d", version, PROTO_VERSION);
    mp_reader_init(&d.r, (const uint8_t *)data + 1, len - 1);
    rc = dec_array_exact(&d, subject_field(NULL), 2, "timestamp_ms, commands");
    if (rc == 0)
        rc = dec_int(&d, subject_field("timestamp_ms"), &timestamp_ms);
    if (rc == 0)
        rc = entry_commands_decode(&d, cmds, cmds_max, &count);
    if (rc == 0)
        rc = dec_finish(&d);
    if (rc != 0)
        return rc;
    out->timestamp_ms = timestamp_ms;
    out->cmd_count = count;
    out->cmds = cmds;
    return 0;
}

int proto_cmd_decode(const void *data, size_t len, struct proto_cmd *cmd,
                     struct proto_error *err)
{
    struct dec d;
    struct proto_error scratch;
    int rc = dec_start(&d, "command", data, len, err != NULL ? err : &scratch);
    if (rc == 0)
        rc = cmd_decode(&d, cmd); /* zeroes cmd first */
    else
        memset(cmd, 0, sizeof *cmd);
    if (rc == 0)
        rc = dec_finish(&d);
    return rc;
}

int proto_result_decode(const void *data, size_t len, struct proto_result *res,
                        struct proto_error *err)
{
    struct dec d;
    struct proto_error scratch;
    memset(res, 0, sizeof *res);
    int rc = dec_start(&d, "result", data, len, err != NULL ? err : &scratch);
    uint32_t n = 0;
    uint32_t required = fields_required(result_fields, RESULT_FIELD_COUNT);
    if (rc == 0)
        rc = dec_container(&d, subject_field(NULL), false, &n);
    if (rc == 0 && (n < required || n > RESULT_FIELD_COUNT))
        rc = dec_fail(&d, PROTO_EMALFORMED, subject_field(NULL),
                      "array of %" PRIu32 " items, expected %" PRIu32 " to %" PRIu32
                      " (status .. message, retry_after_ms)", n, required, RESULT_FIELD_COUNT);
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rc = field_decode(&d, &result_fields[i], (char *)res);
    if (rc == 0)
        rc = dec_finish(&d);
    return rc;
}
