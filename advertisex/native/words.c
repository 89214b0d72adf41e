/* The words of a landing file (advertisex/formats/scrubwords.py), in one pass over its bytes.

   A file's words are the maximal runs of word bytes of its texts (its bytes, what its gzip
   stream inflates to, its Avro blocks inflated), kept once each. In NumPy and Arrow they
   cost ≈ 10 ms of CPU a MB: every run cut out as an array element, made unique by a hash
   table of Arrow's, sorted, hashed again for the filter. Here the runs are found 64 bytes at
   a time, each deduplicated as it is found — a word of one or two bytes by a bit of its
   own, a longer one in a hash table of this file's (pointing into the texts, not copying
   them) — and only the distinct words go on: sorted and joined, or hashed into the Bloom
   filter by scrubwords' own hash (a polynomial modulo 2^64 and splitmix64's finalizer: the
   filter's bytes are those of the Python code, whichever computes them).

   A set is made with adx_words_new, given texts with adx_words_add (they must outlive the
   set), read with adx_words_sizes first, then adx_words_joined or adx_words_filter, and
   freed with adx_words_free. Called through ctypes (no Python API). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include "xxhash.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* A word's first 16 bytes, zero-padded, are held beside it: word bytes are never zero, so
   for a word of at most 16 bytes they are the word (compared without reading the text
   again: most words are that short), and in byte order they sort as the word does. */
typedef struct {
    uint64_t head[2]; /* bytes 0-7 and 8-15, as little-endian numbers */
    uint64_t hash;
    const uint8_t *bytes;
    int64_t length;
} Word;

/* The distinct words one after the other, and an open-addressing table of them: a slot is
   a word's number + 1 (0: empty) and its hash's high half, 8 bytes, so that the table of a
   few MB of text stays in the cache and a word is looked at only when its hash matches. */
typedef struct {
    uint32_t number; /* the word's, + 1 */
    uint32_t hash;   /* its hash's high 32 bits */
} Slot;

typedef struct {
    uint8_t is_word[256];
    int ranges; /* is_word is WORD_RANGES: the bytes are told 16 at a time */
    Word *words;
    int64_t room; /* for words */
    Slot *slots;
    int64_t capacity; /* slots: a power of two */
    int64_t count;
    int64_t bytes; /* of the distinct words */
    int64_t longest;
    /* Words of one or two bytes (most runs of compressed bytes, many of a record's) are a
       bit each here, numbered by their head (b0 | b1 << 8; a word byte is never 0): no
       hash, no probe. They join the words when the set is read (finish). */
    uint64_t pairs[65536 / 64];
    int64_t pair_count, pair_bytes;
    uint8_t *pair_text; /* where the finished pairs' bytes are */
    int finished;
} Words;

enum { FIRST_SLOTS = 4096, MOST_WORDS = 0x7fffffff };

/* scrub._WORD, A-Za-z0-9_.@- , as ranges of bytes: the word bytes every caller asks for. */
static const uint8_t WORD_RANGES[][2] = {{'-', '.'}, {'0', '9'}, {'@', 'Z'}, {'_', '_'}, {'a', 'z'}};
enum { RANGES = sizeof WORD_RANGES / sizeof WORD_RANGES[0] };

static int is_in_ranges(int byte) {
    for (int r = 0; r < RANGES; r++)
        if (byte >= WORD_RANGES[r][0] && byte <= WORD_RANGES[r][1]) return 1;
    return 0;
}

void adx_words_free(Words *set) {
    if (set == NULL) return;
    free(set->words);
    free(set->slots);
    free(set->pair_text);
    free(set);
}

/* An empty set of words, whose word bytes are those ``is_word`` (256 bytes) marks non-zero
   (never the byte 0); NULL where memory ran out. */
Words *adx_words_new(const uint8_t *is_word) {
    Words *set = (Words *)calloc(1, sizeof(Words));
    if (set == NULL) return NULL;
    set->ranges = 1;
    for (int i = 1; i < 256; i++) {
        set->is_word[i] = is_word[i] != 0;
        if (set->is_word[i] != is_in_ranges(i)) set->ranges = 0;
    }
    set->capacity = FIRST_SLOTS;
    set->room = FIRST_SLOTS / 2;
    set->slots = (Slot *)calloc((size_t)set->capacity, sizeof(Slot));
    set->words = (Word *)malloc((size_t)set->room * sizeof(Word));
    if (set->slots == NULL || set->words == NULL) {
        adx_words_free(set);
        return NULL;
    }
    return set;
}

/* Twice the slots and the room for words. */
static int grow(Words *set) {
    int64_t capacity = set->capacity * 2, mask = capacity - 1;
    if (capacity / 2 > MOST_WORDS) return -1;
    Word *words = (Word *)realloc(set->words, (size_t)(capacity / 2) * sizeof(Word));
    if (words == NULL) return -1;
    set->words = words;
    set->room = capacity / 2;
    Slot *slots = (Slot *)calloc((size_t)capacity, sizeof(Slot));
    if (slots == NULL) return -1;
    for (int64_t i = 0; i < set->count; i++) {
        int64_t at = (int64_t)(words[i].hash & (uint64_t)mask);
        while (slots[at].number != 0) at = (at + 1) & mask;
        slots[at].number = (uint32_t)(i + 1);
        slots[at].hash = (uint32_t)(words[i].hash >> 32);
    }
    free(set->slots);
    set->slots = slots;
    set->capacity = capacity;
    return 0;
}

static inline uint64_t mix(uint64_t value) {
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
    return value ^ (value >> 31);
}

/* The 8 bytes at ``p`` as a little-endian number, whatever the machine's order. */
static inline uint64_t little_endian(const uint8_t *p) {
    uint64_t value;
    memcpy(&value, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    value = __builtin_bswap64(value);
#endif
    return value;
}

/* The ``length`` bytes at ``bytes`` of a text with ``room`` bytes from there. */
static inline int add_word(Words *set, const uint8_t *bytes, int64_t length, int64_t room) {
    uint64_t head[2] = {0, 0};
    int64_t held = length < 16 ? length : 16;
    if (room >= 16) { /* one load, the bytes past the word masked off */
        head[0] = little_endian(bytes);
        head[1] = little_endian(bytes + 8);
        if (held <= 8) {
            head[0] &= held == 8 ? ~0ULL : (1ULL << (8 * held)) - 1;
            head[1] = 0;
        } else if (held < 16) {
            head[1] &= (1ULL << (8 * (held - 8))) - 1;
        }
    } else {
        for (int64_t i = 0; i < held; i++) head[i >> 3] |= (uint64_t)bytes[i] << (8 * (i & 7));
    }
    if (length <= 2) {
        uint64_t bit = 1ULL << (head[0] & 63), *held = &set->pairs[head[0] >> 6];
        if (!(*held & bit)) {
            *held |= bit;
            set->pair_count++;
            set->pair_bytes += length;
        }
        return 0;
    }
    uint64_t hash;
    if (length <= 16) { /* two products in parallel, and their high bits folded down */
        hash = head[0] * 0x9E3779B97F4A7C15ULL ^ (head[1] + (uint64_t)length) * 0xC2B2AE3D27D4EB4FULL;
        hash ^= hash >> 32;
        hash *= 0x94D049BB133111EBULL;
        hash ^= hash >> 29;
    } else {
        hash = XXH3_64bits(bytes, (size_t)length);
    }
    int64_t mask = set->capacity - 1, at = (int64_t)(hash & (uint64_t)mask);
    uint32_t high = (uint32_t)(hash >> 32);
    for (;;) {
        Slot slot = set->slots[at];
        if (slot.number == 0) break;
        if (slot.hash == high) {
            const Word *word = &set->words[slot.number - 1];
            if (word->hash == hash && word->length == length && word->head[0] == head[0] &&
                word->head[1] == head[1] &&
                (length <= 16 ||
                 memcmp(word->bytes + 16, bytes + 16, (size_t)(length - 16)) == 0))
                return 0;
        }
        at = (at + 1) & mask;
    }
    Word *word = &set->words[set->count];
    word->head[0] = head[0];
    word->head[1] = head[1];
    word->hash = hash;
    word->bytes = bytes;
    word->length = length;
    set->slots[at].number = (uint32_t)(++set->count);
    set->slots[at].hash = high;
    set->bytes += length;
    if (length > set->longest) set->longest = length;
    /* at most half full (short probes), and room for the next word */
    if (2 * set->count >= set->capacity) return grow(set);
    return 0;
}

#ifdef __SSE2__
/* Bit i: whether p[i] is in WORD_RANGES, for 64 bytes (a byte is in [low, high] when,
   moved by -128 - low, it is below -128 + high - low + 1 as a signed byte). */
static inline __m128i in_range(__m128i bytes, uint8_t low, uint8_t high) {
    __m128i moved = _mm_add_epi8(bytes, _mm_set1_epi8((char)(-128 - low)));
    return _mm_cmplt_epi8(moved, _mm_set1_epi8((char)(-128 + high - low + 1)));
}

static inline uint64_t word_bits(const uint8_t *p) {
    uint64_t bits = 0;
    for (int part = 0; part < 4; part++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(p + 16 * part));
        /* WORD_RANGES, spelled out: -O2 does not unroll a loop over them */
        __m128i in = _mm_or_si128(
            _mm_or_si128(in_range(bytes, '-', '.'), in_range(bytes, '0', '9')),
            _mm_or_si128(_mm_or_si128(in_range(bytes, '@', 'Z'), in_range(bytes, '_', '_')),
                         in_range(bytes, 'a', 'z')));
        bits |= (uint64_t)(uint16_t)_mm_movemask_epi8(in) << (16 * part);
    }
    return bits;
}
#endif

/* Each maximal run of word bytes of the ``length`` bytes at ``text``, into the set (a run
   never continues from one text to the next). Returns 0, or -1 where memory ran out.

   64 bytes at a time: a bit a byte (is it a word byte), xor'd with itself one byte on (the
   edges, where a run starts or ends), read by counting trailing zeros: a branch a run,
   not two a byte (a byte's branch was mispredicted at each edge, half the time). */
int32_t adx_words_add(Words *set, const uint8_t *text, int64_t length) {
    if (set->finished) return -1;
    const uint8_t *is_word = set->is_word;
    int64_t start = -1; /* where the run under way started; -1: none */
    for (int64_t base = 0; base < length; base += 64) {
        int64_t n = length - base < 64 ? length - base : 64;
        const uint8_t *p = text + base;
        uint64_t bits = 0;
        if (n == 64) {
#ifdef __SSE2__
            if (set->ranges)
                bits = word_bits(p);
            else
#endif
                for (int i = 0; i < 64; i++) bits |= (uint64_t)is_word[p[i]] << i;
        } else {
            for (int i = 0; i < n; i++) bits |= (uint64_t)is_word[p[i]] << i;
        }
        uint64_t edges = bits ^ ((bits << 1) | (start >= 0));
        if (n < 64) edges &= (1ULL << n) - 1;
        while (edges) {
            int64_t at = base + __builtin_ctzll(edges);
            edges &= edges - 1;
            if (start < 0) {
                start = at;
            } else {
                if (add_word(set, text + start, at - start, length - start) != 0) return -1;
                start = -1;
            }
        }
    }
    if (start >= 0 && add_word(set, text + start, length - start, length - start) != 0)
        return -1;
    return 0;
}

/* The words of one or two bytes among the others, once the texts are all given: an
   adx_words_add after it is refused. Returns 0, or -1 where memory ran out. */
static int finish(Words *set) {
    if (set->finished) return 0;
    set->finished = 1;
    if (set->pair_count == 0) return 0;
    int64_t count = set->count + set->pair_count;
    Word *words = (Word *)realloc(set->words, (size_t)count * sizeof(Word));
    if (words == NULL) return -1;
    set->words = words;
    set->pair_text = (uint8_t *)malloc((size_t)(2 * set->pair_count));
    if (set->pair_text == NULL) return -1;
    uint8_t *text = set->pair_text;
    for (int64_t i = 0; i < 65536 / 64; i++) {
        for (uint64_t bits = set->pairs[i]; bits; bits &= bits - 1) {
            uint64_t pair = (uint64_t)i * 64 + (uint64_t)__builtin_ctzll(bits);
            Word *word = &set->words[set->count++];
            text[0] = (uint8_t)pair;
            text[1] = (uint8_t)(pair >> 8);
            word->head[0] = pair;
            word->head[1] = 0;
            word->hash = 0; /* (no table holds it) */
            word->bytes = text;
            word->length = pair >> 8 ? 2 : 1;
            text += 2;
        }
    }
    set->bytes += set->pair_bytes;
    int64_t longest = set->pair_bytes > set->pair_count ? 2 : 1;
    if (longest > set->longest) set->longest = longest;
    return 0;
}

/* The number of distinct words, their bytes and the longest one's; -1 each where memory
   ran out. The set takes no more texts. */
void adx_words_sizes(Words *set, int64_t *count, int64_t *bytes, int64_t *longest) {
    if (finish(set) != 0) {
        *count = *bytes = *longest = -1;
        return;
    }
    *count = set->count;
    *bytes = set->bytes;
    *longest = set->longest;
}

typedef struct {
    uint64_t key[2]; /* the head in byte order */
    const Word *word;
} Sorted;

/* Whether x's word comes before y's in byte order (no two words are the same). */
static inline int before(const Sorted *x, const Sorted *y) {
    if (x->key[0] != y->key[0]) return x->key[0] < y->key[0];
    if (x->key[1] != y->key[1]) return x->key[1] < y->key[1];
    /* the same first 16 bytes: the rest, then the shorter first */
    int64_t shorter = x->word->length < y->word->length ? x->word->length : y->word->length;
    if (shorter > 16) {
        int order = memcmp(x->word->bytes + 16, y->word->bytes + 16, (size_t)(shorter - 16));
        if (order != 0) return order < 0;
    }
    return x->word->length < y->word->length;
}

static inline void swap(Sorted *a, Sorted *b) {
    Sorted t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(Sorted *a, int64_t root, int64_t n) {
    for (;;) {
        int64_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && before(&a[child], &a[child + 1])) child++;
        if (!before(&a[root], &a[child])) return;
        swap(&a[root], &a[child]);
        root = child;
    }
}

/* Introsort: quicksort (the median of three as pivot), heapsort past 2 log2 n levels (the
   order is the words' first appearances, which a producer chooses: no order it can make is
   quadratic), insertion sort for a few. glibc's qsort, a comparison through a pointer
   each, took longer than finding the words. */
static void sort(Sorted *a, int64_t n, int depth) {
    while (n > 16) {
        if (depth-- == 0) {
            for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(a, i, n);
            for (int64_t end = n - 1; end > 0; end--) {
                swap(&a[0], &a[end]);
                sift_down(a, 0, end);
            }
            return;
        }
        int64_t mid = n / 2;
        if (before(&a[mid], &a[0])) swap(&a[mid], &a[0]);
        if (before(&a[n - 1], &a[0])) swap(&a[n - 1], &a[0]);
        if (before(&a[n - 1], &a[mid])) swap(&a[n - 1], &a[mid]);
        swap(&a[mid], &a[n - 2]); /* the pivot, out of the way: a[0] <= it <= a[n - 1] */
        Sorted *pivot = &a[n - 2];
        int64_t i = 0, j = n - 2;
        for (;;) {
            while (before(&a[++i], pivot)) {}
            while (before(pivot, &a[--j])) {}
            if (i >= j) break;
            swap(&a[i], &a[j]);
        }
        swap(&a[i], &a[n - 2]);
        /* the smaller side by recursion, the larger by the loop: a stack of log2 n */
        if (i < n - 1 - i) {
            sort(a, i, depth);
            a += i + 1;
            n -= i + 1;
        } else {
            sort(a + i + 1, n - i - 1, depth);
            n = i;
        }
    }
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && before(&a[j], &a[j - 1]); j--) swap(&a[j], &a[j - 1]);
}

/* The distinct words in byte order (a word before any it starts), each followed by a
   newline, after a first newline, into ``out`` (bytes + count + 1 bytes). Returns 0, or -1
   where memory ran out. */
int32_t adx_words_joined(const Words *set, uint8_t *out) {
    Sorted *order = (Sorted *)malloc(sizeof(Sorted) * (size_t)(set->count + 1));
    if (order == NULL) return -1;
    int64_t n = 0;
    for (int64_t i = 0; i < set->count; i++) {
        const Word *word = &set->words[i];
        order[n].key[0] = __builtin_bswap64(word->head[0]);
        order[n].key[1] = __builtin_bswap64(word->head[1]);
        order[n++].word = word;
    }
    int depth = 0;
    for (int64_t m = n; m > 1; m >>= 1) depth += 2;
    sort(order, n, depth);
    uint8_t *p = out;
    *p++ = '\n';
    for (int64_t i = 0; i < n; i++) {
        memcpy(p, order[i].word->bytes, (size_t)order[i].word->length);
        p += order[i].word->length;
        *p++ = '\n';
    }
    free(order);
    return 0;
}

static const uint64_t MULTIPLIER = 0x100000001B3ULL, LENGTH = 0x9E3779B97F4A7C15ULL,
                      STEP = 0xD6E8FEB86659FD93ULL;

/* The Bloom filter of the distinct words, ``bits`` bits (a power of two) of ``probes``
   probes, into ``out`` (bits / 8 bytes, zeroed; bit i is bit i % 8 of byte i / 8): a
   word's probes are first + k * step, of scrubwords._word_hashes. */
void adx_words_filter(const Words *set, uint8_t *out, int64_t bits, int32_t probes) {
    uint64_t mask = (uint64_t)bits - 1;
    for (int64_t i = 0; i < set->count; i++) {
        const Word *word = &set->words[i];
        uint64_t raw = 0, power = 1;
        for (int64_t j = 0; j < word->length; j++) {
            raw += (uint64_t)word->bytes[j] * power;
            power *= MULTIPLIER;
        }
        uint64_t first = mix(raw ^ ((uint64_t)word->length * LENGTH));
        uint64_t step = mix(first ^ STEP) | 1;
        for (int32_t k = 0; k < probes; k++) {
            uint64_t at = (first + (uint64_t)k * step) & mask;
            out[at >> 3] |= (uint8_t)(1u << (at & 7));
        }
    }
}
