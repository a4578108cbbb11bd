"""The websocket lifecycle every connector shares: connect, subscribe in allowed batches,
read, app-level pings, REST snapshots, health checks, reconnect with jittered
exponential backoff, clean shutdown.  All exchange knowledge stays in the Protocol."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import aiohttp
import websockets

from connectors.base import Protocol, RestRequest

log = logging.getLogger("hftbook.connectors")

# Snapshot back-off: a book whose snapshot is asked for again and again (every snapshot
# fails its checks, or is larger than the book's queue) must not turn into a storm of
# REST calls that gets the IP banned.  Asks for one symbol closer together than
# REPEAT_WINDOW_S are repeats; the first FREE_REPEATS go out at once, later ones wait
# SNAPSHOT_BACKOFF_S, doubling up to SNAPSHOT_BACKOFF_MAX_S.
REPEAT_WINDOW_S = 30.0
FREE_REPEATS = 1
SNAPSHOT_BACKOFF_S = 0.5
SNAPSHOT_BACKOFF_MAX_S = 30.0


class Connection:
    """One websocket connection carrying ``protocol``'s symbols."""

    def __init__(self, protocol: Protocol, symbols: list[str], http: aiohttp.ClientSession,
                 *, backoff: float = 0.5, max_backoff: float = 30.0,
                 idle_timeout: float = 30.0, health_interval: float = 0.05,
                 rest_retries: int = 5, recorder=None, conn_id: int = 0) -> None:
        self.protocol = protocol
        self.recorder = recorder          # connectors.recording.RecordingWriter, or None
        self.conn_id = conn_id
        self.symbols = symbols
        self.http = http
        self.backoff0 = backoff
        self.max_backoff = max_backoff
        self.idle_timeout = idle_timeout   # no frame for this long: the link is dead
        self.health_interval = health_interval
        self.rest_retries = rest_retries
        self.connected = asyncio.Event()
        self.frames = 0
        self._ws = None
        self._tasks: set[asyncio.Task] = set()
        self._asked: dict[str, tuple[int, float]] = {}  # symbol -> (repeats, last ask)

    @property
    def name(self) -> str:
        return f"{self.protocol.exchange}[{len(self.symbols)} symbols]"

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connection up until ``stop`` is set."""
        backoff = self.backoff0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(stop)
            except (TimeoutError, OSError, websockets.WebSocketException,
                    aiohttp.ClientError) as exc:
                log.warning("%s: connection lost: %s: %s", self.name, type(exc).__name__, exc)
            finally:
                self.connected.clear()
                self._ws = None
                if self.protocol.targets:
                    self.protocol.on_disconnect()
                for t in list(self._tasks):
                    t.cancel()
            if stop.is_set():
                break
            if time.monotonic() - started > 60:
                backoff = self.backoff0  # it was up for a while: start over
            delay = backoff * random.uniform(0.5, 1.5)
            log.info("%s: reconnecting in %.2fs", self.name, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff)

    async def _session(self, stop: asyncio.Event) -> None:
        p = self.protocol
        for req in p.pre_connect_requests():
            async with self.http.request(req.method, req.url,
                                         timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.read()
                if r.status != 200:
                    raise OSError(f"{req.method} {req.url} -> HTTP {r.status}")
            p.handle_rest(req, body, time.monotonic_ns())
        async with websockets.connect(p.ws_url, max_size=2**24, open_timeout=10,
                                      ping_interval=20, ping_timeout=20,
                                      close_timeout=2, compression="deflate") as ws:
            self._ws = ws
            if self.recorder is not None:
                self.recorder.connect(self.conn_id, p.ws_url, time.monotonic_ns())
            p.reconnect_requested = False
            p.on_connect()
            for i, msg in enumerate(p.subscribe_messages(self.symbols)):
                if i and p.subscribe_interval:
                    await asyncio.sleep(p.subscribe_interval)
                await ws.send(msg)
            self.connected.set()
            self._spawn(self._health(ws))
            if p.ping_interval:
                self._spawn(self._pinger(ws, p.ping_interval))
            await self._flush(ws)
            stop_wait = asyncio.ensure_future(stop.wait())
            try:
                while not stop.is_set():
                    recv = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait({recv, stop_wait}, timeout=self.idle_timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if recv not in done:
                        recv.cancel()
                        if stop.is_set():
                            break
                        log.warning("%s: no data for %.0fs: reconnecting", self.name,
                                    self.idle_timeout)
                        return
                    frame = recv.result()
                    self.frames += 1
                    now = time.monotonic_ns()
                    if self.recorder is not None:
                        self.recorder.ws(self.conn_id, now, frame)
                    p.handle_frame(frame, now)
                    p.flush()
                    await self._flush(ws)
                    if p.reconnect_requested:
                        log.info("%s: venue asked for a reconnect", self.name)
                        return
            finally:
                stop_wait.cancel()

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _flush(self, ws) -> None:
        p = self.protocol
        while p.outbox:  # resubscribes etc.: paced like subscriptions (venue rate limits)
            await ws.send(p.outbox.popleft())
            if p.outbox and p.subscribe_interval:
                await asyncio.sleep(p.subscribe_interval)
        while p.rest_requests:
            self._spawn(self._fetch(p.rest_requests.popleft()))

    def snapshot_delay(self, symbol: str, now: float) -> tuple[float, int]:
        """How long to wait before fetching ``symbol``'s snapshot asked for at ``now``,
        and how many times in a row it has been asked for (0: the first time)."""
        repeats, last = self._asked.get(symbol, (-1, float("-inf")))
        repeats = repeats + 1 if now - last < REPEAT_WINDOW_S else 0
        over = repeats - FREE_REPEATS
        delay = 0.0 if over <= 0 else min(SNAPSHOT_BACKOFF_S * 2 ** (over - 1),
                                          SNAPSHOT_BACKOFF_MAX_S)
        self._asked[symbol] = (repeats, now + delay)
        return delay, repeats

    async def _fetch(self, req: RestRequest) -> None:
        if req.kind == "snapshot":
            wait, repeats = self.snapshot_delay(req.symbol, time.monotonic())
            if wait > 0:
                log.warning("%s: snapshot for %s asked for %d times in a row: fetching it "
                            "in %.1fs", self.name, req.symbol, repeats + 1, wait)
                await asyncio.sleep(wait)
        delay = 0.2
        for attempt in range(self.rest_retries):
            try:
                async with self.http.get(req.url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    body = await r.read()
                    if r.status == 200:
                        now = time.monotonic_ns()
                        if self.recorder is not None:
                            self.recorder.rest(req.symbol, req.url, now, body)
                        self.protocol.handle_rest(req, body, now)
                        if self._ws is not None:
                            await self._flush(self._ws)
                        return
                    log.warning("%s: GET %s -> HTTP %d", self.name, req.url, r.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("%s: GET %s failed: %s", self.name, req.url, exc)
            await asyncio.sleep(delay * (1 + attempt))
        log.error("%s: snapshot for %s unavailable after %d tries: book stays stale",
                  self.name, req.symbol, self.rest_retries)
        self.protocol.reset_symbol(req.symbol)

    async def _health(self, ws) -> None:
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(self.health_interval)
            self.protocol.check_health()
            if self.recorder is not None and time.monotonic() - last_flush > 1.0:
                self.recorder.flush()  # a crash loses at most about a second of frames
                last_flush = time.monotonic()
            await self._flush(ws)
            if self.protocol.reconnect_requested:  # asked for while the link is quiet
                log.info("%s: venue asked for a reconnect", self.name)
                await ws.close()
                return

    async def _pinger(self, ws, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            msg = self.protocol.ping_message()
            if msg is not None:
                await ws.send(msg)


def run_async(coro):
    """``asyncio.run`` on uvloop where it is installed (faster loop), else the default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
