"""Processes for the shared-memory torture tests and ``hftbook bench shm``.

``python -m bench.shm_torture writer NAME SECONDS [--stdin-stop] [--no-close]`` runs the
real pipeline in its own process: a SharedStore segment, a ring and a Writer thread (the
production nogil loop), fed at full speed by a producer thread with the invariant messages of
bench.torture (every complete state of a book is checkable), plus the heartbeat.
``... reader NAME SECONDS`` attaches read-only from another process and checks every
seqlock-validated copy against the invariant.  Both print one JSON line at the end.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import orjson
from numba import njit

from bench.torture import build_messages, check_reads
from engine import shm
from engine.atomics import cpu_relax, load_relaxed, monotonic_ns
from engine.ring import RingPool, ring_push
from engine.writer import Writer, store_stop

DEPTH = 32


@njit(nogil=True, cache=True)
def produce(ctl, data, src, bounds, duration_ns, stop):
    """Push the invariant messages round and round for duration_ns or until stop[0]
    is set (waiting while the ring is full); returns messages pushed."""
    end = monotonic_ns() + duration_ns
    n = 0
    while monotonic_ns() < end and not load_relaxed(stop, 0):
        for m in range(bounds.shape[0]):
            start = bounds[m, 0]
            k = bounds[m, 1] - start
            while not ring_push(ctl, data, src, start, k):
                cpu_relax()
            n += 1
    return n


def writer_main(name: str, seconds: float, n_books: int = 4, close: bool = True,
                heartbeat: float = 0.05, stop_on_stdin: bool = False) -> dict:
    store = shm.create(name, n_books, DEPTH)
    for b in range(n_books):
        store.configure(b, f"torture:BOOK{b}", 0, 0)
        store.describe(b, "torture", f"BOOK{b}")
    src, _mask, bounds = build_messages(n_books)
    pool = RingPool(1, 1 << 14)
    writer = Writer(store, pool, [0], name="shm-torture-writer", latency=False).start()
    stop = np.zeros(1, np.int64)
    produce(pool.ctl[0], pool.data[0], src, bounds[:1], 1, stop)  # load/compile first
    store.ready()
    store.start_heartbeat(heartbeat, alive=lambda: writer.alive)
    print("ready", flush=True)
    pushed = []
    t = threading.Thread(target=lambda: pushed.append(
        produce(pool.ctl[0], pool.data[0], src, bounds, int(seconds * 1e9), stop)))
    t.start()
    if stop_on_stdin:  # a line (or EOF) on stdin ends the run early
        threading.Thread(target=lambda: (sys.stdin.readline(), store_stop(stop)),
                         daemon=True).start()
    t.join()
    writer.stop()
    res = {"messages": pushed[0], "records": writer.counters()["records"],
           "bad_records": writer.counters()["bad_records"]}
    if close:
        store.close()
    else:  # stay up, heartbeat going, until killed
        while True:
            time.sleep(1)
    return res


def reader_main(name: str, seconds: float) -> dict:
    seg = shm.attach(name)
    check_reads(seg.hdr, seg.px, seg.sz, seg.n_books, 1)  # load/compile first
    seg.book(0).top(DEPTH, exact=True)
    print("reading", flush=True)
    t0 = time.perf_counter()
    reads, torn, changes = check_reads(seg.hdr, seg.px, seg.sz, seg.n_books,
                                       int(seconds * 1e9))
    dt = time.perf_counter() - t0
    # the Python view too: one consistent top per call
    py_reads = py_torn = 0
    book = seg.book(0)
    end = time.monotonic() + min(seconds, 1.0)
    while time.monotonic() < end:
        top = book.top(DEPTH, exact=True)
        py_reads += 1
        if top.n_bid:
            k = int(top.bid_sz[0])
            n = 1 + k % 20
            ok = (top.n_bid == n == top.n_ask and (top.bid_sz == k).all()
                  and (top.ask_sz == k).all()
                  and (top.bid_px == 1_000_000 + 37 * k - np.arange(n)).all()
                  and (top.ask_px == 1_000_000 + 37 * k + 1 + np.arange(n)).all())
            py_torn += not ok
    return {"reads": int(reads), "torn": int(torn), "changes": int(changes),
            "ns_per_read": dt * 1e9 / max(int(reads), 1), "py_reads": py_reads,
            "py_torn": py_torn, "writer": seg.writer().state}


def main(argv: list[str]) -> int:
    role, name, seconds = argv[0], argv[1], float(argv[2])
    if role == "writer":
        res = writer_main(name, seconds, close="--no-close" not in argv,
                          stop_on_stdin="--stdin-stop" in argv)
    elif role == "reader":
        res = reader_main(name, seconds)
    else:
        raise SystemExit(f"unknown role {role!r}")
    sys.stdout.write(orjson.dumps(res).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
