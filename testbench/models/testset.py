"""The test split a trained network is scored on, rebuilt from its weights metadata (one place for
the ablation and :func:`testbench.training.evaluate`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from testbench import data as D
from testbench.errors import WeightsError
from testbench.models.weights import Network

#: Metadata keys (written by :func:`testbench.training.train`) that rebuild the test split.
KEYS = ("dataset", "variant", "window", "normalization")


def test_set(net: Network, *, where: str | None = None, data_dir=None,
             max_sequences: int | None = None, seed: int = 0) -> D.Dataset:
    """The test split a trained network is scored on, optionally a seeded random subset of it.

    Rebuilt from the weights metadata (dataset, dataset variant, window, normalization constants),
    exactly as at training time, so the error of the whole split equals the recorded test score.

    Parameters
    ----------
    net : Network
        A network written by :func:`testbench.training.train` (its metadata names the dataset).
    where : str, optional
        How error messages name the network (a file or reference); default its metadata ``name``.
    data_dir : str or Path, optional
        Data folder (see :func:`testbench.data.data_root`).
    max_sequences : int, optional
        Keep at most this many test sequences (>= 1), drawn without replacement with ``seed`` and
        kept in their original order; ``None`` keeps the whole split.
    seed : int
        Seed of the subset draw, >= 0.

    Returns
    -------
    Dataset
        The dataset with its ``test`` split replaced by the subset (train/val untouched).

    Raises
    ------
    WeightsError
        The metadata lacks what is needed to rebuild the test set.
    DataError
        Missing or corrupt data files.
    """
    meta = net.metadata
    missing = [k for k in KEYS if k not in meta]
    if missing:
        raise WeightsError(
            f"{where or 'network ' + repr(meta.get('name', '?'))}: metadata lacks "
            f"{', '.join(missing)}; rebuilding its test set needs the training metadata written by "
            "testbench.training.train; fix: retrain with `testbench train`, or use a zoo network"
        )
    normalization = meta["normalization"] if meta.get("task") == "regression" else None
    ds = D.load(meta["dataset"], variant=meta["variant"], window=meta["window"],
                normalization=normalization, data_dir=data_dir)
    n = len(ds.test)
    if max_sequences is None or max_sequences >= n:
        return ds
    idx = np.sort(np.random.default_rng(seed).choice(n, size=max_sequences, replace=False))
    s = ds.test
    sub = D.Split(s.x[idx], s.y[idx], None if s.anchor is None else s.anchor[idx],
                  None if s.truth is None else s.truth[idx])
    return dataclasses.replace(ds, test=sub)


test_set.__test__ = False  # not a pytest test despite the name
