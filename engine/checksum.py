"""Exchange order-book checksums, computed by the writer kernel on the book it holds.

Each scheme renders the top levels as text the way the exchange documents it and takes
the CRC-32 (zlib polynomial) of that text, digit by digit, with no allocation:

* CK_KRAKEN: Kraken spot (WebSocket v1 ``book`` and v2 ``book``): top 10 asks, best
  first, then top 10 bids, best first; each level is price then quantity written with
  the pair's fixed decimals, the '.' removed and leading zeros stripped, which is the
  fixed-point integer in decimal.  The book's decimals must be the wire decimals
  (the instrument's price / lot decimals).  Compared unsigned.
* CK_OKX: OKX ``books``: the top 25 levels interleaved ``bid px:bid sz:ask px:ask sz``
  (a side that runs out contributes nothing), numbers in shortest decimal form as OKX
  sends them, fields joined by ':'.  Compared as signed 32-bit (low 32 bits).
"""

import numpy as np
from numba import njit

from engine.constants import (
    ASK,
    BID,
    H_PRICE_DEC,
    H_SIZE_DEC,
    HDR_WORDS,
)
from engine.read import top_slot

CK_KRAKEN = 1
CK_OKX = 2


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


CRC_TABLE = _crc_table()


@njit(nogil=True, inline="always")
def _crc_byte(crc, b):
    return (crc >> 8) ^ CRC_TABLE[(crc ^ b) & 0xFF]


_TEN = np.uint64(10)


@njit(nogil=True, inline="always")
def _crc_reversed(crc, rev, n):
    """Feed n digits held least significant first in ``rev`` (uint64)."""
    for _ in range(n):
        crc = _crc_byte(crc, 48 + np.int64(rev % _TEN))
        rev //= _TEN
    return crc


@njit(nogil=True)
def _crc_digits(crc, v):
    """Feed the decimal digits of v >= 0 (no leading zeros; "0" for 0).  The digits are
    reversed into a uint64 first (19 digits fit), so every division is by the constant
    10, which compiles to a multiply: ~10x faster than dividing by powers of ten."""
    if v == 0:
        return _crc_byte(crc, 48)
    u = np.uint64(v)
    rev = np.uint64(0)
    n = 0
    while u:
        rev = rev * _TEN + u % _TEN
        u //= _TEN
        n += 1
    return _crc_reversed(crc, rev, n)


@njit(nogil=True)
def _crc_fixed_text(crc, v, decimals):
    """Feed the shortest decimal text of v / 10**decimals ("5.16", "30316", "-0.5")."""
    if v < 0:
        crc = _crc_byte(crc, 45)
        v = -v
    u = np.uint64(v)
    frac = np.uint64(0)   # the fraction digits, least significant first, with their count
    nd = 0
    stripping = True      # trailing zeros of the fraction are not written
    for _ in range(decimals):
        d = u % _TEN
        u //= _TEN
        if stripping and d == 0:
            continue
        stripping = False
        frac = frac * _TEN + d
        nd += 1
    crc = _crc_digits(crc, np.int64(u))
    if nd:  # frac was built from the right, so its lowest digit is the first to write
        crc = _crc_byte(crc, 46)
        crc = _crc_reversed(crc, frac, nd)
    return crc


@njit(nogil=True)
def book_checksum(hdr, px, sz, b, scheme):
    """CRC-32 of book ``b`` under ``scheme`` (unsigned 32-bit value as int64)."""
    h = b * HDR_WORDS
    tb, nb = top_slot(hdr, h, BID, px.shape[2])  # the best levels' slots (engine.store)
    ta, na = top_slot(hdr, h, ASK, px.shape[2])
    crc = np.uint32(0xFFFFFFFF)
    if scheme == CK_KRAKEN:
        for k in range(min(10, na)):
            crc = _crc_digits(crc, px[b, ASK, ta - k])
            crc = _crc_digits(crc, sz[b, ASK, ta - k])
        for k in range(min(10, nb)):
            crc = _crc_digits(crc, px[b, BID, tb - k])
            crc = _crc_digits(crc, sz[b, BID, tb - k])
    elif scheme == CK_OKX:
        pd = hdr[h + H_PRICE_DEC]
        sd = hdr[h + H_SIZE_DEC]
        first = True
        for k in range(25):
            if k < nb:
                if not first:
                    crc = _crc_byte(crc, 58)
                crc = _crc_fixed_text(crc, px[b, BID, tb - k], pd)
                crc = _crc_byte(crc, 58)
                crc = _crc_fixed_text(crc, sz[b, BID, tb - k], sd)
                first = False
            if k < na:
                if not first:
                    crc = _crc_byte(crc, 58)
                crc = _crc_fixed_text(crc, px[b, ASK, ta - k], pd)
                crc = _crc_byte(crc, 58)
                crc = _crc_fixed_text(crc, sz[b, ASK, ta - k], sd)
                first = False
    else:
        return -1
    return np.int64(crc ^ np.uint32(0xFFFFFFFF))


@njit(nogil=True, inline="always")
def checksum_matches(computed, expected):
    """Compare on the low 32 bits: exchanges send CRC-32 signed or unsigned."""
    return (computed & 0xFFFFFFFF) == (expected & 0xFFFFFFFF)
