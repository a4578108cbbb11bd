"""OKX recorded session (2022, ``books`` with checksums, no seqId): replay through the
connector and the engine; every non-zero checksum verified with zero mismatches, the
count equal to one taken from the raw frames, and the books equal to a longhand
reference rebuild that checks OKX's checksum itself (json + Decimal + zlib)."""

import json
import zlib
from decimal import Decimal

import pytest

from connectors.okx import OKX, OKXInstrument
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = ["BTC-USD-220527", "UNI-USD-SWAP"]


def book_entries():
    """(instId, action, entry) of every ``books`` frame in the recording, in order."""
    for _, kind, payload in frames_and_rest("OKX"):
        if kind != "ws" or payload in ("pong", b"pong"):
            continue
        msg = json.loads(payload)
        if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
            for entry in msg["data"]:
                yield msg["arg"]["instId"], msg["action"], entry


def okx_text(d: Decimal) -> str:
    """Shortest decimal text: what OKX writes, per the checks below."""
    return format(d.normalize(), "f")


def reference_checksum(book: RefBook) -> int:
    levels = book.levels()
    bids, asks = levels["bids"][:25], levels["asks"][:25]
    parts = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                parts += [okx_text(side[i][0]), okx_text(side[i][1])]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def rebuild_okx(depth: int) -> tuple[dict[str, RefBook], int]:
    """OKX's documented merge, longhand; returns the books and how many non-zero
    checksums the reference itself matched."""
    books: dict[str, RefBook] = {}
    matched = 0
    for inst, action, entry in book_entries():
        if action == "snapshot":
            books[inst] = RefBook(depth)
        for p, q, *_ in entry["bids"]:
            books[inst].set("bid", p, q)
        for p, q, *_ in entry["asks"]:
            books[inst].set("ask", p, q)
        if entry["checksum"]:
            assert reference_checksum(books[inst]) == entry["checksum"], inst
            matched += 1
    return books, matched


def test_recorded_okx_matches_reference():
    res = replay_session(need_recordings(), "OKX", symbols=BOOKS)
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    entries = list(book_entries())
    nonzero = sum(1 for inst, _, e in entries if inst in BOOKS and e["checksum"] != 0)
    assert nonzero == 192 == len(entries)       # 2022: every message carries one
    assert res.checksums_ok == nonzero and res.checksums_failed == 0
    ref, matched = rebuild_okx(res.store.depth)
    assert matched == nonzero
    got = res.books_dict()
    assert set(ref) == set(BOOKS)
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 50     # real depth, not a trivial book
    assert res.stats.symbols["BTC-USD-220527"].snapshots == 1


def test_recorded_symbols_and_removed_book():
    """The configuration's cryptofeed names map to natives; BTC-USDT's book frames are
    not in this copy of the recording (README: some symbols were removed), so the replay
    follows only the books the recording has data for."""
    session = load_session(need_recordings(), "OKX")
    instruments = session_instruments(OKX, session)
    assert session_symbols(OKX, session, instruments) == BOOKS + ["BTC-USDT"]
    assert "BTC-USDT" not in {inst for inst, _, _ in book_entries()}
    assert OKX.recorded_symbols(session, BOOKS + ["BTC-USDT"]) == BOOKS
    res = replay_session(need_recordings(), "OKX")
    assert res.statuses == {"BTC-USD-220527": "live", "UNI-USD-SWAP": "live"} and res.ok


def test_okx_sends_shortest_numbers_within_the_instrument_scales():
    """CK_OKX renders the book's numbers in shortest form; that is only OKX's checksum if
    OKX writes them that way.  Also: no level is finer than tickSz / lotSz, and the
    instrument scales hold every decimal sent."""
    instruments = session_instruments(OKX, load_session(need_recordings(), "OKX"))
    seen = 0
    for inst, _, entry in book_entries():
        ins = instruments[inst]
        for p, q, *_ in entry["bids"] + entry["asks"]:
            for text, step, dec in ((p, ins.tick, ins.price_decimals),
                                    (q, ins.lot, ins.size_decimals)):
                assert text == okx_text(Decimal(text)), text
                assert Decimal(text) % Decimal(step) == 0, (inst, text, step)
                assert decimals_for(text) <= dec
                seen += 1
    assert seen > 6000


@pytest.mark.parametrize("native,unified,kind,pdec,sdec,ct_val", [
    ("BTC-USDT", "BTC-USDT", "spot", 3, 10, ""),
    ("UNI-USD-SWAP", "UNI-USD-PERP", "perp", 5, 2, "10"),
    ("BTC-USD-220527", "BTC-USD-20220527", "future", 3, 2, "100"),
    ("BTC-USD-220514-22000-C", "BTC-USD-20220514-22000-C", "option", 6, 2, "1"),
])
def test_recorded_instruments(native, unified, kind, pdec, sdec, ct_val):
    instruments = session_instruments(OKX, load_session(need_recordings(), "OKX"))
    inst = instruments[native]
    assert isinstance(inst, OKXInstrument)
    assert (inst.unified, inst.kind, inst.ct_val) == (unified, kind, ct_val)
    # the tick / lot decimals plus two of headroom for a finer tick mid-session
    assert (inst.price_decimals, inst.size_decimals) == (pdec, sdec)
    assert OKX.native_from_recording("BTC-USD-22K27", instruments) == "BTC-USD-220527"
