"""Bybit v5 public order book (``orderbook.{depth}.{symbol}``), one class per category.

Endpoints: ``wss://stream.bybit.com/v5/public/{linear,spot,inverse}``; a topic is only
valid on its own category's socket, so each category is its own Protocol (and its own
exchange id, because spot and the USDT perpetual share native names like BTCUSDT):

  ``Bybit``         "bybit"          linear: USDT/USDC perpetuals and linear futures
  ``BybitSpot``     "bybit_spot"     spot
  ``BybitInverse``  "bybit_inverse"  inverse perpetuals and futures

Depth 1000 is the deepest book each of the three categories offers (pushed every 200 ms);
the snapshot arrives on the socket, so no REST call is involved in syncing.

Sync rule (docs: v5/websocket/public/orderbook; continuity spelled out in the SBE
level-50 guide, which describes the same ``u``):
  * after a subscription the first message is a ``snapshot``; any later ``snapshot``
    replaces the book too (Bybit re-sends one when something went wrong on its side);
  * ``u`` is the topic's update id: every ``delta`` must carry ``u == previous u + 1``;
    anything else is a gap and the book is resynced by unsubscribe + subscribe, which
    makes Bybit push a fresh snapshot;
  * a snapshot with ``u == 1`` means the book service restarted: the book is replaced
    and no continuity is checked against the old ``u`` (counted in ``restarts``);
  * ``seq`` (cross sequence) is not contiguous and is not checked; ``ts`` (when the
    market-data service produced the message) becomes the record's exchange time.
No checksum is sent.  The venue wants an application ping (``{"op":"ping"}``) about every
20 s; the pong (``ret_msg == "pong"``, or ``op == "pong"`` in the private dialect) is
counted.  A subscription whose snapshot has not come within ``resubscribe_timeout``
(a rejected or lost request) is retried from ``check_health``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import chain
from urllib.parse import quote

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, Protocol
from connectors.publish import SEP
from engine.fixedpoint import MAX_DECIMALS, decimals_for

log = logging.getLogger("hftbook.connectors")

TOPIC = "orderbook"
_SEP = SEP.decode()
MAX_PENDING = 10_000     # unanswered requests remembered (to attribute rejections)
RESTART_U = 1            # a snapshot with this u follows a restart of Bybit's book service


def _join(levels: list, symbol: str) -> tuple[bytes, bytes]:
    """[[price, size], ...] as joined (prices, sizes) bytes; anything but pairs of
    strings is a malformed frame (a stray third field would shift every pairing)."""
    if not levels:
        return b"", b""
    try:
        flat = list(chain.from_iterable(levels))
        if len(flat) != 2 * len(levels):
            raise MalformedFrame("levels are not [price, size] pairs", symbol)
        return _SEP.join(flat[0::2]).encode(), _SEP.join(flat[1::2]).encode()
    except TypeError:
        raise MalformedFrame("levels are not pairs of strings", symbol) from None


class _Sync:
    """Sync state of one topic; ``awaiting`` (monotonic seconds) survives resets so a
    subscription already on its way is not requested twice."""

    __slots__ = ("live", "last", "awaiting")

    def __init__(self) -> None:
        self.live = False
        self.last = 0
        self.awaiting: float | None = None


class Bybit(Protocol):
    """Bybit v5 linear category (USDT/USDC perpetuals, linear futures): the default
    ``bybit`` exchange."""

    exchange = "bybit"
    category = "linear"
    ws_url = "wss://stream.bybit.com/v5/public/linear"
    rest_url = "https://api.bybit.com"
    instruments_path = "/v5/market/instruments-info"
    instruments_limit = 1000          # page size cap; linear lists more than the default 500
    contract_types = {"LinearPerpetual": "perp", "LinearFutures": "future"}
    depth = 1000
    depths = (1, 50, 200, 1000)       # documented for linear, inverse and spot
    max_symbols_per_connection = 200  # ~26 chars a topic: far below the 21,000-char cap
    subscribe_batch = 50              # linear/inverse: no documented args-per-request cap
    ping_interval = 20.0
    resubscribe_timeout = 10.0        # seconds to wait for a snapshot before asking again

    def __init__(self, *args, depth: int | None = None, ping_interval: float | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if depth is not None:
            if depth not in self.depths:
                raise ConfigError(f"{self.exchange}: depth {depth} not offered "
                                  f"({', '.join(map(str, self.depths))})")
            self.depth = depth
        if ping_interval is not None:
            self.ping_interval = ping_interval
        self._prefix = f"{TOPIC}.{self.depth}."
        self.sync = {s: _Sync() for s in self.targets}
        self.restarts: Counter = Counter()   # u=1 snapshots per symbol
        self.pongs = 0
        self._req = 0
        self._pending: dict[str, tuple[str, list[str]]] = {}   # req_id -> (op, symbols)
        self._connected = False

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        url = f"{cls.rest_url}{cls.instruments_path}?category={cls.category}"
        return [url + (f"&limit={cls.instruments_limit}" if cls.instruments_limit else "")]

    @classmethod
    def next_instrument_url(cls, url: str, body: bytes | str) -> str | None:
        """Follow ``nextPageCursor`` while a page came back full."""
        result = orjson.loads(body).get("result") or {}
        cursor = result.get("nextPageCursor")
        if not cursor or len(result.get("list") or ()) < (cls.instruments_limit or 1):
            return None
        base = url.split("&cursor=", 1)[0]
        return f"{base}&cursor={quote(cursor, safe='')}"

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """Trading instruments of the category.  Price scale: the tick's decimals (and
        ``priceScale`` where given); size scale: the decimals of ``qtyStep`` or, on spot,
        ``basePrecision`` - the finest numbers the book can carry."""
        doc = orjson.loads(body)
        if not isinstance(doc, dict) or doc.get("retCode", 0) != 0:
            raise ConfigError(f"{cls.exchange}: instrument list error: {str(doc)[:120]}")
        result = doc["result"]
        if result.get("category", cls.category) != cls.category:
            raise ConfigError(f"{cls.exchange}: got {result.get('category')} instruments, "
                              f"expected {cls.category}")
        items = result.get("list") or []
        out = {}
        for it in items:
            try:
                inst = cls._instrument(it)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("%s: unusable instrument entry (%s: %s): %.120s", cls.exchange,
                            type(exc).__name__, exc, it)
                continue
            if inst is not None:
                out[inst.native] = inst
        return out

    @classmethod
    def _instrument(cls, it: dict) -> Instrument | None:
        if it.get("status", "Trading") != "Trading":
            return None
        kind = cls._kind(it)
        if kind is None:
            return None
        tick = it["priceFilter"]["tickSize"]
        lot_filter = it["lotSizeFilter"]
        lot = lot_filter.get("qtyStep") or lot_filter["basePrecision"]
        pdec = max(decimals_for(tick), int(it.get("priceScale") or 0))
        sdec = max(decimals_for(x) for x in (lot, lot_filter.get("basePrecision") or "1"))
        if pdec > MAX_DECIMALS or sdec > MAX_DECIMALS:
            log.warning("%s %s: scale beyond %d decimals, skipped", cls.exchange,
                        it["symbol"], MAX_DECIMALS)
            return None
        base, quote = it["baseCoin"], it["quoteCoin"]
        if kind == "perp":
            unified = f"{base}-{quote}-PERP"
        elif kind == "future":
            day = datetime.fromtimestamp(int(it["deliveryTime"]) / 1000, UTC)
            unified = f"{base}-{quote}-{day:%Y%m%d}"
        else:
            unified = f"{base}-{quote}"
        return Instrument(cls.exchange, it["symbol"], unified, pdec, sdec, tick, lot, kind)

    @classmethod
    def _kind(cls, it: dict) -> str | None:
        return cls.contract_types.get(it.get("contractType", ""))

    # -- subscription ------------------------------------------------------------------
    def topic(self, symbol: str) -> str:
        return f"{TOPIC}.{self.depth}.{symbol}"

    def _request(self, op: str, symbols: list[str]) -> str:
        self._req += 1
        req_id = f"{op[:5]}-{self._req}"
        if len(self._pending) >= MAX_PENDING:     # acks that never came: forget them
            self._pending.clear()
        self._pending[req_id] = (op, symbols)
        return orjson.dumps({"req_id": req_id, "op": op,
                             "args": [self.topic(s) for s in symbols]}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", batch) for batch in self.symbol_batches(symbols)]

    def request_resync(self, symbol: str) -> None:
        """Unsubscribe and subscribe again: Bybit answers a subscription with a fresh
        snapshot.  Not sent while one is already on its way (or while disconnected: the
        next connection subscribes everything anyway)."""
        sync = self.sync[symbol]
        now = time.monotonic()
        if not self._connected or (sync.awaiting is not None
                                   and now - sync.awaiting < self.resubscribe_timeout):
            return
        sync.awaiting = now
        self.outbox.append(self._request("unsubscribe", [symbol]))
        self.outbox.append(self._request("subscribe", [symbol]))

    def reset_symbol(self, symbol: str) -> None:
        sync = self.sync[symbol]
        sync.live = False
        sync.last = 0

    def ping_message(self) -> str | None:
        return '{"op":"ping"}'

    # -- lifecycle ---------------------------------------------------------------------
    def on_connect(self) -> None:
        """A fresh socket: the runner subscribes every symbol right after this."""
        super().on_connect()
        self._connected = True
        self._pending.clear()
        self.outbox.clear()          # resubscribes meant for the old socket
        now = time.monotonic()
        for sync in self.sync.values():
            sync.awaiting = now

    def on_disconnect(self) -> None:
        self._connected = False
        super().on_disconnect()
        for sync in self.sync.values():
            sync.awaiting = None

    def check_health(self, symbols=None) -> None:
        """The base checks, then retry subscriptions whose snapshot never came."""
        super().check_health(symbols)
        if not self._connected:
            return
        now = time.monotonic()
        for s in symbols if symbols is not None else self.targets:
            sync = self.sync[s]
            if sync.awaiting is not None and now - sync.awaiting >= self.resubscribe_timeout:
                log.warning("%s %s: no snapshot %.0fs after subscribing: again", self.exchange,
                            s, now - sync.awaiting)
                self.stats.reasons["snapshot timeout"] += 1
                self.request_resync(s)

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        topic = msg.get("topic")
        if topic is None:
            self._on_control(msg)
            return
        if not isinstance(topic, str):
            raise MalformedFrame("topic is not a string")
        if not topic.startswith(self._prefix):
            self.stats.ignored_frames += 1       # another topic or depth
            return
        symbol = topic[len(self._prefix):]
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        data = msg.get("data")
        if not isinstance(data, dict):
            raise MalformedFrame("data is not an object", symbol)
        u = data.get("u")
        if type(u) is not int or u < 1:
            raise MalformedFrame(f"bad update id u={u!r}", symbol)
        if data.get("s", symbol) != symbol:
            raise MalformedFrame(f"data for {data.get('s')!r} on topic {topic}", symbol)
        ts = msg.get("ts")
        ts_ns = ts * 1_000_000 if type(ts) is int else 0
        bids, asks = data.get("b"), data.get("a")
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise MalformedFrame("b/a are not lists", symbol)
        kind = msg.get("type")
        if kind == "delta":
            self._delta(symbol, sync, u, bids, asks, ts_ns, recv_ns)
        elif kind == "snapshot":
            self._snapshot(symbol, sync, u, bids, asks, ts_ns, recv_ns)
        else:
            raise MalformedFrame(f"unknown message type {kind!r}", symbol)

    def _snapshot(self, symbol: str, sync: _Sync, u: int, bids: list, asks: list,
                  ts_ns: int, recv_ns: int) -> None:
        if u == RESTART_U:
            self.restarts[symbol] += 1
            log.info("%s %s: u=1 snapshot: the venue's book service restarted", self.exchange,
                     symbol)
        elif sync.live:
            log.info("%s %s: unsolicited snapshot at u=%d (last %d)", self.exchange, symbol,
                     u, sync.last)
        if not self.publish(symbol, _join(bids, symbol), _join(asks, symbol), u, ts_ns,
                            recv_ns, snapshot=True, live=True):
            return
        sync.live = True
        sync.last = u
        sync.awaiting = None

    def _delta(self, symbol: str, sync: _Sync, u: int, bids: list, asks: list,
               ts_ns: int, recv_ns: int) -> None:
        if not sync.live:
            # before the snapshot (or in flight from before a resubscribe): useless
            self.stats.ignored_frames += 1
            if sync.awaiting is None:
                self.request_resync(symbol)
            return
        if u != sync.last + 1:
            self.gap(symbol, f"u={u} after u={sync.last}")
            return
        if self.publish(symbol, _join(bids, symbol), _join(asks, symbol), u, ts_ns, recv_ns):
            sync.last = u

    def _on_control(self, msg: dict) -> None:
        """Acks and pongs.  A rejected subscription leaves its books stale (and retried
        after ``resubscribe_timeout``); any other failure is a counted bad frame."""
        op = msg.get("op")
        if msg.get("ret_msg") == "pong" or op == "pong":
            self.pongs += 1
            self.stats.ignored_frames += 1
            return
        pending = self._pending.pop(msg.get("req_id") or "", None)
        if msg.get("success") is True:
            self.stats.ignored_frames += 1
            return
        if "success" not in msg:
            raise MalformedFrame(f"unexpected message: {str(msg)[:80]}")
        log.warning("%s: %s rejected: %s", self.exchange, op, msg.get("ret_msg"))
        if pending is None:
            raise MalformedFrame(f"request failed: {msg.get('ret_msg')}")
        req_op, symbols = pending
        self.stats.ignored_frames += 1
        if req_op == "subscribe":
            for s in symbols:
                self.reset_symbol(s)
                self.mark_stale(s, "subscribe rejected")
                if self.sync[s].awaiting is None:
                    self.sync[s].awaiting = time.monotonic()   # retried after the timeout


class BybitSpot(Bybit):
    """Bybit v5 spot: at most 10 topics per subscribe request."""

    exchange = "bybit_spot"
    category = "spot"
    ws_url = "wss://stream.bybit.com/v5/public/spot"
    instruments_limit = 0             # spot has no pagination
    subscribe_batch = 10

    @classmethod
    def _kind(cls, it: dict) -> str | None:
        return "spot"


class BybitInverse(Bybit):
    """Bybit v5 inverse perpetuals and futures (sizes in contracts of 1 USD)."""

    exchange = "bybit_inverse"
    category = "inverse"
    ws_url = "wss://stream.bybit.com/v5/public/inverse"
    contract_types = {"InversePerpetual": "perp", "InverseFutures": "future"}
