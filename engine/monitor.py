"""Monitoring: per-tier latency percentiles, queue depths and saturation, CPU, tiers.

The engine describes itself with a *snapshot*: a plain dict, cheap to build from any
Python thread (the tier engine's ``snapshot()``; ``single_writer_snapshot`` for a feed
with one writer thread)::

    {"workers": [{"name", "tier", "native_id", "records", "steals", "queue_depth",
                  "latency_hist", "apply_hist"}],          # histograms: cumulative buckets
     "rings": {"depth", "capacity", "full", "tier"},        # int64 / int8 arrays per queue
     "tier_counts": {"hot": n, "warm": n, "cold": n},
     "rebalance": {"count", "at_ns", "moves": [(book, from_tier, to_tier), ...]}}

``Monitor`` runs one background thread.  It samples queue depths every ``sample_s``
(so "average depth" means an average over the interval, not one reading) and builds a
``Report`` every ``interval_s``: for each tier the receive -> visible latency and the
kernel apply time (p50 / p99 / p99.9 / max over the interval and since start), records
per second, current / average / maximum queue depth, ring-full refusals; per worker
the same counters and its thread's CPU share; per-core CPU utilisation and the
process's context switches (psutil); the symbol count per tier and the last
rebalance's moves.  A queue whose average depth over the interval passes
``saturation`` x its capacity raises a saturation warning (logged and counted).

The latest report is what the dashboard shows, what the periodic log line prints and
what the Prometheus endpoint (``PrometheusExporter``) serves.  The monitor only reads
engine memory; it never blocks a writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psutil

from engine.histogram import N_BUCKETS, percentiles

log = logging.getLogger("hftbook.monitor")

TIERS = ("hot", "warm", "cold")
TIER_CODE = {name: i for i, name in enumerate(TIERS)}


def _empty_hist() -> np.ndarray:
    return np.zeros(N_BUCKETS, dtype=np.int64)


@dataclass
class TierReport:
    tier: str
    books: int = 0
    workers: int = 0
    records_per_s: float = 0.0
    records: int = 0
    latency: dict = field(default_factory=dict)        # this interval, ns
    latency_total: dict = field(default_factory=dict)  # since start, ns
    apply: dict = field(default_factory=dict)
    apply_total: dict = field(default_factory=dict)
    queue_depth: int = 0            # records waiting now, summed over the tier's queues
    avg_depth: float = 0.0          # interval average of that sum
    max_queue_depth: int = 0        # deepest single queue seen in the interval
    ring_full: int = 0              # pushes refused in the interval
    saturated: list = field(default_factory=list)   # queues over the threshold


@dataclass
class Report:
    at: float                       # time.time()
    interval_s: float
    tiers: dict[str, TierReport]
    workers: list[dict]
    cpu_percent: list[float]        # per core, over the interval
    ctx_switches: dict[str, int]    # this process, over the interval
    ctx_switches_total: dict[str, int]
    rebalance: dict
    warnings: list[str]
    warnings_total: int
    exchanges: dict = field(default_factory=dict)   # feed summary, when known

    def as_dict(self) -> dict:
        out = {"at": self.at, "interval_s": round(self.interval_s, 3),
               "tiers": {}, "workers": self.workers, "cpu_percent": self.cpu_percent,
               "ctx_switches": self.ctx_switches,
               "ctx_switches_total": self.ctx_switches_total,
               "rebalance": self.rebalance, "warnings": self.warnings,
               "warnings_total": self.warnings_total}
        for name, t in self.tiers.items():
            out["tiers"][name] = {k: v for k, v in t.__dict__.items() if k != "tier"}
        return out


def single_writer_snapshot(feed) -> dict:
    """The snapshot of a feed whose books all go through one writer thread and one ring
    per exchange (reported as a single 'warm' tier; there is no stealing)."""
    from engine.ring import C_FULL, C_HEAD, C_TAIL

    w = feed.writer
    pool = feed.pool
    if pool is None:
        depth = cap = full = np.zeros(0, dtype=np.int64)
    else:
        depth = pool.ctl[:, C_HEAD] - pool.ctl[:, C_TAIL]
        cap = np.full(len(pool), pool.capacity, dtype=np.int64)
        full = pool.ctl[:, C_FULL].copy()
    workers = []
    if w is not None:
        c = w.counters()
        workers.append({"name": w.name, "tier": "warm", "native_id": w.native_id,
                        "records": c["records"], "steals": 0,
                        "queue_depth": int(depth.sum()),
                        "latency_hist": w.hist.copy() if w.hist.size else _empty_hist(),
                        "apply_hist": getattr(w, "apply_hist", _empty_hist()).copy()})
    n_books = len(feed.index)
    return {"workers": workers,
            "rings": {"depth": depth, "capacity": cap, "full": full,
                      "tier": np.full(len(depth), TIER_CODE["warm"], dtype=np.int8)},
            "tier_counts": {"hot": 0, "warm": n_books, "cold": 0},
            "rebalance": {"count": 0, "at_ns": 0, "moves": []}}


def feed_snapshot_source(feed) -> Callable[[], dict]:
    """The feed's tier engine's snapshot when it has one, else the single-writer view."""
    def source() -> dict:
        tiers = getattr(feed, "tiers", None)
        if tiers is not None:
            return tiers.snapshot()
        return single_writer_snapshot(feed)
    return source


class Monitor:
    """Samples the engine and keeps the latest ``Report`` (see the module docstring)."""

    def __init__(self, source: Callable[[], dict], *, interval_s: float = 5.0,
                 sample_s: float = 0.1, saturation: float = 0.5,
                 names: Callable[[int], str] | None = None,
                 log_reports: bool = False) -> None:
        if interval_s <= 0 or sample_s <= 0 or not 0 < saturation <= 1:
            raise ValueError("interval_s and sample_s must be > 0, saturation in (0, 1]")
        self.source = source
        self.interval_s = interval_s
        self.sample_s = min(sample_s, interval_s)
        self.saturation = saturation
        self.names = names or (lambda i: f"queue {i}")
        # per-exchange feed summary, set by the owner's thread (the event loop); the
        # monitor thread only ever replaces its reference, never iterates live state
        self.exchange_summary: dict = {}
        self.log_reports = log_reports
        self.latest: Report | None = None
        self.reports = 0
        self.warnings_total = 0
        self.saturation_warnings: dict[str, int] = {t: 0 for t in TIERS}
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_ctx = self._ctx()
        self._reset_interval(self.source())

    # -- sampling ---------------------------------------------------------------------

    def _ctx(self) -> dict[str, int]:
        c = self._proc.num_ctx_switches()
        return {"voluntary": c.voluntary, "involuntary": c.involuntary}

    def _thread_times(self) -> dict[int, float]:
        try:
            return {t.id: t.user_time + t.system_time for t in self._proc.threads()}
        except psutil.Error:  # pragma: no cover - /proc unreadable
            return {}

    def _reset_interval(self, snap: dict) -> None:
        self._t0 = time.monotonic()
        self._snap0 = snap
        self._ctx0 = self._ctx()
        self._threads0 = self._thread_times()
        self._cpu0 = psutil.cpu_times(percpu=True)
        n = len(snap["rings"]["depth"])
        self._depth_sum = np.zeros(n, dtype=np.float64)
        self._depth_max = np.zeros(n, dtype=np.int64)
        self._samples = 0

    def sample_depths(self, snap: dict | None = None) -> dict:
        """One queue-depth sample (the background thread calls this every sample_s)."""
        snap = snap or self.source()
        d = np.asarray(snap["rings"]["depth"], dtype=np.int64)
        if d.shape != self._depth_sum.shape:   # queues were added: restart the averages
            self._depth_sum = np.zeros(d.shape, dtype=np.float64)
            self._depth_max = np.zeros(d.shape, dtype=np.int64)
            self._samples = 0
        self._depth_sum += d
        np.maximum(self._depth_max, d, out=self._depth_max)
        self._samples += 1
        return snap

    def report(self) -> Report:
        """Close the current interval: build, store (and log) its report."""
        snap = self.sample_depths()
        now = time.monotonic()
        dt = max(now - self._t0, 1e-9)
        prev = self._snap0
        rings = snap["rings"]
        tier_of = np.asarray(rings["tier"], dtype=np.int8)
        cap = np.maximum(np.asarray(rings["capacity"], dtype=np.int64), 1)
        depth = np.asarray(rings["depth"], dtype=np.int64)
        full = np.asarray(rings["full"], dtype=np.int64)
        full0 = np.asarray(prev["rings"]["full"], dtype=np.int64)
        if full0.shape != full.shape:
            full0 = np.zeros_like(full)
        avg = self._depth_sum / max(self._samples, 1)
        prev_workers = {w["name"]: w for w in prev["workers"]}
        threads = self._thread_times()
        tiers = {t: TierReport(t, books=int(snap["tier_counts"].get(t, 0))) for t in TIERS}
        lat = {t: [_empty_hist(), _empty_hist(), _empty_hist(), _empty_hist()] for t in TIERS}
        workers = []
        for w in snap["workers"]:
            t = w["tier"]
            p = prev_workers.get(w["name"])
            tr = tiers[t]
            tr.workers += 1
            d_rec = w["records"] - (p["records"] if p else 0)
            tr.records += d_rec
            acc = lat[t]
            acc[0] += w["latency_hist"]
            acc[1] += w["apply_hist"]
            if p is not None:
                acc[2] += w["latency_hist"] - p["latency_hist"]
                acc[3] += w["apply_hist"] - p["apply_hist"]
            else:
                acc[2] += w["latency_hist"]
                acc[3] += w["apply_hist"]
            tid = w.get("native_id")
            cpu = None
            if tid in threads and tid in self._threads0:
                cpu = round(100.0 * (threads[tid] - self._threads0[tid]) / dt, 1)
            workers.append({"name": w["name"], "tier": t, "records_per_s": d_rec / dt,
                            "records": w["records"], "steals": w["steals"],
                            "steals_interval": w["steals"] - (p["steals"] if p else 0),
                            "queue_depth": w["queue_depth"], "cpu_percent": cpu})
        warnings = []
        for t, tr in tiers.items():
            code = TIER_CODE[t]
            mask = tier_of == code
            tr.records_per_s = tr.records / dt
            tr.latency_total = percentiles(lat[t][0])
            tr.apply_total = percentiles(lat[t][1])
            tr.latency = percentiles(lat[t][2])
            tr.apply = percentiles(lat[t][3])
            if mask.any():
                tr.queue_depth = int(depth[mask].sum())
                tr.avg_depth = float(avg[mask].sum()) if avg.shape == mask.shape else 0.0
                tr.max_queue_depth = int(self._depth_max[mask].max()) \
                    if self._depth_max.shape == mask.shape else 0
                tr.ring_full = int((full[mask] - full0[mask]).sum())
                if avg.shape == mask.shape:
                    over = np.flatnonzero(mask & (avg > self.saturation * cap))
                    for q in over[np.argsort(-avg[over])][:5]:
                        tr.saturated.append({"queue": int(q), "name": self.names(int(q)),
                                             "avg_depth": round(float(avg[q]), 1),
                                             "capacity": int(cap[q])})
                    if over.size:
                        self.saturation_warnings[t] += 1
                        worst = tr.saturated[0]
                        warnings.append(
                            f"{t} tier saturated: {over.size} queue(s) averaged over "
                            f"{self.saturation:.0%} of capacity; worst {worst['name']} "
                            f"{worst['avg_depth']:.0f}/{worst['capacity']} records")
            if tr.ring_full:
                warnings.append(f"{t} tier: {tr.ring_full} pushes found a full queue")
        ctx = self._ctx()
        self.warnings_total += len(warnings)
        for msg in warnings:
            log.warning(msg)
        rep = Report(
            at=time.time(), interval_s=dt, tiers=tiers, workers=workers,
            cpu_percent=cpu_utilisation(self._cpu0, psutil.cpu_times(percpu=True)),
            ctx_switches={k: ctx[k] - self._ctx0[k] for k in ctx},
            ctx_switches_total={k: ctx[k] - self._start_ctx[k] for k in ctx},
            rebalance=dict(snap.get("rebalance", {})), warnings=warnings,
            warnings_total=self.warnings_total,
            exchanges=self.exchange_summary)
        with self._lock:
            self.latest = rep
            self.reports += 1
        if self.log_reports:
            log.info(log_line(rep))
        self._reset_interval(snap)
        return rep

    # -- background thread ---------------------------------------------------------------

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._main, name="hftbook-monitor",
                                        daemon=True)
        self._thread.start()
        return self

    def _main(self) -> None:
        next_report = time.monotonic() + self.interval_s
        while not self._stop.wait(self.sample_s):
            try:
                if time.monotonic() >= next_report:
                    next_report += self.interval_s
                    self.report()
                else:
                    self.sample_depths()
            except Exception:  # monitoring must never take the feed down
                log.exception("monitor sample failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def cpu_utilisation(before, after) -> list[float]:
    """Per-core busy share (%) between two ``psutil.cpu_times(percpu=True)`` readings
    (idle and iowait count as not busy)."""
    out = []
    for a, b in zip(before, after):
        total = sum(b) - sum(a)
        idle = (b.idle - a.idle) + (getattr(b, "iowait", 0.0) - getattr(a, "iowait", 0.0))
        out.append(round(100.0 * (1.0 - idle / total), 1) if total > 0 else 0.0)
    return out


def _us(ns: int) -> str:
    return f"{ns / 1e3:.1f}"


def log_line(rep: Report) -> str:
    """One line per report: per tier books, rate, latency, queues; CPU; rebalances."""
    parts = []
    for t, tr in rep.tiers.items():
        if not tr.books and not tr.workers:
            continue
        lat = tr.latency
        parts.append(f"{t} {tr.books} books/{tr.workers} thr {tr.records_per_s:,.0f} rec/s "
                     f"p50/p99/p99.9 {_us(lat.get('p50', 0))}/{_us(lat.get('p99', 0))}/"
                     f"{_us(lat.get('p999', 0))} us q {tr.queue_depth} (avg {tr.avg_depth:.0f})")
    cpu = " ".join(f"{c:.0f}" for c in rep.cpu_percent)
    rb = rep.rebalance
    moves = len(rb.get("moves", ()))
    return (f"monitor: {' | '.join(parts) or 'no tiers'} | cpu% {cpu} | ctx "
            f"{rep.ctx_switches['voluntary']}v/{rep.ctx_switches['involuntary']}i | "
            f"rebalances {rb.get('count', 0)} (last moved {moves})")
