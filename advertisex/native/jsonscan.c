/* One pass over JSON texts that finds, in each object, where its known fields' values are.

   Loaded by advertisex/native/jsonscan.py (ctypes, which releases the GIL for the call).
   Plain C with no Python API: the caller hands over an Arrow string array's buffers and
   arrays it allocated, and reads back what this wrote.

   The scanner decides only what it is sure DuckDB (yyjson) decides the same way. A text is
   SCANNED when it is one JSON object — whitespace around it allowed — whose every string
   is ASCII without escapes or control characters, every number plain (no exponent, at most
   18 digits before the point), nested at most MAX_DEPTH deep, and whose known keys appear
   at most once, each with a string, null, an integer (not "-0"), or — where the caller
   allows it — a number with a fraction. Every such text is valid JSON to yyjson too, and a
   known field's value is what DuckDB's json_transform(raw, ... "VARCHAR" ...) gives: a
   string's bytes, an integer's digits (yyjson renders an int64 as written), or NULL. A
   fraction's text is given as written where json_transform gives yyjson's rendering
   ("1.50" → "1.5"): only for fields whose text is read as a DOUBLE, where both spellings
   are the same number. Every other text is UNDECIDED, and the caller asks DuckDB: the
   scanner never says a text is invalid. (adx_json_kinds, for the framer, says a text cut
   short is: see there.) */

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { SCANNED = 0, UNDECIDED = 1 };
enum { MAX_DEPTH = 32, MAX_INTEGER_DIGITS = 18 };

typedef struct {
    const uint8_t *end;
    int depth;
} cursor;

static inline int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline const uint8_t *skip_space(const uint8_t *p, const uint8_t *end) {
    while (p < end && is_space(*p)) p++;
    return p;
}

/* The bytes that end a run of plain string text: the quote, the backslash, control
   characters and every byte of a multi-byte character (not decided here). */
static const uint8_t STOPS_A_STRING[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};

/* p is past the opening quote: the closing quote, or NULL for what is not decided here. */
static inline const uint8_t *string_end(const uint8_t *p, const uint8_t *end) {
#if defined(__SSE2__)
    /* Sixteen bytes a step while sixteen are left of the text: a byte stops the run if it
       is the quote or the backslash, or below 0x20 as a signed byte — a control character,
       or any byte from 0x80 up (negative). Strings here are mostly ids, URLs and user
       agents (30-150 bytes); a byte at a time, this loop was two thirds of the scan. */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)p);
        __m128i stops = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)),
            _mm_cmplt_epi8(bytes, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(stops);
        if (mask) {
            p += __builtin_ctz(mask);
            return *p == '"' ? p : NULL;
        }
        p += 16;
    }
#endif
    while (p < end && !STOPS_A_STRING[*p]) p++;
    return p < end && *p == '"' ? p : NULL;
}

/* A number as RFC 8259 spells it, without an exponent and with at most MAX_INTEGER_DIGITS
   before the point (yyjson reads huge or exponent-heavy numbers its own way). Past the
   number, or NULL. *kind: INTEGER is one yyjson renders as written (an int64's digits and
   sign); DECIMAL has a fraction (rendered shortest: "1.50" → "1.5", the same double);
   MINUS_ZERO is "-0", which yyjson reads as the integer 0. */
enum { INTEGER, DECIMAL, MINUS_ZERO };
static const uint8_t *number_end(const uint8_t *p, const uint8_t *end, int *kind) {
    int negative = 0;
    *kind = INTEGER;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end) return NULL;
    int leading_zero = *p == '0';
    if (leading_zero) {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        const uint8_t *first = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p - first > MAX_INTEGER_DIGITS) return NULL;
    } else {
        return NULL;
    }
    int fraction = p < end && *p == '.';
    if (fraction) {
        p++;
        const uint8_t *first = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == first) return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return NULL;
    *kind = fraction ? DECIMAL : (negative && leading_zero) ? MINUS_ZERO : INTEGER;
    return p;
}

static const uint8_t *value_end(const uint8_t *p, cursor *c);

static const uint8_t *literal_end(const uint8_t *p, const uint8_t *end, const char *word, size_t n) {
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

/* Past a whole container (p at its bracket), every value in it checked; NULL: undecided. */
static const uint8_t *container_end(const uint8_t *p, cursor *c) {
    const uint8_t *end = c->end;
    uint8_t close = *p == '{' ? '}' : ']';
    int object = *p == '{';
    if (++c->depth > MAX_DEPTH) return NULL;
    p = skip_space(p + 1, end);
    if (p < end && *p == close) {
        c->depth--;
        return p + 1;
    }
    for (;;) {
        if (object) {
            if (p >= end || *p != '"') return NULL;
            p = string_end(p + 1, end);
            if (!p) return NULL;
            p = skip_space(p + 1, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_space(p + 1, end);
        }
        p = value_end(p, c);
        if (!p) return NULL;
        p = skip_space(p, end);
        if (p >= end) return NULL;
        if (*p == close) {
            c->depth--;
            return p + 1;
        }
        if (*p != ',') return NULL;
        p = skip_space(p + 1, end);
    }
}

static const uint8_t *value_end(const uint8_t *p, cursor *c) {
    const uint8_t *end = c->end;
    int kind;
    if (p >= end) return NULL;
    switch (*p) {
    case '"': {
        const uint8_t *q = string_end(p + 1, end);
        return q ? q + 1 : NULL;
    }
    case '{':
    case '[': return container_end(p, c);
    case 't': return literal_end(p, end, "true", 4);
    case 'f': return literal_end(p, end, "false", 5);
    case 'n': return literal_end(p, end, "null", 4);
    default: return number_end(p, end, &kind);
    }
}

/* The index of the known key spelled by [key, key + n), or -1. Records mostly list their
   fields in one order: the key after the last one found is tried first. */
static inline int known_key(const uint8_t *key, int32_t n, const char *const *keys,
                            const int32_t *key_lengths, int32_t count, int32_t hint) {
    if (hint < count && key_lengths[hint] == n && memcmp(key, keys[hint], (size_t)n) == 0)
        return hint;
    for (int32_t k = 0; k < count; k++) {
        if (key_lengths[k] == n && memcmp(key, keys[k], (size_t)n) == 0) return k;
    }
    return -1;
}

/* One text: SCANNED with its known fields' spans and its key count, or UNDECIDED. A span
   is (start, length) in the data buffer, length -1 for a field absent or null. */
static int scan_one(const uint8_t *data, int64_t start, int64_t stop, const char *const *keys,
                    const int32_t *key_lengths, const uint8_t *number_ok, int32_t count,
                    int64_t *spans, int32_t *key_count) {
    const uint8_t *p = data + start, *end = data + stop;
    cursor c = {end, 1};
    int32_t keys_seen = 0, hint = 0;
    for (int32_t k = 0; k < count; k++) spans[2 * k + 1] = -1;
    uint64_t seen = 0;  /* known keys met so far (count <= 64) */
    p = skip_space(p, end);
    if (p >= end || *p != '{') return UNDECIDED;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p != '"') return UNDECIDED;
            const uint8_t *key = p + 1;
            p = string_end(key, end);
            if (!p) return UNDECIDED;
            int k = known_key(key, (int32_t)(p - key), keys, key_lengths, count, hint);
            hint = k + 1;
            p = skip_space(p + 1, end);
            if (p >= end || *p != ':') return UNDECIDED;
            p = skip_space(p + 1, end);
            if (p >= end) return UNDECIDED;
            keys_seen++;
            if (k < 0) {
                p = value_end(p, &c);
                if (!p) return UNDECIDED;
            } else {
                if (seen & ((uint64_t)1 << k)) return UNDECIDED;  /* a known key twice */
                seen |= (uint64_t)1 << k;
                if (*p == '"') {
                    const uint8_t *q = string_end(p + 1, end);
                    if (!q) return UNDECIDED;
                    spans[2 * k] = (int64_t)(p + 1 - data);
                    spans[2 * k + 1] = (int64_t)(q - p - 1);
                    p = q + 1;
                } else if (*p == 'n') {
                    p = literal_end(p, end, "null", 4);
                    if (!p) return UNDECIDED;
                } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
                    int kind;
                    const uint8_t *q = number_end(p, end, &kind);
                    if (!q || !(kind == INTEGER || (kind == DECIMAL && number_ok[k])))
                        return UNDECIDED;
                    spans[2 * k] = (int64_t)(p - data);
                    spans[2 * k + 1] = (int64_t)(q - p);
                    p = q;
                } else {
                    return UNDECIDED;  /* another type: its text is yyjson's to render */
                }
            }
            p = skip_space(p, end);
            if (p >= end) return UNDECIDED;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p != ',') return UNDECIDED;
            p = skip_space(p + 1, end);
        }
    }
    if (skip_space(p, end) != end) return UNDECIDED;
    *key_count = keys_seen;
    return SCANNED;
}

/* Scan texts [0, rows): text i is data[offsets[i], offsets[i + 1]), the buffers of an Arrow
   string array from its first row. Each known field k is written as an Arrow string
   array's buffers: out_data[k] (room for all the texts' bytes),
   out_offsets[k] (rows + 1) and out_valid[k] (a validity bitmap of rows bits). A
   text UNDECIDED — or skipped, skip[i] set — has every field null there. key_counts[i] is
   the text's number of keys (SCANNED only). Returns how many texts were SCANNED. */
int64_t adx_scan_objects(const uint8_t *data, const int32_t *offsets, int64_t rows,
                         const uint8_t *skip, const char *const *keys, const int32_t *key_lengths,
                         const uint8_t *number_ok, int32_t count, uint8_t *status,
                         int32_t *key_counts, uint8_t **out_data, int32_t **out_offsets,
                         uint8_t **out_valid) {
    int64_t spans[2 * 64];
    int64_t scanned = 0;
    if (count > 64) return -1;
    for (int32_t k = 0; k < count; k++) {
        out_offsets[k][0] = 0;
        memset(out_valid[k], 0, (size_t)((rows + 7) / 8));
    }
    for (int64_t i = 0; i < rows; i++) {
        int found = UNDECIDED;
        key_counts[i] = 0;
        if (!(skip && skip[i]))
            found = scan_one(data, offsets[i], offsets[i + 1], keys, key_lengths, number_ok,
                             count, spans, &key_counts[i]);
        status[i] = (uint8_t)found;
        scanned += found == SCANNED;
        for (int32_t k = 0; k < count; k++) {
            int32_t at = out_offsets[k][i];
            if (found == SCANNED && spans[2 * k + 1] >= 0) {
                memcpy(out_data[k] + at, data + spans[2 * k], (size_t)spans[2 * k + 1]);
                at += (int32_t)spans[2 * k + 1];
                out_valid[k][i >> 3] |= (uint8_t)(1u << (i & 7));
            }
            out_offsets[k][i + 1] = at;
        }
    }
    return scanned;
}

/* What one text is, for the framer (which asks no field): a valid OBJECT, ANOTHER_VALUE
   that is valid JSON (an array, a number, a string, a literal) by the same strict rules
   as an object's values — which yyjson reads the same way —, or CUT: a text that ends
   inside a string or with a bracket still open, which no JSON parser accepts. Brackets
   and quotes are counted outside strings, escapes skipped; a '/' outside strings (a
   comment, to a parser that allows them) leaves the text UNDECIDED, as does anything
   else (trailing content, non-ASCII text, an exponent...): DuckDB decides those. */
enum { OBJECT = 0, ANOTHER_VALUE = 2, CUT = 3 };

static int cut_short(const uint8_t *p, const uint8_t *end) {
    int64_t depth = 0;
    while (p < end) {
        uint8_t b = *p++;
        if (b == '"') {
            for (;;) {
                if (p >= end) return 1; /* the string never ends */
                uint8_t s = *p++;
                if (s == '"') break;
                if (s == '\\') {
                    if (p >= end) return 1;
                    p++;
                }
            }
        } else if (b == '{' || b == '[') {
            depth++;
        } else if (b == '}' || b == ']') {
            if (--depth < 0) return 0; /* closes what never opened: not a cut */
        } else if (b == '/') {
            return 0;
        }
    }
    return depth > 0;
}

static int kind_one(const uint8_t *p, const uint8_t *end) {
    cursor c = {end, 0};
    p = skip_space(p, end);
    if (p >= end) return UNDECIDED;
    const uint8_t *q = value_end(p, &c);
    if (q) {
        if (skip_space(q, end) != end) return UNDECIDED;
        return *p == '{' ? OBJECT : ANOTHER_VALUE;
    }
    return cut_short(p, end) ? CUT : UNDECIDED;
}

/* kinds[i] of texts [0, rows) (offsets as adx_scan_objects reads them); skip[i] set: left
   UNDECIDED. Returns how many were UNDECIDED. */
int64_t adx_json_kinds(const uint8_t *data, const int32_t *offsets, int64_t rows,
                       const uint8_t *skip, uint8_t *kinds) {
    int64_t undecided = 0;
    for (int64_t i = 0; i < rows; i++) {
        int kind = UNDECIDED;
        if (!(skip && skip[i])) kind = kind_one(data + offsets[i], data + offsets[i + 1]);
        kinds[i] = (uint8_t)kind;
        undecided += kind == UNDECIDED;
    }
    return undecided;
}

/* Where each newline of data[0, size) is, in order, into out (room for cap); how many were
   found — more than cap when out was too small (then only the first cap were written).
   memchr, not a comparison of every byte: glibc's reads 32-64 bytes a step, and an NDJSON
   line is a few hundred bytes. */
int64_t adx_newlines(const uint8_t *data, int64_t size, int64_t *out, int64_t cap) {
    const uint8_t *p = data, *end = data + size;
    int64_t found = 0;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        if (found < cap) out[found] = nl - data;
        found++;
        p = nl + 1;
    }
    return found;
}
