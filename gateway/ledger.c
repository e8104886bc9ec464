/*
 * ledger.c — the gateway's view of the cluster.  Writes (reserve, commit,
 * release, grants, transfers) go through pc_apply: the leader, with the
 * call's idempotency key, retried on unknown outcomes.  Reads that gate a
 * call (API keys, prices, the metadata policy) are linearizable and cached
 * for GW_CACHE_TTL_MS, so the hot path has exactly one consensus round: the
 * reserve.  A revoked key or a new price takes effect within that TTL.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "proto/mp.h"

#define GW_KEY_CACHE 4096
#define GW_PRICE_CACHE 256

struct gw_key_slot {
    uint8_t hash[32];
    uint64_t fetched_ns;
    int status; /* 0 found, 1 not found */
    struct gw_key key;
};

struct gw_price_slot {
    char model[PROTO_TEXT_MAX + 1];
    uint64_t fetched_ns;
    int status;
    struct gw_price price;
};

static struct gw_key_slot gw_keys[GW_KEY_CACHE];
static struct gw_price_slot gw_prices[GW_PRICE_CACHE];
static struct {
    uint64_t fetched_ns;
    char keys[PROTO_LIST_MAX][PROTO_MAP_KEY_MAX + 1];
    const char *ptrs[PROTO_LIST_MAX];
    uint32_t count;
    bool is_valid;
} gw_policy;

static bool gw_fresh(uint64_t fetched_ns)
{
    return fetched_ns && gw_now_ns() - fetched_ns < (uint64_t)GW_CACHE_TTL_MS * 1000000ull;
}

/* ---- msgpack answers ---- */

int gw_map_find(const uint8_t *map, size_t len, const char *key, struct mp_reader *at)
{
    struct mp_reader r;
    uint32_t n = 0;
    mp_reader_init(&r, map, len);
    if (mp_map_read(&r, &n) != MP_OK)
        return -1;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        const char *k = NULL;
        uint32_t l = 0;
        if (mp_str_read(&r, &k, &l) != MP_OK)
            return -1;
        if (l == kl && memcmp(k, key, kl) == 0) {
            *at = r;
            return 0;
        }
        if (mp_value_skip(&r, 32) != MP_OK)
            return -1;
    }
    return -1;
}

static int gw_map_str(const uint8_t *map, size_t len, const char *key, char *out, size_t cap)
{
    struct mp_reader r;
    const char *s = NULL;
    uint32_t l = 0;
    if (gw_map_find(map, len, key, &r) != 0 || mp_str_read(&r, &s, &l) != MP_OK || l >= cap)
        return -1;
    memcpy(out, s, l);
    out[l] = '\0';
    return 0;
}

static int gw_map_int(const uint8_t *map, size_t len, const char *key, int64_t *out)
{
    struct mp_reader r;
    return gw_map_find(map, len, key, &r) == 0 && mp_int_read(&r, out) == MP_OK ? 0 : -1;
}

static int gw_map_bool(const uint8_t *map, size_t len, const char *key, bool *out)
{
    struct mp_reader r;
    return gw_map_find(map, len, key, &r) == 0 && mp_bool_read(&r, out) == MP_OK ? 0 : -1;
}

static json_t *gw_value_to_json(struct mp_reader *r, int depth);

json_t *gw_map_to_json(const uint8_t *map, size_t len)
{
    struct mp_reader r;
    mp_reader_init(&r, map, len);
    return gw_value_to_json(&r, 0);
}

static json_t *gw_value_to_json(struct mp_reader *r, int depth)
{
    if (depth > 16)
        return NULL;
    struct mp_reader peek = *r;
    uint32_t n = 0;
    int64_t i;
    uint64_t u;
    bool b;
    const char *s;
    uint32_t l;
    if (mp_nil_read(r) == MP_OK)
        return json_null();
    if (mp_bool_read(r, &b) == MP_OK)
        return json_boolean(b);
    if (mp_int_read(r, &i) == MP_OK)
        return json_integer(i);
    *r = peek;
    if (mp_uint_read(r, &u) == MP_OK)
        return json_integer((json_int_t)u);
    *r = peek;
    if (mp_str_read(r, &s, &l) == MP_OK)
        return json_stringn(s, l);
    *r = peek;
    if (mp_array_read(r, &n) == MP_OK) {
        json_t *a = json_array();
        for (uint32_t k = 0; k < n; k++) {
            json_t *v = gw_value_to_json(r, depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    *r = peek;
    if (mp_map_read(r, &n) == MP_OK) {
        json_t *o = json_object();
        for (uint32_t k = 0; k < n; k++) {
            char key[256];
            json_t *v;
            if (mp_str_read(r, &s, &l) != MP_OK || l >= sizeof key ||
                !(v = gw_value_to_json(r, depth + 1))) {
                json_decref(o);
                return NULL;
            }
            memcpy(key, s, l);
            key[l] = '\0';
            json_object_set_new(o, key, v);
        }
        return o;
    }
    *r = peek;
    const uint8_t *bin;
    if (mp_bin_read(r, &bin, &l) == MP_OK)
        return json_null(); /* binary values are not for HTTP clients */
    return NULL;
}

/* ---- reads ---- */

struct gw_read {
    struct gw_call *call;
    gw_read_cb cb;
    uint64_t start_ns;
};

static int gw_read_status(const struct pc_reply *r)
{
    if (r->status == PC_OK)
        return 0;
    if (r->status == PC_EREMOTE && r->code &&
        (strcmp(r->code, RPC_E_NOT_FOUND) == 0 || strcmp(r->code, RPC_E_BAD_REQUEST) == 0))
        return 1;
    return 2;
}

static void gw_read_done(void *arg, const struct pc_reply *r)
{
    struct gw_read *rd = arg;
    struct gw_call *c = rd->call;
    gw_metrics_ledger_rtt(c->gw, (double)(gw_now_ns() - rd->start_ns) / 1e6);
    int status = gw_read_status(r);
    if (status != 2)
        c->gw->is_ready = true;
    rd->cb(c, status, status == 0 ? r->result : NULL, status == 0 ? r->result_len : 0);
    free(rd);
    gw_call_release(c);
}

/* Send read params (consumed) to the leader; cb gets the answer. */
static void gw_ledger_read_send(struct gw_call *c, struct proto_buf *params, gw_read_cb cb)
{
    struct gw_read *rd = calloc(1, sizeof *rd);
    if (!rd || !params->data) {
        free(rd);
        proto_buf_free(params);
        cb(c, 2, NULL, 0);
        return;
    }
    rd->call = c;
    rd->cb = cb;
    rd->start_ns = gw_now_ns();
    gw_call_hold(c);
    if (pc_call(c->gw->client, PC_TARGET_LEADER, "read", params->data, params->len, true,
                gw_read_done, rd) != 0) {
        free(rd);
        gw_call_release(c);
        cb(c, 2, NULL, 0);
    }
    proto_buf_free(params);
}

void gw_ledger_read(struct gw_call *c, const char *query, const char *str_arg, uint64_t id_arg,
                    bool has_id, gw_read_cb cb)
{
    struct proto_buf params;
    proto_buf_init(&params);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &params, NULL);
    /* A tiny hand encoding: [query, "linear", arg?] */
    uint8_t head = (uint8_t)(0x90 | (str_arg || has_id ? 3 : 2));
    proto_buf_append(&params, &head, 1);
    const char *strs[2] = {query, "linear"};
    for (int k = 0; k < 2; k++) {
        uint8_t h = (uint8_t)(0xa0 | strlen(strs[k]));
        proto_buf_append(&params, &h, 1);
        proto_buf_append(&params, strs[k], strlen(strs[k]));
    }
    if (str_arg) {
        size_t l = strlen(str_arg);
        uint8_t h[3] = {0xd9, (uint8_t)l, 0};
        if (l < 32) {
            h[0] = (uint8_t)(0xa0 | l);
            proto_buf_append(&params, h, 1);
        } else {
            proto_buf_append(&params, h, 2);
        }
        proto_buf_append(&params, str_arg, l);
    } else if (has_id) {
        uint8_t h[9] = {0xcf};
        for (int i = 0; i < 8; i++)
            h[1 + i] = (uint8_t)(id_arg >> (56 - 8 * i));
        proto_buf_append(&params, h, 9);
    }
    gw_ledger_read_send(c, &params, cb);
}

static int gw_params_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len) == 0 ? 0 : -1;
}

void gw_ledger_read_strs(struct gw_call *c, const char *query, const char *const *args,
                         uint32_t count, gw_read_cb cb)
{
    struct proto_buf params;
    proto_buf_init(&params);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &params, gw_params_write);
    msgpack_pack_array(&pk, 2 + count);
    rpc_pack_str(&pk, query);
    rpc_pack_str(&pk, "linear");
    for (uint32_t i = 0; i < count; i++)
        rpc_pack_str(&pk, args[i]);
    gw_ledger_read_send(c, &params, cb);
}

/* ---- keys ---- */

struct gw_key_wait {
    uint8_t hash[32];
    gw_key_cb cb;
};

static struct gw_key_slot *gw_key_slot(const uint8_t hash[32])
{
    uint32_t i;
    memcpy(&i, hash, sizeof i);
    return &gw_keys[i % GW_KEY_CACHE];
}

static void gw_key_answer(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    struct gw_key_wait *w = c->wait;
    gw_key_cb cb = w->cb;
    struct gw_key_slot *slot = gw_key_slot(w->hash);
    struct gw_key k;
    memset(&k, 0, sizeof k);
    if (status == 0) {
        char role[16] = "";
        if (gw_map_str(map, len, "id", k.id, sizeof k.id) != 0 ||
            gw_map_str(map, len, "account", k.account, sizeof k.account) != 0 ||
            gw_map_str(map, len, "role", role, sizeof role) != 0 ||
            gw_map_bool(map, len, "is_revoked", &k.is_revoked) != 0)
            status = 2;
        k.role = strcmp(role, "admin") == 0 ? PROTO_ROLE_ADMIN : PROTO_ROLE_AGENT;
    }
    if (status != 2) {
        memcpy(slot->hash, w->hash, 32);
        slot->fetched_ns = gw_now_ns();
        slot->status = status;
        slot->key = k;
    }
    free(w);
    c->wait = NULL;
    cb(c, status, &k);
}

void gw_ledger_key(struct gw_call *c, const uint8_t hash[32], gw_key_cb cb)
{
    struct gw_key_slot *slot = gw_key_slot(hash);
    if (gw_fresh(slot->fetched_ns) && memcmp(slot->hash, hash, 32) == 0) {
        cb(c, slot->status, &slot->key);
        return;
    }
    struct gw_key_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cb(c, 2, NULL);
        return;
    }
    memcpy(w->hash, hash, 32);
    w->cb = cb;
    c->wait = w;
    /* key_by_hash takes a bin: encode by hand here. */
    uint8_t params[64];
    size_t n = 0;
    params[n++] = 0x93;
    params[n++] = 0xab;
    memcpy(params + n, "key_by_hash", 11);
    n += 11;
    params[n++] = 0xa6;
    memcpy(params + n, "linear", 6);
    n += 6;
    params[n++] = 0xc4;
    params[n++] = 32;
    memcpy(params + n, hash, 32);
    n += 32;
    struct gw_read *rd = calloc(1, sizeof *rd);
    if (!rd) {
        free(w);
        c->wait = NULL;
        cb(c, 2, NULL);
        return;
    }
    rd->call = c;
    rd->cb = gw_key_answer;
    rd->start_ns = gw_now_ns();
    gw_call_hold(c);
    if (pc_call(c->gw->client, PC_TARGET_LEADER, "read", params, n, true, gw_read_done, rd) != 0) {
        free(rd);
        free(w);
        c->wait = NULL;
        gw_call_release(c);
        cb(c, 2, NULL);
    }
}

/* ---- prices ---- */

struct gw_price_wait {
    char model[PROTO_TEXT_MAX + 1];
    gw_price_cb cb;
};

static struct gw_price_slot *gw_price_slot(const char *model)
{
    uint32_t h = 2166136261u;
    for (const char *p = model; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &gw_prices[h % GW_PRICE_CACHE];
}

static void gw_price_answer(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    struct gw_price_wait *w = c->wait;
    gw_price_cb cb = w->cb;
    struct gw_price p;
    memset(&p, 0, sizeof p);
    if (status == 0 && (gw_map_int(map, len, "input_micros", &p.input_micros) != 0 ||
                        gw_map_int(map, len, "output_micros", &p.output_micros) != 0 ||
                        gw_map_int(map, len, "cached_micros", &p.cached_micros) != 0 ||
                        gw_map_int(map, len, "cache_write_micros", &p.cache_write_micros) != 0))
        status = 2;
    if (status != 2) {
        struct gw_price_slot *slot = gw_price_slot(w->model);
        snprintf(slot->model, sizeof slot->model, "%s", w->model);
        slot->fetched_ns = gw_now_ns();
        slot->status = status;
        slot->price = p;
    }
    free(w);
    c->wait = NULL;
    cb(c, status, &p);
}

void gw_ledger_price(struct gw_call *c, const char *model, gw_price_cb cb)
{
    struct gw_price_slot *slot = gw_price_slot(model);
    if (gw_fresh(slot->fetched_ns) && strcmp(slot->model, model) == 0) {
        cb(c, slot->status, &slot->price);
        return;
    }
    struct gw_price_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cb(c, 2, NULL);
        return;
    }
    snprintf(w->model, sizeof w->model, "%s", model);
    w->cb = cb;
    c->wait = w;
    gw_ledger_read(c, "price", model, 0, false, gw_price_answer);
}

/* ---- policy ---- */

struct gw_policy_wait {
    gw_policy_cb cb;
};

static void gw_policy_answer(struct gw_call *c, int status, const uint8_t *map, size_t len)
{
    struct gw_policy_wait *w = c->wait;
    gw_policy_cb cb = w->cb;
    free(w);
    c->wait = NULL;
    if (status == 0) {
        struct mp_reader r;
        uint32_t n = 0;
        gw_policy.count = 0;
        if (gw_map_find(map, len, "required_metadata", &r) == 0 &&
            mp_array_read(&r, &n) == MP_OK) {
            for (uint32_t i = 0; i < n && i < PROTO_LIST_MAX; i++) {
                const char *s;
                uint32_t l;
                if (mp_str_read(&r, &s, &l) != MP_OK || l > PROTO_MAP_KEY_MAX)
                    break;
                memcpy(gw_policy.keys[gw_policy.count], s, l);
                gw_policy.keys[gw_policy.count][l] = '\0';
                gw_policy.ptrs[gw_policy.count] = gw_policy.keys[gw_policy.count];
                gw_policy.count++;
            }
        }
        gw_policy.fetched_ns = gw_now_ns();
        gw_policy.is_valid = true;
    }
    if (status == 2)
        cb(c, 2, NULL, 0);
    else
        cb(c, 0, gw_policy.ptrs, gw_policy.count);
}

void gw_ledger_policy(struct gw_call *c, gw_policy_cb cb)
{
    if (gw_policy.is_valid && gw_fresh(gw_policy.fetched_ns)) {
        cb(c, 0, gw_policy.ptrs, gw_policy.count);
        return;
    }
    struct gw_policy_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cb(c, 2, NULL, 0);
        return;
    }
    w->cb = cb;
    c->wait = w;
    gw_ledger_read(c, "policy", NULL, 0, false, gw_policy_answer);
}

/* ---- writes ---- */

struct gw_apply {
    struct gw_call *call;
    gw_apply_cb cb;
    uint64_t start_ns;
};

static void gw_apply_done(void *arg, int status, const struct proto_result *r, const char *msg)
{
    struct gw_apply *a = arg;
    struct gw_call *c = a->call;
    gw_metrics_ledger_rtt(c->gw, (double)(gw_now_ns() - a->start_ns) / 1e6);
    if (status == PC_OK)
        c->gw->is_ready = true;
    a->cb(c, status, r, msg);
    free(a);
    gw_call_release(c);
}

void gw_ledger_apply(struct gw_call *c, const struct proto_cmd *cmd, gw_apply_cb cb)
{
    struct gw_apply *a = calloc(1, sizeof *a);
    if (!a) {
        cb(c, PC_EINVAL, NULL, "out of memory");
        return;
    }
    a->call = c;
    a->cb = cb;
    a->start_ns = gw_now_ns();
    gw_call_hold(c);
    if (pc_apply(c->gw->client, cmd, gw_apply_done, a) != 0) {
        free(a);
        gw_call_release(c);
        cb(c, PC_EINVAL, NULL, "the client queue is full");
    }
}
