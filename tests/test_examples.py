"""The scripts in examples/ run as a user would run them, and write only into their temp folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, tmp_path: Path) -> str:
    """Run ``examples/<name>`` with this interpreter from an empty folder; its stdout.

    ``TMPDIR`` points into ``tmp_path``, so what the script writes to its temporary folder stays
    inside this test's folder; the working directory must stay empty.
    """
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert list(cwd.iterdir()) == []
    return proc.stdout


def test_characterize_your_own_pytorch_model(tmp_path):
    pytest.importorskip("torch")
    out = run_example("characterize_your_own_pytorch_model.py", tmp_path)
    assert "characterized 16 cells of network forecaster" in out
    for metric in ("settling_time", "amplitude", "delta_response"):
        assert f"\n{metric} " in out
    assert not list((tmp_path / "tmp").glob("testbench-example-*"))  # its temp folder is gone


def test_custom_stimulus_and_analyzer(tmp_path):
    out = run_example("custom_stimulus_and_analyzer.py", tmp_path)
    assert "time_to_peak [time unit]" in out
    assert "time_to_peak scales with dt: yes" in out


def test_query_and_plot(tmp_path):
    out = run_example("query_and_plot.py", tmp_path)
    assert "amplitude [1] dims ('network', 'cell', 'frequency')" in out
    assert "cells per network: {'co2-32': 32, 'co2-64': 64}" in out
    (png,) = (tmp_path / "tmp").glob("testbench-example-*/amplitude.png")
    assert f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # a drawn figure, not an empty canvas
