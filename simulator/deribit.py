"""Simulated Deribit JSON-RPC websocket (``/ws/api/v2``) and ``public/get_instruments``,
written from Deribit's documentation and the recorded session (not from the connector).

Websocket: ``public/subscribe`` / ``public/unsubscribe`` of ``book.{instrument}.100ms``
answered with the list of channels (un)subscribed; ``book.*.raw`` is refused with error
13778 as on an unauthenticated production connection.  A subscribe is followed by one
``snapshot`` notification (every level as ``["new", price, amount]``), then one
``change`` per order-flow event with ``change_id`` / ``prev_change_id`` and ``new`` /
``change`` / ``delete`` actions.  Prices and amounts are JSON numbers, amounts written
like Deribit's floats (``4714.0``).  ``public/set_heartbeat`` starts ``test_request``
heartbeats every ``heartbeat_interval`` seconds (the client's interval unless the test
overrides it); a client that has not answered the previous one with ``public/test``
is disconnected, as documented.  REST: ``/api/v2/public/get_instruments``.

Faults beyond the base venue's: ``send_bad_update`` (a change with an unparsable price,
not applied to the truth, its change_id not consumed).
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


def _number(text: str) -> str:
    """A JSON number as Deribit writes floats: at least one decimal (``4714.0``)."""
    return text if "." in text else text + ".0"


class DeribitVenue(Venue):
    name = "deribit"
    price_decimals = 1        # ticks of 0.5 (BTC-PERPETUAL); the flow uses any tenth
    size_decimals = 1
    pad_decimals = False

    def __init__(self, symbols: list[str], *, heartbeat_interval: float | None = None,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval = heartbeat_interval  # None: what the client asked for
        self.change_id = {s: 10_000_000 + 1000 * i for i, s in enumerate(self.symbols)}
        self.counts = {"subscribes": 0, "unsubscribes": 0, "snapshots": 0,
                       "test_requests": 0, "tests": 0, "heartbeat_kills": 0, "errors": 0,
                       "set_heartbeats": 0}
        self.faults.update(bad_updates=0)
        self._heartbeats: set[asyncio.Task] = set()
        self._levels = {s: (set(b.bids), set(b.asks)) for s, b in self.books.items()}

    def sz(self, v: int) -> str:
        return _number(fmt(v, self.size_decimals, False))

    def px(self, v: int) -> str:
        return _number(fmt(v, self.price_decimals, False))

    # -- websocket -----------------------------------------------------------------------
    async def _answer(self, client: Client, rid, result=None, error=None) -> None:
        body = {"jsonrpc": "2.0", "id": rid, "usIn": 0, "usOut": 0, "usDiff": 0,
                "testnet": False}
        if error is not None:
            self.counts["errors"] += 1
            body["error"] = error
        else:
            body["result"] = result
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps(body).decode())

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, rid = msg["method"], msg.get("id")
            params = msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._answer(client, None, error={"code": -32700, "message": "parse_error"})
            return
        if method in ("public/subscribe", "public/unsubscribe"):
            await self._subscription(client, rid, method, params)
        elif method == "public/set_heartbeat":
            self.counts["set_heartbeats"] += 1
            interval = params.get("interval")
            if not isinstance(interval, (int, float)) or interval < 10:
                await self._answer(client, rid, error={"code": -32602,
                                                       "message": "Invalid params"})
                return
            client.state["answered"] = True
            period = self.heartbeat_interval or float(interval)
            t = asyncio.ensure_future(self._heartbeat_loop(client, period))
            self._heartbeats.add(t)
            t.add_done_callback(self._heartbeats.discard)
            await self._answer(client, rid, "ok")
        elif method == "public/test":
            self.counts["tests"] += 1
            client.state["answered"] = True
            await self._answer(client, rid, {"version": "1.2.26"})
        else:
            await self._answer(client, rid, error={"code": -32601,
                                                   "message": "Method not found"})

    async def _subscription(self, client: Client, rid, method: str, params: dict) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list):
            await self._answer(client, rid, error={"code": -32602, "message": "Invalid params"})
            return
        subscribe = method == "public/subscribe"
        self.counts["subscribes" if subscribe else "unsubscribes"] += 1
        if subscribe and any(isinstance(c, str) and c.endswith(".raw") for c in channels):
            await self._answer(client, rid, error={
                "code": 13778, "message": "raw_subscriptions_not_available_for_unauthorized"})
            return
        done, symbols = [], []
        for c in channels:
            parts = c.split(".") if isinstance(c, str) else []
            if len(parts) == 3 and parts[0] == "book" and parts[2] == "100ms" \
                    and parts[1] in self.books:
                done.append(c)
                symbols.append(parts[1])
        await self._answer(client, rid, done)
        for s in symbols:
            if subscribe:
                await self.subscribe(client, s)
            else:
                client.symbols.discard(s)

    def _notification(self, symbol: str, body: str) -> str:
        return ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.'
                f'{symbol}.100ms","data":{body}}}}}')

    def _rows(self, rows: list[tuple[str, int, int]]) -> str:
        return ",".join(f'["{a}",{self.px(p)},{self.sz(q)}]' for a, p, q in rows)

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        book = self.books[symbol]
        bids = self._rows([("new", p, q) for p, q in book.top(0, 10**9)])
        asks = self._rows([("new", p, q) for p, q in book.top(1, 10**9)])
        ts = int(time.time() * 1000)
        return [self._notification(symbol, (
            f'{{"type":"snapshot","timestamp":{ts},"instrument_name":"{symbol}",'
            f'"change_id":{self.change_id[symbol]},"bids":[{bids}],"asks":[{asks}]}}'))]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        known = self._levels[symbol]      # the prices each side held before this event
        rows: tuple[list, list] = ([], [])
        for side, p, q in changes:
            if q == 0:
                rows[side].append(("delete", p, 0))
                known[side].discard(p)
            else:
                rows[side].append(("change" if p in known[side] else "new", p, q))
                known[side].add(p)
        prev = self.change_id[symbol]
        self.change_id[symbol] = prev + 1 + len(changes)
        ts = int(time.time() * 1000)
        return [self._notification(symbol, (
            f'{{"type":"change","timestamp":{ts},"prev_change_id":{prev},'
            f'"instrument_name":"{symbol}","change_id":{self.change_id[symbol]},'
            f'"bids":[{self._rows(rows[0])}],"asks":[{self._rows(rows[1])}]}}'))]

    # -- faults --------------------------------------------------------------------------
    async def send_bad_update(self, symbol: str) -> None:
        self.faults["bad_updates"] += 1
        prev = self.change_id[symbol]
        frame = self._notification(symbol, (
            f'{{"type":"change","timestamp":0,"prev_change_id":{prev},'
            f'"instrument_name":"{symbol}","change_id":{prev + 1},'
            f'"bids":[["new","12..5",1.0]],"asks":[]}}'))
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- heartbeats ----------------------------------------------------------------------
    async def _heartbeat_loop(self, client: Client, period: float) -> None:
        frame = orjson.dumps({"jsonrpc": "2.0", "method": "heartbeat",
                              "params": {"type": "test_request"}}).decode()
        while client in self.clients:
            await asyncio.sleep(period)
            if time.monotonic() < self._stall_until:
                continue
            if not client.state.get("answered", True):
                self.counts["heartbeat_kills"] += 1   # documented: closed at once
                with contextlib.suppress(ConnectionClosed):
                    await client.ws.close(1000, "test_request not answered")
                return
            client.state["answered"] = False
            self.counts["test_requests"] += 1
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(frame)

    async def stop(self) -> None:
        for t in list(self._heartbeats):
            t.cancel()
        for t in list(self._heartbeats):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await super().stop()

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v2/public/get_instruments", self._instruments)]

    async def _instruments(self, request: web.Request) -> web.Response:
        rows = []
        for s in self.symbols:
            head, _, tail = s.partition("-")
            base, _, quote = head.partition("_")
            perp = tail == "PERPETUAL"
            rows.append(
                f'{{"tick_size":{_number(fmt(1, self.price_decimals, False))},'
                f'"min_trade_amount":{_number(fmt(1, self.size_decimals, False))},'
                f'"contract_size":10,"kind":"future","is_active":true,'
                f'"instrument_name":"{s}","base_currency":"{base}",'
                f'"quote_currency":"{quote or "USD"}",'
                f'"settlement_period":"{"perpetual" if perp else "month"}",'
                f'"expiration_timestamp":32503680000000}}')
        body = (f'{{"jsonrpc":"2.0","result":[{",".join(rows)}],"usIn":0,"usOut":0,'
                f'"usDiff":0,"testnet":false}}')
        return web.Response(text=body, content_type="application/json")
