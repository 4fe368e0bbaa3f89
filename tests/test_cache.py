"""Incremental re-runs: which changes invalidate which cached analyzer outputs, and the cache's
own safety (marker, atomic entries, size cap)."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import testbench
from conftest import random_network, tree_hash
from testbench import cache as C
from testbench import dut, engine, schema
from testbench.errors import OutputError
from testbench.graph import load_graph
from testbench.models import weights as W

GRAPH = """
nodes:
  step:
    type: step
    settings: {{length_steps: 200, dt: 0.5}}
  sine:
    type: sine
    settings: {{length_steps: 200, dt: 0.5}}
    sweep: {{frequency: [0.1, 0.2]}}
  step_cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: {step_weights}}}
  sine_cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: {sine_weights}}}
  step_metrics:
    type: step_response
    inputs: {{response: step_cells, stimulus: step}}
  sine_metrics:
    type: sine_response
    inputs: {{response: sine_cells, stimulus: sine}}
"""


@pytest.fixture
def nets(tmp_path):
    """Two weights files: one for the step DUT, one for the sine DUT."""
    return (W.save(random_network(seed=0), tmp_path / "a.h5"),
            W.save(random_network(seed=1, n=5), tmp_path / "b.h5"))


@pytest.fixture
def counted(monkeypatch):
    """Names of the nodes built and the number of kernel simulations, per run."""
    calls = {"built": [], "simulated": 0}
    run_node, simulate = engine._run_node, dut.kernels.simulate

    def counting_run_node(decl, inputs, dims, keys, point):
        if not point:  # the node's call, not one of its sweep points
            calls["built"].append(decl.name)
        return run_node(decl, inputs, dims, keys, point)

    def counting_simulate(*args, **kwargs):
        calls["simulated"] += 1
        return simulate(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_node", counting_run_node)
    monkeypatch.setattr(dut.kernels, "simulate", counting_simulate)
    return calls


def run_graph(tmp_path, nets, name, *, cache=True, overrides=()):
    """Run the graph into tmp_path/NAME.zarr; return (opened store, cache or None)."""
    text = GRAPH.format(step_weights=nets[0], sine_weights=nets[1])
    graph = load_graph("g.yaml", text=text, overrides=list(overrides))
    node_cache = C.NodeCache(tmp_path / "cache") if cache else None
    out = engine.run(graph, output=str(tmp_path / f"{name}.zarr"), progress=False,
                     cache=node_cache)
    return xr.open_zarr(out), node_cache


def assert_same_results(a: xr.Dataset, b: xr.Dataset):
    """Identical variables, coordinates and their attributes (run attributes such as the time of
    creation aside)."""
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))


def test_unchanged_rerun_reuses_every_analyzer_simulates_nothing_and_stores_the_same(
        tmp_path, nets, counted):
    first, c1 = run_graph(tmp_path, nets, "first")
    assert sorted(c1.misses) == ["sine_metrics", "step_metrics"] and c1.hits == []
    assert counted["simulated"] > 0
    counted["simulated"], counted["built"] = 0, []
    again, c2 = run_graph(tmp_path, nets, "again")
    assert sorted(c2.hits) == ["sine_metrics", "step_metrics"] and c2.misses == []
    assert counted["simulated"] == 0
    assert counted["built"] == ["step", "sine"]  # no DUT, no analyzer: only the stimuli
    plain, _ = run_graph(tmp_path, nets, "plain", cache=False)
    assert_same_results(again, first)
    assert_same_results(first, plain)  # the cache changes nothing in the store
    assert first.attrs["testbench_complete"] and again.attrs["weights"] == first.attrs["weights"]


def test_changed_analyzer_setting_recomputes_only_that_analyzer(tmp_path, nets, counted):
    run_graph(tmp_path, nets, "first")
    counted["built"] = []
    changed, c = run_graph(tmp_path, nets, "changed", overrides=["step_metrics.band_frac=0.05"])
    assert c.misses == ["step_metrics"] and c.hits == ["sine_metrics"]
    assert counted["built"] == ["step", "sine", "step_cells", "step_metrics"]
    plain, _ = run_graph(tmp_path, nets, "plain", cache=False,
                         overrides=["step_metrics.band_frac=0.05"])
    assert_same_results(changed, plain)


def test_stored_responses_are_simulated_on_every_run_and_identical(tmp_path, nets, counted):
    text = "save_responses: true\n" + GRAPH.format(step_weights=nets[0], sine_weights=nets[1])
    graph = load_graph("g.yaml", text=text)
    first = xr.open_zarr(engine.run(graph, output=str(tmp_path / "a.zarr"), progress=False,
                                    cache=C.NodeCache(tmp_path / "c")))
    counted["simulated"] = 0
    c = C.NodeCache(tmp_path / "c")
    again = xr.open_zarr(engine.run(graph, output=str(tmp_path / "b.zarr"), progress=False,
                                    cache=c))
    assert sorted(c.hits) == ["sine_metrics", "step_metrics"] and counted["simulated"] > 0
    assert "response_step_cells" in again
    assert_same_results(again, first)


def test_changed_stimulus_setting_invalidates_what_is_downstream_of_it_only(tmp_path, nets):
    run_graph(tmp_path, nets, "first")
    _, c = run_graph(tmp_path, nets, "changed", overrides=["sine.amplitude=0.5"])
    assert c.misses == ["sine_metrics"] and c.hits == ["step_metrics"]


def test_new_content_in_the_same_weights_file_invalidates_its_dut_analyzers(tmp_path, nets):
    first, _ = run_graph(tmp_path, nets, "first")
    W.save(random_network(seed=2, n=5), nets[1])  # same path, new weights
    changed, c = run_graph(tmp_path, nets, "changed")
    assert c.misses == ["sine_metrics"] and c.hits == ["step_metrics"]
    plain, _ = run_graph(tmp_path, nets, "plain", cache=False)
    assert_same_results(changed, plain)
    assert not np.array_equal(changed.amplitude.values, first.amplitude.values, equal_nan=True)


def test_another_package_version_invalidates_everything(tmp_path, nets, monkeypatch):
    run_graph(tmp_path, nets, "first")
    monkeypatch.setattr(testbench, "__version__", "99.0.0")
    _, c = run_graph(tmp_path, nets, "again")
    assert c.hits == [] and sorted(c.misses) == ["sine_metrics", "step_metrics"]


def test_edited_user_node_module_invalidates_its_analyzer(tmp_path, lstm_file, monkeypatch):
    module = tmp_path / "mods" / "peak_nodes.py"
    module.parent.mkdir()
    monkeypatch.syspath_prepend(str(module.parent))
    source = textwrap.dedent('''
        import xarray as xr
        from testbench.nodes import analyzer

        @analyzer("peak", register=False)
        def peak(response: xr.DataArray) -> xr.DataArray:
            """Peak of the response, times {n}."""
            out = response.max("time").expand_dims(metric=["peak"]) * {n}
            return out.assign_coords(units=("metric", ["1"]))
    ''')
    text = textwrap.dedent(f"""
        nodes:
          step: {{type: step, settings: {{length_steps: 100}}}}
          cells: {{type: lstm_cells, inputs: [step], settings: {{weights: {lstm_file}}}}}
          peak: {{type: "peak_nodes:peak", inputs: {{response: cells}}}}
    """)
    outcomes = []
    for n in (1, 1, 22):  # 22: another file size, so no stale bytecode is imported
        module.write_text(source.format(n=n))
        monkeypatch.delitem(sys.modules, "peak_nodes", raising=False)
        c = C.NodeCache(tmp_path / "cache")
        peak = engine.build(load_graph("g.yaml", text=text), cache=c).dataset.peak
        outcomes.append((c.hits, c.misses, float(peak.max())))
    assert [o[:2] for o in outcomes] == [([], ["peak"]), (["peak"], []), ([], ["peak"])]
    assert outcomes[2][2] == pytest.approx(22 * outcomes[0][2])


def test_no_cache_reads_and_writes_nothing(tmp_path, nets, cli):
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.format(step_weights=nets[0], sine_weights=nets[1]))
    r = cli("run", graph, "-o", tmp_path / "a.zarr", "--no-cache", "--cache-dir", tmp_path / "c")
    assert r.status == 0, r.text
    assert not (tmp_path / "c").exists()
    assert not os.path.exists(os.path.join(os.environ["TESTBENCH_CACHE"], "nodes"))
    r = cli("run", graph, "-o", tmp_path / "b.zarr", "--cache-dir", tmp_path / "c")
    assert r.status == 0 and "0 analyzer output(s) reused, 2 computed" in r.out, r.text
    before = tree_hash(tmp_path / "c")
    r = cli("run", graph, "-o", tmp_path / "b.zarr", "--no-cache", "--cache-dir", tmp_path / "c")
    assert r.status == 0 and "reused" not in r.out, r.text
    assert tree_hash(tmp_path / "c") == before
    r = cli("run", graph, "-o", tmp_path / "b.zarr", "--cache-dir", tmp_path / "c")
    assert r.status == 0 and "2 analyzer output(s) reused, 0 computed" in r.out, r.text


def test_api_run_in_memory_uses_the_cache_and_returns_the_same(tmp_path, nets):
    text = GRAPH.format(step_weights=nets[0], sine_weights=nets[1])
    first = testbench.run(text, cache=tmp_path / "c")
    assert _nodes(C.NodeCache(tmp_path / "c")) == ["sine_cells", "sine_metrics", "step_cells",
                                                   "step_metrics"]  # DUTs: their outlines
    again = testbench.run(text, cache=tmp_path / "c")
    plain = testbench.run(text, cache=False)
    assert_same_results(again, first)
    assert_same_results(first, plain)


def _entries(c: C.NodeCache) -> list[str]:
    return [key for _, _, key in c.entries()]


def _nodes(c: C.NodeCache) -> list[str]:
    return sorted(json.loads((c.path / key / "entry.json").read_text())["node"]
                  for key in _entries(c))


def test_size_cap_evicts_least_recently_used_entries(tmp_path):
    c = C.NodeCache(tmp_path / "c")
    value = xr.DataArray(np.arange(1000.0), dims="cell", name="v")
    keys = [f"{i:064x}" for i in range(3)]
    for i, key in enumerate(keys):
        c.put(key, value, f"node{i}")
        os.utime(tmp_path / "c" / key / "entry.json", (1e9 + i, 1e9 + i))  # used in this order
    assert c.get(keys[0]) is not None  # used now: the most recent
    assert _entries(c) == [keys[1], keys[2], keys[0]]
    size = c.entries()[0][1]
    c.max_bytes = 2 * size
    assert c.evict() == [keys[1]]
    assert _entries(c) == [keys[2], keys[0]] and c.get(keys[1]) is None
    c.max_bytes = 0
    assert c.evict(keep={keys[0]}) == [keys[2]]  # the current run's entries stay
    assert _entries(c) == [keys[0]]


def test_a_run_evicts_older_entries_beyond_the_cap_and_keeps_its_own(tmp_path, nets, monkeypatch):
    monkeypatch.setenv(C.ENV_MAX, "1")  # one byte: only the current run's entries stay
    _, c1 = run_graph(tmp_path, nets, "first")
    first = set(_entries(c1))
    assert len(first) == 4  # two analyzers, the outlines of two DUTs
    _, c2 = run_graph(tmp_path, nets, "changed", overrides=["step_metrics.band_frac=0.05"])
    now = set(_entries(c2))
    assert len(now) == 4 and len(now & first) == 3  # the old step_metrics entry went
    assert _nodes(c2) == ["sine_cells", "sine_metrics", "step_cells", "step_metrics"]


def test_half_written_entry_is_ignored_and_replaced(tmp_path, nets):
    first, c = run_graph(tmp_path, nets, "first")
    graph = load_graph("g.yaml", text=GRAPH.format(step_weights=nets[0], sine_weights=nets[1]))
    keys = C.node_keys(graph, schema.sweep_dims(graph))
    entry = tmp_path / "cache" / keys["step_metrics"]
    (entry / "entry.json").unlink()  # as if the writer had died before finishing it
    for f in list((entry / "data.zarr").rglob("*"))[:3]:
        if f.is_file():
            f.write_bytes(b"garbage")
    again, c = run_graph(tmp_path, nets, "again")
    assert c.misses == ["step_metrics"] and c.hits == ["sine_metrics"]
    assert json.loads((entry / "entry.json").read_text())["node"] == "step_metrics"
    assert_same_results(again, first)


def test_parts_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    c = C.NodeCache(tmp_path / "c")
    dead, live = (tmp_path / "c" / f".part-{'a' * 64}-0000000{i}" for i in (1, 2))
    for part, pid in ((dead, 2 ** 22 + 12345), (live, os.getpid())):
        part.mkdir()
        (part / ".testbench-writer.json").write_text(json.dumps(
            {"pid": pid, "host": socket.gethostname()}))
    c.evict()
    assert not dead.exists() and live.exists()


@pytest.mark.parametrize("make", ["foreign", "file", "cwd"])
def test_cache_folder_not_created_by_testbench_is_refused(tmp_path, nets, cli, make, monkeypatch):
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.format(step_weights=nets[0], sine_weights=nets[1]))
    folder = tmp_path / "mine"
    if make == "foreign":
        folder.mkdir()
        (folder / "notes.txt").write_text("keep me")
        match = "without the testbench cache marker"
    elif make == "file":
        folder.write_text("keep me")
        match = "is a file or link, not a folder"
    else:
        folder.mkdir()
        monkeypatch.chdir(folder)
        match = "is the current directory"
    before = tree_hash(tmp_path)
    r = cli("run", graph, "-o", tmp_path / "out.zarr", "--cache-dir", folder)
    assert r.status == 2 and "Traceback" not in r.text
    assert match in r.err and "fix: choose another folder with --cache-dir" in r.err
    assert tree_hash(tmp_path) == before


def test_an_empty_folder_is_adopted_with_a_marker(tmp_path):
    (tmp_path / "c").mkdir()
    c = C.NodeCache(tmp_path / "c")
    assert json.loads((c.path / C.MARKER).read_text())["format"] == C.FORMAT
    assert (c.path / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172")
    C.NodeCache(tmp_path / "c")  # its own folder, now non-empty: accepted


@pytest.mark.parametrize("text, expected", [("2G", 2 * 1024 ** 3), ("500M", 500 * 1024 ** 2),
                                            ("64k", 65536), ("1000", 1000), ("1.5KiB", 1536)])
def test_size_caps_parse(text, expected):
    assert C.parse_size(text) == expected


def test_malformed_size_cap_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(C.ENV_MAX, "lots")
    with pytest.raises(OutputError, match=r"'lots' \(TESTBENCH_CACHE_MAX\) is not a size.*fix: "):
        C.NodeCache(tmp_path / "c")
