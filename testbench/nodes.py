"""Node registry: ``@stimulus``, ``@dut``, ``@analyzer`` and ``@sink``.

A node is a plain function. Its signature is its schema: inputs are positional parameters (other
nodes' outputs), settings are keyword-only parameters with defaults. Value checks are declared in the
annotation with :class:`Range` (``Annotated[float, Range(gt=0)]``) or ``Literal[...]``; the numpydoc
``Parameters`` section documents each setting and is what ``testbench nodes`` prints.

Built-in nodes register when :func:`load_builtins` imports the ``stimuli`` and ``analyzers``
packages, :mod:`testbench.dut`, :mod:`testbench.ablation` and :mod:`testbench.sinks`. Third-party nodes register through the entry-point group
``testbench.nodes`` or are referenced from YAML directly as ``package.module:function`` (the working
directory is searched too, after the installed packages; :func:`ship_modules` makes such modules
importable on dask.distributed workers). A plugin that fails to load is reported once and skipped.

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
import importlib.util
import inspect
import math
import os
import re
import sys
import types
import typing
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, get_args, get_origin

import xarray as xr

from testbench.errors import DuplicateNodeError, NodeError, PluginWarning, RegistryError, did_you_mean

KINDS = ("stimulus", "dut", "analyzer", "sink")
#: A dotted module name of a ``package.module:function`` node reference.
_DOTTED = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")
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


class Port:
    """The node kinds an input accepts, declared in the input's annotation.

    ``Annotated[xr.DataArray, Port("dut")]`` (or the aliases :data:`Stimulus`, :data:`Response`,
    :data:`Metrics`) makes wiring any other kind into that input a graph error. An input without a
    ``Port`` accepts :data:`DEFAULT_PORTS` of its node's kind.

    Parameters
    ----------
    *kinds : str
        One or more of ``stimulus``, ``dut``, ``analyzer`` (a sink produces no output).
    """

    def __init__(self, *kinds: str):
        bad = [k for k in kinds if k not in KINDS[:3]]
        if bad or not kinds:
            raise RegistryError(f"Port{kinds!r}: expected one or more of {', '.join(KINDS[:3])}")
        self.kinds = tuple(kinds)

    def __repr__(self) -> str:
        return f"Port({', '.join(map(repr, self.kinds))})"


#: Kinds an input accepts when its annotation declares no :class:`Port`, by the node's kind.
DEFAULT_PORTS = {
    "stimulus": ("stimulus",),
    "dut": ("stimulus",),
    "analyzer": ("stimulus", "dut", "analyzer"),
    "sink": ("stimulus", "dut", "analyzer"),
}

#: Annotation of an input that takes a stimulus node's output (``(*sweep dims, time)``).
Stimulus = Annotated[xr.DataArray, Port("stimulus")]
#: Annotation of an input that takes a DUT's response (``(network, cell, ..., time)``).
Response = Annotated[xr.DataArray, Port("dut")]
#: Annotation of an input that takes an analyzer's metrics (a ``metric`` dim).
Metrics = Annotated[xr.DataArray, Port("analyzer")]


@dataclass(frozen=True)
class NodeSpec:
    """A registered node: its kind, name, function, inputs and settings.

    ``ports`` maps each input to the node kinds it accepts; ``check`` is the node's preflight hook
    (see :mod:`testbench.preflight`), ``None`` when it declares none.
    """

    kind: str
    name: str
    func: Callable
    inputs: tuple[str, ...]
    settings: dict[str, Setting] = field(default_factory=dict)
    summary: str = ""
    doc: str = ""
    ports: dict[str, tuple[str, ...]] = field(default_factory=dict)
    check: Callable | None = None

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


#: Bytes a computing task holds per float64 response sample besides the response itself: the
#: analyzers' float64 working copies (response, broadcast stimulus, deviation from the final value).
ANALYZER_BYTES_PER_SAMPLE = 3 * 8


@dataclass(frozen=True)
class Block:
    """The largest array one task materializes: ``cells x points x length_steps`` samples.

    Attributes
    ----------
    cells : int
        Cells (rows of the kernel) in the block; ``chunk_cells`` bounds it in isolated mode.
    points : int
        Stimulus sweep points in the block; ``chunk_points`` bounds it in isolated mode.
    length_steps : int
        Samples per record, T.
    bytes_per_sample : int
        Bytes held per (cell, point, step) while the task runs, over every network, channel,
        direction and trace the block spans (kernel output, its reordered copy, analyzer
        temporaries).
    tunable : bool
        Whether ``chunk_cells``/``chunk_points`` set the block (isolated mode), or it is a whole
        network's run (in-network mode).
    """

    cells: int
    points: int
    length_steps: int
    bytes_per_sample: int
    tunable: bool = True

    @property
    def nbytes(self) -> int:
        """Bytes held by one task computing this block."""
        return self.cells * self.points * self.length_steps * self.bytes_per_sample


@dataclass(frozen=True)
class Facts:
    """What is known about a node's output before computing it; a preflight hook returns it.

    See :mod:`testbench.preflight` for how hooks are called and how sweep points are stacked.

    Attributes
    ----------
    dims : dict of str to int
        Non-time dimensions and their sizes (sweep dims, ``network``, ``cell``, ``channel``,
        ``metric``...).
    coords : dict of str to tuple
        Labels that matter for stacking sweep points and for the store's ``network`` dimension:
        ``network`` (labels), ``checksum`` and ``source`` (one per label), as a DUT hook returns
        them (:mod:`testbench.schema`).
    length_steps : int or None
        Samples per record T when the output has a ``time`` axis; ``None`` when it has none or it
        is unknown (a node without a hook).
    dt : float or None
        Sample interval in time units; ``None`` when unknown.
    eager_bytes : int
        Bytes computed eagerly while the graph is built (stimulus arrays), this node only.
    block : Block or None
        The largest block a task of this node materializes, ``None`` when negligible.
    """

    dims: dict[str, int] = field(default_factory=dict)
    coords: dict[str, tuple] = field(default_factory=dict)
    length_steps: int | None = None
    dt: float | None = None
    eager_bytes: int = 0
    block: Block | None = None

    @classmethod
    def signal(cls, length_steps: int, dt: float) -> Facts:
        """Facts of a plain float64 stimulus of ``length_steps`` samples with interval ``dt``."""
        return cls(length_steps=length_steps, dt=dt, eager_bytes=8 * length_steps)

    @property
    def size(self) -> int:
        """Values per record: the product of the non-time dims."""
        return math.prod(self.dims.values())

    def shape_text(self) -> str:
        """The output's shape as ``(dim=size, ..., time=T)``."""
        parts = [f"{d}={n}" for d, n in self.dims.items()]
        if self.length_steps is not None:
            parts.append(f"time={self.length_steps}")
        return "(" + ", ".join(parts) + ")"


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


def parse_param_docs(doc: str) -> dict[str, str]:
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


def _ports(kind: str, inputs: list[str], hints: dict) -> dict[str, tuple[str, ...]]:
    """Accepted kinds of each input: the :class:`Port` in its annotation, else the kind's default."""
    ports = {}
    for name in inputs:
        tp = hints.get(name)
        declared = [a for a in get_args(tp)[1:] if isinstance(a, Port)] if get_origin(tp) is Annotated else []
        ports[name] = declared[0].kinds if declared else DEFAULT_PORTS[kind]
    return ports


def _make_spec(kind: str, name: str, func: Callable, check: Callable | None = None) -> NodeSpec:
    if kind not in KINDS:
        raise RegistryError(f"unknown node kind '{kind}'; valid kinds: {', '.join(KINDS)}")
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    docs = parse_param_docs(func.__doc__ or "")
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
    if check is not None and not callable(check):
        raise RegistryError(f"node '{name}' ({where}): check={check!r} is not callable; "
                            "fix: pass the preflight hook function itself")
    return NodeSpec(kind, name, func, tuple(inputs), settings, summary, doc,
                    _ports(kind, inputs, hints), check)


def register(kind: str, name: str, func: Callable, *, replace: bool = False,
             check: Callable | None = None) -> NodeSpec:
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
    check : callable, optional
        Preflight hook ``check(settings, inputs) -> Facts`` (see :mod:`testbench.preflight`).

    Raises
    ------
    RegistryError
        When ``name`` is already registered by another function.
    """
    spec = _make_spec(kind, name, func, check)
    old = _REGISTRY.get(name)
    if old is not None and not replace and old.origin != spec.origin:
        raise DuplicateNodeError(
            f"node type '{name}' is registered twice: by {old.origin} and by {spec.origin}; "
            "fix: rename one of them (type names are unique across all kinds)"
        )
    _REGISTRY[name] = spec
    func.__testbench_node__ = spec
    return spec


_register = register


def _decorator(kind: str):
    def factory(name: str, *, register: bool = True, check: Callable | None = None):
        def wrap(func: Callable) -> Callable:
            if register:
                _register(kind, name, func, check=check)
            else:
                func.__testbench_node__ = _make_spec(kind, name, func, check)
            return func

        return wrap

    factory.__doc__ = f"""Decorator registering a function as a node of kind **{kind}**.

    Parameters
    ----------
    name : str
        Type name used in YAML as ``type: <name>``.
    register : bool
        ``False`` attaches the node spec without adding it to the registry (for nodes referenced
        only as ``module:function``). Default True.
    check : callable, optional
        The node's preflight hook, run by ``validate`` and ``run`` before any computation:
        ``check(settings, inputs) -> Facts`` gets the node's settings at one sweep point (defaults
        filled in) and the upstream nodes' :class:`testbench.preflight.Facts` by input name, raises
        :class:`~testbench.errors.SettingsError` (``setting=`` names the culprit) for values the
        node would refuse, and returns the static facts of its output. See
        :mod:`testbench.preflight`.
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


#: Entry-point name -> why it failed to load, for the plugins :func:`load_builtins` skipped.
BROKEN_PLUGINS: dict[str, str] = {}


def load_builtins() -> None:
    """Import the built-in node modules and third-party entry points (once).

    A plugin (an entry point of group ``testbench.nodes``) that fails to load is reported once, as a
    :class:`~testbench.errors.PluginWarning` naming it and the fix, and is skipped: graphs that do
    not use its nodes still validate and run, and :func:`lookup` names it when a node type is
    unknown (see :data:`BROKEN_PLUGINS`). Two plugins (or a plugin and a built-in) registering one
    type name stop everything: which one a graph meant cannot be guessed.
    """
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for mod in ("testbench.stimuli", "testbench.analyzers", "testbench.dut", "testbench.ablation", "testbench.sinks"):
        importlib.import_module(mod)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except DuplicateNodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the other nodes
            dist = getattr(ep.dist, "name", None)
            where = f"plugin '{ep.name} = {ep.value}'" + (f" (distribution {dist})" if dist else "")
            problem = f"{where} failed to load: {type(exc).__name__}: {exc}"
            BROKEN_PLUGINS[ep.name] = problem
            fix = f"`pip uninstall {dist}`" if dist else "uninstalling it"
            warnings.warn(f"{problem}; its node types are unavailable, the other nodes work; fix: "
                          f"repair that plugin or remove it ({fix})", PluginWarning, stacklevel=2)


def registry() -> dict[str, NodeSpec]:
    """All registered node types, built-ins loaded."""
    load_builtins()
    return dict(_REGISTRY)


def lookup(type_name: str) -> NodeSpec:
    """Find a node type by registered name or by ``package.module:function`` reference.

    A reference imports its module (running the module's top-level code), so it is refused before
    importing when it cannot name a node: a malformed reference, a module of the Python standard
    library, or a module that cannot be found. The attribute must be a decorated node function.

    Raises
    ------
    RegistryError
        With a "did you mean" when the name is unknown, or the reason a reference was refused or its
        import failed.
    """
    load_builtins()
    if ":" not in type_name:
        spec = _REGISTRY.get(type_name)
        if spec is None:
            broken = "".join(f" It may come from {problem}; fix: repair that plugin or remove it."
                             for problem in BROKEN_PLUGINS.values())
            raise RegistryError(f"unknown node type '{type_name}'; "
                                + did_you_mean(type_name, _REGISTRY) + broken)
        return spec
    mod_name, _, attr = type_name.partition(":")
    if not (_DOTTED.fullmatch(mod_name) and attr.isidentifier()):
        raise RegistryError(
            f"node reference {type_name!r} is not of the form package.module:function; fix: write e.g. "
            "my_nodes:pulse_train, or a registered type name (see `testbench nodes`)")
    if mod_name.partition(".")[0] in sys.stdlib_module_names:
        raise RegistryError(
            f"node reference '{type_name}' names the Python standard library module '{mod_name}', "
            "which holds no testbench nodes; fix: refer to a function decorated with "
            "@stimulus/@dut/@analyzer/@sink in your own module")
    _working_directory_importable()
    try:
        found = importlib.util.find_spec(mod_name)  # imports the parent packages, not the module
    except ModuleNotFoundError:  # a parent package is missing
        found = None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a parent package failed to import
        raise _import_failed(type_name, mod_name, exc) from exc
    if found is None:
        file = mod_name.replace(".", os.sep) + ".py"
        raise RegistryError(
            f"cannot import module '{mod_name}' of node reference '{type_name}': no such module is "
            f"installed or on the Python path; fix: make the module importable: run testbench from "
            f"the folder that holds {file} (now {os.getcwd()}), add that folder to PYTHONPATH, or "
            "install the package that holds it")
    try:
        mod = importlib.import_module(mod_name)
        func = getattr(mod, attr, None)
        spec = getattr(func, "__testbench_node__", None)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module failed to import
        raise _import_failed(type_name, mod_name, exc) from exc
    if func is None:
        raise RegistryError(
            f"module '{mod_name}' has no attribute '{attr}'; "
            + did_you_mean(attr, [n for n in dir(mod) if not n.startswith("_")]))
    if not isinstance(spec, NodeSpec):
        raise RegistryError(
            f"'{type_name}' is not a node; fix: decorate it with @stimulus/@dut/@analyzer/@sink "
            "from testbench.nodes")
    return spec


def ship_modules(address: str, specs) -> list[str]:
    """Make the modules of ``module:function`` nodes importable on a dask.distributed cluster.

    Workers unpickle node functions by module name, so a module found only on this machine's path
    (``./my_nodes.py``) would fail there with a deserialization error. A single-file top-level
    module is uploaded to every worker, present and future (``Client.upload_file``); a module
    inside a package must already be importable on the workers, which is checked here.

    Parameters
    ----------
    address : str
        The dask.distributed scheduler, e.g. ``tcp://127.0.0.1:8786``.
    specs : iterable of NodeSpec
        The graph's nodes; those not in the registry were reached through a module reference.

    Returns
    -------
    list of str
        The files uploaded.

    Raises
    ------
    RegistryError
        A package module that some worker cannot import, or a module whose upload failed there.
    """
    modules = sorted({s.func.__module__ for s in specs if _REGISTRY.get(s.name) is not s})
    if not modules:
        return []
    from distributed import Client

    uploaded = []
    with Client(address, timeout="10s") as client:
        for name in modules:
            spec = sys.modules[name].__spec__
            single = "." not in name and spec.submodule_search_locations is None and \
                str(spec.origin).endswith(".py")
            if single:
                try:
                    client.upload_file(spec.origin)  # also imports it on each worker
                except Exception as exc:  # noqa: BLE001 - the module failed on a worker
                    raise RegistryError(
                        f"uploading module '{name}' ({spec.origin}) to the dask workers at {address} "
                        f"failed: {type(exc).__name__}: {exc}; fix: make the module import on the "
                        "workers (its own imports installed there)") from exc
                uploaded.append(spec.origin)
                continue
            lacking = [w for w, ok in client.run(_importable, name).items() if not ok]
            if lacking:
                package = spec.submodule_search_locations is not None  # origin: .../__init__.py
                folder = Path(str(spec.origin)).parents[name.count(".") + package]
                raise RegistryError(
                    f"module '{name}' of a node reference cannot be imported on the dask workers "
                    f"{', '.join(sorted(lacking))} of {address}; only single-file modules are "
                    f"uploaded; fix: install its package on every worker, or start the workers "
                    f"with PYTHONPATH={folder}")
    return uploaded


def _importable(name: str) -> bool:
    """Whether module ``name`` can be found (run on each dask worker)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _working_directory_importable() -> None:
    """Put the current working directory on ``sys.path`` (once), as ``python script.py`` does.

    The ``testbench`` console script does not, so ``type: my_nodes:pulse_train`` would not find
    ``./my_nodes.py``. Appended, not prepended: a file in the working directory never shadows an
    installed package (and the standard library is refused by name before importing).
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()


def _import_failed(type_name: str, mod_name: str, exc: BaseException) -> RegistryError:
    return RegistryError(f"importing module '{mod_name}' of node reference '{type_name}' failed: "
                         f"{type(exc).__name__}: {exc}; fix: repair the module")


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
    elif origin is dict:
        key, value = get_args(tp) or (Any, Any)
        text = f"mapping of {_type_text(key)} to {_type_text(value)}"
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
    are never converted to numbers (values are data, not code); a float setting is always finite (no
    built-in node gives NaN or infinity a meaning, so they are refused as mistakes).
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
        # an alternative of the right type but a wrong value (NaN, out of range) says which rule
        specific = [r for r in rules if not r.startswith("expected")]
        return value, specific[0] if specific else "expected " + _type_text(tp)
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
    if origin is dict:
        key_tp, value_tp = get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            return value, f"expected {_type_text(tp)}"
        checked = {}
        for key, item in value.items():
            k, problem = check_value(key_tp, key)
            v, problem = (k, problem) if problem else check_value(value_tp, item)
            if problem:
                return value, f"entry {key!r}: {problem}"
            checked[k] = v
        return checked, None
    if tp is bool:
        return (value, None) if isinstance(value, bool) else (value, "expected true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, "expected an integer"
        return _check_ranges(value, checks)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, "expected a number"
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            number = math.inf
        if not math.isfinite(number):
            return value, "must be a finite number (not NaN or infinity)"
        return _check_ranges(number, checks)
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
