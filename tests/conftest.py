"""Shared fixtures: small random networks in the testbench weight format, user-node path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from testbench.models import weights as W

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


@pytest.fixture(autouse=True)
def _node_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own, fresh node cache (never ~/.cache): no test reuses another's
    results, and runs of the CLI or the API write nothing outside the test's folders."""
    monkeypatch.setenv("TESTBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def lstm_file(tmp_path) -> Path:
    """A 6-cell, 3-input random LSTM saved as testbench HDF5."""
    return W.save(random_network(), tmp_path / "toy-6.h5")


@pytest.fixture
def user_nodes(monkeypatch):
    """Make tests/user_nodes importable, as a user's own folder on PYTHONPATH would be."""
    monkeypatch.syspath_prepend(str(TESTS / "user_nodes"))
    return TESTS / "user_nodes"


class CliResult:
    """Outcome of one in-process ``testbench`` call: exit status and what it printed."""

    def __init__(self, status: int, out: str, err: str):
        self.status, self.out, self.err = status, out, err

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys):
    """Run the ``testbench`` command in-process: ``cli("run", "g.yaml", "-o", out)``.

    An exception escaping ``main`` is turned into a result whose text holds "Traceback", so tests
    that assert ``"Traceback" not in r.text`` fail on it with the exception shown.
    """
    import traceback

    from testbench.cli import main

    def call(*argv) -> CliResult:
        capsys.readouterr()
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - reported as a traceback, which the tests forbid
            status = -1
            print(traceback.format_exc())
        got = capsys.readouterr()
        return CliResult(status, got.out, got.err)

    return call


def tree_hash(root: Path) -> str:
    """Hash of every path, file size, mode and file content under ``root`` (itself included)."""
    import hashlib
    import os

    h = hashlib.sha256()
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}|{st.st_mode}|{st.st_size}".encode())
            if p.is_file() and not p.is_symlink():
                h.update(p.read_bytes())
    return h.hexdigest()
