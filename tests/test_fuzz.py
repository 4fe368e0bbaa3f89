"""Fuzzing ``testbench validate`` with graph text, raw bytes and ``--set`` values.

Whatever the input: exit status 0 or 2 (an exception escaping ``main`` fails the example with its
traceback), a bounded time per example (Hypothesis ``deadline``), and no file written (the working
directory's tree hash is unchanged). Derandomized: the same examples on every run.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from conftest import tree_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from testbench.cli import main

GRAPH = (Path(__file__).parents[1] / "graphs" / "characterize.yaml").read_bytes()
FUZZ = settings(max_examples=60, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# pieces of YAML (and of attacks on it) that random bytes would rarely produce
SNIPPETS = [b"&a ", b"*a", b"<<: *a\n", b"!!python/object/apply:os.system ['touch pwned'] ", b"!foo ",
            b"%TAG ! tag:x.org,2000:\n---\n", b"---\n", b"...\n", b"[", b"]", b"{", b"}", b": ", b"- ",
            b"? ", b", ", b"\n", b"  ", b"\t", b"#", b"'", b'"', b"|\n", b">-\n", b"@", b"`", b"\x00",
            b"\xff", b"\xe9", b"\xef\xbb\xbf", b".nan", b".inf", b"-.inf", b"1e999", b"1" * 150,
            b"2001-02-30", b"0x1F", b"~", b"=", b"os:system", b":", b"unittest.mock:sentinel",
            b"my_nodes:pulse_train", b"zoo:../x", b"[0.1, 0.1]", b"[" * 80, b"]" * 80]
TYPES = ["sine", "step", "square", "chirp", "lstm_cells", "gru_cells", "step_response",
         "sine_response", "summary_table", "os:system", ":", "nosuch"]
SETTINGS = ["length_steps", "dt", "frequency", "amplitude", "phase", "weights", "layer", "h0",
            "channels", "backend", "dtype", "onset_steps", "path", "band_frac"]
NAMES = ["step", "sine", "step_cells", "sine_cells", "step_metrics", "sine_metrics", "table"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """An empty working directory (checked for writes) and an input folder beside it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "work").mkdir()
    (root / "input").mkdir()
    old = os.getcwd()
    os.chdir(root / "work")
    validate([str(Path(__file__).parents[1] / "graphs" / "characterize.yaml")])  # imports, outside deadlines
    yield root
    os.chdir(old)


def validate(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["validate", *argv])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code
    assert status in (0, 2), (status, err.getvalue())
    if status == 2:
        assert err.getvalue().startswith("error: "), err.getvalue()
    return status


def check(scratch: Path, data: bytes, *set_args: str) -> None:
    graph = scratch / "input" / "g.yaml"
    graph.write_bytes(data)
    before = tree_hash(scratch / "work")
    validate([str(graph), *(f"--set={s}" for s in set_args)])  # "--set=V": V may start with "-"
    assert tree_hash(scratch / "work") == before


@st.composite
def mutations(draw) -> bytes:
    """graphs/characterize.yaml with a few bytes flipped, deleted, replaced or inserted."""
    data = bytearray(GRAPH)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "delete", "insert", "snippet"]))
        if op == "flip" and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 40))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        else:
            data[i:i] = draw(st.sampled_from(SNIPPETS))
    return bytes(data)


scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["zoo:co2-32", "zoo:nosuch", "all", "each", "cpu", "float32"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
node = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=10)},
    optional={"settings": st.dictionaries(st.sampled_from(SETTINGS) | st.text(max_size=6), values,
                                          max_size=4),
              "sweep": st.dictionaries(st.sampled_from(SETTINGS), values, max_size=2) | values,
              "inputs": st.lists(st.sampled_from(NAMES), max_size=3)
                        | st.dictionaries(st.sampled_from(["stimulus", "response", "x"]),
                                          st.sampled_from(NAMES) | values, max_size=2) | values,
              "kind": st.sampled_from(["stimulus", "dut", "analyzer", "sink"]) | values})
graphs = st.fixed_dictionaries(
    {"nodes": st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), node, max_size=5) | values},
    optional={"output": values, "scheduler": st.sampled_from(["threads", "tcp://127.0.0.1:1"]) | values,
              "save_responses": values, "description": values, "extra": values})


def _dump(doc) -> bytes:
    stream = io.BytesIO()
    YAML(typ="safe", pure=True).dump(doc, stream)
    return stream.getvalue()


@FUZZ
@given(data=mutations())
def test_mutated_graph_text(scratch, data):
    check(scratch, data)


@FUZZ
@given(doc=graphs)
def test_generated_graphs(scratch, doc):
    check(scratch, _dump(doc))


@FUZZ
@given(data=st.binary(max_size=3000))
def test_raw_bytes(scratch, data):
    check(scratch, data)


tokens = (st.sampled_from(SNIPPETS + [b"nodes:\n", b"  sine:\n", b"    type: sine\n", b"settings: ",
                                      b"sweep: ", b"inputs: ", b"frequency: ", b"0.1", b"&b ", b"*b",
                                      b"!!str ", b"!!set ", b"<<: ", b"- - ", b"{a: [", b"]}"])
          | st.text(alphabet="abc: -[]{},&*!|>'\"\n#?%@`0.", max_size=6).map(str.encode))


@FUZZ
@given(data=st.lists(tokens, max_size=40).map(b"".join))
def test_yaml_token_soup(scratch, data):
    check(scratch, data)


set_text = (st.text(max_size=40)
            | st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape"))
            | st.lists(st.sampled_from([s.decode("latin-1") for s in SNIPPETS]), max_size=6).map("".join))


@FUZZ
@given(target=st.sampled_from([f"{n}.{s}" for n in NAMES for s in SETTINGS]) | st.text(max_size=12),
       value=set_text)
def test_set_values(scratch, target, value):
    check(scratch, GRAPH, f"{target}={value}")
