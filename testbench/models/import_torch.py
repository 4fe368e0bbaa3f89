"""Import ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` layers from PyTorch modules, state_dicts and files.

Untrusted files: a PyTorch file is read with ``torch.load(weights_only=True)``, which runs no code
stored in the file. A file that holds pickled Python objects (a whole ``nn.Module`` saved with
``torch.save(model)``) is refused unless ``trust_pickle=True`` is passed, which runs that code and
emits a :class:`TrustedPickleWarning`. torch is an optional dependency, imported only when used.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from testbench.errors import WeightsError
from testbench.kernels.celltypes import BY_TORCH_MODE
from testbench.models.convert import attach_readout, pick
from testbench.models.weights import Network, from_state_dict

SUFFIXES = (".pt", ".pth")
INSTALL = "pip install 'rnn-testbench[torch]'"


def _torch(where: str):
    try:
        import torch
    except ImportError as exc:
        raise WeightsError(
            f"{where}: reading PyTorch weights needs the optional dependency torch, which is not "
            f"installed; fix: {INSTALL}"
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
    name, rnn = pick(found, layer, where, "recurrent layer (nn.LSTM/nn.GRU/nn.RNN)", "layer")
    where_layer = f"{where} layer {name!r}" if name else where
    if getattr(rnn, "proj_size", 0) > 0:
        raise WeightsError(
            f"{where_layer}: nn.LSTM with proj_size={rnn.proj_size} is not supported (its hidden "
            "state is a projection of the cell outputs, so cells do not map one-to-one); fix: "
            "audit a model trained with proj_size=0"
        )
    if rnn.mode not in BY_TORCH_MODE:
        raise WeightsError(f"{where_layer}: recurrent mode {rnn.mode!r} is not supported")
    net = from_state_dict(rnn.state_dict(), BY_TORCH_MODE[rnn.mode])
    net.metadata["layer"] = name
    linears = {
        n: (_as_numpy(m.weight), None if m.bias is None else _as_numpy(m.bias))
        for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    attach_readout(net, linears)
    return net


def _from_torch_state(state: dict, layer: str | None, rnn_nonlinearity: str | None, where: str):
    suffix = "weight_ih_l0"
    prefixes = {k[:-len(suffix)].rstrip("."): k[:-len(suffix)] for k in state if k.endswith(suffix)}
    name, prefix = pick(prefixes, layer, where, "recurrent layer (weight_ih_l0 key)", "layer")
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
    net = from_state_dict(state, cell, prefix=prefix)
    net.metadata["layer"] = name
    linears = {
        k[:-len(".weight")]: (_as_numpy(v), _as_numpy(state[k[:-len("weight")] + "bias"]))
        for k, v in state.items()
        if k.endswith(".weight") and k[:-len("weight")] + "bias" in state and not k.startswith(prefix)
    }
    attach_readout(net, {k: wb for k, wb in linears.items() if wb[1].shape == wb[0].shape[:1]})
    return net
