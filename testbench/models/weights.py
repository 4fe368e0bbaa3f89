"""The project's HDF5 weight format: the :class:`Network` it holds, its writer and its reader.

Loading by reference (``zoo:<name>``, any supported file) is :func:`testbench.models.load`.

Format (``format = "testbench-weights"``, ``format_version = 1``)
-----------------------------------------------------------------
Root attributes:

``format`` (str), ``format_version`` (int), ``cell_type`` (``lstm`` | ``gru`` | ``rnn_tanh`` |
``rnn_relu``), ``input_size`` (int, m), ``hidden_size`` (int, N), ``num_layers`` (int),
``bidirectional`` (bool; absent in older files, meaning False),
``metadata`` (JSON text: dataset, variant, task, seed, training settings, scores...).

Groups:

``/layers/<k>`` for k = 0..num_layers-1, each with datasets (PyTorch layout and gate order)

* ``W_ih`` shape ``(G*N, m_k)`` -- input weights (m_0 = input_size, m_k = D*N for k > 0, where
  D = 2 for a bidirectional network, else 1: a layer reads both directions of the layer below,
  concatenated forward first),
* ``W_hh`` shape ``(G*N, N)`` -- recurrent weights,
* ``b_ih``, ``b_hh`` shape ``(G*N,)`` -- biases (zeros for ``bias=False`` layers),

* ``W_ih_reverse``, ``W_hh_reverse``, ``b_ih_reverse``, ``b_hh_reverse`` -- only when
  ``bidirectional`` is true: the same four arrays, same shapes, for the direction that reads the
  sequence from its last step to its first (PyTorch's ``*_reverse`` parameters),

where G = 4 for LSTM (gate order i, f, g, o), 3 for GRU (r, z, n), 1 for vanilla RNN; the layer
attribute ``gate_order`` spells the order (``"ifgo"``, ``"rzn"``, ``"h"``).

``/readout`` (optional): ``weight`` ``(n_out, D*N)`` and ``bias`` ``(n_out,)`` of the linear layer that
reads the last layer's hidden state (both directions concatenated, forward first, when D = 2);
attribute ``mode`` = ``"last"`` (read at the last step) or ``"every"`` (read at every step).

Arrays are float32 or float64; they are loaded as stored.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testbench.errors import WeightsError, did_you_mean
from testbench.kernels.celltypes import CELL_TYPES

FORMAT = "testbench-weights"
FORMAT_VERSION = 1
GATES = {name: ct.gates for name, ct in CELL_TYPES.items()}
ARRAYS = ("W_ih", "W_hh", "b_ih", "b_hh")
REVERSE_SUFFIX = "_reverse"


@dataclass
class Layer:
    """One recurrent layer in PyTorch layout (see the module docstring for shapes).

    The ``*_reverse`` arrays hold the backward direction of a bidirectional layer (same shapes as
    the forward ones); they are all ``None`` for a unidirectional layer.
    """

    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    W_ih_reverse: np.ndarray | None = None
    W_hh_reverse: np.ndarray | None = None
    b_ih_reverse: np.ndarray | None = None
    b_hh_reverse: np.ndarray | None = None

    @property
    def bidirectional(self) -> bool:
        """True when the layer holds reverse-direction arrays."""
        return self.W_ih_reverse is not None


@dataclass
class Network:
    """A recurrent network: stacked layers, an optional linear readout and metadata.

    Attributes
    ----------
    cell_type : str
        ``lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu``.
    layers : list of Layer
    readout_weight, readout_bias : ndarray or None
        Linear readout ``(n_out, N)`` and ``(n_out,)``.
    readout_mode : str
        ``"last"`` or ``"every"``.
    metadata : dict
        Free-form, JSON-serializable (dataset, variant, task, seed, scores...).
    """

    cell_type: str
    layers: list[Layer]
    readout_weight: np.ndarray | None = None
    readout_bias: np.ndarray | None = None
    readout_mode: str = "last"
    metadata: dict = field(default_factory=dict)

    @property
    def gates(self) -> int:
        """Number of gates G per cell."""
        return len(GATES[self.cell_type])

    @property
    def hidden_size(self) -> int:
        """Cells per layer, N."""
        return self.layers[0].W_hh.shape[1]

    @property
    def input_size(self) -> int:
        """Input channels of the first layer, m."""
        return self.layers[0].W_ih.shape[1]

    @property
    def directions(self) -> int:
        """Directions D per layer: 2 for a bidirectional network, else 1."""
        return 2 if self.layers[0].bidirectional else 1


def save(net: Network, path: str | Path) -> Path:
    """Write ``net`` to ``path`` in the testbench HDF5 format (atomically: write aside, then move).

    Parameters
    ----------
    net : Network
    path : str or Path
        Destination ``.h5`` file; parent folders are created.

    Returns
    -------
    Path
        The written path.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            cell_type=net.cell_type,
            input_size=net.input_size,
            hidden_size=net.hidden_size,
            num_layers=len(net.layers),
            bidirectional=net.directions == 2,
            metadata=json.dumps(net.metadata, sort_keys=True),
        )
        for k, layer in enumerate(net.layers):
            g = f.create_group(f"layers/{k}")
            g.attrs["gate_order"] = GATES[net.cell_type]
            names = ARRAYS + tuple(a + REVERSE_SUFFIX for a in ARRAYS) if layer.bidirectional else ARRAYS
            for name in names:
                g.create_dataset(name, data=np.asarray(getattr(layer, name)))
        if net.readout_weight is not None:
            r = f.create_group("readout")
            r.attrs["mode"] = net.readout_mode
            r.create_dataset("weight", data=np.asarray(net.readout_weight))
            r.create_dataset("bias", data=np.asarray(net.readout_bias))
    os.replace(tmp, path)
    return path


@contextmanager
def open_h5(path, where: str | None = None):
    """Context manager: an HDF5 file open for reading.

    Parameters
    ----------
    path : Path or file-like
        The file, or a binary file object (an HDF5 file inside an archive).
    where : str, optional
        How error messages name the file; default ``str(path)``.

    Yields
    ------
    h5py.File

    Raises
    ------
    WeightsError
        When the file is not HDF5, is empty or truncated, or a read inside the ``with`` block
        fails (a damaged file).
    """
    import h5py

    where = str(path) if where is None else where
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(
            f"{where}: not a readable HDF5 file ({exc}); fix: check the file (an empty or truncated "
            "copy cannot be read); a file of another format needs its own suffix: .pt/.pth "
            "(PyTorch), .keras (Keras archive), .onnx (ONNX)"
        ) from exc
    with f:
        try:
            yield f
        except OSError as exc:  # h5py reports damaged chunks and metadata as OSError
            raise WeightsError(
                f"{where}: reading the HDF5 file failed ({exc}); the file is damaged; fix: export "
                "or copy the weights again"
            ) from exc


#: What a non-numeric HDF5 dataset holds, by NumPy dtype kind, for error messages.
_NOT_NUMBERS = {"O": "text or objects", "S": "text", "U": "text", "b": "booleans",
                "V": "records", "c": "complex numbers", "M": "dates", "m": "durations"}


def h5_array(group, name: str, where: str) -> np.ndarray:
    """Read dataset ``name`` of an open HDF5 ``group`` as a numeric array.

    Parameters
    ----------
    group : h5py.Group
    name : str
        Path of the dataset inside ``group``.
    where : str
        Prefix of error messages (the file).

    Raises
    ------
    WeightsError
        When ``name`` is missing, is not a dataset or holds non-numeric data (strings, objects,
        compound records). Call it inside :func:`open_h5`, which reports damaged data.
    """
    import h5py

    label = f"{where}: dataset '{group.name.rstrip('/')}/{name}'"
    obj = group.get(name)
    if not isinstance(obj, h5py.Dataset):
        found = "is missing" if obj is None else f"is a {type(obj).__name__}, not a dataset"
        raise WeightsError(f"{label} {found}; fix: re-export the weights")
    if obj.dtype.kind not in "fiu":
        raise WeightsError(
            f"{label} holds {_NOT_NUMBERS.get(obj.dtype.kind, 'non-numeric data')} (dtype "
            f"{obj.dtype}) where an array of real numbers (float32/float64) is expected; fix: "
            "re-export the weights"
        )
    return obj[()]


def _int_attr(attrs, name: str, default: int, where: str) -> int:
    value = attrs.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{where}: attribute {name!r} is {value!r}, expected an integer; fix: re-export the "
            "weights"
        ) from exc


def read_h5(path: Path) -> Network:
    """Read a testbench-format HDF5 file (see the module docstring) without validating it.

    Most callers want :func:`testbench.models.load`, which resolves the reference and validates
    the arrays.

    Raises
    ------
    WeightsError
        Not a readable HDF5 file, another format, a missing or non-numeric dataset, malformed
        attributes.
    """
    import h5py

    with open_h5(path) as f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise WeightsError(
                f"{path}: attribute 'format' is {fmt!r}, expected {FORMAT!r}; this is not a testbench "
                "weights file; fix: convert it with `testbench export`"
            )
        version = _int_attr(f.attrs, "format_version", -1, str(path))
        if version != FORMAT_VERSION:
            raise WeightsError(
                f"{path}: format_version {version} is not supported (this version reads "
                f"{FORMAT_VERSION}); fix: re-export the weights with this version of testbench"
            )
        cell_type = str(f.attrs.get("cell_type", ""))
        if cell_type not in GATES:
            raise WeightsError(
                f"{path}: cell_type {cell_type!r} is not supported; valid: {', '.join(GATES)}"
            )
        num_layers = _int_attr(f.attrs, "num_layers", 0, str(path))
        bidirectional = bool(f.attrs.get("bidirectional", False))
        names = ARRAYS + tuple(a + REVERSE_SUFFIX for a in ARRAYS) if bidirectional else ARRAYS
        layers = []
        for k in range(num_layers):
            grp = f.get(f"layers/{k}")
            if not isinstance(grp, h5py.Group):
                raise WeightsError(
                    f"{path}: num_layers is {num_layers} but group 'layers/{k}' is missing; "
                    "fix: re-export the weights"
                )
            arrays = {}
            for name in names:
                if name not in grp:
                    why = " (the file says bidirectional=True)" if name.endswith(REVERSE_SUFFIX) else ""
                    raise WeightsError(
                        f"{path}: dataset 'layers/{k}/{name}' is missing{why}; fix: re-export the "
                        "weights"
                    )
                arrays[name] = h5_array(grp, name, str(path))
            layers.append(Layer(**arrays))
        try:
            metadata = json.loads(f.attrs.get("metadata", "{}"))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise WeightsError(f"{path}: attribute 'metadata' is not valid JSON: {exc}") from exc
        if not isinstance(metadata, dict):
            raise WeightsError(
                f"{path}: attribute 'metadata' holds a JSON {type(metadata).__name__}, expected an "
                "object ({...}); fix: re-export the weights"
            )
        net = Network(cell_type, layers, metadata=metadata)
        readout = f.get("readout")
        if readout is not None:
            if not isinstance(readout, h5py.Group):
                raise WeightsError(f"{path}: 'readout' is a {type(readout).__name__}, expected a "
                                   "group holding 'weight' and 'bias'; fix: re-export the weights")
            net.readout_weight = h5_array(readout, "weight", str(path))
            net.readout_bias = h5_array(readout, "bias", str(path))
            net.readout_mode = str(readout.attrs.get("mode", "last"))
        declared = (_int_attr(f.attrs, "input_size", -1, str(path)),
                    _int_attr(f.attrs, "hidden_size", -1, str(path)))
    square = layers and np.ndim(layers[0].W_ih) == np.ndim(layers[0].W_hh) == 2  # else: validate
    if square and declared != (net.input_size, net.hidden_size):
        raise WeightsError(
            f"{path}: attributes say input_size={declared[0]}, hidden_size={declared[1]} but "
            f"layers/0 holds input_size={net.input_size}, hidden_size={net.hidden_size}; "
            "fix: re-export the weights"
        )
    return net


def validate(net: Network, where: str = "<network>") -> None:
    """Check shapes and finiteness of every array of ``net``.

    Raises
    ------
    WeightsError
        On the first array with a wrong shape or a NaN/Inf value, naming it, and when some layers
        are bidirectional and others are not.
    """
    if not net.layers:
        raise WeightsError(f"{where}: the network has no layers; fix: export at least one layer")
    if net.cell_type not in GATES:
        raise WeightsError(
            f"{where}: cell_type {net.cell_type!r} is not supported; "
            + did_you_mean(net.cell_type, GATES)
        )
    for name in ("W_ih", "W_hh"):
        shape = np.shape(getattr(net.layers[0], name))
        if len(shape) != 2 or 0 in shape:
            raise WeightsError(
                f"{where}: layers/0/{name} has shape {shape}, expected a non-empty matrix (2 dims); "
                "fix: re-export the weights"
            )
    G, N, D = net.gates, net.hidden_size, net.directions
    for k, layer in enumerate(net.layers):
        reverse = [a + REVERSE_SUFFIX for a in ARRAYS if getattr(layer, a + REVERSE_SUFFIX) is not None]
        if len(reverse) not in (0, len(ARRAYS)) or (len(reverse) == len(ARRAYS)) != (D == 2):
            raise WeightsError(
                f"{where}: layers/{k} holds reverse arrays {reverse or 'none'} but layers/0 is "
                f"{'bi' if D == 2 else 'uni'}directional; every layer must hold all four "
                f"*{REVERSE_SUFFIX} arrays or none; fix: re-export the weights"
            )
        m = net.input_size if k == 0 else D * N
        expected = {"W_ih": (G * N, m), "W_hh": (G * N, N), "b_ih": (G * N,), "b_hh": (G * N,)}
        if D == 2:
            expected.update({a + REVERSE_SUFFIX: shape for a, shape in list(expected.items())})
        for name, shape in expected.items():
            arr = np.asarray(getattr(layer, name))
            if arr.shape != shape:
                raise WeightsError(
                    f"{where}: layers/{k}/{name} has shape {arr.shape}, expected {shape} for a "
                    f"{net.cell_type} layer of {N} cells with {m} inputs ({D} direction(s), gate order "
                    f"{GATES[net.cell_type]}); fix: re-export the weights"
                )
            bad = ~np.isfinite(arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise WeightsError(
                    f"{where}: layers/{k}/{name} holds {int(bad.sum())} non-finite value(s) "
                    f"(first at index {idx}: {arr[idx]}); the simulator refuses NaN/Inf weights. "
                    "fix: retrain or repair the network"
                )
    if net.readout_weight is not None:
        w = np.asarray(net.readout_weight)
        if w.ndim != 2 or w.shape[1] != D * N:
            raise WeightsError(
                f"{where}: readout/weight has shape {w.shape}, expected (n_out, {D * N}); "
                "fix: re-export the weights"
            )
        b = np.asarray(net.readout_bias)
        if b.shape != (w.shape[0],):
            raise WeightsError(
                f"{where}: readout/bias has shape {b.shape}, expected ({w.shape[0]},) to match "
                f"readout/weight {w.shape}; fix: re-export the weights"
            )
        for name, arr in (("readout/weight", w), ("readout/bias", b)):
            if not np.isfinite(arr).all():
                raise WeightsError(
                    f"{where}: {name} holds {int((~np.isfinite(arr)).sum())} non-finite value(s); "
                    "the simulator refuses NaN/Inf weights; fix: retrain or repair the network"
                )


def from_state_dict(state: dict, cell_type: str = "lstm", *, prefix: str = "") -> Network:
    """Build a :class:`Network` from PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` state_dict arrays.

    Parameters
    ----------
    state : dict
        Mapping of names to arrays or tensors, with keys ``{prefix}weight_ih_l{k}``,
        ``{prefix}weight_hh_l{k}`` and optionally ``{prefix}bias_ih_l{k}``, ``{prefix}bias_hh_l{k}``
        (absent for ``bias=False``), and the same keys ending in ``_reverse`` for a bidirectional
        module.
    cell_type : str
        ``lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu``.
    prefix : str
        Key prefix of the recurrent module inside a larger model's state_dict (e.g. ``"rnn."``).
    """
    def arr(key):
        v = state[key]
        return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)

    def direction(k, suffix):
        keys = [f"{prefix}{w}_l{k}{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        W_ih, W_hh = arr(keys[0]), arr(keys[1])
        biases = [arr(key) if key in state else np.zeros(W_ih.shape[0], W_ih.dtype) for key in keys[2:]]
        return [W_ih, W_hh, *biases]

    layers = []
    k = 0
    while f"{prefix}weight_ih_l{k}" in state:
        arrays = direction(k, "")
        if f"{prefix}weight_ih_l{k}{REVERSE_SUFFIX}" in state:
            arrays += direction(k, REVERSE_SUFFIX)
        layers.append(Layer(*arrays))
        k += 1
    if not layers:
        raise WeightsError(
            f"no '{prefix}weight_ih_l0' in the state_dict (keys: {', '.join(list(state)[:8])}...); "
            "fix: pass the recurrent layer's state_dict or its key prefix"
        )
    return Network(cell_type, layers)
