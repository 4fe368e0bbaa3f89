"""Forward pass of a whole recurrent network (stacked LSTM/GRU/RNN + linear readout) in NumPy.

Knock-out variants of the last layer are evaluated in one batched pass: ``mask`` holds K rows of
per-cell multipliers and ``offset`` K rows of per-cell constants, and variant k replaces the last
layer's hidden output at every step by ``h * mask[k] + offset[k]``. The replaced output is what the
rest of the network sees: the layer's own recurrence (``W_hh``) and the readout. An LSTM's cell state
``c`` is left as it is; only what the cell emits is changed. ``mask = 0, offset = 0`` knocks a cell
out (zero output); ``mask = 0, offset = a`` clamps it to a constant ``a``.

Equations (PyTorch layout and gate order, ``W_ih`` is ``(G*N, m)``):

* LSTM (``i, f, g, o``): ``c' = f*c + i*g``, ``h' = o*tanh(c')``,
* GRU (``r, z, n``): ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``, ``h' = (1-z)*n + z*h``,
* RNN: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (``relu`` for ``rnn_relu``),

with zero initial states. Imports only NumPy.
"""

from __future__ import annotations

import numpy as np

from testbench.kernels.celltypes import CELL_TYPES, GATES


def _sigmoid(a):
    # 0.5*(1+tanh(a/2)) equals 1/(1+exp(-a)) and never overflows
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _layer(cell_type, W_ih, W_hh, b_ih, b_hh, x, mask=None, offset=None):
    """One layer over x ``(..., B, T, m)``; returns hidden outputs ``(..., B, T, N)``.

    ``mask``/``offset`` ``(K, N)`` add a leading variant axis: output ``(K, B, T, N)``.
    """
    N = W_hh.shape[1]
    proj = x @ W_ih.T + b_ih  # (..., B, T, G*N): the input part of every gate, all steps at once
    lead = proj.shape[:-2]
    if mask is not None:
        lead = (mask.shape[0],) + lead
        mask = mask.reshape(mask.shape[0], *(1,) * (len(lead) - 1), N)
        offset = offset.reshape(mask.shape)
    T = proj.shape[-2]
    h = np.zeros(lead + (N,), proj.dtype)
    c = np.zeros_like(h)
    out = np.empty(lead + (T, N), proj.dtype)
    for t in range(T):
        a_in = proj[..., t, :]
        a_h = h @ W_hh.T + b_hh
        if cell_type == "lstm":
            a = a_in + a_h
            i, f, o = (_sigmoid(a[..., k * N:(k + 1) * N]) for k in (0, 1, 3))
            g = np.tanh(a[..., 2 * N:3 * N])
            c = f * c + i * g
            h = o * np.tanh(c)
        elif cell_type == "gru":
            r = _sigmoid(a_in[..., :N] + a_h[..., :N])
            z = _sigmoid(a_in[..., N:2 * N] + a_h[..., N:2 * N])
            n = np.tanh(a_in[..., 2 * N:] + r * a_h[..., 2 * N:])
            h = (1.0 - z) * n + z * h
        elif cell_type == "rnn_tanh":
            h = np.tanh(a_in + a_h)
        else:
            h = np.maximum(a_in + a_h, 0.0)
        if mask is not None:
            h = h * mask + offset
        out[..., t, :] = h
    return out


def forward(cell_type: str, layers, readout_weight, readout_bias, x, *, readout_mode: str = "last",
            mask=None, offset=None, dtype=np.float64) -> np.ndarray:
    """Run a stacked recurrent network and its linear readout over a batch of sequences.

    Parameters
    ----------
    cell_type : str
        ``lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu``.
    layers : sequence of (W_ih, W_hh, b_ih, b_hh)
        Arrays of each layer in PyTorch layout: ``(G*N, m_k)``, ``(G*N, N)``, ``(G*N,)``,
        ``(G*N,)`` with G = 4 (LSTM), 3 (GRU) or 1 (RNN).
    readout_weight, readout_bias : ndarray or None
        ``(n_out, N)`` and ``(n_out,)``; ``None`` returns the last layer's hidden outputs instead.
    x : ndarray, (B, T, m)
        Input sequences, B >= 1, T >= 1.
    readout_mode : str
        ``"last"`` (read the hidden state at the last step) or ``"every"`` (at every step).
    mask : ndarray, (K, N), optional
        Per-cell multipliers on the last layer's hidden output, one row per variant.
    offset : ndarray, (K, N), optional
        Per-cell constants added after the multiplier (zeros when omitted; requires ``mask``).
    dtype : numpy dtype
        Precision of the computation (float64 by default; float32 is faster).

    Returns
    -------
    ndarray
        ``(B, n_out)`` (``"last"``) or ``(B, T, n_out)`` (``"every"``); with ``mask`` a leading axis
        K is added. Without a readout, ``n_out`` is N. NaN inputs propagate as NaN.

    Raises
    ------
    ValueError
        Unknown cell type or readout mode, or shapes that do not agree.
    """
    if cell_type not in CELL_TYPES:
        raise ValueError(f"cell_type {cell_type!r} is not one of {', '.join(CELL_TYPES)}")
    if readout_mode not in ("last", "every"):
        raise ValueError(f"readout_mode {readout_mode!r} is not 'last' or 'every'")
    x = np.asarray(x, dtype)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x has shape {x.shape}; expected (B, T, m) with B, T >= 1")
    layers = [tuple(np.asarray(a, dtype) for a in layer) for layer in layers]
    if not layers:
        raise ValueError("layers is empty; a network needs at least one layer")
    G = GATES[cell_type]
    m = x.shape[2]
    for k, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        N = W_hh.shape[1]
        want = ((G * N, m), (G * N, N), (G * N,), (G * N,))
        got = (W_ih.shape, W_hh.shape, b_ih.shape, b_hh.shape)
        if got != want:
            raise ValueError(
                f"layer {k}: shapes (W_ih, W_hh, b_ih, b_hh) = {got}, expected {want} for a "
                f"{cell_type} layer of {N} cells with {m} inputs"
            )
        m = N
    if offset is not None and mask is None:
        raise ValueError("offset needs a mask (use a mask of ones to only add an offset)")
    if mask is not None:
        mask = np.asarray(mask, dtype)
        offset = np.zeros_like(mask) if offset is None else np.asarray(offset, dtype)
        if mask.ndim != 2 or mask.shape[1] != m or offset.shape != mask.shape:
            raise ValueError(
                f"mask {mask.shape} and offset {offset.shape} must both be (K, N) with N = {m}"
            )
    h = x
    for k, layer in enumerate(layers):
        last = k == len(layers) - 1
        h = _layer(cell_type, *layer, h, mask if last else None, offset if last else None)
    if readout_mode == "last":
        h = h[..., -1, :]
    if readout_weight is None:
        return h
    return h @ np.asarray(readout_weight, dtype).T + np.asarray(readout_bias, dtype)
