"""CLI polish (issue 14): --version, --debug anywhere, help with defaults, one quiet flag, node
modules from the working directory (and on dask.distributed workers), a broken plugin, show
formats, zoo columns, `nodes NAME`, `data list/fetch`, and scripts/train_zoo.py's data check."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import tree_hash
from test_data import register, server, write_co2  # noqa: F401 - server is a fixture

import testbench
from testbench import cli as C
from testbench import data as D
from testbench import nodes as N

ROOT = Path(__file__).resolve().parent.parent


def refused(r, pattern: str) -> None:
    assert "Traceback" not in r.text, r.text
    assert r.status == 2, r.text
    assert re.search(pattern, r.err), r.err


# ----------------------------------------------------------------------- version, debug, help

def test_version_prints_the_package_version(cli):
    r = cli("--version")
    assert r.status == 0
    assert r.out == f"testbench {testbench.__version__}\n"


@pytest.mark.parametrize("argv, debug", [
    (["run", "g.yaml"], False),
    (["--debug", "run", "g.yaml"], True),
    (["run", "g.yaml", "--debug"], True),
    (["--debug", "report", "r.zarr"], True),
    (["report", "r.zarr", "--debug"], True),
    (["data", "fetch", "co2", "--debug"], True),
])
def test_debug_is_accepted_before_and_after_the_command(argv, debug):
    assert C.build_parser().parse_args(argv).debug is debug


def test_debug_after_the_command_shows_the_traceback(cli, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text("nodes:\n  s: {type: no_such_node_type}\n")
    refused(cli("validate", graph), r"unknown node type 'no_such_node_type'")
    for argv in (("--debug", "validate", graph), ("validate", graph, "--debug")):
        r = cli(*argv)
        assert r.status == -1 and "Traceback" in r.text and "GraphError" in r.text, r.text


def _actions(parser: argparse.ArgumentParser, path: str = "testbench"):
    """(command path, parser, action) of every argument of ``parser`` and its sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, parser, action


def test_every_argument_has_help_and_states_its_default(cli):
    seen = set()
    for path, parser, action in _actions(C.build_parser()):
        name = action.option_strings[-1] if action.option_strings else action.dest
        seen.add(f"{path} {name}")
        text = parser._get_formatter()._expand_help(action) if action.help else ""
        assert text.strip(), f"{path} {name} has no help"
        if action.option_strings and not action.required:
            assert "default" in text, f"{path} {name}: help states no default: {text!r}"
    for wanted in ("testbench validate graph", "testbench show store", "testbench export model",
                   "testbench export --output", "testbench evaluate weights", "testbench train --seed",
                   "testbench train --epochs", "testbench run --debug", "testbench data fetch name"):
        assert wanted in seen
    assert re.search(r"--seed SEED\s+seed of initialization and data order \(default: 0\)",
                     cli("train", "--help").out)


def test_one_spelling_for_quiet(cli):
    parser = C.build_parser()
    assert parser.parse_args(["run", "g.yaml", "-q"]).quiet
    assert parser.parse_args(["train", "--dataset", "co2", "--size", "4", "--quiet"]).quiet
    r = cli("train", "--dataset", "co2", "--size", "4", "--no-progress")
    assert r.status == 2 and "unrecognized arguments: --no-progress" in r.err


def test_dataset_names_of_the_cli_are_the_loaders():
    assert C.DATASET_NAMES == tuple(sorted(D.DATASETS))


# -------------------------------------------------------------------- custom node modules

NODE_MODULE = textwrap.dedent('''
    import numpy as np
    import xarray as xr

    from testbench.nodes import stimulus


    @stimulus("ramp_here", register=False)
    def ramp(*, length_steps: int = 50, dt: float = 1.0) -> xr.DataArray:
        """A ramp from 0 to 1.

        Parameters
        ----------
        length_steps : int
            Samples, >= 2.
        dt : float
            Sample interval in time units, > 0.
        """
        t = np.arange(1, length_steps + 1)
        return xr.DataArray(t / length_steps, dims="time", coords={"time": t},
                            attrs={"units": "1", "dt": dt})
''')


@pytest.fixture
def module_in_cwd(tmp_path, monkeypatch):
    """A node module in a fresh working directory that is not on ``sys.path`` (as under the
    console script); yields its module name."""
    name = f"tb_cwd_nodes_{tmp_path.name.replace('-', '_')}"
    work = tmp_path / "work"
    work.mkdir()
    (work / f"{name}.py").write_text(NODE_MODULE)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(work))])
    monkeypatch.chdir(work)
    yield name
    sys.modules.pop(name, None)


def ramp_graph(module: str, lstm_file: Path, out: Path) -> str:
    return (f"output: {out}\nnodes:\n  r: {{type: '{module}:ramp'}}\n"
            f"  cells: {{type: lstm_cells, inputs: [r], settings: {{weights: {lstm_file}}}}}\n"
            "  m: {type: step_response, inputs: {response: cells, stimulus: r}}\n")


def test_a_module_in_the_working_directory_is_found(cli, module_in_cwd, lstm_file, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(ramp_graph(module_in_cwd, lstm_file, tmp_path / "r.zarr"))
    r = cli("validate", graph)
    assert r.status == 0, r.text
    assert str(Path.cwd()) in sys.path and sys.path[0] != str(Path.cwd())  # appended: no shadowing
    r = cli("nodes", f"{module_in_cwd}:ramp")
    assert r.status == 0 and "length_steps: int = 50" in r.out, r.text


def test_a_missing_module_says_exactly_what_to_do(cli, module_in_cwd, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text("nodes:\n  p: {type: 'tb_elsewhere_nodes.sub:pulse'}\n")
    refused(cli("validate", graph),
            rf"fix: make the module importable: run testbench from the folder that holds "
            rf"tb_elsewhere_nodes/sub\.py \(now {re.escape(str(Path.cwd()))}\), add that folder to "
            r"PYTHONPATH, or install the package that holds it")


@pytest.mark.slow
def test_module_references_on_a_distributed_cluster(cli, tmp_path, lstm_file, monkeypatch):
    """A single-file module is uploaded to the workers; a package module they lack is refused up
    front, naming the folder for PYTHONPATH."""
    distributed = pytest.importorskip("distributed")
    name = f"tb_dist_nodes_{tmp_path.name.replace('-', '_')}"
    work = tmp_path / "work"
    (work / "tb_dist_pkg").mkdir(parents=True)
    (work / f"{name}.py").write_text(NODE_MODULE)
    (work / "tb_dist_pkg" / "__init__.py").write_text("")
    (work / "tb_dist_pkg" / "nodes.py").write_text(NODE_MODULE.replace("ramp_here", "ramp_pkg"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(work))])
    # workers start before the chdir: their working directory and path lack the module
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        monkeypatch.chdir(work)
        try:
            assert list(client.run(importlib.util.find_spec, name).values()) == [None]
            graph = tmp_path / "g.yaml"
            graph.write_text(ramp_graph(name, lstm_file, tmp_path / "r.zarr"))
            r = cli("run", graph, "-q", "--scheduler", cluster.scheduler_address)
            assert r.status == 0, r.text
            import xarray as xr

            assert xr.open_zarr(tmp_path / "r.zarr").sizes["cell"] == 6
            graph.write_text(ramp_graph("tb_dist_pkg.nodes", lstm_file, tmp_path / "p.zarr"))
            refused(cli("run", graph, "-q", "--scheduler", cluster.scheduler_address),
                    rf"module 'tb_dist_pkg\.nodes' of a node reference cannot be imported on the "
                    rf"dask workers .*fix: install its package on every worker, or start the "
                    rf"workers with PYTHONPATH={re.escape(str(work))}")
            assert not (tmp_path / "p.zarr").exists()
        finally:
            for mod in (name, "tb_dist_pkg", "tb_dist_pkg.nodes"):
                sys.modules.pop(mod, None)


# --------------------------------------------------------------------------- broken plugin

@pytest.fixture
def broken_plugin(monkeypatch):
    """An installed plugin whose module cannot be imported, as the only entry point."""
    ep = importlib.metadata.EntryPoint(name="broken_nodes", value="tb_no_such_plugin_mod:nodes",
                                       group=N.ENTRY_POINT_GROUP)
    monkeypatch.setattr(N, "entry_points",
                        lambda group: [ep] if group == N.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(N, "_BUILTINS_LOADED", False)
    monkeypatch.setattr(N, "BROKEN_PLUGINS", {})
    return ep


def test_a_broken_plugin_is_reported_once_and_blocks_only_its_nodes(cli, broken_plugin, tmp_path):
    r = cli("nodes")
    assert r.status == 0, r.text
    assert "sine  [stimulus]" in r.out
    warning = (r"warning: plugin 'broken_nodes = tb_no_such_plugin_mod:nodes' failed to load: "
               r"ModuleNotFoundError: No module named 'tb_no_such_plugin_mod'; its node types are "
               r"unavailable, the other nodes work; fix: repair that plugin or remove it")
    assert len(re.findall(warning, r.err)) == 1, r.err
    graph = tmp_path / "g.yaml"
    graph.write_text("nodes:\n  sine: {type: sine}\n")
    r = cli("validate", graph)
    assert r.status == 0 and "warning" not in r.err, r.text  # reported once per process
    graph.write_text("nodes:\n  p: {type: fancy_pulse}\n")
    refused(cli("validate", graph), r"unknown node type 'fancy_pulse'; .* It may come from plugin "
                                    r"'broken_nodes = tb_no_such_plugin_mod:nodes' failed to load: "
                                    r"ModuleNotFoundError.*; fix: repair that plugin or remove it")


# ----------------------------------------------------------------------------------- show

@pytest.fixture
def swept_store(cli, tmp_path, lstm_file) -> Path:
    """A store of sine_response (metric ``frequency``) over a ``frequency`` sweep."""
    graph = tmp_path / "g.yaml"
    out = tmp_path / "s.zarr"
    graph.write_text(f"output: {out}\nnodes:\n"
                     "  sine: {type: sine, settings: {length_steps: 200}, "
                     "sweep: {frequency: [0.05, 0.1]}}\n"
                     f"  cells: {{type: lstm_cells, inputs: [sine], settings: {{weights: {lstm_file}}}}}\n"
                     "  m: {type: sine_response, inputs: {response: cells, stimulus: sine}}\n")
    r = cli("run", graph, "-q")
    assert r.status == 0, r.text
    return out


def test_show_formats_tell_the_sweep_from_the_metric(cli, swept_store):
    r = cli("show", swept_store)
    assert r.status == 0, r.text
    header = next(line for line in r.out.splitlines() if "sweep:frequency" in line).split()
    assert "frequency" in header and header.count("sweep:frequency") == 1
    md = cli("show", swept_store, "--format", "markdown").out
    head = next(line for line in md.splitlines() if line.startswith("| "))
    cells = [c.strip() for c in head.strip("|").split("|")]
    assert "sweep:frequency" in cells and "frequency" in cells and len(set(cells)) == len(cells)
    csv = cli("show", swept_store, "--format", "csv").out.splitlines()
    columns = csv[0].split(",")
    assert "sweep:frequency" in columns and "frequency_mean" in columns and "frequency_n" in columns
    assert len(set(columns)) == len(columns) and len(csv) == 1 + 2  # one header row, two points
    doc = json.loads(cli("show", swept_store, "--format", "json").out)
    assert doc["store"] == str(swept_store) and doc["units"]["correlation_normalized"] == "1"
    assert sorted(row["sweep:frequency"] for row in doc["rows"]) == [0.05, 0.1]
    assert all(row["frequency_n"] == 6 for row in doc["rows"])


def test_show_refuses_the_old_flag_and_off_grid_values(cli, swept_store):
    r = cli("show", swept_store, "--markdown")
    assert r.status == 2 and "unrecognized arguments: --markdown" in r.err
    refused(cli("show", swept_store, "--sel", "frequency=0.07"),
            r"--sel frequency=0\.07: '0\.07' is not a value of 'frequency'; nearest: 0\.05")
    one = json.loads(cli("show", swept_store, "--sel", "frequency=0.1", "--format", "json").out)
    assert len(one["rows"]) == 1


# ------------------------------------------------------------------------------ zoo, nodes

def test_zoo_columns_align_and_sp500_scores_differ(cli):
    r = cli("zoo")
    assert r.status == 0, r.text
    lines = r.out.splitlines()
    header, rows = lines[0], [line for line in lines[1:] if line.startswith("zoo:")]
    assert len(rows) == 24
    units_at = header.index("units")
    for row in rows:
        assert row[units_at:].split("  ")[0] in ("ppm", "1", "index points"), row
        assert row[header.index("dataset"):].split()[0] in row.split()[0]  # zoo:co2-32 / co2
    end = header.index("test score") + len("test score")
    scores = {row.split()[0]: row[:end].split()[-1] for row in rows}
    sp500 = [v for k, v in scores.items() if k.startswith("zoo:sp500")]
    assert len(set(sp500)) == 6 and all(v.startswith("13.57") for v in sp500)
    points = {row[:end].rindex(".") for row in rows}
    assert len(points) == 1  # decimal points in one column


def test_nodes_name_prints_each_setting_once(cli):
    spec = N.registry()["sine_response"]
    r = cli("nodes", "sine_response")
    assert r.status == 0, r.text
    for setting in spec.settings.values():
        assert r.out.count(f"    {setting.name}: ") == 1, setting.name
        assert r.out.count(setting.doc.split()[0] + " " + setting.doc.split()[1]) == 1, setting.doc
    assert "Parameters" not in r.out and "Returns" in r.out
    assert "stimulus: The signal that drove them" in r.out  # inputs' docs kept, once
    assert r.out.count(spec.summary) == 1


# ------------------------------------------------------------------------------------ data

def test_data_fetch_and_list(cli, server, tmp_path, monkeypatch):  # noqa: F811 - fixture
    served, base = server
    write_co2(served, [300.0 + 0.1 * k for k in range(40)])
    register(monkeypatch, served, "co2", "co2_mm_mlo.txt", url=f"{base}/co2/co2_mm_mlo.txt")
    target = tmp_path / "data"
    r = cli("data", "list", "--data-dir", target)
    assert r.status == 0, r.text
    assert re.search(rf"co2\s+missing\s+{re.escape(str(target / 'co2' / 'co2_mm_mlo.txt'))}", r.out)
    assert f"data folder: {target} (--data-dir)" in r.out
    r = cli("data", "fetch", "co2", "--data-dir", target)
    assert r.status == 0, r.text
    assert r.out == f"verified {target / 'co2' / 'co2_mm_mlo.txt'}\n"
    assert (target / "co2" / "co2_mm_mlo.txt").read_bytes() == \
        (served / "co2" / "co2_mm_mlo.txt").read_bytes()
    (target / "sp500").mkdir()
    (target / "sp500" / "GSPC.csv").write_text("not the file\n")
    monkeypatch.setenv("TESTBENCH_DATA", str(target))
    r = cli("data", "list")
    assert re.search(r"co2\s+present", r.out) and re.search(r"sp500\s+corrupt", r.out), r.out
    assert re.search(r"mnist\s+missing", r.out) and "($TESTBENCH_DATA)" in r.out
    # a mirror given on the command line, then an unreachable source
    r = cli("data", "fetch", "co2", "--data-dir", tmp_path / "mirror", "--base-url", base)
    assert r.status == 0 and (tmp_path / "mirror" / "co2" / "co2_mm_mlo.txt").is_file(), r.text
    refused(cli("data", "fetch", "co2", "--data-dir", tmp_path / "x", "--base-url",
                "http://127.0.0.1:9"), r"could not download http://127\.0\.0\.1:9/co2/co2_mm_mlo\.txt")
    refused(cli("data", "fetch", "co3"), r"invalid choice: 'co3'")


def test_a_missing_file_points_at_data_fetch(tmp_path):
    from testbench.errors import DataError

    with pytest.raises(DataError, match=rf"fix: run `testbench data fetch co2 --data-dir "
                                        rf"{re.escape(str(tmp_path))}` \(download=True in Python\)"):
        D.load("co2", data_dir=tmp_path)


# ------------------------------------------------------------------------- train_zoo script

def _train_zoo():
    spec = importlib.util.spec_from_file_location("train_zoo", ROOT / "scripts" / "train_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_zoo_refuses_a_missing_data_dir(tmp_path, capsys):
    from testbench.models import zoo

    script = _train_zoo()
    before = tree_hash(zoo.folder())
    assert script.main(["--data-dir", str(tmp_path / "nope"), "--missing-only"]) == 2
    err = capsys.readouterr().err
    assert f"error: --data-dir {tmp_path / 'nope'}: no such folder; fix:" in err
    assert script.main(["--data-dir", str(tmp_path), "--datasets", "co2", "sp500", "-q"]) == 2
    err = capsys.readouterr().err
    assert (f"error: data folder {tmp_path}: co2/co2_mm_mlo.txt missing, sp500/GSPC.csv missing; "
            f"fix: testbench data fetch co2 --data-dir {tmp_path}; testbench data fetch sp500") in err
    assert tree_hash(zoo.folder()) == before


def test_show_csv_and_json_of_an_ablation_store(cli, tmp_path):
    from test_report import synthetic_store

    from testbench import store as S

    ds = synthetic_store(tmp_path / "s.zarr", ablation=True)
    S.write(ds[["ablation_impact", "ablation_intact"]], tmp_path / "a.zarr", progress=False)
    header = cli("show", tmp_path / "a.zarr", "--format", "csv").out.splitlines()[0].split(",")
    assert "mode" in header and "ablation_impact_mean" in header
    assert not [c for c in header if c.startswith("sweep:")]  # the knock-out mode is no sweep
    rows = json.loads(cli("show", tmp_path / "a.zarr", "--format", "json").out)["rows"]
    assert {r["mode"] for r in rows} == {"zero", "mean"}


def test_two_plugins_with_one_type_name_stop_everything(broken_plugin, monkeypatch, tmp_path):
    """Not a broken plugin to skip: which of the two a graph means cannot be guessed."""
    from testbench.errors import DuplicateNodeError

    (tmp_path / "tb_clash_plugin.py").write_text(
        "from testbench.nodes import stimulus\n\n\n@stimulus('sine')\ndef sine(*, a: float = 1.0):\n"
        "    '''Another sine.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="clash", value="tb_clash_plugin", group=N.ENTRY_POINT_GROUP)
    monkeypatch.setattr(N, "entry_points", lambda group: [ep])
    with pytest.raises(DuplicateNodeError, match=r"node type 'sine' is registered twice: by "
                                                 r"testbench\.stimuli.* and by tb_clash_plugin:sine"):
        N.load_builtins()
    assert N._REGISTRY["sine"].origin.startswith("testbench.stimuli")
    sys.modules.pop("tb_clash_plugin", None)
