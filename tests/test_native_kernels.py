"""The AArch64 build (NEON kernel included) is exact: csrc/ and tests/native/check_kernels.cpp are
compiled with Debian's cross compiler (g++-aarch64-linux-gnu) and run under qemu-user, which checks
every kernel on every code-width class against a plain reference loop. Skipped only when those
tools are missing (.ci/install installs them)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"
SOURCES = sorted(str(p) for p in (ROOT / "csrc").glob("*.cpp") if p.name != "bindings.cpp")


@pytest.mark.skipif(not (shutil.which(CXX) and shutil.which(QEMU)), reason=f"needs {CXX} and {QEMU}")
def test_aarch64_build_with_neon_is_exact(tmp_path):
    exe = tmp_path / "check_kernels"
    subprocess.run([CXX, "-std=c++17", "-O2", "-fopenmp", "-Wall", "-Werror", f"-I{ROOT / 'csrc'}", *SOURCES,
                    str(ROOT / "tests/native/check_kernels.cpp"), "-o", str(exe)], check=True, timeout=600)
    env = {**os.environ, "QEMU_LD_PREFIX": "/usr/aarch64-linux-gnu", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([QEMU, str(exe)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert {"checked portable", "checked neon"} <= set(lines) and lines[-1] == "ok"
