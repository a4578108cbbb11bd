"""Replay recorded sessions through the live connector code and the engine, no network.

Frames go to the same ``Protocol.handle_frame`` as live traffic; REST snapshots that
were recorded in the session are served to the sync logic in their recorded order
(a recorded response is delivered when the protocol has asked for that symbol's
snapshot; an unrequested one is counted and skipped).  The ring is drained after
every frame on the calling thread, so replay is deterministic and the writer's
verdicts (checksum mismatch, crossed book) reach the protocol before the next frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connectors.base import BookTarget, ConfigError, ExchangeStats, Instrument, Protocol
from connectors.progress import Bar
from connectors.recorded import Frame, HttpResponse, Session, load_session, session_events
from engine.constants import H_CHECKSUM_FAIL, H_CHECKSUM_OK, H_STATUS, HDR_WORDS, STATUS_NAMES
from engine.histogram import hist_record
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore


class Pacer:
    """Replays at ``speed`` times the recorded pace (None: as fast as possible): each
    event is due at start + (its recorded time - the first one's) / speed."""

    def __init__(self, speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.first_ns: int | None = None
        self.start = 0.0

    def wait(self, recorded_ns: int) -> None:
        if self.speed is None:
            return
        if self.first_ns is None:
            self.first_ns, self.start = recorded_ns, time.perf_counter()
            return
        due = self.start + (recorded_ns - self.first_ns) / 1e9 / self.speed
        ahead = due - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)


def registry() -> dict[str, str]:
    """Recorded-session name (file prefix) -> "module:Class" of the protocol."""
    from connectors import RECORDINGS

    return RECORDINGS


@dataclass
class ReplayResult:
    exchange: str
    recording: str
    frames: int = 0
    level_updates: int = 0
    books: int = 0
    checksums_ok: int = 0
    checksums_failed: int = 0
    gaps: int = 0
    resyncs: int = 0
    malformed: int = 0
    unrequested_snapshots: int = 0
    seconds: float = 0.0
    statuses: dict[str, str] = field(default_factory=dict)
    stats: ExchangeStats | None = None
    store: BookStore | None = None
    symbols: list[str] = field(default_factory=list)
    depth: int = 0            # levels each book keeps (the store's rows may be longer)

    @property
    def ok(self) -> bool:
        return self.checksums_failed == 0 and all(s == "live" for s in self.statuses.values())

    def summary(self) -> dict:
        return {
            "exchange": self.exchange, "recording": self.recording, "frames": self.frames,
            "level_updates": self.level_updates, "books": self.books,
            "checksums_verified": self.checksums_ok, "checksum_mismatches": self.checksums_failed,
            "gaps": self.gaps, "resyncs": self.resyncs, "malformed": self.malformed,
            "unrequested_snapshots": self.unrequested_snapshots,
            "seconds": round(self.seconds, 4),
            "msgs_per_s": round(self.frames / self.seconds) if self.seconds else 0,
            "levels_per_s": round(self.level_updates / self.seconds) if self.seconds else 0,
            "books_live": sum(s == "live" for s in self.statuses.values()),
            "statuses": self.statuses, "ok": self.ok,
        }

    def books_dict(self) -> dict[str, dict]:
        assert self.store is not None
        return {s: self.store.book(i).to_dict() for i, s in enumerate(self.symbols)}


def session_instruments(cls: type[Protocol], session: Session) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for resp in session.instrument_responses:
        out.update(cls.parse_instruments(resp.body))
    return out


def session_symbols(cls: type[Protocol], session: Session,
                    instruments: dict[str, Instrument]) -> list[str]:
    """The natives of the session's recorded ``l2_book`` symbols (unified names)."""
    wanted = (session.config or {}).get("l2_book", [])
    by_unified = {i.unified: n for n, i in instruments.items()}
    out = []
    for u in wanted:
        native = by_unified.get(u) or (u if u in instruments else None)
        if native is None:
            native = cls.native_from_recording(u, instruments)
        if native is None:
            raise ConfigError(f"{cls.exchange}: recorded symbol {u} not in the instrument list")
        out.append(native)
    return out


def replay_rig(cls, instruments: dict, symbols: list[str], depth: int, ring_capacity: int,
               verify_checksums: bool):
    """What a replay feeds: a store of ``symbols`` at ``depth``, one ring into it and the
    connector ``cls`` publishing to that ring.  Returns (store, ring ctl, ring data,
    protocol)."""
    store = BookStore(len(symbols), depth)
    pool = RingPool(1, ring_capacity)
    ctl, data = pool.ctl[0], pool.data[0]
    targets = {}
    for i, s in enumerate(symbols):
        inst = instruments[s]
        store.configure(i, f"{cls.exchange}:{s}", inst.price_decimals, inst.size_decimals,
                        depth)
        targets[s] = BookTarget(ctl, data, i, store.hdr)
    return store, ctl, data, cls(instruments, targets, verify_checksums=verify_checksums)


def replay_session(directory: str | Path, recording: str, depth: int | None = None,
                   verify_checksums: bool = True, symbols: list[str] | None = None,
                   ring_capacity: int = 1 << 16, drain_every: int = 1,
                   speed: float | None = None, progress: bool = False,
                   latency: np.ndarray | None = None) -> ReplayResult:
    """Replay one recorded session.  ``drain_every`` > 1 lets the writer apply frames in
    batches (as a writer thread does live), so its verdicts reach the connector up to
    that many frames later; 1 applies and checks after every frame.  ``latency`` (an
    engine.histogram.new_hist()) records, per drain, the ns from the first frame handed
    to the connector to its levels being visible in the book."""
    from connectors import load

    if recording not in registry():
        raise ConfigError(f"no connector replays {recording} recordings "
                          f"(known: {', '.join(sorted(registry()))})")
    cls = load(registry()[recording])
    depth = depth or cls.depth  # the depth the venue keeps: truncation semantics match
    session = load_session(directory, recording)
    instruments = session_instruments(cls, session)
    symbols = symbols or cls.recorded_symbols(session, session_symbols(cls, session,
                                                                        instruments))
    store, ctl, data, proto = replay_rig(cls, instruments, symbols, depth, ring_capacity,
                                         verify_checksums)
    hist = np.zeros(0, np.int64)
    wstats = np.zeros(S_WORDS, np.int64)
    hdr, px, sz = store.hdr, store.px, store.sz
    res = ReplayResult(cls.exchange, recording, books=len(symbols), stats=proto.stats,
                       store=store, symbols=symbols, depth=depth)
    # (is websocket, frame or HTTP record, receive ns): decoded from the file up front
    events = [(ev.source == "ws", ev.record.data if ev.source == "ws" else ev.record,
               int(ev.record.ts * 1e9))
              for ev in session_events(session) if isinstance(ev.record, (Frame, HttpResponse))]
    pending: dict[str, object] = {}
    # a level takes >= 9 bytes of JSON: draining once this many bytes arrived keeps the
    # ring (a quarter of it) from filling between drains
    byte_budget = ring_capacity // 4 * 9
    warm_up()
    t0 = time.perf_counter()
    proto.on_connect()
    while proto.rest_requests:  # snapshots asked for at connect (Bitstamp asks for all)
        req = proto.rest_requests.popleft()
        pending[req.symbol] = req
    since_drain = 0
    since_bytes = 0
    handle_frame = proto.handle_frame
    pacer = Pacer(speed)
    t_in = 0
    bar = Bar(progress, len(events), recording)
    for is_ws, payload, recv_ns in events:
        bar.tick()
        pacer.wait(recv_ns)
        if is_ws:
            if latency is not None and since_drain == 0:
                t_in = time.perf_counter_ns()
            res.frames += 1
            handle_frame(payload, recv_ns)  # a REST event below flushes held frames first
            since_drain += 1
            since_bytes += len(payload)
            if since_drain < drain_every and since_bytes < byte_budget \
                    and not proto.rest_requests:
                continue
        else:
            proto.flush()
            sym = proto.rest_symbol(payload.url)
            req = pending.pop(sym, None) if sym else None
            if req is None:
                res.unrequested_snapshots += 1
                continue
            proto.handle_rest(req, payload.body, recv_ns)
        proto.flush()
        ring_drain(ctl, data, hdr, px, sz, 1 << 20, hist, wstats)
        if latency is not None and is_ws:
            hist_record(latency, time.perf_counter_ns() - t_in)
        since_drain = 0
        since_bytes = 0
        if proto.touched:  # the writer's verdicts on what this frame changed
            resyncs = proto.stats.reasons.total()
            proto.check_health(proto.touched)
            proto.touched.clear()
            if proto.stats.reasons.total() != resyncs:
                ring_drain(ctl, data, hdr, px, sz, 1 << 20, hist, wstats)
        while proto.rest_requests:
            req = proto.rest_requests.popleft()
            pending[req.symbol] = req
        proto.outbox.clear()  # resubscribes cannot be sent to a recording
    bar.close()
    proto.flush()
    ring_drain(ctl, data, hdr, px, sz, 1 << 20, hist, wstats)
    proto.check_health(proto.touched)
    ring_drain(ctl, data, hdr, px, sz, 1 << 20, hist, wstats)
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


_warm = False


def warm_up() -> None:
    """Load (or compile) the kernels once so that timings measure the replay itself."""
    global _warm
    if _warm:
        return
    from connectors.publish import RAW_MAX_LEVELS, push_message, push_raw_keyed, push_status

    store = BookStore(1, 8)
    pool = RingPool(1, 64)
    push_status(pool.ctl[0], pool.data[0], 0, 1)
    push_message(pool.ctl[0], pool.data[0], 0, True, b"1", b"1", b"2", b"1", 0, 0, 1, 0, 0,
                 0, 0, -1)
    push_raw_keyed(pool.ctl[0], pool.data[0], 0, b'{"b":[["1","1"]]}', b'"b":', b'"a":',
                   b'"c":"', 0, 0, 1, 0, 0, False, np.zeros((5, 2 * RAW_MAX_LEVELS), np.int64),
                   False, -1)
    ring_drain(pool.ctl[0], pool.data[0], store.hdr, store.px, store.sz, 64,
               np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))
    _warm = True


def recordings_in(paths: list[str]) -> list[tuple[Path, str]]:
    """(directory, recording name) pairs for files or directories given by a user."""
    out: list[tuple[Path, str]] = []
    known = registry()
    for p in map(Path, paths):
        if p.is_dir():
            names = sorted({f.name.split(".")[0] if not f.name.startswith("BIT.COM")
                            else "BIT.COM" for f in p.glob("*.0")})
            out.extend((p, n) for n in names if n in known)
            continue
        if not p.exists():
            raise FileNotFoundError(f"no such recording: {p}")
        name = p.name
        for k in sorted(known, key=len, reverse=True):
            if name == k or name.startswith(k + "."):
                if (p.parent, k) not in out:
                    out.append((p.parent, k))
                break
        else:
            raise ConfigError(f"{p}: not a recording of a supported exchange "
                              f"({', '.join(sorted(known))})")
    return out
