"""`hftbook run` until the exchange connectors and simulator land: the engine driven by an
in-process synthetic order flow (Zipf-distributed activity over N books), with a live
dashboard.  Everything below the producer is the real engine: rings, writer thread,
seqlocked books, Python readers."""

from __future__ import annotations

import signal
import sys
import threading
import time

import numpy as np
import orjson

from bench.engine import MSG_LEVELS, _stamp_and_push, snapshot_block, update_stream
from engine.constants import (
    F_END,
    F_STATUS,
    H_UPDATES,
    LIVE,
    R_BOOK,
    R_FLAGS,
    R_SEQ,
    R_SIZE,
    REC_FIELDS,
)
from engine.histogram import percentiles
from engine.ring import RingFull, RingPool
from engine.store import BookStore
from engine.writer import Writer

DEPTH = 100
SHOWN = 6


class _Feed(threading.Thread):
    """Paced producer: snapshots for every book, then the update stream, looping."""

    def __init__(self, pool: RingPool, n_books: int, rate: int) -> None:
        super().__init__(name="synthetic-feed", daemon=True)
        self.pool = pool
        self.n_books = n_books
        self.rate = rate
        self.stop_event = threading.Event()
        self.messages = 0
        self.dropped = 0

    def _push(self, blk: np.ndarray, start: int, n: int) -> None:
        ctl, data = self.pool.ctl[0], self.pool.data[0]
        deadline = time.monotonic() + 1.0
        while not _stamp_and_push(ctl, data, blk, start, n):
            if time.monotonic() > deadline:
                raise RingFull("writer stalled for 1 s")
            time.sleep(0.0001)
        self.messages += 1

    def run(self) -> None:
        snap = snapshot_block(self.n_books, DEPTH)
        per = 2 * DEPTH
        status = np.zeros((REC_FIELDS, self.n_books), np.int64)
        status[R_BOOK] = np.arange(self.n_books)
        status[R_FLAGS] = F_STATUS | F_END
        status[R_SIZE] = LIVE
        for b in range(self.n_books):
            self._push(snap, b * per, per)
            self._push(status, b, 1)
        stream = update_stream(self.n_books, DEPTH, max(self.rate * 10, MSG_LEVELS * 1000))
        n_msgs = stream.shape[1] // MSG_LEVELS
        interval = MSG_LEVELS / self.rate
        t0 = time.perf_counter()
        m = 0
        while not self.stop_event.is_set():
            k = m % n_msgs
            if k == 0 and m:
                stream[R_SEQ] += n_msgs
            due = t0 + m * interval
            now = time.perf_counter()
            if due > now + 0.0005:
                time.sleep(due - now)
            try:
                self._push(stream, k * MSG_LEVELS, MSG_LEVELS)
            except RingFull:
                self.dropped += 1
            m += 1


def _table(store: BookStore, writer: Writer, feed: _Feed, rates: dict, shown: list[int]):
    from rich.table import Table

    lat = rates["latency"]
    t = Table(title="hftbook run — engine on a synthetic in-process feed "
                    "(exchange connectors: see README)", expand=False)
    for col in ("book", "status", "bid", "ask", "spread", "seq", "updates"):
        t.add_column(col, justify="right")
    updates = store.hdr.reshape(store.n_books, -1)[:, H_UPDATES]
    for b in sorted(np.argpartition(updates, -len(shown))[-len(shown):].tolist()):
        book = store.book(b)
        bb, ba = book.best_bid(), book.best_ask()
        h = book.header()
        t.add_row(book.name, book.status, f"{bb[1]:.4f} @ {bb[0]:.2f}" if bb else "-",
                  f"{ba[1]:.4f} @ {ba[0]:.2f}" if ba else "-",
                  f"{book.spread():.2f}" if bb and ba else "-", str(h["seq"]), str(h["updates"]))
    t.caption = (f"{rates['msgs']:,.0f} msg/s  {rates['ups']:,.0f} level upd/s  "
                 f"latency p50 {lat['p50'] / 1e3:.1f} us  p99 {lat['p99'] / 1e3:.1f} us  "
                 f"p99.9 {lat['p999'] / 1e3:.1f} us  ring depth {feed.pool.ring(0).depth}  "
                 f"dropped {feed.dropped}")
    return t


def _summary(store: BookStore, writer: Writer, feed: _Feed, elapsed: float) -> dict:
    statuses = [store.book(b).status for b in range(store.n_books)]
    c = writer.counters()
    return {
        "mode": "synthetic-engine",
        "seconds": round(elapsed, 2),
        "books": store.n_books,
        "books_live": statuses.count("live"),
        "books_stale": statuses.count("stale") + statuses.count("crossed"),
        "messages": feed.messages,
        "level_updates": c["records"],
        "dropped_messages": feed.dropped,
        "bad_records": c["bad_records"],
        "latency_ns": percentiles(writer.hist),
    }


def run_demo(duration: float, n_books: int, rate: int, as_json: bool) -> int:
    if n_books < SHOWN or rate <= 0:
        raise SystemExit("hftbook run: --books must be >= 6 and --rate > 0")
    store = BookStore(n_books, DEPTH)
    for b in range(n_books):
        store.configure(b, f"SIM-{b:04d}", 2, 4)
    pool = RingPool(1, 1 << 16)
    writer = Writer(store, pool, [0], name="writer-0").start()
    feed = _Feed(pool, n_books, rate)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    t0 = time.monotonic()
    feed.start()
    shown = list(range(SHOWN))
    interactive = sys.stdout.isatty() and not as_json
    last = (time.monotonic(), 0, 0, writer.hist.copy())

    def rates() -> dict:
        """Rates and latency percentiles over the interval since the previous call."""
        nonlocal last
        now, c, hist = time.monotonic(), writer.counters(), writer.hist.copy()
        dt = max(now - last[0], 1e-9)
        r = {"msgs": (feed.messages - last[1]) / dt, "ups": (c["records"] - last[2]) / dt,
             "latency": percentiles(hist - last[3])}
        last = (now, feed.messages, c["records"], hist)
        return r

    def done() -> bool:
        return stop.is_set() or (duration > 0 and time.monotonic() - t0 >= duration)

    if interactive:
        from rich.live import Live

        with Live(_table(store, writer, feed, rates(), shown), refresh_per_second=4) as live:
            while not done():
                time.sleep(0.25)
                live.update(_table(store, writer, feed, rates(), shown))
    else:
        next_log = time.monotonic() + 1.0
        while not done():
            time.sleep(0.05)
            if not as_json and time.monotonic() >= next_log:
                next_log += 1.0
                r = rates()
                lat = r["latency"]
                print(f"hftbook: {r['msgs']:,.0f} msg/s {r['ups']:,.0f} upd/s "
                      f"p50 {lat['p50']} ns p99 {lat['p99']} ns dropped {feed.dropped}",
                      flush=True)
    feed.stop_event.set()
    feed.join(5)
    writer.stop()
    summary = _summary(store, writer, feed, time.monotonic() - t0)
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        print(f"hftbook: stopped cleanly: {summary['books_live']}/{n_books} books live, "
              f"{summary['level_updates']:,} level updates", flush=True)
    return 0
