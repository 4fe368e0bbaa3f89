"""Built-in sink nodes: write results somewhere from the complete new store, before it replaces
the previous one (a failing sink leaves the previous store in place)."""

from __future__ import annotations

from testbench.errors import OutputError
from testbench.nodes import Metrics, sink

_TABLE = ("summary_table file", "fix: choose another file in the sink's settings (path: ...), or "
          "move the file away")


def _check_table(settings: dict, inputs: dict) -> None:
    """Preflight hook of ``summary_table``: its file may be written (``store.check_file``)."""
    from testbench import store

    try:
        store.check_file(settings["path"], *_TABLE)
    except OutputError as exc:
        exc.setting = "path"
        raise


@sink("summary_table", check=_check_table)
def summary_table(metrics: Metrics, *, path: str = "results/summary.csv") -> None:
    """Write a Table-1-style summary (mean and std of each metric over cells, per network) to CSV.

    Parameters
    ----------
    metrics : xr.DataArray
        An analyzer's metrics as stored, read back by :func:`testbench.schema.metrics` (dims
        ``(network, cell, metric, *sweeps)``).
    path : str
        Destination CSV file (one header row: the remaining dims, then ``<metric>_mean``,
        ``<metric>_std`` and ``<metric>_n`` per metric); a ``.md`` suffix writes a Markdown
        table instead. Default
        ``results/summary.csv``. An existing file is replaced only when testbench wrote it (its
        folder's ``.testbench-files.json`` ledger records it, unchanged); any other is refused.
    """
    from testbench import store
    from testbench.report import flat_columns, format_summary, summary

    table = summary(metrics)
    text = (format_summary(table, markdown=True) if path.endswith(".md")
            else flat_columns(table).to_csv())
    store.write_file(path, text.encode(), *_TABLE)
