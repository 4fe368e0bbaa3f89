"""Where a warm in-process run of the 6.5e7 cell-step sweep spends its time (issue #12).

    .venv/bin/python tests/benchmarks/profile_sweep.py [--dtype float64] [--scheduler threads]
        [--million]

Runs the sweep of ``numpy_baseline.graph_text`` (1024-cell LSTM ``.pt``, 32 steps + 32 sines,
T = 1000; with ``--million`` the graph of ``million_cells.py``, step metrics of 2^20 cells)
through ``testbench.engine.run`` once to warm up, then once under ``cProfile`` with the
synchronous scheduler (every task in this thread, so the parts add up; the kernel still runs on all
cores) and prints the cumulative time of each part: preflight, graph build, the kernel, the DUT's
reshaping around it, the analyzers' NumPy cores, zarr writes, and the rest (dask and xarray
overhead). Finally the wall time of a plain warm run under ``--scheduler``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from testbench.engine import run
from testbench.graph import load_graph

sys.path.insert(0, os.path.dirname(__file__))
import million_cells as M  # noqa: E402
import test_bench_whole as B  # noqa: E402

#: part -> (file suffix, function name) of the profiled function whose cumulative time it is.
PARTS = {
    "preflight (validation, estimates)": ("testbench/preflight.py", "preflight"),
    "graph build (node calls, assemble)": ("testbench/engine.py", "build"),
    "kernel (kernels.simulate)": ("kernels/cells.py", "simulate"),
    "DUT block (kernel included)": ("testbench/dut.py", "_simulate_block"),
    "step analyzer core": ("analyzers/step.py", "_step_core"),
    "sine analyzer core": ("analyzers/periodic.py", "_sine_core"),
    "zarr chunk writes": ("zarr/core/array.py", "__setitem__"),
    "store write (compute + zarr, all)": ("testbench/store.py", "write"),
}


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of the functions ``name`` in files ending with ``suffix``."""
    return sum(v[3] for (file, _, func), v in stats.stats.items()
               if func == name and file.replace(os.sep, "/").endswith(suffix))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--scheduler", default="threads", help="scheduler of the plain warm run")
    p.add_argument("--million", action="store_true", help="the graph of million_cells.py")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.million:
            amplitudes = np.round(np.linspace(0.01, 2.0, 8192), 6).tolist()
            graph = load_graph("million.yaml", text=M.GRAPH.format(
                out=f"{tmp}/m.zarr", T=1000, amplitudes=amplitudes, dtype=args.dtype, chunk=64))
            cells = 128 * 8192
        else:
            _, graph_path = B.sweep_files(Path(tmp), dtype=args.dtype)
            graph = load_graph(str(graph_path))
            cells = B.SWEEP_CELLS * 64
        run(graph, progress=False, scheduler="synchronous")  # warm-up: Numba, imports, torch
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(run, graph, progress=False, scheduler="synchronous")
        total = time.perf_counter() - t0
        stats = pstats.Stats(prof)
        parts = {label: cumulative(stats, *where) for label, where in PARTS.items()}
        t0 = time.perf_counter()
        run(graph, progress=False, scheduler=args.scheduler)
        plain = time.perf_counter() - t0
    print(f"{cells:,} cells x 1000 steps, {args.dtype}; profiled run, synchronous scheduler: "
          f"{total:.2f} s (cProfile adds overhead to Python-heavy parts)\n")
    print("| part | seconds | share |")
    print("| --- | ---: | ---: |")
    for label, sec in parts.items():
        print(f"| {label} | {sec:.3f} | {100 * sec / total:.0f} % |")
    kernel = parts["kernel (kernels.simulate)"]
    inside = sum(parts[k] for k in ("DUT block (kernel included)", "step analyzer core",
                                    "sine analyzer core", "zarr chunk writes"))
    rest = total - parts["preflight (validation, estimates)"] - \
        parts["graph build (node calls, assemble)"] - inside
    print(f"| rest: dask, xarray, scheduling | {rest:.3f} | {100 * rest / total:.0f} % |")
    print(f"\nplain warm run, {args.scheduler} scheduler: {plain:.2f} s = "
          f"{cells * 1000 / plain:.3g} cell-steps/s; kernel alone in the profile "
          f"{cells * 1000 / kernel:.3g} cell-steps/s")


if __name__ == "__main__":
    main()
