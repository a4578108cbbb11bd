"""The TSC clock agrees with CLOCK_MONOTONIC, keeps agreeing across recalibrations,
and falls back to clock_gettime where the TSC is not a trustworthy clock."""

import random
import threading
import time

import numpy as np
import pytest
from numba import njit

from engine import tsc
from engine.atomics import monotonic_ns

AGREE_NS = 200_000  # a Python call on a busy 2-core machine: generous, not a timing test


@pytest.fixture(autouse=True)
def _restore():
    yield
    tsc.disable()


def _gap():
    """|clock_ns - monotonic| bracketed by two monotonic reads (best of 50)."""
    best = None
    for _ in range(50):
        a = time.monotonic_ns()
        c = tsc.clock_ns_py()
        b = time.monotonic_ns()
        d = 0 if a <= c <= b else min(abs(c - a), abs(c - b))
        best = d if best is None else min(best, d)
    return best


def test_mul_shift_is_exact_in_128_bits():
    from numba import njit

    f = njit(lambda a, m: tsc.mul_shift(a, m))
    rng = random.Random(1)
    for _ in range(200):
        a = rng.randrange(0, 1 << 50)
        m = rng.randrange(1 << 28, 1 << 34)
        assert f(a, m) == (a * m) >> tsc.SHIFT


def test_tsc_clock_on_the_monotonic_timebase():
    ok, why = tsc.enable(interval=0.2)
    if not ok:
        pytest.skip(why)
    assert tsc.mode() == tsc.MODE_TSC
    assert _gap() < AGREE_NS
    reads = [tsc.clock_ns_py() for _ in range(10_000)]
    assert all(b >= a for a, b in zip(reads, reads[1:]))
    rec0 = tsc._calibrator.recalibrations
    time.sleep(0.7)
    assert tsc._calibrator.recalibrations > rec0, "the rate is re-measured periodically"
    assert _gap() < AGREE_NS
    assert 0.2 < tsc._calibrator.ghz < 10


def test_disabled_clock_is_clock_gettime():
    tsc.disable()
    assert tsc.mode() == tsc.MODE_GETTIME
    assert _gap() < AGREE_NS


def test_untrusted_tsc_falls_back(monkeypatch):
    monkeypatch.setattr(tsc, "tsc_invariant", lambda: (False, "TSC not invariant: test"))
    ok, why = tsc.enable()
    assert not ok and "clock_gettime" in why and "not invariant" in why
    assert tsc.mode() == tsc.MODE_GETTIME


def test_invariance_check_reads_the_machine():
    ok, why = tsc.tsc_invariant()
    assert isinstance(ok, bool) and why


@njit(nogil=True)
def _read_against_monotonic(duration_ns):
    """Largest |clock_ns - clock_gettime| seen over duration_ns, and reads made."""
    end = monotonic_ns() + duration_ns
    worst = 0
    n = 0
    while True:
        a = monotonic_ns()
        c = tsc.clock_ns()
        b = monotonic_ns()
        if b > end:
            return worst, n
        d = 0 if a <= c <= b else min(abs(c - a), abs(c - b))
        worst = max(worst, d)
        n += 1


@njit(nogil=True)
def _republish(p, pairs, duration_ns):
    """Publish two valid calibrations, taken far apart, alternately for duration_ns."""
    end = monotonic_ns() + duration_ns
    k = 0
    while monotonic_ns() < end:
        j = k & 1
        tsc._publish(p, pairs[j, 0], pairs[j, 1], pairs[j, 2])
        k += 1
    return k


def test_republishing_never_tears_a_clock_read():
    """A calibrator republishing as fast as it can while a kernel reads the clock: a
    read mixing the two calibrations' bases (taken ~0.2 s apart) would be off by about
    that much; every read stays within the clock's own error."""
    ok, why = tsc.enable()
    if not ok:
        pytest.skip(why)
    t0, n0, _ = tsc._pair(100)
    time.sleep(0.2)
    t1, n1, _ = tsc._pair(100)
    mult = ((n1 - n0) << tsc.SHIFT) // (t1 - t0)
    pairs = np.array([[t0, n0, mult], [t1, n1, mult]], np.int64)
    _read_against_monotonic(1)
    _republish(tsc.PARAMS, pairs, 1)
    got = {}
    dur = int(1.5e9)
    r = threading.Thread(target=lambda: got.update(r=_read_against_monotonic(dur)))
    w = threading.Thread(target=lambda: got.update(w=_republish(tsc.PARAMS, pairs, dur)))
    r.start()
    w.start()
    r.join()
    w.join()
    (worst, reads), publishes = got["r"], got["w"]
    assert publishes > 10_000 and reads > 10_000
    assert worst < 50_000_000, f"a read was off by {worst} ns: torn calibration"


def test_latch_protocol_reader_and_writer_sides():
    """Deterministic halves of the protocol: a publish leaves the copy readers were using
    untouched; a calibrator stopped halfway (odd counter, back copy half written) neither
    blocks a reader nor feeds it the half-written copy."""
    ok, why = tsc.enable()
    if not ok:
        pytest.skip(why)
    cal = tsc._calibrator
    cal.stop()                        # no real republishing while we stage one
    p = tsc.PARAMS
    saved = p.copy()
    try:
        s = int(p[tsc.K_SEQ])
        front = tsc.K_COPY + 3 * ((s >> 1) & 1)
        back = tsc.K_COPY + 3 * (((s >> 1) + 1) & 1)
        before = p[front:front + 3].copy()
        tsc._publish(p, 1, 2, 3)
        assert p[front:front + 3].tolist() == before.tolist(), "wrote the live copy"
        assert p[back:back + 3].tolist() == [1, 2, 3] and p[tsc.K_SEQ] == s + 2
        p[:] = saved
        p[tsc.K_SEQ] = s + 1          # calibrator preempted mid-publish ...
        p[back + 1] = 0               # ... with the back copy half written
        got = {}
        t = threading.Thread(target=lambda: got.update(gap=_gap()), daemon=True)
        t.start()
        t.join(30)
        assert "gap" in got, "a reader waited for the calibrator"
        assert got["gap"] < AGREE_NS
    finally:
        p[:] = saved
        cal._stop.clear()
        cal.start()
