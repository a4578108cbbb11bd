"""Compact, appendable, compressed session recordings (live capture and replay).

File layout: a preamble, then blocks.  Everything is a zstd frame, so the whole file is
also a valid zstd stream (``zstdcat file`` prints the raw records)::

    preamble  skippable frame 0x184D2A50, payload  b"HFTBREC\\0" + u32 version
    block     skippable frame 0x184D2A5E, payload  u32 zlen, u32 crc32(zframe), u32 nrecords
              zframe: one independent zstd frame (content size + checksum) holding the
              concatenated records of the block

A record (little endian) is ``u8 kind, u8 flags, i64 ns, u32 conn, u32 nfields`` then per
field ``u32 length + bytes``:

    header   kind 0: fields [JSON {"version", "exchange", "meta"}]     (first record)
    ws       kind 1: fields [payload]; flags bit0: payload was bytes (binary frame)
    rest     kind 2: fields [symbol, url, body]; flags bit0: body was bytes
    connect  kind 3: fields [url]

:func:`read_recording` yields plain tuples: ``("header", version, exchange, meta)``,
``("ws", conn_id, recv_ns, payload, binary)``, ``("rest", symbol, url, recv_ns, body)``,
``("connect", conn_id, url, recv_ns)``.  A crash loses at most the unflushed block: a
torn last block is dropped (``reader.truncated_bytes``), and reopening the file for
appending cuts it off first.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

from connectors.base import ConfigError
from connectors.recorded import Connection, Frame, HttpResponse, Session

VERSION = 1
MAGIC = b"HFTBREC\0"
_SKIP = struct.Struct("<II")                  # skippable frame: magic, payload size
_PRE_MAGIC = 0x184D2A50
_BLK_MAGIC = 0x184D2A5E
_BLK_MAGIC_BYTES = struct.pack("<I", _BLK_MAGIC)
_BLK = struct.Struct("<III")                  # zlen, crc32, nrecords
_BLK_HEAD = _SKIP.size + _BLK.size
_PREAMBLE = _SKIP.pack(_PRE_MAGIC, len(MAGIC) + 4) + MAGIC + struct.pack("<I", VERSION)
_REC = struct.Struct("<BBqII")                # kind, flags, ns, conn, nfields
_LEN = struct.Struct("<I")
K_HEADER, K_WS, K_REST, K_CONNECT = 0, 1, 2, 3


class RecordingError(ValueError):
    """A file that is not a readable recording (wrong magic/version, corrupt block)."""


def _b(x: bytes | str) -> tuple[bytes, int]:
    return (x, 1) if isinstance(x, (bytes, bytearray, memoryview)) else (x.encode(), 0)


def _check_preamble(head: bytes, path: str) -> None:
    if len(head) < len(_PREAMBLE) or head[_SKIP.size:_SKIP.size + len(MAGIC)] != MAGIC:
        raise RecordingError(f"{path}: not an hftbook recording (bad magic)")
    (version,) = struct.unpack_from("<I", head, _SKIP.size + len(MAGIC))
    if version != VERSION:
        raise RecordingError(f"{path}: recording format version {version} is not supported "
                             f"(this reader knows version {VERSION})")


def _valid_end(fh, size: int) -> int:
    """Offset just past the last complete block (block headers only, payload skipped)."""
    pos = len(_PREAMBLE)
    while pos + _BLK_HEAD <= size:
        fh.seek(pos)
        head = fh.read(_BLK_HEAD)
        magic, _ = _SKIP.unpack_from(head)
        zlen = _BLK.unpack_from(head, _SKIP.size)[0]
        if magic != _BLK_MAGIC or pos + _BLK_HEAD + zlen > size:
            break
        pos += _BLK_HEAD + zlen
    return pos


class RecordingWriter:
    """Append records to ``path``; a block is compressed and written every
    ``flush_records`` records or ``flush_seconds`` (checked on each write) and on
    :meth:`close`.  An existing file is appended to (a torn tail is cut off first) and
    gets a new header record."""

    def __init__(self, path: str | os.PathLike, exchange: str, meta: dict | None = None, *,
                 flush_records: int = 1000, flush_seconds: float = 1.0, level: int = 3) -> None:
        self.path = str(path)
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self._cctx = zstandard.ZstdCompressor(level=level, write_checksum=True,
                                              write_content_size=True)
        self._buf = bytearray()
        self._n = 0
        self._t0 = time.monotonic()
        self.blocks = 0
        self.records = 0
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._fh = open(self.path, "r+b" if exists else "wb")
        if exists:
            _check_preamble(self._fh.read(len(_PREAMBLE)), self.path)
            end = _valid_end(self._fh, os.path.getsize(self.path))
            self._fh.truncate(end)
            self._fh.seek(end)
        else:
            self._fh.write(_PREAMBLE)
        head = {"version": VERSION, "exchange": exchange, "meta": meta or {}}
        self._add(K_HEADER, 0, 0, 0, (json.dumps(head).encode(),))
        self.flush()

    def _add(self, kind: int, flags: int, ns: int, conn: int, fields: tuple) -> None:
        buf = self._buf
        buf += _REC.pack(kind, flags, ns, conn, len(fields))
        for f in fields:
            buf += _LEN.pack(len(f))
            buf += f
        self._n += 1
        if self._n >= self.flush_records or time.monotonic() - self._t0 >= self.flush_seconds:
            self.flush()

    def ws(self, conn_id: int, recv_ns: int, payload: bytes | str) -> None:
        data, binary = _b(payload)
        self._add(K_WS, binary, recv_ns, conn_id, (data,))

    def rest(self, symbol: str, url: str, recv_ns: int, body: bytes | str) -> None:
        data, binary = _b(body)
        self._add(K_REST, binary, recv_ns, 0, (symbol.encode(), url.encode(), data))

    def connect(self, conn_id: int, url: str, recv_ns: int) -> None:
        self._add(K_CONNECT, 0, recv_ns, conn_id, (url.encode(),))

    def flush(self) -> None:
        self._t0 = time.monotonic()
        if not self._n:
            return
        z = self._cctx.compress(bytes(self._buf))
        self._fh.write(_SKIP.pack(_BLK_MAGIC, _BLK.size)
                       + _BLK.pack(len(z), zlib.crc32(z), self._n) + z)
        self._fh.flush()
        self.blocks += 1
        self.records += self._n
        self._buf.clear()
        self._n = 0

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingReader:
    """Iterate a recording's records.  After iteration: ``blocks`` read,
    ``truncated_bytes`` of a torn tail ignored (0 if the file ended cleanly),
    ``corrupt_blocks`` skipped (only with ``skip_corrupt=True``; otherwise a corrupt
    block raises :class:`RecordingError` naming its offset)."""

    def __init__(self, path: str | os.PathLike, skip_corrupt: bool = False) -> None:
        self.path = str(path)
        self.skip_corrupt = skip_corrupt
        self.blocks = 0
        self.corrupt_blocks = 0
        self.truncated_bytes = 0
        with open(self.path, "rb") as fh:
            self._data = fh.read()
        _check_preamble(self._data, self.path)  # a wrong version fails on open

    @property
    def truncated(self) -> bool:
        return self.truncated_bytes > 0

    def _corrupt(self, pos: int, why: str, nxt: int = -1) -> int:
        """Raise, or count the block and return where the next block starts (``nxt``
        when the block header was intact, else the next block magic found)."""
        if not self.skip_corrupt:
            raise RecordingError(f"{self.path}: corrupt block {self.blocks + self.corrupt_blocks}"
                                 f" at offset {pos}: {why}")
        self.corrupt_blocks += 1
        if nxt >= 0:
            return nxt
        nxt = self._data.find(_BLK_MAGIC_BYTES, pos + 1)
        return len(self._data) if nxt < 0 else nxt

    def __iter__(self) -> Iterator[tuple]:
        data, size = self._data, len(self._data)
        dctx = zstandard.ZstdDecompressor()
        pos = len(_PREAMBLE)
        while pos < size:
            if pos + _BLK_HEAD > size:
                self.truncated_bytes = size - pos
                return
            magic, _ = _SKIP.unpack_from(data, pos)
            zlen, crc, nrec = _BLK.unpack_from(data, pos + _SKIP.size)
            if magic != _BLK_MAGIC:
                pos = self._corrupt(pos, "bad block magic")
                continue
            start = pos + _BLK_HEAD
            if start + zlen > size:
                self.truncated_bytes = size - pos
                return
            z = data[start:start + zlen]
            if zlib.crc32(z) != crc:
                pos = self._corrupt(pos, "crc32 mismatch", start + zlen)
                continue
            try:
                raw = dctx.decompress(z)
            except zstandard.ZstdError as exc:
                pos = self._corrupt(pos, f"zstd: {exc}", start + zlen)
                continue
            pos = start + zlen
            self.blocks += 1
            yield from _records(raw, nrec)


def _records(raw: bytes, nrec: int) -> Iterator[tuple]:
    off = 0
    for _ in range(nrec):
        kind, flags, ns, conn, nf = _REC.unpack_from(raw, off)
        off += _REC.size
        fields = []
        for _ in range(nf):
            (n,) = _LEN.unpack_from(raw, off)
            off += 4
            fields.append(raw[off:off + n])
            off += n
        if kind == K_WS:
            p = fields[0]
            yield ("ws", conn, ns, p if flags & 1 else p.decode(), bool(flags & 1))
        elif kind == K_REST:
            body = fields[2]
            yield ("rest", fields[0].decode(), fields[1].decode(), ns,
                   body if flags & 1 else body.decode())
        elif kind == K_CONNECT:
            yield ("connect", conn, fields[0].decode(), ns)
        elif kind == K_HEADER:
            h = json.loads(fields[0])
            if h.get("version") != VERSION:
                raise RecordingError(f"header record version {h.get('version')} "
                                     f"is not supported (expected {VERSION})")
            yield ("header", h["version"], h["exchange"], h["meta"])
        else:
            raise RecordingError(f"unknown record kind {kind}")


def read_recording(path: str | os.PathLike, skip_corrupt: bool = False) -> RecordingReader:
    """The records of ``path`` (an iterable that also reports truncation/corruption)."""
    return RecordingReader(path, skip_corrupt)


def _session(records: list[tuple], name: str) -> Session:
    header = next((r for r in records if r[0] == "header"), None)
    if header is None:
        raise RecordingError(f"{name}: no header record")
    meta = header[3]
    instruments = [HttpResponse(i["url"], 0.0, i["body"]) for i in meta.get("instruments", [])]
    http: list[HttpResponse] = []
    conns: list[Connection] = []
    current: dict[int, Connection] = {}
    for r in records:
        if r[0] == "ws":
            c = current.get(r[1])
            if c is None:
                c = current[r[1]] = Connection("", r[2] / 1e9, [], [], f"conn{r[1]}")
                conns.append(c)
            c.frames.append(Frame(r[2] / 1e9, r[3]))
        elif r[0] == "rest":
            http.append(HttpResponse(r[2], r[3] / 1e9, r[4]))
        elif r[0] == "connect":
            c = current[r[1]] = Connection(r[2], r[3] / 1e9, [], [], f"conn{r[1]}")
            conns.append(c)
    return Session(header[2], meta.get("config"), instruments, http, conns)


def load_recording(path: str | os.PathLike, skip_corrupt: bool = False) -> Session:
    """The recording as a :class:`connectors.recorded.Session` (REST bodies in time order,
    one Connection per connect record; instrument bodies and config from the header)."""
    return _session(list(read_recording(path, skip_corrupt)), str(path))


def replay_file(path: str | os.PathLike, depth: int | None = None,
                verify_checksums: bool = True, symbols: list[str] | None = None,
                ring_capacity: int = 1 << 16, drain_every: int = 1,
                protocol: str | None = None, skip_corrupt: bool = False,
                speed: float | None = None, progress: bool = False):
    """:func:`connectors.replay.replay_session` for a recording file.  Records are fed in
    file (arrival) order; a REST body goes to the request for its recorded symbol (or
    ``rest_symbol(url)`` when none was recorded); a second connect of a connection
    replays a disconnect + reconnect.  The protocol is ``protocol`` ("module:Class"),
    else header meta["protocol"], else the registry entry of the recorded exchange."""
    import numpy as np

    from connectors import load
    from connectors.replay import (
        ReplayResult,
        registry,
        replay_rig,
        session_instruments,
        session_symbols,
        warm_up,
    )
    from engine.constants import H_CHECKSUM_FAIL, H_CHECKSUM_OK, H_STATUS, HDR_WORDS, STATUS_NAMES
    from engine.kernels import S_WORDS
    from engine.ring import ring_drain

    records = list(read_recording(path, skip_corrupt))
    session = _session(records, str(path))
    meta = next(r[3] for r in records if r[0] == "header")
    spec = protocol or meta.get("protocol") or registry().get(session.exchange)
    if spec is None:
        raise ConfigError(f"{path}: no connector replays {session.exchange} recordings")
    cls = load(spec)
    depth = depth or cls.depth
    instruments = session_instruments(cls, session)
    symbols = symbols or cls.recorded_symbols(session, session_symbols(cls, session,
                                                                        instruments))
    if not symbols:
        raise ConfigError(f"{path}: no symbols (record meta['config']['l2_book'] or pass symbols)")
    store, ctl, data, proto = replay_rig(cls, instruments, symbols, depth, ring_capacity,
                                         verify_checksums)
    hist = np.zeros(0, np.int64)
    wstats = np.zeros(S_WORDS, np.int64)
    hdr, px, sz = store.hdr, store.px, store.sz
    res = ReplayResult(cls.exchange, Path(path).name, books=len(symbols), stats=proto.stats,
                       store=store, symbols=symbols, depth=depth)
    pending: dict[str, object] = {}
    byte_budget = ring_capacity // 4 * 9
    seen: set[int] = set()

    def drain() -> None:
        ring_drain(ctl, data, hdr, px, sz, 1 << 20, hist, wstats)

    warm_up()
    t0 = time.perf_counter()
    proto.on_connect()
    while proto.rest_requests:
        req = proto.rest_requests.popleft()
        pending[req.symbol] = req
    since_drain = since_bytes = 0
    from connectors.progress import Bar
    from connectors.replay import Pacer

    pacer = Pacer(speed)
    bar = Bar(progress, len(records), Path(path).name, unit="record")
    for r in records:
        bar.tick()
        kind = r[0]
        if kind in ("ws", "rest", "connect"):
            pacer.wait(r[2] if kind == "ws" else r[3])  # ns field: see the record layout
        if kind == "ws":
            res.frames += 1
            proto.handle_frame(r[3], r[2])
            since_drain += 1
            since_bytes += len(r[3])
            if since_drain < drain_every and since_bytes < byte_budget \
                    and not proto.rest_requests:
                continue
        elif kind == "rest":
            proto.flush()
            sym = r[1] or proto.rest_symbol(r[2])
            req = pending.pop(sym, None) if sym else None
            if req is None:
                res.unrequested_snapshots += 1
                continue
            proto.handle_rest(req, r[4], r[3])
        elif kind == "connect":
            if r[1] not in seen:  # first connect of each link: on_connect above
                seen.add(r[1])
                continue
            proto.flush()
            drain()
            proto.on_disconnect()
            proto.on_connect()
        else:
            continue
        proto.flush()
        drain()
        since_drain = since_bytes = 0
        if proto.touched:
            resyncs = proto.stats.reasons.total()
            proto.check_health(proto.touched)
            proto.touched.clear()
            if proto.stats.reasons.total() != resyncs:
                drain()
        while proto.rest_requests:
            req = proto.rest_requests.popleft()
            pending[req.symbol] = req
        proto.outbox.clear()
    bar.close()
    proto.flush()
    drain()
    proto.check_health(proto.touched)
    drain()
    res.seconds = time.perf_counter() - t0
    for i, s in enumerate(symbols):
        h = i * HDR_WORDS
        res.checksums_ok += int(hdr[h + H_CHECKSUM_OK])
        res.checksums_failed += int(hdr[h + H_CHECKSUM_FAIL])
        res.statuses[s] = STATUS_NAMES[int(hdr[h + H_STATUS])]
    totals = proto.stats.totals()
    res.level_updates = totals.get("levels", 0)
    res.gaps = totals.get("gaps", 0)
    res.resyncs = totals.get("resyncs", 0)
    res.malformed = totals.get("malformed", 0)
    return res
