"""Cache-line placement: arrays that start on a 64-byte boundary.

Control blocks (ring head/tail, writer stop/heartbeat) keep the words of different
threads on different cache lines by their offsets (multiples of 8 int64); that only
holds when word 0 sits at the start of a line.  ``np.zeros`` gives 16-byte alignment,
so the blocks are allocated here instead.  ``tests/platform/test_layout.py`` checks
the ownership of every line.
"""

from __future__ import annotations

import numpy as np

CACHE_LINE = 64


def aligned_empty(shape, dtype=np.int64, align: int = CACHE_LINE) -> np.ndarray:
    """An uninitialised C-contiguous array whose first element is ``align``-aligned."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dt.itemsize + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n * dt.itemsize].view(dt).reshape(shape)


def aligned_zeros(shape, dtype=np.int64, align: int = CACHE_LINE) -> np.ndarray:
    """Zeroed and with every page touched (so the hot path takes no page fault)."""
    a = aligned_empty(shape, dtype, align)
    a.fill(0)
    return a


def line_of(arr: np.ndarray, flat_index: int) -> int:
    """Cache-line number (address // 64) of element ``flat_index`` of a C array."""
    return (arr.ctypes.data + flat_index * arr.itemsize) // CACHE_LINE
