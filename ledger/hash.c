/*
 * hash.c — the state hash: SHA-256 over every table of the ledger in primary
 * key order, each value tagged with its type.  The journal enters through
 * its chain hash and length (kept in meta), so the cost is proportional to
 * the hot state, not to history.  Two ledgers that applied the same entries
 * hash equal; one differing value anywhere makes them differ.
 */
#include <openssl/evp.h>

#include "ledger/internal.h"

static const char *const hash_tables[] = {
    /* The clock and the entry count are not data: an entry whose commands
     * were all refused must leave the hash as it was. */
    "SELECT k, v FROM meta WHERE k NOT IN ('entries_applied', 'now_ms') ORDER BY k",
    "SELECT * FROM account ORDER BY id",
    "SELECT * FROM grants ORDER BY id",
    NULL, /* reservations: held in C, hashed as their rows were (hash_reservation) */
    "SELECT * FROM period ORDER BY month",
    "SELECT * FROM price ORDER BY model",
    "SELECT * FROM api_key ORDER BY id",
    "SELECT * FROM policy_required ORDER BY pos",
    /* alerting (watch_store.c) */
    "SELECT * FROM breaker ORDER BY account",
    "SELECT * FROM freeze_reason ORDER BY account",
    "SELECT * FROM alert_config ORDER BY account",
    "SELECT * FROM alert_fired ORDER BY account",
    "SELECT * FROM outbox ORDER BY id",
    /* rate limits and estimates (limits_store.c) */
    "SELECT * FROM rate_limit ORDER BY id",
    "SELECT * FROM rate_event ORDER BY scope, ts, reservation",
    "SELECT * FROM estimate_stat ORDER BY workflow, model",
    "SELECT * FROM estimate_sample ORDER BY workflow, model, slot",
    "SELECT * FROM grant_approved ORDER BY grant_id",
};

static void hash_value(EVP_MD_CTX *md, sqlite3_stmt *s, int col)
{
    unsigned char type = (unsigned char)sqlite3_column_type(s, col);
    EVP_DigestUpdate(md, &type, 1);
    switch (type) {
    case SQLITE_INTEGER: {
        int64_t v = sqlite3_column_int64(s, col);
        EVP_DigestUpdate(md, &v, sizeof v);
        break;
    }
    case SQLITE_NULL:
        break;
    default: { /* text and blobs: length, then bytes */
        const void *p = sqlite3_column_blob(s, col);
        uint32_t n = (uint32_t)sqlite3_column_bytes(s, col);
        EVP_DigestUpdate(md, &n, sizeof n);
        if (n)
            EVP_DigestUpdate(md, p, n);
        break;
    }
    }
}

static void hash_int(EVP_MD_CTX *md, int64_t v)
{
    unsigned char type = SQLITE_INTEGER;
    EVP_DigestUpdate(md, &type, 1);
    EVP_DigestUpdate(md, &v, sizeof v);
}

/* Exactly the bytes hash_value gave the reservation table's row (columns in
 * table order), so the hash did not change when reservations moved to C. */
static void hash_reservation(void *arg, const struct resv *r)
{
    EVP_MD_CTX *md = arg;
    int64_t cols[] = {(int64_t)r->id, r->account + 1, r->payee + 1, r->amount_micros,
                      r->deadline_ms, r->on_expire, r->status, r->actual_micros,
                      (int64_t)r->transfer_id, r->overrun_micros, r->created_ms, r->closed_ms};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        hash_int(md, cols[c]);
    unsigned char type = r->meta_len ? SQLITE_BLOB : SQLITE_NULL;
    EVP_DigestUpdate(md, &type, 1);
    if (r->meta_len) {
        uint32_t n = r->meta_len;
        EVP_DigestUpdate(md, &n, sizeof n);
        EVP_DigestUpdate(md, r->meta, n);
    }
}

static void hash_idem_item(void *arg, const void *key, uint32_t key_len, int64_t ts_ms,
                           uint64_t fp, const void *result, uint32_t result_len)
{
    EVP_MD_CTX *md = arg;
    EVP_DigestUpdate(md, &key_len, sizeof key_len);
    EVP_DigestUpdate(md, key, key_len);
    EVP_DigestUpdate(md, &ts_ms, sizeof ts_ms);
    EVP_DigestUpdate(md, &fp, sizeof fp);
    EVP_DigestUpdate(md, &result_len, sizeof result_len);
    EVP_DigestUpdate(md, result, result_len);
}

int ledger_state_hash(struct ledger *l, uint8_t out[32], struct ledger_error *err)
{
    int rc0 = store_sync(l, err);
    if (rc0)
        return rc0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "cannot start SHA-256");
        return LEDGER_ENOMEM;
    }
    for (size_t t = 0; t < sizeof hash_tables / sizeof hash_tables[0]; t++) {
        uint32_t table = (uint32_t)t;
        if (!hash_tables[t]) {
            EVP_DigestUpdate(md, &table, sizeof table);
            resv_each(l, hash_reservation, md);
            continue;
        }
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(l->db, hash_tables[t], -1, &s, NULL) != SQLITE_OK) {
            EVP_MD_CTX_free(md);
            return store_sql_error(l, err, "state hash");
        }
        EVP_DigestUpdate(md, &table, sizeof table);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int n = sqlite3_column_count(s);
            for (int c = 0; c < n; c++)
                hash_value(md, s, c);
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) {
            EVP_MD_CTX_free(md);
            return store_sql_error(l, err, "state hash");
        }
    }
    /* The idempotency keys live in C (idem.c): in time order. */
    idem_each(l, hash_idem_item, md);
    unsigned int len = 0;
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    assert(len == 32);
    return 0;
}
