"""Kraken spot: the WebSocket v2 ``book`` channel (live) and the v1 ``book-N`` dialect
(the recorded sessions).

v2 (wss://ws.kraken.com/v2, docs.kraken.com "Book (Level 2)" and "Book checksum (v2)"):
  subscribe ``{"method":"subscribe","params":{"channel":"book","symbol":[...],
  "depth":1000,"snapshot":true}}``; one ack per symbol; then per symbol a ``snapshot``
  and ``update`` messages, each carrying ``checksum``: CRC-32 (unsigned) over the top 10
  asks (best first) then the top 10 bids, every price and qty written with the pair's
  precision, '.' removed, leading zeros stripped.  That is the decimal text of the
  fixed-point integer at the pair's scale, which the writer kernel computes on its own
  book (engine.checksum.CK_KRAKEN), so a book's scale must be exactly the pair's
  ``pair_decimals`` / ``lot_decimals`` (AssetPairs; the v2 ``instrument`` channel
  calls them price_precision / qty_precision).  Prices and quantities are JSON
  *numbers*: they are decoded as their source text (``parse_float=str``), never as
  floats.  qty 0 deletes a level; after each message the book is cut to the subscribed
  depth (the store depth): levels that fall out of scope get no delete.  There is no
  sequence number: the checksum is the only integrity check, and a mismatch is repaired
  by unsubscribing and resubscribing the symbol, which brings a fresh snapshot.  The
  server sends ``{"channel":"heartbeat"}`` about once a second when idle and answers
  ``{"method":"ping"}`` with a pong.

v1 (wss://ws.kraken.com, frozen by Kraken, spoken here for the recordings): frames are
  arrays ``[chanId, {"as":[...],"bs":[...]}, "book-1000", "XBT/USD"]`` (snapshot, no
  checksum) and ``[chanId, {"a":[...]}, {"b":[...],"c":"<crc>"}, "book-1000", pair]``
  (update: one or two dicts, the checksum in the last one); levels are
  ``[price, volume, timestamp]`` strings plus an optional ``"r"`` (republish) flag.
  The checksum hashes the strings as sent, and v1 writes prices with a legacy per-pair
  number of decimals that AssetPairs does not publish (see ``KrakenV1``).

Names: v1 and REST say XBT and XDG where v2 says BTC and DOGE; unified names use the v2
assets (``BTC-USD``).
"""

from __future__ import annotations

import logging
import time
import zlib
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter

import numpy as np
import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, Protocol
from connectors.exactjson import loads_exact
from connectors.publish import (
    NO_CHECKSUM,
    RAW_MAX_LEVELS,
    join_levels,
    push_raw_keyed_batch,
)
from engine.checksum import CK_KRAKEN
from engine.constants import NO_SEQ
from engine.fixedpoint import to_fixed

log = logging.getLogger("hftbook.connectors")

# v1 / REST asset names that v2 and the unified names spell differently
V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}
V1_ASSETS = {v: k for k, v in V2_ASSETS.items()}

_price = itemgetter("price")
_qty = itemgetter("qty")
_first = itemgetter(0)
_second = itemgetter(1)
_MAX_CRC = 1 << 32


def v2_symbol(wsname: str) -> str:
    """v1 / AssetPairs ``wsname`` -> v2 symbol: ``XBT/USD`` -> ``BTC/USD``."""
    base, _, quote = wsname.partition("/")
    return f"{V2_ASSETS.get(base, base)}/{V2_ASSETS.get(quote, quote)}"


def v1_symbol(symbol: str) -> str:
    """v2 symbol -> v1 / AssetPairs ``wsname``: ``BTC/USD`` -> ``XBT/USD``."""
    base, _, quote = symbol.partition("/")
    return f"{V1_ASSETS.get(base, base)}/{V1_ASSETS.get(quote, quote)}"


def _is_zero(text: str) -> bool:
    """Whether a quantity text is zero ("0", "0.00000000", "0e0"), without a float."""
    return not text.partition("e")[0].partition("E")[0].strip("+-0.")


def deletes_first(levels: list, price, qty) -> list:
    """One side of one message, reordered so that its deletes come first.

    Kraken cuts the book to the subscribed depth after each *message*; the writer cuts
    it after each level.  The two agree once deletes go first (inserts then only add,
    and cutting a growing set as you go keeps what cutting it at the end keeps), so
    a level that an insert would push out and a later delete would bring back is not
    lost.  A price repeated in the message keeps only its last quantity (the final
    state is what counts); otherwise the order within deletes and within sets is
    kept."""
    if len(levels) < 2:
        return levels
    zero = [_is_zero(qty(lv)) for lv in levels]
    if all(zero) or not any(zero):
        return levels
    prices = [price(lv) for lv in levels]
    if len(set(prices)) != len(prices):
        levels = list(dict(zip(prices, levels)).values())
        zero = [_is_zero(qty(lv)) for lv in levels]
    return [lv for lv, z in zip(levels, zero) if z] + \
        [lv for lv, z in zip(levels, zero) if not z]


def checksum_text(asks: list[tuple[int, int]], bids: list[tuple[int, int]]) -> str:
    """The string Kraken hashes, from fixed-point (price, qty) pairs at the pair's
    scale, best first: top 10 asks then top 10 bids, each number's digits without
    leading zeros (which is what ``str`` of the fixed-point integer is)."""
    return "".join(f"{p}{q}" for p, q in asks[:10]) + "".join(f"{p}{q}" for p, q in bids[:10])


def book_checksum(asks: list, bids: list, price_decimals: int, size_decimals: int) -> int:
    """Kraken's CRC-32 of a whole book given as level texts (``[price, qty]`` or
    ``{"price":..., "qty":...}``), in any order; used on v2 snapshots (see
    ``Kraken._snapshot_ok``)."""
    def fixed(levels) -> list[tuple[int, int]]:
        out = []
        for lv in levels:
            p, q = (lv["price"], lv["qty"]) if isinstance(lv, dict) else (lv[0], lv[1])
            out.append((to_fixed(p, price_decimals), to_fixed(q, size_decimals)))
        return out

    a = sorted(fixed(asks))
    b = sorted(fixed(bids), reverse=True)
    return zlib.crc32(checksum_text(a, b).encode())


@lru_cache(maxsize=256)
def _minute_epoch(prefix: str) -> int:
    return int(datetime.fromisoformat(prefix + ":00").replace(tzinfo=UTC).timestamp())


def rfc3339_ns(text: str) -> int:
    """``2023-10-06T17:35:55.440295Z`` -> integer ns since the epoch (UTC), exactly."""
    if len(text) < 20 or text[-1] != "Z" or text[16] != ":" or text[10] != "T":
        raise ValueError(f"not an RFC 3339 UTC timestamp: {text[:40]!r}")
    whole, _, frac = text[:-1].partition(".")
    if len(whole) != 19 or not whole[17:].isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not an RFC 3339 UTC timestamp: {text[:40]!r}")
    ns = int((frac + "000000000")[:9]) if frac else 0
    return (_minute_epoch(whole[:16]) + int(whole[17:])) * 1_000_000_000 + ns


def epoch_text_ns(text: str) -> int:
    """v1 timestamp ``1618678133.370507`` -> integer ns, exactly."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + (int((frac + "000000000")[:9]) if frac else 0)


def _ts_order(level) -> float:
    return float(level[2])


class _Sync:
    __slots__ = ("live", "requested_at")

    def __init__(self) -> None:
        self.live = False           # a snapshot was applied since the last reset
        self.requested_at = None    # monotonic time a snapshot was asked for, if waiting


class Kraken(Protocol):
    """Kraken spot, WebSocket v2 ``book``; natives are v2 symbols (``BTC/USD``)."""

    exchange = "kraken"
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"
    instruments_path = "/0/public/AssetPairs"
    checksum_scheme = CK_KRAKEN
    depth = 1000                        # subscribed levels, one of ``depths``
    depths = (10, 25, 100, 500, 1000)
    max_symbols_per_connection = 50     # no documented cap; depth-1000 snapshots are big
    subscribe_batch = 25
    subscribe_interval = 0.1            # the message rate limit is undocumented
    ping_interval = 20.0                # app-level {"method":"ping"}
    snapshot_timeout = 15.0             # no snapshot this long after asking: ask again

    def __init__(self, *args, depth: int | None = None, **kwargs) -> None:
        """``depth``: levels to subscribe, one of ``depths`` (default: the class's).  It
        must equal the store's depth: a deeper store keeps levels that left the
        subscription's scope and are never updated again, a shallower one loses levels
        the venue will not send again.  The store rounds depths up to a multiple of 8,
        so today only 1000 qualifies."""
        super().__init__(*args, **kwargs)
        if depth is not None:
            if depth not in self.depths:
                raise ConfigError(f"{self.exchange}: depth {depth} is not one of {self.depths}")
            self.depth = depth
        self.sync = {s: _Sync() for s in self.targets}
        self._req_id = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def native_name(cls, wsname: str) -> str:
        return v2_symbol(wsname)

    @classmethod
    def scales(cls, native: str, pair: dict) -> tuple[int, int]:
        """(price, size) decimals: the pair's precision, which v2 writes and hashes."""
        return int(pair["pair_decimals"]), int(pair["lot_decimals"])

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """AssetPairs -> instruments keyed by native name.  Pairs without a ``wsname``
        (the ``.d`` dark-pool books) have no websocket book and are skipped."""
        doc = orjson.loads(body)
        if doc.get("error"):
            raise ConfigError(f"{cls.exchange}: AssetPairs error: {doc['error']}")
        out = {}
        for pair in doc["result"].values():
            wsname = pair.get("wsname")
            if not wsname or "/" not in wsname:
                continue
            native = cls.native_name(wsname)
            pdec, sdec = cls.scales(native, pair)
            tick = pair.get("tick_size") or f"1e-{pair['pair_decimals']}"
            out[native] = Instrument(cls.exchange, native, v2_symbol(wsname).replace("/", "-"),
                                     pdec, sdec, str(tick), f"1e-{sdec}", "spot")
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.instruments_path]

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """``BTC-USD`` / ``BTC/USD`` / ``XBT/USD`` -> our native name, if listed."""
        guess = cls.native_name(v1_symbol(name.replace("-", "/")))
        return guess if guess in instruments else None

    # -- requests ----------------------------------------------------------------------
    def _next_id(self) -> int:
        self._req_id += 1
        return self._req_id

    def book_request(self, method: str, symbols: list[str]) -> str:
        """A subscribe / unsubscribe of the ``book`` channel for ``symbols``."""
        params = {"channel": "book", "symbol": symbols, "depth": self.depth}
        if method == "subscribe":
            params["snapshot"] = True
        return orjson.dumps({"method": method, "params": params,
                             "req_id": self._next_id()}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        now = time.monotonic()
        for s in symbols:
            self.sync[s].requested_at = now
        return [self.book_request("subscribe", b) for b in self.symbol_batches(symbols)]

    def ping_message(self) -> str | None:
        return orjson.dumps({"method": "ping", "req_id": self._next_id()}).decode()

    def request_resync(self, symbol: str) -> None:
        """Resubscribe ``symbol`` for a fresh snapshot, unless one is already coming."""
        if self.sync[symbol].requested_at is None:
            self._resubscribe(symbol)

    def _resubscribe(self, symbol: str) -> None:
        self.outbox.append(self.book_request("unsubscribe", [symbol]))
        self.outbox.append(self.book_request("subscribe", [symbol]))
        self.sync[symbol].requested_at = time.monotonic()

    def reset_symbol(self, symbol: str) -> None:
        self.sync[symbol].live = False

    def on_connect(self) -> None:
        for s in self.sync.values():
            s.requested_at = None       # the (re)subscription follows on the new socket
        super().on_connect()

    def on_disconnect(self) -> None:
        for s in self.sync.values():
            s.requested_at = None
        super().on_disconnect()

    def check_health(self, symbols=None) -> None:
        """The writer's verdicts (base class), then a watchdog: a snapshot that does not
        come (lost unsubscribe/subscribe race, rejected subscription) is asked again."""
        super().check_health(symbols)
        now = time.monotonic()
        for s in symbols if symbols is not None else self.targets:
            sync = self.sync[s]
            if sync.requested_at is not None and now - sync.requested_at > self.snapshot_timeout:
                log.warning("%s %s: no snapshot %.0fs after subscribing: resubscribing",
                            self.exchange, s, self.snapshot_timeout)
                self.stats.reasons["snapshot timeout"] += 1
                self._resubscribe(s)

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = loads_exact(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        channel = msg.get("channel")
        if channel == "book":
            kind = msg.get("type")
            data = msg.get("data")
            if kind not in ("snapshot", "update") or not isinstance(data, list):
                raise MalformedFrame(f"book message of type {kind!r} without a data list")
            for item in data:
                self._on_book(item, kind == "snapshot", recv_ns)
            return
        if channel == "status":
            for item in msg.get("data") or ():
                if isinstance(item, dict) and item.get("system") not in (None, "online"):
                    log.warning("%s: venue status %s", self.exchange, item.get("system"))
        elif "method" in msg:
            self._on_response(msg)
        elif "error" in msg:
            log.warning("%s: venue error: %.*s", self.exchange, 160, msg["error"])
        self.stats.ignored_frames += 1

    def _on_response(self, msg: dict) -> None:
        """Acks of our requests.  A rejected subscription leaves the book stale; the
        watchdog retries it."""
        if msg.get("success") is not False:
            return
        result = msg.get("result") if isinstance(msg.get("result"), dict) else {}
        symbol = msg.get("symbol") or result.get("symbol")
        method, error = msg.get("method"), msg.get("error")
        if method == "subscribe" and isinstance(symbol, str) and symbol in self.sync:
            log.error("%s %s: subscription rejected: %s", self.exchange, symbol, error)
            self.mark_stale(symbol, "subscription rejected")
        else:
            log.warning("%s: %s failed: %s", self.exchange, method, error)

    def _on_book(self, item, snapshot: bool, recv_ns: int) -> None:
        if not isinstance(item, dict):
            raise MalformedFrame("book data element is not an object")
        symbol = item.get("symbol")
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        if not snapshot and not sync.live:
            self.stats.ignored_frames += 1   # the old subscription's tail: a snapshot is due
            return
        try:
            bids, asks = item["bids"], item["asks"]
            if not snapshot:
                bids = deletes_first(bids, _price, _qty)
                asks = deletes_first(asks, _price, _qty)
            bids = join_levels(bids, _price, _qty)
            asks = join_levels(asks, _price, _qty)
            checksum = int(item["checksum"])
            if not 0 <= checksum < _MAX_CRC:
                raise ValueError(f"checksum {checksum} is not an unsigned 32-bit integer")
            ts = item.get("timestamp")
            ts_ns = rfc3339_ns(ts) if ts is not None else 0
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedFrame(f"bad book {'snapshot' if snapshot else 'update'}: "
                                 f"{type(exc).__name__}: {exc}", symbol) from None
        if not snapshot:
            self.publish(symbol, bids, asks, NO_SEQ, ts_ns, recv_ns, checksum=checksum)
            return
        live = self._snapshot_ok(symbol, item, checksum)
        if self.publish(symbol, bids, asks, NO_SEQ, ts_ns, recv_ns, snapshot=True,
                        checksum=checksum, live=live):
            sync.live = live        # a bad snapshot: the writer's verdict resubscribes
            sync.requested_at = None

    def _snapshot_ok(self, symbol: str, item: dict, checksum: int) -> bool:
        """Check a snapshot's checksum here too, before declaring the book live.

        The writer verifies it as well (and counts it), but the LIVE status record that
        follows the message would overwrite the STALE it sets on a mismatch; checking the
        (at most 20) top levels in Python keeps a wrong snapshot from ever reading live."""
        if not self.verify_checksums:
            return True
        inst = self.instruments[symbol]
        try:
            ok = book_checksum(item["asks"], item["bids"], inst.price_decimals,
                               inst.size_decimals) == checksum
        except (ValueError, TypeError, KeyError):
            return False          # publish() rejects the same text and resyncs
        if not ok:
            log.warning("%s %s: snapshot checksum mismatch", self.exchange, symbol)
        return ok


# v1 writes book prices with more decimals than pair_decimals for many pairs (XBT/CHF:
# "56218.30000" with pair_decimals 1; SC/EUR: "0.042870" with 5), a legacy per-pair
# format that no REST field states; volumes carry lot_decimals (8).  The checksum hashes
# the digits as sent, so the book's scale must equal the wire's.  Measured on v1 traffic
# (book, ticker and trade frames agree; XBT/USD from Kraken's v1 documentation examples);
# ``KrakenV1.wire_decimals`` derives the same from a recording's snapshots.
V1_PRICE_DECIMALS = {
    "XBT/USD": 5, "XBT/CHF": 5, "SC/EUR": 6, "ADA/XBT": 9, "GRT/ETH": 9, "OCEAN/XBT": 9,
}


class KrakenV1(Kraken):
    """Kraken spot, WebSocket v1 ``book-N`` (the recorded sessions); natives are v1
    pair names (``XBT/USD``).  Prices for pairs missing from ``V1_PRICE_DECIMALS`` use
    pair_decimals: if the wire has more, every checksum fails and the book stays stale
    (counted), it is never silently wrong."""

    ws_url = "wss://ws.kraken.com"
    ping_interval = 20.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[tuple[bytes, int, int]] = []   # updates awaiting flush()
        self._names = list(self.targets)
        self._pairs = {s.encode(): s for s in self.targets}  # wire bytes -> native pair
        self._index = {s: i for i, s in enumerate(self._names)}
        self._params = [np.array([f(s) for s in self._names], dtype=np.int64) for f in (
            lambda s: self.targets[s].book, lambda s: self.instruments[s].price_decimals,
            lambda s: self.instruments[s].size_decimals)]
        rings = {id(t.ctl): (t.ctl, t.data) for t in self.targets.values()}
        # the batch path needs one ring for all books (the normal case: one per connection)
        self._ring_ctl, self._ring_data = next(iter(rings.values())) if len(rings) == 1 \
            else (None, None)

    @classmethod
    def native_name(cls, wsname: str) -> str:
        return wsname

    @classmethod
    def scales(cls, native: str, pair: dict) -> tuple[int, int]:
        return V1_PRICE_DECIMALS.get(native, int(pair["pair_decimals"])), \
            int(pair["lot_decimals"])

    @classmethod
    def wire_decimals(cls, frames) -> dict[str, tuple[int, int]]:
        """{pair: (price decimals, volume decimals)} as written in v1 book snapshots
        among ``frames`` (texts), for calibrating or checking ``V1_PRICE_DECIMALS``."""
        out: dict[str, tuple[int, int]] = {}
        for text in frames:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[1], dict):
                continue
            levels = (msg[1].get("as") or []) + (msg[1].get("bs") or [])
            if levels and str(msg[-2]).startswith("book"):
                out[msg[-1]] = (max(len(lv[0].partition(".")[2]) for lv in levels),
                                max(len(lv[1].partition(".")[2]) for lv in levels))
        return out

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """The configured pairs the recording has book snapshots for (this copy of the
        KRAKEN session keeps 5 of its 10)."""
        seen = cls.wire_decimals(f.data for c in session.connections for f in c.frames)
        return [n for n in natives if n in seen]

    def book_request(self, method: str, symbols: list[str]) -> str:
        return orjson.dumps({"event": method, "pair": symbols, "reqid": self._next_id(),
                             "subscription": {"name": "book", "depth": self.depth}}).decode()

    def ping_message(self) -> str | None:
        return orjson.dumps({"event": "ping", "reqid": self._next_id()}).decode()

    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        if self._fast_update(frame, recv_ns):
            return
        if self._may_touch_books(frame):
            self.flush()            # keep book order: held updates go first
        self._ordinary(frame, recv_ns)

    @staticmethod
    def _may_touch_books(frame: bytes | str) -> bool:
        """Book frames and book subscription events must follow the held updates;
        heartbeats, trades and tickers need not, so they do not break a batch."""
        return ("book" in frame) if isinstance(frame, str) else (b"book" in frame)

    def flush(self) -> None:
        """Publish the held book updates in one Numba call; a frame the raw path
        refuses goes through the ordinary path, in order, and the batch resumes."""
        held = self._held
        if not held:
            return
        self._held = []
        bufs, idx, recv = zip(*held)
        lens = np.fromiter(map(len, bufs), np.int64, len(bufs))
        ends = np.cumsum(lens)
        starts = ends - lens
        frames = np.frombuffer(b"".join(bufs), dtype=np.uint8)
        idx = np.array(idx, dtype=np.int64)
        recvs = np.array(recv, dtype=np.int64)
        books, pdecs, sdecs = self._params[0][idx], self._params[1][idx], self._params[2][idx]
        levels = np.zeros(len(held), dtype=np.int64)
        if self._raw_scratch is None:
            self._raw_scratch = np.zeros((5, 2 * max(RAW_MAX_LEVELS, self.depth)), np.int64)
        scheme = self.checksum_scheme if self.verify_checksums else NO_CHECKSUM
        i = 0
        while i < len(held):
            reached, _ = push_raw_keyed_batch(
                self._ring_ctl, self._ring_data, frames, starts, ends, books, pdecs, sdecs,
                recvs, i, b'"b":', b'"a":', b'"c":"', scheme, True, self._raw_scratch, levels)
            if reached > i:  # counters per symbol for the frames published
                msgs = np.bincount(idx[i:reached], minlength=len(self._names))
                lvls = np.bincount(idx[i:reached], weights=levels[i:reached],
                                   minlength=len(self._names))
                for k in np.flatnonzero(msgs):
                    st = self.stats.sym(self._names[k])
                    st.messages += int(msgs[k])
                    st.levels += int(lvls[k])
                    self.touched.add(self._names[k])
            if reached < len(held):
                self._ordinary(bufs[reached], int(recvs[reached]))
            i = reached + 1

    def _ordinary(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)   # v1 quotes every decimal: no number to keep exact
        if isinstance(msg, dict):
            self._on_event(msg)
            return
        if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-2], str):
            raise MalformedFrame("neither an event object nor a channel array")
        if not msg[-2].startswith("book"):
            self.stats.ignored_frames += 1
            return
        symbol = msg[-1]
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        parts = msg[1:-2]
        try:
            if "as" in parts[0] or "bs" in parts[0]:
                self._snapshot(symbol, sync, parts[0], recv_ns)
            elif sync.live:
                self._update(symbol, parts, recv_ns)
            else:
                self.stats.ignored_frames += 1
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise MalformedFrame(f"bad book message: {type(exc).__name__}: {exc}",
                                 symbol) from None

    def _fast_update(self, frame: bytes | str, recv_ns: int) -> bool:
        """Book updates (most v1 traffic, usually one level each) parsed straight from
        the bytes: ``[id,{"a":[...]},{"b":[...],"c":"123"},"book-1000","PAIR"]``.  Any
        other shape, or anything the scanner does not expect, returns False and the frame
        takes the ordinary path."""
        buf = frame.encode() if isinstance(frame, str) else frame
        n = len(buf)
        if not buf.endswith(b'"]') or buf.find(b'"book-', n - 48) < 0:
            return False             # the channel name sits just before the pair
        q = buf.rfind(b'"', 0, n - 2)
        symbol = self._pairs.get(buf[q + 1:n - 2])
        if symbol is None:
            return False
        sync = self.sync[symbol]
        if buf.find(b's":', 0, 24) >= 0:   # a snapshot: [id,{"as":...,"bs":...}
            return self._fast_snapshot(buf, symbol, sync, recv_ns)
        if not sync.live or self._ring_ctl is None:
            return False
        self._held.append((buf, self._index[symbol], recv_ns))   # published by flush()
        return True

    def _fast_snapshot(self, buf: bytes, symbol: str, sync: _Sync, recv_ns: int) -> bool:
        self.flush()
        """A book snapshot ("as"/"bs" arrays) parsed straight from the bytes; v1
        snapshots carry no checksum.  False: take the ordinary path."""
        apos = buf.find(b'"as":')
        bpos = buf.find(b'"bs":')
        if apos < 0 and bpos < 0:
            return False
        if self.publish_raw_update(symbol, buf, bpos + 5 if bpos >= 0 else -1,
                                   apos + 5 if apos >= 0 else -1, NO_SEQ, recv_ns, None,
                                   snapshot=True, live=True):
            sync.live = True
            sync.requested_at = None
            return True
        return False

    def _snapshot(self, symbol: str, sync: _Sync, book: dict, recv_ns: int) -> None:
        asks, bids = book.get("as") or [], book.get("bs") or []
        levels = asks + bids  # order by float (ties are equal to the µs), convert one exactly
        ts = epoch_text_ns(max(levels, key=_ts_order)[2]) if levels else 0
        if self.publish(symbol, join_levels(bids), join_levels(asks), NO_SEQ, ts, recv_ns,
                        snapshot=True, live=True):   # v1 snapshots carry no checksum
            sync.live = True
            sync.requested_at = None

    def _update(self, symbol: str, parts: list, recv_ns: int) -> None:
        asks: list = []
        bids: list = []
        checksum = None
        for part in parts:
            asks += part.get("a", ())
            bids += part.get("b", ())
            checksum = part.get("c", checksum)
        if checksum is not None:
            checksum = int(checksum)
            if not 0 <= checksum < _MAX_CRC:
                raise ValueError(f"checksum {checksum} is not an unsigned 32-bit integer")
        ts = epoch_text_ns((bids or asks)[-1][2])
        bids = deletes_first(bids, _first, _second)
        asks = deletes_first(asks, _first, _second)
        self.publish(symbol, join_levels(bids), join_levels(asks), NO_SEQ, ts, recv_ns,
                     checksum=checksum)

    def _on_event(self, msg: dict) -> None:
        event = msg.get("event")
        if event == "subscriptionStatus" and msg.get("status") == "error":
            pair = msg.get("pair")
            if pair in self.sync and msg.get("subscription", {}).get("name") == "book":
                log.error("%s %s: subscription rejected: %s", self.exchange, pair,
                          msg.get("errorMessage"))
                self.mark_stale(pair, "subscription rejected")
            else:
                log.warning("%s: request failed: %s", self.exchange, msg.get("errorMessage"))
        elif event == "systemStatus" and msg.get("status") not in (None, "online"):
            log.warning("%s: venue status %s", self.exchange, msg.get("status"))
        self.stats.ignored_frames += 1
