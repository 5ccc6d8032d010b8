// Kernel registry and choice: CPUID says which kernels can run, a short timed probe per code
// width says which of them is fastest here (cached for the process).
#include "kernels.hpp"

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>

namespace dhash {

const std::vector<const Kernel*>& compiled_kernels() {
    static const std::vector<const Kernel*> all = {
#if defined(__x86_64__)
        &kPortableBaseline, &kPortable, &kAvx2, &kAvx2Lut, &kAvx512,
#else
        &kPortable,
#endif
#if defined(__aarch64__)
        &kNeon,
#endif
    };
    return all;
}

std::vector<std::string> available_kernels() {
    std::vector<std::string> out;
    for (const Kernel* k : compiled_kernels())
        if (k->supported()) out.emplace_back(k->name);
    return out;
}

namespace {

const Kernel& named_kernel(const std::string& name) {
    std::string known;
    for (const Kernel* k : compiled_kernels()) {
        if (name == k->name) {
            if (!k->supported()) throw std::invalid_argument("kernel '" + name + "' is not supported by this CPU");
            return *k;
        }
        known += (known.empty() ? "" : ", ") + std::string(k->name);
    }
    throw std::invalid_argument("unknown kernel '" + name + "' (choose " + known + ")");
}

// Seconds of this thread's CPU time where the platform has it (time spent preempted on a shared
// machine does not count), else of the wall clock.
double now_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0) return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
#endif
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds of the best of 3 single-thread k-NN scans (k = 10) of `q` against `db`.
double probe_seconds(const Kernel& kern, const CodeStore& db, const std::vector<uint64_t>& q, size_t nq) {
    std::vector<TopK> st(nq);
    double best = std::numeric_limits<double>::infinity();
    for (int rep = 0; rep < 3; ++rep) {
        for (TopK& s : st) s.reset(10, uint32_t(db.bits), true);
        const double t0 = now_seconds();
        kern.knn(db, 0, db.groups(), q.data(), nq, st.data());
        best = std::min(best, now_seconds() - t0);
    }
    return best;
}

// The fastest supported kernel for `words`-word codes on 64K random codes x 128 queries (enough
// queries that kernels which prepare each database block, avx2-lut, show their batch speed; the
// x86-64 baseline build, without POPCNT, never competes).
const Kernel& probe(int words) {
    std::vector<const Kernel*> cands;
    for (const Kernel* k : compiled_kernels())
#if defined(__x86_64__)
        if (k->supported() && words <= k->own_words && k != &kPortableBaseline) cands.push_back(k);
#else
        if (k->supported() && words <= k->own_words) cands.push_back(k);
#endif
    if (cands.size() == 1) return *cands[0];
    const size_t n = 65536, nq = 128, width = size_t(words) * 8;
    uint64_t x = 0x9E3779B97F4A7C15ULL;  // xorshift64
    std::vector<uint8_t> bytes((n + nq) * width);
    for (auto& b : bytes) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b = uint8_t(x >> 56);
    }
    CodeStore db(words * 64);
    db.add_bytes(bytes.data(), n);
    const std::vector<uint64_t> q = pack_rows(bytes.data() + n * width, nq, words * 64);
    const Kernel* best = cands[0];
    double best_s = std::numeric_limits<double>::infinity();
    for (const Kernel* k : cands) {
        const double s = probe_seconds(*k, db, q, nq);
        if (s < best_s) best_s = s, best = k;
    }
    return *best;
}

}  // namespace

const Kernel& get_kernel(const std::string& requested, int words) {
    if (words < 1 || words > kMaxWords)
        throw std::invalid_argument("kernel choice: code words must be 1.." + std::to_string(kMaxWords));
    std::string name = requested;
    if (name.empty()) {
        const char* env = std::getenv("DHASH_KERNEL");
        if (env && *env) name = env;
    }
    if (!name.empty()) return named_kernel(name);
    static std::mutex mu;
    static const Kernel* chosen[kMaxWords + 1] = {};
    std::lock_guard<std::mutex> lock(mu);
    if (!chosen[words]) chosen[words] = &probe(words);
    return *chosen[words];
}

}  // namespace dhash
