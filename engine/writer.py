"""Writer threads: a ``threading.Thread`` that stays inside one long nogil kernel,
consuming its rings and applying updates to the books it owns.

Idle policy (works on 2 cores, tunable per writer):
  1. spin: poll the rings ``spin`` times with a CPU pause hint (lowest latency);
  2. yield: ``sched_yield`` up to ``yields`` times (gives the core to the event loop or
     a producer that shares it, returns at once when nothing else is runnable);
  3. park: sleep ``park_us`` microseconds per poll until work arrives.
Any work resets the policy to step 1.  The writer never returns to Python while
running: returning between short calls was measured to wreck tail latency.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
from numba import njit

from engine.atomics import (
    borrowed,
    cpu_relax,
    load_relaxed,
    sched_yield,
    sleep_us,
    store_relaxed,
)
from engine.histogram import new_hist
from engine.kernels import S_WORDS
from engine.layout import aligned_zeros
from engine.platform import rt_safe_params, setup_writer_thread
from engine.ring import ring_consume

# writer control block (int64[W_WORDS]); Python writes line 0, the writer the rest
W_WORDS = 24
W_STOP = 0            # set to 1 to stop after draining
W_RUNNING = 8         # 1 while inside the loop
W_LOOPS = 9           # polls
W_IDLE_SPINS = 10     # idle polls spun, yielded, parked: three consecutive words
W_YIELDS = 11         # (idle_step counts them by offset)
W_PARKS = 12
W_RECORDS = 13        # records consumed
W_HEARTBEAT = 16      # bumped every poll: readers can tell the writer is alive


@njit(nogil=True, inline="always")
def idle_step(ctr, first, idle, spin, yields, park_us):
    """The ``idle``-th empty poll in a row under the idle policy above (spin, then
    yield, then park), counted in ctr[first], ctr[first + 1] or ctr[first + 2]."""
    if idle <= spin:
        ctr[first] += 1
        cpu_relax()
    elif idle <= spin + yields:
        ctr[first + 1] += 1
        sched_yield()
    else:
        ctr[first + 2] += 1
        sleep_us(park_us)


@njit(nogil=True, cache=True)
def run_writer(wctl, owned, ring_ctl, ring_data, hdr, px, sz, batch, spin, yields, park_us,
               hist, stats):
    """Consume rings ``owned`` (indices into the pool) until wctl[W_STOP] is set,
    then drain what is left and return."""
    # uncounted views: the loop hands these (and ring slices) to ring_consume on every
    # poll, and counting references cost ~100 ns per poll (engine.atomics.borrowed)
    ring_ctl, ring_data, owned = borrowed(ring_ctl), borrowed(ring_data), borrowed(owned)
    hdr, px, sz, hist, stats = borrowed(hdr), borrowed(px), borrowed(sz), borrowed(hist), \
        borrowed(stats)
    store_relaxed(wctl, W_RUNNING, 1)
    idle = 0
    while True:
        stop = load_relaxed(wctl, W_STOP)
        got = 0
        for k in range(owned.shape[0]):
            r = owned[k]
            got += ring_consume(ring_ctl[r], ring_data[r], hdr, px, sz, batch, hist, stats)
        wctl[W_LOOPS] += 1
        store_relaxed(wctl, W_HEARTBEAT, wctl[W_LOOPS])
        if got > 0:
            wctl[W_RECORDS] += got
            idle = 0
            continue
        if stop:
            break
        idle += 1
        idle_step(wctl, W_IDLE_SPINS, idle, spin, yields, park_us)
    store_relaxed(wctl, W_RUNNING, 0)


def pin_current_thread(cpu: int | None) -> str:
    """Pin the calling thread to ``cpu``; returns what happened (for startup reports)."""
    if cpu is None:
        return "not pinned"
    if not hasattr(os, "sched_setaffinity"):
        return f"not pinned: no sched_setaffinity on {sys.platform}"
    try:
        avail = os.sched_getaffinity(0)
        if cpu not in avail:
            return f"not pinned: cpu {cpu} not in allowed set {sorted(avail)}"
        os.sched_setaffinity(0, {cpu})  # pid 0 = the calling thread on Linux
        return f"pinned to cpu {cpu}"
    except OSError as exc:
        return f"not pinned: {exc}"


class Writer:
    """One writer thread owning a set of rings (and through them, their books)."""

    _count = 0

    def __init__(self, store, pool, rings: list[int], *, name: str = "writer",
                 cpu: int | None = None, batch: int = 64, spin: int = 64_000,
                 yields: int = 200, park_us: int = 50, latency: bool = True) -> None:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.store = store
        self.pool = pool
        self.name = name
        self.cpu = cpu
        self.index = Writer._count  # pin_writers[index % n] when cpu is None
        Writer._count += 1
        self.owned = np.asarray(rings, dtype=np.int64)
        self.params = (batch, spin, yields, park_us)
        self.wctl = aligned_zeros(W_WORDS)  # line 0 Python's, lines 1-2 the writer's
        self.stats = aligned_zeros(S_WORDS)  # one line, this writer's alone
        self.hist = new_hist() if latency else np.zeros(0, dtype=np.int64)
        self.pin_report = "not started"
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _main(self) -> None:
        self.pin_report = setup_writer_thread(self.index, self.cpu)  # pin, priority
        params = rt_safe_params(self.params)  # a realtime writer must park, not spin
        try:
            run_writer(self.wctl, self.owned, self.pool.ctl, self.pool.data, self.store.hdr,
                       self.store.px, self.store.sz, *params, self.hist, self.stats)
        except BaseException as exc:  # pragma: no cover - surfaced by stop()
            self._error = exc

    def start(self, timeout: float = 60.0) -> Writer:
        """Start the thread and return once its kernel loop is running (the first start
        in a process may load or compile the kernel)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.wctl[W_RUNNING] and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout}s")
            time.sleep(0.001)
        if self._error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Drain the rings, stop the loop, join the thread."""
        store_stop(self.wctl)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not stop within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} failed") from self._error

    @property
    def native_id(self) -> int | None:
        """OS thread id (for /proc and monitoring), None before start."""
        return self._thread.native_id if self._thread is not None else None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> dict[str, int]:
        w = self.wctl
        return {"loops": int(w[W_LOOPS]), "records": int(w[W_RECORDS]),
                "spins": int(w[W_IDLE_SPINS]), "yields": int(w[W_YIELDS]),
                "parks": int(w[W_PARKS]), "bad_records": int(self.stats[2])}

    def __enter__(self) -> Writer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@njit(cache=True)
def store_stop(wctl):
    store_relaxed(wctl, W_STOP, 1)
