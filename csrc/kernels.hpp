// The kernel interface: what every kernel family provides, which families are compiled in, and
// how one is chosen (per CPU and per code length, see docs/search.md).
#pragma once

#include <string>
#include <vector>

#include "core.hpp"

namespace dhash {

// One kernel family. Group ranges are [g0, g1) of a CodeStore; queries are rows of db.words
// uint64. Collectors drop indices >= db.n.
struct Kernel {
    const char* name;
    bool (*supported)();  // does this CPU run it (CPUID)
    double scan_word_ns;  // MIH cost model: ns per code word scanned on one core (see mih.cpp)
    void (*distances)(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq,
                      uint16_t* out, size_t ld);
    void (*knn)(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, TopK* states);
    void (*range)(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq,
                  RangeCollector* states);
    // MIH buckets: of `n` row-major codes, those at distance < lim from q (positions, distances);
    // returns how many.
    size_t (*filter)(const uint64_t* codes, size_t n, int words, const uint64_t* q, uint32_t lim, uint32_t* pos,
                     uint16_t* dist);
    int own_words = kMaxWords;  // wider codes are handed to another kernel: the probe skips it there
};

// The families, each defined in its kernels_<name>.cpp.
extern const Kernel kPortable;  // plain C++, any CPU; hardware popcount where the CPU has one
#if defined(__x86_64__)
extern const Kernel kPortableBaseline;  // the portable loops for the x86-64 baseline (SWAR popcount)
extern const Kernel kAvx2;
extern const Kernel kAvx2Lut;  // query nibble tables over byte-sliced codes (up to 192 bits)
extern const Kernel kAvx512;
#endif
#if defined(__aarch64__)
extern const Kernel kNeon;
#endif

// Compiled-in kernels, slowest first.
const std::vector<const Kernel*>& compiled_kernels();
std::vector<std::string> available_kernels();  // those this CPU supports
// The kernel for `bits`-bit codes: `name` if not empty, else $DHASH_KERNEL if set, else the
// fastest for that width in bytes (a short timed probe of the supported ones at first use, cached
// per byte width: avx2-lut's cost grows with bytes, the others' with 64-bit words). Throws
// std::invalid_argument on an unknown or unsupported name.
const Kernel& get_kernel(const std::string& name, int bits);

}  // namespace dhash
