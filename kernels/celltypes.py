"""The cell-type vocabulary: one table that every other module reads.

Each recurrent cell type supported by testbench is one :class:`CellType` row: its name (as written in
weight files, graphs and results), its gates in PyTorch order, its integer code inside the kernels, the
internal traces a simulation can record, and its names in the frameworks testbench imports from.
Imports nothing beyond the standard library, so the kernels may use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellType:
    """One recurrent cell type.

    Attributes
    ----------
    name : str
        Name used in weight files, graphs and result stores (``"lstm"``).
    gates : str
        One letter per gate, in PyTorch order (LSTM ``ifgo``, GRU ``rzn``, RNN ``h``); the rows of
        ``W_ih``/``W_hh``/biases are stacked in this order.
    code : int
        Integer code of the cell type inside the Numba kernels.
    traces : tuple of str
        Internal variables recorded with ``traces=True`` (cell state and gate activations), in order.
    torch_class : str
        ``torch.nn`` class (``"LSTM"``, ``"GRU"``, ``"RNN"``).
    torch_mode : str
        ``torch.nn.RNNBase.mode`` of such a layer (``"LSTM"``, ``"RNN_TANH"``...).
    nonlinearity : str or None
        ``nonlinearity=`` argument of ``torch.nn.RNN``; None for gated cells.
    onnx_op : str
        ONNX operator (``"LSTM"``, ``"GRU"``, ``"RNN"``).
    keras_class : str
        Keras layer class (``"LSTM"``, ``"GRU"``, ``"SimpleRNN"``).
    """

    name: str
    gates: str
    code: int
    traces: tuple[str, ...]
    torch_class: str
    torch_mode: str
    nonlinearity: str | None
    onnx_op: str
    keras_class: str

    @property
    def n_gates(self) -> int:
        """Number of gates (row blocks of the layer's weight matrices)."""
        return len(self.gates)


CELL_TYPES: dict[str, CellType] = {ct.name: ct for ct in (
    CellType("lstm", "ifgo", 0, ("c", "i", "f", "g", "o"), "LSTM", "LSTM", None, "LSTM", "LSTM"),
    CellType("gru", "rzn", 1, ("r", "z", "n"), "GRU", "GRU", None, "GRU", "GRU"),
    CellType("rnn_tanh", "h", 2, (), "RNN", "RNN_TANH", "tanh", "RNN", "SimpleRNN"),
    CellType("rnn_relu", "h", 3, (), "RNN", "RNN_RELU", "relu", "RNN", "SimpleRNN"),
)}

#: Gates per cell type (``{"lstm": 4, ...}``).
GATES = {name: ct.n_gates for name, ct in CELL_TYPES.items()}

#: Internal traces per cell type, in the order the kernels record them.
TRACES = {name: ct.traces for name, ct in CELL_TYPES.items()}

#: Kernel code per cell type.
CODES = {name: ct.code for name, ct in CELL_TYPES.items()}

#: Cell type of each ``torch.nn.RNNBase.mode``.
BY_TORCH_MODE = {ct.torch_mode: name for name, ct in CELL_TYPES.items()}


def by_class(framework: str, name: str, nonlinearity: str = "tanh") -> str:
    """Cell type of a framework's recurrent layer class or operator.

    Parameters
    ----------
    framework : {'keras', 'onnx', 'torch'}
        Where ``name`` comes from: a Keras layer class, an ONNX operator or a ``torch.nn`` class.
    name : str
        ``"LSTM"``, ``"GRU"``, ``"SimpleRNN"`` (Keras) or ``"RNN"`` (ONNX, torch).
    nonlinearity : {'tanh', 'relu'}
        Activation of a vanilla RNN layer (ignored for gated cells).

    Raises
    ------
    KeyError
        When no cell type matches.
    """
    field = {"keras": "keras_class", "onnx": "onnx_op", "torch": "torch_class"}[framework]
    for ct in CELL_TYPES.values():
        if getattr(ct, field) == name and ct.nonlinearity in (None, nonlinearity):
            return ct.name
    raise KeyError(f"{framework} {name} ({nonlinearity})")
