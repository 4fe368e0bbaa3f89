"""The ``testbench`` command line.

Every user mistake ends with a message (where, what, rule, fix) and exit status 2, never a Python
traceback; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import time
import warnings

from testbench.errors import PluginWarning, TestbenchError

EXIT_USER_ERROR = 2
TRUST_PICKLE_HELP = ("read a PyTorch file that holds pickled Python objects (a whole nn.Module); "
                     "this runs code stored in the file: only for files you trust (default: off)")
DEBUG_HELP = "show Python tracebacks on errors; accepted before or after the command (default: off)"
QUIET_HELP = "no progress bars and no summary (default: off)"
SCHEDULER_HELP = ("synchronous | threads | processes | tcp://HOST:PORT (default: the graph's "
                  "'scheduler', else threads)")
SET_HELP = ("override a setting (a YAML value; a list sweeps it); repeatable (default: the graph's "
            "settings)")
DATA_DIR_HELP = "dataset folder (default: $TESTBENCH_DATA, else ~/.cache/testbench)"
#: Dataset names of ``data fetch`` and ``train``: those of testbench.data.DATASETS (a test keeps
#: them equal), which is not imported here because it pulls in numpy.
DATASET_NAMES = ("co2", "mnist", "protein", "sp500")


def _cmd_run(args) -> int:
    from testbench.cache import NodeCache
    from testbench.engine import run
    from testbench.graph import load_graph

    graph = load_graph(args.graph, overrides=args.set or [])
    t0 = time.perf_counter()
    cache = None if args.no_cache else NodeCache(args.cache_dir)
    target = run(graph, output=args.output, scheduler=args.scheduler, progress=not args.quiet,
                 cache=cache)
    if not args.quiet:
        print(f"wrote {target} in {time.perf_counter() - t0:.1f} s")
        if cache is not None:
            print(f"cache {cache.path}: {len(cache.hits)} analyzer output(s) reused, "
                  f"{len(cache.misses)} computed")
        print(f"query it: python -c \"import testbench; ds = testbench.open('{target}'); "
              f"print(ds)\"   or   testbench show {target}")
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
    from testbench.nodes import KINDS, lookup, parse_param_docs, registry

    specs = registry()
    names = [args.name] if args.name else sorted(specs, key=lambda n: (KINDS.index(specs[n].kind), n))
    for name in names:
        spec = specs[name] if name in specs else lookup(name)  # lookup: a did-you-mean, or a reference
        print(f"{spec.name}  [{spec.kind}]  {spec.summary}")
        if spec.inputs:
            ports = (f"{i} <- {' | '.join(spec.ports.get(i, ()))}" for i in spec.inputs)
            print(f"    inputs: {', '.join(ports)}")
            if args.name:  # each input's docs, which the docstring's Parameters section holds
                docs = parse_param_docs(spec.doc)
                for i in spec.inputs:
                    if docs.get(i):
                        print(textwrap.indent(textwrap.fill(f"{i}: {docs[i]}", 88), " " * 8))
        for s in spec.settings.values():
            print(f"    {s.name}: {s.type_text} = {s.default!r}")
            if s.doc:
                print(textwrap.indent(textwrap.fill(s.doc, 92), " " * 8))
        narrative = _narrative(spec.doc)
        if args.name and narrative:
            print()
            print(textwrap.indent(narrative, "    "))
        print()
    return 0


def _narrative(doc: str) -> str:
    """A node's docstring without its summary line and its ``Parameters`` section (``nodes NAME``
    prints the inputs and settings from the signature, each once)."""
    lines = doc.splitlines()[1:]
    out, skipping = [], False
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip())
        if underline and line.strip():  # a numpydoc section header
            skipping = line.strip() == "Parameters"
        if not skipping:
            out.append(line)
    return "\n".join(out).strip()


def _cmd_show(args) -> int:
    from testbench import schema
    from testbench.report import format_ablation, metrics_in_words, select_point, summary
    from testbench.store import load, open_store

    ds = open_store(args.store)
    if not schema.metric_labels(ds) and "ablation_impact" in ds:  # an ablation-only store
        for sel in args.sel or []:
            ds = select_point(ds, sel)
        if args.format in ("csv", "json"):
            from testbench.report import ablation_metrics

            print(_render(summary(load(ablation_metrics(ds), args.store)), args.format,
                          store=args.store, units={}))
            return 0
        print(f"{args.store}: {dict(ds.sizes)}")
        print(format_ablation(ds, args.store, markdown=args.format == "markdown"))
        return 0
    metrics = schema.metrics(ds)
    for sel in args.sel or []:
        metrics = select_point(metrics, sel)
    metrics = load(metrics, args.store)
    units = dict(zip(map(str, metrics[schema.METRIC].values), map(str, metrics[schema.UNITS].values)))
    table = summary(metrics)
    if args.format in ("csv", "json"):
        print(_render(table, args.format, store=args.store, units=units))
        return 0
    print(f"{args.store}: {dict(ds.sizes)}")
    print(f"graph: {ds.attrs.get('graph_source', '?')}  created {ds.attrs.get('created_utc', '?')}")
    print()
    print(_render(table, args.format, store=args.store, units=units))
    print()
    words = metrics_in_words(ds)  # units as a reader says them: steps, cycles per step
    print("units: " + ", ".join(f"{m} [{u}]" if u else f"{m} (dimensionless)" for m, u in
                                zip(map(str, words[schema.METRIC].values), words[schema.UNITS].values)))
    return 0


#: Output formats of ``testbench show``.
SHOW_FORMATS = ("table", "csv", "json", "markdown")
#: Row labels of a summary that are not sweeps: the network's, and the ablation's knock-out mode.
UNSWEPT_LABELS = ("network", "dataset", "network_size", "mode")
#: Prefix of a sweep dim's column in ``show``: a sweep ``frequency`` and a metric ``frequency``
#: are two columns.
SWEEP_PREFIX = "sweep:"


def _render(table, fmt: str, *, store: str, units: dict[str, str]) -> str:
    """A :func:`testbench.report.summary` table as text in ``fmt`` (one of :data:`SHOW_FORMATS`).

    ``table`` and ``markdown``: ``mean ± std`` per metric; ``csv``: one header row (the row
    labels, then ``<metric>_mean``, ``<metric>_std``, ``<metric>_n``); ``json``: an object with
    ``store``, ``units`` (metric -> unit) and ``rows`` (the CSV's rows as objects, NaN as null).
    Sweep dims are labelled :data:`SWEEP_PREFIX` + dim.
    """
    import json

    from testbench.report import flat_columns, format_summary

    names = [n if n is None or n in UNSWEPT_LABELS else SWEEP_PREFIX + str(n)
             for n in table.index.names]
    table = table.rename_axis(index=names)
    if fmt in ("table", "markdown"):
        return format_summary(table, markdown=fmt == "markdown")
    flat = flat_columns(table)
    if fmt == "csv":
        return flat.to_csv().rstrip("\n")
    rows = json.loads(flat.reset_index().to_json(orient="records"))
    return json.dumps({"store": str(store), "units": units, "rows": rows}, indent=1)


def _cmd_zoo(args) -> int:
    from testbench.models import zoo

    if args.zoo_command == "build":
        return _cmd_zoo_build(args)
    manifest_path, manifest = zoo.folder() / zoo.MANIFEST, zoo.manifest()
    rows = []
    for name in zoo.shipped():
        e = manifest.get(name, {})
        rows.append((e.get("dataset", name), e.get("size", 0), name, e))
    # 4 decimals: the sp500 networks differ in the 4th (all near 13.57 index points, persistence
    # 13.62); fixed decimals align the points; score/baseline compares across datasets
    table = [("weights", "dataset", "cells", "metric", "test score", "baseline", "score/baseline",
              "units", "baseline kind")]
    for dataset, size, name, e in sorted(rows):
        table.append((f"zoo:{name}", dataset, str(size or "?"), e.get("metric", "?"),
                      _number(e.get("test_score"), "{:.4f}"), _number(e.get("baseline"), "{:.4f}"),
                      _number(e.get("score_ratio"), "{:.4f}"), e.get("units", "?"),
                      e.get("baseline_kind", "?")))
    print(_aligned(table, right=(2, 4, 5, 6)))
    built = [n for n in zoo.controls() if (zoo.cache_folder() / f"{n}.h5").is_file()]
    print(f"untrained controls (zoo:NAME{zoo.CONTROL_SUFFIX}, initial weights of each network "
          f"above): {len(built)} of {len(zoo.controls())} built in {zoo.cache_folder()}"
          + ("" if len(built) == len(zoo.controls()) else f"; build them: `{zoo.BUILD_COMMAND}`"))
    print("use as `weights: zoo:NAME` in a graph; manifest: " + str(manifest_path))
    return 0


def _cmd_zoo_build(args) -> int:
    from testbench.models import zoo

    paths = zoo.build_controls(args.names or None,
                               progress=None if args.quiet else lambda n, p: print(f"{n}: {p}"))
    if not args.quiet:
        print(f"{len(paths)} control(s) in {zoo.cache_folder()}, digests match the manifest")
    return 0


def _number(value, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "?"


def _aligned(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> str:
    """``rows`` (the first is the header) as columns two spaces apart, each as wide as its widest
    cell; the columns numbered in ``right`` are right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _cmd_export(args) -> int:
    from testbench.models import export

    out = export(args.model, args.output, layer=args.layer, trust_pickle=args.trust_pickle)
    print(f"wrote {out}")
    return 0


def _cmd_train(args) -> int:
    from testbench.training import train

    path, entry = train(args.dataset, args.size, args.seed, variant=args.variant, epochs=args.epochs,
                        out=args.output, data_dir=args.data_dir, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {path}: test {entry.get('metric', 'score')} {entry.get('test_score')}")
    return 0


def _cmd_report(args) -> int:
    from testbench.report import TABLE_SIZE, write_report

    path = write_report(args.store, args.output, data_dir=args.data_dir,
                        size=args.size or TABLE_SIZE, sel=args.sel)
    print(f"wrote {path}")
    return 0


def _cmd_evaluate(args) -> int:
    from testbench.training import evaluate

    result = evaluate(args.weights, data_dir=args.data_dir, trust_pickle=args.trust_pickle)
    for k, v in result.items():
        print(f"{k}: {v}")
    return 0


def _cmd_data_list(args) -> int:
    import os

    from testbench import data as D

    root = D.data_root(args.data_dir)
    origin = ("--data-dir" if args.data_dir else "$TESTBENCH_DATA" if os.environ.get("TESTBENCH_DATA")
              else "the default; set TESTBENCH_DATA or pass --data-dir to use another folder")
    print(f"data folder: {_shown(str(root))} ({origin})")
    rows = [("dataset", "status", "file")]
    for name in D.DATASETS:
        for folder, file in D.dataset_files(name):
            status = D.file_status(folder, file, data_dir=args.data_dir)
            rows.append((name, status, _shown(str(root / folder / file))))
    print(_aligned(rows))
    print("download a dataset: testbench data fetch NAME" +
          (f" --data-dir {_shown(args.data_dir)}" if args.data_dir else ""))
    return 0


def _cmd_data_fetch(args) -> int:
    from testbench import data as D

    for name in args.name:
        for path in D.download(name, data_dir=args.data_dir, base_url=args.base_url):
            print(f"verified {_shown(str(path))}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends each option with its default, unless the help already states it; flags and
    options without a default (``None``) state theirs in words."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
            return text
        return super()._get_help_string(action)


def _finish(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command under it the help formatter and ``--debug``."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                # SUPPRESS: absent from a sub-command's namespace unless given there, so that
                # `testbench --debug run G` keeps the top-level value
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help=DEBUG_HELP)
                _finish(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``testbench`` command."""
    from testbench import __version__

    p = argparse.ArgumentParser(
        prog="testbench",
        description="Declarative testbench for the cell dynamics of trained recurrent networks.",
        epilog="Start with: testbench run graphs/characterize.yaml && testbench show "
               "results/characterize.zarr",
    )
    p.add_argument("--version", action="version", version=f"testbench {__version__}")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="validate, run a graph and write its result store")
    r.add_argument("graph", help="YAML graph file")
    r.add_argument("-o", "--output", help="store path or URL (default: the graph's 'output')")
    r.add_argument("--scheduler", help=SCHEDULER_HELP)
    r.add_argument("--set", action="append", metavar="NODE.SETTING=VALUE", help=SET_HELP)
    r.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    r.add_argument("--cache-dir", metavar="DIR",
                   help="cache of analyzer outputs, reused by re-runs (default: $TESTBENCH_CACHE/nodes, "
                        "else ~/.cache/testbench/nodes; size cap $TESTBENCH_CACHE_MAX, default 2G)")
    r.add_argument("--no-cache", action="store_true",
                   help="compute every node; read and write no cache (default: off)")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a graph and report every problem at once: the same "
                                        "checks as `run` before it computes (settings, weights, "
                                        "output path, memory estimate, scheduler)")
    v.add_argument("graph", help="YAML graph file")
    v.add_argument("-o", "--output", help="store path or URL to check (default: the graph's "
                                          "'output')")
    v.add_argument("--scheduler", help=SCHEDULER_HELP + "; an address is contacted (a dask "
                                                        "handshake of a few seconds)")
    v.add_argument("--set", action="append", metavar="NODE.SETTING=VALUE", help=SET_HELP)
    v.set_defaults(func=_cmd_validate)

    n = sub.add_parser("nodes", help="list every node type with its settings, units and docs")
    n.add_argument("name", nargs="?", help="show one node type in full: a type name or a "
                                           "module:function reference (default: list all)")
    n.set_defaults(func=_cmd_nodes)

    s = sub.add_parser("show", help="Table-1-style summary of a result store (mean ± std per network)")
    s.add_argument("store", help="result store (zarr) written by `testbench run`")
    s.add_argument("--sel", action="append", metavar="DIM=VALUE",
                   help="show one value of a dimension, as printed; repeatable (default: all)")
    s.add_argument("--format", choices=SHOW_FORMATS, default="table",
                   help="table: aligned text; markdown: a Markdown table; csv: one header row; "
                        f"json: store, units and rows. Sweep dims are labelled '{SWEEP_PREFIX}DIM'")
    s.set_defaults(func=_cmd_show)

    z = sub.add_parser("zoo", help="list the shipped trained networks (use as zoo:NAME); "
                                   "`zoo build --controls` builds the untrained controls",
                       description="Without an ACTION: list the shipped trained networks with "
                                   "their test scores, and how many untrained controls are built.")
    z.set_defaults(func=_cmd_zoo, zoo_command=None)
    zsub = z.add_subparsers(dest="zoo_command", metavar="[ACTION]")
    zb = zsub.add_parser("build", help="build the untrained controls (zoo:NAME-init) into "
                                       "$TESTBENCH_CACHE/zoo (default ~/.cache/testbench/zoo), "
                                       "checked against the manifest's digests")
    zb.add_argument("--controls", action="store_true", required=True,
                    help="build untrained controls: each zoo network's initial weights (needs "
                         "torch); required, the one kind of network it builds")
    zb.add_argument("names", nargs="*", metavar="NAME",
                    help="controls to build, e.g. co2-32-init (default: all)")
    zb.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)

    e = sub.add_parser("export", help="convert a PyTorch/Keras/ONNX model to testbench HDF5 weights")
    e.add_argument("model", help="model file: PyTorch .pt/.pth (state_dict), Keras .keras/.h5, "
                                 "or ONNX .onnx")
    e.add_argument("-o", "--output", required=True, help="testbench weights file (.h5) to write "
                                                         "(required)")
    e.add_argument("--layer", help="name of the recurrent layer inside the model (default: the "
                                   "only one; required when the model has several)")
    e.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    e.set_defaults(func=_cmd_export)

    t = sub.add_parser("train", help="train a network on a dataset and export it")
    t.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                   help="benchmark to train on (required)")
    t.add_argument("--size", type=int, required=True, help="cells (hidden size) (required)")
    t.add_argument("--seed", type=int, default=0, help="seed of initialization and data order")
    t.add_argument("--variant", help="dataset variant, e.g. mnist: row | pixel (default: the "
                                     "dataset's first: row, monthly, close, residue)")
    t.add_argument("--epochs", type=int, help="training epochs (default: the dataset's, as the "
                                              "zoo was trained)")
    t.add_argument("-o", "--output", help="weights file (default: ./DATASET-SIZE.h5; its manifest.json "
                                          "entry is written beside it)")
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    t.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    t.set_defaults(func=_cmd_train)

    rp = sub.add_parser("report", help="write the HTML reproduction report of a result store",
                        description="Write the reproduction report of a result store: "
                                    "DIR/index.html with its tables (CSV) and figures (PNG).")
    rp.add_argument("store", help="result store (zarr) written by `testbench run`, e.g. "
                                  "results/paper.zarr")
    rp.add_argument("-o", "--output", default="results/report",
                    help="output folder: new, empty, or one testbench wrote before "
                         "(default: %(default)s)")
    rp.add_argument("--sel", action="append", default=[], metavar="DIM=VALUE",
                    help="report a swept store at one point of a sweep dim, e.g. --sel "
                         "frequency=0.05; repeatable, one per sweep dim (default: none; a swept "
                         "store without it is refused, with its dims and values)")
    rp.add_argument("--data-dir", default=None, help="MNIST for Fig. 2B: " + DATA_DIR_HELP)
    rp.add_argument("--size", type=int, default=None,
                    help="network size of Table 1 and Figs. 2-4 (default: 128, the paper's)")
    rp.set_defaults(func=_cmd_report)

    ev = sub.add_parser("evaluate", help="recompute a network's test score from its exported weights")
    ev.add_argument("weights", help="weights to score: zoo:NAME, a testbench .h5 with its training "
                                    "metadata, or a .pt")
    ev.add_argument("--data-dir", help=DATA_DIR_HELP)
    ev.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    ev.set_defaults(func=_cmd_evaluate)

    d = sub.add_parser("data", help="list the benchmark datasets, or download one")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="where each dataset file is looked for and whether it is "
                                      "present (checksum verified)")
    dl.add_argument("--data-dir", help=DATA_DIR_HELP)
    dl.set_defaults(func=_cmd_data_list)
    df = dsub.add_parser("fetch", help="download a dataset's missing or corrupt files and verify "
                                       "their checksums")
    df.add_argument("name", nargs="+", choices=DATASET_NAMES, help="datasets to download")
    df.add_argument("--data-dir", help=DATA_DIR_HELP)
    df.add_argument("--base-url", help="mirror holding FOLDER/FILE (default: $TESTBENCH_DATA_URL, "
                                       "else each file's source URL)")
    df.set_defaults(func=_cmd_data_fetch)
    _finish(p)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it cleans up as Ctrl-C does."""


def _terminate(signum, frame):
    raise _Terminated


def _warning_lines(python_way):
    """A ``warnings.showwarning`` printing testbench's plugin warnings as ``warning: ...`` lines
    on stderr (no source line), and other warnings the ``python_way``."""

    def show(message, category, *where):
        if issubclass(category, PluginWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            python_way(message, category, *where)

    return show


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testbench`` console script; returns the exit status."""
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_lines(warnings.showwarning)
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
