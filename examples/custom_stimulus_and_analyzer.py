"""Write a custom stimulus and a custom analyzer, and use them from a graph.

The stimulus is a pulse train; the analyzer measures each cell's peak response and the time from
the first pulse to that peak. The graph sweeps the sample interval ``dt``: the cells are discrete
systems, so their responses in steps do not depend on ``dt``, and a correct analyzer reports
times that scale with it. That holds because the analyzer takes ``dt`` per record from
:func:`testbench.analysis.apply_metrics` (a swept ``dt`` is a coordinate of the stimulus, not
``attrs["dt"]``).

Run: ``python examples/custom_stimulus_and_analyzer.py`` (a few seconds; writes nothing).
"""

from typing import Annotated

import numpy as np
import xarray as xr

import testbench
from testbench.analysis import TIME_UNIT, apply_metrics, broadcast_core, nan_records, records_check
from testbench.errors import SettingsError
from testbench.nodes import Facts, Range, Response, Stimulus, analyzer, stimulus, units_of


def _pulse_facts(settings: dict, inputs: dict) -> Facts:
    """Preflight hook: refuse a record without a pulse; describe the output before computing."""
    if settings["period_steps"] > settings["length_steps"]:
        raise SettingsError(
            f"pulse_train: setting 'period_steps' = {settings['period_steps']} is longer than the "
            f"record (length_steps = {settings['length_steps']}), so no pulse would be seen; fix: "
            "use a shorter period_steps or a longer length_steps", setting="period_steps")
    return Facts.signal(settings["length_steps"], settings["dt"])


@stimulus("pulse_train", check=_pulse_facts)
def pulse_train(
    *,
    length_steps: Annotated[int, Range(ge=2)] = 200,
    dt: Annotated[float, Range(gt=0)] = 1.0,
    period_steps: Annotated[int, Range(ge=2)] = 50,
    width_steps: Annotated[int, Range(ge=1)] = 5,
    amplitude: float = 1.0,
) -> xr.DataArray:
    """Rectangular pulses of ``width_steps`` steps, one every ``period_steps`` steps.

    Parameters
    ----------
    length_steps : int
        Number of samples T, >= 2.
    dt : float
        Sample interval in time units, > 0. Default 1.0.
    period_steps : int
        Steps from one pulse's start to the next, >= 2; the first pulse starts at step
        ``period_steps``. Default 50.
    width_steps : int
        Length of each pulse in steps, >= 1. Default 5.
    amplitude : float
        Pulse height, dimensionless. Default 1.0.

    Returns
    -------
    xr.DataArray
        ``pulse_train``: dims ``(time,)``, time steps 1..T; attrs ``units`` ("1") and ``dt``.
    """
    t = np.arange(1, length_steps + 1)
    x = np.where(t % period_steps < width_steps, amplitude, 0.0)
    x[t < period_steps] = 0.0
    return xr.DataArray(x, dims="time", coords={"time": t}, name="pulse_train",
                        attrs={"units": "1", "dt": dt})


def _peak_core(y, x, dt):
    """(..., T) response and stimulus, (...) dt -> (..., 2): peak, time from first pulse to it."""
    y, x, dt = broadcast_core(y, x, dt)
    changed = x != x[..., :1]
    onset = np.where(changed.any(-1), changed.argmax(-1), -1)  # first pulse's first sample
    after = np.arange(y.shape[-1]) >= onset[..., None]
    masked = np.where(after, y, -np.inf)
    peak_at = masked.argmax(-1)
    out = np.stack([masked.max(-1), (peak_at - onset) * dt], axis=-1)
    out[onset < 0] = np.nan  # a stimulus without pulses: undefined, NaN (never an error)
    return nan_records(out, y, x)


@analyzer("peak_response", check=records_check("peak_response", 2))
def peak_response(response: Response, stimulus: Stimulus) -> xr.DataArray:
    """The largest response after the first pulse and the time from that pulse to it.

    Parameters
    ----------
    response : xr.DataArray
        Response records, dims ``(..., time)``, possibly dask-backed.
    stimulus : xr.DataArray
        The stimulus that drove them, with ``attrs['dt']`` or a swept ``dt`` coordinate.

    Returns
    -------
    xr.DataArray
        ``peak_response``: dims ``(*non-time dims, metric)``; ``peak`` (response units) and
        ``time_to_peak`` (time units of dt). NaN for records holding a NaN or a stimulus that
        never changes.
    """
    metrics = {
        "peak": (units_of(response), "largest response from the first pulse on"),
        "time_to_peak": (TIME_UNIT, "time from the first pulse's start to the peak"),
    }
    return apply_metrics("peak_response", _peak_core, response, stimulus, metrics, {})


GRAPH = {
    "description": "pulse-train responses of the 32-cell CO2 LSTM at two sample intervals",
    "nodes": {
        "pulses": {"type": "pulse_train", "settings": {"length_steps": 300},
                   "sweep": {"dt": [0.5, 1.0]}},
        "cells": {"type": "lstm_cells", "inputs": ["pulses"],
                  "settings": {"weights": "zoo:co2-32"}},
        "peaks": {"type": "peak_response", "inputs": {"response": "cells", "stimulus": "pulses"}},
    },
}


def main() -> None:
    ds = testbench.run(GRAPH)  # in memory; output="some/store.zarr" would store it
    ttp = ds["time_to_peak"]
    print(f"time_to_peak [{ttp.attrs['units']}], mean over cells, per dt:")
    print(ttp.mean("cell").to_series().to_string())
    # the responses in steps are the same at both dt, so every time doubles with dt
    same = bool((ttp.sel(dt=1.0) == 2 * ttp.sel(dt=0.5)).all())
    print(f"time_to_peak scales with dt: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the analyzer ignored the swept dt")


if __name__ == "__main__":
    main()
