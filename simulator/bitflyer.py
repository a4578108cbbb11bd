"""Simulated bitFlyer Lightning Realtime API (JSON-RPC 2.0 websocket) and the markets
REST endpoints, written from bitFlyer's documentation and the recorded session (not
from the connector).

Websocket: ``subscribe`` / ``unsubscribe`` of ``lightning_board_{P}`` (diffs) and
``lightning_board_snapshot_{P}`` (whole board: sent on subscribe, then every
``snapshot_interval`` seconds); a response only to a request with an ``id``.  Numbers
are JSON numbers (``5000000.0``, ``0.0`` deletes), as on the real feed.  No sequence
numbers and no checksums.  REST: ``/v1/markets``, ``/v1/markets/usa``,
``/v1/markets/eu``.

Faults beyond the base venue's: ``lose_delete_and_cross`` (the truth deletes the best
ask without telling anyone, then a bid lands at that price: a client that missed the
delete holds a crossed book) and ``send_bad_update`` (a diff with a string price).
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

SNAPSHOT_PREFIX = "lightning_board_snapshot_"
BOARD_PREFIX = "lightning_board_"


def num(v: int, decimals: int) -> str:
    """A fixed-point value as a JSON number the way bitFlyer writes it: ``2.0``."""
    s = fmt(v, decimals, False)
    return s if "." in s else s + ".0"


class BitFlyerVenue(Venue):
    name = "bitflyer"
    price_decimals = 2
    size_decimals = 8

    def __init__(self, symbols: list[str], *, snapshot_interval: float = 5.0,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.snapshot_interval = snapshot_interval
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "rejected": 0}
        self.faults.update(crossed=0, bad_updates=0)
        self._snapshots: asyncio.Task | None = None

    def _levels_json(self, rows) -> str:
        return "[" + ",".join(f'{{"price":{p},"size":{q}}}' for p, q in rows) + "]"

    def board(self, channel: str, bids, asks, mid: str = "0.0") -> str:
        return ('{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":"'
                + channel + '","message":{"mid_price":' + mid + ',"bids":'
                + self._levels_json(bids) + ',"asks":' + self._levels_json(asks) + "}}}")

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind = msg["method"]
            channel = msg["params"]["channel"]
            if not isinstance(channel, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        if kind not in ("subscribe", "unsubscribe"):
            self.counts["rejected"] += 1
            return
        self.counts[kind + "s"] += 1
        snaps = client.state.setdefault("snapshots", set())
        if channel.startswith(SNAPSHOT_PREFIX):
            product = channel[len(SNAPSHOT_PREFIX):]
            if product in self.books:
                if kind == "subscribe":
                    snaps.add(product)
                    await client.ws.send(self.snapshot(product))
                else:
                    snaps.discard(product)
        elif channel.startswith(BOARD_PREFIX):
            product = channel[len(BOARD_PREFIX):]
            if product in self.books:
                if kind == "subscribe":
                    client.symbols.add(product)
                else:
                    client.symbols.discard(product)
        if "id" in msg:
            await client.ws.send(orjson.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                               "result": True}).decode())

    def snapshot(self, symbol: str) -> str:
        self.counts["snapshots"] += 1
        book = self.books[symbol]
        bids = [(num(p, self.price_decimals), num(q, self.size_decimals))
                for p, q in reversed(book.top(0, 300))]          # ascending, as recorded
        asks = [(num(p, self.price_decimals), num(q, self.size_decimals))
                for p, q in book.top(1, 300)]
        return self.board(SNAPSHOT_PREFIX + symbol, bids, asks)

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        rows = ([], [])
        for side, p, q in changes:
            rows[side].append((num(p, self.price_decimals), num(q, self.size_decimals)))
        return [self.board(BOARD_PREFIX + symbol, rows[0], rows[1])]

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
        await self._send_to(symbol, self.board(BOARD_PREFIX + symbol,
                                               [('"12.5"', "1.0")], []))

    # -- periodic snapshots --------------------------------------------------------------
    async def start(self) -> BitFlyerVenue:
        await super().start()
        self._snapshots = asyncio.ensure_future(self._snapshot_loop())
        return self

    async def stop(self) -> None:
        if self._snapshots:
            self._snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshots
        await super().stop()

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                for s in sorted(c.state.get("snapshots", ())):
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send(self.snapshot(s))

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/markets", self._markets),
                web.get("/v1/markets/usa", self._regional),
                web.get("/v1/markets/eu", self._regional)]

    def _market(self, s: str) -> dict:
        if s.startswith("FX_"):
            return {"product_code": s, "market_type": "FX"}
        if "_" not in s:
            return {"product_code": s, "market_type": "Futures"}
        return {"product_code": s, "market_type": "Spot"}

    async def _markets(self, request: web.Request) -> web.Response:
        return web.json_response([self._market(s) for s in self.symbols])

    async def _regional(self, request: web.Request) -> web.Response:
        return web.json_response([self._market(s) for s in self.symbols[:1]])
