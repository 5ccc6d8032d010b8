// The linear-scan index and the multi-threaded scan drivers (distances, k-NN, radius) that the
// MIH index also falls back to.
#pragma once

#include <algorithm>
#include <shared_mutex>
#include <string>
#include <vector>

#include "kernels.hpp"

namespace dhash {

// Per-query radius results: keys (distance << 32 | index) sorted by distance, then index.
using RangeResult = std::vector<std::vector<uint64_t>>;

// Drivers (run without the GIL); q holds nq rows of db.words words, threads >= 1.
void distances(const CodeStore& db, const uint64_t* q, size_t nq, uint16_t* out, int threads,
               const Kernel& kern);
void knn_scan(const CodeStore& db, const uint64_t* q, size_t nq, uint32_t k, int threads,
              const Kernel& kern, int32_t* out_d, int64_t* out_i);
RangeResult range_scan(const CodeStore& db, const uint64_t* q, size_t nq, uint32_t radius, int threads,
                       const Kernel& kern);

// Exact search by scanning every code. Every method checks its arguments (std::invalid_argument);
// codes and queries are row-major `width`-byte rows, width = ceil(bits / 8); kernel "" chooses
// (see get_kernel); threads 0 = all cores. Safe to call from several threads.
class LinearIndex {
  public:
    explicit LinearIndex(int bits) : store_(bits) {}
    int bits() const { return store_.bits; }
    size_t ntotal() const;
    void add(const uint8_t* codes, size_t n, size_t width);
    std::vector<uint8_t> codes() const;  // ntotal x width bytes
    // k nearest neighbours into out_d / out_i (nq x k); columns past ntotal are index -1,
    // distance bits + 1.
    void search(const uint8_t* q, size_t nq, size_t width, int64_t k, int threads, const std::string& kernel,
                int32_t* out_d, int64_t* out_i) const;
    RangeResult range_search(const uint8_t* q, size_t nq, size_t width, int64_t radius, int threads,
                             const std::string& kernel) const;
    // All distances into out (nq x n); n must be ntotal.
    void distances(const uint8_t* q, size_t nq, size_t width, int threads, const std::string& kernel,
                   uint16_t* out, size_t n) const;

  private:
    CodeStore store_;
    mutable std::shared_mutex mu_;
};

// Store codes as bytes (ntotal x ceil(bits/8)).
std::vector<uint8_t> store_bytes(const CodeStore& store);
// Checked queries packed to words.
std::vector<uint64_t> checked_queries(const uint8_t* q, size_t nq, size_t width, int bits);
// k-NN into nq x k outputs with k clipped to n for `run(kk, d, i)` and the rest padded.
template <class Run>
void padded_knn(size_t nq, uint32_t k, size_t n, uint32_t bits, int32_t* out_d, int64_t* out_i, const Run& run) {
    const uint32_t kk = uint32_t(std::min<size_t>(k, n));
    if (kk == k) return run(k, out_d, out_i);
    std::vector<int32_t> d(nq * kk);
    std::vector<int64_t> i(nq * kk);
    if (kk) run(kk, d.data(), i.data());
    for (size_t j = 0; j < nq; ++j)
        for (uint32_t c = 0; c < k; ++c) {
            out_d[j * k + c] = c < kk ? d[j * kk + c] : int32_t(bits + 1);
            out_i[j * k + c] = c < kk ? i[j * kk + c] : -1;
        }
}

}  // namespace dhash
