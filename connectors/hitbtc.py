"""HitBTC spot: the public websocket API v3, ``orderbook/full`` channel (``HitBTC``), and
the API v2 dialect of the 2021 recording (``HitBTCV2``).

Protocol (v3 from HitBTC's API v3 documentation; facts the v2 recording confirms are
marked [rec]):

* Endpoint ``wss://api.hitbtc.com/api/3/ws/public``.  Subscribe with
  ``{"method":"subscribe","ch":"orderbook/full","params":{"symbols":[...]},"id":N}``;
  ``"unsubscribe"`` takes the same shape.  The answer is
  ``{"result":{"ch":...,"subscriptions":[...]},"id":N}``; an error is
  ``{"error":{"code":..,"message":..},"id":N}`` (counted as malformed).
* Book notifications: ``{"ch":"orderbook/full","snapshot":{SYM:{"t":ms,"s":seq,
  "a":[[price,qty],...],"b":[...]}}}`` then ``{"ch":...,"update":{SYM:{...}}}`` with the
  same body; qty is the new absolute size of the level, ``"0"`` deletes it.  ``s`` must
  increase by exactly 1 from the snapshot on; anything else is a gap: the book is marked
  stale and resubscribed (unsubscribe + subscribe, batched; see
  connectors.resubscribe).  Updates of a book without a snapshot (the tail of an old
  subscription) are dropped.
* Symbols are the upper-case concatenation ``BTCUSDT`` (v3 spells Tether ``USDT``; v2
  spelled the same market ``BTCUSD`` [rec: MTXUSD, EURSUSD, quoteCurrency "USD"]).
* Instruments: v3 ``GET /api/3/public/symbol`` -> ``{SYM:{"type":"spot",
  "base_currency","quote_currency","quantity_increment","tick_size",...}}``; v2
  ``GET /api/2/public/symbol`` -> ``[{"id","baseCurrency","quoteCurrency",
  "quantityIncrement","tickSize"}]`` [rec: HITBTC.0].  Decimal strings, read as text.
  Scales are the increments' decimals plus ``HEADROOM``.
* v2 [rec]: ``{"method":"subscribeOrderbook","params":{"symbol":S},"id":..}``; answer
  ``{"jsonrpc":"2.0","result":true,"id":..}``; ``snapshotOrderbook`` / ``updateOrderbook``
  with ``params`` ``{"ask":[{"price","size"}],"bid":[...],"symbol","sequence",
  "timestamp":ISO}``; ``sequence`` increases by 1 per update [rec: 0 gaps in 537
  updates].  The recording holds a second snapshot per book (cryptofeed subscribed
  twice) whose sequence equals the last update's: a snapshot always replaces the book.
  v2 unsubscribe is ``unsubscribeOrderbook`` with the same params.
* Depth: the full book.  ``depth = 5000`` levels per side are kept; a deeper snapshot is
  cut to its best 5000 per side.

Not confirmed (no v3 traffic recorded): the exact v3 answer/error shapes, whether v3
sends a heartbeat (none is relied on: the runner's idle timeout catches a dead link), a
per-connection symbol limit (100 books per connection is our own choice), the
subscription rate limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import itemgetter

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import MAX_DECIMALS, decimals_for

HEADROOM = 2
CHANNEL = "orderbook/full"
_BAD_INPUT = (TypeError, ValueError, IndexError, AttributeError, KeyError, InvalidOperation)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _text(value, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"hitbtc: {what} is not a decimal string: {value!r}")


def _instrument(exchange: str, native: str, base: str, quote: str, tick: str,
                lot: str) -> Instrument:
    pdec = min(decimals_for(tick) + HEADROOM, MAX_DECIMALS)
    sdec = min(decimals_for(lot) + HEADROOM, MAX_DECIMALS)
    return Instrument(exchange, native, f"{base}-{quote}".upper(), pdec, sdec, tick, lot,
                      "spot")


def _side(levels, price, size, descending: bool, depth: int, snapshot: bool):
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    if snapshot and len(levels) > depth:
        levels = sorted(levels, key=lambda x: Decimal(price(x)), reverse=descending)[:depth]
    return join_levels(levels, price, size)


class HitBTC(ResubscribingProtocol):
    exchange = "hitbtc"
    ws_url = "wss://api.hitbtc.com/api/3/ws/public"
    rest_url = "https://api.hitbtc.com"
    symbols_path = "/api/3/public/symbol"
    max_symbols_per_connection = 100   # not documented: our own choice
    subscribe_batch = 50
    depth = 5000
    _price = staticmethod(itemgetter(0))
    _size = staticmethod(itemgetter(1))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seq: dict[str, int | None] = dict.fromkeys(self.targets)
        self._id = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.symbols_path]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, dict):
            raise ConfigError(f"hitbtc: not a symbol list: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for native, x in msg.items():
            if not isinstance(x, dict) or x.get("type", "spot") != "spot":
                continue
            out[native] = _instrument(cls.exchange, native, x.get("base_currency", ""),
                                      x.get("quote_currency", ""),
                                      _text(x.get("tick_size"), "tick_size"),
                                      _text(x.get("quantity_increment"),
                                            "quantity_increment"))
        return out

    # -- subscription ------------------------------------------------------------------
    def book_request(self, kind: str, symbols: list[str]) -> list[str]:
        self._id += 1
        return [orjson.dumps({"method": kind, "ch": CHANNEL, "params": {"symbols": symbols},
                              "id": self._id}).decode()]

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [m for b in self.symbol_batches(symbols)
                for m in self.book_request("subscribe", b)]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return self.book_request(kind, symbols)

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.seq[symbol] = None

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        if "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg['error'])[:120]}")
        ch = msg.get("ch")
        if ch is None:
            if "result" in msg:
                self.stats.ignored_frames += 1     # subscribe / unsubscribe answer
                return
            raise MalformedFrame("neither a channel message nor an answer")
        if ch != CHANNEL:
            self.stats.ignored_frames += 1
            return
        snapshot = "snapshot" in msg
        body = msg.get("snapshot") if snapshot else msg.get("update")
        if not isinstance(body, dict):
            raise MalformedFrame("orderbook frame without snapshot or update")
        for symbol, data in body.items():
            self._on_book(symbol, snapshot, data, recv_ns)

    def _on_book(self, symbol: str, snapshot: bool, data, recv_ns: int) -> None:
        """One book message; ``data`` holds ``s``, ``t``, ``b``, ``a`` (v3 names)."""
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        if not snapshot and not self.live[symbol]:
            self.stats.ignored_frames += 1     # no snapshot yet: nothing to apply to
            return
        try:
            seq = data[self.seq_key]
            if type(seq) is not int:
                raise TypeError("sequence is not an integer")
            ts_ns = self.ts_ns(data.get(self.ts_key))
            bids = _side(data.get(self.bid_key, []), self._price, self._size, True,
                         self.depth, snapshot)
            asks = _side(data.get(self.ask_key, []), self._price, self._size, False,
                         self.depth, snapshot)
        except _BAD_INPUT as exc:
            raise MalformedFrame(f"bad orderbook message: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if snapshot:
            if self.publish(symbol, bids, asks, seq, ts_ns, recv_ns, snapshot=True,
                            live=True):
                self.seq[symbol] = seq
                self.snapshot_applied(symbol)
            return
        last = self.seq[symbol]
        if seq != last + 1:
            self.gap(symbol, f"sequence {seq} after {last}")
            return
        if self.publish(symbol, bids, asks, seq, ts_ns, recv_ns):
            self.seq[symbol] = seq

    seq_key, ts_key, bid_key, ask_key = "s", "t", "b", "a"

    @staticmethod
    def ts_ns(value) -> int:
        if value is None:
            return 0
        if type(value) is not int:
            raise TypeError("timestamp is not an integer")
        return value * 1_000_000


class HitBTCV2(HitBTC):
    """The API v2 dialect (the 2021 recording): ``subscribeOrderbook``,
    ``snapshotOrderbook`` / ``updateOrderbook``, levels as ``{"price","size"}``."""

    ws_url = "wss://api.hitbtc.com/api/2/ws/public"
    symbols_path = "/api/2/public/symbol"
    subscribe_batch = 1               # v2 subscribes one symbol per request
    seq_key, ts_key, bid_key, ask_key = "sequence", "timestamp", "bid", "ask"
    _price = staticmethod(itemgetter("price"))
    _size = staticmethod(itemgetter("size"))

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, list):
            raise ConfigError(f"hitbtc: not a v2 symbol list: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg:
            native = x.get("id") if isinstance(x, dict) else None
            if not native:
                continue
            quote = x.get("quoteCurrency", "")
            # v2's "USD" is Tether: the same market is BTCUSDT in v3 (and in cryptofeed)
            quote = "USDT" if quote == "USD" else quote
            out[native] = _instrument(cls.exchange, native, x.get("baseCurrency", ""), quote,
                                      _text(x.get("tickSize"), "tickSize"),
                                      _text(x.get("quantityIncrement"), "quantityIncrement"))
        return out

    def book_request(self, kind: str, symbols: list[str]) -> list[str]:
        method = "subscribeOrderbook" if kind == "subscribe" else "unsubscribeOrderbook"
        out = []
        for s in symbols:
            self._id += 1
            out.append(orjson.dumps({"method": method, "params": {"symbol": s},
                                     "id": self._id}).decode())
        return out

    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        if "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg['error'])[:120]}")
        method = msg.get("method")
        if method in ("snapshotOrderbook", "updateOrderbook"):
            params = msg.get("params")
            if not isinstance(params, dict):
                raise MalformedFrame("orderbook message without params")
            self._on_book(params.get("symbol"), method == "snapshotOrderbook", params,
                          recv_ns)
        elif isinstance(method, str) or "result" in msg:
            self.stats.ignored_frames += 1     # answers, ticker, trades, candles
        else:
            raise MalformedFrame("neither a method nor an answer")

    @staticmethod
    def ts_ns(value) -> int:
        if value is None:
            return 0
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (dt - _EPOCH) // _US * 1000
