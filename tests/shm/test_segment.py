"""The segment format: header checks, metadata, read-only mapping, Numba readers on the
mapped arrays, heartbeat and lifecycle states."""

import mmap
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from engine import read, shm
from engine.constants import ASK, BID, F_CLEAR, F_END, F_STATUS, LIVE
from engine.ring import RingPool
from engine.writer import Writer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Inst:
    def __init__(self, unified, kind="spot"):
        self.unified = unified
        self.kind = kind


def _segment(name="seg", n=2, depth=16):
    s = shm.create(name, n, depth)
    s.configure(0, "binance:BTCUSDT", 2, 8)
    s.describe(0, "binance", "BTCUSDT", Inst("BTC-USDT"))
    s.configure(1, "okx:BTC-USDT-SWAP", 1, 4, max_levels=5)
    s.describe(1, "okx", "BTC-USDT-SWAP", Inst("BTC-USDT-PERP", "perp"))
    s.ready()
    return s


def _poke(path, word, value):
    """Rewrite one header word as another (older, newer, foreign) writer would have."""
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, shm.SEG_HEADER_BYTES)
        np.frombuffer(mm, np.int64)[word] = value
        mm.flush()
        mm.close()
    finally:
        os.close(fd)


def test_metadata_and_shape_round_trip():
    with _segment() as w:
        with shm.attach("seg") as r:
            assert (r.n_books, r.depth, r.requested_depth) == (2, 16, 16)
            a, b = r.info
            assert (a.exchange, a.native, a.unified, a.kind) == ("binance", "BTCUSDT",
                                                                 "BTC-USDT", "spot")
            assert (a.price_decimals, a.size_decimals, a.max_levels) == (2, 8, 16)
            assert (b.unified, b.kind, b.price_decimals, b.max_levels) == (
                "BTC-USDT-PERP", "perp", 1, 5)
            assert r.find("okx", "BTC-USDT-SWAP").index == 1
            assert r.find("okx", "BTC-USDT-PERP").index == 1  # by unified name too
            assert [i.index for i in r.select(symbol="btc-usdt")] == [0]
            assert [i.index for i in r.select(exchange="okx")] == [1]
            with pytest.raises(KeyError):
                r.find("kraken", "XBT/USD")
            assert r.writer().state == "running" and r.writer().pid == os.getpid()
        assert w.path.exists()


@pytest.mark.parametrize("word, value, message", [
    (shm.G_VERSION, shm.VERSION + 1, f"layout version {shm.VERSION + 1}, this hftbook reads "
                                     f"version {shm.VERSION}"),
    (shm.G_MAGIC, 12345, "not an hftbook book store"),
    (shm.G_LAYOUT, 7, "book header layout differs"),
    (shm.G_HDR_WORDS, 16, "book header layout differs"),
    (shm.G_TOTAL_BYTES, 1 << 40, "truncated segment"),
])
def test_an_incompatible_header_is_a_clear_error(word, value, message):
    with _segment() as w:
        _poke(w.path, word, value)
        with pytest.raises(shm.ShmError, match=message):
            shm.attach("seg")


def test_missing_and_foreign_segments_are_clear_errors(shm_dir):
    with pytest.raises(shm.ShmError, match="no shared-memory book store 'nope'"):
        shm.attach("nope")
    with open(os.path.join(shm_dir, "hftbook.small"), "wb") as f:
        f.write(b"hello")
    with pytest.raises(shm.ShmError, match="not an hftbook segment"):
        shm.attach("small")
    for bad in ("", "../etc", "a/b", "x" * 101, "-lead"):
        with pytest.raises(shm.ShmError, match="shared-memory name"):
            shm.attach(bad)


def test_a_starting_writer_makes_readers_wait_then_fail_clearly():
    with shm.create("slow", 1, 8):
        t0 = time.monotonic()
        with pytest.raises(shm.ShmError, match="still starting"):
            shm.attach("slow", timeout=0.3)
        assert time.monotonic() - t0 >= 0.3


def test_names_longer_than_the_metadata_fields_are_refused():
    with shm.create("long", 1, 8) as s:
        with pytest.raises(shm.ShmError, match="longer than the 64 bytes"):
            s.describe(0, "x", "S" * 65)


def test_the_mapping_is_read_only():
    with _segment(), shm.attach("seg") as r:
        for a in (r.hdr, r.px, r.sz, r.words):
            assert not a.flags.writeable
            with pytest.raises(ValueError):
                a[0] = 1
            with pytest.raises(ValueError):
                a.setflags(write=True)


def test_a_store_through_a_raw_pointer_faults():
    """Even code that bypasses numpy (ctypes, C) cannot write: the pages are PROT_READ."""
    with _segment() as w:
        code = ("import ctypes, sys\nfrom engine import shm\n"
                "r = shm.attach('seg')\nprint(int(r.hdr[0]), flush=True)\n"
                "ctypes.memset(r.hdr.ctypes.data, 0x7f, 8)\nprint('wrote', flush=True)\n")
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == -11, (p.returncode, p.stdout, p.stderr)  # SIGSEGV
        assert "wrote" not in p.stdout
        assert int(w.hdr[0]) == 0


def test_numba_readers_and_views_on_the_mapped_arrays_follow_the_writer():
    with _segment() as w, shm.attach("seg") as r:
        w.start_heartbeat(0.05)
        pool = RingPool(1, 1024)
        ring = pool.ring(0)
        with Writer(w, pool, [0], latency=False):
            ring.push_one(0, BID, F_CLEAR, 6_500_010, 50_000_000, 7, 0, time.monotonic_ns())
            ring.push_one(0, ASK, F_END, 6_500_030, 120_000_000, 7, 0, time.monotonic_ns())
            ring.push_one(0, 0, F_STATUS | F_END, 0, LIVE)
            deadline = time.monotonic() + 10
            while r.book(0).status != "live" and time.monotonic() < deadline:
                time.sleep(0.01)
        book = r.book(0)
        assert book.status == "live" and not book.stale
        assert book.best_bid() == (65000.1, 0.5) and book.best_ask() == (65000.3, 1.2)
        assert book.to_dict()["bids"] == [["65000.1", "0.5"]]
        assert read.best(r.hdr, r.px, r.sz, 0, BID) == (6_500_010, 50_000_000, True)
        assert read.bbo_status(r.hdr, r.px, r.sz, 0)[:7] == (
            6_500_010, 50_000_000, 6_500_030, 120_000_000, 1, 1, LIVE)
        assert 0 <= book.age_s() < 10
        # the direct-call fast paths agree with the generic in-process view
        from engine.views import Book

        plain = Book(r, 0)
        for n in (0, 1, 5, 10_000):
            for exact in (False, True):
                a, b = book.top(n, exact=exact), plain.top(n, exact=exact)
                assert a[1:] == b[1:] and (a.bid_px == b.bid_px).all() \
                    and (a.ask_sz == b.ask_sz).all()
        assert book.best_bid() == plain.best_bid() and book.best_ask() == plain.best_ask()
        assert r.book(1).stale  # never written: empty


def test_the_heartbeat_stops_with_the_writer_thread():
    alive = [True]
    with _segment() as w:
        w.start_heartbeat(0.02, alive=lambda: alive[0])
        r = shm.attach("seg", stale_after=0.3)
        hb = r.writer().heartbeat
        time.sleep(0.2)
        assert r.writer().heartbeat > hb and r.writer().alive
        alive[0] = False  # the writer thread died; the process lives on
        time.sleep(0.6)
        st = r.writer()
        assert st.state == "stalled" and not st.alive and r.book(0).stale
        r.close()


def test_close_marks_closed_and_unlinks():
    w = _segment()
    r = shm.attach("seg")
    path = w.path
    w.close()
    w.close()  # idempotent
    assert r.writer().state == "closed" and not path.exists()
    r.close()
