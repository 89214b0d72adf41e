/* Avro records to Arrow columns (advertisex/formats/avrofmt.py).

   One block of an object container, already inflated, holding `count` records of a flat
   record schema: each field a boolean, int, long, float, double, string or a map of
   strings, or a union of null and one of those. The bytes come from producers we do not
   trust: every read is bounds-checked, every string is checked to be UTF-8 (Arrow's
   strings must be), and a block must hold exactly its records — no byte missing, none
   left over. Anything else is refused (a negative return) and the caller reads the file
   another way.

   Two passes over the same bytes: the first (`fill` 0) checks everything and sizes the
   columns — the bytes of each field's strings (of a map's keys and of its values), the
   entries of each map — so that the caller allocates each column exactly; the second
   (`fill` 1) writes them. The second trusts what the first checked; the caller sets the
   first of every offsets column to 0.

   Columns as Arrow lays them out (`out`, seven pointers a field):
     [0] validity bitmap, zeroed by the caller (only for a union with null; else NULL)
     [1] values: a boolean bitmap (zeroed), int32, int64, float or double values; a
         string's or a map's int32 offsets (count + 1 of them, into [2] or into entries)
     [2] a string's bytes
     [3] [4] a map's keys: int32 offsets (entries + 1) and bytes
     [5] [6] a map's values: int32 offsets and bytes
   Plain C with no Python API, loaded with ctypes. */

#include <stdint.h>
#include <string.h>

enum { K_NULL = 0, K_BOOLEAN, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_STRING, K_MAP };

#define OUT 7   /* pointers per field in `out` */
#define SIZES 3 /* per field in `sizes`: string (or key) bytes, value bytes, map entries */

typedef struct {
    const uint8_t *p, *end;
} Cursor;

/* A zig-zag varint of at most 10 bytes; 0 where the bytes end first or it runs longer. */
static inline int read_long(Cursor *c, int64_t *value) {
    if (c->p < c->end && !(*c->p & 0x80)) { /* one byte: most lengths, every union branch */
        uint8_t b = *c->p++;
        *value = (int64_t)(b >> 1) ^ -(int64_t)(b & 1);
        return 1;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end) return 0;
        uint8_t b = *c->p++;
        if (shift == 63 && b > 1) return 0; /* past 64 bits */
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *value = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 1;
        }
    }
    return 0;
}

/* Whether n bytes at s are UTF-8 as Arrow requires (no overlong forms, no surrogates,
   nothing past U+10FFFF). Sixteen ASCII bytes a step first. */
static int utf8(const uint8_t *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        if (i + 16 <= n) {
            uint64_t w[2];
            memcpy(w, s + i, 16);
            if (!((w[0] | w[1]) & 0x8080808080808080ULL)) {
                i += 16;
                continue;
            }
        } else if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int more;
        uint32_t low = 0x80, high = 0xBF; /* bounds of the byte after the lead */
        if (b >= 0xC2 && b <= 0xDF)
            more = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            more = 2;
            if (b == 0xE0) low = 0xA0;
            if (b == 0xED) high = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            more = 3;
            if (b == 0xF0) low = 0x90;
            if (b == 0xF4) high = 0x8F;
        } else
            return 0;
        if (i + more >= n) return 0;
        if (s[i + 1] < low || s[i + 1] > high) return 0;
        for (int k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += more + 1;
    }
    return 1;
}

/* Whether n bytes at s are all ASCII: a word at a time, the last word overlapping the one
   before it (most texts here are a few bytes: a loop's tail cost as much as its words). */
static inline int ascii(const uint8_t *s, int64_t n) {
    if (n >= 8) {
        uint64_t any = 0, w;
        for (int64_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&w, s + i, 8);
            any |= w;
        }
        memcpy(&w, s + n - 8, 8);
        return !((any | w) & 0x8080808080808080ULL);
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return !((a | b) & 0x80808080u);
    }
    uint8_t any = 0;
    for (int64_t i = 0; i < n; i++) any |= s[i];
    return !(any & 0x80);
}

/* A string: its length and bytes. Sized, checked (pass 1) or copied (pass 2). */
static inline int read_string(Cursor *c, int fill, int64_t *bytes, int32_t *offsets, int64_t at,
                              uint8_t *data) {
    int64_t n;
    if (!read_long(c, &n) || n < 0 || n > c->end - c->p) return 0;
    if (fill) {
        memcpy(data + offsets[at], c->p, (size_t)n);
        offsets[at + 1] = offsets[at] + (int32_t)n;
    } else if (!ascii(c->p, n) && !utf8(c->p, n))
        return 0;
    *bytes += n;
    c->p += n;
    return 1;
}

static inline void set_bit(uint8_t *bits, int64_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }

/* Both passes, and where each record starts (`starts`, count + 1 offsets, the last the
   block's length; NULL: not asked). Returns 0, or -(1 + the byte offset in the block where
   reading failed). */
static int64_t walk(const uint8_t *block, int64_t length, int64_t count, int32_t fields,
                    const int32_t *kinds, const int32_t *null_branch, int64_t *sizes,
                    void *const *out, int32_t fill, int64_t *starts) {
    Cursor c = {block, block + length};
    for (int32_t f = 0; f < SIZES * fields; f++) sizes[f] = 0; /* counted again when filling */
    /* Every field read here takes a byte at least, so a record does: a count past the
       block's bytes (a header's claim) is refused before a loop runs that long. */
    if (fields < 1 || count < 0 || count > length) goto refused;
    for (int64_t r = 0; r < count; r++) {
        if (starts) starts[r] = c.p - block;
        for (int32_t f = 0; f < fields; f++) {
            void *const *o = out + (int64_t)OUT * f;
            int64_t *size = sizes + (int64_t)SIZES * f;
            int32_t kind = kinds[f];
            int present = 1;
            if (null_branch[f] >= 0) {
                int64_t branch;
                if (!read_long(&c, &branch) || (branch != 0 && branch != 1)) goto refused;
                present = branch != null_branch[f];
                if (present && fill) set_bit((uint8_t *)o[0], r);
            }
            if (!present) {
                /* a null: no bytes; offsets repeat, values stay as allocated */
                if (fill && (kind == K_STRING || kind == K_MAP))
                    ((int32_t *)o[1])[r + 1] = ((int32_t *)o[1])[r];
                else if (fill && (kind == K_INT || kind == K_FLOAT))
                    ((int32_t *)o[1])[r] = 0;
                else if (fill && (kind == K_LONG || kind == K_DOUBLE))
                    ((int64_t *)o[1])[r] = 0;
                continue;
            }
            switch (kind) { /* K_NULL alone takes no byte: not read here */
            case K_BOOLEAN:
                if (c.p >= c.end || *c.p > 1) goto refused;
                if (fill && *c.p) set_bit((uint8_t *)o[1], r);
                c.p++;
                break;
            case K_INT: {
                int64_t v;
                if (!read_long(&c, &v) || v < INT32_MIN || v > INT32_MAX) goto refused;
                if (fill) ((int32_t *)o[1])[r] = (int32_t)v;
                break;
            }
            case K_LONG: {
                int64_t v;
                if (!read_long(&c, &v)) goto refused;
                if (fill) ((int64_t *)o[1])[r] = v;
                break;
            }
            case K_FLOAT:
            case K_DOUBLE: {
                int64_t n = kind == K_FLOAT ? 4 : 8;
                if (c.end - c.p < n) goto refused;
                if (fill) memcpy((uint8_t *)o[1] + n * r, c.p, (size_t)n);
                c.p += n;
                break;
            }
            case K_STRING:
                if (!read_string(&c, fill, &size[0], (int32_t *)o[1], r, (uint8_t *)o[2]))
                    goto refused;
                break;
            case K_MAP: {
                int32_t *entry = (int32_t *)o[1];
                for (;;) {
                    int64_t items;
                    if (!read_long(&c, &items)) goto refused;
                    if (items == 0) break;
                    if (items < 0) { /* a block of items with its size in bytes after it */
                        int64_t bytes;
                        if (items == INT64_MIN || !read_long(&c, &bytes) || bytes < 0)
                            goto refused;
                        items = -items;
                    }
                    if (items > c.end - c.p) goto refused; /* each item takes bytes */
                    for (int64_t i = 0; i < items; i++) {
                        int64_t e = size[2] + i;
                        if (!read_string(&c, fill, &size[0], (int32_t *)o[3], e, (uint8_t *)o[4]) ||
                            !read_string(&c, fill, &size[1], (int32_t *)o[5], e, (uint8_t *)o[6]))
                            goto refused;
                    }
                    size[2] += items;
                }
                if (fill) entry[r + 1] = (int32_t)size[2];
                break;
            }
            default:
                goto refused;
            }
        }
    }
    if (c.p != c.end) goto refused; /* bytes left after the block's records */
    if (starts) starts[count] = length;
    return 0;
refused:
    return -1 - (int64_t)(c.p - block);
}

int64_t adx_avro_block(const uint8_t *block, int64_t length, int64_t count, int32_t fields,
                       const int32_t *kinds, const int32_t *null_branch, int64_t *sizes,
                       void *const *out, int32_t fill) {
    return walk(block, length, count, fields, kinds, null_branch, sizes, out, fill, 0);
}

/* The first pass alone, telling where each record starts: an erasure copies the bytes of
   the records it keeps as they are (formats/scrub.py) instead of decoding them all. */
int64_t adx_avro_starts(const uint8_t *block, int64_t length, int64_t count, int32_t fields,
                        const int32_t *kinds, const int32_t *null_branch, int64_t *sizes,
                        void *const *out, int64_t *starts) {
    return walk(block, length, count, fields, kinds, null_branch, sizes, out, 0, starts);
}
