"""The models layer: weight format, importers, one :func:`load`, :func:`export`, the zoo, and the
network grid of a run.

=============================  ==================================================================
module                         holds
=============================  ==================================================================
:mod:`.weights`                the testbench HDF5 format: :class:`Network`, :class:`Layer`, save,
                               read, validate
:mod:`.import_torch`           PyTorch modules, state_dicts, ``.pt``/``.pth`` files
:mod:`.import_keras`           Keras legacy HDF5 (``.h5``) and Keras 3 archives (``.keras``)
:mod:`.import_onnx`            ONNX ``LSTM``/``GRU``/``RNN`` operators (``.onnx``)
:mod:`.loading`                :func:`load` (dispatch on the file kind), :func:`export`,
                               :func:`resolve`, :func:`checksum`
:mod:`.zoo`                    the shipped networks (``zoo:<name>``) and their manifest
:mod:`.grid`                   :func:`network_grid`, :class:`NetworkEntry`
:mod:`.testset`                :func:`test_set`: a trained network's test split
=============================  ==================================================================
"""

from testbench.models import zoo
from testbench.models.grid import NetworkEntry, network_grid
from testbench.models.loading import checksum, export, load, resolve, sources
from testbench.models.testset import test_set
from testbench.models.weights import Layer, Network, from_state_dict, save, validate

__all__ = ["Layer", "Network", "NetworkEntry", "checksum", "export", "from_state_dict", "load",
           "network_grid", "resolve", "save", "sources", "test_set", "validate", "zoo"]
