/*
 * idem.c — idempotency keys.
 *
 * A keyed command's result (refusals included) is stored with the key and a
 * fingerprint of the request (FNV-1a over its canonical encoding).  A repeat
 * with the same fingerprint gets the stored result and changes nothing; a
 * repeat with another request is a conflict, because silently answering a
 * different question would hide a client bug.  Rows are kept
 * LEDGER_IDEM_WINDOW_MS of entry time; expire prunes older ones.
 */
#include "ledger/internal.h"

static uint64_t idem_fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

int idem_lookup(struct ledger *l, const struct proto_cmd *c, int *found, uint64_t *fp,
                struct proto_result *res, struct ledger_error *err)
{
    l->scratch.len = 0;
    if (proto_cmd_encode(&l->scratch, c) != 0) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory encoding a command");
        return LEDGER_ENOMEM;
    }
    *fp = idem_fnv(l->scratch.data, l->scratch.len);
    *found = 0;
    sqlite3_stmt *s = store_stmt(l, ST_IDEM_GET);
    sqlite3_bind_int64(s, 1, (int64_t)idem_fnv(c->key.ptr, c->key.len));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((uint32_t)sqlite3_column_bytes(s, 0) == c->key.len &&
            memcmp(sqlite3_column_blob(s, 0), c->key.ptr, c->key.len) == 0)
            break;
    }
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_sql_error(l, err, "idempotency lookup");
    uint64_t stored_fp = (uint64_t)sqlite3_column_int64(s, 1);
    if (stored_fp != *fp) {
        sqlite3_reset(s);
        *found = -1;
        ledger_refuse(res, PROTO_ERR_CONFLICT,
                      "key: \"%.*s\" was already used for a different request",
                      (int)(c->key.len > 64 ? 64 : c->key.len), c->key.ptr);
        return 0;
    }
    struct proto_error perr;
    int drc = proto_result_decode(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                                  res, &perr);
    sqlite3_reset(s);
    if (drc != 0) {
        err->code = LEDGER_ECORRUPT;
        snprintf(err->message, sizeof err->message, "stored result for a key: %s",
                 perr.message);
        return LEDGER_ECORRUPT;
    }
    *found = 1;
    return 0;
}

int idem_store(struct ledger *l, const struct proto_cmd *c, uint64_t fp,
               const struct proto_result *res, struct ledger_error *err)
{
    l->scratch.len = 0;
    if (proto_result_encode(&l->scratch, res) != 0) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory encoding a result");
        return LEDGER_ENOMEM;
    }
    sqlite3_stmt *s = store_stmt(l, ST_IDEM_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)idem_fnv(c->key.ptr, c->key.len));
    sqlite3_bind_blob(s, 2, c->key.ptr, (int)c->key.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, l->now_ms);
    sqlite3_bind_int64(s, 4, (int64_t)fp);
    sqlite3_bind_blob(s, 5, l->scratch.data, (int)l->scratch.len, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "idempotency store");
    return 0;
}

int idem_prune(struct ledger *l, int64_t before_ms, struct ledger_error *err)
{
    /* Rows are inserted in time order, so the oldest are the lowest seqs:
     * delete from the front while they are old. */
    sqlite3_stmt *s = store_stmt(l, ST_IDEM_PRUNE);
    sqlite3_bind_int64(s, 1, before_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        return store_sql_error(l, err, "idempotency prune");
    return 0;
}
