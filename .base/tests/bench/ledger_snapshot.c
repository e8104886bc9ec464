/*
 * ledger_snapshot — what a raft snapshot of the ledger costs as the journal
 * grows: snapshot time, snapshot size and restore time at 1M and 10M journal
 * rows (PITFALLS.md: snapshots run on the loop thread, so they must stay far
 * below the election timeout).  Rows are chargebacks between 1 000 accounts
 * carrying ~120 bytes of metadata each, like gateway spend.
 *
 * Baseline in the same run: a plain memcpy of a buffer of the snapshot's
 * size, so the snapshot cost reads as a ratio against raw memory bandwidth.
 *
 * usage: ledger_snapshot [rows ...]   (default: 1000000 10000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"

#define ACCOUNTS 1000
#define BATCH 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "ledger_snapshot: %s: %s\n", what, msg);
    exit(1);
}

static char names[ACCOUNTS][32];

static void apply(struct ledger *l, int64_t ts, struct proto_cmd *cmds, uint32_t n,
                  struct proto_result *res)
{
    struct proto_entry e = {ts, n, cmds};
    struct ledger_error err;
    if (ledger_apply(l, &e, res, &err) != 0)
        die("apply", err.message);
    for (uint32_t i = 0; i < n; i++)
        if (res[i].status != PROTO_OK)
            die("refused", res[i].message);
}

static struct proto_str s(const char *c)
{
    return (struct proto_str){c, (uint32_t)strlen(c)};
}

static struct ledger *build(long rows)
{
    struct ledger *l;
    struct ledger_error err;
    if (ledger_open(&l, NULL, &err) != 0)
        die("open", err.message);
    static struct proto_cmd cmds[BATCH];
    static struct proto_result res[BATCH];
    int64_t ts = 1763251200000LL;
    memset(cmds, 0, sizeof cmds);
    cmds[0].type = PROTO_CMD_ACCOUNT_CREATE;
    cmds[0].role = PROTO_ROLE_ADMIN;
    cmds[0].u.account.name = s("corp");
    cmds[0].u.account.cap_micros = PROTO_CAP_NONE;
    apply(l, ts, cmds, 1, res);
    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(names[i], sizeof names[i], "corp/dept%03d", i);
        cmds[0].u.account.name = s(names[i]);
        apply(l, ts, cmds, 1, res);
    }
    static char ticket[BATCH][24];
    long done = 0;
    uint64_t rng = 2463534242u;
    while (done < rows) {
        uint32_t n = rows - done < BATCH ? (uint32_t)(rows - done) : BATCH;
        for (uint32_t i = 0; i < n; i++) {
            struct proto_cmd *c = &cmds[i];
            memset(c, 0, sizeof *c);
            c->type = PROTO_CMD_TRANSFER;
            c->role = PROTO_ROLE_AGENT;
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            uint32_t a = (uint32_t)(rng % ACCOUNTS), b = (uint32_t)((rng >> 20) % ACCOUNTS);
            if (a == b)
                b = (b + 1) % ACCOUNTS;
            c->u.transfer.debit = s(names[a]);
            c->u.transfer.credit = s(names[b]);
            c->u.transfer.amount_micros = 1 + (int64_t)(rng % 5000);
            c->u.transfer.kind = PROTO_KIND_CHARGEBACK;
            snprintf(ticket[i], sizeof ticket[i], "TCK-%08ld", done + i);
            struct proto_map *m = &c->u.transfer.metadata;
            m->kv[0] = (struct proto_kv){s("team"), s("research-agents")};
            m->kv[1] = (struct proto_kv){s("project_id"), s("proj-4471-swarm")};
            m->kv[2] = (struct proto_kv){s("workflow"), s("summarize-tickets")};
            m->kv[3] = (struct proto_kv){s("ticket_id"), s(ticket[i])};
            m->kv[4] = (struct proto_kv){s("model"), s("gpt-4o-mini")};
            m->count = 5;
        }
        apply(l, ts += 10, cmds, n, res);
        done += n;
    }
    return l;
}

static void measure(long rows)
{
    double t0 = now_s();
    struct ledger *l = build(rows);
    double t_build = now_s() - t0;
    struct ledger_error err;
    void *snap = NULL;
    size_t len = 0;
    /* First snapshot includes writing back the cached balances. */
    t0 = now_s();
    if (ledger_snapshot(l, NULL, &snap, &len, &err) != 0)
        die("snapshot", err.message);
    double t_snap = now_s() - t0;
    free(snap);
    t0 = now_s();
    if (ledger_snapshot(l, NULL, &snap, &len, &err) != 0)
        die("snapshot", err.message);
    double t_snap2 = now_s() - t0;

    char *copy = malloc(len);
    if (!copy)
        die("memcpy baseline", "no memory");
    memset(copy, 1, len); /* fault the pages in, as the snapshot's were */
    t0 = now_s();
    memcpy(copy, snap, len);
    double t_memcpy = now_s() - t0;
    volatile char sink = copy[len / 2]; /* keep the copy observable */
    (void)sink;
    free(copy);

    struct ledger *r;
    if (ledger_open(&r, NULL, &err) != 0)
        die("open", err.message);
    t0 = now_s();
    if (ledger_restore(r, snap, len, &err) != 0)
        die("restore", err.message);
    double t_restore = now_s() - t0;

    uint8_t h1[32], h2[32];
    t0 = now_s();
    if (ledger_state_hash(l, h1, &err) != 0 || ledger_state_hash(r, h2, &err) != 0)
        die("hash", err.message);
    double t_hash = (now_s() - t0) / 2;
    if (memcmp(h1, h2, 32) != 0)
        die("restore", "state hash differs after restore");
    t0 = now_s();
    int violations = ledger_verify(r, NULL, NULL, &err);
    double t_verify = now_s() - t0;
    if (violations != 0)
        die("verify", "violations after restore");

    printf("%10ld %9.1f %10.0f %9.3f %9.3f %9.3f %8.1fx %9.3f %9.3f %8.1f\n", rows, t_build,
           (double)len / (1 << 20), t_snap, t_snap2, t_restore, t_snap2 / t_memcpy, t_hash,
           t_verify, (double)len / (double)rows);
    fflush(stdout);
    free(snap);
    ledger_close(r);
    ledger_close(l);
}

int main(int argc, char **argv)
{
    printf("ledger_snapshot: chargebacks with ~120 B metadata, %d accounts\n", ACCOUNTS);
    printf("%10s %9s %10s %9s %9s %9s %9s %9s %9s %8s\n", "rows", "build s", "size MiB",
           "snap1 s", "snap s", "restore s", "vs memcpy", "hash s", "verify s", "B/row");
    if (argc > 1)
        for (int i = 1; i < argc; i++)
            measure(atol(argv[i]));
    else {
        measure(1000000);
        measure(10000000);
    }
    return 0;
}
