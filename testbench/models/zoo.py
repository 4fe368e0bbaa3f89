"""The model zoo: trained networks shipped as package data in ``testbench/zoo/``, and untrained
controls built on demand into a cache.

Each shipped network is ``<name>.h5`` (testbench weight format) with an entry in ``manifest.json``
(dataset, size, seed, training settings, data checksums, test score). A graph names one as
``zoo:<name>``.

The manifest also lists an **untrained control** ``<name>-init`` for every shipped network: the
same architecture and initialization as its training run (:func:`testbench.training.initial_model`
with the entry's seed, exported before any optimizer step; metadata ``network_variant: init``).
Controls are not shipped (package data stays small): ``testbench zoo build --controls``
(:func:`build_controls`) writes them, deterministically, into :func:`cache_folder`
(``$TESTBENCH_CACHE/zoo``, default ``~/.cache/testbench/zoo``). Their manifest entry (key
``build``) holds the expected :func:`digest`; ``zoo:<name>-init`` resolves only to a built file
whose digest matches, so a file built with a torch that initializes differently, or changed
since, is refused. :func:`control_entry` computes a control's manifest entry (when a network
joins the zoo).

The digest is the SHA-256 of the network's content (every array's name, dtype, shape and bytes, and
the metadata as sorted JSON), not of the HDF5 file: the same arrays written by another h5py/HDF5
version give other file bytes but the same digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from testbench.errors import WeightsError, did_you_mean

PREFIX = "zoo:"
MANIFEST = "manifest.json"
#: Environment variable naming the cache root; controls go to its ``zoo`` folder.
CACHE_ENV = "TESTBENCH_CACHE"
#: Manifest key of a network built on demand (its value: the kind, :data:`CONTROLS`).
BUILD = "build"
#: ``build`` value of the untrained controls.
CONTROLS = "controls"
#: Name suffix of an untrained control: ``co2-128`` -> ``co2-128-init``.
CONTROL_SUFFIX = "-init"
#: The command that builds the controls (for "fix:" hints).
BUILD_COMMAND = "testbench zoo build --controls"
#: Metadata keys a control copies from its trained network's manifest entry: what identifies the
#: task and its test set (so a control can be ablated), not the training outcome.
CONTROL_KEYS = ("cell_type", "data_sha256", "dataset", "input_size", "metric", "n_outputs",
                "normalization", "num_layers", "readout_mode", "seed", "size", "task", "units",
                "variant", "window")


def folder() -> Path:
    """Folder of the shipped model zoo (package data)."""
    return Path(str(resources.files("testbench") / "zoo"))


def manifest() -> dict:
    """The zoo manifest: ``{name: entry}`` (dataset, size, seed, training settings, scores...)."""
    path = folder() / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _plain(name: str) -> bool:
    return Path(name).name == name and not name.startswith(".")


def cache_root() -> Path:
    """testbench's cache root: ``$TESTBENCH_CACHE``, else ``~/.cache/testbench``. It holds the
    networks built on demand (``zoo``) and the node-output cache (``nodes``, :mod:`testbench.cache`)."""
    root = os.environ.get(CACHE_ENV, "").strip()
    return Path(root).expanduser() if root else Path.home() / ".cache" / "testbench"


def cache_folder() -> Path:
    """Folder of the networks built on demand: ``zoo`` in :func:`cache_root`."""
    return cache_root() / "zoo"


def shipped() -> list[str]:
    """Names of the shipped networks: manifest entries without ``build`` whose file is present."""
    where = folder()
    return sorted(name for name, e in manifest().items()
                  if _plain(name) and BUILD not in e and (where / f"{name}.h5").is_file())


def controls() -> list[str]:
    """Names of the untrained controls listed in the manifest (built or not)."""
    return sorted(name for name, e in manifest().items()
                  if _plain(name) and e.get(BUILD) == CONTROLS)


def names() -> list[str]:
    """Names usable as ``zoo:<name>``: the shipped networks and the controls of the manifest.

    Only plain names count (no path separator, no leading dot), so a ``zoo:`` reference never
    reaches a file outside the zoo or cache folder. A control resolves once built.
    """
    return sorted(shipped() + controls())


def example() -> str:
    """A valid ``zoo:<name>`` reference for "fix:" hints (``zoo:co2-128`` when the zoo is empty)."""
    return PREFIX + (names() or ["co2-128"])[0]


def name_of(source) -> str | None:
    """The zoo name of a ``zoo:<name>`` reference, else None (a file path)."""
    text = str(source)
    return text[len(PREFIX):] if text.startswith(PREFIX) else None


def resolve(name: str) -> Path:
    """The file of zoo network ``name``.

    Only names listed in the manifest resolve (see :func:`names`): a path (``zoo:/abs/path``,
    ``zoo:../x``) or an unknown name is refused, never looked up on disk. A control resolves to
    its file in :func:`cache_folder` once built and only while its digest matches the manifest.

    Raises
    ------
    WeightsError
        Unknown name, with a did-you-mean and the valid names; a control not built yet (the fix
        says to run ``testbench zoo build --controls``) or whose digest differs from the
        manifest's.
    """
    valid = names()
    if name not in valid:
        close = did_you_mean(name, valid)
        close = f"{close} " if close.startswith("did you mean") else ""
        raise WeightsError(
            f"no zoo network '{name}'; {close}a zoo reference is one of the "
            f"names listed in {folder() / MANIFEST}, never a path; valid names: "
            f"{', '.join(valid) or 'none (the zoo is not installed)'}; "
            "fix: use one of these names (`testbench zoo` lists them with their scores), or "
            "give the path of your own weights file without the 'zoo:' prefix"
        )
    entry = manifest()[name]
    if BUILD not in entry:
        return folder() / f"{name}.h5"
    path = cache_folder() / f"{name}.h5"
    if not path.is_file():
        raise WeightsError(
            f"zoo network '{name}' is an untrained control, built on demand and not shipped; it "
            f"is not built yet: {path} does not exist; fix: run `{BUILD_COMMAND}` (it writes to "
            f"${CACHE_ENV}/zoo, default ~/.cache/testbench/zoo)"
        )
    _check_digest(name, entry, path)
    return path


def digest(net) -> str:
    """SHA-256 (hex) of a network's content: every array's name, dtype, shape and bytes, in the
    order of the file format, and its metadata as sorted JSON (see the module docstring)."""
    from testbench.models.weights import ARRAYS, REVERSE_SUFFIX

    h = hashlib.sha256()

    def add(label: str, value) -> None:
        a = np.ascontiguousarray(value)
        h.update(f"{label}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())

    h.update(f"{net.cell_type};{net.readout_mode};".encode())
    for k, layer in enumerate(net.layers):
        reverse = tuple(a + REVERSE_SUFFIX for a in ARRAYS) if layer.bidirectional else ()
        for array in ARRAYS + reverse:
            add(f"layers/{k}/{array}", getattr(layer, array))
    if net.readout_weight is not None:
        add("readout/weight", net.readout_weight)
        add("readout/bias", net.readout_bias)
    h.update(json.dumps(net.metadata, sort_keys=True).encode())
    return h.hexdigest()


def _check_digest(name: str, entry: dict, path: Path) -> None:
    from testbench.models.weights import read_h5

    found = digest(read_h5(path))
    if found != entry.get("sha256"):
        raise WeightsError(
            f"{path}: the control '{name}' has digest {found}, the manifest expects "
            f"{entry.get('sha256')}; it was built with another torch than the manifest's "
            f"({entry.get('torch_version', '?')}), or changed since; rule: a zoo network is used "
            f"only as the manifest describes it; fix: delete the file and run `{BUILD_COMMAND}` "
            "with the torch version of constraints.txt"
        )


def control_network(trained: dict):
    """The untrained control of a shipped network, from its manifest entry ``trained``.

    :func:`testbench.training.initial_model` with the entry's dataset, cell type, sizes and seed,
    exported as float32; metadata: the entry's :data:`CONTROL_KEYS`, ``name`` = ``<name>-init``,
    ``network_variant`` = ``init`` and ``control_of`` = the trained network's name.

    Raises
    ------
    WeightsError
        torch is not installed.
    """
    from importlib.util import find_spec

    from testbench.models.grid import INIT
    from testbench.models.import_torch import INSTALL

    if find_spec("torch") is None:
        raise WeightsError(f"building the untrained control of '{trained['name']}' needs the "
                           f"optional dependency torch, which is not installed; fix: {INSTALL}")
    from testbench.training import initial_model, to_network

    meta = {k: trained[k] for k in CONTROL_KEYS if k in trained}
    meta.update(name=trained["name"] + CONTROL_SUFFIX, network_variant=INIT,
                control_of=trained["name"])
    model = initial_model(trained["dataset"], trained["cell_type"], trained["input_size"],
                          trained["size"], trained["n_outputs"], trained["seed"])
    return to_network(model, trained["cell_type"], meta)


def control_entry(trained: dict) -> dict:
    """The manifest entry of the untrained control of the shipped network whose entry is
    ``trained``: name, ``build``, ``control_of``, dataset, size, seed, cell type,
    ``network_variant``, the :func:`digest` of :func:`control_network` and the torch version that
    computed it. Needs torch."""
    import torch

    from testbench.models.grid import INIT

    return {"name": trained["name"] + CONTROL_SUFFIX, BUILD: CONTROLS,
            "control_of": trained["name"],
            "dataset": trained["dataset"], "size": trained["size"], "seed": trained["seed"],
            "cell_type": trained["cell_type"], "network_variant": INIT,
            "sha256": digest(control_network(trained)), "torch_version": torch.__version__}


def build_controls(selected=None, *, progress=None) -> list[Path]:
    """Build the untrained controls listed in the manifest into :func:`cache_folder`.

    Deterministic: the same manifest and torch give the same arrays (and :func:`digest`). A
    control already built with the expected digest is kept; any other file at its place is
    replaced (written aside, then moved).

    Parameters
    ----------
    selected : list of str, optional
        Control names (``co2-32-init``...); default every control of the manifest.
    progress : callable, optional
        Called with each control's name and path once it is in place.

    Returns
    -------
    list of Path
        The control files, in the order of ``selected``.

    Raises
    ------
    WeightsError
        An unknown control name (with a did-you-mean); a built control whose digest differs from
        the manifest's (the file is removed; torch initializes differently from the manifest's
        version).
    """
    from testbench.models.weights import save

    listed, entries = controls(), manifest()
    selected = listed if selected is None else list(selected)
    for name in selected:
        if name not in listed:
            close = did_you_mean(name, listed)
            raise WeightsError(
                f"no zoo control '{name}'; {close if close.startswith('did you mean') else ''} "
                f"controls of the manifest: {', '.join(listed) or 'none'}; fix: name one of them, "
                "or none to build all"
            )
    out = []
    for name in selected:
        entry, path = entries[name], cache_folder() / f"{name}.h5"
        try:
            _check_digest(name, entry, path)
        except (WeightsError, OSError):
            save(control_network(entries[entry["control_of"]]), path)
            try:
                _check_digest(name, entry, path)
            except WeightsError:
                path.unlink()
                raise
        if progress is not None:
            progress(name, path)
        out.append(path)
    return out
