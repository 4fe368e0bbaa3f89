"""Scalar equations shared by the CPU and CUDA kernels: activations and one step of each cell.

Activations dispatch on the argument's type at compile time: float64 uses exact ``math.tanh``;
float32 uses a vectorizable rational approximation of tanh (the minimax 13/6 rational of Eigen's
``generic_fast_tanh_float``) on an input clamped to +-7.90531110763549805, where float32 tanh rounds
to +-1. Its absolute error is <= 1e-6 on the whole real line (tested in ``tests/test_kernels.py``),
and sigmoid(z) = 0.5 + 0.5 tanh(z/2) inherits it halved. The clamp keeps NaN: NaN in, NaN out.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from kernels._config import JIT

_F = np.float32
_CLAMP = _F(7.90531110763549805)
_ALPHA = tuple(_F(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03))
_BETA = tuple(_F(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                               4.89352518554385e-03))
_HALF32, _ZERO32 = _F(0.5), _F(0.0)


@njit(**JIT)
def tanh32(x):
    """Rational approximation of tanh for float32 ``x`` (absolute error <= 1e-6; NaN stays NaN)."""
    x = np.maximum(np.minimum(x, _CLAMP), -_CLAMP)  # NaN propagates through both
    x2 = x * x
    p = _ALPHA[0]
    p = p * x2 + _ALPHA[1]
    p = p * x2 + _ALPHA[2]
    p = p * x2 + _ALPHA[3]
    p = p * x2 + _ALPHA[4]
    p = p * x2 + _ALPHA[5]
    p = p * x2 + _ALPHA[6]
    q = _BETA[0]
    q = q * x2 + _BETA[1]
    q = q * x2 + _BETA[2]
    q = q * x2 + _BETA[3]
    return x * p / q


def act_tanh(z):
    """tanh(z): exact for float64, :func:`tanh32` for float32 (chosen at compile time)."""


def act_sigmoid(z):
    """Logistic sigmoid 1 / (1 + exp(-z)) computed as 0.5 + 0.5 tanh(z/2), same dispatch as tanh."""


def act_relu(z):
    """max(z, 0) in the type of z, keeping NaN (NaN in, NaN out)."""


@overload(act_tanh, jit_options=JIT)
def _ov_tanh(z):
    if z == types.float32:
        return lambda z: tanh32(z)
    return lambda z: math.tanh(z)


@overload(act_sigmoid, jit_options=JIT)
def _ov_sigmoid(z):
    if z == types.float32:
        return lambda z: _HALF32 + _HALF32 * tanh32(_HALF32 * z)
    return lambda z: 0.5 + 0.5 * math.tanh(0.5 * z)


@overload(act_relu, jit_options=JIT)
def _ov_relu(z):
    if z == types.float32:
        return lambda z: _ZERO32 if z < _ZERO32 else z
    return lambda z: 0.0 if z < 0.0 else z


@njit(inline="always", **JIT)
def lstm_cell(x, h, c, ai, ri, bi, af, rf, bf, ag, rg, bg, ao, ro, bo):
    """One LSTM step of one isolated cell; b* are the summed biases b_ih + b_hh of each gate.

    Returns ``(h_t, c_t, i, f, g, o)``.
    """
    i = act_sigmoid(ai * x + ri * h + bi)
    f = act_sigmoid(af * x + rf * h + bf)
    g = act_tanh(ag * x + rg * h + bg)
    o = act_sigmoid(ao * x + ro * h + bo)
    c = f * c + i * g
    return o * act_tanh(c), c, i, f, g, o


@njit(inline="always", **JIT)
def gru_cell(x, h, ar, rr, br, az, rz, bz, an, rn, bin_, bhn):
    """One GRU step (PyTorch form) of one isolated cell; br, bz are summed biases, the n gate keeps
    b_in outside and b_hn inside the reset product. Returns ``(h_t, r, z, n)``.
    """
    r = act_sigmoid(ar * x + rr * h + br)
    z = act_sigmoid(az * x + rz * h + bz)
    n = act_tanh(an * x + bin_ + r * (rn * h + bhn))
    return n + z * (h - n), r, z, n  # = (1 - z) n + z h, without a float64 literal


@njit(inline="always", **JIT)
def rnn_cell(x, h, a, r, b, relu):
    """One vanilla RNN step of one isolated cell: tanh (``relu`` false) or relu of a x + r h + b."""
    z = a * x + r * h + b
    return act_relu(z) if relu else act_tanh(z)


@njit(**JIT)
def _tanh32_many(x, out):
    for k in range(x.size):
        out[k] = tanh32(x[k])


@njit(**JIT)
def _sigmoid32_many(x, out):
    for k in range(x.size):
        out[k] = act_sigmoid(x[k])


def approx_activation(name: str, x: np.ndarray) -> np.ndarray:
    """Evaluate the float32 activation approximation used by the kernels, for tests.

    Parameters
    ----------
    name : {'tanh', 'sigmoid'}
        Which activation.
    x : np.ndarray
        float32 inputs, any shape, any values (including +-inf and NaN).

    Returns
    -------
    np.ndarray
        float32 array of the same shape.
    """
    fns = {"tanh": _tanh32_many, "sigmoid": _sigmoid32_many}
    if name not in fns:
        raise ValueError(f"kernels.approx_activation: name {name!r} is not one of {sorted(fns)}")
    flat = np.ascontiguousarray(x, dtype=np.float32).ravel()
    out = np.empty_like(flat)
    fns[name](flat, out)
    return out.reshape(np.shape(x))
