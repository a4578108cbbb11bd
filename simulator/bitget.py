"""Simulated Bitget v2 public websocket and REST, written from Bitget's documentation
(not from the connector): ``books`` subscribe/unsubscribe acks and errors, a full
snapshot per subscription, updates with absolute sizes and an increasing (not
contiguous) ``seq``, CRC32 checksums over the top 25 levels interleaved, computed here
with zlib over the padded texts sent, text ping/pong, and the instrument lists
``/api/v2/spot/public/symbols`` and ``/api/v2/mix/market/contracts``.

Symbols are spot ``BTCUSDT`` or USDT-M futures ``BTCUSDT_UMCBL`` (subscribed as
instType USDT-FUTURES, instId BTCUSDT).  ``drop_next`` drops the next update that
changes one of the top 25 levels: Bitget's seq cannot reveal a lost message, only the
checksum can, and it covers the top 25 only."""

from __future__ import annotations

import contextlib
import time
import zlib

import orjson
from aiohttp import web
from websockets.exceptions import ConnectionClosed

from simulator.venue import Client, Venue

CHANNEL = "books"
CHECKSUM_LEVELS = 25
FUTURES_SUFFIX = "_UMCBL"


def bitget_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """Bitget's documented checksum: texts as sent, bid/ask interleaved, signed CRC32."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def wire(symbol: str) -> tuple[str, str]:
    """(instType, instId) of a simulator symbol."""
    if symbol.endswith(FUTURES_SUFFIX):
        return "USDT-FUTURES", symbol[: -len(FUTURES_SUFFIX)]
    return "SPOT", symbol


class BitgetVenue(Venue):
    name = "bitget"
    price_decimals = 2
    size_decimals = 4
    pad_decimals = True            # Bitget pads to the precision: "0.5000"

    def __init__(self, symbols: list[str], **kwargs) -> None:
        super().__init__(symbols, **kwargs)
        self.by_wire = {wire(s): s for s in self.symbols}
        self.seq = {s: 5_000_000 + 1000 * i for i, s in enumerate(self.symbols)}
        self._stale_seq: set[str] = set()
        self._malformed: set[str] = set()
        self.counts = {"pings": 0, "subscribes": 0, "unsubscribes": 0, "snapshots": 0,
                       "errors": 0}
        self.faults.update(stale_seq=0, malformed_updates=0)

    # -- faults --------------------------------------------------------------------------
    def repeat_seq_next(self, symbol: str) -> None:
        """Next update of ``symbol`` carries a seq no greater than the last one."""
        self._stale_seq.add(symbol)

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
            keys = [(a["instType"], a["channel"], a["instId"]) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(client, "30001", f"Invalid request: {text[:100]}")
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._error(client, "30002", f"Invalid op: {op}")
            return
        self.counts[op + "s"] += 1
        for inst_type, channel, inst_id in keys:
            symbol = self.by_wire.get((inst_type, inst_id))
            arg = {"instType": inst_type, "channel": channel, "instId": inst_id}
            if channel != CHANNEL or symbol is None:
                await self._error(client, "30001", f"instType:{inst_type},channel:{channel},"
                                                   f"instId:{inst_id} doesn't exist", arg)
                continue
            await client.ws.send(orjson.dumps({"event": op, "arg": arg}).decode())
            if op == "subscribe":
                await self.subscribe(client, symbol)
            else:
                client.symbols.discard(symbol)

    async def _error(self, client: Client, code: str, text: str, arg=None) -> None:
        self.counts["errors"] += 1
        body = {"event": "error", "code": code, "msg": text}
        if arg:
            body["arg"] = arg
        await client.ws.send(orjson.dumps(body).decode())

    def _frame(self, symbol: str, action: str, bids, asks, seq: int, checksum: int) -> str:
        inst_type, inst_id = wire(symbol)
        ts = int(time.time() * 1000)
        return orjson.dumps({
            "action": action,
            "arg": {"instType": inst_type, "channel": CHANNEL, "instId": inst_id},
            "data": [{"asks": asks, "bids": bids, "checksum": checksum, "seq": seq,
                      "ts": str(ts)}],
            "ts": ts}).decode()

    def _checksum(self, symbol: str) -> int:
        return bitget_checksum(self.levels(symbol, 0, CHECKSUM_LEVELS),
                               self.levels(symbol, 1, CHECKSUM_LEVELS))

    def after_subscribe(self, client: Client, symbol: str) -> list[str]:
        self.counts["snapshots"] += 1
        return [self._frame(symbol, "snapshot", self.levels(symbol, 0),
                            self.levels(symbol, 1), self.seq[symbol],
                            self._checksum(symbol))]

    def encode_update(self, symbol: str, changes: list[tuple[int, int, int]]) -> list[str]:
        last = self.seq[symbol]
        seq = last + 1 + self.rng.randrange(3)       # increasing, not contiguous
        if symbol in self._stale_seq:
            self._stale_seq.discard(symbol)
            self.faults["stale_seq"] += 1
            seq = last - self.rng.randrange(2)       # a repeat or an older seq
        self.seq[symbol] = max(seq, last)
        bids = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 0]
        asks = [[self.px(p), self.sz(q)] for side, p, q in changes if side == 1]
        if symbol in self._malformed:
            self._malformed.discard(symbol)
            self.faults["malformed_updates"] += 1
            (bids or asks)[0][0] = "12x.5"
        checksum = self._checksum(symbol)
        if self.take_corrupt(symbol):
            checksum ^= 0x5A5A
        return [self._frame(symbol, "update", bids, asks, seq, checksum)]

    def _in_top(self, symbol: str, changes) -> bool:
        book = self.books[symbol]
        for side, price, _ in changes:
            levels = book.bids if side == 0 else book.asks
            better = sum(1 for p in levels if (p > price if side == 0 else p < price))
            if better < CHECKSUM_LEVELS:
                return True
        return False

    async def emit(self, symbol: str) -> None:
        changes = self.books[symbol].step()
        if not changes:
            return
        frames = self.encode_update(symbol, changes)
        if self._drop.get(symbol) and self._in_top(symbol, changes):
            self._drop[symbol] -= 1
            self.faults["dropped"] += 1
            return
        self.events_sent += 1
        for c in list(self.clients):
            if symbol in c.symbols:
                for f in frames:
                    with contextlib.suppress(ConnectionClosed):
                        await c.ws.send(f)

    # -- REST ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v2/spot/public/symbols", self._spot),
                web.get("/api/v2/mix/market/contracts", self._contracts)]

    def _envelope(self, data: list) -> web.Response:
        return web.json_response({"code": "00000", "msg": "success",
                                  "requestTime": int(time.time() * 1000), "data": data})

    async def _spot(self, request: web.Request) -> web.Response:
        data = []
        for s in self.symbols:
            inst_type, inst_id = wire(s)
            if inst_type == "SPOT":
                data.append({"symbol": inst_id, "baseCoin": inst_id[:-4], "quoteCoin": "USDT",
                             "pricePrecision": str(self.price_decimals),
                             "quantityPrecision": str(self.size_decimals),
                             "status": "online"})
        return self._envelope(data)

    async def _contracts(self, request: web.Request) -> web.Response:
        data = []
        if request.query.get("productType", "").upper() == "USDT-FUTURES":
            for s in self.symbols:
                inst_type, inst_id = wire(s)
                if inst_type == "USDT-FUTURES":
                    data.append({"symbol": inst_id, "baseCoin": inst_id[:-4],
                                 "quoteCoin": "USDT", "productType": "USDT-FUTURES",
                                 "pricePlace": str(self.price_decimals),
                                 "volumePlace": str(self.size_decimals),
                                 "symbolType": "perpetual", "symbolStatus": "normal"})
        return self._envelope(data)
