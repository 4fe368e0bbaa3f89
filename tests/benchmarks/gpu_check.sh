#!/usr/bin/env bash
# GPU check of the isolated-cell kernels, in one go (a few minutes; each step has its own timeout).
# Run on a machine with an NVIDIA GPU, from anywhere (it cd's to the repo root):
#   1. the GPU model, the Python/NumPy/Numba versions and the device Numba sees (with a hint when
#      numba-cuda fails on a NumPy it does not support); 2. the `gpu`-marked CUDA tests (kernel vs
#      NumPy reference and vs CPU kernel); 3. CUDA vs CPU throughput
#      (tests/benchmarks/gpu_throughput.py); 4. graphs/characterize.yaml with `backend: cuda` vs
#      `backend: cpu`, metric by metric. A failed step is reported and the next one runs; the exit
#      status is non-zero if any step failed.
# Python: $PYTHON if set, else .venv/bin/python, else a python3 that already has numba and pytest
# (the repo is put on PYTHONPATH; step 4 also needs the package's dependencies), else a new .venv.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-}
if [ -z "$PY" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if [ -z "$PY" ] && python3 -c "import numba, numpy, pytest" 2>/dev/null; then
    PY=python3
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "$PY" ]; then
    python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' || exit 1
    PY=.venv/bin/python
fi
status=0
step() { echo; echo "== $1"; shift; "$@" || { echo "FAILED (exit $?)"; status=1; return 1; }; }

step "GPU" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step "versions" "$PY" -c "import sys, numpy, numba; print('python', sys.version.split()[0], \
'numpy', numpy.__version__, 'numba', numba.__version__)"
step "numba sees" timeout 60 "$PY" -c "
from numba import cuda
d = cuda.get_current_device()
print(d.name.decode() if isinstance(d.name, bytes) else d.name, 'compute capability', d.compute_capability)
" || echo "hint: numba-cuda imports numpy internals; if the error names a numpy attribute, \
install a numpy that this numba-cuda supports (e.g. pip install 'numpy<2.5')"
step "CUDA tests" timeout 200 "$PY" -m pytest tests/test_kernels_cuda.py -m gpu -q -p no:cacheprovider
step "throughput" timeout 200 "$PY" tests/benchmarks/gpu_throughput.py
step "graph, backend cuda vs cpu" timeout 150 "$PY" - <<'PYEOF'
import tempfile, time
import numpy as np
import xarray as xr
from testbench.engine import run
from testbench.graph import load_graph

out = {}
for backend in ("cpu", "cuda"):
    path = f"{tempfile.mkdtemp()}/characterize.zarr"
    graph = load_graph("graphs/characterize.yaml", overrides=[
        f"step_cells.backend={backend}", f"sine_cells.backend={backend}"])
    t = time.perf_counter()
    run(graph, output=path, progress=False)
    print(f"backend {backend}: {time.perf_counter() - t:.2f} s (includes compilation)")
    out[backend] = xr.open_zarr(path)["metrics"].load()
diff = abs(out["cuda"] - out["cpu"]).max("cell")
print(diff.squeeze(drop=True).to_pandas().to_string())
scale = abs(out["cpu"]).max("cell").squeeze(drop=True)
assert float((diff.squeeze(drop=True) / (scale + 1)).max()) < 1e-9, "cuda and cpu metrics differ"
print("cuda metrics equal the cpu metrics (relative difference < 1e-9)")
PYEOF
exit $status
