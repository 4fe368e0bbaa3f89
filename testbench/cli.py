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


def _cmd_validate(args) -> int:
    from testbench.graph import load_graph

    graph = load_graph(args.graph, overrides=args.set or [])
    kinds = {}
    for decl in graph.nodes.values():
        kinds[decl.spec.kind] = kinds.get(decl.spec.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
    print(f"{args.graph}: valid ({summary}); output {graph.output}")
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
            print(f"    inputs: {', '.join(spec.inputs)}")
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
    from testbench.report import format_summary, summary
    from testbench.store import open_store

    ds = open_store(args.store)
    if "metrics" not in ds:
        raise TestbenchError(f"'{args.store}' holds no 'metrics' variable; fix: run a graph with an "
                             "analyzer node")
    metrics = ds.metrics
    for sel in args.sel or []:
        dim, _, value = sel.partition("=")
        if dim not in metrics.dims:
            from testbench.errors import did_you_mean

            raise TestbenchError(f"--sel {sel}: no dimension '{dim}'; {did_you_mean(dim, metrics.dims)}")
        coord = metrics[dim]
        metrics = metrics.sel({dim: coord.dtype.type(value) if coord.dtype.kind != "U" else value})
    print(f"{args.store}: {dict(ds.sizes)}")
    print(f"graph: {ds.attrs.get('graph_source', '?')}  created {ds.attrs.get('created_utc', '?')}")
    print()
    print(format_summary(summary(metrics), markdown=args.markdown))
    units = dict(zip(map(str, ds.metric.values), map(str, ds.units.values)))
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

    out = export(args.model, args.output, layer=args.layer)
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

    result = evaluate(args.weights, data_dir=args.data_dir)
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

    v = sub.add_parser("validate", help="check a graph and report every problem at once")
    v.add_argument("graph")
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
    ev.set_defaults(func=_cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testbench`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except KeyboardInterrupt:
        print("interrupted; no partial store was left in place", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
