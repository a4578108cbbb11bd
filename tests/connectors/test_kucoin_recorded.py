"""KuCoin recorded session (2021, ``/market/level2`` increments + ``/api/v3`` full REST
snapshots): replay through the connector and the engine; every recorded book live, no
gap, resync or malformed frame, and each book equal to a longhand rebuild following
KuCoin's documented calibration (json + Decimal + dicts)."""

import json
from decimal import Decimal

from connectors.kucoin import KuCoin
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = ["ANKR-BTC", "NRG-BTC", "BCHSV-USDT", "CAPP-BTC", "FET-BTC", "SNX-BTC", "DAPPT-BTC",
         "COV-BTC", "EQZ-BTC"]


def l2_updates():
    """(kind, payload) in time order: ('ws', data of a trade.l2update) or ('http', (url,
    body))."""
    for _, kind, payload in frames_and_rest("KUCOIN"):
        if kind == "http":
            yield kind, payload
            continue
        msg = json.loads(payload)
        if msg.get("subject") == "trade.l2update":
            yield kind, msg["data"]


def rebuild_kucoin(depth: int) -> dict[str, RefBook]:
    """Buffer increments until the symbol's snapshot; then drop every change whose
    sequence <= the book's, skip price-0 changes, and require each message to continue
    the previous one."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    buffered: dict[str, list[dict]] = {}

    def apply(sym: str, d: dict) -> None:
        if d["sequenceEnd"] <= last[sym]:
            return
        assert d["sequenceStart"] <= last[sym] + 1, "gap in the recording"
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for price, size, seq in d["changes"][key]:
                if int(seq) > last[sym] and Decimal(price) != 0:
                    books[sym].set(side, price, size)
        last[sym] = d["sequenceEnd"]

    for kind, payload in l2_updates():
        if kind == "ws":
            sym = payload["symbol"]
            if sym in books:
                apply(sym, payload)
            else:
                buffered.setdefault(sym, []).append(payload)
            continue
        url, body = payload
        sym = url.split("symbol=")[1]
        snap = json.loads(body)["data"]
        books[sym] = RefBook(depth)
        for p, q in snap["bids"]:
            books[sym].set("bid", p, q)
        for p, q in snap["asks"]:
            books[sym].set("ask", p, q)
        last[sym] = int(snap["sequence"])
        for d in buffered.pop(sym, []):
            apply(sym, d)
    return books


def test_recorded_kucoin_matches_reference():
    res = replay_session(need_recordings(), "KUCOIN")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    assert sorted(res.statuses) == sorted(BOOKS)
    ref = rebuild_kucoin(res.store.depth)
    assert set(ref) == set(BOOKS)
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 50 and len(book.levels()["asks"]) > 50, sym
        st = res.stats.symbols[sym]
        assert st.snapshots == 1 and st.messages > 1
    # the stream really moved the books past their snapshots
    assert res.stats.symbols["BCHSV-USDT"].messages > 1000
    assert res.level_updates > 8000


def test_recorded_calibration_cases_occur():
    """The recording exercises the calibration rule: increments older than the snapshot
    (dropped) and price-0 changes (sequence only)."""
    snap_seq: dict[str, int] = {}
    older = zero_price = 0
    for kind, payload in l2_updates():
        if kind == "http":
            url, body = payload
            snap_seq[url.split("symbol=")[1]] = int(json.loads(body)["data"]["sequence"])
            continue
        if payload["symbol"] not in snap_seq:
            older += 1
        for side in ("bids", "asks"):
            zero_price += sum(1 for c in payload["changes"][side] if Decimal(c[0]) == 0)
    assert older >= len(BOOKS) and zero_price > 100


def test_recorded_symbols_names_and_scales():
    """cryptofeed's BSV-USDT is KuCoin's BCHSV-USDT (display name); LTX-USDT has no
    level2 data in this copy; every number sent fits the instrument's scales."""
    session = load_session(need_recordings(), "KUCOIN")
    instruments = session_instruments(KuCoin, session)
    natives = session_symbols(KuCoin, session, instruments)
    assert "BCHSV-USDT" in natives and "LTX-USDT" in natives
    assert KuCoin.recorded_symbols(session, natives) == [n for n in natives if n != "LTX-USDT"]
    assert instruments["BCHSV-USDT"].unified == "BSV-USDT"
    checked = 0
    for kind, payload in l2_updates():
        if kind == "http":
            sym = payload[0].split("symbol=")[1]
            data = json.loads(payload[1])["data"]
            levels = data["bids"] + data["asks"]
        else:
            sym = payload["symbol"]
            levels = payload["changes"]["bids"] + payload["changes"]["asks"]
        inst = instruments[sym]
        for p, q, *_ in levels:
            assert decimals_for(p) <= inst.price_decimals, (sym, p)
            assert decimals_for(q) <= inst.size_decimals, (sym, q)
            checked += 1
    assert checked > 10000
