"""[platform] in config.toml: validated key by key, applied by `hftbook run`, and
reported at startup, including the settings the machine refuses."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from connectors.base import ConfigError
from hftbook.config import validate

ROOT = Path(__file__).resolve().parents[2]
EX = {"exchanges": {"binance": {}}}


def _v(platform: dict) -> dict:
    return validate({"platform": platform, **EX}, {"binance"})["platform"]


def test_defaults_and_accepted_values():
    d = _v({})
    assert d == {"huge_pages": "auto", "numa": "auto", "realtime_priority": 0,
                 "fallback_nice": -10, "pin_writers": [], "tsc_clock": True,
                 "double_buffer_hot": 0, "timer_slack_ns": 1}
    assert _v({"numa": 0, "pin_writers": [0, 1], "huge_pages": "hugetlb"})["numa"] == 0


@pytest.mark.parametrize("table,message", [
    ({"huge_page": "on"}, "unknown key platform.huge_page"),
    ({"huge_pages": "yes"}, "platform.huge_pages = 'yes': must be 'off', 'auto'"),
    ({"numa": "nearest"}, "platform.numa = 'nearest'"),
    ({"numa": -1}, "platform.numa = -1"),
    ({"numa": True}, "platform.numa = True"),
    ({"realtime_priority": 100}, "platform.realtime_priority = 100: must be 0 (off)"),
    ({"fallback_nice": -21}, "platform.fallback_nice = -21"),
    ({"pin_writers": 1}, "platform.pin_writers = 1: must be a list of CPU numbers"),
    ({"pin_writers": [-1]}, "platform.pin_writers = [-1]"),
    ({"pin_writers": [True]}, "platform.pin_writers = [True]"),
    ({"tsc_clock": "yes"}, "platform.tsc_clock = 'yes': must be true or false"),
    ({"double_buffer_hot": 5000}, "platform.double_buffer_hot = 5000"),
    ({"timer_slack_ns": -1}, "platform.timer_slack_ns = -1"),
])
def test_bad_values_name_the_key(table, message):
    with pytest.raises(ConfigError) as exc:
        _v(table)
    assert message in str(exc.value)


CONFIG = """
[simulator]
symbols_per_exchange = 3
[platform]
huge_pages = "hugetlb"
numa = "auto"
pin_writers = [4095]
realtime_priority = 0
tsc_clock = true
[exchanges.binance]
symbols = ["*"]
"""


def test_run_reports_what_took_effect_and_keeps_going(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    r = subprocess.run([sys.executable, "-m", "hftbook.cli", "run", "--config", str(cfg),
                        "--duration", "2", "--json", "--verify"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = orjson.loads(r.stdout)
    assert out["truth_check"]["binance"] == {"books": 3, "equal_to_truth": 3}
    reps = {p["technique"]: p for p in out["platform"]}
    pin = reps["pinning tier-hot-0"]  # pin_writers applies to the hot-tier workers
    assert not pin["ok"] and "cpu 4095 not in the allowed set" in pin["reason"]
    assert {"huge_pages", "numa", "tsc_clock"} <= set(reps)
    for name in ("tier-hot-0", "tier-warm-0", "tier-cold-0"):   # every engine thread
        slack = reps[f"timer slack {name}"]
        assert slack["ok"] and slack["effective"] == "1 ns", slack
    if not reps["huge_pages"]["ok"]:  # no reserved pages on this machine
        assert "reserved huge pages" in reps["huge_pages"]["reason"]
