"""CPU atomics and a monotonic clock for Numba code, emitted as LLVM IR.

Numba has no public atomics, so the seqlock and the SPSC ring use these. Every
function works on one int64 element ``arr[i]`` of a C-contiguous int64 array.

Memory-ordering contract (C++11 / LLVM model):

* ``load_acquire``: no later load or store in this thread may be performed before it.
  A reader that sees a value published by ``store_release`` also sees every write the
  publisher made before that store.
* ``store_release``: no earlier load or store may be performed after it.
* ``fence_acquire`` / ``fence_release`` / ``fence_seq_cst``: the standalone fences.
  LLVM treats a fence as touching all memory, so the optimiser also keeps plain
  (non-atomic) loads and stores on their side of it: this is what stops LLVM from
  hoisting a seqlock re-check above the data copy.
* ``load_relaxed`` / ``store_relaxed``: atomic (never torn, never cached in a register
  across loop iterations) but with no ordering.  Every flag that another thread writes
  must be read with one of the atomic loads, or LLVM may read it once and spin forever.
* ``cas`` and ``fetch_add`` are sequentially consistent read-modify-writes.

On x86-64 acquire loads and release stores compile to plain ``mov``; the value of the
intrinsics there is that the *compiler* may not reorder across them.  On ARM they
become ``ldar`` / ``stlr`` / ``dmb``.
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

_ALIGN = 8


def _elem_ptr(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx], wraparound=False)


def _check_i64_array(arr):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


def _make_load(ordering):
    @intrinsic
    def _load(typingctx, arr, idx):
        if not _check_i64_array(arr) or not isinstance(idx, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
            return builder.load_atomic(ptr, ordering, _ALIGN)

        return types.int64(arr, idx), codegen

    return _load


def _make_store(ordering):
    @intrinsic
    def _store(typingctx, arr, idx, val):
        if not _check_i64_array(arr) or not isinstance(idx, types.Integer):
            return None
        if not isinstance(val, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
            v = context.cast(builder, args[2], sig.args[2], types.int64)
            builder.store_atomic(v, ptr, ordering, _ALIGN)
            return context.get_dummy_value()

        return types.void(arr, idx, val), codegen

    return _store


def _make_fence(ordering):
    @intrinsic
    def _fence(typingctx):
        def codegen(context, builder, sig, args):
            builder.fence(ordering)
            return context.get_dummy_value()

        return types.void(), codegen

    return _fence


load_acquire = _make_load("acquire")
load_relaxed = _make_load("monotonic")
store_release = _make_store("release")
store_relaxed = _make_store("monotonic")
fence_acquire = _make_fence("acquire")
fence_release = _make_fence("release")
fence_seq_cst = _make_fence("seq_cst")


@intrinsic
def cas(typingctx, arr, idx, expected, new):
    """Compare-and-swap ``arr[idx]``: returns True when it held ``expected``."""
    if not _check_i64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        exp = context.cast(builder, args[2], sig.args[2], types.int64)
        new_v = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, exp, new_v, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, idx, expected, new), codegen


@intrinsic
def fetch_add(typingctx, arr, idx, val):
    """Atomically add ``val`` to ``arr[idx]``; returns the previous value."""
    if not _check_i64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return types.int64(arr, idx, val), codegen


_IS_X86 = __import__("platform").machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def cpu_relax(typingctx):
    """Spin-wait hint (x86 ``pause``); a no-op elsewhere."""

    def codegen(context, builder, sig, args):
        if _IS_X86:
            # the target intrinsic, not inline asm: Numba's JIT has no asm parser
            fn = _declare(builder, "llvm.x86.sse2.pause", ir.VoidType(), [])
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


def _declare(builder, name, ret, args):
    mod = builder.module
    fn = mod.globals.get(name)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(ret, args), name=name)
    return fn


_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_CLOCK_MONOTONIC = 1  # Linux value; Python's time.monotonic_ns() reads the same clock


@intrinsic
def monotonic_ns(typingctx):
    """Nanoseconds on CLOCK_MONOTONIC: the timebase of ``time.monotonic_ns()``.

    On Linux both read the vDSO ``clock_gettime(CLOCK_MONOTONIC)`` (~20 ns here), so a
    stamp taken in Python and one taken in a kernel can be subtracted.
    """

    def codegen(context, builder, sig, args):
        ts_t = ir.LiteralStructType([_I64, _I64])
        fn = _declare(builder, "clock_gettime", _I32, [_I32, ts_t.as_pointer()])
        ts = cgutils.alloca_once(builder, ts_t)
        builder.call(fn, [ir.Constant(_I32, _CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(_I64, 1_000_000_000)), nsec)

    return types.int64(), codegen


@intrinsic
def sched_yield(typingctx):
    """Give the core away (POSIX ``sched_yield``); called from nogil loops."""

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "sched_yield", _I32, [])
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def sleep_us(typingctx, us):
    """Sleep ``us`` microseconds (POSIX ``usleep``) without holding the GIL."""

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "usleep", _I32, [_I32])
        v = builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), _I32)
        builder.call(fn, [v])
        return context.get_dummy_value()

    return types.void(us), codegen


if sys.platform == "win32":  # pragma: no cover - Linux is the tested platform
    raise ImportError(
        "engine.atomics: the clock and sleep intrinsics use POSIX clock_gettime/usleep; "
        "the Windows build (QueryPerformanceCounter, SwitchToThread, Sleep) is not written yet"
    )


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to pull the cache line holding flat element ``idx`` of a C-contiguous
    int64 array (any ndim) for reading (LLVM ``llvm.prefetch``, locality 3).
    A prefetch never faults, even out of range."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(ary.data, _I64)
        off = builder.mul(context.cast(builder, args[1], sig.args[1], types.int64),
                          ir.Constant(_I64, 8))
        ptr = builder.inttoptr(builder.add(base, off), ir.IntType(8).as_pointer())
        fn = _declare(builder, "llvm.prefetch.p0", ir.VoidType(),
                      [ir.IntType(8).as_pointer(), _I32, _I32, _I32])
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@intrinsic
def memmove(typingctx, arr, dst, src, count):
    """arr[dst:dst+count] = arr[src:src+count] for a 1-D int64 array, overlap-safe, via
    ``llvm.memmove`` (vectorised libc-class copy; a plain loop is not vectorised because
    LLVM cannot rule out aliasing).  No bounds checks: callers guarantee the ranges."""
    if not _check_i64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(ary.data, _I64)
        i8p = ir.IntType(8).as_pointer()
        eight = ir.Constant(_I64, 8)
        d = context.cast(builder, args[1], sig.args[1], types.int64)
        s = context.cast(builder, args[2], sig.args[2], types.int64)
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        dptr = builder.inttoptr(builder.add(base, builder.mul(d, eight)), i8p)
        sptr = builder.inttoptr(builder.add(base, builder.mul(s, eight)), i8p)
        fn = _declare(builder, "llvm.memmove.p0.p0.i64", ir.VoidType(),
                      [i8p, i8p, _I64, ir.IntType(1)])
        builder.call(fn, [dptr, sptr, builder.mul(n, eight), ir.Constant(ir.IntType(1), 0)])
        return context.get_dummy_value()

    return types.void(arr, dst, src, count), codegen


def _uncounted(context, builder, srcty, src_val, retty, flat):
    src = context.make_array(srcty)(context, builder, src_val)
    out = context.make_array(retty)(context, builder)
    if flat:
        intp = context.get_value_type(types.intp)
        shape = cgutils.pack_array(builder, [src.nitems])
        strides = cgutils.pack_array(builder, [ir.Constant(intp, srcty.dtype.bitwidth // 8)])
    else:
        shape, strides = src.shape, src.strides
    populate_array(out, data=src.data, shape=shape, strides=strides,
                   itemsize=src.itemsize, meminfo=None)
    return out._getvalue()


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` itself (same type, shape and strides) as a view Numba does not
    reference-count; slices of it are not counted either.

    Numba counts references to every array it passes to a function that is not
    inlined (an atomic increment on entry, a decrement on exit, for each array
    argument) and to every slice.  A writer loop that hands eight arrays and two ring
    slices to ``ring_consume`` on every poll paid about 100 ns per idle poll for it.
    Calling with borrowed arrays turns each count into a null check.  The view must
    not outlive ``arr``: use it only inside the kernel that received ``arr``."""
    if not isinstance(arr, types.Array) or arr.layout not in "CF":
        return None

    def codegen(context, builder, sig, args):
        return _uncounted(context, builder, sig.args[0], args[0], sig.return_type, False)

    return arr(arr), codegen


@intrinsic
def borrowed_flat(typingctx, arr):
    """A 1-D view of all of C-contiguous int64 ``arr`` that Numba does not
    reference-count (the view carries no meminfo), for hot loops that hand rows to
    inlined helpers.

    Every array variable Numba creates (a slice, or an argument bound by inlining) is
    reference-counted: an atomic increment and decrement of the owner's count.  Numba
    removes the pairs it can prove redundant, but not across the branches of the level
    setter, so ``px[b, side]`` cost two atomic increments and two decrements per level
    update wherever the pruning failed: 18 of the 25 ns of an update at the touch in
    the ``apply_records_*`` variants.  The view must not outlive ``arr``: use it only
    inside the kernel that received ``arr``."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.layout == "C"):
        return None
    retty = types.Array(types.int64, 1, "C")

    def codegen(context, builder, sig, args):
        return _uncounted(context, builder, sig.args[0], args[0], retty, True)

    return retty(arr), codegen
