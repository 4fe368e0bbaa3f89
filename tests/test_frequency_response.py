"""frequency_response (Bode view) against closed forms and a NumPy FFT reference; fig_bode."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.signal import lfilter

from testbench import schema
from testbench.analyzers.frequency import frequency_response
from testbench.bode import fig_bode
from testbench.engine import build, run
from testbench.errors import SettingsError
from testbench.graph import load_graph
from testbench.nodes import registry
from testbench.report import ReportError
from testbench.stimuli.composite import delay
from testbench.stimuli.periodic import sine

FREQUENCIES = [0.013, 0.05, 0.11, 0.37, 0.83]  # cycles per time unit, below Nyquist 1/(2 dt) = 1


def swept_sine(frequencies, **settings) -> xr.DataArray:
    """A sine swept over ``frequency`` as the engine builds it (a dim with a coordinate)."""
    parts = [sine(frequency=f, **settings) for f in frequencies]
    return xr.concat(parts, dim=xr.DataArray(frequencies, dims="frequency", name="frequency"),
                     combine_attrs="drop_conflicts")


def first_order_lag(x: np.ndarray, a: float) -> np.ndarray:
    """``y_t = a y_{t-1} + (1 - a) x_t`` from rest, along the last axis."""
    return lfilter([1 - a], [1, -a], x, axis=-1)


def as_response(y, stim: xr.DataArray) -> xr.DataArray:
    return xr.DataArray(y, dims=stim.dims, coords=stim.coords)


def fft_reference(y: np.ndarray, x: np.ndarray, k: int) -> dict:
    """Gain, phase lag, DC and fundamental fraction from the np.fft cross-spectrum at bin k."""
    Y, X = np.fft.rfft(y), np.fft.rfft(x)
    H = Y[k] * np.conj(X[k]) / abs(X[k]) ** 2
    yc = y - y.mean()
    return {"gain": abs(H), "phase_lag": -np.degrees(np.angle(H)), "dc_offset": y.mean(),
            "fundamental_fraction": 2 * abs(Y[k]) ** 2 / (len(y) * (yc @ yc))}


def test_registered_with_documented_settings():
    spec = registry()["frequency_response"]
    assert spec.kind == "analyzer"
    assert set(spec.settings) == {"steady_frac", "amplitude_floor"}
    assert all(s.doc for s in spec.settings.values())


@pytest.mark.parametrize("a", [0.5, 0.9, 0.97])
def test_first_order_lag_gain_and_phase_at_five_frequencies(a):
    dt = 0.5
    x = swept_sine(FREQUENCIES, length_steps=4000, dt=dt, amplitude=2.0)
    out = frequency_response(as_response(first_order_lag(x.values, a), x), x)
    w = 2 * np.pi * np.array(FREQUENCIES) * dt
    H = (1 - a) / (1 - a * np.exp(-1j * w))
    np.testing.assert_allclose(out.sel(metric="gain"), np.abs(H), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out.sel(metric="phase_lag"), -np.degrees(np.angle(H)), rtol=0,
                               atol=1e-6)
    np.testing.assert_allclose(out.sel(metric="fundamental_fraction"), 1, atol=1e-9)
    assert out["units"].sel(metric=["gain", "phase_lag"]).values.tolist() == ["1", "degree"]
    assert "'frequency' coordinate" in out.attrs["definitions"]["gain"]


@pytest.mark.parametrize("k, f, dt, lag_deg", [
    (3, 0.02, 1.0, 21.6), (7, 0.05, 0.5, 63.0), (12, 0.11, 0.25, 118.8),
    (15, 0.05, 1.0, -90.0),  # 270 degrees wraps into (-180, 180]
])
def test_pure_delay_lags_360_f_k_dt(k, f, dt, lag_deg):
    x = sine(length_steps=1000, dt=dt, frequency=f)
    out = frequency_response(as_response(delay(x, steps=k).values, x), x)
    assert out.sel(metric="gain").item() == pytest.approx(1, abs=1e-9)
    assert out.sel(metric="phase_lag").item() == pytest.approx(lag_deg, abs=1e-6)
    assert (360 * f * k * dt - lag_deg) % 360 == pytest.approx(0, abs=1e-9)


def test_identity_has_gain_one_phase_zero_and_the_offset_as_dc():
    x = sine(length_steps=333, dt=0.3, frequency=0.7, amplitude=1.5, phase=0.4, offset=-0.25)
    out = frequency_response(as_response(x.values, x), x)
    np.testing.assert_allclose(out.sel(metric=["gain", "phase_lag", "dc_offset",
                                               "fundamental_fraction"]), [1, 0, -0.25, 1],
                               atol=1e-9)


@pytest.mark.parametrize("steady_frac", [1.0, 0.5, 0.25])
def test_matches_numpy_fft_cross_spectrum_at_the_exact_bin(steady_frac):
    rng = np.random.default_rng(3)
    T, dt, k = 1200, 0.5, 9
    n = int(steady_frac * T)
    x = sine(length_steps=T, dt=dt, frequency=k / (n * dt), offset=0.2)
    # a nonlinear, lagged response: harmonics and an offset, so all four metrics are non-trivial
    y = np.tanh(1.5 * first_order_lag(x.values, 0.8) + 0.3) + 0.01 * np.sin(
        2 * np.pi * 3 * k / n * np.arange(T) + rng.uniform(0, 6))
    y[: T - n] = rng.normal(size=T - n)  # outside the steady-state window: must not count
    out = frequency_response(as_response(y, x), x, steady_frac=steady_frac)
    ref = fft_reference(y[T - n:], x.values[T - n:], k)
    for name, value in ref.items():
        assert out.sel(metric=name).item() == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert 0.9 < ref["fundamental_fraction"] < 1


def test_frequency_from_the_dft_when_the_stimulus_does_not_carry_it():
    T, k = 800, 8  # 8 whole periods in the last half
    x = sine(length_steps=T, frequency=k / (T / 2))
    y = first_order_lag(x.values, 0.9)
    known = frequency_response(as_response(y, x), x)
    bare = x.copy()
    bare.attrs = {"dt": 1.0}
    found = frequency_response(as_response(y, bare), bare)
    xr.testing.assert_allclose(found.drop_vars("units"), known.drop_vars("units"), atol=1e-9)
    assert "largest DFT bin" in found.attrs["definitions"]["phase_lag"]
    # not whole periods: the DFT bin misses f (leakage), the known frequency stays exact
    x = sine(length_steps=T, frequency=(k + 0.5) / (T / 2))
    bare = x.copy()
    bare.attrs = {"dt": 1.0}
    y = first_order_lag(x.values, 0.9)
    H = 0.1 / (1 - 0.9 * np.exp(-2j * np.pi * x.attrs["frequency"]))
    exact = frequency_response(as_response(y, x), x).sel(metric="gain").item()
    leaky = frequency_response(as_response(y, bare), bare).sel(metric="gain").item()
    assert exact == pytest.approx(abs(H), abs=1e-6)
    assert abs(leaky - abs(H)) > 1e-3


def test_non_finite_records_give_nan_and_others_are_untouched():
    x = swept_sine([0.05, 0.1, 0.2], length_steps=500)
    y = first_order_lag(x.values, 0.7)
    resp = as_response(np.stack([y, y, y]), x.expand_dims(cell=3))
    resp[0, 1, 10] = np.nan
    resp[1, 2, -1] = np.inf
    out = frequency_response(resp, x)
    bad = np.isnan(out).all("metric")
    assert bad.values.tolist() == [[False, True, False], [False, False, True],
                                   [False, False, False]]
    np.testing.assert_allclose(out.isel(cell=2), frequency_response(
        as_response(y, x), x).transpose("frequency", "metric"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunks", [{"cell": 1}, {"cell": 2, "frequency": 1}])
def test_dask_chunks_give_identical_results(chunks):
    x = swept_sine([0.03, 0.07, 0.3], length_steps=300, dt=0.5)
    y = np.stack([first_order_lag(x.values, a) for a in (0.2, 0.6, 0.95)])
    resp = as_response(y, x.expand_dims(cell=3))
    lazy = frequency_response(resp.chunk(chunks), x)
    assert lazy.chunks is not None
    # equal to rounding: BLAS sums a block of rows in an order that depends on the block size
    xr.testing.assert_allclose(lazy.compute(), frequency_response(resp, x), rtol=1e-12, atol=1e-15)


def test_constant_or_undefined_records():
    x = sine(length_steps=400, frequency=0.05)
    flat = frequency_response(as_response(np.full(400, 0.3), x), x)
    assert flat.sel(metric="gain").item() == pytest.approx(0, abs=1e-12)
    assert flat.sel(metric="dc_offset").item() == pytest.approx(0.3)
    assert np.isnan(flat.sel(metric=["phase_lag", "fundamental_fraction"])).all()
    still = xr.DataArray(np.zeros(400), dims="time", attrs={"dt": 1.0})  # no frequency to find
    assert np.isnan(frequency_response(as_response(np.ones(400), still), still)).all()
    fast = x.copy()
    fast.attrs["frequency"] = 0.5  # at Nyquist: sin vanishes on the sample grid
    assert np.isnan(frequency_response(as_response(x.values, fast), fast)).all()
    short = frequency_response(as_response(x.values[:4], x.isel(time=slice(0, 4))),
                               x.isel(time=slice(0, 4)), steady_frac=0.5)
    assert np.isnan(short).all()  # 2 samples cannot fix sin, cos and a constant


def test_non_numeric_frequency_is_refused():
    x = sine(length_steps=100)
    x.attrs["frequency"] = "fast"
    with pytest.raises(SettingsError, match=r"frequency_response: the stimulus's attrs\["
                       r"'frequency'\] of input 'stimulus' \('sine'\) holds \['fast'\].*fix:"):
        frequency_response(as_response(x.values, x), x)


GRAPH = """
nodes:
  sine:
    type: sine
    settings: {{length_steps: 800, dt: 1.0, amplitude: 0.05}}
    sweep: {{frequency: [0.01, 0.025, 0.05, 0.1, 0.25]}}
  step:
    type: step
    settings: {{length_steps: 400, dt: 1.0}}
  sine_cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: {weights}}}
  step_cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: {weights}}}
  bode:
    type: frequency_response
    inputs: {{response: sine_cells, stimulus: sine}}
  step_metrics:
    type: step_response
    inputs: {{response: step_cells, stimulus: step}}
"""


def test_lstm_sweep_through_a_graph(lstm_file):
    res = build(load_graph("g.yaml", text=GRAPH.format(weights=lstm_file)))
    assert res.dataset.gain.chunks is not None  # lazy until computed
    assert res.dataset.gain.dims == ("network", "cell", "frequency")
    assert res.dataset.settling_time.dims == ("network", "cell")  # no sweep it does not depend on
    m = schema.metrics(res.dataset, ["gain", "phase_lag", "fundamental_fraction"])
    assert m.dims == ("network", "cell", "metric", "frequency")
    np.testing.assert_array_equal(m["frequency"], [0.01, 0.025, 0.05, 0.1, 0.25])
    m = m.load()
    gain, lag = m.sel(metric="gain"), m.sel(metric="phase_lag")
    assert gain.shape == (1, 6, 5) and np.isfinite(gain).all() and (gain > 0).all()
    assert ((lag > -180) & (lag <= 180)).all()
    # a small sine keeps the cells near-linear: the sinusoid at f explains the response
    assert (m.sel(metric="fundamental_fraction") > 0.99).all()
    # the FFT reference on the raw responses; 400-sample window, f = k / 400 on the bin grid
    y = res.outputs["sine_cells"].compute()
    x = res.outputs["sine"]
    for f, k in zip([0.01, 0.025, 0.05, 0.1, 0.25], [4, 10, 20, 40, 100]):
        for cell in range(6):
            yy = y.sel(frequency=f).isel(cell=cell).squeeze().values[400:]
            ref = fft_reference(yy, x.sel(frequency=f).values[400:], k)
            got = m.sel(frequency=f).isel(cell=cell).squeeze()
            assert got.sel(metric="gain").item() == pytest.approx(ref["gain"], rel=1e-9)
            assert got.sel(metric="phase_lag").item() == pytest.approx(ref["phase_lag"],
                                                                       abs=1e-7)


def test_fig_bode_from_a_lazily_opened_store(lstm_file, tmp_path):
    out = tmp_path / "bode.zarr"
    run(load_graph("g.yaml", text=GRAPH.format(weights=lstm_file)), output=str(out),
        progress=False)
    ds = xr.open_zarr(out)
    fig = fig_bode(ds)
    gain_ax, phase_ax, colorbar = fig.axes
    assert gain_ax.get_xscale() == gain_ax.get_yscale() == "log"
    assert "gain" in gain_ax.get_ylabel()
    assert phase_ax.get_ylabel() == "phase lag [degree]"
    assert phase_ax.get_xlabel() == "stimulus frequency [cycles per step]"  # dt = 1: in steps
    assert colorbar.get_ylabel() == "settling time [steps] (grey: never settles)"
    assert len(gain_ax.lines) == 6
    fig.savefig(tmp_path / "bode.png")  # renders with the Agg canvas
    assert (tmp_path / "bode.png").stat().st_size > 0


def test_fig_bode_without_settling_time_and_on_bad_input():
    x = swept_sine([0.02, 0.05, 0.1], length_steps=300)
    resp = as_response(np.stack([first_order_lag(x.values, a) for a in (0.5, 0.9)]),
                       x.expand_dims(cell=2))
    fig = fig_bode(frequency_response(resp, x))
    assert len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["gain (response / stimulus amplitude)",
                                                    "phase lag [degree]"]
    assert fig.axes[1].get_xlabel() == "stimulus frequency [cycles per time unit]"
    with pytest.raises(ReportError, match=r"fig_bode: metrics \['gain'\] not found .*fix:"):
        fig_bode(frequency_response(resp, x).sel(metric=["phase_lag"]))
    with pytest.raises(ReportError, match=r"without a 'frequency' sweep.*fix:"):
        fig_bode(frequency_response(resp.isel(frequency=0), x.isel(frequency=0)))
