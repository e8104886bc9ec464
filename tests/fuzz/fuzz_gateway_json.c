/*
 * fuzz_gateway_json.c — libFuzzer target for what a gateway caller sends
 * before any ledger is asked: X-Budget-Metadata, X-Budget-Hint, proxy
 * bodies, and the budget API's paths and bodies (gateway/parse.h).
 *
 * The input's first byte picks the budget operation (low 3 bits, mod 7) and
 * the method (bit 3: POST); the rest is fed to every parser: as a header
 * (up to its first NUL, as h2o hands headers over), as a body, as a path
 * after "/v1/budget/" and as a whole path.  The oracles are parse.h's
 * promises: a success respects every bound (map sizes, key and value
 * lengths, views inside their buffers, amounts in range, strings terminated
 * inside their arrays), a failure leaves nothing allocated and says why,
 * and a hint survives money_format and back.  Leaks are reported by
 * LeakSanitizer.  Any violation aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/parse.h"
#include "proto/money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "oracle violated: %s\n", what);
    abort();
}

static void str_check(const char *s, size_t cap, const char *what)
{
    if (memchr(s, '\0', cap) == NULL)
        fuzz_fail(what);
}

static void map_check(const struct proto_map *m, const char *lo, const char *hi)
{
    if (m->count > PROTO_MAP_MAX)
        fuzz_fail("a map holds more than PROTO_MAP_MAX entries");
    for (uint32_t i = 0; i < m->count; i++) {
        const struct proto_kv *kv = &m->kv[i];
        if (kv->key.len == 0 || kv->key.len > PROTO_MAP_KEY_MAX)
            fuzz_fail("a map key out of bounds");
        if (kv->value.len > PROTO_MAP_VALUE_MAX)
            fuzz_fail("a map value out of bounds");
        if (lo && (kv->key.ptr < lo || kv->key.ptr + kv->key.len > hi ||
                   (kv->value.len && (kv->value.ptr < lo || kv->value.ptr + kv->value.len > hi))))
            fuzz_fail("a map view lies outside its buffer");
    }
}

static void fuzz_metadata(const char *text)
{
    struct proto_map m;
    memset(&m, 0, sizeof m);
    char *buf = NULL;
    char msg[256] = "";
    if (gw_parse_metadata(text, &m, &buf, msg, sizeof msg) != 0) {
        if (buf || m.count || !msg[0])
            fuzz_fail("a refused X-Budget-Metadata left something or said nothing");
        return;
    }
    if (!buf)
        fuzz_fail("accepted metadata without its buffer");
    size_t total = 0;
    for (uint32_t i = 0; i < m.count; i++)
        total += m.kv[i].key.len + m.kv[i].value.len;
    map_check(&m, buf, buf + total);
    /* Every key is as the JSON gave it: a sanity read of all bytes. */
    volatile char sink = 0;
    for (size_t i = 0; i < total; i++)
        sink ^= buf[i];
    (void)sink;
    free(buf);
}

static void fuzz_hint(const char *text)
{
    int64_t micros = -12345;
    if (gw_parse_hint(text, &micros) != 0) {
        if (micros != -12345)
            fuzz_fail("a refused hint wrote its output");
        return;
    }
    if (micros < 0 || micros > PROTO_AMOUNT_MAX)
        fuzz_fail("a hint out of range was accepted");
    char usd[MONEY_FORMAT_CAP];
    int64_t again = -1;
    if (money_format(micros, usd, sizeof usd) < 0 || gw_parse_hint(usd, &again) != 0 ||
        again != micros)
        fuzz_fail("a hint does not survive money_format and back");
}

static void fuzz_proxy(const char *s, size_t n)
{
    struct gw_proxy_request r;
    char msg[400] = "";
    if (gw_parse_proxy_body(s, n, &r, msg, sizeof msg) != 0) {
        if (r.body || !msg[0])
            fuzz_fail("a refused proxy body left something or said nothing");
        return;
    }
    if (!json_is_object(r.body) || !r.model)
        fuzz_fail("an accepted proxy body without its object or model");
    json_t *model = json_object_get(r.body, "model");
    if (!json_is_string(model) || json_string_value(model) != r.model ||
        json_string_length(model) == 0 || json_string_length(model) > PROTO_TEXT_MAX)
        fuzz_fail("an accepted model is not a string of 1..PROTO_TEXT_MAX bytes");
    if (r.is_max_tokens_bad && !r.has_max_tokens)
        fuzz_fail("bad max_tokens flagged without any");
    if (r.has_max_tokens && !r.is_max_tokens_bad &&
        (r.max_tokens < 0 || r.max_tokens > GW_PARSE_MAX_TOKENS))
        fuzz_fail("max_tokens out of range accepted");
    if (r.is_stream != json_is_true(json_object_get(r.body, "stream")))
        fuzz_fail("is_stream disagrees with the body");
    json_decref(r.body);
}

/* The fields without the document: the same answers as the full parse. */
static void fuzz_proxy_fields(const char *s, size_t n)
{
    struct gw_proxy_request full, fields;
    char msg_full[400] = "", msg_fields[400] = "";
    int rc_full = gw_parse_proxy_body(s, n, &full, msg_full, sizeof msg_full);
    int rc_fields = gw_parse_proxy_fields(s, n, &fields, msg_fields, sizeof msg_fields);
    if (rc_full != rc_fields || strcmp(msg_full, msg_fields) != 0)
        fuzz_fail("gw_parse_proxy_fields answers otherwise than gw_parse_proxy_body");
    if (rc_full == 0 &&
        (strcmp(full.model, fields.model) != 0 || full.is_stream != fields.is_stream ||
         full.has_max_tokens != fields.has_max_tokens ||
         full.is_max_tokens_bad != fields.is_max_tokens_bad ||
         full.max_tokens != fields.max_tokens))
        fuzz_fail("gw_parse_proxy_fields reads other fields than gw_parse_proxy_body");
    json_decref(full.body);
    json_decref(fields.body);
}

static void budget_check(const struct gw_budget *b)
{
    str_check(b->path_arg, sizeof b->path_arg, "path_arg is not terminated");
    str_check(b->name2, sizeof b->name2, "name2 is not terminated");
    str_check(b->workflow, sizeof b->workflow, "workflow is not terminated");
    str_check(b->model, sizeof b->model, "model is not terminated");
    if (b->op == GW_B_ESTIMATE && b->body && b->workflow[0] == '\0')
        fuzz_fail("an estimate accepted without a workflow");
    map_check(&b->body_meta, NULL, NULL);
}

static void fuzz_budget_path(const char *path, size_t n, bool is_post)
{
    struct gw_budget b;
    memset(&b, 0, sizeof b);
    if (gw_parse_budget_path(path, n, is_post, &b) != 0)
        return;
    if ((unsigned)b.op > GW_B_ESTIMATE)
        fuzz_fail("an unknown budget operation");
    if ((b.op == GW_B_ACCOUNT) == is_post)
        fuzz_fail("a budget route with the wrong method");
    if (b.op == GW_B_ACCOUNT && (b.path_arg[0] == '\0' || strlen(b.path_arg) > PROTO_NAME_MAX))
        fuzz_fail("an account path argument out of bounds");
    budget_check(&b);
}

static void fuzz_budget_body(enum gw_budget_op op, bool is_post, const char *s, size_t n)
{
    struct gw_budget b;
    memset(&b, 0, sizeof b);
    b.op = op;
    char msg[256] = "x";
    if (gw_parse_budget_body(&b, is_post, s, n, msg, sizeof msg) != 0) {
        if (b.body || !msg[0])
            fuzz_fail("a refused budget body left something or said nothing");
        return;
    }
    if (b.body ? !json_is_object(b.body) : (is_post && n > 0))
        fuzz_fail("an accepted budget body that is not an object");
    if (!is_post && b.body)
        fuzz_fail("a GET's body was read");
    budget_check(&b);
    if (b.body_meta.count && !b.body)
        fuzz_fail("metadata without a body");
    /* What gw_budget_authed reads next. */
    const char *fields[] = {"account", "parent", "debit"};
    for (size_t i = 0; i < 3; i++) {
        char acct[PROTO_NAME_MAX + 1] = "";
        char m2[256] = "";
        int rc = gw_parse_body_str(b.body, fields[i], acct, sizeof acct, m2, sizeof m2);
        if (rc < 0 && !m2[0])
            fuzz_fail("a refused field said nothing");
        str_check(acct, sizeof acct, "an account field is not terminated");
    }
    json_decref(b.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum gw_budget_op op = (enum gw_budget_op)((data[0] & 7) % (GW_B_ESTIMATE + 1));
    bool is_post = (data[0] & 8) != 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

    /* Headers reach the parsers as C strings. */
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, s, n);
    text[n] = '\0';
    fuzz_metadata(text);
    fuzz_hint(text);
    free(text);

    fuzz_proxy(s, n);
    fuzz_proxy_fields(s, n);
    fuzz_budget_body(op, is_post, s, n);

    /* Paths: as they come, and after the prefix the router matched. */
    fuzz_budget_path(s, n, is_post);
    static const char prefix[] = "/v1/budget/";
    char *path = malloc(sizeof prefix - 1 + n);
    if (!path)
        return 0;
    memcpy(path, prefix, sizeof prefix - 1);
    memcpy(path + sizeof prefix - 1, s, n);
    fuzz_budget_path(path, sizeof prefix - 1 + n, is_post);
    free(path);
    return 0;
}
