"""Platform tuning: each technique takes effect where the machine allows it, and
degrades to the default with a reason where the OS or permissions refuse it."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import platform as P

ROOT = Path(__file__).resolve().parents[2]
linux = pytest.mark.skipif(sys.platform != "linux", reason="Linux facilities")


@pytest.fixture(autouse=True)
def _clean():
    P.reset()
    yield
    P.reset()


def _in_thread(fn, *args):
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]


def _usable(buf, n):
    assert buf.nbytes == n and buf.ctypes.data % 64 == 0
    assert not buf.any()
    buf[:] = 7
    assert int(buf[::4096].sum()) == 7 * len(buf[::4096])


@linux
def test_plain_pages_when_huge_pages_are_off():
    buf, (hp, numa) = P.allocate(5 << 20, "off")
    _usable(buf, 5 << 20)
    assert hp.ok and hp.effective == "4 KiB pages"
    assert P.huge_backed_bytes(buf.ctypes.data, 5 << 20)[0] == 0
    assert numa.ok and "not bound" in numa.effective


@linux
@pytest.mark.skipif(P.thp_mode() not in ("always", "madvise"), reason="THP disabled here")
def test_transparent_huge_pages_back_the_store():
    buf, (hp, _) = P.allocate(8 << 20, "transparent")
    _usable(buf, 8 << 20)
    huge, _ = P.huge_backed_bytes(buf.ctypes.data, 8 << 20)
    assert hp.effective.startswith("transparent") and huge > 0
    assert hp.ok == (huge > 4 << 20)


@linux
def test_transparent_refused_when_the_kernel_has_thp_off(monkeypatch):
    monkeypatch.setattr(P, "thp_mode", lambda: "never")
    buf, (hp, _) = P.allocate(4 << 20, "transparent")
    _usable(buf, 4 << 20)
    assert not hp.ok and hp.effective == "4 KiB pages" and "never" in hp.reason


@linux
def test_hugetlb_without_reserved_pages_falls_back(monkeypatch):
    monkeypatch.setattr(P, "hugetlb_free_bytes", lambda: 0)
    buf, (hp, _) = P.allocate(4 << 20, "hugetlb")
    _usable(buf, 4 << 20)
    assert not hp.ok and "reserved huge pages" in hp.reason
    buf, (hp, _) = P.allocate(4 << 20, "auto")  # auto goes on to transparent pages
    if P.thp_mode() in ("always", "madvise"):
        assert hp.effective.startswith("transparent") and "reserved" in hp.reason


@linux
@pytest.mark.skipif(P.hugetlb_free_bytes() >= 64 << 20, reason="huge pages are reserved")
def test_map_hugetlb_refused_by_the_kernel_is_reported(monkeypatch):
    """The pool claims room, the kernel has none: mmap(MAP_HUGETLB) fails for real."""
    monkeypatch.setattr(P, "hugetlb_free_bytes", lambda: 1 << 40)
    buf, (hp, _) = P.allocate(4 << 20, "hugetlb")
    _usable(buf, 4 << 20)
    assert not hp.ok and "MAP_HUGETLB refused" in hp.reason


@linux
@pytest.mark.skipif(P.hugetlb_free_bytes() < 4 << 20, reason="no huge pages reserved "
                    "(vm.nr_hugepages = 0): the hugetlb path needs a reservation")
def test_hugetlb_when_pages_are_reserved():
    buf, (hp, _) = P.allocate(4 << 20, "hugetlb")
    _usable(buf, 4 << 20)
    assert hp.ok and hp.effective.startswith("hugetlb")


@linux
def test_numa_single_node_and_real_binding():
    if len(P.numa_nodes()) == 1:
        _, (_, numa) = P.allocate(1 << 20, "off", "auto", [0])
        assert numa.ok and numa.effective == "single node: nothing to do"
    buf, (_, numa) = P.allocate(2 << 20, "off", 0)  # an explicit node binds for real
    assert numa.ok and numa.effective == "store bound to node 0"
    assert P.memory_policy(buf.ctypes.data) == (2, 1)  # MPOL_BIND, node mask {0}
    _usable(buf, 2 << 20)


@linux
def test_numa_auto_binds_to_the_writers_node(monkeypatch):
    monkeypatch.setattr(P, "numa_nodes", lambda: [0, 1])
    monkeypatch.setattr(P, "cpu_node", lambda cpu: 0)
    buf, (_, numa) = P.allocate(1 << 20, "off", "auto", [0])
    assert numa.ok and numa.effective == "store bound to node 0"
    _, (_, numa) = P.allocate(1 << 20, "off", "auto", [])
    assert not numa.ok and "not pinned" in numa.reason
    monkeypatch.setattr(P, "cpu_node", lambda cpu: cpu)
    _, (_, numa) = P.allocate(1 << 20, "off", "auto", [0, 1])
    assert not numa.ok and "span" in numa.reason


@linux
def test_numa_refused_for_a_node_that_does_not_exist():
    buf, (_, numa) = P.allocate(1 << 20, "off", max(P.numa_nodes()) + 5)
    assert not numa.ok and "mbind" in numa.reason
    _usable(buf, 1 << 20)


@linux
def test_pinning_takes_effect_or_says_why():
    cpu = min(os.sched_getaffinity(0))
    rep = _in_thread(P.pin_thread, cpu)
    assert rep.ok and rep.effective == f"pinned to cpu {cpu}"
    rep = _in_thread(P.pin_thread, 4095)
    assert not rep.ok and "not in the allowed set" in rep.reason


@linux
def test_realtime_fifo_where_permitted():
    def go():
        rep = P.set_realtime(5)
        pol = os.sched_getscheduler(0)
        return rep, pol

    rep, pol = _in_thread(go)
    if rep.ok:
        assert pol == os.SCHED_FIFO and "SCHED_FIFO" in rep.effective
    else:
        assert "refused" in rep.reason


@linux
def test_realtime_refused_falls_back_to_nice(monkeypatch):
    def refuse(*a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    rep = _in_thread(P.set_realtime, 5, 3)   # raising nice is always allowed
    assert not rep.ok and rep.effective == "nice 3"
    assert "SCHED_FIFO refused" in rep.reason and "fell back to nice" in rep.reason


@linux
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop CAP_SYS_NICE")
def test_realtime_without_the_capability_in_a_real_process():
    """A process without CAP_SYS_NICE: SCHED_FIFO and a negative nice are both refused
    by the kernel; the report says so and the process carries on."""
    code = ("from engine import platform as P; r = P.set_realtime(10, -5); "
            "print(r.ok, '|', r.effective, '|', r.reason)")
    out = subprocess.run(["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice",
                          sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ok, effective, reason = (x.strip() for x in out.stdout.strip().split("|"))
    assert ok == "False" and effective == "normal priority"
    assert "SCHED_FIFO refused" in reason and "nice -5 refused too" in reason


@linux
def test_writer_threads_follow_the_settings():
    from engine.ring import RingPool
    from engine.store import BookStore
    from engine.writer import Writer

    cpu = max(os.sched_getaffinity(0))
    P.configure(P.Settings(huge_pages="off", numa="off", pin_writers=[cpu],
                           realtime_priority=0, tsc_clock=False))
    store = BookStore(2, 8)
    assert {r.technique for r in P.reports()} >= {"huge_pages", "numa", "tsc_clock"}
    w = Writer(store, RingPool(1, 64), [0], name="writer-test", latency=False).start()
    w.stop()
    assert w.pin_report == f"pinned to cpu {cpu}"
    pins = [r for r in P.reports() if r.technique == "pinning writer-test"]
    assert pins and pins[0].ok
    assert all(isinstance(line, str) for line in P.report_lines())


def test_other_platforms_get_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setattr(sys, "platform", "sunos5")
    buf, (hp, numa) = P.allocate(1 << 20, "auto", "auto")
    assert buf.nbytes == 1 << 20 and not hp.ok and "sunos5" in hp.reason
    with pytest.raises(OSError):
        P.qpc_ns()
    for fn in (P._allocate_windows, P._pin_windows, P._realtime_windows,
               P._enable_lock_memory_privilege):
        assert callable(fn)


def test_settings_reject_nothing_silently():
    s = P.Settings.from_config({"huge_pages": "off", "numa": 0, "realtime_priority": 0,
                                "fallback_nice": 0, "pin_writers": [], "tsc_clock": False,
                                "double_buffer_hot": 0})
    assert s.numa == 0
    with pytest.raises(TypeError):
        P.Settings.from_config({"hugepages": "off"})
    with pytest.raises(ValueError):
        P.allocate(1 << 20, "sometimes")


@linux
def test_a_realtime_writer_parks_instead_of_spinning():
    params = (64, 20_000, 200, 50)
    assert _in_thread(P.rt_safe_params, params) == params

    def fifo():
        rep = P.set_realtime(5, 0)
        return rep.ok, P.rt_safe_params(params)

    ok, got = _in_thread(fifo)
    if not ok:
        pytest.skip("SCHED_FIFO not permitted here")
    assert got == (64, P.RT_SPIN, 0, 50)
