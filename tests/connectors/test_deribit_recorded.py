"""Deribit recorded session (JSON-RPC, ``book.*.raw``, July 2021): replay through the
connector and the engine; every recorded book live, no gaps / resyncs / malformed, and
equal to a longhand reference rebuild (json + Decimal + dicts).  Also: instruments and
names, the scales against every number sent, and the protocol's rules frame by frame."""

import json
from decimal import Decimal

import orjson

from connectors.deribit import Deribit, unified_name
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.harness import ProtocolHarness
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"BTC-24SEP21-8000-P", "BTC-30JUL21-24000-P", "ETH-30JUL21-2800-C",
         "BTC-31DEC21-34000-P", "BTC-24SEP21-34000-P", "BTC-24JUN22-15000-C",
         "BTC-31DEC21-300000-C", "ETH-27AUG21-4000-P", "BTC-25MAR22-30000-C",
         "ETH-23JUL21-2300-C"}


def book_notifications():
    """(data) of every book notification, numbers as exact Decimals."""
    for _, kind, payload in frames_and_rest("DERIBIT"):
        if kind != "ws":
            continue
        msg = json.loads(payload, parse_float=Decimal)
        params = msg.get("params") or {}
        if msg.get("method") == "subscription" and params["channel"].startswith("book."):
            yield params["data"]


def rebuild_deribit(depth: int) -> dict[str, RefBook]:
    """The documented procedure, longhand: the first notification is the whole book;
    each change must name the previous change_id; new/change set, delete removes."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    for data in book_notifications():
        sym = data["instrument_name"]
        if data["type"] == "snapshot":
            books[sym] = RefBook(depth)
        else:
            assert data["type"] == "change"
            assert data["prev_change_id"] == last[sym], "gap in the recording"
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for action, price, amount in data[key]:
                books[sym].set(side, price, 0 if action == "delete" else amount)
        last[sym] = data["change_id"]
    return books


def test_recorded_deribit_matches_reference():
    replay_session(need_recordings(), "DERIBIT")            # warm
    res = replay_session(need_recordings(), "DERIBIT")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 10
    assert res.frames == 136
    levels = sum(len(d["bids"]) + len(d["asks"]) for d in book_notifications())
    assert res.level_updates == levels == 149
    ref = rebuild_deribit(res.depth)
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert res.stats.symbols[sym].snapshots == 1
    # real content, not trivial books (one recorded book is empty on both sides)
    assert sum(len(b.bids) + len(b.asks) for b in ref.values()) == 106
    assert len(ref["BTC-31DEC21-300000-C"].asks) == 19
    assert not ref["ETH-27AUG21-4000-P"].bids and not ref["ETH-27AUG21-4000-P"].asks
    # 89 ticker / trades notifications + the subscribe answer
    assert res.stats.ignored_frames == 90 and res.stats.unknown_symbol_frames == 0


def test_recorded_instruments_and_names():
    session = load_session(need_recordings(), "DERIBIT")
    instruments = session_instruments(Deribit, session)
    assert len(instruments) == 1017                     # every future and option listed
    natives = session_symbols(Deribit, session, instruments)
    assert set(natives) == BOOKS                        # from cryptofeed's BTC-8000-21U24-put
    assert set(Deribit.recorded_symbols(session, natives)) == BOOKS
    opt = instruments["BTC-24SEP21-8000-P"]
    assert (opt.unified, opt.kind, opt.tick, opt.lot) == \
        ("BTC-USD-20210924-8000-P", "option", "0.0005", "0.1")
    assert (opt.price_decimals, opt.size_decimals) == (6, 3)
    perp = instruments["BTC-PERPETUAL"]
    assert (perp.unified, perp.kind, perp.tick, perp.lot, perp.price_decimals) == \
        ("BTC-USD-PERP", "perp", "0.5", "10.0", 3)     # the number's text, as sent
    assert instruments["ETH_USDC-PERPETUAL"].unified == "ETH-USDC-PERP"
    assert unified_name("BTC-3JUN22", "future") == "BTC-USD-20220603"
    assert unified_name("BTC_USDC", "spot") == "BTC-USDC"


def test_scales_cover_every_number_sent():
    instruments = session_instruments(Deribit, load_session(need_recordings(), "DERIBIT"))
    seen = 0
    for data in book_notifications():
        inst = instruments[data["instrument_name"]]
        for _, price, amount in data["bids"] + data["asks"]:
            assert decimals_for(str(price)) <= decimals_for(inst.tick) <= inst.price_decimals
            assert decimals_for(str(amount)) <= decimals_for(inst.lot) <= inst.size_decimals
            assert price % Decimal(inst.tick) == 0
            seen += 1
    assert seen == 149


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, symbols=("BTC-PERPETUAL",)) -> None:
        super().__init__(Deribit, symbols, 4, 3)


def book(kind, change_id, bids=(), asks=(), prev=None, symbol="BTC-PERPETUAL",
         interval="100ms") -> str:
    """A notification as Deribit writes it: prices and amounts are JSON numbers."""
    def rows(levels):
        return ",".join(f'["{a}",{p},{q}]' for a, p, q in levels)
    prev_part = f'"prev_change_id":{prev},' if prev is not None else ""
    return ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.'
            f'{symbol}.{interval}","data":{{"type":"{kind}","timestamp":1,{prev_part}'
            f'"instrument_name":"{symbol}","change_id":{change_id},'
            f'"bids":[{rows(bids)}],"asks":[{rows(asks)}]}}}}}}')


def test_subscribe_requests_and_heartbeat_answers():
    h = Harness()
    sent = [orjson.loads(m) for m in h.proto.subscribe_messages(["BTC-PERPETUAL"])]
    assert sent[0]["method"] == "public/set_heartbeat" and sent[0]["params"] == {
        "interval": 10}
    assert sent[1]["method"] == "public/subscribe"
    assert sent[1]["params"] == {"channels": ["book.BTC-PERPETUAL.100ms"]}
    assert sent[0]["id"] != sent[1]["id"]
    h.frame({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
    answer = orjson.loads(h.proto.outbox.popleft())
    assert answer["method"] == "public/test" and h.proto.test_requests == 1
    h.frame({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}})
    assert not h.proto.outbox and h.proto.heartbeats == 2


def test_exact_numbers_changes_and_gap_resubscribes():
    h = Harness()
    h.frame(book("change", 5, [("new", 1, 1)], prev=4))      # before any snapshot: dropped
    assert h.book()["bids"] == [] and h.book()["status"] != "live"
    h.frame(book("snapshot", 10, [("new", "30000.5", "12.3"), ("new", "30000.0", "4714.0")],
                 [("new", "30001.0", "0.1")]))
    assert h.book()["status"] == "live"
    # 0.1 + 0.2 is not 0.3 in floats: exact text survives
    h.frame(book("change", 11, [("change", "30000.5", "0.3"), ("delete", "30000.0", "0.0")],
                 [("new", "30000.7", "0.003")], prev=10))
    assert h.book()["bids"] == [["30000.5", "0.3"]]
    assert h.book()["asks"] == [["30000.7", "0.003"], ["30001", "0.1"]]
    h.frame(book("change", 12, [], [], prev=11))             # an empty change: chain only
    assert h.book()["status"] == "live" and h.stats.gaps == 0
    h.proto.outbox.clear()
    h.frame(book("change", 20, [("new", "29999", "1")], prev=13))  # 12 -> 13 lost
    assert h.book()["status"] == "stale" and h.stats.gaps == 1 and h.stats.resyncs == 1
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["method"] for m in sent] == ["public/unsubscribe", "public/subscribe"]
    assert sent[1]["params"] == {"channels": ["book.BTC-PERPETUAL.100ms"]}
    h.frame(book("change", 21, [("new", "29998", "1")], prev=20))  # old tail: dropped
    assert h.stats.gaps == 1
    h.frame(book("snapshot", 30, [("new", "100", "1")], [("new", "101", "2")]))
    h.frame(book("change", 31, [("new", "100.5", "1")], prev=30))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100.5", "1"], ["100", "1"]]
    assert h.stats.snapshots == 2 and h.stats.gaps == 1


def test_crossed_book_resubscribes():
    h = Harness()
    h.frame(book("snapshot", 1, [("new", "100", "1")], [("new", "101", "2")]))
    h.proto.outbox.clear()
    h.frame(book("change", 2, [("new", "102", "1")], prev=1))
    assert h.book()["status"] == "stale" and h.stats.crossed == 1 and h.stats.resyncs == 1
    assert [orjson.loads(m)["method"] for m in h.proto.outbox] == \
        ["public/unsubscribe", "public/subscribe"]


def test_bad_input_is_counted_never_raised():
    h = Harness()
    for bad in ("not json", "[1, 2]", '{"jsonrpc":"2.0"}',
                '{"jsonrpc":"2.0","id":3,"error":{"code":13778,"message":"raw_sub"}}',
                '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"??"}}',
                '{"method":"subscription","params":{"channel":"book.X.100ms"}}'):
        h.frame(bad)
    assert h.proto.stats.malformed_frames == 6 and h.stats.malformed == 0
    bad_changes = [
        book("change", 3, [("add", "100", "1")], prev=2),
        book("change", 3, [("new", "1e", "1")], prev=2),
        book("change", 3, [("new", '"100"', "1")], prev=2),
        book("change", 3, [("new", "100.000001", "1")], prev=2),   # beyond the scale
        book("change", 3, [("new", "100", "-1")], prev=2),
        book("change", 3, [("new", "100", "1")], prev="null"),
        book("change", 3, [("new", "100", "1")], prev=2).replace('"type":"change"',
                                                                  '"type":"weird"'),
        book("snapshot", 3, [("change", "100", "1")]),
    ]
    for frame in bad_changes:
        h.frame(book("snapshot", 2, [("new", "100", "1")], [("new", "101", "2")]))
        assert h.book()["status"] == "live"
        h.frame(frame)
        assert h.book()["status"] == "stale", frame
    assert h.stats.malformed == len(bad_changes) and h.stats.resyncs == len(bad_changes)
    assert h.stats.gaps == 0
    h.frame(book("snapshot", 1, [("new", "1", "1")], symbol="ETH-PERPETUAL"))
    assert h.proto.stats.unknown_symbol_frames == 1
    ignored = h.proto.stats.ignored_frames
    h.frame('{"jsonrpc":"2.0","id":1,"result":["book.BTC-PERPETUAL.100ms"]}')
    h.frame('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms",'
            '"data":{}}}')
    assert h.proto.stats.ignored_frames == ignored + 2


def test_raw_dialect_notifications_are_understood_and_deep_snapshots_cut():
    h = Harness()
    h.proto.depth = 3
    bids = [("new", p, "1") for p in ("97", "100", "99.5", "98", "99")]     # any order
    asks = [("new", p, "2") for p in ("104", "101", "103", "102.25", "105")]
    h.frame(book("snapshot", 7, bids, asks, interval="raw"))
    assert [p for p, _ in h.book()["bids"]] == ["100", "99.5", "99"]
    assert [p for p, _ in h.book()["asks"]] == ["101", "102.25", "103"]
    assert h.book()["status"] == "live" and h.stats.levels == 6
