"""Bithumb v1 ``orderbook`` protocol on fixtures written in the documented message shape
(JSON doubles, rank-paired units, SNAPSHOT then REALTIME): every message replaces the
book exactly; numbers are exact (no float rounding, exponent notation read); an older
timestamp is dropped; grouped, broken and error messages are counted and resynced via a
resubscription of the whole connection; a crossed book resyncs; instruments parse."""

from __future__ import annotations

import json

import pytest

from connectors.base import ConfigError
from connectors.bithumb import Bithumb, split_units
from tests.connectors.harness import ExchangeHarness

# /v1/market/all, in the documented shape
MARKETS = json.dumps([
    {"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin"},
    {"market": "KRW-ETH", "korean_name": "이더리움", "english_name": "Ethereum"},
    {"market": "BTC-XRP", "korean_name": "리플", "english_name": "XRP"},
])
INSTRUMENTS = Bithumb.parse_instruments(MARKETS)

# The documented response fields (DEFAULT format); numbers are doubles as sent.
SNAPSHOT = """{"type":"orderbook","code":"KRW-BTC","timestamp":1730185382042,
 "total_ask_size":1.20330000,"total_bid_size":0.5961,
 "orderbook_units":[
  {"ask_price":98431000.0,"bid_price":98430000.0,"ask_size":0.0012,"bid_size":0.0919},
  {"ask_price":98432000.0,"bid_price":98423000.0,"ask_size":1.2021,"bid_size":5.0E-4},
  {"ask_price":0.0,"bid_price":98420000.0,"ask_size":0.0,"bid_size":0.5037}],
 "level":1,"stream_type":"SNAPSHOT"}"""


def book_msg(ts: int, units, code: str = "KRW-BTC", stream: str = "REALTIME",
             level="1") -> str:
    rows = ",".join(f'{{"ask_price":{ap},"bid_price":{bp},"ask_size":{as_},"bid_size":{bs}}}'
                    for bp, bs, ap, as_ in units)
    lv = "" if level is None else f',"level":{level}'
    return (f'{{"type":"orderbook","code":"{code}","timestamp":{ts},"total_ask_size":1.0,'
            f'"total_bid_size":1.0,"orderbook_units":[{rows}]{lv},'
            f'"stream_type":"{stream}"}}')


class Harness(ExchangeHarness):
    """One protocol writing into a real ring and store, drained after every frame."""

    def __init__(self, symbols=("KRW-BTC",)) -> None:
        super().__init__(Bithumb, symbols, depth=1000, instruments=INSTRUMENTS, recv_ns=123)


def test_instruments_and_names():
    assert set(INSTRUMENTS) == {"KRW-BTC", "KRW-ETH", "BTC-XRP"}
    btc = INSTRUMENTS["KRW-BTC"]
    assert (btc.native, btc.unified, btc.kind) == ("KRW-BTC", "BTC-KRW", "spot")
    assert (btc.price_decimals, btc.size_decimals) == (8, 8)
    assert INSTRUMENTS["BTC-XRP"].unified == "XRP-BTC"
    assert Bithumb.instrument_urls() == ["https://api.bithumb.com/v1/market/all"]
    with pytest.raises(ConfigError):
        Bithumb.parse_instruments('{"error": {"name": "x"}}')


def test_subscribe_request_is_one_array_for_the_connection():
    h = Harness(("KRW-BTC", "KRW-ETH"))
    (msg,) = [json.loads(m) for m in h.proto.subscribe_messages(["KRW-BTC", "KRW-ETH"])]
    assert isinstance(msg, list) and msg[0]["ticket"]
    assert msg[1] == {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]}
    assert msg[2] == {"format": "DEFAULT"}


def test_snapshot_exact_with_doubles_exponents_and_short_side():
    h = Harness()
    h.feed(SNAPSHOT)
    b = h.book()
    assert b["status"] == "live"
    assert b["bids"] == [["98430000", "0.0919"], ["98423000", "0.0005"],
                         ["98420000", "0.5037"]]
    assert b["asks"] == [["98431000", "0.0012"], ["98432000", "1.2021"]]
    assert h.stats.sym("KRW-BTC").snapshots == 1


def test_every_message_replaces_the_book():
    h = Harness()
    h.feed(SNAPSHOT)
    h.feed(book_msg(1730185382100, [("98430000.0", "0.1", "98433000.0", "2.0")]))
    b = h.book()
    assert b["bids"] == [["98430000", "0.1"]] and b["asks"] == [["98433000", "2"]]
    assert h.stats.sym("KRW-BTC").gaps == 0 and h.stats.sym("KRW-BTC").resyncs == 0


def test_older_timestamp_dropped_equal_accepted():
    h = Harness()
    h.feed(SNAPSHOT)
    h.feed(book_msg(1730185382041, [("1.0", "1.0", "2.0", "1.0")]))     # older: dropped
    assert h.proto.out_of_order == 1
    assert h.book()["bids"][0] == ["98430000", "0.0919"]
    h.feed(book_msg(1730185382042, [("3.0", "1.0", "4.0", "1.0")]))     # same ms: applied
    assert h.book()["bids"] == [["3", "1"]] and h.book()["status"] == "live"
    assert h.stats.sym("KRW-BTC").resyncs == 0


def test_malformed_book_resyncs_by_resubscribing_all_codes():
    h = Harness(("KRW-BTC", "KRW-ETH"))
    h.sent()
    h.feed(SNAPSHOT)
    h.feed(book_msg(1730185382100, [('"12..5"', "1.0", "2.0", "1.0")]))
    st = h.stats.sym("KRW-BTC")
    assert st.malformed == 1 and st.resyncs == 1
    assert h.book()["status"] == "stale"
    (req,) = h.sent()                       # no unsubscribe exists: one full request
    assert req[1] == {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]}
    # the snapshot after a resync is accepted even with an older timestamp
    h.feed(SNAPSHOT)
    assert h.book()["status"] == "live"


@pytest.mark.parametrize("frame", [
    book_msg(1730185382100, [("1.0", "1.0", "2.0", "1.0")], level="10000"),  # grouped
    book_msg(1730185382100, [("1.0", None, "2.0", "1.0")]),                  # null size
    '{"type":"orderbook","code":"KRW-BTC","timestamp":1,"orderbook_units":{}}',
    '{"type":"orderbook","code":"KRW-BTC","orderbook_units":[]}',            # no timestamp
])
def test_bad_book_messages_are_counted_per_symbol(frame):
    h = Harness()
    h.feed(SNAPSHOT)
    h.feed(frame.replace("None", "null"))
    st = h.stats.sym("KRW-BTC")
    assert st.malformed == 1 and st.resyncs == 1 and h.book()["status"] == "stale"


def test_level_absent_or_zero_is_ungrouped():
    h = Harness()
    h.feed(book_msg(5, [("1.0", "1.0", "2.0", "1.0")], level=None))
    h.feed(book_msg(6, [("1.0", "2.0", "2.0", "1.0")], level="0"))
    assert h.book()["bids"] == [["1", "2"]] and h.stats.sym("KRW-BTC").malformed == 0


def test_garbage_errors_status_and_unknown_codes():
    h = Harness()
    h.feed(b'{"this is": not json')
    h.feed('{"error":{"name":"INVALID_PARAM","message":"bad codes"}}')
    h.feed('[1, 2]')
    assert h.stats.malformed_frames == 3
    h.feed('{"status":"UP"}')
    h.feed('{"type":"ticker","code":"KRW-BTC"}')
    h.feed(book_msg(1, [("1.0", "1.0", "2.0", "1.0")], code="KRW-DOGE"))
    assert h.proto.status_frames == 1 and h.stats.ignored_frames == 2
    assert h.stats.unknown_symbol_frames == 1 and h.stats.totals()["resyncs"] == 0


def test_crossed_book_resyncs():
    h = Harness()
    h.feed(SNAPSHOT)
    h.sent()
    h.feed(book_msg(1730185382100, [("98431000.0", "1.0", "98431000.0", "1.0")]))
    st = h.stats.sym("KRW-BTC")
    assert st.crossed == 1 and st.resyncs == 1
    assert h.book()["status"] == "stale"
    assert h.sent()[0][1]["codes"] == ["KRW-BTC"]
    h.feed(SNAPSHOT)
    assert h.book()["status"] == "live"


def test_split_units_skips_zero_price_sides():
    bids, asks = split_units([{"bid_price": "5.0", "bid_size": "1.0", "ask_price": "0.0",
                               "ask_size": "0.0"}])
    assert bids == [("5.0", "1.0")] and asks == []


def test_disconnect_marks_stale():
    h = Harness()
    h.feed(SNAPSHOT)
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale"
    h.proto.on_connect()
    h.drain()
    h.feed(SNAPSHOT)
    assert h.book()["status"] == "live"


def test_java_style_doubles_read_exactly():
    from simulator.bithumb import java_double
    assert [java_double(v, 4) for v in (5, 12, 2500, 10000, 0)] == \
        ["5.0E-4", "0.0012", "0.25", "1.0", "0.0"]
    assert java_double(148520000, 0) == "1.4852E8"
    h = Harness()
    h.feed(book_msg(7, [(java_double(148520000, 0), java_double(5, 4),
                         java_double(148521000, 0), java_double(123456789, 8))]))
    assert h.book()["bids"] == [["148520000", "0.0005"]]
    assert h.book()["asks"] == [["148521000", "1.23456789"]]
