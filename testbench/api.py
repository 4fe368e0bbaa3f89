"""The Python API: run a graph and open a result store from a script or a notebook.

The same graphs as the command line, given as a file, as YAML text or as a plain ``dict``; the result
comes back as an ``xr.Dataset``.

Examples
--------
>>> import testbench
>>> ds = testbench.run({"nodes": {
...     "sine": {"type": "sine", "settings": {"length_steps": 200, "frequency": 0.05}},
...     "cells": {"type": "lstm_cells", "inputs": ["sine"], "settings": {"weights": "zoo:co2-32"}},
...     "metrics": {"type": "sine_response", "inputs": {"response": "cells", "stimulus": "sine"}}}})
>>> ds.amplitude.dims, float(ds.amplitude.max()) > 0
(('network', 'cell'), True)
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import xarray as xr
from ruamel.yaml import YAML

from testbench import engine, store
from testbench.cache import NodeCache
from testbench.errors import TestbenchError
from testbench.graph import Graph, load_graph


def _as_text(graph: str | Path | Mapping) -> tuple[str, str | None]:
    """(source name, YAML text or None to read the file) of a graph given as path, text or dict."""
    if isinstance(graph, Mapping):
        buf = io.StringIO()
        YAML(typ="safe", pure=True).dump(_plain(graph), buf)
        return "<dict>", buf.getvalue()
    if isinstance(graph, Path) or ("\n" not in graph and ":" not in graph.split("/")[-1]):
        return str(graph), None
    return "<string>", graph


def _plain(value):
    """Deep copy of a dict graph with tuples turned into lists (YAML has no tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def load(graph: str | Path | Mapping | Graph, *, overrides: Sequence[str] = ()) -> Graph:
    """Validate a graph given as a file path, YAML text or a ``dict``.

    Parameters
    ----------
    graph : str, Path, dict or Graph
        A path to a YAML file; YAML text (any string holding a newline or a ``key: value``); a dict
        with the structure of a graph file; or an already loaded :class:`~testbench.graph.Graph`.
    overrides : sequence of str
        ``node.setting=value`` overrides, as ``--set`` on the command line (a list value sweeps).

    Returns
    -------
    Graph
        Validated, as :func:`testbench.graph.load_graph` returns it (which raises ``GraphError``
        listing every problem of the graph, each with its location: ``<dict>:line:col`` for a dict).
    """
    if isinstance(graph, Graph):
        if overrides:
            return load_graph(graph.source, text=graph.text, overrides=list(overrides))
        return graph
    source, text = _as_text(graph)
    return load_graph(source, text=text, overrides=list(overrides))


def run(graph: str | Path | Mapping | Graph, *, overrides: Sequence[str] = (),
        output: str | Path | bool | None = None, scheduler: str | None = None,
        progress: bool = False, cache: bool | str | Path = True) -> xr.Dataset:
    """Run a graph and return its result dataset.

    Parameters
    ----------
    graph : str, Path, dict or Graph
        See :func:`load`.
    overrides : sequence of str
        ``node.setting=value`` overrides (``--set``).
    output : str, Path, bool or None
        ``None`` or ``False`` (default): compute in memory, store nothing and run no sink node.
        ``True``: write the graph's own ``output`` store. A path or URL: write the store there. A
        stored result is written exactly as ``testbench run`` writes it (same safety rules) and
        returned opened lazily.
    scheduler : str, optional
        ``synchronous``, ``threads``, ``processes`` or a dask.distributed address; default the
        graph's ``scheduler``.
    progress : bool
        Progress bar on stderr for work longer than 2 s. Default False.
    cache : bool, str or Path
        ``True`` (default): reuse and store analyzer outputs in the cache folder
        (``$TESTBENCH_CACHE/nodes``, else ``~/.cache/testbench/nodes``; :mod:`testbench.cache`); a path:
        use that cache folder; ``False``: compute everything, read and write no cache.

    Returns
    -------
    xr.Dataset
        One variable per metric with dims ``(network, cell, *its sweep dims)`` and the other
        variables the graph's analyzers return (:mod:`testbench.schema`; the README's "Results"
        section).

    Raises
    ------
    TestbenchError
        Graph, settings, weights or output problems, each with location and fix.
    """
    g = load(graph, overrides=overrides)
    if cache is False:
        node_cache = None
    else:
        node_cache = NodeCache(None if cache is True else cache)
    if output is None or output is False:
        engine.preflight(g, scheduler=scheduler, check_output=False)  # no store is written
        with store.scheduler_context(scheduler or g.scheduler, progress):
            return engine.build(g, cache=node_cache).dataset.compute()
    target = g.output if output is True else str(output)
    return open(engine.run(g, output=target, scheduler=scheduler, progress=progress,
                           cache=node_cache))


def open(store_path: str | Path) -> xr.Dataset:  # noqa: A001 - the natural name: testbench.open
    """Open a result store written by ``testbench run`` (or :func:`run`).

    Parameters
    ----------
    store_path : str or Path
        Path or URL of the zarr store.

    Returns
    -------
    xr.Dataset
        Lazy (dask-backed) data variables; coordinates of at most one dimension are loaded eagerly,
        so ``sel`` by a network coordinate and ``groupby("dataset")`` work directly.

    Raises
    ------
    TestbenchError
        When the path is not a complete testbench store of a format version this version reads.
    """
    ds = store.open_store(store_path)
    small = {name: c.load() for name, c in ds.coords.items() if c.ndim <= 1}
    return ds.assign_coords(small)


__all__ = ["load", "run", "open", "TestbenchError"]
