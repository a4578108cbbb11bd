"""connectors.tardis: replay of tardis.dev incremental_book_L2 CSV files, checked against
an independent rebuild of the books with Decimal."""

from __future__ import annotations

import gzip
import time
from decimal import Decimal

import pytest

from connectors.tardis import replay_tardis

HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


def row(sym, lts, snap, side, price, amount, ex="binance"):
    return f"{ex},{sym},{lts - 50},{lts},{'true' if snap else 'false'},{side},{price},{amount}"


# BTCUSDT: snapshot, updates, deletes, then a second snapshot that resets the book;
# ETHUSDT interleaved, its snapshot spread over two timestamps.
ROWS = [
    row("BTCUSDT", 1_000_000, True, "bid", "100.5", "1.25"),
    row("BTCUSDT", 1_000_000, True, "bid", "100.4", "2"),
    row("BTCUSDT", 1_000_000, True, "bid", "99", "0.001"),
    row("BTCUSDT", 1_000_000, True, "ask", "100.6", "3"),
    row("BTCUSDT", 1_000_000, True, "ask", "101.25", "4.5"),
    row("ETHUSDT", 1_000_000, True, "bid", "10.01", "7"),
    row("ETHUSDT", 1_000_100, True, "ask", "10.02", "8"),
    row("BTCUSDT", 1_000_200, False, "bid", "100.5", "1.5"),      # change
    row("BTCUSDT", 1_000_200, False, "ask", "100.6", "0"),        # delete
    row("BTCUSDT", 1_000_200, False, "ask", "100.7", "0.00000001"),  # insert, 8 decimals
    row("ETHUSDT", 1_000_300, False, "bid", "10.015", "1"),
    row("ETHUSDT", 1_000_300, False, "bid", "10.01", "0"),
    row("BTCUSDT", 1_000_400, False, "bid", "98.123", "5"),
    row("BTCUSDT", 1_000_400, False, "bid", "98.123", "6"),       # same price twice: last wins
    row("BTCUSDT", 1_000_400, False, "ask", "555", "0"),          # delete of an absent level
]
RESET = [
    row("BTCUSDT", 1_000_500, True, "bid", "90", "1"),
    row("BTCUSDT", 1_000_500, True, "ask", "91", "2"),
    row("BTCUSDT", 1_000_600, False, "ask", "91.5", "3"),
]
MALFORMED = [
    "binance,BTCUSDT,1,2,true",                                        # too few fields
    row("BTCUSDT", 1_000_450, False, "middle", "1", "1"),              # bad side
    row("BTCUSDT", 1_000_450, False, "bid", "abc", "1"),               # bad price
    row("BTCUSDT", 1_000_450, False, "bid", "97", "-1"),               # negative amount
    row("BTCUSDT", 1_000_450, False, "bid", "97", "1.2.3"),            # bad amount
    "binance,BTCUSDT,x,1000450,false,bid,97,1",                        # bad timestamp
    "binance,BTCUSDT,1000400,1000450,maybe,bid,97,1",                  # bad is_snapshot
]


def reference(lines: list[str]) -> dict[str, dict]:
    """Independent rebuild: per book {"bids": {Decimal: Decimal}, "asks": ...}."""
    books: dict[str, dict] = {}
    in_snap: dict[str, bool] = {}
    for line in lines:
        f = line.split(",")
        if len(f) != 8:
            continue
        ex, sym, ts, lts, snap, side, price, amount = f
        if snap not in ("true", "false") or side not in ("bid", "ask") \
                or not ts.isdigit() or not lts.isdigit():
            continue
        try:
            p, a = Decimal(price), Decimal(amount)
        except ArithmeticError:
            continue
        if a < 0:
            continue
        key = f"{ex}:{sym}"
        book = books.setdefault(key, {"bids": {}, "asks": {}})
        is_snap = snap == "true"
        if is_snap and not in_snap.get(key, False):
            book["bids"].clear()
            book["asks"].clear()
        in_snap[key] = is_snap
        levels = book["bids" if side == "bid" else "asks"]
        if a == 0:
            levels.pop(p, None)
        else:
            levels[p] = a
    return books


def as_decimal(levels: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(s)) for p, s in levels]


def assert_books_match(result: dict, lines: list[str]) -> None:
    ref = reference(lines)
    assert set(result["books"]) == set(ref)
    for key, want in ref.items():
        got = result["books"][key]
        assert as_decimal(got["bids"]) == sorted(want["bids"].items(), reverse=True), key
        assert as_decimal(got["asks"]) == sorted(want["asks"].items()), key
        assert got["status"] == "live", key
        assert got["name"] == key


def write(tmp_path, lines, name="book.csv", gz=False):
    path = tmp_path / (name + (".gz" if gz else ""))
    data = ("\n".join([HEADER, *lines]) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_replay_matches_reference(tmp_path, gz):
    lines = ROWS + RESET
    res = replay_tardis(write(tmp_path, lines, gz=gz))
    assert_books_match(res, lines)
    assert res["malformed"] == 0
    assert res["truncated"] is False
    btc = res["books"]["binance:BTCUSDT"]
    assert btc["bids"] == [["90", "1"]]                 # the second snapshot reset it
    assert btc["asks"] == [["91", "2"], ["91.5", "3"]]
    assert btc["exch_ts"] == (1_000_600 - 50) * 1000    # exchange timestamp in ns
    assert res["books"]["binance:ETHUSDT"]["bids"] == [["10.015", "1"]]
    # messages: BTC 5 (snap, 200, 400, snap, 600), ETH 3 (snap at two timestamps, 300)
    assert res["messages"] == 8
    assert res["levels"] == len(lines)
    assert res["levels_per_s"] > 0 and res["seconds"] > 0


def test_before_first_snapshot_ends_and_prefix_states(tmp_path):
    # the file ends inside the first snapshot run: still live (end of file ends the run)
    res = replay_tardis(write(tmp_path, ROWS[:5]))
    assert res["books"]["binance:BTCUSDT"]["status"] == "live"
    assert_books_match(res, ROWS[:5])
    # every prefix matches the reference
    for k in (8, 10, 13, 15):
        lines = ROWS[:k]
        # prefixes cut inside ETH's snapshot are live too, by the same rule
        assert_books_match(replay_tardis(write(tmp_path, lines, name=f"p{k}.csv")), lines)


def test_malformed_rows_are_counted_and_skipped(tmp_path):
    lines = ROWS[:13] + MALFORMED + ROWS[13:] + RESET
    res = replay_tardis(write(tmp_path, lines, gz=True))
    assert res["malformed"] == len(MALFORMED)
    assert_books_match(res, lines)


def test_decimals_exact_and_out_of_range(tmp_path):
    lines = [
        row("X", 1000, True, "bid", "0.000000000000000001", "1"),   # 18 decimals: fine
        row("X", 1000, True, "ask", "2", "0.5"),
        row("X", 2000, False, "bid", "0.0000000000000000001", "1"),  # 19 decimals: rejected
        row("X", 2000, False, "ask", "3", "1"),
        row("Y", 1000, True, "bid", "1e-3", "25E-1"),                # exponent forms
        row("Y", 1000, True, "ask", "99999999999", "1"),
    ]
    res = replay_tardis(write(tmp_path, lines))
    assert res["malformed"] == 1
    assert_books_match(res, [ln for i, ln in enumerate(lines) if i != 2])
    x = res["books"]["binance:X"]
    assert x["bids"] == [["0.000000000000000001", "1"]]
    assert x["asks"] == [["2", "0.5"], ["3", "1"]]
    # Y's scale is 3 price / 1 size decimals, found through the exponents
    assert res["books"]["binance:Y"]["bids"] == [["0.001", "2.5"]]


def test_value_overflowing_the_scale_is_malformed(tmp_path):
    lines = [
        row("Z", 1000, True, "bid", "0.000000000000000001", "1"),
        row("Z", 1000, True, "ask", "100", "1"),   # 100 * 10**18 overflows int64
    ]
    res = replay_tardis(write(tmp_path, lines))
    assert res["malformed"] == 1
    assert res["books"]["binance:Z"]["bids"] == [["0.000000000000000001", "1"]]
    assert res["books"]["binance:Z"]["asks"] == []


def test_missing_header_raises(tmp_path):
    path = tmp_path / "nohdr.csv"
    path.write_text("\n".join(ROWS) + "\n")
    with pytest.raises(ValueError, match="header"):
        replay_tardis(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="header"):
        replay_tardis(empty)


def test_truncated_gzip(tmp_path):
    lines = ROWS * 50
    path = write(tmp_path, lines, gz=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    res = replay_tardis(path)
    assert res["truncated"] is True


def test_speed_paces_by_local_timestamp(tmp_path):
    # messages 0.3 s apart in local time: speed=10 must take >= ~0.06 s in total
    lines = [row("P", 1_000_000 + 100_000 * k, k == 0, "bid" if k % 2 else "ask",
                 str(100 + k), "1") for k in range(4)]
    path = write(tmp_path, lines)
    replay_tardis(path)  # warm up
    t = time.perf_counter()
    res = replay_tardis(path, speed=10)
    elapsed = time.perf_counter() - t
    assert elapsed >= 0.3 / 10 * 0.9
    assert res["messages"] == 4
    fast = replay_tardis(path, speed=None)
    assert fast["books"] == res["books"]


def test_progress_bar(tmp_path, capsys):
    lines = ROWS + RESET
    res = replay_tardis(write(tmp_path, lines, gz=True), progress=True)
    assert_books_match(res, lines)
    err = capsys.readouterr().err
    assert "tardis replay" in err and "tardis scan" in err
