"""Simulated BitMEX realtime websocket (``orderBookL2``) and ``/api/v1/instrument/active``,
written from BitMEX's documentation and announcements (not from the connector).

Websocket: a welcome ``info`` frame; ``{"op": "subscribe"|"unsubscribe", "args": [...]}``
with one ``{"success": true, ...}`` ack per topic and ``{"status": 400, "error": ...}``
for an unknown topic; text ``ping`` is answered with ``pong``.  A subscription starts
with a ``partial`` (whole book, rows in id order, which is not price order), then one
message per run of same-action rows: ``insert`` / ``update`` / ``delete`` rows carry
``symbol``, ``id``, ``side``, ``price`` (a JSON number), ``timestamp`` and (not on
deletes) ``size`` in contracts, as since 2023.  Ids are arbitrary (a new one for every
level created), never derived from the price.  No sequence numbers, no checksums.

Faults beyond the base venue's: ``lose_insert`` (a new level's insert is not sent, then
its update is: the client sees an update for an id it never had) and
``send_bad_update`` (an insert with an unparsable price, not applied to the truth).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

TABLE = "orderBookL2"
SIDES = ("Buy", "Sell")
TYPES = {"symbol": "symbol", "id": "long", "side": "symbol", "size": "long",
         "price": "float", "timestamp": "timestamp"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BitMEXVenue(Venue):
    name = "bitmex"
    price_decimals = 2       # tickSize 0.01
    size_decimals = 0        # contracts
    pad_decimals = False

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.counts = {"subscribes": 0, "unsubscribes": 0, "partials": 0, "pings": 0,
                       "rejected": 0}
        self.faults.update(lost_inserts=0, bad_updates=0)
        self._next_id = 10**9
        # symbol -> {(side, price ticks): id}, for every level of the truth
        self.ids: dict[str, dict[tuple[int, int], int]] = {}
        for s, book in self.books.items():
            self.ids[s] = {}
            for side, levels in ((0, book.bids), (1, book.asks)):
                for p in levels:
                    self.ids[s][(side, p)] = self._new_id()

    def _new_id(self) -> int:
        self._next_id += self.rng.randint(1, 997)
        return self._next_id

    def price(self, v: int) -> orjson.Fragment:
        return orjson.Fragment(self.px(v).encode())     # a JSON number, exact text

    # -- websocket -----------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        self.clients.add(client)
        try:
            await ws.send(orjson.dumps({"info": "Welcome to the BitMEX Realtime API.",
                                        "version": "sim", "timestamp": _now(),
                                        "docs": "https://www.bitmex.com/app/wsAPI"}).decode())
            async for text in ws:
                await self.on_client_message(client, text)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    async def on_client_message(self, client: Client, text: str) -> None:
        if text == "ping":
            self.counts["pings"] += 1
            await client.ws.send("pong")
            return
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg.get("args", [])
            if isinstance(args, str):
                args = [args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            await client.ws.send(orjson.dumps({"status": 400, "error": "Unknown command.",
                                               "meta": {}}).decode())
            return
        if op not in ("subscribe", "unsubscribe"):
            self.counts["rejected"] += 1
            return
        self.counts[op + "s"] += 1
        for topic in args:
            table, _, symbol = str(topic).partition(":")
            if table != TABLE or symbol not in self.books:
                self.counts["rejected"] += 1
                await client.ws.send(orjson.dumps({
                    "status": 400, "error": f"Unknown or expired topic: {topic}",
                    "meta": {}, "request": msg}).decode())
                continue
            await client.ws.send(orjson.dumps({"success": True, op: topic,
                                               "request": msg}).decode())
            if op == "subscribe":
                await self.subscribe(client, symbol)
            else:
                client.symbols.discard(symbol)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["partials"] += 1
        book, ts = self.books[symbol], _now()
        rows = []
        for (side, p), key in sorted(self.ids[symbol].items(), key=lambda kv: kv[1]):
            size = (book.bids if side == 0 else book.asks)[p]
            rows.append({"symbol": symbol, "id": key, "side": SIDES[side], "size": size,
                         "price": self.price(p), "timestamp": ts})
        return [orjson.dumps({"table": TABLE, "action": "partial",
                              "keys": ["symbol", "id", "side"], "types": TYPES,
                              "foreignKeys": {"symbol": "instrument", "side": "side"},
                              "attributes": {"symbol": "parted", "id": "sorted"},
                              "filter": {"symbol": symbol}, "data": rows}).decode()]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        """Rows for changes already applied to the truth; consecutive rows of the same
        action share one message (BitMEX never mixes actions in a message)."""
        ids, ts = self.ids[symbol], _now()
        runs: list[tuple[str, list]] = []
        for side, p, size in changes:
            key = (side, p)
            row = {"symbol": symbol, "side": SIDES[side]}
            if size == 0:
                if key not in ids:
                    continue
                action = "delete"
                row["id"] = ids.pop(key)
            elif key in ids:
                action = "update"
                row["id"] = ids[key]
                row["size"] = size
            else:
                action = "insert"
                row["id"] = ids[key] = self._new_id()
                row["size"] = size
            row["price"] = self.price(p)
            row["timestamp"] = ts
            if runs and runs[-1][0] == action:
                runs[-1][1].append(row)
            else:
                runs.append((action, [row]))
        return [orjson.dumps({"table": TABLE, "action": a, "data": rows}).decode()
                for a, rows in runs]

    async def _send_to(self, symbol: str, frames: list[str]) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                for f in frames:
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send(f)

    # -- faults --------------------------------------------------------------------------
    async def lose_insert(self, symbol: str) -> None:
        """A new bid level whose insert is lost, then an update of it that is sent."""
        book = self.books[symbol]
        price = min(book.bids) - 3
        book.bids[price] = 11
        self.encode_update(symbol, [(0, price, 11)])          # the lost insert
        book.bids[price] = 12
        self.faults["lost_inserts"] += 1
        await self._send_to(symbol, self.encode_update(symbol, [(0, price, 12)]))

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        await self._send_to(symbol, [orjson.dumps({
            "table": TABLE, "action": "insert",
            "data": [{"symbol": symbol, "id": 1, "side": "Buy", "size": 1,
                      "price": "12..5", "timestamp": _now()}]}).decode()])

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/instrument/active", self._instruments)]

    async def _instruments(self, request: web.Request) -> web.Response:
        rows = []
        for s in self.symbols:
            quote = "USDT" if s.endswith("USDT") else s[-3:]
            rows.append({"symbol": s, "rootSymbol": s[:-len(quote)], "state": "Open",
                         "typ": "FFWCSX", "quoteCurrency": quote, "expiry": None,
                         "tickSize": orjson.Fragment(b"0.01"),
                         "lotSize": orjson.Fragment(b"1")})
        return web.Response(body=orjson.dumps(rows), content_type="application/json")
