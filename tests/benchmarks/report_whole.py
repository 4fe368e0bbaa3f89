"""Print issue #12's table of whole-command times: the issue's figures beside this tree's.

Usage::

    .venv/bin/python tests/benchmarks/report_whole.py [--rounds 5] [--skip-million] [--paper]
        [--old-tree DIR]

Every ratio is measured in one run, in alternating rounds (A B A B ...; the first round is a
warm-up), and printed as the median with its range; absolute times are this machine's. Whole
commands are timed as processes: wall time, and CPU time (user + system of the process and its
children), which a busy machine disturbs less. ``--old-tree DIR`` also times the whole commands
with ``PYTHONPATH=DIR`` (a copy of an older ``testbench`` package with ``kernels``, ``stimuli``,
``analyzers`` inside it), alternating with this tree, and prints the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import numpy_baseline as NB  # noqa: E402
import test_bench_whole as B  # noqa: E402

#: The issue's "now" column (2026-11-28, this 2-core machine).
OLD = {
    "run": "2.9 s (4.1 s busy)",
    "validate": "1.4 s",
    "nodes": "-",
    "help": "-",
    "sweep": "testbench 1.47x faster (1.09x busy)",
    "warm": "1.4 s = 4.7e7 cell-steps/s, engine at ~25 % of the kernel",
    "million": "14.8 s, 1.07 GB",
    "paper": "64 s, no progress shown for most of it",
}


def spread(values) -> str:
    """``median (min..max)`` of a list of numbers."""
    return f"{np.median(values):.3g} ({min(values):.3g}..{max(values):.3g})"


def timer(fn, *args):
    """A job returning the wall seconds of ``fn(*args)``."""
    def job():
        t = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t
    return job


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: %(default)s)")
    p.add_argument("--skip-million", action="store_true", help="skip million_cells.py (~15 s)")
    p.add_argument("--paper", action="store_true", help="also time graphs/paper.yaml once (~1 min)")
    p.add_argument("--old-tree", help="PYTHONPATH of an older testbench to time beside this one")
    args = p.parse_args()
    rows = []  # (what, old, new, note)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        commands = {"run": ["run", str(B.CHARACTERIZE), "-o", str(folder / "c.zarr"), "-q"],
                    "validate": ["validate", str(B.CHARACTERIZE)], "nodes": ["nodes"],
                    "help": ["--help"]}
        jobs = {}
        for name, argv in commands.items():
            jobs[name] = lambda argv=argv: B.timed_process(B.command_argv(*argv), cwd=tmp)
            if args.old_tree:
                env = {**os.environ, "PYTHONPATH": args.old_tree}
                old_argv = [sys.executable, "-m", "testbench", *argv]
                jobs[f"old {name}"] = lambda a=old_argv, e=env: B.timed_process(a, cwd=tmp, env=e)
        times = B.alternate(jobs, args.rounds)
        for name, argv in commands.items():
            wall = [w for w, _ in times[name]]
            cpu = [c for _, c in times[name]]
            note = f"CPU {np.median(cpu):.2f} s"
            if args.old_tree:
                old = [w for w, _ in times[f"old {name}"]]
                ratios = [o / n for o, n in zip(old, wall)]
                note += f"; old tree {np.median(old):.2f} s, speed-up {spread(ratios)}x"
            label = "--help" if name == "help" else f"{name} graphs/characterize.yaml" \
                if name in ("run", "validate") else name
            rows.append((f"`testbench {label}`, median of {args.rounds}", OLD[name],
                         f"{np.median(wall):.2f} s", note))

        pt, graph = B.sweep_files(folder)
        npz = folder / "sweep.npz"
        sweep = B.alternate({
            "testbench": lambda: B.timed_process(B.command_argv("run", str(graph), "-q")),
            "numpy": lambda: B.timed_process([sys.executable, str(B.HERE / "numpy_baseline.py"),
                                              str(pt), "-o", str(npz)]),
        }, args.rounds)
        loaded = np.load(npz)
        B.assert_same_metrics({k: loaded[k] for k in ("step", "sine")},
                              B.stored_metrics(str(folder / "sweep.zarr")))
        ratios = [n[0] / t[0] for t, n in zip(sweep["testbench"], sweep["numpy"])]
        rows.append((f"{B.SWEEP_CELLS}-cell LSTM .pt, 32 steps + 32 sines, T = 1000, float64 "
                     "(6.5e7 cell-steps), whole process, paired", OLD["sweep"],
                     f"testbench {spread(ratios)}x faster",
                     f"testbench {np.median([t[0] for t in sweep['testbench']]):.2f} s, NumPy "
                     f"{np.median([n[0] for n in sweep['numpy']]):.2f} s; metrics equal (1e-9)"))

        steps, sines = NB.stimuli()
        params, x = B.kernel_problem(folder, "float64", np.concatenate([steps, sines]))
        warm = B.alternate({"engine": timer(B.run_engine, graph),
                            "kernel": timer(B.run_kernel, params, x)}, args.rounds)
        cell_steps = B.SWEEP_CELLS * 64 * NB.T
        share = [k / e for e, k in zip(warm["engine"], warm["kernel"])]
        rows.append(("the same, warm, inside one process", OLD["warm"],
                     f"{np.median(warm['engine']):.2f} s = "
                     f"{cell_steps / np.median(warm['engine']):.2g} cell-steps/s",
                     f"engine at {spread([100 * s for s in share])} % of the kernel "
                     f"({cell_steps / np.median(warm['kernel']):.2g} cell-steps/s)"))

        for dtype in ("float32", "float64"):
            engine_graph = B.engine_graph(folder, dtype)
            params, x = B.kernel_problem(folder, dtype)
            pair = B.alternate({"engine": timer(B.run_engine, engine_graph),
                                "kernel": timer(B.run_kernel, params, x)}, args.rounds)
            share = [k / e for e, k in zip(pair["engine"], pair["kernel"])]
            cells = B.SWEEP_CELLS * B.ENGINE_POINTS
            rows.append((f"engine (graph -> store, warm) vs kernel, {cells:,} cells x 1000 steps, "
                         f"{dtype}", "-", f"engine at {spread([100 * s for s in share])} % of "
                         "the kernel", f"engine {np.median(pair['engine']):.2f} s, kernel "
                         f"{np.median(pair['kernel']):.2f} s"))

        if not args.skip_million:
            m = B.million_cells()
            rows.append(("`tests/benchmarks/million_cells.py` (2^20 cells, T = 1000, float32)",
                         OLD["million"], f"{m['wall_s']:.1f} s, {m['peak_rss_mb'] / 1024:.2f} GB",
                         "one run; wall inside the process, peak RSS of the process"))
        if args.paper:
            wall, _ = B.timed_process(B.command_argv("run", str(B.ROOT / "graphs" / "paper.yaml"),
                                                     "-o", str(folder / "paper.zarr"), "-q"),
                                      cwd=tmp)
            rows.append(("`testbench run graphs/paper.yaml`", OLD["paper"], f"{wall:.0f} s",
                         "one run"))
    print(f"whole-command times, {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.rounds} alternating rounds\n")
    print("| what | issue #12 | now | note |")
    print("| --- | ---: | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
