"""The TSC clock agrees with CLOCK_MONOTONIC, keeps agreeing across recalibrations,
and falls back to clock_gettime where the TSC is not a trustworthy clock."""

import random
import time

import pytest

from engine import tsc

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
