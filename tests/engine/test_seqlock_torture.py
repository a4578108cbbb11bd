"""Writer and readers racing for seconds on real threads: zero torn reads."""

import threading
import time

import numpy as np

from bench.torture import (
    build_messages,
    check_reads,
    check_unsynchronised_reads,
    hammer,
)
from engine.kernels import S_WORDS
from engine.store import BookStore

NO_HIST = np.zeros(0, np.int64)
SECONDS = 3.0


def _race(n_books, reader, n_readers):
    store = BookStore(n_books, 32)
    data, mask, bounds = build_messages(n_books)
    stats = np.zeros(S_WORDS, np.int64)
    # warm up (compile) before racing
    hammer(store.hdr, store.px, store.sz, data, mask, bounds, 1, NO_HIST, stats)
    reader(store.hdr, store.px, store.sz, n_books, 1)
    results = []
    dur = int(SECONDS * 1e9)
    writes = []
    threads = [threading.Thread(target=lambda: writes.append(
        hammer(store.hdr, store.px, store.sz, data, mask, bounds, dur, NO_HIST, stats)))]
    for _ in range(n_readers):
        threads.append(threading.Thread(target=lambda: results.append(
            reader(store.hdr, store.px, store.sz, n_books, dur))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writes[0], results


def test_numba_readers_never_see_a_torn_book():
    writes, results = _race(2, check_reads, 2)
    reads = sum(r[0] for r in results)
    torn = sum(r[1] for r in results)
    changes = sum(r[2] for r in results)
    assert writes > 10_000 and reads > 10_000
    assert changes > 1_000, "readers must actually race the writer"
    assert torn == 0


def test_the_invariant_catches_unsynchronised_copies():
    """Control: the same race without the seqlock tears, so the check above has teeth."""
    _, results = _race(1, check_unsynchronised_reads, 1)
    assert sum(r[1] for r in results) > 0


def test_python_book_view_never_sees_a_torn_book():
    store = BookStore(1, 32)
    store.configure(0, "X", 0, 0)
    data, mask, bounds = build_messages(1)
    stats = np.zeros(S_WORDS, np.int64)
    # one full pass (at least) before the race: the book is never empty while read
    hammer(store.hdr, store.px, store.sz, data, mask, bounds, 1_000_000, NO_HIST, stats)
    book = store.book(0)
    book.top(32, exact=True)  # compile (or load) the reader before the race starts
    target_reads = 5_000
    reads = 0

    def writer():  # rewrite for SECONDS, longer if a loaded machine starves the reader
        deadline = time.monotonic() + 60
        start = time.monotonic()
        while time.monotonic() - start < SECONDS or (
                reads < target_reads and time.monotonic() < deadline):
            hammer(store.hdr, store.px, store.sz, data, mask, bounds, 200_000_000, NO_HIST,
                   stats)

    t = threading.Thread(target=writer)
    t.start()
    torn = 0
    seen = set()
    while t.is_alive():
        top = book.top(32, exact=True)
        reads += 1
        k = int(top.bid_sz[0])
        n = 1 + k % 20
        seen.add(k)
        ok = (len(top.bid_px) == n == len(top.ask_px) and (top.bid_sz == k).all()
              and (top.ask_sz == k).all() and top.seq == k
              and (top.bid_px == 1_000_000 + 37 * k - np.arange(n)).all()
              and (top.ask_px == 1_000_000 + 37 * k + 1 + np.arange(n)).all())
        torn += not ok
    t.join()
    assert reads >= target_reads and len(seen) > 10
    assert torn == 0
