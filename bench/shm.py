"""`hftbook bench shm`: what reading the books from another process costs.

Each figure is measured twice in the same run. The baseline reads a private in-process
store. The other reads the shared-memory segment of a writer running in another process,
through a read-only mapping.

* idle reads: a Numba loop of seqlock-validated top-of-book reads (engine.read.bbo) and
  the Python ``Book.best_bid()`` / ``Book.top(10)`` views, with no writer activity
  (the two alternate over five rounds; the best round of each is kept);
* racing reads: the invariant workload of the torture tests (bench.torture). A writer
  thread is fed at full speed through a ring. The reader copies books inside seqlock
  sections and checks every copy: reads/s, ns per read, torn copies (must be 0), and
  how many distinct states it saw. In process, the writer, its producer and the reader
  are threads of one process. Cross process, the writer and its producer run in
  another process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from numba import njit

from bench.shm_torture import DEPTH, produce
from bench.torture import build_messages, check_reads
from engine import shm
from engine.constants import ASK, BID, F_CLEAR, F_END
from engine.read import bbo
from engine.ring import RingPool
from engine.store import BookStore
from engine.writer import Writer, store_stop

ROOT = Path(__file__).resolve().parent.parent
N_BOOKS = 4


@njit(nogil=True, cache=True)
def bbo_loop(hdr, px, sz, n_books, iters):
    acc = 0
    for i in range(iters):
        bp, bq, ap, aq, nb, na = bbo(hdr, px, sz, i % n_books)
        acc += bp + ap
    return acc


def _fill(store: BookStore) -> None:
    """A few levels on every book (idle-read figures), through the real kernels."""
    from engine.kernels import S_WORDS, apply_records

    recs = []
    for b in range(store.n_books):
        for i in range(10):
            recs.append((b, BID, F_CLEAR if i == 0 else 0, 1_000_000 - i, 5))
        for i in range(10):
            recs.append((b, ASK, F_END if i == 9 else 0, 1_000_001 + i, 5))
    data = np.zeros((8, 1 << 10), np.int64)
    for j, (b, s, f, p, q) in enumerate(recs):
        data[0, j], data[1, j], data[2, j], data[3, j], data[4, j] = b, s, f, p, q
    apply_records(store.hdr, store.px, store.sz, data, data.shape[1] - 1, 0, len(recs),
                  np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))


def _idle(store, iters: int) -> dict:
    bbo_loop(store.hdr, store.px, store.sz, store.n_books, 1000)
    t0 = time.perf_counter()
    bbo_loop(store.hdr, store.px, store.sz, store.n_books, iters)
    numba_ns = (time.perf_counter() - t0) / iters * 1e9
    book = store.book(0)
    book.best_bid()
    book.top(10)
    n = iters // 200
    t0 = time.perf_counter()
    for _ in range(n):
        book.best_bid()
    best_ns = (time.perf_counter() - t0) / n * 1e9
    t0 = time.perf_counter()
    for _ in range(n):
        book.top(10)
    top_ns = (time.perf_counter() - t0) / n * 1e9
    return {"numba_bbo_ns": numba_ns, "best_bid_ns": best_ns, "top10_ns": top_ns}


def _race_in_process(seconds: float) -> dict:
    store = BookStore(N_BOOKS, DEPTH)
    src, _mask, bounds = build_messages(N_BOOKS)
    pool = RingPool(1, 1 << 14)
    stop = np.zeros(1, np.int64)
    with Writer(store, pool, [0], latency=False):
        produce(pool.ctl[0], pool.data[0], src, bounds[:1], 1, stop)
        check_reads(store.hdr, store.px, store.sz, N_BOOKS, 1)
        t = threading.Thread(target=produce, args=(pool.ctl[0], pool.data[0], src, bounds,
                                                   int(seconds * 1e9) * 2, stop))
        t.start()
        t0 = time.perf_counter()
        reads, torn, changes = check_reads(store.hdr, store.px, store.sz, N_BOOKS,
                                           int(seconds * 1e9))
        dt = time.perf_counter() - t0
        store_stop(stop)
        t.join()
    return {"reads_per_s": reads / dt, "ns_per_read": dt / max(reads, 1) * 1e9,
            "torn": int(torn), "states_seen": int(changes)}


def _race_cross_process(name: str, seconds: float) -> dict:
    w = subprocess.Popen([sys.executable, "-m", "bench.shm_torture", "writer", name, "600",
                          "--stdin-stop"], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = w.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"torture writer failed: {w.stderr.read()}")
        seg = shm.attach(name)
        check_reads(seg.hdr, seg.px, seg.sz, seg.n_books, 1)
        t0 = time.perf_counter()
        reads, torn, changes = check_reads(seg.hdr, seg.px, seg.sz, seg.n_books,
                                           int(seconds * 1e9))
        dt = time.perf_counter() - t0
        seg.close()
    finally:
        w.communicate("stop\n", timeout=60)
    return {"reads_per_s": reads / dt, "ns_per_read": dt / max(reads, 1) * 1e9,
            "torn": int(torn), "states_seen": int(changes)}


def run(quick: bool = False) -> dict:
    seconds = 0.5 if quick else 2.0
    iters = 200_000 if quick else 5_000_000
    name = f"bench-{uuid.uuid4().hex[:8]}"
    private = BookStore(N_BOOKS, DEPTH)
    _fill(private)
    with shm.create(name, N_BOOKS, DEPTH) as seg_w:
        for b in range(N_BOOKS):
            seg_w.configure(b, f"bench:B{b}", 0, 0)
        _fill(seg_w)
        seg_w.ready()
        seg_w.start_heartbeat(0.1)
        # the read-only map of the segment; its writer idles in this process
        reader = shm.attach(name)
        # alternate the two, five rounds, best of each: the machine is shared and noisy
        rounds = [(_idle(private, iters // 5), _idle(reader, iters // 5)) for _ in range(5)]
        idle = {side: {k: min(r[j][k] for r in rounds) for k in rounds[0][j]}
                for j, side in enumerate(("in_process", "shared_read_only"))}
        reader.close()
    race = {"in_process": _race_in_process(seconds),
            "cross_process": _race_cross_process(name + "-race", seconds)}
    return {"idle": idle, "race": race, "seconds": seconds}


def print_table(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title="shared-memory readers: in process vs another process (read-only map)")
    for c in ("figure", "in process", "shared / cross process", "ratio"):
        t.add_column(c, justify="left" if c == "figure" else "right")
    i, s = res["idle"]["in_process"], res["idle"]["shared_read_only"]
    for key, label in (("numba_bbo_ns", "Numba bbo() read, idle (ns)"),
                       ("best_bid_ns", "Book.best_bid(), idle (ns)"),
                       ("top10_ns", "Book.top(10), idle (ns)")):
        t.add_row(label, f"{i[key]:.1f}", f"{s[key]:.1f}", f"{s[key] / i[key]:.2f}x")
    a, b = res["race"]["in_process"], res["race"]["cross_process"]
    t.add_row("racing reads: M reads/s", f"{a['reads_per_s'] / 1e6:.2f}",
              f"{b['reads_per_s'] / 1e6:.2f}", f"{b['reads_per_s'] / a['reads_per_s']:.2f}x")
    t.add_row("racing reads: ns per validated copy", f"{a['ns_per_read']:.0f}",
              f"{b['ns_per_read']:.0f}", f"{b['ns_per_read'] / a['ns_per_read']:.2f}x")
    t.add_row("racing reads: distinct states seen", f"{a['states_seen']:,}",
              f"{b['states_seen']:,}", "")
    t.add_row("torn copies", str(a["torn"]), str(b["torn"]), "")
    console.print(t)
