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

Values are data, never evaluated as code. Defaults are not copied into the graph: a node's settings
are the function's defaults updated with what the graph gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from testbench.errors import GraphError, Problem, RegistryError, did_you_mean
from testbench.nodes import KINDS, NodeSpec, lookup

TOP_KEYS = ("description", "output", "scheduler", "save_responses", "nodes")
NODE_KEYS = ("type", "kind", "settings", "sweep", "inputs", "description")
SCHEDULERS = ("synchronous", "threads", "processes")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")
#: The largest number of simulated samples (cells x sweep points x steps) a graph may ask for
#: before validation refuses it as a likely mistake (~8 GB of float64 responses if kept).
SWEEP_POINTS_LIMIT = 100_000


@dataclass
class NodeDecl:
    """One node instance of a graph, validated."""

    name: str
    spec: NodeSpec
    settings: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, list] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # parameter name -> node name


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

    def add(self, message, pos=(0, 0), node="", key="", fix=""):
        line, col = pos
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
    """Parse a ``--set node.setting=value`` override; the value is read as a YAML scalar or list.

    Raises
    ------
    GraphError
        When the text is not of the form ``node.setting=value``.
    """
    m = re.fullmatch(r"([^.=\s]+)\.([^.=\s]+)=(.*)", text.strip(), flags=re.S)
    if not m:
        raise GraphError([Problem(
            f"override {text!r} is not of the form node.setting=value", "--set",
            fix="write e.g. --set sine.frequency=0.05 or --set cells.weights=[zoo:co2-64,zoo:co2-128]",
        )])
    node, setting, raw = m.groups()
    value = YAML(typ="safe").load(raw) if raw.strip() else None
    return node, setting, value


def load_graph(source: str | Path, *, text: str | None = None, overrides: list[str] = ()) -> Graph:
    """Read and validate a graph file (or ``text``), reporting every problem at once.

    Parameters
    ----------
    source : str or Path
        Path of the YAML file; used for locations in messages when ``text`` is given.
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
    if text is None:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise GraphError([Problem(f"cannot read graph file: {exc.strerror}", name,
                                      fix="check the path")]) from None
    out = _Collector(name)
    yaml = YAML()  # round-trip loader: keeps line/column of every key and value
    try:
        _check_duplicates(yaml.compose(text), out)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line, mark.column) if mark else (0, 0)
        out.add(f"YAML syntax error: {exc.problem or exc.context}", pos,
                fix="fix the YAML syntax (indentation, colons, brackets, quotes)")
        raise GraphError(out.problems) from None
    if out.problems:
        raise GraphError(out.problems)
    yaml.allow_duplicate_keys = True
    doc = yaml.load(text)
    graph = _validate(doc, out, list(overrides))
    if out.problems:
        raise GraphError(out.problems)
    graph.text, graph.source = text, name
    return graph


def _check_duplicates(root, out: _Collector) -> None:
    """Duplicate keys anywhere (notably duplicate node names) are errors, located at the second one."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            seen: dict[str, Any] = {}
            for k, v in node.value:
                key = str(k.value)
                if key in seen:
                    first = seen[key].start_mark.line + 1
                    out.add(f"duplicate key '{key}' (first defined on line {first})",
                            (k.start_mark.line, k.start_mark.column), key=key,
                            fix="give every node (and every key) a unique name")
                else:
                    seen[key] = k
                stack.append(v)
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
    if not isinstance(sched, str) or not (sched in SCHEDULERS or _ADDRESS.match(sched)):
        out.add(f"'scheduler' is {sched!r}; expected one of {', '.join(SCHEDULERS)} or a "
                "dask.distributed address like tcp://127.0.0.1:8786", _pos_value(doc, "scheduler"),
                key="scheduler", fix=did_you_mean(sched, SCHEDULERS))
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
    from ruamel.yaml.comments import CommentedMap

    for text in overrides:
        try:
            node, setting, value = parse_override(text)
        except GraphError as exc:
            out.problems.extend(exc.problems)
            continue
        if node not in nodes:
            out.problems.append(Problem(f"override {text!r}: no node '{node}'", "--set", node=node,
                                        fix=did_you_mean(node, nodes)))
            continue
        body = nodes[node]
        if not hasattr(body, "get"):
            continue
        for section in ("settings", "sweep"):
            if hasattr(body.get(section), "pop"):
                body[section].pop(setting, None)
        if body.get("settings") is None:
            body["settings"] = CommentedMap()
        body["settings"][setting] = value


def _validate_node(name, body, nodes, out: _Collector, raw_inputs) -> NodeDecl | None:
    pos = _pos_key(nodes, name)
    if not hasattr(body, "items"):
        out.add(f"node declaration must be a mapping with keys {', '.join(NODE_KEYS)}; got {body!r}",
                pos, node=name, fix="write e.g.\n      sine:\n        type: sine")
        return None
    for key in body:
        if key not in NODE_KEYS:
            out.add(f"unknown key '{key}'", _pos_key(body, key), node=name, key=str(key),
                    fix=did_you_mean(key, NODE_KEYS))
    type_name = body.get("type")
    if not isinstance(type_name, str):
        out.add("missing 'type'" if type_name is None else f"'type' must be a string; got {type_name!r}",
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
    decl = NodeDecl(name, spec)

    settings = body.get("settings") or {}
    if not hasattr(settings, "items"):
        out.add(f"'settings' must be a mapping; got {settings!r}", _pos_value(body, "settings"),
                node=name, key="settings")
        settings = {}
    for key, value in settings.items():
        kpath = f"settings.{key}"
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
            decl.sweep[key] = [spec.check_setting(key, v)[0] for v in value]
            continue
        out.add(f"value {_show(value)} {problem}", _pos_value(settings, key), node=name, key=kpath,
                fix=f"expected {spec.settings[key].type_text}")

    sweep = body.get("sweep") or {}
    if not hasattr(sweep, "items"):
        out.add(f"'sweep' must be a mapping of setting names to lists of values; got {sweep!r}",
                _pos_value(body, "sweep"), node=name, key="sweep")
        sweep = {}
    for key, values in sweep.items():
        kpath = f"sweep.{key}"
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
        if len(set(map(repr, values))) != len(values):
            out.add(f"sweep values {_show(values)} contain duplicates", _pos_value(sweep, key),
                    node=name, key=kpath, fix="list each value once")
            continue
        good = []
        for i, v in enumerate(values):
            converted, problem = spec.check_setting(key, v)
            if problem:
                out.add(f"sweep value {_show(v)} {problem}", _pos_item(values, i), node=name,
                        key=f"{kpath}[{i}]", fix=f"expected {spec.settings[key].type_text}")
            good.append(converted)
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
        decl = decls.get(name)
        if decl is None:
            continue
        for param, src in decl.inputs.items():
            up = decls.get(src)
            if up is not None and up.spec.kind == "sink":
                out.add(f"input '{param}' is the sink '{src}', which produces no output", raw[param][1],
                        node=name, key=f"inputs.{param}", fix="connect a stimulus, dut or analyzer")


def _validate_sweep_dims(decls, nodes, out: _Collector) -> None:
    owners: dict[str, str] = {}
    for name, decl in decls.items():
        for key in decl.sweep:
            if key in owners:
                out.add(f"setting '{key}' is swept by nodes '{owners[key]}' and '{name}'; both would "
                        f"make a dimension named '{key}'", _pos_key(nodes, name), node=name,
                        key=f"sweep.{key}", fix="sweep it in one node only")
            owners.setdefault(key, name)
        points = 1
        for values in decl.sweep.values():
            points *= len(values)
        if points > SWEEP_POINTS_LIMIT:
            out.add(f"the sweep makes {points} points (limit {SWEEP_POINTS_LIMIT})",
                    _pos_key(nodes, name), node=name, key="sweep",
                    fix="sweep fewer values, or split the study into several graphs")


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


def _show(value) -> str:
    text = repr(value if not hasattr(value, "items") else dict(value))
    return text if len(text) <= 60 else text[:57] + "..."
