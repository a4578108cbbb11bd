"""The resync machinery of venues whose only way to a fresh snapshot is to resubscribe
(Coinbase, Gemini): batched unsubscribe + subscribe, and a reconnect when a
(re)subscribed book's snapshot does not come in time."""

from __future__ import annotations

import logging
import time

from connectors.base import Protocol

log = logging.getLogger("hftbook.connectors")


class ResubscribingProtocol(Protocol):
    """Books go live on a websocket snapshot.  A resync unsubscribes and subscribes the
    book channel; resyncs are batched per frame or health check, so a connection-wide
    event costs two messages per batch, not two per book."""

    snapshot_timeout = 20.0       # seconds a (re)subscribed book may wait for its snapshot

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.live = dict.fromkeys(self.targets, False)
        self.waiting: dict[str, float] = {}    # symbol -> monotonic time (re)subscribed
        self._resubscribe: set[str] = set()

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        """``subscribe``/``unsubscribe`` frames for the book channel of ``symbols``."""
        raise NotImplementedError

    def snapshot_applied(self, symbol: str) -> None:
        """Call when a snapshot made ``symbol`` live."""
        self.live[symbol] = True
        self.waiting.pop(symbol, None)

    def on_connect(self) -> None:
        self.outbox.clear()            # requests meant for the previous connection
        self._resubscribe.clear()
        super().on_connect()
        self.waiting = dict.fromkeys(self.targets, time.monotonic())

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.waiting.clear()
        self._resubscribe.clear()

    def reset_symbol(self, symbol: str) -> None:
        self.live[symbol] = False

    def request_resync(self, symbol: str) -> None:
        self._resubscribe.add(symbol)

    def handle_frame(self, frame: bytes | str, recv_ns: int) -> None:
        super().handle_frame(frame, recv_ns)
        if self._resubscribe:
            self._flush_resubscribes()

    def check_health(self, symbols=None) -> None:
        super().check_health(symbols)
        if self._resubscribe:
            self._flush_resubscribes()
        self._check_snapshot_timeouts()

    def _flush_resubscribes(self) -> None:
        symbols = [s for s in self.targets if s in self._resubscribe]
        self._resubscribe.clear()
        now = time.monotonic()
        for batch in self.symbol_batches(symbols):
            self.outbox.extend(self.book_channel_messages("unsubscribe", batch))
            self.outbox.extend(self.book_channel_messages("subscribe", batch))
            for s in batch:
                self.waiting[s] = now

    def _check_snapshot_timeouts(self) -> None:
        if not self.waiting or self.reconnect_requested:
            return
        now = time.monotonic()
        late = [s for s, t in self.waiting.items() if now - t > self.snapshot_timeout]
        if late:
            log.warning("%s: no snapshot for %s within %.0fs: reconnecting", self.exchange,
                        ", ".join(late[:5]), self.snapshot_timeout)
            self.stats.reasons["snapshot timeout"] += 1
            self.waiting.clear()
            self.reconnect_requested = True
