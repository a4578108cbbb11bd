"""The shared Protocol behaviour, driven with frames and no network (Binance dialect):
crossed books, bad numbers, unknown symbols, a full ring, disconnects."""

import numpy as np
import orjson
import pytest

from connectors.base import BookTarget, ConfigError, Instrument
from connectors.binance import BinanceSpot
from engine.constants import H_CROSSED, HDR_WORDS
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore

SYMS = ["AAAUSDT", "BBBUSDT"]


class Harness:
    def __init__(self, ring_capacity=1 << 12, **kw):
        self.store = BookStore(len(SYMS), 64)
        self.pool = RingPool(1, ring_capacity)
        ctl, data = self.pool.ctl[0], self.pool.data[0]
        inst = {s: Instrument("binance", s, s[:3] + "-USDT", 2, 3) for s in SYMS}
        for i, s in enumerate(SYMS):
            self.store.configure(i, s, 2, 3)
        self.proto = BinanceSpot(inst, {s: BookTarget(ctl, data, i, self.store.hdr)
                                        for i, s in enumerate(SYMS)}, **kw)
        self.proto.on_connect()

    def drain(self):
        ring_drain(self.pool.ctl[0], self.pool.data[0], self.store.hdr, self.store.px,
                   self.store.sz, 1 << 20, np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))
        self.proto.check_health()
        ring_drain(self.pool.ctl[0], self.pool.data[0], self.store.hdr, self.store.px,
                   self.store.sz, 1 << 20, np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))

    def frame(self, sym, U, u, bids=(), asks=()):
        self.proto.handle_frame(orjson.dumps({"stream": f"{sym.lower()}@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1, "s": sym, "U": U, "u": u, "b": bids, "a": asks}}), 1)
        self.drain()

    def snapshot(self, sym, last, bids, asks):
        req = self.proto.rest_requests.popleft()
        assert req.symbol == sym
        self.proto.handle_rest(req, orjson.dumps({"lastUpdateId": last, "bids": bids,
                                                  "asks": asks}), 1)
        self.drain()

    def book(self, sym):
        return self.store.book(SYMS.index(sym))


def live_harness(**kw):
    h = Harness(**kw)
    for s in SYMS:
        h.frame(s, 9, 11, [["10.00", "1"]])
        h.snapshot(s, 10, [["10.00", "1"], ["9.99", "2"]], [["10.01", "3"]])
        assert h.book(s).status == "live"
    return h


def test_crossed_book_is_marked_counted_and_resynced():
    h = live_harness()
    h.frame("AAAUSDT", 12, 12, bids=[["10.05", "1"]])  # bid above the best ask
    st = h.proto.stats.sym("AAAUSDT")
    assert st.crossed == 1 and st.resyncs == 1
    assert h.book("AAAUSDT").status == "stale"  # resync marked it; crossed was seen first
    assert h.store.hdr[SYMS.index("AAAUSDT") * HDR_WORDS + H_CROSSED] == 1
    assert [r.symbol for r in h.proto.rest_requests] == ["AAAUSDT"]
    assert h.book("BBBUSDT").status == "live"  # only that book
    h.frame("AAAUSDT", 13, 13, asks=[["10.06", "1"]])  # buffered until the snapshot
    h.snapshot("AAAUSDT", 12, [["10.00", "1"]], [["10.01", "1"]])
    assert h.book("AAAUSDT").status == "live"
    assert h.book("AAAUSDT").to_dict()["asks"] == [["10.01", "1"], ["10.06", "1"]]


def test_bad_number_drops_the_message_and_resyncs_that_book():
    h = live_harness()
    h.frame("AAAUSDT", 12, 12, bids=[["10.001", "1"]])  # 3 decimals > price scale 2
    h.frame("BBBUSDT", 12, 12, bids=[["1e", "1"]])        # malformed
    for s in SYMS:
        st = h.proto.stats.sym(s)
        assert st.malformed == 1 and st.resyncs == 1
        assert h.book(s).status == "stale"
        assert h.book(s).to_dict()["bids"] == [["10", "1"], ["9.99", "2"]]  # nothing applied


def test_unknown_symbols_and_other_channels_are_counted_not_fatal():
    h = live_harness()
    h.frame("ZZZUSDT", 1, 1, bids=[["1", "1"]])
    h.proto.handle_frame(b'{"stream":"x@aggTrade","data":{"e":"aggTrade"}}', 1)
    h.proto.handle_frame(b'[1,2,3]', 1)
    h.proto.handle_frame(b'\xff\xfe', 1)
    st = h.proto.stats
    assert st.unknown_symbol_frames == 1 and st.ignored_frames >= 1
    assert st.malformed_frames == 2
    assert all(h.book(s).status == "live" for s in SYMS)


def test_full_ring_backpressure_then_drop_and_resync():
    h = Harness(ring_capacity=8, ring_timeout=0.05)
    h.frame("AAAUSDT", 9, 11)
    h.snapshot("AAAUSDT", 10, [["10.00", "1"]], [["10.01", "3"]])
    # nobody drains now: 8 slots fill, the next message waits 50 ms and is dropped
    for k in range(12, 30):
        h.proto.handle_frame(orjson.dumps({"data": {
            "e": "depthUpdate", "E": 1, "s": "AAAUSDT", "U": k, "u": k,
            "b": [["9.0" + str(k % 10), "1"]], "a": []}}), 1)
    st = h.proto.stats.sym("AAAUSDT")
    assert st.dropped >= 1 and st.resyncs >= 1
    assert h.pool.ring(0).full_count >= 1


def test_message_larger_than_its_queue_is_dropped_at_once_with_a_clear_error(caplog):
    import time

    h = Harness(ring_capacity=8, ring_timeout=5.0)
    h.frame("AAAUSDT", 9, 11)
    many = [[f"9.{k:02d}", "1"] for k in range(10)]   # 10 levels + status: never fits 8
    t0 = time.monotonic()
    h.snapshot("AAAUSDT", 10, many, [["10.01", "3"]])
    assert time.monotonic() - t0 < 1.0        # no back-pressure wait for a hopeless push
    st = h.proto.stats.sym("AAAUSDT")
    assert st.dropped == 1 and st.resyncs >= 1 and st.malformed == 0
    assert h.book("AAAUSDT").status != "live"
    assert h.pool.ring(0).full_count == 0     # not counted as a full ring either
    assert any("larger than the book's queue of 8 records" in r.getMessage()
               for r in caplog.records)
    assert h.proto.rest_requests.popleft().symbol == "AAAUSDT"   # the resync's snapshot
    # the other book is untouched and keeps working
    h.frame("BBBUSDT", 9, 11)
    h.snapshot("BBBUSDT", 10, [["10.00", "1"]], [["10.01", "3"]])
    assert h.book("BBBUSDT").status == "live"


def test_disconnect_marks_every_book_stale_and_reconnect_resyncs():
    h = live_harness()
    h.proto.on_disconnect()
    h.drain()
    assert all(h.book(s).status == "stale" for s in SYMS)
    h.proto.on_connect()
    h.drain()
    assert all(h.book(s).status == "syncing" for s in SYMS)
    h.frame("AAAUSDT", 20, 21, [["10.00", "5"]])
    assert [r.symbol for r in h.proto.rest_requests] == ["AAAUSDT"]


def test_unknown_configured_symbol_is_a_clear_error():
    store = BookStore(1, 8)
    pool = RingPool(1, 8)
    with pytest.raises(ConfigError, match="unknown symbol.*NOPE"):
        BinanceSpot({}, {"NOPE": BookTarget(pool.ctl[0], pool.data[0], 0, store.hdr)})


def test_a_level_that_is_not_a_pair_is_malformed_not_misaligned():
    h = live_harness()
    h.frame("AAAUSDT", 12, 12, bids=[["10.00", "1", "x"], ["9.99", "2"]])
    st = h.proto.stats
    assert st.malformed_frames + st.sym("AAAUSDT").malformed == 1
    assert h.book("AAAUSDT").to_dict()["bids"] == [["10", "1"], ["9.99", "2"]]
