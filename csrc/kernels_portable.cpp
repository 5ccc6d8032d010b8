// Portable kernels: plain C++ with a branch-free (SWAR) 64-bit popcount; runs on any x86-64
// (or other) CPU. The 8-lane "vector" is an array the compiler may vectorise with SSE2.
#include <algorithm>

#include "core.hpp"

#define DH_TARGET

namespace dhash {
namespace portable {

struct V {
    uint64_t v[kLanes];
};

static inline int popcount64(uint64_t x) { return popcount_swar(x); }

static inline V bcast(uint64_t x) {
    V r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = x;
    return r;
}

template <int W>
static inline V dist(const uint64_t* p, const V* qv, int nw) {
    const int n = W ? W : nw;
    V acc{};
    for (int w = 0; w < n; ++w)
        for (int l = 0; l < kLanes; ++l) acc.v[l] += uint64_t(popcount64(p[w * kLanes + l] ^ qv[w].v[l]));
    return acc;
}

static inline V operator-(const V& a, const V& b) {
    V r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] - b.v[l];
    return r;
}
static inline V operator|(const V& a, const V& b) {
    V r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] | b.v[l];
    return r;
}
static inline bool any_negative(const V& x) {
    uint64_t o = 0;
    for (int l = 0; l < kLanes; ++l) o |= x.v[l];
    return o >> 63;
}

static inline V operator+(const V& a, const V& b) {
    V r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] + b.v[l];
    return r;
}
static inline unsigned negative_mask(const V& x) {
    unsigned m = 0;
    for (int l = 0; l < kLanes; ++l) m |= unsigned(x.v[l] >> 63) << l;
    return m;
}

static inline void store_u32(const V& acc, uint32_t* out) {
    for (int l = 0; l < kLanes; ++l) out[l] = uint32_t(acc.v[l]);
}

static inline void store_u16(const V& acc, uint16_t* out) {
    for (int l = 0; l < kLanes; ++l) out[l] = uint16_t(acc.v[l]);
}

#include "generic_filters.inc"

#include "kernel_impl.inc"

}  // namespace portable

const Kernel kPortable = {"portable", portable::distances, portable::knn, portable::range, portable::filter};

}  // namespace dhash
