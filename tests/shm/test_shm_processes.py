"""Writer and readers in separate processes over a shared-memory segment: zero torn
reads, readers coming and going (and crashing) while the writer runs, writer exit
(clean and kill -9) seen by readers, the one-writer-per-name rule."""

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from engine import shm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spawn(*args: str) -> subprocess.Popen:
    """A torture process; writers run until a line arrives on their stdin (or 120 s)."""
    return subprocess.Popen([sys.executable, "-m", "bench.shm_torture", *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """The writer prints 'ready' once its segment is published (first run: compiles)."""
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None
                                     else "")
    assert time.monotonic() < deadline


def _result(proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    out, err = proc.communicate("stop\n", timeout=timeout)
    assert proc.returncode == 0, err
    return orjson.loads(out.strip().splitlines()[-1])


def test_reader_processes_never_see_a_torn_book():
    writer = _spawn("writer", "race", "120", "--stdin-stop")
    try:
        _wait_ready(writer)
        readers = [_spawn("reader", "race", "4") for _ in range(2)]
        results = [_result(r) for r in readers]
    finally:
        w = _result(writer)
    reads = sum(r["reads"] for r in results)
    changes = sum(r["changes"] for r in results)
    assert w["messages"] > 10_000 and w["bad_records"] == 0
    assert reads > 100_000, results
    assert changes > 1_000, "the readers must actually race the writer"
    assert sum(r["torn"] for r in results) == 0
    assert sum(r["py_reads"] for r in results) > 100
    assert sum(r["py_torn"] for r in results) == 0


def test_readers_attach_detach_and_crash_while_the_writer_runs(shm_dir):
    writer = _spawn("writer", "churn", "120", "--stdin-stop")
    try:
        _wait_ready(writer)
        # readers killed in the middle of their reads cost the writer nothing
        for _ in range(3):
            r = _spawn("reader", "churn", "30")
            assert r.stdout.readline().strip() == "reading"
            time.sleep(0.3)
            r.send_signal(signal.SIGKILL)
            r.wait(10)
        seen = set()
        attaches = 0
        deadline = time.monotonic() + 10.0
        # attach, read, detach in this process, at least 50 times and until book 0 has
        # been seen to move: 50 quick attaches can all fall inside one scheduler slice
        # in which the writer process (two spinning threads) has no core on 2 vCPUs
        while attaches < 50 or (len(seen) < 2 and time.monotonic() < deadline):
            with shm.attach("churn") as seg:
                seen.add(seg.book(0).top(1, exact=True).seq)
                assert seg.writer().state == "running"
            attaches += 1
            if attaches >= 50:
                time.sleep(0.001)
        assert len(seen) > 1, "the books must be moving while readers come and go"
    finally:
        w = _result(writer)
    assert w["messages"] > 1_000 and w["bad_records"] == 0
    assert not os.listdir(shm_dir), "a clean writer unlinks its segment"


def test_a_clean_writer_exit_is_seen_as_closed(shm_dir):
    writer = _spawn("writer", "bye", "120", "--stdin-stop")
    _wait_ready(writer)
    seg = shm.attach("bye")
    assert seg.writer().state == "running"
    _result(writer)
    assert seg.writer().state == "closed"
    assert seg.book(0).stale
    assert seg.book(0).top(4).n_bid > 0, "the last state stays readable after the writer"
    assert not os.path.exists(seg.path)
    with pytest.raises(shm.ShmError, match="no shared-memory book store"):
        shm.attach("bye")
    seg.close()


def test_a_killed_writer_is_seen_as_gone_and_its_name_reused(shm_dir):
    writer = _spawn("writer", "crash", "1", "--no-close")
    _wait_ready(writer)
    seg = shm.attach("crash", stale_after=0.5)
    try:
        deadline = time.monotonic() + 10
        while seg.writer().state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seg.writer().state == "running"
        hb = seg.writer().heartbeat
        time.sleep(0.3)
        assert seg.writer().heartbeat > hb, "the heartbeat moves while the writer lives"
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        deadline = time.monotonic() + 5
        while seg.writer().state != "gone" and time.monotonic() < deadline:
            time.sleep(0.05)
        state = seg.writer()
        assert state.state == "gone" and not state.alive and state.heartbeat_age_s > 0.5
        assert seg.book(0).stale
        assert os.path.exists(seg.path), "kill -9 leaves the file behind"
        # the next writer takes the name over (the dead writer's lock is gone)
        with shm.create("crash", 1, 8) as new:
            new.ready()
            assert seg.replaced()
            again = shm.attach("crash")
            assert again.n_books == 1
            again.close()
    finally:
        if writer.poll() is None:
            writer.kill()
        seg.close()


def test_a_second_writer_on_a_live_name_is_a_clear_error():
    with shm.create("one", 2, 8) as first:
        with pytest.raises(shm.ShmError, match=f"held by a running writer \\(pid {os.getpid()}"):
            shm.create("one", 2, 8)
        with pytest.raises(shm.ShmError, match="held by a running writer"):
            shm.check_name_free("one")
        assert first.path.exists()
    shm.check_name_free("one")
    with shm.create("one", 3, 8) as second:
        assert second.n_books == 3
