"""Simulated Gemini market data v2 websocket and the symbol REST endpoints, written from
Gemini's documentation and the recorded session (not from the connector).

Websocket: ``subscribe`` / ``unsubscribe`` of ``l2`` (no acknowledgement, as recorded);
on subscribe, one ``l2_updates`` holding the whole book plus ``trades`` and
``auction_events``; then one ``l2_updates`` per order-flow event; a ``heartbeat`` every
``heartbeat_interval`` seconds.  No sequence numbers and no checksums, as on the real
feed.  REST: ``/v1/symbols`` and ``/v1/symbols/details/<symbol>``.

Faults beyond the base venue's: ``lose_delete_and_cross`` (the truth deletes the best
ask without telling anyone, then a bid lands at that price: a client that missed the
delete holds a crossed book, the one trace a lost v2 update can leave) and
``send_bad_update`` (an ``l2_updates`` with an unparsable price, not applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

SIDES = ("buy", "sell")
QUOTES = ("USDT", "GUSD", "USDC", "USD", "BTC", "ETH", "EUR", "GBP", "SGD", "DAI")


class GeminiVenue(Venue):
    name = "gemini"
    price_decimals = 2
    size_decimals = 6
    pad_decimals = True    # prices as "292.00" (padded); sizes shortest, see sz()

    def __init__(self, symbols: list[str], *, heartbeat_interval: float = 5.0,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval = heartbeat_interval
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "heartbeats": 0,
                       "rejected": 0}
        self.faults.update(crossed=0, bad_updates=0)
        self._heartbeat: asyncio.Task | None = None

    def sz(self, v: int) -> str:
        return fmt(v, self.size_decimals, False)     # "0.1", "60", "4.18999"

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind = msg["type"]
            subs = [(s["name"], list(s["symbols"])) for s in msg["subscriptions"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        if kind not in ("subscribe", "unsubscribe"):
            self.counts["rejected"] += 1
            return
        self.counts[kind + "s"] += 1
        for name, symbols in subs:
            if name != "l2":
                continue
            for s in symbols:
                if s not in self.books:
                    continue
                if kind == "subscribe":
                    await self.subscribe(client, s)
                else:
                    client.symbols.discard(s)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        changes = [["buy", p, q] for p, q in self.levels(symbol, 0)]
        changes += [["sell", p, q] for p, q in self.levels(symbol, 1)]
        return [orjson.dumps({"type": "l2_updates", "symbol": symbol, "changes": changes,
                              "trades": [], "auction_events": []}).decode()]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        rows = [[SIDES[side], self.px(p), self.sz(q)] for side, p, q in changes]
        return [orjson.dumps({"type": "l2_updates", "symbol": symbol,
                              "changes": rows}).decode()]

    async def _send_to(self, symbol: str, frame: str) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- faults --------------------------------------------------------------------------
    async def lose_delete_and_cross(self, symbol: str) -> None:
        book = self.books[symbol]
        price = book.best_ask()
        del book.asks[price]                     # the lost update: never sent
        book.bids[price] = 7                     # sent: crosses a book that missed it
        self.faults["crossed"] += 1
        await self._send_to(symbol, self.encode_update(symbol, [(0, price, 7)])[0])

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        await self._send_to(symbol, orjson.dumps({
            "type": "l2_updates", "symbol": symbol,
            "changes": [["buy", "12..5", "1"]]}).decode())

    # -- heartbeats ----------------------------------------------------------------------
    async def start(self) -> GeminiVenue:
        await super().start()
        self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())
        return self

    async def stop(self) -> None:
        if self._heartbeat:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await super().stop()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if time.monotonic() < self._stall_until:
                continue
            frame = orjson.dumps({"type": "heartbeat",
                                  "timestamp": int(time.time() * 1000)}).decode()
            for c in list(self.clients):
                self.counts["heartbeats"] += 1
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/symbols", self._symbols),
                web.get("/v1/symbols/details/{symbol}", self._details)]

    async def _symbols(self, request: web.Request) -> web.Response:
        return web.json_response([s.lower() for s in self.symbols])

    async def _details(self, request: web.Request) -> web.Response:
        native = request.match_info["symbol"].upper()
        if native not in self.books:
            return web.json_response({"result": "error", "reason": "InvalidSymbol"},
                                     status=400)
        quote = next((q for q in QUOTES if native.endswith(q)), native[-3:])
        base = native[:-len(quote)]
        # JSON numbers, as Gemini sends them: tick_size is the size step
        body = (f'{{"symbol":"{native}","base_currency":"{base}","quote_currency":"{quote}",'
                f'"tick_size":1E-{self.size_decimals},'
                f'"quote_increment":1E-{self.price_decimals},'
                f'"min_order_size":"0.00001","status":"open"}}')
        return web.Response(text=body, content_type="application/json")
