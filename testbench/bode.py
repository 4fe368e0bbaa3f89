"""Bode figure of every cell: gain and phase lag against the stimulus frequency, per network.

Reads the ``gain`` and ``phase_lag`` metrics of the ``frequency_response`` analyzer (and
``settling_time`` of ``step_response`` when present, to colour the cells) from a result dataset
with a frequency sweep, e.g. one written by ``testbench run graphs/bode.yaml``::

    import xarray as xr
    from testbench.bode import fig_bode
    fig_bode(xr.open_zarr("results/bode.zarr")).savefig("bode.png", dpi=120)

``testbench report`` shows it for every store holding ``gain`` and ``phase_lag`` over a
``frequency`` sweep (:func:`testbench.report.write_report`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from testbench.analysis import FREQUENCY_UNIT
from testbench.schema import CELL, METRIC, NETWORK
from testbench.report import ReportError, label, metrics_in_words, unit_suffix

_NETWORK_DIMS = (NETWORK,)


def _select(metrics: xr.DataArray, names: list[str], dim: str) -> xr.DataArray:
    """The named metrics, loaded, with dims (networks..., cell, metric, dim); errors say the fix."""
    have = [str(m) for m in metrics[METRIC].values]
    missing = [n for n in names if n not in have]
    if missing:
        raise ReportError(
            f"fig_bode: metrics {missing} not found (have: {', '.join(have)}); fix: run the "
            "'frequency_response' analyzer on a sine sweep (see graphs/bode.yaml), or pass the "
            "metric labels of your graph (e.g. gain='bode.gain')")
    if dim not in metrics.dims or metrics.sizes[dim] < 2:
        raise ReportError(
            f"fig_bode: metrics have dims {metrics.dims} without a '{dim}' sweep of 2 or more "
            f"points; fix: sweep the sine's frequency (see graphs/bode.yaml) or name the sweep "
            "dim with dim=...")
    extra = [d for d in metrics.dims
             if d not in (*_NETWORK_DIMS, CELL, METRIC, dim) and metrics.sizes[d] > 1]
    if extra:
        raise ReportError(
            f"fig_bode: metrics have further sweep dims {extra}; the figure shows one point of "
            f"each; fix: select one first, e.g. metrics.sel({extra[0]}=...)")
    squeeze = [d for d in metrics.dims if d not in (*_NETWORK_DIMS, CELL, METRIC, dim)]
    return metrics.sel(metric=names).squeeze(squeeze, drop=True).load()


def _unwrap(phase: np.ndarray) -> np.ndarray:
    """Phase in degrees made continuous along frequency (jumps of 360 removed), NaN kept."""
    out = phase.copy()
    ok = np.isfinite(phase)
    out[ok] = np.unwrap(phase[ok], period=360.0)
    return out


def fig_bode(metrics: xr.Dataset | xr.DataArray, *, gain: str = "gain",
             phase: str = "phase_lag", settling: str = "settling_time", dim: str = "frequency"):
    """Bode plot of every cell of every network: gain (log-log) and phase lag against frequency.

    One column per network (along ``network``, titled with its label), gain on top and
    phase lag below, one line per cell through the swept frequencies. When the metrics include
    ``settling``, the lines are coloured by it (one colour scale for the figure, grey for cells
    that never settle); otherwise by cell index. Cells that are all NaN (padding of a smaller
    network) are left out; non-positive gains do not show on the log axis. Each cell's phase lag
    is unwrapped along frequency for display (starting from its stored value in (-180, 180] at the
    lowest frequency, jumps of 360 degrees removed), so curves do not break at +-180.

    Parameters
    ----------
    metrics : xr.Dataset or xr.DataArray
        A result store (its metrics read with units in words: times in steps where the
        stimulus's dt is 1, see :func:`testbench.report.metrics_in_words`) or the table view
        ``(network, cell, metric, dim)`` of :func:`testbench.schema.metrics` (units as given),
        lazily opened or in memory; any other sweep dim of size 1.
    gain, phase, settling : str
        Metric labels of the gain (dimensionless or response per stimulus units), the phase lag
        (degree) and the settling time (time units; optional). Defaults ``gain``,
        ``phase_lag``, ``settling_time`` (prefixed by the node name, e.g. ``bode.gain``, when
        two analyzers of a graph return the same metric).
    dim : str
        The frequency sweep dim, in cycles per time unit, at least 2 points. Default
        ``frequency``. When ``settling`` also varies along it (it is broadcast there from a step
        stimulus that does not), its value at the first point is used.

    Returns
    -------
    matplotlib.figure.Figure
        Agg-backed figure with ``2 x networks`` axes plus a colour bar when ``settling`` exists.

    Raises
    ------
    ReportError
        When a metric or the frequency sweep is missing, or another sweep dim has several
        points.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.cm import ScalarMappable

    arr = metrics_in_words(metrics) if isinstance(metrics, xr.Dataset) else metrics
    has_settling = settling in [str(m) for m in arr[METRIC].values]
    arr = _select(arr, [gain, phase] + ([settling] if has_settling else []), dim)
    arr = arr if CELL in arr.dims else arr.expand_dims({CELL: [0]})
    stacked = arr if NETWORK in arr.dims else arr.expand_dims({NETWORK: ["network"]})
    order = np.argsort(stacked[dim].values)
    freq = stacked[dim].values[order].astype(np.float64)
    freq_unit = stacked[dim].attrs.get("units", FREQUENCY_UNIT)
    values = {name: stacked.sel(metric=name).transpose(NETWORK, CELL, ...).values
              for name in (gain, phase)}
    g_all, p_all = (values[n][..., order] for n in (gain, phase))
    networks = [k for k in range(g_all.shape[0]) if np.isfinite(g_all[k]).any()]
    if not networks:
        raise ReportError(f"fig_bode: every '{gain}' value is NaN; fix: check the run's "
                          "responses (a non-finite response gives NaN metrics)")
    cmap = colormaps["viridis"]
    times = None
    if has_settling:
        times = stacked.sel(metric=settling)
        times = (times.isel({dim: 0}) if dim in times.dims else times)
        times = times.transpose(NETWORK, CELL).values
        finite = times[np.isfinite(times)]
        norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0, 1))

    fig = Figure(figsize=(4.2 * len(networks), 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(networks), squeeze=False, sharex="col")
    for col, k in enumerate(networks):
        cells = np.flatnonzero(np.isfinite(g_all[k]).any(-1))
        for rank, cell in enumerate(cells):
            if times is None:
                color = cmap(rank / max(len(cells) - 1, 1))
            else:
                color = cmap(norm(times[k, cell])) if np.isfinite(times[k, cell]) else "0.6"
            axes[0, col].plot(freq, g_all[k, cell], "-", color=color, lw=0.8, alpha=0.8)
            axes[1, col].plot(freq, _unwrap(p_all[k, cell]), "-", color=color, lw=0.8, alpha=0.8)
        title = str(stacked[NETWORK].values[k])
        axes[0, col].set_title(title, fontsize=9)
        axes[0, col].set_xscale("log")
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylabel(f"gain (response / stimulus amplitude){unit_suffix(arr, gain)}")
        axes[1, col].axhline(0, color="0.7", lw=0.5)
        axes[1, col].set_ylabel(f"phase lag{unit_suffix(arr, phase) or ' [degree]'}")
        axes[1, col].set_xlabel(f"stimulus frequency [{freq_unit}]")
    if times is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(),
                     label=f"{label(settling)}{unit_suffix(arr, settling)} (grey: never settles)")
    fig.suptitle("Frequency response of every cell (Bode view)")
    return fig
