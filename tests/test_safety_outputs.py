"""Outputs never destroy a user's files: stores, report folders and sink files replace only what
testbench wrote; readers refuse unmarked, incomplete, newer and damaged stores without a traceback.

Every refused case runs through the CLI inside a scratch "world" (a home directory with ``.ssh`` and
``Documents``, a current directory, a graph folder, user files) and asserts status 2, the message
(where + fix), no traceback, and an unchanged hash of the whole world.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import random_network, tree_hash
from testbench import store as S
from testbench import models as W
from testbench.errors import OutputError

GRAPH = """\
output: {out}
nodes:
  step: {{type: step, settings: {{length_steps: 60}}}}
  cells: {{type: lstm_cells, inputs: [step], settings: {{weights: {weights}}}}}
  m: {{type: step_response, inputs: {{response: cells, stimulus: step}}}}
{extra}"""


def sink(path) -> str:
    return f"  table: {{type: summary_table, inputs: [m], settings: {{path: '{path}'}}}}\n"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Stores of one tiny run: ``good`` (complete), ``no_units`` (a marked store without units)."""
    from testbench.engine import run
    from testbench.graph import load_graph

    tmp = tmp_path_factory.mktemp("stores")
    weights = W.save(random_network(), tmp / "toy-6.h5")
    good = run(load_graph("g.yaml", text=GRAPH.format(out=tmp / "good.zarr", weights=weights,
                                                      extra="")), progress=False)
    no_units = xr.open_zarr(good)
    for var in no_units.data_vars.values():
        var.attrs.pop("units", None)
    S.write(no_units, tmp / "no_units.zarr", progress=False)
    return {"good": Path(good), "no_units": tmp / "no_units.zarr", "weights": weights}


@dataclass
class World:
    root: Path
    home: Path
    cwd: Path
    graph: Path
    weights: Path
    stores: dict

    def write_graph(self, out, extra="") -> Path:
        self.graph.write_text(GRAPH.format(out=out, weights=self.weights, extra=extra))
        return self.graph

    def store(self, name, kind="good") -> Path:
        """A copy of a prepared store at ``root/name``."""
        dest = self.root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.stores[kind], dest)
        return dest

    def folder(self, name, **files) -> Path:
        dest = self.root / name
        dest.mkdir(parents=True, exist_ok=True)
        for fname, text in files.items():
            (dest / fname.replace("_dot_", ".")).write_text(text)
        return dest


@pytest.fixture
def world(tmp_path, monkeypatch, stores):
    root = tmp_path / "world"
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / "Documents").mkdir()
    (home / "Documents" / "thesis.tex").write_text("\\begin{document}")
    cwd = root / "work" / "project"
    cwd.mkdir(parents=True)
    (cwd / "notes.txt").write_text("my notes")
    graph = root / "graphs" / "g.yaml"
    graph.parent.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", list(sys.path))
    w = World(root, home, cwd, graph, stores["weights"], stores)
    w.write_graph(root / "out" / "r.zarr")
    return w


def set_root_attrs(path: Path, **attrs) -> None:
    """Change a store's root attributes (None deletes) and its consolidated metadata."""
    group = zarr.open_group(path, mode="r+", zarr_format=2)
    for key, value in attrs.items():
        if value is None:
            del group.attrs[key]
        else:
            group.attrs[key] = value
    zarr.consolidate_metadata(path, zarr_format=2)


def foreign_zarr(w: World, name="theirs.zarr") -> Path:
    path = w.root / name
    xr.Dataset({"temperature": ("x", np.arange(4.0))}).to_zarr(path, zarr_format=2)
    return path


def v1_store(w: World, name="old.zarr") -> Path:
    path = w.store(name)
    set_root_attrs(path, testbench_format=None, testbench_format_version=None,
                   testbench_complete=None)
    return path


def corrupt(path: Path) -> Path:
    chunk = next(p for p in sorted((path / "settling_time").iterdir()) if not p.name.startswith("."))
    chunk.write_bytes(b"\x00garbage, not a compressed chunk" * 3)
    return path


def previous_report(w: World) -> Path:
    from testbench.report import write_report

    out = w.root / "rep"
    write_report(w.store("for_report.zarr"), out, data_dir=w.root / "no-data")
    (out / "index.html").write_text("<p>my own edits</p>")
    return out


FIX_RUN = r"fix: choose another path \(`testbench run GRAPH -o PATH`, or the graph's 'output:'\)"
FIX_REPORT = r"fix: choose another folder \(`testbench report STORE -o DIR`\)"
SINK_AT = r"graphs/g\.yaml:6:\d+: node 'table' \[settings\.path\]"  # refused by the preflight
FIX_READ = r"fix: (re-run the graph|give the path of a store written by `testbench run`|wait for)"

# name -> (setup(world) -> (argv, pattern)); every case must be refused with status 2
CASES = {
    # ---- run -o / output: targets
    "run_home": lambda w: (["run", w.graph, "-o", w.home],
                           rf"output store '{re.escape(str(w.home))}' is the home directory; "
                           rf"testbench never writes to or replaces it; {FIX_RUN}"),
    "run_home_ancestor": lambda w: (["run", w.graph, "-o", w.root],
                                    rf"'{re.escape(str(w.root))}' is an ancestor of the home "
                                    rf"directory .*{FIX_RUN}"),
    "run_cwd_absolute": lambda w: (["run", w.graph, "-o", w.cwd],
                                   rf"'{re.escape(str(w.cwd))}' is the current directory; .*{FIX_RUN}"),
    "run_cwd_dot": lambda w: (["run", w.graph, "-o", "."],
                              rf"output store '\.' is the current directory; .*{FIX_RUN}"),
    "run_cwd_ancestor": lambda w: (["run", w.graph, "-o", w.cwd.parent],
                                   rf"'{re.escape(str(w.cwd.parent))}' is an ancestor of the current "
                                   rf"directory .*{FIX_RUN}"),
    "run_root": lambda w: (["run", w.graph, "-o", "/"],
                           rf"output store '/' is the root directory; .*{FIX_RUN}"),
    "run_foreign_zarr": lambda w: (["run", w.graph, "-o", foreign_zarr(w)],
                                   r"output '.*theirs\.zarr' is a zarr store without the testbench "
                                   rf"marker \(written by another program\); .*{FIX_RUN}"),
    "run_unmarked_v1_store": lambda w: (["run", w.graph, "-o", v1_store(w)],
                                        r"output '.*old\.zarr' is a testbench store of format version "
                                        rf"1, written before .*{FIX_RUN}"),
    "run_plain_file": lambda w: (["run", w.graph, "-o", w.folder("docs", a_dot_txt="x" * 7) / "a.txt"],
                                 rf"output '.*docs/a\.txt' is a file \(7 bytes\); .*{FIX_RUN}"),
    "run_nonempty_folder": lambda w: (["run", w.graph, "-o", w.folder("photos", a="1", b="2")],
                                      r"output '.*photos' is a non-empty folder that is not a "
                                      rf"testbench store \(2 entries: a, b\); .*{FIX_RUN}"),
    "run_git_repository": lambda w: (["run", w.graph, "-o", w.folder("repo/.git", HEAD="ref").parent],
                                     r"output store '.*repo' is a folder holding a repository "
                                     rf"\(\.git\); .*{FIX_RUN}"),
    "run_graph_file": lambda w: (["run", w.graph, "-o", w.graph],
                                 rf"output store '.*g\.yaml' is the graph file itself; .*{FIX_RUN}"),
    "run_graph_folder": lambda w: (["run", w.graph, "-o", w.graph.parent],
                                   r"output store '.*graphs' is a folder holding the graph file "
                                   rf".*g\.yaml; .*{FIX_RUN}"),
    "run_empty_output": lambda w: (["run", w.graph, "-o", ""],
                                   r"output path is empty \('-o \"\"' or output: ''\); fix: give a "
                                   r"store path"),
    "run_memory_url": lambda w: (["run", w.graph, "-o", "memory://bucket/r.zarr"],
                                 r"output 'memory://bucket/r\.zarr': a memory:// store vanishes when "
                                 r"the process exits.*fix: write to a local path"),
    "run_unknown_url_scheme": lambda w: (["run", w.graph, "-o", "nosuchscheme://b/r.zarr"],
                                         r"store URL 'nosuchscheme://b/r\.zarr': Protocol not known"
                                         r".*fix: install the fsspec backend"),
    "run_file_url_to_a_file": lambda w: (["run", w.graph, "-o",
                                          "file://" + str(w.folder("d", f="abc") / "f")],
                                         rf"output 'file://.*d/f' is a file \(3 bytes\); .*{FIX_RUN}"),
    "run_symlink": lambda w: (["run", w.graph, "-o", _symlink(w)],
                              rf"output '.*link\.zarr' is a symbolic link \(to .*photos\); .*{FIX_RUN}"),
    "run_parent_is_a_file": lambda w: (["run", w.graph, "-o", w.folder("d", f="x") / "f" / "r.zarr"],
                                       r"output store '.*d/f/r\.zarr' cannot be created: '.*d/f' is a "
                                       rf"file, not a folder; {FIX_RUN}"),
    "run_graph_output_key": lambda w: (["run", w.write_graph(w.folder("thesis", ch1_dot_tex="x"))],
                                       r"output '.*thesis' is a non-empty folder that is not a "
                                       rf"testbench store .*ch1\.tex.*{FIX_RUN}"),
    # ---- sinks: the graph computes, the sink refuses, the previous store stays
    "sink_over_users_csv": lambda w: (
        ["run", w.write_graph(w.store("out/r.zarr"), sink(w.folder("tables", mine_dot_csv="a,b\n")
                                                          / "mine.csv")), "-q"],
        rf"{SINK_AT} summary_table file '.*tables/mine\.csv' is a file "
        r"testbench did not write \(or one changed since; ledger: .*\.testbench-files\.json\); "
        r"testbench replaces only files it wrote\s+fix: choose another file in the sink's settings"),
    "sink_path_is_a_folder": lambda w: (
        ["run", w.write_graph(w.store("out/r.zarr"), sink(w.folder("tables", x="1"))), "-q"],
        rf"{SINK_AT} summary_table file '.*tables' is a folder\s+fix: choose another file"),
    "sink_parent_is_a_file": lambda w: (
        ["run", w.write_graph(w.store("out/r.zarr"), sink(w.folder("t", f="1") / "f" / "s.csv")),
         "-q"],
        rf"{SINK_AT} summary_table file '.*t/f/s\.csv' cannot be created: '.*t/f' is a file, not a "
        r"folder\s+fix: choose another file"),
    "sink_failing_after_compute": lambda w: (
        ["run", w.write_graph(w.store("out/r.zarr"), _failing_sink(w)), "-q"],
        r"node 'upload' \(upload\): the server refused the upload; fix: try later"),
    # ---- report -o
    "report_over_users_site": lambda w: (
        ["report", w.store("s.zarr"), "-o", w.folder("site", index_dot_html="<h1>my site</h1>")],
        rf"report folder '.*site' holds 1 entries testbench did not write .*index\.html; "
        rf".*{FIX_REPORT}"),
    "report_into_cwd": lambda w: (["report", w.store("s.zarr"), "-o", "."],
                                  rf"report folder '\.' is the current directory; .*{FIX_REPORT}"),
    "report_into_home": lambda w: (["report", w.store("s.zarr"), "-o", w.home],
                                   rf"report folder '.*home' is the home directory; .*{FIX_REPORT}"),
    "report_empty_output": lambda w: (["report", w.store("s.zarr"), "-o", ""],
                                      rf"report folder: the path is empty; {FIX_REPORT}"),
    "report_over_edited_report": lambda w: (
        ["report", w.store("s.zarr"), "-o", previous_report(w)],
        rf"report folder '.*rep' holds 1 entries testbench did not write \(or that changed since"
        rf".*\): index\.html; .*{FIX_REPORT}"),
    "report_over_the_store": lambda w: (["report", w.store("s.zarr"), "-o", w.root / "s.zarr"],
                                        rf"report folder '.*s\.zarr' holds .* entries .*{FIX_REPORT}"),
    "report_incomplete_store": lambda w: (
        ["report", _incomplete(w), "-o", w.root / "new_report"],
        rf"'.*half\.zarr' is an incomplete store: the run writing it was interrupted or is still "
        rf"running \(root attribute testbench_complete is not true\); {FIX_READ}"),
    "report_corrupt_chunk": lambda w: (["report", corrupt(w.store("bad.zarr")), "-o",
                                        w.root / "new_report"],
                                       rf"'.*bad\.zarr': reading the stored data failed .*a chunk is "
                                       rf"missing or corrupt; {FIX_READ}"),
    "report_v1_store": lambda w: (["report", v1_store(w), "-o", w.root / "new_report"],
                                  r"'.*old\.zarr' is a testbench store of format version 1, written "
                                  rf"before .*; this testbench reads format version 3; {FIX_READ}"),
    # ---- show
    "show_incomplete_store": lambda w: (["show", _incomplete(w)],
                                        rf"'.*half\.zarr' is an incomplete store.*{FIX_READ}"),
    "show_newer_version": lambda w: (["show", _newer(w)],
                                     r"'.*new\.zarr' was written by a newer testbench \(format "
                                     r"version 4; this one reads up to 3\); fix: upgrade testbench"),
    "show_corrupt_chunk": lambda w: (["show", corrupt(w.store("bad.zarr"))],
                                     rf"'.*bad\.zarr': reading the stored data failed .*{FIX_READ}"),
    "show_without_units": lambda w: (["show", w.store("nu.zarr", "no_units")],
                                     r"metric variable 'initial_response' has no 'units' "
                                     r"attribute, which every store written by `testbench run` has; "
                                     r"the store is damaged; fix: re-run the graph"),
    "show_sel_off_grid": lambda w: (["show", w.store("s.zarr"), "--sel", "metric=setling_time"],
                                    r"--sel metric=setling_time: 'setling_time' is not a value of "
                                    r"'metric'; did you mean 'settling_time'\? fix: use one of: "
                                    r"initial_response, "),
    "show_sel_off_grid_number": lambda w: (["show", w.store("s.zarr"), "--sel", "cell=17"],
                                           r"--sel cell=17: '17' is not a value of 'cell'; nearest: 5; "
                                           r"fix: use one of: 0, 1, 2, 3, 4, 5"),
    "show_sel_unknown_dim": lambda w: (["show", w.store("s.zarr"), "--sel", "cel=1"],
                                       r"--sel cel=1: no dimension 'cel'; did you mean 'cell'\? "
                                       r"fix: use one of: network, cell, metric"),
    "show_sel_malformed": lambda w: (["show", w.store("s.zarr"), "--sel", "cell"],
                                     r"--sel 'cell': expected DIM=VALUE; fix: e\.g\. --sel "
                                     r"frequency=0\.1"),
    "show_foreign_zarr": lambda w: (["show", foreign_zarr(w)],
                                    r"'.*theirs\.zarr' is a zarr store without the testbench marker "
                                    rf"\(root attribute testbench_format = 'testbench-store'\).*{FIX_READ}"),
    "show_v1_store": lambda w: (["show", v1_store(w)],
                                rf"'.*old\.zarr' is a testbench store of format version 1.*{FIX_READ}"),
    "show_plain_file": lambda w: (["show", w.folder("d", f="abc") / "f"],
                                  rf"'.*d/f' is not a result store: a file \(3 bytes\); {FIX_READ}"),
    "show_nothing_there": lambda w: (["show", w.root / "nope.zarr"],
                                     rf"'.*nope\.zarr' is not a result store: nothing is there; "
                                     rf"{FIX_READ}"),
}


FAILING_SINK = '''
from testbench.errors import TestbenchError
from testbench.nodes import Metrics, sink


@sink("upload", register=False)
def upload(metrics: Metrics) -> None:
    """Fails after the graph was computed, as a sink whose server is down does."""
    raise TestbenchError("the server refused the upload; fix: try later")
'''


def _failing_sink(w: World) -> str:
    """A user's sink module (on sys.path, outside the world) that fails when it runs."""
    (w.root.parent / "user_sinks.py").write_text(FAILING_SINK)
    sys.path.insert(0, str(w.root.parent))  # removed by the world fixture
    return "  upload: {type: 'user_sinks:upload', inputs: [m]}\n"


def _symlink(w: World) -> Path:
    link = w.root / "link.zarr"
    link.symlink_to(w.folder("photos", a="1"))
    return link


def _incomplete(w: World) -> Path:
    path = w.store("half.zarr")
    set_root_attrs(path, testbench_complete=False)
    return path


def _newer(w: World) -> Path:
    path = w.store("new.zarr")
    set_root_attrs(path, testbench_format_version=4)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_output_is_refused_and_nothing_changes(case, world, cli):
    argv, pattern = CASES[case](world)
    before = tree_hash(world.root)
    r = cli(*argv)
    assert r.status == 2, r.text
    assert "Traceback" not in r.text
    assert re.search(pattern, r.err), (pattern, r.err)
    assert "fix:" in r.err
    assert tree_hash(world.root) == before


def test_catalogue_has_at_least_25_distinct_cases():
    assert len(CASES) >= 25


def test_output_is_checked_before_anything_is_computed(world, cli, monkeypatch):
    from testbench import engine

    def no_build(graph):
        raise AssertionError("computed before checking the output")

    monkeypatch.setattr(engine, "build", no_build)
    r = cli("run", world.graph, "-o", world.folder("photos", a="1"))
    assert r.status == 2 and "non-empty folder that is not a testbench store" in r.err


def test_a_run_replaces_its_own_store_and_csv_and_may_use_an_empty_folder(world, cli):
    csv = world.root / "tables" / "summary.csv"
    empty = world.folder("empty.zarr")
    world.write_graph(empty, sink(csv))
    for _ in range(2):  # the second run replaces the store and the CSV it wrote
        r = cli("run", world.graph, "-q")
        assert r.status == 0, r.text
        assert S.open_store(empty).sizes["cell"] == 6
        assert "initial_response_mean," in csv.read_text().splitlines()[0]  # one header row
    ledger = json.loads((csv.parent / S.LEDGER).read_text())["files"]
    assert set(ledger) == {"summary.csv"}
    assert sorted(p.name for p in world.root.iterdir() if p.name.startswith(".")) == []
    assert not (empty / S.WRITER_RECORD).exists()
    attrs = json.loads((empty / ".zattrs").read_text())
    assert (attrs["testbench_format"], attrs["testbench_format_version"],
            attrs["testbench_complete"]) == ("testbench-store", S.STORE_FORMAT_VERSION, True)


def test_an_incomplete_store_of_ours_is_replaced(world, cli):
    half = _incomplete(world)
    assert cli("run", world.graph, "-q", "-o", half).status == 0
    assert S.open_store(half).attrs["testbench_complete"] is True


def test_a_failing_sink_leaves_no_new_store_where_none_was(world, cli):
    world.write_graph(world.root / "fresh.zarr", _failing_sink(world))
    r = cli("run", world.graph, "-q")
    assert r.status == 2 and "the server refused the upload" in r.err
    assert not (world.root / "fresh.zarr").exists()
    assert [p.name for p in world.root.iterdir() if p.name.startswith(".")] == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _sibling(parent: Path, name: str, record: dict | None, text="x") -> Path:
    path = parent / name
    path.mkdir()
    (path / "chunk").write_text(text)
    if record is not None:
        (path / S.WRITER_RECORD).write_text(json.dumps(record))
    return path


def test_stale_siblings_of_dead_writers_are_removed_and_nothing_else(world, cli):
    import socket

    out = world.store("out/r.zarr")
    here, dead = socket.gethostname(), _dead_pid()
    stale = [_sibling(out.parent, ".r.zarr.part-0123abcd", {"pid": dead, "host": here}),
             _sibling(out.parent, ".r.zarr.old-89abcdef", {"pid": dead, "host": here})]
    kept = [_sibling(out.parent, ".x.part-zzzz", {"pid": dead, "host": here}),           # not ours
            _sibling(out.parent, ".r.zarr.part-4567cdef", None),                          # no record
            _sibling(out.parent, ".r.zarr.part-00000000", {"pid": os.getpid(), "host": here}),
            _sibling(out.parent, ".r.zarr.part-11111111", {"pid": dead, "host": "elsewhere"}),
            _sibling(out.parent, ".r.zarr.part-22222222", {"pid": "1; rm -rf /", "host": here}),
            _sibling(out.parent, ".other.zarr.part-33333333", {"pid": dead, "host": here})]
    kept_hashes = [tree_hash(p) for p in kept]
    assert cli("run", world.graph, "-q").status == 0
    assert not any(p.exists() for p in stale)
    assert [tree_hash(p) for p in kept] == kept_hashes
    assert S.open_store(out).sizes["cell"] == 6


def test_a_previous_store_moved_aside_by_a_killed_fallback_swap_is_restored(world):
    import socket

    out = world.root / "out" / "r.zarr"
    aside = out.with_name(".r.zarr.old-0123abcd")
    shutil.copytree(world.stores["good"], aside)
    (aside / S.WRITER_RECORD).write_text(json.dumps({"pid": _dead_pid(),
                                                     "host": socket.gethostname()}))
    S._remove_stale(out)
    assert not aside.exists()
    xr.testing.assert_identical(S.open_store(out).load(), S.open_store(world.stores["good"]).load())


def test_two_rename_fallback_where_the_exchange_is_unavailable(world, cli, monkeypatch):
    monkeypatch.setattr(S, "_exchange", lambda a, b: False)
    out = world.store("out/r.zarr")
    assert cli("run", world.graph, "-q").status == 0
    assert S.open_store(out).sizes["cell"] == 6
    assert [p.name for p in out.parent.iterdir()] == ["r.zarr"]


def test_a_failing_exchange_is_an_output_error_and_keeps_the_previous_store(world, cli, monkeypatch):
    import errno

    def refuse(a, b):
        raise OSError(errno.EIO, "Input/output error", str(a))

    monkeypatch.setattr(S, "_exchange", refuse)
    world.store("out/r.zarr")
    before = tree_hash(world.root)
    r = cli("run", world.graph, "-q")
    assert r.status == 2 and "Traceback" not in r.text
    assert re.search(r"output store '.*out/r\.zarr': moving the new store into place failed: "
                     rf"\[Errno 5\] Input/output error.*{FIX_RUN}", r.err), r.err
    assert "computing the graph failed" not in r.err
    assert tree_hash(world.root) == before  # the previous store as it was, no .part


def test_exchange_swaps_two_folders_atomically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").touch()
    (b / "from_b").touch()
    if not S._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) unavailable on this file system")
    assert [p.name for p in a.iterdir()] == ["from_b"]
    assert [p.name for p in b.iterdir()] == ["from_a"]


def test_sigterm_is_handled_like_ctrl_c(world, cli, monkeypatch):
    from testbench import kernels

    out = world.store("out/r.zarr")
    before = tree_hash(world.root)
    real = kernels.simulate

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "simulate", terminated)
    handler = signal.getsignal(signal.SIGTERM)
    r = cli("run", world.graph, "-q", "--scheduler", "synchronous")
    assert r.status == 143 and "terminated; no partial store was left in place" in r.err
    assert tree_hash(world.root) == before
    assert S.open_store(out).attrs["testbench_complete"] is True
    assert signal.getsignal(signal.SIGTERM) == handler  # main() restores the previous handler


@pytest.fixture
def url_fs():
    """A fresh in-process fsspec file system under the scheme ``tbscratch://`` (not memory://)."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class Scratch(MemoryFileSystem):
        protocol = ("tbscratch",)
        store: dict = {}
        pseudo_dirs = [""]

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(path.removeprefix("tbscratch://"))

    fsspec.register_implementation("tbscratch", Scratch, clobber=True)
    return Scratch()


def test_url_targets_obey_the_marker_rule(world, cli, url_fs):
    target = "tbscratch://bucket/r.zarr"
    for _ in range(2):  # written, then its own store replaced
        assert cli("run", world.graph, "-q", "-o", target).status == 0, target
        assert S.open_store(target).sizes["cell"] == 6
    xr.Dataset({"t": ("x", [1.0])}).to_zarr("tbscratch://bucket/theirs.zarr", zarr_format=2)
    r = cli("run", world.graph, "-q", "-o", "tbscratch://bucket/theirs.zarr")
    assert r.status == 2 and "zarr store without the testbench marker" in r.err
    assert "t" in xr.open_zarr("tbscratch://bucket/theirs.zarr")
    url_fs.pipe("bucket/notes.txt", b"mine")
    r = cli("run", world.graph, "-q", "-o", "tbscratch://bucket/notes.txt")
    assert r.status == 2 and "is a file (4 bytes)" in r.err
    assert url_fs.cat("bucket/notes.txt") == b"mine"


def test_check_target_is_usable_before_any_run(world):
    assert S.check_target(world.root / "new" / "r.zarr", graph=str(world.graph)).endswith("r.zarr")
    with pytest.raises(OutputError, match=r"is the graph file itself"):
        S.check_target(world.graph, graph=str(world.graph))
