/*
 * sim.c — deterministic simulation of the purser ledger under raft.
 *
 * A 3- or 5-node canonical-raft cluster runs inside raft_fixture (in-memory
 * I/O, simulated time).  Each node's FSM is a real `struct ledger`
 * (ledger_open(NULL)), fed entries framed exactly as purserd frames them
 * (cluster/fsm.c: type byte, 3 zero bytes, payload length LE u32, payload
 * padded to a multiple of 8).  A client model driven by the seed submits
 * batches of keyed commands to the node that believes it leads, while faults
 * are injected between steps: partitions (one-way and two-way), kills and
 * revivals, crash-restarts that rebuild the FSM from snapshot + log, network
 * and disk latency, disk I/O errors (on leader appends; see below for why
 * not elsewhere), leadership transfers and clock jumps.
 *
 * Workarounds for raft 0.15 / raft_fixture problems (none in purser's code),
 * each explained where it lives: the sim keeps its own model of each
 * server's persisted log (the fixture's cannot be restarted from), restarts a
 * follower whose raft counts fewer stored entries than its disk holds, and
 * injects disk errors only where raft 0.15 survives them.
 *
 * Checked after every step, on every node whose state changed since the last
 * check: ledger_verify finds no violation (conservation, no overspend apart
 * from recorded overruns/adjustments, roll-ups), and the state hash at the
 * node's applied index equals every other node's hash at that index.
 * Checked on every acknowledgement: a key answered twice got the same answer.
 * Checked at the end (everything healed, every outstanding key retried until
 * acknowledged, all nodes at the same applied index): equal state hashes,
 * every acknowledged command's effect in the state, nothing applied twice
 * (the journal, reservations and grants are exactly the acknowledged ones).
 *
 * Everything is a function of the seed: one PRNG (splitmix64), no clock, no
 * rand().  `purser_sim --seed S -v` replays one seed with a trace; with
 * several seeds each runs in a child process so a crash names its seed.
 * `--paranoid` hashes every replica after every applied entry.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/fixture.h>

#include "ledger/ledger.h"
#include "proto/proto.h"

/* ---- constants ---- */

#define ENTRY_HEADER_BYTES 8 /* cluster/node.h NODE_ENTRY_HEADER_BYTES */
#define ENTRY_LEDGER 0x01    /* cluster/node.h NODE_ENTRY_LEDGER */

#define SIM_BATCH_MAX 16
#define SIM_NODES_MAX 5
#define USD 1000000LL
#define T_DEC1 1764547200000LL      /* 2025-12-01 00:00:00 UTC, a Monday */
#define CLOCK_SPAN_MAX_MS (20LL * 3600 * 1000) /* stay inside the 24 h idem window */
#define CLIENT_TIMEOUT_MS 4000
#define EXPIRE_EVERY_MS 1000
#define FINAL_MAX_MS 180000

/* ---- PRNG: splitmix64 ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static bool chance(unsigned percent_x10) /* per mille */
{
    return rnd() % 1000 < percent_x10;
}

/* ---- the model's records ---- */

struct sim_cmd {
    uint8_t type;
    uint8_t role;
    char key[24];
    char a[96]; /* account / debit / parent / name / month */
    char b[96]; /* payee / credit / workflow */
    int64_t amount, ttl, on_expire, cap, period, tz, kind;
    uint64_t id; /* reservation / grant */
    bool meta;
    char meta_v[24];
};

enum key_state { K_QUEUED, K_FLIGHT, K_RETRY, K_ACKED };

struct keyrec {
    struct sim_cmd cmd;
    int state;
    int64_t retry_at;
    unsigned submits;
    unsigned acks;
    struct proto_result first;
};

struct sub {
    struct raft_apply req;
    struct sub *next;
    int node;
    unsigned n;
    uint32_t keys[SIM_BATCH_MAX];
    int64_t sent_at;
    bool done, timed_out;
};

struct simnode {
    int idx;
    struct ledger *l;
    struct raft_fsm fsm;
    struct proto_cmd cmds[SIM_BATCH_MAX];
    struct proto_result results[SIM_BATCH_MAX];
    uint32_t nres;
    uint64_t changes, checked;
    int64_t skew_ms;       /* this node's wall clock minus simulated time */
    int64_t last_stamp_ms;
    struct raft_transfer transfer;
    bool transfer_busy;
    bool cut[SIM_NODES_MAX]; /* messages from this node to [j] dropped */
    bool io_fault_armed;
};

/* Open reservations and grants the client knows about (to pick targets). */
struct res_ref {
    uint64_t id;
    int64_t amount;
    bool settled;
};
struct grant_ref {
    uint64_t id;
    char name[96];
    bool closed;
};

struct stats {
    uint64_t seeds, failed_seeds;
    uint64_t steps, raft_events;
    uint64_t cmds_submitted, entries_submitted, cmds_acked, keys, keys_retried;
    uint64_t unknown_outcomes, timeouts, dup_answers;
    uint64_t ok_results, refused_results;
    uint64_t applies, snapshots, restores, verifies, hashes;
    uint64_t effects_checked;
    uint64_t lag_restarts;
    uint64_t f_partition, f_heal, f_kill, f_revive, f_reboot, f_netlat, f_disklat,
        f_iofault, f_transfer, f_clock, f_eto;
    uint64_t sim_ms;
};

#define N_ACCOUNTS 9
static const char *const account_names[N_ACCOUNTS] = {
    "acme", "acme/eng", "acme/eng/bot1", "acme/eng/bot2", "acme/ops",
    "acme/ops/bot3", "beta", "beta/bot4", "beta/svc",
};
static const char *const payees[] = {"vendor/openai", "vendor/anthropic", "", "beta/svc",
                                     "acme/ops"};

static struct {
    uint64_t seed;
    unsigned n_nodes;
    unsigned steps;
    bool verbose;
    bool paranoid; /* hash at every apply, not only once per step */

    struct raft_fixture *f;
    struct simnode nodes[SIM_NODES_MAX];
    bool io_layout_ok;
    unsigned snap_threshold, snap_trailing;
    bool pre_vote;
    int64_t t0;

    struct keyrec *keys;
    uint32_t n_keys, cap_keys;
    uint32_t *queue; /* keys waiting to be sent (new ones) */
    uint32_t n_queue, cap_queue;
    struct sub *subs;
    struct res_ref *res;
    uint32_t n_res, cap_res;
    struct grant_ref *grants;
    uint32_t n_grants, cap_grants;
    int64_t last_expire_ms;
    bool setup_done;
    uint32_t setup_keys;

    /* hash of the state at each applied index (first node to get there) */
    uint8_t (*hash_at)[32];
    bool *hash_set;
    uint64_t cap_hash;

    int failures;
    struct stats st;
} S;

/* ---- output ---- */

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (!S.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%8llu] ", S.f ? (unsigned long long)raft_fixture_time(S.f) : 0ULL);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    S.failures++;
    if (S.failures > 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL seed %llu t=%llu: ", (unsigned long long)S.seed,
           S.f ? (unsigned long long)raft_fixture_time(S.f) : 0ULL);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "purser_sim: out of memory\n");
        abort();
    }
    return q;
}

static void hex8(const uint8_t *h, char out[17])
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* ---- the FSM: a ledger ---- */

static void record_hash(struct simnode *n, raft_index index)
{
    uint8_t h[32];
    struct ledger_error err;
    if (ledger_state_hash(n->l, h, &err) != 0) {
        fail("node %d: ledger_state_hash: %s", n->idx, err.message);
        return;
    }
    S.st.hashes++;
    if (index >= S.cap_hash) {
        uint64_t cap = S.cap_hash ? S.cap_hash : 256;
        while (cap <= index)
            cap *= 2;
        S.hash_at = xrealloc(S.hash_at, cap * sizeof *S.hash_at);
        S.hash_set = xrealloc(S.hash_set, cap * sizeof *S.hash_set);
        memset(S.hash_set + S.cap_hash, 0, (cap - S.cap_hash) * sizeof *S.hash_set);
        S.cap_hash = cap;
    }
    if (!S.hash_set[index]) {
        memcpy(S.hash_at[index], h, 32);
        S.hash_set[index] = true;
    } else if (memcmp(S.hash_at[index], h, 32) != 0) {
        char a[17], b[17];
        hex8(S.hash_at[index], a);
        hex8(h, b);
        fail("replicas diverge: node %d state hash %s at applied index %llu, another node had %s",
             n->idx, b, (unsigned long long)index, a);
    }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct simnode *n = fsm->data;
    struct raft *r = raft_fixture_get(S.f, (unsigned)n->idx);
    raft_index index = raft_last_applied(r) + 1;
    const uint8_t *p = buf->base;
    *result = NULL;
    n->nres = 0;
    n->changes++;
    S.st.applies++;
    if (buf->len < ENTRY_HEADER_BYTES || buf->len % 8 != 0 || p[0] != ENTRY_LEDGER ||
        p[1] || p[2] || p[3]) {
        fail("node %d: malformed entry at %llu (len %zu)", n->idx, (unsigned long long)index,
             buf->len);
        return 0;
    }
    size_t len = (size_t)p[4] | (size_t)p[5] << 8 | (size_t)p[6] << 16 | (size_t)p[7] << 24;
    if (len > buf->len - ENTRY_HEADER_BYTES) {
        fail("node %d: entry length %zu beyond buffer at %llu", n->idx, len,
             (unsigned long long)index);
        return 0;
    }
    struct proto_entry e;
    struct proto_error perr;
    if (proto_entry_decode(p + ENTRY_HEADER_BYTES, len, &e, n->cmds, SIM_BATCH_MAX, &perr) != 0) {
        fail("node %d: undecodable entry at %llu: %s", n->idx, (unsigned long long)index,
             perr.message);
        return 0;
    }
    struct ledger_error err;
    int rc = ledger_apply(n->l, &e, n->results, &err);
    if (rc != 0) {
        /* purserd returns RAFT_NOMEM here (halting the replica); the sim
         * reports it and keeps going so the seed finishes. */
        fail("node %d: ledger_apply hard error %d at %llu: %s", n->idx, rc,
             (unsigned long long)index, err.message);
        return 0;
    }
    n->nres = e.cmd_count;
    *result = n;
    if (S.paranoid) {
        record_hash(n, index);
        trace("node %d: applied %llu (%u cmds, ts %lld): ledger entries %llu now %lld", n->idx,
              (unsigned long long)index, e.cmd_count, (long long)e.timestamp_ms,
              (unsigned long long)ledger_entries_applied(n->l), (long long)ledger_now_ms(n->l));
    }
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct simnode *n = fsm->data;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (!b)
        return RAFT_NOMEM;
    struct ledger_error err;
    if (ledger_snapshot(n->l, raft_malloc, &b->base, &b->len, &err) != 0) {
        raft_free(b);
        fail("node %d: ledger_snapshot: %s", n->idx, err.message);
        return RAFT_NOMEM;
    }
    S.st.snapshots++;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    (void)fsm;
    for (unsigned i = 0; i < *n_bufs; i++)
        raft_free((*bufs)[i].base);
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct simnode *n = fsm->data;
    struct ledger_error err;
    int rc = ledger_restore(n->l, buf->base, buf->len, &err);
    raft_free(buf->base);
    n->changes++;
    S.st.restores++;
    trace("node %d: snapshot restored", n->idx);
    if (rc != 0) {
        fail("node %d: ledger_restore: %s", n->idx, err.message);
        return RAFT_CORRUPT;
    }
    return 0;
}

static void node_fsm_init(struct simnode *n)
{
    memset(&n->fsm, 0, sizeof n->fsm);
    n->fsm.version = 2;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.snapshot_finalize = fsm_snapshot_finalize;
    n->fsm.restore = fsm_restore;
}

static void node_ledger_open(struct simnode *n)
{
    struct ledger_error err;
    if (ledger_open(&n->l, NULL, &err) != 0) {
        fprintf(stderr, "purser_sim: ledger_open: %s\n", err.message);
        exit(2);
    }
}

/* ---- links: a directed link drops messages when cut or either end is dead ---- */

static void apply_links(void)
{
    for (unsigned i = 0; i < S.n_nodes; i++)
        for (unsigned j = 0; j < S.n_nodes; j++) {
            if (i == j)
                continue;
            bool want = S.nodes[i].cut[j] || !raft_fixture_alive(S.f, i) ||
                        !raft_fixture_alive(S.f, j);
            bool is = raft_fixture_saturated(S.f, i, j);
            if (want && !is)
                raft_fixture_saturate(S.f, i, j);
            else if (!want && is)
                raft_fixture_desaturate(S.f, i, j);
        }
}

/* ---- crash-restart support ----
 *
 * raft_fixture has kill/revive (stop ticks and messages) but no restart.  A
 * restart closes the raft instance and starts a new one on the same in-memory
 * "disk" with a fresh, empty ledger: raft then restores the last snapshot and
 * re-applies the log, as purserd does at every start.  raft_close must not
 * run while the fixture still holds I/O requests of that server (their
 * callbacks would land in the new instance), so the sim waits until the
 * server's request queue is empty.  That queue is private to fixture.c: the
 * struct below mirrors the head of `struct io` in canonical raft v0.15.0
 * src/fixture.c, and is only trusted when its identity fields match (else
 * restarts are skipped). */
struct fixture_io_head {
    struct raft_io *io;
    unsigned index;
    raft_time *time;
    raft_time next_tick;
    raft_term term;
    raft_id voted_for;
    struct raft_snapshot *snapshot;
    struct raft_entry *entries;
    size_t n;
    raft_id id;
    const char *address;
    unsigned tick_interval;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    void *requests[2];
};

static bool io_layout_check(void)
{
    for (unsigned i = 0; i < S.n_nodes; i++) {
        struct fixture_io_head *h = S.f->servers[i].io.impl;
        if (h->io != &S.f->servers[i].io || h->index != i || h->time != &S.f->time ||
            h->id != S.f->servers[i].id)
            return false;
    }
    return true;
}

/* The fixture's in-memory "disk" is not good enough to restart from: it
 * keeps entries in one array in the order appends complete (a disk latency
 * change reorders them), truncates at once while earlier appends are still
 * pending (they land after the truncation), assumes the array starts at
 * index 1 and reports it at load as starting after the snapshot (wrong once
 * a snapshot keeps trailing entries), and copies past the array's end on a
 * truncate after an installed snapshot.  raft_uv orders writes and
 * truncations and has none of this.  So the sim keeps its own model of each
 * server's persisted log: an append's entries (the last n of raft's
 * in-memory log when it asks) land at their indexes when the write
 * completes; a truncation drops entries at and after its index, including
 * those of writes still pending; load hands raft this model.  (Fixture
 * bugs, in canonical raft 0.15 and still in its last release; not purser's.)
 */
struct disk {
    raft_index first;          /* index of slot 0 */
    struct raft_entry *slot;   /* buf.base NULL: nothing persisted there */
    size_t n;
};
static struct disk disk[SIM_NODES_MAX];

struct pending_append {
    struct pending_append *next;
    unsigned node;
    struct raft_io_append *req;
    raft_io_append_cb cb;
    raft_index first;
    raft_index cap; /* entries above it were truncated while pending */
    unsigned n;
    struct raft_entry *copy;
};
static struct pending_append *pending_appends;

static int (*fixture_load)(struct raft_io *, raft_term *, raft_id *, struct raft_snapshot **,
                           raft_index *, struct raft_entry **, size_t *);
static int (*fixture_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[],
                             unsigned, raft_io_append_cb);

static unsigned io_node(struct raft_io *io)
{
    return ((struct fixture_io_head *)io->impl)->index;
}

static void disk_drop_from(unsigned i, raft_index index)
{
    struct disk *d = &disk[i];
    for (size_t j = 0; j < d->n; j++)
        if (d->first + j >= index && d->slot[j].buf.base) {
            raft_free(d->slot[j].buf.base);
            d->slot[j].buf.base = NULL;
        }
    while (d->n && !d->slot[d->n - 1].buf.base)
        d->n--;
}

static void disk_put(unsigned i, raft_index index, const struct raft_entry *e)
{
    struct disk *d = &disk[i];
    if (!d->n) {
        d->first = index;
    } else if (index < d->first) {
        size_t shift = (size_t)(d->first - index);
        d->slot = xrealloc(d->slot, (d->n + shift) * sizeof *d->slot);
        memmove(d->slot + shift, d->slot, d->n * sizeof *d->slot);
        memset(d->slot, 0, shift * sizeof *d->slot);
        d->n += shift;
        d->first = index;
    }
    size_t j = (size_t)(index - d->first);
    if (j >= d->n) {
        d->slot = xrealloc(d->slot, (j + 1) * sizeof *d->slot);
        memset(d->slot + d->n, 0, (j + 1 - d->n) * sizeof *d->slot);
        d->n = j + 1;
    }
    struct raft_entry *s = &d->slot[j];
    if (s->buf.base)
        raft_free(s->buf.base);
    s->term = e->term;
    s->type = e->type;
    s->buf.len = e->buf.len;
    s->buf.base = raft_malloc(e->buf.len ? e->buf.len : 1);
    if (!s->buf.base)
        abort();
    memcpy(s->buf.base, e->buf.base, e->buf.len);
    s->batch = NULL;
}

static void disk_free(unsigned i)
{
    disk_drop_from(i, 0);
    free(disk[i].slot);
    memset(&disk[i], 0, sizeof disk[i]);
}

/* Highest index persisted contiguously from the start of the model. */
static raft_index disk_last(unsigned i)
{
    struct disk *d = &disk[i];
    size_t j = 0;
    while (j < d->n && d->slot[j].buf.base)
        j++;
    return d->first + j - 1;
}

static void sim_append_cb(struct raft_io_append *req, int status)
{
    struct pending_append **pp = &pending_appends, *p;
    while ((p = *pp) && p->req != req)
        pp = &p->next;
    if (!p) {
        fail("append completion for an unknown request");
        return;
    }
    *pp = p->next;
    if (status == 0)
        for (unsigned k = 0; k < p->n; k++)
            if (p->first + k <= p->cap)
                disk_put(p->node, p->first + k, &p->copy[k]);
    for (unsigned k = 0; k < p->n; k++)
        raft_free(p->copy[k].buf.base);
    free(p->copy);
    raft_io_append_cb cb = p->cb;
    free(p);
    cb(req, status);
}

static int sim_io_truncate(struct raft_io *io, raft_index index)
{
    unsigned i = io_node(io);
    disk_drop_from(i, index);
    for (struct pending_append *p = pending_appends; p; p = p->next)
        if (p->node == i && p->cap >= index)
            p->cap = index - 1;
    return 0;
}

static int sim_io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                       struct raft_snapshot **snapshot, raft_index *start_index,
                       struct raft_entry **entries, size_t *n_entries)
{
    unsigned i = io_node(io);
    int rv = fixture_load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rv != 0)
        return rv;
    /* replace the fixture's entries with the model's */
    if (*n_entries)
        raft_free((*entries)[0].batch);
    raft_free(*entries);
    struct disk *d = &disk[i];
    raft_index last = disk_last(i);
    for (size_t j = (size_t)(last + 1 - d->first); j < d->n; j++)
        if (d->slot[j].buf.base)
            fail("node %u: persisted log has a hole before index %llu", i,
                 (unsigned long long)(d->first + j));
    size_t n = d->n ? (size_t)(last + 1 - d->first) : 0;
    raft_index start = d->n ? d->first : 1;
    if (*snapshot && (start > (*snapshot)->index + 1 || last < (*snapshot)->index)) {
        /* nothing usable after the snapshot: start right after it */
        if (start > (*snapshot)->index + 1)
            fail("node %u: persisted log starts at %llu, after snapshot %llu + 1", i,
                 (unsigned long long)start, (unsigned long long)(*snapshot)->index);
        n = 0;
        start = (*snapshot)->index + 1;
    }
    *start_index = start;
    *n_entries = n;
    *entries = n ? raft_malloc(n * sizeof **entries) : NULL;
    for (size_t j = 0; j < n; j++) {
        struct raft_entry *s = &d->slot[j], *e = &(*entries)[j];
        *e = *s;
        e->buf.base = raft_malloc(s->buf.len ? s->buf.len : 1);
        memcpy(e->buf.base, s->buf.base, s->buf.len);
        e->batch = NULL;
    }
    return 0;
}

/* Disk I/O errors.  raft_fixture_io_fault fails the next append, send,
 * set_term or set_vote of a server, whatever its role, and canonical raft
 * 0.15 does not survive all of those: a follower that hits an I/O error while
 * handling AppendEntries double-frees (ASan "attempting double-free" in
 * recvCb's error path to convertToUnavailable), and a server whose set_vote
 * fails when it becomes a candidate (e.g. on TimeoutNow during a leadership
 * transfer) clears its follower state twice and frees a garbage pointer
 * (SEGV).  Both are raft bugs a full disk could trigger in purserd.  By
 * default the sim therefore injects its own errors with the fixture's
 * countdown semantics, on the one path raft 0.15 handles: a leader's append
 * (raft_apply answers the error; the client retries).  --fixture-io-faults
 * uses raft_fixture_io_fault instead and reproduces the crashes. */
static bool fixture_io_faults;
static struct {
    int countdown, n;
} iofault[SIM_NODES_MAX];
static bool iofault_tick(unsigned i)
{
    if (iofault[i].countdown < 0)
        return false;
    if (iofault[i].countdown > 0) {
        iofault[i].countdown--;
        return false;
    }
    if (iofault[i].n > 0) {
        iofault[i].n--;
        return true;
    }
    iofault[i].countdown = -1;
    return false;
}

static int sim_io_append(struct raft_io *io, struct raft_io_append *req,
                         const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct raft *r = io->data;
    if (r->state == RAFT_LEADER && iofault_tick(io_node(io)))
        return RAFT_IOERR;
    /* raft appends the last n entries of its in-memory log */
    struct pending_append *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->node = io_node(io);
    p->req = req;
    p->cb = cb;
    p->n = n;
    p->first = raft_last_index(r) - n + 1;
    p->cap = (raft_index)-1;
    p->copy = calloc(n, sizeof *p->copy);
    for (unsigned k = 0; k < n; k++) {
        p->copy[k] = entries[k];
        p->copy[k].buf.base = raft_malloc(entries[k].buf.len ? entries[k].buf.len : 1);
        memcpy(p->copy[k].buf.base, entries[k].buf.base, entries[k].buf.len);
        p->copy[k].batch = NULL;
    }
    int rv = fixture_append(io, req, entries, n, sim_append_cb);
    if (rv != 0) {
        for (unsigned k = 0; k < n; k++)
            raft_free(p->copy[k].buf.base);
        free(p->copy);
        free(p);
        return rv;
    }
    p->next = pending_appends;
    pending_appends = p;
    return 0;
}

static void io_fault_arm(unsigned i, int delay, int repeat)
{
    if (fixture_io_faults || !S.io_layout_ok) {
        raft_fixture_io_fault(S.f, i, delay, repeat);
        return;
    }
    iofault[i].countdown = delay;
    iofault[i].n = repeat;
}

static void io_fault_disarm(unsigned i)
{
    raft_fixture_io_fault(S.f, i, -1, 0);
    iofault[i].countdown = -1;
    iofault[i].n = 0;
}

static bool io_idle(unsigned i)
{
    struct fixture_io_head *h = S.f->servers[i].io.impl;
    return h->requests[0] == (void *)&h->requests;
}

static void raft_configure(struct raft *r)
{
    raft_set_election_timeout(r, 1000);
    raft_set_heartbeat_timeout(r, 100);
    raft_set_install_snapshot_timeout(r, 30000);
    raft_set_snapshot_threshold(r, S.snap_threshold);
    raft_set_snapshot_trailing(r, S.snap_trailing);
    raft_set_pre_vote(r, S.pre_vote);
}

static bool idle_cb(struct raft_fixture *f, void *arg)
{
    (void)f;
    return io_idle((unsigned)(uintptr_t)arg);
}

/* Crash node i and start it again with an empty FSM.  Returns false when it
 * could not (left killed). */
static bool reboot(unsigned i)
{
    if (!S.io_layout_ok)
        return false;
    struct raft_fixture_server *s = &S.f->servers[i];
    struct simnode *n = &S.nodes[i];
    if (raft_fixture_alive(S.f, i))
        raft_fixture_kill(S.f, i);
    apply_links();
    /* a dead server still completes its queued I/O: let it drain */
    if (!raft_fixture_step_until(S.f, idle_cb, (void *)(uintptr_t)i, 10000)) {
        trace("node %u: I/O did not drain, restart skipped", i);
        return false;
    }
    io_fault_disarm(i);
    n->io_fault_armed = false;
    raft_close(&s->raft, NULL);
    /* raft_close answered any pending transfer; forget it anyway */
    n->transfer_busy = false;
    ledger_close(n->l);
    node_ledger_open(n);
    n->changes++;
    n->nres = 0;
    n->last_stamp_ms = 0;
    int rv = raft_init(&s->raft, &s->io, &n->fsm, s->id, s->address);
    if (rv != 0) {
        fail("node %u: raft_init on restart: %s", i, raft_strerror(rv));
        return false;
    }
    raft_configure(&s->raft);
    s->raft.tracer = &s->tracer;
    rv = raft_start(&s->raft);
    if (rv != 0) {
        fail("node %u: raft_start on restart: %s (%s)", i, raft_strerror(rv),
             raft_errmsg(&s->raft));
        return false;
    }
    raft_fixture_revive(S.f, i);
    apply_links();
    trace("node %u: restarted (applied %llu after restore)", i,
          (unsigned long long)raft_last_applied(&s->raft));
    return true;
}

/* ---- keys and commands ---- */

static uint32_t key_new(const struct sim_cmd *c)
{
    if (S.n_keys == S.cap_keys) {
        S.cap_keys = S.cap_keys ? S.cap_keys * 2 : 1024;
        S.keys = xrealloc(S.keys, S.cap_keys * sizeof *S.keys);
    }
    uint32_t k = S.n_keys++;
    struct keyrec *kr = &S.keys[k];
    memset(kr, 0, sizeof *kr);
    kr->cmd = *c;
    snprintf(kr->cmd.key, sizeof kr->cmd.key, "k%u", k);
    kr->state = K_QUEUED;
    if (S.n_queue == S.cap_queue) {
        S.cap_queue = S.cap_queue ? S.cap_queue * 2 : 256;
        S.queue = xrealloc(S.queue, S.cap_queue * sizeof *S.queue);
    }
    S.queue[S.n_queue++] = k;
    S.st.keys++;
    return k;
}

static void to_proto(const struct sim_cmd *c, struct proto_cmd *p)
{
    memset(p, 0, sizeof *p);
    p->type = c->type;
    p->role = c->role;
    p->key = proto_str_c(c->key);
    struct proto_map *meta = NULL;
    switch (c->type) {
    case PROTO_CMD_ACCOUNT_CREATE:
        p->u.account.name = proto_str_c(c->a);
        p->u.account.cap_micros = c->cap;
        p->u.account.period = c->period;
        p->u.account.tz_offset_min = c->tz;
        break;
    case PROTO_CMD_ACCOUNT_FREEZE:
    case PROTO_CMD_ACCOUNT_UNFREEZE:
        p->u.status.name = proto_str_c(c->a);
        p->u.status.reason = proto_str_c("sim");
        break;
    case PROTO_CMD_RESERVE:
        p->u.reserve.account = proto_str_c(c->a);
        p->u.reserve.payee = proto_str_c(c->b);
        p->u.reserve.amount_micros = c->amount;
        p->u.reserve.ttl_ms = c->ttl;
        p->u.reserve.on_expire = c->on_expire;
        meta = &p->u.reserve.metadata;
        break;
    case PROTO_CMD_COMMIT:
        p->u.commit.reservation_id = c->id;
        p->u.commit.actual_micros = c->amount;
        meta = &p->u.commit.metadata;
        break;
    case PROTO_CMD_RELEASE:
        p->u.release.reservation_id = c->id;
        break;
    case PROTO_CMD_EXPIRE:
        break;
    case PROTO_CMD_TRANSFER:
        p->u.transfer.debit = proto_str_c(c->a);
        p->u.transfer.credit = proto_str_c(c->b);
        p->u.transfer.amount_micros = c->amount;
        p->u.transfer.kind = c->kind;
        meta = &p->u.transfer.metadata;
        break;
    case PROTO_CMD_GRANT_CREATE:
        p->u.grant_create.parent = proto_str_c(c->a);
        p->u.grant_create.workflow = proto_str_c(c->b);
        p->u.grant_create.amount_micros = c->amount;
        p->u.grant_create.ttl_ms = c->ttl;
        meta = &p->u.grant_create.metadata;
        break;
    case PROTO_CMD_GRANT_CLOSE:
        p->u.grant_close.grant_id = c->id;
        break;
    case PROTO_CMD_PERIOD_CLOSE:
        p->u.period_close.month = proto_str_c(c->a);
        break;
    case PROTO_CMD_BREAKER_SET: /* the generic fields carry its numbers */
        p->u.breaker_set.account = proto_str_c(c->a);
        p->u.breaker_set.velocity_max_micros = c->amount;
        p->u.breaker_set.velocity_window_ms = c->ttl;
        p->u.breaker_set.bedtime_start_min = c->tz;
        p->u.breaker_set.bedtime_end_min = c->period;
        p->u.breaker_set.bedtime_factor_pct = c->cap;
        p->u.breaker_set.bedtime_floor_micros = c->on_expire;
        break;
    case PROTO_CMD_EVENT_ACK:
        p->u.event_ack.event_id = c->id;
        break;
    default:
        break;
    }
    if (meta && c->meta) {
        meta->count = 1;
        meta->kv[0].key = proto_str_c("task");
        meta->kv[0].value = proto_str_c(c->meta_v);
    }
}

static bool result_eq(const struct proto_result *a, const struct proto_result *b)
{
    return a->status == b->status && a->id == b->id && a->amount_micros == b->amount_micros &&
           a->remaining_micros == b->remaining_micros && a->expires_at_ms == b->expires_at_ms &&
           a->transfer_id == b->transfer_id && a->overrun_micros == b->overrun_micros &&
           a->returned_micros == b->returned_micros && strcmp(a->name, b->name) == 0 &&
           strcmp(a->message, b->message) == 0;
}

static void res_add(uint64_t id, int64_t amount)
{
    if (S.n_res == S.cap_res) {
        S.cap_res = S.cap_res ? S.cap_res * 2 : 256;
        S.res = xrealloc(S.res, S.cap_res * sizeof *S.res);
    }
    S.res[S.n_res++] = (struct res_ref){id, amount, false};
}

static void grant_add(uint64_t id, const char *name)
{
    if (S.n_grants == S.cap_grants) {
        S.cap_grants = S.cap_grants ? S.cap_grants * 2 : 64;
        S.grants = xrealloc(S.grants, S.cap_grants * sizeof *S.grants);
    }
    struct grant_ref *g = &S.grants[S.n_grants++];
    g->id = id;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->closed = false;
}

static void key_ack(uint32_t k, const struct proto_result *r)
{
    struct keyrec *kr = &S.keys[k];
    S.st.cmds_acked++;
    kr->acks++;
    if (kr->state == K_ACKED) {
        S.st.dup_answers++;
        if (!result_eq(&kr->first, r))
            fail("key %s (%s) answered twice differently: first %s id=%llu amount=%lld "
                 "remaining=%lld transfer=%llu '%s', then %s id=%llu amount=%lld remaining=%lld "
                 "transfer=%llu '%s'",
                 kr->cmd.key, proto_cmd_type_name(kr->cmd.type),
                 proto_status_name(kr->first.status), (unsigned long long)kr->first.id,
                 (long long)kr->first.amount_micros, (long long)kr->first.remaining_micros,
                 (unsigned long long)kr->first.transfer_id, kr->first.message,
                 proto_status_name(r->status), (unsigned long long)r->id,
                 (long long)r->amount_micros, (long long)r->remaining_micros,
                 (unsigned long long)r->transfer_id, r->message);
        return;
    }
    kr->state = K_ACKED;
    kr->first = *r;
    if (r->status == PROTO_OK)
        S.st.ok_results++;
    else
        S.st.refused_results++;
    trace("  ack %s %s -> %s id=%llu amount=%lld %s", kr->cmd.key,
          proto_cmd_type_name(kr->cmd.type), proto_status_name(r->status),
          (unsigned long long)r->id, (long long)r->amount_micros, r->status ? r->message : "");
    if (r->status != PROTO_OK)
        return;
    switch (kr->cmd.type) {
    case PROTO_CMD_RESERVE:
        res_add(r->id, kr->cmd.amount);
        break;
    case PROTO_CMD_COMMIT:
    case PROTO_CMD_RELEASE:
        for (uint32_t i = 0; i < S.n_res; i++)
            if (S.res[i].id == kr->cmd.id)
                S.res[i].settled = true;
        break;
    case PROTO_CMD_GRANT_CREATE:
        grant_add(r->id, r->name);
        break;
    case PROTO_CMD_GRANT_CLOSE:
        for (uint32_t i = 0; i < S.n_grants; i++)
            if (S.grants[i].id == kr->cmd.id)
                S.grants[i].closed = true;
        break;
    default:
        break;
    }
}

static void key_unknown(uint32_t k, const char *why)
{
    struct keyrec *kr = &S.keys[k];
    if (kr->state == K_ACKED)
        return;
    if (kr->state != K_RETRY)
        S.st.keys_retried++;
    kr->state = K_RETRY;
    kr->retry_at = (int64_t)raft_fixture_time(S.f) + rnd_range(0, 500);
    trace("  unknown %s (%s): retry", kr->cmd.key, why);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct sub *s = req->data;
    s->done = true;
    if (status == 0) {
        struct simnode *n = result;
        if (!n || n->nres != s->n) {
            fail("entry from node %d acknowledged without %u results", s->node, s->n);
            for (unsigned i = 0; i < s->n; i++)
                key_unknown(s->keys[i], "no result");
            return;
        }
        for (unsigned i = 0; i < s->n; i++)
            key_ack(s->keys[i], &n->results[i]);
    } else {
        S.st.unknown_outcomes += s->n;
        trace("entry from node %d failed: %s", s->node, raft_strerror(status));
        for (unsigned i = 0; i < s->n; i++)
            key_unknown(s->keys[i], raft_strerror(status));
    }
}

/* The leader's stamp: its clock, never behind its last stamp nor its ledger. */
static int64_t node_stamp(unsigned i)
{
    struct simnode *n = &S.nodes[i];
    int64_t now = S.t0 + (int64_t)raft_fixture_time(S.f) + n->skew_ms;
    if (now < n->last_stamp_ms)
        now = n->last_stamp_ms;
    if (now < ledger_now_ms(n->l))
        now = ledger_now_ms(n->l);
    n->last_stamp_ms = now;
    return now;
}

/* Propose keys[0..n) as one entry on node i. */
static void submit(unsigned i, const uint32_t *keys, unsigned n)
{
    struct proto_cmd cmds[SIM_BATCH_MAX];
    for (unsigned j = 0; j < n; j++)
        to_proto(&S.keys[keys[j]].cmd, &cmds[j]);
    struct proto_entry e = {.timestamp_ms = node_stamp(i), .cmd_count = n, .cmds = cmds};
    struct proto_buf pb;
    proto_buf_init(&pb);
    if (proto_entry_encode(&pb, &e) != 0) {
        fprintf(stderr, "purser_sim: encode failed\n");
        abort();
    }
    size_t len = ENTRY_HEADER_BYTES + ((pb.len + 7) & ~(size_t)7);
    uint8_t *buf = raft_malloc(len);
    if (!buf)
        abort();
    memset(buf, 0, len);
    buf[0] = ENTRY_LEDGER;
    for (int b = 0; b < 4; b++)
        buf[4 + b] = (uint8_t)(pb.len >> (8 * b));
    memcpy(buf + ENTRY_HEADER_BYTES, pb.data, pb.len);
    proto_buf_free(&pb);

    struct sub *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->node = (int)i;
    s->n = n;
    memcpy(s->keys, keys, n * sizeof *keys);
    s->sent_at = (int64_t)raft_fixture_time(S.f);
    s->req.data = s;
    s->next = S.subs;
    S.subs = s;
    for (unsigned j = 0; j < n; j++) {
        struct keyrec *kr = &S.keys[keys[j]];
        kr->submits++;
        if (kr->state != K_ACKED)
            kr->state = K_FLIGHT;
    }
    struct raft_buffer rb = {.base = buf, .len = len};
    if (S.verbose) {
        trace("node %u: propose %u cmd(s) ts=%lld:", i, n, (long long)e.timestamp_ms);
        for (unsigned j = 0; j < n; j++) {
            const struct sim_cmd *c = &S.keys[keys[j]].cmd;
            trace("    %s %s a=%s b=%s amount=%lld id=%llu ttl=%lld", c->key,
                  proto_cmd_type_name(c->type), c->a, c->b, (long long)c->amount,
                  (unsigned long long)c->id, (long long)c->ttl);
        }
    }
    S.st.entries_submitted++;
    S.st.cmds_submitted += n;
    int rv = raft_apply(raft_fixture_get(S.f, i), &s->req, &rb, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf); /* not taken: ours to free */
        s->done = true;
        trace("node %u: raft_apply: %s", i, raft_strerror(rv));
        for (unsigned j = 0; j < n; j++)
            key_unknown(keys[j], raft_strerror(rv));
    }
}

/* ---- the client model ---- */

static const char *pick_account(void)
{
    /* mostly leaves, sometimes an open grant, sometimes an inner account */
    if (S.n_grants && chance(250)) {
        for (int tries = 0; tries < 4; tries++) {
            struct grant_ref *g = &S.grants[rnd() % S.n_grants];
            if (!g->closed || chance(100))
                return g->name;
        }
    }
    return account_names[rnd() % N_ACCOUNTS];
}

static int64_t pick_amount(void)
{
    if (chance(100))
        return rnd_range(1, 100);
    return rnd_range(1000, 3 * USD);
}

static void gen_setup(void)
{
    for (unsigned i = 0; i < N_ACCOUNTS; i++) {
        struct sim_cmd c;
        memset(&c, 0, sizeof c);
        c.type = PROTO_CMD_ACCOUNT_CREATE;
        c.role = PROTO_ROLE_ADMIN;
        snprintf(c.a, sizeof c.a, "%s", account_names[i]);
        /* caps: some tight, some loose, some none; periods and offsets vary */
        int64_t r = rnd_range(0, 9);
        c.cap = r < 3 ? PROTO_CAP_NONE : r < 5 ? rnd_range(1, 5) * USD : rnd_range(20, 200) * USD;
        if (strcmp(c.a, "beta/svc") == 0)
            c.cap = PROTO_CAP_NONE;
        c.period = rnd_range(0, 3);
        static const int tzs[] = {0, 60, -300, 330, 840, -840, 0};
        c.tz = tzs[rnd() % 7];
        key_new(&c);
    }
    S.setup_keys = N_ACCOUNTS;
}

static void gen_one(void)
{
    struct sim_cmd c;
    memset(&c, 0, sizeof c);
    c.role = PROTO_ROLE_AGENT;
    if (chance(300)) {
        c.meta = true;
        snprintf(c.meta_v, sizeof c.meta_v, "t%llu", (unsigned long long)rnd_range(1, 50));
    }
    uint64_t roll = rnd() % 1000;
    /* open reservations the client could settle */
    uint32_t open_idx = UINT32_MAX;
    if (S.n_res) {
        for (int tries = 0; tries < 8; tries++) {
            /* recent ones are more likely still open */
            uint32_t j = (uint32_t)(rnd() % S.n_res);
            if (chance(500) && S.n_res > 16)
                j = S.n_res - 1 - (uint32_t)(rnd() % 16);
            if (!S.res[j].settled || chance(50)) {
                open_idx = j;
                break;
            }
        }
    }
    if (roll < 380 || (roll < 700 && open_idx == UINT32_MAX)) {
        c.type = PROTO_CMD_RESERVE;
        snprintf(c.a, sizeof c.a, "%s", pick_account());
        snprintf(c.b, sizeof c.b, "%s", payees[rnd() % (sizeof payees / sizeof *payees)]);
        c.amount = pick_amount();
        c.ttl = chance(300) ? rnd_range(50, 3000) : rnd_range(5000, 3600000);
        c.on_expire = chance(300) ? PROTO_ON_EXPIRE_CHARGE : PROTO_ON_EXPIRE_RELEASE;
    } else if (roll < 600) {
        struct res_ref *rr = &S.res[open_idx];
        c.type = PROTO_CMD_COMMIT;
        c.id = rr->id;
        uint64_t how = rnd() % 10;
        c.amount = how < 5 ? rnd_range(0, rr->amount) /* less */
                   : how < 8 ? rr->amount             /* equal */
                             : rr->amount + rnd_range(1, rr->amount / 2 + 1); /* more */
    } else if (roll < 700) {
        c.type = PROTO_CMD_RELEASE;
        c.id = S.res[open_idx].id;
    } else if (roll < 780) {
        c.type = PROTO_CMD_TRANSFER;
        c.kind = PROTO_KIND_CHARGEBACK;
        snprintf(c.a, sizeof c.a, "%s", pick_account());
        do
            snprintf(c.b, sizeof c.b, "%s", account_names[rnd() % N_ACCOUNTS]);
        while (strcmp(c.a, c.b) == 0);
        c.amount = pick_amount();
    } else if (roll < 795) {
        c.type = PROTO_CMD_TRANSFER;
        c.kind = PROTO_KIND_ADJUSTMENT;
        c.role = PROTO_ROLE_ADMIN;
        snprintf(c.a, sizeof c.a, "%s", account_names[rnd() % N_ACCOUNTS]);
        do
            snprintf(c.b, sizeof c.b, "%s",
                     chance(300) ? "vendor/openai" : account_names[rnd() % N_ACCOUNTS]);
        while (strcmp(c.a, c.b) == 0);
        c.amount = pick_amount();
    } else if (roll < 880) {
        c.type = PROTO_CMD_GRANT_CREATE;
        snprintf(c.a, sizeof c.a, "%s", pick_account());
        snprintf(c.b, sizeof c.b, "wf%llu", (unsigned long long)rnd_range(1, 9));
        c.amount = rnd_range(1000, 4 * USD);
        c.ttl = chance(300) ? rnd_range(100, 5000) : rnd_range(10000, 7200000);
    } else if (roll < 940) {
        c.type = PROTO_CMD_GRANT_CLOSE;
        if (S.n_grants)
            c.id = S.grants[rnd() % S.n_grants].id;
        else
            c.id = (uint64_t)rnd_range(1, 5);
    } else if (roll < 960) {
        /* freezes are short: unfreeze twice as often; mostly leaves */
        c.type = chance(333) ? PROTO_CMD_ACCOUNT_FREEZE : PROTO_CMD_ACCOUNT_UNFREEZE;
        c.role = PROTO_ROLE_ADMIN;
        snprintf(c.a, sizeof c.a, "%s",
                 account_names[chance(200) ? rnd() % N_ACCOUNTS : 2 + rnd() % 2]);
    } else if (roll < 965) {
        c.type = PROTO_CMD_PERIOD_CLOSE;
        c.role = PROTO_ROLE_ADMIN;
        snprintf(c.a, sizeof c.a, "2025-11");
    } else if (roll < 975) {
        /* an agent trying an admin command: refused (forbidden) */
        c.type = PROTO_CMD_TRANSFER;
        c.kind = PROTO_KIND_ADJUSTMENT;
        snprintf(c.a, sizeof c.a, "acme");
        snprintf(c.b, sizeof c.b, "beta");
        c.amount = USD;
    } else if (roll < 980) {
        /* circuit breakers: they freeze accounts, raising events */
        c.type = PROTO_CMD_BREAKER_SET;
        c.role = PROTO_ROLE_ADMIN;
        snprintf(c.a, sizeof c.a, "%s", account_names[rnd() % N_ACCOUNTS]);
        if (!chance(200)) {
            c.amount = rnd_range(1, 10) * USD;
            c.ttl = rnd_range(1000, 600000);
        }
        if (chance(400)) {
            c.tz = rnd_range(0, 1439);
            c.period = (c.tz + rnd_range(60, 720)) % 1440;
            c.cap = rnd_range(100, 500);
            c.on_expire = rnd_range(0, 2) * USD;
        }
    } else if (roll < 983) {
        /* acknowledging events, as a leader's webhook does */
        c.type = PROTO_CMD_EVENT_ACK;
        c.role = PROTO_ROLE_ADMIN;
        c.id = (uint64_t)rnd_range(1, 40);
    } else {
        /* unknown ids */
        c.type = rnd() % 2 ? PROTO_CMD_COMMIT : PROTO_CMD_RELEASE;
        c.id = (uint64_t)rnd_range(100000, 200000);
        c.amount = 5;
    }
    key_new(&c);
}

static int pick_leader(void)
{
    unsigned cands[SIM_NODES_MAX], nc = 0;
    for (unsigned i = 0; i < S.n_nodes; i++)
        if (raft_fixture_alive(S.f, i) && raft_state(raft_fixture_get(S.f, i)) == RAFT_LEADER)
            cands[nc++] = i;
    if (!nc)
        return -1;
    unsigned li = raft_fixture_leader_index(S.f);
    if (li < S.n_nodes && raft_fixture_alive(S.f, li) && !chance(150))
        return (int)li;
    return (int)cands[rnd() % nc];
}

static void client_timeouts(void)
{
    int64_t now = (int64_t)raft_fixture_time(S.f);
    for (struct sub *s = S.subs; s; s = s->next) {
        if (s->done || s->timed_out || now - s->sent_at < CLIENT_TIMEOUT_MS)
            continue;
        s->timed_out = true;
        S.st.timeouts++;
        for (unsigned i = 0; i < s->n; i++)
            key_unknown(s->keys[i], "client timeout");
    }
}

/* One client turn: maybe new commands, then send what is queued or due. */
static void client_tick(bool generate)
{
    int64_t now = (int64_t)raft_fixture_time(S.f);
    client_timeouts();
    if (generate && !S.setup_done) {
        bool all = true;
        for (uint32_t k = 0; k < S.setup_keys; k++)
            if (S.keys[k].state != K_ACKED)
                all = false;
        if (all) {
            S.setup_done = true;
            trace("setup acknowledged");
        }
    }
    /* like purserd's leader, an expire every second (also after healing:
     * raft 0.15 commits an old term's entries only behind a new one) */
    if (S.setup_done) {
        if (now - S.last_expire_ms >= EXPIRE_EVERY_MS) {
            struct sim_cmd c;
            memset(&c, 0, sizeof c);
            c.type = PROTO_CMD_EXPIRE;
            c.role = PROTO_ROLE_AGENT;
            key_new(&c);
            S.last_expire_ms = now;
        }
    }
    if (generate && S.setup_done) {
        if (S.n_queue < 32 && chance(600)) {
            unsigned k = (unsigned)rnd_range(1, 6);
            for (unsigned j = 0; j < k; j++)
                gen_one();
        }
    }
    if (!chance(700))
        return;
    int leader = pick_leader();
    if (leader < 0)
        return;
    uint32_t batch[SIM_BATCH_MAX];
    unsigned n = 0, max = (unsigned)rnd_range(1, SIM_BATCH_MAX);
    /* retries first (same key, same request), oldest first */
    for (uint32_t k = 0; k < S.n_keys && n < max; k++)
        if (S.keys[k].state == K_RETRY && S.keys[k].retry_at <= now)
            batch[n++] = k;
    uint32_t used = 0;
    while (n < max && used < S.n_queue)
        batch[n++] = S.queue[used++];
    memmove(S.queue, S.queue + used, (S.n_queue - used) * sizeof *S.queue);
    S.n_queue -= used;
    /* now and then a duplicate of a key still in flight (a client that did
     * not wait for the answer) */
    if (n < SIM_BATCH_MAX && S.n_keys && chance(50)) {
        uint32_t k = (uint32_t)(rnd() % S.n_keys);
        if (S.keys[k].state == K_FLIGHT || S.keys[k].state == K_ACKED)
            batch[n++] = k;
    }
    if (n)
        submit((unsigned)leader, batch, n);
}

/* ---- faults ---- */

static unsigned n_down(void)
{
    unsigned d = 0;
    for (unsigned i = 0; i < S.n_nodes; i++)
        if (!raft_fixture_alive(S.f, i) ||
            raft_state(raft_fixture_get(S.f, i)) == RAFT_UNAVAILABLE)
            d++;
    return d;
}

static void transfer_cb(struct raft_transfer *req)
{
    struct simnode *n = req->data;
    n->transfer_busy = false;
}

static void set_election_timeouts(void)
{
    /* distinct values so elections do not tie forever */
    unsigned base[SIM_NODES_MAX];
    for (unsigned i = 0; i < S.n_nodes; i++)
        base[i] = i;
    for (unsigned i = S.n_nodes - 1; i > 0; i--) {
        unsigned j = (unsigned)(rnd() % (i + 1)), t = base[i];
        base[i] = base[j];
        base[j] = t;
    }
    for (unsigned i = 0; i < S.n_nodes; i++)
        raft_fixture_set_randomized_election_timeout(
            S.f, i, 1000 + base[i] * 150 + (unsigned)rnd_range(0, 100));
}

static void fault(void)
{
    unsigned n = S.n_nodes, minority = (n - 1) / 2;
    unsigned i = (unsigned)(rnd() % n);
    uint64_t roll = rnd() % 100;
    if (roll < 18) {
        /* partition: isolate one node, split in two, or cut one direction */
        S.st.f_partition++;
        unsigned kind = (unsigned)(rnd() % 3);
        if (kind == 0) {
            for (unsigned j = 0; j < n; j++)
                if (j != i)
                    S.nodes[i].cut[j] = S.nodes[j].cut[i] = true;
            trace("FAULT partition: node %u isolated", i);
        } else if (kind == 1) {
            bool side[SIM_NODES_MAX];
            for (unsigned j = 0; j < n; j++)
                side[j] = rnd() % 2;
            for (unsigned a = 0; a < n; a++)
                for (unsigned b = 0; b < n; b++)
                    if (a != b && side[a] != side[b])
                        S.nodes[a].cut[b] = true;
            trace("FAULT partition: split");
        } else {
            unsigned j = (unsigned)(rnd() % n);
            if (j != i)
                S.nodes[i].cut[j] = true;
            trace("FAULT partition: %u -> %u one-way", i, j);
        }
        apply_links();
    } else if (roll < 36) {
        S.st.f_heal++;
        for (unsigned a = 0; a < n; a++)
            memset(S.nodes[a].cut, 0, sizeof S.nodes[a].cut);
        apply_links();
        trace("FAULT heal partitions");
    } else if (roll < 46) {
        if (raft_fixture_alive(S.f, i) && n_down() < minority + (chance(100) ? 1 : 0)) {
            S.st.f_kill++;
            raft_fixture_kill(S.f, i);
            apply_links();
            trace("FAULT kill node %u", i);
        }
    } else if (roll < 58) {
        for (unsigned j = 0; j < n; j++) {
            unsigned k = (i + j) % n;
            if (!raft_fixture_alive(S.f, k)) {
                S.st.f_revive++;
                raft_fixture_revive(S.f, k);
                apply_links();
                trace("FAULT revive node %u", k);
                break;
            }
        }
    } else if (roll < 68) {
        /* crash-restart: prefer a node that stopped (I/O error) */
        for (unsigned j = 0; j < n; j++) {
            unsigned k = (i + j) % n;
            if (raft_state(raft_fixture_get(S.f, k)) == RAFT_UNAVAILABLE) {
                i = k;
                break;
            }
        }
        if (raft_state(raft_fixture_get(S.f, i)) == RAFT_UNAVAILABLE ||
            n_down() < minority || !raft_fixture_alive(S.f, i)) {
            trace("FAULT restart node %u", i);
            if (reboot(i))
                S.st.f_reboot++;
        }
    } else if (roll < 76) {
        S.st.f_netlat++;
        unsigned ms = chance(200) ? (unsigned)rnd_range(200, 900) : (unsigned)rnd_range(1, 60);
        raft_fixture_set_network_latency(S.f, i, ms);
        trace("FAULT node %u network latency %u ms", i, ms);
    } else if (roll < 82) {
        S.st.f_disklat++;
        unsigned ms = chance(200) ? (unsigned)rnd_range(100, 600) : (unsigned)rnd_range(1, 40);
        raft_fixture_set_disk_latency(S.f, i, ms);
        trace("FAULT node %u disk latency %u ms", i, ms);
    } else if (roll < 88) {
        if (n_down() < minority) {
            S.st.f_iofault++;
            int delay = (int)rnd_range(0, 20), repeat = (int)rnd_range(1, 3);
            io_fault_arm(i, delay, repeat);
            S.nodes[i].io_fault_armed = true;
            trace("FAULT node %u I/O error after %d requests, %d time(s)", i, delay, repeat);
        }
    } else if (roll < 94) {
        int l = pick_leader();
        if (l >= 0 && !S.nodes[l].transfer_busy) {
            struct simnode *ln = &S.nodes[l];
            ln->transfer.data = ln;
            raft_id to = chance(500) ? 0 : (raft_id)(rnd() % n + 1);
            if (to == (raft_id)l + 1)
                to = 0;
            int rv = raft_transfer(raft_fixture_get(S.f, (unsigned)l), &ln->transfer, to,
                                   transfer_cb);
            if (rv == 0) {
                ln->transfer_busy = true;
                S.st.f_transfer++;
            }
            trace("FAULT leadership transfer from %d to %llu: %s", l, (unsigned long long)to,
                  rv ? raft_strerror(rv) : "started");
        }
    } else if (roll < 98) {
        /* clock jump on one node, forward mostly; total span bounded */
        int64_t d = chance(700) ? rnd_range(1000, 2 * 3600 * 1000) : -rnd_range(1000, 600000);
        int64_t ns = S.nodes[i].skew_ms + d;
        if (ns < CLOCK_SPAN_MAX_MS - 60000) {
            S.st.f_clock++;
            S.nodes[i].skew_ms = ns;
            trace("FAULT node %u clock jumps %+lld ms (skew %lld)", i, (long long)d,
                  (long long)ns);
        }
    } else {
        S.st.f_eto++;
        set_election_timeouts();
        trace("FAULT election timeouts reshuffled");
    }
}

/* ---- checks ---- */

static void violation_cb(void *arg, const char *message)
{
    struct simnode *n = arg;
    fail("node %d: invariant violated at applied index %llu: %s", n->idx,
         (unsigned long long)raft_last_applied(raft_fixture_get(S.f, (unsigned)n->idx)),
         message);
}

static void check_node(unsigned i, bool force)
{
    struct simnode *n = &S.nodes[i];
    if (!force && n->changes == n->checked)
        return;
    n->checked = n->changes;
    struct ledger_error err;
    int v = ledger_verify(n->l, violation_cb, n, &err);
    S.st.verifies++;
    if (v < 0)
        fail("node %u: ledger_verify hard error: %s", i, err.message);
    record_hash(n, raft_last_applied(raft_fixture_get(S.f, i)));
}

static void check_all(bool force)
{
    for (unsigned i = 0; i < S.n_nodes; i++)
        check_node(i, force);
}

/* ---- final checks ---- */

struct posting_set {
    struct ledger_posting_view *v;
    uint32_t n, cap;
};

static int posting_cb(void *arg, const struct ledger_posting_view *p)
{
    struct posting_set *ps = arg;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 256;
        ps->v = xrealloc(ps->v, ps->cap * sizeof *ps->v);
    }
    ps->v[ps->n++] = *p;
    return 0;
}

static const struct ledger_posting_view *posting_find(const struct posting_set *ps, uint64_t id)
{
    for (uint32_t i = 0; i < ps->n; i++)
        if (ps->v[i].id == id)
            return &ps->v[i];
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted unique ids; returns the count. */
static uint32_t uniq(uint64_t *v, uint32_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!m || v[m - 1] != v[i])
            v[m++] = v[i];
    return m;
}

static void compare_sets(const char *what, uint64_t *want, uint32_t nw, uint64_t *have,
                         uint32_t nh)
{
    nw = uniq(want, nw);
    uint32_t nh2 = uniq(have, nh);
    if (nh2 != nh)
        fail("%s: duplicate ids in the ledger", what);
    uint32_t a = 0, b = 0;
    while (a < nw || b < nh2) {
        if (b >= nh2 || (a < nw && want[a] < have[b])) {
            fail("%s: id %llu acknowledged but missing from the state", what,
                 (unsigned long long)want[a]);
            a++;
        } else if (a >= nw || have[b] < want[a]) {
            fail("%s: id %llu in the state but never acknowledged (applied twice or phantom)",
                 what, (unsigned long long)have[b]);
            b++;
        } else {
            a++;
            b++;
        }
    }
}

/* A release answered OK on an expired reservation may be followed by a late
 * commit (docs/ledger-rules.md: commit of an expired reservation posts). */
static bool late_commit(uint64_t id)
{
    for (uint32_t k = 0; k < S.n_keys; k++)
        if (S.keys[k].cmd.type == PROTO_CMD_COMMIT && S.keys[k].cmd.id == id &&
            S.keys[k].state == K_ACKED && S.keys[k].first.status == PROTO_OK)
            return true;
    return false;
}

static void final_checks(void)
{
    struct ledger *l = S.nodes[0].l;
    struct ledger_error err;
    /* equal hashes, no violations */
    uint8_t h0[32];
    for (unsigned i = 0; i < S.n_nodes; i++) {
        uint8_t h[32];
        check_node(i, true);
        if (ledger_state_hash(S.nodes[i].l, h, &err) != 0) {
            fail("node %u: hash: %s", i, err.message);
            continue;
        }
        if (i == 0)
            memcpy(h0, h, 32);
        else if (memcmp(h, h0, 32) != 0) {
            char a[17], b[17];
            hex8(h0, a);
            hex8(h, b);
            fail("final state hashes differ: node 0 %s, node %u %s (applied %llu / %llu)", a, i,
                 b, (unsigned long long)raft_last_applied(raft_fixture_get(S.f, 0)),
                 (unsigned long long)raft_last_applied(raft_fixture_get(S.f, i)));
        }
    }

    struct posting_set ps = {0};
    for (int ym = 0; ym < 3; ym++) {
        int year = ym == 0 ? 2025 : ym == 1 ? 2025 : 2026, month = ym == 0 ? 11 : ym == 1 ? 12 : 1;
        if (ledger_journal_month(l, year, month, posting_cb, &ps, &err) != 0)
            fail("journal %d-%02d: %s", year, month, err.message);
    }

    uint64_t *want_res = calloc(S.n_keys + 1, sizeof *want_res);
    uint64_t *want_grant = calloc(S.n_keys + 1, sizeof *want_grant);
    uint64_t *want_xfer = calloc(S.n_keys + 1, sizeof *want_xfer);
    uint64_t *want_spend = calloc(S.n_keys * 2 + 1, sizeof *want_spend);
    uint32_t nres = 0, ngr = 0, nx = 0, nsp = 0;
    uint64_t max_res = 0, max_grant = 0;

    for (uint32_t k = 0; k < S.n_keys; k++) {
        struct keyrec *kr = &S.keys[k];
        const struct sim_cmd *c = &kr->cmd;
        if (kr->state != K_ACKED) {
            if (kr->submits)
                fail("key %s (%s) never acknowledged", c->key, proto_cmd_type_name(c->type));
            continue;
        }
        const struct proto_result *r = &kr->first;
        if (r->status != PROTO_OK)
            continue;
        S.st.effects_checked++;
        switch (c->type) {
        case PROTO_CMD_ACCOUNT_CREATE: {
            struct ledger_account_view *av = malloc(sizeof *av);
            if (ledger_account_get(l, c->a, av, &err) != 0)
                fail("account %s acknowledged as created but missing", c->a);
            free(av);
            break;
        }
        case PROTO_CMD_RESERVE: {
            struct ledger_reservation_view *rv = malloc(sizeof *rv);
            want_res[nres++] = r->id;
            if (r->id > max_res)
                max_res = r->id;
            if (ledger_reservation_get(l, r->id, rv, &err) != 0) {
                fail("reservation %llu (key %s) acknowledged but missing", (unsigned long long)r->id,
                     c->key);
            } else {
                const char *payee = c->b[0] ? c->b : "vendor/unknown";
                if (strcmp(rv->account, c->a) != 0 || rv->amount_micros != c->amount ||
                    strcmp(rv->payee, payee) != 0)
                    fail("reservation %llu differs from its request: %s %lld %s", (unsigned long long)r->id,
                         rv->account, (long long)rv->amount_micros, rv->payee);
                if (rv->status == LEDGER_RES_CHARGED) {
                    if (!rv->transfer_id)
                        fail("reservation %llu charged without a posting", (unsigned long long)r->id);
                    else
                        want_spend[nsp++] = rv->transfer_id;
                }
            }
            free(rv);
            break;
        }
        case PROTO_CMD_COMMIT: {
            struct ledger_reservation_view *rv = malloc(sizeof *rv);
            if (ledger_reservation_get(l, c->id, rv, &err) != 0)
                fail("commit %s: reservation %llu missing", c->key, (unsigned long long)c->id);
            else if (rv->status != LEDGER_RES_COMMITTED || rv->actual_micros != c->amount)
                fail("commit %s acknowledged but reservation %llu is status %d actual %lld",
                     c->key, (unsigned long long)c->id, rv->status, (long long)rv->actual_micros);
            if (r->transfer_id) {
                want_spend[nsp++] = r->transfer_id;
                const struct ledger_posting_view *p = posting_find(&ps, r->transfer_id);
                if (!p)
                    fail("commit %s: posting %llu missing from the journal", c->key,
                         (unsigned long long)r->transfer_id);
                else if (p->kind != PROTO_KIND_SPEND || p->amount_micros != c->amount ||
                         p->reservation_id != c->id || p->overrun_micros != r->overrun_micros)
                    fail("commit %s: posting %llu differs (kind %d amount %lld res %llu overrun "
                         "%lld)",
                         c->key, (unsigned long long)p->id, p->kind, (long long)p->amount_micros,
                         (unsigned long long)p->reservation_id, (long long)p->overrun_micros);
            } else if (c->amount != 0) {
                fail("commit %s of %lld acknowledged without a transfer id", c->key,
                     (long long)c->amount);
            }
            free(rv);
            break;
        }
        case PROTO_CMD_RELEASE: {
            struct ledger_reservation_view *rv = malloc(sizeof *rv);
            if (ledger_reservation_get(l, c->id, rv, &err) != 0)
                fail("release %s: reservation %llu missing", c->key, (unsigned long long)c->id);
            else if (rv->status != LEDGER_RES_RELEASED && rv->status != LEDGER_RES_EXPIRED &&
                     !(rv->status == LEDGER_RES_COMMITTED && late_commit(c->id)))
                fail("release %s acknowledged but reservation %llu has status %d", c->key,
                     (unsigned long long)c->id, rv->status);
            free(rv);
            break;
        }
        case PROTO_CMD_TRANSFER: {
            want_xfer[nx++] = r->id;
            const struct ledger_posting_view *p = posting_find(&ps, r->id);
            if (!p)
                fail("transfer %s: posting %llu missing", c->key, (unsigned long long)r->id);
            else if (p->kind != c->kind || p->amount_micros != c->amount ||
                     strcmp(p->debit, c->a) != 0 || strcmp(p->credit, c->b) != 0)
                fail("transfer %s: posting %llu differs from its request", c->key,
                     (unsigned long long)r->id);
            break;
        }
        case PROTO_CMD_GRANT_CREATE: {
            struct ledger_grant_view gv;
            want_grant[ngr++] = r->id;
            if (r->id > max_grant)
                max_grant = r->id;
            if (ledger_grant_get(l, r->id, &gv, &err) != 0)
                fail("grant %llu (key %s) acknowledged but missing", (unsigned long long)r->id,
                     c->key);
            else if (strcmp(gv.account, r->name) != 0 || gv.amount_micros != c->amount)
                fail("grant %llu differs from its request", (unsigned long long)r->id);
            break;
        }
        case PROTO_CMD_GRANT_CLOSE: {
            struct ledger_grant_view gv;
            if (ledger_grant_get(l, c->id, &gv, &err) != 0)
                fail("grant close %s: grant %llu missing", c->key, (unsigned long long)c->id);
            else if (gv.is_open)
                fail("grant close %s acknowledged but grant %llu is open", c->key,
                     (unsigned long long)c->id);
            break;
        }
        default:
            break;
        }
    }

    /* exactly once: the state holds exactly the acknowledged objects */
    uint64_t *have = calloc(ps.n + 1, sizeof *have);
    uint32_t nh = 0;
    for (uint32_t i = 0; i < ps.n; i++)
        if (ps.v[i].kind == PROTO_KIND_CHARGEBACK || ps.v[i].kind == PROTO_KIND_ADJUSTMENT)
            have[nh++] = ps.v[i].id;
    compare_sets("transfers", want_xfer, nx, have, nh);
    nh = 0;
    for (uint32_t i = 0; i < ps.n; i++)
        if (ps.v[i].kind == PROTO_KIND_SPEND)
            have[nh++] = ps.v[i].id;
    compare_sets("spend postings", want_spend, nsp, have, nh);
    free(have);

    uint64_t probe = max_res + 64;
    have = calloc(probe + 1, sizeof *have);
    nh = 0;
    struct ledger_reservation_view *rv = malloc(sizeof *rv);
    for (uint64_t id = 1; id <= probe; id++)
        if (ledger_reservation_get(l, id, rv, &err) == 0)
            have[nh++] = id;
    free(rv);
    compare_sets("reservations", want_res, nres, have, nh);
    free(have);

    probe = max_grant + 64;
    have = calloc(probe + 1, sizeof *have);
    nh = 0;
    for (uint64_t id = 1; id <= probe; id++) {
        struct ledger_grant_view gv;
        if (ledger_grant_get(l, id, &gv, &err) == 0)
            have[nh++] = id;
    }
    compare_sets("grants", want_grant, ngr, have, nh);
    free(have);

    free(want_res);
    free(want_grant);
    free(want_xfer);
    free(want_spend);
    free(ps.v);
}

/* ---- one seed ---- */

static bool converged(void)
{
    for (uint32_t k = 0; k < S.n_keys; k++)
        if (S.keys[k].state != K_ACKED && S.keys[k].submits)
            return false;
    if (S.n_queue)
        return false;
    unsigned li = raft_fixture_leader_index(S.f);
    if (li >= S.n_nodes)
        return false;
    struct raft *lr = raft_fixture_get(S.f, li);
    raft_index last = raft_last_index(lr);
    if (lr->commit_index != last)
        return false;
    for (unsigned i = 0; i < S.n_nodes; i++)
        if (raft_last_applied(raft_fixture_get(S.f, i)) != last)
            return false;
    return true;
}

static void heal_all(void)
{
    for (unsigned i = 0; i < S.n_nodes; i++) {
        memset(S.nodes[i].cut, 0, sizeof S.nodes[i].cut);
        io_fault_disarm(i);
        S.nodes[i].io_fault_armed = false;
        raft_fixture_set_network_latency(S.f, i, 15);
        raft_fixture_set_disk_latency(S.f, i, 10);
    }
    for (unsigned i = 0; i < S.n_nodes; i++) {
        if (raft_state(raft_fixture_get(S.f, i)) == RAFT_UNAVAILABLE) {
            trace("heal: restart node %u (stopped)", i);
            if (!reboot(i))
                fail("node %u stopped and could not be restarted", i);
        } else if (!raft_fixture_alive(S.f, i)) {
            raft_fixture_revive(S.f, i);
        }
    }
    apply_links();
    set_election_timeouts();
}

static int run_seed(uint64_t seed)
{
    memset(&S.nodes, 0, sizeof S.nodes);
    S.seed = seed;
    rng_state = seed * 0x2545F4914F6CDD1DULL + 1;
    S.failures = 0;
    S.n_keys = S.n_queue = S.n_res = S.n_grants = 0;
    S.subs = NULL;
    S.setup_done = false;
    S.last_expire_ms = 0;
    if (S.hash_set)
        memset(S.hash_set, 0, S.cap_hash * sizeof *S.hash_set);

    static const unsigned thresholds[] = {8, 16, 32, 64};
    static const unsigned trailings[] = {2, 4, 8, 32};
    S.snap_threshold = thresholds[rnd() % 4];
    S.snap_trailing = trailings[rnd() % 4];
    S.pre_vote = rnd() % 4 != 0;
    /* start within an hour before 2025-12-01 00:00 UTC (day, ISO week and
     * month all roll over there; offsets roll other accounts earlier) */
    S.t0 = T_DEC1 - rnd_range(0, 3600 * 1000);

    S.f = calloc(1, sizeof *S.f);
    if (!S.f)
        abort();
    raft_fixture_initialize(S.f);
    for (unsigned i = 0; i < S.n_nodes; i++) {
        struct simnode *n = &S.nodes[i];
        n->idx = (int)i;
        node_fsm_init(n);
        node_ledger_open(n);
        n->skew_ms = rnd_range(-2000, 2000);
        if (raft_fixture_grow(S.f, &n->fsm) != 0) {
            fprintf(stderr, "purser_sim: raft_fixture_grow failed\n");
            exit(2);
        }
        raft_configure(raft_fixture_get(S.f, i));
    }
    S.io_layout_ok = io_layout_check();
    if (S.io_layout_ok)
        for (unsigned i = 0; i < S.n_nodes; i++) {
            struct raft_io *io = &S.f->servers[i].io;
            fixture_load = io->load;
            io->load = sim_io_load;
            io->truncate = sim_io_truncate;
            fixture_append = io->append;
            io->append = sim_io_append;
            iofault[i].countdown = -1;
            iofault[i].n = 0;
        }
    struct raft_configuration conf;
    if (raft_fixture_configuration(S.f, S.n_nodes, &conf) != 0 ||
        raft_fixture_bootstrap(S.f, &conf) != 0) {
        fprintf(stderr, "purser_sim: fixture bootstrap failed\n");
        exit(2);
    }
    raft_configuration_close(&conf);
    if (S.io_layout_ok)
        for (unsigned i = 0; i < S.n_nodes; i++) {
            /* raft_bootstrap wrote entry 1 straight into the fixture */
            struct fixture_io_head *h = S.f->servers[i].io.impl;
            for (size_t j = 0; j < h->n; j++)
                disk_put(i, j + 1, &h->entries[j]);
        }
    if (raft_fixture_start(S.f) != 0) {
        fprintf(stderr, "purser_sim: fixture start failed\n");
        exit(2);
    }
    set_election_timeouts();
    trace("seed %llu: %u nodes, snapshot threshold %u trailing %u, pre-vote %s, t0 %lld%s",
          (unsigned long long)seed, S.n_nodes, S.snap_threshold, S.snap_trailing,
          S.pre_vote ? "on" : "off", (long long)S.t0,
          S.io_layout_ok ? "" : " (restarts disabled: fixture layout unknown)");

    gen_setup();
    unsigned li_prev = S.n_nodes;
    for (unsigned step = 0; step < S.steps && S.failures == 0; step++) {
        S.st.steps++;
        if (step > 20 && chance(60))
            fault();
        client_tick(true);
        unsigned ms = (unsigned)rnd_range(1, 80);
        raft_time start = raft_fixture_time(S.f);
        while (raft_fixture_time(S.f) - start < ms) {
            raft_fixture_step(S.f);
            S.st.raft_events++;
        }
        unsigned li = raft_fixture_leader_index(S.f);
        if (li != li_prev) {
            trace("leader: %s%u", li < S.n_nodes ? "node " : "none ",
                  li < S.n_nodes ? li : 0);
            li_prev = li;
        }
        check_all(false);
    }

    /* heal, retry everything unknown, wait for all replicas to agree */
    if (S.failures == 0) {
        trace("--- heal ---");
        heal_all();
        raft_time start = raft_fixture_time(S.f);
        bool ok = false;
        while (raft_fixture_time(S.f) - start < FINAL_MAX_MS) {
            client_tick(false);
            raft_time t = raft_fixture_time(S.f);
            while (raft_fixture_time(S.f) - t < 50) {
                raft_fixture_step(S.f);
                S.st.raft_events++;
            }
            check_all(false);
            /* a node that stopped during healing (it should not) */
            for (unsigned i = 0; i < S.n_nodes; i++)
                if (raft_state(raft_fixture_get(S.f, i)) == RAFT_UNAVAILABLE && !reboot(i))
                    fail("node %u stopped after healing", i);
            if (converged()) {
                ok = true;
                break;
            }
            /* canonical raft 0.15 counts a follower's stored entries
             * (last_stored += n at each write completion) and can fall behind
             * its disk for good (seen after InstallSnapshot and overlapping
             * appends): the follower then commits and applies N entries late
             * until it restarts.  After 20 s, restart such followers as an
             * operator would (counted in the report). */
            if (raft_fixture_time(S.f) - start > 20000 && S.io_layout_ok)
                for (unsigned i = 0; i < S.n_nodes; i++) {
                    struct raft *r = raft_fixture_get(S.f, i);
                    raft_index on_disk = disk_last(i);
                    if (raft_state(r) == RAFT_FOLLOWER && r->last_stored < raft_last_index(r) &&
                        on_disk >= raft_last_index(r) && io_idle(i)) {
                        trace("node %u: raft counts %llu entries stored, its disk has %llu: "
                              "restart",
                              i, (unsigned long long)r->last_stored,
                              (unsigned long long)on_disk);
                        S.st.lag_restarts++;
                        if (!reboot(i))
                            fail("node %u: restart failed", i);
                    }
                }
        }
        if (!ok) {
            unsigned li = raft_fixture_leader_index(S.f);
            fail("no convergence %d s after healing (leader %s%u, applied:%s)",
                 FINAL_MAX_MS / 1000, li < S.n_nodes ? "node " : "none ",
                 li < S.n_nodes ? li : 0, "");
            for (unsigned i = 0; i < S.n_nodes; i++) {
                struct raft *r = raft_fixture_get(S.f, i);
                printf("  node %u: state %d term %llu applied %llu last %llu stored %llu commit "
                       "%llu alive %d\n",
                       i, raft_state(r), (unsigned long long)r->current_term,
                       (unsigned long long)raft_last_applied(r),
                       (unsigned long long)raft_last_index(r),
                       (unsigned long long)r->last_stored, (unsigned long long)r->commit_index,
                       raft_fixture_alive(S.f, i));
                if (S.io_layout_ok) {
                    struct fixture_io_head *h = S.f->servers[i].io.impl;
                    printf("    disk: entries %llu..%llu, snapshot at %llu\n",
                           (unsigned long long)disk[i].first,
                           (unsigned long long)disk_last(i),
                           h->snapshot ? (unsigned long long)h->snapshot->index : 0ULL);
                }
                if (raft_state(r) == RAFT_LEADER)
                    for (unsigned j = 0; j < S.n_nodes; j++)
                        printf("    progress of %u: state %u next %llu match %llu\n", j,
                               r->leader_state.progress[j].state,
                               (unsigned long long)r->leader_state.progress[j].next_index,
                               (unsigned long long)r->leader_state.progress[j].match_index);
            }
        } else {
            final_checks();
        }
    }
    S.st.sim_ms += raft_fixture_time(S.f);
    trace("seed %llu done: %u keys, %llu ms simulated, %d failure(s)", (unsigned long long)seed,
          S.n_keys, (unsigned long long)raft_fixture_time(S.f), S.failures);

    raft_fixture_close(S.f); /* fires any outstanding callbacks */
    while (pending_appends) {
        struct pending_append *p = pending_appends;
        pending_appends = p->next;
        for (unsigned k = 0; k < p->n; k++)
            raft_free(p->copy[k].buf.base);
        free(p->copy);
        free(p);
    }
    for (unsigned i = 0; i < S.n_nodes; i++)
        disk_free(i);
    free(S.f);
    S.f = NULL;
    for (unsigned i = 0; i < S.n_nodes; i++)
        ledger_close(S.nodes[i].l);
    while (S.subs) {
        struct sub *s = S.subs;
        S.subs = s->next;
        free(s);
    }
    return S.failures ? 1 : 0;
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: purser_sim [--seeds N] [--seed S] [--steps K] [--nodes 3|5] [--paranoid]\n"
            "                  [--no-fork] [--fixture-io-faults] [-v]\n"
            "  --seeds N   run N seeds starting at S (default 1..N)\n"
            "  --seed S    first seed (alone: run just that seed)\n"
            "  --steps K   client/fault steps per seed (default 400)\n"
            "  --nodes     cluster size (default: 3 for even seeds, 5 for odd ones)\n"
            "  --paranoid  hash the state after every applied entry, not every step\n"
            "  --fixture-io-faults  disk errors from raft_fixture_io_fault (crashes\n"
            "              raft 0.15 in its error paths: see sim.c)\n"
            "  -v          trace (one seed)\n");
    exit(2);
}

static void stats_add(struct stats *a, const struct stats *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++)
        x[i] += y[i];
}

int main(int argc, char **argv)
{
    uint64_t first = 1, nseeds = 0;
    bool seed_given = false, fork_each = true;
    unsigned nodes = 0;
    S.steps = 400;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
            S.verbose = true;
        else if (!strcmp(a, "--paranoid"))
            S.paranoid = true;
        else if (!strcmp(a, "--fixture-io-faults"))
            fixture_io_faults = true;
        else if (!strcmp(a, "--no-fork"))
            fork_each = false;
        else if (i + 1 < argc && !strcmp(a, "--seeds"))
            nseeds = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(a, "--seed")) {
            first = strtoull(argv[++i], NULL, 10);
            seed_given = true;
        } else if (i + 1 < argc && !strcmp(a, "--steps"))
            S.steps = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(a, "--nodes")) {
            nodes = (unsigned)strtoul(argv[++i], NULL, 10);
            if (nodes != 3 && nodes != 5)
                usage();
        } else
            usage();
    }
    if (!nseeds)
        nseeds = seed_given ? 1 : 20;
    /* CI bounds the slow (sanitizer) run with PURSER_SIM_SEEDS. */
    const char *env_seeds = getenv("PURSER_SIM_SEEDS");
    if (env_seeds && !seed_given && strtoull(env_seeds, NULL, 10) > 0)
        nseeds = strtoull(env_seeds, NULL, 10);
    if (nseeds == 1)
        fork_each = false;
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0); /* for the report only, never for the run */
    struct stats total;
    memset(&total, 0, sizeof total);
    uint64_t passed = 0, failed = 0;
    for (uint64_t s = first; s < first + nseeds; s++) {
        S.n_nodes = nodes ? nodes : (s % 2 ? 5 : 3);
        int bad = 0;
        if (fork_each) {
            int fds[2];
            if (pipe(fds) != 0) {
                perror("pipe");
                return 2;
            }
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                close(fds[0]);
                memset(&S.st, 0, sizeof S.st);
                int rc = run_seed(s);
                S.st.seeds = 1;
                S.st.failed_seeds = (uint64_t)rc;
                ssize_t w = write(fds[1], &S.st, sizeof S.st);
                (void)w;
                close(fds[1]);
                fflush(stdout);
                exit(rc); /* not _exit: LeakSanitizer checks each seed at exit */
            }
            close(fds[1]);
            struct stats st;
            ssize_t got = 0, r;
            while (got < (ssize_t)sizeof st &&
                   (r = read(fds[0], (char *)&st + got, sizeof st - (size_t)got)) > 0)
                got += r;
            close(fds[0]);
            int wst = 0;
            while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
                ;
            if (got == (ssize_t)sizeof st)
                stats_add(&total, &st);
            if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
                bad = 1;
                if (WIFSIGNALED(wst))
                    printf("FAIL seed %llu: crashed with signal %d\n", (unsigned long long)s,
                           WTERMSIG(wst));
            }
        } else {
            memset(&S.st, 0, sizeof S.st);
            bad = run_seed(s);
            S.st.seeds = 1;
            S.st.failed_seeds = (uint64_t)bad;
            stats_add(&total, &S.st);
        }
        if (bad) {
            failed++;
            printf("seed %llu FAILED (%u nodes) — replay: purser_sim --seed %llu --nodes %u "
                   "--steps %u%s%s -v\n",
                   (unsigned long long)s, S.n_nodes, (unsigned long long)s, S.n_nodes, S.steps,
                   fixture_io_faults ? " --fixture-io-faults" : "",
                   S.paranoid ? " --paranoid" : "");
        } else {
            passed++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const struct stats *t = &total;
    printf("purser_sim: %llu seeds (%llu..%llu), %u steps each, %llu steps, %llu raft events, "
           "%.0f s simulated, %.1f s wall\n",
           (unsigned long long)nseeds, (unsigned long long)first,
           (unsigned long long)(first + nseeds - 1), S.steps, (unsigned long long)t->steps,
           (unsigned long long)t->raft_events, (double)t->sim_ms / 1000.0, secs);
    printf("  ops: %llu keys, %llu commands in %llu entries, %llu answers (%llu ok, %llu "
           "refused, %llu repeated answers compared), %llu outcomes unknown, %llu client "
           "timeouts, %llu keys retried, %llu effects checked\n",
           (unsigned long long)t->keys, (unsigned long long)t->cmds_submitted,
           (unsigned long long)t->entries_submitted, (unsigned long long)t->cmds_acked,
           (unsigned long long)t->ok_results, (unsigned long long)t->refused_results,
           (unsigned long long)t->dup_answers, (unsigned long long)t->unknown_outcomes,
           (unsigned long long)t->timeouts, (unsigned long long)t->keys_retried,
           (unsigned long long)t->effects_checked);
    printf("  fsm: %llu applies, %llu snapshots, %llu restores, %llu verifies, %llu state "
           "hashes\n",
           (unsigned long long)t->applies, (unsigned long long)t->snapshots,
           (unsigned long long)t->restores, (unsigned long long)t->verifies,
           (unsigned long long)t->hashes);
    printf("  faults: %llu partitions, %llu heals, %llu kills, %llu revives, %llu restarts, "
           "%llu net latency, %llu disk latency, %llu I/O errors, %llu leader transfers, "
           "%llu clock jumps, %llu election timeout changes\n",
           (unsigned long long)t->f_partition, (unsigned long long)t->f_heal,
           (unsigned long long)t->f_kill, (unsigned long long)t->f_revive,
           (unsigned long long)t->f_reboot, (unsigned long long)t->f_netlat,
           (unsigned long long)t->f_disklat, (unsigned long long)t->f_iofault,
           (unsigned long long)t->f_transfer, (unsigned long long)t->f_clock,
           (unsigned long long)t->f_eto);
    printf("  raft 0.15 last_stored lag: %llu follower restarts after healing\n",
           (unsigned long long)t->lag_restarts);
    /* one test per seed, in cmocka's words (scripts/count-results) */
    printf("purser_sim: %llu passed, %llu failed\n", (unsigned long long)passed,
           (unsigned long long)failed);
    printf("[  PASSED  ] %llu test(s).\n", (unsigned long long)passed);
    if (failed)
        printf("[  FAILED  ] %llu test(s).\n", (unsigned long long)failed);
    return failed ? 1 : 0;
}
