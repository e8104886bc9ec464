/*
 * test_proto.c — the wire format as a specification: every command type and
 * the result round-trip with every field set; the decoder refuses every
 * shape, type and size the format does not allow, with an error that names
 * the field; the msgpack reader, the names and the JSON view of maps behave
 * as their headers promise.
 *
 * Hand-built (often broken) messages are written with msgpack-c's packer
 * into a struct wire, so the tests do not trust our own encoder to make the
 * inputs the decoder must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "proto/mp.h"
#include "proto/proto.h"
#include "tests/fuzz/proto_equal.h"

/* ---- fixtures ---- */

static const uint8_t sample_hash[PROTO_HASH_BYTES] = {
    0x00, 0xff, 0x01, 0xfe, 0x02, 0xfd, 0x03, 0xfc, 0x04, 0xfb, 0x05,
    0xfa, 0x06, 0xf9, 0x07, 0xf8, 0x08, 0xf7, 0x09, 0xf6, 0x0a, 0xf5,
    0x0b, 0xf4, 0x0c, 0xf3, 0x0d, 0xf2, 0x0e, 0xf1, 0x0f, 0xf0,
};

static struct proto_str s_(const char *c)
{
    return proto_str_c(c);
}

static void map_add(struct proto_map *m, const char *k, const char *v)
{
    assert_true(m->count < PROTO_MAP_MAX);
    m->kv[m->count].key = s_(k);
    m->kv[m->count].value = s_(v);
    m->count++;
}

static void map_fill_sample(struct proto_map *m)
{
    map_add(m, "team", "search");
    map_add(m, "model", "gpt-4o \"mini\" \xc3\xa9");
    map_add(m, "", "empty key");
}

/* A command of `type` with every field set to something not zero. */
static struct proto_cmd sample_cmd(int type)
{
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = (uint8_t)type;
    c.role = PROTO_ROLE_ADMIN;
    c.key = s_("idem-key-0001");
    switch (type) {
    case PROTO_CMD_ACCOUNT_CREATE:
    case PROTO_CMD_ACCOUNT_UPDATE:
        c.u.account.name = s_("acme/eng/bot");
        c.u.account.cap_micros = 2500000000;
        c.u.account.period = PROTO_PERIOD_WEEK;
        c.u.account.tz_offset_min = -300;
        c.u.account.has_tags = true;
        map_fill_sample(&c.u.account.tags);
        break;
    case PROTO_CMD_ACCOUNT_FREEZE:
    case PROTO_CMD_ACCOUNT_UNFREEZE:
    case PROTO_CMD_ACCOUNT_CLOSE:
        c.u.status.name = s_("acme/eng");
        c.u.status.reason = s_("runaway loop");
        break;
    case PROTO_CMD_RESERVE:
        c.role = PROTO_ROLE_AGENT;
        c.u.reserve.account = s_("acme/eng/bot");
        c.u.reserve.payee = s_("vendor/openai");
        c.u.reserve.amount_micros = 1234567;
        c.u.reserve.ttl_ms = 60000;
        c.u.reserve.on_expire = PROTO_ON_EXPIRE_CHARGE;
        map_fill_sample(&c.u.reserve.metadata);
        c.u.reserve.tokens = 128000;
        break;
    case PROTO_CMD_COMMIT:
        c.u.commit.reservation_id = UINT64_MAX;
        c.u.commit.actual_micros = -7;
        map_fill_sample(&c.u.commit.metadata);
        break;
    case PROTO_CMD_RELEASE:
        c.u.release.reservation_id = 42;
        break;
    case PROTO_CMD_EXPIRE:
        break;
    case PROTO_CMD_TRANSFER:
        c.u.transfer.debit = s_("acme/a");
        c.u.transfer.credit = s_("acme/b");
        c.u.transfer.amount_micros = INT64_MAX;
        c.u.transfer.kind = PROTO_KIND_CHARGEBACK;
        map_fill_sample(&c.u.transfer.metadata);
        break;
    case PROTO_CMD_GRANT_CREATE:
        c.u.grant_create.parent = s_("acme/eng");
        c.u.grant_create.workflow = s_("nightly-eval");
        c.u.grant_create.amount_micros = 5000000;
        c.u.grant_create.ttl_ms = PROTO_TTL_MAX_MS;
        map_fill_sample(&c.u.grant_create.metadata);
        break;
    case PROTO_CMD_GRANT_CLOSE:
        c.u.grant_close.grant_id = 9;
        break;
    case PROTO_CMD_PERIOD_CLOSE:
        c.u.period_close.month = s_("2026-10");
        break;
    case PROTO_CMD_PRICE_SET:
        c.u.price_set.model = s_("claude-sonnet");
        c.u.price_set.input_micros = 3000000;
        c.u.price_set.output_micros = 15000000;
        c.u.price_set.cached_micros = 300000;
        c.u.price_set.cache_write_micros = 3750000;
        break;
    case PROTO_CMD_KEY_CREATE:
        c.u.key_create.key_id = s_("key-7");
        c.u.key_create.hash.ptr = (const char *)sample_hash;
        c.u.key_create.hash.len = PROTO_HASH_BYTES;
        c.u.key_create.account = s_("acme/eng/bot");
        c.u.key_create.key_role = PROTO_ROLE_AGENT;
        break;
    case PROTO_CMD_KEY_REVOKE:
        c.u.key_revoke.key_id = s_("key-7");
        break;
    case PROTO_CMD_POLICY_SET:
        c.u.policy_set.required_metadata.count = 3;
        c.u.policy_set.required_metadata.item[0] = s_("team");
        c.u.policy_set.required_metadata.item[1] = s_("ticket");
        c.u.policy_set.required_metadata.item[2] = s_("");
        break;
    case PROTO_CMD_BREAKER_SET:
        c.u.breaker_set.account = s_("acme/eng/bot");
        c.u.breaker_set.velocity_max_micros = 50000000;
        c.u.breaker_set.velocity_window_ms = 3600000;
        c.u.breaker_set.bedtime_start_min = 1320;
        c.u.breaker_set.bedtime_end_min = 420;
        c.u.breaker_set.bedtime_factor_pct = 300;
        c.u.breaker_set.bedtime_floor_micros = INT64_MAX;
        break;
    case PROTO_CMD_ALERT_SET:
        c.u.alert_set.account = s_("acme/eng");
        c.u.alert_set.thresholds = s_("50,80,100");
        break;
    case PROTO_CMD_EVENT_ACK:
        c.u.event_ack.event_id = UINT64_MAX;
        break;
    case PROTO_CMD_RATE_LIMIT_SET:
        c.u.rate_limit_set.meta_key = s_("project_id");
        c.u.rate_limit_set.meta_value = s_("p-42");
        c.u.rate_limit_set.rpm = 60;
        c.u.rate_limit_set.tpm = 100000;
        c.u.rate_limit_set.tph = 0;
        c.u.rate_limit_set.tpd = INT64_MAX;
        break;
    case PROTO_CMD_APPROVAL_SET:
        c.u.approval_set.above_micros = 25000000;
        break;
    default:
        fail_msg("no sample for type %d", type);
    }
    return c;
}

static struct proto_result sample_result(void)
{
    struct proto_result r;
    memset(&r, 0, sizeof r);
    r.status = PROTO_ERR_BUDGET_EXCEEDED;
    r.id = UINT64_MAX;
    r.amount_micros = -1;
    r.remaining_micros = PROTO_UNLIMITED;
    r.expires_at_ms = 1763251200000LL;
    r.transfer_id = 77;
    r.overrun_micros = INT64_MIN;
    r.returned_micros = 5;
    snprintf(r.name, sizeof r.name, "acme/eng");
    snprintf(r.message, sizeof r.message, "account \"acme/eng\" has 0.5 USD left");
    return r;
}

/* Decode `len` bytes from a heap copy of exactly that size, so a read past
 * the end is a read past an allocation (visible to ASan / valgrind). */
static void *dup_exact(const void *data, size_t len)
{
    void *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len)
        memcpy(p, data, len);
    return p;
}

static void assert_message_has(const struct proto_error *err, const char *part)
{
    if (strstr(err->message, part) == NULL)
        fail_msg("error message \"%s\" lacks \"%s\"", err->message, part);
}

/* ---- hand-built messages ---- */

struct wire {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

typedef void (*wire_fn)(struct wire *w);

static void w_init(struct wire *w)
{
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
}

static void w_free(struct wire *w)
{
    msgpack_sbuffer_destroy(&w->sb);
}

static void w_raw(struct wire *w, const void *p, size_t n)
{
    msgpack_sbuffer_write(&w->sb, p, n);
}

static void w_uint(struct wire *w, uint64_t v) { msgpack_pack_uint64(&w->pk, v); }
static void w_int(struct wire *w, int64_t v) { msgpack_pack_int64(&w->pk, v); }
static void w_nil(struct wire *w) { msgpack_pack_nil(&w->pk); }
static void w_array(struct wire *w, uint32_t n) { msgpack_pack_array(&w->pk, n); }
static void w_map(struct wire *w, uint32_t n) { msgpack_pack_map(&w->pk, n); }

static void w_strn(struct wire *w, const char *p, size_t n)
{
    msgpack_pack_str(&w->pk, n);
    msgpack_pack_str_body(&w->pk, p, n);
}

static void w_str(struct wire *w, const char *s)
{
    w_strn(w, s, strlen(s));
}

/* A string of n copies of c. */
static void w_str_fill(struct wire *w, char c, size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    memset(p, c, n);
    w_strn(w, p, n);
    free(p);
}

static void w_bin(struct wire *w, const void *p, size_t n)
{
    msgpack_pack_bin(&w->pk, n);
    msgpack_pack_bin_body(&w->pk, p, n);
}

/* Version byte, [timestamp, [ ... n commands follow. */
static void w_entry_start(struct wire *w, uint32_t n)
{
    uint8_t version = PROTO_VERSION;
    w_raw(w, &version, 1);
    w_array(w, 2);
    w_int(w, 1763251200000LL);
    w_array(w, n);
}

/* A valid reserve command, except that item `replace` of its array (0 =
 * type, 1 = role, 2 = key, 3 = account, ... 8 = metadata) is written by
 * `bad` instead. */
static void w_reserve(struct wire *w, int replace, wire_fn bad)
{
    w_array(w, 9);
    for (int i = 0; i < 9; i++) {
        if (i == replace) {
            bad(w);
            continue;
        }
        switch (i) {
        case 0: w_uint(w, PROTO_CMD_RESERVE); break;
        case 1: w_uint(w, PROTO_ROLE_AGENT); break;
        case 2: w_str(w, "k1"); break;
        case 3: w_str(w, "acme/eng/bot"); break;
        case 4: w_str(w, ""); break;
        case 5: w_int(w, 1000000); break;
        case 6: w_int(w, 60000); break;
        case 7: w_int(w, 0); break;
        default: w_map(w, 1); w_str(w, "team"); w_str(w, "search"); break;
        }
    }
}

static void w_reserve_ok(struct wire *w)
{
    w_reserve(w, -1, NULL);
}

static int decode_cmd_wire(const struct wire *w, struct proto_cmd *c, struct proto_error *err)
{
    void *p = dup_exact(w->sb.data, w->sb.size);
    int rc = proto_cmd_decode(p, w->sb.size, c, err);
    free(p);
    return rc;
}

static void assert_cmd_rejected(const struct wire *w, int code, const char *message_part)
{
    struct proto_cmd c;
    struct proto_error err;
    int rc = decode_cmd_wire(w, &c, &err);
    if (rc != code)
        fail_msg("decode returned %d, expected %d (%s)", rc, code, err.message);
    assert_int_equal(err.code, code);
    if (message_part != NULL)
        assert_message_has(&err, message_part);
}

/* A reserve with item `replace` written by `bad` must be refused. */
static void assert_reserve_rejected(int replace, wire_fn bad, int code, const char *message_part)
{
    struct wire w;
    w_init(&w);
    w_reserve(&w, replace, bad);
    assert_cmd_rejected(&w, code, message_part);
    w_free(&w);
}

static struct proto_cmd big_cmds[PROTO_BATCH_MAX + 1];
static struct proto_cmd big_cmds_out[PROTO_BATCH_MAX + 1];

static int decode_entry_bytes(const void *data, size_t len, struct proto_entry *e,
                              uint32_t cmds_max, struct proto_error *err)
{
    void *p = dup_exact(data, len);
    int rc = proto_entry_decode(p, len, e, big_cmds_out, cmds_max, err);
    free(p);
    return rc;
}

static void assert_entry_rejected(const struct wire *w, int code, const char *message_part)
{
    struct proto_entry e;
    struct proto_error err;
    int rc = decode_entry_bytes(w->sb.data, w->sb.size, &e, PROTO_BATCH_MAX, &err);
    if (rc != code)
        fail_msg("decode returned %d, expected %d (%s)", rc, code, err.message);
    assert_int_equal(err.code, code);
    if (message_part != NULL)
        assert_message_has(&err, message_part);
}

static void assert_entry_bytes_rejected(const void *data, size_t len, int code)
{
    struct proto_entry e;
    struct proto_error err;
    int rc = decode_entry_bytes(data, len, &e, PROTO_BATCH_MAX, &err);
    if (rc != code)
        fail_msg("decode returned %d, expected %d (%s)", rc, code, err.message);
}

/* ---- round trips ---- */

static void assert_cmd_round_trips(const struct proto_cmd *c)
{
    struct proto_buf b;
    struct proto_cmd d;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_cmd_encode(&b, c), 0);
    int rc = proto_cmd_decode(b.data, b.len, &d, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.message);
    assert_true(proto_cmd_same(c, &d));
    assert_int_equal(d.encoded.len, 0); /* only commands inside an entry */
    /* Encoding what was decoded gives the same bytes: the ledger fingerprints
     * a command by the bytes it arrived in (proto_cmd.encoded). */
    struct proto_buf again;
    proto_buf_init(&again);
    assert_int_equal(proto_cmd_encode(&again, &d), 0);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    proto_buf_free(&again);
    proto_buf_free(&b);
}

static void assert_sample_round_trips(int type)
{
    struct proto_cmd c = sample_cmd(type);
    assert_cmd_round_trips(&c);
}

#define TEST_ROUND_TRIP(name, type)                                            \
    static void test_##name##_round_trips_every_field(void **state)            \
    {                                                                          \
        (void)state;                                                           \
        assert_sample_round_trips(type);                                       \
    }

TEST_ROUND_TRIP(account_create, PROTO_CMD_ACCOUNT_CREATE)
TEST_ROUND_TRIP(account_update, PROTO_CMD_ACCOUNT_UPDATE)
TEST_ROUND_TRIP(account_freeze, PROTO_CMD_ACCOUNT_FREEZE)
TEST_ROUND_TRIP(account_unfreeze, PROTO_CMD_ACCOUNT_UNFREEZE)
TEST_ROUND_TRIP(account_close, PROTO_CMD_ACCOUNT_CLOSE)
TEST_ROUND_TRIP(reserve, PROTO_CMD_RESERVE)
TEST_ROUND_TRIP(commit, PROTO_CMD_COMMIT)
TEST_ROUND_TRIP(release, PROTO_CMD_RELEASE)
TEST_ROUND_TRIP(expire, PROTO_CMD_EXPIRE)
TEST_ROUND_TRIP(transfer, PROTO_CMD_TRANSFER)
TEST_ROUND_TRIP(grant_create, PROTO_CMD_GRANT_CREATE)
TEST_ROUND_TRIP(grant_close, PROTO_CMD_GRANT_CLOSE)
TEST_ROUND_TRIP(period_close, PROTO_CMD_PERIOD_CLOSE)
TEST_ROUND_TRIP(price_set, PROTO_CMD_PRICE_SET)
TEST_ROUND_TRIP(key_create, PROTO_CMD_KEY_CREATE)
TEST_ROUND_TRIP(key_revoke, PROTO_CMD_KEY_REVOKE)
TEST_ROUND_TRIP(policy_set, PROTO_CMD_POLICY_SET)
TEST_ROUND_TRIP(breaker_set, PROTO_CMD_BREAKER_SET)
TEST_ROUND_TRIP(alert_set, PROTO_CMD_ALERT_SET)
TEST_ROUND_TRIP(event_ack, PROTO_CMD_EVENT_ACK)

static void test_account_update_unset_ints_and_no_tags_travel_as_nil(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_ACCOUNT_UPDATE);
    struct proto_buf b;
    struct proto_cmd d;
    struct proto_error err;
    c.u.account.cap_micros = PROTO_UNSET;
    c.u.account.period = PROTO_UNSET;
    c.u.account.tz_offset_min = PROTO_UNSET;
    c.u.account.has_tags = false;
    memset(&c.u.account.tags, 0, sizeof c.u.account.tags);
    proto_buf_init(&b);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    /* The last four items are nil: three ints and the tags. */
    assert_memory_equal(b.data + b.len - 4, "\xc0\xc0\xc0\xc0", 4);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_true(d.u.account.cap_micros == PROTO_UNSET);
    assert_true(d.u.account.period == PROTO_UNSET);
    assert_true(d.u.account.tz_offset_min == PROTO_UNSET);
    assert_false(d.u.account.has_tags);
    assert_int_equal(d.u.account.tags.count, 0);
    proto_buf_free(&b);
}

static void test_account_create_with_empty_tags_keeps_has_tags(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_ACCOUNT_CREATE);
    memset(&c.u.account.tags, 0, sizeof c.u.account.tags);
    assert_cmd_round_trips(&c);
}

static void test_cap_none_and_negative_amounts_round_trip(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_ACCOUNT_CREATE);
    c.u.account.cap_micros = PROTO_CAP_NONE;
    assert_cmd_round_trips(&c);
    c = sample_cmd(PROTO_CMD_RESERVE);
    c.u.reserve.amount_micros = INT64_MIN; /* the ledger refuses it, not the codec */
    assert_cmd_round_trips(&c);
}

static void test_full_maps_and_lists_round_trip(void **state)
{
    (void)state;
    static char keys[PROTO_MAP_MAX][PROTO_MAP_KEY_MAX + 1];
    static char value[PROTO_MAP_VALUE_MAX + 1];
    struct proto_cmd c = sample_cmd(PROTO_CMD_RESERVE);
    struct proto_cmd p = sample_cmd(PROTO_CMD_POLICY_SET);
    memset(value, 'v', PROTO_MAP_VALUE_MAX);
    memset(&c.u.reserve.metadata, 0, sizeof c.u.reserve.metadata);
    p.u.policy_set.required_metadata.count = PROTO_LIST_MAX;
    for (int i = 0; i < PROTO_MAP_MAX; i++) {
        memset(keys[i], 'a' + i, PROTO_MAP_KEY_MAX);
        map_add(&c.u.reserve.metadata, keys[i], value);
        p.u.policy_set.required_metadata.item[i] = s_(keys[i]);
    }
    assert_cmd_round_trips(&c);
    assert_cmd_round_trips(&p);
}

static void test_strings_at_their_limits_round_trip(void **state)
{
    (void)state;
    static char name[PROTO_NAME_MAX + 1], key[PROTO_KEY_MAX + 1], text[PROTO_TEXT_MAX + 1];
    memset(name, 'n', PROTO_NAME_MAX);
    memset(key, 'k', PROTO_KEY_MAX);
    memset(text, 't', PROTO_TEXT_MAX);
    struct proto_cmd c = sample_cmd(PROTO_CMD_GRANT_CREATE);
    c.key = s_(key);
    c.u.grant_create.parent = s_(name);
    c.u.grant_create.workflow = s_(text);
    assert_cmd_round_trips(&c);
}

static void test_result_round_trips_every_field(void **state)
{
    (void)state;
    struct proto_result r = sample_result(), d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), 0);
    assert_true(proto_result_same(&r, &d));
    proto_buf_free(&b);
}

static void test_result_with_longest_name_and_message_round_trips(void **state)
{
    (void)state;
    struct proto_result r = sample_result(), d;
    struct proto_buf b;
    struct proto_error err;
    memset(r.name, 'n', PROTO_NAME_MAX);
    memset(r.message, 'm', PROTO_MESSAGE_MAX);
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(strlen(d.name), PROTO_NAME_MAX);
    assert_int_equal(strlen(d.message), PROTO_MESSAGE_MAX);
    assert_true(proto_result_same(&r, &d));
    proto_buf_free(&b);
}

static void test_empty_result_round_trips(void **state)
{
    (void)state;
    struct proto_result r, d;
    struct proto_buf b;
    struct proto_error err;
    memset(&r, 0, sizeof r);
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), 0);
    assert_true(proto_result_same(&r, &d));
    proto_buf_free(&b);
}

/* Keys "k0000" .. for the big entry; static so the views stay valid. */
static char big_keys[PROTO_BATCH_MAX + 1][12];

/* The command types the codec knows (the enum has holes). */
static int known_types[PROTO_CMD_TYPE_COUNT];
static uint32_t known_type_count(void)
{
    uint32_t n = 0;
    for (int t = 1; t < PROTO_CMD_TYPE_COUNT; t++)
        if (proto_cmd_type_is_known(t))
            known_types[n++] = t;
    return n;
}

static void big_cmds_fill(uint32_t n)
{
    uint32_t known = known_type_count();
    for (uint32_t i = 0; i < n; i++) {
        big_cmds[i] = sample_cmd(known_types[i % known]);
        snprintf(big_keys[i], sizeof big_keys[i], "k%04u", i);
        big_cmds[i].key = s_(big_keys[i]);
    }
}

/* ---- the encoder writes what msgpack-c's packer writes ---- */

/* Re-pack every token of `r` with msgpack-c (ints by their signedness,
 * strings, bins, containers); the bytes must come out the same. */
static void repack(struct mp_reader *r, msgpack_packer *pk)
{
    assert_true(r->pos < r->end);
    uint8_t t = r->pos[0];
    uint32_t n;
    const char *p;
    const uint8_t *bp;
    if (t == 0xc0) {
        assert_int_equal(mp_nil_read(r), MP_OK);
        msgpack_pack_nil(pk);
    } else if (t <= 0x7f || (t >= 0xcc && t <= 0xcf)) {
        uint64_t v;
        assert_int_equal(mp_uint_read(r, &v), MP_OK);
        msgpack_pack_uint64(pk, v);
    } else if (t >= 0xe0 || (t >= 0xd0 && t <= 0xd3)) {
        int64_t v;
        assert_int_equal(mp_int_read(r, &v), MP_OK);
        msgpack_pack_int64(pk, v);
    } else if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) {
        assert_int_equal(mp_str_read(r, &p, &n), MP_OK);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, p, n);
    } else if (t >= 0xc4 && t <= 0xc6) {
        assert_int_equal(mp_bin_read(r, &bp, &n), MP_OK);
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, bp, n);
    } else if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
        assert_int_equal(mp_array_read(r, &n), MP_OK);
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++)
            repack(r, pk);
    } else if ((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf) {
        assert_int_equal(mp_map_read(r, &n), MP_OK);
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < 2 * n; i++)
            repack(r, pk);
    } else {
        fail_msg("unexpected msgpack byte 0x%02x", t);
    }
}

static void assert_packer_bytes(const struct proto_buf *b, size_t skip)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct mp_reader r;
    mp_reader_init(&r, b->data + skip, b->len - skip);
    repack(&r, &pk);
    assert_int_equal(mp_reader_left(&r), 0);
    assert_int_equal(sb.size, b->len - skip);
    assert_memory_equal(sb.data, b->data + skip, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static const int64_t edge_ints[] = {
    0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL,
    INT64_MAX, -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
    -2147483647LL, -2147483648LL, -2147483649LL, INT64_MIN + 1, INT64_MIN};

static void test_encoder_writes_what_msgpack_c_writes(void **state)
{
    (void)state;
    static char text[PROTO_MAP_VALUE_MAX + 1];
    memset(text, 'x', sizeof text - 1);
    struct proto_buf b;
    proto_buf_init(&b);
    size_t nints = sizeof edge_ints / sizeof edge_ints[0];
    /* Results: every integer width in every field, strings of every length. */
    for (size_t i = 0; i <= PROTO_NAME_MAX; i++) {
        struct proto_result res;
        memset(&res, 0, sizeof res);
        res.status = (int32_t)edge_ints[i % nints];
        res.id = (uint64_t)edge_ints[i % nints];
        res.amount_micros = edge_ints[i % nints];
        res.remaining_micros = edge_ints[(i + 1) % nints];
        res.expires_at_ms = edge_ints[(i + 2) % nints];
        res.transfer_id = (uint64_t)edge_ints[(i + 3) % nints];
        res.overrun_micros = edge_ints[(i + 4) % nints];
        res.returned_micros = edge_ints[(i + 5) % nints];
        size_t nl = i, ml = i % (PROTO_MESSAGE_MAX + 1);
        memcpy(res.name, text, nl);
        memcpy(res.message, text, ml);
        b.len = 0;
        assert_int_equal(proto_result_encode(&b, &res), 0);
        assert_packer_bytes(&b, 0);
    }
    /* Commands: every type, keys and metadata of every size class. */
    for (int type = 1; type < PROTO_CMD_TYPE_COUNT; type++) {
        for (uint32_t len = 0; len <= PROTO_MAP_VALUE_MAX; len++) {
            struct proto_cmd c = sample_cmd(type);
            c.key = (struct proto_str){text, len < PROTO_KEY_MAX ? len : PROTO_KEY_MAX};
            if (type == PROTO_CMD_RESERVE) {
                c.u.reserve.amount_micros = edge_ints[len % nints];
                c.u.reserve.ttl_ms = edge_ints[(len + 3) % nints];
                c.u.reserve.metadata.count = len % (PROTO_MAP_MAX + 1);
                for (uint32_t k = 0; k < c.u.reserve.metadata.count; k++) {
                    c.u.reserve.metadata.kv[k].key = (struct proto_str){text, k + 1};
                    c.u.reserve.metadata.kv[k].value = (struct proto_str){text, len};
                }
            }
            b.len = 0;
            assert_int_equal(proto_cmd_encode(&b, &c), 0);
            assert_packer_bytes(&b, 0);
        }
    }
    /* Entries: the timestamp's widths and an array16 of commands. */
    big_cmds_fill(PROTO_BATCH_MAX);
    for (size_t i = 0; i < nints; i++) {
        struct proto_entry e = {.timestamp_ms = edge_ints[i],
                                .cmd_count = i == 0 ? PROTO_BATCH_MAX : (uint32_t)i,
                                .cmds = big_cmds};
        b.len = 0;
        assert_int_equal(proto_entry_encode(&b, &e), 0);
        assert_packer_bytes(&b, 1); /* after the version byte */
    }
    proto_buf_free(&b);
}

static void test_entry_of_4096_commands_round_trips(void **state)
{
    (void)state;
    struct proto_entry e = {.timestamp_ms = -5, .cmd_count = PROTO_BATCH_MAX, .cmds = big_cmds};
    struct proto_entry d;
    struct proto_buf b;
    struct proto_error err;
    big_cmds_fill(PROTO_BATCH_MAX);
    proto_buf_init(&b);
    assert_int_equal(proto_entry_encode(&b, &e), 0);
    assert_int_equal((uint8_t)b.data[0], PROTO_VERSION);
    int rc = proto_entry_decode(b.data, b.len, &d, big_cmds_out, PROTO_BATCH_MAX, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.message);
    assert_true(d.timestamp_ms == -5);
    assert_int_equal(d.cmd_count, PROTO_BATCH_MAX);
    assert_ptr_equal(d.cmds, big_cmds_out);
    for (uint32_t i = 0; i < PROTO_BATCH_MAX; i++) {
        if (!proto_cmd_same(&big_cmds[i], &d.cmds[i]))
            fail_msg("command %u differs after the round trip", i);
        /* Each command knows its own bytes: exactly its canonical encoding. */
        struct proto_buf one;
        proto_buf_init(&one);
        assert_int_equal(proto_cmd_encode(&one, &big_cmds[i]), 0);
        if (d.cmds[i].encoded.len != one.len ||
            memcmp(d.cmds[i].encoded.ptr, one.data, one.len) != 0)
            fail_msg("command %u: encoded span is not its encoding", i);
        proto_buf_free(&one);
    }
    proto_buf_free(&b);
}

static void test_empty_entry_round_trips(void **state)
{
    (void)state;
    struct proto_entry e = {.timestamp_ms = 123, .cmd_count = 0, .cmds = NULL}, d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_entry_encode(&b, &e), 0);
    assert_int_equal(proto_entry_decode(b.data, b.len, &d, NULL, 0, &err), 0);
    assert_true(d.timestamp_ms == 123);
    assert_int_equal(d.cmd_count, 0);
    proto_buf_free(&b);
}

static void test_encoders_append_to_the_buffer(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_RELEASE), d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_buf_append(&b, "xyz", 3), 0);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_memory_equal(b.data, "xyz", 3);
    assert_int_equal(proto_cmd_decode(b.data + 3, b.len - 3, &d, &err), 0);
    assert_true(proto_cmd_same(&c, &d));
    proto_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_decoded_map_raw_is_the_exact_map_bytes(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_RESERVE), d;
    struct proto_buf b, m;
    struct proto_error err;
    c.u.reserve.tokens = 0; /* so the map is the last field written */
    proto_buf_init(&b);
    proto_buf_init(&m);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal(proto_map_encode(&m, &c.u.reserve.metadata), 0);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(d.u.reserve.metadata.raw.len, m.len);
    assert_memory_equal(d.u.reserve.metadata.raw.ptr, m.data, m.len);
    /* the map is the last field, so its bytes end the command */
    assert_ptr_equal(d.u.reserve.metadata.raw.ptr + m.len, b.data + b.len);
    proto_buf_free(&b);
    proto_buf_free(&m);
}

static void test_decoded_strings_point_into_the_input(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_TRANSFER), d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_true(d.u.transfer.debit.ptr > b.data && d.u.transfer.debit.ptr < b.data + b.len);
    proto_buf_free(&b);
}

static void test_non_canonical_integer_widths_are_accepted(void **state)
{
    (void)state;
    /* release with the id as int64 and the type and role as uint16 */
    static const uint8_t bytes[] = {0x94, 0xcd, 0x00, PROTO_CMD_RELEASE, 0xcd, 0x00, 0x01,
                                    0xa0, 0xd3, 0, 0, 0, 0, 0, 0, 0, 42};
    struct proto_cmd d;
    struct proto_error err;
    assert_int_equal(proto_cmd_decode(bytes, sizeof bytes, &d, &err), 0);
    assert_int_equal(d.type, PROTO_CMD_RELEASE);
    assert_int_equal(d.role, PROTO_ROLE_ADMIN);
    assert_int_equal(d.u.release.reservation_id, 42);
}

/* ---- strictness: truncation, bombs, nesting, trailing bytes ---- */

static void test_entry_truncated_at_every_offset_is_refused(void **state)
{
    (void)state;
    struct proto_entry e = {.timestamp_ms = 1, .cmd_count = known_type_count(),
                            .cmds = big_cmds};
    struct proto_buf b;
    big_cmds_fill(e.cmd_count);
    proto_buf_init(&b);
    assert_int_equal(proto_entry_encode(&b, &e), 0);
    for (size_t len = 0; len < b.len; len++)
        assert_entry_bytes_rejected(b.data, len, PROTO_EMALFORMED);
    proto_buf_free(&b);
}

static void test_command_truncated_at_every_offset_is_refused(void **state)
{
    (void)state;
    uint32_t known = known_type_count();
    for (uint32_t k = 0; k < known; k++) {
        struct proto_cmd c = sample_cmd(known_types[k]), d;
        struct proto_buf b;
        struct proto_error err;
        proto_buf_init(&b);
        assert_int_equal(proto_cmd_encode(&b, &c), 0);
        for (size_t len = 0; len < b.len; len++) {
            void *p = dup_exact(b.data, len);
            assert_int_equal(proto_cmd_decode(p, len, &d, &err), PROTO_EMALFORMED);
            free(p);
        }
        proto_buf_free(&b);
    }
}

static void test_result_truncated_at_every_offset_is_refused(void **state)
{
    (void)state;
    struct proto_result r = sample_result(), d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    for (size_t len = 0; len < b.len; len++) {
        void *p = dup_exact(b.data, len);
        assert_int_equal(proto_result_decode(p, len, &d, &err), PROTO_EMALFORMED);
        free(p);
    }
    proto_buf_free(&b);
}

static void test_entry_array_count_bomb_is_refused(void **state)
{
    (void)state;
    static const uint8_t outer[] = {PROTO_VERSION, 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t batch[] = {PROTO_VERSION, 0x92, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t batch16[] = {PROTO_VERSION, 0x92, 0x00, 0xdc, 0xff, 0xff, 0x90};
    assert_entry_bytes_rejected(outer, sizeof outer, PROTO_EMALFORMED);
    assert_entry_bytes_rejected(batch, sizeof batch, PROTO_EMALFORMED);
    assert_entry_bytes_rejected(batch16, sizeof batch16, PROTO_EMALFORMED);
}

static void test_command_array_count_bomb_is_refused(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x06};
    struct proto_cmd d;
    struct proto_error err;
    assert_int_equal(proto_cmd_decode(bytes, sizeof bytes, &d, &err), PROTO_EMALFORMED);
    assert_message_has(&err, "command: array of 4294967295 items cannot fit in the 6 bytes left");
}

static void w_map_bomb(struct wire *w)
{
    static const uint8_t bomb[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    w_raw(w, bomb, sizeof bomb);
}

static void test_map_count_bomb_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_bomb, PROTO_EMALFORMED, "field \"metadata\"");
}

static void w_string_length_bomb(struct wire *w)
{
    static const uint8_t bomb[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    w_raw(w, bomb, sizeof bomb);
}

static void test_string_length_bomb_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(3, w_string_length_bomb, PROTO_EMALFORMED, "truncated string");
}

static void w_nested_arrays(struct wire *w)
{
    for (int i = 0; i < 200; i++)
        w_array(w, 1);
    w_uint(w, 1);
}

static void test_nested_arrays_in_a_field_are_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(5, w_nested_arrays, PROTO_EMALFORMED,
                            "field \"amount_micros\": expected signed 64-bit integer, got array");
    assert_reserve_rejected(8, w_nested_arrays, PROTO_EMALFORMED, "expected map, got array");
}

static void test_nested_map_as_a_map_value_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 9);
    w_uint(&w, PROTO_CMD_RESERVE);
    w_uint(&w, 0);
    w_str(&w, "");
    w_str(&w, "a");
    w_str(&w, "");
    w_int(&w, 1);
    w_int(&w, 1);
    w_int(&w, 0);
    w_map(&w, 1);
    w_str(&w, "k");
    w_map(&w, 1);
    w_str(&w, "k");
    w_str(&w, "v");
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "field \"metadata\" value 0: expected string, got map");
    w_free(&w);
}

static void test_trailing_bytes_after_an_entry_are_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_entry_start(&w, 1);
    w_reserve_ok(&w);
    w_nil(&w);
    assert_entry_rejected(&w, PROTO_EMALFORMED, "entry: 1 trailing bytes");
    w_free(&w);
}

static void test_trailing_bytes_after_a_command_are_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_reserve_ok(&w);
    w_uint(&w, 0);
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "trailing bytes");
    w_free(&w);
}

static void test_trailing_bytes_after_a_result_are_refused(void **state)
{
    (void)state;
    struct proto_result r = sample_result(), d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal(proto_buf_append(&b, "\xc0", 1), 0);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), PROTO_EMALFORMED);
    assert_message_has(&err, "trailing bytes");
    proto_buf_free(&b);
}

/* ---- strictness: entry shape ---- */

static void test_wrong_version_byte_is_refused(void **state)
{
    (void)state;
    struct proto_entry e = {.timestamp_ms = 1, .cmd_count = 0}, d;
    struct proto_buf b;
    struct proto_error err;
    proto_buf_init(&b);
    assert_int_equal(proto_entry_encode(&b, &e), 0);
    b.data[0] = PROTO_VERSION + 1;
    assert_int_equal(proto_entry_decode(b.data, b.len, &d, NULL, 0, &err), PROTO_EVERSION);
    assert_message_has(&err, "version 2, expected 1");
    proto_buf_free(&b);
}

static void test_empty_input_is_refused(void **state)
{
    (void)state;
    struct proto_entry e;
    struct proto_cmd c;
    struct proto_result r;
    struct proto_error err;
    assert_int_equal(proto_entry_decode(NULL, 0, &e, NULL, 0, &err), PROTO_EMALFORMED);
    assert_int_equal(proto_cmd_decode(NULL, 0, &c, &err), PROTO_EMALFORMED);
    assert_int_equal(proto_result_decode(NULL, 0, &r, &err), PROTO_EMALFORMED);
}

static void test_entry_must_be_a_pair(void **state)
{
    (void)state;
    struct wire w;
    uint8_t version = PROTO_VERSION;
    w_init(&w);
    w_raw(&w, &version, 1);
    w_array(&w, 3);
    w_int(&w, 1);
    w_array(&w, 0);
    w_nil(&w);
    assert_entry_rejected(&w, PROTO_EMALFORMED, "array of 3 items, expected 2");
    w_free(&w);
}

static void test_entry_timestamp_must_be_an_integer(void **state)
{
    (void)state;
    struct wire w;
    uint8_t version = PROTO_VERSION;
    w_init(&w);
    w_raw(&w, &version, 1);
    w_array(&w, 2);
    w_str(&w, "now");
    w_array(&w, 0);
    assert_entry_rejected(&w, PROTO_EMALFORMED, "field \"timestamp_ms\"");
    w_free(&w);
}

static void test_batch_larger_than_cmds_max_is_refused(void **state)
{
    (void)state;
    struct wire w;
    struct proto_entry e;
    struct proto_error err;
    w_init(&w);
    w_entry_start(&w, 3);
    for (int i = 0; i < 3; i++)
        w_reserve_ok(&w);
    assert_int_equal(decode_entry_bytes(w.sb.data, w.sb.size, &e, 2, &err), PROTO_ELIMIT);
    assert_message_has(&err, "3 commands exceed room for 2");
    assert_int_equal(decode_entry_bytes(w.sb.data, w.sb.size, &e, 3, &err), 0);
    w_free(&w);
}

static void test_batch_larger_than_batch_max_is_refused(void **state)
{
    (void)state;
    struct proto_entry e = {.timestamp_ms = 1, .cmd_count = PROTO_BATCH_MAX + 1,
                            .cmds = big_cmds};
    struct proto_entry d;
    struct proto_buf b;
    struct proto_error err;
    big_cmds_fill(PROTO_BATCH_MAX + 1);
    proto_buf_init(&b);
    assert_int_equal(proto_entry_encode(&b, &e), 0);
    assert_int_equal(proto_entry_decode(b.data, b.len, &d, big_cmds_out, PROTO_BATCH_MAX + 1,
                                        &err),
                     PROTO_ELIMIT);
    assert_message_has(&err, "4097 commands exceed 4096");
    proto_buf_free(&b);
}

static void test_entry_over_the_byte_limit_is_refused(void **state)
{
    (void)state;
    size_t len = (size_t)PROTO_ENTRY_BYTES_MAX + 1;
    uint8_t *p = calloc(1, len);
    struct proto_entry e;
    struct proto_error err;
    assert_non_null(p);
    p[0] = PROTO_VERSION;
    assert_int_equal(proto_entry_decode(p, len, &e, NULL, 0, &err), PROTO_ELIMIT);
    free(p);
}

/* ---- strictness: command shape and types ---- */

static void test_error_names_command_index_type_field_and_limit(void **state)
{
    (void)state;
    struct wire w;
    struct proto_entry e;
    struct proto_error err;
    w_init(&w);
    w_entry_start(&w, 4);
    for (int i = 0; i < 3; i++)
        w_reserve_ok(&w);
    w_array(&w, 9);
    w_uint(&w, PROTO_CMD_RESERVE);
    w_uint(&w, 0);
    w_str(&w, "");
    w_str_fill(&w, 'a', 300);
    w_str(&w, "");
    w_int(&w, 1);
    w_int(&w, 1);
    w_int(&w, 0);
    w_map(&w, 0);
    assert_int_equal(decode_entry_bytes(w.sb.data, w.sb.size, &e, 8, &err), PROTO_ELIMIT);
    assert_string_equal(err.message,
                        "command 3 (reserve): field \"account\": string of 300 bytes exceeds 255");
    w_free(&w);
}

static void w_type_99(struct wire *w) { w_uint(w, 99); }
static void w_type_0(struct wire *w) { w_uint(w, 0); }

static void test_unknown_command_type_is_refused_by_number(void **state)
{
    (void)state;
    assert_reserve_rejected(0, w_type_99, PROTO_EMALFORMED, "unknown command type 99");
    assert_reserve_rejected(0, w_type_0, PROTO_EMALFORMED, "unknown command type 0");
}

/* A type is known when the codec's schema table has its row: every type up
 * to the last has one (a gap would be refused like a number past the end). */
static void w_type_count(struct wire *w) { w_uint(w, PROTO_CMD_TYPE_COUNT); }

static void test_command_type_without_a_schema_row_is_unknown(void **state)
{
    (void)state;
    assert_reserve_rejected(0, w_type_count, PROTO_EMALFORMED, "unknown command type");
    for (int t = 1; t < PROTO_CMD_TYPE_COUNT; t++)
        assert_true(proto_cmd_type_is_known(t));
    assert_false(proto_cmd_type_is_known(0));
    assert_false(proto_cmd_type_is_known(PROTO_CMD_TYPE_COUNT));
    assert_true(proto_cmd_type_is_known(PROTO_CMD_EXPIRE)); /* a row without fields */
}

/* Trailing optional fields: an encoding from before them still decodes
 * (as 0), 0 is not written, and a value round-trips. */
static void test_reserve_without_tokens_decodes_and_tokens_round_trip(void **state)
{
    (void)state;
    struct wire w;
    struct proto_cmd c, d;
    struct proto_error err;
    w_init(&w);
    w_reserve_ok(&w); /* the 9-item encoding of before */
    assert_int_equal(decode_cmd_wire(&w, &c, &err), 0);
    assert_int_equal(c.u.reserve.tokens, 0);
    w_free(&w);

    struct proto_buf b;
    proto_buf_init(&b);
    c = sample_cmd(PROTO_CMD_RESERVE);
    c.u.reserve.tokens = 0;
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal((uint8_t)b.data[0], 0x90 | 9); /* fixarray of 9: no tokens */
    b.len = 0;
    c.u.reserve.tokens = 128000;
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal((uint8_t)b.data[0], 0x90 | 10);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(d.u.reserve.tokens, 128000);
    b.len = 0;
    c = sample_cmd(PROTO_CMD_COMMIT);
    c.u.commit.tokens = 777;
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(d.u.commit.tokens, 777);
    proto_buf_free(&b);
}

static void test_result_retry_after_is_trailing_optional(void **state)
{
    (void)state;
    struct proto_result r, d;
    struct proto_error err;
    struct proto_buf b;
    memset(&r, 0, sizeof r);
    r.status = PROTO_OK;
    proto_buf_init(&b);
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal((uint8_t)b.data[0], 0x90 | 10); /* as before */
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(d.retry_after_ms, 0);
    b.len = 0;
    r.status = PROTO_ERR_RATE_LIMITED;
    r.retry_after_ms = 1500;
    assert_int_equal(proto_result_encode(&b, &r), 0);
    assert_int_equal((uint8_t)b.data[0], 0x90 | 11);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), 0);
    assert_int_equal(d.retry_after_ms, 1500);
    assert_int_equal(d.status, PROTO_ERR_RATE_LIMITED);
    /* 9 or 12 items: refused */
    b.data[0] = (char)(0x90 | 12);
    assert_int_equal(proto_result_decode(b.data, b.len, &d, &err), PROTO_EMALFORMED);
    proto_buf_free(&b);
}

static void test_command_type_must_be_an_integer(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 3);
    w_str(&w, "reserve");
    w_uint(&w, 0);
    w_str(&w, "");
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "field \"type\": expected unsigned integer, got string");
    w_free(&w);
}

static void test_empty_command_array_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 0);
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "empty array");
    w_free(&w);
}

static void test_command_must_be_an_array(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_map(&w, 0);
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "command: expected array, got map");
    w_free(&w);
}

static void w_role_2(struct wire *w) { w_uint(w, 2); }
static void w_role_negative(struct wire *w) { w_int(w, -1); }

static void test_role_must_be_agent_or_admin(void **state)
{
    (void)state;
    assert_reserve_rejected(1, w_role_2, PROTO_EMALFORMED, "field \"role\": unknown role 2");
    assert_reserve_rejected(1, w_role_negative, PROTO_ELIMIT, "field \"role\"");
}

static void test_command_with_a_missing_field_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 8);
    w_uint(&w, PROTO_CMD_RESERVE);
    w_uint(&w, 0);
    w_str(&w, "");
    w_str(&w, "a");
    w_str(&w, "");
    w_int(&w, 1);
    w_int(&w, 1);
    w_int(&w, 0);
    assert_cmd_rejected(&w, PROTO_EMALFORMED,
                        "command (reserve): array of 8 items, expected 9 to 10 (type, role, key and 6 to 7 fields)");
    w_free(&w);
}

static void test_command_with_an_extra_field_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 5);
    w_uint(&w, PROTO_CMD_RELEASE);
    w_uint(&w, 0);
    w_str(&w, "");
    w_uint(&w, 1);
    w_uint(&w, 2);
    assert_cmd_rejected(&w, PROTO_EMALFORMED, "array of 5 items, expected 4");
    w_free(&w);
}

static void w_str_12(struct wire *w) { w_str(w, "12"); }
static void w_float(struct wire *w) { msgpack_pack_double(&w->pk, 1.5); }
static void w_true(struct wire *w) { msgpack_pack_true(&w->pk); }
static void w_bin_acme(struct wire *w) { w_bin(w, "acme", 4); }
static void w_int_1(struct wire *w) { w_int(w, 1); }

static void test_string_where_an_integer_belongs_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(5, w_str_12, PROTO_EMALFORMED,
                            "command (reserve): field \"amount_micros\": expected signed 64-bit "
                            "integer, got string");
}

static void test_nil_in_a_required_integer_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(6, w_nil, PROTO_EMALFORMED, "field \"ttl_ms\": expected signed 64-bit integer, got nil");
}

static void test_float_and_bool_are_not_integers(void **state)
{
    (void)state;
    assert_reserve_rejected(5, w_float, PROTO_EMALFORMED, "got float");
    assert_reserve_rejected(7, w_true, PROTO_EMALFORMED, "got boolean");
}

static void test_binary_where_a_string_belongs_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(3, w_bin_acme, PROTO_EMALFORMED, "expected string, got binary");
}

static void test_integer_where_a_string_belongs_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(2, w_int_1, PROTO_EMALFORMED, "field \"key\": expected string, got integer");
}

static void w_int64_overflow(struct wire *w) { w_uint(w, (uint64_t)INT64_MAX + 1); }

static void test_integer_beyond_int64_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(5, w_int64_overflow, PROTO_ELIMIT, "field \"amount_micros\"");
}

static void test_extreme_int64_values_are_accepted(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_PRICE_SET);
    c.u.price_set.input_micros = INT64_MIN;
    c.u.price_set.output_micros = INT64_MAX;
    c.u.price_set.cached_micros = -1;
    c.u.price_set.cache_write_micros = 0;
    assert_cmd_round_trips(&c);
}

static void test_negative_id_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 4);
    w_uint(&w, PROTO_CMD_GRANT_CLOSE);
    w_uint(&w, 0);
    w_str(&w, "");
    w_int(&w, -3);
    assert_cmd_rejected(&w, PROTO_ELIMIT, "field \"grant_id\"");
    w_free(&w);
}

/* ---- strictness: sizes ---- */

static void w_name_256(struct wire *w) { w_str_fill(w, 'n', PROTO_NAME_MAX + 1); }
static void w_key_129(struct wire *w) { w_str_fill(w, 'k', PROTO_KEY_MAX + 1); }

static void test_name_over_the_limit_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(3, w_name_256, PROTO_ELIMIT, "string of 256 bytes exceeds 255");
    assert_reserve_rejected(4, w_name_256, PROTO_ELIMIT, "field \"payee\"");
}

static void test_idempotency_key_over_the_limit_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(2, w_key_129, PROTO_ELIMIT,
                            "field \"key\": string of 129 bytes exceeds 128");
}

static void test_free_text_over_the_limit_is_refused(void **state)
{
    (void)state;
    struct wire w;
    w_init(&w);
    w_array(&w, 5);
    w_uint(&w, PROTO_CMD_ACCOUNT_FREEZE);
    w_uint(&w, 1);
    w_str(&w, "");
    w_str(&w, "acme");
    w_str_fill(&w, 'r', PROTO_TEXT_MAX + 1);
    assert_cmd_rejected(&w, PROTO_ELIMIT,
                        "command (account_freeze): field \"reason\": string of 257 bytes exceeds 256");
    w_free(&w);
}

static void assert_period_close_month_rejected(const char *month)
{
    struct wire w;
    w_init(&w);
    w_array(&w, 4);
    w_uint(&w, PROTO_CMD_PERIOD_CLOSE);
    w_uint(&w, 1);
    w_str(&w, "");
    w_str(&w, month);
    assert_cmd_rejected(&w, PROTO_ELIMIT, "field \"month\"");
    w_free(&w);
}

static void test_month_must_be_exactly_seven_bytes(void **state)
{
    (void)state;
    assert_period_close_month_rejected("2026-1");
    assert_period_close_month_rejected("2026-011");
    assert_period_close_month_rejected("");
}

static void assert_key_create_hash_rejected(wire_fn hash, int code, const char *part)
{
    struct wire w;
    w_init(&w);
    w_array(&w, 7);
    w_uint(&w, PROTO_CMD_KEY_CREATE);
    w_uint(&w, 1);
    w_str(&w, "");
    w_str(&w, "key-1");
    hash(&w);
    w_str(&w, "acme");
    w_int(&w, 0);
    assert_cmd_rejected(&w, code, part);
    w_free(&w);
}

static void w_hash_31(struct wire *w) { w_bin(w, sample_hash, 31); }
static void w_hash_33(struct wire *w)
{
    uint8_t h[33] = {0};
    w_bin(w, h, sizeof h);
}
static void w_hash_as_str(struct wire *w) { w_strn(w, (const char *)sample_hash, 32); }

static void test_key_hash_must_be_32_bytes_of_binary(void **state)
{
    (void)state;
    assert_key_create_hash_rejected(w_hash_31, PROTO_ELIMIT,
                                    "field \"hash\": binary of 31 bytes, expected 32");
    assert_key_create_hash_rejected(w_hash_33, PROTO_ELIMIT, "binary of 33 bytes");
    assert_key_create_hash_rejected(w_hash_as_str, PROTO_EMALFORMED,
                                    "expected binary, got string");
}

static void w_map_17(struct wire *w)
{
    char k[4];
    w_map(w, PROTO_MAP_MAX + 1);
    for (int i = 0; i <= PROTO_MAP_MAX; i++) {
        snprintf(k, sizeof k, "k%d", i);
        w_str(w, k);
        w_str(w, "v");
    }
}

static void w_map_long_key(struct wire *w)
{
    w_map(w, 1);
    w_str_fill(w, 'k', PROTO_MAP_KEY_MAX + 1);
    w_str(w, "v");
}

static void w_map_long_value(struct wire *w)
{
    w_map(w, 2);
    w_str(w, "a");
    w_str(w, "v");
    w_str(w, "b");
    w_str_fill(w, 'v', PROTO_MAP_VALUE_MAX + 1);
}

static void w_map_int_value(struct wire *w)
{
    w_map(w, 1);
    w_str(w, "a");
    w_int(w, 1);
}

static void w_map_int_key(struct wire *w)
{
    w_map(w, 1);
    w_int(w, 1);
    w_str(w, "a");
}

static void w_map_duplicate_key(struct wire *w)
{
    w_map(w, 3);
    w_str(w, "team");
    w_str(w, "a");
    w_str(w, "other");
    w_str(w, "b");
    w_str(w, "team");
    w_str(w, "c");
}

static void test_map_over_the_entry_limit_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_17, PROTO_ELIMIT,
                            "field \"metadata\": map of 17 entries exceeds 16");
}

static void test_map_key_over_the_limit_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_long_key, PROTO_ELIMIT,
                            "field \"metadata\" key 0: string of 65 bytes exceeds 64");
}

static void test_map_value_over_the_limit_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_long_value, PROTO_ELIMIT,
                            "field \"metadata\" value 1: string of 257 bytes exceeds 256");
}

static void test_map_of_non_strings_is_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_int_value, PROTO_EMALFORMED, "value 0: expected string");
    assert_reserve_rejected(8, w_map_int_key, PROTO_EMALFORMED, "key 0: expected string");
}

static void test_duplicate_map_keys_are_refused(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_map_duplicate_key, PROTO_EMALFORMED,
                            "field \"metadata\" key 2: duplicate key \"team\"");
}

static void test_nil_map_is_refused_where_not_optional(void **state)
{
    (void)state;
    assert_reserve_rejected(8, w_nil, PROTO_EMALFORMED, "expected map, got nil");
}

static void assert_policy_rejected(uint32_t count, size_t item_len, int code, const char *part)
{
    struct wire w;
    w_init(&w);
    w_array(&w, 4);
    w_uint(&w, PROTO_CMD_POLICY_SET);
    w_uint(&w, 1);
    w_str(&w, "");
    w_array(&w, count);
    for (uint32_t i = 0; i < count; i++)
        w_str_fill(&w, 'a', item_len);
    assert_cmd_rejected(&w, code, part);
    w_free(&w);
}

static void test_list_over_the_item_limit_is_refused(void **state)
{
    (void)state;
    assert_policy_rejected(PROTO_LIST_MAX + 1, 1, PROTO_ELIMIT,
                           "field \"required_metadata\": list of 17 items exceeds 16");
}

static void test_list_item_over_the_length_limit_is_refused(void **state)
{
    (void)state;
    assert_policy_rejected(1, PROTO_MAP_KEY_MAX + 1, PROTO_ELIMIT,
                           "field \"required_metadata\" item 0: string of 65 bytes exceeds 64");
}

/* ---- strictness: results ---- */

/* A result whose item `replace` (0 = status .. 9 = message) is `bad`. */
static void w_result(struct wire *w, int replace, wire_fn bad)
{
    w_array(w, 10);
    for (int i = 0; i < 10; i++) {
        if (i == replace)
            bad(w);
        else if (i < 8)
            w_uint(w, 0);
        else
            w_str(w, "x");
    }
}

static void assert_result_rejected(int replace, wire_fn bad, int code, const char *part)
{
    struct wire w;
    struct proto_result r;
    struct proto_error err;
    w_init(&w);
    w_result(&w, replace, bad);
    void *p = dup_exact(w.sb.data, w.sb.size);
    int rc = proto_result_decode(p, w.sb.size, &r, &err);
    free(p);
    if (rc != code)
        fail_msg("decode returned %d, expected %d (%s)", rc, code, err.message);
    assert_message_has(&err, part);
    w_free(&w);
}

static void w_status_11(struct wire *w) { w_int(w, PROTO_STATUS_COUNT); }
static void w_status_negative(struct wire *w) { w_int(w, -1); }
static void w_str_with_nul(struct wire *w) { w_strn(w, "a\0b", 3); }
static void w_message_192(struct wire *w) { w_str_fill(w, 'm', PROTO_MESSAGE_MAX + 1); }

static void test_result_status_must_be_known(void **state)
{
    (void)state;
    assert_result_rejected(0, w_status_11, PROTO_ELIMIT, "result: field \"status\": 13 is not in 0..12");
    assert_result_rejected(0, w_status_negative, PROTO_ELIMIT, "field \"status\"");
}

static void test_result_strings_must_fit_and_have_no_nul(void **state)
{
    (void)state;
    assert_result_rejected(8, w_name_256, PROTO_ELIMIT, "field \"name\": string of 256 bytes");
    assert_result_rejected(9, w_message_192, PROTO_ELIMIT, "field \"message\": string of 192 bytes");
    assert_result_rejected(8, w_str_with_nul, PROTO_EMALFORMED, "NUL");
}

static void test_result_must_have_ten_items(void **state)
{
    (void)state;
    struct wire w;
    struct proto_result r;
    struct proto_error err;
    w_init(&w);
    w_array(&w, 9);
    for (int i = 0; i < 9; i++)
        w_uint(&w, 0);
    assert_int_equal(proto_result_decode(w.sb.data, w.sb.size, &r, &err), PROTO_EMALFORMED);
    assert_message_has(&err, "array of 9 items, expected 10");
    w_free(&w);
}

static void test_decoder_accepts_a_null_error_pointer(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0x90};
    struct proto_cmd c;
    assert_int_equal(proto_cmd_decode(bytes, sizeof bytes, &c, NULL), PROTO_EMALFORMED);
}

/* ---- the msgpack reader ---- */

static void test_mp_reads_every_integer_width(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {
        0x7f,                                     /* 127 */
        0xe0,                                     /* -32 */
        0xcc, 0xff,                               /* 255 */
        0xcd, 0xff, 0xff,                         /* 65535 */
        0xce, 0xff, 0xff, 0xff, 0xff,             /* 4294967295 */
        0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* INT64_MAX */
        0xd0, 0x80,                               /* -128 */
        0xd1, 0x80, 0x00,                         /* -32768 */
        0xd2, 0x80, 0x00, 0x00, 0x00,             /* INT32_MIN */
        0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,          /* INT64_MIN */
        0xd0, 0x05,                               /* 5 as int8 */
    };
    static const int64_t want[] = {127, -32, 255, 65535, 4294967295LL, INT64_MAX,
                                   -128, -32768, INT32_MIN, INT64_MIN, 5};
    struct mp_reader r;
    mp_reader_init(&r, bytes, sizeof bytes);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t v;
        assert_int_equal(mp_int_read(&r, &v), MP_OK);
        assert_true(v == want[i]);
    }
    assert_int_equal(mp_reader_left(&r), 0);
}

static void test_mp_reads_booleans_and_nil(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0xc3, 0xc2, 0xc0, 0x00};
    struct mp_reader r;
    bool b = false;
    mp_reader_init(&r, bytes, sizeof bytes);
    assert_int_equal(mp_bool_read(&r, &b), MP_OK);
    assert_true(b);
    assert_int_equal(mp_bool_read(&r, &b), MP_OK);
    assert_false(b);
    assert_true(mp_nil_peek(&r));
    assert_int_equal(mp_bool_read(&r, &b), MP_ETYPE);
    assert_int_equal(mp_nil_read(&r), MP_OK);
    assert_false(mp_nil_peek(&r));
    assert_int_equal(mp_bool_read(&r, &b), MP_ETYPE); /* 0 is not false */
    assert_string_equal(mp_type_name(&r), "integer");
    r.pos = r.end;
    assert_string_equal(mp_type_name(&r), "end of input");
    assert_int_equal(mp_nil_read(&r), MP_ETRUNC);
}

static void test_mp_refuses_integers_that_do_not_fit(void **state)
{
    (void)state;
    static const uint8_t too_big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t negative[] = {0xff};
    struct mp_reader r;
    int64_t i;
    uint64_t u;
    mp_reader_init(&r, too_big, sizeof too_big);
    assert_int_equal(mp_int_read(&r, &i), MP_ERANGE);
    assert_int_equal(mp_reader_left(&r), sizeof too_big); /* cursor unchanged */
    assert_int_equal(mp_uint_read(&r, &u), MP_OK);
    assert_true(u == (uint64_t)INT64_MAX + 1);
    mp_reader_init(&r, negative, sizeof negative);
    assert_int_equal(mp_uint_read(&r, &u), MP_ERANGE);
    assert_int_equal(mp_reader_left(&r), 1);
}

static void test_mp_failed_read_leaves_the_cursor(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0xa3, 'a', 'b'}; /* str of 3, 2 present */
    struct mp_reader r;
    const char *p;
    uint32_t n;
    int64_t v;
    mp_reader_init(&r, bytes, sizeof bytes);
    assert_int_equal(mp_str_read(&r, &p, &n), MP_ETRUNC);
    assert_int_equal(mp_int_read(&r, &v), MP_ETYPE);
    assert_int_equal(mp_nil_read(&r), MP_ETYPE);
    assert_false(mp_nil_peek(&r));
    assert_int_equal(mp_reader_left(&r), 3);
    assert_string_equal(mp_type_name(&r), "string");
}

static void test_mp_refuses_counts_larger_than_the_bytes_left(void **state)
{
    (void)state;
    static const uint8_t array3[] = {0x93, 0x01, 0x02};      /* 3 items, 2 bytes */
    static const uint8_t map2[] = {0x82, 0x01, 0x02, 0x03}; /* 2 pairs, 3 bytes */
    static const uint8_t map1[] = {0x81, 0x01, 0x02};
    struct mp_reader r;
    uint32_t n;
    mp_reader_init(&r, array3, sizeof array3);
    assert_int_equal(mp_array_read(&r, &n), MP_ECOUNT);
    assert_int_equal(n, 3);
    assert_int_equal(mp_reader_left(&r), sizeof array3);
    mp_reader_init(&r, map2, sizeof map2);
    assert_int_equal(mp_map_read(&r, &n), MP_ECOUNT);
    mp_reader_init(&r, map1, sizeof map1);
    assert_int_equal(mp_map_read(&r, &n), MP_OK);
    assert_int_equal(n, 1);
}

static void test_mp_skip_passes_every_kind_of_value(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {
        0x93,                               /* [ */
        0xcb, 1, 2, 3, 4, 5, 6, 7, 8,       /*   float64, */
        0x82,                               /*   { */
        0xa1, 'k', 0xc4, 0x02, 0xaa, 0xbb,  /*     "k": bin, */
        0xd4, 0x01, 0x00,                   /*     fixext1: */
        0xc7, 0x02, 0x05, 0xaa, 0xbb,       /*       ext8 }, */
        0x91, 0xc3,                         /*   [true] ] */
        0xc0,                               /* then a nil */
    };
    struct mp_reader r;
    mp_reader_init(&r, bytes, sizeof bytes);
    assert_int_equal(mp_value_skip(&r, 8), MP_OK);
    assert_int_equal(mp_reader_left(&r), 1);
    assert_int_equal(mp_nil_read(&r), MP_OK);
}

static void test_mp_skip_refuses_nesting_deeper_than_asked(void **state)
{
    (void)state;
    static const uint8_t nested3[] = {0x91, 0x91, 0x91, 0x01};
    static const uint8_t empty3[] = {0x91, 0x91, 0x90};
    struct mp_reader r;
    mp_reader_init(&r, nested3, sizeof nested3);
    assert_int_equal(mp_value_skip(&r, 2), MP_EDEPTH);
    assert_int_equal(mp_reader_left(&r), sizeof nested3);
    assert_int_equal(mp_value_skip(&r, 3), MP_OK);
    mp_reader_init(&r, empty3, sizeof empty3);
    assert_int_equal(mp_value_skip(&r, 2), MP_EDEPTH);
    assert_int_equal(mp_value_skip(&r, 3), MP_OK);
}

static void test_mp_skip_survives_a_deep_bomb(void **state)
{
    (void)state;
    static uint8_t bytes[100000];
    struct mp_reader r;
    memset(bytes, 0x91, sizeof bytes);
    mp_reader_init(&r, bytes, sizeof bytes);
    assert_int_equal(mp_value_skip(&r, UINT32_MAX), MP_EDEPTH);
    bytes[0] = 0xc1;
    assert_int_equal(mp_value_skip(&r, UINT32_MAX), MP_ETYPE);
}

/* ---- names ---- */

static void test_names_of_command_types(void **state)
{
    (void)state;
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_ACCOUNT_CREATE), "account_create");
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_RESERVE), "reserve");
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_POLICY_SET), "policy_set");
    assert_string_equal(proto_cmd_type_name(0), "unknown");
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_TYPE_COUNT), "unknown");
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_RATE_LIMIT_SET), "rate_limit_set");
    assert_string_equal(proto_cmd_type_name(PROTO_CMD_APPROVAL_SET), "approval_set");
    for (int t = 1; t < PROTO_CMD_TYPE_COUNT; t++)
        assert_int_equal(strcmp(proto_cmd_type_name(t), "unknown") != 0,
                         proto_cmd_type_is_known(t));
}

static void test_names_of_statuses(void **state)
{
    (void)state;
    static const char *const want[PROTO_STATUS_COUNT] = {
        "ok", "invalid", "not_found", "exists", "budget_exceeded", "account_frozen",
        "account_closed", "grant_expired", "period_closed", "forbidden", "conflict",
        "rate_limited", "approval_required"};
    for (int s = 0; s < PROTO_STATUS_COUNT; s++)
        assert_string_equal(proto_status_name(s), want[s]);
    assert_string_equal(proto_status_name(-1), "unknown");
    assert_string_equal(proto_status_name(PROTO_STATUS_COUNT), "unknown");
}

static void test_period_names_parse_back(void **state)
{
    (void)state;
    static const char *const names[] = {"none", "day", "week", "month"};
    for (int p = 0; p < 4; p++) {
        assert_string_equal(proto_period_name(p), names[p]);
        assert_int_equal(proto_period_parse(names[p]), p);
    }
    assert_int_equal(proto_period_parse("year"), -1);
    assert_int_equal(proto_period_parse("Month"), -1);
    assert_int_equal(proto_period_parse(""), -1);
    assert_int_equal(proto_period_parse(NULL), -1);
}

static void test_names_of_posting_kinds(void **state)
{
    (void)state;
    assert_string_equal(proto_kind_name(PROTO_KIND_SPEND), "spend");
    assert_string_equal(proto_kind_name(PROTO_KIND_CHARGEBACK), "chargeback");
    assert_string_equal(proto_kind_name(PROTO_KIND_GRANT), "grant");
    assert_string_equal(proto_kind_name(PROTO_KIND_ADJUSTMENT), "adjustment");
    assert_string_equal(proto_kind_name(0), "unknown");
}

static void test_str_eq_compares_bytes_and_length(void **state)
{
    (void)state;
    struct proto_str s = {"abcdef", 3};
    struct proto_str empty = {NULL, 0};
    assert_true(proto_str_eq(s, "abc"));
    assert_false(proto_str_eq(s, "ab"));
    assert_false(proto_str_eq(s, "abcd"));
    assert_true(proto_str_eq(empty, ""));
    assert_false(proto_str_eq(empty, "a"));
    assert_int_equal(proto_str_c("hello").len, 5);
    assert_int_equal(proto_str_c(NULL).len, 0);
}

/* ---- JSON view of maps ---- */

static int map_json(const struct proto_map *m, char *out, size_t cap)
{
    struct proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(proto_map_encode(&b, m), 0);
    int n = proto_map_json(b.data, b.len, out, cap);
    proto_buf_free(&b);
    return n;
}

static void test_json_of_a_map_is_a_compact_object(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[128];
    map_add(&m, "team", "search");
    map_add(&m, "env", "prod");
    assert_int_equal(map_json(&m, out, sizeof out), 30);
    assert_string_equal(out, "{\"team\":\"search\",\"env\":\"prod\"}");
}

static void test_json_escapes_quotes_backslashes_and_controls(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[128];
    map_add(&m, "q\"b\\", "\n\t\x01\x1f\x7f");
    assert_true(map_json(&m, out, sizeof out) > 0);
    assert_string_equal(out, "{\"q\\\"b\\\\\":\"\\u000a\\u0009\\u0001\\u001f\\u007f\"}");
}

static void test_json_escapes_nul_bytes(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[64];
    m.count = 1;
    m.kv[0].key = (struct proto_str){"a\0b", 3};
    m.kv[0].value = s_("");
    assert_true(map_json(&m, out, sizeof out) > 0);
    assert_string_equal(out, "{\"a\\u0000b\":\"\"}");
}

static void test_json_passes_valid_utf8_through(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[64];
    /* é, €, U+1F600 */
    map_add(&m, "k", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_true(map_json(&m, out, sizeof out) > 0);
    assert_string_equal(out, "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
}

static void test_json_escapes_invalid_utf8_bytes_one_by_one(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[128];
    /* lone continuation, overlong '/', surrogate U+D800, truncated 3-byte */
    map_add(&m, "k", "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
    assert_true(map_json(&m, out, sizeof out) > 0);
    assert_string_equal(out, "{\"k\":\"\\u0080|\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|"
                             "\\u00e2\\u0082\"}");
}

static void test_json_of_nothing_is_an_empty_object(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[8];
    assert_int_equal(proto_map_json(NULL, 0, out, sizeof out), 2);
    assert_string_equal(out, "{}");
    assert_int_equal(map_json(&m, out, sizeof out), 2);
    assert_string_equal(out, "{}");
}

static void test_json_refuses_what_does_not_fit(void **state)
{
    (void)state;
    struct proto_map m = {0};
    char out[32];
    map_add(&m, "team", "search"); /* {"team":"search"} is 17 bytes */
    assert_int_equal(map_json(&m, out, 17), -1);
    assert_string_equal(out, "");
    assert_int_equal(map_json(&m, out, 18), 17);
    assert_int_equal(proto_map_json(NULL, 0, out, 2), -1);
}

static void test_json_refuses_what_is_not_a_string_map(void **state)
{
    (void)state;
    static const uint8_t int_value[] = {0x81, 0xa1, 'k', 0x01};
    static const uint8_t array[] = {0x90};
    static const uint8_t trailing[] = {0x80, 0xc0};
    static const uint8_t truncated[] = {0x81, 0xa1, 'k'};
    char out[64];
    assert_int_equal(proto_map_json(int_value, sizeof int_value, out, sizeof out), -1);
    assert_int_equal(proto_map_json(array, sizeof array, out, sizeof out), -1);
    assert_int_equal(proto_map_json(trailing, sizeof trailing, out, sizeof out), -1);
    assert_int_equal(proto_map_json(truncated, sizeof truncated, out, sizeof out), -1);
}

static void test_json_reads_a_decoded_map_raw(void **state)
{
    (void)state;
    struct proto_cmd c = sample_cmd(PROTO_CMD_COMMIT), d;
    struct proto_buf b;
    struct proto_error err;
    char out[256];
    proto_buf_init(&b);
    assert_int_equal(proto_cmd_encode(&b, &c), 0);
    assert_int_equal(proto_cmd_decode(b.data, b.len, &d, &err), 0);
    assert_true(proto_map_json(d.u.commit.metadata.raw.ptr, d.u.commit.metadata.raw.len, out,
                               sizeof out) > 0);
    assert_string_equal(out, "{\"team\":\"search\",\"model\":\"gpt-4o \\\"mini\\\" \xc3\xa9\","
                             "\"\":\"empty key\"}");
    proto_buf_free(&b);
}

/* mp_array_head writes the smallest form that holds the count, and the
 * reader reads the same count back (no wrap at 16 or 65536). */
static void test_mp_array_head_round_trips_at_every_width(void **state)
{
    (void)state;
    static const struct { uint32_t count; size_t len; } cases[] = {
        {0, 1}, {15, 1}, {16, 3}, {65535, 3}, {65536, 5}, {UINT32_MAX, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t head[MP_ARRAY_HEAD_MAX];
        size_t len = mp_array_head(head, cases[i].count);
        assert_int_equal(len, cases[i].len);
        struct mp_reader r;
        uint32_t n = 0;
        mp_reader_init(&r, head, len);
        /* The elements are absent: a count the buffer cannot hold is
         * MP_ECOUNT, which still reports the announced count. */
        int rc = mp_array_read(&r, &n);
        assert_true(rc == MP_OK || rc == MP_ECOUNT);
        assert_int_equal(n, cases[i].count);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_create_round_trips_every_field),
        cmocka_unit_test(test_account_update_round_trips_every_field),
        cmocka_unit_test(test_account_freeze_round_trips_every_field),
        cmocka_unit_test(test_account_unfreeze_round_trips_every_field),
        cmocka_unit_test(test_account_close_round_trips_every_field),
        cmocka_unit_test(test_reserve_round_trips_every_field),
        cmocka_unit_test(test_commit_round_trips_every_field),
        cmocka_unit_test(test_release_round_trips_every_field),
        cmocka_unit_test(test_expire_round_trips_every_field),
        cmocka_unit_test(test_transfer_round_trips_every_field),
        cmocka_unit_test(test_grant_create_round_trips_every_field),
        cmocka_unit_test(test_grant_close_round_trips_every_field),
        cmocka_unit_test(test_period_close_round_trips_every_field),
        cmocka_unit_test(test_price_set_round_trips_every_field),
        cmocka_unit_test(test_key_create_round_trips_every_field),
        cmocka_unit_test(test_key_revoke_round_trips_every_field),
        cmocka_unit_test(test_policy_set_round_trips_every_field),
        cmocka_unit_test(test_breaker_set_round_trips_every_field),
        cmocka_unit_test(test_alert_set_round_trips_every_field),
        cmocka_unit_test(test_event_ack_round_trips_every_field),
        cmocka_unit_test(test_account_update_unset_ints_and_no_tags_travel_as_nil),
        cmocka_unit_test(test_account_create_with_empty_tags_keeps_has_tags),
        cmocka_unit_test(test_cap_none_and_negative_amounts_round_trip),
        cmocka_unit_test(test_full_maps_and_lists_round_trip),
        cmocka_unit_test(test_strings_at_their_limits_round_trip),
        cmocka_unit_test(test_result_round_trips_every_field),
        cmocka_unit_test(test_result_with_longest_name_and_message_round_trips),
        cmocka_unit_test(test_empty_result_round_trips),
        cmocka_unit_test(test_entry_of_4096_commands_round_trips),
        cmocka_unit_test(test_encoder_writes_what_msgpack_c_writes),
        cmocka_unit_test(test_empty_entry_round_trips),
        cmocka_unit_test(test_encoders_append_to_the_buffer),
        cmocka_unit_test(test_decoded_map_raw_is_the_exact_map_bytes),
        cmocka_unit_test(test_decoded_strings_point_into_the_input),
        cmocka_unit_test(test_non_canonical_integer_widths_are_accepted),
        cmocka_unit_test(test_entry_truncated_at_every_offset_is_refused),
        cmocka_unit_test(test_command_truncated_at_every_offset_is_refused),
        cmocka_unit_test(test_result_truncated_at_every_offset_is_refused),
        cmocka_unit_test(test_entry_array_count_bomb_is_refused),
        cmocka_unit_test(test_command_array_count_bomb_is_refused),
        cmocka_unit_test(test_map_count_bomb_is_refused),
        cmocka_unit_test(test_string_length_bomb_is_refused),
        cmocka_unit_test(test_nested_arrays_in_a_field_are_refused),
        cmocka_unit_test(test_nested_map_as_a_map_value_is_refused),
        cmocka_unit_test(test_trailing_bytes_after_an_entry_are_refused),
        cmocka_unit_test(test_trailing_bytes_after_a_command_are_refused),
        cmocka_unit_test(test_trailing_bytes_after_a_result_are_refused),
        cmocka_unit_test(test_wrong_version_byte_is_refused),
        cmocka_unit_test(test_empty_input_is_refused),
        cmocka_unit_test(test_entry_must_be_a_pair),
        cmocka_unit_test(test_entry_timestamp_must_be_an_integer),
        cmocka_unit_test(test_batch_larger_than_cmds_max_is_refused),
        cmocka_unit_test(test_batch_larger_than_batch_max_is_refused),
        cmocka_unit_test(test_entry_over_the_byte_limit_is_refused),
        cmocka_unit_test(test_error_names_command_index_type_field_and_limit),
        cmocka_unit_test(test_unknown_command_type_is_refused_by_number),
        cmocka_unit_test(test_command_type_must_be_an_integer),
        cmocka_unit_test(test_empty_command_array_is_refused),
        cmocka_unit_test(test_command_must_be_an_array),
        cmocka_unit_test(test_role_must_be_agent_or_admin),
        cmocka_unit_test(test_command_with_a_missing_field_is_refused),
        cmocka_unit_test(test_command_type_without_a_schema_row_is_unknown),
        cmocka_unit_test(test_reserve_without_tokens_decodes_and_tokens_round_trip),
        cmocka_unit_test(test_result_retry_after_is_trailing_optional),
        cmocka_unit_test(test_command_with_an_extra_field_is_refused),
        cmocka_unit_test(test_string_where_an_integer_belongs_is_refused),
        cmocka_unit_test(test_nil_in_a_required_integer_is_refused),
        cmocka_unit_test(test_float_and_bool_are_not_integers),
        cmocka_unit_test(test_binary_where_a_string_belongs_is_refused),
        cmocka_unit_test(test_integer_where_a_string_belongs_is_refused),
        cmocka_unit_test(test_integer_beyond_int64_is_refused),
        cmocka_unit_test(test_extreme_int64_values_are_accepted),
        cmocka_unit_test(test_negative_id_is_refused),
        cmocka_unit_test(test_name_over_the_limit_is_refused),
        cmocka_unit_test(test_idempotency_key_over_the_limit_is_refused),
        cmocka_unit_test(test_free_text_over_the_limit_is_refused),
        cmocka_unit_test(test_month_must_be_exactly_seven_bytes),
        cmocka_unit_test(test_key_hash_must_be_32_bytes_of_binary),
        cmocka_unit_test(test_map_over_the_entry_limit_is_refused),
        cmocka_unit_test(test_map_key_over_the_limit_is_refused),
        cmocka_unit_test(test_map_value_over_the_limit_is_refused),
        cmocka_unit_test(test_map_of_non_strings_is_refused),
        cmocka_unit_test(test_duplicate_map_keys_are_refused),
        cmocka_unit_test(test_nil_map_is_refused_where_not_optional),
        cmocka_unit_test(test_list_over_the_item_limit_is_refused),
        cmocka_unit_test(test_list_item_over_the_length_limit_is_refused),
        cmocka_unit_test(test_result_status_must_be_known),
        cmocka_unit_test(test_result_strings_must_fit_and_have_no_nul),
        cmocka_unit_test(test_result_must_have_ten_items),
        cmocka_unit_test(test_decoder_accepts_a_null_error_pointer),
        cmocka_unit_test(test_mp_reads_every_integer_width),
        cmocka_unit_test(test_mp_array_head_round_trips_at_every_width),
        cmocka_unit_test(test_mp_reads_booleans_and_nil),
        cmocka_unit_test(test_mp_refuses_integers_that_do_not_fit),
        cmocka_unit_test(test_mp_failed_read_leaves_the_cursor),
        cmocka_unit_test(test_mp_refuses_counts_larger_than_the_bytes_left),
        cmocka_unit_test(test_mp_skip_passes_every_kind_of_value),
        cmocka_unit_test(test_mp_skip_refuses_nesting_deeper_than_asked),
        cmocka_unit_test(test_mp_skip_survives_a_deep_bomb),
        cmocka_unit_test(test_names_of_command_types),
        cmocka_unit_test(test_names_of_statuses),
        cmocka_unit_test(test_period_names_parse_back),
        cmocka_unit_test(test_names_of_posting_kinds),
        cmocka_unit_test(test_str_eq_compares_bytes_and_length),
        cmocka_unit_test(test_json_of_a_map_is_a_compact_object),
        cmocka_unit_test(test_json_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_json_escapes_nul_bytes),
        cmocka_unit_test(test_json_passes_valid_utf8_through),
        cmocka_unit_test(test_json_escapes_invalid_utf8_bytes_one_by_one),
        cmocka_unit_test(test_json_of_nothing_is_an_empty_object),
        cmocka_unit_test(test_json_refuses_what_does_not_fit),
        cmocka_unit_test(test_json_refuses_what_is_not_a_string_map),
        cmocka_unit_test(test_json_reads_a_decoded_map_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
