"""A tier worker: one thread inside one long nogil kernel, consuming the book queues
it owns (engine.handoff), optionally stealing whole queues from busy peers.

Per poll: adopt queues handed over through the inbox; then, for each listed queue it
still owns with records waiting, claim it (CAS), consume one batch (extended to a
message end, so readers only see whole messages), release it.  A queue the worker no
longer owns (stolen or moved) is dropped from its list the first time it is seen.
When a poll leaves nothing waiting in its own queues (it is idle, or keeping up), a
stealing worker looks at its victims now and then: from a peer that is behind (more
than a batch of records waiting in its queues) it takes the fullest queue nobody is
consuming, with one CAS.  With no work, the idle policy of engine.writer:
spin (pause), yield, park.

The list a worker keeps of its queues is a hint written only by that worker (thieves
read it racily, with atomic loads, to find candidates); the owner word is the truth.
"""

from __future__ import annotations

from numba import njit

from engine.atomics import (
    borrowed,
    load_acquire,
    load_relaxed,
    monotonic_ns,
    sleep_us,
    store_relaxed,
    store_release,
)
from engine.doublebuf import db_publish
from engine.handoff import claim, owned_idle_by, release, take
from engine.histogram import hist_record
from engine.queues import queue_data
from engine.ring import C_HEAD, C_OWNER, C_TAIL, ring_consume
from engine.writer import idle_step

# worker control rows: int64[n_workers, T_WORDS]; each group on its own cache line
T_WORDS = 32
T_STOP = 0            # line 0, written by Python: 1 = drain and stop
T_IN_HEAD = 8         # line 1, written by the mover: inbox head
T_RUNNING = 16        # lines 2-3, written by the worker
T_LOOPS = 17
T_SPINS = 18          # idle polls spun, yielded, parked: consecutive (idle_step)
T_YIELDS = 19
T_PARKS = 20
T_RECORDS = 21        # records consumed
T_STEALS = 22         # queues taken from busy peers
T_DEPTH = 23          # records its last poll found waiting in its queues
T_NLIST = 24          # entries in its queue list
T_CURRENT = 25        # queue being consumed now, -1 between queues
T_IN_TAIL = 26        # inbox tail
T_LOST = 27           # queues found taken away (by a thief or a mover)
T_ADOPTED = 28        # queues adopted from the inbox
T_BATCHES = 29        # claim/consume/release rounds

STEAL_EVERY = 64      # idle polls between steal attempts (a scan touches peers' lines)


@njit(nogil=True, inline="always")
def _listed(mine, n, q):
    for k in range(n):
        if mine[k] == q:
            return True
    return False


@njit(nogil=True, inline="always")
def _add(row, mine, q):
    n = row[T_NLIST]
    if n < mine.shape[0] and not _listed(mine, n, q):
        store_relaxed(mine, n, q)
        store_relaxed(row, T_NLIST, n + 1)


@njit(nogil=True, inline="always")
def _adopt_inbox(row, mine, box):
    head = load_acquire(row, T_IN_HEAD)
    tail = row[T_IN_TAIL]
    if tail == head:
        return
    mask = box.shape[0] - 1
    while tail < head:
        _add(row, mine, box[tail & mask])
        tail += 1
        row[T_ADOPTED] += 1
    store_release(row, T_IN_TAIL, tail)


@njit(nogil=True)
def steal_one(w, wctl, lists, ctl, victims, start, min_backlog):
    """Take the fullest queue nobody is consuming from a victim that is behind: whose
    queues hold at least ``min_backlog`` records waiting right now (measured here, so
    a victim that was preempted with work piling up counts as behind: the case that
    matters on few cores).  Returns the queue or -1."""
    nv = victims.shape[0]
    for i in range(nv):
        v = victims[(start + i) % nv]
        if v == w:
            continue
        theirs = lists[v]
        n = min(load_relaxed(wctl[v], T_NLIST), theirs.shape[0])
        total = 0
        best = -1
        best_pending = 0
        for k in range(n):
            q = load_relaxed(theirs, k)
            if q < 0 or q >= ctl.shape[0]:
                continue
            c = ctl[q]
            o = load_relaxed(c, C_OWNER)
            if o != v + 1 and o != -(v + 1):
                continue                     # a stale entry: no longer the victim's
            pending = load_acquire(c, C_HEAD) - load_relaxed(c, C_TAIL)
            if pending <= 0:
                continue
            total += pending
            if o == v + 1 and pending > best_pending:
                best = q
                best_pending = pending
        if best >= 0 and total >= min_backlog and take(ctl[best], v, w):
            return best
    return -1


@njit(nogil=True, cache=True)
def run_tier_worker(w, wctl, lists, inbox, ctl, buf, off, cap, hdr, px, sz, batch, spin,
                    yields, park_us, pace_us, victims, hist, apply_hist, stats, db_on,
                    db_seq, db_chdr, db_cpx, db_csz):
    """Worker ``w``'s loop until wctl[w, T_STOP] is set and its queues are empty.

    victims: worker ids it may steal from (empty: never steals).  pace_us > 0: after a
    poll that emptied its queues, sleep that long before the next one even if it found
    work (the cold tier: one sweep over thousands of quiet queues per period, instead
    of sweeping them back to back and burning a core).  hist: receive -> visible latency
    per message; apply_hist: time per claimed batch (both ns).  db_on: after each batch,
    publish the book's double-buffered copy (engine.doublebuf; slot = book), still
    holding the queue, so the copy has this worker as its single writer."""
    # uncounted views (engine.atomics.borrowed): the loop slices and hands these on
    # for every queue it polls, and counting references to them cost more than the poll
    wctl, lists, inbox, ctl, buf = borrowed(wctl), borrowed(lists), borrowed(inbox), \
        borrowed(ctl), borrowed(buf)
    off, cap, victims = borrowed(off), borrowed(cap), borrowed(victims)
    hdr, px, sz, hist, apply_hist, stats = borrowed(hdr), borrowed(px), borrowed(sz), \
        borrowed(hist), borrowed(apply_hist), borrowed(stats)
    db_seq, db_chdr, db_cpx, db_csz = borrowed(db_seq), borrowed(db_chdr), \
        borrowed(db_cpx), borrowed(db_csz)
    row = wctl[w]
    mine = lists[w]
    box = inbox[w]
    store_relaxed(row, T_CURRENT, -1)
    store_relaxed(row, T_RUNNING, 1)
    idle = 0
    drained = 0
    rr = w + 1
    while True:
        stop = load_relaxed(row, T_STOP)
        _adopt_inbox(row, mine, box)
        got = 0
        waiting = 0
        left = 0
        n = row[T_NLIST]
        k = 0
        while k < n:
            q = mine[k]
            c = ctl[q]
            if not owned_idle_by(c, w):      # stolen or moved away: forget it
                n -= 1
                store_relaxed(mine, k, mine[n])
                store_relaxed(row, T_NLIST, n)
                row[T_LOST] += 1
                continue
            pending = load_acquire(c, C_HEAD) - load_relaxed(c, C_TAIL)
            if pending <= 0:
                k += 1
                continue
            if not claim(c, w):
                continue                     # taken between the check and the claim
            store_relaxed(row, T_CURRENT, q)
            t0 = monotonic_ns()
            done = ring_consume(c, queue_data(buf, off, cap, q), hdr, px, sz, batch, hist,
                                stats)
            if db_on and done > 0:
                db_publish(db_seq, db_chdr, db_cpx, db_csz, q, hdr, px, sz, q)
            t1 = monotonic_ns()
            release(c, w)
            store_relaxed(row, T_CURRENT, -1)
            hist_record(apply_hist, t1 - t0)
            row[T_BATCHES] += 1
            got += done
            waiting += pending
            left += pending - done
            k += 1
        store_relaxed(row, T_DEPTH, waiting)
        row[T_LOOPS] += 1
        if got > 0:
            store_relaxed(row, T_RECORDS, row[T_RECORDS] + got)
        if left == 0 and victims.shape[0] > 0 and not stop:
            # out of local work (idle, or just drained everything it owns): help a peer
            # that is behind, at most once per STEAL_EVERY such polls
            drained += 1
            if drained % STEAL_EVERY == 1:
                rr += 1
                q = steal_one(w, wctl, lists, ctl, victims, rr, batch)
                if q >= 0:
                    _add(row, mine, q)
                    store_relaxed(row, T_STEALS, row[T_STEALS] + 1)
                    idle = 0
                    continue
        if got > 0:
            idle = 0
            if pace_us > 0 and left == 0 and not stop:
                row[T_PARKS] += 1
                sleep_us(pace_us)
            continue
        if stop:
            break
        idle += 1
        idle_step(row, T_SPINS, idle, spin, yields, park_us)  # the writers' idle policy
    store_relaxed(row, T_RUNNING, 0)
