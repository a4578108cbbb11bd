"""Bitfinex recorded session (websocket v2, ``book`` P0 len 100, SEQ_ALL, 2021): replay
through the connector and the engine; every recorded book live, no gaps / resyncs /
malformed, equal to a longhand reference rebuild (json + Decimal + dicts).  Also the
instrument list, the scales against every number sent, the JavaScript number text the
checksum needs, and the protocol's rules (sequence, checksum, resubscribe, bad input)
frame by frame."""

import json
import zlib
from decimal import Decimal

import numpy as np

from connectors.base import BookTarget, Instrument
from connectors.bitfinex import CHECKSUM, SEQ_ALL, Bitfinex, js_number
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for, to_fixed
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"tBFTUSD", "tIOTETH", "tDOGUSD", "tMNABTC", "tODEUSD", "tTESTBTC:TESTUSD",
         "tSNGUSD"}


def book_rows():
    """(symbol, rows, is_snapshot) of every recorded book message, longhand."""
    chans = {}
    for _, kind, payload in frames_and_rest("BITFINEX"):
        if kind != "ws":
            continue
        msg = json.loads(payload, parse_float=Decimal)
        if isinstance(msg, dict):
            if msg.get("event") == "subscribed" and msg["channel"] == "book":
                chans[msg["chanId"]] = msg["symbol"]
            continue
        if msg[0] in chans and isinstance(msg[1], list):
            snap = bool(msg[1]) and isinstance(msg[1][0], list)
            yield chans[msg[0]], msg[1] if snap else [msg[1]], snap


def rebuild_bitfinex(depth: int) -> dict[str, RefBook]:
    books: dict[str, RefBook] = {}
    for sym, rows, snap in book_rows():
        if snap:
            books[sym] = RefBook(depth)
        for price, count, amount in rows:
            side = "bid" if amount > 0 else "ask"
            books[sym].set(side, price, 0 if count == 0 else abs(amount))
    return books


def test_recorded_bitfinex_matches_reference():
    res = replay_session(need_recordings(), "BITFINEX")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 7
    assert res.level_updates == sum(len(r) for _, r, _ in book_rows()) == 2926
    ref = rebuild_bitfinex(res.depth)
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        levels = book.levels()
        assert as_decimal_levels(got[sym]) == levels, sym
        assert len(levels["bids"]) + len(levels["asks"]) >= 130, sym   # real depth
        assert res.stats.symbols[sym].snapshots == 1
    assert res.stats.malformed_frames == 0 and res.stats.unknown_symbol_frames == 0


def test_recorded_instruments_and_symbols():
    session = load_session(need_recordings(), "BITFINEX")
    instruments = session_instruments(Bitfinex, session)
    assert "tBTCUSD" in instruments and "tBTC" not in instruments   # currency list skipped
    assert instruments["tTESTBTC:TESTUSD"].unified == "TESTBTC-TESTUSD"
    assert instruments["tAVAX:USD"].unified == "AVAX-USD"
    assert (instruments["tBTCF0:USTF0"].unified, instruments["tBTCF0:USTF0"].kind) == \
        ("BTC-UST-PERP", "perp")
    natives = session_symbols(Bitfinex, session, instruments)
    assert set(natives) == BOOKS == set(Bitfinex.recorded_symbols(session, natives))


def test_scales_and_js_number_text_cover_every_number_sent():
    """Every recorded price/amount fits the scales, and js_number (used for checksums)
    writes it back exactly as the venue did, exponent forms included."""
    seen = exps = 0
    for _, kind, payload in frames_and_rest("BITFINEX"):
        if kind != "ws" or not payload.startswith("["):
            continue
        msg = json.loads(payload, parse_float=str, parse_int=str)
        rows = msg[1] if isinstance(msg[1], list) else []
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        if len(rows) and len(rows[0]) != 3:
            continue                                   # trades / ticker channels
        for price, _, amount in rows:
            assert decimals_for(price) <= 8 and decimals_for(amount) <= 8
            assert js_number(to_fixed(price, 10), 10) == price
            mag = amount.lstrip("-")
            assert js_number(to_fixed(mag, 8), 8) == mag
            seen += 1
            exps += "e" in price
    assert seen >= 2926 and exps > 10


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness:
    def __init__(self, symbols=("tBTCUSD", "tETHUSD"), flags=SEQ_ALL | CHECKSUM) -> None:
        inst = {s: Instrument("bitfinex", s, s, 10, 8) for s in symbols}
        self.store = BookStore(len(symbols), 100)
        for i, s in enumerate(symbols):
            self.store.configure(i, f"bitfinex:{s}", 10, 8)
        pool = RingPool(1, 1 << 12)
        self.ring = pool.ctl[0], pool.data[0]
        targets = {s: BookTarget(*self.ring, i, self.store.hdr) for i, s in enumerate(symbols)}
        self.proto = Bitfinex(inst, targets)
        self.proto.on_connect()
        self.sent = [json.loads(m) for m in self.proto.subscribe_messages(list(symbols))]
        self.seq = 0
        self.frame({"event": "conf", "status": "OK", "flags": flags})
        for i, s in enumerate(symbols):
            self.frame({"event": "subscribed", "channel": "book", "chanId": 10 + i,
                        "symbol": s, "prec": "P0", "freq": "F0", "len": "100"})

    def _drain(self) -> None:
        s = self.store
        ring_drain(*self.ring, s.hdr, s.px, s.sz, 1 << 20, np.zeros(0, np.int64),
                   np.zeros(S_WORDS, np.int64))

    def frame(self, frame, seq=True) -> None:
        if isinstance(frame, list) and seq:
            self.seq += 1
            frame = [*frame, self.seq]
        if not isinstance(frame, str):
            frame = json.dumps(frame)
        self.proto.handle_frame(frame, 0)
        self._drain()
        self.proto.check_health()
        self._drain()

    def book(self, i=0) -> dict:
        return self.store.book(i).to_dict()

    def stats(self, s="tBTCUSD"):
        return self.proto.stats.sym(s)


def longhand_checksum(bids, asks) -> int:
    """The documented recipe with plain strings: top 25 interleaved, asks negative."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += [asks[i][0], "-" + asks[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def test_subscribe_messages_set_flags_first():
    h = Harness()
    assert h.sent[0] == {"event": "conf", "flags": 196608}
    assert h.sent[1] == {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD",
                         "prec": "P0", "freq": "F0", "len": "100"}


def test_snapshot_updates_and_checksum():
    h = Harness()
    h.frame('[10,[[100.5,1,2],[100,2,1e-7],[101,1,-3],[102.25,3,-0.5]],1]', seq=False)
    h.seq = 1
    h.frame([10, [100.5, 0, 1]])                        # delete a bid
    h.frame([10, [101, 2, -4]])                         # resize an ask
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100", "0.0000001"]]
    assert h.book()["asks"] == [["101", "4"], ["102.25", "0.5"]]
    good = longhand_checksum([["100", "1e-7"]], [["101", "4"], ["102.25", "0.5"]])
    h.frame([10, "cs", good])
    assert h.proto.checksums_ok == 1 and h.book()["status"] == "live"
    h.frame([10, "cs", good + 1])
    assert h.stats().checksum_failures == 1 and h.book()["status"] == "stale"
    sent = [json.loads(m) for m in h.proto.outbox]
    assert sent == [{"event": "unsubscribe", "chanId": 10},
                    {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD",
                     "prec": "P0", "freq": "F0", "len": "100"}]
    h.frame([10, [99, 1, 1]])                           # old channel's tail: dropped
    h.frame({"event": "unsubscribed", "status": "OK", "chanId": 10})
    h.frame({"event": "subscribed", "channel": "book", "chanId": 12, "symbol": "tBTCUSD"})
    h.frame([12, [[99, 1, 1], [103, 1, -1]]])
    assert h.book()["status"] == "live" and h.book()["bids"] == [["99", "1"]]


def test_connection_sequence_gap_resyncs_every_book():
    h = Harness()
    h.frame([10, [[100, 1, 1], [101, 1, -1]]])
    h.frame([11, [[10, 1, 1], [11, 1, -1]]])
    h.frame([99, "hb"])                                  # another channel counts too
    h.seq += 1                                           # one message lost
    h.frame([10, [100, 1, 2]])
    assert h.stats().gaps == 1 and h.stats("tETHUSD").gaps == 1
    assert h.book(0)["status"] == "stale" and h.book(1)["status"] == "stale"
    assert h.book(0)["bids"] == [["100", "1"]]           # the update after the gap: dropped
    h.frame('[10,[100,1,5]]')                            # sequence number missing
    assert h.proto.stats.malformed_frames == 1


def test_recording_flags_without_checksum_or_sequence():
    h = Harness(flags=0)
    h.frame([10, [[100, 1, 1], [101, 1, -1]]], seq=False)
    h.frame([10, "cs", 123], seq=False)                  # nothing to verify against
    assert h.book()["status"] == "live" and h.proto.checksums_failed == 0


def test_bad_input_is_counted_never_raised():
    h = Harness()
    h.frame([10, [[100, 1, 1], [101, 1, -1]]])
    h.frame("not json")
    h.frame("[]", seq=False)
    h.frame({"event": "nonsense"})
    assert h.proto.stats.malformed_frames == 3 and h.stats().malformed == 0
    chan = 10
    for bad in (["1..0", 1, 1], [100, 1], [100, -1, 1], [100, 1, 0], [100, 1, "x"],
                [100, 1.5, 1], [100.000000000001, 1, 1]):
        h.frame([chan, [[100, 1, 1], [101, 1, -1]]])
        assert h.book()["status"] == "live"
        h.proto.outbox.clear()
        h.frame([chan, bad])
        assert h.book()["status"] == "stale", bad
        assert [json.loads(m)["event"] for m in h.proto.outbox] == ["unsubscribe",
                                                                    "subscribe"]
        chan += 10
        h.frame({"event": "subscribed", "channel": "book", "chanId": chan,
                 "symbol": "tBTCUSD"})
    assert h.stats().malformed == 7 and h.stats().resyncs == 7
    h.frame({"event": "info", "code": 20051, "msg": "restart"})
    assert h.proto.reconnect_requested
