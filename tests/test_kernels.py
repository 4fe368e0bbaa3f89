"""Isolated-cell kernels against the NumPy reference, one-unit PyTorch cells and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from testbench import kernels
from testbench.kernels import reference
from testbench.kernels._math import approx_activation

CELLS = list(kernels.GATES)
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def random_params(cell_type, n, dtype, seed, n_saturated=4):
    """Seeded per-cell parameters; the last ``n_saturated`` cells have large (saturating) weights.

    |r| < 0.9 keeps relu cells from exploding, so that tolerances stay absolute.
    """
    rng = np.random.default_rng(seed)
    G = kernels.GATES[cell_type]
    a, bi, bh = (rng.normal(0, 1, (n, G)) for _ in range(3))
    r = rng.uniform(-0.9, 0.9, (n, G))
    a[n - n_saturated:] *= 20
    bi[n - n_saturated:] *= 20
    return tuple(p.astype(dtype) for p in (a, r, bi, bh))


def stimuli(T, dtype, seed=1):
    """Step, sine and noise stimuli, (3, T)."""
    t = np.arange(1, T + 1)
    noise = np.random.default_rng(seed).normal(0, 1, T)
    return np.stack([2.0 * (t > T // 2), np.sin(2 * np.pi * 0.02 * t), noise]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", CELLS)
def test_matches_reference_with_traces(cell_type, dtype):
    params = random_params(cell_type, 300, dtype, seed=CELLS.index(cell_type))  # > 1 cell block
    x = stimuli(150, dtype)
    h, tr = kernels.simulate(cell_type, *params, x, h0=0.3, c0=-0.2, traces=True)
    h_ref, tr_ref = reference.simulate(cell_type, *params, x, h0=0.3, c0=-0.2, traces=True)
    assert h.dtype == dtype and h.shape == (300, 3, 150)
    assert sorted(tr) == sorted(kernels.TRACES[cell_type])
    # relu outputs and the LSTM state c are unbounded (float32 keeps ~1e-7 of them): relative too.
    # c sums T rounded terms, so its relative error may reach T machine epsilons.
    np.testing.assert_allclose(h, h_ref, rtol=TOL[dtype], atol=TOL[dtype])
    for name in tr:
        rtol = max(TOL[dtype], x.shape[1] * np.finfo(dtype).eps) if name == "c" else TOL[dtype]
        np.testing.assert_allclose(tr[name], tr_ref[name], rtol=rtol, atol=TOL[dtype],
                                   err_msg=name)
    np.testing.assert_array_equal(kernels.simulate(cell_type, *params, x, h0=0.3, c0=-0.2), h)


def torch_layer(cell_type, m, N, dtype, seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    if cell_type == "lstm":
        return torch.nn.LSTM(m, N, dtype=tdtype)
    if cell_type == "gru":
        return torch.nn.GRU(m, N, dtype=tdtype)
    return torch.nn.RNN(m, N, nonlinearity=cell_type[4:], dtype=tdtype)


def layer_arrays(layer, scale):
    return [getattr(layer, f"{k}_l0").detach().numpy() * scale
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", CELLS)
def test_matches_one_unit_torch_cells(cell_type, dtype):
    """Acceptance: each isolated cell equals a one-unit torch cell built from its slices."""
    torch = pytest.importorskip("torch")
    m, N, T = 3, 6, 120
    big = torch_layer(cell_type, m, N, dtype, seed=7)
    # 4x torch init: some cells saturate; relu cells stay at 1.5x (|r| < 1), else they explode
    W_ih, W_hh, b_ih, b_hh = layer_arrays(big, scale=1.5 if cell_type == "rnn_relu" else 4.0)
    v = np.array([1.0, 0.0, 1.0], dtype)
    a, r, bi, bh = kernels.isolate(W_ih, W_hh, b_ih, b_hh, cell_type, v)
    x = stimuli(T, dtype)
    h = kernels.simulate(cell_type, a, r, bi, bh, x)
    for u in range(N):
        one = torch_layer(cell_type, 1, 1, dtype, seed=0)
        with torch.no_grad():
            for name, val in (("weight_ih", a[u][:, None]), ("weight_hh", r[u][:, None]),
                              ("bias_ih", bi[u]), ("bias_hh", bh[u])):
                getattr(one, f"{name}_l0").copy_(torch.from_numpy(np.ascontiguousarray(val)))
            y, _ = one(torch.from_numpy(np.ascontiguousarray(x.T[:, :, None])))  # (T, S, 1)
        np.testing.assert_allclose(h[u], y[:, :, 0].numpy().T, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("cell_type", CELLS)
def test_isolated_cells_equal_a_layer_with_diagonal_recurrence(cell_type):
    """A whole torch layer whose W_hh keeps only its diagonal runs N isolated cells at once."""
    torch = pytest.importorskip("torch")
    m, N, T = 4, 5, 60
    layer = torch_layer(cell_type, m, N, np.float64, seed=3)
    W_ih, W_hh, b_ih, b_hh = layer_arrays(layer, scale=3.0)
    G = kernels.GATES[cell_type]
    diag = np.tile(np.eye(N), (G, 1))
    v = np.array([0.0, 1.0, 1.0, 0.0])
    x = stimuli(T, np.float64)
    with torch.no_grad():
        for name, val in (("weight_ih", W_ih), ("weight_hh", W_hh * diag), ("bias_ih", b_ih),
                          ("bias_hh", b_hh)):
            getattr(layer, f"{name}_l0").copy_(torch.from_numpy(val))
        y, _ = layer(torch.from_numpy(x.T[:, :, None] * v))  # (T, S, N)
    h = kernels.simulate(cell_type, *kernels.isolate(W_ih, W_hh, b_ih, b_hh, cell_type, v), x)
    np.testing.assert_allclose(h, y.numpy().transpose(2, 1, 0), rtol=0, atol=1e-12)


def test_isolate_picks_each_cells_rows():
    rng = np.random.default_rng(0)
    N, m, G = 3, 2, 4
    W_ih, W_hh = rng.normal(size=(G * N, m)), rng.normal(size=(G * N, N))
    b_ih, b_hh = rng.normal(size=G * N), rng.normal(size=G * N)
    v = np.array([0.0, 1.0])
    a, r, bi, bh = kernels.isolate(W_ih, W_hh, b_ih, b_hh, "lstm", v)
    for u in range(N):
        for k in range(G):
            assert a[u, k] == W_ih[k * N + u, 1]
            assert r[u, k] == W_hh[k * N + u, u]
            assert (bi[u, k], bh[u, k]) == (b_ih[k * N + u], b_hh[k * N + u])
    assert kernels.isolate(*(w.astype(np.float32) for w in (W_ih, W_hh, b_ih, b_hh)), "lstm",
                           v)[0].dtype == np.float32


def test_isolate_rejects_mismatched_shapes():
    W_ih, W_hh, b = np.zeros((8, 3)), np.zeros((8, 2)), np.zeros(8)
    with pytest.raises(ValueError, match=r"v has shape \(2,\).*needs \(3,\)"):
        kernels.isolate(W_ih, W_hh, b, b, "lstm", np.ones(2))
    with pytest.raises(ValueError, match=r"W_ih has shape \(8, 3\); a gru layer needs \(G\*N, m\)"):
        kernels.isolate(W_ih, W_hh, b, b, "gru", np.ones(3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_reduced_to_first_order_lag_matches_closed_form(dtype):
    """r = 0, i = o = 1 (huge bias), constant forget gate f: c_t = f c_{t-1} + tanh(b_g + a_g x_t).

    Under a step x = A 1[t > t0] from rest, c_t = g0 (1 - f^t)/(1 - f) before the step and
    c_t = g1/(1-f) + (c_t0 - g1/(1-f)) f^(t-t0) after it, with g_k = tanh(b_g + a_g x); h = tanh(c).
    """
    f, a_g, b_g, A, T, t0 = 0.9, 0.7, 0.1, 1.5, 200, 80
    logit_f = np.log(f / (1 - f))
    a = np.array([[0.0, 0.0, a_g, 0.0]], dtype)
    r = np.zeros((1, 4), dtype)
    bi = np.array([[60.0, logit_f, b_g, 60.0]], dtype)
    bh = np.zeros((1, 4), dtype)
    t = np.arange(1, T + 1)
    x = (A * (t > t0))[None, :].astype(dtype)
    g0, g1 = np.tanh(b_g), np.tanh(b_g + a_g * A)
    c_t0 = g0 * (1 - f ** t0) / (1 - f)
    c = np.where(t <= t0, g0 * (1 - f ** t) / (1 - f),
                 g1 / (1 - f) + (c_t0 - g1 / (1 - f)) * f ** (t - t0))
    h, tr = kernels.simulate("lstm", a, r, bi, bh, x, traces=True)
    tol = {np.float64: 1e-12, np.float32: 1e-5}[dtype]
    np.testing.assert_allclose(tr["c"][0, 0], c, rtol=0, atol=tol)
    np.testing.assert_allclose(h[0, 0], np.tanh(c), rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", CELLS)
def test_nan_in_stimulus_propagates_from_its_step_on(cell_type, dtype):
    params = random_params(cell_type, 20, dtype, seed=5)
    x = stimuli(50, dtype)
    x[1, 30] = np.nan
    h = kernels.simulate(cell_type, *params, x)
    assert np.isnan(h[:, 1, 30:]).all()
    assert np.isfinite(h[:, 1, :30]).all() and np.isfinite(h[:, [0, 2]]).all()


def test_nan_parameters_give_nan_cells_only():
    a, r, bi, bh = random_params("lstm", 10, np.float64, seed=2)
    a[3] = np.nan  # NaN padding of a smaller network, as the DUT node does
    h = kernels.simulate("lstm", a, r, bi, bh, stimuli(20, np.float64))
    assert np.isnan(h[3]).all() and np.isfinite(np.delete(h, 3, axis=0)).all()


def test_zero_cells_give_an_empty_result():
    params = random_params("gru", 4, np.float32, seed=0, n_saturated=0)
    h = kernels.simulate("gru", *(p[:0] for p in params), stimuli(10, np.float32))
    assert h.shape == (0, 3, 10)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_float32_activation_error_is_below_1e6_on_the_whole_real_line(name):
    dense = np.linspace(-20, 20, 4_000_001, dtype=np.float32)
    magnitudes = np.logspace(-38, 38.5, 20_001).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.finfo(np.float32).max,
                        np.finfo(np.float32).tiny, 7.9053111, -7.9053111], np.float32)
    x = np.concatenate([dense, magnitudes, -magnitudes, special])
    exact = np.tanh(x.astype(np.float64))
    if name == "sigmoid":
        exact = 0.5 + 0.5 * np.tanh(0.5 * x.astype(np.float64))
    y = approx_activation(name, x)
    assert y.dtype == np.float32
    assert np.max(np.abs(y - exact)) <= 1e-6
    assert np.all(np.abs(y) <= 1)  # saturation never overshoots
    assert np.isnan(approx_activation(name, np.array([np.nan], np.float32))).all()


def test_float64_activation_is_within_4_ulp_on_the_whole_real_line():
    magnitudes = np.logspace(-300, 308, 20_001)
    edges = [0.625, np.nextafter(0.625, 1.0), 19.06, 19.5, np.finfo(np.float64).max, np.inf]
    x = np.concatenate([np.linspace(-25, 25, 2_000_001), magnitudes, edges])
    x = np.concatenate([x, -x])
    y = approx_activation("tanh", x)
    assert y.dtype == np.float64
    np.testing.assert_array_less(np.abs(y - np.tanh(x)), 4 * np.spacing(np.abs(np.tanh(x))) + 1e-300)
    assert np.all(np.abs(y) <= 1)  # saturation never overshoots
    with np.errstate(over="ignore"):
        sigmoid = 1 / (1 + np.exp(-x))
    s = approx_activation("sigmoid", x)
    assert np.max(np.abs(s - sigmoid)) <= 4 * np.finfo(np.float64).eps / 2  # 4 ulp of 0.5..1
    assert np.all((s >= 0) & (s <= 1))
    assert np.isnan(approx_activation("tanh", np.array([np.nan]))).all()
    assert np.isnan(approx_activation("sigmoid", np.array([np.nan]))).all()


def test_approx_activation_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"name 'relu' is not one of \['sigmoid', 'tanh'\]"):
        approx_activation("relu", np.zeros(3, np.float32))


GOOD = random_params("lstm", 3, np.float64, seed=0, n_saturated=0)
X = np.zeros((2, 5))


@pytest.mark.parametrize("kwargs, args, error, match", [
    ({}, ("lstmm", *GOOD, X), ValueError, r"cell_type 'lstmm' is not one of \['gru', 'lstm'"),
    ({}, ("gru", *GOOD, X), ValueError, r"argument 'a' has shape \(3, 4\); a gru cell has G = 3"),
    ({}, ("lstm", GOOD[0], GOOD[1][:2], *GOOD[2:], X), ValueError,
     r"argument 'r' has shape \(2, 4\).*must be \(3, 4\)"),
    ({}, ("lstm", *GOOD, X[0]), ValueError, r"argument 'x' is shape \(5,\); it must be a 2-D"),
    ({}, ("lstm", *GOOD, X[:, :0]), ValueError, r"argument 'x' has shape \(2, 0\)"),
    ({}, ("lstm", *GOOD, [[0.0]]), ValueError, r"argument 'x' is a list"),
    ({}, ("lstm", *GOOD, X.astype(np.float32)), TypeError,
     r"argument 'x' has dtype float32 but 'a' has float64"),
    ({}, ("lstm", *(p.astype(int) for p in GOOD), X.astype(int)), TypeError,
     r"argument 'a' has dtype int64; kernels simulate float32 or float64"),
    ({"backend": "gpu"}, ("lstm", *GOOD, X), ValueError,
     r"backend 'gpu' is not one of \['cpu', 'cuda'\]"),
])
def test_bad_arguments_raise_with_the_rule(kwargs, args, error, match):
    with pytest.raises(error, match=match):
        kernels.simulate(*args, **kwargs)


def test_cuda_without_gpu_raises_backend_unavailable():
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a CUDA GPU is present; tests/test_kernels_cuda.py covers it")
    with pytest.raises(kernels.BackendUnavailable, match=r"no CUDA GPU .*fix: use backend: cpu"):
        kernels.simulate("lstm", *GOOD, X, backend="cuda")
