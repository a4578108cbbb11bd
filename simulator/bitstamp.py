"""Simulated Bitstamp: websocket v2 ``diff_order_book_{pair}`` diffs stamped with strictly
increasing microtimestamps, bts:subscribe / bts:heartbeat / bts:error handling, REST
``/api/v2/order_book/{pair}/`` snapshots carrying the microtimestamp of the last event
they contain, and ``/api/v2/trading-pairs-info/``.

Faults beyond the base venue's: ``reorder_next`` (a diff is delivered after its
successor: the stamps go back), ``request_reconnect`` (the venue's maintenance notice)
and ``send_bad_level`` (a diff with an unparseable price)."""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

CHANNEL = "diff_order_book_"
QUOTES = ("usdt", "usdc", "usd", "eur", "gbp", "btc", "eth")


def split_pair(pair: str) -> tuple[str, str]:
    """btcusdt -> (BTC, USDT): the longest known quote currency that ends the name."""
    for q in QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return pair[:-len(q)].upper(), q.upper()
    return pair[:-3].upper(), pair[-3:].upper()


class BitstampVenue(Venue):
    name = "bitstamp"
    price_decimals = 2
    size_decimals = 8
    pad_decimals = True            # Bitstamp writes "3802.90", "0.60000000"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        now_us = int(time.time() * 1_000_000)
        self.seq = dict.fromkeys(self.symbols, now_us)  # microtimestamp of the last event
        self._reorder: dict[str, int] = {}
        self._held: dict[str, list[str]] = {}
        self.heartbeats = 0

    # -- faults --------------------------------------------------------------------------
    def reorder_next(self, symbol: str) -> None:
        """Hold the next diff of ``symbol`` back and send it after the one that follows."""
        self._reorder[symbol] = self._reorder.get(symbol, 0) + 1

    async def request_reconnect(self) -> None:
        await self._broadcast(orjson.dumps({"event": "bts:request_reconnect", "channel": "",
                                            "data": ""}).decode())

    async def send_bad_level(self, symbol: str) -> None:
        """A diff whose price is not a number (the truth does not change)."""
        self.faults["garbage"] += 1
        data = {"timestamp": str(self.seq[symbol] // 1_000_000),
                "microtimestamp": str(self.seq[symbol] + 1),
                "bids": [["12x.5", "1.00000000"]], "asks": []}
        frame = orjson.dumps({"data": data, "channel": CHANNEL + symbol,
                              "event": "data"}).decode()
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    async def _broadcast(self, frame: str) -> None:
        for c in list(self.clients):
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(frame)

    # -- protocol ------------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(client, "", "Incorrect JSON format.")
            return
        if event == "bts:heartbeat":
            self.heartbeats += 1
            await client.ws.send(orjson.dumps({"event": "bts:heartbeat", "channel": "",
                                               "data": {"status": "success"}}).decode())
            return
        channel = (msg.get("data") or {}).get("channel", "") if isinstance(msg.get("data"),
                                                                           dict) else ""
        symbol = channel[len(CHANNEL):] if channel.startswith(CHANNEL) else ""
        if event not in ("bts:subscribe", "bts:unsubscribe") or symbol not in self.books:
            await self._error(client, channel, "Bad subscription string.")
            return
        if event == "bts:subscribe":
            await client.ws.send(orjson.dumps({"event": "bts:subscription_succeeded",
                                               "channel": channel, "data": {}}).decode())
            await self.subscribe(client, symbol)
        else:
            client.symbols.discard(symbol)
            await client.ws.send(orjson.dumps({"event": "bts:unsubscription_succeeded",
                                               "channel": channel, "data": {}}).decode())

    async def _error(self, client: Client, channel: str, message: str) -> None:
        await client.ws.send(orjson.dumps({"event": "bts:error", "channel": channel,
                                           "data": {"code": None,
                                                    "message": message}}).decode())

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        mt = max(int(time.time() * 1_000_000), self.seq[symbol] + 1)
        self.seq[symbol] = mt
        data = {"timestamp": str(mt // 1_000_000), "microtimestamp": str(mt),
                "bids": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0],
                "asks": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]}
        frame = orjson.dumps({"data": data, "channel": CHANNEL + symbol,
                              "event": "data"}).decode()
        if self._reorder.get(symbol):
            self._reorder[symbol] -= 1
            self._held.setdefault(symbol, []).append(frame)
            return []
        return [frame] + self._held.pop(symbol, [])

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v2/order_book/{pair}/", self._order_book),
                web.get("/api/v2/order_book/{pair}", self._order_book),
                web.get("/api/v2/trading-pairs-info/", self._pairs)]

    async def _order_book(self, request: web.Request) -> web.Response:
        pair = request.match_info["pair"]
        if pair not in self.books:
            return web.json_response({"status": "error", "reason": "Invalid pair"},
                                     status=404)
        mt = self.seq[pair]
        body = {"timestamp": str(mt // 1_000_000), "microtimestamp": str(mt),
                "bids": self.levels(pair, 0, 10**9), "asks": self.levels(pair, 1, 10**9)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _pairs(self, request: web.Request) -> web.Response:
        out = []
        for s in self.symbols:
            base, quote = split_pair(s)
            out.append({"trading": "Enabled", "base_decimals": self.size_decimals,
                        "url_symbol": s, "name": f"{base}/{quote}",
                        "instant_and_market_orders": "Enabled",
                        "minimum_order": f"20.0 {quote}",
                        "counter_decimals": self.price_decimals,
                        "description": f"{base} / {quote}"})
        return web.json_response(out)
