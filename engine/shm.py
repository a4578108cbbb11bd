"""The book store in named shared memory: one writer process, any number of reader processes.

A segment is one file in a shared-memory directory (``/dev/shm`` on Linux: tmpfs, RAM
only; ``$HFTBOOK_SHM_DIR`` overrides it).  The writer maps it read-write; readers map it
read-only (``PROT_READ``: a store from a reader faults, so a reader cannot corrupt the
books, and it holds no lock the writer could wait on).  Files and ``mmap`` are used
directly rather than ``multiprocessing.shared_memory``, whose resource tracker unlinks a
segment when any process that opened it exits: a reader leaving must never destroy the
writer's segment.

Layout (byte offsets; every header word is a little-endian int64):

  0           segment header, one page (words G_*): magic, layout version, engine layout
              fingerprint, shape, offsets, writer pid, state, heartbeat
  meta_offset n_books metadata records (META_DTYPE): exchange, native and unified
              symbol, kind, price/size decimals, levels kept
  store_off   the BookStore buffer (engine.store: hdr, px, sz), page aligned

Lifecycle: the writer creates the file under a temporary name, locks it (``flock``,
held for the writer's life), fills header and metadata, then links it to its name
(atomic, fails if the name exists), so a reader never sees a half-built header.  The
state word goes INIT -> READY (books configured) -> CLOSED (clean stop, then the name
is unlinked).  A heartbeat thread bumps G_HEARTBEAT while the writer thread is alive;
a reader judges the writer gone when the state is CLOSED or the heartbeat is older
than ``stale_after``.  A name whose file is not locked belongs to a dead writer (the
kernel drops the lock of a killed process) and is replaced by the next writer; a
locked one is a clear error.  Header words readers poll are stored with release and
loaded with acquire (engine.atomics); the books use their seqlocks as in process.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import re
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from engine import constants, read
from engine.atomics import load_acquire, store_release
from engine.constants import ASK, BID, H_RECV_TS, H_STATUS, HDR_WORDS, LIVE, STATUS_NAMES
from engine.store import MAX_DEPTH, BookStore, row_length, store_nbytes
from engine.views import Book

MAGIC = int.from_bytes(b"HFTBKSHM", "little")
VERSION = 2  # 2: rows with spare slots, levels at lo..lo+n (engine.store)
PAGE = 4096
SEG_HEADER_BYTES = PAGE

# segment header words
G_MAGIC = 0
G_VERSION = 1
G_LAYOUT = 2          # fingerprint of the book header layout (engine.constants)
G_HDR_WORDS = 3
G_N_BOOKS = 4
G_DEPTH = 5           # level row length (rounded up to whole cache lines)
G_REQ_DEPTH = 6       # depth the writer asked for
G_META_OFFSET = 7
G_META_BYTES = 8      # bytes per metadata record
G_STORE_OFFSET = 9
G_STORE_BYTES = 10
G_TOTAL_BYTES = 11
G_WRITER_PID = 12
G_CREATED_NS = 13     # wall clock (time.time_ns) at creation
G_STATE = 16          # own cache line: the words below change while running
G_HEARTBEAT = 17      # bumped every heartbeat interval while the writer thread lives
G_HEARTBEAT_NS = 18   # CLOCK_MONOTONIC ns of the last bump (system-wide on Linux)
G_HEARTBEAT_INTERVAL_NS = 19
G_WRITER_LOOPS = 20   # the writer threads' poll count at the last heartbeat
G_CLOSED_NS = 21      # CLOCK_MONOTONIC ns of the clean stop

ST_INIT = 0
ST_READY = 1
ST_CLOSED = 2
STATE_NAMES = ("starting", "ready", "closed")

META_DTYPE = np.dtype([
    ("exchange", "S32"), ("native", "S64"), ("unified", "S48"), ("kind", "S8"),
    ("price_decimals", "<i4"), ("size_decimals", "<i4"), ("max_levels", "<i4"),
    ("reserved", "<i4"),
])

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ShmError(RuntimeError):
    """A segment cannot be created or attached (in use, missing, incompatible, full)."""


def layout_fingerprint() -> int:
    """CRC32 of every book-header constant: a reader built with other offsets refuses
    to attach instead of misreading the books."""
    items = sorted((k, v) for k, v in vars(constants).items()
                   if k.isupper() and isinstance(v, int))
    text = repr((items, STATUS_NAMES, META_DTYPE.descr)).encode()
    return zlib.crc32(text)


def shm_dir() -> Path:
    """Where segments live: $HFTBOOK_SHM_DIR, else /dev/shm, else the temp directory."""
    env = os.environ.get("HFTBOOK_SHM_DIR")
    if env:
        return Path(env)
    if os.path.isdir("/dev/shm"):
        return Path("/dev/shm")
    return Path(tempfile.gettempdir())


def segment_path(name: str, directory: str | Path | None = None) -> Path:
    if not _NAME_RE.match(name):
        raise ShmError(f"shared-memory name {name!r}: use 1-100 letters, digits, '_', '.', "
                       "'-', starting with a letter or digit")
    return (Path(directory) if directory else shm_dir()) / f"hftbook.{name}"


_path = segment_path


@njit(nogil=True, cache=True)
def _publish(words, i, v):
    store_release(words, i, v)


@njit(nogil=True, cache=True)
def _observe(words, i):
    return load_acquire(words, i)


def _page(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def _text(v: bytes) -> str:
    return v.decode("utf-8", "replace")


def _holder_pid(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            head = np.frombuffer(f.read(8 * 16), np.int64)
        return int(head[G_WRITER_PID]) if len(head) > G_WRITER_PID else 0
    except OSError:
        return 0


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def check_name_free(name: str, directory: str | Path | None = None) -> None:
    """Raise ShmError if a live writer holds ``name`` (a fast check before a long start;
    ``create`` checks again atomically)."""
    path = _path(name, directory)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        if not _try_lock(fd):
            raise ShmError(_in_use(name, path))
    finally:
        os.close(fd)  # closing drops the lock we may have taken


def _in_use(name: str, path: Path) -> str:
    pid = _holder_pid(path)
    return (f"shared-memory book store {name!r} ({path}) is held by a running writer "
            f"(pid {pid}): stop it, or give this run another name ([shm] name / --shm-name)")


class SharedStore(BookStore):
    """Writer side: a BookStore whose buffer is a named shared-memory segment.

    Create it with ``create``; describe each book (``describe``), call ``ready`` once
    the books are configured, keep the heartbeat going (``start_heartbeat``) and
    ``close`` on a clean stop (marks the segment closed, unlinks the name)."""

    def __init__(self, name: str, path: Path, fd: int, mm: mmap.mmap, n_books: int,
                 depth: int) -> None:
        raw = np.frombuffer(mm, np.uint8)
        g = raw[:SEG_HEADER_BYTES].view(np.int64)
        meta_off, store_off = int(g[G_META_OFFSET]), int(g[G_STORE_OFFSET])
        super().__init__(n_books, depth, buffer=raw[store_off:store_off + int(g[G_STORE_BYTES])],
                         row=int(g[G_DEPTH]), fresh=True)
        self.shm_name = name
        self.path = path
        self.words = g
        self.meta = raw[meta_off:meta_off + n_books * META_DTYPE.itemsize].view(META_DTYPE)
        self._fd = fd
        self._mm = mm
        self._hb_thread: threading.Thread | None = None
        self._hb_stop = threading.Event()
        self.closed = False

    # -- books ---------------------------------------------------------------------
    def configure(self, book: int, name: str, price_decimals: int, size_decimals: int,
                  max_levels: int | None = None) -> None:
        super().configure(book, name, price_decimals, size_decimals, max_levels)
        m = self.meta
        ex, _, native = name.partition(":")
        if not m["exchange"][book]:
            m["exchange"][book] = _fit(ex, 32, "exchange")
            m["native"][book] = _fit(native or name, 64, "symbol")
            m["unified"][book] = _fit(native or name, 48, "unified symbol")
        m["price_decimals"][book] = price_decimals
        m["size_decimals"][book] = size_decimals
        m["max_levels"][book] = int(self.hdr[book * HDR_WORDS + constants.H_MAX_LEVELS])

    def describe(self, book: int, exchange: str, native: str, instrument=None) -> None:
        """Record a book's names for readers: ``instrument`` (connectors.base.Instrument)
        gives the unified symbol and kind; without it the native name stands in."""
        m = self.meta
        m["exchange"][book] = _fit(exchange, 32, "exchange")
        m["native"][book] = _fit(native, 64, "symbol")
        unified = getattr(instrument, "unified", "") or native
        m["unified"][book] = _fit(unified, 48, "unified symbol")
        m["kind"][book] = _fit(getattr(instrument, "kind", "") or "", 8, "kind")

    # -- lifecycle -------------------------------------------------------------------
    def ready(self) -> None:
        """Books and metadata are final: readers may attach."""
        self.beat()
        _publish(self.words, G_STATE, ST_READY)

    def beat(self, writer_loops: int | None = None) -> None:
        if writer_loops is not None:
            self.words[G_WRITER_LOOPS] = writer_loops
        _publish(self.words, G_HEARTBEAT_NS, time.monotonic_ns())
        _publish(self.words, G_HEARTBEAT, self.words[G_HEARTBEAT] + 1)

    def start_heartbeat(self, interval: float = 0.2, alive: Callable[[], bool] | None = None,
                        progress: Callable[[], int] | None = None) -> None:
        """Bump the heartbeat every ``interval`` s while ``alive()`` holds (default:
        always); ``progress()`` (e.g. the writer's poll count) is published with it.
        A dead writer thread stops the heartbeat, so readers see the feed has stopped."""
        if self._hb_thread is not None:
            raise RuntimeError("heartbeat already running")
        self.words[G_HEARTBEAT_INTERVAL_NS] = int(interval * 1e9)

        def loop() -> None:
            while not self._hb_stop.wait(interval):
                if alive is not None and not alive():
                    continue
                self.beat(progress() if progress is not None else None)

        self._hb_thread = threading.Thread(target=loop, name=f"shm-heartbeat-{self.shm_name}",
                                           daemon=True)
        self._hb_thread.start()

    def close(self) -> None:
        """Clean stop: mark the segment closed (readers see it at once), unlink its name
        and drop the lock.  The memory lives on until the last reader unmaps it."""
        if self.closed:
            return
        self.closed = True
        self._hb_stop.set()
        if self._hb_thread is not None:
            self._hb_thread.join(2.0)
        self.words[G_CLOSED_NS] = time.monotonic_ns()
        _publish(self.words, G_STATE, ST_CLOSED)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)  # only our own file: we hold its lock
        os.close(self._fd)

    def __enter__(self) -> SharedStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SharedStore({self.shm_name!r}, n_books={self.n_books}, depth={self.depth})"


def _fit(text: str, n: int, what: str) -> bytes:
    b = text.encode("utf-8")
    if len(b) > n:
        raise ShmError(f"{what} {text!r} is longer than the {n} bytes the segment keeps")
    return b


def create(name: str, n_books: int, depth: int, *, directory: str | Path | None = None,
           mode: int = 0o640) -> SharedStore:
    """Create segment ``name`` and return its writable store; ShmError if a live writer
    holds the name, or the shared-memory filesystem is full."""
    path = _path(name, directory)
    if n_books < 1:
        raise ValueError(f"n_books must be >= 1, got {n_books}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
    d = row_length(depth)
    meta_off = SEG_HEADER_BYTES
    store_off = _page(meta_off + n_books * META_DTYPE.itemsize)
    store_bytes = store_nbytes(n_books, depth)
    total = _page(store_off + store_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody knows this file yet
        os.ftruncate(fd, total)
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, total)  # reserve RAM now: ENOSPC here, not SIGBUS
            except OSError as exc:
                raise ShmError(f"cannot reserve {total / 2**20:.1f} MiB in {path.parent}: "
                               f"{exc}") from None
        mm = mmap.mmap(fd, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        raw = np.frombuffer(mm, np.uint8)
        raw.fill(0)  # touch every page now, not on the hot path
        g = raw[:SEG_HEADER_BYTES].view(np.int64)
        g[G_MAGIC] = MAGIC
        g[G_VERSION] = VERSION
        g[G_LAYOUT] = layout_fingerprint()
        g[G_HDR_WORDS] = HDR_WORDS
        g[G_N_BOOKS] = n_books
        g[G_DEPTH] = d
        g[G_REQ_DEPTH] = depth
        g[G_META_OFFSET] = meta_off
        g[G_META_BYTES] = META_DTYPE.itemsize
        g[G_STORE_OFFSET] = store_off
        g[G_STORE_BYTES] = store_bytes
        g[G_TOTAL_BYTES] = total
        g[G_WRITER_PID] = os.getpid()
        g[G_CREATED_NS] = time.time_ns()
        g[G_HEARTBEAT_NS] = time.monotonic_ns()
        g[G_HEARTBEAT_INTERVAL_NS] = int(0.2e9)
        del raw, g
        store = SharedStore(name, path, fd, mm, n_books, depth)
        _claim(name, path, tmp, fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return store


def _claim(name: str, path: Path, tmp: Path, fd: int) -> None:
    """Give the locked, initialised file at ``tmp`` the segment's name.  The name only
    ever changes under the lock of the file it points to, or when it is free."""
    try:
        for _ in range(100):
            try:
                os.link(tmp, path)  # atomic; fails if the name exists
                return
            except FileExistsError:
                pass
            try:
                old = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # its writer just unlinked it: try again
            try:
                if not _try_lock(old):
                    raise ShmError(_in_use(name, path))
                # the file's writer is dead; replace it if the name still points to it
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ino == os.fstat(old).st_ino:
                        os.unlink(path)
            finally:
                os.close(old)
        raise ShmError(f"could not claim shared-memory name {name!r} ({path})")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# -- reader side ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BookInfo:
    """What a reader knows about one book without reading it."""

    index: int
    exchange: str
    native: str
    unified: str
    kind: str
    price_decimals: int
    size_decimals: int
    max_levels: int

    @property
    def name(self) -> str:
        return f"{self.exchange}:{self.native}"


@dataclass(frozen=True)
class WriterState:
    """The writer as a reader sees it.  ``state``: starting, running, closed (clean
    stop), stalled (heartbeat late, process still there) or gone (heartbeat late and
    no such process: killed or crashed)."""

    state: str
    pid: int
    heartbeat: int
    heartbeat_age_s: float
    writer_loops: int

    @property
    def alive(self) -> bool:
        return self.state == "running"


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


_BOUND: dict = {}


def _bound(disp, args):
    """The compiled entry point of Numba dispatcher ``disp`` for ``args``' types.

    Numba's dispatcher has a fast argument-type check only for writable arrays; for the
    read-only arrays of a mapping it takes a slow path (~300 ns per call).  The views
    below call the compiled function for the one signature they use directly.  Falls
    back to the dispatcher if Numba's internals differ."""
    fn = _BOUND.get(disp)
    if fn is None:
        disp(*args)  # load or compile this signature
        try:
            from numba import typeof

            fn = disp.overloads[tuple(typeof(a) for a in args)].entry_point
        except (AttributeError, KeyError, TypeError):  # pragma: no cover - numba changed
            fn = disp
        _BOUND[disp] = fn
    return fn


class SharedBook(Book):
    """A ``Book`` view of an attached segment, plus what a remote reader must check:
    how old the book's last update is and whether it can be trusted now.
    ``best_bid``/``best_ask`` call their compiled reader directly (see ``_bound``);
    ``top`` gained nothing from it (its cost is building the result) and is inherited."""

    __slots__ = ("_seg", "info")

    def __init__(self, seg: AttachedStore, index: int) -> None:
        super().__init__(seg, index)
        self._seg = seg
        self.info = seg.info[index]

    def best_bid(self) -> tuple[float, float] | None:
        args = (self._hdr, self._px, self._sz, self.index, BID)
        p, q, ok = _bound(read.best, args)(*args)
        return (p / self._pscale, q / self._sscale) if ok else None

    def best_ask(self) -> tuple[float, float] | None:
        args = (self._hdr, self._px, self._sz, self.index, ASK)
        p, q, ok = _bound(read.best, args)(*args)
        return (p / self._pscale, q / self._sscale) if ok else None

    def age_s(self) -> float | None:
        """Seconds since the last applied message (None before the first one)."""
        ts = int(self._hdr[self._h + H_RECV_TS])
        return (time.monotonic_ns() - ts) / 1e9 if ts else None

    @property
    def stale(self) -> bool:
        """True unless the book is live AND its writer is running: a book whose writer
        died stays 'live' in memory but is no longer kept up to date."""
        return (int(self._hdr[self._h + H_STATUS]) != LIVE
                or not self._seg.writer().alive)


class AttachedStore(BookStore):
    """Reader side: a read-only map of a segment with the in-process read API.

    ``book(i)`` / ``find(exchange, symbol)`` give ``SharedBook`` views; ``hdr``, ``px``
    and ``sz`` are the (read-only) arrays to pass to the Numba readers in engine.read
    from a strategy's own @njit code; ``writer()`` tells whether the feed is alive."""

    def __init__(self, name: str, path: Path, fd: int, mm: mmap.mmap, words: np.ndarray,
                 stale_after: float | None) -> None:
        raw = np.frombuffer(mm, np.uint8)
        n, d = int(words[G_N_BOOKS]), int(words[G_DEPTH])
        so, sb = int(words[G_STORE_OFFSET]), int(words[G_STORE_BYTES])
        super().__init__(n, int(words[G_REQ_DEPTH]), buffer=raw[so:so + sb], row=d,
                         fresh=False)
        self.shm_name = name
        self.path = path
        self.words = words
        mo = int(words[G_META_OFFSET])
        meta = raw[mo:mo + n * META_DTYPE.itemsize].view(META_DTYPE)
        self.info = [BookInfo(i, _text(m["exchange"]), _text(m["native"]), _text(m["unified"]),
                              _text(m["kind"]), int(m["price_decimals"]),
                              int(m["size_decimals"]), int(m["max_levels"]))
                     for i, m in enumerate(meta)]
        self.names = [i.name for i in self.info]
        self._index = {(i.exchange, i.native): i.index for i in self.info}
        self._ino = os.fstat(fd).st_ino
        os.close(fd)  # the mapping keeps the memory; no descriptor is needed
        self._mm = mm
        interval = int(words[G_HEARTBEAT_INTERVAL_NS]) / 1e9
        self.stale_after = stale_after if stale_after is not None else max(2.0, 10 * interval)

    # -- books -----------------------------------------------------------------------
    def book(self, index: int) -> SharedBook:
        if not 0 <= index < self.n_books:
            raise IndexError(f"book {index} out of range 0..{self.n_books - 1}")
        return SharedBook(self, index)

    def find(self, exchange: str, symbol: str) -> SharedBook:
        """The book of ``exchange``'s native ``symbol`` (or, failing that, unified)."""
        i = self._index.get((exchange, symbol))
        if i is None:
            hits = [b.index for b in self.info if b.exchange == exchange and b.unified == symbol]
            if not hits:
                raise KeyError(f"no book {exchange}:{symbol} in segment {self.shm_name!r}")
            i = hits[0]
        return self.book(i)

    def select(self, exchange: str | None = None, symbol: str | None = None) -> list[BookInfo]:
        """Books matching an exchange and/or a symbol (native or unified, case-insensitive)."""
        s = symbol.upper() if symbol else None
        return [b for b in self.info
                if (exchange is None or b.exchange == exchange)
                and (s is None or s in (b.native.upper(), b.unified.upper()))]

    # -- writer --------------------------------------------------------------------------
    def writer(self) -> WriterState:
        w = self.words
        state = int(_observe(w, G_STATE))
        hb = int(_observe(w, G_HEARTBEAT))
        age = max(0.0, (time.monotonic_ns() - int(_observe(w, G_HEARTBEAT_NS))) / 1e9)
        pid = int(w[G_WRITER_PID])
        if state == ST_CLOSED:
            name = "closed"
        elif age > self.stale_after:
            name = "stalled" if _pid_exists(pid) else "gone"
        else:
            name = "running" if state == ST_READY else "starting"
        return WriterState(name, pid, hb, age, int(w[G_WRITER_LOOPS]))

    def replaced(self) -> bool:
        """True when the name now points to another segment (a new writer): attach
        again to follow it."""
        try:
            return os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            return False

    def close(self) -> None:
        """Unmap (when no view still uses the memory; otherwise when the last goes)."""
        self.hdr = self.px = self.sz = self.words = self.buffer = None
        with contextlib.suppress(BufferError):
            self._mm.close()

    def __enter__(self) -> AttachedStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AttachedStore({self.shm_name!r}, n_books={self.n_books}, "
                f"depth={self.depth}, writer={self.writer().state})")


def attach(name: str = "hftbook", *, directory: str | Path | None = None,
           timeout: float = 10.0, stale_after: float | None = None) -> AttachedStore:
    """Map segment ``name`` read-only.  Waits up to ``timeout`` s for a starting writer
    to finish configuring its books.  ShmError when there is no such segment or it was
    written by an incompatible hftbook (magic, layout version or header layout)."""
    path = _path(name, directory)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ShmError(f"no shared-memory book store {name!r} ({path}): is `hftbook run` "
                           "running with [shm] enabled and this name?") from None
        except PermissionError as exc:
            raise ShmError(f"cannot open {path}: {exc}") from None
        try:
            size = os.fstat(fd).st_size
            if size < SEG_HEADER_BYTES:
                raise ShmError(f"{path} is not an hftbook segment ({size} bytes)")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
            words = np.frombuffer(mm, np.int64, SEG_HEADER_BYTES // 8)
            _check_header(words, path, size)
            if int(_observe(words, G_STATE)) != ST_INIT:
                return AttachedStore(name, path, fd, mm, words, stale_after)
        except BaseException:
            os.close(fd)
            raise
        del words
        mm.close()
        os.close(fd)
        if time.monotonic() > deadline:
            raise ShmError(f"segment {name!r}: the writer is still starting after {timeout}s")
        time.sleep(0.05)


def _check_header(w: np.ndarray, path: Path, size: int) -> None:
    if int(w[G_MAGIC]) != MAGIC:
        raise ShmError(f"{path} is not an hftbook book store (bad magic "
                       f"{int(w[G_MAGIC]).to_bytes(8, 'little')!r})")
    if int(w[G_VERSION]) != VERSION:
        raise ShmError(f"{path}: segment layout version {int(w[G_VERSION])}, this hftbook "
                       f"reads version {VERSION}: use the same hftbook version as the writer")
    if int(w[G_LAYOUT]) != layout_fingerprint() or int(w[G_HDR_WORDS]) != HDR_WORDS \
            or int(w[G_META_BYTES]) != META_DTYPE.itemsize:
        raise ShmError(f"{path}: the writer's book header layout differs from this "
                       "hftbook's (engine.constants changed): use the same hftbook version")
    if int(w[G_TOTAL_BYTES]) > size:
        raise ShmError(f"{path}: truncated segment ({size} of {int(w[G_TOTAL_BYTES])} bytes)")
