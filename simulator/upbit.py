"""Simulated Upbit quotation websocket and ``/v1/market/all``, written from Upbit's
documentation and the recorded session (not from the connector).

Websocket: a request is a JSON array of a ticket object, type objects and an optional
format object (``DEFAULT`` long keys or ``SIMPLE`` abbreviations); a new request
replaces the connection's subscriptions.  Each subscribed code first gets a
``SNAPSHOT`` message (unless ``is_only_realtime``/``isOnlyRealtime``), then one
``REALTIME`` message per order-flow event; every message is the whole top ``units``
levels per side (``CODE.n`` asks for fewer).  Messages go out as BINARY frames, numbers
as JSON numbers printed the way Java prints doubles (``100000.0``, ``5.0E-5``).  The
text ``PING`` is answered with ``{"status":"UP"}``.  No sequence numbers, no checksums.

Faults beyond the base venue's: ``send_crossed`` (one message whose bids reach above
the best ask; the truth is unchanged, so a client must not keep it) and
``send_bad_book`` (a message with a price finer than any scale, not applied).
"""

from __future__ import annotations

import contextlib

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

LONG = {"ty": "type", "cd": "code", "tms": "timestamp", "tas": "total_ask_size",
        "tbs": "total_bid_size", "obu": "orderbook_units", "st": "stream_type",
        "ap": "ask_price", "bp": "bid_price", "as": "ask_size", "bs": "bid_size"}
COUNTS = (1, 5, 15, 30)


def java_double(v: int, decimals: int) -> str:
    """The text Java's Double.toString gives for v / 10**decimals (exact decimal input):
    plain with at least one fraction digit in [1e-3, 1e7), else d.dddE[-]n."""
    text = fmt(v, decimals, False)
    whole, _, frac = text.partition(".")
    digits = (whole + frac).lstrip("0")
    if v == 0:
        return "0.0"
    if 10 ** (decimals - 3) <= v < 10 ** (decimals + 7):
        return f"{whole}.{frac or '0'}"
    exp = len(whole) - 1 if whole != "0" else -(len(frac) - len(frac.lstrip("0")) + 1)
    digits = digits.rstrip("0")
    return f"{digits[0]}.{digits[1:] or '0'}E{exp}"


class UpbitVenue(Venue):
    name = "upbit"
    price_decimals = 1
    size_decimals = 8
    pad_decimals = False

    def __init__(self, symbols: list[str], *, units: int = 15, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.units = units
        self.counts = {"requests": 0, "snapshots": 0, "pings": 0, "rejected": 0}
        self.faults.update(crossed=0, bad_books=0)

    def px(self, v: int) -> str:
        return java_double(v, self.price_decimals)

    def sz(self, v: int) -> str:
        return java_double(v, self.size_decimals)

    def truth(self, symbol: str) -> dict:
        """What a client can know: the top ``units`` levels per side."""
        full = super().truth(symbol)
        return {k: v[:self.units] for k, v in full.items()}

    # -- messages ------------------------------------------------------------------------
    def book_message(self, symbol: str, n: int, simple: bool, stream: str,
                     bids=None, asks=None) -> bytes:
        b = self.books[symbol]
        bids = bids if bids is not None else b.top(0, n)
        asks = asks if asks is not None else b.top(1, n)
        units = []
        for i in range(max(len(bids), len(asks))):
            ap, aq = asks[i] if i < len(asks) else (0, 0)
            bp, bq = bids[i] if i < len(bids) else (0, 0)
            units.append(f'{{"ap":{self.px(ap)},"bp":{self.px(bp)},'
                         f'"as":{self.sz(aq)},"bs":{self.sz(bq)}}}')
        tas = self.sz(sum(q for _, q in asks))
        tbs = self.sz(sum(q for _, q in bids))
        text = (f'{{"ty":"orderbook","cd":"{symbol}","tms":{self.events_sent + 1},'
                f'"tas":{tas},"tbs":{tbs},"obu":[{",".join(units)}],"st":"{stream}"}}')
        if not simple:
            for short, long in LONG.items():
                text = text.replace(f'"{short}":', f'"{long}":')
        return text.encode()

    def _frame_for(self, client: Client, symbol: str, stream: str, **kw) -> bytes:
        return self.book_message(symbol, client.state["units"].get(symbol, self.units),
                                 client.state.get("simple", False), stream, **kw)

    async def _send(self, client: Client, frame: bytes | str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(frame)

    async def on_client_message(self, client: Client, text) -> None:
        if text == "PING":
            self.counts["pings"] += 1
            await self._send(client, b'{"status":"UP"}')
            return
        try:
            req = orjson.loads(text)
            if not isinstance(req, list) or not req or "ticket" not in req[0]:
                raise ValueError("no ticket")
            fmt_ = next((o["format"] for o in req if "format" in o), "DEFAULT")
            books = [o for o in req if o.get("type") == "orderbook"]
            codes = [(str(c), o.get("is_only_realtime") or o.get("isOnlyRealtime"))
                     for o in books for c in o["codes"]]
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            self.counts["rejected"] += 1
            await self._send(client, b'{"error":{"name":"WRONG_FORMAT",'
                                     b'"message":"bad request"}}')
            return
        self.counts["requests"] += 1
        client.symbols = set()                      # a request replaces the last one
        client.state = {"simple": fmt_.upper() == "SIMPLE", "units": {}}
        for code, realtime_only in codes:
            symbol, _, n = code.partition(".")
            if symbol not in self.books:
                continue
            if n:
                client.state["units"][symbol] = int(n) if int(n) in COUNTS else 30
            client.symbols.add(symbol)
            if not realtime_only:
                self.counts["snapshots"] += 1
                await self._send(client, self._frame_for(client, symbol, "SNAPSHOT"))

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list:
        return [symbol]        # frames differ per client (format, units): see emit

    async def emit(self, symbol: str) -> None:
        changes = self.books[symbol].step()
        if not changes:
            return
        if self._drop.get(symbol):
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
            return
        self.events_sent += 1
        for c in list(self.clients):
            if symbol in c.symbols:
                await self._send(c, self._frame_for(c, symbol, "REALTIME"))

    # -- faults --------------------------------------------------------------------------
    async def send_crossed(self, symbol: str) -> None:
        b = self.books[symbol]
        ask = b.best_ask()
        bids = [(ask + 2 - i, q) for i, (_, q) in enumerate(b.top(0, self.units))]
        self.faults["crossed"] += 1
        for c in list(self.clients):
            if symbol in c.symbols:
                await self._send(c, self._frame_for(c, symbol, "REALTIME", bids=bids))

    async def send_bad_book(self, symbol: str) -> None:
        self.faults["bad_books"] += 1
        for c in list(self.clients):
            if symbol in c.symbols:
                frame = self._frame_for(c, symbol, "REALTIME").decode()
                head, sep, tail = frame.partition('"bp":')
                value, comma, rest = tail.partition(",")
                await self._send(c, (head + sep + value + "000000000001" + comma
                                     + rest).encode())

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/market/all", self._markets)]

    async def _markets(self, request: web.Request) -> web.Response:
        return web.json_response([{"market": s, "korean_name": s, "english_name": s}
                                  for s in self.symbols])
