"""Periodic-response metrics under a sine: amplitude, frequency, correlations (paper Defs. 4-5)."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import xarray as xr

from testbench.analysis import (FREQUENCY_UNIT, apply_metrics, broadcast_core, nan_records,
                                records_check)
from testbench.kernels.streaming import peak_bin
from testbench.nodes import Range, Response, Stimulus, analyzer, product_units, units_of


def _sine_core(y, x, dt, *, steady_frac: float) -> np.ndarray:
    """(..., T) response, stimulus; (...) dt -> (..., 5): amplitude, frequency, corr, r, corr/T."""
    # the stimulus's own terms once per stimulus record, before broadcasting it over the responses
    xs = np.asarray(x, dtype=np.float64)
    xc = xs - xs.mean(-1, keepdims=True)
    sxx, x_constant = (xc * xc).sum(-1), np.ptp(xs, axis=-1) == 0
    y, x, dt = broadcast_core(y, x, dt)
    T = y.shape[-1]
    n = math.ceil(steady_frac * T)
    steady = y[..., T - n:]
    amplitude = steady.max(-1) - steady.min(-1)
    frequency = np.full(y.shape[:-1], np.nan)
    if n >= 2:
        frequency = np.where(amplitude > 0, peak_bin(steady) / (n * dt), np.nan)
    yc = y - y.mean(-1, keepdims=True)
    correlation = (np.broadcast_to(xc, y.shape) * yc).sum(-1)
    constant = x_constant | (np.ptp(y, axis=-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = correlation / np.sqrt(sxx * (yc * yc).sum(-1))
    r = np.where(constant, np.nan, r)
    out = np.stack([amplitude, frequency, correlation, r, correlation / T], axis=-1)
    return nan_records(out, y, x)


@analyzer("sine_response", check=records_check("sine_response", 5))
def sine_response(
    response: Response,
    stimulus: Stimulus,
    *,
    steady_frac: Annotated[float, Range(gt=0, le=1)] = 0.5,
) -> xr.DataArray:
    """Sine-response metrics of every response record: amplitude, frequency and correlation.

    With the steady-state part being the last ``n = ceil(steady_frac * T)`` samples:

    - ``amplitude``: peak-to-peak, max - min, of the steady-state part (for a sampled sine of
      amplitude a this is between ``2 a cos(pi f dt)`` and ``2 a``);
    - ``frequency``: frequency of the largest bin of the periodogram of the steady-state part
      (as ``scipy.signal.periodogram``: boxcar window, mean removed; DC bin excluded; see
      :func:`peak_bin`), ``k / (n dt)``
      in cycles per time unit; its resolution is ``1 / (n dt)``, exact for a sine with a whole
      number of periods in the steady-state part; ties go to the lower frequency; NaN when the
      steady-state part is constant (amplitude 0) or shorter than 2 samples;
    - ``correlation``: ``sum_t (x_t - mean x)(y_t - mean y)`` over the whole record, unnormalized as
      in the paper (it grows with T and with both amplitudes);
    - ``correlation_normalized``: Pearson's r over the whole record, in [-1, 1]; NaN when the
      stimulus or the response is constant;
    - ``correlation_per_sample``: ``correlation / T``, the stimulus-response covariance with
      divisor T (``np.cov(x, y, bias=True)``); it does not grow with the record length. The
      paper's Table 1 correlation values are the magnitude of this metric (``|correlation| / T``),
      not its Definition 5. For a linear cell ``y = g x + c`` it is ``g`` times the stimulus's
      variance (``g A^2 / 2`` for a sine of amplitude A over whole periods).

    Parameters
    ----------
    response : xr.DataArray
        Response records, dims ``(..., time)``, possibly dask-backed (``time`` is put in one chunk).
    stimulus : xr.DataArray
        The signal that drove them (usually ``sine``), dims ``(time,)`` or ``(..., time)``
        broadcastable to the response, with ``attrs['dt']`` (or a swept ``dt`` coordinate).
    steady_frac : float
        Fraction of the record, at its end, taken as the steady state for ``amplitude`` and
        ``frequency``, 0 < steady_frac <= 1, dimensionless. Default 0.5.

    Returns
    -------
    xr.DataArray
        ``sine_response``: dims ``(*non-time dims of response and stimulus, metric)`` with metrics
        ``amplitude`` (response units), ``frequency`` (cycles per time unit of dt),
        ``correlation`` (stimulus units x response units), ``correlation_normalized``
        (dimensionless) and ``correlation_per_sample`` (stimulus units x response units);
        coordinate ``units`` along ``metric``; ``attrs['definitions']``. Any NaN in a record's
        response or stimulus makes all its metrics NaN; never raises for undefined metrics.
    """
    yu, xu = units_of(response), units_of(stimulus)
    metrics = {
        "amplitude": (yu, (f"peak-to-peak (max - min) of the response over the last {steady_frac} "
                          "of the record")),
        "frequency": (FREQUENCY_UNIT, ("argmax of the periodogram of the steady-state response, "
                                      "DC excluded")),
        "correlation": (product_units(xu, yu), "sum_t (x_t - mean x)(y_t - mean y), unnormalized"),
        "correlation_normalized": ("1", "Pearson correlation of stimulus and response"),
        "correlation_per_sample": (product_units(xu, yu), ("correlation / T: sum_t (x_t - mean x)"
                                                           "(y_t - mean y) / T")),
    }
    settings = {"steady_frac": steady_frac}
    return apply_metrics("sine_response", _sine_core, response, stimulus, metrics, settings,
                         stream=("sine", settings))
