"""How the C allocator gives memory back to the system (glibc; elsewhere nothing changes).

A run allocates and frees buffers of a few MB all the time: create bodies, stored segments
of bodies and results, SQLite's copies of them. glibc's defaults keep much of that once
freed: the size above which a buffer is mapped on its own grows to the largest one freed,
so later ones come from heaps that do not shrink, and each busy thread gets a heap of its
own. At 100,000 requests that held ~400 MB where ~200 MB were in use.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

__all__ = ["give_back_freed", "give_back_large_buffers"]

MMAP_THRESHOLD_BYTES = 128 * 1024  #: buffers at least this large are mapped, and unmapped
ARENA_MAX = 1  #: heaps shared by all threads (the GIL serializes most allocation anyway)
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
_M_ARENA_MAX = -8


def give_back_large_buffers() -> None:
    """Fix the mapping threshold and share one heap among threads; best effort, at start."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return
    mallopt(_M_ARENA_MAX, ARENA_MAX)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def give_back_freed() -> None:
    """Return the heap's freed memory to the system now (glibc's malloc_trim), as the
    helper process does between calls: its next call may be hours away. Best effort."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def _glibc(name: str) -> Any | None:
    """The C library's function `name` on Linux; None elsewhere or in a C library
    without it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
