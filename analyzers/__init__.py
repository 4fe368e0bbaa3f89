"""Built-in analyzer nodes; importing the package registers them all.

===========  ======================================================
module       nodes
===========  ======================================================
step         ``step_response``: initial, final, delta response, settling time
periodic     ``sine_response``: amplitude, frequency, correlation
===========  ======================================================
"""

from testbench.analyzers import periodic, step

__all__ = ["periodic", "step"]
