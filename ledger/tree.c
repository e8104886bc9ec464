/*
 * tree.c — the account tree in memory: the name index, path rules, and the
 * roll-ups that make hierarchical budgets cheap.
 *
 * Every account keeps `spent` (outflow of its subtree in its own period
 * window) and `reserved` (holds in its subtree).  A change at a leaf walks up
 * the path (at most PROTO_NAME_DEPTH_MAX accounts): outflow stops at the
 * first ancestor that also contains the credited account; holds pass through
 * grants transformed by the grant's hold, max(amount - spent, reserved).
 * tree_fit runs the same walk without writing, so a refusal changes nothing.
 */
#include <stdlib.h>

#include "ledger/internal.h"

static uint32_t tree_hash(const char *s, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t tree_find(const struct ledger *l, const char *name, uint32_t len)
{
    if (l->slot_count == 0)
        return -1;
    uint32_t mask = l->slot_count - 1;
    for (uint32_t h = tree_hash(name, len) & mask;; h = (h + 1) & mask) {
        int32_t i = l->slots[h];
        if (i < 0)
            return -1;
        const struct acct *a = &l->accts[i];
        if (a->name_len == len && memcmp(a->name, name, len) == 0)
            return i;
    }
}

int32_t tree_find_str(const struct ledger *l, struct proto_str name)
{
    return tree_find(l, name.ptr, name.len);
}

static void tree_slot_put(struct ledger *l, int32_t i)
{
    uint32_t mask = l->slot_count - 1;
    const struct acct *a = &l->accts[i];
    uint32_t h = tree_hash(a->name, a->name_len) & mask;
    while (l->slots[h] >= 0)
        h = (h + 1) & mask;
    l->slots[h] = i;
}

static int tree_grow(struct ledger *l)
{
    if (l->acct_count + 1 > l->acct_cap) {
        uint32_t cap = l->acct_cap ? l->acct_cap * 2 : 1024;
        struct acct *na = realloc(l->accts, cap * sizeof *na);
        int32_t *nd = realloc(l->dirty, cap * sizeof *nd);
        if (nd)
            l->dirty = nd;
        int32_t *nt = realloc(l->touched, cap * sizeof *nt);
        if (nt)
            l->touched = nt;
        struct tree_undo *nu = realloc(l->undo, cap * sizeof *nu);
        if (nu)
            l->undo = nu;
        if (na)
            l->accts = na;
        if (!na || !nd || !nt || !nu)
            return -1;
        l->acct_cap = cap;
    }
    /* Keep the load factor under one half. */
    if ((l->acct_count + 1) * 2 > l->slot_count) {
        uint32_t n = l->slot_count ? l->slot_count * 2 : 2048;
        int32_t *slots = malloc(n * sizeof *slots);
        if (!slots)
            return -1;
        free(l->slots);
        l->slots = slots;
        l->slot_count = n;
        memset(slots, 0xff, n * sizeof *slots);
        for (uint32_t i = 0; i < l->acct_count; i++)
            tree_slot_put(l, (int32_t)i);
    }
    return 0;
}

int32_t tree_add(struct ledger *l, const struct acct *a)
{
    if (tree_grow(l) != 0)
        return -1;
    char *name = malloc(a->name_len + 1);
    if (!name)
        return -1;
    memcpy(name, a->name, a->name_len);
    name[a->name_len] = '\0';
    int32_t i = (int32_t)l->acct_count++;
    l->accts[i] = *a;
    l->accts[i].name = name;
    l->accts[i].dirty = false;
    l->accts[i].touched = false;
    tree_slot_put(l, i);
    return i;
}

void tree_reset(struct ledger *l)
{
    for (uint32_t i = 0; i < l->acct_count; i++)
        free(l->accts[i].name);
    l->acct_count = 0;
    l->dirty_count = 0;
    l->touched_count = 0;
    l->undo_count = 0;
    l->entry_acct_count = 0;
    if (l->slots)
        memset(l->slots, 0xff, l->slot_count * sizeof *l->slots);
}

void tree_touch(struct ledger *l, int32_t i)
{
    struct acct *a = &l->accts[i];
    if (a->touched)
        return;
    /* Accounts created in this entry vanish whole on rollback: no undo.
     * The undo log has room for every account (tree_grow), so this never
     * allocates. */
    if ((uint32_t)i < l->entry_acct_count) {
        assert(l->undo_count < l->acct_cap);
        l->undo[l->undo_count].index = i;
        l->undo[l->undo_count].saved = *a;
        l->undo_count++;
    }
    a->touched = true;
    l->touched[l->touched_count++] = i;
    if (!a->dirty) {
        a->dirty = true;
        l->dirty[l->dirty_count++] = i;
    }
}

void tree_entry_begin(struct ledger *l)
{
    assert(l->undo_count == 0 && l->touched_count == 0);
    l->entry_acct_count = l->acct_count;
    l->entry_dirty_count = l->dirty_count;
}

void tree_entry_end(struct ledger *l)
{
    for (uint32_t k = 0; k < l->touched_count; k++)
        l->accts[l->touched[k]].touched = false;
    l->touched_count = 0;
    l->undo_count = 0;
}

void tree_entry_undo(struct ledger *l)
{
    for (uint32_t k = l->undo_count; k-- > 0;) {
        struct acct *a = &l->accts[l->undo[k].index];
        char *name = a->name;
        *a = l->undo[k].saved;
        assert(a->name == name);
    }
    l->undo_count = 0;
    for (uint32_t i = l->entry_acct_count; i < l->acct_count; i++)
        free(l->accts[i].name);
    bool removed = l->acct_count != l->entry_acct_count;
    l->acct_count = l->entry_acct_count;
    l->dirty_count = l->entry_dirty_count;
    for (uint32_t k = 0; k < l->touched_count; k++)
        if ((uint32_t)l->touched[k] < l->acct_count)
            l->accts[l->touched[k]].touched = false;
    l->touched_count = 0;
    if (removed) {
        memset(l->slots, 0xff, l->slot_count * sizeof *l->slots);
        for (uint32_t i = 0; i < l->acct_count; i++)
            tree_slot_put(l, (int32_t)i);
    }
}

bool tree_is_ancestor_or_self(const struct ledger *l, int32_t anc, int32_t i)
{
    if (anc < 0 || i < 0)
        return false;
    while (i >= 0 && l->accts[i].depth >= l->accts[anc].depth) {
        if (i == anc)
            return true;
        i = l->accts[i].parent;
    }
    return false;
}

static bool tree_segment_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool tree_name_valid(struct proto_str name, char *msg, size_t cap)
{
    if (name.len == 0) {
        snprintf(msg, cap, "account name is empty");
        return false;
    }
    if (name.len > PROTO_NAME_MAX) {
        snprintf(msg, cap, "account name of %u bytes exceeds %d", name.len, PROTO_NAME_MAX);
        return false;
    }
    uint32_t seg_start = 0, segments = 1;
    for (uint32_t i = 0; i <= name.len; i++) {
        if (i < name.len && name.ptr[i] != '/') {
            if (!tree_segment_char_ok(name.ptr[i])) {
                snprintf(msg, cap, "account name \"%.*s\": character 0x%02x is not allowed"
                         " (use A-Z a-z 0-9 . _ -)", (int)name.len, name.ptr,
                         (unsigned char)name.ptr[i]);
                return false;
            }
            continue;
        }
        uint32_t n = i - seg_start;
        const char *seg = name.ptr + seg_start;
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            snprintf(msg, cap, "account name \"%.*s\": empty, \".\" or \"..\" segment",
                     (int)name.len, name.ptr);
            return false;
        }
        if (n > PROTO_SEGMENT_MAX) {
            snprintf(msg, cap, "account name \"%.*s\": a segment of %u bytes exceeds %d",
                     (int)name.len, name.ptr, n, PROTO_SEGMENT_MAX);
            return false;
        }
        if (i < name.len && ++segments > PROTO_NAME_DEPTH_MAX) {
            snprintf(msg, cap, "account name \"%.*s\": deeper than %d segments",
                     (int)name.len, name.ptr, PROTO_NAME_DEPTH_MAX);
            return false;
        }
        seg_start = i + 1;
    }
    return true;
}

int64_t tree_spent_at(const struct acct *a, int64_t now_ms)
{
    return now_ms >= a->period_end_ms ? 0 : a->spent_micros;
}

int64_t tree_contrib(const struct acct *a, int64_t spent, int64_t reserved)
{
    if (a->is_grant && a->grant_open) {
        /* cap - spent cannot overflow: cap <= 1e15 and spent >= 0. */
        int64_t hold = a->cap_micros - spent;
        return hold > reserved ? hold : reserved;
    }
    return reserved;
}

int64_t tree_available(const struct ledger *l, int32_t i, int64_t now_ms)
{
    int64_t best = PROTO_UNLIMITED;
    for (; i >= 0; i = l->accts[i].parent) {
        const struct acct *a = &l->accts[i];
        if (a->cap_micros < 0)
            continue;
        int64_t used;
        int64_t room;
        if (__builtin_add_overflow(tree_spent_at(a, now_ms), a->reserved_micros, &used) ||
            __builtin_sub_overflow(a->cap_micros, used, &room) || room < 0)
            room = 0;
        if (room < best)
            best = room;
    }
    return best;
}

/* Is i on the credit side's path (so outflow to `credit` is internal)? */
static bool tree_contains_credit(const struct ledger *l, int32_t i, int32_t credit)
{
    return credit >= 0 && tree_is_ancestor_or_self(l, i, credit);
}

static int tree_check_status(const struct ledger *l, int32_t i, struct proto_result *res)
{
    for (; i >= 0; i = l->accts[i].parent) {
        const struct acct *a = &l->accts[i];
        if (a->is_grant && (!a->grant_open || l->now_ms >= a->deadline_ms)) {
            ledger_set_name(res, a);
            return ledger_refuse(res, PROTO_ERR_GRANT_EXPIRED, "grant account \"%s\" is %s",
                                 a->name, a->grant_open ? "past its deadline" : "closed");
        }
        if (a->status == LEDGER_STATUS_CLOSED) {
            ledger_set_name(res, a);
            return ledger_refuse(res, PROTO_ERR_CLOSED, "account \"%s\" is closed", a->name);
        }
        if (a->status == LEDGER_STATUS_FROZEN) {
            ledger_set_name(res, a);
            return breaker_refuse_frozen(l, i, res); /* names the reason (breaker.c) */
        }
    }
    return PROTO_OK;
}

int tree_fit(const struct ledger *l, int32_t i, int32_t credit, int64_t ds,
             int64_t dr, unsigned checks, struct proto_result *res)
{
    if (checks & TREE_CHECK_STATUS) {
        int st = tree_check_status(l, i, res);
        if (st != PROTO_OK)
            return st;
    }
    for (; i >= 0 && (ds != 0 || dr != 0); i = l->accts[i].parent) {
        const struct acct *a = &l->accts[i];
        if (ds != 0 && tree_contains_credit(l, i, credit))
            ds = 0;
        int64_t spent = tree_spent_at(a, l->now_ms);
        int64_t new_spent, new_reserved, used, new_used;
        if (__builtin_add_overflow(spent, ds, &new_spent) ||
            __builtin_add_overflow(a->reserved_micros, dr, &new_reserved) ||
            __builtin_add_overflow(spent, a->reserved_micros, &used) ||
            __builtin_add_overflow(new_spent, new_reserved, &new_used)) {
            ledger_set_name(res, a);
            return ledger_refuse(res, PROTO_ERR_INVALID,
                                 "amount_micros overflows the balance of account \"%s\"",
                                 a->name);
        }
        if ((checks & TREE_CHECK_CAPS) && a->cap_micros >= 0 && new_used > used &&
            new_used > a->cap_micros) {
            int64_t room = a->cap_micros - used;
            res->remaining_micros = room > 0 ? room : 0;
            ledger_set_name(res, a);
            return ledger_refuse(res, PROTO_ERR_BUDGET_EXCEEDED,
                                 "account \"%s\" has %lld micros left of its cap, %lld needed",
                                 a->name, (long long)res->remaining_micros,
                                 (long long)(new_used - used));
        }
        dr = tree_contrib(a, new_spent, new_reserved) - tree_contrib(a, spent, a->reserved_micros);
    }
    return PROTO_OK;
}

/* Start a new window when now has passed the current one. */
static void tree_roll_period(struct ledger *l, int32_t i)
{
    struct acct *a = &l->accts[i];
    if (l->now_ms < a->period_end_ms)
        return;
    tree_touch(l, i);
    period_window(a->period, a->tz_offset_min, l->now_ms, &a->period_start_ms,
                  &a->period_end_ms);
    a->spent_micros = 0;
}

void tree_apply(struct ledger *l, int32_t i, int32_t credit, int64_t ds, int64_t dr)
{
    for (; i >= 0 && (ds != 0 || dr != 0); i = l->accts[i].parent) {
        struct acct *a = &l->accts[i];
        if (ds != 0 && tree_contains_credit(l, i, credit))
            ds = 0;
        tree_roll_period(l, i);
        tree_touch(l, i);
        int64_t old_contrib = tree_contrib(a, a->spent_micros, a->reserved_micros);
        a->spent_micros += ds;
        a->reserved_micros += dr;
        assert(a->spent_micros >= 0);
        assert(a->reserved_micros >= 0);
        dr = tree_contrib(a, a->spent_micros, a->reserved_micros) - old_contrib;
    }
}

struct proto_str tree_payee_default(struct proto_str name)
{
    static const char unknown[] = "vendor/unknown";
    if (name.len == 0)
        name = (struct proto_str){unknown, sizeof unknown - 1};
    return name;
}

bool tree_is_vendor_name(struct proto_str name)
{
    return name.len > 7 && memcmp(name.ptr, "vendor/", 7) == 0 &&
           memchr(name.ptr + 7, '/', name.len - 7) == NULL;
}

int32_t tree_payee_check(const struct ledger *l, struct proto_str name, const char *field,
                         bool is_closed_ok, struct proto_result *res)
{
    int32_t i = tree_find_str(l, name);
    if (i >= 0) {
        if (!is_closed_ok && l->accts[i].status == LEDGER_STATUS_CLOSED) {
            ledger_set_name(res, &l->accts[i]);
            ledger_refuse(res, PROTO_ERR_CLOSED, "%s account \"%s\" is closed", field,
                          l->accts[i].name);
            return -1;
        }
        return i;
    }
    char msg[PROTO_MESSAGE_MAX + 1];
    if (!tree_name_valid(name, msg, sizeof msg)) {
        ledger_refuse(res, PROTO_ERR_INVALID, "%s: %s", field, msg);
        return -1;
    }
    if (!tree_is_vendor_name(name)) {
        ledger_refuse(res, PROTO_ERR_NOT_FOUND, "%s account \"%.*s\" does not exist", field,
                      (int)name.len, name.ptr);
        return -1;
    }
    return -2; /* a vendor account, created on use */
}
