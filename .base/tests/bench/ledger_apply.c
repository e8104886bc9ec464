/*
 * ledger_apply — how fast the ledger state machine applies reserve+commit.
 *
 * 10 000 leaf accounts four levels deep (10 x 10 x 10 x 10, every level
 * capped, so each reserve checks four caps), the FSM's real path: decode an
 * encoded entry (proto) and apply it (ledger), as purserd's raft apply will.
 * Each entry holds B commands: B/2 reserves on pseudo-random leaves and B/2
 * commits of the previous entry's reservations (B = 1 alternates).  Keyed
 * runs give every command an idempotency key, as the gateway does.
 *
 * Baseline in the same run: decode alone (no apply), so the ledger's cost
 * is reported both absolutely and as a ratio.
 *
 * usage: ledger_apply [ops=200000 [batch [keyed 0|1]]]  (one row when given)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"

#define LEAVES 10000
#define USD 1000000LL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char names[LEAVES][48];
static char keys[2][4096][24];

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "ledger_apply: %s: %s\n", what, msg);
    exit(1);
}

static void apply_one(struct ledger *l, int64_t ts, struct proto_cmd *c)
{
    struct proto_entry e = {ts, 1, c};
    struct proto_result r;
    struct ledger_error err;
    if (ledger_apply(l, &e, &r, &err) != 0)
        die("apply", err.message);
    if (r.status != PROTO_OK)
        die("setup", r.message);
}

static struct ledger *make_tree(int64_t ts)
{
    struct ledger *l;
    struct ledger_error err;
    if (ledger_open(&l, NULL, &err) != 0)
        die("open", err.message);
    char name[48];
    struct proto_cmd c;
    int n = 0;
    for (int a = 0; a < 10; a++)
        for (int b = -1; b < 10; b++)
            for (int d = -1; d < (b < 0 ? 0 : 10); d++)
                for (int e = -1; e < (d < 0 ? 0 : 10); e++) {
                    if (b < 0)
                        snprintf(name, sizeof name, "t%d", a);
                    else if (d < 0)
                        snprintf(name, sizeof name, "t%d/d%d", a, b);
                    else if (e < 0)
                        snprintf(name, sizeof name, "t%d/d%d/t%d", a, b, d);
                    else
                        snprintf(name, sizeof name, "t%d/d%d/t%d/a%d", a, b, d, e);
                    memset(&c, 0, sizeof c);
                    c.type = PROTO_CMD_ACCOUNT_CREATE;
                    c.role = PROTO_ROLE_ADMIN;
                    c.u.account.name = (struct proto_str){name, (uint32_t)strlen(name)};
                    c.u.account.cap_micros = 1000000000 * USD; /* room for the run */
                    c.u.account.period = PROTO_PERIOD_MONTH;
                    apply_one(l, ts, &c);
                    if (e >= 0)
                        snprintf(names[n++], sizeof names[0], "%s", name);
                }
    if (n != LEAVES)
        die("setup", "wrong leaf count");
    return l;
}

struct run {
    double apply_s;
    double decode_s;
    long ops;
};

static void run_batches(int batch, long total_ops, bool keyed, struct run *out)
{
    int64_t ts = 1763251200000LL;
    struct ledger *l = make_tree(ts);
    struct proto_cmd *cmds = calloc((size_t)batch, sizeof *cmds);
    struct proto_cmd *decoded = calloc((size_t)batch, sizeof *decoded);
    struct proto_result *res = calloc((size_t)batch, sizeof *res);
    uint64_t *pending = calloc((size_t)batch, sizeof *pending);
    int pending_count = 0;
    struct proto_buf buf;
    proto_buf_init(&buf);
    uint64_t rng = 88172645463325252ull;
    long done = 0, key_seq = 0;
    int flip = 0;
    out->apply_s = out->decode_s = 0;
    while (done < total_ops) {
        int n = 0;
        int reserves = batch == 1 ? (pending_count == 0) : batch / 2;
        /* Commit what the previous entry reserved, then reserve anew. */
        for (int i = 0; i < pending_count && n < batch; i++) {
            struct proto_cmd *c = &cmds[n++];
            memset(c, 0, sizeof *c);
            c->type = PROTO_CMD_COMMIT;
            c->u.commit.reservation_id = pending[i];
            c->u.commit.actual_micros = 700;
        }
        pending_count = 0;
        for (int i = 0; i < reserves && n < batch; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            struct proto_cmd *c = &cmds[n++];
            memset(c, 0, sizeof *c);
            c->type = PROTO_CMD_RESERVE;
            const char *name = names[rng % LEAVES];
            c->u.reserve.account = (struct proto_str){name, (uint32_t)strlen(name)};
            c->u.reserve.payee = (struct proto_str){"vendor/openai", 13};
            c->u.reserve.amount_micros = 1000;
            c->u.reserve.ttl_ms = 60000;
        }
        if (keyed)
            for (int i = 0; i < n; i++) {
                char *k = keys[flip][i];
                int kl = snprintf(k, sizeof keys[0][0], "gw1-%ld", key_seq++);
                cmds[i].key = (struct proto_str){k, (uint32_t)kl};
            }
        flip ^= 1;
        struct proto_entry e = {ts += 1, (uint32_t)n, cmds};
        buf.len = 0;
        if (proto_entry_encode(&buf, &e) != 0)
            die("encode", "failed");
        struct proto_entry d;
        struct proto_error perr;
        struct ledger_error err;
        double t0 = now_s();
        if (proto_entry_decode(buf.data, buf.len, &d, decoded, (uint32_t)batch, &perr) != 0)
            die("decode", perr.message);
        double t1 = now_s();
        if (ledger_apply(l, &d, res, &err) != 0)
            die("apply", err.message);
        double t2 = now_s();
        out->decode_s += t1 - t0;
        out->apply_s += t2 - t1;
        for (int i = 0; i < n; i++) {
            if (res[i].status != PROTO_OK)
                die("refused", res[i].message);
            if (cmds[i].type == PROTO_CMD_RESERVE)
                pending[pending_count++] = res[i].id;
        }
        done += n;
    }
    out->ops = done;
    int violations = ledger_verify(l, NULL, NULL, NULL);
    if (violations != 0)
        die("verify", "violations after the run");
    proto_buf_free(&buf);
    free(cmds);
    free(decoded);
    free(res);
    free(pending);
    ledger_close(l);
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 200000;
    static const int batches[] = {1, 10, 100, 1000};
    printf("ledger_apply: reserve+commit, %d leaves 4 deep, every level capped, %ld ops per"
           " row\n", LEAVES, ops);
    printf("%-6s %-6s %12s %12s %12s %14s\n", "keys", "batch", "apply op/s", "decode op/s",
           "fsm op/s", "us/op (fsm)");
    int only_batch = argc > 2 ? atoi(argv[2]) : 0;
    int only_keyed = argc > 3 ? atoi(argv[3]) : -1;
    for (int k = 0; k < 2; k++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            if ((only_batch && batches[b] != only_batch) || (only_keyed >= 0 && k != only_keyed))
                continue;
            struct run r;
            long n = batches[b] == 1 ? ops / 4 : ops;
            run_batches(batches[b], n, k == 1, &r);
            double fsm = r.apply_s + r.decode_s;
            printf("%-6s %-6d %12.0f %12.0f %12.0f %14.2f\n", k ? "yes" : "no", batches[b],
                   (double)r.ops / r.apply_s, (double)r.ops / r.decode_s,
                   (double)r.ops / fsm, fsm * 1e6 / (double)r.ops);
            fflush(stdout);
        }
    return 0;
}
