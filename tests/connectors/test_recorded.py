"""Tests for connectors.recorded against the real recorded sessions and synthetic files."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.recorded import (
    Configuration,
    Connect,
    Connection,
    Frame,
    HttpResponse,
    RecordFormatError,
    Sent,
    Session,
    list_sessions,
    load_session,
    parse_line,
    read_records,
    session_events,
)

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "recorded"
CRYPTOFEED = RECORDED / "cryptofeed"

# exchange: (connections, frames received, sent frames, http snapshots, instrument responses)
# measured independently with grep on the recorded files.
SESSIONS = {
    "ASCENDEX": (1, 313, 14, 0, 1),
    "BINANCE": (1, 265, 0, 4, 1),
    "BINANCE_FUTURES": (1, 1535, 0, 4, 1),
    "BIT.COM": (2, 1184, 6, 0, 3),
    "BITFINEX": (1, 1693, 22, 0, 3),
    "BITFLYER": (1, 1103, 40, 0, 6),
    "BITGET": (1, 684, 1, 0, 3),
    "BITMEX": (1, 2120, 3, 0, 1),
    "BITSTAMP": (1, 747, 20, 10, 1),
    "BYBIT": (1, 3342, 16, 0, 1),
    "COINBASE": (1, 6641, 3, 0, 1),
    "DELTA": (1, 320, 1, 0, 1),
    "DERIBIT": (1, 136, 1, 0, 4),
    "DYDX": (1, 4733, 20, 0, 1),
    "GATEIO": (1, 239, 22, 10, 1),
    "GEMINI": (1, 212, 1, 0, 72),
    "HITBTC": (1, 800, 40, 0, 1),
    "HUOBI": (1, 362, 26, 0, 1),
    "KRAKEN": (3, 1752, 3, 0, 1),
    "KRAKEN_FUTURES": (1, 7175, 3, 0, 1),
    "KUCOIN": (1, 4721, 13, 9, 1),
    "OKX": (1, 212, 3, 0, 25),
    "PHEMEX": (2, 1448, 30, 0, 1),
    "POLONIEX": (1, 302, 2, 0, 1),
    "UPBIT": (1, 449, 1, 0, 1),
}

# file: Counter of record kinds, for a few files (grep -c on the line prefixes).
FILE_COUNTS = {
    "BINANCE.ws.1.0": {"Connect": 1, "Frame": 265},
    "BINANCE.http.0.0": {"HttpResponse": 4},
    "BINANCE.0": {"HttpResponse": 1, "Configuration": 1},
    "HUOBI.ws.44.0": {"Connect": 1, "Sent": 26, "Frame": 362},
    "KRAKEN.ws.50.0": {"Connect": 1, "Sent": 1, "Frame": 1664},
    "UPBIT.ws.62.0": {"Connect": 1, "Sent": 1, "Frame": 449},
    "KUCOIN.http.0.0": {"HttpResponse": 9},
    "OKX.0": {"HttpResponse": 25, "Configuration": 1},
    "GEMINI.0": {"HttpResponse": 72, "Configuration": 1},
}


def _data_files() -> list[Path]:
    if not CRYPTOFEED.is_dir():
        return []
    return sorted(p for p in CRYPTOFEED.iterdir() if p.name not in ("LICENSE", "README.md"))


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not CRYPTOFEED.is_dir():
        pytest.skip(f"recorded sessions not found at {CRYPTOFEED}")
    return CRYPTOFEED


@pytest.fixture(scope="module")
def sessions(data_dir: Path) -> dict[str, Session]:
    return {name: load_session(data_dir, name) for name in list_sessions(data_dir)}


# --- real data -------------------------------------------------------------------------------


def test_list_sessions(data_dir: Path) -> None:
    assert list_sessions(data_dir) == sorted(SESSIONS)


@pytest.mark.parametrize("path", _data_files() or [None], ids=lambda p: p.name if p else "none")
def test_every_file_parses(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"recorded sessions not found at {CRYPTOFEED}")
    records = list(read_records(path))
    kinds = Counter(type(r).__name__ for r in records)
    if ".ws." in path.name:
        assert isinstance(records[0], Connect) and kinds["Connect"] == 1
        assert kinds["Frame"] > 30 and set(kinds) <= {"Connect", "Sent", "Frame"}
        ts = [r.ts for r in records]
        assert ts == sorted(ts)
    elif ".http." in path.name:
        assert set(kinds) == {"HttpResponse"}
    else:
        assert kinds["Configuration"] == 1 and kinds["HttpResponse"] >= 1
        assert set(kinds) == {"HttpResponse", "Configuration"}
    if path.name in FILE_COUNTS:
        assert kinds == Counter(FILE_COUNTS[path.name])


def test_session_counts(sessions: dict[str, Session]) -> None:
    measured = {
        name: (
            len(s.connections),
            sum(len(c.frames) for c in s.connections),
            sum(len(c.sent) for c in s.connections),
            len(s.http),
            len(s.instrument_responses),
        )
        for name, s in sessions.items()
    }
    assert measured == SESSIONS


def test_connections_ordered_numerically(sessions: dict[str, Session]) -> None:
    kraken = sessions["KRAKEN"].connections
    assert [c.file for c in kraken] == ["KRAKEN.ws.48.0", "KRAKEN.ws.49.0", "KRAKEN.ws.50.0"]
    assert [c.url for c in kraken] == ["wss://ws.kraken.com"] * 3
    assert [json.loads(c.sent[0].text)["subscription"]["name"] for c in kraken] == [
        "trade",
        "ticker",
        "book",
    ]
    assert [c.file for c in sessions["BIT.COM"].connections] == ["BIT.COM.ws.1.0", "BIT.COM.ws.2.0"]
    for s in sessions.values():
        for c in s.connections:
            assert c.opened_ts <= c.frames[0].ts


def test_huobi_frames_are_gzipped_json(sessions: dict[str, Session]) -> None:
    kinds = Counter()
    for frame in sessions["HUOBI"].connections[0].frames:
        assert isinstance(frame.data, bytes) and frame.data[:2] == b"\x1f\x8b"
        msg = json.loads(gzip.decompress(frame.data))
        kinds[next(k for k in ("ch", "ping", "subbed") if k in msg)] += 1
    # 20 of the frames are subscription acks, neither "ch" nor "ping".
    assert kinds == {"ch": 336, "ping": 6, "subbed": 20}


def test_upbit_frames_are_json_bytes(sessions: dict[str, Session]) -> None:
    types = Counter()
    for frame in sessions["UPBIT"].connections[0].frames:
        assert isinstance(frame.data, bytes)
        types[json.loads(frame.data)["ty"]] += 1
    assert types == {"trade": 304, "orderbook": 145}


def test_only_huobi_and_upbit_send_binary(sessions: dict[str, Session]) -> None:
    binary = {
        name
        for name, s in sessions.items()
        for c in s.connections
        for f in c.frames
        if isinstance(f.data, bytes)
    }
    assert binary == {"HUOBI", "UPBIT"}


@pytest.mark.parametrize("exchange", ["BINANCE", "BINANCE_FUTURES"])
def test_binance_http_snapshots(sessions: dict[str, Session], exchange: str) -> None:
    http = sessions[exchange].http
    assert [r.ts for r in http] == sorted(r.ts for r in http)
    for r in http:
        assert "/depth?symbol=" in r.url
        book = json.loads(r.body)
        assert isinstance(book["lastUpdateId"], int) and book["bids"] and book["asks"]


def test_configurations(sessions: dict[str, Session]) -> None:
    for name, s in sessions.items():
        assert isinstance(s.config, dict), name
        assert s.config["l2_book"], name
        assert all(isinstance(v, list) for v in s.config.values()), name
    assert sessions["BINANCE"].config["l2_book"] == ["NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"]


def test_session_events_chronological(sessions: dict[str, Session]) -> None:
    for name, s in sessions.items():
        events = list(session_events(s))
        assert len(events) == SESSIONS[name][1] + SESSIONS[name][3]
        assert all(a.ts <= b.ts for a, b in pairwise(events)), name
        next_http, next_frame = 0, [0] * len(s.connections)
        for ts, source, conn, record in events:  # each stream keeps its recorded order
            assert record.ts == ts
            if source == "http":
                assert conn is None and record is s.http[next_http]
                next_http += 1
            else:
                assert source == "ws" and record is s.connections[conn].frames[next_frame[conn]]
                next_frame[conn] += 1
    # Bitstamp: all ten snapshots were fetched before the first diff frame arrived.
    sources = [e.source for e in session_events(sessions["BITSTAMP"])]
    assert sources[:10] == ["http"] * 10 and "http" not in sources[10:]


# --- synthetic -------------------------------------------------------------------------------


def test_session_events_ties_http_first() -> None:
    def conn(i: int, *ts: float) -> Connection:
        return Connection("wss://x", 0.0, [], [Frame(t, f"c{i}@{t}") for t in ts], f"X.ws.{i}.0")

    snap = HttpResponse("https://x/depth", 2.0, "{}")
    s = Session("X", None, [], [snap], [conn(0, 1.0, 2.0, 3.0), conn(1, 2.0, 2.5)])
    got = [(e.ts, e.source, e.conn) for e in session_events(s)]
    assert got == [
        (1.0, "ws", 0),
        (2.0, "http", None),
        (2.0, "ws", 0),
        (2.0, "ws", 1),
        (2.5, "ws", 1),
        (3.0, "ws", 0),
    ]


def test_line_kinds() -> None:
    assert parse_line("") is None
    assert parse_line("wss://ws.kraken.com <-> 1618678132.3858151") == Connect(
        "wss://ws.kraken.com", 1618678132.3858151
    )
    assert parse_line('wss://a:443/ws <- 12.5: {"op":"sub"}') == Sent(
        "wss://a:443/ws", 12.5, '{"op":"sub"}'
    )
    assert parse_line("https://h/depth?s=X&l=5 -> 13.25: {}") == HttpResponse(
        "https://h/depth?s=X&l=5", 13.25, "{}"
    )
    assert parse_line('configuration: {"l2_book": ["A-B"]}') == Configuration({"l2_book": ["A-B"]})
    assert parse_line("14.5: ") == Frame(14.5, "")
    assert parse_line("15: [1,2]") == Frame(15.0, "[1,2]")


@pytest.mark.parametrize(
    "text",
    [
        '{"url":"wss://x -> 1.0: y"}',
        '{"a":"wss://x <- 2.0: z"}',
        '{"a":"wss://x <-> 3.0"}',
        "wss://x <-> 3.0",
        "https://x -> 4.0: {}",
    ],
)
def test_frame_text_containing_arrows_is_a_frame(text: str) -> None:
    assert parse_line(f"1618678132.8258188: {text}") == Frame(1618678132.8258188, text)


def test_sent_text_containing_arrows_is_sent() -> None:
    rec = parse_line('wss://x <- 1.5: {"a":"wss://y -> 2.0: {}"}')
    assert rec == Sent("wss://x", 1.5, '{"a":"wss://y -> 2.0: {}"}')


@given(st.binary(max_size=300))
def test_bytes_literal_round_trip(data: bytes) -> None:
    assert parse_line(f"7.5: {data!r}") == Frame(7.5, data)


def test_bytes_literal_non_canonical_and_double_quoted() -> None:
    assert parse_line(r"1.0: b'\x4A\101\''") == Frame(1.0, b"JA'")
    assert parse_line('1.0: b"it\'s"') == Frame(1.0, b"it's")


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "   ",
        "123abc: x",
        "12.5 {}",
        "wss://x <-> notats",
        "wss://x <-> 1.0: extra",
        "wss://x <- 1.0 no-colon",
        "wss://x => 1.0: y",
        "1.0: b'unterminated",
        "1.0: b'a' + b'b'",
        "1.0: b'\\xZZ'",
        "1.0: b'caf\u00e9'",
        "configuration: [1, 2]",
        "configuration: {bad",
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "X.ws.1.0"
    path.write_text(f"wss://x <-> 1.0\n{line}\n2.0: {{}}\n", encoding="utf-8")
    with pytest.raises(RecordFormatError) as info:
        list(read_records(path))
    assert info.value.path == str(path) and info.value.lineno == 2
    assert f"{path}:2:" in str(info.value)
    with pytest.raises(ValueError):
        parse_line(line)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "X.ws.1.0"
    path.write_bytes(b"wss://x <-> 1.0\n1.0: {}\n2.0: \xff\xfe\n")
    with pytest.raises(RecordFormatError, match=r"X\.ws\.1\.0:3: not UTF-8"):
        list(read_records(path))


def test_load_session_synthetic(tmp_path: Path) -> None:
    files = {
        "EX.CO.0": 'https://i -> 1.0: {"symbols":[]}\nconfiguration: {"l2_book":["A-B"]}\n',
        "EX.CO.http.1.0": "https://d?b -> 5.0: {}\n",
        "EX.CO.http.0.0": "https://d?a -> 3.0: {}\nhttps://d?c -> 6.0: {}\n",
        "EX.CO.ws.10.0": "wss://b <-> 2.0\n4.0: ten\n",
        "EX.CO.ws.2.0": "wss://a <-> 1.5\nwss://a <- 1.6: sub\n3.0: two\n",
        "EX.CO_FUT.ws.1.0": "wss://other <-> 1.0\n2.0: x\n",
        "EX.ws.1.0": "wss://plain <-> 1.0\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "LICENSE").write_text("not a session\n")

    assert list_sessions(tmp_path) == ["EX", "EX.CO", "EX.CO_FUT"]
    s = load_session(tmp_path, "EX.CO")
    assert s.exchange == "EX.CO" and s.config == {"l2_book": ["A-B"]}
    assert [r.url for r in s.instrument_responses] == ["https://i"]
    assert [r.url for r in s.http] == ["https://d?a", "https://d?b", "https://d?c"]
    assert [(c.file, c.url, c.opened_ts) for c in s.connections] == [
        ("EX.CO.ws.2.0", "wss://a", 1.5),
        ("EX.CO.ws.10.0", "wss://b", 2.0),
    ]
    assert s.connections[0].sent == [Sent("wss://a", 1.6, "sub")]
    assert [(e.source, e.conn, e.ts) for e in session_events(s)] == [
        ("http", None, 3.0),
        ("ws", 0, 3.0),
        ("ws", 1, 4.0),
        ("http", None, 5.0),
        ("http", None, 6.0),
    ]
    plain = load_session(tmp_path, "EX")
    assert plain.config is None and plain.http == [] and plain.connections[0].frames == []

    with pytest.raises(FileNotFoundError):
        load_session(tmp_path, "NOPE")


def test_ws_file_must_start_with_connect(tmp_path: Path) -> None:
    (tmp_path / "EX.ws.1.0").write_text("1.0: {}\nwss://x <-> 2.0\n", encoding="utf-8")
    with pytest.raises(RecordFormatError, match=r"EX\.ws\.1\.0.*connect"):
        load_session(tmp_path, "EX")
