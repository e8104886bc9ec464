/*
 * main.c — purser-gateway's command line (API.md "Programs"), the loop and
 * the readiness probe (a linearizable read each second: /readyz answers 200
 * only while a quorum answers).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "proto/tls.h"

#define GW_VERSION "purser-gateway 0.1.0"

static void gw_usage(FILE *f)
{
    fprintf(f, "usage: purser-gateway --listen HOST:PORT --cluster RPCADDR[,RPCADDR...]\n"
               "                      [--config FILE] [--auth FILE] [--tls-cert PEM --tls-key PEM]\n"
               "                      [--cluster-tls-ca PEM [--cluster-tls-cert PEM\n"
               "                       --cluster-tls-key PEM]]\n"
               "                      [--upstream-client native|curl] [--help] [--version]\n"
               "\n"
               "  --listen HOST:PORT   HTTP address (numeric IPv4)\n"
               "  --cluster ADDRS      purserd RPC addresses (or PURSER_CLUSTER)\n"
               "  --config FILE        routing: upstreams and models (JSON, API.md)\n"
               "  --auth FILE          the gateway role's secret (or PURSER_AUTH)\n"
               "  --tls-cert, --tls-key  terminate TLS (HTTP/2 and HTTP/1.1 by ALPN)\n"
               "  --cluster-tls-ca PEM  speak TLS to purserd's RPC port; verify nodes\n"
               "                       against this CA (or PURSER_CLUSTER_TLS_CA)\n"
               "  --cluster-tls-cert, --cluster-tls-key PEM\n"
               "                       a client certificate for the cluster\n"
               "  --upstream-client native|curl\n"
               "                       plain http:// upstreams on the native HTTP/1.1\n"
               "                       client (default) or on libcurl; https:// always\n"
               "                       uses libcurl\n");
}

static void gw_probe_done(void *arg, const struct pc_reply *r)
{
    struct gw *g = arg;
    g->is_ready = r->status == PC_OK;
}

static void gw_probe(uv_timer_t *t)
{
    struct gw *g = t->data;
    static const uint8_t params[] = {0x92, 0xa6, 'p', 'o', 'l', 'i', 'c', 'y',
                                     0xa6, 'l', 'i', 'n', 'e', 'a', 'r'};
    if (pc_call(g->client, PC_TARGET_LEADER, "read", params, sizeof params, false, gw_probe_done,
                g) != 0)
        g->is_ready = false;
}

static void gw_on_signal(uv_signal_t *h, int signum)
{
    struct gw *g = h->data;
    (void)signum;
    gw_log_printf("purser-gateway: stopping\n");
    uv_signal_stop(&g->sigterm);
    uv_signal_stop(&g->sigint);
    uv_timer_stop(&g->ready_timer);
    gw_proxy_settle_flush(g);
    gw_http_stop(g);
    uv_stop(g->loop);
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *cluster = getenv("PURSER_CLUSTER"), *config = NULL;
    const char *auth_path = getenv("PURSER_AUTH");
    const char *tls_cert = NULL, *tls_key = NULL;
    /* TLS to the cluster (the RPC client), apart from the HTTP listener's. */
    const char *cluster_ca = getenv("PURSER_CLUSTER_TLS_CA");
    const char *cluster_cert = NULL, *cluster_key = NULL;
    enum gw_upstream_client upstream_client = GW_UPSTREAM_CLIENT_NATIVE;
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"cluster", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, 'f'}, {"auth", required_argument, NULL, 'a'},
        {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
        {"cluster-tls-ca", required_argument, NULL, 'A'},
        {"cluster-tls-cert", required_argument, NULL, 'E'},
        {"cluster-tls-key", required_argument, NULL, 'Y'},
        {"upstream-client", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'c': cluster = optarg; break;
        case 'f': config = optarg; break;
        case 'a': auth_path = optarg; break;
        case 'C': tls_cert = optarg; break;
        case 'K': tls_key = optarg; break;
        case 'A': cluster_ca = optarg; break;
        case 'E': cluster_cert = optarg; break;
        case 'Y': cluster_key = optarg; break;
        case 'U':
            if (strcmp(optarg, "native") == 0) {
                upstream_client = GW_UPSTREAM_CLIENT_NATIVE;
            } else if (strcmp(optarg, "curl") == 0) {
                upstream_client = GW_UPSTREAM_CLIENT_CURL;
            } else {
                fprintf(stderr, "purser-gateway: --upstream-client must be native or curl, not"
                                " \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'h': gw_usage(stdout); return 0;
        case 'V': puts(GW_VERSION); return 0;
        default: gw_usage(stderr); return 2;
        }
    }
    if (!listen || !cluster || optind < argc) {
        fprintf(stderr, "purser-gateway: --listen and --cluster are required\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static struct gw g;
    g.loop = uv_default_loop();
    char msg[512];
    if (config) {
        if (gw_config_load(config, &g.config, msg, sizeof msg) != 0) {
            fprintf(stderr, "purser-gateway: --config %s\n", msg);
            return 2;
        }
    } else {
        g.config.upstream_timeout_ms = 300000;
    }
    static struct rpc_auth auth;
    const char *secret = NULL;
    if (auth_path) {
        if (rpc_auth_load(auth_path, &auth, msg, sizeof msg) != 0) {
            fprintf(stderr, "purser-gateway: %s\n", msg);
            return 2;
        }
        secret = rpc_auth_secret(&auth, "gateway");
        if (!secret[0]) {
            fprintf(stderr, "purser-gateway: %s has no gateway secret\n", auth_path);
            return 2;
        }
    }
    static char addr_buf[1024];
    snprintf(addr_buf, sizeof addr_buf, "%s", cluster);
    static const char *addrs[PC_NODES_MAX];
    uint32_t n = 0;
    for (char *save = NULL, *a = strtok_r(addr_buf, ",", &save); a && n < PC_NODES_MAX;
         a = strtok_r(NULL, ",", &save))
        addrs[n++] = a;
    static struct ptls_ctx *cluster_tls;
    if (cluster_ca && !cluster_ca[0])
        cluster_ca = NULL;
    if ((cluster_cert || cluster_key) && !cluster_ca) {
        fprintf(stderr, "purser-gateway: --cluster-tls-cert/--cluster-tls-key need "
                        "--cluster-tls-ca\n");
        return 2;
    }
    if (cluster_ca && ptls_client_ctx_new(cluster_ca, cluster_cert, cluster_key, "--cluster-tls",
                                          &cluster_tls, msg, sizeof msg) != 0) {
        fprintf(stderr, "purser-gateway: %s\n", msg);
        return 2;
    }
    struct pc_options o = {.addrs = addrs, .addr_count = n, .role = "gateway", .secret = secret,
                           .attempt_timeout_ms = 2000, .deadline_ms = 5000, .tls = cluster_tls};
    struct proto_error perr;
    if (pc_client_open(g.loop, &o, &g.client, &perr) != 0) {
        fprintf(stderr, "purser-gateway: --cluster: %s\n", perr.message);
        return 2;
    }
    gw_log_init(g.loop);
    if (gw_metrics_init(&g) != 0 || gw_upstream_init(&g.upstream, g.loop, upstream_client) != 0) {
        fprintf(stderr, "purser-gateway: cannot start (memory or libcurl)\n");
        return 1;
    }
    if (gw_http_start(&g, listen, tls_cert, tls_key, msg, sizeof msg) != 0) {
        fprintf(stderr, "purser-gateway: %s\n", msg);
        return 1;
    }
    gw_proxy_settle_init(&g);
    uv_timer_init(g.loop, &g.ready_timer);
    g.ready_timer.data = &g;
    uv_timer_start(&g.ready_timer, gw_probe, 0, 1000);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sigint);
    g.sigterm.data = g.sigint.data = &g;
    uv_signal_start(&g.sigterm, gw_on_signal, SIGTERM);
    uv_signal_start(&g.sigint, gw_on_signal, SIGINT);
    fprintf(stderr, "purser-gateway: listening on %s, cluster %s%s, %u models\n", listen, cluster,
            cluster_tls ? " (TLS)" : "", g.config.model_count);
    uv_run(g.loop, UV_RUN_DEFAULT);
    gw_log_flush();
    return 0;
}
