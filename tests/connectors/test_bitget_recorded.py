"""Bitget recorded session (2022, the old spot/v1 ``books`` dialect with a checksum on
every message): replay through the connector and the engine; every checksum verified
(by the connector against Bitget's value and by the writer against the connector's
verified top 25) with zero mismatches, the counts equal to one taken from the raw
frames, and the books equal to a longhand reference rebuild that checks Bitget's
checksum itself (json + Decimal + zlib)."""

import json
import zlib
from decimal import Decimal

import pytest

import connectors
from connectors.bitget import Bitget
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """connectors.RECORDINGS maps BITGET to Bitget; keep that true for these tests even
    while the shared registry is being edited by others."""
    monkeypatch.setitem(connectors.RECORDINGS, "BITGET", "connectors.bitget:Bitget")


BOOKS = ["EOSUSDT", "GOGUSDT", "VVSUSDT", "AVAXUSDT", "CULTUSDT", "HOTUSDT", "SUNUSDT",
         "STGUSDT"]


def book_entries():
    """(instId, action, entry) of every ``books`` frame in the recording, in order."""
    for _, kind, payload in frames_and_rest("BITGET"):
        if kind != "ws" or payload in ("pong", b"pong"):
            continue
        msg = json.loads(payload)
        if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
            for entry in msg["data"]:
                yield msg["arg"]["instId"], msg["action"], entry


def crc_signed(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - 2**32 if crc >= 2**31 else crc


def checksum_of(texts: dict, book: RefBook, shortest: bool = False) -> int:
    """Bitget's rule on the reference book: top 25 interleaved, numbers as sent (or, to
    show that it is not the rule, in shortest form)."""
    levels = book.levels()
    bids, asks = levels["bids"][:25], levels["asks"][:25]
    parts = []
    for i in range(25):
        for name, side in (("bid", bids), ("ask", asks)):
            if i < len(side):
                price = side[i][0]
                if shortest:
                    parts += [format(price.normalize(), "f"),
                              format(side[i][1].normalize(), "f")]
                else:
                    parts += list(texts[name][price])
    return crc_signed(":".join(parts))


def rebuild_bitget(depth: int):
    """The documented merge, longhand; returns the books, how many checksums the
    reference matched with texts as sent, and how many it would match in shortest form."""
    books: dict[str, RefBook] = {}
    texts: dict[str, dict] = {}
    matched = shortest = 0
    for inst, action, entry in book_entries():
        if action == "snapshot":
            books[inst] = RefBook(depth)
            texts[inst] = {"bid": {}, "ask": {}}
        for name, key in (("bid", "bids"), ("ask", "asks")):
            for p, q in entry[key]:
                books[inst].set(name, p, q)
                texts[inst][name][Decimal(p)] = (p, q)
        assert checksum_of(texts[inst], books[inst]) == entry["checksum"], inst
        matched += 1
        shortest += checksum_of(texts[inst], books[inst], True) == entry["checksum"]
    return books, matched, shortest


def test_recorded_bitget_matches_reference():
    res = replay_session(need_recordings(), "BITGET")
    assert res.ok, res.summary()
    assert res.symbols == BOOKS
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    entries = list(book_entries())
    with_checksum = sum(1 for _, _, e in entries if e.get("checksum"))
    assert with_checksum == len(entries) == 443
    assert res.checksums_ok == with_checksum and res.checksums_failed == 0
    proto_ok = sum(s.checksum_failures for s in res.stats.symbols.values())
    assert proto_ok == 0
    ref, matched, shortest = rebuild_bitget(res.depth)
    assert matched == with_checksum
    assert shortest == 0   # why the engine's CK_OKX cannot check Bitget's value directly
    got = res.books_dict()
    assert set(ref) == set(BOOKS)
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 50 and res.stats.symbols[sym].snapshots == 1


def test_connector_verifies_every_venue_checksum():
    """The connector's own count of Bitget checksums verified (the shadow book) equals
    the frames' count; with verification off nothing is checked and books still match."""
    import connectors.replay as replay

    seen = []
    real = Bitget.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        seen.append(self)

    Bitget.__init__ = spy
    try:
        res = replay.replay_session(need_recordings(), "BITGET")
        off = replay.replay_session(need_recordings(), "BITGET", verify_checksums=False)
    finally:
        Bitget.__init__ = real
    assert seen[0].venue_checksums_ok == 443 and seen[1].venue_checksums_ok == 0
    assert off.checksums_ok == 0 and off.ok
    assert off.books_dict() == res.books_dict()


def test_recorded_symbols_scales_and_padding():
    """The configuration names two perpetuals this session never subscribed; the spot
    books it has map to natives.  Bitget pads numbers to the instrument precision, so
    the book's decimals are exactly the wire decimals (deletes are a bare "0")."""
    session = load_session(need_recordings(), "BITGET")
    instruments = session_instruments(Bitget, session)
    natives = session_symbols(Bitget, session, instruments)
    assert "DASHUSDT_UMCBL" in natives and "UNIUSDT_UMCBL" in natives
    assert Bitget.recorded_symbols(session, natives) == BOOKS
    assert instruments["DASHUSDT_UMCBL"].unified == "DASH-USDT-PERP"
    assert instruments["DASHUSDT_UMCBL"].kind == "perp"
    assert (instruments["CULTUSDT"].price_decimals, instruments["CULTUSDT"].size_decimals) \
        == (8, 0)
    seen = 0
    for inst, _, entry in book_entries():
        ins = instruments[inst]
        for p, q in entry["bids"] + entry["asks"]:
            assert len(p.partition(".")[2]) == ins.price_decimals, (inst, p)
            if q != "0":
                assert len(q.partition(".")[2]) == ins.size_decimals, (inst, q)
            seen += 1
    assert seen > 30000
