"""Bounded decompression of compressed websocket frames (HTX gzip, raw deflate, zlib).

A frame is inflated with a hard cap on the output size: a small frame that would
inflate past ``max_bytes`` (a decompression bomb, or plain garbage) is rejected with
``DecompressionError`` before more than ``max_bytes + 1`` bytes are ever allocated.
Truncated streams and trailing bytes are rejected too.  Callers count the error as a
malformed frame (DecompressionError is a ValueError, which Protocol.handle_frame counts).
"""

from __future__ import annotations

import zlib

DEFAULT_MAX_BYTES = 8 << 20   # 8 MiB: far above any real book frame (HTX 150 levels ~ 10 KB)

GZIP = 16 + zlib.MAX_WBITS    # gzip header and trailer
ZLIB = zlib.MAX_WBITS         # zlib header (RFC 1950)
RAW_DEFLATE = -zlib.MAX_WBITS  # bare deflate stream (RFC 1951)


class DecompressionError(ValueError):
    """A compressed frame that is corrupt, truncated, or inflates past the cap."""


def decompress(data: bytes, wbits: int = GZIP, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Inflate one complete stream of ``data`` (format chosen by ``wbits``), at most
    ``max_bytes`` of output; DecompressionError otherwise."""
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise DecompressionError(f"corrupt compressed frame: {exc}") from exc
    if len(out) > max_bytes or d.unconsumed_tail:
        raise DecompressionError(f"frame inflates past the {max_bytes}-byte cap "
                                 f"({len(data)} bytes compressed)")
    if not d.eof:
        raise DecompressionError("truncated compressed frame")
    if d.unused_data:
        raise DecompressionError(f"{len(d.unused_data)} trailing bytes after the stream")
    return out


def gunzip(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """One gzip member -> its bytes, bounded by ``max_bytes``."""
    return decompress(data, GZIP, max_bytes)


def inflate_raw(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A raw deflate stream (no header) -> its bytes, bounded by ``max_bytes``."""
    return decompress(data, RAW_DEFLATE, max_bytes)
