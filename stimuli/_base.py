"""Shared construction of stimulus DataArrays (private to the built-in stimulus nodes).

Every stimulus is a float64 ``DataArray`` named after its node type, with dims ``("time",)``, an
integer ``time`` coordinate 1..T (step t lies at physical time ``t * dt``) and attrs ``units``,
``dt``, ``description`` plus every setting value (for provenance).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from testbench.errors import SettingsError
from testbench.nodes import Facts


def steps(length_steps: int) -> np.ndarray:
    """Step indices t = 1..T as int64."""
    return np.arange(1, length_steps + 1, dtype=np.int64)


def make(name: str, values: np.ndarray, description: str, settings: dict) -> xr.DataArray:
    """Wrap ``values`` (length T) as a dimensionless stimulus; ``settings`` must include ``dt``."""
    t = steps(len(values))
    attrs = {"units": "1", "description": description, **settings}
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=("time",), coords={"time": t},
                        name=name, attrs=attrs)


def check_nyquist(node: str, setting: str, frequency: float, dt: float) -> None:
    """Refuse a frequency at or above the Nyquist frequency 1/(2 dt) (the samples would alias)."""
    if frequency * dt >= 0.5:
        raise SettingsError(
            f"{node}: setting '{setting}' = {frequency} cycles per time unit is at or above the "
            f"Nyquist frequency 1/(2*dt) = {0.5 / dt} for dt = {dt}; the sampled signal would "
            f"alias; fix: use {setting} < {0.5 / dt} or a smaller dt", setting=setting
        )


def check_onset(node: str, onset_steps: int, length_steps: int) -> None:
    """Refuse an onset that leaves no sample after it."""
    if onset_steps >= length_steps:
        raise SettingsError(
            f"{node}: setting 'onset_steps' = {onset_steps} is not before the end of the record "
            f"(length_steps = {length_steps}); the input change would never be seen; fix: use "
            f"onset_steps <= {length_steps - 1} or a longer length_steps", setting="onset_steps"
        )


def onset(node: str, onset_steps: int | None, length_steps: int) -> int:
    """The onset t0 of a step-like stimulus (``None`` means T // 2), checked by :func:`check_onset`."""
    t0 = length_steps // 2 if onset_steps is None else onset_steps
    check_onset(node, t0, length_steps)
    return t0


def signal_check(node: str, *, frequencies: tuple[str, ...] = (), has_onset: bool = False):
    """The preflight hook of a built-in source stimulus (see :mod:`testbench.preflight`).

    Parameters
    ----------
    node : str
        Node type name, for messages.
    frequencies : tuple of str
        Settings holding frequencies that must stay below Nyquist (:func:`check_nyquist`).
    has_onset : bool
        Whether the node has ``onset_steps`` (:func:`onset`).

    Returns
    -------
    callable
        ``check(settings, inputs) -> Facts`` of a float64 record of ``length_steps`` samples.
    """

    def check(settings: dict, inputs: dict) -> Facts:
        for name in frequencies:
            check_nyquist(node, name, settings[name], settings["dt"])
        if has_onset:
            onset(node, settings["onset_steps"], settings["length_steps"])
        return Facts.signal(settings["length_steps"], settings["dt"])

    return check


def dt_of(arr: xr.DataArray, where: str):
    """The sample interval of a stimulus: ``attrs['dt']`` (float), or its swept ``dt`` coordinate.

    Raises
    ------
    SettingsError
        When ``arr`` carries neither (it was not made by a stimulus node).
    """
    if "dt" in arr.attrs:
        return float(arr.attrs["dt"])
    if "dt" in arr.coords:
        return arr.coords["dt"]
    raise SettingsError(
        f"{where}: input '{arr.name}' has no sample interval (neither attrs['dt'] nor a 'dt' "
        "coordinate); fix: connect a stimulus node, or set attrs['dt'] on a custom stimulus"
    )


#: Docstring parts shared by several stimuli; inserted by :func:`fill_doc`.
DOC_PARTS = {
    "{length_dt}": """length_steps : int
        Number of samples T, in steps, 2 <= T <= 10 000 000. Default 1000.
    dt : float
        Sample interval in time units, > 0; step t lies at time t * dt. Default 1.0.""",
    "{onset_baseline}": """onset_steps : int or None
        Last step before the change, t0, in steps, 1 <= t0 <= T - 1; ``null`` means T // 2.
        Default ``null``.
    baseline : float
        Value up to and including step t0, dimensionless. Default 0.0.""",
    "{returns}": """Returns
    -------
    xr.DataArray
        Named after the node type; dims ``(time,)``, ``time`` = 1..T (int), float64,
        dimensionless; attrs ``units`` ("1"), ``dt``, ``description`` and every setting value
        (defaults resolved).""",
    "{sine_like}": """amplitude : float
        Peak amplitude A, dimensionless. Default 1.0.
    phase : float
        Phase at time 0, in radians. Default 0.0.
    offset : float
        Constant added to the signal, dimensionless. Default 0.0.""",
}


def fill_doc(func):
    """Replace the ``{...}`` placeholders of :data:`DOC_PARTS` in ``func.__doc__`` (apply first)."""
    doc = func.__doc__
    for key, text in DOC_PARTS.items():
        doc = doc.replace(key, text)
    func.__doc__ = doc
    return func
