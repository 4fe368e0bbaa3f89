"""Built-in analyzers against analytic ground truth, python-control and NumPy references."""

from __future__ import annotations

import math

import control
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import periodogram

from testbench import analyzers
from testbench.analyzers import periodic
from testbench.analyzers.periodic import sine_response
from testbench.analyzers.step import step_response
from testbench.stimuli.composite import delay
from testbench.stimuli.periodic import sine
from testbench.stimuli.steps import step
from testbench.errors import SettingsError
from testbench.nodes import registry

STEP_METRICS = ["initial_response", "final_response", "delta_response", "settling_time"]


def lag(u, p):
    """First-order lag y_t = y_{t-1} + (1 - p)(u_t - y_{t-1}), at rest (y_0 = u_1) before t = 1.

    An isolated LSTM cell with constant gates i = 1 - f, o such that h ~ c (small c), and
    g linear in the input reduces to this; ``u`` is (..., T), ``p`` broadcasts against (...).
    """
    u = np.asarray(u, dtype=float)
    p = np.asarray(p, dtype=float)
    y = np.empty(np.broadcast_shapes(u.shape, p.shape + (1,)))
    prev = np.broadcast_to(u[..., 0], y.shape[:-1]).copy()
    for t in range(u.shape[-1]):
        prev = prev + (1 - p) * (u[..., t] - prev)
        y[..., t] = prev
    return y


def second_order(u, r, theta):
    """Unit-gain resonator, poles r e^{+-j theta}: y_t = a1 y_{t-1} + a2 y_{t-2} + b u_t."""
    a1, a2 = 2 * r * math.cos(theta), -r * r
    b = 1 - a1 - a2
    y = np.zeros(len(u))
    for t in range(len(u)):
        y[t] = b * u[t] + a1 * (y[t - 1] if t >= 1 else 0) + a2 * (y[t - 2] if t >= 2 else 0)
    return y


def as_response(y, stim):
    return xr.DataArray(y, dims=stim.dims, coords=stim.coords)


def test_importing_the_package_registers_every_analyzer():
    assert analyzers.__name__ == "testbench.analyzers"
    specs = registry()
    assert specs["step_response"].kind == specs["sine_response"].kind == "analyzer"


def test_output_contract():
    x = step(length_steps=100, dt=0.5)
    out = step_response(as_response(lag(x.values, 0.5), x), x)
    assert out.name == "step_response" and out.dims == ("metric",)
    assert out["metric"].values.tolist() == STEP_METRICS
    assert out["units"].values.tolist() == ["1", "1", "1", "time unit"]
    assert set(out.attrs["definitions"]) == set(STEP_METRICS)
    s = sine_response(as_response(lag(sine(length_steps=100).values, 0.5), x), x)
    assert s["metric"].values.tolist() == ["amplitude", "frequency", "correlation",
                                           "correlation_normalized", "correlation_per_sample"]
    assert s["units"].values.tolist() == ["1", "cycles per time unit", "1", "1", "1"]


# (1) a first-order lag has settling time n* = ceil(ln b / ln p) - 1 steps after the input change:
# the k-th post-onset sample (k = 0, 1, ...) is 1 - p^(k+1) of the way, inside the band of
# half-width b |delta| from k = n* on. The analyzer matches it to the step, stronger than atol = dt.
@pytest.mark.parametrize("p", [0.5, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("dt", [0.01, 1.0, 2.5])
@pytest.mark.parametrize("baseline, amplitude", [(0.0, 1.0), (0.5, -2.0)])
@pytest.mark.parametrize("band_frac", [0.1, 0.02])
def test_first_order_lag_settling_time(p, dt, baseline, amplitude, band_frac):
    x = step(length_steps=5000, dt=dt, onset_steps=500, baseline=baseline, amplitude=amplitude)
    out = step_response(as_response(lag(x.values, p), x), x, band_frac=band_frac)
    n_star = math.ceil(math.log(band_frac) / math.log(p)) - 1
    np.testing.assert_allclose(out.sel(metric="settling_time"), n_star * dt, rtol=1e-12)
    np.testing.assert_allclose(out.sel(metric=["initial_response", "final_response",
                                               "delta_response"]),
                               [baseline, baseline + amplitude, amplitude], atol=1e-12)


def test_instantaneous_response_settles_in_zero():
    x = step(length_steps=50, dt=0.3)
    assert step_response(as_response(2 * x.values, x), x).sel(metric="settling_time") == 0.0


def test_windows_average_the_documented_samples():
    x = step(length_steps=100, onset_steps=40)  # the input changes at index 40
    out = step_response(as_response(np.arange(1.0, 101.0), x), x, window_frac=0.05)
    # initial: last ceil(0.05 * 40) = 2 samples before index 40 (values 39, 40);
    # final: last ceil(0.05 * 100) = 5 samples (values 96..100)
    np.testing.assert_array_equal(out.sel(metric=["initial_response", "final_response"]),
                                  [39.5, 98.0])


def test_transient_before_the_onset_does_not_count():
    # a cell that ignores its input but starts away from its fixed point (h0 != 0)
    x = step(length_steps=1000, dt=0.5)
    y = 0.5 + 0.5 * 0.5 ** np.arange(1000)
    out = step_response(as_response(y, x), x)
    np.testing.assert_array_equal(out, [0.5, 0.5, 0.0, 0.0])


def test_a_sample_on_the_band_edge_is_inside():
    x = step(length_steps=20, dt=2.0, onset_steps=10)
    y = np.r_[np.zeros(10), [0.75] * 3, np.ones(7)]  # |0.75 - 1| = 0.25 |delta| exactly
    out = step_response(as_response(y, x), x, band_frac=0.25)
    assert out.sel(metric="settling_time").item() == 0.0
    assert step_response(as_response(y, x), x, band_frac=0.2).sel(metric="settling_time") == 6.0


# (2) a first-order lag driven by a sine exactly on the periodogram grid: the frequency is exact and
# the peak-to-peak amplitude is 2 A |H(e^{j w})|, less at most the sampling loss 1 - cos(w / 2).
@pytest.mark.parametrize("p, dt, k", [(0.8, 0.5, 37), (0.5, 1.0, 5), (0.95, 0.1, 120)])
def test_lag_under_sine_amplitude_and_frequency(p, dt, k):
    T, A = 2000, 1.5
    n = T // 2  # steady_frac = 0.5
    f = k / (n * dt)
    x = sine(length_steps=T, dt=dt, frequency=f, amplitude=A)
    out = sine_response(as_response(lag(x.values, p), x), x)
    w = 2 * np.pi * f * dt
    gain = abs((1 - p) / (1 - p * np.exp(-1j * w)))
    assert out.sel(metric="frequency").item() == pytest.approx(f, rel=1e-12)
    pp = out.sel(metric="amplitude").item()
    transient = 2 * p ** (T - n)
    assert 2 * A * gain * math.cos(w / 2) - transient <= pp <= 2 * A * gain + transient


@pytest.mark.parametrize("n", [2, 3, 4, 7, 64, 65, 500, 999, 1000, 1024])
def test_peak_bin_is_the_argmax_of_scipys_periodogram(n):
    """The NumPy periodogram peak (no scipy.signal import at run time) is SciPy's bin, and the
    frequency metric therefore SciPy's exactly: noise, sines on and off the grid, a Nyquist tone
    (the one bin SciPy does not double)."""
    rng = np.random.default_rng(n)
    t = np.arange(n)
    records = np.concatenate([
        rng.standard_normal((40, n)) * rng.uniform(1e-3, 1e3, (40, 1)) + rng.uniform(-5, 5, (40, 1)),
        np.sin(2 * np.pi * rng.uniform(0, 0.5, (20, 1)) * t) + 0.3 * rng.standard_normal((20, n)),
        np.cos(np.pi * t)[None] * 1.2 + np.sin(2 * np.pi * (n // 3) / n * t)[None],
    ])
    _, pxx = periodogram(records, fs=1.0, detrend="constant", axis=-1)
    expected = pxx[..., 1:].argmax(-1) + 1
    np.testing.assert_array_equal(periodic.peak_bin(records), expected)
    # the broadcast, strided steady-state views the analyzer passes
    view = np.broadcast_to(records[:1], (3, n))[..., n // 2:]
    if view.shape[-1] >= 2:
        _, pxx = periodogram(view, fs=1.0, detrend="constant", axis=-1)
        np.testing.assert_array_equal(periodic.peak_bin(view), pxx[..., 1:].argmax(-1) + 1)


def test_correlations_match_numpy():
    rng = np.random.default_rng(0)
    x = sine(length_steps=300, frequency=0.03)
    y = lag(x.values, 0.7) + 0.1 * rng.standard_normal(300)
    out = sine_response(as_response(y, x), x)
    xv = x.values
    ref = np.sum((xv - xv.mean()) * (y - y.mean()))
    np.testing.assert_allclose(out.sel(metric="correlation"), ref, rtol=1e-12)
    np.testing.assert_allclose(out.sel(metric="correlation_normalized"),
                               np.corrcoef(xv, y)[0, 1], rtol=1e-12)


def _systems(dt):
    """Post-onset responses to a unit step of a table of reference systems."""
    u = np.ones(3000)
    return [lag(u, 0.6), lag(u, 0.93), 3 * lag(u, 0.85), -lag(u, 0.9),
            second_order(u, 0.9, 0.3), second_order(u, 0.97, 0.1), 0.4 * second_order(u, 0.8, 1.0)]


# (3) with band_reference='final' the analyzer is python-control's step_info on the post-onset
# segment: with a one-sample final window against step_info's default (last sample), and with the
# default window against step_info given the same final value.
@pytest.mark.parametrize("dt", [0.1, 1.0])
def test_final_reference_agrees_with_python_control(dt):
    onset = 200
    for y_post in _systems(dt):
        T = onset + len(y_post)
        x = step(length_steps=T, dt=dt, onset_steps=onset)
        resp = as_response(np.r_[np.zeros(onset), y_post], x)
        tpost = np.arange(len(y_post)) * dt
        one = step_response(resp, x, band_reference="final", window_frac=1e-9)
        ref = control.step_info(sysdata=y_post, T=tpost, SettlingTimeThreshold=0.1)
        np.testing.assert_allclose(one.sel(metric="settling_time"), ref["SettlingTime"],
                                   rtol=1e-12)
        default = step_response(resp, x, band_reference="final")
        final = default.sel(metric="final_response").item()
        ref = control.step_info(sysdata=y_post, T=tpost, SettlingTimeThreshold=0.1,
                                final_output=final)
        np.testing.assert_allclose(default.sel(metric="settling_time"), ref["SettlingTime"],
                                   rtol=1e-12)


# (4) undefined metrics are NaN, never exceptions
def test_never_settling_response_is_nan():
    x = step(length_steps=400, onset_steps=100)
    t = np.arange(400)
    y = np.where(t >= 100, np.sin(0.3 * t), 0.0)  # oscillates forever after the onset
    out = step_response(as_response(y, x), x)
    assert np.isnan(out.sel(metric="settling_time"))
    assert np.isfinite(out.sel(metric=["initial_response", "final_response"])).all()


def test_nan_in_gives_nan_out_per_record_only():
    x = step(length_steps=200)
    y = np.stack([lag(x.values, 0.8), lag(x.values, 0.8), np.full(200, np.nan)])
    y[1, 150] = np.nan
    resp = xr.DataArray(y, dims=("cell", "time"))
    for out in (step_response(resp, x), sine_response(resp, x)):
        assert np.isfinite(out.isel(cell=0)).all()
        assert np.isnan(out.isel(cell=[1, 2])).all()
    xs = x.copy(data=np.where(np.arange(200) == 3, np.nan, x.values))
    assert np.isnan(step_response(resp.isel(cell=0), xs)).all()


def test_constant_stimulus_or_response():
    x = step(length_steps=100)
    flat_x = x.copy(data=np.zeros(100))
    out = step_response(as_response(lag(x.values, 0.5), x), flat_x)
    assert np.isnan(out.sel(metric=["initial_response", "delta_response", "settling_time"])).all()
    assert out.sel(metric="final_response") == pytest.approx(1.0)
    flat = step_response(as_response(np.full(100, 0.1), x), x)  # the cell ignores its input
    np.testing.assert_allclose(flat.sel(metric=["delta_response", "settling_time"]), [0, 0],
                               atol=1e-15)
    s = sine_response(as_response(np.full(100, 0.1), x), x)
    assert s.sel(metric="amplitude") == 0 and s.sel(metric="correlation") == 0
    assert s.sel(metric="correlation_per_sample") == 0
    assert np.isnan(s.sel(metric=["frequency", "correlation_normalized"])).all()


def test_mismatched_or_undated_inputs_are_refused():
    x = step(length_steps=100)
    with pytest.raises(SettingsError, match=r"step_response: the response has 99 steps but the "
                                            r"stimulus has 100.*fix: connect the stimulus"):
        step_response(xr.DataArray(np.zeros(99), dims="time"), x)
    bare = xr.DataArray(x.values, dims="time", name="mine")
    with pytest.raises(SettingsError, match=r"sine_response: input 'stimulus' \('mine'\) has no "
                                            r"sample interval.*fix: connect a stimulus node"):
        sine_response(xr.DataArray(np.zeros(100), dims="time"), bare)
    with pytest.raises(SettingsError,
                       match=r"input 'response' has dims \('cell',\) without 'time'"):
        step_response(xr.DataArray(np.zeros(100), dims="cell"), x)


# (5) and (6): sweep dims broadcast, dask chunking does not change anything
def _batch():
    """Response (cell, frequency, time) of lags with different p to a sine swept over frequency."""
    freqs = [0.01, 0.02, 0.05]
    x = xr.concat([sine(length_steps=400, dt=0.5, frequency=f) for f in freqs], dim="frequency")
    x = x.assign_coords(frequency=freqs)
    p = np.linspace(0.1, 0.95, 5)[:, None]
    y = lag(x.values[None], p)
    y[2, 1] = np.nan
    resp = xr.DataArray(y, dims=("cell", "frequency", "time"),
                        coords={"cell": np.arange(5), "frequency": freqs})
    return resp, x


@pytest.mark.parametrize("node", [step_response, sine_response])
def test_extra_dims_broadcast_like_separate_records(node):
    resp, x = _batch()
    out = node(resp, x)
    assert out.dims == ("cell", "frequency", "metric")
    for c in range(5):
        for f in range(3):
            single = node(resp.isel(cell=c, frequency=f), x.isel(frequency=f))
            xr.testing.assert_identical(out.isel(cell=c, frequency=f), single)


@pytest.mark.parametrize("node", [step_response, sine_response])
@pytest.mark.parametrize("chunks", [{"cell": 2}, {"cell": 1, "frequency": 2},
                                    {"cell": 3, "time": 100}])
def test_dask_chunks_give_identical_results(node, chunks):
    resp, x = _batch()
    eager = node(resp, x)
    lazy = node(resp.chunk(chunks), x)
    assert isinstance(lazy.data, da.Array)
    xr.testing.assert_identical(lazy.compute(), eager)


# (7) delaying the stimulus onset and the response equally changes no metric
@settings(max_examples=40, deadline=None)
@given(p=st.floats(0.2, 0.97), onset=st.integers(5, 150), shift=st.integers(0, 150),
       dt=st.sampled_from([0.05, 1.0, 3.0]), band_frac=st.sampled_from([0.1, 0.05]),
       reference=st.sampled_from(["delta", "final"]))
def test_delaying_the_onset_changes_no_metric(p, onset, shift, dt, band_frac, reference):
    x = step(length_steps=2000, dt=dt, onset_steps=onset)
    xd = delay(x, steps=shift)
    kwargs = {"band_frac": band_frac, "band_reference": reference}
    out = step_response(as_response(lag(x.values, p), x), x, **kwargs)
    out_d = step_response(as_response(lag(xd.values, p), xd), xd, **kwargs)
    assert out.sel(metric="settling_time").item() == out_d.sel(metric="settling_time").item()
    np.testing.assert_allclose(out_d, out, rtol=1e-12, atol=1e-15)


# (8) the per-sample correlation (the paper's Table 1 units): for a linear cell y = g x + c,
# sum_t (x - mean x)(y - mean y) = g sum_t (x - mean x)^2, and / T it is g times the stimulus's
# variance: g A^2 / 2 for a sine over whole periods. Definition 5's correlation stays T times it.
@pytest.mark.parametrize("g, c", [(0.7, 0.0), (-1.3, 0.25), (2.0, -4.0)])
@pytest.mark.parametrize("T, f, dt, A", [(400, 0.05, 1.0, 1.0), (1000, 0.3, 0.1, 2.5)])
def test_per_sample_correlation_of_a_linear_cell(g, c, T, f, dt, A):
    x = sine(length_steps=T, dt=dt, frequency=f, amplitude=A)   # 20 and 30 whole periods
    out = sine_response(as_response(g * x.values + c, x), x)
    xc = x.values - x.values.mean()
    assert out.sel(metric="correlation_per_sample").item() == pytest.approx(
        g * np.sum(xc * xc) / T, rel=1e-12)
    assert out.sel(metric="correlation_per_sample").item() == pytest.approx(g * A ** 2 / 2,
                                                                            rel=1e-9)
    assert out.sel(metric="correlation").item() == pytest.approx(g * A ** 2 / 2 * T, rel=1e-9)
    assert out.sel(metric="correlation_normalized").item() == pytest.approx(np.sign(g), rel=1e-12)


def test_per_sample_correlation_does_not_grow_with_the_record():
    # a first-order lag under a sine: the per-sample value converges as T grows, Definition 5's
    # correlation grows with T (the reason the paper's Table 1 cannot be in its units)
    per_sample, total = [], []
    for T in (2000, 4000, 8000):
        x = sine(length_steps=T, frequency=0.02)
        out = sine_response(as_response(lag(x.values, 0.8), x), x)
        per_sample.append(out.sel(metric="correlation_per_sample").item())
        total.append(out.sel(metric="correlation").item())
    w = 2 * np.pi * 0.02
    h = (1 - 0.8) / (1 - 0.8 * np.exp(-1j * w))     # steady state: y = |H| sin(w t + arg H)
    np.testing.assert_allclose(per_sample, 0.5 * h.real, rtol=1e-2)
    np.testing.assert_allclose(np.array(total) / [2000, 4000, 8000], per_sample, rtol=1e-12)


# (9) settling bands of other conventions, on a continuous first-order lag y = c + a (1 - e^{-t/tau})
# sampled every dt from the input change. Band b relative to the step (delta = a): the response is
# inside from t = tau ln(1 / b); relative to the final value c + a: from tau ln(|a| / (b |c + a|)).
# The analyzer counts whole samples, so it reports that time rounded up to the grid: [t_s, t_s + dt).
@pytest.mark.parametrize("band_frac, band_reference", [(0.02, "final"), (0.01, "final"),
                                                       (0.02, "delta"), (0.1, "delta")])
@pytest.mark.parametrize("tau, dt", [(5.0, 0.1), (3.0, 1.0), (40.0, 0.7)])
@pytest.mark.parametrize("c, a", [(0.0, 1.0), (0.5, -2.0), (1.0, 1.0)])
def test_continuous_lag_settles_at_tau_ln_one_over_band(band_frac, band_reference, tau, dt, c, a):
    onset, T = 50, 50 + math.ceil(40 * tau / dt)       # e^{-40} ~ 4e-18: settled to rounding
    x = step(length_steps=T, dt=dt, onset_steps=onset)
    i0 = int(np.argmax(x.values != x.values[0]))
    t = np.maximum(np.arange(T) - i0, 0) * dt
    y = c + a * (1 - np.exp(-t / tau))
    out = step_response(as_response(y, x), x, band_frac=band_frac, band_reference=band_reference)
    ref = abs(a) if band_reference == "delta" else abs(c + a)
    t_s = tau * math.log(abs(a) / (band_frac * ref))
    got = out.sel(metric="settling_time").item()
    assert t_s <= got < t_s + dt
    assert got == pytest.approx(math.ceil(t_s / dt) * dt, rel=1e-12)


def test_default_of_python_control_step_info_is_two_percent_of_final():
    dt, onset = 0.1, 200
    for y_post in _systems(dt):
        x = step(length_steps=onset + len(y_post), dt=dt, onset_steps=onset)
        resp = as_response(np.r_[np.zeros(onset), y_post], x)
        out = step_response(resp, x, band_frac=0.02, band_reference="final", window_frac=1e-9)
        ref = control.step_info(sysdata=y_post, T=np.arange(len(y_post)) * dt)
        np.testing.assert_allclose(out.sel(metric="settling_time"), ref["SettlingTime"],
                                   rtol=1e-12)
