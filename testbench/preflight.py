"""One preflight for ``validate`` and ``run``: everything checkable before computing, in one place.

``validate`` says valid exactly when ``run`` would start computing, because both call
:func:`preflight` on the loaded graph. It adds to the structural checks of
:func:`testbench.graph.load_graph` (which include the typed input ports):

1. each node's own semantic checks, declared beside its signature as a hook
   (``@stimulus("sine", check=...)``) and run for every sweep point with the node's settings and the
   static :class:`Facts` of its upstream nodes (record length T, dt, network sizes...);
2. the rule that every sweep point of a node gives an output of the same shape (the points are
   stacked along the sweep dimensions: sweeping ``length_steps`` or ``weights`` cannot be stacked),
   and that nodes label networks consistently (one label, one set of weights, across nodes);
3. an estimate of the result grid and of the run's peak memory, refused with the estimate and a fix
   when it does not fit this machine;
4. the output target (``store.check_target``) and the scheduler: a malformed address is a graph
   error, a dask.distributed address must answer the dask handshake within
   :data:`SCHEDULER_TIMEOUT_S` seconds.

A hook is ``check(settings, inputs) -> Facts``: ``settings`` are the node's keyword settings at one
sweep point (defaults filled in), ``inputs`` the upstream nodes' :class:`Facts` by input name. It
raises :class:`~testbench.errors.SettingsError` (``setting=`` names the culprit, so the message is
located at that key of the graph, or at ``--set NODE.KEY``) and returns the facts of its output.
The node function may call the same check helpers again; each rule has one definition.

Examples
--------
>>> from testbench.graph import load_graph
>>> g = load_graph("g.yaml", text="nodes: {s: {type: sine, settings: {length_steps: 100}}}")
>>> plan = preflight(g, check_output=False)
>>> plan.facts["s"].length_steps
100
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace

from testbench import schema
from testbench.errors import BackendError, GraphError, Problem, TestbenchError
from testbench.graph import Graph, NodeDecl, scheduler_problem
from testbench.nodes import Facts

#: Seconds the scheduler check waits for a dask.distributed scheduler to answer its handshake.
SCHEDULER_TIMEOUT_S = 5.0
#: Fraction of this machine's available memory a run may plan to use at its peak.
MEMORY_FRACTION = 0.5


@dataclass
class Plan:
    """What :func:`preflight` found: per-node facts and the run's size.

    Attributes
    ----------
    facts : dict of str to Facts
        Facts of every non-sink node, sweep dims included.
    grid_size : int
        Values in the result: every analyzer's metrics (the product of its dims, ``metric``
        included), other stored variables, and saved responses.
    samples : int
        Simulated samples (cells x sweep points x T over every DUT).
    peak_bytes : int
        Estimated peak memory of the run, bytes.
    available_bytes : int
        Memory available on this machine when checked, bytes.
    workers : int
        Tasks the scheduler runs at once on this machine.
    """

    facts: dict[str, Facts]
    grid_size: int = 0
    samples: int = 0
    peak_bytes: int = 0
    available_bytes: int = 0
    workers: int = 1

    def summary(self) -> str:
        """One line: grid size, simulated samples and memory estimate."""
        return (f"grid {self.grid_size:,} values, {self.samples:,} simulated samples; peak memory "
                f"~{_gib(self.peak_bytes)} ({self.workers} worker{'s' if self.workers != 1 else ''}; "
                f"{_gib(self.available_bytes)} available)")


def preflight(graph: Graph, *, output: str | None = None, scheduler: str | None = None,
              check_output: bool = True) -> Plan:
    """Every check ``run`` makes before computing; ``validate`` and ``run`` both call it.

    Parameters
    ----------
    graph : Graph
        A graph loaded by :func:`testbench.graph.load_graph` (structure and ports already checked).
    output : str, optional
        Store path or URL the run would write; default ``graph.output``.
    scheduler : str, optional
        Scheduler name or dask.distributed address (``--scheduler``); default ``graph.scheduler``.
        An address is contacted (a bounded handshake, :data:`SCHEDULER_TIMEOUT_S` seconds).
    check_output : bool
        Check the output target (:func:`testbench.store.check_target`). Default True.

    Returns
    -------
    Plan
        Per-node facts, grid size and peak-memory estimate.

    Raises
    ------
    GraphError
        Every node problem, located at file:line:col (or ``--set NODE.KEY``), with the fix; a
        malformed ``--scheduler``; a run that does not fit in memory.
    BackendError
        When the scheduler address does not answer as a dask.distributed scheduler.
    """
    problems: list[Problem] = []
    sched = scheduler or graph.scheduler
    if scheduler is not None and scheduler_problem(scheduler) is not None:
        problems.append(Problem(scheduler_problem(scheduler), "--scheduler",
                                fix="e.g. --scheduler threads, or --scheduler tcp://127.0.0.1:8786"))
    facts = _node_facts(graph, problems)
    problems.extend(_label_problems(graph, facts))
    plan = None
    if not problems:
        plan = _estimate(graph, facts, sched)
        problems.extend(_memory_problems(graph, plan))
    if problems:
        raise GraphError(problems)
    if check_output:
        from testbench import store

        store.check_target(graph.output if output is None else output, graph=graph.source)
    if sched not in ("synchronous", "threads", "processes"):
        probe_scheduler(sched)
    return plan


# ---------------------------------------------------------------------------------------------
# node hooks and facts


def _node_facts(graph: Graph, problems: list[Problem]) -> dict[str, Facts]:
    """Run every node's hook over its sweep points, in topological order; collect problems."""
    facts: dict[str, Facts] = {}
    dims = schema.sweep_dims(graph)
    for name, decl in graph.nodes.items():
        inputs = {p: facts.get(src) for p, src in decl.inputs.items()}
        if None in inputs.values():  # an upstream node failed its own checks
            continue
        points = _points_facts(graph, decl, inputs, problems)
        if points is not None and decl.spec.kind != "sink":  # a sink produces no output
            combined = _stack(graph, decl, points, dims[name], problems)
            if combined is not None:
                facts[name] = combined
    return facts


def _label_problems(graph: Graph, facts: dict[str, Facts]) -> list[Problem]:
    """Two nodes giving one network label to different weights (checksums) would share the
    result's ``network`` coordinate: refused at the second node's weights."""
    seen: dict[str, tuple[str, str, str]] = {}  # label -> (checksum, source, node)
    problems = []
    for name, f in facts.items():
        labels = f.coords.get(schema.NETWORK, ())
        for label, digest, source in zip(labels, f.coords.get(schema.CHECKSUM, ()),
                                         f.coords.get(schema.SOURCE, ())):
            digest0, source0, node0 = seen.setdefault(label, (digest, source, name))
            if digest0 != digest:
                problems.append(_problem(
                    graph, graph.nodes[name], "settings.weights",
                    f"{source} and {source0} (node '{node0}') are different networks with the same "
                    f"label '{label}'; the result's '{schema.NETWORK}' dimension needs one label "
                    "per network",
                    f"give explicit labels, e.g. weights: {{{label}-b: {source}}}"))
    return problems


def _settings(decl: NodeDecl, point: dict) -> dict:
    defaults = {k: s.default for k, s in decl.spec.settings.items()}
    return {**defaults, **decl.settings, **point}


def _points(decl: NodeDecl) -> list[dict]:
    keys = list(decl.sweep)
    return [dict(zip(keys, values)) for values in itertools.product(*decl.sweep.values())]


def _points_facts(graph, decl, inputs, problems) -> list[tuple[dict, Facts]] | None:
    """(point, facts) for each sweep point; ``None`` after recording the first failing point."""
    out = []
    for point in _points(decl):
        try:
            if decl.spec.check is not None:
                result = decl.spec.check(_settings(decl, point), inputs)
            else:
                result = _default_facts(decl.spec.kind, inputs)
        except TestbenchError as exc:
            problems.append(_locate(graph, decl, exc, point))
            return None
        except Exception as exc:  # a fault in a (third-party) hook is reported, not raised
            problems.append(_problem(
                graph, decl, "", f"the preflight check of type '{decl.spec.name}' failed"
                + (f" at sweep point {_point_text(point)}" if point else "")
                + f": {type(exc).__name__}: {exc}",
                f"report it to the author of {decl.spec.origin}"))
            return None
        out.append((point, result if isinstance(result, Facts) else Facts()))
    return out


def _default_facts(kind: str, inputs: dict[str, Facts]) -> Facts:
    """Facts of a node without a hook: its inputs' dims merged; T of its first timed input."""
    dims: dict[str, int] = {}
    coords: dict[str, tuple] = {}
    for f in inputs.values():
        dims.update(f.dims)
        coords.update(f.coords)
    timed = [f for f in inputs.values() if f.length_steps is not None]
    if kind == "analyzer" or not timed:
        return Facts(dims, coords)
    return Facts(dims, coords, timed[0].length_steps, timed[0].dt)


def _stack(graph, decl, points, sweep_dims: dict[str, str], problems) -> Facts | None:
    """One node's facts: its sweep points stacked along new dims (``sweep_dims``: the dim of each
    swept setting), which needs equal shapes."""
    (p0, f0), *rest = points
    for p, f in rest:
        if (f.dims, f.coords, f.length_steps) != (f0.dims, f0.coords, f0.length_steps):
            keys = [k for k in decl.sweep if p[k] != p0[k]] or list(decl.sweep)
            key = keys[0]
            problems.append(_problem(
                graph, decl, f"sweep.{key}",
                f"the sweep points give outputs of different shapes: {_point_text(p0)} gives "
                f"{f0.shape_text()} but {_point_text(p)} gives {f.shape_text()}; sweep points are "
                "stacked along the sweep dimensions, which needs one shape",
                _stack_fix(decl, key)))
            return None
    dims = {sweep_dims[k]: len(v) for k, v in decl.sweep.items()}
    eager = sum(f.eager_bytes for _, f in points) * (2 if rest else 1)  # parts + their concat
    dt = f0.dt if all(f.dt == f0.dt for _, f in rest) else None  # a swept dt: a coordinate
    return replace(f0, dims={**dims, **f0.dims}, dt=dt, eager_bytes=eager)


def _stack_fix(decl: NodeDecl, key: str) -> str:
    if key == "weights":
        return (f"list the networks in settings.weights instead of sweeping them (they form one "
                f"'{schema.NETWORK}' dimension): e.g. --set {decl.name}.weights=[A,B]")
    if key == "length_steps":
        return (f"run one graph per length (e.g. --set {decl.name}.length_steps=N for each N); "
                "records of different lengths cannot share a 'time' axis")
    return f"set '{key}' to one value per run (--set {decl.name}.{key}=V) instead of sweeping it"


def _point_text(point: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _locate(graph: Graph, decl: NodeDecl, exc: TestbenchError, point: dict) -> Problem:
    """A hook's error as a Problem at the offending setting's key (or the node)."""
    text = str(exc)
    message, _, fix = text.partition("; fix: ")
    setting = getattr(exc, "setting", None)
    if setting in point:
        key = f"sweep.{setting}"
        message = f"at sweep point {_point_text(point)}: {message}"
    elif setting is not None:
        key = f"settings.{setting}"
    else:
        key = ""
    return _problem(graph, decl, key, message, fix)


def _problem(graph: Graph, decl: NodeDecl, key: str, message: str, fix: str = "") -> Problem:
    """A Problem at ``key`` of ``decl``: its YAML position, or ``--set NODE.SETTING`` when the
    value came from the command line (a swept or set key absent from the file)."""
    pos = decl.positions.get(key)
    if pos is None and key.startswith("sweep."):  # a list given by --set sweeps the setting
        pos = decl.positions.get("settings." + key.removeprefix("sweep."))
    if pos == (-1, -1):
        return Problem(message, f"--set {decl.name}.{key.split('.', 1)[1]}", 0, 0, decl.name,
                       key, fix)
    line, col = pos if pos is not None else decl.positions.get("", (-1, -1))
    return Problem(message, graph.source, line + 1, col + 1, decl.name, key, fix)


# ---------------------------------------------------------------------------------------------
# size and memory


def _workers(scheduler: str) -> int:
    if scheduler == "synchronous":
        return 1
    if scheduler in ("threads", "processes"):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1  # a distributed cluster: blocks run in the workers' memory, not this machine's


def available_memory() -> int:
    """Bytes of memory available to a new computation on this machine (psutil, else sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil comes with dask.distributed; sysconf where it is absent
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _estimate(graph: Graph, facts: dict[str, Facts], scheduler: str) -> Plan:
    plan = Plan(facts, available_bytes=available_memory(), workers=_workers(scheduler))
    for name, decl in graph.nodes.items():
        f = facts.get(name)
        if f is None:
            continue
        if decl.spec.kind == "analyzer":  # each metric stored once, with its analyzer's dims
            plan.grid_size += f.size
        if decl.spec.kind == "dut":
            plan.samples += f.size * (f.length_steps or 0)
            if graph.save_responses:
                plan.grid_size += f.size * (f.length_steps or 0)
    eager = sum(f.eager_bytes for f in facts.values())
    blocks = [f.block.nbytes for f in facts.values() if f.block is not None]
    local = scheduler in ("synchronous", "threads", "processes")
    plan.peak_bytes = eager + (plan.workers * max(blocks) if blocks and local else 0)
    return plan


def _memory_problems(graph: Graph, plan: Plan) -> list[Problem]:
    budget = int(MEMORY_FRACTION * plan.available_bytes)
    if plan.peak_bytes <= budget:
        return []
    name, f = max(((n, f) for n, f in plan.facts.items() if f.block is not None),
                  key=lambda nf: nf[1].block.nbytes, default=(None, None))
    eager = sum(x.eager_bytes for x in plan.facts.values())
    head = (f"the run needs about {_gib(plan.peak_bytes)} at its peak ({_gib(eager)} of stimuli"
            + (f", plus {plan.workers} task(s) at once each holding a block of {f.block.cells} cells "
               f"x {f.block.points} sweep points x {f.block.length_steps} steps "
               f"({_gib(f.block.nbytes)})" if f is not None else "")
            + f"), more than {MEMORY_FRACTION:.0%} of the {_gib(plan.available_bytes)} available on "
              "this machine")
    if f is None or eager > budget:
        largest = max(plan.facts, key=lambda n: plan.facts[n].eager_bytes)
        return [_problem(graph, graph.nodes[largest], "", head,
                         "sweep fewer points or use a shorter length_steps")]
    b = f.block
    per_sample = b.length_steps * b.bytes_per_sample * plan.workers
    fit = (budget - eager) // per_sample  # cells x points that fit
    if b.tunable and fit >= 1:
        cells = min(b.cells, int(fit))
        points = max(1, min(b.points, int(fit) // cells))
        fix = (f"set chunk_cells: {cells} and chunk_points: {points} on node '{name}' (smaller "
               "blocks, same results)"
               + (", or use --scheduler synchronous (one task at a time)" if plan.workers > 1 else ""))
    else:
        longest = max(1, int((budget - eager) // (plan.workers * b.bytes_per_sample
                                                    * (1 if b.tunable else b.cells * b.points))))
        fix = (f"use a shorter length_steps (at most about {longest} steps fit), fewer sweep "
               "points" + ("" if b.tunable else ", or mode: isolated (chunked)"))
    return [_problem(graph, graph.nodes[name], "settings.chunk_cells" if b.tunable else "", head,
                     fix)]


def _gib(n: int) -> str:
    """Bytes in binary units, three significant digits."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------------------------
# output and scheduler


def probe_scheduler(address: str, timeout: float | None = None) -> None:
    """Check that a dask.distributed scheduler answers at ``address``, within ``timeout`` seconds.

    Opens a TCP connection (refused at once where nothing listens), then exchanges the dask
    handshake and asks the peer's identity, all bounded in time: a silent peer and a non-dask
    server (e.g. an HTTP server) fail within ``timeout``.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` (or another dask.distributed protocol).
    timeout : float, optional
        Seconds, > 0; default :data:`SCHEDULER_TIMEOUT_S`.

    Raises
    ------
    BackendError
        Saying what answered (nothing, or not a dask scheduler) and how to fix it.
    """
    import asyncio
    import concurrent.futures
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    timeout = SCHEDULER_TIMEOUT_S if timeout is None else timeout
    fix = ("fix: start one (`dask scheduler`, then `dask worker ADDRESS`), check the address, or "
           "use --scheduler threads")
    scheme, location = parse_address(address)
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:
            socket.create_connection(parse_host_port(location), timeout=timeout).close()
        except OSError as exc:
            raise BackendError(f"nothing answers at {address} ({exc.strerror or exc}); no "
                               f"dask.distributed scheduler runs there; {fix}") from None

    async def identity():
        from distributed.comm import connect
        from distributed.security import Security

        comm = await connect(address, timeout=timeout, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    # a thread of its own: asyncio.run needs a thread without a running event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(asyncio.run, asyncio.wait_for(identity(), timeout))
        try:
            reply = future.result()
        except Exception as exc:  # timeout, closed connection, a foreign protocol's bytes
            reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise BackendError(f"the server at {address} did not complete the dask handshake within "
                               f"{timeout:g} s ({reason}): it is not a dask.distributed scheduler, "
                               f"or it is overloaded; {fix}") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise BackendError(f"{address} answered but is not a dask.distributed scheduler (it "
                           f"identifies as {kind!r}); {fix}")
