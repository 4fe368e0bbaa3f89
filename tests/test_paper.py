"""Answering the paper (issue 13): untrained zoo controls, Table 1 beside the paper's, Fig. 4 with a
permutation band."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from testbench import models
from testbench import report as R
from testbench import schema
from testbench.errors import WeightsError
from testbench.models import zoo
from testbench.models.weights import read_h5, save
from testbench.validity import moving_band, moving_trend

PAPER = (Path(__file__).resolve().parent.parent.parent / "shared" / "paper"
         / "hasani-amini-2019-response-characterization.txt")
BUILT = ("co2-32-init", "mnist-32-init")


# ------------------------------------------------------------------------ untrained controls

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty control cache ($TESTBENCH_CACHE) under tmp_path."""
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


def test_every_shipped_network_has_a_control_in_the_manifest():
    manifest = zoo.manifest()
    assert zoo.controls() == sorted(f"{n}{zoo.CONTROL_SUFFIX}" for n in zoo.shipped())
    assert zoo.names() == sorted(zoo.shipped() + zoo.controls())
    for name in zoo.controls():
        entry = manifest[name]
        trained = manifest[entry["control_of"]]
        assert entry["network_variant"] == "init" and len(entry["sha256"]) == 64
        assert (entry["dataset"], entry["size"], entry["seed"]) == \
            (trained["dataset"], trained["size"], trained["seed"])
        assert not (zoo.folder() / f"{name}.h5").exists()  # not shipped


def test_a_control_errors_before_it_is_built_and_loads_after(cache, cli):
    pytest.importorskip("torch")
    with pytest.raises(WeightsError, match=r"'co2-32-init' is an untrained control.*not built yet.*"
                                           r"fix: run `testbench zoo build --controls`"):
        models.load("zoo:co2-32-init")
    r = cli("zoo", "build", "--controls", *BUILT)
    assert r.status == 0, r.text
    assert "2 control(s)" in r.out and "digests match the manifest" in r.out
    assert sorted(p.name for p in cache.iterdir()) == [f"{n}.h5" for n in BUILT]
    for name in BUILT:
        assert zoo.digest(read_h5(cache / f"{name}.h5")) == zoo.manifest()[name]["sha256"]
    entry = models.network_grid(["zoo:co2-32", "zoo:co2-32-init"])[1]
    assert (entry.label, entry.variant, entry.seed, entry.dataset, entry.size) == \
        ("co2-32-init", "init", zoo.manifest()["co2-32"]["seed"], "co2", 32)


def test_rebuilding_gives_identical_bytes(cache):
    pytest.importorskip("torch")
    first = {p: p.read_bytes() for p in zoo.build_controls(list(BUILT))}
    for path in first:
        path.unlink()
    again = zoo.build_controls(list(BUILT))
    assert {p: p.read_bytes() for p in again} == first


def test_a_control_is_the_untrained_start_of_training():
    pytest.importorskip("torch")
    manifest = zoo.manifest()
    for name in BUILT:
        trained = manifest[manifest[name]["control_of"]]
        assert zoo.control_entry(trained) == manifest[name]  # the manifest agrees with the code
        net, fitted = zoo.control_network(trained), models.load(f"zoo:{trained['name']}")
        bound = 1 / np.sqrt(trained["size"])  # PyTorch's default: U(-1/sqrt(N), 1/sqrt(N))
        layer = net.layers[0]
        for a in (layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh):
            assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
        assert not np.allclose(layer.W_hh, fitted.layers[0].W_hh, atol=1e-3)
        assert net.metadata["network_variant"] == "init" and "test_score" not in net.metadata
        assert {k: net.metadata[k] for k in models.testset.KEYS} == \
            {k: trained[k] for k in models.testset.KEYS}  # can be ablated on the same test set


def test_a_changed_control_is_refused(cache):
    pytest.importorskip("torch")
    (path,) = zoo.build_controls(["co2-32-init"])
    net = read_h5(path)
    net.layers[0].W_hh[0, 0] += 1e-3
    save(net, path)
    with pytest.raises(WeightsError, match=r"co2-32-init.h5: the control 'co2-32-init' has digest "
                                           r"[0-9a-f]{64}, the manifest expects .*fix: delete"):
        models.load("zoo:co2-32-init")
    zoo.build_controls(["co2-32-init"])  # building replaces it
    assert models.load("zoo:co2-32-init").metadata["network_variant"] == "init"


def test_building_without_torch_says_how_to_install_it(cache, cli, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    r = cli("zoo", "build", "--controls", "co2-32-init")
    assert r.status == 2 and "Traceback" not in r.text
    assert "control of 'co2-32' needs the optional dependency torch" in r.err
    assert "fix: pip install 'rnn-testbench[torch]'" in r.err
    assert not (cache / "co2-32-init.h5").exists()


def test_zoo_lists_and_build_needs_a_target(cache, cli):
    r = cli("zoo")
    assert r.status == 0 and "zoo:co2-128 " in r.out and "zoo:co2-128-init" not in r.out
    assert f"0 of {len(zoo.controls())} built" in r.out
    assert "testbench zoo build --controls" in r.out
    r = cli("zoo", "build")
    assert r.status == 2 and "the following arguments are required: --controls" in r.err
    r = cli("zoo", "build", "--controls", "co2-32-int")
    assert r.status == 2 and "did you mean 'co2-32-init'?" in r.err and "Traceback" not in r.text


# ------------------------------------------------------------------------------- Fig. 4

def test_moving_trend_is_a_centred_mean_shrinking_at_the_ends():
    impact = np.arange(10.0)
    frame = moving_trend(-impact, impact, window=3)  # ranked by -impact: impacts descend
    assert frame["impact"].tolist() == impact[::-1].tolist()
    assert frame["trend"].tolist() == [8.5, 8, 7, 6, 5, 4, 3, 2, 1, 0.5]
    assert frame["spread"].iloc[1] == pytest.approx(np.std([9, 8, 7]))


def test_permutation_band_separates_a_trend_from_noise():
    rng = np.random.default_rng(3)
    n = 128
    noise = rng.normal(0, 1, n)
    trend = np.linspace(-1, 1, n) + rng.normal(0, 0.5, n)
    out = {}
    for name, y in (("noise", noise), ("trend", trend)):
        frame = moving_trend(np.arange(n), y, window=R.TREND_WINDOW)
        lo, hi = moving_band(frame["impact"], window=R.TREND_WINDOW, n_perm=200, seed=0)
        assert (lo <= hi).all() and lo.shape == (n,)
        out[name] = np.mean((frame["trend"] < lo) | (frame["trend"] > hi))
    assert out["trend"] > 0.5 and out["noise"] < 0.15
    lo1, hi1 = moving_band(noise, window=23, seed=1)
    lo2, hi2 = moving_band(noise, window=23, seed=1)
    assert (lo1 == lo2).all() and (hi1 == hi2).all()  # seeded


def test_moving_band_refuses_bad_settings():
    with pytest.raises(Exception, match=r"moving_band: .*rule: window >= 1"):
        moving_band(np.ones(5), window=0)


def test_fig4_draws_the_metric_on_a_right_axis_and_the_chance_band():
    metrics, _ = synthetic(seeds=(0,))
    impact = xr.DataArray(np.linspace(0, 1, 128)[None] * np.ones((2, 1)),
                          dims=("network", "cell"),
                          coords={"network": metrics["network"].values[:2]})
    fig = R.fig_trend(metrics, impact, metric="amplitude", n_perm=50)
    fig.canvas.draw()
    assert len(fig.axes) == 4  # two panels, each with its right-hand axis
    titles = [ax.get_title() for ax in fig.axes[:2]]  # the panels, then their twins
    assert all("outside the chance band" in t for t in titles)
    assert [ax.get_ylabel() for ax in fig.axes[2:]] == ["amplitude"] * 2


# ------------------------------------------------------------------------------- Table 1

def synthetic(seeds=(0, 1, 2)):
    """co2-128 trained at ``seeds`` and its init control, in the report's metric view, and the
    provenance of a graph with the paper-band step analyzer."""
    rng = np.random.default_rng(0)
    labels = [f"co2-128-seed{s}" for s in seeds] + ["co2-128-init"]
    names = ["settling_time", "step_paper_band.settling_time", "delta_response", "amplitude",
             "frequency", "correlation_per_sample"]
    analyzers = ["step_metrics", "step_paper_band", "step_metrics", "sine_metrics",
                 "sine_metrics", "sine_metrics"]
    data = rng.uniform(1, 2, (len(labels), 128, len(names)))
    data[..., 4] = 0.05
    data[0, :10, 4] = 0.1                                   # 10 cells at the second harmonic
    shape = (len(labels), 128)
    data[..., 5] = rng.choice([-1, 1], shape) * rng.uniform(0.02, 0.04, shape)  # signed
    coords = {"network": labels, "cell": np.arange(128), "metric": names,
              "analyzer": ("metric", analyzers), "units": ("metric", [""] * len(names)),
              "dataset": ("network", ["co2"] * len(labels)),
              "network_size": ("network", [128] * len(labels)),
              "seed": ("network", [*seeds, 0]),
              "variant": ("network", ["trained"] * len(seeds) + ["init"])}
    metrics = xr.DataArray(data, dims=("network", "cell", "metric"), coords=coords)
    settings = {
        "sine": {"type": "sine", "settings": {"frequency": 0.05}, "sweep": {}, "inputs": {}},
        "step_paper_band": {"type": "step_response", "inputs": {"response": "c", "stimulus": "s"},
                            "settings": {"band_frac": 0.02, "band_reference": "final"}},
        "step_metrics": {"type": "step_response", "settings": {}, "inputs": {"response": "c"}},
        "sine_metrics": {"type": "sine_response", "settings": {},
                         "inputs": {"response": "d", "stimulus": "sine"}},
    }
    return metrics, settings


def test_paper_rows_are_quoted_from_the_paper():
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER}")
    lines = PAPER.read_text().splitlines()
    for dataset, row in R.PAPER_TABLE1.items():
        assert row in lines, dataset
    assert R._paper_cells("mnist") == ["6.96 ± 4.08", "-0.04 ± 0.58", "0.73 ± 0.30",
                                       "0.17 ± 0.08", "9.83 ± 0.46"]


def test_table1_beside_paper_in_the_papers_units_with_seed_intervals():
    metrics, settings = synthetic()
    table = R.table1_beside_paper(metrics, settings)
    rows = list(table.loc["co2"].index)
    assert rows == ["paper (Table 1)", "co2-128-seed0 (trained, seed 0)",
                    "co2-128-seed1 (trained, seed 1)", "co2-128-seed2 (trained, seed 2)",
                    "co2-128-init (init, seed 0)", "trained: mean over 3 seeds [95 % CI]"]
    paper = table.loc[("co2", "paper (Table 1)")]
    assert paper["settling time, 2 % of |final|"] == "5.65 ± 1.64"
    assert paper["settling time, 10 % of |delta|"] == "-"
    assert paper["|correlation| / T"] == "0.03 ± 0.01"
    first = table.loc[("co2", "co2-128-seed0 (trained, seed 0)")]
    c = np.abs(metrics.sel(network="co2-128-seed0", metric="correlation_per_sample").values)
    assert first["|correlation| / T"] == f"{c.mean():.3g} ± {c.std():.2g}"  # magnitudes, not signs
    ratio = np.r_[np.full(10, 2.0), np.ones(118)]
    assert first["frequency / input frequency"] == f"{ratio.mean():.3g} ± {ratio.std():.2g}"
    v = metrics.sel(network="co2-128-seed0", metric="step_paper_band.settling_time").values
    assert first["settling time, 2 % of |final|"] == f"{v.mean():.3g} ± {v.std():.2g}"
    seed_means = metrics.sel(metric="amplitude").isel(network=slice(0, 3)).mean("cell").values
    summary = table.loc[("co2", "trained: mean over 3 seeds [95 % CI]"), "amplitude"]
    assert summary.startswith(f"{seed_means.mean():.3g} [")


def test_table1_beside_paper_leaves_out_what_the_store_lacks():
    metrics, settings = synthetic(seeds=(0,))
    settings["step_paper_band"]["settings"] = {}  # the default band: not the paper's
    table = R.table1_beside_paper(metrics, settings)
    assert "settling time, 2 % of |final|" not in table.columns
    assert "settling time, 10 % of |delta|" in table.columns
    assert not any("seeds" in r for r in table.index.get_level_values("row"))  # one seed: no CI


def test_plain_labels_give_the_first_analyzer_the_plain_names():
    names = ["a.delta_response", "a.settling_time", "b.delta_response", "b.settling_time",
             "c.delta_response", "amplitude"]
    analyzers = ["a", "a", "b", "b", "c", "sine"]
    definitions = ["final - initial", "10 %", "final - initial", "2 %", "final - initial", "p2p"]
    metrics = xr.DataArray(np.zeros((1, 2, 6)), dims=("network", "cell", "metric"),
                           coords={"metric": names, "analyzer": ("metric", analyzers),
                                   "definition": ("metric", definitions)})
    settings = {"a": {"inputs": {"response": "x"}}, "b": {"inputs": {"response": "x"}},
                "c": {"inputs": {"response": "other_dut"}}}
    out = R.plain_labels(metrics, settings)
    assert list(out[schema.METRIC].values) == ["delta_response", "settling_time",
                                               "b.settling_time", "c.delta_response",
                                               "amplitude"]


def test_paper_graph_runs_both_settling_bands_and_the_controls(tmp_path, cache, cli):
    pytest.importorskip("torch")
    zoo.build_controls(["co2-32-init"])
    graph = tmp_path / "g.yaml"
    text = Path(__file__).resolve().parent.parent.joinpath("graphs", "paper.yaml").read_text()
    nodes = text[text.index("  step_metrics:"):text.index("  knockout:")]
    graph.write_text(
        "nodes:\n"
        "  step: {type: step, settings: {length_steps: 200, dt: 1.0}}\n"
        "  sine: {type: sine, settings: {length_steps: 200, dt: 1.0, frequency: 0.05}}\n"
        "  step_cells: {type: lstm_cells, inputs: [step], settings: {weights: &zoo "
        "[zoo:co2-32, zoo:co2-32-init]}}\n"
        "  sine_cells: {type: lstm_cells, inputs: [sine], settings: {weights: *zoo}}\n" + nodes)
    r = cli("run", str(graph), "-o", str(tmp_path / "s.zarr"))
    assert r.status == 0, r.text
    ds = xr.open_zarr(tmp_path / "s.zarr")
    settings = json.loads(ds.attrs["settings"])
    metrics = R.plain_labels(R.metrics_in_words(ds), settings)
    labels = list(metrics[schema.METRIC].values)
    assert {"settling_time", "step_paper_band.settling_time", "delta_response"} <= set(labels)
    assert "step_paper_band.delta_response" not in labels  # the same as step_metrics'
    table = R.table1_beside_paper(metrics.load(), settings, size=32)
    assert "n/a" not in table.loc[("co2", "co2-32-init (init, seed 0)")].tolist()
