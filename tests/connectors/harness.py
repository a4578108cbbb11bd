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
    def __init__(self, cls, symbols, price_decimals: int, size_decimals: int) -> None:
        self.symbols = list(symbols)
        inst = {s: Instrument(cls.exchange, s, s, price_decimals, size_decimals)
                for s in symbols}
        self.store = BookStore(len(symbols), 100)
        for i, s in enumerate(symbols):
            self.store.configure(i, f"{cls.exchange}:{s}", price_decimals, size_decimals)
        pool = RingPool(1, 1 << 12)
        self.ring = pool.ctl[0], pool.data[0]
        targets = {s: BookTarget(*self.ring, i, self.store.hdr) for i, s in enumerate(symbols)}
        self.proto = cls(inst, targets)
        self.proto.on_connect()
        self._drain()

    def _drain(self) -> None:
        s = self.store
        ring_drain(*self.ring, s.hdr, s.px, s.sz, 1 << 20, np.zeros(0, np.int64),
                   np.zeros(S_WORDS, np.int64))

    def frame(self, frame) -> None:
        """Feed one frame (a dict/list is JSON-encoded), then apply and health-check."""
        if not isinstance(frame, str):
            frame = orjson.dumps(frame).decode()
        self.proto.handle_frame(frame, 0)
        self._drain()
        self.proto.check_health()
        self._drain()

    def book(self) -> dict:
        return self.store.book(0).to_dict()

    @property
    def stats(self):
        return self.proto.stats.sym(self.symbols[0])
