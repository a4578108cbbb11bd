"""A loopback venue that serves a real recorded session (``../shared/recorded``) to a
connector, over a real websocket (and REST where the sync rule needs a snapshot),
looping when the recording ends, with the timestamps in every frame rewritten to now.

Each client connection gets its own stream: the recording's received frames of every
connection, merged in time order, paced at ``speed`` times the recorded pace (0: as
fast as the socket takes them).  A stream starts with the client's first request (or
after one second of silence).  What happens at a loop boundary is the dialect's
choice, made from what its protocol allows (``Dialect`` subclasses below):

- **Websocket-snapshot venues** (Kraken v1 ``book-1000``, OKX ``books``, Coinbase
  Exchange ``level2``, Poloniex, Kraken Futures, Deribit, HitBTC v2, bitFlyer; Upbit,
  whose every message is a whole book): the next loop sends the recording's book
  snapshots again.  In these protocols a snapshot replaces the whole book of its
  channel and restarts its sequence chain where there is one, so the book is reset
  exactly to the state the recorded updates (and checksums) build on.  Subscription
  acknowledgements and status events are sent on the first loop only, and after the
  first loop a book's updates recorded before its snapshot are left out (``admit``).
- **REST-snapshot venues** (Binance spot and USD-M futures): sequence numbers continue
  across loops (``U``/``u``/``pu`` shifted by a per-symbol offset), and before the next
  loop one ordinary ``depthUpdate`` per symbol, next in sequence, turns the book of the
  end of the loop back into the recorded snapshot (levels the snapshot lacks deleted
  first, then the snapshot's levels set).  The next loop then sends only the updates
  the sync rule applies after that snapshot.  The connector sees one continuous,
  gap-free stream.  REST depth answers are the venue's current book with the last
  update id sent, so a resync (after a disconnect or an injected gap) splices exactly.

The venue keeps its own book per symbol, rebuilt from the frames it sends with plain
Decimal dictionaries (independent of the connector code) and cut to the client's depth
as an engine book is: that is ``truth()`` for ``hftbook run --verify`` and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from connectors.recorded import Frame, HttpResponse, Session, load_session, session_events
from simulator.venue import LoopbackServers, SocketFaults

log = logging.getLogger("hftbook.simulator")

# exchange id -> (recording name, dialect class name in this module)
RECORDED = {
    "binance": ("BINANCE", "BinanceDialect"),
    "binance_futures": ("BINANCE_FUTURES", "BinanceFuturesDialect"),
    "kraken": ("KRAKEN", "KrakenV1Dialect"),
    "okx": ("OKX", "OKXDialect"),
    "coinbase": ("COINBASE", "CoinbaseDialect"),
    "poloniex": ("POLONIEX", "PoloniexDialect"),
    "kraken_futures": ("KRAKEN_FUTURES", "KrakenFuturesDialect"),
    "deribit": ("DERIBIT", "DeribitDialect"),
    "hitbtc": ("HITBTC", "HitBTCV2Dialect"),
    "bitflyer": ("BITFLYER", "BitFlyerDialect"),
    "upbit": ("UPBIT", "UpbitDialect"),
}
START_WAIT = 1.0        # seconds a silent client waits before its stream starts


def canonical(text: str) -> str:
    """Minimal decimal text, as ``Book.to_dict()`` writes it: "0.3513", "6195"."""
    d = Decimal(text)
    return "0" if d == 0 else format(d.normalize(), "f")


class RefBook:
    """One side-pair of {Decimal price: (price text, size text)}, cut to ``depth`` levels
    per side after every change as an engine book is (a worse level than the worst of a
    full side is not kept; a better one evicts the worst)."""

    __slots__ = ("depth", "sides")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.sides: tuple[dict, dict] = ({}, {})

    def clear(self) -> None:
        self.sides = ({}, {})

    def set(self, side: int, price: str, size: str) -> None:
        book = self.sides[side]
        p = Decimal(price)
        if Decimal(size) == 0:
            book.pop(p, None)
            return
        book[p] = (price, size)
        if len(book) > self.depth:
            del book[min(book) if side == 0 else max(book)]

    def levels(self, side: int) -> list[tuple[str, str]]:
        book = self.sides[side]
        return [book[p] for p in sorted(book, reverse=side == 0)]

    def as_dict(self) -> dict:
        return {k: [[canonical(p), canonical(q)] for p, q in self.levels(s)]
                for s, k in ((0, "bids"), (1, "asks"))}


def shift_ms(value, delta_s: float):
    """A millisecond timestamp (int or digit string) moved by ``delta_s`` seconds."""
    if isinstance(value, int):
        return value + int(delta_s * 1000)
    if isinstance(value, str) and value.isdigit():
        return str(int(value) + int(delta_s * 1000))
    return value


class Dialect:
    """Per-stream protocol knowledge: which frames are handshakes, how to rewrite
    timestamps and sequence numbers, what goes between loops, and the book each frame
    makes.  ``frames`` are the recording's (ts, text, parsed or None)."""

    rest = False

    def __init__(self, venue: RecordedVenue) -> None:
        self.venue = venue
        self.books = {s: RefBook(venue.depth) for s in venue.symbols}
        self.loop = 0
        self.snapped: set[str] = set()     # books whose snapshot this loop has sent

    # which frames a later loop leaves out (acks of the first subscription)
    def handshake(self, msg) -> bool:
        return False

    def reply(self, text: str) -> list[str]:
        """Frames answering a client request (pings, subscriptions) beyond the recording."""
        return []

    def begin_loop(self) -> list[str]:
        """Frames sent before each loop after the first."""
        self.loop += 1
        self.snapped.clear()
        return []

    def admit(self, symbol: str, snapshot: bool) -> bool:
        """Websocket-snapshot dialects: after the first loop, a book's updates recorded
        before its snapshot are left out.  On the first loop the connector ignores them
        (no snapshot yet); later they would land on the end-of-loop book instead, so
        leaving them out keeps every loop the same for the connector."""
        if snapshot:
            self.snapped.add(symbol)
            return True
        return not self.loop or symbol in self.snapped

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        """The frame to send for recorded frame ``index`` (None: leave it out)."""
        return text

    def rest_answer(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "no REST on this venue"}, status=404)


# -- Binance ----------------------------------------------------------------------------
class BinanceDialect(Dialect):
    rest = True
    futures = False
    depth_path = "/api/v3/depth"

    def __init__(self, venue: RecordedVenue) -> None:
        super().__init__(venue)
        plan = venue.plan
        self.last = {s: plan["L"][s] for s in venue.symbols}       # id of the book state
        self.offset = dict.fromkeys(venue.symbols, 0)
        for s in venue.symbols:
            self._reset_to_snapshot(s)

    @classmethod
    def prepare(cls, venue: RecordedVenue, frames: list, http: list[HttpResponse]) -> dict:
        """Offline pass: each symbol's first recorded snapshot and the updates the sync
        rule applies after it (the "effective" frame indices)."""
        snaps: dict[str, dict] = {}
        for r in http:
            if cls.depth_path not in r.url or "symbol=" not in r.url:
                continue
            sym = r.url.split("symbol=", 1)[1].split("&", 1)[0].upper()
            if sym in snaps:
                continue
            snaps[sym] = orjson.loads(r.body)
        L = {s: snaps[s]["lastUpdateId"] for s in snaps}
        last = dict(L)
        first = dict.fromkeys(snaps, True)
        effective: set[int] = set()
        first_pu: dict[str, int] = {}
        for i, (_ts, _text, msg) in enumerate(frames):
            data = msg.get("data") if isinstance(msg, dict) else None
            if not isinstance(data, dict) or data.get("e") != "depthUpdate":
                continue
            s = data["s"]
            if s not in last:
                continue
            U, u, pu = data["U"], data["u"], data.get("pu")
            if cls.futures:
                if first[s]:
                    if u < last[s] or (U > last[s] and pu != last[s]):
                        continue
                    first_pu[s] = pu
                elif pu != last[s]:
                    raise ValueError(f"{venue.recording}: {s} recording breaks its pu chain")
            else:
                if u <= last[s]:
                    continue
                if U > last[s] + 1:
                    raise ValueError(f"{venue.recording}: {s} recording has a gap")
            effective.add(i)
            last[s] = u
            first[s] = False
        return {"snapshots": snaps, "L": L, "effective": effective, "first_pu": first_pu}

    @classmethod
    def servable(cls, plan: dict) -> set[str]:
        return set(plan["snapshots"])

    def _reset_to_snapshot(self, s: str) -> None:
        book = self.books[s]
        book.clear()
        snap = self.venue.plan["snapshots"][s]
        for side, key in ((0, "bids"), (1, "asks")):
            for p, q in snap[key]:
                book.set(side, p, q)

    def reply(self, text: str) -> list[str]:
        try:
            mid = orjson.loads(text).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            return [orjson.dumps({"code": 3, "msg": "Invalid JSON"}).decode()]
        return [orjson.dumps({"result": None, "id": mid}).decode()]

    def begin_loop(self) -> list[str]:
        """One bridging update per symbol: the book at the end of the loop back to the
        recorded snapshot, next in sequence."""
        super().begin_loop()
        plan = self.venue.plan
        out = []
        now = int(time.time() * 1000)
        for s in self.venue.symbols:
            book = self.books[s]
            snap = plan["snapshots"][s]
            sides = []
            for side, key in ((0, "bids"), (1, "asks")):
                have = book.sides[side]
                want = {Decimal(p): (p, q) for p, q in snap[key]}
                changes = [[p, "0"] for d, (p, _q) in have.items() if d not in want]
                changes += [[p, q] for d, (p, q) in want.items()
                            if d not in have or Decimal(have[d][1]) != Decimal(q)]
                sides.append(changes)
            bridge = self.last[s] + 1
            data = {"e": "depthUpdate", "E": now, "s": s, "U": bridge, "u": bridge,
                    "b": sides[0], "a": sides[1]}
            if self.futures:
                data["T"] = now
                data["pu"] = self.last[s]
            out.append(orjson.dumps({"stream": f"{s.lower()}@depth@100ms",
                                     "data": data}).decode())
            self._reset_to_snapshot(s)
            self.last[s] = bridge
            anchor = plan["first_pu"].get(s, plan["L"][s]) if self.futures else plan["L"][s]
            self.offset[s] = bridge - anchor
        return out

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(data, dict):
            return text
        for k in ("E", "T"):
            if k in data:
                data[k] = shift_ms(data[k], delta_s)
        if data.get("e") == "depthUpdate" and data.get("s") in self.books:
            s = data["s"]
            effective = index in self.venue.plan["effective"]
            if self.loop and not effective:
                return None          # already inside the snapshot the bridge restored
            off = self.offset[s]
            data = dict(data, U=data["U"] + off, u=data["u"] + off)
            if "pu" in data:
                data["pu"] += off
            if effective:
                book = self.books[s]
                for p, q in data["b"]:
                    book.set(0, p, q)
                for p, q in data["a"]:
                    book.set(1, p, q)
                self.last[s] = data["u"]
            msg = dict(msg, data=data)
        return orjson.dumps(msg).decode()

    def rest_answer(self, request: web.Request) -> web.Response:
        s = request.query.get("symbol", "").upper()
        if s not in self.books:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        book = self.books[s]
        body = {"lastUpdateId": self.last[s],
                "bids": [list(x) for x in book.levels(0)[:limit]],
                "asks": [list(x) for x in book.levels(1)[:limit]]}
        if self.futures:
            body["E"] = body["T"] = int(time.time() * 1000)
        return web.Response(body=orjson.dumps(body), content_type="application/json")


class BinanceFuturesDialect(BinanceDialect):
    futures = True
    depth_path = "/fapi/v1/depth"


# -- websocket-snapshot dialects ----------------------------------------------------------
class KrakenV1Dialect(Dialect):
    """``[chan, {"as","bs"}, "book-1000", pair]`` snapshots; ``{"a"|"b", "c"}`` updates
    whose levels carry an epoch-seconds text (rewritten); checksums over price and volume
    only, so they hold after the rewrite."""

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and msg.get("event") in ("systemStatus",
                                                              "subscriptionStatus")

    def reply(self, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if isinstance(msg, dict) and msg.get("event") == "ping":
            return [orjson.dumps({"event": "pong", "reqid": msg.get("reqid")}).decode()]
        return []

    @staticmethod
    def _shift(levels, delta_s: float) -> None:
        for lv in levels:
            if len(lv) > 2 and isinstance(lv[2], str):
                lv[2] = f"{float(lv[2]) + delta_s:.6f}"

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-2], str):
            return text
        msg = orjson.loads(text)         # a fresh copy: the rewrite mutates it
        channel, pair = msg[-2], msg[-1]
        if channel == "trade" and isinstance(msg[1], list):
            self._shift(msg[1], delta_s)
        if not channel.startswith("book") or pair not in self.books:
            return orjson.dumps(msg).decode()
        book = self.books[pair]
        if not self.admit(pair, any("as" in part or "bs" in part for part in msg[1:-2])):
            return None
        for part in msg[1:-2]:
            if "as" in part or "bs" in part:
                book.clear()
                for side, key in ((0, "bs"), (1, "as")):
                    self._shift(part.get(key, ()), delta_s)
                    for lv in part.get(key, ()):
                        book.set(side, lv[0], lv[1])
            for key in ("b", "a"):
                self._shift(part.get(key, ()), delta_s)
        # an update's changes apply after all its parts, deletes first as in the connector
        for side, key in ((0, "b"), (1, "a")):
            lv = [x for part in msg[1:-2] for x in part.get(key, ())]
            for p, q, *_ in sorted(lv, key=lambda x: Decimal(x[1]) != 0):
                book.set(side, p, q)
        return orjson.dumps(msg).decode()


class OKXDialect(Dialect):
    """``books`` snapshots and updates (absolute sizes; "0" deletes); ``ts`` in ms
    rewritten in every data entry."""

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and "event" in msg

    def reply(self, text: str) -> list[str]:
        return ["pong"] if text == "ping" else []

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict) or not isinstance(msg.get("data"), list):
            return text
        msg = orjson.loads(text)
        for entry in msg["data"]:
            if isinstance(entry, dict) and "ts" in entry:
                entry["ts"] = shift_ms(entry["ts"], delta_s)
        arg = msg.get("arg") or {}
        sym = arg.get("instId")
        if arg.get("channel") == "books" and sym in self.books:
            if not self.admit(sym, msg.get("action") == "snapshot"):
                return None
            book = self.books[sym]
            for entry in msg["data"]:
                if msg.get("action") == "snapshot":
                    book.clear()
                for side, key in ((0, "bids"), (1, "asks")):
                    for lv in entry.get(key, ()):
                        book.set(side, lv[0], lv[1])
        return orjson.dumps(msg).decode()


class CoinbaseDialect(Dialect):
    """Exchange (Pro) ``level2``: ``snapshot`` then ``l2update`` changes; ISO ``time``
    rewritten on every message that has one."""

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and msg.get("type") == "subscriptions"

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict):
            return text
        msg = dict(msg)
        t = msg.get("time")
        if isinstance(t, str):
            try:
                when = datetime.fromisoformat(t.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                msg["time"] = (when + timedelta(seconds=delta_s)).astimezone(UTC) \
                    .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sym = msg.get("product_id")
        kind = msg.get("type")
        if sym in self.books and kind in ("snapshot", "l2update"):
            if not self.admit(sym, kind == "snapshot"):
                return None
            book = self.books[sym]
            if kind == "snapshot":
                book.clear()
                for side, key in ((0, "bids"), (1, "asks")):
                    for p, q in msg.get(key, ()):
                        book.set(side, p, q)
            else:
                for side, p, q in msg["changes"]:
                    book.set(0 if side == "buy" else 1, p, q)
        return orjson.dumps(msg).decode()


class PoloniexDialect(Dialect):
    """v3 ``book_lv2``: ``snapshot`` then ``update`` entries chained by lastId / id.  A
    snapshot resets the chain (the connector takes its ``id`` as the new last), so the
    next loop's snapshots restart each book and its chain cleanly.  ``createTime`` and
    ``ts`` (ms) rewritten."""

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and "event" in msg

    def reply(self, text: str) -> list[str]:
        return ['{"event":"pong"}'] if '"ping"' in text else []

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict) or not isinstance(msg.get("data"), list):
            return text
        msg = orjson.loads(text)
        book_frame = msg.get("channel") == "book_lv2"
        for entry in msg["data"]:
            if not isinstance(entry, dict):
                continue
            for k in ("createTime", "ts"):
                if k in entry:
                    entry[k] = shift_ms(entry[k], delta_s)
            book = self.books.get(entry.get("symbol")) if book_frame else None
            if book is None:
                continue
            if not self.admit(entry["symbol"], msg.get("action") == "snapshot"):
                return None
            if msg.get("action") == "snapshot":
                book.clear()
            for side, key in ((0, "bids"), (1, "asks")):
                for p, q in entry.get(key, ()):
                    book.set(side, p, q)
        return orjson.dumps(msg).decode()


class KrakenFuturesDialect(Dialect):
    """``book_snapshot`` then per-level ``book`` messages with a per-product ``seq``; a
    snapshot resets the product's chain.  Numbers are JSON numbers, so the frame text
    is kept and only the ``timestamp`` digits are replaced; the venue's own book reads
    the numbers as Decimal."""

    _TS = re.compile(r'"timestamp":(\d+)')

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and msg.get("event") in ("info", "subscribed")

    def reply(self, text: str) -> list[str]:
        return ['{"event":"pong"}'] if '"ping"' in text else []

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict):
            return text
        out = self._TS.sub(lambda m: f'"timestamp":{int(m[1]) + int(delta_s * 1000)}', text)
        feed, sym = msg.get("feed"), msg.get("product_id")
        book = self.books.get(sym)
        if book is None or feed not in ("book", "book_snapshot"):
            return out
        if not self.admit(sym, feed == "book_snapshot"):
            return None
        exact = json.loads(text, parse_float=Decimal)
        if feed == "book_snapshot":
            book.clear()
            for side, key in ((0, "bids"), (1, "asks")):
                for lv in exact.get(key, ()):
                    book.set(side, str(lv["price"]), str(lv["qty"]))
        else:
            book.set(0 if exact["side"] == "buy" else 1, str(exact["price"]),
                     str(exact["qty"]))
        return out


class DeribitDialect(Dialect):
    """JSON-RPC ``book.<instrument>.raw`` (the recording): a ``snapshot`` then
    ``change`` messages chained by prev_change_id / change_id; a snapshot resets the
    chain.  Levels are ``["new"|"change"|"delete", price, amount]`` with JSON numbers,
    so the text is kept and only ``timestamp`` digits are replaced."""

    _TS = re.compile(r'"timestamp":(\d+)')

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and "result" in msg

    def reply(self, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if isinstance(msg, dict) and "id" in msg and msg.get("method") != "public/subscribe":
            return [orjson.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "ok"}).decode()]
        return []

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict):
            return text
        out = self._TS.sub(lambda m: f'"timestamp":{int(m[1]) + int(delta_s * 1000)}', text)
        params = msg.get("params")
        data = params.get("data") if isinstance(params, dict) else None
        if not isinstance(data, dict) or not str(params.get("channel", "")).startswith("book."):
            return out
        book = self.books.get(data.get("instrument_name"))
        if book is None:
            return out
        if not self.admit(data["instrument_name"], data.get("type") == "snapshot"):
            return None
        exact = json.loads(text, parse_float=Decimal)["params"]["data"]
        if exact.get("type") == "snapshot":
            book.clear()
        for side, key in ((0, "bids"), (1, "asks")):
            for action, price, amount in exact.get(key, ()):
                book.set(side, str(price), "0" if action == "delete" else str(amount))
        return out


class HitBTCV2Dialect(Dialect):
    """API v2 ``snapshotOrderbook`` / ``updateOrderbook`` (the recording) with a
    per-symbol ``sequence``; a snapshot replaces the book and restarts the chain.  The
    ISO ``timestamp`` is rewritten."""

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and "result" in msg

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        params = msg.get("params") if isinstance(msg, dict) else None
        if not isinstance(params, dict):
            return text
        msg = orjson.loads(text)
        params = msg["params"]
        t = params.get("timestamp")
        if isinstance(t, str):
            with contextlib.suppress(ValueError):
                when = datetime.fromisoformat(t.replace("Z", "+00:00"))
                params["timestamp"] = (when + timedelta(seconds=delta_s)).astimezone(UTC) \
                    .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        method = msg.get("method")
        book = self.books.get(params.get("symbol"))
        if book is not None and method in ("snapshotOrderbook", "updateOrderbook"):
            if not self.admit(params["symbol"], method == "snapshotOrderbook"):
                return None
            if method == "snapshotOrderbook":
                book.clear()
            for side, key in ((0, "bid"), (1, "ask")):
                for lv in params.get(key, ()):
                    book.set(side, lv["price"], lv["size"])
        return orjson.dumps(msg).decode()


def _shift_iso(text: str, delta_s: float) -> str:
    """An ISO-8601 UTC time text moved by ``delta_s`` seconds (same precision kept as
    microseconds); unparsable text is returned as it was."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return (when + timedelta(seconds=delta_s)).astimezone(UTC) \
        .strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if text.endswith("Z") else "")


class BitFlyerDialect(Dialect):
    """Lightning JSON-RPC: ``lightning_board_snapshot_<P>`` replaces the book (the venue
    sends one every few seconds), ``lightning_board_<P>`` diffs apply to it.  Numbers
    are JSON numbers: the text is kept and only ISO ``timestamp`` / ``exec_date``
    strings (ticker, executions) are replaced."""

    _ISO = re.compile(r'"(timestamp|exec_date)":"([^"]+)"')
    SNAPSHOT, BOARD = "lightning_board_snapshot_", "lightning_board_"

    def handshake(self, msg) -> bool:
        return isinstance(msg, dict) and "result" in msg

    def frame(self, index: int, text: str, msg, delta_s: float) -> str | None:
        if not isinstance(msg, dict):
            return text
        out = self._ISO.sub(lambda m: f'"{m[1]}":"{_shift_iso(m[2], delta_s)}"', text)
        params = msg.get("params")
        channel = params.get("channel", "") if isinstance(params, dict) else ""
        snapshot = channel.startswith(self.SNAPSHOT)
        if not snapshot and not channel.startswith(self.BOARD):
            return out
        sym = channel[len(self.SNAPSHOT if snapshot else self.BOARD):]
        book = self.books.get(sym)
        if book is None:
            return out
        if not self.admit(sym, snapshot):
            return None
        message = json.loads(text, parse_float=Decimal)["params"]["message"]
        if snapshot:
            book.clear()
        for side, key in ((0, "bids"), (1, "asks")):
            for lv in message.get(key, ()):
                book.set(side, str(lv["price"]), str(lv["size"]))
        return out


class UpbitDialect(Dialect):
    """``orderbook`` (SIMPLE format, binary frames): every message is the whole top of
    the book, so every loop boundary is seamless.  ``tms`` / ``ttms`` (ms) replaced in
    the bytes; numbers read as Decimal for the venue's book."""

    _TS = re.compile(rb'"(tms|ttms)":(\d+)')

    def frame(self, index: int, text, msg, delta_s: float):
        if not isinstance(msg, dict):
            return text
        raw = text if isinstance(text, bytes) else text.encode()
        out = self._TS.sub(lambda m: b'"%s":%d' % (m[1], int(m[2]) + int(delta_s * 1000)), raw)
        if msg.get("ty", msg.get("type")) != "orderbook":
            return out
        book = self.books.get(msg.get("cd", msg.get("code")))
        if book is None:
            return out
        exact = json.loads(raw, parse_float=Decimal)
        units = exact.get("obu", exact.get("orderbook_units", ()))
        book.clear()
        for u in units:
            book.set(0, str(u.get("bp", u.get("bid_price"))), str(u.get("bs", u.get("bid_size"))))
            book.set(1, str(u.get("ap", u.get("ask_price"))), str(u.get("as", u.get("ask_size"))))
        return out


# -- the venue ------------------------------------------------------------------------------
class _Stream:
    """One client's pass over the recording, loop after loop."""

    def __init__(self, venue: RecordedVenue, ws: ServerConnection) -> None:
        self.venue = venue
        self.ws = ws
        self.dialect: Dialect = venue.dialect_cls(venue)
        self.started = asyncio.Event()
        self.loops = 0              # loop boundaries passed
        self.position = 0           # frames of the current loop sent
        self.frames_sent = 0


class RecordedVenue(SocketFaults, LoopbackServers):
    """Serves ``recording`` from ``directory`` as exchange ``exchange``'s venue.
    ``depth``: the levels the client keeps per side (the venue's own books are cut the
    same way).  ``speed``: times the recorded pace; 0 is as fast as possible.
    ``window``: loop only the recording's first so many seconds."""

    recorded = True

    def __init__(self, exchange: str, directory: str | Path | None = None, *,
                 speed: float = 1.0, depth: int = 1000,
                 symbols: list[str] | None = None, window: float | None = None) -> None:
        from connectors import RECORDINGS, load
        from connectors.recorded_paths import default_recordings
        from connectors.replay import session_instruments, session_symbols

        if exchange not in RECORDED:
            raise KeyError(f"no recorded session is looped for {exchange!r} "
                           f"(available: {', '.join(sorted(RECORDED))})")
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.name = exchange            # the config's exchange id
        self.recording, dialect = RECORDED[exchange]
        self.dialect_cls = globals()[dialect]
        self.directory = Path(directory) if directory else default_recordings()
        self.protocol_spec = RECORDINGS[self.recording]
        self.protocol_cls = load(self.protocol_spec)
        self.exchange = self.protocol_cls.exchange   # what the feed's stats call it
        self.speed = speed
        self.depth = min(depth, self.protocol_cls.depth)
        session: Session = load_session(self.directory, self.recording)
        self.instruments = session_instruments(self.protocol_cls, session)
        natives = self.protocol_cls.recorded_symbols(
            session, session_symbols(self.protocol_cls, session, self.instruments))
        # received frames of every connection, in time order (as a replay sees them)
        self.frames: list[tuple[float, str | bytes, object]] = []
        for ev in session_events(session):
            if isinstance(ev.record, Frame):
                data = ev.record.data
                try:
                    msg = orjson.loads(data)
                except orjson.JSONDecodeError:
                    msg = None
                self.frames.append((ev.record.ts, data, msg))
        if not self.frames:
            raise ValueError(f"{self.recording}: no websocket frames recorded")
        if window is not None:   # loop only the first ``window`` seconds
            cut = self.frames[0][0] + window
            self.frames = [f for f in self.frames if f[0] <= cut]
        self.symbols = natives
        self.plan: dict = {}
        if hasattr(self.dialect_cls, "prepare"):
            self.plan = self.dialect_cls.prepare(self, self.frames, session.http)
            ok = self.dialect_cls.servable(self.plan)
            self.symbols = [s for s in natives if s in ok]
        if symbols is not None:
            unknown = [s for s in symbols if s not in self.symbols]
            if unknown:
                raise ValueError(f"{self.recording}: no recorded book for "
                                 f"{', '.join(unknown)} (recorded: {', '.join(self.symbols)})")
            self.symbols = list(symbols)
        self.span = self.frames[-1][0] - self.frames[0][0]
        self.gap = self.span / max(len(self.frames) - 1, 1)  # pause between two loops
        self.streams: list[_Stream] = []
        self.clients = self.streams    # what fault injection and summaries count
        self.books = dict.fromkeys(self.symbols)   # symbol lookup for fault specs
        self.paused = False
        self.events_sent = 0
        self.faults = {"dropped": 0, "corrupted": 0, "garbage": 0, "disconnects": 0,
                       "stalls": 0}
        self._stall_until = 0.0
        self._last_loops = 0

    # -- what the runner and the tests read ------------------------------------------------
    @property
    def loops(self) -> int:
        """Loop boundaries the newest client has passed (kept after it disconnects)."""
        return self.streams[-1].loops if self.streams else self._last_loops

    def truth(self, symbol: str) -> dict:
        """The newest client's book as the frames sent so far make it (exact decimal
        strings, best first, cut to the client's depth)."""
        if not self.streams:
            return {"bids": [], "asks": []}
        return self.streams[-1].dialect.books[symbol].as_dict()

    # -- faults (per connection: gap and checksum faults would need a venue-side book
    #    per dialect that can answer a resubscription, so they are refused) -------------
    def drop_next(self, symbol: str, n: int = 1) -> None:
        raise ValueError(f"{self.name} (recorded): gap faults are not supported")

    def corrupt_next_checksum(self, symbol: str, n: int = 1) -> None:
        raise ValueError(f"{self.name} (recorded): checksum faults are not supported")

    def _sockets(self) -> list[ServerConnection]:
        return [st.ws for st in self.streams]

    # -- servers ------------------------------------------------------------------------
    async def start(self) -> RecordedVenue:
        await self._start_servers([web.route("GET", "/{tail:.*}", self._rest)])
        log.info("%s recorded venue (%s, %d frames, %d symbols): %s %s", self.exchange,
                 self.recording, len(self.frames), len(self.symbols), self.ws_url,
                 self.rest_url)
        return self

    async def stop(self) -> None:
        await self._stop_servers()

    async def _rest(self, request: web.Request) -> web.Response:
        if not self.streams:
            return web.json_response({"error": "no stream yet: connect first"}, status=503)
        return self.streams[-1].dialect.rest_answer(request)

    async def _handler(self, ws: ServerConnection) -> None:
        st = _Stream(self, ws)
        self.streams.append(st)
        pump = asyncio.ensure_future(self._pump(st))
        pump.add_done_callback(_log_crash)
        try:
            async for text in ws:
                st.started.set()
                for reply in st.dialect.reply(text):
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pump
            with contextlib.suppress(ValueError):
                self.streams.remove(st)

    async def _hold(self) -> None:
        """While paused (verification) or stalled (fault), send nothing."""
        while self.paused or time.monotonic() < self._stall_until:
            await asyncio.sleep(0.01)

    async def _pump(self, st: _Stream) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(st.started.wait(), START_WAIT)
        dialect, ws, frames = st.dialect, st.ws, self.frames
        ts0 = frames[0][0]
        while True:
            if st.loops:
                for text in dialect.begin_loop():
                    await ws.send(text)
            start = time.monotonic()
            held = 0.0
            for i, (ts, data, msg) in enumerate(frames):
                # yield at every frame even when behind: a client on the same event loop
                # (hftbook run, the tests) must get its turn to read what was sent
                ahead = start + held + (ts - ts0) / self.speed - time.monotonic() \
                    if self.speed else 0.0
                await asyncio.sleep(max(ahead, 0.0))
                if self.paused or time.monotonic() < self._stall_until:
                    t = time.monotonic()
                    await self._hold()
                    held += time.monotonic() - t
                st.position = i
                if st.loops and dialect.handshake(msg):
                    continue
                out = data if msg is None else dialect.frame(i, data, msg,
                                                             time.time() - ts)
                if out is None:
                    continue
                await ws.send(out)
                st.frames_sent += 1
                self.events_sent += 1
            st.loops += 1
            self._last_loops = st.loops
            st.position = 0
            if self.speed:
                await asyncio.sleep(self.gap / self.speed)


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None \
            and not isinstance(task.exception(), ConnectionClosed):
        log.error("recorded venue stream failed", exc_info=task.exception())


async def start_recorded(exchange: str, spec: dict, cfg: dict) -> RecordedVenue:
    """The looping venue for one ``[exchanges.X]`` table of a checked config: every
    recorded symbol for ``["*"]``, else the named ones (which must be recorded); at most
    ``max_symbols``.  ValueError names what is wrong."""
    sim = cfg["simulator"]
    named = None if spec["symbols"] == ["*"] else spec["symbols"]
    venue = RecordedVenue(exchange, sim["recordings"] or None, speed=sim["recorded_speed"],
                          depth=cfg["book"]["depth"], symbols=named)
    venue.symbols = venue.symbols[:spec["max_symbols"]]
    return await venue.start()


def feed_info(recording: str, directory: str | Path) -> tuple[type, dict]:
    """(protocol class, instruments) a feed needs for a recorded venue it did not start
    (``hftbook run --simulator FILE``)."""
    from connectors import RECORDINGS, load
    from connectors.replay import session_instruments

    cls = load(RECORDINGS[recording])
    return cls, session_instruments(cls, load_session(directory, recording))
