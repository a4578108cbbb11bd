"""Kraken Futures (derivatives): the public websocket v1 ``book`` feed.

Protocol (sources below; [rec] = seen in the recorded session KRAKEN_FUTURES, 2021):

* Endpoint ``wss://futures.kraken.com/ws/v1``.  On connect the server sends
  ``{"event":"info","version":1}`` [rec].  Subscribe with
  ``{"event":"subscribe","feed":"book","product_ids":["PF_XBTUSD",...]}``; each product is
  acknowledged on its own, ``{"event":"subscribed","feed":"book","product_ids":[P]}``
  [rec]; failures answer ``subscribed_failed`` / ``unsubscribed_failed`` or
  ``{"event":"error","message":...}``.  Product ids are written in upper case on the
  wire [rec: we may send lower case, acks and data come back upper case].
* After the ack: one ``book_snapshot`` per product,
  ``{"feed":"book_snapshot","product_id":P,"timestamp":ms,"seq":S,"tickSize":null,
  "bids":[{"price":p,"qty":q},...],"asks":[...]}`` [rec], then one ``book`` message per
  level change, ``{"feed":"book","product_id":P,"side":"buy"|"sell","seq":N,"price":p,
  "qty":q,"timestamp":ms}`` [rec].  ``qty`` is the new absolute size, 0 deletes.
* ``seq`` is per product: the first update after a snapshot has ``S + 1`` and each
  following one the previous + 1 [rec: 7004 updates over 10 products, no exception].
  A larger jump is a lost message: counted with ``gap()`` and repaired by unsubscribing
  and subscribing the product (a fresh snapshot; no REST book is used).  Updates not
  above the last applied seq (the tail of an earlier subscription) are ignored, as are
  updates of a book that has no snapshot yet.
* Prices and quantities are JSON *numbers* [rec: ``439.3``, ``20108.0``].  They are
  decoded as their source text (``json`` with ``parse_float=str``), never as floats, and
  parsed exactly into fixed point; exponent forms (``1.5E-5``) are accepted by the parser.
* Keep-alive: Kraken asks clients to "ping at least every 60 seconds".  The runner's
  websocket-level pings (every 20 s) are what we rely on; in addition the ``heartbeat``
  feed is subscribed so that an idle but healthy link still delivers a frame (the
  runner's idle timeout then only fires on a dead link).
* Instruments: ``GET /derivatives/api/v3/instruments`` [rec: ``KRAKEN_FUTURES.0``]:
  ``symbol`` (lower case in 2021, upper case today), ``type``, ``tickSize`` (JSON
  number), ``contractSize``, ``tradeable``, ``lastTradingTime``; today's flexible
  (linear) futures also carry ``contractValueTradePrecision`` (decimals of the quantity,
  possibly negative).  Spot indices (``in_``/``rr_``, no tickSize) are skipped.
* Scales: price decimals = decimals of ``tickSize`` + ``HEADROOM``; size decimals =
  ``contractValueTradePrecision`` (at least 0) + ``HEADROOM``, or ``DEFAULT_SIZE_DECIMALS``
  where the venue gives none (inverse contracts trade whole contracts [rec: every
  recorded qty ends in ``.0``]).  The recording needs 4 price decimals (PI_XRPUSD) and 1
  size decimal, well inside these.
* Depth: the venue sends the whole book (the largest recorded snapshot has 359 bids);
  ``depth`` = 1000 levels are kept.  A deeper book would lose its far end.
* Names: native = the upper-case product id (``PF_XBTUSD``, ``FI_XBTUSD_210924``).
  Unified: ``BTC-USD-PERP`` (flexible/linear perpetual), ``BTC-USD-20210924`` (dated),
  with ``-INV`` appended for inverse contracts (``PI_``/``FI_``) so that PI_XBTUSD and
  PF_XBTUSD stay distinct.  XBT is written BTC.  cryptofeed's recorded names
  (``BTC-USD-21U24``, ``XRP-USD-PERP``) are mapped by ``native_from_recording``.

Sources:
  https://docs.kraken.com/exchange/api-reference/futures-websocket/book.md (subscribe,
  subscribed / subscribed_failed, product_ids),
  https://docs.kraken.com/api/docs/futures-api/websocket/heartbeat (heartbeat feed,
  ``{"feed":"heartbeat","time":ms}``, error ``{"event":"error","message":"Json Error"}``),
  https://support.kraken.com/hc/en-us/articles/360022635632-Subscriptions-WebSockets-API-
  (endpoint; "ping request at least every 60 seconds"; snapshot then updates).
Not confirmed: whether the 60 s "ping" means a websocket control ping (assumed; the
runner sends one every 20 s) or an application message (no ``{"event":"ping"}`` is
documented for the futures feed, so none is sent); the heartbeat period; a limit on
products per connection or on subscribe rate (50 per connection is our choice);
whether a plain re-subscribe (without unsubscribe) re-sends a snapshot (we always
unsubscribe first); the exact field list of today's instruments response beyond the
fields named above; that the venue never sends a crossed book outside errors.
"""

from __future__ import annotations

import json
import logging
import re
from operator import itemgetter

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.exactjson import loads_exact
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import MAX_DECIMALS, decimals_for

log = logging.getLogger("hftbook.connectors")

INSTRUMENTS_PATH = "/derivatives/api/v3/instruments"
HEADROOM = 2
DEFAULT_SIZE_DECIMALS = 4
ASSETS = {"XBT": "BTC"}
MONTH_CODES = "FGHJKMNQUVXZ"
_CODED_DATE = re.compile(r"^(\d{2})([FGHJKMNQUVXZ])(\d{2})$")
_DATED = re.compile(r"^\d{6}$")

_price = itemgetter("price")
_qty = itemgetter("qty")
_EMPTY = (b"", b"")


def _number_text(value, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"kraken_futures: {what} is not a number: {value!r}")


def unified_name(symbol: str, inst: dict) -> tuple[str, str]:
    """(unified name, kind) of a product id: PF_XBTUSD -> BTC-USD-PERP,
    FI_XBTUSD_210924 -> BTC-USD-20210924-INV."""
    prefix, _, rest = symbol.upper().partition("_")
    pair, _, date = rest.partition("_")
    base = inst.get("base") if isinstance(inst.get("base"), str) else None
    quote = inst.get("quote") if isinstance(inst.get("quote"), str) else None
    if not (base and quote):
        base, quote = pair[:-3], pair[-3:]
    base, quote = ASSETS.get(base.upper(), base.upper()), ASSETS.get(quote.upper(),
                                                                     quote.upper())
    inverse = prefix.endswith("I") or inst.get("type") == "futures_inverse"
    if date and _DATED.match(date):
        name, kind = f"{base}-{quote}-20{date}", "future"
    else:
        name, kind = f"{base}-{quote}-PERP", "perp"
    return (name + "-INV" if inverse else name), kind


class KrakenFutures(ResubscribingProtocol):
    exchange = "kraken_futures"
    ws_url = "wss://futures.kraken.com/ws/v1"
    rest_url = "https://futures.kraken.com"
    max_symbols_per_connection = 50     # our choice: no documented cap
    subscribe_batch = 50
    subscribe_interval = 0.05
    depth = 1000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_seq: dict[str, int | None] = dict.fromkeys(self.targets)
        self.heartbeats = 0
        self.stale_updates = 0          # updates at or below the applied seq (ignored)

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + INSTRUMENTS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        doc = loads_exact(body)
        if not isinstance(doc, dict) or doc.get("result") != "success":
            raise ConfigError(f"kraken_futures: instruments error: {str(doc)[:200]}")
        out = {}
        for inst in doc.get("instruments") or ():
            symbol = inst.get("symbol")
            if not isinstance(symbol, str) or inst.get("tickSize") is None:
                continue            # spot indices: no book
            native = symbol.upper()
            tick = _number_text(inst["tickSize"], f"{native} tickSize")
            pdec = min(decimals_for(tick) + HEADROOM, MAX_DECIMALS)
            cvtp = inst.get("contractValueTradePrecision")
            if cvtp is not None:
                sdec = max(int(cvtp), 0) + HEADROOM
                lot = f"1e{-int(cvtp)}"
            else:
                sdec = DEFAULT_SIZE_DECIMALS
                lot = str(inst.get("contractSize") or "1")
            unified, kind = unified_name(native, inst)
            out[native] = Instrument(cls.exchange, native, unified, pdec,
                                     min(sdec, MAX_DECIMALS), tick, lot, kind)
        return out

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed's BTC-USD-21U24 / XRP-USD-PERP -> our native name."""
        parts = name.upper().split("-")
        for i, part in enumerate(parts):
            m = _CODED_DATE.match(part)
            if m:
                parts[i] = f"20{m[1]}{MONTH_CODES.index(m[2]) + 1:02d}{m[3]}"
        wanted = "-".join(parts)
        by_unified = {inst.unified: n for n, inst in instruments.items()}
        return by_unified.get(wanted) or by_unified.get(wanted + "-INV")

    # -- subscription ------------------------------------------------------------------
    def book_request(self, kind: str, symbols: list[str]) -> str:
        return json.dumps({"event": kind, "feed": "book", "product_ids": symbols},
                          separators=(",", ":"))

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        msgs = [self.book_request("subscribe", b) for b in self.symbol_batches(symbols)]
        return msgs + ['{"event":"subscribe","feed":"heartbeat"}']

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self.book_request(kind, symbols)]

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.last_seq[symbol] = None

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = loads_exact(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        event = msg.get("event")
        if event is not None:
            self._on_event(event, msg)
            return
        feed = msg.get("feed")
        if feed == "book":
            self._on_update(msg, recv_ns)
        elif feed == "book_snapshot":
            self._on_snapshot(msg, recv_ns)
        elif feed == "heartbeat":
            self.heartbeats += 1
            self.stats.ignored_frames += 1
        elif isinstance(feed, str):
            self.stats.ignored_frames += 1      # trade, ticker, ...
        else:
            raise MalformedFrame("message without feed or event")

    def _on_event(self, event, msg: dict) -> None:
        if event == "error":
            raise MalformedFrame(f"venue error: {str(msg.get('message'))[:120]}")
        if event in ("subscribed_failed", "unsubscribed_failed", "alert"):
            log.warning("%s: %s: %.160s", self.exchange, event, msg)
        self.stats.ignored_frames += 1          # info, subscribed, unsubscribed

    def _symbol(self, msg: dict) -> str | None:
        symbol = msg.get("product_id")
        if symbol in self.live:
            return symbol
        if isinstance(symbol, str) and symbol.upper() in self.live:
            return symbol.upper()
        self.stats.unknown_symbol_frames += 1
        return None

    def _on_snapshot(self, msg: dict, recv_ns: int) -> None:
        symbol = self._symbol(msg)
        if symbol is None:
            return
        try:
            seq = int(msg["seq"])
            ts = int(msg.get("timestamp") or 0) * 1_000_000
            bids, asks = msg["bids"], msg["asks"]
            if type(bids) is not list or type(asks) is not list:
                raise TypeError("bids/asks not lists")
            b = join_levels(bids, _price, _qty)
            a = join_levels(asks, _price, _qty)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedFrame(f"bad book_snapshot: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if self.publish(symbol, b, a, seq, ts, recv_ns, snapshot=True, live=True):
            self.last_seq[symbol] = seq
            self.snapshot_applied(symbol)

    def _on_update(self, msg: dict, recv_ns: int) -> None:
        symbol = self._symbol(msg)
        if symbol is None:
            return
        try:
            seq = int(msg["seq"])
            side = msg["side"]
            level = (msg["price"].encode(), msg["qty"].encode())
            ts = int(msg.get("timestamp") or 0) * 1_000_000
            if side not in ("buy", "sell"):
                raise ValueError(f"side {side!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedFrame(f"bad book update: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        last = self.last_seq[symbol]
        if not self.live[symbol] or last is None:
            self.stats.ignored_frames += 1      # no snapshot yet: nothing to apply to
            return
        if seq <= last:
            self.stale_updates += 1
            return
        if seq != last + 1:
            self.gap(symbol, f"seq {seq} after {last}")
            return
        if side == "buy":
            ok = self.publish(symbol, level, _EMPTY, seq, ts, recv_ns)
        else:
            ok = self.publish(symbol, _EMPTY, level, seq, ts, recv_ns)
        if ok:
            self.last_seq[symbol] = seq
