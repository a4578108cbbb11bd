"""HTX (formerly Huobi) spot: the incremental Market-By-Price book, 150 levels, and the
full-snapshot ``depth`` channel the 2021 recording used.

Live protocol (``HTX``):

* Endpoint ``wss://api.huobi.pro/feed`` (MBP is served there; ``/ws`` also carries the
  150-level MBP and the ``depth`` channel).  Every server frame is gzip-compressed JSON
  in a binary frame; frames are inflated with a hard cap (connectors.compression) so a
  decompression bomb is a counted malformed frame, not an out-of-memory.
* Heartbeat: the server sends ``{"ping": n}`` (every 5 s) and closes the connection
  after two unanswered pings; the client answers ``{"pong": n}`` at once.
* Subscribe ``{"sub": "market.<sym>.mbp.150", "id": ...}`` (one topic per request; ack
  ``{"id", "status": "ok", "subbed"}``).  Updates ``{"ch", "ts", "tick": {"seqNum",
  "prevSeqNum", "bids", "asks"}}`` carry absolute sizes (0 deletes) and are the diff of
  two 100 ms snapshots of the top 150 levels, so levels leaving the top 150 arrive as
  deletes and the book never holds more; a side may be absent or empty; nothing is sent
  while the book is unchanged (change of 2020-11).
* Snapshot: ``{"req": "market.<sym>.mbp.150", "id": ...}`` on the same connection,
  answered by ``{"id", "rep", "status": "ok", "data": {"seqNum", "bids", "asks"}}``.
  Sync (documented): buffer updates, request the snapshot, then the first update
  applied must have ``prevSeqNum == snapshot seqNum``; updates with ``seqNum <=`` the
  snapshot's are already in it; afterwards every update's ``prevSeqNum`` must equal the
  last applied ``seqNum``.  Anything else is a gap: the book goes stale and a new
  ``req`` is sent (no resubscribe needed; the subscription stays open).  A snapshot
  older than the buffered stream is requested again (counted as a resync, not a gap).
* Numbers are JSON numbers, sometimes in exponent form (``9.121E-7``, ``4.0E7``): they
  are parsed as their exact text (stdlib json, ``parse_float=str``), never as floats.
* Scales: prices use ``price-precision`` (+1 decimal of headroom; every recorded price
  fits ``price-precision`` exactly).  Sizes do NOT respect ``amount-precision``: book
  levels aggregate orders whose amounts carry up to 17 significant digits (recorded:
  ``0.575610404535042`` on borusdt, amount-precision 6).  Sizes therefore get the most
  decimals for which the instrument's maximum order amount still fits int64; a level
  that needs more (int digits + decimals > 18) cannot be held exactly by the engine:
  the message is dropped, counted (malformed: precision/overflow) and the book stays
  stale until a representable one arrives.  In the recording this happens for
  xvgeth and fil3susdt (see tests/connectors/test_htx_recorded.py).
* Instruments: ``GET /v1/common/symbols`` (recorded; long-standing v1 endpoint; the
  newer ``/v1/settings/common/market-symbols`` short-key format is parsed too).  Native
  names are lowercase ``btcusdt``; unified ``BTC-USDT``.

Recorded dialect: the 2021 session subscribed ``market.<sym>.depth.step0``: every
message a full snapshot of up to 150 levels with ``tick.version``.  ``HTX`` accepts
those frames on any connection (each is published as a snapshot, stale versions are
skipped); ``HTXDepth`` is the dialect that subscribes to that channel.

Sources: https://huobiapi.github.io/docs/spot/v1/en/ (websocket market data, MBP);
https://www.htx.com/support/900000047626 (MBP feed: sub/req, seqNum/prevSeqNum);
https://www.huobi.com/support/en-us/detail/900001078223/ (req seqNum aligns with an
update's prevSeqNum, same connection); https://www.huobi.com/support/en-us/detail/900001526643/
(/feed endpoints, 150-level MBP is a 100 ms diff); https://www.huobi.com/support/zh-cn/detail/900003435006/
(no push when the 150-level book is unchanged); https://huobius.readme.io/reference/general-request-process
(ping/pong: 5 s, closed after two missed pongs).  Not confirmed from current official
pages (the search corpus held announcements and third-party code, not the live doc
page): the 400-level MBP topic (third-party code reports both use and rejection; not
used here), per-connection subscription limits (50 topics per connection assumed),
req rate limits, and whether ``/v1/common/symbols`` is still served.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from itertools import chain

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, Protocol
from connectors.compression import DEFAULT_MAX_BYTES, DecompressionError, gunzip
from engine.constants import LIVE
from engine.fixedpoint import MAX_DECIMALS

log = logging.getLogger("hftbook.connectors")

INSTRUMENTS_PATH = "/v1/common/symbols"
MBP_LEVELS = 150
MAX_BUFFERED = 2000          # updates held per book while its snapshot is on the way
INT64_MAX = 2**63 - 1
PRICE_HEADROOM = 1
_SEP = "\x01"


def _loads(text: bytes | str):
    """JSON with every non-integer number kept as its exact text."""
    return json.loads(text, parse_float=str)


def _side(levels) -> tuple[bytes, bytes]:
    """[[price, size], ...] (numbers as text or ints) -> joined (prices, sizes)."""
    if levels is None:
        return b"", b""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    if not levels:
        return b"", b""
    flat = list(chain.from_iterable(levels))
    if len(flat) != 2 * len(levels):
        raise ValueError("a level is not a [price, size] pair")
    return (_SEP.join(map(str, flat[0::2])).encode(), _SEP.join(map(str, flat[1::2])).encode())


def size_decimals(amount_precision: int, max_amount: str | float | int | None) -> int:
    """The most decimals (<= 18, >= amount_precision) at which ``max_amount`` fits int64."""
    if not max_amount:
        return min(MAX_DECIMALS, amount_precision + 8)
    cap = Decimal(str(max_amount))
    d = MAX_DECIMALS
    while d > amount_precision and cap * (Decimal(10) ** d) > INT64_MAX:
        d -= 1
    return d


class _Sync:
    """Sync state of one book (reset in place)."""

    __slots__ = ("live", "seq", "buffer", "requested", "version", "mode")

    def __init__(self) -> None:
        self.mode = ""               # "mbp" or "depth": what the venue sends for the book
        self.reset()

    def reset(self) -> None:
        self.live = False            # holds a snapshot and follows the stream
        self.seq = 0                 # MBP: seqNum last applied
        self.buffer: list[tuple[int, int, dict, int]] = []
        self.requested = False       # a req is outstanding
        self.version = -1            # depth: last version published


class HTX(Protocol):
    exchange = "htx"
    ws_url = "wss://api.huobi.pro/feed"
    rest_url = "https://api.huobi.pro"
    max_symbols_per_connection = 50
    subscribe_batch = 1          # one topic per sub request
    subscribe_interval = 0.02
    depth = MBP_LEVELS
    channel = "mbp.150"          # what subscribe_messages asks for

    def __init__(self, *args, max_frame_bytes: int = DEFAULT_MAX_BYTES, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_frame_bytes = max_frame_bytes
        self.sync = {s: _Sync() for s in self.targets}
        self._ids: dict[str, str] = {}   # request id -> symbol
        self._n = 0
        self.pongs_sent = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, dict) or msg.get("status", "ok") != "ok" \
                or not isinstance(msg.get("data"), list):
            raise ConfigError(f"htx: instrument list error: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg["data"]:
            sym = x.get("symbol")
            base = x.get("base-currency") or x.get("bc")
            quote = x.get("quote-currency") or x.get("qc")
            pp = x.get("price-precision", x.get("pp"))
            ap = x.get("amount-precision", x.get("ap"))
            if not sym or not base or not quote or pp is None or ap is None:
                continue
            amounts = [x.get(k) for k in ("max-order-amt", "limit-order-max-order-amt",
                                          "maxoa", "lomaxoa") if x.get(k)]
            max_amt = max((Decimal(str(a)) for a in amounts), default=None)
            out[sym] = Instrument(
                cls.exchange, sym, f"{base.upper()}-{quote.upper()}",
                min(int(pp) + PRICE_HEADROOM, MAX_DECIMALS), size_decimals(int(ap), max_amt),
                f"1e-{int(pp)}", f"1e-{int(ap)}", "spot")
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + INSTRUMENTS_PATH]

    # -- subscription --------------------------------------------------------------------
    def _id(self, symbol: str) -> str:
        self._n += 1
        rid = f"{self._n}"
        self._ids[rid] = symbol
        return rid

    def topic(self, symbol: str) -> str:
        return f"market.{symbol}.{self.channel}"

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        """One ``sub`` per book; MBP books also get their snapshot ``req`` right behind
        it (updates that arrive first are buffered)."""
        out = []
        for s in symbols:
            out.append(orjson.dumps({"sub": self.topic(s), "id": self._id(s)}).decode())
            if self.channel.startswith("mbp."):
                self.sync[s].mode = "mbp"
                self.sync[s].requested = True
                out.append(self._req(s))
        return out

    def _req(self, symbol: str) -> str:
        return orjson.dumps({"req": self.topic(symbol), "id": self._id(symbol)}).decode()

    def request_resync(self, symbol: str) -> None:
        """MBP: a new snapshot ``req`` on the open subscription.  Depth channel: nothing
        to ask, the next message is a full snapshot."""
        sync = self.sync[symbol]
        if sync.mode == "depth" or sync.requested:
            return
        sync.requested = True
        self.outbox.append(self._req(symbol))

    def reset_symbol(self, symbol: str) -> None:
        self.sync[symbol].reset()

    def on_connect(self) -> None:
        self._ids.clear()
        super().on_connect()

    # -- frames --------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        if isinstance(frame, (bytes, bytearray, memoryview)):
            try:
                frame = gunzip(bytes(frame), self.max_frame_bytes)
            except DecompressionError as exc:
                raise MalformedFrame(str(exc)) from exc
        msg = _loads(frame)
        if type(msg) is not dict:
            raise MalformedFrame("not a JSON object")
        ch = msg.get("ch")
        if ch is not None:
            self._on_channel(ch, msg, recv_ns)
        elif "ping" in msg:
            self.outbox.append(orjson.dumps({"pong": msg["ping"]}).decode())
            self.pongs_sent += 1
            self.stats.ignored_frames += 1
        elif "rep" in msg or "status" in msg:
            self._on_reply(msg, recv_ns)
        else:
            raise MalformedFrame("neither channel data, ping nor reply")

    def _book_of(self, topic) -> tuple[str, str]:
        """'market.btcusdt.mbp.150' -> ('btcusdt', 'mbp.150')."""
        if type(topic) is not str:
            raise MalformedFrame("topic is not a string")
        parts = topic.split(".", 2)
        if len(parts) != 3 or parts[0] != "market":
            raise MalformedFrame(f"unexpected topic {topic[:60]}")
        return parts[1], parts[2]

    def _on_channel(self, ch, msg: dict, recv_ns: int) -> None:
        symbol, kind = self._book_of(ch)
        if not (kind.startswith("mbp.") or kind.startswith("depth.")):
            self.stats.ignored_frames += 1      # trades, klines, ...
            return
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        tick = msg.get("tick")
        if type(tick) is not dict:
            raise MalformedFrame("book message without tick", symbol)
        try:
            bids, asks = _side(tick.get("bids")), _side(tick.get("asks"))
            ts = msg.get("ts", 0)
            ts_ns = int(ts) * 1_000_000 if type(ts) is int else 0
            if kind.startswith("depth."):
                self._on_depth(symbol, sync, tick, bids, asks, ts_ns, recv_ns)
                return
            if kind.startswith("mbp.refresh"):
                self.stats.ignored_frames += 1   # not subscribed by this connector
                return
            seq, prev = tick["seqNum"], tick["prevSeqNum"]
            if type(seq) is not int or type(prev) is not int:
                raise TypeError("seqNum/prevSeqNum are not integers")
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedFrame(f"bad book message: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        sync.mode = "mbp"
        up = (seq, prev, (bids, asks), ts_ns)
        if not sync.live:
            if len(sync.buffer) >= MAX_BUFFERED:
                sync.buffer.clear()
                self.resync(symbol, "snapshot too slow: buffer overflow")
                return
            sync.buffer.append(up)
            self.request_resync(symbol)
            return
        self._apply(symbol, sync, up, recv_ns)

    def _on_depth(self, symbol: str, sync: _Sync, tick: dict, bids, asks, ts_ns: int,
                  recv_ns: int) -> None:
        """A full-book message: publish as a snapshot; older versions are skipped."""
        sync.mode = "depth"
        version = tick.get("version", -1)
        if type(version) is not int:
            raise TypeError("version is not an integer")
        if version >= 0 and version <= sync.version:
            self.stats.ignored_frames += 1
            return
        if self.publish(symbol, bids, asks, max(version, 0), ts_ns, recv_ns, snapshot=True,
                        live=True):
            sync.version = version
            sync.live = True

    def _apply(self, symbol: str, sync: _Sync, up, recv_ns: int) -> bool:
        """Chain check then publish; False when the book was sent to resync."""
        seq, prev, (bids, asks), ts_ns = up
        if seq <= sync.seq:
            return True                      # already contained in the book
        if prev != sync.seq:
            self.gap(symbol, f"prevSeqNum={prev} != last seqNum={sync.seq}")
            return False
        if not self.publish(symbol, bids, asks, seq, ts_ns, recv_ns):
            return False
        sync.seq = seq
        return True

    def _on_reply(self, msg: dict, recv_ns: int) -> None:
        symbol = self._ids.pop(str(msg.get("id")), None)
        if msg.get("status") != "ok":
            reason = f"venue error {msg.get('err-code')}: {msg.get('err-msg')}"
            if symbol is not None and "rep" in msg:
                self.sync[symbol].requested = False   # the req failed: a later resync asks
            raise MalformedFrame(reason)
        if "subbed" in msg or "unsubbed" in msg or "rep" not in msg:
            self.stats.ignored_frames += 1
            return
        rep_symbol, kind = self._book_of(msg["rep"])
        sync = self.sync.get(rep_symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        if not sync.requested or sync.live:
            self.stats.reasons["unrequested snapshot ignored"] += 1
            return
        data = msg.get("data")
        try:
            seq = data["seqNum"]
            if type(seq) is not int:
                raise TypeError("seqNum is not an integer")
            bids, asks = _side(data.get("bids")), _side(data.get("asks"))
        except (KeyError, TypeError, ValueError) as exc:
            sync.requested = False
            raise MalformedFrame(f"bad snapshot: {type(exc).__name__}: {exc}",
                                 rep_symbol) from exc
        self._on_snapshot(rep_symbol, sync, seq, bids, asks, recv_ns)

    def _on_snapshot(self, symbol: str, sync: _Sync, seq: int, bids, asks,
                     recv_ns: int) -> None:
        buffered = sync.buffer
        sync.buffer = []
        sync.requested = False
        if buffered and buffered[0][1] > seq:
            # the snapshot predates the first buffered update: it cannot be spliced
            self.resync(symbol, "snapshot older than the buffered stream")
            sync.buffer = buffered
            return
        if not self.publish(symbol, bids, asks, seq, 0, recv_ns, snapshot=True):
            return
        sync.live, sync.seq = True, seq
        for up in buffered:
            if not self._apply(symbol, sync, up, recv_ns):
                return
        self.set_status(symbol, LIVE)


class HTXDepth(HTX):
    """The dialect of the 2021 recording: ``market.<sym>.depth.step0``, a full snapshot
    of up to 150 levels per message (no sequence chain; ``version`` orders them)."""

    channel = "depth.step0"
    ws_url = "wss://api.huobi.pro/ws"
