"""`hftbook bench platform`: every platform technique off and on in the same run, with
the figure it moves.  One row per (technique, figure):

  {"technique": str, "metric": str, "off": float | None, "on": float | None,
   "unit": str, "note": str}

``off`` is the baseline measured in this run (a lock instead of the seqlock, packed
counters, 4 KiB pages, normal priority, ...); None where a side cannot be measured
here (the note says why).  Rows from ``bench/kernel_techniques.py`` (prefetch, SIMD
level search), when that module exists, are appended in the same format.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from numba import njit

from bench import platform_kernels as K
from bench.engine import (
    N_BOOKS,
    NO_HIST,
    _as_ring_block,
    _latency_feed,
    involuntary_switches,
    paced_push,
    snapshot_block,
    update_stream,
)
from bench.torture import build_messages
from engine import platform as P
from engine import tsc
from engine.atomics import monotonic_ns, sleep_us
from engine.constants import HDR_WORDS
from engine.doublebuf import DoubleBuffer
from engine.histogram import new_hist, percentiles
from engine.kernels import S_WORDS, apply_records
from engine.store import BookStore, store_nbytes
from engine.writer import Writer

ROOT = Path(__file__).resolve().parent.parent


def row(technique: str, metric: str, off, on, unit: str, note: str = "") -> dict:
    def f(v):
        return None if v is None else round(float(v), 3)

    return {"technique": technique, "metric": metric, "off": f(off), "on": f(on),
            "unit": unit, "note": note}


# ------------------------------------------------------------- seqlock vs locks

LOCK_BOOKS = 64


def _race_locks(mode: int, seconds: float, writer: bool = True, reader: bool = True):
    """The writer rewrites LOCK_BOOKS books round-robin while a reader copies them in
    turn, both for ``seconds``; each book has its own lock (its own cache lines)."""
    from engine.layout import aligned_zeros

    store = BookStore(LOCK_BOOKS, 32)
    data, mask, bounds = build_messages(LOCK_BOOKS)
    locks = aligned_zeros((LOCK_BOOKS, K.LOCK_WORDS))
    stats = np.zeros(S_WORDS, np.int64)
    wst = np.zeros(4, np.int64)
    rst = np.zeros(4, np.int64)
    hist = new_hist()
    args = (store.hdr, store.px, store.sz)
    K.lock_writer(mode, locks, *args, data, mask, bounds, 1, NO_HIST, stats, wst)  # warm
    K.lock_reader(mode, locks, *args, LOCK_BOOKS, 20, 1, rst, hist)
    wst[:] = 0
    rst[:] = 0
    hist[:] = 0
    dur = int(seconds * 1e9)
    ts = []
    if writer:
        ts.append(threading.Thread(target=K.lock_writer, args=(
            mode, locks, *args, data, mask, bounds, dur, NO_HIST, stats, wst)))
    if reader:
        ts.append(threading.Thread(target=K.lock_reader, args=(
            mode, locks, *args, LOCK_BOOKS, 20, dur, rst, hist)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return wst, rst, dur, hist


def _ticks_per_ns() -> float:
    t0, n0, _ = tsc._pair(100)
    time.sleep(0.02)
    t1, n1, _ = tsc._pair(100)
    return (t1 - t0) / (n1 - n0)


def _pct_ns(hist: np.ndarray, tpn: float) -> dict[str, float]:
    p = percentiles(hist)
    return {k: p[k] / tpn for k in ("p50", "p99", "p999", "max")}


def measure_locks(seconds: float) -> list[dict]:
    tpn = _ticks_per_ns()
    mu, rw, sq = K.MODE_MUTEX, K.MODE_RWLOCK, K.MODE_SEQLOCK
    modes = (mu, rw, sq)
    both = {m: _race_locks(m, seconds) for m in modes}
    alone_w = {m: _race_locks(m, seconds / 2, reader=False)[0] for m in modes}
    alone_r = {m: _race_locks(m, seconds / 4, writer=False)[3] for m in modes}

    def msgs(m):
        wst, _, dur, _ = both[m]
        return wst[0] / (dur / 1e9) / 1e6

    def stall_pct(m):
        wst, _, dur, _ = both[m]
        return 100.0 * wst[1] / tpn / dur

    def mean_ns(m):
        rst = both[m][1]
        return rst[3] / max(rst[0], 1)

    torn = sum(int(both[m][1][1]) for m in modes)
    retries = 1e6 * both[sq][1][2] / max(both[sq][1][0], 1)
    quiet = {m: _pct_ns(alone_r[m], tpn) for m in modes}
    busy = {m: _pct_ns(both[m][3], tpn) for m in modes}
    w_alone = {m: alone_w[m][0] / (seconds / 2) / 1e6 for m in modes}
    where = f"{LOCK_BOOKS} books, one lock each, the writer rewriting them round-robin"
    return [
        row("seqlock vs mutex", "top-20 read, no writer, p50", quiet[mu]["p50"],
            quiet[sq]["p50"], "ns", f"rwlock {quiet[rw]['p50']:.0f} ns; {where}"),
        row("seqlock vs mutex", "top-20 read under a writer, p50", busy[mu]["p50"],
            busy[sq]["p50"], "ns", f"rwlock {busy[rw]['p50']:.0f} ns; seqlock retries "
            f"{retries:.0f} per 1M reads; torn reads {torn} (all modes)"),
        row("seqlock vs mutex", "top-20 read under a writer, p99.9", busy[mu]["p999"],
            busy[sq]["p999"], "ns", f"rwlock {busy[rw]['p999']:.0f} ns"),
        row("seqlock vs mutex", "top-20 read under a writer, mean", mean_ns(mu), mean_ns(sq),
            "ns", f"rwlock {mean_ns(rw):.0f} ns; a seqlock reader spins while the writer "
            "is preempted inside a section (then yields), a lock reader sleeps"),
        row("seqlock vs mutex", "writer throughput with a reader", msgs(mu), msgs(sq),
            "M msg/s", f"rwlock {msgs(rw):.3f}; alone: mutex {w_alone[mu]:.3f}, rwlock "
            f"{w_alone[rw]:.3f}, seqlock {w_alone[sq]:.3f} (full rebuilds of 2-40 levels)"),
        row("seqlock vs mutex", "writer time spent acquiring", stall_pct(mu), stall_pct(sq),
            "%", f"rwlock {stall_pct(rw):.2f} %; includes OS preemption between the two "
            "clock reads (the seqlock figure is that alone)"),
    ]


# ---------------------------------------------------------------- false sharing

def measure_false_sharing(n: int) -> list[dict]:
    from engine.layout import aligned_zeros

    cpus = sorted(os.sched_getaffinity(0))

    def worker(c, i, stride, times):
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[i % len(cpus)]})  # this thread only
        times.append(K.bump(c, i * stride, n))

    def pair(stride: int) -> float:
        c = aligned_zeros(32)
        K.bump(c, 0, 10)
        times: list[int] = []
        ts = [threading.Thread(target=worker, args=(c, i, stride, times)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert c[0] == n + 10 and c[stride] == n
        return 2 * n / (max(times) / 1e9) / 1e6

    packed = padded = 0.0
    for _ in range(5):  # interleaved, best of 5: other load on the machine only slows
        packed = max(packed, pair(1))
        padded = max(padded, pair(8))
    return [row("cache-line padding", "2 threads bumping their own counter", packed, padded,
                "M incr/s", "off: adjacent int64 (one line); on: 64 bytes apart; one "
                "thread per CPU; best of 5")]


# ---------------------------------------------------------------- allocations

def measure_allocations(reps: int) -> list[dict]:
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-m", "bench.alloc_probe", "20000"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    rows = []
    if out.returncode == 0:
        import orjson

        r = orjson.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row("zero-allocation hot path", "NRT allocations in the writer kernel "
                        "per 20k messages", None, r["nrt_allocs_writer_kernel"], "allocs",
                        f"Python: {r['python_net_bytes']} B kept, peak "
                        f"{r['python_peak_bytes']} B over 20k pushes; each Python->kernel "
                        f"call boxes its arrays ({r['nrt_allocs_per_python_call']:.0f} "
                        "meminfos, freed on return)"))
        rows.append(row("preallocated scratch", "NRT allocations per 100k top-20 reads",
                        r["nrt_allocs_allocating_reads"], r["nrt_allocs_preallocated_reads"],
                        "allocs", "off: top_levels_fixed (new array per read); on: "
                        "copy_top into caller arrays"))
    else:
        rows.append(row("zero-allocation hot path", "probe failed", None, None, "",
                        out.stderr.strip().splitlines()[-1][:120] if out.stderr else ""))
    store = _filled_store(N_BOOKS, 200)
    books = np.random.default_rng(3).integers(0, 64, 1024).astype(np.int64)
    outs = (np.zeros((2, 20), np.int64), np.zeros((2, 20), np.int64),
            np.zeros(HDR_WORDS, np.int64))
    args = (store.hdr, store.px, store.sz, books)
    K.reads_allocating(*args, 10)
    K.reads_preallocated(*args, 10, *outs)
    t0 = time.perf_counter()
    K.reads_allocating(*args, reps)
    t_alloc = (time.perf_counter() - t0) / reps * 1e9
    t0 = time.perf_counter()
    K.reads_preallocated(*args, reps, *outs)
    t_pre = (time.perf_counter() - t0) / reps * 1e9
    rows.append(row("preallocated scratch", "top-20 read", t_alloc, t_pre, "ns",
                    "same reads, allocating vs preallocated"))
    return rows


# ---------------------------------------------------------------- double buffer

def measure_double_buffer(seconds: float, n_updates: int) -> list[dict]:
    # reader cost racing a writer that publishes after every message (both readers
    # see the same writer: the double buffer is refreshed in both runs)
    n_books = 2
    store = BookStore(n_books, 32)
    db = DoubleBuffer(store, list(range(n_books)), levels=20)
    data, mask, bounds = build_messages(n_books)
    stats = np.zeros(S_WORDS, np.int64)
    lock = np.zeros((n_books, K.LOCK_WORDS), np.int64)  # unused by the seqlock mode
    args = (store.hdr, store.px, store.sz)
    K.db_writer(*args, data, mask, bounds, 1, NO_HIST, stats, *db.arrays, db.slot_book,
                True)
    warm = np.zeros(8, np.int64)
    hist = new_hist()
    K.lock_reader(K.MODE_SEQLOCK, lock, *args, n_books, 20, 1, warm, hist)
    K.db_reader(*db.arrays, n_books, 20, 1, 0, warm, hist)
    dur = int(seconds * 1e9)
    tpn = _ticks_per_ns()
    results = {}
    for which in ("seqlock", "double"):
        rst = np.zeros(8, np.int64)
        hist = new_hist()
        if which == "seqlock":
            target, rargs = K.lock_reader, (K.MODE_SEQLOCK, lock, *args, n_books, 20, dur,
                                            rst, hist)
        else:
            target, rargs = K.db_reader, (*db.arrays, n_books, 20, dur, 0, rst, hist)
        w = threading.Thread(target=K.db_writer, args=(*args, data, mask, bounds, dur,
                                                       NO_HIST, stats, *db.arrays,
                                                       db.slot_book, True))
        r = threading.Thread(target=target, args=rargs)
        w.start()
        r.start()
        w.join()
        r.join()
        results[which] = (rst.copy(), _pct_ns(hist, tpn))
    (s, sp), (d, dp) = results["seqlock"], results["double"]
    rows = [row("double buffer (hot books)", "top-20 read under a writer, p50", sp["p50"],
                dp["p50"], "ns", f"{n_books} hot books, writer publishing after every "
                "message; off = the seqlock on the store"),
            row("double buffer (hot books)", "top-20 read under a writer, p99.9",
                sp["p999"], dp["p999"], "ns", f"max {sp['max'] / 1e3:.0f} vs "
                f"{dp['max'] / 1e3:.0f} us"),
            row("double buffer (hot books)", "top-20 read under a writer, mean",
                s[3] / s[0], d[3] / d[0], "ns",
                f"retries per 1M reads: seqlock {1e6 * s[2] / s[0]:.0f}, double buffer "
                f"{1e6 * d[2] / d[0]:.0f}; torn {int(s[1] + d[1])}")]
    # writer overhead on the realistic stream: 64 hot books of 5000, publish per batch
    depth = 200
    store = _filled_store(N_BOOKS, depth)
    stream = update_stream(N_BOOKS, depth, n_updates)
    blk, mask = _as_ring_block(stream)
    n = stream.shape[1]
    counts = np.bincount(stream[0], minlength=N_BOOKS)
    hot = [int(b) for b in np.argsort(counts)[::-1][:64]]
    db = DoubleBuffer(store, hot, levels=20)
    share = counts[hot].sum() / n
    mups = {}
    for publish in (False, True) * 3:
        t0 = time.perf_counter()
        K.apply_batches(store.hdr, store.px, store.sz, blk, mask, n, 64, NO_HIST, stats,
                        *db.arrays, db.slot_book, publish)
        mups[publish] = max(mups.get(publish, 0), n / (time.perf_counter() - t0) / 1e6)
    rows.append(row("double buffer (hot books)", "writer apply, depth 200", mups[False],
                    mups[True], "M upd/s",
                    f"64 hottest of {N_BOOKS} books ({share:.0%} of updates) copied "
                    "(top 20) after each 64-record batch"))
    return rows


# ---------------------------------------------------------- huge pages / NUMA

def _filled_store(n_books: int, depth: int, buffer=None) -> BookStore:
    store = BookStore(n_books, depth, buffer=buffer)
    stats = np.zeros(S_WORDS, np.int64)
    snap, mask = _as_ring_block(snapshot_block(n_books, depth))
    apply_records(store.hdr, store.px, store.sz, snap, mask, 0, n_books * 2 * depth,
                  NO_HIST, stats)
    return store


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure_huge_pages(n_updates: int, reps: int) -> list[dict]:
    depth = 1000
    nbytes = store_nbytes(N_BOOKS, depth)
    res = {}
    reports = {}
    for mode in ("off", "auto"):
        f0 = _minflt()
        t0 = time.perf_counter()
        buf, reps_ = P.allocate(nbytes, mode, "off")
        t_alloc = time.perf_counter() - t0
        faults = _minflt() - f0
        reports[mode] = reps_[0]
        store = _filled_store(N_BOOKS, depth, buffer=buf)
        stream = update_stream(N_BOOKS, depth, n_updates)
        blk, mask = _as_ring_block(stream)
        n = stream.shape[1]
        stats = np.zeros(S_WORDS, np.int64)
        best_t = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            apply_records(store.hdr, store.px, store.sz, blk, mask, 0, n, NO_HIST, stats)
            best_t = min(best_t, time.perf_counter() - t0)
        books = np.random.default_rng(5).integers(0, N_BOOKS, 65536).astype(np.int64)
        K.reads_best_random(store.hdr, store.px, store.sz, books, 10)
        t0 = time.perf_counter()
        K.reads_best_random(store.hdr, store.px, store.sz, books, reps)
        t_read = (time.perf_counter() - t0) / reps * 1e9
        res[mode] = (n / best_t / 1e6, faults, t_alloc, t_read)
        del store, buf
    on = reports["auto"]
    mib = nbytes >> 20
    note = f"{N_BOOKS} books x depth {depth} ({mib} MiB); on = {on.effective}"
    return [
        row("huge pages", "apply, depth 1000", res["off"][0], res["auto"][0], "M upd/s", note),
        row("huge pages", "best-bid read, random book of 5000", res["off"][3], res["auto"][3],
            "ns", "TLB-bound: one header + one level line per read"),
        row("huge pages", "page faults to map and prefault the store", res["off"][1],
            res["auto"][1], "faults", f"time {res['off'][2] * 1e3:.0f} ms vs "
            f"{res['auto'][2] * 1e3:.0f} ms"),
    ]


def numa_row() -> dict:
    nodes = P.numa_nodes()
    if len(nodes) > 1:  # pragma: no cover - single-node machine here
        note = f"{len(nodes)} nodes: bind with numa = \"auto\" and pinned writers"
    else:
        note = "single node: nothing to do (binding works: tests/platform bind to node 0)"
    return row("NUMA placement", "store on the writers' node", None, None, "", note)


# ---------------------------------------------------------- priority / pinning

def _latency(rate: int, seconds: float, settings: P.Settings | None, spin: int,
             producer_cpu: int | None = None, depth: int = 200) -> dict:
    """Enqueue -> visible latency through a ring into a Writer thread set up by
    ``settings`` (priority, pinning), with one competing CPU-bound process running."""
    store = _filled_store(N_BOOKS, depth)
    n_msgs, stream, pool = _latency_feed(rate, seconds, N_BOOKS, depth)
    ctl, data = pool.ctl[0], pool.data[0]
    P.reset()
    if settings is not None:
        P.configure(settings)
    old_aff = os.sched_getaffinity(0)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        if producer_cpu is not None:
            os.sched_setaffinity(0, {producer_cpu})
        writer = Writer(store, pool, [0], batch=64, spin=spin).start()
        time.sleep(0.1)
        writer.hist[:] = 0
        sw0 = involuntary_switches(writer.native_id)
        paced_push(ctl, data, stream, n_msgs, rate)
        sw = involuntary_switches(writer.native_id) - sw0
        writer.stop()
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, old_aff)
        rep = [r for r in P.reports() if r.technique.startswith(("realtime", "pinning"))]
        P.reset()
    pct = percentiles(writer.hist)
    return {"p99": pct["p99"], "p999": pct["p999"], "max": pct["max"], "preempted": sw,
            "reports": rep}


def measure_priority_and_pinning(seconds: float) -> list[dict]:
    rate = 200_000
    cpus = sorted(os.sched_getaffinity(0))
    rows = []
    base = _latency(rate, seconds, None, spin=20_000)
    rt_set = P.Settings(huge_pages="off", numa="off", realtime_priority=50, tsc_clock=False)
    rt = _latency(rate, seconds, rt_set, spin=20_000)
    rt_rep = next((r for r in rt["reports"] if r.technique.startswith("realtime")), None)
    eff = rt_rep.effective if rt_rep else "?"
    note = (f"{rate // 1000}K upd/s offered, one CPU hog competing; writer preempted "
            f"{base['preempted']}x vs {rt['preempted']}x; on = {eff}, spinning at most "
            f"{P.RT_SPIN} polls before parking")
    rows.append(row("realtime priority", "latency p99", base["p99"] / 1e3, rt["p99"] / 1e3,
                    "us", note))
    rows.append(row("realtime priority", "latency p99.9", base["p999"] / 1e3,
                    rt["p999"] / 1e3, "us", f"max {base['max'] / 1e3:.0f} vs "
                    f"{rt['max'] / 1e3:.0f} us"))
    if len(cpus) >= 2:
        pin_set = P.Settings(huge_pages="off", numa="off", pin_writers=[cpus[-1]],
                             tsc_clock=False)
        pin = _latency(rate, seconds, pin_set, spin=20_000, producer_cpu=cpus[0])
        rows.append(row("core pinning", "latency p99", base["p99"] / 1e3, pin["p99"] / 1e3,
                        "us", f"writer on cpu {cpus[-1]}, producer on cpu {cpus[0]}; "
                        f"preempted {base['preempted']}x vs {pin['preempted']}x"))
        rows.append(row("core pinning", "latency p99.9", base["p999"] / 1e3,
                        pin["p999"] / 1e3, "us", f"max {base['max'] / 1e3:.0f} vs "
                        f"{pin['max'] / 1e3:.0f} us"))
    else:  # pragma: no cover
        rows.append(row("core pinning", "latency", None, None, "", "one CPU: nothing to pin"))
    return rows


# --------------------------------------------------------------------- clock

def measure_clock(n: int, n_updates: int) -> list[dict]:
    ok, why = tsc.enable()
    rows = []
    K.clock_loop(10, 0)
    K.clock_loop(10, 1)
    t_gettime = min(K.clock_loop(n, 0)[0] for _ in range(3)) / n
    t_tsc = min(K.clock_loop(n, 1)[0] for _ in range(3)) / n if ok else None
    py = min(_py_clock(n // 10) for _ in range(3))
    rows.append(row("TSC clock", "clock read in a kernel", t_gettime, t_tsc, "ns",
                    (why if ok else why) + f"; Python time.perf_counter_ns {py:.0f} ns"))
    store = _filled_store(N_BOOKS, 200)
    stream = update_stream(N_BOOKS, 200, n_updates)
    blk, mask = _as_ring_block(stream)
    m = stream.shape[1]
    stats = np.zeros(S_WORDS, np.int64)
    best = {}
    for on in (False, True) * 3:
        (tsc.enable if on else tsc.disable)()
        t0 = time.perf_counter()
        apply_records(store.hdr, store.px, store.sz, blk, mask, 0, m, NO_HIST, stats)
        best[on] = max(best.get(on, 0), m / (time.perf_counter() - t0) / 1e6)
    tsc.disable()
    if ok:
        rows.append(row("TSC clock", "apply, depth 200 (one stamp per section)", best[False],
                        best[True], "M upd/s", "publish timestamp per write section"))
    return rows


def _py_clock(n: int) -> float:
    f = time.perf_counter_ns
    t0 = f()
    for _ in range(n):
        f()
    return (f() - t0) / n


# ---------------------------------------------------------------------- run

@njit(nogil=True, cache=True)
def _park_lateness(n, us, out):
    """Sleep ``us`` microseconds n times (a writer's park); out[i] = ns past the ask."""
    for i in range(n):
        t0 = monotonic_ns()
        sleep_us(us)
        out[i] = monotonic_ns() - t0 - us * 1000


def measure_timer_slack(n: int) -> list[dict]:
    """How late a 20 us park wakes, with the kernel's default slack and with 1 ns."""
    if sys.platform != "linux":
        return [row("timer slack", "park wake-up lateness", None, None, "", "Linux only")]
    res = {}

    def one(slack_ns: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(P.PR_SET_TIMERSLACK, slack_ns, 0, 0, 0)
        out = np.zeros(n, np.int64)
        _park_lateness(n, 20, out)
        res[slack_ns] = np.percentile(out, [50, 99]) / 1e3

    _park_lateness(1, 1, np.zeros(1, np.int64))  # compile outside the threads
    for slack in (50_000, 1):
        t = threading.Thread(target=one, args=(slack,))
        t.start()
        t.join()
    off, on = res[50_000], res[1]
    return [row("timer slack", "20 µs park wakes late by, p50", off[0], on[0], "µs",
                "off: kernel default 50 µs slack; on: 1 ns (timer_slack_ns = 1)"),
            row("timer slack", "20 µs park wakes late by, p99", off[1], on[1], "µs",
                f"{n} parks each")]


def kernel_technique_rows(quick: bool) -> list[dict]:
    try:
        from bench import kernel_techniques
    except ImportError:
        return []
    return list(kernel_techniques.measure(quick))


def run(quick: bool = False) -> dict:
    secs = 0.5 if quick else 2.0
    n_upd = 400_000 if quick else 4_000_000
    rows: list[dict] = []
    steps = [
        lambda: measure_locks(secs),
        lambda: measure_false_sharing(2_000_000 if quick else 5_000_000),
        lambda: measure_allocations(200_000 if quick else 2_000_000),
        lambda: measure_double_buffer(secs, n_upd),
        lambda: measure_huge_pages(n_upd, 1_000_000 if quick else 5_000_000),
        lambda: [numa_row()],
        lambda: measure_priority_and_pinning(secs),
        lambda: measure_clock(1_000_000 if quick else 10_000_000, n_upd),
        lambda: measure_timer_slack(500 if quick else 3000),
        lambda: kernel_technique_rows(quick),
    ]
    for step in steps:
        rows.extend(step())
    return {"rows": rows, "quick": quick, "cpus": len(os.sched_getaffinity(0)),
            "thp": P.thp_mode(), "numa_nodes": len(P.numa_nodes()),
            "rt_throttle": P.rt_throttle()}


def _fmt(v) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def _change(r: dict) -> str:
    off, on = r["off"], r["on"]
    if off is None or on is None:
        return ""
    if off == 0 or on == 0:
        return f"{on - off:+,.0f}" if abs(on - off) >= 10 else f"{on - off:+.2f}"
    return f"x{on / off:.2f}"


def print_table(res: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"hftbook bench platform ({res['cpus']} CPUs, THP mode {res['thp']}, "
                    f"{res['numa_nodes']} NUMA node(s), RT budget {res['rt_throttle']})")
    for c in ("technique", "metric", "off", "on", "on/off", "unit", "note"):
        t.add_column(c, justify="right" if c in ("off", "on", "on/off") else "left",
                     overflow="fold")
    for r in res["rows"]:
        t.add_row(escape(r["technique"]), escape(r["metric"]), _fmt(r["off"]), _fmt(r["on"]),
                  _change(r), r["unit"], escape(r["note"]))  # notes quote "[madvise]" etc.
    console.print(t)

