"""Training: determinism, export, NumPy re-scoring against torch, manifest; the shipped zoo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from testbench import training as T
from testbench import models as W
from testbench.errors import SettingsError, WeightsError

torch = pytest.importorskip("torch")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
real = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real benchmark files not found at {SHARED}")
ZOO_MANIFEST = {name: e for name, e in json.loads((W.zoo.folder() / T.MANIFEST).read_text()).items()
                if W.zoo.BUILD not in e} if (W.zoo.folder() / T.MANIFEST).is_file() else {}
#: Quality floors of the 128-cell networks: misclassification rate ceilings, or "beat persistence".
FLOORS = {"mnist": 0.03, "protein": 0.40}


def tiny(tmp_path, dataset="co2", seed=0, name="a", **kw):
    args = {"epochs": 2, "max_train": 64, "progress": False, "data_dir": SHARED}
    args.update(kw)
    return T.train(dataset, 4, seed, out=tmp_path / name / f"{dataset}-4.h5", **args)


def arrays(path):
    net = W.load(path)
    return [a for la in net.layers for a in (la.W_ih, la.W_hh, la.b_ih, la.b_hh)] + \
        [net.readout_weight, net.readout_bias]


@real
def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    p1, e1 = tiny(tmp_path, name="a")
    p2, e2 = tiny(tmp_path, name="b")
    p3, _ = tiny(tmp_path, name="c", seed=1)
    for a, b in zip(arrays(p1), arrays(p2)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(arrays(p1), arrays(p3)))
    assert e1["test_score"] == e2["test_score"]
    assert all(a.dtype == np.float32 for a in arrays(p1))


@real
@pytest.mark.parametrize("dataset", ["co2", "protein", "mnist"])
def test_export_scores_with_numpy_as_torch_does(tmp_path, dataset):
    path, entry = tiny(tmp_path, dataset=dataset, epochs=1)
    # the recorded score (NumPy forward) agrees with torch's own forward of the same weights
    assert entry["test_score"] == pytest.approx(entry["test_score_torch"], abs=1e-5)
    result = T.evaluate(path, data_dir=SHARED)
    assert result["test_score"] == entry["test_score"] and result["difference"] == 0.0
    assert result["baseline"] == entry["baseline"]
    manifest = json.loads((path.parent / T.MANIFEST).read_text())
    assert manifest[f"{dataset}-4"] == entry == W.load(path).metadata
    for key in ("dataset", "variant", "size", "seed", "epochs", "optimizer", "window",
                "normalization", "test_score", "baseline", "data_sha256", "torch_version",
                "wall_time_s"):
        assert key in entry


def test_exported_network_forward_matches_torch_module():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (6, 11, 3)).astype(np.float32)
    for cell_type in ("lstm", "gru", "rnn_tanh"):
        torch.manual_seed(1)
        model = T.build_model(cell_type, 3, 9, 4)
        net = T.to_network(model, cell_type, {"dataset": "toy"})
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(T.network_outputs(net, x, chunk=4), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, r"size=0 is out of range; rule: integer >= 1"),
    ({"seed": -1}, r"seed=-1 is out of range"),
    ({"epochs": 0}, r"epochs=0 is out of range"),
    ({"cell_type": "lsmt"}, r"cell_type 'lsmt' is not one of"),
])
def test_train_rejects_bad_arguments(tmp_path, kwargs, match):
    args = {"dataset": "co2", "size": 4, "seed": 0, "out": tmp_path / "x.h5", "progress": False}
    args.update(kwargs)
    with pytest.raises(SettingsError, match=match):
        T.train(**args)
    assert not (tmp_path / "x.h5").exists()


def test_evaluate_needs_training_metadata(tmp_path):
    rng = np.random.default_rng(0)
    layer = W.Layer(rng.normal(size=(8, 1)), rng.normal(size=(8, 2)), np.zeros(8), np.zeros(8))
    path = W.save(W.Network("lstm", [layer], np.ones((1, 2)), np.zeros(1),
                            metadata={"dataset": "co2"}), tmp_path / "bare.h5")
    with pytest.raises(WeightsError, match=r"bare.h5: metadata lacks variant, window, normalization"):
        T.evaluate(path)


def test_update_manifest_merges_by_name(tmp_path):
    path = tmp_path / "manifest.json"
    T.update_manifest({"name": "b", "v": 1}, path)
    T.update_manifest({"name": "a", "v": 2}, path)
    T.update_manifest({"name": "b", "v": 3}, path)
    assert json.loads(path.read_text()) == {"a": {"name": "a", "v": 2}, "b": {"name": "b", "v": 3}}
    assert not list(tmp_path.glob("*.part"))


# ------------------------------------------------------------------------------------ the zoo

def test_zoo_manifest_lists_every_shipped_file_and_meets_the_floors():
    assert sorted(ZOO_MANIFEST) == W.zoo.shipped()
    for name, entry in ZOO_MANIFEST.items():
        assert W.load(f"zoo:{name}").metadata == entry
        assert entry["name"] == name == f"{entry['dataset']}-{entry['size']}"
        if entry["size"] == 128:
            if entry["dataset"] in FLOORS:
                assert entry["test_score"] <= FLOORS[entry["dataset"]], name
            else:
                assert entry["test_score"] < entry["baseline"], name


def zoo_entries(datasets=None):
    return [n for n, e in sorted(ZOO_MANIFEST.items()) if datasets is None or e["dataset"] in datasets]


@real
def test_evaluate_reproduces_a_small_zoo_network():
    name = min(zoo_entries(["co2"]), key=lambda n: ZOO_MANIFEST[n]["size"])
    result = T.evaluate(f"zoo:{name}", data_dir=SHARED)
    assert abs(result["difference"]) <= 1e-6
    assert result["baseline"] == pytest.approx(ZOO_MANIFEST[name]["baseline"], rel=1e-12)


@real
@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_entries())
def test_evaluate_reproduces_every_zoo_network(name):
    assert abs(T.evaluate(f"zoo:{name}", data_dir=SHARED)["difference"]) <= 1e-6


@real
@pytest.mark.slow
def test_retraining_a_zoo_network_gives_its_weights(tmp_path):
    name = min(zoo_entries(["co2"]), key=lambda n: ZOO_MANIFEST[n]["size"])
    entry = ZOO_MANIFEST[name]
    path, new = T.train(entry["dataset"], entry["size"], entry["seed"], variant=entry["variant"],
                        epochs=entry["epochs"], out=tmp_path / f"{name}.h5", data_dir=SHARED,
                        progress=False)
    # same machine class: identical weights; elsewhere float rounding may differ slightly
    for a, b in zip(arrays(path), arrays(f"zoo:{name}")):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    assert new["test_score"] == pytest.approx(entry["test_score"], rel=1e-3)
