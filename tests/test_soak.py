"""Long runs, left out of the default suite: `make soak` (pytest -m soak)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
MINUTES = float(os.environ.get("HFTBOOK_SOAK_MINUTES", "3"))


@pytest.mark.soak
def test_every_venue_two_thousand_books_for_minutes_with_faults(tmp_path):
    """The shipped config as it is (27 venues x 80 symbols: 2,160 books), run for minutes
    with faults on several venues: at the end every book is live and equal to the
    simulator's truth, and each injected fault was counted."""
    text = (ROOT / "config.toml").read_text()
    text = re.sub(r"prometheus_port = \d+", "prometheus_port = 0", text)
    cfg = tmp_path / "soak.toml"
    cfg.write_text(text)
    seconds = int(MINUTES * 60)
    faults = ["30:gap:binance:BTCUSDT", "40:checksum:kraken:ETH/USD",
              "50:disconnect:okx", "60:garbage:bybit", f"{seconds // 2}:stall=5:coinbase"]
    cmd = [sys.executable, "-m", "hftbook.cli", "run", "--config", str(cfg), "--duration",
           str(seconds), "--json", "--verify", "--shm-name", f"soak-{os.getpid()}"]
    for f in faults:
        cmd += ["--fault", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    s = orjson.loads(r.stdout)
    t = s["totals"]
    assert t["books"] >= 2000 and t["books_live"] == t["books"]
    assert sum(v["equal_to_truth"] for v in s["truth_check"].values()) == t["books"]
    ex = s["exchanges"]
    assert ex["binance"]["gaps"] == 1
    assert ex["kraken"]["checksum_failures"] == 1
    assert ex["okx"]["connects"] >= 2
    assert ex["bybit"]["malformed"] == 1
