// Scalar POPCNT kernels: the portable loops (query tiles held in registers, 8 codes per group)
// compiled for x86-64-v2 with a per-function target attribute, so every popcount is one POPCNT.
// The fastest kernel on CPUs with 128-bit SIMD units (where VPSHUFB loses to POPCNT).
#if defined(__x86_64__)
#include <algorithm>

#include "kernels.hpp"

#define DH_TARGET __attribute__((target("popcnt,sse3,ssse3,sse4.1,sse4.2")))

namespace dhash {
namespace popcnt {

DH_TARGET static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

#include "scalar_impl.inc"

static bool supported() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2");
}

}  // namespace popcnt

const Kernel kPopcnt = {"popcnt", popcnt::supported, 0.3, popcnt::distances, popcnt::knn, popcnt::range,
                        popcnt::filter};

}  // namespace dhash
#endif
