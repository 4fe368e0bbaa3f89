"""Scalar equations shared by the CPU and CUDA kernels: activations and one step of each cell.

Activations dispatch on the argument's type at compile time, and both precisions are branch-free so
that the CPU kernel's cell loop vectorizes (Numba has no vector math library here):

* float32: the minimax 13/6 rational of Eigen's ``generic_fast_tanh_float`` on an input clamped to
  +-7.90531110763549805, where float32 tanh rounds to +-1. Absolute error <= 1e-6 on the whole real
  line (tested in ``tests/test_kernels.py``).
* float64: Cephes' tanh — a 5/4 rational for |x| <= 0.625, ``(e - 1) / (e + 1)`` with
  ``e = exp(2|x|)`` from Cephes' exp (a 5/6 rational times 2**n) above — both branches computed and
  one selected, sharing one division; input clamped to +-19.5, where float64 tanh rounds to +-1.
  Error <= 3 ulp (tested <= 4 ulp).

sigmoid(z) = 0.5 + 0.5 tanh(z/2) inherits the error halved. The clamps keep NaN: NaN in, NaN out.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from testbench.kernels._config import JIT

_F = np.float32
_CLAMP = _F(7.90531110763549805)
_ALPHA = tuple(_F(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03))
_BETA = tuple(_F(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                               4.89352518554385e-03))
_HALF32, _ZERO32 = _F(0.5), _F(0.0)
_CLAMP64 = 19.5
# Cephes tanh, |x| <= 0.625: tanh x = x + x^3 P(x^2) / Q(x^2), Q monic
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
# Cephes exp: exp r = (q + p) / (q - p), p = r P(r^2), q = Q(r^2), |r| <= ln(2)/2
_EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
          2.00000000000000000009e0)
_LOG2E, _LN2_HI, _LN2_LO = 1.4426950408889634, 6.93145751953125e-1, 1.42860682030941723212e-6


@njit(**JIT)
def _clamp(x, bound):
    """x clamped to [-bound, bound]; NaN stays NaN (every comparison with NaN is false).

    Written as selects on ``<`` so that LLVM emits one vminps/vmaxps each; ``np.minimum``'s NaN
    handling costs four instructions per bound instead.
    """
    x = bound if bound < x else x
    return -bound if x < -bound else x


@njit(**JIT)
def tanh32(x):
    """Rational approximation of tanh for float32 ``x`` (absolute error <= 1e-6; NaN stays NaN)."""
    x = _clamp(x, _CLAMP)
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


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits`` (an LLVM bitcast, which vectorizes)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(**JIT)
def tanh64(x):
    """Branch-free tanh for float64 ``x`` (error <= 3 ulp; NaN stays NaN): see the module docstring."""
    x = _clamp(x, _CLAMP64)
    big = abs(x) > 0.625
    x2 = x * x
    p = (_TANH_P[0] * x2 + _TANH_P[1]) * x2 + _TANH_P[2]
    q = ((x2 + _TANH_Q[0]) * x2 + _TANH_Q[1]) * x2 + _TANH_Q[2]
    num_small, den_small = x * (q + x2 * p), q
    y = 2.0 * abs(x) if big else 1.0  # exp(y) is only used when big; 1.0 keeps NaN out of it
    n = int(math.floor(_LOG2E * y + 0.5))
    r = (y - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    p = r * ((_EXP_P[0] * r2 + _EXP_P[1]) * r2 + _EXP_P[2])
    q = ((_EXP_Q[0] * r2 + _EXP_Q[1]) * r2 + _EXP_Q[2]) * r2 + _EXP_Q[3]
    a = _float64_from_bits((n + 1023) << 52) * (q + p)  # e (q - p), 0 <= n <= 57
    num_big, den_big = a - (q - p), a + (q - p)
    if x < 0.0:
        num_big = -num_big
    return (num_big if big else num_small) / (den_big if big else den_small)


def act_tanh(z):
    """tanh(z): :func:`tanh32` for float32, :func:`tanh64` for float64 (chosen at compile time)."""


def act_sigmoid(z):
    """Logistic sigmoid 1 / (1 + exp(-z)) computed as 0.5 + 0.5 tanh(z/2), same dispatch as tanh."""


def act_relu(z):
    """max(z, 0) in the type of z, keeping NaN (NaN in, NaN out)."""


@overload(act_tanh, jit_options=JIT)
def _ov_tanh(z):
    if z == types.float32:
        return lambda z: tanh32(z)
    return lambda z: tanh64(z)


@overload(act_sigmoid, jit_options=JIT)
def _ov_sigmoid(z):
    if z == types.float32:
        return lambda z: _HALF32 + _HALF32 * tanh32(_HALF32 * z)
    return lambda z: 0.5 + 0.5 * tanh64(0.5 * z)


@overload(act_relu, jit_options=JIT)
def _ov_relu(z):
    if z == types.float32:
        return lambda z: _ZERO32 if z < _ZERO32 else z
    return lambda z: 0.0 if z < 0.0 else z


@njit(inline="always", **JIT)
def lstm_update(zi, zf, zg, zo, c):
    """The LSTM equations from the gates' pre-activations and the previous cell state ``c``.

    Returns ``(h_t, c_t, i, f, g, o)``: i, f, o = sigmoid, g = tanh, ``c_t = f c + i g``,
    ``h_t = o tanh(c_t)``.
    """
    i = act_sigmoid(zi)
    f = act_sigmoid(zf)
    g = act_tanh(zg)
    o = act_sigmoid(zo)
    c = f * c + i * g
    return o * act_tanh(c), c, i, f, g, o


@njit(inline="always", **JIT)
def lstm_cell(x, h, c, ai, ri, bi, af, rf, bf, ag, rg, bg, ao, ro, bo):
    """One LSTM step of one isolated cell; b* are the summed biases b_ih + b_hh of each gate.

    Returns ``(h_t, c_t, i, f, g, o)``.
    """
    return lstm_update(ai * x + ri * h + bi, af * x + rf * h + bf, ag * x + rg * h + bg,
                       ao * x + ro * h + bo, c)


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
def _tanh_many(x, out):
    for k in range(x.size):
        out[k] = act_tanh(x[k])


@njit(**JIT)
def _sigmoid_many(x, out):
    for k in range(x.size):
        out[k] = act_sigmoid(x[k])


def approx_activation(name: str, x: np.ndarray) -> np.ndarray:
    """Evaluate an activation exactly as the kernels do, for tests.

    Parameters
    ----------
    name : {'tanh', 'sigmoid'}
        Which activation.
    x : np.ndarray
        float32 or float64 inputs (other dtypes are converted to float64), any shape, any values
        (including +-inf and NaN).

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``x``.
    """
    fns = {"tanh": _tanh_many, "sigmoid": _sigmoid_many}
    if name not in fns:
        raise ValueError(f"kernels.approx_activation: name {name!r} is not one of {sorted(fns)}")
    x = np.asarray(x)
    flat = np.ascontiguousarray(x, dtype=x.dtype if x.dtype == np.float32 else np.float64).ravel()
    out = np.empty_like(flat)
    fns[name](flat, out)
    return out.reshape(x.shape)
