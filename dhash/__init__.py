"""dhash: deep supervised hashing — learn compact binary codes and search them by Hamming distance.

Halves: ``dhash.search`` (code files, indexes, the compiled core), ``dhash.learn`` (data, models,
methods, training, encoding), ``dhash.evaluate`` (metrics, curves, grids); ``dhash.cli`` is the
command line over them. Importing ``dhash`` loads only the code-file API (no torch).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dhash")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import DHashError  # noqa: E402
from .search.codes import CodeFile, pack_codes, read_code_file, unpack_codes, write_code_file  # noqa: E402

__all__ = ["CodeFile", "DHashError", "pack_codes", "read_code_file", "unpack_codes", "write_code_file", "__version__"]
