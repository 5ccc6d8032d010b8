// Kernel selection and the multi-threaded linear-scan drivers (distances, k-NN, radius).
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "core.hpp"

namespace dhash {

bool kernel_supported(const std::string& name) {
    if (name == "portable") return true;
    __builtin_cpu_init();
    if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    if (name == "avx512")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("popcnt");
    return false;
}

std::vector<std::string> available_kernels() {
    std::vector<std::string> out;
    for (const char* name : {"portable", "avx2", "avx512"})
        if (kernel_supported(name)) out.emplace_back(name);
    return out;
}

const Kernel& get_kernel(const std::string& requested) {
    std::string name = requested;
    if (name.empty()) {
        const char* env = std::getenv("DHASH_KERNEL");
        if (env && *env) name = env;
    }
    if (name.empty()) name = available_kernels().back();
    if (name != "portable" && name != "avx2" && name != "avx512")
        throw std::invalid_argument("unknown kernel '" + name + "' (choose portable, avx2 or avx512)");
    if (!kernel_supported(name)) throw std::invalid_argument("kernel '" + name + "' is not supported by this CPU");
    return name == "avx512" ? kAvx512 : name == "avx2" ? kAvx2 : kPortable;
}

int default_threads() { return std::max(1, omp_get_num_procs()); }

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
            for (size_t j = j0; j < j1; ++j) mine[j].reset(k, uint32_t(db.bits), true);
            kern.knn(db, g0, g1, q + (b0 + j0) * db.words, j1 - j0, mine + j0);
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

std::vector<std::vector<uint64_t>> range_scan(const CodeStore& db, const uint64_t* q, size_t nq, uint32_t radius,
                                              int threads, const Kernel& kern) {
    std::vector<std::vector<uint64_t>> res(nq);
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

}  // namespace dhash
