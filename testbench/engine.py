"""Plan and execute a validated graph with dask; assemble the result dataset.

Each node function is called once per sweep point, in topological order. Stimuli are small and
computed eagerly; DUT and analyzer nodes return dask-backed xarray objects (chunked along cells,
networks and sweep points; ``time`` in one chunk), so nothing heavy runs until the store is written
under the chosen scheduler. Failures inside dask tasks are re-raised naming the node (see
:func:`testbench.nodes.guard`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from testbench.errors import NodeError, TestbenchError
from testbench.graph import Graph, NodeDecl
from testbench.nodes import building
from testbench.preflight import preflight

@dataclass
class RunResult:
    """What :func:`build` produced: the result dataset (lazy) and every node's output."""

    dataset: xr.Dataset
    outputs: dict[str, xr.DataArray | xr.Dataset]


def _call(decl: NodeDecl, inputs: dict, point: dict):
    settings = {**decl.settings, **point}
    try:
        with building(decl.name):
            return decl.spec.func(**inputs, **settings)
    except TestbenchError as exc:
        raise NodeError(f"node '{decl.name}' ({decl.spec.name}): {exc}") from exc
    except Exception as exc:
        raise NodeError(f"node '{decl.name}' ({decl.spec.name}) failed: {type(exc).__name__}: {exc}"
                        ) from exc


def _run_node(decl: NodeDecl, inputs: dict, keys: list[str], point: dict):
    """Call the node over its sweep grid (recursively), concatenating along one dim per setting."""
    if not keys:
        return _call(decl, inputs, point)
    key, rest = keys[0], keys[1:]
    parts = [_run_node(decl, inputs, rest, {**point, key: v}) for v in decl.sweep[key]]
    values = decl.sweep[key]
    index = pd.Index([v if not isinstance(v, list) else repr(v) for v in values], name=key)
    return xr.concat(parts, dim=index, combine_attrs="drop_conflicts")


def build(graph: Graph) -> RunResult:
    """Call every node of ``graph`` and assemble the (lazy) result dataset.

    Returns
    -------
    RunResult
        ``dataset`` holds ``metrics`` (dims: network dims, ``cell``, ``metric``, sweep dims) and,
        when ``graph.save_responses``, ``response_<node>`` for each DUT.
    """
    outputs: dict[str, xr.DataArray | xr.Dataset] = {}
    for name, decl in graph.nodes.items():
        if decl.spec.kind == "sink":
            continue
        inputs = {param: outputs[src] for param, src in decl.inputs.items()}
        outputs[name] = _run_node(decl, inputs, list(decl.sweep), {})
    return RunResult(assemble(graph, outputs), outputs)


def assemble(graph: Graph, outputs: dict) -> xr.Dataset:
    """Combine analyzer outputs into one ``metrics`` variable and add provenance."""
    analyzers = [n for n, d in graph.nodes.items()
                 if d.spec.kind == "analyzer" and isinstance(outputs[n], xr.DataArray)]
    studies = [n for n, d in graph.nodes.items()
               if d.spec.kind == "analyzer" and isinstance(outputs[n], xr.Dataset)]
    for node in analyzers:
        if "metric" not in outputs[node].dims:
            raise NodeError(f"analyzer '{node}' returned a DataArray without a 'metric' dimension; "
                            "fix: return a DataArray with dims (..., metric), or a Dataset of "
                            "variables to store under their own names")
    parts = []
    names = [list(map(str, outputs[n]["metric"].values)) for n in analyzers]
    counts: dict[str, int] = {}
    for ns in names:
        for m in ns:
            counts[m] = counts.get(m, 0) + 1
    definitions = {}
    for node, ns in zip(analyzers, names):
        arr = outputs[node]
        labels = [m if counts[m] == 1 else f"{node}.{m}" for m in ns]
        units = arr["units"].values if "units" in arr.coords else np.array([""] * len(ns))
        arr = arr.drop_vars([c for c in arr.coords if c == "units"])
        arr = arr.assign_coords(metric=labels, units=("metric", [str(u) for u in units]),
                                analyzer=("metric", [node] * len(ns)))
        for label, m in zip(labels, ns):
            definitions[label] = arr.attrs.get("definitions", {}).get(m, "")
        parts.append(arr.astype("float64"))
    data_vars = {}
    if parts:
        parts = xr.broadcast(*parts, exclude=["metric"])
        metrics = xr.concat(parts, dim="metric", coords="different", compat="equals",
                            join="outer", combine_attrs="drop")
        metrics = _order_dims(metrics)
        if metrics.chunks is not None:
            metrics = metrics.chunk({"metric": -1})
        metrics.attrs = {"definitions": json.dumps(definitions), "description":
                         "response metrics per cell; units per metric in the 'units' coordinate"}
        data_vars["metrics"] = metrics
    for node in studies:  # analyzers returning a Dataset (e.g. ablation) keep their own variables
        for var in outputs[node].data_vars:
            if var in data_vars:
                raise NodeError(f"analyzer '{node}' returns variable '{var}', which another node "
                                "already stores; fix: run one of them in a separate graph")
            data_vars[var] = outputs[node][var]
    duts = {n: outputs[n] for n, d in graph.nodes.items() if d.spec.kind == "dut"}
    if graph.save_responses:
        for name, resp in duts.items():
            data_vars[f"response_{name}"] = resp
    ds = xr.Dataset(data_vars)
    for name, resp in duts.items():
        for coord in ("n_cells",):
            if coord in getattr(resp, "coords", {}) and coord not in ds.coords:
                ds = ds.assign_coords({coord: resp[coord]})
    ds.attrs = provenance(graph, outputs)
    return ds


_NETWORK_DIMS = ("dataset", "network_size")


def _order_dims(arr: xr.DataArray) -> xr.DataArray:
    """Dims in the documented order: network dims, cell, metric, then the sweep dims."""
    first = [d for d in (*_NETWORK_DIMS, "cell", "metric") if d in arr.dims]
    return arr.transpose(*first, ...)


def provenance(graph: Graph, outputs: dict) -> dict:
    """JSON-serializable provenance: graph text, package version, weights checksums, settings."""
    from testbench import __version__

    weights = {}
    for name, decl in graph.nodes.items():
        out = outputs.get(name)
        if decl.spec.kind == "dut" and out is not None:
            weights[name] = json.loads(out.attrs.get("weights", "[]"))
    settings = {n: {"type": d.spec.name, "settings": d.settings, "sweep": d.sweep, "inputs": d.inputs}
                for n, d in graph.nodes.items()}
    return {
        "testbench_version": __version__,
        "graph_source": graph.source,
        "graph_text": graph.text,
        "graph_description": graph.description,
        "settings": json.dumps(settings, default=str),
        "weights": json.dumps(weights),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(graph: Graph, *, output: str | None = None, scheduler: str | None = None,
        progress: bool = True) -> str:
    """Build, compute and store a graph; its sink nodes run on the new store before it replaces the
    previous one.

    Parameters
    ----------
    graph : Graph
        A validated graph (:func:`testbench.graph.load_graph`).
    output : str, optional
        Store path or URL; default ``graph.output``.
    scheduler : str, optional
        ``synchronous``, ``threads``, ``processes`` or a dask.distributed address; default
        ``graph.scheduler``.
    progress : bool
        Progress bar on computations longer than 2 s.

    Returns
    -------
    str
        The store written.

    Raises
    ------
    GraphError, BackendError
        What :func:`testbench.preflight.preflight` refuses (the same as ``testbench validate``).
    OutputError
        The target may not be written (checked before anything is computed, see
        :func:`testbench.store.check_target`); a failing sink leaves the previous store in place.
    """
    from testbench import store

    # the checks of `validate`, before anything is computed; the output is checked just below
    preflight(graph, scheduler=scheduler, check_output=False)
    target = store.check_target(graph.output if output is None else output, graph=graph.source)
    result = build(graph)
    sinks = [d for d in graph.nodes.values() if d.spec.kind == "sink"]

    def run_sinks(new_store: str) -> None:  # before the new store replaces the previous one
        stored = store.open_store(new_store)
        for decl in sinks:
            inputs = {p: _stored_output(stored, graph, src, result.outputs[src])
                      for p, src in decl.inputs.items()}
            _call(decl, inputs, {})

    try:
        store.write(result.dataset, target, scheduler=scheduler or graph.scheduler,
                    progress=progress, graph=graph.source, before_commit=run_sinks if sinks else None)
    except TestbenchError:
        raise
    except Exception as exc:
        # failures inside dask tasks of guarded node functions arrive as NodeError (possibly
        # wrapped by distributed); anything else still gets a readable message
        cause = exc
        while cause is not None and not isinstance(cause, NodeError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from exc
        raise NodeError(f"computing the graph failed: {type(exc).__name__}: {exc}") from exc
    return target


def _stored_output(stored: xr.Dataset, graph: Graph, node: str, lazy):
    """A node's output for a sink, read back from the store where it was stored (no recompute)."""
    kind = graph.nodes[node].spec.kind
    if kind == "analyzer":
        mine = stored.analyzer.values == node
        return stored.metrics.isel(metric=np.flatnonzero(mine))
    if kind == "dut" and f"response_{node}" in stored:
        return stored[f"response_{node}"]
    return lazy
