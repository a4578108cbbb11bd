"""Gemini spot: the public market data v2 websocket, ``l2`` subscription.

Protocol (sources below; facts the recording confirms are marked [rec]):

* Endpoint ``wss://api.gemini.com/v2/marketdata`` [rec].  Subscribe with
  ``{"type":"subscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD",...]}]}`` [rec];
  ``"unsubscribe"`` takes the same shape.  No acknowledgement comes back [rec: none in
  the session].  Symbols are the upper-case concatenation ``BTCUSD`` [rec].
* Book messages: ``{"type":"l2_updates","symbol":S,"changes":[[side,price,qty],...]}``
  with side ``buy``/``sell`` and decimal strings; qty is the new absolute size of the
  level, ``"0"`` deletes it [rec].  The first ``l2_updates`` of a subscription is the
  whole book and additionally carries ``trades`` (recent trades) and, in the recording,
  ``auction_events`` [rec: 5 of 5 initial messages, and none of the 199 updates, carry
  them].  This connector therefore treats a message carrying ``trades`` as a snapshot
  (the book is cleared first) and drops updates of a book that has not had one yet
  (the tail of an old subscription after an unsubscribe).
* ``{"type":"heartbeat","timestamp":ms}`` about every 5 s [rec: 7 in 35 s, 5 s apart];
  ``trade`` messages are ignored.  Nothing needs to be sent to keep the link up.
* Integrity: v2 messages carry NO sequence number and NO checksum (the docs show none
  and the recording has none; v1's per-connection ``socket_sequence`` does not exist in
  v2).  A lost update is therefore only visible when it leaves the book crossed: the
  engine flags best bid >= best ask after every message and the book resyncs.  Such an
  event is counted as ``crossed`` + ``resyncs``, never as a ``gap`` (none can be seen).
  A silent divergence lasts until the next snapshot (resubscribe or reconnect).  The
  runner's idle timeout (far above the 5 s heartbeat period) catches a dead link.
* Resync: unsubscribe + subscribe of the book, batched per frame / health check; a book
  whose snapshot does not come within ``snapshot_timeout`` triggers a reconnect.
* Depth: Gemini sends the entire book.  ``depth = 5000`` levels per side are kept; a
  snapshot deeper than that is cut to its best 5000 per side before publishing (so one
  message stays well inside the ring).  The top of book is exact; after many deletes
  the deep end may miss levels the venue holds until the next snapshot.
* Instruments: ``GET /v1/symbols`` (list of lower-case names) then
  ``GET /v1/symbols/details/<symbol>`` per symbol [rec: ``GEMINI.0``].  Beware the
  names: ``tick_size`` is the *quantity* increment and ``quote_increment`` the *price*
  increment [rec: BATBTC prices have 8 decimals = quote_increment 1E-8; LTCETH sizes 5 =
  tick_size 1E-5].  Both are JSON numbers (``1E-8``): read as text, never floats.  Scales
  are those decimals plus ``HEADROOM`` (Gemini has changed increments of live pairs;
  resting orders may be finer than a new, coarser increment).

Sources:
  https://docs.gemini.com/websocket/market-data/v2/level-2-data (subscribe, l2_updates,
  initial response with trades), https://docs.gemini.com/websocket/market-data/v2/unsubscribe,
  https://docs.gemini.com/websocket/overview/sequence-numbers (socket_sequence: v1 /
  order events only), https://docs.gemini.com/websocket/market-data/v1/change-event.
Not confirmed: the heartbeat period as a documented guarantee (only observed), a
per-connection symbol or subscription-rate limit (50 books per connection is our own
choice), the shape of v2 error messages (``{"type":"error",...}`` is assumed and counted
as malformed), the REST rate limit for the per-symbol details calls.  Gemini also
documents a newer websocket API (``wss://ws.gemini.com``, developer.gemini.com/websocket/
streams) with ``{symbol}@depth@100ms`` differential streams and update ids; this module
does not speak it.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from operator import itemgetter

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ
from engine.fixedpoint import MAX_DECIMALS, decimals_for

SYMBOLS_PATH = "/v1/symbols"
DETAILS_PATH = "/v1/symbols/details/"
HEADROOM = 2          # decimals beyond the increments (finer resting orders)
CHANNEL = "l2"

_price = itemgetter(1)
_qty = itemgetter(2)
_BAD_INPUT = (TypeError, ValueError, IndexError, AttributeError, InvalidOperation)


def _number_text(value) -> str:
    """A JSON number or string from the details response, as exact text."""
    if isinstance(value, str):
        return value
    raise ConfigError(f"gemini: increment is not a number: {value!r}")


def best_levels(levels: list, descending: bool, depth: int) -> tuple[bytes, bytes]:
    """One side of a snapshot, cut to its best ``depth`` levels, joined for publish."""
    if len(levels) > depth:
        levels = sorted(levels, key=lambda c: Decimal(c[1]), reverse=descending)[:depth]
    return join_levels(levels, _price, _qty)


def split_changes(changes) -> tuple[list, list]:
    """``[[side, price, qty], ...]`` -> (buys, sells); ValueError on anything else."""
    if type(changes) is not list:
        raise TypeError("changes is not a list")
    buys = [c for c in changes if c[0] == "buy"]
    sells = [c for c in changes if c[0] == "sell"]
    if len(buys) + len(sells) != len(changes):
        raise ValueError("a change whose side is neither buy nor sell")
    for c in changes:
        if len(c) != 3:
            raise ValueError(f"change of {len(c)} fields")
    return buys, sells


class Gemini(ResubscribingProtocol):
    exchange = "gemini"
    ws_url = "wss://api.gemini.com/v2/marketdata"
    rest_url = "https://api.gemini.com"
    max_symbols_per_connection = 50    # not documented: our own choice
    subscribe_batch = 50
    depth = 5000
    # instrument paging: REST base -> the symbol list being walked (fetch_instruments
    # is sequential per venue; next_instrument_url sees only a URL and a body)
    _pending: dict[str, list[str]] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeats = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + SYMBOLS_PATH]

    @classmethod
    def next_instrument_url(cls, url: str, body: bytes | str) -> str | None:
        """The symbol list, then one details page per symbol, in the list's order."""
        base, sep, tail = url.partition(SYMBOLS_PATH)
        if not sep:
            return None
        if tail == "":
            names = orjson.loads(body)
            if not isinstance(names, list) or not names:
                return None
            cls._pending[base] = [str(n).lower() for n in names]
            return f"{base}{DETAILS_PATH}{cls._pending[base][0]}"
        names = cls._pending.get(base, [])
        current = tail.removeprefix("/details/").lower()
        if current in names:
            i = names.index(current)
            if i + 1 < len(names):
                return f"{base}{DETAILS_PATH}{names[i + 1]}"
        cls._pending.pop(base, None)
        return None

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """One details response -> its instrument; the symbol list itself -> {}."""
        text = body.decode() if isinstance(body, bytes) else body
        msg = json.loads(text, parse_float=str, parse_int=str)  # exact number texts
        if isinstance(msg, list):
            return {}
        if not isinstance(msg, dict) or "symbol" not in msg:
            raise ConfigError(f"gemini: not a symbol details response: {text[:200]}")
        native = str(msg["symbol"]).upper()
        price_step = _number_text(msg.get("quote_increment"))
        size_step = _number_text(msg.get("tick_size"))
        pdec = min(decimals_for(price_step) + HEADROOM, MAX_DECIMALS)
        sdec = min(decimals_for(size_step) + HEADROOM, MAX_DECIMALS)
        unified = f"{msg.get('base_currency', '')}-{msg.get('quote_currency', '')}".upper()
        return {native: Instrument(cls.exchange, native, unified, pdec, sdec, price_step,
                                   size_step, "spot")}

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Configured books that the recording holds ``l2_updates`` for (this copy had
        five of its ten symbols removed)."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and msg.get("type") == "l2_updates":
                    seen.add(msg.get("symbol"))
        return [n for n in natives if n in seen]

    # -- subscription ------------------------------------------------------------------
    def book_request(self, kind: str, symbols: list[str]) -> str:
        return orjson.dumps({"type": kind, "subscriptions": [
            {"name": CHANNEL, "symbols": symbols}]}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self.book_request("subscribe", b) for b in self.symbol_batches(symbols)]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self.book_request(kind, symbols)]

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = msg.get("type")
        if kind == "l2_updates":
            self._on_book(msg, recv_ns)
        elif kind == "heartbeat":
            self.heartbeats += 1
            self.stats.ignored_frames += 1
        elif kind == "error":
            raise MalformedFrame(f"venue error: {str(msg)[:120]}")
        elif isinstance(kind, str):
            self.stats.ignored_frames += 1     # trade, candles, auction ...
        else:
            raise MalformedFrame("message without a type")

    def _on_book(self, msg: dict, recv_ns: int) -> None:
        symbol = msg.get("symbol")
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        snapshot = "trades" in msg
        if not snapshot and not self.live[symbol]:
            self.stats.ignored_frames += 1      # no snapshot yet: nothing to apply to
            return
        try:
            buys, sells = split_changes(msg["changes"])
            if snapshot:
                bids = best_levels(buys, True, self.depth)
                asks = best_levels(sells, False, self.depth)
            else:
                bids = join_levels(buys, _price, _qty)
                asks = join_levels(sells, _price, _qty)
        except (*_BAD_INPUT, KeyError) as exc:
            raise MalformedFrame(f"bad l2_updates: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if snapshot:
            if self.publish(symbol, bids, asks, NO_SEQ, 0, recv_ns, snapshot=True,
                            live=True):
                self.snapshot_applied(symbol)
        else:
            self.publish(symbol, bids, asks, NO_SEQ, 0, recv_ns)
