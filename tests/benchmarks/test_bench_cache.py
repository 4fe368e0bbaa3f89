"""Benchmark of incremental re-runs (:mod:`testbench.cache`): a first run against an unchanged
re-run and against a re-run with one analyzer setting changed.

The graph: a step stimulus swept over 32 amplitudes and a sine over 32 frequencies, T = 10000 steps,
each driving the isolated cells of four 128-cell zoo LSTMs (co2, mnist, protein, sp500), with
``step_response`` and ``sine_response`` analyzers; the store is written each time (``engine.run``,
threads scheduler, kernels compiled beforehand).

Cases, timed in alternating rounds (the machine may be shared, so each round sees the same load):

* ``first``: an empty cache (every node computed, the analyzers' outputs stored);
* ``no_cache``: no cache at all (``--no-cache``), for reference;
* ``unchanged``: the same graph again, every analyzer read from the cache (target: at most 10 % of
  ``first``);
* ``one_setting``: ``step_metrics.band_frac`` changed (a new value each round), so only that
  analyzer is computed, from a new simulation of its DUT. Here that is half of the graph's work, so
  ``first / one_setting`` is bounded by about 2; the ratio grows with the share of the graph that
  stays unchanged (e.g. the ablation of ``graphs/paper.yaml``).

The medians and ratios are in the benchmark's ``extra_info`` and printed. Run with::

    .venv/bin/pytest tests/benchmarks/test_bench_cache.py --benchmark-only -m '' -s
"""

from __future__ import annotations

import statistics
import time

import xarray as xr

from testbench import engine
from testbench.cache import NodeCache
from testbench.graph import load_graph

GRAPH = """
nodes:
  step:
    type: step
    settings: {{length_steps: 10000}}
    sweep: {{amplitude: {amplitudes}}}
  sine:
    type: sine
    settings: {{length_steps: 10000}}
    sweep: {{frequency: {frequencies}}}
  step_cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: &zoo [zoo:co2-128, zoo:mnist-128, zoo:protein-128, zoo:sp500-128]}}
  sine_cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: *zoo}}
  step_metrics:
    type: step_response
    inputs: {{response: step_cells, stimulus: step}}
  sine_metrics:
    type: sine_response
    inputs: {{response: sine_cells, stimulus: sine}}
""".format(amplitudes=[0.125 * i for i in range(1, 33)],
           frequencies=[0.0025 * i for i in range(1, 33)])
ROUNDS = 3


def test_cache_rerun_ratios(benchmark, tmp_path):
    base = load_graph("bench.yaml", text=GRAPH)
    warm = tmp_path / "warm"
    engine.run(base, output=str(tmp_path / "warmup.zarr"), progress=False,
               cache=NodeCache(warm))  # compiles the kernels; fills the cache of later rounds
    times: dict[str, list[float]] = {"first": [], "no_cache": [], "unchanged": [],
                                     "one_setting": []}

    def timed(case, graph, cache):
        t0 = time.perf_counter()
        engine.run(graph, output=str(tmp_path / f"{case}.zarr"), progress=False, cache=cache)
        times[case].append(time.perf_counter() - t0)

    def rounds():
        for i in range(ROUNDS):
            timed("first", base, NodeCache(tmp_path / f"cold-{i}"))
            timed("unchanged", base, NodeCache(warm))
            changed = load_graph("bench.yaml", text=GRAPH,
                                 overrides=[f"step_metrics.band_frac={0.05 + 0.01 * i}"])
            timed("one_setting", changed, NodeCache(warm))
            timed("no_cache", base, None)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    medians = {case: statistics.median(t) for case, t in times.items()}
    ratios = {"unchanged/first": medians["unchanged"] / medians["first"],
              "first/one_setting": medians["first"] / medians["one_setting"],
              "first/no_cache": medians["first"] / medians["no_cache"]}
    benchmark.extra_info.update({f"median_s_{k}": v for k, v in medians.items()} | ratios)
    print("\n" + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
    print(", ".join(f"{k} = {v:.3f}" for k, v in ratios.items()))
    first, again = (xr.open_zarr(tmp_path / f"{c}.zarr") for c in ("first", "unchanged"))
    xr.testing.assert_identical(first.drop_attrs(deep=False), again.drop_attrs(deep=False))
