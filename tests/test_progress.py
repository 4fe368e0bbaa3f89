"""Progress on stderr: dask's bar on a terminal, a line at most every 10 s elsewhere."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import dask
import pytest
from dask.diagnostics import ProgressBar

from testbench import progress as P
from testbench import store


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _state(done, pending):
    return {"finished": set(range(done)), "ready": set(range(-pending, 0)), "waiting": set(),
            "running": set()}


def test_lines_at_most_every_interval_after_the_minimum():
    clock, out = FakeClock(), io.StringIO()
    lines = P.ProgressLines(out, minimum=2.0, interval=10.0, clock=clock, poll=3600)
    lines._start({})
    printed = []
    for now, done in [(0.5, 0), (1.9, 1), (2.0, 2), (5.0, 3), (11.9, 5), (12.0, 6), (21.0, 7),
                      (22.5, 8), (40.0, 9)]:
        clock.now = now
        lines._state = _state(done, 10 - done)
        printed.append(lines.tick())
    assert printed == [False, False, True, False, False, True, False, True, True]
    clock.now = 41.0
    lines._finish({}, _state(10, 0), errored=False)
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "progress: 20% of 10 tasks after 2.00 s",
        "progress: 60% of 10 tasks after 12.00 s",
        "progress: 80% of 10 tasks after 22.50 s",
        "progress: 90% of 10 tasks after 40.00 s",
        "progress: 100% of 10 tasks after 41.00 s",
    ]


def test_a_short_computation_prints_nothing_and_a_failed_one_its_fraction():
    clock, out = FakeClock(), io.StringIO()
    lines = P.ProgressLines(out, clock=clock, poll=3600)
    lines._start({})
    clock.now = 1.5
    lines._finish({}, _state(4, 0), errored=False)
    assert out.getvalue() == ""
    lines._start({})
    clock.now = 4.5  # 3 s after the second start
    lines._finish({}, _state(3, 1), errored=True)
    assert out.getvalue() == "progress: 75% of 4 tasks after 3.00 s\n"


def test_a_real_computation_gets_lines_not_redraws():
    out = io.StringIO()
    tasks = [dask.delayed(time.sleep)(0.02) for _ in range(30)]
    t0 = time.monotonic()
    with P.ProgressLines(out, minimum=0.0, interval=0.1, poll=0.005):
        dask.compute(*tasks, scheduler="synchronous")
    elapsed = time.monotonic() - t0
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 2 <= len(lines) <= elapsed / 0.1 + 2
    assert lines[-1].startswith("progress: 100% of 30 tasks after ")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_dasks_bar_a_pipe_lines_and_quiet_nothing():
    assert isinstance(P.progress(True, _Terminal()), ProgressBar)
    assert isinstance(P.progress(True, io.StringIO()), P.ProgressLines)
    out = io.StringIO()
    with P.progress(False, out):
        dask.compute(dask.delayed(sum)([1, 2]))
    assert out.getvalue() == ""


def test_scheduler_context_reports_on_stderr(monkeypatch, capsys):
    monkeypatch.setattr(P, "MINIMUM_S", 0.0)
    with store.scheduler_context("synchronous", progress=True):
        dask.compute(dask.delayed(time.sleep)(0.01))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1].startswith("progress: 100% of 1 tasks after ")


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_local_schedulers_do_not_import_dask_distributed(scheduler):
    """A scheduler given by name, or a rechunk, makes dask import dask.distributed (~0.4 s)."""
    code = ("import sys, dask.array as da; from testbench import store\n"
            f"with store.scheduler_context({scheduler!r}, progress=False):\n"
            "    assert da.ones((8, 8), chunks=2).rechunk((4, 8)).sum().compute() == 64\n"
            "print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
