/*
 * ledger.c — opening a ledger and applying entries.
 *
 * ledger_apply runs one SQLite transaction per entry: for each command,
 * the idempotency store is consulted, the handler from the command table
 * validates everything before it mutates anything, and the result (refusals
 * included) is stored under the command's key.  Dirty accounts and counters
 * are flushed once at the end.  A hard error (SQLite, memory) rolls the whole
 * entry back and reloads the C cache, so the entry either applied whole or
 * not at all.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "ledger/internal.h"

struct ledger_cmd_def {
    ledger_cmd_fn fn;
    bool is_admin_only;
};

static const struct ledger_cmd_def ledger_cmds[PROTO_CMD_TYPE_COUNT] = {
    [PROTO_CMD_ACCOUNT_CREATE] = {account_create, true},
    [PROTO_CMD_ACCOUNT_UPDATE] = {account_update, true},
    [PROTO_CMD_ACCOUNT_FREEZE] = {account_freeze, true},
    [PROTO_CMD_ACCOUNT_UNFREEZE] = {account_unfreeze, true},
    [PROTO_CMD_ACCOUNT_CLOSE] = {account_close, true},
    [PROTO_CMD_RESERVE] = {reserve_cmd, false},
    [PROTO_CMD_COMMIT] = {commit_cmd, false},
    [PROTO_CMD_RELEASE] = {release_cmd, false},
    [PROTO_CMD_EXPIRE] = {expire_cmd, false},
    [PROTO_CMD_TRANSFER] = {transfer_cmd, false}, /* adjustments: admin (transfer.c) */
    [PROTO_CMD_GRANT_CREATE] = {grant_create_cmd, false},
    [PROTO_CMD_GRANT_CLOSE] = {grant_close_cmd, false},
    [PROTO_CMD_PERIOD_CLOSE] = {period_close_cmd, true},
    [PROTO_CMD_PRICE_SET] = {price_set_cmd, true},
    [PROTO_CMD_KEY_CREATE] = {key_create_cmd, true},
    [PROTO_CMD_KEY_REVOKE] = {key_revoke_cmd, true},
    [PROTO_CMD_POLICY_SET] = {policy_set_cmd, true},
    [PROTO_CMD_BREAKER_SET] = {breaker_set_cmd, true},
    [PROTO_CMD_ALERT_SET] = {alert_set_cmd, true},
    [PROTO_CMD_EVENT_ACK] = {event_ack_cmd, true},
    [PROTO_CMD_RATE_LIMIT_SET] = {rate_limit_set_cmd, true},
    [PROTO_CMD_APPROVAL_SET] = {approval_set_cmd, true},
};

int ledger_refuse(struct proto_result *res, int status, const char *fmt, ...)
{
    va_list ap;
    res->status = status;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    return status;
}

void ledger_set_name(struct proto_result *res, const struct acct *a)
{
    uint32_t n = a->name_len < PROTO_NAME_MAX ? a->name_len : PROTO_NAME_MAX;
    memcpy(res->name, a->name, n);
    res->name[n] = '\0';
}

void ledger_str_copy(char *dst, size_t cap, struct proto_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

bool ledger_amount_valid(int64_t v, bool zero_ok)
{
    return (zero_ok ? v >= 0 : v > 0) && v <= PROTO_AMOUNT_MAX;
}

int ledger_forbid_agent(const struct proto_cmd *c, struct proto_result *res)
{
    if (c->role == PROTO_ROLE_ADMIN)
        return PROTO_OK;
    return ledger_refuse(res, PROTO_ERR_FORBIDDEN, "%s needs the admin role",
                         proto_cmd_type_name(c->type));
}

int ledger_map_blob(struct ledger *l, const struct proto_map *m, const char *field,
                    const void **blob, size_t *len, struct proto_result *res)
{
    if (m->count > PROTO_MAP_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "%s: %u entries exceed %d", field,
                             m->count, PROTO_MAP_MAX);
    for (uint32_t i = 0; i < m->count; i++) {
        const struct proto_kv *kv = &m->kv[i];
        if (kv->key.len == 0 || kv->key.len > PROTO_MAP_KEY_MAX)
            return ledger_refuse(res, PROTO_ERR_INVALID, "%s: key of %u bytes (1 to %d allowed)",
                                 field, kv->key.len, PROTO_MAP_KEY_MAX);
        if (kv->value.len > PROTO_MAP_VALUE_MAX)
            return ledger_refuse(res, PROTO_ERR_INVALID,
                                 "%s: value of key \"%.*s\" has %u bytes, more than %d", field,
                                 (int)kv->key.len, kv->key.ptr, kv->value.len,
                                 PROTO_MAP_VALUE_MAX);
        for (uint32_t j = 0; j < i; j++)
            if (m->kv[j].key.len == kv->key.len &&
                memcmp(m->kv[j].key.ptr, kv->key.ptr, kv->key.len) == 0)
                return ledger_refuse(res, PROTO_ERR_INVALID, "%s: duplicate key \"%.*s\"",
                                     field, (int)kv->key.len, kv->key.ptr);
    }
    if (m->count == 0) {
        *blob = NULL;
        *len = 0;
        return PROTO_OK;
    }
    if (m->raw.len > 0) {
        *blob = m->raw.ptr;
        *len = m->raw.len;
        return PROTO_OK;
    }
    l->scratch2.len = 0;
    if (proto_map_encode(&l->scratch2, m) != 0)
        return ledger_refuse(res, PROTO_ERR_INVALID, "%s: out of memory", field);
    *blob = l->scratch2.data;
    *len = l->scratch2.len;
    return PROTO_OK;
}

int ledger_open(struct ledger **out, const char *path, struct ledger_error *err)
{
    /* Memory statistics take a global mutex on every allocation. */
    static bool is_configured;
    if (!is_configured) {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        is_configured = true;
    }
    struct ledger_error dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof *err);
    struct ledger *l = calloc(1, sizeof *l);
    if (!l) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return LEDGER_ENOMEM;
    }
    proto_buf_init(&l->scratch);
    proto_buf_init(&l->scratch2);
    int rc = store_open(l, path, err);
    if (rc == 0)
        rc = store_cache_load(l, err);
    if (rc != 0) {
        ledger_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    struct ledger_error ignored;
    if (l->db)
        store_sync(l, &ignored);
    store_close(l);
    journal_rows_free(l);
    tree_reset(l);
    idem_reset(l);
    resv_reset(l);
    free(l->accts);
    free(l->slots);
    free(l->dirty);
    free(l->touched);
    free(l->undo);
    proto_buf_free(&l->scratch);
    proto_buf_free(&l->scratch2);
    free(l);
}

int64_t ledger_now_ms(const struct ledger *l)
{
    return l->now_ms;
}

uint64_t ledger_entries_applied(const struct ledger *l)
{
    return l->entries_applied;
}

static int ledger_key_check(const struct proto_cmd *c, struct proto_result *res)
{
    if (c->key.len > PROTO_KEY_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "key: %u bytes exceed %d", c->key.len,
                             PROTO_KEY_MAX);
    return PROTO_OK;
}

static int ledger_apply_cmd(struct ledger *l, const struct proto_cmd *c,
                            struct proto_result *res, struct ledger_error *err)
{
    memset(res, 0, sizeof *res);
    if (c->type == 0 || c->type >= PROTO_CMD_TYPE_COUNT || !ledger_cmds[c->type].fn) {
        ledger_refuse(res, PROTO_ERR_INVALID, "type: unknown command type %u", c->type);
        return 0;
    }
    if (c->role > PROTO_ROLE_ADMIN) {
        ledger_refuse(res, PROTO_ERR_INVALID, "role: unknown role %u", c->role);
        return 0;
    }
    if (ledger_key_check(c, res) != PROTO_OK)
        return 0;
    uint64_t fp = 0;
    if (c->key.len > 0) {
        int found = 0;
        int rc = idem_lookup(l, c, &found, &fp, res, err);
        if (rc != 0 || found != 0)
            return rc;
    }
    const struct ledger_cmd_def *def = &ledger_cmds[c->type];
    if (!def->is_admin_only || ledger_forbid_agent(c, res) == PROTO_OK) {
        int rc = def->fn(l, c, res, err);
        if (rc != 0)
            return rc;
    }
    if (c->key.len > 0)
        return idem_store(l, c, fp, res, err);
    return 0;
}

/* The counters an entry may move, saved so a failed entry can be undone. */
struct ledger_counters {
    int64_t now_ms;
    uint64_t next_reservation_id, next_transfer_id, next_grant_id, journal_chain;
    int32_t closed_months[64];
    uint32_t closed_month_count;
};

static void ledger_counters_save(const struct ledger *l, struct ledger_counters *c)
{
    c->now_ms = l->now_ms;
    c->next_reservation_id = l->next_reservation_id;
    c->next_transfer_id = l->next_transfer_id;
    c->next_grant_id = l->next_grant_id;
    c->journal_chain = l->journal_chain;
    memcpy(c->closed_months, l->closed_months, sizeof c->closed_months);
    c->closed_month_count = l->closed_month_count;
}

static void ledger_counters_restore(struct ledger *l, const struct ledger_counters *c)
{
    l->now_ms = c->now_ms;
    l->next_reservation_id = c->next_reservation_id;
    l->next_transfer_id = c->next_transfer_id;
    l->next_grant_id = c->next_grant_id;
    l->journal_chain = c->journal_chain;
    memcpy(l->closed_months, c->closed_months, sizeof c->closed_months);
    l->closed_month_count = c->closed_month_count;
}

int ledger_apply(struct ledger *l, const struct proto_entry *entry,
                 struct proto_result *results, struct ledger_error *err)
{
    struct ledger_error dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof *err);
    if (entry->cmd_count > PROTO_BATCH_MAX) {
        err->code = LEDGER_EINVAL;
        snprintf(err->message, sizeof err->message, "batch of %u commands exceeds %d",
                 entry->cmd_count, PROTO_BATCH_MAX);
        return LEDGER_EINVAL;
    }
    int rc = store_exec(l, ST_BEGIN, err);
    if (rc != 0)
        return rc;
    struct ledger_counters saved;
    ledger_counters_save(l, &saved);
    tree_entry_begin(l);
    idem_entry_begin(l);
    resv_entry_begin(l);
    if (entry->timestamp_ms > l->now_ms)
        l->now_ms = entry->timestamp_ms;
    idem_prefetch(l, entry->cmds, entry->cmd_count);
    for (uint32_t i = 0; i < entry->cmd_count && rc == 0; i++)
        rc = ledger_apply_cmd(l, &entry->cmds[i], &results[i], err);
    if (rc == 0)
        rc = journal_rows_flush(l, err);
    if (rc == 0)
        rc = store_exec(l, ST_COMMIT, err);
    if (rc != 0) {
        /* SQLite and C go back to where the entry began. */
        struct ledger_error ignored;
        journal_rows_discard(l);
        store_exec(l, ST_ROLLBACK, &ignored);
        tree_entry_undo(l);
        idem_entry_undo(l);
        idem_entry_end(l);
        resv_entry_undo(l);
        ledger_counters_restore(l, &saved);
        return rc;
    }
    tree_entry_end(l);
    idem_entry_end(l);
    resv_entry_end(l);
    l->entries_applied++;
    l->is_meta_dirty = true;
    return 0;
}
