"""`hftbook run`: live books for every configured exchange and symbol, with a dashboard.

In ``simulated`` mode (the default) every configured exchange gets an in-process
loopback simulator venue speaking its protocol, so the whole pipeline (websockets,
REST snapshots, sync rules, checksums, rings, writer thread, seqlocked books) runs with
no network.  In ``live`` mode the same connectors talk to the real venues."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

import orjson

from connectors import PROTOCOLS, protocol
from connectors.base import ConfigError
from connectors.feed import ExchangeSpec, Feed
from connectors.runner import run_async
from engine import platform
from engine.constants import H_MAX_LEVELS, HDR_WORDS
from engine.histogram import percentiles
from engine.monitor import Monitor, feed_snapshot_source, log_line
from engine.shm import ShmError
from engine.tiers import TierConfig
from hftbook import config as cfgmod
from simulator.recorded import RECORDED, feed_info, start_recorded
from simulator.registry import symbol_names, venue_class

log = logging.getLogger("hftbook.run")


def _activity(n: int, zipf: float) -> list[float]:
    """Heavy-tailed per-symbol activity, mean 1: a few hot symbols, a long cold tail."""
    w = [1.0 / (i + 1) ** zipf for i in range(n)]
    mean = sum(w) / n
    return [x / mean for x in w]


async def _start_venues(cfg: dict) -> dict:
    sim = cfg["simulator"]
    venues = {}
    for ex, spec in cfg["exchanges"].items():
        if not spec["enabled"]:
            continue
        n = sim["symbols_per_exchange"]
        names = symbol_names(ex, n) if spec["symbols"] == ["*"] else spec["symbols"]
        names = names[:spec["max_symbols"]]
        source = sim["source"] if ex in RECORDED else "synthetic"
        if source in ("recorded", "both"):   # the recorded session, looped
            key = ex if source == "recorded" else f"{ex}@recorded"
            try:
                venues[key] = await start_recorded(ex, spec, cfg)
            except (ValueError, OSError) as exc:
                raise ConfigError(f"simulator.source = {sim['source']!r}: {ex}: {exc}") \
                    from None
            if source == "recorded":
                continue
        cls = venue_class(ex)
        venues[ex] = await cls(names, seed=sim["seed"] + len(venues), rate=sim["rate"],
                               activity=_activity(len(names), sim["zipf"]),
                               reference_price=sim["reference_price"]).start()
    return venues


def _specs(cfg: dict, venues: dict) -> list[ExchangeSpec]:
    specs = []
    for ex, spec in cfg["exchanges"].items():
        if not spec["enabled"]:
            continue
        cls = protocol(ex)
        opts = {"verify_checksums": cfg["engine"]["verify_checksums"]}
        if ex in venues:
            for v in (venues[ex], venues.get(f"{ex}@recorded")):
                if v is not None:
                    specs.append(_venue_spec(cls, v, opts))
            if len({s for sp in specs if sp.protocol.exchange == ex for s in sp.symbols}) \
                    < sum(len(sp.symbols) for sp in specs if sp.protocol.exchange == ex):
                raise ConfigError(f"simulator.source = 'both': {ex}: a recorded symbol is "
                                  "also a synthetic one")
        else:
            if spec["symbols"] == ["*"]:
                raise ConfigError(f"config: exchanges.{ex}.symbols = [\"*\"] needs the "
                                  "instrument list: name the symbols in live mode")
            specs.append(ExchangeSpec(cls, spec["symbols"][:spec["max_symbols"]],
                                      options=opts))
    return specs


def _venue_spec(cls, v, opts: dict) -> ExchangeSpec:
    """A feed spec for a simulated venue; a recorded one is spoken to in its recording's
    dialect (KrakenV1, CoinbaseExchange...) with the recording's instrument list."""
    instruments = None
    if getattr(v, "recording", None):
        cls, instruments = getattr(v, "protocol_cls", None), getattr(v, "instruments", None)
        if cls is None:   # a venue of another process: read what it serves
            cls, instruments = feed_info(v.recording, v.directory)
    return ExchangeSpec(cls, v.symbols, ws_url=_sim_ws_url(cls, v), rest_url=v.rest_url,
                        instruments=instruments, options=opts)


def _sim_ws_url(cls, venue) -> str:
    """The simulator serves any path: keep the protocol's own path for realism."""
    from urllib.parse import urlsplit

    path = urlsplit(cls.ws_url).path
    return venue.ws_url + path


def _dashboard(feed: Feed, rates: dict, shown: int, monitor=None):
    from rich.console import Group
    from rich.table import Table

    summary = feed.summary()
    t = Table(title="hftbook run", expand=False)
    for c in ("exchange", "books", "live", "stale/sync", "msg/s", "levels/s", "gaps",
              "resyncs", "checksums ok", "checksum fail", "malformed", "reconnects"):
        t.add_column(c, justify="right" if c != "exchange" else "left")
    for ex, s in summary.items():
        r = rates.get(ex, {})
        t.add_row(ex, str(s["books"]), str(s["books_live"]), str(s["books_stale"]),
                  f"{r.get('msgs', 0):,.0f}", f"{r.get('levels', 0):,.0f}", str(s["gaps"]),
                  str(s["resyncs"]), str(s["checksums_verified"]),
                  str(s["checksum_failures"]), str(s["malformed"]),
                  str(max(0, s["connects"] - 1)))
    lat = rates.get("_latency", {})
    t.caption = (f"receive -> visible latency p50 {lat.get('p50', 0) / 1e3:.1f} µs  "
                 f"p99 {lat.get('p99', 0) / 1e3:.1f} µs  p99.9 {lat.get('p999', 0) / 1e3:.1f} µs")
    books = Table(title="top of book", expand=False)
    for c in ("book", "status", "bid size", "bid", "ask", "ask size", "seq"):
        books.add_column(c, justify="right")
    for (ex, sym), b in list(feed.index.items())[:shown]:
        top = feed.store.book(b).top(1)
        books.add_row(f"{ex}:{sym}", top.status,
                      f"{top.bid_sz[0]:g}" if top.n_bid else "-",
                      f"{top.bid_px[0]:g}" if top.n_bid else "-",
                      f"{top.ask_px[0]:g}" if top.n_ask else "-",
                      f"{top.ask_sz[0]:g}" if top.n_ask else "-", str(top.seq))
    if monitor is not None and monitor.latest is not None:
        return Group(t, _monitor_table(monitor.latest, monitor.names), books)
    return Group(t, books)


class _Rates:
    """Per-exchange messages/levels per second and latency over the last interval."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.last = (time.monotonic(), {}, None)

    def sample(self) -> dict:
        now = time.monotonic()
        counts = {ex: (t.totals().get("messages", 0), t.totals().get("levels", 0))
                  for ex, t in self.feed.stats.items()}
        t0, prev, hist0 = self.last
        dt = max(now - t0, 1e-9)
        out = {ex: {"msgs": (m - prev.get(ex, (0, 0))[0]) / dt,
                    "levels": (lv - prev.get(ex, (0, 0))[1]) / dt}
               for ex, (m, lv) in counts.items()}
        hist = self.feed.latency_hist()
        if hist is not None:
            out["_latency"] = percentiles(hist - hist0 if hist0 is not None else hist)
        self.last = (now, counts, hist)
        return out


def external_venues(path: str) -> dict:
    """Venues of a simulator already running (``hftbook simulate``), from its URL file."""
    from types import SimpleNamespace

    try:
        described = orjson.loads(open(path, "rb").read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"--simulator {path}: {exc}") from None
    return {ex: SimpleNamespace(symbols=d["symbols"], ws_url=d["ws_url"],
                                rest_url=d["rest_url"], external=True,
                                recording=d.get("recording"), directory=d.get("directory"),
                                exchange=d.get("exchange", ex))
            for ex, d in described.items()}


async def _compare_with_truth(feed: Feed, venues: dict, timeout: float = 30.0) -> dict:
    """Pause every simulated venue and wait until each book equals the venue's own true
    book (exact decimal strings, all levels the book keeps).  Per exchange: books equal."""
    for v in venues.values():
        v.paused = True

    def check() -> dict:
        out = {}
        for ex, v in venues.items():
            equal = 0
            name = getattr(v, "exchange", ex)   # a recorded dialect's own name
            for sym in v.symbols:
                d = feed.book(name, sym).to_dict()
                t = v.truth(sym)
                keep = int(feed.store.hdr[feed.index[(name, sym)] * HDR_WORDS + H_MAX_LEVELS])
                if d["status"] == "live" and d["bids"] == t["bids"][:keep] \
                        and d["asks"] == t["asks"][:keep]:
                    equal += 1
            out[ex] = {"books": len(v.symbols), "equal_to_truth": equal}
        return out

    deadline = time.monotonic() + timeout
    while True:
        res = check()
        if all(r["equal_to_truth"] == r["books"] for r in res.values()) or \
                time.monotonic() > deadline:
            return res
        await asyncio.sleep(0.1)


async def _main(cfg: dict, as_json: bool, simulator_file: str | None = None,
                faults: list | None = None, verify: bool = False,
                record_dir: str | None = None) -> int:
    from hftbook import shm_feed
    from simulator.faults import check_faults, run_faults

    store_factory = shm_feed.store_factory(cfg)  # before anything starts: name free?
    if cfg["mode"] != "simulated":
        venues = {}
    elif simulator_file:
        venues = external_venues(simulator_file)
        missing = [ex for ex in cfg["exchanges"] if ex not in venues]
        if missing:
            raise ConfigError(f"--simulator {simulator_file}: no venue for "
                              f"{', '.join(missing)}")
    else:
        venues = await _start_venues(cfg)
    own_venues = {ex: v for ex, v in venues.items() if not getattr(v, "external", False)}
    if faults:
        check_faults(faults, own_venues)
    platform.configure(platform.Settings.from_config(cfg["platform"]))  # before the store
    feed = Feed(_specs(cfg, venues), depth=cfg["book"]["depth"], record_dir=record_dir,
                ring_capacity=cfg["engine"]["ring_capacity"],
                writer_cpu=None if cfg["engine"]["writer_cpu"] < 0 else cfg["engine"]["writer_cpu"],
                tiers=TierConfig.from_table(cfg["tiers"]), store_factory=store_factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = asyncio.ensure_future(feed.run(stop))
    t0 = time.monotonic()
    duration = cfg["duration"]
    interactive = sys.stdout.isatty() and not as_json
    try:
        while not feed.running and not runner.done():
            await asyncio.sleep(0.01)
        if runner.done():
            await runner  # raises the startup error (unknown symbol, ...)
        t0 = time.monotonic()  # durations and fault times count from a running feed
        platform.print_startup_report(as_json)
        shared = shm_feed.publish(feed, cfg)
        if shared is not None and not as_json:
            print(f"hftbook: books in shared memory {shared.shm_name!r} ({shared.path}); "
                  f"watch them with: hftbook top --name {shared.shm_name}", flush=True)
        if faults:
            asyncio.ensure_future(run_faults(faults, own_venues))
        rates = _Rates(feed)
        monitor, exporter = _start_monitoring(feed, cfg["monitoring"], quiet=as_json)
        refresh = cfg["dashboard"]["refresh"]
        live = None
        if interactive:
            from rich.live import Live

            live = Live(_dashboard(feed, {}, cfg["dashboard"]["books_shown"], monitor),
                        refresh_per_second=max(1, int(1 / refresh)))
            live.start()
        next_log = time.monotonic() + 1.0
        reports_printed = 0
        while not stop.is_set() and not runner.done():
            try:
                await asyncio.wait_for(stop.wait(), refresh)
            except TimeoutError:
                pass
            monitor.exchange_summary = feed.summary()
            if duration and time.monotonic() - t0 >= duration:
                break  # stop only after the summary (and truth check) below
            if live is not None:
                live.update(_dashboard(feed, rates.sample(), cfg["dashboard"]["books_shown"],
                                       monitor))
            elif not as_json:
                if time.monotonic() >= next_log:
                    next_log += 1.0
                    _log_line(feed, rates.sample())
                if monitor.reports > reports_printed and monitor.latest is not None:
                    reports_printed = monitor.reports
                    print(log_line(monitor.latest), flush=True)
        if live is not None:
            live.stop()
        monitor.stop()
        final_report = monitor.report()
        if exporter is not None:
            exporter.close()
        truth = await _compare_with_truth(feed, own_venues) if verify and own_venues else None
        # book states as they were while running (stopping disconnects: books go stale)
        summary = _summary(feed, time.monotonic() - t0, own_venues)
        summary["monitoring"] = final_report.as_dict()
        stop.set()
        await runner
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await runner
        for v in own_venues.values():
            await v.stop()
        shm_feed.close(feed)
    final = _summary(feed, time.monotonic() - t0, own_venues)
    for ex, v in final["exchanges"].items():  # counters as at the end, states from above
        for k in ("books_live", "books_stale"):
            v[k] = summary["exchanges"][ex][k]
    final["totals"].update({k: summary["totals"][k] for k in ("books_live", "books_stale")})
    final["monitoring"] = summary["monitoring"]
    summary = final
    if truth is not None:
        summary["truth_check"] = truth
    if shm_feed.describe(feed):
        summary["shm"] = shm_feed.describe(feed)
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        t = summary["totals"]
        print(f"hftbook: stopped cleanly after {summary['seconds']:.1f}s: "
              f"{t['books_live']}/{t['books']} books live, {t['messages']:,} messages, "
              f"{t['level_updates']:,} level updates, {t['resyncs']} resyncs", flush=True)
    return 0


def _start_monitoring(feed: Feed, mc: dict, quiet: bool):
    """The monitor thread, and the Prometheus endpoint when enabled (a port already in
    use is reported and the run goes on without it)."""
    monitor = Monitor(feed_snapshot_source(feed), interval_s=mc["interval"],
                      sample_s=mc["sample"], saturation=mc["saturation"],
                      names=lambda q: _queue_name(feed, q))
    monitor.exchange_summary = feed.summary()
    monitor.start()
    exporter = None
    if mc["prometheus"]:
        from hftbook.prometheus import PrometheusExporter

        try:
            exporter = PrometheusExporter(monitor, mc["prometheus_port"],
                                          mc["prometheus_addr"])
        except OSError as exc:
            print(f"hftbook run: Prometheus endpoint on {mc['prometheus_addr']}:"
                  f"{mc['prometheus_port']} not started: {exc}", file=sys.stderr, flush=True)
        else:
            log.info("Prometheus metrics at %s", exporter.url)
            if not quiet:
                print(f"hftbook: Prometheus metrics at {exporter.url}", flush=True)
    return monitor, exporter


def _queue_name(feed: Feed, q: int) -> str:
    """A queue's name: its book when queues are per book (tiers), else its exchange."""
    if getattr(feed, "tiers", None) is not None:
        return feed.store.names[q]
    return feed.specs[q].protocol.exchange


def _monitor_table(rep, names):
    from rich.table import Table

    t = Table(title="engine", expand=False)
    for c in ("tier", "books", "threads", "records/s", "p50 µs", "p99 µs", "p99.9 µs",
              "apply p99 µs", "queued", "avg queued", "max queue", "full"):
        t.add_column(c, justify="right" if c != "tier" else "left")
    for name, tr in rep.tiers.items():
        lat, ap = tr.latency, tr.apply
        t.add_row(name, str(tr.books), str(tr.workers), f"{tr.records_per_s:,.0f}",
                  f"{lat['p50'] / 1e3:.1f}", f"{lat['p99'] / 1e3:.1f}",
                  f"{lat['p999'] / 1e3:.1f}", f"{ap['p99'] / 1e3:.1f}",
                  str(tr.queue_depth), f"{tr.avg_depth:.0f}", str(tr.max_queue_depth),
                  str(tr.ring_full), style="bold red" if tr.saturated else None)
    rb = rep.rebalance
    moves = ", ".join(f"{names(b)} {a}->{c}" for b, a, c in rb.get("moves", [])[:4])
    t.caption = (f"cpu % per core {' '.join(f'{c:.0f}' for c in rep.cpu_percent)} | "
                 f"ctx switches/interval {rep.ctx_switches['voluntary']} vol "
                 f"{rep.ctx_switches['involuntary']} invol | rebalances {rb.get('count', 0)}"
                 + (f" | last moves {moves}" if moves else "")
                 + (f" | {len(rep.warnings)} warning(s): {rep.warnings[0]}"
                    if rep.warnings else ""))
    return t


def _log_line(feed: Feed, rates: dict) -> None:
    s = feed.summary()
    parts = [f"{ex} {v['books_live']}/{v['books']} live "
             f"{rates.get(ex, {}).get('levels', 0):,.0f} lv/s" for ex, v in s.items()]
    lat = rates.get("_latency", {})
    print(f"hftbook: {' | '.join(parts)} | p99 {lat.get('p99', 0) / 1e3:.1f} µs", flush=True)


def _summary(feed: Feed, seconds: float, venues: dict) -> dict:
    per = feed.summary()
    keys = ("books", "books_live", "books_stale", "messages", "level_updates", "gaps",
            "resyncs", "checksums_verified", "checksum_failures", "malformed", "dropped")
    totals = {k: sum(v[k] for v in per.values()) for k in keys}
    out = {"mode": "simulated" if venues else "live", "seconds": round(seconds, 2),
           "exchanges": per, "totals": totals}
    hist = feed.latency_hist()
    if hist is not None:
        out["latency_ns"] = percentiles(hist)
    if feed.tiers is not None:
        snap = feed.tiers.snapshot()
        out["tiers"] = {"threads": feed.tiers.counts, "books": snap["tier_counts"],
                        "rebalances": snap["rebalance"]["count"],
                        "moves": feed.tiers.moves_total,
                        "steals": sum(w["steals"] for w in snap["workers"])}
    out["platform"] = platform.report_dicts()
    if venues:
        out["simulator_faults"] = {ex: v.faults for ex, v in venues.items()}
    return out


def run(config_path: str | None, duration: float | None, exchanges: str | None, live: bool,
        as_json: bool, simulator_file: str | None = None,
        fault_specs: list[str] | None = None, verify: bool = False,
        record_dir: str | None = None, prometheus_port: int | None = None,
        shm_name: str | None = None, no_shm: bool = False, source: str | None = None,
        recorded_speed: float | None = None) -> int:
    try:
        cfg = cfgmod.load(config_path, set(PROTOCOLS))
        cfgmod.override_simulator(cfg, source, recorded_speed)
        if prometheus_port is not None:
            if not -1 <= prometheus_port <= 65535:
                raise ConfigError(f"--prometheus-port {prometheus_port}: must be a port in "
                                  "0..65535, or -1 for off")
            cfg["monitoring"]["prometheus"] = prometheus_port >= 0
            cfg["monitoring"]["prometheus_port"] = max(prometheus_port, 0)
        if shm_name is not None:
            cfg["shm"] = cfgmod.validate_table("shm", {**cfg["shm"], "name": shm_name,
                                                       "enabled": True})
        if no_shm:
            cfg["shm"]["enabled"] = False
        if duration is not None:
            cfg["duration"] = duration
        if live:
            cfg["mode"] = "live"
        if exchanges:
            wanted = [e.strip() for e in exchanges.split(",") if e.strip()]
            unknown = [e for e in wanted if e not in cfg["exchanges"]]
            if unknown:
                raise ConfigError(f"--exchanges: {', '.join(unknown)} not in the config "
                                  f"(configured: {', '.join(cfg['exchanges'])})")
            cfg["exchanges"] = {e: cfg["exchanges"][e] for e in wanted}
    except ConfigError as exc:
        print(f"hftbook run: {exc}", file=sys.stderr)
        return 2
    from simulator.faults import FaultSpecError, parse_fault

    try:
        faults = [parse_fault(f) for f in fault_specs or ()]
    except FaultSpecError as exc:
        print(f"hftbook run: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg["logging"])
    try:
        return run_async(_main(cfg, as_json, simulator_file, faults, verify, record_dir))
    except (ConfigError, FaultSpecError, ShmError) as exc:
        print(f"hftbook run: {exc}", file=sys.stderr)
        return 2


def _setup_logging(lc: dict) -> None:
    kw = {"level": getattr(logging, lc["level"].upper()),
          "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    if lc["file"]:
        kw["filename"] = lc["file"]
    logging.basicConfig(**kw)
