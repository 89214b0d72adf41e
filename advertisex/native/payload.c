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
