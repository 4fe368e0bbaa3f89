"""Built-in sink nodes: write results somewhere after the store is complete."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from testbench.nodes import sink


@sink("summary_table")
def summary_table(metrics: xr.DataArray, *, path: str = "results/summary.csv") -> None:
    """Write a Table-1-style summary (mean and std of each metric over cells, per network) to CSV.

    Parameters
    ----------
    metrics : xr.DataArray
        An analyzer's output as stored (dims ``(..., cell, metric, ...)``).
    path : str
        Destination CSV file; a ``.md`` suffix writes a Markdown table instead. Default
        ``results/summary.csv``.
    """
    from testbench.report import format_summary, summary

    table = summary(metrics)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(format_summary(table, markdown=True) if out.suffix == ".md" else table.to_csv())
