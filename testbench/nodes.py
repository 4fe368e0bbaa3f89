"""Node registry: ``@stimulus``, ``@dut``, ``@analyzer`` and ``@sink``.

A node is a plain function. Its signature is its schema: inputs are positional parameters (other
nodes' outputs), settings are keyword-only parameters with defaults. Value checks are declared in the
annotation with :class:`Range` (``Annotated[float, Range(gt=0)]``) or ``Literal[...]``; the numpydoc
``Parameters`` section documents each setting and is what ``testbench nodes`` prints.

Built-in nodes register when :func:`load_builtins` imports the ``stimuli`` and ``analyzers``
packages, :mod:`testbench.dut`, :mod:`testbench.ablation` and :mod:`testbench.sinks`. Third-party nodes register through the entry-point group
``testbench.nodes`` or are referenced from YAML directly as ``package.module:function``.

Examples
--------
>>> from typing import Annotated
>>> import xarray as xr
>>> from testbench.nodes import analyzer, Range
>>> @analyzer("example_peak", register=False)
... def peak(response: xr.DataArray, *, scale: Annotated[float, Range(gt=0)] = 1.0) -> xr.DataArray:
...     '''Peak of the response.
...
...     Parameters
...     ----------
...     scale : float
...         Factor applied to the peak, dimensionless, > 0.
...     '''
...     return scale * response.max("time")
>>> peak.__testbench_node__.settings["scale"].default
1.0
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, get_args, get_origin

from testbench.errors import NodeError, RegistryError, did_you_mean

KINDS = ("stimulus", "dut", "analyzer", "sink")
ENTRY_POINT_GROUP = "testbench.nodes"


@dataclass(frozen=True)
class Range:
    """A numeric range check declared in a setting's annotation.

    Parameters
    ----------
    ge, gt, le, lt : float or None
        Inclusive / exclusive lower and upper bounds; ``None`` means unbounded.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, value) -> str | None:
        """Return a description of the violated rule, or ``None`` when ``value`` is inside."""
        if self.ge is not None and not value >= self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and not value > self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and not value <= self.le:
            return f"must be <= {self.le}"
        if self.lt is not None and not value < self.lt:
            return f"must be < {self.lt}"
        return None

    def __str__(self) -> str:
        parts = []
        for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if v is not None:
                parts.append(f"{op} {v}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Setting:
    """One keyword-only setting of a node, derived from the function signature."""

    name: str
    annotation: Any
    default: Any
    doc: str = ""

    @property
    def type_text(self) -> str:
        """Human-readable type, e.g. ``float (> 0)`` or ``'cpu' | 'cuda'``."""
        return _type_text(self.annotation)


@dataclass(frozen=True)
class NodeSpec:
    """A registered node: its kind, name, function, inputs and settings."""

    kind: str
    name: str
    func: Callable
    inputs: tuple[str, ...]
    settings: dict[str, Setting] = field(default_factory=dict)
    summary: str = ""
    doc: str = ""

    @property
    def origin(self) -> str:
        """``module:function`` where the node is defined."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def check_setting(self, name: str, value) -> tuple[Any, str | None]:
        """Convert and check one setting value.

        Returns
        -------
        (value, problem) : tuple
            The converted value and ``None``, or the value received and a description of the rule
            that was violated.
        """
        return check_value(self.settings[name].annotation, value)


_CURRENT_NODE: contextvars.ContextVar[str] = contextvars.ContextVar("testbench_node", default="?")


@contextlib.contextmanager
def building(node: str):
    """Context in which the engine calls node ``node``'s function (read by :func:`guard`)."""
    token = _CURRENT_NODE.set(node)
    try:
        yield
    finally:
        _CURRENT_NODE.reset(token)


class _Guarded:
    """Picklable wrapper of a task function that names the node when the task fails."""

    def __init__(self, func, node: str):
        self.func, self.node = func, node

    def __call__(self, *args, **kwargs):
        try:
            return self.func(*args, **kwargs)
        except NodeError:
            raise
        except Exception as exc:
            raise NodeError(f"node '{self.node}' failed while computing: "
                            f"{type(exc).__name__}: {exc}") from exc


def guard(func: Callable) -> Callable:
    """Wrap a function that a node hands to dask so that its failures name the node.

    Call it inside a node function while the engine builds that node, e.g.
    ``xr.apply_ufunc(guard(core), ..., dask="parallelized")``; outside the engine it names ``?``.
    The wrapper is picklable (process and distributed schedulers) when ``func`` is.
    """
    return _Guarded(func, _CURRENT_NODE.get())


_REGISTRY: dict[str, NodeSpec] = {}
_BUILTINS_LOADED = False


def _parse_param_docs(doc: str) -> dict[str, str]:
    """Map parameter names to their description from a numpydoc ``Parameters`` section."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    in_params = False
    current: list[str] = []
    names: list[str] = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"-{3,}", nxt.strip()) and line.strip():
            if names:
                for n in names:
                    out[n] = " ".join(current).strip()
                names, current = [], []
            in_params = line.strip() == "Parameters"
            continue
        if re.fullmatch(r"-{3,}", line.strip()):
            continue
        if not in_params:
            continue
        if line and not line.startswith(" "):
            for n in names:
                out[n] = " ".join(current).strip()
            head = line.split(":", 1)[0]
            names = [n.strip().lstrip("*") for n in head.split(",")]
            current = []
        elif line.strip():
            current.append(line.strip())
    for n in names:
        out[n] = " ".join(current).strip()
    return out


def _make_spec(kind: str, name: str, func: Callable) -> NodeSpec:
    if kind not in KINDS:
        raise RegistryError(f"unknown node kind '{kind}'; valid kinds: {', '.join(KINDS)}")
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    docs = _parse_param_docs(func.__doc__ or "")
    inputs, settings = [], {}
    where = f"{func.__module__}:{func.__qualname__}"
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise RegistryError(
                f"node '{name}' ({where}): *args/**kwargs are not allowed; "
                "fix: list every input and setting explicitly in the signature"
            )
        if p.kind == p.KEYWORD_ONLY:
            if p.default is p.empty:
                raise RegistryError(
                    f"node '{name}' ({where}): setting '{p.name}' has no default; "
                    "fix: give every keyword-only setting a default value"
                )
            settings[p.name] = Setting(p.name, hints.get(p.name, Any), p.default, docs.get(p.name, ""))
        else:
            inputs.append(p.name)
    doc = inspect.cleandoc(func.__doc__ or "")
    summary = doc.splitlines()[0] if doc else ""
    return NodeSpec(kind, name, func, tuple(inputs), settings, summary, doc)


def register(kind: str, name: str, func: Callable, *, replace: bool = False) -> NodeSpec:
    """Register ``func`` as node type ``name`` of ``kind``.

    Parameters
    ----------
    kind : {'stimulus', 'dut', 'analyzer', 'sink'}
        Node kind.
    name : str
        Type name used in YAML (``type: name``). Must be unique across all kinds.
    func : callable
        The node function.
    replace : bool
        Allow replacing an existing registration (tests only). Default False.

    Raises
    ------
    RegistryError
        When ``name`` is already registered by another function.
    """
    spec = _make_spec(kind, name, func)
    old = _REGISTRY.get(name)
    if old is not None and not replace and old.origin != spec.origin:
        raise RegistryError(
            f"node type '{name}' is registered twice: by {old.origin} and by {spec.origin}; "
            "fix: rename one of them (type names are unique across all kinds)"
        )
    _REGISTRY[name] = spec
    func.__testbench_node__ = spec
    return spec


_register = register


def _decorator(kind: str):
    def factory(name: str, *, register: bool = True):
        def wrap(func: Callable) -> Callable:
            if register:
                _register(kind, name, func)
            else:
                func.__testbench_node__ = _make_spec(kind, name, func)
            return func

        return wrap

    factory.__doc__ = f"""Decorator registering a function as a **{kind}** node.

    Parameters
    ----------
    name : str
        Type name used in YAML as ``type: <name>``.
    register : bool
        ``False`` attaches the node spec without adding it to the registry (for nodes referenced
        only as ``module:function``). Default True.
    """
    factory.__name__ = kind
    return factory


stimulus = _decorator("stimulus")
dut = _decorator("dut")
analyzer = _decorator("analyzer")
sink = _decorator("sink")


def units_of(arr) -> str:
    """The ``units`` attribute of a signal (an ``xr.DataArray``), "1" (dimensionless) when absent."""
    return str(arr.attrs.get("units", "1"))


def product_units(a: str, b: str) -> str:
    """Units of a product of two quantities, e.g. ``'1' * 'V' -> 'V'``, ``'1' * '1' -> '1'``."""
    return "*".join(u for u in (a, b) if u != "1") or "1"


def load_builtins() -> None:
    """Import the built-in node modules and third-party entry points (once)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for mod in ("testbench.stimuli", "testbench.analyzers", "testbench.dut", "testbench.ablation", "testbench.sinks"):
        importlib.import_module(mod)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the built-ins
            raise RegistryError(
                f"entry point '{ep.name} = {ep.value}' of group '{ENTRY_POINT_GROUP}' failed to load: "
                f"{type(exc).__name__}: {exc}; fix: repair or uninstall that plugin"
            ) from exc


def registry() -> dict[str, NodeSpec]:
    """All registered node types, built-ins loaded."""
    load_builtins()
    return dict(_REGISTRY)


def lookup(type_name: str) -> NodeSpec:
    """Find a node type by registered name or by ``package.module:function`` reference.

    Raises
    ------
    RegistryError
        With a "did you mean" when the name is unknown, or the reason an import failed.
    """
    load_builtins()
    if ":" in type_name:
        mod_name, _, attr = type_name.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            raise RegistryError(
                f"cannot import module '{mod_name}' of node reference '{type_name}': {exc}; "
                "fix: make the module importable (install it, or run from the folder that holds it)"
            ) from exc
        func = getattr(mod, attr, None)
        if func is None:
            raise RegistryError(
                f"module '{mod_name}' has no attribute '{attr}'; "
                + did_you_mean(attr, [n for n in dir(mod) if not n.startswith("_")])
            )
        spec = getattr(func, "__testbench_node__", None)
        if spec is None:
            raise RegistryError(
                f"'{type_name}' is not a node; fix: decorate it with @stimulus/@dut/@analyzer/@sink "
                "from testbench.nodes"
            )
        return spec
    spec = _REGISTRY.get(type_name)
    if spec is None:
        raise RegistryError(f"unknown node type '{type_name}'; " + did_you_mean(type_name, _REGISTRY))
    return spec


# ---------------------------------------------------------------------------------------------
# value checking from annotations


def _strip_annotated(tp):
    checks = []
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tp = args[0]
        checks.extend(a for a in args[1:] if isinstance(a, Range))
    return tp, checks


def _type_text(tp) -> str:
    tp, checks = _strip_annotated(tp)
    origin = get_origin(tp)
    if origin is Literal:
        text = " | ".join(repr(a) for a in get_args(tp))
    elif origin in (typing.Union, types.UnionType):
        text = " | ".join(_type_text(a) for a in get_args(tp))
    elif origin is list:
        (inner,) = get_args(tp) or (Any,)
        text = f"list of {_type_text(inner)}"
    elif tp is type(None):
        text = "null"
    elif tp is Any:
        text = "any"
    else:
        text = getattr(tp, "__name__", str(tp))
    if checks:
        text += " (" + ", ".join(str(c) for c in checks) + ")"
    return text


def check_value(tp, value) -> tuple[Any, str | None]:
    """Convert ``value`` to the annotated type and check its declared range.

    Returns ``(converted, None)`` on success, or ``(value, rule)`` describing what was expected.
    Integers are accepted where a float is expected; booleans are never taken as numbers; strings
    are never converted to numbers (values are data, not code).
    """
    tp, checks = _strip_annotated(tp)
    origin = get_origin(tp)
    if tp is Any:
        return value, None
    if origin in (typing.Union, types.UnionType):
        rules = []
        for alt in get_args(tp):
            v, problem = check_value(alt, value)
            if problem is None:
                return _check_ranges(v, checks)
            rules.append(problem)
        return value, "expected " + _type_text(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return _check_ranges(value, checks)
        return value, f"expected one of {', '.join(repr(a) for a in allowed)}; " + did_you_mean(
            value, allowed
        )
    if tp is type(None):
        return (None, None) if value is None else (value, "expected null")
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            return value, f"expected {_type_text(tp)}"
        out = []
        for item in value:
            v, problem = check_value(inner, item)
            if problem:
                return value, f"list item {item!r}: {problem}"
            out.append(v)
        return _check_ranges(out, checks)
    if tp is bool:
        return (value, None) if isinstance(value, bool) else (value, "expected true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, "expected an integer"
        return _check_ranges(value, checks)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, "expected a number"
        return _check_ranges(float(value), checks)
    if tp is str:
        return (value, None) if isinstance(value, str) else (value, "expected a string")
    if isinstance(tp, type):
        return (value, None) if isinstance(value, tp) else (value, f"expected {tp.__name__}")
    return value, None


def _check_ranges(value, checks) -> tuple[Any, str | None]:
    for c in checks:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                problem = c.check(item)
                if problem:
                    return value, problem
    return value, None
