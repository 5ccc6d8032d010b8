// Portable kernels: the scalar loops of scalar_impl.inc (query tiles in registers, code by code).
// On x86-64 they are built twice: for x86-64-v2 with a per-function target attribute, so every
// popcount is one POPCNT instruction, and for the x86-64 baseline with a branch-free SWAR popcount.
// "portable" is the POPCNT build on every CPU that has POPCNT (CPUID) and the baseline build
// otherwise; "portable-baseline" forces the latter. Elsewhere there is one build, whose popcount is
// the compiler's builtin (the hardware instruction where the target has one; AArch64: CNT).
#include <algorithm>

#include "kernels.hpp"

namespace dhash {

namespace portable_baseline {
#define DH_TARGET
#if defined(__x86_64__)
static inline int popcount64(uint64_t x) { return popcount_swar(x); }
#else
static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }
#endif
#include "scalar_impl.inc"
#undef DH_TARGET
static bool supported() { return true; }
const Kernel kernel = {"portable", supported, 1.1, distances, knn, range, filter};
}  // namespace portable_baseline

#if defined(__x86_64__)
namespace portable_v2 {
#define DH_TARGET __attribute__((target("popcnt,sse3,ssse3,sse4.1,sse4.2")))
DH_TARGET static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }
#include "scalar_impl.inc"
#undef DH_TARGET
static bool has_popcnt() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2");
}
}  // namespace portable_v2

static Kernel portable_for_this_cpu() {
    if (!portable_v2::has_popcnt()) return portable_baseline::kernel;
    return {"portable", portable_baseline::supported, 0.3, portable_v2::distances, portable_v2::knn,
            portable_v2::range, portable_v2::filter};
}
const Kernel kPortable = portable_for_this_cpu();
const Kernel kPortableBaseline = {"portable-baseline", portable_baseline::supported, 1.1, portable_baseline::distances,
                                  portable_baseline::knn, portable_baseline::range, portable_baseline::filter};
#else
const Kernel kPortable = portable_baseline::kernel;
#endif

}  // namespace dhash
