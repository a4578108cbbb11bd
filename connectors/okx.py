"""OKX v5 public ``books`` channel: 400 levels, a snapshot then incremental updates with
absolute sizes ("0" deletes), chained by seqId / prevSeqId, with an optional CRC32.

How the connector keeps a book right (facts from connectors/PROTOCOLS.md section 5):

* Subscription: ``{"op":"subscribe","args":[{"channel":"books","instId":...}, ...]}``,
  one request per connection (OKX advises fewer than 30 channels of 50/400 levels per
  connection, so a connection carries 25 books; the request stays far under the 64 KB
  args limit).  Subscribe, unsubscribe and login requests share a budget of 480 per
  hour per connection; resyncs never spend more than ``OPS_BUDGET`` of it.
* Sequence: every update's ``prevSeqId`` must equal the ``seqId`` last applied, and the
  chain continues from its ``seqId``.  That one rule also accepts both documented
  exceptions: the idle keep-alive (empty sides, ``prevSeqId == seqId``) and the single
  update after a maintenance reset whose ``seqId`` is smaller than its ``prevSeqId``.
  Anything else is a gap.  The 2022 dialect (the recording) has no seqId at all: its
  updates are applied as they come and the checksum is the only guard.
* Resync after a gap, malformed message, checksum mismatch or crossed book: when OKX
  sends websocket snapshots, unsubscribe + subscribe; frames of that book are dropped
  until the new subscribe ack, so the old subscription's tail cannot leak into the new
  snapshot.  When the snapshot comes by REST (below), the REST bootstrap is re-run on
  the open subscription instead (no resubscribe, no budget spent).
* REST bootstrap: the 2026-02 changelog announced that the initial websocket snapshot
  goes away and the book is seeded from ``GET /api/v5/market/books?instId=..&sz=400
  &source=0``, whose ``seqId`` places it in the update stream.  Updates that arrive for
  a book without a snapshot are buffered and the REST snapshot is fetched; a snapshot
  older than the first buffered update's ``prevSeqId`` (or, with nothing buffered, than
  the last seqId the stream showed) is fetched again; updates with ``seqId`` at or
  below the snapshot's are already in it; the first one applied must satisfy
  ``prevSeqId <= snapshot seqId < seqId`` (sizes are absolute, so the overlap
  re-applies harmlessly), after which the chain rule holds.  The book is
  only declared live once such an update (or a keep-alive at the snapshot's seqId)
  proves the snapshot current.  Whichever comes first wins: a websocket snapshot
  supersedes a REST bootstrap in progress and a late REST answer is ignored.
* Checksum: CRC32 (signed) over the top 25 levels interleaved ``bidPx:bidSz:askPx:askSz``
  with the numbers as OKX writes them, which is the engine's CK_OKX (shortest decimal
  text from the fixed-point book).  OKX announced (notice of 2026-05-21) that from
  2026-06-23 the field stays present but is always 0: a checksum of 0 is therefore NOT
  verified; every non-zero checksum is.  A book whose snapshot carried a checksum goes
  live only once the writer has verified every checksum pushed for it (so a bad
  snapshot is never shown as live, not even between two health checks).
* Keep-alive: text ``ping`` when nothing arrived for ``ping_idle`` (< 30 s) seconds; the
  ``pong`` answer is counted as ignored.  A ``notice`` with code 64008 (service upgrade)
  asks the runner to reconnect.
* Instruments: ``/api/v5/public/instruments?instType=SPOT|SWAP|FUTURES``.  Unified names
  BTC-USDT (spot), BTC-USDT-PERP (SWAP), BTC-USD-20220527 (FUTURES, date from the
  instId, else expTime), options BTC-USD-20220514-22000-C.  Derivative sizes are in
  contracts, kept as sent (``OKXInstrument.ct_val`` converts).  Scales: OKX cancels
  resting orders finer than a new, coarser tick or lot, so no level is finer than the
  current tickSz / lotSz (the recording confirms it); but it makes ticks and lots finer
  without notice to running clients, so two decimals of headroom are kept.

Verified against the recording (2022): snapshot/update handling, every non-zero checksum,
shortest number text, instrument fields and names.  Verified only against the simulator
(written from the documentation): seqId rules, resubscribe, the REST bootstrap and its
splice rule.  Assumed from documentation alone: that the REST snapshot carries an integer
``seqId`` in the same sequence as the websocket (documented for ``/market/books``), that
``source=0`` is accepted, and that the first update after a REST snapshot may straddle it.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, RestRequest
from connectors.publish import join_levels
from connectors.restsync import RestSnapshotProtocol
from engine.checksum import CK_OKX
from engine.constants import H_CHECKSUM_FAIL, H_CHECKSUM_OK, HDR_WORDS, LIVE, NO_SEQ
from engine.fixedpoint import MAX_DECIMALS, decimals_for

log = logging.getLogger("hftbook.connectors")

BOOKS_PATH = "/api/v5/market/books"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
INST_TYPES = ("SPOT", "SWAP", "FUTURES")
KINDS = {"SPOT": "spot", "SWAP": "perp", "FUTURES": "future", "OPTION": "option"}

PRICE_HEADROOM = 2        # decimals beyond tickSz: survives a finer tick mid-session
SIZE_HEADROOM = 2         # decimals beyond lotSz
OPS_PER_HOUR = 480        # subscribe + unsubscribe + login requests per connection
OPS_BUDGET = OPS_PER_HOUR - 40  # what we let ourselves use of it (the rest is margin)
MAX_BUFFERED = 2000       # updates held per book while a REST snapshot is on its way
RESUBSCRIBE_TIMEOUT = 10.0  # seconds without the new subscribe ack: reconnect
PING_IDLE = 20.0          # seconds of silence before a ping (OKX closes after 30)
UPGRADE_NOTICE = "64008"  # "the connection will soon be closed for a service upgrade"

# cryptofeed names futures like BTC-USD-22K27: year, month letter, day
_MONTH_CODES = "FGHJKMNQUVXZ"
_CODED_DATE = re.compile(r"^(\d\d)([FGHJKMNQUVXZ])(\d\d)$")


@dataclass(frozen=True, slots=True)
class OKXInstrument(Instrument):
    """An OKX instrument; derivative sizes are contracts of ``ct_val`` ``ct_val_ccy``."""

    ct_val: str = ""
    ct_val_ccy: str = ""
    ct_type: str = ""       # linear / inverse (derivatives)
    state: str = ""         # live, suspend, preopen, test


class _Update(NamedTuple):
    """One parsed ``books`` entry: levels already joined for push_message."""

    seq: int | None
    prev: int | None
    bids: tuple[bytes, bytes]
    asks: tuple[bytes, bytes]
    ts_ns: int
    checksum: int


class _Sync:
    """Sync state of one book; reset in place so no caller holds a stale copy."""

    __slots__ = ("synced", "seq", "first", "buffer", "requested", "resubscribing", "since")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.synced = False          # the book holds a snapshot and follows the stream
        self.seq: int | None = None  # seqId last applied (None: the stream carries none)
        self.first = False           # REST snapshot not yet proven by an update
        self.buffer: list[_Update] = []
        self.requested = False       # REST snapshot asked for
        self.resubscribing = False   # drop data until the new subscribe ack
        self.since = 0.0


def _seq_field(value, name: str) -> int | None:
    if value is None or (type(value) is int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise TypeError(f"{name} is not an integer: {value!r}")


def _side(levels) -> tuple[bytes, bytes]:
    if type(levels) is not list:
        raise TypeError(f"levels are not a list: {str(levels)[:40]}")
    return join_levels(levels)


def _parse_entry(entry) -> _Update:
    """A ``books`` data entry (websocket or REST) -> _Update; TypeError/ValueError/KeyError
    when it is not one."""
    if type(entry) is not dict:
        raise TypeError("data entry is not an object")
    seq = _seq_field(entry.get("seqId"), "seqId")
    prev = _seq_field(entry.get("prevSeqId"), "prevSeqId")
    checksum = entry.get("checksum", 0)
    if type(checksum) is not int:
        raise TypeError(f"checksum is not an integer: {checksum!r}")
    ts = entry.get("ts")
    ts_ns = int(ts) * 1_000_000 if ts else 0
    return _Update(seq, prev, _side(entry["bids"]), _side(entry["asks"]), ts_ns, checksum)


def unified_name(inst_type: str, inst_id: str, exp_time: str = "") -> str:
    """BTC-USDT, BTC-USDT-PERP, BTC-USD-20220527, BTC-USD-20220514-22000-C."""
    if inst_type == "SWAP":
        return inst_id.removesuffix("-SWAP") + "-PERP"
    if inst_type not in ("FUTURES", "OPTION"):
        return inst_id
    parts = inst_id.split("-")
    if len(parts) > 2 and len(parts[2]) == 6 and parts[2].isdigit():
        parts[2] = "20" + parts[2]
    elif exp_time:
        day = datetime.fromtimestamp(int(exp_time) // 1000, tz=UTC).strftime("%Y%m%d")
        parts = parts[:2] + [day] + parts[3:]
    return "-".join(parts)


class OKX(RestSnapshotProtocol):
    exchange = "okx"
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url = "https://www.okx.com"
    snapshot_path = BOOKS_PATH
    symbol_param = "instId"
    snapshot_params = "&sz={depth}&source=0"
    sync_state = _Sync
    max_symbols_per_connection = 25     # OKX: < 30 channels of 400 levels per connection
    subscribe_batch = 25                # one subscribe request per connection
    subscribe_interval = 0.2
    connect_interval = 0.4              # OKX: at most 3 new connections per second per IP
    checksum_scheme = CK_OKX
    depth = 400                         # levels the ``books`` channel maintains

    def __init__(self, *args, ping_idle: float = PING_IDLE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ping_idle = ping_idle
        self.ping_interval = max(0.05, min(5.0, ping_idle / 4))  # how often to look
        self.pings_sent = 0
        self.ws_snapshots = False       # the venue sent a websocket snapshot
        self.rest_mode = False          # books are seeded by REST: resync the same way
        self.rest_has_seq = True        # REST snapshots carry seqId (else: no REST path)
        self.seen_seq = False           # the stream carries seqIds
        self._ops: deque[float] = deque()  # times of subscribe/unsubscribe requests
        self._last_rx = self._last_ping = time.monotonic()
        self._pending_live: set[str] = set()
        self._stream_seq: dict[str, int | None] = dict.fromkeys(self.targets)  # last seen
        self._ck_pushed = dict.fromkeys(self.targets, 0)
        self._ck_base = {s: self._checksums_done(s) for s in self.targets}

    # -- instruments -------------------------------------------------------------------
    def crossed_is_error(self, symbol: str) -> bool:
        """OKX documents crossed books during pre-open call auctions: not an error then."""
        return getattr(self.instruments[symbol], "state", "") != "preopen"

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Of a recording's configured books, those it carries ``books`` data for (this
        copy of the OKX session had BTC-USDT's frames removed)."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                arg = msg.get("arg") if isinstance(msg, dict) else None
                if isinstance(arg, dict) and arg.get("channel") == "books" \
                        and "data" in msg:
                    seen.add(arg.get("instId"))
        return [n for n in natives if n in seen]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        if not isinstance(msg, dict) or msg.get("code") != "0":
            raise ConfigError(f"okx: instrument list error: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg.get("data", ()):
            inst_type, inst_id = x.get("instType", ""), x.get("instId", "")
            tick, lot = x.get("tickSz") or "", x.get("lotSz") or ""
            if inst_type not in KINDS or not inst_id or not tick or not lot:
                continue
            pdec = min(decimals_for(tick) + PRICE_HEADROOM, MAX_DECIMALS)
            sdec = min(decimals_for(lot) + SIZE_HEADROOM, MAX_DECIMALS)
            out[inst_id] = OKXInstrument(
                cls.exchange, inst_id, unified_name(inst_type, inst_id, x.get("expTime", "")),
                pdec, sdec, tick, lot, KINDS[inst_type], ct_val=x.get("ctVal", ""),
                ct_val_ccy=x.get("ctValCcy", ""), ct_type=x.get("ctType", ""),
                state=x.get("state", ""))
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [f"{cls.rest_url}{INSTRUMENTS_PATH}?instType={t}" for t in INST_TYPES]

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed's BTC-USD-22K27 -> the instrument whose unified name is
        BTC-USD-20220527."""
        parts = name.split("-")
        for i, part in enumerate(parts):
            m = _CODED_DATE.match(part)
            if m:
                month = _MONTH_CODES.index(m[2]) + 1
                parts[i] = f"20{m[1]}{month:02d}{m[3]}"
        wanted = "-".join(parts)
        return next((n for n, inst in instruments.items() if inst.unified == wanted), None)

    # -- subscription ------------------------------------------------------------------
    def _request(self, op: str, symbols: list[str]) -> str:
        self._ops.append(time.monotonic())
        return orjson.dumps({"op": op, "args": [{"channel": "books", "instId": s}
                                               for s in symbols]}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._request("subscribe", batch) for batch in self.symbol_batches(symbols)]

    def _budget_left(self) -> int:
        cutoff = time.monotonic() - 3600.0
        while self._ops and self._ops[0] < cutoff:
            self._ops.popleft()
        return OPS_BUDGET - len(self._ops)

    def ping_message(self) -> str | None:
        now = time.monotonic()
        if now - self._last_rx < self.ping_idle or now - self._last_ping < self.ping_idle:
            return None
        self._last_ping = now
        self.pings_sent += 1
        return "ping"

    def request_resync(self, symbol: str) -> None:
        sync = self.sync[symbol]
        can_splice = self.rest_has_seq and (self.rest_mode or self.seen_seq)
        if can_splice and (self.rest_mode or self._budget_left() < 2):
            self.request_snapshot(symbol)        # on the open subscription
        elif self._budget_left() >= 2:
            self.outbox.append(self._request("unsubscribe", [symbol]))
            self.outbox.append(self._request("subscribe", [symbol]))
            sync.resubscribing = True
            sync.since = time.monotonic()
        else:  # no budget and no way to splice a REST snapshot: a new connection
            log.warning("okx: subscribe budget spent: reconnecting to resync %s", symbol)
            self.reconnect_requested = True

    def reset_symbol(self, symbol: str) -> None:
        self.sync[symbol].reset()
        self._pending_live.discard(symbol)

    def on_connect(self) -> None:
        self._ops.clear()   # the budget is per connection
        self._stream_seq = dict.fromkeys(self.targets)
        self._last_rx = self._last_ping = time.monotonic()
        super().on_connect()

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        self._last_rx = time.monotonic()
        if frame == "pong" or frame == b"pong":
            self.stats.ignored_frames += 1
            return
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        event = msg.get("event")
        if event is not None:
            self._on_event(event, msg)
            return
        arg = msg.get("arg")
        if not isinstance(arg, dict):
            raise MalformedFrame("neither an event nor channel data")
        if arg.get("channel") != "books":
            self.stats.ignored_frames += 1
            return
        symbol = arg.get("instId")
        sync = self.sync.get(symbol)
        if sync is None:
            self.stats.unknown_symbol_frames += 1
            return
        action, data = msg.get("action"), msg.get("data")
        if action not in ("snapshot", "update") or type(data) is not list:
            raise MalformedFrame("books frame without action or data", symbol)
        for entry in data:
            if sync.resubscribing:
                self.stats.ignored_frames += 1   # the old subscription's tail
                continue
            try:
                up = _parse_entry(entry)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise MalformedFrame(f"bad books entry: {type(exc).__name__}: {exc}",
                                     symbol) from exc
            if up.seq is not None:
                if up.prev is None:
                    raise MalformedFrame("seqId without prevSeqId", symbol)
                self.seen_seq = True
                self._stream_seq[symbol] = up.seq
            if action == "snapshot":
                self._on_ws_snapshot(symbol, sync, up, recv_ns)
            elif sync.synced:
                self._apply_update(symbol, sync, up, recv_ns)
            else:
                self._hold(symbol, sync, up)

    def _on_event(self, event: str, msg: dict) -> None:
        if event == "error":
            raise MalformedFrame(f"venue error {msg.get('code')}: {msg.get('msg')}")
        if event == "subscribe":
            arg = msg.get("arg") or {}
            sync = self.sync.get(arg.get("instId"))
            if sync is not None and arg.get("channel") == "books":
                sync.resubscribing = False
        elif event == "notice" and str(msg.get("code")) == UPGRADE_NOTICE:
            log.info("okx: service upgrade notice: reconnecting")
            self.reconnect_requested = True
        self.stats.ignored_frames += 1

    def _publish(self, symbol: str, up: _Update, recv_ns: int, snapshot: bool = False) -> bool:
        checksum = up.checksum if up.checksum and self.verify_checksums else None
        ok = self.publish(symbol, up.bids, up.asks, NO_SEQ if up.seq is None else up.seq,
                          up.ts_ns, recv_ns, snapshot=snapshot, checksum=checksum)
        if ok and checksum is not None:
            self._ck_pushed[symbol] += 1
        return ok

    def _on_ws_snapshot(self, symbol: str, sync: _Sync, up: _Update, recv_ns: int) -> None:
        self.ws_snapshots = True
        self.rest_mode = False
        sync.reset()   # supersedes a REST bootstrap in progress
        if not self._publish(symbol, up, recv_ns, snapshot=True):
            return
        sync.synced = True
        sync.seq = up.seq
        self._go_live(symbol)

    def _hold(self, symbol: str, sync: _Sync, up: _Update) -> None:
        """An update for a book without a snapshot: keep it for the REST splice."""
        if up.seq is None or not self.rest_has_seq:
            self.stats.ignored_frames += 1   # nothing to splice on: wait for a snapshot
            return
        if len(sync.buffer) >= MAX_BUFFERED:
            self.resync(symbol, "snapshot too slow: buffer overflow")
            return
        sync.buffer.append(up)
        self.request_snapshot(symbol)

    def _apply_update(self, symbol: str, sync: _Sync, up: _Update, recv_ns: int) -> bool:
        """Check the chain, apply; False when the book was sent to resync."""
        proving = sync.first
        if up.seq is None:
            if sync.seq is not None:
                raise MalformedFrame("update without seqId on a sequenced book", symbol)
        elif proving:
            last = sync.seq
            if up.seq < up.prev:
                return self._gap(symbol, sync, up, "sequence reset during a REST splice")
            if up.seq < last or (up.seq == last and up.prev != last):
                return True   # already contained in the REST snapshot
            if up.prev > last:
                return self._gap(symbol, sync, up, f"prevSeqId={up.prev} > snapshot "
                                                   f"seqId={last}")
        elif sync.seq is not None and up.prev != sync.seq:
            return self._gap(symbol, sync, up, f"prevSeqId={up.prev} != last seqId={sync.seq}")
        if not self._publish(symbol, up, recv_ns):
            return False
        if up.seq is not None:
            sync.seq = up.seq
        if proving:
            sync.first = False
            self._go_live(symbol)
        return True

    def _gap(self, symbol: str, sync: _Sync, up: _Update, detail: str) -> bool:
        self.gap(symbol, detail)
        if sync.requested:   # REST resync: this update is the first of the new buffer
            self._hold(symbol, sync, up)
        return False

    def on_snapshot(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        symbol = request.symbol
        sync = self.sync.get(symbol)
        if sync is None:
            raise MalformedFrame(f"REST snapshot for unknown symbol {symbol}")
        if sync.synced or not sync.requested:   # a websocket snapshot got there first
            self.stats.reasons["late REST snapshot ignored"] += 1
            return
        msg = orjson.loads(body)
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("code") != "0" or not data:
            sync.requested = False
            raise MalformedFrame(f"not a books snapshot: {str(msg)[:120]}", symbol)
        try:
            snap = _parse_entry(data[0])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            sync.requested = False
            raise MalformedFrame(f"bad REST snapshot: {type(exc).__name__}: {exc}",
                                 symbol) from exc
        if snap.seq is None:
            sync.requested = False
            self.rest_has_seq = False   # cannot splice: resync by resubscribing from now on
            raise MalformedFrame("REST snapshot without seqId", symbol)
        buffered = sync.buffer
        # the snapshot must contain everything the stream has shown and will not repeat
        floor = buffered[0].prev if buffered else self._stream_seq[symbol]
        if floor is not None and snap.seq < floor:
            self.stats.reasons["REST snapshot older than the stream: fetched again"] += 1
            self.rest_requests.append(RestRequest(symbol, self.snapshot_url(symbol)))
            return
        if not self._publish(symbol, snap, recv_ns, snapshot=True):
            return
        if not self.ws_snapshots:
            self.rest_mode = True
        sync.synced, sync.seq, sync.first = True, snap.seq, True
        sync.requested, sync.buffer = False, []
        for up in buffered:
            if not self._apply_update(symbol, sync, up, recv_ns):
                return

    # -- liveness ----------------------------------------------------------------------
    def _checksums_done(self, symbol: str) -> int:
        t = self.targets[symbol]
        h = t.book * HDR_WORDS
        return int(t.hdr[h + H_CHECKSUM_OK]) + int(t.hdr[h + H_CHECKSUM_FAIL])

    def _all_verified(self, symbol: str) -> bool:
        pushed = self._ck_base[symbol] + self._ck_pushed[symbol]
        return self._checksums_done(symbol) >= pushed

    def _go_live(self, symbol: str) -> None:
        """LIVE now if every checksum pushed for the book was verified, else once the
        writer has verified them (check_health)."""
        if self._all_verified(symbol):
            self.set_status(symbol, LIVE)
        else:
            self._pending_live.add(symbol)

    def check_health(self, symbols=None) -> None:
        super().check_health(symbols)
        for s in list(self._pending_live):
            if symbols is not None and s not in symbols:
                continue
            t = self.targets[s]
            fails = int(t.hdr[t.book * HDR_WORDS + H_CHECKSUM_FAIL])
            if not self.sync[s].synced:
                self._pending_live.discard(s)
            elif self._all_verified(s) and fails == self._seen_fail[s]:
                self._pending_live.discard(s)
                self.set_status(s, LIVE)
        now = time.monotonic()
        if any(y.resubscribing and now - y.since > RESUBSCRIBE_TIMEOUT
               for y in self.sync.values()):
            log.warning("okx: no subscribe ack after a resubscribe: reconnecting")
            self.reconnect_requested = True
