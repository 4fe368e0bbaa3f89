"""Noise stimuli, reproducible by seed."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import xarray as xr

from testbench.stimuli._base import fill_doc, make, signal_check
from testbench.nodes import Range, stimulus


@stimulus("white_noise", check=signal_check("white_noise"))
@fill_doc
def white_noise(
    *,
    length_steps: Annotated[int, Range(ge=2, le=10_000_000)] = 1000,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    seed: Annotated[int, Range(ge=0)] = 0,
    std: Annotated[float, Range(ge=0)] = 1.0,
    offset: float = 0.0,
) -> xr.DataArray:
    """Gaussian white noise: ``x_t = offset + std * z_t``, z i.i.d. standard normal.

    ``z = numpy.random.default_rng(seed).standard_normal(T)``: the same seed gives the same
    samples on every machine and NumPy version with the same bit generator (PCG64).

    Parameters
    ----------
    {length_dt}
    seed : int
        Seed of NumPy's ``default_rng``, >= 0. Default 0.
    std : float
        Standard deviation, dimensionless, >= 0. Default 1.0.
    offset : float
        Mean, dimensionless. Default 0.0.

    {returns}
    """
    z = np.random.default_rng(seed).standard_normal(length_steps)
    return make("white_noise", offset + std * z, f"white noise, seed {seed}, std {std}",
                {"length_steps": length_steps, "dt": dt, "seed": seed, "std": std,
                 "offset": offset})
