"""eventstereo: live stereo depth from event cameras with spiking neural networks."""

__version__ = "0.1.0"
