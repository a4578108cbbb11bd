"""Numba-callable, seqlock-validated readers (usable from a strategy's own @njit code).

A side's n levels sit at px[book, side, lo:lo+n], worst first, best at lo+n-1
(n = H_NBID / H_NASK, lo = H_BID_LO / H_ASK_LO; engine.store).  Read both inside
the read section, as these functions do.

Every function copies what it needs inside a read section and retries when a writer
touched the book meanwhile, so the values returned always belong to one published
state of the book.  Prices and sizes are fixed-point int64 (see H_PRICE_DEC).
"""

import numpy as np
from numba import njit

from engine.constants import (
    ASK,
    BID,
    H_BID_LO,
    H_EXCH_SEQ,
    H_EXCH_TS,
    H_NBID,
    H_PRICE_DEC,
    H_RECV_TS,
    H_SIZE_DEC,
    H_STATUS,
    HDR_WORDS,
)
from engine.seqlock import read_begin, read_valid


@njit(nogil=True, inline="always")
def top_slot(hdr, h, side, row):
    """(slot of the best level, level count) of ``side`` of the book whose header
    starts at hdr[h], for a row of ``row`` slots.  A read racing the writer can pair
    one state's lo with another's n; the seqlock check throws that copy away, but the
    indices must stay inside the row meanwhile, so both are clamped (a consistent pair
    never needs it: lo + n <= row)."""
    n = hdr[h + H_NBID + side]
    t = hdr[h + H_BID_LO + side] + n - 1
    if t >= row:
        t = row - 1
    if n > t + 1:
        n = t + 1
    return t, n


@njit(nogil=True, cache=True)
def best(hdr, px, sz, book, side):
    """(price, size, ok) of the best level of ``side``; ok is False when the side is empty."""
    h = book * HDR_WORDS
    row = px.shape[2]
    while True:
        s = read_begin(hdr, book)
        t, n = top_slot(hdr, h, side, row)
        p = 0
        q = 0
        if n > 0:
            p = px[book, side, t]
            q = sz[book, side, t]
        if read_valid(hdr, book, s):
            return p, q, n > 0


@njit(nogil=True, inline="always")
def _touch(hdr, px, sz, book):
    """(bid px, bid size, ask px, ask size, nbid, nask), zeros for an empty side; plain
    loads, to be made inside a read section."""
    h = book * HDR_WORDS
    tb, nb = top_slot(hdr, h, BID, px.shape[2])
    ta, na = top_slot(hdr, h, ASK, px.shape[2])
    bp = bq = ap = aq = 0
    if nb > 0:
        bp = px[book, BID, tb]
        bq = sz[book, BID, tb]
    if na > 0:
        ap = px[book, ASK, ta]
        aq = sz[book, ASK, ta]
    return bp, bq, ap, aq, nb, na


@njit(nogil=True, cache=True)
def bbo(hdr, px, sz, book):
    """(bid px, bid size, ask px, ask size, nbid, nask) read in one section."""
    while True:
        s = read_begin(hdr, book)
        bp, bq, ap, aq, nb, na = _touch(hdr, px, sz, book)
        if read_valid(hdr, book, s):
            return bp, bq, ap, aq, nb, na


@njit(nogil=True, cache=True)
def mid_spread(hdr, px, sz, book):
    """(2 * mid, spread, ok) in price units: 2*mid keeps half-ticks exact."""
    bp, bq, ap, aq, nb, na = bbo(hdr, px, sz, book)
    if nb == 0 or na == 0:
        return 0, 0, False
    return bp + ap, ap - bp, True


@njit(nogil=True, cache=True)
def copy_top(hdr, px, sz, book, n, out_px, out_sz, out_hdr):
    """Copy the top ``n`` levels per side, best first, into out_px/out_sz[2, >=n],
    and the book header into out_hdr[HDR_WORDS].  Returns (nbid, nask) copied."""
    h = book * HDR_WORDS
    while True:
        s = read_begin(hdr, book)
        for k in range(HDR_WORDS):
            out_hdr[k] = hdr[h + k]
        tb, nb = top_slot(out_hdr, 0, BID, px.shape[2])
        ta, na = top_slot(out_hdr, 0, ASK, px.shape[2])
        cb = min(n, nb)
        ca = min(n, na)
        for k in range(cb):
            out_px[BID, k] = px[book, BID, tb - k]
            out_sz[BID, k] = sz[book, BID, tb - k]
        for k in range(ca):
            out_px[ASK, k] = px[book, ASK, ta - k]
            out_sz[ASK, k] = sz[book, ASK, ta - k]
        if read_valid(hdr, book, s):
            return cb, ca


@njit(nogil=True, cache=True)
def last_seq(hdr, book):
    while True:
        s = read_begin(hdr, book)
        v = hdr[book * HDR_WORDS + H_EXCH_SEQ]
        if read_valid(hdr, book, s):
            return v


@njit(nogil=True, cache=True)
def top_levels(hdr, px, sz, book, n, pscale, sscale):
    """Top ``n`` levels per side as one new float64 array [bid px, bid sz, ask px, ask sz]
    (scaled by 1/pscale, 1/sscale; pass 1.0 for exact values as floats) plus
    (nbid, nask, exchange seq, exchange ts, recv ts, status), from one read section.
    Made for the Python view: one call, one allocation."""
    out = np.empty((4, n), np.float64)
    h = book * HDR_WORDS
    while True:
        s = read_begin(hdr, book)
        tb, nb = top_slot(hdr, h, BID, px.shape[2])
        ta, na = top_slot(hdr, h, ASK, px.shape[2])
        nb = min(n, nb)
        na = min(n, na)
        for k in range(nb):
            out[0, k] = px[book, BID, tb - k] / pscale
            out[1, k] = sz[book, BID, tb - k] / sscale
        for k in range(na):
            out[2, k] = px[book, ASK, ta - k] / pscale
            out[3, k] = sz[book, ASK, ta - k] / sscale
        seq = hdr[h + H_EXCH_SEQ]
        ts = hdr[h + H_EXCH_TS]
        recv = hdr[h + H_RECV_TS]
        status = hdr[h + H_STATUS]
        if read_valid(hdr, book, s):
            return out, nb, na, seq, ts, recv, status


@njit(nogil=True, cache=True)
def top_levels_fixed(hdr, px, sz, book, n):
    """As top_levels, exact: one new int64 array [bid px, bid sz, ask px, ask sz]."""
    out = np.empty((4, n), np.int64)
    h = book * HDR_WORDS
    while True:
        s = read_begin(hdr, book)
        tb, nb = top_slot(hdr, h, BID, px.shape[2])
        ta, na = top_slot(hdr, h, ASK, px.shape[2])
        nb = min(n, nb)
        na = min(n, na)
        for k in range(nb):
            out[0, k] = px[book, BID, tb - k]
            out[1, k] = sz[book, BID, tb - k]
        for k in range(na):
            out[2, k] = px[book, ASK, ta - k]
            out[3, k] = sz[book, ASK, ta - k]
        seq = hdr[h + H_EXCH_SEQ]
        ts = hdr[h + H_EXCH_TS]
        recv = hdr[h + H_RECV_TS]
        status = hdr[h + H_STATUS]
        if read_valid(hdr, book, s):
            return out, nb, na, seq, ts, recv, status


@njit(nogil=True, cache=True)
def bbo_status(hdr, px, sz, book):
    """(bid px, bid size, ask px, ask size, nbid, nask, status, recv ts) from one read
    section: a top of book together with whether it can be trusted and how old it is."""
    h = book * HDR_WORDS
    while True:
        s = read_begin(hdr, book)
        bp, bq, ap, aq, nb, na = _touch(hdr, px, sz, book)
        status = hdr[h + H_STATUS]
        recv = hdr[h + H_RECV_TS]
        if read_valid(hdr, book, s):
            return bp, bq, ap, aq, nb, na, status, recv
# float(10**k): exact in float64 for every scale a book may have (0..18 decimals)
POW10 = np.array([float(10**k) for k in range(19)], np.float64)


@njit(nogil=True, inline="always")
def _top_body(hdr, pxw, szw, pbase, sbase, depth, book, out, scaled):
    """Fill out[4, n] (bid px, bid sz, ask px, ask sz; best first) from one read section
    of ``book`` whose level (side, k) lives at pxw[pbase + (2*book + side)*depth + k]
    (sizes: szw, sbase), scaled to floats by the book's own decimals when ``scaled``.
    Returns (nbid, nask, exchange seq, exchange ts, recv ts, status)."""
    n = out.shape[1]
    h = book * HDR_WORDS
    pscale = POW10[hdr[h + H_PRICE_DEC]]
    sscale = POW10[hdr[h + H_SIZE_DEC]]
    rb = (2 * book + BID) * depth
    ra = (2 * book + ASK) * depth
    while True:
        s = read_begin(hdr, book)
        tb, nb = top_slot(hdr, h, BID, depth)
        ta, na = top_slot(hdr, h, ASK, depth)
        tb += 1  # one past the best level
        ta += 1
        nb = min(n, nb)
        na = min(n, na)
        for k in range(nb):
            if scaled:
                out[0, k] = pxw[pbase + rb + tb - 1 - k] / pscale
                out[1, k] = szw[sbase + rb + tb - 1 - k] / sscale
            else:
                out[0, k] = pxw[pbase + rb + tb - 1 - k]
                out[1, k] = szw[sbase + rb + tb - 1 - k]
        for k in range(na):
            if scaled:
                out[2, k] = pxw[pbase + ra + ta - 1 - k] / pscale
                out[3, k] = szw[sbase + ra + ta - 1 - k] / sscale
            else:
                out[2, k] = pxw[pbase + ra + ta - 1 - k]
                out[3, k] = szw[sbase + ra + ta - 1 - k]
        seq = hdr[h + H_EXCH_SEQ]
        ts = hdr[h + H_EXCH_TS]
        recv = hdr[h + H_RECV_TS]
        status = hdr[h + H_STATUS]
        if read_valid(hdr, book, s):
            return nb, na, seq, ts, recv, status


@njit(nogil=True, cache=True)
def top_into(hdr, px, sz, book, out):
    """Top ``out.shape[1]`` levels per side, best first, into the caller's float64
    ``out[4, n]`` (rows bid px, bid sz, ask px, ask sz) from one read section, scaled
    by the book's own decimals (read from its header).  Returns (nbid, nask, exchange
    seq, exchange ts, recv ts, status)."""
    return _top_body(hdr, px.reshape(-1), sz.reshape(-1), 0, 0, px.shape[2], book, out,
                     True)


@njit(nogil=True, cache=True)
def top_into_fixed(hdr, px, sz, book, out):
    """As top_into, exact: ``out`` is int64[4, n] and receives the fixed-point values."""
    return _top_body(hdr, px.reshape(-1), sz.reshape(-1), 0, 0, px.shape[2], book, out,
                     False)


# The Python view's fast path: the whole store as one flat int64 array (``BookStore``
# keeps hdr, px and sz back to back in one buffer).  From Python every argument costs:
# two array arguments instead of four save ~70 ns a call, a caller-allocated ``out``
# instead of a returned array saves ~0.5 us (Numba boxing a new array), and there are
# no float arguments (the scales come from the header).
@njit(nogil=True, cache=True)
def top_into_flat(words, n_books, depth, book, out):
    """top_into over the flat store ``words`` (n_books books of ``depth`` levels)."""
    pbase = n_books * HDR_WORDS
    return _top_body(words, words, words, pbase, pbase + n_books * 2 * depth, depth, book,
                     out, True)


@njit(nogil=True, cache=True)
def top_into_flat_fixed(words, n_books, depth, book, out):
    """top_into_fixed over the flat store ``words``."""
    pbase = n_books * HDR_WORDS
    return _top_body(words, words, words, pbase, pbase + n_books * 2 * depth, depth, book,
                     out, False)
