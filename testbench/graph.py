"""Graph language: YAML text → validated :class:`Graph`, every problem reported at once.

A graph file looks like::

    description: what this graph measures        # optional
    output: results/sine_sweep.zarr              # where the result store goes (path or URL)
    scheduler: threads                            # optional: synchronous|threads|processes|tcp://host:port
    save_responses: false                         # optional: also store raw responses (time dim)
    nodes:
      sine:                                       # node instance name
        type: sine                                # registered type, or package.module:function
        settings: {length_steps: 1000, dt: 1.0}   # keyword-only settings of the node function
        sweep: {frequency: [0.01, 0.02]}          # each swept setting becomes a result dimension
      cells:
        type: lstm_cells
        inputs: [sine]                            # positional, or {param: node} by name
      sine_metrics:
        type: sine_response
        inputs: {response: cells, stimulus: sine}

Values are data, never evaluated as code: YAML tags are refused, and so are texts over the limits
(:data:`MAX_TEXT_BYTES`, :data:`MAX_YAML_VALUES` with aliases expanded, :data:`MAX_YAML_DEPTH`), which
keeps reading any file quick. ``--set`` values are read the same way. Defaults are not copied into the
graph: a node's settings are the function's defaults updated with what the graph gives.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from testbench.errors import GraphError, Problem, RegistryError, did_you_mean
from testbench.nodes import KINDS, NodeSpec, lookup

TOP_KEYS = ("description", "output", "scheduler", "save_responses", "nodes")
NODE_KEYS = ("type", "kind", "settings", "sweep", "inputs", "description")
SCHEDULERS = ("synchronous", "threads", "processes")
#: A dask.distributed scheduler address: ``PROTOCOL://HOST:PORT`` (an IPv6 host in brackets), or
#: ``inproc://NAME``.
_ADDRESS = re.compile(r"^(?:(tcp|tls|ucx|ws|wss)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.\-]*)"
                      r":([0-9]{1,5})|inproc://\S+)$")


def scheduler_problem(scheduler) -> str | None:
    """Why ``scheduler`` is not a scheduler name or a well-formed address; ``None`` when it is.

    Parameters
    ----------
    scheduler : object
        ``synchronous``, ``threads``, ``processes``, or ``tcp://HOST:PORT`` (also ``tls``, ``ucx``,
        ``ws``, ``wss``; port 1..65535) or ``inproc://NAME``.
    """
    if isinstance(scheduler, str) and scheduler in SCHEDULERS:
        return None
    m = _ADDRESS.match(scheduler) if isinstance(scheduler, str) else None
    if m is None or (m.group(3) is not None and not 1 <= int(m.group(3)) <= 65535):
        return (f"'scheduler' is {scheduler!r}; expected one of {', '.join(SCHEDULERS)} or a "
                "dask.distributed address PROTOCOL://HOST:PORT (port 1..65535)")
    return None
#: The most points the sweeps of a graph may make together: every analyzer's metrics share one grid,
#: so the sweeps of all nodes multiply (each point simulates every cell over the whole record).
SWEEP_POINTS_LIMIT = 100_000
#: Largest graph file or ``--set`` value, in bytes (hand-written graphs are a few kilobytes).
MAX_TEXT_BYTES = 1 << 18
#: Most values (scalars, lists, mappings) in one YAML document, counting each alias as the values it
#: repeats; keeps reading a graph under about a second (ruamel.yaml reads ~10 000 values/s).
MAX_YAML_VALUES = 10_000
#: Deepest nesting of lists and mappings in one YAML document (graphs use about 6).
MAX_YAML_DEPTH = 50
#: Longest integer literal, in characters (no setting takes a larger number).
MAX_INT_DIGITS = 100
_GRAPH_TEXT_FIX = ("save the graph as UTF-8 text: a binary file is not a graph (convert a Latin-1 file "
                   "with e.g. `iconv -f latin1 -t utf-8`)")
_SET_TEXT_FIX = "give the --set value as UTF-8 text without control characters (check the shell's encoding)"
#: Characters that YAML text may not hold (ruamel.yaml's reader refuses them): control characters but
#: tab and line breaks, surrogates, U+FFFE and U+FFFF.
_NOT_TEXT = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class NodeDecl:
    """One node instance of a graph, validated."""

    name: str
    spec: NodeSpec
    settings: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, list] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # parameter name -> node name
    #: 0-based (line, col) in the YAML text of the node (key ``""``) and of its keys
    #: (``"settings.layer"``, ``"sweep.frequency"``, ``"inputs.stimulus"``); (-1, -1) or absent for
    #: values given by ``--set``
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Graph:
    """A validated testbench graph.

    Attributes
    ----------
    nodes : dict of str to NodeDecl
        In topological order (inputs before the nodes that use them).
    output : str
        Result store path or URL.
    scheduler : str
        ``synchronous``, ``threads``, ``processes`` or a dask.distributed scheduler address.
    save_responses : bool
        Also store every DUT's raw response (with its ``time`` dimension).
    text : str
        The YAML text the graph came from (stored as provenance).
    source : str
        File name (or ``<string>``).
    """

    nodes: dict[str, NodeDecl]
    output: str = "results/out.zarr"
    scheduler: str = "threads"
    save_responses: bool = False
    description: str = ""
    text: str = ""
    source: str = "<string>"


class _Collector:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.overridden: set[tuple[str, str]] = set()  # (node, setting) given by --set

    def add(self, message, pos=(0, 0), node="", key="", fix=""):
        """Record a problem at 0-based ``pos``; a setting without a position that ``--set`` gave is
        located at ``--set NODE.SETTING``."""
        line, col = pos
        setting = re.match(r"(?:settings|sweep)\.([^.\[]+)", key)
        if pos == (-1, -1) and setting and (node, setting[1]) in self.overridden:
            self.problems.append(Problem(message, f"--set {node}.{setting[1]}", 0, 0, node, key, fix))
            return
        self.problems.append(Problem(message, self.source, line + 1, col + 1, node, key, fix))


def _position(get, *args) -> tuple[int, int]:
    """0-based (line, col) from ruamel's line/column info; (-1, -1) where there is none (--set)."""
    try:
        pos = get(*args)
    except (AttributeError, KeyError, TypeError, IndexError):
        return (-1, -1)
    return tuple(pos) if pos is not None else (-1, -1)


def _pos_key(mapping, key):
    return _position(lambda: mapping.lc.key(key))


def _pos_value(mapping, key):
    pos = _position(lambda: mapping.lc.value(key))
    return pos if pos != (-1, -1) else _pos_key(mapping, key)


def _pos_item(seq, i):
    return _position(lambda: seq.lc.item(i))


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse a ``--set node.setting=value`` override; the value is read as YAML data.

    The value goes through the same bounded loader as a graph file (size, value count and depth
    limits, no tags), so ``--set sine.frequency=0.1`` gives a float and ``=[0.1, 0.2]`` a list.

    Parameters
    ----------
    text : str
        ``NODE.SETTING=VALUE``, as given on the command line (undecodable bytes of ``argv`` arrive
        as surrogate escapes and are reported).

    Returns
    -------
    (node, setting, value) : tuple of str, str, object

    Raises
    ------
    GraphError
        When the text is not of the form ``node.setting=value``, or the value is not valid YAML data;
        located at ``--set NODE.SETTING``.
    """
    m = re.fullmatch(r"([^.=\s]+)\.([^.=\s]+)=(.*)", text.strip(), flags=re.S)
    _decode(_encode(text), f"--set {m[1]}.{m[2]}" if m else "--set", fix=_SET_TEXT_FIX)
    if not m:
        raise GraphError([Problem(
            f"override {_show(text)} is not of the form node.setting=value", "--set",
            fix="write e.g. --set sine.frequency=0.05 or --set cells.weights=[zoo:co2-64,zoo:co2-128]",
        )])
    node, setting, raw = m.groups()
    out = _Collector(f"--set {node}.{setting}")
    value = _load_yaml(raw, out, fix=f"write the value as YAML data: a number, true or false, a list "
                                     f"[a, b], or a quoted string (--set '{node}.{setting}=\"text\"')")
    if out.problems:
        raise GraphError(out.problems)
    return node, setting, value


def load_graph(source: str | Path, *, text: str | None = None, overrides: list[str] = ()) -> Graph:
    """Read and validate a graph file (or ``text``), reporting every problem at once.

    ``validate`` and ``run`` both read graphs through this function.

    Parameters
    ----------
    source : str or Path
        Path of the YAML file (UTF-8, at most :data:`MAX_TEXT_BYTES`); used for locations in messages
        when ``text`` is given.
    text : str, optional
        YAML text to use instead of reading ``source``.
    overrides : list of str
        ``node.setting=value`` overrides applied before validation (``--set`` on the CLI). A list value
        for a setting that does not take a list is a sweep.

    Returns
    -------
    Graph

    Raises
    ------
    GraphError
        Listing every problem with file:line:col, node, key path, the value received, the rule and a fix.
    """
    name = str(source)
    text = _decode(_read(name) if text is None else _encode(text), name)
    out = _Collector(name)
    doc = _load_yaml(text, out)
    if out.problems:
        raise GraphError(out.problems)
    graph = _validate(doc, out, list(overrides))
    if out.problems:
        raise GraphError(out.problems)
    graph.text, graph.source = text, name
    return graph


def _read(name: str) -> bytes:
    """The first ``MAX_TEXT_BYTES + 1`` bytes of a file: enough to refuse a larger one (or an endless
    one such as ``/dev/zero``) without reading it."""
    try:
        with open(name, "rb") as f:
            return f.read(MAX_TEXT_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise GraphError([Problem(f"cannot read graph file: {reason}", name,
                                  fix="check the path")]) from None


def _encode(text: str) -> bytes:
    """Text back to the bytes it came from: undecodable ``argv`` bytes (surrogate escapes) become
    those bytes again, so that :func:`_decode` reports them."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escape: invalid UTF-8 as well
        return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes, where: str, fix: str = _GRAPH_TEXT_FIX) -> str:
    """UTF-8 text of at most :data:`MAX_TEXT_BYTES` bytes without control characters, or a GraphError
    located at ``where`` (line and column of the first bad byte) with ``fix``."""
    if len(data) > MAX_TEXT_BYTES:
        raise GraphError([Problem(
            f"more than {MAX_TEXT_BYTES:,} bytes (the limit for a graph or a --set value)", where,
            fix="a graph is a short YAML file of a few kilobytes: check that this is the file you "
                "meant; split a very large study into several graphs")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GraphError([Problem(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} ({exc.reason})",
            where, *_line_col(data, exc.start), fix=fix)]) from None
    bad = _NOT_TEXT.search(text)
    if bad:
        offset = len(text[:bad.start()].encode())
        raise GraphError([Problem(
            f"control character U+{ord(bad.group()):04X} at byte offset {offset} (YAML text may hold "
            "tabs and line breaks, no other control characters)", where, *_line_col(data, offset),
            fix=fix)])
    return text


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes) of a byte offset."""
    return data.count(b"\n", 0, offset) + 1, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


#: Plain-data YAML types (resolved tags); YAML reads every other scalar (a date, ``=``) as a type that
#: no setting takes.
_DATA_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map",
                                                  "merge")}


class _Refused(Exception):
    """A YAML document over a limit or holding a tag, raised while it is composed."""

    def __init__(self, message: str, mark, fix: str):
        super().__init__(message)
        self.message, self.mark, self.fix = message, mark, fix


class _BoundedComposer(Composer):
    """ruamel's composer that counts values as it reads them and stops at the first one over a limit.

    Aliases count as the values they stand for (a "billion laughs" document is refused after a few
    hundred events, not expanded), and add their depth to where they appear.
    """

    def __init__(self, loader=None):
        super().__init__(loader)
        self.warn_double_anchors = False  # re-defining an anchor is valid YAML
        self._values = 0
        self._open: list[int] = []  # per collection being composed: depth of its deepest value so far
        self._shape: dict[int, tuple[int, int]] = {}  # id(finished node) -> (values, depth)

    def compose_node(self, parent, index):
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is reported by ruamel
                if id(target) not in self._shape:
                    raise _Refused(f"alias *{event.anchor} refers to a value that contains it (a "
                                   "recursive structure)", event.start_mark,
                                   "write the value out instead of referring to itself")
                self._grow(*self._shape[id(target)], event.start_mark)
            return super().compose_node(parent, index)
        if event.tag is not None:
            raise _Refused(f"YAML tag {event.tag} is not allowed: graph values are plain data",
                           event.start_mark, "remove the tag (quote the value if it is a string)")
        start = self._values
        self._grow(1, 1, event.start_mark)
        self._open.append(0)
        node = super().compose_node(parent, index)
        depth = 1 + self._open.pop()
        self._shape[id(node)] = (self._values - start, depth)
        if self._open:
            self._open[-1] = max(self._open[-1], depth)
        self._check_type(node)
        return node

    def _grow(self, values: int, depth: int, mark) -> None:
        self._values += values
        if self._values > MAX_YAML_VALUES:
            raise _Refused(f"the document holds more than {MAX_YAML_VALUES:,} values (aliases count "
                           "as the values they repeat)", mark,
                           "write a shorter graph: fewer values, no aliases of large lists")
        if len(self._open) + depth > MAX_YAML_DEPTH:
            raise _Refused(f"values nested more than {MAX_YAML_DEPTH} levels deep (aliases count "
                           "as the values they repeat)", mark, "flatten the lists and mappings")
        if self._open:
            self._open[-1] = max(self._open[-1], depth)

    @staticmethod
    def _check_type(node) -> None:
        """Refuse a value that YAML reads as a type no setting takes (a date, ``=``), or an integer
        too long to convert (Python refuses integer strings over 4300 digits)."""
        tag = str(node.tag)
        if tag not in _DATA_TAGS:
            kind = tag.rsplit(":", 1)[-1]
            raise _Refused(f"YAML reads {_show(node.value)} as a {kind}, which no setting takes",
                           node.start_mark, f"quote it to make it a string: '{node.value}'")
        if tag.endswith(":int") and len(node.value) > MAX_INT_DIGITS:
            raise _Refused(f"an integer of {len(node.value):,} characters (limit {MAX_INT_DIGITS})",
                           node.start_mark, "write a smaller number")


def _load_yaml(text: str, out: _Collector,
               fix: str = "fix the YAML syntax (indentation, colons, brackets, quotes)"):
    """YAML text → data (ruamel round-trip mappings and lists, which keep line/column of every key and
    value) within the limits; ``None`` with problems added to ``out`` (with ``fix`` for a syntax
    error) when the text is not valid."""
    yaml = YAML()
    yaml.Composer = _BoundedComposer
    yaml.allow_duplicate_keys = True  # _check_keys reports them, at the second key
    try:
        root = yaml.compose(text)
        if root is None:
            return None
        _check_keys(root, out)
        return None if out.problems else yaml.constructor.construct_document(root)
    except _Refused as exc:
        out.add(exc.message, (exc.mark.line, exc.mark.column), fix=exc.fix)
    except YAMLError as exc:  # syntax, or e.g. a merge key '<<' whose value is not a mapping
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        message = ", ".join(p for p in parts if p) or str(exc)
        out.add(f"YAML syntax error: {message}", (mark.line, mark.column) if mark else (0, 0), fix=fix)
    return None


def _check_keys(root, out: _Collector) -> None:
    """Keys are plain values (a list or mapping as a key is refused), and unique: a duplicate key
    (notably a duplicate node name) is an error, located at the second one."""
    stack, seen_nodes = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # a value repeated by an alias is checked once
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            seen: dict[str, Any] = {}
            for k, v in node.value:
                stack.append(v)
                where = (k.start_mark.line, k.start_mark.column)
                if not isinstance(k, ScalarNode):
                    out.add("a key must be a plain value such as a name, not a list or mapping", where,
                            fix="remove the '?' or brackets before the key, or write the key as a "
                                "quoted string")
                    continue
                key = str(k.value)
                if key in seen:
                    first = seen[key].start_mark.line + 1
                    out.add(f"duplicate key '{key}' (first defined on line {first})", where, key=key,
                            fix="give every node (and every key) a unique name")
                else:
                    seen[key] = k
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _validate(doc, out: _Collector, overrides: list[str]) -> Graph:
    if doc is None or (hasattr(doc, "get") and not doc.get("nodes")):
        out.add("the graph is empty: it declares no nodes", fix="add a 'nodes:' mapping with at "
                "least a stimulus, a dut and an analyzer (see graphs/characterize.yaml)")
        return Graph({})
    if not hasattr(doc, "items"):
        out.add(f"the top level must be a mapping with keys {', '.join(TOP_KEYS)}; got "
                f"{type(doc).__name__}")
        return Graph({})
    for key in doc:
        if key not in TOP_KEYS:
            out.add(f"unknown top-level key '{key}'", _pos_key(doc, key), key=str(key),
                    fix=did_you_mean(key, TOP_KEYS))
    graph = Graph({})
    output = doc.get("output", graph.output)
    if not isinstance(output, str) or not output.strip():
        out.add(f"'output' must be a non-empty path or URL string; got {output!r}",
                _pos_value(doc, "output"), key="output", fix="e.g. output: results/run.zarr")
    else:
        graph.output = output
    sched = doc.get("scheduler", graph.scheduler)
    problem = scheduler_problem(sched)
    if problem is not None:
        out.add(problem, _pos_value(doc, "scheduler"), key="scheduler",
                fix=f"{did_you_mean(sched, SCHEDULERS)}; or an address like tcp://127.0.0.1:8786")
    else:
        graph.scheduler = sched
    save = doc.get("save_responses", False)
    if not isinstance(save, bool):
        out.add(f"'save_responses' must be true or false; got {save!r}",
                _pos_value(doc, "save_responses"), key="save_responses")
    else:
        graph.save_responses = save
    graph.description = str(doc.get("description", "") or "")

    nodes = doc.get("nodes")
    if not hasattr(nodes, "items"):
        out.add(f"'nodes' must be a mapping of node names to node declarations; got "
                f"{type(nodes).__name__}", _pos_value(doc, "nodes"), key="nodes")
        return graph
    _apply_overrides(nodes, overrides, out)

    decls: dict[str, NodeDecl] = {}
    raw_inputs: dict[str, dict[str, tuple[str, tuple]]] = {}
    for name, body in nodes.items():
        decl = _validate_node(str(name), body, nodes, out, raw_inputs)
        if decl is not None:
            decls[decl.name] = decl
    _validate_inputs(decls, raw_inputs, nodes, out)
    _validate_sweep_dims(decls, nodes, out)
    graph.nodes = _toposort(decls, raw_inputs, nodes, out)
    return graph


def _apply_overrides(nodes, overrides, out: _Collector) -> None:
    """Put each ``--set`` value in its node's settings (replacing a setting or sweep of the graph)."""
    for text in overrides:
        try:
            node, setting, value = parse_override(text)
        except GraphError as exc:
            out.problems.extend(exc.problems)
            continue
        if node not in nodes:
            out.problems.append(Problem(f"override {_show(text)}: no node '{node}'",
                                        f"--set {node}.{setting}", node=node,
                                        fix=did_you_mean(node, nodes)))
            continue
        body = nodes[node]
        if not isinstance(body, dict) or not isinstance(body.get("settings") or {}, dict):
            continue  # reported by _validate_node
        body = nodes[node] = _unshared(body)
        body["settings"] = _unshared(body.get("settings") or {}, without=setting)
        if isinstance(body.get("sweep"), dict):
            body["sweep"] = _unshared(body["sweep"], without=setting)
        body["settings"][setting] = value
        out.overridden.add((node, setting))


_NO_KEY = object()


def _unshared(mapping: dict, without=_NO_KEY):
    """A copy of a YAML mapping, less the key ``without``, with the positions of the other keys: an
    override then changes one node even where the graph shares a mapping through an alias, and its
    value has no position in the file."""
    from ruamel.yaml.comments import CommentedMap

    copy = CommentedMap((k, v) for k, v in mapping.items() if k != without)
    lc = getattr(mapping, "lc", None)
    if lc is not None:
        copy.lc.line, copy.lc.col = lc.line, lc.col
        for k, pos in (lc.data or {}).items():
            if k != without:
                copy.lc.add_kv_line_col(k, pos)
    return copy


def _validate_node(name, body, nodes, out: _Collector, raw_inputs) -> NodeDecl | None:
    pos = _pos_key(nodes, name)
    if not hasattr(body, "items"):
        out.add(f"node declaration must be a mapping with keys {', '.join(NODE_KEYS)}; got {_show(body)}",
                pos, node=name, fix="write e.g.\n      sine:\n        type: sine")
        return None
    for key in body:
        if key not in NODE_KEYS:
            out.add(f"unknown key '{key}'", _pos_key(body, key), node=name, key=str(key),
                    fix=did_you_mean(key, NODE_KEYS))
    type_name = body.get("type")
    if not isinstance(type_name, str):
        out.add("missing 'type'" if type_name is None else f"'type' must be a string; got {_show(type_name)}",
                pos if type_name is None else _pos_value(body, "type"), node=name, key="type",
                fix="give the node type: a registered name (see `testbench nodes`) or "
                    "package.module:function")
        return None
    try:
        spec = lookup(type_name)
    except RegistryError as exc:
        out.add(str(exc), _pos_value(body, "type"), node=name, key="type")
        return None
    kind = body.get("kind")
    if kind is not None and kind != spec.kind:
        out.add(f"'kind' is {kind!r} but type '{type_name}' is a {spec.kind} node",
                _pos_value(body, "kind"), node=name, key="kind",
                fix=f"write kind: {spec.kind}, or remove 'kind' (it is derived from the type)"
                if kind in KINDS else did_you_mean(kind, KINDS))
    decl = NodeDecl(name, spec, positions={"": pos})

    settings = body.get("settings") or {}
    if not hasattr(settings, "items"):
        out.add(f"'settings' must be a mapping; got {_show(settings)}", _pos_value(body, "settings"),
                node=name, key="settings")
        settings = {}
    for key, value in settings.items():
        kpath = f"settings.{key}"
        # a --set value replacing one of the file keeps the file's position in ruamel: not its own
        decl.positions[kpath] = ((-1, -1) if (name, key) in out.overridden
                                 else _pos_value(settings, key))
        if key not in spec.settings:
            out.add(f"unknown setting '{key}' for type '{type_name}'", _pos_key(settings, key),
                    node=name, key=kpath, fix=did_you_mean(key, spec.settings))
            continue
        converted, problem = spec.check_setting(key, value)
        if problem is None:
            decl.settings[key] = converted
            continue
        # a list given for a scalar setting (e.g. from --set) is a sweep of that setting
        if isinstance(value, list) and value and all(
            spec.check_setting(key, v)[1] is None for v in value
        ):
            swept = [spec.check_setting(key, v)[0] for v in value]
            dup = _first_duplicate(swept)
            if dup is None:
                decl.sweep[key] = swept
            else:
                out.add(_duplicate_text(value, dup), _pos_value(settings, key), node=name, key=kpath,
                        fix="list each value once")
            continue
        out.add(f"value {_show(value)} {problem}", _pos_value(settings, key), node=name, key=kpath,
                fix=f"expected {spec.settings[key].type_text}")

    sweep = body.get("sweep") or {}
    if not hasattr(sweep, "items"):
        out.add(f"'sweep' must be a mapping of setting names to lists of values; got {_show(sweep)}",
                _pos_value(body, "sweep"), node=name, key="sweep")
        sweep = {}
    for key, values in sweep.items():
        kpath = f"sweep.{key}"
        decl.positions[kpath] = _pos_value(sweep, key)
        if key not in spec.settings:
            out.add(f"cannot sweep '{key}': type '{type_name}' has no such setting",
                    _pos_key(sweep, key), node=name, key=kpath, fix=did_you_mean(key, spec.settings))
            continue
        if key in settings:
            out.add(f"'{key}' is both set and swept", _pos_key(sweep, key), node=name, key=kpath,
                    fix=f"remove settings.{key} or sweep.{key}")
            continue
        if not isinstance(values, list) or not values:
            out.add(f"a sweep needs a non-empty list of values; got {_show(values)}",
                    _pos_value(sweep, key), node=name, key=kpath, fix=f"write {key}: [v1, v2, ...]")
            continue
        good = []
        for i, v in enumerate(values):
            converted, problem = spec.check_setting(key, v)
            if problem:
                out.add(f"sweep value {_show(v)} {problem}", _pos_item(values, i), node=name,
                        key=f"{kpath}[{i}]", fix=f"expected {spec.settings[key].type_text}")
            good.append(converted)
        dup = _first_duplicate(good)
        if dup is not None:
            out.add(_duplicate_text(values, dup), _pos_item(values, dup), node=name,
                    key=f"{kpath}[{dup}]", fix="list each value once")
            continue
        decl.sweep[key] = good

    inputs = body.get("inputs")
    raw: dict[str, tuple[str, tuple]] = {}
    if inputs is None:
        pass
    elif isinstance(inputs, list):
        if len(inputs) > len(spec.inputs):
            out.add(f"{len(inputs)} inputs given but type '{type_name}' takes "
                    f"{len(spec.inputs)} ({', '.join(spec.inputs) or 'none'})",
                    _pos_value(body, "inputs"), node=name, key="inputs",
                    fix="remove the extra inputs")
        for i, (param, src) in enumerate(zip(spec.inputs, inputs)):
            raw[param] = (src, _pos_item(inputs, i))
    elif hasattr(inputs, "items"):
        for param, src in inputs.items():
            if param not in spec.inputs:
                out.add(f"type '{type_name}' has no input '{param}'", _pos_key(inputs, param),
                        node=name, key=f"inputs.{param}",
                        fix=did_you_mean(param, spec.inputs) if spec.inputs else "it takes no inputs")
                continue
            raw[param] = (src, _pos_value(inputs, param))
    elif isinstance(inputs, str):
        if spec.inputs:
            raw[spec.inputs[0]] = (inputs, _pos_value(body, "inputs"))
    else:
        out.add(f"'inputs' must be a list of node names or a mapping {{input: node}}; got "
                f"{_show(inputs)}", _pos_value(body, "inputs"), node=name, key="inputs")
    for param in spec.inputs:
        if param not in raw:
            out.add(f"missing input '{param}' of type '{type_name}' (inputs: {', '.join(spec.inputs)})",
                    _pos_key(body, "inputs") if "inputs" in body else pos, node=name,
                    key=f"inputs.{param}", fix=f"add inputs: {{{param}: <node name>}}")
    raw_inputs[name] = raw
    return decl


def _validate_inputs(decls, raw_inputs, nodes, out: _Collector) -> None:
    for name, raw in raw_inputs.items():
        for param, (src, pos) in raw.items():
            if not isinstance(src, str) or src not in nodes:
                out.add(f"input '{param}' refers to unknown node {_show(src)}", pos, node=name,
                        key=f"inputs.{param}", fix=did_you_mean(src, nodes))
                continue
            if src == name:
                out.add(f"input '{param}' refers to the node itself", pos, node=name,
                        key=f"inputs.{param}", fix="connect another node's output")
                continue
            if name in decls:
                decls[name].inputs[param] = src
                decls[name].positions[f"inputs.{param}"] = pos
        decl = decls.get(name)
        if decl is None:
            continue
        for param, src in decl.inputs.items():
            up = decls.get(src)
            accepts = decl.spec.ports.get(param, ())
            if up is None or up.spec.kind in accepts:
                continue
            what = " (a sink produces no output)" if up.spec.kind == "sink" else ""
            fitting = [n for n, d in decls.items() if d.spec.kind in accepts and n != name]
            out.add(f"input '{param}' of type '{decl.spec.name}' takes a {' or '.join(accepts)} "
                    f"node, but '{src}' is a {up.spec.kind} node ({up.spec.name}){what}",
                    raw[param][1], node=name, key=f"inputs.{param}",
                    fix=f"connect a {' or '.join(accepts)} node"
                        + (f" such as {', '.join(repr(n) for n in fitting[:4])}" if fitting else ""))


def _validate_sweep_dims(decls, nodes, out: _Collector) -> None:
    """Each swept setting is one dimension of the result grid (named by
    :func:`testbench.schema.sweep_dims`: ``<node>.<setting>`` where several nodes sweep a setting of
    one name), and the product of the sweeps of all nodes is within :data:`SWEEP_POINTS_LIMIT`."""
    sweeps = sorted(((len(v), name, key) for name, d in decls.items() for key, v in d.sweep.items()),
                    reverse=True)
    points = math.prod(n for n, _, _ in sweeps)
    if points > SWEEP_POINTS_LIMIT:
        _, name, key = sweeps[0]
        factors = " x ".join(f"{node}.{k} {m:,}" for m, node, k in sweeps)
        out.add(f"the sweeps make a grid of {points:,} points ({factors}); the limit is "
                f"{SWEEP_POINTS_LIMIT:,}", _sweep_pos(decls[name], key, nodes),
                node=name, key=f"sweep.{key}",
                fix="sweep fewer values: the sweeps of all nodes multiply, as every analyzer's "
                    "metrics share one grid; or split the study into several graphs")


def _sweep_pos(decl: NodeDecl, key: str, nodes) -> tuple[int, int]:
    """Position of a swept setting: its sweep entry, or the list given as its setting (or by --set)."""
    for kpath in (f"sweep.{key}", f"settings.{key}"):
        if kpath in decl.positions:
            return decl.positions[kpath]
    return _pos_key(nodes, decl.name)


def _toposort(decls, raw_inputs, nodes, out: _Collector) -> dict[str, NodeDecl]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name, path):
        if state.get(name) == 2 or name not in raw_inputs:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            out.add(f"cycle: {' -> '.join(cycle)}", _pos_key(nodes, name), node=name, key="inputs",
                    fix="a graph flows one way: stimuli -> duts -> analyzers; remove one of these inputs")
            return
        state[name] = 1
        for src, _ in raw_inputs[name].values():
            if isinstance(src, str) and src in nodes:
                visit(src, path + [name])
        state[name] = 2
        order.append(name)

    for name in raw_inputs:
        visit(name, [])
    return {n: decls[n] for n in order if n in decls}


def _first_duplicate(values: list) -> int | None:
    """Index of the first value equal to an earlier one (compared after conversion: 1 == 1.0)."""
    seen = set()
    for i, v in enumerate(values):
        try:
            hash(v)
        except TypeError:  # a list or mapping: compare its text
            key = ("repr", repr(v))
        else:
            key = ("value", v)
        if key in seen:
            return i
        seen.add(key)
    return None


def _duplicate_text(values: list, i: int) -> str:
    return f"sweep values {_show(values)} contain duplicates: {_show(values[i])} is listed twice"


def _show(value) -> str:
    text = repr(value if not hasattr(value, "items") else dict(value))
    return text if len(text) <= 60 else text[:57] + "..."
