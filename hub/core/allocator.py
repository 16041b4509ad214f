"""The C allocator's settings for a long-running server process.

glibc's malloc moves its mmap threshold up each time a large mmapped block is freed (to the
block's size, up to 32 MiB): after that, blocks of that size come from the heap instead. A server
that allocates and frees buffers of every size from tens of KiB up (request bodies, query
results, encoded responses) then grows its heap with free chunks it cannot hand back. Measured
with ``bench/soak.py``: the heap's in-use bytes stayed at 34 MiB while its free bytes grew from
3 to 22 MiB in six minutes, and the process's RSS with them (+2 MiB a minute, never levelling
off). With the threshold fixed at 64 KiB (which also turns the adjustment off), the heap stayed
at 26 MiB with 1 MiB free and RSS was flat. Python's own small-object allocator is unaffected.

Setting ``MALLOC_MMAP_THRESHOLD_`` in the environment overrides this, as glibc documents; on a C
library other than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

MMAP_THRESHOLD_BYTES = 64 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>

log = logging.getLogger(__name__)


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold (and so stop its adjustment). True when it was set here."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False  # the operator's own setting, which glibc read at start-up
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused", threshold_bytes)
    return done


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None  # not glibc
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
