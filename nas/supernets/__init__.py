"""Task supernets built on nas.space: the stereo supernet (stereo.py)."""
