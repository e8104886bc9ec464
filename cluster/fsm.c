/*
 * fsm.c — the raft state machine: the ledger.
 *
 * The ledger lives in memory and is rebuilt at every start from the last
 * snapshot plus the log (PITFALLS.md: raft re-applies every entry after the
 * snapshot, so a persistent database would double-apply).  Entries carry a
 * first byte saying what they are: a ledger batch, a checkpoint (record the
 * state hash at this exact index, for `cluster verify`), or a restore image.
 *
 * apply never fails for a refused command — refusals are results — and
 * returns non-zero only when the ledger itself failed (out of memory), which
 * raft treats as fatal: this replica cannot follow the others any more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/server.h"

void *node_entry_alloc(int type, size_t payload_len, size_t *total_len)
{
    if (payload_len > UINT32_MAX)
        return NULL;
    size_t len = NODE_ENTRY_HEADER_BYTES + ((payload_len + 7) & ~(size_t)7);
    uint8_t *buf = raft_malloc(len);
    if (!buf)
        return NULL;
    memset(buf, 0, len);
    buf[0] = (uint8_t)type;
    for (int i = 0; i < 4; i++)
        buf[4 + i] = (uint8_t)(payload_len >> (8 * i));
    *total_len = len;
    return buf;
}

int node_entry_parse(const void *buf, size_t len, int *type, const uint8_t **payload,
                     size_t *payload_len)
{
    const uint8_t *p = buf;
    if (len < NODE_ENTRY_HEADER_BYTES || len % 8 != 0)
        return -1;
    size_t n = (size_t)p[4] | (size_t)p[5] << 8 | (size_t)p[6] << 16 | (size_t)p[7] << 24;
    if (n > len - NODE_ENTRY_HEADER_BYTES)
        return -1;
    *type = p[0];
    *payload = p + NODE_ENTRY_HEADER_BYTES;
    *payload_len = n;
    return 0;
}

static int fsm_apply_ledger(struct node *n, const uint8_t *payload, size_t len)
{
    struct proto_entry e;
    struct proto_error perr;
    n->apply_count = 0;
    if (proto_entry_decode(payload, len, &e, n->apply_cmds, PROTO_BATCH_MAX, &perr) != 0) {
        /* Only the leader writes entries, after validating every command:
         * this is a bug, the same on every replica.  Skip it everywhere. */
        fprintf(stderr, "purserd: skipping undecodable entry at %llu: %s\n",
                (unsigned long long)(raft_last_applied(&n->raft) + 1), perr.message);
        return 0;
    }
    struct ledger_error err;
    int rc = ledger_apply(n->ledger, &e, n->apply_results, &err);
    if (rc != 0) {
        fprintf(stderr, "purserd: ledger failed at entry %llu: %s\n",
                (unsigned long long)(raft_last_applied(&n->raft) + 1), err.message);
        return RAFT_NOMEM;
    }
    n->apply_count = e.cmd_count;
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct node *n = fsm->data;
    *result = n;
    n->apply_count = 0;
    raft_index index = raft_last_applied(&n->raft) + 1;
    int type = 0;
    const uint8_t *p = NULL;
    size_t len = 0;
    if (node_entry_parse(buf->base, buf->len, &type, &p, &len) != 0) {
        fprintf(stderr, "purserd: skipping malformed entry at %llu\n",
                (unsigned long long)index);
        return 0;
    }
    switch (type) {
    case NODE_ENTRY_LEDGER:
        return fsm_apply_ledger(n, p, len);
    case NODE_ENTRY_NOOP:
        return 0;
    case NODE_ENTRY_CHECKPOINT:
        node_checkpoint_record(n, index);
        return 0;
    case NODE_ENTRY_RESTORE: {
        struct ledger_error err;
        if (ledger_restore(n->ledger, p, len, &err) != 0)
            /* Checked by the leader before proposing: the same everywhere. */
            fprintf(stderr, "purserd: restore entry at %llu refused: %s\n",
                    (unsigned long long)index, err.message);
        return 0;
    }
    default:
        fprintf(stderr, "purserd: skipping entry of unknown type 0x%02x at %llu\n", type,
                (unsigned long long)index);
        return 0;
    }
}

/* Replicas take their snapshots at different log indexes: node id k snapshots
 * at indexes = ((k - 1) mod 3) * T/3 (mod T), T the threshold.  A snapshot
 * stalls its node (the copy on the loop, then a burst of disk writes that
 * the raft log's fsyncs queue behind); with all three at the same index,
 * every quorum stalled together (50-80 ms tails at one connection).
 * Staggered, two nodes are free to form a quorum while the third snapshots.
 * Sets the threshold so that the snapshot after the one at `at` lands on
 * this node's phase, at least half a period later. */
void fsm_snapshot_rephase(struct node *n, raft_index at)
{
    uint64_t t = n->opt.snapshot_threshold;
    if (t < 3) {
        raft_set_snapshot_threshold(&n->raft, (unsigned)t);
        return;
    }
    uint64_t phase = (uint64_t)((n->opt.id - 1) % 3) * (t / 3);
    uint64_t next = at - at % t + phase;
    while (next < at + t / 2)
        next += t;
    raft_set_snapshot_threshold(&n->raft, (unsigned)(next - at));
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct node *n = fsm->data;
    /* Back to normal after the `snapshot` RPC's one snapshot, and on to this
     * node's phase either way. */
    n->is_snapshot_requested = false;
    fsm_snapshot_rephase(n, n->raft.snapshot.pending.index);
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (!b)
        return RAFT_NOMEM;
    struct ledger_error err;
    if (ledger_snapshot(n->ledger, raft_malloc, &b->base, &b->len, &err) != 0) {
        raft_free(b);
        fprintf(stderr, "purserd: snapshot failed: %s\n", err.message);
        return RAFT_NOMEM;
    }
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    struct node *n = fsm->data;
    if (n->snapshot_conn && !n->is_snapshot_requested) {
        /* Written: answer the `snapshot` caller with the snapshot's index. */
        struct conn *c = n->snapshot_conn;
        n->snapshot_conn = NULL;
        msgpack_packer pk;
        size_t start;
        if (conn_reply_begin(c, n->snapshot_id, &start, &pk)) {
            msgpack_pack_map(&pk, 2);
            rpc_pack_str(&pk, "index");
            msgpack_pack_uint64(&pk, n->raft.snapshot.pending.index);
            rpc_pack_str(&pk, "bytes");
            msgpack_pack_uint64(&pk, *n_bufs ? (*bufs)[0].len : 0);
            conn_reply_end(c, start);
        }
        conn_done(c);
    }
    for (unsigned i = 0; i < *n_bufs; i++)
        raft_free((*bufs)[i].base);
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *n = fsm->data;
    struct ledger_error err;
    int rc = ledger_restore(n->ledger, buf->base, buf->len, &err);
    raft_free(buf->base);
    if (rc != 0) {
        fprintf(stderr, "purserd: snapshot restore failed: %s\n", err.message);
        return RAFT_CORRUPT;
    }
    return 0;
}

int fsm_init(struct node *n)
{
    n->apply_cmds = calloc(PROTO_BATCH_MAX, sizeof *n->apply_cmds);
    n->apply_results = calloc(PROTO_BATCH_MAX, sizeof *n->apply_results);
    if (!n->apply_cmds || !n->apply_results)
        return -1;
    memset(&n->fsm, 0, sizeof n->fsm);
    n->fsm.version = 2;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.snapshot_finalize = fsm_snapshot_finalize;
    n->fsm.restore = fsm_restore;
    return 0;
}
