/*
 * proto_equal.h — field-by-field equality of commands and results, the
 * oracle of the codec round-trip tests (unit tests and fuzz targets).
 * Strings compare by content (decoded strings point into different
 * buffers); a map's `raw` is ignored (encoders do not set it); tags count
 * only when has_tags is set, since nil carries no tags.
 */
#ifndef PURSER_TEST_PROTO_EQUAL_H
#define PURSER_TEST_PROTO_EQUAL_H

#include <stdbool.h>
#include <string.h>

#include "proto/proto.h"

static inline bool proto_str_same(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool proto_map_same(const struct proto_map *a, const struct proto_map *b)
{
    if (a->count != b->count)
        return false;
    for (uint32_t i = 0; i < a->count; i++) {
        if (!proto_str_same(a->kv[i].key, b->kv[i].key) ||
            !proto_str_same(a->kv[i].value, b->kv[i].value))
            return false;
    }
    return true;
}

static inline bool proto_list_same(const struct proto_list *a, const struct proto_list *b)
{
    if (a->count != b->count)
        return false;
    for (uint32_t i = 0; i < a->count; i++) {
        if (!proto_str_same(a->item[i], b->item[i]))
            return false;
    }
    return true;
}

static inline bool proto_account_same(const struct proto_account_args *a,
                                      const struct proto_account_args *b)
{
    return proto_str_same(a->name, b->name) && a->cap_micros == b->cap_micros &&
           a->period == b->period && a->tz_offset_min == b->tz_offset_min &&
           a->has_tags == b->has_tags && (!a->has_tags || proto_map_same(&a->tags, &b->tags));
}

static inline bool proto_args_same(int type, const struct proto_cmd *a, const struct proto_cmd *b)
{
    switch (type) {
    case PROTO_CMD_ACCOUNT_CREATE:
    case PROTO_CMD_ACCOUNT_UPDATE:
        return proto_account_same(&a->u.account, &b->u.account);
    case PROTO_CMD_ACCOUNT_FREEZE:
    case PROTO_CMD_ACCOUNT_UNFREEZE:
    case PROTO_CMD_ACCOUNT_CLOSE:
        return proto_str_same(a->u.status.name, b->u.status.name) &&
               proto_str_same(a->u.status.reason, b->u.status.reason);
    case PROTO_CMD_RESERVE:
        return proto_str_same(a->u.reserve.account, b->u.reserve.account) &&
               proto_str_same(a->u.reserve.payee, b->u.reserve.payee) &&
               a->u.reserve.amount_micros == b->u.reserve.amount_micros &&
               a->u.reserve.ttl_ms == b->u.reserve.ttl_ms &&
               a->u.reserve.on_expire == b->u.reserve.on_expire &&
               proto_map_same(&a->u.reserve.metadata, &b->u.reserve.metadata) &&
               a->u.reserve.tokens == b->u.reserve.tokens;
    case PROTO_CMD_COMMIT:
        return a->u.commit.reservation_id == b->u.commit.reservation_id &&
               a->u.commit.actual_micros == b->u.commit.actual_micros &&
               proto_map_same(&a->u.commit.metadata, &b->u.commit.metadata) &&
               a->u.commit.tokens == b->u.commit.tokens;
    case PROTO_CMD_RELEASE:
        return a->u.release.reservation_id == b->u.release.reservation_id;
    case PROTO_CMD_EXPIRE:
        return true;
    case PROTO_CMD_TRANSFER:
        return proto_str_same(a->u.transfer.debit, b->u.transfer.debit) &&
               proto_str_same(a->u.transfer.credit, b->u.transfer.credit) &&
               a->u.transfer.amount_micros == b->u.transfer.amount_micros &&
               a->u.transfer.kind == b->u.transfer.kind &&
               proto_map_same(&a->u.transfer.metadata, &b->u.transfer.metadata);
    case PROTO_CMD_GRANT_CREATE:
        return proto_str_same(a->u.grant_create.parent, b->u.grant_create.parent) &&
               proto_str_same(a->u.grant_create.workflow, b->u.grant_create.workflow) &&
               a->u.grant_create.amount_micros == b->u.grant_create.amount_micros &&
               a->u.grant_create.ttl_ms == b->u.grant_create.ttl_ms &&
               proto_map_same(&a->u.grant_create.metadata, &b->u.grant_create.metadata);
    case PROTO_CMD_GRANT_CLOSE:
        return a->u.grant_close.grant_id == b->u.grant_close.grant_id;
    case PROTO_CMD_PERIOD_CLOSE:
        return proto_str_same(a->u.period_close.month, b->u.period_close.month);
    case PROTO_CMD_PRICE_SET:
        return proto_str_same(a->u.price_set.model, b->u.price_set.model) &&
               a->u.price_set.input_micros == b->u.price_set.input_micros &&
               a->u.price_set.output_micros == b->u.price_set.output_micros &&
               a->u.price_set.cached_micros == b->u.price_set.cached_micros &&
               a->u.price_set.cache_write_micros == b->u.price_set.cache_write_micros;
    case PROTO_CMD_KEY_CREATE:
        return proto_str_same(a->u.key_create.key_id, b->u.key_create.key_id) &&
               proto_str_same(a->u.key_create.hash, b->u.key_create.hash) &&
               proto_str_same(a->u.key_create.account, b->u.key_create.account) &&
               a->u.key_create.key_role == b->u.key_create.key_role;
    case PROTO_CMD_KEY_REVOKE:
        return proto_str_same(a->u.key_revoke.key_id, b->u.key_revoke.key_id);
    case PROTO_CMD_POLICY_SET:
        return proto_list_same(&a->u.policy_set.required_metadata,
                               &b->u.policy_set.required_metadata);
    case PROTO_CMD_BREAKER_SET: {
        const struct proto_breaker_set_args *x = &a->u.breaker_set, *y = &b->u.breaker_set;
        return proto_str_same(x->account, y->account) &&
               x->velocity_max_micros == y->velocity_max_micros &&
               x->velocity_window_ms == y->velocity_window_ms &&
               x->bedtime_start_min == y->bedtime_start_min &&
               x->bedtime_end_min == y->bedtime_end_min &&
               x->bedtime_factor_pct == y->bedtime_factor_pct &&
               x->bedtime_floor_micros == y->bedtime_floor_micros;
    }
    case PROTO_CMD_ALERT_SET:
        return proto_str_same(a->u.alert_set.account, b->u.alert_set.account) &&
               proto_str_same(a->u.alert_set.thresholds, b->u.alert_set.thresholds);
    case PROTO_CMD_EVENT_ACK:
        return a->u.event_ack.event_id == b->u.event_ack.event_id;
    case PROTO_CMD_RATE_LIMIT_SET:
        return proto_str_same(a->u.rate_limit_set.account, b->u.rate_limit_set.account) &&
               proto_str_same(a->u.rate_limit_set.meta_key, b->u.rate_limit_set.meta_key) &&
               proto_str_same(a->u.rate_limit_set.meta_value, b->u.rate_limit_set.meta_value) &&
               a->u.rate_limit_set.rpm == b->u.rate_limit_set.rpm &&
               a->u.rate_limit_set.tpm == b->u.rate_limit_set.tpm &&
               a->u.rate_limit_set.tph == b->u.rate_limit_set.tph &&
               a->u.rate_limit_set.tpd == b->u.rate_limit_set.tpd;
    case PROTO_CMD_APPROVAL_SET:
        return a->u.approval_set.above_micros == b->u.approval_set.above_micros;
    default:
        return false;
    }
}

static inline bool proto_cmd_same(const struct proto_cmd *a, const struct proto_cmd *b)
{
    return a->type == b->type && a->role == b->role && proto_str_same(a->key, b->key) &&
           proto_args_same(a->type, a, b);
}

static inline bool proto_result_same(const struct proto_result *a, const struct proto_result *b)
{
    return a->status == b->status && a->id == b->id && a->amount_micros == b->amount_micros &&
           a->remaining_micros == b->remaining_micros && a->expires_at_ms == b->expires_at_ms &&
           a->transfer_id == b->transfer_id && a->overrun_micros == b->overrun_micros &&
           a->returned_micros == b->returned_micros && strcmp(a->name, b->name) == 0 &&
           strcmp(a->message, b->message) == 0 && a->retry_after_ms == b->retry_after_ms;
}

#endif
