"""Simulated Poloniex v3 spot public websocket and REST, written from Poloniex's
documentation and the 2022 recording (not from the connector): ``book_lv2``
subscribe / unsubscribe answers and errors, a 20-level snapshot per subscribed symbol,
updates chained by ``lastId`` / ``id`` (ids sometimes skip, as in the recording),
``{"event":"ping"}`` (and plain-text ``ping``) answered by ``{"event":"pong"}``, an
optional idle timeout (the venue drops clients silent for 30 s), and ``GET /markets``.

The true books are kept inside the channel's 20-level window: a level pushed out by
a better one is deleted from the truth and the delete is sent, so the truth and a
synced book hold the same levels."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from simulator.venue import Client, Venue

CHANNEL = "book_lv2"
WINDOW = 20


class PoloniexVenue(Venue):
    """``idle_timeout``: close a client that sent nothing for this long (None: never)."""

    name = "poloniex"
    price_decimals = 2
    size_decimals = 4
    pad_decimals = False

    def __init__(self, symbols: list[str], *, idle_timeout: float | None = None,
                 **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.idle_timeout = idle_timeout
        for b in self.books.values():
            b.max_levels = WINDOW
            for side in (b.bids, b.asks):
                for p, _ in sorted(side.items(), reverse=side is b.bids)[WINDOW:]:
                    del side[p]
        self.seq = {s: 5000 + 11 * i for i, s in enumerate(self.symbols)}
        self._malformed: set[str] = set()
        self.counts = {"pings": 0, "subscribes": 0, "unsubscribes": 0, "snapshots": 0,
                       "errors": 0, "markets": 0, "idle_closes": 0}
        self.faults.update(malformed_updates=0)

    def malform_next(self, symbol: str) -> None:
        """The next update of ``symbol`` carries an unparsable price (truth applied)."""
        self._malformed.add(symbol)

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        client.state["last_rx"] = time.monotonic()
        if text.strip().lower() == "ping":
            self.counts["pings"] += 1
            await client.ws.send('{"event":"pong"}')
            return
        try:
            msg = orjson.loads(text)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(client, "Request error")
            return
        if event == "ping":
            self.counts["pings"] += 1
            await client.ws.send('{"event":"pong"}')
            return
        if event not in ("subscribe", "unsubscribe"):
            await self._error(client, f"Unsupported event: {event}")
            return
        channels, symbols = msg.get("channel"), msg.get("symbols")
        if channels != [CHANNEL] or not isinstance(symbols, list) \
                or any(s not in self.books for s in symbols):
            await self._error(client, "Subscription failed")
            return
        self.counts[event + "s"] += 1
        if event == "subscribe":
            if any(s in client.symbols for s in symbols):
                await self._error(client, "Already subscribed")
                return
            await client.ws.send(orjson.dumps({"event": event, "channel": CHANNEL,
                                               "symbols": symbols}).decode())
            for s in symbols:
                await self.subscribe(client, s)
        else:
            client.symbols.difference_update(symbols)
            await client.ws.send(orjson.dumps({"event": event, "channel": CHANNEL,
                                               "symbols": symbols}).decode())

    async def _error(self, client: Client, message: str) -> None:
        self.counts["errors"] += 1
        await client.ws.send(orjson.dumps({"event": "error", "message": message}).decode())

    @staticmethod
    def _frame(action: str, entry: dict) -> str:
        return orjson.dumps({"channel": CHANNEL, "data": [entry], "action": action}).decode()

    def _entry(self, symbol: str, bids, asks, last: int, seq: int) -> dict:
        ms = int(time.time() * 1000)
        return {"symbol": symbol, "createTime": ms, "asks": asks, "bids": bids,
                "lastId": last, "id": seq, "ts": ms}

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        seq = self.seq[symbol]
        entry = self._entry(symbol, self.levels(symbol, 0, WINDOW),
                            self.levels(symbol, 1, WINDOW), seq - 1, seq)
        return [self._frame("snapshot", entry)]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        book = self.books[symbol]
        changes = list(changes)
        for side, levels in ((0, book.bids), (1, book.asks)):  # keep the 20-level window
            while len(levels) > WINDOW:
                worst = min(levels) if side == 0 else max(levels)
                del levels[worst]
                changes.append((side, worst, 0))
        last = self.seq[symbol]
        seq = last + 1 + (self.rng.random() < 0.1)   # ids sometimes skip one
        self.seq[symbol] = seq
        bids = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]
        asks = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]
        if symbol in self._malformed:
            self._malformed.discard(symbol)
            self.faults["malformed_updates"] += 1
            (bids or asks)[0][0] = "12x.5"
        return [self._frame("update", self._entry(symbol, bids, asks, last, seq))]

    async def emit(self, symbol: str) -> None:
        await super().emit(symbol)
        if self.idle_timeout is None:
            return
        now = time.monotonic()
        for c in list(self.clients):
            if now - c.state.setdefault("last_rx", now) > self.idle_timeout:
                self.counts["idle_closes"] += 1
                c.state["last_rx"] = now
                await c.ws.close(1000, "idle")

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/markets", self._markets)]

    async def _markets(self, request: web.Request) -> web.Response:
        self.counts["markets"] += 1
        data = []
        for s in self.symbols:
            base, quote = s.split("_")
            data.append({"symbol": s, "baseCurrencyName": base, "quoteCurrencyName": quote,
                         "displayName": f"{base}/{quote}", "state": "NORMAL",
                         "symbolTradeLimit": {"symbol": s, "priceScale": self.price_decimals,
                                              "quantityScale": self.size_decimals,
                                              "amountScale": self.price_decimals,
                                              "minQuantity": "0.0001", "minAmount": "1",
                                              "highestBid": "0", "lowestAsk": "0"}})
        return web.json_response(data)
