"""Simulated Phemex public market data websocket and ``/public/products``, written from
Phemex's documentation and the recorded session (not from the connector).

Symbols choose their product type by spelling, as on Phemex: ``sBTCUSDT`` spot (prices
and sizes as scaled integers, value scale 8), ``BTCUSD`` coin-margined perpetual (price
scale 4, whole contracts), ``BTCUSDT`` USDT-margined perpetual (``orderbook_p`` with
decimal strings).  Requests ``{"id","method","params"}``; ``orderbook.subscribe`` /
``orderbook_p.subscribe`` answer ``{"error":null,"id":..,"result":{"status":"success"}}``
then a 30-level snapshot; ``*.unsubscribe`` with ``[]`` drops every book, with
``[symbol]`` that one; ``server.ping`` answers ``"pong"``.  Each event sends the change
of the TOP 30 levels (explicit deletes for levels pushed out, inserts for levels coming
in), as the real feed does; ``sequence`` grows by 1-3 per message (shared with other
channels on the real venue, so holes are normal).  Every ``snapshot_interval`` seconds
a snapshot of each subscribed book is sent (60 s on the venue).

Faults beyond the base venue's: ``lose_update`` (a change deep in the top 30 never sent:
invisible in the sequence, visible at the next periodic snapshot; ``drop_next`` does the
same with whole events, which later events may happen to overwrite),
``send_duplicate`` (the last update of a symbol again: a non-increasing sequence),
``send_bad_update`` (a level that is not a pair of integers, not applied).
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

DEPTH = 30
SCALED = "orderbook"
REAL = "orderbook_p"


class PhemexVenue(Venue):
    name = "phemex"
    price_decimals = 2        # tick 0.01 (SimBook prices are ticks)
    size_decimals = 3         # spot / USDT-margined lot 0.001; contracts are whole

    def __init__(self, symbols: list[str], *, snapshot_interval: float = 60.0,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.snapshot_interval = snapshot_interval
        self.view = {s: self._top(s) for s in self.symbols}
        self.last_frame: dict[str, str] = {}
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "pings": 0,
                       "periodic": 0, "rejected": 0}
        self.faults.update(duplicates=0, bad_updates=0)
        self._periodic: asyncio.Task | None = None

    # -- product types -------------------------------------------------------------------
    def kind(self, symbol: str) -> str:
        if symbol.startswith("s"):
            return "spot"
        return "inverse" if symbol.endswith("USD") else "linear"

    def channel(self, symbol: str) -> str:
        return REAL if self.kind(symbol) == "linear" else SCALED

    def scales(self, symbol: str) -> tuple[int, int]:
        """Powers of ten of Ep prices and sizes (scaled-integer channel)."""
        return (8, 8) if self.kind(symbol) == "spot" else (4, 0)

    def sdec(self, symbol: str) -> int:
        return 0 if self.kind(symbol) == "inverse" else self.size_decimals

    def encode_level(self, symbol: str, p: int, q: int) -> list:
        if self.channel(symbol) == REAL:
            return [fmt(p, self.price_decimals, False), fmt(q, self.sdec(symbol), False)]
        ps, ss = self.scales(symbol)
        return [p * 10 ** (ps - self.price_decimals), q * 10 ** (ss - self.sdec(symbol))]

    def _top(self, symbol: str) -> tuple[dict, dict]:
        b = self.books[symbol]
        return dict(b.top(0, DEPTH)), dict(b.top(1, DEPTH))

    def truth(self, symbol: str) -> dict:
        """The top 30 levels (what the feed maintains), exact decimal strings."""
        b, sd = self.books[symbol], self.sdec(symbol)
        return {k: [[fmt(p, self.price_decimals, False), fmt(q, sd, False)]
                    for p, q in b.top(side, DEPTH)]
                for side, k in ((0, "bids"), (1, "asks"))}

    def message(self, symbol: str, kind: str, bids: list, asks: list) -> str:
        self.seq[symbol] += self.rng.randint(1, 3) if kind == "incremental" else 0
        key = "orderbook_p" if self.channel(symbol) == REAL else "book"
        return orjson.dumps({key: {"asks": asks, "bids": bids}, "depth": DEPTH,
                             "sequence": self.seq[symbol], "symbol": symbol,
                             "timestamp": 1_700_000_000_000_000_000 + self.seq[symbol],
                             "type": kind}).decode()

    def snapshot(self, symbol: str) -> str:
        bids, asks = self._top(symbol)
        return self.message(symbol, "snapshot",
                            [self.encode_level(symbol, p, q) for p, q in bids.items()],
                            [self.encode_level(symbol, p, q) for p, q in asks.items()])

    # -- websocket -----------------------------------------------------------------------
    async def _reply(self, client: Client, rid, result, error=None) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps({"error": error, "id": rid,
                                               "result": result}).decode())

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            rid, method, params = msg["id"], msg["method"], list(msg["params"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        if method == "server.ping":
            self.counts["pings"] += 1
            await self._reply(client, rid, "pong")
            return
        channel, _, op = method.rpartition(".")
        if channel not in (SCALED, REAL) or op not in ("subscribe", "unsubscribe"):
            self.counts["rejected"] += 1
            await self._reply(client, rid, None, {"code": 6001, "message": "invalid method"})
            return
        if op == "unsubscribe":
            self.counts["unsubscribes"] += 1
            gone = [s for s in client.symbols if self.channel(s) == channel
                    and (not params or s in params)]
            client.symbols.difference_update(gone)
            await self._reply(client, rid, {"status": "success"})
            return
        symbol = params[0] if params else None
        if symbol not in self.books or self.channel(symbol) != channel:
            self.counts["rejected"] += 1
            await self._reply(client, rid, None, {"code": 6001, "message": "invalid argument"})
            return
        self.counts["subscribes"] += 1
        await self._reply(client, rid, {"status": "success"})
        await self.subscribe(client, symbol)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        return [self.snapshot(symbol)]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        old = self.view[symbol]
        new = self._top(symbol)
        self.view[symbol] = new
        sides = []
        for o, n in zip(old, new, strict=True):
            diff = [(p, 0) for p in o if p not in n]
            diff += [(p, q) for p, q in n.items() if o.get(p) != q]
            sides.append([self.encode_level(symbol, p, q) for p, q in diff])
        if not sides[0] and not sides[1]:
            return []
        frame = self.message(symbol, "incremental", sides[0], sides[1])
        self.last_frame[symbol] = frame
        return [frame]

    async def _send_to(self, symbol: str, frame: str) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- faults --------------------------------------------------------------------------
    def lose_update(self, symbol: str) -> None:
        """A change inside the top 30 (the 15th bid grows by a lot) that is never sent:
        the sequence cannot show it; the next periodic snapshot does (unless later
        flow happened to rewrite that level first)."""
        book = self.books[symbol]
        price = sorted(self._top(symbol)[0], reverse=True)[14]
        book.bids[price] += 100_000
        self.view[symbol] = self._top(symbol)
        self.faults["dropped"] += 1

    async def send_duplicate(self, symbol: str) -> None:
        """The symbol's last update delivered a second time (sequence not increasing)."""
        self.faults["duplicates"] += 1
        await self._send_to(symbol, self.last_frame[symbol])

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        self.seq[symbol] += 1
        key = "orderbook_p" if self.channel(symbol) == REAL else "book"
        bad = [["12..5", "1"]] if key == "orderbook_p" else [["1234", 5]]
        await self._send_to(symbol, orjson.dumps({
            key: {"asks": [], "bids": bad}, "depth": DEPTH, "sequence": self.seq[symbol],
            "symbol": symbol, "timestamp": 0, "type": "incremental"}).decode())

    # -- periodic snapshots --------------------------------------------------------------
    async def start(self) -> PhemexVenue:
        await super().start()
        self._periodic = asyncio.ensure_future(self._periodic_loop())
        return self

    async def stop(self) -> None:
        if self._periodic:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
        await super().stop()

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            if self.paused:
                continue
            for s in self.symbols:
                if any(s in c.symbols for c in self.clients):
                    self.counts["periodic"] += 1
                    await self._send_to(s, self.snapshot(s))

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/public/products", self._products)]

    async def _products(self, request: web.Request) -> web.Response:
        products, v2 = [], []
        currencies = {"USD": 4, "USDT": 8}
        for s in self.symbols:
            kind = self.kind(s)
            if kind == "spot":
                base, quote = s[1:-4], "USDT"
                currencies[base] = 8
                products.append({"symbol": s, "type": "Spot", "baseCurrency": base,
                                 "quoteCurrency": quote, "status": "Listed",
                                 "quoteTickSize": "0.01 USDT",
                                 "baseTickSize": f"0.001 {base}", "pricePrecision": 2})
            elif kind == "inverse":
                products.append({"symbol": s, "type": "Perpetual", "quoteCurrency": "USD",
                                 "settleCurrency": s[:-3], "priceScale": 4,
                                 "ratioScale": 8, "tickSize": 0.01, "lotSize": 1,
                                 "contractSize": 1.0, "status": "Listed"})
            else:
                v2.append({"symbol": s, "type": "PerpetualV2", "baseCurrency": s[:-4],
                           "quoteCurrency": "USDT", "settleCurrency": "USDT",
                           "priceScale": 0, "tickSize": "0.01", "qtyStepSize": "0.001",
                           "status": "Listed"})
        body = {"code": 0, "msg": "OK", "data": {
            "ratioScale": 8, "products": products, "perpProductsV2": v2,
            "currencies": [{"currency": c, "valueScale": v} for c, v in currencies.items()]}}
        return web.json_response(body)
