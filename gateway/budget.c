/*
 * budget.c — the budget API (API.md) for runtimes that call providers
 * themselves: reservations, commit, release, accounts, grants, transfers,
 * and the estimate of a workflow's task cost.
 *
 * Every call is authenticated like a proxied one and confined to the key's
 * subtree: a reservation or grant is read first and must belong to it, a
 * transfer's debit must be inside it.  Amounts are integer micros; anything
 * else is a 400 that changes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/parse.h"

static void gw_budget_free(struct gw_call *c)
{
    struct gw_budget *b = c->ctx;
    if (b) {
        json_decref(b->body);
        free(b);
    }
    c->ctx = NULL;
}

static const struct proto_map *gw_budget_meta(struct gw_call *c, struct gw_budget *b)
{
    return b->body_meta.count ? &b->body_meta : &c->metadata;
}

static void gw_budget_key(struct gw_call *c, struct proto_cmd *cmd, const char *suffix)
{
    /* A scoped idempotency key, if the caller sent one; else pc_apply
     * makes one (retries stay safe). */
    if (c->idem_key[0]) {
        static char key[PROTO_KEY_MAX + 1];
        snprintf(key, sizeof key, "%.100s%s", c->idem_key, suffix);
        cmd->key = proto_str_c(key);
    }
}

static void gw_budget_applied(struct gw_call *c, int status, const struct proto_result *r,
                              const char *message)
{
    struct gw_budget *b = c->ctx;
    c->settle_ms = 0;
    if (status != PC_OK) {
        gw_reply_unavailable(c, message);
        return;
    }
    if (r->status != PROTO_OK) {
        gw_reply_refusal(c, r, b->amount);
        return;
    }
    char usd[32];
    json_t *doc = NULL;
    int http = 200;
    switch (b->op) {
    case GW_B_RESERVE:
        http = 201;
        doc = json_pack("{s:I,s:I,s:I,s:I}", "id", (json_int_t)r->id, "amount_micros",
                        (json_int_t)r->amount_micros, "expires_at_ms",
                        (json_int_t)r->expires_at_ms, "remaining_micros",
                        (json_int_t)(r->remaining_micros == PROTO_UNLIMITED ? -1
                                                                             : r->remaining_micros));
        snprintf(usd, sizeof usd, "%llu", (unsigned long long)r->id);
        gw_add_header(c, "x-budget-reservation", usd);
        break;
    case GW_B_COMMIT:
        doc = json_pack("{s:I,s:I,s:I,s:I}", "transfer_id", (json_int_t)r->transfer_id,
                        "cost_micros", (json_int_t)r->amount_micros, "overrun_micros",
                        (json_int_t)r->overrun_micros, "remaining_micros",
                        (json_int_t)(r->remaining_micros == PROTO_UNLIMITED ? -1
                                                                             : r->remaining_micros));
        gw_usd(r->amount_micros, usd, sizeof usd);
        gw_add_header(c, "x-budget-cost", usd);
        break;
    case GW_B_RELEASE:
        doc = json_pack("{s:I,s:I}", "id", (json_int_t)r->id, "returned_micros",
                        (json_int_t)r->returned_micros);
        break;
    case GW_B_GRANT:
        http = 201;
        doc = json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)r->id, "account", r->name,
                        "amount_micros", (json_int_t)r->amount_micros, "expires_at_ms",
                        (json_int_t)r->expires_at_ms);
        break;
    case GW_B_GRANT_CLOSE:
        doc = json_pack("{s:I,s:I}", "spent_micros", (json_int_t)r->amount_micros,
                        "returned_micros", (json_int_t)r->returned_micros);
        break;
    case GW_B_TRANSFER:
        http = 201;
        doc = json_pack("{s:I}", "id", (json_int_t)r->id);
        break;
    default:
        break;
    }
    if (r->remaining_micros != PROTO_UNLIMITED &&
        (b->op == GW_B_RESERVE || b->op == GW_B_COMMIT)) {
        gw_usd(r->remaining_micros, usd, sizeof usd);
        gw_add_header(c, "x-budget-remaining", usd);
    }
    gw_reply_json(c, http, doc ? doc : json_object());
}

/* Reservation / grant read: it must belong to the key's subtree. */
static void gw_budget_owned(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    struct gw_budget *b = c->ctx;
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    struct mp_reader r;
    const char *s;
    uint32_t l;
    char account[PROTO_NAME_MAX + 1];
    if (status != 0 || gw_map_find(map, len, "account", &r) != 0 ||
        mp_str_read(&r, &s, &l) != MP_OK || l > PROTO_NAME_MAX) {
        gw_reply_error(c, 404, "not_found", "no such reservation or grant", NULL);
        return;
    }
    memcpy(account, s, l);
    account[l] = '\0';
    if (!gw_auth_in_subtree(c->key_account, account)) {
        gw_reply_error(c, 403, "forbidden", "it belongs to an account outside this key's", NULL);
        return;
    }
    snprintf(c->account, sizeof c->account, "%s", account);
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    switch (b->op) {
    case GW_B_COMMIT:
        cmd.type = PROTO_CMD_COMMIT;
        cmd.u.commit.reservation_id = b->id;
        cmd.u.commit.actual_micros = b->amount;
        cmd.u.commit.metadata = *gw_budget_meta(c, b);
        gw_budget_key(c, &cmd, ":commit");
        break;
    case GW_B_RELEASE:
        cmd.type = PROTO_CMD_RELEASE;
        cmd.u.release.reservation_id = b->id;
        gw_budget_key(c, &cmd, ":release");
        break;
    default:
        cmd.type = PROTO_CMD_GRANT_CLOSE;
        cmd.u.grant_close.grant_id = b->id;
        gw_budget_key(c, &cmd, ":close");
        break;
    }
    gw_ledger_apply(c, &cmd, gw_budget_applied);
}

static void gw_budget_account_read(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    if (status != 0) {
        gw_reply_error(c, 404, "not_found", "no such account", NULL);
        return;
    }
    json_t *doc = gw_map_to_json(map, len);
    if (!doc) {
        gw_reply_error(c, 500, "internal", "unreadable answer from the ledger", NULL);
        return;
    }
    /* API.md: unlimited amounts are reported as null. */
    const char *unl[] = {"cap_micros", "available_micros"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(doc, unl[i]);
        if (v && json_is_integer(v) && json_integer_value(v) < 0)
            json_object_set_new(doc, unl[i], json_null());
    }
    json_object_del(doc, "applied_index");
    gw_reply_json(c, 200, doc);
}

/* POST /v1/budget/estimate: the p50/p90 of a task of a workflow. */
static void gw_budget_estimate_read(struct gw_call *c, int status, const uint8_t *map,
                                    size_t len)
{
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    json_t *doc = status == 0 ? gw_map_to_json(map, len) : NULL;
    if (!doc) {
        gw_reply_error(c, 400, "invalid_request", "the ledger refused this estimate", NULL);
        return;
    }
    json_object_del(doc, "applied_index");
    json_object_del(doc, "now_ms");
    json_object_del(doc, "seen");
    gw_reply_json(c, 200, doc);
}

static void gw_budget_authed(struct gw_call *c)
{
    struct gw_budget *b = c->ctx;
    char msg[256];
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    switch (b->op) {
    case GW_B_ACCOUNT:
        if (!gw_auth_in_subtree(c->key_account, b->path_arg)) {
            gw_reply_error(c, 403, "forbidden", "the account is outside this key's", NULL);
            return;
        }
        gw_ledger_read(c, "account", b->path_arg, 0, false, gw_budget_account_read);
        return;
    case GW_B_COMMIT:
    case GW_B_RELEASE:
        gw_ledger_read(c, "reservation", NULL, b->id, true, gw_budget_owned);
        return;
    case GW_B_GRANT_CLOSE:
        gw_ledger_read(c, "grant", NULL, b->id, true, gw_budget_owned);
        return;
    case GW_B_ESTIMATE: {
        const char *args[2] = {b->workflow, b->model};
        gw_ledger_read_strs(c, "estimate", args, 2, gw_budget_estimate_read);
        return;
    }
    default:
        break;
    }
    /* Body "account"/"parent"/"debit" must be inside the key's subtree. */
    char acct[PROTO_NAME_MAX + 1] = "";
    const char *field = b->op == GW_B_GRANT ? "parent" : b->op == GW_B_TRANSFER ? "debit"
                                                                                : "account";
    int has = gw_parse_body_str(b->body, field, acct, sizeof acct, msg, sizeof msg);
    if (has < 0) {
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return;
    }
    if (has == 0) {
        if (!gw_auth_in_subtree(c->key_account, acct)) {
            gw_reply_error(c, 403, "forbidden", "the account is outside this key's", NULL);
            return;
        }
        snprintf(c->account, sizeof c->account, "%s", acct);
    } else if (b->op == GW_B_TRANSFER) {
        gw_reply_error(c, 400, "invalid_request", "debit is required", NULL);
        return;
    }
    switch (b->op) {
    case GW_B_RESERVE:
        cmd.type = PROTO_CMD_RESERVE;
        cmd.u.reserve.account = proto_str_c(c->account);
        cmd.u.reserve.payee = proto_str_c(b->name2[0] ? b->name2 : c->payee);
        cmd.u.reserve.amount_micros = b->amount;
        cmd.u.reserve.ttl_ms = b->ttl_ms;
        cmd.u.reserve.metadata = *gw_budget_meta(c, b);
        gw_budget_key(c, &cmd, ":reserve");
        break;
    case GW_B_GRANT:
        cmd.type = PROTO_CMD_GRANT_CREATE;
        cmd.u.grant_create.parent = proto_str_c(c->account);
        cmd.u.grant_create.workflow = proto_str_c(b->workflow);
        cmd.u.grant_create.amount_micros = b->amount;
        cmd.u.grant_create.ttl_ms = b->ttl_ms;
        cmd.u.grant_create.metadata = *gw_budget_meta(c, b);
        gw_budget_key(c, &cmd, ":grant");
        break;
    default:
        cmd.type = PROTO_CMD_TRANSFER;
        cmd.u.transfer.debit = proto_str_c(c->account);
        cmd.u.transfer.credit = proto_str_c(b->name2);
        cmd.u.transfer.amount_micros = b->amount;
        cmd.u.transfer.kind = PROTO_KIND_CHARGEBACK;
        cmd.u.transfer.metadata = *gw_budget_meta(c, b);
        gw_budget_key(c, &cmd, ":transfer");
        break;
    }
    gw_ledger_apply(c, &cmd, gw_budget_applied);
}

int gw_budget_handle(struct gw_call *c, h2o_req_t *req)
{
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    struct gw_budget *b = calloc(1, sizeof *b);
    if (!b) {
        gw_reply_error(c, 500, "internal", "out of memory", NULL);
        return 0;
    }
    const h2o_iovec_t *path = &req->path_normalized;
    if (gw_parse_budget_path(path->base, path->len, is_post, b) != 0) {
        free(b);
        gw_reply_error(c, 404, "not_found", "no such budget endpoint", NULL);
        return 0;
    }
    char msg[256] = "";
    if (gw_parse_budget_body(b, is_post, req->entity.base, req->entity.len, msg, sizeof msg) != 0) {
        free(b);
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return 0;
    }
    c->ctx = b;
    c->ctx_free = gw_budget_free;
    gw_auth_start(c, "vendor/unknown", gw_budget_authed);
    return 0;
}
