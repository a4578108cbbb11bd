"""dYdX v4 (dYdX Chain) indexer websocket, ``v4_orderbook`` channel.

Protocol as documented (sources at the end; [doc] = stated there, [ex] = only shown in
an example message, [assumed] = neither):

* Endpoint ``wss://indexer.dydx.trade/v4/ws`` [doc].  On connect the server sends
  ``{"type":"connected","connection_id":...,"message_id":0}`` [doc].  Every later
  server message carries the next ``message_id`` of that connection [doc: "each
  websocket update has a message-id which is a logical offset"; that it grows by
  exactly 1 per message on a connection is shown by the examples, not stated: ex].
* Subscribe ``{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD",
  "batched":false}``; unsubscribe is the same with ``"unsubscribe"`` [doc].  One market
  per request; the markets are the perpetual tickers ``BTC-USD`` [doc].
* The answer ``{"type":"subscribed",...,"channel":"v4_orderbook","id":"BTC-USD",
  "contents":{"bids":[{"price":..,"size":..}],"asks":[...]}}`` is the whole book [doc,
  ex].  Updates are ``{"type":"channel_data",...,"contents":{"bids":[[price,size]],
  "asks":[[price,size]]}}`` with either side optional [doc, ex]; sizes are the new
  absolute size of the level, ``"0"`` deletes it [doc: "the total size is the current
  aggregated orders size for that price"].  With ``"batched":true`` several updates
  come as ``channel_batch_data`` whose ``contents`` is a list of such objects [doc];
  this connector asks for unbatched updates (lowest latency) and accepts both.
  ``unsubscribed`` acks and other channels are counted as ignored; ``{"type":
  "error","message":...}`` is counted as a malformed frame.
* Rate limits: 2 subscribe messages per (connection, channel, id) per second and 2
  invalid messages per connection per second [doc].  A resync therefore spends one of
  a book's two subscribes per second; a third resync of the same book within a second
  is refused by the venue, and the book's snapshot timeout then reconnects.
* Keep-alive: the server sends websocket ping control frames every 30 s and drops the
  connection without a pong within 10 s [doc]; the websocket library answers them, so
  no application-level ping is sent.

How a book is kept right:

* Gaps: ``message_id`` is per connection, not per book, so a missing id may have been
  any book's message (or a ``subscribed`` snapshot).  A jump (or a step back) therefore
  resyncs EVERY book of the connection; ``gap()`` is called once per book (each may
  have lost the message), so one lost message counts as N gaps on N books.
* Resync (gap, malformed message, ring overflow, long crossing): unsubscribe +
  subscribe (connectors.resubscribe), batched per frame; updates of a book between its
  resync and the new ``subscribed`` snapshot are the old subscription's tail and are
  dropped (the venue answers in order on one connection).  A snapshot that does not come
  within ``snapshot_timeout`` reconnects.
* Crossed books: the indexer's book is documented to cross transiently (there is no
  central book; each block proposer has its own mempool, "they should uncross
  eventually" [doc: how_to_uncross_orderbook]).  A crossed book is therefore NOT an
  error here (``crossed_is_error`` is False): the book keeps the venue's levels exactly,
  its status is ``crossed`` (counted in ``crossed``), and the first update that leaves
  it uncrossed makes it ``live`` again.  The docs' client-side "uncrossing" by message
  offsets is not done: it would make our book differ from the venue's.  A book that
  stays crossed longer than ``crossed_grace`` seconds (default 30) is resynced once per
  period, in case the crossing is ours (reason "crossed too long").
* Depth: the indexer sends the whole book; a snapshot deeper than ``depth`` per side is
  cut to its best ``depth`` levels (one message must fit the ring).
* Numbers: decimal strings, parsed to fixed point by the engine; never floats.  Scales
  come from ``GET /v4/perpetualMarkets`` (``{"markets":{ticker:{tickSize,stepSize,
  status,...}}}``) [doc]: the decimals of tickSize / stepSize plus ``HEADROOM`` (market
  parameters change by governance while clients run [assumed it can make them finer]).
  Unified names: ``BTC-USD`` -> ``BTC-USD-PERP`` (all v4 markets are USDC-margined
  perpetuals; quote shown as USD as the venue does).

Sources:
  https://docs.dydx.exchange/api_integration-indexer/indexer_websocket (connect,
  message_id 0, ping every 30 s, subscribe/unsubscribe, rate limits, v4_orderbook),
  https://docs.dYdX.exchange/developers/indexer/indexer_websocket (same, newer site),
  https://docs.dydx.trade/guides/how_to_uncross_orderbook (crossed books, message-id as
  logical offset), https://dydx-documentation-six.vercel.app/interaction/data/watch-orderbook
  (subscribed = full snapshot of {price,size} objects, updates are absolute sizes),
  https://dydx-documentation-six.vercel.app/interaction/data/feeds (rate limits).
Not confirmed (no live session was recorded for v4; the DYDX.* recording is v3): that
message_id increases by exactly 1 for every message on a connection including acks and
errors (implied by examples and the uncrossing guide, not stated as a guarantee); the
shape of error messages and whether they carry a message_id; that snapshot levels never
carry size "0"; that tickSize/stepSize bound the decimals of every level sent; the
per-connection subscription limit (50 books per connection is our own choice).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import itemgetter

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import CROSSED, H_STATUS, HDR_WORDS
from engine.fixedpoint import MAX_DECIMALS, decimals_for

log = logging.getLogger("hftbook.connectors")

CHANNEL = "v4_orderbook"
MARKETS_PATH = "/v4/perpetualMarkets"
HEADROOM = 2            # decimals beyond tickSize / stepSize
CROSSED_GRACE = 30.0    # seconds a book may stay crossed before it is resynced

_price = itemgetter("price")
_size = itemgetter("size")
_BAD_INPUT = (KeyError, TypeError, ValueError, IndexError, AttributeError,
              InvalidOperation)


@dataclass(frozen=True, slots=True)
class DyDxInstrument(Instrument):
    """A dYdX v4 perpetual market; ``status`` as the indexer reports it (ACTIVE, ...)."""

    status: str = ""
    clob_pair_id: str = ""


def _check_pairs(levels) -> list:
    """``[[price, size], ...]`` of strings, as channel_data sends them."""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    for lv in levels:
        if type(lv) is not list or len(lv) != 2 or type(lv[0]) is not str \
                or type(lv[1]) is not str:
            raise ValueError(f"level is not [price, size]: {str(lv)[:40]}")
    return levels


def _check_objects(levels) -> list:
    """``[{"price":..,"size":..}, ...]`` of strings, as the snapshot sends them."""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    for lv in levels:
        if type(lv) is not dict or type(lv.get("price")) is not str \
                or type(lv.get("size")) is not str:
            raise ValueError(f"level is not {{price, size}}: {str(lv)[:40]}")
    return levels


def snapshot_side(levels, descending: bool, depth: int) -> tuple[bytes, bytes]:
    """One side of a ``subscribed`` snapshot, cut to its best ``depth`` levels."""
    levels = _check_objects(levels)
    if len(levels) > depth:
        levels = sorted(levels, key=lambda x: Decimal(x["price"]),
                        reverse=descending)[:depth]
    return join_levels(levels, _price, _size)


def update_sides(contents: list[dict]) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """The levels of one or more update ``contents`` objects, in order, joined."""
    bids: list = []
    asks: list = []
    for c in contents:
        if type(c) is not dict:
            raise TypeError("contents is not an object")
        bids += _check_pairs(c.get("bids", []))
        asks += _check_pairs(c.get("asks", []))
    return join_levels(bids), join_levels(asks)


class DyDx(ResubscribingProtocol):
    exchange = "dydx"
    ws_url = "wss://indexer.dydx.trade/v4/ws"
    rest_url = "https://indexer.dydx.trade"
    max_symbols_per_connection = 50    # not documented: our own choice
    subscribe_batch = 50               # symbols per resubscribe batch (one frame each)
    depth = 2000                       # levels kept per side of a snapshot

    def __init__(self, *args, batched: bool = False, crossed_grace: float = CROSSED_GRACE,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batched = batched
        self.crossed_grace = crossed_grace
        self.next_message_id: int | None = None   # expected id; None: not connected yet
        self.connection_gaps = 0                 # message_id jumps (each resyncs all)
        self.errors = 0                          # venue "error" messages
        self._crossed_since: dict[str, float] = {}

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + MARKETS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        markets = msg.get("markets") if isinstance(msg, dict) else None
        if not isinstance(markets, dict):
            raise ConfigError(f"dydx: not a perpetualMarkets response: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for ticker, m in markets.items():
            if not isinstance(m, dict):
                continue
            tick, step = m.get("tickSize"), m.get("stepSize")
            if not isinstance(tick, str) or not isinstance(step, str) or not tick or not step:
                continue   # numbers must be exact text
            native = m.get("ticker") or ticker
            pdec = min(decimals_for(tick) + HEADROOM, MAX_DECIMALS)
            sdec = min(decimals_for(step) + HEADROOM, MAX_DECIMALS)
            out[native] = DyDxInstrument(cls.exchange, native, f"{native}-PERP", pdec, sdec,
                                         tick, step, "perp", status=str(m.get("status", "")),
                                         clob_pair_id=str(m.get("clobPairId", "")))
        return out

    def crossed_is_error(self, symbol: str) -> bool:
        """The indexer's book crosses transiently by design (see the module docstring):
        counted, shown as ``crossed``, resynced only when it lasts (check_health)."""
        return False

    # -- subscription ------------------------------------------------------------------
    def _request(self, kind: str, symbol: str) -> str:
        msg = {"type": kind, "channel": CHANNEL, "id": symbol}
        if kind == "subscribe":
            msg["batched"] = self.batched
        return orjson.dumps(msg).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", s) for s in symbols]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self._request(kind, s) for s in symbols]

    def on_connect(self) -> None:
        self.next_message_id = None
        self._crossed_since.clear()
        super().on_connect()

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = msg.get("type")
        if not isinstance(kind, str):
            raise MalformedFrame("message without a type")
        mid = msg.get("message_id")
        if mid is not None:
            if type(mid) is not int:
                raise MalformedFrame(f"message_id is not an integer: {str(mid)[:20]}")
            self._check_message_id(mid)
        elif kind != "error":   # errors may lack it [unconfirmed]; everything else has it
            raise MalformedFrame(f"{kind} message without message_id")
        if kind == "channel_data" or kind == "channel_batch_data" or kind == "subscribed":
            if msg.get("channel") != CHANNEL:
                self.stats.ignored_frames += 1
                return
            self._on_book(kind, msg, recv_ns)
        elif kind == "error":
            self.errors += 1
            raise MalformedFrame(f"venue error: {str(msg.get('message'))[:120]}")
        else:   # connected, unsubscribed, anything new
            self.stats.ignored_frames += 1

    def _check_message_id(self, mid: int) -> None:
        expected = self.next_message_id
        self.next_message_id = mid + 1
        if expected is None or mid == expected:
            return
        self.connection_gaps += 1
        detail = f"message_id {mid}, expected {expected}"
        log.warning("dydx: connection message_id gap (%s): resync all %d books", detail,
                    len(self.targets))
        for s in self.targets:
            self.gap(s, detail)

    def _on_book(self, kind: str, msg: dict, recv_ns: int) -> None:
        symbol = msg.get("id")
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        seq = self.next_message_id - 1 if self.next_message_id is not None else -1
        contents = msg.get("contents")
        if kind == "subscribed":
            try:
                bids = snapshot_side(contents["bids"], True, self.depth)
                asks = snapshot_side(contents["asks"], False, self.depth)
            except _BAD_INPUT as exc:
                raise MalformedFrame(f"bad snapshot: {type(exc).__name__}: {exc}",
                                     symbol) from exc
            self._crossed_since.pop(symbol, None)
            if self.publish(symbol, bids, asks, seq, 0, recv_ns, snapshot=True, live=True):
                self.snapshot_applied(symbol)
            return
        if not self.live[symbol]:
            self.stats.ignored_frames += 1   # before the (new) snapshot: old tail
            return
        try:
            if kind == "channel_batch_data":
                if type(contents) is not list:
                    raise TypeError("batch contents is not a list")
                bids, asks = update_sides(contents)
            else:
                bids, asks = update_sides([contents])
        except _BAD_INPUT as exc:
            raise MalformedFrame(f"bad {kind}: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        # a crossed book goes live again (the writer checks) once an update uncrosses it
        self.publish(symbol, bids, asks, seq, 0, recv_ns, live=self._is_crossed(symbol))

    # -- health ------------------------------------------------------------------------
    def _is_crossed(self, symbol: str) -> bool:
        t = self.targets[symbol]
        return int(t.hdr[t.book * HDR_WORDS + H_STATUS]) == CROSSED

    def check_health(self, symbols=None) -> None:
        super().check_health(symbols)
        now = time.monotonic()
        for s in self.targets if symbols is None else symbols:
            if not self.live.get(s) or not self._is_crossed(s):
                self._crossed_since.pop(s, None)
                continue
            since = self._crossed_since.setdefault(s, now)
            if now - since > self.crossed_grace:
                self._crossed_since.pop(s, None)
                log.warning("dydx %s: crossed for more than %.0fs: resync", s,
                            self.crossed_grace)
                self.resync(s, "crossed too long")
        if self._resubscribe:
            self._flush_resubscribes()
