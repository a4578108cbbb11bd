"""Double-buffered hot books: copies equal the book, stay immutable until the next
publish, and never tear while a writer races readers on real threads."""

import threading

import numpy as np
import pytest

from bench.platform_kernels import db_reader, db_writer
from bench.torture import build_messages
from engine.constants import ASK, BID, F_END, REC_FIELDS
from engine.doublebuf import DoubleBuffer
from engine.kernels import S_WORDS, apply_records
from engine.store import BookStore

NO_HIST = np.zeros(0, np.int64)


def _apply(store, recs):
    data = np.zeros((REC_FIELDS, 64), np.int64)
    for j, (b, side, flags, p, q) in enumerate(recs):
        data[:5, j] = (b, side, flags, p, q)
    apply_records(store.hdr, store.px, store.sz, data, 63, 0, len(recs), NO_HIST,
                  np.zeros(S_WORDS, np.int64))


def test_copy_equals_book_and_is_immutable_until_the_next_publish():
    store = BookStore(3, 16)
    db = DoubleBuffer(store, [2, 0], levels=4)
    _apply(store, [(2, BID, 0, 100 - i, 10 + i) for i in range(6)]
           + [(2, ASK, F_END, 101, 7)])
    px, sz, nb, na = db.top(2, 4)
    assert (nb, na) == (0, 0), "nothing published yet: the empty initial copy"
    assert db.refresh() == 2  # both hot books start unpublished
    px, sz, nb, na = db.top(2, 4)
    assert (nb, na) == (4, 1)
    assert px[BID].tolist() == [100, 99, 98, 97] and sz[BID].tolist() == [10, 11, 12, 13]
    assert px[ASK, 0] == 101 and sz[ASK, 0] == 7
    _apply(store, [(2, BID, F_END, 100, 0)])        # delete the best bid
    assert db.top(2, 4)[0][BID, 0] == 100, "readers keep the published copy"
    assert db.refresh() == 1                         # only book 2 changed
    assert db.top(2, 4)[0][BID].tolist() == [99, 98, 97, 96]
    assert db.refresh() == 0
    assert db.publishes == 3


def test_bad_arguments_are_refused():
    store = BookStore(2, 8)
    with pytest.raises(ValueError):
        DoubleBuffer(store, [], 4)
    with pytest.raises(ValueError):
        DoubleBuffer(store, [0, 0], 4)
    with pytest.raises(IndexError):
        DoubleBuffer(store, [5], 4)
    with pytest.raises(ValueError):
        DoubleBuffer(store, [0], 99)


def _race(mode, seconds=2.0, n_books=2):
    store = BookStore(n_books, 32)
    db = DoubleBuffer(store, list(range(n_books)), levels=20)
    data, mask, bounds = build_messages(n_books)
    stats = np.zeros(S_WORDS, np.int64)
    rst = np.zeros(8, np.int64)
    args = (store.hdr, store.px, store.sz, data, mask, bounds)
    db_writer(*args, 1, NO_HIST, stats, *db.arrays, db.slot_book, True)   # compile
    db_reader(*db.arrays, n_books, 20, 1, mode, rst, NO_HIST)
    dur = int(seconds * 1e9)
    out = []
    w = threading.Thread(target=lambda: out.append(
        db_writer(*args, dur, NO_HIST, stats, *db.arrays, db.slot_book, True)))
    r = threading.Thread(target=db_reader, args=(*db.arrays, n_books, 20, dur, mode, rst,
                                                 NO_HIST))
    w.start()
    r.start()
    w.join()
    r.join()
    return out[0], rst


def test_readers_of_the_double_buffer_never_see_a_torn_book():
    writes, rst = _race(0)
    reads, torn, _retries, _, states = rst[:5]
    assert writes > 10_000 and reads > 10_000
    assert states > 1_000, "the reader must actually race the writer"
    assert torn == 0


def test_the_invariant_catches_reading_the_copy_being_written():
    """Control: reading the back copy without the protocol tears, so the check has teeth."""
    _, rst = _race(1, seconds=1.0, n_books=1)
    assert rst[1] > 0
