"""Capacity analysis (the paper's Fig. 5): how each metric's distribution changes with network size.

:func:`power_law` fits ``y = a * N**b`` by least squares on ``log y`` against ``log N`` and gives the
exponent ``b`` with a Student-t 95 % confidence interval (``n - 2`` degrees of freedom). Applied to
the per-network mean over cells of a metric's magnitude (:func:`capacity_table`), it tests the
paper's claims that the sine amplitude decays roughly as ``1/N`` (``b ~ -1``) while the settling time
stays flat (``b ~ 0``). With several networks per size (training seeds, untrained controls as a
label of the network grid) :func:`capacity_table` fits each one, and :func:`across` gives the spread
of the exponent across seeds with a t-interval: one network's fit interval says nothing about how
another training draw would come out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from testbench.errors import SettingsError
from testbench.schema import CELL, DATASET, METRIC, NETWORK, NETWORK_SIZE, SEED, VARIANT


def power_law(sizes, values, *, level: float = 0.95) -> dict:
    """Least-squares fit of ``log(values) = log(a) + b * log(sizes)``.

    Parameters
    ----------
    sizes : array_like, (n,)
        Network sizes N (> 0).
    values : array_like, (n,)
        Positive values (e.g. mean |amplitude| per network); non-finite or non-positive pairs are
        dropped.
    level : float
        Confidence level of the interval, in (0, 1). Default 0.95.

    Returns
    -------
    dict
        ``exponent`` b, ``exponent_lo`` / ``exponent_hi`` (t interval), ``prefactor`` a, ``r2``,
        ``p_value`` (of b = 0), ``n_points``. NaN when fewer than 3 points remain.

    Examples
    --------
    >>> fit = power_law([32, 64, 128, 256], [2.0, 1.0, 0.5, 0.25])
    >>> round(fit["exponent"], 12), fit["n_points"]
    (-1.0, 4)
    """
    if not 0 < level < 1:
        raise SettingsError(f"power_law: level={level!r} is out of range; rule: 0 < level < 1")
    n_arr, v = np.asarray(sizes, np.float64).ravel(), np.asarray(values, np.float64).ravel()
    keep = np.isfinite(n_arr) & np.isfinite(v) & (n_arr > 0) & (v > 0)
    lx, ly = np.log(n_arr[keep]), np.log(v[keep])
    out = {"exponent": np.nan, "exponent_lo": np.nan, "exponent_hi": np.nan, "prefactor": np.nan,
           "r2": np.nan, "p_value": np.nan, "n_points": int(keep.sum())}
    if keep.sum() < 3:
        return out
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf(0.5 + level / 2, len(lx) - 2) * fit.stderr
    out.update(exponent=float(fit.slope), exponent_lo=float(fit.slope - half),
               exponent_hi=float(fit.slope + half), prefactor=float(np.exp(fit.intercept)),
               r2=float(fit.rvalue ** 2), p_value=float(fit.pvalue))
    return out


def size_statistics(metrics: xr.DataArray, *, magnitude: bool = True) -> xr.Dataset:
    """Mean, std and median over cells of each metric, per network.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(network, cell, metric, ...)`` (:func:`testbench.schema.metrics`); NaN cells are
        skipped.
    magnitude : bool
        Use ``|metric|`` (the scale of a response regardless of its sign). Default True.

    Returns
    -------
    xr.Dataset
        ``mean``, ``std`` (ddof 0), ``median`` with dims ``(network, metric, ...)`` and the network
        coordinates.
    """
    import warnings

    m = (abs(metrics) if magnitude else metrics).load()
    with warnings.catch_warnings():  # networks absent from the grid are all-NaN: NaN statistics
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.Dataset({"mean": m.mean(CELL), "std": m.std(CELL), "median": m.median(CELL)})


#: Network coordinates that tell fits apart: networks differing in any of them are fitted apart.
GROUPS = (DATASET, VARIANT, SEED)


def capacity_table(metrics: xr.DataArray, *, names: list[str] | None = None, statistic: str = "mean",
                   magnitude: bool = True) -> pd.DataFrame:
    """Power-law exponent of each metric's per-network statistic against network size.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(network, cell, metric)`` and any sweep dims (each fitted separately), with the
        network coordinates ``dataset``, ``network_size``, ``variant`` and ``seed``
        (:func:`testbench.schema.metrics`).
    names : list of str, optional
        Metrics to fit; default all.
    statistic : {'mean', 'median'}
        Per-network statistic of the (absolute) metric that is fitted. Default ``mean``.
    magnitude : bool
        Fit ``|metric|`` (needed for signed metrics). Default True.

    Returns
    -------
    pd.DataFrame
        Index ``(dataset, variant, seed, *sweep dims in their order, metric)`` — one fit over
        the sizes of the networks sharing a dataset, variant and seed (per seed: :func:`across`
        aggregates them), per sweep point and per metric; columns of :func:`power_law`.
    """
    if statistic not in ("mean", "median"):
        raise SettingsError(f"capacity_table: statistic {statistic!r} is not 'mean' or 'median'")
    missing = [d for d in (NETWORK, CELL, METRIC) if d not in metrics.dims]
    missing += [c for c in (*GROUPS, NETWORK_SIZE) if c not in metrics.coords]
    if missing:
        raise SettingsError(f"capacity_table: metrics lack {missing}; fix: pass "
                            "testbench.schema.metrics(store) of a run over several network sizes")
    table = size_statistics(metrics, magnitude=magnitude)[statistic]
    names = [str(m) for m in metrics[METRIC].values] if names is None else list(names)
    sweeps = [d for d in table.dims if d not in (NETWORK, METRIC)]
    table = table.sel({METRIC: names}).transpose(NETWORK, *sweeps, METRIC)
    nets = pd.DataFrame({c: np.asarray(metrics[c].values) for c in (*GROUPS, NETWORK_SIZE)})
    rows, index = [], []
    for key, group in nets.groupby(list(GROUPS), sort=False):
        key = tuple(v.item() if hasattr(v, "item") else v for v in key)
        values = table.values[group.index.to_numpy()]  # (networks of the group, *sweeps, metric)
        for at in np.ndindex(values.shape[1:]):
            rows.append(power_law(group[NETWORK_SIZE].to_numpy(), values[(slice(None), *at)]))
            labels = [table[d].values[i].item() for d, i in zip(sweeps, at[:-1])]
            index.append((*key, *labels, names[at[-1]]))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(
        index, names=[*GROUPS, *sweeps, METRIC]))


def across(table: pd.DataFrame, level: str = "seed", *, column: str = "exponent",
           confidence: float = 0.95) -> pd.DataFrame:
    """Aggregate per-seed (or per-any-label) fits: mean, spread and a t-interval across the label.

    One fit per seed gives an interval for *that* network's exponent only; the interval across
    seeds says how much training draws change it (``scipy.stats.ttest_1samp`` over the seeds).

    Parameters
    ----------
    table : pd.DataFrame
        A :func:`capacity_table` (or any frame with ``column`` and index level ``level``).
    level : str
        Index level to aggregate over. Default ``seed``.
    column : str
        Column aggregated. Default ``exponent``.
    confidence : float
        Confidence level of the interval, 0 < confidence < 1. Default 0.95.

    Returns
    -------
    pd.DataFrame
        Index: the other levels; columns ``n`` (labels with a finite value), ``mean``, ``std``
        (ddof 1), ``min``, ``max``, ``lo`` / ``hi`` (Student-t interval of the mean, n - 1 degrees
        of freedom) and ``p_value`` (two-sided, of mean = 0). ``std``, ``lo``, ``hi``, ``p_value``
        NaN below 2 finite values.

    Examples
    --------
    >>> import pandas as pd
    >>> index = pd.MultiIndex.from_tuples([("co2", s, "settling_time") for s in range(3)],
    ...                                   names=["dataset", "seed", "metric"])
    >>> t = pd.DataFrame({"exponent": [-0.06, -0.14, -0.12]}, index=index)
    >>> row = across(t).loc[("co2", "settling_time")]
    >>> round(float(row["mean"]), 3), int(row["n"])
    (-0.107, 3)
    """
    if not 0 < confidence < 1:
        raise SettingsError(f"across: confidence={confidence!r} is out of range; "
                            "rule: 0 < confidence < 1")
    if level not in table.index.names or column not in table.columns:
        raise SettingsError(f"across: the table has index levels {list(table.index.names)} and "
                            f"columns {list(table.columns)}, not level {level!r} with column "
                            f"{column!r}; fix: fit per {level} first (metrics with a '{level}' "
                            "dim)")
    keys = [n for n in table.index.names if n != level]
    rows, index = [], []
    for key, values in table[column].groupby(level=keys, sort=False):
        v = values.to_numpy(np.float64)
        v = v[np.isfinite(v)]
        row = dict(n=v.size, mean=np.nan, std=np.nan, min=np.nan, max=np.nan, lo=np.nan,
                   hi=np.nan, p_value=np.nan)
        if v.size:
            row.update(mean=v.mean(), min=v.min(), max=v.max())
        if v.size >= 2:
            test = stats.ttest_1samp(v, 0.0)
            ci = test.confidence_interval(confidence)
            row.update(std=v.std(ddof=1), lo=ci.low, hi=ci.high, p_value=test.pvalue)
        rows.append(row)
        index.append(key if isinstance(key, tuple) else (key,))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=keys))
