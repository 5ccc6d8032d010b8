// NEON kernels (AArch64, where Advanced SIMD is always present): 8 codes as four 128-bit vectors;
// per-byte popcount VCNT, byte counts summed over the words of a code, then pairwise widening adds
// (UADDLP) into 64-bit lanes.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>

#include "kernels.hpp"

#define DH_TARGET

namespace dhash {
namespace neon {

struct V {
    uint64x2_t v[4];
};

static inline V bcast(uint64_t x) {
    const uint64x2_t b = vdupq_n_u64(x);
    return {{b, b, b, b}};
}

template <int W>
static inline V dist(const uint64_t* p, const V* qv, int nw) {
    const int n = W ? W : nw;
    uint8x16_t c[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
    for (int w = 0; w < n; ++w)  // at most 16 words x 8 bits per byte: byte sums stay below 256
        for (int j = 0; j < 4; ++j)
            c[j] = vaddq_u8(c[j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(p + w * kLanes + 2 * j), qv[w].v[j]))));
    V r;
    for (int j = 0; j < 4; ++j) r.v[j] = vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(c[j])));
    return r;
}

template <class Op>
static inline V lanewise(const V& a, const V& b, Op op) {
    return {{op(a.v[0], b.v[0]), op(a.v[1], b.v[1]), op(a.v[2], b.v[2]), op(a.v[3], b.v[3])}};
}
static inline V operator-(const V& a, const V& b) { return lanewise(a, b, [](uint64x2_t x, uint64x2_t y) { return vsubq_u64(x, y); }); }
static inline V operator+(const V& a, const V& b) { return lanewise(a, b, [](uint64x2_t x, uint64x2_t y) { return vaddq_u64(x, y); }); }
static inline V operator|(const V& a, const V& b) { return lanewise(a, b, [](uint64x2_t x, uint64x2_t y) { return vorrq_u64(x, y); }); }

static inline bool any_negative(const V& x) {
    const uint64x2_t o = vorrq_u64(vorrq_u64(x.v[0], x.v[1]), vorrq_u64(x.v[2], x.v[3]));
    return ((vgetq_lane_u64(o, 0) | vgetq_lane_u64(o, 1)) >> 63) != 0;
}
static inline unsigned negative_mask(const V& x) {
    unsigned m = 0;
    for (int j = 0; j < 4; ++j) {
        const uint64x2_t s = vshrq_n_u64(x.v[j], 63);
        m |= unsigned(vgetq_lane_u64(s, 0) | (vgetq_lane_u64(s, 1) << 1)) << (2 * j);
    }
    return m;
}

static inline void store_u32(const V& acc, uint32_t* out) {
    for (int j = 0; j < 4; ++j) vst1_u32(out + 2 * j, vmovn_u64(acc.v[j]));
}
static inline void store_u16(const V& acc, uint16_t* out) {
    const uint32x4_t lo = vcombine_u32(vmovn_u64(acc.v[0]), vmovn_u64(acc.v[1]));
    const uint32x4_t hi = vcombine_u32(vmovn_u64(acc.v[2]), vmovn_u64(acc.v[3]));
    vst1q_u16(out, vcombine_u16(vmovn_u32(lo), vmovn_u32(hi)));
}

static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

#include "generic_filters.inc"

static constexpr bool kLaneTile = false;

#include "kernel_impl.inc"

static bool supported() { return true; }

}  // namespace neon

const Kernel kNeon = {"neon", neon::supported, 0.3, neon::distances, neon::knn, neon::range, neon::filter};

}  // namespace dhash
#endif
