"""Simulated AscendEX pro v1 websocket: ``{"op":"sub","ch":"depth:A/B,C/D"}`` with one
ack per symbol, ``depth`` diffs whose ``seqnum`` grows by 1 per message of a symbol,
``depth-snapshot`` answers to ``{"op":"req","action":"depth-snapshot"}``, server
``{"m":"ping","hp":3}`` (answered ``{"op":"pong"}``), and ``GET /api/pro/v1/products``.
Numbers are shortest decimal strings; natives are spelled ``BTC/USDT``."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue


class AscendEXVenue(Venue):
    name = "ascendex"
    price_decimals = 4
    size_decimals = 2
    pad_decimals = False

    def __init__(self, symbols: list[str], *, ping_interval: float = 0.5, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.seq = {s: 14_841_863_464 + 1000 * i for i, s in enumerate(self.symbols)}
        self.ping_interval = ping_interval
        self.counts = {"subs": 0, "snapshots": 0, "pongs": 0, "pings": 0, "errors": 0}
        self._pinger: asyncio.Task | None = None

    async def _send(self, client: Client, obj: dict) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps(obj).decode())

    async def _error(self, client: Client, info: str) -> None:
        self.counts["errors"] += 1
        await self._send(client, {"m": "error", "code": 100005,
                                  "reason": "INVALID_WS_REQUEST_DATA", "info": info})

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            await self._error(client, "invalid json")
            return
        op = msg.get("op")
        if op == "pong":
            self.counts["pongs"] += 1
        elif op == "ping":
            await self._send(client, {"m": "pong", "hp": 3})
        elif op == "sub" and str(msg.get("ch", "")).startswith("depth:"):
            for sym in msg["ch"][len("depth:"):].split(","):
                if sym in self.books:
                    self.counts["subs"] += 1
                    await self._send(client, {"m": "sub", "ch": f"depth:{sym}", "code": 0})
                    await self.subscribe(client, sym)
                else:
                    await self._error(client, f"unknown symbol {sym}")
        elif op == "req" and msg.get("action") == "depth-snapshot":
            sym = (msg.get("args") or {}).get("symbol")
            if sym not in self.books:
                await self._error(client, f"unknown symbol {sym}")
                return
            self.counts["snapshots"] += 1
            await self._send(client, {"m": "depth-snapshot", "symbol": sym, "data": {
                "ts": int(time.time() * 1000), "seqnum": self.seq[sym],
                "asks": self.levels(sym, 1), "bids": self.levels(sym, 0)}})
        else:
            await self._error(client, f"unsupported op {op}")

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        self.seq[symbol] += 1
        data = {"ts": int(time.time() * 1000), "seqnum": self.seq[symbol],
                "asks": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1],
                "bids": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]}
        return [orjson.dumps({"m": "depth", "symbol": symbol, "data": data}).decode()]

    async def _handler(self, ws) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send('{"m":"connected","type":"unauth"}')
        await super()._handler(ws)

    # -- server pings ----------------------------------------------------------------------
    async def start(self) -> Venue:
        await super().start()
        self._pinger = asyncio.ensure_future(self._ping_loop())
        return self

    async def stop(self) -> None:
        if self._pinger:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().stop()

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                self.counts["pings"] += 1
                await self._send(c, {"m": "ping", "hp": 3})

    # -- REST ------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/pro/v1/products", self._products)]

    async def _products(self, request: web.Request) -> web.Response:
        tick = "0." + "0" * (self.price_decimals - 1) + "1" if self.price_decimals else "1"
        lot = "0." + "0" * (self.size_decimals - 1) + "1" if self.size_decimals else "1"
        data = [{"symbol": s, "displayName": s, "baseAsset": s.split("/")[0],
                 "quoteAsset": s.split("/")[1], "status": "Normal", "tickSize": tick,
                 "lotSize": lot} for s in self.symbols]
        return web.json_response({"code": 0, "data": data})
