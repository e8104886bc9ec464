/*
 * copy.c — a private copy of the ledger, taken in small steps, for long
 * reads on another thread.
 *
 * A month-end report over millions of journal rows takes seconds of CPU; a
 * node must not stop its raft loop (heartbeats) that long.  The copy is
 * made with SQLite's online backup, a bounded number of pages per step on
 * the ledger's own thread; pages written through the ledger's connection
 * meanwhile reach the copy too (SQLite updates a backup written from the same
 * connection), so when the last step is done the copy equals the ledger at
 * that moment.  The finished copy is then a ledger of its own, used alone by
 * whichever thread takes it.
 *
 * A ledger that is closed or restored while a copy is being taken aborts it
 * (its steps then fail): the backup never outlives its source.
 */
#include <stdlib.h>

#include "ledger/internal.h"

struct ledger_copy {
    struct ledger *src;
    struct ledger *dst;
    sqlite3_backup *backup; /* NULL once done or aborted */
    bool is_done;
    bool is_aborted;
    struct ledger_copy *next; /* in src->copies while in progress */
};

static void copy_unlink(struct ledger_copy *c)
{
    for (struct ledger_copy **p = &c->src->copies; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    c->next = NULL;
}

int ledger_copy_begin(struct ledger *l, struct ledger_copy **out, struct ledger_error *err)
{
    struct ledger_copy *c = calloc(1, sizeof *c);
    if (!c) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return LEDGER_ENOMEM;
    }
    int rc = ledger_open(&c->dst, NULL, err);
    if (rc) {
        free(c);
        return rc;
    }
    c->src = l;
    c->backup = sqlite3_backup_init(c->dst->db, "main", l->db, "main");
    if (!c->backup) {
        rc = store_sql_error(c->dst, err, "copy");
        ledger_close(c->dst);
        free(c);
        return rc;
    }
    c->next = l->copies;
    l->copies = c;
    *out = c;
    return 0;
}

int ledger_copy_step(struct ledger_copy *c, int pages, struct ledger_error *err)
{
    if (c->is_done)
        return 1;
    if (c->is_aborted) {
        err->code = LEDGER_EINVAL;
        snprintf(err->message, sizeof err->message,
                 "the ledger was closed or restored while it was being copied");
        return -LEDGER_EINVAL;
    }
    /* Balances are written back lazily: flush them so the copy has them. */
    int rc = store_sync(c->src, err);
    if (rc)
        return -rc;
    rc = sqlite3_backup_step(c->backup, pages);
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return 0;
    int fin = sqlite3_backup_finish(c->backup);
    c->backup = NULL;
    copy_unlink(c);
    if (rc != SQLITE_DONE || fin != SQLITE_OK) {
        c->is_aborted = true;
        err->code = rc == SQLITE_NOMEM ? LEDGER_ENOMEM : LEDGER_ESQL;
        snprintf(err->message, sizeof err->message, "copy: %s", sqlite3_errstr(rc));
        return -err->code;
    }
    c->is_done = true;
    return 1;
}

int ledger_copy_finish(struct ledger_copy *c, struct ledger **out, struct ledger_error *err)
{
    if (!c->is_done) {
        err->code = LEDGER_EINVAL;
        snprintf(err->message, sizeof err->message, "the copy is not complete");
        return LEDGER_EINVAL;
    }
    int rc = store_cache_load(c->dst, err);
    if (rc)
        return rc;
    *out = c->dst;
    c->dst = NULL;
    free(c);
    return 0;
}

void ledger_copy_free(struct ledger_copy *c)
{
    if (!c)
        return;
    if (c->backup) {
        sqlite3_backup_finish(c->backup);
        copy_unlink(c);
    }
    ledger_close(c->dst);
    free(c);
}

void copy_abort_all(struct ledger *l)
{
    while (l->copies) {
        struct ledger_copy *c = l->copies;
        l->copies = c->next;
        c->next = NULL;
        sqlite3_backup_finish(c->backup);
        c->backup = NULL;
        c->is_aborted = true;
    }
}
