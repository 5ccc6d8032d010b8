// Kernel registry and choice: CPUID says which kernels can run, a short timed probe per code
// width says which of them is fastest here (cached for the process).
#include "kernels.hpp"

#include <algorithm>
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

// Seconds of one single-thread k-NN scan (k = 10) of `q` against `db`.
double scan_seconds(const Kernel& kern, const CodeStore& db, const std::vector<uint64_t>& q, size_t nq,
                    std::vector<TopK>& st) {
    for (TopK& s : st) s.reset(10, uint32_t(db.bits), true);
    const double t0 = now_seconds();
    kern.knn(db, 0, db.groups(), q.data(), nq, st.data());
    return now_seconds() - t0;
}

// The fastest supported kernel for codes of `bytes` bytes on 32K random codes x 256 queries
// (enough queries that kernels which prepare each database block, avx2-lut, show their batch
// speed; the x86-64 baseline build, without POPCNT, never competes).
const Kernel& probe(int bytes) {
    const int words = (bytes + 7) / 8;
    std::vector<const Kernel*> cands;
    for (const Kernel* k : compiled_kernels())
#if defined(__x86_64__)
        if (k->supported() && words <= k->own_words && k != &kPortableBaseline) cands.push_back(k);
#else
        if (k->supported() && words <= k->own_words) cands.push_back(k);
#endif
    if (cands.size() == 1) return *cands[0];
    const size_t n = 32768, nq = 256, width = size_t(bytes);
    uint64_t x = 0x9E3779B97F4A7C15ULL;  // xorshift64
    std::vector<uint8_t> codes((n + nq) * width);
    for (auto& b : codes) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b = uint8_t(x >> 56);
    }
    CodeStore db(bytes * 8);
    db.add_bytes(codes.data(), n);
    const std::vector<uint64_t> q = pack_rows(codes.data() + n * width, nq, bytes * 8);
    // best of 3 per kernel, the kernels taking turns so that a change of load hits all alike
    std::vector<double> best_s(cands.size(), std::numeric_limits<double>::infinity());
    std::vector<TopK> st(nq);
    for (int rep = 0; rep < 3; ++rep)
        for (size_t c = 0; c < cands.size(); ++c) best_s[c] = std::min(best_s[c], scan_seconds(*cands[c], db, q, nq, st));
    return *cands[std::min_element(best_s.begin(), best_s.end()) - best_s.begin()];
}

}  // namespace

const Kernel& get_kernel(const std::string& requested, int bits) {
    check_bits(bits);
    std::string name = requested;
    if (name.empty()) {
        const char* env = std::getenv("DHASH_KERNEL");
        if (env && *env) name = env;
    }
    if (!name.empty()) return named_kernel(name);
    static std::mutex mu;
    static const Kernel* chosen[kMaxBits / 8 + 1] = {};
    const int bytes = (bits + 7) / 8;
    std::lock_guard<std::mutex> lock(mu);
    if (!chosen[bytes]) chosen[bytes] = &probe(bytes);
    return *chosen[bytes];
}

}  // namespace dhash
