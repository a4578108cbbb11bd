"""Kraken Futures recorded session (websocket v1 ``book`` feed, 2021): replay through the
connector and the engine; every book live with no gap, resync or malformed frame, and
equal to a longhand rebuild (plain json with Decimal numbers, dicts).  Then, frame by
frame, the rules the recording does not exercise: gaps, stale updates, bad input."""

import json
from decimal import Decimal

import numpy as np

from connectors.base import BookTarget
from connectors.kraken_futures import KrakenFutures
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings


def recorded_messages() -> list[dict]:
    out = []
    for _, kind, payload in frames_and_rest("KRAKEN_FUTURES"):
        if kind == "ws":
            out.append(json.loads(payload, parse_float=Decimal, parse_int=Decimal))
    return out


def rebuild_kraken_futures(depth: int) -> tuple[dict[str, RefBook], int]:
    """Snapshot, then each ``book`` update whose seq is the previous + 1 (asserted: the
    recording has no gap).  Returns the books and the number of updates applied."""
    books: dict[str, RefBook] = {}
    last: dict[str, Decimal] = {}
    applied = 0
    for msg in recorded_messages():
        feed = msg.get("feed")
        if "event" in msg or feed not in ("book", "book_snapshot"):
            continue
        pid = msg["product_id"]
        if feed == "book_snapshot":
            books[pid] = RefBook(depth)
            for lv in msg["bids"]:
                books[pid].set("bid", lv["price"], lv["qty"])
            for lv in msg["asks"]:
                books[pid].set("ask", lv["price"], lv["qty"])
            last[pid] = msg["seq"]
            continue
        assert pid in books, "update before its snapshot"
        assert msg["seq"] == last[pid] + 1, ("gap in the recording", pid)
        books[pid].set("bid" if msg["side"] == "buy" else "ask", msg["price"], msg["qty"])
        last[pid] = msg["seq"]
        applied += 1
    return books, applied


def test_recorded_kraken_futures_matches_reference():
    res = replay_session(need_recordings(), "KRAKEN_FUTURES")
    assert res.ok, res.summary()
    assert res.books == 10 and res.summary()["books_live"] == 10
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0 and res.stats.totals()["dropped"] == 0
    assert res.stats.unknown_symbol_frames == 0 and res.stats.malformed_frames == 0
    assert res.stats.totals()["snapshots"] == 10 and res.stats.totals()["crossed"] == 0

    ref, applied = rebuild_kraken_futures(res.depth)
    assert applied == 7014                      # every recorded update was applied
    assert res.stats.totals()["messages"] == applied + 10
    assert set(ref) == set(res.symbols)
    got = res.books_dict()
    for pid, book in ref.items():
        assert as_decimal_levels(got[pid]) == book.levels(), pid
        assert got[pid]["status"] == "live"
    assert sum(len(b.bids) + len(b.asks) for b in ref.values()) > 1000


def test_recorded_names_and_scales():
    """cryptofeed's names map to the product ids, and the scales hold every number the
    recording sends."""
    session = load_session(need_recordings(), "KRAKEN_FUTURES")
    inst = session_instruments(KrakenFutures, session)
    natives = session_symbols(KrakenFutures, session, inst)
    cfg = session.config["l2_book"]
    assert natives[cfg.index("ETH-USD-21Z31")] == "FI_ETHUSD_211231"
    assert natives[cfg.index("XRP-USD-PERP")] == "PI_XRPUSD"
    assert natives[cfg.index("BCH-USD-21N30")] == "FI_BCHUSD_210730"
    assert inst["PI_XBTUSD"].unified == "BTC-USD-PERP-INV"
    assert inst["FI_XBTUSD_210924"].kind == "future" and inst["PI_XRPUSD"].kind == "perp"
    assert not any(n.startswith(("IN_", "RR_")) for n in inst)      # indices: no book

    def decimals(d: Decimal) -> int:
        return max(0, -d.normalize().as_tuple().exponent)

    seen = 0
    for msg in recorded_messages():
        if msg.get("feed") == "book_snapshot":
            levels = msg["bids"] + msg["asks"]
        elif msg.get("feed") == "book" and "event" not in msg:
            levels = [msg]
        else:
            continue
        i = inst[msg["product_id"]]
        for lv in levels:
            assert decimals(lv["price"]) <= i.price_decimals, (msg["product_id"], lv)
            assert decimals(lv["qty"]) <= i.size_decimals, (msg["product_id"], lv)
            seen += 1
    assert seen > 8000
    assert inst["PI_XRPUSD"].price_decimals >= 4     # 0.5881: tick 0.0001


def test_linear_instrument_scales_from_trade_precision():
    body = json.dumps({"result": "success", "instruments": [
        {"symbol": "PF_XBTUSD", "type": "flexible_futures", "tickSize": 0.5,
         "contractSize": 1, "contractValueTradePrecision": 4, "tradeable": True},
        {"symbol": "PF_SHIBUSD", "type": "flexible_futures", "tickSize": 1e-08,
         "contractSize": 1, "contractValueTradePrecision": -3, "tradeable": True},
        {"symbol": "in_xbtusd", "type": "spot index", "tradeable": False}]})
    inst = KrakenFutures.parse_instruments(body)
    assert set(inst) == {"PF_XBTUSD", "PF_SHIBUSD"}
    assert (inst["PF_XBTUSD"].unified, inst["PF_XBTUSD"].price_decimals,
            inst["PF_XBTUSD"].size_decimals) == ("BTC-USD-PERP", 3, 6)
    assert (inst["PF_SHIBUSD"].price_decimals, inst["PF_SHIBUSD"].size_decimals) == (10, 2)


# -- frame-level rules -------------------------------------------------------------------

def _rig(symbol="PF_XBTUSD"):
    body = json.dumps({"result": "success", "instruments": [
        {"symbol": symbol, "type": "flexible_futures", "tickSize": 0.5, "contractSize": 1,
         "contractValueTradePrecision": 4, "tradeable": True}]})
    inst = KrakenFutures.parse_instruments(body)
    store = BookStore(1, 64)
    store.configure(0, symbol, inst[symbol].price_decimals, inst[symbol].size_decimals, 64)
    pool = RingPool(1, 1 << 12)
    proto = KrakenFutures(inst, {symbol: BookTarget(pool.ctl[0], pool.data[0], 0, store.hdr)})
    hist, wst = np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64)

    def feed(*frames):
        for f in frames:
            proto.handle_frame(f, 1)
            ring_drain(pool.ctl[0], pool.data[0], store.hdr, store.px, store.sz, 1 << 12,
                       hist, wst)
            proto.check_health()
            proto.touched.clear()
            ring_drain(pool.ctl[0], pool.data[0], store.hdr, store.px, store.sz, 1 << 12,
                       hist, wst)
    return proto, store, feed


SNAP = ('{"feed":"book_snapshot","product_id":"PF_XBTUSD","timestamp":1,"seq":10,'
        '"tickSize":null,"bids":[{"price":100.5,"qty":1.25},{"price":100.0,"qty":2}],'
        '"asks":[{"price":101.0,"qty":0.0001}]}')


def upd(seq, side="buy", price="100.5", qty="3"):
    return (f'{{"feed":"book","product_id":"PF_XBTUSD","side":"{side}","seq":{seq},'
            f'"price":{price},"qty":{qty},"timestamp":2}}')


def test_sequence_rules_and_bad_input():
    proto, store, feed = _rig()
    proto.on_connect()
    proto.outbox.clear()
    feed(upd(9))                                  # before any snapshot: ignored
    feed(SNAP, upd(10), upd(11, qty="0.100001"), upd(12, "sell", "101.0", "1.5E-3"))
    st = proto.stats.sym("PF_XBTUSD")
    assert proto.stale_updates == 1 and st.gaps == 0 and st.resyncs == 0
    d = store.book(0).to_dict()
    assert d["status"] == "live"
    assert d["bids"] == [["100.5", "0.100001"], ["100", "2"]]
    assert d["asks"] == [["101", "0.0015"]]
    feed(upd(14))                                 # 13 lost
    assert st.gaps == 1 and st.resyncs == 1 and store.book(0).to_dict()["status"] == "stale"
    sent = list(proto.outbox)
    assert json.loads(sent[0]) == {"event": "unsubscribe", "feed": "book",
                                   "product_ids": ["PF_XBTUSD"]}
    assert json.loads(sent[1])["event"] == "subscribe"
    feed(upd(15))                                 # tail of the old subscription: ignored
    feed(SNAP.replace('"seq":10', '"seq":20'), upd(21, "sell", "102", "1"))
    d = store.book(0).to_dict()
    assert d["status"] == "live" and d["asks"] == [["101", "0.0001"], ["102", "1"]]

    before = st.resyncs
    feed(upd(22, qty="0.000000001"))              # finer than the scale: dropped, resync
    assert st.malformed == 1 and st.resyncs == before + 1
    feed(SNAP)
    feed(upd(11, side="up"))                      # bad side
    feed('{"feed":"book","product_id":"PF_XBTUSD","side":"buy","seq":12,"price":NaN,'
         '"qty":1,"timestamp":2}')                # non-finite: the frame cannot be read
    feed("[1,2]", "{not json", '{"event":"error","message":"Json Error"}')
    assert st.malformed == 2 and proto.stats.malformed_frames == 4
    feed('{"feed":"book","product_id":"PI_NOPE","side":"buy","seq":1,"price":1,"qty":1}')
    assert proto.stats.unknown_symbol_frames == 1
    feed('{"feed":"heartbeat","time":1534262350627}', '{"event":"info","version":1}')
    assert proto.heartbeats == 1


def test_subscribe_messages_include_heartbeat():
    proto, _, _ = _rig()
    msgs = [json.loads(m) for m in proto.subscribe_messages(["PF_XBTUSD"])]
    assert msgs == [{"event": "subscribe", "feed": "book", "product_ids": ["PF_XBTUSD"]},
                    {"event": "subscribe", "feed": "heartbeat"}]
