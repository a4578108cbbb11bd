"""The compressed recording format: round trip of a real cryptofeed session through
RecordingWriter -> replay_file equals replay_session on the original; torn tails,
corrupt blocks and wrong versions."""

import struct

import pytest

from connectors.recorded import Frame, load_session, session_events
from connectors.recording import (
    _PREAMBLE,
    VERSION,
    RecordingError,
    RecordingWriter,
    load_recording,
    read_recording,
    replay_file,
)
from connectors.replay import replay_session
from tests.connectors.reference import need_recordings

N = 20  # records per block
COUNTERS = ("frames", "level_updates", "books", "checksums_ok", "checksums_failed", "gaps",
            "resyncs", "malformed", "unrequested_snapshots")


def convert(directory, name, path, flush_records=N):
    """Write a cryptofeed session into the new format (in replay order)."""
    s = load_session(directory, name)
    meta = {"config": s.config,
            "instruments": [{"url": r.url, "body": r.body} for r in s.instrument_responses]}
    with RecordingWriter(path, name, meta, flush_records=flush_records,
                         flush_seconds=1e9) as w:
        for i, c in enumerate(s.connections):
            w.connect(i, c.url, int(c.opened_ts * 1e9))
        for ev in session_events(s):
            ns = int(ev.record.ts * 1e9)
            if isinstance(ev.record, Frame):
                w.ws(ev.conn, ns, ev.record.data)
            else:
                w.rest("", ev.record.url, ns, ev.record.body)
    return s, w


@pytest.fixture(scope="module")
def binance(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "binance.hfr"
    s, w = convert(need_recordings(), "BINANCE", path)
    return s, w, path


def test_round_trip_replay_equals_original(binance):
    s, w, path = binance
    assert w.blocks > 10 # many independent blocks
    recs = list(read_recording(path))
    assert recs[0] == ("header", VERSION, "BINANCE", recs[0][3])
    frames = [r for r in recs if r[0] == "ws"]
    assert [r[3] for r in frames] == [f.data for c in s.connections for f in c.frames]
    loaded = load_recording(path)
    assert loaded.exchange == s.exchange and loaded.config == s.config
    assert [(r.url, r.body) for r in loaded.http] == [(r.url, r.body) for r in s.http]
    assert [r.body for r in loaded.instrument_responses] == \
        [r.body for r in s.instrument_responses]
    assert [len(c.frames) for c in loaded.connections] == [len(c.frames) for c in s.connections]

    ref = replay_session(need_recordings(), "BINANCE")
    got = replay_file(path)
    assert got.ok, got.summary()
    assert got.symbols == ref.symbols
    for k in COUNTERS:
        assert getattr(got, k) == getattr(ref, k), k
    assert got.statuses == ref.statuses
    assert got.books_dict() == ref.books_dict()
    assert got.stats.totals() == ref.stats.totals()


def test_truncated_tail_reads_complete_blocks(binance, tmp_path):
    _, w, path = binance
    data = path.read_bytes()
    full = list(read_recording(path))
    # cut at the middle of the last block, inside a block header, right after the preamble
    last = data.rfind(struct.pack("<I", 0x184D2A5E))
    for cut, blocks in ((last + 30, w.blocks - 1), (last + 5, w.blocks - 1),
                        (len(_PREAMBLE) + 3, 0)):
        p = tmp_path / f"cut{cut}.hfr"
        p.write_bytes(data[:cut])
        r = read_recording(p)
        recs = list(r)  # never raises
        assert r.truncated and r.truncated_bytes == cut - (last if blocks else len(_PREAMBLE))
        assert r.blocks == blocks
        assert recs == full[:len(recs)]
        if blocks:
            assert len(full) - len(recs) <= N
    # appending to a torn file cuts the tail first, then the new block reads back
    p = tmp_path / f"cut{last + 30}.hfr"
    with RecordingWriter(p, "BINANCE", {"segment": 2}) as w2:
        w2.ws(7, 123, b"\x00bin")
    recs = list(r := read_recording(p))
    assert not r.truncated
    assert recs[-2][0] == "header" and recs[-2][3] == {"segment": 2}
    assert recs[-1] == ("ws", 7, 123, b"\x00bin", True)


def test_corrupt_middle_block(binance, tmp_path):
    _, w, path = binance
    data = bytearray(path.read_bytes())
    blocks = [i for i in range(len(data)) if data[i:i + 4] == struct.pack("<I", 0x184D2A5E)]
    mid = blocks[len(blocks) // 2]
    data[mid + 40] ^= 0xFF  # a byte of the compressed payload
    p = tmp_path / "corrupt.hfr"
    p.write_bytes(bytes(data))
    # default: a clear error naming the offset
    with pytest.raises(RecordingError, match=f"corrupt block .* at offset {mid}: crc32"):
        list(read_recording(p))
    # skip_corrupt: the block is counted and skipped, the others read
    r = read_recording(p, skip_corrupt=True)
    recs = list(r)
    assert r.corrupt_blocks == 1 and r.blocks == w.blocks - 1 and not r.truncated
    assert len(recs) == w.records - N
    # a smashed block header: counted, reading resumes at the next block
    data = bytearray(path.read_bytes())
    data[mid:mid + 4] = b"XXXX"
    p.write_bytes(bytes(data))
    r = read_recording(p, skip_corrupt=True)
    assert len(list(r)) == w.records - N and r.corrupt_blocks == 1


def test_wrong_version_and_magic(tmp_path):
    p = tmp_path / "v.hfr"
    with RecordingWriter(p, "X", {}) as w:
        w.ws(0, 1, "{}")
    data = bytearray(p.read_bytes())
    data[len(_PREAMBLE) - 4:len(_PREAMBLE)] = struct.pack("<I", 99)
    p.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="version 99 is not supported"):
        read_recording(p)
    with pytest.raises(RecordingError, match="version 99"):
        RecordingWriter(p, "X", {})  # no appending to a file of another version
    p.write_bytes(b"not a recording at all")
    with pytest.raises(RecordingError, match="bad magic"):
        read_recording(p)


def test_types_and_zstd_compat(tmp_path):
    zstd = pytest.importorskip("zstandard")
    p = tmp_path / "t.hfr"
    with RecordingWriter(p, "X", {"a": 1}, flush_records=2) as w:
        w.connect(3, "wss://x", 10)
        w.ws(3, 11, "text ü")
        w.ws(3, 12, b"\xff\x00")
        w.rest("BTC", "https://x/depth", 13, b"{}")
        w.rest("", "https://x/depth2", 14, "{}")
    assert list(read_recording(p)) == [
        ("header", VERSION, "X", {"a": 1}), ("connect", 3, "wss://x", 10),
        ("ws", 3, 11, "text ü", False), ("ws", 3, 12, b"\xff\x00", True),
        ("rest", "BTC", "https://x/depth", 13, b"{}"), ("rest", "", "https://x/depth2", 14, "{}")]
    # the file is a plain multi-frame zstd stream (skippable frames + data frames)
    with open(p, "rb") as fh:
        out = zstd.ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()
    assert b"text \xc3\xbc" in out and b"https://x/depth2" in out
