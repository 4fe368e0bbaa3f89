"""Numba compilation options and work-partition sizes of every kernel, in one place.

``fastmath`` allows only ``contract`` (fused multiply-add: one rounding instead of two, 15-20% faster
LSTM steps on this machine); the other fast-math flags would let LLVM assume no NaN/inf, which breaks
NaN propagation from the stimulus to the output. ``error_model="numpy"`` drops Python's zero-division
checks, which would otherwise prevent the inner (cells) loop from vectorizing.

Note: Numba's on-disk cache (``cache=True``) keys a kernel on its own source file only; after editing
``kernels/_math.py`` or this file delete ``kernels/__pycache__`` so the CPU kernel is recompiled.
"""

#: Options of scalar helpers (activations, one-cell steps) shared by the CPU and CUDA kernels.
JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}

#: Options of the CPU-parallel kernel.
PARALLEL = {**JIT, "parallel": True}

#: Options of the streaming-metric code (:mod:`kernels.cpu_metrics`): no ``contract``, so that every
#: product is rounded before it is summed, exactly as NumPy's analyzers do (the simulation steps it
#: calls keep their own flags, so the trajectory is bitwise that of the simulation kernel).
EXACT = {"cache": True, "nogil": True, "error_model": "numpy"}

#: Options of the CPU-parallel streaming-metric kernels.
PARALLEL_EXACT = {**EXACT, "parallel": True}

#: Cells per parallel work item of the CPU kernel (the vectorized inner loop runs over them).
BLOCK_CELLS = 128

#: Time steps buffered per block before the transposed write-out to the (cell, stimulus, time) output:
#: each cell then gets 256 contiguous bytes per write-out (16 steps: 64 bytes, 1.6x slower at n = 8192).
BLOCK_STEPS = 64

#: Most bytes of one block's record (T x BLOCK_CELLS samples) that the streaming-metric kernel keeps
#: between its two passes over time (read back from cache instead of simulating again: 1.3-2x faster
#: at T = 1000); longer records are simulated again.
REPLAY_BYTES = 4 * 2**20

#: Threads per CUDA block (one thread per (cell, stimulus)).
CUDA_THREADS = 128
