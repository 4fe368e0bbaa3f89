"""A user's own stimulus and analyzer, written outside the testbench package.

Referenced from YAML as ``my_nodes:pulse_train`` and ``my_nodes:mean_level`` (the folder holding this
file must be importable, e.g. on PYTHONPATH or the current directory). This file is the documented
example of README section "Write your own node".
"""

from typing import Annotated

import numpy as np
import xarray as xr

from testbench.nodes import Range, Response, Stimulus, analyzer, guard, stimulus


@stimulus("pulse_train", register=False)
def pulse_train(
    *,
    length_steps: Annotated[int, Range(ge=2)] = 200,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    period_steps: Annotated[int, Range(ge=2)] = 20,
    amplitude: float = 1.0,
) -> xr.DataArray:
    """Unit pulses every ``period_steps`` steps.

    Parameters
    ----------
    length_steps : int
        Number of samples T, >= 2.
    dt : float
        Sample interval in time units, > 0.
    period_steps : int
        Steps between pulses, >= 2; the first pulse is at step ``period_steps``.
    amplitude : float
        Pulse height, dimensionless.
    """
    t = np.arange(1, length_steps + 1)
    x = np.where(t % period_steps == 0, amplitude, 0.0)
    return xr.DataArray(x, dims="time", coords={"time": t}, name="pulse_train",
                        attrs={"units": "1", "dt": dt})


def _mean_level(y, x):
    return np.stack([y.mean(-1), (y * x).sum(-1)], axis=-1)


@analyzer("mean_level", register=False)
def mean_level(response: Response, stimulus: Stimulus) -> xr.DataArray:
    """Mean response level and the plain sum of x*y over the record.

    Parameters
    ----------
    response : xr.DataArray
        Dims (..., time).
    stimulus : xr.DataArray
        Dims (..., time), broadcastable to the response.
    """
    out = xr.apply_ufunc(guard(_mean_level), response, stimulus,
                         input_core_dims=[["time"], ["time"]], output_core_dims=[["metric"]],
                         dask="parallelized", output_dtypes=[float],
                         dask_gufunc_kwargs={"output_sizes": {"metric": 2}})
    out = out.assign_coords(metric=["mean_level", "xy_sum"], units=("metric", ["1", "1"]))
    out.attrs["definitions"] = {"mean_level": "mean of y over time", "xy_sum": "sum of x*y"}
    return out
