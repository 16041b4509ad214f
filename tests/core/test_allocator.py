"""The server fixes glibc's mmap threshold so freed large buffers go back to the system.

Each probe runs in a fresh interpreter: the threshold is process-wide and one-way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hub.core.allocator import fix_mmap_threshold

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from hub.core.allocator import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    block = bytearray(1_000_000)
    del block  # a freed mmapped block: glibc's dynamic threshold rises past its size
    block = bytearray(1_000_000)
    print(libc.mallinfo2().hblkhd)
    """
)


def mmapped_bytes_after_reallocation(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's allocator",
)


@glibc_only
def test_without_the_fix_a_reallocated_large_block_lands_on_the_heap() -> None:
    # The behaviour the fix exists for: glibc adjusts its threshold after a free.
    assert mmapped_bytes_after_reallocation("default") < 1_000_000


@glibc_only
def test_with_the_fix_large_blocks_stay_mmapped_and_return_to_the_system() -> None:
    assert mmapped_bytes_after_reallocation("fixed") >= 1_000_000


def test_an_operators_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is False
