"""Monitoring: per-tier percentiles (interval and cumulative), queue depth averages and
saturation warnings, ring-full counts, worker CPU, and the Prometheus endpoint."""

import time
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.constants import ASK, BID, F_CLEAR, F_END
from engine.histogram import bucket_of, new_hist
from engine.monitor import TIER_CODE, Monitor, cpu_utilisation, log_line, single_writer_snapshot
from engine.ring import RingPool
from engine.store import BookStore
from engine.writer import Writer
from hftbook.prometheus import PrometheusExporter


class FakeEngine:
    """A snapshot source whose numbers the test sets by hand."""

    def __init__(self, n_queues=4, capacity=100):
        self.depth = np.zeros(n_queues, dtype=np.int64)
        self.capacity = np.full(n_queues, capacity, dtype=np.int64)
        self.full = np.zeros(n_queues, dtype=np.int64)
        self.tier = np.array([TIER_CODE["hot"]] + [TIER_CODE["cold"]] * (n_queues - 1),
                             dtype=np.int8)
        self.workers = {t: {"name": f"{t}-0", "tier": t, "native_id": None, "records": 0,
                            "steals": 0, "queue_depth": 0, "latency_hist": new_hist(),
                            "apply_hist": new_hist()} for t in ("hot", "cold")}
        self.rebalance = {"count": 0, "at_ns": 0, "moves": []}

    def record(self, tier, latency_ns, n=1):
        w = self.workers[tier]
        w["latency_hist"][bucket_of(latency_ns)] += n
        w["apply_hist"][bucket_of(latency_ns // 10)] += n
        w["records"] += n

    def snapshot(self):
        return {"workers": [{k: (v.copy() if isinstance(v, np.ndarray) else v)
                             for k, v in w.items()} for w in self.workers.values()],
                "rings": {"depth": self.depth.copy(), "capacity": self.capacity,
                          "full": self.full.copy(), "tier": self.tier},
                "tier_counts": {"hot": 1, "warm": 0, "cold": len(self.depth) - 1},
                "rebalance": dict(self.rebalance)}


def test_interval_and_cumulative_percentiles_per_tier():
    eng = FakeEngine()
    mon = Monitor(eng.snapshot, interval_s=60, names=lambda q: f"book{q}")
    eng.record("hot", 1_000, 990)
    eng.record("hot", 100_000, 10)
    eng.record("cold", 50_000, 100)
    r1 = mon.report()
    hot = r1.tiers["hot"]
    assert hot.latency["count"] == 1000 and hot.records == 1000
    assert abs(hot.latency["p50"] - 1_000) <= 10
    assert abs(hot.latency["p999"] - 100_000) <= 500  # the slow 1 % sits in p99.9
    assert abs(r1.tiers["cold"].latency["p50"] - 50_000) <= 250
    assert r1.tiers["warm"].latency["count"] == 0 and r1.tiers["warm"].workers == 0
    # second interval: only fast records; cumulative keeps the first interval's tail
    eng.record("hot", 2_000, 500)
    r2 = mon.report()
    hot = r2.tiers["hot"]
    assert hot.latency["count"] == 500 and abs(hot.latency["max"] - 2_000) <= 10
    assert hot.latency_total["count"] == 1500
    assert abs(hot.latency_total["max"] - 100_000) <= 500
    assert r2.tiers["cold"].latency["count"] == 0 and r2.tiers["cold"].records == 0
    assert "hot 1 books/1 thr" in log_line(r2)


def test_saturation_is_an_interval_average_not_one_reading():
    eng = FakeEngine(capacity=100)
    mon = Monitor(eng.snapshot, interval_s=60, saturation=0.5, names=lambda q: f"book{q}")
    # one spike to 90 among nine empty samples: average 9, not saturated
    for k in range(9):
        eng.depth[2] = 90 if k == 0 else 0
        mon.sample_depths()
    rep = mon.report()  # the report's own sample reads 0
    cold = rep.tiers["cold"]
    assert cold.saturated == [] and cold.max_queue_depth == 90
    assert 8.0 <= cold.avg_depth <= 10.0
    assert mon.saturation_warnings["cold"] == 0 and not rep.warnings
    # sustained 80/100 on queue 2: saturated, named, warned and counted
    eng.depth[2] = 80
    for _ in range(5):
        mon.sample_depths()
    rep = mon.report()
    cold = rep.tiers["cold"]
    assert [s["name"] for s in cold.saturated] == ["book2"]
    assert cold.saturated[0]["avg_depth"] == 80.0 and cold.queue_depth == 80
    assert mon.saturation_warnings == {"hot": 0, "warm": 0, "cold": 1}
    assert any("cold tier saturated" in w and "book2" in w for w in rep.warnings)
    assert rep.tiers["hot"].saturated == []


def test_ring_full_counts_are_per_interval_and_per_tier():
    eng = FakeEngine()
    mon = Monitor(eng.snapshot, interval_s=60)
    eng.full[0] = 3
    eng.full[1] = 4
    rep = mon.report()
    assert rep.tiers["hot"].ring_full == 3 and rep.tiers["cold"].ring_full == 4
    assert mon.report().tiers["hot"].ring_full == 0


def test_rebalance_moves_are_reported():
    eng = FakeEngine()
    mon = Monitor(eng.snapshot, interval_s=60)
    eng.rebalance = {"count": 7, "at_ns": 123, "moves": [(2, "cold", "hot")]}
    rep = mon.report()
    assert rep.rebalance["count"] == 7 and rep.rebalance["moves"] == [(2, "cold", "hot")]
    assert "rebalances 7 (last moved 1)" in log_line(rep)


def test_cpu_utilisation_from_cpu_times():
    def ct(user, idle, iowait):
        return type("ct", (tuple,), {"idle": property(lambda s: s[1]),
                                     "iowait": property(lambda s: s[2])})((user, idle, iowait))
    before = [ct(100, 100, 0), ct(0, 0, 0)]
    after = [ct(175, 125, 0), ct(0, 0, 0)]
    assert cpu_utilisation(before, after) == [75.0, 0.0]


def _feed_like(n_books=4):
    store = BookStore(n_books, 16)
    for b in range(n_books):
        store.configure(b, f"x:{b}", 2, 2)
    pool = RingPool(2, 1 << 10)
    return SimpleNamespace(store=store, pool=pool, writer=None,
                           index={("x", str(b)): b for b in range(n_books)})


def _push_messages(ring, book, n):
    for k in range(n):
        now = time.monotonic_ns()
        ring.push_one(book, BID, F_CLEAR, 100 + k, 1, k, 0, now)
        ring.push_one(book, ASK, F_END, 200 + k, 1, k, 0, now)


def test_real_writer_latency_records_and_thread_cpu():
    feed = _feed_like()
    feed.writer = Writer(feed.store, feed.pool, [0, 1], name="w0", spin=100_000, park_us=20)
    with feed.writer:
        mon = Monitor(lambda: single_writer_snapshot(feed), interval_s=60)
        ring = feed.pool.ring(0)
        t_end = time.monotonic() + 0.5
        sent = 0
        while time.monotonic() < t_end:
            _push_messages(ring, sent % 4, 10)
            sent += 10
            time.sleep(0.001)
        deadline = time.monotonic() + 5
        while feed.writer.counters()["records"] < 2 * sent and time.monotonic() < deadline:
            time.sleep(0.01)
        rep = mon.report()
    warm = rep.tiers["warm"]
    assert warm.records == 2 * sent and warm.workers == 1 and warm.books == 4
    assert warm.latency["count"] == sent  # one stamp per message, when it becomes visible
    assert 0 < warm.latency["p50"] < 1e9
    (w,) = rep.workers
    assert w["name"] == "w0" and w["records"] == 2 * sent
    assert w["cpu_percent"] is not None and w["cpu_percent"] > 0  # it spins between pushes
    assert sum(rep.ctx_switches_total.values()) >= 0 and len(rep.cpu_percent) >= 1


def test_real_ring_with_no_consumer_saturates():
    feed = _feed_like()
    mon = Monitor(lambda: single_writer_snapshot(feed), interval_s=60, saturation=0.25,
                  names=lambda q: f"ring{q}")
    ring = feed.pool.ring(1)
    _push_messages(ring, 0, 200)                 # 400 of 1024 records, nobody consuming
    for _ in range(3):
        mon.sample_depths()
    rep = mon.report()
    warm = rep.tiers["warm"]
    assert warm.queue_depth == 400 and warm.max_queue_depth == 400
    assert [s["name"] for s in warm.saturated] == ["ring1"]
    _push_messages(ring, 0, 400)                 # overflows: refused pushes are counted
    rep = mon.report()
    assert rep.tiers["warm"].ring_full > 0
    assert any("full queue" in w for w in rep.warnings)


def _scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_endpoint_serves_the_latest_report():
    eng = FakeEngine()
    mon = Monitor(eng.snapshot, interval_s=60)
    exp = PrometheusExporter(mon, 0)
    try:
        assert exp.url.startswith("http://127.0.0.1:")
        before = _scrape(exp.url)
        assert not any(k[0].startswith("hftbook_tier_books") for k in before)
        eng.record("hot", 1_000, 100)
        eng.rebalance = {"count": 2, "at_ns": 1, "moves": [(1, "cold", "hot")]}
        mon.exchange_summary = {"binance": {"books_live": 3, "books_stale": 1, "messages": 9,
                                            "gaps": 2}}
        mon.report()
        m = _scrape(exp.url)
        assert m[("hftbook_tier_books", (("tier", "hot"),))] == 1
        assert m[("hftbook_tier_books", (("tier", "cold"),))] == 3
        p50 = m[("hftbook_receive_to_visible_ns",
                  (("quantile", "0.5"), ("tier", "hot"), ("window", "interval")))]
        assert abs(p50 - 1_000) <= 10
        assert m[("hftbook_worker_records_total",
                  (("tier", "hot"), ("worker", "hot-0")))] == 100
        assert m[("hftbook_rebalances_total", ())] == 2
        assert m[("hftbook_rebalance_last_moves", ())] == 1
        assert m[("hftbook_books", (("exchange", "binance"), ("state", "live")))] == 3
        assert m[("hftbook_exchange_gaps_total", (("exchange", "binance"),))] == 2
        assert any(k[0] == "hftbook_cpu_percent" for k in m)
    finally:
        exp.close()


def test_prometheus_port_in_use_is_an_oserror():
    mon = Monitor(FakeEngine().snapshot, interval_s=60)
    a = PrometheusExporter(mon, 0)
    try:
        with pytest.raises(OSError):
            PrometheusExporter(mon, a.port)
    finally:
        a.close()


def test_background_thread_reports_every_interval():
    eng = FakeEngine()
    mon = Monitor(eng.snapshot, interval_s=0.2, sample_s=0.02).start()
    try:
        deadline = time.monotonic() + 5
        while mon.reports < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mon.stop()
    assert mon.reports >= 3
    assert 0.1 < mon.latest.interval_s < 2.0
