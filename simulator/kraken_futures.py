"""Simulated Kraken Futures websocket v1 (``book`` and ``heartbeat`` feeds) and the REST
instrument list.

What the connector expects of the real venue: ``{"event":"info","version":1}`` on
connect; ``subscribe`` / ``unsubscribe`` of ``book`` acknowledged per product
(``subscribed`` / ``unsubscribed``, or ``subscribed_failed`` for an unknown product);
after each book subscription a ``book_snapshot`` carrying the product's current ``seq``;
then one ``book`` message per level change, each taking the product's next ``seq``
(shared by every client, as on the venue).  Prices and quantities are JSON numbers in
the float-like form Kraken writes (``439.3``, ``20108.0``); with ``exponent_small``,
quantities below 0.01 are written in exponent form (``1.5E-3``).  ``heartbeat``
subscribers get ``{"feed":"heartbeat","time":ms}`` every ``heartbeat_interval`` s.
Anything unreadable is answered with ``{"event":"error","message":"Json Error"}``.

Extra faults besides the base class's: ``send_bad_update`` (a book message whose side
is neither buy nor sell, for one product; it does not consume a seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter

from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue


def _ms() -> int:
    return int(time.time() * 1000)


class KrakenFuturesVenue(Venue):
    name = "kraken_futures"
    price_decimals = 1
    size_decimals = 4
    pad_decimals = False

    def __init__(self, symbols: list[str], *, heartbeat_interval: float = 1.0,
                 exponent_small: bool = False, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval = heartbeat_interval
        self.exponent_small = exponent_small
        self.counts: Counter = Counter()
        self._hb: asyncio.Task | None = None

    # -- numbers ---------------------------------------------------------------------
    def num(self, v: int, decimals: int) -> str:
        """A JSON number as Kraken writes one: float-like, at least one decimal."""
        if self.exponent_small and 0 < v < 10 ** (decimals - 2):
            self.counts["exponent_numbers"] += 1
            digits = str(v)
            frac = digits[1:].rstrip("0")
            return f"{digits[0]}{'.' + frac if frac else ''}E-{decimals - len(digits) + 1}"
        text = fmt(v, decimals, False)
        return text if "." in text else text + ".0"

    def _level(self, p: int, q: int) -> str:
        return (f'{{"price":{self.num(p, self.price_decimals)},'
                f'"qty":{self.num(q, self.size_decimals)}}}')

    def snapshot_frame(self, symbol: str) -> str:
        b = self.books[symbol]
        bids = ",".join(self._level(p, q) for p, q in b.top(0, 10**9))
        asks = ",".join(self._level(p, q) for p, q in b.top(1, 10**9))
        return (f'{{"feed":"book_snapshot","product_id":"{symbol}","timestamp":{_ms()},'
                f'"seq":{self.seq[symbol]},"tickSize":null,"bids":[{bids}],"asks":[{asks}]}}')

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        frames = []
        ts = _ms()
        for side, price, size in changes:
            self.seq[symbol] += 1
            name = "buy" if side == 0 else "sell"
            frames.append(
                f'{{"feed":"book","product_id":"{symbol}","side":"{name}",'
                f'"seq":{self.seq[symbol]},"price":{self.num(price, self.price_decimals)},'
                f'"qty":{self.num(size, self.size_decimals)},"timestamp":{ts}}}')
        return frames

    # -- requests --------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = json.loads(text)
            event, feed = msg["event"], msg["feed"]
        except (ValueError, KeyError, TypeError):
            await client.ws.send('{"event":"error","message":"Json Error"}')
            return
        if event not in ("subscribe", "unsubscribe") or feed not in ("book", "heartbeat"):
            await client.ws.send('{"event":"error","message":"Invalid feed"}')
            return
        self.counts[f"{event}s"] += 1
        if feed == "heartbeat":
            client.state["heartbeat"] = event == "subscribe"
            await client.ws.send(json.dumps({"event": event + "d", "feed": "heartbeat"}))
            return
        for pid in msg.get("product_ids") or []:
            sym = str(pid).upper()
            if sym not in self.books:
                await client.ws.send(json.dumps({"event": event + "d_failed", "feed": "book",
                                                 "product_ids": [pid]}))
                continue
            await client.ws.send(json.dumps({"event": event + "d", "feed": "book",
                                             "product_ids": [sym]}))
            if event == "unsubscribe":
                client.symbols.discard(sym)
            else:
                self.counts["snapshots"] += 1
                await self.subscribe(client, sym)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        return [self.snapshot_frame(symbol)]

    # -- faults ------------------------------------------------------------------------
    async def send_bad_update(self, symbol: str) -> None:
        frame = (f'{{"feed":"book","product_id":"{symbol}","side":"middle",'
                 f'"seq":{self.seq[symbol] + 1},"price":1.0,"qty":1.0,"timestamp":{_ms()}}}')
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- connection lifecycle ------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send('{"event":"info","version":1}')
        await super()._handler(ws)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                if c.state.get("heartbeat"):
                    self.counts["heartbeats"] += 1
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send(f'{{"feed":"heartbeat","time":{_ms()}}}')

    async def start(self) -> KrakenFuturesVenue:
        await super().start()
        self._hb = asyncio.ensure_future(self._heartbeats())
        return self

    async def stop(self) -> None:
        if self._hb:
            self._hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hb
        await super().stop()

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/derivatives/api/v3/instruments", self._instruments)]

    async def _instruments(self, request: web.Request) -> web.Response:
        """Today's shape for flexible (linear) perpetuals, numbers as JSON numbers."""
        tick = fmt(1, self.price_decimals, False)
        rows = [f'{{"symbol":"{s}","type":"flexible_futures","tickSize":{tick},'
                f'"contractSize":1,"contractValueTradePrecision":{self.size_decimals},'
                f'"tradeable":true}}' for s in self.symbols]
        rows.append('{"symbol":"in_xbtusd","type":"spot index","tradeable":false}')
        body = '{"result":"success","instruments":[' + ",".join(rows) + \
            '],"serverTime":"2024-01-01T00:00:00.000Z"}'
        return web.Response(text=body, content_type="application/json")
