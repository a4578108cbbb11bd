"""No two writers share a cache line: every word a thread stores to lies on lines that
no other thread stores to (book store, ring control blocks, writer control blocks,
double-buffer counters), whatever alignment the allocator happens to return."""

import numpy as np

from engine.constants import HDR_WORDS
from engine.doublebuf import SLOT_WORDS, DoubleBuffer
from engine.layout import line_of
from engine.ring import (
    C_CONS_HEAD,
    C_FULL,
    C_HEAD,
    C_MAX_DEPTH,
    C_PROD_TAIL,
    C_PUSHED_MSGS,
    C_TAIL,
    RingPool,
)
from engine.store import BookStore
from engine.writer import (
    W_HEARTBEAT,
    W_IDLE_SPINS,
    W_LOOPS,
    W_PARKS,
    W_RECORDS,
    W_RUNNING,
    W_STOP,
    W_YIELDS,
    Writer,
)

PRODUCER = (C_HEAD, C_PUSHED_MSGS, C_PROD_TAIL, C_FULL)
CONSUMER = (C_TAIL, C_CONS_HEAD, C_MAX_DEPTH)
WRITER_WORDS = (W_RUNNING, W_LOOPS, W_IDLE_SPINS, W_YIELDS, W_PARKS, W_RECORDS, W_HEARTBEAT)


def _lines(arr, idxs):
    return {line_of(arr, int(i)) for i in idxs}


def _span(arr):
    return set(range(arr.ctypes.data // 64, (arr.ctypes.data + arr.nbytes - 1) // 64 + 1))


def test_books_never_share_a_line():
    for n_books, depth in ((3, 1), (5, 13), (4, 200), (2, 1000)):
        store = BookStore(n_books, depth)
        seen: dict[int, int] = {}
        for b in range(n_books):
            mine = _span(store.hdr[b * HDR_WORDS:(b + 1) * HDR_WORDS])
            for arr in (store.px, store.sz):
                for side in (0, 1):
                    row = _span(arr[b, side])
                    assert not row & mine, f"book {b}: sides share a line ({depth=})"
                    mine |= row
            for line in mine:
                assert seen.setdefault(line, b) == b, f"books {seen[line]} and {b} share"


def test_ring_producer_and_consumer_words_sit_on_different_lines():
    for _ in range(20):  # many allocations: alignment luck must not be what passes
        pad = np.empty(np.random.randint(1, 200), np.int64)  # noqa: F841 shift the heap
        pool = RingPool(3, 64)
        lines_by_ring = []
        for r in range(3):
            ctl = pool.ctl[r]
            prod, cons = _lines(ctl, PRODUCER), _lines(ctl, CONSUMER)
            assert not prod & cons, f"ring {r}: producer and consumer share a line"
            lines_by_ring.append(prod | cons | _span(pool.data[r]))
        for a in range(3):
            for b in range(a + 1, 3):
                assert not lines_by_ring[a] & lines_by_ring[b]


def test_writer_blocks_are_split_between_python_and_the_writer():
    store = BookStore(1, 8)
    pool = RingPool(1, 64)
    writers, alive = [], []
    for _ in range(20):
        pad = np.empty(np.random.randint(1, 200), np.int64)  # noqa: F841
        w = Writer(store, pool, [0], latency=False)
        alive.append(w)  # keep it: a freed block's lines are reused by the next one
        py, wr = _lines(w.wctl, (W_STOP,)), _lines(w.wctl, WRITER_WORDS)
        assert not py & wr, "Python's stop flag shares a line with the writer's counters"
        writers.append(_span(w.wctl) | _span(w.stats))
    for a in range(len(writers)):
        for b in range(a + 1, len(writers)):
            assert not writers[a] & writers[b], "two writers' blocks share a line"


def test_double_buffer_slots_have_a_line_each():
    store = BookStore(8, 8)
    db = DoubleBuffer(store, [1, 3, 5], 4)
    lines = [_lines(db.seq, range(s * SLOT_WORDS, (s + 1) * SLOT_WORDS)) for s in range(3)]
    assert all(len(x) == 1 for x in lines)
    assert len(set.union(*lines)) == 3


def test_the_check_catches_a_misaligned_block():
    """Control: the same ring offsets on a block starting 8 bytes before a line boundary
    (as np.zeros may return) put the producer's and consumer's words on one line."""
    from engine.layout import aligned_zeros

    ctl = aligned_zeros(40)[7:39]
    assert ctl.ctypes.data % 64 == 56
    assert _lines(ctl, PRODUCER) & _lines(ctl, CONSUMER)
