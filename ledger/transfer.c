/*
 * transfer.c — the double-entry journal and the transfer command.
 *
 * Every posting is one row: debit, credit, amount, kind, time, the
 * reservation it settles and its overrun, and the request's metadata as
 * msgpack.  Rows are immutable and their ids grow with time, so a month is
 * an id range found by binary search (no index on ts to maintain).  Each
 * posting also extends a 64-bit chain hash that the state hash covers, so
 * two replicas with equal hashes hold equal journals without hashing every
 * row again.
 */
#include "ledger/internal.h"

static uint64_t chain_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t journal_chain_step(uint64_t chain, uint64_t id, int64_t ts, int kind,
                            int64_t debit, int64_t credit, int64_t amount,
                            uint64_t reservation, int64_t overrun, const void *meta,
                            size_t meta_len)
{
    int64_t f[] = {(int64_t)chain, (int64_t)id, ts, kind, debit, credit, amount,
                   (int64_t)reservation, overrun, (int64_t)meta_len};
    uint64_t h = chain_mix(14695981039346656037ull, f, sizeof f);
    return chain_mix(h, meta, meta_len);
}

int journal_check_open(const struct ledger *l, struct proto_result *res)
{
    int32_t m = period_month_index(l->now_ms);
    if (!period_month_is_closed(l, m))
        return PROTO_OK;
    return ledger_refuse(res, PROTO_ERR_PERIOD_CLOSED, "the month %04d-%02d is closed",
                         m / 12, m % 12 + 1);
}

int journal_post(struct ledger *l, int kind, int32_t debit, int32_t credit,
                 int64_t amount_micros, uint64_t reservation_id, int64_t overrun_micros,
                 const void *meta, size_t meta_len, uint64_t *transfer_id,
                 struct ledger_error *err)
{
    assert(amount_micros > 0);
    assert(debit != credit);
    /* Alerting hook: thresholds, velocity, bedtime (watch_store.c). */
    int watch_rc = watch_on_posting(l, kind, debit, credit, amount_micros, err);
    if (watch_rc)
        return watch_rc;
    uint64_t id = l->next_transfer_id;
    /* The row goes in with the entry's others (journal_rows.c). */
    struct journal_row row = {.id = id, .ts_ms = l->now_ms, .kind = kind, .debit = debit + 1,
                              .credit = credit + 1, .amount_micros = amount_micros,
                              .reservation_id = reservation_id,
                              .overrun_micros = overrun_micros};
    int rc = journal_rows_add(l, &row, meta, meta_len, err);
    if (rc)
        return rc;
    l->journal_chain = journal_chain_step(l->journal_chain, id, l->now_ms, kind, debit + 1,
                                          credit + 1, amount_micros, reservation_id,
                                          overrun_micros, meta, meta_len);
    l->next_transfer_id = id + 1;
    *transfer_id = id;
    return 0;
}

int journal_first_at(struct ledger *l, int64_t ts_ms, uint64_t *out, struct ledger_error *err)
{
    /* Every read of the journal table starts here: the entry's rows first. */
    int flush_rc = journal_rows_flush(l, err);
    if (flush_rc)
        return flush_rc;
    /* Ids are dense from 1 and their times never decrease. */
    uint64_t lo = 1, hi = l->next_transfer_id; /* answer in [lo, hi] */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        sqlite3_stmt *s = store_stmt(l, ST_JOURNAL_TS);
        sqlite3_bind_int64(s, 1, (int64_t)mid);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW)
            return store_sql_error(l, err, "journal time search");
        int64_t ts = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (ts >= ts_ms)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
    return 0;
}

/* An adjustment may say which posting it corrects: metadata "corrects" =
 * the decimal id of an earlier posting (decided: a metadata key, so the
 * journal row, its chain hash and every report carry it unchanged). */
static int transfer_corrects_check(const struct ledger *l, const struct proto_map *m,
                                   struct proto_result *res)
{
    struct proto_str v;
    if (!ledger_map_find(m, "corrects", &v))
        return PROTO_OK;
    uint64_t id = 0;
    bool is_number = v.len > 0 && v.len <= 19 && v.ptr[0] != '0';
    for (uint32_t i = 0; is_number && i < v.len; i++) {
        is_number = v.ptr[i] >= '0' && v.ptr[i] <= '9';
        id = id * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    if (!is_number || id >= l->next_transfer_id)
        return ledger_refuse(res, PROTO_ERR_INVALID,
                             "metadata: corrects \"%.*s\" is not the id of an earlier transfer",
                             (int)(v.len > 24 ? 24 : v.len), v.ptr);
    return PROTO_OK;
}

int transfer_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                 struct ledger_error *err)
{
    const struct proto_transfer_args *t = &c->u.transfer;
    bool is_adjustment = t->kind == PROTO_KIND_ADJUSTMENT;
    if (t->kind != PROTO_KIND_CHARGEBACK && !is_adjustment)
        return ledger_refuse(res, PROTO_ERR_INVALID, "kind: %lld is not chargeback or"
                             " adjustment", (long long)t->kind), 0;
    if (is_adjustment && ledger_forbid_agent(c, res) != PROTO_OK)
        return 0;
    if (!ledger_amount_valid(t->amount_micros, false))
        return ledger_refuse(res, PROTO_ERR_INVALID, "amount_micros: %lld is outside 1..%lld",
                             (long long)t->amount_micros, (long long)PROTO_AMOUNT_MAX), 0;
    int32_t debit = account_find(l, t->debit, "debit", res);
    if (debit < 0)
        return 0;
    int32_t credit = tree_payee_check(l, t->credit, "credit", is_adjustment, res);
    if (credit == -1)
        return 0;
    if (credit == debit)
        return ledger_refuse(res, PROTO_ERR_INVALID, "credit: the same account as debit"), 0;
    const void *meta = NULL;
    size_t meta_len = 0;
    if (ledger_map_blob(l, &t->metadata, "metadata", &meta, &meta_len, res) != PROTO_OK)
        return 0;
    if (is_adjustment && transfer_corrects_check(l, &t->metadata, res) != PROTO_OK)
        return 0;
    if (journal_check_open(l, res) != PROTO_OK)
        return 0;
    unsigned checks = is_adjustment ? 0 : TREE_CHECK_STATUS | TREE_CHECK_CAPS;
    /* A credit that does not exist yet is outside every debit path. */
    if (tree_fit(l, debit, credit >= 0 ? credit : -1, t->amount_micros, 0, checks, res) !=
        PROTO_OK)
        return 0;
    credit = account_payee_resolve(l, credit, t->credit, err);
    if (credit < 0)
        return err->code ? err->code : LEDGER_ESQL;
    uint64_t id = 0;
    int rc = journal_post(l, (int)t->kind, debit, credit, t->amount_micros, 0, 0, meta, meta_len,
                          &id, err);
    if (rc)
        return rc;
    tree_apply(l, debit, credit, t->amount_micros, 0);
    res->id = id;
    res->transfer_id = id;
    res->amount_micros = t->amount_micros;
    res->remaining_micros = tree_available(l, debit, l->now_ms);
    return 0;
}
