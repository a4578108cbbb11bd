"""The two floors `hftbook bench engine` prints beside its latency figures: the ring
path with a consumer that applies nothing, and the machine's own stalls of a thread
that never blocks.  Both are what the latency targets are judged against, so both
must measure what they claim."""

import os
import threading
import time

import numpy as np
import pytest
from numba import njit

from bench import engine as be


def test_null_path_records_one_sample_per_message():
    res = be.measure_null_path(100_000, 0.2)
    assert res["messages"] == int(100_000 * 0.2) // be.MSG_LEVELS
    assert 0 < res["p50"] <= res["p99"] <= res["p999"] <= res["max"]


@njit(nogil=True, cache=True)
def _burn(stop, ns):
    """Spin until stop[0] is set or ``ns`` have passed."""
    t0 = be.clock_ns()
    x = 0
    while stop[0] == 0 and be.clock_ns() - t0 < ns:
        x += 1
    return x


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_stall_probe_sees_a_thread_competing_for_its_cpu():
    """A busy thread pinned to the probe's CPU takes about half of it: the probe must
    report that share lost, in stalls as long as the scheduler's time slices."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    stop = np.zeros(1, np.int64)
    _burn(stop, 1000)

    def rival() -> None:
        os.sched_setaffinity(0, {cpu})
        _burn(stop, 10_000_000_000)

    t = threading.Thread(target=rival, daemon=True)
    t.start()
    time.sleep(0.05)
    res = be.measure_stalls(0.5, cpu=cpu)
    stop[0] = 1
    t.join()
    assert res["time_lost_pct"] > 20
    assert res["max_stall_ns"] > 100_000  # preempted for whole slices, not interrupts
    assert res["stalls_per_s"] > 0
