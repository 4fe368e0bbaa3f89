"""The Python API: testbench.run / load / open on dict, text and file graphs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import testbench
from testbench import schema
from testbench.errors import GraphError, OutputError, TestbenchError

GRAPH = {
    "description": "API test",
    "output": "results/api.zarr",
    "nodes": {
        "step": {"type": "step", "settings": {"length_steps": 200}},
        "sine": {"type": "sine", "settings": {"length_steps": 200, "frequency": 0.05}},
        "step_cells": {"type": "lstm_cells", "inputs": ["step"], "settings": {"weights": "zoo:co2-32"}},
        "sine_cells": {"type": "lstm_cells", "inputs": ["sine"], "settings": {"weights": "zoo:co2-32"}},
        "step_metrics": {"type": "step_response",
                         "inputs": {"response": "step_cells", "stimulus": "step"}},
        "sine_metrics": {"type": "sine_response",
                         "inputs": {"response": "sine_cells", "stimulus": "sine"}},
    },
}


def _yaml_text(graph: dict) -> str:
    import io

    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(graph, buf)
    return buf.getvalue()


def test_a_dict_graph_runs_in_memory_and_equals_the_stored_run(tmp_path):
    ds = testbench.run(GRAPH)
    assert isinstance(ds, xr.Dataset)
    assert ds["settling_time"].dims == (schema.NETWORK, schema.CELL)
    assert ds["settling_time"].attrs["units"]
    assert list(ds[schema.NETWORK].values) == ["co2-32"]
    assert not list(tmp_path.iterdir())  # in memory: nothing written
    stored = testbench.run(GRAPH, output=tmp_path / "out.zarr")
    for name in ("settling_time", "delta_response", "amplitude", "correlation"):
        np.testing.assert_array_equal(stored[name].values, ds[name].values)


def test_yaml_text_a_path_and_a_loaded_graph_give_the_same_metrics(tmp_path):
    text = _yaml_text(GRAPH)
    path = tmp_path / "g.yaml"
    path.write_text(text)
    a = testbench.run(text)
    b = testbench.run(path)
    c = testbench.run(str(path))
    d = testbench.run(testbench.load(path))
    for other in (b, c, d):
        xr.testing.assert_identical(a["amplitude"], other["amplitude"])


def test_overrides_sweep_a_setting_and_label_the_dimension():
    ds = testbench.run(GRAPH, overrides=["sine.frequency=[0.02, 0.05, 0.1]"])
    amp = ds["amplitude"]
    assert "frequency" in amp.dims and amp.sizes["frequency"] == 3
    assert "frequency" not in ds["settling_time"].dims  # stored once, not broadcast
    assert ds["frequency"].attrs.get("units")


def test_errors_name_the_dict_source_and_the_fix():
    bad = {"nodes": {**GRAPH["nodes"], "sine": {"type": "sine", "settings": {"frequency": 0.7}}}}
    with pytest.raises(GraphError, match=r"(?s)<dict>:\d+:\d+: node .sine.*frequency.*Nyquist.*fix"):
        testbench.run(bad)


def test_memory_url_and_a_users_folder_are_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="fix"):
        testbench.run(GRAPH, output=mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(TestbenchError, match="memory://"):
        testbench.run(GRAPH, output="memory://x.zarr")


def test_open_loads_small_coordinates_eagerly_and_plots_from_a_lazy_store(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    testbench.run(GRAPH, output=tmp_path / "out.zarr")
    ds = testbench.open(tmp_path / "out.zarr")
    assert ds["settling_time"].chunks is not None  # data stays lazy
    for name, coord in ds.coords.items():
        if coord.ndim <= 1:
            assert coord.chunks is None, name
    # groupby on a network coordinate and a plot straight from the lazy store
    assert float(ds["amplitude"].groupby(schema.DATASET).mean(...).sel(dataset="co2")) >= 0
    line = ds["settling_time"].isel({schema.NETWORK: 0}).plot()
    assert "settling" in line[0].axes.get_ylabel()


def test_open_refuses_what_is_not_a_store(tmp_path):
    with pytest.raises(TestbenchError, match="fix"):
        testbench.open(tmp_path)
