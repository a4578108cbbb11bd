"""From parsed exchange messages to engine ring records, in one Numba call per message.

A connector hands over each side of a message as two byte strings: the price texts and
the size texts, joined by SEP (``b"\\x01"``), exactly as the exchange sent them.  Joining
strings is a C-speed ``bytes.join``; the kernel then parses every number exactly
(engine.fixedpoint.parse_fixed) straight into the ring's free slots and publishes the
message with one release store, or publishes nothing at all if any number is malformed,
does not fit the book's scale, or the ring is full.  Measured against converting each
string in Python (``to_fixed``) in ``hftbook bench replay``.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter

from numba import njit

from engine.constants import (
    ASK,
    BID,
    F_CHECKSUM,
    F_CLEAR,
    F_END,
    F_NOLEVEL,
    F_STATUS,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    R_TS,
)
from engine.fixedpoint import PARSE_MALFORMED, PARSE_OK, parse_fixed
from engine.ring import ring_publish, ring_reserve

SEP = b"\x01"
_SEP = 1

# push_message results (besides PARSE_* codes from the number parser)
PUSH_OK = 0
PUSH_FULL = 10
PUSH_COUNT_MISMATCH = 11  # a side has a different number of prices and sizes
PUSH_TOO_LARGE = 12       # more records than the whole ring holds: it can never fit

PRICE_LIMIT = 1 << 62  # keeps (p - price) * side in the kernels' searches far from overflow
NO_STATUS = -1
NO_CHECKSUM = 0


@njit(nogil=True, inline="always")
def _count(buf):
    if len(buf) == 0:
        return 0
    n = 1
    for i in range(len(buf)):
        if buf[i] == _SEP:
            n += 1
    return n


@njit(nogil=True, inline="always")
def _write(data, j, book, side, flags, price, size, seq, ts, recv):
    data[R_BOOK, j] = book
    data[R_SIDE, j] = side
    data[R_FLAGS, j] = flags
    data[R_PRICE, j] = price
    data[R_SIZE, j] = size
    data[R_SEQ, j] = seq
    data[R_TS, j] = ts
    data[R_RECV, j] = recv


@njit(nogil=True, inline="always")
def _parse_side(data, mask, head, k, book, side, pbuf, sbuf, pdec, sdec, seq, ts, recv,
                count, reverse):
    """Parse one side's ``count`` levels into ring slots head+k...; with ``reverse`` the
    last level goes first.  Returns (k, err, bad_index)."""
    ps = 0
    ss = 0
    idx = 0
    np_ = len(pbuf)
    ns_ = len(sbuf)
    while ps < np_:
        pe = ps
        while pe < np_ and pbuf[pe] != _SEP:
            pe += 1
        se = ss
        while se < ns_ and sbuf[se] != _SEP:
            se += 1
        price, err = parse_fixed(pbuf, ps, pe, pdec)
        if err != PARSE_OK:
            return k, err, idx
        size, err = parse_fixed(sbuf, ss, se, sdec)
        if err != PARSE_OK:
            return k, err, idx
        if size < 0 or price > PRICE_LIMIT or price < -PRICE_LIMIT:
            return k, PARSE_MALFORMED, idx
        slot = k + (count - 1 - idx if reverse else idx)
        _write(data, (head + slot) & mask, book, side, 0, price, size, seq, ts, recv)
        idx += 1
        ps = pe + 1
        ss = se + 1
    return k + idx, PARSE_OK, idx


@njit(nogil=True, cache=True)
def push_message(ctl, data, book, clear, bid_p, bid_s, ask_p, ask_s, pdec, sdec, seq, ts,
                 recv, ck_scheme, ck_value, status_after):
    """Publish one exchange message for ``book`` into the ring, all or nothing.

    clear: the message is a snapshot (clear the book first).  ck_scheme != 0 appends a
    checksum record verified by the writer after the levels.  status_after >= 0 appends
    a status record.  Returns (result, bad_level_index, levels published)."""
    nb = _count(bid_p)
    na = _count(ask_p)
    if nb != _count(bid_s) or na != _count(ask_s):
        return PUSH_COUNT_MISMATCH, 0, 0
    n = nb + na
    extra_end = 1 if n == 0 or ck_scheme != NO_CHECKSUM else 0
    total = n + extra_end + (1 if status_after >= 0 else 0)
    cap = data.shape[1]
    if total > cap:
        return PUSH_TOO_LARGE, 0, 0
    mask = cap - 1
    head = ring_reserve(ctl, cap, total)
    if head < 0:
        return PUSH_FULL, 0, 0
    # a snapshot is written worst level first (venues send best first): each insert
    # then lands at the touch end of the row, O(1), instead of shifting the whole side
    k, err, bad = _parse_side(data, mask, head, 0, book, BID, bid_p, bid_s, pdec, sdec, seq,
                              ts, recv, nb, clear)
    if err != PARSE_OK:
        return err, bad, 0
    k, err, bad = _parse_side(data, mask, head, k, book, ASK, ask_p, ask_s, pdec, sdec, seq,
                              ts, recv, na, clear)
    if err != PARSE_OK:
        return err, nb + bad, 0
    if clear and k > 0:
        data[R_FLAGS, head & mask] |= F_CLEAR
    if extra_end:
        flags = F_END | (F_CHECKSUM if ck_scheme != NO_CHECKSUM else F_NOLEVEL)
        if k == 0 and clear:
            flags |= F_CLEAR
        _write(data, (head + k) & mask, book, 0, flags, ck_value, ck_scheme, seq, ts, recv)
        k += 1
    else:
        data[R_FLAGS, (head + k - 1) & mask] |= F_END
    if status_after >= 0:
        _write(data, (head + k) & mask, book, 0, F_STATUS | F_END, 0, status_after, seq, ts,
               recv)
        k += 1
    ring_publish(ctl, head, k)
    return PUSH_OK, 0, n


@njit(nogil=True, cache=True)
def push_status(ctl, data, book, status):
    """One status record (STALE on a gap, SYNCING on resubscribe...); False when full."""
    cap = data.shape[1]
    head = ring_reserve(ctl, cap, 1)
    if head < 0:
        return False
    _write(data, head & (cap - 1), book, 0, F_STATUS | F_END, 0, status, -1, 0, 0)
    ring_publish(ctl, head, 1)
    return True


_first = itemgetter(0)
_second = itemgetter(1)


def join_levels(levels, price=_first, size=_second) -> tuple[bytes, bytes]:
    """[[price, size, ...], ...] (strings) -> (prices, sizes) joined by SEP, as bytes."""
    if not levels:
        return b"", b""
    return ("\x01".join(map(price, levels)).encode(),
            "\x01".join(map(size, levels)).encode())


def join_pairs(levels) -> tuple[bytes, bytes]:
    """Fast path for lists of exactly [price, size] string pairs."""
    if not levels:
        return b"", b""
    flat = list(chain.from_iterable(levels))
    if len(flat) != 2 * len(levels):  # a level of another length would shift every pair
        raise ValueError("a level is not a [price, size] pair")
    return "\x01".join(flat[0::2]).encode(), "\x01".join(flat[1::2]).encode()


# -- raw-bytes fast path -------------------------------------------------------------
# For the busiest simple dialects a frame's level arrays are parsed straight from the
# frame bytes (parse path C of `hftbook bench replay`), skipping orjson and the joins.
# The scanner checks the structure it walks (brackets, quotes, commas) and reports
# RAW_UNEXPECTED on anything else, so the caller falls back to the ordinary path,
# which then reports the frame properly.

RAW_UNEXPECTED = 20
RAW_MAX_LEVELS = 256  # per side; larger messages take the ordinary path


@njit(nogil=True, inline="always")
def _skip_ws(buf, i):
    while i < len(buf) and (buf[i] == 32 or buf[i] == 10 or buf[i] == 13 or buf[i] == 9):
        i += 1
    return i


@njit(nogil=True, inline="always")
def _string_end(buf, i):
    """buf[i] is the char after an opening quote: index of the closing quote, or -1.
    Decimal texts carry no escapes; a backslash makes the frame 'unexpected'."""
    while i < len(buf):
        c = buf[i]
        if c == 34:
            return i
        if c == 92:
            return -1
        i += 1
    return -1


@njit(nogil=True)
def _epoch_ns(buf, s, e):
    """'1618678133.370507' -> ns; -1 if not digits[.digits]."""
    v = 0
    i = s
    while i < e and 48 <= buf[i] <= 57:
        v = v * 10 + buf[i] - 48
        i += 1
    if i == s:
        return -1
    v *= 1_000_000_000
    if i < e:
        if buf[i] != 46:
            return -1
        i += 1
        scale = 100_000_000
        while i < e and 48 <= buf[i] <= 57:
            v += (buf[i] - 48) * scale
            scale //= 10
            i += 1
        if i < e:
            return -1
    return v


@njit(nogil=True)
def scan_quoted_levels(buf, i, pdec, sdec, out, k):
    """Parse ``[["p","q"(,"t"(,...))], ...]`` at buf[i] into out[0:3, k:]: price, size and
    (if present) the third string as an epoch timestamp in ns (0 if absent).  Extra
    string elements are skipped.  Returns (k, index after the array, err)."""
    i = _skip_ws(buf, i)
    if i >= len(buf) or buf[i] != 91:
        return k, i, RAW_UNEXPECTED
    i = _skip_ws(buf, i + 1)
    if i < len(buf) and buf[i] == 93:
        return k, i + 1, PARSE_OK
    while True:
        if k >= out.shape[1]:
            return k, i, RAW_UNEXPECTED
        if i >= len(buf) or buf[i] != 91:
            return k, i, RAW_UNEXPECTED
        i = _skip_ws(buf, i + 1)
        field = 0
        out[2, k] = 0
        while True:
            if i >= len(buf) or buf[i] != 34:
                return k, i, RAW_UNEXPECTED
            e = _string_end(buf, i + 1)
            if e < 0:
                return k, i, RAW_UNEXPECTED
            if field == 0:
                v, err = parse_fixed(buf, i + 1, e, pdec)
                if err != PARSE_OK:
                    return k, i, err
                out[0, k] = v
            elif field == 1:
                v, err = parse_fixed(buf, i + 1, e, sdec)
                if err != PARSE_OK:
                    return k, i, err
                if v < 0:
                    return k, i, PARSE_MALFORMED
                out[1, k] = v
            elif field == 2:
                t = _epoch_ns(buf, i + 1, e)
                out[2, k] = t if t > 0 else 0
            field += 1
            i = _skip_ws(buf, e + 1)
            if i < len(buf) and buf[i] == 44:
                i = _skip_ws(buf, i + 1)
                continue
            if i < len(buf) and buf[i] == 93:
                break
            return k, i, RAW_UNEXPECTED
        if field < 2:
            return k, i, RAW_UNEXPECTED
        k += 1
        i = _skip_ws(buf, i + 1)
        if i < len(buf) and buf[i] == 44:
            i = _skip_ws(buf, i + 1)
            continue
        if i < len(buf) and buf[i] == 93:
            return k, i + 1, PARSE_OK
        return k, i, RAW_UNEXPECTED


@njit(nogil=True, inline="always")
def _dedupe_deletes_first(out, lo, hi, tmp):
    """Rows lo..hi of one side, in place: a repeated price keeps its last size, and the
    deletes (size 0) move ahead of the sets, otherwise in order.  Returns the new hi."""
    n = 0
    for a in range(lo, hi):  # keep the last occurrence of each price
        later = False
        for c in range(a + 1, hi):
            if out[0, c] == out[0, a]:
                later = True
                break
        if not later:
            tmp[0, n] = out[0, a]
            tmp[1, n] = out[1, a]
            n += 1
    w = lo
    for z in range(2):  # pass 0: deletes, pass 1: sets
        for a in range(n):
            if (tmp[1, a] == 0) == (z == 0):
                out[0, w] = tmp[0, a]
                out[1, w] = tmp[1, a]
                w += 1
    return w


@njit(nogil=True, cache=True)
def push_raw_update(ctl, data, book, buf, bid_pos, ask_pos, pdec, sdec, seq, recv, ck_scheme,
                    ck_value, deletes_first, scratch, clear, status_after):
    """One update message straight from frame bytes: the bid array at ``bid_pos`` and the
    ask array at ``ask_pos`` (-1 when absent), each ``[["p","q"(,"ts")...],...]``.
    Levels' third fields, when present, give the message timestamp (the latest).  With
    ``deletes_first`` each side is reordered as connectors.kraken.deletes_first does.
    ``clear`` and ``status_after`` as in push_message (snapshots).  All or nothing, as
    push_message.  Returns (result, levels published, ts ns)."""
    nb = 0
    na = 0
    if bid_pos >= 0:
        nb, _, err = scan_quoted_levels(buf, bid_pos, pdec, sdec, scratch, 0)
        if err != PARSE_OK:
            return err, 0, 0
    if ask_pos >= 0:
        k, _, err = scan_quoted_levels(buf, ask_pos, pdec, sdec, scratch, nb)
        if err != PARSE_OK:
            return err, 0, 0
        na = k - nb
    ts = 0
    for a in range(nb + na):
        if scratch[2, a] > ts:
            ts = scratch[2, a]
    tmp = scratch[3:5]
    if deletes_first:
        hb = _dedupe_deletes_first(scratch, 0, nb, tmp)
        ha = _dedupe_deletes_first(scratch, nb, nb + na, tmp)
        # close the gap left by bid duplicates
        if hb < nb:
            for a in range(nb, ha):
                scratch[0, hb + a - nb] = scratch[0, a]
                scratch[1, hb + a - nb] = scratch[1, a]
            ha = hb + ha - nb
            nb = hb
        na = ha - nb
    n = nb + na
    extra = 1 if n == 0 or ck_scheme != NO_CHECKSUM else 0
    total = n + extra + (1 if status_after >= 0 else 0)
    cap = data.shape[1]
    mask = cap - 1
    head = ring_reserve(ctl, cap, total)
    if head < 0:
        return PUSH_FULL, 0, ts
    for a in range(n):
        p = scratch[0, a]
        if p > PRICE_LIMIT or p < -PRICE_LIMIT:
            return PARSE_MALFORMED, 0, ts
        src = a
        if clear:  # snapshots worst first (see push_message)
            src = nb - 1 - a if a < nb else nb + (na - 1 - (a - nb))
        _write(data, (head + a) & mask, book, BID if a < nb else ASK,
               F_CLEAR if clear and a == 0 else 0, scratch[0, src], scratch[1, src], seq, ts,
               recv)
    if extra:
        flags = F_END | (F_CHECKSUM if ck_scheme != NO_CHECKSUM else F_NOLEVEL)
        if clear and n == 0:
            flags |= F_CLEAR
        _write(data, (head + n) & mask, book, 0, flags, ck_value, ck_scheme, seq, ts, recv)
    else:
        data[R_FLAGS, (head + n - 1) & mask] |= F_END
    if status_after >= 0:
        _write(data, (head + n + extra) & mask, book, 0, F_STATUS | F_END, 0, status_after,
               seq, ts, recv)
    ring_publish(ctl, head, total)
    return PUSH_OK, n, ts


@njit(nogil=True, inline="always")
def find_bytes(buf, key, start):
    """Index just past the first ``key`` in buf[start:], or -1."""
    n = len(buf)
    k = len(key)
    i = start
    while i + k <= n:
        j = 0
        while j < k and buf[i + j] == key[j]:
            j += 1
        if j == k:
            return i + k
        i += 1
    return -1


@njit(nogil=True, cache=True)
def push_raw_keyed(ctl, data, book, buf, bid_key, ask_key, ck_key, pdec, sdec, seq, recv,
                   ck_scheme, deletes_first, scratch, clear, status_after):
    """push_raw_update, locating the arrays itself: the first ``bid_key`` / ``ask_key``
    (e.g. b'"b":') in the frame, and a quoted decimal checksum after ``ck_key`` (e.g.
    b'"c":"'; verified when ck_scheme is set).  One Numba call per frame, no Python
    byte searching.  Returns (result, levels, ts, checksum found)."""
    bpos = find_bytes(buf, bid_key, 0)
    apos = find_bytes(buf, ask_key, 0)
    ck = 0
    has_ck = False
    c = find_bytes(buf, ck_key, 0) if len(ck_key) else -1
    if c >= 0:
        i = c
        while i < len(buf) and 48 <= buf[i] <= 57 and i - c < 10:
            ck = ck * 10 + buf[i] - 48
            i += 1
        if i == c or i >= len(buf) or buf[i] != 34:
            return RAW_UNEXPECTED, 0, 0, False
        has_ck = True
    res, n, ts = push_raw_update(ctl, data, book, buf, bpos, apos, pdec, sdec, seq, recv,
                                 ck_scheme if has_ck else NO_CHECKSUM, ck, deletes_first,
                                 scratch, clear, status_after)
    return res, n, ts, has_ck


@njit(nogil=True, cache=True)
def push_raw_keyed_batch(ctl, data, frames, starts, ends, books, pdecs, sdecs, recvs, first,
                         bid_key, ask_key, ck_key, ck_scheme, deletes_first, scratch,
                         levels_out):
    """push_raw_keyed for frames[starts[i]:ends[i]], i = first.. in order, stopping at the
    first frame it cannot take.  Returns (index reached, result there): the caller hands
    that frame to the ordinary path and resumes after it.  One call for a burst of
    frames instead of one per frame."""
    n = starts.shape[0]
    for i in range(first, n):
        res, lv, _, _ = push_raw_keyed(ctl, data, books[i], frames[starts[i]:ends[i]], bid_key,
                                       ask_key, ck_key, pdecs[i], sdecs[i], -1, recvs[i],
                                       ck_scheme, deletes_first, scratch, False, -1)
        if res != PUSH_OK:
            return i, res
        levels_out[i] = lv
    return n, PUSH_OK
