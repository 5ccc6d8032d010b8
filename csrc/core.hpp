// Shared types of the Hamming search core: packed code storage, top-k and radius collectors,
// argument checks (see docs/search.md). The kernel interface is in kernels.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace dhash {

// 64-byte aligned storage, so 512-bit loads of a group never split a cache line.
template <class T>
struct AlignedAlloc {
    using value_type = T;
    AlignedAlloc() = default;
    template <class U>
    AlignedAlloc(const AlignedAlloc<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <class U>
    bool operator==(const AlignedAlloc<U>&) const { return true; }
    template <class U>
    bool operator!=(const AlignedAlloc<U>&) const { return false; }
};
using WordVec = std::vector<uint64_t, AlignedAlloc<uint64_t>>;

constexpr int kLanes = 8;       // codes per group in the transposed layout
constexpr int kMaxWords = 16;   // 1024 bits

// Database codes in groups of 8: word j of code 8*g + l lives at data[(g * words + j) * 8 + l].
// Codes are zero-padded to whole 64-bit words and the last group to 8 codes; padded rows are
// never reported (collectors drop indices >= n).
struct CodeStore {
    int bits = 0;
    int words = 0;
    size_t n = 0;
    WordVec data;

    CodeStore() = default;
    explicit CodeStore(int bits_);
    size_t groups() const { return (n + kLanes - 1) / kLanes; }
    const uint64_t* group(size_t g) const { return data.data() + g * words * kLanes; }
    // Append n_add codes of ceil(bits/8) bytes each (row-major); bits past `bits` are ignored.
    void add_bytes(const uint8_t* codes, size_t n_add);
    void code(size_t i, uint64_t* out) const;  // one code, padded to `words` words
};

// Queries converted to rows of `words` uint64 (zero padded, bits past `bits` cleared).
std::vector<uint64_t> pack_rows(const uint8_t* codes, size_t n, int bits);

inline uint64_t make_key(uint32_t d, uint32_t idx) { return (uint64_t(d) << 32) | idx; }
inline uint32_t key_dist(uint64_t key) { return uint32_t(key >> 32); }
inline uint32_t key_index(uint64_t key) { return uint32_t(key); }

// Exact k-NN collector for one query. Keeps candidates as (distance, index) keys; the threshold
// `t` is the smallest distance with at least k candidates at or below it (bits + 1 until k are
// found). A candidate can enter the top k only if d < t, or d == t with a smaller index than the
// kept ones: `strict` collectors receive indices in ascending order, so ties at t are rejected and
// the scan kernels compare d < lim with lim = t; MIH visits candidates in any order (lim = t + 1).
struct TopK {
    uint32_t k = 1, bits = 0, t = 0, lim = 0, below = 0;
    bool strict = true, ordered = true;
    size_t cap = 0;
    std::vector<uint32_t> hist;   // candidates per distance (valid below t)
    std::vector<uint64_t> keys;   // candidates

    // t0: a starting threshold (only d < t0 can enter), for callers that know at least k codes
    // lie below it; checked by the caller afterwards (t < t0 then).
    void reset(uint32_t k_, uint32_t bits_, bool strict_, uint32_t t0 = UINT32_MAX);
    void set_strict(bool s) { strict = s; lim = s ? t : t + 1; }
    void push(uint32_t d, uint32_t idx) {
        keys.push_back(make_key(d, idx));
        ++hist[d];
        if (d < t) {
            ++below;
            while (below >= k) below -= hist[--t];
        }
        lim = strict ? t : t + 1;
        if (keys.size() >= cap) compact();
    }
    void compact();
    // MIH: every code within distance R has been seen; the top k is final once t <= R.
    bool done(uint32_t R) const { return t <= R; }
};

// Radius collector: every candidate with d < lim.
struct RangeCollector {
    uint32_t lim = 0;
    std::vector<uint64_t> keys;
    void push(uint32_t d, uint32_t idx) { keys.push_back(make_key(d, idx)); }
    bool done(uint32_t R) const { return R + 1 >= lim; }
};

// Popcount for rare paths compiled without a target attribute.
inline int popcount_swar(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return int((x * 0x0101010101010101ULL) >> 56);
}

// Final top k of a candidate list (in ascending index order if `ordered`), sorted by (distance,
// index); pads with index -1 and distance bits + 1 when fewer than k candidates exist.
void select_topk(const uint64_t* keys, size_t n, uint32_t k, uint32_t bits, bool ordered,
                 int32_t* out_d, int64_t* out_i);
// Sort radius results by (distance, index) in place (counting sort when `ordered`).
void sort_range(std::vector<uint64_t>& keys, uint32_t bits, bool ordered);

// Argument checks shared by the index classes; each throws std::invalid_argument (ValueError in
// Python) naming `what` and the problem.
constexpr int kMaxBits = kMaxWords * 64;
constexpr size_t kMaxCodes = (size_t(1) << 32) - 2;  // indices are uint32 inside the core
constexpr int64_t kMaxK = int64_t(1) << 30;
constexpr int kMaxThreads = 1024;
void check_bits(int bits);
// `n` rows of `width` bytes at `p` must be codes of `bits` bits (width = ceil(bits / 8)).
void check_rows(const uint8_t* p, size_t n, size_t width, int bits, const char* what);
uint32_t check_k(int64_t k);
uint32_t check_radius(int64_t radius, int bits);  // clipped to bits
int check_threads(int threads);                   // 0: all cores

int default_threads();

}  // namespace dhash
