/* ledger_fixture.c — see ledger_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/ledger_fixture.h"

void fx_open(struct fx *f)
{
    struct ledger_error err = {0};
    memset(f, 0, sizeof *f);
    f->now_ms = FX_T0;
    int rc = ledger_open(&f->l, NULL, &err);
    if (rc != 0)
        fail_msg("ledger_open: %s", err.message);
}

void fx_close(struct fx *f)
{
    ledger_close(f->l);
    f->l = NULL;
}

int fx_apply(struct fx *f, const struct proto_cmd *cmd)
{
    struct proto_cmd copy = *cmd;
    struct proto_entry e = {.timestamp_ms = f->now_ms, .cmd_count = 1, .cmds = &copy};
    struct ledger_error err = {0};
    memset(&f->res, 0, sizeof f->res);
    int rc = ledger_apply(f->l, &e, &f->res, &err);
    if (rc != 0)
        fail_msg("ledger_apply: hard error %d: %s", rc, err.message);
    return f->res.status;
}

void fx_apply_batch(struct fx *f, const struct proto_cmd *cmds, uint32_t n,
                    struct proto_result *res)
{
    struct proto_entry e = {.timestamp_ms = f->now_ms, .cmd_count = n,
                            .cmds = (struct proto_cmd *)cmds};
    struct ledger_error err = {0};
    int rc = ledger_apply(f->l, &e, res, &err);
    if (rc != 0)
        fail_msg("ledger_apply: hard error %d: %s", rc, err.message);
}

struct proto_str fx_s(const char *c)
{
    struct proto_str s = {c, c ? (uint32_t)strlen(c) : 0};
    return s;
}

static struct proto_cmd fx_cmd(int type)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = (uint8_t)type;
    c.role = PROTO_ROLE_ADMIN;
    return c;
}

struct proto_cmd fx_account_create(const char *name, int64_t cap_micros,
                                   int period, int tz_offset_min)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_ACCOUNT_CREATE);
    c.u.account.name = fx_s(name);
    c.u.account.cap_micros = cap_micros;
    c.u.account.period = period;
    c.u.account.tz_offset_min = tz_offset_min;
    c.u.account.has_tags = true;
    return c;
}

struct proto_cmd fx_account_update(const char *name, int64_t cap_micros,
                                   int64_t period, int64_t tz_offset_min)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_ACCOUNT_UPDATE);
    c.u.account.name = fx_s(name);
    c.u.account.cap_micros = cap_micros;
    c.u.account.period = period;
    c.u.account.tz_offset_min = tz_offset_min;
    c.u.account.has_tags = false;
    return c;
}

struct proto_cmd fx_account_status(int type, const char *name)
{
    struct proto_cmd c = fx_cmd(type);
    c.u.status.name = fx_s(name);
    return c;
}

struct proto_cmd fx_reserve(const char *account, int64_t amount_micros, int64_t ttl_ms)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_RESERVE);
    c.role = PROTO_ROLE_AGENT;
    c.u.reserve.account = fx_s(account);
    c.u.reserve.payee = fx_s("vendor/openai");
    c.u.reserve.amount_micros = amount_micros;
    c.u.reserve.ttl_ms = ttl_ms;
    c.u.reserve.on_expire = PROTO_ON_EXPIRE_RELEASE;
    return c;
}

struct proto_cmd fx_commit(uint64_t id, int64_t actual_micros)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_COMMIT);
    c.role = PROTO_ROLE_AGENT;
    c.u.commit.reservation_id = id;
    c.u.commit.actual_micros = actual_micros;
    return c;
}

struct proto_cmd fx_release(uint64_t id)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_RELEASE);
    c.role = PROTO_ROLE_AGENT;
    c.u.release.reservation_id = id;
    return c;
}

struct proto_cmd fx_expire(void)
{
    return fx_cmd(PROTO_CMD_EXPIRE);
}

struct proto_cmd fx_transfer(const char *debit, const char *credit,
                             int64_t amount_micros, int kind)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_TRANSFER);
    c.role = kind == PROTO_KIND_ADJUSTMENT ? PROTO_ROLE_ADMIN : PROTO_ROLE_AGENT;
    c.u.transfer.debit = fx_s(debit);
    c.u.transfer.credit = fx_s(credit);
    c.u.transfer.amount_micros = amount_micros;
    c.u.transfer.kind = kind;
    return c;
}

struct proto_cmd fx_grant_create(const char *parent, int64_t amount_micros, int64_t ttl_ms)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_GRANT_CREATE);
    c.role = PROTO_ROLE_AGENT;
    c.u.grant_create.parent = fx_s(parent);
    c.u.grant_create.workflow = fx_s("wf");
    c.u.grant_create.amount_micros = amount_micros;
    c.u.grant_create.ttl_ms = ttl_ms;
    return c;
}

struct proto_cmd fx_grant_close(uint64_t id)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_GRANT_CLOSE);
    c.role = PROTO_ROLE_AGENT;
    c.u.grant_close.grant_id = id;
    return c;
}

struct proto_cmd fx_period_close(const char *month)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_PERIOD_CLOSE);
    c.u.period_close.month = fx_s(month);
    return c;
}

struct proto_cmd fx_price_set(const char *model, int64_t in, int64_t out,
                              int64_t cached, int64_t cache_write)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_PRICE_SET);
    c.u.price_set.model = fx_s(model);
    c.u.price_set.input_micros = in;
    c.u.price_set.output_micros = out;
    c.u.price_set.cached_micros = cached;
    c.u.price_set.cache_write_micros = cache_write;
    return c;
}

struct proto_cmd fx_key_create(const char *id, const uint8_t hash[32],
                               const char *account, int role)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_KEY_CREATE);
    c.u.key_create.key_id = fx_s(id);
    c.u.key_create.hash.ptr = (const char *)hash;
    c.u.key_create.hash.len = PROTO_HASH_BYTES;
    c.u.key_create.account = fx_s(account);
    c.u.key_create.key_role = role;
    return c;
}

struct proto_cmd fx_key_revoke(const char *id)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_KEY_REVOKE);
    c.u.key_revoke.key_id = fx_s(id);
    return c;
}

struct proto_cmd fx_policy_set(int n, const char *const *keys)
{
    struct proto_cmd c = fx_cmd(PROTO_CMD_POLICY_SET);
    c.u.policy_set.required_metadata.count = (uint32_t)n;
    for (int i = 0; i < n && i < PROTO_LIST_MAX; i++)
        c.u.policy_set.required_metadata.item[i] = fx_s(keys[i]);
    return c;
}

struct proto_cmd fx_keyed(struct proto_cmd c, const char *key)
{
    c.key = fx_s(key);
    return c;
}

struct proto_cmd fx_admin(struct proto_cmd c)
{
    c.role = PROTO_ROLE_ADMIN;
    return c;
}

void fx_meta_add(struct proto_cmd *c, const char *k, const char *v)
{
    struct proto_map *m = NULL;
    switch (c->type) {
    case PROTO_CMD_ACCOUNT_CREATE:
    case PROTO_CMD_ACCOUNT_UPDATE:
        m = &c->u.account.tags;
        c->u.account.has_tags = true;
        break;
    case PROTO_CMD_RESERVE: m = &c->u.reserve.metadata; break;
    case PROTO_CMD_COMMIT: m = &c->u.commit.metadata; break;
    case PROTO_CMD_TRANSFER: m = &c->u.transfer.metadata; break;
    case PROTO_CMD_GRANT_CREATE: m = &c->u.grant_create.metadata; break;
    default: fail_msg("command type %d has no map", c->type);
    }
    if (m->count >= PROTO_MAP_MAX)
        fail_msg("fx_meta_add: map full");
    m->kv[m->count].key = fx_s(k);
    m->kv[m->count].value = fx_s(v);
    m->count++;
}

struct ledger_account_view fx_view(struct fx *f, const char *name)
{
    struct ledger_account_view v;
    struct ledger_error err = {0};
    memset(&v, 0, sizeof v);
    if (ledger_account_get(f->l, name, &v, &err) != 0)
        fail_msg("account %s: %s", name, err.message);
    return v;
}

static void fx_on_violation(void *arg, const char *message)
{
    (void)arg;
    print_error("violation: %s\n", message);
}

void fx_assert_verified(struct fx *f)
{
    struct ledger_error err = {0};
    int n = ledger_verify(f->l, fx_on_violation, NULL, &err);
    if (n != 0)
        fail_msg("verify: %d violation(s) (%s)", n, err.message);
}

void fx_state_hash(struct fx *f, uint8_t out[32])
{
    struct ledger_error err = {0};
    if (ledger_state_hash(f->l, out, &err) != 0)
        fail_msg("state_hash: %s", err.message);
}

/* ---- rule-test helpers ---- */

void fx_create(struct fx *f, const char *name, int64_t cap_micros, int period,
               int tz_offset_min)
{
    struct proto_cmd c = fx_account_create(name, cap_micros, period, tz_offset_min);
    if (fx_apply(f, &c) != PROTO_OK)
        fail_msg("create %s: %s (%s)", name, proto_status_name(f->res.status),
                 f->res.message);
}

uint64_t fx_reserve_ok(struct fx *f, const char *account, int64_t amount_micros)
{
    struct proto_cmd c = fx_reserve(account, amount_micros, 3600 * 1000);
    if (fx_apply(f, &c) != PROTO_OK)
        fail_msg("reserve %s %lld: %s (%s)", account, (long long)amount_micros,
                 proto_status_name(f->res.status), f->res.message);
    return f->res.id;
}

void fx_spend(struct fx *f, const char *account, int64_t amount_micros)
{
    uint64_t id = fx_reserve_ok(f, account, amount_micros);
    struct proto_cmd c = fx_commit(id, amount_micros);
    if (fx_apply(f, &c) != PROTO_OK)
        fail_msg("commit %s %lld: %s (%s)", account, (long long)amount_micros,
                 proto_status_name(f->res.status), f->res.message);
}

void fx_tick(struct fx *f, int64_t now_ms)
{
    struct proto_cmd c = fx_expire();
    f->now_ms = now_ms;
    if (fx_apply(f, &c) != PROTO_OK)
        fail_msg("expire: %s (%s)", proto_status_name(f->res.status), f->res.message);
}

struct fx_journal_acc {
    struct ledger_posting_view *out;
    int max;
    int count;
};

static int fx_journal_cb(void *arg, const struct ledger_posting_view *p)
{
    struct fx_journal_acc *acc = arg;
    if (acc->count < acc->max)
        acc->out[acc->count] = *p;
    acc->count++;
    return 0;
}

int fx_journal(struct fx *f, int year, int month, struct ledger_posting_view *out,
               int max)
{
    struct fx_journal_acc acc = {out, max, 0};
    struct ledger_error err = {0};
    if (ledger_journal_month(f->l, year, month, fx_journal_cb, &acc, &err) != 0)
        fail_msg("journal %04d-%02d: %s", year, month, err.message);
    return acc.count;
}

void fx_assert_hash(struct fx *f, const uint8_t before[32])
{
    uint8_t after[32];
    fx_state_hash(f, after);
    if (memcmp(before, after, sizeof after) != 0)
        fail_msg("state hash changed (last status %s: %s)",
                 proto_status_name(f->res.status), f->res.message);
}

void fx_assert_message_has(struct fx *f, const char *needle)
{
    if (strstr(f->res.message, needle) == NULL)
        fail_msg("message \"%s\" does not name \"%s\"", f->res.message, needle);
}

void fx_expect_ok(struct fx *f, const struct proto_cmd *cmd)
{
    int status = fx_apply(f, cmd);
    if (status != PROTO_OK)
        fail_msg("%s: expected ok, got %s: %s", proto_cmd_type_name(cmd->type),
                 proto_status_name(status), f->res.message);
}

void fx_expect_refused(struct fx *f, const struct proto_cmd *cmd, int status,
                       const char *field)
{
    uint8_t before[32], after[32];
    fx_state_hash(f, before);
    int got = fx_apply(f, cmd);
    if (got != status)
        fail_msg("%s: expected %s, got %s: %s", proto_cmd_type_name(cmd->type),
                 proto_status_name(status), proto_status_name(got), f->res.message);
    if (field != NULL && strstr(f->res.message, field) == NULL)
        fail_msg("%s: message \"%s\" does not name \"%s\"",
                 proto_cmd_type_name(cmd->type), f->res.message, field);
    fx_state_hash(f, after);
    if (!fx_hash_equal(before, after))
        fail_msg("%s: refused with %s but the state hash changed",
                 proto_cmd_type_name(cmd->type), proto_status_name(got));
}

bool fx_hash_equal(const uint8_t a[32], const uint8_t b[32])
{
    return memcmp(a, b, 32) == 0;
}
