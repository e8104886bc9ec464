/*
 * reports.c — the `report` read (docs/rpc.md), off the node's loop thread.
 *
 * A month-end report over millions of journal rows takes seconds of CPU;
 * run on the loop thread it would delay heartbeats and start elections.  So
 * a report is read from a private copy of the ledger (ledger/copy.c) on a
 * libuv worker thread:
 *
 *   1. the copy is taken on the loop thread in steps of REPORT_COPY_PAGES
 *      pages, one step per loop turn (an idle handle), so the loop keeps
 *      serving raft and clients in between; writes applied meanwhile reach
 *      the copy, which equals the ledger at the applied index of its last
 *      step;
 *   2. the report runs on the copy on a worker thread;
 *   3. the answer is sent from the loop thread, with the copy's
 *      applied_index and now_ms.
 *
 * Reports run one at a time (a FIFO).  The last copy is kept for the next
 * report — a report reads in pages, each its own read — when that one is
 * "stale", or "linear" and nothing was applied since the copy: a linear read
 * still reflects every write acknowledged before it began.  A stale copy is
 * used for at most REPORT_COPY_REUSE_MS.  The copy costs the memory of the
 * ledger's database once more while it is kept.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/server.h"

/* 1024 pages of 4 KiB: ~1 ms of copying per loop turn. */
#define REPORT_COPY_PAGES 1024
#define REPORT_COPY_REUSE_MS 30000

static int report_buf_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len) == 0 ? 0 : -1;
}

/* Room for rows in one answer: a frame, less the envelope and one row's
 * worst case (a transfer with the largest metadata).  Tests of paging build
 * with a tiny page (-DREPORT_PAGE_BYTES=300). */
#ifndef REPORT_PAGE_BYTES
#define REPORT_PAGE_BYTES (RPC_FRAME_MAX - (1u << 20))
#endif

/* One report read: its request, then its page of rows. */
struct report_job {
    struct report_job *next;  /* FIFO: the head runs */
    struct node *n;
    struct conn *conn;
    uint32_t id;
    bool is_linear;
    int kind;
    int year, month;
    uint32_t group_count;
    char keys[LEDGER_REPORT_GROUP_MAX][PROTO_MAP_KEY_MAX + 1];
    const char *key_ptrs[LEDGER_REPORT_GROUP_MAX];
    uint64_t offset;          /* first row of this page */
    /* filled on the worker thread */
    uv_work_t work;
    int rc;
    struct ledger_error err;
    struct proto_buf items;   /* packed rows */
    msgpack_packer item_pk;
    uint32_t count;
    uint64_t next_offset;     /* 0: no more rows */
};

static void pack_report_columns(msgpack_packer *pk, int kind, const char *const *keys,
                                uint32_t kc)
{
    static const char *const chargeback[] = {"view", "is_total", "debtor", "debtor_cost_center",
                                             "creditor", "creditor_cost_center", "postings",
                                             "amount_micros"};
    static const char *const spend_tail[] = {"account", "payee", "postings", "amount_micros",
                                             "overrun_micros"};
    static const char *const trial[] = {"is_total", "account", "postings", "debit_micros",
                                        "credit_micros", "net_micros"};
    static const char *const transfers[] = {"is_total", "id", "ts_ms", "kind", "debit",
                                            "credit", "amount_micros", "reservation_id",
                                            "overrun_micros", "metadata"};
    const char *const *cols = transfers;
    uint32_t n = sizeof transfers / sizeof *transfers;
    if (kind == LEDGER_REPORT_CHARGEBACK) {
        cols = chargeback;
        n = sizeof chargeback / sizeof *chargeback;
    } else if (kind == LEDGER_REPORT_TRIAL_BALANCE) {
        cols = trial;
        n = sizeof trial / sizeof *trial;
    } else if (kind == LEDGER_REPORT_SPEND) {
        uint32_t tail = sizeof spend_tail / sizeof *spend_tail;
        msgpack_pack_array(pk, 1 + kc + tail);
        rpc_pack_str(pk, "is_total");
        for (uint32_t i = 0; i < kc; i++)
            rpc_pack_str(pk, keys[i]);
        for (uint32_t i = 0; i < tail; i++)
            rpc_pack_str(pk, spend_tail[i]);
        return;
    }
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        rpc_pack_str(pk, cols[i]);
}

static void pack_bool(msgpack_packer *pk, bool v)
{
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static int report_row_cb(void *arg, const struct ledger_report_row *row)
{
    struct report_job *r = arg;
    msgpack_packer *pk = &r->item_pk;
    if (r->items.len >= REPORT_PAGE_BYTES) {
        r->next_offset = r->offset + r->count;
        return 1;
    }
    switch (r->kind) {
    case LEDGER_REPORT_CHARGEBACK:
        msgpack_pack_array(pk, 8);
        rpc_pack_str(pk, row->view == LEDGER_REPORT_VIEW_ACCOUNT ? "account" : "cost_center");
        pack_bool(pk, row->is_total);
        rpc_pack_str(pk, row->debit);
        rpc_pack_str(pk, row->debit_cost_center);
        rpc_pack_str(pk, row->credit);
        rpc_pack_str(pk, row->credit_cost_center);
        msgpack_pack_uint64(pk, row->posting_count);
        msgpack_pack_int64(pk, row->amount_micros);
        break;
    case LEDGER_REPORT_SPEND:
        msgpack_pack_array(pk, 1 + r->group_count + 5);
        pack_bool(pk, row->is_total);
        for (uint32_t i = 0; i < r->group_count; i++)
            rpc_pack_str(pk, i < row->group_count ? row->group[i] : "");
        rpc_pack_str(pk, row->debit);
        rpc_pack_str(pk, row->credit);
        msgpack_pack_uint64(pk, row->posting_count);
        msgpack_pack_int64(pk, row->amount_micros);
        msgpack_pack_int64(pk, row->overrun_micros);
        break;
    case LEDGER_REPORT_TRIAL_BALANCE:
        msgpack_pack_array(pk, 6);
        pack_bool(pk, row->is_total);
        rpc_pack_str(pk, row->debit);
        msgpack_pack_uint64(pk, row->posting_count);
        msgpack_pack_int64(pk, row->debit_micros);
        msgpack_pack_int64(pk, row->credit_micros);
        msgpack_pack_int64(pk, row->net_micros);
        break;
    default:
        msgpack_pack_array(pk, 10);
        pack_bool(pk, row->is_total);
        msgpack_pack_uint64(pk, row->id);
        msgpack_pack_int64(pk, row->ts_ms);
        rpc_pack_str(pk, row->is_total ? "" : proto_kind_name(row->kind));
        rpc_pack_str(pk, row->debit);
        rpc_pack_str(pk, row->credit);
        msgpack_pack_int64(pk, row->amount_micros);
        msgpack_pack_uint64(pk, row->reservation_id);
        msgpack_pack_int64(pk, row->overrun_micros);
        if (row->metadata_len == 0)
            msgpack_pack_map(pk, 0);
        else
            msgpack_pack_bin_body(pk, row->metadata, row->metadata_len); /* raw msgpack */
        break;
    }
    r->count++;
    return 0;
}

static struct {
    struct report_job *head, *tail;
    struct ledger_copy *taking; /* a copy in progress */
    struct ledger *copy;        /* the last finished copy */
    uint64_t copy_applied;
    int64_t copy_now_ms;
    uint64_t copy_made_ms;      /* uv_now */
    uv_idle_t idle;
    bool is_idle_ready;
} reports;

static void reports_next(struct node *n);

static void report_job_free(struct report_job *j)
{
    proto_buf_free(&j->items);
    free(j);
}

/* The head job is answered (or dropped): start the next one. */
static void report_job_done(struct report_job *j)
{
    struct node *n = j->n;
    assert(reports.head == j);
    reports.head = j->next;
    if (!reports.head)
        reports.tail = NULL;
    conn_done(j->conn);
    report_job_free(j);
    reports_next(n);
}

static void report_fail(struct report_job *j, const struct ledger_error *err)
{
    const char *code = err->code == LEDGER_EINVAL ? RPC_E_BAD_REQUEST : RPC_E_INTERNAL;
    if (conn_is_open(j->conn))
        conn_reply_error(j->conn, j->id, code, err->message[0] ? err->message : "report failed");
    report_job_done(j);
}

static void report_work(uv_work_t *w)
{
    struct report_job *j = w->data;
    msgpack_packer_init(&j->item_pk, &j->items, report_buf_write);
    j->rc = ledger_report_from(reports.copy, j->kind, j->year, j->month, j->key_ptrs,
                               j->group_count, j->offset, report_row_cb, j, &j->err);
}

static void report_worked(uv_work_t *w, int status)
{
    struct report_job *j = w->data;
    if (status != 0 && j->rc == 0) {
        j->rc = LEDGER_ESQL;
        snprintf(j->err.message, sizeof j->err.message, "report: %s", uv_strerror(status));
    }
    if (j->rc != 0) {
        if (j->err.code == 0)
            j->err.code = j->rc;
        report_fail(j, &j->err);
        return;
    }
    msgpack_packer pk;
    size_t start;
    if (conn_is_open(j->conn) && conn_reply_begin(j->conn, j->id, &start, &pk)) {
        msgpack_pack_map(&pk, j->next_offset ? 5 : 4);
        rpc_pack_str(&pk, "columns");
        pack_report_columns(&pk, j->kind, j->key_ptrs, j->group_count);
        rpc_pack_str(&pk, "rows");
        msgpack_pack_array(&pk, j->count);
        msgpack_pack_bin_body(&pk, j->items.data, j->items.len); /* raw append */
        pack_kv_int(&pk, "applied_index", (int64_t)reports.copy_applied);
        pack_kv_int(&pk, "now_ms", reports.copy_now_ms);
        if (j->next_offset)
            pack_kv_int(&pk, "next_offset", (int64_t)j->next_offset);
        conn_reply_end(j->conn, start);
    }
    report_job_done(j);
}

static void report_run(struct report_job *j)
{
    j->work.data = j;
    int rv = uv_queue_work(j->n->loop, &j->work, report_work, report_worked);
    if (rv != 0) {
        struct ledger_error err = {.code = LEDGER_ESQL};
        snprintf(err.message, sizeof err.message, "report: %s", uv_strerror(rv));
        report_fail(j, &err);
    }
}

static void reports_drop_copy(void)
{
    ledger_close(reports.copy);
    reports.copy = NULL;
}

/* One step of the copy per loop turn. */
static void reports_idle(uv_idle_t *h)
{
    struct node *n = h->data;
    struct report_job *j = reports.head;
    struct ledger_error err = {0};
    int rc = ledger_copy_step(reports.taking, REPORT_COPY_PAGES, &err);
    if (rc == 0)
        return;
    uv_idle_stop(h);
    if (rc > 0) {
        reports.copy_applied = raft_last_applied(&n->raft);
        reports.copy_now_ms = ledger_now_ms(n->ledger);
        reports.copy_made_ms = uv_now(n->loop);
        rc = ledger_copy_finish(reports.taking, &reports.copy, &err) == 0 ? 1 : -1;
    }
    if (rc < 0)
        ledger_copy_free(reports.taking);
    reports.taking = NULL;
    if (rc < 0)
        report_fail(j, &err);
    else
        report_run(j);
}

static bool reports_copy_fits(const struct report_job *j)
{
    if (!reports.copy)
        return false;
    if (j->is_linear)
        return reports.copy_applied == raft_last_applied(&j->n->raft);
    return uv_now(j->n->loop) - reports.copy_made_ms <= REPORT_COPY_REUSE_MS;
}

static void reports_next(struct node *n)
{
    struct report_job *j = reports.head;
    if (!j)
        return;
    if (reports_copy_fits(j)) {
        report_run(j);
        return;
    }
    reports_drop_copy();
    struct ledger_error err = {0};
    if (ledger_copy_begin(n->ledger, &reports.taking, &err) != 0) {
        report_fail(j, &err);
        return;
    }
    if (!reports.is_idle_ready) {
        uv_idle_init(n->loop, &reports.idle);
        uv_unref((uv_handle_t *)&reports.idle);
        reports.is_idle_ready = true;
    }
    reports.idle.data = n;
    uv_idle_start(&reports.idle, reports_idle);
}

/* report [kind, year, month, [keys], offset?] */
void reports_read(struct node *n, struct conn *c, uint32_t id, struct mp_reader *r,
                  uint32_t count, bool is_linear)
{
    char name[32] = "";
    const char *s = NULL;
    uint32_t sl = 0, kc = 0;
    int64_t y = 0, m = 0;
    struct report_job *j = calloc(1, sizeof *j);
    if (!j) {
        conn_reply_error(c, id, RPC_E_INTERNAL, "out of memory");
        return;
    }
    bool is_bad = (count != 6 && count != 7) || mp_str_read(r, &s, &sl) != MP_OK ||
                  sl >= sizeof name || mp_int_read(r, &y) != MP_OK ||
                  mp_int_read(r, &m) != MP_OK || mp_array_read(r, &kc) != MP_OK ||
                  kc > LEDGER_REPORT_GROUP_MAX;
    for (uint32_t i = 0; !is_bad && i < kc; i++) {
        const char *k = NULL;
        uint32_t kl = 0;
        is_bad = mp_str_read(r, &k, &kl) != MP_OK || kl > PROTO_MAP_KEY_MAX;
        if (!is_bad) {
            memcpy(j->keys[i], k, kl);
            j->keys[i][kl] = '\0';
            j->key_ptrs[i] = j->keys[i];
        }
    }
    if (!is_bad && count == 7)
        is_bad = mp_uint_read(r, &j->offset) != MP_OK;
    if (is_bad) {
        free(j);
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "report takes [kind, year, month, [group "
                         "keys] (at most 8), offset?]");
        return;
    }
    memcpy(name, s, sl);
    j->kind = ledger_report_kind_parse(name);
    if (j->kind < 0) {
        free(j);
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "report kind must be chargeback, spend, "
                         "trial-balance or transfers");
        return;
    }
    /* A bad month is refused before any copy is taken (the ledger checks
     * the rest, on the copy). */
    if (m < 1 || m > 12 || y < 1970 || y > 9999) {
        free(j);
        conn_reply_error(c, id, RPC_E_BAD_REQUEST, "month must be 1..12 of a year 1970..9999");
        return;
    }
    j->n = n;
    j->conn = c;
    j->id = id;
    j->is_linear = is_linear;
    j->year = (int)y;
    j->month = (int)m;
    j->group_count = kc;
    proto_buf_init(&j->items);
    conn_hold(c);
    if (reports.tail)
        reports.tail->next = j;
    else
        reports.head = j;
    reports.tail = j;
    if (reports.head == j)
        reports_next(n);
}
