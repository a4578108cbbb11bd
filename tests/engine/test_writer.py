"""Writer threads: consume rings in a long nogil loop, publish whole messages, stop cleanly."""

import threading
import time

import numpy as np

from engine.constants import (
    ASK,
    BID,
    F_CLEAR,
    F_END,
    F_STATUS,
    LIVE,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    REC_FIELDS,
)
from engine.histogram import percentiles
from engine.ring import RingPool
from engine.store import BookStore
from engine.writer import Writer, pin_current_thread
from tests.engine.reference import RefBook


def test_writer_applies_stream_in_order_and_matches_reference():
    n_books, depth = 4, 16
    store = BookStore(n_books, depth)
    for b in range(n_books):
        store.configure(b, f"B{b}", 2, 2)
    pool = RingPool(2, 256)
    rng = np.random.default_rng(7)
    refs = [RefBook(store.depth) for _ in range(n_books)]
    with Writer(store, pool, [0, 1], batch=8):
        for seq in range(1, 3000):
            b = int(rng.integers(n_books))
            n = int(rng.integers(1, 12))
            blk = np.zeros((REC_FIELDS, n), np.int64)
            blk[R_BOOK] = b
            blk[R_SIDE] = rng.integers(0, 2, n)
            blk[R_PRICE] = rng.integers(0, 60, n) + np.where(blk[R_SIDE] == ASK, 60, 0)
            blk[R_SIZE] = rng.integers(0, 3, n)
            blk[R_SEQ] = seq
            blk[R_RECV] = time.monotonic_ns()
            blk[R_FLAGS, -1] = F_END
            for s, p, q in zip(blk[R_SIDE], blk[R_PRICE], blk[R_SIZE]):
                refs[b].set(int(s), int(p), int(q))
            pool.ring(b % 2).push(blk)  # books 0,2 on ring 0; 1,3 on ring 1
    for b in range(n_books):
        d = store.book(b).to_dict()
        for side, key in ((BID, "bids"), (ASK, "asks")):
            want = [[f"{p / 100:g}", f"{q / 100:g}"] for p, q in refs[b].levels(side)]
            got = [[f"{float(p):g}", f"{float(q):g}"] for p, q in d[key]]
            assert got == want


def test_writer_latency_histogram_and_counters():
    store = BookStore(1, 8)
    pool = RingPool(1, 64)
    w = Writer(store, pool, [0], spin=100, yields=10, park_us=20).start()
    ring = pool.ring(0)
    for i in range(200):
        ring.push_one(0, BID, F_END | (F_CLEAR if i == 0 else 0), 100 + i % 5, 1, i, 0,
                      time.monotonic_ns())
        time.sleep(0.0005)
    ring.push_one(0, 0, F_STATUS | F_END, 0, LIVE, -1, 0, 0)
    w.stop()
    assert not w.alive
    c = w.counters()
    assert c["records"] == 201 and c["bad_records"] == 0
    assert c["parks"] > 0  # it idled between messages rather than spinning forever
    lat = percentiles(w.hist)
    assert lat["count"] == 200
    assert 0 < lat["p50"] < 50_000_000
    assert store.book(0).status == "live"


def test_stop_drains_everything_already_pushed():
    store = BookStore(1, 8)
    pool = RingPool(1, 1 << 12)
    w = Writer(store, pool, [0], park_us=1000)
    blk = np.zeros((REC_FIELDS, 1000), np.int64)
    blk[R_SIDE] = BID
    blk[R_PRICE] = np.arange(1000) % 8
    blk[R_SIZE] = 1
    blk[R_FLAGS] = F_END
    pool.ring(0).push(blk)
    w.start()
    w.stop()
    assert w.counters()["records"] == 1000
    assert store.book(0).header()["updates"] == 1000


def test_pinning_reports_what_happened():
    import os
    if not hasattr(os, "sched_getaffinity"):
        assert pin_current_thread(0).startswith("not pinned")
        return
    allowed = sorted(os.sched_getaffinity(0))
    out = {}

    def body():
        out["report"] = pin_current_thread(allowed[-1])
        out["affinity"] = os.sched_getaffinity(0)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out["report"] == f"pinned to cpu {allowed[-1]}"
    assert out["affinity"] == {allowed[-1]}
    assert os.sched_getaffinity(0) == set(allowed)  # only that thread was pinned
    assert pin_current_thread(10_000).startswith("not pinned: cpu 10000 not in allowed set")
