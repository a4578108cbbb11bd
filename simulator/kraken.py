"""Simulated Kraken spot WebSocket v2 ``book`` channel and REST AssetPairs.

Speaks what the connector expects of the real venue: a ``status`` message on connect,
``subscribe`` / ``unsubscribe`` with one ack (or error) per symbol, a snapshot after
each subscription, updates with prices and quantities as JSON numbers, a CRC-32
checksum on every message, ``ping`` -> ``pong``, and ``{"channel":"heartbeat"}`` once a
second.  Each subscription has its own depth, with Kraken's scope rule: an update
carries the changes inside the subscriber's top ``depth`` levels (after the whole
event), deletes of levels that were inside it, and the levels that came into scope;
levels pushed out of scope are not deleted (the client cuts its book to the depth).

The checksum is computed here from the true book with ``zlib`` and the documented
string recipe, independently of the engine's kernel.  Prices use ``price_decimals``
(Kraken ``pair_decimals``), quantities ``size_decimals`` (``lot_decimals``), written
in shortest form like Kraken's JSON numbers; with ``exponent_small`` quantities below
1e-4 are written in exponent form (``1.234e-05``), which JSON allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections import Counter
from datetime import UTC, datetime

from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.book import SimBook, fmt
from simulator.venue import Client, Venue

DEPTHS = (10, 25, 100, 500, 1000)
V1_ASSETS = {"BTC": "XBT", "DOGE": "XDG"}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kraken_crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's checksum of fixed-precision texts (best first), as documented: for the
    top 10 asks then the top 10 bids, price then qty with '.' removed and leading zeros
    stripped; CRC-32 of the whole string, unsigned."""
    def part(levels):
        return "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0")
                       for p, q in levels[:10])
    return zlib.crc32((part(asks) + part(bids)).encode())


class KrakenVenue(Venue):
    name = "kraken"
    price_decimals = 1
    size_decimals = 8
    pad_decimals = False

    def __init__(self, symbols: list[str], *, exponent_small: bool = False,
                 heartbeat: float = 1.0, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.exponent_small = exponent_small
        self.heartbeat_interval = heartbeat
        self.requests: Counter = Counter()    # method -> requests received
        self.republished = 0                  # levels sent because they came into scope
        self._hb: asyncio.Task | None = None

    # -- numbers and checksums ------------------------------------------------------
    def num(self, v: int, decimals: int) -> str:
        """A JSON number for the fixed-point ``v``: shortest decimal text, or exponent
        form for small quantities when ``exponent_small``."""
        if self.exponent_small and 0 < v < 10 ** (decimals - 4):
            digits = str(v)
            frac = digits[1:].rstrip("0")
            return f"{digits[0]}{'.' + frac if frac else ''}e-{decimals - len(digits) + 1:02d}"
        return fmt(v, decimals, False)

    def checksum(self, symbol: str) -> int:
        b = self.books[symbol]
        pd, sd = self.price_decimals, self.size_decimals

        def texts(side: int) -> list[tuple[str, str]]:
            return [(fmt(p, pd, True), fmt(q, sd, True)) for p, q in b.top(side, 10)]
        return kraken_crc(texts(1), texts(0))

    def _levels(self, levels) -> str:
        pd, sd = self.price_decimals, self.size_decimals
        return "[" + ",".join(f'{{"price":{self.num(p, pd)},"qty":{self.num(q, sd)}}}'
                              for p, q in levels) + "]"

    def book_frame(self, kind: str, symbol: str, bids, asks, checksum: int,
                   timestamp: bool = True) -> str:
        ts = f',"timestamp":"{now_rfc3339()}"' if timestamp else ""
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
                f'"bids":{self._levels(bids)},"asks":{self._levels(asks)},'
                f'"checksum":{checksum}{ts}}}]}}')

    def snapshot_frame(self, symbol: str, depth: int) -> str:
        b = self.books[symbol]
        return self.book_frame("snapshot", symbol, b.top(0, depth), b.top(1, depth),
                               self.checksum(symbol), timestamp=False)

    # -- requests ---------------------------------------------------------------------
    @staticmethod
    def _reply(t_in: str, **fields) -> str:
        return json.dumps({**fields, "time_in": t_in, "time_out": now_rfc3339()})

    async def on_client_message(self, client: Client, text: str) -> None:
        t_in = now_rfc3339()
        try:
            msg = json.loads(text)
            method = msg["method"]
        except (ValueError, KeyError, TypeError):
            await client.ws.send(self._reply(t_in, error="Malformed request", method="error",
                                             success=False))
            return
        self.requests[method] += 1
        req_id = msg.get("req_id")
        if method == "ping":
            await client.ws.send(self._reply(t_in, method="pong", req_id=req_id))
        elif method in ("subscribe", "unsubscribe"):
            await self._book_request(client, method, msg.get("params") or {}, req_id, t_in)
        else:
            await client.ws.send(self._reply(t_in, error="Method not supported",
                                             method=method, success=False, req_id=req_id))

    async def _book_request(self, client: Client, method: str, params: dict, req_id,
                            t_in: str) -> None:
        depth = params.get("depth", 10)
        symbols = params.get("symbol")
        if params.get("channel") != "book" or depth not in DEPTHS or not isinstance(symbols,
                                                                                    list):
            await client.ws.send(self._reply(t_in, error="Invalid request", method=method,
                                             success=False, req_id=req_id))
            return
        subs = client.state.setdefault("depth", {})
        for sym in symbols:
            error = None
            if sym not in self.books:
                error = f"Currency pair not supported {sym}"
            elif method == "subscribe" and sym in client.symbols:
                error = "Already subscribed"
            elif method == "unsubscribe" and subs.get(sym) != depth:
                error = "Subscription Not Found"
            if error:
                await client.ws.send(self._reply(t_in, error=error, method=method,
                                                 success=False, symbol=sym, req_id=req_id))
                continue
            result = {"channel": "book", "depth": depth, "symbol": sym}
            if method == "unsubscribe":
                client.symbols.discard(sym)
                subs.pop(sym, None)
                await client.ws.send(self._reply(t_in, method=method, result=result,
                                                 success=True, req_id=req_id))
                continue
            snapshot = params.get("snapshot", True)
            result["snapshot"] = snapshot
            client.symbols.add(sym)
            subs[sym] = depth
            await client.ws.send(self._reply(t_in, method=method, result=result,
                                             success=True, req_id=req_id))
            if snapshot:
                await client.ws.send(self.snapshot_frame(sym, depth))

    # -- order flow ---------------------------------------------------------------------
    @staticmethod
    def scope(book: SimBook, depth: int) -> tuple[set[int], set[int]]:
        """The prices a subscriber of ``depth`` sees, (bids, asks)."""
        return ({p for p, _ in book.top(0, depth)}, {p for p, _ in book.top(1, depth)})

    async def emit(self, symbol: str) -> None:
        """One event: update the truth, then send each subscriber the part of it that
        its depth sees (or drop it, or corrupt its checksum, when asked to)."""
        book = self.books[symbol]
        subs = [(c, c.state["depth"][symbol]) for c in list(self.clients)
                if symbol in c.symbols]
        before = {d: self.scope(book, d) for _, d in subs}
        changes = book.step()
        if not changes:
            return
        if self._drop.get(symbol):
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
            return
        checksum = self.checksum(symbol)
        if self.take_corrupt(symbol):
            checksum ^= 0x2A
        self.events_sent += 1
        frames = {d: self.update_frame(symbol, changes, old, d, checksum)
                  for d, old in before.items()}
        for c, d in subs:
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(frames[d])

    def update_frame(self, symbol: str, changes, old, depth: int, checksum: int) -> str:
        """The update a subscriber of ``depth`` gets for ``changes`` (already applied to
        the truth), given the scope ``old`` it saw before them."""
        book = self.books[symbol]
        new = self.scope(book, depth)
        out: tuple[list, list] = ([], [])
        sent: tuple[set, set] = (set(), set())
        for side, price, size in changes:
            if price in new[side] or (size == 0 and price in old[side]):
                out[side].append((price, size))
                sent[side].add(price)
        for side, levels in ((0, book.bids), (1, book.asks)):
            for price in sorted(new[side] - old[side] - sent[side]):  # came into scope
                out[side].append((price, levels[price]))
                self.republished += 1
        return self.book_frame("update", symbol, out[0], out[1], checksum)

    # -- connection lifecycle -----------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        status = {"channel": "status", "type": "update", "data": [{
            "api_version": "v2", "connection_id": id(ws), "system": "online",
            "version": "2.0.10"}]}
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(status))
        await super()._handler(ws)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if time.monotonic() < self._stall_until:
                continue
            for c in list(self.clients):
                if c.symbols:
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send('{"channel":"heartbeat"}')

    async def start(self) -> KrakenVenue:
        await super().start()
        self._hb = asyncio.ensure_future(self._heartbeats())
        return self

    async def stop(self) -> None:
        if self._hb:
            self._hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hb
        await super().stop()

    # -- REST ---------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/0/public/AssetPairs", self._asset_pairs)]

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        """AssetPairs as Kraken writes it: v1 names (XBT, XDG) in ``wsname``."""
        result = {}
        for s in self.symbols:
            base, quote = (V1_ASSETS.get(a, a) for a in s.split("/"))
            result[f"X{base}Z{quote}"] = {
                "altname": base + quote, "wsname": f"{base}/{quote}", "base": "X" + base,
                "quote": "Z" + quote, "pair_decimals": self.price_decimals,
                "lot_decimals": self.size_decimals, "cost_decimals": 5,
                "tick_size": fmt(1, self.price_decimals, False), "status": "online"}
        return web.json_response({"error": [], "result": result})
