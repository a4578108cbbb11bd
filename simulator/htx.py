"""Simulated HTX spot websocket (MBP 150 levels) and instrument list, written from HTX's
documentation: gzip-compressed binary frames, server ``{"ping": n}`` every
``ping_interval`` seconds (a client that leaves two unanswered is disconnected), ``sub``
acks, ``req`` snapshots with ``seqNum``, and updates that are the diff of the top 150
levels before and after each event with ``seqNum``/``prevSeqNum`` (ids skip, as HTX's
do; no message when the top 150 did not change).  Numbers are JSON numbers written the
way HTX's Java encoder does (``9.9999E-5`` below 0.001), so clients must read them as
exact text.  Native names are lowercase (``btcusdt``)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from decimal import Decimal

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

LEVELS = 150
QUOTES = ("usdt", "btc", "eth", "husd", "usdc")


def java_number(v: int, decimals: int) -> str:
    """Fixed point -> the text Java's Double.toString gives for that value: plain with
    at least one fraction digit in [1e-3, 1e7), else ``d.dddE[-]n``."""
    x = Decimal(v).scaleb(-decimals).normalize()
    if x == 0:
        return "0.0"
    if Decimal("0.001") <= abs(x) < Decimal(10**7):
        s = format(x, "f")
        return s if "." in s else s + ".0"
    sign, digits, exp = x.as_tuple()
    mant = "".join(map(str, digits))
    e = len(digits) - 1 + exp
    frac = mant[1:] or "0"
    return f"{'-' if sign else ''}{mant[0]}.{frac}E{e}"


def split_symbol(symbol: str) -> tuple[str, str]:
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[:-len(q)], q
    return symbol[:-4], symbol[-4:]


class HTXVenue(Venue):
    name = "htx"
    price_decimals = 10       # prices around 0.0001: exponent notation on the wire
    size_decimals = 4
    pad_decimals = False

    def __init__(self, symbols: list[str], *, ping_interval: float = 5.0, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.ping_interval = ping_interval
        self.seq = {s: 100_000 + 13 * i for i, s in enumerate(self.symbols)}
        self._sent = {s: self._top(s) for s in self.symbols}   # top 150 as last published
        self.counts = {"subs": 0, "reqs": 0, "pongs": 0, "pings": 0, "errors": 0,
                       "ping_timeouts": 0}
        self._pinger: asyncio.Task | None = None

    # -- encoding ------------------------------------------------------------------------
    def _top(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        b = self.books[symbol]
        return dict(b.top(0, LEVELS)), dict(b.top(1, LEVELS))

    def _levels_json(self, levels) -> str:
        return "[" + ",".join(f"[{java_number(p, self.price_decimals)},"
                              f"{java_number(q, self.size_decimals)}]"
                              for p, q in levels) + "]"

    @staticmethod
    def _frame(text: str) -> bytes:
        return gzip.compress(text.encode(), compresslevel=1)

    def truth(self, symbol: str) -> dict:
        t = super().truth(symbol)
        return {"bids": t["bids"][:LEVELS], "asks": t["asks"][:LEVELS]}

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list:
        old_b, old_a = self._sent[symbol]
        new_b, new_a = self._top(symbol)
        sides = []
        for old, new, desc in ((old_b, new_b, True), (old_a, new_a, False)):
            diff = {p: q for p, q in new.items() if old.get(p) != q}
            diff.update({p: 0 for p in old if p not in new})
            sides.append(sorted(diff.items(), reverse=desc))
        if not sides[0] and not sides[1]:
            return []                         # top 150 unchanged: HTX sends nothing
        self._sent[symbol] = (new_b, new_a)
        prev = self.seq[symbol]
        seq = self.seq[symbol] = prev + 1 + self.rng.randrange(3)
        text = (f'{{"ch":"market.{symbol}.mbp.{LEVELS}","ts":{int(time.time() * 1000)},'
                f'"tick":{{"seqNum":{seq},"prevSeqNum":{prev},'
                f'"bids":{self._levels_json(sides[0])},"asks":{self._levels_json(sides[1])}}}}}')
        return [self._frame(text)]

    # -- websocket -----------------------------------------------------------------------
    async def _send(self, client: Client, obj: dict | str) -> None:
        text = obj if isinstance(obj, str) else orjson.dumps(obj).decode()
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(self._frame(text))

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            await self._error(client, None, "bad-request", "invalid json")
            return
        if "pong" in msg:
            self.counts["pongs"] += 1
            client.state["unanswered"] = 0
            return
        topic = msg.get("sub") or msg.get("req")
        parts = topic.split(".") if isinstance(topic, str) else []
        if len(parts) != 4 or parts[0] != "market" or parts[2] != "mbp" \
                or parts[3] != str(LEVELS) or parts[1] not in self.books:
            await self._error(client, msg.get("id"), "bad-request", f"invalid topic {topic}")
            return
        symbol = parts[1]
        now = int(time.time() * 1000)
        if "sub" in msg:
            self.counts["subs"] += 1
            await self._send(client, {"id": msg.get("id"), "status": "ok", "subbed": topic,
                                      "ts": now})
            await self.subscribe(client, symbol)
            return
        self.counts["reqs"] += 1
        bids, asks = self._sent[symbol]
        text = (f'{{"id":{orjson.dumps(msg.get("id")).decode()},"rep":"{topic}",'
                f'"status":"ok","ts":{now},"data":{{"seqNum":{self.seq[symbol]},'
                f'"bids":{self._levels_json(sorted(bids.items(), reverse=True))},'
                f'"asks":{self._levels_json(sorted(asks.items()))}}}}}')
        await self._send(client, text)

    async def _error(self, client: Client, rid, code: str, text: str) -> None:
        self.counts["errors"] += 1
        await self._send(client, {"id": rid, "status": "error", "err-code": code,
                                  "err-msg": text, "ts": int(time.time() * 1000)})

    async def send_bomb(self, inflated: int = 9 << 20) -> None:
        """A tiny gzip frame that inflates to ``inflated`` bytes."""
        bomb = gzip.compress(b"0" * inflated, compresslevel=9)
        self.faults["bombs"] = self.faults.get("bombs", 0) + 1
        for c in list(self.clients):
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(bomb)

    async def _pings(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            for c in list(self.clients):
                missed = c.state.get("unanswered", 0)
                if missed >= 2:
                    self.counts["ping_timeouts"] += 1
                    await c.ws.close(1000, "ping timeout")
                    continue
                c.state["unanswered"] = missed + 1
                self.counts["pings"] += 1
                await self._send(c, {"ping": int(time.time() * 1000)})

    async def start(self) -> HTXVenue:
        await super().start()
        self._pinger = asyncio.ensure_future(self._pings())
        return self

    async def stop(self) -> None:
        if self._pinger:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().stop()

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/common/symbols", self._symbols)]

    async def _symbols(self, request: web.Request) -> web.Response:
        data = []
        for s in self.symbols:
            base, quote = split_symbol(s)
            data.append({"base-currency": base, "quote-currency": quote,
                         "price-precision": self.price_decimals,
                         "amount-precision": self.size_decimals, "symbol": s,
                         "state": "online", "max-order-amt": 1000000,
                         "limit-order-max-order-amt": 1000000})
        return web.json_response({"status": "ok", "data": data})
