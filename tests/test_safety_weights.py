"""Untrusted weight files and zoo names: loading weights never runs foreign code, and a bad weights
file or reference ends with exit 2 and a message naming the file and the fix, never a traceback.

The malicious ``.pt`` files carry a pickle payload that creates a marker file when unpickled; the
marker must not exist after any command without the explicit opt-in (``trust_pickle: true`` /
``--trust-pickle``), and must exist with it (which proves each test can fail).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import random_network
from testbench import models as W
from testbench.errors import WeightsError

torch = pytest.importorskip("torch")
from testbench.models.import_torch import TrustedPickleWarning  # noqa: E402  (after the torch skip)

#: Where a run or validate reports a weights problem: the graph's weights value, node and key.
LOCATED = r"g\.yaml:5:\d+: node 'cells' \[settings\.weights\] (?:.*)?"
PICKLE_MSG = (r"the file holds pickled Python objects .*arbitrary code.*fix: save the weights with "
              r"torch\.save\(model\.state_dict\(\), path\).*trust_pickle: true.*--trust-pickle")


class Payload:
    """Unpickling it creates ``marker`` (an ``open(marker, "w")`` call stored in the file)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def graph(folder: Path, weights: str, extra: str = "") -> Path:
    """A small step-response graph whose DUT reads ``weights``; output inside ``folder``."""
    path = folder / "g.yaml"
    path.write_text(f"""
output: {folder / 'r.zarr'}
nodes:
  step: {{type: step, settings: {{length_steps: 20}}}}
  cells: {{type: lstm_cells, inputs: [step], settings: {{weights: {weights}{extra}}}}}
  m: {{type: step_response, inputs: {{response: cells, stimulus: step}}}}
""")
    return path


def assert_refused(r, match: str) -> None:
    """Exit 2, no traceback, and ``match`` found in stderr (a graph problem prints its fix on a
    line of its own; it is joined back as "; fix: ")."""
    assert "Traceback" not in r.text, r.text
    assert r.status == 2, r.text
    err = re.sub(r"\n\s+fix: ", "; fix: ", r.err)
    assert re.search(match, err, re.S), r.err


# --------------------------------------------------------------------------- malicious pickles
@pytest.fixture(params=["with_state_dict", "payload_only"])
def evil(request, tmp_path):
    """A ``.pt`` whose pickle creates ``marker``: inside a real LSTM state_dict (it then loads
    silently as a network), or alone. Returns ``(file, marker)``."""
    marker = tmp_path / "marker"
    torch.manual_seed(0)
    if request.param == "with_state_dict":
        obj = dict(torch.nn.LSTM(2, 4).state_dict(), extra=Payload(marker))
    else:
        obj = Payload(marker)
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    assert not marker.exists()
    return path, marker, request.param


def test_malicious_pickle_never_runs_through_run(cli, evil, tmp_path):
    path, marker, _ = evil
    r = cli("run", graph(tmp_path, path), "-q", "-o", tmp_path / "r.zarr")
    assert not marker.exists()
    assert_refused(r, LOCATED + r"evil\.pt: " + PICKLE_MSG)
    assert not (tmp_path / "r.zarr").exists()


def test_malicious_pickle_never_runs_through_validate(cli, evil, tmp_path):
    r = cli("validate", graph(tmp_path, evil[0]))
    assert not evil[1].exists()
    assert_refused(r, LOCATED + r"evil\.pt: " + PICKLE_MSG)  # the preflight loads weights as run


def test_trust_pickle_setting_applies_to_validate_too(cli, evil, tmp_path):
    path, marker, variant = evil
    with pytest.warns(TrustedPickleWarning, match=r"evil\.pt: unpickling"):
        r = cli("validate", graph(tmp_path, path, ", trust_pickle: true"))
    assert marker.exists()
    assert "Traceback" not in r.text and r.status == (0 if variant == "with_state_dict" else 2), r.text


def test_malicious_pickle_never_runs_through_the_ablation_node(cli, evil, tmp_path):
    path, marker, _ = evil
    g = tmp_path / "g.yaml"
    g.write_text(f"output: {tmp_path / 'r.zarr'}\nnodes:\n  knock:\n    type: ablation\n"
                 f"    settings: {{weights: {path}}}\n")
    for command, args in (("validate", []), ("run", ["-q", "-o", tmp_path / "r.zarr"])):
        r = cli(command, g, *args)
        assert not marker.exists()
        assert_refused(r, r"node 'knock'.*evil\.pt: " + PICKLE_MSG)


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_malicious_pickle_never_runs_through_export_and_evaluate(cli, evil, tmp_path, command):
    path, marker, _ = evil
    args = ["-o", tmp_path / "out.h5"] if command == "export" else []
    r = cli(command, path, *args)
    assert not marker.exists()
    assert_refused(r, r"evil\.pt: " + PICKLE_MSG)
    assert not (tmp_path / "out.h5").exists()


def test_trust_pickle_setting_runs_the_payload_with_a_warning(cli, evil, tmp_path):
    path, marker, variant = evil
    with pytest.warns(TrustedPickleWarning, match=r"evil\.pt: unpickling .*trust_pickle"):
        r = cli("run", graph(tmp_path, path, ", trust_pickle: true"), "-q", "-o", tmp_path / "r.zarr")
    assert marker.exists()  # the opt-in really reaches the unpickler
    assert "Traceback" not in r.text, r.text
    if variant == "with_state_dict":
        assert r.status == 0, r.text  # the silent case: a real network comes out
    else:
        assert_refused(r, r"evil\.pt: holds a \w+, expected an nn\.Module or a state_dict")


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_trust_pickle_flag_runs_the_payload_with_a_warning(cli, evil, tmp_path, command):
    path, marker, variant = evil
    args = ["-o", tmp_path / "out.h5"] if command == "export" else []
    with pytest.warns(TrustedPickleWarning, match=r"evil\.pt: unpickling"):
        r = cli(command, path, *args, "--trust-pickle")
    assert marker.exists()
    assert "Traceback" not in r.text, r.text
    if command == "export" and variant == "with_state_dict":
        assert r.status == 0 and (tmp_path / "out.h5").is_file(), r.text
    else:
        assert r.status == 2, r.text  # no training metadata / no network in the payload


def test_trusted_whole_module_warning_shows_in_cli_output(tmp_path):
    """A real process: the warning reaches stderr (pytest captures warnings in-process)."""
    torch.manual_seed(1)
    torch.save(torch.nn.LSTM(2, 3), tmp_path / "module.pt")
    cmd = [sys.executable, "-m", "testbench", "export", str(tmp_path / "module.pt"), "-o",
           str(tmp_path / "out.h5")]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "module.pt: the file holds pickled Python objects" in refused.stderr
    trusted = subprocess.run(cmd + ["--trust-pickle"], capture_output=True, text=True, timeout=300)
    assert trusted.returncode == 0, trusted.stderr
    assert "TrustedPickleWarning" in trusted.stderr and "runs code stored in the file" in trusted.stderr
    assert W.load(tmp_path / "out.h5").hidden_size == 3


def test_state_dict_needs_no_trust_and_warns_nothing(cli, tmp_path, recwarn):
    torch.manual_seed(2)
    torch.save(torch.nn.LSTM(2, 4).state_dict(), tmp_path / "sd.pt")
    r = cli("export", tmp_path / "sd.pt", "-o", tmp_path / "out.h5")
    assert r.status == 0, r.text
    assert not [w for w in recwarn if issubclass(w.category, TrustedPickleWarning)]


# --------------------------------------------------------------------------- bad files and names
def _h5(path: Path, **arrays) -> Path:
    """A testbench-format file of a 4-cell, 2-input LSTM, with ``arrays`` replacing its datasets."""
    W.save(random_network(n=4, m=2), path)
    with h5py.File(path, "a") as f:
        for name, value in arrays.items():
            if name.startswith("@"):
                f.attrs[name[1:]] = value
            else:
                del f[name]
                f[name] = value
    return path


def _keras(path: Path, groups: dict) -> Path:
    """A legacy Keras HDF5 file of one layer ``lstm``: ``groups`` maps a layer name to its
    {weight name: value} (the group is absent when ``groups`` is empty)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"lstm"])
        for name, weights in groups.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([k.encode() for k in weights])
            for k, v in weights.items():
                g[k] = v
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_pt(path: Path) -> Path:
    torch.save(torch.nn.LSTM(2, 4).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _module_pt(path: Path) -> Path:
    torch.save(torch.nn.LSTM(2, 4), path)
    return path


# (case id, builder of the weights reference in tmp_path, commands, message regex after the name)
BAD = [
    ("directory", lambda d: (d / "w.h5").mkdir() or d / "w.h5",
     r"weights '.*w\.h5' is a directory, not a weights file; fix: give the path"),
    ("missing_file", lambda d: d / "nope.h5", r"weights file '.*nope\.h5' does not exist; fix:"),
    ("empty_reference", lambda d: "''", r"the weights reference is empty; fix:"),
    ("string_dataset", lambda d: _h5(d / "w.h5", **{"layers/0/W_ih": "hello"}),
     r"w\.h5: dataset '/layers/0/W_ih' holds text or objects .*real numbers.*fix: re-export"),
    ("vector_as_matrix", lambda d: _h5(d / "w.h5", **{"layers/0/W_hh": np.zeros(16)}),
     r"w\.h5: layers/0/W_hh has shape \(16,\), expected a non-empty matrix.*fix: re-export"),
    ("bad_format_version", lambda d: _h5(d / "w.h5", **{"@format_version": "one"}),
     r"w\.h5: attribute 'format_version' is 'one', expected an integer; fix: re-export"),
    ("metadata_not_object", lambda d: _h5(d / "w.h5", **{"@metadata": "[1, 2]"}),
     r"w\.h5: attribute 'metadata' holds a JSON list, expected an object.*fix: re-export"),
    ("empty_h5", lambda d: _write(d / "w.h5", b""),
     r"w\.h5: not a readable HDF5 file .*fix: check the file"),
    ("truncated_h5", lambda d: _write(d / "w.h5", W.save(random_network(n=4, m=2),
                                                          d / "ok.h5").read_bytes()[:300]),
     r"w\.h5: not a readable HDF5 file .*truncated.*fix: check the file"),
    ("pt_not_zip_or_pickle", lambda d: _write(d / "w.pt", b"hello, not torch"),
     r"w\.pt: torch\.load cannot read the file .*not a PyTorch file or is damaged; fix:"),
    ("pt_truncated_zip", lambda d: _truncated_pt(d / "w.pt"),
     r"w\.pt: torch\.load cannot read the file .*fix:"),
    ("pt_without_lstm_keys", lambda d: torch.save({"fc.weight": torch.zeros(2, 2)}, d / "w.pt")
     or d / "w.pt", r"w\.pt: no recurrent layer \(weight_ih_l0 key\) found.*fix:"),
    ("pt_whole_module", lambda d: _module_pt(d / "w.pt"), r"w\.pt: " + PICKLE_MSG),
    ("fifo", lambda d: os.mkfifo(d / "w.h5") or d / "w.h5",
     r"weights '.*w\.h5' is not a regular file \(a FIFO.*fix: copy the weights"),
    ("zoo_absolute_path", lambda d: "zoo:/etc/passwd",
     r"no zoo network '/etc/passwd'; a zoo reference is one of the "
     r"names listed in .*manifest\.json, never a path; valid names: .*co2-128.*; fix: use one of "
     r"these names"),
    ("zoo_parent_escape", lambda d: "zoo:../zoo/co2-128",
     r"no zoo network '\.\./zoo/co2-128'; did you mean "
     r"'co2-128'\? a zoo reference .* never a path; valid names: .*; fix:"),
    ("zoo_unknown_name", lambda d: "zoo:nonexistent",
     r"no zoo network 'nonexistent';.*valid names: .*mnist-64.*; "
     r"fix:"),
]


@pytest.mark.parametrize("case, build, match", BAD, ids=[c[0] for c in BAD])
def test_bad_weights_refused_by_export_and_evaluate(cli, tmp_path, case, build, match):
    ref = build(tmp_path)
    ref = "" if ref == "''" else ref
    before = sorted(p.name for p in tmp_path.iterdir())
    for command, args in (("export", ["-o", tmp_path / "out.h5"]), ("evaluate", [])):
        r = cli(command, ref, *args)
        assert_refused(r, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


RUN_CASES = [c for c in BAD if c[0] in ("directory", "string_dataset", "pt_not_zip_or_pickle",
                                         "fifo", "zoo_absolute_path", "empty_reference")]


@pytest.mark.parametrize("case, build, match", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_weights_refused_by_run(cli, tmp_path, case, build, match):
    ref = build(tmp_path)
    r = cli("run", graph(tmp_path, ref), "-q", "-o", tmp_path / "r.zarr")
    assert_refused(r, LOCATED + match)
    assert not (tmp_path / "r.zarr").exists()


def test_fifo_is_never_opened(cli, tmp_path):
    """A reader blocked on a FIFO would hang forever; a writer opened later turns that into EOF
    (a wrong message) so this test fails instead of hanging."""
    fifo = tmp_path / "w.pt"
    os.mkfifo(fifo)

    def unblock():
        time.sleep(30)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader (the expected case) or the folder is gone
            pass

    threading.Thread(target=unblock, daemon=True).start()
    assert_refused(cli("export", fifo, "-o", tmp_path / "o.h5"), r"w\.pt' is not a regular file")


def test_empty_weights_list_refused(cli, tmp_path):
    r = cli("run", graph(tmp_path, "[]"), "-q", "-o", tmp_path / "r.zarr")
    assert_refused(r, LOCATED + r"setting 'weights': \[\] names no network; "
                            r"fix: give a zoo name such as 'zoo:co2-128'")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_weights_refused(cli, tmp_path):
    path = W.save(random_network(n=4, m=2), tmp_path / "w.h5")
    path.chmod(0)
    try:
        r = cli("export", path, "-o", tmp_path / "out.h5")
    finally:
        path.chmod(0o600)
    assert_refused(r, r"weights file '.*w\.h5' cannot be read \(permission denied\); fix: make it "
                      r"readable")


def test_broken_onnx_refused(cli, tmp_path):
    pytest.importorskip("onnx")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07" + b"garbage" * 20)
    assert_refused(cli("export", tmp_path / "m.onnx", "-o", tmp_path / "o.h5"),
                   r"m\.onnx: not a readable ONNX file .*fix: check the file")


def test_truncated_onnx_refused(cli, tmp_path):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in (("W", (1, 16, 2)), ("R", (1, 16, 4)))]
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=4, name="lstm")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [5, 1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    data = helper.make_model(g).SerializeToString()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) - 40])
    assert_refused(cli("export", tmp_path / "m.onnx", "-o", tmp_path / "o.h5"),
                   r"m\.onnx: .*fix:")


@pytest.mark.parametrize("groups, match", [
    ({"lstm": {"lstm/kernel:0": "x", "lstm/recurrent_kernel:0": "y"}},
     r"k\.h5: dataset '/lstm/lstm/kernel:0' holds text or objects.*fix: re-export"),
    ({}, r"k\.h5: 'layer_names' lists 'lstm' but the file has no group of that name.*fix: save"),
    ({"lstm": {"lstm/kernel:0": np.zeros(3, np.float32),
               "lstm/recurrent_kernel:0": np.zeros((4, 16), np.float32)}},
     r"k\.h5 layer 'lstm': weights .* lack a kernel/recurrent_kernel pair of non-empty matrices.*fix:"),
], ids=["string_dataset", "missing_group", "vector_kernel"])
def test_broken_keras_refused(cli, tmp_path, groups, match):
    _keras(tmp_path / "k.h5", groups)
    assert_refused(cli("export", tmp_path / "k.h5", "-o", tmp_path / "o.h5"), match)


def test_zoo_names_come_from_the_manifest_only():
    names = W.zoo.names()
    assert names == sorted(W.zoo.manifest()) and "co2-128" in names
    assert W.resolve("zoo:co2-128") == W.zoo.folder() / "co2-128.h5"
    for bad in ("zoo:manifest", "zoo:../zoo/co2-128", "zoo:" + str(W.zoo.folder() / "co2-128"),
                "zoo:co2-128.h5", "zoo:"):
        with pytest.raises(WeightsError, match=r"no zoo network .*never a path; valid names"):
            W.resolve(bad)
