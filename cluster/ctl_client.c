/*
 * ctl_client.c — purserctl's connection to the cluster: reading the flags
 * and environment that say where and as whom to connect, and the three kinds
 * of calls commands make (apply a ledger command, read a query, call an
 * admin method), each turning every failure into one line on stderr and an
 * exit code.
 *
 * One invocation is one synchronous client (pc_sync).  Mutating commands
 * carry one idempotency key for the whole invocation (--key, or a random one
 * made here), so the client's retries after a lost answer apply at most once.
 */
#include "cluster/ctl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "proto/client.h"
#include "proto/mp.h"
#include "proto/tls.h"

#define CTL_ATTEMPT_TIMEOUT_MS 2000
#define CTL_DEADLINE_MS 10000
#define CTL_MESSAGE_MAX 512

int ctl_random_hex(size_t n, char *out)
{
    uint8_t bytes[64];
    if (n > sizeof bytes || RAND_bytes(bytes, (int)n) != 1)
        return -1;
    ctl_hex(bytes, n, out);
    return 0;
}

static int packer_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len) == 0 ? 0 : -1;
}

void ctl_packer_init(msgpack_packer *pk, struct proto_buf *buf)
{
    msgpack_packer_init(pk, buf, packer_write);
}

/* Check "ADDR[,ADDR...]": numeric IPv4 host:port each, at most PC_NODES_MAX. */
static int cluster_check(const char *list)
{
    char copy[sizeof ((struct ctl *)0)->cluster];
    uint32_t count = 0;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *a = strtok_r(copy, ",", &save); a != NULL;
         a = strtok_r(NULL, ",", &save)) {
        char host[64];
        int port;
        if (rpc_addr_parse(a, host, sizeof host, &port) != 0) {
            ctl_errorf("cluster address \"%s\" is not IPV4:PORT", a);
            return CTL_EXIT_USAGE;
        }
        if (++count > PC_NODES_MAX) {
            ctl_errorf("more than %d cluster addresses", PC_NODES_MAX);
            return CTL_EXIT_USAGE;
        }
    }
    if (count == 0) {
        ctl_errorf("--cluster \"%s\" names no address", list);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

static int auth_setup(struct ctl *ctl)
{
    const char *path = ctl->args->value[CTL_OPT_AUTH];
    if (path == NULL)
        path = getenv("PURSER_AUTH");
    if (path == NULL || *path == '\0') {
        ctl->auth_path = NULL;
        snprintf(ctl->role, sizeof ctl->role, "admin"); /* works with purserd --no-auth */
        ctl->secret[0] = '\0';
        return CTL_EXIT_OK;
    }
    struct rpc_auth auth;
    char msg[CTL_ERR_MAX];
    if (rpc_auth_load(path, &auth, msg, sizeof msg) != 0) {
        ctl_errorf("%s", msg);
        return CTL_EXIT_USAGE;
    }
    const char *role = rpc_auth_strongest(&auth);
    if (role == NULL) {
        ctl_errorf("auth file \"%s\" holds no admin, gateway or reader secret", path);
        return CTL_EXIT_USAGE;
    }
    ctl->auth_path = path;
    snprintf(ctl->role, sizeof ctl->role, "%s", role);
    snprintf(ctl->secret, sizeof ctl->secret, "%s", rpc_auth_secret(&auth, role));
    return CTL_EXIT_OK;
}

/* A flag, else its environment variable, else NULL ("" counts as unset). */
static const char *flag_or_env(const struct ctl *ctl, enum ctl_opt o, const char *env)
{
    const char *v = ctl->args->value[o];
    if (v == NULL)
        v = getenv(env);
    return v != NULL && *v != '\0' ? v : NULL;
}

/* --tls-ca (PURSER_TLS_CA) turns TLS on; --tls-cert/--tls-key add a client
 * certificate.  Bad files are usage errors, found before connecting. */
static int tls_setup(struct ctl *ctl)
{
    const char *ca = flag_or_env(ctl, CTL_OPT_TLS_CA, "PURSER_TLS_CA");
    const char *cert = flag_or_env(ctl, CTL_OPT_TLS_CERT, "PURSER_TLS_CERT");
    const char *key = flag_or_env(ctl, CTL_OPT_TLS_KEY, "PURSER_TLS_KEY");
    char msg[PTLS_MESSAGE_MAX + 64];
    if (ca == NULL) {
        if (cert != NULL || key != NULL) {
            ctl_errorf("--tls-cert/--tls-key need --tls-ca (or PURSER_TLS_CA)");
            return CTL_EXIT_USAGE;
        }
        return CTL_EXIT_OK;
    }
    if (ptls_client_ctx_new(ca, cert, key, "--tls", &ctl->tls, msg, sizeof msg) != 0) {
        ctl_errorf("%s", msg);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

static int key_setup(struct ctl *ctl)
{
    const char *key = ctl->args->value[CTL_OPT_KEY];
    if (key != NULL) {
        size_t n = strlen(key);
        if (n == 0 || n > PROTO_KEY_MAX) {
            ctl_errorf("--key must be 1 to %d bytes", PROTO_KEY_MAX);
            return CTL_EXIT_USAGE;
        }
        memcpy(ctl->key, key, n + 1);
        return CTL_EXIT_OK;
    }
    char hex[33];
    if (ctl_random_hex(16, hex) != 0) {
        ctl_errorf("no randomness for an idempotency key");
        return CTL_EXIT_REFUSED;
    }
    snprintf(ctl->key, sizeof ctl->key, "ctl-%s", hex);
    return CTL_EXIT_OK;
}

int ctl_setup(struct ctl *ctl)
{
    const struct ctl_args *a = ctl->args;
    char err[CTL_ERR_MAX];
    ctl->is_json = a->value[CTL_OPT_JSON] != NULL;
    ctl->is_stale = a->value[CTL_OPT_STALE] != NULL;
    ctl->is_verbose = a->value[CTL_OPT_VERBOSE] != NULL;
    ctl->deadline_ms = CTL_DEADLINE_MS;
    if (a->value[CTL_OPT_TIMEOUT] != NULL) {
        int64_t ms;
        if (ctl_duration_parse(a->value[CTL_OPT_TIMEOUT], "--timeout", &ms, err, sizeof err) != 0) {
            ctl_errorf("%s", err);
            return CTL_EXIT_USAGE;
        }
        ctl->deadline_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    }
    const char *cluster = a->value[CTL_OPT_CLUSTER];
    if (cluster == NULL)
        cluster = getenv("PURSER_CLUSTER");
    if (cluster == NULL || *cluster == '\0') {
        ctl_errorf("no cluster address: give --cluster ADDR[,ADDR...] or set PURSER_CLUSTER");
        return CTL_EXIT_USAGE;
    }
    if (strlen(cluster) >= sizeof ctl->cluster) {
        ctl_errorf("--cluster is longer than %zu bytes", sizeof ctl->cluster - 1);
        return CTL_EXIT_USAGE;
    }
    snprintf(ctl->cluster, sizeof ctl->cluster, "%s", cluster);
    int rc = cluster_check(ctl->cluster);
    if (rc == CTL_EXIT_OK)
        rc = auth_setup(ctl);
    if (rc == CTL_EXIT_OK)
        rc = tls_setup(ctl);
    if (rc == CTL_EXIT_OK)
        rc = key_setup(ctl);
    return rc;
}

static int sync_open(struct ctl *ctl, const char *const *addrs, uint32_t count,
                     uint32_t attempt_ms, uint32_t deadline_ms, struct pc_sync **out)
{
    struct pc_options o = {
        .addrs = addrs,
        .addr_count = count,
        .role = ctl->role,
        .secret = ctl->secret[0] != '\0' ? ctl->secret : NULL,
        .attempt_timeout_ms = attempt_ms,
        .deadline_ms = deadline_ms,
        .tls = ctl->tls,
    };
    struct proto_error err = {0};
    if (pc_sync_open(&o, out, &err) != 0) {
        ctl_errorf("cannot start the client: %s", err.message);
        return CTL_EXIT_UNREACHABLE;
    }
    return CTL_EXIT_OK;
}

int ctl_connect(struct ctl *ctl)
{
    if (ctl->sync != NULL)
        return CTL_EXIT_OK;
    char copy[sizeof ctl->cluster];
    const char *addrs[PC_NODES_MAX];
    uint32_t count = 0;
    snprintf(copy, sizeof copy, "%s", ctl->cluster);
    for (char *save = NULL, *a = strtok_r(copy, ",", &save); a != NULL && count < PC_NODES_MAX;
         a = strtok_r(NULL, ",", &save))
        addrs[count++] = a;
    uint32_t attempt = ctl->deadline_ms < CTL_ATTEMPT_TIMEOUT_MS ? ctl->deadline_ms
                                                                 : CTL_ATTEMPT_TIMEOUT_MS;
    return sync_open(ctl, addrs, count, attempt, ctl->deadline_ms, &ctl->sync);
}

int ctl_connect_nodes(struct ctl *ctl, const char *const *addrs, uint32_t count,
                      uint32_t deadline_ms, struct pc_sync **out)
{
    return sync_open(ctl, addrs, count, deadline_ms, deadline_ms, out);
}

void ctl_close(struct ctl *ctl)
{
    if (ctl->sync != NULL)
        pc_sync_close(ctl->sync);
    ctl->sync = NULL;
    ptls_ctx_free(ctl->tls);
    ctl->tls = NULL;
}

/* The auth file named in errors. */
static const char *auth_name(const struct ctl *ctl)
{
    return ctl->auth_path != NULL ? ctl->auth_path : "(none: no --auth or PURSER_AUTH)";
}

#define HELLO_REFUSED "hello refused: " /* proto/client.c's note on such a node */

/* A node that refused our hello (wrong secret, unknown role, other protocol
 * version) was reached: the client library keeps retrying such a node until
 * the deadline, since a secret may be rotating, but for purserctl it is a
 * refusal naming the credentials (exit 1), not "cluster unreachable" (3).
 * Returns the exit code, or -1 when `message` is not about a refused hello. */
static int hello_refused(const struct ctl *ctl, const char *what, const char *message)
{
    static const char marker[] = HELLO_REFUSED;
    const char *p = strstr(message, marker);
    if (p == NULL)
        return -1;
    p += sizeof marker - 1;
    size_t n = strcspn(p, ")");
    if (strncmp(p, RPC_E_UNAUTHORIZED, strlen(RPC_E_UNAUTHORIZED)) == 0)
        ctl_errorf("%s: the cluster refused purserctl's credentials (%.*s): check the %s "
                   "secret in auth file %s",
                   what, (int)n, p, ctl->role, auth_name(ctl));
    else
        ctl_errorf("%s: the cluster refused purserctl's handshake (%.*s)", what, (int)n, p);
    return CTL_EXIT_REFUSED;
}

/* Print a failed call and return its exit code. */
static int call_failed(const struct ctl *ctl, const char *what, int status, const char *code,
                       const char *message)
{
    int rc = ctl_exit_for_call(status, code);
    if (status != PC_EREMOTE && status != PC_EINVAL) {
        int refused = hello_refused(ctl, what, message);
        if (refused >= 0)
            return refused;
    }
    if (status == PC_EREMOTE && strcmp(code, RPC_E_NOT_FOUND) == 0)
        ctl_errorf("%s not found", what);
    else if (status == PC_EREMOTE && strcmp(code, RPC_E_FORBIDDEN) == 0)
        ctl_errorf("%s failed: %s: %s (purserctl connected as role %s from auth file %s)", what,
                   code, message, ctl->role, auth_name(ctl));
    else if (status == PC_EREMOTE)
        ctl_errorf("%s failed: %s: %s", what, code, message);
    else if (status == PC_ETIMEOUT)
        ctl_errorf("%s: no answer from the cluster in time (%s)", what, message);
    else if (rc == CTL_EXIT_UNREACHABLE)
        ctl_errorf("%s: cluster unreachable (%s)", what, message);
    else
        ctl_errorf("%s failed: %s", what, message);
    return rc;
}

/* One call; failures printed naming `what` (NULL: not printed). */
static int call_as(struct ctl *ctl, struct pc_sync *sync, int target, const char *method,
                   const struct proto_buf *params, bool is_retryable, const char *what,
                   struct proto_buf *answer)
{
    char code[32] = "";
    char message[CTL_MESSAGE_MAX] = "";
    if (sync == NULL) {
        int rc = ctl_connect(ctl);
        if (rc != CTL_EXIT_OK)
            return rc;
        sync = ctl->sync;
    }
    int status = pc_sync_call(sync, target, method, params->data, params->len, is_retryable,
                              answer, code, sizeof code, message, sizeof message);
    if (status == PC_OK)
        return CTL_EXIT_OK;
    if (what == NULL) {
        /* Quiet: nothing printed, but bad credentials still mean "refused". */
        if (status != PC_EREMOTE && status != PC_EINVAL && strstr(message, HELLO_REFUSED) != NULL)
            return CTL_EXIT_REFUSED;
        return ctl_exit_for_call(status, code);
    }
    return call_failed(ctl, what, status, code, message);
}

int ctl_call(struct ctl *ctl, struct pc_sync *sync, int target, const char *method,
             const struct proto_buf *params, bool is_retryable, bool is_quiet,
             struct proto_buf *answer)
{
    return call_as(ctl, sync, target, method, params, is_retryable, is_quiet ? NULL : method,
                   answer);
}

int ctl_apply(struct ctl *ctl, const char *what, struct proto_cmd *cmd,
              struct proto_result *res)
{
    struct proto_buf enc, params, answer;
    msgpack_packer pk;
    int rc = CTL_EXIT_REFUSED;
    /* The invocation's key; a command that carries its own (several
     * commands in one invocation) keeps it. */
    if (cmd->key.len == 0)
        cmd->key = proto_str_c(ctl->key);
    cmd->role = PROTO_ROLE_ADMIN; /* the server sets it from the connection */
    if (ctl->is_verbose)
        ctl_errorf("%s with idempotency key %s", what, ctl->key);
    proto_buf_init(&enc);
    proto_buf_init(&params);
    proto_buf_init(&answer);
    ctl_packer_init(&pk, &params);
    if (proto_cmd_encode(&enc, cmd) != 0 || msgpack_pack_array(&pk, 1) != 0 ||
        rpc_pack_bin(&pk, enc.data, enc.len) != 0) {
        ctl_errorf("%s: out of memory encoding the command", what);
        goto out;
    }
    rc = call_as(ctl, NULL, PC_TARGET_LEADER, "apply", &params, true, what, &answer);
    if (rc != CTL_EXIT_OK)
        goto out;
    const uint8_t *bin = NULL;
    uint32_t bin_len = 0;
    struct mp_reader r;
    struct proto_error perr = {0};
    mp_reader_init(&r, answer.data, answer.len);
    if (mp_bin_read(&r, &bin, &bin_len) != MP_OK ||
        proto_result_decode(bin, bin_len, res, &perr) != 0) {
        ctl_errorf("%s: the server's answer is not a result: %s", what, perr.message);
        rc = CTL_EXIT_REFUSED;
        goto out;
    }
    rc = ctl_exit_for_status(res->status);
    if (rc != CTL_EXIT_OK) {
        if (res->message[0] != '\0')
            ctl_errorf("%s refused: %s: %s", what, proto_status_name(res->status), res->message);
        else if (res->name[0] != '\0')
            ctl_errorf("%s refused: %s: account \"%s\"", what, proto_status_name(res->status),
                       res->name);
        else
            ctl_errorf("%s refused: %s", what, proto_status_name(res->status));
    }
out:
    proto_buf_free(&enc);
    proto_buf_free(&params);
    proto_buf_free(&answer);
    return rc;
}

int ctl_read(struct ctl *ctl, const char *what, struct proto_buf *answer, const char *query,
             uint32_t arg_count, const char *const *args)
{
    struct proto_buf params;
    msgpack_packer pk;
    proto_buf_init(&params);
    ctl_packer_init(&pk, &params);
    int failed = msgpack_pack_array(&pk, 2 + arg_count);
    failed |= rpc_pack_str(&pk, query);
    failed |= rpc_pack_str(&pk, ctl->is_stale ? "stale" : "linear");
    for (uint32_t i = 0; i < arg_count; i++)
        failed |= rpc_pack_str(&pk, args[i]);
    if (failed != 0) {
        proto_buf_free(&params);
        ctl_errorf("%s: out of memory encoding the read", what);
        return CTL_EXIT_REFUSED;
    }
    int target = ctl->is_stale ? PC_TARGET_ANY : PC_TARGET_LEADER;
    int rc = call_as(ctl, NULL, target, "read", &params, true, what, answer);
    proto_buf_free(&params);
    return rc;
}
