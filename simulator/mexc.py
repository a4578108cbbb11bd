"""Simulated MEXC spot v3: ``SUBSCRIPTION`` / ``UNSUBSCRIPTION`` / ``PING`` as JSON text,
the aggregated diff-depth stream as binary protobuf ``PushDataV3ApiWrapper`` frames with
``fromVersion``/``toVersion``, REST ``/api/v3/depth`` (``lastUpdateId``) and
``/api/v3/exchangeInfo``.  At most 30 subscriptions per connection, as documented.

Extra faults: ``send_bad_depth`` (a depth frame for one symbol whose body is cut short)
and ``send_bad_binary`` (a binary frame that is no protobuf message at all)."""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

STREAM_PREFIX = "spot@public.aggre.depth.v3.api.pb@"
MAX_SUBSCRIPTIONS = 30
FIRST_VERSION = 10_589_632_000      # versions in the size the docs show


# -- a small protobuf encoder (the wire format, for the frames this venue sends) ------
def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


def encode_depths(bids: list[tuple[str, str]], asks: list[tuple[str, str]], event: str,
                  frm: int, to: int) -> bytes:
    """A PublicAggreDepthsV3Api message."""
    out = bytearray()
    for p, q in asks:
        out += field_bytes(1, field_bytes(1, p) + field_bytes(2, q))
    for p, q in bids:
        out += field_bytes(2, field_bytes(1, p) + field_bytes(2, q))
    out += field_bytes(3, event) + field_bytes(4, str(frm)) + field_bytes(5, str(to))
    return bytes(out)


def encode_wrapper(channel: str, symbol: str, send_ms: int, depths: bytes) -> bytes:
    """A PushDataV3ApiWrapper carrying ``publicAggreDepths`` (field 313)."""
    return (field_bytes(1, channel) + field_bytes(313, depths) + field_bytes(3, symbol)
            + field_varint(6, send_ms))


class MEXCVenue(Venue):
    name = "mexc"
    price_decimals = 2
    size_decimals = 8
    pad_decimals = True             # the docs' example writes "0.00000000"
    interval = "100ms"

    def __init__(self, symbols: list[str], **kw) -> None:
        super().__init__(symbols, **kw)
        self.seq = dict.fromkeys(self.symbols, FIRST_VERSION)
        self.counts = {"pings": 0, "subscribes": 0, "unsubscribes": 0, "rest_books": 0,
                       "rejected": 0}

    def channel(self, symbol: str) -> str:
        return f"{STREAM_PREFIX}{self.interval}@{symbol}"

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, params = msg["method"], msg.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await client.ws.send(orjson.dumps({"id": 0, "code": 1,
                                               "msg": "invalid request"}).decode())
            return
        if method == "PING":
            self.counts["pings"] += 1
            await client.ws.send('{"id":0,"code":0,"msg":"PONG"}')
            return
        if method not in ("SUBSCRIPTION", "UNSUBSCRIPTION") or not isinstance(params, list):
            await client.ws.send(orjson.dumps({"id": 0, "code": 1,
                                               "msg": f"unknown method {method}"}).decode())
            return
        syms = []
        for stream in params:
            sym = stream.rsplit("@", 1)[-1] if isinstance(stream, str) else None
            if sym not in self.books or stream != self.channel(sym):
                self.counts["rejected"] += 1
                await client.ws.send(orjson.dumps({"id": 0, "code": 1,
                                                   "msg": f"Not Subscribed: {stream}"}).decode())
                return
            syms.append(sym)
        if method == "SUBSCRIPTION":
            if len(client.symbols | set(syms)) > MAX_SUBSCRIPTIONS:
                self.counts["rejected"] += 1
                await client.ws.send(orjson.dumps({
                    "id": 0, "code": 1,
                    "msg": "Not Subscribed: too many subscriptions"}).decode())
                return
            self.counts["subscribes"] += len(syms)
            await client.ws.send(orjson.dumps({"id": 0, "code": 0,
                                               "msg": ",".join(params)}).decode())
            for s in syms:
                await self.subscribe(client, s)
        else:
            self.counts["unsubscribes"] += len(syms)
            client.symbols.difference_update(syms)
            await client.ws.send(orjson.dumps({"id": 0, "code": 0,
                                               "msg": ",".join(params)}).decode())

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[bytes]:
        prev = self.seq[symbol]
        frm, to = prev + 1, prev + len(changes)      # one version per level change
        self.seq[symbol] = to
        depths = encode_depths([(self.px(p), self.sz(q)) for side, p, q in changes if side == 0],
                               [(self.px(p), self.sz(q)) for side, p, q in changes if side == 1],
                               STREAM_PREFIX + self.interval, frm, to)
        return [encode_wrapper(self.channel(symbol), symbol, int(time.time() * 1000), depths)]

    async def _broadcast(self, frame: bytes, symbol: str | None = None) -> None:
        for c in list(self.clients):
            if symbol is None or symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    async def send_bad_depth(self, symbol: str) -> None:
        """A depth frame for ``symbol`` whose level list is cut short (the truth is
        unchanged, so a resync repairs the book)."""
        self.faults["garbage"] += 1
        body = b"\x12\x10\x0a\x02"     # bids: 16 bytes announced, 2 follow
        frame = encode_wrapper(self.channel(symbol), symbol, int(time.time() * 1000), body)
        await self._broadcast(frame, symbol)

    async def send_bad_binary(self) -> None:
        """A binary frame that is not a PushDataV3ApiWrapper (a truncated varint)."""
        self.faults["garbage"] += 1
        await self._broadcast(b"\x0a\xff\xff")

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v3/depth", self._depth),
                web.get("/api/v3/exchangeInfo", self._info)]

    async def _depth(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        if sym not in self.books:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        self.counts["rest_books"] += 1
        limit = min(int(request.query.get("limit", "100")), 5000)
        body = {"lastUpdateId": self.seq[sym], "bids": self.levels(sym, 0, limit),
                "asks": self.levels(sym, 1, limit), "timestamp": int(time.time() * 1000)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({"timezone": "CST", "serverTime": int(time.time() * 1000),
                                  "symbols": [{
                                      "symbol": s, "status": "1", "baseAsset": s[:-4],
                                      "quoteAsset": s[-4:],
                                      "baseAssetPrecision": self.size_decimals,
                                      "quotePrecision": self.price_decimals,
                                      "quoteAssetPrecision": self.price_decimals,
                                      "baseSizePrecision": "0." + "0" * (self.size_decimals - 1)
                                      + "1", "isSpotTradingAllowed": True}
                                      for s in self.symbols]})
