"""What every connector shares: instruments, book targets, counters, and the pure
protocol base class that turns frames into engine records and keeps books in sync.

A ``Protocol`` does no I/O.  It is fed frames (``handle_frame``) and REST responses
(``handle_rest``) and leaves what it wants done in ``outbox`` (frames to send) and
``rest_requests`` (snapshots to fetch).  The asyncio runner (connectors.runner) and the
replay driver (connectors.replay) both drive the same object, so recorded sessions
exercise exactly the code that runs live.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from connectors.publish import (
    NO_CHECKSUM,
    NO_STATUS,
    PUSH_COUNT_MISMATCH,
    PUSH_FULL,
    PUSH_OK,
    PUSH_TOO_LARGE,
    RAW_MAX_LEVELS,
    SEP,
    push_message,
    push_raw_keyed,
    push_raw_update,
    push_status,
)
from engine.constants import (
    CROSSED,
    H_CHECKSUM_FAIL,
    H_CROSSED,
    H_STATUS,
    HDR_WORDS,
    LIVE,
    STALE,
    SYNCING,
)
from engine.fixedpoint import PARSE_MALFORMED, PARSE_OVERFLOW, PARSE_PRECISION

log = logging.getLogger("hftbook.connectors")

EXCERPT = 160  # characters of a bad frame kept in logs


class MalformedFrame(ValueError):
    """A frame that cannot be understood; ``symbol`` is set when it concerned one book."""

    def __init__(self, reason: str, symbol: str | None = None) -> None:
        super().__init__(reason)
        self.symbol = symbol


class ConfigError(ValueError):
    """Bad connector configuration (unknown symbol, ...): raised before anything starts."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable book: exchange-native and unified names and fixed-point scales."""

    exchange: str
    native: str               # as the exchange spells it: BTCUSDT, XBT/USD, BTC-USDT-SWAP
    unified: str              # BTC-USDT, BTC-USDT-PERP, BTC-USD-20220527
    price_decimals: int
    size_decimals: int
    tick: str = ""
    lot: str = ""
    kind: str = "spot"        # spot, perp, future, option


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST call a protocol wants made; the response comes back via handle_rest."""

    symbol: str
    url: str
    kind: str = "snapshot"
    method: str = "GET"
    body: bytes | None = None     # JSON request body (POST)


@dataclass(slots=True)
class BookTarget:
    """Where one symbol's records go: a ring (producer side) and a book index."""

    ctl: object   # int64[CTL_WORDS] ring control block
    data: object  # int64[REC_FIELDS, capacity] ring records
    book: int
    hdr: object   # the store's header array (read: checksum/crossed counters, status)


@dataclass
class SymbolStats:
    messages: int = 0
    levels: int = 0
    snapshots: int = 0
    gaps: int = 0
    resyncs: int = 0
    malformed: int = 0
    dropped: int = 0          # messages dropped (ring full past the timeout)
    crossed: int = 0
    checksum_failures: int = 0
    stale_events: int = 0


@dataclass
class ExchangeStats:
    exchange: str
    symbols: dict[str, SymbolStats] = field(default_factory=dict)
    malformed_frames: int = 0      # frames not attributable to a symbol
    unknown_symbol_frames: int = 0
    ignored_frames: int = 0        # acks, heartbeats, other channels
    connects: int = 0
    disconnects: int = 0
    reasons: Counter = field(default_factory=Counter)  # resync reasons

    def sym(self, symbol: str) -> SymbolStats:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = SymbolStats()
        return s

    def totals(self) -> dict[str, int]:
        out: Counter = Counter()
        for s in self.symbols.values():
            out.update({k: v for k, v in vars(s).items()})
        out["malformed"] += self.malformed_frames
        return dict(out)


def _levels(joined: tuple[bytes, bytes]) -> int:
    """Levels in one side's joined price texts."""
    return joined[0].count(SEP) + 1 if joined[0] else 0


_PUSH_ERRORS = {
    PARSE_MALFORMED: "malformed number",
    PARSE_PRECISION: "more decimals than the instrument scale",
    PARSE_OVERFLOW: "number outside int64 at the instrument scale",
    PUSH_COUNT_MISMATCH: "price and size counts differ",
}


class Protocol:
    """Base of every exchange protocol: pure state machines, no I/O.

    Subclasses set the class attributes and implement ``subscribe_messages``,
    ``on_message`` and, where the sync needs REST, ``on_snapshot``; they publish with
    ``publish`` and report problems with ``resync``."""

    exchange = ""
    ws_url = ""
    rest_url = ""
    max_symbols_per_connection = 100
    subscribe_batch = 50          # symbols per subscribe message
    subscribe_interval = 0.0      # seconds between subscribe messages (rate limits)
    ping_interval: float | None = None  # app-level ping period, if the venue wants one
    connect_interval = 0.0        # seconds between opening this venue's connections
    checksum_scheme = NO_CHECKSUM
    depth = 1000                  # levels requested / kept

    def __init__(self, instruments: dict[str, Instrument], targets: dict[str, BookTarget],
                 stats: ExchangeStats | None = None, verify_checksums: bool = True,
                 ring_timeout: float = 1.0, ws_url: str | None = None,
                 rest_url: str | None = None) -> None:
        missing = sorted(set(targets) - set(instruments))
        if missing:
            raise ConfigError(f"{self.exchange}: unknown symbol(s) {', '.join(missing)}")
        self.instruments = instruments
        self.targets = targets
        if ws_url:
            self.ws_url = ws_url        # e.g. the loopback simulator
        if rest_url:
            self.rest_url = rest_url
        self.reconnect_requested = False
        self.stats = stats or ExchangeStats(self.exchange)
        self.verify_checksums = verify_checksums
        self.ring_timeout = ring_timeout
        self.outbox: deque[str | bytes] = deque()
        self.rest_requests: deque[RestRequest] = deque()
        self.touched: set[str] = set()  # symbols published since the caller last cleared it
        self._raw_scratch = None
        self._seen_fail = {s: 0 for s in targets}
        self._seen_crossed = {s: 0 for s in targets}
        for s in targets:
            self.stats.sym(s)

    # -- to implement ---------------------------------------------------------------
    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        raise NotImplementedError

    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        """Parse one frame; publish levels; raise MalformedFrame for garbage."""
        raise NotImplementedError

    def on_snapshot(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        raise MalformedFrame(f"{self.exchange} takes no REST snapshots", request.symbol)

    def request_resync(self, symbol: str) -> None:
        """Ask the venue for a fresh snapshot of ``symbol`` (REST or resubscribe)."""
        raise NotImplementedError

    def ping_message(self) -> str | None:
        return None

    def flush(self) -> None:
        """Publish anything held back to batch frames that arrived together (the runner
        calls it after every frame, replay before every writer drain)."""

    def pre_connect_requests(self) -> list[RestRequest]:
        """REST calls to make before each websocket connect (KuCoin's token); their
        answers go to handle_rest before the connection opens."""
        return []

    def rest_symbol(self, url: str) -> str | None:
        """Which symbol a (recorded) REST snapshot URL is for; None if not a snapshot."""
        return None

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """Instruments from one REST instrument-list response."""
        raise NotImplementedError

    @classmethod
    def instrument_urls(cls) -> list[str]:
        raise NotImplementedError

    @classmethod
    def instrument_requests(cls) -> list[RestRequest]:
        """How to fetch the instrument list: GETs of instrument_urls() by default; a
        venue that wants a POST with a body (Hyperliquid) overrides this."""
        return [RestRequest("", u, kind="instruments") for u in cls.instrument_urls()]

    @classmethod
    def next_instrument_url(cls, url: str, body: bytes | str) -> str | None:
        """The next page of a paged instrument list, or None when ``body`` was the last."""
        return None

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Of a recording's configured symbols, those it holds book data for (some
        copies had symbols removed); default: all of them."""
        return natives

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """Map a recording's symbol name that is not a unified name of ours, if needed."""
        return None

    def crossed_is_error(self, symbol: str) -> bool:
        """False where the venue documents crossed books as normal (call auctions, the
        dYdX indexer).  The writer keeps such a book CROSSED until a LIVE status record
        arrives: a connector that tolerates crossing publishes with live=True once the
        book uncrosses."""
        return True

    def reset_symbol(self, symbol: str) -> None:
        """Forget sync state of ``symbol`` (before a resync or after a reconnect)."""

    # -- lifecycle (called by runner / replay) ----------------------------------------
    def on_connect(self) -> None:
        self.stats.connects += 1
        for s in self.targets:
            self.reset_symbol(s)
            self.set_status(s, SYNCING)

    def on_disconnect(self) -> None:
        """The connection is gone: every book it fed is stale until resynced."""
        self.stats.disconnects += 1
        for s in self.targets:
            self.reset_symbol(s)
            self.mark_stale(s, "disconnect")

    def handle_frame(self, frame: bytes | str, recv_ns: int) -> None:
        """on_message with the malformed-frame policy: count, log an excerpt, go on;
        a frame that concerned one book resyncs that book."""
        try:
            self.on_message(frame, recv_ns)
        except MalformedFrame as exc:
            self._malformed(frame, str(exc), exc.symbol)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError,
                ArithmeticError) as exc:
            self._malformed(frame, f"{type(exc).__name__}: {exc}", None)

    def handle_rest(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        try:
            self.on_snapshot(request, body, recv_ns)
        except MalformedFrame as exc:
            self._malformed(body, f"REST {request.url}: {exc}", request.symbol)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError,
                ArithmeticError) as exc:
            self._malformed(body, f"REST {request.url}: {type(exc).__name__}: {exc}",
                            request.symbol)

    def check_health(self, symbols=None) -> None:
        """Read what the writer found (checksum failures, crossed books) and resync."""
        for s in symbols if symbols is not None else self.targets:
            t = self.targets[s]
            h = t.book * HDR_WORDS
            fails = int(t.hdr[h + H_CHECKSUM_FAIL])
            crossed = int(t.hdr[h + H_CROSSED])
            if fails != self._seen_fail[s]:
                self.stats.sym(s).checksum_failures += fails - self._seen_fail[s]
                self._seen_fail[s] = fails
                self.resync(s, "checksum mismatch")
            elif crossed != self._seen_crossed[s]:
                self.stats.sym(s).crossed += crossed - self._seen_crossed[s]
                self._seen_crossed[s] = crossed
                if int(t.hdr[h + H_STATUS]) == CROSSED and self.crossed_is_error(s):
                    self.resync(s, "crossed book")

    # -- helpers for subclasses -----------------------------------------------------
    def publish(self, symbol: str, bids: tuple[bytes, bytes], asks: tuple[bytes, bytes],
                seq: int, ts_ns: int, recv_ns: int, *, snapshot: bool = False,
                checksum: int | None = None, live: bool = False) -> bool:
        """Push one message for ``symbol``: levels as (prices, sizes) joined bytes.
        Returns False (after counting and resyncing) when the message was unusable."""
        t = self.targets[symbol]
        inst = self.instruments[symbol]
        scheme = self.checksum_scheme if checksum is not None and self.verify_checksums \
            else NO_CHECKSUM
        status = LIVE if live else NO_STATUS
        deadline = 0.0
        while True:
            res, bad, n = push_message(t.ctl, t.data, t.book, snapshot, bids[0], bids[1],
                                       asks[0], asks[1], inst.price_decimals,
                                       inst.size_decimals, seq, ts_ns, recv_ns, scheme,
                                       checksum or 0, status)
            if res == PUSH_TOO_LARGE:  # waiting cannot help: say so, drop, resync
                self.stats.sym(symbol).dropped += 1
                log.error("%s %s: dropped a message of %d levels: larger than the book's "
                          "queue of %d records (raise its queue capacity or lower the "
                          "depth)", self.exchange, symbol, _levels(bids) + _levels(asks),
                          t.data.shape[1])
                self.resync(symbol, "message larger than its queue")
                return False
            if res != PUSH_FULL:
                break
            now = time.monotonic()  # back-pressure: wait for the writer, bounded
            if not deadline:
                deadline = now + self.ring_timeout
            elif now > deadline:
                self.stats.sym(symbol).dropped += 1
                self.resync(symbol, "ring full: message dropped")
                return False
            time.sleep(0.0002)
        st = self.stats.sym(symbol)
        self.touched.add(symbol)
        if res != PUSH_OK:
            reason = _PUSH_ERRORS.get(res, f"push error {res}")
            st.malformed += 1
            log.warning("%s %s: dropped message: %s (level %d)", self.exchange, symbol, reason,
                        bad)
            self.resync(symbol, reason)
            return False
        st.messages += 1
        st.levels += n
        if snapshot:
            st.snapshots += 1
        return True

    def publish_raw_update(self, symbol: str, buf: bytes, bid_pos: int, ask_pos: int,
                           seq: int, recv_ns: int, checksum: int | None,
                           deletes_first: bool = False, *, snapshot: bool = False,
                           live: bool = False) -> bool:
        """The raw-bytes fast path for one update (connectors.publish.push_raw_update).
        Returns False when it declined (unexpected layout, bad number, full ring): the
        caller then takes the ordinary path, which reports and handles the problem."""
        t = self.targets[symbol]
        inst = self.instruments[symbol]
        scheme = self.checksum_scheme if checksum is not None and self.verify_checksums \
            else NO_CHECKSUM
        if self._raw_scratch is None:  # room for a whole snapshot of the venue's depth
            self._raw_scratch = np.zeros((5, 2 * max(RAW_MAX_LEVELS, self.depth)), np.int64)
        res, n, _ = push_raw_update(t.ctl, t.data, t.book, buf, bid_pos, ask_pos,
                                    inst.price_decimals, inst.size_decimals, seq, recv_ns,
                                    scheme, checksum or 0, deletes_first, self._raw_scratch,
                                    snapshot, LIVE if live else NO_STATUS)
        if res != PUSH_OK:
            return False
        st = self.stats.sym(symbol)
        self.touched.add(symbol)
        st.messages += 1
        st.levels += n
        if snapshot:
            st.snapshots += 1
        return True

    def publish_raw_keyed(self, symbol: str, buf: bytes, bid_key: bytes, ask_key: bytes,
                          ck_key: bytes, seq: int, recv_ns: int, deletes_first: bool = False,
                          *, snapshot: bool = False, live: bool = False) -> bool:
        """publish_raw_update with the arrays and checksum located inside Numba (one call
        per frame).  False when it declined: take the ordinary path."""
        t = self.targets[symbol]
        inst = self.instruments[symbol]
        if self._raw_scratch is None:
            self._raw_scratch = np.zeros((5, 2 * max(RAW_MAX_LEVELS, self.depth)), np.int64)
        res, n, _, _ = push_raw_keyed(
            t.ctl, t.data, t.book, buf, bid_key, ask_key, ck_key, inst.price_decimals,
            inst.size_decimals, seq, recv_ns,
            self.checksum_scheme if self.verify_checksums else NO_CHECKSUM, deletes_first,
            self._raw_scratch, snapshot, LIVE if live else NO_STATUS)
        if res != PUSH_OK:
            return False
        st = self.stats.sym(symbol)
        self.touched.add(symbol)
        st.messages += 1
        st.levels += n
        if snapshot:
            st.snapshots += 1
        return True

    def set_status(self, symbol: str, status: int) -> None:
        t = self.targets[symbol]
        deadline = time.monotonic() + self.ring_timeout
        while not push_status(t.ctl, t.data, t.book, status):
            if time.monotonic() > deadline:
                log.error("%s %s: ring full, status %d not published", self.exchange, symbol,
                          status)
                return
            time.sleep(0.0002)

    def mark_stale(self, symbol: str, reason: str) -> None:
        self.stats.sym(symbol).stale_events += 1
        self.stats.reasons[reason] += 1
        self.set_status(symbol, STALE)

    def gap(self, symbol: str, detail: str) -> None:
        """A sequence gap: count it and resync the book."""
        self.stats.sym(symbol).gaps += 1
        log.warning("%s %s: sequence gap (%s): resync", self.exchange, symbol, detail)
        self.resync(symbol, "sequence gap")

    def resync(self, symbol: str, reason: str) -> None:
        """Mark ``symbol`` stale, forget its sync state and ask for a new snapshot."""
        self.stats.sym(symbol).resyncs += 1
        self.mark_stale(symbol, reason)
        self.reset_symbol(symbol)
        self.request_resync(symbol)

    def _malformed(self, frame, reason: str, symbol: str | None) -> None:
        text = frame if isinstance(frame, str) else repr(frame)
        log.warning("%s: malformed frame (%s): %.*s", self.exchange, reason, EXCERPT, text)
        if symbol is not None and symbol in self.targets:
            self.stats.sym(symbol).malformed += 1
            self.resync(symbol, "malformed frame")
        else:
            self.stats.malformed_frames += 1

    def symbol_batches(self, symbols: list[str]) -> list[list[str]]:
        n = max(1, self.subscribe_batch)
        return [symbols[i:i + n] for i in range(0, len(symbols), n)]
