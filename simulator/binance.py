"""Simulated Binance spot and USD-M futures: combined-stream depth diffs, SUBSCRIBE
handshake, REST depth snapshots with lastUpdateId, exchangeInfo."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from simulator.venue import Client, Venue


class BinanceSpotVenue(Venue):
    name = "binance"
    price_decimals = 8
    size_decimals = 8
    depth_path = "/api/v3/depth"
    info_path = "/api/v3/exchangeInfo"
    futures = False

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, params, mid = msg["method"], msg.get("params", []), msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await client.ws.send(orjson.dumps({"code": 3, "msg": "Invalid JSON"}).decode())
            return
        if method == "SUBSCRIBE":
            for stream in params:
                sym = stream.split("@", 1)[0].upper()
                if sym in self.books:
                    await self.subscribe(client, sym)
            await client.ws.send(orjson.dumps({"result": None, "id": mid}).decode())
        else:
            await client.ws.send(orjson.dumps({"result": None, "id": mid}).decode())

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        prev = self.seq[symbol]
        first = prev + 1
        last = prev + len(changes)   # one update id per level change
        self.seq[symbol] = last
        now = int(time.time() * 1000)
        data = {"e": "depthUpdate", "E": now, "s": symbol, "U": first, "u": last,
                "b": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0],
                "a": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]}
        if self.futures:
            data["T"] = now
            data["pu"] = prev
        stream = f"{symbol.lower()}@depth@100ms"
        return [orjson.dumps({"stream": stream, "data": data}).decode()]

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.depth_path, self._depth), web.get(self.info_path, self._info)]

    async def _depth(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        if sym not in self.books:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        body = {"lastUpdateId": self.seq[sym], "bids": self.levels(sym, 0, limit),
                "asks": self.levels(sym, 1, limit)}
        if self.futures:
            body["E"] = body["T"] = int(time.time() * 1000)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        tick = "0." + "0" * (self.price_decimals - 3) + "100" if self.price_decimals >= 3 else "1"
        symbols = []
        for s in self.symbols:
            entry = {"symbol": s, "status": "TRADING", "baseAsset": s[:-4], "quoteAsset": s[-4:],
                     "filters": [{"filterType": "PRICE_FILTER", "tickSize": tick},
                                 {"filterType": "LOT_SIZE", "stepSize": "1"}]}
            if self.futures:
                entry.update(contractType="PERPETUAL", pricePrecision=self.price_decimals,
                             quantityPrecision=self.size_decimals)
            else:
                entry.update(baseAssetPrecision=self.size_decimals,
                             quoteAssetPrecision=self.price_decimals)
            symbols.append(entry)
        return web.json_response({"symbols": symbols})


class BinanceFuturesVenue(BinanceSpotVenue):
    name = "binance_futures"
    price_decimals = 2
    size_decimals = 3
    pad_decimals = False
    depth_path = "/fapi/v1/depth"
    info_path = "/fapi/v1/exchangeInfo"
    futures = True
