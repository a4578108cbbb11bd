"""Prometheus text endpoint over the monitor's latest report (prometheus_client).

The exporter holds no metric state of its own: a custom collector turns the most recent
``engine.monitor.Report`` into metric families at scrape time, so a scrape costs the
engine nothing and never sees a half-built report.  Served on 127.0.0.1 by default."""

from __future__ import annotations

import logging

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import start_http_server

from engine.monitor import Monitor

log = logging.getLogger("hftbook.prometheus")

QUANTILES = (("p50", "0.5"), ("p99", "0.99"), ("p999", "0.999"), ("max", "1"))
EXCHANGE_COUNTERS = ("messages", "level_updates", "gaps", "resyncs", "checksums_verified",
                     "checksum_failures", "malformed", "dropped")


class ReportCollector:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self):
        rep = self.monitor.latest
        if rep is None:
            return
        lat = GaugeMetricFamily("hftbook_receive_to_visible_ns",
                                "Frame receive to visible-to-readers latency (ns)",
                                labels=["tier", "quantile", "window"])
        app = GaugeMetricFamily("hftbook_apply_ns", "Kernel apply time per write batch (ns)",
                                labels=["tier", "quantile", "window"])
        books = GaugeMetricFamily("hftbook_tier_books", "Books per tier", labels=["tier"])
        depth = GaugeMetricFamily("hftbook_queue_depth", "Records waiting in the tier's "
                                  "queues", labels=["tier", "stat"])
        rate = GaugeMetricFamily("hftbook_records_per_second", "Records applied per second "
                                 "over the last interval", labels=["tier"])
        full = GaugeMetricFamily("hftbook_ring_full_interval", "Pushes refused by a full "
                                 "queue in the last interval", labels=["tier"])
        sat = CounterMetricFamily("hftbook_saturation_warnings", "Intervals in which a tier "
                                  "had a queue over the saturation threshold", labels=["tier"])
        for t, tr in rep.tiers.items():
            for window, src, dst in (("interval", tr.latency, lat), ("total", tr.latency_total,
                                                                     lat),
                                     ("interval", tr.apply, app), ("total", tr.apply_total,
                                                                   app)):
                for key, q in QUANTILES:
                    dst.add_metric([t, q, window], float(src.get(key, 0)))
            books.add_metric([t], tr.books)
            depth.add_metric([t, "now"], tr.queue_depth)
            depth.add_metric([t, "avg"], tr.avg_depth)
            depth.add_metric([t, "max_queue"], tr.max_queue_depth)
            rate.add_metric([t], tr.records_per_s)
            full.add_metric([t], tr.ring_full)
            sat.add_metric([t], self.monitor.saturation_warnings.get(t, 0))
        yield from (lat, app, books, depth, rate, full, sat)

        wrec = CounterMetricFamily("hftbook_worker_records", "Records applied by a worker",
                                   labels=["worker", "tier"])
        wst = CounterMetricFamily("hftbook_worker_steals", "Queues a worker stole",
                                  labels=["worker", "tier"])
        wq = GaugeMetricFamily("hftbook_worker_queue_depth", "Records waiting in the queues "
                               "a worker owns", labels=["worker", "tier"])
        wcpu = GaugeMetricFamily("hftbook_worker_cpu_percent", "Worker thread CPU over the "
                                 "last interval (% of one core)", labels=["worker", "tier"])
        for w in rep.workers:
            lab = [w["name"], w["tier"]]
            wrec.add_metric(lab, w["records"])
            wst.add_metric(lab, w["steals"])
            wq.add_metric(lab, w["queue_depth"])
            if w["cpu_percent"] is not None:
                wcpu.add_metric(lab, w["cpu_percent"])
        yield from (wrec, wst, wq, wcpu)

        cpu = GaugeMetricFamily("hftbook_cpu_percent", "Per-core CPU utilisation over the "
                                "last interval", labels=["cpu"])
        for i, c in enumerate(rep.cpu_percent):
            cpu.add_metric([str(i)], c)
        ctx = CounterMetricFamily("hftbook_context_switches", "Context switches of the "
                                  "process since the monitor started", labels=["kind"])
        for k, v in rep.ctx_switches_total.items():
            ctx.add_metric([k], v)
        reb = CounterMetricFamily("hftbook_rebalances", "Tier rebalances run")
        reb.add_metric([], rep.rebalance.get("count", 0))
        moved = GaugeMetricFamily("hftbook_rebalance_last_moves", "Books moved by the last "
                                  "rebalance")
        moved.add_metric([], len(rep.rebalance.get("moves", ())))
        yield from (cpu, ctx, reb, moved)

        if rep.exchanges:
            st = GaugeMetricFamily("hftbook_books", "Books per exchange and state",
                                   labels=["exchange", "state"])
            fams = {k: CounterMetricFamily(f"hftbook_exchange_{k}", f"Exchange {k}",
                                           labels=["exchange"]) for k in EXCHANGE_COUNTERS}
            for ex, s in rep.exchanges.items():
                st.add_metric([ex, "live"], s.get("books_live", 0))
                st.add_metric([ex, "not_live"], s.get("books_stale", 0))
                for k, fam in fams.items():
                    fam.add_metric([ex], s.get(k, 0))
            yield st
            yield from fams.values()


class PrometheusExporter:
    """``/metrics`` on ``addr:port`` (port 0 picks a free one; see ``.port``)."""

    def __init__(self, monitor: Monitor, port: int, addr: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ReportCollector(monitor))
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        self.addr = addr
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
