"""The result schema (issue 11): a ``network`` dim with coordinates, one variable per metric with
only its own sweep dims, sweep dims told apart, studies of several networks in one store, each
network simulated with its own cell type (checked against torch), and old stores refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from conftest import random_network
from testbench import models, schema
from testbench import store as S
from testbench.engine import run
from testbench.errors import GraphError, OutputError, SettingsError
from testbench.graph import load_graph
from testbench.kernels.celltypes import CELL_TYPES
from testbench.preflight import preflight

torch = pytest.importorskip("torch")


def run_text(text: str) -> xr.Dataset:
    return S.open_store(run(load_graph("g.yaml", text=text), progress=False)).load()


def refused(text: str, pattern: str) -> None:
    """The preflight (of ``validate`` and ``run``) refuses the graph ``text`` with ``pattern``."""
    with pytest.raises(GraphError, match=pattern):
        preflight(load_graph("g.yaml", text=text), check_output=False)


def torch_isolated(net: models.Network, cell: int, x: np.ndarray, *, layer: int = 0) -> np.ndarray:
    """Cell ``cell`` of ``layer`` alone, driven on every input channel: a one-unit torch layer."""
    ct = CELL_TYPES[net.cell_type]
    L, N, G = net.layers[layer], net.hidden_size, ct.n_gates
    W_ih, W_hh, b_ih, b_hh = (np.asarray(a, np.float64) for a in (L.W_ih, L.W_hh, L.b_ih, L.b_hh))
    rows = [k * N + cell for k in range(G)]
    kwargs = {"nonlinearity": ct.nonlinearity} if ct.nonlinearity else {}
    one = getattr(torch.nn, ct.torch_class)(1, 1, **kwargs).double()
    with torch.no_grad():
        one.weight_ih_l0[:] = torch.tensor(W_ih[rows].sum(1, keepdims=True))
        one.weight_hh_l0[:] = torch.tensor(W_hh[rows, cell][:, None])
        one.bias_ih_l0[:] = torch.tensor(b_ih[rows])
        one.bias_hh_l0[:] = torch.tensor(b_hh[rows])
        y, _ = one(torch.tensor(x)[:, None, None])
    return y[:, 0, 0].numpy()


def torch_network(net: models.Network, x: np.ndarray) -> np.ndarray:
    """Outputs (N, T) of the last layer of ``net`` driven on every input channel, by torch."""
    ct = CELL_TYPES[net.cell_type]
    kwargs = {"nonlinearity": ct.nonlinearity} if ct.nonlinearity else {}
    m = net.layers[0].W_ih.shape[1]
    mod = getattr(torch.nn, ct.torch_class)(m, net.hidden_size, num_layers=len(net.layers),
                                            **kwargs).double()
    with torch.no_grad():
        for k, L in enumerate(net.layers):
            for name, arr in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                                 (L.W_ih, L.W_hh, L.b_ih, L.b_hh)):
                getattr(mod, f"{name}_l{k}")[:] = torch.tensor(arr)
        y, _ = mod(torch.tensor(x)[:, None, None].repeat(1, 1, m))
    return y[:, 0, :].numpy().T


def step_input(T: int, onset: int | None = None) -> np.ndarray:
    """The ``step`` stimulus: 0 up to and including step T // 2 (or ``onset``), 1 after."""
    t0 = T // 2 if onset is None else onset
    return (np.arange(1, T + 1) > t0).astype(float)


def sine_input(T: int, f: float, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * f * np.arange(1, T + 1))


def check_against_torch(ds: xr.Dataset, dut: str, net: models.Network, label: str, x,
                        cells=None, **sel) -> None:
    resp = ds[f"response_{dut}"].sel(network=label, **sel)
    for u in range(net.hidden_size) if cells is None else cells:
        np.testing.assert_allclose(resp.sel(cell=u).dropna("time"), torch_isolated(net, u, x),
                                   atol=1e-10, rtol=0)
    assert resp.sel(cell=slice(net.hidden_size, None)).isnull().all()


# ---------------------------------------------------------------------------------------------
# studies of several networks in one store


def test_dut_nodes_with_different_zoo_networks_share_one_store(tmp_path):
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  step: {{type: step, settings: {{length_steps: 60}}}}
  co2: {{type: lstm_cells, inputs: [step], settings: {{weights: zoo:co2-128, chunk_cells: 48}}}}
  mnist: {{type: lstm_cells, inputs: [step], settings: {{weights: zoo:mnist-64, chunk_cells: 48}}}}
  m_co2: {{type: step_response, inputs: {{response: co2, stimulus: step}}}}
  m_mnist: {{type: step_response, inputs: {{response: mnist, stimulus: step}}}}
""")
    assert list(ds.network.values) == ["co2-128", "mnist-64"]
    assert list(ds.dataset.values) == ["co2", "mnist"] and list(ds.n_cells.values) == [128, 64]
    assert ds.sizes["cell"] == 128 and ds.valid.sum("cell").values.tolist() == [128, 64]
    # each DUT's networks only; the other's row is NaN, as padding cells are
    assert ds.response_co2.sel(network="mnist-64").isnull().all()
    assert ds["m_co2.settling_time"].sel(network="co2-128").notnull().any()
    x = step_input(60)
    check_against_torch(ds, "co2", models.load("zoo:co2-128"), "co2-128", x, cells=[0, 77, 127])
    check_against_torch(ds, "mnist", models.load("zoo:mnist-64"), "mnist-64", x, cells=[0, 63])


def _seed_files(tmp_path):
    files = {}
    for seed in range(3):
        files[f"seed{seed}"] = models.save(random_network(n=5, m=2, seed=seed, dataset="toy"),
                                           tmp_path / f"seed{seed}.h5")
    control = random_network(n=5, m=2, seed=9, dataset="toy", scale=0.3)
    control.metadata["network_variant"] = "init"
    files["control"] = models.save(control, tmp_path / "control.h5")
    return files


@pytest.mark.parametrize("mode", ["isolated", "in_network"])
def test_three_seeds_and_an_untrained_control_of_one_dataset_and_size(tmp_path, mode):
    files = _seed_files(tmp_path)
    listed = ", ".join(str(p) for p in files.values())
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  sine: {{type: sine, settings: {{length_steps: 50}}, sweep: {{frequency: [0.05, 0.1]}}}}
  cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: [{listed}], mode: {mode}, chunk_cells: 2, chunk_points: 1}}
  m: {{type: sine_response, inputs: {{response: cells, stimulus: sine}}}}
""")
    assert list(ds.network.values) == list(files)
    assert list(ds.seed.values) == [0, 1, 2, 9]
    assert list(ds.variant.values) == ["trained"] * 3 + ["init"]
    assert set(ds.dataset.values) == {"toy"} and set(ds.network_size.values) == {5}
    assert list(ds.checksum.values) == [models.checksum(p) for p in files.values()]
    assert ds.amplitude.dims == ("network", "cell", "frequency")
    for label, path in files.items():
        net = models.load(path)
        for f in (0.05, 0.1):
            x = sine_input(50, f)
            got = ds.response_cells.sel(network=label, frequency=f).values
            if mode == "isolated":
                want = np.stack([torch_isolated(net, u, x) for u in range(5)])
            else:
                want = torch_network(net, x)
            np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)
    # the seeds and the control are told apart by the variant coordinate
    assert schema.metrics(ds).groupby("variant").count().sizes["variant"] == 2


def test_gru_tanh_and_relu_networks_in_one_list_each_with_its_own_cell_type(tmp_path):
    nets = {"gru": random_network("gru", n=4, m=2, seed=1),
            "tanh": random_network("rnn_tanh", n=3, m=2, seed=2),
            "relu": random_network("rnn_relu", n=5, m=2, seed=3)}
    paths = {k: models.save(net, tmp_path / f"{k}.h5") for k, net in nets.items()}
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  step: {{type: step, settings: {{length_steps: 40, onset_steps: 10}}}}
  any: {{type: cells, inputs: [step],
         settings: {{weights: [{paths['gru']}, {paths['tanh']}, {paths['relu']}], chunk_cells: 2}}}}
  rnn: {{type: rnn_cells, inputs: [step],
         settings: {{weights: [{paths['tanh']}, {paths['relu']}], chunk_cells: 2}}}}
  m_any: {{type: step_response, inputs: {{response: any, stimulus: step}}}}
  m_rnn: {{type: step_response, inputs: {{response: rnn, stimulus: step}}}}
""")
    assert list(ds.network.values) == ["gru", "tanh", "relu"]
    assert list(ds.cell_type.values) == ["gru", "rnn_tanh", "rnn_relu"]
    x = step_input(40, 10)
    for label, net in nets.items():
        check_against_torch(ds, "any", net, label, x)
    for label in ("tanh", "relu"):  # the list of rnn_cells: relu is not simulated as tanh
        check_against_torch(ds, "rnn", nets[label], label, x)
    as_tanh = models.Network("rnn_tanh", nets["relu"].layers)  # what the first type would give
    assert not np.allclose(ds.response_rnn.sel(network="relu").isel(cell=slice(0, 5)),
                           np.stack([torch_isolated(as_tanh, u, x) for u in range(5)]))
    refused(f"""
nodes:
  step: {{type: step}}
  any: {{type: cells, inputs: [step], settings: {{weights: [{paths['gru']}, {paths['relu']}],
         traces: true}}}}
""", r"node 'any' \[settings\.traces\] setting 'traces': the networks have different cell types "
        r"\(gru, rnn_relu\)")


def _two_layer_network(cell_type: str, m: int, n: int, seed: int) -> models.Network:
    rng = np.random.default_rng(seed)
    G = CELL_TYPES[cell_type].n_gates
    layers = [models.Layer(rng.normal(0, 1, (G * n, k)), rng.normal(0, 1, (G * n, n)),
                           rng.normal(0, 0.5, G * n), rng.normal(0, 0.5, G * n)) for k in (m, n)]
    return models.Network(cell_type, layers, rng.normal(0, 1, (1, n)), np.zeros(1),
                          metadata={"dataset": "deep", "seed": seed})


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_in_network_layer_1_of_a_two_layer_network_with_input_size_not_hidden_size(tmp_path,
                                                                                   cell_type):
    net = _two_layer_network(cell_type, m=3, n=5, seed=4)
    path = models.save(net, tmp_path / "deep.h5")
    small = models.save(random_network(cell_type, n=2, m=3, seed=5), tmp_path / "small.h5")
    # a 1-layer network has no layer 1: the grid is refused with the file named
    refused(f"""
nodes:
  step: {{type: step}}
  net: {{type: cells, inputs: [step], settings: {{weights: [{path}, {small}], layer: 1}}}}
""",
            r"setting 'layer': 1 is out of range for .*small\.h5, which has 1 layer\(s\)")
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  step: {{type: step, settings: {{length_steps: 30}}}}
  net: {{type: cells, inputs: [step],
         settings: {{weights: {path}, mode: in_network, layer: 1, chunk_cells: 2}}}}
  iso: {{type: cells, inputs: [step], settings: {{weights: {path}, layer: 1, chunk_cells: 2}}}}
  m: {{type: step_response, inputs: {{response: net, stimulus: step}}}}
""")
    x = step_input(30)
    np.testing.assert_allclose(ds.response_net.sel(network="deep").values, torch_network(net, x),
                               atol=1e-10, rtol=0)
    # isolated cells of layer 1 take layer 0's 5 outputs as their input channels
    iso = ds.response_iso.sel(network="deep")
    for u in range(5):
        np.testing.assert_allclose(iso.sel(cell=u), torch_isolated(net, u, x, layer=1),
                                   atol=1e-10, rtol=0)
    assert ds.settling_time.dims == ("network", "cell")


def test_stimuli_of_different_lengths_share_a_nan_padded_time(tmp_path, lstm_file):
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  long: {{type: step, settings: {{length_steps: 60}}}}
  short: {{type: sine, settings: {{length_steps: 25, frequency: 0.1}}}}
  a: {{type: lstm_cells, inputs: [long], settings: {{weights: {lstm_file}, chunk_cells: 4}}}}
  b: {{type: lstm_cells, inputs: [short], settings: {{weights: {lstm_file}, chunk_cells: 4}}}}
  ma: {{type: step_response, inputs: {{response: a, stimulus: long}}}}
  mb: {{type: sine_response, inputs: {{response: b, stimulus: short}}}}
""")
    assert list(ds.time.values) == list(range(1, 61))
    net = models.load(lstm_file)
    b = ds.response_b.sel(network="toy-6")
    assert b.sel(time=slice(26, None)).isnull().all()
    np.testing.assert_allclose(b.sel(cell=2, time=slice(1, 25)),
                               torch_isolated(net, 2, sine_input(25, 0.1)), atol=1e-10, rtol=0)
    np.testing.assert_allclose(ds.response_a.sel(network="toy-6", cell=2),
                               torch_isolated(net, 2, step_input(60)), atol=1e-10, rtol=0)


def test_a_weights_by_dtype_sweep_is_refused_by_the_preflight(tmp_path, lstm_file):
    other = models.save(random_network(n=4, seed=3), tmp_path / "other.h5")
    refused(f"""
nodes:
  step: {{type: step}}
  cells: {{type: lstm_cells, inputs: [step],
           sweep: {{weights: [{lstm_file}, {other}], dtype: [float32, float64]}}}}
""",
            r"node 'cells' \[sweep\.weights\] the sweep points give outputs of different shapes"
            r".*\n\s+fix: list the networks in settings\.weights instead of sweeping them")


def test_a_metric_has_only_the_sweep_dims_its_analyzer_depends_on(tmp_path, lstm_file):
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 60}}}}
  sine: {{type: sine, settings: {{length_steps: 60}}, sweep: {{frequency: [0.05, 0.1, 0.2]}}}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  b: {{type: lstm_cells, inputs: [sine], settings: {{weights: {lstm_file}}}}}
  steps: {{type: step_response, inputs: {{response: a, stimulus: step}}}}
  sines: {{type: sine_response, inputs: {{response: b, stimulus: sine}}}}
""")
    for name in ("initial_response", "final_response", "delta_response", "settling_time"):
        assert ds[name].dims == ("network", "cell"), name
    assert ds.amplitude.dims == ("network", "cell", "frequency")
    assert ds["sines.frequency"].attrs["metric"] == "frequency"  # the dim 'frequency' took the name
    st = ds.settling_time
    assert (st.attrs["units"], st.attrs["long_name"], st.attrs["analyzer"]) == (
        "time unit", "settling time", "steps")
    assert "|delta|" in st.attrs["definition"]
    assert ds.frequency.attrs == {"long_name": "sine: Frequency f in cycles per time unit",
                                  "units": "cycles per time unit"}
    # the table view broadcasts in memory; it lists the metric by its own name
    table = schema.metrics(ds)
    assert table.dims == ("network", "cell", "metric", "frequency")
    assert "frequency" in table.metric.values and "sines.frequency" not in table.metric.values
    np.testing.assert_array_equal(table.sel(metric="settling_time").isel(frequency=0), st)
    np.testing.assert_array_equal(table.sel(metric="settling_time").isel(frequency=2), st)
    stored = S.open_store(tmp_path / "r.zarr")
    assert stored.settling_time.nbytes * 3 == stored.amplitude.nbytes  # stored once


def test_two_nodes_sweeping_a_setting_of_one_name_get_their_own_dims(tmp_path, lstm_file):
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
save_responses: true
nodes:
  step: {{type: step, settings: {{length_steps: 40}}, sweep: {{amplitude: [0.5, 1.0]}}}}
  sine: {{type: sine, settings: {{length_steps: 40}}, sweep: {{amplitude: [0.1, 0.2, 0.3]}}}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  b: {{type: lstm_cells, inputs: [sine], settings: {{weights: {lstm_file}}}}}
  steps: {{type: step_response, inputs: {{response: a, stimulus: step}}}}
  sines: {{type: sine_response, inputs: {{response: b, stimulus: sine}}}}
""")
    assert list(ds["step.amplitude"].values) == [0.5, 1.0]
    assert list(ds["sine.amplitude"].values) == [0.1, 0.2, 0.3]
    assert "amplitude" not in ds.dims
    assert ds["step.amplitude"].attrs == {"long_name": "step: Height of the step", "units": "1"}
    assert ds.delta_response.dims == ("network", "cell", "step.amplitude")
    assert ds.amplitude.dims == ("network", "cell", "sine.amplitude")  # the metric keeps its name
    net = models.load(lstm_file)
    np.testing.assert_allclose(ds.response_a.sel({"step.amplitude": 0.5, "network": "toy-6",
                                                  "cell": 1}),
                               torch_isolated(net, 1, 0.5 * step_input(40)), atol=1e-10, rtol=0)
    np.testing.assert_allclose(ds.response_b.sel({"sine.amplitude": 0.3, "network": "toy-6",
                                                  "cell": 4}),
                               torch_isolated(net, 4, sine_input(40, 0.01, 0.3)), atol=1e-10,
                               rtol=0)
    plan = preflight(load_graph("g.yaml", text=json.dumps({"nodes": {
        "s": {"type": "step", "sweep": {"amplitude": [1.0, 2.0]}},
        "t": {"type": "step", "sweep": {"amplitude": [3.0]}}}})), check_output=False)
    assert plan.facts["s"].dims == {"s.amplitude": 2} and plan.facts["t"].dims == {"t.amplitude": 1}


def test_two_nodes_giving_one_label_to_different_weights_are_refused(tmp_path, lstm_file):
    (tmp_path / "x").mkdir()
    twin = models.save(random_network(n=6, seed=8), tmp_path / "x" / "toy-6.h5")
    refused(f"""
nodes:
  step: {{type: step}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  b: {{type: lstm_cells, inputs: [step], settings: {{weights: {twin}}}}}
""", r"node 'b' \[settings\.weights\] .*x/toy-6\.h5 and .*toy-6\.h5 \(node 'a'\) are different "
        r"networks with the same label 'toy-6'.*\n\s+fix: give explicit labels")
    ok = load_graph("g.yaml", text=f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 30}}}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  b: {{type: lstm_cells, inputs: [step], settings: {{weights: {{twin: {twin}}}}}}}
  ma: {{type: step_response, inputs: {{response: a, stimulus: step}}}}
""")
    assert list(S.open_store(run(ok, progress=False)).network.values) == ["toy-6"]


def test_schema_metrics_selects_by_name_and_round_trips(tmp_path, lstm_file):
    ds = run_text(f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 30}}}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  one: {{type: step_response, inputs: {{response: a, stimulus: step}}}}
  two: {{type: step_response, inputs: {{response: a, stimulus: step}}, settings: {{band_frac: 0.02}}}}
""")
    assert "one.settling_time" in ds and "two.settling_time" in ds  # a clash: prefixed by node
    table = schema.metrics(ds, ["two.settling_time", "one.settling_time"])
    assert list(table.metric.values) == ["two.settling_time", "one.settling_time"]
    assert list(table.analyzer.values) == ["two", "one"]
    assert list(schema.metrics(ds, analyzer="two").metric.values) == [
        "two.initial_response", "two.final_response", "two.delta_response", "two.settling_time"]
    back = schema.metrics(schema.from_metrics(schema.metrics(ds)))
    xr.testing.assert_identical(back, schema.metrics(ds))
    with pytest.raises(SettingsError, match=r"metric 'settling_time' is not in the store; did you "
                                            r"mean '(one|two)\.settling_time'"):
        schema.metrics(ds, ["settling_time"])


@pytest.mark.parametrize("version", [1, 2])
def test_a_store_of_an_older_format_version_is_refused_naming_it(tmp_path, lstm_file, version, cli):
    out = run(load_graph("g.yaml", text=f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 30}}}}
  a: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
  m: {{type: step_response, inputs: {{response: a, stimulus: step}}}}
"""), progress=False)
    attrs_file = tmp_path / "r.zarr" / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    if version == 1:
        del attrs["testbench_format"], attrs["testbench_format_version"]
    else:
        attrs["testbench_format_version"] = 2
    attrs_file.write_text(json.dumps(attrs))
    import zarr
    zarr.consolidate_metadata(str(tmp_path / "r.zarr"), zarr_format=2)
    with pytest.raises(OutputError, match=rf"is a testbench store of format version {version}.*"
                                          rf"this testbench reads format version 3.*fix: re-run"):
        S.open_store(out)
    r = cli("show", out)
    assert r.status == 2 and "Traceback" not in r.text
    assert f"format version {version}" in r.err


def test_combine_refuses_one_label_on_two_networks_and_pads_the_cells():
    def output(label, checksum, n):
        coords = {"network": [label], "checksum": ("network", [checksum]),
                  "source": ("network", [f"{checksum}.h5"]), "n_cells": ("network", [n]),
                  "cell": np.arange(n)}
        return xr.DataArray(np.ones((1, n)), dims=("network", "cell"), coords=coords)

    ds = schema.combine({"a": output("x", "c1", 3), "b": output("y", "c2", 5)})
    assert list(ds.network.values) == ["x", "y"] and ds.sizes["cell"] == 5
    assert ds.valid.values.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert int(ds.a.notnull().sum()) == 3 and ds.b.sel(network="x").isnull().all()
    with pytest.raises(SettingsError, match=r"c1\.h5 and c2\.h5 are different networks with the "
                                            r"same label 'x'.*fix: give explicit labels"):
        schema.combine({"a": output("x", "c1", 3), "b": output("x", "c2", 3)})
