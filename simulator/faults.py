"""Fault injection on a schedule: ``AT:KIND[=ARG]:EXCHANGE[:SYMBOL]`` specs.

  3:gap:binance:BTCUSDT        at 3 s, drop the next update of BTCUSDT (a sequence gap)
  4:checksum:kraken:BTC/USD    at 4 s, corrupt the next checksum of BTC/USD
  5:disconnect:okx             at 5 s, close every client connection of the OKX venue
  6:garbage:bybit              at 6 s, send a malformed frame to every client
  7:stall=4:coinbase           at 7 s, stop sending anything for 4 s
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

log = logging.getLogger("hftbook.simulator")

KINDS = ("gap", "checksum", "disconnect", "garbage", "stall")


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    exchange: str
    symbol: str | None = None
    arg: float = 3.0


def parse_fault(spec: str) -> Fault:
    parts = spec.split(":", 3)
    if len(parts) < 3:
        raise FaultSpecError(f"fault {spec!r}: expected AT:KIND[=ARG]:EXCHANGE[:SYMBOL]")
    at_s, kind, exchange = parts[:3]
    symbol = parts[3] if len(parts) == 4 else None
    try:
        at = float(at_s)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {at_s!r} is not a time in seconds") from None
    kind, _, arg_s = kind.partition("=")
    if kind not in KINDS:
        raise FaultSpecError(f"fault {spec!r}: kind must be one of {', '.join(KINDS)}")
    if kind in ("gap", "checksum") and not symbol:
        raise FaultSpecError(f"fault {spec!r}: {kind} needs a symbol")
    arg = 3.0
    if arg_s:
        try:
            arg = float(arg_s)
        except ValueError:
            raise FaultSpecError(f"fault {spec!r}: {arg_s!r} is not a number") from None
    if at < 0 or arg <= 0:
        raise FaultSpecError(f"fault {spec!r}: times must be positive")
    return Fault(at, kind, exchange, symbol, arg)


def check_faults(faults: list[Fault], venues: dict) -> None:
    for f in faults:
        if f.exchange not in venues:
            raise FaultSpecError(f"fault on {f.exchange}: no simulated venue for it "
                                 f"(running: {', '.join(venues)})")
        if f.symbol is not None and f.symbol not in venues[f.exchange].books:
            raise FaultSpecError(f"fault on {f.exchange}: unknown symbol {f.symbol}")
        if f.kind in ("gap", "checksum") and getattr(venues[f.exchange], "recorded", False):
            raise FaultSpecError(f"fault on {f.exchange}: a looped recording takes only "
                                 "disconnect, garbage and stall faults")


async def run_faults(faults: list[Fault], venues: dict) -> None:
    """Inject each fault at its time (seconds from now)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for f in sorted(faults, key=lambda f: f.at):
        await asyncio.sleep(max(0.0, t0 + f.at - loop.time()))
        v = venues[f.exchange]
        log.warning("simulator: injecting %s on %s %s", f.kind, f.exchange, f.symbol or "")
        if f.kind == "gap":
            v.drop_next(f.symbol)
        elif f.kind == "checksum":
            v.corrupt_next_checksum(f.symbol)
        elif f.kind == "disconnect":
            await v.disconnect_all()
        elif f.kind == "garbage":
            await v.send_garbage()
        elif f.kind == "stall":
            v.stall(f.arg)
