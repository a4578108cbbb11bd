"""Deribit: JSON-RPC 2.0 over one websocket, the ``book.{instrument}.{interval}`` channel.

Protocol (facts the 2021 recording confirms are marked [rec]):

* Endpoint ``wss://www.deribit.com/ws/api/v2`` [rec].  Requests are JSON-RPC objects
  ``{"jsonrpc":"2.0","id":N,"method":...,"params":{...}}``; answers carry the same
  ``id`` and either ``result`` or ``error`` [rec: the subscribe answer].
* Subscribe: ``public/subscribe`` with ``{"channels":["book.BTC-PERPETUAL.100ms", ...]}``
  [rec, with ``.raw``]; the answer lists the channels actually subscribed [rec].
  ``public/unsubscribe`` takes the same shape.
* Interval: the recording (July 2021) used ``raw``.  Since the 15 January 2022 release
  ``raw`` book channels are refused on unauthenticated connections (error 13778
  ``raw_subscriptions_not_available_for_unauthorized``, cryptofeed issue #768); this
  connector does not authenticate, so it subscribes the public ``100ms`` interval,
  which has the same message shape (aggregated changes, same change_id chain).  The
  parser accepts book notifications of any interval, which is how the recording
  replays through this very class (no dialect subclass is needed: only the channel
  suffix differs).
* Notifications: ``{"method":"subscription","params":{"channel":C,"data":D}}`` [rec].
  ``D.type`` is ``snapshot`` (the first message after a subscribe: the whole book) or
  ``change``; ``D.change_id`` is an integer; every ``change`` carries
  ``prev_change_id``, which must equal the ``change_id`` last applied, else messages
  were missed (a gap) [rec: 36 changes, every one chained].  Levels are
  ``[action, price, amount]`` with action ``new``/``change``/``delete`` [rec]; a delete
  carries amount 0 [rec].  Prices and amounts are JSON *numbers* (``0.0015``,
  ``4714.0``) [rec]: frames carrying book data are decoded with ``json`` hooks that keep
  every number as its exact source text (never a float); other frames go through
  orjson.
* Resync (gap, malformed book message, crossed book): ``public/unsubscribe`` +
  ``public/subscribe`` of the book channel (connectors.resubscribe), which makes Deribit
  send a fresh ``snapshot``; changes of a book waiting for its snapshot are dropped
  (the old subscription's tail).  No snapshot within ``snapshot_timeout``: reconnect.
  ``public/get_order_book`` also returns ``change_id`` but splicing a REST snapshot into
  the stream is not needed when a resubscribe yields a websocket snapshot: not used.
* Heartbeats: ``public/set_heartbeat`` ``{"interval": s}`` (s >= 10) is sent before the
  subscriptions; Deribit then sends ``{"method":"heartbeat","params":{"type":
  "heartbeat"}}`` and ``{"method":"heartbeat","params":{"type":"test_request"}}``; a
  test_request must be answered with ``public/test`` or the server closes the
  connection.  The runner's idle timeout (above the heartbeat period) catches a dead
  link.
* Depth: Deribit sends the whole book; ``depth = 5000`` levels per side are kept and a
  deeper snapshot is cut to its best 5000 per side before publishing.
* Instruments: ``GET /api/v2/public/get_instruments?currency=any&expired=false`` (the
  recording made one request per currency [rec: BTC, ETH, SOL, USDC]; ``any`` is in the
  current parameter's enum and covers every settlement currency); ``tick_size`` and
  ``min_trade_amount`` are JSON numbers, read as text.  Scales: decimals of tick_size /
  min_trade_amount plus ``HEADROOM``
  (options quote on a coarser tick above a threshold, ``tick_size_steps``: tick_size is
  always the finest).  Amounts are kept as sent: USD for inverse futures/perpetuals,
  base-currency contracts for options (``DeribitInstrument.contract_size`` converts).
  Unified names: BTC-USD-PERP, BTC-USDC-PERP (``BTC_USDC-PERPETUAL``),
  BTC-USD-20210924 (future), BTC-USD-20210924-8000-P (option), BTC-USDC (spot).
  Combo books (``future_combo``/``option_combo``) are not listed.

Sources:
  https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval (snapshot
  then changes, change_id / prev_change_id, [action, price, amount], units);
  https://docs.deribit.com/articles/notifications (notification envelope);
  https://docs.deribit.com/api-reference/session-management/public-set_heartbeat
  (heartbeat, test_request, answer with public/test, interval >= 10);
  https://docs.deribit.com/api-reference/supporting/public-test;
  https://github.com/bmoscon/cryptofeed/issues/768 (raw refused unauthenticated since
  2022-01, error 13778).
  https://docs.deribit.com/articles/currency-parameter and the published currency enums
  (``currency_with_any``: BTC, ETH, USDC, USDT, EURR, any).
Not confirmed (documentation not read in full here): that get_instruments returns every
instrument for ``currency=any`` in one answer (no paging is documented); a
per-connection channel limit (100 books per connection and 50 channels per subscribe
request are our own choice); whether ``100ms`` changes can
carry an empty level list (handled: they only advance the chain); the exact shape of
error answers beyond ``{"error":{"code","message"}}`` (counted as malformed frames).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.exactjson import Num
from connectors.exactjson import loads_typed as loads_exact
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.fixedpoint import MAX_DECIMALS, decimals_for

INSTRUMENTS_PATH = "/api/v2/public/get_instruments"
HEADROOM = 2              # decimals beyond tick_size / min_trade_amount
HEARTBEAT = 10            # seconds: public/set_heartbeat interval (Deribit minimum: 10)
ACTIONS = frozenset(("new", "change", "delete"))
KINDS = {"option": "option", "future": "future", "spot": "spot"}
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_EXPIRY = re.compile(r"^(\d{1,2})([A-Z]{3})(\d\d)$")
# cryptofeed's option names in the recording: BTC-8000-21U24-put (year, month code, day)
_CF_OPTION = re.compile(r"^([A-Z0-9_]+)-([0-9d.]+)-(\d\d)([FGHJKMNQUVXZ])(\d\d)-(put|call)$")
_MONTH_CODES = "FGHJKMNQUVXZ"
_BOOK_CHANNEL = re.compile(r'"channel"\s*:\s*"book\.([^".]+)\.')

_price = itemgetter(1)
_amount = itemgetter(2)
_BAD = (TypeError, ValueError, IndexError, KeyError, AttributeError, InvalidOperation)


@dataclass(frozen=True, slots=True)
class DeribitInstrument(Instrument):
    """A Deribit instrument; amounts are as Deribit sends them (see the module notes)."""

    contract_size: str = ""
    min_trade_amount: str = ""
    settlement_period: str = ""


def _expiry(code: str, expiration_ms: str = "") -> str:
    """24SEP21 -> 20210924 (else from the expiration timestamp)."""
    m = _EXPIRY.match(code)
    if m and m[2] in _MONTHS:
        return f"20{m[3]}{_MONTHS[m[2]]:02d}{int(m[1]):02d}"
    if expiration_ms:
        return datetime.fromtimestamp(int(expiration_ms) // 1000, tz=UTC).strftime("%Y%m%d")
    return code


def unified_name(native: str, kind: str, expiration_ms: str = "") -> str:
    """BTC-PERPETUAL -> BTC-USD-PERP, ETH_USDC-PERPETUAL -> ETH-USDC-PERP, BTC-24SEP21 ->
    BTC-USD-20210924, BTC-24SEP21-8000-P -> BTC-USD-20210924-8000-P, BTC_USDC -> BTC-USDC."""
    head, *rest = native.split("-")
    base, _, quote = head.partition("_")
    pair = f"{base}-{quote or 'USD'}"
    if kind == "spot" or not rest:
        return pair
    if rest == ["PERPETUAL"]:
        return pair + "-PERP"
    return "-".join([pair, _expiry(rest[0], expiration_ms), *rest[1:]])


def split_levels(levels, descending: bool, depth: int, snapshot: bool) -> tuple[bytes, bytes]:
    """``[[action, price, amount], ...]`` -> joined (prices, sizes); a delete publishes
    size 0.  Raises ValueError / TypeError on anything else."""
    if type(levels) is not list:
        raise TypeError("levels are not a list")
    out = []
    for lv in levels:
        if type(lv) is not list or len(lv) != 3:
            raise ValueError(f"level is not [action, price, amount]: {str(lv)[:40]}")
        action, price, amount = lv
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if type(price) is not Num or type(amount) is not Num:
            raise TypeError("price / amount is not a JSON number")
        if snapshot and action != "new":
            raise ValueError(f"{action!r} in a snapshot")
        out.append(lv if action != "delete" else (action, price, "0"))  # amount 0 [rec]
    if snapshot and len(out) > depth:
        out = sorted(out, key=lambda lv: Decimal(lv[1]), reverse=descending)[:depth]
    return join_levels(out, _price, _amount)


class Deribit(ResubscribingProtocol):
    exchange = "deribit"
    ws_url = "wss://www.deribit.com/ws/api/v2"
    rest_url = "https://www.deribit.com"
    max_symbols_per_connection = 100   # not documented: our own choice
    subscribe_batch = 50               # channels per public/subscribe
    subscribe_interval = 0.05
    depth = 5000
    interval = "100ms"                 # raw needs an authenticated connection

    def __init__(self, *args, heartbeat: int = HEARTBEAT, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = max(10, int(heartbeat))
        self.change_id: dict[str, int | None] = dict.fromkeys(self.targets)
        self.heartbeats = 0
        self.test_requests = 0
        self._next_id = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [f"{cls.rest_url}{INSTRUMENTS_PATH}?currency=any&expired=false"]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = loads_exact(body)
        if not isinstance(msg, dict) or not isinstance(msg.get("result"), list):
            raise ConfigError(f"deribit: instrument list error: {str(msg)[:200]}")
        out: dict[str, Instrument] = {}
        for x in msg["result"]:
            if not isinstance(x, dict):
                continue
            name, kind = x.get("instrument_name"), KINDS.get(x.get("kind"))
            tick, lot = x.get("tick_size"), x.get("min_trade_amount")
            if not name or kind is None or not isinstance(tick, Num) \
                    or not isinstance(lot, Num):
                continue
            tick, lot = str(tick), str(lot)
            period = x.get("settlement_period") or ""
            if kind == "future" and period == "perpetual":
                kind = "perp"
            pdec = min(decimals_for(tick) + HEADROOM, MAX_DECIMALS)
            sdec = min(decimals_for(lot) + HEADROOM, MAX_DECIMALS)
            exp = str(x.get("expiration_timestamp") or "")
            out[name] = DeribitInstrument(
                cls.exchange, name, unified_name(name, kind, exp if kind != "perp" else ""),
                pdec, sdec, tick, lot, kind, contract_size=str(x.get("contract_size", "")),
                min_trade_amount=lot, settlement_period=period)
        return out

    @classmethod
    def native_from_recording(cls, name: str, instruments: dict[str, Instrument]) -> str | None:
        """cryptofeed's BTC-8000-21U24-put -> the instrument BTC-24SEP21-8000-P."""
        m = _CF_OPTION.match(name)
        if m is None:
            return None
        base, _, quote = m[1].partition("_")
        month = _MONTH_CODES.index(m[4]) + 1
        wanted = f"{base}-{quote or 'USD'}-20{m[3]}{month:02d}{m[5]}-{m[2]}-" \
                 f"{'P' if m[6] == 'put' else 'C'}"
        return next((n for n, i in instruments.items() if i.unified == wanted), None)

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Configured books the recording holds book notifications for."""
        seen = set()
        for conn in session.connections:
            for f in conn.frames:
                if '"channel":"book.' not in (f.data if isinstance(f.data, str) else ""):
                    continue
                try:
                    seen.add(orjson.loads(f.data)["params"]["data"]["instrument_name"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
        return [n for n in natives if n in seen]

    # -- requests ----------------------------------------------------------------------
    def _rpc(self, method: str, params: dict) -> str:
        self._next_id += 1
        return orjson.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method,
                             "params": params}).decode()

    def channel(self, symbol: str) -> str:
        return f"book.{symbol}.{self.interval}"

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self._rpc(f"public/{kind}", {"channels": [self.channel(s) for s in symbols]})]

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        out = [self._rpc("public/set_heartbeat", {"interval": self.heartbeat})]
        for batch in self.symbol_batches(symbols):
            out.extend(self.book_channel_messages("subscribe", batch))
        return out

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.change_id[symbol] = None

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        text = frame.decode() if isinstance(frame, bytes) else frame
        if '"book.' in text:
            self._on_book_frame(text, recv_ns)
            return
        msg = orjson.loads(text)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        method = msg.get("method")
        if method == "heartbeat":
            params = msg.get("params")
            kind = params.get("type") if isinstance(params, dict) else None
            if kind == "test_request":
                self.test_requests += 1
                self.outbox.append(self._rpc("public/test", {}))
            elif kind != "heartbeat":
                raise MalformedFrame(f"unknown heartbeat type {kind!r}")
            self.heartbeats += 1
            self.stats.ignored_frames += 1
        elif "error" in msg:
            err = msg["error"]
            raise MalformedFrame(f"venue error: {str(err)[:160]}")
        elif method == "subscription" or "result" in msg:
            self.stats.ignored_frames += 1      # other channels, answers to requests
        else:
            raise MalformedFrame("neither a notification nor an answer")

    def _on_book_frame(self, text: str, recv_ns: int) -> None:
        try:
            msg = loads_exact(text)
        except ValueError as exc:   # unreadable: still resync the book it was meant for
            m = _BOOK_CHANNEL.search(text)
            symbol = m[1] if m and m[1] in self.live else None
            raise MalformedFrame(f"bad JSON: {exc}", symbol) from exc
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        if msg.get("method") != "subscription":
            if "error" in msg:
                raise MalformedFrame(f"venue error: {str(msg['error'])[:160]}")
            self.stats.ignored_frames += 1       # e.g. the subscribe answer
            return
        params = msg.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("data"), dict) \
                or not isinstance(params.get("channel"), str):
            raise MalformedFrame("notification without channel / data")
        channel, data = params["channel"], params["data"]
        parts = channel.split(".")
        if parts[0] != "book" or len(parts) != 3:
            self.stats.ignored_frames += 1       # grouped book channels, other names
            return
        symbol = parts[1]
        if symbol not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        try:
            self._on_book(symbol, data, recv_ns)
        except _BAD as exc:
            raise MalformedFrame(f"bad book notification: {type(exc).__name__}: {exc}",
                                 symbol) from exc

    def _on_book(self, symbol: str, data: dict, recv_ns: int) -> None:
        if data.get("instrument_name", symbol) != symbol:
            raise ValueError("instrument_name differs from the channel's")
        kind = data["type"]
        change_id = int(data["change_id"])
        ts = data.get("timestamp")
        ts_ns = int(ts) * 1_000_000 if ts else 0
        if kind == "snapshot":
            bids = split_levels(data["bids"], True, self.depth, True)
            asks = split_levels(data["asks"], False, self.depth, True)
            if self.publish(symbol, bids, asks, change_id, ts_ns, recv_ns, snapshot=True,
                            live=True):
                self.change_id[symbol] = change_id
                self.snapshot_applied(symbol)
            return
        if kind != "change":
            raise ValueError(f"unknown book message type {kind!r}")
        if not self.live[symbol]:
            self.stats.ignored_frames += 1       # no snapshot yet: the old tail
            return
        prev = int(data["prev_change_id"])
        bids = split_levels(data["bids"], True, self.depth, False)
        asks = split_levels(data["asks"], False, self.depth, False)
        last = self.change_id[symbol]
        if prev != last:
            self.gap(symbol, f"prev_change_id={prev} != last change_id={last}")
            return
        if self.publish(symbol, bids, asks, change_id, ts_ns, recv_ns):
            self.change_id[symbol] = change_id
