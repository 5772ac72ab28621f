"""Process-wide memory settings, applied before the heavy libraries start their threads."""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``); returns False where libc is not glibc.

    glibc gives each thread its own arena. In the film pipeline, frames allocated by one thread
    and freed by another fragment those arenas and resident memory creeps up over a long film
    (measured: 947 MiB after 1,000 frames, 1,126 MiB after 10,000; with 2 arenas from the start
    of the process: 647 MiB after 10,000). It must run before other threads start.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(count)))
    except (OSError, AttributeError):
        return False
