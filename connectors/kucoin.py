"""KuCoin spot (classic API): ``/market/level2`` increments synced against REST snapshots.

Sources (current public documentation, read through stored copies):
  [K1] https://www.kucoin.com/docs-new/websocket-api/base-info/get-public-token-spot-margin.md
       and https://kucoin.com/apidoc//project-6000000/websocket-api/base-info/introduction
       POST /api/v1/bullet-public (no auth) -> {"code":"200000","data":{"token",
       "instanceServers":[{"endpoint","encrypt","protocol","pingInterval","pingTimeout"}]}};
       connect to ``endpoint?token=...&connectId=...``; the server's first frame is
       ``{"id":<connectId>,"type":"welcome"}`` and the link is usable only after it; client
       sends ``{"id","type":"ping"}`` every pingInterval ms, server answers ``pong``; the
       token lasts 24 h (stays valid while connected).
  [K2] https://kucoin.com/docs-new/3470068w0 (Orderbook - Increment): subscribe
       ``{"id","type":"subscribe","topic":"/market/level2:BTC-USDT,ETH-USDT","response":true}``
       -> ``ack``; frames ``{"type":"message","subject":"trade.l2update","data":{"changes":
       {"asks":[[price,size,sequence]],"bids":[...]},"sequenceStart","sequenceEnd",
       "symbol","time"}}``.  Calibration: buffer the stream, fetch a REST snapshot, drop
       every change whose sequence <= the snapshot's, apply the rest in sequence; size 0
       deletes; price 0 changes carry no level (only the sequence advances); a message
       that does not continue the last sequence is a gap: resnapshot.
  [K3] https://kucoin.com/docs/rest/spot-trading/market-data/get-full-order-book-aggregated-
       GET /api/v3/market/orderbook/level2 (full depth) "requires the General permission",
       i.e. an API key.  [K4] .../get-part-order-book-aggregated-: GET
       /api/v1/market/orderbook/level2_100 is public (top 100 per side, same body shape).

Choices:
  * Live snapshots use the public ``level2_100``: no credentials in this project.  A side
    that comes back with exactly 100 levels may be cut short, so the book keeps only the
    price window the snapshot covered on that side (changes beyond its worst price are
    dropped) and resyncs when fewer than ``MIN_WINDOW`` levels remain in the window: what
    is shown is always exact, never a book with holes.  A side with fewer levels (or the
    full ``/api/v3`` snapshots of the recording, hundreds of levels) is the whole side.
  * Token handshake: the shared runner opens ``protocol.ws_url`` directly and has no
    pre-connect hook.  Reading ``ws_url`` on an instance therefore returns
    ``endpoint?token=..&connectId=..`` from a token fetched beforehand; when none is ready
    it starts a background POST (a daemon thread, so the asyncio loop is never blocked)
    and raises ``ConnectionError``: the runner backs off and retries, by which time the
    token is there.  After every connect the next token is prefetched, so only the first
    connect pays that retry.  ``pre_connect_requests`` is what a runner hook would use
    instead (see the report: a small patch to connectors/runner.py).
  * The recording (2021, cryptofeed KUCOIN) speaks the same dialect as today (no ``time``
    field yet) with full ``/api/v3`` snapshots, so this class replays it as is.

Unconfirmed: the per-connection topic/symbol limits (third-party sources say 100
symbols per subscribe and per connection; used here), whether sequences restart after
a venue maintenance, and whether /api/v2/symbols (used for instruments live; the
recording has /api/v1/symbols, same fields) will stay as is.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass

import orjson

from connectors.base import Instrument, MalformedFrame, RestRequest
from connectors.publish import join_levels
from connectors.restsync import RestSnapshotProtocol
from engine.constants import LIVE
from engine.fixedpoint import decimals_for, to_fixed

log = logging.getLogger("hftbook.connectors")

TOKEN_PATH = "/api/v1/bullet-public"
PARTIAL_PATH = "/api/v1/market/orderbook/level2_100"
FULL_PATH = "/api/v3/market/orderbook/level2"
PARTIAL_LEVELS = 100       # levels per side of a level2_100 snapshot
MIN_WINDOW = 20            # resync a partially known side when fewer levels remain
MAX_BUFFERED = 5000        # increments held per symbol while waiting for a snapshot
TOKEN_MAX_AGE = 12 * 3600  # seconds a prefetched, unused token is trusted (valid 24 h)
OK_CODE = "200000"


@dataclass(frozen=True, slots=True)
class KuCoinInstrument(Instrument):
    """A KuCoin symbol; ``name`` is KuCoin's display name (BSV-USDT for BCHSV-USDT)."""

    name: str = ""


@dataclass(frozen=True, slots=True)
class Token:
    """One bullet-public answer: where to connect and how often to ping."""

    endpoint: str
    token: str
    ping_interval: float   # seconds
    ping_timeout: float    # seconds
    fetched: float         # time.monotonic() when fetched


def parse_token(body: bytes | str, now: float | None = None) -> Token:
    """A bullet-public response -> Token; MalformedFrame if it is not one."""
    msg = orjson.loads(body)
    data = msg.get("data") if isinstance(msg, dict) else None
    if not isinstance(data, dict) or msg.get("code") != OK_CODE or not data.get("token") \
            or not data.get("instanceServers"):
        raise MalformedFrame(f"not a websocket token: {str(msg)[:80]}")
    server = data["instanceServers"][0]
    return Token(server["endpoint"], data["token"], server.get("pingInterval", 18000) / 1000,
                 server.get("pingTimeout", 10000) / 1000,
                 time.monotonic() if now is None else now)


def _is_zero(text) -> bool:
    """A decimal text equal to zero ("0", "0.000"); a zero price marks a change that only
    advances the sequence [K2]."""
    return isinstance(text, str) and text != "" and not text.strip("0.")


class _Sync:
    __slots__ = ("live", "last", "buffer", "requested", "bounds", "windows")

    def __init__(self) -> None:
        self.live = False
        self.last = 0
        self.buffer: list[dict] = []
        self.requested = False
        self.bounds: list[int | None] = [None, None]   # worst known bid / ask price
        self.windows: list[set[int] | None] = [None, None]  # prices held inside them


class _WsUrl:
    """``ws_url``: on the class, the documented endpoint; on an instance, the endpoint
    with a fresh token (KuCoin.connect_url); assigning sets an override of the endpoint
    (a simulator), the token handshake still applies."""

    default = "wss://ws-api-spot.kucoin.com/"

    def __get__(self, obj, owner=None) -> str:
        return self.default if obj is None else obj.connect_url()

    def __set__(self, obj, value: str) -> None:
        obj.ws_override = value


class KuCoin(RestSnapshotProtocol):
    exchange = "kucoin"
    ws_url = _WsUrl()
    rest_url = "https://api.kucoin.com"
    snapshot_path = PARTIAL_PATH
    recorded_snapshot_paths = (FULL_PATH,)
    sync_state = _Sync
    instruments_path = "/api/v2/symbols"
    max_symbols_per_connection = 100    # UNCONFIRMED (third-party: 100 per connection)
    subscribe_batch = 100               # symbols per subscribe topic
    subscribe_interval = 0.11           # uplink: 100 messages / 10 s
    depth = 1000
    ws_override: str | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.token: Token | None = None
        self.pings_sent = 0
        self.tokens_fetched = 0
        self.welcomed = False
        self._fetching = False
        self._handshake_pending = False   # the last connect attempt waited for a token
        self._msg_id = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """Scales: the increments' decimals plus headroom.  Resting sizes carry more
        decimals than baseIncrement (recorded snapshots: BCHSV-USDT 11 on a 1e-8 lot,
        CAPP-BTC 8 on a 0.01 lot), so sizes get at least 8 and lot decimals + 4."""
        msg = orjson.loads(body)
        out = {}
        for s in msg["data"]:
            pdec = decimals_for(s["priceIncrement"]) + 2
            sdec = max(decimals_for(s["baseIncrement"]) + 4, 8)
            out[s["symbol"]] = KuCoinInstrument(
                cls.exchange, s["symbol"], f"{s['baseCurrency']}-{s['quoteCurrency']}",
                min(pdec, 18), min(sdec, 18), s["priceIncrement"], s["baseIncrement"],
                "spot", s.get("name", s["symbol"]))
        return out

    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + cls.instruments_path]

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed recorded KuCoin's display names: BSV-USDT is BCHSV-USDT."""
        return next((n for n, i in instruments.items() if getattr(i, "name", "") == name),
                    None)

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Those configured books the recording has increments for (LTX-USDT's were
        removed from this copy, and it has no snapshot either)."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                if "trade.l2update" in f.data:
                    seen.add(orjson.loads(f.data)["data"]["symbol"])
        return [n for n in natives if n in seen]

    # -- token handshake ---------------------------------------------------------------
    def token_request(self) -> RestRequest:
        return RestRequest("", self.rest_url + TOKEN_PATH, kind="token", method="POST")

    def pre_connect_requests(self) -> list[RestRequest]:
        """The token POST, made by the runner before each connect unless a fresh token
        is held (the threaded fetch in ``connect_url`` is only a fallback)."""
        return [] if self._token_fresh() else [self.token_request()]

    def _token_fresh(self) -> bool:
        return self.token is not None and time.monotonic() - self.token.fetched < TOKEN_MAX_AGE

    def connect_url(self) -> str:
        """The URL for the next connection; consumes the held token and prefetches the
        next one.  Raises ConnectionError (the runner retries) while none is ready."""
        if not self._token_fresh():
            self._prefetch_token()
            self._handshake_pending = True
            raise ConnectionError("kucoin: waiting for a websocket token (bullet-public)")
        tok, self.token = self.token, None
        self._handshake_pending = False
        self.ping_interval = max(0.05, tok.ping_interval * 0.8)  # inside the server's window
        base = self.ws_override or tok.endpoint
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}token={tok.token}&connectId={uuid.uuid4().hex}"

    def _prefetch_token(self) -> None:
        """POST bullet-public on a daemon thread; the answer lands in ``self.token``."""
        if self._fetching:
            return
        self._fetching = True
        req = self.token_request()

        def fetch() -> None:
            try:
                r = urllib.request.Request(req.url, data=b"{}", method="POST",
                                           headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(r, timeout=10) as resp:  # noqa: S310 (https/loopback)
                    self.token = parse_token(resp.read())
                    self.tokens_fetched += 1
            except (OSError, ValueError) as exc:
                log.warning("kucoin: token request %s failed: %s", req.url, exc)
            finally:
                self._fetching = False

        threading.Thread(target=fetch, name="kucoin-token", daemon=True).start()

    # -- lifecycle ---------------------------------------------------------------------
    def on_connect(self) -> None:
        self.welcomed = False
        super().on_connect()
        if self.ws_override is not None or self.tokens_fetched:  # live, not a replay
            self._prefetch_token()   # for the next reconnect

    def on_disconnect(self) -> None:
        if self._handshake_pending:  # no socket was opened: nothing to count or mark
            for s in self.targets:
                self.reset_symbol(s)
            return
        super().on_disconnect()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        """Nothing before the welcome frame [K1]; the subscribes go out on it."""
        return []

    def _subscribe_all(self) -> None:
        for batch in self.symbol_batches(list(self.targets)):
            self._msg_id += 1
            self.outbox.append(orjson.dumps({
                "id": str(self._msg_id), "type": "subscribe",
                "topic": "/market/level2:" + ",".join(batch), "privateChannel": False,
                "response": True}).decode())

    def ping_message(self) -> str | None:
        self.pings_sent += 1
        return orjson.dumps({"id": str(int(time.time() * 1000)), "type": "ping"}).decode()

    # -- snapshots ---------------------------------------------------------------------
    def on_snapshot(self, request: RestRequest, body: bytes | str, recv_ns: int) -> None:
        if request.kind == "token":
            self.token = parse_token(body)
            self.tokens_fetched += 1
            return
        symbol = request.symbol
        sync = self.sync.get(symbol)
        if sync is None:
            raise MalformedFrame(f"snapshot for unknown symbol {symbol}")
        msg = orjson.loads(body)
        data = msg.get("data") if isinstance(msg, dict) else None
        if msg.get("code") != OK_CODE or not isinstance(data, dict) or "sequence" not in data:
            sync.requested = False
            raise MalformedFrame(f"not a level2 snapshot: {str(msg)[:80]}", symbol)
        seq = int(data["sequence"])
        bids, asks = data["bids"], data["asks"]
        buffered = sync.buffer
        if buffered and buffered[0]["sequenceStart"] > seq + 1:
            sync.buffer, sync.requested = [], False
            self.resync(symbol, "snapshot older than the buffered stream")
            return
        if not self.publish(symbol, join_levels(bids), join_levels(asks), seq,
                            data.get("time", 0) * 1_000_000, recv_ns, snapshot=True):
            return
        pdec = self.instruments[symbol].price_decimals
        for i, side in enumerate((bids, asks)):
            if len(side) == PARTIAL_LEVELS:    # maybe cut short: keep to its window
                prices = {to_fixed(p, pdec) for p, *_ in side}
                sync.windows[i] = prices
                sync.bounds[i] = min(prices) if i == 0 else max(prices)
        sync.live, sync.last, sync.buffer, sync.requested = True, seq, [], False
        for ev in buffered:
            if not self._apply(symbol, sync, ev, recv_ns):
                return
        self.set_status(symbol, LIVE)

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        kind = msg.get("type")
        if kind == "message" and msg.get("subject") == "trade.l2update":
            data = msg.get("data")
            symbol = data.get("symbol") if isinstance(data, dict) else None
            sync = self.sync.get(symbol)
            if sync is None:
                if symbol is None:
                    raise MalformedFrame("level2 update without data.symbol")
                self.stats.unknown_symbol_frames += 1
                return
            if type(data.get("sequenceStart")) is not int \
                    or type(data.get("sequenceEnd")) is not int:
                raise MalformedFrame("sequenceStart/sequenceEnd are not integers", symbol)
            if not sync.live:
                if len(sync.buffer) >= MAX_BUFFERED:
                    sync.buffer.clear()
                    self.resync(symbol, "snapshot too slow: buffer overflow")
                sync.buffer.append(data)
                self.request_resync(symbol)
                return
            self._apply(symbol, sync, data, recv_ns)
            return
        if kind == "welcome":
            self.welcomed = True
            self._subscribe_all()
        elif kind == "error":
            raise MalformedFrame(f"venue error: {str(msg)[:120]}")
        self.stats.ignored_frames += 1   # welcome, ack, pong, other topics

    def _apply(self, symbol: str, sync: _Sync, d: dict, recv_ns: int) -> bool:
        """One increment: stale -> skip; gap -> resync; else apply the changes newer
        than the book (all of them, except on the message straddling the snapshot)."""
        start, end = d["sequenceStart"], d["sequenceEnd"]
        last = sync.last
        if end <= last:
            return True
        if start > last + 1:
            self.gap(symbol, f"sequenceStart={start} > last+1={last + 1}")
            return False
        try:
            changes = d["changes"]
            sides = [changes["bids"], changes["asks"]]
            for i in (0, 1):
                levels = sides[i]
                if start <= last:   # straddles the snapshot: per-change sequences [K2]
                    levels = [c for c in levels if int(c[2]) > last]
                levels = [c for c in levels if not _is_zero(c[0])]
                if sync.windows[i] is not None:
                    levels = self._in_window(sync, i, levels,
                                             self.instruments[symbol].price_decimals)
                sides[i] = levels
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MalformedFrame(f"bad changes: {type(exc).__name__}: {exc}", symbol) from exc
        sync.last = end
        if sides[0] or sides[1]:
            if not self.publish(symbol, join_levels(sides[0]), join_levels(sides[1]), end,
                                d.get("time", 0) * 1_000_000, recv_ns):
                return False
        for i in (0, 1):
            w = sync.windows[i]
            if w is not None and len(w) < MIN_WINDOW:
                self.resync(symbol, "partial snapshot window nearly empty")
                return False
        return True

    @staticmethod
    def _in_window(sync: _Sync, i: int, levels: list, pdec: int) -> list:
        """Changes inside the price window a 100-level snapshot covered; tracks the
        prices held there."""
        bound, window = sync.bounds[i], sync.windows[i]
        kept = []
        for c in levels:
            p = to_fixed(c[0], pdec)
            if (p < bound) if i == 0 else (p > bound):
                continue
            if _is_zero(c[1]):
                window.discard(p)
            else:
                window.add(p)
            kept.append(c)
        return kept
