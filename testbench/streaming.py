"""Metrics-only work: the step and sine analyzers computed inside an isolated DUT's dask blocks.

An isolated-cell DUT registers how it computes its response (:func:`register`): its per-cell
parameters, the stimulus that drove it and the cast the kernel ran on. When ``step_response`` or
``sine_response`` then receives that very response (same dask array) and that very stimulus,
:func:`streamed` builds the metrics with ``kernels.simulate(..., metrics=...)``
(:func:`testbench.kernels.streaming.stream_metrics`) over the same blocks instead: dask never
materializes the (cells, ..., time) response unless something else needs it (``save_responses``,
another analyzer; :func:`disabled` skips the registration for such DUTs), and the metrics are
bitwise those of the analyzer on the stored response. Anything else (a response concatenated over a DUT sweep, traces,
the CUDA backend, coupled networks, another stimulus) takes the ordinary path.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import xarray as xr

from testbench.nodes import guard
from testbench.schema import GATE, METRIC, TIME

_RECIPES: OrderedDict[str, _Recipe] = OrderedDict()
_KEEP = 64  # recipes of the most recent DUT outputs (a process may build many graphs)
_ENABLED = contextvars.ContextVar("testbench_streaming", default=True)


#: Analyzer node types that compute their metrics inside a registered DUT's blocks
#: (``apply_metrics(..., stream=...)``); any other consumer needs the response itself.
STREAMING_ANALYZERS = frozenset({"step_response", "sine_response"})


def response_needed(graph, node: str) -> bool:
    """True when DUT ``node``'s response is computed anyway: stored (``save_responses``) or read by
    a node that does not stream (then streaming would only simulate the cells once more)."""
    return graph.save_responses or any(
        d.spec.name not in STREAMING_ANALYZERS
        for d in graph.nodes.values() if node in d.inputs.values())


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Build the DUT nodes called inside without registering their responses.

    For a DUT whose response is computed anyway (``save_responses``, or read by an analyzer that
    does not stream): streaming its metrics would only simulate it once more. Results are the
    same either way.
    """
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


@dataclass(frozen=True)
class _Recipe:
    block: Callable        # _block with the cell type and initial states, guarded as the DUT
    params: tuple          # a, r, bi, bh: DataArrays (..., gate), chunked like the response
    x: xr.DataArray        # the kernel's stimulus (..., time), cast to the simulation dtype
    stimulus: xr.DataArray  # the DUT's input, as analyzers receive it


def register(response: xr.DataArray, cell_type: str, params: tuple, x: xr.DataArray,
             stimulus: xr.DataArray, h0: float, c0: float) -> None:
    """Record that ``response`` is ``simulate(cell_type, *params, x)`` over its dask blocks.

    Parameters
    ----------
    response : xr.DataArray
        The DUT's dask-backed response, dims ``(*params dims, *x dims)`` with ``time`` last.
    cell_type : str
        Cell type of every cell of ``params``.
    params : tuple of xr.DataArray
        ``a, r, bi, bh`` with a ``gate`` core dim, as passed to the simulation.
    x : xr.DataArray
        The simulated stimulus (simulation dtype), ``time`` last, chunked as simulated.
    stimulus : xr.DataArray
        The DUT's ``stimulus`` input object (analyzers must receive this very object).
    h0, c0 : float
        Initial states.

    Notes
    -----
    Call it while the DUT node is built: a failing kernel then names the DUT, as when it
    simulates the response.
    """
    name = getattr(response.data, "name", None)
    if name is None or not _ENABLED.get():
        return
    _RECIPES[name] = _Recipe(guard(partial(_block, cell_type, h0, c0)), tuple(params), x,
                             stimulus)
    _RECIPES.move_to_end(name)
    while len(_RECIPES) > _KEEP:
        _RECIPES.popitem(last=False)


def _block(cell_type, h0, c0, a, r, bi, bh, x, xs, dt, *, kind, settings, k):
    """Metrics of one dask block: parameters ``(*P, G)``, stimuli ``(*X, T)`` (simulated and as
    analyzed), ``dt`` broadcastable to X -> ``(*broadcast(P, X), k)`` (layout of the DUT block)."""
    from testbench import kernels

    P, X, T = a.shape[:-1], x.shape[:-1], x.shape[-1]
    nd = max(len(P), len(X), np.ndim(dt))
    P, X = (1,) * (nd - len(P)) + P, (1,) * (nd - len(X)) + X
    dt = np.asarray(dt, dtype=np.float64)
    dt = np.broadcast_to(dt.reshape((1,) * (nd - dt.ndim) + dt.shape), X).reshape(-1)
    flat = [p.reshape(-1, p.shape[-1]) for p in (a, r, bi, bh)]
    xs = np.broadcast_to(xs, x.shape)
    out = kernels.simulate(cell_type, *flat, np.ascontiguousarray(x.reshape(-1, T)), h0=h0, c0=c0,
                           metrics={kind: settings, "dt": dt, "stimulus": xs.reshape(-1, T)})
    out = out[f"{kind}_response"].reshape(P + X + (k,))
    order = [axis for j in range(nd) for axis in (j, nd + j)] + [2 * nd]
    return out.transpose(order).reshape(tuple(p * q for p, q in zip(P, X)) + (k,))


def streamed(response: xr.DataArray, stimulus: xr.DataArray, dt: xr.DataArray, kind: str,
             settings: dict, k: int) -> xr.DataArray | None:
    """The ``kind`` ('step' or 'sine') metrics of a registered response, or None.

    Returns
    -------
    xr.DataArray or None
        Unlabelled float64 metrics, dims ``(*non-time dims of response, metric)`` with the
        response's coordinates, as :func:`testbench.analysis.apply_metrics`'s core would give them;
        None when ``response`` is not a registered DUT output driven by ``stimulus``.
    """
    recipe = _RECIPES.get(getattr(response.data, "name", None))
    if recipe is None or stimulus is not recipe.stimulus:
        return None
    xs = stimulus.transpose(..., TIME)
    if recipe.x.chunks is not None:
        xs = xs.chunk(recipe.x.chunksizes)
    out = xr.apply_ufunc(
        partial(recipe.block, kind=kind, settings=settings, k=k),
        *recipe.params, recipe.x, xs, dt,
        input_core_dims=[[GATE]] * 4 + [[TIME], [TIME], []],
        output_core_dims=[[METRIC]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {METRIC: k}, "allow_rechunk": False},
    )
    out = out.transpose(*(d for d in response.dims if d != TIME), METRIC)
    coords = {name: c for name, c in response.coords.items() if TIME not in c.dims}
    return out.assign_coords(coords)
