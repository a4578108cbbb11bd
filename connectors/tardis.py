"""Replay tardis.dev ``incremental_book_L2`` CSV files (plain or gzip) into engine books.

Format (https://docs.tardis.dev/downloadable-csv-files#incremental_book_l2)::

    exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount

timestamps in microseconds since the epoch; ``is_snapshot`` true/false; side bid/ask;
``amount`` is the new total size of the level, 0 deletes it.

Semantics implemented here:

* one book per (exchange, symbol), named ``"exchange:symbol"``;
* rows of one book sharing a ``local_timestamp`` form one message (published with
  ``push_message``, so a reader never sees half of one);
* a run of ``is_snapshot=true`` rows is a snapshot: when it starts (first rows of the
  book, or after update rows) the book is cleared (F_CLEAR on its first message) and
  marked SYNCING; when the run ends (the book's next update row, or the end of the
  file) it is marked LIVE.  A snapshot spread over several timestamps is therefore
  never shown as live half-built;
* price / size decimals per book are exact: a first pass over the file computes the
  largest number of decimals any valid row of the book uses (capped at 18); the
  second pass replays;
* malformed rows (wrong field count, bad side / is_snapshot / timestamps, a number
  that does not parse, a negative amount, a value needing > 18 decimals or outside
  int64 at the book's scale) are skipped and counted, never raised.  A file without
  the header raises ValueError.  A truncated gzip stream ends the replay there
  (``"truncated": True``).
"""

from __future__ import annotations

import gzip
import io
import time
import zlib
from pathlib import Path

import numpy as np

from connectors.publish import PUSH_FULL, PUSH_OK, push_message, push_status
from engine.constants import LIVE, SYNCING
from engine.fixedpoint import MAX_DECIMALS, FixedPointError, decimals_for
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore

COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side",
           "price", "amount")
_SNAP = {"true": True, "false": False}
_SIDE = {"bid": 0, "ask": 1}
_PROGRESS_EVERY = 4096     # lines between progress-bar updates
_RING_CAPACITY = 1 << 16
_SLEEP_MIN = 1e-3          # pace only gaps longer than this (s)


class _Msg:
    """Levels of one book gathered for one local_timestamp."""

    __slots__ = ("clear", "ts", "recv", "bp", "bs", "ap", "as_")

    def __init__(self, clear: bool) -> None:
        self.clear = clear
        self.ts = 0
        self.recv = 0
        self.bp: list[str] = []
        self.bs: list[str] = []
        self.ap: list[str] = []
        self.as_: list[str] = []


def _open_text(path: Path):
    """(text stream, raw binary file); gzip detected by its magic bytes, not the name."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    magic = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""), raw


def _header(text, path: Path) -> tuple[list[int], int]:
    """(column indices of COLUMNS, number of columns) from the file's header line;
    ValueError without one."""
    first = text.readline()
    names = [c.strip() for c in first.lstrip("\ufeff").rstrip("\r\n").split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(
            f"{path}: not a tardis incremental_book_L2 CSV: the first line must be the "
            f"header {','.join(COLUMNS)} (missing {', '.join(missing)}); got {first[:100]!r}")
    return [names.index(c) for c in COLUMNS], len(names)


def _row(line: str, idx: list[int], width: int):
    """The 8 fields of a structurally valid row (numbers not yet checked), else None;
    "" for a blank line."""
    line = line.rstrip("\r\n")
    if not line:
        return ""
    parts = line.split(",")
    if len(parts) != width or "\x01" in line:
        return None
    ex, sym, ts, lts, snap, side, price, amount = (parts[i] for i in idx)
    if (snap not in _SNAP or side not in _SIDE or not ts.isdigit() or not lts.isdigit()
            or not ex or not sym or not price or not amount or amount[0] == "-"):
        return None
    return ex, sym, ts, lts, snap, side, price, amount


def _decimals(text: str) -> int:
    """decimals_for with a fast path for plain "123.4500" text; raises on malformed."""
    i, dot, f = text.partition(".")
    if i.isdigit() and (not f or f.isdigit()) and text.isascii():
        return len(f.rstrip("0"))
    return decimals_for(text)


class _Progress:
    def __init__(self, enabled: bool, raw, total: int, desc: str) -> None:
        self.bar = None
        self.raw = raw
        self.seen = 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc)

    def update(self) -> None:
        if self.bar is not None:
            pos = self.raw.tell()
            self.bar.update(pos - self.seen)
            self.seen = pos

    def close(self) -> None:
        if self.bar is not None:
            self.update()
            self.bar.close()


def scan_decimals(path: str | Path, progress: bool = False) -> dict[str, tuple[int, int]]:
    """First pass: ``"exchange:symbol"`` -> (price decimals, size decimals), the largest
    any valid row of that book uses, capped at 18; in order of first appearance."""
    path = Path(path)
    text, raw = _open_text(path)
    out: dict[str, list[int]] = {}
    bar = _Progress(progress, raw, path.stat().st_size, "tardis scan")
    try:
        idx, width = _header(text, path)
        n = 0
        try:
            for line in text:
                n += 1
                if n % _PROGRESS_EVERY == 0:
                    bar.update()
                r = _row(line, idx, width)
                if not r:
                    continue
                key = f"{r[0]}:{r[1]}"
                d = out.get(key)
                if d is None:
                    d = out[key] = [0, 0]
                try:
                    pd = _decimals(r[6])
                    sd = _decimals(r[7])
                except (FixedPointError, ValueError):
                    continue  # counted as malformed by the replay pass
                if pd > d[0]:
                    d[0] = min(pd, MAX_DECIMALS)
                if sd > d[1]:
                    d[1] = min(sd, MAX_DECIMALS)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            pass  # truncated archive: the replay pass reports it
    finally:
        bar.close()
        text.close()
        raw.close()
    return {k: (v[0], v[1]) for k, v in out.items()}


def replay_tardis(path: str | Path, depth: int = 1000, speed: float | None = None,
                  progress: bool = False) -> dict:
    """Replay one tardis ``incremental_book_L2`` CSV (or .csv.gz) file into engine books.

    ``speed=None`` replays as fast as possible; ``speed=s`` paces messages by their
    ``local_timestamp`` gaps divided by ``s`` (sleeping for waits over 1 ms).
    ``progress`` shows tqdm bars over the bytes read (scan pass, then replay pass).
    Returns {"books": {"exchange:symbol": Book.to_dict()}, "messages", "levels",
    "malformed", "seconds" (replay pass), "scan_seconds", "levels_per_s",
    "truncated"}."""
    from connectors.replay import warm_up

    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0 or None, got {speed}")
    path = Path(path)
    t_scan = time.perf_counter()
    decimals = scan_decimals(path, progress)
    scan_seconds = time.perf_counter() - t_scan
    names = list(decimals)
    store = BookStore(max(1, len(names)), depth)
    book_of: dict[str, int] = {}
    for i, name in enumerate(names):
        store.configure(i, name, *decimals[name], max_levels=depth)
        book_of[name] = i
    pdec = [decimals[n][0] for n in names]
    sdec = [decimals[n][1] for n in names]
    warm_up()

    pool = RingPool(1, _RING_CAPACITY)
    hdr, px, sz = store.hdr, store.px, store.sz
    hist = np.zeros(0, np.int64)
    wstats = np.zeros(S_WORDS, np.int64)
    state = {"used": 0, "messages": 0, "levels": 0, "malformed": 0}

    def drain() -> None:
        ring_drain(pool.ctl[0], pool.data[0], hdr, px, sz, 1 << 20, hist, wstats)
        state["used"] = 0

    def room(n: int) -> None:
        """Make sure ``n`` more records fit in the ring without waiting."""
        nonlocal pool
        if n > pool.capacity:
            drain()
            pool = RingPool(1, 1 << (2 * n - 1).bit_length())
        elif state["used"] + n > pool.capacity:
            drain()
        state["used"] += n

    def status(b: int, st: int) -> None:
        room(1)
        push_status(pool.ctl[0], pool.data[0], b, st)

    def flush(b: int, m: _Msg) -> None:
        if m.clear:  # a snapshot is published worst first: keep the last of a repeated price
            bids = dict(zip(m.bp, m.bs))
            asks = dict(zip(m.ap, m.as_))
            m.bp, m.bs, m.ap, m.as_ = list(bids), list(bids.values()), list(asks), \
                list(asks.values())
        while True:
            nb, na = len(m.bp), len(m.ap)
            if nb + na == 0 and not m.clear:
                return
            room(nb + na + 2)
            r, bad, n = push_message(
                pool.ctl[0], pool.data[0], b, m.clear,
                "\x01".join(m.bp).encode(), "\x01".join(m.bs).encode(),
                "\x01".join(m.ap).encode(), "\x01".join(m.as_).encode(),
                pdec[b], sdec[b], -1, m.ts, m.recv, 0, 0, -1)
            if r == PUSH_OK:
                state["messages"] += 1
                state["levels"] += n
                return
            if r == PUSH_FULL:  # cannot happen after room(); be safe anyway
                drain()
                continue
            # a number that does not parse or fit the book's scale: drop that row only
            state["malformed"] += 1
            if bad < nb:
                del m.bp[bad], m.bs[bad]
            else:
                del m.ap[bad - nb], m.as_[bad - nb]

    text, raw = _open_text(path)
    bar = _Progress(progress, raw, path.stat().st_size, "tardis replay")
    pending: dict[int, _Msg] = {}
    in_snapshot: dict[int, bool] = {}
    need_clear: set[int] = set()  # books whose snapshot run has not published yet
    cur_lts = None
    first_us = 0
    wall0 = 0.0
    truncated = False
    t0 = time.perf_counter()
    try:
        idx, width = _header(text, path)
        n_lines = 0
        try:
            for line in text:
                n_lines += 1
                if n_lines % _PROGRESS_EVERY == 0:
                    bar.update()
                r = _row(line, idx, width)
                if not r:
                    if r is None:
                        state["malformed"] += 1
                    continue
                ex, sym, ts, lts, snap, side, price, amount = r
                if lts != cur_lts:
                    for b, m in pending.items():
                        flush(b, m)
                    pending.clear()
                    cur_lts = lts
                    if speed is not None:
                        us = int(lts)
                        if wall0 == 0.0:
                            first_us, wall0 = us, time.perf_counter()
                        delay = wall0 + (us - first_us) / 1e6 / speed - time.perf_counter()
                        if delay > _SLEEP_MIN:
                            drain()  # books are current while we wait
                            time.sleep(delay)
                b = book_of[f"{ex}:{sym}"]
                is_snap = _SNAP[snap]
                m = pending.get(b)
                was = in_snapshot.get(b)
                if is_snap != was:
                    if m is not None:  # the other kind of rows at the same timestamp
                        flush(b, m)
                        m = None
                    if is_snap:  # a snapshot run starts: clear, not live until it ends
                        status(b, SYNCING)
                        need_clear.add(b)
                    elif was:  # the run ended: the book is complete
                        status(b, LIVE)
                    in_snapshot[b] = is_snap
                if m is None:
                    m = pending[b] = _Msg(b in need_clear)
                    need_clear.discard(b)
                m.ts = int(ts) * 1000
                m.recv = int(lts) * 1000
                if side == "bid":
                    m.bp.append(price)
                    m.bs.append(amount)
                else:
                    m.ap.append(price)
                    m.as_.append(amount)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            truncated = True
        for b, m in pending.items():
            flush(b, m)
        for b, snapping in in_snapshot.items():
            if snapping:
                status(b, LIVE)
        drain()
    finally:
        bar.close()
        text.close()
        raw.close()
    seconds = time.perf_counter() - t0
    return {
        "books": {name: store.book(i).to_dict() for i, name in enumerate(names)},
        "messages": state["messages"],
        "levels": state["levels"],
        "malformed": state["malformed"],
        "seconds": seconds,
        "scan_seconds": scan_seconds,
        "levels_per_s": state["levels"] / seconds if seconds > 0 else 0.0,
        "truncated": truncated,
    }
