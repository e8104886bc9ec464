/*
 * outbox.c — events waiting for delivery, in the ledger so that every replica
 * holds the same ones and a new leader delivers what the old one did not.
 *
 * An event gets the next id of a counter kept in meta (never reused, so the
 * id is stable across replicas, restarts and snapshots).  The leader's
 * webhook delivers pending events and acknowledges each with event_ack, a
 * replicated command that deletes it everywhere.  The outbox is bounded
 * (LEDGER_OUTBOX_MAX): when full, the oldest event is dropped and
 * events_dropped counts it — spend is never refused or delayed for alerting.
 */
#include "ledger/internal.h"

static int outbox_meta_set(struct ledger *l, const char *k, int64_t v, struct ledger_error *err)
{
    sqlite3_stmt *s = store_stmt(l, ST_META_SET);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "outbox counter");
    return 0;
}

static int64_t outbox_count(const struct ledger *l)
{
    sqlite3_stmt *s = watch_stmt(l, WS_OUTBOX_COUNT);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return n;
}

int outbox_add(struct ledger *l, const char *type, int32_t i, const char *detail,
               struct ledger_error *err)
{
    assert(strlen(type) < LEDGER_EVENT_TYPE_MAX);
    assert(strlen(detail) < LEDGER_EVENT_DETAIL_MAX);
    if (outbox_count(l) >= LEDGER_OUTBOX_MAX) {
        sqlite3_stmt *s = watch_stmt(l, WS_OUTBOX_DROP_OLDEST);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return store_sql_error(l, err, "outbox drop");
        rc = outbox_meta_set(l, "events_dropped", watch_meta_get(l, "events_dropped", 0) + 1,
                             err);
        if (rc)
            return rc;
    }
    int64_t id = watch_meta_get(l, "next_event_id", 1);
    sqlite3_stmt *s = watch_stmt(l, WS_OUTBOX_INSERT);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, l->now_ms);
    sqlite3_bind_text(s, 3, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, l->accts[i].name, (int)l->accts[i].name_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, detail, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "outbox insert");
    return outbox_meta_set(l, "next_event_id", id + 1, err);
}

int event_ack_cmd(struct ledger *l, const struct proto_cmd *c, struct proto_result *res,
                  struct ledger_error *err)
{
    uint64_t id = c->u.event_ack.event_id;
    if (id == 0 || id > INT64_MAX)
        return ledger_refuse(res, PROTO_ERR_INVALID, "event_id: %llu is not an event id",
                             (unsigned long long)id), 0;
    /* Acknowledging twice, or an event dropped meanwhile, is fine: delivery is
     * at least once and several acks of one event may be in flight. */
    sqlite3_stmt *s = watch_stmt(l, WS_OUTBOX_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "outbox ack");
    res->id = id;
    res->amount_micros = sqlite3_changes(l->db); /* 1: removed now, 0: already gone */
    return 0;
}

int ledger_event_list(struct ledger *l, uint64_t after_id, uint32_t max, ledger_event_cb cb,
                      void *arg, struct ledger_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *q = "SELECT id, ts, type, account, detail FROM outbox WHERE id > ?1"
                    " ORDER BY id LIMIT ?2";
    if (sqlite3_prepare_v2(l->db, q, -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(l, err, "list events");
    sqlite3_bind_int64(s, 1, after_id > INT64_MAX ? INT64_MAX : (int64_t)after_id);
    sqlite3_bind_int64(s, 2, max);
    struct ledger_event_view v;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&v, 0, sizeof v);
        v.id = (uint64_t)sqlite3_column_int64(s, 0);
        v.ts_ms = sqlite3_column_int64(s, 1);
        snprintf(v.type, sizeof v.type, "%s", (const char *)sqlite3_column_text(s, 2));
        snprintf(v.account, sizeof v.account, "%s", (const char *)sqlite3_column_text(s, 3));
        snprintf(v.detail_json, sizeof v.detail_json, "%s",
                 (const char *)sqlite3_column_text(s, 4));
        if (cb(arg, &v) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(l, err, "list events");
    return 0;
}

int ledger_outbox_stats(struct ledger *l, struct ledger_outbox_stats *out,
                        struct ledger_error *err)
{
    (void)err;
    out->pending_count = (uint64_t)outbox_count(l);
    out->next_event_id = (uint64_t)watch_meta_get(l, "next_event_id", 1);
    out->dropped_count = (uint64_t)watch_meta_get(l, "events_dropped", 0);
    return 0;
}
