/*
 * ctl_cluster.c — purserctl's cluster commands: status and members,
 * membership changes, leadership transfer, the cross-node state check
 * (`verify`), snapshots, and backup / restore of the ledger image.
 *
 * Calls about one node (`status`, `hash`, backup chunks) go to that node by
 * index: `cluster status` and `verify` learn the members from the leader's
 * status and open a second client over their rpc addresses in member order,
 * so node index i is member i.  Membership changes, `checkpoint`, `snapshot`
 * and `restore` go to the leader.
 */
#include "cluster/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/mp.h"

#define CTL_MEMBERS_MAX PC_NODES_MAX
#define CTL_NODE_DEADLINE_MS 2000       /* one node's status or hash */
#define CTL_VERIFY_WAIT_MS 10000        /* nodes reaching the checkpoint */
#define CTL_VERIFY_POLL_MS 200
#define CTL_LEADER_WAIT_MS 3000         /* finding the leader's view of the members */
#define CTL_ADDR_MAX 64
#define STATE_HASH_BYTES 32             /* SHA-256 of the ledger state */
#define CTL_BACKUP_MAX (64ULL << 30)    /* bytes in a backup image we accept */

struct member {
    uint64_t id;
    char raft[CTL_ADDR_MAX];
    char rpc[CTL_ADDR_MAX];
    char role[16];
};

struct members {
    uint64_t leader_id;
    uint64_t term;
    uint32_t count;
    struct member m[CTL_MEMBERS_MAX];
};

/* A params array of unsigned integers. */
static void params_uints(struct proto_buf *params, const uint64_t *v, uint32_t n)
{
    msgpack_packer pk;
    proto_buf_init(params);
    ctl_packer_init(&pk, params);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, v[i]);
}

/* Print a map answer as JSON (--json) or as "key: value" lines. */
static int answer_print(const struct ctl *ctl, const struct proto_buf *answer)
{
    const uint8_t *p = (const uint8_t *)answer->data;
    if (!ctl->is_json)
        return ctl_print_map(p, answer->len, stdout);
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    int rc = ctl_json_mp(&j, p, answer->len) == 0 ? ctl_json_print(&j) : CTL_EXIT_REFUSED;
    if (rc != CTL_EXIT_OK && !j.failed)
        ctl_errorf("the server's answer is not well-formed msgpack");
    proto_buf_free(&buf);
    return rc;
}

static void sleep_ms(long ms);
static int64_t now_ms(void);

/* Is this status answer from the leader? */
static bool status_is_leader(const struct proto_buf *answer)
{
    char state[16];
    return ctl_mp_str((const uint8_t *)answer->data, answer->len, "state", state,
                      sizeof state) == 0 &&
           strcmp(state, "leader") == 0;
}

/* Ask the node at `rpc` for its status; true (answer replaced) when it is
 * the leader. */
static bool status_from(struct ctl *ctl, const char *rpc, const struct proto_buf *params,
                        struct proto_buf *answer)
{
    struct pc_sync *one = NULL;
    struct proto_buf other;
    bool is_leader = false;
    if (ctl_connect_nodes(ctl, &rpc, 1, CTL_NODE_DEADLINE_MS, &one) != CTL_EXIT_OK)
        return false;
    proto_buf_init(&other);
    if (ctl_call(ctl, one, 0, "status", params, false, true, &other) == CTL_EXIT_OK &&
        status_is_leader(&other)) {
        proto_buf_free(answer);
        *answer = other;
        is_leader = true;
    } else {
        proto_buf_free(&other);
    }
    pc_sync_close(one);
    return is_leader;
}

/* The leader's status answer.  Every node serves `status`, and the client
 * sends a leader call to any node while it does not know the leader, so an
 * answer from another node is followed to the leader it names (a spare that
 * was just added, for one, knows no members yet).  When no leader answers
 * within CTL_LEADER_WAIT_MS the last node's own view is used, so that status
 * still shows the nodes of a cluster without a leader. */
static int leader_status(struct ctl *ctl, struct proto_buf *answer)
{
    struct proto_buf params;
    params_uints(&params, NULL, 0);
    int64_t give_up = now_ms() + CTL_LEADER_WAIT_MS;
    int rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, "status", &params, true, false, answer);
    while (rc == CTL_EXIT_OK && !status_is_leader(answer)) {
        char rpc[CTL_ADDR_MAX];
        ctl_mp_str((const uint8_t *)answer->data, answer->len, "leader_rpc", rpc, sizeof rpc);
        if (rpc[0] != '\0' && status_from(ctl, rpc, &params, answer))
            break;
        if (now_ms() >= give_up)
            break;
        sleep_ms(CTL_VERIFY_POLL_MS / 2);
        rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, "status", &params, true, false, answer);
    }
    proto_buf_free(&params);
    return rc;
}

static int members_parse(const struct proto_buf *answer, struct members *out)
{
    const uint8_t *p = (const uint8_t *)answer->data;
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    memset(out, 0, sizeof *out);
    ctl_mp_uint(p, answer->len, "leader_id", &out->leader_id);
    ctl_mp_uint(p, answer->len, "term", &out->term);
    if (ctl_mp_array(p, answer->len, "members", &it) != 0) {
        ctl_errorf("status: the answer has no member list");
        return CTL_EXIT_REFUSED;
    }
    while (ctl_mp_next(&it, &e, &elen)) {
        if (out->count == CTL_MEMBERS_MAX) {
            ctl_errorf("status: more than %d members; showing the first %d", CTL_MEMBERS_MAX,
                       CTL_MEMBERS_MAX);
            break;
        }
        struct member *m = &out->m[out->count++];
        ctl_mp_uint(e, elen, "id", &m->id);
        ctl_mp_str(e, elen, "raft", m->raft, sizeof m->raft);
        ctl_mp_str(e, elen, "rpc", m->rpc, sizeof m->rpc);
        ctl_mp_str(e, elen, "role", m->role, sizeof m->role);
    }
    return CTL_EXIT_OK;
}

/* Leader status, then a client over every member's rpc address (index i =
 * member i; a member without one gets an address that never answers). */
static int members_connect(struct ctl *ctl, struct members *ms, uint32_t deadline_ms,
                           struct pc_sync **nodes)
{
    struct proto_buf answer;
    proto_buf_init(&answer);
    int rc = leader_status(ctl, &answer);
    if (rc == CTL_EXIT_OK)
        rc = members_parse(&answer, ms);
    proto_buf_free(&answer);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ms->count == 0) {
        ctl_errorf("status: the cluster reports no members");
        return CTL_EXIT_REFUSED;
    }
    const char *addrs[CTL_MEMBERS_MAX];
    for (uint32_t i = 0; i < ms->count; i++)
        addrs[i] = ms->m[i].rpc[0] != '\0' ? ms->m[i].rpc : "0.0.0.0:1";
    return ctl_connect_nodes(ctl, addrs, ms->count, deadline_ms, nodes);
}

/* ---- status / members ---- */

struct node_status {
    bool is_reachable;
    char state[16];
    uint64_t term;
    uint64_t applied_index;
    uint64_t commit_index;
};

static void node_status_get(struct ctl *ctl, struct pc_sync *nodes, int i, struct node_status *ns)
{
    struct proto_buf params, answer;
    memset(ns, 0, sizeof *ns);
    snprintf(ns->state, sizeof ns->state, "unreachable");
    params_uints(&params, NULL, 0);
    proto_buf_init(&answer);
    if (ctl_call(ctl, nodes, i, "status", &params, false, true, &answer) == CTL_EXIT_OK) {
        const uint8_t *p = (const uint8_t *)answer.data;
        ns->is_reachable = true;
        ctl_mp_str(p, answer.len, "state", ns->state, sizeof ns->state);
        ctl_mp_uint(p, answer.len, "term", &ns->term);
        ctl_mp_uint(p, answer.len, "applied_index", &ns->applied_index);
        ctl_mp_uint(p, answer.len, "commit_index", &ns->commit_index);
    }
    proto_buf_free(&params);
    proto_buf_free(&answer);
}

static int status_json(const struct members *ms, const struct node_status *ns)
{
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "leader_id");
    ctl_json_uint(&j, ms->leader_id);
    ctl_json_key(&j, "term");
    ctl_json_uint(&j, ms->term);
    ctl_json_key(&j, "members");
    ctl_json_array_begin(&j);
    for (uint32_t i = 0; i < ms->count; i++) {
        const struct member *m = &ms->m[i];
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "id");
        ctl_json_uint(&j, m->id);
        ctl_json_key(&j, "raft");
        ctl_json_cstr(&j, m->raft);
        ctl_json_key(&j, "rpc");
        ctl_json_cstr(&j, m->rpc);
        ctl_json_key(&j, "role");
        ctl_json_cstr(&j, m->role);
        ctl_json_key(&j, "state");
        ctl_json_cstr(&j, ns[i].state);
        ctl_json_key(&j, "applied_index");
        if (ns[i].is_reachable)
            ctl_json_uint(&j, ns[i].applied_index);
        else
            ctl_json_null(&j);
        ctl_json_key(&j, "commit_index");
        if (ns[i].is_reachable)
            ctl_json_uint(&j, ns[i].commit_index);
        else
            ctl_json_null(&j);
        ctl_json_object_end(&j);
    }
    ctl_json_array_end(&j);
    ctl_json_object_end(&j);
    int rc = ctl_json_print(&j);
    proto_buf_free(&buf);
    return rc;
}

int ctl_cluster_status(struct ctl *ctl)
{
    struct members ms;
    struct node_status ns[CTL_MEMBERS_MAX];
    struct pc_sync *nodes = NULL;
    int rc = members_connect(ctl, &ms, CTL_NODE_DEADLINE_MS, &nodes);
    if (rc != CTL_EXIT_OK)
        return rc;
    for (uint32_t i = 0; i < ms.count; i++) {
        node_status_get(ctl, nodes, (int)i, &ns[i]);
        if (ns[i].is_reachable && strcmp(ns[i].state, "leader") == 0 && ns[i].term > ms.term)
            ms.term = ns[i].term;
    }
    pc_sync_close(nodes);
    if (ctl->is_json)
        return status_json(&ms, ns);
    printf("leader %llu, term %llu\n", (unsigned long long)ms.leader_id,
           (unsigned long long)ms.term);
    static const char *const headers[] = {"ID",    "RAFT",    "RPC",   "ROLE",
                                          "STATE", "APPLIED", "COMMIT"};
    struct ctl_table t;
    ctl_table_init(&t, 7, headers);
    for (uint32_t i = 0; i < ms.count; i++) {
        char id[24], applied[24], commit[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)ms.m[i].id);
        snprintf(applied, sizeof applied, "%llu", (unsigned long long)ns[i].applied_index);
        snprintf(commit, sizeof commit, "%llu", (unsigned long long)ns[i].commit_index);
        const char *row[] = {id,          ms.m[i].raft,
                             ms.m[i].rpc, ms.m[i].role,
                             ns[i].state, ns[i].is_reachable ? applied : NULL,
                             ns[i].is_reachable ? commit : NULL};
        ctl_table_row(&t, row);
    }
    return ctl_table_print(&t, stdout);
}

int ctl_cluster_members(struct ctl *ctl)
{
    struct proto_buf answer;
    struct members ms;
    proto_buf_init(&answer);
    int rc = leader_status(ctl, &answer);
    if (rc == CTL_EXIT_OK)
        rc = members_parse(&answer, &ms);
    if (rc != CTL_EXIT_OK) {
        proto_buf_free(&answer);
        return rc;
    }
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        const uint8_t *v;
        size_t vlen;
        proto_buf_init(&buf);
        ctl_json_init(&j, &buf);
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "leader_id");
        ctl_json_uint(&j, ms.leader_id);
        ctl_json_key(&j, "members");
        if (ctl_mp_find((const uint8_t *)answer.data, answer.len, "members", &v, &vlen) != 0 ||
            ctl_json_mp(&j, v, vlen) != 0)
            j.failed = true;
        ctl_json_object_end(&j);
        rc = ctl_json_print(&j);
        proto_buf_free(&buf);
        proto_buf_free(&answer);
        return rc;
    }
    proto_buf_free(&answer);
    static const char *const headers[] = {"ID", "RAFT", "RPC", "ROLE", "LEADER"};
    struct ctl_table t;
    ctl_table_init(&t, 5, headers);
    for (uint32_t i = 0; i < ms.count; i++) {
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)ms.m[i].id);
        const char *row[] = {id, ms.m[i].raft, ms.m[i].rpc, ms.m[i].role,
                             ms.m[i].id == ms.leader_id ? "*" : ""};
        ctl_table_row(&t, row);
    }
    return ctl_table_print(&t, stdout);
}

/* ---- membership ---- */

/* Call a membership method on the leader and print what it answered. */
static int membership_call(struct ctl *ctl, const char *method, const struct proto_buf *params,
                           uint64_t id, const char *done)
{
    struct proto_buf answer;
    proto_buf_init(&answer);
    int rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, method, params, true, false, &answer);
    if (rc == CTL_EXIT_OK && ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        proto_buf_init(&buf);
        ctl_json_init(&j, &buf);
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "id");
        ctl_json_uint(&j, id);
        ctl_json_key(&j, "result");
        if (ctl_json_mp(&j, (const uint8_t *)answer.data, answer.len) != 0)
            j.failed = true;
        ctl_json_object_end(&j);
        rc = ctl_json_print(&j);
        proto_buf_free(&buf);
    } else if (rc == CTL_EXIT_OK) {
        printf("node %llu %s\n", (unsigned long long)id, done);
    }
    proto_buf_free(&answer);
    return rc;
}

int ctl_cluster_add(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    char raft[CTL_ADDR_MAX], rpc[CTL_ADDR_MAX];
    uint64_t id;
    if (ctl_id_parse(ctl->pos[0], "node id", &id, err, sizeof err) != 0) {
        ctl_errorf("%s", err);
        return CTL_EXIT_USAGE;
    }
    if (ctl->pos_count == 3) {
        snprintf(raft, sizeof raft, "%s", ctl->pos[1]);
        snprintf(rpc, sizeof rpc, "%s", ctl->pos[2]);
    } else {
        const char *slash = strchr(ctl->pos[1], '/');
        if (slash == NULL) {
            ctl_errorf("address \"%s\" is not RAFTADDR/RPCADDR", ctl->pos[1]);
            return CTL_EXIT_USAGE;
        }
        snprintf(raft, sizeof raft, "%.*s", (int)(slash - ctl->pos[1]), ctl->pos[1]);
        snprintf(rpc, sizeof rpc, "%s", slash + 1);
    }
    char host[CTL_ADDR_MAX];
    int port;
    if (rpc_addr_parse(raft, host, sizeof host, &port) != 0 ||
        rpc_addr_parse(rpc, host, sizeof host, &port) != 0) {
        ctl_errorf("addresses \"%s\" and \"%s\" must both be IPV4:PORT", raft, rpc);
        return CTL_EXIT_USAGE;
    }
    struct proto_buf params;
    msgpack_packer pk;
    proto_buf_init(&params);
    ctl_packer_init(&pk, &params);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    rpc_pack_str(&pk, raft);
    rpc_pack_str(&pk, rpc);
    int rc = membership_call(ctl, "add", &params, id, "added as spare");
    proto_buf_free(&params);
    return rc;
}

/* remove / promote / transfer-leader: one id argument. */
static int membership_id(struct ctl *ctl, const char *method, bool is_optional,
                         const char *done)
{
    char err[CTL_ERR_MAX];
    uint64_t id = 0;
    if (!(is_optional && ctl->pos_count == 0) &&
        ctl_id_parse(ctl->pos[0], "node id", &id, err, sizeof err) != 0) {
        ctl_errorf("%s", err);
        return CTL_EXIT_USAGE;
    }
    struct proto_buf params;
    params_uints(&params, &id, 1);
    int rc = membership_call(ctl, method, &params, id, done);
    proto_buf_free(&params);
    return rc;
}

int ctl_cluster_remove(struct ctl *ctl)
{
    return membership_id(ctl, "remove", false, "removed");
}

int ctl_cluster_promote(struct ctl *ctl)
{
    return membership_id(ctl, "promote", false, "promoted to voter");
}

int ctl_cluster_transfer_leader(struct ctl *ctl)
{
    return membership_id(ctl, "transfer_leader", true, "asked to lead");
}

/* ---- verify ---- */

enum verify_state {
    VERIFY_MISSING,     /* never answered with a checkpoint at the index */
    VERIFY_FOUND,
};

struct verify_node {
    enum verify_state state;
    uint8_t hash[STATE_HASH_BYTES];
};

/* Look for the checkpoint at `index` in a hash answer. */
static bool checkpoint_find(const struct proto_buf *answer, uint64_t index,
                            uint8_t hash[STATE_HASH_BYTES])
{
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    if (ctl_mp_array((const uint8_t *)answer->data, answer->len, "checkpoints", &it) != 0)
        return false;
    while (ctl_mp_next(&it, &e, &elen)) {
        uint64_t at;
        const uint8_t *v;
        size_t vlen;
        struct mp_reader r;
        const uint8_t *bin;
        uint32_t n;
        if (ctl_mp_uint(e, elen, "index", &at) != 0 || at != index ||
            ctl_mp_find(e, elen, "hash", &v, &vlen) != 0)
            continue;
        mp_reader_init(&r, v, vlen);
        if (mp_bin_read(&r, &bin, &n) == MP_OK && n == STATE_HASH_BYTES) {
            memcpy(hash, bin, STATE_HASH_BYTES);
            return true;
        }
    }
    return false;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll every node's hash until each has the checkpoint or time runs out. */
static void verify_poll(struct ctl *ctl, struct pc_sync *nodes, uint32_t count, uint64_t index,
                        struct verify_node *vn)
{
    struct proto_buf params, answer;
    params_uints(&params, NULL, 0);
    proto_buf_init(&answer);
    int64_t give_up = now_ms() + CTL_VERIFY_WAIT_MS;
    for (;;) {
        uint32_t missing = 0;
        for (uint32_t i = 0; i < count; i++) {
            if (vn[i].state == VERIFY_FOUND)
                continue;
            if (ctl_call(ctl, nodes, (int)i, "hash", &params, false, true, &answer) ==
                    CTL_EXIT_OK &&
                checkpoint_find(&answer, index, vn[i].hash))
                vn[i].state = VERIFY_FOUND;
            else
                missing++;
        }
        if (missing == 0 || now_ms() >= give_up)
            break;
        sleep_ms(CTL_VERIFY_POLL_MS);
    }
    proto_buf_free(&params);
    proto_buf_free(&answer);
}

int ctl_cluster_verify(struct ctl *ctl)
{
    struct proto_buf params, answer;
    uint64_t index = 0;
    params_uints(&params, NULL, 0);
    proto_buf_init(&answer);
    int rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, "checkpoint", &params, true, false, &answer);
    if (rc == CTL_EXIT_OK &&
        ctl_mp_uint((const uint8_t *)answer.data, answer.len, "index", &index) != 0) {
        ctl_errorf("checkpoint: the answer has no index");
        rc = CTL_EXIT_REFUSED;
    }
    proto_buf_free(&params);
    proto_buf_free(&answer);
    if (rc != CTL_EXIT_OK)
        return rc;

    struct members ms;
    struct pc_sync *nodes = NULL;
    struct verify_node vn[CTL_MEMBERS_MAX];
    rc = members_connect(ctl, &ms, CTL_NODE_DEADLINE_MS, &nodes);
    if (rc != CTL_EXIT_OK)
        return rc;
    memset(vn, 0, sizeof vn);
    verify_poll(ctl, nodes, ms.count, index, vn);
    pc_sync_close(nodes);

    /* The reference is the leader's hash, else the first one found. */
    const uint8_t *ref = NULL;
    for (uint32_t i = 0; i < ms.count; i++) {
        if (vn[i].state == VERIFY_FOUND && (ref == NULL || ms.m[i].id == ms.leader_id))
            ref = vn[i].hash;
    }
    uint32_t differ = 0, missing = 0;
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "index");
    ctl_json_uint(&j, index);
    ctl_json_key(&j, "nodes");
    ctl_json_array_begin(&j);
    if (!ctl->is_json)
        printf("checkpoint at index %llu\n", (unsigned long long)index);
    for (uint32_t i = 0; i < ms.count; i++) {
        char hex[2 * STATE_HASH_BYTES + 1] = "-";
        const char *verdict = "missing";
        if (vn[i].state == VERIFY_FOUND) {
            ctl_hex(vn[i].hash, STATE_HASH_BYTES, hex);
            verdict = memcmp(vn[i].hash, ref, STATE_HASH_BYTES) == 0 ? "equal" : "differs";
        }
        differ += strcmp(verdict, "differs") == 0;
        missing += strcmp(verdict, "missing") == 0;
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "id");
        ctl_json_uint(&j, ms.m[i].id);
        ctl_json_key(&j, "rpc");
        ctl_json_cstr(&j, ms.m[i].rpc);
        ctl_json_key(&j, "hash");
        if (vn[i].state == VERIFY_FOUND)
            ctl_json_cstr(&j, hex);
        else
            ctl_json_null(&j);
        ctl_json_key(&j, "verdict");
        ctl_json_cstr(&j, verdict);
        ctl_json_object_end(&j);
        if (!ctl->is_json)
            printf("node %llu  %-21s  %s  %s\n", (unsigned long long)ms.m[i].id, ms.m[i].rpc,
                   hex, verdict);
    }
    ctl_json_array_end(&j);
    ctl_json_key(&j, "is_equal");
    ctl_json_bool(&j, differ == 0 && missing == 0);
    ctl_json_object_end(&j);
    rc = ctl->is_json ? ctl_json_print(&j) : CTL_EXIT_OK;
    proto_buf_free(&buf);
    if (differ > 0) {
        ctl_errorf("verify: %u of %u nodes differ at index %llu", differ, ms.count,
                   (unsigned long long)index);
        return CTL_EXIT_REFUSED;
    }
    if (missing > 0) {
        ctl_errorf("verify: %u of %u nodes did not report the checkpoint at index %llu "
                   "within %d s",
                   missing, ms.count, (unsigned long long)index, CTL_VERIFY_WAIT_MS / 1000);
        return CTL_EXIT_UNREACHABLE;
    }
    return rc;
}

/* ---- snapshot, backup, restore ---- */

int ctl_snapshot(struct ctl *ctl)
{
    struct proto_buf params, answer;
    params_uints(&params, NULL, 0);
    proto_buf_init(&answer);
    int rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, "snapshot", &params, true, false, &answer);
    if (rc == CTL_EXIT_OK)
        rc = answer_print(ctl, &answer);
    proto_buf_free(&params);
    proto_buf_free(&answer);
    return rc;
}

/* One backup chunk's answer. */
struct chunk {
    uint64_t index;
    uint64_t total_bytes;
    uint64_t offset;
    const uint8_t *data;
    uint32_t data_len;
    const uint8_t *hash;
};

static int chunk_parse(const struct proto_buf *answer, struct chunk *c)
{
    const uint8_t *p = (const uint8_t *)answer->data;
    const uint8_t *v;
    size_t vlen;
    struct mp_reader r;
    uint32_t hash_len = 0;
    memset(c, 0, sizeof *c);
    if (ctl_mp_uint(p, answer->len, "index", &c->index) != 0 ||
        ctl_mp_uint(p, answer->len, "total_bytes", &c->total_bytes) != 0 ||
        ctl_mp_uint(p, answer->len, "offset", &c->offset) != 0 ||
        ctl_mp_find(p, answer->len, "data", &v, &vlen) != 0)
        return -1;
    mp_reader_init(&r, v, vlen);
    if (mp_bin_read(&r, &c->data, &c->data_len) != MP_OK)
        return -1;
    if (ctl_mp_find(p, answer->len, "hash", &v, &vlen) == 0) {
        mp_reader_init(&r, v, vlen);
        if (mp_bin_read(&r, &c->hash, &hash_len) != MP_OK || hash_len != STATE_HASH_BYTES)
            c->hash = NULL;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Ask for chunk `offset` from node `target` and check it continues the image.
 * Failures of the call are printed unless `is_quiet`. */
static int backup_chunk(struct ctl *ctl, int target, uint64_t offset, bool is_retryable,
                        bool is_quiet, struct proto_buf *answer, struct chunk *c,
                        const struct chunk *first)
{
    struct proto_buf params;
    params_uints(&params, &offset, 1);
    int rc = ctl_call(ctl, NULL, target, "backup", &params, is_retryable, is_quiet, answer);
    proto_buf_free(&params);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (chunk_parse(answer, c) != 0 || c->offset != offset ||
        (c->data_len == 0 && offset < c->total_bytes) || c->total_bytes > CTL_BACKUP_MAX ||
        c->data_len > c->total_bytes - offset ||
        (first != NULL && (c->index != first->index || c->total_bytes != first->total_bytes))) {
        ctl_errorf("backup: the chunk at offset %llu is not part of the image",
                   (unsigned long long)offset);
        return CTL_EXIT_REFUSED;
    }
    return CTL_EXIT_OK;
}

/* Fetch the image into fd; the first node that answers serves all chunks. */
static int backup_fetch(struct ctl *ctl, int fd, struct chunk *first,
                        uint8_t hash[STATE_HASH_BYTES], bool *has_hash)
{
    struct proto_buf answer;
    struct chunk c;
    int target = -1;
    int rc = ctl_connect(ctl);
    proto_buf_init(&answer);
    uint32_t count = rc == CTL_EXIT_OK ? pc_node_count(pc_sync_client(ctl->sync)) : 0;
    /* Quiet but for the last node, whose failure says why none answered. */
    for (uint32_t i = 0; i < count && target < 0; i++) {
        rc = backup_chunk(ctl, (int)i, 0, false, i + 1 < count, &answer, first, NULL);
        if (rc == CTL_EXIT_OK)
            target = (int)i;
    }
    if (target < 0) {
        if (rc == CTL_EXIT_OK) {
            ctl_errorf("backup: no node answered");
            rc = CTL_EXIT_UNREACHABLE;
        }
        proto_buf_free(&answer);
        return rc;
    }
    *has_hash = first->hash != NULL;
    if (*has_hash)
        memcpy(hash, first->hash, STATE_HASH_BYTES);
    uint64_t offset = first->data_len;
    if (write_all(fd, first->data, first->data_len) != 0)
        rc = CTL_EXIT_REFUSED;
    while (rc == CTL_EXIT_OK && offset < first->total_bytes) {
        rc = backup_chunk(ctl, target, offset, true, false, &answer, &c, first);
        if (rc != CTL_EXIT_OK)
            break;
        if (write_all(fd, c.data, c.data_len) != 0)
            rc = CTL_EXIT_REFUSED;
        offset += c.data_len;
    }
    first->data = NULL; /* pointed into answer */
    first->hash = NULL;
    proto_buf_free(&answer);
    return rc;
}

int ctl_backup(struct ctl *ctl)
{
    const char *path = ctl->pos[0];
    char tmp[4096];
    uint8_t hash[STATE_HASH_BYTES];
    bool has_hash = false;
    struct chunk first;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        ctl_errorf("backup: file name \"%s\" is too long", path);
        return CTL_EXIT_USAGE;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ctl_errorf("backup: cannot create \"%s\": %s", tmp, strerror(errno));
        return CTL_EXIT_USAGE;
    }
    int rc = backup_fetch(ctl, fd, &first, hash, &has_hash);
    if (rc == CTL_EXIT_OK && (fsync(fd) != 0 || close(fd) != 0)) {
        ctl_errorf("backup: cannot write \"%s\": %s", tmp, strerror(errno));
        fd = -1;
        rc = CTL_EXIT_REFUSED;
    } else if (rc == CTL_EXIT_OK) {
        fd = -1;
        if (rename(tmp, path) != 0) {
            ctl_errorf("backup: cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
            rc = CTL_EXIT_REFUSED;
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc != CTL_EXIT_OK) {
        unlink(tmp);
        return rc;
    }
    char hex[2 * STATE_HASH_BYTES + 1] = "";
    if (has_hash)
        ctl_hex(hash, STATE_HASH_BYTES, hex);
    if (!ctl->is_json) {
        printf("backup of index %llu: %llu bytes, hash %s -> %s\n",
               (unsigned long long)first.index, (unsigned long long)first.total_bytes,
               has_hash ? hex : "-", path);
        return CTL_EXIT_OK;
    }
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "file");
    ctl_json_cstr(&j, path);
    ctl_json_key(&j, "index");
    ctl_json_uint(&j, first.index);
    ctl_json_key(&j, "bytes");
    ctl_json_uint(&j, first.total_bytes);
    ctl_json_key(&j, "hash");
    if (has_hash)
        ctl_json_cstr(&j, hex);
    else
        ctl_json_null(&j);
    ctl_json_object_end(&j);
    rc = ctl_json_print(&j);
    proto_buf_free(&buf);
    return rc;
}

/* The whole file into memory (restore images are at most RPC_RESTORE_MAX). */
static int file_read(const char *path, uint8_t **data, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ctl_errorf("restore: cannot open \"%s\": %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CTL_EXIT_USAGE;
    }
    if ((uint64_t)st.st_size > RPC_RESTORE_MAX || st.st_size == 0) {
        ctl_errorf("restore: \"%s\" has %lld bytes; restore takes 1 to %u (larger images are"
                   " not supported yet)",
                   path, (long long)st.st_size, RPC_RESTORE_MAX);
        close(fd);
        return CTL_EXIT_USAGE;
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len);
    size_t got = 0;
    while (*data != NULL && got < *len) {
        ssize_t r = read(fd, *data + got, *len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (*data == NULL || got != *len) {
        ctl_errorf("restore: cannot read \"%s\"", path);
        free(*data);
        *data = NULL;
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

int ctl_restore(struct ctl *ctl)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = file_read(ctl->pos[0], &data, &len);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct proto_buf params, answer;
    proto_buf_init(&answer);
    for (size_t offset = 0; rc == CTL_EXIT_OK && offset < len;) {
        size_t n = len - offset < RPC_CHUNK_MAX ? len - offset : RPC_CHUNK_MAX;
        msgpack_packer pk;
        proto_buf_init(&params);
        ctl_packer_init(&pk, &params);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, offset);
        msgpack_pack_uint64(&pk, len);
        rpc_pack_bin(&pk, data + offset, n);
        /* Not retried: chunks accumulate on one leader; a new leader would
         * not have the earlier ones. */
        rc = ctl_call(ctl, NULL, PC_TARGET_LEADER, "restore", &params, false, false, &answer);
        proto_buf_free(&params);
        offset += n;
    }
    free(data);
    if (rc == CTL_EXIT_OK && !ctl->is_json)
        printf("restored %zu bytes from %s\n", len, ctl->pos[0]);
    if (rc == CTL_EXIT_OK)
        rc = answer_print(ctl, &answer);
    proto_buf_free(&answer);
    return rc;
}
