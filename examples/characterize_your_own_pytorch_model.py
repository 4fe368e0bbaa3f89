"""Characterize the cells of your own PyTorch LSTM.

Trains a small ``nn.LSTM`` for a few steps on a toy task (predict the next sample of a sine),
saves its ``state_dict`` (the safe way: a tensors-only file; a whole pickled model is refused
unless you trust it) and runs a graph on it with :func:`testbench.run`: a step and a sine drive
every isolated cell, two analyzers measure the responses. The ``.pt`` file is the ``weights``
setting as it is; no export step is needed.

Run: ``python examples/characterize_your_own_pytorch_model.py`` (needs torch: ``pip install
'rnn-testbench[torch]'``; a few seconds; writes only into a temporary folder it removes).
"""

import tempfile
from pathlib import Path

import torch
from torch import nn

import testbench


class Forecaster(nn.Module):
    """One LSTM layer and a linear readout of its last hidden state."""

    def __init__(self, hidden_size: int = 16):
        super().__init__()
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def train(steps: int = 30, seed: int = 0) -> Forecaster:
    """A few Adam steps on windows of a noisy sine (seeded: the same model every run)."""
    torch.manual_seed(seed)
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t = torch.arange(2000, dtype=torch.float32)
    series = torch.sin(2 * torch.pi * 0.02 * t) + 0.05 * torch.randn(t.shape)
    for _ in range(steps):
        start = torch.randint(0, len(series) - 51, (32,))
        windows = torch.stack([series[s:s + 51] for s in start.tolist()])
        x, y = windows[:, :50, None], windows[:, 50:]
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained {steps} steps, loss {loss.item():.4f}")
    return model


def graph(weights: Path) -> dict:
    """The paper's step and sine characterization of every cell of ``weights``."""
    return {
        "description": "step and sine responses of every cell of my LSTM",
        "nodes": {
            "step": {"type": "step", "settings": {"length_steps": 400}},
            "sine": {"type": "sine", "settings": {"length_steps": 400, "frequency": 0.02}},
            "step_cells": {"type": "lstm_cells", "inputs": ["step"],
                           "settings": {"weights": str(weights)}},
            "sine_cells": {"type": "lstm_cells", "inputs": ["sine"],
                           "settings": {"weights": str(weights)}},
            "step_metrics": {"type": "step_response",
                             "inputs": {"response": "step_cells", "stimulus": "step"}},
            "sine_metrics": {"type": "sine_response",
                             "inputs": {"response": "sine_cells", "stimulus": "sine"}},
        },
    }


def main() -> None:
    model = train()
    with tempfile.TemporaryDirectory(prefix="testbench-example-") as tmp:
        weights = Path(tmp) / "forecaster.pt"
        torch.save(model.state_dict(), weights)
        ds = testbench.run(graph(weights))  # in memory; output=Path(tmp) / "run.zarr" stores it
    print(f"characterized {ds.sizes['cell']} cells of network {ds['network'].item()}")
    print(f"{'metric':<24} {'mean ± std over cells':>24}  units")
    for name, var in ds.data_vars.items():
        if "analyzer" in var.attrs:  # a metric (other variables: saved responses, ablation)
            mean, std = float(var.mean()), float(var.std())
            print(f"{name:<24} {mean:>12.4g} ± {std:<9.3g}  {var.attrs['units']}")


if __name__ == "__main__":
    main()
