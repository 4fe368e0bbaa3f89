"""kernels.network.forward against torch (whole networks) and against knocked-out torch step loops."""

from __future__ import annotations

import numpy as np
import pytest

from testbench.kernels.network import forward

torch = pytest.importorskip("torch")

TOL = 1e-5
TORCH = {"lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {}),
         "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
         "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"})}
CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn_tanh": torch.nn.RNNCell}


def torch_net(cell_type, m, n, layers, n_out, seed):
    torch.manual_seed(seed)
    cls, kw = TORCH[cell_type]
    rnn = cls(m, n, num_layers=layers, batch_first=True, **kw).double()
    lin = torch.nn.Linear(n, n_out).double()
    arrays = [tuple(getattr(rnn, f"{p}_l{k}").detach().numpy()
                    for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for k in range(layers)]
    return rnn, lin, arrays, lin.weight.detach().numpy(), lin.bias.detach().numpy()


@pytest.mark.parametrize("cell_type", list(TORCH))
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["last", "every"])
def test_forward_matches_torch(cell_type, layers, mode):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (5, 9, 3))
    rnn, lin, arrays, w, b = torch_net(cell_type, 3, 7, layers, 2, seed=layers)
    with torch.no_grad():
        h, _ = rnn(torch.from_numpy(x))
        ref = lin(h if mode == "every" else h[:, -1]).numpy()
    got = forward(cell_type, arrays, w, b, x, readout_mode=mode)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)
    hidden = forward(cell_type, arrays, None, None, x, readout_mode=mode)
    np.testing.assert_allclose(hidden, (h if mode == "every" else h[:, -1]).numpy(), atol=TOL, rtol=0)


def test_float32_weights_match_torch_float32():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (4, 20, 2)).astype(np.float32)
    torch.manual_seed(3)
    rnn, lin = torch.nn.LSTM(2, 16, batch_first=True), torch.nn.Linear(16, 1)
    arrays = [tuple(getattr(rnn, f"{p}_l0").detach().numpy()
                    for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))]
    with torch.no_grad():
        ref = lin(rnn(torch.from_numpy(x))[0][:, -1]).numpy()
    got = forward("lstm", arrays, lin.weight.detach().numpy(), lin.bias.detach().numpy(), x)
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def knocked_torch(cell_type, rnn, lin, x, mask_row, offset_row, mode):
    """Step loop with torch cells, replacing the single layer's output by h*mask + offset each step."""
    cell = CELLS[cell_type](rnn.input_size, rnn.hidden_size).double()
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in rnn.state_dict().items()})
    mask, offset = torch.from_numpy(mask_row), torch.from_numpy(offset_row)
    h = torch.zeros(x.shape[0], rnn.hidden_size, dtype=torch.float64)
    c = torch.zeros_like(h)
    outs = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            xt = torch.from_numpy(x[:, t])
            if cell_type == "lstm":
                h, c = cell(xt, (h, c))
            else:
                h = cell(xt, h)
            h = h * mask + offset
            outs.append(lin(h))
    return torch.stack(outs, 1).numpy() if mode == "every" else outs[-1].numpy()


@pytest.mark.parametrize("cell_type", list(CELLS))
@pytest.mark.parametrize("mode", ["last", "every"])
def test_knockout_variants_match_torch_step_loop(cell_type, mode):
    rng = np.random.default_rng(4)
    n = 6
    x = rng.normal(0, 1, (3, 12, 2))
    rnn, lin, arrays, w, b = torch_net(cell_type, 2, n, 1, 3, seed=5)
    mask = np.ones((4, n))
    mask[1, 2] = 0.0                      # knock cell 2 out
    mask[2, [0, 5]] = 0.0                 # knock two cells out
    offset = np.zeros((4, n))
    offset[3, 4], mask[3, 4] = 0.3, 0.0   # clamp cell 4 to 0.3
    got = forward(cell_type, arrays, w, b, x, readout_mode=mode, mask=mask, offset=offset)
    assert got.shape == (4, *((3, 12, 3) if mode == "every" else (3, 3)))
    for k in range(4):
        ref = knocked_torch(cell_type, rnn, lin, x, mask[k], offset[k], mode)
        np.testing.assert_allclose(got[k], ref, atol=TOL, rtol=0)
    unmasked = forward(cell_type, arrays, w, b, x, readout_mode=mode)
    np.testing.assert_allclose(got[0], unmasked, atol=1e-12, rtol=0)
    assert np.abs(got[1] - unmasked).max() > 1e-3  # the knock-out changes the output


def test_mask_applies_to_last_layer_only_and_clamps_its_output():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (2, 8, 3))
    _, _, arrays, _, _ = torch_net("lstm", 3, 5, 2, 1, seed=7)
    mask, offset = np.ones((1, 5)), np.zeros((1, 5))
    mask[0, 1], offset[0, 1] = 0.0, -0.25
    hidden = forward("lstm", arrays, None, None, x, readout_mode="every", mask=mask, offset=offset)
    np.testing.assert_array_equal(hidden[0, :, :, 1], -0.25)
    free = forward("lstm", arrays, None, None, x, readout_mode="every")
    # the first step of the other cells sees h = 0 for every cell, so it is unchanged
    np.testing.assert_allclose(hidden[0, :, 0, [0, 2, 3, 4]], free[:, 0, [0, 2, 3, 4]].T, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"cell_type": "lstmx"}, "cell_type 'lstmx'"),
    ({"readout_mode": "first"}, "readout_mode 'first'"),
    ({"x": np.zeros((2, 4))}, r"x has shape \(2, 4\)"),
    ({"x": np.zeros((2, 4, 5))}, "layer 0: shapes"),
    ({"mask": np.ones((2, 4))}, r"mask \(2, 4\)"),
    ({"offset": np.ones((2, 6))}, "offset needs a mask"),
])
def test_forward_rejects_bad_arguments(kwargs, match):
    _, _, arrays, w, b = torch_net("lstm", 3, 6, 1, 1, seed=0)
    args = {"cell_type": "lstm", "layers": arrays, "readout_weight": w, "readout_bias": b,
            "x": np.zeros((2, 4, 3))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        forward(**args)
