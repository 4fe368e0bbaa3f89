"""Characterize a million isolated cells through the graph engine and report time and peak memory.

The shipped 128-cell CO2 LSTM is driven by 8192 step amplitudes (a sweep): 128 x 8192 = 1,048,576
isolated cells, T = 1000 steps each, step metrics per cell. The DUT streams chunks of
chunk_cells x chunk_points cells through the kernel and the analyzer; full traces are never all in
memory. Run:

    .venv/bin/python tests/benchmarks/million_cells.py [--points 8192] [--dtype float32]

and read the printed peak RSS (``resource.getrusage``, the whole process).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
import xarray as xr

from testbench.engine import run
from testbench.graph import load_graph

GRAPH = """
output: {out}
nodes:
  step:
    type: step
    settings: {{length_steps: {T}, dt: 1.0}}
    sweep: {{amplitude: {amplitudes}}}
  cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: zoo:co2-128, dtype: {dtype}, chunk_cells: 128, chunk_points: {chunk}}}
  metrics:
    type: step_response
    inputs: {{response: cells, stimulus: step}}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=8192, help="sweep points (cells = 128 x points)")
    p.add_argument("--steps", type=int, default=1000, help="T, steps per stimulus")
    p.add_argument("--chunk", type=int, default=64, help="sweep points per chunk")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--scheduler", default="threads", help="dask scheduler")
    args = p.parse_args()
    amplitudes = np.round(np.linspace(0.01, 2.0, args.points), 6).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        text = GRAPH.format(out=f"{tmp}/m.zarr", T=args.steps, amplitudes=amplitudes,
                            dtype=args.dtype, chunk=args.chunk)
        t0 = time.perf_counter()
        graph = load_graph("million.yaml", text=text)
        out = run(graph, progress=False, scheduler=args.scheduler)
        wall = time.perf_counter() - t0
        ds = xr.open_zarr(out)
        cells = ds.sizes["cell"] * ds.sizes["amplitude"]
        finite = int(np.isfinite(ds.delta_response).sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cells: {cells:,} ({finite:,} with a finite delta response), T = {args.steps}, "
          f"{args.dtype}")
    print(f"wall: {wall:.1f} s  ({cells * args.steps / wall:.3g} cell-steps/s end to end)")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
