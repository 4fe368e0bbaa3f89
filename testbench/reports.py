"""Tables from result stores: the paper's Table 1 (mean ± std of each metric per network)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def summary(metrics: xr.DataArray) -> pd.DataFrame:
    """Mean and standard deviation over cells of each metric, per network and sweep point.

    Parameters
    ----------
    metrics : xr.DataArray
        Dims ``(..., cell, metric, ...)``; NaN (padding cells, undefined metrics) is skipped.

    Returns
    -------
    pd.DataFrame
        One row per combination of the remaining dims (e.g. dataset, network_size, frequency);
        columns ``(metric, stat)`` with stat in ``mean``, ``std`` (population std, ddof=0) and
        ``n`` (cells with a defined value).
    """
    metrics = metrics.load()
    stats = xr.concat(
        [metrics.mean("cell", skipna=True), metrics.std("cell", skipna=True),
         metrics.notnull().sum("cell").astype(float)],
        dim=pd.Index(["mean", "std", "n"], name="stat"),
    )
    keep = [c for c in stats.coords if c in stats.dims]
    stats = stats.reset_coords([c for c in stats.coords if c not in keep], drop=True)
    frame = stats.to_dataframe(name="value")["value"]
    rows = [d for d in stats.dims if d not in ("metric", "stat")]
    table = frame.unstack(["metric", "stat"]) if rows else frame.to_frame().T
    if not rows:
        table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "stat"])
    metric_order = list(map(str, metrics["metric"].values))
    table = table.reindex(columns=pd.MultiIndex.from_product([metric_order, ["mean", "std", "n"]],
                                                             names=["metric", "stat"]))
    return table


def format_summary(table: pd.DataFrame, *, markdown: bool = False) -> str:
    """Render :func:`summary` as ``mean ± std`` text (aligned columns, or a Markdown table)."""
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))

    def cell(row, m):
        mean, std = row[(m, "mean")], row[(m, "std")]
        return "n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.3g}"

    index_names = [str(n) for n in table.index.names if n is not None] or ["network"]
    header = index_names + metrics
    body = []
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        body.append([str(i) for i in idx][: len(index_names)] + [cell(row, m) for m in metrics])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)
