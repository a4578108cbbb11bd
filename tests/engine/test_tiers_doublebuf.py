"""Double-buffered hot books in the tier engine: the hot worker publishes a copy after
every batch while it still holds the book's queue; readers of the copy never see a torn
book, and ``hot_top`` serves the copy only while it is the book's current state."""

import threading
import time

import numpy as np

from bench.torture import N_MSGS, base, build_messages
from engine.doublebuf import D_PUBLISHES, SLOT_WORDS
from engine.queues import QueuePool
from engine.ring import C_HEAD, C_TAIL, ring_push
from engine.store import BookStore
from engine.tiers import TierConfig, TierEngine


def _copy_ok(px, sz, nb, na):
    if nb == 0 and na == 0:
        return True  # nothing published yet
    k = int(sz[0, 0])
    n = 1 + k % 20
    return (nb == n == na and (sz[0, :n] == k).all() and (sz[1, :n] == k).all()
            and (px[0, :n] == base(k) - np.arange(n)).all()
            and (px[1, :n] == base(k) + 1 + np.arange(n)).all())


def test_hot_worker_publishes_copies_readers_never_see_torn_books():
    store = BookStore(3, 32)
    for b in range(3):
        store.configure(b, f"x:{b}", 0, 0)
    queues = QueuePool([1 << 12] * 3)
    cfg = TierConfig(hot=("x:0",), hot_threads=1, warm_threads=1, cold_threads=1,
                     double_buffer=20, ncpu=2, rebalance_interval=0.2)
    engine = TierEngine(store, queues, cfg)
    db = engine.double_buffer
    assert db is not None and db.levels == 20
    data, _mask, bounds = build_messages(1)
    stop = threading.Event()
    sent = [0]

    def produce():
        ctl, qd = queues.ctl[0], queues.data(0)
        m = 0
        while not stop.is_set():
            a, z = bounds[m % N_MSGS]
            while not ring_push(ctl, qd, data, a, z - a):
                time.sleep(0)
            sent[0] += 1
            m += 1
            if m % 64 == 0:
                time.sleep(0.0002)

    engine.start()
    try:
        t = threading.Thread(target=produce)
        t.start()
        reads = torn = 0
        seen = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            px, sz, nb, na, _seq = db.top_with_seq(0, 20)
            reads += 1
            torn += not _copy_ok(px, sz, nb, na)
            if nb:
                seen.add(int(sz[0, 0]))
        stop.set()
        t.join()
        end = time.monotonic() + 10
        while time.monotonic() < end and int(queues.ctl[0, C_HEAD] - queues.ctl[0, C_TAIL]) > 0:
            time.sleep(0.01)  # drained (head == tail)
        time.sleep(0.05)
        px, sz, nb, na, from_copy = engine.hot_top(0, 20)
        ref = store.book(0).top(20, exact=True)
    finally:
        engine.stop()
    assert torn == 0
    assert reads > 1000 and len(seen) > 10 and sent[0] > 1000
    assert db.publishes > 100
    # quiet book: the copy is current and equals the store
    assert from_copy
    assert (px[0, :nb] == ref.bid_px).all() and (sz[1, :na] == ref.ask_sz).all()
    # only the hot worker publishes: books 1 and 2 (warm) have no copy
    assert all(int(db.seq[b * SLOT_WORDS + D_PUBLISHES]) == 0 for b in (1, 2))


def test_hot_top_falls_back_to_the_store_when_the_copy_is_behind():
    store = BookStore(2, 16)
    for b in range(2):
        store.configure(b, f"x:{b}", 0, 0)
    queues = QueuePool([256, 256])
    engine = TierEngine(store, queues, TierConfig(hot=("x:0",), hot_threads=1, warm_threads=1,
                                                   cold_threads=0, double_buffer=8, ncpu=2))
    data, _mask, bounds = build_messages(2)
    engine.start()
    try:
        # book 1 is warm: its updates are never published, so hot_top reads the store
        a, z = bounds[1]  # message 1 of book 1 (messages alternate books)
        assert ring_push(queues.ctl[1], queues.data(1), data, a, z - a)
        deadline = time.monotonic() + 10
        while store.book(1).top(1).n_bid == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        px, sz, nb, na, from_copy = engine.hot_top(1, 8)
    finally:
        engine.stop()
    assert not from_copy
    k = int(sz[0, 0])
    assert nb == na == 1 + k % 20 and (px[0, :nb] == base(k) - np.arange(nb)).all()


def test_no_double_buffer_unless_configured():
    store = BookStore(1, 8)
    store.configure(0, "x:0", 0, 0)
    engine = TierEngine(store, QueuePool([256]), TierConfig(double_buffer=0, ncpu=2))
    assert engine.double_buffer is None
