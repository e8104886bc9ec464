/*
 * cluster_load — a closed-loop load generator for a running purser cluster
 * (driven by tests/bench/cluster, which starts the nodes).
 *
 * C concurrent callers share one client (one pipelined connection per node).
 * In `ledger` mode each caller loops reserve -> commit on its own account
 * (every command keyed, as the gateway does), so each op is one consensus
 * round through group commit.  In `noop` mode each caller loops the `noop`
 * method: the same RPC, batching and raft path with an entry the FSM
 * ignores — the bare raft baseline of the same run.
 *
 * Keys have the shape of the client library's own ("pc-" and 32 hex digits)
 * but come from a random run prefix and a counter: a getrandom() per call
 * was 15% of this process's CPU, which it takes from the nodes on a small
 * machine.
 *
 * Prints one line: mode clients ops ops/s p50_us p99_us errors.
 *
 * usage: cluster_load MODE CLIENTS SECONDS ADDR[,ADDR...] [SECRET]
 * PURSER_TLS_CA=PEM: speak TLS to the nodes (purserd --tls-cert).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "proto/client.h"
#include "proto/tls.h"

#define SAMPLES_MAX (8u << 20)

struct caller {
    struct load *load;
    int index;
    char account[32];
    uint64_t reservation;
    bool is_committing;
    uint64_t started_ns;
};

struct load {
    uv_loop_t *loop;
    struct pc_client *client;
    bool is_noop;
    uint64_t end_ns;
    uint64_t ops;
    uint64_t errors;
    uint32_t *samples_us;
    uint32_t sample_count;
    int active;
    uint64_t key_prefix; /* random per run */
    uint64_t key_seq;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void caller_next(struct caller *c);

static void caller_record(struct caller *c, bool is_ok)
{
    struct load *l = c->load;
    uint64_t t = now_ns();
    if (is_ok) {
        l->ops++;
        if (l->sample_count < SAMPLES_MAX)
            l->samples_us[l->sample_count++] = (uint32_t)((t - c->started_ns) / 1000);
    } else {
        l->errors++;
    }
}

static void caller_done(struct caller *c)
{
    struct load *l = c->load;
    if (--l->active == 0)
        pc_client_close(l->client);
}

static void on_apply(void *arg, int status, const struct proto_result *res, const char *message)
{
    struct caller *c = arg;
    bool is_ok = status == PC_OK && res->status == PROTO_OK;
    if (!is_ok && c->load->errors < 5)
        fprintf(stderr, "cluster_load: %s\n",
                status == PC_OK ? res->message : (message ? message : "failed"));
    caller_record(c, is_ok);
    if (is_ok && !c->is_committing) {
        c->reservation = res->id;
        c->is_committing = true;
    } else {
        c->is_committing = false;
    }
    caller_next(c);
}

static void on_noop(void *arg, const struct pc_reply *r)
{
    struct caller *c = arg;
    caller_record(c, r->status == PC_OK);
    caller_next(c);
}

/* "pc-", then prefix and sequence as 16 hex digits each. */
static void key_make(char out[3 + 32], uint64_t prefix, uint64_t seq)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "pc-", 3);
    for (int i = 0; i < 16; i++) {
        out[3 + i] = hex[(prefix >> (60 - 4 * i)) & 15];
        out[19 + i] = hex[(seq >> (60 - 4 * i)) & 15];
    }
}

static void caller_next(struct caller *c)
{
    struct load *l = c->load;
    if (now_ns() >= l->end_ns && !c->is_committing) {
        caller_done(c);
        return;
    }
    c->started_ns = now_ns();
    if (l->is_noop) {
        static const uint8_t empty[] = {0x90};
        if (pc_call(l->client, PC_TARGET_LEADER, "noop", empty, 1, true, on_noop, c) != 0)
            caller_done(c);
        return;
    }
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    if (c->is_committing) {
        cmd.type = PROTO_CMD_COMMIT;
        cmd.u.commit.reservation_id = c->reservation;
        cmd.u.commit.actual_micros = 700;
    } else {
        cmd.type = PROTO_CMD_RESERVE;
        cmd.u.reserve.account = (struct proto_str){c->account, (uint32_t)strlen(c->account)};
        cmd.u.reserve.payee = (struct proto_str){"vendor/openai", 13};
        cmd.u.reserve.amount_micros = 1000;
        cmd.u.reserve.ttl_ms = 60000;
    }
    char key[3 + 32];
    key_make(key, l->key_prefix, l->key_seq++);
    cmd.key = (struct proto_str){key, sizeof key};
    if (pc_apply(l->client, &cmd, on_apply, c) != 0)
        caller_done(c);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void setup_done(void *arg, int status, const struct proto_result *res, const char *msg)
{
    int *pending = arg;
    if (status != PC_OK || (res->status != PROTO_OK && res->status != PROTO_ERR_EXISTS)) {
        fprintf(stderr, "cluster_load: setup failed: %s\n",
                status == PC_OK ? res->message : (msg ? msg : "?"));
        exit(1);
    }
    (*pending)--;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: cluster_load ledger|noop CLIENTS SECONDS ADDR[,ADDR...] [SECRET]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct load l;
    memset(&l, 0, sizeof l);
    l.is_noop = strcmp(argv[1], "noop") == 0;
    if (getrandom(&l.key_prefix, sizeof l.key_prefix, 0) != (ssize_t)sizeof l.key_prefix)
        l.key_prefix = now_ns();
    int clients = atoi(argv[2]);
    double seconds = atof(argv[3]);
    char *addr_copy = strdup(argv[4]);
    const char *addrs[PC_NODES_MAX];
    uint32_t addr_count = 0;
    for (char *save = NULL, *a = strtok_r(addr_copy, ",", &save); a && addr_count < PC_NODES_MAX;
         a = strtok_r(NULL, ",", &save))
        addrs[addr_count++] = a;
    l.loop = uv_default_loop();
    struct ptls_ctx *tls = NULL;
    const char *ca = getenv("PURSER_TLS_CA");
    char msg[PTLS_MESSAGE_MAX];
    if (ca && ca[0] && ptls_client_ctx_new(ca, NULL, NULL, "--tls", &tls, msg,
                                           sizeof msg) != 0) {
        fprintf(stderr, "cluster_load: %s\n", msg);
        return 2;
    }
    struct pc_options o = {.addrs = addrs, .addr_count = addr_count, .role = "admin",
                           .secret = argc > 5 ? argv[5] : NULL, .attempt_timeout_ms = 5000,
                           .deadline_ms = 30000, .tls = tls};
    struct proto_error perr;
    if (pc_client_open(l.loop, &o, &l.client, &perr) != 0) {
        fprintf(stderr, "cluster_load: %s\n", perr.message);
        return 3;
    }
    struct caller *callers = calloc((size_t)clients, sizeof *callers);
    l.samples_us = malloc(SAMPLES_MAX * sizeof *l.samples_us);
    if (!callers || !l.samples_us)
        return 1;
    /* Accounts: bench (capped) and one capped child per caller. */
    int pending = 0;
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_ACCOUNT_CREATE;
    cmd.u.account.name = (struct proto_str){"bench", 5};
    cmd.u.account.cap_micros = PROTO_AMOUNT_MAX;
    cmd.u.account.period = PROTO_PERIOD_MONTH;
    pending++;
    pc_apply(l.client, &cmd, setup_done, &pending);
    while (pending > 0)
        uv_run(l.loop, UV_RUN_ONCE);
    for (int i = 0; i < clients; i++) {
        callers[i].load = &l;
        callers[i].index = i;
        snprintf(callers[i].account, sizeof callers[i].account, "bench/c%d", i);
        cmd.u.account.name = (struct proto_str){callers[i].account,
                                                (uint32_t)strlen(callers[i].account)};
        cmd.u.account.cap_micros = PROTO_AMOUNT_MAX / 1000;
        pending++;
        pc_apply(l.client, &cmd, setup_done, &pending);
    }
    while (pending > 0)
        uv_run(l.loop, UV_RUN_ONCE);

    uint64_t start = now_ns();
    l.end_ns = start + (uint64_t)(seconds * 1e9);
    l.active = clients;
    for (int i = 0; i < clients; i++)
        caller_next(&callers[i]);
    uv_run(l.loop, UV_RUN_DEFAULT);
    double elapsed = (double)(now_ns() - start) / 1e9;
    qsort(l.samples_us, l.sample_count, sizeof *l.samples_us, cmp_u32);
    uint32_t p50 = l.sample_count ? l.samples_us[l.sample_count / 2] : 0;
    uint32_t p99 = l.sample_count ? l.samples_us[(uint64_t)l.sample_count * 99 / 100] : 0;
    printf("%s %d %llu %.0f %u %u %llu\n", l.is_noop ? "noop" : "ledger", clients,
           (unsigned long long)l.ops, (double)l.ops / elapsed, p50, p99,
           (unsigned long long)l.errors);
    free(callers);
    free(l.samples_us);
    free(addr_copy);
    ptls_ctx_free(tls);
    return l.errors ? 1 : 0;
}
