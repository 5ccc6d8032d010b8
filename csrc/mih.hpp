// Multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012): exact k-NN and radius search by
// probing per-substring tables at increasing substring radius, with a linear-scan fallback.
#pragma once

#include <shared_mutex>
#include <string>
#include <vector>

#include "linear.hpp"

namespace dhash {

// One substring's table: the indexed codes sorted by the substring value ("key"). dir[p] is the
// first entry whose key's top `pbits` bits equal p (pbits = len: a direct CSR table; otherwise a
// short run of `keys` is searched). Entries keep a copy of the full code, so a bucket is one
// contiguous read.
struct SubTable {
    int start = 0, len = 0, pbits = 0;
    std::vector<uint32_t> dir, keys, ids;
    WordVec codes;
    // entries [first, last) with substring value `key`
    void lookup(uint32_t key, size_t& first, size_t& last) const;
};

struct Scratch {  // per-thread buffers of bucket filtering, and work counters
    std::vector<uint32_t> pos;
    std::vector<uint16_t> dist;
    size_t lookups = 0, entries = 0;
};

struct MihStats {
    size_t mih_queries = 0, scanned_queries = 0;
    size_t lookups = 0, entries = 0;  // bucket lookups and bucket entries read by all probes
    void operator+=(const MihStats& o) {
        mih_queries += o.mih_queries;
        scanned_queries += o.scanned_queries;
        lookups += o.lookups;
        entries += o.entries;
    }
};

// Checks its arguments and locks like LinearIndex (same argument conventions); fallback: switch
// to the linear scan where the cost estimate says MIH would be slower.
class MihIndex {
  public:
    // substrings = 0: automatic at each table build; else ceil(bits / 32) .. bits.
    MihIndex(int bits, int substrings);
    int bits() const { return store_.bits; }
    size_t ntotal() const;
    int substrings() const;  // of the current tables (0 before the first build)
    void add(const uint8_t* codes, size_t n, size_t width);
    std::vector<uint8_t> codes() const;
    MihStats search(const uint8_t* q, size_t nq, size_t width, int64_t k, int threads, const std::string& kernel,
                    bool fallback, int32_t* out_d, int64_t* out_i) const;
    MihStats range_search(const uint8_t* q, size_t nq, size_t width, int64_t radius, int threads,
                          const std::string& kernel, bool fallback, RangeResult& out) const;
    static int auto_substrings(int bits, size_t n);

  private:
    CodeStore store_;
    int fixed_m_;
    size_t n_tab_ = 0;  // codes [0, n_tab_) are in the tables, the rest (the tail) is scanned
    std::vector<SubTable> tables_;
    mutable std::shared_mutex mu_;

    void build();
    MihStats knn(const uint64_t* q, size_t nq, uint32_t k, int threads, const Kernel& kern, bool fallback,
                 int32_t* out_d, int64_t* out_i) const;
    MihStats range(const uint64_t* q, size_t nq, uint32_t radius, int threads, const Kernel& kern, bool fallback,
                   RangeResult& out) const;
    template <class State>
    void visit(const uint64_t* q, int s, int r, size_t first, size_t last, State& st, const Kernel& kern,
               Scratch& buf, double& work) const;
    template <class State>
    bool probe(const uint64_t* q, State& st, double cap, const Kernel& kern, Scratch& buf, double& work) const;
    double scan_cost(const Kernel& kern, uint32_t k) const;
    template <class State, class Finish>
    MihStats run(const uint64_t* q, size_t nq, uint32_t k, int threads, const Kernel& kern, bool fallback,
                 std::vector<State>& states, const Finish& finish, std::vector<size_t>& scan_rows) const;
};

}  // namespace dhash
