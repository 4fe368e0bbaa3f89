"""Predictive-validity statistics and capacity fits against SciPy/statsmodels and exact cases."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import statsmodels.api as sm
import xarray as xr
from scipy import stats

from testbench import capacity as C
from testbench import schema
from testbench import validity as V
from testbench.errors import SettingsError


@pytest.fixture
def tied():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 8, 40).astype(float)          # many ties
    y = x + rng.normal(0, 3, 40)
    y[:6] = y[6]                                      # ties in y too
    return x, y


def test_rank_correlations_match_scipy(tied):
    x, y = tied
    r = V.rank_statistics(x, y, n_boot=10, n_perm=10)
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)


def test_row_functions_match_scipy_row_by_row():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    np.testing.assert_allclose(V.spearman_rows(x, y), [stats.spearmanr(a, b).statistic
                                                      for a, b in zip(x, y)], atol=1e-12)
    np.testing.assert_allclose(V.kendall_rows(x, y), [stats.kendalltau(a, b).statistic
                                                     for a, b in zip(x, y)], atol=1e-12)


def test_monotone_relation_is_perfect():
    x = np.arange(20.0)
    r = V.rank_statistics(x, np.exp(x / 5), n_boot=200, n_perm=999, top_k=5)
    assert r["spearman"] == r["kendall"] == 1.0
    assert r["spearman_lo"] == r["spearman_hi"] == 1.0
    assert r["p_perm"] == pytest.approx(1 / 1000)      # no permutation reaches |rho| = 1
    assert (r["overlap"], r["overlap_random"]) == (1.0, 5 / 20)
    assert r["p_overlap"] == pytest.approx(1 / 15504)  # one way in C(20, 5) to pick the same 5


def test_permutation_p_value_converges_to_the_exact_enumeration():
    x = np.array([0.3, 1.2, -0.5, 2.0, 0.9, -1.1])
    y = np.array([0.1, 0.8, 0.2, 1.5, -0.3, -0.9])
    rho = stats.spearmanr(x, y).statistic
    perms = [stats.spearmanr(x, y[list(p)]).statistic for p in itertools.permutations(range(6))]
    exact = np.mean(np.abs(perms) >= abs(rho) - 1e-12)
    r = V.rank_statistics(x, y, n_boot=10, n_perm=20000, seed=5)
    assert r["p_perm"] == pytest.approx(exact, abs=0.01)   # 4 binomial SDs at p ~ 0.2


def test_bootstrap_interval_covers_and_narrows():
    rng = np.random.default_rng(3)
    widths = []
    for n in (30, 300):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        r = V.rank_statistics(x, y, n_boot=400, n_perm=10)
        assert r["spearman_lo"] < r["spearman"] < r["spearman_hi"]
        assert r["kendall_lo"] < r["kendall"] < r["kendall_hi"]
        widths.append(r["spearman_hi"] - r["spearman_lo"])
    assert widths[1] < widths[0] / 2                 # ~ 1/sqrt(n): 10x cells, ~3x narrower


def test_top_k_overlap_and_hypergeometric_tail():
    x = np.arange(10.0)
    y = np.array([9, 8, 0, 1, 2, 3, 4, 5, 7, 6.0])   # top-3 by x: cells 9, 8, 7; by y: 0, 1, 8
    r = V.rank_statistics(x, y, n_boot=5, n_perm=5, top_k=3)
    assert r["overlap"] == pytest.approx(1 / 3)
    assert r["p_overlap"] == pytest.approx(stats.hypergeom(10, 3, 3).sf(0))


def test_nan_pairs_dropped_and_too_few_cells_give_nan():
    r = V.rank_statistics([1, np.nan, 3, 4, 5], [1, 2, np.nan, 4, 5], n_boot=5, n_perm=5)
    assert r["n"] == 3 and r["spearman"] == 1.0
    r = V.rank_statistics([1, 2, np.nan], [1, 2, 3])
    assert r["n"] == 2 and np.isnan(r["spearman"]) and np.isnan(r["p_perm"])


def test_rank_statistics_refuses_bad_arguments():
    with pytest.raises(SettingsError, match=r"metric has 3 values but impact has 2"):
        V.rank_statistics([1, 2, 3], [1, 2])
    with pytest.raises(SettingsError, match=r"n_boot=0 is out of range; rule: >= 1"):
        V.rank_statistics([1, 2, 3], [1, 2, 3], n_boot=0)


def test_moving_trend_matches_a_plain_loop():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=25), rng.normal(size=25)
    x[3] = np.nan
    f = V.moving_trend(x, y, window=5)
    order = np.argsort(np.where(np.isnan(x), np.inf, x))[:24]
    np.testing.assert_array_equal(f["cell"], order)
    ys = y[order]
    mean = [ys[max(0, i - 2):i + 3].mean() for i in range(24)]
    std = [ys[max(0, i - 2):i + 3].std() for i in range(24)]
    np.testing.assert_allclose(f["trend"], mean, rtol=1e-12)
    np.testing.assert_allclose(f["spread"], std, rtol=1e-12, atol=1e-15)


def _store(rng):
    """Two datasets, sizes 32/64/128: impact = delta_response exactly in 'a', noise in 'b'."""
    sizes = [32, 64, 128]
    metric = np.full((2, 3, 128, 2), np.nan)
    for j, n in enumerate(sizes):
        metric[:, j, :n, 0] = rng.normal(size=(2, n))                      # delta_response
        metric[:, j, :n, 1] = (3.0 / n) * rng.uniform(0.5, 1.5, (2, n))    # amplitude ~ 1/N
    coords = {"dataset": ["a", "b"], "network_size": sizes, "cell": np.arange(128),
              "metric": ["delta_response", "amplitude"]}
    metrics = xr.DataArray(metric, dims=("dataset", "network_size", "cell", "metric"), coords=coords)
    impact = xr.full_like(metrics.isel(metric=0, drop=True), np.nan)
    impact.loc[dict(dataset="a", network_size=128)] = metrics.sel(dataset="a", network_size=128,
                                                                  metric="delta_response")
    impact.loc[dict(dataset="b", network_size=128)] = rng.normal(size=128)
    store = schema.from_metrics(_networks(metrics))
    return store.assign(ablation_impact=_networks(impact))


def _networks(arr):
    """A grid ``(dataset, [seed,] network_size, cell, ...)`` as the store's ``network`` dim."""
    grid = [d for d in ("dataset", "seed", "network_size") if d in arr.dims]
    arr = arr.stack(network=grid)
    labels = ["-".join(map(str, key)) for key in arr["network"].values]
    coords = {c: ("network", arr[c].values) for c in grid}
    coords.setdefault("seed", ("network", np.full(len(labels), -1)))
    arr = arr.drop_vars(["network", *grid]).assign_coords(
        network=labels, variant=("network", ["trained"] * len(labels)),
        n_cells=("network", arr["network_size"].values), **coords)
    return arr.transpose("network", "cell", ...)


def test_validity_table_per_network_and_magnitude():
    ds = _store(np.random.default_rng(5))
    t = V.validity_table(ds, n_boot=50, n_perm=200)
    assert list(t.index.names) == ["network", "metric"]
    assert len(t) == 2 * 2 * 2                          # datasets x metrics x (m, |m|); only N=128
    assert t.loc[("a-128", "delta_response"), "spearman"] == 1.0
    assert abs(t.loc[("b-128", "delta_response"), "spearman"]) < 0.3
    x = ds.delta_response.sel(network="b-128")
    y = ds.ablation_impact.sel(network="b-128")
    asymptotic = stats.spearmanr(x, y).pvalue
    assert t.loc[("b-128", "delta_response"), "p_perm"] == pytest.approx(asymptotic, abs=0.02)


def test_validity_table_refuses_unselected_sweeps():
    ds = _store(np.random.default_rng(5))
    ds = ds.expand_dims(frequency=[0.01, 0.05])
    with pytest.raises(SettingsError, match=r"dims \['frequency'\] have several values"):
        V.validity_table(ds)


def test_power_law_exact_and_against_statsmodels():
    N = np.array([32, 64, 128, 192, 256, 320.0])
    fit = C.power_law(N, 5.0 * N ** -1.0)
    assert fit["exponent"] == pytest.approx(-1.0, abs=1e-12)
    assert fit["prefactor"] == pytest.approx(5.0, rel=1e-12)
    y = 5.0 * N ** -0.8 * np.exp(np.random.default_rng(6).normal(0, 0.1, N.size))
    fit = C.power_law(N, y)
    ols = sm.OLS(np.log(y), sm.add_constant(np.log(N))).fit()
    lo, hi = ols.conf_int(0.05)[1]
    assert (fit["exponent_lo"], fit["exponent"], fit["exponent_hi"]) == pytest.approx(
        (lo, ols.params[1], hi), rel=1e-10)
    assert fit["r2"] == pytest.approx(ols.rsquared, rel=1e-10)


def test_power_law_drops_nonpositive_points_and_needs_three():
    fit = C.power_law([1, 2, 4, 8], [1.0, 0.0, np.nan, 0.125])
    assert fit["n_points"] == 2 and np.isnan(fit["exponent"])
    with pytest.raises(SettingsError, match=r"level=1.5 is out of range"):
        C.power_law([1, 2, 3], [1, 2, 3], level=1.5)


def test_capacity_table_recovers_inverse_size_scaling():
    ds = _store(np.random.default_rng(7))
    t = C.capacity_table(schema.metrics(ds))
    assert list(t.index.names) == ["dataset", "variant", "seed", "metric"]
    amp = t.loc[("a", "trained", -1, "amplitude")]
    assert amp["exponent_lo"] < -1.0 < amp["exponent_hi"]
    assert amp["exponent"] == pytest.approx(-1.0, abs=0.1)
    delta = t.loc[("a", "trained", -1, "delta_response")]  # mean |N(0,1)| does not depend on N
    assert delta["exponent"] == pytest.approx(0.0, abs=0.15)


# --- NaN-aware bootstrap, constant metrics, ties, multiple-comparison control (issue 13) -------

def test_bootstrap_interval_reports_failed_resamples():
    sample = np.r_[np.arange(97.0), np.nan, np.nan]          # 2 of 99 failed: 2.02 % <= 2.5 %
    lo, hi, failed = V.bootstrap_interval(sample)
    assert failed == pytest.approx(2 / 99)
    assert (lo, hi) == pytest.approx(np.percentile(np.arange(97.0), [2.5, 97.5]), rel=1e-12)
    lo, hi, failed = V.bootstrap_interval(np.r_[np.arange(97.0), [np.nan] * 3])   # 3 % failed
    assert failed == pytest.approx(0.03) and np.isnan(lo) and np.isnan(hi)
    lo, hi, failed = V.bootstrap_interval([np.nan] * 4, max_failed=1.0)
    assert failed == 1.0 and np.isnan(lo) and np.isnan(hi)
    assert np.isnan(V.bootstrap_interval([])).all()
    with pytest.raises(SettingsError, match=r"level=1 is out of range; rule: 0 < level < 1"):
        V.bootstrap_interval([1.0], level=1)


def test_mostly_tied_metric_gives_a_nan_interval_and_says_why():
    # 18 of 20 cells tie: a resample drawing only them has no rank correlation, probability
    # (18/20)^20 = 12 %. The old percentile over the surviving resamples hid that.
    rng = np.random.default_rng(8)
    x = np.r_[np.zeros(18), 1.0, 2.0]
    y = rng.normal(size=20)
    r = V.rank_statistics(x, y, n_boot=4000, n_perm=100)
    expected = 0.9 ** 20
    for name in ("spearman", "kendall"):
        assert r[f"{name}_failed"] == pytest.approx(expected, abs=4 * np.sqrt(expected / 4000))
        assert np.isnan(r[f"{name}_lo"]) and np.isnan(r[f"{name}_hi"])
        assert np.isfinite(r[name])
    assert re.search(r"spearman CI: 1\d\.\d% of resamples drew only tied cells \(> 2\.5%\)",
                     r["note"])
    r = V.rank_statistics(np.arange(20.0), y, n_boot=500, n_perm=10)   # nothing can fail
    assert r["spearman_failed"] == r["kendall_failed"] == 0.0 and r["note"] == ""


@pytest.mark.parametrize("which", ["metric", "impact", "metric and impact"])
def test_constant_metric_or_impact_has_no_ranking(which):
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=30), rng.normal(size=30)
    if "metric" in which:
        x[:] = 9.83
    if "impact" in which:
        y[:] = 0.0
    x[4] = np.nan                                      # a dropped pair does not count
    r = V.rank_statistics(x, y, n_boot=20, n_perm=20, top_k=10)
    for key in V.STATS_COLUMNS:
        if key not in ("n", "note"):
            assert np.isnan(r[key]), key
    assert r["n"] == 29
    assert r["note"] == f"{which} constant across the 29 cells: no ranking"


def test_too_few_cells_say_so():
    r = V.rank_statistics([1.0, 2.0, np.nan], [1.0, 2.0, 3.0])
    assert r["note"] == "2 cells with both values: fewer than 3"


def test_ties_at_the_top_k_edge_are_broken_at_random_not_by_cell_order():
    # cells 0-3 tie for the largest metric; the impact's top 2 are cells 2 and 3. Cell order would
    # always pick cells 0 and 1 (overlap 0); random tie-breaking gives overlap 1/2 on average
    # (each of cells 2 and 3 is picked with probability 2/4).
    x = np.r_[5.0, 5.0, 5.0, 5.0, np.arange(12.0) / 10]
    y = np.r_[0.0, 1.0, 10.0, 11.0, np.arange(12.0) / 100]
    overlaps = []
    for seed in range(400):
        r = V.rank_statistics(x, y, n_boot=1, n_perm=1, top_k=2, seed=seed)
        overlaps.append(r["overlap"])
    assert r["note"] == "top-2 by metric: 2 places decided by random tie-breaking"
    assert set(overlaps) == {0.0, 0.5, 1.0}
    assert np.mean(overlaps) == pytest.approx(0.5, abs=4 * 0.35 / np.sqrt(400))
    r = V.rank_statistics(x[::-1], y[::-1], n_boot=1, n_perm=1, top_k=6)   # 4 above, 2 by ties
    assert r["note"] == ""                             # the tie group lies wholly inside the top 6


def test_adjusted_p_values_match_statsmodels_and_scipy():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(10)
    p = np.r_[rng.uniform(0, 0.05, 10), rng.uniform(0, 1, 60), [0.0, 1.0, 0.02, 0.02]]
    for method, sm_method in (("holm", "holm"), ("bh", "fdr_bh")):
        np.testing.assert_allclose(V.adjust_p(p, method), multitest.multipletests(
            p, method=sm_method)[1], rtol=1e-12, atol=0)
    np.testing.assert_allclose(V.adjust_p(p, "bh"), stats.false_discovery_control(p), rtol=1e-12)
    with_nan = np.r_[np.nan, p[:9], np.nan]
    adjusted = V.adjust_p(with_nan, "holm")
    assert np.isnan(adjusted[[0, -1]]).all()
    np.testing.assert_allclose(adjusted[1:-1], multitest.multipletests(p[:9], method="holm")[1])
    assert np.isnan(V.adjust_p([np.nan, np.nan], "bh")).all()
    with pytest.raises(SettingsError, match=r"method 'bonferroni' is unknown; rule: 'holm' or"):
        V.adjust_p(p, "bonferroni")


def test_validity_table_adjusts_over_the_whole_table():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    ds = _store(np.random.default_rng(5))
    ds["amplitude"] = ds.amplitude.where(ds.dataset != "b", 0.5).assign_attrs(ds.amplitude.attrs)
    t = V.validity_table(ds, n_boot=50, n_perm=200)
    assert list(t.columns) == [*V.STATS_COLUMNS, *V.ADJUSTED_COLUMNS]
    assert t.loc[("b-128", "amplitude"), "note"].startswith("metric constant")
    assert np.isnan(t.loc[("b-128", "amplitude"), ["p_perm", "p_perm_holm", "p_overlap_bh"]]).all()
    for column in ("p_perm", "p_overlap"):
        ok = t[column].notna()
        assert ok.sum() == 6                           # 8 rows, 2 without a ranking
        for method, sm_method in (("holm", "holm"), ("bh", "fdr_bh")):
            np.testing.assert_allclose(t.loc[ok, f"{column}_{method}"],
                                       multitest.multipletests(t.loc[ok, column], method=sm_method)[1],
                                       rtol=1e-12)
    assert (t["p_perm_holm"].dropna() >= t["p_perm"].dropna()).all()


def _seeded(exponents):
    """Metrics (dataset, seed, network_size, cell, metric): amplitude = 2 N^b_seed in every cell."""
    sizes = np.array([32, 64, 128, 192, 256, 320])
    data = np.full((2, len(exponents), len(sizes), 320, 2), np.nan)
    for s, b in enumerate(exponents):
        for j, n in enumerate(sizes):
            data[:, s, j, :n, 0] = -2.0 * n ** b              # signed: the fit uses |metric|
            data[:, s, j, :n, 1] = 7.0
    return _networks(xr.DataArray(
        data, dims=("dataset", "seed", "network_size", "cell", "metric"),
        coords={"dataset": ["co2", "mnist"], "seed": np.arange(len(exponents)),
                "network_size": sizes, "cell": np.arange(320),
                "metric": ["amplitude", "settling_time"]}))


def test_capacity_table_fits_every_seed_and_across_gives_the_seed_interval():
    exponents = [-0.9, -1.0, -1.15]
    t = C.capacity_table(_seeded(exponents))
    assert list(t.index.names) == ["dataset", "variant", "seed", "metric"]
    for s, b in enumerate(exponents):
        assert t.loc[("mnist", "trained", s, "amplitude"), "exponent"] == pytest.approx(b, abs=1e-12)
        assert t.loc[("co2", "trained", s, "settling_time"), "exponent"] == pytest.approx(0.0,
                                                                                       abs=1e-12)
    a = C.across(t)
    assert list(a.index.names) == ["dataset", "variant", "metric"]
    row = a.loc[("co2", "trained", "amplitude")]
    mean, sd = np.mean(exponents), np.std(exponents, ddof=1)
    half = stats.t.ppf(0.975, 2) * sd / np.sqrt(3)
    assert (row["n"], row["min"], row["max"]) == pytest.approx((3, -1.15, -0.9), rel=1e-12)
    assert (row["mean"], row["std"], row["lo"], row["hi"]) == pytest.approx(
        (mean, sd, mean - half, mean + half), rel=1e-10)
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(exponents, 0).pvalue, rel=1e-10)
    one = C.across(C.capacity_table(_seeded([-1.0])))  # one seed: no spread, no interval
    assert one.loc[("co2", "trained", "amplitude"), "n"] == 1
    assert np.isnan(one.loc[("co2", "trained", "amplitude"), ["std", "lo", "hi", "p_value"]]).all()


def test_across_needs_the_level():
    t = C.capacity_table(schema.metrics(_store(np.random.default_rng(7))))
    with pytest.raises(SettingsError, match=r"not level 'frequency' with column 'exponent'; fix: "
                                            r"fit per frequency first"):
        C.across(t, "frequency")
    with pytest.raises(SettingsError, match=r"confidence=1.0 is out of range"):
        C.across(t, "dataset", confidence=1.0)
