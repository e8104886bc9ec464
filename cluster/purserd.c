/*
 * purserd.c — the ledger node's command line (API.md "Programs"): flags,
 * the auth file, signals, and the loop.  Exit codes: 0 after a clean stop,
 * 2 on usage errors, 1 when the node cannot start.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"
#include "cluster/webhook.h"

#define PURSERD_VERSION "purserd 0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: purserd --id N --raft HOST:PORT --rpc HOST:PORT --data DIR\n"
            "               [--bootstrap ID@RAFTADDR/RPCADDR,... | --join RPCADDR]\n"
            "               [--auth FILE | --no-auth] [--election-timeout-ms MS]\n"
            "               [--snapshot-threshold N] [--raft-bind HOST:PORT]\n"
            "               [--tls-cert PEM --tls-key PEM [--tls-ca PEM]\n"
            "                [--tls-require-client-cert]]\n"
            "               [--webhook-url URL [--webhook-secret FILE]]\n"
            "               [--help] [--version]\n"
            "\n"
            "  --id N              this node's id (> 0), unique in the cluster\n"
            "  --raft HOST:PORT    raft peer address (numeric IPv4)\n"
            "  --raft-bind HOST:PORT\n"
            "                      listen for raft peers here instead; peers still\n"
            "                      connect to --raft (e.g. through a proxy)\n"
            "  --rpc HOST:PORT     client RPC address (numeric IPv4)\n"
            "  --data DIR          raft log and snapshots (created if missing)\n"
            "  --bootstrap LIST    start a new cluster of these voters (every initial\n"
            "                      member gets the same list)\n"
            "  --join RPCADDR      ask a running member to add this node\n"
            "                      (ignored, like --bootstrap, when DIR holds data)\n"
            "  --auth FILE         lines \"ROLE SECRET\" (admin, gateway, reader);\n"
            "                      also PURSER_AUTH\n"
            "  --no-auth           accept any client: loopback experiments only\n"
            "  --webhook-url URL   the leader POSTs alert events (thresholds, breakers)\n"
            "                      here, signed (X-Purser-Signature: sha256=HMAC)\n"
            "  --webhook-secret FILE\n"
            "                      the HMAC-SHA256 key, read from FILE (required with\n"
            "                      --webhook-url; never given on the command line)\n"
            "  --tls-cert, --tls-key PEM\n"
            "                      the RPC port speaks TLS only (raft traffic does not:\n"
            "                      keep --raft on a private network or loopback)\n"
            "  --tls-ca PEM        verify client certificates that are presented (and\n"
            "                      the member --join talks to) against this CA\n"
            "  --tls-require-client-cert\n"
            "                      refuse clients without a certificate (needs --tls-ca)\n");
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    (void)signum;
    fprintf(stderr, "purserd: stopping\n");
    uv_signal_stop(&n->sigterm);
    uv_signal_stop(&n->sigint);
    node_stop(n);
}

static int copy_flag(char *dst, size_t cap, const char *v, const char *flag)
{
    if (strlen(v) >= cap) {
        fprintf(stderr, "purserd: %s is too long\n", flag);
        return -1;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

int main(int argc, char **argv)
{
    static struct node_options o;
    o.election_timeout_ms = 1500;
    o.snapshot_threshold = 16384;
    o.snapshot_trailing = 8192;
    const char *auth_path = getenv("PURSER_AUTH");
    const char *webhook_url = NULL, *webhook_secret = NULL;
    enum {
        OPT_ELECTION = 1000,
        OPT_SNAPSHOT,
        OPT_NO_AUTH,
        OPT_RAFT_BIND,
        OPT_WEBHOOK_URL,
        OPT_WEBHOOK_SECRET,
        OPT_TLS_CERT,
        OPT_TLS_KEY,
        OPT_TLS_CA,
        OPT_TLS_REQUIRE,
    };
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},
        {"raft", required_argument, NULL, 'r'},
        {"raft-bind", required_argument, NULL, OPT_RAFT_BIND},
        {"rpc", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"join", required_argument, NULL, 'j'},
        {"auth", required_argument, NULL, 'a'},
        {"no-auth", no_argument, NULL, OPT_NO_AUTH},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"tls-require-client-cert", no_argument, NULL, OPT_TLS_REQUIRE},
        {"election-timeout-ms", required_argument, NULL, OPT_ELECTION},
        {"snapshot-threshold", required_argument, NULL, OPT_SNAPSHOT},
        {"webhook-url", required_argument, NULL, OPT_WEBHOOK_URL},
        {"webhook-secret", required_argument, NULL, OPT_WEBHOOK_SECRET},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'i': o.id = strtoull(optarg, NULL, 10); break;
        case 'r': rc = copy_flag(o.raft_addr, sizeof o.raft_addr, optarg, "--raft"); break;
        case OPT_RAFT_BIND:
            rc = copy_flag(o.raft_bind, sizeof o.raft_bind, optarg, "--raft-bind");
            break;
        case 'p': rc = copy_flag(o.rpc_addr, sizeof o.rpc_addr, optarg, "--rpc"); break;
        case 'd': rc = copy_flag(o.data_dir, sizeof o.data_dir, optarg, "--data"); break;
        case 'b': rc = copy_flag(o.bootstrap, sizeof o.bootstrap, optarg, "--bootstrap"); break;
        case 'j': rc = copy_flag(o.join, sizeof o.join, optarg, "--join"); break;
        case 'a': auth_path = optarg; break;
        case OPT_NO_AUTH: o.is_no_auth = true; break;
        case OPT_TLS_CERT: o.tls_cert = optarg; break;
        case OPT_TLS_KEY: o.tls_key = optarg; break;
        case OPT_TLS_CA: o.tls_ca = optarg; break;
        case OPT_TLS_REQUIRE: o.is_tls_client_cert_required = true; break;
        case OPT_ELECTION: o.election_timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case OPT_SNAPSHOT: o.snapshot_threshold = (unsigned)strtoul(optarg, NULL, 10); break;
        case OPT_WEBHOOK_URL: webhook_url = optarg; break;
        case OPT_WEBHOOK_SECRET: webhook_secret = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': puts(PURSERD_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (rc != 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "purserd: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    char host[NODE_ADDR_MAX];
    int port;
    if (o.id == 0 || !o.data_dir[0] || rpc_addr_parse(o.raft_addr, host, sizeof host, &port) ||
        rpc_addr_parse(o.rpc_addr, host, sizeof host, &port) ||
        (o.raft_bind[0] && rpc_addr_parse(o.raft_bind, host, sizeof host, &port))) {
        fprintf(stderr, "purserd: --id (> 0), --raft, --rpc (numeric a.b.c.d:port) and --data"
                        " are required (--raft-bind numeric too)\n");
        return 2;
    }
    if (o.bootstrap[0] && o.join[0]) {
        fprintf(stderr, "purserd: --bootstrap and --join exclude each other\n");
        return 2;
    }
    if (webhook_secret && !webhook_url) {
        fprintf(stderr, "purserd: --webhook-secret needs --webhook-url\n");
        return 2;
    }
    if (o.election_timeout_ms < 100 || o.election_timeout_ms > 60000) {
        fprintf(stderr, "purserd: --election-timeout-ms must be 100..60000\n");
        return 2;
    }
    if (!o.tls_cert != !o.tls_key) {
        fprintf(stderr, "purserd: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (o.tls_ca && !o.tls_cert) {
        fprintf(stderr, "purserd: --tls-ca needs --tls-cert and --tls-key\n");
        return 2;
    }
    if (o.is_tls_client_cert_required && !o.tls_ca) {
        fprintf(stderr, "purserd: --tls-require-client-cert needs --tls-ca\n");
        return 2;
    }
    if (o.tls_cert && o.join[0] && !o.tls_ca) {
        fprintf(stderr, "purserd: --join with TLS needs --tls-ca to verify the member\n");
        return 2;
    }
    o.heartbeat_timeout_ms = o.election_timeout_ms / 10;
    if (o.snapshot_threshold < 64)
        o.snapshot_threshold = 64;
    o.snapshot_trailing = o.snapshot_threshold / 2;
    if (o.is_no_auth) {
        fprintf(stderr, "purserd: WARNING: --no-auth: any client may do anything. Use it on"
                        " loopback only.\n");
    } else {
        char msg[256];
        if (!auth_path) {
            fprintf(stderr, "purserd: --auth FILE (or PURSER_AUTH) is required, or --no-auth\n");
            return 2;
        }
        if (rpc_auth_load(auth_path, &o.auth, msg, sizeof msg) != 0) {
            fprintf(stderr, "purserd: %s\n", msg);
            return 2;
        }
    }

    /* A peer that vanishes mid-write must not kill the node. */
    signal(SIGPIPE, SIG_IGN);
    static struct node n;
    uv_loop_t *loop = uv_default_loop();
    char msg[512];
    if (node_start(&n, loop, &o, msg, sizeof msg) != 0) {
        fprintf(stderr, "purserd: %s\n", msg);
        return 1;
    }
    if (webhook_url && webhook_start(&n, webhook_url, webhook_secret, msg, sizeof msg) != 0) {
        fprintf(stderr, "purserd: %s\n", msg);
        return 2;
    }
    uv_signal_init(loop, &n.sigterm);
    uv_signal_init(loop, &n.sigint);
    n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    fprintf(stderr, "purserd: node %llu raft %s rpc %s%s data %s\n", (unsigned long long)o.id,
            o.raft_addr, o.rpc_addr, o.tls_cert ? " (TLS)" : "", o.data_dir);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
