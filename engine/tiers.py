"""The tier engine: hot, warm and cold worker threads over per-book queues, and a
rebalancer that moves books between tiers as their update rates change.

* hot:  N dedicated workers, each owning a fixed set of books (optionally pinned);
        they never steal and are never stolen from.
* warm: M workers that steal whole book queues from busy peers (engine.tierworker).
* cold: one worker applying batches for every cold book (long park, no spin).
* rebalancer: every ``rebalance_interval`` it measures each queue's push rate (the
  producer's head), reclassifies with hysteresis (engine.classify) and moves books
  with the same CAS handoff a steal uses (engine.handoff): no update is lost or
  reordered and readers never notice.

mode "pool" is the baseline without tiers: every book in one work-stealing pool of
as many threads, no rebalancing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from engine import platform
from engine.classify import COLD, HOT, TIER_NAMES, WARM, Thresholds, classify
from engine.constants import H_SEQLOCK, HDR_WORDS
from engine.doublebuf import DoubleBuffer
from engine.handoff import MOVE_BUSY, MOVE_DONE, inbox_push, move_queue, move_queues
from engine.histogram import new_hist
from engine.kernels import S_WORDS
from engine.platform import rt_safe_params, setup_writer_thread
from engine.queues import QueuePool
from engine.ring import C_FULL, C_HEAD, C_OWNER, C_TAIL
from engine.tierworker import (
    T_BATCHES,
    T_DEPTH,
    T_IN_HEAD,
    T_IN_TAIL,
    T_LOOPS,
    T_LOST,
    T_NLIST,
    T_PARKS,
    T_RECORDS,
    T_RUNNING,
    T_SPINS,
    T_STEALS,
    T_STOP,
    T_WORDS,
    T_YIELDS,
    run_tier_worker,
)
from engine.writer import pin_current_thread

log = logging.getLogger("hftbook.tiers")

MODES = ("tiers", "pool")   # Feed also knows "single" (engine.writer, no tier engine)
MOVE_TRIES = 200_000   # CAS attempts (with a pause) while the owner is consuming
COLD_PACE_US = 500     # the cold worker sweeps its queues at most every 0.5 ms
WARM_NICE = 1          # when threads share cores, the hot workers win them more often
COLD_NICE = 3


def available_cpus() -> list[int]:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def auto_threads(ncpu: int) -> tuple[int, int, int]:
    """(hot, warm, cold) worker counts for ``ncpu`` cores.  One core is left to the
    asyncio event loop (the producer); on 2 cores the three tiers share one core, so
    the spin policy (``auto_spin``) makes them yield and park instead of spinning."""
    if ncpu <= 2:
        return 1, 1, 1
    usable = ncpu - 1
    hot = max(1, usable // 4)
    cold = 1
    warm = max(1, usable - hot - cold)
    return hot, warm, cold


@dataclass(frozen=True)
class IdlePolicy:
    spin: int       # polls with a pause hint
    yields: int     # then sched_yield polls
    park_us: int    # then sleeps of this many microseconds
    pace_us: int = 0  # > 0: sleep this long after every poll that emptied its queues
    nice: int = 0   # thread niceness: quieter tiers yield the CPU to the hot one


def auto_spin(threads: int, ncpu: int, spin: int | None = None,
              park_us: int | None = None) -> dict[int, IdlePolicy]:
    """Idle policy per tier.  When the workers plus the event loop fit the cores, hot
    and warm workers spin long (lowest latency); when they do not, spinning is cut
    short so nothing busy-spins away the core the event loop needs.  Cold workers never
    spin and sweep at most every COLD_PACE_US.  Warm and cold threads run at a higher
    niceness, so where threads share a core the scheduler favours the hot ones."""
    fits = threads + 1 <= ncpu
    hot_spin = spin if spin is not None else (200_000 if fits else 200)
    warm_spin = spin if spin is not None else (20_000 if fits else 200)
    # sharing cores with other runnable threads, sched_yield hands the core away for a
    # whole slice, while a short sleep wakes with the scheduler's sleeper credit: there,
    # go from spinning straight to parking
    yields = 200 if fits else 0
    return {
        HOT: IdlePolicy(hot_spin, yields, park_us if park_us is not None else 20),
        WARM: IdlePolicy(warm_spin, yields, park_us if park_us is not None else 50,
                         nice=WARM_NICE),
        COLD: IdlePolicy(0, 0, max(park_us or 0, 200), pace_us=COLD_PACE_US, nice=COLD_NICE),
    }


@dataclass
class TierConfig:
    """Tier engine settings (the ``[tiers]`` table of config.toml); None = auto."""

    mode: str = "tiers"
    hot_threads: int | None = None
    warm_threads: int | None = None
    cold_threads: int | None = None
    hot: tuple[str, ...] = ()             # book names always in the hot tier
    hot_max_books: int | None = None      # auto: HOT_BOOKS_PER_THREAD per hot worker
    hot_thread_load: float = 100_000.0    # records/s of hot books one hot worker takes
    thresholds: Thresholds = field(default_factory=Thresholds)
    rebalance_interval: float = 1.0
    batch: int = 64
    spin: int | None = None
    park_us: int | None = None
    pin: bool = False
    steal: bool = True
    ncpu: int | None = None               # override the detected core count (tests)
    # levels per side of the double-buffered copy hot workers publish (0: none; None:
    # [platform] double_buffer_hot, engine.platform)
    double_buffer: int | None = None

    @classmethod
    def from_table(cls, t: dict) -> TierConfig:
        """From a validated ``[tiers]`` table (hftbook.config); "auto" -> None."""
        def auto(v):
            return None if v == "auto" else v

        return cls(mode=t["mode"], hot_threads=auto(t["hot_threads"]),
                   warm_threads=auto(t["warm_threads"]), cold_threads=auto(t["cold_threads"]),
                   hot=tuple(t["hot"]), hot_max_books=auto(t["hot_max_books"]),
                   hot_thread_load=float(t["hot_thread_load"]),
                   thresholds=Thresholds(t["hot_up"], t["hot_down"], t["warm_up"],
                                         t["warm_down"]),
                   rebalance_interval=float(t["rebalance_interval"]), batch=t["batch"],
                   spin=auto(t["spin"]), park_us=auto(t["park_us"]), pin=t["pin"],
                   steal=t["steal"])

    def resolved(self) -> tuple[int, int, int]:
        ncpu = self.ncpu or len(available_cpus())
        h, w, c = auto_threads(ncpu)
        h = h if self.hot_threads is None else self.hot_threads
        w = w if self.warm_threads is None else self.warm_threads
        c = c if self.cold_threads is None else self.cold_threads
        if self.mode == "pool":
            return 0, h + w + c, 0
        return h, w, c

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"tiers mode must be one of {MODES}, got {self.mode!r}")
        h, w, c = self.resolved()
        if h < 0 or w < 1 or c < 0 or c > 1:
            raise ValueError(f"need hot >= 0, warm >= 1 and cold 0 or 1 threads, got "
                             f"{h}, {w}, {c}")
        if self.rebalance_interval <= 0:
            raise ValueError("rebalance_interval must be > 0")
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if self.hot_thread_load <= 0:
            raise ValueError("hot_thread_load must be > 0")
        self.thresholds.check()


HOT_BOOKS_PER_THREAD = 16
# the double-buffer arguments of a worker that publishes none (same types: one compile)
_NO_DB = (np.zeros(8, np.int64), np.zeros((1, 2, HDR_WORDS), np.int64),
          np.zeros((1, 2, 2, 1), np.int64), np.zeros((1, 2, 2, 1), np.int64))


def _renice_current_thread(nice: int) -> str:
    """Raise the calling thread's niceness (Linux: per thread; needs no privilege)."""
    if not nice:
        return "nice 0"
    if sys.platform != "linux":
        return f"nice unchanged on {sys.platform}"
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        return f"nice +{nice}"
    except OSError as exc:
        return f"nice unchanged: {exc}"


class _Worker:
    def __init__(self, engine: TierEngine, wid: int, tier: int, idx: int,
                 policy: IdlePolicy, cpu: int | None, victims: np.ndarray) -> None:
        self.engine = engine
        self.wid = wid
        self.tier = tier
        self.name = f"{TIER_NAMES[tier]}-{idx}"
        self.idx = idx
        self.policy = policy
        self.cpu = cpu
        self.victims = victims
        self.hist = new_hist()
        self.apply_hist = new_hist()
        self.stats = np.zeros(S_WORDS, dtype=np.int64)
        self.pin_report = "not started"
        self.nice_report = "not started"
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def main(self) -> None:
        e = self.engine
        p = self.policy
        spin, yields = p.spin, p.yields
        if self.tier == HOT:
            # [platform] pin_writers / realtime_priority apply to the hot workers; a
            # realtime thread must not spin long (RT throttling, engine.platform)
            self.pin_report = setup_writer_thread(self.idx, self.cpu)
            _, spin, yields, _ = rt_safe_params((0, spin, yields, p.park_us))
        else:
            self.pin_report = pin_current_thread(self.cpu)
            platform.setup_worker_thread()   # timer slack: parks wake when asked
        self.nice_report = _renice_current_thread(p.nice)
        db = e.double_buffer
        db_on = db is not None and self.tier == HOT
        db_arrays = db.arrays if db is not None else _NO_DB
        try:
            run_tier_worker(self.wid, e.wctl, e.lists, e.inbox, e.pool.ctl, e.pool.buf,
                            e.pool.off, e.pool.cap, e.store.hdr, e.store.px, e.store.sz,
                            e.config.batch, spin, yields, p.park_us, p.pace_us,
                            self.victims, self.hist, self.apply_hist, self.stats, db_on,
                            *db_arrays)
        except BaseException as exc:  # pragma: no cover - surfaced by stop()
            self.error = exc


class TierEngine:
    """Owns the worker threads and the rebalancer for one BookStore and its per-book
    QueuePool.  ``names`` (book names, for the static hot list) defaults to the store's."""

    def __init__(self, store, pool: QueuePool, config: TierConfig | None = None,
                 names: list[str] | None = None) -> None:
        self.config = config or TierConfig()
        self.config.check()
        if len(pool) != store.n_books:
            raise ValueError(f"{len(pool)} queues for {store.n_books} books")
        self.store = store
        self.pool = pool
        n = store.n_books
        self.ncpu = self.config.ncpu or len(available_cpus())
        h, w, c = self.config.resolved()
        self.counts = {"hot": h, "warm": w, "cold": c}
        names = names if names is not None else list(store.names)
        wanted = set(self.config.hot)
        unknown = wanted - set(names)
        if unknown:
            raise ValueError(f"tiers.hot: unknown book(s) {', '.join(sorted(unknown))}")
        self.pinned = np.array([nm in wanted for nm in names], dtype=bool)
        if self.config.mode == "pool":
            self.pinned[:] = False  # one pool: no tiers, so no hot list either
        if h == 0 and self.pinned.any():
            raise ValueError("tiers.hot lists books but there are no hot threads")
        self.hot_capacity = (self.config.hot_max_books if self.config.hot_max_books is not None
                             else HOT_BOOKS_PER_THREAD * h)
        nw = h + w + c
        self.wctl = np.zeros((nw, T_WORDS), dtype=np.int64)
        self.lists = np.full((nw, n), -1, dtype=np.int64)
        cap = 1
        while cap < 2 * n:
            cap *= 2
        self.inbox = np.zeros((nw, cap), dtype=np.int64)
        ids = {HOT: list(range(h)), WARM: list(range(h, h + w)), COLD: list(range(h + w, nw))}
        self.ids = ids
        policies = auto_spin(nw, self.ncpu, self.config.spin, self.config.park_us)
        cpus = available_cpus()
        warm_ids = np.asarray(ids[WARM] if self.config.steal else [], dtype=np.int64)
        no_victims = np.zeros(0, dtype=np.int64)
        self.workers: list[_Worker] = []
        for tier in (HOT, WARM, COLD):
            for i, wid in enumerate(ids[tier]):
                cpu = None
                if self.config.pin and tier == HOT and len(cpus) >= 2 and i < len(cpus) - 1:
                    cpu = cpus[-1 - i]   # the highest CPUs; the lowest keep the event loop
                victims = warm_ids if tier == WARM and len(warm_ids) > 1 else no_victims
                self.workers.append(_Worker(self, wid, tier, i, policies[tier], cpu, victims))
        self.double_buffer = self._double_buffer(store)
        self.tier = np.full(n, WARM, dtype=np.int8)
        self.tier[self.pinned] = HOT
        self._loads = np.zeros(nw)
        for b in range(n):
            self._assign_initial(b, self._pick(int(self.tier[b]), 0.0))
        self._lock = threading.Lock()
        self._prev = (time.monotonic_ns(), pool.pushed())
        self._avg: np.ndarray | None = None
        self.rebalances = 0
        self.rebalance_at_ns = 0
        self.last_moves: list[tuple[int, str, str]] = []
        self.moves_total = 0
        self.move_busy = 0
        self._stop = threading.Event()
        self._rebalancer: threading.Thread | None = None
        self._started = False

    def _double_buffer(self, store) -> DoubleBuffer | None:
        """A copy slot for every book (a book may become hot at any rebalance); only hot
        workers publish into it.  Off unless configured, or with no hot tier."""
        levels = self.config.double_buffer
        if levels is None:
            s = platform.settings()
            levels = s.double_buffer_hot if s is not None else 0
        if not levels or self.counts["hot"] == 0 or self.config.mode != "tiers":
            return None
        return DoubleBuffer(store, list(range(store.n_books)), min(levels, store.depth))

    def hot_top(self, book: int, n: int):
        """Top ``n`` levels of ``book`` as exact int64 (px[2, n], sz[2, n], nbid, nask,
        from_copy): the double-buffered copy when it is current (the book's seqlock has
        not moved since the hot worker published it), else one seqlock-validated read
        of the store.  A reader of a hot book thus never waits for a write section."""
        db = self.double_buffer
        if db is not None:
            px, sz, nb, na, src_seq = db.top_with_seq(book, n)
            if src_seq == int(self.store.hdr[book * HDR_WORDS + H_SEQLOCK]):
                return px, sz, nb, na, True
        t = self.store.book(book).top(n, exact=True)
        px = np.zeros((2, n), np.int64)
        sz = np.zeros((2, n), np.int64)
        px[0, :t.n_bid], sz[0, :t.n_bid] = t.bid_px, t.bid_sz
        px[1, :t.n_ask], sz[1, :t.n_ask] = t.ask_px, t.ask_sz
        return px, sz, t.n_bid, t.n_ask, False

    # -- assignment ------------------------------------------------------------------
    def _pick(self, tier: int, rate: float) -> int:
        """The least loaded worker of ``tier`` (load: summed rates of its books)."""
        ids = self.ids[tier]
        wid = min(ids, key=lambda i: self._loads[i])
        self._loads[wid] += max(rate, 1e-9)
        return wid

    def _assign_initial(self, b: int, wid: int) -> None:
        self.pool.ctl[b, C_OWNER] = wid + 1
        n = self.wctl[wid, T_NLIST]
        self.lists[wid, n] = b
        self.wctl[wid, T_NLIST] = n + 1

    def owners(self) -> np.ndarray:
        """Current owner worker id per queue (racy snapshot)."""
        v = self.pool.ctl[:, C_OWNER].copy()  # one read per word: it changes under us
        return np.where(v > 0, v - 1, -v - 1)

    def move(self, b: int, wid: int) -> bool:
        """Hand queue ``b`` to worker ``wid`` (the steal handoff); False if its owner
        stayed busy for the whole spin budget (try again later)."""
        with self._lock:
            outcome, _prev = move_queue(self.pool.ctl, b, wid, MOVE_TRIES)
            if outcome == MOVE_BUSY:
                self.move_busy += 1
                return False
            if outcome == MOVE_DONE:
                row = self.wctl[wid]
                deadline = time.monotonic() + 5.0
                while not inbox_push(row, T_IN_HEAD, T_IN_TAIL, self.inbox[wid], b):
                    if time.monotonic() > deadline:  # the worker is not draining its inbox
                        raise RuntimeError(f"worker {wid} inbox full for 5 s")
                    time.sleep(1e-4)
            return True

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> TierEngine:
        if self._started:
            raise RuntimeError("tier engine already started")
        self._started = True
        for wk in self.workers:
            wk.thread = threading.Thread(target=wk.main, name=f"tier-{wk.name}", daemon=True)
            wk.thread.start()
        deadline = time.monotonic() + timeout
        for wk in self.workers:
            while not self.wctl[wk.wid, T_RUNNING] and wk.thread.is_alive():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{wk.name} did not start within {timeout}s")
                time.sleep(0.001)
            if wk.error is not None:
                raise RuntimeError(f"{wk.name} failed to start") from wk.error
        if self.config.mode == "tiers":
            self._prev = (time.monotonic_ns(), self.pool.pushed())
            self._rebalancer = threading.Thread(target=self._rebalance_loop,
                                                name="tier-rebalancer", daemon=True)
            self._rebalancer.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop moving books, then let every worker drain its queues and exit."""
        self._stop.set()
        if self._rebalancer is not None:
            self._rebalancer.join(timeout)
        self.wctl[:, T_STOP] = 1
        errors = []
        for wk in self.workers:
            if wk.thread is not None:
                wk.thread.join(timeout)
                if wk.thread.is_alive():
                    errors.append(f"{wk.name} did not stop within {timeout}s")
            if wk.error is not None:
                raise RuntimeError(f"{wk.name} failed") from wk.error
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> TierEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return all(wk.thread is not None and wk.thread.is_alive() for wk in self.workers)

    # -- rebalancing -----------------------------------------------------------------
    def _rebalance_loop(self) -> None:
        while not self._stop.wait(self.config.rebalance_interval):
            try:
                self.rebalance()
            except Exception:  # pragma: no cover - logged, the engine keeps running
                log.exception("rebalance failed")

    def rates(self) -> np.ndarray:
        """Records pushed per second per queue since the previous call."""
        now = time.monotonic_ns()
        heads = self.pool.pushed()
        t0, h0 = self._prev
        self._prev = (now, heads)
        return (heads - h0) * 1e9 / max(now - t0, 1)

    def rebalance(self, rates: np.ndarray | None = None) -> list[tuple[int, str, str]]:
        """One reclassification: measure (or take) rates, move the books whose tier
        changed.  Returns the moves made."""
        rates = self.rates() if rates is None else np.asarray(rates, dtype=np.float64)
        # up fast, down slow: a book is judged by the higher of this interval's rate and
        # a decaying average, so one quiet interval (noise at low rates) demotes nobody
        # (the hot tier's places go by this interval's rate)
        now_rates = rates
        self._avg = rates if self._avg is None else 0.5 * (rates + self._avg)
        rates = np.maximum(rates, self._avg)
        new = classify(rates, self.tier, self.config.thresholds, self.pinned,
                       self.hot_capacity, have_hot=self.counts["hot"] > 0,
                       have_cold=self.counts["cold"] > 0, rank_rates=now_rates,
                       hot_load=self.config.hot_thread_load * self.counts["hot"])
        owners = self.owners()
        self._loads = np.bincount(owners, weights=rates, minlength=len(self.workers))
        # hottest first: they matter most if a move has to wait
        movers = sorted(np.flatnonzero(new != self.tier), key=lambda i: -rates[i])
        books = np.asarray(movers, dtype=np.int64)
        targets = np.array([self._pick(int(new[b]), float(rates[b])) for b in movers],
                           dtype=np.int64)
        outcomes = np.zeros(len(books), dtype=np.int64)
        with self._lock:
            move_queues(self.pool.ctl, books, targets, MOVE_TRIES, self.wctl, T_IN_HEAD,
                        T_IN_TAIL, self.inbox, outcomes)
        moves = []
        for b, outcome in zip(movers, outcomes):
            if outcome == MOVE_BUSY:
                self.move_busy += 1     # tried again at the next rebalance
                continue
            moves.append((int(b), TIER_NAMES[int(self.tier[b])], TIER_NAMES[int(new[b])]))
            self.tier[b] = new[b]
        self.rebalances += 1
        self.rebalance_at_ns = time.monotonic_ns()
        self.last_moves = moves
        self.moves_total += len(moves)
        return moves

    # -- monitoring ------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Counters for monitoring (the interface the dashboard and Prometheus use)."""
        ctl = self.pool.ctl
        workers = []
        for wk in self.workers:
            row = self.wctl[wk.wid]
            workers.append({
                "name": wk.name, "tier": TIER_NAMES[wk.tier],
                "native_id": wk.thread.native_id if wk.thread is not None else None,
                "records": int(row[T_RECORDS]), "steals": int(row[T_STEALS]),
                "queue_depth": int(row[T_DEPTH]),
                "latency_hist": wk.hist.copy(), "apply_hist": wk.apply_hist.copy(),
            })
        tier = self.tier.copy()
        return {
            "workers": workers,
            "rings": {"depth": ctl[:, C_HEAD] - ctl[:, C_TAIL], "capacity": self.pool.cap.copy(),
                      "full": ctl[:, C_FULL].copy(), "tier": tier},
            "tier_counts": {name: int((tier == t).sum()) for t, name in enumerate(TIER_NAMES)},
            "rebalance": {"count": self.rebalances, "at_ns": self.rebalance_at_ns,
                          "moves": list(self.last_moves)},
        }

    def counters(self) -> list[dict]:
        """Per-worker idle-policy and handoff counters (diagnostics, bench)."""
        out = []
        for wk in self.workers:
            r = self.wctl[wk.wid]
            out.append({"name": wk.name, "records": int(r[T_RECORDS]),
                        "batches": int(r[T_BATCHES]), "steals": int(r[T_STEALS]),
                        "lost": int(r[T_LOST]), "loops": int(r[T_LOOPS]),
                        "spins": int(r[T_SPINS]), "yields": int(r[T_YIELDS]),
                        "parks": int(r[T_PARKS]), "bad_records": int(wk.stats[2]),
                        "cpu": wk.cpu, "pin": wk.pin_report, "nice": wk.nice_report})
        return out

    def latency_hist(self, tier: str | None = None) -> np.ndarray:
        """Receive -> visible buckets summed over the workers of ``tier`` (or all)."""
        h = new_hist()
        for wk in self.workers:
            if tier is None or TIER_NAMES[wk.tier] == tier:
                h += wk.hist
        return h

    @property
    def hist(self) -> np.ndarray:
        return self.latency_hist()

    def describe(self) -> str:
        c = self.counts
        pins = [f"{wk.name}->cpu{wk.cpu}" for wk in self.workers if wk.cpu is not None]
        return (f"tiers mode={self.config.mode} on {self.ncpu} cpu(s): hot {c['hot']}, "
                f"warm {c['warm']}, cold {c['cold']} threads"
                + (f" (pinned {', '.join(pins)})" if pins else ""))
