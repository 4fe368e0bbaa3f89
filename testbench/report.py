"""Reports from result stores: summary tables and the offline HTML reproduction report.

:func:`summary` / :func:`format_summary` give the Table-1-style mean ± std of every metric per
network that ``testbench show`` prints and the ``summary_table`` sink writes
(:func:`flat_columns` for CSV); :func:`format_ablation` is ``show`` of a store of ablation results.

``testbench report RESULTS -o DIR [--sel DIM=VALUE ...]`` or
:func:`write_report` reads a store written by ``testbench run graphs/paper.yaml`` and writes
``DIR/index.html`` beside its figures (PNG) and tables (CSV, one header row). A swept store is
reported at one point of each sweep (``--sel``, :func:`select_point`). Sections (paper numbering):

* Table 1: mean ± std over cells of settling time, delta response, amplitude, correlation and
  frequency for each ``size``-cell network (default 128), and the fractions of excitatory /
  inhibitory cells by the sign of delta response and of correlation; and Table 1 beside the
  paper's (:func:`table1_beside_paper`: its values quoted, ours in its units, untrained controls
  and seeds as rows);
* Figs. 2C-G, 3A-E: sorted distributions of every metric;
* Fig. 2B: hidden states of the MNIST network reading one test digit, cells sorted by settling time
  (needs the MNIST data; skipped with a note otherwise);
* Fig. 4 and predictive validity: ablation impact of cells ranked by delta response and by
  amplitude with the paper's 23-cell moving average, the metric on a right-hand axis and a
  permutation band (:func:`fig_trend`), per knock-out mode; Spearman/Kendall with bootstrap CIs,
  permutation p-values, top-k overlap and Holm / Benjamini-Hochberg adjusted p-values
  (:mod:`testbench.validity`);
* Fig. 5 and capacity: each metric against network size with power-law fits
  (:mod:`testbench.capacity`);
* Bode view, when the store holds ``gain`` and ``phase_lag`` over a ``frequency`` sweep
  (:func:`testbench.bode.fig_bode`).

Names read as words (:func:`label`, one table :data:`LABELS`) and units as the store gives them,
with analyzer times in steps where the stimulus's dt is 1 (:func:`metrics_in_words`). Figures use
matplotlib's Agg backend and accept lazily opened stores; the page references only files in
``DIR``.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from testbench import schema
from testbench import store as S
from testbench.analysis import FREQUENCY_UNIT, TIME_UNIT
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
        One row per combination of the remaining dims (e.g. network, frequency);
        columns ``(metric, stat)`` with stat in ``mean``, ``std`` (population std, ddof=0) and
        ``n`` (cells with a defined value).
    """
    metrics = metrics.load()
    stats = xr.concat(
        [metrics.mean(schema.CELL, skipna=True), metrics.std(schema.CELL, skipna=True),
         metrics.notnull().sum(schema.CELL).astype(float)],
        dim=pd.Index(["mean", "std", "n"], name="stat"),
    )
    keep = [c for c in stats.coords if c in stats.dims]
    stats = stats.reset_coords([c for c in stats.coords if c not in keep], drop=True)
    frame = stats.to_dataframe(name="value")["value"]
    rows = [d for d in stats.dims if d not in (schema.METRIC, "stat")]
    table = frame.unstack([schema.METRIC, "stat"]) if rows else frame.to_frame().T
    if not rows:
        table.columns = pd.MultiIndex.from_tuples(table.columns, names=[schema.METRIC, "stat"])
    metric_order = list(map(str, metrics[schema.METRIC].values))
    table = table.reindex(columns=pd.MultiIndex.from_product([metric_order, ["mean", "std", "n"]],
                                                             names=[schema.METRIC, "stat"]))
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
    """The metrics of a store (:func:`testbench.schema.metrics`) with units in words for figures:
    dimensionless metrics without a unit, analyzer times in ``steps`` (frequencies in ``cycles
    per step``) where the stimulus's ``dt`` is 1 (read from the store's provenance), else in
    ``time units``.

    Parameters
    ----------
    ds : xr.Dataset
        A result store (lazy or loaded) with metric variables.

    Returns
    -------
    xr.DataArray
        Dims ``(network, cell, metric, *sweeps)``, still lazy if ``ds`` was, with the ``units``
        coordinate in words and, for a ``frequency`` sweep dim, a ``units`` attribute in words on
        its coordinate.
    """
    metrics = schema.metrics(ds)
    settings = json.loads(ds.attrs.get("settings", "{}") or "{}")
    names = [str(m) for m in metrics[schema.METRIC].values]
    units = [str(u) for u in np.asarray(metrics[schema.UNITS].values)]
    nodes = [str(a) for a in np.asarray(metrics[schema.ANALYZER].values)]
    words = [_unit_words(u, _node_dt(settings, a) if a else None) for u, a in zip(units, nodes)]
    out = metrics.assign_coords({schema.UNITS: (schema.METRIC, words)})
    if BODE_DIM in out.dims:
        sweeps = [n for n, d in settings.items() if BODE_DIM in d.get("sweep", {})]
        dt = _node_dt(settings, sweeps[0]) if len(sweeps) == 1 else None
        unit = _unit_words(out[BODE_DIM].attrs.get("units", FREQUENCY_UNIT), dt)
        out = out.assign_coords({BODE_DIM: out[BODE_DIM].assign_attrs(units=unit)})
    return out


def plain_labels(metrics: xr.DataArray, settings: dict) -> xr.DataArray:
    """Metrics labelled for the report when analyzers share metric names.

    The store labels every metric of a name that two analyzers produce ``<node>.<metric>``
    (:func:`testbench.schema.metric_labels`). Here the first analyzer of each such name (in graph
    order) gets the plain name back, so the report's tables find ``settling_time`` of
    ``graphs/paper.yaml``'s default step analyzer beside ``step_paper_band.settling_time``; a
    later one keeps its ``<node>.`` label, and is left out where it repeats the first (same
    definition, same inputs: e.g. the delta response of a second step analyzer that differs only
    in its settling band).

    Parameters
    ----------
    metrics : xr.DataArray
        ``(network, cell, metric, ...)`` with the ``analyzer`` and ``definition`` coordinates
        along ``metric`` (:func:`metrics_in_words`).
    settings : dict
        The store's provenance (``json.loads(ds.attrs["settings"])``): each node's inputs.

    Returns
    -------
    xr.DataArray
        ``metrics`` relabelled, without the repeated metrics.
    """
    names = [str(m) for m in metrics[schema.METRIC].values]
    nodes = [str(a) for a in np.asarray(metrics[schema.ANALYZER].values)]
    texts = [str(d) for d in np.asarray(metrics[schema.DEFINITION].values)]
    first: dict[str, int] = {}
    labels, keep = [], []
    for i, (name, node) in enumerate(zip(names, nodes)):
        bare = name[len(node) + 1:] if name.startswith(f"{node}.") else name
        if bare not in first and bare not in names:
            first[bare] = i
            labels.append(bare)
            keep.append(i)
            continue
        j = first.get(bare)
        inputs = settings.get(node, {}).get("inputs")
        if j is None or texts[i] != texts[j] or inputs != settings.get(nodes[j], {}).get("inputs"):
            labels.append(name)
            keep.append(i)
    out = metrics.isel({schema.METRIC: keep})
    return out.assign_coords({schema.METRIC: labels})


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
REPORT_DIMS = (schema.NETWORK, schema.CELL, schema.METRIC)
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
    if not schema.metric_labels(ds):
        raise ReportError(f"'{store}' holds no metric variables (has: "
                          f"{', '.join(map(str, ds.data_vars)) or 'none'}); fix: run "
                          "graphs/paper.yaml (or any graph with step/sine analyzers)")


def _of_size(metrics: xr.DataArray, size: int) -> xr.DataArray:
    """The networks of ``size`` cells."""
    sizes = np.asarray(metrics[schema.NETWORK_SIZE].values)
    return metrics.isel({schema.NETWORK: np.flatnonzero(sizes == size)})


def _swept(metrics: xr.DataArray) -> list[str]:
    return [d for d in metrics.dims if d not in REPORT_DIMS and metrics.sizes[d] > 1]


def _has_bode(metrics: xr.DataArray) -> bool:
    names = {str(m) for m in metrics[schema.METRIC].values}
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
    """Table 1: ``mean ± std`` over cells of each metric for every ``size``-cell network.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(network, cell, metric)`` (:func:`testbench.schema.metrics`).
    size : int
        Network size of the table. Default 128.
    names : tuple of str
        Metrics (columns).

    Returns
    -------
    pd.DataFrame
        Index network (the ``size``-cell ones); columns ``(metric, stat)`` with stat ``mean``,
        ``std``, ``n`` (:func:`summary`).
    """
    names = [n for n in names if n in metrics[schema.METRIC].values]
    return summary(_of_size(metrics, size).sel({schema.METRIC: names}))


#: Table 1 of the paper (Section 5.2: 128-cell networks, mean ± std over cells), each row exactly
#: as the paper's text gives it (tab-separated: dataset, settle time, output change, amplitude,
#: correlation, frequency), keyed by the zoo's dataset name.
PAPER_TABLE1 = {
    "mnist": "Sequential-MNIST [24]\t$6.96 \\pm 4.08$\t$-0.04 \\pm 0.58$\t$0.73 \\pm 0.30$\t"
             "$0.17 \\pm 0.08$\t$9.83 \\pm 0.46$",
    "sp500": "S&P 500 Stock [2]\t$5.62 \\pm 1.73$\t$0.02 \\pm 0.16$\t$0.31 \\pm 0.05$\t"
             "$0.03 \\pm 0.02$\t$2.86 \\pm 2.19$",
    "co2": "CO <sub>2</sub> Concentrations [1]\t$5.65 \\pm 1.64$\t$0.01 \\pm 0.12$\t"
           "$0.27 \\pm 0.04$\t$0.03 \\pm 0.01$\t$9.83 \\pm 0.08$",
    "protein": "Protein Sequencing [31]\t$7.96 \\pm 6.65$\t$0.08 \\pm 0.54$\t$0.68 \\pm 0.22$\t"
               "$2.07 \\pm 1.21$\t$10.36 \\pm 1.65$",
}
#: The paper's settling band as ours: 2 % of |final| (python-control ``step_info``'s default),
#: the band that its settle times imply (issue 13: CO2 5.27 against 5.65).
PAPER_BAND = {"band_frac": 0.02, "band_reference": "final"}
#: Columns of :func:`table1_beside_paper`: (title, the paper's column (index into its row, None:
#: not in the paper), what ours is and why it is comparable).
BESIDE_COLUMNS = (
    ("settling time, 2 % of |final|", 0,
     "settling time of a second step analyzer with band_frac 0.02, band_reference final (the "
     "band the paper's values imply; in steps)"),
    ("settling time, 10 % of |delta|", None,
     "our default: the paper's Definition 3 (90 % window) relative to the step of the response"),
    ("output change", 1, "delta response, final - initial (Definition 2)"),
    ("amplitude", 2, "peak-to-peak of the steady-state sine response (Definition 4)"),
    ("|correlation| / T", 3,
     "|correlation_per_sample|: the paper's values equal |sum (x - mean x)(y - mean y)| / T, not "
     "its Definition 5 (which grows with T)"),
    ("frequency / input frequency", 4,
     "response frequency divided by the stimulus frequency (1: the cell follows its input, 2: "
     "second harmonic); the paper's column is in cycles per unit of an input frequency it does "
     "not state"),
)


def _paper_cells(dataset: str) -> list[str]:
    """The paper's Table 1 values of ``dataset`` as ``mean ± std`` text."""
    return [c.strip("$").replace(r" \pm ", " ± ") for c in PAPER_TABLE1[dataset].split("\t")[1:]]


def _node_setting(settings: dict, node: str, key: str):
    """Setting ``key`` of node ``node`` from the store's provenance (given, else the node type's
    default); None when the node is unknown, the setting swept or the type not registered."""
    from testbench.nodes import registry

    decl = settings.get(node)
    if not isinstance(decl, dict) or key in decl.get("sweep", {}):
        return None
    if key in decl.get("settings", {}):
        return decl["settings"][key]
    try:
        spec = registry().get(str(decl.get("type")))
    except TestbenchError:
        return None
    return spec.settings[key].default if spec is not None and key in spec.settings else None


def _beside_values(metrics: xr.DataArray, settings: dict) -> dict[str, xr.DataArray | None]:
    """Per-cell values ``(network, cell)`` of each :data:`BESIDE_COLUMNS` title (None when the
    store lacks what it needs)."""
    names = [str(m) for m in metrics[schema.METRIC].values]
    nodes = [str(a) for a in np.asarray(metrics[schema.ANALYZER].values)]

    def get(name):
        return (metrics.sel({schema.METRIC: name}).reset_coords(drop=True)
                if name in names else None)

    band = [m for m, node in zip(names, nodes) if m.rsplit(".", 1)[-1] == "settling_time"
            and all(_node_setting(settings, node, k) == v for k, v in PAPER_BAND.items())]
    freq = None
    if "frequency" in names:
        node = nodes[names.index("frequency")]
        stimulus = settings.get(node, {}).get("inputs", {}).get("stimulus")
        f_in = _node_setting(settings, stimulus, "frequency") if stimulus else None
        freq = get("frequency") / float(f_in) if isinstance(f_in, (int, float)) and f_in else None
    per_sample = get("correlation_per_sample")
    values = [get(band[0]) if band else None, get("settling_time"), get("delta_response"),
              get("amplitude"), abs(per_sample) if per_sample is not None else None, freq]
    return dict(zip([c[0] for c in BESIDE_COLUMNS], values))


def table1_beside_paper(metrics: xr.DataArray, settings: dict, *,
                        size: int = TABLE_SIZE) -> pd.DataFrame:
    """Table 1 beside the paper's: its values quoted, ours in its units, per network and seed.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(network, cell, metric)`` (:func:`testbench.schema.metrics`), with the network
        coordinates ``dataset``, ``variant`` and ``seed``.
    settings : dict
        The store's provenance (``json.loads(ds.attrs["settings"])``): which analyzer used the
        paper's band (:data:`PAPER_BAND`) and the sine's frequency.
    size : int
        Network size. Default 128 (the paper's).

    Returns
    -------
    pd.DataFrame
        Index ``(dataset, row)``: per dataset of the paper present in ``metrics``, the row
        ``paper (Table 1)``, one row per ``size``-cell network (``LABEL (variant, seed S)``) and,
        for a variant with several seeds, ``VARIANT: mean over N seeds [95 % CI]`` (the mean over
        cells per seed, then a t-interval across seeds, :func:`testbench.capacity.across`).
        Columns: the titles of :data:`BESIDE_COLUMNS` that the store can fill (a store without
        sine metrics has no amplitude column), as text ``mean ± std`` over cells; ``n/a`` where a
        network's cells give no finite value, ``-`` where the paper has no such column.
    """
    from testbench.capacity import across

    m = _of_size(metrics, size).load()
    values = _beside_values(m, settings)
    columns = [c for c in BESIDE_COLUMNS if values[c[0]] is not None]
    titles = [c[0] for c in columns]
    nets = pd.DataFrame({c: np.asarray(m[c].values) for c in
                         (schema.NETWORK, schema.DATASET, schema.VARIANT, schema.SEED)})
    rows = {}
    for dataset in PAPER_TABLE1:
        group = nets[nets[schema.DATASET] == dataset]
        if group.empty:
            continue
        paper = _paper_cells(dataset)
        rows[(dataset, "paper (Table 1)")] = [paper[c[1]] if c[1] is not None else "-"
                                              for c in columns]
        means = {}
        for _, net in group.iterrows():
            cells = []
            for title in titles:
                v = values[title].sel({schema.NETWORK: net[schema.NETWORK]}).values
                v = v[np.isfinite(v)]
                means[(net[schema.VARIANT], net[schema.SEED], title)] = (
                    v.mean() if v.size else np.nan)
                cells.append(f"{v.mean():.3g} ± {v.std():.2g}" if v.size else "n/a")
            seed = ("seed ?" if net[schema.SEED] == schema.UNKNOWN_SEED
                    else f"seed {net[schema.SEED]}")
            rows[(dataset, f"{net[schema.NETWORK]} ({net[schema.VARIANT]}, {seed})")] = cells
        if not means:
            continue
        index = pd.MultiIndex.from_tuples(list(means), names=["variant", "seed", "column"])
        spread = across(pd.DataFrame({"mean": list(means.values())}, index=index), "seed",
                        column="mean")
        for variant in dict.fromkeys(index.get_level_values("variant")):
            at = spread.loc[variant]
            n = int(at["n"].max())
            if n < 2:
                continue
            rows[(dataset, f"{variant}: mean over {n} seeds [95 % CI]")] = [
                f"{at.loc[t, 'mean']:.3g} [{at.loc[t, 'lo']:.3g}, {at.loc[t, 'hi']:.3g}]"
                if t in at.index and np.isfinite(at.loc[t, "mean"]) else "n/a" for t in titles]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=titles)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["dataset", "row"])
    return table


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
        Index network (the ``size``-cell ones); columns ``delta_response excitatory``, ``...
        inhibitory`` and the same for ``correlation``: fractions of the cells with a defined
        value, in [0, 1]; only for those of the two metrics the store holds.
    """
    out = {}
    for name in ("delta_response", "correlation"):
        if name not in metrics[schema.METRIC].values:
            continue
        m = _of_size(metrics, size).sel({schema.METRIC: name}).reset_coords(drop=True)
        n = m.notnull().sum(schema.CELL)
        out[f"{name} excitatory"] = ((m > 0).sum(schema.CELL) / n).to_series()
        out[f"{name} inhibitory"] = ((m < 0).sum(schema.CELL) / n).to_series()
    return pd.DataFrame(out)


def _table1_html(t1: pd.DataFrame, fr: pd.DataFrame, metrics: xr.DataArray) -> str:
    rows = {}
    for d, row in t1.iterrows():
        rows[d] = {axis_label(metrics, m): (f"{row[(m, 'mean')]:.4g} ± {row[(m, 'std')]:.3g}"
                                            if np.isfinite(row[(m, 'mean')]) else "n/a")
                   for m in dict.fromkeys(t1.columns.get_level_values(0))}
        if d in fr.index:
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
    knock-out mode), the intact errors and the error units per network."""
    table = summary(S.load(ablation_metrics(ds), store))
    lines = [format_summary(table, markdown=markdown), ""]
    if "ablation_intact" in ds:
        lines.append(f"intact test error: {_intact_text(ds, store)}")
    if "error_metric" in ds.coords and "error_units" in ds.coords:
        errors = S.load(ds[["error_metric", "error_units"]].reset_coords(), store)
        along = errors["error_metric"].dims[0]  # network (or dataset)
        lines.append("errors: " + ", ".join(
            f"{d}: {label(str(m))}{f' [{u}]' if str(u) not in ('', '1') else ''}"
            for d, m, u in zip(errors[along].values, errors["error_metric"].values,
                               errors["error_units"].values)))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ figures

#: Metrics of Fig. 5. Not ``frequency``: the response frequency of a cell driven by a sine is the
#: stimulus frequency, the same for every network, so its scaling with size says nothing.
CAPACITY_METRICS = ("settling_time", "delta_response", "amplitude", "correlation")


def fig_sorted(metrics: xr.DataArray, *, size: int = TABLE_SIZE):
    """Figs. 2C-G / 3A-E: each metric's values over the ``size``-cell networks, sorted ascending.

    ``metrics``: dims ``(network, cell, metric)`` (:func:`metrics_in_words`), lazy or loaded;
    returns a matplotlib figure with one panel per metric, titled in words with the metric's
    unit, one line per ``size``-cell network.
    """
    plt = _plt()
    metrics = _of_size(metrics, size).load()
    names = [str(m) for m in metrics[schema.METRIC].values]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        for net in metrics[schema.NETWORK].values:
            v = metrics.sel({schema.NETWORK: net, schema.METRIC: name}).values
            v = np.sort(v[np.isfinite(v)])
            ax.plot(np.arange(len(v)), v, ".-", ms=2, lw=1, label=str(net))
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_title(axis_label(metrics, name), fontsize=9)
        ax.set_xlabel("cell rank (ascending)")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Sorted metric distributions, {size}-cell networks")
    return fig


def _error_label(impact: xr.DataArray, network) -> str:
    """``Δ test <error metric> [unit]`` of one network's ablation impact."""
    at = impact.sel({schema.NETWORK: network})
    metric = str(np.asarray(at["error_metric"].values)) if "error_metric" in at.coords else "error"
    unit = str(np.asarray(at["error_units"].values)) if "error_units" in at.coords else ""
    return f"Δ test {label(metric)}{f' [{unit}]' if unit not in ('', '1') else ''}"


#: Cells per moving window of Fig. 4: the paper's caption ("a moving average filter on the 23
#: ablated impact of individual neurons").
TREND_WINDOW = 23
#: Shuffles of the Fig. 4 permutation band (:func:`testbench.validity.moving_band`).
TREND_PERMUTATIONS = 200


def fig_trend(metrics: xr.DataArray, impact: xr.DataArray, *, metric: str,
              window: int = TREND_WINDOW, n_perm: int = TREND_PERMUTATIONS, seed: int = 0):
    """Fig. 4 as the paper draws it, with a chance band: ablation impact of the cells ranked by
    ``metric``, the moving mean ± moving std of the impacts, the metric's own curve on a
    right-hand axis, and the 2.5-97.5 % band of the moving mean of randomly permuted impacts.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(network, cell, metric)`` (:func:`metrics_in_words`), lazy or loaded.
    impact : xr.DataArray
        ``ablation_impact`` at one knock-out mode ``(network, cell)``; its ``mode``
        (a scalar coordinate, or the ``mode`` attribute) is shown in the titles, its
        ``error_metric`` / ``error_units`` coordinates in the axis labels.
    metric : str
        Metric that orders the cells.
    window : int
        Cells per moving window, >= 1. Default 23 (the paper's).
    n_perm : int
        Permutations of the chance band (:func:`testbench.validity.moving_band`), >= 1.
    seed : int
        Seed of the permutations.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per ablated network; each cell's impact is a thin vertical line (no two overlap
        at any number of cells); each title gives the fraction of ranks where the moving mean
        leaves the chance band (about 5 % by chance, pointwise).
    """
    from testbench.validity import moving_band, moving_trend

    plt = _plt()
    metrics, impact = metrics.load(), impact.load()
    if "mode" in impact.coords and impact["mode"].ndim == 0:
        mode = str(impact["mode"].values)
    else:
        mode = impact.attrs.get("mode")
    nets = [n for n in impact[schema.NETWORK].values
            if np.isfinite(impact.sel({schema.NETWORK: n})).any()]
    fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.6), squeeze=False,
                             layout="constrained")
    for ax, net in zip(axes.flat, nets):
        frame = moving_trend(metrics.sel({schema.NETWORK: net, schema.METRIC: metric}).values,
                             impact.sel({schema.NETWORK: net}).values, window=window)
        lo, hi = moving_band(frame["impact"], window=window, n_perm=n_perm, seed=seed)
        outside = float(np.mean((frame["trend"] < lo) | (frame["trend"] > hi)))
        pos = np.arange(len(frame))
        ax.vlines(pos, 0, frame["impact"], color="0.75", lw=0.6, label="cell")
        ax.plot(pos, lo, "k--", lw=0.8,
                label=f"chance: moving mean of permuted impacts, 2.5-97.5 % ({n_perm})")
        ax.plot(pos, hi, "k--", lw=0.8)
        ax.plot(pos, frame["trend"], color="C0", label=f"moving mean ({window} cells)")
        ax.fill_between(pos, frame["trend"] - frame["spread"], frame["trend"] + frame["spread"],
                        color="C0", alpha=0.2, lw=0, label="± moving std")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{net}" + (f", {mode} knock-out" if mode else "")
                     + f"\ntrend outside the chance band at {outside:.0%} of ranks", fontsize=9)
        ax.set_xlabel(f"cells ranked by {label(metric)} (ascending)")
        ax.set_ylabel(_error_label(impact, net))
        right = ax.twinx()
        right.plot(pos, frame["metric"], color="0.35", lw=1.2, label=label(metric))
        right.set_ylabel(axis_label(metrics, metric), color="0.35")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    right_handles = fig.axes[-1].get_legend_handles_labels() if nets else ([], [])
    fig.legend(handles + right_handles[0], labels + right_handles[1], loc="outside right upper",
               fontsize=7)
    return fig


def fig_capacity(metrics: xr.DataArray, fits: pd.DataFrame):
    """Fig. 5: mean ± std over cells of each metric of :data:`CAPACITY_METRICS` (its magnitude
    ``|metric|`` where it takes negative values) against network size, one series per dataset
    (and variant and seed, :data:`testbench.capacity.GROUPS`); log-log axes and fitted power laws
    (:func:`testbench.capacity.capacity_table`) for :data:`CAPACITY_FIT`. The legend sits outside
    the panels. ``metrics``: ``(network, cell, metric)`` (:func:`metrics_in_words`)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    from testbench.capacity import GROUPS, size_statistics

    plt = _plt()
    metrics = metrics.load()
    stats = size_statistics(metrics)
    names = [n for n in CAPACITY_METRICS if n in metrics[schema.METRIC].values]
    nets = pd.DataFrame({c: np.asarray(metrics[c].values) for c in (*GROUPS, schema.NETWORK_SIZE)})
    groups = list(nets.groupby(list(GROUPS), sort=False))
    varying = [c for c in GROUPS if nets[c].nunique() > 1] or [schema.DATASET]
    sizes = np.unique(nets[schema.NETWORK_SIZE])
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 1.6, 3.4), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        fitted = False
        for k, (key, group) in enumerate(groups):
            group = group.sort_values(schema.NETWORK_SIZE)
            at = stats.isel({schema.NETWORK: group.index.to_numpy()}).sel({schema.METRIC: name})
            mean, std = at["mean"].values, at["std"].values
            N = group[schema.NETWORK_SIZE].to_numpy()
            lower = np.minimum(std, 0.9 * mean) if name in CAPACITY_FIT else std  # log axes: > 0
            ax.errorbar(N, mean, yerr=[lower, std], fmt="o", ms=3, capsize=2, color=f"C{k}")
            fit_key = (*(v.item() if hasattr(v, "item") else v for v in key), name)
            if name in CAPACITY_FIT and fit_key in fits.index:
                f = fits.loc[fit_key]
                if np.isfinite(f["exponent"]):
                    grid = np.geomspace(N.min(), N.max(), 20)
                    ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "-", color=f"C{k}", lw=1)
                    fitted = True
        if name in CAPACITY_FIT:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
        shown = f"|{name}|" if _signed(metrics, name) else name
        ax.set_title(label(shown) + unit_suffix(metrics, name)
                     + ("\n(lines: power-law fits)" if fitted else ""), fontsize=9)
        ax.set_xlabel("network size N (cells)")
    axes.flat[0].set_ylabel("mean ± std over cells")
    handles = [Line2D([], [], color=f"C{k}", marker="o", ms=4, ls="-", lw=1,
                      label=" ".join(str(group[c].iloc[0]) for c in varying))
               for k, (_, group) in enumerate(groups)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title=", ".join(label(c) for c in varying), title_fontsize=8)
    return fig


def _network_of(metrics: xr.DataArray, *, dataset: str, size: int) -> tuple[str, str] | None:
    """(label, weights source) of the first ``size``-cell network of ``dataset``; None if none."""
    m = _of_size(metrics, size)
    for net, d, source in zip(m[schema.NETWORK].values, np.asarray(m[schema.DATASET].values),
                              np.asarray(m[schema.SOURCE].values)):
        if str(d) == dataset:
            return str(net), str(source)
    return None


def fig_heatmap(metrics: xr.DataArray, source: str, *, data_dir=None, digit_index: int = 0):
    """Fig. 2B: hidden outputs of the MNIST network (in the network) reading one test digit.

    Parameters
    ----------
    metrics : xr.DataArray
        ``(network, cell, metric)``: the settling time of the network whose ``source``
        coordinate is ``source`` sorts the cells (never-settling cells last).
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
    from testbench import models as W

    plt = _plt()
    net = W.load(source)
    test = D.load("mnist", variant=net.metadata.get("variant", "row"), data_dir=data_dir).test
    x = test.x[digit_index:digit_index + 1]
    layers = [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]
    h = forward(net.cell_type, layers, None, None, x, readout_mode="every")[0]  # (T, N)
    sources = np.asarray(metrics[schema.SOURCE].values).astype(str)
    if str(source) not in sources:
        raise ReportError(f"fig_heatmap: no network of the metrics has source {source!r} (have: "
                          f"{', '.join(sources)}); fix: pass the source of a characterized "
                          "network")
    settle = metrics.isel({schema.NETWORK: int(np.flatnonzero(sources == str(source))[0])}).sel(
        {schema.METRIC: "settling_time"}).values[:net.hidden_size]
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
    per_metric = [c for c in metrics.coords if metrics[c].dims == (schema.METRIC,)]
    parts, names = [], []
    for name in TABLE1_METRICS:
        if name in metrics[schema.METRIC].values:
            values = metrics.sel({schema.METRIC: name}).drop_vars(per_metric)
            parts.append(values)
            names.append(name)
            if _signed(metrics, name):
                parts.append(abs(values))
                names.append(f"|{name}|")
    stacked = xr.concat(parts, dim=pd.Index(names, name=schema.METRIC))
    out = schema.from_metrics(stacked.transpose(schema.NETWORK, schema.CELL, schema.METRIC, ...),
                              analyzer="report")
    out["ablation_impact"] = impact
    return out


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


def _section_table1(page: _Page, metrics, *, size: int, data_dir, settings: dict) -> None:
    if size not in np.asarray(metrics[schema.NETWORK_SIZE].values):
        page.note(f"No {size}-cell networks: Table 1 skipped.")
        return
    t1 = table1(metrics, size=size)
    page.save("table1.csv", flat_columns(t1).to_csv())
    fr = sign_fractions(metrics, size=size)
    if not fr.empty:
        page.save("sign_fractions.csv", fr.to_csv())
    page.add(f"<h2>Table 1: metrics of the {size}-cell networks (mean ± std over cells)</h2>"
             + _table1_html(t1, fr, metrics))
    beside = table1_beside_paper(metrics, settings, size=size)
    if not beside.empty and len(beside.columns):
        page.save("table1_beside_paper.csv", beside.to_csv())
        page.add(f"<h2>Table 1 beside the paper's ({size}-cell networks)</h2>"
                 "<p>The paper's values are quoted from its Table 1; ours are mean ± std over "
                 "cells in the paper's units where its numbers imply them. Rows marked "
                 "<code>init</code> are untrained controls (the same initialization, no training "
                 "step). The sign of a cell's response is arbitrary: flipping the signs of its "
                 "g-gate weights and of its outgoing weights leaves the network unchanged and "
                 "flips the sign of its isolated response, so excitatory/inhibitory fractions are "
                 "not properties of the network.</p><ul>"
                 + "".join(f"<li><b>{html.escape(t)}</b>: {html.escape(why)}</li>"
                           for t, _, why in BESIDE_COLUMNS if t in beside.columns)
                 + "</ul>" + beside.to_html(classes="t", border=0))
    page.figure(fig_sorted(metrics, size=size), "fig2_3_sorted.png",
                "Figs. 2C-G, 3A-E: sorted distributions of every metric")
    mnist = _network_of(metrics, dataset="mnist", size=size)
    page.add("<h2>Fig. 2B: hidden state reading one MNIST digit</h2>")
    if mnist is None:
        page.note(f"skipped: no {size}-cell MNIST network in this store")
        return
    try:
        page.figure(fig_heatmap(metrics, mnist[1], data_dir=data_dir), "fig2b_heatmap.png",
                    "Fig. 2B: in-network hidden outputs, cells sorted by isolated settling time")
    except TestbenchError as exc:
        page.note(f"skipped: {exc}")


def _intact_text(ds: xr.Dataset, store) -> str:
    """The intact test error of each ablated network with its unit, e.g. ``co2-128: 0.3466 ppm``;
    per knock-out mode only where the modes disagree (they share the network)."""
    intact = S.load(ds["ablation_intact"], store)
    if "mode" in intact.dims and not (intact.std("mode") > 0).any():
        intact = intact.isel(mode=0, drop=True)
    units, along = {}, None
    if "error_units" in intact.coords and intact["error_units"].ndim == 1:
        along = intact["error_units"].dims[0]  # network (or dataset)
        units = {str(k): str(u) for k, u in zip(intact[along].values, intact["error_units"].values)}
    parts = []
    for key, value in intact.reset_coords(drop=True).to_series().dropna().items():
        at = dict(zip(intact.dims, key if isinstance(key, tuple) else (key,)))
        unit = units.get(str(at.get(along)), "")
        where = ", ".join(f"{v} cells" if d == "network_size" else
                          f"{v} knock-out" if d == "mode" else str(v) for d, v in at.items())
        parts.append(f"{where}: {value:.4g}{f' {unit}' if unit not in ('', '1') else ''}")
    return "; ".join(parts)


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
        page.add(f"<p>Intact test errors: {html.escape(_intact_text(ds, store))}.</p>")
    table = validity_table(_validity_input(metrics, impact), magnitude=False, n_boot=n_boot,
                           n_perm=n_perm, top_k=top_k)
    page.save("validity.csv", flat_columns(table).to_csv())
    page.add(_fmt_validity(table).to_html(classes="t", border=0))
    modes = [str(m) for m in impact["mode"].values] if "mode" in impact.dims else [None]
    for mode in modes:
        imp = impact.sel(mode=mode) if mode is not None else impact
        for metric in TREND_METRICS:
            if metric in metrics[schema.METRIC].values:
                tag = f"_{mode}" if mode is not None else ""
                knock = f", {mode} knock-out" if mode is not None else ""
                page.figure(fig_trend(metrics, imp, metric=metric, window=window),
                            f"fig4_{metric}{tag}.png",
                            f"Fig. 4: ablation impact{knock} of cells ranked by {label(metric)} "
                            f"(grey line, right axis): moving mean ± std over {window} cells "
                            f"(blue), and the 2.5-97.5 % band of the moving mean of "
                            f"{TREND_PERMUTATIONS} random permutations of the impacts (dashed): "
                            "where the blue line stays inside it, a random ranking does as well")


def _section_capacity(page: _Page, metrics) -> None:
    from testbench.capacity import capacity_table

    if len(np.unique(np.asarray(metrics[schema.NETWORK_SIZE].values))) < 3:
        return
    fits = capacity_table(metrics)
    page.save("capacity.csv", flat_columns(fits).to_csv())
    page.add("<h2>Fig. 5: capacity (metric against network size)</h2>"
             "<p>Power law |metric| mean over cells = a·N<sup>b</sup>, least squares in "
             "log-log, 95% t-interval of b.</p>")
    show = fits.loc[fits.index.get_level_values(schema.METRIC).isin(CAPACITY_METRICS)]
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
                 top_k: int = 10, window: int = TREND_WINDOW) -> Path:
    """Write the reproduction report of a result store: ``out_dir/index.html`` and PNG figures.

    Parameters
    ----------
    store : str or Path
        Result store (zarr) with metric variables (:func:`testbench.schema.metrics`) and, for
        the ablation sections, ``ablation_impact`` (network, cell[, mode]) (from
        ``graphs/paper.yaml``).
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
        Cells per moving window of Fig. 4, >= 1. Default 23 (the paper's).

    Returns
    -------
    Path
        The written ``index.html``.

    Raises
    ------
    ReportError
        The store holds no metrics or has sweep dims that ``sel`` does not select.
    TestbenchError
        A ``sel`` item that is not ``DIM=VALUE`` of the store's grid.
    OutputError
        ``out_dir`` holds files testbench did not write or is protected (checked before the store is
        read; see :func:`testbench.store.check_folder`), or the store cannot be read.
    """
    out = S.check_folder(out_dir, "report folder", REPORT_FIX)
    ds = S.open_store(str(store))
    _check(ds, store)
    point = ds
    for item in sel:
        point = select_point(point, item)
    _check(point, store)
    settings = json.loads(ds.attrs.get("settings", "{}") or "{}")
    at_point = plain_labels(metrics_in_words(point), settings)
    swept = _swept(at_point)
    bode = ds
    for item in sel:
        if item.partition("=")[0] != BODE_DIM:
            bode = select_point(bode, item)
    bode = metrics_in_words(bode)
    if swept and not (swept == [BODE_DIM] and _has_bode(bode)):
        raise _sweep_error(store, at_point, swept)
    page = _Page(out)
    if _has_bode(bode):
        _section_bode(page, bode, store)
    if swept:
        listed, example = _sweep_text(at_point, swept)
        page.note(f"The tables and the other figures show one point of each sweep; this store is "
                  f"swept along {listed}. To see them, choose one with --sel, e.g. `testbench "
                  f"report {store} {example}`.")
    else:
        metrics = S.load(at_point.squeeze([d for d in at_point.dims if d not in REPORT_DIMS],
                                          drop=True), store)
        _section_table1(page, metrics, size=size, data_dir=data_dir, settings=settings)
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
