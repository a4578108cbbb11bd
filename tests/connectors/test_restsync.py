"""RestSnapshotProtocol: one REST snapshot request per book until it is answered or the
book is reset, and snapshot URLs that map back to their book (and only theirs)."""

import pytest

from connectors.binance import BinanceFutures, BinanceSpot
from connectors.bitstamp import Bitstamp
from connectors.gateio import GateIO
from connectors.kucoin import KuCoin
from connectors.mexc import MEXC
from connectors.okx import OKX
from connectors.restsync import RestSnapshotProtocol
from tests.connectors.harness import ProtocolHarness


class _State:
    def __init__(self) -> None:
        self.requested = False
        self.buffer: list = []


class _Venue(RestSnapshotProtocol):
    """The mixin with nothing of a real venue: a query URL with extra parameters."""

    exchange = "toy"
    rest_url = "https://rest.example"
    snapshot_path = "/v1/book"
    symbol_param = "pair"
    snapshot_params = "&depth={depth}&ids=1"
    recorded_snapshot_paths = ("/v0/fullbook",)
    sync_state = _State
    depth = 50

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return []


def toy(**overrides):
    cls = type("_Toy", (_Venue,), overrides) if overrides else _Venue
    return ProtocolHarness(cls, ["AB", "CD"], 2, 2).proto


def test_one_request_per_book_until_answered_or_reset():
    p = toy()
    for _ in range(5):            # every buffered diff of a book that is not live asks
        p.request_resync("AB")
    p.request_resync("CD")
    assert [(r.symbol, r.url) for r in p.rest_requests] == [
        ("AB", "https://rest.example/v1/book?pair=AB&depth=50&ids=1"),
        ("CD", "https://rest.example/v1/book?pair=CD&depth=50&ids=1")]
    assert all(r.kind == "snapshot" and r.method == "GET" for r in p.rest_requests)
    p.rest_requests.clear()

    p.sync["AB"].requested = False    # what on_snapshot does with a used/rejected answer
    p.request_resync("AB")
    p.request_resync("CD")            # still outstanding
    assert [r.symbol for r in p.rest_requests] == ["AB"]
    p.rest_requests.clear()

    old = p.sync["CD"]
    old.buffer.append("diff")
    p.reset_symbol("CD")
    assert p.sync["CD"] is not old and p.sync["CD"].buffer == []
    assert not p.sync["CD"].requested
    p.request_resync("CD")
    assert [r.symbol for r in p.rest_requests] == ["CD"]


def test_resync_always_asks_again():
    """resync() = mark stale + reset + request: each one queues a fresh request, even
    with an earlier one outstanding (its answer lands on a state that did not ask)."""
    p = toy()
    p.resync("AB", "test")
    p.resync("AB", "test")
    assert [r.symbol for r in p.rest_requests] == ["AB", "AB"]
    assert p.stats.sym("AB").resyncs == 2


def test_rest_symbol_maps_snapshot_urls_and_nothing_else():
    p = toy()
    assert p.rest_symbol(p.snapshot_url("AB")) == "AB"
    assert p.rest_symbol("https://rest.example/v0/fullbook?pair=CD") == "CD"
    assert p.rest_symbol("https://rest.example/v1/book?depth=5&pair=CD&x=1") == "CD"
    assert p.rest_symbol("https://rest.example/v1/book?depth=5") is None     # no pair
    assert p.rest_symbol("https://rest.example/v1/instruments?pair=AB") is None
    assert p.rest_symbol("https://rest.example/v1/book?symbol=AB") is None   # other key
    assert p.rest_symbol("https://rest.example/v1/book?pair=ab") == "ab"
    assert toy(upper_case_symbols=True).rest_symbol(
        "https://rest.example/v1/book?pair=ab&depth=1") == "AB"


# What each venue asked for before the mixin: the URLs must not change.
VENUES = [
    (BinanceSpot, "BTCUSDT", "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000"),
    (BinanceFutures, "BTCUSDT",
     "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"),
    (MEXC, "BTCUSDT", "https://api.mexc.com/api/v3/depth?symbol=BTCUSDT&limit=5000"),
    (GateIO, "BTC_USDT", "https://api.gateio.ws/api/v4/spot/order_book?currency_pair=BTC_USDT"
                         "&limit=100&with_id=true"),
    (KuCoin, "BTC-USDT",
     "https://api.kucoin.com/api/v1/market/orderbook/level2_100?symbol=BTC-USDT"),
    (OKX, "BTC-USDT",
     "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400&source=0"),
    (Bitstamp, "btcusd", "https://www.bitstamp.net/api/v2/order_book/btcusd/"),
]


@pytest.mark.parametrize("cls,symbol,url", VENUES, ids=[v[0].__name__ for v in VENUES])
def test_venue_snapshot_urls_round_trip(cls, symbol, url):
    p = ProtocolHarness(cls, [symbol], 2, 4).proto
    assert p.snapshot_url(symbol) == url
    assert p.rest_symbol(url) == symbol
    for inst_url in cls.instrument_urls():      # instrument lists are not snapshots
        assert p.rest_symbol(inst_url) is None
    p.reset_symbol(symbol)            # Bitstamp asks for its snapshots on connect
    p.rest_requests.clear()
    # OKX chooses between REST and resubscribing; the others always take REST
    ask = p.request_snapshot if cls is OKX else p.request_resync
    ask(symbol)
    ask(symbol)
    assert [r.url for r in p.rest_requests] == [url]
