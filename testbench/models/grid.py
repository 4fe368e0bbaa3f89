"""The network grid of a run: every network with its label and metadata, loaded once.

The DUT nodes, the ablation, training/evaluation and the report take their networks from
:func:`network_grid`, so a network is labelled, loaded and checksummed in one place.

Metadata keys read from a network's weights (``metadata`` of the testbench format, as written by
:func:`testbench.training.train`): ``name`` (default label), ``dataset``, ``seed`` (an integer;
the zoo manifest's entry for ``zoo:<name>``), ``network_variant`` (``trained``, ``init`` for an
untrained control, or a checkpoint name). The key ``variant`` is not used: it names the *dataset*
variant (``monthly``, ``row``...) the network was trained on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from testbench.errors import SettingsError, WeightsError
from testbench.models import zoo
from testbench.models.loading import checksum, read, resolve
from testbench.models.weights import Network

#: ``network_variant`` of a network whose metadata names none.
TRAINED = "trained"
#: ``network_variant`` of an untrained control (initial weights).
INIT = "init"

#: What ``network_grid`` takes: one reference, a list of them, or a mapping {label: reference}.
Sources = str | Path | list | Mapping


@dataclass(frozen=True)
class NetworkEntry:
    """One network of a run and what identifies it.

    Attributes
    ----------
    label : str
        Unique name of the network in the run: an explicit label, else the zoo name (``zoo:NAME``),
        else the metadata ``name``, else the file stem.
    source : str
        The reference as given (``zoo:co2-128``, a path).
    path : Path
        The file read.
    network : Network
        The loaded, validated network (not compared, not shown in ``repr``).
    dataset : str
        Metadata ``dataset``, else the file stem.
    seed : int or None
        Training seed (metadata ``seed``, or the zoo manifest's), None when unrecorded.
    variant : str
        ``trained`` (default), ``init`` (untrained control) or a checkpoint name (metadata
        ``network_variant``).
    checksum : str
        SHA-256 of the file, hex.
    """

    label: str
    source: str
    path: Path
    network: Network = field(compare=False, repr=False)
    dataset: str
    seed: int | None
    variant: str
    checksum: str

    @property
    def size(self) -> int:
        """Hidden size N (cells per layer)."""
        return self.network.hidden_size

    @property
    def cell_type(self) -> str:
        """``lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu``: the network's own cell type."""
        return self.network.cell_type

    @property
    def num_layers(self) -> int:
        """Recurrent layers of the network."""
        return len(self.network.layers)

    def describe(self) -> dict:
        """JSON-serializable provenance: label, source, path, dataset, size, seed, variant,
        cell_type, num_layers, sha256."""
        return {"label": self.label, "source": self.source, "path": str(self.path),
                "dataset": self.dataset, "size": self.size, "seed": self.seed,
                "variant": self.variant, "cell_type": self.cell_type,
                "num_layers": self.num_layers, "sha256": self.checksum}


def _pairs(sources: Sources) -> list[tuple[str | None, str]]:
    """``(explicit label or None, source)`` for each network named by ``sources``."""
    if isinstance(sources, (str, Path)):
        pairs = [(None, sources)]
    elif isinstance(sources, Mapping):
        pairs = list(sources.items())
        bad = [label for label, _ in pairs if not isinstance(label, str) or not label.strip()]
        if bad:
            raise SettingsError(
                f"setting 'weights': label {bad[0]!r} is not a non-empty text; rule: a mapping "
                "gives each network a label, {label: source}; fix: e.g. `weights: {a: x.h5, b: "
                "y.h5}`", setting="weights"
            )
    elif isinstance(sources, (list, tuple)):
        pairs = [(None, src) for src in sources]
    else:
        raise SettingsError(
            f"setting 'weights': {sources!r} is a {type(sources).__name__}; rule: a source, a list "
            "of sources or a mapping {label: source}; fix: e.g. `weights: zoo:co2-128`",
            setting="weights"
        )
    if not pairs:
        raise SettingsError(
            f"setting 'weights': {sources!r} names no network; fix: give a zoo name such as "
            f"'{zoo.example()}', a weights file path, a list of them or a mapping {{label: source}}",
            setting="weights"
        )
    for label, src in pairs:
        if not isinstance(src, (str, Path)):
            where = f"label {label!r}" if label is not None else "a list item"
            raise SettingsError(
                f"setting 'weights': {where} is {src!r}, not a weights reference; rule: each "
                f"source is a text such as '{zoo.example()}' or a file path; fix: give one",
                setting="weights"
            )
    return [(label, str(src)) for label, src in pairs]


def _seed(net: Network, source: str, path: Path) -> int | None:
    seed = net.metadata.get("seed")
    name = zoo.name_of(source)
    if seed is None and name is not None:
        seed = zoo.manifest().get(name, {}).get("seed")
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
        return seed
    raise WeightsError(
        f"{path}: metadata 'seed' is {seed!r}, expected an integer; fix: re-export the weights with "
        "an integer seed in their metadata (or none)"
    )


def _variant(net: Network, path: Path) -> str:
    variant = net.metadata.get("network_variant", TRAINED)
    if isinstance(variant, str) and variant.strip():
        return variant
    raise WeightsError(
        f"{path}: metadata 'network_variant' is {variant!r}, expected a non-empty text "
        f"('{TRAINED}', '{INIT}' or a checkpoint name); fix: re-export the weights with one"
    )


def network_grid(sources: Sources, *, layer=None, trust_pickle: bool = False) -> list[NetworkEntry]:
    """Load every network of a run, in the order given, each with a unique label and its metadata.

    Parameters
    ----------
    sources : str, Path, list of them, or mapping {label: source}
        Weights references (``zoo:<name>`` or files of any format :func:`testbench.models.load`
        reads). A mapping gives explicit labels.
    layer : str, sequence of str, or None
        Recurrent layer of foreign models to import (see :func:`testbench.models.load`).
    trust_pickle : bool
        Permit PyTorch files holding pickled Python objects (runs code stored in them). Default
        False.

    Returns
    -------
    list of NetworkEntry
        One per source, in the order given.

    Raises
    ------
    SettingsError
        An empty or malformed ``sources``; two networks with the same label (naming both files;
        ``setting`` is ``'weights'``).
    WeightsError
        A missing, unsafe or malformed file; a non-integer ``seed`` or empty ``network_variant``
        in the metadata.
    """
    entries: list[NetworkEntry] = []
    for label, src in _pairs(sources):
        path = resolve(src)
        digest = checksum(path)
        net = _read(path, digest, tuple(layer) if isinstance(layer, list) else layer, trust_pickle)
        if label is None:
            label = zoo.name_of(src) or str(net.metadata.get("name") or "") or path.stem
        twin = next((e for e in entries if e.label == label), None)
        if twin is not None:
            raise SettingsError(
                f"setting 'weights': {twin.source} ({twin.path}) and {src} ({path}) both get the "
                f"label '{label}' (from the zoo name, the metadata 'name' or the file stem); rule: "
                "each network of a run needs its own label; fix: give explicit labels, e.g. "
                f"`weights: {{a: {twin.source}, b: {src}}}`", setting="weights"
            )
        entries.append(NetworkEntry(
            label=label, source=src, path=path, network=net,
            dataset=str(net.metadata.get("dataset") or path.stem),
            seed=_seed(net, src, path), variant=_variant(net, path), checksum=digest,
        ))
    return entries


@functools.lru_cache(maxsize=64)
def _read(path: Path, digest: str, layer, trust_pickle: bool) -> Network:
    # one read per file content in a process: the preflight hook and the node of each DUT (and
    # of the ablation) ask for the same networks; keyed by the content's sha256, so a file
    # rewritten in place is read anew, and by trust_pickle, so a trusted read never serves an
    # untrusted one. Callers do not modify the networks they get.
    return read(path, layer=layer, trust_pickle=trust_pickle)
