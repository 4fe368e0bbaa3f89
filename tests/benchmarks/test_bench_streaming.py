"""Streaming metrics (``kernels.stream_metrics``) vs simulate + analyzer core: 1e5 LSTM cells, T = 1000.

Each case times both implementations in alternating rounds within one run (the machine drifts) and
records in ``extra_info`` the median time of each, their ratio and the peak traced memory of each
(``tracemalloc``: NumPy allocations; Numba's few per-block work arrays are not traced). Run with
``.venv/bin/pytest tests/benchmarks/test_bench_streaming.py --benchmark-only -m '' -s`` (prints a
line per case), or ``.venv/bin/python tests/benchmarks/test_bench_streaming.py``.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from testbench import kernels
from testbench.analyzers.periodic import _sine_core
from testbench.analyzers.step import _step_core
from testbench.kernels.streaming import stream_metrics

N, T, ROUNDS = 100_000, 1000, 3
STEP = {"window_frac": 0.05, "band_frac": 0.1, "band_reference": "delta", "band_floor": 1e-12}
SINE = {"steady_frac": 0.5}


def problem(dtype, analyzer, n=N, seed=0):
    rng = np.random.default_rng(seed)
    params = tuple(rng.normal(0, 1, (n, 4)).astype(dtype) for _ in range(4))
    t = np.arange(T)
    x = (1.0 * (t >= T // 2) if analyzer == "step" else np.sin(2 * np.pi * 0.013 * t))
    return params, x[None].astype(dtype)


def streamed(params, x, analyzer):
    settings = {"step": STEP} if analyzer == "step" else {"sine": SINE}
    return stream_metrics("lstm", *params, x, **settings)[f"{analyzer}_response"]


def stored(params, x, analyzer):
    h = kernels.simulate("lstm", *params, x)
    if analyzer == "step":
        return _step_core(h, x, 1.0, **STEP)
    return _sine_core(h, x, 1.0, **SINE)


def peak_bytes(fn, *args) -> int:
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def compare(dtype, analyzer) -> dict:
    """Alternating rounds of both implementations; medians, ratio and peak memory."""
    params, x = problem(dtype, analyzer)
    small = tuple(p[:200] for p in params)
    np.testing.assert_array_equal(streamed(small, x, analyzer), stored(small, x, analyzer))
    times = {"stream": [], "stored": []}
    for _ in range(ROUNDS):
        for name, fn in (("stream", streamed), ("stored", stored)):
            t0 = time.perf_counter()
            fn(params, x, analyzer)
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"stream_s": med["stream"], "stored_s": med["stored"],
            "speedup": med["stored"] / med["stream"],
            "stream_peak_MB": peak_bytes(streamed, params, x, analyzer) / 2**20,
            "stored_peak_MB": peak_bytes(stored, params, x, analyzer) / 2**20}


@pytest.mark.slow
@pytest.mark.parametrize("analyzer", ["step", "sine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_stream_vs_stored(benchmark, dtype, analyzer):
    benchmark.group = f"streaming {analyzer} lstm n={N} T={T}"
    info = compare(dtype, analyzer)
    benchmark.extra_info.update(info)
    print(f"\n{np.dtype(dtype).name} {analyzer}: " + ", ".join(f"{k} {v:.3g}" for k, v in
                                                         info.items()))
    params, x = problem(dtype, analyzer)
    benchmark.pedantic(streamed, (params, x, analyzer), rounds=ROUNDS, warmup_rounds=1)


if __name__ == "__main__":
    print("| dtype | analyzer | stream s | simulate + analyzer s | speedup | peak MB stream | "
          "peak MB stored |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for dtype in (np.float32, np.float64):
        for analyzer in ("step", "sine"):
            r = compare(dtype, analyzer)
            print(f"| {np.dtype(dtype).name} | {analyzer} | {r['stream_s']:.3f} | "
                  f"{r['stored_s']:.3f} | {r['speedup']:.2f} | {r['stream_peak_MB']:.0f} | "
                  f"{r['stored_peak_MB']:.0f} |")
