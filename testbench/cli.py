"""The ``testbench`` command line.

Every user mistake ends with a message (where, what, rule, fix) and exit status 2, never a Python
traceback; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time

from testbench.errors import TestbenchError

EXIT_USER_ERROR = 2
TRUST_PICKLE_HELP = ("read a PyTorch file that holds pickled Python objects (a whole nn.Module); "
                     "this runs code stored in the file: only for files you trust")


def _cmd_run(args) -> int:
    from testbench.engine import run
    from testbench.graph import load_graph

    graph = load_graph(args.graph, overrides=args.set or [])
    t0 = time.perf_counter()
    target = run(graph, output=args.output, scheduler=args.scheduler, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {target} in {time.perf_counter() - t0:.1f} s")
        print(f"query it: python -c \"import xarray as xr; ds = xr.open_zarr('{target}'); "
              f"print(ds.metrics)\"   or   testbench show {target}")
    return 0


def _shown(path: str) -> str:
    """``path`` as printable text: bytes of ``argv`` that are not UTF-8 become ``\\xNN`` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cmd_validate(args) -> int:
    from testbench.graph import load_graph
    from testbench.preflight import preflight

    graph = load_graph(args.graph, overrides=args.set or [])
    plan = preflight(graph, output=args.output, scheduler=args.scheduler)  # the checks of `run`
    kinds = {}
    for decl in graph.nodes.values():
        kinds[decl.spec.kind] = kinds.get(decl.spec.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
    output = graph.output if args.output is None else args.output
    print(f"{_shown(args.graph)}: valid ({summary}); output {_shown(output)}")
    print(f"would compute: {plan.summary()}")
    return 0


def _cmd_nodes(args) -> int:
    from testbench.nodes import KINDS, registry

    specs = registry()
    names = [args.name] if args.name else sorted(specs, key=lambda n: (KINDS.index(specs[n].kind), n))
    for name in names:
        if name not in specs:
            from testbench.nodes import lookup

            spec = lookup(name)  # raises with a did-you-mean
        else:
            spec = specs[name]
        print(f"{spec.name}  [{spec.kind}]  {spec.summary}")
        if spec.inputs:
            ports = (f"{i} <- {' | '.join(spec.ports.get(i, ()))}" for i in spec.inputs)
            print(f"    inputs: {', '.join(ports)}")
        for s in spec.settings.values():
            print(f"    {s.name}: {s.type_text} = {s.default!r}")
            if s.doc:
                print(textwrap.indent(textwrap.fill(s.doc, 92), " " * 8))
        if args.name:
            print()
            print(textwrap.indent(spec.doc, "    "))
        print()
    return 0


def _cmd_show(args) -> int:
    from testbench.errors import OutputError
    from testbench.report import format_ablation, format_summary, select_point, summary
    from testbench.store import load, open_store

    ds = open_store(args.store)
    if "metrics" not in ds and "ablation_impact" in ds:  # an ablation-only store
        for sel in args.sel or []:
            ds = select_point(ds, sel)
        print(f"{args.store}: {dict(ds.sizes)}")
        print(format_ablation(ds, args.store, markdown=args.markdown))
        return 0
    if "metrics" not in ds:
        raise TestbenchError(f"'{args.store}' holds no 'metrics' variable; fix: run a graph with an "
                             "analyzer node")
    if "metric" not in ds.metrics.dims or "units" not in ds.coords:
        raise OutputError(f"'{args.store}': 'metrics' lacks its 'metric' dimension or 'units' "
                          "coordinate, which every store written by `testbench run` has; the store "
                          "is damaged; fix: re-run the graph that wrote it")
    metrics = ds.metrics
    for sel in args.sel or []:
        metrics = select_point(metrics, sel)
    metrics = load(metrics, args.store)
    units = dict(zip(map(str, ds.metric.values), map(str, load(ds["units"], args.store).values)))
    print(f"{args.store}: {dict(ds.sizes)}")
    print(f"graph: {ds.attrs.get('graph_source', '?')}  created {ds.attrs.get('created_utc', '?')}")
    print()
    print(format_summary(summary(metrics), markdown=args.markdown))
    print()
    print("units: " + ", ".join(f"{m} [{u}]" for m, u in units.items()))
    return 0


def _cmd_zoo(args) -> int:
    import json

    from testbench import weights as W

    manifest_path = W.zoo_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    rows = []
    for name in W.zoo_names():
        e = manifest.get(name, {})
        rows.append((e.get("dataset", name), e.get("size", 0), name, e))
    print(f"{'weights':<18} {'dataset':<8} {'cells':>5}  {'test score':<22} {'baseline':<22}")
    for dataset, size, name, e in sorted(rows):
        metric = e.get("metric", "")
        score = e.get("test_score")
        base = e.get("baseline")
        score_text = f"{metric} {score:.4g}" if isinstance(score, float) else "?"
        base_text = (f"{e.get('baseline_kind', '')} {base:.4g}" if isinstance(base, float) else "")
        print(f"zoo:{name:<14} {dataset:<8} {size:>5}  {score_text:<22} {base_text:<22}")
    print("use as `weights: zoo:NAME` in a graph; manifest: " + str(manifest_path))
    return 0


def _cmd_export(args) -> int:
    from testbench.importers import export

    out = export(args.model, args.output, layer=args.layer, trust_pickle=args.trust_pickle)
    print(f"wrote {out}")
    return 0


def _cmd_train(args) -> int:
    from testbench.training import train

    path, entry = train(args.dataset, args.size, args.seed, variant=args.variant, epochs=args.epochs,
                        out=args.output, data_dir=args.data_dir, progress=not args.no_progress)
    print(f"wrote {path}: test {entry.get('metric', 'score')} {entry.get('test_score')}")
    return 0


def _cmd_evaluate(args) -> int:
    from testbench.training import evaluate

    result = evaluate(args.weights, data_dir=args.data_dir, trust_pickle=args.trust_pickle)
    for k, v in result.items():
        print(f"{k}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``testbench`` command."""
    p = argparse.ArgumentParser(
        prog="testbench",
        description="Declarative testbench for the cell dynamics of trained recurrent networks.",
        epilog="Start with: testbench run graphs/characterize.yaml && testbench show "
               "results/characterize.zarr",
    )
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="validate, run a graph and write its result store")
    r.add_argument("graph", help="YAML graph file")
    r.add_argument("-o", "--output", help="store path or URL (default: the graph's 'output')")
    r.add_argument("--scheduler", help="synchronous | threads | processes | tcp://HOST:PORT "
                                       "(default: the graph's, else threads)")
    r.add_argument("--set", action="append", metavar="NODE.SETTING=VALUE",
                   help="override a setting (YAML value; a list sweeps it); repeatable")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a graph and report every problem at once: the same "
                                        "checks as `run` before it computes (settings, weights, "
                                        "output path, memory estimate, scheduler)")
    v.add_argument("graph")
    v.add_argument("-o", "--output", help="store path or URL to check (default: the graph's "
                                          "'output')")
    v.add_argument("--scheduler", help="scheduler to check, as for run; a tcp://HOST:PORT address "
                                       "is contacted (a dask handshake of a few seconds)")
    v.add_argument("--set", action="append", metavar="NODE.SETTING=VALUE")
    v.set_defaults(func=_cmd_validate)

    n = sub.add_parser("nodes", help="list every node type with its settings, units and docs")
    n.add_argument("name", nargs="?", help="show one node type in full")
    n.set_defaults(func=_cmd_nodes)

    s = sub.add_parser("show", help="Table-1-style summary of a result store (mean ± std per network)")
    s.add_argument("store")
    s.add_argument("--sel", action="append", metavar="DIM=VALUE", help="select along a dimension")
    s.add_argument("--markdown", action="store_true", help="print a Markdown table")
    s.set_defaults(func=_cmd_show)

    z = sub.add_parser("zoo", help="list the shipped trained networks (use as zoo:NAME)")
    z.set_defaults(func=_cmd_zoo)

    e = sub.add_parser("export", help="convert a PyTorch/Keras/ONNX model to testbench HDF5 weights")
    e.add_argument("model")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--layer", help="name of the recurrent layer inside the model")
    e.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    e.set_defaults(func=_cmd_export)

    t = sub.add_parser("train", help="train a network on a dataset and export it")
    t.add_argument("--dataset", required=True, choices=["mnist", "sp500", "co2", "protein"])
    t.add_argument("--size", type=int, required=True, help="cells (hidden size)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--variant", help="dataset variant (e.g. mnist: row | pixel)")
    t.add_argument("--epochs", type=int)
    t.add_argument("-o", "--output", help="weights file (default: ./DATASET-SIZE.h5; its manifest.json "
                                          "entry is written beside it)")
    t.add_argument("--data-dir", help="dataset folder (default: $TESTBENCH_DATA or ~/.cache/testbench)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=_cmd_train)

    from testbench.report import add_report_command

    add_report_command(sub)

    ev = sub.add_parser("evaluate", help="recompute a network's test score from its exported weights")
    ev.add_argument("weights")
    ev.add_argument("--data-dir")
    ev.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    ev.set_defaults(func=_cmd_evaluate)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it cleans up as Ctrl-C does."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testbench`` console script; returns the exit status."""
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return args.func(args)
    except TestbenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        stop = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        print(f"{stop}; no partial store was left in place", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
