"""Periodic stimuli: sine, square and chirp.

Step t lies at time ``tau = t * dt``; frequencies are in cycles per time unit and must stay below
the Nyquist frequency ``1 / (2 dt)`` (a :class:`~testbench.errors.SettingsError` otherwise).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import xarray as xr

from testbench.stimuli._base import check_nyquist, fill_doc, make, signal_check, steps
from testbench.nodes import Range, stimulus


@stimulus("sine", check=signal_check("sine", frequencies=("frequency",)))
@fill_doc
def sine(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    frequency: Annotated[float, Range(gt=0)] = 0.01,
    amplitude: float = 1.0,
    phase: float = 0.0,
    offset: float = 0.0,
) -> xr.DataArray:
    """Sine: ``x_t = amplitude * sin(2 pi frequency t dt + phase) + offset``.

    Parameters
    ----------
    {length_dt}
    frequency : float
        Frequency f in cycles per time unit, 0 < f < 1 / (2 dt). Default 0.01 (with the default
        T = 1000 and dt = 1: 10 whole periods).
    {sine_like}

    {returns}

    Examples
    --------
    >>> sine(length_steps=4, frequency=0.25).values.round(12)
    array([ 1.,  0., -1., -0.])
    """
    check_nyquist("sine", "frequency", frequency, dt)
    x = amplitude * np.sin(2 * np.pi * frequency * steps(length_steps) * dt + phase) + offset
    text = f"sine x_t = {amplitude} sin(2 pi {frequency} t {dt} + {phase}) + {offset}"
    return make("sine", x, text,
                {"length_steps": length_steps, "dt": dt, "frequency": frequency,
                 "amplitude": amplitude, "phase": phase, "offset": offset})


@stimulus("square", check=signal_check("square", frequencies=("frequency",)))
@fill_doc
def square(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    frequency: Annotated[float, Range(gt=0)] = 0.01,
    duty: Annotated[float, Range(gt=0, lt=1)] = 0.5,
    amplitude: float = 1.0,
    phase: float = 0.0,
    offset: float = 0.0,
) -> xr.DataArray:
    """Square wave: ``+amplitude`` for the first ``duty`` fraction of each period, else minus it.

    ``x_t = offset + amplitude * (1 if frac(f t dt + phase / (2 pi)) < duty else -1)``, where
    ``frac`` is the fractional part; with duty 0.5 and phase 0 it is +A where ``sin(2 pi f t dt)``
    is positive.

    Parameters
    ----------
    {length_dt}
    frequency : float
        Frequency f in cycles per time unit, 0 < f < 1 / (2 dt). Default 0.01.
    duty : float
        Fraction of each period spent at +amplitude, 0 < duty < 1. Default 0.5.
    {sine_like}

    {returns}

    Examples
    --------
    >>> square(length_steps=8, frequency=0.25).values
    array([ 1., -1., -1.,  1.,  1., -1., -1.,  1.])
    """
    check_nyquist("square", "frequency", frequency, dt)
    cycles = np.mod(frequency * steps(length_steps) * dt + phase / (2 * np.pi), 1.0)
    x = offset + amplitude * np.where(cycles < duty, 1.0, -1.0)
    return make("square", x, f"square wave, {frequency} cycles per time unit, duty {duty}",
                {"length_steps": length_steps, "dt": dt, "frequency": frequency, "duty": duty,
                 "amplitude": amplitude, "phase": phase, "offset": offset})


@stimulus("chirp", check=signal_check("chirp", frequencies=("f0", "f1")))
@fill_doc
def chirp(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    f0: Annotated[float, Range(gt=0)] = 0.001,
    f1: Annotated[float, Range(gt=0)] = 0.1,
    method: Literal["linear", "log"] = "linear",
    amplitude: float = 1.0,
    phase: float = 0.0,
    offset: float = 0.0,
) -> xr.DataArray:
    """Chirp: a sine whose frequency sweeps from ``f0`` at time 0 to ``f1`` at the last sample.

    With ``tau = t dt`` and ``tau1 = T dt``, ``x_t = amplitude * sin(phi(tau) + phase) + offset``
    where the instantaneous frequency ``phi'(tau) / (2 pi)`` is ``f0 + (f1 - f0) tau / tau1``
    (linear) or ``f0 (f1 / f0) ** (tau / tau1)`` (log), and ``phi(0) = 0``. This is
    ``scipy.signal.chirp`` with ``t1 = tau1`` and a sine instead of a cosine.

    Parameters
    ----------
    {length_dt}
    f0 : float
        Frequency at time 0, cycles per time unit, 0 < f0 < 1 / (2 dt). Default 0.001.
    f1 : float
        Frequency at the last sample (time T dt), cycles per time unit, 0 < f1 < 1 / (2 dt).
        Default 0.1.
    method : 'linear' | 'log'
        Frequency law: linear in time, or exponential (constant ratio per time unit).
        Default ``linear``.
    {sine_like}

    {returns}
    """
    check_nyquist("chirp", "f0", f0, dt)
    check_nyquist("chirp", "f1", f1, dt)
    tau = steps(length_steps) * dt
    tau1 = length_steps * dt
    if method == "linear":
        phi = 2 * np.pi * (f0 * tau + 0.5 * (f1 - f0) * tau**2 / tau1)
    elif f1 == f0:
        phi = 2 * np.pi * f0 * tau
    else:
        k = np.log(f1 / f0) / tau1
        phi = 2 * np.pi * f0 * np.expm1(k * tau) / k
    x = amplitude * np.sin(phi + phase) + offset
    return make("chirp", x, f"{method} chirp from {f0} to {f1} cycles per time unit",
                {"length_steps": length_steps, "dt": dt, "f0": f0, "f1": f1, "method": method,
                 "amplitude": amplitude, "phase": phase, "offset": offset})
