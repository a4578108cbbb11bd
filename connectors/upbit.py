"""Upbit spot: the public quotation websocket, ``orderbook`` type.

Protocol (sources below; facts the recording confirms are marked [rec]):

* Endpoint ``wss://api.upbit.com/websocket/v1`` [rec].  A request is one JSON array:
  ``[{"ticket":T},{"type":"orderbook","codes":["KRW-BTC",...]},{"format":"SIMPLE"}]``
  [rec: the recorder sent ticket, format and type objects in one array, and added
  ``"isOnlyRealtime":true``, which this connector does NOT send: without it the venue
  starts each subscription with a ``SNAPSHOT`` message].  Codes are ``QUOTE-BASE``
  upper case (``KRW-BTC``, ``BTC-XTZ``) [rec]; our unified name is ``BASE-QUOTE``.
* Every ``orderbook`` message is the WHOLE top of book, both sides, as a list of units
  ``{ask_price, bid_price, ask_size, bid_size}`` best first (15 units in the recording
  [rec: all 145]; 30 by default today, ``CODE.{1,5,15,30}`` picks fewer).  Each message
  therefore replaces the book (published as a snapshot); there is nothing to merge and
  no sequence number or checksum [rec].  ``format: SIMPLE`` abbreviates the keys
  (``ty cd tms obu ap bp as bs st``) [rec]; both spellings are accepted here.  Frames
  come as BINARY websocket frames holding UTF-8 JSON [rec].  ``st`` is ``SNAPSHOT`` or
  ``REALTIME``; both are full books and are treated alike.
* Numbers are JSON numbers (doubles as the venue prints them: ``127.0``,
  ``0.00003157``, possibly ``1.0E-5`` style exponents).  They are read as text
  (``json.loads(parse_float=str, parse_int=str)``) and parsed exactly; never floats.
  A unit whose size is zero stands for a missing level (a side shallower than the
  other) and is skipped.
* Integrity: no sequence numbers, no checksums.  A bad message can only show as a
  crossed book (the engine flags best bid >= best ask): the book is marked stale and
  the subscription is sent again, which brings a fresh ``SNAPSHOT``; any later message
  repairs the book as well, since each one is whole.  A lost message costs nothing
  beyond latency: the next one carries the full book.
* Resubscribe: Upbit has no unsubscribe; a new request on a connection is taken to
  REPLACE that connection's subscription, so a resync resends the request for every
  book of the connection (harmless for the others: they get one more whole book).
* Keep-alive: the server closes a link idle for about 120 s.  The runner already sends
  websocket PING frames; in addition the text ``PING`` is sent every ``ping_interval``
  seconds and the server answers ``{"status":"UP"}``, so a connection whose books are
  quiet (5 of the 10 recorded books sent nothing in the session [rec]) still gets
  frames and is not taken for dead by the runner's idle timeout.
* Instruments: ``GET /v1/market/all`` [rec: ``UPBIT.0``] lists market codes and names
  but no tick or lot sizes.  Scales are therefore fixed and generous: 8 price decimals
  (the finest tick of the BTC / USDT markets and below every KRW tick) and 8 size
  decimals (Upbit volumes carry at most 8) [rec: the numbers of every recorded message
  fit, tests/connectors/test_upbit_recorded.py].  At 8 decimals a size above ~9.2e10
  units would overflow int64 and be dropped as malformed (with a resync).

Sources:
  https://global-docs.upbit.com/reference/websocket-orderbook (request, is_only_snapshot /
  is_only_realtime, CODE.count with 1/5/15/30),
  https://docs-e.upbit.com/reference/websocket-orderbook (response fields and SIMPLE
  abbreviations ty/cd/tas/tbs/obu/ap/bp/as/bs/tms),
  https://docs.upbit.com/kr/v1.5.9/changelog/websocket_orderbook_unit_options (30 units
  default, counts 1/5/15/30 since 2025-07-02),
  https://global-docs.upbit.com/reference/connection-management-compression and
  https://docs-e.upbit.com/reference/connection (120 s idle timeout, PING frames, text
  ``PING`` -> ``{"status":"UP"}``).
Not confirmed: that a second request replaces (rather than adds to) a connection's
subscriptions; the shape of error messages (``{"error":{"name":..,"message":..}}`` is
assumed and counted as malformed); that zero-size units mean "no level"; a documented
limit of codes per connection (100 is our own choice) and the connection rate limit
(``connect_interval`` is a cautious guess); that ``{"status":"UP"}`` keeps coming every
10 s (the docs say so; the recording does not contain it).
"""

from __future__ import annotations

import json
from itertools import count

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_pairs
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ

MARKETS_PATH = "/v1/market/all"
PRICE_DECIMALS = 8
SIZE_DECIMALS = 8
FORMAT = "SIMPLE"

# (long name, SIMPLE abbreviation) of the fields read
_KEYS = {"type": "ty", "code": "cd", "timestamp": "tms", "orderbook_units": "obu"}
_UNIT_LONG = ("bid_price", "bid_size", "ask_price", "ask_size")
_UNIT_SHORT = ("bp", "bs", "ap", "as")
_tickets = count(1)


def _field(msg: dict, name: str):
    v = msg.get(_KEYS[name])
    return msg.get(name) if v is None else v


def _zero(text: str) -> bool:
    """True for a zero number text ("0", "0.0", "0E-8"); the kernel checks the rest."""
    mantissa = text.partition("E")[0].partition("e")[0].lstrip("+-")
    return mantissa.replace(".", "").strip("0") == "" and mantissa != ""


def split_units(units) -> tuple[list, list]:
    """Orderbook units -> (bids, asks) as [(price text, size text)], best first, levels of
    zero size left out; TypeError/ValueError on anything that is not a unit list."""
    if type(units) is not list:
        raise TypeError("orderbook units is not a list")
    bids: list = []
    asks: list = []
    for u in units:
        if type(u) is not dict:
            raise TypeError("orderbook unit is not an object")
        keys = _UNIT_SHORT if "bp" in u or "ap" in u else _UNIT_LONG
        bp, bs, ap, as_ = (u[k] for k in keys)
        for v in (bp, bs, ap, as_):
            if type(v) is not str:
                raise TypeError(f"orderbook unit number is {type(v).__name__}")
        if not _zero(bs):
            bids.append((bp, bs))
        if not _zero(as_):
            asks.append((ap, as_))
    return bids, asks


class Upbit(ResubscribingProtocol):
    exchange = "upbit"
    ws_url = "wss://api.upbit.com/websocket/v1"
    rest_url = "https://api.upbit.com"
    max_symbols_per_connection = 100   # not documented: our own choice
    subscribe_batch = 100              # one request carries every code of the connection
    connect_interval = 0.25            # a cautious guess at the connection rate limit
    ping_interval = 10.0               # text "PING" -> {"status":"UP"} (see docstring)
    depth = 30                         # the most units Upbit sends

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.status_frames = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + MARKETS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        markets = orjson.loads(body)
        if not isinstance(markets, list):
            raise ConfigError(f"upbit: not a market list: {str(body)[:200]}")
        out: dict[str, Instrument] = {}
        for m in markets:
            code = m.get("market") if isinstance(m, dict) else None
            if not isinstance(code, str) or code.count("-") != 1:
                raise ConfigError(f"upbit: bad market entry: {str(m)[:200]}")
            quote, base = code.upper().split("-")
            out[code.upper()] = Instrument(cls.exchange, code.upper(), f"{base}-{quote}",
                                           PRICE_DECIMALS, SIZE_DECIMALS, kind="spot")
        return out

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        base, sep, quote = name.upper().partition("-")
        native = f"{quote}-{base}"
        return native if sep and native in instruments else None

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Configured books the recording holds orderbook messages for (the recorder
        asked for real-time data only, and five of its ten books never changed)."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and _field(msg, "type") == "orderbook":
                    seen.add(_field(msg, "code"))
        return [n for n in natives if n in seen]

    # -- subscription ------------------------------------------------------------------
    def request(self, symbols: list[str]) -> str:
        return orjson.dumps([{"ticket": f"hftbook-{next(_tickets)}"},
                             {"type": "orderbook", "codes": symbols},
                             {"format": FORMAT}]).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self.request(b) for b in self.symbol_batches(symbols)]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        if kind != "subscribe":
            return []                  # no unsubscribe: the next request replaces
        return [self.request(list(self.targets))]

    def ping_message(self) -> str | None:
        return "PING"

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = json.loads(frame, parse_float=str, parse_int=str)   # exact number texts
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = _field(msg, "type")
        if kind == "orderbook":
            self._on_book(msg, recv_ns)
        elif isinstance(kind, str):
            self.stats.ignored_frames += 1      # trade, ticker ...
        elif msg.get("status") == "UP":
            self.status_frames += 1
            self.stats.ignored_frames += 1
        elif "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg['error'])[:120]}")
        else:
            raise MalformedFrame("message without a type")

    def _on_book(self, msg: dict, recv_ns: int) -> None:
        symbol = _field(msg, "code")
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        try:
            bids, asks = split_units(_field(msg, "orderbook_units"))
            if len(bids) > self.depth or len(asks) > self.depth:
                raise ValueError(f"more than {self.depth} units")
            tms = _field(msg, "timestamp")
            ts_ns = int(tms) * 1_000_000 if tms is not None else 0
        except (TypeError, ValueError, KeyError) as exc:
            raise MalformedFrame(f"bad orderbook: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if self.publish(symbol, join_pairs(bids), join_pairs(asks), NO_SEQ, ts_ns, recv_ns,
                        snapshot=True, live=True):
            self.snapshot_applied(symbol)
