"""Import ONNX ``LSTM``, ``GRU`` and ``RNN`` operators (onnx is an optional dependency, imported
only when used)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from testbench.errors import WeightsError
from testbench.kernels.celltypes import by_class
from testbench.models.convert import layer_names, pick, reorder, stack
from testbench.models.weights import Layer, Network

SUFFIXES = (".onnx",)
INSTALL = "pip install 'rnn-testbench[onnx]'"

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
            f"fix: {INSTALL}"
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
    names = layer_names(node)
    if names is None and len(recurrent) > 1 and _is_chain(graph, list(recurrent.values())):
        names = list(recurrent)
    parts = []
    for wanted in names or [None]:
        name, op = pick(recurrent, wanted, where, "ONNX recurrent operator (LSTM/GRU/RNN)", "node",
                         ONNX_UNROLLED_HINT)
        parts.append((name, _onnx_node(op, consts, onnx, f"{where} node {name!r}")))
    net = stack(parts, where)
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
    relu = op.op_type == "RNN" and acts in (["Relu"] * dirs, ["Relu"])
    cell = by_class("onnx", op.op_type, "relu" if relu else "tanh")
    if not relu and acts and acts not in (default * dirs, default):
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
        arrays += [reorder(a, order, hidden) for a in (W[d], R[d], B[d, :gn], B[d, gn:])]
    return Network(cell, [Layer(*arrays)])
