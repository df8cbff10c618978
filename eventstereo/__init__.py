"""eventstereo: live stereo depth from event cameras with spiking neural networks."""

import os as _os

# Torch's OpenMP threads spin while they wait for work; when the reader thread, numba, a GUI or another
# process wants the same cores, the spinning threads lose their time slices and a window takes 4-10x
# longer (measured: 0.70 instead of 2.96 windows/s for the bundled model run from Python on 2 busy
# cores). Passive waiting costs nothing measurable alone. Set here, at the package import, so every entry
# point (CLI, GUI, tools, a user's script) gets it before torch loads; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
