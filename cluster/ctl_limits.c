/*
 * ctl_limits.c — purserctl's rate limits, estimates and approval threshold:
 *
 *   limit set ACCOUNT|--meta KEY=VALUE [--rpm N] [--tpm N] [--tph N] [--tpd N]
 *   limit clear ACCOUNT|--meta KEY=VALUE
 *   limit list
 *   estimate WORKFLOW [--model M]
 *   policy set approval-above USD|none      (via ctl_policy_set)
 *
 * `limit set` replaces the scope's four limits: one not given is 0 (none).
 */
#include "cluster/ctl.h"

#include <stdlib.h>
#include <string.h>

#include "proto/money.h"

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

/* Start a JSON object answer in `buf`. */
static void json_begin(struct ctl_json *j, struct proto_buf *buf)
{
    proto_buf_init(buf);
    ctl_json_init(j, buf);
    ctl_json_object_begin(j);
}

/* End it, print it, free it. */
static int json_finish(struct ctl_json *j, struct proto_buf *buf)
{
    ctl_json_object_end(j);
    int rc = ctl_json_print(j);
    proto_buf_free(buf);
    return rc;
}

static int usage_fail(const char *err)
{
    ctl_errorf("%s", err);
    return CTL_EXIT_USAGE;
}

/* A count option (0 when absent). */
static int count_parse(const char *s, const char *what, int64_t *out, char *err, size_t cap)
{
    uint64_t v = 0;
    *out = 0;
    if (s == NULL)
        return 0;
    if (strcmp(s, "0") == 0)
        return 0;
    if (ctl_id_parse(s, what, &v, err, cap) != 0)
        return -1;
    if (v > (uint64_t)PROTO_AMOUNT_MAX) {
        snprintf(err, cap, "%s %s exceeds %lld", what, s, (long long)PROTO_AMOUNT_MAX);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* The scope: ACCOUNT (one positional) or --meta KEY=VALUE, not both. */
static int scope_parse(struct ctl *ctl, struct proto_rate_limit_set_args *a, char *err,
                       size_t cap)
{
    const char *meta = ctl->args->value[CTL_OPT_META];
    if ((ctl->pos_count > 0) == (meta != NULL)) {
        snprintf(err, cap, "give an ACCOUNT or --meta KEY=VALUE (one of them)");
        return -1;
    }
    if (meta == NULL) {
        a->account = proto_str_c(ctl->pos[0]);
        return 0;
    }
    const char *eq = strchr(meta, '=');
    if (eq == NULL || eq == meta) {
        snprintf(err, cap, "--meta \"%s\" is not KEY=VALUE", meta);
        return -1;
    }
    a->meta_key = (struct proto_str){meta, (uint32_t)(eq - meta)};
    a->meta_value = proto_str_c(eq + 1);
    return 0;
}

static void scope_text(const struct proto_rate_limit_set_args *a, char *buf, size_t cap)
{
    if (a->account.len > 0)
        snprintf(buf, cap, "account %.*s", (int)a->account.len, a->account.ptr);
    else
        snprintf(buf, cap, "%.*s=%.*s", (int)a->meta_key.len, a->meta_key.ptr,
                 (int)a->meta_value.len, a->meta_value.ptr);
}

static int limit_apply(struct ctl *ctl, const char *what, bool is_clear)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_RATE_LIMIT_SET;
    struct proto_rate_limit_set_args *a = &cmd.u.rate_limit_set;
    if (scope_parse(ctl, a, err, sizeof err) != 0)
        return usage_fail(err);
    if (!is_clear) {
        static const enum ctl_opt opts[4] = {CTL_OPT_RPM, CTL_OPT_TPM, CTL_OPT_TPH,
                                             CTL_OPT_TPD};
        int64_t *v[4] = {&a->rpm, &a->tpm, &a->tph, &a->tpd};
        for (int i = 0; i < 4; i++) {
            char name[16];
            snprintf(name, sizeof name, "--%s", ctl_opt_name(opts[i]));
            if (count_parse(ctl->args->value[opts[i]], name, v[i], err, sizeof err) != 0)
                return usage_fail(err);
        }
    }
    int rc = ctl_apply(ctl, what, &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    char scope[PROTO_NAME_MAX + PROTO_MAP_VALUE_MAX + 16];
    scope_text(a, scope, sizeof scope);
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        json_begin(&j, &buf);
        ctl_json_key(&j, "account");
        ctl_json_str(&j, a->account.ptr ? a->account.ptr : "", a->account.len);
        ctl_json_key(&j, "meta_key");
        ctl_json_str(&j, a->meta_key.ptr ? a->meta_key.ptr : "", a->meta_key.len);
        ctl_json_key(&j, "meta_value");
        ctl_json_str(&j, a->meta_value.ptr ? a->meta_value.ptr : "", a->meta_value.len);
        const char *keys[4] = {"rpm", "tpm", "tph", "tpd"};
        int64_t vals[4] = {a->rpm, a->tpm, a->tph, a->tpd};
        for (int i = 0; i < 4; i++) {
            ctl_json_key(&j, keys[i]);
            ctl_json_int(&j, vals[i]);
        }
        return json_finish(&j, &buf);
    }
    if (is_clear || (a->rpm | a->tpm | a->tph | a->tpd) == 0)
        printf("rate limits of %s cleared\n", scope);
    else
        printf("rate limits of %s: rpm %lld, tpm %lld, tph %lld, tpd %lld (0 = none)\n", scope,
               (long long)a->rpm, (long long)a->tpm, (long long)a->tph, (long long)a->tpd);
    return CTL_EXIT_OK;
}

int ctl_limit_set(struct ctl *ctl)
{
    return limit_apply(ctl, "limit set", false);
}

int ctl_limit_clear(struct ctl *ctl)
{
    return limit_apply(ctl, "limit clear", true);
}

static const char *count_text(const uint8_t *m, size_t len, const char *key, char *buf,
                              size_t cap)
{
    int64_t v = 0;
    if (ctl_mp_int(m, len, key, &v) != 0)
        return "-";
    snprintf(buf, cap, "%lld", (long long)v);
    return buf;
}

int ctl_limit_list(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, "limit list", &answer, "rate_limits", 0, NULL, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    static const char *const headers[] = {"SCOPE", "RPM", "TPM", "TPH", "TPD",
                                          "REQ/MIN", "TOK/MIN", "TOK/HOUR", "TOK/DAY"};
    static const char *const keys[] = {"rpm", "tpm", "tph", "tpd", "requests_minute",
                                       "tokens_minute", "tokens_hour", "tokens_day"};
    struct ctl_table t;
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    ctl_table_init(&t, COUNT(headers), headers);
    if (ctl_mp_array((const uint8_t *)answer.data, answer.len, "rate_limits", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            char account[PROTO_NAME_MAX + 1], key[PROTO_MAP_KEY_MAX + 1];
            char value[PROTO_MAP_VALUE_MAX + 1];
            char scope[PROTO_NAME_MAX + PROTO_MAP_VALUE_MAX + 8];
            char cells[8][24];
            ctl_mp_str(e, elen, "account", account, sizeof account);
            ctl_mp_str(e, elen, "meta_key", key, sizeof key);
            ctl_mp_str(e, elen, "meta_value", value, sizeof value);
            if (account[0])
                snprintf(scope, sizeof scope, "%s", account);
            else
                snprintf(scope, sizeof scope, "%s=%s", key, value);
            const char *row[9] = {scope};
            for (int i = 0; i < 8; i++)
                row[1 + i] = count_text(e, elen, keys[i], cells[i], sizeof cells[i]);
            ctl_table_row(&t, row);
        }
    }
    proto_buf_free(&answer);
    return ctl_table_print(&t, stdout);
}

int ctl_estimate(struct ctl *ctl)
{
    const char *model = ctl->args->value[CTL_OPT_MODEL];
    const char *args[2] = {ctl->pos[0], model ? model : ""};
    struct proto_buf answer;
    proto_buf_init(&answer);
    int rc = ctl_read(ctl, "estimate", &answer, "estimate", 2, args);
    if (rc != CTL_EXIT_OK) {
        proto_buf_free(&answer);
        return rc;
    }
    const uint8_t *m = (const uint8_t *)answer.data;
    int64_t p50 = 0, p90 = 0, samples = 0;
    char used[PROTO_MAP_VALUE_MAX + 1] = "";
    ctl_mp_int(m, answer.len, "p50_micros", &p50);
    ctl_mp_int(m, answer.len, "p90_micros", &p90);
    ctl_mp_int(m, answer.len, "samples", &samples);
    ctl_mp_str(m, answer.len, "model", used, sizeof used);
    proto_buf_free(&answer);
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        json_begin(&j, &buf);
        ctl_json_key(&j, "workflow");
        ctl_json_cstr(&j, ctl->pos[0]);
        ctl_json_key(&j, "model");
        ctl_json_cstr(&j, used);
        ctl_json_key(&j, "p50_micros");
        ctl_json_int(&j, p50);
        ctl_json_key(&j, "p90_micros");
        ctl_json_int(&j, p90);
        ctl_json_key(&j, "samples");
        ctl_json_int(&j, samples);
        return json_finish(&j, &buf);
    }
    if (samples == 0) {
        printf("workflow %s: no estimate yet (no closed grant has spent)\n", ctl->pos[0]);
        return CTL_EXIT_OK;
    }
    char a[CTL_MONEY_CAP], b[CTL_MONEY_CAP];
    printf("workflow %s (model %s): p50 %s USD, p90 %s USD over %lld tasks\n", ctl->pos[0],
           used[0] ? used : "any", ctl_money_text(p50, a), ctl_money_text(p90, b),
           (long long)samples);
    return CTL_EXIT_OK;
}

int ctl_approval_set(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_APPROVAL_SET;
    const char *v = ctl->pos_count > 1 ? ctl->pos[1] : NULL;
    if (v == NULL)
        return usage_fail("policy set approval-above needs USD or none");
    if (strcmp(v, "none") == 0)
        cmd.u.approval_set.above_micros = PROTO_CAP_NONE;
    else if (ctl_money_parse(v, "approval-above", false, &cmd.u.approval_set.above_micros, err,
                             sizeof err) != 0)
        return usage_fail(err);
    int rc = ctl_apply(ctl, "policy set", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    int64_t above = cmd.u.approval_set.above_micros;
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        json_begin(&j, &buf);
        ctl_json_key(&j, "approval_above_micros");
        ctl_json_limit(&j, above);
        return json_finish(&j, &buf);
    }
    char t[CTL_MONEY_CAP];
    if (above == PROTO_CAP_NONE)
        printf("approval: none (agents start any work)\n");
    else
        printf("approval above %s USD (p90 estimate of a workflow)\n", ctl_money_text(above, t));
    return CTL_EXIT_OK;
}
