"""Command-line workflows that span several modules: export a model, then characterize it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from testbench import cli
from testbench import models as W


def test_export_a_torch_model_then_run_a_graph_on_it(tmp_path, capsys):
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(2, 5)
            self.head = torch.nn.Linear(5, 1)

    torch.manual_seed(0)
    model = Model()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    out = tmp_path / "model.h5"
    assert cli.main(["export", str(tmp_path / "model.pt"), "-o", str(out), "--layer", "rnn"]) == 0
    net = W.load(out)
    np.testing.assert_array_equal(net.layers[0].W_hh, model.rnn.weight_hh_l0.detach().numpy())
    graph = tmp_path / "g.yaml"
    graph.write_text(f"""
output: {tmp_path / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 100}}}}
  cells: {{type: lstm_cells, inputs: [step], settings: {{weights: {out}}}}}
  m: {{type: step_response, inputs: {{response: cells, stimulus: step}}}}
""")
    assert cli.main(["run", str(graph), "-q"]) == 0
    ds = xr.open_zarr(tmp_path / "r.zarr")
    assert ds.sizes["cell"] == 5 and list(ds.network_size.values) == [5]
    assert cli.main(["export", str(tmp_path / "nope.pt"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_zoo_lists_shipped_networks(capsys):
    assert cli.main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "zoo:co2-128" in out


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "validate", "nodes", "show", "zoo", "export", "train", "evaluate"):
        assert command in out
