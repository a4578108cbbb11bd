"""Consolidated BBO across venues: property tests against a brute-force definition."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hftbook.consolidate import Quote, consolidate

VENUES = ["binance", "okx", "kraken", "coinbase", "bybit"]
SYMBOLS = ["BTC-USDT", "ETH-USDT", "BTC-USDT-PERP"]


@st.composite
def quotes(draw):
    out = []
    for ex in draw(st.lists(st.sampled_from(VENUES), unique=True, max_size=5)):
        for sym in draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=3)):
            pd = draw(st.integers(0, 8))
            sd = draw(st.integers(0, 8))
            bid = draw(st.none() | st.integers(1, 10**6))
            ask = draw(st.none() | st.integers(1, 10**6))
            out.append(Quote(ex, sym, bid, draw(st.integers(1, 10**6)), ask,
                             draw(st.integers(1, 10**6)), pd, sd, live=draw(st.booleans())))
    return out


def px(v, d):
    return Decimal(v) / Decimal(10) ** d


@given(quotes(), st.randoms())
def test_consolidated_bbo_is_the_best_live_quote(qs, rnd):
    cons = consolidate(qs)
    live = [q for q in qs if q.live]
    assert set(cons) == {q.unified for q in live}
    for sym, c in cons.items():
        mine = [q for q in live if q.unified == sym]
        assert c.venues == len({q.exchange for q in mine})
        bids = [(px(q.bid_px, q.price_decimals), q) for q in mine if q.bid_px is not None]
        asks = [(px(q.ask_px, q.price_decimals), q) for q in mine if q.ask_px is not None]
        if bids:
            best = max(p for p, _ in bids)
            assert c.bid == best
            at = [q for p, q in bids if p == best]
            assert set(c.bid_venues) == {q.exchange for q in at}
            assert c.bid_size == sum(px(q.bid_sz, q.size_decimals) for q in at)
        else:
            assert c.bid is None and c.bid_venues == ()
        if asks:
            best = min(p for p, _ in asks)
            assert c.ask == best
            at = [q for p, q in asks if p == best]
            assert set(c.ask_venues) == {q.exchange for q in at}
        else:
            assert c.ask is None and c.ask_venues == ()
        if c.bid is not None and c.ask is not None:
            assert c.spread == c.ask - c.bid
            assert c.crossed == (c.bid >= c.ask)
            assert c.mid == (c.bid + c.ask) / 2
        else:
            assert c.spread is None and not c.crossed
    shuffled = list(qs)
    rnd.shuffle(shuffled)
    assert consolidate(shuffled) == cons, "the venues' order must not matter"


def test_equal_prices_with_different_decimals_tie_and_sizes_add():
    qs = [Quote("binance", "BTC-USDT", 6500010, 5, 6500020, 1, 2, 1),          # 65000.10
          Quote("okx", "BTC-USDT", 650001, 3, 650003, 2, 1, 0),                # 65000.1
          Quote("kraken", "BTC-USDT", 650002, 1, 650002, 1, 1, 0, live=False)]  # stale
    c = consolidate(qs)["BTC-USDT"]
    assert c.bid == Decimal("65000.1") and c.bid_venues == ("okx", "binance")  # bigger first
    assert c.bid_size == Decimal("3.5")
    assert c.ask == Decimal("65000.2") and c.ask_venues == ("binance",)
    assert c.spread == Decimal("0.1") and not c.crossed and c.venues == 2


def test_a_cross_venue_cross_is_flagged():
    qs = [Quote("a", "X", 101, 1, 102, 1, 0, 0), Quote("b", "X", 99, 1, 100, 1, 0, 0)]
    c = consolidate(qs)["X"]
    assert (c.bid, c.bid_venues, c.ask, c.ask_venues) == (101, ("a",), 100, ("b",))
    assert c.crossed and c.spread == -1
