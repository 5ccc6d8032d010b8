// Multi-index hashing: table build, substring-neighbour probing with the pigeonhole stop rule,
// cost-based fallback to the linear scan (see docs/search.md).
#include "mih.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>

namespace dhash {

namespace {

constexpr int kMaxSubstringBits = 32;
constexpr size_t kTailFraction = 4;     // rebuild the tables when the tail exceeds 1/4 of them
constexpr size_t kMinTabled = 4096;     // below this everything is scanned
// Cost model, nanoseconds on one core, fitted on an AMD EPYC (AVX-512) with 1M codes of 32-128
// bits: MIH pays per empty and per non-empty bucket lookup (cache misses), per bucket entry
// word, per entry passing the distance filter; the scan per code word (Kernel::scan_word_ns)
// and per top-k candidate.
// The MIH fit is within about 2x either way, hence the margin.
constexpr double kEmptyNs = 26, kBucketNs = 120, kEntryWordNs = 0.9, kPassNs = 3.3;
constexpr double kScanPushNs = 25;
constexpr double kMihMargin = 2.5;  // MIH is used when estimated this much cheaper than the scan

// Bits [start, start + len) of a code (len <= 32).
inline uint32_t extract(const uint64_t* w, int start, int len) {
    const int word = start >> 6, off = start & 63;
    uint64_t v = w[word] >> off;
    if (off + len > 64) v |= w[word + 1] << (64 - off);
    return uint32_t(v & ((uint64_t(1) << len) - 1));
}

inline uint64_t next_combination(uint64_t x) {  // Gosper's hack: next mask with the same popcount
    const uint64_t c = x & (~x + 1), r = x + c;
    return (((r ^ x) >> 2) / c) | r;
}

inline void kern_scan(const Kernel& kern, const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, TopK& st) {
    st.set_strict(true);  // tail indices follow every tabled one: ties at t lose
    kern.knn(db, g0, g1, q, 1, &st);
}

inline void kern_scan(const Kernel& kern, const CodeStore& db, size_t g0, size_t g1, const uint64_t* q,
                      RangeCollector& st) {
    kern.range(db, g0, g1, q, 1, &st);
}

constexpr size_t kBatch = 1024;  // queries whose collectors are alive at once

// Rows of q listed in `rows`, packed contiguously.
std::vector<uint64_t> gather_rows(const uint64_t* q, const std::vector<size_t>& rows, int W) {
    std::vector<uint64_t> out(rows.size() * W);
    for (size_t a = 0; a < rows.size(); ++a) std::copy_n(q + rows[a] * W, W, out.data() + a * W);
    return out;
}

}  // namespace

void SubTable::lookup(uint32_t key, size_t& first, size_t& last) const {
    const uint32_t p = key >> (len - pbits);
    first = dir[p];
    last = dir[size_t(p) + 1];
    if (pbits == len) return;
    while (first < last && keys[first] < key) ++first;
    size_t e = first;
    while (e < last && keys[e] == key) ++e;
    last = e;
}

int MihIndex::auto_substrings(int bits, size_t n) {
    check_bits(bits);
    // Norouzi et al. suggest substrings of log2 N bits; about 4 bits fewer measured faster here
    // (1M clustered codes of 32, 64, 128 bits: best at 16-bit substrings).
    const double len = std::clamp(std::log2(double(std::max<size_t>(n, 2))) - 4.0, 8.0, 28.0);
    const int m = int(std::lround(bits / len));
    return std::clamp(m, (bits + kMaxSubstringBits - 1) / kMaxSubstringBits, bits);
}

MihIndex::MihIndex(int bits, int substrings) : store_(bits), fixed_m_(substrings) {
    const int low = (bits + kMaxSubstringBits - 1) / kMaxSubstringBits;
    if (substrings != 0 && (substrings < low || substrings > bits))
        throw std::invalid_argument("substrings: expected " + std::to_string(low) + ".." + std::to_string(bits) +
                                    " for " + std::to_string(bits) + "-bit codes (at most 32 bits per substring), got " +
                                    std::to_string(substrings));
}

size_t MihIndex::ntotal() const {
    std::shared_lock lock(mu_);
    return store_.n;
}

int MihIndex::substrings() const {
    std::shared_lock lock(mu_);
    return int(tables_.size());
}

std::vector<uint8_t> MihIndex::codes() const {
    std::shared_lock lock(mu_);
    return store_bytes(store_);
}

void MihIndex::add(const uint8_t* codes, size_t n, size_t width) {
    check_rows(codes, n, width, store_.bits, "codes");
    std::unique_lock lock(mu_);
    store_.add_bytes(codes, n);
    const size_t whole = store_.n / kLanes * kLanes;  // tables end on a group boundary
    if (whole >= kMinTabled && (whole - n_tab_) * kTailFraction > n_tab_) build();
}

void MihIndex::build() {
    const size_t n = store_.n / kLanes * kLanes;
    const int bits = store_.bits, W = store_.words;
    const int m = fixed_m_ > 0 ? fixed_m_ : auto_substrings(bits, n);
    const int pmax = std::clamp(int(std::ceil(std::log2(double(n)))), 8, 24);
    std::vector<uint64_t> rows(n * W);
    for (size_t i = 0; i < n; ++i) store_.code(i, rows.data() + i * W);
    std::vector<SubTable> tables(m);
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < m; ++s) {
        SubTable& t = tables[s];
        t.start = int(int64_t(bits) * s / m);
        t.len = int(int64_t(bits) * (s + 1) / m) - t.start;
        t.pbits = std::min(t.len, pmax);
        const int shift = t.len - t.pbits;
        std::vector<uint32_t> key(n);
        t.dir.assign((size_t(1) << t.pbits) + 1, 0);
        for (size_t i = 0; i < n; ++i) {
            key[i] = extract(rows.data() + i * W, t.start, t.len);
            ++t.dir[(key[i] >> shift) + 1];
        }
        for (size_t p = 1; p < t.dir.size(); ++p) t.dir[p] += t.dir[p - 1];
        std::vector<uint32_t> pos(t.dir.begin(), t.dir.end() - 1);
        t.ids.resize(n);
        for (size_t i = 0; i < n; ++i) t.ids[pos[key[i] >> shift]++] = uint32_t(i);  // stable: ids ascending
        if (shift) {  // order each directory run by the full key (runs are short)
            for (size_t p = 0; p + 1 < t.dir.size(); ++p)
                std::stable_sort(t.ids.begin() + t.dir[p], t.ids.begin() + t.dir[p + 1],
                                 [&](uint32_t a, uint32_t b) { return key[a] < key[b]; });
            t.keys.resize(n);
            for (size_t e = 0; e < n; ++e) t.keys[e] = key[t.ids[e]];
        }
        t.codes.resize(n * W);
        for (size_t e = 0; e < n; ++e)
            std::copy_n(rows.data() + size_t(t.ids[e]) * W, W, t.codes.data() + e * W);
    }
    tables_.swap(tables);
    n_tab_ = n;
}

double MihIndex::scan_cost(const Kernel& kern, uint32_t k) const {
    // candidates a streaming top-k meets: about k (1 + ln(N / k))
    const double n = double(std::max<size_t>(store_.n, 1));
    const double pushes = k ? k * (1 + std::log(std::max(1.0, n / k))) : 0.0;
    return n * store_.words * kern.scan_word_ns + pushes * kScanPushNs;
}

// Candidates of bucket [first, last) of substring s, reached at substring radius r.
template <class State>
void MihIndex::visit(const uint64_t* q, int s, int r, size_t first, size_t last, State& st, const Kernel& kern,
                    Scratch& buf, double& work) const {
    const SubTable& t = tables_[s];
    const int m = int(tables_.size()), W = store_.words;
    if (buf.pos.size() < last - first) {
        buf.pos.resize(last - first);
        buf.dist.resize(last - first);
    }
    const size_t cnt =
        kern.filter(t.codes.data() + first * W, last - first, W, q, st.lim, buf.pos.data(), buf.dist.data());
    work += kPassNs * double(cnt);
    for (size_t c = 0; c < cnt; ++c) {
        const uint32_t d = buf.dist[c];
        const size_t e = first + buf.pos[c];
        if (d >= st.lim) continue;  // the limit fell since the bucket was filtered
        const uint64_t* code = t.codes.data() + e * W;
        uint64_t x[kMaxWords];
        for (int w = 0; w < W; ++w) x[w] = code[w] ^ q[w];
        bool first_seen = true;  // no other substring reaches it at an earlier step
        for (int o = 0; o < m && first_seen; ++o) {
            if (o == s) continue;
            const int dz = popcount_swar(extract(x, tables_[o].start, tables_[o].len));
            first_seen = o < s ? dz > r : dz >= r;
        }
        if (first_seen) st.push(d, t.ids[e]);
    }
}

// Probe the tables for one query until the stop rule holds. A code is reported only from the
// first (radius, substring) step that reaches it — the step of its smallest substring distance,
// lowest substring on ties — so nothing is reported twice. Lookups go in batches whose directory
// entries, then bucket heads, are prefetched together (they are mostly cache misses). Returns
// false when the estimated work exceeds `cap` (the caller then scans for this query).
template <class State>
bool MihIndex::probe(const uint64_t* q, State& st, double cap, const Kernel& kern, Scratch& buf,
                    double& work) const {
    constexpr int kBatch = 16;
    const int m = int(tables_.size()), W = store_.words;
    int max_len = 0;
    uint32_t qk[kMaxWords * 64];
    for (int s = 0; s < m; ++s) {
        qk[s] = extract(q, tables_[s].start, tables_[s].len);
        max_len = std::max(max_len, tables_[s].len);
    }
    const double entry_ns = kEntryWordNs * W;
    work = 0;
    uint32_t keys[kBatch];
    size_t first[kBatch], last[kBatch];
    for (int r = 0; r <= max_len; ++r) {
        for (int s = 0; s < m; ++s) {
            const SubTable& t = tables_[s];
            const uint64_t end = uint64_t(1) << t.len;
            uint64_t mask = r <= t.len ? (uint64_t(1) << r) - 1 : end;
            while (mask < end) {
                int nb = 0;
                for (; nb < kBatch && mask < end; ++nb, mask = r ? next_combination(mask) : end) {
                    keys[nb] = qk[s] ^ uint32_t(mask);
                    __builtin_prefetch(t.dir.data() + (keys[nb] >> (t.len - t.pbits)));
                }
                for (int b = 0; b < nb; ++b) {
                    t.lookup(keys[b], first[b], last[b]);
                    __builtin_prefetch(t.codes.data() + first[b] * W);
                }
                for (int b = 0; b < nb; ++b) {
                    const size_t n = last[b] - first[b];
                    work += n ? kBucketNs + entry_ns * double(n) : kEmptyNs;
                    ++buf.lookups;
                    buf.entries += n;
                    if (work > cap) return false;
                    if (n) visit(q, s, r, first[b], last[b], st, kern, buf, work);
                }
            }
            if (st.done(uint32_t(m * r + s))) return true;  // all codes within m*r + s are seen
        }
    }
    return true;
}

template <class State, class Finish>
MihStats MihIndex::run(const uint64_t* q, size_t nq, uint32_t k, int threads, const Kernel& kern, bool fallback,
                      std::vector<State>& states, const Finish& finish, std::vector<size_t>& scan_rows) const {
    // states[j] arrive initialised; finish(j) completes query j. k: the number of neighbours
    // (0 for radius search), for the scan's cost. Queries MIH gives up on go to scan_rows.
    MihStats stats;
    const int W = store_.words;
    threads = int(std::clamp<size_t>(nq, 1, size_t(threads)));
    const double cap = fallback ? scan_cost(kern, k) : std::numeric_limits<double>::infinity();
    const size_t G = store_.groups(), g_tail = n_tab_ / kLanes;
    std::vector<char> ok(nq, 0);
    // Probe queries [j0, j1); a finished probe also scans the tail (codes added since the last
    // table build) and completes the query. Returns the summed cost estimate (aborted at cap).
    auto probe_range = [&](size_t j0, size_t j1, int chunk) {
        double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            Scratch buf;
            double work;
#pragma omp for schedule(dynamic, chunk)
            for (long j = long(j0); j < long(j1); ++j) {
                ok[j] = probe(q + j * W, states[j], cap, kern, buf, work);
                total += ok[j] ? work : cap;
                if (!ok[j]) continue;
                if (g_tail < G) kern_scan(kern, store_, g_tail, G, q + j * W, states[j]);
                finish(size_t(j));
            }
#pragma omp critical
            stats += MihStats{0, 0, buf.lookups, buf.entries};
        }
        return total;
    };
    size_t start = 0;
    bool use_mih = !tables_.empty();
    if (use_mih && fallback) {  // estimate on a sample of the queries
        const size_t sample = std::min(nq, std::max<size_t>(8, nq / 64));
        use_mih = probe_range(0, sample, 1) * kMihMargin <= cap * double(sample);
        start = sample;
    }
    if (use_mih) probe_range(start, nq, 4);
    for (size_t j = 0; j < nq; ++j) {
        if (ok[j]) ++stats.mih_queries;
        else scan_rows.push_back(j);
    }
    stats.scanned_queries = scan_rows.size();
    return stats;
}

MihStats MihIndex::knn(const uint64_t* q, size_t nq, uint32_t k, int threads, const Kernel& kern, bool fallback,
                      int32_t* out_d, int64_t* out_i) const {
    MihStats stats;
    const int W = store_.words;
    const uint32_t bits = uint32_t(store_.bits);
    std::vector<size_t> scan_rows;
    std::vector<TopK> states;
    for (size_t b0 = 0; b0 < nq; b0 += kBatch) {
        const size_t nb = std::min(kBatch, nq - b0);
        states.resize(nb);
        for (auto& st : states) st.reset(k, bits, false);
        auto finish = [&](size_t j) {
            const TopK& st = states[j];
            select_topk(st.keys.data(), st.keys.size(), k, bits, st.ordered, out_d + (b0 + j) * k, out_i + (b0 + j) * k);
        };
        std::vector<size_t> rows;
        stats += run(q + b0 * W, nb, k, threads, kern, fallback, states, finish, rows);
        for (size_t r : rows) scan_rows.push_back(b0 + r);
    }
    if (!scan_rows.empty()) {
        const auto qs = gather_rows(q, scan_rows, W);
        std::vector<int32_t> d(scan_rows.size() * k);
        std::vector<int64_t> i(scan_rows.size() * k);
        knn_scan(store_, qs.data(), scan_rows.size(), k, threads, kern, d.data(), i.data());
        for (size_t a = 0; a < scan_rows.size(); ++a) {
            std::copy_n(d.data() + a * k, k, out_d + scan_rows[a] * k);
            std::copy_n(i.data() + a * k, k, out_i + scan_rows[a] * k);
        }
    }
    return stats;
}

MihStats MihIndex::range(const uint64_t* q, size_t nq, uint32_t radius, int threads, const Kernel& kern,
                        bool fallback, RangeResult& out) const {
    MihStats stats;
    const int W = store_.words;
    const uint32_t bits = uint32_t(store_.bits);
    out.assign(nq, {});
    std::vector<size_t> scan_rows;
    std::vector<RangeCollector> states;
    for (size_t b0 = 0; b0 < nq; b0 += kBatch) {
        const size_t nb = std::min(kBatch, nq - b0);
        states.assign(nb, RangeCollector{radius + 1, {}});
        auto finish = [&](size_t j) {
            sort_range(states[j].keys, bits, false);
            out[b0 + j].swap(states[j].keys);
        };
        std::vector<size_t> rows;
        stats += run(q + b0 * W, nb, 0, threads, kern, fallback, states, finish, rows);
        for (size_t r : rows) scan_rows.push_back(b0 + r);
    }
    if (!scan_rows.empty()) {
        const auto qs = gather_rows(q, scan_rows, W);
        auto res = range_scan(store_, qs.data(), scan_rows.size(), radius, threads, kern);
        for (size_t a = 0; a < scan_rows.size(); ++a) out[scan_rows[a]].swap(res[a]);
    }
    return stats;
}

MihStats MihIndex::search(const uint8_t* q, size_t nq, size_t width, int64_t k, int threads,
                          const std::string& kernel, bool fallback, int32_t* out_d, int64_t* out_i) const {
    const uint32_t kk = check_k(k);
    threads = check_threads(threads);
    const Kernel& kern = get_kernel(kernel, store_.bits);
    const auto packed = checked_queries(q, nq, width, store_.bits);
    std::shared_lock lock(mu_);
    MihStats stats;
    padded_knn(nq, kk, store_.n, uint32_t(store_.bits), out_d, out_i, [&](uint32_t k1, int32_t* d, int64_t* i) {
        stats = knn(packed.data(), nq, k1, threads, kern, fallback, d, i);
    });
    return stats;
}

MihStats MihIndex::range_search(const uint8_t* q, size_t nq, size_t width, int64_t radius, int threads,
                                const std::string& kernel, bool fallback, RangeResult& out) const {
    const uint32_t r = check_radius(radius, store_.bits);
    threads = check_threads(threads);
    const Kernel& kern = get_kernel(kernel, store_.bits);
    const auto packed = checked_queries(q, nq, width, store_.bits);
    std::shared_lock lock(mu_);
    return range(packed.data(), nq, r, threads, kern, fallback, out);
}

}  // namespace dhash
