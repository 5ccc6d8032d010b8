// Portable kernels: plain C++ for any CPU. On x86-64 the popcount is branch-free SWAR (the
// baseline has no POPCNT; CPUs with it get kernels_popcnt.cpp); elsewhere the compiler's
// builtin, which is the hardware instruction where the target has one (AArch64: CNT).
#include <algorithm>

#include "kernels.hpp"

#define DH_TARGET

namespace dhash {
namespace portable {

#if defined(__x86_64__)
static inline int popcount64(uint64_t x) { return popcount_swar(x); }
#else
static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }
#endif

#include "scalar_impl.inc"

static bool supported() { return true; }

}  // namespace portable

const Kernel kPortable = {"portable", portable::supported, 1.1, portable::distances, portable::knn,
                          portable::range, portable::filter};

}  // namespace dhash
