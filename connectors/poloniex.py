"""Poloniex spot, the v3 public websocket (``wss://ws.poloniex.com/ws/public``),
``book_lv2`` channel: a 20-level snapshot, then updates chained by ``lastId`` / ``id``.

Protocol (facts the 2022 recording POLONIEX.ws.1.0 shows are marked [rec]):

* Subscribe ``{"event":"subscribe","channel":["book_lv2"],"symbols":["BTC_USDT",...]}``
  [rec]; the answer echoes it with ``channel`` as a string [rec]; ``unsubscribe``
  has the same shape; failures come back as ``{"event":"error","message":...}``
  (counted as malformed frames; a book that then gets no snapshot makes the
  resubscribe machinery reconnect).  Native symbols are ``BASE_QUOTE`` [rec].
* Book frames: ``{"channel":"book_lv2","action":"snapshot"|"update","data":[{"symbol",
  "createTime","asks":[[p,q],..],"bids":[[p,q],..],"lastId","id","ts"}]}`` [rec]; the
  quantity is the level's new absolute size, ``"0"`` deletes it [rec].  The snapshot
  holds the best 20 levels a side and the venue keeps its subscribers inside that
  window [rec: no book in the session ever exceeds 20 levels a side], so ``depth = 20``.
* Sequence: an update's ``lastId`` must equal the ``id`` of the message applied before
  it (the snapshot's ``id`` for the first update) [rec: 283 updates, zero breaks; ids
  do not always step by one, so only the chain is checked].  Anything else is a gap:
  the book goes stale and is resubscribed (unsubscribe + subscribe, batched), as the
  documentation prescribes; updates of a book without a fresh snapshot (the old
  subscription's tail) are dropped and counted as ignored.
* Keep-alive: the server closes a connection that sent nothing for 30 s; the client
  sends ``{"event":"ping"}`` every ``ping_interval`` (20 s by default) and the
  ``{"event":"pong"}`` answer is counted as ignored.  No server heartbeat exists.
* Instruments: ``GET https://api.poloniex.com/markets`` [rec: ``POLONIEX.0``] with
  ``symbolTradeLimit.priceScale`` / ``quantityScale`` (decimal places).  Scales are
  those plus ``HEADROOM`` (a scale may be made finer while we run); unified names
  ``BASE-QUOTE``.

Sources: https://api-docs.poloniex.com/spot/websocket (endpoints, 30 s keep-alive,
ping/pong, subscribe/unsubscribe and error shapes),
https://api-docs.poloniex.com/spot/websocket/market-data (book_lv2),
https://api-docs.poloniex.com/zh/v3/futures/websocket/public/get-order-book-v2 (the same
channel on v3 futures: "if the last message's id does not match the current message's
lastId the client has lost connection with the server and must resubscribe").

Not confirmed: the spot market-data page itself was not retrieved, so the spot field
names rest on the 2022 recording (the futures page spells them ``lid``/``s``/``cT``:
this connector reads ``lastId``/``symbol`` and, if present, those short spellings);
that a level leaving the 20-level window is sent as a delete (the recording is
consistent with it; the book is cut to 20 levels either way); per-connection symbol
limits (``max_symbols_per_connection = 50`` is our own choice); whether ``ts`` is the
publish or the match time.
"""

from __future__ import annotations

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import MAX_DECIMALS

MARKETS_PATH = "/markets"
CHANNEL = "book_lv2"
HEADROOM = 2            # decimals beyond the venue's scales
PING_INTERVAL = 20.0    # seconds; the venue drops a client silent for 30 s
PING = '{"event":"ping"}'


def _step(decimals: int) -> str:
    """0 -> "1", 3 -> "0.001"."""
    return "0." + "0" * (decimals - 1) + "1" if decimals else "1"


def _int_field(entry: dict, *names: str) -> int:
    for name in names:
        v = entry.get(name)
        if v is not None:
            if type(v) is int:
                return v
            if isinstance(v, str) and v.isdigit():
                return int(v)
            raise TypeError(f"{name} is not an integer: {v!r}")
    raise KeyError(names[0])


def _side(levels) -> tuple[bytes, bytes]:
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    for lv in levels:
        if type(lv) is not list or len(lv) != 2:
            raise ValueError(f"level is not a [price, size] pair: {str(lv)[:40]}")
    return join_levels(levels)


class Poloniex(ResubscribingProtocol):
    exchange = "poloniex"
    ws_url = "wss://ws.poloniex.com/ws/public"
    rest_url = "https://api.poloniex.com"
    max_symbols_per_connection = 50     # not documented: our own choice
    subscribe_batch = 50
    depth = 20                          # book_lv2 is the top 20 levels a side

    def __init__(self, *args, ping_interval: float = PING_INTERVAL, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ping_interval = ping_interval
        self.last_id: dict[str, int | None] = dict.fromkeys(self.targets)
        self.pings_sent = 0
        self.pongs = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + MARKETS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, list):
            raise ConfigError(f"poloniex: not a market list: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg:
            if not isinstance(x, dict):
                continue
            native = x.get("symbol")
            limits = x.get("symbolTradeLimit") or {}
            pscale, qscale = limits.get("priceScale"), limits.get("quantityScale")
            if not isinstance(native, str) or type(pscale) is not int \
                    or type(qscale) is not int or pscale < 0 or qscale < 0:
                continue
            base = x.get("baseCurrencyName") or native.split("_")[0]
            quote = x.get("quoteCurrencyName") or native.partition("_")[2]
            out[native] = Instrument(
                cls.exchange, native, f"{base}-{quote}",
                min(pscale + HEADROOM, MAX_DECIMALS), min(qscale + HEADROOM, MAX_DECIMALS),
                _step(pscale), _step(qscale), "spot")
        return out

    # -- subscription ------------------------------------------------------------------
    @staticmethod
    def book_request(kind: str, symbols: list[str]) -> str:
        return orjson.dumps({"event": kind, "channel": [CHANNEL],
                             "symbols": symbols}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self.book_request("subscribe", b) for b in self.symbol_batches(symbols)]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self.book_request(kind, symbols)]

    def ping_message(self) -> str | None:
        self.pings_sent += 1
        return PING

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.last_id[symbol] = None

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        event = msg.get("event")
        if event is not None:
            if event == "error":
                raise MalformedFrame(f"venue error: {str(msg.get('message'))[:120]}")
            if event == "pong":
                self.pongs += 1
            self.stats.ignored_frames += 1      # subscribe / unsubscribe acks, pongs
            return
        channel = msg.get("channel")
        if channel != CHANNEL:
            if not isinstance(channel, str):
                raise MalformedFrame("neither an event nor channel data")
            self.stats.ignored_frames += 1      # trades, tickers ...
            return
        action, data = msg.get("action"), msg.get("data")
        if action not in ("snapshot", "update") or type(data) is not list:
            symbol = data[0].get("symbol") if type(data) is list and data \
                and isinstance(data[0], dict) else None
            raise MalformedFrame("book_lv2 frame without action or data",
                                 symbol if symbol in self.live else None)
        for entry in data:
            self._on_entry(action == "snapshot", entry, recv_ns)

    def _on_entry(self, snapshot: bool, entry, recv_ns: int) -> None:
        if not isinstance(entry, dict):
            raise MalformedFrame("book_lv2 entry is not an object")
        symbol = entry.get("symbol", entry.get("s"))
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        if not snapshot and not self.live[symbol]:
            self.stats.ignored_frames += 1      # no fresh snapshot yet: an old tail
            return
        try:
            last = _int_field(entry, "lastId", "lid")
            seq = _int_field(entry, "id")
            bids, asks = _side(entry["bids"]), _side(entry["asks"])
            ts = entry.get("ts")
            ts_ns = int(ts) * 1_000_000 if ts else 0
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise MalformedFrame(f"bad book_lv2 entry: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if snapshot:
            if self.publish(symbol, bids, asks, seq, ts_ns, recv_ns, snapshot=True,
                            live=True):
                self.last_id[symbol] = seq
                self.snapshot_applied(symbol)
            return
        if last != self.last_id[symbol]:
            self.gap(symbol, f"lastId={last} != previous id={self.last_id[symbol]}")
            return
        if self.publish(symbol, bids, asks, seq, ts_ns, recv_ns):
            self.last_id[symbol] = seq
