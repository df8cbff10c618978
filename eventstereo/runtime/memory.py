"""Keep freed memory in the process, so a streaming loop stops paying page faults for its buffers.

torch's CPU allocator takes large buffers from glibc malloc, which maps each one fresh from the kernel
(mmap) and unmaps it on free: every window the network's multi-megabyte currents, spikes and plane
stacks are faulted in again page by page. Measured on the paper-size network (346x260, one thread)
midway through issue 15: 10-12k minor page faults and 20-23 ms of system time per window by default,
0-570 faults and 0-0.4 ms after ``keep_freed_memory()``. glibc's own adaptive threshold (it follows
freed block sizes up to 32 MiB) sometimes keeps the buffers, sometimes not: measured again on a trained
paper-size model after the inference work (one thread, 10 windows per process), a process by default
settles either at ~100 faults per window or at 11.5k faults and 40 ms of system time per window, run to
run; with this setting 1-430 faults and at most 1.2 ms. Larger inputs, whose buffers exceed 32 MiB,
fault every window without it. `eventstereo stream`, the evaluation tool and the GUI apply it
(``--release-memory`` turns it off for the first two). It tells glibc not to map large blocks separately
(``M_MMAP_MAX = 0``) and not to return freed heap to the kernel (``M_TRIM_THRESHOLD`` 1 GiB): the peak
footprint of one window stays allocated, which for a long-running stream is what it needs anyway.
Process-wide; a no-op (returning False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Apply the malloc settings above; True if glibc accepted them."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
