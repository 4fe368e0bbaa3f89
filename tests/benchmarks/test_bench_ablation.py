"""Benchmarks of the ablation pass: batched knock-out variants against a loop over model copies.

Two cases, each with the 128 single-cell knock-outs plus the intact network (129 variants, mode
``mean``) of a shipped 128-cell zoo LSTM, on seeded synthetic inputs of the stated shape:

* ``mnist``: ``zoo:mnist-128`` on 1000 sequences x 28 steps x 28 inputs (pixels uniform in [0, 1]);
* ``forecast``: ``zoo:sp500-128`` on 8 sequences x 200 steps x 1 input (standard normal).

Implementations: ``copies64`` and ``copies32`` (:func:`testbench.ablation.forward_copies`: one
modified copy of the network per variant, each run by :func:`kernels.network.forward`), ``batched64``
and ``batched32`` (:func:`testbench.ablation.forward_variants`), in float64 and float32. Every batched
run is checked against the loop's outputs in the same precision (float64: rtol 1e-10; float32: 1e-5
of the output scale), and the ratio that matters is batched against copies at equal precision.
Compare the means within each group. Run with::

    .venv/bin/pytest tests/benchmarks/test_bench_ablation.py --benchmark-only -m ''
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from testbench import ablation as A
from testbench import models as W

CASES = {"mnist": ("zoo:mnist-128", (1000, 28, 28)), "forecast": ("zoo:sp500-128", (8, 200, 1))}


@functools.cache
def problem(case: str):
    """Network, inputs, mean-mode masks and the model-copy loop's outputs of one case."""
    source, (B, T, m) = CASES[case]
    net = W.load(source)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (B, T, m)) if case == "mnist" else rng.normal(0, 1, (B, T, m))
    mask, offset = A.knockout_masks(net.hidden_size, "mean", values=A.mean_activation(net, x))
    return net, x, mask, offset


@functools.cache
def loop_outputs(case: str, dtype: str) -> np.ndarray:
    return A.forward_copies(*problem(case), dtype=dtype)


@pytest.mark.parametrize("impl", ["copies64", "batched64", "copies32", "batched32"])
@pytest.mark.parametrize("case", list(CASES))
def test_ablation_variants(benchmark, case, impl):
    net, x, mask, offset = problem(case)
    benchmark.group = f"ablation {case}: {len(mask)} variants x {'x'.join(map(str, x.shape))}"
    benchmark.extra_info["variant_steps"] = len(mask) * x.shape[0] * x.shape[1]
    rounds = 2 if case == "mnist" else 3
    dtype = "float64" if impl.endswith("64") else "float32"
    if impl.startswith("copies"):
        out = benchmark.pedantic(A.forward_copies, (net, x, mask, offset), {"dtype": dtype},
                                 rounds=rounds)
        np.testing.assert_array_equal(out, loop_outputs(case, dtype))
        return
    out = benchmark.pedantic(A.forward_variants, (net, x, mask, offset), {"dtype": dtype},
                             rounds=rounds, warmup_rounds=1)
    ref = loop_outputs(case, dtype)
    if dtype == "float64":
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
