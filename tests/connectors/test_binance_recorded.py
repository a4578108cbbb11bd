"""Binance spot and USD-M futures recorded sessions: replay through the connector and
the engine; every book live, no gaps, and equal to a longhand reference rebuild."""

import pytest

from connectors.replay import replay_session
from tests.connectors.reference import as_decimal_levels, need_recordings, rebuild_binance


@pytest.mark.parametrize("recording,futures", [("BINANCE", False), ("BINANCE_FUTURES", True)])
def test_recorded_binance_matches_reference(recording, futures):
    res = replay_session(need_recordings(), recording)
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    ref = rebuild_binance(recording, futures, res.store.depth)
    assert set(ref) == set(res.symbols) and len(ref) == 4
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 50  # real depth, not a trivial book
