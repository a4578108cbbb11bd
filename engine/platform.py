"""OS tuning for the engine: huge pages, NUMA placement, realtime priority, core pinning,
the TSC clock.  Each step is asked for by config ([platform] in config.toml), tried, and
answered with a ``Report`` (requested, effective, reason): a refusal by the OS or by
missing permissions is never an error, the process carries on with the default and
the startup report says why.

Linux is the tested platform.  The Windows equivalents (VirtualAlloc with
MEM_LARGE_PAGES after enabling SeLockMemoryPrivilege, VirtualAllocExNuma,
REALTIME_PRIORITY_CLASS + THREAD_PRIORITY_TIME_CRITICAL, SetThreadAffinityMask,
QueryPerformanceCounter) are written from the Win32 documentation behind
``sys.platform`` checks and have not been run.

Process-wide use: ``configure(settings)`` once at startup (before the book store and the
writers are created); ``BookStore`` then allocates through ``store_buffer`` and every
``Writer`` thread calls ``setup_writer_thread`` first thing; ``reports()`` gathers what
happened, for ``hftbook run`` to print.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CACHE_LINE = 64
HUGE_2M = 2 << 20
HUGE_MODES = ("off", "auto", "transparent", "hugetlb")


@dataclass
class Report:
    """What one technique was asked to do and what it did."""

    technique: str
    requested: str
    effective: str
    ok: bool            # True when the requested setting took effect
    reason: str = ""

    def line(self) -> str:
        mark = "on " if self.ok else "off"
        why = f" ({self.reason})" if self.reason else ""
        return f"[{mark}] {self.technique}: {self.effective}{why}  [asked: {self.requested}]"


@dataclass
class Settings:
    """The [platform] table of config.toml (see the comments there)."""

    huge_pages: str = "auto"
    numa: str | int = "auto"
    realtime_priority: int = 0
    fallback_nice: int = -10
    pin_writers: list[int] = field(default_factory=list)
    tsc_clock: bool = True
    double_buffer_hot: int = 0
    timer_slack_ns: int = 1

    @classmethod
    def from_config(cls, table: dict) -> Settings:
        return cls(**table)


_settings: Settings | None = None
_reports: dict[str, Report] = {}
_lock = threading.Lock()


def _record(key: str, rep: Report) -> Report:
    with _lock:
        _reports[key] = rep
    return rep


def reports() -> list[Report]:
    with _lock:
        return list(_reports.values())


def reset() -> None:
    """Forget the settings and reports (tests)."""
    global _settings
    with _lock:
        _reports.clear()
    _settings = None


def settings() -> Settings | None:
    return _settings


# ---------------------------------------------------------------------------- memory

def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def thp_mode() -> str:
    """The bracketed choice in /sys/kernel/mm/transparent_hugepage/enabled ('' if none)."""
    try:
        txt = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return ""
    m = re.search(r"\[(\w+)\]", txt)
    return m.group(1) if m else ""


def hugetlb_free_bytes() -> int:
    """Reserved 2 MiB-class hugetlbfs pages still free (HugePages_Free x Hugepagesize)."""
    mi = _meminfo()
    return mi.get("HugePages_Free", 0) * mi.get("Hugepagesize", 0) * 1024


def huge_backed_bytes(addr: int, length: int) -> tuple[int, int]:
    """(bytes in huge pages, kernel page size) of the mapping holding ``addr``, from
    /proc/self/smaps: AnonHugePages for THP, KernelPageSize for hugetlbfs."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return 0, 0
    inside = False
    huge = page = 0
    for line in lines:
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            if inside:
                break
            inside = lo <= addr < hi
            continue
        if inside:
            if line.startswith("AnonHugePages:"):
                huge += int(line.split()[1]) * 1024
            elif line.startswith("KernelPageSize:"):
                page = int(line.split()[1]) * 1024
    if page >= HUGE_2M:
        huge = length
    return min(huge, length), page


def _libc():
    return ctypes.CDLL(None, use_errno=True)


_MPOL_BIND = 2
_MPOL_F_ADDR = 2
_SYS_MBIND = {"x86_64": 237, "aarch64": 235}
_SYS_GET_MEMPOLICY = {"x86_64": 239, "aarch64": 236}


def numa_nodes() -> list[int]:
    """NUMA node ids the kernel reports (Linux); [0] where there is no NUMA information."""
    base = Path("/sys/devices/system/node")
    nodes = sorted(int(p.name[4:]) for p in base.glob("node[0-9]*")) if base.exists() else []
    return nodes or [0]


def cpu_node(cpu: int) -> int | None:
    """The NUMA node of ``cpu`` (Linux sysfs), None when unknown."""
    for p in Path(f"/sys/devices/system/cpu/cpu{cpu}").glob("node[0-9]*"):
        return int(p.name[4:])
    return None


def mbind(addr: int, length: int, node: int) -> None:
    """Bind the pages of [addr, addr+length) to ``node`` (MPOL_BIND), before they are
    touched.  Raises OSError with the kernel's errno when refused."""
    nr = _SYS_MBIND.get(os.uname().machine)
    if nr is None:
        raise OSError(f"mbind syscall number unknown on {os.uname().machine}")
    mask = (ctypes.c_ulong * 2)()
    mask[node // 64] = 1 << (node % 64)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_void_p(addr), ctypes.c_ulong(length),
                      ctypes.c_int(_MPOL_BIND), mask, ctypes.c_ulong(129), ctypes.c_uint(0))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mbind: {os.strerror(err)}")


def memory_policy(addr: int) -> tuple[int, int]:
    """(policy, node mask) governing the page at ``addr`` (get_mempolicy MPOL_F_ADDR)."""
    nr = _SYS_GET_MEMPOLICY.get(os.uname().machine)
    if nr is None:
        raise OSError(f"get_mempolicy syscall number unknown on {os.uname().machine}")
    mode = ctypes.c_int(0)
    mask = (ctypes.c_ulong * 2)()
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.byref(mode), mask, ctypes.c_ulong(129),
                      ctypes.c_void_p(addr), ctypes.c_ulong(_MPOL_F_ADDR))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"get_mempolicy: {os.strerror(err)}")
    return mode.value, mask[0]


def _numa_target(numa: str | int, writer_cpus: list[int]) -> tuple[int | None, Report | None]:
    """The node to bind to, or a report saying why there is none."""
    if numa == "off":
        return None, Report("numa", "off", "not bound (first-touch placement)", True)
    if isinstance(numa, int):
        return numa, None
    nodes = numa_nodes()
    if len(nodes) <= 1:
        return None, Report("numa", "auto", "single node: nothing to do", True,
                            f"{len(nodes)} NUMA node")
    if not writer_cpus:
        return None, Report("numa", "auto", "not bound", False,
                            f"{len(nodes)} nodes but the writers are not pinned "
                            "(set pin_writers): the store keeps first-touch placement")
    wn = {cpu_node(c) for c in writer_cpus}
    if len(wn) != 1 or None in wn:
        return None, Report("numa", "auto", "not bound", False,
                            f"writer CPUs {writer_cpus} span nodes {sorted(map(str, wn))}")
    return wn.pop(), None


def allocate(nbytes: int, huge_pages: str = "auto", numa: str | int = "off",
             writer_cpus: list[int] | None = None) -> tuple[np.ndarray, list[Report]]:
    """A zeroed, page-aligned, prefaulted uint8 buffer of ``nbytes`` for the book store,
    in huge pages and on the writers' NUMA node where asked and possible."""
    if huge_pages not in HUGE_MODES:
        raise ValueError(f"huge_pages must be one of {HUGE_MODES}, got {huge_pages!r}")
    if sys.platform == "linux":
        return _allocate_linux(nbytes, huge_pages, numa, writer_cpus or [])
    if sys.platform == "win32":  # pragma: no cover - not run here
        return _allocate_windows(nbytes, huge_pages, numa, writer_cpus or [])
    buf = _plain(nbytes)
    return buf, [Report("huge_pages", huge_pages, "4 KiB pages", huge_pages == "off",
                        f"no huge-page support written for {sys.platform}"),
                 Report("numa", str(numa), "not bound", numa == "off",
                        f"no NUMA support written for {sys.platform}")]


def _plain(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    raw.fill(0)
    off = (-raw.ctypes.data) % CACHE_LINE
    return raw[off:off + nbytes]


def _map_anon(length: int, extra_flags: int = 0) -> mmap.mmap:
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | extra_flags
    return mmap.mmap(-1, length, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)


def _allocate_linux(nbytes: int, huge: str, numa: str | int,
                    writer_cpus: list[int]) -> tuple[np.ndarray, list[Report]]:
    reps: list[Report] = []
    length = (nbytes + HUGE_2M - 1) // HUGE_2M * HUGE_2M
    mm = None
    kind = "4 KiB pages"
    why = ""
    if huge in ("auto", "hugetlb"):
        free = hugetlb_free_bytes()
        if free >= length:
            try:
                mm = _map_anon(length, getattr(mmap, "MAP_HUGETLB", 0x40000))
                kind = "hugetlb"
            except OSError as exc:
                why = f"MAP_HUGETLB refused: {exc}"
        else:
            why = (f"{free >> 20} MiB of reserved huge pages free, {length >> 20} MiB needed "
                   "(vm.nr_hugepages)")
    if mm is None and huge in ("auto", "transparent"):
        thp = thp_mode()
        if thp in ("always", "madvise"):
            # over-map by 2 MiB so a 2 MiB-aligned window exists: THP needs aligned ranges
            mm = _map_anon(length + HUGE_2M)
            kind = "transparent"
        else:
            why = (why + "; " if why else "") + f"transparent huge pages are {thp or 'absent'}"
    if mm is None:
        mm = _map_anon(length + HUGE_2M)
    base = np.frombuffer(mm, dtype=np.uint8)
    addr = base.ctypes.data
    start = (-addr) % HUGE_2M if kind != "hugetlb" else 0
    window = base[start:start + length]
    waddr = window.ctypes.data
    if kind == "transparent":
        mm.madvise(mmap.MADV_HUGEPAGE, start, length)
    elif kind == "4 KiB pages" and hasattr(mmap, "MADV_NOHUGEPAGE"):
        mm.madvise(mmap.MADV_NOHUGEPAGE, start, length)
    node, nrep = _numa_target(numa, writer_cpus)
    if node is not None:
        try:
            mbind(waddr, length, node)
            pol, mask = memory_policy(waddr)
            ok = pol == _MPOL_BIND and mask == 1 << node
            nrep = Report("numa", str(numa), f"store bound to node {node}" if ok
                          else "bind not confirmed", ok,
                          "" if ok else f"get_mempolicy says policy {pol}, mask {mask:#x}")
        except OSError as exc:
            nrep = Report("numa", str(numa), "not bound", False, str(exc))
    reps.append(nrep)
    window[::4096] = 0          # prefault every page now, not on the hot path
    buf = window[:nbytes]
    huge_bytes, page = huge_backed_bytes(waddr, length)
    if kind == "hugetlb":
        reps.insert(0, Report("huge_pages", huge, f"hugetlb: {length >> 20} MiB in "
                              f"{page >> 20 or 2} MiB pages", True))
    elif kind == "transparent":
        share = huge_bytes / length if length else 0.0
        reps.insert(0, Report("huge_pages", huge,
                              f"transparent: {huge_bytes >> 20} of {length >> 20} MiB in "
                              "2 MiB pages", share > 0.5 or huge == "auto" and share > 0,
                              why + ("; " if why else "") + f"THP mode [{thp_mode()}]"
                              + ("" if share > 0.5 else ", the kernel found few free "
                                 "2 MiB blocks (fragmented memory)")))
    else:
        reps.insert(0, Report("huge_pages", huge, "4 KiB pages", huge == "off", why))
    return buf, reps  # the array keeps the mapping alive (frombuffer holds a reference)


def store_buffer(nbytes: int) -> np.ndarray | None:
    """The allocator BookStore uses when ``configure`` was called; None otherwise."""
    s = _settings
    if s is None:
        return None
    buf, reps = allocate(nbytes, s.huge_pages, s.numa, s.pin_writers)
    for r in reps:
        _record(r.technique, r)
    return buf


# ------------------------------------------------------------------ threads: pin / prio

def pin_thread(cpu: int) -> Report:
    """Pin the calling thread to ``cpu``."""
    req = f"cpu {cpu}"
    if sys.platform == "win32":  # pragma: no cover - not run here
        return _pin_windows(cpu)
    if not hasattr(os, "sched_setaffinity"):
        return Report("pinning", req, "not pinned", False,
                      f"no sched_setaffinity on {sys.platform}")
    try:
        avail = os.sched_getaffinity(0)
        if cpu not in avail:
            return Report("pinning", req, "not pinned", False,
                          f"cpu {cpu} not in the allowed set {sorted(avail)}")
        os.sched_setaffinity(0, {cpu})  # 0 = the calling thread on Linux
        now = os.sched_getaffinity(0)
        return Report("pinning", req, f"pinned to cpu {cpu}", now == {cpu},
                      "" if now == {cpu} else f"affinity reads back {sorted(now)}")
    except OSError as exc:
        return Report("pinning", req, "not pinned", False, str(exc))


def rt_throttle() -> str:
    """The kernel's realtime throttling budget, e.g. '950000/1000000 us'."""
    try:
        rt = Path("/proc/sys/kernel/sched_rt_runtime_us").read_text().strip()
        per = Path("/proc/sys/kernel/sched_rt_period_us").read_text().strip()
        return f"{rt}/{per} us"
    except OSError:
        return "unknown"


def set_realtime(priority: int, fallback_nice: int = -10) -> Report:
    """SCHED_FIFO at ``priority`` for the calling thread; when refused, nice
    ``fallback_nice``; when that is refused too, unchanged.  A SCHED_FIFO thread must
    park when idle (the writer's idle policy does): the kernel throttles realtime
    threads that never sleep (sched_rt_runtime_us)."""
    req = f"SCHED_FIFO {priority}"
    if sys.platform == "win32":  # pragma: no cover - not run here
        return _realtime_windows()
    if not hasattr(os, "sched_setscheduler"):
        return Report("realtime", req, "normal priority", False,
                      f"no sched_setscheduler on {sys.platform}")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        if os.sched_getscheduler(0) == os.SCHED_FIFO:
            return Report("realtime", req, f"SCHED_FIFO priority {priority}", True,
                          f"RT throttling {rt_throttle()}; idle writers park")
        refused = "scheduler did not change"
    except (PermissionError, OSError) as exc:
        refused = f"SCHED_FIFO refused: {exc.strerror or exc}"
    if fallback_nice == 0:
        return Report("realtime", req, "normal priority", False, refused)
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, fallback_nice)  # a tid: this thread only
        got = os.getpriority(os.PRIO_PROCESS, tid)
        return Report("realtime", req, f"nice {got}", False, refused + "; fell back to nice")
    except OSError as exc:
        return Report("realtime", req, "normal priority", False,
                      f"{refused}; nice {fallback_nice} refused too: {exc.strerror or exc}")


PR_SET_TIMERSLACK = 29
PR_GET_TIMERSLACK = 30


def set_timer_slack(ns: int) -> Report:
    """The calling thread's timer slack (Linux prctl).  The kernel may fire a sleeper's
    timer up to the slack late to batch wake-ups; its default, 50 us, is longer than
    the park a writer takes when idle (20-50 us), so a parked writer wakes 2-3x later
    than asked.  ``ns`` 0 leaves the default."""
    req = f"{ns} ns" if ns else "default"
    if not ns:
        return Report("timer_slack", req, "kernel default", True, "not asked")
    if sys.platform != "linux":
        return Report("timer_slack", req, "unchanged", False, f"no timer slack on "
                      f"{sys.platform} (Windows timers have no slack to set)")
    libc = _libc()
    if libc is None or libc.prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) != 0:
        return Report("timer_slack", req, "unchanged", False, "prctl(PR_SET_TIMERSLACK) "
                      "failed")
    got = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    return Report("timer_slack", req, f"{got} ns", got == ns, "" if got == ns else
                  f"kernel kept {got} ns")


def setup_worker_thread(name: str | None = None) -> Report:
    """Per-thread settings every engine thread takes (hot, warm, cold or single writer):
    today the timer slack.  Recorded in the startup report under the thread's name."""
    s = _settings
    rep = set_timer_slack(s.timer_slack_ns if s is not None else Settings.timer_slack_ns)
    name = name or threading.current_thread().name
    return _record(f"timer_slack:{name}", Report(f"timer slack {name}", rep.requested,
                                                 rep.effective, rep.ok, rep.reason))


def setup_writer_thread(index: int, cpu: int | None) -> str:
    """Called first thing in every writer thread: pin it (to ``cpu``, or to
    pin_writers[index % n] from the settings) and raise its priority when configured.
    Returns the pinning outcome as a short string (the Writer's ``pin_report``)."""
    s = _settings
    setup_worker_thread()
    if cpu is None and s is not None and s.pin_writers:
        cpu = s.pin_writers[index % len(s.pin_writers)]
    if cpu is None:
        pin = Report("pinning", "none", "not pinned", True, "no CPU configured")
    else:
        pin = pin_thread(cpu)
    name = threading.current_thread().name
    _record(f"pinning:{name}", Report(f"pinning {name}", pin.requested, pin.effective,
                                      pin.ok, pin.reason))
    if s is not None and s.realtime_priority > 0:
        rt = set_realtime(s.realtime_priority, s.fallback_nice)
        _record(f"realtime:{name}", Report(f"realtime {name}", rt.requested, rt.effective,
                                           rt.ok, rt.reason))
    return pin.effective if pin.ok or cpu is None else f"{pin.effective}: {pin.reason}"


RT_SPIN = 2000  # idle polls a realtime writer spins before it parks


def rt_safe_params(params: tuple) -> tuple:
    """Writer idle policy (batch, spin, yields, park_us) for the calling thread.  Under
    SCHED_FIFO/RR the kernel throttles a thread that runs for more than
    sched_rt_runtime_us of each period (950 ms of 1 s by default) by descheduling it for
    the rest of the period, a 50 ms stall; ``sched_yield`` does not help (it yields only
    to realtime threads of the same priority).  So a realtime writer spins briefly and
    then parks: measured here, a 20000-poll spin gave a 21 ms worst case, 1000 polls 3 ms."""
    batch, spin, yields, park_us = params
    if sys.platform == "linux" and os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
        return batch, min(spin, RT_SPIN), 0, park_us
    return params


# ------------------------------------------------------------------------ startup

def configure(s: Settings) -> list[Report]:
    """Adopt the settings for this process: later store allocations and writer threads
    follow them.  Applies the process-wide parts now (the TSC clock) and returns
    their reports."""
    global _settings
    _settings = s
    out = []
    if sys.platform == "win32":  # pragma: no cover - the kernels' clock is POSIX-only
        out.append(_record("tsc_clock", Report(
            "tsc_clock", "on" if s.tsc_clock else "off", "QueryPerformanceCounter (Python)",
            not s.tsc_clock, "the Numba clock intrinsics are not written for Windows")))
    elif s.tsc_clock:
        from engine import tsc

        ok, why = tsc.enable()
        out.append(_record("tsc_clock", Report("tsc_clock", "on", "TSC" if ok
                                                else "clock_gettime", ok, why)))
    else:
        from engine import tsc

        tsc.disable()
        out.append(_record("tsc_clock", Report("tsc_clock", "off", "clock_gettime", True)))
    if s.double_buffer_hot:
        out.append(_record("double_buffer", Report(
            "double_buffer", f"{s.double_buffer_hot} levels per hot book",
            f"hot-tier workers publish {s.double_buffer_hot} levels per side", True,
            "[tiers] mode \"tiers\" with hot threads only: the pool and single modes "
            "have no hot tier (read with TierEngine.hot_top)")))
    return out


def print_startup_report(quiet: bool = False) -> None:
    """Print every report (what `hftbook run` shows once its writers run) and log it at
    INFO; when ``quiet`` (JSON output) nothing is printed and a setting that did not
    take effect is logged as a WARNING instead."""
    import logging

    log = logging.getLogger("hftbook.platform")
    for r in reports():
        log.log(logging.WARNING if quiet and not r.ok else logging.INFO, "%s", r.line())
        if not quiet:
            print(f"platform: {r.line()}", flush=True)


def report_lines() -> list[str]:
    return [r.line() for r in reports()]


def report_dicts() -> list[dict]:
    return [asdict(r) for r in reports()]


# ------------------------------------------------------------------------- Windows
# Written from the Win32 documentation; guarded by sys.platform, not run on this machine.

def _win():  # pragma: no cover
    return ctypes.WinDLL("kernel32", use_last_error=True), \
        ctypes.WinDLL("advapi32", use_last_error=True)


def _enable_lock_memory_privilege() -> str:  # pragma: no cover
    """AdjustTokenPrivileges(SeLockMemoryPrivilege): '' on success, else the reason."""
    from ctypes import wintypes

    k32, adv = _win()

    class LUID(ctypes.Structure):
        _fields_ = [("LowPart", wintypes.DWORD), ("HighPart", wintypes.LONG)]

    class TOKEN_PRIVILEGES(ctypes.Structure):
        _fields_ = [("PrivilegeCount", wintypes.DWORD), ("Luid", LUID),
                    ("Attributes", wintypes.DWORD)]

    token = wintypes.HANDLE()
    if not adv.OpenProcessToken(k32.GetCurrentProcess(), 0x0020 | 0x0008,
                                ctypes.byref(token)):
        return f"OpenProcessToken failed ({ctypes.get_last_error()})"
    luid = LUID()
    if not adv.LookupPrivilegeValueW(None, "SeLockMemoryPrivilege", ctypes.byref(luid)):
        return f"LookupPrivilegeValue failed ({ctypes.get_last_error()})"
    tp = TOKEN_PRIVILEGES(1, luid, 0x00000002)  # SE_PRIVILEGE_ENABLED
    adv.AdjustTokenPrivileges(token, False, ctypes.byref(tp), 0, None, None)
    err = ctypes.get_last_error()
    k32.CloseHandle(token)
    if err == 1300:  # ERROR_NOT_ALL_ASSIGNED
        return "the account lacks 'Lock pages in memory' (SeLockMemoryPrivilege)"
    return "" if err == 0 else f"AdjustTokenPrivileges failed ({err})"


def _allocate_windows(nbytes, huge, numa, writer_cpus):  # pragma: no cover
    k32, _ = _win()
    k32.VirtualAlloc.restype = ctypes.c_void_p
    k32.VirtualAllocExNuma.restype = ctypes.c_void_p
    MEM_COMMIT, MEM_RESERVE, MEM_LARGE_PAGES, PAGE_READWRITE = 0x1000, 0x2000, 0x20000000, 4
    reps = []
    flags = MEM_COMMIT | MEM_RESERVE
    why = ""
    if huge != "off":
        large = k32.GetLargePageMinimum()
        why = _enable_lock_memory_privilege() if large else "no large-page support"
        if not why:
            flags |= MEM_LARGE_PAGES
            nbytes_r = (nbytes + large - 1) // large * large
        else:
            nbytes_r = nbytes
    else:
        nbytes_r = nbytes
    node = numa if isinstance(numa, int) else None
    if numa == "auto" and writer_cpus:
        n = ctypes.c_ubyte()
        if k32.GetNumaProcessorNode(ctypes.c_ubyte(writer_cpus[0]), ctypes.byref(n)):
            node = n.value
    hp = k32.GetCurrentProcess()
    for attempt_flags in ((flags,) if flags == MEM_COMMIT | MEM_RESERVE
                          else (flags, MEM_COMMIT | MEM_RESERVE)):
        size = nbytes_r if attempt_flags & MEM_LARGE_PAGES else nbytes
        if node is not None:
            addr = k32.VirtualAllocExNuma(hp, None, ctypes.c_size_t(size), attempt_flags,
                                          PAGE_READWRITE, node)
        else:
            addr = k32.VirtualAlloc(None, ctypes.c_size_t(size), attempt_flags, PAGE_READWRITE)
        if addr:
            break
        why = why or f"VirtualAlloc with MEM_LARGE_PAGES failed ({ctypes.get_last_error()})"
    if not addr:
        raise MemoryError(f"VirtualAlloc of {nbytes} bytes failed")
    large_ok = bool(attempt_flags & MEM_LARGE_PAGES)
    reps.append(Report("huge_pages", huge, "large pages" if large_ok else "4 KiB pages",
                       large_ok or huge == "off", why))
    reps.append(Report("numa", str(numa), f"VirtualAllocExNuma node {node}"
                       if node is not None else "not bound", node is not None or numa != "auto"
                       or not writer_cpus, ""))
    buf = np.frombuffer((ctypes.c_uint8 * size).from_address(addr), dtype=np.uint8)
    buf[::4096] = 0
    return buf[:nbytes], reps


def _pin_windows(cpu: int) -> Report:  # pragma: no cover
    k32, _ = _win()
    k32.SetThreadAffinityMask.restype = ctypes.c_size_t
    old = k32.SetThreadAffinityMask(k32.GetCurrentThread(), ctypes.c_size_t(1 << cpu))
    if not old:
        return Report("pinning", f"cpu {cpu}", "not pinned", False,
                      f"SetThreadAffinityMask failed ({ctypes.get_last_error()})")
    return Report("pinning", f"cpu {cpu}", f"pinned to cpu {cpu}", True)


def _realtime_windows() -> Report:  # pragma: no cover
    k32, _ = _win()
    REALTIME_PRIORITY_CLASS, THREAD_PRIORITY_TIME_CRITICAL = 0x100, 15
    k32.SetPriorityClass(k32.GetCurrentProcess(), REALTIME_PRIORITY_CLASS)
    cls = k32.GetPriorityClass(k32.GetCurrentProcess())
    k32.SetThreadPriority(k32.GetCurrentThread(), THREAD_PRIORITY_TIME_CRITICAL)
    ok = cls == REALTIME_PRIORITY_CLASS
    return Report("realtime", "REALTIME_PRIORITY_CLASS", "realtime class" if ok
                  else f"priority class {cls:#x}", ok,
                  "" if ok else "needs SeIncreaseBasePriorityPrivilege (got HIGH instead)")


def qpc_ns() -> int:  # pragma: no cover - Windows only
    """Windows high-resolution clock: QueryPerformanceCounter in nanoseconds."""
    if sys.platform != "win32":
        raise OSError("QueryPerformanceCounter exists on Windows only")
    k32, _ = _win()
    c = ctypes.c_int64()
    f = ctypes.c_int64()
    k32.QueryPerformanceFrequency(ctypes.byref(f))
    k32.QueryPerformanceCounter(ctypes.byref(c))
    return c.value * 1_000_000_000 // f.value
