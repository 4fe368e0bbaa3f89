"""Progress of long dask computations on stderr.

A computation that runs longer than ``minimum`` (2 s) reports its progress: on a terminal as dask's
progress bar, redrawn every 0.1 s; anywhere else (a log file, CI, a pipe) as plain lines, at most
one every ``interval`` (10 s), so that a log holds a few lines rather than a redraw every 0.1 s.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from dask.callbacks import Callback
from dask.diagnostics import ProgressBar
from dask.utils import format_time

#: Seconds a computation runs before its progress is shown.
MINIMUM_S = 2.0
#: Seconds between two progress lines when stderr is not a terminal.
LINE_INTERVAL_S = 10.0


class ProgressLines(Callback):
    """Dask callback printing ``progress: 40% of 25 tasks after 12.00 s`` lines to a non-terminal.

    Parameters
    ----------
    out : file, optional
        Where the lines go (text; flushed after each line). Default ``sys.stderr``.
    minimum : float, optional
        Seconds, >= 0, a computation runs before its first line; a shorter one prints nothing.
        Default :data:`MINIMUM_S`.
    interval : float, optional
        Seconds, > 0, at least between two lines; the last line (100%, or the fraction done when
        the computation failed) is printed at the end of any computation that printed a line or
        ran longer than ``minimum``. Default :data:`LINE_INTERVAL_S`.
    clock : callable
        Monotonic clock in seconds (tests pass a fake one). Default :func:`time.monotonic`.
    poll : float
        Seconds between two looks at the clock by the background thread, > 0.
    """

    def __init__(self, out=None, *, minimum: float | None = None, interval: float | None = None,
                 clock=time.monotonic, poll: float = 0.1):
        super().__init__()
        self._out = sys.stderr if out is None else out
        self._minimum = MINIMUM_S if minimum is None else minimum
        self._interval = LINE_INTERVAL_S if interval is None else interval
        self._clock, self._poll = clock, poll
        self._state = None
        self._started = self._last = None
        self._stop = threading.Event()
        self._thread = None

    def _start(self, dsk):
        self._state, self._started, self._last = None, self._clock(), None
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _pretask(self, key, dsk, state):
        self._state = state

    def _finish(self, dsk, state, errored):
        self._stop.set()
        self._thread.join()
        self._state = state
        elapsed = self._clock() - self._started
        if self._last is not None or elapsed >= self._minimum:
            self._print(elapsed, complete=not errored)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            self.tick()

    def tick(self) -> bool:
        """Print a line if one is due now; returns whether it printed."""
        now = self._clock()
        elapsed = now - self._started
        due = self._last is None or now - self._last >= self._interval
        if elapsed < self._minimum or not due:
            return False
        self._last = now
        self._print(elapsed)
        return True

    def _counts(self) -> tuple[int, int]:
        """Tasks done and tasks in all, (0, 0) before the first task started."""
        s = self._state
        if not s:
            return 0, 0
        done = len(s["finished"])
        return done, done + sum(len(s[k]) for k in ("ready", "waiting", "running"))

    def _print(self, elapsed: float, *, complete: bool = False) -> None:
        done, total = self._counts()
        percent = 100 if complete else (100 * done // total if total else 0)
        self._out.write(f"progress: {percent}% of {total} tasks after {format_time(elapsed)}\n")
        self._out.flush()


def progress(enabled: bool = True, out=None):
    """The progress reporter of one computation: a context manager (dask callback).

    Parameters
    ----------
    enabled : bool
        False: a reporter that shows nothing.
    out : file, optional
        Default ``sys.stderr``; a terminal gets dask's bar, anything else :class:`ProgressLines`.

    Returns
    -------
    context manager
        Use as ``with progress(): ...compute...`` (a dask callback while enabled).
    """
    out = sys.stderr if out is None else out
    if not enabled:
        return contextlib.nullcontext()
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return ProgressBar(minimum=MINIMUM_S, out=out)  # redrawn in place every 0.1 s
    return ProgressLines(out)
