/*
 * estimate.c — shadow FinOps: what a task of a workflow costs, learned from
 * closed grants, and the approval rule built on it.  All in the ledger, from
 * entry order and entry time only, so every replica learns and decides alike.
 *
 * The estimate model (decided):
 *   - A task is a grant with a workflow.  When the grant closes (grant close
 *     or expiry) having spent something, its spent is one sample of
 *     (workflow, model) — model = the grant's metadata "model" when it has
 *     one — and always one of (workflow, "") = any model.  A grant that spent
 *     nothing ran no task and teaches nothing.
 *   - Each (workflow, model) keeps the last LEDGER_ESTIMATE_SAMPLE (256)
 *     samples: a ring of slots, slot = seen mod 256, `seen` counting every
 *     sample ever taken.  Bounded, deterministic, and it follows drift.
 *   - p50 / p90 are nearest-rank percentiles of the sample: sorted ascending,
 *     the value at 1-based rank ceil(q * n).
 *   - A lookup of (workflow, model) uses that sample when it has any, else
 *     (workflow, "") (the answer names which).
 *
 * Approval (decided).  With a threshold X set (approval set, admin):
 *   - an agent creating a grant with a workflow whose p90 is known is
 *     refused (approval_required) when p90 > X, or when p90 exceeds the room
 *     left on the parent's path: that is what the agent may spend alone.
 *     An admin may create the same grant: an admin-created grant *is* the
 *     approval, remembered with the grant.
 *   - an agent reservation whose metadata has "workflow" is refused when the
 *     p90 of (workflow, its "model") exceeds X, unless it charges a grant
 *     (its account or an ancestor) that an admin created.  Calls are judged
 *     against X only, not against room: running low mid-task is the budget's
 *     business (budget_exceeded), not approval's.
 *   - no samples yet: nothing to judge, allowed.  Admin commands: allowed.
 */
#include "proto/mp.h"
#include "ledger/internal.h"

bool ledger_map_find(const struct proto_map *m, const char *key, struct proto_str *out)
{
    for (uint32_t i = 0; i < m->count; i++)
        if (proto_str_eq(m->kv[i].key, key)) {
            *out = m->kv[i].value;
            return true;
        }
    return false;
}

bool ledger_map_raw_find(const void *raw, size_t len, const char *key, struct proto_str *out)
{
    struct mp_reader r;
    uint32_t n = 0;
    if (raw == NULL || len == 0)
        return false;
    mp_reader_init(&r, raw, len);
    if (mp_map_read(&r, &n) != MP_OK)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct proto_str k, v;
        if (mp_str_read(&r, &k.ptr, &k.len) != MP_OK || mp_str_read(&r, &v.ptr, &v.len) != MP_OK)
            return false;
        if (proto_str_eq(k, key)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static void est_bind_key(sqlite3_stmt *s, struct proto_str workflow, struct proto_str model)
{
    sqlite3_bind_text(s, 1, workflow.len ? workflow.ptr : "", (int)workflow.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, model.len ? model.ptr : "", (int)model.len, SQLITE_STATIC);
}

static int est_seen(struct ledger *l, struct proto_str workflow, struct proto_str model,
                    int64_t *seen, struct ledger_error *err)
{
    sqlite3_stmt *s = xstore_stmt(l, XS_EST_STAT_GET, err);
    if (!s)
        return err->code;
    est_bind_key(s, workflow, model);
    int rc = sqlite3_step(s);
    *seen = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "estimate");
    return 0;
}

static int est_add(struct ledger *l, struct proto_str workflow, struct proto_str model,
                   int64_t cost, struct ledger_error *err)
{
    int64_t seen = 0;
    int rc = est_seen(l, workflow, model, &seen, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = xstore_stmt(l, XS_EST_SAMPLE_SET, err);
    if (!s)
        return err->code;
    est_bind_key(s, workflow, model);
    sqlite3_bind_int64(s, 3, seen % LEDGER_ESTIMATE_SAMPLE);
    sqlite3_bind_int64(s, 4, cost);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "estimate sample");
    s = xstore_stmt(l, XS_EST_STAT_SET, err);
    if (!s)
        return err->code;
    est_bind_key(s, workflow, model);
    sqlite3_bind_int64(s, 3, seen + 1);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "estimate count");
    return 0;
}

int estimate_grant_closed(struct ledger *l, uint64_t grant_id, int64_t spent,
                          struct ledger_error *err)
{
    if (spent <= 0)
        return 0;
    sqlite3_stmt *s = xstore_stmt(l, XS_EST_GRANT, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, (int64_t)grant_id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return store_sql_error(l, err, "estimate: load grant");
    }
    /* Copy out: the statement is reset before the writes. */
    char workflow[PROTO_TEXT_MAX + 1], model[PROTO_MAP_VALUE_MAX + 1];
    struct proto_str w = {(const char *)sqlite3_column_text(s, 0),
                          (uint32_t)sqlite3_column_bytes(s, 0)};
    struct proto_str m = {"", 0};
    ledger_map_raw_find(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1), "model",
                        &m);
    ledger_str_copy(workflow, sizeof workflow, w);
    ledger_str_copy(model, sizeof model, m);
    w.ptr = workflow;
    m.ptr = model;
    sqlite3_reset(s);
    if (w.len == 0)
        return 0;
    int rc = 0;
    if (m.len > 0)
        rc = est_add(l, w, m, spent, err);
    if (rc == 0)
        rc = est_add(l, w, (struct proto_str){"", 0}, spent, err);
    return rc;
}

/* The estimate of exactly (workflow, model). */
static int est_get_exact(struct ledger *l, struct proto_str workflow, struct proto_str model,
                         struct ledger_estimate_view *out, struct ledger_error *err)
{
    int64_t costs[LEDGER_ESTIMATE_SAMPLE];
    uint32_t n = 0;
    memset(out, 0, sizeof *out);
    ledger_str_copy(out->model, sizeof out->model, model);
    int64_t seen = 0;
    int rc = est_seen(l, workflow, model, &seen, err);
    if (rc)
        return rc;
    out->seen = (uint64_t)seen;
    sqlite3_stmt *s = xstore_stmt(l, XS_EST_SAMPLES, err);
    if (!s)
        return err->code;
    est_bind_key(s, workflow, model);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < LEDGER_ESTIMATE_SAMPLE)
        costs[n++] = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_sql_error(l, err, "estimate samples");
    out->samples = n; /* costs ascend: the query sorts them */
    if (n > 0) {
        out->p50_micros = costs[(n + 1) / 2 - 1];          /* rank ceil(n / 2) */
        out->p90_micros = costs[(9 * (uint64_t)n + 9) / 10 - 1]; /* rank ceil(0.9 n) */
    }
    return 0;
}

static int est_lookup(struct ledger *l, struct proto_str workflow, struct proto_str model,
                      struct ledger_estimate_view *out, struct ledger_error *err)
{
    int rc = est_get_exact(l, workflow, model, out, err);
    if (rc == 0 && out->samples == 0 && model.len > 0)
        rc = est_get_exact(l, workflow, (struct proto_str){"", 0}, out, err);
    return rc;
}

int ledger_estimate_get(struct ledger *l, const char *workflow, const char *model,
                        struct ledger_estimate_view *out, struct ledger_error *err)
{
    if (workflow == NULL || workflow[0] == '\0' || strlen(workflow) > PROTO_TEXT_MAX ||
        (model && strlen(model) > PROTO_MAP_VALUE_MAX)) {
        err->code = LEDGER_EINVAL;
        snprintf(err->message, sizeof err->message,
                 "workflow: 1 to %d bytes; model: at most %d bytes", PROTO_TEXT_MAX,
                 PROTO_MAP_VALUE_MAX);
        return LEDGER_EINVAL;
    }
    return est_lookup(l, proto_str_c(workflow), proto_str_c(model ? model : ""), out, err);
}

/* ---- approval ---- */

static int approval_threshold(struct ledger *l, int64_t *above, struct ledger_error *err)
{
    *above = PROTO_CAP_NONE;
    if (!l->has_approval)
        return 0;
    sqlite3_stmt *s = xstore_stmt(l, XS_APPROVAL_GET, err);
    if (!s)
        return err->code;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *above = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "approval threshold");
    return 0;
}

int ledger_approval_get(struct ledger *l, int64_t *above_micros, struct ledger_error *err)
{
    return approval_threshold(l, above_micros, err);
}

int approval_set_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                     struct ledger_error *err)
{
    int64_t above = c->u.approval_set.above_micros;
    if (above != PROTO_CAP_NONE && !ledger_amount_valid(above, true))
        return ledger_refuse(res, PROTO_ERR_INVALID, "above_micros: %lld is not -1 (none) or"
                             " 0..%lld", (long long)above, (long long)PROTO_AMOUNT_MAX), 0;
    sqlite3_stmt *s = xstore_stmt(l, above == PROTO_CAP_NONE ? XS_APPROVAL_CLEAR
                                                             : XS_APPROVAL_SET, err);
    if (!s)
        return err->code;
    if (above != PROTO_CAP_NONE)
        sqlite3_bind_int64(s, 1, above);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "set approval");
    l->has_approval = true;
    return 0;
}

static void usd_format(int64_t micros, char *buf, size_t cap)
{
    snprintf(buf, cap, "%lld.%06lld", (long long)(micros / 1000000),
             (long long)(micros % 1000000));
}

/* Refuse when the p90 of (workflow, model) exceeds X, or `room` (pass
 * PROTO_UNLIMITED to judge against X only). */
static int approval_judge(struct ledger *l, struct proto_str workflow, struct proto_str model,
                          int64_t room, const struct acct *room_acct, struct proto_result *res,
                          struct ledger_error *err)
{
    int64_t above = PROTO_CAP_NONE;
    int rc = approval_threshold(l, &above, err);
    if (rc || above == PROTO_CAP_NONE || workflow.len == 0)
        return rc;
    struct ledger_estimate_view e;
    rc = est_lookup(l, workflow, model, &e, err);
    if (rc || e.samples == 0)
        return rc;
    char p90[32], limit[32];
    usd_format(e.p90_micros, p90, sizeof p90);
    if (e.p90_micros > above) {
        usd_format(above, limit, sizeof limit);
        ledger_refuse(res, PROTO_ERR_APPROVAL_REQUIRED,
                      "workflow %.*s: p90 estimate %s USD (%llu samples) is above the %s USD an"
                      " agent may start alone: an admin must create its grant",
                      (int)(workflow.len > 64 ? 64 : workflow.len), workflow.ptr, p90,
                      (unsigned long long)e.samples, limit);
    } else if (e.p90_micros > room) {
        usd_format(room, limit, sizeof limit);
        ledger_refuse(res, PROTO_ERR_APPROVAL_REQUIRED,
                      "workflow %.*s: p90 estimate %s USD (%llu samples) is above the %s USD"
                      " left to %s: an admin must create its grant",
                      (int)(workflow.len > 64 ? 64 : workflow.len), workflow.ptr, p90,
                      (unsigned long long)e.samples, limit, room_acct->name);
        ledger_set_name(res, room_acct);
    }
    res->amount_micros = res->status ? e.p90_micros : 0;
    return 0;
}

int approval_check_grant(struct ledger *l, const struct proto_cmd *c, int32_t parent,
                         struct proto_result *res, struct ledger_error *err)
{
    if (c->role == PROTO_ROLE_ADMIN || !l->has_approval)
        return 0;
    const struct proto_grant_create_args *g = &c->u.grant_create;
    struct proto_str model = {"", 0};
    ledger_map_find(&g->metadata, "model", &model);
    return approval_judge(l, g->workflow, model, tree_available(l, parent, l->now_ms),
                          &l->accts[parent], res, err);
}

static int approval_grant_is_approved(struct ledger *l, uint64_t grant_id, bool *is_approved,
                                      struct ledger_error *err)
{
    sqlite3_stmt *s = xstore_stmt(l, XS_GRANT_APPROVED_GET, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, (int64_t)grant_id);
    int rc = sqlite3_step(s);
    *is_approved = rc == SQLITE_ROW;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(l, err, "grant approval");
    return 0;
}

int approval_check_reserve(struct ledger *l, const struct proto_cmd *c, int32_t i,
                           struct proto_result *res, struct ledger_error *err)
{
    if (c->role == PROTO_ROLE_ADMIN || !l->has_approval)
        return 0;
    struct proto_str workflow = {"", 0}, model = {"", 0};
    if (!ledger_map_find(&c->u.reserve.metadata, "workflow", &workflow))
        return 0;
    ledger_map_find(&c->u.reserve.metadata, "model", &model);
    for (int32_t j = i; j >= 0; j = l->accts[j].parent) {
        if (!l->accts[j].is_grant)
            continue;
        bool is_approved = false;
        int rc = approval_grant_is_approved(l, l->accts[j].grant_id, &is_approved, err);
        if (rc || is_approved)
            return rc;
    }
    return approval_judge(l, workflow, model, PROTO_UNLIMITED, &l->accts[i], res, err);
}

int approval_grant_created(struct ledger *l, const struct proto_cmd *c, uint64_t id,
                           struct ledger_error *err)
{
    if (c->role != PROTO_ROLE_ADMIN)
        return 0;
    sqlite3_stmt *s = xstore_stmt(l, XS_GRANT_APPROVED_ADD, err);
    if (!s)
        return err->code;
    sqlite3_bind_int64(s, 1, (int64_t)id);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "grant approval");
    return 0;
}
