"""Import Keras ``LSTM``, ``GRU`` and ``SimpleRNN`` layers (optionally in ``Bidirectional``) from
legacy Keras HDF5 files (``.h5``) and Keras 3 archives (``.keras``), without TensorFlow or Keras."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from testbench.errors import WeightsError
from testbench.kernels.celltypes import by_class
from testbench.models.convert import attach_readout, layer_names, pick, reorder, stack
from testbench.models.weights import Layer, Network, h5_array, open_h5

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
    with open_h5(path) as f:
        root = f["model_weights"] if "model_weights" in f else f
        listed = _h5_strings(root.attrs, "layer_names")
        if not listed:
            raise WeightsError(
                f"{where}: no 'format' attribute (a testbench weights file) and no 'layer_names' "
                "attribute at the file root or in /model_weights, so this is not a legacy Keras "
                "HDF5 file either (Keras 3 '.weights.h5' files use another layout); fix: save a "
                "Keras model with model.save('model.keras') or model.save('model.h5'), or convert "
                "another model to a supported format"
            )
        configs = _keras_configs(f.attrs.get("model_config"), where)
        groups = {}
        for name in listed:
            grp = root.get(name)
            if not isinstance(grp, h5py.Group):
                raise WeightsError(
                    f"{where}: 'layer_names' lists {name!r} but the file has no group of that "
                    "name; the file is damaged; fix: save the model again with model.save('x.h5')"
                )
            groups[name] = {
                wn: h5_array(grp, wn, where) for wn in _h5_strings(grp.attrs, "weight_names")
            }
    return _network(groups, configs, layer, where, "keras-h5")


ARCHIVE_SUFFIXES = (".keras",)
ARCHIVE_CONFIG = "config.json"
ARCHIVE_WEIGHTS = "model.weights.h5"
#: Variables of a layer in a ``.keras`` archive, in the order Keras creates them (``vars/0``, ...).
ARCHIVE_VARS = {"cell": ("kernel", "recurrent_kernel", "bias"), "dense": ("kernel", "bias")}
MODELS = ("Sequential", "Functional", "Model")


def load_keras_archive(path: str | Path, *, layer: str | Sequence[str] | None = None) -> Network:
    """Import a Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` layer from a Keras 3 ``.keras`` archive,
    without Keras.

    Layout read (``keras/src/saving/saving_lib.py``): a zip archive holding ``config.json`` (the
    serialized model: its ``layers`` list, each with ``class_name`` and ``config``) and
    ``model.weights.h5``, where a layer's variables are the datasets ``vars/0``, ``vars/1``...
    (creation order) of the group ``layers/<class name in snake case>[_<k>]`` (``k`` counts earlier
    layers of the same class in the same model): a recurrent layer's under ``cell/``
    (``kernel``, ``recurrent_kernel``, ``bias``), a ``Bidirectional`` wrapper's under
    ``forward_layer/cell/`` and ``backward_layer/cell/``, a ``Dense`` layer's directly
    (``kernel``, ``bias``); a nested model's layers under its own ``layers/``. The arrays are mapped
    to PyTorch layout as for :func:`load_keras_h5`, and the configuration is checked the same way.

    Parameters
    ----------
    path : str or Path
        The ``.keras`` file.
    layer : str, sequence of str, or None
        Keras layer name (``config.name``, e.g. ``"lstm"``), or several names, bottom first, to
        stack. Needed only when the model holds several recurrent layers.

    Returns
    -------
    Network
        As :func:`load_keras_h5`; ``metadata["source_format"]`` is ``"keras"``.

    Raises
    ------
    WeightsError
        Not a zip archive, no ``config.json`` or ``model.weights.h5`` (archives saved with
        ``weights_format="npz"`` are not read), a layer whose variables are missing, and every
        error of :func:`load_keras_h5`.
    """
    import io
    import zipfile

    path = Path(path).expanduser()
    where = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(
            f"{where}: not a readable Keras archive ({exc}); a '.keras' file is a zip archive "
            "written by model.save('model.keras'); fix: check the file (a complete copy?) or save "
            "the model again"
        ) from exc
    with archive:
        found = set(archive.namelist())
        missing = [n for n in (ARCHIVE_CONFIG, ARCHIVE_WEIGHTS) if n not in found]
        if missing:
            raise WeightsError(
                f"{where}: the Keras archive lacks {', '.join(missing)} (it holds "
                f"{', '.join(sorted(found)[:6]) or 'nothing'}); fix: save the model with Keras 3 "
                "model.save('model.keras') (the default weights format, h5)"
            )
        try:
            config = json.loads(archive.read(ARCHIVE_CONFIG))
        except ValueError as exc:
            raise WeightsError(
                f"{where}: {ARCHIVE_CONFIG} is not valid JSON ({exc}); the archive is damaged; fix: "
                "save the model again"
            ) from exc
        layers = _archive_layers(config, "", where)
        weights_file = io.BytesIO(archive.read(ARCHIVE_WEIGHTS))
    inner = f"{where}!{ARCHIVE_WEIGHTS}"
    groups = {}
    with open_h5(weights_file, where=inner) as f:
        for name, node, group in layers:
            cls = node["class_name"]
            scopes = ({"forward_layer/cell": "cell", "backward_layer/cell": "cell"}
                      if cls == "Bidirectional" else
                      {"cell": "cell"} if cls in KERAS_RNN else {"": "dense"} if cls == "Dense" else {})
            arrays = {}
            for scope, kind in scopes.items():
                vars_path = "/".join(p for p in (group, scope, "vars") if p)
                grp = f.get(vars_path)
                if grp is None:
                    raise WeightsError(
                        f"{inner}: layer {name!r} ({cls}) has no variables at '{vars_path}'; the "
                        "archive is damaged or was not written by Keras 3; fix: save the model "
                        "again with model.save('model.keras')"
                    )
                for k, var in enumerate(ARCHIVE_VARS[kind][:len(grp)]):
                    arrays[f"{scope}/{var}".lstrip("/")] = h5_array(grp, str(k), inner)
            if arrays:
                groups[name] = arrays
    return _network(groups, {name: node for name, node, _ in layers}, layer, where, "keras")


def _snake(class_name: str) -> str:
    """Keras's ``naming.to_snake_case`` of a class name (``SimpleRNN`` -> ``simple_rnn``)."""
    text = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()


def _archive_layers(model: dict, prefix: str, where: str) -> list[tuple[str, dict, str]]:
    """``(layer name, config node, weights group path)`` of every layer of a serialized model."""
    cfg = model.get("config") if isinstance(model, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise WeightsError(
            f"{where}: {ARCHIVE_CONFIG} does not describe a Keras model with a 'layers' list (found "
            f"class {model.get('class_name') if isinstance(model, dict) else model!r}); fix: save "
            "a Sequential or functional model with model.save('model.keras')"
        )
    out, used = [], {}
    for node in cfg["layers"]:
        if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
            continue
        cls = str(node.get("class_name"))
        if cls == "InputLayer":
            continue
        base = _snake(cls)
        used[base] = used.get(base, -1) + 1
        group = f"{prefix}layers/{base}" + (f"_{used[base]}" if used[base] else "")
        if cls in MODELS:
            out.extend(_archive_layers(node, group + "/", where))
        else:
            out.append((str(node["config"].get("name", group)), node, group))
    return out


def _network(groups: dict[str, dict], configs: dict[str, dict], layer, where: str,
             source_format: str) -> Network:
    """The network of the chosen recurrent layer(s) among ``groups`` {layer name: {weight path:
    array}}, checked against ``configs`` {layer name: {"class_name", "config"}}, with its readout."""
    recurrent = {n: w for n, w in groups.items() if any(_leaf(k) == "recurrent_kernel" for k in w)}
    chosen = layer_names(layer) or [None]
    parts = []
    for wanted in chosen:
        name, arrays = pick(recurrent, wanted, where, "Keras recurrent layer", "layer")
        parts.append((name, _keras_layer(arrays, configs.get(name), f"{where} layer {name!r}")))
    net = stack(parts, where)
    top = parts[-1][0]
    dense = {
        n: (w[k].T, _keras_bias(w)) for n, w in groups.items() if n not in recurrent
        for k in w if _leaf(k) == "kernel" and w[k].ndim == 2
        and configs.get(n, {}).get("config", {}).get("activation", "linear") == "linear"
    }
    attach_readout(net, dense)
    top_cfg = configs.get(top, {}).get("config", {})
    top_cfg = top_cfg.get("layer", {}).get("config", top_cfg)
    net.readout_mode = "every" if top_cfg.get("return_sequences") else "last"
    net.metadata.update(
        imported_from=where,
        source_format=source_format,
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
    activation = cfg.get("activation", "tanh")
    if activation == "tanh" or (cls == "SimpleRNN" and activation == "relu"):
        cell = by_class("keras", cls, activation)
    else:
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
            b_ih, b_hh = reorder(bias[0], order, hidden), reorder(bias[1], order, hidden)
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
        return [reorder(kernel, order, hidden), reorder(rec, order, hidden), b_ih, b_hh]
    if bias is not None and bias.shape != (gates * hidden,):
        raise WeightsError(
            f"{where}: {cls} bias shape {bias.shape}, expected ({gates * hidden},); fix: re-save the "
            "model with a standard Keras layer (CuDNN variants are not supported)"
        )
    return [kernel, rec, zeros if bias is None else bias, zeros.copy()]
