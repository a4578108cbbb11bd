"""Allocation probe for the steady-state hot path (run in its own process, with Numba's
NRT statistics switched on: ``NUMBA_NRT_STATS=1 python -m bench.alloc_probe``).

Pushes messages from Python into a ring that a running Writer thread consumes and
applies, and measures, over the steady state only (after a warm-up):
* Python allocations: tracemalloc's traced memory before and after, the peak in
  between, and new blocks attributed to engine/ sources (a per-message allocation
  that is kept shows up as growth; one that is freed at once shows up in the peak);
* Numba NRT allocations, from ``rtsys.get_allocation_stats()`` deltas: every call
  from Python into a kernel wraps its array arguments in NRT meminfos (measured per
  call with empty pushes); whatever the steady state allocates beyond that comes from
  inside the kernels: the writer's loop and the push.
For contrast it also counts the NRT allocations of a read that allocates its result
per call (engine.read.top_levels_fixed) against the preallocated copy_top.
Prints one JSON object.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc

import numpy as np
import orjson


def _nrt():
    from numba.core.runtime import rtsys

    s = rtsys.get_allocation_stats()
    return s.alloc, s.free


def main(n_msgs: int = 20_000) -> dict:
    import numba

    if not numba.config.NRT_STATS:
        raise SystemExit("run with NUMBA_NRT_STATS=1")
    from bench.engine import MSG_LEVELS, snapshot_block, update_stream
    from engine.constants import HDR_WORDS
    from engine.ring import C_HEAD, C_TAIL, RingPool
    from engine.store import BookStore
    from engine.writer import Writer

    n_books, depth = 256, 64
    store = BookStore(n_books, depth)
    pool = RingPool(1, 1 << 14)
    ring = pool.ring(0)
    writer = Writer(store, pool, [0], batch=64).start()
    snap = np.ascontiguousarray(snapshot_block(n_books, depth))
    for b in range(n_books):
        ring.push(snap, b * 2 * depth, 2 * depth)
    stream = update_stream(n_books, depth, (n_msgs + 2000) * MSG_LEVELS, seed=7)
    starts = list(range(0, stream.shape[1], MSG_LEVELS))  # ints made before tracing
    ctl = pool.ctl[0]

    def drain():
        while ctl[C_TAIL] != ctl[C_HEAD]:
            time.sleep(0.001)

    for s in starts[:2000]:                        # warm-up: compile, caches, dicts
        ring.push(stream, s, MSG_LEVELS)
    drain()
    steady = starts[2000:2000 + n_msgs]
    # Calling a kernel from Python wraps each array argument in an NRT meminfo (a small
    # malloc, freed on return): measure that per-call price with empty pushes.
    from engine.ring import ring_push

    b0 = _nrt()
    for _ in range(1000):
        ring_push(ring.ctl, ring.data, stream, 0, 0)
    b1 = _nrt()
    per_call = (b1[0] - b0[0]) / 1000
    nrt0 = _nrt()
    tracemalloc.start(10)
    snap0 = tracemalloc.take_snapshot()
    cur0, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    push = ring.push
    for s in steady:
        push(stream, s, MSG_LEVELS)
    cur1, peak = tracemalloc.get_traced_memory()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    drain()
    nrt1 = _nrt()
    writer.stop()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    engine_dir = os.path.join(here, "engine")
    grown = [st for st in snap1.compare_to(snap0, "filename")
             if st.size_diff > 0 and st.traceback[0].filename.startswith(engine_dir)]
    records = writer.counters()["records"]

    from bench.platform_kernels import reads_allocating, reads_preallocated

    books = np.arange(1024, dtype=np.int64) % n_books
    args = (store.hdr, store.px, store.sz, books)
    outs = (np.zeros((2, 20), np.int64), np.zeros((2, 20), np.int64),
            np.zeros(HDR_WORDS, np.int64))
    reads_allocating(*args, 10)
    reads_preallocated(*args, 10, *outs)
    reps = 100_000
    a0 = _nrt()
    reads_allocating(*args, reps)
    a1 = _nrt()
    reads_preallocated(*args, reps, *outs)
    a2 = _nrt()
    return {
        "messages": len(steady),
        "records_applied": records,
        "python_net_bytes": cur1 - cur0,
        "python_peak_bytes": peak - cur0,
        "python_engine_blocks_grown": sum(st.count_diff for st in grown),
        "nrt_allocs_steady_state": nrt1[0] - nrt0[0],
        "nrt_allocs_per_python_call": per_call,
        "nrt_allocs_writer_kernel": nrt1[0] - nrt0[0] - round(per_call * len(steady)),
        "nrt_frees_steady_state": nrt1[1] - nrt0[1],
        "reads": reps,
        "nrt_allocs_allocating_reads": a1[0] - a0[0],
        "nrt_allocs_preallocated_reads": a2[0] - a1[0],
    }


if __name__ == "__main__":
    res = main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    sys.stdout.write(orjson.dumps(res).decode() + "\n")
