"""Shared xarray/dask plumbing of the built-in analyzers (private).

An analyzer's numeric core is a plain NumPy function ``core(y, x, dt, **settings)`` that takes the
response ``y`` and stimulus ``x`` as ``(..., T)`` arrays and the sample interval ``dt`` as a
``(...)`` array (all broadcast-compatible), plus any further per-record values after ``dt``, and
returns ``(..., k)`` metrics. :func:`apply_metrics` runs it over every non-time dim, lazily when
the response is dask-backed.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import xarray as xr

from testbench.errors import SettingsError
from testbench.nodes import Facts, guard

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


def broadcast_core(y, x, *per_record) -> tuple[np.ndarray, ...]:
    """Broadcast ``y (..., T)``, ``x (..., T)`` and per-record values such as ``dt (...)`` to one
    leading shape (float64); returns ``(y, x, *per_record)``."""
    lead = np.broadcast_shapes(np.shape(y)[:-1], np.shape(x)[:-1], *map(np.shape, per_record))
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), lead + np.shape(y)[-1:])
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), lead + np.shape(x)[-1:])
    return (y, x, *(np.broadcast_to(np.asarray(v, dtype=np.float64), lead) for v in per_record))


def check_same_record(node: str, response_steps: int, stimulus_steps: int) -> None:
    """Refuse a response and a stimulus of different lengths (not the record that drove it)."""
    if response_steps != stimulus_steps:
        raise SettingsError(
            f"{node}: the response has {response_steps} steps but the stimulus has "
            f"{stimulus_steps}; they must be the same record; fix: connect the stimulus "
            "that drove this response"
        )


def records_check(node: str, n_metrics: int):
    """The preflight hook of an analyzer of ``(response, stimulus)`` records.

    Parameters
    ----------
    node : str
        Node type name, for messages.
    n_metrics : int
        Metrics the analyzer returns per record (the size of its ``metric`` dim), >= 1.

    Returns
    -------
    callable
        ``check(settings, inputs) -> Facts``: refuses records of different lengths
        (:func:`check_same_record`); the output has the inputs' non-time dims and ``metric``.
    """

    def check(settings: dict, inputs: dict) -> Facts:
        response, stimulus = inputs["response"], inputs["stimulus"]
        if response.length_steps is not None and stimulus.length_steps is not None:
            check_same_record(node, response.length_steps, stimulus.length_steps)
        dims = {**response.dims, **stimulus.dims, "metric": n_metrics}
        return Facts(dims, {**stimulus.coords, **response.coords})

    return check


def _check_time(node: str, response: xr.DataArray, stimulus: xr.DataArray) -> None:
    for label, arr in (("response", response), ("stimulus", stimulus)):
        if "time" not in arr.dims:
            raise SettingsError(
                f"{node}: input '{label}' has dims {arr.dims} without 'time'; fix: connect a "
                f"{'DUT' if label == 'response' else 'stimulus'} node output"
            )
    check_same_record(node, response.sizes["time"], stimulus.sizes["time"])
    if "time" in response.coords and "time" in stimulus.coords and not np.array_equal(
            response["time"].values, stimulus["time"].values):
        raise SettingsError(
            f"{node}: the response and stimulus 'time' coordinates differ; fix: connect the "
            "stimulus that drove this response"
        )


def apply_metrics(node: str, core, response: xr.DataArray, stimulus: xr.DataArray,
                  metrics: dict[str, tuple[str, str]], settings: dict,
                  per_record: tuple[xr.DataArray, ...] = ()) -> xr.DataArray:
    """Run ``core`` over all non-time dims and label the result.

    Parameters
    ----------
    node : str
        Node type name; names the output and error messages.
    core : callable
        ``core(y, x, dt, *per_record, **settings) -> (..., len(metrics))`` NumPy function.
    response, stimulus : xr.DataArray
        Dims ``(..., time)``, broadcastable against each other; the response may be dask-backed.
    metrics : dict
        Metric name -> (units, one-line definition), in the order ``core`` returns them.
    settings : dict
        Keyword arguments for ``core``.
    per_record : tuple of xr.DataArray
        Further values per record without ``time`` (e.g. the stimulus frequency, a swept
        coordinate), passed to ``core`` after ``dt`` and broadcast like it. Default none.

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
        guard(partial(core, **settings)), *inputs, dt, *per_record,
        input_core_dims=[["time"], ["time"], []] + [[] for _ in per_record],
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
