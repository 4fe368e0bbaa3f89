"""Isolated-cell simulation: host side shared by the CPU and CUDA kernels.

Each cell u of a recurrent layer becomes a one-unit dynamical system (the paper's method; DESIGN.md
"Isolating a cell"): :func:`isolate` extracts its per-gate parameters, :func:`simulate` drives every
cell with every stimulus. :func:`prepare` validates, lays out and allocates once for both backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbench.kernels.celltypes import CODES, GATES, TRACES

BACKENDS = ("cpu", "cuda")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class BackendUnavailable(RuntimeError):
    """A compute backend was asked for but cannot run here (e.g. ``backend="cuda"`` without a GPU)."""


def _check_cell_type(where: str, cell_type) -> int:
    if cell_type not in GATES:
        raise ValueError(f"{where}: cell_type {cell_type!r} is not one of {sorted(GATES)}; "
                         "fix: pass one of those names")
    return GATES[cell_type]


def isolate(W_ih, W_hh, b_ih, b_hh, cell_type, v):
    """Per-cell parameters of the isolated one-unit systems of one recurrent layer.

    Parameters
    ----------
    W_ih : np.ndarray
        Input weights, shape (G*N, m), PyTorch layout and gate order (LSTM i, f, g, o; GRU r, z, n;
        RNN one gate), float32 or float64.
    W_hh : np.ndarray
        Recurrent weights, shape (G*N, N), same dtype.
    b_ih, b_hh : np.ndarray
        Input and recurrent biases, shape (G*N,), same dtype.
    cell_type : {'lstm', 'gru', 'rnn_tanh', 'rnn_relu'}
        Cell type; fixes G (see :data:`GATES`).
    v : np.ndarray
        Input-channel vector, shape (m,): all ones drives every channel, one-hot one channel.

    Returns
    -------
    a, r, bi, bh : np.ndarray
        Each (N, G) in the dtype of ``W_ih``: ``a[u, k] = W_ih[k N + u, :] @ v`` (input gain),
        ``r[u, k] = W_hh[k N + u, u]`` (self-recurrence), ``bi[u, k] = b_ih[k N + u]``,
        ``bh[u, k] = b_hh[k N + u]``. Dimensionless.

    Examples
    --------
    >>> import numpy as np
    >>> W_ih = np.arange(8.0).reshape(4, 2); W_hh = np.arange(4.0).reshape(4, 1)
    >>> a, r, bi, bh = isolate(W_ih, W_hh, np.zeros(4), np.ones(4), "lstm", np.array([1.0, 0.0]))
    >>> a.tolist(), r.tolist()
    ([[0.0, 2.0, 4.0, 6.0]], [[0.0, 1.0, 2.0, 3.0]])
    """
    where = "kernels.isolate"
    G = _check_cell_type(where, cell_type)
    W_ih, W_hh, b_ih, b_hh, v = (np.asarray(z) for z in (W_ih, W_hh, b_ih, b_hh, v))
    if W_ih.ndim != 2 or W_ih.shape[0] % G:
        raise ValueError(f"{where}: W_ih has shape {W_ih.shape}; a {cell_type} layer needs "
                         f"(G*N, m) with G = {G}; fix: pass the layer's weight_ih")
    N, m = W_ih.shape[0] // G, W_ih.shape[1]
    expected = {"W_hh": (W_hh, (G * N, N)), "b_ih": (b_ih, (G * N,)), "b_hh": (b_hh, (G * N,)),
                "v": (v, (m,))}
    for name, (arr, shape) in expected.items():
        if arr.shape != shape:
            raise ValueError(f"{where}: {name} has shape {arr.shape}, but W_ih {W_ih.shape} of a "
                             f"{cell_type} layer (N = {N}, m = {m}) needs {shape}")
    dtype = W_ih.dtype
    rows = np.arange(G)[None, :] * N + np.arange(N)[:, None]  # (N, G): row of gate k of cell u
    a = (W_ih @ v.astype(dtype))[rows]
    r = W_hh[rows, np.arange(N)[:, None]]
    return a, r.astype(dtype), b_ih[rows].astype(dtype), b_hh[rows].astype(dtype)


@dataclass(frozen=True)
class Prepared:
    """Validated, laid-out inputs and allocated outputs of one simulation (see :func:`prepare`)."""

    code: int            # CODES[cell_type]
    P: np.ndarray        # (rows, n) C-contiguous parameters, per gate: a, r, summed bias (GRU n: a, r, b_ih, b_hh)
    x: np.ndarray        # (S, T) C-contiguous stimuli
    h0: np.generic       # initial hidden state, dtype scalar
    c0: np.generic       # initial cell state, dtype scalar
    out: np.ndarray      # (n, S, T) output h
    tr: np.ndarray       # (K, n, S, T) traces, or (K, 0, 0, 0) when not wanted
    want_traces: bool    # traces asked for and the cell type has some


def _param_rows(cell_type, a, r, bi, bh) -> list[np.ndarray]:
    rows = []
    for k in range(a.shape[1]):
        rows += [a[:, k], r[:, k]]
        if cell_type == "gru" and k == 2:  # torch: n = tanh(a x + b_in + r * (r_n h + b_hn))
            rows += [bi[:, k], bh[:, k]]
        else:
            rows.append(bi[:, k] + bh[:, k])
    return rows


def prepare(cell_type, a, r, bi, bh, x, h0, c0, traces, outputs=True) -> Prepared:
    """Validate :func:`simulate`'s arguments, lay out the parameters and allocate the outputs.

    With ``outputs=False`` (streaming metrics, :mod:`kernels.streaming`) ``out`` and ``tr`` are
    empty (0, 0, 0) and (K, 0, 0, 0) arrays: nothing of size n T is allocated.

    Raises
    ------
    ValueError
        Unknown cell type, or shapes that disagree (message names the argument, the shape received
        and the rule).
    TypeError
        A dtype other than float32/float64, or arrays of mixed dtypes.
    """
    where = "kernels.simulate"
    G = _check_cell_type(where, cell_type)
    arrays = {"a": a, "r": r, "bi": bi, "bh": bh, "x": x}
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            got = f"shape {arr.shape}" if isinstance(arr, np.ndarray) else f"a {type(arr).__name__}"
            rule = "(S, T) stimuli" if name == "x" else f"(n, G) per-cell parameters, G = {G}"
            raise ValueError(f"{where}: argument {name!r} is {got}; it must be a 2-D array of "
                             f"{rule}")
    dtype = a.dtype
    if dtype not in _DTYPES:
        raise TypeError(f"{where}: argument 'a' has dtype {dtype}; kernels simulate float32 or "
                        "float64; fix: convert with .astype(np.float32) or .astype(np.float64)")
    for name, arr in arrays.items():
        if arr.dtype != dtype:
            raise TypeError(f"{where}: argument {name!r} has dtype {arr.dtype} but 'a' has "
                            f"{dtype}; all arrays must share one dtype; fix: convert them alike")
    n = a.shape[0]
    for name in ("a", "r", "bi", "bh"):
        if arrays[name].shape != (n, G):
            raise ValueError(f"{where}: argument {name!r} has shape {arrays[name].shape}; a "
                             f"{cell_type} cell has G = {G} gates and 'a' has n = {n} cells, so "
                             f"every parameter array must be ({n}, {G})")
    S, T = x.shape
    if S < 1 or T < 1:
        raise ValueError(f"{where}: argument 'x' has shape {x.shape}; it needs at least one "
                         "stimulus (S >= 1) of at least one step (T >= 1)")
    P = np.ascontiguousarray(np.stack(_param_rows(cell_type, a, r, bi, bh)))
    K = len(TRACES[cell_type])
    want = bool(traces) and K > 0
    return Prepared(
        code=CODES[cell_type], P=P, x=np.ascontiguousarray(x), h0=dtype.type(h0),
        c0=dtype.type(c0), out=np.empty((n, S, T) if outputs else (0, 0, 0), dtype),
        tr=np.empty((K, n, S, T) if want else (K, 0, 0, 0), dtype), want_traces=want,
    )


def simulate(cell_type, a, r, bi, bh, x, *, h0=0.0, c0=0.0, backend="cpu", traces=False,
             metrics=None):
    """Simulate isolated cells: every cell driven alone by every stimulus, from a given state.

    Pre-activation of gate k: ``z_k = a_k x_t + r_k h_{t-1} + bi_k + bh_k``. LSTM: i, f, o =
    sigmoid, g = tanh, ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``. GRU (PyTorch):
    ``n = tanh(a_n x + bi_n + r (r_n h + bh_n))``, ``h_t = (1 - z) n + z h_{t-1}``. RNN:
    ``h_t = tanh`` or ``relu`` of ``z``.

    Parameters
    ----------
    cell_type : {'lstm', 'gru', 'rnn_tanh', 'rnn_relu'}
        Cell equations.
    a, r, bi, bh : np.ndarray
        Per-cell parameters from :func:`isolate`, each (n, G), n >= 0 cells, float32 or float64,
        one dtype for all. NaN parameters (padding) give NaN outputs.
    x : np.ndarray
        Stimuli, shape (S, T) with S >= 1 stimuli of T >= 1 steps, same dtype; dimensionless.
        NaN propagates to the output from its step on.
    h0, c0 : float
        Initial hidden state h_0 and (LSTM only) cell state c_0 of every cell. Default 0.
    backend : {'cpu', 'cuda'}
        ``cpu``: Numba CPU-parallel kernel. ``cuda``: Numba CUDA kernel, one thread per
        (cell, stimulus); needs an NVIDIA GPU. Default ``cpu``.
    traces : bool
        Also return the internal traces. Default false.
    metrics : dict or None
        Return, instead of the response, the step and sine analyzers' metrics of every
        (cell, stimulus) record without storing the response: the keyword arguments ``step``,
        ``sine``, ``dt``, ``stimulus`` of :func:`kernels.streaming.stream_metrics` (CPU, no
        traces). Default None.

    Returns
    -------
    h : np.ndarray
        (n, S, T) cell output at steps 1..T, in the input dtype.
    traces : dict of str to np.ndarray
        Only with ``traces=True``: (n, S, T) arrays, LSTM ``c, i, f, g, o``; GRU ``r, z, n``;
        RNN none.
    metrics : dict of str to np.ndarray
        Only with ``metrics``: what :func:`kernels.streaming.stream_metrics` returns (alone).

    Raises
    ------
    BackendUnavailable
        ``backend="cuda"`` where no CUDA GPU is usable.
    ValueError, TypeError
        Bad backend, cell type, shapes or dtypes (see :func:`prepare`).

    Notes
    -----
    Activations are branch-free so that the CPU kernel vectorizes (see :mod:`kernels._math`):
    float32 uses a rational approximation of tanh (absolute error <= 1e-6), float64 Cephes' tanh
    (within 4 ulp of the correctly rounded value).

    Examples
    --------
    >>> import numpy as np
    >>> one = np.ones((1, 1))
    >>> h = simulate("rnn_relu", 0.5 * one, 0.5 * one, 0 * one, 0 * one, np.ones((1, 3)))
    >>> h.tolist()
    [[[0.5, 0.75, 0.875]]]
    """
    if backend not in BACKENDS:
        raise ValueError(f"kernels.simulate: backend {backend!r} is not one of {list(BACKENDS)}; "
                         "fix: use 'cpu' (or 'cuda' on a machine with an NVIDIA GPU)")
    if metrics is not None:
        if backend != "cpu" or traces:
            raise ValueError(f"kernels.simulate: metrics are computed on the CPU without traces, "
                             f"but backend={backend!r}, traces={traces!r}; fix: pass "
                             "backend='cpu', traces=False")
        from testbench.kernels.streaming import stream_metrics

        return stream_metrics(cell_type, a, r, bi, bh, x, h0=h0, c0=c0, **metrics)
    p = prepare(cell_type, a, r, bi, bh, x, h0, c0, traces)
    if backend == "cpu":
        from testbench.kernels.cpu import simulate_cpu

        simulate_cpu(p.code, p.P, p.x, p.h0, p.c0, p.out, p.tr, p.want_traces)
    else:
        from testbench.kernels.cuda import simulate_cuda

        simulate_cuda(p)
    if not traces:
        return p.out
    return p.out, ({name: p.tr[k] for k, name in enumerate(TRACES[cell_type])} if p.want_traces
                   else {})
