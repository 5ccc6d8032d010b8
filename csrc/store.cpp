// Code storage: byte rows -> zero-padded 64-bit words, database in transposed groups of 8.
#include <cstring>

#include "core.hpp"

namespace dhash {

CodeStore::CodeStore(int bits_) : bits(bits_), words((bits_ + 63) / 64) {}

void CodeStore::add_bytes(const uint8_t* codes, size_t n_add) {
    const size_t width = size_t(bits + 7) / 8;
    const size_t n_new = n + n_add;
    data.resize(((n_new + kLanes - 1) / kLanes) * kLanes * words, 0);
    for (size_t i = 0; i < n_add; ++i) {
        uint64_t row[kMaxWords] = {};
        std::memcpy(row, codes + i * width, width);  // little-endian: byte j of the code = bits 8j..8j+7
        const size_t r = n + i, g = r / kLanes, l = r % kLanes;
        for (int w = 0; w < words; ++w) data[(g * words + w) * kLanes + l] = row[w];
    }
    n = n_new;
}

void CodeStore::code(size_t i, uint64_t* out) const {
    const size_t g = i / kLanes, l = i % kLanes;
    for (int w = 0; w < words; ++w) out[w] = data[(g * words + w) * kLanes + l];
}

std::vector<uint64_t> pack_rows(const uint8_t* codes, size_t n, int bits) {
    const size_t width = size_t(bits + 7) / 8, words = (size_t(bits) + 63) / 64;
    std::vector<uint64_t> out(n * words, 0);
    for (size_t i = 0; i < n; ++i) std::memcpy(out.data() + i * words, codes + i * width, width);
    return out;
}

}  // namespace dhash
