/*
 * methods_watch.c — the alerting reads of the `read` method (docs/rpc.md):
 * `breaker` [account] (its breaker, thresholds and frozen reason) and
 * `events` [] (the pending outbox and its counters).  methods.c dispatches
 * here; the answers are msgpack maps like every other read.
 */
#include <string.h>

#include "cluster/methods_watch.h"
#include "cluster/server.h"

/* At most this many events in one `events` answer (the oldest first). */
#define WATCH_EVENTS_MAX 1000

int methods_watch_breaker(struct node *n, struct conn *c, uint32_t id, const char *account,
                          struct ledger_error *err)
{
    struct ledger_breaker_view v;
    int rc = ledger_breaker_get(n->ledger, account, &v, err);
    msgpack_packer pk;
    size_t start;
    if (rc != 0 || !conn_reply_begin(c, id, &start, &pk))
        return rc;
    static const char *const status_names[] = {"active", "frozen", "closed"};
    msgpack_pack_map(&pk, 19);
    pack_kv_str(&pk, "account", v.account);
    pack_kv_str(&pk, "status", v.status >= 0 && v.status <= 2 ? status_names[v.status] : "?");
    pack_kv_str(&pk, "frozen_reason", v.frozen_reason);
    pack_kv_bool(&pk, "is_set", v.is_set);
    pack_kv_int(&pk, "velocity_max_micros", v.velocity_max_micros);
    pack_kv_int(&pk, "velocity_window_ms", v.velocity_window_ms);
    pack_kv_int(&pk, "velocity_spent_micros", v.velocity_spent_micros);
    pack_kv_int(&pk, "bedtime_start_min", v.bedtime_start_min);
    pack_kv_int(&pk, "bedtime_end_min", v.bedtime_end_min);
    pack_kv_int(&pk, "bedtime_factor_pct", v.bedtime_factor_pct);
    pack_kv_int(&pk, "bedtime_floor_micros", v.bedtime_floor_micros);
    pack_kv_bool(&pk, "is_quiet_now", v.is_quiet_now);
    pack_kv_int(&pk, "bedtime_spent_micros", v.bedtime_spent_micros);
    pack_kv_int(&pk, "bedtime_baseline_micros", v.bedtime_baseline_micros);
    pack_kv_int(&pk, "bedtime_limit_micros", v.bedtime_limit_micros);
    pack_kv_str(&pk, "thresholds", v.thresholds);
    pack_kv_bool(&pk, "is_default_thresholds", v.is_default_thresholds);
    pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
    pack_kv_int(&pk, "now_ms", ledger_now_ms(n->ledger));
    conn_reply_end(c, start);
    return 0;
}

struct watch_events {
    uint32_t count;
    struct ledger_event_view *items;
};

static int watch_event_cb(void *arg, const struct ledger_event_view *e)
{
    struct watch_events *x = arg;
    x->items[x->count++] = *e;
    return 0;
}

int methods_watch_events(struct node *n, struct conn *c, uint32_t id, struct ledger_error *err)
{
    struct ledger_outbox_stats st;
    struct watch_events x = {0, calloc(WATCH_EVENTS_MAX, sizeof *x.items)};
    if (!x.items) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return LEDGER_ENOMEM;
    }
    int rc = ledger_outbox_stats(n->ledger, &st, err);
    if (rc == 0)
        rc = ledger_event_list(n->ledger, 0, WATCH_EVENTS_MAX, watch_event_cb, &x, err);
    msgpack_packer pk;
    size_t start;
    if (rc == 0 && conn_reply_begin(c, id, &start, &pk)) {
        msgpack_pack_map(&pk, 6);
        rpc_pack_str(&pk, "events");
        msgpack_pack_array(&pk, x.count);
        for (uint32_t i = 0; i < x.count; i++) {
            const struct ledger_event_view *e = &x.items[i];
            msgpack_pack_map(&pk, 5);
            pack_kv_int(&pk, "id", (int64_t)e->id);
            pack_kv_int(&pk, "ts_ms", e->ts_ms);
            pack_kv_str(&pk, "type", e->type);
            pack_kv_str(&pk, "account", e->account);
            pack_kv_str(&pk, "detail", e->detail_json);
        }
        pack_kv_int(&pk, "pending_count", (int64_t)st.pending_count);
        pack_kv_int(&pk, "next_event_id", (int64_t)st.next_event_id);
        pack_kv_int(&pk, "dropped_count", (int64_t)st.dropped_count);
        pack_kv_int(&pk, "applied_index", (int64_t)raft_last_applied(&n->raft));
        pack_kv_int(&pk, "now_ms", ledger_now_ms(n->ledger));
        conn_reply_end(c, start);
    }
    free(x.items);
    return rc;
}
