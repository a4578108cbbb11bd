"""Simulated dYdX v4 indexer websocket and ``/v4/perpetualMarkets``, written from the
indexer documentation (see connectors/dydx.py for the sources), not from the connector.

Websocket: ``connected`` (message_id 0) on connect; ``subscribe`` / ``unsubscribe`` of
``v4_orderbook`` per market id, answered by ``subscribed`` (the whole book as
``{price,size}`` objects) or ``unsubscribed``; one ``channel_data`` (levels as
``[price,size]`` pairs, absolute sizes) per order-flow event, or, for a client that
subscribed with ``"batched":true``, a ``channel_batch_data`` whose contents list holds
one object per level change.  Every message to a client carries that connection's next
``message_id``.  Errors (bad JSON, unknown id, already subscribed, more than 2 subscribes
per connection+id per second) are ``{"type":"error","message":...}`` with a message_id.

Faults beyond the base venue's: ``drop_next`` loses an update AFTER its message_id was
assigned (so the client sees the id jump, which is how a loss would show), and
``malform_next`` (the next update carries an unparsable price; applied to the truth).
``cross`` / ``uncross`` put and remove a bid at the best ask in the truth (the indexer's
documented transient crossing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

CHANNEL = "v4_orderbook"
SUBSCRIBES_PER_SECOND = 2


class DyDxVenue(Venue):
    name = "dydx"
    price_decimals = 1
    size_decimals = 4
    pad_decimals = False        # the indexer writes "1500.1", "31.231"

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "errors": 0,
                       "batched_messages": 0}
        self.faults.update(malformed_updates=0, crossings=0)
        self._malformed: set[str] = set()
        self._crossing: dict[str, int] = {}

    # -- faults --------------------------------------------------------------------------
    def malform_next(self, symbol: str) -> None:
        self._malformed.add(symbol)

    async def cross(self, symbol: str) -> None:
        """A bid at the best ask enters the truth (the book is now crossed)."""
        book = self.books[symbol]
        price = book.best_ask()
        book.bids[price] = 7
        self._crossing[symbol] = price
        self.faults["crossings"] += 1
        await self._broadcast(symbol, [(0, price, 7)])

    async def uncross(self, symbol: str) -> None:
        price = self._crossing.pop(symbol)
        self.books[symbol].bids.pop(price, None)
        await self._broadcast(symbol, [(0, price, 0)])

    # -- sending -------------------------------------------------------------------------
    async def _send(self, client: Client, msg: dict, lose: bool = False) -> None:
        """Give ``msg`` the connection's next message_id and send it (unless lost);
        numbering and sending under one lock keep ids in wire order."""
        async with client.state["lock"]:
            msg["connection_id"] = client.state["connection_id"]
            msg["message_id"] = client.state["next_id"]
            client.state["next_id"] += 1
            if lose:
                return
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(orjson.dumps(msg).decode())

    async def _error(self, client: Client, text: str) -> None:
        self.counts["errors"] += 1
        await self._send(client, {"type": "error", "message": text})

    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        client.state.update(lock=asyncio.Lock(), next_id=0, batched={},
                            connection_id=str(uuid.UUID(int=self.rng.getrandbits(128))),
                            sub_times={})
        self.clients.add(client)
        try:
            await self._send(client, {"type": "connected"})
            async for text in ws:
                await self.on_client_message(client, text)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind, channel, market = msg["type"], msg["channel"], msg["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(client, f"Invalid message: could not parse: {text[:80]}")
            return
        if kind not in ("subscribe", "unsubscribe"):
            await self._error(client, f"Invalid message type: {kind}")
            return
        if channel != CHANNEL or market not in self.books:
            await self._error(client, f"Invalid subscription id for channel: "
                                      f"({channel}-{market})")
            return
        if kind == "unsubscribe":
            self.counts["unsubscribes"] += 1
            client.symbols.discard(market)
            await self._send(client, {"type": "unsubscribed", "channel": channel,
                                      "id": market})
            return
        self.counts["subscribes"] += 1
        now = time.monotonic()
        times = client.state["sub_times"].setdefault(market, deque())
        while times and now - times[0] > 1.0:
            times.popleft()
        if len(times) >= SUBSCRIBES_PER_SECOND:
            await self._error(client, f"Too many subscribe attempts for {channel}-{market}")
            return
        times.append(now)
        if market in client.symbols:
            await self._error(client, f"Invalid subscribe message: already subscribed "
                                      f"({channel}-{market})")
            return
        client.symbols.add(market)
        client.state["batched"][market] = bool(msg.get("batched", False))
        self.counts["snapshots"] += 1
        async with client.state["lock"]:   # the snapshot is taken and numbered at once
            snapshot = {"type": "subscribed", "channel": CHANNEL, "id": market,
                        "contents": {
                            "bids": [{"price": p, "size": q}
                                     for p, q in self.levels(market, 0)],
                            "asks": [{"price": p, "size": q}
                                     for p, q in self.levels(market, 1)]}}
            snapshot["connection_id"] = client.state["connection_id"]
            snapshot["message_id"] = client.state["next_id"]
            client.state["next_id"] += 1
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(orjson.dumps(snapshot).decode())

    def _contents(self, changes) -> dict:
        out: dict = {}
        bids = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]
        asks = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]
        if bids:
            out["bids"] = bids
        if asks:
            out["asks"] = asks
        return out

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        return [orjson.dumps(self._message(symbol, changes, False)).decode()]

    def _message(self, symbol: str, changes, batched: bool) -> dict:
        if batched:
            self.counts["batched_messages"] += 1
            return {"type": "channel_batch_data", "channel": CHANNEL, "id": symbol,
                    "version": "1.0.0", "contents": [self._contents([c]) for c in changes]}
        return {"type": "channel_data", "channel": CHANNEL, "id": symbol,
                "version": "1.0.0", "contents": self._contents(changes)}

    async def _broadcast(self, symbol: str, changes, lose: bool = False,
                         malformed: bool = False) -> None:
        for c in list(self.clients):
            if symbol not in c.symbols:
                continue
            msg = self._message(symbol, changes, c.state["batched"].get(symbol, False))
            if malformed:
                contents = msg["contents"][0] if isinstance(msg["contents"], list) \
                    else msg["contents"]
                side = contents.get("bids") or contents.get("asks")
                side[0][0] = "12x.5"
            await self._send(c, msg, lose)

    async def emit(self, symbol: str) -> None:
        """One order-flow event: update the truth, then number and send it per client."""
        changes = self.books[symbol].step()
        if not changes:
            return
        lose = False
        if self._drop.get(symbol):
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
            lose = True
        malformed = symbol in self._malformed and not lose
        if malformed:
            self._malformed.discard(symbol)
            self.faults["malformed_updates"] += 1
        if not lose:
            self.events_sent += 1
        await self._broadcast(symbol, changes, lose, malformed)

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v4/perpetualMarkets", self._markets)]

    async def _markets(self, request: web.Request) -> web.Response:
        tick = fmt(1, self.price_decimals, False)
        step = fmt(1, self.size_decimals, False)
        markets = {}
        for i, s in enumerate(self.symbols):
            mid = (self.books[s].best_bid() + self.books[s].best_ask()) // 2
            markets[s] = {
                "clobPairId": str(i), "ticker": s, "status": "ACTIVE",
                "oraclePrice": self.px(mid), "priceChange24H": "0", "volume24H": "0",
                "trades24H": 0, "nextFundingRate": "0", "initialMarginFraction": "0.05",
                "maintenanceMarginFraction": "0.03", "openInterest": "0",
                "atomicResolution": -10, "quantumConversionExponent": -9,
                "tickSize": tick, "stepSize": step, "stepBaseQuantums": 1000000,
                "subticksPerTick": 100000, "marketType": "CROSS"}
        return web.Response(body=orjson.dumps({"markets": markets}),
                            content_type="application/json")
