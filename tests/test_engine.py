"""End to end: graphs run by dask into zarr stores; schedulers, chunking, atomicity, errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from conftest import random_network
from testbench import cli, schema
from testbench import models as W
from testbench.engine import build, run
from testbench.errors import NodeError, WeightsError
from testbench.graph import load_graph

GRAPH = """
output: {out}
nodes:
  step:
    type: step
    settings: {{length_steps: 200, dt: 0.5}}
  sine:
    type: sine
    settings: {{length_steps: 200, dt: 0.5}}
    sweep: {{frequency: [0.1, 0.2]}}
  step_cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: {weights}, chunk_cells: {chunk}}}
  sine_cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: {weights}, chunk_cells: {chunk}, chunk_points: {chunk}}}
  step_metrics:
    type: step_response
    inputs: {{response: step_cells, stimulus: step}}
  sine_metrics:
    type: sine_response
    inputs: {{response: sine_cells, stimulus: sine}}
"""


def graph_text(out, weights, chunk=512):
    return GRAPH.format(out=out, weights=weights, chunk=chunk)


def run_text(text, **kwargs):
    return run(load_graph("g.yaml", text=text), progress=False, **kwargs)


def test_store_schema_units_and_provenance(tmp_path, lstm_file):
    out = run_text(graph_text(tmp_path / "r.zarr", lstm_file))
    ds = xr.open_zarr(out)
    assert ds.settling_time.dims == ("network", "cell")  # stored once: no frequency dim
    assert ds.amplitude.dims == ("network", "cell", "frequency")
    assert list(ds.network.values) == ["toy-6"]
    assert list(ds.network_size.values) == [6] and list(ds.dataset.values) == ["toy"]
    assert list(ds.frequency.values) == [0.1, 0.2]
    assert ds.frequency.attrs["units"] == "cycles per time unit"
    m = schema.metrics(ds)
    assert m.dims == ("network", "cell", "metric", "frequency")
    names = list(m.metric.values)
    for name in ("initial_response", "final_response", "delta_response", "settling_time",
                 "amplitude", "frequency", "correlation", "correlation_normalized"):
        assert name in names
    assert dict(zip(names, m.units.values))["settling_time"] == "time unit"
    assert ds.settling_time.attrs["units"] == "time unit"
    assert ds.delta_response.attrs["definition"]
    assert ds.delta_response.attrs["analyzer"] == "step_metrics"
    weights = json.loads(ds.attrs["weights"])
    assert weights["step_cells"][0]["sha256"] == W.checksum(lstm_file)
    assert "lstm_cells" in ds.attrs["graph_text"]
    # the table view repeats the step metrics along the sine frequency
    st = m.sel(metric="settling_time")
    xr.testing.assert_equal(st.isel(frequency=0, drop=True), st.isel(frequency=1, drop=True))
    # the dominant frequency of a sine-driven cell is the input frequency (on the PSD grid); the
    # metric's name is taken by the sweep dim, so its variable is '<node>.frequency'
    f = ds["sine_metrics.frequency"].isel(network=0)
    np.testing.assert_allclose(f.median("cell"), [0.1, 0.2])


def test_results_identical_across_schedulers_and_chunks(tmp_path, lstm_file):
    text1 = graph_text(tmp_path / "a.zarr", lstm_file, chunk=1)
    reference = xr.open_zarr(run_text(graph_text(tmp_path / "ref.zarr", lstm_file, chunk=512),
                                      scheduler="synchronous")).pipe(schema.metrics).load()
    for sched in ("synchronous", "threads", "processes"):
        got = xr.open_zarr(run_text(text1, output=str(tmp_path / f"{sched}.zarr"),
                                    scheduler=sched)).pipe(schema.metrics).load()
        np.testing.assert_array_equal(got.values, reference.values)  # bitwise, NaN == NaN


def test_results_identical_on_a_local_distributed_cluster(tmp_path, lstm_file):
    from distributed import LocalCluster

    text = graph_text(tmp_path / "d.zarr", lstm_file, chunk=2)
    reference = xr.open_zarr(run_text(text, output=str(tmp_path / "s.zarr"),
                                      scheduler="synchronous")).pipe(schema.metrics).load()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        got = xr.open_zarr(run_text(text, scheduler=cluster.scheduler_address)).pipe(
            schema.metrics).load()
    np.testing.assert_array_equal(got.values, reference.values)


def test_several_networks_share_one_grid_with_nan_padding(tmp_path):
    small = W.save(random_network(n=4, seed=1, dataset="a"), tmp_path / "a4.h5")
    big = W.save(random_network(n=7, seed=2, dataset="a"), tmp_path / "a7.h5")
    other = W.save(random_network(n=4, seed=3, dataset="b"), tmp_path / "b4.h5")
    text = graph_text(tmp_path / "r.zarr", f"[{small}, {big}, {other}]", chunk=3)
    ds = xr.open_zarr(run_text(text)).load()
    assert list(ds.network.values) == ["a4", "a7", "b4"]
    assert ds.network_size.values.tolist() == [4, 7, 4] and list(ds.dataset.values) == ["a", "a", "b"]
    assert ds.n_cells.values.tolist() == [4, 7, 4] and ds.sizes["cell"] == 7
    assert ds.valid.sum("cell").values.tolist() == [4, 7, 4]
    delta = ds.delta_response
    assert delta.sel(network="a4").isel(cell=slice(4, None)).isnull().all()
    assert delta.sel(network="a7").notnull().all()
    assert delta.where(ds.valid).notnull().sum() == 15 and delta.where(~ds.valid).isnull().all()


def test_user_written_stimulus_and_analyzer_from_yaml(tmp_path, lstm_file, user_nodes):
    text = textwrap.dedent(f"""
        output: {tmp_path / 'u.zarr'}
        save_responses: true
        nodes:
          pulses:
            type: my_nodes:pulse_train
            sweep: {{period_steps: [10, 25]}}
          cells:
            type: lstm_cells
            inputs: [pulses]
            settings: {{weights: {lstm_file}}}
          level:
            type: my_nodes:mean_level
            inputs: {{response: cells, stimulus: pulses}}
        """)
    ds = xr.open_zarr(run_text(text))
    assert list(schema.metrics(ds).metric.values) == ["mean_level", "xy_sum"]
    resp = ds.response_cells.load()
    np.testing.assert_allclose(ds.mean_level, resp.mean("time"), rtol=1e-12)
    assert list(ds.period_steps.values) == [10, 25]


def test_interrupted_run_leaves_previous_store_intact(tmp_path, lstm_file, monkeypatch):
    from testbench import kernels

    out = tmp_path / "r.zarr"
    run_text(graph_text(out, lstm_file))
    before = xr.open_zarr(out).load()
    real = kernels.simulate
    calls = []

    def fails_midway(*args, **kwargs):  # the third chunk dies: some chunks are already written
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "simulate", fails_midway)
    with pytest.raises(KeyboardInterrupt):
        run_text(graph_text(out, lstm_file, chunk=1), scheduler="synchronous")
    xr.testing.assert_identical(xr.open_zarr(out).load(), before)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_task_failures_name_the_node(tmp_path, lstm_file, monkeypatch):
    from testbench import kernels

    def broken(*args, **kwargs):
        raise FloatingPointError("kernel exploded")

    monkeypatch.setattr(kernels, "simulate", broken)
    with pytest.raises(NodeError, match=r"node '(step|sine)_cells' failed while computing: "
                                         r"FloatingPointError: kernel exploded"):
        run_text(graph_text(tmp_path / "r.zarr", lstm_file), scheduler="synchronous")


def test_channels_each_adds_a_dimension_and_traces_a_variable_dim(tmp_path, lstm_file):
    text = graph_text(tmp_path / "r.zarr", lstm_file).replace(
        "chunk_cells: 512}\n  sine_cells", "chunk_cells: 512, channels: each, traces: true}\n  sine_cells")
    res = build(load_graph("g.yaml", text=text))
    resp = res.outputs["step_cells"]
    assert resp.sizes["channel"] == 3
    assert list(resp.trace.values) == ["h", "c", "i", "f", "g", "o"]
    h = resp.sel(trace="h").load()
    c, o = resp.sel(trace="c").load(), resp.sel(trace="o").load()
    np.testing.assert_allclose(h, o * np.tanh(c), atol=1e-12)


def test_isolated_dut_equals_one_unit_torch_lstm(lstm_file):
    torch = pytest.importorskip("torch")
    from testbench.dut import lstm_cells

    net = W.load(lstm_file)
    L = net.layers[0]
    x = np.sin(0.3 * np.arange(1, 101))
    stim = xr.DataArray(x, dims="time", coords={"time": np.arange(1, 101)}, attrs={"dt": 1.0})
    resp = lstm_cells(stim, weights=str(lstm_file)).load().isel(network=0)
    N = net.hidden_size
    for u in range(N):
        one = torch.nn.LSTM(1, 1).double()
        rows = [k * N + u for k in range(4)]
        with torch.no_grad():
            one.weight_ih_l0[:] = torch.tensor(L.W_ih[rows].sum(1, keepdims=True))
            one.weight_hh_l0[:] = torch.tensor(L.W_hh[rows, u][:, None])
            one.bias_ih_l0[:] = torch.tensor(L.b_ih[rows])
            one.bias_hh_l0[:] = torch.tensor(L.b_hh[rows])
            y, _ = one(torch.tensor(x)[:, None, None])
        np.testing.assert_allclose(resp.isel(cell=u), y[:, 0, 0].numpy(), atol=1e-10, rtol=0)


def _bad_weights(tmp_path: Path):
    """Broken weight files, each with the message it must produce."""
    cases = {}
    p = tmp_path / "missing.h5"
    cases[p] = r"weights file '.*missing\.h5' does not exist"
    p = tmp_path / "text.h5"
    p.write_text("not hdf5")
    cases[p] = r"text\.h5: not a readable HDF5 file"
    p = W.save(random_network(), tmp_path / "nan.h5")
    with h5py.File(p, "r+") as f:
        f["layers/0/W_hh"][2, 1] = np.nan
    cases[p] = r"nan\.h5: layers/0/W_hh holds 1 non-finite value\(s\) \(first at index \(2, 1\)"
    p = W.save(random_network(), tmp_path / "format.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["format"] = "keras"
    cases[p] = r"format\.h5: attribute 'format' is 'keras', expected 'testbench-weights'"
    p = W.save(random_network(), tmp_path / "shape.h5")
    with h5py.File(p, "r+") as f:
        del f["layers/0/b_ih"]
        f["layers/0/b_ih"] = np.zeros(5)
    cases[p] = r"shape\.h5: layers/0/b_ih has shape \(5,\), expected \(24,\)"
    p = W.save(random_network("gru"), tmp_path / "gru.h5")
    cases[p] = r"gru\.h5: holds a gru network, but this node simulates lstm cells; fix: use type gru_cells"
    p = W.save(random_network(), tmp_path / "version.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = 99
    cases[p] = r"version\.h5: format_version 99 is not supported"
    return cases


def test_broken_weight_files_are_reported_by_the_cli(tmp_path, capsys):
    for path, pattern in _bad_weights(tmp_path).items():
        graph = tmp_path / "g.yaml"
        graph.write_text(graph_text(tmp_path / "r.zarr", path))
        assert cli.main(["run", str(graph), "-q"]) == 2, path
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "node 'step_cells' [settings.weights]" in err  # refused by the preflight
        err = err.replace("\n    fix: ", "; fix: ")  # a graph problem shows its fix on a line of its own
        assert __import__("re").search(pattern, err), (pattern, err)
    with pytest.raises(WeightsError, match=r"no zoo network 'coo2-128'; did you mean 'co2-128'\?"):
        W.resolve("zoo:coo2-128")


def test_cli_run_then_show_prints_mean_and_std(tmp_path, lstm_file, capsys):
    graph = tmp_path / "g.yaml"
    graph.write_text(graph_text(tmp_path / "r.zarr", lstm_file))
    assert cli.main(["run", str(graph)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["show", str(tmp_path / "r.zarr"), "--sel", "frequency=0.1"]) == 0
    out = capsys.readouterr().out
    ds = xr.open_zarr(tmp_path / "r.zarr")
    delta = ds.delta_response.isel(network=0)
    assert f"{float(delta.mean()):.4g} ± {float(delta.std()):.3g}" in out
    assert cli.main(["show", str(tmp_path / "nothing.zarr")]) == 2
    assert "is not a result store" in capsys.readouterr().err


def test_memory_url_is_refused_because_its_results_would_vanish(lstm_file):
    from testbench.errors import OutputError

    with pytest.raises(OutputError, match=r"output 'memory://testbench/r\.zarr': a memory:// store "
                                          r"vanishes when the process exits.*fix: write to a local"):
        run_text(graph_text("results/unused.zarr", lstm_file), output="memory://testbench/r.zarr")
