/*
 * internal.h — what the ledger's files share and nobody else sees.
 *
 * The hot state lives in C: every account (with its rolled-up spent and
 * reserved) is in `l->accts`, indexed by id - 1 and found by name through an
 * open-addressing hash table.  SQLite holds the same state plus everything
 * cold (journal, grants, keys, ...); reservations and idempotency keys live
 * only in C (resv.c, idem.c).  Accounts changed during an
 * entry are marked dirty and written back once, at the end of the entry, in
 * the entry's transaction; on a hard error the transaction is rolled back and
 * the C cache reloaded from SQLite, so the two never disagree after an entry.
 */
#ifndef PURSER_LEDGER_INTERNAL_H
#define PURSER_LEDGER_INTERNAL_H

#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "ledger/ledger.h"

enum ledger_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_META_SET,
    ST_ACCT_INSERT,
    ST_ACCT_UPDATE,
    ST_ACCT_SET_TAGS,
    ST_RES_LOAD,
    ST_RES_CLEAR,
    ST_JOURNAL_INSERT,
    ST_JOURNAL_TS,
    ST_GRANT_INSERT,
    ST_GRANT_GET,
    ST_GRANT_CLOSE,
    ST_GRANT_DUE,
    ST_PERIOD_INSERT,
    ST_PRICE_UPSERT,
    ST_KEY_INSERT,
    ST_KEY_BY_ID,
    ST_KEY_BY_HASH,
    ST_KEY_REVOKE,
    ST_POLICY_CLEAR,
    ST_POLICY_ADD,
    ST_COUNT
};

/* Statements of the alerting state (watch_store.c): breakers, thresholds,
 * the outbox.  Prepared with the store's, in their own table so the store's
 * list stays its own. */
enum watch_stmt {
    WS_BREAKER_GET,
    WS_BREAKER_PUT,
    WS_BREAKER_DEL,
    WS_BREAKER_STATE,
    WS_REASON_GET,
    WS_REASON_PUT,
    WS_REASON_DEL,
    WS_ALERT_GET,
    WS_ALERT_PUT,
    WS_FIRED_GET,
    WS_FIRED_PUT,
    WS_OUTBOX_INSERT,
    WS_OUTBOX_COUNT,
    WS_OUTBOX_DROP_OLDEST,
    WS_OUTBOX_DELETE,
    WS_OUTBOX_MAX_ID,
    WS_META_GET,
    WS_COUNT
};

struct acct {
    char *name;
    uint32_t name_len;
    int32_t parent;          /* index, -1 for a top-level account */
    uint8_t depth;           /* segments - 1 */
    uint8_t period;          /* enum proto_period */
    uint8_t status;          /* LEDGER_STATUS_* */
    bool is_grant;
    bool grant_open;
    bool dirty;              /* differs from its SQLite row (ledger_sync writes it) */
    bool touched;            /* changed in the entry being applied */
    uint8_t watch;           /* WATCH_* bits, derived from the alerting tables */
    int32_t tz_offset_min;
    int64_t cap_micros;      /* PROTO_CAP_NONE or >= 0 */
    int64_t period_start_ms; /* current window [start, end) */
    int64_t period_end_ms;
    int64_t spent_micros;    /* subtree outflow in the window */
    int64_t reserved_micros; /* subtree holds */
    int64_t deadline_ms;     /* grants */
    uint64_t grant_id;       /* grants */
    int64_t created_ms;
};

/* The idempotency store (idem.c): a FIFO in time order plus a hash table
 * (open addressing: a miss costs one cache line, not a chain walk). */
struct idem_item;
struct idem_slot {
    uint64_t h;               /* the key's hash, so probes rarely touch items */
    struct idem_item *it;     /* NULL: empty */
};
struct idem_store {
    struct idem_item **fifo;  /* ring, power-of-two capacity, absolute positions */
    uint64_t fifo_cap;
    uint64_t head;            /* oldest live item */
    uint64_t tail;            /* one past the newest */
    uint64_t entry_head;      /* head/tail when the current entry began */
    uint64_t entry_tail;
    struct idem_slot *slots;  /* power-of-two count, at most half full */
    uint64_t slot_count;
};

/* A reservation (resv.c): every one lives in C, none in SQLite. */
struct resv {
    struct resv *next;       /* hash chain by id */
    uint64_t id;
    int32_t account;         /* index */
    int32_t payee;           /* index */
    int64_t amount_micros;
    int64_t deadline_ms;
    int64_t created_ms;
    int64_t closed_ms;
    int64_t actual_micros;
    int64_t overrun_micros;
    uint64_t transfer_id;
    uint32_t heap_pos;       /* place in the due heap while open, else RESV_NOT_DUE */
    uint32_t meta_len;
    uint8_t on_expire;
    uint8_t status;          /* LEDGER_RES_* */
    uint8_t meta[];          /* the request's metadata (msgpack map) */
};
#define RESV_NOT_DUE UINT32_MAX

/* What undoes one change to the reservation store (resv.c). */
struct resv_undo {
    struct resv *r;
    uint8_t kind;            /* RESV_UNDO_* in resv.c */
    uint8_t status;
    int64_t closed_ms, actual_micros, overrun_micros;
    uint64_t transfer_id;
};

/* The reservation store: ids in creation order (a FIFO that pruning pops,
 * moving still-open ones to `pinned`), a hash table by id and a heap of the
 * open ones by (deadline, id). */
struct resv_store {
    struct resv **fifo;      /* ring, power-of-two capacity, absolute positions */
    uint64_t fifo_cap;
    uint64_t head, tail;
    uint64_t entry_head;     /* head when the current entry began */
    struct resv **pinned;    /* open when pruning passed them; id order, all below fifo */
    uint32_t pinned_count, pinned_cap;
    struct resv **pinned_saved; /* pinned as the entry began (once pruning touched it) */
    uint32_t pinned_saved_count, pinned_saved_cap;
    bool is_pinned_saved;
    struct resv **buckets;
    uint64_t bucket_count;
    uint64_t count;          /* linked (live) reservations */
    struct resv **heap;
    uint32_t heap_count, heap_cap;
    struct resv_undo *undo;  /* this entry's changes, oldest first */
    uint32_t undo_count, undo_cap;
};

/* An account as it was before the current entry first changed it. */
struct tree_undo {
    int32_t index;
    struct acct saved;
};

/* Statements of the rate limits and estimates (limits_store.c), prepared
 * on first use. */
enum ledger_xstmt {
    XS_RL_FIND,
    XS_RL_UPSERT,
    XS_RL_CLEAR_EVENTS,
    XS_RL_EVENT_INSERT,
    XS_RL_WINDOW_SUM,
    XS_RL_WINDOW_EVENTS,
    XS_RL_SETTLE,
    XS_RL_PRUNE,
    XS_EST_STAT_GET,
    XS_EST_STAT_SET,
    XS_EST_SAMPLE_SET,
    XS_EST_SAMPLES,
    XS_EST_GRANT,
    XS_APPROVAL_GET,
    XS_APPROVAL_SET,
    XS_APPROVAL_CLEAR,
    XS_GRANT_APPROVED_ADD,
    XS_GRANT_APPROVED_GET,
    XS_COUNT
};

/* A posting whose row is not in SQLite yet (journal_rows.c). */
struct journal_row {
    uint64_t id;
    int64_t ts_ms;
    int kind;
    int64_t debit, credit; /* account ids (index + 1) */
    int64_t amount_micros;
    uint64_t reservation_id;
    int64_t overrun_micros;
    size_t meta_at, meta_len; /* in journal_rows.meta */
};

#define JOURNAL_ROWS_MAX 64 /* rows in the largest multi-row INSERT */
#define JOURNAL_RUN_COUNT 6 /* multi-row INSERTs: 64, 32, ..., 2 rows */

/* The entry's postings waiting for their rows, and the multi-row INSERTs
 * (prepared on first use). */
struct journal_rows {
    struct journal_row *rows;
    uint32_t count, cap;
    struct proto_buf meta; /* the rows' metadata, back to back */
    sqlite3_stmt *insert[JOURNAL_RUN_COUNT];
};

struct ledger {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *watch_st[WS_COUNT];
    sqlite3_stmt *xst[XS_COUNT]; /* limits_store.c; NULL until first used */
    /* Hints only (never hashed, never decide alone): false means "certainly
     * none configured", so the hot path skips the tables. */
    bool has_rate_limits;
    bool has_approval;
    struct ledger_copy *copies; /* copies being taken (copy.c) */

    struct acct *accts;      /* index = id - 1 */
    uint32_t acct_count;
    uint32_t acct_cap;
    int32_t *slots;          /* name hash table of indexes, -1 empty */
    uint32_t slot_count;     /* power of two */
    int32_t *dirty;          /* indexes whose rows are stale (unsynced) */
    uint32_t dirty_count;
    int32_t *touched;        /* indexes changed in this entry */
    uint32_t touched_count;
    struct tree_undo *undo;  /* how to roll this entry back in C */
    uint32_t undo_count;     /* room: acct_cap */
    uint32_t entry_acct_count;  /* acct_count when the entry began */
    uint32_t entry_dirty_count;
    bool is_meta_dirty;      /* counters differ from the meta table */

    int64_t now_ms;
    uint64_t entries_applied;
    uint64_t next_reservation_id;
    uint64_t next_transfer_id;
    uint64_t next_grant_id;
    uint64_t journal_chain;  /* FNV-1a chain over every posting */
    int32_t closed_months[64]; /* most recent closed months (y*12+m-1) */
    uint32_t closed_month_count;

    struct idem_store idem;
    struct resv_store resv;
    struct journal_rows journal; /* rows not yet written (journal_rows.c) */

    struct proto_buf scratch; /* encoding buffer, reused */
    struct proto_buf scratch2;
};

/* ---- store.c: schema, statements, cache load/flush, meta ---- */
/* Largest in-memory database (the memdb default is 1 GiB). */
#define LEDGER_MEMDB_MAX_BYTES (64LL << 30)
int store_open(struct ledger *l, const char *path, struct ledger_error *err);
void store_lift_size_limit(struct ledger *l);
void store_close(struct ledger *l);
int store_prepare(struct ledger *l, struct ledger_error *err);
void store_finalize(struct ledger *l);
int store_cache_load(struct ledger *l, struct ledger_error *err);
/* Write stale account rows and the counters (inside a transaction). */
int store_flush(struct ledger *l, struct ledger_error *err);
/* Bring SQLite up to date with the C state (its own transaction); needed
 * before anything reads balances or counters through SQL. */
int store_sync(struct ledger *l, struct ledger_error *err);
int store_exec(struct ledger *l, enum ledger_stmt id, struct ledger_error *err);
int store_sql_error(struct ledger *l, struct ledger_error *err, const char *what);
/* Reset + clear bindings of a cached statement and return it. */
sqlite3_stmt *store_stmt(struct ledger *l, enum ledger_stmt id);
/* Bind a blob that may be empty (empty binds NULL). */
void store_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n);

/* ---- limits_store.c: tables and statements of ratelimit.c / estimate.c ---- */
/* Create the tables when missing (a new ledger, or a snapshot from before
 * they existed) and load the hints. */
int xstore_open(struct ledger *l, struct ledger_error *err);
void xstore_finalize(struct ledger *l);
/* The statement `id`, prepared on first use, reset; NULL on failure (err set). */
sqlite3_stmt *xstore_stmt(struct ledger *l, enum ledger_xstmt id, struct ledger_error *err);
/* reserve.c's hook before it changes anything: rate limits, then approval. */
int limits_reserve_check(struct ledger *l, const struct proto_cmd *c, int32_t i,
                         struct proto_result *res, struct ledger_error *err);

/* ---- copy.c ---- */
/* Abort every copy being taken of l (before its database goes away). */
void copy_abort_all(struct ledger *l);

/* ---- ratelimit.c (hooks of reserve.c and expire) ---- */
/* Does a reservation of `tokens` at account i with metadata m fit every rate
 * limit?  0 with res->status PROTO_OK or a refusal (rate_limited with
 * retry_after_ms), or a hard error. */
int ratelimit_check(struct ledger *l, int32_t i, const struct proto_map *m, int64_t tokens,
                    struct proto_result *res, struct ledger_error *err);
/* Count reservation `id` in the windows of every limited scope. */
int ratelimit_record(struct ledger *l, uint64_t id, int32_t i, const struct proto_map *m,
                     int64_t tokens, struct ledger_error *err);
/* Settle the tokens of reservation `id`: its actual count (commit with
 * tokens > 0), 0 (release), unchanged otherwise (tokens < 0). */
int ratelimit_settle(struct ledger *l, uint64_t id, int64_t tokens, struct ledger_error *err);
/* Forget events older than the longest window (expire). */
int ratelimit_prune(struct ledger *l, struct ledger_error *err);

/* ---- estimate.c (hooks of grant.c and reserve.c) ---- */
/* A grant closed: learn its cost. */
int estimate_grant_closed(struct ledger *l, uint64_t grant_id, int64_t spent,
                          struct ledger_error *err);
/* Approval of a new grant (before it is created) and of a reservation. */
int approval_check_grant(struct ledger *l, const struct proto_cmd *c, int32_t parent,
                         struct proto_result *res, struct ledger_error *err);
int approval_check_reserve(struct ledger *l, const struct proto_cmd *c, int32_t i,
                           struct proto_result *res, struct ledger_error *err);
/* Remember that grant `id` was created by an admin (it is an approval). */
int approval_grant_created(struct ledger *l, const struct proto_cmd *c, uint64_t id,
                           struct ledger_error *err);
/* A value of a stored (msgpack) or decoded string map; false when absent. */
bool ledger_map_raw_find(const void *raw, size_t len, const char *key, struct proto_str *out);
bool ledger_map_find(const struct proto_map *m, const char *key, struct proto_str *out);

/* ---- tree.c: names, the account index, roll-ups ---- */
int32_t tree_find(const struct ledger *l, const char *name, uint32_t len);
int32_t tree_find_str(const struct ledger *l, struct proto_str name);
/* Append an account to the cache (and index it); returns its index or -1
 * on memory failure.  `a->name` is copied. */
int32_t tree_add(struct ledger *l, const struct acct *a);
void tree_reset(struct ledger *l);
/* Call before changing account i in an entry: saves it for rollback and
 * marks it for ledger sync.  Returns -1 only when out of memory. */
void tree_touch(struct ledger *l, int32_t i);
void tree_entry_begin(struct ledger *l);
void tree_entry_end(struct ledger *l);
/* Put every account back as it was when the entry began. */
void tree_entry_undo(struct ledger *l);
bool tree_is_ancestor_or_self(const struct ledger *l, int32_t anc, int32_t i);
/* Validate an account path (message names it and the rule broken). */
bool tree_name_valid(struct proto_str name, char *msg, size_t cap);
/* Spent in the window that contains `now` (0 once the window has passed). */
int64_t tree_spent_at(const struct acct *a, int64_t now_ms);
/* What an account's holds add to its parent's reserved. */
int64_t tree_contrib(const struct acct *a, int64_t spent, int64_t reserved);
/* Tightest room on the path from i up, or PROTO_UNLIMITED. */
int64_t tree_available(const struct ledger *l, int32_t i, int64_t now_ms);

#define TREE_CHECK_STATUS 1u /* refuse frozen/closed/expired-grant paths */
#define TREE_CHECK_CAPS 2u   /* refuse when a cap would be exceeded */
/* Would adding outflow `ds` (counted on i and its ancestors that do not
 * contain `credit`; credit -1: all) and hold `dr` at account i be allowed?
 * Always checks overflow.  Returns PROTO_OK or a refusal written to res. */
int tree_fit(const struct ledger *l, int32_t i, int32_t credit, int64_t ds,
             int64_t dr, unsigned checks, struct proto_result *res);
/* Apply it (after tree_fit said yes). */
void tree_apply(struct ledger *l, int32_t i, int32_t credit, int64_t ds, int64_t dr);
/* "vendor/unknown" for an empty payee. */
struct proto_str tree_payee_default(struct proto_str name);
bool tree_is_vendor_name(struct proto_str name);
/* Check the credited side (payee, transfer credit): its index, -2 for a
 * vendor/<x> account that does not exist yet (create it on use with
 * account_vendor_create), or -1 with a refusal in res. */
int32_t tree_payee_check(const struct ledger *l, struct proto_str name, const char *field,
                         bool is_closed_ok, struct proto_result *res);

/* ---- period.c: calendar arithmetic (UTC offsets, no time zones db) ---- */
void period_window(int period, int tz_offset_min, int64_t now_ms,
                   int64_t *start_ms, int64_t *end_ms);
/* Month index y*12 + (m-1) of a UTC time. */
int32_t period_month_index(int64_t ts_ms);
int64_t period_month_start_ms(int32_t month_index);
/* Parse "YYYY-MM"; returns month index or -1. */
int32_t period_month_parse(struct proto_str s);
bool period_month_is_closed(const struct ledger *l, int32_t month_index);

/* ---- journal (transfer.c) ---- */
/* Refuse postings into a closed month. */
int journal_check_open(const struct ledger *l, struct proto_result *res);
int journal_post(struct ledger *l, int kind, int32_t debit, int32_t credit,
                 int64_t amount_micros, uint64_t reservation_id,
                 int64_t overrun_micros, const void *meta, size_t meta_len,
                 uint64_t *transfer_id, struct ledger_error *err);
uint64_t journal_chain_step(uint64_t chain, uint64_t id, int64_t ts, int kind,
                            int64_t debit, int64_t credit, int64_t amount,
                            uint64_t reservation, int64_t overrun,
                            const void *meta, size_t meta_len);
/* journal_rows.c: a posting's row, written by journal_rows_flush (at the end
 * of the entry, or before the journal is read through SQL); discarded when
 * the entry rolls back. */
int journal_rows_add(struct ledger *l, const struct journal_row *r, const void *meta,
                     size_t meta_len, struct ledger_error *err);
int journal_rows_flush(struct ledger *l, struct ledger_error *err);
void journal_rows_discard(struct ledger *l);
void journal_rows_finalize(struct ledger *l); /* statements only */
void journal_rows_free(struct ledger *l);
/* First journal id with ts >= ts_ms (binary search over the monotonic ids). */
int journal_first_at(struct ledger *l, int64_t ts_ms, uint64_t *id,
                     struct ledger_error *err);

/* ---- command handlers: return 0 (result in res) or a LEDGER_E* ---- */
typedef int (*ledger_cmd_fn)(struct ledger *l, const struct proto_cmd *c,
                             struct proto_result *res, struct ledger_error *err);
int account_create(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int account_update(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int account_freeze(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int account_unfreeze(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int account_close(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int reserve_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int commit_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int release_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int expire_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int transfer_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int grant_create_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int grant_close_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int period_close_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int price_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int key_create_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int key_revoke_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int policy_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int rate_limit_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int approval_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);

/* grant.c: close every grant due at now (used by expire). */
int grant_expire_due(struct ledger *l, uint32_t max, uint32_t *closed,
                     struct ledger_error *err);
/* account.c: find a named account or refuse (invalid / not_found naming
 * `field`); -1 when refused. */
int32_t account_find(const struct ledger *l, struct proto_str name, const char *field,
                     struct proto_result *res);
/* account.c: add a grant's account (open, capped at amount, period none). */
int32_t account_create_grant(struct ledger *l, struct proto_str name, int32_t parent,
                             int64_t amount, int64_t deadline, uint64_t grant_id,
                             struct ledger_error *err);
/* account.c: create vendor/<x> (and vendor) now; index or -1 (err set). */
int32_t account_vendor_create(struct ledger *l, struct proto_str name,
                              struct ledger_error *err);
/* Resolve a credited side checked by tree_payee_check (creating it when -2). */
int32_t account_payee_resolve(struct ledger *l, int32_t checked, struct proto_str name,
                              struct ledger_error *err);
/* account.c: recompute an account's spent in its window from the journal. */
int account_recompute_spent(struct ledger *l, int32_t i, int64_t *spent,
                            struct ledger_error *err);

/* ---- idem.c ---- */
/* Look a key up.  *found: 1 result copied into res, 0 new, -1 conflict (res
 * filled with the refusal). *fp receives the request's fingerprint. */
int idem_lookup(struct ledger *l, const struct proto_cmd *c, int *found,
                uint64_t *fp, struct proto_result *res, struct ledger_error *err);
/* Start loading the table slots of an entry's keys: the table is far larger
 * than the caches, and the lookups then overlap their misses. */
void idem_prefetch(const struct ledger *l, const struct proto_cmd *cmds, uint32_t count);
int idem_store(struct ledger *l, const struct proto_cmd *c, uint64_t fp,
               const struct proto_result *res, struct ledger_error *err);
int idem_prune(struct ledger *l, int64_t before_ms, struct ledger_error *err);
void idem_entry_begin(struct ledger *l);
void idem_entry_end(struct ledger *l);
void idem_entry_undo(struct ledger *l);
void idem_reset(struct ledger *l);
uint64_t idem_count(const struct ledger *l);
typedef void (*idem_visit_cb)(void *arg, const void *key, uint32_t key_len, int64_t ts_ms,
                              uint64_t fp, const void *result, uint32_t result_len);
/* Every live key in time order. */
void idem_each(const struct ledger *l, idem_visit_cb cb, void *arg);
/* Add a key from a snapshot; -1 on bad input or no memory. */
int idem_load(struct ledger *l, const void *key, uint32_t key_len, int64_t ts, uint64_t fp,
              const void *result, uint32_t result_len);

/* ---- resv.c: the reservation store ---- */
struct resv *resv_find(const struct ledger *l, uint64_t id);
/* Add an open reservation with the next id; NULL when out of memory. */
struct resv *resv_create(struct ledger *l, int32_t account, int32_t payee, int64_t amount,
                         int64_t deadline_ms, int on_expire, const void *meta, size_t meta_len);
/* Close (or re-close an expired) reservation at now; -1 when out of memory
 * (nothing changed). */
int resv_close(struct ledger *l, struct resv *r, int status, int64_t actual,
               uint64_t transfer_id, int64_t overrun);
/* The open reservation with the smallest (deadline, id) if due at now. */
struct resv *resv_due_first(const struct ledger *l);
/* Forget closed reservations created before before_ms; -1 when out of memory. */
int resv_prune(struct ledger *l, int64_t before_ms);
void resv_entry_begin(struct ledger *l);
void resv_entry_end(struct ledger *l);
void resv_entry_undo(struct ledger *l);
void resv_reset(struct ledger *l);
uint64_t resv_count(const struct ledger *l);
typedef void (*resv_visit_cb)(void *arg, const struct resv *r);
/* Every reservation in id order. */
void resv_each(const struct ledger *l, resv_visit_cb cb, void *arg);
/* Add a reservation from a snapshot or an older image (ids increasing,
 * fields checked); -1 on bad input or no memory. */
int resv_load(struct ledger *l, const struct resv *fields, const void *meta, size_t meta_len);

/* ---- alerting (watch_store.c, breaker.c, thresholds.c, outbox.c) ---- */
/* Create the alerting tables if missing and prepare their statements (also
 * after a restore of an image that predates them). */
int watch_prepare(struct ledger *l, struct ledger_error *err);
/* struct acct.watch: which accounts have alerting rows, so that postings on
 * the others need no SQL.  Kept with the account (so an entry's undo restores
 * it) and rebuilt from the tables by watch_cache_load after a load. */
#define WATCH_BREAKER 1u /* a row in breaker */
#define WATCH_ALERTS 2u  /* a row in alert_config */
int watch_cache_load(struct ledger *l, struct ledger_error *err);
/* ledger_verify's part: reasons only on frozen accounts, the WATCH_* bits
 * equal to the tables, the outbox within its bound and below next_event_id.
 * Adds one to *count per violation (reported through cb). */
int watch_verify(struct ledger *l, ledger_violation_cb cb, void *arg, int *count,
                 struct ledger_error *err);
/* Set or clear a WATCH_* bit of account i (within an entry). */
void watch_flag_set(struct ledger *l, int32_t i, unsigned bit, bool is_on);
void watch_finalize(struct ledger *l);
sqlite3_stmt *watch_stmt(const struct ledger *l, enum watch_stmt id);
int64_t watch_meta_get(const struct ledger *l, const char *k, int64_t dflt);
/* A posting of `amount` from debit to credit is being made at now (before
 * the roll-ups move): count it for thresholds, velocity and bedtime on every
 * account whose spent it raises; may freeze accounts and add events. */
int watch_on_posting(struct ledger *l, int kind, int32_t debit, int32_t credit,
                     int64_t amount_micros, struct ledger_error *err);
int breaker_on_spend(struct ledger *l, int32_t i, int64_t amount_micros,
                     struct ledger_error *err);
/* After freeze / unfreeze (res holds its answer): remember the reason, or
 * forget it and restart the breaker's windows. */
int breaker_on_freeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                      struct ledger_error *err);
int breaker_on_unfreeze(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                        struct ledger_error *err);
/* The frozen refusal for account i, naming why it is frozen. */
int breaker_refuse_frozen(const struct ledger *l, int32_t i, struct proto_result *res);
/* Why account i is frozen ("" when not recorded). */
void breaker_reason(const struct ledger *l, int32_t i, char *out, size_t cap);
int threshold_on_spend(struct ledger *l, int32_t i, int64_t amount_micros,
                       struct ledger_error *err);
/* The thresholds of account i as text ("" when none), and whether default. */
void threshold_describe(const struct ledger *l, int32_t i, char *out, size_t cap,
                        bool *is_default);
/* Append an event (bounded: the oldest is dropped when full). `detail` is a
 * JSON object. */
int outbox_add(struct ledger *l, const char *type, int32_t i, const char *detail,
               struct ledger_error *err);
int breaker_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int alert_set_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);
int event_ack_cmd(struct ledger *, const struct proto_cmd *, struct proto_result *, struct ledger_error *);

/* ---- helpers (ledger.c) ---- */
/* Fill a refusal: status, and a printf message. */
int ledger_refuse(struct proto_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ledger_set_name(struct proto_result *res, const struct acct *a);
/* The stored form of a string map (raw msgpack), using l->scratch2 when the
 * map came from a local caller without raw bytes.  Validates limits. */
int ledger_map_blob(struct ledger *l, const struct proto_map *m, const char *field,
                    const void **blob, size_t *len, struct proto_result *res);
bool ledger_amount_valid(int64_t v, bool zero_ok);
int ledger_forbid_agent(const struct proto_cmd *c, struct proto_result *res);
/* Copy a proto_str into a C string buffer (truncating). */
void ledger_str_copy(char *dst, size_t cap, struct proto_str s);
/* Set err from an sqlite status and return LEDGER_ESQL. */
#define LEDGER_SQL_CHECK(l, err, rc, what) \
    do { if ((rc) != SQLITE_OK && (rc) != SQLITE_DONE && (rc) != SQLITE_ROW) \
        return store_sql_error((l), (err), (what)); } while (0)

#endif
