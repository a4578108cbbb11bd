"""Simulated Coinbase Advanced Trade market-data feed, as connectors.coinbase.Coinbase
expects the real one (wss://advanced-trade-ws.coinbase.com):

* a client must subscribe within ``subscribe_deadline`` seconds of connecting (5 s, as
  documented) or is disconnected; one channel per message (``level2`` or
  ``heartbeats``); a ``channel`` list or an unknown product gets an error message;
* every message of a connection carries the next ``sequence_num`` of that connection,
  all channels together, starting at 0;
* a ``level2`` subscription is answered by a ``subscriptions`` message and one
  ``l2_data`` snapshot per product (whole book, rows ``bid``/``offer`` with
  ``new_quantity``), then ``update`` events with absolute quantities ("0" deletes);
* ``heartbeats`` subscribers get one message a second with a ``heartbeat_counter``;
* ``GET /api/v3/brokerage/market/products`` lists the products.

Faults on top of simulator.venue's: ``drop_next`` consumes a sequence number without
sending (a sequence gap on every subscribed connection), ``send_crossed`` sends a bid
at the best ask that the true book never had (a crossed book), and ``stall`` also
silences heartbeats (a dead link)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

EPOCH_ZERO = "1970-01-01T00:00:00Z"   # what snapshot rows carry as event_time


def iso_now() -> str:
    """Now as Coinbase writes it: RFC 3339 with nanoseconds, UTC."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns % 10**9:09d}Z"


class CoinbaseVenue(Venue):
    name = "coinbase"
    price_decimals = 2
    size_decimals = 8
    pad_decimals = False            # "21921.73", "0.06317902", "0"
    products_path = "/api/v3/brokerage/market/products"

    def __init__(self, symbols: list[str], *, heartbeat_interval: float = 1.0,
                 subscribe_deadline: float = 5.0, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval = heartbeat_interval
        self.subscribe_deadline = subscribe_deadline
        self.requests: list[dict] = []       # every client request, for tests
        self.snapshots_sent = 0
        self.heartbeats_sent = 0
        self.deadline_kicks = 0
        self._hb_task: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> CoinbaseVenue:
        await super().start()
        self._hb_task = asyncio.ensure_future(self._heartbeat_loop())
        return self

    async def stop(self) -> None:
        if self._hb_task:
            self._hb_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hb_task
        await super().stop()

    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        client.state.update(seq=0, lock=asyncio.Lock(), heartbeats=False, counter=0,
                            subscribed=False)
        self.clients.add(client)
        watchdog = asyncio.ensure_future(self._deadline(client))
        try:
            async for text in ws:
                await self.on_client_message(client, text)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            self.clients.discard(client)

    async def _deadline(self, client: Client) -> None:
        await asyncio.sleep(self.subscribe_deadline)
        if not client.state["subscribed"]:
            self.deadline_kicks += 1
            await client.ws.close(1008, "no subscribe message received in time")

    # -- sending ---------------------------------------------------------------------------
    async def send(self, client: Client, channel: str, events: list, *,
                   lost: bool = False) -> None:
        """One message with the connection's next sequence_num; ``lost`` uses the number
        up without sending anything.  The lock keeps numbers in sending order."""
        async with client.state["lock"]:
            seq = client.state["seq"]
            client.state["seq"] = seq + 1
            if lost:
                return
            frame = orjson.dumps({"channel": channel, "client_id": "", "timestamp": iso_now(),
                                  "sequence_num": seq, "events": events}).decode()
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(frame)

    async def error(self, client: Client, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps({"type": "error", "message": message}).decode())

    def _row(self, side: int, price: int, size: int, when: str) -> dict:
        return {"side": "bid" if side == 0 else "offer", "event_time": when,
                "price_level": self.px(price), "new_quantity": self.sz(size)}

    def snapshot_event(self, symbol: str) -> dict:
        book = self.books[symbol]
        rows = [self._row(side, p, q, EPOCH_ZERO)
                for side in (0, 1) for p, q in book.top(side, 10**9)]
        return {"type": "snapshot", "product_id": symbol, "updates": rows}

    async def _subscriptions(self, client: Client) -> None:
        subs: dict[str, list[str]] = {}
        if client.symbols:
            subs["level2"] = sorted(client.symbols)
        if client.state["heartbeats"]:
            subs["heartbeats"] = ["heartbeats"]
        await self.send(client, "subscriptions", [{"subscriptions": subs}])

    # -- protocol --------------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind, channel = msg["type"], msg["channel"]
            products = msg.get("product_ids", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self.error(client, "malformed subscription request")
            return
        self.requests.append(msg)
        if kind not in ("subscribe", "unsubscribe") or not isinstance(channel, str):
            await self.error(client, "one channel per message: 'channel' must be a string")
            return
        unknown = [p for p in products if p not in self.books]
        if unknown:
            await self.error(client, f"Failure to subscribe: unknown product {unknown[0]}")
            return
        if kind == "subscribe":
            client.state["subscribed"] = True
        if channel == "heartbeats":
            client.state["heartbeats"] = kind == "subscribe"
            await self._subscriptions(client)
        elif channel == "level2":
            if kind == "subscribe":
                client.symbols.update(products)
                await self._subscriptions(client)
                for p in products:
                    self.snapshots_sent += 1
                    await self.send(client, "l2_data", [self.snapshot_event(p)])
            else:
                client.symbols.difference_update(products or list(client.symbols))
                await self._subscriptions(client)
        else:
            await self.error(client, f"unsupported channel {channel!r}")

    async def emit(self, symbol: str) -> None:
        """One order-flow event: the truth changes; subscribers get an update (or, when
        dropped, lose its sequence number)."""
        changes = self.books[symbol].step()
        if not changes:
            return
        lost = bool(self._drop.get(symbol))
        if lost:
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
        else:
            self.events_sent += 1
        when = iso_now()
        events = [{"type": "update", "product_id": symbol,
                   "updates": [self._row(s, p, q, when) for s, p, q in changes]}]
        for c in list(self.clients):
            if symbol in c.symbols:
                await self.send(c, "l2_data", events, lost=lost)

    async def send_crossed(self, symbol: str) -> None:
        """A bid at the best ask, which the true book never had: the book crosses."""
        self.faults.setdefault("crossed", 0)
        self.faults["crossed"] += 1
        price = self.books[symbol].best_ask()
        events = [{"type": "update", "product_id": symbol,
                   "updates": [self._row(0, price, 1, iso_now())]}]
        for c in list(self.clients):
            if symbol in c.symbols:
                await self.send(c, "l2_data", events)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                if c.state.get("heartbeats"):
                    c.state["counter"] += 1
                    self.heartbeats_sent += 1
                    await self.send(c, "heartbeats", [{
                        "current_time": iso_now(), "heartbeat_counter": c.state["counter"]}])

    # -- REST --------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.products_path, self._products)]

    async def _products(self, request: web.Request) -> web.Response:
        inc_p = self.px(1)
        inc_s = self.sz(1)
        products = [{"product_id": s, "base_currency_id": s.split("-")[0],
                     "quote_currency_id": s.split("-")[1], "quote_increment": inc_p,
                     "price_increment": inc_p, "base_increment": inc_s,
                     "base_min_size": inc_s, "base_max_size": "3400", "status": "online",
                     "product_type": "SPOT", "is_disabled": False, "trading_disabled": False}
                    for s in self.symbols]
        if request.query.get("product_type", "SPOT") != "SPOT":
            products = []
        return web.json_response({"products": products, "num_products": len(products)})
