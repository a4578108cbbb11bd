"""BitMEX recorded session (``orderBookL2``, 2021 dialect: update/delete rows carry only
the id): replay through the connector and the engine; every recorded book live, no
gaps / resyncs / malformed, and equal to a longhand reference rebuild (json + Decimal +
dicts, prices looked up by id).  Also the instrument list and scales, and the
protocol's own rules frame by frame (current dialect with prices, unknown ids,
malformed rows, crossed books)."""

import json
from decimal import Decimal

import orjson

from connectors.base import Instrument
from connectors.bitmex import BitMEX
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.harness import ProtocolHarness
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = ["XRPU21", "UNIUSDT", "XBTUSD", "ADAUSDT", "SOLUSDT", "TRXU21", "EOSUSDT",
         "TRXUSDT", "BCHUSD", "MATICUSDT"]


def book_messages():
    for _, kind, payload in frames_and_rest("BITMEX"):
        if kind == "ws":
            msg = json.loads(payload, parse_float=str)
            if msg.get("table") == "orderBookL2":
                yield msg


def rebuild_bitmex(depth: int) -> dict[str, RefBook]:
    """The documented table diffing, longhand: a partial is the whole book; rows are keyed
    by id; an update/delete without a price takes the price its id was inserted at."""
    books: dict[str, RefBook] = {}
    prices: dict[tuple[str, int], tuple[str, str]] = {}
    for msg in book_messages():
        for row in msg["data"]:
            sym, key = row["symbol"], (row["symbol"], row["id"])
            side = {"Buy": "bid", "Sell": "ask"}[row["side"]]
            if msg["action"] == "partial":
                if sym not in books:
                    books[sym] = RefBook(depth)
                books[sym].set(side, row["price"], row["size"])
                prices[key] = (side, row["price"])
            elif msg["action"] == "insert":
                assert key not in prices
                prices[key] = (side, row["price"])
                books[sym].set(side, row["price"], row["size"])
            elif msg["action"] == "update":
                assert prices[key][0] == side and "price" not in row   # the 2021 dialect
                books[sym].set(side, prices[key][1], row["size"])
            else:
                books[sym].set(side, prices.pop(key)[1], 0)
    return books


def test_recorded_bitmex_matches_reference():
    res = replay_session(need_recordings(), "BITMEX")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.symbols == BOOKS and res.summary()["books_live"] == 10
    msgs = list(book_messages())
    assert res.level_updates == sum(len(m["data"]) for m in msgs) == 14333
    ref = rebuild_bitmex(res.store.depth)
    got = res.books_dict()
    assert set(ref) == set(BOOKS)
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        levels = book.levels()
        assert len(levels["bids"]) >= 40 and len(levels["asks"]) >= 40, sym
        assert res.stats.symbols[sym].snapshots == 1
    assert len(ref["XBTUSD"].levels()["bids"]) > 5000       # the full book, uncut
    # 10 + 10 + 10 acks + the welcome + quote/trade messages
    assert res.stats.ignored_frames == 2120 - len(msgs)
    assert res.stats.unknown_symbol_frames == 0


def test_recorded_instruments_names_and_scales():
    session = load_session(need_recordings(), "BITMEX")
    instruments = session_instruments(BitMEX, session)
    assert len(instruments) == 34
    assert session_symbols(BitMEX, session, instruments) == BOOKS
    xbt, xrp, trx = instruments["XBTUSD"], instruments["XRPU21"], instruments["TRXU21"]
    assert (xbt.unified, xbt.kind, xbt.tick, xbt.lot) == ("BTC-USD-PERP", "perp", "0.5", "100")
    assert (xbt.price_decimals, xbt.size_decimals) == (3, 0)
    assert (xrp.unified, xrp.kind, xrp.tick) == ("XRP-BTC-20210924", "future", "1e-8")
    assert (trx.price_decimals, trx.size_decimals) == (12, 0)
    assert instruments["UNIUSDT"].unified == "UNI-USDT-PERP"
    seen = 0
    for msg in book_messages():
        for row in msg["data"]:
            inst = instruments[row["symbol"]]
            if "price" in row:
                price = str(row["price"])      # integral prices parse as int
                assert decimals_for(price) <= decimals_for(inst.tick) < inst.price_decimals
                assert Decimal(price) % Decimal(inst.tick) == 0
            if "size" in row:
                assert isinstance(row["size"], int) and row["size"] > 0
                assert row["size"] % int(inst.lot) == 0
            seen += 1
    assert seen == 14333


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, symbols=("XBTUSD",)) -> None:
        inst = {s: Instrument("bitmex", s, s, 3, 0, "0.5", "1", "perp") for s in symbols}
        super().__init__(BitMEX, symbols, 3, 0, instruments=inst)


def table(action, rows, symbol="XBTUSD"):
    msg = {"table": "orderBookL2", "action": action,
           "data": [dict(symbol=symbol, **r) for r in rows]}
    if action == "partial":
        msg.update(keys=["symbol", "id", "side"], filter={"symbol": symbol})
    return msg


SNAP = [{"id": 7, "side": "Sell", "size": 5, "price": 101.5},
        {"id": 3, "side": "Buy", "size": 2, "price": 100},
        {"id": 9, "side": "Buy", "size": 4, "price": 99.5}]


def test_current_dialect_with_prices_and_timestamps():
    h = Harness()
    h.frame(table("insert", [{"id": 1, "side": "Buy", "size": 1, "price": 98}]))   # early
    assert h.book()["bids"] == [] and h.proto.stats.ignored_frames == 1
    h.frame(table("partial", SNAP))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100", "2"], ["99.5", "4"]]
    ts = "2023-05-19T08:51:43.911Z"
    h.frame(table("insert", [{"id": 40, "side": "Sell", "size": 8, "price": 100.5,
                              "timestamp": ts}]))
    h.frame(table("update", [{"id": 3, "side": "Buy", "size": 6, "price": 100,
                              "timestamp": ts}]))
    h.frame(table("delete", [{"id": 7, "side": "Sell", "price": 101.5, "timestamp": ts}]))
    assert h.book()["bids"] == [["100", "6"], ["99.5", "4"]]
    assert h.book()["asks"] == [["100.5", "8"]]
    assert h.stats.gaps == 0 and h.stats.resyncs == 0 and h.book()["status"] == "live"
    h.frame("pong")
    assert h.proto.pongs == 1


def test_unknown_id_is_a_gap_and_resubscribes():
    h = Harness()
    h.frame(table("partial", SNAP))
    h.proto.outbox.clear()
    h.frame(table("update", [{"id": 55, "side": "Buy", "size": 6}]))   # never inserted
    assert h.book()["status"] == "stale"
    assert h.stats.gaps == 1 and h.stats.resyncs == 1
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert sent == [{"op": "unsubscribe", "args": ["orderBookL2:XBTUSD"]},
                    {"op": "subscribe", "args": ["orderBookL2:XBTUSD"]}]
    h.frame(table("delete", [{"id": 3, "side": "Buy"}]))               # old tail: dropped
    h.frame(table("partial", SNAP))
    assert h.book()["status"] == "live" and len(h.book()["bids"]) == 2
    for bad in ([{"id": 9, "side": "Sell", "size": 1}],                 # side contradicts
                [{"id": 9, "side": "Buy", "size": 1, "price": 98}]):    # price contradicts
        h.frame(table("update", bad))
        assert h.book()["status"] == "stale"
        h.frame(table("partial", SNAP))
    h.frame(table("insert", [{"id": 3, "side": "Buy", "size": 1, "price": 100}]))  # dup id
    h.frame(table("partial", SNAP))
    h.frame(table("delete", [{"id": 3, "side": "Buy"}]))
    h.frame(table("delete", [{"id": 3, "side": "Buy"}]))                # deleted twice
    assert h.stats.gaps == 5 and h.stats.resyncs == 5 and h.stats.malformed == 0


def test_crossed_book_resyncs():
    h = Harness()
    h.frame(table("partial", SNAP))
    h.frame(table("insert", [{"id": 60, "side": "Buy", "size": 1, "price": 102}]))
    assert h.book()["status"] == "stale"
    assert h.stats.crossed == 1 and h.stats.resyncs == 1 and h.stats.gaps == 0


def test_bad_input_is_counted_never_raised():
    h = Harness()
    h.frame(table("partial", SNAP))
    for frame in ("not json", "[1, 2]", '{"foo": 1}', '{"status":400,"error":"bad"}'):
        h.frame(frame)
    assert h.proto.stats.malformed_frames == 4 and h.stats.malformed == 0
    assert h.book()["status"] == "live"
    bad_rows = ([{"id": 9, "side": "Hold", "size": 1}],
                [{"id": 9, "side": "Buy", "size": "x"}],
                [{"id": 9, "side": "Buy", "size": None}],
                [{"id": 61, "side": "Buy", "size": 1}],                 # insert, no price
                [{"id": 62, "side": "Buy", "size": 1, "price": "1e"}],
                [{"id": 63, "side": "Buy", "size": 1, "price": 99.0001}],  # finer than scale
                [{"id": 9, "side": "Buy", "size": 1.5}])
    actions = ("update", "update", "update", "insert", "insert", "insert", "update")
    for action, rows in zip(actions, bad_rows, strict=True):
        h.frame(table("partial", SNAP))
        assert h.book()["status"] == "live"
        h.frame(table(action, rows))
        assert h.book()["status"] == "stale", rows
    assert h.stats.malformed == 7 and h.stats.resyncs == 7 and h.stats.gaps == 0
    h.frame(table("insert", [{"id": 1, "side": "Buy", "size": 1, "price": 1}], "NOPE"))
    assert h.proto.stats.unknown_symbol_frames == 1
    h.frame(table("partial", [], "XBTUSD"))                             # empty book
    assert h.book()["status"] == "live" and h.book()["bids"] == []


def test_ping_after_silence():
    h = Harness()
    h.proto.ping_idle = 0.0
    assert h.proto.ping_message() == "ping" and h.proto.pings_sent == 1
    h.proto.ping_idle = 1000.0
    assert h.proto.ping_message() is None
