"""Composite stimuli built from other stimuli: add, multiply, concat, delay.

Inputs are stimulus DataArrays with dims ``(*sweep dims, time)`` (the engine adds a sweep dim per
swept setting). Non-time dims broadcast the xarray way; two inputs that share a dim must carry the
same coordinate values on it. ``time`` stays the last dim, numbered 1..T.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import xarray as xr

from testbench.stimuli._base import dt_of
from testbench.errors import SettingsError
from testbench.nodes import Facts, Range, Stimulus, product_units, stimulus, units_of


def _pair(node: str, a: xr.DataArray, b: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, dict]:
    """Check two inputs share dt and their common sweep coordinates; return them aligned.

    Returns the aligned inputs and the attrs common to the output (``dt`` when it is a plain
    value; a swept ``dt`` stays a coordinate).
    """
    dta, dtb = dt_of(a, node), dt_of(b, node)
    if isinstance(dta, float) and isinstance(dtb, float):
        check_same_dt(node, dta, dtb, _names(a, b))
        same = True
    else:
        same = isinstance(dta, xr.DataArray) and isinstance(dtb, xr.DataArray) and dta.equals(dtb)
    if not same:
        show = [d if isinstance(d, float) else np.atleast_1d(d.values).tolist() for d in (dta, dtb)]
        raise SettingsError(
            f"{node}: input a ('{a.name}') has dt = {show[0]} but input b ('{b.name}') has dt = "
            f"{show[1]}; both inputs must share the sample interval dt; fix: give both stimuli "
            "the same dt setting (and sweep dt, if at all, on both the same way)"
        )
    try:
        a, b = xr.align(a, b, join="exact", exclude=["time"])
    except ValueError as exc:
        raise SettingsError(
            f"{node}: inputs a ('{a.name}') and b ('{b.name}') share a sweep dimension with "
            f"different values ({exc}); fix: sweep both over the same values, or sweep only one"
        ) from exc
    return a, b, ({"dt": dta} if isinstance(dta, float) else {})


def _names(a: xr.DataArray, b: xr.DataArray) -> tuple[str, str]:
    return f"a ('{a.name}')", f"b ('{b.name}')"


def check_same_dt(node: str, dta: float, dtb: float, names: tuple[str, str] = ("a", "b")) -> None:
    """Refuse inputs with different (unswept) sample intervals; ``names`` label them in messages."""
    if dta != dtb:
        raise SettingsError(
            f"{node}: input {names[0]} has dt = {dta} but input {names[1]} has dt = {dtb}; both "
            "inputs must share "
            "the sample interval dt; fix: give both stimuli the same dt setting (and sweep dt, if "
            "at all, on both the same way)"
        )


def check_same_length(node: str, ta: int, tb: int, names: tuple[str, str] = ("a", "b")) -> None:
    """Refuse inputs of different lengths for a step-by-step combination."""
    if ta != tb:
        raise SettingsError(
            f"{node}: input {names[0]} has {ta} steps but input {names[1]} has {tb}; samples are "
            "combined step by step; fix: give both the same length_steps (or join them in time with 'concat')"
        )


def check_delay(steps: int, length_steps: int, name: str = "input") -> None:
    """Refuse a delay that leaves nothing of its input (``name`` labels it in messages)."""
    if steps >= length_steps:
        raise SettingsError(
            f"delay: setting 'steps' = {steps} is not shorter than the {name} ({length_steps} "
            f"steps); nothing of it would remain; fix: use steps <= {length_steps - 1} or a longer "
            "input", setting="steps"
        )


def _combined(a: Facts, b: Facts, length_steps: int | None) -> Facts:
    dims = {**a.dims, **b.dims}
    T = length_steps or 0
    return Facts(dims, {**a.coords, **b.coords}, length_steps, a.dt if a.dt == b.dt else None,
                 eager_bytes=8 * T * math.prod(dims.values()))


def _check_pointwise(node: str):
    """Preflight hook of ``add`` and ``multiply``: equal lengths and dt."""

    def check(settings: dict, inputs: dict) -> Facts:
        a, b = inputs["a"], inputs["b"]
        if a.dt is not None and b.dt is not None:
            check_same_dt(node, a.dt, b.dt)
        if a.length_steps is not None and b.length_steps is not None:
            check_same_length(node, a.length_steps, b.length_steps)
        return _combined(a, b, a.length_steps)

    return check


def _check_concat(settings: dict, inputs: dict) -> Facts:
    a, b = inputs["a"], inputs["b"]
    if a.dt is not None and b.dt is not None:
        check_same_dt("concat", a.dt, b.dt)
    known = a.length_steps is not None and b.length_steps is not None
    return _combined(a, b, a.length_steps + b.length_steps if known else None)


def _check_delay(settings: dict, inputs: dict) -> Facts:
    x = inputs["x"]
    if x.length_steps is not None:
        check_delay(settings["steps"], x.length_steps)
    return _combined(x, x, x.length_steps)


def _same_units(node: str, a: xr.DataArray, b: xr.DataArray, rule: str) -> str:
    """The inputs' common units; a SettingsError stating ``rule`` when they differ."""
    ua, ub = units_of(a), units_of(b)
    if ua != ub:
        raise SettingsError(
            f"{node}: input a ('{a.name}') is in units '{ua}' but input b ('{b.name}') in '{ub}'; "
            f"{rule}; fix: scale one input into the other's units"
        )
    return ua


def _finish(name: str, out: xr.DataArray, attrs: dict, description: str) -> xr.DataArray:
    out = out.transpose(..., "time")
    out.name = name
    out.attrs = {**attrs, "description": description}
    return out


@stimulus("add", check=_check_pointwise("add"))
def add(a: Stimulus, b: Stimulus) -> xr.DataArray:
    """Sum of two stimuli, step by step: ``x_t = a_t + b_t``.

    Parameters
    ----------
    a, b : xr.DataArray
        Stimuli with the same ``dt``, the same number of steps and the same units; non-time dims
        broadcast.

    Returns
    -------
    xr.DataArray
        ``add``: dims ``(*sweep dims of a and b, time)``, ``time`` = 1..T; attrs ``units``,
        ``dt``, ``description``.

    Raises
    ------
    SettingsError
        When dt, length or units differ.
    """
    check_same_length("add", a.sizes["time"], b.sizes["time"], _names(a, b))
    a, b, attrs = _pair("add", a, b)
    units = _same_units("add", a, b, "only like quantities add")
    return _finish("add", a + b, {"units": units, **attrs}, f"({a.name}) + ({b.name})")


@stimulus("multiply", check=_check_pointwise("multiply"))
def multiply(a: Stimulus, b: Stimulus) -> xr.DataArray:
    """Product of two stimuli, step by step: ``x_t = a_t * b_t`` (e.g. amplitude modulation).

    Parameters
    ----------
    a, b : xr.DataArray
        Stimuli with the same ``dt`` and the same number of steps; non-time dims broadcast.

    Returns
    -------
    xr.DataArray
        ``multiply``: dims ``(*sweep dims of a and b, time)``, ``time`` = 1..T; attrs ``units``
        (product of the input units, "1" when both are dimensionless), ``dt``, ``description``.

    Raises
    ------
    SettingsError
        When dt or length differ.
    """
    check_same_length("multiply", a.sizes["time"], b.sizes["time"], _names(a, b))
    a, b, attrs = _pair("multiply", a, b)
    units = product_units(units_of(a), units_of(b))
    return _finish("multiply", a * b, {"units": units, **attrs}, f"({a.name}) * ({b.name})")


@stimulus("concat", check=_check_concat)
def concat(a: Stimulus, b: Stimulus) -> xr.DataArray:
    """Stimulus ``a`` followed by stimulus ``b`` in time; ``time`` renumbered 1..Ta+Tb.

    Parameters
    ----------
    a, b : xr.DataArray
        Stimuli with the same ``dt`` and units; their lengths may differ; non-time dims
        broadcast.

    Returns
    -------
    xr.DataArray
        ``concat``: dims ``(*sweep dims of a and b, time)`` with Ta + Tb steps; attrs ``units``,
        ``dt``, ``description``.

    Raises
    ------
    SettingsError
        When dt or units differ.
    """
    a, b, attrs = _pair("concat", a, b)
    units = _same_units("concat", a, b, "one signal cannot change units midway")
    a2, b2 = xr.broadcast(a.drop_vars("time"), b.drop_vars("time"), exclude=["time"])
    out = xr.concat([a2, b2], dim="time")
    out = out.assign_coords(time=np.arange(1, out.sizes["time"] + 1, dtype=np.int64))
    return _finish("concat", out, {"units": units, **attrs}, f"({a.name}) then ({b.name})")


@stimulus("delay", check=_check_delay)
def delay(x: Stimulus, *, steps: Annotated[int, Range(ge=0)] = 0) -> xr.DataArray:
    """Stimulus ``x`` delayed by ``steps``: ``y_t = x_{t - steps}`` for t > steps, else ``x_1``.

    The record keeps its length T: the first ``steps`` samples repeat the first value ``x_1`` (so
    a step delayed stays at its baseline and gains no artificial jump) and the last ``steps``
    samples of ``x`` are dropped. NaN samples of ``x`` move with the signal.

    Parameters
    ----------
    x : xr.DataArray
        Any stimulus with dims ``(*sweep dims, time)``.
    steps : int
        Delay in steps, 0 <= steps <= T - 1 (0 returns ``x`` unchanged). Default 0.

    Returns
    -------
    xr.DataArray
        ``delay``: same dims, coordinates and length as ``x``; attrs of ``x`` plus ``steps`` and
        a new ``description``.

    Raises
    ------
    SettingsError
        When ``steps`` >= T (nothing of ``x`` would remain).

    Examples
    --------
    >>> from testbench.stimuli.steps import step
    >>> delay(step(length_steps=6, onset_steps=2), steps=3).values
    array([0., 0., 0., 0., 0., 1.])
    """
    T = x.sizes["time"]
    check_delay(steps, T, f"input '{x.name}'")
    shifted = x.roll(time=steps, roll_coords=False)
    keep = xr.DataArray(np.arange(T) >= steps, dims="time")
    out = shifted.where(keep, x.isel(time=0, drop=True))
    return _finish("delay", out, {**x.attrs, "steps": steps},
                   f"({x.name}) delayed by {steps} steps")
