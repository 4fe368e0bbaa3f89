"""DUT nodes: isolated and in-network cells, cell types, directions, channel policies."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import testbench.kernels.reference as ref
from conftest import random_network
from testbench import models as W
from testbench.dut import gru_cells, lstm_cells, rnn_cells
from testbench.errors import SettingsError


def stim(T=120, seed=0):
    x = np.random.default_rng(seed).normal(size=T)
    return xr.DataArray(x, dims="time", coords={"time": np.arange(1, T + 1)}, attrs={"dt": 1.0})


def isolated_reference(L_arrays, cell_type, v, x):
    """Plain NumPy: slice the weights by hand (DESIGN.md) and run the reference simulator."""
    W_ih, W_hh, b_ih, b_hh = L_arrays
    G = len(W.weights.GATES[cell_type])
    N = W_hh.shape[1]
    rows = np.arange(G)[None, :] * N + np.arange(N)[:, None]  # (N, G) row index k*N + u
    a = W_ih[rows] @ v
    r = W_hh[rows, np.arange(N)[:, None]]
    return ref.simulate(cell_type, a, r, b_ih[rows], b_hh[rows], x[None, :])[:, 0]


@pytest.mark.parametrize("node, cell_type", [(lstm_cells, "lstm"), (gru_cells, "gru"),
                                             (rnn_cells, "rnn_tanh"), (rnn_cells, "rnn_relu")])
def test_isolated_cells_match_hand_sliced_reference(tmp_path, node, cell_type):
    net = random_network(cell_type, n=5, m=2, seed=3)
    path = W.save(net, tmp_path / "n.h5")
    x = stim()
    L = net.layers[0]
    arrays = (L.W_ih, L.W_hh, L.b_ih, L.b_hh)
    got = node(x, weights=str(path)).load().isel(network=0)
    np.testing.assert_allclose(got, isolated_reference(arrays, cell_type, np.ones(2), x.values),
                               atol=1e-12)
    one = node(x, weights=str(path), channels=[1]).load().isel(network=0)
    np.testing.assert_allclose(one, isolated_reference(arrays, cell_type, np.array([0.0, 1.0]),
                                                       x.values), atol=1e-12)


def test_float32_simulation_is_close_to_float64(lstm_file):
    x = stim()
    r64 = lstm_cells(x, weights=str(lstm_file)).load()
    r32 = lstm_cells(x, weights=str(lstm_file), dtype="float32").load()
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32, r64, atol=1e-5)


def test_in_network_equals_isolated_when_cells_do_not_interact(tmp_path):
    net = random_network("lstm", n=4, m=1, seed=5)
    L = net.layers[0]
    for k in range(4):  # keep only each cell's self-weight: the network is 4 independent cells
        block = L.W_hh[k * 4:(k + 1) * 4]
        L.W_hh[k * 4:(k + 1) * 4] = np.diag(np.diag(block))
    path = W.save(net, tmp_path / "diag.h5")
    x = stim()
    iso = lstm_cells(x, weights=str(path)).load()
    full = lstm_cells(x, weights=str(path), mode="in_network").load()
    np.testing.assert_allclose(full, iso, atol=1e-12)


def test_in_network_matches_torch_layer(lstm_file):
    torch = pytest.importorskip("torch")
    net = W.load(lstm_file)
    L = net.layers[0]
    x = stim()
    got = lstm_cells(x, weights=str(lstm_file), mode="in_network").load().isel(network=0)
    layer = torch.nn.LSTM(3, 6).double()
    with torch.no_grad():
        for name, arr in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
                             (L.W_ih, L.W_hh, L.b_ih, L.b_hh)):
            getattr(layer, name)[:] = torch.tensor(arr)
        y, _ = layer(torch.tensor(x.values)[:, None, None].repeat(1, 1, 3))
    np.testing.assert_allclose(got.values, y[:, 0, :].numpy().T, atol=1e-10)
    with pytest.raises(SettingsError, match=r"apply to mode 'isolated' only; got traces=True"):
        lstm_cells(x, weights=str(lstm_file), mode="in_network", traces=True)


def test_bidirectional_layer_adds_a_direction_dimension(tmp_path):
    net = random_network("gru", n=3, m=2, seed=7)
    rev = random_network("gru", n=3, m=2, seed=8).layers[0]
    L = net.layers[0]
    L.W_ih_reverse, L.W_hh_reverse, L.b_ih_reverse, L.b_hh_reverse = rev.W_ih, rev.W_hh, rev.b_ih, rev.b_hh
    net.readout_weight = np.ones((1, 6))
    path = W.save(net, tmp_path / "bi.h5")
    x = stim()
    got = gru_cells(x, weights=str(path)).load().isel(network=0)
    assert list(got.direction.values) == ["forward", "reverse"]
    expected = isolated_reference((rev.W_ih, rev.W_hh, rev.b_ih, rev.b_hh), "gru", np.ones(2), x.values)
    np.testing.assert_allclose(got.sel(direction="reverse"), expected, atol=1e-12)
    with pytest.raises(SettingsError, match=r"'in_network' does not support bidirectional"):
        gru_cells(x, weights=str(path), mode="in_network")


def test_channel_and_layer_settings_are_checked(lstm_file):
    x = stim()
    with pytest.raises(SettingsError, match=r"setting 'channels': \[5\] is not a non-empty list of "
                                            r"channel indices in \[0, 2\]"):
        lstm_cells(x, weights=str(lstm_file), channels=[5])
    with pytest.raises(SettingsError, match=r"setting 'layer': 1 is out of range for .*toy-6\.h5, "
                                            r"which has 1 layer\(s\)"):
        lstm_cells(x, weights=str(lstm_file), layer=1)


def test_cuda_backend_without_gpu_is_a_clear_error(lstm_file):
    from numba import cuda

    from testbench.errors import BackendError

    if cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendError, match=r"'cuda' was asked for but no CUDA GPU is available here; "
                                           r"fix: use backend: cpu"):
        lstm_cells(stim(), weights=str(lstm_file), backend="cuda")


def test_networks_with_different_input_sizes_share_a_grid_unless_channels_each(tmp_path):
    one = W.save(random_network(n=3, m=1, seed=1, dataset="a"), tmp_path / "a.h5")
    four = W.save(random_network(n=5, m=4, seed=2, dataset="b"), tmp_path / "b.h5")
    x = stim()
    resp = lstm_cells(x, weights=[str(one), str(four)]).load()
    assert list(resp.network.values) == ["a", "b"] and list(resp.network_size.values) == [3, 5]
    with pytest.raises(SettingsError, match=r"'each' needs networks with equal input sizes, but "
                                            r".*a\.h5 has 1 and .*b\.h5 has 4 input channels"):
        lstm_cells(x, weights=[str(one), str(four)], channels="each")
