"""CPU kernels (Numba) of the streaming step and sine metrics (host side: :mod:`kernels.streaming`).

Each work item is the simulation kernel's (block of ``BLOCK_CELLS`` cells, stimulus) pair, run with
the same :func:`kernels.cpu.load_block` / :func:`kernels.cpu.run_steps` (so the trajectory is bitwise
that of :func:`kernels.cpu.simulate_cpu`). After every ``BLOCK_STEPS`` steps the buffered block, still
in cache, is folded into per-cell accumulators instead of being written out.

Sums reproduce NumPy's reduction exactly: ``np.add.reduce`` over a contiguous axis of length L starts
from 0 and adds ``pairwise_sum`` (leaves of at most 128 samples summed with 8 interleaved partial
sums, split at ``L // 2`` rounded down to a multiple of 8). The host gives each sum its leaf
lengths and, per leaf, how many pending partial sums to combine after it (a post-order walk of
NumPy's recursion); the kernel keeps per cell 8 partial sums, the current leaf's sum and a small
stack. Every operation happens in the same order and precision as in NumPy, so the analyzers'
metrics come out bitwise.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from testbench.kernels._config import BLOCK_CELLS as BC
from testbench.kernels._config import BLOCK_STEPS as BS
from testbench.kernels._config import EXACT, PARALLEL_EXACT
from testbench.kernels.cpu import load_block, run_steps

UBC = np.uint64(BC)


@njit(**EXACT)
def _pw_add(v, m, r, res, stack, ctr, lens, pops):
    """Add the next sample ``v[j]`` of each of m cells to one running NumPy pairwise sum.

    ``ctr`` = [leaf index, position in the leaf, stack depth]; ``lens``/``pops`` the sum's plan.
    When the last leaf is done, ``stack[:m]`` holds the sums.
    """
    li, p, sp = ctr[0], ctr[1], ctr[2]
    L = lens[li]
    um = np.uint64(m)
    if L < 8:  # numpy: res = 0; res += a[i]
        if p == 0:
            for j in range(um):
                res[j] = 0.0 + v[j]
        else:
            for j in range(um):
                res[j] += v[j]
    else:
        full = L - L % 8
        base = np.uint64((p % 8) * BC)
        if p < 8:
            for j in range(um):
                r[base + j] = v[j]
        elif p < full:
            for j in range(um):
                r[base + j] += v[j]
        else:
            for j in range(um):
                res[j] += v[j]
        if p == full - 1:
            for j in range(um):
                res[j] = (((r[j] + r[UBC + j]) + (r[2 * UBC + j] + r[3 * UBC + j]))
                          + ((r[4 * UBC + j] + r[5 * UBC + j]) + (r[6 * UBC + j] + r[7 * UBC + j])))
    p += 1
    if p == L:
        top = np.uint64(sp * BC)
        for j in range(um):
            stack[top + j] = res[j]
        sp += 1
        for _ in range(pops[li]):
            sp -= 1
            hi, lo = np.uint64(sp * BC), np.uint64((sp - 1) * BC)
            for j in range(um):
                stack[lo + j] += stack[hi + j]
        li += 1
        p = 0
    ctr[0], ctr[1], ctr[2] = li, p, sp


@njit(**EXACT)
def _sums_step(t, v, m, seg, lens, pops, r, res, stack, ctr):
    """Feed sample t (values ``v`` of m cells) to every active sum k: seg[k] = (start, length,
    plan offset)."""
    K = seg.shape[0]
    D = stack.shape[0] // (K * BC)
    for k in range(K):
        start, length, off = seg[k, 0], seg[k, 1], seg[k, 2]
        if length > 0 and start <= t < start + length:
            _pw_add(v, m, r[k * 8 * BC:(k + 1) * 8 * BC], res[k * BC:(k + 1) * BC],
                    stack[k * D * BC:(k + 1) * D * BC], ctr[3 * k:3 * k + 3], lens[off:], pops[off:])


@njit(**EXACT)
def _work_arrays(K, D):
    """Partial sums, leaf sums, stacks and counters of K pairwise sums of stack depth D."""
    return (np.empty(K * 8 * BC), np.empty(K * BC), np.zeros(K * D * BC),
            np.zeros(3 * K, dtype=np.int64))


@njit(**PARALLEL_EXACT)
def metrics_pass1(code, P, x, h0, c0, lo, hi, seg, lens, pops, D, sums, ymax, ymin, nans,
                  steady):
    """First pass over cells lo .. hi - 1: the sums of ``seg`` (S, K, 3), max, min, NaN count.

    Outputs, per (cell, stimulus): ``sums`` (n, S, K) the pairwise sums, ``ymax``/``ymin``/``nans``
    (n, S) over the whole record, ``steady`` (hi - lo, S, ns) float64 copies of the last ns samples.
    """
    S, T = x.shape
    K = seg.shape[1]
    ns = steady.shape[2]
    n_blocks = (hi - lo + BC - 1) // BC
    for job in prange(n_blocks * S):
        blk = job // S
        s = job - blk * S
        u0 = lo + blk * BC
        m = min(BC, hi - u0)
        p, st = load_block(P, u0, m, h0, c0)
        buf = np.empty(BS * BC, dtype=P.dtype)
        r, res, stack, ctr = _work_arrays(K, D)
        v = np.empty(BC)
        mx = np.full(BC, -np.inf)
        mn = np.full(BC, np.inf)
        bad = np.zeros(BC)
        for t0 in range(0, T, BS):
            nt = min(BS, T - t0)
            run_steps(code, False, p, st, buf, m, x[s], t0, nt)
            for tt in range(nt):
                row = np.uint64(tt * BC)
                for j in range(np.uint64(m)):
                    y = np.float64(buf[row + j])
                    v[j] = y
                    mx[j] = max(mx[j], y)
                    mn[j] = min(mn[j], y)
                    bad[j] += y != y
                _sums_step(t0 + tt, v, m, seg[s], lens, pops, r, res, stack, ctr)
            for j in range(m):
                for tt in range(max(0, T - ns - t0), nt):
                    steady[u0 - lo + j, s, t0 + tt - (T - ns)] = buf[tt * BC + j]
        for j in range(m):
            for k in range(K):
                sums[u0 + j, s, k] = stack[k * D * BC + j]
            ymax[u0 + j, s] = mx[j]
            ymin[u0 + j, s] = mn[j]
            nans[u0 + j, s] = bad[j]


@njit(**PARALLEL_EXACT)
def metrics_pass2(code, P, x, h0, c0, seg, lens, pops, D, mean, xc, onset, final, band, sums,
                  last):
    """Second pass (the same trajectory, simulated again) once the means are known.

    Sine (when seg has length): ``sums`` (n, S, 2) the pairwise sums of ``xc[s, t] * (y - mean)``
    and ``(y - mean) ** 2``. Step (when ``onset[s] < T``): ``last`` (n, S) the last step t >=
    onset[s] with ``|y - final| > band``, -1 when none.
    """
    n = P.shape[1]
    S, T = x.shape
    K = seg.shape[1]
    n_blocks = (n + BC - 1) // BC
    for job in prange(n_blocks * S):
        blk = job // S
        s = job - blk * S
        u0 = blk * BC
        m = min(BC, n - u0)
        p, st = load_block(P, u0, m, h0, c0)
        buf = np.empty(BS * BC, dtype=P.dtype)
        r, res, stack, ctr = _work_arrays(K, D)
        mu, fin, bnd = np.zeros(BC), np.zeros(BC), np.zeros(BC)
        for j in range(m):
            mu[j], fin[j], bnd[j] = mean[u0 + j, s], final[u0 + j, s], band[u0 + j, s]
        prod, sq = np.empty(BC), np.empty(BC)
        lst = np.full(BC, -1.0)
        sine = seg[s, 0, 1] > 0
        on = onset[s]
        for t0 in range(0, T, BS):
            nt = min(BS, T - t0)
            run_steps(code, False, p, st, buf, m, x[s], t0, nt)
            for tt in range(nt):
                t = t0 + tt
                row = np.uint64(tt * BC)
                if sine:
                    xt = xc[s, t]
                    for j in range(np.uint64(m)):
                        yc = np.float64(buf[row + j]) - mu[j]
                        prod[j] = xt * yc
                        sq[j] = yc * yc
                    _sums_step(t, prod, m, seg[s, :1], lens, pops, r[:8 * BC], res[:BC],
                               stack[:D * BC], ctr[:3])
                    _sums_step(t, sq, m, seg[s, 1:], lens, pops, r[8 * BC:], res[BC:],
                               stack[D * BC:], ctr[3:])
                if t >= on:
                    ft = np.float64(t)
                    for j in range(np.uint64(m)):
                        if abs(np.float64(buf[row + j]) - fin[j]) > bnd[j]:
                            lst[j] = ft
        for j in range(m):
            for k in range(K):
                sums[u0 + j, s, k] = stack[k * D * BC + j]
            last[u0 + j, s] = lst[j]
