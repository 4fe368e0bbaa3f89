"""Frequency response (Bode view) under a sine: gain and phase lag at the input frequency."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import xarray as xr

from testbench.analysis import apply_metrics, broadcast_core, records_check
from testbench.errors import SettingsError
from testbench.nodes import Range, Response, Stimulus, analyzer, units_of

#: Metrics in the order :func:`_frequency_core` returns them.
_METRICS = ("gain", "phase_lag", "dc_offset", "fundamental_fraction")


def _dominant_cycles(xs: np.ndarray) -> np.ndarray:
    """(r, n) stimulus windows -> (r,) cycles per step of their largest DFT bin, DC excluded.

    NaN for a constant window. Ties go to the lower frequency (``argmax`` takes the first).
    """
    n = xs.shape[-1]
    spectrum = np.abs(np.fft.rfft(xs - xs.mean(-1, keepdims=True), axis=-1))[:, 1:]
    k = spectrum.argmax(-1) + 1
    return np.where(np.ptp(xs, axis=-1) > 0, k / n, np.nan)


def _fit(windows: np.ndarray, cycles: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``a sin(w t) + b cos(w t) + c`` of (r, n) windows at w = 2 pi cycles.

    Returns the coefficients (a, b, c), (r, 3), and the fitted windows, (r, n).

    Exact for a sinusoid plus a constant at this frequency whatever n (whole cycles or not); with
    a whole number of cycles in the window it equals the DFT coefficient of that bin. ``t`` is
    centred on the window for conditioning; the phase of a ratio of two fits does not depend on it.
    """
    n = windows.shape[-1]
    t = np.arange(n) - (n - 1) / 2
    w = 2 * np.pi * cycles
    basis = np.stack([np.sin(w * t), np.cos(w * t), np.ones(n)], axis=1)
    coef = windows @ np.linalg.pinv(basis).T
    return coef, coef @ basis.T


def _phasor(coef: np.ndarray) -> np.ndarray:
    """(r, 3) fit (a, b, c) -> complex amplitude P with a sin + b cos = Re(P e^{j w t})."""
    return coef[:, 1] - 1j * coef[:, 0]


def _frequency_core(y, x, dt, frequency, *, steady_frac: float,
                    amplitude_floor: float) -> np.ndarray:
    """(..., T) response and stimulus, (...) dt and frequency (NaN: unknown) -> (..., 4) metrics."""
    y, x, dt, frequency = broadcast_core(y, x, dt, frequency)
    lead, T = y.shape[:-1], y.shape[-1]
    n = math.ceil(steady_frac * T)
    out = np.full((math.prod(lead), len(_METRICS)), np.nan)
    ys = y[..., T - n:].reshape(-1, n)
    xs = x[..., T - n:].reshape(-1, n)
    finite = np.isfinite(y).all(-1).reshape(-1) & np.isfinite(x).all(-1).reshape(-1)
    cycles = (frequency * dt).reshape(-1).copy()  # cycles per step; Nyquist is 0.5
    unknown = np.isnan(cycles) & finite
    if unknown.any():
        cycles[unknown] = _dominant_cycles(xs[unknown])
    with np.errstate(invalid="ignore"):
        ok = finite & (cycles > 0) & (cycles < 0.5) & (n >= 3)
    for c in np.unique(cycles[ok]):  # one basis per distinct frequency, not per cell
        rows = ok & (cycles == c)
        (fy, fitted), (fx, _) = _fit(ys[rows], c), _fit(xs[rows], c)
        py, px = _phasor(fy), _phasor(fx)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(np.abs(px) > 0, np.abs(py) / np.abs(px), np.nan)
            lag = -np.degrees(np.angle(py / px))
        lag = np.where(lag <= -180, lag + 360, lag)  # (-180, 180]
        lag = np.where((np.abs(py) > amplitude_floor) & (np.abs(px) > 0), lag, np.nan)
        total = ((ys[rows] - ys[rows].mean(-1, keepdims=True)) ** 2).sum(-1)
        residual = ((ys[rows] - fitted) ** 2).sum(-1)
        explained = 1 - residual / np.where(total > 0, total, 1)
        explained = np.where(np.sqrt(total / n) > amplitude_floor, explained, np.nan)
        out[rows] = np.stack([gain, lag, fy[:, 2], explained], axis=-1)
    return out.reshape(lead + (len(_METRICS),))


def _stimulus_frequency(stimulus: xr.DataArray) -> tuple[xr.DataArray, str]:
    """The stimulus frequency per record (NaN: find it from the DFT) and where it came from."""
    if "frequency" in stimulus.coords:
        value, source = stimulus.coords["frequency"], "the stimulus's 'frequency' coordinate"
    elif "frequency" in stimulus.attrs:
        value = xr.DataArray(stimulus.attrs["frequency"])
        source = "the stimulus's attrs['frequency']"
    else:
        value, source = xr.DataArray(np.nan), "the largest DFT bin of the steady-state stimulus"
    try:
        return value.astype(np.float64), source
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"frequency_response: {source} of input 'stimulus' ('{stimulus.name}') holds "
            f"{np.atleast_1d(value.values).tolist()[:5]}, not numbers in cycles per time unit "
            f"({exc}); fix: connect a sine stimulus, or give a custom stimulus a numeric "
            "attrs['frequency']"
        ) from exc


def _ratio_units(num: str, den: str) -> str:
    """Units of ``num / den``, e.g. ``'V' / '1' -> 'V'``, ``'1' / '1' -> '1'``."""
    if num == den:
        return "1"
    return num if den == "1" else f"{num}/({den})"


@analyzer("frequency_response", check=records_check("frequency_response", len(_METRICS)))
def frequency_response(
    response: Response,
    stimulus: Stimulus,
    *,
    steady_frac: Annotated[float, Range(gt=0, le=1)] = 0.5,
    amplitude_floor: Annotated[float, Range(ge=0)] = 1e-12,
) -> xr.DataArray:
    """Bode view of every response record: gain and phase lag at the stimulus frequency.

    Over the steady-state part, the last ``n = ceil(steady_frac * T)`` samples, the response and
    the stimulus are each fitted by least squares with ``a sin(2 pi f t dt) + b cos(2 pi f t dt)
    + c`` at the stimulus frequency f; their complex amplitudes ``P = b - j a`` (the component at
    f, ``Re(P e^{j 2 pi f t dt})``) give

    - ``gain``: ``|P_y| / |P_x|``, response amplitude over stimulus amplitude at f (not
      peak-to-peak: harmonics and the offset do not count); for a linear time-invariant cell it
      is ``|H(e^{j 2 pi f dt})|``;
    - ``phase_lag``: ``-arg(P_y / P_x)`` in degrees, wrapped to (-180, 180]; positive when the
      response lags the stimulus (a delay of k steps lags ``360 f k dt`` degrees, modulo 360);
      for a linear cell it is ``-arg H``;
    - ``dc_offset``: the fitted constant c of the response, its mean level with the sinusoid at f
      removed (the mean of the steady-state part when it holds whole cycles);
    - ``fundamental_fraction``: share of the steady-state response's variance explained by the
      sinusoid at f (R² of the fit), in [0, 1]: 1 for a linear cell once the transient has died
      out, lower when saturation adds harmonics or the transient is still there, so it says how
      far gain and phase describe the response.

    The fit is the cross-spectrum at f: with a whole number of periods in the window it equals
    the DFT bin of f, so ``P_y / P_x = Y_k / X_k = Y_k conj(X_k) / |X_k|^2``; unlike a DFT bin it
    stays exact for any window length, so the sweep needs no frequencies on the ``1 / (n dt)``
    grid. The frequency f is, in this order: the stimulus's ``frequency`` coordinate (a sweep of
    ``sine``'s ``frequency``), its ``attrs['frequency']`` (a ``sine``, ``square``, or a
    ``delay`` of one), otherwise the largest DFT bin of the steady-state stimulus, DC excluded,
    ``k / (n dt)``; the last is exact only when the window holds a whole number of periods,
    otherwise f is off by up to ``1 / (2 n dt)`` and gain and phase carry leakage errors. Each
    metric's definition in the result names the source used. For a ``square`` stimulus, gain and
    phase are those of its fundamental (exactly so over whole periods).

    Parameters
    ----------
    response : xr.DataArray
        Response records, dims ``(..., time)``, possibly dask-backed (``time`` is put in one chunk).
    stimulus : xr.DataArray
        The sine that drove them, dims ``(time,)`` or ``(..., time)`` broadcastable to the
        response, with ``attrs['dt']`` (or a swept ``dt`` coordinate) and, preferably, its
        frequency in cycles per time unit (``attrs['frequency']`` or a ``frequency``
        coordinate).
    steady_frac : float
        Fraction of the record, at its end, taken as the steady state, 0 < steady_frac <= 1,
        dimensionless; leave the transient out of it (a lag of pole p decays as p^t). Default 0.5.
    amplitude_floor : float
        Response amplitude at f, in response units, >= 0, at or below which ``phase_lag`` is NaN
        (a cell that does not respond, up to rounding); ``fundamental_fraction`` is NaN when the
        response's standard deviation is at or below it. Default 1e-12.

    Returns
    -------
    xr.DataArray
        ``frequency_response``: dims ``(*non-time dims of response and stimulus, metric)`` with
        metrics ``gain`` (response units per stimulus unit; "1" for cells under a dimensionless
        stimulus), ``phase_lag`` (degree), ``dc_offset`` (response units) and
        ``fundamental_fraction`` (dimensionless); coordinate ``units`` along ``metric``;
        ``attrs['definitions']``. NaN policy: any non-finite sample (NaN, +-inf) in a record's
        response or stimulus makes all its metrics NaN, as do a frequency outside
        ``0 < f dt < 1/2`` (at or above Nyquist), a constant stimulus with no known frequency,
        and fewer than 3 steady-state samples; ``gain`` and ``phase_lag`` are NaN when the
        stimulus has no component at f. Never raises for undefined metrics.

    Raises
    ------
    SettingsError
        When the stimulus has no sample interval or a non-numeric frequency, or when response
        and stimulus are not the same record.

    Examples
    --------
    >>> from testbench.stimuli.periodic import sine
    >>> x = sine(length_steps=200, frequency=0.03)
    >>> y = 0.5 * x.shift(time=2, fill_value=0.0)   # half the amplitude, 2 steps late
    >>> out = frequency_response(y, x)
    >>> [round(float(v), 6) for v in out.sel(metric=["gain", "phase_lag"]).values]
    [0.5, 21.6]
    """
    frequency, source = _stimulus_frequency(stimulus)
    yu, xu = units_of(response), units_of(stimulus)
    at = f"at the frequency f from {source}, over the last {steady_frac} of the record"
    metrics = {
        "gain": (_ratio_units(yu, xu), f"|response amplitude / stimulus amplitude| {at}"),
        "phase_lag": ("degree", (f"phase of the stimulus minus phase of the response {at}, in "
                                 "(-180, 180]; positive = the response lags")),
        "dc_offset": (yu, f"constant of the least-squares sinusoid-plus-constant fit {at}"),
        "fundamental_fraction": ("1", f"share of the response variance explained by the "
                                      f"sinusoid {at} (R^2)"),
    }
    settings = {"steady_frac": steady_frac, "amplitude_floor": amplitude_floor}
    return apply_metrics("frequency_response", _frequency_core, response, stimulus, metrics,
                         settings, per_record=(frequency,))
