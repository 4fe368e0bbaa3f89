"""Shared fixtures: small random networks in the testbench weight format, user-node path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from testbench import weights as W

TESTS = Path(__file__).parent
SHARED_DATA = TESTS.parent.parent / "shared" / "data"


def random_network(cell_type="lstm", n=6, m=3, seed=0, dataset="toy", scale=1.0) -> W.Network:
    """A seeded random one-layer network with a readout, in float64."""
    rng = np.random.default_rng(seed)
    G = len(W.GATES[cell_type])
    layer = W.Layer(
        rng.normal(0, scale, (G * n, m)),
        rng.normal(0, scale, (G * n, n)),
        rng.normal(0, 0.5 * scale, G * n),
        rng.normal(0, 0.5 * scale, G * n),
    )
    return W.Network(cell_type, [layer], rng.normal(0, 1, (1, n)), np.zeros(1),
                     metadata={"dataset": dataset, "seed": seed})


@pytest.fixture
def lstm_file(tmp_path) -> Path:
    """A 6-cell, 3-input random LSTM saved as testbench HDF5."""
    return W.save(random_network(), tmp_path / "toy-6.h5")


@pytest.fixture
def user_nodes(monkeypatch):
    """Make tests/user_nodes importable, as a user's own folder on PYTHONPATH would be."""
    monkeypatch.syspath_prepend(str(TESTS / "user_nodes"))
    return TESTS / "user_nodes"
