"""Kernels for `hftbook bench platform` and the platform tests: the seqlock against a
pthread mutex and a pthread reader-writer lock, false sharing, clock reads, and the
double-buffer torture pair.

The lock baselines call glibc's ``pthread_mutex_*`` / ``pthread_rwlock_*`` directly
from nogil Numba code (declared like clock_gettime in engine/atomics.py); the lock
objects live in zeroed int64 arrays, which is PTHREAD_MUTEX_INITIALIZER /
PTHREAD_RWLOCK_INITIALIZER on glibc.  Every workload rewrites books with the torture
messages of bench/torture.py, so each reader also checks it never saw a torn book.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from bench.torture import state_ok
from engine.atomics import load_relaxed, monotonic_ns, store_relaxed
from engine.constants import (
    ASK,
    BID,
    F_END,
    H_NASK,
    H_NBID,
    HDR_WORDS,
    R_BOOK,
    R_FLAGS,
)
from engine.doublebuf import db_copy_top, db_refresh
from engine.histogram import hist_record
from engine.kernels import apply_records
from engine.read import best, copy_top, top_levels_fixed, top_slot
from engine.seqlock import read_begin, read_valid
from engine.tsc import clock_ns, rdtsc

MODE_SEQLOCK = 0
MODE_MUTEX = 1
MODE_RWLOCK = 2
LOCK_WORDS = 16   # 128 bytes: room for pthread_mutex_t (40) and pthread_rwlock_t (56)

_I32 = ir.IntType(32)
_I8P = ir.IntType(8).as_pointer()


def _pthread(name):
    @intrinsic
    def _call(typingctx, arr):
        if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
            return None

        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            mod = builder.module
            fn = mod.globals.get(name)
            if fn is None:
                fn = ir.Function(mod, ir.FunctionType(_I32, [_I8P]), name=name)
            return builder.call(fn, [builder.bitcast(ary.data, _I8P)])

        return types.int32(arr), codegen

    return _call


mutex_lock = _pthread("pthread_mutex_lock")
mutex_unlock = _pthread("pthread_mutex_unlock")
rw_rdlock = _pthread("pthread_rwlock_rdlock")
rw_wrlock = _pthread("pthread_rwlock_wrlock")
rw_unlock = _pthread("pthread_rwlock_unlock")


@njit(nogil=True, cache=True)
def lock_writer(mode, locks, hdr, px, sz, data, mask, bounds, duration_ns, hist, stats,
                wstats):
    """Apply the torture messages round and round for ``duration_ns``, each message
    under its book's lock ``locks[book]`` in ``mode`` (the seqlock inside apply_records
    always runs).  wstats: [0] messages, [1] ticks spent acquiring locks, [2] worst."""
    end = monotonic_ns() + duration_ns
    while monotonic_ns() < end:
        for m in range(bounds.shape[0]):
            b = data[R_BOOK, bounds[m, 0] & mask]
            t0 = rdtsc()
            if mode == MODE_MUTEX:
                mutex_lock(locks[b])
            elif mode == MODE_RWLOCK:
                rw_wrlock(locks[b])
            waited = rdtsc() - t0
            apply_records(hdr, px, sz, data, mask, bounds[m, 0], bounds[m, 1], hist, stats)
            if mode == MODE_MUTEX:
                mutex_unlock(locks[b])
            elif mode == MODE_RWLOCK:
                rw_unlock(locks[b])
            wstats[0] += 1
            wstats[1] += waited
            if waited > wstats[2]:
                wstats[2] = waited


@njit(nogil=True, inline="always")
def _copy_plain(hdr, px, sz, b, n, out_px, out_sz):
    h = b * HDR_WORDS
    tb, nb = top_slot(hdr, h, BID, px.shape[2])  # clamped: a racing read may tear lo/n
    ta, na = top_slot(hdr, h, ASK, px.shape[2])
    cb = min(n, nb)
    ca = min(n, na)
    for k in range(cb):
        out_px[BID, k] = px[b, BID, tb - k]
        out_sz[BID, k] = sz[b, BID, tb - k]
    for k in range(ca):
        out_px[ASK, k] = px[b, ASK, ta - k]
        out_sz[ASK, k] = sz[b, ASK, ta - k]
    return nb, na


@njit(nogil=True, cache=True)
def lock_reader(mode, locks, hdr, px, sz, n_books, levels, duration_ns, rstats, hist):
    """Copy the top ``levels`` of the books for ``duration_ns``, each under its book's
    lock (or the seqlock alone), in a stride order not in step with the writer.
    rstats: [0] reads, [1] torn, [2] seqlock retries, [3] elapsed ns; ``hist`` gets
    each read's duration in TSC ticks."""
    out_px = np.zeros((2, 32), np.int64)
    out_sz = np.zeros((2, 32), np.int64)
    t_start = monotonic_ns()
    end = t_start + duration_ns
    reads = 0
    torn = 0
    retries = 0
    while True:
        if (reads & 255) == 0 and monotonic_ns() >= end:
            break
        b = (reads * 37) % n_books
        t0 = rdtsc()
        if mode == MODE_SEQLOCK:
            while True:
                s = read_begin(hdr, b)
                nb, na = _copy_plain(hdr, px, sz, b, levels, out_px, out_sz)
                if read_valid(hdr, b, s):
                    break
                retries += 1
        elif mode == MODE_MUTEX:
            mutex_lock(locks[b])
            nb, na = _copy_plain(hdr, px, sz, b, levels, out_px, out_sz)
            mutex_unlock(locks[b])
        else:
            rw_rdlock(locks[b])
            nb, na = _copy_plain(hdr, px, sz, b, levels, out_px, out_sz)
            rw_unlock(locks[b])
        hist_record(hist, rdtsc() - t0)
        reads += 1
        if not state_ok(out_px, out_sz, nb, na):  # needs levels >= 20 (the torture books)
            torn += 1
    rstats[0] = reads
    rstats[1] = torn
    rstats[2] = retries
    rstats[3] = monotonic_ns() - t_start


# ------------------------------------------------------------------ double buffer

@njit(nogil=True, cache=True)
def db_writer(hdr, px, sz, data, mask, bounds, duration_ns, hist, stats, seq, chdr, cpx,
              csz, slot_book, publish):
    """The torture writer; after each message publishes the hot books (when ``publish``).
    Returns messages applied."""
    end = monotonic_ns() + duration_ns
    n = 0
    while monotonic_ns() < end:
        for m in range(bounds.shape[0]):
            apply_records(hdr, px, sz, data, mask, bounds[m, 0], bounds[m, 1], hist, stats)
            if publish:
                db_refresh(seq, chdr, cpx, csz, slot_book, hdr, px, sz)
            n += 1
    return n


@njit(nogil=True, cache=True)
def db_reader(seq, chdr, cpx, csz, n_slots, levels, duration_ns, mode, rstats, hist):
    """Read the published copies for ``duration_ns``.  mode 0: the db_copy_top protocol;
    mode 1: the copy being written, unvalidated (a negative control: it must tear).
    rstats: [0] reads, [1] torn, [2] retries, [3] elapsed ns, [4] states seen; ``hist``
    (when not empty) gets each read's duration in TSC ticks."""
    out_px = np.zeros((2, 32), np.int64)
    out_sz = np.zeros((2, 32), np.int64)
    out_hdr = np.zeros(HDR_WORDS, np.int64)
    t_start = monotonic_ns()
    end = t_start + duration_ns
    reads = 0
    torn = 0
    retries = 0
    states = 0
    last = -1
    while True:
        if (reads & 255) == 0 and monotonic_ns() >= end:
            break
        slot = (reads * 37) % n_slots
        t0 = rdtsc()
        if mode == 0:
            nb, na, r = db_copy_top(seq, chdr, cpx, csz, slot, levels, out_px, out_sz,
                                    out_hdr)
            retries += r
        else:
            c = ((load_relaxed(seq, slot * 8) >> 1) + 1) & 1
            nb = min(levels, chdr[slot, c, H_NBID])
            na = min(levels, chdr[slot, c, H_NASK])
            for k in range(nb):
                out_px[BID, k] = cpx[slot, c, BID, k]
                out_sz[BID, k] = csz[slot, c, BID, k]
            for k in range(na):
                out_px[ASK, k] = cpx[slot, c, ASK, k]
                out_sz[ASK, k] = csz[slot, c, ASK, k]
        if hist.shape[0] > 0:
            hist_record(hist, rdtsc() - t0)
        reads += 1
        if not state_ok(out_px, out_sz, nb, na):
            torn += 1
        if out_sz[BID, 0] != last:
            states += 1
            last = out_sz[BID, 0]
    rstats[0] = reads
    rstats[1] = torn
    rstats[2] = retries
    rstats[3] = monotonic_ns() - t_start
    rstats[4] = states


# ------------------------------------------------------------------ false sharing

@njit(nogil=True, cache=True)
def bump(counters, idx, n):
    """Increment counters[idx] ``n`` times with atomic (never register-cached) stores,
    as a writer bumps its statistics; returns elapsed ns."""
    t0 = monotonic_ns()
    for _ in range(n):
        store_relaxed(counters, idx, load_relaxed(counters, idx) + 1)
    return monotonic_ns() - t0


# ------------------------------------------------------------------------- clocks

@njit(nogil=True, cache=True)
def clock_loop(n, which):
    """``n`` clock reads: which 0 = clock_gettime(CLOCK_MONOTONIC), 1 = engine.tsc
    clock_ns (TSC when enabled), 2 = raw rdtsc.  Returns (elapsed ns, checksum)."""
    acc = 0
    t0 = monotonic_ns()
    if which == 0:
        for _ in range(n):
            acc += monotonic_ns()
    elif which == 1:
        for _ in range(n):
            acc += clock_ns()
    else:
        for _ in range(n):
            acc += rdtsc()
    return monotonic_ns() - t0, acc


# ------------------------------------------------------------ reads and batches

@njit(nogil=True, cache=True)
def reads_allocating(hdr, px, sz, books, reps):
    """Top-20 reads that return a new array per call (engine.read.top_levels_fixed)."""
    acc = 0
    for r in range(reps):
        out, nb, na, seq, ts, recv, st = top_levels_fixed(hdr, px, sz, books[r & 1023], 20)
        acc += out[0, 0]
    return acc


@njit(nogil=True, cache=True)
def reads_preallocated(hdr, px, sz, books, reps, out_px, out_sz, out_hdr):
    """The same reads into caller-owned arrays (engine.read.copy_top)."""
    acc = 0
    for r in range(reps):
        nb, na = copy_top(hdr, px, sz, books[r & 1023], 20, out_px, out_sz, out_hdr)
        acc += out_px[0, 0]
    return acc


@njit(nogil=True, cache=True)
def reads_best_random(hdr, px, sz, books, reps):
    """Best-bid reads over a spread of books (TLB-bound on a large store)."""
    acc = 0
    for r in range(reps):
        p, q, ok = best(hdr, px, sz, books[r & 65535], BID)
        acc += p
    return acc


@njit(nogil=True, cache=True)
def apply_batches(hdr, px, sz, data, mask, n, batch, hist, stats, seq, chdr, cpx, csz,
                  slot_book, publish):
    """Apply records [0, n) in batches of ``batch`` (extended to message ends, as a ring
    consumer does), publishing the hot books after each batch when ``publish``."""
    pos = 0
    while pos < n:
        stop = min(pos + batch, n)
        while stop < n and not data[R_FLAGS, (stop - 1) & mask] & F_END:
            stop += 1
        apply_records(hdr, px, sz, data, mask, pos, stop, hist, stats)
        if publish:
            db_refresh(seq, chdr, cpx, csz, slot_book, hdr, px, sz)
        pos = stop
    return n
