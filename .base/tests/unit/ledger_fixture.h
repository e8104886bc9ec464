/*
 * ledger_fixture.h — small helpers for ledger unit tests: an in-memory
 * ledger, command builders, and one-command apply at a chosen time.
 * Builders return commands whose strings point at the C strings passed in
 * (string literals in tests), so they live long enough.
 */
#ifndef PURSER_TEST_LEDGER_FIXTURE_H
#define PURSER_TEST_LEDGER_FIXTURE_H

#include "ledger/ledger.h"

struct fx {
    struct ledger *l;
    int64_t now_ms;          /* timestamp of the next entry */
    struct proto_result res; /* result of the last fx_apply */
};

/* 2025-11-16 00:00:00 UTC, a Sunday: the default start time (FX_MON is a Monday). */
#define FX_T0 1763251200000LL
#define FX_USD 1000000LL

void fx_open(struct fx *f);
void fx_close(struct fx *f);

/* Apply one command as its own entry at f->now_ms; returns the result's
 * status and keeps the result in f->res.  Fails the test on a hard error. */
int fx_apply(struct fx *f, const struct proto_cmd *cmd);
/* Apply several commands as one entry; results land in `res`. */
void fx_apply_batch(struct fx *f, const struct proto_cmd *cmds, uint32_t n,
                    struct proto_result *res);

struct proto_str fx_s(const char *c);

struct proto_cmd fx_account_create(const char *name, int64_t cap_micros,
                                   int period, int tz_offset_min);
struct proto_cmd fx_account_update(const char *name, int64_t cap_micros,
                                   int64_t period, int64_t tz_offset_min);
struct proto_cmd fx_account_status(int type, const char *name);
struct proto_cmd fx_reserve(const char *account, int64_t amount_micros, int64_t ttl_ms);
struct proto_cmd fx_commit(uint64_t id, int64_t actual_micros);
struct proto_cmd fx_release(uint64_t id);
struct proto_cmd fx_expire(void);
struct proto_cmd fx_transfer(const char *debit, const char *credit,
                             int64_t amount_micros, int kind);
struct proto_cmd fx_grant_create(const char *parent, int64_t amount_micros, int64_t ttl_ms);
struct proto_cmd fx_grant_close(uint64_t id);
struct proto_cmd fx_period_close(const char *month);
struct proto_cmd fx_price_set(const char *model, int64_t in, int64_t out,
                              int64_t cached, int64_t cache_write);
struct proto_cmd fx_key_create(const char *id, const uint8_t hash[32],
                               const char *account, int role);
struct proto_cmd fx_key_revoke(const char *id);
struct proto_cmd fx_policy_set(int n, const char *const *keys);

/* Modifiers. */
struct proto_cmd fx_keyed(struct proto_cmd c, const char *key);
struct proto_cmd fx_admin(struct proto_cmd c);
/* Add a string pair to a command's tags or metadata map (whichever the type
 * has); the map's `raw` stays empty, as from a local encoder. */
void fx_meta_add(struct proto_cmd *c, const char *k, const char *v);

/* Account view; fails the test when the account does not exist. */
struct ledger_account_view fx_view(struct fx *f, const char *name);
/* Assert verify() finds no violation and return the state hash. */
void fx_assert_verified(struct fx *f);
void fx_state_hash(struct fx *f, uint8_t out[32]);

/* ---- rule-test helpers (each fails the test when its step is refused) ---- */

/* 2026-11-16 00:00:00 UTC, a Monday (FX_T0 above is 2025-11-16, a Sunday). */
#define FX_MON 1794787200000LL
#define FX_HOUR_MS (3600LL * 1000)
#define FX_DAY_MS (24 * FX_HOUR_MS)

/* Create an account as admin; fails unless OK. */
void fx_create(struct fx *f, const char *name, int64_t cap_micros, int period,
               int tz_offset_min);
/* Reserve (agent, payee vendor/openai, ttl 1 h); fails unless OK; the id. */
uint64_t fx_reserve_ok(struct fx *f, const char *account, int64_t amount_micros);
/* Reserve and commit `amount_micros` in full at f->now_ms; fails unless OK. */
void fx_spend(struct fx *f, const char *account, int64_t amount_micros);
/* Move the ledger's clock to `now_ms` by applying an expire there. */
void fx_tick(struct fx *f, int64_t now_ms);
/* Copy up to `max` postings of one UTC month into `out` (may be NULL when
 * max is 0); returns how many the month has. */
int fx_journal(struct fx *f, int year, int month, struct ledger_posting_view *out,
               int max);
/* Fail unless the state hash equals `before`. */
void fx_assert_hash(struct fx *f, const uint8_t before[32]);
/* Fail unless the last result's message contains `needle`. */
void fx_assert_message_has(struct fx *f, const char *needle);

/* Apply `cmd` at f->now_ms and fail (naming the refusal) unless it is
 * PROTO_OK; the result stays in f->res. */
void fx_expect_ok(struct fx *f, const struct proto_cmd *cmd);
/* Apply unkeyed `cmd` at f->now_ms and fail unless it is refused with
 * `status`, its message names `field` (a substring; NULL: not checked), and
 * the state hash is the same before and after. */
void fx_expect_refused(struct fx *f, const struct proto_cmd *cmd, int status,
                       const char *field);
bool fx_hash_equal(const uint8_t a[32], const uint8_t b[32]);

#endif
