"""Streaming step and sine metrics: the analyzers' metrics computed inside the kernel's cell blocks.

:func:`stream_metrics` simulates isolated cells like :func:`kernels.simulate` but never materializes
the (n, S, T) response: the CPU kernels (:mod:`kernels.cpu_metrics`) fold each block of buffered
steps, still in cache, into per-cell sums. The result equals ``step_response`` / ``sine_response``
applied to the simulated response bitwise (same sums in NumPy's pairwise order, same products, same
comparisons; see :mod:`kernels.cpu_metrics`).

Two passes over time: the settling band and the centred correlation sums need the final value and
the mean of the whole record first. Between them each work item keeps its block's record (T x 128
samples, up to ``REPLAY_BYTES`` of :mod:`kernels._config`: 0.5 MB float32, 1 MB float64 at T =
1000, so it stays in L2/L3) and reads it back; a longer record is simulated again (the kernel is
deterministic: bitwise the same trajectory), so memory stays O(cells per block) at any T. The
periodogram peak needs the whole steady-state part: it is copied out (float64,
``ceil(steady_frac T)`` samples per record) one chunk of cells at a time, at most
:data:`STEADY_BYTES`, and its peak found with NumPy's FFT there, exactly as the analyzer does (an
exact DFT at candidate bins cannot guarantee the same argmax for a nonlinear cell's harmonics).

Imports only NumPy at module level; Numba on first call.
"""

from __future__ import annotations

import math

import numpy as np

from testbench.kernels.cells import prepare

#: Most bytes of steady-state samples held at once (one chunk of cells).
STEADY_BYTES = 16 * 2**20

_LEAF = 128  # NumPy's PW_BLOCKSIZE


def peak_bin(records: np.ndarray) -> np.ndarray:
    """Index of the largest bin of the periodogram of each record, DC excluded.

    The periodogram is ``scipy.signal.periodogram(records, detrend="constant")`` (boxcar window,
    mean removed, one-sided: every bin but DC and, for an even length, the Nyquist bin doubled); its
    constant density scale ``1 / n`` does not move the peak and is left out. NumPy's FFT, because
    importing ``scipy.signal`` costs a command about 0.9 s; the bins equal SciPy's to rounding
    (same pocketfft transform) and ties go to the lower bin as with ``argmax``.

    Parameters
    ----------
    records : np.ndarray
        ``(..., n)`` float64 samples, n >= 2.

    Returns
    -------
    np.ndarray
        ``(...)`` int64 bin indices k in ``1 .. n // 2`` (frequency ``k / (n dt)``).
    """
    n = records.shape[-1]
    spectrum = np.fft.rfft(records - records.mean(-1, keepdims=True), axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    power[..., 1:(n + 1) // 2] *= 2
    return power[..., 1:].argmax(-1) + 1


def _pairwise_plan(length: int, lens: list, pops: list) -> None:
    """Append NumPy's pairwise-sum leaves of a ``length``-sample sum, in order, with the number of
    partial sums to combine after each (post-order)."""
    if length <= _LEAF:
        lens.append(length)
        pops.append(0)
        return
    half = length // 2
    half -= half % 8
    _pairwise_plan(half, lens, pops)
    _pairwise_plan(length - half, lens, pops)
    pops[-1] += 1


class _Plans:
    """Pairwise-sum plans of several sums, packed for the kernels: (start, length, offset) rows."""

    def __init__(self):
        self.lens, self.pops, self.depth, self._at = [], [], 1, {}

    def row(self, start: int, length: int) -> tuple[int, int, int]:
        if length > 0 and length not in self._at:
            self._at[length] = len(self.lens)
            lens, pops = [], []
            _pairwise_plan(length, lens, pops)
            depth = sp = 0
            for p in pops:
                sp += 1 - p
                depth = max(depth, sp + p)
            self.lens += lens
            self.pops += pops
            self.depth = max(self.depth, depth)
        return (start, length, self._at.get(length, 0))

    def arrays(self):
        return (np.asarray(self.lens or [0], dtype=np.int64),
                np.asarray(self.pops or [0], dtype=np.int64), self.depth)


def _onsets(x: np.ndarray) -> np.ndarray:
    """(S, T) stimuli -> (S,) index of the first sample differing from the first; T if none."""
    changed = x != x[..., :1]
    return np.where(changed.any(-1), changed.argmax(-1), x.shape[-1])


def stream_metrics(cell_type, a, r, bi, bh, x, *, dt=1.0, h0=0.0, c0=0.0, step=None, sine=None,
                   stimulus=None):
    """Step and sine metrics of isolated cells without storing their responses.

    Equal (bitwise) to simulating with :func:`kernels.simulate` and applying the ``step_response``
    and ``sine_response`` analyzers' cores to every (cell, stimulus) response record.

    Parameters
    ----------
    cell_type, a, r, bi, bh, x, h0, c0
        As :func:`kernels.simulate`: per-cell parameters (n, G), stimuli (S, T), initial state.
    dt : float or np.ndarray
        Sample interval of each stimulus, scalar or (S,), > 0, in time units. Default 1.
    step : dict or None
        ``step_response`` settings ``window_frac``, ``band_frac``, ``band_reference``,
        ``band_floor`` (all required); None skips the step metrics. Default None.
    sine : dict or None
        ``sine_response`` settings ``steady_frac`` (required); None skips the sine metrics.
    stimulus : np.ndarray or None
        The stimuli (S, T) as the analyzers see them (onsets, stimulus terms of the correlation,
        NaN policy), when ``x`` is a cast of them to the simulation dtype. Default None: ``x``.

    Returns
    -------
    dict of str to np.ndarray
        ``"step_response"``: (n, S, 4) float64 initial, final, delta response (response units),
        settling time (time units); ``"sine_response"``: (n, S, 5) float64 amplitude, frequency
        (cycles per time unit), correlation, correlation_normalized, correlation_per_sample. NaN
        policy of the analyzers: a record whose response or stimulus holds a NaN gets all NaN.

    Raises
    ------
    ValueError, TypeError
        As :func:`kernels.simulate`, or a ``dt`` that is neither scalar nor (S,).
    """
    p = prepare(cell_type, a, r, bi, bh, x, h0, c0, False, outputs=False)
    with np.errstate(all="ignore"):  # inf and NaN records: the analyzers' values, not warnings
        return _metrics(p, dt, step, sine, p.x if stimulus is None else np.asarray(stimulus))


def _metrics(p, dt, step, sine, stimulus) -> dict:
    """:func:`stream_metrics` on prepared inputs ``p`` (see :func:`kernels.cells.prepare`)."""
    from testbench.kernels._config import BLOCK_CELLS, REPLAY_BYTES
    from testbench.kernels.cpu_metrics import metrics_cpu

    x = p.x
    n, (S, T) = p.P.shape[1], x.shape
    dt = np.asarray(dt, dtype=np.float64)
    if dt.shape not in ((), (S,)):
        raise ValueError(f"kernels.stream_metrics: dt has shape {dt.shape}; it must be a scalar "
                         f"or one value per stimulus ({S},)")
    dt = np.broadcast_to(dt, (S,))
    if stimulus.shape != x.shape:
        raise ValueError(f"kernels.stream_metrics: stimulus has shape {stimulus.shape}; it must "
                         f"be the records x {x.shape} as the analyzers see them")
    xs = stimulus.astype(np.float64)
    xc = xs - xs.mean(-1, keepdims=True)
    onset = _onsets(stimulus) if step is not None else np.full(S, T)
    wf = step["window_frac"] if step is not None else 1.0
    nf = math.ceil(wf * T)
    ni = np.array([math.ceil(wf * o) if o < T else 1 for o in onset])
    plans = _Plans()
    rows1 = np.zeros((S, 3, 3), dtype=np.int64)  # sums: whole record, final window, initial window
    rows2 = np.zeros((S, 2, 3), dtype=np.int64)  # sums: x_c y_c, y_c y_c
    ns = math.ceil(sine["steady_frac"] * T) if sine is not None else 0
    if sine is not None:
        rows1[:, 0] = rows2[:, 0] = rows2[:, 1] = plans.row(0, T)
    if step is not None:
        rows1[:, 1] = plans.row(T - nf, nf)
        for s in range(S):
            if onset[s] < T:
                rows1[s, 2] = plans.row(onset[s] - ni[s], ni[s])
    lens, pops, depth = plans.arrays()
    band = (step["band_frac"], step["band_floor"], step["band_reference"] == "delta") if step \
        else (0.0, 0.0, False)

    sums1, sums2 = np.zeros((n, S, 3)), np.zeros((n, S, 2))
    ymax, ymin, nans, last = (np.empty((n, S)) for _ in range(4))
    if sine is not None:
        amplitude, frequency = np.empty((n, S)), np.full((n, S), np.nan)
    keep = T * BLOCK_CELLS * x.itemsize <= REPLAY_BYTES
    chunk = max(BLOCK_CELLS, STEADY_BYTES // max(1, S * ns * 8) // BLOCK_CELLS * BLOCK_CELLS)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        steady = np.empty((hi - lo, S, ns))
        metrics_cpu(p.code, p.P, x, p.h0, p.c0, lo, hi, keep, rows1, rows2, lens, pops, depth,
                    onset, xc, nf, ni, *band, sums1, ymax, ymin, nans, steady, sums2, last)
        if sine is not None:
            amplitude[lo:hi] = steady.max(-1) - steady.min(-1)
            if ns >= 2:
                frequency[lo:hi] = np.where(amplitude[lo:hi] > 0, peak_bin(steady) / (ns * dt),
                                            np.nan)
    out = {}
    bad = (nans > 0) | np.isnan(xs).any(-1)
    if step is not None:
        final = sums1[..., 1] / nf
        initial = np.where(onset < T, sums1[..., 2] / ni, np.nan)
        delta = final - initial
        settled = np.where(last >= onset, last - onset + 1, 0).astype(np.int64) * dt
        settling = np.where((onset < T) & (last != T - 1), settled, np.nan)
        out["step_response"] = np.stack([initial, final, delta, settling], axis=-1)
    if sine is not None:
        correlation, syy = sums2[..., 0], sums2[..., 1]
        sxx = (xc * xc).sum(-1)
        constant = (np.ptp(xs, axis=-1) == 0) | (ymax - ymin == 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = correlation / np.sqrt(sxx * syy)
        r = np.where(constant, np.nan, r)
        out["sine_response"] = np.stack([amplitude, frequency, correlation, r, correlation / T],
                                        axis=-1)
    for metrics in out.values():
        metrics[bad] = np.nan
    return out
