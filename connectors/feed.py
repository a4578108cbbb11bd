"""A live feed: instruments, book store, rings, writer threads and one websocket
connection per chunk of symbols, for any set of exchanges, on one asyncio loop.

The event loop thread is the single producer of every ring (SPSC holds).  By default
every book has its own queue and the tier engine (engine.tiers: hot, warm and cold
workers, work stealing, rebalancing) consumes them, one worker per queue at a time;
mode "single" keeps the original layout (one ring per exchange, one writer thread).
``Feed`` is what ``hftbook run`` and the loopback tests drive."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp

from connectors.base import BookTarget, ConfigError, ExchangeStats, Instrument, Protocol
from connectors.runner import Connection
from engine.queues import QueuePool, queue_capacity
from engine.ring import RingPool
from engine.store import BookStore
from engine.tiers import TierConfig, TierEngine
from engine.writer import Writer

log = logging.getLogger("hftbook.feed")


@dataclass
class ExchangeSpec:
    protocol: type[Protocol]
    symbols: list[str]                  # native symbols
    ws_url: str | None = None           # overrides (simulator, testnet)
    rest_url: str | None = None
    instruments: dict[str, Instrument] | None = None  # skip the REST instrument fetch
    options: dict = field(default_factory=dict)       # extra Protocol keyword arguments


async def fetch_instruments(spec: ExchangeSpec, http: aiohttp.ClientSession,
                            bodies: list | None = None) -> dict:
    """The venue's instruments; the raw responses are appended to ``bodies`` if given
    (a recording keeps them, so a replay scales its books exactly as the run did)."""
    cls = spec.protocol
    out: dict[str, Instrument] = {}
    for req in cls.instrument_requests():
        url = req.url
        if spec.rest_url:
            url = spec.rest_url + url[len(cls.rest_url):]
        headers = {"Content-Type": "application/json"} if req.body else None
        for _page in range(10_000):  # paged lists (Bybit cursors, Gemini details); bounded
            async with http.request(req.method, url, data=req.body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=20)) as r:
                if r.status != 200:
                    raise ConfigError(f"{cls.exchange}: instrument list {req.method} {url} "
                                      f"-> HTTP {r.status}")
                body = await r.read()
            if bodies is not None:
                bodies.append({"url": url, "body": body.decode("utf-8", "replace")})
            out.update(cls.parse_instruments(body))
            url = cls.next_instrument_url(url, body)
            if not url:
                break
    return out


def _message_levels(spec: ExchangeSpec) -> int:
    """Levels a side the venue's largest message can carry: connectors trim snapshots
    to their protocol's depth (which some venues let the options raise)."""
    return max(spec.protocol.depth, int(spec.options.get("depth") or 0))


class Feed:
    def __init__(self, specs: list[ExchangeSpec], depth: int = 1000,
                 ring_capacity: int = 1 << 16, writer_cpu: int | None = None,
                 connection_options: dict | None = None, record_dir: str | None = None,
                 tiers: TierConfig | None = None, store_factory=None) -> None:
        self.specs = specs
        self.tier_config = tiers if tiers is not None else TierConfig()
        # store_factory(n_books, depth) -> BookStore: e.g. engine.shm.create for a store
        # in named shared memory; None = a private in-process store
        self.store_factory = store_factory
        self.depth = depth
        self.ring_capacity = ring_capacity
        self.writer_cpu = writer_cpu
        self.connection_options = connection_options or {}
        self.record_dir = record_dir      # write every frame and REST answer here
        self.recorders: dict[str, object] = {}
        self._instrument_bodies: dict[str, list] = {}
        self.stats: dict[str, ExchangeStats] = {}
        self.connections: list[Connection] = []
        self.index: dict[tuple[str, str], int] = {}   # (exchange, native) -> book
        self.store: BookStore | None = None
        self.pool: RingPool | None = None          # mode "single": one ring per exchange
        self.queues: QueuePool | None = None       # tier modes: one queue per book
        self.writer: Writer | None = None          # mode "single"
        self.tiers: TierEngine | None = None       # tier modes, once running
        self.stop_event: asyncio.Event | None = None

    async def setup(self, http: aiohttp.ClientSession) -> None:
        """Instruments (REST unless given), store, rings, protocols; raises ConfigError
        for an unknown symbol before anything connects."""
        for spec in self.specs:
            bodies = self._instrument_bodies.setdefault(spec.protocol.exchange, [])
            if spec.instruments is None:
                spec.instruments = await fetch_instruments(spec, http, bodies)
            unknown = [s for s in spec.symbols if s not in spec.instruments]
            if unknown:
                raise ConfigError(f"{spec.protocol.exchange}: unknown symbol(s): "
                                  f"{', '.join(unknown)}")
        n_books = sum(len(s.symbols) for s in self.specs)
        self.store = (self.store_factory or BookStore)(max(n_books, 1), self.depth)
        single = self.tier_config.mode == "single"
        if single:
            self.pool = RingPool(len(self.specs), self.ring_capacity)
        else:  # each queue holds its venue's largest message (a full-depth snapshot)
            caps = [queue_capacity(_message_levels(spec)) for spec in self.specs
                    for _ in spec.symbols]
            self.queues = QueuePool(caps or [queue_capacity(1)])
        b = 0
        for r, spec in enumerate(self.specs):
            cls = spec.protocol
            stats = self.stats.setdefault(cls.exchange, ExchangeStats(cls.exchange))
            ring = self.pool.ring(r) if single else None
            targets = {}
            for s in spec.symbols:
                inst = spec.instruments[s]
                self.store.configure(b, f"{cls.exchange}:{s}", inst.price_decimals,
                                     inst.size_decimals, min(self.depth, cls.depth))
                if hasattr(self.store, "describe"):  # shared store: names for readers
                    self.store.describe(b, cls.exchange, s, inst)
                self.index[(cls.exchange, s)] = b
                if single:
                    targets[s] = BookTarget(ring.ctl, ring.data, b, self.store.hdr)
                else:
                    targets[s] = BookTarget(self.queues.ctl[b], self.queues.data(b), b,
                                            self.store.hdr)
                b += 1
            recorder = self._recorder(spec) if self.record_dir else None
            step = cls.max_symbols_per_connection
            for n, i in enumerate(range(0, len(spec.symbols), step)):
                chunk = spec.symbols[i:i + step]
                proto = cls(spec.instruments, {s: targets[s] for s in chunk}, stats,
                            ws_url=spec.ws_url, rest_url=spec.rest_url, **spec.options)
                self.connections.append(Connection(proto, chunk, http, recorder=recorder,
                                                   conn_id=n, **self.connection_options))

    def _recorder(self, spec: ExchangeSpec):
        """One recording per exchange (its connections share it: one event loop)."""
        from pathlib import Path

        from connectors import PROTOCOLS
        from connectors.recording import RecordingWriter

        ex = spec.protocol.exchange
        Path(self.record_dir).mkdir(parents=True, exist_ok=True)
        meta = {"protocol": PROTOCOLS.get(ex, ""), "config": {"l2_book": list(spec.symbols)},
                "instruments": self._instrument_bodies.get(ex, [])}
        rec = RecordingWriter(str(Path(self.record_dir) / f"{ex}.hfr"), ex, meta)
        self.recorders[ex] = rec
        return rec

    def _per_venue_order(self) -> list[tuple[Connection, int]]:
        """Each connection with its index among its venue's connections."""
        seen: dict[str, int] = {}
        out = []
        for c in self.connections:
            k = seen.get(c.protocol.exchange, 0)
            seen[c.protocol.exchange] = k + 1
            out.append((c, k))
        return out

    async def _staggered(self, conn_k, _i) -> None:
        """Venues cap new connections per second (OKX: 3/s): open them spaced out."""
        conn, k = conn_k
        delay = k * conn.protocol.connect_interval
        if delay:
            try:
                await asyncio.wait_for(self.stop_event.wait(), delay)
                return
            except TimeoutError:
                pass
        await conn.run(self.stop_event)

    @property
    def running(self) -> bool:
        """The engine threads are consuming (set once ``run`` has started them)."""
        return self.writer is not None or self.tiers is not None

    @property
    def engine_alive(self) -> bool:
        """Every engine thread (the tier workers, or the single writer) is alive."""
        if self.tiers is not None:
            return self.tiers.alive
        return self.writer is not None and self.writer.alive

    def engine_loops(self) -> int:
        """Polls made by every engine thread so far (grows while they run)."""
        if self.tiers is not None:
            return sum(c["loops"] for c in self.tiers.counters())
        return self.writer.counters()["loops"] if self.writer is not None else 0

    def latency_hist(self):
        """Receive -> visible latency buckets (engine.histogram) of every writer."""
        if self.tiers is not None:
            return self.tiers.latency_hist()
        return self.writer.hist.copy() if self.writer is not None else None

    def book(self, exchange: str, native: str):
        return self.store.book(self.index[(exchange, native)])

    async def run(self, stop: asyncio.Event | None = None,
                  http: aiohttp.ClientSession | None = None) -> None:
        """Run until ``stop`` is set; then join the writer (after draining)."""
        self.stop_event = stop or asyncio.Event()
        own = http is None
        http = http or aiohttp.ClientSession()
        try:
            if self.store is None:
                await self.setup(http)
            if self.tier_config.mode == "single":
                self.writer = Writer(self.store, self.pool, list(range(len(self.pool))),
                                     name="writer-0", cpu=self.writer_cpu).start()
            else:
                try:
                    engine = TierEngine(self.store, self.queues, self.tier_config)
                except ValueError as exc:
                    raise ConfigError(f"tiers: {exc}") from None
                log.info("%s", engine.describe())
                self.tiers = engine.start()
            tasks = [asyncio.ensure_future(self._staggered(c, i))
                     for i, c in enumerate(self._per_venue_order())]
            try:
                await self.stop_event.wait()
            finally:
                await asyncio.gather(*tasks, return_exceptions=True)
                if self.writer is not None:
                    self.writer.stop()
                if self.tiers is not None:
                    self.tiers.stop()
                for rec in self.recorders.values():
                    rec.close()
        finally:
            if own:
                await http.close()

    def summary(self) -> dict:
        from engine.constants import (
            H_CHECKSUM_FAIL,
            H_CHECKSUM_OK,
            H_STATUS,
            HDR_WORDS,
            STATUS_NAMES,
        )

        out = {}
        for ex, st in self.stats.items():
            books = [b for (e, _), b in self.index.items() if e == ex]
            statuses = [STATUS_NAMES[int(self.store.hdr[b * HDR_WORDS + H_STATUS])]
                        for b in books]
            tot = st.totals()
            out[ex] = {
                "books": len(books), "books_live": statuses.count("live"),
                "books_stale": len(books) - statuses.count("live"),
                "messages": tot.get("messages", 0), "level_updates": tot.get("levels", 0),
                "gaps": tot.get("gaps", 0), "resyncs": tot.get("resyncs", 0),
                "checksums_verified": sum(int(self.store.hdr[b * HDR_WORDS + H_CHECKSUM_OK])
                                          for b in books),
                "checksum_failures": sum(int(self.store.hdr[b * HDR_WORDS + H_CHECKSUM_FAIL])
                                         for b in books),
                "malformed": tot.get("malformed", 0), "dropped": tot.get("dropped", 0),
                "connects": st.connects, "disconnects": st.disconnects,
            }
        return out
