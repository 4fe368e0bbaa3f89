"""The CUDA kernel against the NumPy reference: under Numba's CUDA simulator (CPU, always run, in a
subprocess because the simulator must be enabled before numba.cuda is first imported) and on a real
GPU (marked ``gpu``, skipped without one; ``tests/benchmarks/gpu_check.sh`` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testbench import kernels
from testbench.kernels import reference

TOL = {np.float64: 1e-10, np.float32: 1e-5}


def check_cuda_matches_reference(n: int, S: int, T: int) -> None:
    """Every cell type and dtype, with traces and a nonzero initial state, CUDA vs reference."""
    for seed, cell_type in enumerate(kernels.GATES):
        for dtype in (np.float64, np.float32):
            rng = np.random.default_rng(seed)
            G = kernels.GATES[cell_type]
            a, bi, bh = (rng.normal(0, 2, (n, G)).astype(dtype) for _ in range(3))
            r = rng.uniform(-0.9, 0.9, (n, G)).astype(dtype)
            x = rng.normal(0, 1, (S, T)).astype(dtype)
            x[-1, T // 2] = np.nan
            h, tr = kernels.simulate(cell_type, a, r, bi, bh, x, h0=0.2, c0=-0.1, backend="cuda",
                                     traces=True)
            h_ref, tr_ref = reference.simulate(cell_type, a, r, bi, bh, x, h0=0.2, c0=-0.1,
                                               traces=True)
            assert h.dtype == dtype and sorted(tr) == sorted(tr_ref)
            for name, got, want in [("h", h, h_ref)] + [(k, tr[k], tr_ref[k]) for k in tr]:
                np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype],
                                           err_msg=f"{cell_type} {dtype.__name__} {name}")
            assert np.isnan(h[:, -1, T // 2:]).all()


def test_cuda_kernel_matches_reference_under_the_simulator():
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import test_kernels_cuda as t; t.check_cuda_matches_reference(n=5, S=2, T=12)")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.gpu
def test_cuda_kernel_matches_reference_and_cpu_on_a_gpu():
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU here")
    check_cuda_matches_reference(n=1000, S=3, T=300)
    rng = np.random.default_rng(0)
    params = [rng.normal(0, 1, (5000, 4)).astype(np.float32) for _ in range(4)]
    x = rng.normal(0, 1, (2, 500)).astype(np.float32)
    np.testing.assert_allclose(kernels.simulate("lstm", *params, x, backend="cuda"),
                               kernels.simulate("lstm", *params, x), rtol=1e-5, atol=1e-5)
