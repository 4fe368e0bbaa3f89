"""Print a markdown table of isolated-LSTM-cell throughput (the measurements of test_bench_cells.py).

Usage: ``.venv/bin/python tests/benchmarks/report_cells.py``. Each time is the best of a few runs
(after a warm-up run that also compiles the Numba kernel). The torch loop runs on 64 cells and is
reported per cell-step. Because this machine's speed drifts between minutes, the kernel-vs-torch
ratio at the main size is also measured in alternating rounds (each round times both), and its
median and range over the rounds are printed below the table.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import test_bench_cells as B  # noqa: E402


def best_time(fn, *args, repeat: int) -> float:
    fn(*args)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times)


def paired_ratios(params, x, cells, rounds: int = 7) -> list[float]:
    """Kernel / torch-loop throughput ratio per round, both timed in each round."""
    n, T = B.MAIN
    ratios = []
    for _ in range(rounds):
        kernel = best_time(B.run_numba, params, x, repeat=3) / B.cell_steps(n, T)
        torch = best_time(B.run_torch, cells, x, repeat=1) / B.cell_steps(B.TORCH_CELLS, T)
        ratios.append(torch / kernel)
    return ratios


def main() -> None:
    n, T = B.MAIN
    params, x = B.lstm_problem(n, T)
    rows = []  # (implementation, size, seconds, cell-steps)
    rows.append(("numba CPU kernel", f"n={n} T={T}", best_time(B.run_numba, params, x, repeat=20),
                 B.cell_steps(n, T)))
    rows.append(("NumPy loop (vectorized over cells)", f"n={n} T={T}",
                 best_time(B.run_numpy, params, x, repeat=2), B.cell_steps(n, T)))
    cells = B.torch_cells(tuple(p[:B.TORCH_CELLS] for p in params))
    rows.append((f"torch one-unit nn.LSTM loop ({B.TORCH_CELLS} cells, scaled)", f"n={n} T={T}",
                 best_time(B.run_torch, cells, x, repeat=5), B.cell_steps(B.TORCH_CELLS, T)))
    scaling = []
    for sn, sT in B.SLOPE_SIZES:
        p, xs = B.lstm_problem(sn, sT)
        sec = best_time(B.run_numba, p, xs, repeat=20)
        scaling.append((B.cell_steps(sn, sT), sec))
        rows.append(("numba CPU kernel", f"n={sn} T={sT}", sec, B.cell_steps(sn, sT)))
    p64, x64 = tuple(a.astype(np.float64) for a in params), x.astype(np.float64)
    rows.append(("numba CPU kernel, float64 (the DUT's default)", f"n={n} T={T}",
                 best_time(B.run_numba, p64, x64, repeat=10), B.cell_steps(n, T)))
    rate = {name: steps / sec for name, _, sec, steps in rows[:3]}
    numpy_rate, torch_rate = list(rate.values())[1:]
    print(f"isolated LSTM cells, float32 unless noted, S={B.S} stimuli (step, sine), "
          f"{os.cpu_count()} CPU cores\n")
    print("| implementation | size | time (s) | cell-steps/s | vs NumPy loop | vs torch loop |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, size, sec, steps in rows:
        r = steps / sec
        print(f"| {name} | {size} | {sec:.4g} | {r:.3g} | {r / numpy_rate:.3g}x | "
              f"{r / torch_rate:.3g}x |")
    ratios = paired_ratios(params, x, cells)
    print(f"\nnumba kernel vs torch loop at n={n} T={T}, {len(ratios)} alternating rounds: median "
          f"{np.median(ratios):.0f}x (range {min(ratios):.0f}x..{max(ratios):.0f}x)")
    slope = np.polyfit(np.log([s for s, _ in scaling]), np.log([t for _, t in scaling]), 1)[0]
    print(f"numba kernel: slope of log(time) vs log(cell-steps) over "
          f"{scaling[0][0]:.3g}..{scaling[-1][0]:.3g} cell-steps = {slope:.3f} (1 = linear)")


if __name__ == "__main__":
    main()
