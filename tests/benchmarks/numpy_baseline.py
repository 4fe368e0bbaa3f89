"""The script a user would write instead of testbench: the baseline of the whole-process benchmark.

Step and sine metrics of every isolated cell of a PyTorch LSTM layer (a ``.pt`` state_dict), for
a step at 32 amplitudes and a sine at 32 frequencies, T = 1000, float64, in plain vectorized NumPy:
one loop over time, every cell and stimulus at once. For a 1024-cell LSTM that is
1024 x 64 x 1000 = 6.5e7 cell-steps, the sweep of issue #12. The metrics follow the definitions of
testbench's ``step_response`` and ``sine_response`` analyzers with their default settings
(``test_bench_whole.py`` checks that they agree to 1e-9). Run:

    python tests/benchmarks/numpy_baseline.py MODEL.pt -o RESULT.npz
    python tests/benchmarks/numpy_baseline.py --make-model MODEL.pt   # the 1024-cell model

It imports neither testbench nor SciPy, as a user's script would not need them; its own
``graph_text`` gives the testbench graph that computes the same metrics.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

T = 1000
DT = 1.0
AMPLITUDES = np.round(np.linspace(0.1, 2.0, 32), 6)
FREQUENCIES = np.round(np.linspace(0.005, 0.4, 32), 6)  # cycles per step, below Nyquist (0.5)


def make_model(path: str, cells: int = 1024, inputs: int = 3, seed: int = 0) -> None:
    """Save a ``torch.nn.LSTM(inputs, cells)`` state_dict with seeded N(0, 1/2) weights at ``path``
    (larger than torch's default init, so that cells settle at different speeds)."""
    import torch  # here, not at the top: collecting the test suite would pay ~2 s for it

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(inputs, cells)
    with torch.no_grad():
        for p in lstm.parameters():
            p.normal_(0.0, 0.5)
    torch.save(lstm.state_dict(), path)


def load_cells(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isolated-cell parameters of layer 0, float64, each ``(4, N)`` (gates i, f, g, o): input
    weight with every input channel driven (row sums of ``W_ih``), self weight (diagonal of each
    gate block of ``W_hh``) and summed bias."""
    import torch

    sd = torch.load(path, weights_only=True)
    w_ih = sd["weight_ih_l0"].double().numpy()
    w_hh = sd["weight_hh_l0"].double().numpy()
    n = w_hh.shape[1]
    a = w_ih.sum(axis=1).reshape(4, n)
    r = np.stack([np.diagonal(w_hh[k * n:(k + 1) * n]) for k in range(4)])
    b = (sd["bias_ih_l0"].double().numpy() + sd["bias_hh_l0"].double().numpy()).reshape(4, n)
    return a, r, b


def stimuli(amplitudes=AMPLITUDES, frequencies=FREQUENCIES, length: int = T, dt: float = DT):
    """Steps ``A * 1[t > T/2]`` and sines ``sin(2 pi f t dt)``, t = 1..T: two ``(S, T)`` arrays."""
    t = np.arange(1, length + 1)
    steps = np.asarray(amplitudes, dtype=np.float64)[:, None] * (t > length // 2)
    sines = np.sin(2 * np.pi * np.asarray(frequencies, dtype=np.float64)[:, None] * t * dt)
    return steps, sines


def sigmoid(z):
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def simulate(a, r, b, x) -> np.ndarray:
    """Responses ``h`` of every cell to every stimulus: ``(N, S, T)`` from ``x (S, T)``."""
    n, (s, length) = a.shape[1], x.shape
    a, r, b = a[:, :, None], r[:, :, None], b[:, :, None]  # (4, N, 1) against (N, S)
    h = np.zeros((n, s))
    c = np.zeros((n, s))
    out = np.empty((n, s, length))
    for t in range(length):
        z = a * x[None, None, :, t] + r * h + b  # (4, N, S)
        i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
        c = f * c + i * g
        h = o * np.tanh(c)
        out[:, :, t] = h
    return out


def step_metrics(y, x, dt: float = DT) -> np.ndarray:
    """``(N, S, 4)``: initial, final, delta response and settling time (5 % windows, 10 % band of
    |delta|, band floor 1e-12) of responses ``y (N, S, T)`` to steps ``x (S, T)``."""
    length = y.shape[-1]
    onset = int(np.argmax(x[0] != x[0, 0]))  # all steps change at the same sample
    initial = y[..., onset - math.ceil(0.05 * onset):onset].mean(-1)
    final = y[..., length - math.ceil(0.05 * length):].mean(-1)
    delta = final - initial
    band = np.maximum(0.1 * np.abs(delta), 1e-12)
    outside = np.abs(y - final[..., None]) > band[..., None]
    outside[..., :onset] = False
    last = length - 1 - outside[..., ::-1].argmax(-1)
    settling = np.where(outside.any(-1), last + 1 - onset, 0) * dt
    settling = np.where(outside[..., -1], np.nan, settling)
    return np.stack([initial, final, delta, settling], axis=-1)


def sine_metrics(y, x, dt: float = DT) -> np.ndarray:
    """``(N, S, 5)``: amplitude (peak-to-peak of the last half), frequency (periodogram peak of the
    last half, DC excluded), correlation, Pearson's r and correlation / T of ``y (N, S, T)`` with
    ``x (S, T)``."""
    length = y.shape[-1]
    n = math.ceil(0.5 * length)
    steady = y[..., length - n:]
    amplitude = steady.max(-1) - steady.min(-1)
    spectrum = np.fft.rfft(steady - steady.mean(-1, keepdims=True), axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    power[..., 1:(n + 1) // 2] *= 2  # one-sided: every bin but DC and Nyquist counts twice
    frequency = np.where(amplitude > 0, (power[..., 1:].argmax(-1) + 1) / (n * dt), np.nan)
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    correlation = (xc * yc).sum(-1)
    r = correlation / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    return np.stack([amplitude, frequency, correlation, r, correlation / length], axis=-1)


STEP_METRICS = ("initial_response", "final_response", "delta_response", "settling_time")
SINE_METRICS = ("amplitude", "frequency", "correlation", "correlation_normalized",
                "correlation_per_sample")


def characterize(path: str, amplitudes=AMPLITUDES, frequencies=FREQUENCIES,
                 length: int = T) -> dict[str, np.ndarray]:
    """Every metric of every cell: ``{"step": (N, len(amplitudes), 4), "sine": (N,
    len(frequencies), 5)}`` in the order of :data:`STEP_METRICS` and :data:`SINE_METRICS`."""
    a, r, b = load_cells(path)
    steps, sines = stimuli(amplitudes, frequencies, length)
    return {"step": step_metrics(simulate(a, r, b, steps), steps),
            "sine": sine_metrics(simulate(a, r, b, sines), sines)}


def graph_text(model: str, output: str, amplitudes=AMPLITUDES, frequencies=FREQUENCIES,
               length: int = T, dtype: str = "float64") -> str:
    """The testbench graph computing the same metrics; no sine nodes when ``frequencies`` is
    empty."""
    dut = f"{{weights: '{model}', dtype: {dtype}}}"
    sweeps = {"step": ("amplitude", amplitudes), "sine": ("frequency", frequencies)}
    nodes = []
    for kind, (setting, values) in sweeps.items():
        if len(values) == 0:
            continue
        nodes.append(f"""\
  {kind}:
    type: {kind}
    settings: {{length_steps: {length}, dt: {DT}}}
    sweep: {{{setting}: {[float(v) for v in values]}}}
  {kind}_cells:
    type: lstm_cells
    inputs: [{kind}]
    settings: {dut}
  {kind}_metrics:
    type: {kind}_response
    inputs: {{response: {kind}_cells, stimulus: {kind}}}
""")
    return f"output: '{output}'\nnodes:\n" + "".join(nodes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a .pt file holding an nn.LSTM state_dict")
    p.add_argument("-o", "--output", help="write the metrics here (.npz)")
    p.add_argument("--make-model", action="store_true",
                   help="write the benchmark's 1024-cell LSTM to MODEL instead")
    p.add_argument("--cells", type=int, default=1024, help="cells of --make-model")
    args = p.parse_args(argv)
    if args.make_model:
        make_model(args.model, cells=args.cells)
        return 0
    result = characterize(args.model)
    if args.output:
        np.savez(args.output, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
