"""Tier engine: handoff correctness under stress (steals and tier moves racing
producers and readers), hysteresis, reclassification, thread counts, monitoring."""

import threading
import time

import numpy as np
from numba import njit

from engine.atomics import load_acquire, monotonic_ns, sched_yield
from engine.classify import COLD, HOT, WARM, Thresholds, classify
from engine.constants import (
    BID,
    F_END,
    H_ABSENT_DELETES,
    H_BID_LO,
    H_EXCH_SEQ,
    H_MESSAGES,
    H_NASK,
    H_NBID,
    HDR_WORDS,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
)
from engine.queues import QueuePool, queue_capacity, queue_data
from engine.read import top_slot
from engine.ring import C_HEAD, C_OWNER, C_TAIL, ring_publish, ring_reserve
from engine.seqlock import read_begin, read_valid
from engine.store import BookStore
from engine.tiers import TierConfig, TierEngine, auto_spin, auto_threads
from engine.tierworker import T_NLIST, T_WORDS, steal_one

SECONDS = 3.0
BASE = 100   # message s sets bid BASE + s % 4 to size s and deletes the level of s - 1


@njit(nogil=True, cache=True)
def _push_numbered(ctl, buf, off, cap, b, s, now):
    """Message ``s`` of book ``b``: two records, all or nothing; False if full."""
    data = queue_data(buf, off, cap, b)
    c = ctl[b]
    n = 2 if s > 1 else 1
    head = ring_reserve(c, data.shape[1], n)
    if head < 0:
        return False
    mask = data.shape[1] - 1
    j = head & mask
    data[R_BOOK, j] = b
    data[R_SIDE, j] = BID
    data[R_FLAGS, j] = 0 if n == 2 else F_END
    data[R_PRICE, j] = BASE + s % 4
    data[R_SIZE, j] = s
    data[R_SEQ, j] = s
    data[R_RECV, j] = now
    if n == 2:
        j = (head + 1) & mask
        data[R_BOOK, j] = b
        data[R_SIDE, j] = BID
        data[R_FLAGS, j] = F_END
        data[R_PRICE, j] = BASE + (s - 1) % 4
        data[R_SIZE, j] = 0
        data[R_SEQ, j] = s
        data[R_RECV, j] = now
    ring_publish(c, head, n)
    return True


@njit(nogil=True, cache=True)
def _produce(ctl, buf, off, cap, books, seqs, dur_ns, stop, gap_ns=0):
    """Push numbered messages to ``books`` (skewed: low indices much busier) until
    dur_ns passes or stop[0] is set, at most one per ``gap_ns``; seqs[b] = last pushed.
    Returns messages pushed."""
    t_end = monotonic_ns() + dur_ns
    nxt = 0
    x = 88172645463325252 + books[0]
    pushed = 0
    k = 0
    while load_acquire(stop, 0) == 0:
        if k & 255 == 0 and monotonic_ns() >= t_end:
            break
        k += 1
        x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
        r = (x >> 3) % 1000
        i = r * r * books.shape[0] // 1_000_000      # quadratic skew: a few hot books
        b = books[i]
        s = seqs[b] + 1
        if gap_ns:
            while monotonic_ns() < nxt:
                pass
            nxt = monotonic_ns() + gap_ns
        if _push_numbered(ctl, buf, off, cap, b, s, monotonic_ns()):
            seqs[b] = s
            pushed += 1
        elif k & 63 == 0:
            sched_yield()
    return pushed


@njit(nogil=True, cache=True)
def _read_check(hdr, px, sz, n_books, dur_ns, last_seen):
    """Race the workers: every consistent copy must show the invariant of a whole
    message, and each book's sequence must never go backwards.  Returns
    (reads, violations, retries)."""
    t_end = monotonic_ns() + dur_ns
    reads = 0
    bad = 0
    retries = 0
    b = 0
    while monotonic_ns() < t_end:
        for _ in range(64):
            b = (b + 1) % n_books
            while True:
                s0 = read_begin(hdr, b)
                h = b * HDR_WORDS
                seq = hdr[h + H_EXCH_SEQ]
                t, nb = top_slot(hdr, h, BID, px.shape[2])  # the best bid's slot
                na = hdr[h + H_NASK]
                p = px[b, BID, t] if nb > 0 else 0
                q = sz[b, BID, t] if nb > 0 else 0
                if read_valid(hdr, b, s0):
                    break
                retries += 1
            reads += 1
            if seq > 0:
                if nb != 1 or na != 0 or p != BASE + seq % 4 or q != seq:
                    bad += 1
            if seq < last_seen[b]:
                bad += 1
            last_seen[b] = seq
    return reads, bad, retries


def _engine(n_books, **kw):
    store = BookStore(n_books, 8)
    for b in range(n_books):
        store.configure(b, f"B{b}", 0, 0)
    pool = QueuePool([256] * n_books)
    cfg = TierConfig(**{"hot_threads": 1, "warm_threads": 2, "cold_threads": 1,
                        "rebalance_interval": 1e6, "spin": 200, "park_us": 50, **kw})
    return store, pool, TierEngine(store, pool, cfg)


def test_handoff_stress_steals_and_moves_lose_nothing_and_keep_order():
    n_books = 48
    store, pool, eng = _engine(n_books, thresholds=Thresholds(2000, 1000, 100, 25))
    seqs = np.zeros(n_books, np.int64)
    stop = np.zeros(1, np.int64)
    last_seen = np.zeros(n_books, np.int64)
    halves = [np.arange(0, n_books, 2, dtype=np.int64), np.arange(1, n_books, 2, dtype=np.int64)]
    # compile before racing
    eng.move(0, eng.ids[COLD][0])
    eng.rebalance(rates=np.zeros(n_books))
    _read_check(store.hdr, store.px, store.sz, n_books, 0, last_seen.copy())
    _produce(pool.ctl, pool.buf, pool.off, pool.cap, halves[0], seqs.copy(), 0, stop)
    out = {}
    moves = []
    rng = np.random.default_rng(3)
    levels = np.array([0.0, 50.0, 500.0, 5000.0])
    with eng:
        threads = [threading.Thread(target=lambda i=i: out.__setitem__(
            f"p{i}", _produce(pool.ctl, pool.buf, pool.off, pool.cap, halves[i], seqs,
                              int(SECONDS * 1e9), stop, 2000))) for i in range(2)]
        threads.append(threading.Thread(target=lambda: out.__setitem__(
            "r", _read_check(store.hdr, store.px, store.sz, n_books, int(SECONDS * 1e9),
                             last_seen))))
        for t in threads:
            t.start()
        deadline = time.monotonic() + SECONDS
        k = 0
        while time.monotonic() < deadline:   # the mover: books change tier constantly
            moves += eng.rebalance(rates=rng.choice(levels, n_books))
            k += 1
            if k % 2 == 0:   # pile every warm book onto warm-0: warm-1 must steal
                for b in np.flatnonzero(eng.tier == WARM):
                    eng.move(int(b), eng.ids[WARM][0])
            time.sleep(0.002)
        for t in threads:
            t.join()
    counters = eng.counters()
    reads, bad, _retries = out["r"]
    assert out["p0"] + out["p1"] > 10_000
    assert reads > 10_000 and bad == 0
    assert len(moves) > 200 and {m[2] for m in moves} == {"hot", "warm", "cold"}
    assert sum(c["steals"] for c in counters) > 0, counters
    assert sum(c["bad_records"] for c in counters) == 0
    for b in range(n_books):
        h = b * HDR_WORDS
        assert store.hdr[h + H_EXCH_SEQ] == seqs[b], b            # the last one, applied
        assert store.hdr[h + H_MESSAGES] == seqs[b], b            # each exactly once
        assert store.hdr[h + H_ABSENT_DELETES] == 0, b            # never out of order
        if seqs[b]:
            assert store.hdr[h + H_NBID] == 1
            lo = store.hdr[h + H_BID_LO]
            assert store.px[b, BID, lo] == BASE + seqs[b] % 4
            assert store.sz[b, BID, lo] == seqs[b]
        assert pool.ctl[b, C_HEAD] == pool.ctl[b, C_TAIL]              # every queue drained
    snap = eng.snapshot()
    assert sum(w["records"] for w in snap["workers"]) == int(pool.ctl[:, C_HEAD].sum())
    assert sum(int(w["latency_hist"].sum()) for w in snap["workers"]) == int(seqs.sum())


def test_steal_takes_only_an_idle_owned_queue_from_a_busy_victim():
    """The steal rule on hand-made worker state (no threads): victim 0 lists queues
    1..3 (and a stale entry for queue 0, which worker 1 owns)."""
    n = 4
    ctl = np.zeros((n, 32), np.int64)
    wctl = np.zeros((2, T_WORDS), np.int64)
    lists = np.full((2, n), -1, np.int64)
    lists[0, :4] = [1, 2, 3, 0]
    wctl[0, T_NLIST] = 4
    for q in (1, 2, 3):
        ctl[q, C_OWNER] = 1                      # owned by worker 0, idle
    ctl[0, C_OWNER] = 2
    ctl[0, C_HEAD] = 1000                        # not the victim's: neither counted nor taken
    ctl[2, C_HEAD] = 5                           # 5 records waiting in queue 2
    victims = np.array([0, 1], np.int64)
    # victim keeping up (5 records waiting < 64): no steal
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == -1
    # victim behind, but consuming the only full queue itself: nothing to take
    ctl[2, C_HEAD] = 100
    ctl[2, C_OWNER] = -1
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == -1
    # victim consuming queue 2 while queue 3 waits: the total counts, queue 3 is taken
    ctl[3, C_HEAD] = 7
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == 3
    assert ctl[3, C_OWNER] == 2 and ctl[2, C_OWNER] == -1
    # a preempted victim (consuming nothing) that is behind: its fullest queue goes
    ctl[2, C_OWNER] = 1
    ctl[1, C_HEAD] = 80
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == 2
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == 1
    assert steal_one(1, wctl, lists, ctl, victims, 0, 64) == -1   # nothing left to take


def test_hysteresis_does_not_flap():
    th = Thresholds(hot_up=2000, hot_down=1000, warm_up=100, warm_down=25)
    tiers = np.array([COLD, COLD], np.int8)
    history = []
    for k in range(40):   # rates oscillate around the midpoints of both boundaries
        rates = np.array([1500 + (400 if k % 2 else -400), 60 + (30 if k % 2 else -30)])
        if k == 0:
            rates = np.array([2500.0, 150.0])   # first: cross both upper thresholds
        tiers = classify(rates, tiers, th)
        history.append(tuple(tiers))
    assert history[0] == (HOT, WARM)
    assert set(history) == {(HOT, WARM)}
    # a single threshold at the midpoints would have flapped every interval
    single = Thresholds(hot_up=1500, hot_down=1499.999, warm_up=60, warm_down=59.999)
    tiers = np.array([HOT, WARM], np.int8)
    flips = 0
    for k in range(40):
        rates = np.array([1500 + (400 if k % 2 else -400), 60 + (30 if k % 2 else -30)])
        new = classify(rates, tiers, single)
        flips += int((new != tiers).sum())
        tiers = new
    assert flips >= 60
    # and the thresholds still move books that really changed
    assert tuple(classify(np.array([900.0, 10.0]), np.array([HOT, WARM], np.int8), th)) == \
        (WARM, COLD)
    assert tuple(classify(np.array([10.0, 10.0]), np.array([HOT, HOT], np.int8), th)) == \
        (COLD, COLD)


def test_engine_rebalance_oscillating_rates_moves_once():
    n_books = 8
    _store, _pool, eng = _engine(n_books)
    rates = np.zeros(n_books)
    total = 0
    for k in range(20):
        rates[:] = 10.0
        rates[3] = 1500 + (450 if k % 2 else -450)
        if k == 0:
            rates[3] = 2100.0
        total += len(eng.rebalance(rates=rates))
    assert eng.tier[3] == HOT
    # first call: book 3 up, the other 7 down to cold; nothing after that
    assert total == n_books


def test_hot_capacity_and_static_hot_list():
    th = Thresholds()
    rates = np.array([5000.0, 9000.0, 7000.0, 3000.0, 0.0])
    pinned = np.array([False, False, False, False, True])
    new = classify(rates, np.full(5, WARM, np.int8), th, pinned, hot_capacity=3)
    assert list(new) == [WARM, HOT, HOT, WARM, HOT]
    # already-hot books keep their places over newcomers less than twice as busy ...
    new2 = classify(np.array([5000.0, 9000.0, 7000.0, 13000.0, 0.0]), new, th, pinned, 3)
    assert list(new2) == [WARM, HOT, HOT, WARM, HOT]
    # ... but not over much busier ones
    new3 = classify(np.array([5000.0, 9000.0, 7000.0, 30000.0, 0.0]), new, th, pinned, 3)
    assert list(new3) == [WARM, HOT, WARM, HOT, HOT]
    # a load budget admits the busiest books while their summed rate fits
    new4 = classify(rates, np.full(5, WARM, np.int8), th, pinned, hot_load=17000.0)
    assert list(new4) == [WARM, HOT, HOT, WARM, HOT]
    new5 = classify(np.array([50000.0, 9000.0, 0.0]), np.full(3, WARM, np.int8), th,
                    hot_load=10000.0)
    assert list(new5) == [HOT, WARM, COLD]      # the busiest is admitted even over budget
    store = BookStore(5, 8)
    for b in range(5):
        store.configure(b, f"X{b}", 0, 0)
    eng = TierEngine(store, QueuePool([64] * 5), TierConfig(hot=("X4",), hot_threads=1))
    assert eng.tier[4] == HOT and eng.owners()[4] == 0
    eng.rebalance(rates=np.zeros(5))
    assert eng.tier[4] == HOT   # pinned: never demoted


def test_reclassification_within_two_intervals():
    n_books = 8
    interval = 0.2
    store, pool, eng = _engine(n_books, rebalance_interval=interval)
    seqs = np.zeros(n_books, np.int64)
    stop = np.zeros(1, np.int64)
    _produce(pool.ctl, pool.buf, pool.off, pool.cap, np.array([5], np.int64), seqs, 0, stop)
    with eng:
        deadline = time.monotonic() + 10
        while eng.tier[5] != COLD and time.monotonic() < deadline:   # idle: demoted
            time.sleep(0.01)
        assert eng.tier[5] == COLD
        at_shift = eng.rebalances
        done = []
        t = threading.Thread(target=lambda: done.append(_produce(
            pool.ctl, pool.buf, pool.off, pool.cap, np.array([5], np.int64), seqs,
            int(10e9), stop)))
        t.start()
        while eng.tier[5] != HOT and time.monotonic() < deadline + 10:
            time.sleep(0.005)
        took = eng.rebalances - at_shift
        stop[0] = 1
        t.join()
    assert eng.tier[5] == HOT
    assert took <= 2, took
    assert store.hdr[5 * HDR_WORDS + H_EXCH_SEQ] == seqs[5]


def test_thread_counts_follow_the_cores():
    assert auto_threads(1) == (1, 1, 1)
    assert auto_threads(2) == (1, 1, 1)
    h8, w8, c8 = auto_threads(8)
    h32, w32, c32 = auto_threads(32)
    assert h8 + w8 + c8 == 7 and c8 == 1
    assert h32 > h8 and w32 > w8 and h32 + w32 + c32 == 31
    # 2 cores: three workers + the event loop do not fit, so nobody spins long
    tight = auto_spin(3, 2)
    roomy = auto_spin(3, 8)
    assert tight[HOT].spin < roomy[HOT].spin and tight[WARM].spin < roomy[WARM].spin
    assert tight[COLD].spin == 0
    assert TierConfig(ncpu=2).resolved() == (1, 1, 1)
    assert TierConfig(ncpu=16, mode="pool").resolved() == (0, 15, 0)


def test_queue_capacity_holds_a_full_snapshot():
    assert queue_capacity(1000) == 2048          # 2 * 1000 + checksum + status = 2002
    assert queue_capacity(1023) == 2048          # exactly full
    assert queue_capacity(1024) == 4096          # 2048 would be 2 short
    assert queue_capacity(5) == 256              # the floor
    pool = QueuePool([256, 2048, 64])
    assert pool.data(1).shape == (8, 2048) and pool.data(2).shape == (8, 64)
    pool.data(1)[:] = 7
    assert (pool.data(0) == 0).all() and (pool.data(2) == 0).all()


def test_snapshot_contract():
    n_books = 6
    _store, pool, eng = _engine(n_books)
    seqs = np.zeros(n_books, np.int64)
    with eng:
        _produce(pool.ctl, pool.buf, pool.off, pool.cap, np.arange(n_books, dtype=np.int64),
                 seqs, int(0.1e9), np.zeros(1, np.int64))
        eng.rebalance()
        snap = eng.snapshot()
    assert {w["tier"] for w in snap["workers"]} == {"hot", "warm", "cold"}
    for w in snap["workers"]:
        assert isinstance(w["name"], str) and isinstance(w["native_id"], int)
        for k in ("records", "steals", "queue_depth"):
            assert isinstance(w[k], int)
        assert w["latency_hist"].dtype == np.int64 and w["apply_hist"].dtype == np.int64
    assert sum(int(w["apply_hist"].sum()) for w in snap["workers"]) > 0
    r = snap["rings"]
    assert r["depth"].dtype == np.int64 and len(r["depth"]) == n_books
    assert list(r["capacity"]) == [256] * n_books and r["full"].dtype == np.int64
    assert r["tier"].dtype == np.int8
    assert sum(snap["tier_counts"].values()) == n_books
    rb = snap["rebalance"]
    assert rb["count"] == 1 and rb["at_ns"] > 0
    assert all(isinstance(m, tuple) and len(m) == 3 for m in rb["moves"])
