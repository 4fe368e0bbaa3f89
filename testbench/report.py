"""Reports from result stores: summary tables and the offline HTML reproduction report.

:func:`summary` / :func:`format_summary` give the Table-1-style mean ± std of every metric per
network that ``testbench show`` prints and the ``summary_table`` sink writes.

``testbench report RESULTS -o DIR`` (see :func:`add_report_command`) or :func:`write_report` reads a
store written by ``testbench run graphs/paper.yaml`` and writes ``DIR/index.html`` beside its
figures. Sections (paper numbering):

* Table 1: mean ± std over cells of settling time, delta response, amplitude, correlation and
  frequency for each dataset's ``table_size``-cell network, and the fractions of excitatory /
  inhibitory cells by the sign of delta response and of correlation;
* Figs. 2C-G, 3A-E: sorted distributions of every metric;
* Fig. 2B: hidden states of the MNIST network reading one test digit, cells sorted by settling time
  (needs the MNIST data; skipped with a note otherwise);
* Fig. 4 and predictive validity: ablation impact of cells sorted by delta response and by
  amplitude with a moving trend; Spearman/Kendall with bootstrap CIs, permutation p-values and
  top-k overlap (:mod:`testbench.validity`);
* Fig. 5 and capacity: each metric against network size with power-law fits
  (:mod:`testbench.capacity`).

Figures use matplotlib's Agg backend; the page references only files in ``DIR``.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from testbench import store as S
from testbench.analyzers._apply import FREQUENCY_UNIT, TIME_UNIT
from testbench.errors import TestbenchError

TABLE1_METRICS = ("settling_time", "delta_response", "amplitude", "correlation", "frequency")
TREND_METRICS = ("delta_response", "amplitude")
CAPACITY_FIT = ("amplitude", "settling_time")
TABLE_SIZE = 128
REPORT_FIX = ("fix: choose another folder (`testbench report STORE -o DIR`), e.g. a new one such as "
              "results/report2, or move the folder away yourself")


def summary(metrics: xr.DataArray) -> pd.DataFrame:
    """Mean and standard deviation over cells of each metric, per network and sweep point.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(..., cell, metric, ...)``; NaN (padding cells, undefined metrics) is skipped.

    Returns
    -------
    pd.DataFrame
        One row per combination of the remaining dims (e.g. dataset, network_size, frequency);
        columns ``(metric, stat)`` with stat in ``mean``, ``std`` (population std, ddof=0) and
        ``n`` (cells with a defined value).
    """
    metrics = metrics.load()
    stats = xr.concat(
        [metrics.mean("cell", skipna=True), metrics.std("cell", skipna=True),
         metrics.notnull().sum("cell").astype(float)],
        dim=pd.Index(["mean", "std", "n"], name="stat"),
    )
    keep = [c for c in stats.coords if c in stats.dims]
    stats = stats.reset_coords([c for c in stats.coords if c not in keep], drop=True)
    frame = stats.to_dataframe(name="value")["value"]
    rows = [d for d in stats.dims if d not in ("metric", "stat")]
    table = frame.unstack(["metric", "stat"]) if rows else frame.to_frame().T
    if not rows:
        table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "stat"])
    metric_order = list(map(str, metrics["metric"].values))
    table = table.reindex(columns=pd.MultiIndex.from_product([metric_order, ["mean", "std", "n"]],
                                                             names=["metric", "stat"]))
    return table


def format_summary(table: pd.DataFrame, *, markdown: bool = False) -> str:
    """Render :func:`summary` as ``mean ± std`` text (aligned columns, or a Markdown table)."""
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))

    def cell(row, m):
        mean, std = row[(m, "mean")], row[(m, "std")]
        return "n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.3g}"

    index_names = [str(n) for n in table.index.names if n is not None] or ["network"]
    header = index_names + metrics
    body = []
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        body.append([str(i) for i in idx][: len(index_names)] + [cell(row, m) for m in metrics])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


class ReportError(TestbenchError):
    """A store cannot be turned into the report (missing variables or dims)."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------------- words and units

#: How a name reads in titles, axis labels and tables where replacing ``_`` by a space is not enough;
#: every other name is shown with its underscores as spaces (:func:`label`).
LABELS = {"mae": "MAE", "network_size": "network size", "n_cells": "cells"}


def label(name: str) -> str:
    """A metric (or other) name as words for titles and labels: ``settling_time`` -> ``settling
    time``, ``|delta_response|`` -> ``|delta response|``, ``mae`` -> ``MAE``."""
    bare = name.strip("|")
    words = LABELS.get(bare, bare.replace("_", " "))
    return f"|{words}|" if name.startswith("|") else words


def _unit_words(unit: str, dt: float | None) -> str:
    """A stored unit as shown: empty when dimensionless; analyzer times in steps when dt = 1."""
    if unit in ("", "1"):
        return ""
    per, alone = ("per step", "steps") if dt == 1.0 else (f"per {TIME_UNIT}", f"{TIME_UNIT}s")
    return alone if unit == TIME_UNIT else unit.replace(f"per {TIME_UNIT}", per)


def _node_dt(settings: dict, node: str, seen: frozenset = frozenset()) -> float | None:
    """The sample interval of a node's records from the store's provenance: its own ``dt``
    setting (given, or the node type's default), else the one ``dt`` shared by all its inputs;
    None when swept, unknown (a ``module:function`` node is never imported here) or mixed."""
    from testbench.nodes import registry

    decl = settings.get(node)
    if not isinstance(decl, dict) or node in seen or "dt" in decl.get("sweep", {}):
        return None
    if "dt" in decl.get("settings", {}):
        return float(decl["settings"]["dt"])
    try:
        spec = registry().get(str(decl.get("type")))
    except TestbenchError:  # a broken plugin: the unit stays in time units
        spec = None
    if spec is not None and "dt" in spec.settings:
        return float(spec.settings["dt"].default)
    dts = {_node_dt(settings, src, seen | {node}) for src in decl.get("inputs", {}).values()}
    return dts.pop() if len(dts) == 1 else None


def metrics_in_words(ds: xr.Dataset) -> xr.DataArray:
    """``ds.metrics`` with units in words for figures: dimensionless metrics without a unit,
    analyzer times in ``steps`` (frequencies in ``cycles per step``) where the stimulus's ``dt``
    is 1 (read from the store's provenance), else in ``time units``.

    Parameters
    ----------
    ds : xr.Dataset
        A result store (lazy or loaded) with ``metrics`` and its ``units`` coordinate.

    Returns
    -------
    xr.DataArray
        ``ds.metrics`` (still lazy if it was) with the ``units`` coordinate replaced and, for a
        ``frequency`` sweep dim, a ``units`` attribute on its coordinate.
    """
    return _in_words(ds)["metrics"]


def _in_words(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the ``units`` coordinate of :func:`metrics_in_words`."""
    metrics = ds["metrics"]
    if "units" not in metrics.coords:
        return ds
    settings = json.loads(ds.attrs.get("settings", "{}") or "{}")
    names = [str(m) for m in metrics["metric"].values]
    units = [str(u) for u in np.asarray(metrics["units"].values)]
    nodes = ([str(a) for a in np.asarray(metrics["analyzer"].values)] if "analyzer" in metrics.coords
             else [None] * len(names))
    dts = {n: _node_dt(settings, a) if a else None for n, a in zip(names, nodes)}
    out = ds.assign_coords(units=("metric", [_unit_words(u, dts[n]) for n, u in zip(names, units)]))
    if "frequency" in metrics.dims:
        sweeps = [n for n, d in settings.items() if "frequency" in d.get("sweep", {})]
        dt = _node_dt(settings, sweeps[0]) if len(sweeps) == 1 else None
        unit = out["frequency"].attrs.get("units", FREQUENCY_UNIT)
        out = out.assign_coords(frequency=out["frequency"].assign_attrs(units=_unit_words(unit, dt)))
    return out


def unit_suffix(metrics: xr.DataArray, name: str) -> str:
    """`` [unit]`` of metric ``name`` from the ``units`` coordinate (lazy or not); empty when the
    metric is dimensionless or has no unit."""
    if "units" not in metrics.coords:
        return ""
    unit = str(np.asarray(metrics["units"].sel(metric=name).values))
    return "" if unit in ("", "1") else f" [{unit}]"


def axis_label(metrics: xr.DataArray, name: str) -> str:
    """``label [unit]`` of metric ``name``."""
    return label(name) + unit_suffix(metrics, name)


def _signed(metrics: xr.DataArray, name: str) -> bool:
    """True when the metric takes negative values (then ``|metric|`` differs from it)."""
    return bool((metrics.sel(metric=name) < 0).any())


# ------------------------------------------------------------------------ selecting a point

#: Dims every report section keeps; any other dim of ``metrics`` is a sweep to select.
REPORT_DIMS = ("dataset", "network_size", "cell", "metric")
#: The sweep the Bode figure shows whole (:func:`testbench.bode.fig_bode`).
BODE_DIM = "frequency"


def select_point(obj, sel: str):
    """``obj`` (a DataArray or Dataset) at one value of a dim, from ``DIM=VALUE`` (as printed).

    Parameters
    ----------
    obj : xr.DataArray or xr.Dataset
        Data with a coordinate along ``DIM``.
    sel : str
        ``DIM=VALUE``: VALUE is compared as a number on a numeric coordinate, else as text.

    Returns
    -------
    xr.DataArray or xr.Dataset
        ``obj`` at that value, without the dim (its value stays as a scalar coordinate).

    Raises
    ------
    TestbenchError
        ``sel`` is not ``DIM=VALUE``, the dim does not exist, or the value is not on its grid
        (with the nearest value or a did-you-mean, and the valid values).
    """
    from testbench.errors import did_you_mean

    dim, eq, value = sel.partition("=")
    dims = ", ".join(map(str, obj.dims))
    if not eq or not dim:
        raise TestbenchError(f"--sel {sel!r}: expected DIM=VALUE; fix: e.g. --sel frequency=0.1 "
                             f"(dimensions: {dims})")
    if dim not in obj.dims:
        raise TestbenchError(f"--sel {sel}: no dimension '{dim}'; {did_you_mean(dim, obj.dims)} "
                             f"fix: use one of: {dims}")
    values = obj[dim].values
    numeric = values.dtype.kind in "iuf"
    try:
        wanted = float(value) if numeric else value
    except ValueError:
        wanted = None
    hits = [i for i, v in enumerate(values) if (float(v) if numeric else str(v)) == wanted]
    if not hits:
        if numeric and wanted is not None:
            close = f"nearest: {values[abs(values.astype(float) - wanted).argmin()]}; "
        else:
            close = did_you_mean(value, map(str, values))
            close = f"{close} " if close.startswith("did you mean") else ""
        raise TestbenchError(f"--sel {sel}: {value!r} is not a value of '{dim}'; {close}fix: use one "
                             f"of: {_shown(values)}")
    return obj.isel({dim: hits[0]})


def _shown(values, limit: int = 20) -> str:
    return ", ".join(map(str, values[:limit])) + (", ..." if len(values) > limit else "")


def _check(ds: xr.Dataset, store) -> None:
    if "metrics" not in ds:
        raise ReportError(f"'{store}' holds no 'metrics' variable (has: {', '.join(ds.data_vars)}); "
                          "fix: run graphs/paper.yaml (or any graph with step/sine analyzers)")
    missing = [d for d in REPORT_DIMS if d not in ds.metrics.dims]
    if missing:
        raise ReportError(f"'{store}': metrics lack dims {missing}; fix: characterize zoo networks "
                          "(their metadata names the dataset) and do not --sel those dims")


def _swept(metrics: xr.DataArray) -> list[str]:
    return [d for d in metrics.dims if d not in REPORT_DIMS and metrics.sizes[d] > 1]


def _has_bode(metrics: xr.DataArray) -> bool:
    names = {str(m) for m in metrics["metric"].values}
    return {"gain", "phase_lag"} <= names and metrics.sizes.get(BODE_DIM, 0) >= 2


def _sweep_text(metrics: xr.DataArray, swept: list[str]) -> tuple[str, str]:
    """The swept dims with their values, and a ``--sel`` example picking the first of each."""
    listed = "; ".join(f"{d} ({metrics.sizes[d]} values: {_shown(metrics[d].values, 8)})"
                       for d in swept)
    return listed, " ".join(f"--sel {d}={metrics[d].values[0]}" for d in swept)


def _sweep_error(store, metrics: xr.DataArray, swept: list[str]) -> ReportError:
    listed, example = _sweep_text(metrics, swept)
    return ReportError(f"'{store}': metrics are swept along {listed}; the report's tables and "
                       "figures show one point of each sweep; fix: choose one with --sel, e.g. "
                       f"`testbench report {store} {example}` (write_report(..., sel=[...]) in "
                       "Python)")


# ------------------------------------------------------------------------------------- tables


def table1(metrics: xr.DataArray, *, size: int = TABLE_SIZE,
           names: tuple[str, ...] = TABLE1_METRICS) -> pd.DataFrame:
    """Table 1: ``mean ± std`` over cells of each metric for every dataset's ``size``-cell network.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(dataset, network_size, cell, metric)``.
    size : int
        Network size of the table. Default 128.
    names : tuple of str
        Metrics (columns).

    Returns
    -------
    pd.DataFrame
        Index dataset; columns ``(metric, stat)`` with stat ``mean``, ``std``, ``n``
        (:func:`summary`).
    """
    names = [n for n in names if n in metrics["metric"].values]
    return summary(metrics.sel(network_size=size, metric=names))


def flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` for a CSV with one header row: ``(metric, stat)`` columns joined as
    ``metric_stat``, and count columns (``n``, ``top_k``, ``n_points``, ``*_n``) as integers."""
    out = table.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = ["_".join(map(str, c)) for c in out.columns]
    for column in out.columns:
        if column in ("n", "top_k", "n_points") or str(column).endswith("_n"):
            out[column] = out[column].astype("Int64")
    return out


def sign_fractions(metrics: xr.DataArray, *, size: int = TABLE_SIZE) -> pd.DataFrame:
    """Fractions of excitatory (> 0) and inhibitory (< 0) cells by delta response and correlation.

    Returns
    -------
    pd.DataFrame
        Index dataset; columns ``delta_response excitatory``, ``... inhibitory`` and the same for
        ``correlation``: fractions of the cells with a defined value, in [0, 1].
    """
    out = {}
    for name in ("delta_response", "correlation"):
        m = metrics.sel(network_size=size, metric=name)
        n = m.notnull().sum("cell")
        out[f"{name} excitatory"] = ((m > 0).sum("cell") / n).to_series()
        out[f"{name} inhibitory"] = ((m < 0).sum("cell") / n).to_series()
    return pd.DataFrame(out)


def _table1_html(t1: pd.DataFrame, fr: pd.DataFrame, metrics: xr.DataArray) -> str:
    rows = {}
    for d, row in t1.iterrows():
        rows[d] = {axis_label(metrics, m): (f"{row[(m, 'mean')]:.4g} ± {row[(m, 'std')]:.3g}"
                                            if np.isfinite(row[(m, 'mean')]) else "n/a")
                   for m in dict.fromkeys(t1.columns.get_level_values(0))}
        rows[d].update({label(k): f"{v:.0%}" for k, v in fr.loc[d].items()})
    return pd.DataFrame(rows).T.to_html(classes="t", border=0)


def ablation_metrics(ds: xr.Dataset) -> xr.DataArray:
    """The ablation variables of a store as one array along ``metric`` (``ablation_error``,
    ``ablation_impact``), for :func:`summary`; the ``mode`` dim, if any, kept."""
    names = [v for v in ("ablation_error", "ablation_impact") if v in ds]
    return xr.concat([ds[v].reset_coords(drop=True) for v in names],
                     dim=pd.Index(names, name="metric"))


def format_ablation(ds: xr.Dataset, store, *, markdown: bool = False) -> str:
    """``testbench show`` of a store holding ablation results: test error with each cell knocked
    out and its impact (knocked-out minus intact), mean ± std over cells per network (and
    knock-out mode), the intact errors and the error units per dataset."""
    table = summary(S.load(ablation_metrics(ds), store))
    lines = [format_summary(table, markdown=markdown), ""]
    if "ablation_intact" in ds:
        intact = S.load(ds["ablation_intact"], store).to_series().dropna()
        lines.append("intact test error: " + ", ".join(
            f"{'/'.join(map(str, k)) if isinstance(k, tuple) else k}: {v:.4g}"
            for k, v in intact.items()))
    if "error_metric" in ds.coords and "error_units" in ds.coords:
        errors = S.load(ds[["error_metric", "error_units"]].reset_coords(), store)
        lines.append("errors: " + ", ".join(
            f"{d}: {label(str(m))}{f' [{u}]' if str(u) not in ('', '1') else ''}"
            for d, m, u in zip(errors["dataset"].values, errors["error_metric"].values,
                               errors["error_units"].values)))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ figures

#: Metrics of Fig. 5. Not ``frequency``: the response frequency of a cell driven by a sine is the
#: stimulus frequency, the same for every network, so its scaling with size says nothing.
CAPACITY_METRICS = ("settling_time", "delta_response", "amplitude", "correlation")


def fig_sorted(metrics: xr.DataArray, *, size: int = TABLE_SIZE):
    """Figs. 2C-G / 3A-E: each metric's values over the ``size``-cell networks, sorted ascending.

    ``metrics``: dims ``(dataset, network_size, cell, metric)``, lazy or loaded; returns a
    matplotlib figure with one panel per metric, titled in words with the metric's unit.
    """
    plt = _plt()
    metrics = metrics.sel(network_size=size).load()
    names = [str(m) for m in metrics["metric"].values]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        for d in metrics["dataset"].values:
            v = metrics.sel(dataset=d, metric=name).values
            v = np.sort(v[np.isfinite(v)])
            ax.plot(np.arange(len(v)), v, ".-", ms=2, lw=1, label=str(d))
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_title(axis_label(metrics, name), fontsize=9)
        ax.set_xlabel("cell rank (ascending)")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Sorted metric distributions, {size}-cell networks")
    return fig


def _error_label(impact: xr.DataArray, dataset) -> str:
    """``Δ test <error metric> [unit]`` of one dataset's ablation impact."""
    at = impact.sel(dataset=dataset)
    metric = str(np.asarray(at["error_metric"].values)) if "error_metric" in at.coords else "error"
    unit = str(np.asarray(at["error_units"].values)) if "error_units" in at.coords else ""
    return f"Δ test {label(metric)}{f' [{unit}]' if unit not in ('', '1') else ''}"


def fig_trend(metrics: xr.DataArray, impact: xr.DataArray, *, metric: str, window: int = 15):
    """Fig. 4: ablation impact of the cells sorted by ``metric``, moving mean ± moving std.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(dataset, network_size, cell, metric)``, lazy or loaded.
    impact : xr.DataArray
        ``ablation_impact`` at one knock-out mode ``(dataset, network_size, cell)``; its ``mode``
        (a scalar coordinate, or the ``mode`` attribute) is shown in the titles, its
        ``error_metric`` / ``error_units`` coordinates in the axis labels.
    metric : str
        Metric that orders the cells.
    window : int
        Cells per moving window, >= 1.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per dataset with ablated networks; each cell's impact is a thin vertical line
        (no two overlap at any number of cells).
    """
    from testbench.validity import moving_trend

    plt = _plt()
    metrics, impact = metrics.load(), impact.load()
    if "mode" in impact.coords and impact["mode"].ndim == 0:
        mode = str(impact["mode"].values)
    else:
        mode = impact.attrs.get("mode")
    datasets = [d for d in impact["dataset"].values if np.isfinite(impact.sel(dataset=d)).any()]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.4), squeeze=False,
                             layout="constrained")
    for ax, d in zip(axes.flat, datasets):
        y = impact.sel(dataset=d)
        size = int(y["network_size"].values[np.isfinite(y).any("cell").values][0])
        frame = moving_trend(metrics.sel(dataset=d, network_size=size, metric=metric).values,
                             y.sel(network_size=size).values, window=window)
        pos = np.arange(len(frame))
        ax.vlines(pos, 0, frame["impact"], color="0.55", lw=0.6, label="cell")
        ax.plot(pos, frame["trend"], color="C3", label=f"moving mean ({window} cells)")
        ax.fill_between(pos, frame["trend"] - frame["spread"], frame["trend"] + frame["spread"],
                        color="C3", alpha=0.2, lw=0, label="± moving std")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{d}, {size} cells" + (f", {mode} knock-out" if mode else ""), fontsize=9)
        ax.set_xlabel(f"cells sorted by {label(metric)} (ascending)")
        ax.set_ylabel(_error_label(impact, d))
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    return fig


def fig_capacity(metrics: xr.DataArray, fits: pd.DataFrame):
    """Fig. 5: mean ± std over cells of each metric of :data:`CAPACITY_METRICS` (its magnitude
    ``|metric|`` where it takes negative values) against network size, per dataset; log-log axes
    and fitted power laws for :data:`CAPACITY_FIT`. The legend sits outside the panels."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    from testbench.capacity import size_statistics

    plt = _plt()
    metrics = metrics.load()
    stats = size_statistics(metrics)
    names = [n for n in CAPACITY_METRICS if n in metrics["metric"].values]
    datasets = [str(d) for d in metrics["dataset"].values]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 1.6, 3.4), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        fitted = False
        for k, d in enumerate(datasets):
            mean = stats["mean"].sel(dataset=d, metric=name)
            std = stats["std"].sel(dataset=d, metric=name)
            N = mean["network_size"].values
            lower = np.minimum(std, 0.9 * mean) if name in CAPACITY_FIT else std  # log axes: > 0
            ax.errorbar(N, mean, yerr=[lower, std], fmt="o", ms=3, capsize=2, color=f"C{k}")
            if name in CAPACITY_FIT and (d, name) in fits.index:
                f = fits.loc[(d, name)]
                if np.isfinite(f["exponent"]):
                    grid = np.geomspace(N.min(), N.max(), 20)
                    ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "-", color=f"C{k}", lw=1)
                    fitted = True
        if name in CAPACITY_FIT:
            ax.set_xscale("log")
            ax.set_yscale("log")
            sizes = metrics["network_size"].values
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
        shown = f"|{name}|" if _signed(metrics, name) else name
        ax.set_title(label(shown) + unit_suffix(metrics, name)
                     + ("\n(lines: power-law fits)" if fitted else ""), fontsize=9)
        ax.set_xlabel("network size N (cells)")
    axes.flat[0].set_ylabel("mean ± std over cells")
    handles = [Line2D([], [], color=f"C{k}", marker="o", ms=4, ls="-", lw=1, label=d)
               for k, d in enumerate(datasets)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="dataset",
               title_fontsize=8)
    return fig


def _network_source(ds: xr.Dataset, dataset: str, size: int) -> str | None:
    """The weights source of a characterized network, from the store's provenance."""
    for entries in json.loads(ds.attrs.get("weights", "{}")).values():
        for e in entries:
            if e.get("dataset") == dataset and int(e.get("network_size", -1)) == size:
                return e["source"]
    return None


def fig_heatmap(metrics: xr.DataArray, source: str, *, data_dir=None, digit_index: int = 0):
    """Fig. 2B: hidden outputs of the MNIST network (in the network) reading one test digit.

    Parameters
    ----------
    metrics : xr.DataArray
        Used for the settling time of the network's cells (sort order; never-settling cells last).
    source : str
        Weights of an MNIST network (row variant).
    data_dir : str or Path, optional
        Data folder.
    digit_index : int
        Index of the test image, >= 0.

    Returns
    -------
    matplotlib.figure.Figure
        The digit (titled with its class and test-image index) and the hidden state ``h_t``
        (time step x cell) with a labelled colour bar.
    """
    from testbench.kernels.network import forward
    from testbench import data as D
    from testbench import weights as W

    plt = _plt()
    net = W.load(source)
    test = D.load("mnist", variant=net.metadata.get("variant", "row"), data_dir=data_dir).test
    x = test.x[digit_index:digit_index + 1]
    layers = [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]
    h = forward(net.cell_type, layers, None, None, x, readout_mode="every")[0]  # (T, N)
    settle = metrics.sel(dataset=str(net.metadata["dataset"]), network_size=net.hidden_size,
                         metric="settling_time").values[:net.hidden_size]
    order = np.argsort(np.where(np.isfinite(settle), settle, np.inf), kind="stable")
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 3]},
                                 layout="constrained")
    a0.imshow(x[0], cmap="gray_r")
    a0.set_title(f"digit {int(test.y[digit_index])} (test image #{digit_index})", fontsize=9)
    a0.set_xlabel("pixel (input channel)")
    a0.set_ylabel("row (time step)")
    im = a1.imshow(h[:, order].T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                   extent=(0.5, h.shape[0] + 0.5, len(order) - 0.5, -0.5))
    a1.set_xlabel("time step (image row)")
    a1.set_ylabel("cell, sorted by settling time (fast → slow)")
    a1.set_title(f"hidden state $h_t$ of {net.metadata.get('name', source)}", fontsize=9)
    fig.colorbar(im, ax=a1, label="hidden state $h_t$")
    return fig


# ------------------------------------------------------------------------------------- report


def _fmt_validity(table: pd.DataFrame) -> pd.DataFrame:
    """The validity table as shown: words, ``n/a`` (never ``nan``) with the reason in ``note``."""
    def num(v, spec: str) -> str:
        return format(v, spec) if np.isfinite(v) else "n/a"

    def corr(r, name) -> str:
        if not np.isfinite(r[name]):
            return "n/a"
        lo, hi = r[f"{name}_lo"], r[f"{name}_hi"]
        interval = f"[{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "[n/a]"
        return f"{r[name]:+.2f} {interval}"

    def p(r, column) -> str:
        return (f"{num(r[column], '.3g')} ({num(r[f'{column}_holm'], '.2g')}, "
                f"{num(r[f'{column}_bh'], '.2g')})")

    def overlap(r) -> str:
        if not np.isfinite(r["overlap"]):
            return "n/a"
        return f"{r['overlap']:.0%} ({r['overlap_random']:.0%})"

    out = pd.DataFrame({
        "n": table["n"].astype("Int64"),
        "Spearman ρ [95% CI]": table.apply(corr, axis=1, name="spearman"),
        "Kendall τ [95% CI]": table.apply(corr, axis=1, name="kendall"),
        "failed resamples ρ / τ": table.apply(
            lambda r: f"{num(r['spearman_failed'], '.1%')} / {num(r['kendall_failed'], '.1%')}",
            axis=1),
        "p perm. (Holm, BH)": table.apply(p, axis=1, column="p_perm"),
        "top-k overlap (random)": table.apply(overlap, axis=1),
        "p overlap (Holm, BH)": table.apply(p, axis=1, column="p_overlap"),
        "note": table["note"].fillna(""),
    })
    out.index = out.index.set_levels([label(str(m)) for m in out.index.levels[-1]], level=-1)
    out.index = out.index.set_names([label(str(n)) if n != "mode" else "knock-out"
                                     for n in out.index.names])
    return out


def _validity_input(metrics: xr.DataArray, impact: xr.DataArray) -> xr.Dataset:
    """Metrics for the validity table: each Table-1 metric and, only where it takes negative
    values, its magnitude ``|metric|`` (for a non-negative metric the two rows would repeat)."""
    parts, names = [], []
    for name in TABLE1_METRICS:
        if name in metrics["metric"].values:
            values = metrics.sel(metric=name, drop=True)
            parts.append(values)
            names.append(name)
            if _signed(metrics, name):
                parts.append(abs(values))
                names.append(f"|{name}|")
    stacked = xr.concat(parts, dim=pd.Index(names, name="metric"), coords="minimal",
                        compat="override")
    return xr.Dataset({"metrics": stacked.reset_coords(drop=True), "ablation_impact": impact})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; line-height: 1.4; }}
table.t {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
table.t td, table.t th {{ border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
.note {{ color: #855; }}
</style></head><body>
<h1>{title}</h1>
<p>Store: <code>{store}</code>{point}; created {created}; testbench {version}.</p>
{sections}
</body></html>
"""


class _Page:
    """The sections of the page and the files of the report folder (through the ledger)."""

    def __init__(self, out: Path):
        self.out, self.sections = out, []

    def add(self, text: str) -> None:
        self.sections.append(text)

    def note(self, text: str) -> None:
        self.sections.append(f"<p class='note'>{html.escape(text)}</p>")

    def save(self, name: str, data: str | bytes) -> None:
        S.write_file(self.out / name, data.encode() if isinstance(data, str) else data,
                     "report file", REPORT_FIX)

    def figure(self, fig, name: str, caption: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        _plt().close(fig)
        self.save(name, buffer.getvalue())
        self.add(f"<figure><img src='{name}' alt='{html.escape(caption)}'>"
                 f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _section_table1(page: _Page, ds, metrics, *, size: int, data_dir) -> None:
    if size not in metrics["network_size"].values:
        page.note(f"No {size}-cell networks: Table 1 skipped.")
        return
    t1 = table1(metrics, size=size)
    page.save("table1.csv", flat_columns(t1).to_csv())
    fr = sign_fractions(metrics, size=size)
    page.save("sign_fractions.csv", fr.to_csv())
    page.add(f"<h2>Table 1: metrics of the {size}-cell networks (mean ± std over cells)</h2>"
             + _table1_html(t1, fr, metrics))
    page.figure(fig_sorted(metrics, size=size), "fig2_3_sorted.png",
                "Figs. 2C-G, 3A-E: sorted distributions of every metric")
    source = _network_source(ds, "mnist", size)
    page.add("<h2>Fig. 2B: hidden state reading one MNIST digit</h2>")
    if source is None:
        page.note(f"skipped: no {size}-cell MNIST network in this store")
        return
    try:
        page.figure(fig_heatmap(metrics, source, data_dir=data_dir), "fig2b_heatmap.png",
                    "Fig. 2B: in-network hidden outputs, cells sorted by isolated settling time")
    except TestbenchError as exc:
        page.note(f"skipped: {exc}")


def _section_validity(page: _Page, ds, metrics, store, *, n_boot, n_perm, top_k, window) -> None:
    from testbench.validity import validity_table

    if "ablation_impact" not in ds:
        page.note("No ablation in this store: validity and Fig. 4 skipped (run graphs/paper.yaml).")
        return
    impact = S.load(ds["ablation_impact"], store)
    page.add("<h2>Predictive validity: response metrics against ablation impact</h2>"
             "<p>Impact = test error with the cell knocked out minus intact error "
             "(misclassification rate, or MAE in the dataset's units). CIs: percentile "
             f"bootstrap over cells ({n_boot} resamples; the fraction of resamples that drew only "
             "tied cells is given, and the interval is n/a when it exceeds 2.5 %); p: permutation "
             f"test of ρ ({n_perm} permutations); top-k overlap with k = {top_k} against a random "
             "ranking (expected k/n), hypergeometric p. In parentheses: p adjusted over the whole "
             "table by Holm (family-wise error) and Benjamini-Hochberg (false discovery rate). "
             "|metric| rows only for metrics that take negative values.</p>")
    if "ablation_intact" in ds:
        intact = S.load(ds["ablation_intact"], store).to_series().dropna()
        page.add("<p>Intact test errors: " + html.escape(", ".join(
            f"{k if isinstance(k, str) else '/'.join(map(str, k))}: {v:.4g}"
            for k, v in intact.items())) + "</p>")
    table = validity_table(_validity_input(metrics, impact), magnitude=False, n_boot=n_boot,
                           n_perm=n_perm, top_k=top_k)
    page.save("validity.csv", flat_columns(table).to_csv())
    page.add(_fmt_validity(table).to_html(classes="t", border=0))
    modes = [str(m) for m in impact["mode"].values] if "mode" in impact.dims else [None]
    for mode in modes:
        imp = impact.sel(mode=mode) if mode is not None else impact
        for metric in TREND_METRICS:
            if metric in metrics["metric"].values:
                tag = f"_{mode}" if mode is not None else ""
                knock = f", {mode} knock-out" if mode is not None else ""
                page.figure(fig_trend(metrics, imp, metric=metric, window=window),
                            f"fig4_{metric}{tag}.png",
                            f"Fig. 4: ablation impact{knock} of cells sorted by {label(metric)}")


def _section_capacity(page: _Page, metrics) -> None:
    from testbench.capacity import capacity_table

    if metrics.sizes["network_size"] < 3:
        return
    fits = capacity_table(metrics)
    page.save("capacity.csv", flat_columns(fits).to_csv())
    page.add("<h2>Fig. 5: capacity (metric against network size)</h2>"
             "<p>Power law |metric| mean over cells = a·N<sup>b</sup>, least squares in "
             "log-log, 95% t-interval of b.</p>")
    show = fits.loc[fits.index.get_level_values("metric").isin(CAPACITY_METRICS)]
    show = show.apply(lambda r: pd.Series({
        "b [95% CI]": (f"{r['exponent']:+.2f} [{r['exponent_lo']:+.2f}, {r['exponent_hi']:+.2f}]"
                       if np.isfinite(r["exponent"]) else "n/a"),
        "R²": f"{r['r2']:.2f}" if np.isfinite(r["r2"]) else "n/a",
        "sizes": int(r["n_points"])}), axis=1)
    show.index = show.index.set_levels([label(str(m)) for m in show.index.levels[-1]], level=-1)
    page.add(show.to_html(classes="t", border=0))
    page.figure(fig_capacity(metrics, fits), "fig5_capacity.png",
                "Fig. 5: mean ± std over cells of each metric against network size")


def write_report(store: str | Path, out_dir: str | Path, *, data_dir=None, size: int = TABLE_SIZE,
                 sel: list[str] | tuple[str, ...] = (), n_boot: int = 1000, n_perm: int = 2000,
                 top_k: int = 10, window: int = 15) -> Path:
    """Write the reproduction report of a result store: ``out_dir/index.html`` and PNG figures.

    Parameters
    ----------
    store : str or Path
        Result store (zarr) with ``metrics`` (dataset, network_size, cell, metric) and, for the
        ablation sections, ``ablation_impact`` (from ``graphs/paper.yaml``).
    out_dir : str or Path
        Output folder (created): absent, empty, or holding only files testbench wrote there,
        unchanged (its ledger ``.testbench-files.json`` records their sha256); anything else is
        refused before the store is read.
    data_dir : str or Path, optional
        Data folder for Fig. 2B (the MNIST digit); default ``$TESTBENCH_DATA`` or
        ``~/.cache/testbench``. Without the data the figure is skipped with a note.
    size : int
        Network size of Table 1, the sorted distributions and the validity tables. Default 128.
    sel : list of str
        ``DIM=VALUE`` selections (:func:`select_point`), one per sweep dim of a swept store: the
        report shows that point. The Bode figure (a store with ``gain`` and ``phase_lag`` over a
        ``frequency`` sweep) always shows the whole frequency sweep; when ``frequency`` is the
        only sweep left unselected, the page holds the Bode figure and says how to select a
        point for the other sections. Default none.
    n_boot, n_perm, top_k : int
        Bootstrap resamples, permutations and k of the validity statistics (>= 1).
    window : int
        Cells per moving window of Fig. 4, >= 1.

    Returns
    -------
    Path
        The written ``index.html``.

    Raises
    ------
    ReportError
        The store lacks ``metrics`` or has sweep dims that ``sel`` does not select.
    TestbenchError
        A ``sel`` item that is not ``DIM=VALUE`` of the store's grid.
    OutputError
        ``out_dir`` holds files testbench did not write or is protected (checked before the store is
        read; see :func:`testbench.store.check_folder`), or the store cannot be read.
    """
    out = S.check_folder(out_dir, "report folder", REPORT_FIX)
    ds = S.open_store(str(store))
    _check(ds, store)
    whole = _in_words(ds)
    point = whole
    for item in sel:
        point = select_point(point, item)
    _check(point, store)
    swept = _swept(point.metrics)
    bode = whole
    for item in sel:
        if item.partition("=")[0] != BODE_DIM:
            bode = select_point(bode, item)
    if swept and not (swept == [BODE_DIM] and _has_bode(bode.metrics)):
        raise _sweep_error(store, point.metrics, swept)
    page = _Page(out)
    if _has_bode(bode.metrics):
        _section_bode(page, bode.metrics, store)
    if swept:
        listed, example = _sweep_text(point.metrics, swept)
        page.note(f"The tables and the other figures show one point of each sweep; this store is "
                  f"swept along {listed}. To see them, choose one with --sel, e.g. `testbench "
                  f"report {store} {example}`.")
    else:
        metrics = S.load(point.metrics.squeeze([d for d in point.metrics.dims
                                                if d not in REPORT_DIMS], drop=True), store)
        point = point.assign(metrics=metrics)
        _section_table1(page, point, metrics, size=size, data_dir=data_dir)
        _section_validity(page, point, metrics, store, n_boot=n_boot, n_perm=n_perm, top_k=top_k,
                          window=window)
        _section_capacity(page, metrics)
    from testbench import __version__

    at = "".join(f" at <code>{html.escape(s)}</code>" for s in sel)
    text = PAGE.format(title="Response characterization: reproduction report",
                       store=html.escape(str(store)), point=at,
                       created=html.escape(str(ds.attrs.get("created_utc", "?"))),
                       version=html.escape(str(__version__)), sections="\n".join(page.sections))
    page.save("index.html", text)
    return out / "index.html"


def _section_bode(page: _Page, metrics: xr.DataArray, store) -> None:
    from testbench.bode import fig_bode

    page.add("<h2>Bode view: gain and phase lag of every cell against frequency</h2>")
    page.figure(fig_bode(S.load(metrics, store), dim=BODE_DIM), "bode.png",
                "Bode view: gain and phase lag of every cell over the frequency sweep, coloured "
                "by settling time")


def add_report_command(subparsers) -> None:
    """Add ``testbench report RESULTS -o DIR`` to the CLI's argparse sub-parsers."""
    p = subparsers.add_parser("report", help="write the HTML reproduction report of a result store",
                              description="Write the reproduction report of a result store: "
                                          "DIR/index.html with its tables (CSV) and figures (PNG).")
    p.add_argument("store", help="result store (zarr) written by `testbench run`, e.g. "
                                 "results/paper.zarr")
    p.add_argument("-o", "--output", default="results/report",
                   help="output folder: new, empty, or one testbench wrote before "
                        "(default: %(default)s)")
    p.add_argument("--sel", action="append", default=[], metavar="DIM=VALUE",
                   help="report a swept store at one point of a sweep dim, e.g. --sel "
                        "frequency=0.05; repeatable, one per sweep dim (default: none; a swept "
                        "store without it is refused, with its dims and values)")
    p.add_argument("--data-dir", default=None,
                   help="data folder for Fig. 2B (default: $TESTBENCH_DATA or ~/.cache/testbench)")
    p.add_argument("--size", type=int, default=TABLE_SIZE,
                   help="network size of Table 1 and Figs. 2-4 (default: %(default)s)")

    def run(args) -> int:
        path = write_report(args.store, args.output, data_dir=args.data_dir, size=args.size,
                            sel=args.sel)
        print(f"wrote {path}")
        return 0

    p.set_defaults(func=run)
