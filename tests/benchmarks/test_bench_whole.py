"""Benchmarks of what a user waits for: whole commands, the engine against its kernel (issue #12).

Cases (each a pytest-benchmark case; ``report_whole.py`` prints them as the issue's table):

* whole process, warm Numba cache: ``testbench run graphs/characterize.yaml``, ``validate``,
  ``nodes``, ``--help``;
* the 6.5e7 cell-step sweep of a 1024-cell LSTM read from a ``.pt`` file (step x 32 amplitudes +
  sine x 32 frequencies, T = 1000, float64), whole process: ``testbench run`` against the plain
  NumPy script a user would write (:mod:`numpy_baseline`); their metrics are compared (<= 1e-9);
* engine throughput, in-process and warm: graph -> store for ``ENGINE_POINTS`` step amplitudes x
  1024 cells = 1.0e5 cells, against the kernel alone on the same cells, float32 and float64;
* ``million_cells.py`` (2^20 cells, float32) as a whole process, with its peak RSS.

Run with ``.venv/bin/pytest tests/benchmarks/test_bench_whole.py --benchmark-only -m ''``.
``test_numpy_baseline_equals_testbench`` is an ordinary test (it runs in the normal suite).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import testbench
from testbench import engine, kernels
from testbench.graph import load_graph

sys.path.insert(0, os.path.dirname(__file__))
import numpy_baseline as NB  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHARACTERIZE = ROOT / "graphs" / "characterize.yaml"
SWEEP_CELLS = 1024
ENGINE_POINTS = 98  # x 1024 cells = 100,352 isolated cells
ENGINE_CHUNK_POINTS = 8  # kernel-alone calls: 1024 cells x 8 points (65 MB of float64 output)


# ------------------------------------------------------------------------------ measuring


def timed_process(argv: list[str], *, cwd=None, env=None) -> tuple[float, float]:
    """Run ``argv`` to completion: (wall seconds, CPU seconds of the process and its children).

    CPU time is the steadier figure on a shared machine (it does not count waiting for a core).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def command_argv(*args: str) -> list[str]:
    """The ``testbench`` command of this environment (the console script beside the Python)."""
    return [str(Path(sys.executable).with_name("testbench")), *args]


def alternate(jobs: dict[str, callable], rounds: int) -> dict[str, list]:
    """Call each job once per round, in turn (A B A B ...), so that drift hits every job alike;
    the first round is a warm-up and is dropped. Returns each job's results."""
    results = {name: [] for name in jobs}
    for i in range(rounds + 1):
        for name, job in jobs.items():
            out = job()
            if i:
                results[name].append(out)
    return results


# ------------------------------------------------------------------------------ problems


def sweep_files(folder: Path, cells: int = SWEEP_CELLS, amplitudes=NB.AMPLITUDES,
                frequencies=NB.FREQUENCIES, dtype: str = "float64") -> tuple[Path, Path]:
    """The ``.pt`` model and the testbench graph of the sweep, written into ``folder``."""
    pt = folder / f"lstm{cells}.pt"
    if not pt.exists():
        NB.make_model(str(pt), cells=cells)
    graph = folder / f"sweep-{cells}-{dtype}.yaml"
    graph.write_text(NB.graph_text(str(pt), str(folder / "sweep.zarr"), amplitudes, frequencies,
                                   dtype=dtype))
    return pt, graph


def stored_metrics(store: str) -> dict[str, np.ndarray]:
    """The step and sine metrics of a store of :func:`numpy_baseline.graph_text`, as the
    baseline's arrays (cells, points, metrics) of its single network."""
    ds = testbench.open(store)
    by = {(v.attrs.get("analyzer"), v.attrs.get("metric")): v for v in ds.data_vars.values()}
    out = {}
    for kind, node, names, dim in (("step", "step_metrics", NB.STEP_METRICS, "amplitude"),
                                   ("sine", "sine_metrics", NB.SINE_METRICS, "frequency")):
        arrays = [by[(node, m)].isel(network=0).transpose("cell", dim).values for m in names]
        out[kind] = np.stack(arrays, axis=-1)
    return out


def assert_same_metrics(ours: dict, theirs: dict) -> None:
    for kind in ("step", "sine"):
        np.testing.assert_allclose(ours[kind], theirs[kind], rtol=0, atol=1e-9, err_msg=kind)


def engine_graph(folder: Path, dtype: str) -> Path:
    """Step metrics of ``ENGINE_POINTS`` amplitudes x 1024 cells (the engine case)."""
    pt, _ = sweep_files(folder)
    text = NB.graph_text(str(pt), str(folder / f"engine-{dtype}.zarr"),
                         np.round(np.linspace(0.1, 2.0, ENGINE_POINTS), 6), [], dtype=dtype)
    path = folder / f"engine-{dtype}.yaml"
    path.write_text(text)
    return path


def run_engine(graph_path: Path) -> str:
    """Graph -> store in this process (validate, build, compute, write)."""
    return engine.run(load_graph(str(graph_path)), progress=False)


def kernel_problem(folder: Path, dtype: str, x: np.ndarray | None = None):
    """The sweep model's cells for the kernel alone: parameters (1024, 4) x 4 and stimuli
    ``x (S, T)`` (default: the engine case's ``ENGINE_POINTS`` steps)."""
    pt, _ = sweep_files(folder)
    a, r, b = NB.load_cells(str(pt))
    params = tuple(np.ascontiguousarray(p.T, dtype=dtype) for p in (a, r, b, np.zeros_like(b)))
    if x is None:
        x, _ = NB.stimuli(np.round(np.linspace(0.1, 2.0, ENGINE_POINTS), 6), [1.0])
    return params, x.astype(dtype)


def run_kernel(params, x) -> None:
    """The kernel alone over every cell and stimulus, ``ENGINE_CHUNK_POINTS`` stimuli a call."""
    for i in range(0, len(x), ENGINE_CHUNK_POINTS):
        kernels.simulate("lstm", *params, x[i:i + ENGINE_CHUNK_POINTS])


def million_cells() -> dict[str, float]:
    """``million_cells.py`` as a whole process: its printed wall time (s) and peak RSS (MB)."""
    out = subprocess.run([sys.executable, str(HERE / "million_cells.py")], check=True,
                         capture_output=True, text=True).stdout
    wall = float(re.search(r"wall: ([\d.]+) s", out).group(1))
    rss = float(re.search(r"peak RSS: ([\d.]+) MB", out).group(1))
    return {"wall_s": wall, "peak_rss_mb": rss}


# ------------------------------------------------------------------------------ the cases


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("whole")


def test_numpy_baseline_equals_testbench(folder):
    """The baseline computes testbench's metrics (64 cells, 4 + 4 sweep points)."""
    pt, graph = sweep_files(folder, cells=64, amplitudes=NB.AMPLITUDES[::8],
                            frequencies=NB.FREQUENCIES[::8])
    store = str(folder / "small.zarr")
    testbench.run(str(graph), output=store)
    ours = NB.characterize(str(pt), NB.AMPLITUDES[::8], NB.FREQUENCIES[::8])
    assert ours["step"].shape == (64, 4, 4) and ours["sine"].shape == (64, 4, 5)
    assert np.isfinite(ours["step"][..., 3]).mean() > 0.5  # most cells settle: a real comparison
    assert_same_metrics(ours, stored_metrics(store))


@pytest.mark.parametrize("command", ["run", "validate", "nodes", "help"])
def test_whole_command(benchmark, command, tmp_path):
    args = {"run": ["run", str(CHARACTERIZE), "-o", str(tmp_path / "c.zarr"), "-q"],
            "validate": ["validate", str(CHARACTERIZE)], "nodes": ["nodes"], "help": ["--help"]}
    benchmark.group = "whole process, warm Numba cache"
    argv = command_argv(*args[command])
    walls = []
    benchmark.pedantic(lambda: walls.append(timed_process(argv, cwd=tmp_path)), rounds=5,
                       warmup_rounds=1)
    benchmark.extra_info["cpu_s"] = [cpu for _, cpu in walls]


@pytest.mark.parametrize("impl", ["testbench", "numpy"])
def test_sweep_whole_process(benchmark, impl, folder):
    pt, graph = sweep_files(folder)
    out = {"testbench": folder / "sweep.zarr", "numpy": folder / "sweep.npz"}[impl]
    argv = (command_argv("run", str(graph), "-q") if impl == "testbench" else
            [sys.executable, str(HERE / "numpy_baseline.py"), str(pt), "-o", str(out)])
    benchmark.group = f"{SWEEP_CELLS}-cell LSTM, 64 stimuli x 1000 steps, float64, whole process"
    benchmark.extra_info["cell_steps"] = SWEEP_CELLS * 64 * NB.T
    benchmark.pedantic(timed_process, (argv,), rounds=3, warmup_rounds=1)
    if impl == "numpy":  # the same work: the same metrics
        if not (folder / "sweep.zarr").exists():
            timed_process(command_argv("run", str(graph), "-q"))
        npz = np.load(out)
        assert_same_metrics({k: npz[k] for k in ("step", "sine")},
                            stored_metrics(str(folder / "sweep.zarr")))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", ["engine", "kernel"])
def test_engine_against_kernel(benchmark, impl, dtype, folder):
    benchmark.group = f"{SWEEP_CELLS * ENGINE_POINTS} cells x 1000 steps, {dtype}, in-process"
    benchmark.extra_info["cell_steps"] = SWEEP_CELLS * ENGINE_POINTS * NB.T
    if impl == "engine":
        benchmark.pedantic(run_engine, (engine_graph(folder, dtype),), rounds=3, warmup_rounds=1)
    else:
        benchmark.pedantic(run_kernel, kernel_problem(folder, dtype), rounds=3, warmup_rounds=1)


def test_million_cells(benchmark):
    benchmark.group = "million cells (2^20, T = 1000, float32), whole process"
    result = {}
    benchmark.pedantic(lambda: result.update(million_cells()), rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(result)
