// Exactness check of every kernel this CPU runs, without Python: k-NN, radius search and distances
// of LinearIndex and MihIndex against a plain reference loop, on every code-width class (1, 2, 4
// and other word counts). Built and run by tests/test_native_kernels.py (for AArch64 under
// qemu-user). Prints "checked <kernel>" per kernel and "ok" on success; exit code 1 on a mismatch.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "linear.hpp"
#include "mih.hpp"

using namespace dhash;

namespace {

int failures = 0;

void expect(bool ok, const char* what, const char* kernel, int bits, size_t n) {
    if (ok) return;
    std::printf("FAIL %s kernel=%s bits=%d n=%zu\n", what, kernel, bits, n);
    ++failures;
}

int ref_dist(const uint8_t* a, const uint8_t* b, size_t width) {
    int d = 0;
    for (size_t j = 0; j < width; ++j) d += __builtin_popcount(unsigned(a[j] ^ b[j]));
    return d;
}

void check(const std::string& kernel, int bits, size_t n, std::mt19937_64& rng) {
    const size_t width = size_t(bits + 7) / 8, nq = 21;  // >= 16: avx2-lut scans itself (3 tiles of 6 + 3)
    std::vector<uint8_t> db(n * width), q(nq * width);
    const uint8_t last = bits % 8 ? uint8_t((1u << (bits % 8)) - 1) : 0xff;
    auto fill = [&](std::vector<uint8_t>& v, size_t rows) {
        for (size_t i = 0; i < rows; ++i)
            for (size_t j = 0; j < width; ++j) {
                const uint8_t x = uint8_t(rng() & rng());  // biased bits: many ties
                v[i * width + j] = j + 1 == width ? uint8_t(x & last) : x;
            }
    };
    fill(db, n);
    fill(q, nq);
    std::vector<std::vector<int>> dist(nq, std::vector<int>(n));
    for (size_t a = 0; a < nq; ++a)
        for (size_t i = 0; i < n; ++i) dist[a][i] = ref_dist(&q[a * width], &db[i * width], width);

    LinearIndex lin(bits);
    lin.add(db.data(), n, width);
    MihIndex mih(bits, 0);
    mih.add(db.data(), n, width);
    const char* name = kernel.c_str();
    for (uint32_t k : {1u, 10u, uint32_t(n) + 3}) {
        std::vector<int32_t> d(nq * k), d2(nq * k);
        std::vector<int64_t> i(nq * k), i2(nq * k);
        lin.search(q.data(), nq, width, k, 2, kernel, d.data(), i.data());
        mih.search(q.data(), nq, width, k, 2, kernel, false, d2.data(), i2.data());
        for (size_t a = 0; a < nq; ++a) {
            std::vector<int64_t> order(n);
            for (size_t j = 0; j < n; ++j) order[j] = int64_t(j);
            std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return dist[a][x] < dist[a][y]; });
            for (uint32_t c = 0; c < k; ++c) {
                const int64_t want_i = c < n ? order[c] : -1;
                const int32_t want_d = c < n ? dist[a][order[c]] : bits + 1;
                expect(i[a * k + c] == want_i && d[a * k + c] == want_d, "linear knn", name, bits, n);
                expect(i2[a * k + c] == want_i && d2[a * k + c] == want_d, "mih knn", name, bits, n);
            }
        }
    }
    const int radius = bits / 3;
    const RangeResult r = lin.range_search(q.data(), nq, width, radius, 2, kernel);
    RangeResult r2;
    mih.range_search(q.data(), nq, width, radius, 2, kernel, false, r2);
    for (size_t a = 0; a < nq; ++a) {
        std::vector<uint64_t> want;
        for (size_t i = 0; i < n; ++i)
            if (dist[a][i] <= radius) want.push_back(make_key(uint32_t(dist[a][i]), uint32_t(i)));
        std::sort(want.begin(), want.end());
        expect(r[a] == want, "linear range", name, bits, n);
        expect(r2[a] == want, "mih range", name, bits, n);
    }
    std::vector<uint16_t> all(nq * n);
    lin.distances(q.data(), nq, width, 2, kernel, all.data(), n);
    for (size_t a = 0; a < nq; ++a)
        for (size_t i = 0; i < n; ++i) expect(all[a * n + i] == dist[a][i], "distances", name, bits, n);
}

}  // namespace

int main() {
    std::mt19937_64 rng(7);
    for (const std::string& kernel : available_kernels()) {
        for (int bits : {1, 12, 64, 100, 128, 256, 300, 1024})
            for (size_t n : {size_t(0), size_t(13), size_t(4500)}) check(kernel, bits, n, rng);
        std::printf("checked %s\n", kernel.c_str());
    }
    std::printf(failures ? "%d failures\n" : "ok\n", failures);
    return failures ? 1 : 0;
}
