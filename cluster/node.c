/*
 * node.c — a purserd node's life: raft setup (raft_uv with our transport
 * wrapper, the ledger FSM), bootstrap or join, the leader's clock and its
 * expire timer, checkpoints, and an orderly stop (leadership handed over
 * first, raft closed outside of any raft callback).
 *
 * Timeouts (PITFALLS.md): pre-vote on; election 1500 ms and heartbeat
 * 150 ms by default, so a loaded 2-core box keeps its leader yet a dead one
 * is replaced within a few seconds; a large snapshot threshold, because each
 * snapshot holds the loop for the time it takes to copy the ledger.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <time.h>

#include "cluster/server.h"
#include "cluster/webhook.h"
#include "proto/client.h"
#include "proto/tls.h"

bool node_is_leader(struct node *n)
{
    return !n->is_stopping && raft_state(&n->raft) == RAFT_LEADER;
}

void node_addr_split(const char *addr, char *raft_part, size_t raft_cap, char *rpc_part,
                     size_t rpc_cap)
{
    const char *slash = addr ? strchr(addr, '/') : NULL;
    int n = addr ? (slash ? (int)(slash - addr) : (int)strlen(addr)) : 0;
    snprintf(raft_part, raft_cap, "%.*s", n, addr ? addr : "");
    snprintf(rpc_part, rpc_cap, "%s", slash ? slash + 1 : "");
}

void node_leader(struct node *n, raft_id *id, char *rpc, size_t cap)
{
    const char *addr = NULL;
    *id = 0;
    rpc[0] = '\0';
    raft_leader(&n->raft, id, &addr);
    if (*id == 0)
        return;
    /* A follower learns the leader's address from the transport, which
     * knows only the raft part: take the full one from the configuration. */
    const struct raft_configuration *conf = &n->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++)
        if (conf->servers[i].id == *id)
            addr = conf->servers[i].address;
    if (!addr)
        return;
    char raft_part[NODE_ADDR_MAX];
    node_addr_split(addr, raft_part, sizeof raft_part, rpc, cap);
}

int64_t node_stamp(struct node *n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* Never behind this leader's last stamp, nor the ledger's time (a new
     * leader's clock may lag the old one's). */
    if (now < n->last_stamp_ms)
        now = n->last_stamp_ms;
    if (now < ledger_now_ms(n->ledger))
        now = ledger_now_ms(n->ledger);
    n->last_stamp_ms = now;
    return now;
}

void node_checkpoint_record(struct node *n, raft_index index)
{
    struct node_checkpoint *cp = &n->checkpoints[n->checkpoint_next];
    struct ledger_error err;
    if (ledger_state_hash(n->ledger, cp->hash, &err) != 0) {
        fprintf(stderr, "purserd: checkpoint hash failed: %s\n", err.message);
        return;
    }
    cp->index = index;
    n->checkpoint_next = (n->checkpoint_next + 1) % NODE_CHECKPOINTS_MAX;
}

static void node_expire_cb(uv_timer_t *t)
{
    struct node *n = t->data;
    if (!node_is_leader(n))
        return;
    struct proto_cmd c;
    memset(&c, 0, sizeof c);
    c.type = PROTO_CMD_EXPIRE;
    c.role = PROTO_ROLE_ADMIN;
    batch_submit(n, NULL, 0, &c);
}

/* Free bytes in the data dir, or -1 when it cannot be read. */
static int64_t node_disk_free(const char *dir)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return -1;
    return (int64_t)st.f_bavail * (int64_t)st.f_frsize;
}

/* Fail-stop before the disk fills: raft 0.15 keeps entries it failed to
 * write in its in-memory log and can acknowledge them, after which a
 * restarted node may disagree with the others.  A node that stops while
 * it can still write leaves a consistent log; the rest of the cluster goes
 * on, and it catches up once space is freed and it is restarted. */
static void node_disk_check(uv_timer_t *t)
{
    struct node *n = t->data;
    int64_t free_bytes = node_disk_free(n->opt.data_dir);
    if (free_bytes < 0 || free_bytes >= NODE_DISK_FREE_MIN)
        return;
    fprintf(stderr, "purserd: --data %s has %lld bytes free, less than %lld: stopping now so"
                    " that nothing is acknowledged that cannot be written (free space, then"
                    " restart)\n", n->opt.data_dir, (long long)free_bytes,
            (long long)NODE_DISK_FREE_MIN);
    fflush(stderr);
    _exit(4);
}

/* "ID@RAFT/RPC,..." into a configuration. */
static int node_bootstrap_parse(const char *spec, struct raft_configuration *conf, char *msg,
                                size_t cap)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *at = strchr(item, '@');
        char *slash = at ? strchr(at, '/') : NULL;
        char host[NODE_ADDR_MAX];
        int port;
        if (!at || !slash) {
            snprintf(msg, cap, "--bootstrap: \"%s\" is not ID@RAFTADDR/RPCADDR", item);
            return -1;
        }
        *slash = '\0';
        bool ok = rpc_addr_parse(at + 1, host, sizeof host, &port) == 0 &&
                  rpc_addr_parse(slash + 1, host, sizeof host, &port) == 0;
        *slash = '/';
        char *end = NULL;
        unsigned long long id = strtoull(item, &end, 10);
        if (!ok || id == 0 || end != at) {
            snprintf(msg, cap, "--bootstrap: \"%s\" needs an id > 0 and numeric addresses",
                     item);
            return -1;
        }
        if (raft_configuration_add(conf, id, at + 1, RAFT_VOTER) != 0) {
            snprintf(msg, cap, "--bootstrap: duplicate or bad member \"%s\"", item);
            return -1;
        }
    }
    return 0;
}

/* ---- --join: ask a member to add us, until it says yes ---- */

static void node_join_try(uv_timer_t *t);

static void node_join_close(struct node *n)
{
    pc_client_close(n->join_client);
    n->join_client = NULL;
    ptls_ctx_free(n->join_tls); /* sessions still closing hold a reference */
    n->join_tls = NULL;
}

static void node_join_reply(void *arg, const struct pc_reply *reply)
{
    struct node *n = arg;
    if (reply->status == PC_OK) {
        n->is_joined = true;
        fprintf(stderr, "purserd: joined the cluster as node %llu\n",
                (unsigned long long)n->opt.id);
        node_join_close(n);
        return;
    }
    fprintf(stderr, "purserd: join: %s%s%s (retrying)\n", reply->code ? reply->code : "",
            reply->code ? ": " : "", reply->message ? reply->message : "");
    uv_timer_start(&n->join_timer, node_join_try, 1000, 0);
}

static void node_join_try(uv_timer_t *t)
{
    struct node *n = t->data;
    if (n->is_stopping || n->is_joined || !n->join_client)
        return;
    uint8_t params[256];
    size_t len = 0;
    /* [id, raft, rpc] */
    params[len++] = 0x93;
    params[len++] = 0xcf;
    for (int i = 7; i >= 0; i--)
        params[len++] = (uint8_t)(n->opt.id >> (8 * i));
    const char *addrs[2] = {n->opt.raft_addr, n->opt.rpc_addr};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(addrs[k]);
        params[len++] = (uint8_t)(0xa0 | l);
        memcpy(params + len, addrs[k], l);
        len += l;
    }
    if (pc_call(n->join_client, PC_TARGET_LEADER, "join", params, len, true, node_join_reply,
                n) != 0)
        uv_timer_start(&n->join_timer, node_join_try, 1000, 0);
}

static int node_join_start(struct node *n, char *msg, size_t cap)
{
    const char *addrs[1] = {n->opt.join};
    const char *secret = n->opt.is_no_auth ? NULL : rpc_auth_secret(&n->opt.auth, "admin");
    if (!n->opt.is_no_auth && (!secret || !secret[0])) {
        snprintf(msg, cap, "--join needs an admin secret in the --auth file");
        return -1;
    }
    /* Over TLS the member is verified against --tls-ca and this node shows
     * its own certificate (make-test-certs issues it for both uses). */
    if (n->opt.tls_cert && ptls_client_ctx_new(n->opt.tls_ca, n->opt.tls_cert, n->opt.tls_key,
                                               "--tls", &n->join_tls, msg, cap) != 0)
        return -1;
    struct pc_options o = {.addrs = addrs, .addr_count = 1, .role = "admin", .secret = secret,
                           .attempt_timeout_ms = 5000, .deadline_ms = 60000,
                           .tls = n->join_tls};
    struct proto_error perr;
    if (pc_client_open(n->loop, &o, &n->join_client, &perr) != 0) {
        snprintf(msg, cap, "--join %s: %s", n->opt.join, perr.message);
        return -1;
    }
    uv_timer_init(n->loop, &n->join_timer);
    n->join_timer.data = n;
    uv_timer_start(&n->join_timer, node_join_try, 0, 0);
    return 0;
}

/* Does the data dir already hold raft state? (then flags to create are moot) */
static bool node_has_data(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/metadata1", dir);
    struct stat st;
    if (stat(path, &st) == 0)
        return true;
    snprintf(path, sizeof path, "%s/metadata2", dir);
    return stat(path, &st) == 0;
}

int node_start(struct node *n, uv_loop_t *loop, const struct node_options *o, char *msg,
               size_t cap)
{
    memset(n, 0, sizeof *n);
    n->loop = loop;
    n->opt = *o;
    struct ledger_error lerr;
    if (ledger_open(&n->ledger, NULL, &lerr) != 0) {
        snprintf(msg, cap, "ledger: %s", lerr.message);
        return -1;
    }
    if (fsm_init(n) != 0 || batch_init(n) != 0) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    if (mkdir(o->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(msg, cap, "--data %s: %s", o->data_dir, strerror(errno));
        return -1;
    }
    bool has_data = node_has_data(o->data_dir);
    int64_t free_bytes = node_disk_free(o->data_dir);
    if (free_bytes >= 0 && free_bytes < NODE_DISK_FREE_MIN) {
        snprintf(msg, cap, "--data %s has %lld bytes free, less than %lld: free space first",
                 o->data_dir, (long long)free_bytes, (long long)NODE_DISK_FREE_MIN);
        return -1;
    }
    int rv = raft_uv_tcp_init(&n->tcp, loop);
    if (rv == 0)
        rv = nodelay_transport_init(&n->transport, &n->tcp, o->raft_bind);
    if (rv == 0)
        rv = raft_uv_init(&n->io, loop, o->data_dir, &n->transport);
    if (rv != 0) {
        snprintf(msg, cap, "raft I/O on %s: %s (%s)", o->data_dir, raft_strerror(rv),
                 n->io.errmsg);
        return -1;
    }
    char self[2 * NODE_ADDR_MAX + 2];
    snprintf(self, sizeof self, "%s/%s", o->raft_addr, o->rpc_addr);
    rv = raft_init(&n->raft, &n->io, &n->fsm, o->id, self);
    if (rv != 0) {
        snprintf(msg, cap, "raft init: %s", raft_errmsg(&n->raft));
        return -1;
    }
    n->raft.data = n;
    raft_set_pre_vote(&n->raft, true);
    raft_set_election_timeout(&n->raft, o->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, o->heartbeat_timeout_ms);
    /* raft 0.15 leaves a follower in snapshot mode until this expires when
     * it rejects an install (seen after a full disk): 30 s by default. */
    raft_set_install_snapshot_timeout(&n->raft, 3 * o->election_timeout_ms);
    raft_set_snapshot_threshold(&n->raft, o->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, o->snapshot_trailing);

    if (!has_data && o->bootstrap[0]) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        if (node_bootstrap_parse(o->bootstrap, &conf, msg, cap) != 0) {
            raft_configuration_close(&conf);
            return -1;
        }
        rv = raft_bootstrap(&n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
            snprintf(msg, cap, "bootstrap: %s", raft_errmsg(&n->raft));
            return -1;
        }
    }
    rv = raft_start(&n->raft);
    if (rv != 0) {
        snprintf(msg, cap, "raft start: %s (%s; %s)", raft_strerror(rv), raft_errmsg(&n->raft),
                 n->transport.errmsg);
        return -1;
    }
    fsm_snapshot_rephase(n, n->raft.log.snapshot.last_index);
    if (server_start(n, msg, cap) != 0)
        return -1;
    uv_timer_init(loop, &n->expire_timer);
    n->expire_timer.data = n;
    uv_timer_start(&n->expire_timer, node_expire_cb, NODE_EXPIRE_INTERVAL_MS,
                   NODE_EXPIRE_INTERVAL_MS);
    uv_timer_init(loop, &n->disk_timer);
    n->disk_timer.data = n;
    uv_timer_start(&n->disk_timer, node_disk_check, NODE_DISK_CHECK_MS, NODE_DISK_CHECK_MS);
    if (!has_data && o->join[0] && node_join_start(n, msg, cap) != 0)
        return -1;
    return 0;
}

/* ---- stop ---- */

static void node_raft_closed_cb(struct raft *r)
{
    struct node *n = r->data;
    n->is_raft_closed = true;
    ledger_close(n->ledger);
    n->ledger = NULL;
    uv_stop(n->loop);
}

static void node_close_now(uv_timer_t *t)
{
    struct node *n = t->data;
    uv_close((uv_handle_t *)&n->expire_timer, NULL);
    uv_close((uv_handle_t *)&n->disk_timer, NULL);
    uv_close((uv_handle_t *)&n->stop_timer, NULL);
    if (n->join_client) {
        node_join_close(n);
        uv_timer_stop(&n->join_timer);
    }
    raft_close(&n->raft, node_raft_closed_cb);
}

static void node_transfer_cb(struct raft_transfer *req)
{
    struct node *n = req->data;
    /* Never raft_close inside a raft callback (PITFALLS.md): next turn. */
    uv_timer_start(&n->stop_timer, node_close_now, 0, 0);
}

void node_stop(struct node *n)
{
    if (n->is_stopping)
        return;
    n->is_stopping = true;
    uv_timer_stop(&n->expire_timer);
    uv_timer_stop(&n->disk_timer);
    webhook_stop(n->webhook); /* outbox delivery (webhook.c) */
    server_stop(n->server);
    uv_timer_init(n->loop, &n->stop_timer);
    n->stop_timer.data = n;
    n->transfer_req.data = n;
    /* Hand leadership over first, so the cluster does not wait an election
     * timeout for a new leader. */
    if (raft_state(&n->raft) == RAFT_LEADER && n->raft.configuration.n > 1 &&
        raft_transfer(&n->raft, &n->transfer_req, 0, node_transfer_cb) == 0)
        return;
    uv_timer_start(&n->stop_timer, node_close_now, 0, 0);
}
