"""Simulated HitBTC public websocket API v3 (``orderbook/full``) and the v3 symbol list,
written from HitBTC's API v3 documentation (not from the connector).

Websocket: ``subscribe`` / ``unsubscribe`` of ``orderbook/full`` with
``params.symbols``, answered ``{"result":{"ch":..,"subscriptions":[..]},"id":..}``; a
bad request gets ``{"error":{...},"id":..}``.  On subscribe, a ``snapshot`` keyed by
symbol (``t`` ms, ``s`` sequence, ``a``/``b`` [price, qty] lists); then one ``update``
per order-flow event with ``s`` + 1.  ``drop_next`` skips one update (a gap).
REST: ``/api/3/public/symbol``.  Extra fault: ``send_bad_update`` (an update with an
unparsable price, not applied to the truth, sequence not advanced).
"""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

CHANNEL = "orderbook/full"
QUOTES = ("USDT", "BTC", "ETH", "USDC", "EURS", "DAI")


class HitBTCVenue(Venue):
    name = "hitbtc"
    price_decimals = 2
    size_decimals = 5
    pad_decimals = True

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "rejected": 0}
        self.faults.update(bad_updates=0)

    @staticmethod
    def _ms() -> int:
        return int(time.time() * 1000)

    def _body(self, symbol: str, bids, asks) -> dict:
        return {symbol: {"t": self._ms(), "s": self.seq[symbol], "a": asks, "b": bids}}

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, ch, rid = msg["method"], msg["ch"], msg.get("id")
            symbols = list(msg["params"]["symbols"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            await client.ws.send(orjson.dumps({"error": {
                "code": 2001, "message": "Method not found"}}).decode())
            return
        if method not in ("subscribe", "unsubscribe") or ch != CHANNEL:
            self.counts["rejected"] += 1
            await client.ws.send(orjson.dumps({"error": {
                "code": 2001, "message": "Method not found"}, "id": rid}).decode())
            return
        self.counts[method + "s"] += 1
        known = [s for s in symbols if s in self.books]
        if method == "unsubscribe":
            for s in known:
                client.symbols.discard(s)
            await client.ws.send(orjson.dumps({"result": {
                "ch": CHANNEL, "subscriptions": sorted(client.symbols)}, "id": rid}).decode())
            return
        await client.ws.send(orjson.dumps({"result": {
            "ch": CHANNEL, "subscriptions": known}, "id": rid}).decode())
        for s in known:
            await self.subscribe(client, s)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        body = self._body(symbol, self.levels(symbol, 0), self.levels(symbol, 1))
        return [orjson.dumps({"ch": CHANNEL, "snapshot": body}).decode()]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        self.seq[symbol] += 1
        bids = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]
        asks = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]
        return [orjson.dumps({"ch": CHANNEL,
                              "update": self._body(symbol, bids, asks)}).decode()]

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        frame = orjson.dumps({"ch": CHANNEL, "update": {symbol: {
            "t": self._ms(), "s": self.seq[symbol] + 1, "a": [], "b": [["12..5", "1"]]}}}
        ).decode()
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/3/public/symbol", self._symbols)]

    async def _symbols(self, request: web.Request) -> web.Response:
        out = {}
        for s in self.symbols:
            quote = next((q for q in QUOTES if s.endswith(q)), s[-3:])
            out[s] = {"type": "spot", "base_currency": s[:-len(quote)],
                      "quote_currency": quote, "status": "working",
                      "quantity_increment": "0." + "0" * (self.size_decimals - 1) + "1",
                      "tick_size": "0." + "0" * (self.price_decimals - 1) + "1",
                      "take_rate": "0.0025", "make_rate": "0.001",
                      "fee_currency": quote, "margin_trading": False}
        return web.json_response(out)
