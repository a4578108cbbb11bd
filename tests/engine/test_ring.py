"""SPSC ring: every record once and in order across wrap-arounds; full-ring policy."""

import threading
import time

import numpy as np
import pytest
from numba import njit

from engine.constants import F_END, R_FLAGS, R_SEQ, REC_FIELDS
from engine.ring import C_FULL, RingFull, RingPool, ring_pop_into

TOTAL = 400_000


@njit(nogil=True, cache=True)
def consume_all(ctl, data, total, log, out, max_n):
    got = 0
    while got < total:
        n = ring_pop_into(ctl, data, out, max_n)
        for k in range(n):
            log[got + k] = out[R_SEQ, k]
        got += n
    return got


def test_producer_consumer_across_many_wraparounds():
    pool = RingPool(1, 64)  # tiny ring: ~6000 wrap-arounds
    ring = pool.ring(0)
    log = np.full(TOTAL, -1, np.int64)
    out = np.zeros((REC_FIELDS, 64), np.int64)
    consume_all(pool.ctl[0], pool.data[0], 0, log, out, 8)  # compile first
    consumer = threading.Thread(target=consume_all,
                                args=(pool.ctl[0], pool.data[0], TOTAL, log, out, 13))
    consumer.start()
    # messages of 1..7 records, sequence numbers in R_SEQ
    block = np.zeros((REC_FIELDS, TOTAL), np.int64)
    block[R_SEQ] = np.arange(TOTAL)
    rng = np.random.default_rng(1)
    pos = 0
    while pos < TOTAL:
        n = min(int(rng.integers(1, 8)), TOTAL - pos)
        block[R_FLAGS, pos + n - 1] = F_END
        ring.push(block, pos, n, timeout=10.0)
        pos += n
    consumer.join(30)
    assert not consumer.is_alive()
    assert (log == np.arange(TOTAL)).all()  # once each, in order
    assert ring.depth == 0


def test_full_ring_refuses_whole_message_and_counts():
    pool = RingPool(1, 8)
    ring = pool.ring(0)
    block = np.zeros((REC_FIELDS, 8), np.int64)
    block[R_SEQ] = np.arange(8) + 100
    assert ring.try_push(block, 0, 6)
    assert not ring.try_push(block, 0, 3)  # would need 9 slots: nothing written
    assert pool.ctl[0, C_FULL] == 1
    assert ring.depth == 6
    out = np.zeros((REC_FIELDS, 8), np.int64)
    assert ring_pop_into(pool.ctl[0], pool.data[0], out, 8) == 6
    assert out[R_SEQ, :6].tolist() == [100, 101, 102, 103, 104, 105]  # not overwritten
    assert ring.try_push(block, 0, 8)


def test_push_waits_then_raises_ringfull_when_nobody_consumes():
    pool = RingPool(1, 4)
    ring = pool.ring(0)
    block = np.zeros((REC_FIELDS, 4), np.int64)
    ring.push(block, 0, 4)
    t0 = time.monotonic()
    with pytest.raises(RingFull):
        ring.push(block, 0, 1, timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    assert ring.full_count >= 2


def test_push_blocks_until_consumer_frees_space():
    pool = RingPool(1, 4)
    ring = pool.ring(0)
    block = np.zeros((REC_FIELDS, 4), np.int64)
    ring.push(block, 0, 4)
    out = np.zeros((REC_FIELDS, 4), np.int64)
    timer = threading.Timer(0.05, ring_pop_into, args=(pool.ctl[0], pool.data[0], out, 4))
    timer.start()
    ring.push(block, 0, 2, timeout=5.0)  # back-pressure, not a drop
    timer.join()
    assert ring.depth == 2


def test_bad_capacity_and_oversized_message_are_clear_errors():
    with pytest.raises(ValueError, match="power of two"):
        RingPool(1, 100)
    ring = RingPool(1, 4).ring(0)
    with pytest.raises(ValueError, match="exceeds ring capacity"):
        ring.push(np.zeros((REC_FIELDS, 8), np.int64))
