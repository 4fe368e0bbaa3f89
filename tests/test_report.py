"""The HTML reproduction report: tables from a synthetic store, figures, offline page, real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from conftest import SHARED_DATA
from testbench import report as R

METRICS = ["initial_response", "final_response", "delta_response", "settling_time", "amplitude",
           "frequency", "correlation", "correlation_normalized"]
UNITS = ["1", "1", "1", "steps", "1", "1/step", "1", "1"]
SIZES = [32, 64, 128]


def synthetic_store(path, seed=0):
    """Two datasets (mnist, co2) x three sizes, amplitude ~ 1/N, zero/mean ablation at N = 128."""
    rng = np.random.default_rng(seed)
    data = np.full((2, 3, 128, len(METRICS)), np.nan)
    for j, n in enumerate(SIZES):
        data[:, j, :n] = rng.normal(size=(2, n, len(METRICS)))
        data[:, j, :n, 3] = rng.uniform(1, 50, (2, n))                     # settling time
        data[:, j, :n, 4] = (4.0 / n) * rng.uniform(0.5, 1.5, (2, n))      # amplitude
        data[:, j, :n, 5] = 0.05
    data[1, 2, :64, 2] = np.abs(data[1, 2, :64, 2])      # mnist-128: 64 excitatory by delta ...
    data[1, 2, 64:, 2] = -np.abs(data[1, 2, 64:, 2])     # ... and 64 inhibitory
    coords = {"dataset": ["co2", "mnist"], "network_size": SIZES, "cell": np.arange(128),
              "metric": METRICS, "units": ("metric", UNITS)}
    metrics = xr.DataArray(data, dims=("dataset", "network_size", "cell", "metric"), coords=coords)
    impact = np.full((2, 2, 3, 128), np.nan)
    impact[:, :, 2] = rng.normal(0, 0.01, (2, 2, 128))
    ds = xr.Dataset(
        {"metrics": metrics,
         "ablation_impact": (("mode", "dataset", "network_size", "cell"), impact),
         "ablation_intact": (("dataset", "network_size"), np.array([[np.nan, np.nan, 0.3]] * 2))},
        coords={"mode": ["zero", "mean"], "error_units": ("dataset", ["ppm", "1"])},
    )
    ds.attrs["weights"] = json.dumps({"cells": [
        {"source": "zoo:mnist-128", "dataset": "mnist", "network_size": 128}]})
    ds.attrs["created_utc"] = "2026-01-01T00:00:00Z"
    ds.to_zarr(path, zarr_format=2, mode="w")
    return ds


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    ds = synthetic_store(tmp / "s.zarr")
    data_dir = SHARED_DATA if (SHARED_DATA / "mnist").is_dir() else tmp / "no-data"
    path = R.write_report(tmp / "s.zarr", tmp / "out", data_dir=data_dir, n_boot=50, n_perm=100)
    return path, ds, data_dir


def test_table1_and_sign_fractions(page):
    _, ds, _ = page
    t1 = R.table1(ds.metrics)
    v = ds.metrics.sel(dataset="mnist", network_size=128, metric="amplitude")
    assert t1.loc["mnist", ("amplitude", "mean")] == pytest.approx(float(v.mean()))
    assert t1.loc["mnist", ("amplitude", "std")] == pytest.approx(float(v.std()))
    assert list(dict.fromkeys(t1.columns.get_level_values(0))) == list(R.TABLE1_METRICS)
    fr = R.sign_fractions(ds.metrics)
    assert fr.loc["mnist", "delta_response excitatory"] == 0.5
    assert fr.loc["mnist", "delta_response inhibitory"] == 0.5


def test_page_is_self_contained_and_lists_every_section(page):
    path, _, data_dir = page
    text = path.read_text()
    images = re.findall(r"<img src='([^']+)'", text)
    assert {"fig2_3_sorted.png", "fig5_capacity.png", "fig4_delta_response_zero.png",
            "fig4_amplitude_mean.png"} <= set(images)
    for name in images:
        assert (path.parent / name).stat().st_size > 5000
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text)   # nothing fetched from outside
    for heading in ("Table 1", "Predictive validity", "Fig. 5", "Fig. 2B"):
        assert heading in text
    if (data_dir / "mnist").is_dir():
        assert "fig2b_heatmap.png" in images
    else:
        assert "skipped:" in text and "mnist" in text
    for table in ("table1.csv", "validity.csv", "capacity.csv", "sign_fractions.csv"):
        assert (path.parent / table).is_file()


def test_fig2b_is_skipped_with_a_reason_without_data(tmp_path):
    synthetic_store(tmp_path / "s.zarr")
    path = R.write_report(tmp_path / "s.zarr", tmp_path / "out", data_dir=tmp_path / "none",
                          n_boot=5, n_perm=5)
    assert re.search(r"skipped: .*mnist", path.read_text())


def test_report_refuses_a_store_without_metrics(tmp_path):
    xr.Dataset({"x": ("a", [1.0])}).to_zarr(tmp_path / "s.zarr", zarr_format=2)
    with pytest.raises(R.ReportError, match=r"holds no 'metrics' variable \(has: x\)"):
        R.write_report(tmp_path / "s.zarr", tmp_path / "out")


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_browser() is None, reason="no headless browser (apt-get install chromium)")
def test_page_renders_in_a_headless_browser(page, tmp_path):
    import matplotlib.image as mpimg

    path, _, _ = page
    shot = tmp_path / "shot.png"
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2400", path.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    rgb = mpimg.imread(shot)[..., :3]
    colored = (rgb.max(-1) - rgb.min(-1)) > 0.3     # saturated pixels: the figures' colored lines
    assert colored.mean() > 0.002, "no figure pixels in the rendered page"
