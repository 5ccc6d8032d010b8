// Code storage (byte rows -> zero-padded 64-bit words, database in transposed groups of 8) and
// the argument checks of the index classes.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core.hpp"

namespace dhash {

namespace {

// One code of `bits` bits from `width` bytes (little-endian: byte j = bits 8j..8j+7), padding cleared.
inline void load_row(const uint8_t* src, size_t width, int bits, uint64_t* row) {
    std::memcpy(row, src, width);
    if (bits % 64) row[(bits - 1) / 64] &= (uint64_t(1) << (bits % 64)) - 1;
}

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

}  // namespace

CodeStore::CodeStore(int bits_) : bits(bits_), words((bits_ + 63) / 64) { check_bits(bits_); }

void CodeStore::add_bytes(const uint8_t* codes, size_t n_add) {
    if (n_add > kMaxCodes - n) bad("codes: an index holds at most " + std::to_string(kMaxCodes) + " codes");
    const size_t width = size_t(bits + 7) / 8;
    const size_t n_new = n + n_add;
    data.resize(((n_new + kLanes - 1) / kLanes) * kLanes * words, 0);
    for (size_t i = 0; i < n_add; ++i) {
        uint64_t row[kMaxWords] = {};
        load_row(codes + i * width, width, bits, row);
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
    for (size_t i = 0; i < n; ++i) load_row(codes + i * width, width, bits, out.data() + i * words);
    return out;
}

void check_bits(int bits) {
    if (bits < 1 || bits > kMaxBits)
        bad("bits: code length must be 1.." + std::to_string(kMaxBits) + ", got " + std::to_string(bits));
}

void check_rows(const uint8_t* p, size_t n, size_t width, int bits, const char* what) {
    const size_t need = size_t(bits + 7) / 8;
    if (width != need)
        bad(std::string(what) + ": " + std::to_string(bits) + "-bit codes need " + std::to_string(need) +
            " bytes per row, got " + std::to_string(width));
    if (n && !p) bad(std::string(what) + ": no data");
}

uint32_t check_k(int64_t k) {
    if (k < 1 || k > kMaxK) bad("k: expected 1.." + std::to_string(kMaxK) + ", got " + std::to_string(k));
    return uint32_t(k);
}

uint32_t check_radius(int64_t radius, int bits) {
    if (radius < 0) bad("radius: expected >= 0, got " + std::to_string(radius));
    return uint32_t(std::min<int64_t>(radius, bits));
}

int check_threads(int threads) {
    if (threads < 0 || threads > kMaxThreads)
        bad("threads: expected 0 (all cores) .. " + std::to_string(kMaxThreads) + ", got " + std::to_string(threads));
    return threads ? threads : default_threads();
}

int default_threads() { return std::max(1, omp_get_num_procs()); }

}  // namespace dhash
