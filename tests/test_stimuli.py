"""Built-in stimuli: exact analytic samples, reproducibility, composites and their checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import xarray as xr

from testbench import stimuli
from testbench.stimuli.composite import add, concat, delay, multiply
from testbench.stimuli.noise import white_noise
from testbench.stimuli.periodic import chirp, sine, square
from testbench.stimuli.steps import impulse, ramp, step
from testbench.errors import SettingsError
from testbench.nodes import registry


def sweep(func, name, values, **settings):
    """What the engine does for a swept setting: one call per value, concatenated on a new dim."""
    parts = [func(**settings, **{name: v}) for v in values]
    return xr.concat(parts, dim=pd.Index(values, name=name), combine_attrs="drop_conflicts")


def test_importing_the_package_registers_every_stimulus():
    assert stimuli.__name__ == "testbench.stimuli"
    kinds = {name: spec.kind for name, spec in registry().items()}
    for name in ("step", "impulse", "ramp", "sine", "square", "chirp", "white_noise", "add",
                 "multiply", "concat", "delay"):
        assert kinds[name] == "stimulus", name


def test_common_contract():
    x = sine(length_steps=7, dt=0.5, frequency=0.1, amplitude=2.0)
    assert x.name == "sine" and x.dims == ("time",) and x.dtype == np.float64
    np.testing.assert_array_equal(x["time"].values, np.arange(1, 8))
    assert x.attrs["units"] == "1" and x.attrs["dt"] == 0.5 and x.attrs["description"]
    assert x.attrs["frequency"] == 0.1 and x.attrs["amplitude"] == 2.0


@pytest.mark.parametrize("phase, offset, expected", [
    (0.0, 0.0, [1, 0, -1, 0, 1, 0, -1, 0]),
    (np.pi / 2, 0.0, [0, -1, 0, 1, 0, -1, 0, 1]),
    (0.0, 3.0, [4, 3, 2, 3, 4, 3, 2, 3]),
])
def test_sine_exact_samples(phase, offset, expected):
    # f = 0.125 per time unit, dt = 2: 2 pi f t dt = pi t / 2
    x = sine(length_steps=8, dt=2.0, frequency=0.125, phase=phase, offset=offset)
    np.testing.assert_allclose(x.values, expected, atol=1e-12)


def test_sine_and_chirp_refuse_frequencies_at_or_above_nyquist():
    with pytest.raises(SettingsError, match=r"sine: setting 'frequency' = 0\.25 cycles per time "
                                            r"unit is at or above the Nyquist frequency .* = "
                                            r"0\.25 for dt = 2\.0.*fix: use frequency < 0\.25"):
        sine(dt=2.0, frequency=0.25)
    with pytest.raises(SettingsError, match=r"chirp: setting 'f1' = 0\.6"):
        chirp(f1=0.6)


@pytest.mark.parametrize("onset, baseline, amplitude",
                         [(None, 0.0, 1.0), (3, 0.5, -2.0), (9, 0, 1)])
def test_step_is_baseline_up_to_onset_then_baseline_plus_amplitude(onset, baseline, amplitude):
    x = step(length_steps=10, onset_steps=onset, baseline=baseline, amplitude=amplitude).values
    t0 = 5 if onset is None else onset
    assert np.all(x[:t0] == baseline)
    assert np.all(x[t0:] == baseline + amplitude)
    assert step(length_steps=10, onset_steps=onset).attrs["onset_steps"] == t0


def test_step_onset_must_leave_samples_after_it():
    with pytest.raises(SettingsError, match=r"step: setting 'onset_steps' = 10 is not before the "
                                            r"end of the record \(length_steps = 10\).*fix: use "
                                            r"onset_steps <= 9"):
        step(length_steps=10, onset_steps=10)


def test_impulse_is_the_first_difference_of_the_step():
    kwargs = {"length_steps": 12, "onset_steps": 4, "amplitude": 3.0}
    s, i = step(**kwargs).values, impulse(**kwargs).values
    np.testing.assert_array_equal(i, np.diff(s, prepend=0.0))
    assert np.flatnonzero(i).tolist() == [4]  # step t = 5, index 4


def test_ramp_exact_samples():
    x = ramp(length_steps=6, dt=0.5, onset_steps=2, baseline=1.0, slope=4.0).values
    np.testing.assert_allclose(x, [1, 1, 3, 5, 7, 9])


def test_square_exact_samples():
    x = square(length_steps=8, frequency=0.125, duty=0.25, amplitude=2.0, offset=1.0).values
    # cycles at t = 1..8: 1/8, 2/8, ..., 0 -> +A while cycle < 0.25
    np.testing.assert_array_equal(x, [3, -1, -1, -1, -1, -1, -1, 3])


@pytest.mark.parametrize("method, scipy_method", [("linear", "linear"), ("log", "logarithmic")])
def test_chirp_matches_scipy(method, scipy_method):
    T, dt, phase = 800, 0.5, 0.4
    x = chirp(length_steps=T, dt=dt, f0=0.01, f1=0.4, method=method, phase=phase, amplitude=2.0)
    tau = np.arange(1, T + 1) * dt
    ref = 2.0 * scipy.signal.chirp(tau, 0.01, T * dt, 0.4, method=scipy_method,
                                   phi=np.degrees(phase) - 90)
    np.testing.assert_allclose(x.values, ref, atol=1e-11)


@pytest.mark.parametrize("method", ["linear", "log"])
def test_chirp_instantaneous_frequency(method):
    T, dt, f0, f1 = 4000, 0.25, 0.05, 1.0
    x = chirp(length_steps=T, dt=dt, f0=f0, f1=f1, method=method).values
    phase = np.unwrap(np.angle(scipy.signal.hilbert(x)))
    f_inst = np.diff(phase) / (2 * np.pi * dt)  # between steps t and t+1
    tau = (np.arange(1, T) + 0.5) * dt
    s = tau / (T * dt)
    law = f0 + (f1 - f0) * s if method == "linear" else f0 * (f1 / f0) ** s
    middle = slice(T // 4, 3 * T // 4)  # the Hilbert transform is poor at the edges
    np.testing.assert_allclose(f_inst[middle], law[middle], rtol=0.02)


def test_log_chirp_with_equal_frequencies_is_a_sine():
    np.testing.assert_allclose(chirp(length_steps=50, f0=0.1, f1=0.1, method="log").values,
                               sine(length_steps=50, frequency=0.1).values, atol=1e-12)


def test_white_noise_is_reproducible_by_seed():
    a = white_noise(length_steps=5000, seed=3, std=2.0, offset=1.0)
    np.testing.assert_array_equal(a.values, white_noise(length_steps=5000, seed=3, std=2.0,
                                                        offset=1.0).values)
    np.testing.assert_array_equal(
        a.values, 1.0 + 2.0 * np.random.default_rng(3).standard_normal(5000))
    assert not np.array_equal(a.values, white_noise(length_steps=5000, seed=4, std=2.0,
                                                    offset=1.0).values)
    # sample moments within 5 standard errors
    assert abs(a.values.mean() - 1.0) < 5 * 2.0 / np.sqrt(5000)
    assert abs(a.values.std() - 2.0) < 5 * 2.0 / np.sqrt(2 * 5000)


def test_add_and_multiply_step_by_step():
    a = sine(length_steps=20, dt=0.5, frequency=0.3)
    b = step(length_steps=20, dt=0.5, amplitude=2.0)
    s, p = add(a, b), multiply(a, b)
    np.testing.assert_array_equal(s.values, a.values + b.values)
    np.testing.assert_array_equal(p.values, a.values * b.values)
    assert (s.name, p.name) == ("add", "multiply")
    assert s.attrs["dt"] == p.attrs["dt"] == 0.5 and s.attrs["units"] == p.attrs["units"] == "1"
    np.testing.assert_array_equal(s["time"].values, np.arange(1, 21))


@pytest.mark.parametrize("node", [add, multiply, concat])
def test_composites_refuse_different_dt(node):
    a, b = sine(length_steps=20, dt=0.5), step(length_steps=20, dt=1.0)
    with pytest.raises(SettingsError, match=rf"{node.__name__}: input a \('sine'\) has dt = 0\.5 "
                                            r"but input b \('step'\) has dt = 1\.0.*fix: give both "
                                            r"stimuli the same dt"):
        node(a, b)


@pytest.mark.parametrize("node", [add, multiply])
def test_add_and_multiply_refuse_different_lengths(node):
    with pytest.raises(SettingsError, match=r"input a \('sine'\) has 20 steps but input b "
                                            r"\('step'\) has 30.*fix: give both the same "
                                            r"length_steps"):
        node(sine(length_steps=20), step(length_steps=30))


def test_add_refuses_different_units():
    b = step(length_steps=20)
    b.attrs["units"] = "V"
    with pytest.raises(SettingsError, match=r"add: input a \('sine'\) is in units '1' but input b "
                                            r"\('step'\) in 'V'"):
        add(sine(length_steps=20), b)
    assert multiply(sine(length_steps=20), b).attrs["units"] == "V"


def test_concat_appends_and_renumbers_time():
    a, b = step(length_steps=6, onset_steps=2), ramp(length_steps=4, onset_steps=1, slope=1.0)
    c = concat(a, b)
    assert c.sizes["time"] == 10
    np.testing.assert_array_equal(c["time"].values, np.arange(1, 11))
    np.testing.assert_array_equal(c.values, np.r_[a.values, b.values])


def test_delay_shifts_right_and_fills_with_the_first_value():
    x = ramp(length_steps=8, onset_steps=1, baseline=5.0, slope=1.0)
    y = delay(x, steps=3)
    np.testing.assert_array_equal(y.values, np.r_[[5.0] * 3, x.values[:5]])
    np.testing.assert_array_equal(y["time"].values, x["time"].values)
    assert y.attrs["steps"] == 3 and y.attrs["dt"] == x.attrs["dt"]
    np.testing.assert_array_equal(delay(x, steps=0).values, x.values)
    with pytest.raises(SettingsError, match=r"delay: setting 'steps' = 8 is not shorter than the "
                                            r"input 'ramp' \(8 steps\).*fix: use steps <= 7"):
        delay(x, steps=8)


def test_composites_broadcast_sweep_dims_and_keep_time_last():
    a = sweep(sine, "frequency", [0.05, 0.1, 0.2], length_steps=30)
    b = sweep(step, "amplitude", [1.0, -1.0], length_steps=30)
    s = add(a, b)
    assert s.dims == ("frequency", "amplitude", "time")
    np.testing.assert_array_equal(s.sel(frequency=0.1, amplitude=-1.0).values,
                                  sine(length_steps=30, frequency=0.1).values
                                  + step(length_steps=30, amplitude=-1.0).values)
    c = concat(step(length_steps=5), a)
    assert c.dims == ("frequency", "time") and c.sizes["time"] == 35
    np.testing.assert_array_equal(c.sel(frequency=0.2).values,
                                  np.r_[step(length_steps=5).values,
                                        sine(length_steps=30, frequency=0.2).values])
    d = delay(a, steps=4)
    assert d.dims == ("frequency", "time")
    np.testing.assert_array_equal(d.sel(frequency=0.05).values[4:],
                                  a.sel(frequency=0.05).values[:-4])
    assert np.all(d.values[:, :4] == a.values[:, :1])


def test_composites_refuse_a_shared_sweep_dim_with_different_values():
    a = sweep(sine, "frequency", [0.05, 0.1], length_steps=30)
    b = sweep(sine, "frequency", [0.05, 0.2], length_steps=30)
    with pytest.raises(SettingsError, match=r"add: inputs a \('sine'\) and b \('sine'\) share a "
                                            r"sweep dimension with different values"):
        add(a, b)


def test_swept_dt_is_carried_by_the_coordinate():
    a = sweep(sine, "dt", [0.5, 1.0], length_steps=30, frequency=0.1)
    b = sweep(step, "dt", [0.5, 1.0], length_steps=30)
    assert "dt" not in a.attrs
    s = add(a, b)
    assert "dt" not in s.attrs and s["dt"].values.tolist() == [0.5, 1.0]
    with pytest.raises(SettingsError, match=r"input a \('sine'\) has dt = \[0\.5, 1\.0\] but input "
                                            r"b \('step'\) has dt = 1\.0"):
        add(a, step(length_steps=30))
