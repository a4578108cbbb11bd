"""Base of a simulated venue: a websocket server and an HTTP server on 127.0.0.1, the
true books, a paced order-flow loop, subscriptions, and fault injection.

A subclass supplies the protocol: how to answer client frames, how to encode an
update, which REST routes exist.  Faults: ``drop_next`` (the next update of a symbol
is applied to the truth but not sent: a sequence gap), ``corrupt_next_checksum``,
``send_garbage`` (a malformed frame), ``disconnect_all`` and ``stall``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from simulator.book import SimBook, fmt

log = logging.getLogger("hftbook.simulator")

HOST = "127.0.0.1"  # loopback only, always


class Client:
    """One websocket client of the venue."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.symbols: set[str] = set()
        self.state: dict = {}


class SocketFaults:
    """The faults a venue serves the same way whatever its protocol: a malformed frame
    to every client, every connection closed, a stall.  A venue lists its open client
    websockets in ``_sockets`` and checks ``_stall_until`` in its send loop."""

    faults: dict
    _stall_until: float

    def _sockets(self) -> list[ServerConnection]:
        raise NotImplementedError

    async def send_garbage(self, payload: str = '{"this is": not json') -> None:
        self.faults["garbage"] += 1
        for ws in self._sockets():
            with contextlib.suppress(ConnectionClosed):
                await ws.send(payload)

    async def disconnect_all(self) -> None:
        self.faults["disconnects"] += 1
        for ws in self._sockets():
            await ws.close(1011, "simulated outage")

    def stall(self, seconds: float) -> None:
        self.faults["stalls"] += 1
        self._stall_until = time.monotonic() + seconds


class LoopbackServers:
    """The two servers every simulated venue runs on 127.0.0.1, on ports the OS picks:
    a websocket server (one ``_handler(ws)`` call per connection, which the venue
    provides) and an HTTP server with the venue's routes."""

    _ws_server = None
    _runner: web.AppRunner | None = None
    ws_port = 0
    http_port = 0

    async def _handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    async def _start_servers(self, routes: list) -> None:
        self._ws_server = await serve(self._handler, HOST, 0, max_size=2**24)
        self.ws_port = self._ws_server.sockets[0].getsockname()[1]
        app = web.Application()
        app.add_routes(routes)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]

    async def _stop_servers(self) -> None:
        if self._ws_server:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        if self._runner:
            await self._runner.cleanup()


class Venue(SocketFaults, LoopbackServers):
    name = ""
    price_decimals = 2
    size_decimals = 3
    pad_decimals = True        # Binance-style "0.35130000" vs shortest "0.3513"

    def __init__(self, symbols: list[str], *, seed: int = 1, rate: float = 20.0,
                 activity: list[float] | None = None, tick: float = 0.005,
                 reference_price: float = 0) -> None:
        self.rng = random.Random(seed)
        self.symbols = list(symbols)
        self.start_mid = self.mid_ticks(reference_price)
        self.books = {s: SimBook(random.Random(self.rng.random()), mid=self.start_mid)
                      for s in self.symbols}
        # events per second per symbol: heavy-tailed unless given
        self.rates = {s: rate * (activity[i] if activity else 1.0)
                      for i, s in enumerate(self.symbols)}
        self.tick = tick
        self.seq = {s: 1000 for s in self.symbols}
        self.clients: set[Client] = set()
        self.paused = False
        self.events_sent = 0
        self.faults = {"dropped": 0, "corrupted": 0, "garbage": 0, "disconnects": 0,
                       "stalls": 0}
        self._drop: dict[str, int] = {}
        self._corrupt: dict[str, int] = {}
        self._stall_until = 0.0
        self._acc = dict.fromkeys(self.symbols, 0.0)
        self._flow: asyncio.Task | None = None

    # -- protocol hooks ------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        raise NotImplementedError

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        """Frames for one event (already applied to the truth)."""
        raise NotImplementedError

    def routes(self) -> list[web.RouteDef]:
        return []

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        """Frames sent right after a subscription (a websocket snapshot, say)."""
        return []

    @classmethod
    def mid_ticks(cls, reference_price: float) -> int:
        """Where books start, in ticks of the venue's price decimals.  By default 1,000,000
        ticks (each venue at its own level); with ``reference_price`` every venue quotes
        one instrument around the same price, as real ones do, so a cross-venue
        (consolidated) view of them makes sense."""
        if not reference_price:
            return 1_000_000
        ticks = round(reference_price * 10 ** cls.price_decimals)
        if not 1_000 <= ticks <= 10**15:
            raise ValueError(f"{cls.name}: reference price {reference_price} is {ticks} ticks "
                             f"at {cls.price_decimals} decimals (allowed 1e3..1e15)")
        return ticks

    # -- helpers -------------------------------------------------------------------------
    def px(self, v: int) -> str:
        return fmt(v, self.price_decimals, self.pad_decimals)

    def sz(self, v: int) -> str:
        return fmt(v, self.size_decimals, self.pad_decimals)

    def levels(self, symbol: str, side: int, n: int = 1000) -> list[list[str]]:
        return [[self.px(p), self.sz(q)] for p, q in self.books[symbol].top(side, n)]

    def truth(self, symbol: str) -> dict:
        """The true book as exact decimal strings, best first (for tests)."""
        b = self.books[symbol]
        return {"bids": [[fmt(p, self.price_decimals, False), fmt(q, self.size_decimals, False)]
                         for p, q in b.top(0, 10**9)],
                "asks": [[fmt(p, self.price_decimals, False), fmt(q, self.size_decimals, False)]
                         for p, q in b.top(1, 10**9)]}

    # -- faults --------------------------------------------------------------------------
    def drop_next(self, symbol: str, n: int = 1) -> None:
        self._drop[symbol] = self._drop.get(symbol, 0) + n

    def corrupt_next_checksum(self, symbol: str, n: int = 1) -> None:
        self._corrupt[symbol] = self._corrupt.get(symbol, 0) + n

    def take_corrupt(self, symbol: str) -> bool:
        if self._corrupt.get(symbol):
            self._corrupt[symbol] -= 1
            self.faults["corrupted"] += 1
            return True
        return False

    def _sockets(self) -> list[ServerConnection]:
        return [c.ws for c in self.clients]

    # -- servers -------------------------------------------------------------------------
    async def start(self) -> Venue:
        await self._start_servers(self.routes())
        self._flow = asyncio.ensure_future(self._flow_loop())
        log.info("%s simulator: %s  %s", self.name, self.ws_url, self.rest_url)
        return self

    async def stop(self) -> None:
        if self._flow:
            self._flow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flow
        await self._stop_servers()

    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        self.clients.add(client)
        try:
            async for text in ws:
                await self.on_client_message(client, text)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    async def subscribe(self, client: Client, symbol: str) -> None:
        client.symbols.add(symbol)
        for frame in self.after_subscribe(client, symbol):
            await client.ws.send(frame)

    async def _flow_loop(self, dt: float = 0.005) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(dt)
            now = time.monotonic()
            elapsed, last = min(now - last, 0.1), now  # real time, capped after a hiccup
            if self.paused or now < self._stall_until:
                continue
            for s in self.symbols:
                self._acc[s] += self.rates[s] * elapsed
                while self._acc[s] >= 1.0:
                    self._acc[s] -= 1.0
                    await self.emit(s)

    async def emit(self, symbol: str) -> None:
        """One order-flow event on ``symbol``: update the truth, send it (or drop it)."""
        changes = self.books[symbol].step()
        if not changes:
            return
        frames = self.encode_update(symbol, changes)
        if self._drop.get(symbol):
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
            return
        self.events_sent += 1
        for c in list(self.clients):
            if symbol in c.symbols:
                for f in frames:
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send(f)
