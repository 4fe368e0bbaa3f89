"""Helpers shared by the importers: choosing a layer, reordering gate blocks, stacking layers,
attaching a readout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from testbench.errors import WeightsError, did_you_mean
from testbench.models.weights import Network


def pick(candidates: Mapping[str, object], wanted: str | None, where: str, kind: str, option: str,
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


def reorder(arr: np.ndarray, order: Sequence[int], hidden: int) -> np.ndarray:
    """Permute the gate blocks (of ``hidden`` rows each) along axis 0 of ``arr``."""
    return np.concatenate([arr[g * hidden:(g + 1) * hidden] for g in order], axis=0)


def stack(parts: list[tuple[str, Network]], where: str) -> Network:
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


def layer_names(layer: str | Sequence[str] | None) -> list[str] | None:
    return None if layer is None else [layer] if isinstance(layer, str) else list(layer)


def attach_readout(net: Network, linears: dict[str, tuple]) -> None:
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
