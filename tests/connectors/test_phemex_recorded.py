"""Phemex recorded session (2021, ``orderbook.subscribe`` with scaled-integer prices,
two connections: books/trades and klines): replay through the connector and the engine;
every book live with no gaps, resyncs or drops, equal to a longhand rebuild (json,
Decimal, the products list's scales).  Then the rules the recording does not exercise,
frame by frame: non-increasing sequences, a periodic snapshot that disagrees, bad input,
the ``orderbook_p`` string channel, pings."""

import json
from decimal import Decimal

import numpy as np
import orjson

from connectors.base import BookTarget
from connectors.phemex import CH_REAL, Phemex, PhemexInstrument
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings


def recorded_scales() -> dict[str, tuple[int, int]]:
    """(price, size) powers of ten per symbol, read longhand from the products list:
    perpetuals priceScale and whole contracts, spot the currencies' valueScale."""
    path = need_recordings() / "PHEMEX.0"
    line = next(ln for ln in path.read_text().splitlines() if "/products ->" in ln)
    data = json.loads(line.split(": ", 1)[1])["data"]
    vs = {c["currency"]: c["valueScale"] for c in data["currencies"]}
    out = {}
    for p in data["products"]:
        if p["type"] == "Perpetual":
            out[p["symbol"]] = (p["priceScale"], 0)
        elif p["type"] == "Spot":
            out[p["symbol"]] = (vs[p["quoteCurrency"]], vs[p["baseCurrency"]])
    return out


def rebuild_phemex(depth: int):
    """Snapshot replaces the book, incrementals set absolute sizes (0 deletes), each
    incremental's sequence above the last; periodic snapshots must equal the rebuilt
    book.  Returns (books, incrementals applied, periodic snapshots checked)."""
    scales = recorded_scales()
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    applied = checked = 0
    for _, kind, payload in frames_and_rest("PHEMEX"):
        if kind != "ws":
            continue
        msg = json.loads(payload)
        if "book" not in msg:
            continue
        sym, ps, ss = msg["symbol"], *scales[msg["symbol"]]
        fresh = RefBook(depth)
        target = fresh if msg["type"] == "snapshot" else books[sym]
        if msg["type"] == "incremental":
            assert msg["sequence"] > last[sym]
            applied += 1
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for p, q in msg["book"][key]:
                target.set(side, Decimal(p).scaleb(-ps), Decimal(q).scaleb(-ss))
        if msg["type"] == "snapshot":
            if sym in books:
                assert fresh.levels() == books[sym].levels(), sym
                checked += 1
            books[sym] = fresh
        last[sym] = msg["sequence"]
    return books, applied, checked


def test_recorded_phemex_matches_reference():
    res = replay_session(need_recordings(), "PHEMEX")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0 and res.stats.totals()["dropped"] == 0
    assert res.books == 10 and res.summary()["books_live"] == 10
    assert res.stats.totals()["snapshots"] == 13      # 10 initial + 3 periodic (spot)
    ref, applied, checked = rebuild_phemex(Phemex.depth)
    assert set(ref) == set(res.symbols)
    assert applied > 1000 and checked == 3
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) == len(book.levels()["asks"]) == 30
    assert got["YFIUSD"]["bids"][0] == ["32936", "5488"]          # 329360000e-4
    assert got["sGRTUSDT"]["asks"][0] == ["0.67436", "8646.2"]    # Ep / Ev at 8


def test_instruments_from_the_recorded_products_list():
    inst = session_instruments(Phemex, load_session(need_recordings(), "PHEMEX"))
    y, g = inst["YFIUSD"], inst["sGRTUSDT"]
    assert (y.unified, y.kind, y.price_decimals, y.size_decimals) == ("YFI-USD-PERP",
                                                                       "perp", 4, 0)
    assert (g.unified, g.kind, g.price_decimals, g.size_decimals) == ("GRT-USDT",
                                                                       "spot", 8, 8)
    assert g.tick == "0.00001" and g.lot == "0.01"
    assert len(inst) == 67


# -- frame-level rules -----------------------------------------------------------------
SYMS = ["sAAAUSDT", "BBBUSDT"]


class Harness:
    def __init__(self) -> None:
        self.store = BookStore(2, 64)
        self.pool = RingPool(1, 1 << 12)
        ctl, data = self.pool.ctl[0], self.pool.data[0]
        inst = {"sAAAUSDT": PhemexInstrument("phemex", "sAAAUSDT", "AAA-USDT", 8, 8,
                                             price_scale=8, size_scale=8),
                "BBBUSDT": PhemexInstrument("phemex", "BBBUSDT", "BBB-USDT-PERP", 3, 4,
                                            channel=CH_REAL, price_scale=3, size_scale=4)}
        for i, s in enumerate(SYMS):
            self.store.configure(i, s, inst[s].price_decimals, inst[s].size_decimals)
        self.proto = Phemex(inst, {s: BookTarget(ctl, data, i, self.store.hdr)
                                   for i, s in enumerate(SYMS)})
        self.proto.on_connect()
        self.proto.outbox.clear()

    def send(self, msg) -> None:
        self.proto.handle_frame(msg if isinstance(msg, (str, bytes)) else orjson.dumps(msg), 1)
        for _ in range(2):
            ring_drain(self.pool.ctl[0], self.pool.data[0], self.store.hdr, self.store.px,
                       self.store.sz, 1 << 20, np.zeros(0, np.int64),
                       np.zeros(S_WORDS, np.int64))
            self.proto.check_health()

    def book(self, sym, kind, seq, bids=(), asks=()) -> None:
        key = "orderbook_p" if sym == "BBBUSDT" else "book"
        self.send({key: {"bids": list(bids), "asks": list(asks)}, "depth": 30,
                   "sequence": seq, "symbol": sym, "timestamp": 5, "type": kind})

    def view(self, sym):
        return self.store.book(SYMS.index(sym)).to_dict()


def test_scaled_snapshot_updates_and_sequence_rule():
    h = Harness()
    h.book("sAAAUSDT", "snapshot", 10, [[150000000, 2500000000]], [[151000000, 100000000]])
    assert h.view("sAAAUSDT")["status"] == "live"
    assert h.view("sAAAUSDT")["bids"] == [["1.5", "25"]]
    h.book("sAAAUSDT", "incremental", 14, [[149000000, 1]], [[151000000, 0]])  # hole: fine
    v = h.view("sAAAUSDT")
    assert v["bids"] == [["1.5", "25"], ["1.49", "0.00000001"]] and v["asks"] == []
    st = h.proto.stats.sym("sAAAUSDT")
    assert st.gaps == 0
    h.book("sAAAUSDT", "incremental", 14, [[148000000, 1]])      # repeated sequence
    assert st.gaps == 1 and st.resyncs == 1 and h.view("sAAAUSDT")["status"] == "stale"
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["method"] for m in sent] == ["orderbook.unsubscribe", "orderbook.subscribe"]
    assert sent[1]["params"] == ["sAAAUSDT"]
    h.book("sAAAUSDT", "incremental", 20, [[147000000, 1]])      # before the snapshot
    assert h.proto.stats.ignored_frames >= 1
    h.book("sAAAUSDT", "snapshot", 21, [[150000000, 1]], [[152000000, 1]])
    assert h.view("sAAAUSDT")["status"] == "live"
    assert h.view("sAAAUSDT")["bids"] == [["1.5", "0.00000001"]]


def test_periodic_snapshot_that_disagrees_is_a_gap_and_the_repair():
    h = Harness()
    h.book("sAAAUSDT", "snapshot", 1, [[100, 5]], [[200, 5]])
    h.book("sAAAUSDT", "incremental", 2, [[100, 6]])
    h.book("sAAAUSDT", "snapshot", 2, [[100, 6]], [[200, 5]])    # agrees
    st = h.proto.stats.sym("sAAAUSDT")
    assert st.gaps == 0 and h.proto.periodic_snapshots == 1
    h.book("sAAAUSDT", "snapshot", 9, [[100, 7]], [[200, 5]])    # an update was lost
    assert st.gaps == 1 and h.proto.snapshot_mismatches == 1
    assert h.proto.outbox == type(h.proto.outbox)()              # no resubscribe needed
    assert h.view("sAAAUSDT")["status"] == "live"
    assert h.view("sAAAUSDT")["bids"] == [["0.000001", "0.00000007"]]


def test_bad_input_is_counted_never_raised():
    h = Harness()
    h.book("sAAAUSDT", "snapshot", 1, [[100, 5]], [[200, 5]])
    st = h.proto.stats
    for bad in (b"not json", b"[1,2]", {"weird": 1}):
        h.send(bad)
    assert st.malformed_frames == 3
    for levels in ([["100", 5]], [[100.5, 5]], [[100]], [[100, -1]], "x"):
        h.book("sAAAUSDT", "incremental", 50, levels)
    assert st.sym("sAAAUSDT").malformed == 5
    h.send({"error": {"code": 6001, "message": "invalid argument"}, "id": 3, "result": None})
    assert st.malformed_frames == 4
    h.send({"book": {"bids": [], "asks": []}, "sequence": 1, "symbol": "ZZZ",
            "type": "snapshot"})
    assert st.unknown_symbol_frames == 1


def test_orderbook_p_string_channel_and_ping():
    h = Harness()
    h.book("BBBUSDT", "snapshot", 7, [["20700.5", "1.622"]], [["20702.9", "0.718"]])
    h.book("BBBUSDT", "incremental", 9, [["20700.5", "0"], ["20340.5", "0.06"]])
    v = h.view("BBBUSDT")
    assert v["status"] == "live" and v["bids"] == [["20340.5", "0.06"]]
    h.book("BBBUSDT", "incremental", 10, [["20340.5555", "1"]])     # finer than the scale
    assert h.proto.stats.sym("BBBUSDT").malformed == 1
    assert orjson.loads(h.proto.subscribe_messages(["BBBUSDT"])[0])["method"] == \
        "orderbook_p.subscribe"
    ping = orjson.loads(h.proto.ping_message())
    assert ping["method"] == "server.ping" and ping["params"] == []
    h.send({"error": None, "id": ping["id"], "result": "pong"})
    assert h.proto.pongs == 1
