"""Simulated Bybit v5 public order book: ``orderbook.1000.{symbol}`` snapshot + delta
topics on ``/v5/public/{category}``, subscribe/unsubscribe acks, application ping/pong,
and ``/v5/market/instruments-info``.

What it reproduces of the real venue: a subscription is acknowledged
(``{"success":true,...,"op":"subscribe"}``) and followed by a ``snapshot`` of the whole
book; every order-flow event is one ``delta`` whose update id ``u`` is the previous one
plus 1, with the net change per price (size "0" deletes) and a growing but
non-contiguous cross sequence ``seq``; subscribing to a topic twice, unknown topics and
(spot) more than 10 args per request are rejected with ``success: false``.  Faults on top
of the base venue's: ``restart`` (the book service restarts: a snapshot with ``u = 1``,
deltas go on from 2) and ``send_bad_delta`` (a delta with an unparsable price).

The simulated books hold at most 200 levels a side, so the depth-1000 topic carries
the whole book and no level ever leaves the window; other depths are not simulated and
are refused.  The exact texts of Bybit's error messages are not documented and are
only approximated here.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

RESTART_U = 1


class BybitVenue(Venue):
    """The linear category (USDT perpetuals)."""

    name = "bybit"
    category = "linear"
    quote = "USDT"
    contract_type = "LinearPerpetual"
    price_decimals = 2
    size_decimals = 3
    pad_decimals = True           # Bybit writes every number with the instrument's decimals
    depth = 1000
    max_args: int | None = None   # args per subscribe request (spot: 10)

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.cross_seq = 7_000_000_000
        self.requests: Counter = Counter()      # op -> requests received
        self.rejections: Counter = Counter()    # ret_msg -> rejected requests
        self.pings = 0
        self.faults.update(restarts=0, bad_deltas=0)

    # -- frames --------------------------------------------------------------------------
    def topic(self, symbol: str) -> str:
        return f"orderbook.{self.depth}.{symbol}"

    def _frame(self, symbol: str, kind: str, u: int, bids: list, asks: list) -> str:
        self.cross_seq += self.rng.randint(1, 40)
        now = int(time.time() * 1000)
        return orjson.dumps({
            "topic": self.topic(symbol), "type": kind, "ts": now,
            "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": self.cross_seq},
            "cts": now - self.rng.randint(0, 5)}).decode()

    def snapshot_frame(self, symbol: str) -> str:
        return self._frame(symbol, "snapshot", self.seq[symbol], self.levels(symbol, 0),
                           self.levels(symbol, 1))

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        net: dict[tuple[int, int], int] = {}
        for side, price, size in changes:      # one entry per price: the net change
            net[(side, price)] = size
        self.seq[symbol] += 1
        bids = [[self.px(p), self.sz(q)] for (side, p), q in net.items() if side == 0]
        asks = [[self.px(p), self.sz(q)] for (side, p), q in net.items() if side == 1]
        return [self._frame(symbol, "delta", self.seq[symbol], bids, asks)]

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        return [self.snapshot_frame(symbol)]

    # -- faults --------------------------------------------------------------------------
    async def restart(self, symbol: str) -> None:
        """The book service restarts: ``u`` starts over at 1 with a snapshot."""
        self.faults["restarts"] += 1
        self.seq[symbol] = RESTART_U
        await self._broadcast(symbol, self.snapshot_frame(symbol))

    async def send_bad_delta(self, symbol: str) -> None:
        """A delta in sequence but with a price that is not a number (truth unchanged)."""
        self.faults["bad_deltas"] += 1
        frame = self._frame(symbol, "delta", self.seq[symbol] + 1,
                            [["12x.5", self.sz(1)]], [])
        await self._broadcast(symbol, frame)

    async def _broadcast(self, symbol: str, frame: str) -> None:
        for c in list(self.clients):
            if symbol in c.symbols:
                with contextlib.suppress(ConnectionClosed):
                    await c.ws.send(frame)

    # -- websocket requests --------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        if "conn_id" not in client.state:
            client.state["conn_id"] = str(uuid.UUID(int=self.rng.getrandbits(128)))
            path = client.ws.request.path if client.ws.request else ""
            if not path.endswith(f"/v5/public/{self.category}"):
                await client.ws.close(1008, f"no {self.category} stream at {path}")
                return
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg.get("args") or []
            req_id = msg.get("req_id")
            if not isinstance(args, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._reply(client, None, "", False, "error:request not valid json")
            return
        if op == "ping":
            self.pings += 1
            await self._reply(client, req_id, "ping", True, "pong")
        elif op in ("subscribe", "unsubscribe"):
            self.requests[op] += 1
            await self._subscription(client, op, args, req_id)
        else:
            await self._reply(client, req_id, op, False, f"error:unknown op {op}")

    async def _subscription(self, client: Client, op: str, args: list, req_id) -> None:
        if self.max_args and len(args) > self.max_args:
            await self._reply(client, req_id, op, False,
                              f"error:args size >{self.max_args}")
            return
        prefix = f"orderbook.{self.depth}."
        good, bad = [], []
        for topic in args:
            sym = topic[len(prefix):] if isinstance(topic, str) and \
                topic.startswith(prefix) else None
            if sym not in self.books:
                bad.append(f"error:handler not found,topic:{topic}")
            elif (op == "subscribe") == (sym in client.symbols):
                bad.append(f"error:{'already' if op == 'subscribe' else 'not'} "
                           f"subscribed,topic:{topic}")
            else:
                good.append(sym)
        await self._reply(client, req_id, op, not bad, ";".join(bad))
        for sym in good:
            if op == "subscribe":
                await self.subscribe(client, sym)     # sends the snapshot
            else:
                client.symbols.discard(sym)

    async def _reply(self, client: Client, req_id, op: str, ok: bool, ret_msg: str) -> None:
        if not ok:
            self.rejections[ret_msg.split(",", 1)[0]] += 1
        body = {"success": ok, "ret_msg": ret_msg, "conn_id": client.state.get("conn_id", ""),
                "op": op}
        if req_id is not None:
            body["req_id"] = req_id
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps(body).decode())

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v5/market/instruments-info", self._instruments)]

    def instrument(self, symbol: str) -> dict:
        entry = {"symbol": symbol, "status": "Trading", "baseCoin": symbol[:-len(self.quote)],
                 "quoteCoin": self.quote,
                 "priceFilter": {"minPrice": fmt(1, self.price_decimals),
                                 "maxPrice": fmt(10**9, self.price_decimals),
                                 "tickSize": fmt(1, self.price_decimals)},
                 "lotSizeFilter": {"minOrderQty": fmt(1, self.size_decimals),
                                   "qtyStep": fmt(1, self.size_decimals)}}
        entry.update(contractType=self.contract_type, priceScale=str(self.price_decimals),
                     launchTime="1585526400000", deliveryTime="0", settleCoin=self.quote)
        return entry

    async def _instruments(self, request: web.Request) -> web.Response:
        if request.query.get("category") != self.category:
            return web.json_response({"retCode": 10001, "retMsg": "params error: category",
                                      "result": {}, "retExtInfo": {}, "time": 0})
        result = {"category": self.category,
                  "list": [self.instrument(s) for s in self.symbols]}
        if self.category != "spot":
            result["nextPageCursor"] = ""
        return web.json_response({"retCode": 0, "retMsg": "OK", "result": result,
                                  "retExtInfo": {}, "time": int(time.time() * 1000)})


class BybitSpotVenue(BybitVenue):
    """Spot: at most 10 args per subscribe request; sizes in base-coin precision."""

    name = "bybit_spot"
    category = "spot"
    price_decimals = 2
    size_decimals = 6
    max_args = 10

    def instrument(self, symbol: str) -> dict:
        return {"symbol": symbol, "baseCoin": symbol[:-len(self.quote)],
                "quoteCoin": self.quote, "innovation": "0", "status": "Trading",
                "marginTrading": "both",
                "lotSizeFilter": {"basePrecision": fmt(1, self.size_decimals),
                                  "quotePrecision": "0.00000001",
                                  "minOrderQty": fmt(1, self.size_decimals)},
                "priceFilter": {"tickSize": fmt(1, self.price_decimals)}}


class BybitInverseVenue(BybitVenue):
    """Inverse perpetuals: sizes are whole USD contracts."""

    name = "bybit_inverse"
    category = "inverse"
    quote = "USD"
    contract_type = "InversePerpetual"
    price_decimals = 1
    size_decimals = 0
