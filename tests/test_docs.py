"""The documentation site builds with no warnings, and the documented examples run."""

import doctest
import subprocess
import sys
from pathlib import Path

import testbench.analysis

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(out), "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("testbench.run", "testbench.open", "testbench.nodes.analyzer",
                 "testbench.analysis.apply_metrics", "testbench.analysis.sample_interval",
                 "testbench.analysis.nan_records", "testbench.models.load"):
        assert f'id="{name}"' in api, name
    guide = (out / "nodes.html").read_text(encoding="utf-8")
    assert "pulse_train" in guide and "records_check" in guide  # README part and the example


def test_analysis_docstring_examples_run():
    result = doctest.testmod(testbench.analysis, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0
