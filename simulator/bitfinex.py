"""Simulated Bitfinex websocket v2 (public ``book`` channel, P0) and the pair-list REST
endpoints, written from Bitfinex's documentation and the recorded session (not from
the connector).

Websocket: ``info`` on connect; ``conf`` flags acknowledged (SEQ_ALL 65536 appends a
per-connection sequence number to every array message, CHECKSUM 131072 sends
``[chanId, "cs", crc]`` after each book event); ``subscribe`` answered with
``subscribed`` (a new chanId each time) and a snapshot ``[chanId, [[price, count,
amount], ...]]``; one ``[chanId, [price, count, amount]]`` per changed level (amount < 0
for asks, count 0 deletes); ``unsubscribe`` by chanId; ``[chanId, "hb"]`` heartbeats.
Numbers are JSON numbers printed the JavaScript way (shortest form).  The books never
hold more than ``len`` (100) levels per side, so no window-edge messages are needed.
REST: ``/v2/conf/pub:list:pair:exchange`` and ``/v2/conf/pub:list:pair:future``.

Faults beyond the base venue's: ``drop_next`` loses updates on the wire while the
sequence numbers count them (a sequence gap); ``corrupt_next_checksum``;
``lose_unsequenced`` changes the truth without telling anyone or counting a sequence
number (only the checksum can show it); ``send_bad_update`` (unparsable price).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib

from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

SEQ_ALL = 65536
CHECKSUM = 131072
WINDOW = 100


def _js(v: int, decimals: int) -> str:
    """The venue prints numbers as JavaScript does (shortest; exponent below 1e-6)."""
    from decimal import Decimal
    d = Decimal(v).scaleb(-decimals)
    if v and abs(d) < Decimal("1e-6"):
        m, e = f"{d.normalize():e}".split("e")
        return f"{m}e{int(e)}"
    return fmt(v, decimals, False)


class BitfinexVenue(Venue):
    name = "bitfinex"
    price_decimals = 1
    size_decimals = 4
    pad_decimals = False

    def __init__(self, symbols: list[str], *, heartbeat_interval: float = 1.0,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        for b in self.books.values():
            b.max_levels = WINDOW
        self.heartbeat_interval = heartbeat_interval
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0, "heartbeats": 0,
                       "checksums": 0, "confs": 0, "rejected": 0}
        self.faults.update(silent=0, bad_updates=0)
        self._next_chan = 17
        self._heartbeat: asyncio.Task | None = None

    # -- numbers -------------------------------------------------------------------------
    def row(self, side: int, p: int, q: int) -> str:
        count = 0 if q == 0 else 1 + q % 3
        amount = (1 if q == 0 else q) * (1 if side == 0 else -1)
        return f"[{_js(p, self.price_decimals)},{count},{_js(amount, self.size_decimals)}]"

    def checksum(self, symbol: str) -> int:
        b = self.books[symbol]
        bids, asks = b.top(0, 25), b.top(1, 25)
        parts = []
        for i in range(25):
            if i < len(bids):
                parts += [_js(bids[i][0], self.price_decimals),
                          _js(bids[i][1], self.size_decimals)]
            if i < len(asks):
                parts += [_js(asks[i][0], self.price_decimals),
                          _js(-asks[i][1], self.size_decimals)]
        crc = zlib.crc32(":".join(parts).encode())
        return crc - (1 << 32) if crc & 0x80000000 else crc

    # -- per-client framing --------------------------------------------------------------
    def _frame(self, client: Client, body: str) -> str:
        """``[chanId, body(, seq)]`` for this client; body already JSON, no brackets."""
        st = client.state
        if st.get("flags", 0) & SEQ_ALL:
            st["seq"] = st.get("seq", 0) + 1
            return f"[{body},{st['seq']}]"
        return f"[{body}]"

    async def _send(self, client: Client, frame: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(frame)

    async def _handler(self, ws) -> None:
        await ws.send(json.dumps({"event": "info", "version": 2, "serverId": "sim",
                                  "platform": {"status": 1}}))
        await super()._handler(ws)

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = json.loads(text)
            event = msg["event"]
        except (ValueError, KeyError, TypeError):
            self.counts["rejected"] += 1
            return
        chans = client.state.setdefault("chans", {})     # symbol -> chanId
        if event == "conf":
            self.counts["confs"] += 1
            client.state["flags"] = int(msg.get("flags", 0))
            await self._send(client, json.dumps({"event": "conf", "status": "OK",
                                                 "flags": client.state["flags"]}))
        elif event == "subscribe":
            sym = msg.get("symbol")
            if msg.get("channel") != "book" or sym not in self.books or \
                    msg.get("prec", "P0") != "P0":
                await self._send(client, json.dumps({"event": "error", "msg": "bad symbol",
                                                     "code": 10001}))
                return
            if sym in chans:
                await self._send(client, json.dumps({"event": "error", "code": 10301,
                                                     "msg": "subscribe: dup"}))
                return
            self.counts["subscribes"] += 1
            self._next_chan += 1
            chans[sym] = self._next_chan
            await self._send(client, json.dumps({
                "event": "subscribed", "channel": "book", "chanId": self._next_chan,
                "symbol": sym, "prec": "P0", "freq": "F0", "len": str(WINDOW),
                "pair": sym[1:]}))
            client.symbols.add(sym)
            self.counts["snapshots"] += 1
            b = self.books[sym]
            rows = [self.row(0, p, q) for p, q in b.top(0, WINDOW)]
            rows += [self.row(1, p, q) for p, q in b.top(1, WINDOW)]
            await self._send(client, self._frame(client, f"{chans[sym]},[{','.join(rows)}]"))
        elif event == "unsubscribe":
            chan = msg.get("chanId")
            sym = next((s for s, c in chans.items() if c == chan), None)
            if sym is None:
                await self._send(client, json.dumps({"event": "error", "code": 10400,
                                                     "msg": "unsubscribe: invalid"}))
                return
            self.counts["unsubscribes"] += 1
            del chans[sym]
            client.symbols.discard(sym)
            await self._send(client, json.dumps({"event": "unsubscribed", "status": "OK",
                                                 "chanId": chan}))
        elif event == "ping":
            await self._send(client, json.dumps({"event": "pong", "cid": msg.get("cid")}))
        else:
            self.counts["rejected"] += 1

    # -- order flow ----------------------------------------------------------------------
    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        return [self.row(side, p, q) for side, p, q in changes]   # framed per client

    async def emit(self, symbol: str) -> None:
        changes = self.books[symbol].step()
        if not changes:
            return
        rows = self.encode_update(symbol, changes)
        drop = bool(self._drop.get(symbol))
        if drop:
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
        else:
            self.events_sent += 1
        corrupt = self.take_corrupt(symbol)
        ck = self.checksum(symbol)
        for c in list(self.clients):
            chan = c.state.get("chans", {}).get(symbol)
            if chan is None:
                continue
            for r in rows:
                frame = self._frame(c, f"{chan},{r}")   # the sequence counts it anyway
                if not drop:
                    await self._send(c, frame)
            if c.state.get("flags", 0) & CHECKSUM:
                self.counts["checksums"] += 1
                await self._send(c, self._frame(c, f'{chan},"cs",{ck + 1 if corrupt else ck}'))

    async def lose_unsequenced(self, symbol: str) -> None:
        """A bid's size changes and nobody is told: no message, no sequence number; only
        the next checksum disagrees.  The 10th level (inside the checksummed top 25)
        is rarely touched by the flow, so the next update seldom overwrites the loss
        before a checksum sees it."""
        book = self.books[symbol]
        price = book.top(0, 10)[-1][0]
        book.bids[price] += 1
        self.faults["silent"] += 1

    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        for c in list(self.clients):
            chan = c.state.get("chans", {}).get(symbol)
            if chan is not None:
                await self._send(c, self._frame(c, f'{chan},["12..5",1,1]'))

    # -- heartbeats ----------------------------------------------------------------------
    async def start(self) -> BitfinexVenue:
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
                for chan in list(c.state.get("chans", {}).values()):
                    self.counts["heartbeats"] += 1
                    await self._send(c, self._frame(c, f'{chan},"hb"'))

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/conf/pub:list:pair:exchange", self._pairs),
                web.get("/v2/conf/pub:list:pair:future", self._futures)]

    async def _pairs(self, request: web.Request) -> web.Response:
        return web.json_response([[s[1:] for s in self.symbols]])

    async def _futures(self, request: web.Request) -> web.Response:
        return web.json_response([["BTCF0:USTF0"]])
