"""Numeric kernels: isolated-cell simulation of LSTM, GRU and vanilla RNN cells (CPU and CUDA).

Imports only numpy and numba. ``kernels.cuda`` is imported on first use of ``backend="cuda"``; no GPU
is detected at import time.
"""

from testbench.kernels.cells import GATES, TRACES, BackendUnavailable, isolate, simulate
from testbench.kernels.streaming import stream_metrics

__all__ = ["GATES", "TRACES", "BackendUnavailable", "isolate", "simulate", "stream_metrics"]
