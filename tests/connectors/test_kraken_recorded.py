"""Kraken recorded session (WebSocket v1 ``book-1000``): replay through the connector and
the engine; every book live, every one of Kraken's checksums verified, no gap, resync
or malformed frame, and the final books equal to a longhand reference rebuild (which
checks every checksum itself, from the strings as sent)."""

import json
import zlib
from decimal import Decimal

from connectors.kraken import V1_PRICE_DECIMALS, KrakenV1
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from tests.connectors.reference import (
    RefBook,
    as_decimal_levels,
    frames_and_rest,
    need_recordings,
)


def recorded_book_frames() -> list[list]:
    """The v1 book frames of the recording, decoded with plain json."""
    out = []
    for _, kind, payload in frames_and_rest("KRAKEN"):
        if kind != "ws":
            continue
        msg = json.loads(payload)
        if isinstance(msg, list) and msg[-2].startswith("book"):
            out.append(msg)
    return out


def _text(d: Decimal) -> str:
    return format(d, "f").replace(".", "").lstrip("0")


def reference_checksum(book: RefBook) -> int:
    """Kraken's documented recipe on the reference book (Decimals keep the decimals of
    the strings they came from)."""
    lv = book.levels()
    text = "".join(_text(p) + _text(q) for p, q in lv["asks"][:10])
    text += "".join(_text(p) + _text(q) for p, q in lv["bids"][:10])
    return zlib.crc32(text.encode())


def cut(book: RefBook, depth: int) -> None:
    """Kraken's rule: after each message, keep the best ``depth`` levels per side."""
    for side, worst in ((book.bids, min), (book.asks, max)):
        while len(side) > depth:
            del side[worst(side)]


def rebuild_kraken_v1(depth: int) -> tuple[dict[str, RefBook], int]:
    """Snapshot, then each update in array order; returns the books and the number of
    checksums verified (each one must match)."""
    books: dict[str, RefBook] = {}
    verified = 0
    for msg in recorded_book_frames():
        pair, parts = msg[-1], msg[1:-2]
        if "as" in parts[0] or "bs" in parts[0]:
            books[pair] = RefBook()
            for price, size, *_ in parts[0].get("as", []):
                books[pair].set("ask", price, size)
            for price, size, *_ in parts[0].get("bs", []):
                books[pair].set("bid", price, size)
            cut(books[pair], depth)
            continue
        checksum = None
        for part in parts:
            for price, size, *_ in part.get("a", []):
                books[pair].set("ask", price, size)
            for price, size, *_ in part.get("b", []):
                books[pair].set("bid", price, size)
            checksum = part.get("c", checksum)
        cut(books[pair], depth)
        assert reference_checksum(books[pair]) == int(checksum), (pair, msg)
        verified += 1
    return books, verified


def test_recorded_kraken_v1_matches_reference():
    frames = recorded_book_frames()
    pairs = sorted({m[-1] for m in frames})
    # the configuration names 10 pairs; this copy of the recording keeps data for 5
    session = load_session(need_recordings(), "KRAKEN")
    assert len(session.config["l2_book"]) == 10 and len(pairs) == 5
    checksums = sum(1 for m in frames for part in m[1:-2] if "c" in part)
    assert checksums > 1500

    res = replay_session(need_recordings(), "KRAKEN")
    assert sorted(res.symbols) == pairs
    assert res.ok, res.summary()
    assert res.checksums_ok == checksums and res.checksums_failed == 0
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    assert res.stats.unknown_symbol_frames == 0 and res.stats.malformed_frames == 0

    ref, verified = rebuild_kraken_v1(res.store.depth)
    assert verified == checksums
    got = res.books_dict()
    assert set(ref) == set(pairs)
    for pair, book in ref.items():
        assert as_decimal_levels(got[pair]) == book.levels(), pair
    assert max(len(b.levels()["bids"]) for b in ref.values()) > 500  # real depth


def test_recorded_names_and_scales():
    """Unified names of the recording's configuration map to v1 pairs, and the scales
    equal the decimals Kraken wrote (prices often have more than pair_decimals)."""
    session = load_session(need_recordings(), "KRAKEN")
    instruments = session_instruments(KrakenV1, session)
    natives = session_symbols(KrakenV1, session, instruments)
    assert natives[session.config["l2_book"].index("BTC-CHF")] == "XBT/CHF"
    assert natives[session.config["l2_book"].index("KSM-BTC")] == "KSM/XBT"
    assert instruments["XBT/CHF"].unified == "BTC-CHF"
    wire = KrakenV1.wire_decimals(f.data for c in session.connections for f in c.frames)
    assert set(wire) == {"ADA/XBT", "XBT/CHF", "OCEAN/XBT", "SC/EUR", "GRT/ETH"}
    for pair, (pdec, sdec) in wire.items():
        inst = instruments[pair]
        assert (inst.price_decimals, inst.size_decimals) == (pdec, sdec), pair
        assert V1_PRICE_DECIMALS[pair] == pdec
    assert instruments["XBT/CHF"].price_decimals == 5  # pair_decimals says 1
