"""A protocol driven frame by frame with no network: one ring drained after every frame,
the writer's verdicts checked as replay does.  Shared by the connector unit tests."""

from __future__ import annotations

import numpy as np
import orjson

from connectors.base import BookTarget, Instrument
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore


class ProtocolHarness:
    """``cls`` over ``symbols`` (one book each, in order) at the given scales.
    ``instruments`` replaces the plain Instrument per symbol (venue subclasses);
    ``options`` are extra protocol keyword arguments."""

    def __init__(self, cls, symbols, price_decimals: int | None = None,
                 size_decimals: int | None = None, *, depth: int = 100,
                 ring_capacity: int = 1 << 12, instruments: dict | None = None,
                 options: dict | None = None, recv_ns=0, health_each_frame: bool = True
                 ) -> None:
        """Scales: the given decimals, else each symbol's instrument's.  ``recv_ns``: the
        receive time given with each frame (an int, or a callable such as
        ``time.monotonic_ns``).  ``health_each_frame``: read the writer's verdicts after
        every frame (False: only when the test calls ``check_health``)."""
        self.symbols = list(symbols)
        inst = instruments or {s: Instrument(cls.exchange, s, s, price_decimals, size_decimals)
                               for s in symbols}
        self.recv_ns = recv_ns
        self.health_each_frame = health_each_frame
        self.store = BookStore(len(symbols), depth)
        for i, s in enumerate(symbols):
            self.store.configure(i, f"{cls.exchange}:{s}",
                                 inst[s].price_decimals if price_decimals is None
                                 else price_decimals,
                                 inst[s].size_decimals if size_decimals is None
                                 else size_decimals)
        pool = RingPool(1, ring_capacity)
        self.ring = pool.ctl[0], pool.data[0]
        targets = {s: BookTarget(*self.ring, i, self.store.hdr) for i, s in enumerate(symbols)}
        self.proto = cls(inst, targets, **(options or {}))
        self.proto.on_connect()
        self._drain()

    def _drain(self) -> None:
        s = self.store
        ring_drain(*self.ring, s.hdr, s.px, s.sz, 1 << 20, np.zeros(0, np.int64),
                   np.zeros(S_WORDS, np.int64))

    def frame(self, frame) -> None:
        """Feed one frame (a dict/list is JSON-encoded; text and bytes go as they are),
        then apply and health-check."""
        if isinstance(frame, (dict, list)):
            frame = orjson.dumps(frame).decode()
        self.proto.handle_frame(frame, self.recv_ns() if callable(self.recv_ns)
                                else self.recv_ns)
        self._drain()
        if self.health_each_frame:
            self.proto.check_health()
            self._drain()

    def book(self, i: int = 0) -> dict:
        return self.store.book(i).to_dict()

    def sent(self) -> list:
        """The frames the protocol queued to send since the last call, decoded."""
        out = [orjson.loads(m) for m in self.proto.outbox]
        self.proto.outbox.clear()
        return out

    @property
    def stats(self):
        return self.proto.stats.sym(self.symbols[0])


class ExchangeHarness(ProtocolHarness):
    """The same, in the spelling of the tests that read whole-exchange counters:
    ``feed`` / ``drain``, and ``stats`` is the exchange's ExchangeStats."""

    feed = ProtocolHarness.frame
    drain = ProtocolHarness._drain

    @property
    def stats(self):
        return self.proto.stats
