/* Payload hashes and text hashes (advertisex/kernels/fingerprint.py, dedupe.py).

   A payload is a row's texts joined by a separator, a null written as a mark (Arrow's
   binary_join_element_wise with null_handling="replace"); its hash is XXH3-64 of those
   bytes, seed 0 (what polars-hash's xxh3_64 gives). Each row is joined and hashed while
   its bytes are in the cache; the joined texts are not kept (the few wanted are joined
   again by Arrow).

   Plain C with no Python API, loaded with ctypes: a column is an Arrow string array's
   buffers — int32 value offsets (already at the array's first row), its data, and its
   validity bitmap with the bit of its first row (NULL: no nulls). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include "xxhash.h"

static inline int is_valid(const uint8_t *bits, int64_t bit) {
    return bits == NULL || (bits[bit >> 3] >> (bit & 7)) & 1;
}

/* n bytes at p, returning past them. The marks are one byte each (kernels.fingerprint):
   written, not copied — two small copies a field were a third of a row's time. */
static inline uint8_t *put(uint8_t *p, const uint8_t *bytes, int32_t n) {
    if (n == 1)
        *p = *bytes;
    else
        memcpy(p, bytes, (size_t)n);
    return p + n;
}

/* Each row's payload hashed, the texts not kept: a row is joined into a buffer of this
   call's (on the stack, grown on the heap for a longer row) and hashed there, while in
   the cache. Returns 0, or -1 where memory for a row ran out. */
int32_t adx_payload_row_hashes(int32_t columns, const int32_t *const *offsets,
                               const uint8_t *const *data, const uint8_t *const *valid,
                               const int64_t *valid_bit, int64_t rows, const uint8_t *separator,
                               int32_t separator_length, const uint8_t *null_mark,
                               int32_t null_length, uint64_t *hashes) {
    uint8_t local[16384], *row = local;
    size_t capacity = sizeof local;
    for (int64_t i = 0; i < rows; i++) {
        size_t length = (size_t)separator_length * (size_t)(columns - 1);
        for (int32_t c = 0; c < columns; c++)
            length += is_valid(valid[c], valid_bit[c] + i)
                          ? (size_t)(offsets[c][i + 1] - offsets[c][i])
                          : (size_t)null_length;
        if (length > capacity) {
            uint8_t *bigger = (uint8_t *)malloc(length);
            if (bigger == NULL) {
                if (row != local) free(row);
                return -1;
            }
            if (row != local) free(row);
            row = bigger;
            capacity = length;
        }
        uint8_t *p = row;
        for (int32_t c = 0; c < columns; c++) {
            if (c) p = put(p, separator, separator_length);
            if (is_valid(valid[c], valid_bit[c] + i)) {
                int32_t from = offsets[c][i];
                p = put(p, data[c] + from, offsets[c][i + 1] - from);
            } else {
                p = put(p, null_mark, null_length);
            }
        }
        hashes[i] = XXH3_64bits(row, (size_t)(p - row));
    }
    if (row != local) free(row);
    return 0;
}

/* Each text's XXH3-64 (seed 0); a null's is the hash of no bytes with seed 1, apart from
   every text's but by chance. */
void adx_text_hashes(const int32_t *offsets, const uint8_t *data, const uint8_t *valid,
                     int64_t valid_bit, int64_t rows, uint64_t *hashes) {
    const uint64_t null_hash = XXH3_64bits_withSeed("", 0, 1);
    for (int64_t i = 0; i < rows; i++) {
        if (is_valid(valid, valid_bit + i))
            hashes[i] = XXH3_64bits(data + offsets[i], (size_t)(offsets[i + 1] - offsets[i]));
        else
            hashes[i] = null_hash;
    }
}

/* One map of a column of maps of strings (kernels.standardize's targeting maps): its
   entries' keys and values, each an Arrow string array's buffers (at the arrays' first
   row: a map's entries are numbered from there), and the map's offsets and validity. */
typedef struct {
    const int32_t *offsets; /* the maps', at the chunk's first map */
    const uint8_t *valid;
    int64_t bit;
    const int32_t *key_offsets;
    const uint8_t *key_data;
    const int32_t *value_offsets;
    const uint8_t *value_data;
    const uint8_t *value_valid;
    int64_t value_bit;
} map_chunk;

static inline int same_text(const int32_t *o1, const uint8_t *d1, int64_t i1, const int32_t *o2,
                            const uint8_t *d2, int64_t i2) {
    int32_t n = o1[i1 + 1] - o1[i1];
    return n == o2[i2 + 1] - o2[i2] && (n == 0 || memcmp(d1 + o1[i1], d2 + o2[i2], (size_t)n) == 0);
}

/* Whether two maps hold the same entries in the same order (keys are never null). */
static int same_map(const map_chunk *a, int64_t i, const map_chunk *b, int64_t j) {
    int32_t from_a = a->offsets[i], from_b = b->offsets[j], n = a->offsets[i + 1] - from_a;
    if (n != b->offsets[j + 1] - from_b) return 0;
    for (int32_t k = 0; k < n; k++) {
        int64_t x = from_a + k, y = from_b + k;
        if (!same_text(a->key_offsets, a->key_data, x, b->key_offsets, b->key_data, y)) return 0;
        int valid = is_valid(a->value_valid, a->value_bit + x);
        if (valid != is_valid(b->value_valid, b->value_bit + y)) return 0;
        if (valid &&
            !same_text(a->value_offsets, a->value_data, x, b->value_offsets, b->value_data, y))
            return 0;
    }
    return 1;
}

/* A map's hash: of its keys' bytes and of its values' bytes, each a range of its array's
   data (two hashes a map, not one an entry). Maps whose texts split the bytes otherwise,
   or whose values are null where the other's are empty, share it: same_map tells them. */
static inline uint64_t map_hash(const map_chunk *c, int64_t i) {
    int32_t from = c->offsets[i], to = c->offsets[i + 1];
    const int32_t *k = c->key_offsets, *v = c->value_offsets;
    uint64_t h = XXH3_64bits_withSeed(c->key_data + k[from], (size_t)(k[to] - k[from]),
                                      (uint64_t)(to - from));
    return XXH3_64bits_withSeed(c->value_data + v[from], (size_t)(v[to] - v[from]), h);
}

/* Room for a table's distinct maps: each one's hash, chunk and row. */
typedef struct {
    uint64_t *hashes;
    int32_t *chunks;
    int64_t *rows;
} distinct_maps;

static int grow_distinct(distinct_maps *d, int64_t capacity) {
    uint64_t *hashes = (uint64_t *)realloc(d->hashes, (size_t)capacity * sizeof(uint64_t));
    if (hashes) d->hashes = hashes;
    int32_t *chunks = (int32_t *)realloc(d->chunks, (size_t)capacity * sizeof(int32_t));
    if (chunks) d->chunks = chunks;
    int64_t *rows = (int64_t *)realloc(d->rows, (size_t)capacity * sizeof(int64_t));
    if (rows) d->rows = rows;
    return hashes && chunks && rows;
}

/* Each map's code among the distinct maps of the column (exact: maps of one hash are
   compared entry by entry), in order of first appearance; -1 for a null map. firsts[d]:
   the row (across the chunks) where distinct map d first appears. Returns the number of
   distinct maps, or -1 where memory ran out. The table grows with the distinct maps (a
   piece's 140 k bids hold ≈ 4,600): sized for every row, its fresh pages cost more than
   the hashing. */
int64_t adx_map_codes(int32_t chunks, const int64_t *rows, const int32_t *const *offsets,
                      const uint8_t *const *valid, const int64_t *bit,
                      const int32_t *const *key_offsets, const uint8_t *const *key_data,
                      const int32_t *const *value_offsets, const uint8_t *const *value_data,
                      const uint8_t *const *value_valid, const int64_t *value_bit,
                      int32_t *codes, int64_t *firsts) {
    uint64_t capacity = 1024; /* slots, a power of two, at most half full */
    int32_t *slots = (int32_t *)malloc(capacity * sizeof(int32_t)); /* a code + 1, 0: free */
    distinct_maps d = {NULL, NULL, NULL};
    map_chunk *parts = (map_chunk *)malloc((size_t)(chunks + 1) * sizeof(map_chunk));
    int64_t distinct = 0, at = 0;
    if (!slots || !parts || !grow_distinct(&d, (int64_t)capacity / 2)) goto failed;
    memset(slots, 0, capacity * sizeof(int32_t));
    for (int32_t c = 0; c < chunks; c++) {
        parts[c] = (map_chunk){offsets[c],       valid[c],         bit[c],
                               key_offsets[c],   key_data[c],      value_offsets[c],
                               value_data[c],    value_valid[c],   value_bit[c]};
        const map_chunk *part = &parts[c];
        for (int64_t i = 0; i < rows[c]; i++, at++) {
            if (!is_valid(part->valid, part->bit + i)) {
                codes[at] = -1;
                continue;
            }
            uint64_t h = map_hash(part, i), slot = h & (capacity - 1);
            for (;; slot = (slot + 1) & (capacity - 1)) {
                int64_t code = (int64_t)slots[slot] - 1;
                if (code < 0) break;
                if (d.hashes[code] == h && same_map(part, i, &parts[d.chunks[code]], d.rows[code]))
                    break;
            }
            if (slots[slot]) {
                codes[at] = slots[slot] - 1;
                continue;
            }
            if ((uint64_t)(distinct + 1) * 2 > capacity) { /* grow, and place it again */
                uint64_t wider = capacity * 2;
                int32_t *more = (int32_t *)calloc(wider, sizeof(int32_t));
                if (!more || !grow_distinct(&d, (int64_t)wider / 2)) {
                    free(more);
                    goto failed;
                }
                for (int64_t e = 0; e < distinct; e++) {
                    uint64_t s = d.hashes[e] & (wider - 1);
                    while (more[s]) s = (s + 1) & (wider - 1);
                    more[s] = (int32_t)(e + 1);
                }
                free(slots);
                slots = more;
                capacity = wider;
                for (slot = h & (capacity - 1); slots[slot]; slot = (slot + 1) & (capacity - 1)) {
                }
            }
            slots[slot] = (int32_t)(distinct + 1);
            d.hashes[distinct] = h;
            d.chunks[distinct] = c;
            d.rows[distinct] = i;
            firsts[distinct] = at;
            codes[at] = (int32_t)distinct++;
        }
    }
    goto done;
failed:
    distinct = -1;
done:
    free(slots);
    free(d.hashes);
    free(d.chunks);
    free(d.rows);
    free(parts);
    return distinct;
}

/* Each value as `mark` and its 16 lower-case hex digits, most significant first (printf
   "%016x"): 17 bytes a value, one after the other (kernels.fingerprint's version-2 hash
   texts). A byte's two digits are looked up at once. */
void adx_hex_texts(const uint64_t *values, int64_t rows, uint8_t mark, uint8_t *out) {
    static const char digits[] = "0123456789abcdef";
    uint16_t pairs[256];
    for (int b = 0; b < 256; b++)
        pairs[b] = (uint16_t)((uint8_t)digits[b >> 4] | ((uint16_t)(uint8_t)digits[b & 15] << 8));
    for (int64_t i = 0; i < rows; i++, out += 17) {
        uint64_t v = values[i];
        out[0] = mark;
        for (int k = 0; k < 8; k++) {
            uint16_t pair = pairs[(v >> (56 - 8 * k)) & 0xFF];
            memcpy(out + 1 + 2 * k, &pair, 2); /* first digit first: little-endian */
        }
    }
}

/* Where each of `needles` (ascending) would go in `ordered` (ascending): the first
   position whose value is not below it — NumPy's searchsorted(ordered, needles, "left").
   The next needle's search gallops from the previous one's position (steps 1, 2, 4 …,
   then a binary search of the last step): a batch's candidate hashes lie a few values
   apart among an index's, so a search reads a few neighbouring values where a binary
   search over the whole index read about twenty (kernels.dedupe.KeyIndex). */
void adx_sorted_starts(const uint64_t *ordered, int64_t n, const uint64_t *needles, int64_t k,
                       int64_t *out) {
    int64_t low = 0; /* every value before it is below the needle */
    for (int64_t i = 0; i < k; i++) {
        uint64_t needle = needles[i];
        int64_t high = low; /* the first position known not below it (n: past the end) */
        int64_t step = 1;
        while (high < n && ordered[high] < needle) {
            low = high + 1;
            high = low + step - 1;
            step <<= 1;
        }
        if (high > n)
            high = n;
        while (low < high) {
            int64_t middle = low + (high - low) / 2;
            if (ordered[middle] < needle)
                low = middle + 1;
            else
                high = middle;
        }
        out[i] = low;
    }
}

/* A column of texts as codes into its distinct texts, numbered in the order they first
   appear (Arrow's dictionary_encode), -1 for a null; `firsts` gets the row where each
   distinct text first appears. Returns how many distinct texts there are, or -1 past
   `most` of them (a column of many values: the caller encodes it by Arrow instead).

   A text of up to 16 bytes is its own key (its bytes and length, compared whole: a
   campaign, a device type, a country), a longer one its XXH3 and length, compared byte
   for byte with the first row that holds it; a table of twice the column's distinct texts
   at most finds the key. `size` is the data buffer's: a short text is read as 16 bytes
   where that many follow it there, masked to its length. */
typedef struct {
    uint64_t low, high; /* a short text's bytes; a long one's hash, 0 */
    int32_t length;
    int32_t code; /* -1: an empty slot */
} text_slot;

static inline uint64_t masked(uint64_t word, int32_t bytes) {
    return bytes >= 8 ? word : bytes <= 0 ? 0 : word & ((UINT64_C(1) << (8 * bytes)) - 1);
}

int64_t adx_text_codes(const int32_t *offsets, const uint8_t *data, int64_t size,
                       const uint8_t *valid, int64_t valid_bit, int64_t rows, int64_t most,
                       int32_t *codes, int64_t *firsts) {
    int64_t wanted = 2 * (rows < most ? rows : most), capacity = 16;
    int shift = 60; /* 64 - log2(capacity) */
    while (capacity < wanted) {
        capacity <<= 1;
        shift--;
    }
    text_slot *slots = malloc((size_t)capacity * sizeof(text_slot));
    if (slots == NULL)
        return -1;
    for (int64_t s = 0; s < capacity; s++)
        slots[s].code = -1;
    const uint64_t mask = (uint64_t)(capacity - 1);
    int64_t count = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (!is_valid(valid, valid_bit + i)) {
            codes[i] = -1;
            continue;
        }
        const uint8_t *text = data + offsets[i];
        int32_t length = offsets[i + 1] - offsets[i];
        uint64_t low, high;
        if (length <= 16) {
            uint64_t words[2] = {0, 0};
            if (offsets[i] + 16 <= size)
                memcpy(words, text, 16);
            else if (length > 0) /* (no data buffer at all where every text is empty) */
                memcpy(words, text, (size_t)length);
            low = masked(words[0], length);
            high = masked(words[1], length - 8);
        } else {
            low = XXH3_64bits(text, (size_t)length);
            high = 0;
        }
        /* Fibonacci hashing: the product's top bits depend on every bit of the key */
        uint64_t s = ((low ^ (high + (uint64_t)length) * UINT64_C(0xC2B2AE3D27D4EB4F)) *
                      UINT64_C(0x9E3779B97F4A7C15)) >> shift;
        for (;; s = (s + 1) & mask) {
            text_slot *slot = &slots[s];
            if (slot->code < 0) {
                if (count == most) {
                    free(slots);
                    return -1;
                }
                slot->low = low;
                slot->high = high;
                slot->length = length;
                slot->code = (int32_t)count;
                firsts[count] = i;
                codes[i] = (int32_t)count++;
                break;
            }
            if (slot->low == low && slot->high == high && slot->length == length) {
                int64_t first = firsts[slot->code];
                if (length <= 16 || memcmp(data + offsets[first], text, (size_t)length) == 0) {
                    codes[i] = slot->code;
                    break;
                }
            }
        }
    }
    free(slots);
    return count;
}
