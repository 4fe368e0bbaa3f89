"""Memory stays bounded however many cells a run characterizes (issue: a million isolated cells)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "benchmarks" / "million_cells.py"


def peak_rss_mb(points: int) -> float:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--points", str(points)],
                          capture_output=True, text=True, check=True)
    return float(re.search(r"peak RSS: (\d+) MB", proc.stdout).group(1))


@pytest.mark.slow
def test_a_million_cells_stream_under_2_gb():
    assert peak_rss_mb(8192) < 2048  # 128 cells x 8192 sweep points = 1,048,576 cells


def test_peak_memory_does_not_grow_with_the_sweep():
    small, large = peak_rss_mb(128), peak_rss_mb(1024)  # 16k and 131k cells, 8x more work
    assert large < small + 150, (small, large)  # 8x the responses would add ~450 MB if all held
