/*
 * ctl_alerts.c — purserctl's alerting commands: `breaker set|clear|show`,
 * `alert set` and `events` (the outbox the leader delivers to the webhook).
 *
 * The values people type ("50/1h", "22:00-07:00", a factor "3") become the
 * ledger's integers here (micros, ms, minutes of the day, percent); the
 * ledger validates them again and its refusal is printed as for every other
 * command.
 */
#include "cluster/ctl.h"

#include <stdlib.h>
#include <string.h>

#define ALERTS_DETAIL_MAX 512 /* an event's detail JSON (LEDGER_EVENT_DETAIL_MAX) */
#define ALERTS_NIGHTS 7        /* the bedtime baseline (LEDGER_BEDTIME_NIGHTS) */

static int alerts_usage(const char *err)
{
    ctl_errorf("%s", err);
    return CTL_EXIT_USAGE;
}

/* "USD/DURATION" -> micros and ms. */
static int velocity_parse(const char *s, int64_t *micros, int64_t *window_ms, char *err,
                          size_t cap)
{
    const char *slash = strchr(s, '/');
    char money[64];
    if (!slash || (size_t)(slash - s) >= sizeof money) {
        snprintf(err, cap, "--velocity \"%s\" is not USD/DURATION (e.g. 50/1h)", s);
        return -1;
    }
    memcpy(money, s, (size_t)(slash - s));
    money[slash - s] = '\0';
    if (ctl_money_parse(money, "--velocity amount", true, micros, err, cap) != 0)
        return -1;
    return ctl_duration_parse(slash + 1, "--velocity window", window_ms, err, cap);
}

/* "HH:MM" -> minutes of the day. */
static int clock_parse(const char *s, size_t len, int64_t *min)
{
    if (len != 5 || s[2] != ':')
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return -1;
    *min = h * 60 + m;
    return 0;
}

/* "HH:MM-HH:MM" -> start and end minutes. */
static int bedtime_parse(const char *s, int64_t *start, int64_t *end, char *err, size_t cap)
{
    const char *dash = strchr(s, '-');
    if (!dash || clock_parse(s, (size_t)(dash - s), start) != 0 ||
        clock_parse(dash + 1, strlen(dash + 1), end) != 0 || *start == *end) {
        snprintf(err, cap, "--bedtime \"%s\" is not two different times HH:MM-HH:MM "
                 "(e.g. 22:00-07:00)", s);
        return -1;
    }
    return 0;
}

/* A factor like "3" or "2.5" -> percent (1 to 1000 times). */
static int factor_parse(const char *s, int64_t *pct, char *err, size_t cap)
{
    int64_t micros;
    if (ctl_money_parse(s, "--bedtime-factor", true, &micros, err, cap) != 0)
        return -1;
    if (micros % 10000 != 0 || micros < 1000000 || micros > 1000LL * 1000000) {
        snprintf(err, cap, "--bedtime-factor \"%s\" is not 1 to 1000 with at most 2 decimals", s);
        return -1;
    }
    *pct = micros / 10000;
    return 0;
}

static int alerts_done_json(struct ctl *ctl, const struct proto_result *res, const char *status)
{
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "account");
    ctl_json_cstr(&j, ctl->pos[0]);
    ctl_json_key(&j, "status");
    ctl_json_cstr(&j, status);
    ctl_json_key(&j, "id");
    ctl_json_uint(&j, res->id);
    ctl_json_object_end(&j);
    int rc = ctl_json_print(&j);
    proto_buf_free(&buf);
    return rc;
}

static int breaker_apply(struct ctl *ctl, struct proto_cmd *cmd, const char *what,
                         const char *done)
{
    struct proto_result res;
    cmd->type = PROTO_CMD_BREAKER_SET;
    cmd->u.breaker_set.account = proto_str_c(ctl->pos[0]);
    int rc = ctl_apply(ctl, what, cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return alerts_done_json(ctl, &res, done);
    printf("breaker of %s %s\n", ctl->pos[0], done);
    return CTL_EXIT_OK;
}

int ctl_breaker_set(struct ctl *ctl)
{
    const char *const *v = ctl->args->value;
    char err[CTL_ERR_MAX];
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    struct proto_breaker_set_args *b = &cmd.u.breaker_set;
    if (!v[CTL_OPT_VELOCITY] && !v[CTL_OPT_BEDTIME])
        return alerts_usage("breaker set: give --velocity USD/DURATION and/or --bedtime "
                            "HH:MM-HH:MM (breaker clear removes it)");
    if (v[CTL_OPT_VELOCITY] && velocity_parse(v[CTL_OPT_VELOCITY], &b->velocity_max_micros,
                                              &b->velocity_window_ms, err, sizeof err) != 0)
        return alerts_usage(err);
    if (!v[CTL_OPT_BEDTIME] && (v[CTL_OPT_BEDTIME_FACTOR] || v[CTL_OPT_BEDTIME_FLOOR]))
        return alerts_usage("breaker set: --bedtime-factor and --bedtime-floor need --bedtime");
    if (v[CTL_OPT_BEDTIME]) {
        b->bedtime_factor_pct = 300; /* 3x the usual by default */
        if (bedtime_parse(v[CTL_OPT_BEDTIME], &b->bedtime_start_min, &b->bedtime_end_min, err,
                          sizeof err) != 0 ||
            (v[CTL_OPT_BEDTIME_FACTOR] &&
             factor_parse(v[CTL_OPT_BEDTIME_FACTOR], &b->bedtime_factor_pct, err, sizeof err) !=
                 0) ||
            (v[CTL_OPT_BEDTIME_FLOOR] &&
             ctl_money_parse(v[CTL_OPT_BEDTIME_FLOOR], "--bedtime-floor", false,
                             &b->bedtime_floor_micros, err, sizeof err) != 0))
            return alerts_usage(err);
    }
    return breaker_apply(ctl, &cmd, "breaker set", "set");
}

int ctl_breaker_clear(struct ctl *ctl)
{
    struct proto_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    return breaker_apply(ctl, &cmd, "breaker clear", "cleared");
}

static const char *money_or_off(const uint8_t *m, size_t len, const char *key, char *buf)
{
    int64_t v = 0;
    ctl_mp_int(m, len, key, &v);
    return ctl_money_text(v, buf);
}

int ctl_breaker_show(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    char what[PROTO_NAME_MAX + 32];
    snprintf(what, sizeof what, "breaker of \"%s\"", ctl->pos[0]);
    proto_buf_init(&answer);
    int rc = ctl_read_answer(ctl, what, &answer, "breaker", 1, ctl->pos, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    const uint8_t *m = (const uint8_t *)answer.data;
    size_t len = answer.len;
    char status[16] = "", reason[PROTO_TEXT_MAX + 1] = "", thresholds[PROTO_TEXT_MAX + 1] = "";
    char a[CTL_MONEY_CAP], b[CTL_MONEY_CAP], c[CTL_MONEY_CAP];
    bool is_set = false, is_quiet = false;
    int64_t window = 0, vmax = 0, start = 0, end = 0, factor = 0;
    ctl_mp_str(m, len, "status", status, sizeof status);
    ctl_mp_str(m, len, "frozen_reason", reason, sizeof reason);
    ctl_mp_str(m, len, "thresholds", thresholds, sizeof thresholds);
    ctl_mp_bool(m, len, "is_set", &is_set);
    ctl_mp_bool(m, len, "is_quiet_now", &is_quiet);
    ctl_mp_int(m, len, "velocity_window_ms", &window);
    ctl_mp_int(m, len, "velocity_max_micros", &vmax);
    ctl_mp_int(m, len, "bedtime_start_min", &start);
    ctl_mp_int(m, len, "bedtime_end_min", &end);
    ctl_mp_int(m, len, "bedtime_factor_pct", &factor);
    printf("account     %s\n", ctl->pos[0]);
    printf("status      %s%s%s%s\n", status, reason[0] ? " (reason: " : "", reason,
           reason[0] ? ")" : "");
    printf("thresholds  %s\n", thresholds[0] ? thresholds : "none");
    if (!is_set || vmax == 0)
        printf("velocity    off\n");
    else
        printf("velocity    %s per %lld s, %s in the current window\n",
               money_or_off(m, len, "velocity_max_micros", a), (long long)(window / 1000),
               money_or_off(m, len, "velocity_spent_micros", b));
    if (!is_set || factor == 0) {
        printf("bedtime     off\n");
    } else {
        printf("bedtime     %02lld:%02lld-%02lld:%02lld, %lld.%02lldx the %d-night average, "
               "floor %s\n", (long long)(start / 60), (long long)(start % 60),
               (long long)(end / 60), (long long)(end % 60), (long long)(factor / 100),
               (long long)(factor % 100), ALERTS_NIGHTS,
               money_or_off(m, len, "bedtime_floor_micros", a));
        printf("            %s: %s spent, limit %s (average %s)\n",
               is_quiet ? "tonight" : "next quiet hours",
               money_or_off(m, len, "bedtime_spent_micros", b),
               money_or_off(m, len, "bedtime_limit_micros", c),
               money_or_off(m, len, "bedtime_baseline_micros", a));
    }
    proto_buf_free(&answer);
    return CTL_EXIT_OK;
}

int ctl_alert_set(struct ctl *ctl)
{
    struct proto_cmd cmd;
    struct proto_result res;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = PROTO_CMD_ALERT_SET;
    cmd.u.alert_set.account = proto_str_c(ctl->pos[0]);
    /* "default" goes back to the default: the empty list on the wire. */
    const char *t = strcmp(ctl->pos[1], "default") == 0 ? "" : ctl->pos[1];
    if (strlen(t) > PROTO_TEXT_MAX)
        return alerts_usage("alert set: the threshold list is too long");
    cmd.u.alert_set.thresholds = proto_str_c(t);
    int rc = ctl_apply(ctl, "alert set", &cmd, &res);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->is_json)
        return alerts_done_json(ctl, &res, "set");
    printf("thresholds of %s set to %s\n", ctl->pos[0], ctl->pos[1]);
    return CTL_EXIT_OK;
}

int ctl_events(struct ctl *ctl)
{
    struct proto_buf answer;
    bool is_done;
    proto_buf_init(&answer);
    /* The outbox holds only pending events: --pending changes nothing. */
    int rc = ctl_read_answer(ctl, "events", &answer, "events", 0, NULL, &is_done);
    if (is_done) {
        proto_buf_free(&answer);
        return rc;
    }
    const uint8_t *m = (const uint8_t *)answer.data;
    size_t len = answer.len;
    static const char *const headers[] = {"ID", "TIME", "TYPE", "ACCOUNT", "DETAIL"};
    struct ctl_table t;
    ctl_table_init(&t, 5, headers);
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    if (ctl_mp_array(m, len, "events", &it) == 0) {
        while (ctl_mp_next(&it, &e, &elen)) {
            int64_t id = 0, ts = 0;
            char idt[24], when[CTL_TIME_CAP], type[32], account[PROTO_NAME_MAX + 1],
                detail[ALERTS_DETAIL_MAX];
            ctl_mp_int(e, elen, "id", &id);
            ctl_mp_int(e, elen, "ts_ms", &ts);
            ctl_mp_str(e, elen, "type", type, sizeof type);
            ctl_mp_str(e, elen, "account", account, sizeof account);
            ctl_mp_str(e, elen, "detail", detail, sizeof detail);
            snprintf(idt, sizeof idt, "%lld", (long long)id);
            const char *cells[] = {idt, ctl_time_text(ts, when), type, account, detail};
            ctl_table_row(&t, cells);
        }
    }
    rc = ctl_table_print(&t, stdout);
    int64_t pending = 0, dropped = 0;
    ctl_mp_int(m, len, "pending_count", &pending);
    ctl_mp_int(m, len, "dropped_count", &dropped);
    printf("%lld pending; %lld dropped undelivered because the outbox was full\n",
           (long long)pending, (long long)dropped);
    proto_buf_free(&answer);
    return rc;
}
