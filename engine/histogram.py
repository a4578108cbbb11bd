"""Log-linear latency histogram that a nogil kernel can record into (HDR layout).

Values below 2**(SUB_BITS+1) ns get exact buckets; above, each power of two is split
into 2**SUB_BITS linear buckets, so any recorded value is known to within
1 / 2**SUB_BITS (0.4 %), as an HdrHistogram with ~2.5 significant digits.  Values
beyond 2**MAX_BITS ns (~18 min) land in the last bucket.  Python turns the counts into
an ``hdrhistogram.HdrHistogram`` for percentiles, merging and reporting.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SUB_BITS = 8
SUB = 1 << SUB_BITS                  # linear buckets per power of two
EXACT = SUB * 2                      # values [0, EXACT) are exact
MAX_BITS = 40
N_BUCKETS = EXACT + (MAX_BITS - SUB_BITS - 1) * SUB
HIGHEST = (1 << MAX_BITS) - 1


@njit(nogil=True, inline="always")
def bucket_of(v):
    if v < EXACT:
        return v if v > 0 else 0
    if v > HIGHEST:
        v = HIGHEST
    e = 1
    while (v >> e) >= EXACT:
        e += 1
    return EXACT + (e - 1) * SUB + ((v >> e) - SUB)


@njit(nogil=True, inline="always")
def hist_record(hist, v):
    hist[bucket_of(v)] += 1


def new_hist() -> np.ndarray:
    return np.zeros(N_BUCKETS, dtype=np.int64)


def bucket_bounds(idx: int) -> tuple[int, int]:
    """Inclusive value range of bucket ``idx``."""
    if idx < EXACT:
        return idx, idx
    e = (idx - EXACT) // SUB + 1
    sub = (idx - EXACT) % SUB + SUB
    return sub << e, ((sub + 1) << e) - 1


def to_hdr(hist: np.ndarray, highest: int = 3_600_000_000_000, digits: int = 3):
    """An ``HdrHistogram`` holding the counts (each at its bucket's midpoint)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, highest, digits)
    for idx in np.flatnonzero(hist):
        lo, hi = bucket_bounds(int(idx))
        h.record_value(min((lo + hi) // 2, highest), int(hist[idx]))
    return h


def percentiles(hist: np.ndarray, pcts=(50.0, 99.0, 99.9)) -> dict[str, int]:
    """p50/p99/p99.9/max (ns) of a bucket array, via HdrHistogram; zeros when empty."""
    keys = {50.0: "p50", 99.0: "p99", 99.9: "p999", 99.99: "p9999"}
    total = int(hist.sum())
    out = {"count": total}
    if total == 0:
        out.update({keys.get(p, str(p)): 0 for p in pcts})
        out["max"] = 0
        return out
    h = to_hdr(hist)
    for p in pcts:
        out[keys.get(p, str(p))] = int(h.get_value_at_percentile(p))
    out["max"] = int(h.get_max_value())
    return out
