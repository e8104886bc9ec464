/*
 * period.c — calendar arithmetic for budget periods and accounting months.
 *
 * Periods are computed from the entry's timestamp at an account's fixed UTC
 * offset (no time-zone database: deterministic and the same on every
 * replica).  Civil-date conversion is Howard Hinnant's days_from_civil
 * algorithm, exact for the whole int64 millisecond range we accept.
 */
#include "ledger/internal.h"

#define MS_PER_DAY 86400000LL

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void period_window(int period, int tz_offset_min, int64_t now_ms, int64_t *start_ms,
                   int64_t *end_ms)
{
    int64_t off = (int64_t)tz_offset_min * 60000;
    int64_t local = now_ms + off;
    int64_t day = floor_div(local, MS_PER_DAY);
    switch (period) {
    case PROTO_PERIOD_DAY:
        *start_ms = day * MS_PER_DAY - off;
        *end_ms = *start_ms + MS_PER_DAY;
        return;
    case PROTO_PERIOD_WEEK: {
        /* 1970-01-01 was a Thursday: Monday-based weekday = (day + 3) mod 7. */
        int64_t monday = day - (day + 3 - floor_div(day + 3, 7) * 7);
        *start_ms = monday * MS_PER_DAY - off;
        *end_ms = *start_ms + 7 * MS_PER_DAY;
        return;
    }
    case PROTO_PERIOD_MONTH: {
        int64_t y;
        int m;
        civil_from_days(day, &y, &m);
        *start_ms = days_from_civil(y, m, 1) * MS_PER_DAY - off;
        *end_ms = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * MS_PER_DAY - off;
        return;
    }
    default:
        *start_ms = 0;
        *end_ms = INT64_MAX;
        return;
    }
}

int32_t period_month_index(int64_t ts_ms)
{
    int64_t y;
    int m;
    civil_from_days(floor_div(ts_ms, MS_PER_DAY), &y, &m);
    return (int32_t)(y * 12 + (m - 1));
}

int64_t period_month_start_ms(int32_t month_index)
{
    return days_from_civil(month_index / 12, month_index % 12 + 1, 1) * MS_PER_DAY;
}

int32_t period_month_parse(struct proto_str s)
{
    if (s.len != 7 || s.ptr[4] != '-')
        return -1;
    int y = 0, m = 0;
    for (int i = 0; i < 7; i++) {
        if (i == 4)
            continue;
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        if (i < 4)
            y = y * 10 + (s.ptr[i] - '0');
        else
            m = m * 10 + (s.ptr[i] - '0');
    }
    if (y < 1970 || m < 1 || m > 12)
        return -1;
    return y * 12 + (m - 1);
}

bool period_month_is_closed(const struct ledger *l, int32_t month_index)
{
    for (uint32_t i = 0; i < l->closed_month_count; i++)
        if (l->closed_months[i] == month_index)
            return true;
    return false;
}
