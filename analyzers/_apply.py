"""Shared xarray/dask plumbing of the built-in analyzers (private).

An analyzer's numeric core is a plain NumPy function ``core(y, x, dt, **settings)`` that takes the
response ``y`` and stimulus ``x`` as ``(..., T)`` arrays and the sample interval ``dt`` as a
``(...)`` array (all broadcast-compatible) and returns ``(..., k)`` metrics. :func:`apply_metrics`
runs it over every non-time dim, lazily when the response is dask-backed.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import xarray as xr

from testbench.errors import SettingsError
from testbench.nodes import guard

#: Unit of times and frequencies measured by the analyzers: the unit of the stimulus's dt.
TIME_UNIT = "time unit"
FREQUENCY_UNIT = "cycles per time unit"


def sample_interval(stimulus: xr.DataArray, node: str) -> xr.DataArray:
    """The stimulus's sample interval: ``attrs['dt']``, or its ``dt`` coordinate when dt was swept.

    Raises
    ------
    SettingsError
        When the stimulus carries neither.
    """
    if "dt" in stimulus.attrs:
        return xr.DataArray(float(stimulus.attrs["dt"]))
    if "dt" in stimulus.coords:
        return stimulus.coords["dt"].astype(np.float64)
    raise SettingsError(
        f"{node}: input 'stimulus' ('{stimulus.name}') has no sample interval (neither "
        "attrs['dt'] nor a 'dt' coordinate); fix: connect a stimulus node, or set attrs['dt'] on a "
        "custom stimulus"
    )


def broadcast_core(y, x, dt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast ``y (..., T)``, ``x (..., T)`` and ``dt (...)`` to one leading shape (float64)."""
    lead = np.broadcast_shapes(np.shape(y)[:-1], np.shape(x)[:-1], np.shape(dt))
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), lead + np.shape(y)[-1:])
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), lead + np.shape(x)[-1:])
    return y, x, np.broadcast_to(np.asarray(dt, dtype=np.float64), lead)


def _check_time(node: str, response: xr.DataArray, stimulus: xr.DataArray) -> None:
    for label, arr in (("response", response), ("stimulus", stimulus)):
        if "time" not in arr.dims:
            raise SettingsError(
                f"{node}: input '{label}' has dims {arr.dims} without 'time'; fix: connect a "
                f"{'DUT' if label == 'response' else 'stimulus'} node output"
            )
    if response.sizes["time"] != stimulus.sizes["time"]:
        raise SettingsError(
            f"{node}: the response has {response.sizes['time']} steps but the stimulus has "
            f"{stimulus.sizes['time']}; they must be the same record; fix: connect the stimulus "
            "that drove this response"
        )
    if "time" in response.coords and "time" in stimulus.coords and not np.array_equal(
            response["time"].values, stimulus["time"].values):
        raise SettingsError(
            f"{node}: the response and stimulus 'time' coordinates differ; fix: connect the "
            "stimulus that drove this response"
        )


def apply_metrics(node: str, core, response: xr.DataArray, stimulus: xr.DataArray,
                  metrics: dict[str, tuple[str, str]], settings: dict) -> xr.DataArray:
    """Run ``core`` over all non-time dims and label the result.

    Parameters
    ----------
    node : str
        Node type name; names the output and error messages.
    core : callable
        ``core(y, x, dt, **settings) -> (..., len(metrics))`` NumPy function.
    response, stimulus : xr.DataArray
        Dims ``(..., time)``, broadcastable against each other; the response may be dask-backed.
    metrics : dict
        Metric name -> (units, one-line definition), in the order ``core`` returns them.
    settings : dict
        Keyword arguments for ``core``.

    Returns
    -------
    xr.DataArray
        Dims ``(*non-time dims, metric)``, float64; coordinate ``metric`` (names) and ``units``
        along it; attrs ``definitions``. Lazy when either input is dask-backed.
    """
    _check_time(node, response, stimulus)
    dt = sample_interval(stimulus, node)
    if response.chunks is not None:
        # chunk the stimulus like the response along shared dims: a stimulus in one piece makes
        # dask hold every response chunk of a sweep at once (peak memory grows with the sweep)
        shared = {d: response.chunksizes[d] for d in stimulus.dims if d in response.chunksizes}
        stimulus = stimulus.chunk({**shared, "time": -1})
    inputs = [a.chunk({"time": -1}) if a.chunks is not None else a for a in (response, stimulus)]
    out = xr.apply_ufunc(
        guard(partial(core, **settings)), *inputs, dt,
        input_core_dims=[["time"], ["time"], []],
        output_core_dims=[["metric"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"metric": len(metrics)}},
    )
    out = out.assign_coords(metric=list(metrics),
                            units=("metric", [units for units, _ in metrics.values()]))
    out.name = node
    out.attrs = {"definitions": {name: text for name, (_, text) in metrics.items()}}
    return out
