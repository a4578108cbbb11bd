"""Coinbase: the Advanced Trade market-data feed (``Coinbase``, the live default) and the
Coinbase Exchange feed (``CoinbaseExchange``, the dialect of the recorded session).

What is proven by what
  * ``CoinbaseExchange`` is proven on real traffic: the recording ``COINBASE`` (April 2021,
    ``wss://ws-feed.pro.coinbase.com``, channel ``level2``) replays with every recorded
    book live and equal to a longhand reference rebuild.  Coinbase Pro became Coinbase
    Exchange; the message format of ``level2`` is what ``level2_batch`` (the channel that
    needs no authentication today) still sends, batched every 50 ms.
  * ``Coinbase`` (Advanced Trade) has no recording.  It is proven on fixtures written in
    the format of the documented example messages and against the loopback simulator
    (simulator.coinbase), which speaks the documented protocol.  What the docs leave
    open is marked "assumed" below.

Advanced Trade (``wss://advanced-trade-ws.coinbase.com``, no authentication needed)
  One channel per subscribe message, sent within 5 s of connecting: ``level2`` for the
  books and ``heartbeats`` (one message a second) so that quiet subscriptions are not
  closed after 60-90 s.  Book messages arrive on channel ``l2_data``; each event is a
  ``snapshot`` (the whole book) or an ``update`` whose rows carry the absolute
  ``new_quantity`` at ``price_level`` on side ``bid`` or ``offer`` ("0" removes).
  Integrity: ``sequence_num`` counts every message of the connection, all channels
  together (assumed from the brief and third-party code; the docs only show it).  A jump
  means a message was lost somewhere on the connection, so every book of the
  connection resyncs: it is marked stale and ``level2`` is unsubscribed and subscribed
  again for it, which brings a fresh snapshot.  No checksum exists.
  Products: ``GET /api/v3/brokerage/market/products`` (public); spot only.  Products
  that are an ``alias`` of another (BTC-USDC streams as BTC-USD on market data) are left
  out, so asking for one is a clear start-up error rather than a book that never fills.

Coinbase Exchange (``wss://ws-feed.exchange.coinbase.com``)
  ``{"type":"subscribe","product_ids":[...],"channels":["level2_batch","heartbeat"]}``;
  ``snapshot`` carries ``bids``/``asks`` as [price, size] pairs, ``l2update`` carries
  ``changes`` as [buy|sell, price, size].  Level 2 messages have NO sequence number, so
  a lost message cannot be detected from the stream itself: the integrity signals are
  the connection (a disconnect marks every book stale; the reconnect brings snapshots)
  and crossed-book detection (the engine flags best bid >= best ask after a message;
  the book resyncs by resubscribing).  Never counted as a gap, because none can be seen.

Both dialects
  * Depth: Coinbase sends the full book, thousands of levels on busy products.  The
    class keeps ``depth = 5000`` levels per side: a snapshot is cut to its best 5000
    levels per side before it is published (also keeping one message far below the
    ring's capacity), and the store keeps the best ``depth`` levels of its own.  Levels
    beyond that are never seen; after deletions near the top the deep end of a side
    may lack levels the venue holds until the next snapshot.  The top of the book is
    exact.
  * Scales cover every decimal the venue sends: the decimals of the increments (all the
    recording ever needed), raised to 8 for products traded in fractions, in case
    orders from before an increment change rest at finer prices or sizes, as long as
    that leaves 100x the largest order size of int64 headroom.  Integer-lot products
    (SHIB-USD...) keep integer sizes.  A finer number than the scale is never rounded:
    the message is dropped, counted as malformed and the book resyncs.
  * A book that has not gone live ``snapshot_timeout`` seconds after its (re)subscription
    (a resubscribe the venue ignored, a failed subscription) asks for a reconnect, which
    starts again with snapshots for every book.
"""

from __future__ import annotations

import calendar
import logging
import time
from decimal import Decimal
from functools import lru_cache

import orjson

from connectors.base import Instrument, MalformedFrame
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import decimals_for

log = logging.getLogger("hftbook.connectors")

SCALE_FLOOR = 8        # decimals every scale is raised to, headroom permitting
INT64_DIGITS = 18      # 10**18 < int64 max: whole digits + decimals must stay within this
SIZE_HEADROOM = 2      # digits kept free above the largest order size (100x: aggregated levels)

# Errors a hostile or broken message can raise while being taken apart (Decimal raises
# ArithmeticError subclasses, which the base class does not catch).
_BAD_INPUT = (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError)


# -- helpers -------------------------------------------------------------------------------
def _whole_digits(text: str | None) -> int | None:
    if not text:
        return None
    try:
        v = Decimal(text)
    except ArithmeticError:
        return None
    return len(str(int(abs(v)))) if v.is_finite() else None


def scale_for(increments: list[str | None], largest: str | None = None) -> int:
    """Decimals for one quantity: at least those of every increment given, raised to
    SCALE_FLOOR when a fractional increment shows the venue writes fractions and the
    ``largest`` expected value (when known) keeps SIZE_HEADROOM spare digits."""
    need = max((decimals_for(t) for t in increments if t), default=0)
    floor = SCALE_FLOOR if need > 0 else 0   # integer lots (SHIB...) stay integers
    whole = _whole_digits(largest)
    if whole is not None:
        floor = min(floor, INT64_DIGITS - whole - SIZE_HEADROOM)
    return min(max(need, floor), INT64_DIGITS)


@lru_cache(maxsize=4096)
def _epoch_seconds(head: str) -> int:
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))


def iso_ns(text: object) -> int:
    """``2023-02-09T20:32:50.714964855Z`` -> ns since the epoch, exactly; 0 when absent or
    not in that form (a timestamp is metadata: it never costs a book its update)."""
    if not isinstance(text, str) or len(text) < 19:
        return 0
    try:
        ns = _epoch_seconds(text[:19]) * 1_000_000_000
    except ValueError:
        return 0
    if len(text) > 20 and text[19] == ".":
        end = 20
        while end < len(text) and "0" <= text[end] <= "9":
            end += 1
        frac = text[20:end][:9]
        if frac:
            ns += int(frac.ljust(9, "0"))
    return ns


def _join(prices: list[str], sizes: list[str]) -> tuple[bytes, bytes]:
    if not prices:
        return b"", b""
    return "\x01".join(prices).encode(), "\x01".join(sizes).encode()


def best_levels(pairs: list, bid: bool, depth: int) -> tuple[bytes, bytes]:
    """The best ``depth`` of [price, size, ...] rows, worst first, joined for publish.

    Worst first lets the kernel append every level at the touch end of its array (the
    best level sits at the end), so a deep snapshot costs O(n) instead of O(n^2)
    shifts.  Prices are ordered as Decimals: exact, never floats."""
    rows = sorted(pairs, key=lambda r: Decimal(r[0]), reverse=not bid)[-depth:]
    return _join([r[0] for r in rows], [r[1] for r in rows])


# -- shared state machine --------------------------------------------------------------------
class _CoinbaseFeed(ResubscribingProtocol):
    """What both dialects share: books go live on a websocket snapshot; a resync is an
    unsubscribe + subscribe of the book channel, batched per frame or health check so a
    connection-wide event costs two messages, not two per book."""

    depth = 5000
    max_symbols_per_connection = 50
    subscribe_batch = 50
    instruments_path = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeats = 0

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.instruments_path]

    def unattributable(self, reason: str) -> MalformedFrame:
        """A book message that names no book: any book may have missed it, so every book
        of the connection resyncs.  Returns the exception to raise (counted once)."""
        for s in self.targets:
            self.resync(s, "unattributable book message")
        return MalformedFrame(reason)

    # -- publishing ----------------------------------------------------------------------
    def _snapshot(self, symbol: str, bids: list, asks: list, seq: int, ts_ns: int,
                  recv_ns: int) -> None:
        try:
            b = best_levels(bids, True, self.depth)
            a = best_levels(asks, False, self.depth)
        except _BAD_INPUT as exc:
            raise MalformedFrame(f"bad snapshot level: {type(exc).__name__}", symbol) from exc
        if self.publish(symbol, b, a, seq, ts_ns, recv_ns, snapshot=True, live=True):
            self.snapshot_applied(symbol)

    def _update(self, symbol: str, bids: tuple[bytes, bytes], asks: tuple[bytes, bytes],
                seq: int, ts_ns: int, recv_ns: int) -> None:
        if self.live[symbol]:   # before the (re)subscription snapshot: nothing to apply to
            self.publish(symbol, bids, asks, seq, ts_ns, recv_ns)


# -- Advanced Trade ---------------------------------------------------------------------------
class Coinbase(_CoinbaseFeed):
    """Coinbase Advanced Trade ``level2`` + ``heartbeats`` (see the module docstring)."""

    exchange = "coinbase"
    ws_url = "wss://advanced-trade-ws.coinbase.com"
    rest_url = "https://api.coinbase.com"
    instruments_path = "/api/v3/brokerage/market/products?product_type=SPOT"
    subscribe_interval = 0.2            # unauthenticated: 8 messages/s per IP

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_seq: int | None = None   # sequence_num of the connection's last message

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        out = {}
        for p in orjson.loads(body)["products"]:
            pid = p.get("product_id")
            if not pid or p.get("product_type", "SPOT") != "SPOT" or p.get("is_disabled"):
                continue
            if p.get("alias") and p["alias"] != pid:
                continue   # its market data streams under the alias
            qinc, binc = p.get("quote_increment"), p.get("base_increment")
            if not qinc or not binc:
                continue
            out[pid] = Instrument(cls.exchange, pid, pid,
                                  scale_for([qinc, p.get("price_increment")]),
                                  scale_for([binc], p.get("base_max_size")),
                                  p.get("price_increment") or qinc, binc)
        return out

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        hb = orjson.dumps({"type": "subscribe", "channel": "heartbeats"}).decode()
        msgs = [hb]   # first: it keeps the connection open whatever the books do
        for batch in self.symbol_batches(symbols):
            msgs += self.book_channel_messages("subscribe", batch)
        return msgs

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [orjson.dumps({"type": kind, "product_ids": symbols,
                              "channel": "level2"}).decode()]

    def on_connect(self) -> None:
        self.last_seq = None
        super().on_connect()

    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        if "sequence_num" in msg:
            self._sequence(msg["sequence_num"])
        channel = msg.get("channel")
        if channel == "l2_data":
            self._l2_data(frame, msg, recv_ns)
            return
        if channel == "heartbeats":
            self.heartbeats += 1
        elif msg.get("type") == "error":
            raise MalformedFrame(f"venue error: {msg.get('message')}")
        self.stats.ignored_frames += 1

    def _sequence(self, seq: object) -> None:
        """One counter for the whole connection: a jump lost a message of some book."""
        if type(seq) is not int:
            raise MalformedFrame(f"sequence_num is not an integer: {seq!r}")
        last, self.last_seq = self.last_seq, seq
        if last is not None and seq != last + 1:
            for s in self.targets:
                self.gap(s, f"sequence_num {seq} after {last}")

    def _l2_data(self, frame, msg: dict, recv_ns: int) -> None:
        # its sequence_num was taken: a part that names no book cannot show up as a gap
        events = msg.get("events")
        if not isinstance(events, list):
            raise self.unattributable("l2_data without an events list")
        seq = self.last_seq if self.last_seq is not None else 0
        ts = iso_ns(msg.get("timestamp"))
        for ev in events:
            symbol = ev.get("product_id") if isinstance(ev, dict) else None
            if symbol not in self.targets:
                if not isinstance(symbol, str):
                    raise self.unattributable("l2_data event without a product_id")
                self.stats.unknown_symbol_frames += 1
                continue
            try:
                self._event(symbol, ev, seq, ts, recv_ns)
            except MalformedFrame as exc:   # one bad event: that book resyncs, the rest go on
                self._malformed(frame, str(exc), symbol)
            except _BAD_INPUT as exc:
                self._malformed(frame, f"{type(exc).__name__}: {exc}", symbol)

    def _event(self, symbol: str, ev: dict, seq: int, ts: int, recv_ns: int) -> None:
        kind = ev["type"]
        bids: list[tuple[str, str]] = []
        asks: list[tuple[str, str]] = []
        for u in ev["updates"]:
            side = u["side"]
            row = (u["price_level"], u["new_quantity"])
            if side == "bid":
                bids.append(row)
            elif side == "offer":
                asks.append(row)
            else:
                raise MalformedFrame(f"unknown side {side!r}", symbol)
        if kind == "snapshot":
            self._snapshot(symbol, bids, asks, seq, ts, recv_ns)
        elif kind == "update":
            self._update(symbol, _join([r[0] for r in bids], [r[1] for r in bids]),
                         _join([r[0] for r in asks], [r[1] for r in asks]), seq, ts, recv_ns)
        else:
            raise MalformedFrame(f"unknown l2_data event type {kind!r}", symbol)


# -- Coinbase Exchange (the recorded dialect) -------------------------------------------------
class CoinbaseExchange(_CoinbaseFeed):
    """Coinbase Exchange ``level2_batch`` (same messages as the Pro ``level2`` of the
    recording).  No sequence numbers: see the module docstring."""

    exchange = "coinbase_exchange"
    ws_url = "wss://ws-feed.exchange.coinbase.com"
    rest_url = "https://api.exchange.coinbase.com"
    instruments_path = "/products"
    book_channel = "level2_batch"
    subscribe_interval = 0.1            # <= 100 client messages/s per IP

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        out = {}
        for p in orjson.loads(body):
            pid, qinc, binc = p.get("id"), p.get("quote_increment"), p.get("base_increment")
            if not pid or not qinc or not binc:
                continue
            out[pid] = Instrument(cls.exchange, pid, pid, scale_for([qinc]),
                                  scale_for([binc], p.get("base_max_size")), qinc, binc)
        return out

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Those of ``natives`` that a recorded session (connectors.recorded.Session)
        carries book messages for.  The recording names products in its configuration
        and subscription acks whose frames were removed from the copy; such a book can
        never go live in a replay.  (Hook for connectors.replay: see the report.)"""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and msg.get("type") in ("snapshot", "l2update"):
                    seen.add(msg.get("product_id"))
        return [n for n in natives if n in seen]

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [orjson.dumps({"type": "subscribe", "product_ids": batch,
                              "channels": [self.book_channel, "heartbeat"]}).decode()
                for batch in self.symbol_batches(symbols)]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [orjson.dumps({"type": kind, "product_ids": symbols,
                              "channels": [self.book_channel]}).decode()]

    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        """Without sequence numbers an unreadable frame may have been any book's update:
        every book resyncs on one (rare; correctness first)."""
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise self.unattributable("not JSON") from None
        if not isinstance(msg, dict):
            raise self.unattributable("not a JSON object")
        kind = msg.get("type")
        if kind == "l2update":
            symbol = self._symbol(msg)
            if symbol is None:
                return
            try:
                bp, bs, ap, as_ = [], [], [], []
                for side, price, size in msg["changes"]:
                    if side == "buy":
                        bp.append(price)
                        bs.append(size)
                    elif side == "sell":
                        ap.append(price)
                        as_.append(size)
                    else:
                        raise MalformedFrame(f"unknown side {side!r}", symbol)
                bids, asks = _join(bp, bs), _join(ap, as_)
            except _BAD_INPUT as exc:
                raise MalformedFrame(f"bad l2update: {type(exc).__name__}: {exc}",
                                     symbol) from exc
            self._update(symbol, bids, asks, 0, iso_ns(msg.get("time")), recv_ns)
        elif kind == "snapshot":
            symbol = self._symbol(msg)
            if symbol is not None:
                self._snapshot(symbol, msg.get("bids"), msg.get("asks"), 0,
                               iso_ns(msg.get("time")), recv_ns)
        elif kind == "error":
            raise MalformedFrame(f"venue error: {msg.get('message')} {msg.get('reason', '')}")
        else:   # subscriptions, heartbeat, ticker, match, ...
            if kind == "heartbeat":
                self.heartbeats += 1
            self.stats.ignored_frames += 1

    def _symbol(self, msg: dict) -> str | None:
        symbol = msg.get("product_id")
        if symbol in self.targets:
            return symbol
        if not isinstance(symbol, str):
            raise self.unattributable("book message without a product_id")
        self.stats.unknown_symbol_frames += 1
        return None
