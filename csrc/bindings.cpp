// pybind11 surface of dhash.search._core: kernel listing and choice, and the two index classes.
// Array arguments must be 2-D C-contiguous uint8 (else ValueError); every other check is done by
// the C++ classes (std::invalid_argument -> ValueError). The GIL is released for the work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "linear.hpp"
#include "mih.hpp"

namespace py = pybind11;
using namespace dhash;

namespace {

// A view of a 2-D C-contiguous uint8 array.
struct Rows {
    const uint8_t* data;
    size_t n, width;
};

Rows rows_of(const py::array& a, const char* what) {
    auto fail = [&](const std::string& why) { throw std::invalid_argument(std::string(what) + ": " + why); };
    if (!a.dtype().is(py::dtype::of<uint8_t>()))
        fail("expected dtype uint8, got " + std::string(py::str(a.dtype())));
    if (a.ndim() != 2) fail("expected a 2-D array (N x bytes), got " + std::to_string(a.ndim()) + "-D");
    if (!(a.flags() & py::array::c_style)) fail("expected a C-contiguous array");
    return {static_cast<const uint8_t*>(a.data()), size_t(a.shape(0)), size_t(a.shape(1))};
}

py::array_t<uint8_t> bytes_array(const std::vector<uint8_t>& bytes, int bits) {
    const size_t width = size_t(bits + 7) / 8;
    py::array_t<uint8_t> out({bytes.size() / width, width});
    if (!bytes.empty()) std::memcpy(out.mutable_data(), bytes.data(), bytes.size());
    return out;
}

// faiss layout: lims (nq + 1), distances, indices, from per-query sorted keys.
py::tuple range_arrays(const RangeResult& res) {
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

py::dict stats_dict(const MihStats& s) {
    py::dict d;
    d["mih_queries"] = s.mih_queries;
    d["scanned_queries"] = s.scanned_queries;
    d["lookups"] = s.lookups;
    d["entries"] = s.entries;
    return d;
}

// k-NN arrays (distances, indices) filled by run(queries, d, i) without the GIL; returns
// (d, i, whatever run returned).
template <class Run>
auto knn(const py::array& queries, int64_t k, const Run& run) {
    const Rows q = rows_of(queries, "queries");
    py::array_t<int32_t> d({q.n, size_t(check_k(k))});
    py::array_t<int64_t> i({q.n, size_t(k)});
    int32_t* pd = d.mutable_data();
    int64_t* pi = i.mutable_data();
    decltype(run(q, pd, pi)) extra{};
    {
        py::gil_scoped_release nogil;
        extra = run(q, pd, pi);
    }
    return std::make_tuple(d, i, extra);
}

template <class Index>
void add(Index& index, const py::array& codes) {
    const Rows c = rows_of(codes, "codes");
    py::gil_scoped_release nogil;
    index.add(c.data, c.n, c.width);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "dhash compiled Hamming search core (see docs/search.md)";
    m.def("compiled_kernels", [] {
        std::vector<std::string> out;
        for (const Kernel* k : compiled_kernels()) out.emplace_back(k->name);
        return out;
    }, "Kernels compiled into this build, slowest first.");
    m.def("available_kernels", &available_kernels, "Kernels this CPU supports, slowest first.");
    m.def("selected_kernel", [](const std::string& name, int bits) {
        check_bits(bits);
        py::gil_scoped_release nogil;
        return std::string(get_kernel(name, bits).name);
    }, py::arg("name") = "", py::arg("bits") = 64,
          "The kernel a search of `bits`-bit codes uses for `name` ('' = $DHASH_KERNEL, else the fastest here).");
    m.def("default_threads", &default_threads, "Threads a search uses when threads = 0: all cores.");
    m.def("auto_substrings", &MihIndex::auto_substrings, py::arg("bits"), py::arg("n"));

    py::class_<LinearIndex>(m, "LinearCore")
        .def(py::init<int>(), py::arg("bits"))
        .def_property_readonly("bits", &LinearIndex::bits)
        .def_property_readonly("ntotal", &LinearIndex::ntotal)
        .def("add", &add<LinearIndex>, py::arg("codes"))
        .def("codes", [](const LinearIndex& ix) { return bytes_array(ix.codes(), ix.bits()); })
        .def("search", [](const LinearIndex& ix, const py::array& queries, int64_t k, int threads,
                          const std::string& kernel) {
            auto [d, i, unused] = knn(queries, k, [&](const Rows& q, int32_t* pd, int64_t* pi) {
                ix.search(q.data, q.n, q.width, k, threads, kernel, pd, pi);
                return 0;
            });
            (void)unused;
            return py::make_tuple(d, i);
        }, py::arg("queries"), py::arg("k"), py::arg("threads") = 0, py::arg("kernel") = "")
        .def("range_search", [](const LinearIndex& ix, const py::array& queries, int64_t radius, int threads,
                                const std::string& kernel) {
            const Rows q = rows_of(queries, "queries");
            RangeResult res;
            {
                py::gil_scoped_release nogil;
                res = ix.range_search(q.data, q.n, q.width, radius, threads, kernel);
            }
            return range_arrays(res);
        }, py::arg("queries"), py::arg("radius"), py::arg("threads") = 0, py::arg("kernel") = "")
        .def("distances", [](const LinearIndex& ix, const py::array& queries, int threads, const std::string& kernel) {
            const Rows q = rows_of(queries, "queries");
            const size_t n = ix.ntotal();
            py::array_t<uint16_t> out({q.n, n});
            uint16_t* o = out.mutable_data();
            py::gil_scoped_release nogil;
            ix.distances(q.data, q.n, q.width, threads, kernel, o, n);
            return out;
        }, py::arg("queries"), py::arg("threads") = 0, py::arg("kernel") = "");

    py::class_<MihIndex>(m, "MihCore")
        .def(py::init<int, int>(), py::arg("bits"), py::arg("substrings") = 0)
        .def_property_readonly("bits", &MihIndex::bits)
        .def_property_readonly("ntotal", &MihIndex::ntotal)
        .def_property_readonly("substrings", &MihIndex::substrings)
        .def("add", &add<MihIndex>, py::arg("codes"))
        .def("codes", [](const MihIndex& ix) { return bytes_array(ix.codes(), ix.bits()); })
        .def("search", [](const MihIndex& ix, const py::array& queries, int64_t k, int threads,
                          const std::string& kernel, bool fallback) {
            auto [d, i, s] = knn(queries, k, [&](const Rows& q, int32_t* pd, int64_t* pi) {
                return ix.search(q.data, q.n, q.width, k, threads, kernel, fallback, pd, pi);
            });
            return py::make_tuple(d, i, stats_dict(s));
        },
             py::arg("queries"), py::arg("k"), py::arg("threads") = 0, py::arg("kernel") = "",
             py::arg("fallback") = true)
        .def("range_search", [](const MihIndex& ix, const py::array& queries, int64_t radius, int threads,
                                const std::string& kernel, bool fallback) {
            const Rows q = rows_of(queries, "queries");
            RangeResult res;
            MihStats s;
            {
                py::gil_scoped_release nogil;
                s = ix.range_search(q.data, q.n, q.width, radius, threads, kernel, fallback, res);
            }
            py::tuple arrays = range_arrays(res);
            return py::make_tuple(arrays[0], arrays[1], arrays[2], stats_dict(s));
        }, py::arg("queries"), py::arg("radius"), py::arg("threads") = 0, py::arg("kernel") = "",
             py::arg("fallback") = true);
}
