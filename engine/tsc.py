"""A calibrated TSC clock on the CLOCK_MONOTONIC timebase, readable from Numba kernels.

``clock_ns()`` (njit, inline) returns nanoseconds comparable with ``time.monotonic_ns()``.
It reads the CPU time-stamp counter (``rdtsc``, ~9 ns in a kernel here) and converts it
with a rate calibrated against CLOCK_MONOTONIC, or, when the TSC clock is off or cannot
be trusted, calls ``clock_gettime(CLOCK_MONOTONIC)`` (~20 ns).  The switch is a word in
one process-wide parameter block, so cached kernels need no recompiling and no extra
argument: ``enable()`` / ``disable()`` flip it at run time.

Why a TSC needs checks and recalibration:
* the TSC is only a clock when it is *invariant*: it ticks at a constant rate in every
  P-state and C-state (``constant_tsc`` and ``nonstop_tsc`` in /proc/cpuinfo) and the
  kernel still trusts it (current clocksource ``tsc``); otherwise we keep clock_gettime;
* CLOCK_MONOTONIC is slewed by NTP, the TSC is not: a rate measured once drifts apart
  from it by the slew (tens of ppm = tens of microseconds per second).  A background
  thread re-measures (tsc, monotonic) once a second and republishes base and rate, so
  a stamp from a kernel and one from Python stay within calibration error (tens of ns).

Parameter block (int64[16], 64-byte aligned; the kernels reach it through a global
symbol registered with LLVM, which is resolved again when a cached kernel is loaded):
  [0] latch counter, [1] mode: 0 = clock_gettime, 1 = TSC
  [2 + 3c ..] copy c (c = 0, 1) of: base_tsc, base_ns (a (tsc, monotonic) pair),
              mult = ns per tick << SHIFT
ns = base_ns + ((tsc - base_tsc) * mult >> SHIFT), the product taken in 128 bits.
The calibrator republishes with the latch protocol of engine/doublebuf.py (write the
copy not in use, then flip the counter), so a kernel reading the clock never waits for
a calibrator thread that was preempted halfway through an update.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import carray, njit, types
from numba.extending import intrinsic

from engine.atomics import (
    fence_acquire,
    fence_release,
    load_acquire,
    load_relaxed,
    monotonic_ns,
    store_relaxed,
    store_release,
)

SHIFT = 32
K_SEQ, K_MODE, K_COPY = 0, 1, 2          # copy c at K_COPY + 3c: base_tsc, base_ns, mult
N_PARAMS = 16
MODE_GETTIME = 0
MODE_TSC = 1
_SYMBOL = "hftbook_tsc_clock_params"
_IS_X86 = __import__("platform").machine().lower() in ("x86_64", "amd64")

# The block lives for the whole process: a ctypes array never moves or gets freed.
_BLOCK_RAW = (ctypes.c_int64 * (N_PARAMS + 8))()
_off = (-ctypes.addressof(_BLOCK_RAW)) % 64 // 8
PARAMS = np.ctypeslib.as_array(_BLOCK_RAW)[_off:_off + N_PARAMS]
llvm.add_symbol(_SYMBOL, PARAMS.ctypes.data)

_I64 = ir.IntType(64)
_I128 = ir.IntType(128)


@intrinsic
def _params_ptr(typingctx):
    """Address of the process-wide parameter block (a relocation against _SYMBOL)."""

    def codegen(context, builder, sig, args):
        mod = builder.module
        gv = mod.globals.get(_SYMBOL)
        if gv is None:
            gv = ir.GlobalVariable(mod, ir.ArrayType(_I64, N_PARAMS), name=_SYMBOL)
            gv.linkage = "external"
        return builder.bitcast(gv, _I64.as_pointer())

    return types.CPointer(types.int64)(), codegen


@intrinsic
def rdtsc(typingctx):
    """The CPU cycle/time-stamp counter (``llvm.readcyclecounter``: ``rdtsc`` on x86)."""

    def codegen(context, builder, sig, args):
        mod = builder.module
        fn = mod.globals.get("llvm.readcyclecounter")
        if fn is None:
            fn = ir.Function(mod, ir.FunctionType(_I64, []), name="llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@intrinsic
def mul_shift(typingctx, a, m):
    """(a * m) >> SHIFT computed in 128 bits (no overflow for any int64 operands whose
    true result fits int64)."""
    if not isinstance(a, types.Integer) or not isinstance(m, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        x = builder.sext(context.cast(builder, args[0], sig.args[0], types.int64), _I128)
        y = builder.sext(context.cast(builder, args[1], sig.args[1], types.int64), _I128)
        p = builder.ashr(builder.mul(x, y), ir.Constant(_I128, SHIFT))
        return builder.trunc(p, _I64)

    return types.int64(a, m), codegen


@njit(nogil=True, inline="always")
def params():
    """The parameter block as an int64[N_PARAMS] array."""
    return carray(_params_ptr(), (N_PARAMS,))


@njit(nogil=True, inline="always")
def tsc_ns(p):
    """TSC converted to CLOCK_MONOTONIC nanoseconds with the published calibration
    (a latch read: the calibrator may republish at any time, and is never waited for)."""
    while True:
        s = load_acquire(p, K_SEQ)
        i = K_COPY + 3 * ((s >> 1) & 1)
        base_tsc = p[i]
        base_ns = p[i + 1]
        mult = p[i + 2]
        fence_acquire()
        if load_relaxed(p, K_SEQ) <= (s & ~1) + 2:
            break
    return base_ns + mul_shift(rdtsc() - base_tsc, mult)


@njit(nogil=True, inline="always")
def clock_ns():
    """Nanoseconds on the CLOCK_MONOTONIC timebase: TSC when enabled, else clock_gettime."""
    p = params()
    if load_relaxed(p, K_MODE) == MODE_TSC:
        return tsc_ns(p)
    return monotonic_ns()


@njit(nogil=True, cache=True)
def clock_ns_py():
    """clock_ns() for Python callers and tests."""
    return clock_ns()


@njit(nogil=True, cache=True)
def _pair(tries):
    """The (tsc, monotonic ns) pair bracketed by the closest two TSC reads of ``tries``;
    returns (tsc midpoint, ns, bracket width in ticks)."""
    best_w = 1 << 62
    best_t = 0
    best_n = 0
    for _ in range(tries):
        t1 = rdtsc()
        n = monotonic_ns()
        t2 = rdtsc()
        if t2 - t1 < best_w:
            best_w = t2 - t1
            best_t = t1 + (t2 - t1) // 2
            best_n = n
    return best_t, best_n, best_w


@njit(nogil=True, cache=True)
def _publish(p, base_tsc, base_ns, mult):
    s = load_relaxed(p, K_SEQ)
    store_relaxed(p, K_SEQ, s + 1)
    fence_release()
    i = K_COPY + 3 * (((s >> 1) + 1) & 1)
    p[i] = base_tsc
    p[i + 1] = base_ns
    p[i + 2] = mult
    store_release(p, K_SEQ, s + 2)


@njit(nogil=True, cache=True)
def _set_mode(p, mode):
    store_release(p, K_MODE, mode)


def tsc_invariant() -> tuple[bool, str]:
    """Whether the TSC can serve as a clock here, and why (not)."""
    if not _IS_X86:
        return False, f"no x86 TSC on {__import__('platform').machine()}"
    if sys.platform != "linux":
        return False, f"TSC invariance is only checked on Linux (here {sys.platform})"
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError as exc:
        return False, f"cannot read /proc/cpuinfo: {exc}"
    missing = [f for f in ("constant_tsc", "nonstop_tsc") if f not in flags]
    if missing:
        return False, f"TSC not invariant: cpu flags lack {', '.join(missing)}"
    src = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    try:
        cur = src.read_text().strip()
    except OSError:
        cur = "unknown"
    if cur != "tsc":
        return False, f"the kernel does not use the TSC as its clock (clocksource {cur})"
    return True, "invariant TSC (constant_tsc, nonstop_tsc, kernel clocksource tsc)"


class TscCalibrator:
    """Calibrates the TSC against CLOCK_MONOTONIC and keeps the rate current."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.ghz = 0.0
        self.recalibrations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, int] | None = None

    def calibrate(self, window: float = 0.05) -> float:
        """Measure the rate over ``window`` seconds and publish it; returns GHz."""
        t0, n0, _ = _pair(200)
        time.sleep(window)
        t1, n1, _ = _pair(200)
        self._publish(t0, n0, t1, n1)
        return self.ghz

    def _publish(self, t0: int, n0: int, t1: int, n1: int) -> None:
        if t1 <= t0 or n1 <= n0:
            raise RuntimeError("TSC or CLOCK_MONOTONIC did not advance during calibration")
        mult = ((n1 - n0) << SHIFT) // (t1 - t0)
        _publish(PARAMS, t1, n1, mult)
        self.ghz = (t1 - t0) / (n1 - n0)
        self._last = (t1, n1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            t, n, _ = _pair(50)
            t0, n0 = self._last
            self._publish(t0, n0, t, n)
            self.recalibrations += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tsc-calibrator",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self.interval + 1)
            self._thread = None


_calibrator: TscCalibrator | None = None


def enable(interval: float = 1.0) -> tuple[bool, str]:
    """Switch ``clock_ns`` to the TSC when it is invariant; returns (effective, reason)."""
    global _calibrator
    ok, why = tsc_invariant()
    if not ok:
        _set_mode(PARAMS, MODE_GETTIME)
        return False, why + "; using clock_gettime(CLOCK_MONOTONIC)"
    if _calibrator is None:
        _calibrator = TscCalibrator(interval)
        _calibrator.calibrate()
        _calibrator.start()
    _set_mode(PARAMS, MODE_TSC)
    return True, f"{why}; {_calibrator.ghz:.3f} GHz, recalibrated every {interval:g} s"


def disable() -> None:
    """Back to clock_gettime (the calibrator keeps running, harmlessly, if started)."""
    _set_mode(PARAMS, MODE_GETTIME)


def mode() -> int:
    return int(PARAMS[K_MODE])
