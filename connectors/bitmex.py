"""BitMEX realtime websocket, ``orderBookL2`` (full depth) / ``orderBookL2_25`` tables.

How the protocol works and how this connector keeps a book right ([rec] = seen in the
2021 recording ``BITMEX.ws.1.0``; [doc] = the sources below):

* Endpoint ``wss://ws.bitmex.com/realtime`` [doc] (the 2021 recording used the older
  ``wss://www.bitmex.com/realtime`` [rec]).  Commands are ``{"op": "subscribe", "args":
  ["orderBookL2:XBTUSD", ...]}`` and ``"unsubscribe"`` with the same shape [doc][rec];
  each topic is acknowledged with ``{"success": true, "subscribe": "orderBookL2:XBTUSD",
  "request": {...}}`` [rec]; errors come as ``{"status": 4xx, "error": "..."}``
  (counted as malformed frames; a book whose partial never comes triggers a reconnect
  after ``snapshot_timeout``).  A ``{"info": "Welcome ..."}`` frame opens the link [rec].
* Table rows: ``{"table": "orderBookL2", "action": A, "data": [rows]}``.  Row keys are
  ``symbol``, ``id``, ``side`` (``Buy``/``Sell``); ``size`` is in contracts (type
  ``long``); ``price`` is a JSON number [rec: ``"types"`` of the partial].
  - ``partial``: the whole book of the symbol named in ``filter.symbol`` (also for an
    empty book); it replaces ours.  Rows of a symbol that arrive before its partial are
    dropped (the tail of an old subscription, or data racing the partial).
  - ``insert``: a new level (id, side, size, price).
  - ``update``: new absolute size of a known id.  Since 2023 every update and delete
    carries ``price`` too, and ids are arbitrary, no longer derived from the price
    [doc: blog 2023 below]; the 2021 dialect [rec] carries only the id, so this module
    keeps an id -> (side, price) map per symbol and takes the price from it when the
    row has none.  Both dialects are spoken by the same class.
  - ``delete``: the id's level is gone.
  Since 2022-02-14 rows also carry ``timestamp`` (matching-engine time for
  orderBookL2) [doc: blog 2022]; it is used as the message time when present.
* Integrity: no sequence numbers and no checksums.  What can be seen is checked: an
  ``update``/``delete`` for an id the book does not hold, an ``insert`` of an id it
  already holds, and a row whose side or price contradicts the id map all prove a lost
  message; each is counted as a ``gap`` and the book is resynced (unsubscribe +
  subscribe, batched; the new partial rebuilds it).  A crossed book after a message
  (found by the engine) resyncs too.  A lost ``update`` of a level that still exists
  cannot be seen and lasts until the next partial.
* Keep-alive: text ``ping``, answered by text ``pong`` [doc: "Heartbeating" section;
  BitMEX's reference connectors].  A ping goes out after ``ping_idle`` seconds (5) with
  nothing received; the runner's idle timeout catches a link that stays silent.
* Numbers: prices are JSON numbers, sometimes in exponent form (``3.5e-7`` [rec]); the
  frame is parsed with the number texts kept as text (never floats) and the engine's
  exact parser takes them as they are.  Price scale = decimals of ``tickSize`` +
  ``PRICE_HEADROOM``; size scale = decimals of ``lotSize`` (0: sizes are integers).
* Depth: ``orderBookL2`` is the entire book (XBTUSD held 5542 bids in 2021 [rec]);
  ``depth = 10000`` levels per side are kept and a larger partial is cut to its best
  10000 per side.  A partial is published best-first per side after sorting (ids no
  longer order it).
* Instruments: ``GET /api/v1/instrument/active`` [rec: ``BITMEX.0``]; ``tickSize`` /
  ``lotSize`` are JSON numbers (``1e-8``) read as text.  Unified names: perpetuals
  (typ ``FFWCSX``) ``BTC-USD-PERP``, futures (``FFCCSX``) ``XRP-BTC-20210924`` from
  ``expiry``, spot (``IFXXXP``) ``BTC-USDT``; ``XBT`` is written ``BTC``.  cryptofeed's
  coded future names (``XRP-BTC-21U24``) are mapped by ``native_from_recording``.

Sources:
  https://www.bitmex.com/app/wsAPI (endpoint, commands, subscriptions, heartbeating),
  https://blog.bitmex.com/site_announcement/potentially-breaking-api-update-to-id-generation-on-websocket-orderbook-feeds
  (2023: arbitrary ids, price on insert/update/delete),
  https://blog.bitmex.com/api_announcement/changes-to-order-book-level-2-data/ (2022:
  timestamps on every orderBookL2 row).
Not confirmed from the stored material: the exact wording of the heartbeat advice (the
5 s idle period is the commonly documented recommendation, used here), the shape of
error frames beyond ``status``/``error``, any per-connection topic limit (50 books per
connection is our own choice), and whether a current ``delete`` row's ``price`` can
ever differ from the id's insert price (treated as a lost message if it does).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_pairs
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ
from engine.fixedpoint import MAX_DECIMALS, decimals_for

INSTRUMENTS_PATH = "/api/v1/instrument/active"
BOOK_TABLES = ("orderBookL2", "orderBookL2_25")
PRICE_HEADROOM = 2        # decimals beyond tickSize (a finer tick mid-session)
PING_IDLE = 5.0           # seconds of silence before a "ping"
KINDS = {"FFWCSX": "perp", "FFWCSF": "perp", "FFCCSX": "future", "IFXXXP": "spot"}
_CURRENCY = {"XBT": "BTC"}
_MONTH_CODES = "FGHJKMNQUVXZ"
_CODED_DATE = re.compile(r"^(\d\d)([FGHJKMNQUVXZ])(\d\d)$")
_SIDES = {"Buy": 0, "Sell": 1}
_BAD_INPUT = (TypeError, ValueError, KeyError, IndexError, AttributeError,
              InvalidOperation)


def loads_exact(frame: bytes | str):
    """JSON with every number kept as its text (ids, sizes and prices alike)."""
    return json.loads(frame, parse_float=str, parse_int=str)


def _currency(code: str) -> str:
    return _CURRENCY.get(code, code)


def _iso_ns(text) -> int:
    """'2023-05-19T08:51:43.911Z' -> ns since the epoch; 0 when absent/unreadable."""
    if type(text) is not str:
        return 0
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000) * 1_000_000
    except ValueError:
        return 0


def _best(levels: list, descending: bool, depth: int) -> tuple[bytes, bytes]:
    """One side of a partial, best first, cut to ``depth`` levels, joined for publish."""
    levels.sort(key=lambda lv: Decimal(lv[0]), reverse=descending)
    return join_pairs(levels[:depth])


class BitMEX(ResubscribingProtocol):
    exchange = "bitmex"
    ws_url = "wss://ws.bitmex.com/realtime"
    rest_url = "https://www.bitmex.com"
    max_symbols_per_connection = 50    # not documented: our own choice
    subscribe_batch = 50
    depth = 10000
    table = "orderBookL2"

    def __init__(self, *args, ping_idle: float = PING_IDLE, table: str | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if table is not None:
            if table not in BOOK_TABLES:
                raise ConfigError(f"bitmex: unknown book table {table!r}")
            self.table = table
        # per symbol: id (text) -> (side 0/1, price text)
        self.ids: dict[str, dict[str, tuple[int, str]]] = {s: {} for s in self.targets}
        self.ping_idle = ping_idle
        self.ping_interval = max(0.05, min(1.0, ping_idle / 4))
        self.pings_sent = 0
        self.pongs = 0
        self.acks = 0
        self._last_rx = self._last_ping = time.monotonic()

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + INSTRUMENTS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        rows = loads_exact(body)
        if not isinstance(rows, list):
            raise ConfigError(f"bitmex: instrument list error: {str(rows)[:200]}")
        out: dict[str, Instrument] = {}
        for x in rows:
            if not isinstance(x, dict):
                continue
            native, tick, lot = x.get("symbol"), x.get("tickSize"), x.get("lotSize")
            if not native or not isinstance(tick, str) or not isinstance(lot, str):
                continue
            typ = x.get("typ", "")
            kind = KINDS.get(typ, "other")
            base = _currency(x.get("rootSymbol") or x.get("underlying") or native)
            quote = _currency(x.get("quoteCurrency") or "")
            if kind == "perp":
                unified = f"{base}-{quote}-PERP"
            elif kind == "future" and x.get("expiry"):
                unified = f"{base}-{quote}-{x['expiry'][:10].replace('-', '')}"
            elif kind == "spot":
                unified = f"{base}-{quote}"
            else:
                unified = native
            pdec = min(decimals_for(tick) + PRICE_HEADROOM, MAX_DECIMALS)
            sdec = min(decimals_for(lot), MAX_DECIMALS)
            out[native] = Instrument(cls.exchange, native, unified, pdec, sdec, tick, lot,
                                     kind)
        return out

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed's XRP-BTC-21U24 -> the future whose unified name is
        XRP-BTC-20210924."""
        parts = name.split("-")
        for i, part in enumerate(parts):
            m = _CODED_DATE.match(part)
            if m:
                parts[i] = f"20{m[1]}{_MONTH_CODES.index(m[2]) + 1:02d}{m[3]}"
        wanted = "-".join(parts)
        return next((n for n, inst in instruments.items() if inst.unified == wanted), None)

    # -- subscription ------------------------------------------------------------------
    def topics(self, symbols: list[str]) -> list[str]:
        return [f"{self.table}:{s}" for s in symbols]

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return self._requests("subscribe", symbols)

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return self._requests(kind, symbols)

    def _requests(self, op: str, symbols: list[str]) -> list[str]:
        return [orjson.dumps({"op": op, "args": self.topics(batch)}).decode()
                for batch in self.symbol_batches(symbols)]

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.ids[symbol].clear()

    def ping_message(self) -> str | None:
        now = time.monotonic()
        if now - self._last_rx < self.ping_idle or now - self._last_ping < self.ping_idle:
            return None
        self._last_ping = now
        self.pings_sent += 1
        return "ping"

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        self._last_rx = time.monotonic()
        if frame == "pong" or frame == b"pong":
            self.pongs += 1
            self.stats.ignored_frames += 1
            return
        try:
            msg = loads_exact(frame)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedFrame(f"not JSON: {exc}") from exc
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        table = msg.get("table")
        if table in BOOK_TABLES:
            self._on_book(msg, recv_ns)
        elif table is not None or "info" in msg:
            self.stats.ignored_frames += 1          # quote, trade, welcome ...
        elif msg.get("success") is True:
            self.acks += 1
            self.stats.ignored_frames += 1
        elif "error" in msg:
            raise MalformedFrame(f"venue error: {str(msg)[:120]}")
        else:
            raise MalformedFrame("neither a table message nor a reply")

    def _on_book(self, msg: dict, recv_ns: int) -> None:
        action = msg.get("action")
        data = msg.get("data")
        if type(data) is not list:
            raise MalformedFrame("table message without a data list")
        if action == "partial":
            flt = msg.get("filter")
            symbol = flt.get("symbol") if isinstance(flt, dict) else None
            if symbol is None and data and isinstance(data[0], dict):
                symbol = data[0].get("symbol")
            if symbol not in self.ids:
                self.stats.unknown_symbol_frames += 1
                return
            self._partial(symbol, data, recv_ns)
            return
        if action not in ("insert", "update", "delete"):
            raise MalformedFrame(f"unknown action {action!r}")
        groups: dict[str, list] = {}
        for row in data:
            sym = row.get("symbol") if isinstance(row, dict) else None
            groups.setdefault(sym, []).append(row)
        for symbol, rows in groups.items():
            if symbol not in self.ids:
                if symbol is None:
                    raise MalformedFrame("row without a symbol")
                self.stats.unknown_symbol_frames += 1
            elif not self.live[symbol]:
                self.stats.ignored_frames += 1     # no partial yet: nothing to apply to
            else:
                self._rows(symbol, action, rows, recv_ns)

    def _partial(self, symbol: str, data: list, recv_ns: int) -> None:
        ids = self.ids[symbol]
        ids.clear()
        sides: tuple[list, list] = ([], [])
        ts = 0
        try:
            for row in data:
                side = _SIDES[row["side"]]
                price, size = row["price"], row["size"]
                if type(price) is not str or type(size) is not str:
                    raise TypeError("price or size is not a number")
                ids[row["id"]] = (side, price)
                sides[side].append((price, size))
            if data:
                ts = _iso_ns(data[-1].get("timestamp"))
            bids = _best(sides[0], True, self.depth)
            asks = _best(sides[1], False, self.depth)
        except _BAD_INPUT as exc:
            ids.clear()
            raise MalformedFrame(f"bad partial: {type(exc).__name__}: {exc}", symbol) from exc
        if self.publish(symbol, bids, asks, NO_SEQ, ts, recv_ns, snapshot=True, live=True):
            self.snapshot_applied(symbol)

    def _rows(self, symbol: str, action: str, rows: list, recv_ns: int) -> None:
        ids = self.ids[symbol]
        sides: tuple[list, list] = ([], [])
        lost = None
        try:
            for row in rows:
                key = row["id"]
                side = _SIDES[row["side"]]
                price = row.get("price")
                if price is not None and type(price) is not str:
                    raise TypeError("price is not a number")
                if action == "insert":
                    size = row["size"]
                    if key in ids:
                        lost = f"insert of id {key} already in the book"
                        break
                    if price is None:
                        raise KeyError("price")
                    ids[key] = (side, price)
                else:
                    known = ids.get(key)
                    if known is None:
                        lost = f"{action} of unknown id {key}"
                        break
                    if known[0] != side or (price is not None and price != known[1]
                                            and Decimal(price) != Decimal(known[1])):
                        lost = f"{action} of id {key} contradicts its insert"
                        break
                    price = known[1]
                    if action == "delete":
                        size = "0"
                        del ids[key]
                    else:
                        size = row["size"]
                if type(size) is not str:
                    raise TypeError("size is not a number")
                sides[side].append((price, size))
            ts = _iso_ns(rows[-1].get("timestamp"))
            bids, asks = join_pairs(sides[0]), join_pairs(sides[1])
        except _BAD_INPUT as exc:
            raise MalformedFrame(f"bad {action}: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if lost is not None:
            self.gap(symbol, lost)       # counts, marks stale, clears ids, resubscribes
            return
        self.publish(symbol, bids, asks, NO_SEQ, ts, recv_ns)
