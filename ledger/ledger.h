/*
 * ledger.h — purser's deterministic money state machine.
 *
 * A ledger is one SQLite database (in memory by default) plus a cache of the
 * hot balances in C.  It applies *entries* — a leader timestamp and a batch of
 * commands (proto.h) — in one SQLite transaction each, and answers one
 * proto_result per command.  Apply is a pure function of (state, entry): no
 * clock, no randomness, no I/O beyond the handle.  Two ledgers that applied
 * the same entries have the same ledger_state_hash().
 *
 * The money model (DESIGN.md):
 *   - accounts are paths ("acme/eng/bot"); spend and holds in an account count
 *     against it and every ancestor.  `spent` of an account is the outflow of
 *     its subtree in its current period: postings whose debit is inside the
 *     subtree and whose credit is outside it (a chargeback between two
 *     children of acme is spend for the child, not for acme).  Credits never
 *     reduce `spent`: caps bound gross outflow.
 *   - `reserved` is the sum of open holds in the subtree: reservations, and
 *     for each open grant max(amount - grant spent, grant reserved).
 *   - a reservation, grant or chargeback fits only if every capped account on
 *     the path keeps spent + reserved <= cap, and nothing on the path is
 *     frozen, closed or an expired grant.
 *   - caps reset at period boundaries of each account's own period (day,
 *     week, month at a fixed UTC offset) computed from entry time.
 *
 * Time: the entry's timestamp, clamped so it never goes backwards.
 *
 * Idempotency: a command with a key stores its result; a repeat with the same
 * key and the same request returns that result (refusals included) and
 * changes nothing; the same key with a different request is refused
 * (PROTO_ERR_CONFLICT).  Keys are kept LEDGER_IDEM_WINDOW_MS of entry time
 * and pruned by expire.
 *
 * Results per command (fields not listed are 0 / empty):
 *   account_*      : id = account id
 *   reserve        : id, amount_micros, expires_at_ms, remaining_micros;
 *                    refusals set name = the limiting / frozen account and
 *                    remaining_micros = its room
 *   commit         : id = reservation, transfer_id, amount_micros = cost,
 *                    overrun_micros, remaining_micros
 *   release        : id, returned_micros = hold freed, remaining_micros
 *   expire         : amount_micros = reservations expired, id = grants closed
 *   transfer       : id = transfer id, transfer_id = id, amount_micros
 *   grant_create   : id = grant id, name = grant account, amount_micros,
 *                    expires_at_ms, remaining_micros
 *   grant_close    : id, amount_micros = spent, returned_micros
 *   period_close   : (status only)
 *   price/key/policy: (status only)
 */
#ifndef PURSER_LEDGER_H
#define PURSER_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "proto/proto.h"

/* How long idempotency keys and closed reservations are remembered. */
#define LEDGER_IDEM_WINDOW_MS (24LL * 3600 * 1000)
/* Most reservations / grants one expire() processes (the rest next time). */
#define LEDGER_EXPIRE_MAX 100000

/* Hard errors (not refusals): the entry was not applied, state unchanged. */
#define LEDGER_ESQL 1     /* SQLite failed */
#define LEDGER_ENOMEM 2
#define LEDGER_EINVAL 3   /* bad argument to the API itself */
#define LEDGER_ECORRUPT 4 /* a snapshot or database that is not a ledger */
#define LEDGER_ENOTFOUND 5 /* queries: no such thing */

struct ledger_error {
    int code;
    char message[256];
};

struct ledger;

/* Open a ledger.  `path` NULL: a private in-memory database (the raft FSM
 * model: rebuilt from snapshot + log at each start).  A file path is for
 * tools and tests; idempotency keys and reservations live in memory only, so
 * a file does not keep them across a reopen.  Returns 0 or a LEDGER_E* code. */
int ledger_open(struct ledger **out, const char *path, struct ledger_error *err);
void ledger_close(struct ledger *l);

/* Apply one entry.  `results` has room for entry->cmd_count results.  Returns
 * 0 when the entry was applied (each command's refusal is in its result), or
 * a LEDGER_E* code when the whole entry was rolled back (SQLite or memory
 * failure; also more than PROTO_BATCH_MAX commands). */
int ledger_apply(struct ledger *l, const struct proto_entry *entry,
                 struct proto_result *results, struct ledger_error *err);

/* The ledger's time: the largest entry timestamp applied so far. */
int64_t ledger_now_ms(const struct ledger *l);
/* Number of entries applied since creation (survives snapshot/restore). */
uint64_t ledger_entries_applied(const struct ledger *l);

/* SHA-256 over the whole logical state (accounts, balances, reservations,
 * grants, idempotency keys, periods, configuration, and a chain hash of the
 * journal).  Equal on two ledgers that applied the same entries. */
int ledger_state_hash(struct ledger *l, uint8_t out[32], struct ledger_error *err);

/* Recompute every roll-up from the journal and the open holds and check the
 * invariants of DESIGN.md (1 conservation, 2 no overspend apart from recorded
 * overruns and adjustments, 3 roll-ups equal their sums).  `cb` is called
 * once per violation with a message naming it.  Returns the number of
 * violations (>= 0) or -code on a hard error. */
typedef void (*ledger_violation_cb)(void *arg, const char *message);
int ledger_verify(struct ledger *l, ledger_violation_cb cb, void *arg,
                  struct ledger_error *err);

/* Serialize the whole state into one buffer allocated with `alloc` (malloc
 * if NULL); the caller frees it with the matching free. */
int ledger_snapshot(struct ledger *l, void *(*alloc)(size_t), void **data,
                    size_t *len, struct ledger_error *err);
/* Replace the whole state with a snapshot.  The ledger copies `data`. */
int ledger_restore(struct ledger *l, const void *data, size_t len,
                   struct ledger_error *err);

/* ---- queries (read-only; "now" is ledger_now_ms) ---- */

#define LEDGER_STATUS_ACTIVE 0
#define LEDGER_STATUS_FROZEN 1
#define LEDGER_STATUS_CLOSED 2
#define LEDGER_JSON_MAX 8192
/* A stored string map as msgpack (empty when none): at most 16 entries of
 * 64 + 256 bytes, so this always fits. */
#define LEDGER_MAP_RAW_MAX 6144
struct ledger_map_raw {
    uint32_t len;
    uint8_t data[LEDGER_MAP_RAW_MAX];
};

struct ledger_account_view {
    uint64_t id;
    char name[PROTO_NAME_MAX + 1];
    int64_t cap_micros;       /* PROTO_CAP_NONE when uncapped */
    int period;               /* enum proto_period */
    int tz_offset_min;
    int status;               /* LEDGER_STATUS_* */
    bool is_grant;
    int64_t period_start_ms;  /* current period window, [start, end) */
    int64_t period_end_ms;    /* INT64_MAX for period none */
    int64_t spent_micros;     /* subtree outflow this period */
    int64_t reserved_micros;  /* subtree holds */
    int64_t available_micros; /* tightest room on the path (>= 0), or PROTO_UNLIMITED */
    char tags_json[LEDGER_JSON_MAX];
    struct ledger_map_raw tags;
    char frozen_reason[PROTO_TEXT_MAX + 1]; /* when frozen: "velocity", "bedtime", the
                                               admin's reason, or "" */
};

int ledger_account_get(struct ledger *l, const char *name,
                       struct ledger_account_view *out, struct ledger_error *err);
/* Accounts in name order whose name equals `prefix` or starts with
 * "prefix/" (all when prefix is NULL or ""). cb returns non-zero to stop. */
typedef int (*ledger_account_cb)(void *arg, const struct ledger_account_view *a);
int ledger_account_list(struct ledger *l, const char *prefix,
                        ledger_account_cb cb, void *arg, struct ledger_error *err);

#define LEDGER_RES_OPEN 0
#define LEDGER_RES_COMMITTED 1
#define LEDGER_RES_RELEASED 2
#define LEDGER_RES_EXPIRED 3 /* released by expire */
#define LEDGER_RES_CHARGED 4 /* charged in full by expire (on_expire=charge) */

struct ledger_reservation_view {
    uint64_t id;
    char account[PROTO_NAME_MAX + 1];
    char payee[PROTO_NAME_MAX + 1];
    int64_t amount_micros;
    int64_t created_ms;
    int64_t expires_at_ms;
    int on_expire;
    int status;              /* LEDGER_RES_* */
    int64_t actual_micros;   /* committed cost */
    uint64_t transfer_id;
    char metadata_json[LEDGER_JSON_MAX];
    struct ledger_map_raw metadata;
};
int ledger_reservation_get(struct ledger *l, uint64_t id,
                           struct ledger_reservation_view *out,
                           struct ledger_error *err);

struct ledger_grant_view {
    uint64_t id;
    char account[PROTO_NAME_MAX + 1];
    char workflow[PROTO_TEXT_MAX + 1];
    int64_t amount_micros;
    int64_t expires_at_ms;
    bool is_open;
    int64_t spent_micros;
    int64_t returned_micros; /* when closed */
};
int ledger_grant_get(struct ledger *l, uint64_t id, struct ledger_grant_view *out,
                     struct ledger_error *err);

struct ledger_key_view {
    char id[PROTO_TEXT_MAX + 1];
    char account[PROTO_NAME_MAX + 1];
    int role;      /* enum proto_role */
    bool is_revoked;
};
int ledger_key_get_by_hash(struct ledger *l, const uint8_t hash[PROTO_HASH_BYTES],
                           struct ledger_key_view *out, struct ledger_error *err);

struct ledger_price_view {
    char model[PROTO_TEXT_MAX + 1];
    int64_t input_micros, output_micros, cached_micros, cache_write_micros;
};
int ledger_price_get(struct ledger *l, const char *model,
                     struct ledger_price_view *out, struct ledger_error *err);
typedef int (*ledger_price_cb)(void *arg, const struct ledger_price_view *p);
int ledger_price_list(struct ledger *l, ledger_price_cb cb, void *arg,
                      struct ledger_error *err);

struct ledger_policy_view {
    uint32_t required_count;
    char required[PROTO_LIST_MAX][PROTO_MAP_KEY_MAX + 1];
};
int ledger_policy_get(struct ledger *l, struct ledger_policy_view *out,
                      struct ledger_error *err);

/* Rate limits (ratelimit.c): scopes with a limit, in (account, key, value)
 * order, with what their windows hold now. */
struct ledger_rate_limit_view {
    char account[PROTO_NAME_MAX + 1];       /* "" for a metadata scope */
    char meta_key[PROTO_MAP_KEY_MAX + 1];
    char meta_value[PROTO_MAP_VALUE_MAX + 1];
    int64_t rpm, tpm, tph, tpd;             /* 0 = no limit */
    int64_t requests_minute;                /* in the windows now */
    int64_t tokens_minute, tokens_hour, tokens_day;
};
typedef int (*ledger_rate_limit_cb)(void *arg, const struct ledger_rate_limit_view *v);
int ledger_rate_limit_list(struct ledger *l, ledger_rate_limit_cb cb, void *arg,
                           struct ledger_error *err);

/* Estimates (estimate.c): the cost of a task of `workflow` from the last
 * LEDGER_ESTIMATE_SAMPLE closed grants of that workflow and `model` ("" or
 * NULL: any model; a model without samples falls back to any model).
 * samples 0: nothing learned yet (p50/p90 are 0). */
#define LEDGER_ESTIMATE_SAMPLE 256
struct ledger_estimate_view {
    char model[PROTO_TEXT_MAX + 1]; /* the sample used: "" = all models */
    int64_t p50_micros;
    int64_t p90_micros;
    uint64_t samples;               /* in the sample (<= LEDGER_ESTIMATE_SAMPLE) */
    uint64_t seen;                  /* closed grants learned from, ever */
};
int ledger_estimate_get(struct ledger *l, const char *workflow, const char *model,
                        struct ledger_estimate_view *out, struct ledger_error *err);
/* The approval threshold in micros, or PROTO_CAP_NONE when there is none. */
int ledger_approval_get(struct ledger *l, int64_t *above_micros, struct ledger_error *err);

struct ledger_posting_view {
    uint64_t id;
    int64_t ts_ms;
    int kind; /* enum proto_kind */
    char debit[PROTO_NAME_MAX + 1];
    char credit[PROTO_NAME_MAX + 1];
    int64_t amount_micros;
    uint64_t reservation_id;
    int64_t overrun_micros;
    char metadata_json[LEDGER_JSON_MAX];
    struct ledger_map_raw metadata;
};
/* Postings of one UTC month in id (= time) order. */
typedef int (*ledger_posting_cb)(void *arg, const struct ledger_posting_view *p);
int ledger_journal_month(struct ledger *l, int year, int month,
                         ledger_posting_cb cb, void *arg, struct ledger_error *err);

/* ---- alerting: circuit breakers, thresholds, the event outbox ---- */

/* Velocity windows are counted in this many fixed sub-buckets. */
#define LEDGER_VELOCITY_BUCKETS 60
#define LEDGER_VELOCITY_WINDOW_MIN_MS 1000LL
#define LEDGER_VELOCITY_WINDOW_MAX_MS (31LL * 24 * 3600 * 1000)
/* Bedtime baseline: the average of this many previous nights. */
#define LEDGER_BEDTIME_NIGHTS 7
#define LEDGER_BEDTIME_FACTOR_MAX_PCT 100000 /* 1000x */
#define LEDGER_THRESHOLDS_MAX 8
#define LEDGER_THRESHOLD_MAX_PCT 1000
#define LEDGER_THRESHOLDS_DEFAULT "50,80,100"
#define LEDGER_THRESHOLD_DEFAULT_MIN_PCT 50 /* the lowest of the default */
/* Events kept until acknowledged; when full the oldest is dropped (counted). */
#define LEDGER_OUTBOX_MAX 10000
#define LEDGER_EVENT_TYPE_MAX 32
#define LEDGER_EVENT_DETAIL_MAX 512

struct ledger_breaker_view {
    char account[PROTO_NAME_MAX + 1];
    bool is_set;                  /* a breaker is configured */
    int64_t velocity_max_micros;  /* 0: no velocity rule */
    int64_t velocity_window_ms;
    int64_t velocity_spent_micros; /* counted in the current window */
    int64_t bedtime_start_min;
    int64_t bedtime_end_min;
    int64_t bedtime_factor_pct;   /* 0: no bedtime rule */
    int64_t bedtime_floor_micros;
    bool is_quiet_now;            /* now is inside the quiet hours */
    int64_t bedtime_spent_micros; /* in tonight's quiet hours (0 outside them) */
    int64_t bedtime_baseline_micros; /* average of the previous nights */
    int64_t bedtime_limit_micros;  /* max(factor x baseline, floor); 0: cannot trip */
    char thresholds[PROTO_TEXT_MAX + 1]; /* "50,80,100", "" when off */
    bool is_default_thresholds;
    int status;                   /* LEDGER_STATUS_* of the account */
    char frozen_reason[PROTO_TEXT_MAX + 1];
};
int ledger_breaker_get(struct ledger *l, const char *account, struct ledger_breaker_view *out,
                       struct ledger_error *err);

struct ledger_event_view {
    uint64_t id;     /* stable: the same on every replica and after restarts */
    int64_t ts_ms;   /* entry time of the posting that raised it */
    char type[LEDGER_EVENT_TYPE_MAX];   /* "threshold" or "breaker" */
    char account[PROTO_NAME_MAX + 1];
    char detail_json[LEDGER_EVENT_DETAIL_MAX]; /* a JSON object */
};
typedef int (*ledger_event_cb)(void *arg, const struct ledger_event_view *e);
/* Pending (unacknowledged) events with id > after_id in id order, at most
 * `max` of them; cb returns non-zero to stop. */
int ledger_event_list(struct ledger *l, uint64_t after_id, uint32_t max, ledger_event_cb cb,
                      void *arg, struct ledger_error *err);
struct ledger_outbox_stats {
    uint64_t pending_count;
    uint64_t next_event_id;
    uint64_t dropped_count; /* dropped unacknowledged because the outbox was full */
};
int ledger_outbox_stats(struct ledger *l, struct ledger_outbox_stats *out,
                        struct ledger_error *err);

/* Closed months, ascending, as "YYYY-MM". */
typedef int (*ledger_period_cb)(void *arg, const char *month, int64_t closed_at_ms);
int ledger_period_list(struct ledger *l, ledger_period_cb cb, void *arg,
                       struct ledger_error *err);

/* ---- reports (report.c) ----
 *
 * Month-end reports over the journal of one UTC month [first day 00:00,
 * first day of the next month 00:00), found by binary search over the
 * time-ordered ids.  Sums are exact int64 micros; an overflow is an error
 * (LEDGER_EOVERFLOW), never a wrap.  Rows come sorted, so a closed month
 * gives the same rows in the same order on every replica, every time:
 *
 *   chargeback     postings of kind chargeback, summed per (debtor, creditor)
 *                  account pair — view ACCOUNT, sorted by debtor then creditor
 *                  name, each row carrying both sides' `cost_center` tag ("" when
 *                  missing) — then the same postings summed per (debtor
 *                  cost_center, creditor cost_center) — view COST_CENTER,
 *                  sorted by those two strings.  Each view ends with a total.
 *   spend          postings of kind spend, summed per (values of the group-by
 *                  metadata keys, account = debit, payee = credit); a missing key
 *                  is "".  Sorted by the values in key order, then account name,
 *                  then payee name.  Ends with a total.
 *   trial balance  per account with postings in the month (any kind): debits,
 *                  credits and net = credits - debits, in account name order; the
 *                  total row has net 0 (asserted: every posting debits and credits
 *                  the same amount).
 *   transfers      the raw journal rows of the month in id (= time) order, then a
 *                  total.
 *
 * Strings and metadata in a row live until the callback returns.  `cb`
 * returns non-zero to stop early (not an error).  An aggregate report that
 * fails delivers no row; transfers stream, so on an error discard what came.  `offset` (ledger_report_from)
 * skips that many rows first — totals count as rows — which is how the RPC
 * pages a report; for transfers the skip is a seek, not a scan. */
#define LEDGER_EOVERFLOW 6 /* reports: a sum does not fit int64 */

#define LEDGER_REPORT_CHARGEBACK 1
#define LEDGER_REPORT_SPEND 2
#define LEDGER_REPORT_TRIAL_BALANCE 3
#define LEDGER_REPORT_TRANSFERS 4

#define LEDGER_REPORT_VIEW_ACCOUNT 0
#define LEDGER_REPORT_VIEW_COST_CENTER 1

/* Most group-by keys of a spend report. */
#define LEDGER_REPORT_GROUP_MAX 8
/* The account tag the chargeback report groups by. */
#define LEDGER_REPORT_COST_CENTER_TAG "cost_center"

struct ledger_report_row {
    int view;                   /* chargeback: LEDGER_REPORT_VIEW_*; else ACCOUNT */
    bool is_total;              /* the last row of a view: the sums of its rows */
    /* chargeback: debtor and creditor; spend: account and payee; trial
     * balance: debit = the account; transfers: the posting's two sides.
     * "" in cost_center rows and in totals. */
    const char *debit;
    const char *credit;
    /* chargeback: the cost_center tag of each side ("" when none) */
    const char *debit_cost_center;
    const char *credit_cost_center;
    /* spend: the value of each group-by key ("" when missing), in key order */
    uint32_t group_count;
    const char *group[LEDGER_REPORT_GROUP_MAX];
    uint64_t posting_count;     /* postings summed into this row (1 in transfers) */
    int64_t amount_micros;      /* chargeback, spend, transfers */
    int64_t overrun_micros;     /* spend, transfers */
    int64_t debit_micros;       /* trial balance */
    int64_t credit_micros;
    int64_t net_micros;         /* credit_micros - debit_micros */
    /* transfers only (0 / NULL in totals) */
    uint64_t id;
    int64_t ts_ms;
    int kind;                   /* enum proto_kind */
    uint64_t reservation_id;
    const uint8_t *metadata;    /* the stored msgpack map, metadata_len bytes */
    uint32_t metadata_len;
};
typedef int (*ledger_report_cb)(void *arg, const struct ledger_report_row *row);

/* Run report `kind` (LEDGER_REPORT_*) over month `year`-`month` (UTC).
 * `group_by` (spend only; ignored otherwise) names up to
 * LEDGER_REPORT_GROUP_MAX distinct metadata keys.  Returns 0, LEDGER_EINVAL
 * (bad kind, month or keys), LEDGER_EOVERFLOW, LEDGER_ENOMEM or
 * LEDGER_ESQL, with err naming what was wrong. */
int ledger_report(struct ledger *l, int kind, int year, int month,
                  const char *const *group_by, uint32_t group_count,
                  ledger_report_cb cb, void *arg, struct ledger_error *err);
/* The same, delivering rows from row number `offset` (0-based) on. */
int ledger_report_from(struct ledger *l, int kind, int year, int month,
                       const char *const *group_by, uint32_t group_count,
                       uint64_t offset, ledger_report_cb cb, void *arg,
                       struct ledger_error *err);
/* ---- copies (copy.c) ----
 *
 * A private copy of the ledger for long reads (reports) on another thread.
 * Begin, then step on the ledger's thread until a step returns 1: each step
 * copies at most `pages` database pages (4 KiB each), and writes applied
 * meanwhile reach the copy too, so when done it equals the ledger at that
 * moment.  Finish turns it into a ledger of its own (its journal, accounts
 * and configuration; not the idempotency keys), usable by one thread at a
 * time; close it with ledger_close.  Closing or restoring the source aborts
 * a copy in progress (its next step fails).  ledger_copy_free drops a copy
 * that will not be finished. */
struct ledger_copy;
int ledger_copy_begin(struct ledger *l, struct ledger_copy **out, struct ledger_error *err);
/* 1: done; 0: more to copy; -code: failed (err set; free the copy). */
int ledger_copy_step(struct ledger_copy *c, int pages, struct ledger_error *err);
/* Consumes the copy on success. */
int ledger_copy_finish(struct ledger_copy *c, struct ledger **out, struct ledger_error *err);
void ledger_copy_free(struct ledger_copy *c);

/* "chargeback", "spend", "trial-balance", "transfers" -> LEDGER_REPORT_*,
 * or -1; and back (NULL for an unknown kind). */
int ledger_report_kind_parse(const char *name);
const char *ledger_report_kind_name(int kind);

#endif
