"""Step, impulse and ramp stimuli.

All three share ``onset_steps`` t0: the stimulus sits at ``baseline`` for every step t <= t0 and
changes from step t0 + 1 on (the paper's ``x_t = 1[t > T/2]`` with the defaults). The impulse is the
first difference of the step, so it fires at step t0 + 1.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import xarray as xr

from testbench.stimuli._base import fill_doc, make, onset, signal_check, steps
from testbench.nodes import Range, stimulus


@stimulus("step", check=signal_check("step", has_onset=True))
@fill_doc
def step(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    onset_steps: Annotated[int, Range(ge=1)] | None = None,
    baseline: float = 0.0,
    amplitude: float = 1.0,
) -> xr.DataArray:
    """Step: ``x_t = baseline + amplitude * 1[t > onset_steps]``.

    Parameters
    ----------
    {length_dt}
    {onset_baseline}
    amplitude : float
        Height of the step, dimensionless (negative steps down). Default 1.0.

    {returns}

    Examples
    --------
    >>> step(length_steps=6, onset_steps=3).values
    array([0., 0., 0., 1., 1., 1.])
    """
    t0 = onset("step", onset_steps, length_steps)
    x = baseline + amplitude * (steps(length_steps) > t0)
    return make("step", x, f"step x_t = {baseline} + {amplitude} * 1[t > {t0}]",
                {"length_steps": length_steps, "dt": dt, "onset_steps": t0, "baseline": baseline,
                 "amplitude": amplitude})


@stimulus("impulse", check=signal_check("impulse", has_onset=True))
@fill_doc
def impulse(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    onset_steps: Annotated[int, Range(ge=1)] | None = None,
    baseline: float = 0.0,
    amplitude: float = 1.0,
) -> xr.DataArray:
    """Impulse: ``x_t = baseline + amplitude * 1[t = onset_steps + 1]`` (a single sample).

    Parameters
    ----------
    {length_dt}
    {onset_baseline}
    amplitude : float
        Height of the single non-baseline sample, dimensionless (not scaled by dt). Default 1.0.

    {returns}

    Examples
    --------
    >>> impulse(length_steps=5, onset_steps=2).values
    array([0., 0., 1., 0., 0.])
    """
    t0 = onset("impulse", onset_steps, length_steps)
    x = baseline + amplitude * (steps(length_steps) == t0 + 1)
    return make("impulse", x, f"impulse x_t = {baseline} + {amplitude} * 1[t = {t0 + 1}]",
                {"length_steps": length_steps, "dt": dt, "onset_steps": t0, "baseline": baseline,
                 "amplitude": amplitude})


@stimulus("ramp", check=signal_check("ramp", has_onset=True))
@fill_doc
def ramp(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    onset_steps: Annotated[int, Range(ge=1)] | None = None,
    baseline: float = 0.0,
    slope: float = 0.001,
) -> xr.DataArray:
    """Ramp: ``x_t = baseline + slope * max(t - onset_steps, 0) * dt``.

    Parameters
    ----------
    {length_dt}
    {onset_baseline}
    slope : float
        Rate of change after the onset, in value units per time unit; one step after the onset
        the value is ``baseline + slope * dt``. Default 0.001.

    {returns}

    Examples
    --------
    >>> ramp(length_steps=5, onset_steps=2, slope=0.5, dt=2.0).values
    array([0., 0., 1., 2., 3.])
    """
    t0 = onset("ramp", onset_steps, length_steps)
    x = baseline + slope * dt * np.maximum(steps(length_steps) - t0, 0)
    return make("ramp", x, f"ramp x_t = {baseline} + {slope} * max(t - {t0}, 0) * {dt}",
                {"length_steps": length_steps, "dt": dt, "onset_steps": t0, "baseline": baseline,
                 "slope": slope})
