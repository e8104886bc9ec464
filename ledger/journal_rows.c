/*
 * journal_rows.c — the journal's SQL writes, gathered per entry.
 *
 * journal_post (transfer.c) decides a posting — its id, its chain step —
 * at once, but its row waits here until the entry ends (or until something
 * reads the journal through SQL, journal_first_at), then goes in with
 * multi-row INSERTs of up to JOURNAL_ROWS_MAX rows, each row's id left to
 * SQLite (the next rowid, which is the posting's id): one statement run per
 * posting, with a search of the table for its id, was a fifth of the state
 * machine's time under load.  The rows,
 * their order and the transaction they land in are those of one INSERT per
 * posting, so the database and everything read from it are unchanged.
 */
#include <stdlib.h>

#include "ledger/internal.h"

#define JOURNAL_COLUMNS 9

/* Rows per statement: the pending rows go in as runs of these sizes,
 * largest first, and a last odd one alone (ST_JOURNAL_INSERT). */
static const uint32_t journal_run_sizes[JOURNAL_RUN_COUNT] = {JOURNAL_ROWS_MAX, 32, 16, 8, 4,
                                                              2};

static sqlite3_stmt *journal_run_stmt(struct ledger *l, int k, struct ledger_error *err)
{
    if (l->journal.insert[k] == NULL) {
        static const char head[] = "INSERT INTO journal(id, ts, kind, debit, credit, amount,"
                                   " reservation, overrun, metadata) VALUES";
        static const char row[] = "(?,?,?,?,?,?,?,?,?),";
        char sql[sizeof head + JOURNAL_ROWS_MAX * (sizeof row - 1)];
        size_t len = sizeof head - 1;
        memcpy(sql, head, len);
        for (uint32_t i = 0; i < journal_run_sizes[k]; i++) {
            memcpy(sql + len, row, sizeof row - 1);
            len += sizeof row - 1;
        }
        sql[len - 1] = '\0'; /* the last row's comma */
        if (sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &l->journal.insert[k],
                               NULL) != SQLITE_OK)
            return store_sql_error(l, err, "prepare journal insert"), NULL;
    }
    sqlite3_reset(l->journal.insert[k]);
    return l->journal.insert[k];
}

int journal_rows_add(struct ledger *l, const struct journal_row *r, const void *meta,
                     size_t meta_len, struct ledger_error *err)
{
    struct journal_rows *j = &l->journal;
    if (j->count == j->cap) {
        uint32_t cap = j->cap ? j->cap * 2 : 64;
        struct journal_row *rows = realloc(j->rows, cap * sizeof *rows);
        if (!rows)
            goto nomem;
        j->rows = rows;
        j->cap = cap;
    }
    /* The metadata may sit in a buffer the next command reuses: copied. */
    size_t at = j->meta.len;
    if (meta_len > 0 && proto_buf_append(&j->meta, meta, meta_len) != 0)
        goto nomem;
    j->rows[j->count] = *r;
    j->rows[j->count].meta_at = at;
    j->rows[j->count].meta_len = meta_len;
    j->count++;
    return 0;
nomem:
    err->code = LEDGER_ENOMEM;
    snprintf(err->message, sizeof err->message, "out of memory keeping a posting");
    return LEDGER_ENOMEM;
}

static void journal_row_bind(sqlite3_stmt *s, int first, const struct journal_row *r,
                             const char *meta)
{
    /* The id is the table's largest plus one (SQLite's rowid for NULL): ids
     * are dense from 1 and rows never go, so that is r->id, and SQLite
     * appends without a search for it (journal_rows_flush checks). */
    sqlite3_bind_null(s, first + 1);
    sqlite3_bind_int64(s, first + 2, r->ts_ms);
    sqlite3_bind_int(s, first + 3, r->kind);
    sqlite3_bind_int64(s, first + 4, r->debit);
    sqlite3_bind_int64(s, first + 5, r->credit);
    sqlite3_bind_int64(s, first + 6, r->amount_micros);
    sqlite3_bind_int64(s, first + 7, (int64_t)r->reservation_id);
    sqlite3_bind_int64(s, first + 8, r->overrun_micros);
    store_bind_blob(s, first + 9, r->meta_len ? meta + r->meta_at : NULL, r->meta_len);
}

int journal_rows_flush(struct ledger *l, struct ledger_error *err)
{
    struct journal_rows *j = &l->journal;
    uint32_t i = 0;
    while (i < j->count) {
        uint32_t left = j->count - i;
        int k = 0;
        while (k < JOURNAL_RUN_COUNT && journal_run_sizes[k] > left)
            k++;
        uint32_t n = k < JOURNAL_RUN_COUNT ? journal_run_sizes[k] : 1;
        sqlite3_stmt *s = k < JOURNAL_RUN_COUNT ? journal_run_stmt(l, k, err)
                                                : store_stmt(l, ST_JOURNAL_INSERT);
        if (!s)
            return err->code;
        for (uint32_t r = 0; r < n; r++)
            journal_row_bind(s, (int)r * JOURNAL_COLUMNS, &j->rows[i + r], j->meta.data);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return store_sql_error(l, err, "insert posting");
        i += n;
    }
    /* Rows went in one after the other: the last one right, all right. */
    sqlite3_int64 last = sqlite3_last_insert_rowid(l->db);
    if (j->count > 0 && last != (sqlite3_int64)j->rows[j->count - 1].id) {
        err->code = LEDGER_ECORRUPT;
        snprintf(err->message, sizeof err->message,
                 "journal: posting %llu was stored as row %lld (ids are not dense)",
                 (unsigned long long)j->rows[j->count - 1].id, (long long)last);
        return LEDGER_ECORRUPT;
    }
    journal_rows_discard(l);
    return 0;
}

void journal_rows_discard(struct ledger *l)
{
    l->journal.count = 0;
    l->journal.meta.len = 0;
}

void journal_rows_free(struct ledger *l)
{
    journal_rows_finalize(l);
    free(l->journal.rows);
    proto_buf_free(&l->journal.meta);
    memset(&l->journal, 0, sizeof l->journal);
}

void journal_rows_finalize(struct ledger *l)
{
    for (int k = 0; k < JOURNAL_RUN_COUNT; k++) {
        sqlite3_finalize(l->journal.insert[k]);
        l->journal.insert[k] = NULL;
    }
}
