#!/usr/bin/env bash
# GPU check of the isolated-cell kernels: run on a machine with an NVIDIA GPU from the repo root
# (or anywhere: it cd's there). Uses .venv (creating it with `pip install -e .[test]` if missing),
# prints the GPU model, runs the `gpu`-marked CUDA tests and compares CUDA vs CPU throughput.
# Finishes in a few minutes (each step has its own timeout).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
fi
PY=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"
timeout 60 "$PY" -c "from numba import cuda; print('numba sees:', cuda.get_current_device().name.decode() if isinstance(cuda.get_current_device().name, bytes) else cuda.get_current_device().name)"
timeout 300 .venv/bin/pytest tests/test_kernels_cuda.py -m gpu -q -p no:cacheprovider
timeout 240 "$PY" - <<'PYEOF'
import time
import numpy as np
import kernels

def best(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)

rng = np.random.default_rng(0)
T, S = 1000, 2
print("| backend | cells | T | S | time (s) | cell-steps/s (incl. transfers) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for n in (8192, 65536):
    params = [rng.normal(0, 1, (n, 4)).astype(np.float32) for _ in range(4)]
    x = rng.normal(0, 1, (S, T)).astype(np.float32)
    for backend in ("cpu", "cuda"):
        sec = best(lambda: kernels.simulate("lstm", *params, x, backend=backend))
        print(f"| {backend} | {n} | {T} | {S} | {sec:.4g} | {n * S * T / sec:.3g} |")
PYEOF
