"""The search core is exact without Python in between: csrc/ and tests/native/check_kernels.cpp (every
kernel the CPU runs, every code-width class, k-NN / radius / distances of both indexes against a plain
reference loop) are compiled and run for this machine, and for AArch64 (NEON kernel included) with
Debian's cross compiler (g++-aarch64-linux-gnu) under qemu-user. The AArch64 check is skipped only
when those tools are missing (.ci/install installs them)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dhash.search.index import available_kernels

ROOT = Path(__file__).resolve().parent.parent
CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"
SOURCES = sorted(str(p) for p in (ROOT / "csrc").glob("*.cpp") if p.name != "bindings.cpp")


def build_and_run(cxx: str, tmp_path: Path, runner: list[str], env: dict[str, str]) -> list[str]:
    """Compile the check with `cxx`, run it (under `runner`), return its output lines (it must pass)."""
    exe = tmp_path / "check_kernels"
    subprocess.run([cxx, "-std=c++17", "-O2", "-fopenmp", "-Wall", "-Werror", f"-I{ROOT / 'csrc'}", *SOURCES,
                    str(ROOT / "tests/native/check_kernels.cpp"), "-o", str(exe)], check=True, timeout=600)
    proc = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "2", **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "ok"
    return lines


def test_host_build_checks_every_kernel(tmp_path):
    lines = build_and_run(os.environ.get("CXX", "g++"), tmp_path, [], {})
    assert [line.removeprefix("checked ") for line in lines[:-1]] == available_kernels()
    if "avx2" in available_kernels():
        assert "checked avx2-lut" in lines


@pytest.mark.skipif(not (shutil.which(CXX) and shutil.which(QEMU)), reason=f"needs {CXX} and {QEMU}")
def test_aarch64_build_with_neon_is_exact(tmp_path):
    lines = build_and_run(CXX, tmp_path, [QEMU], {"QEMU_LD_PREFIX": "/usr/aarch64-linux-gnu"})
    assert {"checked portable", "checked neon"} <= set(lines)
