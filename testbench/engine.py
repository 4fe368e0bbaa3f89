"""Plan and execute a validated graph with dask; assemble the result dataset.

Each node function is called once per sweep point, in topological order. Stimuli are small and
computed eagerly; DUT and analyzer nodes return dask-backed xarray objects (chunked along cells,
networks and sweep points; ``time`` in one chunk), so nothing heavy runs until the store is written
under the chosen scheduler. Failures inside dask tasks are re-raised naming the node (see
:func:`testbench.nodes.guard`). With a node cache (:mod:`testbench.cache`), analyzers found there
are not called, DUTs that only feed them are not built, and the missed analyzers are computed and
stored first; the store is then assembled from the cached outputs.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from testbench import schema, streaming
from testbench.errors import NodeError, TestbenchError
from testbench.graph import SCHEDULERS, Graph, NodeDecl
from testbench.nodes import building, ship_modules
from testbench.preflight import preflight

if TYPE_CHECKING:
    from testbench.cache import NodeCache

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


def _run_node(decl: NodeDecl, inputs: dict, dims: dict[str, str], keys: list[str], point: dict):
    """Call the node over its sweep grid (recursively), concatenating along one dim per setting
    (``dims``: the dim of each swept setting, :func:`testbench.schema.sweep_dims`)."""
    if not keys:
        return _call(decl, inputs, point)
    key, rest = keys[0], keys[1:]
    parts = [_run_node(decl, inputs, dims, rest, {**point, key: v}) for v in decl.sweep[key]]
    values = decl.sweep[key]
    index = pd.Index([v if not isinstance(v, list) else repr(v) for v in values], name=dims[key])
    return xr.concat(parts, dim=index, combine_attrs="drop_conflicts")


def build(graph: Graph, *, cache: NodeCache | None = None) -> RunResult:
    """Call every node of ``graph`` and assemble the (lazy) result dataset.

    Parameters
    ----------
    graph : Graph
        A validated graph.
    cache : NodeCache, optional
        Read analyzer outputs from this cache where their key is stored (the analyzer is not
        called); the missed ones are computed now, under the current dask scheduler, and stored
        (:mod:`testbench.cache`). A DUT whose output only feeds analyzers read from the cache is
        not called either: its output in ``outputs`` is its outline
        (:func:`testbench.cache.outline`).
        Default None: no cache, nothing computed.

    Returns
    -------
    RunResult
        ``dataset`` in the layout of :mod:`testbench.schema`: one variable per metric, the
        variables of Dataset-returning analyzers and, when ``graph.save_responses``,
        ``response_<node>`` for each DUT.
    """
    outputs: dict[str, xr.DataArray | xr.Dataset] = {}
    dims = schema.sweep_dims(graph)
    keys = cache.keys(graph, dims) if cache is not None else {}
    cached = {}
    for name, decl in graph.nodes.items():
        if decl.spec.kind == "analyzer" and keys.get(name):
            if (hit := cache.lookup(keys[name], name)) is not None:
                cached[name] = hit
    pending = {}
    for name, decl in graph.nodes.items():
        if decl.spec.kind == "sink":
            continue
        if name in cached:
            outputs[name] = cached[name]
            continue
        key = keys.get(name)
        if key and _only_for(graph, name, cached) and (outline := cache.get(key)) is not None:
            outputs[name] = outline  # a DUT whose analyzers all hit: not even built
            continue
        inputs = {param: outputs[src] for param, src in decl.inputs.items()}
        needed = decl.spec.kind == "dut" and streaming.response_needed(graph, name)
        with streaming.disabled() if needed else contextlib.nullcontext():
            outputs[name] = _run_node(decl, inputs, dims[name], list(decl.sweep), {})
        if key and decl.spec.kind == "analyzer":
            pending[name] = (key, outputs[name])
        elif key and decl.spec.kind == "dut" and isinstance(outputs[name], xr.DataArray):
            cache.put_outline(key, outputs[name], name)
    if cache is not None:
        with _readable_failures():
            outputs.update(cache.fill(pending, keep={k for k in keys.values() if k}))
    return RunResult(assemble(graph, outputs), outputs)


def _only_for(graph: Graph, node: str, cached: dict) -> bool:
    """True for a DUT whose output only feeds analyzers in ``cached`` (not stored, no sink)."""
    if graph.nodes[node].spec.kind != "dut" or graph.save_responses:
        return False
    return all(n in cached for n, d in graph.nodes.items() if node in d.inputs.values())


def assemble(graph: Graph, outputs: dict) -> xr.Dataset:
    """Store each metric once as its own variable, beside the other outputs; add provenance.

    Raises
    ------
    NodeError
        An analyzer's DataArray without a ``metric`` dim; two nodes returning one variable name.
    SettingsError
        Two different networks with the same label (:func:`testbench.schema.combine`).
    """
    kinds = {n: d.spec.kind for n, d in graph.nodes.items() if n in outputs}
    analyzers = {n: outputs[n] for n, k in kinds.items()
                 if k == "analyzer" and isinstance(outputs[n], xr.DataArray)}
    studies = [n for n, k in kinds.items() if k == "analyzer" and isinstance(outputs[n], xr.Dataset)]
    others: dict[str, xr.DataArray] = {}
    for node in studies:  # analyzers returning a Dataset (e.g. ablation) keep their own variables
        for var in outputs[node].data_vars:
            if var in others:
                raise NodeError(f"analyzer '{node}' returns variable '{var}', which another node "
                                "already stores; fix: run one of them in a separate graph")
            others[var] = outputs[node][var]
    if graph.save_responses:
        for name, k in kinds.items():
            if k == "dut":
                others[f"{schema.RESPONSE_PREFIX}{name}"] = outputs[name]
    taken = set(others) | set(schema.NETWORK_COORDS) | {schema.VALID}
    for out in outputs.values():
        taken |= set(map(str, out.dims)) | set(map(str, out.coords))
    taken.discard(schema.METRIC)
    metric_vars = schema.metric_variables(analyzers, taken)
    ds = schema.combine({**metric_vars, **others})
    for dim, attrs in schema.sweep_coords(graph).items():
        if dim in ds.coords:
            ds[dim].attrs.update(attrs)
    ds.attrs = provenance(graph, outputs)
    ds.attrs[schema.METRIC_ORDER] = json.dumps(list(metric_vars))
    return ds


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
        progress: bool = True, cache: NodeCache | None = None) -> str:
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
    cache : NodeCache, optional
        Reuse and store analyzer outputs there (:mod:`testbench.cache`); default None: compute
        everything, cache nothing.

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
    sched = scheduler or graph.scheduler
    if sched not in SCHEDULERS:  # a dask.distributed address: its workers need the user's modules
        ship_modules(sched, [d.spec for d in graph.nodes.values()])
    if cache is None:
        result = build(graph)
    else:  # missed analyzers are computed while building, under the run's scheduler
        with store.scheduler_context(sched, progress):
            result = build(graph, cache=cache)
    sinks = [d for d in graph.nodes.values() if d.spec.kind == "sink"]

    def run_sinks(new_store: str) -> None:  # before the new store replaces the previous one
        stored = store.open_store(new_store)
        for decl in sinks:
            inputs = {p: _stored_output(stored, graph, src, result.outputs[src])
                      for p, src in decl.inputs.items()}
            _call(decl, inputs, {})

    with _readable_failures():
        store.write(result.dataset, target, scheduler=sched,
                    progress=progress, graph=graph.source, before_commit=run_sinks if sinks else None)
    return target


@contextlib.contextmanager
def _readable_failures():
    """Re-raise a failure of a computation as the NodeError of the node that failed, or as a
    NodeError naming the exception; TestbenchErrors pass unchanged."""
    try:
        yield
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


def _stored_output(stored: xr.Dataset, graph: Graph, node: str, lazy):
    """A node's output for a sink, read back from the store where it was stored (no recompute)."""
    kind = graph.nodes[node].spec.kind
    if kind == "analyzer" and schema.metric_labels(stored, node):
        return schema.metrics(stored, analyzer=node)
    if kind == "dut" and f"{schema.RESPONSE_PREFIX}{node}" in stored:
        return stored[f"{schema.RESPONSE_PREFIX}{node}"]
    return lazy
