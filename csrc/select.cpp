// Top-k and radius result selection by counting over the small integer distances 0..bits.
#include <algorithm>

#include "core.hpp"

namespace dhash {

void TopK::reset(uint32_t k_, uint32_t bits_, bool strict_, uint32_t t0) {
    k = k_;
    bits = bits_;
    t = std::min(bits + 1, t0);
    below = 0;
    strict = ordered = strict_;
    lim = strict ? t : t + 1;
    cap = 2 * size_t(k) + 64;
    hist.assign(bits + 2, 0);
    keys.clear();
}

void TopK::compact() {
    // Keep every candidate below t and the (k - below) with the smallest indices at t.
    const uint32_t need = k - below;
    size_t out = 0;
    if (ordered) {
        uint32_t taken = 0;
        for (uint64_t key : keys) {
            const uint32_t d = key_dist(key);
            if (d < t || (d == t && taken < need)) {
                keys[out++] = key;
                taken += d == t;
            }
        }
        hist[t] = taken;
    } else {
        std::vector<uint64_t> at_t;
        for (uint64_t key : keys) {
            const uint32_t d = key_dist(key);
            if (d < t) keys[out++] = key;
            else if (d == t) at_t.push_back(key);
        }
        const size_t take = std::min<size_t>(need, at_t.size());
        std::nth_element(at_t.begin(), at_t.begin() + take, at_t.end());
        for (size_t j = 0; j < take; ++j) keys[out++] = at_t[j];
        hist[t] = uint32_t(take);
    }
    keys.resize(out);
}

void select_topk(const uint64_t* keys, size_t n, uint32_t k, uint32_t bits, bool ordered, int32_t* out_d,
                 int64_t* out_i) {
    thread_local std::vector<size_t> start;
    thread_local std::vector<uint64_t> at_t, sorted;
    start.assign(bits + 3, 0);
    for (size_t j = 0; j < n; ++j) ++start[key_dist(keys[j]) + 1];
    // threshold T: smallest distance with at least k candidates at or below it
    uint32_t T = bits + 1;
    size_t cum = 0;
    for (uint32_t d = 0; d <= bits; ++d) {
        if (cum + start[d + 1] >= k) {
            T = d;
            break;
        }
        cum += start[d + 1];
    }
    // start[d] = first output slot of distance d (prefix sums)
    for (uint32_t d = 1; d <= bits + 2; ++d) start[d] += start[d - 1];
    const size_t need = k - (T <= bits ? cum : 0);  // taken at distance T
    const size_t total = std::min<size_t>(n, k);
    sorted.resize(total);
    at_t.clear();
    for (size_t j = 0; j < n; ++j) {
        const uint32_t d = key_dist(keys[j]);
        if (d < T) sorted[start[d]++] = keys[j];
        else if (d == T) at_t.push_back(keys[j]);
    }
    if (T <= bits) {
        if (!ordered) std::nth_element(at_t.begin(), at_t.begin() + need, at_t.end());
        std::copy(at_t.begin(), at_t.begin() + need, sorted.begin() + start[T]);
    }
    if (!ordered) {  // indices within each distance arrive in any order
        for (size_t a = 0; a < total;) {
            size_t b = a;
            while (b < total && key_dist(sorted[b]) == key_dist(sorted[a])) ++b;
            std::sort(sorted.begin() + a, sorted.begin() + b);
            a = b;
        }
    }
    for (size_t j = 0; j < total; ++j) {
        out_d[j] = int32_t(key_dist(sorted[j]));
        out_i[j] = int64_t(key_index(sorted[j]));
    }
    for (size_t j = total; j < k; ++j) {
        out_d[j] = int32_t(bits + 1);
        out_i[j] = -1;
    }
}

void sort_range(std::vector<uint64_t>& keys, uint32_t bits, bool ordered) {
    if (!ordered) {
        std::sort(keys.begin(), keys.end());
        return;
    }
    std::vector<size_t> start(bits + 2, 0);
    for (uint64_t key : keys) ++start[key_dist(key) + 1];
    for (uint32_t d = 1; d <= bits + 1; ++d) start[d] += start[d - 1];
    std::vector<uint64_t> out(keys.size());
    for (uint64_t key : keys) out[start[key_dist(key)]++] = key;
    keys.swap(out);
}

}  // namespace dhash
