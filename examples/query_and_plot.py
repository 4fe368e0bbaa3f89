"""Query a result store with xarray and plot a metric.

Runs a small sine sweep on two zoo networks of different sizes into a store, opens it as a user
would open any stored run, selects with xarray and draws the distribution of each network's
amplitudes, and the median amplitude against frequency, into a PNG. Every variable and
coordinate carries ``units`` and ``long_name``, so xarray labels the axes by itself.

Run: ``python examples/query_and_plot.py`` (a few seconds). It writes the store and the figure
into a new temporary folder and prints its path.
"""

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: the figure goes to a file
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

import testbench  # noqa: E402
from testbench.schema import metrics  # noqa: E402

GRAPH = {
    "nodes": {
        "sine": {"type": "sine", "settings": {"length_steps": 400},
                 "sweep": {"frequency": [0.01, 0.02, 0.05, 0.1]}},
        "cells": {"type": "lstm_cells", "inputs": ["sine"],
                  "settings": {"weights": ["zoo:co2-32", "zoo:co2-64"]}},
        "sine_metrics": {"type": "sine_response",
                         "inputs": {"response": "cells", "stimulus": "sine"}},
    },
}


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="testbench-example-"))
    testbench.run(GRAPH, output=out / "sweep.zarr")  # as `testbench run GRAPH -o ...`
    ds = testbench.open(out / "sweep.zarr")  # lazy; what any later session does

    # one variable per metric, dims (network, cell, frequency); the 32-cell network's cells
    # 32..63 are NaN padding, marked False in the `valid` coordinate
    amplitude = ds["amplitude"].where(ds["valid"])
    print(f"amplitude [{amplitude.attrs['units']}] dims {amplitude.dims}")
    print("cells per network:", dict(zip(ds["network"].values.tolist(),
                                         ds["n_cells"].values.tolist())))
    median = amplitude.median("cell").compute()
    print(median.to_pandas().round(4).to_string())

    # the classic table view: one DataArray (network, cell, metric, frequency)
    table = metrics(ds, ["amplitude", "correlation_normalized"])
    print("metrics:", dict(table.sizes))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    at = amplitude.sel(frequency=0.02)
    for network in at["network"].values:
        cells = at.sel(network=network).dropna("cell")  # the network's own cells
        left.hist(cells.values, bins=16, alpha=0.6, label=str(network))
    left.set_xlabel(f"{at.attrs['long_name']} [{at.attrs['units']}]")
    left.set_ylabel("cells")
    left.set_title("frequency = 0.02 cycles per time unit")
    left.legend()
    median.plot.line(ax=right, x="frequency", hue="network", marker="o")  # labels from attrs
    right.set_xscale("log")
    path = out / "amplitude.png"
    fig.savefig(path, dpi=100)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
