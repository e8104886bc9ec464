/*
 * ctl_output.c — everything purserctl shows: a compact JSON writer, the
 * walker that turns a msgpack read answer into JSON (so `--json` passes the
 * server's fields through and new fields appear without code here), field
 * lookup in answers for human output, padded tables, money and time as text,
 * and the mapping from outcomes to exit codes.
 *
 * Money is never a float: amounts are int64 micros printed by money_format.
 * Amounts that may be unlimited (a cap of -1, available -1, remaining
 * PROTO_UNLIMITED) print as "unlimited" in tables and null in JSON.
 */
#include "cluster/ctl.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/client.h"
#include "proto/money.h"
#include "proto/mp.h"

/* ---- errors and exit codes ---- */

void ctl_errorf(const char *fmt, ...)
{
    va_list ap;
    fputs("purserctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

struct code_exit {
    const char *code;
    int exit_code;
};

/* RPC error codes that are not "the cluster could not be reached". */
static const struct code_exit remote_exits[] = {
    {RPC_E_NOT_FOUND, CTL_EXIT_REFUSED},    {RPC_E_FORBIDDEN, CTL_EXIT_REFUSED},
    {RPC_E_UNAUTHORIZED, CTL_EXIT_REFUSED}, {RPC_E_BAD_REQUEST, CTL_EXIT_USAGE},
    {RPC_E_INTERNAL, CTL_EXIT_REFUSED},     {RPC_E_BAD_VERSION, CTL_EXIT_REFUSED},
};

int ctl_exit_for_call(int pc_status, const char *code)
{
    switch (pc_status) {
    case PC_OK:
        return CTL_EXIT_OK;
    case PC_EINVAL:
        return CTL_EXIT_USAGE;
    case PC_EREMOTE:
        for (size_t i = 0; code != NULL && i < sizeof remote_exits / sizeof remote_exits[0];
             i++) {
            if (strcmp(code, remote_exits[i].code) == 0)
                return remote_exits[i].exit_code;
        }
        /* NOT_LEADER, UNAVAILABLE, TOO_MANY left after the retries. */
        return CTL_EXIT_UNREACHABLE;
    default: /* PC_ETIMEOUT, PC_EUNAVAILABLE, PC_ECLOSED */
        return CTL_EXIT_UNREACHABLE;
    }
}

int ctl_exit_for_status(int32_t status)
{
    return status == PROTO_OK ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}

/* ---- text ---- */

_Static_assert(CTL_MONEY_CAP >= MONEY_FORMAT_CAP, "money text fits");

bool ctl_limit_is_unlimited(int64_t micros)
{
    return micros < 0 || micros == PROTO_UNLIMITED;
}

const char *ctl_money_text(int64_t micros, char *buf)
{
    int n = money_format(micros, buf, CTL_MONEY_CAP);
    assert(n > 0); /* CTL_MONEY_CAP > MONEY_FORMAT_CAP */
    (void)n;
    return buf;
}

const char *ctl_limit_text(int64_t micros, char *buf)
{
    if (ctl_limit_is_unlimited(micros)) {
        snprintf(buf, CTL_MONEY_CAP, "unlimited");
        return buf;
    }
    return ctl_money_text(micros, buf);
}

const char *ctl_time_text(int64_t ms, char *buf)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, CTL_TIME_CAP, "%" PRId64, ms);
        return buf;
    }
    size_t n = strftime(buf, CTL_TIME_CAP, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, CTL_TIME_CAP - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

void ctl_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

/* ---- JSON writer ---- */

static void json_raw(struct ctl_json *j, const char *s, size_t n)
{
    if (!j->failed && proto_buf_append(j->buf, s, n) != 0)
        j->failed = true;
}

/* Before a value: the comma, unless first in its container or after a key. */
static void json_value_start(struct ctl_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (!j->is_first[j->depth])
        json_raw(j, ",", 1);
    j->is_first[j->depth] = false;
}

void ctl_json_init(struct ctl_json *j, struct proto_buf *buf)
{
    memset(j, 0, sizeof *j);
    j->buf = buf;
    j->is_first[0] = true;
}

static void json_open(struct ctl_json *j, char c)
{
    json_value_start(j);
    json_raw(j, &c, 1);
    if (j->depth == CTL_JSON_DEPTH_MAX) {
        j->failed = true;
        return;
    }
    j->depth++;
    j->is_first[j->depth] = true;
}

static void json_close(struct ctl_json *j, char c)
{
    json_raw(j, &c, 1);
    if (j->depth > 0)
        j->depth--;
}

void ctl_json_object_begin(struct ctl_json *j)
{
    json_open(j, '{');
}

void ctl_json_object_end(struct ctl_json *j)
{
    json_close(j, '}');
}

void ctl_json_array_begin(struct ctl_json *j)
{
    json_open(j, '[');
}

void ctl_json_array_end(struct ctl_json *j)
{
    json_close(j, ']');
}

static void json_string(struct ctl_json *j, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    json_raw(j, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c != '"' && c != '\\' && c >= 0x20 && c != 0x7f)
            continue;
        json_raw(j, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            json_raw(j, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            json_raw(j, e, 6);
        }
    }
    json_raw(j, s + run, len - run);
    json_raw(j, "\"", 1);
}

void ctl_json_key(struct ctl_json *j, const char *key)
{
    json_value_start(j);
    json_string(j, key, strlen(key));
    json_raw(j, ":", 1);
    j->after_key = true;
}

void ctl_json_str(struct ctl_json *j, const char *s, size_t len)
{
    json_value_start(j);
    json_string(j, s, len);
}

void ctl_json_cstr(struct ctl_json *j, const char *s)
{
    ctl_json_str(j, s, strlen(s));
}

void ctl_json_int(struct ctl_json *j, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    json_value_start(j);
    json_raw(j, num, (size_t)n);
}

void ctl_json_uint(struct ctl_json *j, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    json_value_start(j);
    json_raw(j, num, (size_t)n);
}

void ctl_json_bool(struct ctl_json *j, bool v)
{
    json_value_start(j);
    json_raw(j, v ? "true" : "false", v ? 4 : 5);
}

void ctl_json_null(struct ctl_json *j)
{
    json_value_start(j);
    json_raw(j, "null", 4);
}

void ctl_json_limit(struct ctl_json *j, int64_t micros)
{
    if (ctl_limit_is_unlimited(micros))
        ctl_json_null(j);
    else
        ctl_json_int(j, micros);
}

int ctl_json_print(struct ctl_json *j)
{
    json_raw(j, "\n", 1);
    if (j->failed) {
        ctl_errorf("could not build the JSON output (out of memory or nested too deep)");
        return CTL_EXIT_REFUSED;
    }
    fwrite(j->buf->data, 1, j->buf->len, stdout);
    return CTL_EXIT_OK;
}

/* ---- msgpack -> JSON ---- */

static const char *const limit_fields[] = {"cap_micros", "available_micros", "remaining_micros",
                                           "approval_above_micros"};

bool ctl_field_is_limit(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof limit_fields / sizeof limit_fields[0]; i++) {
        if (strlen(limit_fields[i]) == len && memcmp(limit_fields[i], key, len) == 0)
            return true;
    }
    return false;
}

/* A msgpack float (0xca / 0xcb) at r, as a double; false when not a float. */
static bool mp_float_read(struct mp_reader *r, double *out)
{
    size_t left = mp_reader_left(r);
    if (left >= 5 && r->pos[0] == 0xca) {
        uint32_t bits = 0;
        for (int i = 1; i <= 4; i++)
            bits = bits << 8 | r->pos[i];
        float f;
        memcpy(&f, &bits, sizeof f);
        *out = f;
        r->pos += 5;
        return true;
    }
    if (left >= 9 && r->pos[0] == 0xcb) {
        uint64_t bits = 0;
        for (int i = 1; i <= 8; i++)
            bits = bits << 8 | r->pos[i];
        memcpy(out, &bits, sizeof *out);
        r->pos += 9;
        return true;
    }
    return false;
}

static int json_mp_value(struct ctl_json *j, struct mp_reader *r, uint32_t depth,
                         bool is_limit);

static int json_mp_map(struct ctl_json *j, struct mp_reader *r, uint32_t count, uint32_t depth)
{
    ctl_json_object_begin(j);
    for (uint32_t i = 0; i < count; i++) {
        const char *k;
        uint32_t klen;
        if (mp_str_read(r, &k, &klen) != MP_OK)
            return -1;
        json_value_start(j);
        json_string(j, k, klen);
        json_raw(j, ":", 1);
        j->after_key = true;
        if (json_mp_value(j, r, depth + 1, ctl_field_is_limit(k, klen)) != 0)
            return -1;
    }
    ctl_json_object_end(j);
    return 0;
}

static int json_mp_value(struct ctl_json *j, struct mp_reader *r, uint32_t depth, bool is_limit)
{
    int64_t i;
    uint64_t u;
    bool b;
    double d;
    const char *s;
    const uint8_t *bin;
    uint32_t n;
    if (depth > CTL_JSON_DEPTH_MAX)
        return -1;
    if (mp_nil_read(r) == MP_OK) {
        ctl_json_null(j);
    } else if (mp_bool_read(r, &b) == MP_OK) {
        ctl_json_bool(j, b);
    } else if (mp_int_read(r, &i) == MP_OK) {
        if (is_limit)
            ctl_json_limit(j, i);
        else
            ctl_json_int(j, i);
    } else if (mp_uint_read(r, &u) == MP_OK) {
        ctl_json_uint(j, u);
    } else if (mp_str_read(r, &s, &n) == MP_OK) {
        ctl_json_str(j, s, n);
    } else if (mp_bin_read(r, &bin, &n) == MP_OK) {
        char *hex = malloc(2 * (size_t)n + 1);
        if (hex == NULL)
            return -1;
        ctl_hex(bin, n, hex);
        ctl_json_str(j, hex, 2 * (size_t)n);
        free(hex);
    } else if (mp_array_read(r, &n) == MP_OK) {
        ctl_json_array_begin(j);
        for (uint32_t k = 0; k < n; k++) {
            if (json_mp_value(j, r, depth + 1, false) != 0)
                return -1;
        }
        ctl_json_array_end(j);
    } else if (mp_map_read(r, &n) == MP_OK) {
        return json_mp_map(j, r, n, depth);
    } else if (mp_float_read(r, &d)) {
        char num[40];
        int len = snprintf(num, sizeof num, "%.17g", d);
        json_value_start(j);
        json_raw(j, num, (size_t)len);
    } else {
        return -1; /* extension, invalid byte, truncated */
    }
    return j->failed ? -1 : 0;
}

int ctl_json_mp(struct ctl_json *j, const uint8_t *data, size_t len)
{
    struct mp_reader r;
    mp_reader_init(&r, data, len);
    if (json_mp_value(j, &r, 0, false) != 0)
        return -1;
    return mp_reader_left(&r) == 0 ? 0 : -1;
}

/* ---- lookup in answers ---- */

int ctl_mp_find(const uint8_t *map, size_t len, const char *key, const uint8_t **value,
                size_t *value_len)
{
    struct mp_reader r;
    uint32_t count;
    size_t klen = strlen(key);
    mp_reader_init(&r, map, len);
    if (mp_map_read(&r, &count) != MP_OK)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        const char *k;
        uint32_t n;
        if (mp_str_read(&r, &k, &n) != MP_OK)
            return -1;
        const uint8_t *start = r.pos;
        if (mp_value_skip(&r, MP_DEPTH_MAX) != MP_OK)
            return -1;
        if (n == klen && memcmp(k, key, n) == 0) {
            *value = start;
            *value_len = (size_t)(r.pos - start);
            return 0;
        }
    }
    return -1;
}

/* Position a reader on the value under `key`. */
static int mp_find_reader(const uint8_t *map, size_t len, const char *key, struct mp_reader *r)
{
    const uint8_t *v;
    size_t vlen;
    if (ctl_mp_find(map, len, key, &v, &vlen) != 0)
        return -1;
    mp_reader_init(r, v, vlen);
    return 0;
}

int ctl_mp_int(const uint8_t *map, size_t len, const char *key, int64_t *out)
{
    struct mp_reader r;
    if (mp_find_reader(map, len, key, &r) != 0 || mp_int_read(&r, out) != MP_OK)
        return -1;
    return 0;
}

int ctl_mp_uint(const uint8_t *map, size_t len, const char *key, uint64_t *out)
{
    struct mp_reader r;
    if (mp_find_reader(map, len, key, &r) != 0 || mp_uint_read(&r, out) != MP_OK)
        return -1;
    return 0;
}

int ctl_mp_str(const uint8_t *map, size_t len, const char *key, char *out, size_t cap)
{
    struct mp_reader r;
    const char *s;
    uint32_t n;
    out[0] = '\0';
    if (mp_find_reader(map, len, key, &r) != 0 || mp_str_read(&r, &s, &n) != MP_OK)
        return -1;
    size_t copy = n < cap - 1 ? n : cap - 1;
    memcpy(out, s, copy);
    out[copy] = '\0';
    return 0;
}

int ctl_mp_bool(const uint8_t *map, size_t len, const char *key, bool *out)
{
    struct mp_reader r;
    if (mp_find_reader(map, len, key, &r) != 0 || mp_bool_read(&r, out) != MP_OK)
        return -1;
    return 0;
}

int ctl_mp_array(const uint8_t *map, size_t len, const char *key, struct ctl_mp_iter *it)
{
    struct mp_reader r;
    if (key == NULL)
        mp_reader_init(&r, map, len);
    else if (mp_find_reader(map, len, key, &r) != 0)
        return -1;
    if (mp_array_read(&r, &it->left) != MP_OK)
        return -1;
    it->pos = r.pos;
    it->end = r.end;
    return 0;
}

bool ctl_mp_next(struct ctl_mp_iter *it, const uint8_t **elem, size_t *elem_len)
{
    struct mp_reader r;
    if (it->left == 0)
        return false;
    mp_reader_init(&r, it->pos, (size_t)(it->end - it->pos));
    if (mp_value_skip(&r, MP_DEPTH_MAX) != MP_OK) {
        it->left = 0;
        return false;
    }
    *elem = it->pos;
    *elem_len = (size_t)(r.pos - it->pos);
    it->pos = r.pos;
    it->left--;
    return true;
}

const char *ctl_mp_text(const uint8_t *value, size_t len, char *out, size_t cap)
{
    struct mp_reader r;
    const char *s;
    uint32_t n;
    mp_reader_init(&r, value, len);
    if (mp_str_read(&r, &s, &n) == MP_OK) {
        snprintf(out, cap, "%.*s", (int)n, s);
        return out;
    }
    struct proto_buf buf;
    struct ctl_json j;
    proto_buf_init(&buf);
    ctl_json_init(&j, &buf);
    if (ctl_json_mp(&j, value, len) != 0 || j.failed)
        snprintf(out, cap, "?");
    else
        snprintf(out, cap, "%.*s", (int)buf.len, buf.data);
    proto_buf_free(&buf);
    return out;
}

int ctl_print_map(const uint8_t *map, size_t len, FILE *out)
{
    struct mp_reader r;
    uint32_t count;
    mp_reader_init(&r, map, len);
    if (mp_map_read(&r, &count) != MP_OK) {
        ctl_errorf("the answer is not a map");
        return CTL_EXIT_REFUSED;
    }
    for (uint32_t i = 0; i < count; i++) {
        const char *k;
        uint32_t n;
        char text[512];
        if (mp_str_read(&r, &k, &n) != MP_OK)
            break;
        const uint8_t *v = r.pos;
        if (mp_value_skip(&r, MP_DEPTH_MAX) != MP_OK)
            break;
        fprintf(out, "%.*s: %s\n", (int)n, k, ctl_mp_text(v, (size_t)(r.pos - v), text,
                                                           sizeof text));
    }
    return CTL_EXIT_OK;
}

/* ---- tables ---- */

void ctl_table_init(struct ctl_table *t, uint32_t col_count, const char *const *headers)
{
    memset(t, 0, sizeof *t);
    if (col_count > CTL_TABLE_COLS_MAX) {
        t->failed = true;
        return;
    }
    t->col_count = col_count;
    ctl_table_row(t, headers);
}

void ctl_table_row(struct ctl_table *t, const char *const *cells)
{
    if (t->failed)
        return;
    if (t->row_count == t->row_cap) {
        uint32_t cap = t->row_cap == 0 ? 16 : t->row_cap * 2;
        char **grown = realloc(t->cells, (size_t)cap * t->col_count * sizeof *grown);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->cells = grown;
        t->row_cap = cap;
    }
    char **row = t->cells + (size_t)t->row_count * t->col_count;
    for (uint32_t c = 0; c < t->col_count; c++) {
        const char *cell = cells[c] != NULL ? cells[c] : "-";
        row[c] = strdup(cell);
        if (row[c] == NULL)
            t->failed = true;
        size_t w = strlen(cell);
        if (w > t->width[c])
            t->width[c] = w;
    }
    t->row_count++;
}

void ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < (size_t)t->row_count * t->col_count; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int ctl_table_print(struct ctl_table *t, FILE *out)
{
    if (t->failed) {
        ctl_table_free(t);
        ctl_errorf("out of memory building the table");
        return CTL_EXIT_REFUSED;
    }
    for (uint32_t r = 0; r < t->row_count; r++) {
        char **row = t->cells + (size_t)r * t->col_count;
        for (uint32_t c = 0; c < t->col_count; c++) {
            bool is_last = c + 1 == t->col_count;
            fprintf(out, "%-*s%s", is_last ? 0 : (int)t->width[c], row[c], is_last ? "\n" : "  ");
        }
    }
    ctl_table_free(t);
    return CTL_EXIT_OK;
}
