"""Bithumb spot (KRW / BTC / USDT markets): the v1 public websocket ``orderbook`` type.

Which API, and why: Bithumb documents two public websockets.  Its current versioned
docs (apidocs.bithumb.com/v2.1.4 and v2.1.5, "WebSocket" section) describe the v1 API
at ``wss://ws-api.bithumb.com/websocket/v1`` with markets spelled ``KRW-BTC``; the older
``wss://pubwss.bithumb.com/pub/ws`` (``orderbookdepth`` diffs of ``BTC_KRW``, no sequence
numbers, REST ``/public/orderbook/BTC_KRW`` to seed) is the legacy API of the older doc
versions (v1.2.0).  This module speaks the v1 API only.  A side benefit: the legacy diff
channel carries no sequence, so a lost diff there is undetectable and lasts forever; the
v1 channel sends whole books, so a lost message is repaired by the next one.

Protocol as this module uses it:

* Request: one JSON array ``[{"ticket": T}, {"type": "orderbook", "codes": [...]},
  {"format": "DEFAULT"}]``; codes are upper case (``KRW-BTC``).  Without
  ``isOnlySnapshot`` / ``isOnlyRealtime`` the venue sends a snapshot per code and then
  realtime messages.  There is no unsubscribe: like Upbit's API that Bithumb's v1
  mirrors, a new request on a connection is taken to *replace* that connection's
  subscription (unconfirmed for Bithumb), so every request names all of the
  connection's codes.
* Message: ``{"type": "orderbook", "code": "KRW-BTC", "timestamp": ms,
  "total_ask_size": n, "total_bid_size": n, "orderbook_units": [{"ask_price",
  "bid_price", "ask_size", "bid_size"}, ...], "level": n, "stream_type":
  "SNAPSHOT"|"REALTIME"}``.  Every message, snapshot or realtime, is the complete top-N
  book (units are ranks: unit k holds the k-th best ask and the k-th best bid), so each
  is published as a snapshot that replaces the book.  Numbers are JSON *doubles*
  (``148520000.0``, possibly ``5.0E-4``): they are decoded as their source text
  (``json`` with ``parse_float=str``) and parsed exactly, never as floats.
* ``level`` is the grouping unit; only the ungrouped book (absent, 0 or the documented
  default 1) is accepted, a grouped one is a malformed message (it is not an L2 book).

Sync rule and integrity: there is no sequence number and no checksum.
* A message is self-contained, so a lost message cannot leave a wrong book beyond the
  next message of that code; ``gap()`` is never called because nothing can be seen.
* ``timestamp`` must not go backwards per code: an older message than the one applied
  (a replayed or reordered book) is dropped and counted in ``out_of_order``, so the book
  never steps back in time.  Equal timestamps are accepted (several books per ms).
* A crossed book (engine check after every message) or a malformed message marks the
  book stale and resends the subscription (``ResubscribingProtocol``): the venue answers
  with fresh SNAPSHOTs.  A book without one within ``snapshot_timeout`` reconnects.
* The runner's idle timeout and protocol pings catch a dead link.

Instruments: ``GET /v1/market/all`` -> ``[{"market": "KRW-BTC", "korean_name": ...,
"english_name": ...}, ...]``.  It carries no tick or lot sizes, so scales are fixed:
8 price decimals (KRW ticks go down to 0.0001 below 1 KRW; BTC-market prices use 8) and
8 size decimals.  Unified name: ``KRW-BTC`` -> ``BTC-KRW``.

Sources:
  https://apidocs.bithumb.com/v2.1.4/reference/호가-orderbook (orderbook request/response
  fields, the ``KRW-ETH.3`` code suffix, ``level`` default 1),
  https://apidocs.bithumb.com/v2.1.4/reference/요청-포맷 (ticket/type/format request array,
  ``wss://ws-api.bithumb.com/websocket/v1``),
  https://apidocs.bithumb.com/reference/빗썸-거래소-정보-수신 (the legacy pubwss API),
  ccxt's bithumb pro module (lists ``publicV2: wss://ws-api.bithumb.com/websocket/v1``).
Not confirmed: that a new request replaces the previous subscription (Upbit's rule);
how many units a default subscription carries (15 on Upbit; we keep up to ``depth`` = 30);
whether ``total_*_size`` cover only the sent units (not checked here); the shape of
error messages (``{"error": {...}}`` as on Upbit, counted as malformed); an idle
timeout / text ``PING`` keep-alive (not used: websocket pings are sent by the runner);
whether the venue pushes on every book event or only when the top N changes;
``/v1/market/all`` as the market list (documented as "마켓 코드 조회" on Upbit-style APIs,
not re-read here); connection and request rate limits (100 codes per connection is our
own choice).
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal, InvalidOperation

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.exactjson import loads_exact
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ

MARKETS_PATH = "/v1/market/all"
PRICE_DECIMALS = 8
SIZE_DECIMALS = 8
UNGROUPED = (Decimal(0), Decimal(1))   # level values meaning "the venue's own ticks"

_tickets = itertools.count(1)


def _num(unit: dict, key: str) -> str:
    v = unit[key]
    if type(v) is not str or not v:
        raise TypeError(f"{key} is not a number: {v!r}")
    return v


def _is_zero(text: str) -> bool:
    return Decimal(text) == 0


def split_units(units) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``orderbook_units`` -> (bids, asks) as (price, size) text pairs, best first.

    A unit whose price on one side is zero carries no level on that side (a side with
    fewer levels than the other); anything else that is not a number is an error."""
    if type(units) is not list:
        raise TypeError("orderbook_units is not a list")
    bids, asks = [], []
    for u in units:
        if type(u) is not dict:
            raise TypeError("a unit is not an object")
        bp, bs = _num(u, "bid_price"), _num(u, "bid_size")
        ap, as_ = _num(u, "ask_price"), _num(u, "ask_size")
        if not _is_zero(bp):
            bids.append((bp, bs))
        if not _is_zero(ap):
            asks.append((ap, as_))
    return bids, asks


class Bithumb(ResubscribingProtocol):
    exchange = "bithumb"
    ws_url = "wss://ws-api.bithumb.com/websocket/v1"
    rest_url = "https://api.bithumb.com"
    max_symbols_per_connection = 100   # not documented: our own choice
    subscribe_batch = 100              # one request per connection (it replaces)
    depth = 30

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_ts = dict.fromkeys(self.targets, -1)
        self.out_of_order = 0
        self.status_frames = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + MARKETS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        markets = json.loads(body)
        if not isinstance(markets, list):
            raise ConfigError(f"bithumb: not a market list: {str(markets)[:200]}")
        out = {}
        for m in markets:
            code = m.get("market") if isinstance(m, dict) else None
            if not isinstance(code, str) or code.count("-") != 1:
                continue
            quote, base = code.upper().split("-")
            out[code.upper()] = Instrument(cls.exchange, code.upper(), f"{base}-{quote}",
                                           PRICE_DECIMALS, SIZE_DECIMALS, "", "", "spot")
        return out

    # -- subscription ------------------------------------------------------------------
    def book_request(self, codes: list[str]) -> str:
        return json.dumps([{"ticket": f"hftbook-{next(_tickets)}"},
                           {"type": "orderbook", "codes": codes},
                           {"format": "DEFAULT"}], separators=(",", ":"))

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self.book_request(list(symbols))]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        """No unsubscribe exists; a resubscribe resends the whole connection's request
        (it replaces the old one), which brings a fresh snapshot of every code."""
        if kind != "subscribe":
            return []
        return [self.book_request(list(self.targets))]

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.last_ts[symbol] = -1

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = loads_exact(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = msg.get("type")
        if kind == "orderbook":
            self._on_book(msg, recv_ns)
        elif "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg['error'])[:120]}")
        elif "status" in msg:
            self.status_frames += 1           # {"status": "UP"} and the like
            self.stats.ignored_frames += 1
        elif isinstance(kind, str):
            self.stats.ignored_frames += 1    # ticker, trade ...
        else:
            raise MalformedFrame("message without a type")

    def _on_book(self, msg: dict, recv_ns: int) -> None:
        symbol = msg.get("code")
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        try:
            ts = int(msg["timestamp"])
            level = msg.get("level")
            if level is not None and Decimal(level) not in UNGROUPED:
                raise ValueError(f"grouped book (level {level})")
            bids, asks = split_units(msg["orderbook_units"])
            bid_levels, ask_levels = join_levels(bids), join_levels(asks)
        except (TypeError, ValueError, KeyError, InvalidOperation) as exc:
            raise MalformedFrame(f"bad orderbook: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if ts < self.last_ts[symbol]:
            self.out_of_order += 1             # older than the book we hold: drop it
            self.stats.reasons["out-of-order book dropped"] += 1
            self.stats.ignored_frames += 1
            return
        if self.publish(symbol, bid_levels, ask_levels, NO_SEQ, ts * 1_000_000, recv_ns,
                        snapshot=True, live=True):
            self.last_ts[symbol] = ts
            self.snapshot_applied(symbol)
