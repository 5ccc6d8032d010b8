// pybind11 surface of dhash._core: kernel listing, the distance matrix, and the index cores that
// dhash.search wraps (inputs are validated in Python first; the GIL is released for the work).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <shared_mutex>

#include "core.hpp"
#include "mih.hpp"


namespace py = pybind11;
using namespace dhash;

using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

namespace {

int threads_or_default(int threads) { return threads > 0 ? threads : default_threads(); }

size_t rows(const U8& a) { return a.ndim() == 2 ? size_t(a.shape(0)) : 0; }

py::tuple knn_arrays(size_t nq, uint32_t k) {
    return py::make_tuple(py::array_t<int32_t>({nq, size_t(k)}), py::array_t<int64_t>({nq, size_t(k)}));
}

// faiss layout: lims (nq + 1), distances, indices, from per-query sorted keys.
py::tuple range_arrays(const std::vector<std::vector<uint64_t>>& res) {
    py::array_t<int64_t> lims(res.size() + 1);
    auto* l = lims.mutable_data();
    l[0] = 0;
    for (size_t j = 0; j < res.size(); ++j) l[j + 1] = l[j] + int64_t(res[j].size());
    py::array_t<int32_t> dist(l[res.size()]);
    py::array_t<int64_t> idx(l[res.size()]);
    auto* d = dist.mutable_data();
    auto* i = idx.mutable_data();
    for (size_t j = 0; j < res.size(); ++j)
        for (size_t r = 0; r < res[j].size(); ++r) {
            d[l[j] + r] = int32_t(key_dist(res[j][r]));
            i[l[j] + r] = int64_t(key_index(res[j][r]));
        }
    return py::make_tuple(lims, dist, idx);
}

py::array_t<uint8_t> codes_of(const CodeStore& store) {
    const size_t width = size_t(store.bits + 7) / 8;
    py::array_t<uint8_t> out({store.n, width});
    uint8_t* o = out.mutable_data();
    uint64_t row[kMaxWords];
    for (size_t i = 0; i < store.n; ++i) {
        store.code(i, row);
        std::memcpy(o + i * width, row, width);
    }
    return out;
}

py::dict stats_dict(const MihStats& s) {
    py::dict d;
    d["mih_queries"] = s.mih_queries;
    d["scanned_queries"] = s.scanned_queries;
    d["lookups"] = s.lookups;
    d["entries"] = s.entries;
    return d;
}

// Linear-scan index: codes in the transposed group layout.
struct LinearCore {
    CodeStore store;
    mutable std::shared_mutex mu;

    explicit LinearCore(int bits) : store(bits) {}

    void add(const U8& codes) {
        const size_t n = rows(codes);
        const uint8_t* p = codes.data();
        py::gil_scoped_release nogil;
        std::unique_lock lock(mu);
        store.add_bytes(p, n);
    }

    py::array_t<uint8_t> codes() const {
        std::shared_lock lock(mu);
        return codes_of(store);
    }

    py::tuple search(const U8& q, uint32_t k, int threads, const std::string& kernel) const {
        const Kernel& kern = get_kernel(kernel);
        const size_t nq = rows(q);
        auto packed = pack_rows(q.data(), nq, store.bits);
        py::tuple out = knn_arrays(nq, k);
        auto* d = out[0].cast<py::array_t<int32_t>>().mutable_data();
        auto* i = out[1].cast<py::array_t<int64_t>>().mutable_data();
        {
            py::gil_scoped_release nogil;
            std::shared_lock lock(mu);
            knn_scan(store, packed.data(), nq, k, threads_or_default(threads), kern, d, i);
        }
        return out;
    }

    py::tuple range_search(const U8& q, uint32_t radius, int threads, const std::string& kernel) const {
        const Kernel& kern = get_kernel(kernel);
        const size_t nq = rows(q);
        auto packed = pack_rows(q.data(), nq, store.bits);
        std::vector<std::vector<uint64_t>> res;
        {
            py::gil_scoped_release nogil;
            std::shared_lock lock(mu);
            res = range_scan(store, packed.data(), nq, radius, threads_or_default(threads), kern);
        }
        return range_arrays(res);
    }

    py::array_t<uint16_t> distances(const U8& q, int threads, const std::string& kernel) const {
        const Kernel& kern = get_kernel(kernel);
        const size_t nq = rows(q);
        auto packed = pack_rows(q.data(), nq, store.bits);
        py::array_t<uint16_t> out({nq, store.n});
        uint16_t* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            std::shared_lock lock(mu);
            dhash::distances(store, packed.data(), nq, o, threads_or_default(threads), kern);
        }
        return out;
    }
};

// Multi-index hashing index; search/range_search also return the MihStats as a dict.
struct MihBinding {
    MihCore core;
    mutable std::shared_mutex mu;

    MihBinding(int bits, int substrings) : core(bits, substrings) {}

    void add(const U8& codes) {
        const size_t n = rows(codes);
        const uint8_t* p = codes.data();
        py::gil_scoped_release nogil;
        std::unique_lock lock(mu);
        core.add_bytes(p, n);
    }

    py::array_t<uint8_t> codes() const {
        std::shared_lock lock(mu);
        return codes_of(core.store());
    }

    py::tuple search(const U8& q, uint32_t k, int threads, const std::string& kernel, bool fallback) const {
        const Kernel& kern = get_kernel(kernel);
        const size_t nq = rows(q);
        auto packed = pack_rows(q.data(), nq, core.store().bits);
        py::tuple out = knn_arrays(nq, k);
        auto* d = out[0].cast<py::array_t<int32_t>>().mutable_data();
        auto* i = out[1].cast<py::array_t<int64_t>>().mutable_data();
        MihStats stats;
        {
            py::gil_scoped_release nogil;
            std::shared_lock lock(mu);
            stats = core.knn(packed.data(), nq, k, threads_or_default(threads), kern, fallback, d, i);
        }
        return py::make_tuple(out[0], out[1], stats_dict(stats));
    }

    py::tuple range_search(const U8& q, uint32_t radius, int threads, const std::string& kernel,
                           bool fallback) const {
        const Kernel& kern = get_kernel(kernel);
        const size_t nq = rows(q);
        auto packed = pack_rows(q.data(), nq, core.store().bits);
        std::vector<std::vector<uint64_t>> res;
        MihStats stats;
        {
            py::gil_scoped_release nogil;
            std::shared_lock lock(mu);
            stats = core.range(packed.data(), nq, radius, threads_or_default(threads), kern, fallback, res);
        }
        py::tuple arrays = range_arrays(res);
        return py::make_tuple(arrays[0], arrays[1], arrays[2], stats_dict(stats));
    }
};

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "dhash compiled Hamming search core (see docs/search.md)";
    m.def("available_kernels", &available_kernels, "Kernels this CPU supports, slowest first.");
    m.def("selected_kernel", [](const std::string& name) { return std::string(get_kernel(name).name); },
          py::arg("name") = "", "The kernel a search uses for `name` ('' = $DHASH_KERNEL or the best).");
    m.def("default_threads", &default_threads);

    py::class_<LinearCore>(m, "LinearCore")
        .def(py::init<int>(), py::arg("bits"))
        .def("add", &LinearCore::add)
        .def_property_readonly("ntotal", [](const LinearCore& c) { return c.store.n; })
        .def("codes", &LinearCore::codes)
        .def("search", &LinearCore::search)
        .def("range_search", &LinearCore::range_search)
        .def("distances", &LinearCore::distances);

    py::class_<MihBinding>(m, "MihCore")
        .def(py::init<int, int>(), py::arg("bits"), py::arg("substrings") = 0)
        .def("add", &MihBinding::add)
        .def_property_readonly("ntotal", [](const MihBinding& b) { return b.core.store().n; })
        .def_property_readonly("substrings", [](const MihBinding& b) { return b.core.substrings(); })
        .def_property_readonly("tabled", [](const MihBinding& b) { return b.core.tabled(); })
        .def("codes", &MihBinding::codes)
        .def("search", &MihBinding::search)
        .def("range_search", &MihBinding::range_search);
    m.def("auto_substrings", &MihCore::auto_substrings, py::arg("bits"), py::arg("n"));


}
