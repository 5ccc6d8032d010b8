// AVX-512 kernels: 8 codes per 512-bit vector, VPOPCNTQ per word (AVX512F + AVX512_VPOPCNTDQ).
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "kernels.hpp"

#define DH_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vpopcntdq,popcnt,bmi,bmi2")))

namespace dhash {
namespace avx512 {

using V = __m512i;

DH_TARGET static inline V bcast(uint64_t x) { return _mm512_set1_epi64((long long)x); }

template <int W>
DH_TARGET static inline V dist(const uint64_t* p, const V* qv, int nw) {
    const int n = W ? W : nw;
    V acc = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(p), qv[0]));
    for (int w = 1; w < n; ++w)
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(p + w * kLanes), qv[w])));
    return acc;
}

DH_TARGET static inline bool any_negative(V x) { return _mm512_movepi64_mask(x) != 0; }
DH_TARGET static inline unsigned negative_mask(V x) { return _mm512_movepi64_mask(x); }
DH_TARGET static inline void store_u32(V acc, uint32_t* out) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_maskz_cvtepi64_epi32(0xff, acc));
}
DH_TARGET static inline void store_u16(V acc, uint16_t* out) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_maskz_cvtepi64_epi16(0xff, acc));
}
DH_TARGET static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

// MIH bucket filters: 8 row-major codes per step, masked loads for the last partial step.
DH_TARGET static inline size_t emit(unsigned m, V d, size_t i, uint32_t* pos, uint16_t* dist, size_t out) {
    alignas(64) uint32_t tmp[kLanes];
    store_u32(d, tmp);
    while (m) {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        pos[out] = uint32_t(i + l);
        dist[out++] = uint16_t(tmp[l]);
    }
    return out;
}

DH_TARGET static size_t filter1(const uint64_t* codes, size_t n, const uint64_t* q, uint32_t lim, uint32_t* pos,
                                uint16_t* dist) {
    const V qv = bcast(q[0]), lv = bcast(lim);
    size_t out = 0;
    for (size_t i = 0; i < n; i += kLanes) {
        const __mmask8 valid = n - i >= kLanes ? 0xff : __mmask8((1u << (n - i)) - 1);
        const V d = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(valid, codes + i), qv));
        const unsigned m = _mm512_mask_cmplt_epu64_mask(valid, d, lv);
        if (m) out = emit(m, d, i, pos, dist, out);
    }
    return out;
}

DH_TARGET static size_t filter2(const uint64_t* codes, size_t n, const uint64_t* q, uint32_t lim, uint32_t* pos,
                                uint16_t* dist) {
    const V qv = _mm512_set_epi64((long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0],
                                  (long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0]);
    const V lv = bcast(lim);
    const V even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    size_t out = 0;
    for (size_t i = 0; i < n; i += kLanes) {
        const size_t words = std::min<size_t>(2 * (n - i), 2 * kLanes);
        const __mmask8 ma = __mmask8(words >= 8 ? 0xff : (1u << words) - 1);
        const __mmask8 mb = __mmask8(words >= 16 ? 0xff : words > 8 ? (1u << (words - 8)) - 1 : 0);
        const V a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(ma, codes + 2 * i), qv));
        const V b = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(mb, codes + 2 * i + 8), qv));
        const V d = _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
        const __mmask8 valid = n - i >= kLanes ? 0xff : __mmask8((1u << (n - i)) - 1);
        const unsigned m = _mm512_mask_cmplt_epu64_mask(valid, d, lv);
        if (m) out = emit(m, d, i, pos, dist, out);
    }
    return out;
}

template <int W>
DH_TARGET static size_t filter_w(const uint64_t* codes, size_t n, int words, const uint64_t* q, uint32_t lim,
                                 uint32_t* pos, uint16_t* dist);

static constexpr bool kLaneTile = false;

#include "kernel_impl.inc"

static bool supported() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("popcnt");
}

}  // namespace avx512

const Kernel kAvx512 = {"avx512", avx512::supported, 0.08, avx512::distances, avx512::knn, avx512::range, avx512::filter};

}  // namespace dhash
#endif
