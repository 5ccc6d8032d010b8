"""Builds the compiled Hamming search core (``dhash.search._core``) from ``csrc/``.

No ``-march=native``: the AVX2 and AVX-512 kernels are compiled with per-function target
attributes and chosen at run time, so a wheel built here runs on any x86-64 CPU.

``DHASH_SANITIZE=1`` builds with AddressSanitizer + UndefinedBehaviorSanitizer (see ``.ci/sanitize``).
"""
import os
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

SANITIZE = (["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
            if os.environ.get("DHASH_SANITIZE") == "1" else [])

ext = Pybind11Extension(
    "dhash.search._core",
    sorted(glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    depends=sorted(glob("csrc/*.hpp") + glob("csrc/*.inc")),
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp"] + SANITIZE,
    extra_link_args=["-fopenmp"] + SANITIZE,
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
