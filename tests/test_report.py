"""The HTML reproduction report: tables from a synthetic store, figures, offline page, real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import SHARED_DATA
from testbench import report as R
from testbench import schema
from testbench import store as S

METRICS = ["initial_response", "final_response", "delta_response", "settling_time", "amplitude",
           "frequency", "correlation", "correlation_normalized"]
UNITS = ["1", "1", "1", "time unit", "1", "cycles per time unit", "1", "1"]
ANALYZERS = ["step_metrics"] * 4 + ["sine_metrics"] * 4
SIZES = [32, 64, 128]
DATASETS = ["co2", "mnist"]


def provenance(step_dt=1.0, frequencies=None):
    """The store's ``settings`` attribute of a step + sine graph (the sine's dt left at its
    default, 1.0; ``frequencies`` sweeps the sine)."""
    def node(type_, settings=None, inputs=None, sweep=None):
        return {"type": type_, "settings": settings or {}, "sweep": sweep or {},
                "inputs": inputs or {}}

    return json.dumps({
        "step": node("step", {"dt": step_dt}),
        "sine": node("sine", sweep={"frequency": frequencies} if frequencies else None),
        "step_cells": node("lstm_cells", {"weights": "zoo:mnist-128"}, {"stimulus": "step"}),
        "sine_cells": node("lstm_cells", {"weights": "zoo:mnist-128"}, {"stimulus": "sine"}),
        "step_metrics": node("step_response", inputs={"response": "step_cells", "stimulus": "step"}),
        "sine_metrics": node("sine_response", inputs={"response": "sine_cells", "stimulus": "sine"}),
    })


def synthetic_store(path, seed=0, *, frequencies=None, bode=False, ablation=True, step_dt=1.0):
    """Networks co2-N and mnist-N for N in 32, 64, 128 (amplitude ~ 1/N, frequency constant 0.05)
    in the result schema; zero/mean ablation of the 128-cell ones. ``frequencies``: a sine
    frequency sweep that the sine metrics depend on; ``bode``: also ``gain`` and ``phase_lag``
    metrics of a first-order lag. Returns the stored dataset."""
    rng = np.random.default_rng(seed)
    names, units, analyzers = list(METRICS), list(UNITS), list(ANALYZERS)
    if bode:
        names += ["gain", "phase_lag"]
        units += ["1", "degree"]
        analyzers += ["bode", "bode"]
    labels = [f"{d}-{n}" for d in DATASETS for n in SIZES]
    sizes = np.array([n for _ in DATASETS for n in SIZES])
    data = np.full((len(labels), 128, len(names)), np.nan)
    for k, n in enumerate(sizes):
        data[k, :n] = rng.normal(size=(n, len(names)))
        data[k, :n, 3] = rng.uniform(1, 50, n)                      # settling time
        data[k, :n, 4] = (4.0 / n) * rng.uniform(0.5, 1.5, n)       # amplitude
        data[k, :n, 5] = 0.05
    mnist = labels.index("mnist-128")
    data[mnist, :64, 2] = np.abs(data[mnist, :64, 2])      # mnist-128: 64 excitatory by delta ...
    data[mnist, 64:, 2] = -np.abs(data[mnist, 64:, 2])     # ... and 64 inhibitory
    coords = {"network": labels, "cell": np.arange(128), "metric": names,
              "units": ("metric", units), "analyzer": ("metric", analyzers),
              "dataset": ("network", [lb.split("-")[0] for lb in labels]),
              "network_size": ("network", sizes), "seed": ("network", np.zeros(len(labels), int)),
              "variant": ("network", ["trained"] * len(labels)),
              "cell_type": ("network", ["lstm"] * len(labels)),
              "checksum": ("network", labels), "source": ("network", [f"zoo:{lb}" for lb in labels]),
              "n_cells": ("network", sizes)}
    metrics = xr.DataArray(data, dims=("network", "cell", "metric"), coords=coords)
    if frequencies:
        f = xr.DataArray(frequencies, dims="frequency", coords={"frequency": frequencies})
        sine = metrics["analyzer"] != "step_metrics"
        metrics = xr.where(sine, metrics * (1 + f), metrics).transpose(*metrics.dims, "frequency")
        if bode:
            pole = rng.uniform(0.02, 0.2, (len(labels), 128))[..., None]
            freq = np.asarray(frequencies)
            gain = 1 / np.sqrt(1 + (freq / pole) ** 2)
            metrics.loc[{"metric": "gain"}] = np.where(np.isfinite(data[..., :1]), gain, np.nan)
            metrics.loc[{"metric": "phase_lag"}] = np.degrees(np.arctan(freq / pole))
    ds = schema.from_metrics(metrics)
    if ablation:
        impact = np.full((2, len(labels), 128), np.nan)
        ablated = [k for k, n in enumerate(sizes) if n == 128]
        impact[:, ablated] = rng.normal(0, 0.01, (2, len(ablated), 128))
        intact = np.where(sizes == 128, 0.3, np.nan)
        ds = ds.assign(ablation_impact=(("mode", "network", "cell"), impact),
                       ablation_intact=(("mode", "network"), np.stack([intact, intact])))
        ds = ds.assign_coords(
            mode=["zero", "mean"],
            error_units=("network", ["ppm" if lb.startswith("co2") else "1" for lb in labels]),
            error_metric=("network", ["mae" if lb.startswith("co2") else "misclassification_rate"
                                      for lb in labels]))
    ds.attrs["created_utc"] = "2026-01-01T00:00:00Z"
    ds.attrs["settings"] = provenance(step_dt, frequencies)
    S.write(ds, path, progress=False)
    return ds


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    ds = synthetic_store(tmp / "s.zarr")
    data_dir = SHARED_DATA if (SHARED_DATA / "mnist").is_dir() else tmp / "no-data"
    path = R.write_report(tmp / "s.zarr", tmp / "out", data_dir=data_dir, n_boot=50, n_perm=100)
    return path, ds, data_dir


@pytest.fixture(scope="module")
def lazy(page):
    """The synthetic store opened lazily, its metrics with units in words."""
    ds = S.open_store(page[0].parent.parent / "s.zarr")
    return ds, R.metrics_in_words(ds)


def texts(fig) -> list[str]:
    """Every piece of text of a figure: titles, axis labels, legend entries, colour bar labels."""
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


# ------------------------------------------------------------------------------------- tables


def test_table1_and_sign_fractions(page):
    _, ds, _ = page
    metrics = schema.metrics(ds)
    t1 = R.table1(metrics)
    assert list(t1.index) == ["co2-128", "mnist-128"]
    v = metrics.sel(network="mnist-128", metric="amplitude")
    assert t1.loc["mnist-128", ("amplitude", "mean")] == pytest.approx(float(v.mean()))
    assert t1.loc["mnist-128", ("amplitude", "std")] == pytest.approx(float(v.std()))
    assert list(dict.fromkeys(t1.columns.get_level_values(0))) == list(R.TABLE1_METRICS)
    fr = R.sign_fractions(metrics)
    assert fr.loc["mnist-128", "delta_response excitatory"] == 0.5
    assert fr.loc["mnist-128", "delta_response inhibitory"] == 0.5


def test_csvs_have_one_header_row_and_integer_counts(page):
    path, ds, _ = page
    for name in ("table1.csv", "sign_fractions.csv", "validity.csv", "capacity.csv"):
        text = (path.parent / name).read_text()
        frame = pd.read_csv(path.parent / name)
        assert not any(str(c).startswith("Unnamed") for c in frame.columns), name
        assert frame.iloc[0, 0] in ("co2-128", "co2"), f"{name}: a second header row"
        assert not re.search(r",128\.0\b", text), f"{name}: counts written as floats"
    t1 = pd.read_csv(path.parent / "table1.csv", index_col=0)
    assert t1.loc["mnist-128", "amplitude_n"] == 128 and t1["amplitude_n"].dtype.kind == "i"
    assert t1.loc["mnist-128", "amplitude_mean"] == pytest.approx(
        float(ds["amplitude"].sel(network="mnist-128").mean()))
    validity = pd.read_csv(path.parent / "validity.csv")
    assert validity["n"].dtype.kind == "i" and set(validity["n"]) == {128}
    assert {"p_perm_holm", "p_perm_bh", "p_overlap_holm", "p_overlap_bh",
            "spearman_failed"} <= set(validity.columns)
    assert pd.read_csv(path.parent / "capacity.csv")["n_points"].dtype.kind == "i"


def html_tables(text: str) -> list[list[list[str]]]:
    """The tables of an HTML page: rows of cell texts (header and index cells included)."""
    from html.parser import HTMLParser

    tables = []

    class Parser(HTMLParser):
        cell = None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                tables.append([])
            elif tag == "tr":
                tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                tables[-1][-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    Parser().feed(text)
    return tables


def test_validity_table_in_the_page(page):
    path, _, _ = page
    text = path.read_text()
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    table = next(t for t in html_tables(text) if "Spearman ρ [95% CI]" in t[0])
    for column in ("failed resamples ρ / τ", "p perm. (Holm, BH)", "p overlap (Holm, BH)", "note"):
        assert column in table[0]
    shown = {cell for row in table[2:] for cell in row}
    assert {"settling time", "delta response", "|delta response|", "frequency"} <= shown
    assert not {"|settling time|", "|amplitude|", "|frequency|"} & shown    # non-negative metrics
    frequency = next(row for row in table if "frequency" in row)
    after = frequency[frequency.index("frequency") + 1:]
    assert after[0] == "128" and after[1] == after[2] == "n/a"            # n, Spearman, Kendall
    assert "constant across the 128 cells" in after[-1]
    holm = next(row for row in table if "settling time" in row)[-4]
    assert re.fullmatch(r"[\d.e-]+ \([\d.e-]+, [\d.e-]+\)", holm)         # p (Holm, BH)


def test_page_is_self_contained_and_lists_every_section(page):
    path, _, data_dir = page
    text = path.read_text()
    images = re.findall(r"<img src='([^']+)'", text)
    assert {"fig2_3_sorted.png", "fig5_capacity.png", "fig4_delta_response_zero.png",
            "fig4_amplitude_mean.png"} <= set(images)
    assert "bode.png" not in images                       # no gain / phase_lag in this store
    for name in images:
        assert (path.parent / name).stat().st_size > 5000
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text)   # nothing fetched from outside
    for heading in ("Table 1", "Predictive validity", "Fig. 5", "Fig. 2B"):
        assert heading in text
    assert "settling time [steps]" in text and "settling_time" not in text
    assert "Intact test errors: co2-128: 0.3 ppm; mnist-128: 0.3.</p>" in text
    if (data_dir / "mnist").is_dir():
        assert "fig2b_heatmap.png" in images
    else:
        assert "skipped:" in text and "mnist" in text
    for table in ("table1.csv", "validity.csv", "capacity.csv", "sign_fractions.csv"):
        assert (path.parent / table).is_file()


def test_fig2b_is_skipped_with_a_reason_without_data(tmp_path):
    synthetic_store(tmp_path / "s.zarr", ablation=False)
    path = R.write_report(tmp_path / "s.zarr", tmp_path / "out", data_dir=tmp_path / "none",
                          n_boot=5, n_perm=5)
    assert re.search(r"skipped: .*mnist", path.read_text())


def test_a_store_of_step_metrics_only_gets_table1_without_the_sine_columns(tmp_path):
    ds = synthetic_store(tmp_path / "s.zarr", ablation=False)
    step = [v for v in ds.data_vars if ds[v].attrs["analyzer"] == "step_metrics"]
    S.write(ds[step], tmp_path / "step.zarr", progress=False)
    path = R.write_report(tmp_path / "step.zarr", tmp_path / "out", data_dir=tmp_path / "none")
    text = path.read_text()
    assert "settling time [steps]" in text and "delta response excitatory" in text
    assert "amplitude" not in text and "correlation" not in text
    assert list(pd.read_csv(tmp_path / "out" / "sign_fractions.csv").columns) == [
        "network", "delta_response excitatory", "delta_response inhibitory"]


def test_report_refuses_a_store_without_metrics(tmp_path):
    S.write(xr.Dataset({"x": ("a", [1.0])}), tmp_path / "s.zarr", progress=False)
    with pytest.raises(R.ReportError, match=r"holds no metric variables \(has: x\); fix: run "):
        R.write_report(tmp_path / "s.zarr", tmp_path / "out")


# ------------------------------------------------------------------------- words and units


def test_labels_are_words_in_one_place():
    assert R.label("settling_time") == "settling time"
    assert R.label("|delta_response|") == "|delta response|"
    assert R.label("mae") == "MAE"
    assert R.label("misclassification_rate") == "misclassification rate"


@pytest.mark.parametrize("step_dt, settling, frequency", [
    (1.0, "steps", "cycles per step"),               # one time unit is one step
    (0.5, "time units", "cycles per step"),          # the sine keeps its default dt = 1
])
def test_units_in_words_follow_the_stimulus_dt(tmp_path, step_dt, settling, frequency):
    synthetic_store(tmp_path / "s.zarr", ablation=False, step_dt=step_dt)
    words = R.metrics_in_words(S.open_store(tmp_path / "s.zarr"))
    assert R.unit_suffix(words, "settling_time") == f" [{settling}]"
    assert R.unit_suffix(words, "frequency") == f" [{frequency}]"
    assert R.unit_suffix(words, "amplitude") == ""                     # dimensionless
    assert R.axis_label(words, "settling_time") == f"settling time [{settling}]"


def test_sorted_figure_titles_are_words_with_units(lazy):
    _, words = lazy
    fig = R.fig_sorted(words)                               # lazily opened store
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "settling time [steps]" in titles and "frequency [cycles per step]" in titles
    assert "delta response" in titles
    assert not any("_" in t or "time unit" in t for t in texts(fig))


def test_fig4_shows_mode_units_and_cells_that_do_not_overlap(lazy):
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    ds, words = lazy
    fig = R.fig_trend(words, ds.ablation_impact.sel(mode="zero"), metric="delta_response")
    co2, mnist = fig.axes[:2]  # then their right-hand axes (the metric)
    assert co2.get_title().splitlines()[0] == "co2-128, zero knock-out"
    assert co2.get_ylabel() == "Δ test MAE [ppm]"
    assert mnist.get_ylabel() == "Δ test misclassification rate"
    assert co2.get_xlabel() == "cells ranked by delta response (ascending)"
    assert not [p for p in co2.patches if isinstance(p, Rectangle)]      # no bars
    fig.canvas.draw()
    cells = [c for c in co2.collections if isinstance(c, LineCollection)]
    assert len(cells) == 1 and len(cells[0].get_segments()) == 128
    width_px = cells[0].get_linewidth()[0] * fig.dpi / 72
    pitch_px = co2.get_window_extent().width / 128
    assert width_px < pitch_px, "the cells' lines overlap"
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_fig5_has_no_frequency_panel_and_its_legend_covers_no_data(lazy, page):
    from testbench.capacity import capacity_table

    _, words = lazy
    fig = R.fig_capacity(words, capacity_table(S.load(words, "s")))
    titles = [ax.get_title().splitlines()[0] for ax in fig.axes]
    assert titles == ["settling time [steps]", "|delta response|", "amplitude", "|correlation|"]
    assert not [ax for ax in fig.axes if ax.get_legend() is not None]
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["co2", "mnist"]


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs the MNIST data")
def test_fig2b_titles_the_digit_by_its_class_and_labels_the_colour_bar(lazy):
    from testbench import data as D

    _, words = lazy
    fig = R.fig_heatmap(words, "zoo:mnist-128", data_dir=SHARED_DATA, digit_index=3)
    digit = int(D.load("mnist", variant="row", data_dir=SHARED_DATA).test.y[3])
    assert fig.axes[0].get_title() == f"digit {digit} (test image #3)"
    assert fig.axes[-1].get_ylabel() == "hidden state $h_t$"


# ------------------------------------------------------------------------------ swept stores


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swept")
    synthetic_store(tmp / "f.zarr", frequencies=[0.05, 0.1], ablation=False)
    return tmp


def test_a_swept_store_without_sel_is_refused_with_its_dims_and_values(swept, cli):
    r = cli("report", swept / "f.zarr", "-o", swept / "refused")
    assert r.status == 2 and "Traceback" not in r.text
    assert re.search(r"error: '.*f\.zarr': metrics are swept along frequency \(2 values: 0\.05, "
                     r"0\.1\); .*fix: choose one with --sel, e\.g\. `testbench report .*f\.zarr "
                     r"--sel frequency=0\.05`", r.err)
    assert not (swept / "refused").exists()


def test_report_sel_reports_one_point_of_a_swept_store(swept, cli):
    r = cli("report", swept / "f.zarr", "-o", swept / "at", "--sel", "frequency=0.1")
    assert r.status == 0, r.text
    text = (swept / "at" / "index.html").read_text()
    assert "at <code>frequency=0.1</code>" in text
    t1 = pd.read_csv(swept / "at" / "table1.csv", index_col=0)
    expected = xr.open_zarr(swept / "f.zarr")["amplitude"].sel(network="co2-128", frequency=0.1)
    assert t1.loc["co2-128", "amplitude_mean"] == pytest.approx(float(expected.mean()))
    off = cli("report", swept / "f.zarr", "-o", swept / "off", "--sel", "frequency=0.2")
    assert off.status == 2 and re.search(r"--sel frequency=0\.2: '0\.2' is not a value of "
                                         r"'frequency'; nearest: 0\.1; fix: use one of: 0\.05, "
                                         r"0\.1", off.err)


def test_a_bode_store_gets_the_bode_figure(tmp_path, cli):
    synthetic_store(tmp_path / "b.zarr", frequencies=[0.01, 0.03, 0.1], bode=True, ablation=False)
    r = cli("report", tmp_path / "b.zarr", "-o", tmp_path / "whole")
    assert r.status == 0, r.text
    text = (tmp_path / "whole" / "index.html").read_text()
    assert "<img src='bode.png'" in text and "Table 1" not in text
    assert re.search(r"swept along frequency \(3 values: 0\.01, 0\.03, 0\.1\)\. To see them, "
                     r"choose one with --sel", text)
    r = cli("report", tmp_path / "b.zarr", "-o", tmp_path / "point", "--sel", "frequency=0.03")
    assert r.status == 0, r.text
    text = (tmp_path / "point" / "index.html").read_text()
    assert "<img src='bode.png'" in text and "Table 1" in text
    from testbench.bode import fig_bode

    fig = fig_bode(S.open_store(tmp_path / "b.zarr"))
    assert fig.axes[-2].get_xlabel() == "stimulus frequency [cycles per step]"
    assert fig.axes[-1].get_ylabel() == "settling time [steps] (grey: never settles)"


# ------------------------------------------------------------------------------------- CLI


def test_report_help_says_its_defaults_without_markup(cli):
    r = cli("report", "--help")
    text = " ".join(r.out.split())
    assert "(default: results/report)" in text and "--sel DIM=VALUE" in text
    assert "(default: 128" in text
    assert not re.search(r"``|:func:|:mod:", r.out)


def test_show_on_an_ablation_only_store(tmp_path, cli):
    ds = synthetic_store(tmp_path / "s.zarr", ablation=True)
    S.write(ds[["ablation_impact", "ablation_intact"]], tmp_path / "a.zarr", progress=False)
    r = cli("show", tmp_path / "a.zarr")
    assert r.status == 0, r.text
    assert "ablation_impact" in r.out and "ablation_error" not in r.out  # only impact stored here
    assert re.search(r"zero\s+co2-128\s+-?\d", r.out)
    assert "intact test error: co2-128: 0.3 ppm; mnist-128: 0.3\n" in r.out
    assert "co2-128: MAE [ppm]" in r.out and "mnist-128: misclassification rate" in r.out
    r = cli("show", tmp_path / "a.zarr", "--sel", "mode=mean")
    assert r.status == 0 and "zero" not in r.out.split("\n", 1)[1]


# --------------------------------------------------------------------------------- browser


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


#: Injected into a copy of the page: after load, records each image's size and place, and the
#: page's height, as attributes of <body> that ``--dump-dom`` prints.
PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => {
    const r = i.getBoundingClientRect();
    return {src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth,
            height: i.naturalHeight, box: [r.left, r.top, r.width, r.height]};
  });
  document.body.setAttribute('data-images', JSON.stringify(images));
  document.body.setAttribute('data-height', document.documentElement.scrollHeight);
});
</script>"""


def _chromium(browser: str, profile, *args, timeout=120) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1"]
    done = subprocess.run([browser, *flags, *args], check=True, capture_output=True, text=True,
                          timeout=timeout)
    return done.stdout


def _thumb(rgb: np.ndarray, n: int = 16) -> np.ndarray:
    """Grey levels of an image averaged over an n x n grid of blocks."""
    grey = rgb[..., :3].mean(-1)
    rows = np.array_split(np.arange(grey.shape[0]), n)
    cols = np.array_split(np.arange(grey.shape[1]), n)
    return np.array([[grey[np.ix_(r, c)].mean() for c in cols] for r in rows])


def test_page_renders_in_a_headless_browser(page, tmp_path):
    browser = _browser()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no headless browser in CI: .ci/run installs Debian's chromium")
        pytest.skip("no headless browser (apt-get install chromium)")
    path, _, _ = page
    site = shutil.copytree(path.parent, tmp_path / "site")
    page_copy = site / "index.html"
    page_copy.write_text(path.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(browser, tmp_path / "profile-dom", "--window-size=1280,1000", "--dump-dom",
                    page_copy.as_uri())
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, "the page did not finish loading"
    images = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    expected = re.findall(r"<img src='([^']+)'", path.read_text())
    assert [i["src"] for i in images] == expected and len(expected) >= 6
    for image in images:
        assert image["complete"] and image["width"] > 0, f"{image['src']}: broken image"
        png = mpimg.imread(site / image["src"])
        assert (image["width"], image["height"]) == png.shape[1::-1], image

    height = int(re.search(r'data-height="(\d+)"', dom)[1])
    shot = tmp_path / "shot.png"
    _chromium(browser, tmp_path / "profile-shot", f"--window-size=1280,{height + 50}",
              f"--screenshot={shot}", page_copy.as_uri())
    rgb = mpimg.imread(shot)
    assert rgb.shape[0] >= height
    for image in images:   # each figure is on screen where the page placed it, as drawn
        left, top, width, height = (int(round(v)) for v in image["box"])
        crop = rgb[top + 2:top + height - 2, left + 2:left + width - 2]
        drawn = mpimg.imread(site / image["src"])[2:-2, 2:-2]
        a, b = _thumb(crop).ravel(), _thumb(drawn).ravel()
        assert crop.std() > 0.05, f"{image['src']}: blank on screen"
        assert np.corrcoef(a, b)[0, 1] > 0.9, f"{image['src']}: not the figure on screen"
