"""Importers: every imported network must reproduce its source layer's output.

Ground truths: PyTorch's own layers, NumPy implementations of the Keras equations (for HDF5 files
written with h5py in Keras's layout) and of the ONNX operator equations, and ``torch.onnx.export``.
"""

from __future__ import annotations

import json
import sys
import warnings

import h5py
import numpy as np
import pytest

from testbench import models
from testbench.errors import WeightsError
from testbench.models import import_keras, import_onnx, import_torch, weights
from testbench.models.weights import Layer, Network

torch = pytest.importorskip("torch")

TOL = 1e-5  # float32 torch layers against float64 NumPy forwards
T, M, N = 12, 3, 5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- NumPy references
def _run_direction(cell, W_ih, W_hh, b_ih, b_hh, seq):
    """PyTorch equations of one direction of one layer over ``seq (T, m)``; returns (T, N)."""
    W_ih, W_hh, b_ih, b_hh = (np.asarray(a, np.float64) for a in (W_ih, W_hh, b_ih, b_hh))
    n = W_hh.shape[1]
    h, c, out = np.zeros(n), np.zeros(n), []
    for x in seq:
        gi, gh = W_ih @ x + b_ih, W_hh @ h + b_hh
        if cell == "lstm":
            i, f, g, o = np.split(gi + gh, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        elif cell == "gru":
            r = sigmoid(gi[:n] + gh[:n])
            z = sigmoid(gi[n:2 * n] + gh[n:2 * n])
            h = (1 - z) * np.tanh(gi[2 * n:] + r * gh[2 * n:]) + z * h
        else:
            h = np.tanh(gi + gh) if cell == "rnn_tanh" else np.maximum(gi + gh, 0.0)
        out.append(h)
    return np.array(out)


def np_forward(net: Network, x: np.ndarray) -> np.ndarray:
    """NumPy forward of a testbench Network: (T, m) -> (T, D*N) of the last layer."""
    inp = np.asarray(x, np.float64)
    for layer in net.layers:
        outs = [_run_direction(net.cell_type, layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh, inp)]
        if layer.bidirectional:
            rev = (layer.W_ih_reverse, layer.W_hh_reverse, layer.b_ih_reverse, layer.b_hh_reverse)
            outs.append(_run_direction(net.cell_type, *rev, inp[::-1])[::-1])
        inp = np.concatenate(outs, axis=1)
    return inp


def torch_output(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.as_tensor(x[:, None, :], dtype=torch.float32))[0][:, 0].numpy()


def torch_module_from(net: Network):
    """A PyTorch layer holding ``net``'s arrays, to check the imported arrays against PyTorch."""
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(net.cell_type, torch.nn.RNN)
    extra = {"nonlinearity": net.cell_type[4:]} if cls is torch.nn.RNN else {}
    module = cls(net.input_size, net.hidden_size, num_layers=len(net.layers),
                 bidirectional=net.directions == 2, **extra)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    state = {}
    for k, layer in enumerate(net.layers):
        for suffix in ("", "_reverse")[:net.directions]:
            for name, attr in zip(names, weights.ARRAYS):
                state[f"{name}_l{k}{suffix}"] = torch.as_tensor(np.asarray(getattr(layer, attr + suffix)))
    module.load_state_dict(state)
    return module


def test_np_forward_reproduces_torch_bidirectional_stack():
    """The test's own NumPy forward agrees with PyTorch (it is the yardstick of the Keras tests)."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(M, N, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(T, M))
    net = weights.from_state_dict(module.state_dict(), "lstm")
    np.testing.assert_allclose(np_forward(net, x), torch_output(module, x), atol=TOL)


# --------------------------------------------------------------------------- PyTorch
TORCH_CASES = [
    ("lstm", torch.nn.LSTM, {"num_layers": 2}),
    ("lstm", torch.nn.LSTM, {"bias": False, "bidirectional": True, "num_layers": 2}),
    ("gru", torch.nn.GRU, {"num_layers": 2, "bidirectional": True}),
    ("rnn_relu", torch.nn.RNN, {"nonlinearity": "relu", "bias": False}),
    ("rnn_tanh", torch.nn.RNN, {"bidirectional": True}),
]


@pytest.mark.parametrize("cell, cls, kwargs", TORCH_CASES, ids=[f"{c[0]}-{c[2]}" for c in TORCH_CASES])
def test_torch_module_reproduces_layer_output(cell, cls, kwargs):
    torch.manual_seed(1)
    module = cls(M, N, **kwargs)
    x = np.random.default_rng(1).normal(size=(T, M))
    net = import_torch.load_torch(module)
    weights.validate(net)
    assert (net.cell_type, len(net.layers)) == (cell, kwargs.get("num_layers", 1))
    assert net.directions == (2 if kwargs.get("bidirectional") else 1)
    np.testing.assert_allclose(np_forward(net, x), torch_output(module, x), atol=TOL)


class Seq2One(torch.nn.Module):
    """A whole model: an input projection, a bidirectional GRU and a readout."""

    def __init__(self):
        super().__init__()
        self.inp = torch.nn.Linear(M, M)
        self.rnn = torch.nn.GRU(M, N, num_layers=2, bidirectional=True)
        self.head = torch.nn.Linear(2 * N, 2)

    def forward(self, x):
        return self.head(self.rnn(self.inp(x))[0])


@pytest.fixture
def seq2one(tmp_path):
    torch.manual_seed(2)
    model = Seq2One().eval()
    torch.save(model, tmp_path / "model.pt")
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pth")
    return model, tmp_path


@pytest.mark.parametrize("name, trust", [("model.pt", True), ("checkpoint.pth", False)])
def test_torch_files_import_layer_and_readout(seq2one, name, trust):
    model, folder = seq2one
    with warnings.catch_warnings():
        warnings.simplefilter("error" if not trust else "ignore", import_torch.TrustedPickleWarning)
        net = models.load(folder / name, trust_pickle=trust)
    x = np.random.default_rng(2).normal(size=(T, M))
    np.testing.assert_allclose(np_forward(net, x), torch_output(model.rnn, x), atol=TOL)
    np.testing.assert_array_equal(net.readout_weight, model.head.weight.detach().numpy())
    np.testing.assert_array_equal(net.readout_bias, model.head.bias.detach().numpy())
    assert net.metadata["readout_layer"] in ("head", "model.head")


def test_export_round_trips_bidirectional_through_testbench_format(seq2one):
    model, folder = seq2one
    with pytest.warns(import_torch.TrustedPickleWarning, match=r"model\.pt: unpickling"):
        out = models.export(folder / "model.pt", folder / "out" / "w.h5", trust_pickle=True)
    with h5py.File(out) as f:
        assert bool(f.attrs["bidirectional"]) and "layers/1/W_hh_reverse" in f
    net, again = import_torch.load_torch(model), models.load(out)
    for a, b in zip(net.layers, again.layers):
        for name in vars(a):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(again.readout_weight, net.readout_weight)
    assert again.metadata["source_sha256"] == models.checksum(folder / "model.pt")


def test_torch_whole_module_refused_without_trust_pickle(seq2one):
    _, folder = seq2one
    with pytest.raises(WeightsError, match=r"model\.pt: the file holds pickled Python objects.*"
                                           r"Seq2One.*arbitrary code.*state_dict.*trust_pickle"):
        import_torch.load_torch(folder / "model.pt")


class TwoRnns(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.LSTM(M, N)
        self.dec = torch.nn.GRU(N, N)


def test_torch_layer_choice_and_errors():
    model = TwoRnns()
    with pytest.raises(WeightsError, match=r"2 recurrent layer.*'enc', 'dec'.*layer='enc'"):
        import_torch.load_torch(model)
    with pytest.raises(WeightsError, match=r"no recurrent layer.* named 'decc'.*did you mean 'dec'"):
        import_torch.load_torch(model, layer="decc")
    assert import_torch.load_torch(model, layer="dec").cell_type == "gru"
    with pytest.raises(WeightsError, match=r"weight_ih_l0 key\) named 'encc'; did you mean 'enc'"):
        import_torch.load_torch(model.state_dict(), layer="encc")


def test_torch_proj_size_refused():
    module = torch.nn.LSTM(M, N, proj_size=2)
    with pytest.raises(WeightsError, match=r"proj_size=2 is not supported"):
        import_torch.load_torch(module)
    with pytest.raises(WeightsError, match=r"weight_hr_l0.*proj_size > 0"):
        import_torch.load_torch(module.state_dict())


def test_torch_rnn_state_dict_needs_nonlinearity():
    module = torch.nn.RNN(M, N, nonlinearity="relu")
    with pytest.raises(WeightsError, match=r"does not record its nonlinearity.*rnn_nonlinearity="):
        import_torch.load_torch(module.state_dict())
    net = import_torch.load_torch(module.state_dict(), rnn_nonlinearity="relu")
    x = np.random.default_rng(3).normal(size=(T, M))
    np.testing.assert_allclose(np_forward(net, x), torch_output(module, x), atol=TOL)


def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    path.write_bytes(b"not used")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(WeightsError, match=r"pip install 'rnn-testbench\[torch\]'"):
        import_torch.load_torch(path)


def test_nan_weights_refused(tmp_path):
    module = torch.nn.GRU(M, N)
    with torch.no_grad():
        module.weight_hh_l0[4, 1] = float("nan")
    torch.save(module.state_dict(), tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match=r"nan\.pt: layers/0/W_hh holds 1 non-finite .*index \(4, 1\)"):
        models.load(tmp_path / "nan.pt")


def test_validate_refuses_mixed_directions():
    torch.manual_seed(4)
    net = import_torch.load_torch(torch.nn.LSTM(M, N, num_layers=2, bidirectional=True))
    net.layers[1] = Layer(net.layers[1].W_ih, net.layers[1].W_hh, net.layers[1].b_ih, net.layers[1].b_hh)
    with pytest.raises(WeightsError, match=r"layers/1 holds reverse arrays none but layers/0 is bidirectional"):
        weights.validate(net)


# --------------------------------------------------------------------------- Keras HDF5
def keras_forward(cls, w, x, activation="tanh"):
    """Keras equations of one direction: ``w`` holds kernel, recurrent_kernel, bias (Keras order)."""
    k, rk = np.asarray(w["kernel"], np.float64), np.asarray(w["recurrent_kernel"], np.float64)
    n = rk.shape[0]
    bias = np.asarray(w.get("bias", np.zeros(k.shape[1])), np.float64)
    h, c, out = np.zeros(n), np.zeros(n), []
    for xt in x:
        if cls == "LSTM":
            i, f, cc, o = np.split(xt @ k + h @ rk + bias, 4)  # Keras order i, f, c, o
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
            h = sigmoid(o) * np.tanh(c)
        elif cls == "GRU":  # reset_after=True: bias rows are input and recurrent biases
            xz, hz = xt @ k + bias[0], h @ rk + bias[1]  # blocks z, r, h
            z, r = sigmoid(xz[:n] + hz[:n]), sigmoid(xz[n:2 * n] + hz[n:2 * n])
            h = z * h + (1 - z) * np.tanh(xz[2 * n:] + r * hz[2 * n:])
        else:
            act = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0.0))
            h = act(xt @ k + h @ rk + bias)
        out.append(h)
    return np.array(out)


def keras_weights(cls, m, n, rng, use_bias=True):
    g = import_keras.KERAS_RNN[cls]
    w = {"kernel": rng.normal(size=(m, g * n)), "recurrent_kernel": rng.normal(size=(n, g * n))}
    if use_bias:
        w["bias"] = rng.normal(size=(2, g * n) if cls == "GRU" else (g * n,))
    return {k: (0.5 * v).astype(np.float32) for k, v in w.items()}


def write_keras_h5(path, layers, *, style="keras2", whole_model=True):
    """Write ``layers`` = [(name, class_name, {weight path: array}, config or None)] as Keras does.

    Layout (Keras ``legacy_h5_format.save_weights_to_hdf5_group``): attribute ``layer_names``;
    one group per layer with attribute ``weight_names``; datasets at those paths. Keras 2 names
    end in ``:0``, Keras 3 names do not. ``model.save`` nests it in ``/model_weights`` and writes
    ``model_config`` JSON at the root; ``save_weights`` writes it at the root.
    """
    tail = ":0" if style == "keras2" else ""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = [name.encode() for name, *_ in layers]
        root.attrs["keras_version"] = b"2.15.0" if style == "keras2" else b"3.6.0"
        configs = []
        for name, cls, arrays, config in layers:
            g = root.create_group(name)
            names = [f"{key}{tail}" for key in arrays]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for wn, value in zip(names, arrays.values()):
                g.create_dataset(wn, data=value)
            configs.append({"class_name": cls, "config": {"name": name, **(config or {})}})
        if whole_model:
            f.attrs["model_config"] = json.dumps(
                {"class_name": "Sequential", "config": {"name": "sequential", "layers": configs}}
            ).encode()


def keras_layer(cls, name, w, cell_scope):
    return {f"{name}/{cell_scope}/{key}": value for key, value in w.items()}


KERAS_CASES = [
    ("LSTM", "keras2", True, {"return_sequences": True}),
    ("GRU", "keras3", True, {"reset_after": True}),
    ("SimpleRNN", "keras2", True, {"activation": "relu"}),
    ("LSTM", "keras3", False, None),
]


@pytest.mark.parametrize("cls, style, whole, config", KERAS_CASES)
def test_keras_layer_reproduces_keras_equations(tmp_path, cls, style, whole, config):
    rng = np.random.default_rng(5)
    w = keras_weights(cls, M, N, rng)
    dense = {"dense/kernel": rng.normal(size=(N, 2)).astype(np.float32),
             "dense/bias": rng.normal(size=2).astype(np.float32)}
    name = cls.lower()
    write_keras_h5(tmp_path / "k.h5", [
        (name, cls, keras_layer(cls, name, w, f"{name}_cell"), config),
        ("dense", "Dense", dense, {"activation": "linear"}),
    ], style=style, whole_model=whole)
    net = models.load(tmp_path / "k.h5")
    x = rng.normal(size=(T, M))
    expected = keras_forward(cls, w, x, (config or {}).get("activation", "tanh"))
    np.testing.assert_allclose(np_forward(net, x), expected, atol=1e-10)
    np.testing.assert_allclose(torch_output(torch_module_from(net), x), expected, atol=TOL)
    np.testing.assert_array_equal(net.readout_weight, dense["dense/kernel"].T)
    assert net.readout_mode == ("every" if (config or {}).get("return_sequences") else "last")
    assert ("assumed" in net.metadata) == (not whole)


def test_keras_bidirectional_and_stacked_layers(tmp_path):
    rng = np.random.default_rng(6)
    fwd, bwd = keras_weights("LSTM", M, N, rng), keras_weights("LSTM", M, N, rng)
    top = keras_weights("LSTM", 2 * N, N, rng, use_bias=False)
    bi = {**keras_layer("LSTM", "bidirectional/forward_lstm", fwd, "lstm_cell"),
          **keras_layer("LSTM", "bidirectional/backward_lstm", bwd, "lstm_cell")}
    inner = {"layer": {"class_name": "LSTM", "config": {"name": "lstm", "return_sequences": True}},
             "merge_mode": "concat"}
    write_keras_h5(tmp_path / "bi.h5", [
        ("bidirectional", "Bidirectional", bi, inner),
        ("lstm_1", "LSTM", keras_layer("LSTM", "lstm_1", top, "lstm_cell"), {"use_bias": False}),
    ])
    x = rng.normal(size=(T, M))
    first = np.concatenate([keras_forward("LSTM", fwd, x), keras_forward("LSTM", bwd, x[::-1])[::-1]], 1)
    with pytest.raises(WeightsError, match=r"2 Keras recurrent layers found \('bidirectional', 'lstm_1'\)"):
        import_keras.load_keras_h5(tmp_path / "bi.h5")
    net = import_keras.load_keras_h5(tmp_path / "bi.h5", layer="bidirectional")
    assert net.directions == 2 and net.readout_mode == "every"
    np.testing.assert_allclose(torch_output(torch_module_from(net), x), first, atol=TOL)
    with pytest.raises(WeightsError, match=r"cannot stack 'bidirectional'.*on 'lstm_1'"):
        import_keras.load_keras_h5(tmp_path / "bi.h5", layer=["lstm_1", "bidirectional"])


def test_keras_stack_of_two_layers(tmp_path):
    rng = np.random.default_rng(7)
    low, high = keras_weights("GRU", M, N, rng), keras_weights("GRU", N, N, rng)
    write_keras_h5(tmp_path / "s.h5", [
        ("gru", "GRU", keras_layer("GRU", "gru", low, "gru_cell"), None),
        ("gru_1", "GRU", keras_layer("GRU", "gru_1", high, "gru_cell"), None),
    ])
    net = models.load(tmp_path / "s.h5", layer=["gru", "gru_1"])
    x = rng.normal(size=(T, M))
    expected = keras_forward("GRU", high, keras_forward("GRU", low, x))
    np.testing.assert_allclose(torch_output(torch_module_from(net), x), expected, atol=TOL)


@pytest.mark.parametrize("cls, config, bias_shape, match", [
    ("GRU", {"reset_after": False}, (3 * N,), r"reset_after=False: the reset gate multiplies the state"),
    ("LSTM", {"recurrent_activation": "hard_sigmoid"}, None, r"recurrent_activation='hard_sigmoid'"),
    ("GRU", {"activation": "relu"}, None, r"GRU activation='relu' is not supported"),
    ("LSTM", {"go_backwards": True}, None, r"go_backwards=True"),
])
def test_keras_unsupported_variants_refused(tmp_path, cls, config, bias_shape, match):
    w = keras_weights(cls, M, N, np.random.default_rng(8))
    if bias_shape:
        w["bias"] = np.zeros(bias_shape, np.float32)
    write_keras_h5(tmp_path / "bad.h5", [("rnn", cls, keras_layer(cls, "rnn", w, "cell"), config)])
    with pytest.raises(WeightsError, match=r"bad\.h5 layer 'rnn'.*" + match):
        models.load(tmp_path / "bad.h5")


def test_hdf5_without_keras_layout_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(WeightsError, match=r"no 'layer_names' attribute.*not a legacy Keras HDF5"):
        models.load(tmp_path / "other.h5")


# --------------------------------------------------------------------------- ONNX
def onnx_lstm_forward(W, R, B, x):
    """ONNX LSTM equations (gate order i, o, f, c; default activations), one forward direction."""
    n = R.shape[-1]
    h, c, out = np.zeros(n), np.zeros(n), []
    wb, rb = B[: 4 * n], B[4 * n:]
    for xt in x:
        i, o, f, cc = np.split(W @ xt + R @ h + wb + rb, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.array(out)


def onnx_model(op_type, arrays, path, **attrs):
    """Write a one-operator ONNX graph; ``arrays`` fill inputs W, R, B, ..., P (None: absent)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    slots = ["W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    inputs = [slot if a is not None else "" for slot, a in zip(slots, arrays)]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in zip(slots, arrays) if a is not None]
    node = helper.make_node(op_type, ["X", *inputs], ["Y"], name="rec", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, 1, M])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits,
    )
    onnx.save(helper.make_model(graph), path)
    return path


def test_onnx_lstm_reproduces_onnx_equations(tmp_path):
    rng = np.random.default_rng(9)
    W, R, B = (0.5 * rng.normal(size=s) for s in ((1, 4 * N, M), (1, 4 * N, N), (1, 8 * N)))
    path = onnx_model("LSTM", [W, R, B], tmp_path / "lstm.onnx", hidden_size=N)
    net = models.load(path)
    x = rng.normal(size=(T, M))
    f32 = [a[0].astype(np.float32).astype(np.float64) for a in (W, R, B)]
    np.testing.assert_allclose(np_forward(net, x), onnx_lstm_forward(*f32, x), atol=1e-10)


@pytest.mark.parametrize("op_type, attrs, peephole, match", [
    ("GRU", {"linear_before_reset": 0}, False, r"GRU linear_before_reset=0 applies the reset gate before"),
    ("LSTM", {"direction": "reverse"}, False, r"direction='reverse'"),
    ("LSTM", {"clip": 3.0}, False, r"clip=3\.0 \(cell clipping\)"),
    ("LSTM", {}, True, r"LSTM peephole weights P are non-zero"),
])
def test_onnx_unsupported_variants_refused(tmp_path, op_type, attrs, peephole, match):
    g = 4 if op_type == "LSTM" else 3
    arrays = [np.ones((1, g * N, M)), np.ones((1, g * N, N)), np.zeros((1, 2 * g * N))]
    if peephole:
        arrays += [None, None, None, np.ones((1, 3 * N))]
    path = onnx_model(op_type, arrays, tmp_path / "bad.onnx", hidden_size=N, **attrs)
    with pytest.raises(WeightsError, match=r"bad\.onnx node 'rec': " + match):
        import_onnx.load_onnx(path)


class OnnxNet(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("rnn, dynamo", [
    (lambda: torch.nn.GRU(M, N, num_layers=2, bidirectional=True), True),
    (lambda: torch.nn.LSTM(M, N), True),
    (lambda: torch.nn.RNN(M, N, nonlinearity="relu"), False),  # dynamo unrolls nn.RNN
], ids=["gru-2layer-bidirectional", "lstm", "rnn-relu-torchscript"])
def test_onnx_export_of_torch_reproduces_torch(tmp_path, rnn, dynamo):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    torch.manual_seed(10)
    model = OnnxNet(rnn()).eval()
    x = np.random.default_rng(10).normal(size=(T, M))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(T, 1, M),), tmp_path / "m.onnx", dynamo=dynamo)
    net = models.load(tmp_path / "m.onnx")
    assert (len(net.layers), net.directions) == (model.rnn.num_layers, 2 if model.rnn.bidirectional else 1)
    np.testing.assert_allclose(np_forward(net, x), torch_output(model.rnn, x), atol=TOL)


def test_onnx_without_recurrent_operator_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("X", "Y")]
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g", io[:1], io[1:])
    onnx.save(helper.make_model(graph), tmp_path / "relu.onnx")
    with pytest.raises(WeightsError, match=r"no ONNX recurrent operator.*dynamo=False"):
        models.load(tmp_path / "relu.onnx")


def test_unknown_suffix_refused(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 16)
    with pytest.raises(WeightsError, match=r"unknown weights format \(suffix '\.bin'\)"):
        models.load(tmp_path / "w.bin")
