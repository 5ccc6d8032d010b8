"""Builds the compiled Hamming search core (``dhash.search._core``) from ``csrc/``.

No ``-march=native``: the AVX2 and AVX-512 kernels are compiled with per-function target
attributes and chosen at run time, so a wheel built here runs on any x86-64 CPU.
"""
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ext = Pybind11Extension(
    "dhash.search._core",
    sorted(glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    depends=sorted(glob("csrc/*.hpp") + glob("csrc/*.inc")),
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp"],
    extra_link_args=["-fopenmp"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
