/* ISO-8601 times as microseconds since the epoch (advertisex/kernels/timestamps.py).

   Decides only the plain forms, where DuckDB's cast to TIMESTAMPTZ (the connection in
   UTC) gives the same instant: YYYY-MM-DD, 'T' or a space, HH:MM:SS, an optional fraction
   of 1-6 digits, and 'Z', an offset ±HH:MM, or nothing (UTC). Years 1000-9999, a real
   day of its month, hours 0-23, minutes and seconds 0-59, offsets up to 14:59. Anything
   else — leap seconds, other offsets, more digits, epoch numbers, words — is UNDECIDED
   and read by DuckDB.

   A column is an Arrow string array's buffers: int32 value offsets at its first row, its
   data, its validity bitmap (NULL: no nulls) and the bit of its first row. */

#include <stddef.h>
#include <stdint.h>

enum { PARSED = 0, ABSENT = 1, UNDECIDED = 2 };

static inline int number(const uint8_t *p, int n, int *out) {
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        value = value * 10 + (p[i] - '0');
    }
    *out = value;
    return 1;
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

static int parse_one(const uint8_t *p, int64_t n, int64_t *micros) {
    int y, mo, d, h, mi, s;
    if (n < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != ' ') || p[13] != ':' ||
        p[16] != ':')
        return UNDECIDED;
    if (!number(p, 4, &y) || !number(p + 5, 2, &mo) || !number(p + 8, 2, &d) ||
        !number(p + 11, 2, &h) || !number(p + 14, 2, &mi) || !number(p + 17, 2, &s))
        return UNDECIDED;
    if (y < 1000 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        s > 59)
        return UNDECIDED;
    int64_t at = 19, fraction = 0;
    if (at < n && p[at] == '.') {
        int64_t first = ++at, scale = 100000;
        while (at < n && p[at] >= '0' && p[at] <= '9') {
            if (at - first >= 6) return UNDECIDED;
            fraction += (p[at] - '0') * scale;
            scale /= 10;
            at++;
        }
        if (at == first) return UNDECIDED;
    }
    int64_t offset = 0;
    if (at < n && p[at] == 'Z') {
        at++;
    } else if (at < n && (p[at] == '+' || p[at] == '-')) {
        int oh, om;
        if (n - at != 6 || p[at + 3] != ':' || !number(p + at + 1, 2, &oh) ||
            !number(p + at + 4, 2, &om) || oh > 14 || om > 59)
            return UNDECIDED;
        offset = (p[at] == '-' ? -1 : 1) * (int64_t)(oh * 60 + om) * 60;
        at = n;
    }
    if (at != n) return UNDECIDED;
    int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
    *micros = seconds * 1000000 + fraction;
    return PARSED;
}

/* Each text's instant into micros (PARSED), or its status: ABSENT for a null, UNDECIDED.
   Returns how many were UNDECIDED. */
int64_t adx_parse_timestamps(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                             int64_t valid_bit, int64_t rows, int64_t *micros, uint8_t *status) {
    int64_t undecided = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t bit = valid_bit + i;
        micros[i] = 0;
        if (valid != NULL && !((valid[bit >> 3] >> (bit & 7)) & 1)) {
            status[i] = ABSENT;
            continue;
        }
        status[i] = (uint8_t)parse_one(data + offsets[i], offsets[i + 1] - offsets[i], &micros[i]);
        if (status[i] == UNDECIDED) {
            micros[i] = 0;
            undecided++;
        }
    }
    return undecided;
}
