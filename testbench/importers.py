"""Import the recurrent layers of models people have: PyTorch, Keras (HDF5) and ONNX.

Every importer returns a :class:`testbench.weights.Network` in PyTorch layout and gate order (see
:mod:`testbench.weights`), so the simulator sees one format whatever the source. The mapping of each
framework's layout is documented on its function; every mapping is tested by checking that the
imported arrays reproduce the source layer's output.

=========================  ==========================================================================
source                     supported
=========================  ==========================================================================
PyTorch (``.pt``/``.pth``,  ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (tanh/relu): multi-layer,
module or state_dict)      ``bias=False``, bidirectional; refused: ``proj_size > 0``
Keras legacy HDF5          ``LSTM``, ``GRU`` (``reset_after=True``), ``SimpleRNN`` (tanh/relu), each
(``.h5``/``.hdf5``)        optionally wrapped in ``Bidirectional``; refused: ``reset_after=False``,
                           activations other than the defaults
ONNX (``.onnx``)           ``LSTM``, ``GRU`` (``linear_before_reset=1``), ``RNN`` (Tanh/Relu);
                           forward or bidirectional; refused: peepholes, ``clip``, ``input_forget``,
                           ``direction="reverse"``
=========================  ==========================================================================

torch and onnx are optional dependencies, imported only when used.

Untrusted files: a PyTorch file is read with ``torch.load(weights_only=True)``, which runs no code
stored in the file. A file that holds pickled Python objects (a whole ``nn.Module`` saved with
``torch.save(model)``) is refused unless ``trust_pickle=True`` is passed, which runs that code and
emits a :class:`TrustedPickleWarning`. HDF5 and ONNX files hold data only.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from testbench import weights
from testbench.errors import WeightsError, did_you_mean
from testbench.kernels.celltypes import BY_TORCH_MODE
from testbench.weights import Layer, Network

TORCH_INSTALL = "pip install 'testbench[torch]'"
ONNX_INSTALL = "pip install 'testbench[onnx]'"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TORCH_SUFFIXES = (".pt", ".pth")
HDF5_SUFFIXES = (".h5", ".hdf5")
ONNX_SUFFIXES = (".onnx",)


# --------------------------------------------------------------------------------------- helpers
def _pick(candidates: Mapping[str, object], wanted: str | None, where: str, kind: str, option: str,
          hint: str = ""):
    """Return ``(name, candidate)`` chosen by ``wanted``; errors list the available names."""
    shown = ", ".join(repr(n) for n in candidates) or "none"
    if not candidates:
        raise WeightsError(
            f"{where}: no {kind} found; supported: LSTM, GRU and vanilla RNN layers{hint}; fix: "
            "point at a file or object that holds one"
        )
    if wanted is None:
        if len(candidates) == 1:
            return next(iter(candidates.items()))
        raise WeightsError(
            f"{where}: {len(candidates)} {kind}s found ({shown}) and {option}= was not given; "
            f"fix: choose one, e.g. {option}={next(iter(candidates))!r}"
        )
    if wanted not in candidates:
        raise WeightsError(
            f"{where}: no {kind} named {wanted!r}; {did_you_mean(wanted, candidates)}; "
            f"available: {shown}"
        )
    return wanted, candidates[wanted]


def _reorder(arr: np.ndarray, order: Sequence[int], hidden: int) -> np.ndarray:
    """Permute the gate blocks (of ``hidden`` rows each) along axis 0 of ``arr``."""
    return np.concatenate([arr[g * hidden:(g + 1) * hidden] for g in order], axis=0)


def _stack(parts: list[tuple[str, Network]], where: str) -> Network:
    """Stack single-layer networks named ``parts`` (bottom first) into one network, checking sizes."""
    name0, net = parts[0]
    layers = list(net.layers)
    for name, nxt in parts[1:]:
        expected = net.directions * net.hidden_size
        same_kind = (nxt.cell_type, nxt.directions) == (net.cell_type, net.directions)
        if not same_kind or nxt.input_size != expected:
            raise WeightsError(
                f"{where}: cannot stack {name!r} ({nxt.cell_type}, {nxt.directions} direction(s), "
                f"{nxt.input_size} inputs) on {name0!r} ({net.cell_type}, {net.directions} "
                f"direction(s), {expected} outputs); the layers of a stack must share cell type and "
                "directions, and each must read the outputs of the one below; fix: list layers that "
                "form such a stack, bottom first"
            )
        layers.extend(nxt.layers)
    return Network(net.cell_type, layers, metadata=dict(net.metadata))


def _names(layer: str | Sequence[str] | None) -> list[str] | None:
    return None if layer is None else [layer] if isinstance(layer, str) else list(layer)


# --------------------------------------------------------------------------------------- PyTorch
def _torch(where: str):
    try:
        import torch
    except ImportError as exc:
        raise WeightsError(
            f"{where}: reading PyTorch weights needs the optional dependency torch, which is not "
            f"installed; fix: {TORCH_INSTALL}"
        ) from exc
    return torch


class TrustedPickleWarning(UserWarning):
    """A weights file was unpickled with ``trust_pickle``: code stored in it has run."""


PICKLE_FIX = (
    "fix: save the weights with torch.save(model.state_dict(), path) and load that file; or, only "
    "for a file you trust, set `trust_pickle: true` in the graph's DUT or ablation node (or pass "
    "`--trust-pickle` to `testbench export` / `testbench evaluate`)"
)


def _unpickler_reason(exc: Exception) -> str:
    """The one useful sentence of torch's long ``weights_only`` refusal message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch bolds parts with ANSI codes
    m = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Please use|Check the documentation|$)",
                  text, re.S)
    return " ".join((m.group(1) if m else text.strip().splitlines()[0] if text.strip() else "").split())


def _torch_load(path: Path, trust_pickle: bool):
    """``torch.load`` a file safely (``weights_only=True``); unpickle objects only when trusted."""
    torch = _torch(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if not re.search(r"\b(global|class)\b", reason, re.I):  # torch 2.4+: global, 2.1: class
            raise WeightsError(
                f"{path}: not a PyTorch weights file that torch.load can read ({reason}); fix: "
                "check the file (a complete copy?) or save it with torch.save(model.state_dict(), "
                "path)"
            ) from exc
        if not trust_pickle:
            raise WeightsError(
                f"{path}: the file holds pickled Python objects ({reason}), such as a whole "
                "nn.Module saved with torch.save(model); unpickling them can run arbitrary code "
                f"stored in the file, so testbench loads tensors only; {PICKLE_FIX}"
            ) from exc
    # weights_only=True runs no code from the file, so any failure is a damaged or foreign file
    except Exception as exc:  # noqa: BLE001 - torch raises KeyError, EOFError, RuntimeError...
        raise WeightsError(
            f"{path}: torch.load cannot read the file ({type(exc).__name__}: {exc}); it is not a "
            "PyTorch file or is damaged; fix: check the file, or save it again with "
            "torch.save(model.state_dict(), path)"
        ) from exc
    warnings.warn(
        f"{path}: unpickling Python objects because trust_pickle is set; this runs code stored in "
        "the file. Use it only for files you trust; a state_dict needs no trust",
        TrustedPickleWarning, stacklevel=2,
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - arbitrary pickle code may raise anything
        raise WeightsError(
            f"{path}: torch.load(weights_only=False) failed: {type(exc).__name__}: {exc}; fix: "
            "make the model's classes importable, or save `model.state_dict()` instead"
        ) from exc


def _flatten(obj: Mapping, prefix: str = "") -> dict:
    """Flatten nested mappings (checkpoints such as ``{"model": state_dict, "epoch": 3}``)."""
    flat = {}
    for key, value in obj.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif hasattr(value, "detach") or isinstance(value, np.ndarray):
            flat[f"{prefix}{key}"] = value
    return flat


def _as_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _linear_readout(net: Network, linears: dict[str, tuple]) -> None:
    """Attach the only linear layer whose input width equals the network's output width, if any."""
    width = net.directions * net.hidden_size
    fits = {name: wb for name, wb in linears.items() if wb[0].ndim == 2 and wb[0].shape[1] == width}
    if len(fits) == 1:
        name, (w, b) = next(iter(fits.items()))
        net.readout_weight = w
        net.readout_bias = np.zeros(w.shape[0], w.dtype) if b is None else b
        net.metadata["readout_layer"] = name
    elif fits:
        net.metadata["readout_candidates"] = sorted(fits)


def load_torch(
    path_or_obj,
    *,
    layer: str | None = None,
    rnn_nonlinearity: str | None = None,
    trust_pickle: bool = False,
) -> Network:
    """Import an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` layer from PyTorch.

    Parameters
    ----------
    path_or_obj : str, Path, torch.nn.Module or Mapping
        A recurrent module, a model that contains one, a state_dict (also nested in a checkpoint
        dict such as ``{"model": state_dict}``), or a ``.pt``/``.pth`` file written by
        ``torch.save`` of any of these. A file is read with ``torch.load(weights_only=True)``
        (tensors only: no code from the file runs). A file that needs more (a whole pickled
        module) is refused unless ``trust_pickle`` is set.
    layer : str or None
        Attribute path of the recurrent layer inside the model (``"rnn"``, ``"encoder.lstm"``),
        as in ``model.named_modules()`` or the state_dict key prefix without the final dot.
        Needed only when the model holds several recurrent layers.
    rnn_nonlinearity : {"tanh", "relu"} or None
        Only for a state_dict of an ``nn.RNN``, which does not record its nonlinearity; modules
        and files of whole modules record it themselves.
    trust_pickle : bool
        Only for a file that ``weights_only=True`` refuses: read it again with
        ``weights_only=False``, which **executes the pickle code in the file**, and emit a
        :class:`TrustedPickleWarning`. Set it only for files you trust. Default False.

    Returns
    -------
    Network
        All layers (and both directions) of the chosen module, in PyTorch layout; ``bias=False``
        layers get zero biases. The readout is the model's only ``nn.Linear`` whose
        ``in_features`` equals the recurrent output width (``D*N``); when there is none or more
        than one, the readout stays empty (candidates are listed in ``metadata``).

    Raises
    ------
    WeightsError
        torch missing, unreadable file, pickled objects without ``trust_pickle``, no or
        ambiguous recurrent layer, ``proj_size > 0``, RNN state_dict without ``rnn_nonlinearity``.
    """
    if isinstance(path_or_obj, (str, Path)):
        path = Path(path_or_obj).expanduser()
        if not path.is_file():
            raise WeightsError(f"PyTorch weights file '{path}' does not exist; fix: check the path")
        where, obj = str(path), _torch_load(path, trust_pickle)
    else:
        where, obj = f"<{type(path_or_obj).__name__} object>", path_or_obj
    torch = _torch(where)
    if isinstance(obj, torch.nn.Module):
        if rnn_nonlinearity is not None:
            raise WeightsError(
                f"{where}: rnn_nonlinearity is only for state_dicts; a module records its own "
                "nonlinearity; fix: drop rnn_nonlinearity"
            )
        net = _from_torch_module(obj, layer, where)
    elif isinstance(obj, Mapping):
        net = _from_torch_state(_flatten(obj), layer, rnn_nonlinearity, where)
    else:
        raise WeightsError(
            f"{where}: holds a {type(obj).__name__}, expected an nn.Module or a state_dict; "
            "fix: torch.save(model) or torch.save(model.state_dict())"
        )
    net.metadata.setdefault("imported_from", where)
    net.metadata["source_format"] = "torch"
    return net


def _from_torch_module(model, layer: str | None, where: str) -> Network:
    torch = _torch(where)
    found = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.RNNBase)}
    name, rnn = _pick(found, layer, where, "recurrent layer (nn.LSTM/nn.GRU/nn.RNN)", "layer")
    where_layer = f"{where} layer {name!r}" if name else where
    if getattr(rnn, "proj_size", 0) > 0:
        raise WeightsError(
            f"{where_layer}: nn.LSTM with proj_size={rnn.proj_size} is not supported (its hidden "
            "state is a projection of the cell outputs, so cells do not map one-to-one); fix: "
            "audit a model trained with proj_size=0"
        )
    if rnn.mode not in BY_TORCH_MODE:
        raise WeightsError(f"{where_layer}: recurrent mode {rnn.mode!r} is not supported")
    net = weights.from_state_dict(rnn.state_dict(), BY_TORCH_MODE[rnn.mode])
    net.metadata["layer"] = name
    linears = {
        n: (_as_numpy(m.weight), None if m.bias is None else _as_numpy(m.bias))
        for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    _linear_readout(net, linears)
    return net


def _from_torch_state(state: dict, layer: str | None, rnn_nonlinearity: str | None, where: str):
    suffix = "weight_ih_l0"
    prefixes = {k[:-len(suffix)].rstrip("."): k[:-len(suffix)] for k in state if k.endswith(suffix)}
    name, prefix = _pick(prefixes, layer, where, "recurrent layer (weight_ih_l0 key)", "layer")
    where_layer = f"{where} layer {name!r}" if name else where
    if f"{prefix}weight_hr_l0" in state:
        raise WeightsError(
            f"{where_layer}: holds '{prefix}weight_hr_l0', an nn.LSTM with proj_size > 0; this is "
            "not supported (its hidden state is a projection of the cell outputs, so cells do not "
            "map one-to-one); fix: audit a model trained with proj_size=0"
        )
    W_ih, W_hh = _as_numpy(state[f"{prefix}weight_ih_l0"]), _as_numpy(state[f"{prefix}weight_hh_l0"])
    hidden = W_hh.shape[1] if W_hh.ndim == 2 else 0
    gates = W_hh.shape[0] // hidden if hidden else 0
    kinds = {4: "lstm", 3: "gru", 1: "rnn"}
    if (W_ih.ndim != 2 or W_hh.shape[0] != gates * hidden or gates not in kinds
            or W_ih.shape[0] != W_hh.shape[0]):
        raise WeightsError(
            f"{where_layer}: weight_ih_l0 {W_ih.shape} and weight_hh_l0 {W_hh.shape} fit no "
            "LSTM (4N rows), GRU (3N) or RNN (N) with N = weight_hh_l0 columns"
        )
    cell = kinds[gates]
    if cell == "rnn":
        if rnn_nonlinearity not in ("tanh", "relu"):
            raise WeightsError(
                f"{where_layer}: a state_dict of an nn.RNN does not record its nonlinearity "
                f"(rnn_nonlinearity={rnn_nonlinearity!r}); fix: pass rnn_nonlinearity='tanh' or "
                "'relu', as the module was built, or save the whole module"
            )
        cell = f"rnn_{rnn_nonlinearity}"
    elif rnn_nonlinearity is not None:
        raise WeightsError(
            f"{where_layer}: rnn_nonlinearity={rnn_nonlinearity!r} given for a {cell} layer; it "
            "applies only to vanilla RNN state_dicts; fix: drop rnn_nonlinearity"
        )
    net = weights.from_state_dict(state, cell, prefix=prefix)
    net.metadata["layer"] = name
    linears = {
        k[:-len(".weight")]: (_as_numpy(v), _as_numpy(state[k[:-len("weight")] + "bias"]))
        for k, v in state.items()
        if k.endswith(".weight") and k[:-len("weight")] + "bias" in state and not k.startswith(prefix)
    }
    _linear_readout(net, {k: wb for k, wb in linears.items() if wb[1].shape == wb[0].shape[:1]})
    return net


# --------------------------------------------------------------------------------------- Keras
KERAS_RNN = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _h5_strings(attrs, name: str) -> list[str]:
    """Read a list-of-strings attribute Keras may split into ``name0``, ``name1``... chunks."""
    if name in attrs:
        chunks = [attrs[name]]
    else:
        chunks, k = [], 0
        while f"{name}{k}" in attrs:
            chunks.append(attrs[f"{name}{k}"])
            k += 1
    values = [v for c in chunks for v in np.atleast_1d(c)]
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _keras_configs(model_config, where: str) -> dict[str, dict]:
    """Map layer name -> ``{"class_name", "config"}`` from a Keras ``model_config`` JSON attribute."""
    if model_config is None:
        return {}
    text = model_config.decode("utf8") if isinstance(model_config, bytes) else str(model_config)
    found = {}

    def walk(node):
        if isinstance(node, dict):
            cfg = node.get("config")
            if "class_name" in node and isinstance(cfg, dict) and "name" in cfg:
                found.setdefault(cfg["name"], node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    try:
        walk(json.loads(text))
    except ValueError as exc:
        raise WeightsError(
            f"{where}: attribute 'model_config' is not valid JSON ({exc}); the file is damaged; "
            "fix: save the model again with model.save('model.h5')"
        ) from exc
    return found


def load_keras_h5(path: str | Path, *, layer: str | Sequence[str] | None = None) -> Network:
    """Import a Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` layer from a legacy Keras HDF5 file, without
    TensorFlow.

    Layout read (Keras 2 ``save_weights("x.h5")``/``model.save("x.h5")``, Keras 3
    ``model.save("x.h5")``, see ``keras/src/legacy/saving/legacy_h5_format.py``): the weights group
    is the file root, or ``/model_weights`` for a whole model; its attribute ``layer_names`` lists
    the layers; each layer's group has an attribute ``weight_names`` listing dataset paths inside
    it, such as ``lstm/lstm_cell/kernel:0`` (Keras 2) or ``lstm/lstm_cell/kernel`` (Keras 3).
    Weights are recognised by their last path component (``kernel``, ``recurrent_kernel``,
    ``bias``); in a ``Bidirectional`` wrapper, by a ``forward_*``/``backward_*`` component.

    Mapping to PyTorch layout (N cells, m inputs):

    * LSTM: ``kernel (m, 4N)`` and ``recurrent_kernel (N, 4N)`` in gate order i, f, c, o (PyTorch's
      i, f, g, o) are transposed; ``bias (4N,)`` becomes ``b_ih`` and ``b_hh`` is zero.
    * GRU (``reset_after=True``, the Keras 2.3+ default): blocks z, r, h are reordered to r, z, n and
      ``bias (2, 3N)`` gives ``b_ih`` (row 0) and ``b_hh`` (row 1). ``reset_after=False`` (bias
      ``(3N,)``) applies the reset gate *before* the recurrent matrix product,
      ``tanh(W x + U (r*h))``, while PyTorch computes ``tanh(W x + r*(U h + b))``: no PyTorch
      GRU reproduces it, so it is refused.
    * SimpleRNN: transposed; ``activation`` tanh or relu gives ``rnn_tanh``/``rnn_relu``.

    When the file holds ``model_config`` (a whole model), the layer's activations are checked (LSTM
    and GRU need ``activation="tanh"`` and ``recurrent_activation="sigmoid"``; Keras < 2.3 defaulted
    to ``hard_sigmoid``, refused) and ``return_sequences`` sets the readout mode. A weights-only file
    carries no configuration: the Keras 2.3+ defaults are assumed and ``metadata`` says so.

    Parameters
    ----------
    path : str or Path
        The ``.h5``/``.hdf5`` file.
    layer : str, sequence of str, or None
        Keras layer name (``"lstm"``), or several names, bottom first, to stack layers into one
        multi-layer network. Needed only when the file holds several recurrent layers.

    Returns
    -------
    Network
        The readout is the only ``Dense`` layer with a linear activation whose kernel has ``D*N``
        rows, if there is exactly one.

    Raises
    ------
    WeightsError
        Not a Keras HDF5 file, no or ambiguous recurrent layer, unsupported GRU variant, activation
        or bias shape.
    """
    import h5py

    path = Path(path).expanduser()
    where = str(path)
    with weights.open_h5(path) as f:
        root = f["model_weights"] if "model_weights" in f else f
        layer_names = _h5_strings(root.attrs, "layer_names")
        if not layer_names:
            raise WeightsError(
                f"{where}: no 'layer_names' attribute at the file root or in /model_weights, so this "
                "is not a legacy Keras HDF5 file (Keras 3 '.weights.h5' files use another layout); "
                "fix: save the model with model.save('model.h5')"
            )
        configs = _keras_configs(f.attrs.get("model_config"), where)
        groups = {}
        for name in layer_names:
            grp = root.get(name)
            if not isinstance(grp, h5py.Group):
                raise WeightsError(
                    f"{where}: 'layer_names' lists {name!r} but the file has no group of that "
                    "name; the file is damaged; fix: save the model again with model.save('x.h5')"
                )
            groups[name] = {
                wn: weights.h5_array(grp, wn, where) for wn in _h5_strings(grp.attrs, "weight_names")
            }
    recurrent = {n: w for n, w in groups.items() if any(_leaf(k) == "recurrent_kernel" for k in w)}
    chosen = _names(layer) or [None]
    parts = []
    for wanted in chosen:
        name, arrays = _pick(recurrent, wanted, where, "Keras recurrent layer", "layer")
        parts.append((name, _keras_layer(arrays, configs.get(name), f"{where} layer {name!r}")))
    net = _stack(parts, where)
    top = parts[-1][0]
    dense = {
        n: (w[k].T, _keras_bias(w)) for n, w in groups.items() if n not in recurrent
        for k in w if _leaf(k) == "kernel" and w[k].ndim == 2
        and configs.get(n, {}).get("config", {}).get("activation", "linear") == "linear"
    }
    _linear_readout(net, dense)
    top_cfg = configs.get(top, {}).get("config", {})
    top_cfg = top_cfg.get("layer", {}).get("config", top_cfg)
    net.readout_mode = "every" if top_cfg.get("return_sequences") else "last"
    net.metadata.update(
        imported_from=where,
        source_format="keras-h5",
        layer=[n for n, _ in parts] if len(parts) > 1 else top,
    )
    if not configs:
        net.metadata["assumed"] = (
            "no model_config in the file: Keras 2.3+ default activations assumed (tanh, sigmoid "
            "gates) and readout mode 'last'"
        )
    return net


def _leaf(weight_name: str) -> str:
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _keras_bias(arrays: dict) -> np.ndarray | None:
    return next((v for k, v in arrays.items() if _leaf(k) == "bias"), None)


def _keras_layer(arrays: dict[str, np.ndarray], config: dict | None, where: str) -> Network:
    """Convert one Keras recurrent layer (maybe Bidirectional) to a one-layer Network."""
    directions = {}
    for key, value in arrays.items():
        parts = key.split("/")
        d = "backward" if any(p.startswith("backward_") for p in parts[:-1]) else "forward"
        directions.setdefault(d, {})[_leaf(key)] = value
    cfg = (config or {}).get("config", {})
    cls = (config or {}).get("class_name")
    if cls == "Bidirectional":
        inner = cfg.get("layer", {})
        cls, cfg = inner.get("class_name"), inner.get("config", {})
    fwd = directions.get("forward", {})
    for w in (fwd, *(v for d, v in directions.items() if d != "forward")):
        pair = [w[k] for k in ("kernel", "recurrent_kernel") if k in w]
        if len(pair) < 2 or any(a.ndim != 2 or 0 in a.shape for a in pair):
            raise WeightsError(
                f"{where}: weights {sorted(arrays)} lack a kernel/recurrent_kernel pair of non-empty "
                f"matrices (shapes {[a.shape for a in pair]}); fix: re-save the model with a "
                "standard Keras LSTM/GRU/SimpleRNN layer"
            )
    hidden = fwd["recurrent_kernel"].shape[0]
    gates = fwd["recurrent_kernel"].shape[1] // hidden
    by_gates = {g: c for c, g in KERAS_RNN.items()}
    cls = cls or by_gates.get(gates)
    if cls not in KERAS_RNN or KERAS_RNN[cls] != gates:
        raise WeightsError(
            f"{where}: layer class {cls!r} with recurrent_kernel {fwd['recurrent_kernel'].shape} is "
            f"not supported; supported: {', '.join(KERAS_RNN)} (optionally in Bidirectional)"
        )
    cell = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn_tanh"}[cls]
    activation = cfg.get("activation", "tanh")
    if cls == "SimpleRNN" and activation in ("tanh", "relu"):
        cell = f"rnn_{activation}"
    elif activation != "tanh":
        raise WeightsError(
            f"{where}: {cls} activation={activation!r} is not supported; the simulator implements "
            "tanh (and relu for SimpleRNN); fix: audit a model trained with the default activation"
        )
    if cls != "SimpleRNN" and cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
        raise WeightsError(
            f"{where}: {cls} recurrent_activation={cfg['recurrent_activation']!r} is not supported; "
            "the gates must use 'sigmoid' (PyTorch semantics; Keras < 2.3 defaulted to "
            "'hard_sigmoid'); fix: audit a model trained with recurrent_activation='sigmoid'"
        )
    if cfg.get("go_backwards"):
        raise WeightsError(
            f"{where}: {cls} with go_backwards=True reads the sequence reversed on its own, which "
            "the format does not represent outside a Bidirectional wrapper; fix: wrap it in "
            "Bidirectional or train without go_backwards"
        )
    converted = [_keras_direction(cls, directions[d], hidden, f"{where} ({d})")
                 for d in ("forward", "backward") if d in directions]
    return Network(cell, [Layer(*(a for arrays4 in converted for a in arrays4))])


def _keras_direction(cls: str, w: dict[str, np.ndarray], hidden: int, where: str) -> list[np.ndarray]:
    """Keras kernel/recurrent_kernel/bias of one direction -> [W_ih, W_hh, b_ih, b_hh]."""
    kernel, rec = w["kernel"].T, w["recurrent_kernel"].T
    gates = KERAS_RNN[cls]
    zeros = np.zeros(gates * hidden, kernel.dtype)
    bias = w.get("bias")
    if cls == "GRU":
        order = (1, 0, 2)  # Keras z, r, h -> PyTorch r, z, n
        if bias is None:
            b_ih, b_hh = zeros, zeros.copy()
        elif bias.shape == (2, gates * hidden):
            b_ih, b_hh = _reorder(bias[0], order, hidden), _reorder(bias[1], order, hidden)
        elif bias.shape == (gates * hidden,):
            raise WeightsError(
                f"{where}: GRU bias of shape {bias.shape} means reset_after=False: the reset gate "
                "multiplies the state before the recurrent product, tanh(W x + U (r*h) + b), while "
                "PyTorch (and this simulator) computes tanh(W x + b_in + r*(U h + b_hn)); no "
                "PyTorch GRU reproduces it; fix: retrain with reset_after=True (the Keras 2.3+ "
                "default)"
            )
        else:
            raise WeightsError(f"{where}: GRU bias shape {bias.shape}, expected (2, {3 * hidden})")
        return [_reorder(kernel, order, hidden), _reorder(rec, order, hidden), b_ih, b_hh]
    if bias is not None and bias.shape != (gates * hidden,):
        raise WeightsError(
            f"{where}: {cls} bias shape {bias.shape}, expected ({gates * hidden},); fix: re-save the "
            "model with a standard Keras layer (CuDNN variants are not supported)"
        )
    return [kernel, rec, zeros if bias is None else bias, zeros.copy()]


# --------------------------------------------------------------------------------------- ONNX
ONNX_GATES = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}  # to PyTorch i,f,g,o / r,z,n / h
ONNX_UNROLLED_HINT = (
    " (a layer unrolled into MatMul/Add operators is not recognised: torch.onnx.export with "
    "dynamo=True does that to nn.RNN; export it with dynamo=False, or import the .pt file)"
)
ONNX_DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"],
}


def load_onnx(path: str | Path, *, node: str | Sequence[str] | None = None) -> Network:
    """Import ONNX ``LSTM``, ``GRU`` or ``RNN`` operators.

    Layout read (ONNX operator specification, opset 7+, ``LSTM``/``GRU``/``RNN``): inputs
    ``W (D, G*N, m)``, ``R (D, G*N, N)`` and optional ``B (D, 2*G*N)`` (input biases then recurrent
    biases), constants stored as initializers or ``Constant`` nodes; gate order LSTM i, o, f, c,
    GRU z, r, h, reordered to PyTorch's i, f, g, o and r, z, n. ``direction="bidirectional"``
    gives the reverse arrays. The GRU must have ``linear_before_reset=1`` (PyTorch semantics
    ``tanh(W x + b + r*(R h + Rb))``; with 0 the reset gate multiplies the state before the product,
    which no PyTorch GRU reproduces).

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    node : str, sequence of str, or None
        Operator name, or several names, bottom first, to stack. With ``None``: the only recurrent
        operator, or all of them when each one reads (through any chain of operators) the output
        of the previous one, as a multi-layer PyTorch export does.

    Returns
    -------
    Network
        No readout is attached (the linear layer after the operator may be spread over several
        ONNX nodes).

    Raises
    ------
    WeightsError
        onnx missing, unreadable file, ambiguous node, computed (non-constant) weights, peepholes,
        ``clip``, ``input_forget``, ``direction="reverse"``, non-default activations,
        ``linear_before_reset=0``.
    """
    where = str(path)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise WeightsError(
            f"{where}: reading ONNX needs the optional dependency onnx, which is not installed; "
            f"fix: {ONNX_INSTALL}"
        ) from exc
    try:
        model = onnx.load(str(path))
        graph = model.graph
        consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant":
                value = next((a for a in n.attribute if a.name == "value"), None)
                if value is not None:
                    consts[n.output[0]] = numpy_helper.to_array(value.t)
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise several unrelated types
        raise WeightsError(
            f"{where}: not a readable ONNX file ({type(exc).__name__}: {exc}); fix: check the file "
            "(a complete copy?) or export the model again, e.g. with torch.onnx.export"
        ) from exc
    recurrent = {
        (n.name or f"{n.op_type}_{i}"): n for i, n in enumerate(graph.node) if n.op_type in ONNX_GATES
    }
    names = _names(node)
    if names is None and len(recurrent) > 1 and _is_chain(graph, list(recurrent.values())):
        names = list(recurrent)
    parts = []
    for wanted in names or [None]:
        name, op = _pick(recurrent, wanted, where, "ONNX recurrent operator (LSTM/GRU/RNN)", "node",
                         ONNX_UNROLLED_HINT)
        parts.append((name, _onnx_node(op, consts, onnx, f"{where} node {name!r}")))
    net = _stack(parts, where)
    net.metadata.update(
        imported_from=where, source_format="onnx",
        layer=[n for n, _ in parts] if len(parts) > 1 else parts[0][0],
    )
    return net


def _is_chain(graph, ops: list) -> bool:
    """True when each of ``ops`` (in graph order) depends on the output of the one before."""
    producer = {out: n for n in graph.node for out in n.output}

    def depends(node, on) -> bool:
        seen, todo = set(), [node.input[0]]
        while todo:
            name = todo.pop()
            src = producer.get(name)
            if src is on:
                return True
            if src is not None and id(src) not in seen:
                seen.add(id(src))
                todo.extend(i for i in src.input if i)
        return False

    return all(depends(b, a) for a, b in zip(ops, ops[1:]))


def _onnx_node(op, consts: dict, onnx, where: str) -> Network:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in op.attribute}
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    direction = text.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise WeightsError(
            f"{where}: direction={direction!r} (a lone reverse pass) is not represented by the "
            "format; supported: 'forward', 'bidirectional'"
        )
    for bad, rule in (("clip", "cell clipping"), ("input_forget", "coupled input/forget gates")):
        if text.get(bad) and bad in attrs:
            raise WeightsError(
                f"{where}: {bad}={text[bad]!r} ({rule}) has no PyTorch equivalent and is not "
                f"supported; fix: export without {bad}"
            )
    if op.op_type == "GRU" and text.get("linear_before_reset", 0) != 1:
        raise WeightsError(
            f"{where}: GRU linear_before_reset={text.get('linear_before_reset', 0)} applies the reset "
            "gate before the recurrent product, tanh(W x + R (r*h) + b), while PyTorch (and this "
            "simulator) computes tanh(W x + Wb + r*(R h + Rb)); no PyTorch GRU reproduces it; fix: "
            "export with linear_before_reset=1 (as torch.onnx.export does)"
        )
    dirs = 2 if direction == "bidirectional" else 1
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    default = ONNX_DEFAULT_ACTIVATIONS[op.op_type]
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh"}[op.op_type]
    if op.op_type == "RNN" and acts in (["Relu"] * dirs, ["Relu"]):
        cell = "rnn_relu"
    elif acts and acts not in (default * dirs, default):
        raise WeightsError(
            f"{where}: activations {acts} are not supported; expected {default} per direction "
            "(or Relu for RNN)"
        )

    def const(index: int, label: str):
        name = op.input[index] if len(op.input) > index else ""
        if not name:
            return None
        if name not in consts:
            raise WeightsError(
                f"{where}: input {label} ('{name}') is computed by the graph, not stored as a "
                "constant; fix: export with constant folding (the default of torch.onnx.export)"
            )
        return consts[name]

    W, R, B = const(1, "W"), const(2, "R"), const(3, "B")
    peep = const(7, "P") if op.op_type == "LSTM" else None
    if peep is not None and np.any(peep):
        raise WeightsError(
            f"{where}: LSTM peephole weights P are non-zero; PyTorch LSTMs have no peepholes, so "
            "this is not supported; fix: export a model without peepholes"
        )
    if W is None or R is None or W.ndim != 3 or R.ndim != 3:
        raise WeightsError(
            f"{where}: inputs W and R must be stored 3-D arrays (directions, gates*N, m|N); got W "
            f"{None if W is None else W.shape}, R {None if R is None else R.shape}; fix: export the "
            "model again with torch.onnx.export"
        )
    order = ONNX_GATES[op.op_type]
    hidden = R.shape[-1]
    gn = len(order) * hidden
    bias_ok = B is None or B.shape == (dirs, 2 * gn)
    if W.shape[:2] != (dirs, gn) or R.shape != (dirs, gn, hidden) or not bias_ok:
        raise WeightsError(
            f"{where}: W {W.shape}, R {R.shape}, B {None if B is None else B.shape} do not fit "
            f"{op.op_type} with {dirs} direction(s) and N={hidden}: expected ({dirs}, {gn}, m), "
            f"({dirs}, {gn}, {hidden}), ({dirs}, {2 * gn})"
        )
    if B is None:
        B = np.zeros((dirs, 2 * gn), W.dtype)
    arrays = []
    for d in range(dirs):
        arrays += [_reorder(a, order, hidden) for a in (W[d], R[d], B[d, :gn], B[d, gn:])]
    return Network(cell, [Layer(*arrays)])


# --------------------------------------------------------------------------------------- dispatch
def load_any(path: str | Path, *, layer: str | Sequence[str] | None = None,
             trust_pickle: bool = False) -> Network:
    """Load and validate a network from any supported file, chosen by suffix, else by content.

    ``.pt``/``.pth`` -> :func:`load_torch`; ``.h5``/``.hdf5`` -> the testbench format when the
    root attribute ``format`` is ``"testbench-weights"``, else :func:`load_keras_h5`; ``.onnx`` ->
    :func:`load_onnx` (``layer`` is the node name). A file with another suffix is read as HDF5 when it
    starts with the HDF5 signature, else refused. ``zoo:<name>`` references are accepted.

    Parameters
    ----------
    path : str or Path
        The file (or ``zoo:<name>``).
    layer : str, sequence of str, or None
        Passed to the importer (see each); must be None for testbench-format files.
    trust_pickle : bool
        Only for PyTorch files: permit unpickling Python objects, which runs code stored in the
        file (see :func:`load_torch`). Default False.

    Returns
    -------
    Network
        Validated with :func:`testbench.weights.validate` (shapes, NaN/Inf refused).

    Raises
    ------
    WeightsError
        Missing file, unknown format, or any importer's error.
    """
    return _load_file(weights.resolve(path), layer, trust_pickle)


def _load_file(path: Path, layer, trust_pickle: bool) -> Network:
    """:func:`load_any` of an already resolved ``path``."""
    suffix = path.suffix.lower()
    with open(path, "rb") as f:
        head = f.read(len(HDF5_SIGNATURE))
    if suffix in HDF5_SUFFIXES or head == HDF5_SIGNATURE:
        net = _load_hdf5(path, layer)
    elif suffix in TORCH_SUFFIXES:
        net = load_torch(path, layer=_single(layer, path), trust_pickle=trust_pickle)
    elif suffix in ONNX_SUFFIXES:
        net = load_onnx(path, node=layer)
    else:
        raise WeightsError(
            f"{path}: unknown weights format (suffix {suffix!r}); supported: "
            f"{', '.join(TORCH_SUFFIXES + HDF5_SUFFIXES + ONNX_SUFFIXES)}; fix: rename the file "
            "with the suffix of its format"
        )
    weights.validate(net, str(path))
    return net


def _single(layer, path) -> str | None:
    if layer is None or isinstance(layer, str):
        return layer
    raise WeightsError(
        f"{path}: layer={list(layer)!r}: a PyTorch layer is chosen by one attribute name (its "
        "nn.LSTM/GRU/RNN already holds all stacked layers); fix: pass a single name"
    )


def _load_hdf5(path: Path, layer) -> Network:
    with weights.open_h5(path) as f:
        fmt = f.attrs.get("format")
    if fmt != weights.FORMAT:
        return load_keras_h5(path, layer=layer)
    if layer is not None:
        raise WeightsError(
            f"{path}: layer={layer!r} given for a testbench weights file, which holds one network; "
            "fix: drop layer"
        )
    return weights.read_h5(path)


def export(source: str | Path, out: str | Path, *, layer: str | Sequence[str] | None = None,
           trust_pickle: bool = False) -> Path:
    """Convert any supported model file to the testbench HDF5 format.

    Parameters
    ----------
    source : str or Path
        Model file (see :func:`load_any`).
    out : str or Path
        Destination ``.h5`` path; parent folders are created.
    layer : str, sequence of str, or None
        Recurrent layer (or ONNX node) to export, see :func:`load_any`.
    trust_pickle : bool
        Permit unpickling a PyTorch file's Python objects (runs code stored in it), see
        :func:`load_torch`. Default False.

    Returns
    -------
    Path
        The written file; its ``metadata`` records the source file, format and layer, and the
        source's SHA-256.
    """
    path = weights.resolve(source)
    net = _load_file(path, layer, trust_pickle)
    net.metadata["source_sha256"] = weights.checksum(path)
    return weights.save(net, out)
