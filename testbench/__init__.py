"""testbench: declarative response characterization of recurrent network cells.

Declare a graph (stimuli -> devices under test -> analyzers) in YAML, run it with
``testbench run GRAPH`` or :func:`testbench.run`, query the zarr store with xarray
(:func:`testbench.open`). See README.md.
"""

__version__ = "0.1.0"

_API = ("load", "run", "open")


def __getattr__(name: str):
    # the API pulls in xarray, dask and the engine: imported on first use, so `testbench --help`
    # and the kernels stay light
    if name in _API:
        from testbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'testbench' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
