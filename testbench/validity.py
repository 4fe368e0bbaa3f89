"""Predictive validity: does a response metric rank cells the way ablation does?

For a metric ``m`` of each cell (or its magnitude ``|m|``) and the ablation impact of each cell (test
error with the cell knocked out minus the intact error, :mod:`testbench.ablation`) this module gives:

* Spearman's rho and Kendall's tau-b across cells, each with a percentile bootstrap 95 % confidence
  interval (cells resampled with replacement);
* a two-sided permutation p-value of rho (impacts shuffled across cells; ``(1 + #{|rho_perm| >=
  |rho|}) / (1 + n_perm)``, never 0);
* the top-k overlap: the fraction of the k cells with the largest metric that are also among the k
  cells with the largest impact, against a random ranking, whose expected overlap is ``k / n``; the
  p-value is the hypergeometric probability of an overlap at least as large.

Cells where either value is NaN (padding, undefined metrics such as a settling time that never
settles) are left out; statistics of fewer than 3 cells are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from testbench.errors import SettingsError

STATS_COLUMNS = ("n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                 "kendall_hi", "p_perm", "top_k", "overlap", "overlap_random", "p_overlap")
MIN_CELLS = 3


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
        Seed of resampling and permutations.
    block : int
        Resamples evaluated at once (memory ``block * n^2`` floats for Kendall).

    Returns
    -------
    dict
        Keys :data:`STATS_COLUMNS`: ``n`` (cells used), ``spearman`` and ``kendall`` with ``_lo`` /
        ``_hi`` bootstrap bounds (2.5 and 97.5 percentiles), ``p_perm``, ``top_k`` (k used),
        ``overlap`` (fraction of the top-k by metric among the top-k by impact),
        ``overlap_random`` (k / n) and ``p_overlap`` (hypergeometric tail). All NaN but ``n``
        below 3 cells.

    Examples
    --------
    >>> r = rank_statistics([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], n_boot=50, n_perm=50, top_k=2)
    >>> r["spearman"], r["kendall"], r["overlap"]
    (1.0, 1.0, 1.0)
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
    out["n"] = n
    if n < MIN_CELLS:
        return out
    rng = np.random.default_rng(seed)
    out["spearman"] = float(spearman_rows(x, y))
    out["kendall"] = float(kendall_rows(x, y))
    rho_b, tau_b = [], []
    for a in range(0, n_boot, block):
        idx = rng.integers(0, n, (min(block, n_boot - a), n))
        rho_b.append(spearman_rows(x[idx], y[idx]))
        tau_b.append(kendall_rows(x[idx], y[idx]))
    for name, sample in (("spearman", rho_b), ("kendall", tau_b)):
        sample = np.concatenate(sample)
        if np.isfinite(sample).any():  # a constant metric has no rank correlation at all
            lo, hi = np.nanpercentile(sample, [2.5, 97.5])
            out[f"{name}_lo"], out[f"{name}_hi"] = float(lo), float(hi)
    ry = _ranks(y)
    perm = np.argsort(rng.random((n_perm, n)), axis=1)
    rho_p = _pearson_rows(np.broadcast_to(_ranks(x), (n_perm, n)), ry[perm])
    if np.isfinite(out["spearman"]):
        out["p_perm"] = float((1 + np.sum(np.abs(rho_p) >= abs(out["spearman"]) - 1e-12))
                              / (1 + n_perm))
    k = min(int(top_k), n)
    top_m = set(np.argsort(-x, kind="stable")[:k])
    top_i = set(np.argsort(-y, kind="stable")[:k])
    hits = len(top_m & top_i)
    out.update(top_k=k, overlap=hits / k, overlap_random=k / n,
               p_overlap=float(stats.hypergeom.sf(hits - 1, n, k, k)))
    return out


def validity_table(ds: xr.Dataset, *, metrics: list[str] | None = None, magnitude: bool = True,
                   impact: str = "ablation_impact", n_boot: int = 1000, n_perm: int = 2000,
                   top_k: int = 10, seed: int = 0) -> pd.DataFrame:
    """:func:`rank_statistics` of every metric (and ``|metric|``) against ablation, per network.

    Parameters
    ----------
    ds : xr.Dataset
        A result store holding ``metrics`` (dataset, network_size, cell, metric) and the ablation
        variable ``impact`` (dataset, network_size, cell[, mode]); other dims must be selected first.
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
        Index ``(dataset, network_size, [mode,] metric)``; columns :data:`STATS_COLUMNS`. Networks
        without any finite impact are skipped.

    Raises
    ------
    SettingsError
        When the store lacks the variables or has extra dims to select.
    """
    for var in ("metrics", impact):
        if var not in ds:
            raise SettingsError(
                f"validity_table: the store has no '{var}' variable (has: {', '.join(ds.data_vars)}); "
                "fix: run a graph with step/sine analyzers and an ablation node (graphs/paper.yaml)")
    met, imp = ds["metrics"], ds[impact]
    allowed = {"dataset", "network_size", "cell", "metric", "mode"}
    extra = [d for d in (*met.dims, *imp.dims) if d not in allowed and met.sizes.get(d, imp.sizes.get(d)) > 1]
    if extra:
        raise SettingsError(f"validity_table: dims {sorted(set(extra))} have several values; fix: "
                            "select one, e.g. ds.sel(frequency=0.05)")
    met = met.squeeze([d for d in met.dims if d not in allowed], drop=True)
    imp = imp.squeeze([d for d in imp.dims if d not in allowed], drop=True)
    names = [str(m) for m in met["metric"].values] if metrics is None else list(metrics)
    modes = [str(m) for m in imp["mode"].values] if "mode" in imp.dims else [None]
    rows, index = [], []
    for d in imp["dataset"].values:
        for s in imp["network_size"].values:
            for mode in modes:
                y = imp.sel(dataset=d, network_size=s)
                y = (y.sel(mode=mode) if mode is not None else y).values
                if not np.isfinite(y).any():
                    continue
                for name in names:
                    x = met.sel(dataset=d, network_size=s, metric=name).values
                    for label, values in ((name, x), (f"|{name}|", np.abs(x)))[: 2 if magnitude else 1]:
                        rows.append(rank_statistics(values, y, n_boot=n_boot, n_perm=n_perm,
                                                    top_k=top_k, seed=seed))
                        index.append((str(d), int(s), *([mode] if mode is not None else []), label))
    names_idx = ["dataset", "network_size", *(["mode"] if modes != [None] else []), "metric"]
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=names_idx),
                        columns=list(STATS_COLUMNS))


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
