"""The result schema: every dimension and coordinate name of a result store, and its one reader.

A run stores one ``xr.Dataset`` (see ``docs/schema.md`` for the reasons behind each choice):

* ``network`` (:data:`NETWORK`): one dimension over every network of the run, labelled by the
  network grid's labels (``co2-128``, ``co2-128-seed1``...), with non-index coordinates along it:
  :data:`NETWORK_COORDS` (``dataset``, ``network_size``, ``seed`` (-1 when unknown), ``variant``,
  ``cell_type``, ``checksum``, ``source``, ``n_cells``). ``cell`` counts up to the largest network;
  the boolean coordinate ``valid`` (network, cell) marks real cells (the others are NaN padding).
* one data variable per metric, named after the metric, with dims ``(network, cell, *the sweep dims
  its analyzer depends on)`` and CF-style attrs ``units``, ``long_name``, ``definition``,
  ``analyzer`` (the node) and ``metric`` (its name in the analyzer). A name already taken (by
  another analyzer's metric, a dimension, a coordinate or a variable) is stored as
  ``<node>.<metric>``.
* sweep dims named after the setting, or ``<node>.<setting>`` for every node sweeping a setting
  whose name another node sweeps too; coordinate attrs ``long_name`` and ``units``.
* ``response_<node>`` per DUT when ``save_responses``: ``(network, cell, [channel], [direction],
  *sweeps, [trace], time)`` on one NaN-padded ``time`` (step index 1..T of the longest record).

:func:`metrics` gives back the classic table view ``(network, cell, metric, *sweeps)``; every
reader of metrics goes through it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import xarray as xr

from testbench.errors import NodeError, OutputError, SettingsError, did_you_mean

# ------------------------------------------------------------------------------ dimensions
NETWORK = "network"
CELL = "cell"
METRIC = "metric"
TIME = "time"
TRACE = "trace"
CHANNEL = "channel"
DIRECTION = "direction"
GATE = "gate"

# ------------------------------------------------------------ coordinates along ``network``
DATASET = "dataset"
NETWORK_SIZE = "network_size"
SEED = "seed"
VARIANT = "variant"
CELL_TYPE = "cell_type"
CHECKSUM = "checksum"
SOURCE = "source"
N_CELLS = "n_cells"
#: Non-index coordinates along ``network``, in this order.
NETWORK_COORDS = (DATASET, NETWORK_SIZE, SEED, VARIANT, CELL_TYPE, CHECKSUM, SOURCE, N_CELLS)
#: Boolean coordinate ``(network, cell)``: True for the cells a network has.
VALID = "valid"
#: ``seed`` of a network whose metadata names none.
UNKNOWN_SEED = -1

# ------------------------------------------------------------------ attributes, other names
UNITS = "units"
LONG_NAME = "long_name"
DEFINITION = "definition"
ANALYZER = "analyzer"
#: Prefix of the variable holding a DUT's saved responses (``response_<node>``).
RESPONSE_PREFIX = "response_"
#: Root attribute listing the metric variables in the order the graph produced them.
METRIC_ORDER = "metric_variables"

_NETWORK_ATTRS = {
    NETWORK: {LONG_NAME: "network (label of the network grid)"},
    DATASET: {LONG_NAME: "dataset the network was trained on"},
    NETWORK_SIZE: {LONG_NAME: "network size (cells of the characterized layer)", UNITS: "cells"},
    SEED: {LONG_NAME: "training seed (-1: unknown)"},
    VARIANT: {LONG_NAME: "variant (trained, init, a checkpoint...)"},
    CELL_TYPE: {LONG_NAME: "cell type"},
    CHECKSUM: {LONG_NAME: "sha256 of the weights file"},
    SOURCE: {LONG_NAME: "weights source as given in the graph"},
    N_CELLS: {LONG_NAME: "cells in the network; larger cell indices are NaN padding",
              UNITS: "cells"},
    CELL: {LONG_NAME: "cell index in the layer"},
    VALID: {LONG_NAME: "cell exists in this network (False: NaN padding)"},
}


# ------------------------------------------------------------------------------ networks


def network_coords(entries) -> dict:
    """Coordinates of a ``network`` dimension over ``entries``, for ``DataArray(coords=...)``.

    Parameters
    ----------
    entries : sequence
        Network-grid entries with attributes ``label``, ``source``, ``dataset``, ``size``,
        ``seed`` (int or None), ``variant``, ``cell_type`` and ``checksum``.

    Returns
    -------
    dict
        ``network`` (labels) and every coordinate of :data:`NETWORK_COORDS` along it.
    """
    def column(get, dtype=None):
        return (NETWORK, np.array([get(e) for e in entries], dtype=dtype))

    return {
        NETWORK: [str(e.label) for e in entries],
        DATASET: column(lambda e: str(e.dataset)),
        NETWORK_SIZE: column(lambda e: int(e.size), np.int64),
        SEED: column(lambda e: UNKNOWN_SEED if e.seed is None else int(e.seed), np.int64),
        VARIANT: column(lambda e: str(e.variant)),
        CELL_TYPE: column(lambda e: str(e.cell_type)),
        CHECKSUM: column(lambda e: str(e.checksum)),
        SOURCE: column(lambda e: str(e.source)),
        N_CELLS: column(lambda e: int(e.size), np.int64),
    }


def _network_table(variables: dict[str, xr.DataArray]) -> pd.DataFrame:
    """One row per network label over every variable, each label's coordinates checked equal.

    Raises
    ------
    SettingsError
        Two different networks (checksums) with one label, naming both sources.
    """
    rows: dict[str, dict] = {}
    for var in variables.values():
        if NETWORK not in var.dims:
            continue
        have = [c for c in NETWORK_COORDS if c in var.coords]
        for i, label in enumerate(map(str, var[NETWORK].values)):
            row = {c: var[c].values[i].item() for c in have}
            old = rows.setdefault(label, row)
            if CHECKSUM in old and CHECKSUM in row and old[CHECKSUM] != row[CHECKSUM]:
                raise SettingsError(
                    f"setting 'weights': {old.get(SOURCE, '?')} and {row.get(SOURCE, '?')} are "
                    f"different networks with the same label '{label}'; the result's 'network' "
                    "dimension needs one label per network; fix: give explicit labels, e.g. "
                    f"weights: {{{label}-b: {row.get(SOURCE, '?')}}}", setting="weights")
            for c in have:
                old.setdefault(c, row[c])
    return pd.DataFrame.from_dict(rows, orient="index")


def combine(variables: dict[str, xr.DataArray]) -> xr.Dataset:
    """One dataset of ``variables`` on a shared ``network`` and ``cell`` grid.

    Each variable keeps its own dims, ``network`` and ``cell`` first; ``network`` is the union of
    every variable's networks (in order of appearance), ``cell`` runs to the largest network,
    ``time`` to the longest record; what a variable lacks is NaN. The network coordinates are
    attached once, with ``valid``.

    Raises
    ------
    SettingsError
        Two different networks with one label (see :func:`_network_table`).
    """
    table = _network_table(variables)
    drop = [*NETWORK_COORDS, VALID]
    data = {name: var.drop_vars([c for c in drop if c in var.coords])
            .transpose(*[d for d in (NETWORK, CELL) if d in var.dims], ...)
            for name, var in variables.items()}
    ds = xr.Dataset(data)  # outer join of network, cell, time and sweep coordinates
    if NETWORK in ds.dims:
        ds = ds.reindex({NETWORK: list(table.index)})  # the order of appearance, not sorted
        coords = {c: (NETWORK, table[c].to_numpy()) for c in NETWORK_COORDS if c in table}
        ds = ds.assign_coords(coords)
        if N_CELLS in ds.coords and CELL in ds.dims:
            ds = ds.assign_coords({VALID: (ds[CELL] < ds[N_CELLS]).transpose(NETWORK, CELL)})
    for name, attrs in _NETWORK_ATTRS.items():
        if name in ds.coords:
            ds[name].attrs.update(attrs)
    return ds


# ------------------------------------------------------------------------------ sweeps

#: Units recognised in a setting's documentation, most specific first: (phrase, units).
_UNIT_PHRASES = (
    ("cycles per time unit", "cycles per time unit"),
    ("value units per time unit", "1/time unit"),
    ("in time units", "time unit"),
    ("in steps", "steps"),
    ("in radians", "rad"),
    ("in response units", "response units"),
    ("dimensionless", "1"),
    ("Fraction", "1"),
)


def setting_attrs(doc: str) -> dict:
    """CF attributes of a swept setting's coordinate from its documentation.

    ``long_name`` is the documentation's first clause; ``units`` the first unit phrase of
    :data:`_UNIT_PHRASES` it contains (absent when none is recognised).

    Examples
    --------
    >>> setting_attrs("Frequency f in cycles per time unit, 0 < f < 1 / (2 dt). Default 0.01.")
    {'long_name': 'Frequency f in cycles per time unit', 'units': 'cycles per time unit'}
    """
    attrs = {}
    first = re.split(r"[,;:]\s|\.(?:\s|$)|\s\(", doc.strip(), maxsplit=1)[0].strip()
    if first:
        attrs[LONG_NAME] = first
    for phrase, units in _UNIT_PHRASES:
        if phrase in doc:
            attrs[UNITS] = units
            break
    return attrs


def sweep_dims(graph) -> dict[str, dict[str, str]]:
    """The dimension of each swept setting of each node: ``{node: {setting: dim}}``.

    A setting is its own dim name, unless several nodes sweep a setting of that name: then each
    of them gets ``<node>.<setting>``, so the sweeps stay apart (and a point of one is not taken
    for a point of the other).
    """
    count: dict[str, int] = {}
    for decl in graph.nodes.values():
        for key in decl.sweep:
            count[key] = count.get(key, 0) + 1
    return {name: {key: key if count[key] == 1 else f"{name}.{key}" for key in decl.sweep}
            for name, decl in graph.nodes.items()}


def sweep_coords(graph) -> dict[str, dict]:
    """The attributes of every sweep dimension of ``graph``: ``{dim: {long_name, units}}``."""
    out = {}
    dims = sweep_dims(graph)
    for name, decl in graph.nodes.items():
        for key, dim in dims[name].items():
            attrs = setting_attrs(decl.spec.settings[key].doc if key in decl.spec.settings else "")
            attrs[LONG_NAME] = f"{name}: {attrs.get(LONG_NAME, key)}"
            out[dim] = attrs
    return out


# ------------------------------------------------------------------------------ metrics


def metric_variables(analyzers: dict[str, xr.DataArray], taken: set[str]) -> dict[str, xr.DataArray]:
    """Split analyzer outputs ``(..., metric)`` into one variable per metric.

    Parameters
    ----------
    analyzers : dict of str to xr.DataArray
        Each analyzer node's output with a ``metric`` dim, its ``units`` coordinate along it and
        ``attrs['definitions']`` (metric -> text).
    taken : set of str
        Names used by dims, coordinates and other variables of the store.

    Returns
    -------
    dict of str to xr.DataArray
        Variable name -> float64 metric values without the ``metric`` dim, with attrs ``units``,
        ``long_name``, ``definition``, ``analyzer``, ``metric``. The name is the metric's, or
        ``<node>.<metric>`` when it is taken or another analyzer has a metric of that name.

    Raises
    ------
    NodeError
        An analyzer output without a ``metric`` dimension.
    """
    count: dict[str, int] = {}
    for node, arr in analyzers.items():
        if METRIC not in arr.dims:
            raise NodeError(f"analyzer '{node}' returned a DataArray without a '{METRIC}' "
                            f"dimension; fix: return a DataArray with dims (..., {METRIC}), or a "
                            "Dataset of variables to store under their own names")
        for m in map(str, arr[METRIC].values):
            count[m] = count.get(m, 0) + 1
    out = {}
    for node, arr in analyzers.items():
        names = [str(m) for m in arr[METRIC].values]
        units = [str(u) for u in arr[UNITS].values] if UNITS in arr.coords else ["1"] * len(names)
        definitions = arr.attrs.get("definitions", {})
        arr = arr.drop_vars([c for c in arr.coords if METRIC in arr[c].dims and c != METRIC])
        for i, m in enumerate(names):
            name = m if count[m] == 1 and m not in taken else f"{node}.{m}"
            var = arr.isel({METRIC: i}, drop=True).astype("float64")
            var = var.transpose(*[d for d in (NETWORK, CELL) if d in var.dims], ...)
            var.attrs = {UNITS: units[i], LONG_NAME: m.replace("_", " "),
                         DEFINITION: str(definitions.get(m, "")), ANALYZER: node, METRIC: m}
            out[name] = var
    return out


def _metric_vars(ds: xr.Dataset) -> list[str]:
    """The metric variables of ``ds`` in the order the graph produced them."""
    found = [v for v in ds.data_vars if ANALYZER in ds[v].attrs and METRIC in ds[v].attrs]
    order = json.loads(ds.attrs.get(METRIC_ORDER, "[]"))
    return [v for v in order if v in found] + [v for v in found if v not in order]


def metric_labels(ds: xr.Dataset, analyzer: str | None = None) -> dict[str, str]:
    """Label in :func:`metrics` -> variable name, for every metric variable (of ``analyzer``).

    A label is the metric's name, or ``<node>.<metric>`` where two analyzers share the name.
    """
    names = _metric_vars(ds)
    count: dict[str, int] = {}
    for v in names:
        count[ds[v].attrs[METRIC]] = count.get(ds[v].attrs[METRIC], 0) + 1
    out = {}
    for v in names:
        a = ds[v].attrs
        if analyzer is None or a[ANALYZER] == analyzer:
            out[a[METRIC] if count[a[METRIC]] == 1 else f"{a[ANALYZER]}.{a[METRIC]}"] = v
    return out


def metrics(ds: xr.Dataset, names: list[str] | None = None, *,
            analyzer: str | None = None) -> xr.DataArray:
    """The metrics of a result store as one table-like DataArray (broadcast, not stored so).

    Parameters
    ----------
    ds : xr.Dataset
        A result store (lazy or loaded).
    names : list of str, optional
        Metric labels to include (see :func:`metric_labels`), in this order; default all.
    analyzer : str, optional
        Only the metrics of this analyzer node.

    Returns
    -------
    xr.DataArray
        ``metrics``: dims ``(network, cell, metric, *sweep dims of any metric)``, float64; each
        metric broadcast over the sweep dims of the others (repeated values). Coordinates along
        ``metric``: ``units``, ``analyzer``, ``definition``; the network coordinates and ``valid``.
        Lazy when ``ds`` is.

    Raises
    ------
    SettingsError
        The store has no metrics, or a name is not one of them.
    OutputError
        A metric variable without its ``units`` attribute (a damaged store).
    """
    labels = metric_labels(ds, analyzer)
    if not labels:
        raise SettingsError(f"the store holds no metric variables (variables: "
                            f"{', '.join(map(str, ds.data_vars)) or 'none'}); fix: run a graph "
                            "with an analyzer node")
    names = list(labels) if names is None else list(names)
    bad = [n for n in names if n not in labels]
    if bad:
        raise SettingsError(f"metric {bad[0]!r} is not in the store; "
                            f"{did_you_mean(bad[0], labels)} fix: use one of: {', '.join(labels)}")
    parts = [ds[labels[n]] for n in names]
    for n, p in zip(names, parts):
        if UNITS not in p.attrs:
            raise OutputError(f"metric variable '{labels[n]}' has no '{UNITS}' attribute, which "
                              "every store written by `testbench run` has; the store is damaged; "
                              "fix: re-run the graph that wrote it")
    data = xr.concat(xr.broadcast(*parts), dim=pd.Index(names, name=METRIC), coords="minimal",
                     compat="override", join="outer", combine_attrs="drop")
    data = data.assign_coords({
        UNITS: (METRIC, [str(p.attrs.get(UNITS, "")) for p in parts]),
        ANALYZER: (METRIC, [str(p.attrs.get(ANALYZER, "")) for p in parts]),
        DEFINITION: (METRIC, [str(p.attrs.get(DEFINITION, "")) for p in parts]),
    })
    data.name = "metrics"
    data.attrs = {LONG_NAME: "response metrics per cell; units per metric in the 'units' coordinate"}
    first = [d for d in (NETWORK, CELL, METRIC) if d in data.dims]
    return data.transpose(*first, ...)


def from_metrics(data: xr.DataArray, analyzer: str = "metrics") -> xr.Dataset:
    """The inverse of :func:`metrics`: one variable per metric of a ``(network, cell, metric,
    ...)`` DataArray, as a run stores them (each broadcast metric keeps every dim of ``data``).

    Parameters
    ----------
    data : xr.DataArray
        Dims ``(network, cell, metric, ...)`` with the network coordinates; a ``units``
        coordinate along ``metric`` (default dimensionless) and an ``analyzer`` one (default
        ``analyzer``).
    analyzer : str
        Analyzer node named in the variables' attrs when ``data`` has no ``analyzer`` coordinate.

    Returns
    -------
    xr.Dataset
        Readable by :func:`metrics` (which gives ``data`` back).
    """
    nodes = (np.asarray(data[ANALYZER].values).astype(str) if ANALYZER in data.coords
             else np.full(data.sizes[METRIC], analyzer))
    parts = {str(node): data.isel({METRIC: np.flatnonzero(nodes == node)})
             for node in dict.fromkeys(nodes)}
    for node, part in parts.items():
        defs = part[DEFINITION].values if DEFINITION in part.coords else [""] * part.sizes[METRIC]
        part.attrs = {"definitions": dict(zip(map(str, part[METRIC].values), map(str, defs)))}
    taken = (set(map(str, data.dims)) | set(map(str, data.coords))) - {METRIC}
    variables = metric_variables(parts, taken)
    ds = combine(variables)
    ds.attrs[METRIC_ORDER] = json.dumps(list(variables))
    return ds
