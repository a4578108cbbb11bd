"""Kernel-level techniques of issue 8, each measured on against off in one process.

* prefetch: the apply loop asks the CPU (``llvm.prefetch``) for the header and touch
  lines of the books PREFETCH_AHEAD records ahead, so a cold book's lines are on their
  way before its section starts.
* SIMD search: past the first SIMD_HEAD levels (checked one by one), the next
  SIMD_WINDOW levels of a side are compared with the price all at once (vector
  compares and a sum; ``simd_instructions`` reads them from the assembly) instead of
  scanned from the touch with an early exit.

Both are compile-time choices in engine/kernels.py (PREFETCH, SIMD_SEARCH); every
combination is its own module-level kernel (``APPLY_VARIANTS``), so both sides of a
technique run the same stream here, alternating, and the best of several rounds is
kept (the machine is shared and noisy).  ``hftbook bench platform`` prints these rows.
"""

from __future__ import annotations

import re
import time

import numpy as np

from bench.engine import N_BOOKS, NO_HIST, _as_ring_block, snapshot_block, update_stream
from engine.constants import H_PUBLISH_TS, HDR_WORDS
from engine.kernels import APPLY_VARIANTS, PREFETCH, S_WORDS, SIMD_SEARCH
from engine.store import BookStore


def _loaded_store(depth: int, n_books: int) -> BookStore:
    store = BookStore(n_books, depth)
    stats = np.zeros(S_WORDS, np.int64)
    snap, mask = _as_ring_block(snapshot_block(n_books, depth))
    APPLY_VARIANTS[(False, False)](store.hdr, store.px, store.sz, snap, mask, 0,
                                   n_books * 2 * depth, NO_HIST, stats)
    return store


def compare_apply(variants: dict[str, tuple[bool, bool]], depth: int, n_updates: int,
                  rounds: int, n_books: int = N_BOOKS) -> dict[str, float]:
    """M level updates/s of each named (prefetch, simd) kernel on the benchmark mix,
    best of ``rounds`` passes in rotating order, each variant on its own copy of the
    books.  Timed in CPU time of this thread: on a shared, loaded machine wall time
    mostly measures who else ran, and a kernel that never blocks uses the CPU for all
    of its wall time when it is not preempted."""
    stream = update_stream(n_books, depth, n_updates)
    blk, mask = _as_ring_block(stream)
    n = stream.shape[1]
    stores = {name: _loaded_store(depth, n_books) for name in variants}
    stats = np.zeros(S_WORDS, np.int64)
    best = dict.fromkeys(variants, float("inf"))
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            s = stores[name]
            kernel = APPLY_VARIANTS[variants[name]]
            t0 = time.thread_time()
            kernel(s.hdr, s.px, s.sz, blk, mask, 0, n, NO_HIST, stats)
            best[name] = min(best[name], time.thread_time() - t0)
    a = next(iter(stores.values()))
    for s in stores.values():  # same stream, same books: every variant must agree
        ha = a.hdr.reshape(n_books, HDR_WORDS).copy()
        hs = s.hdr.reshape(n_books, HDR_WORDS).copy()
        ha[:, H_PUBLISH_TS] = hs[:, H_PUBLISH_TS] = 0  # a clock stamp, differs by design
        if not (np.array_equal(hs, ha) and np.array_equal(s.px, a.px)
                and np.array_equal(s.sz, a.sz)):
            raise AssertionError("kernel variants disagree on the same stream")
    return {name: n / t / 1e6 for name, t in best.items()}


def simd_instructions() -> str:
    """Which vector compare instructions the SIMD search compiles to on this CPU
    (a fresh, uncached compile: Numba cannot inspect code loaded from its cache)."""
    import numba

    from engine import kernels

    f = numba.jit(nopython=True, nogil=True)(kernels.set_level_simd.py_func)
    p = np.zeros(64, np.int64)
    f(p, p.copy(), 0, 64, 1, 1, 0)
    asm = "\n".join(f.inspect_asm().values())
    found = sorted(set(re.findall(r"\b(v?pcmp\w+q)\b", asm)))
    regs = [r for r in ("zmm", "ymm", "xmm") if r in asm]
    if not found:
        return "not vectorised"
    return f"{', '.join(found)} on {regs[0] if regs else '?'}"


def measure(quick: bool) -> list[dict]:
    """Rows for ``hftbook bench platform``: prefetch on/off, SIMD search on/off, apply
    M level updates/s at depths 200 and 1000 over 5000 books (the engine bench mix)."""
    n_updates = 400_000 if quick else 3_000_000
    rounds = 2 if quick else 4
    rows = []
    try:
        simd_asm = simd_instructions()
    except Exception as exc:  # inspection is a report, never a reason to fail the bench
        simd_asm = f"assembly not inspected ({exc.__class__.__name__})"
    head, window = _window()
    for depth in (200, 1000):
        r = compare_apply({"pf_off": (False, SIMD_SEARCH), "pf_on": (True, SIMD_SEARCH),
                           "simd_off": (PREFETCH, False), "simd_on": (PREFETCH, True)},
                          depth, n_updates, rounds)
        rows.append({
            "technique": "prefetch next sections' lines (llvm.prefetch)",
            "metric": f"apply, depth {depth}, {N_BOOKS} books", "off": round(r["pf_off"], 2),
            "on": round(r["pf_on"], 2), "unit": "M upd/s",
            "note": f"default {'on' if PREFETCH else 'off'}; search "
                    f"{'simd' if SIMD_SEARCH else 'scan'}",
        })
        rows.append({
            "technique": f"SIMD level search (levels {head + 1}..{head + window} from the "
                         "touch counted with vector compares)",
            "metric": f"apply, depth {depth}, {N_BOOKS} books", "off": round(r["simd_off"], 2),
            "on": round(r["simd_on"], 2), "unit": "M upd/s",
            "note": f"default {'on' if SIMD_SEARCH else 'off'}; {simd_asm}",
        })
    return rows


def _window() -> tuple[int, int]:
    from engine.kernels import SIMD_HEAD, SIMD_WINDOW

    return SIMD_HEAD, SIMD_WINDOW


if __name__ == "__main__":  # pragma: no cover - manual run
    import sys

    for row in measure("--quick" in sys.argv):
        print(row)
