"""Phemex public market data websocket: the 30-level order book channels.

Protocol (sources below; facts the 2021 recording confirms are marked [rec]):

* Endpoint ``wss://ws.phemex.com`` (the recording used the older ``wss://phemex.com/ws``
  [rec]).  JSON-RPC style requests ``{"id":N,"method":M,"params":[...]}``, answered by
  ``{"error":null,"id":N,"result":{"status":"success"}}`` [rec].
* Two book channels are live today, for different products:
  - ``orderbook.subscribe`` ``[symbol]``: spot (``sBTCUSDT``) and the coin-margined
    perpetuals (``BTCUSD``).  Messages ``{"book":{"asks":[[priceEp,size]],"bids":..},
    "depth":30,"sequence":N,"symbol":S,"timestamp":ns,"type":"snapshot"|"incremental"}``
    with SCALED INTEGERS [rec]: price = priceEp / 10**scale.  Coin-margined perpetuals:
    scale = the product's ``priceScale`` and sizes are whole contracts [rec: priceScale 4,
    YFIUSD 329915000 = 32991.5].  Spot: prices and sizes are ``Ev`` values of the quote /
    base currency, scale = that currency's ``valueScale`` [rec: 8 for every spot currency
    recorded; sGRTUSDT 67556000 = 0.67556 with quoteTickSize 0.00001, size 512445000000
    = 5124.45 GRT with baseTickSize 0.01].
  - ``orderbook_p.subscribe`` ``[symbol]``: the USDT-margined "new model" (hedged)
    perpetuals (``BTCUSDT``, products of type ``PerpetualV2`` in ``perpProductsV2``).
    Same message shape with the key ``orderbook_p`` and decimal STRINGS (``priceRp``,
    size ``Rq``).  Not in the recording; written from the documentation.
  The connector picks the channel per instrument.  Both carry absolute sizes, 0 deletes.
* Depth: the feed maintains a 30-level book and sends explicit deletes for levels that
  leave the top 30 and inserts for levels that enter it [rec: the rebuilt books hold
  exactly 30 levels a side throughout, and the mid-session snapshots equal them].
* Snapshots: one right after subscribing, then periodically "every 60 seconds for client
  self-verification" (docs) [rec: the three spot books got a second snapshot, whose
  sequence equals the previous incremental's].  This connector USES that: it keeps a
  shadow of each book's levels (raw JSON values, no arithmetic) and compares it with
  every periodic snapshot; a difference means updates were lost and is counted as a gap
  (``gap()``), after which the snapshot in hand is the repair (no resubscribe needed).
* Sequence: ``sequence`` is documented only as "Latest message sequence".  It is shared
  with the symbol's other channels (trades, klines) [rec: book sequences jump by 1..4823,
  trades fill some of the holes], so a missing number is NOT a gap.  Rule implemented:
  each incremental's sequence must exceed the last one applied (a repeat or decrease is
  an out-of-order/duplicate message: gap + resync); a snapshot may equal it [rec].  A lost
  incremental is thus only visible at the next periodic snapshot (above) or as a
  crossed book (engine check).
* Resync: unsubscribe + subscribe of the book (batched), frames of a book without a fresh
  snapshot are dropped; a book whose snapshot does not come within ``snapshot_timeout``
  (> the 60 s snapshot period) triggers a reconnect.
* Heartbeat: the client must send ``{"id":N,"method":"server.ping","params":[]}`` at
  intervals < 30 s (5 s recommended); the answer ``{"error":null,"id":N,"result":"pong"}``
  is counted as ignored.  The runner's idle timeout catches a dead link.
* Limits (docs): 5 connections per client, 20 subscriptions per connection, 20 requests
  per second per connection: 20 books per connection, one subscribe request each,
  0.06 s apart.
* Instruments: ``GET /public/products`` (the recording: ``/exchange/public/cfg/v2/
  products``): ``data.currencies`` (valueScale), ``data.products`` (types ``Perpetual``
  and ``Spot``), ``data.perpProductsV2`` (``PerpetualV2``: tickSize / qtyStepSize
  strings).  Unified names: ``GRT-USDT`` (spot), ``YFI-USD-PERP`` (coin-margined),
  ``BTC-USDT-PERP`` (USDT-margined).  Scaled-integer channels publish the integer text
  with an exponent (``329915000e-4``) at exactly the product's scale, so every value the
  venue can send is exact; ``orderbook_p`` books get the step decimals plus 2 headroom.

Sources:
  https://github.com/phemex/phemex-api-docs/blob/master/Public-Contract-API-en.md
  (orderbook.subscribe, Ep prices, priceScale, server.ping, session management),
  https://github.com/phemex/phemex-api-docs/blob/master/Public-Spot-API-en.md (spot
  symbols with ``s`` prefix, Ev values), https://github.com/phemex/phemex-api-docs/blob/
  master/Public-Hedged-Perpetual-API.md (orderbook_p, Rp/Rq strings, 60 s snapshots,
  connection and subscription limits), https://phemex-docs.github.io/.
Not confirmed: whether ``orderbook.unsubscribe`` honours a symbol parameter (the docs
show ``params: []`` = all books; a per-symbol form is documented only for trades and
klines) and whether re-subscribing sends a fresh snapshot: if neither works, the 60 s
periodic snapshot or the snapshot timeout (reconnect) repairs the book; the exact
current shape of ``/public/products`` (field names taken from the recording and
third-party clients); the full-book variant of orderbook_p (extra params) is not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.publish import join_pairs
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import MAX_DECIMALS, decimals_for

PRODUCTS_PATH = "/public/products"
CH_SCALED = "orderbook"      # book: {"book": ...}, scaled integers
CH_REAL = "orderbook_p"      # book: {"orderbook_p": ...}, decimal strings
HEADROOM = 2                 # decimals beyond the steps of orderbook_p books
PING_PERIOD = 5.0            # seconds (docs: < 30, 5 recommended)
_SEP = "\x01"


@dataclass(frozen=True, slots=True)
class PhemexInstrument(Instrument):
    """A Phemex product: which book channel serves it and, for the scaled-integer
    channel, the powers of ten of its Ep prices and sizes."""

    channel: str = "orderbook"
    price_scale: int = 0
    size_scale: int = 0


def _inst(native, unified, pdec, sdec, tick, lot, kind, channel, scale_p, scale_s):
    return PhemexInstrument("phemex", native, unified, pdec, sdec, tick, lot, kind,
                            channel, scale_p, scale_s)


def _scaled_side(levels, suffix: str) -> tuple[bytes, bytes]:
    """[[intEp, intSize], ...] -> joined texts "329915000e-4" (exact at the scale)."""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    if not levels:
        return b"", b""
    ps = []
    qs = []
    for lv in levels:
        p, q = lv            # ValueError/TypeError unless a pair
        if type(p) is not int or type(q) is not int or p <= 0 or q < 0:
            raise ValueError(f"level is not a pair of scaled integers: {lv!r}"[:80])
        ps.append(p)
        qs.append(q)
    sp, sq = suffix.split("|")
    return ((sp + _SEP).join(map(str, ps)) + sp).encode(), \
        ((sq + _SEP).join(map(str, qs)) + sq).encode()


def _real_side(levels) -> tuple[bytes, bytes]:
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    for lv in levels:
        if type(lv) is not list or len(lv) != 2 or type(lv[0]) is not str \
                or type(lv[1]) is not str:
            raise ValueError(f"level is not a pair of strings: {lv!r}"[:80])
    return join_pairs(levels)


class Phemex(ResubscribingProtocol):
    exchange = "phemex"
    ws_url = "wss://ws.phemex.com"
    rest_url = "https://api.phemex.com"
    max_symbols_per_connection = 20   # docs: 20 subscriptions per connection
    subscribe_batch = 1               # one symbol per orderbook.subscribe
    subscribe_interval = 0.06         # docs: 20 requests per second per connection
    ping_interval = PING_PERIOD
    snapshot_timeout = 75.0           # > the 60 s periodic snapshot
    depth = 30

    def __init__(self, *args, verify_snapshots: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.verify_snapshots = verify_snapshots
        self.last_seq: dict[str, int | None] = dict.fromkeys(self.targets)
        self.shadow: dict[str, tuple[dict, dict] | None] = dict.fromkeys(self.targets)
        self.suffix = {}
        for s in self.targets:
            inst = self.instruments[s]
            sp = getattr(inst, "price_scale", inst.price_decimals)
            sq = getattr(inst, "size_scale", inst.size_decimals)
            self.suffix[s] = (f"e-{sp}" if sp else "") + "|" + (f"e-{sq}" if sq else "")
        self._req_id = 0
        self._healing: str | None = None
        self.pings_sent = 0
        self.pongs = 0
        self.periodic_snapshots = 0
        self.snapshot_mismatches = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + PRODUCTS_PATH]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        text = body.decode() if isinstance(body, bytes) else body
        msg = json.loads(text, parse_float=str)      # tick sizes as exact text
        if not isinstance(msg, dict) or msg.get("code") != 0 or \
                not isinstance(msg.get("data"), dict):
            raise ConfigError(f"phemex: products error: {text[:200]}")
        data = msg["data"]
        value_scale = {c.get("currency"): c.get("valueScale")
                       for c in data.get("currencies", ()) if isinstance(c, dict)}
        out: dict[str, Instrument] = {}
        products = list(data.get("products", ())) + list(data.get("perpProductsV2", ()))
        for p in products:
            if not isinstance(p, dict):
                continue
            kind, sym = p.get("type"), p.get("symbol")
            if not isinstance(sym, str) or p.get("status", "Listed") != "Listed":
                continue
            try:
                if kind == "Perpetual":
                    scale = int(p["priceScale"])
                    quote = p.get("quoteCurrency", "")
                    base = sym[:-len(quote)] if quote and sym.endswith(quote) else sym
                    out[sym] = _inst(sym, f"{base}-{quote}-PERP", scale, 0,
                                     str(p.get("tickSize", "")), str(p.get("lotSize", "")),
                                     "perp", CH_SCALED, scale, 0)
                elif kind == "Spot":
                    base, quote = p["baseCurrency"], p["quoteCurrency"]
                    ps, ss = int(value_scale.get(quote, 8)), int(value_scale.get(base, 8))
                    tick = str(p.get("quoteTickSize", "")).split(" ")[0]
                    lot = str(p.get("baseTickSize", "")).split(" ")[0]
                    out[sym] = _inst(sym, f"{base}-{quote}", ps, ss, tick, lot, "spot",
                                     CH_SCALED, ps, ss)
                elif kind == "PerpetualV2":
                    tick, lot = str(p["tickSize"]), str(p["qtyStepSize"])
                    quote = p.get("quoteCurrency", "USDT")
                    base = p.get("baseCurrency") or sym[:-len(quote)]
                    base = base.split(" ")[0]
                    pdec = min(decimals_for(tick) + HEADROOM, MAX_DECIMALS)
                    sdec = min(decimals_for(lot) + HEADROOM, MAX_DECIMALS)
                    out[sym] = _inst(sym, f"{base}-{quote}-PERP", pdec, sdec, tick, lot,
                                     "perp", CH_REAL, pdec, sdec)
            except (KeyError, ValueError, TypeError):
                continue
        return out

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = orjson.loads(f.data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and ("book" in msg or CH_REAL in msg):
                    seen.add(msg.get("symbol"))
        return [n for n in natives if n in seen]

    # -- requests ----------------------------------------------------------------------
    def _request(self, method: str, params: list) -> str:
        self._req_id += 1
        return orjson.dumps({"id": self._req_id, "method": method, "params": params}).decode()

    def _channel(self, symbol: str) -> str:
        return getattr(self.instruments[symbol], "channel", CH_SCALED)

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._request(f"{self._channel(s)}.subscribe", [s]) for s in symbols]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self._request(f"{self._channel(s)}.{kind}", [s]) for s in symbols]

    def ping_message(self) -> str | None:
        self.pings_sent += 1
        return self._request("server.ping", [])

    def request_resync(self, symbol: str) -> None:
        if symbol == self._healing:
            return     # the snapshot being applied is the repair
        super().request_resync(symbol)

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.last_seq[symbol] = None
        self.shadow[symbol] = None

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        book = msg.get("book")
        real = False
        if book is None:
            book = msg.get(CH_REAL)
            real = book is not None
        if book is not None:
            self._on_book(msg, book, real, recv_ns)
            return
        if "id" in msg and ("result" in msg or "error" in msg):
            if msg.get("error") is not None:
                raise MalformedFrame(f"venue error: {str(msg.get('error'))[:120]}")
            if msg.get("result") == "pong":
                self.pongs += 1
            self.stats.ignored_frames += 1
            return
        if "symbol" in msg or "trades" in msg or "kline" in msg:
            self.stats.ignored_frames += 1     # trades, klines, tickers
            return
        raise MalformedFrame("neither a book message nor a reply")

    def _on_book(self, msg: dict, book, real: bool, recv_ns: int) -> None:
        symbol = msg.get("symbol")
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        kind = msg.get("type")
        seq = msg.get("sequence")
        ts = msg.get("timestamp", 0)
        try:
            if kind not in ("snapshot", "incremental"):
                raise ValueError(f"type {kind!r}")
            if type(seq) is not int or type(ts) is not int:
                raise TypeError("sequence/timestamp not integers")
            if type(book) is not dict:
                raise TypeError("book is not an object")
            bl, al = book.get("bids", []), book.get("asks", [])
            if real:
                bids, asks = _real_side(bl), _real_side(al)
            else:
                suffix = self.suffix[symbol]
                bids, asks = _scaled_side(bl, suffix), _scaled_side(al, suffix)
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedFrame(f"bad book message: {exc}", symbol) from exc
        if kind == "snapshot":
            self._on_snapshot_msg(symbol, seq, ts, bl, al, bids, asks, recv_ns)
            return
        if not self.live[symbol]:
            self.stats.ignored_frames += 1     # no snapshot yet (old subscription's tail)
            return
        last = self.last_seq[symbol]
        if last is not None and seq <= last:
            self.gap(symbol, f"sequence {seq} after {last}")
            return
        if self.publish(symbol, bids, asks, seq, ts, recv_ns):
            self.last_seq[symbol] = seq
            sh = self.shadow[symbol]
            if sh is not None:
                _apply(sh[0], bl)
                _apply(sh[1], al)

    def _on_snapshot_msg(self, symbol, seq, ts, bl, al, bids, asks, recv_ns) -> None:
        if self.live[symbol]:
            self.periodic_snapshots += 1
            last = self.last_seq[symbol]
            sh = self.shadow[symbol]
            if last is not None and seq < last:
                self.gap(symbol, f"snapshot sequence {seq} before {last}")
                return
            if sh is not None and (sh[0] != _levels(bl) or sh[1] != _levels(al)):
                self.snapshot_mismatches += 1
                self._healing = symbol
                try:
                    self.gap(symbol, "periodic snapshot differs from the book")
                finally:
                    self._healing = None
        if self.publish(symbol, bids, asks, seq, ts, recv_ns, snapshot=True, live=True):
            self.last_seq[symbol] = seq
            self.shadow[symbol] = (_levels(bl), _levels(al)) if self.verify_snapshots \
                else None
            self.snapshot_applied(symbol)


def _is_zero(q) -> bool:
    return q == 0 or (type(q) is str and not q.strip("0."))


def _levels(levels) -> dict:
    """A snapshot side as {raw price: raw size} (the shadow's representation)."""
    return {p: q for p, q in levels if not _is_zero(q)}


def _apply(side: dict, levels) -> None:
    for p, q in levels:
        if _is_zero(q):
            side.pop(p, None)
        else:
            side[p] = q
