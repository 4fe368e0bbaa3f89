"""Plain NumPy reference of isolated-cell simulation, for tests and as the benchmark baseline.

Loops over time, vectorized over cells and stimuli, computed in the input dtype with NumPy's exact
``tanh`` (sigmoid(z) = 0.5 + 0.5 tanh(z/2), which cannot overflow). Written to be obviously correct,
not fast; same arguments and results as :func:`kernels.simulate` (without ``backend``).
"""

from __future__ import annotations

import numpy as np

from testbench.kernels.cells import TRACES


def _sigmoid(z):
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def simulate(cell_type, a, r, bi, bh, x, *, h0=0.0, c0=0.0, traces=False):
    """Reference simulation: ``h`` of shape (n, S, T), plus a dict of traces when ``traces``.

    Parameters are those of :func:`kernels.simulate`; no validation is done here.
    """
    n, S, T = a.shape[0], x.shape[0], x.shape[1]
    dtype = a.dtype
    # gate k's parameters as (n, 1) columns, broadcast against the stimuli axis
    A, R, Bi, Bh = ([p[:, k:k + 1] for k in range(p.shape[1])] for p in (a, r, bi, bh))
    h = np.full((n, S), h0, dtype)
    c = np.full((n, S), c0, dtype)
    out = np.empty((n, S, T), dtype)
    tr = {name: np.empty((n, S, T), dtype) for name in TRACES[cell_type]}
    for t in range(T):
        xt = x[:, t][None, :]
        if cell_type == "lstm":
            i, f, g, o = (A[k] * xt + R[k] * h + Bi[k] + Bh[k] for k in range(4))
            i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
            c = f * c + i * g
            h = o * np.tanh(c)
            step = {"c": c, "i": i, "f": f, "g": g, "o": o}
        elif cell_type == "gru":
            rg = _sigmoid(A[0] * xt + Bi[0] + R[0] * h + Bh[0])
            zg = _sigmoid(A[1] * xt + Bi[1] + R[1] * h + Bh[1])
            ng = np.tanh(A[2] * xt + Bi[2] + rg * (R[2] * h + Bh[2]))
            h = (1 - zg) * ng + zg * h
            step = {"r": rg, "z": zg, "n": ng}
        else:
            z = A[0] * xt + Bi[0] + R[0] * h + Bh[0]
            h = np.tanh(z) if cell_type == "rnn_tanh" else np.where(z < 0, 0, z).astype(dtype)
            step = {}
        out[:, :, t] = h
        for name, arr in tr.items():
            arr[:, :, t] = step[name]
    return (out, tr) if traces else out
