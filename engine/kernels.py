"""Apply kernels: batches of normalized level updates -> struct-of-arrays books.

Level structure (chosen by measurement, see README "Design"): each side of a book is
a sorted run of (price, size) int64 pairs inside its row, px[b, side, lo:lo+n], with
the BEST price at the END (bids ascending, asks descending) and free slots on either
side of the run (engine.store.row_length).  Exchange traffic concentrates at the
touch: an update k levels from the touch costs a short backwards scan, and a delete or
insert moves the shorter side of the run (at most k elements).  Far levels are found
by an interpolated binary search.  A side holding its ``keep`` levels evicts its worst
level for a better insert by stepping ``lo`` (no move), and drops (and counts) an
insert worse than every held level.  When the cheaper side of the run has no free slot,
the run is first moved so the free slots split evenly around it.

One seqlock write section per book per run of consecutive records of that book;
a ring consumer extends its batches to message boundaries (F_END), so readers only
ever see whole messages.
"""

import numpy as np
from numba import njit

from engine.atomics import borrowed_flat, memmove, prefetch
from engine.checksum import book_checksum, checksum_matches
from engine.constants import (
    ASK,
    BID,
    CROSSED,
    F_CHECKSUM,
    F_CLEAR,
    F_END,
    F_NOLEVEL,
    F_STATUS,
    H_ABSENT_DELETES,
    H_ASK_LO,
    H_BID_LO,
    H_CHECKSUM_BAD,
    H_CHECKSUM_FAIL,
    H_CHECKSUM_OK,
    H_CROSSED,
    H_DEPTH_DROPS,
    H_EXCH_SEQ,
    H_EXCH_TS,
    H_MAX_LEVELS,
    H_MESSAGES,
    H_NASK,
    H_NBID,
    H_PUBLISH_TS,
    H_RECV_TS,
    H_STALE_EVENTS,
    H_STATUS,
    H_UPDATES,
    HDR_WORDS,
    LIVE,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    R_TS,
    STALE,
)
from engine.histogram import hist_record
from engine.read import top_slot
from engine.seqlock import write_begin, write_end
from engine.tsc import clock_ns  # TSC or clock_gettime, per [platform] tsc_clock

LINEAR_SCAN = 16  # levels scanned from the touch before switching to a search
DEEP_WINDOW = 4   # half-width of the bracket tried around the interpolated position
SIMD_HEAD = 4     # vectorised search variant: levels checked one by one first,
SIMD_WINDOW = 16  # then levels counted at once

# Kernel techniques (issue 8), each kept only where `bench/kernel_techniques.py` shows a
# gain.  They are compile-time choices: every combination is its own module-level kernel
# (APPLY_VARIANTS), so the benchmark can run both sides of each in one process and the
# hot loop carries no runtime switch.
PREFETCH = True      # prefetch the headers and touch lines of the sections ahead
SIMD_SEARCH = False  # count the better levels of the top window with vector compares

# set_level outcomes
SET_OK = 0
SET_DEPTH_DROP = 1
SET_ABSENT_DELETE = 2

# Writer statistics (int64 array owned by one writer).
S_RECORDS = 0
S_SECTIONS = 1
S_BAD_RECORDS = 2   # records naming a book or side that does not exist (dropped)
S_WORDS = 8


@njit(nogil=True, inline="always")
def _better(a, b, side):
    """True when price ``a`` is strictly better than ``b`` on ``side``."""
    if side == BID:
        return a > b
    return a < b


@njit(nogil=True, inline="always")
def _find_scan(p, o, n, price, side):
    """Index of the first level from the touch that is not better than ``price``
    (the best level is p[o+n-1]); -1 when every held level is better.  Scans down
    from the touch, then binary-searches the deep levels.  (The vectorised count of
    _find_simd measured no better on the benchmark mix: README "Design".)"""
    i = n - 1
    stop = n - LINEAR_SCAN
    if stop < 0:
        stop = 0
    sgn = 1 - 2 * side  # +1 bids, -1 asks: "better" is (p - price) * sgn > 0
    while i >= stop and (p[o + i] - price) * sgn > 0:
        i -= 1
    if i >= stop or i < 0:
        return i
    return _search_deep(p, o, stop, price, sgn)  # p[o+stop] is known to be better


@njit(nogil=True, inline="always")
def _count_better(p, lo, count, price, side):
    """How many of p[lo:lo+count] (flat indices) are better than ``price``: a
    branch-free compare and sum that LLVM turns into vector compares (see
    bench/kernel_techniques.py)."""
    c = 0
    base = np.uint64(lo)
    if side == BID:
        for k in range(np.uint64(count)):
            c += p[base + k] > price
    else:
        for k in range(np.uint64(count)):
            c += p[base + k] < price
    return c


@njit(nogil=True, inline="always")
def _find_simd(p, o, n, price, side):
    """As _find_scan, but past the first SIMD_HEAD levels (checked one by one: most
    updates stop there) the next SIMD_WINDOW levels are counted at once (the better
    levels of a sorted side are a suffix, so their count gives the index) instead of
    scanned with an early exit; deeper prices go to the same interpolated search."""
    sgn = 1 - 2 * side
    i = n - 1
    head = n - SIMD_HEAD
    if head < 0:
        head = 0
    while i >= head and (p[o + i] - price) * sgn > 0:
        i -= 1
    if i >= head or i < 0:
        return i
    lo = head - SIMD_WINDOW  # p[o+head:] are all better; count p[o+lo:o+head]
    if lo < 0:
        lo = 0
    c = _count_better(p, o + lo, head - lo, price, side)
    if c < head - lo or lo == 0:
        return head - 1 - c
    return _search_deep(p, o, lo, price, sgn)  # p[o+lo] is known to be better


@njit(nogil=True, inline="always")
def _search_deep(p, o, i, price, sgn):
    """Last index in [0, i) whose level is not better than ``price``, knowing p[o+i] is
    better; -1 if none.  key(k) = (p[o+k] - price) * sgn grows with k.  An interpolation
    probe between p[o] and p[o+i] narrows the bracket to a few levels on evenly spaced
    books (one or two cache lines instead of ~log2(depth) cold probes), then a
    binary search finishes; uneven books just fall back to the binary search."""
    k0 = (p[o] - price) * sgn
    if k0 > 0:
        return -1
    ki = (p[o + i] - price) * sgn
    g = int(i * (-k0 / (ki - k0)))  # estimated crossing; float: no int64 overflow
    lo = 1   # first index with key > 0 lies in [lo, hi]; key(0) <= 0, key(i) > 0
    hi = i
    a = g - DEEP_WINDOW
    b = g + DEEP_WINDOW
    if 0 < a < i and (p[o + a] - price) * sgn <= 0:
        lo = a + 1
    if lo <= b < hi and (p[o + b] - price) * sgn > 0:
        hi = b
    while lo < hi:
        mid = (lo + hi) >> 1
        if (p[o + mid] - price) * sgn > 0:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


SHORT_SHIFT = 8  # below this many levels a plain loop beats a memmove call


@njit(nogil=True, inline="always")
def _shift(p, q, dst, src, count):
    """Move ``count`` levels from flat index src to dst (overlapping) in both arrays."""
    if count <= 0:
        return
    if count < SHORT_SHIFT:
        if dst < src:
            for k in range(count):
                p[dst + k] = p[src + k]
                q[dst + k] = q[src + k]
        else:
            for k in range(count - 1, -1, -1):
                p[dst + k] = p[src + k]
                q[dst + k] = q[src + k]
    else:
        memmove(p, dst, src, count)
        memmove(q, dst, src, count)


@njit(nogil=True, inline="always")
def _set_level(p, q, o, lo, n, keep, cap, price, size, side, simd):
    """Set (size > 0) or delete (size == 0) one level of a side holding ``n`` levels
    at p[o+lo:o+lo+n] (worst first) in a row of ``cap`` slots starting at p[o].

    ``p``/``q`` are flat price and size arrays (the kernel passes the whole store
    flattened, as views Numba does not count references to, and the side's row offset:
    slicing a row per update cost two atomic increments and two decrements per update,
    see borrowed_flat).  ``keep`` (<= cap) is how many levels the side keeps.
    Returns (new lo, new n, outcome).  ``simd`` (a compile-time constant at every call
    site) picks the search."""
    b = o + lo  # the worst level's slot
    if simd:
        i = _find_simd(p, b, n, price, side)
    else:
        i = _find_scan(p, b, n, price, side)
    if i >= 0 and p[b + i] == price:
        if size != 0:
            q[b + i] = size
            return lo, n, SET_OK
        if n - 1 - i <= i:  # delete: close the gap from the shorter side
            _shift(p, q, b + i, b + i + 1, n - 1 - i)  # the better levels down
        else:
            _shift(p, q, b + 1, b, i)                  # the worse levels up
            lo += 1
        return lo, n - 1, SET_OK
    if size == 0:
        return lo, n, SET_ABSENT_DELETE
    if n >= keep:
        if i < 0:  # the side holds its levels and this one is worse than all of them
            return lo, n, SET_DEPTH_DROP
        lo += 1  # evict the worst level: it just leaves the run
        n -= 1
        i -= 1
        b += 1
    # insert between levels i and i + 1: move the better levels up a slot, or the worse
    # ones down; n < keep <= cap, so at least one slot is free
    up = n - 1 - i
    down = i + 1
    if not ((up <= down and lo + n < cap) or (down < up and lo > 0)):
        nlo = (cap - n) >> 1  # the cheaper side is at the row's end: re-centre the run
        _shift(p, q, o + nlo, b, n)
        lo = nlo
        b = o + lo
    if lo + n < cap and (up <= down or lo == 0):
        _shift(p, q, b + i + 2, b + i + 1, up)
        p[b + i + 1] = price
        q[b + i + 1] = size
    else:
        _shift(p, q, b - 1, b, down)
        lo -= 1
        p[b + i] = price
        q[b + i] = size
    return lo, n + 1, SET_OK


@njit(nogil=True, inline="always")
def _set_row(p, q, n, depth, price, size, side, simd):
    """_set_level on a 1-D row holding its levels at p[0:n] and keeping ``depth``
    (tests and benchmarks): the run is moved back to index 0 afterwards, so callers see
    the plain sorted-row contract.  Returns (new n, outcome)."""
    lo, n2, outcome = _set_level(p, q, 0, 0, n, depth, p.shape[0], price, size, side, simd)
    if lo != 0:
        _shift(p, q, 0, lo, n2)
    return n2, outcome


@njit(nogil=True, inline="always")
def set_level(p, q, n, depth, price, size, side):
    """One side's rows ``p``/``q`` (1-D, levels at [0, n)): the configured search."""
    return _set_row(p, q, n, depth, price, size, side, SIMD_SEARCH)


@njit(nogil=True, cache=True)
def set_level_scan(p, q, n, depth, price, size, side):
    """_set_row with the scalar scan from the touch (tests and benchmarks)."""
    return _set_row(p, q, n, depth, price, size, side, False)


@njit(nogil=True, cache=True)
def set_level_simd(p, q, n, depth, price, size, side):
    """_set_row with the vectorised window count (tests and benchmarks)."""
    return _set_row(p, q, n, depth, price, size, side, True)


@njit(nogil=True, inline="always")
def is_crossed(hdr, px, b):
    h = b * HDR_WORDS
    tb, nb = top_slot(hdr, h, BID, px.shape[2])
    ta, na = top_slot(hdr, h, ASK, px.shape[2])
    return nb > 0 and na > 0 and px[b, BID, tb] >= px[b, ASK, ta]


PREFETCH_AHEAD = 24  # records
DEEP_PREFETCH_DEPTH = 512  # shallower sides are cheap enough to search cold


@njit(nogil=True, inline="always")
def _prefetch_book(hdr, px, sz, data, mask, pos, ahead, stop):
    """Start loading what the records a little ahead will touch, in three stages so
    that each stage finds cached what the one before asked for: the header of the book
    ``ahead`` records ahead; the touch lines (both sides) and the worst level of the
    record ``2 * ahead / 3`` ahead, whose header is then cached; and, ``ahead / 3``
    ahead, the deep level a price far from the touch will need (_prefetch_deep).
    Called once per section (at its first record), not per record: running the deep
    stage for every record of the next message measured 20 to 25 % slower.
    The ring holds nothing at or past ``stop``: in a short batch (a writer that keeps
    up sees one or two messages at a time) the first two stages aim at the batch's
    last record instead, so the next message's book is on its way while this one is
    applied, and the deep stage waits for a full batch.  No stage reads a record
    before ``pos``: the producer may be reusing those slots."""
    n_books = px.shape[0]
    depth = px.shape[2]
    fpos = pos + ahead
    if fpos >= stop:  # a short batch: at least the header of its last record's book
        fpos = stop - 1
    far = data[R_BOOK, fpos & mask]
    if 0 <= far < n_books:
        prefetch(hdr, far * HDR_WORDS)
    mpos = pos + (2 * ahead) // 3
    if mpos >= stop:
        mpos = stop - 1
    jm = mpos & mask
    mid = data[R_BOOK, jm]
    if mpos > pos and 0 <= mid < n_books:  # (so jm - 1 is still in the batch)
        if mid != data[R_BOOK, (jm - 1) & mask]:  # once per section, not per record
            h = mid * HDR_WORDS
            for side in (BID, ASK):
                t, n = top_slot(hdr, h, side, depth)
                if n > 0:
                    off = (mid * 2 + side) * depth + t
                    prefetch(px, off)
                    prefetch(sz, off)
        ms = data[R_SIDE, jm]
        if depth >= DEEP_PREFETCH_DEPTH and (ms == BID or ms == ASK):
            # the worst level: deep searches start there
            prefetch(px, (mid * 2 + ms) * depth + hdr[mid * HDR_WORDS + H_BID_LO + ms])
    if depth >= DEEP_PREFETCH_DEPTH and pos + ahead // 3 < stop:
        jn = (pos + ahead // 3) & mask
        near = data[R_BOOK, jn]
        side = data[R_SIDE, jn]
        if 0 <= near < n_books and (side == BID or side == ASK):
            _prefetch_deep(hdr, px, sz, near, side, data[R_PRICE, jn], depth)


@njit(nogil=True, inline="always")
def _prefetch_deep(hdr, px, sz, b, side, price, depth):
    """When ``price`` lies deeper than the linear scan reaches, start loading the level
    the interpolation probe of _search_deep will land on (and its size), so the deep
    search finds its lines cached instead of missing twice in a row."""
    n = hdr[b * HDR_WORDS + H_NBID + side]
    lo = hdr[b * HDR_WORDS + H_BID_LO + side]
    if n <= LINEAR_SCAN or lo < 0 or lo + n > depth:
        return
    sgn = 1 - 2 * side
    k0 = (px[b, side, lo] - price) * sgn           # <= 0: price not worse than the worst
    kt = (px[b, side, lo + n - 1] - price) * sgn   # > 0: the touch is better than price
    if k0 > 0 or kt <= 0:
        return
    g = int((n - 1) * (-k0 / (kt - k0)))
    if g < n - LINEAR_SCAN:
        row = (b * 2 + side) * depth + lo
        prefetch(px, row + n - LINEAR_SCAN)  # where the scan hands over to the search
        prefetch(px, row + g - DEEP_WINDOW)  # the bracket around the probe
        prefetch(px, row + g + DEEP_WINDOW)
        prefetch(sz, row + g)


@njit(nogil=True, inline="always")
def _apply(hdr, px, sz, data, mask, start, stop, hist, stats, ahead, simd):
    """The body of apply_records.  ``ahead`` (records to prefetch ahead, 0 = no
    prefetch) and ``simd`` are compile-time constants at every call site, so each
    variant is compiled without the other path."""
    n_books = px.shape[0]
    depth = px.shape[2]
    pf = borrowed_flat(px)  # not reference-counted: see borrowed_flat
    qf = borrowed_flat(sz)
    track_latency = hist.shape[0] > 0
    pos = start
    while pos < stop:
        if ahead > 0:
            _prefetch_book(hdr, px, sz, data, mask, pos, ahead, stop)
        j = pos & mask
        b = data[R_BOOK, j]
        if b < 0 or b >= n_books:
            stats[S_BAD_RECORDS] += 1
            pos += 1
            continue
        h = b * HDR_WORDS
        keep = hdr[h + H_MAX_LEVELS]
        if keep <= 0 or keep > depth:
            keep = depth
        odd = write_begin(hdr, b)
        updates = 0
        drops = 0
        absent = 0
        seg_start = pos
        while pos < stop:
            j = pos & mask
            if data[R_BOOK, j] != b:
                break
            flags = data[R_FLAGS, j]
            if flags & F_CLEAR:
                hdr[h + H_NBID] = 0
                hdr[h + H_NASK] = 0
                hdr[h + H_BID_LO] = depth >> 1  # room for a snapshot sent either way
                hdr[h + H_ASK_LO] = depth >> 1
                hdr[h + H_CHECKSUM_BAD] = 0
            if flags & F_CHECKSUM:
                ck = book_checksum(hdr, px, sz, b, data[R_SIZE, j])
                if checksum_matches(ck, data[R_PRICE, j]):
                    hdr[h + H_CHECKSUM_OK] += 1
                else:
                    hdr[h + H_CHECKSUM_FAIL] += 1
                    hdr[h + H_CHECKSUM_BAD] = 1
                    if hdr[h + H_STATUS] != STALE:
                        hdr[h + H_STATUS] = STALE
                        hdr[h + H_STALE_EVENTS] += 1
            elif flags & F_STATUS:
                status = data[R_SIZE, j]
                if status == LIVE and is_crossed(hdr, px, b):
                    status = CROSSED
                if status == LIVE and hdr[h + H_CHECKSUM_BAD]:
                    status = STALE  # proven wrong since its snapshot: only a resync helps
                if status == STALE and hdr[h + H_STATUS] != STALE:
                    hdr[h + H_STALE_EVENTS] += 1
                hdr[h + H_STATUS] = status
            elif not flags & F_NOLEVEL:
                side = data[R_SIDE, j]
                outcome = SET_OK
                if side == BID or side == ASK:  # one code path for both sides: no
                    c = h + H_NBID + side           # mispredicted bid/ask branch
                    cl = h + H_BID_LO + side
                    hdr[cl], hdr[c], outcome = _set_level(
                        pf, qf, (b * 2 + side) * depth, hdr[cl], hdr[c], keep, depth,
                        data[R_PRICE, j], data[R_SIZE, j], side, simd)
                else:
                    stats[S_BAD_RECORDS] += 1
                drops += outcome == SET_DEPTH_DROP
                absent += outcome == SET_ABSENT_DELETE
                updates += 1
            if flags & F_END and not flags & F_STATUS:
                hdr[h + H_EXCH_SEQ] = data[R_SEQ, j]
                hdr[h + H_EXCH_TS] = data[R_TS, j]
                hdr[h + H_RECV_TS] = data[R_RECV, j]
                hdr[h + H_MESSAGES] += 1
                crossed = is_crossed(hdr, px, b)
                if crossed and hdr[h + H_STATUS] != CROSSED:
                    hdr[h + H_STATUS] = CROSSED
                    hdr[h + H_CROSSED] += 1
            pos += 1
        hdr[h + H_UPDATES] += updates
        hdr[h + H_DEPTH_DROPS] += drops
        hdr[h + H_ABSENT_DELETES] += absent
        now = clock_ns()
        hdr[h + H_PUBLISH_TS] = now
        write_end(hdr, b, odd)
        stats[S_SECTIONS] += 1
        if track_latency:
            for k in range(seg_start, pos):
                jj = k & mask
                if data[R_FLAGS, jj] & F_END and not data[R_FLAGS, jj] & F_STATUS:
                    hist_record(hist, now - data[R_RECV, jj])
    stats[S_RECORDS] += stop - start
    return stop - start


@njit(nogil=True, cache=True)
def apply_records(hdr, px, sz, data, mask, start, stop, hist, stats):
    """Apply update records at ring positions [start, stop) (index = pos & mask).

    ``data`` is a (REC_FIELDS, capacity) int64 struct-of-arrays block.  Records for one
    book that follow each other are applied in one write section.  ``hist`` receives
    one receive->visible latency sample per message (F_END record); pass an empty
    array to skip latency.  Returns the number of records consumed."""
    return _apply(hdr, px, sz, data, mask, start, stop, hist, stats,
                  PREFETCH_AHEAD if PREFETCH else 0, SIMD_SEARCH)


# Every (prefetch, simd search) combination, same signature as apply_records, for the
# technique benchmark and the property tests (they must all give identical books).
@njit(nogil=True, cache=True)
def apply_records_plain(hdr, px, sz, data, mask, start, stop, hist, stats):
    return _apply(hdr, px, sz, data, mask, start, stop, hist, stats, 0, False)


@njit(nogil=True, cache=True)
def apply_records_prefetch(hdr, px, sz, data, mask, start, stop, hist, stats):
    return _apply(hdr, px, sz, data, mask, start, stop, hist, stats, PREFETCH_AHEAD, False)


@njit(nogil=True, cache=True)
def apply_records_simd(hdr, px, sz, data, mask, start, stop, hist, stats):
    return _apply(hdr, px, sz, data, mask, start, stop, hist, stats, 0, True)


@njit(nogil=True, cache=True)
def apply_records_prefetch_simd(hdr, px, sz, data, mask, start, stop, hist, stats):
    return _apply(hdr, px, sz, data, mask, start, stop, hist, stats, PREFETCH_AHEAD, True)


APPLY_VARIANTS = {
    (False, False): apply_records_plain,
    (True, False): apply_records_prefetch,
    (False, True): apply_records_simd,
    (True, True): apply_records_prefetch_simd,
}
