"""Predictive validity: does a response metric rank cells the way ablation does?

For a metric ``m`` of each cell (or its magnitude ``|m|``) and the ablation impact of each cell (test
error with the cell knocked out minus the intact error, :mod:`testbench.ablation`) this module gives:

* Spearman's rho and Kendall's tau-b across cells, each with a percentile bootstrap 95 % confidence
  interval (cells resampled with replacement) and the fraction of resamples whose statistic is
  undefined (a resample that draws only tied cells); the interval is NaN when more than
  :data:`MAX_FAILED` of the resamples fail (:func:`bootstrap_interval`);
* a two-sided permutation p-value of rho (impacts shuffled across cells; ``(1 + #{|rho_perm| >=
  |rho|}) / (1 + n_perm)``, never 0);
* the top-k overlap: the fraction of the k cells with the largest metric that are also among the k
  cells with the largest impact, against a random ranking, whose expected overlap is ``k / n``; the
  p-value is the hypergeometric probability of an overlap at least as large. Ties at the k-th place
  are broken at random (seeded), never by cell order;
* over a whole table, Holm and Benjamini-Hochberg adjusted p-values (:func:`adjust_p`).

Cells where either value is NaN (padding, undefined metrics such as a settling time that never
settles) are left out; statistics of fewer than 3 cells, and all statistics of a metric or impact
that is constant across the cells, are NaN, with the reason in the ``note`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from testbench import schema
from testbench.errors import SettingsError

STATS_COLUMNS = ("n", "spearman", "spearman_lo", "spearman_hi", "spearman_failed", "kendall",
                 "kendall_lo", "kendall_hi", "kendall_failed", "p_perm", "top_k", "overlap",
                 "overlap_random", "p_overlap", "note")
#: Adjusted p-value columns of :func:`validity_table`: ``<p column>_<method>``.
ADJUSTED_COLUMNS = ("p_perm_holm", "p_perm_bh", "p_overlap_holm", "p_overlap_bh")
MIN_CELLS = 3
#: Largest fraction of failed (NaN) bootstrap resamples with which an interval is still given. A
#: percentile bound leaves 2.5 % of the resamples outside; once more than that fail, the failed
#: resamples could hold the whole tail and the bound is not determined by the data, so the interval
#: is NaN. Below it, the bounds are percentiles of the resamples that did not fail.
MAX_FAILED = 0.025


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank)."""
    return stats.rankdata(a, axis=-1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / den, np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``x`` and ``y`` ``(..., n)``; NaN for a constant row."""
    return _pearson_rows(_ranks(x), _ranks(y))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of ``x`` and ``y`` ``(..., n)`` (ties handled as tau-b).

    ``tau_b = sum s_x s_y / sqrt(sum s_x^2 * sum s_y^2)`` over all pairs, ``s = sign`` of the pair
    difference; NaN for a constant row.
    """
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    den = np.sqrt((sx * sx).sum((-1, -2)) * (sy * sy).sum((-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum((-1, -2)) / den, np.nan)


def bootstrap_interval(sample, *, level: float = 0.95,
                       max_failed: float = MAX_FAILED) -> tuple[float, float, float]:
    """Percentile interval of a bootstrap distribution in which some resamples may have failed.

    ``scipy.stats.bootstrap`` is not used: it returns a NaN interval (warning about BCa even for
    the percentile method) as soon as one resample is NaN, and does not report how many failed.

    Parameters
    ----------
    sample : array_like
        Statistic of each resample; NaN marks a failed resample (the statistic is undefined).
    level : float
        Confidence level, 0 < level < 1. Default 0.95.
    max_failed : float
        Largest failed fraction that still gives an interval, in [0, 1]. Default
        :data:`MAX_FAILED` (= (1 - 0.95) / 2).

    Returns
    -------
    lo, hi : float
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the resamples that did not
        fail; NaN when the failed fraction exceeds ``max_failed`` or none succeeded.
    failed : float
        Fraction of failed resamples, in [0, 1]; NaN for an empty sample.

    Examples
    --------
    >>> bootstrap_interval([0.0, 1.0, 2.0, 3.0, np.nan], level=0.5, max_failed=0.25)
    (0.75, 2.25, 0.2)
    >>> bootstrap_interval([0.0, 1.0, 2.0, 3.0, np.nan])   # 20 % failed > MAX_FAILED
    (nan, nan, 0.2)
    """
    if not 0 < level < 1:
        raise SettingsError(f"bootstrap_interval: level={level!r} is out of range; "
                            "rule: 0 < level < 1")
    sample = np.asarray(sample, np.float64).ravel()
    if sample.size == 0:
        return np.nan, np.nan, np.nan
    ok = np.isfinite(sample)
    failed = float((~ok).mean())
    if failed > max_failed or not ok.any():
        return np.nan, np.nan, failed
    lo, hi = np.percentile(sample[ok], [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi), failed


def adjust_p(p, method: str) -> np.ndarray:
    """Multiple-comparison adjusted p-values of one family of tests.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1]; NaN entries (tests not done) stay NaN and do not count in the family.
    method : {'holm', 'bh'}
        ``holm``: Holm's step-down adjustment, controlling the family-wise error rate;
        ``bh``: Benjamini-Hochberg, controlling the false discovery rate under independence or
        positive dependence (``scipy.stats.false_discovery_control``).

    Returns
    -------
    np.ndarray
        Adjusted p-values, same shape as ``p``, in [0, 1]; reject at level alpha where
        ``adjusted <= alpha``. Equal to ``statsmodels.stats.multitest.multipletests(p,
        method='holm' | 'fdr_bh')[1]``.

    Examples
    --------
    >>> adjust_p([0.01, 0.04, np.nan, 0.03], "holm")
    array([0.03, 0.06,  nan, 0.06])
    """
    if method not in ("holm", "bh"):
        raise SettingsError(f"adjust_p: method {method!r} is unknown; rule: 'holm' or 'bh'")
    p = np.asarray(p, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    if q.size == 0:
        return out
    if method == "bh":
        out[ok] = stats.false_discovery_control(q, method="bh")
        return out
    order = np.argsort(q, kind="stable")
    steps = (q.size - np.arange(q.size)) * q[order]   # (m - j + 1) p_(j), j = 1..m
    adjusted = np.empty(q.size)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    out[ok] = adjusted
    return out


def _top_k(v: np.ndarray, k: int, tie: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices of the k largest values, ties broken by ``tie``; and how many places ties decided."""
    top = np.lexsort((tie, -v))[:k]
    edge = v[top[-1]]
    above = int(np.sum(v > edge))
    return top, (k - above if np.sum(v == edge) > k - above else 0)


def rank_statistics(metric, impact, *, n_boot: int = 1000, n_perm: int = 2000, top_k: int = 10,
                    seed: int = 0, block: int = 100) -> dict:
    """Rank agreement between a per-cell metric and the per-cell ablation impact.

    Parameters
    ----------
    metric, impact : array_like, (n,)
        One value per cell; pairs with a NaN are dropped.
    n_boot : int
        Bootstrap resamples for the 95 % intervals, >= 1.
    n_perm : int
        Permutations for the p-value of rho, >= 1.
    top_k : int
        Size of the top sets, >= 1 (capped at the number of cells).
    seed : int
        Seed of resampling, permutations and the tie-breaking of the top sets.
    block : int
        Resamples evaluated at once (memory ``block * n^2`` floats for Kendall).

    Returns
    -------
    dict
        Keys :data:`STATS_COLUMNS`: ``n`` (cells used), ``spearman`` and ``kendall`` with ``_lo`` /
        ``_hi`` bootstrap bounds (2.5 and 97.5 percentiles) and ``_failed`` (fraction of resamples
        in which the statistic is undefined, in [0, 1]; bounds NaN above :data:`MAX_FAILED`),
        ``p_perm``, ``top_k`` (k used), ``overlap`` (fraction of the top-k by metric among the
        top-k by impact; ties at the k-th place broken at random with ``seed``),
        ``overlap_random`` (k / n), ``p_overlap`` (hypergeometric tail) and ``note`` (why values
        are NaN, and how many top-k places ties decided; ``''`` when nothing to say). All NaN but
        ``n`` and ``note`` below 3 cells or when the metric or the impact is constant across the
        cells (no ranking at all: a top-k set would follow cell order).

    Examples
    --------
    >>> r = rank_statistics([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], n_boot=50, n_perm=50, top_k=2)
    >>> r["spearman"], r["kendall"], r["overlap"]
    (1.0, 1.0, 1.0)
    >>> rank_statistics([1, 1, 1, 1], [1, 2, 3, 4])["note"]
    'metric constant across the 4 cells: no ranking'
    """
    for name, value in (("n_boot", n_boot), ("n_perm", n_perm), ("top_k", top_k), ("block", block)):
        if int(value) < 1:
            raise SettingsError(f"rank_statistics: {name}={value!r} is out of range; rule: >= 1")
    x, y = np.asarray(metric, np.float64).ravel(), np.asarray(impact, np.float64).ravel()
    if x.shape != y.shape:
        raise SettingsError(f"rank_statistics: metric has {x.size} values but impact has {y.size}; "
                            "fix: pass one value per cell for both")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    out = dict.fromkeys(STATS_COLUMNS, np.nan)
    out.update(n=n, note="")
    if n < MIN_CELLS:
        out["note"] = f"{n} cells with both values: fewer than {MIN_CELLS}"
        return out
    constant = [label for label, v in (("metric", x), ("impact", y)) if np.ptp(v) == 0]
    if constant:
        out["note"] = f"{' and '.join(constant)} constant across the {n} cells: no ranking"
        return out
    notes = []
    rng = np.random.default_rng(seed)
    out["spearman"] = float(spearman_rows(x, y))
    out["kendall"] = float(kendall_rows(x, y))
    rho_b, tau_b = [], []
    for a in range(0, n_boot, block):
        idx = rng.integers(0, n, (min(block, n_boot - a), n))
        rho_b.append(spearman_rows(x[idx], y[idx]))
        tau_b.append(kendall_rows(x[idx], y[idx]))
    for name, sample in (("spearman", rho_b), ("kendall", tau_b)):
        lo, hi, failed = bootstrap_interval(np.concatenate(sample))
        out.update({f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_failed": failed})
        if failed > MAX_FAILED:
            notes.append(f"{name} CI: {failed:.1%} of resamples drew only tied cells "
                         f"(> {MAX_FAILED:.1%})")
    ry = _ranks(y)
    perm = np.argsort(rng.random((n_perm, n)), axis=1)
    rho_p = _pearson_rows(np.broadcast_to(_ranks(x), (n_perm, n)), ry[perm])
    out["p_perm"] = float((1 + np.sum(np.abs(rho_p) >= abs(out["spearman"]) - 1e-12))
                          / (1 + n_perm))
    k = min(int(top_k), n)
    tie = rng.random((2, n))
    top_m, tied_m = _top_k(x, k, tie[0])
    top_i, tied_i = _top_k(y, k, tie[1])
    for label, tied in (("metric", tied_m), ("impact", tied_i)):
        if tied:
            notes.append(f"top-{k} by {label}: {tied} places decided by random tie-breaking")
    hits = len(set(top_m) & set(top_i))
    out.update(top_k=k, overlap=hits / k, overlap_random=k / n,
               p_overlap=float(stats.hypergeom.sf(hits - 1, n, k, k)), note="; ".join(notes))
    return out


def validity_table(ds: xr.Dataset, *, metrics: list[str] | None = None, magnitude: bool = True,
                   impact: str = "ablation_impact", n_boot: int = 1000, n_perm: int = 2000,
                   top_k: int = 10, seed: int = 0) -> pd.DataFrame:
    """:func:`rank_statistics` of every metric (and ``|metric|``) against ablation, per network.

    Parameters
    ----------
    ds : xr.Dataset
        A result store holding metric variables (read through :func:`testbench.schema.metrics`)
        and the ablation variable ``impact`` (network, cell[, mode]); other dims must be selected
        first.
    metrics : list of str, optional
        Metric names; default every metric in the store.
    magnitude : bool
        Also test ``|metric|`` (rows named ``|name|``). Default True.
    impact : str
        Name of the impact variable. Default ``ablation_impact``.
    n_boot, n_perm, top_k, seed
        See :func:`rank_statistics`.

    Returns
    -------
    pd.DataFrame
        Index ``(network, [mode,] metric)``; columns :data:`STATS_COLUMNS` then
        :data:`ADJUSTED_COLUMNS`: ``p_perm`` and ``p_overlap`` adjusted by Holm (family-wise error
        rate) and Benjamini-Hochberg (false discovery rate), :func:`adjust_p`. The family of each
        p-value column is all rows of this table (every network, mode, metric and magnitude), NaN
        p-values not counted; select fewer metrics or networks for a smaller family. Networks
        without any finite impact are skipped.

    Raises
    ------
    SettingsError
        When the store lacks the variables or has extra dims to select.
    """
    if impact not in ds:
        raise SettingsError(
            f"validity_table: the store has no '{impact}' variable (has: {', '.join(ds.data_vars)}); "
            "fix: run a graph with step/sine analyzers and an ablation node (graphs/paper.yaml)")
    met, imp = schema.metrics(ds, metrics), ds[impact]
    allowed = {schema.NETWORK, schema.CELL, schema.METRIC, "mode"}
    extra = [d for d in (*met.dims, *imp.dims) if d not in allowed and met.sizes.get(d, imp.sizes.get(d)) > 1]
    if extra:
        raise SettingsError(f"validity_table: dims {sorted(set(extra))} have several values; fix: "
                            "select one, e.g. ds.sel(frequency=0.05)")
    met = met.squeeze([d for d in met.dims if d not in allowed], drop=True)
    imp = imp.squeeze([d for d in imp.dims if d not in allowed], drop=True)
    names = [str(m) for m in met[schema.METRIC].values]
    modes = [str(m) for m in imp["mode"].values] if "mode" in imp.dims else [None]
    rows, index = [], []
    for net in imp[schema.NETWORK].values:
        for mode in modes:
            y = imp.sel({schema.NETWORK: net})
            y = (y.sel(mode=mode) if mode is not None else y).values
            if not np.isfinite(y).any():
                continue
            for name in names:
                x = met.sel({schema.NETWORK: net, schema.METRIC: name}).values
                for label, values in ((name, x), (f"|{name}|", np.abs(x)))[: 2 if magnitude else 1]:
                    rows.append(rank_statistics(values, y, n_boot=n_boot, n_perm=n_perm,
                                                top_k=top_k, seed=seed))
                    index.append((str(net), *([mode] if mode is not None else []), label))
    names_idx = [schema.NETWORK, *(["mode"] if modes != [None] else []), schema.METRIC]
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=names_idx),
                         columns=list(STATS_COLUMNS))
    for column in ADJUSTED_COLUMNS:
        source, method = column.rsplit("_", 1)
        table[column] = adjust_p(table[source].to_numpy(np.float64), method)
    return table


def moving_trend(metric, impact, *, window: int = 15) -> pd.DataFrame:
    """The Fig. 4 view: impacts of cells sorted by a metric, with a centred moving mean and spread.

    Parameters
    ----------
    metric, impact : array_like, (n,)
        One value per cell; pairs with a NaN are dropped.
    window : int
        Cells per moving window, >= 1 (shrinks at the ends: ``min_periods=1``).

    Returns
    -------
    pd.DataFrame
        Rows in ascending metric order; columns ``cell`` (original index), ``metric``, ``impact``,
        ``trend`` (moving mean of impact) and ``spread`` (moving population std).
    """
    if int(window) < 1:
        raise SettingsError(f"moving_trend: window={window!r} is out of range; rule: >= 1")
    x, y = np.asarray(metric, np.float64).ravel(), np.asarray(impact, np.float64).ravel()
    cells = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    order = cells[np.argsort(x[cells], kind="stable")]
    frame = pd.DataFrame({"cell": order, "metric": x[order], "impact": y[order]})
    roll = frame["impact"].rolling(int(window), center=True, min_periods=1)
    frame["trend"] = roll.mean()
    frame["spread"] = roll.std(ddof=0)
    return frame


def moving_band(impact, *, window: int = 15, n_perm: int = 200, level: float = 0.95,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Permutation band of the Fig. 4 moving mean: what the trend looks like when the ranking
    says nothing.

    The impacts are shuffled across ranks ``n_perm`` times (seeded), each shuffle is smoothed by
    the same centred moving mean as :func:`moving_trend`, and the band is the central ``level``
    percentile interval at each rank (``level = 0.95``: 2.5 % and 97.5 %). A trend outside the
    band at a rank is one a random ranking rarely gives there (pointwise: about ``1 - level`` of
    the ranks leave it by chance).

    Parameters
    ----------
    impact : array_like, (n,)
        Impacts in rank order (``moving_trend(...)["impact"]``); finite.
    window : int
        Cells per moving window, >= 1, as in :func:`moving_trend`.
    n_perm : int
        Shuffles, >= 1. Default 200.
    level : float
        Central probability of the band, 0 < level < 1. Default 0.95.
    seed : int
        Seed of the shuffles.

    Returns
    -------
    lo, hi : ndarray, (n,)
        Lower and upper band, in the impact's units.
    """
    if int(window) < 1 or int(n_perm) < 1 or not 0 < level < 1:
        raise SettingsError(f"moving_band: window={window!r}, n_perm={n_perm!r}, level={level!r}; "
                            "rule: window >= 1, n_perm >= 1, 0 < level < 1")
    y = np.asarray(impact, np.float64).ravel()
    rng = np.random.default_rng(seed)
    shuffled = pd.DataFrame(np.stack([rng.permutation(y) for _ in range(int(n_perm))], axis=1))
    trends = shuffled.rolling(int(window), center=True, min_periods=1).mean().to_numpy()
    tail = 100 * (1 - level) / 2
    return np.percentile(trends, tail, axis=1), np.percentile(trends, 100 - tail, axis=1)
