"""CPU kernels (Numba) of the streaming step and sine metrics (host: :mod:`kernels.streaming`).

Each work item is the simulation kernel's (block of ``BLOCK_CELLS`` cells, stimulus) pair, run
with the same :func:`kernels.cpu.load_block` / :func:`kernels.cpu.run_steps` (so the trajectory is
bitwise that of :func:`kernels.cpu.simulate_cpu`). After every ``BLOCK_STEPS`` steps the buffered
block, still in cache, is folded into per-cell accumulators instead of being written out; a second pass over the
kept block record (or a second simulation, for long records) folds the quantities that need the
first pass's means.

Sums reproduce NumPy's reduction exactly: ``np.add.reduce`` over a contiguous axis of length L
starts from 0 and adds ``pairwise_sum`` (leaves of at most 128 samples summed with 8 interleaved
partial sums, split at ``L // 2`` rounded down to a multiple of 8; NumPy 2.x, checked by
``tests/test_streaming.py``). The host gives each sum its leaf lengths and, per leaf, how many
pending partial sums to combine after it (a post-order walk of NumPy's recursion); the kernel keeps
per cell 8 partial sums, the current leaf's sum and a small stack. Products are rounded before they
are summed (no ``contract``, see :data:`kernels._config.EXACT`). Every operation happens in the
same order and precision as in NumPy, so the analyzers' metrics come out bitwise.
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
def _pw_add(v, m, work, k, D, lens, pops):
    """Add the next sample ``v[j]`` of each of m cells to running NumPy pairwise sum k of ``work``.

    Sum k owns rows ``k*8 .. k*8+7`` of the partial sums r, row k of the leaf sums, rows ``k*D ..``
    of the stack and counters ``ctr[3k:3k+3]`` = [leaf index, position in the leaf, stack depth];
    ``lens``/``pops`` are its plan. When the last leaf is done, stack row ``k*D`` holds the sums.
    (Offsets, not views: a view per sample and sum costs more than the sum itself.)
    """
    r, res, stack, ctr = work
    li, p, sp = ctr[3 * k], ctr[3 * k + 1], ctr[3 * k + 2]
    L = lens[li]
    um = np.uint64(m)
    rb, qb, sb = np.uint64(k * 8 * BC), np.uint64(k * BC), k * D
    if L < 8:  # numpy: res = 0; res += a[i]
        if p == 0:
            for j in range(um):
                res[qb + j] = 0.0 + v[j]
        else:
            for j in range(um):
                res[qb + j] += v[j]
    else:
        full = L - L % 8
        base = rb + np.uint64((p % 8) * BC)
        if p < 8:
            for j in range(um):
                r[base + j] = v[j]
        elif p < full:
            for j in range(um):
                r[base + j] += v[j]
        else:
            for j in range(um):
                res[qb + j] += v[j]
        if p == full - 1:
            for j in range(um):
                q = rb + j
                res[qb + j] = (((r[q] + r[q + UBC]) + (r[q + 2 * UBC] + r[q + 3 * UBC]))
                               + ((r[q + 4 * UBC] + r[q + 5 * UBC])
                                  + (r[q + 6 * UBC] + r[q + 7 * UBC])))
    p += 1
    if p == L:
        top = np.uint64((sb + sp) * BC)
        for j in range(um):
            stack[top + j] = res[qb + j]
        sp += 1
        for _ in range(pops[li]):
            sp -= 1
            hi, lo = np.uint64((sb + sp) * BC), np.uint64((sb + sp - 1) * BC)
            for j in range(um):
                stack[lo + j] += stack[hi + j]
        li += 1
        p = 0
    ctr[3 * k], ctr[3 * k + 1], ctr[3 * k + 2] = li, p, sp


@njit(**EXACT)
def _sum_add(t, v, m, seg, k, work, D, lens, pops):
    """Feed sample t (values ``v`` of m cells) to sum k when t lies in its segment
    ``seg[k]`` = (start, length, plan offset)."""
    start, length, off = seg[k, 0], seg[k, 1], seg[k, 2]
    if length > 0 and start <= t < start + length:
        if t == start:
            work[3][3 * k] = off  # leaf index: the plan's first leaf
        _pw_add(v, m, work, k, D, lens, pops)


@njit(**EXACT)
def _work_arrays(K, D):
    """Partial sums, leaf sums, stacks and counters of K pairwise sums of stack depth D."""
    return (np.empty(K * 8 * BC), np.empty(K * BC), np.zeros(K * D * BC),
            np.zeros(3 * K, dtype=np.int64))


@njit(**EXACT)
def _fold_first(buf, t0, nt, m, seg, lens, pops, work, D, v, mx, mn, bad):
    """First-pass statistics of buffered steps t0 .. t0 + nt - 1: sums, max, min, NaN count."""
    for tt in range(nt):
        row = np.uint64(tt * BC)
        for j in range(np.uint64(m)):
            y = np.float64(buf[row + j])
            v[j] = y
            mx[j] = max(mx[j], y)
            mn[j] = min(mn[j], y)
            bad[j] += y != y
        for k in range(3):
            _sum_add(t0 + tt, v, m, seg, k, work, D, lens, pops)


@njit(**EXACT)
def _fold_second(buf, t0, nt, m, seg, lens, pops, work, D, xc, mu, fin, bnd, on, prod, sq, lst):
    """Second-pass statistics once the means are known: centred sums and the last step outside
    the settling band."""
    sine = seg[0, 1] > 0
    for tt in range(nt):
        t = t0 + tt
        row = np.uint64(tt * BC)
        if sine:
            xt = xc[t]
            for j in range(np.uint64(m)):
                yc = np.float64(buf[row + j]) - mu[j]
                prod[j] = xt * yc
                sq[j] = yc * yc
            _sum_add(t, prod, m, seg, 0, work, D, lens, pops)
            _sum_add(t, sq, m, seg, 1, work, D, lens, pops)
        if t >= on:
            ft = np.float64(t)
            for j in range(np.uint64(m)):
                if abs(np.float64(buf[row + j]) - fin[j]) > bnd[j]:
                    lst[j] = ft


@njit(**PARALLEL_EXACT)
def metrics_cpu(code, P, x, h0, c0, lo, hi, keep, seg1, seg2, lens, pops, D, onset, xc, nf, ni,
                band_frac, band_floor, band_delta, sums1, ymax, ymin, nans, steady, sums2, last):
    """Streaming metrics of cells lo .. hi - 1, every stimulus, in two passes over time.

    First pass: the pairwise sums of ``seg1`` (S, 3, 3) rows (start, length, plan offset): whole
    record, final window, initial window -> ``sums1`` (n, S, 3); ``ymax``, ``ymin``, ``nans``
    (n, S) over the record; ``steady`` (hi - lo, S, ns) float64 copies of the last ns samples.
    Then per cell the mean (sum / T), the final and initial means (/ ``nf``, / ``ni[s]``) and the
    band ``max(band_frac * |final - initial| (band_delta) or |final|, band_floor)``. Second pass:
    the sums of ``seg2`` (S, 2, 3) of ``xc[s, t] * (y - mean)`` and ``(y - mean) ** 2`` ->
    ``sums2`` (n, S, 2), and ``last`` (n, S): the last step t >= ``onset[s]`` with
    ``|y - final| > band``, -1 if none. With ``keep`` the first pass keeps the block's record
    (T x BLOCK_CELLS samples) and the second reads it back; otherwise the second simulates again
    (bitwise the same trajectory).
    """
    S, T = x.shape
    ns = steady.shape[2]
    n_blocks = (hi - lo + BC - 1) // BC
    for job in prange(n_blocks * S):
        blk = job // S
        s = job - blk * S
        u0 = lo + blk * BC
        m = min(BC, hi - u0)
        p, st = load_block(P, u0, m, h0, c0)
        rec = np.empty((T if keep else BS) * BC, dtype=P.dtype)
        work = _work_arrays(3, D)
        v = np.empty(BC)
        mx, mn, bad = np.full(BC, -np.inf), np.full(BC, np.inf), np.zeros(BC)
        for t0 in range(0, T, BS):
            nt = min(BS, T - t0)
            buf = rec[t0 * BC:] if keep else rec
            run_steps(code, False, p, st, buf, m, x[s], t0, nt)
            _fold_first(buf, t0, nt, m, seg1[s], lens, pops, work, D, v, mx, mn, bad)
            for j in range(m):
                for tt in range(max(0, T - ns - t0), nt):
                    steady[u0 - lo + j, s, t0 + tt - (T - ns)] = buf[tt * BC + j]
        stack = work[2]
        mu, fin, bnd = np.zeros(BC), np.zeros(BC), np.zeros(BC)
        for j in range(m):
            for k in range(3):
                sums1[u0 + j, s, k] = stack[k * D * BC + j]
            ymax[u0 + j, s], ymin[u0 + j, s], nans[u0 + j, s] = mx[j], mn[j], bad[j]
            mu[j] = stack[j] / T
            fin[j] = stack[D * BC + j] / nf
            initial = stack[2 * D * BC + j] / ni[s] if onset[s] < T else np.nan
            b = band_frac * (abs(fin[j] - initial) if band_delta else abs(fin[j]))
            bnd[j] = b if b != b else max(b, band_floor)  # np.maximum: NaN propagates
        if not keep:
            p, st = load_block(P, u0, m, h0, c0)
        work = _work_arrays(2, D)
        prod, sq, lst = np.empty(BC), np.empty(BC), np.full(BC, -1.0)
        for t0 in range(0, T, BS):
            nt = min(BS, T - t0)
            buf = rec[t0 * BC:] if keep else rec
            if not keep:
                run_steps(code, False, p, st, buf, m, x[s], t0, nt)
            _fold_second(buf, t0, nt, m, seg2[s], lens, pops, work, D, xc[s], mu, fin, bnd,
                         onset[s], prod, sq, lst)
        stack = work[2]
        for j in range(m):
            for k in range(2):
                sums2[u0 + j, s, k] = stack[k * D * BC + j]
            last[u0 + j, s] = lst[j]
