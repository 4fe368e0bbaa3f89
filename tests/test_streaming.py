"""Streaming step/sine metrics (kernels.stream_metrics) against the analyzers on stored responses.

The streaming kernels reproduce the analyzers' operations in the same order (NumPy's pairwise sums,
rounded products, the same comparisons), so the comparison is bitwise for float64 and float32 alike
(float32 responses are summed in float64 by both).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from testbench import kernels
from testbench.analyzers.periodic import _sine_core
from testbench.analyzers.step import _step_core
from testbench.kernels.streaming import _pairwise_plan, stream_metrics

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
STEP = {"window_frac": 0.05, "band_frac": 0.1, "band_reference": "delta", "band_floor": 1e-12}
SINE = {"steady_frac": 0.5}


def problem(cell_type, dtype, n, T, onsets, seed=0, scale=1.0):
    """Random cells; stimuli: one step per onset, then a sine with an offset."""
    rng = np.random.default_rng(seed)
    params = [(scale * rng.normal(0, 1, (n, GATES[cell_type]))).astype(dtype) for _ in range(4)]
    t = np.arange(T)
    steps = [0.3 + 0.7 * (t >= onset) for onset in onsets]
    x = np.stack([*steps, 0.2 + np.sin(2 * np.pi * 0.013 * t)]).astype(dtype)
    return params, x


def assert_same(got, ref):
    """Bitwise equal, NaN where the reference is NaN."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~np.isnan(ref)], ref[~np.isnan(ref)])


def reference(cell_type, params, x, dt, step, sine, h0=0.0, c0=0.0):
    h = kernels.simulate(cell_type, *params, x, h0=h0, c0=c0)
    with np.errstate(all="ignore"):
        return _step_core(h, x, dt, **step), _sine_core(h, x, dt, **sine)


@pytest.mark.parametrize("replay", ["kept", "simulated_again"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", sorted(GATES))
def test_stream_equals_analyzers(cell_type, dtype, replay, monkeypatch):
    from testbench.kernels import _config

    if replay == "simulated_again":  # the second pass simulates again instead of reading back
        monkeypatch.setattr(_config, "REPLAY_BYTES", 0)
    # 300 cells: two full 128-cell blocks and a partial one; T = 1000 spans several pairwise leaves
    params, x = problem(cell_type, dtype, 300, 1000, onsets=[1, 400, 999])
    dt = np.array([0.1, 0.25, 1.0, 0.5])
    got = stream_metrics(cell_type, *params, x, dt=dt, step=STEP, sine=SINE, h0=0.1, c0=-0.2)
    ref_step, ref_sine = reference(cell_type, params, x, dt, STEP, SINE, h0=0.1, c0=-0.2)
    assert got["step_response"].shape == (300, 4, 4)
    assert np.isfinite(ref_step[:, 1]).any() and np.isfinite(ref_sine).any()
    assert_same(got["step_response"], ref_step)
    assert_same(got["sine_response"], ref_sine)


@pytest.mark.parametrize("band_reference", ["delta", "final"])
def test_stream_settings_and_no_onset(band_reference):
    params, x = problem("lstm", np.float64, 130, 257, onsets=[100])
    x[1] = 0.5  # a constant stimulus: no onset, constant for the correlation
    step = {**STEP, "window_frac": 1.0, "band_frac": 0.02, "band_reference": band_reference}
    sine = {"steady_frac": 1 / 257}  # one steady sample: no frequency
    got = stream_metrics("lstm", *params, x, dt=0.3, step=step, sine=sine)
    ref_step, ref_sine = reference("lstm", params, x, 0.3, step, sine)
    assert np.isnan(ref_step[:, 1, 0]).all() and np.isnan(ref_sine[..., 1]).all()
    assert_same(got["step_response"], ref_step)
    assert_same(got["sine_response"], ref_sine)


def test_stream_nan_policy():
    params, x = problem("gru", np.float64, 200, 300, onsets=[150])
    params[0][3, 1] = np.nan  # a padded cell
    x = np.concatenate([x, x[:1]])
    x[2, 10] = np.nan  # a stimulus with a NaN sample
    got = stream_metrics("gru", *params, x, step=STEP, sine=SINE)
    ref_step, ref_sine = reference("gru", params, x, 1.0, STEP, SINE)
    for name, ref in [("step_response", ref_step), ("sine_response", ref_sine)]:
        assert np.isnan(got[name][3]).all() and np.isnan(got[name][:, 2]).all()
        assert np.isfinite(got[name][0, 0, :2]).all()
        assert_same(got[name], ref)


def test_stream_only_one_analyzer():
    params, x = problem("rnn_tanh", np.float32, 50, 200, onsets=[20])
    only_step = stream_metrics("rnn_tanh", *params, x, step=STEP)
    only_sine = stream_metrics("rnn_tanh", *params, x, sine=SINE)
    both = stream_metrics("rnn_tanh", *params, x, step=STEP, sine=SINE)
    assert set(only_step) == {"step_response"} and set(only_sine) == {"sine_response"}
    assert_same(only_step["step_response"], both["step_response"])
    assert_same(only_sine["sine_response"], both["sine_response"])


def test_stream_rejects_bad_dt():
    params, x = problem("rnn_relu", np.float64, 4, 10, onsets=[5])
    with pytest.raises(ValueError, match=r"dt has shape \(3,\).*scalar or one value per stimulus"):
        stream_metrics("rnn_relu", *params, x, dt=np.ones(3), step=STEP)


@pytest.mark.parametrize("length", [1, 7, 8, 9, 127, 128, 129, 255, 1000, 4099])
def test_pairwise_plan_reproduces_numpy_sum(length):
    rng = np.random.default_rng(length)
    a = rng.normal(size=length) * 10.0 ** rng.uniform(-4, 4, size=length)
    lens, pops = [], []
    _pairwise_plan(length, lens, pops)
    assert sum(lens) == length and max(lens) <= 128
    stack, at = [], 0
    for n_leaf, n_pops in zip(lens, pops):
        leaf = a[at:at + n_leaf]
        at += n_leaf
        if n_leaf < 8:
            total = 0.0
            for v in leaf:
                total += v
        else:
            r = list(leaf[:8])
            full = n_leaf - n_leaf % 8
            for i in range(8, full):
                r[i % 8] += leaf[i]
            total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            for v in leaf[full:]:
                total += v
        stack.append(total)
        for _ in range(n_pops):
            right = stack.pop()
            stack[-1] += right
    assert len(stack) == 1 and stack[0] == a.sum()


@settings(max_examples=25, deadline=None)
@given(cell_type=st.sampled_from(sorted(GATES)), dtype=st.sampled_from([np.float32, np.float64]),
       n=st.integers(1, 140), T=st.integers(2, 400), seed=st.integers(0, 2**16),
       scale=st.floats(0.1, 3.0), onset_frac=st.floats(0.0, 1.0),
       window_frac=st.floats(0.01, 1.0), band_frac=st.floats(0.01, 0.5),
       band_reference=st.sampled_from(["delta", "final"]), steady_frac=st.floats(0.01, 1.0),
       dt=st.floats(0.01, 10.0))
def test_stream_property(cell_type, dtype, n, T, seed, scale, onset_frac, window_frac, band_frac,
                         band_reference, steady_frac, dt):
    params, x = problem(cell_type, dtype, n, T, onsets=[int(onset_frac * T)], seed=seed,
                        scale=scale)
    step = {**STEP, "window_frac": window_frac, "band_frac": band_frac,
            "band_reference": band_reference}
    sine = {"steady_frac": steady_frac}
    got = stream_metrics(cell_type, *params, x, dt=dt, step=step, sine=sine)
    ref_step, ref_sine = reference(cell_type, params, x, dt, step, sine)
    assert_same(got["step_response"], ref_step)
    assert_same(got["sine_response"], ref_sine)


ENGINE_GRAPH = """
output: {out}
save_responses: {save}
nodes:
  step:
    type: step
    settings: {{length_steps: 150, dt: 0.5}}
    sweep: {{onset_steps: [1, 40, 149]}}
  sine:
    type: sine
    settings: {{length_steps: 130}}
    sweep: {{frequency: [0.05, 0.2], dt: [0.5, 1.0]}}
  step_cells:
    type: lstm_cells
    inputs: [step]
    settings: {{weights: {weights}, chunk_cells: 4, chunk_points: 2, dtype: {dtype}}}
  sine_cells:
    type: lstm_cells
    inputs: [sine]
    settings: {{weights: {weights}, chunk_cells: 4, chunk_points: 3, dtype: {dtype}}}
  step_metrics:
    type: step_response
    inputs: {{response: step_cells, stimulus: step}}
    settings: {{band_reference: final, band_frac: 0.02}}
  sine_metrics:
    type: sine_response
    inputs: {{response: sine_cells, stimulus: sine}}
    settings: {{steady_frac: 0.3}}
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_engine_streams_metrics_identically(tmp_path, lstm_file, monkeypatch, dtype):
    # streamed, saved (response and metrics) and stored-response runs give identical metrics
    from testbench import streaming
    from testbench.engine import run
    from testbench.graph import load_graph

    real = kernels.simulate
    calls = []

    def recording(*args, **kwargs):
        calls.append("metrics" if kwargs.get("metrics") else "response")
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "simulate", recording)

    def run_graph(name, save):
        text = ENGINE_GRAPH.format(out=tmp_path / name, save=save, weights=lstm_file, dtype=dtype)
        calls.clear()
        out = run(load_graph("g.yaml", text=text), progress=False, scheduler="synchronous")
        return xr.open_zarr(out).load(), set(calls)

    streamed, streamed_calls = run_graph("streamed.zarr", "false")
    saved, saved_calls = run_graph("saved.zarr", "true")
    with streaming.disabled():
        stored, stored_calls = run_graph("stored.zarr", "false")
    assert streamed_calls == {"metrics"} and stored_calls == {"response"}
    assert saved_calls == {"response"}  # the response is stored anyway: simulated once, not twice
    assert np.isfinite(streamed.settling_time).any() and np.isfinite(streamed.frequency).any()
    xr.testing.assert_identical(streamed.drop_attrs(deep=False), stored.drop_attrs(deep=False))
    metrics = list(stored.data_vars)
    xr.testing.assert_identical(saved[metrics].drop_attrs(deep=False),
                                stored.drop_attrs(deep=False))


def test_simulate_metrics_needs_cpu_without_traces():
    params, x = problem("lstm", np.float64, 3, 10, onsets=[5])
    with pytest.raises(ValueError, match=r"metrics are computed on the CPU without traces.*"
                                         r"traces=True"):
        kernels.simulate("lstm", *params, x, traces=True, metrics={"step": STEP})


def test_stream_analyzer_stimulus_of_another_dtype():
    # a float32 DUT driven by a float64 stimulus: onsets and stimulus terms from the float64 one
    params, x64 = problem("gru", np.float32, 130, 300, onsets=[100])
    x64 = x64.astype(np.float64) + 1e-9  # not representable in float32
    x32 = x64.astype(np.float32)
    got = stream_metrics("gru", *params, x32, step=STEP, sine=SINE, stimulus=x64)
    h = kernels.simulate("gru", *params, x32)
    with np.errstate(all="ignore"):
        assert_same(got["step_response"], _step_core(h, x64, 1.0, **STEP))
        assert_same(got["sine_response"], _sine_core(h, x64, 1.0, **SINE))
    with pytest.raises(ValueError, match=r"stimulus has shape \(1, 300\); it must be the records"):
        stream_metrics("gru", *params, x32, step=STEP, stimulus=x64[:1])


def test_stream_frequency_independent_of_chunking(monkeypatch):
    # the steady parts go through the FFT in chunks of 128 cells here, all 300 at once in the
    # analyzer: the same bins
    from testbench.kernels import streaming

    monkeypatch.setattr(streaming, "STEADY_BYTES", 1)
    params, x = problem("rnn_relu", np.float64, 300, 512, onsets=[100], scale=0.7)
    got = stream_metrics("rnn_relu", *params, x, dt=0.5, sine=SINE)
    _, ref = reference("rnn_relu", params, x, 0.5, STEP, SINE)
    assert np.isfinite(ref[:, :, 1]).sum() > 100
    assert_same(got["sine_response"], ref)
