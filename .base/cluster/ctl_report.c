/*
 * ctl_report.c — `purserctl report chargeback|spend|trial-balance|transfers
 * --month YYYY-MM`: month-end reports for finance, in five formats.
 *
 * The rows come from the `report` read query (docs/rpc.md), page by page,
 * as arrays under `columns`; this file only lays them out.  A report is a
 * list of *views* (chargeback: by_account and by_cost_center; the others
 * one view each), each a run of rows closed by a total row from the ledger:
 *
 *   table  aligned columns, exact decimals, a TOTAL line per view;
 *   csv    RFC 4180 (CRLF lines; fields with , " CR LF quoted, quotes
 *          doubled): money as exact decimals and as *_micros integers; one
 *          view (--view, default the first), data rows only — every row is
 *          a fact, so a column sums to the total;
 *   json   {"report", "month", "group_by"?, "views": [{"view", "rows":
 *          [objects], "total": object}]}, money as decimal strings and
 *          *_micros integers;
 *   xlsx   one sheet per view with a header, the rows and a TOTAL row;
 *          money as a currency-formatted number of dollars (the one place a
 *          double is allowed, for the cell only) next to the exact *_micros
 *          integer column;
 *   focus  FOCUS 1.0 CSV (FinOps Open Cost and Usage Specification) of the
 *          charge rows: spend, chargeback by account, transfers.
 *
 * FOCUS choices: BilledCost = EffectiveCost = the amount; BillingCurrency
 * USD; BillingPeriod and ChargePeriod are the report's month [start, end)
 * (a transfer's own time is in x_posted_at); ChargeCategory is "Usage" for
 * spend and chargeback postings (a chargeback is the internal price of a
 * service another department provided: consumption, not a purchase of a
 * commitment and not a correction) and "Adjustment" for adjustment postings;
 * SubAccountId and SubAccountName are the debited account's path;
 * ServiceName the credited one (vendor/openai, or the providing department);
 * ConsumedQuantity/Unit stay empty (the ledger knows money, not units); Tags
 * is a JSON object (spend: the group-by values; chargeback: the two sides'
 * cost centers; transfers: the posting's metadata); x_ columns carry ours.
 *
 * Determinism: nothing depends on the clock, the node or the applied index,
 * so a closed month gives the same bytes from any node, every run.  XLSX:
 * libxlsxwriter stamps the zip entries with a fixed date and the document
 * with `created`, which is set to the month's start, so its bytes are
 * stable too (tests/cluster/test_report.py checks every format).
 */
#include "cluster/ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xlsxwriter.h>

#include "proto/client.h"
#include "proto/mp.h"
#include "proto/money.h"

#define RPT_COLS_MAX 24               /* server columns of one report */
#define RPT_VIEWS_MAX 2
#define RPT_DEADLINE_MS (300u * 1000) /* a report of a big month takes seconds */
#define RPT_PAGES_MAX 100000          /* pages of one report */
#define RPT_CELL_MAX 8192             /* text of one cell (metadata as JSON) */
#define RPT_XLSX_EXACT_MAX (1LL << 53) /* |micros| a double holds exactly */

/* The report kinds, as the `report` query names them. */
enum rpt_kind { RK_CHARGEBACK, RK_SPEND, RK_TRIAL_BALANCE, RK_TRANSFERS, RK_COUNT };
static const char *const rpt_kind_names[RK_COUNT] = {"chargeback", "spend", "trial-balance",
                                                     "transfers"};
#define RPT_GROUP_MAX 8 /* group-by keys the server takes */

enum rpt_format { FMT_TABLE, FMT_CSV, FMT_JSON, FMT_XLSX, FMT_FOCUS };

enum rpt_type { T_STR, T_INT, T_MONEY, T_TIME, T_MAP, T_BOOL };

/* One column of the server's rows. */
struct rpt_col {
    char name[PROTO_MAP_KEY_MAX + 1];
    enum rpt_type type;
    bool is_shown; /* not `view` / `is_total` */
};

struct rpt_view {
    const char *name;   /* sheet and JSON name */
    const char *filter; /* value of the `view` column, or NULL */
};

/* A msgpack value inside a row. */
struct rpt_cell {
    const uint8_t *p;
    size_t n;
};

struct rpt {
    struct ctl *ctl;
    int kind;
    const char *kind_name;
    const char *month;
    int64_t month_start_ms;
    int64_t month_end_ms;
    struct proto_list group_by;
    enum rpt_format format;
    struct rpt_col cols[RPT_COLS_MAX];
    uint32_t col_count;
    int view_col;  /* index of `view`, or -1 */
    int total_col; /* index of `is_total` */
    struct rpt_view views[RPT_VIEWS_MAX];
    uint32_t view_count;
    struct proto_buf *pages;
    uint32_t page_count;
    struct rpt_cell *rows; /* each a whole row array */
    size_t row_count;
    size_t row_cap;
};

/* ---- small helpers ---- */

static int rpt_usage(const char *fmt, const char *what)
{
    ctl_errorf(fmt, what);
    return CTL_EXIT_USAGE;
}

static bool rpt_ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static int64_t rpt_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Split a row into its cells; false when it is not an array of col_count. */
static bool rpt_cells(const struct rpt *r, struct rpt_cell row, struct rpt_cell *cells)
{
    struct mp_reader m;
    uint32_t n = 0;
    mp_reader_init(&m, row.p, row.n);
    if (mp_array_read(&m, &n) != MP_OK || n != r->col_count)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        cells[i].p = m.pos;
        if (mp_value_skip(&m, 8) != MP_OK)
            return false;
        cells[i].n = (size_t)(m.pos - cells[i].p);
    }
    return true;
}

static int64_t rpt_int(struct rpt_cell c)
{
    struct mp_reader m;
    int64_t v = 0;
    uint64_t u = 0;
    mp_reader_init(&m, c.p, c.n);
    if (mp_int_read(&m, &v) == MP_OK)
        return v;
    mp_reader_init(&m, c.p, c.n);
    return mp_uint_read(&m, &u) == MP_OK && u <= INT64_MAX ? (int64_t)u : 0;
}

static bool rpt_bool(struct rpt_cell c)
{
    struct mp_reader m;
    bool v = false;
    mp_reader_init(&m, c.p, c.n);
    return mp_bool_read(&m, &v) == MP_OK && v;
}

/* A string cell as a view (empty for anything else). */
static const char *rpt_str(struct rpt_cell c, uint32_t *len)
{
    struct mp_reader m;
    const char *p = "";
    *len = 0;
    mp_reader_init(&m, c.p, c.n);
    if (mp_str_read(&m, &p, len) != MP_OK) {
        *len = 0;
        return "";
    }
    return p;
}

static bool rpt_str_is(struct rpt_cell c, const char *s)
{
    uint32_t n;
    const char *p = rpt_str(c, &n);
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* A map cell as compact JSON into buf (NUL-terminated). */
static void rpt_map_json(struct rpt_cell c, struct proto_buf *buf)
{
    struct ctl_json j;
    buf->len = 0;
    ctl_json_init(&j, buf);
    if (ctl_json_mp(&j, c.p, c.n) != 0 || j.failed) {
        buf->len = 0;
        proto_buf_append(buf, "{}", 2);
    }
    proto_buf_append(buf, "", 1);
    buf->len--;
}

/* Any cell as display text into out (cap bytes). */
static const char *rpt_text(const struct rpt_col *col, struct rpt_cell c, char *out, size_t cap)
{
    uint32_t n;
    const char *p;
    switch (col->type) {
    case T_STR:
        p = rpt_str(c, &n);
        snprintf(out, cap, "%.*s", (int)n, p);
        return out;
    case T_MONEY:
        if (money_format(rpt_int(c), out, cap) < 0)
            out[0] = '\0';
        return out;
    case T_TIME: {
        char t[CTL_TIME_CAP];
        snprintf(out, cap, "%s", ctl_time_text(rpt_int(c), t));
        return out;
    }
    case T_BOOL:
        snprintf(out, cap, "%s", rpt_bool(c) ? "true" : "false");
        return out;
    case T_MAP: {
        struct proto_buf b;
        proto_buf_init(&b);
        rpt_map_json(c, &b);
        snprintf(out, cap, "%s", b.len ? (const char *)b.data : "{}");
        proto_buf_free(&b);
        return out;
    }
    default:
        snprintf(out, cap, "%lld", (long long)rpt_int(c));
        return out;
    }
}

/* The shown name of a column: "amount" for amount_micros, "time" for ts_ms,
 * "debtor"... as they are otherwise. */
static void rpt_col_label(const struct rpt_col *col, char *out, size_t cap)
{
    size_t n = strlen(col->name);
    if (col->type == T_MONEY)
        snprintf(out, cap, "%.*s", (int)(n - strlen("_micros")), col->name);
    else if (col->type == T_TIME)
        snprintf(out, cap, "time");
    else
        snprintf(out, cap, "%s", col->name);
}

/* Does row belong to view v? */
static bool rpt_in_view(const struct rpt *r, const struct rpt_cell *cells,
                        const struct rpt_view *v)
{
    return v->filter == NULL || r->view_col < 0 || rpt_str_is(cells[r->view_col], v->filter);
}

/* ---- fetching ---- */

static int rpt_columns(struct rpt *r, const struct proto_buf *answer)
{
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    if (ctl_mp_array((const uint8_t *)answer->data, answer->len, "columns", &it) != 0)
        return -1;
    r->col_count = 0;
    r->view_col = -1;
    r->total_col = -1;
    while (ctl_mp_next(&it, &e, &elen)) {
        if (r->col_count == RPT_COLS_MAX)
            return -1;
        struct rpt_col *c = &r->cols[r->col_count];
        ctl_mp_text(e, elen, c->name, sizeof c->name);
        c->is_shown = true;
        c->type = T_STR;
        if (strcmp(c->name, "view") == 0) {
            r->view_col = (int)r->col_count;
            c->is_shown = false;
        } else if (strcmp(c->name, "is_total") == 0) {
            r->total_col = (int)r->col_count;
            c->is_shown = false;
        } else if (strcmp(c->name, "ts_ms") == 0) {
            c->type = T_TIME;
        } else if (strcmp(c->name, "metadata") == 0) {
            c->type = T_MAP;
        } else if (rpt_ends_with(c->name, "_micros")) {
            c->type = T_MONEY;
        } else if (strcmp(c->name, "postings") == 0 || strcmp(c->name, "id") == 0 ||
                   strcmp(c->name, "reservation_id") == 0) {
            c->type = T_INT;
        }
        /* Spend: columns 1..keys are the group-by values, whatever their names. */
        if (r->kind == RK_SPEND && r->col_count >= 1 && r->col_count <= r->group_by.count) {
            c->type = T_STR;
            c->is_shown = true;
            if (r->view_col == (int)r->col_count)
                r->view_col = -1;
            if (r->total_col == (int)r->col_count)
                r->total_col = -1;
        }
        r->col_count++;
    }
    return r->total_col >= 0 ? 0 : -1;
}

/* Keep the rows of one page (their bytes live in the page buffer). */
static int rpt_add_rows(struct rpt *r, const struct proto_buf *page)
{
    struct ctl_mp_iter it;
    const uint8_t *e;
    size_t elen;
    if (ctl_mp_array((const uint8_t *)page->data, page->len, "rows", &it) != 0)
        return -1;
    while (ctl_mp_next(&it, &e, &elen)) {
        if (r->row_count == r->row_cap) {
            size_t cap = r->row_cap ? r->row_cap * 2 : 1024;
            struct rpt_cell *rows = realloc(r->rows, cap * sizeof *rows);
            if (!rows)
                return -1;
            r->rows = rows;
            r->row_cap = cap;
        }
        r->rows[r->row_count++] = (struct rpt_cell){e, elen};
    }
    return 0;
}

/* The rpc addresses of --cluster (views into copy). */
static uint32_t rpt_addrs(struct ctl *ctl, char *copy, size_t cap, const char **addrs)
{
    uint32_t count = 0;
    snprintf(copy, cap, "%s", ctl->cluster);
    for (char *save = NULL, *a = strtok_r(copy, ",", &save); a != NULL && count < PC_NODES_MAX;
         a = strtok_r(NULL, ",", &save))
        addrs[count++] = a;
    return count;
}

static int rpt_fetch(struct rpt *r, int year, int month)
{
    struct ctl *ctl = r->ctl;
    /* Its own connection: one attempt may take as long as the report does
     * (the default attempt timeout would retry, re-running the report). */
    uint32_t deadline = ctl->args->value[CTL_OPT_TIMEOUT] ? ctl->deadline_ms : RPT_DEADLINE_MS;
    char copy[sizeof ctl->cluster];
    const char *addrs[PC_NODES_MAX];
    uint32_t count = rpt_addrs(ctl, copy, sizeof copy, addrs);
    struct pc_sync *sync = NULL;
    int rc = ctl_connect_nodes(ctl, addrs, count, deadline, &sync);
    if (rc != CTL_EXIT_OK)
        return rc;
    r->pages = calloc(RPT_PAGES_MAX, sizeof *r->pages);
    if (!r->pages) {
        pc_sync_close(sync);
        ctl_errorf("report: out of memory");
        return CTL_EXIT_REFUSED;
    }
    uint64_t offset = 0, applied_first = 0;
    for (;;) {
        if (r->page_count == RPT_PAGES_MAX) {
            ctl_errorf("report: more than %d pages", RPT_PAGES_MAX);
            rc = CTL_EXIT_REFUSED;
            break;
        }
        struct proto_buf params;
        msgpack_packer pk;
        proto_buf_init(&params);
        ctl_packer_init(&pk, &params);
        int failed = msgpack_pack_array(&pk, 7);
        failed |= rpc_pack_str(&pk, "report");
        failed |= rpc_pack_str(&pk, ctl->is_stale ? "stale" : "linear");
        failed |= rpc_pack_str(&pk, r->kind_name);
        failed |= msgpack_pack_int64(&pk, year);
        failed |= msgpack_pack_int64(&pk, month);
        failed |= msgpack_pack_array(&pk, r->group_by.count);
        for (uint32_t i = 0; i < r->group_by.count; i++)
            failed |= msgpack_pack_str_with_body(&pk, r->group_by.item[i].ptr,
                                                 r->group_by.item[i].len);
        failed |= msgpack_pack_uint64(&pk, offset);
        struct proto_buf *page = &r->pages[r->page_count];
        proto_buf_init(page);
        rc = failed ? CTL_EXIT_REFUSED
                    : ctl_call(ctl, sync, ctl->is_stale ? PC_TARGET_ANY : PC_TARGET_LEADER,
                               "read", &params, true, false, page);
        proto_buf_free(&params);
        if (rc != CTL_EXIT_OK)
            break;
        r->page_count++;
        uint64_t applied = 0, next = 0;
        ctl_mp_uint((const uint8_t *)page->data, page->len, "applied_index", &applied);
        if (r->page_count == 1) {
            applied_first = applied;
            if (rpt_columns(r, page) != 0) {
                ctl_errorf("report: the server's answer has no usable columns");
                rc = CTL_EXIT_REFUSED;
                break;
            }
        }
        if (ctl->is_verbose)
            ctl_errorf("report page %u read at applied index %llu", r->page_count,
                       (unsigned long long)applied);
        if (applied != applied_first && ctl->is_verbose)
            ctl_errorf("report: pages read at applied indexes %llu and %llu (an open month "
                       "may have changed between them)", (unsigned long long)applied_first,
                       (unsigned long long)applied);
        if (rpt_add_rows(r, page) != 0) {
            ctl_errorf("report: the server's answer has no rows (or out of memory)");
            rc = CTL_EXIT_REFUSED;
            break;
        }
        if (ctl_mp_uint((const uint8_t *)page->data, page->len, "next_offset", &next) != 0)
            break;
        if (next <= offset) {
            ctl_errorf("report: the server's next_offset does not advance");
            rc = CTL_EXIT_REFUSED;
            break;
        }
        offset = next;
    }
    pc_sync_close(sync);
    return rc;
}

/* ---- table ---- */

static int rpt_table(struct rpt *r, FILE *out, const struct rpt_view *v, bool is_titled)
{
    struct rpt_cell cells[RPT_COLS_MAX];
    size_t width[RPT_COLS_MAX] = {0};
    char text[RPT_CELL_MAX];
    uint32_t first_shown = 0;
    while (first_shown < r->col_count && !r->cols[first_shown].is_shown)
        first_shown++;
    for (uint32_t c = 0; c < r->col_count; c++) {
        rpt_col_label(&r->cols[c], text, sizeof text);
        width[c] = strlen(text);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (is_titled)
                fprintf(out, "%s%s:\n", v == r->views ? "" : "\n", v->name);
            const char *sep = "";
            for (uint32_t c = 0; c < r->col_count; c++) {
                if (!r->cols[c].is_shown)
                    continue;
                rpt_col_label(&r->cols[c], text, sizeof text);
                for (char *p = text; *p; p++)
                    *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
                bool is_right = r->cols[c].type == T_MONEY || r->cols[c].type == T_INT;
                fprintf(out, "%s%*s", sep, is_right ? (int)width[c] : -(int)width[c], text);
                sep = "  ";
            }
            fputc('\n', out);
        }
        for (size_t i = 0; i < r->row_count; i++) {
            if (!rpt_cells(r, r->rows[i], cells))
                return -1;
            if (!rpt_in_view(r, cells, v))
                continue;
            bool is_total = rpt_bool(cells[r->total_col]);
            const char *sep = "";
            for (uint32_t c = 0; c < r->col_count; c++) {
                if (!r->cols[c].is_shown)
                    continue;
                const char *t = rpt_text(&r->cols[c], cells[c], text, sizeof text);
                if (is_total && (r->cols[c].type == T_STR || r->cols[c].type == T_TIME ||
                                 r->cols[c].type == T_MAP || strcmp(r->cols[c].name, "id") == 0 ||
                                 strcmp(r->cols[c].name, "reservation_id") == 0))
                    t = c == first_shown ? "TOTAL" : "";
                size_t n = strlen(t);
                if (pass == 0) {
                    if (n > width[c])
                        width[c] = n;
                    continue;
                }
                bool is_right = r->cols[c].type == T_MONEY || r->cols[c].type == T_INT;
                fprintf(out, "%s%*s", sep, is_right ? (int)width[c] : -(int)width[c], t);
                sep = "  ";
            }
            if (pass == 1)
                fputc('\n', out);
        }
    }
    return 0;
}

/* ---- CSV (RFC 4180) ---- */

static void rpt_csv_field(FILE *out, const char *s, size_t n, bool is_first)
{
    if (!is_first)
        fputc(',', out);
    if (strcspn(s, ",\"\r\n") >= n) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void rpt_csv_cstr(FILE *out, const char *s, bool is_first)
{
    rpt_csv_field(out, s, strlen(s), is_first);
}

static int rpt_csv(struct rpt *r, FILE *out, const struct rpt_view *v)
{
    struct rpt_cell cells[RPT_COLS_MAX];
    char text[RPT_CELL_MAX];
    bool is_first = true;
    for (uint32_t c = 0; c < r->col_count; c++) {
        if (!r->cols[c].is_shown)
            continue;
        rpt_col_label(&r->cols[c], text, sizeof text);
        rpt_csv_cstr(out, text, is_first);
        is_first = false;
        if (r->cols[c].type == T_MONEY || r->cols[c].type == T_TIME)
            rpt_csv_cstr(out, r->cols[c].name, false);
    }
    fputs("\r\n", out);
    for (size_t i = 0; i < r->row_count; i++) {
        if (!rpt_cells(r, r->rows[i], cells))
            return -1;
        if (!rpt_in_view(r, cells, v) || rpt_bool(cells[r->total_col]))
            continue;
        is_first = true;
        for (uint32_t c = 0; c < r->col_count; c++) {
            if (!r->cols[c].is_shown)
                continue;
            const char *t = rpt_text(&r->cols[c], cells[c], text, sizeof text);
            rpt_csv_cstr(out, t, is_first);
            is_first = false;
            if (r->cols[c].type == T_MONEY || r->cols[c].type == T_TIME) {
                snprintf(text, sizeof text, "%lld", (long long)rpt_int(cells[c]));
                rpt_csv_cstr(out, text, false);
            }
        }
        fputs("\r\n", out);
    }
    return 0;
}

/* ---- JSON ---- */

static void rpt_json_row(struct rpt *r, struct ctl_json *j, const struct rpt_cell *cells,
                         bool is_total)
{
    char text[RPT_CELL_MAX];
    ctl_json_object_begin(j);
    for (uint32_t c = 0; c < r->col_count; c++) {
        const struct rpt_col *col = &r->cols[c];
        if (!col->is_shown)
            continue;
        bool is_name = col->type == T_STR || col->type == T_TIME || col->type == T_MAP ||
                       strcmp(col->name, "id") == 0 || strcmp(col->name, "reservation_id") == 0;
        if (is_total && is_name)
            continue; /* a total has sums only */
        uint32_t n;
        const char *p;
        switch (col->type) {
        case T_STR:
            p = rpt_str(cells[c], &n);
            ctl_json_key(j, col->name);
            ctl_json_str(j, p, n);
            break;
        case T_MONEY:
            rpt_col_label(col, text, sizeof text);
            ctl_json_key(j, text);
            ctl_json_cstr(j, rpt_text(col, cells[c], text, sizeof text));
            ctl_json_key(j, col->name);
            ctl_json_int(j, rpt_int(cells[c]));
            break;
        case T_TIME:
            ctl_json_key(j, "time");
            ctl_json_cstr(j, rpt_text(col, cells[c], text, sizeof text));
            ctl_json_key(j, col->name);
            ctl_json_int(j, rpt_int(cells[c]));
            break;
        case T_MAP:
            ctl_json_key(j, col->name);
            if (ctl_json_mp(j, cells[c].p, cells[c].n) != 0)
                j->failed = true;
            break;
        default:
            ctl_json_key(j, col->name);
            ctl_json_int(j, rpt_int(cells[c]));
            break;
        }
    }
    ctl_json_object_end(j);
}

static int rpt_json(struct rpt *r, FILE *out)
{
    struct proto_buf buf;
    struct ctl_json j;
    struct rpt_cell cells[RPT_COLS_MAX];
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    ctl_json_object_begin(&j);
    ctl_json_key(&j, "report");
    ctl_json_cstr(&j, r->kind_name);
    ctl_json_key(&j, "month");
    ctl_json_cstr(&j, r->month);
    if (r->kind == RK_SPEND) {
        ctl_json_key(&j, "group_by");
        ctl_json_array_begin(&j);
        for (uint32_t i = 0; i < r->group_by.count; i++)
            ctl_json_str(&j, r->group_by.item[i].ptr, r->group_by.item[i].len);
        ctl_json_array_end(&j);
    }
    ctl_json_key(&j, "views");
    ctl_json_array_begin(&j);
    int rc = 0;
    for (uint32_t v = 0; v < r->view_count && rc == 0; v++) {
        ctl_json_object_begin(&j);
        ctl_json_key(&j, "view");
        ctl_json_cstr(&j, r->views[v].name);
        ctl_json_key(&j, "rows");
        ctl_json_array_begin(&j);
        size_t total = SIZE_MAX;
        for (size_t i = 0; i < r->row_count; i++) {
            if (!rpt_cells(r, r->rows[i], cells)) {
                rc = -1;
                break;
            }
            if (!rpt_in_view(r, cells, &r->views[v]))
                continue;
            if (rpt_bool(cells[r->total_col]))
                total = i;
            else
                rpt_json_row(r, &j, cells, false);
        }
        ctl_json_array_end(&j);
        if (rc == 0 && total != SIZE_MAX && rpt_cells(r, r->rows[total], cells)) {
            ctl_json_key(&j, "total");
            rpt_json_row(r, &j, cells, true);
        }
        ctl_json_object_end(&j);
    }
    ctl_json_array_end(&j);
    ctl_json_object_end(&j);
    proto_buf_append(&buf, "\n", 1);
    if (rc == 0 && !j.failed && fwrite(buf.data, 1, buf.len, out) != buf.len)
        rc = -1;
    if (j.failed)
        rc = -1;
    proto_buf_free(&buf);
    return rc;
}

/* ---- FOCUS ---- */

static const char *const focus_columns[] = {
    "BilledCost", "EffectiveCost", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription",
    "SubAccountId", "SubAccountName", "ServiceName", "ConsumedQuantity", "ConsumedUnit", "Tags",
    "x_BilledCostMicros", "x_Postings", "x_transfer_id", "x_kind", "x_debit", "x_credit",
    "x_reservation_id", "x_posted_at", "x_overrun_micros"};

/* The server column named `name`, or -1. */
static int rpt_col_find(const struct rpt *r, const char *name)
{
    for (uint32_t c = 0; c < r->col_count; c++)
        if (strcmp(r->cols[c].name, name) == 0)
            return (int)c;
    return -1;
}

/* Text of the named column of a row ("" when there is no such column). */
static const char *rpt_named(const struct rpt *r, const struct rpt_cell *cells,
                             const char *name, char *out, size_t cap)
{
    int c = rpt_col_find(r, name);
    if (c < 0) {
        out[0] = '\0';
        return out;
    }
    return rpt_text(&r->cols[c], cells[c], out, cap);
}

/* Tags of one FOCUS row as a JSON object into buf. */
static void rpt_focus_tags(const struct rpt *r, const struct rpt_cell *cells,
                           struct proto_buf *buf)
{
    struct ctl_json j;
    buf->len = 0;
    if (r->kind == RK_TRANSFERS) {
        rpt_map_json(cells[rpt_col_find(r, "metadata")], buf);
        return;
    }
    ctl_json_init(&j, buf);
    ctl_json_object_begin(&j);
    for (uint32_t c = 0; c < r->col_count; c++) {
        const char *key = r->cols[c].name;
        bool is_tag = r->kind == RK_SPEND
                          ? c >= 1 && c <= r->group_by.count
                          : strcmp(key, "debtor_cost_center") == 0 ||
                                strcmp(key, "creditor_cost_center") == 0;
        uint32_t n;
        const char *p = rpt_str(cells[c], &n);
        if (!is_tag || n == 0)
            continue;
        ctl_json_key(&j, strcmp(key, "debtor_cost_center") == 0 ? "cost_center" : key);
        ctl_json_str(&j, p, n);
    }
    ctl_json_object_end(&j);
    proto_buf_append(buf, "", 1);
    buf->len--;
}

static int rpt_focus(struct rpt *r, FILE *out, const struct rpt_view *v)
{
    struct rpt_cell cells[RPT_COLS_MAX];
    char amount[CTL_MONEY_CAP], micros[32], start[CTL_TIME_CAP], end[CTL_TIME_CAP];
    char debit[PROTO_NAME_MAX + 1], credit[PROTO_NAME_MAX + 1], desc[2 * PROTO_NAME_MAX + 64];
    char kind[32], id[32], res[32], posted[CTL_TIME_CAP], postings[32], overrun[32];
    struct proto_buf tags;
    bool is_first = true;
    for (size_t c = 0; c < sizeof focus_columns / sizeof *focus_columns; c++) {
        rpt_csv_cstr(out, focus_columns[c], is_first);
        is_first = false;
    }
    fputs("\r\n", out);
    ctl_time_text(r->month_start_ms, start);
    ctl_time_text(r->month_end_ms, end);
    const char *debit_col = r->kind == RK_CHARGEBACK ? "debtor"
                            : r->kind == RK_SPEND    ? "account" : "debit";
    const char *credit_col = r->kind == RK_CHARGEBACK ? "creditor"
                             : r->kind == RK_SPEND    ? "payee" : "credit";
    proto_buf_init(&tags);
    for (size_t i = 0; i < r->row_count; i++) {
        if (!rpt_cells(r, r->rows[i], cells)) {
            proto_buf_free(&tags);
            return -1;
        }
        if (!rpt_in_view(r, cells, v) || rpt_bool(cells[r->total_col]))
            continue;
        int ac = rpt_col_find(r, "amount_micros");
        int64_t m = rpt_int(cells[ac]);
        money_format(m, amount, sizeof amount);
        snprintf(micros, sizeof micros, "%lld", (long long)m);
        rpt_named(r, cells, debit_col, debit, sizeof debit);
        rpt_named(r, cells, credit_col, credit, sizeof credit);
        rpt_named(r, cells, "postings", postings, sizeof postings);
        rpt_named(r, cells, "overrun_micros", overrun, sizeof overrun);
        if (rpt_col_find(r, "overrun_micros") >= 0) /* the exact micros, not the decimal */
            snprintf(overrun, sizeof overrun, "%lld",
                     (long long)rpt_int(cells[rpt_col_find(r, "overrun_micros")]));
        if (r->kind == RK_TRANSFERS) {
            rpt_named(r, cells, "kind", kind, sizeof kind);
            rpt_named(r, cells, "id", id, sizeof id);
            rpt_named(r, cells, "reservation_id", res, sizeof res);
            rpt_named(r, cells, "ts_ms", posted, sizeof posted);
            if (strcmp(res, "0") == 0)
                res[0] = '\0';
        } else {
            snprintf(kind, sizeof kind, "%s", r->kind == RK_SPEND ? "spend"
                                                                              : "chargeback");
            id[0] = res[0] = posted[0] = '\0';
        }
        snprintf(desc, sizeof desc, "%s %s to %s", kind, debit, credit);
        rpt_focus_tags(r, cells, &tags);
        const char *category = strcmp(kind, "adjustment") == 0 ? "Adjustment" : "Usage";
        const char *fields[] = {amount, amount, "USD", start, end, start, end, category, desc,
                                debit, debit, credit, "", "",
                                tags.len ? (const char *)tags.data : "{}", micros, postings, id,
                                kind, debit, credit, res, posted, overrun};
        for (size_t c = 0; c < sizeof fields / sizeof *fields; c++)
            rpt_csv_cstr(out, fields[c], c == 0);
        fputs("\r\n", out);
    }
    proto_buf_free(&tags);
    return 0;
}

/* ---- XLSX ---- */

static void rpt_xlsx_micros(lxw_worksheet *ws, lxw_row_t row, lxw_col_t col, int64_t v)
{
    if (v <= RPT_XLSX_EXACT_MAX && v >= -RPT_XLSX_EXACT_MAX) {
        worksheet_write_number(ws, row, col, (double)v, NULL);
    } else { /* beyond 2^53 a double is not exact: keep the digits as text */
        char text[32];
        snprintf(text, sizeof text, "%lld", (long long)v);
        worksheet_write_string(ws, row, col, text, NULL);
    }
}

static int rpt_xlsx_sheet(struct rpt *r, lxw_workbook *wb, const struct rpt_view *v,
                          lxw_format *bold, lxw_format *money, lxw_format *money_bold)
{
    struct rpt_cell cells[RPT_COLS_MAX];
    char text[RPT_CELL_MAX];
    lxw_worksheet *ws = workbook_add_worksheet(wb, v->name);
    if (!ws)
        return -1;
    lxw_col_t col = 0;
    for (uint32_t c = 0; c < r->col_count; c++) {
        if (!r->cols[c].is_shown)
            continue;
        rpt_col_label(&r->cols[c], text, sizeof text);
        worksheet_write_string(ws, 0, col++, text, bold);
        if (r->cols[c].type == T_MONEY || r->cols[c].type == T_TIME)
            worksheet_write_string(ws, 0, col++, r->cols[c].name, bold);
    }
    lxw_row_t row = 1;
    for (size_t i = 0; i < r->row_count; i++) {
        if (!rpt_cells(r, r->rows[i], cells))
            return -1;
        if (!rpt_in_view(r, cells, v))
            continue;
        bool is_total = rpt_bool(cells[r->total_col]);
        bool is_label_done = false;
        col = 0;
        for (uint32_t c = 0; c < r->col_count; c++) {
            const struct rpt_col *k = &r->cols[c];
            if (!k->is_shown)
                continue;
            bool is_name = k->type == T_STR || k->type == T_TIME || k->type == T_MAP ||
                           strcmp(k->name, "id") == 0 || strcmp(k->name, "reservation_id") == 0;
            if (is_total && is_name) {
                if (!is_label_done)
                    worksheet_write_string(ws, row, col, "TOTAL", bold);
                is_label_done = true;
                col += k->type == T_TIME ? 2 : 1;
                continue;
            }
            switch (k->type) {
            case T_MONEY: {
                int64_t m = rpt_int(cells[c]);
                /* The cell's number only: the exact value is the next column. */
                worksheet_write_number(ws, row, col++, (double)m / 1e6,
                                       is_total ? money_bold : money);
                rpt_xlsx_micros(ws, row, col++, m);
                break;
            }
            case T_TIME:
                worksheet_write_string(ws, row, col++, rpt_text(k, cells[c], text, sizeof text),
                                       NULL);
                rpt_xlsx_micros(ws, row, col++, rpt_int(cells[c]));
                break;
            case T_INT:
                rpt_xlsx_micros(ws, row, col++, rpt_int(cells[c]));
                break;
            default:
                worksheet_write_string(ws, row, col++, rpt_text(k, cells[c], text, sizeof text),
                                       NULL);
                break;
            }
        }
        row++;
    }
    return 0;
}

/* Write the workbook to `path`. */
static int rpt_xlsx(struct rpt *r, const char *path)
{
    lxw_workbook *wb = workbook_new(path);
    if (!wb)
        return -1;
    char title[64];
    snprintf(title, sizeof title, "purser %s report %s", r->kind_name, r->month);
    /* A fixed creation time (the month's start) keeps the bytes stable. */
    lxw_doc_properties props = {.title = title, .author = "purser", .company = "",
                                .created = (time_t)(r->month_start_ms / 1000)};
    workbook_set_properties(wb, &props);
    lxw_format *bold = workbook_add_format(wb);
    format_set_bold(bold);
    lxw_format *money = workbook_add_format(wb);
    format_set_num_format(money, "\"$\"#,##0.00####");
    lxw_format *money_bold = workbook_add_format(wb);
    format_set_num_format(money_bold, "\"$\"#,##0.00####");
    format_set_bold(money_bold);
    int rc = 0;
    for (uint32_t v = 0; v < r->view_count && rc == 0; v++)
        rc = rpt_xlsx_sheet(r, wb, &r->views[v], bold, money, money_bold);
    lxw_error e = workbook_close(wb);
    if (e != LXW_NO_ERROR) {
        ctl_errorf("report: cannot write the workbook %s: %s", path, lxw_strerror(e));
        return -2;
    }
    return rc;
}

/* XLSX to stdout: libxlsxwriter writes files, so through a temporary one. */
static int rpt_xlsx_stdout(struct rpt *r)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/purserctl-report-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        ctl_errorf("report: cannot create a temporary file: %s", strerror(errno));
        return -2;
    }
    close(fd);
    int rc = rpt_xlsx(r, path);
    FILE *in = rc == 0 ? fopen(path, "rb") : NULL;
    if (in) {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, n, stdout) != n)
                rc = -1;
        fclose(in);
    } else if (rc == 0) {
        rc = -1;
    }
    unlink(path);
    return rc;
}

/* ---- the command ---- */

static int rpt_parse(struct rpt *r, int *year, int *month)
{
    struct ctl *ctl = r->ctl;
    const struct ctl_args *a = ctl->args;
    char err[CTL_ERR_MAX];
    r->kind_name = ctl->pos[0];
    r->kind = 0;
    while (r->kind < RK_COUNT && strcmp(r->kind_name, rpt_kind_names[r->kind]) != 0)
        r->kind++;
    if (r->kind == RK_COUNT)
        return rpt_usage("report: \"%s\" is not chargeback, spend, trial-balance or transfers",
                         r->kind_name);
    r->month = a->value[CTL_OPT_MONTH];
    if (r->month == NULL)
        return rpt_usage("report: --month YYYY-MM is required%s", "");
    if (ctl_month_parse(r->month, err, sizeof err) != 0)
        return rpt_usage("report: %s", err);
    *year = atoi(r->month);
    *month = atoi(r->month + 5);
    r->month_start_ms = rpt_days_from_civil(*year, *month, 1) * 86400000LL;
    r->month_end_ms = rpt_days_from_civil(*year + (*month == 12), *month % 12 + 1, 1) *
                      86400000LL;
    const char *group = a->value[CTL_OPT_GROUP_BY];
    if (group != NULL && r->kind != RK_SPEND)
        return rpt_usage("report: --group-by applies to the spend report, not %s", r->kind_name);
    if (group != NULL && ctl_list_parse(group, &r->group_by, err, sizeof err) != 0)
        return rpt_usage("report: --group-by: %s", err);
    if (r->group_by.count > RPT_GROUP_MAX)
        return rpt_usage("report: --group-by takes at most %s keys", "8");
    const char *format = a->value[CTL_OPT_FORMAT];
    static const char *const formats[] = {"table", "csv", "json", "xlsx", "focus"};
    r->format = ctl->is_json ? FMT_JSON : FMT_TABLE;
    if (format != NULL) {
        uint32_t f = 0;
        while (f < 5 && strcmp(format, formats[f]) != 0)
            f++;
        if (f == 5)
            return rpt_usage("report: --format \"%s\" is not table, csv, json, xlsx or focus",
                             format);
        r->format = (enum rpt_format)f;
    }
    if (r->format == FMT_FOCUS && r->kind == RK_TRIAL_BALANCE)
        return rpt_usage("report: --format focus has charge rows: spend, chargeback or "
                         "transfers, not %s", r->kind_name);
    /* Views. */
    const char *view = a->value[CTL_OPT_VIEW];
    if (view != NULL && r->kind != RK_CHARGEBACK)
        return rpt_usage("report: --view applies to the chargeback report, not %s",
                         r->kind_name);
    if (r->kind == RK_CHARGEBACK) {
        bool is_account = view == NULL || strcmp(view, "account") == 0;
        bool is_cc = view == NULL || strcmp(view, "cost_center") == 0;
        if (!is_account && !is_cc)
            return rpt_usage("report: --view \"%s\" is not account or cost_center", view);
        bool is_single = r->format == FMT_CSV || r->format == FMT_FOCUS;
        if (is_single && view == NULL)
            is_cc = false; /* one table per file: by account unless asked */
        if (r->format == FMT_FOCUS && !is_account)
            return rpt_usage("report: --format focus has account rows: not --view %s", view);
        if (is_account)
            r->views[r->view_count++] = (struct rpt_view){"by_account", "account"};
        if (is_cc)
            r->views[r->view_count++] = (struct rpt_view){"by_cost_center", "cost_center"};
    } else {
        static const char *const names[] = {"chargeback", "spend", "trial_balance",
                                            "transfers"};
        r->views[r->view_count++] = (struct rpt_view){names[r->kind], NULL};
    }
    return CTL_EXIT_OK;
}

static int rpt_write(struct rpt *r)
{
    const char *path = r->ctl->args->value[CTL_OPT_OUT];
    if (r->format == FMT_XLSX) {
        int rc = path ? rpt_xlsx(r, path) : rpt_xlsx_stdout(r);
        if (rc == -1)
            ctl_errorf("report: could not build the workbook");
        return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
    }
    FILE *out = stdout;
    if (path != NULL && (out = fopen(path, "wb")) == NULL) {
        ctl_errorf("report: cannot open %s: %s", path, strerror(errno));
        return CTL_EXIT_USAGE;
    }
    int rc = 0;
    for (uint32_t v = 0; v < r->view_count && rc == 0; v++) {
        switch (r->format) {
        case FMT_CSV: rc = rpt_csv(r, out, &r->views[v]); break;
        case FMT_FOCUS: rc = rpt_focus(r, out, &r->views[v]); break;
        case FMT_TABLE: rc = rpt_table(r, out, &r->views[v], r->view_count > 1); break;
        default: rc = v == 0 ? rpt_json(r, out) : 0; break;
        }
    }
    if (fflush(out) != 0)
        rc = -1;
    if (out != stdout && fclose(out) != 0)
        rc = -1;
    if (rc != 0) {
        ctl_errorf("report: could not write the report%s%s", path ? " to " : "",
                   path ? path : "");
        return CTL_EXIT_REFUSED;
    }
    return CTL_EXIT_OK;
}

int ctl_report(struct ctl *ctl)
{
    struct rpt r;
    memset(&r, 0, sizeof r);
    r.ctl = ctl;
    int year = 0, month = 0;
    int rc = rpt_parse(&r, &year, &month);
    if (rc == CTL_EXIT_OK)
        rc = rpt_fetch(&r, year, month);
    if (rc == CTL_EXIT_OK)
        rc = rpt_write(&r);
    for (uint32_t i = 0; i < r.page_count; i++)
        proto_buf_free(&r.pages[i]);
    free(r.pages);
    free(r.rows);
    return rc;
}
