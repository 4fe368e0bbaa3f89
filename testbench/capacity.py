"""Capacity analysis (the paper's Fig. 5): how each metric's distribution changes with network size.

:func:`power_law` fits ``y = a * N**b`` by least squares on ``log y`` against ``log N`` and gives the
exponent ``b`` with a Student-t 95 % confidence interval (``n - 2`` degrees of freedom). Applied to
the per-network mean over cells of a metric's magnitude (:func:`capacity_table`), it tests the
paper's claims that the sine amplitude decays roughly as ``1/N`` (``b ~ -1``) while the settling time
stays flat (``b ~ 0``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from testbench.errors import SettingsError


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
        Dims ``(dataset, network_size, cell, metric)``; NaN cells are skipped.
    magnitude : bool
        Use ``|metric|`` (the scale of a response regardless of its sign). Default True.

    Returns
    -------
    xr.Dataset
        ``mean``, ``std`` (ddof 0), ``median`` with dims ``(dataset, network_size, metric)``.
    """
    import warnings

    m = (abs(metrics) if magnitude else metrics).load()
    with warnings.catch_warnings():  # networks absent from the grid are all-NaN: NaN statistics
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.Dataset({"mean": m.mean("cell"), "std": m.std("cell"), "median": m.median("cell")})


def capacity_table(metrics: xr.DataArray, *, names: list[str] | None = None, statistic: str = "mean",
                   magnitude: bool = True) -> pd.DataFrame:
    """Power-law exponent of each metric's per-network statistic against network size, per dataset.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(dataset, network_size, cell, metric)`` (other dims selected beforehand).
    names : list of str, optional
        Metrics to fit; default all.
    statistic : {'mean', 'median'}
        Per-network statistic of the (absolute) metric that is fitted. Default ``mean``.
    magnitude : bool
        Fit ``|metric|`` (needed for signed metrics). Default True.

    Returns
    -------
    pd.DataFrame
        Index ``(dataset, metric)``; columns of :func:`power_law`.
    """
    if statistic not in ("mean", "median"):
        raise SettingsError(f"capacity_table: statistic {statistic!r} is not 'mean' or 'median'")
    missing = [d for d in ("dataset", "network_size", "cell", "metric") if d not in metrics.dims]
    if missing:
        raise SettingsError(f"capacity_table: metrics lack dims {missing}; fix: pass the store's "
                            "'metrics' variable of a run over several network sizes")
    table = size_statistics(metrics, magnitude=magnitude)[statistic]
    names = [str(m) for m in metrics["metric"].values] if names is None else list(names)
    rows, index = [], []
    for d in table["dataset"].values:
        for name in names:
            series = table.sel(dataset=d, metric=name)
            rows.append(power_law(series["network_size"].values, series.values))
            index.append((str(d), name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["dataset", "metric"]))
