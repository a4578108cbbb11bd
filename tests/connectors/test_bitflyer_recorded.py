"""bitFlyer Lightning recorded session (Realtime API, board + board_snapshot, 2021):
replay through the connector and the engine; every recorded book live, no gaps /
resyncs / malformed, and equal to a longhand reference rebuild (json + Decimal +
dicts).  Also: the instrument list, the scales against every number sent, and the
protocol's own rules frame by frame."""

import json
from decimal import Decimal

import orjson

from connectors.bitflyer import BitFlyer
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.harness import ProtocolHarness
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"XLM_JPY", "BTCJPY24DEC2021", "FX_BTC_JPY", "MONA_JPY", "BTC_EUR", "BTC_USD",
         "BTCJPY17DEC2021", "BCH_BTC", "ETH_JPY", "XRP_JPY"}
SNAP = "lightning_board_snapshot_"
BOARD = "lightning_board_"


def board_messages():
    """(product, is snapshot, message) of every board channel message, numbers as text."""
    for _, kind, payload in frames_and_rest("BITFLYER"):
        if kind != "ws":
            continue
        msg = json.loads(payload, parse_float=str, parse_int=str)
        if msg.get("method") != "channelMessage":
            continue
        ch = msg["params"]["channel"]
        if ch.startswith(SNAP):
            yield ch[len(SNAP):], True, msg["params"]["message"]
        elif ch.startswith(BOARD):
            yield ch[len(BOARD):], False, msg["params"]["message"]


def rebuild_bitflyer(depth: int) -> tuple[dict[str, RefBook], int]:
    """The documented merge, longhand: every snapshot replaces the book, diffs set the
    level's absolute size (0 deletes) and count only after a book's first snapshot."""
    books: dict[str, RefBook] = {}
    applied = 0
    for product, snapshot, m in board_messages():
        if snapshot:
            books[product] = RefBook(depth)
        elif product not in books:
            continue
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for lv in m[key]:
                books[product].set(side, lv["price"], lv["size"])
                applied += 1
    return books, applied


def test_recorded_bitflyer_matches_reference():
    res = replay_session(need_recordings(), "BITFLYER")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 10
    ref, applied = rebuild_bitflyer(res.depth)
    assert res.level_updates == applied == 23688
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) >= 15 and len(book.levels()["asks"]) >= 15
        assert res.stats.symbols[sym].snapshots == 6
        assert res.stats.symbols[sym].crossed == 0
    assert res.stats.unknown_symbol_frames == 0


def test_recorded_instruments_and_symbols():
    session = load_session(need_recordings(), "BITFLYER")
    instruments = session_instruments(BitFlyer, session)
    assert len(instruments) == 13
    natives = session_symbols(BitFlyer, session, instruments)
    assert set(natives) == BOOKS and len(natives) == 10
    assert instruments["BTC_JPY"].unified == "BTC-JPY"
    assert (instruments["FX_BTC_JPY"].unified, instruments["FX_BTC_JPY"].kind) == \
        ("BTC-JPY-PERP", "perp")
    fut = instruments["BTCJPY24DEC2021"]
    assert (fut.unified, fut.kind) == ("BTC-JPY-20211224", "future")
    assert BitFlyer.native_from_recording("BTC-JPY-21Z17", instruments) == "BTCJPY17DEC2021"
    assert BitFlyer.native_from_recording("BTC-JPY-FX", instruments) == "FX_BTC_JPY"
    assert BitFlyer.native_from_recording("BTC-JPY-21Z31", {}) is None


def test_scales_cover_every_number_sent():
    instruments = session_instruments(BitFlyer, load_session(need_recordings(), "BITFLYER"))
    seen = 0
    most = [0, 0]
    for product, _, m in board_messages():
        inst = instruments[product]
        for key in ("bids", "asks"):
            for lv in m[key]:
                assert "e" not in lv["price"].lower() and "e" not in lv["size"].lower()
                most[0] = max(most[0], decimals_for(lv["price"]))
                most[1] = max(most[1], decimals_for(lv["size"]))
                assert decimals_for(lv["price"]) <= inst.price_decimals
                assert decimals_for(lv["size"]) <= inst.size_decimals
                assert Decimal(lv["price"]) * 10 ** inst.price_decimals < 2 ** 63
                seen += 1
    assert most == [5, 8] and seen > 23688


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, symbols=("BTC_JPY",)) -> None:
        super().__init__(BitFlyer, symbols, 8, 8)


def rows(levels: str) -> str:
    return "[" + ",".join(f'{{"price":{p},"size":{q}}}' for p, q in
                          (lv.split(":") for lv in levels.split())) + "]"


def board(bids="", asks="", snapshot=False, product="BTC_JPY") -> str:
    ch = (SNAP if snapshot else BOARD) + product
    return ('{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":"' + ch +
            '","message":{"mid_price":100.5,"bids":' + rows(bids) + ',"asks":' +
            rows(asks) + "}}}")


def test_subscribe_order_and_resubscribe_shape():
    h = Harness()
    msgs = [orjson.loads(m) for m in h.proto.subscribe_messages(["BTC_JPY"])]
    assert msgs == [{"method": "subscribe", "params": {"channel": "lightning_board_BTC_JPY"}},
                    {"method": "subscribe",
                     "params": {"channel": "lightning_board_snapshot_BTC_JPY"}}]


def test_diffs_before_snapshot_are_dropped_then_every_snapshot_replaces():
    h = Harness()
    h.frame(board("99:1"))                                # no snapshot yet
    assert h.book()["bids"] == [] and h.book()["status"] != "live"
    h.frame(board("99.5:2.0 100:1", "101:2", snapshot=True))
    h.frame(board("100.5:3 100:0.0", "101:0 102:1.25"))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100.5", "3"], ["99.5", "2"]]
    assert h.book()["asks"] == [["102", "1.25"]]
    h.frame(board("90:1", "95:0.00000001", snapshot=True))  # the periodic one
    assert h.book()["bids"] == [["90", "1"]] and h.book()["asks"] == [["95", "0.00000001"]]
    assert h.stats.snapshots == 2 and h.proto.stats.ignored_frames == 1


def test_crossed_book_resubscribes_snapshot_channel_and_recovers():
    h = Harness()
    h.frame(board("100:1", "101:2", snapshot=True))
    h.proto.outbox.clear()
    h.frame(board("101:1"))                               # a lost delete of the 101 ask
    assert h.book()["status"] == "stale"
    assert h.stats.crossed == 1 and h.stats.resyncs == 1 and h.stats.gaps == 0
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["method"] for m in sent] == ["unsubscribe", "subscribe"]
    assert {m["params"]["channel"] for m in sent} == {"lightning_board_snapshot_BTC_JPY"}
    h.frame(board("100:0"))                               # before the snapshot: dropped
    h.frame(board("101:1", "102:2", snapshot=True))
    assert h.book()["status"] == "live" and h.book()["asks"] == [["102", "2"]]


def test_bad_input_is_counted_never_raised():
    h = Harness()
    h.frame(board("100:1", "101:2", snapshot=True))
    h.frame("not json")
    h.frame([1, 2])
    h.frame({"params": {}})
    h.frame({"jsonrpc": "2.0", "method": "channelMessage", "params": {"channel": 5}})
    h.frame({"jsonrpc": "2.0", "id": 1, "error": {"code": -1}})
    assert h.proto.stats.malformed_frames == 5 and h.stats.malformed == 0
    bad_diffs = [
        board().replace('"bids":[]', '"bids":[{"price":"100","size":1}]'),   # a string
        board().replace('"bids":[]', '"bids":[{"price":100}]'),               # no size
        board().replace('"bids":[]', '"bids":{}'),
        board().replace(',"asks":[]', ""),
        board("100.000000001:1"),                                            # too fine
        board("1e400:1"),
    ]
    for bad in bad_diffs:
        h.frame(board("100:1", "101:2", snapshot=True))
        assert h.book()["status"] == "live"
        h.frame(bad)
        assert h.book()["status"] == "stale", bad
    assert h.stats.malformed == 6 and h.stats.resyncs == 6
    h.frame(board("1:1", product="NOPE_JPY"))
    assert h.proto.stats.unknown_symbol_frames == 1
    before = h.proto.stats.ignored_frames
    h.frame({"jsonrpc": "2.0", "method": "channelMessage",
             "params": {"channel": "lightning_ticker_BTC_JPY", "message": {}}})
    h.frame({"jsonrpc": "2.0", "id": 1, "result": True})
    assert h.proto.stats.ignored_frames == before + 2


def test_deep_snapshot_is_cut_to_the_best_levels_per_side():
    h = Harness()
    h.proto.depth = 3
    h.frame(board("97:1 100:1 99.5:1 98:1 99:1", "104:2 101:2 103:2 102.25:2 105:2",
                  snapshot=True))
    assert [p for p, _ in h.book()["bids"]] == ["100", "99.5", "99"]
    assert [p for p, _ in h.book()["asks"]] == ["101", "102.25", "103"]
    assert h.book()["status"] == "live" and h.stats.levels == 6
