"""Simulated Crypto.com Exchange v1 market websocket and ``public/get-instruments``,
written from Crypto.com's documentation (not from the connector).

Websocket: ``subscribe`` / ``unsubscribe`` of ``book.{instrument}.50`` with
``book_subscription_type`` ``SNAPSHOT_AND_UPDATE`` (anything else is refused with a
non-zero ``code``).  Requests sent less than ``connect_wait`` seconds after the
connection opened are refused too (the documented advice is to wait one second) and
counted in ``counts["early"]``.  A subscription gets a ``book`` snapshot of the top 50
levels per side carrying ``u``; then every order-flow event that changes the top-50
window is one ``book.update`` with ``u`` (advanced by a small random step) and ``pu``
(the previous ``u``).  Levels are ``[price, size, num_orders]`` strings; a level that
leaves the window is sent with size ``"0"``.  ``public/heartbeat`` every
``heartbeat_interval`` seconds; a client that has not answered with
``public/respond-heartbeat`` (same id) by the next heartbeat is disconnected.

REST: ``/exchange/v1/public/get-instruments``; names with ``-PERP`` are perpetuals,
the rest ``CCY_PAIR`` spot pairs such as ``BTC_USD``.

Faults beyond the base venue's: ``send_bad_update`` (a chained ``book.update`` whose
price does not parse; not applied to the truth).  ``drop_next`` yields a ``pu`` that
does not chain: a gap.
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

DEPTH = 50
SUBSCRIPTION_TYPE = "SNAPSHOT_AND_UPDATE"
ERR_BAD_REQUEST = 40001       # code used for refused requests (value not from the docs)
ERR_TOO_EARLY = 42901


class CryptoComVenue(Venue):
    name = "cryptocom"
    price_decimals = 2
    size_decimals = 4
    pad_decimals = True           # "43755.46", "0.1000"

    def __init__(self, symbols: list[str], *, heartbeat_interval: float = 30.0,
                 connect_wait: float = 1.0, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval = heartbeat_interval
        self.connect_wait = connect_wait
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "heartbeats": 0,
                       "heartbeat_answers": 0, "heartbeat_timeouts": 0, "rejected": 0,
                       "early": 0}
        self.faults.update(bad_updates=0)
        self._opened: dict[int, float] = {}           # id(ws) -> connect time
        self._view = {s: self._window(s) for s in self.symbols}   # what was published
        self._heartbeat: asyncio.Task | None = None
        self._hb_id = 0

    # -- the published top-50 window -------------------------------------------------------
    def _window(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        b = self.books[symbol]
        return dict(b.top(0, DEPTH)), dict(b.top(1, DEPTH))

    def level(self, p: int, q: int) -> list[str]:
        return [self.px(p), self.sz(q), str(1 + q % 7) if q else "0"]

    def truth(self, symbol: str) -> dict:
        """The true book as the venue publishes it: the best 50 levels per side."""
        t = super().truth(symbol)
        return {"bids": t["bids"][:DEPTH], "asks": t["asks"][:DEPTH]}

    def _push(self, symbol: str, channel: str, entry: dict) -> str:
        return orjson.dumps({"id": -1, "method": "subscribe", "code": 0, "result": {
            "instrument_name": symbol, "subscription": f"book.{symbol}.{DEPTH}",
            "channel": channel, "depth": DEPTH, "data": [entry]}}).decode()

    # -- websocket -----------------------------------------------------------------------
    async def _handler(self, ws) -> None:
        self._opened[id(ws)] = time.monotonic()
        try:
            await super()._handler(ws)
        finally:
            self._opened.pop(id(ws), None)

    async def _reply(self, client: Client, rid, method: str, code: int = 0,
                     message: str = "") -> None:
        body = {"id": rid, "method": method, "code": code}
        if message:
            body["message"] = message
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps(body).decode())

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            rid, method = msg["id"], msg["method"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        if method == "public/respond-heartbeat":
            if rid == client.state.get("heartbeat"):
                client.state.pop("heartbeat")
                self.counts["heartbeat_answers"] += 1
            return
        if time.monotonic() - self._opened.get(id(client.ws), 0.0) < self.connect_wait:
            self.counts["early"] += 1
            await self._reply(client, rid, method, ERR_TOO_EARLY, "TOO_MANY_REQUESTS")
            return
        params = msg.get("params") or {}
        channels = params.get("channels")
        if method not in ("subscribe", "unsubscribe") or not isinstance(channels, list):
            self.counts["rejected"] += 1
            await self._reply(client, rid, method, ERR_BAD_REQUEST, "BAD_REQUEST")
            return
        symbols = []
        for ch in channels:
            parts = str(ch).split(".")
            if len(parts) != 3 or parts[0] != "book" or parts[2] != str(DEPTH) \
                    or parts[1] not in self.books:
                self.counts["rejected"] += 1
                await self._reply(client, rid, method, ERR_BAD_REQUEST, f"bad channel {ch}")
                return
            symbols.append(parts[1])
        if method == "subscribe" and (params.get("book_subscription_type") != SUBSCRIPTION_TYPE
                                      or params.get("book_update_frequency") != 10):
            self.counts["rejected"] += 1
            await self._reply(client, rid, method, ERR_BAD_REQUEST, "bad subscription type")
            return
        self.counts[method + "s"] += 1
        await self._reply(client, rid, method)
        for s in symbols:
            if method == "subscribe":
                await self.subscribe(client, s)
            else:
                client.symbols.discard(s)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        bids, asks = self._view[symbol]
        entry = {"bids": [self.level(p, q) for p, q in bids.items()],
                 "asks": [self.level(p, q) for p, q in asks.items()],
                 "t": int(time.time() * 1000), "tt": int(time.time() * 1000),
                 "u": self.seq[symbol], "cs": 0}
        return [self._push(symbol, "book", entry)]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        old = self._view[symbol]
        new = self._window(symbol)
        self._view[symbol] = new
        sides = []
        for o, n in zip(old, new, strict=True):
            rows = [self.level(p, q) for p, q in n.items() if o.get(p) != q]
            rows += [self.level(p, 0) for p in o if p not in n]
            sides.append(rows)
        if not sides[0] and not sides[1]:
            return []                          # nothing changed inside the window
        pu = self.seq[symbol]
        self.seq[symbol] = u = pu + self.rng.randint(1, 9)
        now = int(time.time() * 1000)
        entry = {"update": {"bids": sides[0], "asks": sides[1]}, "t": now, "tt": now,
                 "u": u, "pu": pu, "cs": 0}
        return [self._push(symbol, "book.update", entry)]

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        pu = self.seq[symbol]
        frame = self._push(symbol, "book.update", {
            "update": {"bids": [["12..5", "1.0000", "1"]], "asks": []},
            "t": int(time.time() * 1000), "u": pu + 1, "pu": pu, "cs": 0})
        self.seq[symbol] = pu + 1
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- heartbeats ----------------------------------------------------------------------
    async def start(self) -> CryptoComVenue:
        await super().start()
        self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())
        return self

    async def stop(self) -> None:
        if self._heartbeat:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await super().stop()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                if "heartbeat" in c.state:          # the last one was never answered
                    self.counts["heartbeat_timeouts"] += 1
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.close(1000, "heartbeat not answered")
                    continue
                self._hb_id += 1
                c.state["heartbeat"] = self._hb_id
                self.counts["heartbeats"] += 1
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(orjson.dumps({"id": self._hb_id,
                                                  "method": "public/heartbeat",
                                                  "code": 0}).decode())

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        # both with and without the API's base path: a client may be given either root
        return [web.get("/exchange/v1/public/get-instruments", self._instruments),
                web.get("/public/get-instruments", self._instruments)]

    def _instrument(self, native: str) -> dict:
        tick = fmt(1, self.price_decimals)
        lot = fmt(1, self.size_decimals)
        if native.endswith("-PERP"):
            pair = native.removesuffix("-PERP")
            base, quote = pair[:-3], pair[-3:]
            kind = "PERPETUAL_SWAP"
        else:
            base, _, quote = native.partition("_")
            kind = "CCY_PAIR"
        return {"symbol": native, "inst_type": kind, "display_name": native,
                "base_ccy": base, "quote_ccy": quote,
                "quote_decimals": self.price_decimals,
                "quantity_decimals": self.size_decimals,
                "price_tick_size": tick, "qty_tick_size": lot, "max_leverage": "50",
                "tradable": True, "expiry_timestamp_ms": 0}

    async def _instruments(self, request: web.Request) -> web.Response:
        data = [self._instrument(s) for s in self.symbols]
        data.append({"symbol": "BTCUSD-OPTION-X", "inst_type": "OPTION", "base_ccy": "BTC",
                     "quote_ccy": "USD", "price_tick_size": "0.1", "qty_tick_size": "0.01",
                     "tradable": True})
        return web.json_response({"id": 1, "method": "public/get-instruments", "code": 0,
                                  "result": {"data": data}})
