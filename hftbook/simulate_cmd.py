"""`hftbook simulate`: the loopback exchange simulator on its own, for feeds in other
processes (``hftbook run --simulator FILE``) or other clients.  It writes every venue's
URLs and symbols to a JSON file and removes it when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time

import orjson

from connectors import PROTOCOLS
from connectors.base import ConfigError
from connectors.runner import run_async
from hftbook import config as cfgmod
from simulator.faults import FaultSpecError, check_faults, parse_fault, run_faults

DEFAULT_URLS = os.path.join(tempfile.gettempdir(), "hftbook-simulator.json")


async def _main(cfg: dict, urls_file: str, faults: list, as_json: bool) -> int:
    from hftbook.run_cmd import _start_venues

    venues = await _start_venues(cfg)
    try:
        check_faults(faults, venues)
        described = {ex: {"ws_url": v.ws_url, "rest_url": v.rest_url, "symbols": v.symbols}
                     for ex, v in venues.items()}
        for ex, v in venues.items():   # a looped recording: the feed speaks its dialect
            if getattr(v, "recorded", False):
                described[ex].update(recording=v.recording, directory=str(v.directory),
                                     exchange=v.exchange)
        tmp = urls_file + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(described, option=orjson.OPT_INDENT_2))
        os.replace(tmp, urls_file)  # readers never see a half-written file
        if not as_json:
            for ex, d in described.items():
                print(f"hftbook simulate: {ex:16s} {d['ws_url']}  {d['rest_url']}  "
                      f"{len(d['symbols'])} symbols", flush=True)
            print(f"hftbook simulate: URLs in {urls_file}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        injector = asyncio.ensure_future(run_faults(faults, venues)) if faults else None
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), cfg["duration"] or None)
        except TimeoutError:
            pass
        if injector:
            injector.cancel()
        summary = {ex: {"events_sent": v.events_sent, "faults": v.faults,
                        "clients": len(v.clients)} for ex, v in venues.items()}
        for ex, v in venues.items():
            if getattr(v, "recorded", False):
                summary[ex]["loops"] = v.loops
        if as_json:
            sys.stdout.write(orjson.dumps({"seconds": round(time.monotonic() - t0, 2),
                                           "venues": summary}).decode() + "\n")
        return 0
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(urls_file)
        for v in venues.values():
            await v.stop()


def run(config_path: str | None, duration: float | None, exchanges: str | None,
        urls_file: str | None, fault_specs: list[str] | None, as_json: bool,
        source: str | None = None, recorded_speed: float | None = None) -> int:
    try:
        cfg = cfgmod.load(config_path, set(PROTOCOLS))
        cfgmod.override_simulator(cfg, source, recorded_speed)
        if duration is not None:
            cfg["duration"] = duration
        if exchanges:
            wanted = [e.strip() for e in exchanges.split(",") if e.strip()]
            unknown = [e for e in wanted if e not in cfg["exchanges"]]
            if unknown:
                raise ConfigError(f"--exchanges: {', '.join(unknown)} not in the config")
            cfg["exchanges"] = {e: cfg["exchanges"][e] for e in wanted}
        faults = [parse_fault(f) for f in fault_specs or ()]
        return run_async(_main(cfg, urls_file or DEFAULT_URLS, faults, as_json))
    except (ConfigError, FaultSpecError) as exc:
        print(f"hftbook simulate: {exc}", file=sys.stderr)
        return 2
