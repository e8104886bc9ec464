/*
 * ctl_ledger.c — purserctl's ledger commands: accounts, grants,
 * reserve/commit/release, transfers, API keys, prices, the metadata policy
 * and periods.
 *
 * A mutating command builds one proto_cmd from its arguments (strings point
 * into argv, alive for the whole run), applies it through ctl_apply, and
 * prints the result: a sentence for humans, or with --json an object whose
 * fields are listed in a table per command (API.md names them).  A read
 * command asks one query; with --json the server's answer map is passed
 * through (money as *_micros, unlimited as null), otherwise it is shown as a
 * table.
 */
#include "cluster/ctl.h"

#include <stddef.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/money.h"

#define KEY_SECRET_BYTES 32 /* "pk_" + 64 hex */
#define KEY_ID_BYTES 6      /* "key_" + 12 hex */
#define DEFAULT_RESERVE_TTL_MS (60LL * 1000)
#define DEFAULT_GRANT_TTL_MS (3600LL * 1000)

/* Print a usage error (already formatted in err) and return its exit code. */
static int usage_error(const char *err)
{
    ctl_errorf("%s", err);
    return CTL_EXIT_USAGE;
}

/* ---- JSON answers of mutations, table-driven ---- */

enum res_kind {
    RES_UINT,  /* uint64_t */
    RES_INT,   /* int64_t */
    RES_LIMIT, /* int64_t, null when unlimited */
};

struct res_field {
    const char *json;
    enum res_kind kind;
    size_t offset; /* into struct proto_result */
};

#define RF(json, kind, member) {json, kind, offsetof(struct proto_result, member)}

/* A string field written before the result's fields. */
struct out_str {
    const char *key;
    const char *value;
};

static int result_json(const struct proto_result *res, const struct out_str *strs,
                       uint32_t str_count, const struct res_field *fields, uint32_t field_count)
{
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    for (uint32_t i = 0; i < str_count; i++) {
        ctl_json_key(&j, strs[i].key);
        ctl_json_cstr(&j, strs[i].value);
    }
    for (uint32_t i = 0; i < field_count; i++) {
        const char *p = (const char *)res + fields[i].offset;
        ctl_json_key(&j, fields[i].json);
        if (fields[i].kind == RES_UINT) {
            uint64_t u;
            memcpy(&u, p, sizeof u);
            ctl_json_uint(&j, u);
        } else {
            int64_t v;
            memcpy(&v, p, sizeof v);
            if (fields[i].kind == RES_LIMIT)
                ctl_json_limit(&j, v);
            else
                ctl_json_int(&j, v);
        }
    }
    ctl_json_object_end(&j);
    int rc = ctl_json_print(&j);
    proto_buf_free(&buf);
    return rc;
}

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

/* ---- accounts ---- */

static const struct res_field account_fields[] = {RF("id", RES_UINT, id)};

/* Account create (all fields) and update (only the fields given). */
static int account_write(struct ctl *ctl, uint8_t type)
{
    const struct ctl_args *a = ctl->args;
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    bool is_create = type == PROTO_CMD_ACCOUNT_CREATE;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    struct proto_account_args *acc = &cmd.u.account;
    acc->name = proto_str_c(ctl->pos[0]);
    acc->cap_micros = is_create ? PROTO_CAP_NONE : PROTO_UNSET;
    acc->period = is_create ? PROTO_PERIOD_NONE : PROTO_UNSET;
    acc->tz_offset_min = is_create ? 0 : PROTO_UNSET;
    if (a->value[CTL_OPT_CAP] != NULL &&
        ctl_cap_parse(a->value[CTL_OPT_CAP], &acc->cap_micros, err, sizeof err) != 0)
        return usage_error(err);
    if (a->value[CTL_OPT_PERIOD] != NULL &&
        ctl_period_parse(a->value[CTL_OPT_PERIOD], &acc->period, err, sizeof err) != 0)
        return usage_error(err);
    if (a->value[CTL_OPT_TZ] != NULL &&
        ctl_tz_parse(a->value[CTL_OPT_TZ], &acc->tz_offset_min, err, sizeof err) != 0)
        return usage_error(err);
    if (ctl_tags_parse(a, &acc->tags, err, sizeof err) != 0)
        return usage_error(err);
    acc->has_tags = a->tag_count > 0;
    if (!is_create && acc->cap_micros == PROTO_UNSET && acc->period == PROTO_UNSET &&
        acc->tz_offset_min == PROTO_UNSET && !acc->has_tags)
        return usage_error("account update: nothing to change (give --cap, --period, --tz or "
                           "--tag)");
    const char *what = is_create ? "account create" : "account update";
    int rc = ctl_apply(ctl, what, &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str name = {"name", ctl->pos[0]};
    if (ctl->is_json)
        return result_json(&res, &name, 1, account_fields, COUNT(account_fields));
    printf("account %s %s\n", ctl->pos[0], is_create ? "created" : "updated");
    return CTL_EXIT_OK;
}

int ctl_account_create(struct ctl *ctl)
{
    return account_write(ctl, PROTO_CMD_ACCOUNT_CREATE);
}

int ctl_account_update(struct ctl *ctl)
{
    return account_write(ctl, PROTO_CMD_ACCOUNT_UPDATE);
}

/* freeze / unfreeze / close: the same shape, a different verb. */
static int account_set_status(struct ctl *ctl, uint8_t type, const char *what,
                              const char *done)
{
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    cmd.u.status.name = proto_str_c(ctl->pos[0]);
    cmd.u.status.reason = proto_str_c(ctl->args->value[CTL_OPT_REASON]);
    int rc = ctl_apply(ctl, what, &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str strs[] = {{"name", ctl->pos[0]}, {"status", done}};
    if (ctl->is_json)
        return result_json(&res, strs, COUNT(strs), account_fields, COUNT(account_fields));
    printf("account %s %s\n", ctl->pos[0], done);
    return CTL_EXIT_OK;
}

int ctl_account_freeze(struct ctl *ctl)
{
    return account_set_status(ctl, PROTO_CMD_ACCOUNT_FREEZE, "account freeze", "frozen");
}

int ctl_account_unfreeze(struct ctl *ctl)
{
    return account_set_status(ctl, PROTO_CMD_ACCOUNT_UNFREEZE, "account unfreeze", "active");
}

int ctl_account_close(struct ctl *ctl)
{
    return account_set_status(ctl, PROTO_CMD_ACCOUNT_CLOSE, "account close", "closed");
}

/* Read `query` and, with --json, print the answer as it is.  Returns
 * CTL_EXIT_OK with *is_done false when the caller prints for humans. */
int ctl_read_answer(struct ctl *ctl, const char *what, struct proto_buf *answer,
                       const char *query, uint32_t arg_count, const char *const *args,
                       bool *is_done)
{
    *is_done = true;
    int rc = ctl_read(ctl, what, answer, query, arg_count, args);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (!ctl->is_json) {
        *is_done = false;
        return CTL_EXIT_OK;
    }
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    if (ctl_json_mp(&j, (const uint8_t *)answer->data, answer->len) != 0) {
        ctl_errorf("%s: the server's answer is not well-formed msgpack", what);
        rc = CTL_EXIT_REFUSED;
    } else {
        rc = ctl_json_print(&j);
    }
    proto_buf_free(&buf);
    return rc;
}

static const char *tz_text(int64_t minutes, char *buf, size_t cap)
{
    int64_t m = minutes < 0 ? -minutes : minutes;
    snprintf(buf, cap, "%c%02d:%02d", minutes < 0 ? '-' : '+', (int)(m / 60), (int)(m % 60));
    return buf;
}

/* One money field of an answer as text ("-" when absent). */
static const char *answer_money(const uint8_t *m, size_t len, const char *key, bool is_limit,
                                char *buf)
{
    int64_t v;
    if (ctl_mp_int(m, len, key, &v) != 0)
        return "-";
    return is_limit ? ctl_limit_text(v, buf) : ctl_money_text(v, buf);
}

int ctl_account_show(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    char what[PROTO_NAME_MAX + 16];
    snprintf(what, sizeof what, "account \"%s\"", ctl->pos[0]);
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, what, &answer, "account", 1, ctl->pos, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    const uint8_t *m = (const uint8_t *)answer.data;
    size_t len = answer.len;
    char name[PROTO_NAME_MAX + 1], period[16], status[16], tz[16], tags[1024];
    char cap[CTL_MONEY_CAP], spent[CTL_MONEY_CAP], reserved[CTL_MONEY_CAP],
        avail[CTL_MONEY_CAP];
    int64_t tz_min = 0, start_ms = 0, end_ms = 0;
    ctl_mp_str(m, len, "name", name, sizeof name);
    ctl_mp_str(m, len, "period", period, sizeof period);
    ctl_mp_str(m, len, "status", status, sizeof status);
    ctl_mp_int(m, len, "tz_offset_min", &tz_min);
    const uint8_t *v;
    size_t vlen;
    if (ctl_mp_find(m, len, "tags", &v, &vlen) == 0)
        ctl_mp_text(v, vlen, tags, sizeof tags);
    else
        snprintf(tags, sizeof tags, "{}");
    char frozen_reason[PROTO_TEXT_MAX + 1] = "";
    ctl_mp_str(m, len, "frozen_reason", frozen_reason, sizeof frozen_reason);
    printf("name       %s\n", name);
    printf("status     %s%s%s%s\n", status, frozen_reason[0] ? " (reason: " : "", frozen_reason,
           frozen_reason[0] ? ")" : "");
    printf("cap        %s\n", answer_money(m, len, "cap_micros", true, cap));
    printf("period     %s (UTC%s)", period, tz_text(tz_min, tz, sizeof tz));
    if (ctl_mp_int(m, len, "period_start_ms", &start_ms) == 0 &&
        ctl_mp_int(m, len, "period_end_ms", &end_ms) == 0 && strcmp(period, "none") != 0) {
        char from[CTL_TIME_CAP], to[CTL_TIME_CAP];
        printf(" %s .. %s", ctl_time_text(start_ms, from), ctl_time_text(end_ms, to));
    }
    printf("\n");
    printf("spent      %s\n", answer_money(m, len, "spent_micros", false, spent));
    printf("reserved   %s\n", answer_money(m, len, "reserved_micros", false, reserved));
    printf("available  %s\n", answer_money(m, len, "available_micros", true, avail));
    printf("tags       %s\n", tags);
    proto_buf_free(&answer);
    return CTL_EXIT_OK;
}

int ctl_account_list(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    /* The ledger lists an account and its subtree; "acme/" means "acme"
     * (without this it would match nothing). */
    char prefix_buf[PROTO_NAME_MAX + 1];
    if (ctl->pos_count > 0 && strlen(ctl->pos[0]) > PROTO_NAME_MAX) {
        ctl_errorf("account list: name longer than %d bytes", PROTO_NAME_MAX);
        return CTL_EXIT_USAGE;
    }
    snprintf(prefix_buf, sizeof prefix_buf, "%s", ctl->pos_count > 0 ? ctl->pos[0] : "");
    size_t plen = strlen(prefix_buf);
    while (plen > 0 && prefix_buf[plen - 1] == '/')
        prefix_buf[--plen] = '\0';
    const char *prefix = prefix_buf;
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, "accounts", &answer, "accounts", 1, &prefix, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    static const char *const headers[] = {"NAME",     "STATUS",    "CAP", "PERIOD",
                                          "SPENT",    "RESERVED",  "AVAILABLE"};
    struct ctl_table t;
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    ctl_table_init(&t, COUNT(headers), headers);
    if (ctl_mp_array((const uint8_t *)answer.data, answer.len, "accounts", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            char name[PROTO_NAME_MAX + 1], status[16], period[16];
            char cap[CTL_MONEY_CAP], spent[CTL_MONEY_CAP], reserved[CTL_MONEY_CAP],
                avail[CTL_MONEY_CAP];
            ctl_mp_str(e, elen, "name", name, sizeof name);
            ctl_mp_str(e, elen, "status", status, sizeof status);
            ctl_mp_str(e, elen, "period", period, sizeof period);
            const char *row[] = {name,
                                 status,
                                 answer_money(e, elen, "cap_micros", true, cap),
                                 period,
                                 answer_money(e, elen, "spent_micros", false, spent),
                                 answer_money(e, elen, "reserved_micros", false, reserved),
                                 answer_money(e, elen, "available_micros", true, avail)};
            ctl_table_row(&t, row);
        }
    }
    proto_buf_free(&answer);
    return ctl_table_print(&t, stdout);
}

/* ---- grants ---- */

static const struct res_field grant_create_fields[] = {
    RF("id", RES_UINT, id),
    RF("amount_micros", RES_INT, amount_micros),
    RF("expires_at_ms", RES_INT, expires_at_ms),
    RF("remaining_micros", RES_LIMIT, remaining_micros),
};

/* --ttl, or `fallback` when absent. */
static int ttl_get(const struct ctl *ctl, int64_t fallback, int64_t *ttl_ms, char *err,
                   size_t cap)
{
    const char *s = ctl->args->value[CTL_OPT_TTL];
    *ttl_ms = fallback;
    return s == NULL ? 0 : ctl_duration_parse(s, "--ttl", ttl_ms, err, cap);
}

int ctl_grant_create(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_GRANT_CREATE;
    struct proto_grant_create_args *g = &cmd.u.grant_create;
    g->parent = proto_str_c(ctl->pos[0]);
    g->workflow = proto_str_c(ctl->args->value[CTL_OPT_WORKFLOW]);
    if (ctl_money_parse(ctl->pos[1], "amount", true, &g->amount_micros, err, sizeof err) != 0 ||
        ttl_get(ctl, DEFAULT_GRANT_TTL_MS, &g->ttl_ms, err, sizeof err) != 0 ||
        ctl_tags_parse(ctl->args, &g->metadata, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "grant create", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str account = {"account", res.name};
    if (ctl->is_json)
        return result_json(&res, &account, 1, grant_create_fields, COUNT(grant_create_fields));
    char amount[CTL_MONEY_CAP], left[CTL_MONEY_CAP], until[CTL_TIME_CAP];
    printf("grant %llu: %s holds %s USD until %s; %s USD left on the path\n",
           (unsigned long long)res.id, res.name, ctl_money_text(res.amount_micros, amount),
           ctl_time_text(res.expires_at_ms, until), ctl_limit_text(res.remaining_micros, left));
    return CTL_EXIT_OK;
}

static const struct res_field grant_close_fields[] = {
    RF("id", RES_UINT, id),
    RF("spent_micros", RES_INT, amount_micros),
    RF("returned_micros", RES_INT, returned_micros),
};

int ctl_grant_close(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_GRANT_CLOSE;
    if (ctl_id_parse(ctl->pos[0], "grant id", &cmd.u.grant_close.grant_id, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "grant close", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return result_json(&res, NULL, 0, grant_close_fields, COUNT(grant_close_fields));
    char spent[CTL_MONEY_CAP], returned[CTL_MONEY_CAP];
    printf("grant %s closed: spent %s USD, returned %s USD\n", ctl->pos[0],
           ctl_money_text(res.amount_micros, spent), ctl_money_text(res.returned_micros, returned));
    return CTL_EXIT_OK;
}

/* ---- reservations ---- */

static const struct res_field reserve_fields[] = {
    RF("id", RES_UINT, id),
    RF("amount_micros", RES_INT, amount_micros),
    RF("expires_at_ms", RES_INT, expires_at_ms),
    RF("remaining_micros", RES_LIMIT, remaining_micros),
};

static int on_expire_parse(const char *s, int64_t *out, char *err, size_t cap)
{
    if (s == NULL || strcmp(s, "release") == 0) {
        *out = PROTO_ON_EXPIRE_RELEASE;
    } else if (strcmp(s, "charge") == 0) {
        *out = PROTO_ON_EXPIRE_CHARGE;
    } else {
        snprintf(err, cap, "--on-expire \"%s\" is not release or charge", s);
        return -1;
    }
    return 0;
}

int ctl_reserve(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_RESERVE;
    struct proto_reserve_args *r = &cmd.u.reserve;
    r->account = proto_str_c(ctl->pos[0]);
    r->payee = proto_str_c(ctl->args->value[CTL_OPT_PAYEE]);
    if (ctl_money_parse(ctl->pos[1], "amount", true, &r->amount_micros, err, sizeof err) != 0 ||
        ttl_get(ctl, DEFAULT_RESERVE_TTL_MS, &r->ttl_ms, err, sizeof err) != 0 ||
        on_expire_parse(ctl->args->value[CTL_OPT_ON_EXPIRE], &r->on_expire, err, sizeof err) !=
            0 ||
        ctl_tags_parse(ctl->args, &r->metadata, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "reserve", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return result_json(&res, NULL, 0, reserve_fields, COUNT(reserve_fields));
    char amount[CTL_MONEY_CAP], left[CTL_MONEY_CAP], until[CTL_TIME_CAP];
    printf("reservation %llu: %s USD held until %s; %s USD left\n", (unsigned long long)res.id,
           ctl_money_text(res.amount_micros, amount), ctl_time_text(res.expires_at_ms, until),
           ctl_limit_text(res.remaining_micros, left));
    return CTL_EXIT_OK;
}

static const struct res_field commit_fields[] = {
    RF("transfer_id", RES_UINT, transfer_id),
    RF("cost_micros", RES_INT, amount_micros),
    RF("overrun_micros", RES_INT, overrun_micros),
    RF("remaining_micros", RES_LIMIT, remaining_micros),
};

int ctl_commit(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_COMMIT;
    struct proto_commit_args *c = &cmd.u.commit;
    if (ctl_id_parse(ctl->pos[0], "reservation id", &c->reservation_id, err, sizeof err) != 0 ||
        ctl_money_parse(ctl->pos[1], "amount", false, &c->actual_micros, err, sizeof err) != 0 ||
        ctl_tags_parse(ctl->args, &c->metadata, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "commit", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return result_json(&res, NULL, 0, commit_fields, COUNT(commit_fields));
    char cost[CTL_MONEY_CAP], overrun[CTL_MONEY_CAP], left[CTL_MONEY_CAP];
    printf("reservation %s committed: cost %s USD (overrun %s), transfer %llu; %s USD left\n",
           ctl->pos[0], ctl_money_text(res.amount_micros, cost),
           ctl_money_text(res.overrun_micros, overrun), (unsigned long long)res.transfer_id,
           ctl_limit_text(res.remaining_micros, left));
    return CTL_EXIT_OK;
}

static const struct res_field release_fields[] = {
    RF("id", RES_UINT, id),
    RF("returned_micros", RES_INT, returned_micros),
    RF("remaining_micros", RES_LIMIT, remaining_micros),
};

int ctl_release(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_RELEASE;
    if (ctl_id_parse(ctl->pos[0], "reservation id", &cmd.u.release.reservation_id, err,
                     sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "release", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return result_json(&res, NULL, 0, release_fields, COUNT(release_fields));
    char returned[CTL_MONEY_CAP], left[CTL_MONEY_CAP];
    printf("reservation %s released: %s USD returned; %s USD left\n", ctl->pos[0],
           ctl_money_text(res.returned_micros, returned),
           ctl_limit_text(res.remaining_micros, left));
    return CTL_EXIT_OK;
}

/* ---- transfers ---- */

static const struct res_field transfer_fields[] = {
    RF("id", RES_UINT, id),
    RF("amount_micros", RES_INT, amount_micros),
};

int ctl_transfer(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    const char *kind = ctl->args->value[CTL_OPT_KIND];
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_TRANSFER;
    struct proto_transfer_args *t = &cmd.u.transfer;
    t->debit = proto_str_c(ctl->pos[0]);
    t->credit = proto_str_c(ctl->pos[1]);
    if (kind == NULL || strcmp(kind, "chargeback") == 0) {
        kind = "chargeback";
        t->kind = PROTO_KIND_CHARGEBACK;
    } else if (strcmp(kind, "adjustment") == 0) {
        t->kind = PROTO_KIND_ADJUSTMENT;
    } else {
        snprintf(err, sizeof err, "--kind \"%s\" is not chargeback or adjustment", kind);
        return usage_error(err);
    }
    if (ctl_money_parse(ctl->pos[2], "amount", true, &t->amount_micros, err, sizeof err) != 0 ||
        ctl_tags_parse(ctl->args, &t->metadata, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "transfer", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str k = {"kind", kind};
    if (ctl->is_json)
        return result_json(&res, &k, 1, transfer_fields, COUNT(transfer_fields));
    char amount[CTL_MONEY_CAP];
    printf("transfer %llu: %s %s USD from %s to %s\n", (unsigned long long)res.id, kind,
           ctl_money_text(res.amount_micros, amount), ctl->pos[0], ctl->pos[1]);
    return CTL_EXIT_OK;
}

/* ---- API keys ---- */

int ctl_key_create(struct ctl *ctl)
{
    const char *role = ctl->args->value[CTL_OPT_ROLE];
    struct proto_cmd cmd;
    struct proto_result res;
    char secret[3 + 2 * KEY_SECRET_BYTES + 1] = "pk_";
    char key_id[4 + 2 * KEY_ID_BYTES + 1] = "key_";
    uint8_t hash[PROTO_HASH_BYTES];
    unsigned int hash_len = 0;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_KEY_CREATE;
    struct proto_key_create_args *k = &cmd.u.key_create;
    if (role == NULL || strcmp(role, "agent") == 0) {
        role = "agent";
        k->key_role = PROTO_ROLE_AGENT;
    } else if (strcmp(role, "admin") == 0) {
        k->key_role = PROTO_ROLE_ADMIN;
    } else {
        char err[CTL_ERR_MAX];
        snprintf(err, sizeof err, "--role \"%s\" is not agent or admin", role);
        return usage_error(err);
    }
    /* The secret never leaves this process except on stdout: the ledger
     * stores only its SHA-256, which is what the gateway looks up. */
    if (ctl_random_hex(KEY_SECRET_BYTES, secret + 3) != 0 ||
        ctl_random_hex(KEY_ID_BYTES, key_id + 4) != 0 ||
        EVP_Digest(secret, strlen(secret), hash, &hash_len, EVP_sha256(), NULL) != 1 ||
        hash_len != PROTO_HASH_BYTES) {
        ctl_errorf("key create: no randomness or SHA-256 for the secret");
        return CTL_EXIT_REFUSED;
    }
    k->key_id = proto_str_c(key_id);
    k->hash = (struct proto_str){(const char *)hash, PROTO_HASH_BYTES};
    k->account = proto_str_c(ctl->pos[0]);
    int rc = ctl_apply(ctl, "key create", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str strs[] = {
        {"id", key_id}, {"key", secret}, {"account", ctl->pos[0]}, {"role", role}};
    if (ctl->is_json)
        return result_json(&res, strs, COUNT(strs), NULL, 0);
    printf("key %s (%s) for %s\n%s\n", key_id, role, ctl->pos[0], secret);
    fprintf(stderr, "purserctl: the secret is shown once: store it now\n");
    return CTL_EXIT_OK;
}

int ctl_key_revoke(struct ctl *ctl)
{
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_KEY_REVOKE;
    cmd.u.key_revoke.key_id = proto_str_c(ctl->pos[0]);
    int rc = ctl_apply(ctl, "key revoke", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str strs[] = {{"id", ctl->pos[0]}, {"status", "revoked"}};
    if (ctl->is_json)
        return result_json(&res, strs, COUNT(strs), NULL, 0);
    printf("key %s revoked\n", ctl->pos[0]);
    return CTL_EXIT_OK;
}

/* ---- prices ---- */

struct price_opt {
    enum ctl_opt opt;
    size_t offset; /* into struct proto_price_set_args */
};

static const struct price_opt price_opts[] = {
    {CTL_OPT_INPUT, offsetof(struct proto_price_set_args, input_micros)},
    {CTL_OPT_OUTPUT, offsetof(struct proto_price_set_args, output_micros)},
    {CTL_OPT_CACHED, offsetof(struct proto_price_set_args, cached_micros)},
    {CTL_OPT_CACHE_WRITE, offsetof(struct proto_price_set_args, cache_write_micros)},
};

int ctl_price_set(struct ctl *ctl)
{
    const struct ctl_args *a = ctl->args;
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_PRICE_SET;
    struct proto_price_set_args *p = &cmd.u.price_set;
    p->model = proto_str_c(ctl->pos[0]);
    if (a->value[CTL_OPT_INPUT] == NULL || a->value[CTL_OPT_OUTPUT] == NULL)
        return usage_error("price set needs --input and --output (USD per million tokens)");
    for (uint32_t i = 0; i < COUNT(price_opts); i++) {
        const char *s = a->value[price_opts[i].opt];
        int64_t *dst = (int64_t *)((char *)p + price_opts[i].offset);
        char what[32];
        /* Cache prices default to the input price: never charge less than
         * a plain prompt token unless told. */
        if (s == NULL) {
            *dst = p->input_micros;
            continue;
        }
        snprintf(what, sizeof what, "--%s", ctl_opt_name(price_opts[i].opt));
        if (ctl_money_parse(s, what, false, dst, err, sizeof err) != 0)
            return usage_error(err);
    }
    int rc = ctl_apply(ctl, "price set", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        proto_buf_init(&buf);
        ctl_json_init(&j, &buf);
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "model");
        ctl_json_cstr(&j, ctl->pos[0]);
        static const char *const keys[] = {"input_micros", "output_micros", "cached_micros",
                                           "cache_write_micros"};
        for (uint32_t i = 0; i < COUNT(price_opts); i++) {
            ctl_json_key(&j, keys[i]);
            ctl_json_int(&j, *(const int64_t *)((const char *)p + price_opts[i].offset));
        }
        ctl_json_object_end(&j);
        rc = ctl_json_print(&j);
        proto_buf_free(&buf);
        return rc;
    }
    char in[CTL_MONEY_CAP], out[CTL_MONEY_CAP], cached[CTL_MONEY_CAP], cw[CTL_MONEY_CAP];
    printf("price of %s set (USD per million tokens): input %s, output %s, cached %s, "
           "cache write %s\n",
           ctl->pos[0], ctl_money_text(p->input_micros, in), ctl_money_text(p->output_micros, out),
           ctl_money_text(p->cached_micros, cached), ctl_money_text(p->cache_write_micros, cw));
    return CTL_EXIT_OK;
}

/* One price from a price file: a decimal string (never a JSON number:
 * money is exact).  Absent: the fallback. */
static int ctl_price_field(json_t *m, const char *model, const char *k, int64_t fallback,
                           bool is_required, int64_t *out, char *err, size_t cap)
{
    json_t *v = json_object_get(m, k);
    if (!v) {
        if (is_required) {
            snprintf(err, cap, "model \"%s\": \"%s\" is required", model, k);
            return -1;
        }
        *out = fallback;
        return 0;
    }
    char what[160];
    snprintf(what, sizeof what, "model \"%.100s\": \"%s\"", model, k);
    if (!json_is_string(v)) {
        snprintf(err, cap, "%s must be a decimal string like \"0.15\"", what);
        return -1;
    }
    return ctl_money_parse(json_string_value(v), what, false, out, err, cap);
}

int ctl_price_load(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    json_error_t jerr;
    json_t *doc = json_load_file(ctl->pos[0], JSON_REJECT_DUPLICATES, &jerr);
    json_t *models = doc ? json_object_get(doc, "models") : NULL;
    if (!json_is_object(models)) {
        snprintf(err, sizeof err, "%s: %s", ctl->pos[0],
                 doc ? "needs a \"models\" object" : jerr.text);
        json_decref(doc);
        return usage_error(err);
    }
    /* Check every entry before changing anything. */
    size_t n = json_object_size(models), i = 0;
    struct proto_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    if (!cmds) {
        json_decref(doc);
        return usage_error("out of memory");
    }
    const char *model;
    json_t *m;
    int rc = CTL_EXIT_OK;
    json_object_foreach(models, model, m)
    {
        struct proto_price_set_args *p = &cmds[i].u.price_set;
        cmds[i].type = PROTO_CMD_PRICE_SET;
        p->model = proto_str_c(model);
        if (!json_is_object(m) ||
            ctl_price_field(m, model, "input", 0, true, &p->input_micros, err, sizeof err) ||
            ctl_price_field(m, model, "output", 0, true, &p->output_micros, err, sizeof err) ||
            ctl_price_field(m, model, "cached", p->input_micros, false, &p->cached_micros, err,
                            sizeof err) ||
            ctl_price_field(m, model, "cache_write", p->input_micros, false,
                            &p->cache_write_micros, err, sizeof err)) {
            if (!json_is_object(m))
                snprintf(err, sizeof err, "model \"%s\" must map to an object", model);
            rc = usage_error(err);
            break;
        }
        i++;
    }
    /* One key per model, derived from the invocation's: a retry of the
     * whole load is still idempotent. */
    char (*keys)[PROTO_KEY_MAX + 1] = calloc(i ? i : 1, sizeof *keys);
    for (size_t k = 0; rc == CTL_EXIT_OK && k < i; k++) {
        struct proto_result res;
        if (keys) {
            snprintf(keys[k], sizeof keys[k], "%.100s-%zu", ctl->key, k);
            cmds[k].key = proto_str_c(keys[k]);
        }
        rc = ctl_apply(ctl, "price load", &cmds[k], &res);
    }
    free(keys);
    if (rc == CTL_EXIT_OK && !ctl->is_json)
        printf("%zu prices loaded from %s (dated %s)\n", i, ctl->pos[0],
               json_is_string(json_object_get(doc, "date"))
                   ? json_string_value(json_object_get(doc, "date")) : "?");
    else if (rc == CTL_EXIT_OK)
        printf("{\"loaded\":%zu}\n", i);
    free(cmds);
    json_decref(doc);
    return rc;
}

int ctl_price_list(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, "prices", &answer, "prices", 0, NULL, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    static const char *const headers[] = {"MODEL", "INPUT", "OUTPUT", "CACHED", "CACHE_WRITE"};
    static const char *const keys[] = {"input_micros", "output_micros", "cached_micros",
                                       "cache_write_micros"};
    struct ctl_table t;
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    ctl_table_init(&t, COUNT(headers), headers);
    if (ctl_mp_array((const uint8_t *)answer.data, answer.len, "prices", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            char model[PROTO_TEXT_MAX + 1], money[4][CTL_MONEY_CAP];
            const char *row[5] = {model};
            ctl_mp_str(e, elen, "model", model, sizeof model);
            for (int i = 0; i < 4; i++)
                row[i + 1] = answer_money(e, elen, keys[i], false, money[i]);
            ctl_table_row(&t, row);
        }
    }
    proto_buf_free(&answer);
    printf("(USD per million tokens)\n");
    return ctl_table_print(&t, stdout);
}

/* ---- policy ---- */

int ctl_policy_set(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    if (strcmp(ctl->pos[0], "approval-above") == 0)
        return ctl_approval_set(ctl); /* ctl_limits.c */
    if (strcmp(ctl->pos[0], "required-metadata") != 0) {
        snprintf(err, sizeof err, "unknown policy \"%s\" (known: required-metadata,"
                 " approval-above)", ctl->pos[0]);
        return usage_error(err);
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_POLICY_SET;
    struct proto_list *l = &cmd.u.policy_set.required_metadata;
    const char *list = ctl->pos_count > 1 ? ctl->pos[1] : "";
    if (ctl_list_parse(list, l, err, sizeof err) != 0)
        return usage_error(err);
    int rc = ctl_apply(ctl, "policy set", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json) {
        struct proto_buf buf;
        struct ctl_json j;
        proto_buf_init(&buf);
        ctl_json_init(&j, &buf);
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "required_metadata");
        ctl_json_array_begin(&j);
        for (uint32_t i = 0; i < l->count; i++)
            ctl_json_str(&j, l->item[i].ptr, l->item[i].len);
        ctl_json_array_end(&j);
        ctl_json_object_end(&j);
        rc = ctl_json_print(&j);
        proto_buf_free(&buf);
        return rc;
    }
    printf("required metadata: %s\n", l->count > 0 ? list : "(none)");
    return CTL_EXIT_OK;
}

int ctl_policy_show(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, "policy", &answer, "policy", 0, NULL, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    printf("required metadata:");
    uint32_t n = 0;
    if (ctl_mp_array((const uint8_t *)answer.data, answer.len, "required_metadata", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            char item[PROTO_MAP_KEY_MAX + 1];
            printf("%s%s", n++ == 0 ? " " : ", ", ctl_mp_text(e, elen, item, sizeof item));
        }
    }
    printf("%s\n", n == 0 ? " (none)" : "");
    int64_t above = PROTO_CAP_NONE;
    char t[CTL_MONEY_CAP];
    ctl_mp_int((const uint8_t *)answer.data, answer.len, "approval_above_micros", &above);
    printf("approval above: %s\n", above < 0 ? "none" : ctl_money_text(above, t));
    proto_buf_free(&answer);
    return CTL_EXIT_OK;
}

/* ---- periods ---- */

int ctl_period_close(struct ctl *ctl)
{
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    struct proto_result res;
    if (ctl_month_parse(ctl->pos[0], err, sizeof err) != 0)
        return usage_error(err);
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_PERIOD_CLOSE;
    cmd.u.period_close.month = proto_str_c(ctl->pos[0]);
    int rc = ctl_apply(ctl, "period close", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    struct out_str strs[] = {{"month", ctl->pos[0]}, {"status", "closed"}};
    if (ctl->is_json)
        return result_json(&res, strs, COUNT(strs), NULL, 0);
    printf("period %s closed\n", ctl->pos[0]);
    return CTL_EXIT_OK;
}

int ctl_period_list(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, "periods", &answer, "periods", 0, NULL, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    static const char *const headers[] = {"MONTH", "CLOSED_AT"};
    struct ctl_table t;
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    ctl_table_init(&t, COUNT(headers), headers);
    if (ctl_mp_array((const uint8_t *)answer.data, answer.len, "periods", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            char month[16], when[CTL_TIME_CAP];
            int64_t ms = 0;
            ctl_mp_str(e, elen, "month", month, sizeof month);
            ctl_mp_int(e, elen, "closed_at_ms", &ms);
            const char *row[] = {month, ctl_time_text(ms, when)};
            ctl_table_row(&t, row);
        }
    }
    proto_buf_free(&answer);
    return ctl_table_print(&t, stdout);
}
