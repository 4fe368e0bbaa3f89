"""Devices under test: the isolated cells of a trained recurrent layer (the paper's method).

Each cell u of layer k becomes a one-unit dynamical system made of its input weights (projected on
the input-channel vector v), its own recurrent weight and its biases; see DESIGN.md "Isolating a cell"
and :func:`kernels.isolate`. The simulation itself runs in :mod:`kernels` (Numba CPU or CUDA).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Literal

import numpy as np
import xarray as xr

import kernels
from testbench import weights as W
from testbench.engine import guard
from testbench.errors import BackendError, SettingsError, WeightsError
from testbench.nodes import Range, dut

TRACES = {"lstm": ("h", "c", "i", "f", "g", "o"), "gru": ("h", "r", "z", "n"),
          "rnn_tanh": ("h",), "rnn_relu": ("h",)}
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
            f"list such as [0]"
        )
    v = np.zeros((1, m))
    v[0, sorted(set(channels))] = 1.0
    return v, None


def _network_key(net: W.Network, path) -> tuple[str, int]:
    dataset = str(net.metadata.get("dataset") or path.stem)
    return dataset, net.hidden_size


def _params(sources, cell_type_wanted, layer, channels, dtype):
    """Per-cell parameters of every network on a (dataset, network_size) grid, NaN-padded.

    Returns a dict of DataArrays a, r, bi, bh with dims (dataset, network_size, cell, [channel], gate),
    the ``n_cells`` coordinate and the provenance list.
    """
    nets, prov = {}, []
    for src in sources:
        path = W.resolve(src)
        net = W.load(path)
        if net.cell_type not in cell_type_wanted:
            raise WeightsError(
                f"{src}: holds a {net.cell_type} network, but this node simulates "
                f"{'/'.join(cell_type_wanted)} cells; fix: use type "
                f"{'lstm_cells' if net.cell_type == 'lstm' else net.cell_type.split('_')[0] + '_cells'}"
            )
        if not 0 <= layer < len(net.layers):
            raise SettingsError(
                f"setting 'layer': {layer} is out of range for {src}, which has "
                f"{len(net.layers)} layer(s); fix: use a layer index in [0, {len(net.layers) - 1}]"
            )
        key = _network_key(net, path)
        if key in nets:
            raise SettingsError(
                f"setting 'weights': {src} and {nets[key][1]} are both a {key[1]}-cell network of "
                f"dataset '{key[0]}'; the result grid (dataset, network_size) needs each pair once; "
                "fix: characterize them in separate runs"
            )
        nets[key] = (net, src)
        prov.append({"source": str(src), "path": str(path), "sha256": W.checksum(path),
                     "dataset": key[0], "network_size": key[1], "cell_type": net.cell_type})
    datasets = sorted({k[0] for k in nets})
    sizes = sorted({k[1] for k in nets})
    n_max = max(sizes)
    first = next(iter(nets.values()))[0]
    m = first.layers[layer].W_ih.shape[1]
    vecs, chan = _channel_vectors(channels, m)
    G = first.gates
    shape = (len(datasets), len(sizes), n_max, len(vecs), G)
    arrays = {k: np.full(shape, np.nan, dtype=dtype) for k in ("a", "r", "bi", "bh")}
    n_cells = np.zeros((len(datasets), len(sizes)), dtype=np.int64)
    for (ds_name, size), (net, src) in nets.items():
        L = net.layers[layer]
        if L.W_ih.shape[1] != m:
            raise SettingsError(
                f"setting 'weights': {src} has {L.W_ih.shape[1]} input channels in layer {layer}, "
                f"others have {m}; networks characterized together must share their input size"
            )
        i, j = datasets.index(ds_name), sizes.index(size)
        n_cells[i, j] = size
        for c, v in enumerate(vecs):
            a, r, bi, bh = kernels.isolate(L.W_ih.astype(dtype), L.W_hh.astype(dtype),
                                           L.b_ih.astype(dtype), L.b_hh.astype(dtype),
                                           net.cell_type, v.astype(dtype))
            for k, val in zip(("a", "r", "bi", "bh"), (a, r, bi, bh)):
                arrays[k][i, j, :size, c] = val
    coords = {"dataset": datasets, "network_size": sizes, "cell": np.arange(n_max),
              "gate": list(W.GATES[first.cell_type]) if G > 1 else ["h"]}
    dims = ["dataset", "network_size", "cell", "channel", "gate"]
    if chan is not None:
        coords["channel"] = chan
    out = {k: xr.DataArray(v, dims=dims, coords=coords) for k, v in arrays.items()}
    if chan is None:
        out = {k: v.squeeze("channel", drop=True) for k, v in out.items()}
    n_cells_da = xr.DataArray(n_cells, dims=("dataset", "network_size"),
                              coords={"dataset": datasets, "network_size": sizes},
                              attrs={"description": "cells in each network; larger cell indices "
                                                    "are NaN padding"})
    return out, n_cells_da, prov, first.cell_type


def _simulate_block(cell_type, backend, traces, h0, c0, n_core, a, r, bi, bh, x):
    """Core of the DUT: (..., G) params and ([1...], *stim, T) stimulus → (..., *stim, [trace], T).

    ``n_core`` is the number of stimulus dims (sweeps + time); any leading axes of ``x`` are the
    size-1 broadcast axes xarray may insert: the stimulus is identical for every cell.
    """
    lead = a.shape[:-1]
    x0 = x.reshape((-1,) + x.shape[x.ndim - n_core:])[0]
    stim_shape, T = x0.shape[:-1], x0.shape[-1]
    flat = [p.reshape(-1, p.shape[-1]) for p in (a, r, bi, bh)]
    xs = np.ascontiguousarray(x0.reshape(-1, T))
    out = kernels.simulate(cell_type, *flat, xs, h0=h0, c0=c0, backend=backend, traces=traces)
    if traces:
        h, tr = out
        stack = np.stack([h] + [tr[k] for k in TRACES[cell_type][1:]], axis=-2)
        return stack.reshape(lead + stim_shape + stack.shape[-2:])
    return out.reshape(lead + stim_shape + (T,))


def _isolated(cell_types: tuple[str, ...], stimulus: xr.DataArray, weights, layer, channels, backend,
              dtype, traces, chunk_cells, h0, c0) -> xr.DataArray:
    if backend == "cuda":
        from numba import cuda

        if not cuda.is_available():
            raise BackendError(
                "setting 'backend': 'cuda' was asked for but no CUDA GPU is available here; "
                "fix: use backend: cpu (or run on a machine with an NVIDIA GPU and its driver)"
            )
    if "time" not in stimulus.dims:
        raise SettingsError("input 'stimulus' has no 'time' dimension; fix: connect a stimulus node")
    sources = [weights] if isinstance(weights, str) else list(weights)
    params, n_cells, prov, cell_type = _params(sources, cell_types, layer, channels, dtype)
    params = {k: v.chunk({"cell": chunk_cells}) for k, v in params.items()}
    x = stimulus.astype(dtype).transpose(..., "time")
    stim_dims = [d for d in x.dims]
    out_core = stim_dims[:-1] + (["trace", "time"] if traces else ["time"])
    sizes = {"trace": len(TRACES[cell_type])} if traces else {}
    resp = xr.apply_ufunc(
        guard(partial(_simulate_block, cell_type, backend, traces, h0, c0, len(stim_dims))),
        params["a"], params["r"], params["bi"], params["bh"], x,
        input_core_dims=[["gate"], ["gate"], ["gate"], ["gate"], stim_dims],
        output_core_dims=[out_core],
        dask="parallelized", output_dtypes=[np.dtype(dtype)],
        dask_gufunc_kwargs={"output_sizes": sizes, "allow_rechunk": False},
    )
    if traces:
        resp = resp.assign_coords(trace=list(TRACES[cell_type]))
    resp = resp.assign_coords(n_cells=n_cells)
    resp.name = "response"
    resp.attrs = {
        "units": "1",
        "long_name": "isolated cell output h_t" + (" and traces" if traces else ""),
        "cell_type": cell_type,
        "layer": layer,
        "dt": stimulus.attrs.get("dt", 1.0),
        "weights": json.dumps(prov),
    }
    return resp


_SETTINGS_DOC = """
    Parameters
    ----------
    stimulus : xr.DataArray
        Input signal with dims ``(*sweep dims, time)`` (any stimulus node).
    weights : str or list of str
        Weights to characterize: ``zoo:<name>`` (see ``testbench zoo``), a testbench ``.h5`` file, or
        a PyTorch ``.pt`` file. A list characterizes several networks on one
        ``(dataset, network_size)`` grid (cells of smaller networks are NaN). Default
        ``zoo:co2-128``.
    layer : int
        Index of the recurrent layer whose cells are isolated, >= 0. Default 0.
    channels : 'all' | 'each' | list of int
        How the scalar stimulus reaches the input channels: ``all`` drives every channel (v = 1),
        a list drives those channels only (one-hot sum), ``each`` drives one channel at a time and
        adds a ``channel`` dimension. Default ``all``.
    backend : 'cpu' | 'cuda'
        Numba CPU-parallel kernel or CUDA kernel (needs a GPU). Default ``cpu``.
    dtype : 'float32' | 'float64'
        Simulation precision. float32 uses a fast activation approximation (error <= 1e-6).
        Default ``float64``.
    traces : bool
        Also return the internal traces (LSTM: c, i, f, g, o; GRU: r, z, n) along a ``trace``
        dimension whose first entry ``h`` is the output. Default false.
    chunk_cells : int
        Cells per dask chunk, >= 1: the unit of parallel work and of memory. Default 512.
    h0 : float
        Initial hidden state h_0 of every cell, dimensionless. Default 0.
    c0 : float
        Initial cell state c_0 (LSTM only), dimensionless. Default 0.

    Returns
    -------
    xr.DataArray
        ``response``: dims ``(dataset, network_size, cell, [channel], *sweep dims, [trace], time)``,
        dimensionless, dask-backed (chunked along ``cell``). Coordinate ``n_cells`` gives each
        network's cell count; padded cells are NaN. attrs: ``weights`` (JSON: source, sha256),
        ``cell_type``, ``layer``, ``dt``.
"""


def _make(cell_types: tuple[str, ...], type_name: str, title: str):
    def node(
        stimulus: xr.DataArray,
        *,
        weights: str | list[str] = DEFAULT_WEIGHTS,
        layer: Annotated[int, Range(ge=0)] = 0,
        channels: Literal["all", "each"] | list[Annotated[int, Range(ge=0)]] = "all",
        backend: Literal["cpu", "cuda"] = "cpu",
        dtype: Literal["float32", "float64"] = "float64",
        traces: bool = False,
        chunk_cells: Annotated[int, Range(ge=1)] = 512,
        h0: float = 0.0,
        c0: float = 0.0,
    ) -> xr.DataArray:
        return _isolated(cell_types, stimulus, weights, layer, channels, backend, dtype, traces,
                         chunk_cells, h0, c0)

    node.__name__ = node.__qualname__ = type_name
    node.__doc__ = title + "\n" + _SETTINGS_DOC
    return dut(type_name)(node)


lstm_cells = _make(("lstm",), "lstm_cells",
                   "Isolated LSTM cells: each cell driven alone by the stimulus (the paper's method).")
gru_cells = _make(("gru",), "gru_cells", "Isolated GRU cells: each cell driven alone by the stimulus.")
rnn_cells = _make(("rnn_tanh", "rnn_relu"), "rnn_cells",
                  "Isolated vanilla RNN cells (tanh or relu): each cell driven alone by the stimulus.")
