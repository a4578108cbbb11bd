"""Coinbase on recorded and documented data, no network.

* The recorded session COINBASE (Coinbase Pro ``level2``, the Exchange dialect) replays
  through ``CoinbaseExchange`` and the engine: every recorded book live, nothing counted
  as a gap, resync or malformed frame, books equal to a longhand reference rebuild.
* Advanced Trade (``Coinbase``) has no recording: the documented example messages
  (fixtures/coinbase_*.json) are parsed exactly, and its sync rules (connection-wide
  sequence_num, resubscribe on a gap, malformed events, snapshot truncation) are driven
  frame by frame through a real store."""

from __future__ import annotations

import json
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest

from connectors.base import BookTarget, ConfigError
from connectors.coinbase import Coinbase, CoinbaseExchange, iso_ns, scale_for
from connectors.recorded import load_session
from connectors.replay import replay_session
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from tests.connectors.reference import (
    RefBook,
    as_decimal_levels,
    frames_and_rest,
    need_recordings,
)

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED_BOOKS = {"SKL-BTC", "CRV-EUR", "BAND-BTC", "NMR-EUR", "SKL-USD"}


# -- longhand reference ------------------------------------------------------------------------
def rebuild_coinbase_level2(recording: str, depth: int) -> tuple[dict[str, RefBook], Counter]:
    """Coinbase's documented level2 procedure: a snapshot replaces the book, each change
    sets the absolute size at a price (0 removes).  Also counts the other frame types."""
    books: dict[str, RefBook] = {}
    other: Counter = Counter()
    for _, kind, payload in frames_and_rest(recording):
        assert kind == "ws"
        msg = json.loads(payload)
        if msg["type"] == "snapshot":
            book = books[msg["product_id"]] = RefBook(depth)
            for price, size in msg["bids"]:
                book.set("bid", price, size)
            for price, size in msg["asks"]:
                book.set("ask", price, size)
        elif msg["type"] == "l2update":
            book = books[msg["product_id"]]   # every update follows its snapshot
            for side, price, size in msg["changes"]:
                book.set("bid" if side == "buy" else "ask", price, size)
        else:
            other[msg["type"]] += 1
    return books, other


def decimals_sent(recording: str) -> dict[str, tuple[int, int]]:
    """Most price and size decimals each product's book messages carry."""
    out: dict[str, list[int]] = {}
    for _, _, payload in frames_and_rest(recording):
        msg = json.loads(payload)
        if msg["type"] == "snapshot":
            rows = msg["bids"] + msg["asks"]
        elif msg["type"] == "l2update":
            rows = [c[1:] for c in msg["changes"]]
        else:
            continue
        d = out.setdefault(msg["product_id"], [0, 0])
        for price, size in rows:
            d[0] = max(d[0], -Decimal(price).as_tuple().exponent)
            d[1] = max(d[1], -Decimal(size).as_tuple().exponent)
    return {k: (v[0], v[1]) for k, v in out.items()}


# -- recorded session --------------------------------------------------------------------------
def test_recorded_coinbase_exchange_matches_reference():
    directory = need_recordings()
    session = load_session(directory, "COINBASE")
    configured = set(session.config["l2_book"])
    with_data = {m.get("product_id") for m in map(json.loads, (
        f.data for c in session.connections for f in c.frames))}
    # This copy of the session holds frames for 5 of the 10 configured books (the
    # recordings README: some symbols were removed).  The others are only named in the
    # subscription acks, never in a snapshot, update, ticker or match: they cannot go
    # live, so the replay is run on the books that were recorded.
    assert configured & with_data == RECORDED_BOOKS and len(configured) == 10
    symbols = CoinbaseExchange.recorded_symbols(session, sorted(configured))
    assert symbols == sorted(RECORDED_BOOKS)
    res = replay_session(directory, "COINBASE", symbols=symbols)
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    st = res.stats
    assert st.unknown_symbol_frames == 0 and st.malformed_frames == 0
    ref, other = rebuild_coinbase_level2("COINBASE", res.store.depth)
    assert set(ref) == RECORDED_BOOKS
    # ticker, match, last_match and subscriptions frames are ignored, and only they are
    assert st.ignored_frames == sum(other.values()) and set(other) == {
        "ticker", "match", "last_match", "subscriptions"}
    assert sum(s.snapshots for s in st.symbols.values()) == 5
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 50 and len(book.levels()["asks"]) > 50
    # the scales cover every decimal the venue sent
    instruments = CoinbaseExchange.parse_instruments(session.instrument_responses[0].body)
    for sym, (pdec, sdec) in decimals_sent("COINBASE").items():
        assert instruments[sym].price_decimals >= pdec and instruments[sym].size_decimals >= sdec


# -- an offline harness: frames -> protocol -> ring -> store, drained after every frame ---------
class Harness:
    def __init__(self, cls, instruments, symbols, depth=None) -> None:
        self.store = BookStore(len(symbols), depth or cls.depth)
        self.pool = RingPool(1, 1 << 16)
        self.ctl, self.data = self.pool.ctl[0], self.pool.data[0]
        targets = {}
        for i, s in enumerate(symbols):
            inst = instruments[s]
            self.store.configure(i, f"{cls.exchange}:{s}", inst.price_decimals,
                                 inst.size_decimals)
            targets[s] = BookTarget(self.ctl, self.data, i, self.store.hdr)
        self.symbols = symbols
        self.proto = cls(instruments, targets)
        self.proto.on_connect()
        self._drain()

    def _drain(self) -> None:
        s = self.store
        ring_drain(self.ctl, self.data, s.hdr, s.px, s.sz, 1 << 20, np.zeros(0, np.int64),
                   np.zeros(S_WORDS, np.int64))

    def feed(self, *frames) -> None:
        for f in frames:
            self.proto.handle_frame(f if isinstance(f, (str, bytes)) else orjson.dumps(f),
                                    1_000)
            self._drain()
            self.proto.check_health()
            self._drain()

    def book(self, symbol: str) -> dict:
        return self.store.book(self.symbols.index(symbol)).to_dict()

    def sent(self) -> list[dict]:
        out = [orjson.loads(m) for m in self.proto.outbox]
        self.proto.outbox.clear()
        return out


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _at_instruments():
    return Coinbase.parse_instruments((FIXTURES / "coinbase_products.json").read_bytes())


def _snapshot(seq, product, bids, asks):
    rows = [{"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": p,
             "new_quantity": q} for p, q in bids]
    rows += [{"side": "offer", "event_time": "1970-01-01T00:00:00Z", "price_level": p,
              "new_quantity": q} for p, q in asks]
    return {"channel": "l2_data", "timestamp": "2023-02-09T20:32:52Z", "sequence_num": seq,
            "events": [{"type": "snapshot", "product_id": product, "updates": rows}]}


def _update(seq, *events):
    return {"channel": "l2_data", "timestamp": "2023-02-09T20:32:53Z", "sequence_num": seq,
            "events": [{"type": "update", "product_id": product, "updates": [
                {"side": side, "event_time": "2023-02-09T20:32:53Z", "price_level": p,
                 "new_quantity": q} for side, p, q in rows]} for product, rows in events]}


# -- Advanced Trade: documented examples --------------------------------------------------------
def test_advanced_trade_products_from_the_documented_response():
    inst = _at_instruments()
    # spot only; the -USDC alias of BTC-USD, the future and the disabled product are left out
    assert sorted(inst) == ["BTC-USD", "ETH-USD", "SHIB-USD"]
    btc, eth, shib = inst["BTC-USD"], inst["ETH-USD"], inst["SHIB-USD"]
    assert (btc.unified, btc.price_decimals, btc.size_decimals) == ("BTC-USD", 8, 8)
    assert (eth.price_decimals, eth.size_decimals, eth.tick, eth.lot) == (8, 8, "0.01",
                                                                           "0.00000001")
    assert (shib.price_decimals, shib.size_decimals) == (8, 0)   # integer lots stay integer
    # the floor gives way where the largest order would lack 100x int64 headroom
    assert scale_for(["0.1"], "900000000000") == 4 and scale_for(["0.001"]) == 8
    assert scale_for(["0.0000000001"]) == 10


def test_advanced_trade_documented_messages_parse_exactly():
    fx = _fixture("coinbase_advanced_trade.json")
    h = Harness(Coinbase, _at_instruments(), ["BTC-USD", "ETH-USD"])
    h.feed(fx["frames"][0])
    snap = h.book("BTC-USD")
    assert snap["status"] == "live" and h.book("ETH-USD")["status"] == "syncing"
    assert snap["bids"][0] == ["21921.73", "0.06317902"]         # the documented row
    assert snap["exch_ts"] == iso_ns("2023-02-09T20:32:50.714964855Z") == \
        1675974770_714964855
    h.feed(*fx["frames"][1:])
    book = h.book("BTC-USD")
    want = fx["book_after"]["BTC-USD"]
    assert (book["bids"], book["asks"]) == (want["bids"], want["asks"])
    assert book["status"] == "live" and book["seq"] == 2
    st = h.proto.stats
    assert h.proto.heartbeats == 2 and st.ignored_frames == 3      # subscriptions + 2 beats
    assert st.totals()["gaps"] == 0 and st.totals()["malformed"] == 0
    assert h.proto.last_seq == 4 and not h.proto.outbox


def test_timestamps_are_exact_nanoseconds():
    base = 1675974770 * 10**9
    assert iso_ns("2023-02-09T20:32:50Z") == base
    assert iso_ns("2023-02-09T20:32:50.7Z") == base + 700_000_000
    assert iso_ns("2021-04-17T16:44:07.835854Z") == 1618677847_835854000
    assert iso_ns("2023-02-09T20:32:50.1234567891234Z") == base + 123_456_789
    assert iso_ns("2023-02-09T20:32:50.7\u00b2Z") == base + 700_000_000
    assert iso_ns("1970-01-01T00:00:00Z") == 0
    assert iso_ns("yesterday") == iso_ns(None) == iso_ns(1675974770) == 0


def test_advanced_trade_subscribes_one_channel_per_message():
    h = Harness(Coinbase, _at_instruments(), ["BTC-USD", "ETH-USD"])
    msgs = [orjson.loads(m) for m in h.proto.subscribe_messages(["BTC-USD", "ETH-USD"])]
    assert msgs == [{"type": "subscribe", "channel": "heartbeats"},
                    {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                     "channel": "level2"}]


def test_advanced_trade_sequence_jump_resyncs_every_book_of_the_connection():
    fx = _fixture("coinbase_advanced_trade.json")
    h = Harness(Coinbase, _at_instruments(), ["BTC-USD", "ETH-USD"])
    h.feed(*fx["frames"], _snapshot(5, "ETH-USD", [("1500.1", "2")], [("1500.2", "3")]))
    assert h.book("ETH-USD")["status"] == "live"
    # sequence_num 6 is lost; 7 is an update of BTC-USD only
    h.feed(_update(7, ("BTC-USD", [("bid", "21921.6", "9")])))
    st = h.proto.stats
    assert [st.sym(s).gaps for s in ("BTC-USD", "ETH-USD")] == [1, 1]
    assert h.book("BTC-USD")["status"] == "stale" and h.book("ETH-USD")["status"] == "stale"
    assert h.book("BTC-USD")["bids"][0] == ["21921.5", "1.75"]   # the update was not applied
    assert h.sent() == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"}]
    # updates still in flight for the old subscription are not applied to a stale book
    h.feed(_update(8, ("ETH-USD", [("bid", "1500.15", "1")])))
    assert h.book("ETH-USD")["status"] == "stale" and st.sym("ETH-USD").gaps == 1
    h.feed(_snapshot(9, "BTC-USD", [("21000", "1")], [("21001", "2")]),
           _snapshot(10, "ETH-USD", [("1500", "1")], [("1501", "1")]),
           _update(11, ("BTC-USD", [("offer", "21001", "0"), ("offer", "21002", "4")]),
                   ("ETH-USD", [("bid", "1500", "0.5")])))
    assert h.book("BTC-USD")["bids"] == [["21000", "1"]]
    assert h.book("BTC-USD")["asks"] == [["21002", "4"]]
    assert h.book("ETH-USD")["bids"] == [["1500", "0.5"]]
    assert all(h.book(s)["status"] == "live" for s in ("BTC-USD", "ETH-USD"))
    assert st.totals()["gaps"] == 2 and not h.sent()


def test_advanced_trade_bad_input_is_counted_and_isolated():
    h = Harness(Coinbase, _at_instruments(), ["BTC-USD", "ETH-USD"])
    h.feed(_snapshot(0, "BTC-USD", [("100", "1")], [("101", "1")]),
           _snapshot(1, "ETH-USD", [("10", "1")], [("11", "1")]))
    st = h.proto.stats
    h.feed(b'{"channel": "l2_data", "sequence_num": 2, "events": [')   # not JSON
    assert st.malformed_frames == 1 and h.book("BTC-USD")["status"] == "live"
    # that frame's sequence_num was never taken in: the next one carrying 2 is no gap...
    h.feed(_update(2, ("BTC-USD", [("bid", "100", "2")])))
    assert h.book("BTC-USD")["bids"] == [["100", "2"]] and st.totals()["gaps"] == 0
    # ...a bad side in one event resyncs that book only; the next event still applies
    h.feed(_update(3, ("BTC-USD", [("ask", "101", "5")]), ("ETH-USD", [("bid", "10", "3")])))
    assert st.sym("BTC-USD").malformed == 1 and h.book("BTC-USD")["status"] == "stale"
    assert h.book("ETH-USD")["bids"] == [["10", "3"]] and h.book("ETH-USD")["status"] == "live"
    assert h.sent() == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}]
    # too many decimals, a non-string price, an unknown product, a venue error
    h.feed(_update(4, ("ETH-USD", [("bid", "10.123456789", "1")])))
    assert st.sym("ETH-USD").malformed == 1 and h.book("ETH-USD")["status"] == "stale"
    h.feed(_snapshot(5, "ETH-USD", [(10, "1")], [("11", "1")]))
    assert st.sym("ETH-USD").malformed == 2 and h.book("ETH-USD")["status"] == "stale"
    h.feed(_snapshot(6, "DOGE-USD", [("1", "1")], []))
    h.feed({"type": "error", "message": "Failure to subscribe"})
    assert st.unknown_symbol_frames == 1 and st.malformed_frames == 2
    h.feed({"channel": "l2_data", "sequence_num": "7", "events": []})
    assert st.malformed_frames == 3 and st.totals()["gaps"] == 0
    h.feed(_snapshot(8, "ETH-USD", [("10", "1")], [("11", "1")]))   # 7 unreadable: a gap
    assert st.sym("BTC-USD").gaps == 1 and st.sym("ETH-USD").gaps == 1
    assert h.book("ETH-USD")["status"] == "live"
    # a numbered book message that names no book: every book resyncs (no gap can show it)
    h.feed({"channel": "l2_data", "sequence_num": 9, "timestamp": "2023-02-09T20:32:5\u00b2Z",
            "events": [{"type": "update", "updates": []}]})
    assert st.malformed_frames == 4 and st.reasons["unattributable book message"] == 2
    assert h.book("ETH-USD")["status"] == "stale"


def test_advanced_trade_snapshot_keeps_the_best_depth_levels_in_any_order():
    class Shallow(Coinbase):
        depth = 8

    rng = random.Random(7)
    bids = [(f"{100 - i}.{i:02d}", f"{i + 1}") for i in range(30)]
    asks = [(f"{101 + i}.5", f"0.{i + 1:03d}") for i in range(30)]
    rng.shuffle(bids)
    rng.shuffle(asks)
    h = Harness(Shallow, _at_instruments(), ["ETH-USD"], depth=8)
    h.feed(_snapshot(0, "ETH-USD", bids, asks))
    book = h.book("ETH-USD")
    want_b = sorted(bids, key=lambda r: Decimal(r[0]), reverse=True)[:8]
    want_a = sorted(asks, key=lambda r: Decimal(r[0]))[:8]
    assert as_decimal_levels(book) == {
        "bids": [(Decimal(p), Decimal(q)) for p, q in want_b],
        "asks": [(Decimal(p), Decimal(q)) for p, q in want_a]}
    assert book["status"] == "live"


# -- Exchange dialect: its integrity signals ---------------------------------------------------
def _exchange_instruments():
    return CoinbaseExchange.parse_instruments(
        load_session(need_recordings(), "COINBASE").instrument_responses[0].body)


def test_exchange_crossed_book_resyncs_by_resubscribing():
    h = Harness(CoinbaseExchange, _exchange_instruments(), ["SKL-USD"])
    h.feed({"type": "snapshot", "product_id": "SKL-USD", "bids": [["0.7901", "10.0"]],
            "asks": [["0.7910", "5.0"], ["0.7920", "1.0"]]})
    assert h.book("SKL-USD")["status"] == "live"
    h.feed({"type": "l2update", "product_id": "SKL-USD", "time": "2021-04-17T16:44:07.8Z",
            "changes": [["buy", "0.7915", "2.0"]]})
    st = h.proto.stats.sym("SKL-USD")
    assert st.crossed == 1 and st.resyncs == 1 and st.gaps == 0   # no sequence: not a gap
    assert h.book("SKL-USD")["status"] == "stale"
    assert h.sent() == [
        {"type": "unsubscribe", "product_ids": ["SKL-USD"], "channels": ["level2_batch"]},
        {"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2_batch"]}]
    h.feed({"type": "l2update", "product_id": "SKL-USD", "time": "2021-04-17T16:44:07.9Z",
            "changes": [["sell", "0.7920", "0"]]})                  # stale: not applied
    h.feed({"type": "snapshot", "product_id": "SKL-USD", "bids": [["0.7901", "10.0"]],
            "asks": [["0.7920", "1.0"]]})
    book = h.book("SKL-USD")
    assert book["status"] == "live" and book["asks"] == [["0.792", "1"]]
    h.feed({"type": "l2update", "product_id": "SKL-USD", "time": "x",
            "changes": [["sell", "0.7920", "0.5"], ["hold", "1", "1"]]})
    assert st.malformed == 1 and h.book("SKL-USD")["asks"] == [["0.792", "1"]]


def test_exchange_subscription_and_unknown_products():
    with pytest.raises(ConfigError, match="NOPE-USD"):
        CoinbaseExchange(_exchange_instruments(), {"NOPE-USD": BookTarget(None, None, 0, None)})
    h = Harness(CoinbaseExchange, _exchange_instruments(), ["SKL-USD"])
    assert [orjson.loads(m) for m in h.proto.subscribe_messages(["SKL-USD"])] == [
        {"type": "subscribe", "product_ids": ["SKL-USD"],
         "channels": ["level2_batch", "heartbeat"]}]
    h.feed({"type": "l2update", "product_id": "BTC-USD", "changes": [["buy", "1", "1"]]},
           {"type": "heartbeat", "sequence": 1, "last_trade_id": 2, "product_id": "SKL-USD",
            "time": "2021-04-17T16:44:07.8Z"})
    st = h.proto.stats
    assert st.unknown_symbol_frames == 1 and h.proto.heartbeats == 1 and st.ignored_frames == 1


@pytest.mark.parametrize("frame", [b'{"type": "l2update", "product_id": "SKL-', b"[1, 2]",
                                   b'{"type": "l2update", "changes": []}'])
def test_exchange_unreadable_frame_resyncs_every_book(frame):
    """No sequence numbers: a frame that may have been any book's update cannot be
    skipped quietly."""
    h = Harness(CoinbaseExchange, _exchange_instruments(), ["SKL-USD", "CRV-EUR"])
    for s in ("SKL-USD", "CRV-EUR"):
        h.feed({"type": "snapshot", "product_id": s, "bids": [["1.1", "1"]],
                "asks": [["1.2", "1"]]})
    h.feed(frame)
    st = h.proto.stats
    assert st.malformed_frames == 1 and st.reasons["unattributable book message"] == 2
    assert [h.book(s)["status"] for s in ("SKL-USD", "CRV-EUR")] == ["stale", "stale"]
    assert h.sent()[1] == {"type": "subscribe", "product_ids": ["SKL-USD", "CRV-EUR"],
                           "channels": ["level2_batch"]}


def test_a_book_whose_snapshot_never_comes_asks_for_a_reconnect():
    import time

    h = Harness(Coinbase, _at_instruments(), ["BTC-USD", "ETH-USD"])
    h.proto.snapshot_timeout = 0.05
    h.feed(_snapshot(0, "BTC-USD", [("100", "1")], [("101", "1")]))
    assert not h.proto.reconnect_requested
    time.sleep(0.1)
    h.feed(_fixture("coinbase_advanced_trade.json")["frames"][4] | {"sequence_num": 1})
    assert h.proto.reconnect_requested and h.proto.stats.reasons["snapshot timeout"] == 1
    assert set(h.proto.waiting) == set()   # asked once, not on every health check
    h.proto.on_disconnect()
    h.proto.on_connect()                    # a new connection starts the clock again
    assert set(h.proto.waiting) == {"BTC-USD", "ETH-USD"} and not h.proto.outbox
