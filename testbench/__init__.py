"""testbench: declarative response characterization of recurrent network cells.

Declare a graph (stimuli -> devices under test -> analyzers) in YAML, run it with
``testbench run GRAPH``, query the zarr store with xarray. See README.md.
"""

__version__ = "0.1.0"
