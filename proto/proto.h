/*
 * proto.h — purser's vocabulary: the commands the ledger applies, the results
 * it answers, and their msgpack encoding.
 *
 * An *entry* is what one raft log entry carries: a leader timestamp and a
 * batch of commands.  On the wire it is one version byte (PROTO_VERSION)
 * followed by the msgpack array [timestamp_ms, [cmd, cmd, ...]].  A command is
 * a msgpack array [type, role, key, fields...] whose fields depend on the
 * type (the table in codec.c is the schema).  A result is
 * [status, id, amount, remaining, expires_at, transfer_id, overrun, returned,
 * name, message].
 *
 * Decoding is strict and zero-copy: strings in a decoded command point into
 * the caller's buffer, which must outlive the command.  The decoder never
 * allocates, never reads past the buffer, rejects trailing bytes, unknown
 * types, wrong field types, and every value beyond the limits below.
 *
 * Money is int64 micro-dollars everywhere (1 USD = 1 000 000).
 */
#ifndef PURSER_PROTO_H
#define PURSER_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define PROTO_VERSION 1

/* Limits, enforced where data enters (the decoder) and named in errors. */
#define PROTO_NAME_MAX 255          /* account path, bytes */
#define PROTO_NAME_DEPTH_MAX 8      /* segments in an account path */
#define PROTO_SEGMENT_MAX 64        /* bytes in one path segment */
#define PROTO_KEY_MAX 128           /* idempotency key, bytes */
#define PROTO_MAP_MAX 16            /* entries in tags or metadata */
#define PROTO_MAP_KEY_MAX 64        /* bytes in a tag/metadata key */
#define PROTO_MAP_VALUE_MAX 256     /* bytes in a tag/metadata value */
#define PROTO_LIST_MAX 16           /* items in a string list */
#define PROTO_TEXT_MAX 256          /* free strings: model, workflow, key id, reason */
#define PROTO_BATCH_MAX 4096        /* commands in one entry */
#define PROTO_ENTRY_BYTES_MAX (16u << 20)
#define PROTO_AMOUNT_MAX 1000000000000000LL /* 1e9 USD in micros */
#define PROTO_TTL_MAX_MS (366LL * 24 * 3600 * 1000)
#define PROTO_TZ_MAX_MIN (14 * 60)  /* UTC offsets from -14:00 to +14:00 */
#define PROTO_HASH_BYTES 32         /* SHA-256 of an API key */
#define PROTO_MESSAGE_MAX 191       /* a result's message, bytes */

/* "No value" for optional integers (cap in an update, ...). */
#define PROTO_UNSET INT64_MIN
/* A cap of PROTO_CAP_NONE means uncapped. */
#define PROTO_CAP_NONE (-1LL)
/* remaining_micros when nothing on the path is capped. */
#define PROTO_UNLIMITED INT64_MAX

enum proto_cmd_type {
    PROTO_CMD_ACCOUNT_CREATE = 1,
    PROTO_CMD_ACCOUNT_UPDATE,
    PROTO_CMD_ACCOUNT_FREEZE,
    PROTO_CMD_ACCOUNT_UNFREEZE,
    PROTO_CMD_ACCOUNT_CLOSE,
    PROTO_CMD_RESERVE,
    PROTO_CMD_COMMIT,
    PROTO_CMD_RELEASE,
    PROTO_CMD_EXPIRE,
    PROTO_CMD_TRANSFER,
    PROTO_CMD_GRANT_CREATE,
    PROTO_CMD_GRANT_CLOSE,
    PROTO_CMD_PERIOD_CLOSE,
    PROTO_CMD_PRICE_SET,
    PROTO_CMD_KEY_CREATE,
    PROTO_CMD_KEY_REVOKE,
    PROTO_CMD_POLICY_SET,
    PROTO_CMD_BREAKER_SET = 18, /* velocity / bedtime circuit breaker of an account */
    PROTO_CMD_ALERT_SET = 19,   /* spend thresholds (percent of cap) of an account */
    PROTO_CMD_EVENT_ACK = 20,   /* drop a delivered event from the outbox */
    PROTO_CMD_RATE_LIMIT_SET = 21, /* requests / tokens per window of a scope */
    PROTO_CMD_APPROVAL_SET = 22,   /* the p90 above which agents need approval */
    PROTO_CMD_TYPE_COUNT /* one past the last; a gap is an unknown type */
};

/* Who issued a command.  The cluster sets it from the connection's proven
 * role; the ledger trusts it (entries come only from the leader). */
enum proto_role {
    PROTO_ROLE_AGENT = 0, /* a gateway acting for an agent key */
    PROTO_ROLE_ADMIN = 1,
};

enum proto_period {
    PROTO_PERIOD_NONE = 0,
    PROTO_PERIOD_DAY = 1,
    PROTO_PERIOD_WEEK = 2, /* ISO weeks, starting Monday 00:00 local */
    PROTO_PERIOD_MONTH = 3,
};

/* Journal posting kinds. */
enum proto_kind {
    PROTO_KIND_SPEND = 1,
    PROTO_KIND_CHARGEBACK = 2,
    PROTO_KIND_GRANT = 3, /* reserved: grants are holds, they post nothing */
    PROTO_KIND_ADJUSTMENT = 4,
};

/* What expire() does with a reservation past its deadline. */
enum proto_on_expire {
    PROTO_ON_EXPIRE_RELEASE = 0, /* free the hold (the default) */
    PROTO_ON_EXPIRE_CHARGE = 1,  /* post the whole hold as spend */
};

/* Result status.  PROTO_OK or a refusal; a refusal is a normal result. */
enum proto_status {
    PROTO_OK = 0,
    PROTO_ERR_INVALID = 1,         /* bad input; message names the field */
    PROTO_ERR_NOT_FOUND = 2,       /* unknown account, reservation, grant, ... */
    PROTO_ERR_EXISTS = 3,          /* create of something that exists */
    PROTO_ERR_BUDGET_EXCEEDED = 4, /* name = the limiting account */
    PROTO_ERR_FROZEN = 5,          /* name = the frozen account on the path */
    PROTO_ERR_CLOSED = 6,          /* name = the closed account on the path */
    PROTO_ERR_GRANT_EXPIRED = 7,   /* name = the grant account */
    PROTO_ERR_PERIOD_CLOSED = 8,
    PROTO_ERR_FORBIDDEN = 9,       /* role may not do this */
    PROTO_ERR_CONFLICT = 10,       /* state forbids it (commit after release,
                                      key reused for another request, ...) */
    PROTO_ERR_RATE_LIMITED = 11,   /* a rate limit's window is full; name = the
                                      scope, retry_after_ms = when it has room */
    PROTO_ERR_APPROVAL_REQUIRED = 12, /* the workflow's p90 estimate is above
                                         what the caller may spend alone */
    PROTO_STATUS_COUNT
};

/* A string view.  Not NUL-terminated; points into someone else's buffer. */
struct proto_str {
    const char *ptr;
    uint32_t len;
};

struct proto_kv {
    struct proto_str key;
    struct proto_str value;
};

/* string -> string map (tags, metadata).  `raw` is the map's exact msgpack
 * encoding (set by the decoder, used by the ledger to store it as is; an
 * encoder ignores it and writes the entries). */
struct proto_map {
    uint32_t count;
    struct proto_kv kv[PROTO_MAP_MAX];
    struct proto_str raw;
};

struct proto_list {
    uint32_t count;
    struct proto_str item[PROTO_LIST_MAX];
};

struct proto_account_args {
    struct proto_str name;
    int64_t cap_micros;    /* PROTO_CAP_NONE, >= 0, or PROTO_UNSET (update) */
    int64_t period;        /* enum proto_period, or PROTO_UNSET (update) */
    int64_t tz_offset_min; /* minutes east of UTC, or PROTO_UNSET (update) */
    bool has_tags;         /* update: replace tags only when true */
    struct proto_map tags;
};

/* freeze / unfreeze / close */
struct proto_account_status_args {
    struct proto_str name;
    struct proto_str reason;
};

struct proto_reserve_args {
    struct proto_str account;
    struct proto_str payee;  /* empty: vendor/unknown */
    int64_t amount_micros;
    int64_t ttl_ms;
    int64_t on_expire;       /* enum proto_on_expire */
    struct proto_map metadata;
    /* Trailing optional (absent = 0): the worst-case tokens of the call
     * (prompt bound + max_tokens), counted by token rate limits. */
    int64_t tokens;
};

struct proto_commit_args {
    uint64_t reservation_id;
    int64_t actual_micros;
    struct proto_map metadata; /* if non-empty, replaces the reservation's */
    /* Trailing optional (absent = 0 = unknown): the actual tokens of the
     * call; replaces the reserved tokens in the rate-limit windows. */
    int64_t tokens;
};

struct proto_release_args {
    uint64_t reservation_id;
};

struct proto_transfer_args {
    struct proto_str debit;
    struct proto_str credit;
    int64_t amount_micros;
    int64_t kind; /* PROTO_KIND_CHARGEBACK or PROTO_KIND_ADJUSTMENT */
    struct proto_map metadata;
};

struct proto_grant_create_args {
    struct proto_str parent;
    struct proto_str workflow;
    int64_t amount_micros;
    int64_t ttl_ms;
    struct proto_map metadata;
};

struct proto_grant_close_args {
    uint64_t grant_id;
};

struct proto_period_close_args {
    struct proto_str month; /* "YYYY-MM", UTC */
};

/* Prices are micro-dollars per million tokens. */
struct proto_price_set_args {
    struct proto_str model;
    int64_t input_micros;
    int64_t output_micros;
    int64_t cached_micros;      /* cache reads */
    int64_t cache_write_micros; /* cache creation */
};

struct proto_key_create_args {
    struct proto_str key_id;
    struct proto_str hash; /* PROTO_HASH_BYTES of SHA-256(secret) */
    struct proto_str account;
    int64_t key_role;      /* enum proto_role */
};

struct proto_key_revoke_args {
    struct proto_str key_id;
};

struct proto_policy_set_args {
    struct proto_list required_metadata;
};

/* Setting a part to 0 disables it; everything 0 removes the breaker. */
struct proto_breaker_set_args {
    struct proto_str account;
    int64_t velocity_max_micros;  /* most spend per window, 0: no velocity rule */
    int64_t velocity_window_ms;
    int64_t bedtime_start_min;    /* quiet hours [start, end) in minutes of the */
    int64_t bedtime_end_min;      /* account's local day (tz_offset_min) */
    int64_t bedtime_factor_pct;   /* trip above factor% of the baseline, 0: off */
    int64_t bedtime_floor_micros; /* the limit never goes below this */
};

struct proto_alert_set_args {
    struct proto_str account;
    struct proto_str thresholds; /* "50,80,100"; "" the default; "none" off */
};

struct proto_event_ack_args {
    uint64_t event_id;
};

/* A rate limit's scope is an account (its whole subtree) when `account` is
 * non-empty, else one metadata (key, value).  Each limit is a count per
 * sliding window; 0 = none.  All four 0 clears the scope's limits. */
struct proto_rate_limit_set_args {
    struct proto_str account;
    struct proto_str meta_key;
    struct proto_str meta_value;
    int64_t rpm; /* requests per minute */
    int64_t tpm; /* tokens per minute, hour, day */
    int64_t tph;
    int64_t tpd;
};

/* Approval: an agent may alone start work whose p90 estimate is at most
 * above_micros; PROTO_CAP_NONE turns the rule off. */
struct proto_approval_set_args {
    int64_t above_micros;
};

struct proto_cmd {
    uint8_t type;              /* enum proto_cmd_type */
    uint8_t role;              /* enum proto_role */
    struct proto_str key;      /* idempotency key; empty: none */
    union {
        struct proto_account_args account;
        struct proto_account_status_args status;
        struct proto_reserve_args reserve;
        struct proto_commit_args commit;
        struct proto_release_args release;
        struct proto_transfer_args transfer;
        struct proto_grant_create_args grant_create;
        struct proto_grant_close_args grant_close;
        struct proto_period_close_args period_close;
        struct proto_price_set_args price_set;
        struct proto_key_create_args key_create;
        struct proto_key_revoke_args key_revoke;
        struct proto_policy_set_args policy_set;
        struct proto_breaker_set_args breaker_set;
        struct proto_alert_set_args alert_set;
        struct proto_event_ack_args event_ack;
        struct proto_rate_limit_set_args rate_limit_set;
        struct proto_approval_set_args approval_set;
    } u;
    /* Set by proto_entry_decode: this command's bytes inside the entry.  The
     * leader wrote them with proto_cmd_encode, so they are the canonical
     * encoding and the ledger fingerprints them without encoding again.
     * Empty otherwise; code that changes a decoded command must clear it. */
    struct proto_str encoded;
};

/* The answer to one command.  Which fields mean something depends on the
 * command (see ledger.h); unused ones are 0 / empty. */
struct proto_result {
    int32_t status;           /* enum proto_status */
    uint64_t id;              /* reservation, transfer, grant id created */
    int64_t amount_micros;    /* reserved / cost / granted / grant spent */
    int64_t remaining_micros; /* room left on the path, or PROTO_UNLIMITED */
    int64_t expires_at_ms;
    uint64_t transfer_id;
    int64_t overrun_micros;
    int64_t returned_micros;
    char name[PROTO_NAME_MAX + 1];       /* grant account / limiting account */
    char message[PROTO_MESSAGE_MAX + 1]; /* refusal text, names what was wrong */
    /* Trailing optional (absent = 0): rate_limited refusals, how long until
     * the window has room (entry time; never 0 in such a refusal). */
    int64_t retry_after_ms;
};

struct proto_entry {
    int64_t timestamp_ms;
    uint32_t cmd_count;
    struct proto_cmd *cmds;
};

/* A growable byte buffer owned by the caller (free with proto_buf_free). */
struct proto_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Decode errors: a code and a message naming what was wrong. */
#define PROTO_EMALFORMED 1 /* not msgpack of the expected shape */
#define PROTO_ELIMIT 2     /* a value beyond a limit */
#define PROTO_EVERSION 3   /* unknown version byte */
#define PROTO_ENOMEM 4

struct proto_error {
    int code;
    char message[160];
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);
/* Append raw bytes; returns 0 or PROTO_ENOMEM. */
int proto_buf_append(struct proto_buf *b, const void *data, size_t len);

/* Append the encoding of an entry (version byte included).  Returns 0, or
 * PROTO_ENOMEM.  The encoder trusts its input: validation is the decoder's
 * and the ledger's job. */
int proto_entry_encode(struct proto_buf *out, const struct proto_entry *entry);

/* Decode an entry from exactly `len` bytes.  `cmds` has room for `cmds_max`
 * commands; strings point into `data`.  Returns 0 or a PROTO_E* code with
 * `err` filled. */
int proto_entry_decode(const void *data, size_t len, struct proto_entry *out,
                       struct proto_cmd *cmds, uint32_t cmds_max,
                       struct proto_error *err);

/* One command / one result, as msgpack values with no version byte (for the
 * RPC layer and the idempotency store). */
int proto_cmd_encode(struct proto_buf *out, const struct proto_cmd *cmd);
int proto_cmd_decode(const void *data, size_t len, struct proto_cmd *cmd,
                     struct proto_error *err);
int proto_result_encode(struct proto_buf *out, const struct proto_result *res);
int proto_result_decode(const void *data, size_t len, struct proto_result *res,
                        struct proto_error *err);

/* Does the codec know this command type (a row in its schema table)? */
bool proto_cmd_type_is_known(int type);

/* Names for humans and logs ("reserve", "budget_exceeded", "month", ...). */
const char *proto_cmd_type_name(int type);
const char *proto_status_name(int status);
const char *proto_period_name(int period);
const char *proto_kind_name(int kind);
/* Parse a period name; returns the enum or -1. */
int proto_period_parse(const char *s);

/* Append a string map's msgpack encoding (its entries in order). */
int proto_map_encode(struct proto_buf *out, const struct proto_map *m);

/* Write a string map as a JSON object into `out` (NUL-terminated, at most
 * `cap` bytes).  `raw` is a msgpack map as stored by the ledger.  Returns the
 * length, or -1 when it does not fit or is not a string map. */
int proto_map_json(const void *raw, size_t raw_len, char *out, size_t cap);

/* Does `s` equal the C string `c`? */
bool proto_str_eq(struct proto_str s, const char *c);
struct proto_str proto_str_c(const char *c);

#endif
