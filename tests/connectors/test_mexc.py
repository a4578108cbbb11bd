"""MEXC spot protocol on fixtures written from the documented examples: the protobuf
depth push (field numbers pinned by hand-written bytes), the REST depth snapshot and the
JSON control answers.  Snapshot + diffs give an exact book; updates before the snapshot
are buffered and replayed; gaps, stale snapshots, malformed frames and rejected
subscriptions are detected and counted."""

from __future__ import annotations

import orjson
import pytest

from connectors.base import MalformedFrame
from connectors.mexc import MEXC, decode_depths, decode_push
from tests.connectors.harness import ExchangeHarness

CHANNEL = "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"

# /api/v3/exchangeInfo, in the documented shape (fields this connector reads)
EXCHANGE_INFO = {
    "timezone": "CST", "serverTime": 1736411507000,
    "symbols": [
        {"symbol": "BTCUSDT", "status": "1", "baseAsset": "BTC", "baseAssetPrecision": 6,
         "quoteAsset": "USDT", "quotePrecision": 2, "quoteAssetPrecision": 2,
         "baseSizePrecision": "0.000001", "isSpotTradingAllowed": True},
        {"symbol": "ETHUSDT", "status": "1", "baseAsset": "ETH", "baseAssetPrecision": 5,
         "quoteAsset": "USDT", "quotePrecision": 2, "quoteAssetPrecision": 2,
         "baseSizePrecision": "0.00001", "isSpotTradingAllowed": True},
        {"symbol": "BROKEN", "baseAsset": "X"},                 # skipped
    ]}
INSTRUMENTS = MEXC.parse_instruments(orjson.dumps(EXCHANGE_INFO))

# GET /api/v3/depth?symbol=BTCUSDT&limit=5000, documented shape
SNAPSHOT = {"lastUpdateId": 10589632358,
            "bids": [["92877.58", "0.51000000"], ["92877.00", "1.20000000"]],
            "asks": [["92878.00", "0.30000000"], ["92879.10", "2.00000000"]],
            "timestamp": 1736411506990}


# -- an independent protobuf writer for the fixtures --------------------------------------
def _v(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def _ld(num: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _v(num << 3 | 2) + _v(len(data)) + data


def depth_frame(frm, to, bids=(), asks=(), symbol="BTCUSDT", send_ms=1736411507002,
                extra: bytes = b"") -> bytes:
    body = b"".join(_ld(1, _ld(1, p) + _ld(2, q)) for p, q in asks)
    body += b"".join(_ld(2, _ld(1, p) + _ld(2, q)) for p, q in bids)
    body += _ld(3, "spot@public.aggre.depth.v3.api.pb@100ms") + _ld(4, str(frm)) \
        + _ld(5, str(to))
    return (_ld(1, f"spot@public.aggre.depth.v3.api.pb@100ms@{symbol}") + _ld(313, body)
            + _ld(3, symbol) + _v(6 << 3) + _v(send_ms) + extra)


# The documented push (rendered as JSON in the docs):
#   {"channel": "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT",
#    "publicAggreDepths": {"asks": [], "bids": [{"price": "92877.58",
#      "quantity": "0.00000000"}], "eventType": "spot@public.aggre.depth.v3.api.pb@100ms",
#      "fromVersion": "10589632359", "toVersion": "10589632359"},
#    "symbol": "BTCUSDT", "sendTime": 1736411507002}
# written out byte by byte, so the field numbers are checked independently of any encoder
_ITEM = b"\x0a\x08" + b"92877.58" + b"\x12\x0a" + b"0.00000000"          # 22 bytes
_EVENT = b"spot@public.aggre.depth.v3.api.pb@100ms"                        # 39 bytes
_BODY = (b"\x12\x16" + _ITEM + b"\x1a\x27" + _EVENT + b"\x22\x0b" + b"10589632359"
         + b"\x2a\x0b" + b"10589632359")                                   # 91 bytes
DOCUMENTED_PUSH = (b"\x0a\x2f" + CHANNEL.encode() + b"\xca\x13\x5b" + _BODY
                   + b"\x1a\x07BTCUSDT" + b"\x30" + _v(1736411507002))


class Harness(ExchangeHarness):
    """One protocol writing into a real ring and store, drained after every frame (the
    tests call check_health themselves)."""

    def __init__(self, symbols=("BTCUSDT",)) -> None:
        super().__init__(MEXC, symbols, depth=1000, instruments=INSTRUMENTS, recv_ns=123,
                         health_each_frame=False)

    def snapshot(self, snap=None) -> None:
        req = self.proto.rest_requests.popleft()
        self.proto.handle_rest(req, orjson.dumps(snap or SNAPSHOT), 456)
        self.drain()


def synced() -> Harness:
    h = Harness()
    h.proto.request_resync("BTCUSDT")
    h.snapshot()
    return h


# -- wire format ---------------------------------------------------------------------------
def test_documented_push_decodes_field_by_field():
    assert DOCUMENTED_PUSH == depth_frame(10589632359, 10589632359,
                                          bids=[("92877.58", "0.00000000")])
    channel, symbol, send_ms, body = decode_push(DOCUMENTED_PUSH)
    assert (channel, symbol, send_ms) == (CHANNEL, "BTCUSDT", 1736411507002)
    bp, bq, ap, aq, frm, to = decode_depths(body, "BTCUSDT")
    assert (bp, bq, ap, aq) == ([b"92877.58"], [b"0.00000000"], [], [])
    assert frm == to == 10589632359


def test_unknown_fields_are_skipped():
    extra = _v(99 << 3) + _v(7) + _v(98 << 3 | 1) + b"\x00" * 8 + _v(97 << 3 | 5) + b"\x00" * 4
    channel, symbol, _, body = decode_push(depth_frame(5, 6, extra=extra))
    assert symbol == "BTCUSDT" and decode_depths(body, "BTCUSDT")[4:] == (5, 6)


@pytest.mark.parametrize("bad", [b"\x0a\xff\xff", b"\x0a\x10abc", b"\x0b", b"\x00\x01",
                                 b"\x0a" + b"\xff" * 11])
def test_broken_protobuf_raises(bad):
    with pytest.raises(MalformedFrame):
        decode_push(bad)


# -- instruments, requests ---------------------------------------------------------------
def test_instruments_and_requests():
    btc = INSTRUMENTS["BTCUSDT"]
    assert set(INSTRUMENTS) == {"BTCUSDT", "ETHUSDT"}
    assert (btc.unified, btc.kind, btc.tick, btc.lot) == ("BTC-USDT", "spot", "0.01",
                                                          "0.000001")
    assert btc.price_decimals >= 2 and btc.size_decimals >= 6
    syms = [f"S{i}USDT" for i in range(31)]
    p = MEXC({}, {})
    msgs = [orjson.loads(m) for m in p.subscribe_messages(syms)]
    assert [len(m["params"]) for m in msgs] == [30, 1]
    assert msgs[0]["method"] == "SUBSCRIPTION"
    assert msgs[0]["params"][0] == "spot@public.aggre.depth.v3.api.pb@100ms@S0USDT"
    assert MEXC.max_symbols_per_connection == 30
    assert orjson.loads(p.ping_message()) == {"method": "PING"}
    url = p.snapshot_url("BTCUSDT")
    assert url == "https://api.mexc.com/api/v3/depth?symbol=BTCUSDT&limit=5000"
    assert p.rest_symbol(url) == "BTCUSDT" and p.rest_symbol("https://x/api/v3/ticker") is None


# -- sync ----------------------------------------------------------------------------------
def test_snapshot_then_documented_push_gives_the_exact_book():
    h = Harness()
    assert h.book()["status"] == "syncing"
    h.feed(DOCUMENTED_PUSH)                       # buffered, snapshot requested
    assert h.book()["bids"] == [] and h.stats.sym("BTCUSDT").messages == 0
    assert len(h.proto.rest_requests) == 1
    h.snapshot()
    book = h.book()
    assert book["status"] == "live"
    assert book["bids"] == [["92877", "1.2"]]     # 92877.58 deleted by the push
    assert book["asks"] == [["92878", "0.3"], ["92879.1", "2"]]
    assert book["seq"] == 10589632359 and book["exch_ts"] == 1736411507002 * 1_000_000
    st = h.stats.sym("BTCUSDT")
    assert (st.snapshots, st.messages, st.gaps, st.malformed) == (1, 2, 0, 0)
    h.feed(depth_frame(10589632360, 10589632362, bids=[("92876.50", "3.00000000")],
                       asks=[("92878.00", "0.25000000")]))
    book = h.book()
    assert book["bids"] == [["92877", "1.2"], ["92876.5", "3"]]
    assert book["asks"][0] == ["92878", "0.25"] and book["seq"] == 10589632362


def test_buffered_updates_already_in_the_snapshot_are_skipped_and_straddle_applies():
    h = Harness()
    h.feed(depth_frame(10589632350, 10589632355, asks=[("92878.00", "9.00000000")]))
    h.feed(depth_frame(10589632356, 10589632360, asks=[("92878.00", "0.40000000")]))
    h.feed(depth_frame(10589632361, 10589632361, bids=[("92870.00", "1.00000000")]))
    h.snapshot()                                  # L = ...358: first skipped, second straddles
    book = h.book()
    assert book["status"] == "live" and book["seq"] == 10589632361
    assert book["asks"][0] == ["92878", "0.4"] and book["bids"][-1] == ["92870", "1"]
    assert h.stats.sym("BTCUSDT").gaps == 0 and h.stats.sym("BTCUSDT").messages == 3


def test_snapshot_older_than_the_stream_is_fetched_again():
    h = Harness()
    h.feed(depth_frame(10589632400, 10589632401))
    h.snapshot()                                  # L + 1 < first fromVersion
    st = h.stats.sym("BTCUSDT")
    assert h.book()["status"] == "stale" and st.gaps == 0 and st.resyncs == 1
    assert h.stats.reasons["snapshot older than the buffered stream"] == 1
    assert len(h.proto.rest_requests) == 1        # asked again
    h.feed(depth_frame(10589632402, 10589632402))
    h.snapshot(dict(SNAPSHOT, lastUpdateId=10589632401))
    assert h.book()["status"] == "live" and h.book()["seq"] == 10589632402


def test_first_update_past_the_snapshot_is_a_gap():
    h = synced()
    h.feed(depth_frame(10589632360, 10589632361))  # 359 missing
    st = h.stats.sym("BTCUSDT")
    assert st.gaps == 1 and h.book()["status"] == "stale"
    assert len(h.proto.rest_requests) == 1


def test_gap_while_live_is_counted_and_resynced():
    h = synced()
    h.feed(depth_frame(10589632359, 10589632360, bids=[("92870.00", "1.00000000")]))
    h.feed(depth_frame(10589632362, 10589632363, bids=[("92860.00", "1.00000000")]))
    st = h.stats.sym("BTCUSDT")
    assert st.gaps == 1 and st.resyncs == 1
    book = h.book()
    assert book["status"] == "stale" and ["92860", "1"] not in book["bids"]
    assert h.stats.reasons["sequence gap"] == 1
    h.feed(depth_frame(10589632364, 10589632364))  # buffered until the new snapshot
    h.snapshot(dict(SNAPSHOT, lastUpdateId=10589632363))
    assert h.book()["status"] == "live" and h.book()["seq"] == 10589632364
    # strict continuation once live: a repeated update is a break too
    h.feed(depth_frame(10589632364, 10589632364))
    assert st.gaps == 2


def test_malformed_depth_frames_resync_their_book():
    h = synced()
    st = h.stats.sym("BTCUSDT")
    bad_body = _ld(1, CHANNEL) + _ld(313, b"\x12\x10\x0a\x02") + _ld(3, "BTCUSDT")
    for i, frame in enumerate([bad_body,
                               depth_frame("10x", 10589632360),
                               depth_frame(10589632361, 10589632360),
                               depth_frame(10589632359, 10589632359,
                                           bids=[("1.1234567891", "1.0")])], 1):
        h.proto.rest_requests.clear()
        h.proto.reset_symbol("BTCUSDT")
        h.proto.request_resync("BTCUSDT")
        h.snapshot()
        assert h.book()["status"] == "live"
        h.feed(frame)
        assert st.malformed == i and st.resyncs == i, frame
        assert h.book()["status"] == "stale" and len(h.proto.rest_requests) == 1
    assert h.stats.malformed_frames == 0


def test_garbage_and_control_frames():
    h = synced()
    h.feed(b"\x0a\xff\xff")                       # binary, names no book
    h.feed('{"this is": not json')
    h.feed("[1, 2]")
    assert h.stats.malformed_frames == 3 and h.book()["status"] == "live"
    h.feed('{"id":0,"code":0,"msg":"PONG"}')
    h.feed(b'{"id":0,"code":0,"msg":"PONG"}')     # text that arrived as bytes
    h.feed(f'{{"id":0,"code":0,"msg":"{CHANNEL}"}}')
    assert h.proto.pongs == 2 and h.proto.acks == 1
    h.feed('{"method":"PING"}')
    assert list(h.proto.outbox) == ['{"method":"PONG"}']
    h.feed(depth_frame(1, 2, symbol="XRPUSDT"))
    assert h.stats.unknown_symbol_frames == 1
    h.feed(_ld(1, "spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT") + _ld(314, b""))
    assert h.stats.ignored_frames == 5
    h.feed(f'{{"id":0,"code":1,"msg":"Not Subscribed: {CHANNEL}"}}')
    assert h.stats.malformed_frames == 4 and h.book()["status"] == "stale"
    assert h.stats.reasons["subscription rejected"] == 1


def test_symbol_taken_from_the_channel_when_absent():
    h = Harness()
    frame = _ld(1, CHANNEL) + _ld(313, decode_push(depth_frame(1, 2))[3])
    h.feed(frame)
    assert len(h.proto.sync["BTCUSDT"].buffer) == 1


def test_disconnect_marks_stale_and_forgets_sync():
    h = synced()
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale" and not h.proto.sync["BTCUSDT"].live
    h.proto.on_connect()
    h.feed(depth_frame(10589632359, 10589632359))
    assert h.book()["status"] == "syncing" and len(h.proto.rest_requests) == 1
