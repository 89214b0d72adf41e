/* Payload texts and their hashes in one pass (advertisex/kernels/fingerprint.py).

   A payload is a row's texts joined by a separator, a null written as a mark (Arrow's
   binary_join_element_wise with null_handling="replace"); its hash is XXH3-64 of those
   bytes, seed 0 (what polars-hash's xxh3_64 gives). Each row is hashed just after it is
   written, while its bytes are in the cache, instead of in a second pass over the column.

   Plain C with no Python API, loaded with ctypes: a column is an Arrow string array's
   buffers — int32 value offsets (already at the array's first row), its data, and its
   validity bitmap with the bit of its first row (NULL: no nulls). */

#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include "xxhash.h"

static inline int is_valid(const uint8_t *bits, int64_t bit) {
    return bits == NULL || (bits[bit >> 3] >> (bit & 7)) & 1;
}

/* The joined texts' end offsets: out_offsets (rows + 1) from 0. Returns the last, the
   total length, or -1 where it would not fit an int32 offset. */
int64_t adx_payload_offsets(int32_t columns, const int32_t *const *offsets,
                            const uint8_t *const *valid, const int64_t *valid_bit, int64_t rows,
                            int32_t separator_length, int32_t null_length, int32_t *out_offsets) {
    int64_t at = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        at += (int64_t)separator_length * (columns - 1);
        for (int32_t c = 0; c < columns; c++) {
            if (is_valid(valid[c], valid_bit[c] + i))
                at += offsets[c][i + 1] - offsets[c][i];
            else
                at += null_length;
        }
        if (at > INT32_MAX) return -1;
        out_offsets[i + 1] = (int32_t)at;
    }
    return at;
}

/* Each row's payload written into out_data at out_offsets (from adx_payload_offsets), and
   its XXH3-64 into hashes. */
void adx_payload_hashes(int32_t columns, const int32_t *const *offsets,
                        const uint8_t *const *data, const uint8_t *const *valid,
                        const int64_t *valid_bit, int64_t rows, const uint8_t *separator,
                        int32_t separator_length, const uint8_t *null_mark, int32_t null_length,
                        const int32_t *out_offsets, uint8_t *out_data, uint64_t *hashes) {
    for (int64_t i = 0; i < rows; i++) {
        uint8_t *start = out_data + out_offsets[i], *p = start;
        for (int32_t c = 0; c < columns; c++) {
            if (c) {
                memcpy(p, separator, (size_t)separator_length);
                p += separator_length;
            }
            if (is_valid(valid[c], valid_bit[c] + i)) {
                int32_t from = offsets[c][i], length = offsets[c][i + 1] - from;
                memcpy(p, data[c] + from, (size_t)length);
                p += length;
            } else {
                memcpy(p, null_mark, (size_t)null_length);
                p += null_length;
            }
        }
        hashes[i] = XXH3_64bits(start, (size_t)(p - start));
    }
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
