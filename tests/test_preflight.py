"""One preflight: `validate` refuses exactly what `run` refuses before computing, with one message.

Each bad graph below is given to both commands; both must exit 2 with the same message (location
and fix), no traceback, and `run` must leave nothing at the output.
"""

from __future__ import annotations

import http.server
import socket
import textwrap
import threading

import pytest

from conftest import random_network
from testbench import preflight as P
from testbench import models as W
from testbench.errors import BackendError, GraphError
from testbench.graph import load_graph, scheduler_problem
from testbench.nodes import Port, analyzer, lookup
from testbench.errors import RegistryError

BASE = {
    "step": "type: step\n    settings: {length_steps: 60}",
    "sine": "type: sine\n    settings: {length_steps: 60, frequency: 0.05}",
    "cells": "type: lstm_cells\n    inputs: [step]\n    settings: {weights: WEIGHTS}",
    "sine_cells": "type: lstm_cells\n    inputs: [sine]\n    settings: {weights: WEIGHTS}",
    "metrics": "type: step_response\n    inputs: {response: cells, stimulus: step}",
    "sine_metrics": "type: sine_response\n    inputs: {response: sine_cells, stimulus: sine}",
}


def graph(**nodes) -> str:
    """Graph text: the BASE nodes, with entries replaced (a string) or removed (None)."""
    body = {**BASE, **nodes}
    lines = ["nodes:"]
    for name, decl in body.items():
        if decl is not None:
            lines.append(f"  {name}:\n    {decl}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def weights(tmp_path):
    return W.save(random_network(n=6, m=3), tmp_path / "toy-6.h5")


@pytest.fixture
def both(cli, tmp_path, weights):
    """Run `validate` and `run` on a graph text; assert they refuse it alike; return the message."""

    def call(text, *extra, status=2):
        g = tmp_path / "g.yaml"
        g.write_text(text.replace("WEIGHTS", str(weights)))
        out = tmp_path / "out.zarr"
        v = cli("validate", g, "-o", out, *extra)
        r = cli("run", g, "-o", out, "-q", *extra)
        for res in (v, r):
            assert "Traceback" not in res.text, res.text
            assert res.status == status, res.text
        assert v.err == r.err
        assert not out.exists()
        return v.err

    return call


# (id, graph text, extra CLI arguments, pattern the message must match: location, rule and fix)
CASES = [
    ("missing-weights-file",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: /nonexistent/w.h5}"),
     (), r"g\.yaml:\d+:\d+: node 'cells' \[settings\.weights\] .*'/nonexistent/w\.h5' does not "
         r"exist.*\n\s+fix: "),
    ("unknown-zoo-name",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: 'zoo:nope-7'}"),
     (), r"node 'cells' \[settings\.weights\] .*zoo.*nope-7.*\n\s+fix: "),
    ("nyquist-in-yaml",
     graph(sine="type: sine\n    settings: {length_steps: 60, frequency: 0.6}"),
     (), r"g\.yaml:\d+:\d+: node 'sine' \[settings\.frequency\] sine: setting 'frequency' = 0\.6 "
         r".*Nyquist.*\n\s+fix: use frequency < 0\.5"),
    ("nyquist-via-set", graph(), ("--set", "sine.frequency=0.7"),
     r"--set sine\.frequency: node 'sine' \[settings\.frequency\] .*0\.7.*Nyquist.*\n\s+fix: "),
    ("nyquist-at-a-sweep-point",
     graph(sine="type: sine\n    settings: {length_steps: 60}\n    sweep: {frequency: [0.1, 0.55]}"),
     (), r"g\.yaml:\d+:\d+: node 'sine' \[sweep\.frequency\] at sweep point frequency=0\.55: "
         r".*Nyquist"),
    ("nyquist-of-a-set-sweep", graph(), ("--set", "sine.frequency=[0.1,0.8]"),
     r"--set sine\.frequency: node 'sine' \[sweep\.frequency\] at sweep point frequency=0\.8"),
    ("chirp-f1-above-nyquist",
     graph(sine="type: chirp\n    settings: {length_steps: 60, dt: 2.0, f1: 0.3}"),
     (), r"node 'sine' \[settings\.f1\] chirp: setting 'f1' = 0\.3.*\n\s+fix: use f1 < 0\.25"),
    ("empty-weights-list",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: []}"),
     (), r"node 'cells' \[settings\.weights\] setting 'weights': \[\] names no network.*\n\s+fix: "),
    ("layer-out-of-range",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: WEIGHTS, layer: 2}"),
     (), r"g\.yaml:\d+:\d+: node 'cells' \[settings\.layer\] setting 'layer': 2 is out of range "
         r".*1 layer\(s\)\n\s+fix: use a layer index in \[0, 0\]"),
    ("channels-out-of-range",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: WEIGHTS, "
                 "channels: [0, 5]}"),
     (), r"node 'cells' \[settings\.channels\] .*\[0, 2\] for a network with 3 input "
         r"channels\n\s+fix: "),
    ("wrong-cell-type",
     graph(cells="type: gru_cells\n    inputs: [step]\n    settings: {weights: WEIGHTS}"),
     (), r"node 'cells' \[settings\.weights\] .*holds a lstm network.*\n\s+fix: use type lstm_cells"),
    ("duplicate-network",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: [WEIGHTS, WEIGHTS]}"),
     (), r"node 'cells' \[settings\.weights\] .*both get the label 'toy-6'.*\n\s+fix: give explicit labels"),
    ("in-network-with-traces",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: {weights: WEIGHTS, "
                 "mode: in_network, traces: true}"),
     (), r"node 'cells' \[settings\.mode\] settings 'traces'.*'isolated' only.*\n\s+fix: "),
    ("dut-fed-by-dut",
     graph(sine_cells="type: lstm_cells\n    inputs: [cells]\n    settings: {weights: WEIGHTS}"),
     (), r"g\.yaml:\d+:\d+: node 'sine_cells' \[inputs\.stimulus\] input 'stimulus' of type "
         r"'lstm_cells' takes a stimulus node, but 'cells' is a dut node.*\n\s+fix: connect a "
         r"stimulus node such as 'step', 'sine'"),
    ("stimulus-into-analyzer-response",
     graph(metrics="type: step_response\n    inputs: {response: step, stimulus: step}"),
     (), r"node 'metrics' \[inputs\.response\] input 'response' of type 'step_response' takes a "
         r"dut node, but 'step' is a stimulus node.*\n\s+fix: connect a dut node such as 'cells'"),
    ("dut-into-analyzer-stimulus",
     graph(metrics="type: step_response\n    inputs: {response: cells, stimulus: cells}"),
     (), r"\[inputs\.stimulus\] input 'stimulus' of type 'step_response' takes a stimulus node"),
    ("sink-fed-by-stimulus",
     graph(table="type: summary_table\n    inputs: [step]\n    settings: {path: OUT/t.csv}"),
     (), r"node 'table' \[inputs\.metrics\] input 'metrics' of type 'summary_table' takes a "
         r"analyzer node, but 'step' is a stimulus node"),
    ("dut-fed-by-sink",
     graph(table="type: summary_table\n    inputs: [metrics]\n    settings: {path: OUT/t.csv}",
           sine_cells="type: lstm_cells\n    inputs: [table]\n    settings: {weights: WEIGHTS}"),
     (), r"'table' is a sink node \(summary_table\) \(a sink produces no output\)"),
    ("onset-after-the-record",
     graph(step="type: step\n    settings: {length_steps: 60, onset_steps: 60}"),
     (), r"node 'step' \[settings\.onset_steps\] step: setting 'onset_steps' = 60 is not before "
         r"the end.*\n\s+fix: use onset_steps <= 59"),
    ("onset-via-set", graph(), ("--set", "step.onset_steps=100"),
     r"--set step\.onset_steps: node 'step' \[settings\.onset_steps\].*\n\s+fix: use onset_steps "
     r"<= 59"),
    ("weights-times-dtype-sweep",
     graph(cells="type: lstm_cells\n    inputs: [step]\n    sweep: {weights: ['zoo:co2-32', "
                 "'zoo:co2-64'], dtype: [float32, float64]}"),
     (), r"node 'cells' \[sweep\.weights\] the sweep points give outputs of different shapes: "
         r".*cell=32.*cell=64.*\n\s+fix: list the networks in settings\.weights"),
    ("length-steps-sweep",
     graph(step="type: step\n    sweep: {length_steps: [40, 60]}"),
     (), r"node 'step' \[sweep\.length_steps\] the sweep points give outputs of different shapes: "
         r"length_steps=40 gives \(time=40\) but length_steps=60 gives \(time=60\).*\n\s+fix: run "
         r"one graph per length"),
    ("response-of-another-record",
     graph(other="type: step\n    settings: {length_steps: 80}",
           metrics="type: step_response\n    inputs: {response: cells, stimulus: other}"),
     (), r"node 'metrics' step_response: the response has 60 steps but the stimulus has 80.*\n\s+"
         r"fix: connect the stimulus that drove this response"),
    ("delay-longer-than-input",
     graph(late="type: delay\n    inputs: [step]\n    settings: {steps: 60}"),
     (), r"node 'late' \[settings\.steps\] delay: setting 'steps' = 60 is not shorter than the "
         r"input \(60 steps\).*\n\s+fix: use steps <= 59"),
    ("add-of-different-lengths",
     graph(other="type: sine\n    settings: {length_steps: 50}",
           mix="type: add\n    inputs: [step, other]"),
     (), r"node 'mix' add: input a has 60 steps but input b has 50.*\n\s+fix: give both the same "
         r"length_steps"),
    ("add-of-different-dt",
     graph(other="type: sine\n    settings: {length_steps: 60, dt: 0.5}",
           mix="type: add\n    inputs: [step, other]"),
     (), r"node 'mix' add: input a has dt = 1\.0 but input b has dt = 0\.5"),
    ("malformed-scheduler-option", graph(), ("--scheduler", "tcp://localhost"),
     r"--scheduler: 'scheduler' is 'tcp://localhost'; expected .* PROTOCOL://HOST:PORT.*\n\s+fix: "),
    ("scheduler-port-out-of-range", graph(), ("--scheduler", "tcp://127.0.0.1:70000"),
     r"--scheduler: 'scheduler' is 'tcp://127\.0\.0\.1:70000'; expected"),
    ("malformed-scheduler-in-graph", "scheduler: 'tcp://:8786'\n" + graph(), (),
     r"g\.yaml:1:\d+: \[scheduler\] 'scheduler' is 'tcp://:8786'; expected .*\n\s+fix: "),
]


@pytest.mark.parametrize("text, extra, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_and_run_refuse_alike(both, tmp_path, text, extra, pattern):
    message = both(text.replace("OUT", str(tmp_path)), *extra)
    assert message.startswith("error: ")
    assert __import__("re").search(pattern, message), message


def test_sink_file_checked_before_computing(both, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("a user's own table\n")
    message = both(graph(table=f"type: summary_table\n    inputs: [metrics]\n    settings: "
                               f"{{path: {mine}}}"))
    assert "node 'table' [settings.path] summary_table file" in message
    assert "is a file testbench did not write" in message and "fix: choose another file" in message
    assert mine.read_text() == "a user's own table\n"


def test_memory_estimate_refuses_a_record_too_long(both, monkeypatch):
    monkeypatch.setattr(P, "available_memory", lambda: 4 * 2**30)
    message = both(graph(step="type: step\n    settings: {length_steps: 10000000}",
                         sine=None, sine_cells=None, sine_metrics=None,
                         cells="type: lstm_cells\n    inputs: [step]\n    settings: "
                               "{weights: 'zoo:co2-128'}"), "--scheduler", "synchronous")
    assert "node 'cells' [settings.chunk_cells] the run needs about" in message
    assert "plus 1 task(s) at once each holding a block of 128 cells x 1 sweep points x " \
           "10000000 steps" in message
    assert "more than 50% of the 4 GiB available" in message
    fix = message.split("fix: ")[1]
    assert fix.startswith("set chunk_cells: ") and "chunk_points: 1" in fix


def test_memory_fix_fits(cli, tmp_path, monkeypatch):
    """The chunk_cells the fix proposes is accepted by the same estimate."""
    import re

    monkeypatch.setattr(P, "available_memory", lambda: 4 * 2**30)
    g = tmp_path / "g.yaml"
    g.write_text(graph(step="type: step\n    settings: {length_steps: 10000000}", sine=None,
                       sine_cells=None, sine_metrics=None,
                       cells="type: lstm_cells\n    inputs: [step]\n    settings: "
                             "{weights: 'zoo:co2-128'}"))
    r = cli("validate", g, "-o", tmp_path / "o.zarr", "--scheduler", "synchronous")
    n = re.search(r"set chunk_cells: (\d+)", r.err).group(1)
    ok = cli("validate", g, "-o", tmp_path / "o.zarr", "--scheduler", "synchronous",
             "--set", f"cells.chunk_cells={n}")
    assert ok.status == 0, ok.text
    assert "would compute: grid" in ok.out


def test_memory_refuses_a_huge_in_network_run(both, monkeypatch):
    monkeypatch.setattr(P, "available_memory", lambda: 2**30)
    message = both(graph(sine_cells=None, sine_metrics=None, sine=None,
                         step="type: step\n    settings: {length_steps: 200000}\n    sweep: "
                              "{amplitude: [1, 2, 3, 4, 5, 6, 7, 8]}",
                         cells="type: lstm_cells\n    inputs: [step]\n    settings: "
                               "{weights: 'zoo:co2-128', mode: in_network}"),
                   "--scheduler", "synchronous")
    assert "the run needs about" in message
    assert "fix: use a shorter length_steps" in message and "mode: isolated" in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_where_nothing_listens(both):
    message = both(graph(), "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert "nothing answers at tcp://127.0.0.1:" in message and "fix: start one" in message


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep the test's stderr to testbench's messages
        pass


@pytest.fixture
def http_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_scheduler_that_is_an_http_server(both, http_server, monkeypatch):
    monkeypatch.setattr(P, "SCHEDULER_TIMEOUT_S", 1.0)
    message = both(graph(), "--scheduler", http_server)
    assert f"the server at {http_server} did not complete the dask handshake within 1 s" in message
    assert "fix: start one" in message


def test_scheduler_in_graph_is_probed(both, http_server, monkeypatch):
    monkeypatch.setattr(P, "SCHEDULER_TIMEOUT_S", 1.0)
    message = both(f"scheduler: {http_server}\n" + graph())
    assert http_server in message and "fix: start one" in message


def test_probe_accepts_a_real_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None) as cluster:
        P.probe_scheduler(cluster.scheduler_address, timeout=5)
    with pytest.raises(BackendError, match="nothing answers at tcp://"):
        P.probe_scheduler(cluster.scheduler_address, timeout=2)


@pytest.mark.parametrize("text, ok", [
    ("threads", True), ("tcp://127.0.0.1:8786", True), ("tls://[::1]:8786", True),
    ("inproc://abc", True), ("tcp://host", False), ("tcp://:8786", False), ("tcp://h:0", False),
    ("http://h:80", False), (8786, False), ("", False),
])
def test_scheduler_address_rule(text, ok):
    assert (scheduler_problem(text) is None) == ok


def test_valid_graph_validates_and_runs(cli, tmp_path, weights):
    g = tmp_path / "g.yaml"
    g.write_text(graph().replace("WEIGHTS", str(weights)))
    out = tmp_path / "out.zarr"
    v = cli("validate", g, "-o", out)
    assert v.status == 0, v.text
    assert "valid (2 stimulus, 2 dut, 2 analyzer)" in v.out
    # 2 analyzers x (network 1 x cell 6) x (4 + 5 metrics); 2 DUTs x 6 cells x 60
    assert "would compute: grid 54 values, 720 simulated samples; peak memory ~" in v.out
    assert not out.exists()
    r = cli("run", g, "-o", out, "-q")
    assert r.status == 0, r.text
    assert out.is_dir()


def test_plan_facts_follow_the_sweeps(weights):
    text = textwrap.dedent(f"""
        nodes:
          sine:
            type: sine
            settings: {{length_steps: 80}}
            sweep: {{frequency: [0.01, 0.02, 0.03]}}
          cells:
            type: lstm_cells
            inputs: [sine]
            settings: {{weights: {weights}, channels: each}}
          m:
            type: sine_response
            inputs: {{response: cells, stimulus: sine}}
    """)
    plan = P.preflight(load_graph("g.yaml", text=text), check_output=False)
    assert plan.facts["sine"].dims == {"frequency": 3} and plan.facts["sine"].length_steps == 80
    assert plan.facts["cells"].dims == {"network": 1, "cell": 6, "channel": 3, "frequency": 3}
    assert plan.samples == 6 * 3 * 3 * 80
    assert plan.grid_size == 6 * 3 * 3 * 5


def test_graph_error_lists_every_node_problem(weights):
    text = graph(sine="type: sine\n    settings: {length_steps: 60, frequency: 0.9}",
                 step="type: step\n    settings: {length_steps: 60, onset_steps: 70}")
    with pytest.raises(GraphError) as info:
        P.preflight(load_graph("g.yaml", text=text.replace("WEIGHTS", str(weights))),
                    check_output=False)
    assert [p.node for p in info.value.problems] == ["step", "sine"]


def test_ports_from_annotations_and_defaults():
    assert lookup("step_response").ports == {"response": ("dut",), "stimulus": ("stimulus",)}
    assert lookup("lstm_cells").ports == {"stimulus": ("stimulus",)}
    assert lookup("summary_table").ports == {"metrics": ("analyzer",)}

    @analyzer("plain", register=False)
    def plain(x, y):
        """Undeclared inputs take the analyzer default."""

    assert plain.__testbench_node__.ports["x"] == ("stimulus", "dut", "analyzer")
    with pytest.raises(RegistryError, match="Port\\('sink',\\): expected one or more of"):
        Port("sink")


def test_nodes_command_shows_ports(cli):
    r = cli("nodes", "sine_response")
    assert "inputs: response <- dut, stimulus <- stimulus" in r.out


def _faulty_check(settings, inputs):
    raise ZeroDivisionError("a bug in the hook")


def test_a_faulty_hook_is_reported_not_raised(cli, tmp_path, user_nodes, monkeypatch):
    import my_nodes

    spec = my_nodes.pulse_train.__testbench_node__
    monkeypatch.setattr(my_nodes.pulse_train, "__testbench_node__",
                        __import__("dataclasses").replace(spec, check=_faulty_check))
    g = tmp_path / "g.yaml"
    g.write_text("nodes:\n  p: {type: 'my_nodes:pulse_train'}\n")
    r = cli("validate", g, "-o", tmp_path / "o.zarr")
    assert r.status == 2 and "Traceback" not in r.text
    assert "node 'p' the preflight check of type 'pulse_train' failed: " \
           "ZeroDivisionError: a bug in the hook" in r.err
    assert "fix: report it to the author of my_nodes:pulse_train" in r.err


def test_custom_nodes_without_hooks_pass(cli, tmp_path, user_nodes, weights):
    g = tmp_path / "g.yaml"
    g.write_text(textwrap.dedent(f"""
        nodes:
          p: {{type: 'my_nodes:pulse_train', settings: {{length_steps: 50}}}}
          cells: {{type: lstm_cells, inputs: [p], settings: {{weights: {weights}}}}}
          m: {{type: 'my_nodes:mean_level', inputs: {{response: cells, stimulus: p}}}}
    """))
    v = cli("validate", g, "-o", tmp_path / "o.zarr")
    assert v.status == 0, v.text
    r = cli("run", g, "-o", tmp_path / "o.zarr", "-q")
    assert r.status == 0, r.text


def test_custom_analyzer_ports_refuse_a_stimulus_response(both, user_nodes):
    message = both(graph(metrics="type: 'my_nodes:mean_level'\n    inputs: {response: step, "
                                 "stimulus: step}"))
    assert "input 'response' of type 'mean_level' takes a dut node, but 'step' is a stimulus" \
           in message


def test_cuda_without_a_gpu_is_refused_before_computing(both):
    from numba import cuda

    if cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    message = both(graph(cells="type: lstm_cells\n    inputs: [step]\n    settings: "
                               "{weights: WEIGHTS, backend: cuda}"))
    assert "node 'cells' [settings.backend] setting 'backend': 'cuda' was asked for but no CUDA " \
           "GPU is available" in message and "fix: use backend: cpu" in message
