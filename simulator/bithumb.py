"""Simulated Bithumb v1 public websocket (``orderbook`` type) and ``/v1/market/all``,
written from Bithumb's v2.1.x API documentation (not from the connector).

Websocket: a request is a JSON array ``[{"ticket"}, {"type": "orderbook", "codes"},
{"format"}]`` and replaces the client's previous subscription; each code then gets a
``SNAPSHOT`` message and, per order-flow event, a ``REALTIME`` message.  Every message
is the whole top-``units`` book as rank-paired ``orderbook_units`` (a side shorter than
the other is padded with zero price and size).  Numbers are written the way a Java
``double`` prints (``1000000.0``, ``0.25``, ``5.0E-4``).  No sequence, no checksum; the
text ``PING`` is answered with ``{"status": "UP"}``; a bad request gets an ``error``
object.  Timestamps strictly increase per code so a replayed book is recognisably old.

Faults beyond the base venue's: ``replay_stale`` (re-sends an older book with its older
timestamp), ``send_crossed`` (a book whose best bid reaches the best ask, not the truth)
and ``send_bad_update`` (a book with an unparsable price).
"""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

UNITS = 15        # units per message (Upbit's default count; Bithumb's is unconfirmed)
HISTORY = 32      # old books kept per code for replay_stale


def java_double(v: int, decimals: int) -> str:
    """``v / 10**decimals`` as Java's Double.toString prints it (exact for our values)."""
    d = Decimal(v).scaleb(-decimals)
    if d == 0:
        return "0.0"
    if Decimal("0.001") <= abs(d) < Decimal(10_000_000):
        s = format(d, "f")
        if "." in s:
            s = s.rstrip("0")
        return s + "0" if s.endswith(".") else (s if "." in s else s + ".0")
    sign, digits, exp = d.normalize().as_tuple()
    text = "".join(map(str, digits))
    e = exp + len(text) - 1
    frac = text[1:] or "0"
    return f"{'-' if sign else ''}{text[0]}.{frac}E{e}"


class BithumbVenue(Venue):
    name = "bithumb"
    price_decimals = 0     # KRW: whole won at this price range
    size_decimals = 4

    def __init__(self, symbols: list[str], *, units: int = UNITS, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.units = units
        self.counts = {"requests": 0, "snapshots": 0, "rejected": 0, "pings": 0}
        self.faults.update(stale=0, crossed=0, bad_updates=0)
        self.last_ts = dict.fromkeys(self.symbols, 0)
        self.history: dict[str, list[tuple[int, list, list]]] = {s: [] for s in self.symbols}

    # -- truth: what the venue shows is the top ``units`` levels --------------------------
    def truth(self, symbol: str) -> dict:
        t = super().truth(symbol)
        return {"bids": t["bids"][:self.units], "asks": t["asks"][:self.units]}

    # -- encoding ------------------------------------------------------------------------
    def _ts(self, symbol: str) -> int:
        ts = max(int(time.time() * 1000), self.last_ts[symbol] + 1)
        self.last_ts[symbol] = ts
        return ts

    def _frame(self, symbol: str, bids: list, asks: list, ts: int, stream: str) -> str:
        n = max(len(bids), len(asks))
        units = []
        for k in range(n):
            bp, bs = bids[k] if k < len(bids) else ("0.0", "0.0")
            ap, as_ = asks[k] if k < len(asks) else ("0.0", "0.0")
            units.append(f'{{"ask_price":{ap},"bid_price":{bp},"ask_size":{as_},'
                         f'"bid_size":{bs}}}')
        tas = java_double(sum(int(q) for _, q in self.books[symbol].top(1, self.units)),
                          self.size_decimals)
        tbs = java_double(sum(int(q) for _, q in self.books[symbol].top(0, self.units)),
                          self.size_decimals)
        return (f'{{"type":"orderbook","code":"{symbol}","timestamp":{ts},'
                f'"total_ask_size":{tas},"total_bid_size":{tbs},'
                f'"orderbook_units":[{",".join(units)}],"level":1,'
                f'"stream_type":"{stream}"}}')

    def _side(self, symbol: str, side: int) -> list[tuple[str, str]]:
        return [(java_double(p, self.price_decimals), java_double(q, self.size_decimals))
                for p, q in self.books[symbol].top(side, self.units)]

    def _current(self, symbol: str, stream: str) -> str:
        bids, asks = self._side(symbol, 0), self._side(symbol, 1)
        ts = self._ts(symbol)
        hist = self.history[symbol]
        hist.append((ts, bids, asks))
        del hist[:-HISTORY]
        return self._frame(symbol, bids, asks, ts, stream)

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        return [self._current(symbol, "REALTIME")]

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        return [self._current(symbol, "SNAPSHOT")]

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        if text == "PING":
            self.counts["pings"] += 1
            await client.ws.send('{"status":"UP"}')
            return
        try:
            req = orjson.loads(text)
            if not isinstance(req, list) or not any("ticket" in f for f in req):
                raise ValueError("no ticket field")
            codes = [c for f in req if f.get("type") == "orderbook" for c in f["codes"]]
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            self.counts["rejected"] += 1
            await client.ws.send('{"error":{"name":"WRONG_FORMAT",'
                                 '"message":"request is not valid"}}')
            return
        self.counts["requests"] += 1
        client.symbols.clear()                 # a new request replaces the old one
        for c in codes:
            if c in self.books:
                await self.subscribe(client, c)

    async def _send_to(self, symbol: str, frame: str) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- faults --------------------------------------------------------------------------
    async def replay_stale(self, symbol: str) -> None:
        """Re-send an old book (older timestamp) of ``symbol``: must not be applied."""
        ts, bids, asks = self.history[symbol][0]
        self.faults["stale"] += 1
        await self._send_to(symbol, self._frame(symbol, bids, asks, ts, "REALTIME"))

    async def send_crossed(self, symbol: str) -> None:
        """A book whose best bid sits at the best ask (not the truth)."""
        bids, asks = self._side(symbol, 0), self._side(symbol, 1)
        bids = [(asks[0][0], "1.0")] + bids
        self.faults["crossed"] += 1
        await self._send_to(symbol, self._frame(symbol, bids, asks, self._ts(symbol),
                                                "REALTIME"))

    async def send_bad_update(self, symbol: str) -> None:
        bids, asks = self._side(symbol, 0), self._side(symbol, 1)
        bids[0] = ('"12..5"', bids[0][1])
        self.faults["bad_updates"] += 1
        await self._send_to(symbol, self._frame(symbol, bids, asks, self._ts(symbol),
                                                "REALTIME"))

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/market/all", self._markets)]

    async def _markets(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"market": s, "korean_name": s.split("-")[1], "english_name": s.split("-")[1]}
            for s in self.symbols])
