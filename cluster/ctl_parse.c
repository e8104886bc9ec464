/*
 * ctl_parse.c — purserctl's command line: splitting argv into options and
 * positional words, and turning values into what the ledger takes (money in
 * micros, durations in ms, UTC offsets in minutes, tag maps, lists, ids).
 *
 * Pure functions over strings: nothing here talks to the cluster or prints,
 * so tests/unit/test_ctl.c links this file alone.  Every refusal writes one
 * message naming the argument and what was wrong; purserctl prints it and
 * exits 2.
 */
#include "cluster/ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/money.h"

struct opt_spec {
    const char *name; /* without the dashes */
    bool has_value;
};

static const struct opt_spec opt_specs[CTL_OPT_COUNT] = {
    [CTL_OPT_CLUSTER] = {"cluster", true},
    [CTL_OPT_AUTH] = {"auth", true},
    [CTL_OPT_JSON] = {"json", false},
    [CTL_OPT_KEY] = {"key", true},
    [CTL_OPT_STALE] = {"stale", false},
    [CTL_OPT_VERBOSE] = {"verbose", false},
    [CTL_OPT_HELP] = {"help", false},
    [CTL_OPT_VERSION] = {"version", false},
    [CTL_OPT_TIMEOUT] = {"timeout", true},
    [CTL_OPT_CAP] = {"cap", true},
    [CTL_OPT_PERIOD] = {"period", true},
    [CTL_OPT_TZ] = {"tz", true},
    [CTL_OPT_TAG] = {"tag", true},
    [CTL_OPT_TTL] = {"ttl", true},
    [CTL_OPT_ROLE] = {"role", true},
    [CTL_OPT_INPUT] = {"input", true},
    [CTL_OPT_OUTPUT] = {"output", true},
    [CTL_OPT_CACHED] = {"cached", true},
    [CTL_OPT_CACHE_WRITE] = {"cache-write", true},
    [CTL_OPT_KIND] = {"kind", true},
    [CTL_OPT_PAYEE] = {"payee", true},
    [CTL_OPT_WORKFLOW] = {"workflow", true},
    [CTL_OPT_REASON] = {"reason", true},
    [CTL_OPT_ON_EXPIRE] = {"on-expire", true},
    [CTL_OPT_MONTH] = {"month", true},
    [CTL_OPT_GROUP_BY] = {"group-by", true},
    [CTL_OPT_FORMAT] = {"format", true},
    [CTL_OPT_OUT] = {"out", true},
    [CTL_OPT_VIEW] = {"view", true},
    [CTL_OPT_VELOCITY] = {"velocity", true},
    [CTL_OPT_BEDTIME] = {"bedtime", true},
    [CTL_OPT_BEDTIME_FACTOR] = {"bedtime-factor", true},
    [CTL_OPT_BEDTIME_FLOOR] = {"bedtime-floor", true},
    [CTL_OPT_PENDING] = {"pending", false},
    [CTL_OPT_TLS_CA] = {"tls-ca", true},
    [CTL_OPT_TLS_CERT] = {"tls-cert", true},
    [CTL_OPT_TLS_KEY] = {"tls-key", true},
    [CTL_OPT_META] = {"meta", true},
    [CTL_OPT_RPM] = {"rpm", true},
    [CTL_OPT_TPM] = {"tpm", true},
    [CTL_OPT_TPH] = {"tph", true},
    [CTL_OPT_TPD] = {"tpd", true},
    [CTL_OPT_MODEL] = {"model", true},
};
_Static_assert(CTL_OPT_COUNT <= 64, "option bits fit uint64_t");

static int fail(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

const char *ctl_opt_name(enum ctl_opt o)
{
    if ((int)o < 0 || o >= CTL_OPT_COUNT)
        return "?";
    return opt_specs[o].name;
}

/* The option named by `name` (n bytes), or -1. */
static int opt_lookup(const char *name, size_t n)
{
    for (int i = 0; i < CTL_OPT_COUNT; i++) {
        if (strlen(opt_specs[i].name) == n && memcmp(opt_specs[i].name, name, n) == 0)
            return i;
    }
    if (n == 1 && name[0] == 'h')
        return CTL_OPT_HELP;
    if (n == 1 && name[0] == 'v')
        return CTL_OPT_VERBOSE;
    return -1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Is this word an option (rather than a positional such as "-5")? */
static bool word_is_option(const char *w)
{
    return w[0] == '-' && w[1] != '\0' && !is_digit(w[1]) && w[1] != '.';
}

static int args_store(struct ctl_args *a, int o, const char *value, char *err, size_t cap)
{
    if (o == CTL_OPT_TAG) {
        if (a->tag_count == PROTO_MAP_MAX)
            return fail(err, cap, "more than %d --tag options", PROTO_MAP_MAX);
        a->tags[a->tag_count++] = value;
    } else if (a->value[o] != NULL && opt_specs[o].has_value) {
        return fail(err, cap, "--%s given twice", opt_specs[o].name);
    }
    a->value[o] = value;
    a->seen |= CTL_OPT_BIT(o);
    return 0;
}

int ctl_args_parse(int argc, char **argv, struct ctl_args *a, char *err, size_t cap)
{
    memset(a, 0, sizeof *a);
    bool is_options_over = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (is_options_over || !word_is_option(w)) {
            if (a->positional_count == CTL_POSITIONAL_MAX)
                return fail(err, cap, "too many arguments (at most %d)", CTL_POSITIONAL_MAX);
            a->positional[a->positional_count++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            is_options_over = true;
            continue;
        }
        const char *name = w + (w[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int o = opt_lookup(name, n);
        if (o < 0)
            return fail(err, cap, "unknown option \"%s\"", w);
        const char *value = "";
        if (opt_specs[o].has_value) {
            if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return fail(err, cap, "--%s needs a value", opt_specs[o].name);
            }
        } else if (eq != NULL) {
            return fail(err, cap, "--%s takes no value", opt_specs[o].name);
        }
        if (args_store(a, o, value, err, cap) != 0)
            return -1;
    }
    return 0;
}

int ctl_args_check(const struct ctl_args *a, uint64_t allowed, char *err, size_t cap)
{
    for (int o = 0; o < CTL_OPT_COUNT; o++) {
        if ((a->seen & CTL_OPT_BIT(o)) && !(allowed & CTL_OPT_BIT(o)))
            return fail(err, cap, "--%s does not apply to this command", opt_specs[o].name);
    }
    return 0;
}

int ctl_money_parse(const char *s, const char *what, bool is_positive, int64_t *micros,
                    char *err, size_t cap)
{
    int64_t v;
    if (s == NULL || money_parse_usd(s, &v) != 0)
        return fail(err, cap, "%s \"%s\" is not a USD amount (digits, at most %d decimals)",
                    what, s != NULL ? s : "", 6);
    if (v < 0)
        return fail(err, cap, "%s \"%s\" is negative", what, s);
    if (is_positive && v == 0)
        return fail(err, cap, "%s must be more than 0", what);
    if (v > PROTO_AMOUNT_MAX)
        return fail(err, cap, "%s \"%s\" is above the 1000000000 USD limit", what, s);
    *micros = v;
    return 0;
}

int ctl_cap_parse(const char *s, int64_t *micros, char *err, size_t cap)
{
    if (s != NULL && (strcmp(s, "none") == 0 || strcmp(s, "unlimited") == 0)) {
        *micros = PROTO_CAP_NONE;
        return 0;
    }
    return ctl_money_parse(s, "--cap", false, micros, err, cap);
}

struct duration_unit {
    const char *suffix;
    int64_t ms;
};

/* Longer suffixes first, so "ms" wins over "m". */
static const struct duration_unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
};

int ctl_duration_parse(const char *s, const char *what, int64_t *ms, char *err, size_t cap)
{
    if (s == NULL || *s == '\0')
        return fail(err, cap, "%s is empty (use e.g. 500ms, 60s, 30m, 2h)", what);
    int64_t total = 0;
    const char *p = s;
    while (*p != '\0') {
        if (!is_digit(*p))
            return fail(err, cap, "%s \"%s\" is not a duration (use e.g. 500ms, 60s, 30m, 2h)",
                        what, s);
        int64_t n = 0;
        while (is_digit(*p)) {
            n = n * 10 + (*p - '0');
            if (n > CTL_DURATION_MAX_MS)
                return fail(err, cap, "%s \"%s\" is too long", what, s);
            p++;
        }
        const struct duration_unit *u = NULL;
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
            size_t len = strlen(duration_units[i].suffix);
            if (strncmp(p, duration_units[i].suffix, len) == 0) {
                u = &duration_units[i];
                p += len;
                break;
            }
        }
        if (u == NULL)
            return fail(err, cap, "%s \"%s\" needs a unit: ms, s, m, h or d", what, s);
        if (n > (CTL_DURATION_MAX_MS - total) / u->ms)
            return fail(err, cap, "%s \"%s\" is too long", what, s);
        total += n * u->ms;
    }
    if (total <= 0)
        return fail(err, cap, "%s must be more than 0", what);
    *ms = total;
    return 0;
}

/* Exactly two digits at p -> 0..99, or -1. */
static int two_digits(const char *p)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

int ctl_tz_parse(const char *s, int64_t *minutes, char *err, size_t cap)
{
    if (s != NULL && (strcmp(s, "Z") == 0 || strcmp(s, "UTC") == 0)) {
        *minutes = 0;
        return 0;
    }
    if (s == NULL || (s[0] != '+' && s[0] != '-'))
        return fail(err, cap, "--tz \"%s\" is not a UTC offset (use +HH:MM or -HH:MM)",
                    s != NULL ? s : "");
    int hh = two_digits(s + 1);
    int mm = 0;
    bool is_well_formed = hh >= 0;
    if (is_well_formed && s[3] == ':') {
        mm = two_digits(s + 4);
        is_well_formed = mm >= 0 && s[6] == '\0';
    } else if (is_well_formed) {
        is_well_formed = s[3] == '\0';
    }
    if (!is_well_formed || mm >= 60)
        return fail(err, cap, "--tz \"%s\" is not a UTC offset (use +HH:MM or -HH:MM)", s);
    int64_t v = hh * 60 + mm;
    if (v > PROTO_TZ_MAX_MIN)
        return fail(err, cap, "--tz \"%s\" is beyond +/-14:00", s);
    *minutes = s[0] == '-' ? -v : v;
    return 0;
}

int ctl_tag_parse(const char *s, struct proto_map *m, char *err, size_t cap)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL)
        return fail(err, cap, "--tag \"%s\" is not key=value", s);
    size_t klen = (size_t)(eq - s);
    size_t vlen = strlen(eq + 1);
    if (klen == 0)
        return fail(err, cap, "--tag \"%s\" has an empty key", s);
    if (klen > PROTO_MAP_KEY_MAX)
        return fail(err, cap, "--tag \"%s\": key longer than %d bytes", s, PROTO_MAP_KEY_MAX);
    if (vlen > PROTO_MAP_VALUE_MAX)
        return fail(err, cap, "--tag \"%.*s=...\": value longer than %d bytes", (int)klen, s,
                    PROTO_MAP_VALUE_MAX);
    if (m->count == PROTO_MAP_MAX)
        return fail(err, cap, "more than %d tags", PROTO_MAP_MAX);
    for (uint32_t i = 0; i < m->count; i++) {
        if (m->kv[i].key.len == klen && memcmp(m->kv[i].key.ptr, s, klen) == 0)
            return fail(err, cap, "--tag key \"%.*s\" given twice", (int)klen, s);
    }
    m->kv[m->count].key = (struct proto_str){s, (uint32_t)klen};
    m->kv[m->count].value = (struct proto_str){eq + 1, (uint32_t)vlen};
    m->count++;
    return 0;
}

int ctl_tags_parse(const struct ctl_args *a, struct proto_map *m, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    for (uint32_t i = 0; i < a->tag_count; i++) {
        if (ctl_tag_parse(a->tags[i], m, err, cap) != 0)
            return -1;
    }
    return 0;
}

int ctl_list_parse(const char *s, struct proto_list *l, char *err, size_t cap)
{
    memset(l, 0, sizeof *l);
    if (*s == '\0')
        return 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0)
            return fail(err, cap, "list \"%s\" has an empty item", s);
        if (n > PROTO_MAP_KEY_MAX)
            return fail(err, cap, "list item \"%.*s\" is longer than %d bytes", (int)n, p,
                        PROTO_MAP_KEY_MAX);
        if (l->count == PROTO_LIST_MAX)
            return fail(err, cap, "list \"%s\" has more than %d items", s, PROTO_LIST_MAX);
        l->item[l->count++] = (struct proto_str){p, (uint32_t)n};
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int ctl_id_parse(const char *s, const char *what, uint64_t *id, char *err, size_t cap)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return fail(err, cap, "%s is missing", what);
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_digit(*p) || v > (UINT64_MAX - 9) / 10)
            return fail(err, cap, "%s \"%s\" is not a number", what, s);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0)
        return fail(err, cap, "%s must be more than 0", what);
    *id = v;
    return 0;
}

int ctl_month_parse(const char *s, char *err, size_t cap)
{
    bool is_ok = strlen(s) == 7 && s[4] == '-';
    for (int i = 0; is_ok && i < 7; i++) {
        if (i != 4 && !is_digit(s[i]))
            is_ok = false;
    }
    int mm = is_ok ? two_digits(s + 5) : 0;
    if (!is_ok || mm < 1 || mm > 12)
        return fail(err, cap, "month \"%s\" is not YYYY-MM", s);
    return 0;
}

int ctl_period_parse(const char *s, int64_t *period, char *err, size_t cap)
{
    int p = proto_period_parse(s);
    if (p < 0)
        return fail(err, cap, "--period \"%s\" is not day, week, month or none", s);
    *period = p;
    return 0;
}
