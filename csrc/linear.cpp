// The linear-scan index and its multi-threaded drivers (distances, k-NN, radius).
#include "linear.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace dhash {

namespace {

constexpr size_t kMinGroupsPerThread = 1024;  // below this a database split is not worth a merge
constexpr double kMinWordsPerThread = 1 << 20;  // code words compared per thread worth waking it

// Threads worth using for nq queries against `groups` groups of `words`-word codes.
int useful_threads(size_t groups, size_t nq, int words, int threads) {
    const double work = double(groups) * kLanes * double(nq) * words;
    return int(std::clamp<double>(work / kMinWordsPerThread, 1, threads));
}

// Contiguous share `part` of `n` items split into `parts`.
inline size_t split_at(size_t n, int parts, int part) { return n * size_t(part) / size_t(parts); }

// Threads over the database (tdb) and over queries (tq): split the database when it is large
// enough, the queries otherwise.
void plan(size_t groups, size_t nq, int words, int threads, int& tdb, int& tq) {
    threads = useful_threads(groups, nq, words, threads);
    tdb = int(std::clamp<size_t>(groups / kMinGroupsPerThread, 1, size_t(threads)));
    tq = std::max(1, std::min<int>(threads / tdb, int(std::max<size_t>(nq, 1))));
}

// Large k: a collector starting cold pushes about k (1 + ln(N / k)) candidates before its
// threshold settles near the k-th distance, and pushes are the scan's slow path. So for k >=
// kWarmK each collector starts at a threshold read off a k-NN scan of a sample of the share:
// kRuns evenly spaced runs of whole groups, about kSampleMean * N / k codes (at most N / 16),
// with k' = mu + 4 sqrt(mu) + 4 neighbours, mu = k * sample / N the expected number of sample
// codes below the share's k-th distance. A collector whose threshold never fell below its start
// found fewer than k codes there: that query is scanned again from cold, so results stay exact.
constexpr uint32_t kWarmK = 256;
constexpr size_t kRuns = 16;
constexpr double kSampleMean = 32;

// Copies of `per_run` groups at each of kRuns evenly spaced starts in [g0, g1).
CodeStore sample_runs(const CodeStore& db, size_t g0, size_t g1, size_t per_run) {
    CodeStore out(db.bits);
    const size_t words = size_t(db.words) * kLanes, span = (g1 - g0) / kRuns;
    out.data.resize(kRuns * per_run * words);
    for (size_t r = 0; r < kRuns; ++r)
        std::copy_n(db.group(g0 + r * span), per_run * words, out.data.data() + r * per_run * words);
    out.n = kRuns * per_run * kLanes;
    return out;
}

// Resets the nq collectors of queries q for a scan of groups [g0, g1); returns their starting
// thresholds (bits + 1: cold).
std::vector<uint32_t> warm_start(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq,
                                 uint32_t k, const Kernel& kern, TopK* st) {
    const uint32_t bits = uint32_t(db.bits);
    std::vector<uint32_t> start(nq, bits + 1);
    const size_t full = std::max(g0, std::min(g1, db.n / kLanes));  // groups without padding
    const size_t share = (full - g0) * kLanes;
    const size_t per_run = std::min<double>(share / 16.0, kSampleMean * double(share) / k) / (kRuns * kLanes);
    if (k >= kWarmK && per_run > 0) {
        const CodeStore sample = sample_runs(db, g0, full, per_run);
        const double mu = double(k) * double(sample.n) / double(share);
        std::vector<TopK> probe(nq);
        for (TopK& p : probe) p.reset(uint32_t(mu + 4 * std::sqrt(mu) + 4), bits, true);
        kern.knn(sample, 0, sample.groups(), q, nq, probe.data());
        for (size_t j = 0; j < nq; ++j) start[j] = std::min(bits + 1, probe[j].t + 1);
    }
    for (size_t j = 0; j < nq; ++j) st[j].reset(k, bits, true, start[j]);
    return start;
}

// Queries whose collector started warm but never got below its start: again from cold.
void rescan_cold(const CodeStore& db, size_t g0, size_t g1, const uint64_t* q, size_t nq, uint32_t k,
                 const Kernel& kern, TopK* st, const std::vector<uint32_t>& start) {
    for (size_t j = 0; j < nq; ++j)
        if (start[j] <= uint32_t(db.bits) && st[j].t >= start[j]) {
            st[j].reset(k, uint32_t(db.bits), true);
            kern.knn(db, g0, g1, q + j * db.words, 1, st + j);
        }
}

}  // namespace

void distances(const CodeStore& db, const uint64_t* q, size_t nq, uint16_t* out, int threads,
               const Kernel& kern) {
    const size_t G = db.groups(), qchunk = 16, gchunk = 4096;
    const long nqc = long((nq + qchunk - 1) / qchunk), ngc = long((G + gchunk - 1) / gchunk);
    threads = useful_threads(G, nq, db.words, threads);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(threads)
    for (long a = 0; a < nqc; ++a)
        for (long b = 0; b < ngc; ++b) {
            const size_t q0 = size_t(a) * qchunk, g0 = size_t(b) * gchunk;
            kern.distances(db, g0, std::min(G, g0 + gchunk), q + q0 * db.words, std::min(qchunk, nq - q0),
                           out + q0 * db.n, db.n);
        }
}

void knn_scan(const CodeStore& db, const uint64_t* q, size_t nq, uint32_t k, int threads, const Kernel& kern,
              int32_t* out_d, int64_t* out_i) {
    if (nq == 0) return;
    const size_t G = db.groups();
    int tdb, tq;
    plan(G, nq, db.words, threads, tdb, tq);
    // queries per thread and batch: bound the collectors' memory (~16 MB per thread)
    const size_t per_query = (2 * size_t(k) + 64) * 8 + (size_t(db.bits) + 2) * 4 + 128;
    const size_t qb = std::clamp<size_t>((16u << 20) / per_query, 8, 1024);
    const size_t batch = qb * size_t(tq);
    std::vector<TopK> st(size_t(tdb) * std::min(batch, nq));
    for (size_t b0 = 0; b0 < nq; b0 += batch) {
        const size_t nb = std::min(batch, nq - b0);
#pragma omp parallel num_threads(tdb * tq)
        {
            const int tid = omp_get_thread_num(), iq = tid / tdb, id = tid % tdb;
            const size_t j0 = split_at(nb, tq, iq), j1 = split_at(nb, tq, iq + 1);
            const size_t g0 = split_at(G, tdb, id), g1 = split_at(G, tdb, id + 1);
            TopK* mine = st.data() + size_t(id) * nb;
            const uint64_t* qj = q + (b0 + j0) * db.words;
            const auto start = warm_start(db, g0, g1, qj, j1 - j0, k, kern, mine + j0);
            kern.knn(db, g0, g1, qj, j1 - j0, mine + j0);
            rescan_cold(db, g0, g1, qj, j1 - j0, k, kern, mine + j0, start);
#pragma omp barrier
            std::vector<uint64_t> merged;
#pragma omp for schedule(static)
            for (long j = 0; j < long(nb); ++j) {
                const uint64_t* keys = st[j].keys.data();
                size_t n = st[j].keys.size();
                if (tdb > 1) {  // database shares in index order: concatenation stays ordered
                    merged.clear();
                    for (int d = 0; d < tdb; ++d) {
                        const auto& ks = st[size_t(d) * nb + j].keys;
                        merged.insert(merged.end(), ks.begin(), ks.end());
                    }
                    keys = merged.data();
                    n = merged.size();
                }
                select_topk(keys, n, k, uint32_t(db.bits), true, out_d + (b0 + j) * k, out_i + (b0 + j) * k);
            }
        }
    }
}

RangeResult range_scan(const CodeStore& db, const uint64_t* q, size_t nq, uint32_t radius, int threads,
                       const Kernel& kern) {
    RangeResult res(nq);
    if (nq == 0) return res;
    const size_t G = db.groups();
    int tdb, tq;
    plan(G, nq, db.words, threads, tdb, tq);
    const size_t batch = 1024 * size_t(tq);
    std::vector<RangeCollector> st(size_t(tdb) * std::min(batch, nq));
    for (size_t b0 = 0; b0 < nq; b0 += batch) {
        const size_t nb = std::min(batch, nq - b0);
#pragma omp parallel num_threads(tdb * tq)
        {
            const int tid = omp_get_thread_num(), iq = tid / tdb, id = tid % tdb;
            const size_t j0 = split_at(nb, tq, iq), j1 = split_at(nb, tq, iq + 1);
            const size_t g0 = split_at(G, tdb, id), g1 = split_at(G, tdb, id + 1);
            RangeCollector* mine = st.data() + size_t(id) * nb;
            for (size_t j = j0; j < j1; ++j) {
                mine[j].lim = radius + 1;
                mine[j].keys.clear();
            }
            kern.range(db, g0, g1, q + (b0 + j0) * db.words, j1 - j0, mine + j0);
#pragma omp barrier
#pragma omp for schedule(static)
            for (long j = 0; j < long(nb); ++j) {
                auto& out = res[b0 + j];
                for (int d = 0; d < tdb; ++d) {
                    const auto& ks = st[size_t(d) * nb + j].keys;
                    out.insert(out.end(), ks.begin(), ks.end());
                }
                sort_range(out, uint32_t(db.bits), true);
            }
        }
    }
    return res;
}

std::vector<uint8_t> store_bytes(const CodeStore& store) {
    const size_t width = size_t(store.bits + 7) / 8;
    std::vector<uint8_t> out(store.n * width);
    uint64_t row[kMaxWords];
    for (size_t i = 0; i < store.n; ++i) {
        store.code(i, row);
        std::memcpy(out.data() + i * width, row, width);
    }
    return out;
}

std::vector<uint64_t> checked_queries(const uint8_t* q, size_t nq, size_t width, int bits) {
    check_rows(q, nq, width, bits, "queries");
    return pack_rows(q, nq, bits);
}

size_t LinearIndex::ntotal() const {
    std::shared_lock lock(mu_);
    return store_.n;
}

void LinearIndex::add(const uint8_t* codes, size_t n, size_t width) {
    check_rows(codes, n, width, store_.bits, "codes");
    std::unique_lock lock(mu_);
    store_.add_bytes(codes, n);
}

std::vector<uint8_t> LinearIndex::codes() const {
    std::shared_lock lock(mu_);
    return store_bytes(store_);
}

void LinearIndex::search(const uint8_t* q, size_t nq, size_t width, int64_t k, int threads,
                         const std::string& kernel, int32_t* out_d, int64_t* out_i) const {
    const uint32_t kk = check_k(k);
    threads = check_threads(threads);
    const Kernel& kern = get_kernel(kernel, store_.bits);
    const auto packed = checked_queries(q, nq, width, store_.bits);
    std::shared_lock lock(mu_);
    padded_knn(nq, kk, store_.n, uint32_t(store_.bits), out_d, out_i, [&](uint32_t k1, int32_t* d, int64_t* i) {
        knn_scan(store_, packed.data(), nq, k1, threads, kern, d, i);
    });
}

RangeResult LinearIndex::range_search(const uint8_t* q, size_t nq, size_t width, int64_t radius, int threads,
                                      const std::string& kernel) const {
    const uint32_t r = check_radius(radius, store_.bits);
    threads = check_threads(threads);
    const Kernel& kern = get_kernel(kernel, store_.bits);
    const auto packed = checked_queries(q, nq, width, store_.bits);
    std::shared_lock lock(mu_);
    return range_scan(store_, packed.data(), nq, r, threads, kern);
}

void LinearIndex::distances(const uint8_t* q, size_t nq, size_t width, int threads, const std::string& kernel,
                            uint16_t* out, size_t n) const {
    threads = check_threads(threads);
    const Kernel& kern = get_kernel(kernel, store_.bits);
    const auto packed = checked_queries(q, nq, width, store_.bits);
    std::shared_lock lock(mu_);
    if (n != store_.n) throw std::invalid_argument("distances: output has " + std::to_string(n) +
                                                   " columns for " + std::to_string(store_.n) + " codes");
    dhash::distances(store_, packed.data(), nq, out, threads, kern);
}

}  // namespace dhash
