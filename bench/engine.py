"""`hftbook bench engine`: apply throughput, read costs, ring latency, torn reads.

Everything is measured in one run, with the plain-Python dict book as the baseline of
the same workload.  Workload: 5000 books; messages of MSG_LEVELS level updates for one
book picked by a Zipf law (a few hot books, a long cold tail); each update is a bid or
an ask at a distance from the touch that is geometric (most within the top 10 levels)
with a small share spread over the whole depth; ~20 % deletes; ~3 % inserts inside
the spread.  Books start full to the measured depth.
"""

from __future__ import annotations

import os
import threading
import time
import timeit

import numpy as np
from numba import njit

from engine import platform
from engine.atomics import cpu_relax, load_acquire, load_relaxed, store_release
from engine.constants import (
    ASK,
    BID,
    F_CLEAR,
    F_END,
    HDR_WORDS,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    REC_FIELDS,
)
from engine.histogram import hist_record, new_hist, percentiles
from engine.kernels import S_WORDS, apply_records
from engine.layout import aligned_zeros
from engine.platform import Settings as PlatformSettings
from engine.read import best, copy_top
from engine.ring import C_TAIL, RingPool, prefetch_records, ring_available, ring_push
from engine.store import BookStore
from engine.tsc import clock_ns
from engine.writer import Writer

N_BOOKS = 5000
DEEP_BOOKS = 500  # books in the depth-5000 apply figure
CACHED_BOOKS = 50  # books in the latency control: a store that stays in cache
MSG_LEVELS = 8
MID = 10_000_000
DEEP_SHARE = 0.05  # share of updates spread uniformly over the whole depth
NO_HIST = np.zeros(0, np.int64)


def _pow2(n: int) -> int:
    c = 1
    while c < n:
        c *= 2
    return c


def snapshot_block(n_books: int, depth: int) -> np.ndarray:
    """Full-depth snapshots of every book: bids MID-1-i, asks MID+1+i."""
    per = 2 * depth
    blk = np.zeros((REC_FIELDS, _pow2(n_books * per)), np.int64)
    n = n_books * per
    idx = np.arange(n)
    book = idx // per
    within = idx % per
    side = (within >= depth).astype(np.int64)
    lvl = within % depth
    blk[R_BOOK, :n] = book
    blk[R_SIDE, :n] = side
    blk[R_PRICE, :n] = np.where(side == BID, MID - 1 - lvl, MID + 1 + lvl)
    blk[R_SIZE, :n] = 1 + lvl
    blk[R_FLAGS, :n] = np.where(within == 0, F_CLEAR, 0) | np.where(within == per - 1, F_END, 0)
    return blk[:, :n]


def update_stream(n_books: int, depth: int, n_updates: int, seed: int = 42) -> np.ndarray:
    """The realistic mix described in the module docstring, as a record block."""
    rng = np.random.default_rng(seed)
    n_msgs = n_updates // MSG_LEVELS
    n = n_msgs * MSG_LEVELS
    ranks = rng.zipf(1.2, n_msgs * 2)
    ranks = ranks[ranks <= n_books][:n_msgs]
    if len(ranks) < n_msgs:  # pragma: no cover - zipf tail is long enough in practice
        ranks = np.concatenate([ranks, rng.integers(1, n_books + 1, n_msgs - len(ranks))])
    perm = rng.permutation(n_books)  # hot books spread over the store, not books 0..k
    book = np.repeat(perm[ranks - 1], MSG_LEVELS)
    side = rng.integers(0, 2, n)
    dist = np.minimum(rng.geometric(0.25, n) - 1, depth - 1)
    deep = rng.random(n) < DEEP_SHARE
    dist[deep] = rng.integers(0, depth, deep.sum())
    price = np.where(side == BID, MID - 1 - dist, MID + 1 + dist)
    inside = rng.random(n) < 0.03  # bids improving into the 2-tick spread
    price[inside] = MID
    side[inside] = BID
    size = rng.integers(1, 1000, n)
    size[rng.random(n) < 0.20] = 0
    blk = np.zeros((REC_FIELDS, n), np.int64)
    blk[R_BOOK], blk[R_SIDE], blk[R_PRICE], blk[R_SIZE] = book, side, price, size
    blk[R_SEQ] = np.repeat(np.arange(n_msgs), MSG_LEVELS)
    blk[R_FLAGS, MSG_LEVELS - 1::MSG_LEVELS] = F_END
    return blk


def _as_ring_block(blk: np.ndarray) -> tuple[np.ndarray, int]:
    cap = _pow2(blk.shape[1])
    out = np.zeros((REC_FIELDS, cap), np.int64)
    out[:, :blk.shape[1]] = blk
    return out, cap - 1


def measure_apply(depth: int, n_updates: int, n_books: int = N_BOOKS) -> tuple[float, float]:
    """Level updates per second (millions) of apply_records at ``depth``: (CPU time of
    the applying thread, wall time), each the best of three passes.  CPU time is the
    headline: the machine is shared, and wall time then also counts the slices the
    OS gave to other processes; the kernel never blocks, so on an idle machine the
    two agree."""
    store = BookStore(n_books, depth)
    stats = np.zeros(S_WORDS, np.int64)
    snap, mask = _as_ring_block(snapshot_block(n_books, depth))
    apply_records(store.hdr, store.px, store.sz, snap, mask, 0, n_books * 2 * depth,
                  NO_HIST, stats)
    stream = update_stream(n_books, depth, n_updates)
    blk, mask = _as_ring_block(stream)
    n = stream.shape[1]
    best_cpu = best_wall = float("inf")
    for _ in range(3):  # the same stream thrice: books stay realistic (stationary mix)
        c0, t0 = time.thread_time(), time.perf_counter()
        apply_records(store.hdr, store.px, store.sz, blk, mask, 0, n, NO_HIST, stats)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return n / best_cpu / 1e6, n / best_wall / 1e6


def _stream_columns(stream: np.ndarray, n: int | None = None) -> list[list[int]]:
    """Book, side, price, size and flags columns as Python int lists (the baselines get
    their input pre-converted: no parsing or conversion is timed)."""
    return [stream[f, :n].tolist() for f in (R_BOOK, R_SIDE, R_PRICE, R_SIZE, R_FLAGS)]


def _dict_bare(books, cols) -> None:
    for b, s, p, q in zip(*cols[:4]):
        levels = books[b][s]
        if q:
            levels[p] = q
        else:
            levels.pop(p, None)


def _dict_touch(books, cols) -> None:
    for b, s, p, q, f in zip(*cols):
        bids, asks = books[b]
        levels = asks if s else bids
        if q:
            levels[p] = q
        else:
            levels.pop(p, None)
        if f & F_END:
            _touch = (max(bids) if bids else None, min(asks) if asks else None)


def _dict_best(books, cols) -> None:
    """A plain dict per side that keeps each side's best price as it goes: a set can
    only improve it, and only deleting the best itself costs a max/min over the keys.
    The crossed check runs at each message end, as the kernel's does."""
    for b, s, p, q, f in zip(*cols):
        book = books[b]  # [bids, asks, best bid, best ask]
        levels = book[s]
        best_px = book[2 + s]
        if q:
            levels[p] = q
            if best_px is None or (p > best_px if s == BID else p < best_px):
                book[2 + s] = p
        elif levels.pop(p, None) is not None and p == best_px:
            book[2 + s] = ((max(levels) if s == BID else min(levels)) if levels else None)
        if f & F_END:
            _crossed = book[2] is not None and book[3] is not None and book[2] >= book[3]


def _sorted_touch(books, cols) -> None:
    for b, s, p, q, f in zip(*cols):
        bids, asks = books[b]
        levels = asks if s else bids
        if q:
            levels[p] = q
        else:
            levels.pop(p, None)
        if f & F_END:
            _touch = (bids.peekitem(-1) if bids else None, asks.peekitem(0) if asks else None)


def _order_book_touch(books, cols) -> None:
    for b, s, p, q, f in zip(*cols):
        ob = books[b]
        levels = ob.asks if s else ob.bids
        if q:
            levels[p] = q
        elif p in levels:
            del levels[p]
        if f & F_END:
            _touch = (ob.bids.index(0) if len(ob.bids) else None,
                      ob.asks.index(0) if len(ob.asks) else None)


def _baseline_books(kind: str, n_books: int, depth: int, used: set[int]) -> list:
    """Per-book Python books of ``kind`` loaded with the benchmark's snapshot (bids
    MID-1-i, asks MID+1+i, sizes 1+i), built only for the books in ``used``."""
    bids = {MID - 1 - i: 1 + i for i in range(depth)}
    asks = {MID + 1 + i: 1 + i for i in range(depth)}
    books: list = [None] * n_books
    for b in used:
        if kind == "sortedcontainers":
            from sortedcontainers import SortedDict

            books[b] = (SortedDict(bids), SortedDict(asks))
        elif kind == "order_book":
            from order_book import OrderBook

            ob = OrderBook()
            for p, q in bids.items():
                ob.bids[p] = q
            for p, q in asks.items():
                ob.asks[p] = q
            books[b] = ob
        elif kind == "dict_best":
            books[b] = [dict(bids), dict(asks), max(bids), min(asks)]
        else:
            books[b] = (dict(bids), dict(asks))
    return books


BASELINES = {
    # name: (book kind, loop, what it is)
    "dict_bare": ("dict", _dict_bare, "plain dict per side, set/pop only: no ordered "
                  "access at all, the least any Python book does"),
    "dict_touch": ("dict", _dict_touch, "plain dict + best bid/ask (max/min over the "
                   "keys) after each message"),
    "dict_best": ("dict_best", _dict_best, "plain dict per side keeping its best price "
                  "(max/min over the keys only when the best is deleted) and checking "
                  "for a crossed book after each message"),
    "sortedcontainers": ("sortedcontainers", _sorted_touch, "sortedcontainers.SortedDict "
                         "per side + best bid/ask after each message"),
    "order_book": ("order_book", _order_book_touch, "cryptofeed's order-book C extension "
                   "(OrderBook) + best bid/ask after each message"),
}


def measure_dict_baseline(depth: int, n_updates: int) -> dict[str, float | None]:
    """The same stream through Python books, M level updates/s, each measured over its
    own prefix of the stream (the slow ones over fewer updates).  ``dict_bare`` is the
    floor of any Python book; the others also answer "best bid/ask" after every
    message, as a book feeding a strategy (or a crossed-book check) must.  A baseline
    whose package is not installed is reported as None."""
    stream = update_stream(N_BOOKS, depth, n_updates)
    out: dict[str, float | None] = {}
    for name, (kind, loop, _) in BASELINES.items():
        n = n_updates if name == "dict_bare" else min(n_updates, 200_000)
        cols = _stream_columns(stream, n)
        try:
            books = _baseline_books(kind, N_BOOKS, depth, set(cols[0]))
        except ImportError:
            out[name] = None
            continue
        t0 = time.thread_time()  # CPU time, as the kernels' figures
        loop(books, cols)
        out[name] = len(cols[0]) / (time.thread_time() - t0) / 1e6
    return out


@njit(nogil=True, cache=True)
def _loop_best(hdr, px, sz, books, reps):
    acc = 0
    for r in range(reps):
        p, q, ok = best(hdr, px, sz, books[r & 1023], BID)
        acc += p
    return acc


@njit(nogil=True, cache=True)
def _loop_top(hdr, px, sz, books, reps, n, out_px, out_sz, out_hdr):
    acc = 0
    for r in range(reps):
        nb, na = copy_top(hdr, px, sz, books[r & 1023], n, out_px, out_sz, out_hdr)
        acc += nb + out_px[0, 0]
    return acc


def measure_reads(depth: int = 200) -> dict[str, float]:
    store = BookStore(N_BOOKS, depth)
    for b in range(N_BOOKS):
        store.configure(b, f"B{b}", 2, 4)
    stats = np.zeros(S_WORDS, np.int64)
    snap, mask = _as_ring_block(snapshot_block(N_BOOKS, depth))
    apply_records(store.hdr, store.px, store.sz, snap, mask, 0, N_BOOKS * 2 * depth,
                  NO_HIST, stats)
    rng = np.random.default_rng(3)
    hot = rng.integers(0, 64, 1024)  # a strategy's working set: a few dozen books
    out_px = np.zeros((2, 20), np.int64)
    out_sz = np.zeros((2, 20), np.int64)
    out_hdr = np.zeros(HDR_WORDS, np.int64)
    args = (store.hdr, store.px, store.sz, hot)
    _loop_best(*args, 10)
    _loop_top(*args, 10, 20, out_px, out_sz, out_hdr)
    # CPU time of this thread (as the apply figures): on a shared machine wall time
    # would mostly measure the other processes' slices
    clock = time.thread_time
    reps = 5_000_000
    t0 = clock()
    _loop_best(*args, reps)
    t_best = (clock() - t0) / reps * 1e9
    reps = 2_000_000
    t0 = clock()
    _loop_top(*args, reps, 20, out_px, out_sz, out_hdr)
    t_top = (clock() - t0) / reps * 1e9
    book = store.book(7)
    n = 200_000

    def per_call(fn, number):
        return min(timeit.repeat(fn, number=number, repeat=5, timer=clock)) / number * 1e9

    py_best = per_call(book.best_bid, n)
    py_top = per_call(lambda: book.top(20), n // 4)
    py_call = per_call(lambda: best(store.hdr, store.px, store.sz, 7, BID), n)
    return {"numba_top_of_book": round(t_best, 1), "numba_top20_copy": round(t_top, 1),
            "python_best_bid": round(py_best, 1), "python_top20": round(py_top, 1),
            "python_raw_best_call": round(py_call, 1)}


@njit(nogil=True, cache=True)
def _stamp_and_push(ctl, data, src, start, n):
    now = clock_ns()  # the writer's clock: TSC or clock_gettime, as [platform] says
    for k in range(n):
        src[R_RECV, start + k] = now
    return ring_push(ctl, data, src, start, n)


def _latency_feed(rate: int, seconds: float, n_books: int, depth: int):
    """(messages, record stream, one-ring pool) for a paced latency run at ``rate``
    level updates/s for ``seconds``: the stream, seeded by the rate, and the ring that
    measure_latency and measure_null_path share, with the push kernel loaded."""
    n_msgs = int(rate * seconds) // MSG_LEVELS
    stream = update_stream(n_books, depth, n_msgs * MSG_LEVELS, seed=rate)
    pool = RingPool(1, 1 << 16)
    _stamp_and_push(pool.ctl[0], pool.data[0], stream, 0, 0)  # compile or load it now
    return n_msgs, stream, pool


def measure_latency(rate: int, seconds: float, depth: int = 200,
                    burst_sleep_us: int = 200, n_books: int = N_BOOKS) -> dict[str, float]:
    """Offered ``rate`` level updates/s from a Python producer (8-level messages) through
    a ring into a writer thread; enqueue -> visible-to-readers latency per message.

    The producer pushes every message that is due, then sleeps ``burst_sleep_us``, as a
    connector's event loop does between socket reads (frames arrive in bursts).  A
    producer that busy-waits instead keeps both cores of a 2-core machine busy, and
    every other task on the machine then preempts the writer: measured here, that moves
    p99.9 from ~12 us to ~1.5 ms (``burst_sleep_us=0`` shows it).

    ``n_books`` small enough for the books to stay in cache (the run's control) shows
    what the same path costs without the cache misses of a 5000-book store."""
    store = BookStore(n_books, depth)
    stats = np.zeros(S_WORDS, np.int64)
    snap, mask = _as_ring_block(snapshot_block(n_books, depth))
    apply_records(store.hdr, store.px, store.sz, snap, mask, 0, n_books * 2 * depth,
                  NO_HIST, stats)
    n_msgs, stream, pool = _latency_feed(rate, seconds, n_books, depth)
    ctl, data = pool.ctl[0], pool.data[0]
    writer = Writer(store, pool, [0], batch=64).start()
    time.sleep(0.1)
    writer.hist[:] = 0
    switches0 = involuntary_switches(writer.native_id)
    idle0 = writer.counters()
    full, elapsed = paced_push(ctl, data, stream, n_msgs, rate, burst_sleep_us)
    switches = involuntary_switches(writer.native_id) - switches0
    idle = writer.counters()
    writer.stop()
    pct = percentiles(writer.hist)
    return {"p50": pct["p50"], "p99": pct["p99"], "p999": pct["p999"], "max": pct["max"],
            "messages": pct["count"], "achieved_ups": round(n_msgs * MSG_LEVELS / elapsed),
            "ring_full": full, "writer_preempted": switches,
            # times the idle writer yielded / slept during the run: each park can delay
            # the next message by a sleep (see engine/writer.py)
            "writer_yields": idle["yields"] - idle0["yields"],
            "writer_parks": idle["parks"] - idle0["parks"]}


@njit(nogil=True, cache=True)
def _ping(flags, n, out):
    """Hand a counter to the pong thread and wait for it back, ``n`` times; out[k] is
    the k-th round trip in ns.  The two counters sit on separate cache lines."""
    for k in range(n):
        t0 = clock_ns()
        store_release(flags, 0, k + 1)
        while load_acquire(flags, 8) != k + 1:
            pass
        out[k] = clock_ns() - t0
    return n


@njit(nogil=True, cache=True)
def _pong(flags, n):
    for k in range(n):
        while load_acquire(flags, 0) != k + 1:
            pass
        store_release(flags, 8, k + 1)
    return n


def measure_handoff_floor(seconds: float) -> dict[str, float]:
    """The floor under every enqueue-to-visible figure: one cache line handed from a
    thread on one core to a spinning thread on the other and back, with nothing else
    done (no ring, no book).  Half a round trip is what one cross-core handoff costs;
    the ring path needs at least two that depend on each other (the head counter,
    then the records it covers) before the writer can even start on the book.  Its
    tail shows what the machine does to two threads that never block: every
    percentile above a few hundred ns is a thread that lost its core."""
    flags = aligned_zeros(16)
    probe = np.zeros(10_000, np.int64)
    for _ in range(2):  # size the run to ``seconds`` from the median round trip
        flags[:] = 0
        t = threading.Thread(target=_pong, args=(flags, probe.shape[0]))
        t.start()
        _ping(flags, probe.shape[0], probe)
        t.join()
    n = max(10_000, int(seconds * 1e9 / max(float(np.median(probe)), 50.0)))
    out = np.zeros(n, np.int64)
    flags[:] = 0
    t = threading.Thread(target=_pong, args=(flags, n))
    t.start()
    _ping(flags, n, out)
    t.join()
    one_way = out / 2.0
    p50, p99, p999 = np.percentile(one_way, [50, 99, 99.9])
    return {"p50": round(float(p50)), "p99": round(float(p99)), "p999": round(float(p999)),
            "max": round(float(one_way.max())), "handoffs": int(2 * n)}


@njit(nogil=True, cache=True)
def _null_consumer(ctl, data, stop, hist):
    """A writer that applies nothing: it pops what the ring holds (with the writer's
    record prefetch), stamps once, records each message's receive -> now into ``hist``
    and frees the slots.  What the latency figures would be if books cost nothing."""
    mask = data.shape[1] - 1
    while load_relaxed(stop, 0) == 0:
        avail = ring_available(ctl)
        if avail <= 0:
            cpu_relax()
            continue
        tail = load_relaxed(ctl, C_TAIL)
        prefetch_records(data, tail, avail, mask)
        now = clock_ns()
        for k in range(avail):
            j = (tail + k) & mask
            if data[R_FLAGS, j] & F_END:
                hist_record(hist, now - data[R_RECV, j])
        store_release(ctl, C_TAIL, tail + avail)
    return 0


def measure_null_path(rate: int, seconds: float) -> dict[str, float]:
    """Enqueue -> visible latency of the same producer, pacing and ring as
    measure_latency, with a consumer that spins like the writer but applies nothing
    (_null_consumer).  No book work at all: whatever this shows, the machine and the
    handoff between cores cost, and no engine can be faster than it on this machine."""
    n_msgs, stream, pool = _latency_feed(rate, seconds, N_BOOKS, 200)
    ctl, data = pool.ctl[0], pool.data[0]
    stop = aligned_zeros(8)
    hist = new_hist()
    stop[0] = 1
    _null_consumer(ctl, data, stop, hist)  # compile (or load) before the clock starts
    stop[0] = 0
    t = threading.Thread(target=_null_consumer, args=(ctl, data, stop, hist),
                         name="null-consumer", daemon=True)
    t.start()
    time.sleep(0.1)
    hist[:] = 0
    paced_push(ctl, data, stream, n_msgs, rate)
    time.sleep(0.01)
    stop[0] = 1
    t.join()
    pct = percentiles(hist)
    return {"p50": pct["p50"], "p99": pct["p99"], "p999": pct["p999"], "max": pct["max"],
            "messages": pct["count"]}


STALL_CHUNK_STEPS = 500  # steps of the stall probe's chunk: about 0.38 us here


@njit(nogil=True, cache=True)
def _work_chunks(n, k, out):
    """``n`` chunks of ``k`` steps of a dependent multiply chain (no memory, no clock
    inside a chunk), out[c] = ns each chunk took."""
    x = 1
    last = clock_ns()
    for c in range(n):
        for _ in range(k):
            x = x * 3 + (x >> 7)
        now = clock_ns()
        out[c] = now - last
        last = now
    return x


def measure_stalls(seconds: float, cpu: int | None = None) -> dict[str, float]:
    """How often the machine takes the CPU away from a thread that never blocks.  A
    thread runs fixed ~0.4 us chunks of pure arithmetic; a chunk that took more than
    its median + 1 us was stalled (by an interrupt, or by the hypervisor running
    something else on the physical CPU).  Reported: stalls per second, their median
    length, and the share of the time lost.  A message that arrives at a random
    moment finds the writer stalled with about that probability, and then waits out
    the rest of the stall, whatever the engine does.  ``cpu`` pins the probe (tests)."""
    probe = np.zeros(20_000, np.int64)
    _work_chunks(probe.shape[0], STALL_CHUNK_STEPS, probe)
    per_chunk = max(float(np.median(probe)), 50.0)
    out = np.zeros(max(10_000, int(seconds * 1e9 / per_chunk)), np.int64)

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # the calling thread only (Linux)
        _work_chunks(out.shape[0], STALL_CHUNK_STEPS, out)

    t = threading.Thread(target=body, name="stall-probe", daemon=True)
    t.start()
    t.join()
    med = float(np.median(out))
    total = float(out.sum())
    stalled = out[out > med + 1000]
    excess = stalled - med
    return {"stalls_per_s": round(len(stalled) / (total / 1e9)),
            "over_2us_per_s": round(int((excess > 2000).sum()) / (total / 1e9)),
            "median_stall_ns": round(float(np.median(excess))) if len(excess) else 0,
            "max_stall_ns": round(float(excess.max())) if len(excess) else 0,
            "time_lost_pct": round(100.0 * float(excess.sum()) / total, 2),
            "chunk_ns": round(med), "seconds": round(total / 1e9, 2)}


def paced_push(ctl, data, stream, n_msgs: int, rate: int,
               burst_sleep_us: int = 200) -> tuple[int, float]:
    """The latency benchmarks' producer: push the 8-level messages of ``stream`` into
    the ring at ``rate`` level updates/s, every message that is due at once, then sleep
    ``burst_sleep_us`` (a connector's event loop between socket reads).  Returns the
    pushes refused because the ring was full (each retried at once) and the seconds
    the pushing took."""
    interval = MSG_LEVELS * 1e9 / rate
    full = 0
    clock = time.perf_counter_ns
    t0 = clock()
    m = 0
    while m < n_msgs:
        now = clock()
        while m < n_msgs and t0 + m * interval <= now:
            while not _stamp_and_push(ctl, data, stream, m * MSG_LEVELS, MSG_LEVELS):
                full += 1
            m += 1
        if burst_sleep_us:
            time.sleep(burst_sleep_us / 1e6)
    return full, (clock() - t0) / 1e9


def involuntary_switches(tid: int | None) -> int:
    """Times the OS preempted thread ``tid`` (Linux); -1 where unknown.  Each one parks
    the queued messages for a scheduler slice: the usual cause of the p99.9 tail."""
    try:
        with open(f"/proc/self/task/{tid}/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


FULL_SIDE_BOOKS = 100


def measure_full_side(depth: int, n_updates: int) -> dict[str, float]:
    """ns per update when every update is a new best bid (a market moving up), on
    sides that are full to the depth (each update evicts the worst level: a step of the
    run's start, and now and then a re-centring of the run; before the movable start it
    moved the whole row) and, as the control, on sides holding half the depth (nothing
    is evicted: the new level goes on top).  The benchmark mix above rarely meets a full
    side; a deep book of a venue with more levels than the store keeps always does."""
    out = {}
    for label, held in (("full", depth), ("room", depth // 2)):
        store = BookStore(FULL_SIDE_BOOKS, depth)
        snap = snapshot_block(FULL_SIDE_BOOKS, held)
        blk, mask = _as_ring_block(snap)
        stats = np.zeros(S_WORDS, np.int64)
        apply_records(store.hdr, store.px, store.sz, blk, mask, 0, snap.shape[1], NO_HIST,
                      stats)
        store.px[:, ASK, :] += 10 * MID  # asks far away: the rising bids never cross
        # with room, stop before the sides fill up
        n = min(n_updates, FULL_SIDE_BOOKS * (depth - held)) if held < depth else n_updates
        k = np.arange(n)
        upd = np.zeros((REC_FIELDS, n), np.int64)
        upd[R_BOOK] = k % FULL_SIDE_BOOKS
        upd[R_SIDE] = BID
        upd[R_PRICE] = MID + k // FULL_SIDE_BOOKS  # one tick above the book's best
        upd[R_SIZE] = 5
        upd[R_FLAGS] = F_END
        blk, mask = _as_ring_block(upd)
        c0 = time.thread_time()
        apply_records(store.hdr, store.px, store.sz, blk, mask, 0, n, NO_HIST, stats)
        out[label] = round((time.thread_time() - c0) / n * 1e9, 1)
    return out


def measure_torn_reads(seconds: float) -> dict[str, int]:
    from bench.torture import build_messages, check_reads, hammer

    store = BookStore(2, 32)
    data, mask, bounds = build_messages(2)
    stats = np.zeros(S_WORDS, np.int64)
    hammer(store.hdr, store.px, store.sz, data, mask, bounds, 1, NO_HIST, stats)
    check_reads(store.hdr, store.px, store.sz, 2, 1)
    dur = int(seconds * 1e9)
    res = []
    w = threading.Thread(target=hammer, args=(store.hdr, store.px, store.sz, data, mask,
                                              bounds, dur, NO_HIST, stats))
    r = threading.Thread(target=lambda: res.append(check_reads(store.hdr, store.px, store.sz,
                                                               2, dur)))
    w.start()
    r.start()
    w.join()
    r.join()
    reads, torn, changes = res[0]
    return {"reads": int(reads), "torn": int(torn), "states_seen": int(changes)}


def run(quick: bool = False) -> dict:
    # the machine is shared: say how busy it was, since every figure depends on it
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (-1.0,) * 3
    # the engine as shipped: the [platform] defaults (the TSC clock that stamps every
    # section and both ends of the latency figures; stores in transparent huge pages)
    platform.configure(PlatformSettings())
    n_updates = 600_000 if quick else 8_000_000
    apply, wall = {}, {}
    for depth in (20, 200, 1000):
        cpu, w = measure_apply(depth, n_updates)
        apply[str(depth)], wall[str(depth)] = round(cpu, 2), round(w, 2)
    # what the depth-1000 store got (huge pages are reported per allocation)
    platform_lines = [r.line() for r in platform.reports()]
    # Binance-style deep books: fewer of them (a 5000-book store would take 800 MB)
    cpu, w = measure_apply(5000, n_updates, DEEP_BOOKS)
    deep = {"5000": round(cpu, 2)}
    wall["5000"] = round(w, 2)
    base = measure_dict_baseline(1000, 1_000_000 if not quick else 300_000)
    bare = base["dict_bare"]
    reads = measure_reads()
    secs = 0.3 if quick else 2.0
    lat = {str(rate): measure_latency(rate, secs) for rate in (100_000, 500_000, 1_000_000)}
    # the control: the same path and load over CACHED_BOOKS books that stay in cache
    cached = measure_latency(500_000, secs, n_books=CACHED_BOOKS)
    floor = measure_handoff_floor(0.3 if quick else 2.0)
    # the same path with nothing applied, and the machine's own stalls (same run)
    null_path = measure_null_path(500_000, secs)
    stalls = measure_stalls(0.3 if quick else 2.0)
    torn = measure_torn_reads(0.5 if quick else 2.0)
    full_side = {str(d): measure_full_side(d, 20_000 if quick else 200_000)
                 for d in (200, 1000, 5000)}
    return {
        "apply_mups": apply,
        "apply_deep_mups": deep,
        "apply_wall_mups": wall,
        "apply_5000_books": DEEP_BOOKS,
        "load_average": [round(x, 2) for x in load_before],
        "dict_baseline_mups": round(bare, 2),
        "dict_with_touch_mups": round(base["dict_touch"], 3),
        "apply_vs_dict_at_1000": round(apply["1000"] / bare, 1),
        "apply_vs_dict_with_touch_at_1000": round(apply["1000"] / base["dict_touch"], 1),
        "baselines_mups": {k: None if v is None else round(v, 3) for k, v in base.items()},
        "apply_vs_baselines_at_1000": {k: None if v is None else round(apply["1000"] / v, 1)
                                       for k, v in base.items()},
        "read_ns": reads,
        "latency_ns": lat,
        "latency_cached_books_ns": {"books": CACHED_BOOKS, "500000": cached},
        "handoff_floor_ns": floor,
        "latency_null_path_ns": {"500000": null_path},
        "machine_stalls": stalls,
        "platform": platform_lines,
        "full_side_new_best_ns": full_side,
        "torn_reads": torn["torn"],
        "torture": torn,
        "books": N_BOOKS,
        "message_levels": MSG_LEVELS,
    }


def print_table(res: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="hftbook bench engine (5000 books, 8-level messages)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    for d, v in {**res["apply_mups"], **res["apply_deep_mups"]}.items():
        books = res["apply_5000_books"] if d == "5000" else res["books"]
        t.add_row(f"apply, depth {d} ({books} books)",
                  f"{v:.1f} M upd/s (wall {res['apply_wall_mups'][d]:.1f})",
                  ">= 20 at 1000" if d == "1000" else "")
    labels = {"dict_bare": "plain dict, bare set/pop (no sorted access)",
              "dict_touch": "plain dict + best bid/ask per message",
              "dict_best": "plain dict keeping its best bid/ask + crossed check",
              "sortedcontainers": "SortedDict book + best bid/ask per message",
              "order_book": "cryptofeed order-book (C) + best bid/ask per message"}
    for k, v in res["baselines_mups"].items():
        ratio = res["apply_vs_baselines_at_1000"][k]
        t.add_row(f"baseline: {labels.get(k, k)}, depth 1000",
                  "not installed" if v is None else f"{v:.3f} M upd/s, apply {ratio:.1f} x",
                  ">= 10 x" if k in ("dict_bare", "sortedcontainers") else "")
    targets = {"numba_top_of_book": "<= 20", "numba_top20_copy": "<= 150",
               "python_best_bid": "<= 1000", "python_top20": "<= 1000"}
    for k, v in res["read_ns"].items():
        t.add_row(f"read {k}", f"{v:.1f} ns", targets.get(k, ""))
    for rate, v in res["latency_ns"].items():
        t.add_row(f"latency @ {int(rate) // 1000}K upd/s offered",
                  f"p50 {v['p50']} / p99 {v['p99']} / p99.9 {v['p999']} ns "
                  f"(achieved {v['achieved_ups'] / 1000:.0f}K/s, ring full {v['ring_full']}, "
                  f"writer preempted {v['writer_preempted']}x, parked "
                  f"{v.get('writer_parks', -1)}x)",
                  "p99 <= 2000, p99.9 <= 20000 @500K" if rate == "500000" else "")
    c = res["latency_cached_books_ns"]
    v = c["500000"]
    t.add_row(f"control: latency @ 500K, {c['books']} books (in cache)",
              f"p50 {v['p50']} / p99 {v['p99']} / p99.9 {v['p999']} ns", "")
    v = res["latency_null_path_ns"]["500000"]
    t.add_row("floor: latency @ 500K with a writer that applies nothing (same producer, "
              "ring, spin)", f"p50 {v['p50']} / p99 {v['p99']} / p99.9 {v['p999']} ns", "")
    m = res["machine_stalls"]
    t.add_row("machine: stalls of a thread that never blocks (> 1 us over its work)",
              f"{m['stalls_per_s']}/s ({m['over_2us_per_s']}/s over 2 us), median "
              f"{m['median_stall_ns'] / 1000:.1f} us, {m['time_lost_pct']:.2f} % of the time",
              "")
    f = res["handoff_floor_ns"]
    t.add_row("floor: one cache line between two spinning threads (half a round trip)",
              f"p50 {f['p50']} / p99 {f['p99']} / p99.9 {f['p999']} ns "
              f"({f['handoffs']} handoffs, max {f['max']} ns)", "")
    for line in res["platform"]:  # "[on ]", "[madvise]": text, not Rich markup
        t.add_row("platform (shipped defaults; store of the depth-1000 run)", escape(line), "")
    for d, v in res["full_side_new_best_ns"].items():
        t.add_row(f"new best bid on a full side (evicts the worst), depth {d}",
                  f"{v['full']:.0f} ns per update (side with room: {v['room']:.0f} ns)", "")
    t.add_row("torn reads", f"{res['torn_reads']} in {res['torture']['reads']} reads "
              f"({res['torture']['states_seen']} states)", "0")
    t.add_row("machine load average (1/5/15 min) at the start",
              " / ".join(f"{x:.1f}" for x in res["load_average"]), "2 cores")
    console.print(t)
