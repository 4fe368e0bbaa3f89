"""Ablation: knock out each cell of a trained network in turn and measure the change of its test error.

A knock-out replaces what a cell *emits* at every step (the hidden output ``h_u`` seen by the layer's
own recurrence and by the readout), *including the initial state* ``h_0`` that the first step reads;
an LSTM's internal cell state is left alone:

* ``zero``: ``h_u = 0``, so the cell reaches neither the other cells nor the readout;
* ``mean``: ``h_u`` = the cell's mean output of the intact network over every step of every evaluated
  test sequence (the "mean activation on the data");
* ``clamp``: ``h_u`` = a given constant.

All knock-out variants of a network (one per cell, plus the intact network) run in one batched pass:
variant ``k`` multiplies the hidden output by ``mask[k]`` and adds ``offset[k]`` at every step and to
the initial state. Replacing ``h_0`` too makes a ``mean``/``clamp`` cell a constant source from the
start, i.e. exactly the model copy whose recurrent and readout biases absorb the cell's value (the
masks of :func:`kernels.network.forward` leave ``h_0 = 0``, which differs at the first step). The
test error is the network's own metric on its own test split, rebuilt from its weights metadata by
:func:`testbench.models.test_set` (as for :func:`testbench.training.evaluate`): misclassification
rate (classification, in [0, 1]) or MAE in the dataset's units (forecasting). The *impact* of a cell
is the knocked-out error minus the intact error (positive: the network needs the cell).

:func:`forward_copies` is the slow, obviously correct reference: one modified copy of the network per
variant, each run with :func:`kernels.network.forward`. Tests compare the batched pass against it.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Literal

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from testbench import data as D
from testbench import models, schema
from testbench.errors import SettingsError, TestbenchError, WeightsError
from testbench.nodes import Facts, Range, analyzer
from testbench.schema import CELL, CHECKSUM, NETWORK, SOURCE

MODES = ("zero", "mean", "clamp")
#: Rows (variants x sequences) of one batched block; bounds memory to about
#: ``rows * 4 * N * 8`` bytes (64 MiB for N = 128 and the default).
DEFAULT_ROWS = 16384
#: Sequences per chunk when computing the mean activation of the intact network.
MEAN_CHUNK = 2048


def _layers(net: models.Network) -> list[tuple]:
    return [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]


def mean_activation(net: models.Network, x: np.ndarray) -> np.ndarray:
    """Mean hidden output of each last-layer cell of the intact network over all steps and sequences.

    Parameters
    ----------
    net : Network
    x : ndarray, (B, T, m)
        Input sequences.

    Returns
    -------
    ndarray, float64, (N,)
        Dimensionless (a cell output).
    """
    from testbench.kernels.network import forward

    total = np.zeros(net.hidden_size)
    for a in range(0, len(x), MEAN_CHUNK):
        h = forward(net.cell_type, _layers(net), None, None, x[a:a + MEAN_CHUNK], readout_mode="every")
        total += h.sum(axis=(0, 1))
    return total / (x.shape[0] * x.shape[1])


def knockout_masks(n_cells: int, mode: str, *, values: np.ndarray | float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mask and offset rows of the intact network followed by one knock-out per cell.

    Parameters
    ----------
    n_cells : int
        Cells N of the layer, >= 1.
    mode : {'zero', 'mean', 'clamp'}
        Knock-out mode (see the module docstring).
    values : float or ndarray (N,)
        Value the knocked-out cell emits: ignored for ``zero``; per-cell means for ``mean``; one
        constant (or one per cell) for ``clamp``. Dimensionless.

    Returns
    -------
    mask, offset : ndarray, float64, (N + 1, N)
        Row 0 is the intact network (ones, zeros); row ``u + 1`` knocks out cell ``u``.
    """
    if mode not in MODES:
        raise SettingsError(f"setting 'mode': {mode!r} is not one of {', '.join(MODES)}")
    mask = np.ones((n_cells + 1, n_cells))
    offset = np.zeros_like(mask)
    cells = np.arange(n_cells)
    mask[cells + 1, cells] = 0.0
    if mode != "zero":
        offset[cells + 1, cells] = np.broadcast_to(np.asarray(values, np.float64), (n_cells,))
    return mask, offset


def forward_copies(net: models.Network, x: np.ndarray, mask: np.ndarray, offset: np.ndarray, *,
                   dtype: str = "float64") -> np.ndarray:
    """Reference: one modified copy of the network per variant, each run by :func:`kernels.network.forward`.

    Replacing the last layer's output ``h`` by ``h * mask + offset`` is the same network as scaling
    the columns of its ``W_hh`` and of the readout by ``mask`` and folding ``W @ offset`` into
    their biases; each copy is built that way and run without masks.

    Parameters
    ----------
    net : Network
        One-layer network with a readout read at the last step.
    x : ndarray, (B, T, m)
    mask, offset : ndarray, (K, N)
    dtype : {'float64', 'float32'}
        Precision of every copy.

    Returns
    -------
    ndarray, (K, B, n_out), of ``dtype``
    """
    from testbench.kernels.network import forward

    W_ih, W_hh, b_ih, b_hh = (np.asarray(a, dtype) for a in _layers(net)[0])
    Wr, br = np.asarray(net.readout_weight, dtype), np.asarray(net.readout_bias, dtype)
    outs = []
    for m, o in zip(np.asarray(mask, dtype), np.asarray(offset, dtype)):
        layer = (W_ih, W_hh * m, b_ih, b_hh + W_hh @ o)
        outs.append(forward(net.cell_type, [layer], Wr * m, br + Wr @ o, x, dtype=dtype))
    return np.stack(outs)


def _lstm_last(W_ih, W_hh, b_ih, b_hh, x, mask, offset, rows):
    """Last hidden output of a one-layer LSTM for every (variant, sequence): ``(K, B, N)``.

    Variants are stacked with the sequences into the rows of one matrix per step: one GEMM for all
    of them, then one fused element-wise pass (:func:`kernels.cpu.lstm_rows_step`). The variants are
    split into independent blocks, at least one per CPU core, run on threads with single-threaded
    BLAS, so the element-wise work uses every core too.
    """
    from testbench.kernels.cpu import lstm_rows_step

    K, N = mask.shape
    B, T, _ = x.shape
    Wh = np.ascontiguousarray(W_hh.T)  # (N, 4N)
    proj = np.ascontiguousarray((x @ W_ih.T + b_ih + b_hh).transpose(1, 0, 2))  # (T, B, 4N)
    dtype = x.dtype
    out = np.empty((K, B, N), dtype)
    threads = os.cpu_count() or 1
    per = max(1, min(rows // B, -(-K // threads)))  # at least one block per core

    def block(k0):
        kk = min(per, K - k0)
        R = kk * B
        mk = np.repeat(mask[k0:k0 + kk], B, axis=0)
        ok = np.repeat(offset[k0:k0 + kk], B, axis=0)
        h, c = ok.copy(), np.zeros((R, N), dtype)  # h_0 = 0 * mask + offset
        a = np.empty((R, 4 * N), dtype)
        for t in range(T):
            np.matmul(h, Wh, out=a)
            lstm_rows_step(a, proj[t], c, h, mk, ok)
        out[k0:k0 + kk] = h.reshape(kk, B, N)

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(block, range(0, K, per)))
    return out


def forward_variants(net: models.Network, x: np.ndarray, mask: np.ndarray, offset: np.ndarray, *,
                     rows: int = DEFAULT_ROWS, dtype: str = "float64") -> np.ndarray:
    """Readout of every knock-out variant of a one-layer LSTM in one batched pass.

    Parameters
    ----------
    net : Network
        One-layer LSTM with a readout read at the last step (see :func:`check_network`).
    x : ndarray, (B, T, m)
        Input sequences, B, T >= 1.
    mask, offset : ndarray, (K, N)
        Per-variant multipliers and constants on the hidden output (and initial state).
    rows : int
        Variants x sequences per block, >= 1 (memory about ``rows * 4 * N * itemsize`` bytes).
    dtype : {'float64', 'float32'}
        Precision. float64 equals :func:`forward_copies` up to rounding (about 1e-15 relative);
        float32 is about 2-2.5x faster and agrees to about 1e-6 of the output scale.

    Returns
    -------
    ndarray, (K, B, n_out), of ``dtype``
    """
    x = np.asarray(x, dtype)
    arrays = [np.asarray(a, dtype) for a in _layers(net)[0]]
    h = _lstm_last(*arrays, x, np.asarray(mask, dtype), np.asarray(offset, dtype), rows)
    return h @ np.asarray(net.readout_weight, dtype).T + np.asarray(net.readout_bias, dtype)


def check_network(net: models.Network, src) -> None:
    """Refuse networks the ablation cannot score.

    Raises
    ------
    WeightsError
        Unless ``net`` is a one-layer, unidirectional LSTM with a readout read at the last step
        (the zoo's networks).
    """
    problems = []
    if net.cell_type != "lstm":
        problems.append(f"cell type {net.cell_type!r} (only 'lstm' is batched)")
    if len(net.layers) != 1 or net.directions != 1:
        problems.append(f"{len(net.layers)} layer(s), {net.directions} direction(s) (one of each)")
    if net.readout_weight is None or net.readout_mode != "last":
        problems.append("no readout" if net.readout_weight is None
                        else f"readout mode {net.readout_mode!r} (needs 'last')")
    if problems:
        raise WeightsError(
            f"{src}: cannot be ablated: {'; '.join(problems)}; ablation scores one-layer LSTMs with a "
            "last-step readout, as trained by testbench.training.train; fix: ablate a zoo network"
        )


def ablate(net: models.Network, ds: D.Dataset, mode: str = "zero", *, clamp_value: float = 0.0,
           rows: int = DEFAULT_ROWS, dtype: str = "float64") -> tuple[float, np.ndarray, np.ndarray]:
    """Test error of the intact network and of each single-cell knock-out.

    Parameters
    ----------
    net : Network
        Trained network (last-step readout, unidirectional); its last layer's cells are knocked out.
    ds : Dataset
        Its dataset (:func:`testbench.models.test_set`); the ``test`` split is evaluated.
    mode : {'zero', 'mean', 'clamp'}
        Knock-out mode.
    clamp_value : float
        Output of a clamped cell (``clamp`` only), dimensionless; LSTM outputs lie in (-1, 1).
    rows : int
        Block size of the batched pass (see :func:`forward_variants`).
    dtype : {'float64', 'float32'}
        Precision of the batched pass (see :func:`forward_variants`).

    Returns
    -------
    intact : float
        Test error of the intact network (misclassification rate, or MAE in ``ds.units``).
    errors : ndarray, (N,)
        Test error with cell ``u`` knocked out.
    values : ndarray, (N,)
        What each knocked-out cell emitted (0, its mean, or ``clamp_value``).
    """
    check_network(net, net.metadata.get("name", "<network>"))
    x = ds.test.x
    N = net.hidden_size
    values = {"zero": lambda: np.zeros(N), "mean": lambda: mean_activation(net, x),
              "clamp": lambda: np.full(N, float(clamp_value))}[mode]()
    mask, offset = knockout_masks(N, mode, values=values)
    out = forward_variants(net, x, mask, offset, rows=rows, dtype=dtype)
    scores = np.array([ds.score(o, "test") for o in out])
    return float(scores[0]), scores[1:], values


def _networks(weights, trust_pickle: bool) -> list[models.NetworkEntry]:
    """The network grid to ablate (:func:`testbench.models.network_grid`), each network checked.

    Raises
    ------
    TestbenchError
        A missing, unsafe or unsuitable weights file, or two networks with one label; its
        ``setting`` is ``'weights'``.
    """
    try:
        entries = models.network_grid(weights, trust_pickle=trust_pickle)
        for e in entries:
            check_network(e.network, e.source)
    except TestbenchError as exc:
        exc.setting = "weights"
        raise
    return entries


def _check(settings: dict, inputs: dict) -> Facts:
    """Preflight hook of ``ablation``: the networks load and can be ablated; the output's facts."""
    entries = _networks(settings["weights"], settings["trust_pickle"])
    return Facts({NETWORK: len(entries), CELL: max(e.size for e in entries)},
                 {NETWORK: tuple(e.label for e in entries),
                  CHECKSUM: tuple(e.checksum for e in entries),
                  SOURCE: tuple(e.source for e in entries)})


@analyzer("ablation", check=_check)
def ablation(
    *,
    weights: str | list[str] | dict[str, str] = "zoo:co2-128",
    trust_pickle: bool = False,
    mode: Literal["zero", "mean", "clamp"] = "zero",
    clamp_value: float = 0.0,
    data_dir: str | None = None,
    max_test_sequences: Annotated[int, Range(ge=1)] | None = None,
    seed: Annotated[int, Range(ge=0)] = 0,
    rows: Annotated[int, Range(ge=1)] = DEFAULT_ROWS,
    dtype: Literal["float64", "float32"] = "float64",
) -> xr.Dataset:
    """Change of each network's test error when one cell at a time is knocked out.

    Parameters
    ----------
    weights : str or list of str
        Networks to ablate, as for ``lstm_cells``: ``zoo:<name>`` or a testbench ``.h5`` file
        written by ``testbench train`` (its metadata names the dataset and test split). A list
        (or a mapping ``{label: source}``) gives several networks along the ``network`` dim;
        cells of smaller networks are NaN. Default ``zoo:co2-128``.
    trust_pickle : bool
        Permit a PyTorch ``.pt`` file that holds pickled Python objects; unpickling runs code
        stored in the file, so set it only for files you trust (as for ``lstm_cells``). Default
        false: tensors only.
    mode : 'zero' | 'mean' | 'clamp'
        What a knocked-out cell emits at every step: 0; its mean output over the evaluated test
        sequences (all steps) in the intact network; or ``clamp_value``. Default ``zero``.
    clamp_value : float
        Output of a clamped cell (mode ``clamp``), dimensionless (LSTM outputs lie in (-1, 1)).
        Default 0.
    data_dir : str, optional
        Data folder (default: ``$TESTBENCH_DATA`` or ``~/.cache/testbench``).
    max_test_sequences : int, optional
        Evaluate at most this many test sequences (>= 1), a seeded random subset; default all.
    seed : int
        Seed of that subset, >= 0. Default 0.
    rows : int
        Variants x sequences per batched block, >= 1; memory about ``rows * 4 * N * 8`` bytes.
        Default 16384.
    dtype : 'float64' | 'float32'
        Precision of the batched pass: float64 gives the model-copy results to rounding; float32
        is about 2.4x faster and may flip the class of sequences with near-tied logits. Default
        float64.

    Returns
    -------
    xr.Dataset
        ``ablation_impact`` (network, cell): knocked-out minus intact test error (positive: the
        cell helps); ``ablation_error`` (same dims): test error with the cell knocked out;
        ``ablation_intact`` (network): intact test error; ``ablation_value`` (network, cell): what
        the knocked-out cell emitted. Coordinates ``error_metric``, ``error_units`` and
        ``n_test`` (sequences evaluated) per network, and the network coordinates of
        :mod:`testbench.schema`. Padded cells are NaN. Same ``network`` labels and ``cell``
        coordinate as the DUT nodes, so it joins the metric variables by cell.
    """
    entries = _networks(weights, trust_pickle)
    n_max = max(e.size for e in entries)
    err = np.full((len(entries), n_max), np.nan)
    val = np.full_like(err, np.nan)
    intact_arr = np.full(len(entries), np.nan)
    n_test = np.zeros(len(entries), np.int64)
    metric, units = [""] * len(entries), [""] * len(entries)
    for i, e in enumerate(entries):
        ds = models.test_set(e.network, where=e.source, data_dir=data_dir,
                             max_sequences=max_test_sequences, seed=seed)
        intact, errors, values = ablate(e.network, ds, mode, clamp_value=clamp_value, rows=rows,
                                        dtype=dtype)
        err[i, : e.size], val[i, : e.size], intact_arr[i], n_test[i] = errors, values, intact, len(ds.test)
        metric[i], units[i] = ds.metric, ds.units
    coords = {**schema.network_coords(entries), CELL: np.arange(n_max),
              "error_metric": (NETWORK, metric), "error_units": (NETWORK, units),
              "n_test": (NETWORK, n_test)}
    dims2, dims1 = (NETWORK, CELL), (NETWORK,)
    common = {"mode": mode, "dtype": dtype,
              "weights": json.dumps([e.describe() for e in entries])}
    # the networks' error unit when they share one, else each dataset's (as in `error_units`)
    by_dataset = dict(zip((e.dataset for e in entries), units))
    error_units = (units[0] if len(set(units)) == 1
                   else "; ".join(f"{d}: {u}" for d, u in by_dataset.items()))
    return xr.Dataset(
        {
            "ablation_impact": (dims2, err - intact_arr[:, None], {
                **common, "units": error_units, "long_name": "ablation impact",
                "description": "test error with the cell knocked out minus the intact test error"}),
            "ablation_error": (dims2, err, {**common, "units": error_units,
                                            "long_name": "test error with the cell knocked out",
                                            "description": "test error with the cell knocked out"}),
            "ablation_intact": (dims1, intact_arr, {**common, "units": error_units,
                                                    "long_name": "intact test error",
                                                    "description": "test error of the intact network"}),
            "ablation_value": (dims2, val, {**common, "units": "1",
                                            "long_name": "knocked-out cell output",
                                            "description": "output emitted by the knocked-out cell"}),
        },
        coords=coords,
    )
