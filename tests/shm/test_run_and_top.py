"""`hftbook run` serving its books in shared memory, read by `hftbook top` and by this
process; the [shm] config table."""

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from connectors import PROTOCOLS
from connectors.base import ConfigError
from engine import shm
from hftbook.config import validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = """
[simulator]
symbols_per_exchange = 3
rate = 50.0
reference_price = 100000
[exchanges.binance]
symbols = ["*"]
[exchanges.okx]
symbols = ["*"]
"""


def _hftbook(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "hftbook.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _wait_live(name: str, n_books: int, timeout: float = 120.0) -> shm.AttachedStore:
    deadline = time.monotonic() + timeout
    seg = None
    while time.monotonic() < deadline:
        try:
            seg = seg or shm.attach(name, timeout=1.0)
        except shm.ShmError:
            time.sleep(0.2)
            continue
        if sum(not seg.book(i).stale for i in range(seg.n_books)) == n_books:
            return seg
        time.sleep(0.2)
    raise AssertionError(f"segment {name!r} not live within {timeout}s")


def test_run_serves_books_to_top_and_other_processes(tmp_path, shm_dir):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    run = subprocess.Popen([sys.executable, "-m", "hftbook.cli", "run", "--config", str(cfg),
                            "--duration", "120", "--json", "--shm-name", "itest"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seg = _wait_live("itest", 6)
        assert {i.exchange for i in seg.info} == {"binance", "okx"}
        assert seg.find("binance", "BTCUSDT").info.unified == "BTC-USDT"
        assert seg.find("okx", "BTC-USDT").info.unified == "BTC-USDT"
        # with a reference price every venue quotes around it: a consolidated view works
        from hftbook.consolidate import consolidate, read_quotes

        for i in range(seg.n_books):
            assert abs(seg.book(i).mid() / 100_000 - 1) < 0.01, seg.book(i)
        cons = consolidate(read_quotes(seg))
        assert cons["BTC-USDT"].venues == 2
        assert {cons["BTC-USDT"].bid_venues[0], cons["BTC-USDT"].ask_venues[0]} <= {"binance",
                                                                                   "okx"}
        seq0 = seg.find("binance", "BTCUSDT").seq
        top = _hftbook("top", "--name", "itest", "--once", "--width", "200",
                       "--exchange", "binance", "--interval", "1")
        assert top.returncode == 0, top.stderr
        out = top.stdout
        assert "writer running" in out and "binance:BTCUSDT" in out and "bid size" in out
        assert "okx:" not in out, "--exchange filters the books"
        assert "consolidated best bid / offer" in out and "BTC-USDT" in out
        assert "upd/s" in out and " live " in out
        assert seg.find("binance", "BTCUSDT").seq > seq0, "the books tick while we read"
        # a second feed on the same name is refused before it starts anything
        second = _hftbook("run", "--config", str(cfg), "--duration", "2",
                          "--shm-name", "itest")
        assert second.returncode == 2
        assert "held by a running writer" in second.stderr and f"pid {run.pid}" in second.stderr
        run.send_signal(signal.SIGINT)  # clean stop: closed, then unlinked
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        summary = orjson.loads(out.strip().splitlines()[-1])
        assert summary["shm"]["name"] == "itest"
        assert seg.writer().state == "closed"
        assert not os.listdir(shm_dir)
        seg.close()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_top_without_a_feed_is_a_clear_error():
    r = _hftbook("top", "--name", "nobody", "--once")
    assert r.returncode == 2 and "no shared-memory book store 'nobody'" in r.stderr


def test_run_shm_flags_and_config_table(tmp_path):
    base = {"exchanges": {"binance": {"symbols": ["BTCUSDT"]}}}
    assert validate(base, set(PROTOCOLS))["shm"] == {"enabled": False, "name": "hftbook",
                                                     "heartbeat": 0.2}
    ok = validate({**base, "shm": {"enabled": True, "name": "desk-1"}}, set(PROTOCOLS))
    assert ok["shm"]["enabled"] and ok["shm"]["name"] == "desk-1"
    for table, message in [({"name": "a/b"}, "shm.name = 'a/b'"),
                           ({"enabled": "yes"}, "shm.enabled = 'yes'"),
                           ({"heartbeat": 0}, "shm.heartbeat = 0"),
                           ({"nme": "x"}, "unknown key shm.nme")]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            validate({**base, "shm": table}, set(PROTOCOLS))
    with pytest.raises(ConfigError, match=r"simulator\.reference_price = -1"):
        validate({**base, "simulator": {"reference_price": -1}}, set(PROTOCOLS))
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    r = _hftbook("run", "--config", str(cfg), "--duration", "1", "--shm-name", "bad/name")
    assert r.returncode == 2 and "shm.name = 'bad/name'" in r.stderr
    r = _hftbook("run", "--config", str(cfg), "--shm-name", "x", "--no-shm")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


def test_bench_shm_quick_prints_its_figures():
    r = _hftbook("bench", "shm", "--quick", "--json")
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)
    for side in ("in_process", "cross_process"):
        race = res["race"][side]
        assert race["torn"] == 0 and race["reads_per_s"] > 0 and race["states_seen"] > 1
    assert set(res["idle"]["shared_read_only"]) == {"numba_bbo_ns", "best_bid_ns", "top10_ns"}
