"""Hostile graph text, ``--set`` values and node references: exit status 2, a located message with a
fix, never a traceback, never a write (tests/broken holds the cases that are plain graph files)."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import pytest
from conftest import tree_hash

from testbench.graph import MAX_TEXT_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from testbench.nodes import Range, check_value

SINE = "nodes:\n  sine:\n    type: sine\n    settings: {frequency: 0.1}\n"
TWO = SINE + "  step:\n    type: step\n"


def _graph(settings: str) -> str:
    """A one-node graph whose sine node has ``settings`` (a YAML flow mapping's inside)."""
    return f"nodes:\n  sine:\n    type: sine\n    settings: {{{settings}}}\n"


def _nested(depth: int, inner: str = "0.1") -> str:
    return "[" * depth + inner + "]" * depth


def _values(n: int, start: float, step: float) -> str:
    return "[" + ", ".join(f"{start + step * i:g}" for i in range(n)) + "]"


def _laughs_map(levels: int) -> str:
    """Mappings that repeat the previous level 10 times through aliases: 10**levels values."""
    lines = ["nodes:", "  l0: &l0 {" + ", ".join(f"k{i}: 1" for i in range(10)) + "}"]
    for lv in range(1, levels):
        lines.append(f"  l{lv}: &l{lv} {{" + ", ".join(f"k{i}: *l{lv - 1}" for i in range(10)) + "}")
    return "\n".join(lines) + "\n"


def assert_refused(r, pattern: str) -> None:
    assert "Traceback" not in r.text, r.text
    assert r.status == 2, r.text
    assert re.search(pattern, r.err), r.err


# graph file content -> the message it must give (location, what, fix)
TEXT_CASES = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
               r"g\.yaml:1:1: not UTF-8 text: byte 0x89 at byte offset 0.*\n.*fix: save the graph as "
               r"UTF-8 text"),
    "utf16": ("nodes: {}\n".encode("utf-16"), r"g\.yaml:1:1: not UTF-8 text: byte 0xff at byte offset 0"),
    "nul": (b"nodes:\n  sine:\x00\n", r"g\.yaml:2:8: control character U\+0000 at byte offset 14"),
    "control": (b"nodes:\n  sine:\n    type: sine\x07\n",
                r"g\.yaml:3:15: control character U\+0007 .*\n.*fix: save the graph as UTF-8"),
    "oversize": (b"#" * (MAX_TEXT_BYTES + 1),
                 rf"g\.yaml: more than {MAX_TEXT_BYTES:,} bytes .*\n.*fix: a graph is a short YAML file"),
    "deep": ("x: " + _nested(100_000), rf"g\.yaml:1:\d+: values nested more than {MAX_YAML_DEPTH} levels "
                                        r"deep.*\n.*fix: flatten"),
    "deep_by_alias": ("nodes:\n  a: &a " + _nested(30) + "\n  b: " + _nested(30, "*a") + "\n",
                      r"g\.yaml:3:\d+: values nested more than \d+ levels deep \(aliases count"),
    "laughs_mapping": (_laughs_map(5),
                       rf"g\.yaml:\d+:\d+: the document holds more than {MAX_YAML_VALUES:,} values "
                       r"\(aliases count as the values they repeat\)\n.*fix: write a shorter graph"),
    "recursive_mapping": ("nodes: &n {sine: *n}\n", r"g\.yaml:1:18: alias \*n refers to a value that "
                                                    r"contains it"),
    "python_tag": (_graph('frequency: !!python/object/apply:os.system ["touch pwned"]'),
                   r"g\.yaml:4:27: YAML tag tag:yaml\.org,2002:python/object/apply:os\.system is not "
                   r"allowed: graph values are plain data\n.*fix: remove the tag"),
    "local_tag": (_graph("frequency: !foo 0.1"), r"g\.yaml:4:27: YAML tag !foo is not allowed"),
    "tag_directive": ("%TAG !e! tag:example.com,2000:\n---\nnodes: !e!graph {}\n",
                      r"g\.yaml:3:8: YAML tag tag:example\.com,2000:graph is not allowed"),
    "huge_int": (_graph("length_steps: 1" + "0" * 5000),
                 r"g\.yaml:4:30: an integer of 5,001 characters \(limit 100\)"),
    "date": (_graph("frequency: 2001-02-30"), r"g\.yaml:4:27: YAML reads '2001-02-30' as a timestamp, "
                                              r"which no setting takes\n.*fix: quote it"),
    "mapping_as_key": ("? {a: {b: 1}}\n: 2\n" + SINE, r"g\.yaml:1:3: a key must be a plain value such as "
                                                    r"a name, not a list or mapping"),
    "two_documents": (SINE + "---\nnodes: {}\n", r"g\.yaml:5:1: YAML syntax error: expected a single "
                                                 r"document in the stream"),
    "undefined_alias": (_graph("frequency: *nope"), r"g\.yaml:4:27: YAML syntax error: found undefined "
                                                    r"alias 'nope'"),
    "bad_merge": ("nodes:\n  sine:\n    type: sine\n    <<: 5\n",
                  r"g\.yaml:4:9: YAML syntax error: .*expected a mapping or list of mappings for merging"),
    "overflow_to_inf": (_graph("amplitude: 1e999"), r"g\.yaml:4:27: node 'sine' \[settings\.amplitude\] "
                                                    r"value inf must be a finite number"),
    "negative_inf_in_sweep": ("nodes:\n  sine:\n    type: sine\n    sweep: {phase: [0.0, -.inf]}\n",
                              r"g\.yaml:4:26: node 'sine' \[sweep\.phase\[1\]\] sweep value -inf must be "
                              r"a finite number"),
    "nan_initial_state": ("nodes:\n  s: {type: step}\n  cells:\n    type: lstm_cells\n    inputs: [s]\n"
                          "    settings: {h0: .nan}\n",
                          r"g\.yaml:6:20: node 'cells' \[settings\.h0\] value nan must be a finite"),
    "duplicates_int_and_float": ("nodes:\n  sine:\n    type: sine\n    sweep: {phase: [1, 1.0]}\n",
                                 r"\[sweep\.phase\[1\]\] sweep values \[1, 1\.0\] contain duplicates"),
    "grid_of_two_nodes": (
        "nodes:\n  sine:\n    type: sine\n    sweep: {frequency: " + _values(400, 0.001, 0.001) + "}\n"
        "  step:\n    type: step\n    sweep: {amplitude: " + _values(300, 0.1, 0.1) + "}\n",
        r"g\.yaml:4:24: node 'sine' \[sweep\.frequency\] the sweeps make a grid of 120,000 points "
        r"\(sine\.frequency 400 x step\.amplitude 300\); the limit is 100,000"),
    # node references: refused before anything is imported
    "ref_colon": (_graph("").replace("type: sine", "type: ':'"),
                  r"g\.yaml:3:11: node 'sine' \[type\] node reference ':' is not of the form "
                  r"package\.module:function; fix:"),
    "ref_no_module": (_graph("").replace("type: sine", "type: ':system'"),
                      r"node reference ':system' is not of the form package\.module:function"),
    "ref_not_identifier": (_graph("").replace("type: sine", "type: 'my nodes:pulse train'"),
                           r"node reference 'my nodes:pulse train' is not of the form"),
    "ref_stdlib_submodule": (_graph("").replace("type: sine", "type: unittest.mock:sentinel"),
                             r"g\.yaml:3:11: .*names the Python standard library module 'unittest\.mock'"),
    "ref_stdlib_shell": (_graph("").replace("type: sine", "type: subprocess:run"),
                         r"module 'subprocess', which holds no testbench nodes; fix: refer to a function "
                         r"decorated"),
    "ref_missing_package": (_graph("").replace("type: sine", "type: no_such_pkg_xyz.sub:f"),
                            r"cannot import module 'no_such_pkg_xyz\.sub' of node reference .*: no such "
                            r"module is installed or on the Python path; fix: make the module importable"),
}


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_bad_graph_text_is_refused_with_location_and_fix(case, cli, tmp_path):
    data, pattern = TEXT_CASES[case]
    graph = tmp_path / "g.yaml"
    graph.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = tree_hash(tmp_path)
    assert_refused(cli("validate", graph), pattern)
    assert tree_hash(tmp_path) == before  # nothing written, no payload ran


@pytest.mark.parametrize("path, pattern", [
    ("/dev/zero", rf"/dev/zero: more than {MAX_TEXT_BYTES:,} bytes"),
    ("DIR", r"cannot read graph file: Is a directory\n.*fix: check the path"),
    ("DIR/missing.yaml", r"missing\.yaml: cannot read graph file: No such file or directory"),
])
def test_unreadable_graph_files(path, pattern, cli, tmp_path):
    if path.startswith("/dev") and not Path(path).exists():
        pytest.skip(f"no {path} here")
    assert_refused(cli("validate", path.replace("DIR", str(tmp_path))), pattern)


SET_CASES = {
    "python_tag": ("sine.frequency=!!python/name:os.system",
                   r"--set sine\.frequency:1:1: YAML tag tag:yaml\.org,2002:python/name:os\.system is not "
                   r"allowed"),
    "local_tag": ("sine.frequency=!foo x", r"--set sine\.frequency:1:1: YAML tag !foo is not allowed"),
    "reserved_indicator": ("sine.frequency=@x",
                           r"--set sine\.frequency:1:1: YAML syntax error: .*'@'.*\n.*fix: write the value "
                           r"as YAML data: .*quoted string \(--set 'sine\.frequency=\"text\"'\)"),
    "unclosed_list": ("sine.frequency=[1,", r"--set sine\.frequency:1:4: YAML syntax error"),
    "duplicates": ("sine.frequency=[0.1, 0.2, 0.1]",
                   r"--set sine\.frequency: node 'sine' \[settings\.frequency\] sweep values \[0\.1, 0\.2, "
                   r"0\.1\] contain duplicates: 0\.1 is listed twice\n.*fix: list each value once"),
    "nan": ("sine.frequency=.nan", r"--set sine\.frequency: node 'sine' \[settings\.frequency\] value nan "
                                   r"must be a finite number"),
    "negative_inf": ("sine.amplitude=-.inf", r"--set sine\.amplitude: .*value -inf must be a finite"),
    "not_utf8": ("sine.frequency=0.\udcff", r"--set sine\.frequency:1:18: not UTF-8 text: byte 0xff at "
                                            r"byte offset 17.*\n.*fix: give the --set value as UTF-8"),
    "control": ("sine.frequency=0.1\x1b[2J", r"--set sine\.frequency:1:19: control character U\+001B"),
    "deep": ("sine.frequency=" + _nested(1000), r"--set sine\.frequency:1:\d+: values nested more than"),
    "oversize": ("sine.frequency=" + "1" * MAX_TEXT_BYTES, r"--set sine\.frequency: more than"),
    "laughs": ("sine.frequency=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
               "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]]",
               rf"--set sine\.frequency:1:\d+: the document holds more than {MAX_YAML_VALUES:,} values"),
    "unknown_setting": ("sine.frequencyy=0.2", r"--set sine\.frequencyy: node 'sine' "
                                               r"\[settings\.frequencyy\] unknown setting 'frequencyy'.*\n"
                                               r".*fix: did you mean 'frequency'\?"),
    "out_of_range": ("sine.frequency=-1", r"--set sine\.frequency: node 'sine' \[settings\.frequency\] "
                                          r"value -1 must be > 0"),
    "unknown_node": ("sien.frequency=1", r"--set sien\.frequency: node 'sien' override .*: no node 'sien'"
                                         r"\n.*fix: did you mean 'sine'\?"),
    "no_equals": ("sine.frequency", r"--set: override 'sine\.frequency' is not of the form "
                                    r"node\.setting=value"),
    "grid_by_set": ("step.amplitude=" + _values(2000, 0.1, 0.1),
                    r"--set step\.amplitude: node 'step' \[sweep\.amplitude\] the sweeps make a grid of "
                    r"200,000 points \(step\.amplitude 2,000 x sine\.phase 100\)"),
}


@pytest.mark.parametrize("case", sorted(SET_CASES))
def test_bad_set_value_is_refused_at_set_node_key(case, cli, tmp_path):
    override, pattern = SET_CASES[case]
    graph = tmp_path / "g.yaml"
    graph.write_text(TWO.replace("settings: {frequency: 0.1}",
                                 "settings: {frequency: 0.1}\n    sweep: {phase: " + _values(100, 0, 0.01)
                                 + "}"))
    before = tree_hash(tmp_path)
    r = cli("validate", graph, "--set", override)
    assert_refused(r, pattern)
    assert "g.yaml:0:0" not in r.err
    assert tree_hash(tmp_path) == before


def test_every_problem_of_text_and_set_is_reported_at_once(cli, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(_graph("amplitude: .nan, dt: 0"))
    r = cli("validate", graph, "--set", "sine.frequency=@x", "--set", "sine.phase=.inf")
    assert_refused(r, r"4 problems")
    for pattern in (r"--set sine\.frequency:1:1: YAML syntax error", r"--set sine\.phase: .*value inf",
                    r"g\.yaml:4:27: .*\[settings\.amplitude\] value nan", r"g\.yaml:4:\d+: .*\[settings\.dt\]"):
        assert re.search(pattern, r.err), (pattern, r.err)


def test_run_refuses_like_validate_and_writes_nothing(cli, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(TEXT_CASES["python_tag"][0])
    out = tmp_path / "out.zarr"
    before = tree_hash(tmp_path)
    validated = cli("validate", graph, "--set", "sine.phase=.nan")
    ran = cli("run", graph, "-o", out, "--set", "sine.phase=.nan")
    assert_refused(ran, r"YAML tag .* is not allowed")
    assert ran.err == validated.err  # one loader: the same problems, word for word
    assert tree_hash(tmp_path) == before


@pytest.fixture
def failing_module(tmp_path, monkeypatch):
    """A module that raises on import, importable from ``tmp_path``."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "tb_boom_on_import.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(mods))
    return "tb_boom_on_import"


@pytest.mark.parametrize("ref, pattern", [
    ("my_nodes:np", r"'my_nodes:np' is not a node; fix: decorate it with @stimulus/@dut/@analyzer/@sink"),
    ("my_nodes:pulse_trian", r"module 'my_nodes' has no attribute 'pulse_trian'; did you mean "
                             r"'pulse_train'\?"),
    ("my_nodes:pulse_train.__call__", r"node reference 'my_nodes:pulse_train\.__call__' is not of the form"),
    ("tb_boom_on_import:f", r"importing module 'tb_boom_on_import' of node reference 'tb_boom_on_import:f' "
                            r"failed: RuntimeError: boom; fix: repair the module"),
])
def test_user_module_references(ref, pattern, cli, tmp_path, user_nodes, failing_module):
    graph = tmp_path / "g.yaml"
    graph.write_text(_graph("").replace("type: sine", f"type: {ref}"))
    assert_refused(cli("validate", graph), rf"g\.yaml:3:11: node 'sine' \[type\] {pattern}")


def test_user_node_reference_still_validates(cli, tmp_path, user_nodes):
    graph = tmp_path / "g.yaml"
    graph.write_text("nodes:\n  p:\n    type: my_nodes:pulse_train\n    settings: {period_steps: 10}\n")
    r = cli("validate", graph)
    assert r.status == 0, r.text


@pytest.mark.parametrize("name, pattern", [
    (":", r"node reference ':' is not of the form package\.module:function"),
    ("unittest.mock:sentinel", r"names the Python standard library module 'unittest\.mock'"),
    ("os:system", r"names the Python standard library module 'os'"),
])
def test_nodes_command_refuses_bad_references(name, pattern, cli):
    assert_refused(cli("nodes", name), pattern)


def test_within_the_limits_aliases_text_and_set_lists_still_work(cli, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text("description: réponse à un échelon ✓\nnodes:\n"
                     "  sine:\n    type: sine\n    settings: &common {length_steps: 200, dt: 0.5}\n"
                     "  step:\n    type: step\n    settings: *common\n")
    # the override changes sine only, though sine and step share one settings mapping (step has no
    # 'frequency' setting and would be refused)
    r = cli("validate", graph, "--set", "sine.frequency=[0.01, 0.02]", "--set", "step.amplitude=2")
    assert r.status == 0, r.text
    assert "valid (2 stimulus)" in r.out


def test_validate_prints_an_undecodable_graph_name(cli, tmp_path):
    name = os.fsdecode(b"\xff.yaml")
    (tmp_path / name).write_text(SINE)
    r = cli("validate", tmp_path / name)
    assert r.status == 0, r.text
    assert "\\xff.yaml: valid" in r.out


def test_a_standard_library_reference_is_refused_before_importing(capsys):
    from testbench.errors import RegistryError
    from testbench.nodes import lookup

    assert "this" not in sys.modules  # importing `this` prints the Zen of Python
    with pytest.raises(RegistryError, match=r"names the Python standard library module 'this'"):
        lookup("this:s")
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""


def test_a_failing_parent_package_is_reported(tmp_path, monkeypatch):
    from testbench.errors import RegistryError
    from testbench.nodes import lookup

    (tmp_path / "tb_boom_pkg").mkdir()
    (tmp_path / "tb_boom_pkg" / "__init__.py").write_text("raise ValueError('parent boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match=r"importing module 'tb_boom_pkg\.sub' .* failed: ValueError: "
                                            r"parent boom; fix: repair the module"):
        lookup("tb_boom_pkg.sub:f")


@pytest.mark.parametrize("tp, value", [
    (float, math.nan), (float, -math.inf), (Annotated[float, Range(gt=0)], math.inf), (float, 10 ** 400),
    (list[float], [1.0, math.nan]), (float | None, math.nan),
])
def test_float_settings_are_finite(tp, value):
    got, problem = check_value(tp, value)
    assert got is value
    assert problem.endswith("must be a finite number (not NaN or infinity)")
