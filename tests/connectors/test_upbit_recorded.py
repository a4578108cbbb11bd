"""Upbit recorded session (quotation websocket, ``orderbook``, SIMPLE format, binary
frames, 2021): replay through the connector and the engine; every recorded book live,
no resyncs / malformed, and equal to a longhand reference rebuild (json + Decimal +
dicts).  Also: the instrument list, the scales against every number sent, and the
protocol's own rules frame by frame."""

import json
from decimal import Decimal

import numpy as np
import orjson

from connectors.base import BookTarget, Instrument
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from connectors.upbit import Upbit
from engine.fixedpoint import decimals_for
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"KRW-LAMB", "KRW-WAVES", "BTC-XTZ", "BTC-ITAM", "BTC-PAX"}   # the others: silent


def book_messages():
    for _, kind, payload in frames_and_rest("UPBIT"):
        if kind == "ws":
            assert isinstance(payload, bytes)               # Upbit sends binary frames
            msg = json.loads(payload.decode("utf-8"), parse_float=Decimal)
            if msg["ty"] == "orderbook":
                yield msg


def rebuild_upbit() -> dict[str, RefBook]:
    """Longhand: each message is the whole top of book, so the last one of a code is the
    book; a unit with zero size is no level."""
    books: dict[str, RefBook] = {}
    for msg in book_messages():
        book = books[msg["cd"]] = RefBook()
        for unit in msg["obu"]:
            if unit["bs"] != 0:
                book.set("bid", unit["bp"], unit["bs"])
            if unit["as"] != 0:
                book.set("ask", unit["ap"], unit["as"])
    return books


def test_recorded_upbit_matches_reference():
    res = replay_session(need_recordings(), "UPBIT")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 5
    msgs = list(book_messages())
    assert len(msgs) == 145 and all(len(m["obu"]) == 15 for m in msgs)
    assert res.level_updates == 145 * 30
    ref = rebuild_upbit()
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        levels = book.levels()
        assert as_decimal_levels(got[sym]) == levels, sym
        assert len(levels["bids"]) == 15 and len(levels["asks"]) == 15
        assert levels["bids"][0][0] < levels["asks"][0][0]
        assert res.stats.symbols[sym].snapshots == sum(m["cd"] == sym for m in msgs)
    assert res.stats.symbols["KRW-LAMB"].snapshots == 87
    assert res.stats.ignored_frames == 304                # trades


def test_recorded_instruments_and_symbols():
    session = load_session(need_recordings(), "UPBIT")
    instruments = session_instruments(Upbit, session)
    assert len(instruments) > 200
    lamb = instruments["KRW-LAMB"]
    assert (lamb.native, lamb.unified, lamb.kind) == ("KRW-LAMB", "LAMB-KRW", "spot")
    assert instruments["BTC-XTZ"].unified == "XTZ-BTC"
    natives = session_symbols(Upbit, session, instruments)
    assert len(natives) == 10 and "BTC-FCT2" in natives
    assert set(Upbit.recorded_symbols(session, natives)) == BOOKS
    assert Upbit.native_from_recording("XTZ-BTC", instruments) == "BTC-XTZ"
    assert Upbit.native_from_recording("NOPE-BTC", instruments) is None


def test_scales_cover_every_number_sent():
    instruments = session_instruments(Upbit, load_session(need_recordings(), "UPBIT"))
    seen = 0
    for _, kind, payload in frames_and_rest("UPBIT"):
        msg = json.loads(payload, parse_float=str, parse_int=str) if kind == "ws" else {}
        if msg.get("ty") != "orderbook":
            continue
        inst = instruments[msg["cd"]]
        for unit in msg["obu"]:
            for key in ("ap", "bp"):
                assert decimals_for(unit[key]) <= inst.price_decimals
            for key in ("as", "bs"):
                assert decimals_for(unit[key]) <= inst.size_decimals
            seen += 4
    assert seen == 145 * 60
    assert max(decimals_for(str(u["bp"])) for m in book_messages() for u in m["obu"]) == 8


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness:
    def __init__(self, symbols=("KRW-BTC",)) -> None:
        inst = {s: Instrument("upbit", s, s, 8, 8) for s in symbols}
        self.store = BookStore(len(symbols), 100)
        for i, s in enumerate(symbols):
            self.store.configure(i, f"upbit:{s}", 8, 8)
        pool = RingPool(1, 1 << 12)
        self.ring = pool.ctl[0], pool.data[0]
        targets = {s: BookTarget(*self.ring, i, self.store.hdr) for i, s in enumerate(symbols)}
        self.proto = Upbit(inst, targets)
        self.proto.on_connect()
        self._drain()

    def _drain(self) -> None:
        s = self.store
        ring_drain(*self.ring, s.hdr, s.px, s.sz, 1 << 20, np.zeros(0, np.int64),
                   np.zeros(S_WORDS, np.int64))

    def frame(self, frame) -> None:
        if isinstance(frame, dict):
            frame = orjson.dumps(frame)
        self.proto.handle_frame(frame, 0)
        self._drain()
        self.proto.check_health()
        self._drain()

    def book(self) -> dict:
        return self.store.book(0).to_dict()

    @property
    def stats(self):
        return self.proto.stats.sym("KRW-BTC")


def ob(units, code="KRW-BTC", simple=True) -> bytes:
    """An orderbook message with numbers written verbatim (JSON numbers)."""
    rows = ",".join(f'{{"ap":{a},"bp":{b},"as":{x},"bs":{y}}}' for a, b, x, y in units)
    text = f'{{"ty":"orderbook","cd":"{code}","tms":1618678262640,"obu":[{rows}],' \
           f'"st":"REALTIME"}}'
    if not simple:
        for s, long in (("ty", "type"), ("cd", "code"), ("tms", "timestamp"),
                        ("obu", "orderbook_units"), ("ap", "ask_price"), ("bp", "bid_price"),
                        ("as", "ask_size"), ("bs", "bid_size")):
            text = text.replace(f'"{s}":', f'"{long}":')
    return text.encode()


def test_every_message_replaces_the_book():
    h = Harness()
    h.frame(ob([("101.0", "100.0", "2.5", "1.0"), ("102.0", "99.0", "1.0E-5", "3.0")]))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100", "1"], ["99", "3"]]
    assert h.book()["asks"] == [["101", "2.5"], ["102", "0.00001"]]
    # the next message replaces everything, long keys too; a zero-size unit is no level
    h.frame(ob([("105.5", "104.0", "7.0", "0.12345678"), ("106.0", "0.0", "1.0", "0.0")],
               simple=False))
    assert h.book()["bids"] == [["104", "0.12345678"]]
    assert h.book()["asks"] == [["105.5", "7"], ["106", "1"]]
    assert h.stats.snapshots == 2 and h.stats.resyncs == 0
    # a price above 1e7 prints with an exponent, as Java does
    h.frame(ob([("1.2345679E7", "1.2345678E7", "1.0", "2.0")]))
    assert h.book()["bids"] == [["12345678", "2"]] and h.book()["status"] == "live"


def test_crossed_book_resubscribes_and_recovers():
    h = Harness(("KRW-BTC", "KRW-ETH"))
    h.frame(ob([("101.0", "100.0", "1.0", "1.0")]))
    h.proto.outbox.clear()
    h.frame(ob([("101.0", "101.5", "1.0", "1.0")]))      # bid above the ask
    assert h.book()["status"] == "stale"
    assert h.stats.crossed == 1 and h.stats.resyncs == 1 and h.stats.gaps == 0
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert len(sent) == 1                                # no unsubscribe exists
    assert sent[0][1] == {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]}
    assert sent[0][2] == {"format": "SIMPLE"} and "ticket" in sent[0][0]
    h.frame(ob([("102.0", "101.0", "2.0", "1.0")]))      # the next whole book
    assert h.book()["status"] == "live" and h.book()["asks"] == [["102", "2"]]


def test_bad_input_is_counted_never_raised():
    h = Harness()
    good = [("101.0", "100.0", "1.0", "1.0")]
    h.frame(ob(good))
    h.frame(b"not json")
    h.frame(b"[1, 2]")
    h.frame(b'{"cd":"KRW-BTC"}')
    h.frame(b'{"error":{"name":"WRONG_FORMAT","message":"x"}}')
    assert h.proto.stats.malformed_frames == 4 and h.stats.malformed == 0
    assert h.book()["status"] == "live"
    bad_frames = [
        ob([("101.0", "100.000000001", "1.0", "1.0")]),             # finer than the scale
        ob([("101.0", "100.0", "1.0", "1.0")]).replace(b'"bp":100.0', b'"bp":null'),
        ob([("101.0", "100.0", "1.0", "1.0")]).replace(b'"bp":100.0', b'"bp":"1x"'),
        ob([("101.0", "100.0", "1.0", "1.0")]).replace(b'"bp":100.0,', b""),
        b'{"ty":"orderbook","cd":"KRW-BTC","obu":{"ap":1}}',
        b'{"ty":"orderbook","cd":"KRW-BTC","obu":[1]}',
        ob([("101.0", "100.0", "1.0", "9.3E10")]),                   # int64 overflow
    ]
    for bad in bad_frames:
        h.frame(ob(good))
        assert h.book()["status"] == "live"
        h.frame(bad)
        assert h.book()["status"] == "stale", bad
    assert h.stats.malformed == len(bad_frames) and h.stats.resyncs == len(bad_frames)
    h.frame(ob(good, code="KRW-NOPE"))
    assert h.proto.stats.unknown_symbol_frames == 1
    h.frame(b'{"status":"UP"}')
    h.frame(b'{"ty":"trade","cd":"KRW-BTC","tp":1.0}')
    assert h.proto.status_frames == 1 and h.proto.stats.ignored_frames == 2
    assert h.proto.ping_message() == "PING"
