"""The [tiers] table of config.toml: defaults, every key checked, errors name the key."""

import pytest

from connectors.base import ConfigError
from engine.tiers import TierConfig
from hftbook.config import validate

EX = {"exchanges": {"binance": {}}}


def _tiers(**t):
    return validate({"tiers": t, **EX}, {"binance"})["tiers"]


def test_defaults_make_an_auto_tier_config():
    t = _tiers()
    assert t["mode"] == "tiers" and t["hot_threads"] == "auto" and t["hot"] == []
    cfg = TierConfig.from_table(t)
    assert cfg.hot_threads is None and cfg.spin is None and cfg.steal
    assert cfg.thresholds.hot_up > cfg.thresholds.hot_down
    cfg.check()


def test_values_are_carried_over():
    cfg = TierConfig.from_table(_tiers(mode="pool", hot_threads=2, warm_threads=3,
                                       cold_threads=0, hot=["binance:BTCUSDT"], spin=500,
                                       park_us=10, pin=True, rebalance_interval=0.5,
                                       hot_up=5000, hot_down=4000.0))
    assert (cfg.mode, cfg.hot_threads, cfg.warm_threads, cfg.cold_threads) == ("pool", 2, 3, 0)
    assert cfg.hot == ("binance:BTCUSDT",) and cfg.spin == 500 and cfg.park_us == 10
    assert cfg.pin and cfg.rebalance_interval == 0.5 and cfg.thresholds.hot_up == 5000


@pytest.mark.parametrize("table,message", [
    ({"mode": "fast"}, "tiers.mode = 'fast'"),
    ({"hot_threads": "many"}, "tiers.hot_threads = 'many'"),
    ({"warm_threads": 0}, "tiers.warm_threads = 0"),
    ({"cold_threads": 2}, "tiers.cold_threads = 2"),
    ({"hot": "binance:BTCUSDT"}, "tiers.hot"),
    ({"hot": ["BTCUSDT"]}, "tiers.hot"),
    ({"hot_up": -1}, "tiers.hot_up = -1"),
    ({"hot_down": 3000}, "tiers.hot_down = 3000 must be below tiers.hot_up"),
    ({"warm_up": 10, "warm_down": 10}, "tiers.warm_down = 10 must be below tiers.warm_up"),
    ({"warm_up": 3000, "warm_down": 20}, "must not exceed"),
    ({"rebalance_interval": 0}, "tiers.rebalance_interval = 0"),
    ({"pin": "yes"}, "tiers.pin = 'yes'"),
    ({"steal": 1}, "tiers.steal = 1"),
    ({"spin": True}, "tiers.spin = True"),
    ({"park_us": 0}, "tiers.park_us = 0"),
    ({"threads": 4}, "unknown key tiers.threads"),
])
def test_bad_tiers_keys_are_named(table, message):
    with pytest.raises(ConfigError) as exc:
        _tiers(**table)
    assert message in str(exc.value)
