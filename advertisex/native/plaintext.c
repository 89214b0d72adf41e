/* Timestamps and numbers in their plain spellings, read as the engine reads them.

   The impressions' check read every record's time and cost through DuckDB (a cast of
   each text to TIMESTAMPTZ and to DOUBLE, and the DOUBLE printed again for the payload):
   ≈ 0.33 µs a record, the largest part of the check. Nearly every text is in one plain
   spelling, which these read in a few nanoseconds to the same values; any other text is
   left UNDECIDED for the engine, as the JSON scanner does (jsonscan.c): these never say a
   text is invalid.

   Called through ctypes (no Python API), over an Arrow string array's buffers. */

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { UNDECIDED = 0, DECIDED = 1 };

static inline int is_valid(const uint8_t *bits, int64_t bit) {
    return !bits || (bits[bit >> 3] >> (bit & 7)) & 1;
}

static inline int digits(const uint8_t *p, int n, int *value) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (H. Hinnant's
   days_from_civil), as DuckDB counts them. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* 9999-12-31T23:59:59.999999Z, the last instant a lake keeps. */
static const int64_t LAST_MICROS = 253402300799999999LL;

/* YYYY-MM-DDTHH:MM:SS, then optionally "." and 1-6 digits, then "Z", an offset ±HH:MM
   (hours 00-23) or nothing (UTC, the engine's time zone): the instant in microseconds since 1970, or UNDECIDED —
   any other spelling, a year before 1000, a field out of its range (a 24th hour, a 60th
   second, a 30th of February: the engine decides what those are). */
static int plain_instant(const uint8_t *p, int64_t n, int64_t *micros) {
    int year, month, day, hour, minute, second, fraction = 0;
    if (n < 19 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':')
        return UNDECIDED;
    if (!digits(p, 4, &year) || !digits(p + 5, 2, &month) || !digits(p + 8, 2, &day) ||
        !digits(p + 11, 2, &hour) || !digits(p + 14, 2, &minute) || !digits(p + 17, 2, &second))
        return UNDECIDED;
    if (year < 1000 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 59)
        return UNDECIDED;
    int64_t at = 19;
    if (at < n && p[at] == '.') {
        int64_t first = ++at;
        while (at < n && p[at] >= '0' && p[at] <= '9') at++;
        int64_t count = at - first;
        if (count < 1 || count > 6) return UNDECIDED;
        digits(p + first, (int)count, &fraction);
        for (int64_t i = count; i < 6; i++) fraction *= 10;
    }
    int64_t rest = n - at, offset = 0; /* seconds east of UTC */
    if (rest == 6 && (p[at] == '+' || p[at] == '-') && p[at + 3] == ':') {
        int hours, minutes;
        if (!digits(p + at + 1, 2, &hours) || !digits(p + at + 4, 2, &minutes) || hours > 23 ||
            minutes > 59)
            return UNDECIDED;
        offset = (p[at] == '-' ? -1 : 1) * (int64_t)(hours * 3600 + minutes * 60);
    } else if (!(rest == 0 || (rest == 1 && p[at] == 'Z'))) {
        return UNDECIDED;
    }
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                      second - offset;
    *micros = seconds * 1000000 + fraction;
    /* past 9999-12-31 once in UTC: the lake keeps no such instant (timestamps.py), the
       engine says so */
    return *micros <= LAST_MICROS ? DECIDED : UNDECIDED;
}

/* 0001-01-01T00:00:00Z, the first instant a lake keeps. */
static const int64_t FIRST_MICROS = -62135596800000000LL;

/* An epoch count -?[0-9]{1,17} read as timestamps.py's _EPOCH reads it: seconds below
   1e11, milliseconds below 1e14, microseconds below 1e17 (by its magnitude as a DOUBLE),
   converted with the engine's own arithmetic — the count as a DOUBLE, divided by 1e3 or
   1e6, times 1e6, rounded to the nearest microsecond (to_timestamp(DOUBLE)): the same
   microsecond off that the engine is for large counts. A nanosecond count, or an instant
   outside the years a lake keeps: UNDECIDED. */
static int epoch_count(const uint8_t *p, int64_t n, int64_t *micros) {
    int64_t at = p[0] == '-';
    if (n - at < 1 || n - at > 17) return UNDECIDED;
    int64_t count = 0;
    for (int64_t i = at; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return UNDECIDED;
        count = count * 10 + (p[i] - '0');
    }
    double value = (double)(at ? -count : count), seconds;
    double size = value < 0 ? -value : value;
    if (size < 1e11)
        seconds = value;
    else if (size < 1e14)
        seconds = value / 1e3;
    else if (size < 1e17)
        seconds = value / 1e6;
    else
        return UNDECIDED;
    double us = nearbyint(seconds * 1e6);
    if (!(us >= (double)FIRST_MICROS && us <= (double)LAST_MICROS)) return UNDECIDED;
    *micros = (int64_t)us;
    return *micros >= FIRST_MICROS && *micros <= LAST_MICROS ? DECIDED : UNDECIDED;
}

/* Each text read as an instant (plain_instant) or an epoch count (epoch_count); decided[i]
   is UNDECIDED for a null. */
void adx_plain_instants(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                        int64_t valid_bit, int64_t rows, int64_t *micros, uint8_t *decided) {
    for (int64_t i = 0; i < rows; i++) {
        micros[i] = 0;
        const uint8_t *text = data + offsets[i];
        int64_t length = offsets[i + 1] - offsets[i];
        int found = UNDECIDED;
        if (is_valid(valid, valid_bit + i) && length > 0)
            found = length >= 19 && text[4] == '-' ? plain_instant(text, length, &micros[i])
                                                   : epoch_count(text, length, &micros[i]);
        decided[i] = (uint8_t)found;
    }
}

static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 significant digits and, unless it is zero,
   of a magnitude from 1e-4 up to below 1e16: its double, and the engine's text of that
   double (Python's repr: its shortest digits, which for at most 15 significant digits are
   the text's own; in plain notation in that range; ".0" for a whole number) into out,
   returning its length; or -1, UNDECIDED.

   The double is exact: the digits as an integer below 2^53 (at most 15 of them) divided
   by an exact power of ten (at most 10^18) — one correctly rounded division, as strtod
   gives, without its locale. A whole number of 16 digits (a 15-digit one times ten) is an
   integer below 10^16, converted correctly rounded. */
static int64_t plain_number(const uint8_t *p, int64_t n, double *value, uint8_t *out) {
    int64_t at = 0;
    int negative = n > 0 && p[0] == '-';
    at += negative;
    int64_t int_start = at;
    while (at < n && p[at] >= '0' && p[at] <= '9') at++;
    int64_t int_digits = at - int_start;
    if (int_digits == 0 || (int_digits > 1 && p[int_start] == '0') || int_digits > 16)
        return -1;
    int64_t frac_start = at, frac_digits = 0;
    if (at < n && p[at] == '.') {
        frac_start = ++at;
        while (at < n && p[at] >= '0' && p[at] <= '9') at++;
        frac_digits = at - frac_start;
        if (frac_digits == 0) return -1;
    }
    if (at != n) return -1;
    while (frac_digits > 0 && p[frac_start + frac_digits - 1] == '0') frac_digits--;
    uint64_t mantissa = 0;
    if (int_digits == 1 && p[int_start] == '0') { /* 0.ddd: its digits after the zeros */
        int64_t leading = 0;
        while (leading < frac_digits && p[frac_start + leading] == '0') leading++;
        if (frac_digits - leading > 15) return -1;
        if (leading < frac_digits && leading > 3) return -1; /* below 1e-4: repr's 1e-05 */
    } else {
        /* a whole part's trailing zeros are not significant when there is no fraction */
        int64_t trailing = 0;
        if (frac_digits == 0)
            while (trailing < int_digits - 1 && p[int_start + int_digits - 1 - trailing] == '0')
                trailing++;
        if (int_digits + frac_digits - trailing > 15) return -1;
        for (int64_t i = 0; i < int_digits; i++) mantissa = mantissa * 10 + (p[int_start + i] - '0');
    }
    for (int64_t i = 0; i < frac_digits; i++) mantissa = mantissa * 10 + (p[frac_start + i] - '0');
    double magnitude = frac_digits ? (double)mantissa / POWERS_OF_TEN[frac_digits] : (double)mantissa;
    *value = negative ? -magnitude : magnitude;
    int64_t length = 0;
    if (negative) out[length++] = '-';
    memcpy(out + length, p + int_start, (size_t)int_digits);
    length += int_digits;
    out[length++] = '.';
    if (frac_digits) {
        memcpy(out + length, p + frac_start, (size_t)frac_digits);
        length += frac_digits;
    } else {
        out[length++] = '0';
    }
    return length;
}

/* Each text read as a number (plain_number): values[i], decided[i], and its engine text
   as an Arrow string array's offsets and data (out_data: room for the texts' bytes plus
   three a row; an undecided or null row's text is empty). */
void adx_plain_numbers(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                       int64_t valid_bit, int64_t rows, double *values, uint8_t *decided,
                       int32_t *out_offsets, uint8_t *out_data) {
    int32_t written = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t length = -1;
        values[i] = 0;
        if (is_valid(valid, valid_bit + i))
            length = plain_number(data + offsets[i], offsets[i + 1] - offsets[i], &values[i],
                                  out_data + written);
        decided[i] = length >= 0 ? DECIDED : UNDECIDED;
        written += length > 0 ? (int32_t)length : 0;
        out_offsets[i + 1] = written;
    }
}

/* The engine's text of a double (a DOUBLE cast to VARCHAR: its shortest digits that read
   back as it, as Python's repr), for a finite double of magnitude from 1e-4 up to below
   1e15 whose shortest digits are at most 15 — prices and costs of a few decimals, the
   bids' — into out; its length, or -1 (UNDECIDED: the engine prints it).

   The fewest decimal places k whose decimal m / 10^k reads back as v exactly: m, an
   integer below 2^53, divided by an exact power of ten is one correctly rounded division,
   what reading the text does. v * 10^k is inexact, so the integers beside its rounding
   are tried too; at most 15 digits, two decimals of one length never read as one double. */
static int64_t shortest_text(double v, uint8_t *out) {
    if (v != v) return -1;
    if (v == 0) {
        int64_t length = 0;
        if (signbit(v)) out[length++] = '-';
        memcpy(out + length, "0.0", 3);
        return length + 3;
    }
    double size = fabs(v);
    if (!(size >= 1e-4 && size < 1e15)) return -1;
    int whole_digits = 1;
    for (double bound = 10; bound <= size; bound *= 10) whole_digits++;
    if (size < 1) whole_digits = 0;
    for (int k = 0; k <= 18 && whole_digits + k <= 15 + (size < 1 ? 4 : 0); k++) {
        double scaled = nearbyint(size * POWERS_OF_TEN[k]);
        for (int step = -1; step <= 1; step++) {
            double m = scaled + step;
            if (m <= 0 || m >= 9007199254740992.0) continue;
            double back = k ? m / POWERS_OF_TEN[k] : m;
            if (back != size) continue;
            uint64_t mantissa = (uint64_t)m;
            uint8_t digits_[24];
            int count = 0;
            for (uint64_t rest = mantissa; rest; rest /= 10) digits_[count++] = (uint8_t)('0' + rest % 10);
            int significant = count;
            while (significant > 0 && digits_[count - significant] == '0') significant--;
            if (significant > 15) return -1;
            int64_t length = 0;
            if (v < 0) out[length++] = '-';
            if (count <= k) { /* 0.000ddd */
                out[length++] = '0';
                out[length++] = '.';
                for (int z = 0; z < k - count; z++) out[length++] = '0';
                for (int i = count - 1; i >= 0; i--) out[length++] = digits_[i];
            } else {
                for (int i = count - 1; i >= k; i--) out[length++] = digits_[i];
                out[length++] = '.';
                if (k == 0) out[length++] = '0';
                for (int i = k - 1; i >= 0; i--) out[length++] = digits_[i];
            }
            return length;
        }
    }
    return -1;
}

/* Each double's engine text (shortest_text) as an Arrow string array's offsets and data
   (out_data: 24 bytes a row), decided[i]; a null row or an undecided one is empty. */
void adx_double_texts(const double *values, const uint8_t *valid, int64_t valid_bit,
                      int64_t rows, uint8_t *decided, int32_t *out_offsets, uint8_t *out_data) {
    int32_t written = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t length = is_valid(valid, valid_bit + i) ? shortest_text(values[i], out_data + written) : -1;
        decided[i] = length >= 0 ? DECIDED : UNDECIDED;
        written += length > 0 ? (int32_t)length : 0;
        out_offsets[i + 1] = written;
    }
}

/* The authority part of each URL, as enrich.site_host's split at the first three slashes
   finds it: with a scheme ("x:" or nothing before "//") the text between the second and
   the third slash, else the text up to the first. Written as an Arrow string array's
   offsets and data (out_data: room for the texts' bytes); a null row's is empty (the
   caller keeps the nulls). */
void adx_url_authorities(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                         int64_t valid_bit, int64_t rows, int32_t *out_offsets,
                         uint8_t *out_data) {
    int32_t written = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (is_valid(valid, valid_bit + i)) {
            const uint8_t *text = data + offsets[i];
            int64_t n = offsets[i + 1] - offsets[i];
            const uint8_t *slash = memchr(text, '/', (size_t)n);
            const uint8_t *from = text, *to = slash ? slash : text + n;
            int64_t first = slash ? slash - text : n;
            if (slash && first + 1 < n && text[first + 1] == '/' &&
                (first == 0 || text[first - 1] == ':')) {
                from = text + first + 2;
                const uint8_t *third = memchr(from, '/', (size_t)(text + n - from));
                to = third ? third : text + n;
            }
            memcpy(out_data + written, from, (size_t)(to - from));
            written += (int32_t)(to - from);
        }
        out_offsets[i + 1] = written;
    }
}

/* What kernels.text needs to know of a string array before it trims or case-folds it,
   as flags: TRIM, a valid text not empty whose first byte may begin a space separator
   (0x20, or the lead byte of U+00A0, U+1680, U+2000-U+205F, U+3000: C2, E1, E2, E3) or
   whose last byte may end one (0x20 or a continuation byte); EMPTY, a valid empty text;
   NON_ASCII, UPPER, LOWER: a valid text holds a byte >= 0x80, an ASCII upper-case,
   lower-case letter. One pass over the offsets and the bytes, where Arrow's kernels
   wrote a new column (the trim, the fold) or a flag a row to learn it. */
enum { TRIM = 1, EMPTY = 2, NON_ASCII = 4, UPPER = 8, LOWER = 16 };

/* NON_ASCII, UPPER, LOWER of n bytes: eight at a time (SWAR: a byte's high bit set when
   it is >= 0x80, or, of its low seven bits plus an offset, when it is past a bound). */
static int32_t byte_kinds(const uint8_t *p, int64_t n) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t high = 0, upper = 0, lower = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        uint64_t low7 = x & ~highs;
        uint64_t ascii = ~x & highs; /* bytes below 0x80 */
        high |= x;
        upper |= (low7 + ones * (0x80 - 'A')) & ~(low7 + ones * (0x7F - 'Z')) & ascii;
        lower |= (low7 + ones * (0x80 - 'a')) & ~(low7 + ones * (0x7F - 'z')) & ascii;
    }
    for (; i < n; i++) {
        uint8_t b = p[i];
        high |= b;
        upper |= (uint8_t)(b - 'A') < 26 ? highs : 0;
        lower |= (uint8_t)(b - 'a') < 26 ? highs : 0;
    }
    return (high & highs ? NON_ASCII : 0) | (upper & highs ? UPPER : 0) |
           (lower & highs ? LOWER : 0);
}

/* The flags above of a string array's valid texts: TRIM and EMPTY from the offsets and
   two bytes a text; NON_ASCII, UPPER, LOWER too where `letters` asks (a pass over every
   byte). */
int32_t adx_text_traits(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                        int64_t valid_bit, int64_t rows, int32_t letters) {
    int32_t traits = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (!is_valid(valid, valid_bit + i)) continue;
        int32_t from = offsets[i], to = offsets[i + 1];
        if (from == to) {
            traits |= EMPTY;
            continue;
        }
        uint8_t first = data[from], last = data[to - 1];
        if (first == 0x20 || first == 0xC2 || (first >= 0xE1 && first <= 0xE3) || last == 0x20 ||
            (last >= 0x80 && last <= 0xBF))
            traits |= TRIM;
    }
    if (!letters || rows == 0) return traits;
    if (valid == NULL) /* every byte is a text's: one run */
        return traits | byte_kinds(data + offsets[0], offsets[rows] - offsets[0]);
    for (int64_t i = 0; i < rows; i++)
        if (is_valid(valid, valid_bit + i))
            traits |= byte_kinds(data + offsets[i], offsets[i + 1] - offsets[i]);
    return traits;
}

/* Each text that is a plain dotted quad — four runs of one to three decimal digits joined
   by dots, nothing before or after (kernels/ivt.py's _PLAIN_IPV4) — as the number the
   engine's reading gives it (o1 * 2^24 + o2 * 2^16 + o3 * 2^8 + o4, an octet up to 999
   as it is); decided[i] is UNDECIDED for any other text and a null (the caller reads
   those as before). The invalid-traffic check judged a piece's addresses by a regular
   expression, a split and a cast over their distinct texts, found by hashing every row. */
void adx_plain_ipv4s(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                     int64_t valid_bit, int64_t rows, int64_t *numbers, uint8_t *decided) {
    for (int64_t i = 0; i < rows; i++) {
        numbers[i] = 0;
        decided[i] = UNDECIDED;
        if (!is_valid(valid, valid_bit + i)) continue;
        const uint8_t *p = data + offsets[i];
        int64_t n = offsets[i + 1] - offsets[i], at = 0, number = 0;
        int parts = 0;
        while (parts < 4) {
            int64_t octet = 0, start = at;
            while (at < n && at - start < 3 && p[at] >= '0' && p[at] <= '9')
                octet = octet * 10 + (p[at++] - '0');
            if (at == start) break;
            number = number * 256 + octet;
            parts++;
            if (parts < 4) {
                if (at >= n || p[at] != '.') break;
                at++;
            }
        }
        if (parts == 4 && at == n) {
            numbers[i] = number;
            decided[i] = DECIDED;
        }
    }
}

/* opens[i]: whether the valid text i begins with "{" or "[" (a field given as a JSON
   object or array); returns how many do. The impressions' check asked Arrow's starts_with
   twice for each of five id fields (≈ 2.4 ms a piece), NumPy's gather of first bytes
   still ≈ 1.8 ms. */
int64_t adx_opens_containers(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                             int64_t valid_bit, int64_t rows, uint8_t *opens) {
    int64_t count = 0;
    for (int64_t i = 0; i < rows; i++) {
        uint8_t found = 0;
        if (offsets[i + 1] > offsets[i] && is_valid(valid, valid_bit + i)) {
            uint8_t first = data[offsets[i]];
            found = first == '{' || first == '[';
        }
        opens[i] = found;
        count += found;
    }
    return count;
}

/* A map's key or value as kernels/standardize.py's _plain_rendering takes it: QUOTED_TEXT
   ([A-Za-z0-9_.|/@+\- ,:=()\[\]{}]*) at all, and PLAIN_TEXT (runs of [A-Za-z0-9_.|/@+\-]
   joined by spaces, none at either end) when shown bare. */
static int quoted_char(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '|' || c == '/' || c == '@' || c == '+' || c == '-' ||
           c == ' ' || c == ',' || c == ':' || c == '=' || c == '(' || c == ')' || c == '[' ||
           c == ']' || c == '{' || c == '}';
}

static int plain_char(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '|' || c == '/' || c == '@' || c == '+' || c == '-';
}

/* 0: not rendered here; 1: shown bare; 2: shown between single quotes. */
static int text_kind(const uint8_t *p, int64_t n) {
    int plain = n > 0 && p[0] != ' ' && p[n - 1] != ' ';
    for (int64_t i = 0; i < n; i++) {
        if (!quoted_char(p[i])) return 0;
        if (!plain_char(p[i]) && p[i] != ' ') plain = 0;
    }
    if (plain && n == 4 && (p[0] | 0x20) == 'n' && (p[1] | 0x20) == 'u' && (p[2] | 0x20) == 'l' &&
        (p[3] | 0x20) == 'l')
        plain = 0; /* "null" in any case: quoted */
    return plain ? 1 : 2;
}

enum { MAP_ENTRIES_MOST = 64 };

static uint8_t *put(uint8_t *out, const uint8_t *p, int64_t n) {
    if (n) memcpy(out, p, (size_t)n);
    return out + n;
}

/* Each map of texts (its entries keys[map_offsets[i]..map_offsets[i+1]), items likewise)
   rendered as the engine renders it — CAST(m AS VARCHAR), "{k=v, k2='v 2'}", into
   text_offsets/text_data, and to_json(m), {"k":"v"}, into json_offsets/json_data — where
   _plain_rendering would: every key and value QUOTED_TEXT, no value null, no key twice.
   decided[i] is UNDECIDED for any other map (an empty rendering) and a null map. The
   bids' distinct targeting maps (≈ 4,400 a piece) went through an engine query, ≈ 15 ms. */
void adx_map_renders(const int32_t *map_offsets, const uint8_t *map_valid, int64_t map_bit,
                     int64_t rows, const int32_t *key_offsets, const uint8_t *key_data,
                     const int32_t *item_offsets, const uint8_t *item_data,
                     const uint8_t *item_valid, int64_t item_bit, int32_t *text_offsets,
                     uint8_t *text_data, int32_t *json_offsets, uint8_t *json_data,
                     uint8_t *decided) {
    uint8_t *text = text_data, *json = json_data;
    text_offsets[0] = json_offsets[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        uint8_t *text_start = text, *json_start = json;
        int32_t first = map_offsets[i], last = map_offsets[i + 1];
        /* (keys compared pairwise: a map of many entries is left to the engine) */
        int ok = is_valid(map_valid, map_bit + i) && last - first <= MAP_ENTRIES_MOST;
        for (int32_t e = first; ok && e < last; e++) {
            if (!is_valid(item_valid, item_bit + e)) {
                ok = 0;
                break;
            }
            const uint8_t *k = key_data + key_offsets[e], *v = item_data + item_offsets[e];
            int64_t kn = key_offsets[e + 1] - key_offsets[e];
            int64_t vn = item_offsets[e + 1] - item_offsets[e];
            for (int32_t d = first; d < e && ok; d++) /* a key twice: the engine's error */
                if (key_offsets[d + 1] - key_offsets[d] == kn &&
                    (kn == 0 || memcmp(key_data + key_offsets[d], k, (size_t)kn) == 0))
                    ok = 0;
            int kk = text_kind(k, kn), vk = text_kind(v, vn);
            if (!ok || !kk || !vk) {
                ok = 0;
                break;
            }
            *text++ = e == first ? '{' : ',';
            if (e != first) *text++ = ' ';
            if (kk == 2) *text++ = '\'';
            text = put(text, k, kn);
            if (kk == 2) *text++ = '\'';
            *text++ = '=';
            if (vk == 2) *text++ = '\'';
            text = put(text, v, vn);
            if (vk == 2) *text++ = '\'';
            *json++ = e == first ? '{' : ',';
            *json++ = '"';
            json = put(json, k, kn);
            *json++ = '"';
            *json++ = ':';
            *json++ = '"';
            json = put(json, v, vn);
            *json++ = '"';
        }
        if (ok) {
            if (first == last) *text++ = '{', *json++ = '{';
            *text++ = '}';
            *json++ = '}';
        } else {
            text = text_start, json = json_start;
        }
        decided[i] = ok ? DECIDED : UNDECIDED;
        text_offsets[i + 1] = (int32_t)(text - text_data);
        json_offsets[i + 1] = (int32_t)(json - json_data);
    }
}
