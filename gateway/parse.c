/*
 * parse.c — the gateway's pure parsers (see parse.h): no h2o, no libuv, no
 * ledger, so that tests and fuzz targets reach every byte a caller controls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/parse.h"
#include "gateway/json_scan.h"
#include "proto/money.h"

/* ---- X-Budget-Metadata ---- */

/* The last text accepted and its result: agents send the same metadata on
 * every call, and parsing it with jansson was a few percent of a call's CPU.
 * Only texts up to GW_METADATA_CACHE_TEXT_MAX bytes (their keys and values
 * are no longer than the text). */
#define GW_METADATA_CACHE_TEXT_MAX 2048

static struct {
    bool is_valid;
    size_t text_len;
    char text[GW_METADATA_CACHE_TEXT_MAX];
    size_t buf_len;
    char buf[GW_METADATA_CACHE_TEXT_MAX];
    uint32_t count;
    struct {
        uint32_t key_off, key_len, value_off, value_len;
    } kv[PROTO_MAP_MAX];
} gw_metadata_last;

static int gw_metadata_from_last(struct proto_map *out, char **buf, char *msg, size_t cap)
{
    *buf = malloc(gw_metadata_last.buf_len + 1);
    if (!*buf) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    memcpy(*buf, gw_metadata_last.buf, gw_metadata_last.buf_len);
    out->count = gw_metadata_last.count;
    for (uint32_t i = 0; i < out->count; i++) {
        out->kv[i].key = (struct proto_str){*buf + gw_metadata_last.kv[i].key_off,
                                            gw_metadata_last.kv[i].key_len};
        out->kv[i].value = (struct proto_str){*buf + gw_metadata_last.kv[i].value_off,
                                              gw_metadata_last.kv[i].value_len};
    }
    return 0;
}

static void gw_metadata_keep(const char *text, size_t text_len, const char *buf, size_t buf_len,
                             const struct proto_map *m)
{
    gw_metadata_last.is_valid = false;
    if (text_len > GW_METADATA_CACHE_TEXT_MAX || buf_len > GW_METADATA_CACHE_TEXT_MAX)
        return;
    memcpy(gw_metadata_last.text, text, text_len);
    gw_metadata_last.text_len = text_len;
    memcpy(gw_metadata_last.buf, buf, buf_len);
    gw_metadata_last.buf_len = buf_len;
    gw_metadata_last.count = m->count;
    for (uint32_t i = 0; i < m->count; i++) {
        gw_metadata_last.kv[i].key_off = (uint32_t)(m->kv[i].key.ptr - buf);
        gw_metadata_last.kv[i].key_len = m->kv[i].key.len;
        gw_metadata_last.kv[i].value_off = (uint32_t)(m->kv[i].value.ptr - buf);
        gw_metadata_last.kv[i].value_len = m->kv[i].value.len;
    }
    gw_metadata_last.is_valid = true;
}

int gw_parse_metadata(const char *text, struct proto_map *out, char **buf, char *msg, size_t cap)
{
    size_t text_len = strlen(text);
    if (gw_metadata_last.is_valid && text_len == gw_metadata_last.text_len &&
        memcmp(text, gw_metadata_last.text, text_len) == 0)
        return gw_metadata_from_last(out, buf, msg, cap);
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        snprintf(msg, cap, "X-Budget-Metadata must be a JSON object of strings");
        return -1;
    }
    if (json_object_size(doc) > PROTO_MAP_MAX) {
        json_decref(doc);
        snprintf(msg, cap, "X-Budget-Metadata has more than %d keys", PROTO_MAP_MAX);
        return -1;
    }
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (!json_is_string(v)) {
            snprintf(msg, cap, "X-Budget-Metadata: the value of \"%.64s\" is not a string", k);
            json_decref(doc);
            return -1;
        }
        size_t kl = strlen(k), vl = json_string_length(v);
        if (kl == 0 || kl > PROTO_MAP_KEY_MAX || vl > PROTO_MAP_VALUE_MAX) {
            snprintf(msg, cap, "X-Budget-Metadata: key \"%.64s\" or its value is too long"
                     " (keys 1..%d bytes, values up to %d)", k, PROTO_MAP_KEY_MAX,
                     PROTO_MAP_VALUE_MAX);
            json_decref(doc);
            return -1;
        }
        total += kl + vl + 2;
    }
    *buf = malloc(total + 1);
    if (!*buf) {
        json_decref(doc);
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    char *p = *buf;
    out->count = 0;
    json_object_foreach(doc, k, v)
    {
        size_t kl = strlen(k), vl = json_string_length(v);
        memcpy(p, k, kl);
        out->kv[out->count].key = (struct proto_str){p, (uint32_t)kl};
        p += kl;
        memcpy(p, json_string_value(v), vl);
        out->kv[out->count].value = (struct proto_str){p, (uint32_t)vl};
        p += vl;
        out->count++;
    }
    json_decref(doc);
    gw_metadata_keep(text, text_len, *buf, (size_t)(p - *buf), out);
    return 0;
}

/* ---- X-Budget-Hint ---- */

int gw_parse_hint(const char *text, int64_t *micros)
{
    int64_t m = 0;
    if (money_parse_usd(text, &m) != 0 || m < 0 || m > PROTO_AMOUNT_MAX)
        return -1;
    *micros = m;
    return 0;
}

/* ---- proxy bodies ---- */

int gw_parse_proxy_body(const char *body, size_t len, struct gw_proxy_request *out, char *msg,
                        size_t cap)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        snprintf(msg, cap, "the body must be a JSON object");
        return -1;
    }
    json_t *model = json_object_get(doc, "model");
    if (!json_is_string(model) || json_string_length(model) == 0 ||
        json_string_length(model) > PROTO_TEXT_MAX) {
        json_decref(doc);
        snprintf(msg, cap, "\"model\" must be a non-empty string");
        return -1;
    }
    out->body = doc;
    out->model = json_string_value(model);
    out->is_stream = json_is_true(json_object_get(doc, "stream"));
    json_t *mt = json_object_get(doc, "max_completion_tokens");
    if (!mt)
        mt = json_object_get(doc, "max_tokens");
    if (mt) {
        out->has_max_tokens = true;
        if (!json_is_integer(mt) || json_integer_value(mt) < 0 ||
            json_integer_value(mt) > GW_PARSE_MAX_TOKENS)
            out->is_max_tokens_bad = true;
        else
            out->max_tokens = json_integer_value(mt);
    }
    return 0;
}

/* The fields read where they lie in the text once the scan has validated
 * it as jansson would: 0 done, -1 refused (msg set), 1 the text needs a full
 * parser (escapes in a member name or the model). */
static int gw_parse_proxy_scan(const char *body, size_t len, struct gw_proxy_request *out,
                               char *msg, size_t cap)
{
    static const char *const keys[] = {"model", "stream", "max_completion_tokens", "max_tokens"};
    struct gw_json_span v[4];
    int rc = gw_json_members(body, len, keys, 4, v);
    if (rc == GW_JSON_ESCAPED)
        return 1;
    if (rc != 0) {
        snprintf(msg, cap, "the body must be a JSON object");
        return -1;
    }
    if (v[0].at && v[0].len >= 2 && v[0].at[0] == '"' &&
        memchr(v[0].at, '\\', v[0].len) != NULL)
        return 1;
    if (!v[0].at || v[0].at[0] != '"' || v[0].len < 3 || v[0].len - 2 > PROTO_TEXT_MAX) {
        snprintf(msg, cap, "\"model\" must be a non-empty string");
        return -1;
    }
    memcpy(out->model_buf, v[0].at + 1, v[0].len - 2);
    out->model_buf[v[0].len - 2] = '\0';
    out->model = out->model_buf;
    out->is_stream = v[1].at && v[1].len == 4 && memcmp(v[1].at, "true", 4) == 0;
    const struct gw_json_span *mt = v[2].at ? &v[2] : &v[3];
    if (mt->at) {
        long long n = 0;
        out->has_max_tokens = true;
        if (gw_json_integer(mt->at, mt->len, &n) != 0 || n < 0 || n > GW_PARSE_MAX_TOKENS)
            out->is_max_tokens_bad = true;
        else
            out->max_tokens = n;
    }
    return 0;
}

int gw_parse_proxy_fields(const char *body, size_t len, struct gw_proxy_request *out, char *msg,
                          size_t cap)
{
    memset(out, 0, sizeof *out);
    int rc = gw_parse_proxy_scan(body, len, out, msg, cap);
    if (rc <= 0)
        return rc;
    return gw_parse_proxy_body(body, len, out, msg, cap);
}

/* ---- the budget API ---- */

int gw_parse_budget_path(const char *path_in, size_t len, bool is_post, struct gw_budget *b)
{
    static const char prefix[] = "/v1/budget/";
    char path[GW_PARSE_BUDGET_PATH_MAX + 1];
    size_t n = len;
    if (n >= sizeof path || n < sizeof prefix - 1 || memcmp(path_in, prefix, sizeof prefix - 1))
        return -1;
    memcpy(path, path_in, n);
    path[n] = '\0';
    const char *rest = path + strlen(prefix);
    unsigned long long id = 0;
    char tail[32] = "";
    if (is_post && strcmp(rest, "reservations") == 0)
        b->op = GW_B_RESERVE;
    else if (is_post && strcmp(rest, "grants") == 0)
        b->op = GW_B_GRANT;
    else if (is_post && strcmp(rest, "transfers") == 0)
        b->op = GW_B_TRANSFER;
    else if (is_post && strcmp(rest, "estimate") == 0)
        b->op = GW_B_ESTIMATE;
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

int gw_parse_body_str(json_t *body, const char *k, char *out, size_t cap, char *msg,
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

/* POST /v1/budget/estimate: {workflow, model?, prompt_bytes?, max_tokens?}.
 * The two sizes are checked and accepted for callers that send them; the
 * estimate itself is per task (learned from closed grants). */
static int gw_body_estimate(struct gw_budget *b, char *msg, size_t cap)
{
    int rc = gw_parse_body_str(b->body, "workflow", b->workflow, sizeof b->workflow, msg, cap);
    if (rc != 0 || b->workflow[0] == '\0') {
        if (rc >= 0)
            snprintf(msg, cap, "workflow is required");
        return -1;
    }
    if (gw_parse_body_str(b->body, "model", b->model, sizeof b->model, msg, cap) < 0)
        return -1;
    static const char *const sizes[] = {"prompt_bytes", "max_tokens"};
    for (size_t i = 0; i < 2; i++) {
        int64_t v = 0;
        rc = gw_body_int(b->body, sizes[i], &v, msg, cap);
        if (rc < 0 || (rc == 0 && v < 0)) {
            snprintf(msg, cap, "%s must be a non-negative integer", sizes[i]);
            return -1;
        }
    }
    return 0;
}

int gw_parse_budget_body(struct gw_budget *b, bool is_post, const char *body, size_t len,
                         char *msg, size_t cap)
{
    if (cap > 0)
        msg[0] = '\0';
    if (is_post && len > 0) {
        json_error_t jerr;
        b->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!b->body || !json_is_object(b->body)) {
            json_decref(b->body);
            b->body = NULL;
            snprintf(msg, cap, "the body must be a JSON object");
            return -1;
        }
    }
    int rc = 0;
    bool needs_amount = b->op == GW_B_RESERVE || b->op == GW_B_GRANT || b->op == GW_B_TRANSFER ||
                        b->op == GW_B_COMMIT;
    const char *amount_field = b->op == GW_B_COMMIT ? "actual_micros" : "amount_micros";
    if (needs_amount && (rc = gw_body_int(b->body, amount_field, &b->amount, msg, cap)) != 0)
        snprintf(msg + strlen(msg), cap - strlen(msg), "%s%s", rc > 0 ? amount_field : "",
                 rc > 0 ? " is required" : "");
    if (rc == 0 && (b->op == GW_B_RESERVE || b->op == GW_B_GRANT)) {
        b->ttl_ms = b->op == GW_B_RESERVE ? 60000 : 3600000;
        if (gw_body_int(b->body, "ttl_ms", &b->ttl_ms, msg, cap) < 0)
            rc = -1;
    }
    if (rc == 0 && b->op == GW_B_RESERVE &&
        gw_parse_body_str(b->body, "payee", b->name2, sizeof b->name2, msg, cap) < 0)
        rc = -1;
    if (rc == 0 && b->op == GW_B_TRANSFER) {
        char kind[32] = "chargeback";
        if (gw_parse_body_str(b->body, "credit", b->name2, sizeof b->name2, msg, cap) != 0) {
            if (!msg[0])
                snprintf(msg, cap, "credit is required");
            rc = -1;
        } else if (gw_parse_body_str(b->body, "kind", kind, sizeof kind, msg, cap) < 0 ||
                   strcmp(kind, "chargeback") != 0) {
            snprintf(msg, cap, "kind must be \"chargeback\"");
            rc = -1;
        }
    }
    if (rc == 0 && b->op == GW_B_GRANT &&
        gw_parse_body_str(b->body, "workflow", b->workflow, sizeof b->workflow, msg, cap) < 0)
        rc = -1;
    if (rc == 0 && b->op == GW_B_ESTIMATE)
        rc = gw_body_estimate(b, msg, cap);
    if (rc == 0 && gw_body_meta(b, msg, cap) != 0)
        rc = -1;
    if (rc != 0) {
        json_decref(b->body);
        b->body = NULL;
        return -1;
    }
    return 0;
}
