"""Built-in analyzer nodes; importing the package registers them all.

===========  ======================================================
module       nodes
===========  ======================================================
step         ``step_response``: initial, final, delta response, settling time
periodic     ``sine_response``: amplitude, frequency, correlation
frequency    ``frequency_response``: gain, phase lag, DC offset (Bode view)
===========  ======================================================
"""

from testbench.analyzers import frequency, periodic, step

__all__ = ["frequency", "periodic", "step"]
