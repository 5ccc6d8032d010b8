#!/usr/bin/env bash
# The GPU check of issue 28, in one call: installs dhash on the GPU machine, runs the CUDA-marked
# tests and the CPU-vs-GPU benchmark, and writes everything under $OUT. Where CUDA is absent (as on
# the development machine) the CUDA tests are skipped and the benchmark runs on the CPU only, small.
#
#   bash benchmarks/gpu_check.sh prepare   # HERE, once: Fashion-MNIST, setuptools and pybind11 wheels into .gpu/
#   bash benchmarks/gpu_check.sh           # THERE (device tool: run, carry [".gpu"], timeout_s 600)
#
# The GPU machine has python3 with torch, numpy, h5py, numba, click, rich, matplotlib, pybind11 and
# pytest, a C++ compiler, and no network: the data, pybind11 and a new enough setuptools (pyproject's
# license field needs >= 77) travel in .gpu/ (git-ignored).
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu

if [ "${1:-}" = "prepare" ]; then
  mkdir -p "$GPU_DIR/data" "$GPU_DIR/wheels"
  cp -r /usr/share/datasets/fashion-mnist "$GPU_DIR/data/"
  "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: -d "$GPU_DIR/wheels" "setuptools>=77" "pybind11>=2.11"
  du -sh "$GPU_DIR"
  exit 0
fi

PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 DHASH_DATA="$PWD/$GPU_DIR/data"
status=0
{
  date -u
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'CUDA', torch.cuda.is_available())"
  lscpu | grep 'Model name'
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# dhash itself: already installed from this tree (development machine), else build it here.
if ! "$PY" -c "import dhash.cli, dhash.search._core, dhash, sys; sys.exit(not dhash.__file__.startswith('$PWD/'))" 2>/dev/null; then
  echo "== installing dhash (builds the C++ core)"
  if ls "$GPU_DIR"/wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --upgrade --target /tmp/gpu-site "$GPU_DIR"/wheels/*.whl
    export PYTHONPATH=/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH}
  fi
  "$PY" -m pip install --no-build-isolation --no-deps --no-index -e . >"$OUT/install.log" 2>&1 \
    || { echo "dhash did not install (log: $OUT/install.log)"; tail -20 "$OUT/install.log"; exit 1; }
fi

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
echo "== CUDA tests (-m cuda)"
# exit code 5: nothing collected; every CUDA test skipped is exit 0
"$PY" -m pytest -q -m cuda -rs tests/test_cuda.py tests/test_torch_search.py -s 2>&1 | tee "$OUT/tests.log" || status=1

echo "== benchmark"
if [ "$CUDA" = 1 ]; then
  bench=(--devices cpu cuda)
else
  bench=(--devices cpu --quick --backbones small-cnn --n 20K)
fi
"$PY" benchmarks/bench_gpu.py "${bench[@]}" -o "$OUT/bench_gpu.csv" 2>&1 | tee "$OUT/bench.log" || status=1
echo "== done (status $status); results in $OUT"
exit $status
