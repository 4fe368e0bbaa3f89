"""Built-in stimulus nodes, one module per family; importing the package registers them all.

===========  ======================================================
module       nodes
===========  ======================================================
steps        ``step``, ``impulse``, ``ramp``
periodic     ``sine``, ``square``, ``chirp``
noise        ``white_noise``
composite    ``add``, ``multiply``, ``concat``, ``delay``
===========  ======================================================
"""

from testbench.stimuli import composite, noise, periodic, steps

__all__ = ["composite", "noise", "periodic", "steps"]
