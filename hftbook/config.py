"""config.toml: load, validate every key before anything starts, apply CLI overrides.

An unknown key or a bad value raises ConfigError naming the key and what is allowed."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import ConfigError

SHM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # as engine.shm requires
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.toml"


@dataclass(frozen=True)
class Key:
    kind: type | tuple
    default: Any
    allowed: str                      # what to tell the user
    check: Any = None                 # callable(value) -> bool


def _int_range(lo: int, hi: int):
    return Key(int, None, f"an integer in {lo}..{hi}", lambda v: lo <= v <= hi)


def _in(*choices):
    return Key(str, None, " or ".join(repr(c) for c in choices), lambda v: v in choices)


def _auto_or_int(lo: int, hi: int):
    return Key((str, int), "auto", f"\"auto\" or an integer in {lo}..{hi}",
               lambda v: v == "auto" if isinstance(v, str) else lo <= v <= hi)


def _rate():
    return Key((int, float), None, "records per second, >= 0", lambda v: v >= 0)


SOURCES = ("synthetic", "recorded", "both")

SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "mode": Key(str, "simulated", "'simulated' or 'live'", lambda v: v in ("simulated",
                                                                               "live")),
        "duration": Key((int, float), 0, "seconds >= 0 (0 = until Ctrl-C)", lambda v: v >= 0),
    },
    "book": {
        "depth": Key(int, 1000, "an integer in 1..65536", lambda v: 1 <= v <= 65536),
    },
    "engine": {
        "ring_capacity": Key(int, 1 << 16, "a power of two in 64..16777216",
                             lambda v: 64 <= v <= 1 << 24 and v & (v - 1) == 0),
        "batch": _int_range(1, 1 << 16),
        "writer_cpu": Key(int, -1, "a CPU number, or -1 for no pinning", lambda v: v >= -1),
        "verify_checksums": Key(bool, True, "true or false"),
    },
    "tiers": {
        "mode": Key(str, "tiers", "'tiers', 'pool' (one work-stealing pool, no tiers) or "
                    "'single' (one ring per exchange, one writer)",
                    lambda v: v in ("tiers", "pool", "single")),
        "hot_threads": _auto_or_int(0, 256),
        "warm_threads": _auto_or_int(1, 256),
        "cold_threads": _auto_or_int(0, 1),
        "hot": Key(list, [], "a list of \"exchange:SYMBOL\" book names",
                   lambda v: all(isinstance(x, str) and ":" in x for x in v)),
        "hot_max_books": _auto_or_int(0, 100000),
        "hot_thread_load": Key((int, float), 100_000.0, "records per second, > 0",
                               lambda v: v > 0),
        "hot_up": _rate(),
        "hot_down": _rate(),
        "warm_up": _rate(),
        "warm_down": _rate(),
        "rebalance_interval": Key((int, float), 1.0, "seconds, > 0", lambda v: v > 0),
        "batch": _int_range(1, 1 << 16),
        "spin": _auto_or_int(0, 1 << 30),
        "park_us": _auto_or_int(1, 1_000_000),
        "pin": Key(bool, False, "true or false"),
        "steal": Key(bool, True, "true or false"),
    },
    "simulator": {
        "symbols_per_exchange": _int_range(1, 10000),
        "rate": Key((int, float), 20.0, "events per second per symbol, > 0", lambda v: v > 0),
        "zipf": Key((int, float), 1.1, "a Zipf exponent in 0..3 (0 = every symbol alike)",
                    lambda v: 0 <= v <= 3),
        "seed": Key(int, 1, "an integer"),
        "reference_price": Key((int, float), 0, "a price > 0 every venue quotes around, or 0 "
                               "for each venue's own level", lambda v: v >= 0),
        # book activity: the synthetic order-flow model, the recorded sessions looped
        # (simulator/recorded.py), or both side by side
        "source": Key(str, "synthetic", "'synthetic', 'recorded' or 'both'",
                      lambda v: v in SOURCES),
        "recordings": Key(str, "", "a directory of recorded sessions, or \"\" for "
                          "../shared/recorded/cryptofeed beside the checkout"),
        "recorded_speed": Key((int, float), 1.0, "times the recorded pace, >= 0 "
                              "(0 = as fast as possible)", lambda v: v >= 0),
    },
    "dashboard": {
        "refresh": Key((int, float), 0.5, "seconds, > 0", lambda v: v > 0),
        "books_shown": _int_range(0, 50),
    },
    "monitoring": {
        "interval": Key((int, float), 5.0, "seconds between monitoring reports, > 0",
                        lambda v: v > 0),
        "sample": Key((int, float), 0.1, "seconds between queue-depth samples, > 0",
                      lambda v: v > 0),
        "saturation": Key((int, float), 0.5, "a fraction of queue capacity in (0, 1]",
                          lambda v: 0 < v <= 1),
        "prometheus": Key(bool, True, "true or false"),
        "prometheus_port": Key(int, 9464, "a TCP port in 0..65535 (0 = any free port)",
                               lambda v: 0 <= v <= 65535),
        "prometheus_addr": Key(str, "127.0.0.1", "an address to listen on, e.g. "
                               "\"127.0.0.1\"", lambda v: bool(v)),
    },
    "platform": {
        "huge_pages": Key(str, "auto", "'off', 'auto', 'transparent' or 'hugetlb'",
                          lambda v: v in ("off", "auto", "transparent", "hugetlb")),
        "numa": Key((str, int), "auto", "'auto', 'off' or a NUMA node number >= 0",
                    lambda v: v in ("auto", "off") if isinstance(v, str) else v >= 0),
        "realtime_priority": Key(int, 0, "0 (off) or a SCHED_FIFO priority in 1..99",
                                 lambda v: 0 <= v <= 99),
        "fallback_nice": Key(int, -10, "a nice value in -20..19 (0 = no fallback)",
                             lambda v: -20 <= v <= 19),
        "pin_writers": Key(list, [], "a list of CPU numbers, e.g. [1] ([] = no pinning)",
                           lambda v: all(isinstance(c, int) and not isinstance(c, bool)
                                         and c >= 0 for c in v)),
        "tsc_clock": Key(bool, True, "true or false"),
        "double_buffer_hot": Key(int, 0, "levels per side in 0..1024 (0 = off)",
                                 lambda v: 0 <= v <= 1024),
        "timer_slack_ns": Key(int, 1, "nanoseconds in 0..1000000 (0 = kernel default)",
                              lambda v: 0 <= v <= 1_000_000),
    },
    "shm": {
        "enabled": Key(bool, False, "true or false"),
        "name": Key(str, "hftbook", "1-100 letters, digits, '_', '.', '-', starting with a "
                    "letter or digit", lambda v: SHM_NAME_RE.match(v) is not None),
        "heartbeat": Key((int, float), 0.2, "seconds in 0.01..10", lambda v: 0.01 <= v <= 10),
    },
    "logging": {
        "level": _in("debug", "info", "warning", "error"),
        "file": Key(str, "", "a path, or \"\" for stderr"),
    },
}
DEFAULTS = {
    "engine": {"batch": 64},
    "tiers": {"batch": 64, "hot_up": 2000.0, "hot_down": 1000.0, "warm_up": 100.0,
              "warm_down": 25.0},
    "simulator": {"symbols_per_exchange": 20},
    "dashboard": {"books_shown": 8},
    "logging": {"level": "warning"},
}
EXCHANGE_KEYS = {
    "symbols": Key(list, None, "a list of symbol names, or [\"*\"] for all (see max_symbols)"),
    "max_symbols": _int_range(1, 100000),
    "enabled": Key(bool, True, "true or false"),
}


def _check(section: str, name: str, key: Key, value: Any) -> Any:
    where = f"{section}.{name}" if section else name
    if isinstance(value, bool) and key.kind is not bool:
        raise ConfigError(f"config: {where} = {value!r}: must be {key.allowed}")
    if not isinstance(value, key.kind):
        raise ConfigError(f"config: {where} = {value!r}: must be {key.allowed}")
    if key.check is not None and not key.check(value):
        raise ConfigError(f"config: {where} = {value!r}: must be {key.allowed}")
    return value


def _check_tiers(t: dict) -> None:
    """Thresholds that only make sense together (hysteresis needs up > down)."""
    for tier in ("hot", "warm"):
        if not t[f"{tier}_down"] < t[f"{tier}_up"]:
            raise ConfigError(f"config: tiers.{tier}_down = {t[f'{tier}_down']!r} must be "
                              f"below tiers.{tier}_up = {t[f'{tier}_up']!r} (hysteresis)")
    if t["warm_up"] > t["hot_up"] or t["warm_down"] > t["hot_down"]:
        raise ConfigError("config: tiers.warm_up / tiers.warm_down must not exceed "
                          "tiers.hot_up / tiers.hot_down")


def validate(raw: dict, known_exchanges: set[str]) -> dict:
    """Checked config with defaults filled in; ConfigError on any problem."""
    out: dict[str, Any] = {}
    for name, key in SCHEMA[""].items():
        out[name] = _check("", name, key, raw.get(name, key.default))
    for section, keys in SCHEMA.items():
        if not section:
            continue
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"config: [{section}] must be a table")
        unknown = set(given) - set(keys)
        if unknown:
            raise ConfigError(f"config: unknown key {section}.{sorted(unknown)[0]} "
                              f"(allowed: {', '.join(sorted(keys))})")
        defaults = DEFAULTS.get(section, {})
        out[section] = {n: _check(section, n, k, given.get(n, defaults.get(n, k.default)))
                        for n, k in keys.items()}
    _check_tiers(out["tiers"])
    allowed_top = set(SCHEMA) | set(SCHEMA[""]) | {"exchanges"}
    unknown = set(raw) - allowed_top
    if unknown:
        raise ConfigError(f"config: unknown key {sorted(unknown)[0]} "
                          f"(allowed: {', '.join(sorted(allowed_top - {''}))})")
    exchanges = raw.get("exchanges", {})
    if not isinstance(exchanges, dict) or not exchanges:
        raise ConfigError("config: [exchanges] must list at least one exchange")
    out["exchanges"] = {}
    for ex, spec in exchanges.items():
        if ex not in known_exchanges:
            raise ConfigError(f"config: unknown exchange exchanges.{ex} "
                              f"(known: {', '.join(sorted(known_exchanges))})")
        if not isinstance(spec, dict):
            raise ConfigError(f"config: [exchanges.{ex}] must be a table")
        unknown = set(spec) - set(EXCHANGE_KEYS)
        if unknown:
            raise ConfigError(f"config: unknown key exchanges.{ex}.{sorted(unknown)[0]} "
                              f"(allowed: {', '.join(sorted(EXCHANGE_KEYS))})")
        checked = {"symbols": ["*"], "max_symbols": 100, "enabled": True}
        for n, v in spec.items():
            checked[n] = _check(f"exchanges.{ex}", n, EXCHANGE_KEYS[n], v)
        if not checked["symbols"] or not all(isinstance(s, str) and s for s in
                                             checked["symbols"]):
            raise ConfigError(f"config: exchanges.{ex}.symbols must be a non-empty list of "
                              "names")
        out["exchanges"][ex] = checked
    return out


def validate_table(section: str, given: dict) -> dict:
    """One table checked key by key (for command-line overrides of a config table)."""
    return {n: _check(section, n, k, given[n]) for n, k in SCHEMA[section].items()}


def load(path: str | Path | None, known_exchanges: set[str]) -> dict:
    p = Path(path) if path else DEFAULT_PATH
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config: {p} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {p}: not valid TOML: {exc}") from None
    return validate(raw, known_exchanges)


def override_simulator(cfg: dict, source: str | None, recorded_speed: float | None) -> None:
    """Apply ``--source`` / ``--recorded-speed``, checked as the config keys are."""
    sim = cfg["simulator"]
    if source is not None:
        sim["source"] = _check("simulator", "source", SCHEMA["simulator"]["source"], source)
    if recorded_speed is not None:
        sim["recorded_speed"] = _check("simulator", "recorded_speed",
                                       SCHEMA["simulator"]["recorded_speed"], recorded_speed)
