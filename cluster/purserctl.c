/*
 * purserctl.c — the CLI for SRE and finance (API.md, "purserctl").
 *
 * main() parses the whole line (global flags are accepted anywhere), finds
 * the command in a table by its one or two words, checks the options and the
 * number of arguments the entry allows, sets up the connection parameters
 * and runs the entry's handler (ctl_ledger.c, ctl_cluster.c).  Help comes
 * from the same table, so a command and its usage cannot drift apart.
 *
 * Exit codes: 0 ok, 1 refused, 2 usage, 3 cluster unreachable.
 */
#include "cluster/ctl.h"

#include <signal.h>
#include <string.h>

#ifndef PURSER_VERSION
#define PURSER_VERSION "0.1.0"
#endif

#define B(o) CTL_OPT_BIT(CTL_OPT_##o)
#define MUTATING B(KEY)
#define READ B(STALE)
#define ACCOUNT_OPTS (B(CAP) | B(PERIOD) | B(TZ) | B(TAG))

struct ctl_command {
    const char *group;   /* first word */
    const char *verb;    /* second word, or NULL for a one-word command */
    const char *usage;   /* arguments and options */
    const char *summary;
    uint32_t arg_min;
    uint32_t arg_max;
    uint64_t options;    /* beyond CTL_OPTS_GLOBAL */
    ctl_run_fn run;
};

static const struct ctl_command commands[] = {
    {"cluster", "status", "", "every member's role, state and indexes", 0, 0, 0,
     ctl_cluster_status},
    {"cluster", "members", "", "the membership as the leader sees it", 0, 0, 0,
     ctl_cluster_members},
    {"cluster", "add", "ID RAFTADDR/RPCADDR | ID RAFTADDR RPCADDR", "add a node as spare", 2, 3,
     0, ctl_cluster_add},
    {"cluster", "remove", "ID", "remove a node", 1, 1, 0, ctl_cluster_remove},
    {"cluster", "promote", "ID", "make a spare node a voter", 1, 1, 0, ctl_cluster_promote},
    {"cluster", "transfer-leader", "[ID]", "hand leadership to ID (default: the most "
     "up-to-date voter)", 0, 1, 0, ctl_cluster_transfer_leader},
    {"cluster", "verify", "", "checkpoint and compare every node's state hash (exit 1 if "
     "any differ)", 0, 0, 0, ctl_cluster_verify},
    {"snapshot", NULL, "", "take a raft snapshot on the leader now", 0, 0, 0, ctl_snapshot},
    {"backup", NULL, "FILE", "write a consistent image of the ledger to FILE", 1, 1, 0,
     ctl_backup},
    {"restore", NULL, "FILE", "replace the ledger on every node with the image in FILE", 1, 1,
     0, ctl_restore},
    {"account", "create", "NAME [--cap USD|none] [--period day|week|month|none] [--tz +HH:MM] "
     "[--tag k=v]...", "create an account", 1, 1, MUTATING | ACCOUNT_OPTS, ctl_account_create},
    {"account", "update", "NAME [--cap USD|none] [--period ...] [--tz +HH:MM] [--tag k=v]...",
     "change an account's cap, period, offset or tags (tags are replaced)", 1, 1,
     MUTATING | ACCOUNT_OPTS, ctl_account_update},
    {"account", "show", "NAME", "balances of an account and its subtree", 1, 1, READ,
     ctl_account_show},
    {"account", "list", "[NAME]", "accounts in name order (with NAME: that account and its "
     "subtree)", 0, 1, READ, ctl_account_list},
    {"account", "freeze", "NAME [--reason TEXT]", "refuse new holds and spend on the subtree", 1,
     1, MUTATING | B(REASON), ctl_account_freeze},
    {"account", "unfreeze", "NAME [--reason TEXT]", "undo freeze", 1, 1, MUTATING | B(REASON),
     ctl_account_unfreeze},
    {"account", "close", "NAME [--reason TEXT]", "close an account for good", 1, 1,
     MUTATING | B(REASON), ctl_account_close},
    {"grant", "create", "PARENT USD [--ttl 30m] [--workflow W] [--tag k=v]...",
     "a per-task budget under PARENT (default ttl 1h)", 2, 2,
     MUTATING | B(TTL) | B(WORKFLOW) | B(TAG), ctl_grant_create},
    {"grant", "close", "ID", "close a grant, returning what is left", 1, 1, MUTATING,
     ctl_grant_close},
    {"reserve", NULL, "ACCOUNT USD [--ttl 60s] [--payee ACCOUNT] [--on-expire release|charge] "
     "[--tag k=v]...", "hold USD on ACCOUNT (default ttl 60s)", 2, 2,
     MUTATING | B(TTL) | B(PAYEE) | B(ON_EXPIRE) | B(TAG), ctl_reserve},
    {"commit", NULL, "ID USD [--tag k=v]...", "post the actual cost of a reservation", 2, 2,
     MUTATING | B(TAG), ctl_commit},
    {"release", NULL, "ID", "free a reservation's hold", 1, 1, MUTATING, ctl_release},
    {"transfer", NULL, "DEBIT CREDIT USD [--kind chargeback|adjustment] [--tag k=v]...",
     "move USD between accounts (default kind chargeback)", 3, 3,
     MUTATING | B(KIND) | B(TAG), ctl_transfer},
    {"key", "create", "ACCOUNT [--role agent|admin]", "a gateway API key for ACCOUNT (the "
     "secret is shown once)", 1, 1, MUTATING | B(ROLE), ctl_key_create},
    {"key", "revoke", "KEYID", "revoke an API key", 1, 1, MUTATING, ctl_key_revoke},
    {"price", "set", "MODEL --input USD --output USD [--cached USD] [--cache-write USD]",
     "USD per million tokens (cache prices default to --input)", 1, 1,
     MUTATING | B(INPUT) | B(OUTPUT) | B(CACHED) | B(CACHE_WRITE), ctl_price_set},
    {"price", "list", "", "every model's prices", 0, 0, READ, ctl_price_list},
    {"price", "load", "FILE", "set every model's prices from a price file (prices/default.json)",
     1, 1, MUTATING, ctl_price_load},
    {"policy", "set", "required-metadata KEY,KEY,... | approval-above USD|none",
     "metadata keys every charge must carry; the p90 estimate above which an agent needs an "
     "admin-created grant", 1, 2, MUTATING, ctl_policy_set},
    {"policy", "show", "", "the metadata policy and the approval threshold", 0, 0, READ,
     ctl_policy_show},
    {"limit", "set", "ACCOUNT|--meta KEY=VALUE [--rpm N] [--tpm N] [--tph N] [--tpd N]",
     "rate limits of an account's subtree or of a metadata value (sliding windows; a limit "
     "not given is none)", 0, 1, MUTATING | B(META) | B(RPM) | B(TPM) | B(TPH) | B(TPD),
     ctl_limit_set},
    {"limit", "clear", "ACCOUNT|--meta KEY=VALUE", "remove a scope's rate limits", 0, 1,
     MUTATING | B(META), ctl_limit_clear},
    {"limit", "list", "", "rate limits and what their windows hold now", 0, 0, READ,
     ctl_limit_list},
    {"estimate", NULL, "WORKFLOW [--model M]", "p50/p90 cost of a task of WORKFLOW, learned "
     "from closed grants", 1, 1, READ | B(MODEL), ctl_estimate},
    {"period", "close", "YYYY-MM", "close a month: no posting may land in it after", 1, 1,
     MUTATING, ctl_period_close},
    {"period", "list", "", "closed months", 0, 0, READ, ctl_period_list},
    {"breaker", "set", "ACCOUNT [--velocity USD/DURATION] [--bedtime HH:MM-HH:MM "
     "[--bedtime-factor N] [--bedtime-floor USD]]", "freeze ACCOUNT when its spend runs too "
     "fast, or too far above its usual spend in quiet hours (account's --tz)", 1, 1,
     MUTATING | B(VELOCITY) | B(BEDTIME) | B(BEDTIME_FACTOR) | B(BEDTIME_FLOOR), ctl_breaker_set},
    {"breaker", "clear", "ACCOUNT", "remove ACCOUNT's breaker", 1, 1, MUTATING,
     ctl_breaker_clear},
    {"breaker", "show", "ACCOUNT", "ACCOUNT's breaker, its counters, thresholds and frozen "
     "reason", 1, 1, READ, ctl_breaker_show},
    {"alert", "set", "ACCOUNT PCT,PCT,...|none|default", "spend thresholds in percent of "
     "ACCOUNT's cap (default 50,80,100); each fires an event once per period", 2, 2, MUTATING,
     ctl_alert_set},
    {"events", NULL, "[--pending]", "the event outbox: events not yet delivered to the webhook",
     0, 0, READ | B(PENDING), ctl_events},
    {"report", NULL, "chargeback|spend|trial-balance|transfers --month YYYY-MM "
     "[--group-by KEY,...] [--format table|csv|json|xlsx|focus] [--out FILE] "
     "[--view account|cost_center]", "a month's report (UTC); spend groups by metadata keys; "
     "chargeback has a by-account and a by-cost_center view", 1, 1,
     READ | B(MONTH) | B(GROUP_BY) | B(FORMAT) | B(OUT) | B(VIEW), ctl_report},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const char global_usage[] =
    "usage: purserctl [--cluster ADDR[,ADDR...]] [--auth FILE] [--json] [--timeout DUR] "
    "[--verbose] [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] COMMAND ...\n";

static const char global_help[] =
    "\n"
    "global options (anywhere on the line):\n"
    "  --cluster ADDR[,...]  rpc addresses of cluster nodes (or PURSER_CLUSTER)\n"
    "  --auth FILE           lines \"ROLE SECRET\"; the strongest role is used (or "
    "PURSER_AUTH)\n"
    "  --json                machine-readable output, amounts as *_micros integers\n"
    "  --timeout DUR         give up after DUR (default 10s)\n"
    "  --verbose, -v         say more on stderr (e.g. the idempotency key)\n"
    "  --tls-ca PEM          speak TLS to the cluster; verify nodes against this CA\n"
    "                        (or PURSER_TLS_CA)\n"
    "  --tls-cert, --tls-key PEM  a client certificate to present (or PURSER_TLS_CERT,\n"
    "                        PURSER_TLS_KEY)\n"
    "  --key K               idempotency key of a mutating command (default: a random one)\n"
    "  --stale               reads: answer from any node's applied state\n"
    "  --help, -h / --version\n"
    "\n"
    "amounts are decimal USD with at most 6 decimals; durations like 500ms, 60s, 30m, 2h.\n"
    "exit codes: 0 ok, 1 refused, 2 usage error, 3 cluster unreachable.\n";

static void command_usage(FILE *out, const struct ctl_command *c)
{
    fprintf(out, "  purserctl %s%s%s%s%s\n", c->group, c->verb != NULL ? " " : "",
            c->verb != NULL ? c->verb : "", c->usage[0] != '\0' ? " " : "", c->usage);
}

/* Usage lines of every command in `group` (NULL: all). */
static void commands_usage(FILE *out, const char *group)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (group == NULL || strcmp(commands[i].group, group) == 0)
            command_usage(out, &commands[i]);
    }
}

static bool group_exists(const char *group)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].group, group) == 0)
            return true;
    }
    return false;
}

/* The command named by the first positional words, or NULL. */
static const struct ctl_command *command_find(const struct ctl_args *a)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        const struct ctl_command *c = &commands[i];
        if (strcmp(c->group, a->positional[0]) != 0)
            continue;
        if (c->verb == NULL)
            return c;
        if (a->positional_count > 1 && strcmp(c->verb, a->positional[1]) == 0)
            return c;
    }
    return NULL;
}

/* No command found: help for a group, or a one-line usage error. */
static int command_missing(const struct ctl_args *a, bool is_help)
{
    const char *group = a->positional[0];
    if (!group_exists(group)) {
        ctl_errorf("unknown command \"%s\" (see purserctl --help)", group);
        return CTL_EXIT_USAGE;
    }
    if (is_help) {
        fputs(global_usage, stdout);
        commands_usage(stdout, group);
        return CTL_EXIT_OK;
    }
    if (a->positional_count < 2)
        ctl_errorf("%s needs a subcommand (see purserctl %s --help)", group, group);
    else
        ctl_errorf("unknown %s command \"%s\" (see purserctl %s --help)", group,
                   a->positional[1], group);
    return CTL_EXIT_USAGE;
}

static int command_run(const struct ctl_command *c, const struct ctl_args *a)
{
    char err[CTL_ERR_MAX];
    uint32_t words = c->verb != NULL ? 2 : 1;
    uint32_t n = a->positional_count - words;
    const char *sp = c->verb != NULL ? " " : "";
    const char *verb = c->verb != NULL ? c->verb : "";
    if (ctl_args_check(a, CTL_OPTS_GLOBAL | c->options, err, sizeof err) != 0) {
        ctl_errorf("%s%s%s: %s (see purserctl %s%s%s --help)", c->group, sp, verb, err,
                   c->group, sp, verb);
        return CTL_EXIT_USAGE;
    }
    if (n < c->arg_min || n > c->arg_max) {
        ctl_errorf("%s%s%s: %u argument%s do%s not fit; usage: purserctl %s%s%s%s%s", c->group,
                   sp, verb, n, n == 1 ? "" : "s", n == 1 ? "es" : "", c->group, sp, verb,
                   c->usage[0] != '\0' ? " " : "", c->usage);
        return CTL_EXIT_USAGE;
    }
    struct ctl ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.args = a;
    ctl.pos = a->positional + words;
    ctl.pos_count = n;
    int rc = ctl_setup(&ctl);
    if (rc == CTL_EXIT_OK)
        rc = c->run(&ctl);
    ctl_close(&ctl);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl_args args;
    char err[CTL_ERR_MAX];
    /* A node that dies mid-call must give exit 3 and a message, not a
     * silent death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (ctl_args_parse(argc, argv, &args, err, sizeof err) != 0) {
        ctl_errorf("%s (see purserctl --help)", err);
        return CTL_EXIT_USAGE;
    }
    bool is_help = args.value[CTL_OPT_HELP] != NULL;
    if (args.value[CTL_OPT_VERSION] != NULL) {
        printf("purserctl %s\n", PURSER_VERSION);
        return CTL_EXIT_OK;
    }
    if (args.positional_count == 0) {
        if (!is_help) {
            ctl_errorf("no command (see purserctl --help)");
            return CTL_EXIT_USAGE;
        }
        fputs(global_usage, stdout);
        fputs("\ncommands:\n", stdout);
        commands_usage(stdout, NULL);
        fputs(global_help, stdout);
        return CTL_EXIT_OK;
    }
    const struct ctl_command *c = command_find(&args);
    if (c == NULL)
        return command_missing(&args, is_help);
    if (is_help) {
        fputs("usage:\n", stdout);
        command_usage(stdout, c);
        printf("\n%s.\n", c->summary);
        if (c->options & MUTATING)
            fputs("mutating: --key K sets the idempotency key (default: a random one).\n",
                  stdout);
        if (c->options & READ)
            fputs("read: --stale answers from any node's applied state.\n", stdout);
        return CTL_EXIT_OK;
    }
    return command_run(c, &args);
}
