"""CPU kernels (Numba): the parallel isolated-cell kernel, and one LSTM step of batched rows.

Layout: the parallel work items are (block of ``BLOCK_CELLS`` cells, stimulus) pairs. Inside one,
time is the outer loop and the cells of the block the inner loop, which LLVM vectorizes (the float32
activations are branch-free rational functions for that purpose). Each work item copies its
parameters into one flat local array, keeps its state in another and buffers ``BLOCK_STEPS`` steps of
every recorded variable (h, and the gates only when traces are asked for) in a third, each row at a
compile-time-constant offset (``k * BC``): LLVM then needs only a few run-time alias checks and
vectorizes; with separate 2-D views it gives up ("too many memory checks"). Indices inside the step
loops are unsigned (``uint64``) so that Numba emits no negative-index wraparound, which LLVM would
otherwise treat as an unsafe indirect dependence. The buffered steps are written out transposed, so
the output keeps its (cell, stimulus, time) layout without a separate transpose pass.

:func:`lstm_rows_step` is the element-wise half of a batched whole-network LSTM step (the other half
is the recurrent GEMM), fused into one pass for :mod:`testbench.ablation`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from testbench.kernels._config import BLOCK_CELLS as BC
from testbench.kernels._config import BLOCK_STEPS as BS
from testbench.kernels._config import JIT, PARALLEL
from testbench.kernels._math import gru_cell, lstm_cell, lstm_update, rnn_cell

from testbench.kernels.celltypes import CODES

LSTM, GRU, RNN_TANH, RNN_RELU = CODES["lstm"], CODES["gru"], CODES["rnn_tanh"], CODES["rnn_relu"]
UBC = np.uint64(BC)
R = tuple(np.uint64(k * BC) for k in range(12))  # offset of row k of the local parameters / state
V = tuple(np.uint64(k * BS * BC) for k in range(6))  # offset of recorded variable k in the buffer


@njit(**JIT)
def _lstm_steps(p, st, buf, m, x, tt, full):
    """One step of the block's m cells: state st = [h | c], buffer rows h (and, when ``full``,
    c, i, f, g, o)."""
    for j in range(m):  # m, tt, j unsigned: see module docstring
        h, c, i, f, g, o = lstm_cell(x, st[j], st[R[1] + j],
                                     p[j], p[R[1] + j], p[R[2] + j], p[R[3] + j],
                                     p[R[4] + j], p[R[5] + j], p[R[6] + j], p[R[7] + j],
                                     p[R[8] + j], p[R[9] + j], p[R[10] + j], p[R[11] + j])
        st[j] = h
        st[R[1] + j] = c
        b = tt * UBC + j
        buf[b] = h
        if full:
            buf[V[1] + b] = c
            buf[V[2] + b] = i
            buf[V[3] + b] = f
            buf[V[4] + b] = g
            buf[V[5] + b] = o


@njit(**JIT)
def _gru_steps(p, st, buf, m, x, tt, full):
    """One step of the block's m cells: state st = [h], buffer rows h (and, when ``full``, r, z,
    n)."""
    for j in range(m):  # m, tt, j unsigned: see module docstring
        h, r, z, n = gru_cell(x, st[j], p[j], p[R[1] + j], p[R[2] + j], p[R[3] + j],
                              p[R[4] + j], p[R[5] + j], p[R[6] + j], p[R[7] + j],
                              p[R[8] + j], p[R[9] + j])
        st[j] = h
        b = tt * UBC + j
        buf[b] = h
        if full:
            buf[V[1] + b] = r
            buf[V[2] + b] = z
            buf[V[3] + b] = n


@njit(**JIT)
def _rnn_steps(p, st, buf, m, x, tt, relu):
    """One step of the block's m cells: state st = [h], buffer row h."""
    for j in range(m):  # m, tt, j unsigned: see module docstring
        h = rnn_cell(x, st[j], p[j], p[R[1] + j], p[R[2] + j], relu)
        st[j] = h
        buf[tt * UBC + j] = h


@njit(**JIT)
def _write_block(dst, buf, row, m, u0, s, t0, nt):
    """dst[u0 + j, s, t0 + tt] = buffer row ``row`` at (tt, j): the block, transposed to (cell, time)."""
    base = np.uint64(row * BS * BC)
    for j in range(np.uint64(m)):  # unsigned: no wraparound checks (see module docstring)
        line = dst[u0 + j, s, t0:t0 + nt]
        for tt in range(np.uint64(nt)):
            line[tt] = buf[base + tt * UBC + j]


@njit(**JIT)
def load_block(P, u0, m, h0, c0):
    """Local copies of the parameters of cells u0 .. u0 + m - 1 (row k at ``k * BC``) and their
    initial state [h | c], for one work item."""
    rows = P.shape[0]
    p = np.zeros(rows * BC, dtype=P.dtype)
    for k in range(rows):
        for j in range(m):
            p[k * BC + j] = P[k, u0 + j]
    st = np.empty(2 * BC, dtype=P.dtype)
    st[:BC] = h0
    st[BC:] = c0
    return p, st


@njit(**JIT)
def run_steps(code, want_traces, p, st, buf, m, xs, t0, nt):
    """Advance the block's m cells by steps t0 .. t0 + nt - 1 of the stimulus ``xs`` (T,), buffering
    them at rows ``tt`` 0 .. nt - 1 of ``buf``."""
    for tt in range(nt):
        xt = xs[t0 + tt]
        um, utt = np.uint64(m), np.uint64(tt)
        # Flags passed as literals: LLVM specializes each inlined loop for them (a run-time
        # flag inside the loop would stop it from vectorizing).
        if code == LSTM and want_traces:
            _lstm_steps(p, st, buf, um, xt, utt, True)
        elif code == LSTM:
            _lstm_steps(p, st, buf, um, xt, utt, False)
        elif code == GRU and want_traces:
            _gru_steps(p, st, buf, um, xt, utt, True)
        elif code == GRU:
            _gru_steps(p, st, buf, um, xt, utt, False)
        elif code == RNN_RELU:
            _rnn_steps(p, st, buf, um, xt, utt, True)
        else:
            _rnn_steps(p, st, buf, um, xt, utt, False)


@njit(**PARALLEL)
def simulate_cpu(code, P, x, h0, c0, out, tr, want_traces):
    """Fill ``out`` (n, S, T) and, when ``want_traces``, ``tr`` (K, n, S, T) in place.

    ``code`` is LSTM/GRU/RNN_TANH/RNN_RELU; ``P`` the (rows, n) parameter layout of
    :func:`kernels.cells.prepare`; ``x`` (S, T); ``h0``, ``c0`` scalars of the dtype of ``P``.
    """
    n = P.shape[1]
    S, T = x.shape
    K = tr.shape[0]
    n_blocks = (n + BC - 1) // BC
    for job in prange(n_blocks * S):
        blk = job // S
        s = job - blk * S
        u0 = blk * BC
        m = min(BC, n - u0)
        p, st = load_block(P, u0, m, h0, c0)
        buf = np.empty(((K + 1) if want_traces else 1) * BS * BC, dtype=P.dtype)
        for t0 in range(0, T, BS):
            nt = min(BS, T - t0)
            run_steps(code, want_traces, p, st, buf, m, x[s], t0, nt)
            _write_block(out, buf, 0, m, u0, s, t0, nt)
            if want_traces:
                for k in range(K):
                    _write_block(tr[k], buf, k + 1, m, u0, s, t0, nt)


@njit(**JIT)
def _lstm_row(a, pr, c, h, mk, ok, n):
    for j in range(n):  # n, j unsigned: see module docstring
        hj, cj, _, _, _, _ = lstm_update(a[j] + pr[j], a[n + j] + pr[n + j],
                                         a[2 * n + j] + pr[2 * n + j],
                                         a[3 * n + j] + pr[3 * n + j], c[j])
        c[j] = cj
        h[j] = hj * mk[j] + ok[j]


@njit(**JIT)
def lstm_rows_step(a, proj, c, h, mask, offset):
    """One LSTM step of R independent rows, from their recurrent pre-activations, in place.

    Parameters
    ----------
    a : np.ndarray
        (R, 4N) recurrent part ``h_{t-1} @ W_hh.T`` of every row's gate pre-activations, PyTorch
        gate order i, f, g, o; float32 or float64 like every other array.
    proj : np.ndarray
        (B, 4N) input part ``x_t @ W_ih.T + b_ih + b_hh`` of B sequences; row r reads
        ``proj[r % B]`` (rows are variants x sequences, sequence fastest).
    c : np.ndarray
        (R, N) cell states, updated in place.
    h : np.ndarray
        (R, N) overwritten with the new output ``o tanh(c) * mask + offset``.
    mask, offset : np.ndarray
        (R, N) per-row multipliers and constants on the output (knock-outs). Dimensionless.
    """
    R, N = c.shape
    B = proj.shape[0]
    for r in range(R):
        _lstm_row(a[r], proj[r % B], c[r], h[r], mask[r], offset[r], np.uint64(N))
