"""Graph validation: every broken graph in tests/broken is reported with its location and a fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbench import cli
from testbench.errors import GraphError
from testbench.graph import load_graph

BROKEN = Path(__file__).parent / "broken"

# file -> regex the error must match: location (file:line:col), node, key path, message, fix
CASES = {
    "empty.yaml": r"empty\.yaml:\d+:\d+: the graph is empty.*\n.*fix: add a 'nodes:'",
    "syntax.yaml": r"syntax\.yaml:4:\d+:.*YAML syntax error",
    "unknown_type.yaml": r"unknown_type\.yaml:3:11: node 'sine' \[type\] unknown node type 'sinus'; "
                         r"did you mean 'sine'\?",
    "unknown_setting.yaml": r"unknown_setting\.yaml:5:7: node 'sine' \[settings\.frequncy\] unknown "
                            r"setting 'frequncy'.*\n.*fix: did you mean 'frequency'\?",
    "wrong_type.yaml": r"wrong_type\.yaml:5:18: node 'sine' \[settings\.frequency\] value 'fast' "
                       r"expected a number",
    "out_of_range.yaml": r"out_of_range\.yaml:5:18: node 'sine' \[settings\.frequency\] value -0\.5 "
                         r"must be > 0",
    "missing_input.yaml": r"missing_input\.yaml:9:5: node 'metrics' \[inputs\.stimulus\] missing "
                          r"input 'stimulus'.*\n.*fix: add inputs: \{stimulus: <node name>\}",
    "unknown_input.yaml": r"unknown_input\.yaml:6:14: node 'cells' \[inputs\.stimulus\] input "
                          r"'stimulus' refers to unknown node 'sien'.*\n.*did you mean 'sine'\?",
    "cycle.yaml": r"cycle\.yaml:\d+:3: node '[ab]' \[inputs\] cycle: (a -> b -> a|b -> a -> b)",
    "duplicate_node.yaml": r"duplicate_node\.yaml:4:3: \[sine\] duplicate key 'sine' \(first defined "
                           r"on line 2\)",
    "sweep_unknown.yaml": r"sweep_unknown\.yaml:5:7: node 'sine' \[sweep\.frequence\] cannot sweep "
                          r"'frequence'.*\n.*did you mean 'frequency'\?",
    "sweep_not_list.yaml": r"sweep_not_list\.yaml:5:18: node 'sine' \[sweep\.frequency\] a sweep "
                           r"needs a non-empty list",
    "too_long.yaml": r"too_long\.yaml:5:21: node 'sine' \[settings\.length_steps\] value "
                     r"100000000000 must be <= 10000000",
    "unknown_top_key.yaml": r"unknown_top_key\.yaml:1:1: \[outptu\] unknown top-level key 'outptu'"
                            r".*\n.*did you mean 'output'\?",
    "bad_scheduler.yaml": r"bad_scheduler\.yaml:1:12: \[scheduler\] 'scheduler' is 'thread'.*\n.*"
                          r"did you mean 'threads'\?",
    "unknown_node_key.yaml": r"unknown_node_key\.yaml:4:5: node 'sine' \[setings\] unknown key "
                             r"'setings'.*\n.*did you mean 'settings'\?",
    "kind_mismatch.yaml": r"kind_mismatch\.yaml:4:11: node 'sine' \[kind\] 'kind' is 'analyzer' but "
                          r"type 'sine' is a stimulus node",
    "bad_module_ref.yaml": r"bad_module_ref\.yaml:3:11: node 'sine' \[type\] cannot import module "
                           r"'no_such_module_xyz'",
    "too_many_inputs.yaml": r"too_many_inputs\.yaml:8:13: node 'cells' \[inputs\] 2 inputs given but "
                            r"type 'lstm_cells' takes 1 \(stimulus\)",
    "set_and_swept.yaml": r"set_and_swept\.yaml:7:7: node 'sine' \[sweep\.frequency\] 'frequency' is "
                          r"both set and swept",
    "bad_choice.yaml": r"bad_choice\.yaml:8:16: node 'cells' \[settings\.backend\] value 'gpu' "
                       r"expected one of 'cpu', 'cuda'",
    "missing_type.yaml": r"missing_type\.yaml:2:3: node 'sine' \[type\] missing 'type'",
    "sweep_bad_value.yaml": r"sweep_bad_value\.yaml:5:25: node 'sine' \[sweep\.frequency\[1\]\] sweep "
                            r"value 'zero' expected a number",
    "many_problems.yaml": r"3 problems in graph:(.|\n)*\[settings\.amplitud\](.|\n)*"
                          r"\[settings\.layer\] value -1 must be >= 0(.|\n)*"
                          r"unknown node type 'sine_respons'; did you mean 'sine_response'\?",
    "not_a_mapping.yaml": r"not_a_mapping\.yaml:2:3: \[nodes\] 'nodes' must be a mapping",
    # bounded, plain-data YAML (tests/test_safety_graph.py has the generated and --set cases)
    "yaml_tag.yaml": r"yaml_tag\.yaml:4:27: YAML tag tag:yaml\.org,2002:python/object/apply:os\.system "
                     r"is not allowed.*\n.*fix: remove the tag",
    "recursive_alias.yaml": r"recursive_alias\.yaml:4:33: alias \*f refers to a value that contains it",
    "billion_laughs.yaml": r"billion_laughs\.yaml:\d+:\d+: the document holds more than 10,000 values",
    "deep_nesting.yaml": r"deep_nesting\.yaml:4:\d+: values nested more than 50 levels deep",
    "latin1.yaml": r"latin1\.yaml:3:14: not UTF-8 text: byte 0xe9 at byte offset 47.*\n.*fix: save the "
                   r"graph as UTF-8",
    "stdlib_reference.yaml": r"stdlib_reference\.yaml:3:11: node 'shell' \[type\] node reference "
                             r"'os:system' names the Python standard library module 'os'",
    "non_finite.yaml": r"2 problems(.|\n)*non_finite\.yaml:4:27: node 'sine' \[settings\.amplitude\] "
                       r"value nan must be a finite number(.|\n)*:4:37: node 'sine' \[settings\.dt\] value "
                       r"inf must be a finite",
    "sweep_duplicates.yaml": r"sweep_duplicates\.yaml:4:35: node 'sine' \[sweep\.frequency\[2\]\] sweep "
                             r"values .* contain duplicates.*\n.*fix: list each value once",
    "grid_too_large.yaml": r"grid_too_large\.yaml:12:18: node 'step' \[sweep\.amplitude\] the sweeps make "
                           r"a grid of 125,000 points \(step\.amplitude 50 x sine\.phase 50 x "
                           r"sine\.frequency 50\); the limit is 100,000\n.*fix: sweep fewer values",
}


def test_every_broken_graph_has_a_case():
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_graph_is_reported_with_location(name):
    with pytest.raises(GraphError, match=CASES[name]):
        load_graph(BROKEN / name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_validate_reports_without_traceback(name, capsys):
    assert cli.main(["validate", str(BROKEN / name)]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(CASES[name], err), err


def test_cli_subprocess_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "testbench", "validate", str(BROKEN / "cycle.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "cycle:" in proc.stderr


def test_set_override_replaces_setting_and_sweeps_lists():
    text = "nodes:\n  sine:\n    type: sine\n    settings: {frequency: 0.1}\n"
    g = load_graph("g.yaml", text=text, overrides=["sine.frequency=0.25"])
    assert g.nodes["sine"].settings["frequency"] == 0.25
    g = load_graph("g.yaml", text=text, overrides=["sine.frequency=[0.1, 0.2]"])
    assert g.nodes["sine"].sweep == {"frequency": [0.1, 0.2]}
    assert "frequency" not in g.nodes["sine"].settings


@pytest.mark.parametrize("override, pattern", [
    ("nosuch.frequency=1", r"--set nosuch\.frequency: node 'nosuch' override .* no node 'nosuch'"),
    ("sine.frequency", r"is not of the form node\.setting=value"),
    ("sine.frequency=-1", r"\[settings\.frequency\] value -1 must be > 0"),
])
def test_bad_overrides_are_reported(override, pattern):
    text = "nodes:\n  sine:\n    type: sine\n"
    with pytest.raises(GraphError, match=pattern):
        load_graph("g.yaml", text=text, overrides=[override])


def test_values_are_data_not_code():
    text = "nodes:\n  sine:\n    type: sine\n    settings: {frequency: '__import__(\"os\")'}\n"
    with pytest.raises(GraphError, match=r"expected a number"):
        load_graph("g.yaml", text=text)


def test_user_node_reference_validates(user_nodes):
    text = ("nodes:\n  p:\n    type: my_nodes:pulse_train\n    settings: {period_steps: 10}\n"
            "  q:\n    type: my_nodes:pulse_train\n    settings: {period_steps: 1}\n")
    with pytest.raises(GraphError, match=r"g\.yaml:7:30: node 'q' \[settings\.period_steps\] value 1 "
                                         r"must be >= 2"):
        load_graph("g.yaml", text=text)


def test_shipped_graphs_are_valid():
    for path in sorted((Path(__file__).parents[1] / "graphs").glob("*.yaml")):
        load_graph(path)
