"""CUDA twin of the CPU kernel (Numba CUDA): one thread per (cell, stimulus).

Same inputs as :func:`kernels.cpu.simulate_cpu`, prepared by :func:`kernels.cells.prepare`; the cell
equations are the same scalar functions (:mod:`kernels._math`). Imported only when
``backend="cuda"`` is asked for; the GPU is looked for then, not at import. Runs under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba.cuda is first imported) for tests.
"""

from __future__ import annotations

from numba import cuda

from testbench.kernels._config import CUDA_THREADS
from testbench.kernels._math import gru_cell, lstm_cell, rnn_cell
from testbench.kernels.cells import BackendUnavailable, Prepared
from testbench.kernels.cpu import GRU, LSTM, RNN_RELU


@cuda.jit
def _kernel(code, P, x, h0, c0, out, tr, want_traces):
    i = cuda.grid(1)
    n = P.shape[1]
    S, T = x.shape
    if i >= n * S:
        return
    s = i // n
    u = i - s * n  # neighbouring threads: neighbouring cells, same stimulus
    h = h0
    c = c0
    if code == LSTM:
        p0, p1, p2, p3, p4, p5 = P[0, u], P[1, u], P[2, u], P[3, u], P[4, u], P[5, u]
        p6, p7, p8, p9, p10, p11 = P[6, u], P[7, u], P[8, u], P[9, u], P[10, u], P[11, u]
        for t in range(T):
            h, c, ig, fg, gg, og = lstm_cell(x[s, t], h, c, p0, p1, p2, p3, p4, p5, p6, p7, p8,
                                             p9, p10, p11)
            out[u, s, t] = h
            if want_traces:
                tr[0, u, s, t] = c
                tr[1, u, s, t] = ig
                tr[2, u, s, t] = fg
                tr[3, u, s, t] = gg
                tr[4, u, s, t] = og
    elif code == GRU:
        p0, p1, p2, p3, p4 = P[0, u], P[1, u], P[2, u], P[3, u], P[4, u]
        p5, p6, p7, p8, p9 = P[5, u], P[6, u], P[7, u], P[8, u], P[9, u]
        for t in range(T):
            h, rg, zg, ng = gru_cell(x[s, t], h, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)
            out[u, s, t] = h
            if want_traces:
                tr[0, u, s, t] = rg
                tr[1, u, s, t] = zg
                tr[2, u, s, t] = ng
    else:
        p0, p1, p2 = P[0, u], P[1, u], P[2, u]
        relu = code == RNN_RELU
        for t in range(T):
            h = rnn_cell(x[s, t], h, p0, p1, p2, relu)
            out[u, s, t] = h


def simulate_cuda(p: Prepared) -> None:
    """Run the CUDA kernel on prepared inputs; fill ``p.out`` (and ``p.tr``) in place.

    Raises
    ------
    BackendUnavailable
        No usable CUDA GPU (``numba.cuda.is_available()`` is false).
    """
    if not cuda.is_available():
        raise BackendUnavailable(
            "kernels.simulate: backend 'cuda' was asked for, but no CUDA GPU is usable here "
            "(numba.cuda.is_available() is False); fix: use backend: cpu, or run on a machine with "
            "an NVIDIA GPU and its driver")
    n, S, T = p.out.shape
    if n == 0:
        return
    d_out = cuda.device_array(p.out.shape, p.out.dtype)
    # a placeholder keeps the kernel's signature when no traces are recorded
    d_tr = cuda.device_array(p.tr.shape if p.want_traces else (1, 1, 1, 1), p.out.dtype)
    blocks = (n * S + CUDA_THREADS - 1) // CUDA_THREADS
    _kernel[blocks, CUDA_THREADS](p.code, cuda.to_device(p.P), cuda.to_device(p.x), p.h0, p.c0,
                                  d_out, d_tr, p.want_traces)
    d_out.copy_to_host(p.out)
    if p.want_traces:
        d_tr.copy_to_host(p.tr)
