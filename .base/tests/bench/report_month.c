/*
 * report_month — month-end reports over a month of N journal rows (default
 * 10M): how long each report kind takes (ledger_report, ledger/report.c).
 * The target (issue 5) is under 10 s per report at 10M rows.
 *
 * The month is November 2025.  Half of its rows are chargebacks between
 * 1 000 departments (tagged with 20 cost centers), half are spend
 * (reserve + commit) to two vendors; every posting carries ~120 bytes of
 * metadata in 5 keys (team: 8 values, project_id: 50, workflow: 20,
 * model: 6, ticket_id: one per posting), like gateway traffic.  A few
 * postings in October and December check that the month's bounds hold.
 *
 * Each report's totals are checked against the others (chargeback + spend =
 * transfers = trial-balance debits = credits), so a fast wrong answer fails.
 *
 * usage: report_month [rows [only]]   (default: 10000000; `only`: run just the
 *        reports whose label contains it, e.g. "ticket", and skip the checks)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"

#define ACCOUNTS 1000
#define BATCH 2000 /* commands per entry (a spend is two: reserve, commit) */
#define OUTSIDE 1000 /* postings in each neighbouring month */
#define NOV_2025_MS 1761955200000LL /* 2025-11-01T00:00:00Z */
#define DEC_2025_MS 1764547200000LL

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this process: on a shared machine, wall time also counts
 * other programs' turns. */
static double cpu_s(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "report_month: %s: %s\n", what, msg);
    exit(1);
}

static char names[ACCOUNTS][32];
static char cost_centers[20][16];
static const char *const teams[8] = {"research", "support", "growth", "infra", "legal",
                                     "finance", "sales", "design"};
static const char *const models[6] = {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4",
                                      "claude-haiku-4", "o3-mini", "gemini-2.5-flash"};
static char projects[50][24];
static char workflows[20][24];

static struct proto_str s(const char *c)
{
    return (struct proto_str){c, (uint32_t)strlen(c)};
}

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

static uint64_t rng = 2463534242u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void setup(struct ledger *l, struct proto_cmd *cmds, struct proto_result *res)
{
    int64_t ts = NOV_2025_MS - 86400000LL * 20;
    memset(cmds, 0, sizeof *cmds);
    cmds[0].type = PROTO_CMD_ACCOUNT_CREATE;
    cmds[0].role = PROTO_ROLE_ADMIN;
    cmds[0].u.account.name = s("corp");
    cmds[0].u.account.cap_micros = PROTO_CAP_NONE;
    apply(l, ts, cmds, 1, res);
    for (int i = 0; i < 20; i++)
        snprintf(cost_centers[i], sizeof cost_centers[i], "CC-%04d", 1000 + i * 7);
    for (int i = 0; i < 50; i++)
        snprintf(projects[i], sizeof projects[i], "proj-%04d", 4400 + i);
    for (int i = 0; i < 20; i++)
        snprintf(workflows[i], sizeof workflows[i], "workflow-%02d", i);
    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(names[i], sizeof names[i], "corp/dept%03d", i);
        cmds[0].u.account.name = s(names[i]);
        cmds[0].u.account.tags.count = 1;
        cmds[0].u.account.tags.kv[0] =
            (struct proto_kv){s("cost_center"), s(cost_centers[i % 20])};
        apply(l, ts, cmds, 1, res);
    }
}

/* One posting's worth of commands at cmds (1 or 2); returns how many. */
static uint32_t posting(struct proto_cmd *c, uint64_t *next_res_id, long seq, char *ticket,
                        size_t ticket_cap)
{
    uint64_t x = next();
    uint32_t a = (uint32_t)(x % ACCOUNTS), b = (uint32_t)((x >> 20) % ACCOUNTS);
    if (a == b)
        b = (b + 1) % ACCOUNTS;
    snprintf(ticket, ticket_cap, "TCK-%08ld", seq);
    struct proto_map m = {0};
    m.kv[0] = (struct proto_kv){s("team"), s(teams[(x >> 30) % 8])};
    m.kv[1] = (struct proto_kv){s("project_id"), s(projects[(x >> 33) % 50])};
    m.kv[2] = (struct proto_kv){s("workflow"), s(workflows[(x >> 39) % 20])};
    m.kv[3] = (struct proto_kv){s("ticket_id"), s(ticket)};
    m.kv[4] = (struct proto_kv){s("model"), s(models[(x >> 45) % 6])};
    m.count = 5;
    int64_t amount = 1 + (int64_t)((x >> 8) % 5000);
    memset(c, 0, 2 * sizeof *c);
    if (seq % 2 == 0) {
        c->type = PROTO_CMD_TRANSFER;
        c->role = PROTO_ROLE_AGENT;
        c->u.transfer.debit = s(names[a]);
        c->u.transfer.credit = s(names[b]);
        c->u.transfer.amount_micros = amount;
        c->u.transfer.kind = PROTO_KIND_CHARGEBACK;
        c->u.transfer.metadata = m;
        return 1;
    }
    c[0].type = PROTO_CMD_RESERVE;
    c[0].role = PROTO_ROLE_AGENT;
    c[0].u.reserve.account = s(names[a]);
    c[0].u.reserve.payee = s((x >> 50) % 3 == 0 ? "vendor/anthropic" : "vendor/openai");
    c[0].u.reserve.amount_micros = 5000;
    c[0].u.reserve.ttl_ms = 3600000;
    c[1].type = PROTO_CMD_COMMIT;
    c[1].role = PROTO_ROLE_AGENT;
    c[1].u.commit.reservation_id = (*next_res_id)++;
    c[1].u.commit.actual_micros = amount;
    c[1].u.commit.metadata = m;
    return 2;
}

/* `rows` postings from ts on, `step_ms` apart per entry. */
static void post(struct ledger *l, long rows, int64_t ts, int64_t step_ms, long *seq,
                 uint64_t *next_res_id)
{
    static struct proto_cmd cmds[BATCH + 1];
    static struct proto_result res[BATCH + 1];
    static char ticket[BATCH][24];
    long done = 0;
    while (done < rows) {
        uint32_t n = 0, k = 0;
        while (n + 2 <= BATCH && done < rows) {
            n += posting(&cmds[n], next_res_id, (*seq)++, ticket[k], sizeof ticket[k]);
            k++;
            done++;
        }
        apply(l, ts, cmds, n, res);
        ts += step_ms;
    }
}

struct tally {
    uint64_t rows;
    int64_t total_micros;
    int64_t total_debit_micros;
    uint64_t total_postings;
    int view;
    char prev[LEDGER_REPORT_GROUP_MAX + 4][PROTO_MAP_VALUE_MAX + 1]; /* last row's keys */
};

/* The row's sort key, column by column, as the report promises to order. */
static uint32_t sort_key(const struct ledger_report_row *row, const char **out)
{
    uint32_t n = 0;
    if (row->view == LEDGER_REPORT_VIEW_COST_CENTER) {
        out[n++] = row->debit_cost_center;
        out[n++] = row->credit_cost_center;
        return n;
    }
    for (uint32_t j = 0; j < row->group_count; j++)
        out[n++] = row->group[j];
    out[n++] = row->debit;
    out[n++] = row->credit;
    return n;
}

/* Fail unless rows come in strictly increasing key order within a view. */
static void check_order(struct tally *t, const struct ledger_report_row *row)
{
    const char *key[LEDGER_REPORT_GROUP_MAX + 4];
    uint32_t n = sort_key(row, key);
    bool is_first = t->rows == 1 || row->view != t->view;
    int c = 0;
    for (uint32_t j = 0; j < n && c == 0; j++)
        c = strcmp(t->prev[j], key[j]);
    if (!is_first && c >= 0 && row->id == 0)
        die("order", "rows are not sorted by their keys");
    for (uint32_t j = 0; j < n; j++) { /* cheap: this runs for every row */
        size_t len = strlen(key[j]);
        if (len >= sizeof t->prev[j])
            die("order", "a key is longer than any value may be");
        memcpy(t->prev[j], key[j], len + 1);
    }
    t->view = row->view;
}

static int tally_cb(void *arg, const struct ledger_report_row *row)
{
    struct tally *t = arg;
    t->rows++;
    if (!row->is_total)
        check_order(t, row);
    if (row->is_total) {
        t->total_micros += row->amount_micros;
        t->total_debit_micros += row->debit_micros;
        t->total_postings += row->posting_count;
        if (row->net_micros != 0)
            die("trial balance", "total net is not 0");
    }
    return 0;
}

static const char *only; /* run only reports whose label contains this */

static struct tally run(struct ledger *l, const char *label, int kind, const char *const *keys,
                        uint32_t kc)
{
    static struct tally t;
    memset(&t, 0, sizeof t);
    if (only && !strstr(label, only))
        return t;
    struct ledger_error err;
    double t0 = now_s(), c0 = cpu_s();
    if (ledger_report(l, kind, 2025, 11, keys, kc, tally_cb, &t, &err) != 0)
        die(label, err.message);
    printf("%-36s %8.3f %8.3f %10llu %14lld\n", label, now_s() - t0, cpu_s() - c0,
           (unsigned long long)t.rows,
           (long long)(t.total_micros ? t.total_micros : t.total_debit_micros));
    fflush(stdout);
    return t;
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 10000000;
    only = argc > 2 ? argv[2] : NULL;
    struct ledger *l;
    struct ledger_error err;
    if (ledger_open(&l, NULL, &err) != 0)
        die("open", err.message);
    static struct proto_cmd cmds[2];
    static struct proto_result res[2];
    double t0 = now_s();
    setup(l, cmds, res);
    long seq = 0;
    uint64_t next_res_id = 1;
    post(l, OUTSIDE, NOV_2025_MS - 3600000, 1, &seq, &next_res_id);
    /* The month proper: entries spread evenly over it, the last one at
     * 23:59:59.999 of November 30. */
    long entries = (rows + BATCH / 2 - 1) / (BATCH / 2);
    int64_t step = (DEC_2025_MS - 1 - NOV_2025_MS) / (entries > 1 ? entries - 1 : 1);
    long before = seq;
    post(l, rows, NOV_2025_MS, step, &seq, &next_res_id);
    long in_month = seq - before;
    post(l, OUTSIDE, DEC_2025_MS, 1, &seq, &next_res_id);
    printf("report_month: %ld postings in 2025-11 (+%d either side), %d accounts, 5 metadata "
           "keys; built in %.1f s\n", in_month, OUTSIDE, ACCOUNTS, now_s() - t0);
    printf("%-36s %8s %8s %10s %14s\n", "report", "wall s", "cpu s", "rows", "total micros");

    static const char *const common[] = {"team", "project_id", "workflow", "model"};
    static const char *const ticket[] = {"ticket_id"};
    struct tally cb = run(l, "chargeback (account + cost_center)", LEDGER_REPORT_CHARGEBACK,
                          NULL, 0);
    struct tally sp = run(l, "spend (account, payee)", LEDGER_REPORT_SPEND, NULL, 0);
    struct tally sg = run(l, "spend by team,project,workflow,model", LEDGER_REPORT_SPEND,
                          common, 4);
    struct tally st = run(l, "spend by ticket_id (1 group/row)", LEDGER_REPORT_SPEND, ticket,
                          1);
    struct tally tb = run(l, "trial-balance", LEDGER_REPORT_TRIAL_BALANCE, NULL, 0);
    struct tally tr = run(l, "transfers (raw rows)", LEDGER_REPORT_TRANSFERS, NULL, 0);

    if (only) {
        ledger_close(l);
        return 0;
    }
    /* Chargeback has two views, each with a total: half of the sum is one. */
    int64_t chargeback_micros = cb.total_micros / 2;
    if (sp.total_micros != sg.total_micros || sp.total_micros != st.total_micros)
        die("check", "spend totals differ between groupings");
    if (chargeback_micros + sp.total_micros != tr.total_micros)
        die("check", "chargeback + spend != transfers");
    if (tb.total_debit_micros != tr.total_micros)
        die("check", "trial balance debits != transfers");
    if (tr.total_postings != (uint64_t)in_month)
        die("check", "transfers outside the month were counted");
    printf("checks: chargeback + spend = transfers = trial-balance debits = %lld micros\n",
           (long long)tr.total_micros);
    ledger_close(l);
    return 0;
}
