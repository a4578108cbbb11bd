"""Binance spot and USD-M futures: diff-depth streams synced against REST snapshots.

Spot (developers.binance.com, "How to manage a local order book correctly"):
  buffer ``<sym>@depth@100ms`` events; fetch ``/api/v3/depth`` (lastUpdateId L); drop
  events with u <= L; then for every event, with ``last`` the last applied u:
  u <= last -> stale, ignore;  U > last + 1 -> gap, resync;  else apply, last = u.
  The first applied event therefore straddles L + 1.
USD-M futures: drop u < L; the first applied event must have U <= L <= u (or pu == L: the
  snapshot fell between two events); afterwards every event's ``pu`` must equal the
  previous event's u (U may jump).
Neither sends a checksum.  The server pings every 20 s (spot) / 3 min (futures) with
protocol pings that the websocket client answers; connections last at most 24 h and a
``serverShutdown`` event asks for an early reconnect.
"""

from __future__ import annotations

import orjson

from connectors.base import Instrument, MalformedFrame, RestRequest
from connectors.publish import join_pairs
from connectors.restsync import RestSnapshotProtocol
from engine.constants import LIVE
from engine.fixedpoint import decimals_for

MAX_BUFFERED = 5000  # diff events held per symbol while waiting for a snapshot


class _Sync:
    __slots__ = ("live", "last", "buffer", "requested", "first")

    def __init__(self) -> None:
        self.live = False
        self.last = 0
        self.buffer: list[dict] = []
        self.requested = False
        self.first = True   # futures: the next event is the first after the snapshot


class BinanceSpot(RestSnapshotProtocol):
    exchange = "binance"
    ws_url = "wss://stream.binance.com:9443/stream"
    rest_url = "https://api.binance.com"
    snapshot_path = "/api/v3/depth"
    snapshot_params = "&limit={depth}"
    upper_case_symbols = True
    sync_state = _Sync
    instruments_path = "/api/v3/exchangeInfo"
    stream_suffix = "@depth@100ms"
    max_symbols_per_connection = 1024   # streams per connection
    subscribe_batch = 200               # params per SUBSCRIBE
    subscribe_interval = 0.25           # <= 5 inbound messages/s
    depth = 5000                        # REST snapshot limit (spot max)
    perp = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._msg_id = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """Scales come from the precision Binance writes numbers with (spot: the asset
        precisions, 8; futures: pricePrecision / quantityPrecision), not from the tick
        and step sizes: resting orders from before a tick-size change sit at finer
        prices (seen in the recorded futures snapshot: 0.50579 with tick 0.001)."""
        out = {}
        for s in orjson.loads(body)["symbols"]:
            f = {x["filterType"]: x for x in s.get("filters", ())}
            if "PRICE_FILTER" not in f or "LOT_SIZE" not in f:
                continue
            if cls.perp and s.get("contractType") not in ("PERPETUAL", None):
                continue
            tick, lot = f["PRICE_FILTER"]["tickSize"], f["LOT_SIZE"]["stepSize"]
            if cls.perp:
                pdec, sdec = s["pricePrecision"], s["quantityPrecision"]
            else:
                pdec, sdec = s["quoteAssetPrecision"], s["baseAssetPrecision"]
            pdec = max(pdec, decimals_for(tick))
            sdec = max(sdec, decimals_for(lot))
            unified = f"{s['baseAsset']}-{s['quoteAsset']}" + ("-PERP" if cls.perp else "")
            out[s["symbol"]] = Instrument(cls.exchange, s["symbol"], unified, min(pdec, 18),
                                          min(sdec, 18), tick, lot,
                                          "perp" if cls.perp else "spot")
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.instruments_path]

    # -- subscription ----------------------------------------------------------------
    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        msgs = []
        for batch in self.symbol_batches(symbols):
            self._msg_id += 1
            msgs.append(orjson.dumps({
                "method": "SUBSCRIBE", "id": self._msg_id,
                "params": [s.lower() + self.stream_suffix for s in batch]}).decode())
        return msgs

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        data = msg.get("data", msg) if isinstance(msg, dict) else None
        if not isinstance(data, dict):
            raise MalformedFrame("not a JSON object")
        event = data.get("e")
        if event != "depthUpdate":
            if event == "serverShutdown":
                self.reconnect_requested = True
            elif "result" in data or "id" in data:
                if data.get("error") or (data.get("code") and "result" not in data):
                    raise MalformedFrame(f"request failed: {data}")
            self.stats.ignored_frames += 1
            return
        symbol = data["s"]
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        if not isinstance(data["U"], int) or not isinstance(data["u"], int):
            raise MalformedFrame("U/u are not integers", symbol)
        if not sync.live:
            if len(sync.buffer) >= MAX_BUFFERED:
                sync.buffer.clear()
                self.resync(symbol, "snapshot too slow: buffer overflow")
            sync.buffer.append(data)
            self.request_resync(symbol)
            return
        self._apply_event(symbol, sync, data, recv_ns)

    def _in_sequence(self, symbol: str, sync: _Sync, ev: dict) -> bool | None:
        """True: apply; None: stale, skip; False: gap (resync already started)."""
        U, u = ev["U"], ev["u"]
        if u <= sync.last:
            return None
        if U > sync.last + 1:
            self.gap(symbol, f"U={U} > last+1={sync.last + 1}")
            return False
        return True

    def _apply_event(self, symbol: str, sync: _Sync, ev: dict, recv_ns: int) -> bool:
        ok = self._in_sequence(symbol, sync, ev)
        if ok is None:
            return True
        if not ok:
            return False
        if not self.publish(symbol, join_pairs(ev["b"]), join_pairs(ev["a"]), ev["u"],
                            ev.get("E", 0) * 1_000_000, recv_ns):
            return False
        sync.last = ev["u"]
        sync.first = False
        return True

    def on_snapshot(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        symbol = request.symbol
        sync = self.sync.get(symbol)
        if sync is None:
            raise MalformedFrame(f"snapshot for unknown symbol {symbol}")
        snap = orjson.loads(body)
        if not isinstance(snap, dict) or "lastUpdateId" not in snap:
            sync.requested = False
            raise MalformedFrame(f"not a depth snapshot: {str(snap)[:80]}", symbol)
        last_id = snap["lastUpdateId"]
        buffered = sync.buffer
        if buffered and self._snapshot_too_old(last_id, buffered[0]):
            sync.buffer = []
            sync.requested = False
            self.resync(symbol, "snapshot older than the buffered stream")
            return
        if not self.publish(symbol, join_pairs(snap["bids"]), join_pairs(snap["asks"]),
                            last_id, snap.get("E", 0) * 1_000_000, recv_ns, snapshot=True):
            return
        sync.live = True
        sync.last = last_id
        sync.first = True
        sync.buffer = []
        sync.requested = False
        for ev in buffered:
            if not self._apply_event(symbol, sync, ev, recv_ns):
                return
        self.set_status(symbol, LIVE)

    def _snapshot_too_old(self, last_id: int, first_buffered: dict) -> bool:
        return last_id + 1 < first_buffered["U"]


class BinanceFutures(BinanceSpot):
    exchange = "binance_futures"
    ws_url = "wss://fstream.binance.com/public/stream"
    rest_url = "https://fapi.binance.com"
    snapshot_path = "/fapi/v1/depth"
    instruments_path = "/fapi/v1/exchangeInfo"
    subscribe_interval = 0.12           # <= 10 inbound messages/s
    depth = 1000                        # REST snapshot max on futures
    perp = True

    def _in_sequence(self, symbol: str, sync: _Sync, ev: dict) -> bool | None:
        U, u = ev["U"], ev["u"]
        pu = ev.get("pu")
        if sync.first:
            if u < sync.last:
                return None
            # documented: U <= lastUpdateId <= u; an event whose pu is exactly the
            # snapshot's id continues it just as surely (a snapshot taken between events)
            if U > sync.last and pu != sync.last:
                self.gap(symbol, f"first event U={U} > lastUpdateId={sync.last}")
                return False
            return True
        if pu != sync.last:
            self.gap(symbol, f"pu={pu} != previous u={sync.last}")
            return False
        return True

    def _snapshot_too_old(self, last_id: int, first_buffered: dict) -> bool:
        return last_id < first_buffered["U"]
