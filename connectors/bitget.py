"""Bitget v2 public ``books`` channel (spot and USDT-M futures): a full-depth snapshot,
then updates with absolute sizes ("0" deletes), a CRC32 checksum after every message
and an increasing ``seq``.

Sources (Bitget's current documentation; third-party mirrors of the same text were
what the search tool could reach):

* https://www.bitget.com/api-doc/common/websocket-intro: endpoint
  ``wss://ws.bitget.com/v2/ws/public``; text ``ping`` every 30 s, answered ``pong``
  (no ping for 2 minutes: disconnected); at most 10 messages per second sent, 240
  subscribe requests per hour per connection, 1000 channels per connection (50
  advised), forced disconnect every 24 h.
* https://www.bitget.com/api-doc/spot/websocket/public/Depth-Channel and
  https://www.bitget.com/api-doc/contract/websocket/public/Order-Book-Channel
  (mirrored at github.com/sebastianganser/Bitget_API,
  contract/websocket/public/Order-Book-Channel.md): subscribe
  ``{"op":"subscribe","args":[{"instType":"SPOT"|"USDT-FUTURES","channel":"books",
  "instId":"BTCUSDT"}]}``; push ``{"action":"snapshot"|"update","arg":{...},"data":
  [{"asks","bids","checksum","seq","ts"}]}``.  Checksum: CRC32 (signed) of the top
  25 levels interleaved ``bidPx:bidSz:askPx:askSz``, "DO use the original value"
  (``0.5000`` stays ``0.5000``).  ``seq``: "increasing except during symbol
  maintenance"; nothing says it is contiguous.

How the connector keeps a book right:

* Checksum.  The text rule is NOT the engine's CK_OKX (shortest text): in the 2022
  recording all 443 checksums match the padded texts as sent and none matches the
  shortest form.  No engine scheme renders padded text, so (engine files being out of
  bounds) the connector keeps a small shadow of each book (level texts as last sent,
  sorted integer keys) and checks Bitget's checksum itself; a mismatch counts a
  checksum failure and resyncs.  A message that passes is published with a CK_OKX
  checksum computed from the verified shadow, so the writer still proves that the
  engine's own top 25 equals the venue-verified book (``checksums_verified`` counts
  those).  With an engine scheme for padded text (see ``ENGINE_TEXT_SCHEME``) the venue
  value could go to the writer directly and the shadow could go.
* Sequence.  Each update's ``seq`` must exceed the last one applied; one that does
  not (out of order, replayed, or the maintenance reset) is a gap: resync.  A lost
  message cannot be seen from ``seq`` (it is not documented as contiguous; ccxt shows
  snowflake-sized values); the checksum catches it.
* Resync: unsubscribe + subscribe that book (the venue answers with a new snapshot);
  its updates are dropped until that snapshot.  At most ``OPS_BUDGET`` of the 240
  hourly subscribe requests are spent; past that, or without a snapshot within
  ``RESUBSCRIBE_TIMEOUT``, the connection is reopened.
* Scales: Bitget pads every number to the instrument's precision (``pricePrecision``
  / ``quantityPrecision`` on spot, ``pricePlace`` / ``volumePlace`` on futures), which
  the recording confirms (deletes are a bare "0"), so the book's decimals are exactly
  those: no headroom (a padded-text checksum scheme needs book decimals = wire
  decimals).  A finer precision set mid-session would be reported as malformed
  (PARSE_PRECISION) and resynced until a restart re-reads the instrument list.
* Natives: spot ``BTCUSDT``; futures ``BTCUSDT_UMCBL`` (USDT-M), ``_DMCBL`` (coin-M),
  ``_CMCBL`` (USDC-M), Bitget's own v1 suffixes, since v2 spells spot and futures
  ``BTCUSDT`` alike.

The 2022 recording speaks the old ``spot/v1`` dialect (instType ``sp``, no ``seq``,
v1 instrument lists); the message shape and checksum are the same.  ``Bitget`` itself
reads both (connectors.RECORDINGS maps BITGET to it); ``BitgetV1`` also speaks v1 when
connecting (URL, subscribe message, instrument URLs).

Verified against the recording: snapshot/update merge, the checksum text rule (443 of
443), padded numbers at the instrument scales, v1 instrument fields.  Verified only
against the simulator (written from the documentation): v2 subscribe/ack/seq, resync
by resubscribe, ping/pong.  Not confirmed: the exact v2 instrument-list field names
(``pricePrecision`` / ``quantityPrecision``; v1's ``priceScale`` / ``quantityScale``
are read too), whether ``seq`` is contiguous, how deep v2 ``books`` really is
(``depth`` 1000 kept), and whether a v2 checksum can legitimately be 0 (a 0 is not
verified, as on OKX).
"""

from __future__ import annotations

import logging
import time
import zlib
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, Protocol
from connectors.publish import join_levels
from engine.checksum import CK_OKX
from engine.constants import NO_SEQ

log = logging.getLogger("hftbook.connectors")

CHANNEL = "books"
CHECKSUM_LEVELS = 25
OPS_PER_HOUR = 240            # subscribe requests per connection per hour
OPS_BUDGET = OPS_PER_HOUR - 20
RESUBSCRIBE_TIMEOUT = 10.0    # seconds without the new snapshot: reconnect
PING_EVERY = 25.0             # Bitget: a text ping at least every 30 s
ENGINE_TEXT_SCHEME = None     # an engine scheme for padded text, once there is one

SPOT_PATH = "/api/v2/spot/public/symbols"
MIX_PATH = "/api/v2/mix/market/contracts"
PRODUCT_TYPES = ("USDT-FUTURES",)
SUFFIX = {"USDT-FUTURES": "_UMCBL", "COIN-FUTURES": "_DMCBL", "USDC-FUTURES": "_CMCBL"}
# v1 dialect: instType on the wire, product types of the v1 contract lists
V1_INST_TYPES = {"SP": "SPOT", "MC": "MC"}
V1_SUFFIX_TYPE = {"_UMCBL": "USDT-FUTURES", "_DMCBL": "COIN-FUTURES",
                  "_CMCBL": "USDC-FUTURES"}


@dataclass(frozen=True, slots=True)
class BitgetInstrument(Instrument):
    inst_type: str = "SPOT"     # SPOT, USDT-FUTURES, COIN-FUTURES, USDC-FUTURES
    inst_id: str = ""           # as subscribed: BTCUSDT


def inst_type_of(inst: Instrument) -> str:
    t = getattr(inst, "inst_type", "")
    if t:
        return t
    if inst.kind == "spot":
        return "SPOT"
    for suffix, t in V1_SUFFIX_TYPE.items():
        if inst.native.endswith(suffix):
            return t
    return "USDT-FUTURES"


def inst_id_of(inst: Instrument) -> str:
    i = getattr(inst, "inst_id", "")
    if i:
        return i
    for suffix in V1_SUFFIX_TYPE:
        if inst.native.endswith(suffix):
            return inst.native[: -len(suffix)]
    return inst.native


def _int_text(text: str, decimals: int) -> int:
    """Exact fixed-point key of a decimal text (sorting the shadow book)."""
    whole, _, frac = text.partition(".")
    if len(frac) > decimals or not (whole + frac).isdigit():
        raise ValueError(f"bad number {text!r}")
    return int(whole + frac.ljust(decimals, "0"))


def _short(text: str) -> str:
    """The shortest form of a decimal text (what CK_OKX renders)."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class _Shadow:
    """One side of a book as Bitget wrote it: key -> (price text, size text), keys kept
    sorted ascending (bids are read from the end)."""

    __slots__ = ("levels", "keys")

    def __init__(self) -> None:
        self.levels: dict[int, tuple[str, str]] = {}
        self.keys: list[int] = []

    def set(self, key: int, price: str, size: str, zero: bool) -> None:
        levels = self.levels
        if zero:
            if levels.pop(key, None) is not None:
                del self.keys[bisect_left(self.keys, key)]
        else:
            if key not in levels:
                insort(self.keys, key)
            levels[key] = (price, size)

    def top(self, n: int, descending: bool) -> list[tuple[str, str]]:
        keys = self.keys[:-n - 1:-1] if descending else self.keys[:n]
        return [self.levels[k] for k in keys]


def _checksum_text(bids, asks, shorten: bool) -> bytes:
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        for side in (bids, asks):
            if i < len(side):
                p, q = side[i]
                parts += (_short(p), _short(q)) if shorten else (p, q)
    return ":".join(parts).encode()


class _Sync:
    __slots__ = ("synced", "seq", "resubscribing", "since", "bids", "asks")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.synced = False
        self.seq: int | None = None
        self.resubscribing = False
        self.since = 0.0
        self.bids = _Shadow()
        self.asks = _Shadow()


def _side(levels) -> tuple[bytes, bytes]:
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    return join_levels(levels)


class Bitget(Protocol):
    exchange = "bitget"
    ws_url = "wss://ws.bitget.com/v2/ws/public"
    rest_url = "https://api.bitget.com"
    max_symbols_per_connection = 50     # Bitget advises <= 50 channels per connection
    subscribe_batch = 50
    subscribe_interval = 0.15           # <= 10 messages per second
    connect_interval = 0.25
    ping_interval = PING_EVERY
    checksum_scheme = CK_OKX            # what the writer verifies (see the docstring)
    depth = 1000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sync = {s: _Sync() for s in self.targets}
        self.by_wire: dict[tuple[str, str], str] = {}
        for s in self.targets:
            inst = self.instruments[s]
            t, i = inst_type_of(inst), inst_id_of(inst)
            self.by_wire[(t, i)] = s
            if t != "SPOT":
                self.by_wire.setdefault(("MC", i), s)
        self.venue_checksums_ok = 0      # Bitget checksums this connector verified
        self.pings_sent = 0
        self._ops: deque[float] = deque()

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [f"{cls.rest_url}{SPOT_PATH}"] + [
            f"{cls.rest_url}{MIX_PATH}?productType={t}" for t in PRODUCT_TYPES]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """v2 spot symbols / mix contracts, and the v1 lists of the recording."""
        msg = orjson.loads(body)
        if not isinstance(msg, dict) or msg.get("code") != "00000" \
                or not isinstance(msg.get("data"), list):
            raise ConfigError(f"bitget: instrument list error: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg["data"]:
            if not isinstance(x, dict):
                continue
            base, quote = x.get("baseCoin", ""), x.get("quoteCoin", "")
            if "pricePlace" in x:   # futures (v1 and v2)
                sym = x.get("symbol", "")
                ptype = (x.get("productType") or "").upper()
                if "_" in sym:      # v1: BTCUSDT_UMCBL
                    inst_id, suffix = sym.split("_", 1)
                    ptype = V1_SUFFIX_TYPE.get("_" + suffix, "")
                    native = sym
                else:
                    inst_id = sym
                    ptype = ptype or ("USDT-FUTURES" if quote == "USDT" else "")
                    native = sym + SUFFIX.get(ptype, "")
                if not ptype or not inst_id:
                    continue
                pdec, sdec = int(x["pricePlace"]), int(x["volumePlace"])
                delivery = x.get("symbolType") == "delivery"
                kind = "future" if delivery else "perp"
                unified = f"{base}-{quote}-PERP" if not delivery else \
                    f"{base}-{quote}-{x.get('deliveryTime', '')}"
                out[native] = BitgetInstrument(
                    cls.exchange, native, unified, pdec, sdec, "", "", kind,
                    inst_type=ptype, inst_id=inst_id)
            else:                   # spot: v2 symbols, v1 products
                inst_id = x.get("symbolName") or x.get("symbol", "")
                p = x.get("pricePrecision", x.get("priceScale"))
                q = x.get("quantityPrecision", x.get("quantityScale"))
                if not inst_id or p is None or q is None:
                    continue
                out[inst_id] = BitgetInstrument(
                    cls.exchange, inst_id, f"{base}-{quote}", int(p), int(q), "", "",
                    "spot", inst_type="SPOT", inst_id=inst_id)
        return out

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Books the recording has data for (it subscribed spot books only)."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                arg = msg.get("arg") if isinstance(msg, dict) else None
                if isinstance(arg, dict) and arg.get("channel") == CHANNEL and "data" in msg:
                    t = V1_INST_TYPES.get(str(arg.get("instType")).upper(),
                                          str(arg.get("instType")).upper())
                    seen.add(arg.get("instId") if t == "SPOT" else (t, arg.get("instId")))
        return [n for n in natives if n in seen]

    # -- subscription ------------------------------------------------------------------
    def _arg(self, symbol: str) -> dict:
        inst = self.instruments[symbol]
        return {"instType": inst_type_of(inst), "channel": CHANNEL,
                "instId": inst_id_of(inst)}

    def _request(self, op: str, symbols: list[str]) -> str:
        self._ops.append(time.monotonic())
        return orjson.dumps({"op": op, "args": [self._arg(s) for s in symbols]}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", b) for b in self.symbol_batches(symbols)]

    def _budget_left(self) -> int:
        cutoff = time.monotonic() - 3600.0
        while self._ops and self._ops[0] < cutoff:
            self._ops.popleft()
        return OPS_BUDGET - len(self._ops)

    def request_resync(self, symbol: str) -> None:
        sync = self.sync[symbol]
        if self._budget_left() >= 2:
            self.outbox.append(self._request("unsubscribe", [symbol]))
            self.outbox.append(self._request("subscribe", [symbol]))
            sync.resubscribing = True
            sync.since = time.monotonic()
        else:
            log.warning("bitget: subscribe budget spent: reconnecting to resync %s", symbol)
            self.reconnect_requested = True

    def reset_symbol(self, symbol: str) -> None:
        sync = self.sync[symbol]
        resub, since = sync.resubscribing, sync.since
        sync.reset()
        sync.resubscribing, sync.since = resub, since   # a pending resubscribe stays

    def on_connect(self) -> None:
        self._ops.clear()
        for sync in self.sync.values():
            sync.resubscribing = False
        super().on_connect()

    def ping_message(self) -> str | None:
        self.pings_sent += 1
        return "ping"

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        if frame == "pong" or frame == b"pong":
            self.stats.ignored_frames += 1
            return
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        event = msg.get("event")
        if event is not None:
            if event == "error":
                raise MalformedFrame(f"venue error {msg.get('code')}: {msg.get('msg')}")
            self.stats.ignored_frames += 1      # subscribe / unsubscribe acks
            return
        arg = msg.get("arg")
        if not isinstance(arg, dict):
            raise MalformedFrame("neither an event nor channel data")
        if arg.get("channel") != CHANNEL:
            self.stats.ignored_frames += 1
            return
        t = str(arg.get("instType", "")).upper()
        symbol = self.by_wire.get((V1_INST_TYPES.get(t, t), arg.get("instId")))
        if symbol is None:
            self.stats.unknown_symbol_frames += 1
            return
        action, data = msg.get("action"), msg.get("data")
        if action not in ("snapshot", "update") or type(data) is not list:
            raise MalformedFrame("books frame without action or data", symbol)
        sync = self.sync[symbol]
        for entry in data:
            if action == "snapshot":
                sync.reset()                    # also ends a resubscribe
            elif not sync.synced:
                self.stats.ignored_frames += 1  # before the (new) snapshot
                continue
            try:
                self._apply(symbol, sync, entry, action == "snapshot", recv_ns)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise MalformedFrame(f"bad books entry: {type(exc).__name__}: {exc}",
                                     symbol) from exc

    def _apply(self, symbol: str, sync: _Sync, entry, snapshot: bool, recv_ns: int) -> None:
        if type(entry) is not dict:
            raise TypeError("data entry is not an object")
        seq = entry.get("seq")
        if seq is not None:
            if isinstance(seq, str) and seq.isdigit():
                seq = int(seq)
            if type(seq) is not int:
                raise TypeError(f"seq is not an integer: {seq!r}")
            if not snapshot and sync.seq is not None and seq <= sync.seq:
                self.gap(symbol, f"seq {seq} after {sync.seq}")
                return
        elif sync.seq is not None:
            raise ValueError("update without seq on a sequenced book")
        ck = entry.get("checksum", 0)
        if type(ck) is not int:
            raise TypeError(f"checksum is not an integer: {ck!r}")
        bid_levels, ask_levels = entry["bids"], entry["asks"]
        bids, asks = _side(bid_levels), _side(ask_levels)
        ts = entry.get("ts")
        ts_ns = int(ts) * 1_000_000 if ts else 0
        engine_ck = None
        if self.verify_checksums:
            self._shadow_apply(symbol, sync, bid_levels, ask_levels)
            if ck:
                engine_ck = self._verify(symbol, sync, ck)
                if engine_ck is None:
                    return
        if not self.publish(symbol, bids, asks, NO_SEQ if seq is None else seq, ts_ns,
                            recv_ns, snapshot=snapshot, checksum=engine_ck,
                            live=snapshot):
            return
        sync.synced = True
        if seq is not None:
            sync.seq = seq

    def _shadow_apply(self, symbol: str, sync: _Sync, bid_levels, ask_levels) -> None:
        inst = self.instruments[symbol]
        pd, sd = inst.price_decimals, inst.size_decimals
        for shadow, levels in ((sync.bids, bid_levels), (sync.asks, ask_levels)):
            for lv in levels:
                p, q = lv[0], lv[1]
                if type(p) is not str or type(q) is not str:
                    raise TypeError("level numbers are not strings")
                shadow.set(_int_text(p, pd), p, q, _int_text(q, sd) == 0)

    def _verify(self, symbol: str, sync: _Sync, ck: int) -> int | None:
        """Check Bitget's checksum on the shadow; the CK_OKX value of the verified top 25
        for the writer, or None after a mismatch (counted, resynced)."""
        top_b = sync.bids.top(CHECKSUM_LEVELS, True)
        top_a = sync.asks.top(CHECKSUM_LEVELS, False)
        got = zlib.crc32(_checksum_text(top_b, top_a, False))
        if got != ck & 0xFFFFFFFF:
            st = self.stats.sym(symbol)
            st.checksum_failures += 1
            log.warning("bitget %s: checksum mismatch (venue %d, book %d): resync", symbol,
                        ck, got)
            self.resync(symbol, "checksum mismatch")
            return None
        self.venue_checksums_ok += 1
        if ENGINE_TEXT_SCHEME is not None:
            return ck
        return zlib.crc32(_checksum_text(top_b, top_a, True))

    # -- health ------------------------------------------------------------------------
    def check_health(self, symbols=None) -> None:
        super().check_health(symbols)
        now = time.monotonic()
        if any(y.resubscribing and now - y.since > RESUBSCRIBE_TIMEOUT
               for y in self.sync.values()):
            log.warning("bitget: no snapshot after a resubscribe: reconnecting")
            self.reconnect_requested = True


class BitgetV1(Bitget):
    """The 2022 ``spot/v1`` dialect (the recording): instType ``SP`` / ``MC``, no seq,
    v1 instrument lists.  Parsing is shared with Bitget."""

    ws_url = "wss://ws.bitget.com/spot/v1/stream"

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [f"{cls.rest_url}/api/spot/v1/public/products",
                f"{cls.rest_url}/api/mix/v1/market/contracts?productType=umcbl"]

    def _arg(self, symbol: str) -> dict:
        inst = self.instruments[symbol]
        return {"instType": "SP" if inst_type_of(inst) == "SPOT" else "MC",
                "channel": CHANNEL, "instId": inst_id_of(inst)}
