"""Each command imports only what it needs (start-up time, issue #12): checked by module, not clock.

The heavy imports and what they cost a command on this machine (``tests/benchmarks/import_cost.py``):
scipy.signal ~0.9 s, torch ~2 s, matplotlib ~0.5 s, dask.distributed ~0.4 s, numba ~0.3 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHARACTERIZE = str(ROOT / "graphs" / "characterize.yaml")
NEVER = ["scipy.signal", "scipy.stats", "torch", "matplotlib", "distributed"]


def imported(argv: list[str], cwd) -> set[str]:
    """The top-level and listed modules loaded after ``testbench ARGV`` ran in a fresh process."""
    code = ("import sys\nfrom testbench.cli import main\n"
            "try:\n    status = main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            "    status = exc.code\n"
            "print('STATUS', status)\nprint('MODULES', ' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         cwd=cwd, check=True).stdout
    assert "STATUS 0" in out, out
    return set(out.split("MODULES ", 1)[1].split())


@pytest.mark.parametrize("argv, absent", [
    (["--help"], NEVER + ["numba", "dask", "zarr"]),
    (["nodes"], NEVER + ["numba", "dask.array", "zarr"]),
    (["validate", CHARACTERIZE], NEVER + ["numba", "dask.array", "zarr"]),
], ids=["help", "nodes", "validate"])
def test_light_commands_import_no_heavy_module(argv, absent, tmp_path):
    loaded = imported(argv, tmp_path)
    assert sorted(m for m in absent if m in loaded) == []


def test_run_imports_no_module_the_graph_does_not_need(tmp_path):
    """characterize.yaml (zoo weights, step and sine metrics, a CSV sink, threads): no
    scipy.signal/stats, no torch (no .pt), no matplotlib, no dask.distributed (local scheduler)."""
    loaded = imported(["run", CHARACTERIZE, "-o", str(tmp_path / "c.zarr"), "-q"], tmp_path)
    assert sorted(m for m in NEVER if m in loaded) == []
    assert "numba" in loaded  # the kernel ran
