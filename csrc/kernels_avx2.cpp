// AVX2 kernels: 8 codes as two 256-bit vectors; per-byte popcount by nibble lookup (VPSHUFB),
// byte counts summed over the words of a code, then VPSADBW into 64-bit lanes.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "kernels.hpp"

#define DH_TARGET __attribute__((target("avx2,popcnt,bmi,bmi2")))

namespace dhash {
namespace avx2 {

struct V {
    __m256i lo, hi;
};

DH_TARGET static inline V bcast(uint64_t x) {
    const __m256i v = _mm256_set1_epi64x((long long)x);
    return {v, v};
}

DH_TARGET static inline __m256i byte_popcount(__m256i x) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
}

template <int W>
DH_TARGET static inline V dist(const uint64_t* p, const V* qv, int nw) {
    const int n = W ? W : nw;
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int w = 0; w < n; ++w) {  // at most 16 words x 8 bits per byte: byte sums stay below 256
        const __m256i* src = reinterpret_cast<const __m256i*>(p + w * kLanes);
        lo = _mm256_add_epi8(lo, byte_popcount(_mm256_xor_si256(_mm256_load_si256(src), qv[w].lo)));
        hi = _mm256_add_epi8(hi, byte_popcount(_mm256_xor_si256(_mm256_load_si256(src + 1), qv[w].hi)));
    }
    const __m256i zero = _mm256_setzero_si256();
    return {_mm256_sad_epu8(lo, zero), _mm256_sad_epu8(hi, zero)};
}

DH_TARGET static inline V operator-(V a, V b) { return {_mm256_sub_epi64(a.lo, b.lo), _mm256_sub_epi64(a.hi, b.hi)}; }
DH_TARGET static inline V operator|(V a, V b) { return {_mm256_or_si256(a.lo, b.lo), _mm256_or_si256(a.hi, b.hi)}; }
DH_TARGET static inline bool any_negative(V x) {
    return _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_or_si256(x.lo, x.hi))) != 0;
}

DH_TARGET static inline V operator+(V a, V b) { return {_mm256_add_epi64(a.lo, b.lo), _mm256_add_epi64(a.hi, b.hi)}; }
DH_TARGET static inline unsigned negative_mask(V x) {
    return unsigned(_mm256_movemask_pd(_mm256_castsi256_pd(x.lo))) |
           (unsigned(_mm256_movemask_pd(_mm256_castsi256_pd(x.hi))) << 4);
}

DH_TARGET static inline void store_u32(V acc, uint32_t* out) {
    alignas(32) uint64_t tmp[kLanes];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc.lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 4), acc.hi);
    for (int l = 0; l < kLanes; ++l) out[l] = uint32_t(tmp[l]);
}

DH_TARGET static inline void store_u16(V acc, uint16_t* out) {
    // 64-bit lanes hold values <= 1024: gather the low 32 bits, then pack to 16 bits.
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc.lo, idx));
    const __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc.hi, idx));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_packus_epi32(lo, hi));
}

DH_TARGET static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

#include "generic_filters.inc"

static constexpr bool kLaneTile = false;

#include "kernel_impl.inc"

static bool supported() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}

}  // namespace avx2

const Kernel kAvx2 = {"avx2", avx2::supported, 0.25, avx2::distances, avx2::knn, avx2::range, avx2::filter};

}  // namespace dhash
#endif
