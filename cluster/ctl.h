/*
 * ctl.h — purserctl's internal face, shared by its files:
 *
 *   purserctl.c   main: global flags, the command table, dispatch, help;
 *   ctl_parse.c   the command line and its values (money, durations, UTC
 *                 offsets, tags, lists, ids) — pure functions, unit-tested;
 *   ctl_output.c  what the user sees: JSON writer, the msgpack -> JSON walker
 *                 for read answers, field lookup in answers, tables, money
 *                 and time text, errors and exit codes — no I/O but stdio;
 *   ctl_client.c  the connection: apply a command, read a query, call a
 *                 method, each mapping failures to an exit code and a line
 *                 on stderr;
 *   ctl_ledger.c  account, grant, reserve/commit/release, transfer, key,
 *                 price, policy, period commands;
 *   ctl_cluster.c cluster status/members/add/remove/promote/transfer-leader/
 *                 verify, snapshot, backup, restore;
 *   ctl_report.c  report chargeback|spend|trial-balance|transfers in table,
 *                 CSV, JSON, XLSX and FOCUS formats.
 *
 * Every command handler returns an exit code (CTL_EXIT_*) and has already
 * printed its one-line error when it is not CTL_EXIT_OK.
 */
#ifndef PURSER_CTL_H
#define PURSER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"
#include "proto/rpc.h"

/* Exit codes (API.md). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_REFUSED 1     /* a ledger refusal, NOT_FOUND on a read */
#define CTL_EXIT_USAGE 2       /* bad flags, arguments or values */
#define CTL_EXIT_UNREACHABLE 3 /* no node / no leader answered in time */

/* Limits on the command line. */
#define CTL_POSITIONAL_MAX 8   /* words and arguments of one command */
#define CTL_ERR_MAX 256        /* one error line */
#define CTL_DURATION_MAX_MS (10LL * 366 * 24 * 3600 * 1000) /* parse bound */

/* ---- the command line (ctl_parse.c) ---- */

/* Every --option purserctl knows.  Global ones are accepted anywhere on the
 * line; the others only by the commands whose table entry lists them. */
enum ctl_opt {
    CTL_OPT_CLUSTER,
    CTL_OPT_AUTH,
    CTL_OPT_JSON,
    CTL_OPT_KEY,
    CTL_OPT_STALE,
    CTL_OPT_VERBOSE,
    CTL_OPT_HELP,
    CTL_OPT_VERSION,
    CTL_OPT_TIMEOUT,
    CTL_OPT_CAP,
    CTL_OPT_PERIOD,
    CTL_OPT_TZ,
    CTL_OPT_TAG,
    CTL_OPT_TTL,
    CTL_OPT_ROLE,
    CTL_OPT_INPUT,
    CTL_OPT_OUTPUT,
    CTL_OPT_CACHED,
    CTL_OPT_CACHE_WRITE,
    CTL_OPT_KIND,
    CTL_OPT_PAYEE,
    CTL_OPT_WORKFLOW,
    CTL_OPT_REASON,
    CTL_OPT_ON_EXPIRE,
    CTL_OPT_MONTH,
    CTL_OPT_GROUP_BY,
    CTL_OPT_FORMAT,
    CTL_OPT_OUT,
    CTL_OPT_VIEW,
    CTL_OPT_VELOCITY,
    CTL_OPT_BEDTIME,
    CTL_OPT_BEDTIME_FACTOR,
    CTL_OPT_BEDTIME_FLOOR,
    CTL_OPT_PENDING,
    CTL_OPT_TLS_CA,
    CTL_OPT_TLS_CERT,
    CTL_OPT_TLS_KEY,
    CTL_OPT_META,
    CTL_OPT_RPM,
    CTL_OPT_TPM,
    CTL_OPT_TPH,
    CTL_OPT_TPD,
    CTL_OPT_MODEL,
    CTL_OPT_COUNT
};
_Static_assert(CTL_OPT_COUNT <= 64, "option bits fit uint64_t");

#define CTL_OPT_BIT(o) (UINT64_C(1) << (o)) /* 64 options at most */
/* Options every command accepts. */
#define CTL_OPTS_GLOBAL                                                                  \
    (CTL_OPT_BIT(CTL_OPT_CLUSTER) | CTL_OPT_BIT(CTL_OPT_AUTH) | CTL_OPT_BIT(CTL_OPT_JSON) | \
     CTL_OPT_BIT(CTL_OPT_VERBOSE) | CTL_OPT_BIT(CTL_OPT_HELP) |                          \
     CTL_OPT_BIT(CTL_OPT_VERSION) | CTL_OPT_BIT(CTL_OPT_TIMEOUT) |                       \
     CTL_OPT_BIT(CTL_OPT_TLS_CA) | CTL_OPT_BIT(CTL_OPT_TLS_CERT) |                        \
     CTL_OPT_BIT(CTL_OPT_TLS_KEY))

/* A parsed command line.  Strings point into argv (alive for the run). */
struct ctl_args {
    const char *positional[CTL_POSITIONAL_MAX];
    uint32_t positional_count;
    const char *value[CTL_OPT_COUNT]; /* NULL: absent; "" for a flag */
    const char *tags[PROTO_MAP_MAX];  /* every --tag, in order */
    uint32_t tag_count;
    uint64_t seen;                    /* CTL_OPT_BIT of every option given */
};

/* The option's spelling without dashes ("cache-write"). */
const char *ctl_opt_name(enum ctl_opt o);
/* Split argv[1..] into options and positional words.  Accepts "--opt VALUE"
 * and "--opt=VALUE"; a word starting with '-' and a digit is positional (so
 * "-5" reaches the money parser and is refused there by name); "--" ends
 * options.  Returns 0, or -1 with err naming the bad option. */
int ctl_args_parse(int argc, char **argv, struct ctl_args *a, char *err, size_t cap);
/* 0 when every option given is in `allowed`, else -1 naming the first one
 * that is not. */
int ctl_args_check(const struct ctl_args *a, uint64_t allowed, char *err, size_t cap);

/* Values.  Each returns 0, or -1 with err naming what was wrong (`what` is
 * the argument's name, e.g. "--cap" or "amount"). */

/* Decimal USD >= 0 ("12.5" -> 12500000); `is_positive` also refuses 0. */
int ctl_money_parse(const char *s, const char *what, bool is_positive, int64_t *micros,
                    char *err, size_t cap);
/* A cap: USD, or "none"/"unlimited" -> PROTO_CAP_NONE. */
int ctl_cap_parse(const char *s, int64_t *micros, char *err, size_t cap);
/* "500ms", "60s", "30m", "2h", "1d", or a sum ("1h30m"); > 0. */
int ctl_duration_parse(const char *s, const char *what, int64_t *ms, char *err, size_t cap);
/* "+HH:MM", "-HH:MM", "+HH", "Z" or "UTC" -> minutes east of UTC (|x| <= 14 h). */
int ctl_tz_parse(const char *s, int64_t *minutes, char *err, size_t cap);
/* Append "k=v" to `m` (views into s).  Refuses an empty key, a missing '=',
 * a duplicate key and every PROTO_MAP_* limit. */
int ctl_tag_parse(const char *s, struct proto_map *m, char *err, size_t cap);
/* Every --tag of `a` into `m` (m is reset first). */
int ctl_tags_parse(const struct ctl_args *a, struct proto_map *m, char *err, size_t cap);
/* "a,b,c" -> list (views into s); empty items and PROTO_LIST limits refused.
 * "" gives an empty list. */
int ctl_list_parse(const char *s, struct proto_list *l, char *err, size_t cap);
/* A decimal id > 0 (reservation, grant, node). */
int ctl_id_parse(const char *s, const char *what, uint64_t *id, char *err, size_t cap);
/* "YYYY-MM" with 01..12. */
int ctl_month_parse(const char *s, char *err, size_t cap);
/* "day", "week", "month", "none" -> enum proto_period. */
int ctl_period_parse(const char *s, int64_t *period, char *err, size_t cap);

/* ---- output (ctl_output.c) ---- */

/* One line "purserctl: <text>" on stderr. */
void ctl_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exit code for a client call outcome (PC_* of client.h) and, for PC_EREMOTE,
 * the RPC error code. */
int ctl_exit_for_call(int pc_status, const char *code);
/* Exit code for a ledger result status (enum proto_status). */
int ctl_exit_for_status(int32_t status);

/* Money as text: "12.500000".  `buf` has CTL_MONEY_CAP bytes. */
#define CTL_MONEY_CAP 32
const char *ctl_money_text(int64_t micros, char *buf);
/* An amount that may be unlimited (negative or PROTO_UNLIMITED): "unlimited"
 * or the money text. */
const char *ctl_limit_text(int64_t micros, char *buf);
bool ctl_limit_is_unlimited(int64_t micros);
/* Epoch ms as "2024-05-01T12:00:00.000Z".  `buf` has CTL_TIME_CAP bytes. */
#define CTL_TIME_CAP 32
const char *ctl_time_text(int64_t ms, char *buf);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void ctl_hex(const uint8_t *p, size_t n, char *out);

/* A compact JSON writer into a proto_buf.  Commas are its business: call
 * key/value in order.  `failed` once memory ran out or nesting went deeper
 * than CTL_JSON_DEPTH_MAX. */
#define CTL_JSON_DEPTH_MAX 32
struct ctl_json {
    struct proto_buf *buf;
    uint32_t depth;
    bool is_first[CTL_JSON_DEPTH_MAX + 1];
    bool after_key;
    bool failed;
};
void ctl_json_init(struct ctl_json *j, struct proto_buf *buf);
void ctl_json_object_begin(struct ctl_json *j);
void ctl_json_object_end(struct ctl_json *j);
void ctl_json_array_begin(struct ctl_json *j);
void ctl_json_array_end(struct ctl_json *j);
void ctl_json_key(struct ctl_json *j, const char *key);
void ctl_json_str(struct ctl_json *j, const char *s, size_t len);
void ctl_json_cstr(struct ctl_json *j, const char *s);
void ctl_json_int(struct ctl_json *j, int64_t v);
void ctl_json_uint(struct ctl_json *j, uint64_t v);
void ctl_json_bool(struct ctl_json *j, bool v);
void ctl_json_null(struct ctl_json *j);
/* An amount that may be unlimited: null when ctl_limit_is_unlimited. */
void ctl_json_limit(struct ctl_json *j, int64_t micros);
/* Write one msgpack value as JSON: maps -> objects (keys must be strings),
 * bins -> hex strings, floats -> numbers; the fields named by
 * ctl_field_is_limit with a negative or PROTO_UNLIMITED value -> null.
 * Returns 0, or -1 when the value is malformed (the writer then holds
 * partial output). */
int ctl_json_mp(struct ctl_json *j, const uint8_t *data, size_t len);
/* Is `key` a field whose -1 / PROTO_UNLIMITED means "unlimited"? */
bool ctl_field_is_limit(const char *key, size_t len);
/* NUL-terminate the buffer and print it with a newline on stdout.
 * Returns CTL_EXIT_OK, or an error exit when the writer failed. */
int ctl_json_print(struct ctl_json *j);

/* Field lookup in a msgpack map (a read answer).  Each returns 0 when the
 * key is there with the right type, -1 otherwise. */
int ctl_mp_find(const uint8_t *map, size_t len, const char *key, const uint8_t **value,
                size_t *value_len);
int ctl_mp_int(const uint8_t *map, size_t len, const char *key, int64_t *out);
int ctl_mp_uint(const uint8_t *map, size_t len, const char *key, uint64_t *out);
/* A string, copied NUL-terminated (truncated to cap - 1 bytes). */
int ctl_mp_str(const uint8_t *map, size_t len, const char *key, char *out, size_t cap);
int ctl_mp_bool(const uint8_t *map, size_t len, const char *key, bool *out);
/* Iterate an array: ctl_mp_array opens the array stored under `key` (or the
 * whole value when key is NULL); ctl_mp_next yields each element's bytes. */
struct ctl_mp_iter {
    const uint8_t *pos;
    const uint8_t *end;
    uint32_t left;
};
int ctl_mp_array(const uint8_t *map, size_t len, const char *key, struct ctl_mp_iter *it);
bool ctl_mp_next(struct ctl_mp_iter *it, const uint8_t **elem, size_t *elem_len);
/* A value as short human text (scalars as is, bins as hex, containers as
 * compact JSON) into out; returns out. */
const char *ctl_mp_text(const uint8_t *value, size_t len, char *out, size_t cap);

/* A human table: headers, rows of cells, columns padded to the widest cell.
 * Cells are copied. */
#define CTL_TABLE_COLS_MAX 10
struct ctl_table {
    uint32_t col_count;
    uint32_t row_count;
    uint32_t row_cap;
    char **cells; /* row-major, row 0 = headers */
    size_t width[CTL_TABLE_COLS_MAX];
    bool failed;
};
void ctl_table_init(struct ctl_table *t, uint32_t col_count, const char *const *headers);
/* Add a row of col_count cells (NULL prints as "-"). */
void ctl_table_row(struct ctl_table *t, const char *const *cells);
/* Print to `out` and free; returns CTL_EXIT_OK or an error exit. */
int ctl_table_print(struct ctl_table *t, FILE *out);
void ctl_table_free(struct ctl_table *t);

/* Human "key: value" lines for every field of a msgpack map. */
int ctl_print_map(const uint8_t *map, size_t len, FILE *out);

/* ---- the connection (ctl_client.c) ---- */

struct pc_sync;
struct ptls_ctx;

/* One run of purserctl: the parsed line and the (lazily opened) connection. */
struct ctl {
    const struct ctl_args *args;
    const char *const *pos; /* the command's arguments, after its words */
    uint32_t pos_count;
    bool is_json;
    bool is_stale;
    bool is_verbose;
    char key[PROTO_KEY_MAX + 1]; /* idempotency key of a mutating command */
    char role[16];
    char secret[RPC_SECRET_MAX + 1]; /* "" without --auth */
    const char *auth_path;           /* where role and secret came from, or NULL */
    char cluster[1024];              /* comma-separated rpc addresses */
    uint32_t deadline_ms;
    struct pc_sync *sync;
    struct ptls_ctx *tls;            /* --tls-ca / PURSER_TLS_CA: TLS to the cluster */
};

/* Fill role, secret, cluster, deadline, TLS from the flags and the
 * environment (PURSER_CLUSTER, PURSER_AUTH, PURSER_TLS_CA, PURSER_TLS_CERT,
 * PURSER_TLS_KEY); a fresh key unless --key.  Returns an exit
 * code (usage errors printed). */
int ctl_setup(struct ctl *ctl);
/* Open the connection if not yet open.  Returns an exit code. */
int ctl_connect(struct ctl *ctl);
void ctl_close(struct ctl *ctl);
/* Random bytes as lowercase hex (n bytes -> 2n chars + NUL in out). */
int ctl_random_hex(size_t n, char *out);

/* Apply one command through the leader with ctl->key.  A refusal prints
 * "<what> refused: <status>: <message>" and returns CTL_EXIT_REFUSED.
 * `what` names the command for errors ("reserve"). */
int ctl_apply(struct ctl *ctl, const char *what, struct proto_cmd *cmd,
              struct proto_result *res);
/* read [query, consistency, args...] with string args; the answer map goes
 * into `answer` (caller's buffer).  NOT_FOUND prints "<what> not found". */
int ctl_read(struct ctl *ctl, const char *what, struct proto_buf *answer, const char *query,
             uint32_t arg_count, const char *const *args);
/* Call `method` with a complete msgpack params array on `target` (node index
 * or PC_TARGET_*).  Errors are printed naming `method`, unless `is_quiet`. */
int ctl_call(struct ctl *ctl, struct pc_sync *sync, int target, const char *method,
             const struct proto_buf *params, bool is_retryable, bool is_quiet,
             struct proto_buf *answer);
/* ctl_read, and with --json print the answer as it is (*is_done true).
 * Returns CTL_EXIT_OK with *is_done false when the caller prints for humans
 * (ctl_ledger.c). */
int ctl_read_answer(struct ctl *ctl, const char *what, struct proto_buf *answer,
                    const char *query, uint32_t arg_count, const char *const *args,
                    bool *is_done);
/* Bind a msgpack packer to a proto_buf. */
void ctl_packer_init(msgpack_packer *pk, struct proto_buf *buf);
/* A second connection to the given rpc addresses in this order (node index
 * i = addrs[i]), short deadline: for per-node calls. */
int ctl_connect_nodes(struct ctl *ctl, const char *const *addrs, uint32_t count,
                      uint32_t deadline_ms, struct pc_sync **out);

/* ---- commands (ctl_ledger.c, ctl_report.c, ctl_cluster.c) ---- */

typedef int (*ctl_run_fn)(struct ctl *ctl);

int ctl_account_create(struct ctl *ctl);
int ctl_account_update(struct ctl *ctl);
int ctl_account_show(struct ctl *ctl);
int ctl_account_list(struct ctl *ctl);
int ctl_account_freeze(struct ctl *ctl);
int ctl_account_unfreeze(struct ctl *ctl);
int ctl_account_close(struct ctl *ctl);
int ctl_grant_create(struct ctl *ctl);
int ctl_grant_close(struct ctl *ctl);
int ctl_reserve(struct ctl *ctl);
int ctl_commit(struct ctl *ctl);
int ctl_release(struct ctl *ctl);
int ctl_transfer(struct ctl *ctl);
int ctl_key_create(struct ctl *ctl);
int ctl_key_revoke(struct ctl *ctl);
int ctl_price_set(struct ctl *ctl);
int ctl_price_list(struct ctl *ctl);
int ctl_price_load(struct ctl *ctl);
int ctl_policy_set(struct ctl *ctl);
int ctl_policy_show(struct ctl *ctl);
/* ctl_limits.c */
int ctl_limit_set(struct ctl *ctl);
int ctl_limit_clear(struct ctl *ctl);
int ctl_limit_list(struct ctl *ctl);
int ctl_estimate(struct ctl *ctl);
int ctl_approval_set(struct ctl *ctl);
int ctl_period_close(struct ctl *ctl);
int ctl_period_list(struct ctl *ctl);
/* ctl_alerts.c: circuit breakers, thresholds, the event outbox */
int ctl_breaker_set(struct ctl *ctl);
int ctl_breaker_clear(struct ctl *ctl);
int ctl_breaker_show(struct ctl *ctl);
int ctl_alert_set(struct ctl *ctl);
int ctl_events(struct ctl *ctl);

int ctl_report(struct ctl *ctl);

int ctl_cluster_status(struct ctl *ctl);
int ctl_cluster_members(struct ctl *ctl);
int ctl_cluster_add(struct ctl *ctl);
int ctl_cluster_remove(struct ctl *ctl);
int ctl_cluster_promote(struct ctl *ctl);
int ctl_cluster_transfer_leader(struct ctl *ctl);
int ctl_cluster_verify(struct ctl *ctl);
int ctl_snapshot(struct ctl *ctl);
int ctl_backup(struct ctl *ctl);
int ctl_restore(struct ctl *ctl);

#endif
