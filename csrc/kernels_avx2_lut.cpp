// AVX2 query-table kernels ("avx2-lut") for codes of up to 192 bits. Each L2-sized database block
// is first sliced by bytes: one 256-bit vector holds byte b of 32 codes. Every query gets two 16-entry
// tables per code byte, popcount(nibble ^ query nibble), so one VPSHUFB looks up the distance
// contribution of a nibble of 32 codes at once (no XOR, no per-code horizontal sum): per query
// and code byte two VPSHUFB and two byte adds, shared by the 32 codes; the nibble split of a
// code byte is shared by a tile of 6 queries. Byte sums hold distances up to 192 bits. Wider
// codes, small query batches (slicing a block costs about as much as scanning it for a few
// queries), all-pairs distances and MIH bucket filters use the avx2 kernel.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels.hpp"

#define DH_TARGET __attribute__((target("avx2,popcnt,bmi,bmi2")))

namespace dhash {
namespace avx2_lut {

constexpr int kChunk = 32;                 // codes per sliced chunk: one byte of each per vector
constexpr int kMaxLutBits = 192;           // byte sums of 24 code bytes stay below 256
constexpr size_t kMinQueries = 16;         // fewer queries per call: the avx2 kernel
constexpr size_t kBlockBytes = 256 * 1024; // sliced block kept in L2 while the queries reuse it
constexpr int kTile = 6;                   // queries sharing each loaded code byte (at 8, GCC spills registers)

// Transpose an 8 x 8 byte matrix held as 8 rows of uint64 (byte j of r[i] -> byte i of r[j]).
static inline void transpose8(uint64_t* r) {
    for (int i : {0, 1, 2, 3}) {
        const uint64_t t = ((r[i] >> 32) ^ r[i + 4]) & 0x00000000FFFFFFFFULL;
        r[i] ^= t << 32, r[i + 4] ^= t;
    }
    for (int i : {0, 1, 4, 5}) {
        const uint64_t t = ((r[i] >> 16) ^ r[i + 2]) & 0x0000FFFF0000FFFFULL;
        r[i] ^= t << 16, r[i + 2] ^= t;
    }
    for (int i : {0, 2, 4, 6}) {
        const uint64_t t = ((r[i] >> 8) ^ r[i + 1]) & 0x00FF00FF00FF00FFULL;
        r[i] ^= t << 8, r[i + 1] ^= t;
    }
}

// Groups [g0, g1) sliced into chunks of 32 codes: byte b of the chunk's code c at
// out[(chunk * nbytes + b) * 32 + c]; codes past g1 in the last chunk are zero.
static void slice(const CodeStore& db, size_t g0, size_t g1, int nbytes, uint8_t* out) {
    const size_t chunks = (g1 - g0 + 3) / 4;
    std::memset(out + (chunks - 1) * nbytes * kChunk, 0, size_t(nbytes) * kChunk);
    for (size_t g = g0; g < g1; ++g) {
        const size_t c = (g - g0) / 4, gi = (g - g0) % 4;
        const uint64_t* p = db.group(g);
        for (int w = 0; w * 8 < nbytes; ++w) {
            uint64_t r[kLanes];
            std::memcpy(r, p + w * kLanes, sizeof r);
            transpose8(r);  // r[j]: byte j of the 8 codes
            for (int j = 0; j < 8 && w * 8 + j < nbytes; ++j)
                std::memcpy(out + (c * nbytes + w * 8 + j) * kChunk + gi * kLanes, &r[j], 8);
        }
    }
}

// Tables of a tile of R queries: for code byte b and query r, the low- and high-nibble tables
// popcount(x ^ query nibble), x = 0..15, each in both 128-bit halves, at out[(b * R + r) * 2 + {0, 1}].
DH_TARGET static void make_tables(const uint64_t* q, int R, int words, int nbytes, __m256i* out) {
    for (int r = 0; r < R; ++r)
        for (int b = 0; b < nbytes; ++b) {
            const unsigned v = unsigned(q[r * words + b / 8] >> (8 * (b % 8))) & 0xff;
            alignas(32) uint8_t lo[32], hi[32];
            for (int x = 0; x < 32; ++x) {
                lo[x] = uint8_t(__builtin_popcount(unsigned(x % 16) ^ (v & 15)));
                hi[x] = uint8_t(__builtin_popcount(unsigned(x % 16) ^ (v >> 4)));
            }
            out[(b * R + r) * 2] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
            out[(b * R + r) * 2 + 1] = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
        }
}

// Rare path: codes of mask m (chunk starting at code `base`) were below the collector's limit;
// codes at or past `end` belong to another share or are padding.
template <class State>
__attribute__((noinline)) static void collect(State& st, size_t base, size_t end, unsigned m, const uint8_t* d) {
    do {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        if (base + l < end && d[l] < st.lim) st.push(d[l], uint32_t(base + l));
    } while (m);
}

// Unsigned byte limit as a signed compare operand (bytes XOR 0x80).
DH_TARGET static inline __m256i limit(uint32_t lim) { return _mm256_set1_epi8(char(uint8_t(lim) ^ 0x80)); }

// R queries (tables `t` from make_tables) against `chunks` sliced chunks starting at code `base`.
template <int NB, int R, class State>
DH_TARGET static void scan_tile(const __m256i* codes, size_t chunks, int nbytes, size_t base, size_t end,
                                const __m256i* t, State* st) {
    const int nb = NB ? NB : nbytes;
    const __m256i low = _mm256_set1_epi8(0x0f), sign = _mm256_set1_epi8(char(0x80));
    __m256i lim[R];
    for (int r = 0; r < R; ++r) lim[r] = limit(st[r].lim);
    for (size_t c = 0; c < chunks; ++c, codes += nb) {
        __m256i acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
        const __m256i* tb = t;
#pragma GCC unroll 1
        for (int b = 0; b < nb; ++b, tb += 2 * R) {
            const __m256i x = _mm256_load_si256(codes + b);
            const __m256i lo = _mm256_and_si256(x, low), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r)
                acc[r] = _mm256_add_epi8(acc[r], _mm256_add_epi8(_mm256_shuffle_epi8(tb[2 * r], lo),
                                                                 _mm256_shuffle_epi8(tb[2 * r + 1], hi)));
        }
        __m256i below[R], any = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            below[r] = _mm256_cmpgt_epi8(lim[r], _mm256_xor_si256(acc[r], sign));
            any = _mm256_or_si256(any, below[r]);
        }
        if (__builtin_expect(!_mm256_testz_si256(any, any), 0)) {
            for (int r = 0; r < R; ++r) {
                const unsigned m = unsigned(_mm256_movemask_epi8(below[r]));
                if (m) {
                    alignas(32) uint8_t d[kChunk];
                    _mm256_store_si256(reinterpret_cast<__m256i*>(d), acc[r]);
                    collect(st[r], base + c * kChunk, end, m, d);
                    lim[r] = limit(st[r].lim);
                }
            }
        }
    }
}

// Every query against groups [g0, g1), one sliced L2-sized block at a time.
template <int NB, class State>
DH_TARGET static void scan_blocks(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq,
                                  State* st) {
    const int nb = NB ? NB : (db.bits + 7) / 8;
    thread_local WordVec table_words, slice_words;  // 64-byte aligned
    table_words.resize(nq * size_t(nb) * 2 * 4);
    __m256i* tables = reinterpret_cast<__m256i*>(table_words.data());
    const size_t tiled = nq / kTile * kTile;  // queries in full tiles; the rest one by one
    for (size_t i = 0; i < nq; i += i < tiled ? kTile : 1)
        make_tables(q + i * db.words, i < tiled ? kTile : 1, db.words, nb, tables + i * nb * 2);
    const size_t block = std::max<size_t>(4, kBlockBytes / (size_t(nb) * kChunk) * 4);  // groups, 4 per chunk
    slice_words.resize((block / 4) * size_t(nb) * 4);
    const __m256i* sliced = reinterpret_cast<const __m256i*>(slice_words.data());
    const size_t end = std::min(db.n, g1 * kLanes);
    for (size_t b0 = g0; b0 < g1; b0 += block) {
        const size_t b1 = std::min(g1, b0 + block), chunks = (b1 - b0 + 3) / 4;
        slice(db, b0, b1, nb, reinterpret_cast<uint8_t*>(slice_words.data()));
        size_t i = 0;
        for (; i < tiled; i += kTile)
            scan_tile<NB, kTile>(sliced, chunks, nb, b0 * kLanes, end, tables + i * nb * 2, st + i);
        for (; i < nq; ++i)
            scan_tile<NB, 1>(sliced, chunks, nb, b0 * kLanes, end, tables + i * nb * 2, st + i);
    }
}

template <class State>
DH_TARGET static void scan(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, State* st) {
    switch ((db.bits + 7) / 8) {
        case 4: scan_blocks<4>(db, g0, g1, q, nq, st); break;
        case 8: scan_blocks<8>(db, g0, g1, q, nq, st); break;
        case 16: scan_blocks<16>(db, g0, g1, q, nq, st); break;
        default: scan_blocks<0>(db, g0, g1, q, nq, st); break;
    }
}

static bool own_path(const CodeStore& db, size_t g0, size_t g1, size_t nq) {
    return db.bits <= kMaxLutBits && nq >= kMinQueries && g1 > g0;
}

static void knn(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, TopK* st) {
    if (own_path(db, g0, g1, nq)) scan(db, g0, g1, q, nq, st);
    else kAvx2.knn(db, g0, g1, q, nq, st);
}

static void range(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, RangeCollector* st) {
    if (own_path(db, g0, g1, nq)) scan(db, g0, g1, q, nq, st);
    else kAvx2.range(db, g0, g1, q, nq, st);
}

static void distances(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, uint16_t* out,
                      size_t ld) {
    kAvx2.distances(db, g0, g1, q, nq, out, ld);
}

static size_t filter(const uint64_t* codes, size_t n, int words, const uint64_t* q, uint32_t lim, uint32_t* pos,
                     uint16_t* dist) {
    return kAvx2.filter(codes, n, words, q, lim, pos, dist);
}

static bool supported() { return kAvx2.supported(); }

}  // namespace avx2_lut

const Kernel kAvx2Lut = {"avx2-lut", avx2_lut::supported, 0.15, avx2_lut::distances, avx2_lut::knn,
                         avx2_lut::range, avx2_lut::filter, avx2_lut::kMaxLutBits / 64};

}  // namespace dhash
#endif
