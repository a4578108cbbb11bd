"""Simulated Gate.io spot v4: ``spot.order_book_update`` diffs with U/u ids, subscribe /
unsubscribe answers, ``spot.ping`` -> ``spot.pong``, REST ``/api/v4/spot/order_book``
with ``with_id=true``, ``/api/v4/spot/currency_pairs``, and the channel's irregular
``full=true`` pushes on demand (``push_full``).  With ``obu=True`` it speaks the newer
``spot.obu`` channel instead: ``ob.<PAIR>.400`` streams, a full book on subscribe.

Books are kept within ``MAX_LEVELS`` per side, the depth the connector keeps (the REST
snapshot limit), so the truth and a synced book hold the same levels."""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

CHANNEL = "spot.order_book_update"
OBU = "spot.obu"
MAX_LEVELS = 100


class GateIOVenue(Venue):
    name = "gateio"
    price_decimals = 4
    size_decimals = 3
    pad_decimals = False            # Gate writes the shortest text: "10.5", "3"

    def __init__(self, symbols: list[str], *, obu: bool = False, **kw) -> None:
        super().__init__(symbols, **kw)
        self.obu = obu
        for b in self.books.values():
            b.max_levels = MAX_LEVELS
        self.counts = {"pings": 0, "subscribes": 0, "unsubscribes": 0, "rest_books": 0,
                       "full_pushes": 0}

    @staticmethod
    def _now() -> tuple[int, int]:
        ms = int(time.time() * 1000)
        return ms // 1000, ms

    def _answer(self, channel: str, event: str, payload, error: str | None = None) -> str:
        sec, ms = self._now()
        msg = {"time": sec, "time_ms": ms, "channel": channel, "event": event,
               "payload": payload}
        if error:
            msg.update(error={"code": 2, "message": error}, result=None)
        else:
            msg["result"] = {"status": "success"}
        return orjson.dumps(msg).decode()

    async def on_client_message(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
            channel, event = msg["channel"], msg.get("event", "")
            payload = msg.get("payload", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            sec, ms = self._now()
            await client.ws.send(orjson.dumps({"time": sec, "time_ms": ms, "channel": "",
                                               "event": "", "error": {
                                                   "code": 1, "message": "invalid request"},
                                               "result": None}).decode())
            return
        if channel == "spot.ping":
            self.counts["pings"] += 1
            sec, ms = self._now()
            await client.ws.send(orjson.dumps({"time": sec, "time_ms": ms,
                                               "channel": "spot.pong", "event": "",
                                               "result": None}).decode())
            return
        want = OBU if self.obu else CHANNEL
        if channel != want or event not in ("subscribe", "unsubscribe"):
            await client.ws.send(self._answer(channel, event, payload, "unknown channel"))
            return
        asked = payload
        pair = payload[0] if isinstance(payload, list) and payload else None
        if self.obu and isinstance(pair, str) and pair == self._stream(pair[3:-4]):
            pair, payload = pair[3:-4], [pair, "100ms"]
        if pair not in self.books or len(payload) < 2 or payload[1] not in ("20ms", "100ms"):
            await client.ws.send(self._answer(channel, event, asked,
                                              f"invalid argument: {asked}"))
            return
        if event == "subscribe":
            self.counts["subscribes"] += 1
            await client.ws.send(self._answer(channel, event, asked))
            await self.subscribe(client, pair)
        else:
            self.counts["unsubscribes"] += 1
            client.symbols.discard(pair)
            await client.ws.send(self._answer(channel, event, asked))

    @staticmethod
    def _stream(pair: str) -> str:
        return f"ob.{pair}.400"

    def _frame(self, result: dict) -> str:
        sec, ms = self._now()
        if self.obu:
            result["s"] = self._stream(result["s"])
        return orjson.dumps({"time": sec, "time_ms": ms,
                             "channel": OBU if self.obu else CHANNEL,
                             "event": "update", "result": result}).decode()

    def _full(self, symbol: str) -> str:
        _, ms = self._now()
        return self._frame({"t": ms, "full": True, "s": symbol, "u": self.seq[symbol],
                            "b": self.levels(symbol, 0, MAX_LEVELS),
                            "a": self.levels(symbol, 1, MAX_LEVELS)})

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        return [self._full(symbol)] if self.obu else []

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        prev = self.seq[symbol]
        first, last = prev + 1, prev + len(changes)   # one id per level change
        self.seq[symbol] = last
        sec, ms = self._now()
        return [self._frame({
            "t": ms, "e": "depthUpdate", "E": sec, "s": symbol, "U": first, "u": last,
            "b": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0],
            "a": [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]})]

    async def push_full(self, symbol: str) -> None:
        """A ``full=true`` push of the whole book (the channel sends these unprompted)."""
        self.counts["full_pushes"] += 1
        frame = self._full(symbol)
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v4/spot/order_book", self._order_book),
                web.get("/api/v4/spot/currency_pairs", self._pairs)]

    async def _order_book(self, request: web.Request) -> web.Response:
        pair = request.query.get("currency_pair", "")
        if pair not in self.books:
            return web.json_response({"label": "INVALID_CURRENCY_PAIR",
                                      "message": f"Invalid currency pair {pair}"}, status=400)
        self.counts["rest_books"] += 1
        limit = min(int(request.query.get("limit", "10")), MAX_LEVELS)
        _, ms = self._now()
        body = {"current": ms, "update": ms, "asks": self.levels(pair, 1, limit),
                "bids": self.levels(pair, 0, limit)}
        if request.query.get("with_id") == "true":
            body = {"id": self.seq[pair], **body}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _pairs(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"id": s, "base": s.split("_")[0], "quote": s.split("_")[1], "fee": "0.2",
             "min_quote_amount": "1", "amount_precision": self.size_decimals,
             "precision": self.price_decimals, "trade_status": "tradable",
             "sell_start": 0, "buy_start": 0} for s in self.symbols])
