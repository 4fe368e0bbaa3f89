"""Devices under test: the isolated cells of a trained recurrent layer (the paper's method).

Each cell u of layer k becomes a one-unit dynamical system made of its input weights (projected on
the input-channel vector v), its own recurrent weight and its biases; see DESIGN.md "Isolating a cell"
and :func:`kernels.isolate`. The simulation itself runs in :mod:`kernels` (Numba CPU or CUDA).
"""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Annotated, Literal

import numpy as np
import xarray as xr

from testbench import kernels, models, schema, streaming
from testbench.errors import BackendError, SettingsError, TestbenchError, WeightsError
from testbench.kernels.celltypes import CELL_TYPES
from testbench.models.weights import GATES, REVERSE_SUFFIX
from testbench.nodes import ANALYZER_BYTES_PER_SAMPLE, Block, Facts, Range, Stimulus, dut, guard
from testbench.schema import (CELL, CHANNEL, CHECKSUM, DIRECTION, GATE, NETWORK, SOURCE, TIME,
                              TRACE)

DEFAULT_WEIGHTS = "zoo:co2-128"


def _channel_vectors(channels, m: int) -> tuple[np.ndarray, list | None]:
    """Rows of input-channel vectors and the ``channel`` coordinate (None when not a dimension)."""
    if channels == "all":
        return np.ones((1, m)), None
    if channels == "each":
        return np.eye(m), list(range(m))
    bad = [c for c in channels if not 0 <= c < m]
    if bad or not channels:
        raise SettingsError(
            f"setting 'channels': {channels!r} is not a non-empty list of channel indices in "
            f"[0, {m - 1}] for a network with {m} input channels; fix: use 'all', 'each' or a "
            f"list such as [0]", setting="channels"
        )
    v = np.zeros((1, m))
    v[0, sorted(set(channels))] = 1.0
    return v, None


def _load_networks(weights, cell_type_wanted, layer,
                   trust_pickle=False) -> list[models.NetworkEntry]:
    """The network grid of a DUT (:func:`testbench.models.network_grid`), each network checked.

    Raises
    ------
    WeightsError, SettingsError
        What the grid refuses; a network of another cell type; a layer out of range.
    """
    entries = models.network_grid(weights, trust_pickle=trust_pickle)
    for e in entries:
        if e.cell_type not in cell_type_wanted:
            raise WeightsError(
                f"{e.source}: holds a {e.cell_type} network, but this node simulates "
                f"{'/'.join(cell_type_wanted)} cells; fix: use type "
                f"{'lstm_cells' if e.cell_type == 'lstm' else e.cell_type.split('_')[0] + '_cells'}"
                " (or type cells, which takes every cell type)"
            )
        if not 0 <= layer < e.num_layers:
            raise SettingsError(
                f"setting 'layer': {layer} is out of range for {e.source}, which has "
                f"{e.num_layers} layer(s); fix: use a layer index in [0, {e.num_layers - 1}]",
                setting="layer"
            )
    return entries


def _inputs(net: models.Network, layer: int, mode: str) -> int:
    """Input channels the stimulus reaches: the network's inputs when it is driven whole
    (``in_network``), else the inputs of the characterized layer's cells."""
    return net.layers[0 if mode == "in_network" else layer].W_ih.shape[1]


def _vectors(entries, layer, mode, channels, dtype):
    """Each network's input-channel vectors, and the shared ``channel`` coordinate (or None)."""
    vecs, chans = [], {}
    for e in entries:
        v, chan = _channel_vectors(channels, _inputs(e.network, layer, mode))
        vecs.append(v.astype(dtype))
        chans[None if chan is None else tuple(chan)] = e.source
    if len(chans) > 1:
        raise SettingsError(
            f"setting 'channels': 'each' needs networks with equal input sizes, but "
            f"{' and '.join(f'{src} has {len(c)}' for c, src in chans.items())} input channels; "
            "fix: characterize them in separate runs, or use channels: all", setting="channels"
        )
    chan = next(iter(chans))
    return vecs, None if chan is None else list(chan)


def _params(entries, layer, vecs, chan, dtype, n_max, n_dir):
    """Per-cell parameters of networks of one cell type, NaN-padded to ``n_max`` cells and
    ``n_dir`` directions: DataArrays a, r, bi, bh with dims
    (network, cell, [channel], [direction], gate).

    The ``direction`` dim (``forward``, ``reverse``) appears when a network of the run is
    bidirectional; a reverse-direction cell is driven by the stimulus in its own processing order.
    """
    cell_type = entries[0].cell_type
    G = len(GATES[cell_type])
    shape = (len(entries), n_max, len(chan or [None]), n_dir, G)
    arrays = {k: np.full(shape, np.nan, dtype=dtype) for k in ("a", "r", "bi", "bh")}
    for i, (e, v_rows) in enumerate(zip(entries, vecs)):
        net, L = e.network, e.network.layers[layer]
        for d, suffix in enumerate(("", REVERSE_SUFFIX)[: net.directions]):
            mats = [getattr(L, name + suffix).astype(dtype) for name in ("W_ih", "W_hh", "b_ih", "b_hh")]
            for c, v in enumerate(v_rows):
                for k, val in zip(("a", "r", "bi", "bh"), kernels.isolate(*mats, cell_type, v)):
                    arrays[k][i, : e.size, c, d] = val
    coords = {NETWORK: [e.label for e in entries], CELL: np.arange(n_max),
              DIRECTION: ["forward", "reverse"][:n_dir],
              GATE: list(GATES[cell_type]) if G > 1 else ["h"]}
    dims = [NETWORK, CELL, CHANNEL, DIRECTION, GATE]
    if chan is not None:
        coords[CHANNEL] = chan
    out = {k: xr.DataArray(v, dims=dims, coords=coords) for k, v in arrays.items()}
    drop = ([CHANNEL] if chan is None else []) + ([DIRECTION] if n_dir == 1 else [])
    return {k: v.squeeze(drop, drop=True) for k, v in out.items()}


def _simulate_block(cell_type, backend, traces, h0, c0, a, r, bi, bh, x):
    """Core of the isolated DUT on one dask block.

    ``a, r, bi, bh``: ``(*P, G)`` per-cell parameters; ``x``: ``(*X, T)`` stimuli. ``P`` and ``X`` are
    the block's broadcast shapes as xarray passes them (cell-side and stimulus-side dims; on every
    axis one of the two is 1, and ``X`` may lack leading axes). Every cell meets every stimulus:
    the result is ``(*broadcast(P, X), [trace], T)``.
    """
    P, X, T = a.shape[:-1], x.shape[:-1], x.shape[-1]
    k = max(len(P), len(X))
    P, X = (1,) * (k - len(P)) + P, (1,) * (k - len(X)) + X
    flat = [p.reshape(-1, p.shape[-1]) for p in (a, r, bi, bh)]
    out = kernels.simulate(cell_type, *flat, np.ascontiguousarray(x.reshape(-1, T)), h0=h0, c0=c0,
                           backend=backend, traces=traces)
    if traces:
        h, tr = out
        out = np.stack([h] + [tr[name] for name in kernels.TRACES[cell_type]], axis=-2)
    tail = out.shape[2:]  # ([trace], T)
    out = out.reshape(P + X + tail)
    order = [axis for j in range(k) for axis in (j, k + j)] + list(range(2 * k, out.ndim))
    return out.transpose(order).reshape(tuple(p * q for p, q in zip(P, X)) + tail)


def _network_block(cell_type, layers, vecs, n_max, x) -> np.ndarray:
    """Whole-network run: hidden outputs of the last of ``layers`` for each channel vector.

    ``x`` is ``(*stim, T)``; returns ``(n_max, C, *stim, T)``, cells beyond the network's size NaN.
    """
    from testbench.kernels.network import forward

    stim_shape, T = x.shape[:-1], x.shape[-1]
    xs = x.reshape(-1, T)
    N = layers[-1][1].shape[1]
    out = np.full((n_max, len(vecs), xs.shape[0], T), np.nan, dtype=x.dtype)
    for c, v in enumerate(vecs):
        h = forward(cell_type, layers, None, None, xs[:, :, None] * v[None, None, :],
                    readout_mode="every", dtype=x.dtype)  # (S, T, N)
        out[:N, c] = np.moveaxis(h, -1, 0)
    return out.reshape((n_max, len(vecs)) + stim_shape + (T,))


def _in_network(entries, layer, vecs, chan, x: xr.DataArray) -> xr.DataArray:
    """Drive each whole network with the stimulus and record every cell of ``layer`` (coupled)."""
    import dask
    import dask.array as da

    n_max, xv = max(e.size for e in entries), np.ascontiguousarray(x.values)
    block_shape = (n_max, len(chan or [None])) + xv.shape
    blocks = []
    for e, v in zip(entries, vecs):
        layers = [(L.W_ih, L.W_hh, L.b_ih, L.b_hh) for L in e.network.layers[: layer + 1]]
        task = dask.delayed(guard(_network_block), pure=True)(e.cell_type, layers, v, n_max, xv)
        blocks.append(da.from_delayed(task, block_shape, dtype=xv.dtype))
    dims = [NETWORK, CELL, CHANNEL, *x.dims]
    coords = {NETWORK: [e.label for e in entries], CELL: np.arange(n_max),
              **{d: x[d] for d in x.dims}}
    if chan is not None:
        coords[CHANNEL] = chan
    resp = xr.DataArray(da.stack(blocks), dims=dims, coords=coords)
    return resp if chan is not None else resp.squeeze(CHANNEL, drop=True)


def _isolated(entries, layer, vecs, chan, x: xr.DataArray, *, backend, dtype, traces, chunk_cells,
              chunk_points, h0, c0, stimulus: xr.DataArray) -> xr.DataArray:
    """Simulate every cell alone, each network with its own cell type (one kernel per type).

    ``x`` is ``stimulus`` cast to ``dtype``, time last. A response of one cell type without traces
    on the CPU is registered for metrics-only work (:mod:`testbench.streaming`).
    """
    n_max = max(e.size for e in entries)
    n_dir = max(e.network.directions for e in entries)
    x = x.chunk({d: (chunk_points if d != TIME else -1) for d in x.dims})
    parts = []
    for cell_type in dict.fromkeys(e.cell_type for e in entries):
        group = [i for i, e in enumerate(entries) if e.cell_type == cell_type]
        params = _params([entries[i] for i in group], layer, [vecs[i] for i in group], chan, dtype,
                         n_max, n_dir)
        params = {k: v.chunk({CELL: chunk_cells}) for k, v in params.items()}
        out_core = [TRACE, TIME] if traces else [TIME]
        sizes = {TRACE: 1 + len(kernels.TRACES[cell_type])} if traces else {}
        resp = xr.apply_ufunc(
            guard(partial(_simulate_block, cell_type, backend, traces, h0, c0)),
            params["a"], params["r"], params["bi"], params["bh"], x,
            input_core_dims=[[GATE], [GATE], [GATE], [GATE], [TIME]],
            output_core_dims=[out_core],
            dask="parallelized", output_dtypes=[np.dtype(dtype)],
            dask_gufunc_kwargs={"output_sizes": sizes, "allow_rechunk": False},
        )
        if traces:
            resp = resp.assign_coords({TRACE: ["h", *kernels.TRACES[cell_type]]})
        parts.append(resp)
    if len(parts) == 1:
        if not traces and backend == "cpu":
            streaming.register(parts[0], cell_type, (params["a"], params["r"], params["bi"],
                                                     params["bh"]), x, stimulus, h0, c0)
        return parts[0]
    return xr.concat(parts, dim=NETWORK).sel({NETWORK: [e.label for e in entries]})  # as given


def _prepare(cell_types: tuple[str, ...], weights, mode, layer, channels, backend, dtype, traces,
             h0, c0, trust_pickle):
    """Every check of a DUT's settings against its networks (shared by the node and its hook).

    Returns the network grid's entries, the input-channel vectors of each and the ``channel``
    coordinate (or None).
    """
    if backend == "cuda":
        from numba import cuda

        if not cuda.is_available():
            exc = BackendError(
                "setting 'backend': 'cuda' was asked for but no CUDA GPU is available here; "
                "fix: use backend: cpu (or run on a machine with an NVIDIA GPU and its driver)"
            )
            exc.setting = "backend"
            raise exc
    try:
        entries = _load_networks(weights, cell_types, layer, trust_pickle)
    except TestbenchError as exc:  # missing, unsafe or malformed files are the weights' problem
        if getattr(exc, "setting", None) is None:
            exc.setting = "weights"
        raise
    if mode == "in_network" and any(e.network.directions > 1 for e in entries):
        raise SettingsError(
            "setting 'mode': 'in_network' does not support bidirectional networks yet; fix: use "
            "mode: isolated (it adds a 'direction' dimension)", setting="mode"
        )
    if mode == "in_network" and (traces or h0 or c0 or backend != "cpu"):
        raise SettingsError(
            "settings 'traces', 'h0', 'c0' and 'backend' apply to mode 'isolated' only; got "
            f"traces={traces}, h0={h0}, c0={c0}, backend={backend!r} with mode 'in_network'; fix: "
            "leave them at their defaults (the whole network starts from a zero state)",
            setting="mode"
        )
    types = sorted({e.cell_type for e in entries})
    if traces and len(types) > 1:
        raise SettingsError(
            f"setting 'traces': the networks have different cell types ({', '.join(types)}), whose "
            "internal traces differ; fix: list networks of one cell type per DUT node when "
            "recording traces, or set traces: false", setting="traces")
    vecs, chan = _vectors(entries, layer, mode, channels, dtype)
    return entries, vecs, chan


def _check(cell_types: tuple[str, ...], settings: dict, inputs: dict) -> Facts:
    """Preflight hook of the DUT nodes: the checks of :func:`_prepare` and the output's facts."""
    s = settings
    entries, _, chan = _prepare(
        cell_types, s["weights"], s["mode"], s["layer"], s["channels"], s["backend"], s["dtype"],
        s["traces"], s["h0"], s["c0"], s["trust_pickle"])
    stim = inputs["stimulus"]
    n_max = max(e.size for e in entries)
    n_dir = max(e.network.directions for e in entries)
    n_trace = 1 + len(kernels.TRACES[entries[0].cell_type]) if s["traces"] else 1
    grid = {NETWORK: len(entries), CELL: n_max, CHANNEL: len(chan or [None]), DIRECTION: n_dir}
    dims = {k: n for k, n in grid.items() if n > 1 or k not in (CHANNEL, DIRECTION)}
    dims.update(stim.dims)
    if s["traces"]:
        dims[TRACE] = n_trace
    coords = {NETWORK: tuple(e.label for e in entries), CHECKSUM: tuple(e.checksum for e in entries),
              SOURCE: tuple(e.source for e in entries)}
    T = stim.length_steps
    if T is None:  # a custom stimulus without a hook: its length is unknown before computing
        return Facts(dims, coords, None, stim.dt)
    itemsize = np.dtype(s["dtype"]).itemsize
    # kernel output and its reordered copy, plus the analyzers' float64 working copies
    per_sample = 2 * itemsize + ANALYZER_BYTES_PER_SAMPLE
    points = math.prod(stim.dims.values())
    if s["mode"] == "in_network":  # one task per network, all stimulus points at once
        block = Block(n_max * grid[CHANNEL], points, T, per_sample, tunable=False)
    else:
        block = Block(min(s["chunk_cells"], n_max),
                      math.prod(min(s["chunk_points"], n) for n in stim.dims.values()), T,
                      per_sample * n_trace * len(entries) * grid[CHANNEL] * n_dir)
    return Facts(dims, coords, T, stim.dt, eager_bytes=itemsize * T * points, block=block)


def _cells(cell_types: tuple[str, ...], stimulus: xr.DataArray, weights, mode, layer, channels,
           backend, dtype, traces, chunk_cells, chunk_points, h0, c0,
           trust_pickle=False) -> xr.DataArray:
    if TIME not in stimulus.dims:
        raise SettingsError("input 'stimulus' has no 'time' dimension; fix: connect a stimulus node")
    entries, vecs, chan = _prepare(
        cell_types, weights, mode, layer, channels, backend, dtype, traces, h0, c0, trust_pickle)
    x = stimulus.astype(dtype).transpose(..., TIME)
    if mode == "in_network":
        resp = _in_network(entries, layer, vecs, chan, x)
    else:
        resp = _isolated(entries, layer, vecs, chan, x, backend=backend, dtype=dtype,
                         traces=traces, chunk_cells=chunk_cells, chunk_points=chunk_points,
                         h0=h0, c0=c0, stimulus=stimulus)
    resp = resp.assign_coords(schema.network_coords(entries))
    resp.name = "response"
    resp.attrs = {
        "units": "1",
        "long_name": f"{mode} cell output h_t" + (" and traces" if traces else ""),
        "mode": mode,
        "layer": layer,
        "dt": stimulus.attrs.get("dt", 1.0),
        "weights": json.dumps([e.describe() for e in entries]),
    }
    return resp


_SETTINGS_DOC = """
    Parameters
    ----------
    stimulus : xr.DataArray
        Input signal with dims ``(*sweep dims, time)`` (any stimulus node).
    weights : str, list of str or mapping of str to str
        Weights to characterize: ``zoo:<name>`` (see ``testbench zoo``), or a file that
        :func:`testbench.models.load` reads (testbench or Keras ``.h5``, PyTorch ``.pt``,
        ``.keras``, ``.onnx``). A list characterizes several networks along the ``network``
        dimension (seeds, variants and controls of one dataset and size may share a run; each is
        simulated with its own cell type; cells of smaller networks are NaN); a mapping
        ``{label: source}`` names them. Labels default to the zoo name, the metadata ``name`` or
        the file stem. Default ``zoo:co2-128``.
    trust_pickle : bool
        Permit a PyTorch ``.pt`` file that holds pickled Python objects (a whole ``nn.Module``
        saved with ``torch.save(model)``). Unpickling runs code stored in the file, so set it only
        for files you trust; a warning is printed when it is used. Default false: tensors only
        (``torch.load(weights_only=True)``); save ``model.state_dict()`` to need no trust.
    mode : 'isolated' | 'in_network'
        ``isolated`` (the paper's method): each cell is a one-unit system driven alone, with only
        its self-recurrence. ``in_network``: the whole network (layers 0..``layer``) is driven by
        the stimulus and every cell of ``layer`` is recorded, coupled to all the others; compare the
        two cell by cell. Default ``isolated``.
    layer : int
        Index of the recurrent layer whose cells are characterized, >= 0. Default 0.
    channels : 'all' | 'each' | list of int
        How the scalar stimulus reaches the input channels: ``all`` drives every channel (v = 1),
        a list drives those channels only (one-hot sum), ``each`` drives one channel at a time and
        adds a ``channel`` dimension. Default ``all``.
    backend : 'cpu' | 'cuda'
        Numba CPU-parallel kernel or CUDA kernel (needs a GPU); isolated mode only. Default ``cpu``.
    dtype : 'float32' | 'float64'
        Simulation precision. float32 runs about 4x faster, its activations within 1e-6 of
        tanh/sigmoid (float64's within 4 ulp). Default ``float64``.
    traces : bool
        Also return the internal traces (LSTM: c, i, f, g, o; GRU: r, z, n) along a ``trace``
        dimension whose first entry ``h`` is the output. Default false.
    chunk_cells : int
        Cells per dask chunk, >= 1. Default 256.
    chunk_points : int
        Stimulus sweep points per dask chunk, >= 1. A chunk holds chunk_cells x chunk_points x T
        samples of response (32 MB in float64 with the defaults and T = 1000): these two settings
        bound the memory of a run, whatever the number of cells and sweep points. Default 16.
    h0 : float
        Initial hidden state h_0 of every cell, dimensionless. Default 0.
    c0 : float
        Initial cell state c_0 (LSTM only), dimensionless. Default 0.

    Returns
    -------
    xr.DataArray
        ``response``: dims
        ``(network, cell, [channel], [direction], *sweep dims, [trace], time)``,
        dimensionless, dask-backed (chunked along ``cell``). Coordinates along ``network``: its
        label, ``dataset``, ``network_size``, ``seed``, ``variant``, ``cell_type``, ``checksum``,
        ``source``, ``n_cells`` (:mod:`testbench.schema`); padded cells are NaN. attrs:
        ``weights`` (JSON: label, source, sha256), ``mode``, ``layer``, ``dt``.
"""


def _make(cell_types: tuple[str, ...], type_name: str, title: str):
    def node(
        stimulus: Stimulus,
        *,
        weights: str | list[str] | dict[str, str] = DEFAULT_WEIGHTS,
        trust_pickle: bool = False,
        mode: Literal["isolated", "in_network"] = "isolated",
        layer: Annotated[int, Range(ge=0)] = 0,
        channels: Literal["all", "each"] | list[Annotated[int, Range(ge=0)]] = "all",
        backend: Literal["cpu", "cuda"] = "cpu",
        dtype: Literal["float32", "float64"] = "float64",
        traces: bool = False,
        chunk_cells: Annotated[int, Range(ge=1)] = 256,
        chunk_points: Annotated[int, Range(ge=1)] = 16,
        h0: float = 0.0,
        c0: float = 0.0,
    ) -> xr.DataArray:
        return _cells(cell_types, stimulus, weights, mode, layer, channels, backend, dtype, traces,
                      chunk_cells, chunk_points, h0, c0, trust_pickle)

    node.__name__ = node.__qualname__ = type_name
    node.__doc__ = title + "\n" + _SETTINGS_DOC
    return dut(type_name, check=partial(_check, cell_types))(node)


lstm_cells = _make(("lstm",), "lstm_cells",
                   "Isolated LSTM cells: each cell driven alone by the stimulus (the paper's method).")
gru_cells = _make(("gru",), "gru_cells", "Isolated GRU cells: each cell driven alone by the stimulus.")
rnn_cells = _make(("rnn_tanh", "rnn_relu"), "rnn_cells",
                  "Isolated vanilla RNN cells (tanh or relu): each cell driven alone by the stimulus.")
cells = _make(tuple(CELL_TYPES), "cells",
              "Isolated cells of any recurrent type (LSTM, GRU, tanh or relu RNN): each network "
              "of the list simulated with its own cell type.")
