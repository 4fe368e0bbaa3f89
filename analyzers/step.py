"""Step-response metrics: initial, final and delta response, settling time (paper Defs. 2-4)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import xarray as xr

from testbench.analysis import TIME_UNIT, apply_metrics, broadcast_core, nan_records, records_check
from testbench.nodes import Range, Response, Stimulus, analyzer, units_of


def _step_core(y, x, dt, *, window_frac: float, band_frac: float, band_reference: str,
               band_floor: float) -> np.ndarray:
    """(..., T) response and stimulus, (...) dt -> (..., 4): initial, final, delta, settling."""
    x = np.asarray(x)
    changed = x != x[..., :1]  # before broadcasting: once per stimulus record, not per response
    has_onset = changed.any(-1)
    i0 = np.where(has_onset, changed.argmax(-1), x.shape[-1])  # index of the first changed sample
    y, x, dt = broadcast_core(y, x, dt)
    T = y.shape[-1]
    lead = y.shape[:-1]
    has_onset, i0 = np.broadcast_to(has_onset, lead), np.broadcast_to(i0, lead)
    final = y[..., T - math.ceil(window_frac * T):].mean(-1)
    onsets = [(onset, i0 == onset) for onset in np.unique(i0[has_onset])]
    # one pass per distinct onset, not per cell; each slices the samples it needs before gathering
    # its records (a gather of whole records would copy them all)
    initial = np.full(lead, np.nan)
    for onset, rows in onsets:
        initial[rows] = y[..., onset - math.ceil(window_frac * onset):onset][rows].mean(-1)
    delta = final - initial
    ref = np.abs(delta) if band_reference == "delta" else np.abs(final)
    band = np.maximum(band_frac * ref, band_floor)
    settling = np.full(lead, np.nan)  # no onset
    for onset, rows in onsets:
        outside = np.abs(y[..., onset:][rows] - final[rows, None]) > band[rows, None]
        before_final_run = outside.shape[-1] - outside[:, ::-1].argmax(-1)  # post-onset samples
        settled = np.where(outside.any(-1), before_final_run, 0) * dt[rows]
        settling[rows] = np.where(outside[:, -1], np.nan, settled)  # still outside at the end
    out = np.stack([initial, final, delta, settling], axis=-1)
    return nan_records(out, y, x)


@analyzer("step_response", check=records_check("step_response", 4))
def step_response(
    response: Response,
    stimulus: Stimulus,
    *,
    window_frac: Annotated[float, Range(gt=0, le=1)] = 0.05,
    band_frac: Annotated[float, Range(gt=0, lt=1)] = 0.1,
    band_reference: Literal["delta", "final"] = "delta",
    band_floor: Annotated[float, Range(ge=0)] = 1e-12,
) -> xr.DataArray:
    """Step-response metrics of every response record: initial, final, delta and settling time.

    The input change (onset) is found from the stimulus: the first sample that differs from the
    stimulus's first sample, at 0-based index ``i0`` (for ``step`` with ``onset_steps`` t0 this is
    step t0 + 1). With ``ceil`` rounding up and at least one sample in every window:

    - ``initial_response``: mean of the response over the last ``ceil(window_frac * i0)`` samples
      before the onset (the pre-step steady state);
    - ``final_response``: mean of the last ``ceil(window_frac * T)`` samples of the record;
    - ``delta_response``: final - initial;
    - ``settling_time``: time from the input change until the response enters, and never again
      leaves, the band ``|y_t - final| <= b`` with half-width
      ``b = max(band_frac * |delta|, band_floor)`` (``band_reference='delta'``, the band relative to
      the step of the response as MATLAB ``lsiminfo``) or ``b = max(band_frac * |final|,
      band_floor)`` (``'final'``, python-control ``step_info``). It equals ``n * dt`` where n is the
      number of post-onset samples before the first sample of the final in-band run: 0 when the
      response never leaves the band after the onset (an instantaneous response y_t = x_t settles
      in 0), NaN when the last sample is outside the band (it never settles within the record).
      A response that does not change (delta = 0 up to rounding) has the band ``band_floor`` and
      settles in 0.

    Differences from ``control.step_info(y[i0:], T=dt * arange(n), SettlingTimeThreshold=
    band_frac)``: step_info takes the *last sample* as the final value (here: the mean of the last
    window; equal when ``ceil(window_frac * T) == 1``), counts a sample exactly on the band edge as
    outside (here: inside), and has no floor, so it breaks down for responses settling at 0 (band
    0). Otherwise the two agree exactly.

    Other conventions are settings, not variants of the node: python-control ``step_info``'s
    default is a 2 % band relative to the final value (``band_frac=0.02, band_reference='final'``),
    a 1 % band is ``band_frac=0.01``, a 2 % band relative to the step ``band_frac=0.02,
    band_reference='delta'``. A continuous first-order lag ``y = 1 - exp(-t / tau)`` sampled every
    dt from the onset settles into a band b at ``tau * ln(1 / b)`` rounded up to the sample grid.

    Parameters
    ----------
    response : xr.DataArray
        Response records, dims ``(..., time)``, possibly dask-backed (``time`` is put in one chunk).
    stimulus : xr.DataArray
        The step that drove them, dims ``(time,)`` or ``(..., time)`` broadcastable to the
        response, with ``attrs['dt']`` (or a swept ``dt`` coordinate).
    window_frac : float
        Fraction of the pre-step segment and of the record averaged for the initial and final
        response, 0 < window_frac <= 1, dimensionless. Default 0.05.
    band_frac : float
        Half-width of the settling band relative to the reference, 0 < band_frac < 1,
        dimensionless; 0.1 means settled within 10 % (the paper's 90 % window). Default 0.1.
    band_reference : 'delta' | 'final'
        What ``band_frac`` is relative to: ``delta`` = |final - initial| (MATLAB ``lsiminfo``;
        works for responses settling near 0, as LSTM cells often do) or ``final`` = |final|
        (python-control ``step_info``). Default ``delta``.
    band_floor : float
        Smallest band half-width, in response units, >= 0, so that rounding noise of an unchanged
        response is not taken as movement. Default 1e-12.

    Returns
    -------
    xr.DataArray
        ``step_response``: dims ``(*non-time dims of response and stimulus, metric)`` with metrics
        ``initial_response``, ``final_response``, ``delta_response`` (response units) and
        ``settling_time`` (time units of dt); coordinate ``units`` along ``metric``;
        ``attrs['definitions']``. NaN policy: any NaN in a record's response or stimulus makes all
        its metrics NaN; a stimulus that never changes gives NaN for all but ``final_response``.
        Never raises for undefined metrics.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.r_[np.zeros(5), np.ones(5)], dims="time", attrs={"dt": 0.5})
    >>> y = xr.DataArray(np.r_[np.zeros(5), 0.5, np.ones(4)], dims="time")
    >>> step_response(y, x).sel(metric="settling_time").item()
    0.5
    """
    yu = units_of(response)
    metrics = {
        "initial_response": (yu, (f"mean response over the last {window_frac} of the pre-step "
                                 "segment")),
        "final_response": (yu, f"mean response over the last {window_frac} of the record"),
        "delta_response": (yu, "final_response - initial_response"),
        "settling_time": (TIME_UNIT, (f"time from the input change until |y - final| stays <= "
                                     f"{band_frac}*|{band_reference}| (NaN: never settles)")),
    }
    settings = {"window_frac": window_frac, "band_frac": band_frac,
                "band_reference": band_reference, "band_floor": band_floor}
    return apply_metrics("step_response", _step_core, response, stimulus, metrics, settings,
                         stream=("step", settings))
