"""Benchmarks of isolated LSTM cell simulation (float32, step + sine stimuli, S = 2).

Implementations: the Numba CPU kernel (``kernels.simulate``), a NumPy loop over time vectorized over
cells (``kernels.reference.simulate``) and a loop of one-unit ``torch.nn.LSTM`` forward calls, one
per cell. The torch loop runs on the first ``TORCH_CELLS`` = 64 cells only; compare it per
cell-step (cells x stimuli x steps, recorded in ``extra_info``). Run with
``.venv/bin/pytest tests/benchmarks/test_bench_cells.py --benchmark-only -m ''``; a markdown table
comes from ``tests/benchmarks/report_cells.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbench import kernels
from testbench.kernels import reference

MAIN = (8192, 1000)  # (cells, steps) of the comparison
SLOPE_SIZES = [(1024, 200), (4096, 500), (8192, 2500)]  # cells * steps spans 100x
TORCH_CELLS = 64
S = 2


def lstm_problem(n: int, T: int, seed: int = 0):
    """Random float32 LSTM cell parameters (n, 4) x 4 and step + sine stimuli (2, T)."""
    rng = np.random.default_rng(seed)
    params = tuple(rng.normal(0, 1, (n, 4)).astype(np.float32) for _ in range(4))
    t = np.arange(1, T + 1)
    x = np.stack([1.0 * (t > T // 2), np.sin(2 * np.pi * 0.01 * t)]).astype(np.float32)
    return params, x


def run_numba(params, x):
    return kernels.simulate("lstm", *params, x)


def run_numpy(params, x):
    return reference.simulate("lstm", *params, x)


def torch_cells(params):
    """One one-unit torch.nn.LSTM per cell, carrying that cell's parameters."""
    import torch

    torch.set_num_threads(2)
    cells = []
    for u in range(params[0].shape[0]):
        cell = torch.nn.LSTM(1, 1)
        with torch.no_grad():
            for name, val in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params):
                param = getattr(cell, f"{name}_l0")
                param.copy_(torch.from_numpy(val[u]).reshape(param.shape))
        cells.append(cell)
    return cells


def run_torch(cells, x):
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x.T[:, :, None]))  # (T, S, 1)
    with torch.no_grad():
        return [cell(xt)[0] for cell in cells]


def cell_steps(n: int, T: int) -> int:
    return n * S * T


@pytest.mark.parametrize("impl", ["numba", "numpy", "torch"])
def test_lstm_8192_cells_1000_steps(benchmark, impl):
    n, T = MAIN
    params, x = lstm_problem(n, T)
    benchmark.group = f"lstm float32 n={n} T={T} S={S}"
    if impl == "torch":
        sub = tuple(p[:TORCH_CELLS] for p in params)
        cells = torch_cells(sub)
        benchmark.extra_info["cell_steps"] = cell_steps(TORCH_CELLS, T)
        benchmark.extra_info["note"] = f"first {TORCH_CELLS} cells only; compare per cell-step"
        out = benchmark.pedantic(run_torch, (cells, x), rounds=3, warmup_rounds=1)
        np.testing.assert_allclose(np.stack([o[:, :, 0].numpy().T for o in out]),
                                   run_numba(sub, x), atol=1e-5)
        return
    run_numba(tuple(p[:8] for p in params), x)  # compile outside the timing
    benchmark.extra_info["cell_steps"] = cell_steps(n, T)
    fn = run_numba if impl == "numba" else run_numpy
    benchmark.pedantic(fn, (params, x), rounds=5 if impl == "numba" else 2, warmup_rounds=1)


@pytest.mark.parametrize("size", SLOPE_SIZES, ids=lambda s: f"n{s[0]}-T{s[1]}")
def test_lstm_numba_scaling(benchmark, size):
    n, T = size
    params, x = lstm_problem(n, T)
    run_numba(tuple(p[:8] for p in params), x)
    benchmark.group = f"lstm numba scaling n={n} T={T}"
    benchmark.extra_info["cell_steps"] = cell_steps(n, T)
    benchmark.pedantic(run_numba, (params, x), rounds=5, warmup_rounds=1)
