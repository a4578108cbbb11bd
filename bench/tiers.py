"""`hftbook bench tiers`: the tier engine under a heavy-tailed load, against one pool.

Workload: 5000 books, one queue each (engine.queues); messages of 1 to 4 level
updates (2.5 on average) for a book drawn from a Zipf law (exponent 1.1: the top 16
books carry ~half the updates, ~4,500 books each see under 100/s).  Updates sit near
the touch (a few levels deep) with ~20 % deletes.  The producer pushes straight into
the queues, in bursts: every message that is due, then a 200 us sleep, as a
connector's event loop does between socket reads (a busy-waiting producer would take
a whole core of a 2-core machine away from the workers).

For each offered load (100K, 500K, 1M level updates/s) it runs the tier engine (hot /
warm / cold, thread counts from the cores) and then, as the baselines of the same run,
the same load with tiers off: every book in one work-stealing pool of as many threads;
and the pre-tier layout: one ring for all books and one writer thread.
Half way through each measured window the load shifts: SHIFT_BOOKS cold books take the
places of the hottest ones; with tiers the bench reports how many rebalance intervals
passed until the busiest of them was hot and none of them was cold any more.

Figures per run: receive -> visible latency p50 / p99 / p99.9 / max per tier (the
workers' histograms over the measured window), offered and achieved throughput, queue
depths (sampled every 20 ms), ring-full waits, steals, tier moves, and how often the OS
preempted the hot workers.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from bench.engine import involuntary_switches
from engine.atomics import monotonic_ns
from engine.classify import COLD, HOT, TIER_NAMES
from engine.constants import (
    ASK,
    BID,
    F_END,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_RECV,
    R_SEQ,
    R_SIDE,
    R_SIZE,
)
from engine.histogram import percentiles
from engine.queues import QueuePool, pool_nbytes, queue_capacity, queue_data
from engine.ring import C_HEAD, C_TAIL, ring_publish, ring_reserve
from engine.store import BookStore
from engine.tiers import TierConfig, TierEngine, auto_spin, auto_threads, available_cpus

N_BOOKS = 5000
DEPTH = 100                   # levels the bench books keep
QUEUE_LEVELS = 1000           # queues sized for 1000-level snapshots, as in a feed
SINGLE_RING = 1 << 16         # the single-writer baseline's one ring (config default)
ZIPF = 1.1
MID = 1_000_000
MEAN_LEVELS = 2.5
SHIFT_BOOKS = 5
SHIFT_FROM_RANK = 3000        # the cold books that turn hot: ranks 3000..3004
BURST_SLEEP_S = 200e-6
MAX_BURST = 2000              # messages per burst at most (5K level updates)
LOADS = (100_000, 500_000, 1_000_000)
MODES = ("tiers", "pool", "single")
TARGET = {"load": 500_000, "p99": 2_000, "p999": 20_000}

# producer state words
P_MSG = 0
P_RNG = 1
P_LEVELS = 2
P_FULL_WAITS = 3
P_WORDS = 4


def zipf_cdf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    c = np.cumsum(w)
    return c / c[-1]


@njit(nogil=True, inline="always")
def _next(x):
    x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
    return x


@njit(nogil=True, cache=True)
def push_due(ctl, buf, off, cap, cdf, perm, route, seqs, st, t0, interval_ns, now,
             max_msgs):
    """Generate and push every message due by ``now`` (message m is due at t0 + m *
    interval_ns).  A full queue stops the burst (counted in st[P_FULL_WAITS]); the
    message is retried after the caller's sleep, as a connector backs off.  At most
    ``max_msgs`` per call (a producer running behind still comes up for air).  Book b's
    messages go to queue route[b].  Returns messages pushed."""
    pushed = 0
    x = st[P_RNG]
    n = cdf.shape[0]
    while t0 + st[P_MSG] * interval_ns <= now and pushed < max_msgs:
        saved = x
        x = _next(x)
        u = (x >> 10) / float(1 << 53)
        lo = 0
        hi = n - 1
        while lo < hi:   # first rank whose cumulative share reaches u
            mid = (lo + hi) >> 1
            if cdf[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        b = perm[lo]
        levels = 1 + (x & 3)
        data = queue_data(buf, off, cap, route[b])
        c = ctl[route[b]]
        mask = data.shape[1] - 1
        head = ring_reserve(c, data.shape[1], levels)
        if head < 0:
            st[P_FULL_WAITS] += 1
            x = saved            # the same message again next time
            break
        seq = seqs[b] + 1
        seqs[b] = seq
        recv = monotonic_ns()
        for k in range(levels):
            x = _next(x)
            side = BID if x & 1 else ASK
            r = (x >> 1) & 63
            dist = r & 7 if r < 56 else (x >> 8) % DEPTH   # mostly near the touch
            price = MID - 1 - dist if side == BID else MID + 1 + dist
            size = 0 if (x >> 20) % 5 == 0 else 1 + (x >> 24) % 1000
            j = (head + k) & mask
            data[R_BOOK, j] = b
            data[R_SIDE, j] = side
            data[R_FLAGS, j] = F_END if k == levels - 1 else 0
            data[R_PRICE, j] = price
            data[R_SIZE, j] = size
            data[R_SEQ, j] = seq
            data[R_RECV, j] = recv
        ring_publish(c, head, levels)
        st[P_LEVELS] += levels
        st[P_MSG] += 1
        pushed += 1
    st[P_RNG] = x
    return pushed


def _tier_of_workers(engine) -> list[str]:
    return [TIER_NAMES[w.tier] for w in engine.workers]


class _SingleWriter:
    """The pre-tier layout as a second baseline: every book's messages in one ring, one
    engine.writer.Writer (what ``[tiers] mode = "single"`` runs).  Offers the few
    TierEngine attributes the run loop reads."""

    def __init__(self, store, pool: QueuePool) -> None:
        from types import SimpleNamespace

        from engine.classify import WARM
        from engine.writer import Writer

        rings = SimpleNamespace(ctl=pool.ctl, data=pool.buf.reshape(1, -1, int(pool.cap[0])))
        self.writer = Writer(store, rings, [0], name="single-0", batch=64)
        self.writer.tier = WARM
        self.workers = [self.writer]
        self.tier = np.full(store.n_books, WARM, np.int8)
        self.moves_total = self.rebalances = self.move_busy = 0

    def start(self):
        self.writer.start()
        self.writer.thread = self.writer._thread
        return self

    def stop(self) -> None:
        self.writer.stop()

    def counters(self) -> list[dict]:
        return [{"records": self.writer.counters()["records"], "steals": 0}]


def run_load(load: int, mode: str, warm: float, measure: float, interval: float,
             seed: int = 1) -> dict:
    """One run: ``load`` level updates/s offered for warm + measure seconds."""
    store = BookStore(N_BOOKS, DEPTH)
    for b in range(N_BOOKS):
        store.configure(b, f"sym{b}", 2, 4)
    if mode == "single":
        pool = QueuePool([SINGLE_RING])
        route = np.zeros(N_BOOKS, np.int64)
        engine = _SingleWriter(store, pool)
    else:
        # sized as a depth-1000 feed sizes them (a full snapshot fits): 2048 records a book
        pool = QueuePool([queue_capacity(QUEUE_LEVELS)] * N_BOOKS)
        route = np.arange(N_BOOKS, dtype=np.int64)
        engine = TierEngine(store, pool, TierConfig(mode=mode, rebalance_interval=interval))
    cdf = zipf_cdf(N_BOOKS, ZIPF)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N_BOOKS).astype(np.int64)    # rank -> book
    seqs = np.zeros(N_BOOKS, np.int64)
    st = np.zeros(P_WORDS, np.int64)
    st[P_RNG] = 0x2545F4914F6CDD1D + seed
    interval_ns = 1e9 * MEAN_LEVELS / load
    shifted = perm[SHIFT_FROM_RANK:SHIFT_FROM_RANK + SHIFT_BOOKS].copy()
    push_due(pool.ctl, pool.buf, pool.off, pool.cap, cdf, perm, route, seqs, st, 1 << 62,
             interval_ns, 0, 1)                   # compile (nothing is due) before timing
    engine.start()
    workers = engine.workers
    tiers_of = _tier_of_workers(engine)
    t_start = time.monotonic_ns()   # the clock monotonic_ns() reads in kernels
    t_measure = t_start + int(warm * 1e9)
    t_shift = t_measure + int(measure * 1e9 / 2)
    t_end = t_measure + int(measure * 1e9)
    base_hist = None
    base = {}
    depth_samples: dict[str, list[int]] = {}
    max_queue = 0
    next_sample = t_measure
    shift_done = False
    shift_rebalances = None
    shift_seconds = None
    rebalances_at_shift = 0
    hot_ids = [w.thread.native_id for w in workers if w.tier == HOT]
    while True:
        now = time.monotonic_ns()
        if now >= t_end:
            break
        push_due(pool.ctl, pool.buf, pool.off, pool.cap, cdf, perm, route, seqs, st, t_start,
                 interval_ns, now, MAX_BURST)
        if base_hist is None and now >= t_measure:
            base_hist = [w.hist.copy() for w in workers]
            base = {"levels": int(st[P_LEVELS]), "t": now, "full": int(st[P_FULL_WAITS]),
                    "records": [c["records"] for c in engine.counters()],
                    "steals": sum(c["steals"] for c in engine.counters()),
                    "moves": engine.moves_total,
                    "switches": [involuntary_switches(t) for t in hot_ids]}
        if not shift_done and now >= t_shift:   # cold books take the hottest ranks
            top = perm[:SHIFT_BOOKS].copy()
            perm[:SHIFT_BOOKS] = shifted
            perm[SHIFT_FROM_RANK:SHIFT_FROM_RANK + SHIFT_BOOKS] = top
            shift_done = True
            rebalances_at_shift = engine.rebalances
        # reclassified: the busiest shifted book is hot and none of them is cold any more
        # (the hot tier's load budget may keep the others warm)
        if shift_done and shift_seconds is None and mode == "tiers" \
                and engine.tier[shifted[0]] == HOT and (engine.tier[shifted] != COLD).all():
            shift_seconds = (now - t_shift) / 1e9
            shift_rebalances = engine.rebalances - rebalances_at_shift
        if base_hist is not None and now >= next_sample:
            next_sample = now + 20_000_000
            depth = pool.ctl[:, C_HEAD] - pool.ctl[:, C_TAIL]
            max_queue = max(max_queue, int(depth.max()))
            if mode == "single":
                depth_samples.setdefault("warm", []).append(int(depth.sum()))
            else:
                for t, name in enumerate(TIER_NAMES):
                    depth_samples.setdefault(name, []).append(
                        int(depth[engine.tier == t].sum()))
        time.sleep(BURST_SLEEP_S)
    t_stop = time.monotonic_ns()
    elapsed = (t_stop - base["t"]) / 1e9
    counters = engine.counters()
    switches = [involuntary_switches(t) for t in hot_ids]
    hists = [w.hist.copy() - h0 for w, h0 in zip(workers, base_hist)]
    moves = engine.moves_total - base["moves"]
    tier_counts = {name: int((engine.tier == t).sum()) for t, name in enumerate(TIER_NAMES)}
    engine.stop()
    applied = sum(c["records"] for c in counters) - sum(base["records"])
    per_tier = {}
    for name in TIER_NAMES:
        idx = [i for i, t in enumerate(tiers_of) if t == name]
        if not idx:
            continue
        h = sum(hists[i] for i in idx)
        p = percentiles(h)
        d = depth_samples.get(name, [0])
        per_tier[mode if mode in ("pool", "single") else name] = {
            "threads": len(idx), "messages": p["count"], "p50": p["p50"], "p99": p["p99"],
            "p999": p["p999"], "max": p["max"],
            "depth_mean": round(float(np.mean(d)), 1), "depth_max": int(max(d))}
    out = {
        "mode": mode, "offered_ups": load,
        "produced_ups": round((st[P_LEVELS] - base["levels"]) / elapsed),
        "applied_ups": round(applied / elapsed),
        "tiers": per_tier, "max_queue_depth": max_queue,
        "ring_full": int(st[P_FULL_WAITS]) - base["full"],
        "steals": sum(c["steals"] for c in counters) - base["steals"],
        "moves": moves, "books_per_tier": tier_counts, "rebalances": engine.rebalances,
        "moves_refused_busy": engine.move_busy,
        "hot_preempted": sum(b - a for a, b in zip(base["switches"], switches)),
        "seconds": round(elapsed, 2),
    }
    if mode == "tiers":
        out["shift"] = {"books": SHIFT_BOOKS, "interval_s": interval,
                        "rebalances_until_hot": shift_rebalances,
                        "seconds_until_hot": None if shift_seconds is None
                        else round(shift_seconds, 3)}
    return out


def scaling_table() -> list[dict]:
    rows = []
    for n in (2, 4, 8, 16, 32, 64):
        h, w, c = auto_threads(n)
        pol = auto_spin(h + w + c, n)
        rows.append({"cores": n, "hot": h, "warm": w, "cold": c,
                     "hot_spin": pol[HOT].spin, "warm_spin": pol[1].spin})
    return rows


def run(quick: bool = False) -> dict:
    warm, measure, interval = (0.6, 1.6, 0.25) if quick else (1.5, 4.0, 0.5)
    runs = []
    for load in LOADS:
        for mode in MODES:
            runs.append(run_load(load, mode, warm, measure, interval))
    ncpu = len(available_cpus())
    return {
        "books": N_BOOKS, "zipf": ZIPF, "mean_levels_per_message": MEAN_LEVELS,
        "cpus": ncpu, "threads": dict(zip(("hot", "warm", "cold"), auto_threads(ncpu))),
        "scaling": scaling_table(), "runs": runs,
        "queue_memory_mib_5000_books_depth_1000": round(
            pool_nbytes([queue_capacity(1000)] * 5000) / 2**20, 1),
        "target": TARGET,
    }


def _us(ns: int) -> str:
    return f"{ns / 1e3:.1f}"


def print_table(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title=f"hftbook bench tiers ({res['books']} books, Zipf {res['zipf']}, "
                    f"{res['mean_levels_per_message']} levels/message, {res['cpus']} cpus: "
                    f"hot {res['threads']['hot']} / warm {res['threads']['warm']} / "
                    f"cold {res['threads']['cold']} threads)")
    for col in ("offered", "mode", "tier", "thr", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
                "applied/s", "depth mean/max", "notes"):
        t.add_column(col, justify="right" if col not in ("mode", "tier", "notes") else "left")
    for r in res["runs"]:
        first = True
        for name, v in r["tiers"].items():
            notes = ""
            if first:
                notes = (f"steals {r['steals']}, moves {r['moves']}, queue full "
                         f"{r['ring_full']}, hot preempted {r['hot_preempted']}x")
                if "shift" in r:
                    s = r["shift"]
                    notes += (f"; shift: reclassified after {s['rebalances_until_hot']} rebalances "
                              f"({s['seconds_until_hot']} s, interval {s['interval_s']} s)")
            t.add_row(f"{r['offered_ups'] // 1000}K" if first else "",
                      r["mode"] if first else "", name, str(v["threads"]), _us(v["p50"]),
                      _us(v["p99"]), _us(v["p999"]), _us(v["max"]),
                      f"{r['applied_ups'] / 1000:.0f}K" if first else "",
                      f"{v['depth_mean']:.0f} / {v['depth_max']}", notes)
            first = False
    console.print(t)
    s = Table(title="auto thread counts by cores (one core left to the event loop)")
    for col in ("cores", "hot", "warm", "cold", "hot spin polls", "warm spin polls"):
        s.add_column(col, justify="right")
    for row in res["scaling"]:
        s.add_row(*(str(row[k]) for k in ("cores", "hot", "warm", "cold", "hot_spin",
                                           "warm_spin")))
    console.print(s)
    tg = res["target"]
    hot = next((r["tiers"].get("hot") for r in res["runs"]
                if r["mode"] == "tiers" and r["offered_ups"] == tg["load"]), None)
    if hot:
        ok = hot["p99"] <= tg["p99"] and hot["p999"] <= tg["p999"]
        console.print(f"target @ {tg['load'] // 1000}K upd/s: hot p99 <= {_us(tg['p99'])} µs, "
                      f"p99.9 <= {_us(tg['p999'])} µs -> hot p99 {_us(hot['p99'])} µs, "
                      f"p99.9 {_us(hot['p999'])} µs: {'met' if ok else 'MISSED'}")
    console.print(f"per-book queues for 5000 books at depth 1000: "
                  f"{res['queue_memory_mib_5000_books_depth_1000']} MiB")
