/*
 * auth.c — who is calling and what they may charge.
 *
 * A bearer key is looked up by its SHA-256 (the ledger never sees the key).
 * The account charged is the key's own, or X-Budget-Account / the account of
 * X-Budget-Grant when it lies inside the key's subtree.  X-Budget-Metadata
 * is a JSON object of strings, bounded like the ledger's maps, and must hold
 * every key the policy requires.  Idempotency-Key is scoped to the API key,
 * so two tenants cannot collide on the same key text.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "proto/fmt.h"
#include "gateway/parse.h"

struct gw_auth {
    gw_auth_next next;
    const char *default_payee;
    uint64_t grant_id;
};

bool gw_auth_in_subtree(const char *root, const char *account)
{
    size_t n = strlen(root);
    return strncmp(root, account, n) == 0 && (account[n] == '\0' || account[n] == '/');
}

void gw_reply_unavailable(struct gw_call *c, const char *message)
{
    gw_reply_error(c, 503, "ledger_unavailable",
                   message ? message : "no ledger quorum answered: the call was not forwarded",
                   NULL);
}

/* The ledger names why an account is frozen at the end of its refusal,
 * "... is frozen (reason: velocity)": velocity, bedtime (circuit breakers) or
 * an admin's text.  Without it the reason is "admin". */
static void gw_auth_frozen_reason(const char *message, json_t *extra)
{
    static const char tag[] = "(reason: ";
    const char *p = strstr(message, tag);
    const char *end = p ? strrchr(p, ')') : NULL;
    if (!p || !end) {
        json_object_set_new(extra, "reason", json_string("admin"));
        return;
    }
    p += sizeof tag - 1;
    json_object_set_new(extra, "reason", json_stringn(p, (size_t)(end - p)));
}

void gw_reply_refusal(struct gw_call *c, const struct proto_result *r, int64_t requested)
{
    json_t *extra = json_object();
    int status = 400;
    const char *type = "invalid_request";
    switch (r->status) {
    case PROTO_ERR_BUDGET_EXCEEDED:
        status = 402;
        type = "budget_exceeded";
        json_object_set_new(extra, "account", json_string(c->account));
        json_object_set_new(extra, "limit_account", json_string(r->name));
        json_object_set_new(extra, "requested_micros", json_integer(requested));
        json_object_set_new(extra, "remaining_micros", json_integer(r->remaining_micros));
        break;
    case PROTO_ERR_FROZEN:
        status = 402;
        type = "account_frozen";
        json_object_set_new(extra, "account", json_string(r->name));
        gw_auth_frozen_reason(r->message, extra);
        break;
    case PROTO_ERR_CLOSED:
        status = 402;
        type = "account_frozen";
        json_object_set_new(extra, "account", json_string(r->name));
        json_object_set_new(extra, "reason", json_string("closed"));
        break;
    case PROTO_ERR_GRANT_EXPIRED:
        status = 402;
        type = "grant_expired";
        json_object_set_new(extra, "account", json_string(r->name));
        break;
    case PROTO_ERR_FORBIDDEN:
        status = 403;
        type = "forbidden";
        break;
    case PROTO_ERR_NOT_FOUND:
        status = 404;
        type = "not_found";
        break;
    case PROTO_ERR_CONFLICT:
        status = 409;
        type = "conflict";
        break;
    case PROTO_ERR_RATE_LIMITED: {
        /* The ledger says when the window has room; whole seconds, rounded up. */
        char v[32];
        int64_t ms = r->retry_after_ms > 0 ? r->retry_after_ms : 1;
        snprintf(v, sizeof v, "%lld", (long long)((ms + 999) / 1000));
        gw_add_header(c, "retry-after", v);
        status = 429;
        type = "rate_limited";
        json_object_set_new(extra, "scope", json_string(r->name));
        json_object_set_new(extra, "retry_after_ms", json_integer(ms));
        break;
    }
    case PROTO_ERR_APPROVAL_REQUIRED:
        status = 402;
        type = "approval_required";
        json_object_set_new(extra, "p90_micros", json_integer(r->amount_micros));
        break;
    default:
        break;
    }
    gw_reply_error(c, status, type, r->message, extra);
}

static bool gw_auth_has_meta(const struct gw_call *c, const char *key)
{
    for (uint32_t i = 0; i < c->metadata.count; i++)
        if (proto_str_eq(c->metadata.kv[i].key, key))
            return true;
    return false;
}

static void gw_auth_finish(struct gw_call *c)
{
    struct gw_auth *a = c->auth;
    gw_auth_next next = a->next;
    free(a);
    c->auth = NULL;
    next(c);
}

static void gw_auth_policy_cb(struct gw_call *c, int status, const char *const *required,
                              uint32_t count)
{
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    char missing[512] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < count; i++)
        if (!gw_auth_has_meta(c, required[i]))
            n += (size_t)snprintf(missing + n, n < sizeof missing ? sizeof missing - n : 0,
                                  "%s%s", n ? ", " : "", required[i]);
    if (n) {
        char msg[640];
        snprintf(msg, sizeof msg, "X-Budget-Metadata is missing required keys: %s", missing);
        json_t *extra = json_object();
        json_t *list = json_array();
        for (uint32_t i = 0; i < count; i++)
            if (!gw_auth_has_meta(c, required[i]))
                json_array_append_new(list, json_string(required[i]));
        json_object_set_new(extra, "missing_metadata", list);
        gw_reply_error(c, 400, "invalid_request", msg, extra);
        return;
    }
    gw_auth_finish(c);
}

static void gw_auth_grant_cb(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    struct mp_reader r;
    const char *s;
    uint32_t l;
    bool is_open = false;
    if (status != 0 || gw_map_find(map, len, "account", &r) != 0 ||
        mp_str_read(&r, &s, &l) != MP_OK || l > PROTO_NAME_MAX) {
        gw_reply_error(c, 404, "not_found", "X-Budget-Grant names no grant", NULL);
        return;
    }
    memcpy(c->account, s, l);
    c->account[l] = '\0';
    if (!gw_auth_in_subtree(c->key_account, c->account)) {
        gw_reply_error(c, 403, "forbidden", "the grant is outside this key's accounts", NULL);
        return;
    }
    if (gw_map_find(map, len, "is_open", &r) == 0 && mp_bool_read(&r, &is_open) == MP_OK &&
        !is_open) {
        json_t *extra = json_pack("{s:s}", "account", c->account);
        gw_reply_error(c, 402, "grant_expired", "the grant is closed", extra);
        return;
    }
    gw_ledger_policy(c, gw_auth_policy_cb);
}

static void gw_auth_key_cb(struct gw_call *c, int status, const struct gw_key *k)
{
    struct gw_auth *a = c->auth;
    if (status == 2) {
        gw_reply_unavailable(c, NULL);
        return;
    }
    if (status != 0 || k->is_revoked) {
        gw_reply_error(c, 401, "unauthorized", status != 0 ? "unknown API key" : "revoked API key",
                       NULL);
        return;
    }
    fmt_copy(c->key_id, sizeof c->key_id, k->id);
    fmt_copy(c->key_account, sizeof c->key_account, k->account);
    c->key_role = k->role;
    if (!c->req) {
        gw_auth_finish(c);
        return;
    }
    const char *account = gw_header(c->req, "x-budget-account");
    const char *payee = gw_header(c->req, "x-budget-payee");
    const char *meta = gw_header(c->req, "x-budget-metadata");
    const char *idem = gw_header(c->req, "idempotency-key");
    char msg[256];
    if (account && (strlen(account) > PROTO_NAME_MAX || !gw_auth_in_subtree(k->account, account))) {
        gw_reply_error(c, 403, "forbidden", "X-Budget-Account is outside this key's accounts",
                       NULL);
        return;
    }
    fmt_copy(c->account, sizeof c->account, account ? account : k->account);
    if (payee && strlen(payee) > PROTO_NAME_MAX) {
        gw_reply_error(c, 400, "invalid_request", "X-Budget-Payee is too long", NULL);
        return;
    }
    fmt_copy(c->payee, sizeof c->payee, payee ? payee : a->default_payee);
    if (meta &&
        gw_parse_metadata(meta, &c->metadata, &c->metadata_buf, msg, sizeof msg) != 0) {
        gw_reply_error(c, 400, "invalid_request", msg, NULL);
        return;
    }
    if (idem) {
        int n = snprintf(c->idem_key, sizeof c->idem_key, "k:%s:%s", k->id, idem);
        if (n < 0 || (size_t)n >= sizeof c->idem_key) {
            gw_reply_error(c, 400, "invalid_request", "Idempotency-Key is too long", NULL);
            return;
        }
    }
    const char *grant = gw_header(c->req, "x-budget-grant");
    if (grant) {
        char *end = NULL;
        unsigned long long id = strtoull(grant, &end, 10);
        if (!*grant || *end || id == 0) {
            gw_reply_error(c, 400, "invalid_request", "X-Budget-Grant must be a grant id", NULL);
            return;
        }
        gw_ledger_read(c, "grant", NULL, id, true, gw_auth_grant_cb);
        return;
    }
    gw_ledger_policy(c, gw_auth_policy_cb);
}

/* SHA-256 of an API key.  The digest is fetched once (EVP_sha256() makes
 * EVP_Digest look the algorithm up in the provider tables on every call) and
 * one context is reused (EVP_Digest allocates, cleanses and frees one per
 * call).  The loop is single-threaded, so lazily filled statics are enough. */
static int auth_key_hash(const char *key, uint8_t hash[32])
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    if (!md)
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ctx)
        ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!md || !ctx || EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, key, strlen(key)) != 1 || EVP_DigestFinal_ex(ctx, hash, &len) != 1 ||
        len != 32)
        return -1;
    return 0;
}

void gw_auth_start(struct gw_call *c, const char *default_payee, gw_auth_next next)
{
    const char *h = c->req ? gw_header(c->req, "authorization") : NULL;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        gw_reply_error(c, 401, "unauthorized", "an Authorization: Bearer <key> header is required",
                       NULL);
        return;
    }
    const char *key = h + 7;
    if (strlen(key) > 512) {
        gw_reply_error(c, 401, "unauthorized", "unknown API key", NULL);
        return;
    }
    uint8_t hash[32];
    if (auth_key_hash(key, hash) != 0) {
        gw_reply_error(c, 500, "internal", "cannot hash the key", NULL);
        return;
    }
    struct gw_auth *a = calloc(1, sizeof *a);
    if (!a) {
        gw_reply_error(c, 500, "internal", "out of memory", NULL);
        return;
    }
    a->next = next;
    a->default_payee = default_payee;
    c->auth = a;
    gw_ledger_key(c, hash, gw_auth_key_cb);
}
