/*
 * budget.c — the budget API (API.md) for runtimes that call providers
 * themselves: reservations, commit, release, accounts, grants, transfers.
 *
 * Every call is authenticated like a proxied one and confined to the key's
 * subtree: a reservation or grant is read first and must belong to it, a
 * transfer's debit must be inside it.  Amounts are integer micros; anything
 * else is a 400 that changes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

enum gw_budget_op {
    GW_B_RESERVE,
    GW_B_COMMIT,
    GW_B_RELEASE,
    GW_B_ACCOUNT,
    GW_B_GRANT,
    GW_B_GRANT_CLOSE,
    GW_B_TRANSFER,
};

struct gw_budget {
    enum gw_budget_op op;
    json_t *body;
    uint64_t id;             /* reservation / grant id from the path */
    char path_arg[PROTO_NAME_MAX + 1];
    int64_t amount;
    int64_t ttl_ms;
    char name2[PROTO_NAME_MAX + 1]; /* payee / credit / parent */
    char workflow[PROTO_TEXT_MAX + 1];
    struct proto_map body_meta;
};

static void gw_budget_free(struct gw_call *c)
{
    struct gw_budget *b = c->ctx;
    if (b) {
        json_decref(b->body);
        free(b);
    }
    c->ctx = NULL;
}

/* An integer field: 0 ok, 1 absent, -1 not an integer (message set). */
static int gw_body_int(json_t *body, const char *k, int64_t *out, char *msg, size_t cap)
{
    json_t *v = body ? json_object_get(body, k) : NULL;
    if (!v)
        return 1;
    if (!json_is_integer(v)) {
        snprintf(msg, cap, "%s must be an integer", k);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int gw_body_str(json_t *body, const char *k, char *out, size_t cap, char *msg,
                       size_t msg_cap)
{
    json_t *v = body ? json_object_get(body, k) : NULL;
    if (!v)
        return 1;
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        snprintf(msg, msg_cap, "%s must be a string of at most %zu bytes", k, cap - 1);
        return -1;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

/* Body "metadata" (object of strings) into b->body_meta (views into body). */
static int gw_body_meta(struct gw_budget *b, char *msg, size_t cap)
{
    json_t *m = b->body ? json_object_get(b->body, "metadata") : NULL;
    if (!m)
        return 0;
    if (!json_is_object(m) || json_object_size(m) > PROTO_MAP_MAX) {
        snprintf(msg, cap, "metadata must be an object of at most %d strings", PROTO_MAP_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v) || strlen(k) == 0 || strlen(k) > PROTO_MAP_KEY_MAX ||
            json_string_length(v) > PROTO_MAP_VALUE_MAX) {
            snprintf(msg, cap, "metadata: \"%.64s\" must map to a string (keys 1..%d, values"
                     " up to %d bytes)", k, PROTO_MAP_KEY_MAX, PROTO_MAP_VALUE_MAX);
            return -1;
        }
        struct proto_kv *kv = &b->body_meta.kv[b->body_meta.count++];
        kv->key = proto_str_c(k);
        kv->value = (struct proto_str){json_string_value(v), (uint32_t)json_string_length(v)};
    }
    return 0;
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
    default:
        break;
    }
    /* Body "account"/"parent"/"debit" must be inside the key's subtree. */
    char acct[PROTO_NAME_MAX + 1] = "";
    const char *field = b->op == GW_B_GRANT ? "parent" : b->op == GW_B_TRANSFER ? "debit"
                                                                                : "account";
    int has = gw_body_str(b->body, field, acct, sizeof acct, msg, sizeof msg);
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

/* Parse "/v1/budget/<rest>" into an operation. */
static int gw_budget_route(struct gw_budget *b, h2o_req_t *req, bool is_post)
{
    char path[512];
    size_t n = req->path_normalized.len;
    if (n >= sizeof path)
        return -1;
    memcpy(path, req->path_normalized.base, n);
    path[n] = '\0';
    const char *rest = path + strlen("/v1/budget/");
    unsigned long long id = 0;
    char tail[32] = "";
    if (is_post && strcmp(rest, "reservations") == 0)
        b->op = GW_B_RESERVE;
    else if (is_post && strcmp(rest, "grants") == 0)
        b->op = GW_B_GRANT;
    else if (is_post && strcmp(rest, "transfers") == 0)
        b->op = GW_B_TRANSFER;
    else if (is_post && sscanf(rest, "reservations/%llu/%31s", &id, tail) == 2 &&
             (strcmp(tail, "commit") == 0 || strcmp(tail, "release") == 0))
        b->op = strcmp(tail, "commit") == 0 ? GW_B_COMMIT : GW_B_RELEASE;
    else if (is_post && sscanf(rest, "grants/%llu/%31s", &id, tail) == 2 &&
             strcmp(tail, "close") == 0)
        b->op = GW_B_GRANT_CLOSE;
    else if (!is_post && strncmp(rest, "accounts/", 9) == 0 && strlen(rest + 9) > 0 &&
             strlen(rest + 9) <= PROTO_NAME_MAX) {
        b->op = GW_B_ACCOUNT;
        snprintf(b->path_arg, sizeof b->path_arg, "%s", rest + 9);
    } else
        return -1;
    b->id = id;
    return 0;
}

int gw_budget_handle(struct gw_call *c, h2o_req_t *req)
{
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    struct gw_budget *b = calloc(1, sizeof *b);
    if (!b) {
        gw_reply_error(c, 500, "internal", "out of memory", NULL);
        return 0;
    }
    if (gw_budget_route(b, req, is_post) != 0) {
        free(b);
        gw_reply_error(c, 404, "not_found", "no such budget endpoint", NULL);
        return 0;
    }
    char msg[256] = "";
    if (is_post && req->entity.len > 0) {
        json_error_t jerr;
        b->body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!b->body || !json_is_object(b->body)) {
            json_decref(b->body);
            free(b);
            gw_reply_error(c, 400, "invalid_request", "the body must be a JSON object", NULL);
            return 0;
        }
    }
    int rc = 0;
    bool needs_amount = b->op == GW_B_RESERVE || b->op == GW_B_GRANT || b->op == GW_B_TRANSFER ||
                        b->op == GW_B_COMMIT;
    const char *amount_field = b->op == GW_B_COMMIT ? "actual_micros" : "amount_micros";
    if (needs_amount && (rc = gw_body_int(b->body, amount_field, &b->amount, msg, sizeof msg)) != 0)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%s%s",
                 rc > 0 ? amount_field : "", rc > 0 ? " is required" : "");
    if (rc == 0 && (b->op == GW_B_RESERVE || b->op == GW_B_GRANT)) {
        b->ttl_ms = b->op == GW_B_RESERVE ? 60000 : 3600000;
        if (gw_body_int(b->body, "ttl_ms", &b->ttl_ms, msg, sizeof msg) < 0)
            rc = -1;
    }
    if (rc == 0 && b->op == GW_B_RESERVE &&
        gw_body_str(b->body, "payee", b->name2, sizeof b->name2, msg, sizeof msg) < 0)
        rc = -1;
    if (rc == 0 && b->op == GW_B_TRANSFER) {
        char kind[32] = "chargeback";
        if (gw_body_str(b->body, "credit", b->name2, sizeof b->name2, msg, sizeof msg) != 0) {
            if (!msg[0])
                snprintf(msg, sizeof msg, "credit is required");
            rc = -1;
        } else if (gw_body_str(b->body, "kind", kind, sizeof kind, msg, sizeof msg) < 0 ||
                   strcmp(kind, "chargeback") != 0) {
            snprintf(msg, sizeof msg, "kind must be \"chargeback\"");
            rc = -1;
        }
    }
    if (rc == 0 && b->op == GW_B_GRANT &&
        gw_body_str(b->body, "workflow", b->workflow, sizeof b->workflow, msg, sizeof msg) < 0)
        rc = -1;
    if (rc == 0 && gw_body_meta(b, msg, sizeof msg) != 0)
        rc = -1;
    if (rc != 0) {
        json_decref(b->body);
        free(b);
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return 0;
    }
    c->ctx = b;
    c->ctx_free = gw_budget_free;
    gw_auth_start(c, "vendor/unknown", gw_budget_authed);
    return 0;
}
