"""Ablation: batched knock-outs against model copies, analytic cases, zoo networks, the graph node."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from testbench.kernels.network import forward
from testbench import ablation as A
from testbench import models as W
from testbench.errors import NodeError, SettingsError, WeightsError
from conftest import SHARED_DATA, random_network

needs_data = pytest.mark.skipif(not (SHARED_DATA / "co2").is_dir(),
                                reason=f"benchmark data not found in {SHARED_DATA}")


def _layers(net):
    return [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]


@pytest.fixture
def net():
    return random_network(n=7, m=3, seed=3, scale=0.6)


@pytest.fixture
def x():
    return np.random.default_rng(4).normal(size=(5, 11, 3))


@pytest.mark.parametrize("mode", A.MODES)
def test_batched_equals_model_copies(net, x, mode):
    values = np.linspace(-0.7, 0.6, 7) if mode == "mean" else 0.3
    mask, offset = A.knockout_masks(7, mode, values=values)
    ref = A.forward_copies(net, x, mask, offset)
    got = A.forward_variants(net, x, mask, offset)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_float32_agrees_to_single_precision(net, x):
    mask, offset = A.knockout_masks(7, "clamp", values=0.2)
    ref = A.forward_copies(net, x, mask, offset)
    got = A.forward_variants(net, x, mask, offset, dtype="float32")
    copies32 = A.forward_copies(net, x, mask, offset, dtype="float32")
    assert got.dtype == copies32.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(copies32, ref, rtol=1e-4, atol=1e-5)


def test_block_size_does_not_change_results(net, x):
    mask, offset = A.knockout_masks(7, "mean", values=np.arange(7) / 10)
    whole = A.forward_variants(net, x, mask, offset)
    np.testing.assert_array_equal(A.forward_variants(net, x, mask, offset, rows=len(x)), whole)
    np.testing.assert_array_equal(A.forward_variants(net, x, mask, offset, rows=3 * len(x)), whole)


def test_intact_and_zero_rows_match_the_network_kernel(net, x):
    # with offset 0 the initial state is 0 in both conventions, so kernels.network agrees exactly
    mask, offset = A.knockout_masks(7, "zero")
    ref = forward("lstm", _layers(net), net.readout_weight, net.readout_bias, x, mask=mask)
    np.testing.assert_allclose(A.forward_variants(net, x, mask, offset), ref, rtol=1e-12, atol=1e-13)


def test_knockout_masks_layout():
    mask, offset = A.knockout_masks(3, "mean", values=np.array([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(mask, [[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(offset, [[0, 0, 0], [0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]])


def test_silent_cell_has_no_impact_and_sole_reader_cell_gives_bias(net, x):
    """Analytic cases: a cell nobody reads changes nothing; knocking out the only read cell leaves
    the readout bias (zero mode) or bias + weight * value (clamp)."""
    N = 7
    net.layers[0].W_hh[:, 2] = 0.0          # cell 2 reaches no cell ...
    net.readout_weight[:, 2] = 0.0          # ... and not the readout
    out = A.forward_variants(net, x, *A.knockout_masks(N, "zero"))
    np.testing.assert_array_equal(out[3], out[0])
    net.readout_weight[:] = 0.0
    net.readout_weight[0, 4] = 1.5
    net.readout_bias[:] = 0.25
    out = A.forward_variants(net, x, *A.knockout_masks(N, "zero"))
    np.testing.assert_allclose(out[5], 0.25, rtol=0, atol=1e-15)
    out = A.forward_variants(net, x, *A.knockout_masks(N, "clamp", values=-0.4))
    np.testing.assert_allclose(out[5], 0.25 + 1.5 * -0.4, rtol=0, atol=1e-15)


def test_mean_activation_is_the_mean_hidden_output(net, x):
    h = forward("lstm", _layers(net), None, None, x, readout_mode="every")
    np.testing.assert_allclose(A.mean_activation(net, x), h.reshape(-1, 7).mean(0), rtol=1e-12)


def test_check_network_refuses_what_it_cannot_score(net):
    with pytest.raises(WeightsError, match=r"cannot be ablated: cell type 'gru'"):
        A.check_network(random_network("gru"), "toy.h5")
    net.readout_mode = "every"
    with pytest.raises(WeightsError, match=r"readout mode 'every' \(needs 'last'\)"):
        A.check_network(net, "toy.h5")


def test_knockout_masks_refuses_unknown_mode():
    with pytest.raises(SettingsError, match=r"setting 'mode': 'one' is not one of zero, mean, clamp"):
        A.knockout_masks(3, "one")


def test_node_needs_training_metadata(lstm_file):
    with pytest.raises(WeightsError, match=r"metadata lacks variant, window, normalization"):
        A.ablation(weights=str(lstm_file))


# ------------------------------------------------------------------------------ zoo networks


@needs_data
@pytest.mark.parametrize("name, limit", [
    ("co2-32", None), ("mnist-32", 100),
    pytest.param("co2-128", None, marks=pytest.mark.slow),
    pytest.param("sp500-128", 200, marks=pytest.mark.slow),
    pytest.param("protein-128", 300, marks=pytest.mark.slow),
    pytest.param("mnist-128", 300, marks=pytest.mark.slow),
])
def test_zoo_network_equals_model_copy_loop(name, limit):
    net = W.load(f"zoo:{name}")
    ds = W.test_set(net, data_dir=SHARED_DATA, max_sequences=limit, seed=1)
    for mode in A.MODES:
        intact, errors, values = A.ablate(net, ds, mode, clamp_value=0.5)
        copies = A.forward_copies(net, ds.test.x, *A.knockout_masks(net.hidden_size, mode, values=values))
        ref = np.array([ds.score(o, "test") for o in copies])
        np.testing.assert_allclose([intact, *errors], ref, rtol=1e-10, atol=0)
        if ds.task == "classification":
            np.testing.assert_array_equal([intact, *errors], ref)


@needs_data
def test_node_intact_error_is_the_recorded_test_score():
    out = A.ablation(weights=["zoo:co2-32", "zoo:co2-64"], data_dir=str(SHARED_DATA))
    for size in (32, 64):
        recorded = W.load(f"zoo:co2-{size}").metadata["test_score"]
        assert out.ablation_intact.sel(network=f"co2-{size}").item() == pytest.approx(
            recorded, rel=1e-9)
    assert list(out.network_size.values) == [32, 64] and list(out.dataset.values) == ["co2"] * 2
    assert np.isnan(out.ablation_impact.sel(network="co2-32", cell=slice(32, None))).all()
    assert np.isfinite(out.ablation_impact.sel(network="co2-64")).all()
    np.testing.assert_allclose(out.ablation_impact + out.ablation_intact, out.ablation_error)
    assert set(out.error_units.values) == {"ppm"}
    assert out.n_test.sel(network="co2-64").item() == 117


@needs_data
def test_node_refuses_two_networks_with_one_label_and_takes_explicit_labels(tmp_path):
    copy = W.save(W.load("zoo:co2-32"), tmp_path / "other.h5")  # metadata name 'co2-32'
    with pytest.raises(SettingsError, match=r"zoo:co2-32 .* and .*other\.h5 .* both get the label "
                                            r"'co2-32'"):
        A.ablation(weights=["zoo:co2-32", str(copy)], data_dir=str(SHARED_DATA))
    out = A.ablation(weights={"zoo": "zoo:co2-32", "copy": str(copy)}, data_dir=str(SHARED_DATA),
                     max_test_sequences=20)
    assert list(out.network.values) == ["zoo", "copy"]
    np.testing.assert_array_equal(out.ablation_impact.sel(network="zoo"),
                                  out.ablation_impact.sel(network="copy"))


@needs_data
def test_graph_stores_ablation_beside_metrics_joined_by_cell(tmp_path):
    from testbench.engine import run
    from testbench.graph import load_graph

    text = f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 200}}}}
  cells: {{type: lstm_cells, inputs: [step], settings: {{weights: [zoo:co2-32, zoo:co2-64]}}}}
  metrics: {{type: step_response, inputs: {{response: cells, stimulus: step}}}}
  knockout:
    type: ablation
    settings: {{weights: [zoo:co2-32, zoo:co2-64], data_dir: {SHARED_DATA}}}
    sweep: {{mode: [zero, mean]}}
"""
    (tmp_path / "g.yaml").write_text(text)
    store = run(load_graph(tmp_path / "g.yaml"), progress=False)
    ds = xr.open_zarr(store).load()
    assert ds.ablation_impact.dims == ("network", "cell", "mode")
    assert ds.delta_response.dims == ("network", "cell")  # not repeated along the ablation's mode
    joined = xr.Dataset({"delta": ds.delta_response, "impact": ds.ablation_impact.sel(mode="zero")})
    assert joined.delta.sel(network="co2-64").notnull().sum().item() == 64
    assert joined.impact.sel(network="co2-64").notnull().sum().item() == 64
    assert (joined.impact.notnull() == ds.valid).all()


def test_graph_names_the_node_when_ablation_fails(tmp_path, lstm_file):
    from testbench.engine import run
    from testbench.graph import load_graph

    (tmp_path / "g.yaml").write_text(
        f"output: {tmp_path / 'r.zarr'}\nnodes:\n  knock:\n    type: ablation\n"
        f"    settings: {{weights: {lstm_file}}}\n")
    with pytest.raises(NodeError, match=r"node 'knock' \(ablation\).*metadata lacks"):
        run(load_graph(tmp_path / "g.yaml"), progress=False)
