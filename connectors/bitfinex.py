"""Bitfinex websocket API v2, public ``book`` channel (P0 precision, F0, 100 levels).

Protocol as this module speaks it (sources at the end; [rec] = seen in the recording
BITFINEX.ws.11.0 of 2021-04, [doc] = documentation only):

* Endpoint ``wss://api-pub.bitfinex.com/ws/2`` [doc: public channels belong on api-pub;
  the 2021 recording used ``api.bitfinex.com``].  The server opens with
  ``{"event":"info","version":2,...}`` [rec].
* Connection flags first: ``{"event":"conf","flags":196608}`` = SEQ_ALL (65536) +
  CHECKSUM (131072); the server acks ``{"event":"conf","status":"OK","flags":N}`` [rec
  for 65536].  The connector takes the flags in force from the ack, never from what it
  asked for, so the recording (SEQ_ALL only, no checksums) and the live feed run through
  the same code: no dialect subclass is needed.
* Subscribe, one request per book: ``{"event":"subscribe","channel":"book",
  "symbol":"tBTCUSD","prec":"P0","freq":"F0","len":"100"}`` [rec]; answer
  ``{"event":"subscribed","chanId":N,"symbol":...}`` [rec]; every later message of the
  book is an array headed by that chanId.  ``{"event":"unsubscribe","chanId":N}`` ends
  it [doc].  At most 25 channels per connection and 20 connections per minute on
  api-pub [doc], hence 25 books per connection and a 3 s connect interval.
* Book messages [rec]: snapshot ``[chanId, [[price, count, amount], ...]]`` and update
  ``[chanId, [price, count, amount]]``; amount > 0 is a bid, < 0 an ask (its magnitude
  is the size), count 0 deletes the level (amount then is +1 / -1 to name the side).
  Numbers are JSON numbers, including exponent forms such as ``1.1e-7`` [rec]; they
  are read as text (``json.loads(parse_float=str)``) and parsed exactly.
* Heartbeat ``[chanId, "hb"]`` about every 15 s per channel [rec, doc].
* With SEQ_ALL every array message ends with a sequence number counting all messages
  of the *connection* (all channels) [rec: 1..1670, contiguous across ticker, trades
  and book channels].  A gap cannot be pinned on one channel, so every book of the
  connection is counted a gap and resynced.
* With CHECKSUM, ``[chanId, "cs", checksum]`` (plus the sequence number) follows
  book changes [doc]: a signed CRC32 of the top 25 bids and asks interleaved,
  ``bidPrice:bidAmount:askPrice:askAmount:...`` with the ask amount negative and the
  numbers written as JavaScript prints them (shortest form, exponent below 1e-6).
  The engine has no such scheme (CK_OKX cannot write the negative ask amount), so the
  connector keeps its own mirror of each book (fixed-point ints) while checksums are on
  and verifies in Python: one sort of at most ~100 levels per side per ``cs`` message.
  A mismatch counts ``checksum_failures`` and resyncs the book.  Verified only against
  the simulator: the recording has no checksums.
* Resync (gap, checksum mismatch, crossed book, malformed message): unsubscribe +
  subscribe (connectors.resubscribe).  Frames of the old chanId are dropped from the
  moment the unsubscribe is sent; the book goes live on the new subscription's snapshot.
* Info codes [doc]: 20051 (server restart) -> reconnect; 20060 (maintenance begins) ->
  books stale; 20061 (maintenance over, resubscribe advised) -> reconnect.
* Instruments: ``/v2/conf/pub:list:pair:exchange`` and ``pub:list:pair:future`` (lists
  of pair names, no tick sizes) [rec].  Natives are ``t`` + pair: ``tBTCUSD``,
  ``tTESTBTC:TESTUSD``; unified ``BTC-USD`` (six letters split 3/3, else at the colon);
  futures ``BTCF0:USTF0`` are perpetuals, unified ``BTC-UST-PERP``.  Scales: prices
  have 5 significant digits and at most 8 decimals, amounts at most 8 [rec: 8 and 8];
  PRICE_DECIMALS keeps 2 decimals of headroom.

Sources: https://docs.bitfinex.com/docs/ws-general (endpoints, info codes, conf),
https://docs.bitfinex.com/docs/ws-public (25 channels per connection, 20 connections
per minute), https://docs.bitfinex.com/reference/ws-public-books (book messages),
https://docs.bitfinex.com/docs/ws-websocket-checksum (checksum flag, ``cs`` message,
top 25, signed).  Not confirmed from the documentation: the exact period of ``cs``
messages (assumed: after changes, never relied upon), whether the sequence number
keeps counting across unsubscribe/subscribe (assumed: it does, per connection), the
number formatting of the checksum for exponent-form numbers (taken from JavaScript's
Number#toString, which the documented JS example uses), and that P0 books never
exceed ``len`` (the venue sends the deletes of levels leaving the window [rec]).
"""

from __future__ import annotations

import json
import logging
import zlib

from connectors.base import ConfigError, Instrument, MalformedFrame
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ
from engine.fixedpoint import FixedPointError, to_fixed

log = logging.getLogger("hftbook.connectors")

SEQ_ALL = 65536
CHECKSUM = 131072
FLAGS = SEQ_ALL | CHECKSUM
PRICE_DECIMALS = 10      # 8 sent at most [rec], plus headroom
SIZE_DECIMALS = 8
BOOK_LEN = "100"
CHECKSUM_LEVELS = 25
INFO_RESTART = 20051
INFO_MAINTENANCE = 20060
INFO_MAINTENANCE_END = 20061
PAIR_PATHS = ("/v2/conf/pub:list:pair:exchange", "/v2/conf/pub:list:pair:future")
SEP = b"\x01"


def js_number(v: int, decimals: int) -> str:
    """How JavaScript prints the number ``v / 10**decimals`` (v >= 0): shortest
    decimal, exponent form below 1e-6 ("1.1e-7")."""
    if v == 0:
        return "0"
    whole, frac = divmod(v, 10 ** decimals)
    if whole or v * 10 ** 6 >= 10 ** decimals:
        f = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
        return f"{whole}.{f}" if f else str(whole)
    digits = str(v)
    exp = len(digits) - 1 - decimals
    digits = digits.rstrip("0")
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mant}e{exp}"


def book_checksum(bids: dict[int, int], asks: dict[int, int], pdec: int, sdec: int) -> int:
    """Bitfinex's signed CRC32 of the top 25 levels (ask amounts negative)."""
    top_b = sorted(bids, reverse=True)[:CHECKSUM_LEVELS]
    top_a = sorted(asks)[:CHECKSUM_LEVELS]
    parts: list[str] = []
    for i in range(max(len(top_b), len(top_a))):
        if i < len(top_b):
            p = top_b[i]
            parts += (js_number(p, pdec), js_number(bids[p], sdec))
        if i < len(top_a):
            p = top_a[i]
            parts += (js_number(p, pdec), "-" + js_number(asks[p], sdec))
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _text(x) -> str:
    """A number as read by json.loads(parse_float=str): exact text."""
    t = type(x)
    if t is str:
        return x
    if t is int:
        return str(x)
    raise TypeError(f"not a number: {x!r}")


def unified_pair(pair: str) -> tuple[str, str]:
    """(unified name, kind) of a Bitfinex pair name: BTCUSD -> BTC-USD, spot;
    AVAX:USD -> AVAX-USD; BTCF0:USTF0 -> BTC-UST-PERP, perp."""
    if ":" in pair:
        base, quote = pair.split(":", 1)
    else:
        base, quote = pair[:3], pair[3:]
    if base.endswith("F0") and quote.endswith("F0"):
        return f"{base[:-2]}-{quote[:-2]}-PERP", "perp"
    return f"{base}-{quote}", "spot"


class Bitfinex(ResubscribingProtocol):
    exchange = "bitfinex"
    ws_url = "wss://api-pub.bitfinex.com/ws/2"
    rest_url = "https://api-pub.bitfinex.com"
    max_symbols_per_connection = 25    # 25 channels per connection [doc]
    subscribe_batch = 25
    connect_interval = 3.0             # 20 connections per minute [doc]
    depth = 100                        # len "100"

    def __init__(self, *args, flags: int = FLAGS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flags_wanted = flags
        self.flags = 0                     # in force: from the server's conf ack
        self.last_seq: int | None = None
        self.chan_sym: dict[int, str] = {}
        self.sym_chan: dict[str, int] = {}
        self.sub_pending: set[str] = set()
        self.mirror: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        self.heartbeats = 0
        self.checksums_ok = 0
        self.checksums_failed = 0
        self.subscribe_errors = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + p for p in PAIR_PATHS]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        """A pair list ``[[names]]`` -> instruments.  parse_instruments sees no URL, so
        the currency list (also ``[[names]]``) is told apart by its names: every pair
        name has six letters or a colon; currency names do not."""
        msg = json.loads(body)
        if not (isinstance(msg, list) and len(msg) == 1 and isinstance(msg[0], list)):
            raise ConfigError(f"bitfinex: not a pair list: {str(msg)[:200]}")
        names = msg[0]
        if not all(isinstance(n, str) and (":" in n or len(n) == 6) for n in names):
            return {}                      # pub:list:currency or another list
        out: dict[str, Instrument] = {}
        for pair in names:
            unified, kind = unified_pair(pair)
            native = "t" + pair
            out[native] = Instrument(cls.exchange, native, unified, PRICE_DECIMALS,
                                     SIZE_DECIMALS, "", "", kind)
        return out

    @classmethod
    def recorded_symbols(cls, session, natives: list[str]) -> list[str]:
        """Configured books with a book subscription and data in the recording."""
        chans: dict[int, str] = {}
        seen: set[str] = set()
        for conn in session.connections:
            for f in conn.frames:
                try:
                    msg = json.loads(f.data, parse_float=str)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    if msg.get("event") == "subscribed" and msg.get("channel") == "book":
                        chans[msg.get("chanId")] = msg.get("symbol")
                elif isinstance(msg, list) and len(msg) > 1 and msg[0] in chans \
                        and isinstance(msg[1], list):
                    seen.add(chans[msg[0]])
        return [n for n in natives if n in seen]

    # -- subscription ------------------------------------------------------------------
    def _subscribe(self, symbol: str) -> str:
        self.sub_pending.add(symbol)
        return json.dumps({"event": "subscribe", "channel": "book", "symbol": symbol,
                           "prec": "P0", "freq": "F0", "len": BOOK_LEN})

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        out = [json.dumps({"event": "conf", "flags": self.flags_wanted})]
        return out + [self._subscribe(s) for s in symbols]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        out = []
        for s in symbols:
            if kind == "unsubscribe":
                chan = self.sym_chan.pop(s, None)
                if chan is not None:       # its frames are dropped from now on
                    self.chan_sym.pop(chan, None)
                    out.append(json.dumps({"event": "unsubscribe", "chanId": chan}))
                    self.sub_pending.discard(s)
            elif s not in self.sub_pending:  # a subscribe still unanswered stands
                out.append(self._subscribe(s))
        return out

    def on_connect(self) -> None:
        self.flags = 0
        self.last_seq = None
        self.chan_sym.clear()
        self.sym_chan.clear()
        self.sub_pending.clear()
        self.mirror.clear()
        super().on_connect()

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.chan_sym.clear()
        self.sym_chan.clear()
        self.sub_pending.clear()

    def reset_symbol(self, symbol: str) -> None:
        super().reset_symbol(symbol)
        self.mirror.pop(symbol, None)

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = json.loads(frame, parse_float=str)
        if isinstance(msg, list):
            self._on_array(msg, recv_ns)
        elif isinstance(msg, dict):
            self._on_event(msg)
        else:
            raise MalformedFrame("neither an array nor an event")

    def _on_event(self, msg: dict) -> None:
        event = msg.get("event")
        if event == "subscribed":
            sym, chan = msg.get("symbol"), msg.get("chanId")
            if msg.get("channel") != "book" or sym not in self.live:
                self.stats.ignored_frames += 1
                return
            if type(chan) is not int:
                raise MalformedFrame(f"chanId is not an integer: {chan!r}", sym)
            old = self.sym_chan.get(sym)
            if old is not None:
                self.chan_sym.pop(old, None)
            self.chan_sym[chan] = sym
            self.sym_chan[sym] = chan
            self.sub_pending.discard(sym)
        elif event == "conf":
            flags = msg.get("flags")
            if msg.get("status") == "OK" and type(flags) is int:
                self.flags = flags
            else:
                self.flags = 0
                self.stats.reasons["conf refused"] += 1
                log.warning("bitfinex: conf not accepted: %.160s", msg)
        elif event == "info":
            self._on_info(msg.get("code"))
        elif event == "error":
            self.subscribe_errors += 1
            self.stats.reasons["venue error"] += 1
            log.warning("bitfinex: error event: %.160s", msg)
        elif event in ("unsubscribed", "pong"):
            self.stats.ignored_frames += 1
        else:
            raise MalformedFrame(f"unknown event {str(event)[:40]}")

    def _on_info(self, code) -> None:
        if code is not None and type(code) is not int:
            code = int(code)
        if code in (INFO_RESTART, INFO_MAINTENANCE_END):
            self.stats.reasons[f"info {code}"] += 1
            self.reconnect_requested = True
        elif code == INFO_MAINTENANCE:
            self.stats.reasons[f"info {code}"] += 1
            for s in self.targets:
                if self.live[s]:
                    self.live[s] = False
                    self.mark_stale(s, "maintenance")
        else:
            self.stats.ignored_frames += 1

    def _on_array(self, msg: list, recv_ns: int) -> None:
        if len(msg) < 2 or type(msg[0]) is not int:
            raise MalformedFrame("array without a channel id")
        seq = NO_SEQ
        if self.flags & SEQ_ALL:
            seq = msg.pop()
            if type(seq) is not int or len(msg) < 2:
                raise MalformedFrame(f"sequence number missing: {str(seq)[:20]}")
            last = self.last_seq
            self.last_seq = seq
            if last is not None and seq != last + 1:
                self._connection_gap(last, seq)
        symbol = self.chan_sym.get(msg[0])
        if symbol is None:
            self.stats.ignored_frames += 1      # another channel, or an old subscription
            return
        body = msg[1]
        if body == "hb":
            self.heartbeats += 1
            self.stats.ignored_frames += 1
        elif body == "cs":
            self._on_checksum(symbol, msg)
        elif type(body) is list:
            if not body or type(body[0]) is list:
                self._on_snapshot(symbol, body, seq, recv_ns)
            elif self.live[symbol]:
                self._on_update(symbol, body, seq, recv_ns)
            else:
                self.stats.ignored_frames += 1  # no snapshot yet
        else:
            raise MalformedFrame(f"unknown book message {str(body)[:40]}", symbol)

    def _connection_gap(self, last: int, seq: int) -> None:
        detail = f"connection sequence {last} -> {seq}"
        for s in self.targets:
            if self.live[s] or s in self.sym_chan:
                self.gap(s, detail)

    def _level(self, symbol: str, row) -> tuple[str, str, bool]:
        """(price text, size text, is bid) of one [price, count, amount] row."""
        try:
            price, count, amount = row
            if type(count) is not int or count < 0:
                raise ValueError(f"bad count {count!r}")
            p, a = _text(price), _text(amount)
            if count and float(a) == 0.0:
                raise ValueError("orders but no amount")
        except (TypeError, ValueError) as exc:
            raise MalformedFrame(f"bad level {str(row)[:60]}: {exc}", symbol) from exc
        bid = not a.startswith("-")
        return p, (a if bid else a[1:]) if count else "0", bid

    def _on_snapshot(self, symbol: str, rows: list, seq: int, recv_ns: int) -> None:
        bp: list[bytes] = []
        bs: list[bytes] = []
        ap: list[bytes] = []
        asz: list[bytes] = []
        for row in rows:
            p, size, bid = self._level(symbol, row)
            if size == "0":
                raise MalformedFrame("snapshot level with count 0", symbol)
            if bid:
                bp.append(p.encode())
                bs.append(size.encode())
            else:
                ap.append(p.encode())
                asz.append(size.encode())
        if self.flags & CHECKSUM:
            self.mirror[symbol] = ({}, {})
            self._mirror_apply(symbol, zip(bp, bs), zip(ap, asz))
        if self.publish(symbol, (SEP.join(bp), SEP.join(bs)), (SEP.join(ap), SEP.join(asz)),
                        seq, 0, recv_ns, snapshot=True, live=True):
            self.snapshot_applied(symbol)

    def _on_update(self, symbol: str, row, seq: int, recv_ns: int) -> None:
        p, size, bid = self._level(symbol, row)
        lv = (p.encode(), size.encode())
        empty = (b"", b"")
        if symbol in self.mirror:
            self._mirror_apply(symbol, [lv] if bid else (), () if bid else [lv])
        self.publish(symbol, lv if bid else empty, empty if bid else lv, seq, 0, recv_ns)

    def _mirror_apply(self, symbol: str, bids, asks) -> None:
        inst = self.instruments[symbol]
        pd, sd = inst.price_decimals, inst.size_decimals
        sides = self.mirror[symbol]
        try:
            for side, levels in zip(sides, (bids, asks)):
                for p, q in levels:
                    price, size = to_fixed(p, pd), to_fixed(q, sd)
                    if size:
                        side[price] = size
                    else:
                        side.pop(price, None)
                if len(side) > self.depth:      # what a book of this depth keeps
                    worst = sorted(side, reverse=side is sides[0])[self.depth:]
                    for price in worst:
                        del side[price]
        except FixedPointError:
            # the publish of the same levels fails too, and resyncs the book
            self.mirror.pop(symbol, None)

    def _on_checksum(self, symbol: str, msg: list) -> None:
        if len(msg) < 3 or type(msg[2]) is not int:
            raise MalformedFrame(f"bad checksum message {str(msg)[:60]}", symbol)
        sides = self.mirror.get(symbol)
        if not self.live[symbol] or sides is None or not self.verify_checksums:
            self.stats.ignored_frames += 1
            return
        inst = self.instruments[symbol]
        mine = book_checksum(sides[0], sides[1], inst.price_decimals, inst.size_decimals)
        if (mine & 0xFFFFFFFF) == (msg[2] & 0xFFFFFFFF):
            self.checksums_ok += 1
            return
        self.checksums_failed += 1
        self.stats.sym(symbol).checksum_failures += 1
        log.warning("bitfinex %s: checksum %d, book gives %d: resync", symbol, msg[2], mine)
        self.resync(symbol, "checksum mismatch")
