"""The models layer: one ``load`` for every kind of file, the network grid, files used directly in
graphs.

Foreign files are built as in ``test_importers.py`` (Keras layouts written by hand with h5py, since
Keras is not a dependency); every loaded network is checked against its source's equations.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile

import h5py
import numpy as np
import pytest
import xarray as xr

from conftest import random_network
from test_importers import (M, N, T, keras_forward, keras_layer, keras_weights, np_forward,
                            onnx_model, write_keras_h5)
from testbench import models
from testbench.engine import run
from testbench.errors import SettingsError, WeightsError
from testbench.graph import load_graph
from testbench.models import loading

torch = pytest.importorskip("torch")


# --------------------------------------------------------------------------- Keras 3 archives
def write_keras_archive(path, layers, *, prefix=""):
    """Write ``layers`` = [(class_name, config, {vars path: [arrays]})] as ``model.save('x.keras')``.

    Layout (``keras/src/saving/saving_lib.py``): ``config.json`` is the serialized Sequential model
    (an ``InputLayer`` first); ``model.weights.h5`` holds each variable at
    ``layers/<snake class>[_k]/<scope>/vars/<index>``; ``prefix`` nests it (a weights group path).
    """
    configs = [{"module": "keras.layers", "class_name": "InputLayer",
                "config": {"name": "input_layer", "batch_shape": [None, T, M]}}]
    with h5py.File(path.with_suffix(".weights.h5"), "w") as f:
        for cls, config, variables in layers:
            configs.append({"module": "keras.layers", "class_name": cls, "config": config,
                            "registered_name": None})
            for group, arrays in variables.items():
                for k, a in enumerate(arrays):
                    f.create_dataset(f"{prefix}{group}/vars/{k}", data=a)
    model = {"module": "keras", "class_name": "Sequential",
             "config": {"name": "sequential", "layers": configs}, "registered_name": None}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        z.writestr("config.json", json.dumps(model))
        z.write(path.with_suffix(".weights.h5"), "model.weights.h5")
    return path


def cell_vars(w):
    return [w[k] for k in ("kernel", "recurrent_kernel", "bias") if k in w]


@pytest.mark.parametrize("cls, config", [
    ("LSTM", {"name": "my_lstm"}),
    ("GRU", {"name": "my_gru", "reset_after": True, "return_sequences": True}),
    ("SimpleRNN", {"name": "my_rnn", "activation": "relu"}),
])
def test_keras_archive_reproduces_keras_equations(tmp_path, cls, config):
    rng = np.random.default_rng(21)
    w = keras_weights(cls, M, N, rng)
    kernel, bias = rng.normal(size=(N, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    snake = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}[cls]
    path = write_keras_archive(tmp_path / "m.keras", [
        (cls, config, {f"layers/{snake}/cell": cell_vars(w)}),
        ("Dense", {"name": "head", "activation": "linear"}, {"layers/dense": [kernel, bias]}),
    ])
    net = models.load(path)
    x = rng.normal(size=(T, M))
    expected = keras_forward(cls, w, x, config.get("activation", "tanh"))
    np.testing.assert_allclose(np_forward(net, x), expected, atol=1e-10)
    assert net.cell_type == {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn_relu"}[cls]
    np.testing.assert_array_equal(net.readout_weight, kernel.T)
    assert net.readout_mode == ("every" if config.get("return_sequences") else "last")
    assert (net.metadata["source_format"], net.metadata["layer"]) == ("keras", config["name"])


def test_keras_archive_layers_are_found_by_class_count_and_chosen_by_name(tmp_path):
    """Two LSTMs are stored as ``lstm`` and ``lstm_1``, a Bidirectional wrapper's directions under
    ``forward_layer``/``backward_layer``; ``layer`` picks by the Keras layer name and stacks."""
    rng = np.random.default_rng(22)
    fwd, bwd = keras_weights("GRU", M, N, rng), keras_weights("GRU", M, N, rng)
    low, high = keras_weights("LSTM", 2 * N, N, rng), keras_weights("LSTM", N, N, rng)
    inner = {"class_name": "GRU", "config": {"name": "gru", "reset_after": True,
                                               "return_sequences": True}}
    path = write_keras_archive(tmp_path / "s.keras", [
        ("Bidirectional", {"name": "bi", "layer": inner},
         {"layers/bidirectional/forward_layer/cell": cell_vars(fwd),
          "layers/bidirectional/backward_layer/cell": cell_vars(bwd)}),
        ("LSTM", {"name": "enc", "return_sequences": True}, {"layers/lstm/cell": cell_vars(low)}),
        ("LSTM", {"name": "dec"}, {"layers/lstm_1/cell": cell_vars(high)}),
    ])
    with pytest.raises(WeightsError, match=r"3 Keras recurrent layers found \('bi', 'enc', 'dec'\)"):
        models.load(path)
    bi = models.load(path, layer="bi")
    x = rng.normal(size=(T, M))
    both = np.concatenate([keras_forward("GRU", fwd, x), keras_forward("GRU", bwd, x[::-1])[::-1]], 1)
    np.testing.assert_allclose(np_forward(bi, x), both, atol=1e-10)
    net = models.load(path, layer=["enc", "dec"])
    assert (net.cell_type, len(net.layers), net.input_size) == ("lstm", 2, 2 * N)
    np.testing.assert_array_equal(net.layers[1].W_hh, high["recurrent_kernel"].T)


def test_keras_archive_without_weights_is_refused(tmp_path):
    path = tmp_path / "w.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(WeightsError, match=r"w\.keras: the Keras archive lacks model\.weights\.h5"):
        models.load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match=r"w\.keras: not a readable Keras archive"):
        models.load(path)


# --------------------------------------------------------------------------- load: one per kind
@pytest.fixture
def files(tmp_path):
    """One small network of each kind of file, with the arrays each must load as."""
    rng = np.random.default_rng(23)
    out = {}
    net = random_network("gru", n=N, m=M, seed=4)
    out["testbench"] = (models.save(net, tmp_path / "tb.h5"), "gru", net.layers[0].W_hh)
    torch.manual_seed(3)
    gru = torch.nn.GRU(M, N)
    torch.save(gru.state_dict(), tmp_path / "sd.pt")
    out["torch"] = (tmp_path / "sd.pt", "gru", gru.weight_hh_l0.detach().numpy())
    w = keras_weights("SimpleRNN", M, N, rng)
    write_keras_h5(tmp_path / "k.h5", [("simple_rnn", "SimpleRNN",
                                        keras_layer("SimpleRNN", "simple_rnn", w, "cell"),
                                        {"activation": "tanh"})])
    out["keras-h5"] = (tmp_path / "k.h5", "rnn_tanh", w["recurrent_kernel"].T)
    w = keras_weights("LSTM", M, N, rng)
    write_keras_archive(tmp_path / "k.keras", [("LSTM", {"name": "lstm"},
                                                {"layers/lstm/cell": cell_vars(w)})])
    out["keras"] = (tmp_path / "k.keras", "lstm", w["recurrent_kernel"].T)
    W_, R, B = (0.5 * rng.normal(size=s) for s in ((1, N, M), (1, N, N), (1, 2 * N)))
    onnx_model("RNN", [W_, R, B], tmp_path / "o.onnx", hidden_size=N, activations=["Relu"])
    out["onnx"] = (tmp_path / "o.onnx", "rnn_relu", R[0].astype(np.float32))
    return out


@pytest.mark.parametrize("kind", ["testbench", "torch", "keras-h5", "keras", "onnx"])
def test_load_dispatches_on_the_file_kind(files, kind):
    path, cell_type, W_hh = files[kind]
    assert loading.kind(path) == kind
    net = models.load(path)
    assert net.cell_type == cell_type
    np.testing.assert_array_equal(net.layers[0].W_hh, W_hh)


def test_zoo_reference_loads_the_shipped_file():
    net = models.load("zoo:co2-32")
    assert (net.cell_type, net.hidden_size, net.metadata["name"]) == ("lstm", 32, "co2-32")


def test_an_hdf5_file_under_another_suffix_is_read_by_content(files, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(files["testbench"][0].read_bytes())
    assert loading.kind(path) == "testbench" and models.load(path).cell_type == "gru"


def test_layer_is_refused_for_a_testbench_file(files):
    with pytest.raises(WeightsError, match=r"tb\.h5: layer='rnn' given for a testbench weights file"):
        models.load(files["testbench"][0], layer="rnn")


# --------------------------------------------------------------------------- network grid
def save(tmp_path, filename, **meta):
    net = random_network(n=4, m=2, seed=meta.pop("rng", 0))
    net.metadata = meta
    return models.save(net, tmp_path / filename)


def test_grid_labels_and_metadata(files, tmp_path):
    a = save(tmp_path, "a.h5", name="co2-4", dataset="co2", seed=3, network_variant="init")
    entries = models.network_grid(["zoo:mnist-32", a, files["onnx"][0]])
    assert [e.label for e in entries] == ["mnist-32", "co2-4", "o"]
    zoo_entry, mine, onnx = entries
    assert (zoo_entry.dataset, zoo_entry.size, zoo_entry.seed, zoo_entry.variant) == (
        "mnist", 32, models.zoo.manifest()["mnist-32"]["seed"], "trained")
    assert (mine.dataset, mine.seed, mine.variant, mine.cell_type, mine.num_layers) == (
        "co2", 3, "init", "lstm", 1)
    assert mine.checksum == hashlib.sha256(a.read_bytes()).hexdigest()
    assert (onnx.dataset, onnx.seed, onnx.variant, onnx.cell_type) == ("o", None, "trained", "rnn_relu")
    assert mine.describe()["sha256"] == mine.checksum and mine.describe()["size"] == 4


def test_grid_keeps_each_networks_cell_type(files):
    entries = models.network_grid([files[k][0] for k in ("testbench", "keras-h5", "onnx")])
    assert [e.cell_type for e in entries] == ["gru", "rnn_tanh", "rnn_relu"]


def test_grid_refuses_two_networks_with_one_label(tmp_path):
    (tmp_path / "s1").mkdir()
    a = save(tmp_path, "seed0.h5", name="co2-4", seed=0)
    b = save(tmp_path / "s1", "seed1.h5", name="co2-4", seed=1, rng=1)
    with pytest.raises(SettingsError, match=r"seed0\.h5.*and .*seed1\.h5.*both get the label "
                                            r"'co2-4'.*fix: give explicit labels, e.g. `weights: "
                                            r"\{a: .*seed0\.h5, b: .*seed1\.h5\}`") as info:
        models.network_grid([a, b])
    assert info.value.setting == "weights"
    with pytest.raises(SettingsError, match=r"both get the label 'x'"):
        models.network_grid([save(tmp_path, "x.h5"), save(tmp_path / "s1", "x.h5")])


def test_grid_takes_explicit_labels_in_order(tmp_path):
    a = save(tmp_path, "a.h5", name="co2-4", seed=0)
    b = save(tmp_path, "b.h5", name="co2-4", seed=1, rng=1)
    entries = models.network_grid({"seed1": str(b), "seed0": str(a)})
    assert [(e.label, e.seed, e.path.name) for e in entries] == [("seed1", 1, "b.h5"), ("seed0", 0, "a.h5")]


@pytest.mark.parametrize("sources, error, match", [
    ([], SettingsError, r"setting 'weights': \[\] names no network"),
    ({"": "zoo:co2-32"}, SettingsError, r"label '' is not a non-empty text"),
    ([3], SettingsError, r"a list item is 3, not a weights reference"),
    (7, SettingsError, r"7 is a int; rule: a source, a list of sources or a mapping"),
])
def test_grid_refuses_malformed_sources(sources, error, match):
    with pytest.raises(error, match=match):
        models.network_grid(sources)


@pytest.mark.parametrize("meta, match", [
    ({"seed": "3"}, r"metadata 'seed' is '3', expected an integer"),
    ({"seed": True}, r"metadata 'seed' is True, expected an integer"),
    ({"network_variant": ""}, r"metadata 'network_variant' is '', expected a non-empty text"),
])
def test_grid_refuses_malformed_metadata(tmp_path, meta, match):
    with pytest.raises(WeightsError, match=r"bad\.h5: " + match):
        models.network_grid(save(tmp_path, "bad.h5", **meta))


# --------------------------------------------------------------------------- files used in graphs
GRAPH = """
output: {out}
nodes:
  step:
    type: step
    settings: {{length_steps: 60}}
  cells:
    type: rnn_cells
    inputs: [step]
    settings: {{weights: {weights}}}
  metrics:
    type: step_response
    inputs: {{response: cells, stimulus: step}}
"""


def test_onnx_file_runs_directly_as_graph_weights(files, tmp_path):
    """An ``.onnx`` file as ``weights:`` gives the metrics of its exported testbench file."""
    onnx_path = files["onnx"][0]
    (tmp_path / "exported").mkdir()
    exported = models.export(onnx_path, tmp_path / "exported" / "o.h5")
    stores = []
    for name, weights in (("direct", onnx_path), ("exported", exported)):
        text = GRAPH.format(out=tmp_path / f"{name}.zarr", weights=weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # relu cells may never settle
            stores.append(xr.open_zarr(run(load_graph("g.yaml", text=text), progress=False)))
    direct, via_export = stores
    assert list(direct.data_vars) == list(via_export.data_vars) and direct.data_vars
    for name, values in direct.data_vars.items():
        assert values.notnull().any(), name
        np.testing.assert_array_equal(values.values, via_export[name].values, err_msg=name)


def test_test_set_names_the_network_and_the_missing_metadata():
    with pytest.raises(WeightsError, match=r"^toy\.h5: metadata lacks variant, window, "
                                           r"normalization; .*fix: retrain"):
        models.test_set(random_network(), where="toy.h5")
