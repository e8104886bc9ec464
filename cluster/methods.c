/*
 * methods.c — the RPC methods of docs/rpc.md other than the handshake:
 * apply, read, status, hash, checkpoint, membership, snapshot, backup and
 * restore.  A table maps names to handlers and the least role allowed.
 *
 * Linearizable reads wait for a raft barrier; all the reads that arrive in
 * one loop turn share one barrier (methods_flush), so reads cost one log
 * write per turn, not one each.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/methods_watch.h"
#include "cluster/server.h"
#include "proto/client.h"

/* ---- apply ---- */

static bool methods_gateway_may(const struct proto_cmd *cmd)
{
    switch (cmd->type) {
    case PROTO_CMD_RESERVE:
    case PROTO_CMD_COMMIT:
    case PROTO_CMD_RELEASE:
    case PROTO_CMD_GRANT_CREATE:
    case PROTO_CMD_GRANT_CLOSE:
        return true;
    case PROTO_CMD_TRANSFER:
        return cmd->u.transfer.kind == PROTO_KIND_CHARGEBACK;
    default:
        return false;
    }
}

static void method_apply(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                         uint32_t count)
{
    const uint8_t *p = NULL;
    uint32_t len = 0;
    if (count != 1 || mp_bin_read(r, &p, &len) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "apply takes [command as bin]");
        return;
    }
    struct proto_cmd cmd;
    struct proto_error perr;
    if (proto_cmd_decode(p, len, &cmd, &perr) != 0) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, perr.message);
        return;
    }
    if (c->role == CONN_ROLE_GATEWAY && !methods_gateway_may(&cmd)) {
        conn_reply_error(c, id, RPC_E_FORBIDDEN, "the gateway role may not apply this command");
        return;
    }
    cmd.role = c->role == CONN_ROLE_ADMIN ? PROTO_ROLE_ADMIN : PROTO_ROLE_AGENT;
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    conn_hold(c);
    batch_submit(n, c, id, &cmd);
}

/* ---- reads ---- */

static const char *methods_status_name(int s)
{
    static const char *const names[] = {"active", "frozen", "closed"};
    return s >= 0 && s <= 2 ? names[s] : "unknown";
}

static const char *methods_res_status_name(int s)
{
    static const char *const names[] = {"open", "committed", "released", "expired", "charged"};
    return s >= 0 && s <= 4 ? names[s] : "unknown";
}

void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    rpc_pack_str(pk, k);
    rpc_pack_str(pk, v);
}

void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    rpc_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    rpc_pack_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* A stored string map, as the msgpack map it is stored as. */
static void pack_kv_map(msgpack_packer *pk, const char *k, const struct ledger_map_raw *m)
{
    rpc_pack_str(pk, k);
    if (m->len == 0)
        msgpack_pack_map(pk, 0);
    else
        msgpack_pack_bin_body(pk, m->data, m->len); /* raw: already msgpack */
}

static void pack_account_fields(msgpack_packer *pk, const struct ledger_account_view *a,
                                uint32_t extra)
{
    msgpack_pack_map(pk, 14 + extra);
    pack_kv_str(pk, "name", a->name);
    pack_kv_int(pk, "id", (int64_t)a->id);
    pack_kv_int(pk, "cap_micros", a->cap_micros);
    pack_kv_str(pk, "period", proto_period_name(a->period));
    pack_kv_int(pk, "tz_offset_min", a->tz_offset_min);
    pack_kv_str(pk, "status", methods_status_name(a->status));
    pack_kv_bool(pk, "is_grant", a->is_grant);
    pack_kv_int(pk, "period_start_ms", a->period_start_ms);
    pack_kv_int(pk, "period_end_ms", a->period_end_ms == INT64_MAX ? -1 : a->period_end_ms);
    pack_kv_int(pk, "spent_micros", a->spent_micros);
    pack_kv_int(pk, "reserved_micros", a->reserved_micros);
    pack_kv_int(pk, "available_micros",
                a->available_micros == PROTO_UNLIMITED ? -1 : a->available_micros);
    pack_kv_map(pk, "tags", &a->tags);
    pack_kv_str(pk, "frozen_reason", a->frozen_reason);
}

static void pack_account(msgpack_packer *pk, const struct ledger_account_view *a)
{
    pack_account_fields(pk, a, 0);
}

struct read_ctx {
    msgpack_packer *pk;
    uint32_t count;
    struct proto_buf *items; /* packed items, counted */
    msgpack_packer item_pk;
};

static int read_account_cb(void *arg, const struct ledger_account_view *a)
{
    struct read_ctx *x = arg;
    pack_account(&x->item_pk, a);
    x->count++;
    return 0;
}

static void pack_price(msgpack_packer *pk, const struct ledger_price_view *p)
{
    msgpack_pack_map(pk, 5);
    pack_kv_str(pk, "model", p->model);
    pack_kv_int(pk, "input_micros", p->input_micros);
    pack_kv_int(pk, "output_micros", p->output_micros);
    pack_kv_int(pk, "cached_micros", p->cached_micros);
    pack_kv_int(pk, "cache_write_micros", p->cache_write_micros);
}

static int read_price_cb(void *arg, const struct ledger_price_view *p)
{
    struct read_ctx *x = arg;
    pack_price(&x->item_pk, p);
    x->count++;
    return 0;
}

static int read_posting_cb(void *arg, const struct ledger_posting_view *p)
{
    struct read_ctx *x = arg;
    msgpack_packer *pk = &x->item_pk;
    msgpack_pack_map(pk, 9);
    pack_kv_int(pk, "id", (int64_t)p->id);
    pack_kv_int(pk, "ts_ms", p->ts_ms);
    pack_kv_str(pk, "kind", proto_kind_name(p->kind));
    pack_kv_str(pk, "debit", p->debit);
    pack_kv_str(pk, "credit", p->credit);
    pack_kv_int(pk, "amount_micros", p->amount_micros);
    pack_kv_int(pk, "reservation_id", (int64_t)p->reservation_id);
    pack_kv_int(pk, "overrun_micros", p->overrun_micros);
    pack_kv_map(pk, "metadata", &p->metadata);
    x->count++;
    return 0;
}

static int read_period_cb(void *arg, const char *month, int64_t closed_at_ms)
{
    struct read_ctx *x = arg;
    msgpack_pack_map(&x->item_pk, 2);
    pack_kv_str(&x->item_pk, "month", month);
    pack_kv_int(&x->item_pk, "closed_at_ms", closed_at_ms);
    x->count++;
    return 0;
}

static int proto_buf_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len) == 0 ? 0 : -1;
}

/* Answer a list query: {key: [items], applied_index, now_ms}. */
static int read_rate_limit_cb(void *arg, const struct ledger_rate_limit_view *v)
{
    struct read_ctx *x = arg;
    msgpack_packer *pk = &x->item_pk;
    msgpack_pack_map(pk, 11);
    pack_kv_str(pk, "account", v->account);
    pack_kv_str(pk, "meta_key", v->meta_key);
    pack_kv_str(pk, "meta_value", v->meta_value);
    pack_kv_int(pk, "rpm", v->rpm);
    pack_kv_int(pk, "tpm", v->tpm);
    pack_kv_int(pk, "tph", v->tph);
    pack_kv_int(pk, "tpd", v->tpd);
    pack_kv_int(pk, "requests_minute", v->requests_minute);
    pack_kv_int(pk, "tokens_minute", v->tokens_minute);
    pack_kv_int(pk, "tokens_hour", v->tokens_hour);
    pack_kv_int(pk, "tokens_day", v->tokens_day);
    x->count++;
    return 0;
}

static void read_reply_list(struct node *n, struct conn *c, uint32_t id, const char *key,
                            struct read_ctx *x)
{
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(c, id, &start, &pk))
        return;
    msgpack_pack_map(&pk, 3);
    rpc_pack_str(&pk, key);
    msgpack_pack_array(&pk, x->count);
    msgpack_pack_bin_body(&pk, x->items->data, x->items->len); /* raw append */
    pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
    pack_kv_int(&pk, "now_ms", ledger_now_ms(n->ledger));
    conn_reply_end(c, start);
}

/* Run one read query against the local ledger and answer it. */
static void read_answer(struct node *n, struct conn *c, uint32_t id, const uint8_t *params,
                        size_t params_len)
{
    struct mp_reader r;
    uint32_t count = 0;
    mp_reader_init(&r, params, params_len);
    const char *q = NULL, *cons = NULL;
    uint32_t ql = 0, cl = 0;
    if (mp_array_read(&r, &count) != MP_OK || count < 2 || mp_str_read(&r, &q, &ql) != MP_OK ||
        mp_str_read(&r, &cons, &cl) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "read takes [query, consistency, args...]");
        return;
    }
    struct proto_str query = {q, ql};
    struct ledger_error err = {0};
    msgpack_packer pk;
    size_t start;
    int rc = 0;
    char arg[PROTO_NAME_MAX + 1] = "";
    const char *s = NULL;
    uint32_t sl = 0;
    uint64_t u = 0;

    struct proto_buf items;
    proto_buf_init(&items);
    struct read_ctx x = {.items = &items};
    msgpack_packer_init(&x.item_pk, &items, proto_buf_write);

    if (proto_str_eq(query, "account") || proto_str_eq(query, "accounts") ||
        proto_str_eq(query, "price") || proto_str_eq(query, "breaker")) {
        if (count != 3 || mp_str_read(&r, &s, &sl) != MP_OK || sl > PROTO_NAME_MAX) {
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "this query takes one name");
            goto out;
        }
        memcpy(arg, s, sl);
        arg[sl] = '\0';
    }
    if (proto_str_eq(query, "account")) {
        struct ledger_account_view *v = malloc(sizeof *v);
        rc = v ? ledger_account_get(n->ledger, arg, v, &err) : LEDGER_ENOMEM;
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            pack_account_fields(&pk, v, 2);
            pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
            pack_kv_int(&pk, "now_ms", ledger_now_ms(n->ledger));
            conn_reply_end(c, start);
        }
        free(v);
    } else if (proto_str_eq(query, "accounts")) {
        rc = ledger_account_list(n->ledger, arg, read_account_cb, &x, &err);
        if (rc == 0)
            read_reply_list(n, c, id, "accounts", &x);
    } else if (proto_str_eq(query, "price")) {
        struct ledger_price_view p;
        rc = ledger_price_get(n->ledger, arg, &p, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            pack_price(&pk, &p);
            conn_reply_end(c, start);
        }
    } else if (proto_str_eq(query, "prices")) {
        rc = ledger_price_list(n->ledger, read_price_cb, &x, &err);
        if (rc == 0)
            read_reply_list(n, c, id, "prices", &x);
    } else if (proto_str_eq(query, "reservation")) {
        struct ledger_reservation_view *v = malloc(sizeof *v);
        if (count != 3 || mp_uint_read(&r, &u) != MP_OK || !v) {
            free(v);
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "reservation takes [id]");
            goto out;
        }
        rc = ledger_reservation_get(n->ledger, u, v, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 11);
            pack_kv_int(&pk, "id", (int64_t)v->id);
            pack_kv_str(&pk, "account", v->account);
            pack_kv_str(&pk, "payee", v->payee);
            pack_kv_int(&pk, "amount_micros", v->amount_micros);
            pack_kv_int(&pk, "created_ms", v->created_ms);
            pack_kv_int(&pk, "expires_at_ms", v->expires_at_ms);
            pack_kv_str(&pk, "on_expire", v->on_expire ? "charge" : "release");
            pack_kv_str(&pk, "status", methods_res_status_name(v->status));
            pack_kv_int(&pk, "actual_micros", v->actual_micros);
            pack_kv_int(&pk, "transfer_id", (int64_t)v->transfer_id);
            pack_kv_map(&pk, "metadata", &v->metadata);
            conn_reply_end(c, start);
        }
        free(v);
    } else if (proto_str_eq(query, "grant")) {
        struct ledger_grant_view g;
        if (count != 3 || mp_uint_read(&r, &u) != MP_OK) {
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "grant takes [id]");
            goto out;
        }
        rc = ledger_grant_get(n->ledger, u, &g, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 8);
            pack_kv_int(&pk, "id", (int64_t)g.id);
            pack_kv_str(&pk, "account", g.account);
            pack_kv_str(&pk, "workflow", g.workflow);
            pack_kv_int(&pk, "amount_micros", g.amount_micros);
            pack_kv_int(&pk, "expires_at_ms", g.expires_at_ms);
            pack_kv_bool(&pk, "is_open", g.is_open);
            pack_kv_int(&pk, "spent_micros", g.spent_micros);
            pack_kv_int(&pk, "returned_micros", g.returned_micros);
            conn_reply_end(c, start);
        }
    } else if (proto_str_eq(query, "key_by_hash")) {
        const uint8_t *h = NULL;
        uint32_t hl = 0;
        struct ledger_key_view k;
        if (count != 3 || mp_bin_read(&r, &h, &hl) != MP_OK || hl != PROTO_HASH_BYTES) {
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "key_by_hash takes [32-byte bin]");
            goto out;
        }
        rc = ledger_key_get_by_hash(n->ledger, h, &k, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 4);
            pack_kv_str(&pk, "id", k.id);
            pack_kv_str(&pk, "account", k.account);
            pack_kv_str(&pk, "role", k.role == PROTO_ROLE_ADMIN ? "admin" : "agent");
            pack_kv_bool(&pk, "is_revoked", k.is_revoked);
            conn_reply_end(c, start);
        }
    } else if (proto_str_eq(query, "policy")) {
        struct ledger_policy_view p;
        int64_t above = PROTO_CAP_NONE;
        rc = ledger_policy_get(n->ledger, &p, &err);
        if (rc == 0)
            rc = ledger_approval_get(n->ledger, &above, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 2);
            rpc_pack_str(&pk, "required_metadata");
            msgpack_pack_array(&pk, p.required_count);
            for (uint32_t i = 0; i < p.required_count; i++)
                rpc_pack_str(&pk, p.required[i]);
            pack_kv_int(&pk, "approval_above_micros", above);
            conn_reply_end(c, start);
        }
    } else if (proto_str_eq(query, "rate_limits")) {
        rc = ledger_rate_limit_list(n->ledger, read_rate_limit_cb, &x, &err);
        if (rc == 0)
            read_reply_list(n, c, id, "rate_limits", &x);
    } else if (proto_str_eq(query, "estimate")) {
        /* [workflow, model]: model "" = any.  A small read: fine "stale". */
        char workflow[PROTO_TEXT_MAX + 1], model[PROTO_MAP_VALUE_MAX + 1];
        const char *m = NULL;
        uint32_t ml = 0;
        if (count != 4 || mp_str_read(&r, &s, &sl) != MP_OK || sl > PROTO_TEXT_MAX ||
            mp_str_read(&r, &m, &ml) != MP_OK || ml > PROTO_MAP_VALUE_MAX) {
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "estimate takes [workflow, model]");
            goto out;
        }
        memcpy(workflow, s, sl);
        workflow[sl] = '\0';
        memcpy(model, m, ml);
        model[ml] = '\0';
        struct ledger_estimate_view e;
        rc = ledger_estimate_get(n->ledger, workflow, model, &e, &err);
        if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 8);
            pack_kv_str(&pk, "workflow", workflow);
            pack_kv_str(&pk, "model", e.model);
            pack_kv_int(&pk, "p50_micros", e.p50_micros);
            pack_kv_int(&pk, "p90_micros", e.p90_micros);
            pack_kv_int(&pk, "samples", (int64_t)e.samples);
            pack_kv_int(&pk, "seen", (int64_t)e.seen);
            pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
            pack_kv_int(&pk, "now_ms", ledger_now_ms(n->ledger));
            conn_reply_end(c, start);
        }
    } else if (proto_str_eq(query, "journal")) {
        int64_t y = 0, m = 0;
        if (count != 4 || mp_int_read(&r, &y) != MP_OK || mp_int_read(&r, &m) != MP_OK) {
            conn_reply_error(c, id, RPC_E_BAD_REQUEST, "journal takes [year, month]");
            goto out;
        }
        rc = ledger_journal_month(n->ledger, (int)y, (int)m, read_posting_cb, &x, &err);
        if (rc == 0)
            read_reply_list(n, c, id, "postings", &x);
    } else if (proto_str_eq(query, "report")) {
        /* Off the loop thread, answered later (reports.c). */
        reports_read(n, c, id, &r, count, proto_str_eq((struct proto_str){cons, cl}, "linear"));
        goto out;
    } else if (proto_str_eq(query, "breaker")) { /* alerting reads: methods_watch.c */
        rc = methods_watch_breaker(n, c, id, arg, &err);
    } else if (proto_str_eq(query, "events")) {
        rc = methods_watch_events(n, c, id, &err);
    } else if (proto_str_eq(query, "periods")) {
        rc = ledger_period_list(n->ledger, read_period_cb, &x, &err);
        if (rc == 0)
            read_reply_list(n, c, id, "periods", &x);
    } else {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "unknown query");
        goto out;
    }
    if (rc == LEDGER_ENOTFOUND)
        conn_reply_error(c, id, RPC_E_NOT_FOUND, err.message);
    else if (rc == LEDGER_EINVAL)
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, err.message);
    else if (rc != 0)
        conn_reply_error(c, id, RPC_E_INTERNAL, err.message[0] ? err.message : "read failed");
out:
    proto_buf_free(&items);
}

/* Reads waiting for the barrier of this loop turn. */
struct pending_read {
    struct pending_read *next;
    struct conn *conn;
    uint32_t id;
    size_t len;
    uint8_t params[]; /* copied: the frame is gone by then */
};

struct read_barrier {
    struct raft_barrier req;
    struct node *node;
    struct pending_read *reads;
};

static struct pending_read *methods_reads;

static void read_barrier_cb(struct raft_barrier *req, int status)
{
    struct read_barrier *b = req->data;
    struct pending_read *p = b->reads;
    while (p) {
        struct pending_read *next = p->next;
        if (status != 0)
            conn_reply_error(p->conn, p->id, RPC_E_UNAVAILABLE, raft_strerror(status));
        else if (conn_is_open(p->conn))
            read_answer(b->node, p->conn, p->id, p->params, p->len);
        conn_done(p->conn);
        free(p);
        p = next;
    }
    free(b);
}

void methods_flush(struct node *n)
{
    if (!methods_reads)
        return;
    struct pending_read *reads = methods_reads;
    methods_reads = NULL;
    struct read_barrier *b = calloc(1, sizeof *b);
    int rv = RAFT_NOMEM;
    if (b) {
        b->node = n;
        b->reads = reads;
        b->req.data = b;
        rv = node_is_leader(n) ? raft_barrier(&n->raft, &b->req, read_barrier_cb)
                               : RAFT_NOTLEADER;
    }
    if (rv == 0)
        return;
    free(b);
    while (reads) {
        struct pending_read *next = reads->next;
        if (rv == RAFT_NOTLEADER)
            conn_reply_not_leader(reads->conn, reads->id);
        else
            conn_reply_error(reads->conn, reads->id, RPC_E_UNAVAILABLE, raft_strerror(rv));
        conn_done(reads->conn);
        free(reads);
        reads = next;
    }
}

void methods_fail_all(struct node *n, const char *code, const char *message)
{
    (void)n;
    while (methods_reads) {
        struct pending_read *next = methods_reads->next;
        conn_reply_error(methods_reads->conn, methods_reads->id, code, message);
        conn_done(methods_reads->conn);
        free(methods_reads);
        methods_reads = next;
    }
}

static void method_read(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                        uint32_t count)
{
    /* Re-read the whole params array: the reader is past its header. */
    const uint8_t *params_end = r->end;
    (void)count;
    const char *q = NULL, *cons = NULL;
    uint32_t ql = 0, cl = 0;
    struct mp_reader peek = *r;
    if (mp_str_read(&peek, &q, &ql) != MP_OK || mp_str_read(&peek, &cons, &cl) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "read takes [query, consistency, args...]");
        return;
    }
    struct proto_str consistency = {cons, cl};
    bool is_stale = proto_str_eq(consistency, "stale");
    if (!is_stale && !proto_str_eq(consistency, "linear")) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "consistency must be linear or stale");
        return;
    }
    /* The params array starts with its header just before r->pos: rebuild
     * it as [query, consistency, args...] by re-encoding the header. */
    size_t body = (size_t)(params_end - r->pos);
    uint8_t head[MP_ARRAY_HEAD_MAX];
    size_t hl = mp_array_head(head, count);
    struct pending_read *p = malloc(sizeof *p + hl + body);
    if (!p) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    memcpy(p->params, head, hl);
    memcpy(p->params + hl, r->pos, body);
    p->len = hl + body;
    p->conn = c;
    p->id = id;
    if (is_stale) {
        read_answer(n, c, id, p->params, p->len);
        free(p);
        return;
    }
    if (!node_is_leader(n)) {
        free(p);
        conn_reply_not_leader(c, id);
        return;
    }
    conn_hold(c);
    p->next = methods_reads;
    methods_reads = p;
}

/* ---- status, hash, checkpoint ---- */

static const char *methods_raft_state(int s)
{
    switch (s) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    default: return "unavailable";
    }
}

static const char *methods_raft_role(int r)
{
    switch (r) {
    case RAFT_VOTER: return "voter";
    case RAFT_STANDBY: return "standby";
    default: return "spare";
    }
}

static void method_status(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                          uint32_t count)
{
    (void)r;
    (void)count;
    raft_id leader = 0;
    char rpc[NODE_ADDR_MAX] = "";
    node_leader(n, &leader, rpc, sizeof rpc);
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(c, id, &start, &pk))
        return;
    msgpack_pack_map(&pk, 11);
    pack_kv_int(&pk, "id", (int64_t)n->opt.id);
    pack_kv_str(&pk, "state", methods_raft_state(raft_state(&n->raft)));
    pack_kv_int(&pk, "term", (int64_t)n->raft.current_term);
    pack_kv_int(&pk, "leader_id", (int64_t)leader);
    pack_kv_str(&pk, "leader_rpc", rpc);
    pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
    pack_kv_int(&pk, "commit_index", (int64_t)n->raft.commit_index);
    pack_kv_int(&pk, "last_index", (int64_t)raft_last_index(&n->raft));
    pack_kv_str(&pk, "raft", n->opt.raft_addr);
    pack_kv_str(&pk, "rpc", n->opt.rpc_addr);
    rpc_pack_str(&pk, "members");
    const struct raft_configuration *conf = &n->raft.configuration;
    msgpack_pack_array(&pk, conf->n);
    for (unsigned i = 0; i < conf->n; i++) {
        char ra[NODE_ADDR_MAX], ra2[NODE_ADDR_MAX];
        node_addr_split(conf->servers[i].address, ra, sizeof ra, ra2, sizeof ra2);
        msgpack_pack_map(&pk, 4);
        pack_kv_int(&pk, "id", (int64_t)conf->servers[i].id);
        pack_kv_str(&pk, "raft", ra);
        pack_kv_str(&pk, "rpc", ra2);
        pack_kv_str(&pk, "role", methods_raft_role(conf->servers[i].role));
    }
    conn_reply_end(c, start);
}

static void method_hash(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                        uint32_t count)
{
    (void)r;
    (void)count;
    uint8_t h[32];
    struct ledger_error err;
    if (ledger_state_hash(n->ledger, h, &err) != 0) {
        conn_reply_error(c, id, RPC_E_INTERNAL, err.message);
        return;
    }
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(c, id, &start, &pk))
        return;
    uint32_t ncp = 0;
    for (uint32_t i = 0; i < NODE_CHECKPOINTS_MAX; i++)
        if (n->checkpoints[i].index)
            ncp++;
    msgpack_pack_map(&pk, 3);
    pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
    rpc_pack_str(&pk, "hash");
    rpc_pack_bin(&pk, h, 32);
    rpc_pack_str(&pk, "checkpoints");
    msgpack_pack_array(&pk, ncp);
    for (uint32_t i = 0; i < NODE_CHECKPOINTS_MAX; i++) {
        if (!n->checkpoints[i].index)
            continue;
        msgpack_pack_map(&pk, 2);
        pack_kv_int(&pk, "index", (int64_t)n->checkpoints[i].index);
        rpc_pack_str(&pk, "hash");
        rpc_pack_bin(&pk, n->checkpoints[i].hash, 32);
    }
    conn_reply_end(c, start);
}

static void method_checkpoint(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                              uint32_t count)
{
    (void)r;
    (void)count;
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    size_t len = 0;
    uint8_t *buf = node_entry_alloc(NODE_ENTRY_CHECKPOINT, 0, &len);
    if (!buf) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    int rv = batch_propose_raw(n, c, id, buf, len);
    if (rv != 0)
        conn_reply_error(c, id, RPC_E_UNAVAILABLE, raft_strerror(rv));
}

/* ---- membership ---- */

struct change {
    struct raft_change req;
    struct node *node;
    struct call call;
    raft_id target;
    bool is_join; /* add, then promote to voter */
};

static void change_reply(struct change *ch, int status)
{
    struct conn *c = ch->call.conn;
    bool is_bad = status == RAFT_BADID || status == RAFT_NOTFOUND || status == RAFT_BADROLE ||
                  status == RAFT_DUPLICATEID || status == RAFT_DUPLICATEADDRESS;
    if (status != 0) {
        conn_reply_error(c, ch->call.id, is_bad ? RPC_E_BAD_REQUEST : RPC_E_UNAVAILABLE,
                         raft_strerror(status));
    } else {
        msgpack_packer pk;
        size_t start;
        if (conn_reply_begin(c, ch->call.id, &start, &pk)) {
            msgpack_pack_map(&pk, 1);
            pack_kv_int(&pk, "id", (int64_t)ch->target);
            conn_reply_end(c, start);
        }
    }
    conn_done(c);
    free(ch);
}

static void change_promoted_cb(struct raft_change *req, int status)
{
    change_reply(req->data, status);
}

static void change_added_cb(struct raft_change *req, int status)
{
    struct change *ch = req->data;
    if (status != 0 || !ch->is_join) {
        change_reply(ch, status);
        return;
    }
    int rv = raft_assign(&ch->node->raft, &ch->req, ch->target, RAFT_VOTER, change_promoted_cb);
    if (rv != 0)
        change_reply(ch, rv);
}

static struct change *change_new(struct node *n, struct conn *c, uint32_t id, raft_id target)
{
    struct change *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->node = n;
    ch->call.conn = c;
    ch->call.id = id;
    ch->target = target;
    ch->req.data = ch;
    return ch;
}

/* [id, raft_addr, rpc_addr] for join and add. */
static void method_add_common(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                              uint32_t count, bool is_join)
{
    uint64_t target = 0;
    const char *ra = NULL, *rp = NULL;
    uint32_t ral = 0, rpl = 0;
    char h[NODE_ADDR_MAX];
    int port;
    char raddr[NODE_ADDR_MAX], paddr[NODE_ADDR_MAX];
    if (count != 3 || mp_uint_read(r, &target) != MP_OK || mp_str_read(r, &ra, &ral) != MP_OK ||
        mp_str_read(r, &rp, &rpl) != MP_OK || target == 0 || ral >= NODE_ADDR_MAX ||
        rpl >= NODE_ADDR_MAX) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "takes [id > 0, raft_addr, rpc_addr]");
        return;
    }
    memcpy(raddr, ra, ral);
    raddr[ral] = '\0';
    memcpy(paddr, rp, rpl);
    paddr[rpl] = '\0';
    if (rpc_addr_parse(raddr, h, sizeof h, &port) != 0 ||
        rpc_addr_parse(paddr, h, sizeof h, &port) != 0) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "addresses must be numeric a.b.c.d:port");
        return;
    }
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    /* A node that is already a member (a restarted joiner) is fine. */
    const struct raft_configuration *conf = &n->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id != target)
            continue;
        if (!is_join || conf->servers[i].role == RAFT_VOTER) {
            msgpack_packer pk;
            size_t start;
            if (conn_reply_begin(c, id, &start, &pk)) {
                msgpack_pack_map(&pk, 1);
                pack_kv_int(&pk, "id", (int64_t)target);
                conn_reply_end(c, start);
            }
            return;
        }
        struct change *ch = change_new(n, c, id, target);
        if (!ch) {
            conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
            return;
        }
        conn_hold(c);
        int rv = raft_assign(&n->raft, &ch->req, target, RAFT_VOTER, change_promoted_cb);
        if (rv != 0)
            change_reply(ch, rv);
        return;
    }
    char full[2 * NODE_ADDR_MAX + 2];
    snprintf(full, sizeof full, "%s/%s", raddr, paddr);
    struct change *ch = change_new(n, c, id, target);
    if (!ch) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    ch->is_join = is_join;
    conn_hold(c);
    int rv = raft_add(&n->raft, &ch->req, target, full, change_added_cb);
    if (rv != 0)
        change_reply(ch, rv);
}

static void method_join(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                        uint32_t count)
{
    method_add_common(n, c, id, r, count, true);
}

static void method_add(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                       uint32_t count)
{
    method_add_common(n, c, id, r, count, false);
}

static bool method_target(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                          uint32_t count, uint64_t *target)
{
    if (count != 1 || mp_uint_read(r, target) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "takes [id]");
        return false;
    }
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return false;
    }
    return true;
}

static void method_promote(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                           uint32_t count)
{
    uint64_t target;
    if (!method_target(n, c, id, r, count, &target))
        return;
    struct change *ch = change_new(n, c, id, target);
    if (!ch) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    conn_hold(c);
    int rv = raft_assign(&n->raft, &ch->req, target, RAFT_VOTER, change_promoted_cb);
    if (rv != 0)
        change_reply(ch, rv);
}

static void method_remove(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                          uint32_t count)
{
    uint64_t target;
    if (!method_target(n, c, id, r, count, &target))
        return;
    struct change *ch = change_new(n, c, id, target);
    if (!ch) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    conn_hold(c);
    int rv = raft_remove(&n->raft, &ch->req, target, change_promoted_cb);
    if (rv != 0)
        change_reply(ch, rv);
}

struct transfer {
    struct raft_transfer req;
    struct node *node;
    struct call call;
};

static void transfer_cb(struct raft_transfer *req)
{
    struct transfer *t = req->data;
    raft_id leader = 0;
    char rpc[NODE_ADDR_MAX] = "";
    node_leader(t->node, &leader, rpc, sizeof rpc);
    msgpack_packer pk;
    size_t start;
    if (conn_reply_begin(t->call.conn, t->call.id, &start, &pk)) {
        msgpack_pack_map(&pk, 2);
        pack_kv_int(&pk, "leader_id", (int64_t)leader);
        pack_kv_str(&pk, "leader_rpc", rpc);
        conn_reply_end(t->call.conn, start);
    }
    conn_done(t->call.conn);
    free(t);
}

static void method_transfer_leader(struct node *n, struct conn *c, uint32_t id,
                                   struct mp_reader *r, uint32_t count)
{
    uint64_t target;
    if (!method_target(n, c, id, r, count, &target))
        return;
    struct transfer *t = calloc(1, sizeof *t);
    if (!t) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    t->node = n;
    t->call.conn = c;
    t->call.id = id;
    t->req.data = t;
    conn_hold(c);
    int rv = raft_transfer(&n->raft, &t->req, target, transfer_cb);
    if (rv != 0) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, raft_strerror(rv));
        conn_done(c);
        free(t);
    }
}

/* ---- snapshot, backup, restore ---- */

struct snap {
    struct raft_barrier req;
    struct node *node;
};

static void snapshot_barrier_cb(struct raft_barrier *req, int status)
{
    struct snap *s = req->data;
    struct node *n = s->node;
    free(s);
    if (status != 0 && n->snapshot_conn) {
        fsm_snapshot_rephase(n, n->raft.log.snapshot.last_index);
        n->is_snapshot_requested = false;
        conn_reply_error(n->snapshot_conn, n->snapshot_id, RPC_E_UNAVAILABLE,
                         raft_strerror(status));
        conn_done(n->snapshot_conn);
        n->snapshot_conn = NULL;
    }
}

static void method_snapshot(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                            uint32_t count)
{
    (void)r;
    (void)count;
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    if (n->snapshot_conn) {
        conn_reply_error(c, id, RPC_E_TOO_MANY, "a snapshot is already being taken");
        return;
    }
    struct snap *s = calloc(1, sizeof *s);
    if (!s) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    /* raft 0.15 has no "snapshot now": with a threshold of 1 the next apply
     * (this barrier's) takes one; fsm.c restores the threshold when it does
     * and answers once the snapshot is written. */
    s->node = n;
    s->req.data = s;
    conn_hold(c);
    n->snapshot_conn = c;
    n->snapshot_id = id;
    n->is_snapshot_requested = true;
    raft_set_snapshot_threshold(&n->raft, 1);
    int rv = raft_barrier(&n->raft, &s->req, snapshot_barrier_cb);
    if (rv != 0) {
        free(s);
        fsm_snapshot_rephase(n, n->raft.log.snapshot.last_index);
        n->is_snapshot_requested = false;
        n->snapshot_conn = NULL;
        conn_reply_error(c, id, RPC_E_UNAVAILABLE, raft_strerror(rv));
        conn_done(c);
    }
}

/* One backup image at a time, taken at offset 0 and read in chunks. */
static struct {
    void *data;
    size_t len;
    raft_index index;
    uint8_t hash[32];
} methods_backup;

static void method_backup(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                          uint32_t count)
{
    uint64_t offset = 0;
    if (count != 1 || mp_uint_read(r, &offset) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "backup takes [offset]");
        return;
    }
    struct ledger_error err;
    if (offset == 0) {
        free(methods_backup.data);
        methods_backup.data = NULL;
        if (ledger_snapshot(n->ledger, NULL, &methods_backup.data, &methods_backup.len, &err) !=
                0 ||
            ledger_state_hash(n->ledger, methods_backup.hash, &err) != 0) {
            conn_reply_error(c, id, RPC_E_INTERNAL, err.message);
            return;
        }
        methods_backup.index = raft_last_applied(&n->raft);
    }
    if (!methods_backup.data || offset > methods_backup.len) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "offset beyond the image (start at 0)");
        return;
    }
    size_t chunk = methods_backup.len - offset;
    if (chunk > RPC_CHUNK_MAX)
        chunk = RPC_CHUNK_MAX;
    msgpack_packer pk;
    size_t start;
    if (!conn_reply_begin(c, id, &start, &pk))
        return;
    msgpack_pack_map(&pk, 5);
    pack_kv_int(&pk, "index", (int64_t)methods_backup.index);
    pack_kv_int(&pk, "total_bytes", (int64_t)methods_backup.len);
    pack_kv_int(&pk, "offset", (int64_t)offset);
    rpc_pack_str(&pk, "data");
    rpc_pack_bin(&pk, (const uint8_t *)methods_backup.data + offset, chunk);
    rpc_pack_str(&pk, "hash");
    rpc_pack_bin(&pk, methods_backup.hash, 32);
    conn_reply_end(c, start);
}

static struct {
    uint8_t *data; /* a node entry (node_entry_alloc) whose payload is the image */
    size_t entry_len;
    size_t total;
    size_t have;
} methods_restore;

static void method_restore(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                           uint32_t count)
{
    uint64_t offset = 0, total = 0;
    const uint8_t *data = NULL;
    uint32_t len = 0;
    if (count != 3 || mp_uint_read(r, &offset) != MP_OK || mp_uint_read(r, &total) != MP_OK ||
        mp_bin_read(r, &data, &len) != MP_OK) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "restore takes [offset, total_bytes, data]");
        return;
    }
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    if (total == 0 || total > RPC_RESTORE_MAX) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST,
                         "images over 64 MiB cannot be restored (not supported yet)");
        return;
    }
    if (offset == 0) {
        raft_free(methods_restore.data);
        methods_restore.data = node_entry_alloc(NODE_ENTRY_RESTORE, total,
                                                &methods_restore.entry_len);
        methods_restore.total = total;
        methods_restore.have = 0;
        if (!methods_restore.data) {
            conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
            return;
        }
    }
    if (!methods_restore.data || total != methods_restore.total ||
        offset != methods_restore.have || len > total - offset) {
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "chunks must arrive in order from offset 0");
        return;
    }
    memcpy(methods_restore.data + NODE_ENTRY_HEADER_BYTES + offset, data, len);
    methods_restore.have += len;
    if (methods_restore.have < total) {
        msgpack_packer pk;
        size_t start;
        if (conn_reply_begin(c, id, &start, &pk)) {
            msgpack_pack_map(&pk, 1);
            pack_kv_int(&pk, "have", (int64_t)methods_restore.have);
            conn_reply_end(c, start);
        }
        return;
    }
    /* Whole: check it is a ledger before every replica is asked to load it. */
    struct ledger *probe = NULL;
    struct ledger_error err;
    int rc = ledger_open(&probe, NULL, &err);
    if (rc == 0)
        rc = ledger_restore(probe, methods_restore.data + NODE_ENTRY_HEADER_BYTES, total, &err);
    ledger_close(probe);
    if (rc != 0) {
        raft_free(methods_restore.data);
        methods_restore.data = NULL;
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, err.message);
        return;
    }
    uint8_t *buf = methods_restore.data;
    methods_restore.data = NULL;
    int rv = batch_propose_raw(n, c, id, buf, methods_restore.entry_len);
    if (rv != 0)
        conn_reply_error(c, id, RPC_E_UNAVAILABLE, raft_strerror(rv));
}

static void method_noop(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                        uint32_t count)
{
    (void)r;
    (void)count;
    if (!node_is_leader(n)) {
        conn_reply_not_leader(c, id);
        return;
    }
    conn_hold(c);
    batch_submit_noop(n, c, id);
}

static const struct method_def methods_table[] = {
    {"noop", method_noop, CONN_ROLE_ADMIN},
    {"apply", method_apply, CONN_ROLE_GATEWAY},
    {"read", method_read, CONN_ROLE_READER},
    {"status", method_status, CONN_ROLE_READER},
    {"hash", method_hash, CONN_ROLE_READER},
    {"checkpoint", method_checkpoint, CONN_ROLE_ADMIN},
    {"join", method_join, CONN_ROLE_ADMIN},
    {"add", method_add, CONN_ROLE_ADMIN},
    {"promote", method_promote, CONN_ROLE_ADMIN},
    {"remove", method_remove, CONN_ROLE_ADMIN},
    {"transfer_leader", method_transfer_leader, CONN_ROLE_ADMIN},
    {"snapshot", method_snapshot, CONN_ROLE_ADMIN},
    {"backup", method_backup, CONN_ROLE_ADMIN},
    {"restore", method_restore, CONN_ROLE_ADMIN},
};

const struct method_def *methods_find(struct proto_str name)
{
    for (size_t i = 0; i < sizeof methods_table / sizeof methods_table[0]; i++)
        if (proto_str_eq(name, methods_table[i].name))
            return &methods_table[i];
    return NULL;
}
