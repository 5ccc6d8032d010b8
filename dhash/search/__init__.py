"""The search half: binary code files, index files, and exact Hamming search over them.

``codes`` reads and writes code files (HDF5, ``docs/file-format.md``); ``index`` holds the
linear-scan and multi-index-hashing indexes on top of the compiled core ``dhash.search._core``
(``csrc/``); ``index_file`` saves and loads built indexes. This half imports only NumPy, h5py,
the core and ``dhash.errors`` / ``dhash.atomic`` — never torch and never ``dhash.learn``, so
``dhash query`` starts fast.
"""
from .codes import CodeFile, pack_codes, read_code_file, unpack_codes, write_code_file
from .index import (INDEX_KINDS, LinearIndex, MIHIndex, available_kernels, default_threads, hamming_distances,
                    range_search_code_file, search_code_file, selected_kernel)
from .index_file import IndexFile, build_index, index_code_file, load_index, save_index

__all__ = ["CodeFile", "INDEX_KINDS", "IndexFile", "LinearIndex", "MIHIndex", "available_kernels", "build_index",
           "default_threads", "hamming_distances", "index_code_file", "load_index", "pack_codes",
           "range_search_code_file", "read_code_file", "save_index", "search_code_file", "selected_kernel",
           "unpack_codes", "write_code_file"]
