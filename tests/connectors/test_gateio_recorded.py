"""Gate.io recorded session (2021, ``spot.order_book_update`` + REST ``with_id`` snapshots):
replay through the connector and the engine; every book live with no gaps, resyncs or
drops, and equal to a longhand rebuild of Gate's documented procedure.  Then the sync
rules the recording does not exercise, frame by frame: gaps, stale snapshots, full
pushes, bad input."""

import json
from decimal import Decimal

import numpy as np
import orjson
import pytest

from connectors.base import BookTarget, Instrument
from connectors.gateio import GateIO, GateIOObu, scales
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings


def rebuild_gateio(depth: int) -> tuple[dict[str, RefBook], int]:
    """Gate's procedure written out: buffer updates until the pair's REST snapshot
    (base id), drop u < base + 1, the first applied straddles base + 1, then each U is
    the previous u + 1.  Returns the books and how many updates were applied."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    buffered: dict[str, list[dict]] = {}
    applied = 0

    def apply(sym: str, ev: dict) -> None:
        nonlocal applied
        if ev["u"] < last[sym] + 1:
            return
        if not first[sym]:
            assert ev["U"] == last[sym] + 1, "gap in the recording"
        assert ev["U"] <= last[sym] + 1 <= ev["u"], "snapshot does not meet the stream"
        first[sym] = False
        for p, q in ev["b"]:
            books[sym].set("bid", p, q)
        for p, q in ev["a"]:
            books[sym].set("ask", p, q)
        last[sym] = ev["u"]
        applied += 1

    first: dict[str, bool] = {}
    for _, kind, payload in frames_and_rest("GATEIO"):
        if kind == "ws":
            msg = json.loads(payload)
            if msg.get("channel") != "spot.order_book_update" or msg.get("event") != "update":
                continue
            ev = msg["result"]
            if ev["s"] in books:
                apply(ev["s"], ev)
            else:
                buffered.setdefault(ev["s"], []).append(ev)
        else:
            url, body = payload
            sym = url.split("currency_pair=")[1].split("&")[0]
            snap = json.loads(body)
            books[sym] = RefBook(depth)
            for p, q in snap["bids"]:
                books[sym].set("bid", p, q)
            for p, q in snap["asks"]:
                books[sym].set("ask", p, q)
            last[sym], first[sym] = snap["id"], True
            for ev in buffered.pop(sym, []):
                apply(sym, ev)
    return books, applied


def test_recorded_gateio_matches_reference():
    res = replay_session(need_recordings(), "GATEIO")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0 and res.stats.totals()["dropped"] == 0
    assert res.books == 10 and res.summary()["books_live"] == 10
    ref, applied = rebuild_gateio(GateIO.depth)  # the store rounds its own size up
    assert set(ref) == set(res.symbols)
    assert applied > 100   # the stream was really applied, not only the snapshots
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
    assert sum(len(b.levels()["bids"]) + len(b.levels()["asks"]) for b in ref.values()) > 1000


def test_instrument_scales_cover_every_decimal_the_recording_sends():
    """Gate's precisions understate what the book carries (prices +2 decimals, sizes
    10 decimals at amount_precision 3): the scales must hold every recorded number."""
    session = load_session(need_recordings(), "GATEIO")
    inst = session_instruments(GateIO, session)
    assert inst["BTC_USDC"].unified == "BTC-USDC" and len(inst) > 1000

    def decimals(text: str) -> int:
        return -Decimal(text).normalize().as_tuple().exponent

    for _, kind, payload in frames_and_rest("GATEIO"):
        if kind == "ws":
            msg = json.loads(payload)
            if msg.get("channel") != "spot.order_book_update" or msg.get("event") != "update":
                continue
            sym, levels = msg["result"]["s"], msg["result"]["b"] + msg["result"]["a"]
        else:
            url, body = payload
            sym = url.split("currency_pair=")[1].split("&")[0]
            snap = json.loads(body)
            levels = snap["bids"] + snap["asks"]
        for p, q in levels:
            assert decimals(p) <= inst[sym].price_decimals, (sym, p)
            assert decimals(q) <= inst[sym].size_decimals, (sym, q)


def test_scales_keep_int64_headroom():
    assert scales(2, 4) == (8, 10)
    assert scales(7, 3) == (10, 10)
    pdec, sdec = scales(12, 0)        # a tiny-priced token: amounts can be 10**11
    assert pdec == 15 and sdec == 6 and 10**11 * 10**sdec < 2**63


# -- frame-level rules -----------------------------------------------------------------
SYMS = ["AAA_USDT", "BBB_USDT"]


class Harness:
    def __init__(self, cls=GateIO) -> None:
        self.store = BookStore(len(SYMS), 64)
        self.pool = RingPool(1, 1 << 12)
        ctl, data = self.pool.ctl[0], self.pool.data[0]
        inst = {s: Instrument("gateio", s, s.replace("_", "-"), 2, 3) for s in SYMS}
        for i, s in enumerate(SYMS):
            self.store.configure(i, s, 2, 3)
        self.proto = cls(inst, {s: BookTarget(ctl, data, i, self.store.hdr)
                                   for i, s in enumerate(SYMS)})
        self.proto.on_connect()

    def drain(self) -> None:
        for _ in range(2):
            ring_drain(self.pool.ctl[0], self.pool.data[0], self.store.hdr, self.store.px,
                       self.store.sz, 1 << 20, np.zeros(0, np.int64),
                       np.zeros(S_WORDS, np.int64))
            self.proto.check_health()

    def send(self, msg) -> None:
        self.proto.handle_frame(msg if isinstance(msg, (str, bytes)) else orjson.dumps(msg), 1)
        self.drain()

    def update(self, sym, U, u, bids=(), asks=(), **extra) -> None:
        self.send({"time": 1, "channel": "spot.order_book_update", "event": "update",
                   "result": {"t": 1000, "s": sym, "U": U, "u": u, "b": list(bids),
                              "a": list(asks), **extra}})

    def snapshot(self, sym, base, bids, asks) -> None:
        req = self.proto.rest_requests.popleft()
        assert req.symbol == sym and "with_id=true" in req.url
        self.proto.handle_rest(req, orjson.dumps({"id": base, "current": 1, "update": 1,
                                                  "bids": bids, "asks": asks}), 1)
        self.drain()

    def book(self, sym) -> dict:
        return self.store.book(SYMS.index(sym)).to_dict()

    def stats(self, sym):
        return self.proto.stats.sym(sym)


def live() -> Harness:
    h = Harness()
    for s in SYMS:
        h.update(s, 9, 11, [["10", "1"]])
        h.snapshot(s, 10, [["10", "1"], ["9.99", "2"]], [["10.01", "3"]])
        assert h.book(s)["status"] == "live"
        assert h.book(s)["bids"] == [["10", "1"], ["9.99", "2"]]
    return h


def test_buffered_straddling_update_applies_and_older_ones_are_dropped():
    h = Harness()
    h.update("AAA_USDT", 5, 8, [["9", "9"]])          # entirely before the snapshot
    h.update("AAA_USDT", 9, 12, [["10", "4"]])         # straddles base + 1 = 11
    assert h.book("AAA_USDT")["status"] != "live"
    h.snapshot("AAA_USDT", 10, [["10", "1"]], [["11", "1"]])
    d = h.book("AAA_USDT")
    assert d["status"] == "live" and d["bids"] == [["10", "4"]]
    h.update("AAA_USDT", 13, 13, asks=[["11", "0"], ["12", "2"]])
    assert h.book("AAA_USDT")["asks"] == [["12", "2"]]
    assert h.stats("AAA_USDT").gaps == 0


def test_gap_is_counted_and_resynced_by_rest():
    h = live()
    h.update("AAA_USDT", 13, 14, [["10", "5"]])       # 12 is missing
    st = h.stats("AAA_USDT")
    assert st.gaps == 1 and st.resyncs == 1 and h.book("AAA_USDT")["status"] == "stale"
    assert h.stats("BBB_USDT").gaps == 0 and h.book("BBB_USDT")["status"] == "live"
    h.update("AAA_USDT", 15, 15, [["9.5", "1"]])
    h.snapshot("AAA_USDT", 14, [["10", "5"]], [["10.01", "3"]])
    d = h.book("AAA_USDT")
    assert d["status"] == "live" and d["bids"] == [["10", "5"], ["9.5", "1"]]


def test_snapshot_older_than_the_stream_is_fetched_again():
    h = Harness()
    h.update("AAA_USDT", 20, 21, [["10", "1"]])
    h.snapshot("AAA_USDT", 10, [["10", "2"]], [["11", "1"]])   # 11 < U = 20
    assert h.book("AAA_USDT")["status"] != "live"
    assert h.stats("AAA_USDT").resyncs == 1 and len(h.proto.rest_requests) == 1
    h.update("AAA_USDT", 22, 22, [["9", "1"]])
    h.snapshot("AAA_USDT", 21, [["10", "1"]], [["11", "1"]])
    d = h.book("AAA_USDT")
    assert d["status"] == "live" and d["bids"] == [["10", "1"], ["9", "1"]]


def test_full_push_replaces_the_book_and_restarts_the_chain():
    h = live()
    h.update("AAA_USDT", 0, 500, [["8", "1"]], [["8.5", "2"]], full=True)
    d = h.book("AAA_USDT")
    assert d["status"] == "live" and d["bids"] == [["8", "1"]] and d["asks"] == [["8.5", "2"]]
    h.update("AAA_USDT", 501, 501, [["8.1", "1"]])
    assert h.book("AAA_USDT")["bids"] == [["8.1", "1"], ["8", "1"]]
    assert h.stats("AAA_USDT").gaps == 0 and h.proto.full_pushes == 1


def test_full_push_during_sync_wins_over_a_late_rest_answer():
    h = Harness()
    h.update("AAA_USDT", 9, 11, [["10", "1"]])
    h.update("AAA_USDT", None, 30, [["7", "1"]], [["7.5", "1"]], full=True)
    assert h.book("AAA_USDT")["status"] == "live"
    h.snapshot("AAA_USDT", 10, [["10", "1"]], [["11", "1"]])   # late: ignored
    assert h.book("AAA_USDT")["bids"] == [["7", "1"]]
    h.update("AAA_USDT", 31, 31, asks=[["7.5", "0"], ["7.6", "1"]])
    assert h.book("AAA_USDT")["asks"] == [["7.6", "1"]]


@pytest.mark.parametrize("frame", [
    b'{"not json',
    b"[1, 2]",
    {"channel": "spot.order_book_update", "event": "update", "result": "x"},
])
def test_unattributable_garbage_is_counted_not_fatal(frame):
    h = live()
    h.send(frame)
    assert h.proto.stats.malformed_frames == 1
    assert all(h.book(s)["status"] == "live" for s in SYMS)


@pytest.mark.parametrize("bids", [[["10", 5]], [["10", "1", "x"]], [["abc", "1"]],
                                  [["10.001", "1"]]])
def test_bad_levels_of_a_book_resync_that_book(bids):
    h = live()
    h.update("AAA_USDT", 12, 12, bids)
    st = h.stats("AAA_USDT")
    assert st.malformed == 1 and st.resyncs == 1 and h.book("AAA_USDT")["status"] == "stale"
    assert h.book("BBB_USDT")["status"] == "live"


def test_non_integer_ids_are_malformed():
    h = live()
    h.update("AAA_USDT", "12", 12, [["10", "1"]])
    assert h.stats("AAA_USDT").malformed == 1


def test_crossed_book_resyncs():
    h = live()
    h.update("AAA_USDT", 12, 12, [["10.05", "1"]])    # bid above the 10.01 ask
    st = h.stats("AAA_USDT")
    assert st.crossed >= 1 and st.resyncs == 1 and h.book("AAA_USDT")["status"] == "stale"


def test_acks_pongs_other_channels_and_unknown_pairs_are_ignored():
    h = live()
    h.send({"time": 1, "channel": "spot.order_book_update", "event": "subscribe",
            "result": {"status": "success"}})
    h.send({"time": 1, "channel": "spot.pong", "event": "", "result": None})
    h.send({"time": 1, "channel": "spot.trades", "event": "update", "result": {}})
    h.update("ZZZ_USDT", 1, 1, [["1", "1"]])
    st = h.proto.stats
    assert st.ignored_frames == 3 and h.proto.pongs == 1 and st.unknown_symbol_frames == 1
    assert st.malformed_frames == 0


def test_rejected_subscription_marks_the_book_stale():
    h = live()
    h.send({"time": 1, "channel": "spot.order_book_update", "event": "subscribe",
            "payload": ["AAA_USDT", "100ms"], "error": {"code": 2, "message": "bad pair"}})
    assert h.proto.stats.malformed_frames == 1 and h.book("AAA_USDT")["status"] == "stale"


def test_wire_messages():
    h = Harness()
    sub = [json.loads(m) for m in h.proto.subscribe_messages(SYMS)]
    assert [m["payload"] for m in sub] == [["AAA_USDT", "100ms"], ["BBB_USDT", "100ms"]]
    assert all(m["channel"] == "spot.order_book_update" and m["event"] == "subscribe"
               and isinstance(m["time"], int) for m in sub)
    assert json.loads(h.proto.ping_message())["channel"] == "spot.ping"
    assert h.proto.rest_symbol("https://api.gateio.ws/api/v4/spot/order_book?currency_pair="
                               "BTC_USDT&limit=100&with_id=true") == "BTC_USDT"
    assert h.proto.rest_symbol("https://api.gateio.ws/api/v4/spot/currency_pairs") is None


def test_obu_dialect_full_book_chain_and_resubscribe():
    h = Harness(GateIOObu)
    sub = json.loads(h.proto.subscribe_messages(["AAA_USDT"])[0])
    assert sub["channel"] == "spot.obu" and sub["payload"] == ["ob.AAA_USDT.400"]

    def obu(U, u, bids=(), asks=(), **extra):
        h.send({"channel": "spot.obu", "event": "update", "result": {
            "t": 1, "s": "ob.AAA_USDT.400", "U": U, "u": u, "b": list(bids),
            "a": list(asks), **extra}})

    obu(5, 5, [["9", "1"]])                           # before any full book: dropped
    assert h.book("AAA_USDT")["status"] != "live" and not h.proto.rest_requests
    obu(None, 10, [["10", "1"]], [["11", "1"]], full=True)
    assert h.book("AAA_USDT")["status"] == "live"
    obu(11, 12, [["10", "2"]])
    assert h.book("AAA_USDT")["bids"] == [["10", "2"]]
    obu(12, 13, [["10", "3"]])                        # U must be exactly last + 1
    assert h.stats("AAA_USDT").gaps == 1 and h.book("AAA_USDT")["status"] == "stale"
    sent = [json.loads(m) for m in h.proto.outbox]
    assert [m["event"] for m in sent] == ["unsubscribe", "subscribe"]
    assert not h.proto.rest_requests
    obu(14, 14, [["10", "4"]])                        # old stream's tail: dropped
    obu(None, 20, [["10", "5"]], [["11", "1"]], full=True)
    assert h.book("AAA_USDT")["status"] == "live"
    assert h.book("AAA_USDT")["bids"] == [["10", "5"]]
