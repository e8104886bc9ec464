/*
 * names.c — the human names of proto.h's enums (logs, errors, the admin API)
 * and the two proto_str helpers.  Names are lower_snake_case and stable: the
 * admin API and stored reports use them.
 */
#include "proto/proto.h"

#include <assert.h>
#include <string.h>

static const char *const cmd_type_names[PROTO_CMD_TYPE_COUNT] = {
    [PROTO_CMD_ACCOUNT_CREATE] = "account_create",
    [PROTO_CMD_ACCOUNT_UPDATE] = "account_update",
    [PROTO_CMD_ACCOUNT_FREEZE] = "account_freeze",
    [PROTO_CMD_ACCOUNT_UNFREEZE] = "account_unfreeze",
    [PROTO_CMD_ACCOUNT_CLOSE] = "account_close",
    [PROTO_CMD_RESERVE] = "reserve",
    [PROTO_CMD_COMMIT] = "commit",
    [PROTO_CMD_RELEASE] = "release",
    [PROTO_CMD_EXPIRE] = "expire",
    [PROTO_CMD_TRANSFER] = "transfer",
    [PROTO_CMD_GRANT_CREATE] = "grant_create",
    [PROTO_CMD_GRANT_CLOSE] = "grant_close",
    [PROTO_CMD_PERIOD_CLOSE] = "period_close",
    [PROTO_CMD_PRICE_SET] = "price_set",
    [PROTO_CMD_KEY_CREATE] = "key_create",
    [PROTO_CMD_KEY_REVOKE] = "key_revoke",
    [PROTO_CMD_POLICY_SET] = "policy_set",
    [PROTO_CMD_BREAKER_SET] = "breaker_set",
    [PROTO_CMD_ALERT_SET] = "alert_set",
    [PROTO_CMD_EVENT_ACK] = "event_ack",
    [PROTO_CMD_RATE_LIMIT_SET] = "rate_limit_set",
    [PROTO_CMD_APPROVAL_SET] = "approval_set",
};

static const char *const status_names[PROTO_STATUS_COUNT] = {
    [PROTO_OK] = "ok",
    [PROTO_ERR_INVALID] = "invalid",
    [PROTO_ERR_NOT_FOUND] = "not_found",
    [PROTO_ERR_EXISTS] = "exists",
    [PROTO_ERR_BUDGET_EXCEEDED] = "budget_exceeded",
    [PROTO_ERR_FROZEN] = "account_frozen",
    [PROTO_ERR_CLOSED] = "account_closed",
    [PROTO_ERR_GRANT_EXPIRED] = "grant_expired",
    [PROTO_ERR_PERIOD_CLOSED] = "period_closed",
    [PROTO_ERR_FORBIDDEN] = "forbidden",
    [PROTO_ERR_CONFLICT] = "conflict",
    [PROTO_ERR_RATE_LIMITED] = "rate_limited",
    [PROTO_ERR_APPROVAL_REQUIRED] = "approval_required",
};

static const char *const period_names[] = {
    [PROTO_PERIOD_NONE] = "none",
    [PROTO_PERIOD_DAY] = "day",
    [PROTO_PERIOD_WEEK] = "week",
    [PROTO_PERIOD_MONTH] = "month",
};

static const char *const kind_names[] = {
    [PROTO_KIND_SPEND] = "spend",
    [PROTO_KIND_CHARGEBACK] = "chargeback",
    [PROTO_KIND_GRANT] = "grant",
    [PROTO_KIND_ADJUSTMENT] = "adjustment",
};

#define NAMES_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The name at `i`, or "unknown" for a hole or an index out of range. */
static const char *names_lookup(const char *const *names, int count, int i)
{
    if (i < 0 || i >= count || names[i] == NULL)
        return "unknown";
    return names[i];
}

const char *proto_cmd_type_name(int type)
{
    return names_lookup(cmd_type_names, NAMES_COUNT(cmd_type_names), type);
}

const char *proto_status_name(int status)
{
    return names_lookup(status_names, NAMES_COUNT(status_names), status);
}

const char *proto_period_name(int period)
{
    return names_lookup(period_names, NAMES_COUNT(period_names), period);
}

const char *proto_kind_name(int kind)
{
    return names_lookup(kind_names, NAMES_COUNT(kind_names), kind);
}

int proto_period_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < NAMES_COUNT(period_names); i++) {
        if (strcmp(s, period_names[i]) == 0)
            return i;
    }
    return -1;
}

bool proto_str_eq(struct proto_str s, const char *c)
{
    assert(c != NULL);
    size_t n = strlen(c);
    if (n != s.len)
        return false;
    return n == 0 || memcmp(s.ptr, c, n) == 0;
}

struct proto_str proto_str_c(const char *c)
{
    struct proto_str s = {c, 0};
    if (c != NULL) {
        size_t n = strlen(c);
        assert(n <= UINT32_MAX);
        s.len = (uint32_t)n;
    }
    return s;
}
