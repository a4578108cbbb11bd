"""bitFlyer Lightning: the Realtime API (JSON-RPC 2.0 over websocket), board channels.

Protocol (sources below; facts the recording confirms are marked [rec]):

* Endpoint ``wss://ws.lightstream.bitflyer.com/json-rpc`` [rec].  One channel per
  request: ``{"method":"subscribe","params":{"channel":C}}`` [rec], ``"unsubscribe"``
  takes the same shape.  Without an ``id`` no response comes back [rec: none in the
  session]; a JSON-RPC response (``result``) is ignored, an ``error`` counted as
  malformed.
* Data: ``{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":C,
  "message":M}}`` [rec].  ``lightning_board_snapshot_{P}``: M is the whole board
  ``{mid_price, bids:[{price,size}], asks:[...]}`` [rec]; it comes right after the
  subscription and then again about every 5 s [rec: 6 per product in 30 s].
  ``lightning_board_{P}``: the same shape, holding changed levels only; ``size`` is the
  new absolute size of the level, ``0`` deletes it [rec].  ``lightning_ticker_`` and
  ``lightning_executions_`` messages are ignored.
* Numbers are JSON numbers (``0.00921``, ``2.0``, ``5000000``) [rec]: they are parsed as
  their text (``json.loads(parse_float=..., parse_int=...)``), never as floats; a string
  or any other value where a number belongs is malformed.
* Integrity: NO sequence numbers and NO checksums.  Every snapshot message replaces the
  book and makes it live; diffs apply only to a book that has had one (earlier ones are
  dropped).  A lost diff is only visible when it leaves the book crossed: the engine
  flags best bid >= best ask and the book resyncs (counted as ``crossed`` + ``resyncs``,
  never as a ``gap``).  Any other silent divergence lasts until the next periodic
  snapshot, at most ~5 s.
* Resync: unsubscribe + subscribe of the snapshot channel (the diff channel stays
  subscribed); a book whose snapshot does not come within ``snapshot_timeout`` triggers
  a reconnect.  The diff channel is subscribed before the snapshot channel, so no diff
  sent after the snapshot can be missed at subscription time.
* Depth: snapshots hold up to ~300 levels per side [rec: 300, once 312]; ``depth`` =
  1000 levels per side are kept.
* Instruments: ``GET /v1/markets``, ``/v1/markets/usa``, ``/v1/markets/eu`` (lists of
  ``{product_code, market_type[, alias]}``) [rec: ``BITFLYER.0``].  Native names are the
  product codes: ``BTC_JPY`` (spot), ``FX_BTC_JPY`` (the FX/CFD book, unified
  ``BTC-JPY-PERP``), ``BTCJPY24DEC2021`` (futures, unified ``BTC-JPY-20211224``).  The
  list carries NO tick or lot sizes, so every product gets ``PRICE_DECIMALS`` /
  ``SIZE_DECIMALS`` (8 / 8): they cover every number of the recording (at most 5 price
  and 8 size decimals) and leave int64 room for prices up to ~9e10.

Sources:
  https://bf-lightning-api.readme.io/docs/realtime-api (JSON-RPC 2.0 endpoint, subscribe),
  https://bf-lightning-api.readme.io/docs/realtime-board-snapshot,
  https://bf-lightning-api.readme.io/docs/realtime-board,
  https://bf-lightning-api.readme.io/docs/http-public-api (``/v1/markets``).
Not confirmed: the ~5 s snapshot period as a documented guarantee (only observed), the
snapshot depth limit (observed ~300), whether a diff sent before a snapshot can arrive
after it on the other channel (diffs carry absolute sizes, so a repeated one is
harmless, but a reordered older one would go unnoticed until the next snapshot), a
per-connection channel limit (our own choice below), the shape of error responses.
"""

from __future__ import annotations

import re
from decimal import Decimal

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.exactjson import Num
from connectors.exactjson import loads_typed as loads
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ

PRICE_DECIMALS = 8
SIZE_DECIMALS = 8
MARKETS_PATHS = ("/v1/markets", "/v1/markets/usa", "/v1/markets/eu")
SNAPSHOT_PREFIX = "lightning_board_snapshot_"
BOARD_PREFIX = "lightning_board_"
QUOTES = ("JPY", "USD", "EUR", "BTC")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
          "DEC")
MONTH_CODES = "FGHJKMNQUVXZ"
_FUTURE = re.compile(r"([A-Z]+?)(JPY|USD|EUR|BTC)(\d{2})([A-Z]{3})(\d{4})")
_CF_FUTURE = re.compile(r"(\d{2})([FGHJKMNQUVXZ])(\d{2})")


def _price(level) -> str:
    v = level["price"]
    if type(v) is not Num:
        raise TypeError(f"price is not a JSON number: {v!r}")
    return v


def _size(level) -> str:
    v = level["size"]
    if type(v) is not Num:
        raise TypeError(f"size is not a JSON number: {v!r}")
    return v


def side_levels(levels, descending: bool | None = None, depth: int = 0) -> tuple[bytes, bytes]:
    """``[{price, size}, ...]`` -> joined (prices, sizes); cut to the best ``depth`` when
    ``descending`` is given (bids True, asks False)."""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    if descending is not None and len(levels) > depth:
        levels = sorted(levels, key=lambda lv: Decimal(_price(lv)),
                        reverse=descending)[:depth]
    return join_levels(levels, _price, _size)


def unified_name(product: str, market_type: str) -> tuple[str, str]:
    """(unified, kind) of a product code."""
    if product.startswith("FX_"):
        base, _, quote = product[3:].partition("_")
        return f"{base}-{quote}-PERP", "perp"
    m = _FUTURE.fullmatch(product)
    if m and m[4] in MONTHS:
        return f"{m[1]}-{m[2]}-{m[5]}{MONTHS.index(m[4]) + 1:02d}{m[3]}", "future"
    base, sep, quote = product.partition("_")
    if sep:
        return f"{base}-{quote}", "spot" if market_type in ("Spot", "") else market_type.lower()
    return product, market_type.lower() or "spot"


class BitFlyer(ResubscribingProtocol):
    exchange = "bitflyer"
    ws_url = "wss://ws.lightstream.bitflyer.com/json-rpc"
    rest_url = "https://api.bitflyer.com"
    max_symbols_per_connection = 50    # not documented: our own choice
    subscribe_batch = 50
    depth = 1000

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + p for p in MARKETS_PATHS]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        text = body.decode() if isinstance(body, bytes) else body
        markets = orjson.loads(text)
        if not isinstance(markets, list):
            raise ConfigError(f"bitflyer: not a markets list: {text[:200]}")
        out = {}
        for m in markets:
            if not isinstance(m, dict) or not isinstance(m.get("product_code"), str):
                raise ConfigError(f"bitflyer: bad market entry: {str(m)[:200]}")
            native = m["product_code"]
            unified, kind = unified_name(native, str(m.get("market_type", "")))
            out[native] = Instrument(cls.exchange, native, unified, PRICE_DECIMALS,
                                     SIZE_DECIMALS, "", "", kind)
        return out

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed's BTC-JPY-FX -> FX_BTC_JPY, BTC-JPY-21Z24 -> BTCJPY24DEC2021."""
        parts = name.split("-")
        if len(parts) != 3:
            return None
        if parts[2] == "FX":
            wanted = f"{parts[0]}-{parts[1]}-PERP"
        else:
            m = _CF_FUTURE.fullmatch(parts[2])
            if m is None:
                return None
            wanted = f"{parts[0]}-{parts[1]}-20{m[1]}{MONTH_CODES.index(m[2]) + 1:02d}{m[3]}"
        return next((n for n, i in instruments.items() if i.unified == wanted), None)

    # -- subscription ------------------------------------------------------------------
    @staticmethod
    def request(kind: str, channel: str) -> str:
        return orjson.dumps({"method": kind, "params": {"channel": channel}}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        out = []
        for s in symbols:   # diffs first: nothing after the snapshot can be missed
            out.append(self.request("subscribe", BOARD_PREFIX + s))
            out.append(self.request("subscribe", SNAPSHOT_PREFIX + s))
        return out

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self.request(kind, SNAPSHOT_PREFIX + s) for s in symbols]

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        if msg.get("method") == "channelMessage":
            params = msg.get("params")
            if not isinstance(params, dict) or type(params.get("channel")) is not str:
                raise MalformedFrame("channelMessage without a channel")
            channel = params["channel"]
            if channel.startswith(SNAPSHOT_PREFIX):
                self._on_board(channel[len(SNAPSHOT_PREFIX):], params.get("message"), True,
                               recv_ns)
            elif channel.startswith(BOARD_PREFIX):
                self._on_board(channel[len(BOARD_PREFIX):], params.get("message"), False,
                               recv_ns)
            else:
                self.stats.ignored_frames += 1     # ticker, executions
        elif "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg)[:120]}")
        elif "result" in msg or msg.get("jsonrpc") == "2.0":
            self.stats.ignored_frames += 1         # responses to requests with an id
        else:
            raise MalformedFrame("not a JSON-RPC message")

    def _on_board(self, symbol: str, message, snapshot: bool, recv_ns: int) -> None:
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        if not snapshot and not self.live[symbol]:
            self.stats.ignored_frames += 1          # no snapshot yet: nothing to apply to
            return
        try:
            if snapshot:
                bids = side_levels(message["bids"], True, self.depth)
                asks = side_levels(message["asks"], False, self.depth)
            else:
                bids = side_levels(message["bids"])
                asks = side_levels(message["asks"])
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise MalformedFrame(f"bad board message: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if snapshot:
            if self.publish(symbol, bids, asks, NO_SEQ, 0, recv_ns, snapshot=True,
                            live=True):
                self.snapshot_applied(symbol)
        else:
            self.publish(symbol, bids, asks, NO_SEQ, 0, recv_ns)
