"""The raw-bytes fast path (connectors.publish.push_raw_update) against the ordinary
path: same records in the ring for the same frames, and clean refusals."""

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.publish import (
    NO_CHECKSUM,
    PUSH_OK,
    RAW_MAX_LEVELS,
    RAW_UNEXPECTED,
    join_levels,
    push_message,
    push_raw_update,
)
from engine.constants import REC_FIELDS
from engine.fixedpoint import PARSE_PRECISION
from engine.ring import C_HEAD, RingPool

decimal = st.builds(lambda w, f: f"{w}.{f:08d}", st.integers(0, 10**6), st.integers(0, 10**8 - 1))
level = st.tuples(decimal, st.sampled_from(["0.00000000", "1.50000000", "2.00000000"]),
                  st.just("1618678133.370507"))


def _records(pool):
    n = int(pool.ctl[0, C_HEAD])
    return pool.data[0][:, :n].copy()


@settings(max_examples=80, deadline=None)
@given(bids=st.lists(level, max_size=6), asks=st.lists(level, max_size=6))
def test_raw_path_writes_what_the_ordinary_path_writes(bids, asks):
    body = {}
    if asks:
        body["a"] = [list(lv) for lv in asks]
    if bids:
        body["b"] = [list(lv) for lv in bids]
    frame = orjson.dumps([1, body, "book-1000", "X/Y"])
    raw, plain = RingPool(1, 64), RingPool(1, 64)
    scratch = np.zeros((5, 2 * RAW_MAX_LEVELS), np.int64)
    bpos = frame.find(b'"b":')
    apos = frame.find(b'"a":')
    res, n, ts = push_raw_update(raw.ctl[0], raw.data[0], 3, frame,
                                 bpos + 4 if bpos >= 0 else -1, apos + 4 if apos >= 0 else -1,
                                 8, 8, -1, 7, NO_CHECKSUM, 0, False, scratch, False, -1)
    assert res == PUSH_OK and n == len(bids) + len(asks)
    assert ts == (1618678133370507000 if n else 0)
    bp, bs = join_levels([list(lv) for lv in bids])
    ap, as_ = join_levels([list(lv) for lv in asks])
    push_message(plain.ctl[0], plain.data[0], 3, False, bp, bs, ap, as_, 8, 8, -1, ts, 7,
                 NO_CHECKSUM, 0, -1)
    assert (_records(raw) == _records(plain)).all()


def test_raw_path_refuses_what_it_does_not_expect():
    pool = RingPool(1, 64)
    scratch = np.zeros((5, 2 * RAW_MAX_LEVELS), np.int64)
    for frame in (b'{"b":[["1.0","2.0"]', b'{"b":[[1.0,"2.0"]]}', b'{"b":[["1\\u0030","2"]]}',
                  b'{"b":[["1.0"]]}', b'{"b":{"p":"1"}}'):
        res, _, _ = push_raw_update(pool.ctl[0], pool.data[0], 0, frame, frame.find(b"[") if
                                    frame.find(b"[") >= 0 else 5, -1, 8, 8, -1, 0,
                                    NO_CHECKSUM, 0, False, scratch, False, -1)
        assert res == RAW_UNEXPECTED, frame
    frame = b'{"b":[["1.123","2"]]}'
    res, _, _ = push_raw_update(pool.ctl[0], pool.data[0], 0, frame, 5, -1, 2, 8, -1, 0,
                                NO_CHECKSUM, 0, False, scratch, False, -1)
    assert res == PARSE_PRECISION
    assert int(pool.ctl[0, C_HEAD]) == 0  # nothing published by any refusal


def test_deletes_first_and_duplicates_keep_the_last_size():
    pool = RingPool(1, 64)
    scratch = np.zeros((5, 2 * RAW_MAX_LEVELS), np.int64)
    frame = b'{"b":[["1.0","5"],["2.0","0"],["1.0","7"],["3.0","0"],["4.0","1"]]}'
    res, n, _ = push_raw_update(pool.ctl[0], pool.data[0], 0, frame, 5, -1, 1, 0, -1, 0,
                                NO_CHECKSUM, 0, True, scratch, False, -1)
    assert res == PUSH_OK and n == 4
    recs = _records(pool)
    assert recs[3].tolist() == [20, 30, 10, 40] and recs[4].tolist() == [0, 0, 7, 1]
    assert recs.shape == (REC_FIELDS, 4)


def test_raw_snapshot_matches_the_ordinary_snapshot():
    from engine.constants import LIVE

    bids = [["10.5", "1"], ["10.4", "2"]]
    asks = [["10.6", "3"]]
    frame = orjson.dumps([1, {"as": asks, "bs": bids}, "book-10", "X/Y"])
    raw, plain = RingPool(1, 64), RingPool(1, 64)
    scratch = np.zeros((5, 2 * RAW_MAX_LEVELS), np.int64)
    res, n, _ = push_raw_update(raw.ctl[0], raw.data[0], 2, frame, frame.find(b'"bs":') + 5,
                                frame.find(b'"as":') + 5, 1, 0, 9, 4, NO_CHECKSUM, 0, False,
                                scratch, True, LIVE)
    assert res == PUSH_OK and n == 3
    bp, bs = join_levels(bids)
    ap, as_ = join_levels(asks)
    push_message(plain.ctl[0], plain.data[0], 2, True, bp, bs, ap, as_, 1, 0, 9, 0, 4,
                 NO_CHECKSUM, 0, LIVE)
    assert (_records(raw) == _records(plain)).all()
