"""Suite-wide setup: load (or, with a cold Numba cache, compile) the engine kernels the
feed tests use before any test starts its clock, so a timeout in a test measures the
feed, not the compiler (a cold compile of the tier engine takes tens of seconds on a
loaded 2-core machine)."""

import time

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _warm_engine_kernels():
    from connectors.publish import push_message
    from connectors.replay import warm_up
    from engine.constants import H_SEQLOCK, HDR_WORDS
    from engine.queues import QueuePool
    from engine.store import BookStore
    from engine.tiers import TierConfig, TierEngine

    warm_up()  # the connector -> ring kernels and the single-writer consume path
    store = BookStore(2, 8)
    for b in range(2):
        store.configure(b, f"warm:{b}", 0, 0)
    queues = QueuePool([256, 256])
    engine = TierEngine(store, queues, TierConfig()).start()
    try:
        for b in range(2):
            push_message(queues.ctl[b], queues.data(b), b, True, b"1", b"1", b"2", b"1", 0, 0,
                         1, 0, time.monotonic_ns(), 0, 0, -1)
        deadline = time.monotonic() + 120
        while int(store.hdr[np.arange(2) * HDR_WORDS + H_SEQLOCK].min()) < 2 and \
                time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        engine.stop()
    yield
