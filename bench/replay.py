"""`hftbook bench replay`: recorded sessions end to end (parse + sync + apply) at full
speed, per exchange, and the parse-path comparison that chose the connectors' design.

Parse paths, measured on the recorded Binance futures depth frames:
  A. orjson.loads, then ``to_fixed`` on every price and size string in Python;
  B. orjson.loads, join each side's strings, one Numba call parses them exactly
     (what the connectors use: connectors.publish);
  C. a Numba scanner over the raw frame bytes (no orjson): finds "U", "u", "b", "a"
     and parses the numbers in place.  Fastest, but every venue would need its own
     byte-level scanner, and it trusts the frame's layout (first "b": is the bids);
     B keeps orjson's validation and a readable connector, at a cost shown here.
"""

from __future__ import annotations

import time

import numpy as np
import orjson
from numba import njit

from connectors.publish import find_bytes, join_pairs
from connectors.recorded import Frame, load_session
from connectors.replay import registry, replay_session, warm_up
from engine.fixedpoint import parse_fixed, to_fixed

DRAIN = 64  # frames between writer batches, as a writer thread would take them live
FIRST_SIX = ("BINANCE", "BINANCE_FUTURES", "COINBASE", "KRAKEN", "OKX", "BYBIT")


def bench_recordings(directory, names=FIRST_SIX, repeats: int = 5) -> dict[str, dict]:
    warm_up()
    out = {}
    for name in names:
        if name not in registry():
            out[name] = {"skipped": "recording is an obsolete dialect (fixtures + loopback)"}
            continue
        try:
            replay_session(directory, name, drain_every=DRAIN)  # warm: first-call costs
        except ImportError as exc:
            out[name] = {"skipped": f"connector unavailable: {exc}"}
            continue
        best = None
        for _ in range(repeats):
            r = replay_session(directory, name, drain_every=DRAIN)
            if best is None or r.seconds < best.seconds:
                best = r
        s = best.summary()
        out[name] = {"frames": s["frames"], "level_updates": s["level_updates"],
                     "levels_per_s": s["levels_per_s"],
                     "us_per_message": round(best.seconds / max(best.frames, 1) * 1e6, 2),
                     "ok": s["ok"]}
    return out


@njit(nogil=True, cache=True)
def _int_at(buf, i):
    v = 0
    while 48 <= buf[i] <= 57:
        v = v * 10 + buf[i] - 48
        i += 1
    return v


@njit(nogil=True, cache=True)
def _levels_at(buf, i, pdec, sdec, out, k):
    """Parse [["p","q"],...] starting at buf[i] == '['; returns (k, next index)."""
    i += 1
    while buf[i] != 93:  # ']'
        while buf[i] != 34:  # to the opening quote of the price
            i += 1
        ps = i + 1
        pe = ps
        while buf[pe] != 34:
            pe += 1
        qs = pe + 1
        while buf[qs] != 34:
            qs += 1
        qs += 1
        qe = qs
        while buf[qe] != 34:
            qe += 1
        out[0, k], _ = parse_fixed(buf, ps, pe, pdec)
        out[1, k], _ = parse_fixed(buf, qs, qe, sdec)
        k += 1
        i = qe + 1
        while buf[i] != 93:  # end of this pair
            i += 1
        i += 1
        if buf[i] == 44:  # ','
            i += 1
    return k, i


@njit(nogil=True, cache=True)
def scan_depth_frame(buf, pdec, sdec, out):
    """Path C: U, u and all levels of a Binance depthUpdate frame, from the bytes."""
    U = _int_at(buf, find_bytes(buf, b'"U":', 0))
    u = _int_at(buf, find_bytes(buf, b'"u":', 0))
    k = 0
    b = find_bytes(buf, b'"b":', 0)
    if b >= 0:
        k, _ = _levels_at(buf, b, pdec, sdec, out, k)
    a = find_bytes(buf, b'"a":', 0)
    if a >= 0:
        k, _ = _levels_at(buf, a, pdec, sdec, out, k)
    return U, u, k


@njit(nogil=True, cache=True)
def _parse_joined(pbuf, sbuf, pdec, sdec, out, k):
    ps = 0
    ss = 0
    while ps < len(pbuf):
        pe = ps
        while pe < len(pbuf) and pbuf[pe] != 1:
            pe += 1
        se = ss
        while se < len(sbuf) and sbuf[se] != 1:
            se += 1
        out[0, k], _ = parse_fixed(pbuf, ps, pe, pdec)
        out[1, k], _ = parse_fixed(sbuf, ss, se, sdec)
        k += 1
        ps = pe + 1
        ss = se + 1
    return k


def bench_parse_paths(directory) -> dict[str, float]:
    """ns per level for paths A, B, C over the recorded Binance futures depth frames."""
    session = load_session(directory, "BINANCE_FUTURES")
    frames = [f.data.encode() if isinstance(f.data, str) else f.data
              for c in session.connections for f in c.frames
              if isinstance(f, Frame) and b"depthUpdate" in (
                  f.data.encode() if isinstance(f.data, str) else f.data)]
    n_levels = sum(len(d["data"]["b"]) + len(d["data"]["a"]) for d in map(orjson.loads, frames))
    out = np.zeros((2, 4096), np.int64)
    pdec, sdec = 8, 8

    def path_a():
        for fr in frames:
            d = orjson.loads(fr)["data"]
            for p, q in d["b"]:
                to_fixed(p, pdec), to_fixed(q, sdec)
            for p, q in d["a"]:
                to_fixed(p, pdec), to_fixed(q, sdec)

    def path_b():
        for fr in frames:
            d = orjson.loads(fr)["data"]
            bp, bs = join_pairs(d["b"])
            ap, as_ = join_pairs(d["a"])
            k = _parse_joined(bp, bs, pdec, sdec, out, 0)
            _parse_joined(ap, as_, pdec, sdec, out, k)

    def path_c():
        for fr in frames:
            scan_depth_frame(fr, pdec, sdec, out)

    res = {}
    for name, fn in (("A_orjson_python_to_fixed", path_a), ("B_orjson_join_numba", path_b),
                     ("C_numba_raw_bytes", path_c)):
        fn()
        best = min(_timed(fn) for _ in range(5))
        res[name] = round(best / n_levels * 1e9, 1)
    res["frames"] = len(frames)
    res["levels"] = n_levels
    return res


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(directory) -> dict:
    return {"recordings": bench_recordings(directory), "parse_ns_per_level": bench_parse_paths(
        directory)}


def print_table(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title="hftbook bench replay (recorded sessions, parse + sync + apply, 1 core)")
    for c in ("recording", "frames", "level updates", "levels/s", "µs per message", "ok"):
        t.add_column(c, justify="right" if c != "recording" else "left")
    for name, r in res["recordings"].items():
        if "skipped" in r:
            t.add_row(name, "-", "-", "-", "-", r["skipped"])
            continue
        t.add_row(name, str(r["frames"]), str(r["level_updates"]), f"{r['levels_per_s']:,}",
                  f"{r['us_per_message']:.2f}", "yes" if r["ok"] else "NO")
    console.print(t)
    p = res["parse_ns_per_level"]
    t2 = Table(title=f"parse paths, Binance futures depth frames ({p['frames']} frames, "
                     f"{p['levels']} levels): ns per level")
    t2.add_column("path")
    t2.add_column("ns/level", justify="right")
    t2.add_column("vs A", justify="right")
    base = p["A_orjson_python_to_fixed"]
    for k in ("A_orjson_python_to_fixed", "B_orjson_join_numba", "C_numba_raw_bytes"):
        t2.add_row(k, f"{p[k]:.1f}", f"{base / p[k]:.1f}x")
    console.print(t2)
