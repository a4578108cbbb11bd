"""AscendEX (formerly BitMax) spot, pro v1 websocket: depth diffs synced against a
websocket depth snapshot.

* ``wss://ascendex.com/<account group>/api/pro/v1/stream`` (public data on any group;
  the recording used group 1).  Subscribe ``{"op":"sub","ch":"depth:BTC/USDT,ETH/USDT"}``;
  acks ``{"m":"sub","ch":"depth:BTC/USDT","code":0}`` (one per symbol).
* Diffs ``{"m":"depth","symbol":"BTC/USDT","data":{"ts","seqnum","asks":[[p,q]],
  "bids":[[p,q]]}}``: absolute sizes, "0" deletes; ``seqnum`` grows by exactly 1 per
  message of a symbol.
* Snapshot over the same socket: ``{"op":"req","action":"depth-snapshot","args":
  {"symbol":"BTC/USDT"}}`` -> ``{"m":"depth-snapshot","symbol",...,"data":{"ts",
  "seqnum","asks","bids"}}``.
* Sync: buffer diffs, request the snapshot (seqnum S), drop diffs with seqnum <= S,
  then every diff must have seqnum == last + 1; anything else is a gap: stale, new
  snapshot.  (Confirmed in the 2021 recording: diffs with seqnum == S arrive before
  the snapshot and are dropped; the next is S + 1.)
* Keep-alive: the server sends ``{"m":"ping","hp":N}`` (every 15 s in the recording);
  the client answers ``{"op":"pong"}`` (recorded Sent lines).
* Errors: ``{"m":"error","code":...,"reason":...}`` or an ack with ``code`` != 0.
* Instruments: ``GET /api/pro/v1/products`` (``tickSize``, ``lotSize``); natives are
  spelled ``BTC/USDT``.  No checksum.
"""

from __future__ import annotations

import orjson

from connectors.base import Instrument, MalformedFrame, Protocol, RestRequest
from connectors.publish import join_pairs
from engine.constants import LIVE
from engine.fixedpoint import MAX_DECIMALS, decimals_for

MAX_BUFFERED = 5000   # diffs held per symbol while waiting for a snapshot
PRICE_HEADROOM = 2    # decimals beyond tickSize: survives a finer tick mid-session
SIZE_HEADROOM = 2     # decimals beyond lotSize


class _Sync:
    __slots__ = ("live", "last", "buffer", "requested")

    def __init__(self) -> None:
        self.live = False
        self.last = 0
        self.buffer: list[dict] = []
        self.requested = False


def _seqnum(data: dict, symbol: str) -> int:
    seq = data["seqnum"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise MalformedFrame("seqnum is not an integer", symbol)
    return seq


class AscendEX(Protocol):
    exchange = "ascendex"
    ws_url = "wss://ascendex.com/1/api/pro/v1/stream"
    rest_url = "https://ascendex.com"
    instruments_path = "/api/pro/v1/products"
    max_symbols_per_connection = 100   # not documented: conservative
    subscribe_batch = 50               # symbols per "sub" message
    subscribe_interval = 0.05
    depth = 1000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sync = {s: _Sync() for s in self.targets}
        self.pongs_sent = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, dict) or msg.get("code") != 0 \
                or not isinstance(msg.get("data"), list):
            raise ValueError(f"ascendex: not a product list: {str(msg)[:80]}")
        out = {}
        for p in msg["data"]:
            tick, lot = p.get("tickSize"), p.get("lotSize")
            if not tick or not lot or "symbol" not in p:
                continue
            pdec = min(decimals_for(tick) + PRICE_HEADROOM, MAX_DECIMALS)
            sdec = min(decimals_for(lot) + SIZE_HEADROOM, MAX_DECIMALS)
            base = p.get("baseAsset") or p["symbol"].split("/")[0]
            quote = p.get("quoteAsset") or p["symbol"].split("/")[-1]
            out[p["symbol"]] = Instrument(cls.exchange, p["symbol"], f"{base}-{quote}", pdec,
                                          sdec, tick, lot, "spot")
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.instruments_path]

    # -- subscription ----------------------------------------------------------------
    @staticmethod
    def snapshot_message(symbol: str) -> str:
        return orjson.dumps({"op": "req", "action": "depth-snapshot",
                             "args": {"symbol": symbol}}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        msgs = [orjson.dumps({"op": "sub", "ch": "depth:" + ",".join(batch)}).decode()
                for batch in self.symbol_batches(symbols)]
        for s in symbols:   # as recorded: snapshots asked for right after subscribing
            sync = self.sync.get(s)
            if sync is not None and not sync.requested:
                sync.requested = True
                msgs.append(self.snapshot_message(s))
        return msgs

    def request_resync(self, symbol: str) -> None:
        sync = self.sync[symbol]
        if not sync.requested:
            sync.requested = True
            self.outbox.append(self.snapshot_message(symbol))

    def reset_symbol(self, symbol: str) -> None:
        self.sync[symbol] = _Sync()

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = msg.get("m")
        if kind == "depth":
            self._on_depth(msg, recv_ns)
        elif kind == "depth-snapshot":
            self._on_snapshot(msg, recv_ns)
        elif kind == "ping":
            self.outbox.append('{"op":"pong"}')
            self.pongs_sent += 1
            self.stats.ignored_frames += 1
        elif kind == "error" or (kind == "sub" and msg.get("code", 0) != 0):
            raise MalformedFrame(f"request failed: {str(msg)[:120]}")
        elif isinstance(kind, str):
            self.stats.ignored_frames += 1   # connected, sub/unsub acks, pong, trades...
        else:
            raise MalformedFrame("no message type 'm'")

    def _target(self, msg: dict) -> tuple[str, _Sync, dict] | None:
        symbol = msg["symbol"]
        data = msg["data"]
        if not isinstance(data, dict):
            raise MalformedFrame("data is not an object", symbol)
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return None
        return symbol, sync, data

    def _on_depth(self, msg: dict, recv_ns: int) -> None:
        t = self._target(msg)
        if t is None:
            return
        symbol, sync, data = t
        _seqnum(data, symbol)
        if not sync.live:
            if len(sync.buffer) >= MAX_BUFFERED:
                sync.buffer.clear()
                self.resync(symbol, "snapshot too slow: buffer overflow")
            sync.buffer.append(data)
            self.request_resync(symbol)
            return
        self._apply(symbol, sync, data, recv_ns)

    def _apply(self, symbol: str, sync: _Sync, data: dict, recv_ns: int) -> bool:
        seq = _seqnum(data, symbol)
        if seq <= sync.last:
            return True                       # covered by the snapshot
        if seq != sync.last + 1:
            self.gap(symbol, f"seqnum={seq} != last+1={sync.last + 1}")
            return False
        try:
            bids, asks = join_pairs(data["bids"]), join_pairs(data["asks"])
        except (ValueError, TypeError) as exc:
            raise MalformedFrame(f"bad levels: {exc}", symbol) from None
        if not self.publish(symbol, bids, asks, seq, int(data.get("ts") or 0) * 1_000_000,
                            recv_ns):
            return False
        sync.last = seq
        return True

    def _on_snapshot(self, msg: dict, recv_ns: int) -> None:
        t = self._target(msg)
        if t is None:
            return
        symbol, sync, data = t
        if sync.live:                         # an answer we no longer need
            self.stats.ignored_frames += 1
            return
        seq = _seqnum(data, symbol)
        try:
            bids, asks = join_pairs(data["bids"]), join_pairs(data["asks"])
        except (ValueError, TypeError) as exc:
            raise MalformedFrame(f"bad snapshot levels: {exc}", symbol) from None
        buffered = sync.buffer
        if not self.publish(symbol, bids, asks, seq, int(data.get("ts") or 0) * 1_000_000,
                            recv_ns, snapshot=True):
            return
        sync.live = True
        sync.last = seq
        sync.buffer = []
        sync.requested = False
        for ev in buffered:
            if not self._apply(symbol, sync, ev, recv_ns):
                return
        self.set_status(symbol, LIVE)

    def on_snapshot(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        raise MalformedFrame("ascendex snapshots come over the websocket", request.symbol)
