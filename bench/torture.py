"""Shared pieces of the seqlock torture tests and the engine benchmark.

The writer rewrites a book with messages whose every complete state satisfies an
invariant: message k holds n(k) = 1 + k % 20 levels per side, all of size k, bids at
base(k) - i and asks at base(k) + 1 + i.  A reader that ever copies a state breaking
it has seen a torn book."""

import numpy as np
from numba import njit

from engine.atomics import monotonic_ns
from engine.constants import (
    ASK,
    BID,
    F_CLEAR,
    F_END,
    HDR_WORDS,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    REC_FIELDS,
)
from engine.kernels import apply_records
from engine.read import copy_top, top_slot

N_MSGS = 64


def base(k):
    return 1_000_000 + 37 * k


def build_messages(n_books: int):
    recs = []
    bounds = []
    for k in range(1, N_MSGS + 1):
        for b in range(n_books):
            start = len(recs)
            n = 1 + k % 20
            for i in range(n):
                recs.append((b, BID, F_CLEAR if i == 0 else 0, base(k) - i, k, k))
            for i in range(n):
                recs.append((b, ASK, F_END if i == n - 1 else 0, base(k) + 1 + i, k, k))
            bounds.append((start, len(recs)))
    cap = 1
    while cap < len(recs):
        cap *= 2
    data = np.zeros((REC_FIELDS, cap), np.int64)
    for j, (b, s, f, p, q, seq) in enumerate(recs):
        data[R_BOOK, j], data[R_SIDE, j], data[R_FLAGS, j] = b, s, f
        data[R_PRICE, j], data[R_SIZE, j], data[R_SEQ, j] = p, q, seq
    return data, cap - 1, np.array(bounds, np.int64)


@njit(nogil=True, cache=True)
def hammer(hdr, px, sz, data, mask, bounds, duration_ns, hist, stats):
    """Apply the messages round and round for duration_ns; returns messages applied."""
    end = monotonic_ns() + duration_ns
    n = 0
    while monotonic_ns() < end:
        for m in range(bounds.shape[0]):
            apply_records(hdr, px, sz, data, mask, bounds[m, 0], bounds[m, 1], hist, stats)
            n += 1
    return n


@njit(nogil=True, inline="always")
def state_ok(out_px, out_sz, nb, na):
    if nb == 0 and na == 0:
        return True  # not written yet
    k = out_sz[BID, 0]
    n = 1 + k % 20
    if nb != n or na != n:
        return False
    b = 1_000_000 + 37 * k
    for i in range(n):
        if out_sz[BID, i] != k or out_sz[ASK, i] != k:
            return False
        if out_px[BID, i] != b - i or out_px[ASK, i] != b + 1 + i:
            return False
    return True


@njit(nogil=True, cache=True)
def check_reads(hdr, px, sz, n_books, duration_ns):
    """Seqlock-validated reads for duration_ns: returns (reads, torn, distinct states)."""
    out_px = np.zeros((2, 32), np.int64)
    out_sz = np.zeros((2, 32), np.int64)
    out_hdr = np.zeros(HDR_WORDS, np.int64)
    end = monotonic_ns() + duration_ns
    reads = 0
    torn = 0
    changes = 0
    last = -1
    while monotonic_ns() < end:
        for b in range(n_books):
            nb, na = copy_top(hdr, px, sz, b, 32, out_px, out_sz, out_hdr)
            reads += 1
            if not state_ok(out_px, out_sz, nb, na):
                torn += 1
            if out_sz[BID, 0] != last:
                changes += 1
                last = out_sz[BID, 0]
    return reads, torn, changes


@njit(nogil=True, cache=True)
def check_unsynchronised_reads(hdr, px, sz, n_books, duration_ns):
    """The same copy with no seqlock: shows the invariant does catch tearing."""
    out_px = np.zeros((2, 32), np.int64)
    out_sz = np.zeros((2, 32), np.int64)
    end = monotonic_ns() + duration_ns
    reads = 0
    torn = 0
    while monotonic_ns() < end:
        for b in range(n_books):
            h = b * HDR_WORDS
            tb, nb = top_slot(hdr, h, BID, px.shape[2])  # no seqlock: lo/n may tear
            ta, na = top_slot(hdr, h, ASK, px.shape[2])
            for k in range(min(nb, 32)):
                out_px[BID, k] = px[b, BID, tb - k]
                out_sz[BID, k] = sz[b, BID, tb - k]
            for k in range(min(na, 32)):
                out_px[ASK, k] = px[b, ASK, ta - k]
                out_sz[ASK, k] = sz[b, ASK, ta - k]
            reads += 1
            if not state_ok(out_px, out_sz, nb, na):
                torn += 1
    return reads, torn
