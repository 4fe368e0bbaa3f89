"""Print a markdown table of CUDA vs CPU isolated-LSTM-cell throughput (run by ``gpu_check.sh``).

Usage: ``python tests/benchmarks/gpu_throughput.py`` on a machine with an NVIDIA GPU. float32 LSTM,
T = 1000 steps, S = 2 stimuli, three cell counts. Columns: the CPU kernel (all cores of that
machine), ``kernels.simulate(backend="cuda")`` end to end (host->device copies, kernel,
device->host copy of the (n, S, T) output), and the CUDA kernel alone on device-resident arrays.
Each time is the best of a few runs after a warm-up run that also compiles.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from numba import cuda

from testbench import kernels
from testbench.kernels._config import CUDA_THREADS
from testbench.kernels.cells import prepare
from testbench.kernels.cuda import _kernel

sys.path.insert(0, os.path.dirname(__file__))
from report_cells import best_time  # noqa: E402

T, S = 1000, 2
SIZES = (8192, 65536, 262144)


def kernel_only(params, x) -> float:
    """Seconds of the CUDA kernel alone, inputs and output already on the device."""
    p = prepare("lstm", *params, x, 0.0, 0.0, False)
    n = p.out.shape[0]
    d_P, d_x = cuda.to_device(p.P), cuda.to_device(p.x)
    d_out = cuda.device_array(p.out.shape, p.out.dtype)
    d_tr = cuda.device_array((1, 1, 1, 1), p.out.dtype)
    blocks = (n * S + CUDA_THREADS - 1) // CUDA_THREADS

    def launch():
        _kernel[blocks, CUDA_THREADS](p.code, d_P, d_x, p.h0, p.c0, d_out, d_tr, False)
        cuda.synchronize()

    return best_time(launch, repeat=10)


def main() -> None:
    dev = getattr(cuda, "get_current_device", None)  # absent under the CUDA simulator
    name = dev().name if dev else "CUDA simulator"
    name = name.decode() if isinstance(name, bytes) else name
    print(f"isolated LSTM cells, float32, T={T}, S={S}; GPU {name}, {os.cpu_count()} CPU cores\n")
    print("| cells | CPU kernel (s) | CUDA end to end (s) | CUDA kernel only (s) | CPU cell-steps/s "
          "| CUDA e2e cell-steps/s | CUDA kernel cell-steps/s | e2e / CPU | kernel / CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for n in SIZES:
        params = [rng.normal(0, 1, (n, 4)).astype(np.float32) for _ in range(4)]
        x = rng.normal(0, 1, (S, T)).astype(np.float32)
        cpu = best_time(kernels.simulate, "lstm", *params, x, repeat=5)
        e2e = best_time(lambda: kernels.simulate("lstm", *params, x, backend="cuda"), repeat=5)
        ker = kernel_only(params, x)
        steps = n * S * T
        print(f"| {n} | {cpu:.4g} | {e2e:.4g} | {ker:.4g} | {steps / cpu:.3g} | {steps / e2e:.3g} "
              f"| {steps / ker:.3g} | {cpu / e2e:.3g}x | {cpu / ker:.3g}x |", flush=True)


if __name__ == "__main__":
    main()
