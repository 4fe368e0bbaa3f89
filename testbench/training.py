"""Train the zoo's recurrent networks with PyTorch (CPU), export them, and re-score exported weights.

:func:`train` fits a one-layer recurrent network plus a linear readout on one of the benchmarks of
:mod:`testbench.data`, keeps the weights of the epoch with the best validation score, writes them in
the project's HDF5 format (float32) with their metadata, and records a manifest entry in
``manifest.json`` beside the weights file. :func:`evaluate` re-computes the test score from a weights
file alone with the NumPy forward pass of :mod:`kernels.network` (not torch); the score recorded at
training time is computed the same way, so the two agree to rounding.

Training is deterministic: the same arguments and seed give the same weights on the same machine
(seeded initialization and shuffling, ``torch.use_deterministic_algorithms``, one intra-op thread).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from testbench import data as D
from testbench import models
from testbench.errors import DataError, SettingsError, WeightsError
from testbench.kernels.celltypes import CELL_TYPES

#: Per-dataset training settings: epochs, batch size, Adam learning rate, loss; optional
#: ``zero_readout`` (start from a zero readout, i.e. the training-mean forecast), ``evals_per_epoch``
#: (validation checks per epoch for model selection). MNIST nets above :data:`MNIST_SHORT_ABOVE`
#: cells train for :data:`MNIST_SHORT_EPOCHS` epochs (they learn faster and cost more per epoch).
SETTINGS = {
    "co2": {"epochs": 150, "batch_size": 32, "lr": 2e-3, "loss": "l1"},
    "sp500": {"epochs": 2, "batch_size": 128, "lr": 3e-4, "loss": "l1", "zero_readout": True,
              "evals_per_epoch": 8},
    "protein": {"epochs": 12, "batch_size": 64, "lr": 2e-3, "loss": "cross_entropy"},
    "mnist": {"epochs": 4, "batch_size": 128, "lr": 2e-3, "loss": "cross_entropy"},
}
MNIST_SHORT_ABOVE = 128
MNIST_SHORT_EPOCHS = 2
GRAD_CLIP = 1.0
EVAL_CHUNK = 2048
MANIFEST = models.zoo.MANIFEST


def build_model(cell_type: str, n_inputs: int, size: int, n_outputs: int):
    """A torch module: one recurrent layer of ``size`` cells and a ``Linear(size, n_outputs)`` readout.

    Its ``forward(x)`` maps ``(B, T, m)`` to ``(B, n_outputs)`` read at the last step.
    """
    import torch
    from torch import nn

    kind, nonlinearity = CELL_TYPES[cell_type].torch_class, CELL_TYPES[cell_type].nonlinearity
    extra = {"nonlinearity": nonlinearity} if nonlinearity else {}

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, kind)(n_inputs, size, batch_first=True, **extra)
            self.readout = nn.Linear(size, n_outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.rnn(x)
            return self.readout(h[:, -1, :])

    return Model()


def initial_model(dataset: str, cell_type: str, n_inputs: int, size: int, n_outputs: int,
                  seed: int):
    """The :func:`build_model` module that :func:`train` starts from, before any optimizer step.

    Seeds torch's global generator with ``seed`` and builds the module (PyTorch's default
    initialization); a dataset whose :data:`SETTINGS` ask for ``zero_readout`` gets a zero
    readout. The untrained controls of the zoo (``testbench zoo build --controls``) are these
    modules, exported.
    """
    import torch

    torch.manual_seed(seed)
    model = build_model(cell_type, n_inputs, size, n_outputs)
    if SETTINGS[dataset].get("zero_readout"):
        torch.nn.init.zeros_(model.readout.weight)
        torch.nn.init.zeros_(model.readout.bias)
    return model


def to_network(model, cell_type: str, metadata: dict) -> models.Network:
    """Export a :func:`build_model` module as a float32 :class:`testbench.models.Network`."""
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    net = models.from_state_dict(state, cell_type, prefix="rnn.")
    net.readout_weight = state["readout.weight"]
    net.readout_bias = state["readout.bias"]
    net.readout_mode = "last"
    net.metadata = metadata
    return net


def network_outputs(net: models.Network, x: np.ndarray, *, chunk: int = EVAL_CHUNK) -> np.ndarray:
    """Readout outputs of ``net`` over ``x`` ``(B, T, m)`` with :func:`kernels.network.forward`.

    Computed in float64 in chunks of ``chunk`` sequences; returns ``(B, n_out)`` float64.
    """
    from testbench.kernels.network import forward

    layers = [(la.W_ih, la.W_hh, la.b_ih, la.b_hh) for la in net.layers]
    parts = [forward(net.cell_type, layers, net.readout_weight, net.readout_bias, x[a:a + chunk],
                     readout_mode=net.readout_mode) for a in range(0, len(x), chunk)]
    return np.concatenate(parts)


def _check_args(dataset: str, size: int, seed: int, epochs, cell_type: str, max_train):
    if dataset not in D.DATASETS:
        raise DataError(f"unknown dataset '{dataset}'; valid: {', '.join(D.DATASETS)}")
    for name, value, low in (("size", size, 1), ("seed", seed, 0), ("epochs", epochs, 1),
                             ("max_train", max_train, 1)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < low):
            raise SettingsError(f"train: {name}={value!r} is out of range; rule: integer >= {low}")
    if cell_type not in CELL_TYPES:
        raise SettingsError(f"train: cell_type {cell_type!r} is not one of {', '.join(CELL_TYPES)}")


def train(dataset: str, size: int, seed: int, *, variant: str | None = None, epochs: int | None = None,
          out: str | Path | None = None, data_dir: str | Path | None = None, progress: bool = True,
          cell_type: str = "lstm", window: int | None = None, max_train: int | None = None
          ) -> tuple[Path, dict]:
    """Train one network on a benchmark and export it with its manifest entry.

    Parameters
    ----------
    dataset : str
        ``mnist``, ``co2``, ``sp500`` or ``protein`` (see :mod:`testbench.data`).
    size : int
        Cells in the recurrent layer, N >= 1.
    seed : int
        Seed of initialization and shuffling, >= 0.
    variant : str, optional
        Dataset variant (``None``: the default one).
    epochs : int, optional
        Passes over the training split (>= 1); defaults from :data:`SETTINGS` (MNIST nets above
        128 cells: 2).
    out : str or Path, optional
        Weights file to write; defaults to ``./<dataset>-<size>.h5``. The manifest entry is merged
        into ``manifest.json`` in the same folder (keyed by the file's stem).
    data_dir : str or Path, optional
        Data folder (see :func:`testbench.data.data_root`).
    progress : bool
        Show a tqdm progress bar over epochs.
    cell_type : str
        ``lstm`` (the zoo), ``gru``, ``rnn_tanh`` or ``rnn_relu``.
    window : int, optional
        Dataset window (see :func:`testbench.data.load`).
    max_train : int, optional
        Use only the first ``max_train`` training samples (for quick tests); val and test are whole.

    Returns
    -------
    path : Path
        The written weights file (written atomically: an interruption leaves no partial file).
    entry : dict
        The manifest entry (also stored as the file's metadata): name, dataset, variant, task, size,
        cell_type, seed, epochs, best_epoch, optimizer settings, window, normalization, metric,
        units, test_score, val_score, baseline (majority class or persistence on the test split),
        test_score_torch, data sha256, torch and numpy versions, wall_time_s.

    Raises
    ------
    DataError, SettingsError
        Unknown dataset/variant, out-of-range arguments, missing or corrupt data.
    """
    import torch

    _check_args(dataset, size, seed, epochs, cell_type, max_train)
    settings = dict(SETTINGS[dataset])
    if dataset == "mnist" and size > MNIST_SHORT_ABOVE:
        settings["epochs"] = MNIST_SHORT_EPOCHS
    settings["epochs"] = settings["epochs"] if epochs is None else int(epochs)
    ds = D.load(dataset, variant=variant, window=window, data_dir=data_dir)
    name = f"{dataset}-{size}"
    out = Path(out) if out is not None else Path.cwd() / f"{name}.h5"
    start = time.perf_counter()

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        model, best_epoch, torch_test = _fit(ds, size, seed, settings, cell_type, max_train, progress)
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])

    entry = {
        "name": name, "dataset": dataset, "variant": ds.variant, "task": ds.task,
        "size": int(size), "cell_type": cell_type, "num_layers": 1, "seed": int(seed),
        "epochs": settings["epochs"], "best_epoch": best_epoch, "max_train": max_train,
        "optimizer": {"name": "Adam", **{k: v for k, v in settings.items() if k != "epochs"},
                      "grad_clip_norm": GRAD_CLIP, "selection": "best validation score"},
        "window": ds.window, "input_size": ds.n_inputs, "n_outputs": ds.n_outputs,
        "readout_mode": "last", "normalization": ds.normalization,
        "metric": ds.metric, "units": ds.units,
        "data_sha256": ds.checksums, "torch_version": torch.__version__,
        "numpy_version": np.__version__,
    }
    net = to_network(model, cell_type, entry)
    entry["val_score"] = ds.score(network_outputs(net, ds.val.x), "val")
    entry["test_score"] = ds.score(network_outputs(net, ds.test.x), "test")
    entry["test_score_torch"] = torch_test
    entry["baseline"] = ds.baseline("test")
    entry["baseline_kind"] = "majority class" if ds.task == "classification" else "persistence"
    entry["score_ratio"] = entry["test_score"] / entry["baseline"] if entry["baseline"] else None
    entry["wall_time_s"] = round(time.perf_counter() - start, 2)
    net.metadata = entry
    path = models.save(net, out)
    update_manifest(entry, path.parent / MANIFEST)
    return path, entry


def _fit(ds: D.Dataset, size, seed, settings, cell_type, max_train, progress):
    """Adam on shuffled mini-batches; returns the best-validation model, its epoch, its torch test score."""
    import copy

    import torch
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    model = initial_model(ds.name, cell_type, ds.n_inputs, size, ds.n_outputs, seed)
    x = torch.from_numpy(ds.train.x[:max_train])
    y = torch.from_numpy(ds.train.y[:max_train])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"],
                           weight_decay=settings.get("weight_decay", 0.0))
    if settings["loss"] == "cross_entropy":
        loss_fn = torch.nn.CrossEntropyLoss()
    else:
        fn = getattr(torch.nn.functional, f"{settings['loss']}_loss")
        loss_fn = lambda out, target: fn(out[:, 0], target)  # noqa: E731

    def score(split):
        model.eval()
        s = ds.split(split)
        with torch.no_grad():
            outs = [model(torch.from_numpy(s.x[a:a + EVAL_CHUNK])).numpy()
                    for a in range(0, len(s), EVAL_CHUNK)]
        model.train()
        return ds.score(np.concatenate(outs), split)

    best, best_state, best_epoch = np.inf, None, 0.0
    per_epoch = settings.get("evals_per_epoch", 1)
    n_batches = -(-len(x) // settings["batch_size"])
    checks = {round(n_batches * (k + 1) / per_epoch) for k in range(per_epoch)}
    bar = tqdm(range(1, settings["epochs"] + 1), desc=f"{ds.name}-{size}", disable=not progress,
               unit="epoch")
    for epoch in bar:
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for batch in range(1, n_batches + 1):
            idx = order[(batch - 1) * settings["batch_size"]:batch * settings["batch_size"]]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            total += float(loss.detach()) * len(idx)
            if batch in checks:
                val = score("val")
                if val < best:
                    best, best_state = val, copy.deepcopy(model.state_dict())
                    best_epoch = round(epoch - 1 + batch / n_batches, 3)
        bar.set_postfix(loss=f"{total / len(x):.4f}", val=f"{val:.4f}", best=f"{best:.4f}")
    model.load_state_dict(best_state)
    return model, best_epoch, score("test")


def update_manifest(entry: dict, path: str | Path) -> Path:
    """Merge ``entry`` into the JSON manifest at ``path`` (keyed by ``entry["name"]``), atomically."""
    path = Path(path)
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest[entry["name"]] = entry
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(dict(sorted(manifest.items())), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def evaluate(weights: str | Path, *, data_dir: str | Path | None = None,
             trust_pickle: bool = False) -> dict:
    """Re-compute a trained network's test score from its weights file alone (NumPy forward).

    The dataset, variant, window and normalization constants are read from the file's metadata;
    the outputs come from :func:`kernels.network.forward` in float64.

    Parameters
    ----------
    weights : str or Path
        ``zoo:<name>`` or a weights file written by :func:`train` (or exported from one).
    data_dir : str or Path, optional
        Data folder (see :func:`testbench.data.data_root`).
    trust_pickle : bool
        Permit a PyTorch file that holds pickled Python objects, which runs code stored in it
        (see :func:`testbench.models.load`). Default False.

    Returns
    -------
    dict
        ``name``, ``dataset``, ``variant``, ``size``, ``metric``, ``units``, ``test_score``,
        ``baseline``, ``n_test``, ``recorded_score`` (the score stored at training time) and
        ``difference`` (``test_score - recorded_score``).

    Raises
    ------
    WeightsError
        The file lacks the metadata needed to rebuild its test set.
    DataError
        Missing or corrupt data files.
    """
    net = models.load(weights, trust_pickle=trust_pickle)
    meta = net.metadata
    missing = [k for k in (*models.testset.KEYS, "test_score") if k not in meta]
    if missing:
        raise WeightsError(
            f"{weights}: metadata lacks {', '.join(missing)}; evaluate needs the training "
            "metadata written by testbench.training.train. fix: retrain with `testbench train`"
        )
    ds = models.test_set(net, where=str(weights), data_dir=data_dir)
    score = ds.score(network_outputs(net, ds.test.x), "test")
    return {"name": meta.get("name"), "dataset": ds.name, "variant": ds.variant,
            "size": net.hidden_size, "metric": ds.metric, "units": ds.units, "test_score": score,
            "baseline": ds.baseline("test"), "n_test": len(ds.test),
            "recorded_score": meta["test_score"], "difference": score - meta["test_score"]}
