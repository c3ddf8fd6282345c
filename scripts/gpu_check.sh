#!/usr/bin/env bash
# The device check, on a machine with an NVIDIA GPU, in one command from the repository root:
#
#     bash scripts/gpu_check.sh runs/gpu-check
#
# 1. installs the [test,cuda] extras into .venv (skipped where .venv already imports numba.cuda and ptxas;
#    offline, point pip at a folder of wheels with PIP_FIND_LINKS=... PIP_NO_INDEX=1),
# 2. runs the CUDA tests on the hardware (pytest -m gpu, no simulator: kernels compiled by the driver's JIT),
# 3. the resource report (scripts/cuda_resources.py: registers, spills, shared memory, occupancy),
# 4. benchmarks/gpu_bench.py (784-4096-4096-10 training epochs against PyTorch, 4096^3 matmul against cuBLAS),
# and writes every log and JSON under the folder given (default runs/gpu-check; it must not exist yet, so no
# earlier run is overwritten). Each step has its own time limit; the whole check ends in under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu-check}"
if [ -e "$OUT" ]; then
  echo "error: $OUT exists; give a new folder (nothing is overwritten)" >&2
  exit 2
fi
mkdir -p "$OUT"
PY=.venv/bin/python
status=0
step() {  # step NAME SECONDS CMD...: run CMD with a time limit, output to $OUT/NAME.log, record the exit code
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}
if ! { [ -x $PY ] && $PY scripts/cuda_resources.py --check-tools > /dev/null 2>&1; }; then
  step install 240 bash -c 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test,cuda]"'
fi
{ nvidia-smi || true; $PY scripts/cuda_resources.py --detect; } > "$OUT/device.txt" 2>&1
step gpu_tests 240 env -u NUMBA_ENABLE_CUDASIM $PY -m pytest -q -m gpu -p no:cacheprovider \
  --junitxml="$OUT/gpu_tests.xml"
step cuda_resources 60 $PY scripts/cuda_resources.py --out "$OUT/cuda_resources.json"
step gpu_bench 180 $PY -m benchmarks.gpu_bench --epochs 3 --out "$OUT/gpu_bench.json"
echo "everything is under $OUT (summary.txt first)"
exit $status
