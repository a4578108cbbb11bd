"""Simulated KuCoin spot, written from KuCoin's public documentation (see
connectors/kucoin.py for the sources): POST /api/v1/bullet-public hands out a token and
the websocket endpoint; the websocket refuses connections without a token it issued,
greets with ``welcome``, answers ``ping`` with ``pong`` and subscribe/unsubscribe with
``ack``; ``/market/level2`` increments carry one sequence per change (and now and then a
price-0 change that only advances the sequence); GET level2_100 serves the top 100
levels with the sequence; the full /api/v3 book answers as it does without an API key.

The simulated books stay below 100 levels a side (``max_levels``), so a level2_100
snapshot is the whole book and the client's book can be compared with the full truth.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.book import SimBook
from simulator.venue import Client, Venue

OK = "200000"
PARTIAL = 100


class KuCoinVenue(Venue):
    name = "kucoin"
    price_decimals = 1
    size_decimals = 8
    pad_decimals = False      # KuCoin writes "0.000000218", "5"

    def __init__(self, symbols: list[str], *, ping_interval_ms: int = 18000,
                 ping_timeout_ms: int = 10000, zero_price_rate: float = 0.1,
                 max_levels: int = 90, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.books = {s: SimBook(random.Random(self.rng.random()), mid=self.start_mid,
                                 max_levels=max_levels)
                      for s in self.symbols}
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self.zero_price_rate = zero_price_rate
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.rejected = 0           # websocket connections refused (no / unknown token)
        self.pings = 0
        self.snapshots_served = 0

    # -- websocket -----------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        token = (query.get("token") or [""])[0]
        connect_id = (query.get("connectId") or [secrets.token_hex(5)])[0]
        if token not in self.tokens:
            self.rejected += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(orjson.dumps({"id": connect_id, "type": "error", "code": 401,
                                            "data": "token is invalid"}).decode())
                await ws.close(1008, "token is invalid")
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps({"id": connect_id, "type": "welcome"}).decode())
        await super()._handler(ws)

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind, mid = msg["type"], msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await client.ws.send(orjson.dumps({"type": "error", "code": 400,
                                               "data": "bad request"}).decode())
            return
        if kind == "ping":
            self.pings += 1
            await client.ws.send(orjson.dumps({"id": mid, "type": "pong"}).decode())
            return
        topic = msg.get("topic", "")
        if kind not in ("subscribe", "unsubscribe") or not topic.startswith("/market/level2:"):
            await client.ws.send(orjson.dumps({"id": mid, "type": "error", "code": 404,
                                               "data": f"topic {topic} is not found"}).decode())
            return
        symbols = topic.split(":", 1)[1].split(",")
        if msg.get("response"):
            await client.ws.send(orjson.dumps({"id": mid, "type": "ack"}).decode())
        for s in symbols:
            if s not in self.books:
                continue
            if kind == "subscribe":
                await self.subscribe(client, s)
            else:
                client.symbols.discard(s)

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        seq = self.seq[symbol]
        start = seq + 1
        out: dict[str, list] = {"asks": [], "bids": []}
        for side, p, q in changes:
            seq += 1
            out["bids" if side == 0 else "asks"].append([self.px(p), self.sz(q), str(seq)])
        if self.rng.random() < self.zero_price_rate:   # a sequence-only change
            seq += 1
            out["asks" if seq % 2 else "bids"].append(["0", "0", str(seq)])
        self.seq[symbol] = seq
        return [orjson.dumps({
            "type": "message", "topic": f"/market/level2:{symbol}",
            "subject": "trade.l2update",
            "data": {"changes": out, "sequenceEnd": seq, "sequenceStart": start,
                     "symbol": symbol, "time": int(time.time() * 1000)}}).decode()]

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/bullet-public", self._bullet),
                web.get("/api/v1/market/orderbook/level2_100", self._partial),
                web.get("/api/v3/market/orderbook/level2", self._full),
                web.get("/api/v2/symbols", self._symbols)]

    async def _bullet(self, request: web.Request) -> web.Response:
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"code": OK, "data": {"token": token, "instanceServers": [
            {"endpoint": self.ws_url + "/", "encrypt": False, "protocol": "websocket",
             "pingInterval": self.ping_interval_ms, "pingTimeout": self.ping_timeout_ms}]}})

    async def _partial(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        if sym not in self.books:
            return web.json_response({"code": "400100", "msg": "symbol not exists"})
        self.snapshots_served += 1
        return web.json_response({"code": OK, "data": {
            "time": int(time.time() * 1000), "sequence": str(self.seq[sym]),
            "bids": self.levels(sym, 0, PARTIAL), "asks": self.levels(sym, 1, PARTIAL)}})

    async def _full(self, request: web.Request) -> web.Response:
        return web.json_response({"code": "400003", "msg": "KC-API-KEY not exists"},
                                 status=401)

    async def _symbols(self, request: web.Request) -> web.Response:
        tick = "0." + "0" * (self.price_decimals - 1) + "1" if self.price_decimals else "1"
        lot = "0." + "0" * (self.size_decimals - 1) + "1" if self.size_decimals else "1"
        data = []
        for s in self.symbols:
            base, quote = s.split("-", 1)
            data.append({"symbol": s, "name": s, "baseCurrency": base, "quoteCurrency": quote,
                         "baseIncrement": lot, "priceIncrement": tick,
                         "quoteIncrement": tick, "enableTrading": True})
        return web.json_response({"code": OK, "data": data})
