"""Helpers for writing analyzer nodes: sample interval, NaN policy and metric assembly.

The built-in analyzers (:mod:`testbench.analyzers`) are written with these functions, and so can
yours. An analyzer's numeric core is a plain NumPy function ``core(y, x, dt, **settings)`` that
takes the response ``y`` and stimulus ``x`` as ``(..., T)`` arrays and the sample interval ``dt``
as a ``(...)`` array (all broadcast-compatible), plus any further per-record values after ``dt``,
and returns ``(..., k)`` metrics. :func:`apply_metrics` runs it over every non-time dim, lazily
when the response is dask-backed, and labels the result as the result store expects it.

Read the sample interval with :func:`sample_interval` (never ``stimulus.attrs['dt']`` alone: a
swept ``dt`` is a coordinate, not an attribute), so times and frequencies stay right when ``dt`` is
swept; :func:`apply_metrics` passes it to the core for you.

Examples
--------
A custom analyzer returning the peak response and the time to reach it:

>>> import numpy as np, xarray as xr
>>> from testbench.analysis import TIME_UNIT, apply_metrics, broadcast_core, nan_records
>>> from testbench.nodes import Response, Stimulus, analyzer, units_of
>>> def _peak_core(y, x, dt):
...     y, x, dt = broadcast_core(y, x, dt)
...     out = np.stack([y.max(-1), (y.argmax(-1) + 1) * dt], axis=-1)
...     return nan_records(out, y, x)
>>> @analyzer("example_peak_response", register=False)
... def peak_response(response: Response, stimulus: Stimulus) -> xr.DataArray:
...     '''Peak of each response record and the time to reach it.'''
...     metrics = {"peak": (units_of(response), "largest response sample"),
...                "time_to_peak": (TIME_UNIT, "time from the record's start to the peak")}
...     return apply_metrics("example_peak_response", _peak_core, response, stimulus, metrics, {})
>>> x = xr.DataArray(np.ones(4), dims="time", attrs={"dt": 0.5})
>>> y = xr.DataArray([0.0, 2.0, 1.0, 1.0], dims="time")
>>> peak_response(y, x).values.tolist()
[2.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import xarray as xr

from testbench.errors import SettingsError
from testbench.nodes import Facts, guard
from testbench.schema import METRIC, TIME, UNITS

#: Unit of times measured by the analyzers: the unit of the stimulus's ``dt``.
TIME_UNIT = "time unit"
#: Unit of frequencies measured by the analyzers: cycles per unit of the stimulus's ``dt``.
FREQUENCY_UNIT = "cycles per time unit"


def sample_interval(stimulus: xr.DataArray, node: str) -> xr.DataArray:
    """The sample interval of a stimulus, per record.

    Parameters
    ----------
    stimulus : xr.DataArray
        A stimulus node's output: ``attrs['dt']`` holds its sample interval, or, when ``dt`` was
        swept, its ``dt`` coordinate does.
    node : str
        The analyzer's type name, for the error message.

    Returns
    -------
    xr.DataArray
        float64 sample interval in time units, > 0: a scalar, or dims ``(dt,)`` when swept
        (it broadcasts against the stimulus's records).

    Raises
    ------
    SettingsError
        When the stimulus carries neither ``attrs['dt']`` nor a ``dt`` coordinate.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.zeros((2, 3)), dims=("dt", "time"), coords={"dt": [0.5, 1.0]})
    >>> sample_interval(x, "my_analyzer").values.tolist()
    [0.5, 1.0]
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
    """Broadcast a core's inputs to one leading shape, as float64.

    Parameters
    ----------
    y, x : array_like
        Response and stimulus records, shapes ``(..., T)`` broadcastable against each other.
    *per_record : array_like
        Values per record without a time axis, such as ``dt``, shapes ``(...)``.

    Returns
    -------
    tuple of np.ndarray
        ``(y, x, *per_record)``: ``y`` and ``x`` of shape ``(*lead, T)``, each per-record value of
        shape ``lead``; read-only broadcast views, float64.
    """
    lead = np.broadcast_shapes(np.shape(y)[:-1], np.shape(x)[:-1], *map(np.shape, per_record))
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), lead + np.shape(y)[-1:])
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), lead + np.shape(x)[-1:])
    return (y, x, *(np.broadcast_to(np.asarray(v, dtype=np.float64), lead) for v in per_record))


def nan_records(out: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the analyzers' NaN policy: a record with any NaN sample gets all its metrics NaN.

    Parameters
    ----------
    out : np.ndarray
        ``(*lead, k)`` float metrics of the records; modified in place.
    y, x : np.ndarray
        ``(*lead, T)`` response and stimulus records (as :func:`broadcast_core` returns them).

    Returns
    -------
    np.ndarray
        ``out``, with NaN in every metric of a record whose response or stimulus holds a NaN (a
        padded cell, a failed simulation). Undefined metrics are NaN, never an exception.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1.0, 2.0], [1.0, np.nan]])
    >>> nan_records(np.ones((2, 1)), y, np.zeros(2)).ravel().tolist()
    [1.0, nan]
    """
    bad = np.isnan(y).any(-1) | np.isnan(x).any(-1)
    out[np.broadcast_to(bad, out.shape[:-1])] = np.nan
    return out


def check_same_record(node: str, response_steps: int, stimulus_steps: int) -> None:
    """Refuse a response and a stimulus of different lengths (not the record that drove it).

    Parameters
    ----------
    node : str
        The analyzer's type name, for the error message.
    response_steps, stimulus_steps : int
        Samples per record T of the response and of the stimulus.

    Raises
    ------
    SettingsError
        When the lengths differ.
    """
    if response_steps != stimulus_steps:
        raise SettingsError(
            f"{node}: the response has {response_steps} steps but the stimulus has "
            f"{stimulus_steps}; they must be the same record; fix: connect the stimulus "
            "that drove this response"
        )


def records_check(node: str, n_metrics: int) -> Callable[[dict, dict], Facts]:
    """The preflight hook of an analyzer of ``(response, stimulus)`` records.

    Pass it as the decorator's ``check``:
    ``@analyzer("peak_response", check=records_check("peak_response", 2))``.

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
        dims = {**response.dims, **stimulus.dims, METRIC: n_metrics}
        return Facts(dims, {**stimulus.coords, **response.coords})

    return check


def _check_time(node: str, response: xr.DataArray, stimulus: xr.DataArray) -> None:
    for label, arr in (("response", response), ("stimulus", stimulus)):
        if TIME not in arr.dims:
            raise SettingsError(
                f"{node}: input '{label}' has dims {arr.dims} without 'time'; fix: connect a "
                f"{'DUT' if label == 'response' else 'stimulus'} node output"
            )
    check_same_record(node, response.sizes[TIME], stimulus.sizes[TIME])
    if TIME in response.coords and TIME in stimulus.coords and not np.array_equal(
            response[TIME].values, stimulus[TIME].values):
        raise SettingsError(
            f"{node}: the response and stimulus 'time' coordinates differ; fix: connect the "
            "stimulus that drove this response"
        )


def _chunk(arr: xr.DataArray, chunks: dict) -> xr.DataArray:
    """``arr`` with its data chunked as ``chunks`` and its coordinates left as they are: xarray's
    ``chunk`` turns NumPy coordinates along a dim into dask arrays, and each read of one (when the
    result is assembled) is then a dask computation of its own."""
    return arr.chunk(chunks).assign_coords(arr.coords)


def apply_metrics(node: str, core: Callable[..., np.ndarray], response: xr.DataArray,
                  stimulus: xr.DataArray, metrics: dict[str, tuple[str, str]], settings: dict,
                  per_record: tuple[xr.DataArray, ...] = (),
                  stream: tuple[str, dict] | None = None) -> xr.DataArray:
    """Run ``core`` over all non-time dims and label the result as a metrics output.

    Parameters
    ----------
    node : str
        Node type name; names the output and error messages.
    core : callable
        ``core(y, x, dt, *per_record, **settings) -> (..., len(metrics))`` NumPy function; ``dt``
        is the sample interval of :func:`sample_interval` in time units, per record.
    response, stimulus : xr.DataArray
        Dims ``(..., time)``, broadcastable against each other; the response may be dask-backed.
    metrics : dict of str to (str, str)
        Metric name -> (units, one-line definition), in the order ``core`` returns them.
    settings : dict
        Keyword arguments for ``core``.
    per_record : tuple of xr.DataArray
        Further values per record without ``time`` (e.g. the stimulus frequency, a swept
        coordinate), passed to ``core`` after ``dt`` and broadcast like it. Default none.
    stream : (str, dict), optional
        ``('step', settings)`` or ``('sine', settings)`` for the built-in step and sine analyzers:
        when ``response`` is an isolated DUT's output driven by ``stimulus``, the metrics are
        computed inside the DUT's blocks without materializing the response
        (:mod:`testbench.streaming`; bitwise equal to ``core``). Default None.

    Returns
    -------
    xr.DataArray
        Named ``node``; dims ``(*non-time dims, metric)``, float64; coordinate ``metric`` (names)
        and ``units`` along it; attrs ``definitions``. Lazy when either input is dask-backed.

    Raises
    ------
    SettingsError
        An input without a ``time`` dim, records of different lengths or time coordinates, or a
        stimulus without a sample interval.
    """
    _check_time(node, response, stimulus)
    dt = sample_interval(stimulus, node)
    out = None
    if stream is not None:
        from testbench.streaming import streamed

        out = streamed(response, stimulus, dt, *stream, len(metrics))
    if out is None:
        out = _apply_core(core, response, stimulus, dt, per_record, settings, len(metrics))
    out = out.assign_coords({METRIC: list(metrics),
                             UNITS: (METRIC, [units for units, _ in metrics.values()])})
    out.name = node
    out.attrs = {"definitions": {name: text for name, (_, text) in metrics.items()}}
    return out


def _apply_core(core, response, stimulus, dt, per_record, settings, k: int) -> xr.DataArray:
    """``core`` over every non-time dim of response and stimulus: unlabelled (..., metric)."""
    if response.chunks is not None:
        # chunk the stimulus like the response along shared dims: a stimulus in one piece makes
        # dask hold every response chunk of a sweep at once (peak memory grows with the sweep)
        shared = {d: response.chunksizes[d] for d in stimulus.dims if d in response.chunksizes}
        stimulus = _chunk(stimulus, {**shared, TIME: -1})
    inputs = [_chunk(a, {TIME: -1}) if a.chunks is not None else a for a in (response, stimulus)]
    return xr.apply_ufunc(
        guard(partial(core, **settings)), *inputs, dt, *per_record,
        input_core_dims=[[TIME], [TIME], []] + [[] for _ in per_record],
        output_core_dims=[[METRIC]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {METRIC: k}},
    )


__all__ = ["TIME_UNIT", "FREQUENCY_UNIT", "sample_interval", "broadcast_core", "nan_records",
           "check_same_record", "records_check", "apply_metrics"]
