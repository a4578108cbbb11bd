"""Simulated OKX v5 public websocket and REST, written from OKX's documentation (not from
the connector): ``books`` subscribe/unsubscribe acks, a snapshot (or none: the announced
REST-bootstrap mode), updates chained by seqId/prevSeqId, CRC32 checksums computed here
with zlib over the strings sent, text ping/pong, idle keep-alives, a maintenance
sequence reset, ``/api/v5/market/books`` with seqId and ``/api/v5/public/instruments``.

Each order-flow event is one update; its level changes get consecutive internal
sequence ids after a small random skip (prevSeqId = the last id sent, seqId = the last
change's id), so a REST snapshot taken between two changes of one update (``rest_lag``)
has a seqId strictly inside that update's range, the case the splice rule
``prevSeqId <= snapshot seqId < seqId`` exists for.  Past book states are rebuilt by
undoing a short change log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import deque

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.book import fmt
from simulator.venue import Client, Venue

CHANNEL = "books"
DEPTH = 400
CHECKSUM_LEVELS = 25
LOG_CHANGES = 200   # changes kept to rebuild lagged REST snapshots


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's documented checksum: top 25 levels interleaved bid, ask; signed CRC32."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def inst_type(inst_id: str) -> str:
    parts = inst_id.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and parts[2].isdigit():
        return "FUTURES"
    return "SPOT"


class OKXVenue(Venue):
    """``ws_snapshot``: send the initial snapshot (else clients must bootstrap by REST);
    ``checksums``: send real checksums (else 0, as OKX does since 2026-06);
    ``rest_lag``: serve REST snapshots up to this many level changes old;
    ``keepalive_after``: seconds without change before an empty keep-alive update."""

    name = "okx"
    price_decimals = 1
    size_decimals = 3
    pad_decimals = False           # OKX writes shortest numbers: "0.5", "100", "30233.6"

    def __init__(self, symbols: list[str], *, ws_snapshot: bool = True,
                 checksums: bool = True, rest_lag: int = 0,
                 keepalive_after: float | None = None, **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.ws_snapshot = ws_snapshot
        self.checksums = checksums
        self.rest_lag = rest_lag
        self.keepalive_after = keepalive_after
        self.seq = {s: 1000 + 7 * i for i, s in enumerate(self.symbols)}
        self._shadow = {s: ({p: q for p, q in b.bids.items()}, {p: q for p, q in b.asks.items()})
                        for s, b in self.books.items()}
        self._log: dict[str, deque] = {s: deque(maxlen=LOG_CHANGES) for s in self.symbols}
        self._last_change = dict.fromkeys(self.symbols, time.monotonic())
        self._reset: set[str] = set()
        self._malformed: set[str] = set()
        self._keepalive_task: asyncio.Task | None = None
        self.counts = {"pings": 0, "subscribes": 0, "unsubscribes": 0, "rest_books": 0,
                       "keepalives": 0, "snapshots": 0, "errors": 0}
        self.faults.update(resets=0, malformed_updates=0)

    # -- faults --------------------------------------------------------------------------
    def reset_sequence(self, symbol: str) -> None:
        """Next update restarts the sequence below prevSeqId (post-maintenance case)."""
        self._reset.add(symbol)

    def malform_next(self, symbol: str) -> None:
        """Next update of ``symbol`` carries an unparsable price (applied to the truth)."""
        self._malformed.add(symbol)

    # -- websocket -----------------------------------------------------------------------
    async def on_client_message(self, client: Client, text: str) -> None:
        if text == "ping":
            self.counts["pings"] += 1
            await client.ws.send("pong")
            return
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg["args"]
            pairs = [(a["channel"], a["instId"]) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(client, "60012", f"Invalid request: {text[:100]}")
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._error(client, "60019", f"Invalid op: {op}")
            return
        self.counts[op + "s"] += 1
        for channel, inst_id in pairs:
            if channel != CHANNEL or inst_id not in self.books:
                await self._error(client, "60018", f"Wrong URL or channel:{channel},instId:"
                                                   f"{inst_id} doesn't exist.")
                continue
            ack = {"event": op, "arg": {"channel": channel, "instId": inst_id},
                   "connId": f"{id(client) & 0xFFFFFFFF:08x}"}
            await client.ws.send(orjson.dumps(ack).decode())
            if op == "subscribe":
                await self.subscribe(client, inst_id)
            else:
                client.symbols.discard(inst_id)

    async def _error(self, client: Client, code: str, text: str) -> None:
        self.counts["errors"] += 1
        await client.ws.send(orjson.dumps({"event": "error", "code": code, "msg": text,
                                           "connId": "00000000"}).decode())

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        if not self.ws_snapshot:
            return []
        self.counts["snapshots"] += 1
        bids, asks = self.levels(symbol, 0, DEPTH), self.levels(symbol, 1, DEPTH)
        entry = self._entry(bids, asks, -1, self.seq[symbol], self._checksum(symbol))
        return [self._frame(symbol, "snapshot", entry)]

    def _checksum(self, symbol: str) -> int:
        if not self.checksums:
            return 0
        return okx_checksum(self.levels(symbol, 0, CHECKSUM_LEVELS),
                            self.levels(symbol, 1, CHECKSUM_LEVELS))

    @staticmethod
    def _entry(bids, asks, prev: int, seq: int, checksum: int) -> dict:
        return {"asks": [[p, q, "0", "1"] for p, q in asks],
                "bids": [[p, q, "0", "1"] for p, q in bids],
                "ts": str(int(time.time() * 1000)), "checksum": checksum,
                "prevSeqId": prev, "seqId": seq}

    @staticmethod
    def _frame(symbol: str, action: str, entry: dict) -> str:
        return orjson.dumps({"arg": {"channel": CHANNEL, "instId": symbol}, "action": action,
                             "data": [entry]}).decode()

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        prev = self.seq[symbol]
        seq = prev + self.rng.randrange(3)   # ids skip: they are not per message
        shadow, log = self._shadow[symbol], self._log[symbol]
        if symbol in self._reset:   # the maintenance case: ids restart lower
            self._reset.discard(symbol)
            self.faults["resets"] += 1
            seq = self.rng.randrange(0, max(1, prev // 2))
            log.clear()             # no lagged REST snapshot from before the reset
        for side, price, size in changes:
            seq += 1
            book = shadow[side]
            log.append((seq, side, price, book.get(price, 0)))
            if size:
                book[price] = size
            else:
                book.pop(price, None)
        self.seq[symbol] = seq
        self._last_change[symbol] = time.monotonic()
        bids = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]
        asks = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]
        if symbol in self._malformed:
            self._malformed.discard(symbol)
            self.faults["malformed_updates"] += 1
            (bids or asks)[0][0] = "12x.5"
        checksum = self._checksum(symbol)
        if checksum and self.take_corrupt(symbol):
            checksum ^= 0x5A5A
        return [self._frame(symbol, "update", self._entry(bids, asks, prev, seq, checksum))]

    async def _keepalives(self) -> None:
        """OKX's idle message: empty sides, prevSeqId == seqId."""
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for s in self.symbols:
                if now - self._last_change[s] < self.keepalive_after:
                    continue
                self._last_change[s] = now
                seq = self.seq[s]
                frame = self._frame(s, "update", self._entry([], [], seq, seq,
                                                             self._checksum(s)))
                self.counts["keepalives"] += 1
                for c in list(self.clients):
                    if s in c.symbols:
                        with contextlib.suppress(ConnectionClosed):
                            await c.ws.send(frame)

    async def start(self) -> OKXVenue:
        await super().start()
        if self.keepalive_after:
            self._keepalive_task = asyncio.ensure_future(self._keepalives())
        return self

    async def stop(self) -> None:
        if self._keepalive_task:
            self._keepalive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive_task
        await super().stop()

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v5/market/books", self._books),
                web.get("/api/v5/public/instruments", self._instruments)]

    def past_book(self, symbol: str, back: int) -> tuple[int, dict, dict]:
        """(seqId, bids, asks) as they were ``back`` level changes ago."""
        bids, asks = (dict(d) for d in self._shadow[symbol])
        log = self._log[symbol]
        back = min(back, len(log))
        seq = self.seq[symbol]
        for k in range(back):
            change_seq, side, price, old = log[-1 - k]
            book = bids if side == 0 else asks
            if old:
                book[price] = old
            else:
                book.pop(price, None)
            seq = change_seq - 1
        return seq, bids, asks

    async def _books(self, request: web.Request) -> web.Response:
        sym = request.query.get("instId", "")
        if sym not in self.books:
            return web.json_response({"code": "51001", "msg": "Instrument ID doesn't exist.",
                                      "data": []})
        self.counts["rest_books"] += 1
        n = min(int(request.query.get("sz", "1")), DEPTH)
        back = self.rng.randint(0, self.rest_lag) if self.rest_lag else 0
        seq, bids, asks = self.past_book(sym, back)
        levels = (
            [[self.px(p), self.sz(q), "0", "1"] for p, q in sorted(bids.items(), reverse=True)],
            [[self.px(p), self.sz(q), "0", "1"] for p, q in sorted(asks.items())])
        body = {"code": "0", "msg": "", "data": [{"asks": levels[1][:n], "bids": levels[0][:n],
                                                "ts": str(int(time.time() * 1000)),
                                                "seqId": seq}]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _instruments(self, request: web.Request) -> web.Response:
        kind = request.query.get("instType", "")
        tick = fmt(1, self.price_decimals, False)
        lot = fmt(1, self.size_decimals, False)
        data = []
        for s in self.symbols:
            if inst_type(s) != kind:
                continue
            base, quote = s.split("-")[:2]
            deriv = kind != "SPOT"
            data.append({
                "instType": kind, "instId": s, "uly": f"{base}-{quote}" if deriv else "",
                "baseCcy": "" if deriv else base, "quoteCcy": "" if deriv else quote,
                "tickSz": tick, "lotSz": lot, "minSz": lot, "ctVal": "0.01" if deriv else "",
                "ctValCcy": base if deriv else "", "ctType": "linear" if deriv else "",
                "expTime": "", "state": "live"})
        return web.json_response({"code": "0", "msg": "", "data": data})
