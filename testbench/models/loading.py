"""One loader for every kind of weights reference: ``zoo:<name>``, testbench HDF5, PyTorch
``.pt``/``.pth``, Keras ``.h5``/``.keras`` and ONNX ``.onnx`` files; and :func:`export` to the
testbench format.

=========================  ==========================================================================
source                     supported
=========================  ==========================================================================
testbench HDF5 (``.h5``)   the project's format (:mod:`testbench.models.weights`), the zoo's files
PyTorch (``.pt``/``.pth``,  ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (tanh/relu): multi-layer,
module or state_dict)      ``bias=False``, bidirectional; refused: ``proj_size > 0``
Keras legacy HDF5          ``LSTM``, ``GRU`` (``reset_after=True``), ``SimpleRNN`` (tanh/relu), each
(``.h5``/``.hdf5``) and    optionally wrapped in ``Bidirectional``; refused: ``reset_after=False``,
Keras 3 ``.keras``         activations other than the defaults
ONNX (``.onnx``)           ``LSTM``, ``GRU`` (``linear_before_reset=1``), ``RNN`` (Tanh/Relu);
                           forward or bidirectional; refused: peepholes, ``clip``, ``input_forget``,
                           ``direction="reverse"``
=========================  ==========================================================================

Every importer returns a :class:`~testbench.models.weights.Network` in PyTorch layout and gate order,
so the simulator sees one format whatever the source; each carries its own cell type. HDF5, Keras and
ONNX files hold data only; a PyTorch file is read tensors-only unless ``trust_pickle`` is set (see
:mod:`testbench.models.import_torch`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from testbench.errors import SettingsError, WeightsError
from testbench.models import import_keras, import_onnx, import_torch, zoo
from testbench.models.weights import Network, open_h5, read_h5, save, validate

HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = (HDF5_SUFFIXES + import_torch.SUFFIXES + import_keras.ARCHIVE_SUFFIXES
            + import_onnx.SUFFIXES)


def sources(setting: str | list[str]) -> list[str]:
    """The ``weights`` setting of a node (one reference or a list) as a non-empty list.

    Raises
    ------
    SettingsError
        For an empty list.
    """
    refs = [setting] if isinstance(setting, (str, Path)) else list(setting)
    if not refs:
        raise SettingsError(
            f"setting 'weights': [] names no network; fix: give a zoo name such as "
            f"'{zoo.example()}', a weights file path, or a list of them", setting="weights"
        )
    return refs


def resolve(source: str | Path) -> Path:
    """Turn a weights reference (``zoo:<name>`` or a file path) into a readable regular file.

    Raises
    ------
    WeightsError
        Unknown zoo name (see :func:`testbench.models.zoo.resolve`); a path that does not exist,
        is a directory, is not a regular file (FIFO, socket, device) or cannot be read.
    """
    text = str(source)
    name = zoo.name_of(text)
    if name is not None:
        return zoo.resolve(name)
    path = Path(text).expanduser()
    if not text.strip() or path.is_dir() or not path.exists():
        what = ("the weights reference is empty" if not text.strip() else
                f"weights '{text}' is a directory, not a weights file" if path.is_dir() else
                f"weights file '{text}' does not exist")
        raise WeightsError(
            f"{what}; fix: give the path of a weights file ({', '.join(SUFFIXES)}) or a zoo name "
            f"such as '{zoo.example()}'"
        )
    if not path.is_file():
        raise WeightsError(
            f"weights '{text}' is not a regular file (a FIFO, socket or device, whose reading may "
            "never end); fix: copy the weights into a regular file and give its path"
        )
    if not os.access(path, os.R_OK):
        raise WeightsError(
            f"weights file '{text}' cannot be read (permission denied); fix: make it readable "
            f"(chmod u+r '{text}') or copy it to a file you can read"
        )
    return path


def checksum(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def kind(path: Path) -> str:
    """The format of a weights file: ``testbench``, ``torch``, ``keras-h5``, ``keras`` or ``onnx``.

    Chosen by suffix (``.pt``/``.pth``, ``.keras``, ``.onnx``); an HDF5 file (by suffix or content)
    is ``testbench`` when it has a root attribute ``format`` (:func:`~.weights.read_h5` checks
    that it is ``"testbench-weights"``), else ``keras-h5``.

    Raises
    ------
    WeightsError
        An unknown suffix on a file that is not HDF5; an ``.h5`` file that is not readable HDF5.
    """
    import h5py

    suffix = path.suffix.lower()
    if suffix in import_torch.SUFFIXES:
        return "torch"
    if suffix in import_keras.ARCHIVE_SUFFIXES:
        return "keras"
    if suffix in import_onnx.SUFFIXES:
        return "onnx"
    if suffix in HDF5_SUFFIXES or h5py.is_hdf5(path):
        with open_h5(path) as f:  # Keras files carry no 'format'; read_h5 refuses other formats
            return "keras-h5" if "format" not in f.attrs else "testbench"
    raise WeightsError(
        f"{path}: unknown weights format (suffix {suffix!r}); supported: {', '.join(SUFFIXES)}; "
        "fix: rename the file with the suffix of its format"
    )


def read(path: Path, *, layer: str | Sequence[str] | None = None,
         trust_pickle: bool = False) -> Network:
    """Read and validate the network of an already resolved file (see :func:`load`)."""
    fmt = kind(path)
    if fmt == "testbench":
        if layer is not None:
            raise WeightsError(
                f"{path}: layer={layer!r} given for a testbench weights file, which holds one "
                "network; fix: drop layer"
            )
        net = read_h5(path)
    elif fmt == "torch":
        if not (layer is None or isinstance(layer, str)):
            raise WeightsError(
                f"{path}: layer={list(layer)!r}: a PyTorch layer is chosen by one attribute name "
                "(its nn.LSTM/GRU/RNN already holds all stacked layers); fix: pass a single name"
            )
        net = import_torch.load_torch(path, layer=layer, trust_pickle=trust_pickle)
    elif fmt == "keras":
        net = import_keras.load_keras_archive(path, layer=layer)
    elif fmt == "keras-h5":
        net = import_keras.load_keras_h5(path, layer=layer)
    else:
        net = import_onnx.load_onnx(path, node=layer)
    validate(net, str(path))
    return net


def load(source: str | Path, *, layer: str | Sequence[str] | None = None,
         trust_pickle: bool = False) -> Network:
    """Load and validate a network from ``zoo:<name>`` or any supported file (see the table above).

    Every array is checked: shapes must agree with the declared sizes, and NaN/Inf values are
    refused (a simulation of them would silently produce NaN metrics).

    Parameters
    ----------
    source : str or Path
        ``zoo:<name>`` or a file path (see :func:`resolve`).
    layer : str, sequence of str, or None
        Which recurrent layer of a foreign model to import: a PyTorch attribute path
        (``"encoder.lstm"``), Keras layer name(s) or ONNX node name(s), several bottom first to
        stack them. Needed only when the model holds several; must be None for testbench files.
    trust_pickle : bool
        Only for ``.pt``/``.pth`` files: permit unpickling Python objects (a whole ``nn.Module``),
        which runs code stored in the file; see :func:`testbench.models.import_torch.load_torch`.
        Default False: tensors only.

    Returns
    -------
    Network
        With its own cell type, and the file's metadata (imported files record their source).

    Raises
    ------
    WeightsError
        Naming the file, the dataset inside it, what was found and the fix.
    """
    return read(resolve(source), layer=layer, trust_pickle=trust_pickle)


def export(source: str | Path, out: str | Path, *, layer: str | Sequence[str] | None = None,
           trust_pickle: bool = False) -> Path:
    """Convert any supported model file to the testbench HDF5 format.

    Parameters
    ----------
    source : str or Path
        Model file or ``zoo:<name>`` (see :func:`load`).
    out : str or Path
        Destination ``.h5`` path; parent folders are created.
    layer : str, sequence of str, or None
        Recurrent layer (or ONNX node) to export, see :func:`load`.
    trust_pickle : bool
        Permit unpickling a PyTorch file's Python objects (runs code stored in it), see
        :func:`load`. Default False.

    Returns
    -------
    Path
        The written file; its ``metadata`` records the source file, format and layer, and the
        source's SHA-256.
    """
    path = resolve(source)
    net = read(path, layer=layer, trust_pickle=trust_pickle)
    net.metadata["source_sha256"] = checksum(path)
    return save(net, out)
