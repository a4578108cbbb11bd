"""Simulated Hyperliquid websocket (``l2Book``) and ``POST /info`` (``meta``), written from
Hyperliquid's API documentation, not from the connector.

Websocket: ``{"method":"subscribe"|"unsubscribe","subscription":{"type":"l2Book","coin":C}}``
answered with ``subscriptionResponse``; ``{"method":"ping"}`` answered with
``{"channel":"pong"}``.  On subscribe and after every order-flow event the subscriber gets
a complete top-``DEPTH`` picture ``{"coin","time","levels":[bids,asks]}`` with
``{px,sz,n}`` levels (strings for px/sz, shortest decimal text), as the real feed sends.
``time`` is wall-clock milliseconds and never decreases per coin.  No sequence numbers,
no checksums.  The truth a client can know is the top ``DEPTH`` levels: ``truth`` says so.

REST: ``POST /info`` with ``{"type":"meta"}`` -> ``{"universe":[...]}`` (plus one delisted
asset); any other body -> HTTP 422; GET -> 405 (only POST is routed).

Faults beyond the base venue's: ``send_stale_snapshot`` (a picture of the book that is
wrong and dated before the last one sent: time going backwards), ``send_bad_book`` (an
l2Book with an unparsable price), ``send_error``; during ``stall`` pings go unanswered.
"""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

DEPTH = 20


class HyperliquidVenue(Venue):
    name = "hyperliquid"
    price_decimals = 1     # = 6 - szDecimals, as for BTC
    size_decimals = 5      # szDecimals
    pad_decimals = False   # "100000.5", "0.0123"

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "pings": 0,
                       "pongs": 0, "rejected": 0, "meta": 0}
        self.faults.update(stale=0, bad_books=0, errors=0)
        self.sent_time = dict.fromkeys(self.symbols, 0)

    # -- encoding ------------------------------------------------------------------------
    def now_ms(self, symbol: str) -> int:
        t = max(int(time.time() * 1000), self.sent_time[symbol])
        self.sent_time[symbol] = t
        return t

    def side(self, symbol: str, side: int) -> list[dict]:
        return [{"px": self.px(p), "sz": self.sz(q), "n": 1 + q % 7}
                for p, q in self.books[symbol].top(side, DEPTH)]

    def book_frame(self, symbol: str, t: int, bids: list, asks: list) -> str:
        return orjson.dumps({"channel": "l2Book", "data": {
            "coin": symbol, "time": t, "levels": [bids, asks]}}).decode()

    def snapshot(self, symbol: str) -> str:
        self.counts["snapshots"] += 1
        return self.book_frame(symbol, self.now_ms(symbol), self.side(symbol, 0),
                               self.side(symbol, 1))

    def truth(self, symbol: str) -> dict:
        """The top DEPTH levels per side: all the public l2Book ever shows."""
        b = self.books[symbol]
        return {k: [[fmt(p, self.price_decimals, False), fmt(q, self.size_decimals, False)]
                    for p, q in b.top(side, DEPTH)]
                for side, k in ((0, "bids"), (1, "asks"))}

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method = msg["method"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        if method == "ping":
            self.counts["pings"] += 1
            if time.monotonic() >= self._stall_until:
                self.counts["pongs"] += 1
                await client.ws.send('{"channel":"pong"}')
            return
        sub = msg.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict) \
                or sub.get("type") != "l2Book" or sub.get("coin") not in self.books:
            self.counts["rejected"] += 1
            await client.ws.send(orjson.dumps(
                {"channel": "error", "data": f"Invalid subscription {text[:100]}"}).decode())
            return
        self.counts[method + "s"] += 1
        await client.ws.send(orjson.dumps({"channel": "subscriptionResponse", "data": {
            "method": method, "subscription": sub}}).decode())
        if method == "subscribe":
            await self.subscribe(client, sub["coin"])
        else:
            client.symbols.discard(sub["coin"])

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        return [self.snapshot(symbol)]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        return [self.snapshot(symbol)]

    async def _send_to(self, symbol: str, frame: str) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- faults --------------------------------------------------------------------------
    async def send_stale_snapshot(self, symbol: str, age_ms: int = 5000) -> None:
        """A wrong picture dated ``age_ms`` before the last one sent (not the truth)."""
        self.faults["stale"] += 1
        bids = self.side(symbol, 0)[1:]                 # best bid missing
        asks = self.side(symbol, 1)
        asks[0]["sz"] = self.sz(987654)                 # and a size that never was
        t = max(0, self.sent_time[symbol] - age_ms)
        await self._send_to(symbol, self.book_frame(symbol, t, bids, asks))

    async def send_bad_book(self, symbol: str) -> None:
        self.faults["bad_books"] += 1
        await self._send_to(symbol, self.book_frame(
            symbol, self.now_ms(symbol), [{"px": "12..5", "sz": "1", "n": 1}], []))

    async def send_error(self, text: str = "Something went wrong") -> None:
        self.faults["errors"] += 1
        frame = orjson.dumps({"channel": "error", "data": text}).decode()
        for c in list(self.clients):
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(frame)

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/info", self._info)]

    async def _info(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            kind = body["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        if kind != "meta":
            return web.Response(status=422, text="unsupported info type")
        self.counts["meta"] += 1
        universe = [{"name": s, "szDecimals": self.size_decimals, "maxLeverage": 40}
                    for s in self.symbols]
        universe.append({"name": "OLDCOIN", "szDecimals": 1, "maxLeverage": 3,
                         "onlyIsolated": True, "isDelisted": True})
        return web.json_response({"universe": universe, "marginTables": []})
