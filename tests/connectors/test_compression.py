"""Bounded decompression: round trips, and bombs, truncation and trailing bytes
rejected with DecompressionError (a ValueError: counted as malformed by protocols)."""

import gzip
import zlib

import pytest

from connectors.compression import (
    RAW_DEFLATE,
    ZLIB,
    DecompressionError,
    decompress,
    gunzip,
    inflate_raw,
)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, RAW_DEFLATE)
    return c.compress(data) + c.flush()


def test_round_trips():
    text = b'{"ch":"market.btcusdt.mbp.150","tick":{"bids":[[1.0E-4,2.5]]}}' * 50
    assert gunzip(gzip.compress(text)) == text
    assert inflate_raw(raw_deflate(text)) == text
    assert decompress(zlib.compress(text), ZLIB) == text
    assert gunzip(gzip.compress(b"")) == b""


def test_bomb_rejected_at_the_cap():
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)   # 64 MiB from ~64 KB
    assert len(bomb) < 100_000
    with pytest.raises(DecompressionError, match="cap"):
        gunzip(bomb)                                           # default cap: 8 MiB
    with pytest.raises(DecompressionError, match="cap"):
        inflate_raw(raw_deflate(b"x" * 2000), max_bytes=1000)
    exact = gzip.compress(b"y" * 1000)
    assert gunzip(exact, max_bytes=1000) == b"y" * 1000        # the cap itself is allowed
    with pytest.raises(DecompressionError):
        gunzip(exact, max_bytes=999)


def test_corrupt_truncated_and_trailing_rejected():
    good = gzip.compress(b"hello world" * 10)
    with pytest.raises(DecompressionError, match="corrupt"):
        gunzip(b"not gzip")
    with pytest.raises(DecompressionError, match="truncated"):
        gunzip(good[:-6])
    with pytest.raises(DecompressionError, match="trailing"):
        gunzip(good + b"junk")
    assert issubclass(DecompressionError, ValueError)
    with pytest.raises(ValueError):
        gunzip(good, max_bytes=0)
