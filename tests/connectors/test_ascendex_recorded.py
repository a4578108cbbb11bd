"""AscendEX recorded session: replay through the connector and the engine; every book
live, no gaps, and equal to a longhand reference rebuild.  Also checks the recorded
client frames (subscribe, depth-snapshot requests, pongs) against what the connector
sends."""

import json

import orjson

from connectors.ascendex import AscendEX
from connectors.base import ExchangeStats
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments
from tests.connectors.reference import (
    RefBook,
    as_decimal_levels,
    frames_and_rest,
    need_recordings,
)


def rebuild_ascendex(depth: int) -> dict[str, RefBook]:
    """AscendEX's procedure written out longhand: buffer diffs until the websocket
    snapshot, drop seqnum <= snapshot seqnum, then each seqnum == last + 1."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    buffered: dict[str, list[dict]] = {}

    def apply(sym: str, data: dict) -> None:
        if data["seqnum"] <= last[sym]:
            return
        assert data["seqnum"] == last[sym] + 1, "gap in the recording"
        for p, q in data["bids"]:
            books[sym].set("bid", p, q)
        for p, q in data["asks"]:
            books[sym].set("ask", p, q)
        last[sym] = data["seqnum"]

    for _, kind, payload in frames_and_rest("ASCENDEX"):
        assert kind == "ws"
        msg = json.loads(payload)
        if msg.get("m") == "depth":
            sym = msg["symbol"]
            if sym in books:
                apply(sym, msg["data"])
            else:
                buffered.setdefault(sym, []).append(msg["data"])
        elif msg.get("m") == "depth-snapshot":
            sym, data = msg["symbol"], msg["data"]
            books[sym] = RefBook(depth)
            for p, q in data["bids"]:
                books[sym].set("bid", p, q)
            for p, q in data["asks"]:
                books[sym].set("ask", p, q)
            last[sym] = data["seqnum"]
            for ev in buffered.pop(sym, []):
                apply(sym, ev)
    return books


def test_recorded_ascendex_matches_reference():
    res = replay_session(need_recordings(), "ASCENDEX")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    assert res.stats.unknown_symbol_frames == 0 and res.stats.malformed_frames == 0
    ref = rebuild_ascendex(res.store.depth)
    assert set(ref) == set(res.symbols) and len(ref) == 10
    assert "NEO/USDT" in ref   # natives are spelled BASE/QUOTE
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
    assert max(len(b.levels()["asks"]) for b in ref.values()) > 300  # real depth
    assert res.level_updates > 2000


def test_recorded_client_frames_match_connector():
    session = load_session(need_recordings(), "ASCENDEX")
    instruments = session_instruments(AscendEX, session)
    inst = instruments["NEO/USDT"]
    assert (inst.unified, inst.tick, inst.lot) == ("NEO-USDT", "0.001", "0.01")
    symbols = session.config["l2_book"]
    natives = [s.replace("-", "/") for s in symbols]
    sent = [s.text for c in session.connections for s in c.sent]
    proto = AscendEX(instruments, {}, ExchangeStats("ascendex"))
    msgs = proto.subscribe_messages(natives)
    assert orjson.loads(msgs[0]) == orjson.loads(sent[0])   # depth subscription
    reqs = [t for t in sent if '"depth-snapshot"' in t]
    assert [orjson.loads(AscendEX.snapshot_message(s)) for s in natives] == \
        [orjson.loads(t) for t in reqs]
    # every recorded server ping was answered with exactly the recorded pong
    pings = [f.data for c in session.connections for f in c.frames if '"m":"ping"' in f.data]
    pongs = [t for t in sent if "pong" in t]
    assert len(pings) == len(pongs) == 2
    for p in pings:
        proto.handle_frame(p, 0)
    assert list(proto.outbox) == pongs and proto.pongs_sent == 2
    assert proto.stats.malformed_frames == 0


def test_bad_input_is_counted_and_resyncs():
    """Bad seqnum, a bad level, an error reply and a gap: counted, book stale, a new
    depth-snapshot request sent; a good snapshot brings the book back live."""
    import numpy as np

    from connectors.base import BookTarget, Instrument
    from engine.constants import H_STATUS, STATUS_NAMES
    from engine.kernels import S_WORDS
    from engine.ring import RingPool, ring_drain
    from engine.store import BookStore

    inst = {"BTC/USDT": Instrument("ascendex", "BTC/USDT", "BTC-USDT", 4, 5, "0.01", "0.001")}
    store = BookStore(1, 50)
    store.configure(0, "ascendex:BTC/USDT", 4, 5, 50)
    pool = RingPool(1, 1 << 12)
    proto = AscendEX(inst, {"BTC/USDT": BookTarget(pool.ctl[0], pool.data[0], 0, store.hdr)})

    def status():
        ring_drain(pool.ctl[0], pool.data[0], store.hdr, store.px, store.sz, 1 << 12,
                   np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))
        return STATUS_NAMES[int(store.hdr[H_STATUS])]

    def depth(seq, bids=(), asks=(), m="depth"):
        return orjson.dumps({"m": m, "symbol": "BTC/USDT", "data": {
            "ts": 1, "seqnum": seq, "bids": list(bids), "asks": list(asks)}})

    proto.on_connect()
    proto.outbox.extend(proto.subscribe_messages(["BTC/USDT"]))
    proto.handle_frame(depth(10, [["100", "1"]]), 0)
    proto.handle_frame(depth(9, [["99", "1"]], [["101", "2"]], m="depth-snapshot"), 0)
    assert status() == "live"
    assert store.book(0).to_dict()["bids"] == [["100", "1"], ["99", "1"]]
    st = proto.stats.sym("BTC/USDT")
    proto.outbox.clear()
    proto.handle_frame(depth(12, [["100", "2"]]), 0)               # 11 missing: gap
    assert st.gaps == 1 and status() == "stale"
    assert list(proto.outbox) == [AscendEX.snapshot_message("BTC/USDT")]
    proto.handle_frame(depth(12, [["100", "2"]], [["101", "2"]], m="depth-snapshot"), 0)
    assert status() == "live"
    proto.handle_frame(depth("13", [["100", "3"]]), 0)              # seqnum a string
    assert st.malformed == 1 and status() == "stale"
    proto.handle_frame(depth(12, [["100", "2"]], [["101", "2"]], m="depth-snapshot"), 0)
    proto.handle_frame(depth(13, [["100", "1.123456"]]), 0)        # finer than the scale
    assert st.malformed == 2 and status() == "stale"
    proto.handle_frame(depth(13, [["100", "2"]], [["101", "2"]], m="depth-snapshot"), 0)
    proto.handle_frame(depth(14, [["100", "1", "x"]]), 0)          # not a [p, q] pair
    assert st.malformed == 3 and status() == "stale"
    proto.handle_frame(b'{"m":"error","code":100005,"reason":"INVALID_WS_REQUEST_DATA"}', 0)
    proto.handle_frame(b'{"m":"sub","ch":"depth:BTC/USDT","code":100005}', 0)
    proto.handle_frame(b"[1,2]", 0)
    assert proto.stats.malformed_frames == 3
    proto.handle_frame(depth(14, [["100", "2"]], [["101", "2"]], m="depth-snapshot"), 0)
    proto.handle_frame(depth(15, [], [["101", "0"], ["102", "4"]]), 0)
    assert status() == "live"
    assert store.book(0).to_dict()["asks"] == [["102", "4"]]
    assert st.resyncs == 4 and st.gaps == 1
